//! Where librdkafka's acknowledgement of each produced message goes: either a
//! one-shot channel per message (for Rust callers that `.await` a send) or a
//! [`DeliverySink`] shared by every message of a producer, which lets a caller
//! such as the N-API binding collect many acknowledgements and wake its own
//! thread once for all of them instead of once per message.

use crate::core::context::KafkaContext;
use crate::core::error::{CoreError, Result};
use crate::core::metrics::ProducerInstruments;
use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::KafkaError;
use rdkafka::message::Message as _;
use rdkafka::producer::{DeliveryResult, ProducerContext};
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::oneshot;

/// Where a message was written, as librdkafka reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delivered {
    pub partition: i32,
    pub offset: i64,
    /// Milliseconds since the Unix epoch (the broker's or the producer's).
    pub timestamp: Option<i64>,
}

/// Receives the outcome of every message sent with
/// [`Producer::start_send_tracked`](crate::core::producer::Producer::start_send_tracked).
///
/// Called on librdkafka's polling thread (or, for messages that never reached
/// librdkafka, on the thread that gave up on them): it must return quickly and
/// never block.
pub trait DeliverySink: Send + Sync {
    /// `tag` and `index` identify the message: the tag given to
    /// `start_send_tracked` and the message's position in that call.
    fn delivered(&self, tag: u64, index: u32, outcome: Result<Delivered>);
}

/// Who is told about one message's outcome.
pub enum Notify {
    Reply(oneshot::Sender<Result<Delivered>>),
    Sink { tag: u64, index: u32 },
}

/// One message handed to the producer: who to tell, and when it was sent
/// (for the delivery latency metric).
pub struct Pending {
    pub notify: Notify,
    pub since: Instant,
}

impl Pending {
    pub fn new(notify: Notify) -> Box<Self> {
        Box::new(Pending {
            notify,
            since: Instant::now(),
        })
    }
}

/// The producer's librdkafka context: the shared [`KafkaContext`] for logs and
/// errors, the routing of delivery reports and the producer's metrics.
pub struct DeliveryContext {
    inner: KafkaContext,
    sink: Option<Arc<dyn DeliverySink>>,
    instruments: Arc<ProducerInstruments>,
}

impl DeliveryContext {
    pub fn new(
        inner: KafkaContext,
        sink: Option<Arc<dyn DeliverySink>>,
        instruments: Arc<ProducerInstruments>,
    ) -> Self {
        DeliveryContext {
            inner,
            sink,
            instruments,
        }
    }
}

/// Reports `outcome` to whoever waits for the message.
pub fn settle(sink: Option<&Arc<dyn DeliverySink>>, notify: Notify, outcome: Result<Delivered>) {
    match notify {
        // The receiver is gone when the caller stopped waiting: nothing to tell.
        Notify::Reply(reply) => {
            let _ = reply.send(outcome);
        }
        Notify::Sink { tag, index } => {
            if let Some(sink) = sink {
                sink.delivered(tag, index, outcome);
            }
        }
    }
}

impl ClientContext for DeliveryContext {
    fn log(&self, level: RDKafkaLogLevel, facility: &str, message: &str) {
        self.inner.log(level, facility, message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        self.inner.error(error, reason);
    }

    fn stats_raw(&self, statistics: &[u8]) {
        self.instruments.record_statistics(statistics);
    }
}

impl ProducerContext for DeliveryContext {
    type DeliveryOpaque = Box<Pending>;

    fn delivery(&self, result: &DeliveryResult<'_>, pending: Box<Pending>) {
        self.instruments.settled(pending.since, result.is_ok());
        let outcome = match result {
            Ok(message) => Ok(Delivered {
                partition: message.partition(),
                offset: message.offset(),
                timestamp: message.timestamp().to_millis(),
            }),
            Err((error, message)) => Err(CoreError::kafka(
                format!("delivery to topic `{}` failed", message.topic()),
                error,
            )),
        };
        settle(self.sink.as_ref(), pending.notify, outcome);
    }
}
