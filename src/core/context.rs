//! The librdkafka client context shared by every client of this library:
//! librdkafka's own log lines and errors go into the client's span.

use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};

#[derive(Clone)]
pub struct KafkaContext {
    span: tracing::Span,
}

impl KafkaContext {
    pub fn new(span: tracing::Span) -> Self {
        KafkaContext { span }
    }

    pub fn span(&self) -> &tracing::Span {
        &self.span
    }
}

impl ClientContext for KafkaContext {
    fn log(&self, level: RDKafkaLogLevel, facility: &str, message: &str) {
        let _entered = self.span.enter();
        match level {
            RDKafkaLogLevel::Emerg | RDKafkaLogLevel::Alert | RDKafkaLogLevel::Critical | RDKafkaLogLevel::Error => {
                tracing::error!(target: "librdkafka", "{facility}: {message}")
            }
            RDKafkaLogLevel::Warning => tracing::warn!(target: "librdkafka", "{facility}: {message}"),
            RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info => {
                tracing::info!(target: "librdkafka", "{facility}: {message}")
            }
            RDKafkaLogLevel::Debug => tracing::debug!(target: "librdkafka", "{facility}: {message}"),
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        let _entered = self.span.enter();
        match error.rdkafka_error_code() {
            // librdkafka reconnects by itself and reports each failed attempt;
            // the client's own connection monitor reports the state once.
            Some(RDKafkaErrorCode::BrokerTransportFailure) | Some(RDKafkaErrorCode::Resolve) => {
                tracing::debug!(target: "librdkafka", "{error}: {reason}")
            }
            Some(RDKafkaErrorCode::AllBrokersDown) => {
                tracing::warn!(target: "librdkafka", "all brokers are down: {reason}")
            }
            _ => tracing::error!(target: "librdkafka", "{error}: {reason}"),
        }
    }
}
