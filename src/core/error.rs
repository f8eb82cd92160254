//! The one error type of the core. The N-API glue turns it into a JS `Error`
//! whose `code` is [`CoreError::code`], so callers can branch on a stable string.

use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use std::collections::HashMap;
use std::ffi::CStr;
use std::sync::OnceLock;

pub type Result<T> = std::result::Result<T, CoreError>;

#[derive(Debug, Clone, thiserror::Error)]
pub enum CoreError {
    /// A caller passed a value of the wrong type, shape or range.
    #[error("{0}")]
    InvalidArgument(String),

    /// Client configuration is invalid; `key` names the offending setting.
    #[error("invalid configuration `{key}`: {reason}")]
    InvalidConfig { key: String, reason: String },

    /// librdkafka reported an error; `code` is its response code.
    #[error("{context}: {message}")]
    Kafka {
        context: String,
        code: RDKafkaErrorCode,
        message: String,
        /// librdkafka reported the client unusable (e.g. a transactional
        /// producer fenced by a newer instance): create a new one.
        fatal: bool,
    },

    /// The client was used after `disconnect()`/`close()`.
    #[error("{0} is disconnected")]
    Disconnected(&'static str),

    /// A transactional operation out of order: a send outside a transaction
    /// on a transactional producer, or a transaction used after it ended.
    #[error("{0}")]
    TransactionState(String),

    /// An operation did not complete in the allotted time.
    #[error("{0}")]
    TimedOut(String),

    /// A value could not be serialised or parsed.
    #[error("{0}")]
    Serialization(String),

    /// A failure inside this library that no caller input explains.
    #[error("internal error: {0}")]
    Internal(String),
}

impl CoreError {
    pub fn invalid_arg(message: impl Into<String>) -> Self {
        CoreError::InvalidArgument(message.into())
    }

    pub fn invalid_config(key: impl Into<String>, reason: impl Into<String>) -> Self {
        CoreError::InvalidConfig {
            key: key.into(),
            reason: reason.into(),
        }
    }

    /// Wraps an rdkafka error, keeping librdkafka's response code when it has one.
    pub fn kafka(context: impl Into<String>, error: &KafkaError) -> Self {
        let context = context.into();
        match error.rdkafka_error_code() {
            Some(code) => CoreError::Kafka {
                context,
                code,
                message: code.to_string(),
                fatal: false,
            },
            None => CoreError::Internal(format!("{context}: {error}")),
        }
    }

    pub fn from_code(context: impl Into<String>, code: RDKafkaErrorCode) -> Self {
        CoreError::Kafka {
            context: context.into(),
            code,
            message: code.to_string(),
            fatal: false,
        }
    }

    /// Whether the client that returned this error can no longer be used.
    pub fn is_fatal(&self) -> bool {
        matches!(self, CoreError::Kafka { fatal: true, .. })
    }

    /// The same error, saying that the transaction it ended was aborted.
    pub fn aborted(self) -> Self {
        self.reworded(|text| format!("{text} (the transaction was aborted)"))
    }

    /// The same error with its caller-facing text (an invalid argument's
    /// message, a Kafka error's context) rewritten: to add where or what.
    pub fn reworded(self, reword: impl FnOnce(&str) -> String) -> Self {
        match self {
            CoreError::InvalidArgument(message) => CoreError::InvalidArgument(reword(&message)),
            CoreError::Kafka {
                context,
                code,
                message,
                fatal,
            } => CoreError::Kafka {
                context: reword(&context),
                code,
                message,
                fatal,
            },
            other => other,
        }
    }

    /// The stable, documented error code exposed to JavaScript as `error.code`.
    ///
    /// librdkafka errors become `ERR_KAFKA_<librdkafka name>`, e.g.
    /// `ERR_KAFKA_MSG_SIZE_TOO_LARGE` or `ERR_KAFKA_TIMED_OUT` (librdkafka's
    /// leading underscore for client-side errors is dropped).
    pub fn code(&self) -> String {
        match self {
            CoreError::InvalidArgument(_) => "ERR_INVALID_ARG".into(),
            CoreError::InvalidConfig { .. } => "ERR_INVALID_CONFIG".into(),
            // librdkafka's local `_FENCED` and the broker's `PRODUCER_FENCED`
            // mean the same to the application: a newer instance took over.
            CoreError::Kafka {
                code: RDKafkaErrorCode::Fenced | RDKafkaErrorCode::ProducerFenced,
                ..
            } => "ERR_KAFKA_PRODUCER_FENCED".into(),
            CoreError::Kafka { code, .. } => {
                format!(
                    "ERR_KAFKA_{}",
                    librdkafka_error_name(*code).trim_start_matches('_')
                )
            }
            CoreError::TransactionState(_) => "ERR_KAFKA_TRANSACTION_STATE".into(),
            CoreError::Disconnected(_) => "ERR_KAFKA_DISCONNECTED".into(),
            CoreError::TimedOut(_) => "ERR_KAFKA_TIMED_OUT".into(),
            CoreError::Serialization(_) => "ERR_SERIALIZATION".into(),
            CoreError::Internal(_) => "ERR_INTERNAL".into(),
        }
    }

