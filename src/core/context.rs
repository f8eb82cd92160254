//! The librdkafka client context shared by every client of this library:
//! librdkafka's own log lines and errors go into the client's span.

use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use tokio::sync::watch;

#[derive(Clone)]
pub struct KafkaContext {
    span: tracing::Span,
    /// Set to `false` when librdkafka reports every broker down, so the
    /// client's monitor knows to probe and report the outage.
    connected: Option<watch::Sender<bool>>,
    /// Missing topics already reported, so each is warned about once.
    missing_topics: Arc<Mutex<HashSet<String>>>,
}

impl KafkaContext {
    pub fn new(span: tracing::Span) -> Self {
        KafkaContext {
            span,
            connected: None,
            missing_topics: Arc::default(),
        }
    }

    pub fn with_connection_state(span: tracing::Span, connected: watch::Sender<bool>) -> Self {
        KafkaContext {
            span,
            connected: Some(connected),
            missing_topics: Arc::default(),
        }
    }

    pub fn span(&self) -> &tracing::Span {
        &self.span
    }
}

impl ClientContext for KafkaContext {
    fn log(&self, level: RDKafkaLogLevel, facility: &str, message: &str) {
        let _entered = self.span.enter();
        // A refused connection is logged by librdkafka at error level on every
        // retry; the client's connection monitor already reports it.
        let level = if facility == "FAIL" {
            RDKafkaLogLevel::Debug
        } else {
            level
        };
        match level {
            RDKafkaLogLevel::Emerg
            | RDKafkaLogLevel::Alert
            | RDKafkaLogLevel::Critical
            | RDKafkaLogLevel::Error => {
                tracing::error!(target: "librdkafka", "{facility}: {message}")
            }
            RDKafkaLogLevel::Warning => {
                tracing::warn!(target: "librdkafka", "{facility}: {message}")
            }
            RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info => {
                tracing::info!(target: "librdkafka", "{facility}: {message}")
            }
            RDKafkaLogLevel::Debug => {
                tracing::debug!(target: "librdkafka", "{facility}: {message}")
            }
        }
    }

    /// Clients with metrics (producers, consumers) read statistics in their
    /// own contexts; for the rest (admin clients) they are dropped, instead of
    /// rust-rdkafka's default of logging every report at info level.
    fn stats_raw(&self, _statistics: &[u8]) {}

    fn error(&self, error: KafkaError, reason: &str) {
        let _entered = self.span.enter();
        match error.rdkafka_error_code() {
            // librdkafka reconnects by itself and reports each failed attempt;
            // the client's own connection monitor reports the state once.
            Some(RDKafkaErrorCode::AllBrokersDown) => {
                tracing::debug!(target: "librdkafka", "{error}: {reason}");
                if let Some(connected) = &self.connected {
                    connected.send_replace(false);
                }
            }
            Some(RDKafkaErrorCode::BrokerTransportFailure | RDKafkaErrorCode::Resolve) => {
                tracing::debug!(target: "librdkafka", "{error}: {reason}")
            }
            // A consumer subscribed before its topic exists: it joins once the
            // topic appears (metadata is refreshed every few seconds).
            Some(RDKafkaErrorCode::UnknownTopicOrPartition) => {
                let first_time = self
                    .missing_topics
                    .lock()
                    .map(|mut seen| seen.insert(reason.to_string()))
                    .unwrap_or(true);
                if first_time {
                    tracing::warn!(target: "librdkafka", "{reason}; waiting for it to be created");
                } else {
                    tracing::debug!(target: "librdkafka", "{error}: {reason}");
                }
            }
            _ => tracing::error!(target: "librdkafka", "{error}: {reason}"),
        }
    }
}