    /// librdkafka's numeric response code, when the error came from librdkafka.
    pub fn librdkafka_code(&self) -> Option<i32> {
        match self {
            CoreError::Kafka { code, .. } => Some(*code as i32),
            _ => None,
        }
    }

    /// librdkafka's symbolic name for the response code (e.g. `MSG_SIZE_TOO_LARGE`).
    pub fn librdkafka_name(&self) -> Option<String> {
        match self {
            CoreError::Kafka { code, .. } => Some(librdkafka_error_name(*code)),
            _ => None,
        }
    }

    /// Whether retrying the same operation later may succeed.
    pub fn is_retriable(&self) -> bool {
        match self {
            CoreError::Kafka { code, .. } => is_retriable_code(*code),
            CoreError::TimedOut(_) => true,
            _ => false,
        }
    }
}

fn is_retriable_code(code: RDKafkaErrorCode) -> bool {
    use RDKafkaErrorCode::*;
    matches!(
        code,
        QueueFull
            | MessageTimedOut
            | OperationTimedOut
            | RequestTimedOut
            | AllBrokersDown
            | BrokerTransportFailure
            | LeaderNotAvailable
            | NotLeaderForPartition
            | NetworkException
            | NotEnoughReplicas
            | NotEnoughReplicasAfterAppend
            | NotCoordinator
            | CoordinatorNotAvailable
            | CoordinatorLoadInProgress
            | UnknownTopicOrPartition
    )
}

/// librdkafka's own name for an error code (e.g. `MSG_SIZE_TOO_LARGE`).
pub fn librdkafka_error_name(code: RDKafkaErrorCode) -> String {
    static NAMES: OnceLock<HashMap<i32, String>> = OnceLock::new();
    let names = NAMES.get_or_init(|| {
        let mut descriptions: *const rdkafka::bindings::rd_kafka_err_desc = std::ptr::null();
        let mut count: usize = 0;
        // SAFETY: librdkafka fills in a pointer to its static table of error
        // descriptions and its length; entries with a null name are unused slots.
        unsafe {
            rdkafka::bindings::rd_kafka_get_err_descs(&mut descriptions, &mut count);
            if descriptions.is_null() {
                return HashMap::new();
            }
            std::slice::from_raw_parts(descriptions, count)
                .iter()
                .filter(|entry| !entry.name.is_null())
                .map(|entry| {
                    let name = CStr::from_ptr(entry.name).to_string_lossy().into_owned();
                    (entry.code as i32, name)
                })
                .collect()
        }
    });
    names
        .get(&(code as i32))
        .cloned()
        .unwrap_or_else(|| format!("UNKNOWN_{}", code as i32))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn librdkafka_codes_become_stable_strings() {
        let err = CoreError::from_code("send", RDKafkaErrorCode::MessageSizeTooLarge);
        assert_eq!(err.code(), "ERR_KAFKA_MSG_SIZE_TOO_LARGE");
        assert_eq!(err.librdkafka_code(), Some(10));
        assert_eq!(err.librdkafka_name().as_deref(), Some("MSG_SIZE_TOO_LARGE"));
        let local = CoreError::from_code("flush", RDKafkaErrorCode::OperationTimedOut);
        assert_eq!(local.code(), "ERR_KAFKA_TIMED_OUT");
        assert!(local.is_retriable());
    }

    #[test]
    fn non_kafka_errors_have_their_own_codes() {
        assert_eq!(CoreError::invalid_arg("x").code(), "ERR_INVALID_ARG");
        assert_eq!(
            CoreError::invalid_config("k", "r").code(),
            "ERR_INVALID_CONFIG"
        );
        assert_eq!(
            CoreError::Disconnected("producer").code(),
            "ERR_KAFKA_DISCONNECTED"
        );
        assert!(!CoreError::invalid_arg("x").is_retriable());
        assert_eq!(
            CoreError::TransactionState("x".into()).code(),
            "ERR_KAFKA_TRANSACTION_STATE"
        );
    }

    #[test]
    fn fencing_has_one_code_whoever_reports_it() {
        for code in [RDKafkaErrorCode::Fenced, RDKafkaErrorCode::ProducerFenced] {
            let error = CoreError::from_code("commit", code);
            assert_eq!(error.code(), "ERR_KAFKA_PRODUCER_FENCED");
        }
        let aborted = CoreError::from_code(
            "the transaction could not be committed",
            RDKafkaErrorCode::InvalidTransactionalState,
        )
        .aborted();
        assert!(
            aborted
                .to_string()
                .contains("(the transaction was aborted)"),
            "{aborted}"
        );
        assert!(!aborted.is_fatal());
    }
}
