//! The base consumer: its own group, payloads validated before the handler
//! sees them, at-least-once (an offset is stored only once its message is
//! handled or parked in the dead-letter topic), per-key order with bounded
//! concurrency, bounded in-flight work, retries, pause/resume, graceful close.
//!
//! Threads: one poll thread per consumer owns the librdkafka consumer (its
//! rebalance callbacks may block, so they must not run on the async runtime);
//! message handling runs on the shared tokio runtime.

use crate::core::config::{ClientOptions, ClientSettings};
use crate::core::context::KafkaContext;
use crate::core::delivery::DeliverySink;
use crate::core::embedded;
use crate::core::encoded::EncodedDeliveries;
use crate::core::error::{CoreError, Result};
use crate::core::events::validate_topic_name;
use crate::core::logging::{ClientLog, LogLevel, LogSink};
use crate::core::metrics::{
    self, ClientMetrics, ConsumerInstruments, ConsumerMetrics, MetricsSource,
};
use crate::core::producer::{
    OutgoingMessage, Producer, ProducerOptions, DEFAULT_STATISTICS_INTERVAL_MS,
};
use crate::core::schema::{self, Decoded, PayloadSchema};
use crate::core::wakeup::Wakeup;
use bytes::Bytes;
use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::{KafkaError, KafkaResult};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use rdkafka::types::RDKafkaErrorCode;
// Looked up per message: foldhash is several times cheaper than SipHash and
// still seeded per process, so message keys cannot be chosen to collide.
use foldhash::{HashMap as FastMap, HashSet as FastSet};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot, watch};
use tracing::Instrument;

mod batcher;
mod exactly_once;
mod hub;
mod lanes;

use batcher::{Batcher, EncodedBatch};
use hub::{HubMessage, MessageHub, MessageView};
use lanes::{LaneKey, LaneKeys, LaneRun};

/// Defaults for at-least-once consumption: offsets are stored by this
/// library after handling and committed by librdkafka every interval, on
/// revoke and on close.
pub(crate) const CONSUMER_DEFAULTS: &[(&str, &str)] = &[
    ("enable.auto.commit", "true"),
    ("enable.auto.offset.store", "false"),
    ("auto.commit.interval.ms", "5000"),
    // Bounds librdkafka's prefetch, so memory follows maxInFlight: measured
    // against the message hub, it is one bound for all assigned partitions.
    ("queued.max.messages.kbytes", "16384"),
    // With that bound a full prefetch queue is common, and by librdkafka's
    // default (1000) its partition is then not fetched again for a second:
    // on a backlog that capped consumption near 75k msg/s even in pure Rust.
    ("fetch.queue.backoff.ms", "10"),
    ("enable.partition.eof", "false"),
    // A subscribed topic created after the consumer started is noticed only at
    // the next metadata refresh, every 5 minutes by librdkafka's default.
    ("topic.metadata.refresh.interval.ms", "5000"),
    // As kafkajs and the Java client do: subscribing asks the cluster to create
    // a missing topic (where the cluster allows it).
    ("allow.auto.create.topics", "true"),
    ("statistics.interval.ms", DEFAULT_STATISTICS_INTERVAL_MS),
];

/// How often a consumer out of contact probes the cluster, and how often the
/// high watermarks of a paused consumer's partitions are read from it.
const MONITOR_INTERVAL: Duration = Duration::from_secs(1);

/// Most messages of one lane handed to the application in one crossing:
/// enough to amortise the crossing, few enough to keep the event loop free.
const MAX_SEQUENCE: usize = 256;

/// Most payload bytes of one crossing (past its first message): the event
/// loop's share of a crossing (decoding, parsing, callbacks) grows with the
/// bytes, so large messages go in shorter runs.
const MAX_SEQUENCE_BYTES: usize = 64 * 1024;

/// Most messages the poll thread takes from librdkafka before it serves the
/// consumer's own queue (rebalances, commits) and hands them over.
const MAX_TAKEN_PER_ROUND: usize = 1024;

/// How long the poll thread waits when no message was taken: a safety net.
/// librdkafka wakes it for messages and for the consumer's events, and the
/// consumer for room, pause, resume and close. (At 5 ms, an idle consumer's
/// poll thread took 0.3 % of a core.)
const IDLE_WAIT: Duration = Duration::from_millis(100);

/// Kafka's default record size limit: larger values are rarely meant, and
/// parsing one would hold a thread and its memory for a single message.
const DEFAULT_MAX_VALUE_BYTES: usize = 1024 * 1024;

/// How often a consumer held up by uncommitted offsets asks for a commit again.
const COMMIT_RETRY_INTERVAL: Duration = Duration::from_millis(200);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Further attempts after the first failure.
    pub retries: u32,
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            retries: 3,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(30),
        }
    }
}

impl RetryPolicy {
    /// The pause before attempt `attempt + 1` (attempts count from 1).
    pub fn backoff(&self, attempt: u32) -> Duration {
        let factor = 2u32.saturating_pow(attempt.saturating_sub(1).min(30));
        self.initial_backoff
            .saturating_mul(factor)
            .min(self.max_backoff)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchOptions {
    pub max_messages: usize,
    pub max_wait: Duration,
}

/// Where messages that cannot be handled go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeadLetter {
    /// `<source topic>.dlq`.
    PerTopic,
    Topic(String),
    /// Skip and count them instead.
    Off,
}

impl DeadLetter {
    fn topic_for(&self, source: &str) -> Option<String> {
        match self {
            DeadLetter::PerTopic => Some(format!("{source}.dlq")),
            DeadLetter::Topic(topic) => Some(topic.clone()),
            DeadLetter::Off => None,
        }
    }
}

pub struct ConsumerOptions {
    pub client: ClientOptions,
    pub topics: Vec<String>,
    pub group_id: Option<String>,
    pub from_beginning: bool,
    pub schema: PayloadSchema,
    pub concurrency: usize,
    pub batch: Option<BatchOptions>,
    pub retry: RetryPolicy,
    pub dead_letter: DeadLetter,
    pub max_in_flight: usize,
    /// Larger payloads are rejected as [`schema::ERR_VALUE_TOO_LARGE`] unparsed.
    pub max_value_bytes: usize,
    pub session_timeout: Duration,
    /// How long a revoke or `close` waits for in-flight messages.
    pub drain_timeout: Duration,
    /// How long `register` waits for the first partition assignment.
    pub join_timeout: Duration,
    /// Raised while a revoke or `close` drains, so that a handler running a
    /// sequence of messages reports its progress after each one.
    pub yield_signal: YieldSignal,
    /// Consume-transform-produce exactly once: runs are handled in
    /// transactions of this producer (see [`exactly_once_producer`]), which
    /// commit the consumed offsets with what the handler sent through it.
    pub exactly_once: Option<Arc<Producer>>,
}

/// A flag the handler can read on the application's thread without waiting.
#[derive(Debug, Clone, Default)]
pub struct YieldSignal(Arc<AtomicBool>);

impl YieldSignal {
    pub fn is_raised(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }

    /// The flag itself, for a reader that watches its byte directly (the
    /// binding maps it into the JavaScript callback's driver).
    pub fn flag(&self) -> Arc<AtomicBool> {
        self.0.clone()
    }

    fn raise(&self) {
        self.0.store(true, Ordering::Release);
    }

    fn lower(&self) {
        self.0.store(false, Ordering::Release);
    }
}

impl ConsumerOptions {
    pub fn new(topics: Vec<String>) -> Self {
        ConsumerOptions {
            client: ClientOptions::default(),
            topics,
            group_id: None,
            from_beginning: false,
            schema: PayloadSchema::Json,
            concurrency: 1,
            batch: None,
            retry: RetryPolicy::default(),
            dead_letter: DeadLetter::PerTopic,
            // Half of it is the commit's batch: at 1000, consumption waited on
            // each commit's round trip (75k msg/s per message against Tansu;
            // 95k at 5000, bench/README.md). 5000 keeps a crash's redelivery
            // and the memory held (~5 MB of 1 KB messages) small.
            max_in_flight: 5000,
            max_value_bytes: DEFAULT_MAX_VALUE_BYTES,
            session_timeout: Duration::from_secs(45),
            drain_timeout: Duration::from_secs(30),
            join_timeout: Duration::from_secs(60),
            yield_signal: YieldSignal::default(),
            exactly_once: None,
        }
    }

    fn validate(&self) -> Result<()> {
        if self.topics.is_empty() {
            return Err(CoreError::invalid_arg("at least one topic is required"));
        }
        for topic in &self.topics {
            validate_topic_name(topic)?;
        }
        if let DeadLetter::Topic(topic) = &self.dead_letter {
            validate_topic_name(topic)?;
            if self.topics.contains(topic) {
                return Err(CoreError::invalid_arg(
                    "deadLetterTopic must differ from the consumed topics",
                ));
            }
        }
        if self.concurrency == 0 || self.concurrency > 10_000 {
            return Err(CoreError::invalid_arg(
                "concurrency must be between 1 and 10000",
            ));
        }
        if let Some(producer) = &self.exactly_once {
            if !producer.is_transactional() {
                return Err(CoreError::invalid_config(
                    "exactlyOnce",
                    "needs a producer with a transactionalId",
                ));
            }
            if self.concurrency != 1 {
                return Err(CoreError::invalid_config(
                    "concurrency",
                    "exactly-once processing runs one transaction at a time, in order: leave concurrency at 1",
                ));
            }
        }
        if self.max_in_flight == 0 || self.max_in_flight > 1_000_000 {
            return Err(CoreError::invalid_arg(
                "maxInFlight must be between 1 and 1000000",
            ));
        }
        if self.max_value_bytes == 0 {
            return Err(CoreError::invalid_arg("maxValueBytes must be at least 1"));
        }
        if let Some(batch) = &self.batch {
            if batch.max_messages == 0 || batch.max_messages > self.max_in_flight {
                return Err(CoreError::invalid_arg(
                    "batch.maxMessages must be between 1 and maxInFlight",
                ));
            }
        }
        if self.retry.initial_backoff > self.retry.max_backoff {
            return Err(CoreError::invalid_arg(
                "retry.initialBackoffMs must not exceed retry.maxBackoffMs",
            ));
        }
        Ok(())
    }
}

/// A message as received, before or after validation.
#[derive(Debug, Clone)]
pub struct ReceivedMessage {
    /// Shared by the messages of one take from librdkafka.
    pub topic: Arc<str>,
    pub partition: i32,
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    /// Shared: in batch mode a JSON value is a view into the hand-over
    /// text the poll thread wrote it into.
    pub payload: Option<Bytes>,
    pub headers: Vec<(String, Option<Vec<u8>>)>,
    pub timestamp: Option<i64>,
}

/// How the handler should see a message's value (the payload passed validation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueForm {
    /// The payload bytes as they are.
    Raw,
    /// Validated JSON text, to be parsed into a value.
    Json,
    /// A tombstone under a JSON schema: the value is `null`.
    Null,
}

/// One message handed to the handler.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub message: Arc<ReceivedMessage>,
    pub form: ValueForm,
    /// 1 for the first attempt, then 2, 3, … on retries.
    pub attempt: u32,
}

/// Why the handler failed (its error's message, as the application threw it).
#[derive(Debug, Clone)]
pub struct HandlerFailure {
    /// Which delivery failed: the ones before it were handled, the ones after
    /// it were not tried. Always 0 in batch mode, where the batch fails whole.
    pub index: usize,
    pub message: String,
}

/// Why a handler call ended before handling every delivery.
#[derive(Debug, Clone)]
pub enum Interrupted {
    /// The delivery at `failure.index` failed; the ones before it were handled.
    Failed(HandlerFailure),
    /// The yield signal was raised: the deliveries before `index` were
    /// handled, the rest not tried. Only runs of several messages yield.
    Yielded { index: usize },
}

impl From<HandlerFailure> for Interrupted {
    fn from(failure: HandlerFailure) -> Self {
        Interrupted::Failed(failure)
    }
}

pub type HandlerFuture = Pin<Box<dyn Future<Output = std::result::Result<(), Interrupted>> + Send>>;

/// The application's callback. In batch mode it gets `deliveries` at once.
/// Otherwise it is called on each delivery in order, each awaited before the
/// next, stopping at the first failure: several messages of one lane share a
/// single crossing into the application's runtime.
pub trait MessageHandler: Send + Sync + 'static {
    fn handle(&self, deliveries: Vec<Delivery>) -> HandlerFuture;

    /// Whether [`MessageHandler::handle_after`] queues runs behind the ones
    /// handed over before them. When it does, the batch dispatcher hands the
    /// next batch over while the current one runs, so that the handler does
    /// not wait a round trip between batches.
    fn queues_runs(&self) -> bool {
        false
    }

    /// Like [`MessageHandler::handle`], for a run that must start only once
    /// every run handed over before it has succeeded: if one of them failed
    /// (or was itself not started), this one is not started and resolves to
    /// `Interrupted::Yielded { index: 0 }`. Called only when
    /// [`MessageHandler::queues_runs`] says so.
    fn handle_after(&self, deliveries: Vec<Delivery>) -> HandlerFuture {
        self.handle(deliveries)
    }

    /// The handler as an [`EncodedHandler`], if it is one: the poll thread
    /// then encodes the first attempt of each run (per message) or batch
    /// (when it also [queues runs](MessageHandler::queues_runs)) as it
    /// takes the messages.
    fn as_encoded(&self) -> Option<&dyn EncodedHandler> {
        None
    }
}

/// A handler that takes a run's or a batch's first attempt already encoded,
/// as [`EncodedDeliveries::encode`] encodes its deliveries (attempt 1).
pub trait EncodedHandler: Send + Sync {
    /// As [`MessageHandler::handle`], or [`MessageHandler::handle_after`]
    /// when `after_previous`, for the encoded messages.
    fn handle_encoded(&self, encoded: EncodedDeliveries, after_previous: bool) -> HandlerFuture;
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PartitionLag {
    pub topic: String,
    pub partition: i32,
    /// Messages in the partition after the last one handled (or committed).
    pub lag: i64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConsumerStats {
    pub received: u64,
    pub processed: u64,
    pub retried: u64,
    pub dead_lettered: u64,
    pub skipped: u64,
    pub in_flight: u64,
    pub paused: bool,
    pub lag: Vec<PartitionLag>,
}

#[derive(Default)]
struct Counters {
    received: AtomicU64,
    processed: AtomicU64,
    retried: AtomicU64,
    dead_lettered: AtomicU64,
    skipped: AtomicU64,
}

type PartitionKey = (String, i32);

/// Offsets received but not yet finished, per partition, to store the
/// contiguous low-watermark of finished ones.
#[derive(Default)]
struct OffsetTracker {
    partitions: FastMap<PartitionKey, PartitionOffsets>,
    next_generation: u64,
}

struct PartitionOffsets {
    generation: u64,
    /// (offset, finished?) in offset order: offsets mostly arrive in order,
    /// so a received one is pushed at the back and a finished run is popped
    /// at the front (a `BTreeMap` here cost a tenth of the dispatcher's CPU).
    outstanding: VecDeque<(i64, bool)>,
    /// Last offset whose successor is safe to commit.
    stored: Option<i64>,
    /// Stored but not yet known to be committed: each store's offset, with
    /// how many messages it covered. A crash would redeliver them.
    uncommitted: VecDeque<(i64, usize)>,
}

impl PartitionOffsets {
    fn received(&mut self, offset: i64) {
        let outstanding = &mut self.outstanding;
        match outstanding.back() {
            Some(&(last, _)) if last >= offset => {
                match outstanding.binary_search_by_key(&offset, |&(offset, _)| offset) {
                    Ok(index) => outstanding[index].1 = false,
                    Err(index) => outstanding.insert(index, (offset, false)),
                }
            }
            _ => outstanding.push_back((offset, false)),
        }
    }
}

impl OffsetTracker {
    fn assign(&mut self, key: PartitionKey) -> u64 {
        self.next_generation += 1;
        let generation = self.next_generation;
        self.partitions.insert(
            key,
            PartitionOffsets {
                generation,
                outstanding: VecDeque::new(),
                stored: None,
                uncommitted: VecDeque::new(),
            },
        );
        generation
    }

    fn generation(&self, key: &PartitionKey) -> Option<u64> {
        self.partitions
            .get(key)
            .map(|partition| partition.generation)
    }

    #[cfg(test)]
    fn received(&mut self, key: &PartitionKey, offset: i64) -> bool {
        self.partition_mut(key)
            .map(|partition| partition.received(offset))
            .is_some()
    }

    /// A partition's offsets, when it is this member's.
    fn partition_mut(&mut self, key: &PartitionKey) -> Option<&mut PartitionOffsets> {
        self.partitions.get_mut(key)
    }

    /// Marks `offset` finished. Returns how many offsets became committable
    /// (the finished run at the front) and the new offset to store, if the
    /// low-watermark moved. They stay tracked until [`Self::committed`].
    fn finished(
        &mut self,
        key: &PartitionKey,
        generation: u64,
        offset: i64,
    ) -> (usize, Option<i64>) {
        let Some(partition) = self
            .partitions
            .get_mut(key)
            .filter(|partition| partition.generation == generation)
        else {
            return (0, None);
        };
        let Ok(index) = partition
            .outstanding
            .binary_search_by_key(&offset, |&(offset, _)| offset)
        else {
            return (0, None);
        };
        partition.outstanding[index].1 = true;
        let mut advanced = None;
        let mut released = 0;
        while let Some(&(first, true)) = partition.outstanding.front() {
            partition.outstanding.pop_front();
            advanced = Some(first);
            released += 1;
        }
        if let Some(offset) = advanced {
            partition.stored = advanced;
            partition.uncommitted.push_back((offset, released));
        }
        (released, advanced)
    }

    /// The group now has `next` as the partition's committed offset: returns
    /// how many stored messages that commit covered.
    fn committed(&mut self, key: &PartitionKey, next: i64) -> usize {
        let Some(partition) = self.partitions.get_mut(key) else {
            return 0;
        };
        let mut covered = 0;
        while let Some(&(offset, count)) = partition.uncommitted.front() {
            if offset >= next {
                break;
            }
            partition.uncommitted.pop_front();
            covered += count;
        }
        covered
    }

    fn outstanding(&self, key: &PartitionKey) -> usize {
        self.partitions
            .get(key)
            .map_or(0, |partition| partition.outstanding.len())
    }

    /// Forgets a partition: returns how many of its messages were unfinished
    /// and how many finished but not known to be committed.
    fn revoke(&mut self, key: &PartitionKey) -> (usize, usize) {
        self.partitions.remove(key).map_or((0, 0), |partition| {
            let uncommitted = partition.uncommitted.iter().map(|(_, count)| count).sum();
            (partition.outstanding.len(), uncommitted)
        })
    }
}

/// State shared by the poll thread, the dispatcher and the handle.
struct Shared {
    name: Arc<str>,
    group_id: String,
    options: ConsumerOptions,
    log: ClientLog,
    counters: Counters,
    /// Received and not yet finished (handled or parked).
    in_flight: AtomicUsize,
    /// Finished, stored, and not yet known to be committed: with `in_flight`
    /// what a crash would redeliver, so both count against `max_in_flight`.
    uncommitted: AtomicUsize,
    /// When early commits are asked for, and how many are out.
    commit_pace: CommitPace,
    tracker: Mutex<OffsetTracker>,
    user_paused: AtomicBool,
    backpressured: AtomicBool,
    closing: AtomicBool,
    joined: watch::Sender<bool>,
    /// Set by the poll thread: the live consumer, for offset stores and stats.
    consumer: Mutex<Option<Arc<BaseConsumer<ConsumerHooks>>>>,
    assignment: Mutex<Vec<PartitionKey>>,
    /// Where assigned partitions' messages wait (see `hub`), so they are
    /// taken only when there is room while rebalance events keep flowing.
    hub: Mutex<Option<Arc<MessageHub>>>,
    /// Batch mode with an [`EncodedHandler`]: the batch the poll thread is
    /// gathering, which a revoke sends on before it waits for the revoked
    /// partitions' messages to finish. Only the poll thread uses it.
    batcher: Mutex<Option<Batcher>>,
    /// Ends the poll thread's idle wait early: the message hub received
    /// messages, handled work made room, or pause, resume or close was asked.
    /// Without it, new messages and freed room waited out the idle period.
    wakeup: Arc<Wakeup>,
    instruments: ConsumerInstruments,
    /// `false` once librdkafka reports every broker down; `true` again when
    /// a probe of `monitor_consumer` or a statistics report finds a broker
    /// up, or the group assigns partitions.
    connected: watch::Sender<bool>,
    /// librdkafka's name of the consumer handle, set once it exists.
    handle_name: OnceLock<String>,
    /// High watermarks read from the cluster while fetching is paused, when
    /// librdkafka's own (taken from fetch responses) stand still.
    paused_high_watermarks: Mutex<HashMap<PartitionKey, i64>>,
}

impl Shared {
    fn span(&self) -> &tracing::Span {
        self.log.span()
    }

    /// Forgets a partition's tracked offsets (revoked, or given up on), and
    /// releases what its messages held against `max_in_flight`.
    fn release(&self, tracker: &mut OffsetTracker, key: &PartitionKey) {
        let (unfinished, uncommitted) = tracker.revoke(key);
        self.in_flight.fetch_sub(unfinished, Ordering::AcqRel);
        self.uncommitted.fetch_sub(uncommitted, Ordering::AcqRel);
    }

    /// Runs `f` on the batch the poll thread is gathering; `None` when there
    /// is no batcher (any more).
    fn with_batcher<R>(&self, f: impl FnOnce(&mut Batcher) -> R) -> Option<R> {
        self.batcher.lock().ok()?.as_mut().map(f)
    }

    /// Asks handlers running a sequence to report progress after each
    /// message, so a drain need not wait for whole runs. Not in exactly-once
    /// mode: there a run is one transaction, which commits whole or not at
    /// all, so a drain waits for it (at most a run or a batch).
    fn ask_handlers_to_yield(&self) {
        if self.options.exactly_once.is_none() {
            self.options.yield_signal.raise();
        }
    }

    /// Spreads a run's time in the callback over the messages it covered.
    fn handled_in(&self, elapsed: Duration, messages: usize) {
        if messages > 0 {
            let count = u32::try_from(messages).unwrap_or(u32::MAX);
            self.instruments
                .processing_time
                .observe_many(elapsed / count, u64::from(count));
        }
    }

    fn metrics(&self) -> ConsumerMetrics {
        ConsumerMetrics {
            name: self.name.to_string(),
            handle: self.handle_name.get().cloned().unwrap_or_default(),
            group_id: self.group_id.clone(),
            connected: *self.connected.borrow(),
            stats: self.stats(),
            processed_per_second: self.instruments.processed_per_second(),
            processing_time: self.instruments.processing_time.snapshot(),
            librdkafka: self.instruments.statistics(),
        }
    }

    pub fn stats(&self) -> ConsumerStats {
        let counters = &self.counters;
        let lag = self.lag();
        ConsumerStats {
            received: counters.received.load(Ordering::Relaxed),
            processed: counters.processed.load(Ordering::Relaxed),
            retried: counters.retried.load(Ordering::Relaxed),
            dead_lettered: counters.dead_lettered.load(Ordering::Relaxed),
            skipped: counters.skipped.load(Ordering::Relaxed),
            in_flight: self.in_flight.load(Ordering::Relaxed) as u64,
            paused: self.user_paused.load(Ordering::Relaxed)
                || self.backpressured.load(Ordering::Relaxed),
            lag,
        }
    }

    fn lag(&self) -> Vec<PartitionLag> {
        let consumer = self.consumer.lock().ok().and_then(|guard| guard.clone());
        let Some(consumer) = consumer else {
            return Vec::new();
        };
        let positions: HashMap<PartitionKey, i64> = consumer
            .position()
            .map(|list| {
                list.elements()
                    .iter()
                    .filter_map(|element| match element.offset() {
                        Offset::Offset(offset) => {
                            Some(((element.topic().to_string(), element.partition()), offset))
                        }
                        _ => None,
                    })
                    .collect()
            })
            .unwrap_or_default();
        let stored: HashMap<PartitionKey, Option<i64>> = self
            .tracker
            .lock()
            .map(|tracker| {
                tracker
                    .partitions
                    .iter()
                    .map(|(key, partition)| {
                        (
                            key.clone(),
                            partition
                                .outstanding
                                .front()
                                .map(|&(offset, _)| offset)
                                .or(partition.stored.map(|offset| offset + 1)),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        let refreshed = self
            .paused_high_watermarks
            .lock()
            .map(|watermarks| watermarks.clone())
            .unwrap_or_default();
        self.assignment
            .lock()
            .map(|assignment| assignment.clone())
            .unwrap_or_default()
            .into_iter()
            .map(|(topic, partition)| {
                let key = (topic.clone(), partition);
                let high = match (
                    watermark_high(&consumer, &topic, partition),
                    refreshed.get(&key).copied(),
                ) {
                    (Some(cached), Some(read)) => Some(cached.max(read)),
                    (cached, read) => cached.or(read),
                };
                let next = stored
                    .get(&key)
                    .copied()
                    .flatten()
                    .or_else(|| positions.get(&key).copied());
                let lag = match (high, next) {
                    (Some(high), Some(next)) => (high - next).max(0),
                    (Some(high), None) => high.max(0),
                    _ => 0,
                };
                PartitionLag {
                    topic,
                    partition,
                    lag,
                }
            })
            .collect()
    }

    fn finish(&self, message: &ReceivedMessage, generation: u64) {
        self.finish_all(std::iter::once((message, generation)));
    }

    /// Marks messages finished, storing at most one offset per partition: a
    /// run of messages is finished under one lock with one store each.
    fn finish_all<'m>(&self, finished: impl IntoIterator<Item = (&'m ReceivedMessage, u64)>) {
        // In flight until committable: a finished message behind an unfinished
        // one of its partition would be redelivered too, so it still counts
        // against `max_in_flight`, which thereby bounds redeliveries.
        let mut released = 0;
        let mut stores: Vec<(&str, i32, i64)> = Vec::new();
        if let Ok(mut tracker) = self.tracker.lock() {
            let mut partition = PartitionMemo::default();
            for (message, generation) in finished {
                let (key, _) = partition.key_of(message);
                let (count, store) = tracker.finished(key, generation, message.offset);
                released += count;
                if let Some(offset) = store {
                    match stores.iter_mut().find(|(topic, partition, _)| {
                        *topic == &*message.topic && *partition == message.partition
                    }) {
                        Some(entry) => entry.2 = entry.2.max(offset),
                        None => stores.push((&*message.topic, message.partition, offset)),
                    }
                }
            }
        }
        if self.options.exactly_once.is_some() {
            // Their offsets were committed in the transaction that handled
            // them (or, for revoked ones, are the new owner's business):
            // nothing to store for librdkafka's commits.
            if let Ok(mut tracker) = self.tracker.lock() {
                for (topic, partition, offset) in &stores {
                    tracker.committed(&(topic.to_string(), *partition), offset + 1);
                }
            }
            self.in_flight.fetch_sub(released, Ordering::AcqRel);
            if released > 0 && self.backpressured.load(Ordering::Acquire) {
                self.wakeup.wake();
            }
            return;
        }
        if released > 0 {
            self.in_flight.fetch_sub(released, Ordering::AcqRel);
            self.uncommitted.fetch_add(released, Ordering::AcqRel);
            self.commit_pace.released(released);
        }
        if stores.is_empty() {
            return;
        }
        let consumer = self.consumer.lock().ok().and_then(|guard| guard.clone());
        let Some(consumer) = consumer else { return };
        for (topic, partition, offset) in stores {
            if let Err(error) = consumer.store_offset(topic, partition, offset) {
                self.span().in_scope(|| {
                    tracing::debug!("offset {offset} of {topic}[{partition}] not stored: {error}")
                });
            }
        }
        self.commit_if_due(&consumer);
    }

    /// Commits the stored offsets ahead of the auto-commit interval once a
    /// share of `max_in_flight` (see [`CommitPace`]) is finished but
    /// uncommitted: what a crash redelivers stays within `max_in_flight`,
    /// while the rest keeps intake going during the commit's round trip.
    fn commit_if_due(&self, consumer: &BaseConsumer<ConsumerHooks>) {
        if self.commit_pace.ask_if_due(self.options.max_in_flight) {
            self.send_early_commit(consumer);
        }
    }

    /// Asks for a commit again when intake is held up by uncommitted
    /// messages and no early commit is out: the last one failed, or the
    /// messages were finished before it was due.
    fn commit_again_if_held_up(&self, consumer: &BaseConsumer<ConsumerHooks>) {
        let due = self.commit_pace.due(self.options.max_in_flight);
        if self.uncommitted.load(Ordering::Acquire) >= due && self.commit_pace.ask_if_none_out() {
            self.send_early_commit(consumer);
        }
    }

    fn send_early_commit(&self, consumer: &BaseConsumer<ConsumerHooks>) {
        if let Err(error) = commit_stored_reporting_back(consumer) {
            self.commit_pace.not_sent();
            self.span()
                .in_scope(|| tracing::debug!("early offset commit not sent: {error}"));
        }
    }

    /// A commit (early, automatic, on revoke or close) reported back: the
    /// messages it covered no longer count against `max_in_flight`.
    fn committed(&self, result: &KafkaResult<()>, offsets: &TopicPartitionList) {
        self.commit_pace.reported();
        match result {
            Ok(()) | Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => {}
            Err(error) => tracing::debug!("offset commit failed: {error}"),
        }
        let mut covered = 0;
        if let Ok(mut tracker) = self.tracker.lock() {
            for element in offsets.elements() {
                // Partitions whose commit failed keep their messages counted
                // until a later commit covers them.
                if let (Ok(()), Offset::Offset(next)) = (element.error(), element.offset()) {
                    let key = (element.topic().to_string(), element.partition());
                    covered += tracker.committed(&key, next);
                }
            }
        }
        if covered > 0 {
            self.uncommitted.fetch_sub(covered, Ordering::AcqRel);
            if self.backpressured.load(Ordering::Acquire) {
                self.wakeup.wake();
            }
        }
    }
}

/// How early the next early commit is asked for: once `max_in_flight /
/// divisor` messages are finished and uncommitted. The divisor starts at 2,
/// so the other half of `max_in_flight` keeps intake going during the
/// commit's round trip. That round trip passes through four threads (the
/// poll thread, librdkafka's main and coordinator threads, the poll thread
/// again), and on a busy machine it took up to 11 ms where the broker
/// answered in 1: long enough for the handlers to run out of work, at
/// 400k msg/s, while intake waited for room (bench/README.md). Each commit
/// during which that nearly happened (intake waiting, at most an eighth of
/// `max_in_flight` left to handle) doubles the divisor, up to 16; a run of
/// commits without it halves the divisor again. What a crash redelivers
/// stays within `max_in_flight` either way: only how often commits go out
/// changes.
///
/// The next commit does not wait for the one out to report back: it goes
/// once another share has finished since the last was asked for. With one
/// commit out at a time, a slow round trip (0.3 to 13 ms measured, against
/// a local broker, at 400k msg/s) left intake waiting with all of
/// `max_in_flight` finished: the commit out covered only what had been
/// stored when it was asked for, and the rest waited for the next one.
#[derive(Debug)]
struct CommitPace {
    divisor: AtomicUsize,
    /// The handlers nearly ran out of work while a commit was on its way.
    ran_low: AtomicBool,
    /// Commits in a row without that.
    unhindered: AtomicUsize,
    /// Early commits asked for that have not reported back.
    out: AtomicUsize,
    /// Messages finished since the last early commit was asked for.
    unasked: AtomicUsize,
}

impl CommitPace {
    const MIN_DIVISOR: usize = 2;
    const MAX_DIVISOR: usize = 16;
    /// Commits without a wait before the divisor is halved.
    const RELAX_AFTER: usize = 16;
    /// Each early commit covers a share of `max_in_flight`, so no more than
    /// `MAX_DIVISOR` can be needed at once; the cap keeps a coordinator that
    /// stopped answering from being sent more.
    const MAX_OUT: usize = Self::MAX_DIVISOR;

    fn due(&self, max_in_flight: usize) -> usize {
        (max_in_flight / self.divisor.load(Ordering::Relaxed)).max(1)
    }

    fn released(&self, messages: usize) {
        self.unasked.fetch_add(messages, Ordering::AcqRel);
    }

    /// Whether an early commit is due (a share of `max_in_flight` finished
    /// since the last was asked for) and may go: if so, it counts as out.
    fn ask_if_due(&self, max_in_flight: usize) -> bool {
        let due = self.due(max_in_flight);
        let Ok(unasked) =
            self.unasked
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |unasked| {
                    (unasked >= due).then_some(0)
                })
        else {
            return false;
        };
        let reserved = self
            .out
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |out| {
                (out < Self::MAX_OUT).then_some(out + 1)
            })
            .is_ok();
        if !reserved {
            // Due again as soon as one reports back.
            self.unasked.fetch_add(unasked, Ordering::AcqRel);
        }
        reserved
    }

    /// Whether no early commit is out: if so, one now is.
    fn ask_if_none_out(&self) -> bool {
        let reserved = self
            .out
            .compare_exchange(0, 1, Ordering::AcqRel, Ordering::Acquire)
            .is_ok();
        if reserved {
            self.unasked.store(0, Ordering::Release);
        }
        reserved
    }

    /// The commit asked for could not be sent.
    fn not_sent(&self) {
        let _ = self
            .out
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |out| {
                out.checked_sub(1)
            });
    }

    fn any_out(&self) -> bool {
        self.out.load(Ordering::Acquire) > 0
    }

    fn work_ran_low(&self) {
        self.ran_low.store(true, Ordering::Relaxed);
    }

    /// A commit reported back: if early commits are out, it is taken for
    /// the oldest of them (automatic ones report back the same way, and
    /// commits report back in order).
    fn reported(&self) {
        let was_out = self
            .out
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |out| {
                out.checked_sub(1)
            })
            .is_ok();
        if !was_out {
            return;
        }
        let divisor = self.divisor.load(Ordering::Relaxed);
        if self.ran_low.swap(false, Ordering::Relaxed) {
            self.unhindered.store(0, Ordering::Relaxed);
            self.divisor
                .store((divisor * 2).min(Self::MAX_DIVISOR), Ordering::Relaxed);
        } else if self.unhindered.fetch_add(1, Ordering::Relaxed) + 1 >= Self::RELAX_AFTER {
            self.unhindered.store(0, Ordering::Relaxed);
            self.divisor
                .store((divisor / 2).max(Self::MIN_DIVISOR), Ordering::Relaxed);
        }
    }
}

impl Default for CommitPace {
    fn default() -> Self {
        CommitPace {
            divisor: AtomicUsize::new(Self::MIN_DIVISOR),
            ran_low: AtomicBool::new(false),
            unhindered: AtomicUsize::new(0),
            out: AtomicUsize::new(0),
            unasked: AtomicUsize::new(0),
        }
    }
}

/// librdkafka callbacks of the consumer: rebalances drain and commit.
pub struct ConsumerHooks {
    kafka: KafkaContext,
    shared: Weak<Shared>,
}

impl ClientContext for ConsumerHooks {
    fn log(&self, level: RDKafkaLogLevel, facility: &str, message: &str) {
        self.kafka.log(level, facility, message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        self.kafka.error(error, reason);
    }

    fn stats_raw(&self, statistics: &[u8]) {
        let Some(shared) = self.shared.upgrade() else {
            return;
        };
        let processed = shared.counters.processed.load(Ordering::Relaxed);
        if let Some(summary) = shared.instruments.record_statistics(statistics, processed) {
            shared.connected.send_replace(summary.brokers_up() > 0);
        }
    }
}

impl MetricsSource for Shared {
    fn collect(&self) -> Option<ClientMetrics> {
        if self.closing.load(Ordering::Acquire) {
            return None;
        }
        Some(ClientMetrics::Consumer(self.metrics()))
    }
}

/// Every [`MONITOR_INTERVAL`]: after an outage, probes the cluster until it
/// answers, so `connected` comes back without waiting for statistics (which
/// may be off); and while fetching is paused (by the application or by
/// backpressure), when librdkafka's high watermarks stand still, reads them
/// from the cluster so the lag keeps telling the truth.
async fn monitor_consumer(shared: Weak<Shared>) {
    loop {
        tokio::time::sleep(MONITOR_INTERVAL).await;
        let Some(strong) = shared.upgrade() else {
            return;
        };
        if strong.closing.load(Ordering::Acquire) {
            return;
        }
        let consumer = strong.consumer.lock().ok().and_then(|guard| guard.clone());
        if !*strong.connected.borrow() {
            let Some(consumer) = consumer else { continue };
            let connected = strong.connected.clone();
            drop(strong);
            let probe = tokio::task::spawn_blocking(move || {
                consumer.fetch_metadata(None, MONITOR_INTERVAL).is_ok()
            })
            .await;
            if matches!(probe, Ok(true)) {
                connected.send_replace(true);
            }
            continue;
        }
        let paused = strong.user_paused.load(Ordering::Acquire)
            || strong.backpressured.load(Ordering::Acquire);
        if !paused {
            if let Ok(mut watermarks) = strong.paused_high_watermarks.lock() {
                watermarks.clear();
            }
            continue;
        }
        let assignment = strong
            .assignment
            .lock()
            .map(|assignment| assignment.clone())
            .unwrap_or_default();
        drop(strong);
        let Some(consumer) = consumer else { continue };
        let read = tokio::task::spawn_blocking(move || {
            assignment
                .into_iter()
                .filter_map(|(topic, partition)| {
                    let (_, high) = consumer
                        .fetch_watermarks(&topic, partition, MONITOR_INTERVAL)
                        .ok()?;
                    Some(((topic, partition), high))
                })
                .collect::<HashMap<_, _>>()
        })
        .await;
        if let (Ok(read), Some(strong)) = (read, shared.upgrade()) {
            if let Ok(mut watermarks) = strong.paused_high_watermarks.lock() {
                *watermarks = read;
            }
        }
    }
}

impl ConsumerContext for ConsumerHooks {
    fn commit_callback(&self, result: KafkaResult<()>, offsets: &TopicPartitionList) {
        if let Some(shared) = self.shared.upgrade() {
            let _entered = shared.span().enter();
            shared.committed(&result, offsets);
        }
    }

    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let Some(shared) = self.shared.upgrade() else {
            return;
        };
        let _entered = shared.span().enter();
        if let Rebalance::Revoke(partitions) = rebalance {
            let revoked: Vec<PartitionKey> = partitions
                .elements()
                .iter()
                .map(|element| (element.topic().to_string(), element.partition()))
                .collect();
            tracing::info!("Partitions revoked: {}", describe(&revoked));
            // Messages still being gathered into a batch count as in flight:
            // hand them on, or the wait below would wait for nothing. (Only
            // the poll thread takes the lock, and never across a poll.)
            if let Ok(mut batcher) = shared.batcher.try_lock() {
                if let Some(batcher) = batcher.as_mut() {
                    batcher.flush();
                }
            }
            // Let started messages of the revoked partitions finish, so their
            // offsets are committed before another member takes over.
            shared.ask_handlers_to_yield();
            let deadline = Instant::now() + shared.options.drain_timeout;
            loop {
                let outstanding: usize = match shared.tracker.lock() {
                    Ok(tracker) => revoked.iter().map(|key| tracker.outstanding(key)).sum(),
                    Err(_) => 0,
                };
                if outstanding == 0 {
                    break;
                }
                if Instant::now() >= deadline {
                    tracing::warn!("{outstanding} message(s) of revoked partitions still in flight after the drain timeout; they will be redelivered");
                    break;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            shared.options.yield_signal.lower();
            commit_stored(consumer, "revoke");
            if let Ok(mut tracker) = shared.tracker.lock() {
                for key in &revoked {
                    shared.release(&mut tracker, key);
                }
            }
            if let Ok(mut assignment) = shared.assignment.lock() {
                assignment.retain(|key| !revoked.contains(key));
            }
        }
    }

    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let Some(shared) = self.shared.upgrade() else {
            return;
        };
        let _entered = shared.span().enter();
        match rebalance {
            Rebalance::Assign(partitions) => {
                let assigned: Vec<PartitionKey> = partitions
                    .elements()
                    .iter()
                    .map(|element| (element.topic().to_string(), element.partition()))
                    .collect();
                if let Ok(mut tracker) = shared.tracker.lock() {
                    for key in &assigned {
                        tracker.assign(key.clone());
                    }
                }
                if let Ok(mut assignment) = shared.assignment.lock() {
                    assignment.extend(assigned.iter().cloned());
                }
                // librdkafka knows a partition's queue only once it is assigned;
                // its fetcher has not delivered anything yet at this point.
                let hub = shared.hub.lock().ok().and_then(|guard| guard.clone());
                if let Some(hub) = hub {
                    for key in &assigned {
                        if !hub.attach(&key.0, key.1) {
                            tracing::warn!(
                                "no queue for {}[{}]; its messages come through the main queue",
                                key.0,
                                key.1
                            );
                        }
                    }
                }
                if shared.user_paused.load(Ordering::Acquire) {
                    if let Err(error) = consumer.pause(partitions) {
                        tracing::warn!("could not pause newly assigned partitions: {error}");
                    }
                }
                tracing::info!("Partitions assigned: {}", describe(&assigned));
                shared.joined.send_replace(true);
                shared.connected.send_replace(true);
            }
            Rebalance::Revoke(_) => {}
            Rebalance::Error(error) => tracing::error!("Rebalance error: {error}"),
        }
    }
}

/// The partition key of consecutive messages, built when the partition
/// changes rather than cloned per message (a run is mostly of one partition).
/// It starts as `("", 0)`, which matches no message: topics are never empty.
#[derive(Default)]
struct PartitionMemo {
    key: PartitionKey,
}

impl PartitionMemo {
    /// The message's partition key, and whether it differs from the previous one's.
    fn key_of(&mut self, message: &ReceivedMessage) -> (&PartitionKey, bool) {
        let changed = self.key.1 != message.partition || *self.key.0 != *message.topic;
        if changed {
            self.key = (message.topic.to_string(), message.partition);
        }
        (&self.key, changed)
    }
}

/// Whether works are of a partition still assigned as when they arrived
/// (the same generation), looking each partition up once per run of its
/// works under one lock of the tracker.
struct CurrentPartitions<'t> {
    tracker: &'t OffsetTracker,
    partition: PartitionMemo,
    current: Option<u64>,
}

impl<'t> CurrentPartitions<'t> {
    fn new(tracker: &'t OffsetTracker) -> Self {
        CurrentPartitions {
            tracker,
            partition: PartitionMemo::default(),
            current: None,
        }
    }

    fn hold(&mut self, work: &Work) -> bool {
        if let (key, true) = self.partition.key_of(&work.message) {
            self.current = self.tracker.generation(key);
        }
        self.current == Some(work.generation)
    }
}

/// How often a consumer error that keeps recurring is logged again.
const REPEATED_ERROR_INTERVAL: Duration = Duration::from_secs(30);

/// Consumer errors as warnings, without a flood: librdkafka reports some
/// (all brokers down, a broker's transport failing) on every poll while they
/// last, ~20 a second. Each kind is logged when it first occurs, then at most
/// once per [`REPEATED_ERROR_INTERVAL`] with how often it recurred.
#[derive(Default)]
struct ErrorReporter {
    /// Per error: when it was last logged and how often it recurred since.
    seen: HashMap<String, (Instant, u64)>,
}

impl ErrorReporter {
    fn report(&mut self, error: &KafkaError) {
        self.report_at(error, Instant::now());
    }

    fn report_at(&mut self, error: &KafkaError, now: Instant) {
        // A subscribed topic that does not exist yet is reported (once, as a
        // warning) by the client context; librdkafka repeats it on every refresh.
        if error.rdkafka_error_code() == Some(RDKafkaErrorCode::UnknownTopicOrPartition) {
            tracing::debug!("Kafka consumer error: {error}");
            return;
        }
        let kind = format!("{error:?}");
        match self.seen.get_mut(&kind) {
            Some((last, repeats)) if now.duration_since(*last) < REPEATED_ERROR_INTERVAL => {
                *repeats += 1;
            }
            Some((last, repeats)) => {
                tracing::warn!(
                    "Kafka consumer error: {error} ({} more time(s) in the last {} s)",
                    *repeats,
                    now.duration_since(*last).as_secs()
                );
                *last = now;
                *repeats = 0;
            }
            None => {
                tracing::warn!("Kafka consumer error: {error}");
                self.seen.insert(kind, (now, 0));
            }
        }
    }
}

fn describe(partitions: &[PartitionKey]) -> String {
    if partitions.is_empty() {
        return "none".into();
    }
    partitions
        .iter()
        .map(|(topic, partition)| format!("{topic}[{partition}]"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Commits the stored offsets without waiting, its result coming back as a
/// `commit_callback` through the consumer queue (as automatic commits' do).
/// rust-rdkafka's async commit cannot serve here: librdkafka reports a plain
/// `rd_kafka_commit` only to an `offset_commit_cb`, which rust-rdkafka leaves
/// unset in favour of events.
fn commit_stored_reporting_back(
    consumer: &BaseConsumer<ConsumerHooks>,
) -> std::result::Result<(), RDKafkaErrorCode> {
    use rdkafka::bindings as native;
    let client = consumer.client().native_ptr();
    // SAFETY: `consumer` is alive for the call. The queue handle is a new
    // reference, released here; the pending commit keeps its own reference.
    // Null offsets mean the assignment's stored offsets.
    let error = unsafe {
        let queue = native::rd_kafka_queue_get_consumer(client);
        if queue.is_null() {
            return Err(RDKafkaErrorCode::UnknownGroup);
        }
        let error = native::rd_kafka_commit_queue(
            client,
            std::ptr::null(),
            queue,
            None,
            std::ptr::null_mut(),
        );
        native::rd_kafka_queue_destroy(queue);
        error
    };
    match RDKafkaErrorCode::from(error) {
        RDKafkaErrorCode::NoError => Ok(()),
        code => Err(code),
    }
}

fn commit_stored(consumer: &BaseConsumer<ConsumerHooks>, when: &str) {
    match consumer.commit_consumer_state(CommitMode::Sync) {
        Ok(()) => tracing::debug!("Offsets committed on {when}"),
        // Nothing was stored since the last commit.
        Err(KafkaError::ConsumerCommit(rdkafka::error::RDKafkaErrorCode::NoOffset)) => {}
        Err(error) => tracing::warn!("Offset commit on {when} failed: {error}"),
    }
}

/// A running consumer. Dropping it without `close` stops it too (without
/// waiting for the drain).
pub struct ConsumerHandle {
    shared: Arc<Shared>,
    stop: Mutex<Option<oneshot::Sender<()>>>,
    stopped: tokio::sync::Mutex<Option<oneshot::Receiver<()>>>,
}

impl ConsumerHandle {
    /// Creates the consumer, subscribes, and waits until the group assigns
    /// it partitions (or `join_timeout` passes). Needs a tokio runtime.
    pub async fn register(
        options: ConsumerOptions,
        handler: Arc<dyn MessageHandler>,
        sink: Arc<dyn LogSink>,
    ) -> Result<Self> {
        Self::register_with_env(options, handler, sink, |key| std::env::var(key).ok()).await
    }

    pub async fn register_with_env(
        options: ConsumerOptions,
        handler: Arc<dyn MessageHandler>,
        sink: Arc<dyn LogSink>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self> {
        options.validate()?;
        // KAFKA_CLIENT_ID names the app's producer; consumers that took it would
        // all default to one group and split each other's topics.
        let env = |key: &str| {
            if key == crate::core::config::ENV_CLIENT_ID {
                None
            } else {
                env(key)
            }
        };
        let mut client = options.client.clone();
        let default_client_id = format!("{}-consumer", options.topics[0]);
        let probe = ClientSettings::resolve(&client, &[], &default_client_id, env)?;
        let group_id = options
            .group_id
            .clone()
            .or_else(|| client.properties.get("group.id").cloned())
            .unwrap_or_else(|| format!("{}-group", probe.client_id));
        if group_id.trim().is_empty() {
            return Err(CoreError::invalid_config("groupId", "must not be empty"));
        }
        let session_ms = options.session_timeout.as_millis().to_string();
        client
            .properties
            .insert("group.id".into(), group_id.clone());
        client
            .properties
            .entry("session.timeout.ms".into())
            .or_insert(session_ms);
        let reset = if options.from_beginning {
            "earliest"
        } else {
            "latest"
        };
        client
            .properties
            .entry("auto.offset.reset".into())
            .or_insert_with(|| reset.into());
        let settings =
            ClientSettings::resolve(&client, CONSUMER_DEFAULTS, &default_client_id, env)?;
        if settings.property("enable.auto.offset.store") != Some("false") {
            return Err(CoreError::invalid_config(
                "enable.auto.offset.store",
                "must stay false: offsets are stored only after messages are handled",
            ));
        }

        let dead_letters = match options.dead_letter {
            DeadLetter::Off => None,
            _ => {
                let producer_options = ProducerOptions {
                    client: ClientOptions {
                        brokers: Some(settings.brokers.clone()),
                        client_id: Some(format!("{}-dlq", settings.client_id)),
                        // Its connect and disconnect lines would read as the consumer's own.
                        log_level: Some(settings.log_level.min(LogLevel::Warn)),
                        properties: producer_properties(&options.client.properties),
                    },
                    ..ProducerOptions::default()
                };
                Some(Arc::new(DeadLetterProducer::checked(
                    producer_options,
                    sink.clone(),
                    env,
                )?))
            }
        };

        let log = ClientLog::register(&settings.client_id, settings.log_level, sink);
        if settings.embedded {
            if options.client.brokers.is_none() {
                log.span().in_scope(|| {
                    tracing::warn!("{}", embedded::warning(&settings.brokers.join(",")))
                });
            }
            // The embedded cluster only creates topics when they are produced to;
            // a consumer that starts first would wait for metadata that never comes.
            let wanted = options
                .topics
                .iter()
                .map(|topic| (topic.clone(), embedded::DEFAULT_PARTITIONS))
                .collect();
            embedded::create_topics(wanted).await?;
        }
        let (joined, _) = watch::channel(false);
        let shared = Arc::new(Shared {
            name: Arc::from(settings.client_id.as_str()),
            group_id,
            options,
            log,
            counters: Counters::default(),
            in_flight: AtomicUsize::new(0),
            uncommitted: AtomicUsize::new(0),
            commit_pace: CommitPace::default(),
            tracker: Mutex::new(OffsetTracker::default()),
            user_paused: AtomicBool::new(false),
            backpressured: AtomicBool::new(false),
            wakeup: Arc::default(),
            closing: AtomicBool::new(false),
            joined,
            consumer: Mutex::new(None),
            assignment: Mutex::new(Vec::new()),
            hub: Mutex::new(None),
            batcher: Mutex::new(None),
            instruments: ConsumerInstruments::default(),
            connected: watch::channel(false).0,
            handle_name: OnceLock::new(),
            paused_high_watermarks: Mutex::new(HashMap::new()),
        });
        let hooks = ConsumerHooks {
            kafka: KafkaContext::with_connection_state(
                shared.span().clone(),
                shared.connected.clone(),
            ),
            shared: Arc::downgrade(&shared),
        };
        let mut consumer: BaseConsumer<ConsumerHooks> = settings
            .to_rdkafka()
            .create_with_context(hooks)
            .map_err(|error| settings.config_error(&error))?;
        // Commit results and rebalances arrive here: serve them at once rather
        // than after the idle wait, as intake waits on commits when full.
        let wakeup = shared.wakeup.clone();
        consumer.set_nonempty_callback(move || wakeup.wake());
        let topics: Vec<&str> = shared.options.topics.iter().map(String::as_str).collect();
        consumer
            .subscribe(&topics)
            .map_err(|error| CoreError::kafka("cannot subscribe", &error))?;
        let consumer = Arc::new(consumer);
        // Before the first poll, which is where partitions get assigned.
        let hub = MessageHub::new(consumer.clone(), shared.wakeup.clone())
            .map(Arc::new)
            .ok_or_else(|| CoreError::Internal("librdkafka could not create a queue".into()))?;
        if let Ok(mut slot) = shared.hub.lock() {
            *slot = Some(hub);
        }
        let _ = shared
            .handle_name
            .set(metrics::handle_name(consumer.client()));
        let source: Weak<dyn MetricsSource> = Arc::downgrade(&shared) as _;
        metrics::register(source);
        tokio::spawn(monitor_consumer(Arc::downgrade(&shared)).instrument(shared.span().clone()));
        if let Ok(mut slot) = shared.consumer.lock() {
            *slot = Some(consumer.clone());
        }
        shared.span().in_scope(|| {
            tracing::info!("Kafka consumer connected: {}", shared.name);
            for topic in &shared.options.topics {
                tracing::info!("Subscribed to topic: {topic} (group {})", shared.group_id);
            }
        });

        let runtime = tokio::runtime::Handle::current();
        let encoded_batches = match shared.options.batch {
            Some(batch)
                if shared.options.exactly_once.is_none()
                    && handler.queues_runs()
                    && handler.as_encoded().is_some() =>
            {
                Some(batch)
            }
            _ => None,
        };
        let (outlet, incoming) = match encoded_batches {
            Some(batch) => {
                let (to_dispatcher, from_poller) = mpsc::unbounded_channel();
                if let Ok(mut slot) = shared.batcher.lock() {
                    *slot = Some(Batcher::new(to_dispatcher, batch));
                }
                (Outlet::Batches, Incoming::Batches(from_poller))
            }
            None if shared.options.batch.is_none() && shared.options.exactly_once.is_none() => {
                let (to_dispatcher, from_poller) = mpsc::unbounded_channel();
                let outlet = Outlet::Lanes {
                    to_dispatcher,
                    keys: LaneKeys::new(shared.options.concurrency),
                    encode: handler.as_encoded().is_some(),
                };
                (outlet, Incoming::Lanes(from_poller))
            }
            None => {
                let (to_dispatcher, from_poller) = mpsc::unbounded_channel();
                (Outlet::Works(to_dispatcher), Incoming::Works(from_poller))
            }
        };
        let dispatcher = Dispatcher::new(shared.clone(), handler, dead_letters.clone());
        let dispatched = runtime.spawn(dispatcher.run(incoming).instrument(shared.span().clone()));
        let (stop, stop_requested) = oneshot::channel();
        let (stopped_tx, stopped) = oneshot::channel();
        let poller_shared = shared.clone();
        std::thread::Builder::new()
            .name(format!("kafka-consumer-{}", shared.name))
            .spawn(move || {
                let span = poller_shared.span().clone();
                span.in_scope(|| poll_loop(&poller_shared, consumer, outlet, stop_requested));
                // The dispatcher ends once the channel closes and its work drains.
                let _ = runtime.block_on(dispatched);
                if let Some(producer) = dead_letters.and_then(|lazy| lazy.created()) {
                    let _ = runtime.block_on(producer.disconnect(Duration::from_secs(10)));
                }
                if let Some(producer) = &poller_shared.options.exactly_once {
                    let _ = runtime.block_on(producer.disconnect(Duration::from_secs(10)));
                }
                span.in_scope(|| tracing::info!("Kafka consumer closed: {}", poller_shared.name));
                let _ = stopped_tx.send(());
            })
            .map_err(|error| {
                CoreError::Internal(format!("cannot start the consumer thread: {error}"))
            })?;

        let handle = ConsumerHandle {
            shared: shared.clone(),
            stop: Mutex::new(Some(stop)),
            stopped: tokio::sync::Mutex::new(Some(stopped)),
        };
        let mut joined = shared.joined.subscribe();
        let join_timeout = shared.options.join_timeout;
        let outcome = tokio::time::timeout(join_timeout, joined.wait_for(|joined| *joined))
            .await
            .map(|seen| seen.is_ok());
        match outcome {
            Ok(true) => Ok(handle),
            _ => {
                handle.close().await?;
                Err(CoreError::TimedOut(format!(
                    "consumer did not join group `{}` within {} ms",
                    shared.group_id,
                    join_timeout.as_millis()
                )))
            }
        }
    }

    pub fn name(&self) -> &str {
        &self.shared.name
    }

    pub fn group_id(&self) -> &str {
        &self.shared.group_id
    }

    /// Stops handing out messages; in-flight ones finish. Fetching pauses.
    pub fn pause(&self) {
        self.shared.user_paused.store(true, Ordering::Release);
        self.shared.wakeup.wake();
    }

    pub fn resume(&self) {
        self.shared.user_paused.store(false, Ordering::Release);
        self.shared.wakeup.wake();
    }

    pub fn assignment(&self) -> Vec<(String, i32)> {
        self.shared
            .assignment
            .lock()
            .map(|assignment| assignment.clone())
            .unwrap_or_default()
    }

    pub fn stats(&self) -> ConsumerStats {
        self.shared.stats()
    }

    /// Counters, processing time, lag and librdkafka's latest statistics.
    pub fn metrics(&self) -> ConsumerMetrics {
        self.shared.metrics()
    }

    /// Stops fetching, lets in-flight messages finish (up to the drain
    /// timeout), commits, and leaves the group. Idempotent.
    pub async fn close(&self) -> Result<()> {
        self.shared.closing.store(true, Ordering::Release);
        self.shared.wakeup.wake();
        if let Some(stop) = self.stop.lock().ok().and_then(|mut guard| guard.take()) {
            let _ = stop.send(());
        }
        let mut stopped = self.stopped.lock().await;
        if let Some(receiver) = stopped.take() {
            let _ = receiver.await;
        }
        Ok(())
    }
}

impl Drop for ConsumerHandle {
    fn drop(&mut self) {
        self.shared.closing.store(true, Ordering::Release);
        self.shared.wakeup.wake();
        if let Some(stop) = self.stop.get_mut().ok().and_then(Option::take) {
            let _ = stop.send(());
        }
    }
}

/// What an exactly-once consumer's transactional producer is made of.
pub struct ExactlyOnce {
    pub transactional_id: String,
    pub transaction_timeout: Option<Duration>,
    /// librdkafka properties over the producer's defaults.
    pub properties: BTreeMap<String, String>,
}

/// The transactional producer for [`ConsumerOptions::exactly_once`]: the
/// consumer's brokers and security settings, its own client id. Its
/// `transactional_id` must stay the same when the instance restarts (so the
/// restart fences the old one and aborts what it left open at once) and
/// differ between the instances running side by side.
pub fn exactly_once_producer(
    options: &ConsumerOptions,
    exactly_once: ExactlyOnce,
    deliveries: Option<Arc<dyn DeliverySink>>,
    sink: Arc<dyn LogSink>,
) -> Result<Arc<Producer>> {
    let client_id = options.client.client_id.clone().unwrap_or_else(|| {
        format!(
            "{}-consumer",
            options.topics.first().map_or("", String::as_str)
        )
    });
    let mut properties = producer_properties(&options.client.properties);
    properties.extend(exactly_once.properties);
    let producer_options = ProducerOptions {
        client: ClientOptions {
            brokers: options.client.brokers.clone(),
            client_id: Some(format!("{client_id}-txn")),
            log_level: options.client.log_level,
            properties,
        },
        deliveries,
        transactional_id: Some(exactly_once.transactional_id),
        transaction_timeout: exactly_once.transaction_timeout,
        ..ProducerOptions::default()
    };
    Producer::new(producer_options, sink)
}

/// Producer settings for the dead-letter producer: the consumer's security
/// settings carry over, consumer-only ones do not. Its own size limit is
/// librdkafka's largest, so what was consumed can be parked whole wherever the
/// broker accepts it.
fn producer_properties(consumer: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    let mut properties: BTreeMap<String, String> = consumer
        .iter()
        .filter(|(key, _)| {
            key.starts_with("security.") || key.starts_with("sasl.") || key.starts_with("ssl.")
        })
        .map(|(key, value)| (key.clone(), value.clone()))
        .collect();
    properties.insert("message.max.bytes".into(), "1000000000".into());
    properties
}

fn watermark_high(
    consumer: &BaseConsumer<ConsumerHooks>,
    topic: &str,
    partition: i32,
) -> Option<i64> {
    let topic = std::ffi::CString::new(topic).ok()?;
    let (mut low, mut high) = (-1i64, -1i64);
    // SAFETY: `consumer` is alive for the call; librdkafka reads the cached
    // watermarks of the partition (no network I/O) into the two out-params.
    let error = unsafe {
        rdkafka::bindings::rd_kafka_get_watermark_offsets(
            consumer.client().native_ptr(),
            topic.as_ptr(),
            partition,
            &mut low,
            &mut high,
        )
    };
    (error == rdkafka::bindings::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR && high >= 0)
        .then_some(high)
}

/// A received message on its way to the dispatcher, with its validation.
struct Work {
    message: Arc<ReceivedMessage>,
    generation: u64,
    verdict: WorkVerdict,
}

/// How the handler sees a valid message, or why it is invalid (code, reason).
type WorkVerdict = std::result::Result<ValueForm, (String, String)>;

/// Where the poll thread hands on the messages it takes.
enum Outlet {
    /// As they come: the dispatcher cuts them into batches (or
    /// transactions).
    Works(mpsc::UnboundedSender<Vec<Work>>),
    /// Per message: cut into the lanes' runs, encoded when `encode`.
    Lanes {
        to_dispatcher: mpsc::UnboundedSender<Vec<LaneRun>>,
        keys: LaneKeys,
        encode: bool,
    },
    /// Into the batch `Shared::batcher` is gathering.
    Batches,
}

/// What the dispatcher receives, as the poll thread hands it on.
enum Incoming {
    Works(mpsc::UnboundedReceiver<Vec<Work>>),
    Lanes(mpsc::UnboundedReceiver<Vec<LaneRun>>),
    Batches(mpsc::UnboundedReceiver<EncodedBatch>),
}

fn poll_loop(
    shared: &Arc<Shared>,
    consumer: Arc<BaseConsumer<ConsumerHooks>>,
    outlet: Outlet,
    mut stop_requested: oneshot::Receiver<()>,
) {
    let max_in_flight = shared.options.max_in_flight;
    let mut errors = ErrorReporter::default();
    let mut fetching_paused = false;
    let hub = shared.hub.lock().ok().and_then(|guard| guard.clone());
    let mut from_hub: Vec<HubMessage> = Vec::new();
    let mut last_commit_retry = Instant::now();
    loop {
        let stop = !matches!(
            stop_requested.try_recv(),
            Err(oneshot::error::TryRecvError::Empty)
        );
        if stop || shared.closing.load(Ordering::Acquire) {
            break;
        }
        let user_paused = shared.user_paused.load(Ordering::Acquire);
        if user_paused != fetching_paused {
            if let Ok(assignment) = consumer.assignment() {
                let outcome = if user_paused {
                    consumer.pause(&assignment)
                } else {
                    consumer.resume(&assignment)
                };
                match outcome {
                    Ok(()) => {
                        fetching_paused = user_paused;
                        tracing::info!(
                            "Kafka consumer {}",
                            if user_paused { "paused" } else { "resumed" }
                        );
                    }
                    Err(error) => tracing::warn!(
                        "could not {} fetching: {error}",
                        if user_paused { "pause" } else { "resume" }
                    ),
                }
            }
        }

        // Take messages only while there is room: the rest wait in
        // librdkafka's bounded prefetch, which stops fetching when full.
        // Handed over once per round: a channel send per message would wake
        // the dispatcher (a futex call) per message.
        let mut idle = true;
        let held =
            shared.in_flight.load(Ordering::Acquire) + shared.uncommitted.load(Ordering::Acquire);
        let room = max_in_flight.saturating_sub(held);
        shared.backpressured.store(room == 0, Ordering::Release);
        if room == 0 {
            if shared.commit_pace.any_out() {
                // Full of finished messages waiting for commits, not of
                // work: the handlers are about to run out.
                if shared.in_flight.load(Ordering::Acquire) <= max_in_flight / 8 {
                    shared.commit_pace.work_ran_low();
                }
            } else if last_commit_retry.elapsed() >= COMMIT_RETRY_INTERVAL {
                // Full, and an early commit failed or was never due: ask
                // again, at a pace that does not flood a struggling coordinator.
                last_commit_retry = Instant::now();
                shared.commit_again_if_held_up(&consumer);
            }
        }
        if let (false, true, Some(hub)) = (user_paused, room > 0, &hub) {
            hub.take(room.min(MAX_TAKEN_PER_ROUND), &mut from_hub);
            let views: Vec<MessageView<'_>> = from_hub
                .iter()
                .map(HubMessage::view)
                .filter(|view| match view.error() {
                    Some(error) => {
                        errors.report(&error);
                        false
                    }
                    None => true,
                })
                .collect();
            idle = views.is_empty();
            let handed_on = hand_on(shared, &outlet, &views);
            drop(views);
            from_hub.clear();
            if !handed_on {
                break;
            }
        }
        let mut batch_due_in = None;
        if let Outlet::Batches = outlet {
            match shared.with_batcher(|batcher| batcher.send_if_due().then(|| batcher.due_in())) {
                // Nothing due, or sent on: the wait below ends by the open batch's end.
                Some(Some(due_in)) => batch_due_in = due_in,
                // The batcher or the dispatcher is gone.
                _ => break,
            }
        }
        // Serve rebalances, errors and logs; when idle, wait for messages,
        // room, the next events, or the open batch's end.
        match consumer.poll(Duration::ZERO) {
            None => {
                // Checked only when idle: a busy round comes back at once anyway.
                if idle && !hub.as_ref().is_some_and(|hub| hub.events_waiting()) {
                    shared
                        .wakeup
                        .wait(batch_due_in.map_or(IDLE_WAIT, |due| due.min(IDLE_WAIT)));
                }
            }
            Some(Err(error)) => errors.report(&error),
            // A partition not attached to the hub (yet): handle its message all the same.
            Some(Ok(message)) => {
                if !hand_on(shared, &outlet, &[MessageView::of(&message)]) {
                    break;
                }
            }
        }
    }
    drop(from_hub);
    // The hub holds the consumer: only its last holder may close it.
    drop(hub);
    let hub = shared.hub.lock().ok().and_then(|mut slot| slot.take());
    finish_close(shared, consumer, outlet, hub);
}

/// Closing: no more fetching; let what was handed out finish, commit, leave.
fn finish_close(
    shared: &Arc<Shared>,
    consumer: Arc<BaseConsumer<ConsumerHooks>>,
    outlet: Outlet,
    hub: Option<Arc<MessageHub>>,
) {
    if let Ok(assignment) = consumer.assignment() {
        let _ = consumer.pause(&assignment);
    }
    // Closing the channel (the batcher holds its sender) lets the
    // dispatcher end once what was handed on is done.
    drop(outlet);
    let batcher = shared.batcher.lock().ok().and_then(|mut slot| slot.take());
    if let Some(mut batcher) = batcher {
        batcher.flush();
    }
    shared.ask_handlers_to_yield();
    let deadline = Instant::now() + shared.options.drain_timeout;
    while shared.in_flight.load(Ordering::Acquire) > 0 && Instant::now() < deadline {
        // Keep serving librdkafka's callbacks while waiting.
        let _ = consumer.poll(Duration::from_millis(10));
    }
    let left = shared.in_flight.load(Ordering::Acquire);
    if left > 0 {
        tracing::warn!("Closing with {left} message(s) still in flight after the drain timeout; they will be redelivered");
    }
    commit_stored(&consumer, "close");
    // The hub holds the consumer: release it before the consumer closes.
    drop(hub);
    consumer.unsubscribe();
    if let Ok(mut slot) = shared.consumer.lock() {
        slot.take();
    }
    // The last reference: dropping it closes the consumer (leaves the group) here.
    drop(consumer);
}

/// Registers taken messages and hands them on to the dispatcher; false once
/// the dispatcher is gone.
fn hand_on(shared: &Shared, outlet: &Outlet, messages: &[MessageView<'_>]) -> bool {
    let accepted = accept(shared, messages);
    if accepted.is_empty() {
        return true;
    }
    match outlet {
        Outlet::Works(to_dispatcher) => {
            let works = accepted
                .into_iter()
                .map(|(message, topic, generation)| work_of(shared, message, topic, generation))
                .collect();
            to_dispatcher.send(works).is_ok()
        }
        Outlet::Lanes {
            to_dispatcher,
            keys,
            encode,
        } => to_dispatcher
            .send(lanes::runs_of(shared, keys, *encode, accepted))
            .is_ok(),
        Outlet::Batches => shared
            .with_batcher(|batcher| {
                prefetching(accepted).all(|(message, topic, generation)| {
                    batcher.add(shared, message, topic, generation)
                })
            })
            .unwrap_or(false),
    }
}

/// Registers received messages as work for the dispatcher, leaving out those
/// whose partition is not (or no longer) this member's: the ones to hand on,
/// with their topic and partition generation. The offset tracker
/// is locked once for them all and looked up once per partition, and the
/// in-flight count is raised once: per message, the lock, two lookups, two
/// shared counters and a copy of the topic name cost the poll thread more
/// than copying the value did.
fn accept<'m>(shared: &Shared, messages: &[MessageView<'m>]) -> Vec<Accepted<'m>> {
    let mut accepted: Vec<Accepted<'_>> = Vec::with_capacity(messages.len());
    if let Ok(mut tracker) = shared.tracker.lock() {
        let mut rest = messages;
        while let Some(first) = rest.first().copied() {
            let length = rest
                .iter()
                .take_while(|message| message.same_partition(first))
                .count();
            let (partition_messages, later) = rest.split_at(length);
            rest = later;
            let name = first.topic();
            let topic = match accepted.last() {
                Some((_, topic, _)) if **topic == *name => topic.clone(),
                _ => Arc::from(name.as_str()),
            };
            let key = (name, first.partition());
            // Not (or no longer) ours: the partition's owner will receive them.
            let Some(offsets) = tracker.partition_mut(&key) else {
                continue;
            };
            for &message in partition_messages {
                offsets.received(message.offset());
                accepted.push((message, topic.clone(), offsets.generation));
            }
        }
    }
    if !accepted.is_empty() {
        shared.in_flight.fetch_add(accepted.len(), Ordering::AcqRel);
        shared
            .counters
            .received
            .fetch_add(accepted.len() as u64, Ordering::Relaxed);
    }
    accepted
}

/// A registered message: librdkafka's, its topic and its partition's generation.
type Accepted<'m> = (MessageView<'m>, Arc<str>, u64);

/// Accepted messages in order, each one's successor prefetched as it is
/// taken (see [`MessageView::prefetch_payload`]).
fn prefetching<'m>(accepted: Vec<Accepted<'m>>) -> impl Iterator<Item = Accepted<'m>> {
    let mut accepted = accepted.into_iter().peekable();
    std::iter::from_fn(move || {
        let taken = accepted.next()?;
        if let Some((next, _, _)) = accepted.peek() {
            next.prefetch_payload();
        }
        Some(taken)
    })
}

/// A registered message, copied out of librdkafka, with its validation.
fn work_of(shared: &Shared, message: MessageView<'_>, topic: Arc<str>, generation: u64) -> Work {
    let payload = message.payload();
    let mut received = received_of(message, topic);
    received.payload = payload.map(Bytes::copy_from_slice);
    Work {
        message: Arc::new(received),
        generation,
        verdict: verdict_of(shared, payload),
    }
}

/// A registered message's metadata copied out of librdkafka; its payload is
/// left to the caller, which may make it a view rather than a copy.
fn received_of(message: MessageView<'_>, topic: Arc<str>) -> ReceivedMessage {
    let offset = message.offset();
    tracing::debug!(
        "Received message from topic: {topic}, partition: {}, offset: {offset}",
        message.partition()
    );
    ReceivedMessage {
        topic,
        partition: message.partition(),
        offset,
        key: message.key().map(<[u8]>::to_vec),
        payload: None,
        headers: message.headers(),
        timestamp: message.timestamp(),
    }
}

/// Validates a payload against the consumer's schema and size limit.
fn verdict_of(shared: &Shared, payload: Option<&[u8]>) -> WorkVerdict {
    let size = payload.map_or(0, <[u8]>::len);
    let max_value_bytes = shared.options.max_value_bytes;
    // Checked before decoding: an oversized value is never parsed.
    if size > max_value_bytes {
        return Err((
            schema::ERR_VALUE_TOO_LARGE.to_string(),
            format!("value of {size} bytes exceeds maxValueBytes ({max_value_bytes})"),
        ));
    }
    match shared.options.schema.decode(payload) {
        Ok(Decoded::Raw(_)) => Ok(ValueForm::Raw),
        Ok(Decoded::Json(_)) => Ok(ValueForm::Json),
        Ok(Decoded::Null) => Ok(ValueForm::Null),
        Err(rejection) => Err((rejection.code.to_string(), rejection.message)),
    }
}

/// The dead-letter topic's producer, created when the first message is
/// parked: most consumers never park one, and a producer holds four threads
/// and about half a megabyte (ten idle groups: 40 threads and 5 MB,
/// bench/README.md). Its settings are checked when the consumer registers,
/// so a bad property still fails there.
struct DeadLetterProducer {
    options: ProducerOptions,
    sink: Arc<dyn LogSink>,
    /// The environment variables the check read, replayed at creation.
    env: HashMap<String, Option<String>>,
    producer: Mutex<Option<Arc<Producer>>>,
}

impl DeadLetterProducer {
    fn checked(
        options: ProducerOptions,
        sink: Arc<dyn LogSink>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self> {
        let read = Mutex::new(HashMap::new());
        Producer::check_with_env(&options, |key| {
            let value = env(key);
            if let Ok(mut read) = read.lock() {
                read.insert(key.to_string(), value.clone());
            }
            value
        })?;
        Ok(DeadLetterProducer {
            options,
            sink,
            env: read.into_inner().unwrap_or_default(),
            producer: Mutex::default(),
        })
    }

    /// The producer, created on first use (again after a failed attempt).
    fn producer(&self) -> Result<Arc<Producer>> {
        let mut slot = self
            .producer
            .lock()
            .map_err(|_| CoreError::Internal("dead-letter producer lock poisoned".into()))?;
        if let Some(producer) = slot.as_ref() {
            return Ok(producer.clone());
        }
        let producer = Producer::with_env(self.options.clone(), self.sink.clone(), |key| {
            self.env.get(key).cloned().flatten()
        })?;
        *slot = Some(producer.clone());
        Ok(producer)
    }

    /// The producer if a message was parked.
    fn created(&self) -> Option<Arc<Producer>> {
        self.producer.lock().ok()?.clone()
    }
}

/// Runs the handler for received messages: per-key lanes up to
/// `concurrency`, or sequential batches.
struct Dispatcher {
    shared: Arc<Shared>,
    handler: Arc<dyn MessageHandler>,
    dead_letters: Option<Arc<DeadLetterProducer>>,
}

#[derive(Default)]
struct Lanes {
    queues: FastMap<LaneKey, VecDeque<LaneRun>>,
    active: FastSet<LaneKey>,
    waiting: VecDeque<LaneKey>,
}

/// A batch whose valid messages were handed to the handler (unless their
/// partitions were revoked), with their first attempt's outcome to come.
struct StartedBatch {
    valid: Vec<Work>,
    invalid: Vec<Work>,
    first_attempt: Option<HandlerFuture>,
}

/// Cuts what arrives into batches of at most `max_messages`, each waiting at
/// most `max_wait` after its first message for more.
struct Gatherer<'a> {
    incoming: &'a mut mpsc::UnboundedReceiver<Vec<Work>>,
    batch: BatchOptions,
    /// What arrived beyond the batches taken so far.
    waiting: VecDeque<Work>,
    open: bool,
}

impl<'a> Gatherer<'a> {
    fn new(incoming: &'a mut mpsc::UnboundedReceiver<Vec<Work>>, batch: BatchOptions) -> Self {
        Gatherer {
            incoming,
            batch,
            waiting: VecDeque::new(),
            open: true,
        }
    }

    /// A batch of `max_messages` if that many have arrived, without waiting.
    fn full_batch(&mut self) -> Option<Vec<Work>> {
        while self.open && self.waiting.len() < self.batch.max_messages {
            match self.incoming.try_recv() {
                Ok(works) => self.waiting.extend(works),
                Err(mpsc::error::TryRecvError::Empty) => break,
                Err(mpsc::error::TryRecvError::Disconnected) => self.open = false,
            }
        }
        (self.waiting.len() >= self.batch.max_messages)
            .then(|| self.waiting.drain(..self.batch.max_messages).collect())
    }

    /// The next batch; `None` once the consumer stopped and nothing is left.
    /// Cancel-safe: messages received before a cancellation stay for the
    /// next call.
    async fn next_batch(&mut self) -> Option<Vec<Work>> {
        while self.waiting.is_empty() {
            if !self.open {
                return None;
            }
            match self.incoming.recv().await {
                Some(works) => self.waiting.extend(works),
                None => self.open = false,
            }
        }
        let deadline = tokio::time::Instant::now() + self.batch.max_wait;
        while self.open && self.waiting.len() < self.batch.max_messages {
            match tokio::time::timeout_at(deadline, self.incoming.recv()).await {
                Ok(Some(works)) => self.waiting.extend(works),
                Ok(None) => self.open = false,
                Err(_) => break,
            }
        }
        let take = self.waiting.len().min(self.batch.max_messages);
        Some(self.waiting.drain(..take).collect())
    }
}

/// Where pipelined batches come from.
enum BatchFeed<'a> {
    /// Cut here from the messages as they arrive.
    Gathered(Gatherer<'a>),
    /// Cut and encoded by the poll thread.
    Encoded(&'a mut mpsc::UnboundedReceiver<EncodedBatch>),
}

enum CutBatch {
    Works(Vec<Work>),
    Encoded(EncodedBatch),
}

impl BatchFeed<'_> {
    /// The next batch; `None` once the consumer stopped and nothing is left.
    async fn next(&mut self) -> Option<CutBatch> {
        match self {
            BatchFeed::Gathered(gatherer) => gatherer.next_batch().await.map(CutBatch::Works),
            BatchFeed::Encoded(incoming) => incoming.recv().await.map(CutBatch::Encoded),
        }
    }

    /// A batch to hand over ahead, if one is ready now. Of what arrives,
    /// only a batch that is already full: waiting for one to fill while the
    /// current one runs wakes the dispatcher for every poll of the consumer.
    /// Every batch the poll thread hands on is complete.
    fn ready(&mut self) -> Option<CutBatch> {
        match self {
            BatchFeed::Gathered(gatherer) => gatherer.full_batch().map(CutBatch::Works),
            BatchFeed::Encoded(incoming) => incoming.try_recv().ok().map(CutBatch::Encoded),
        }
    }
}

/// The deliveries of `works` for attempt `attempt`.
fn deliveries_of<'w>(works: impl IntoIterator<Item = &'w Work>, attempt: u32) -> Vec<Delivery> {
    works
        .into_iter()
        .map(|work| Delivery {
            message: work.message.clone(),
            form: work.verdict.clone().unwrap_or(ValueForm::Raw),
            attempt,
        })
        .collect()
}

impl Dispatcher {
    fn new(
        shared: Arc<Shared>,
        handler: Arc<dyn MessageHandler>,
        dead_letters: Option<Arc<DeadLetterProducer>>,
    ) -> Arc<Self> {
        Arc::new(Dispatcher {
            shared,
            handler,
            dead_letters,
        })
    }

    async fn run(self: Arc<Self>, incoming: Incoming) {
        let mut incoming = match incoming {
            Incoming::Batches(mut batches) => {
                return self
                    .run_pipelined_batches(BatchFeed::Encoded(&mut batches))
                    .await
            }
            Incoming::Lanes(mut runs) => return self.run_lanes(&mut runs).await,
            Incoming::Works(works) => works,
        };
        let options = &self.shared.options;
        match (&options.exactly_once, options.batch) {
            (None, Some(batch)) if self.handler.queues_runs() => {
                self.run_pipelined_batches(BatchFeed::Gathered(Gatherer::new(&mut incoming, batch)))
                    .await
            }
            (None, Some(batch)) => self.run_batches(&mut incoming, batch, None).await,
            // Runs of what arrived, in arrival order: with exactly-once, one
            // transaction each. (Per message without it, the poll thread
            // cuts the lanes' runs.)
            (transactional, batch) => {
                let runs = batch.unwrap_or(BatchOptions {
                    max_messages: MAX_SEQUENCE,
                    max_wait: Duration::ZERO,
                });
                self.run_batches(&mut incoming, runs, transactional.as_ref())
                    .await
            }
        }
    }

    async fn run_lanes(self: &Arc<Self>, incoming: &mut mpsc::UnboundedReceiver<Vec<LaneRun>>) {
        let lanes = Arc::new(Mutex::new(Lanes::default()));
        let (lane_done, mut lanes_done) = mpsc::unbounded_channel::<()>();
        // At least 1: `ConsumerOptions::validate` refuses 0.
        let concurrency = self.shared.options.concurrency;
        let mut running = 0usize;
        let mut open = true;
        while open || running > 0 {
            tokio::select! {
                runs = incoming.recv(), if open => match runs {
                    Some(runs) => {
                        if let Ok(mut lanes) = lanes.lock() {
                            for run in runs {
                                let key = run.key;
                                let queue = lanes.queues.entry(key).or_default();
                                queue.push_back(run);
                                if queue.len() == 1 && !lanes.active.contains(&key) {
                                    lanes.waiting.push_back(key);
                                }
                            }
                        }
                    }
                    None => open = false,
                },
                Some(()) = lanes_done.recv(), if running > 0 => running -= 1,
            }
            // Start lanes while there is room.
            while running < concurrency {
                let next = lanes.lock().ok().and_then(|mut lanes| {
                    let key = lanes.waiting.pop_front()?;
                    lanes.active.insert(key);
                    Some(key)
                });
                let Some(key) = next else { break };
                running += 1;
                let dispatcher = self.clone();
                let lanes = lanes.clone();
                let done = lane_done.clone();
                tokio::spawn(
                    async move {
                        dispatcher.drain_lane(&lanes, key).await;
                        let _ = done.send(());
                    }
                    .instrument(tracing::Span::current()),
                );
            }
        }
    }

    async fn drain_lane(&self, lanes: &Mutex<Lanes>, key: LaneKey) {
        loop {
            let run = match lanes.lock() {
                Ok(mut lanes) => match lanes.queues.get_mut(&key).and_then(lanes::take_joined) {
                    Some(run) => run,
                    None => {
                        lanes.queues.remove(&key);
                        lanes.active.remove(&key);
                        return;
                    }
                },
                Err(_) => return,
            };
            match run.encoded {
                Some(encoded) if self.all_valid_and_current(&run.works) => {
                    self.handle_run(run.works, Some(encoded)).await
                }
                _ => self.process_in_order(run.works).await,
            }
        }
    }

    /// Whether every message is valid and of a partition still assigned
    /// since it arrived: then a run's first attempt is the poll thread's
    /// encoding of all of it.
    fn all_valid_and_current(&self, works: &[Work]) -> bool {
        if works.iter().any(|work| work.verdict.is_err()) {
            return false;
        }
        let Ok(tracker) = self.shared.tracker.lock() else {
            return false;
        };
        let mut current = CurrentPartitions::new(&tracker);
        works.iter().all(|work| current.hold(work))
    }

    /// Handles a lane's messages one after the other: runs of valid messages
    /// go to the handler as one sequence; a failure is retried (then parked)
    /// before the messages after it are tried.
    async fn process_in_order(&self, works: Vec<Work>) {
        let mut pending = works.into_iter().peekable();
        while pending.peek().is_some() {
            let mut run = Vec::new();
            let mut revoked = Vec::new();
            {
                let tracker = self.shared.tracker.lock();
                let mut current = tracker.as_deref().ok().map(CurrentPartitions::new);
                while let Some(work) = pending.next_if(|work| work.verdict.is_ok()) {
                    if current.as_mut().is_none_or(|current| current.hold(&work)) {
                        run.push(work);
                    } else {
                        revoked.push(work);
                    }
                }
            }
            // The partition's new owner receives these again.
            for work in revoked {
                self.shared.finish(&work.message, work.generation);
            }
            self.handle_run(run, None).await;
            if let Some(invalid) = pending.next_if(|work| work.verdict.is_err()) {
                self.process(vec![invalid]).await;
            }
        }
    }

    /// Hands a run of valid messages to the handler (`encoded`, when given,
    /// is its first attempt already encoded); after a failure, the failed
    /// message is retried on its own, then the rest handed over again.
    async fn handle_run(&self, mut run: Vec<Work>, mut encoded: Option<EncodedDeliveries>) {
        while !run.is_empty() {
            let started = Instant::now();
            let outcome = match (encoded.take(), self.handler.as_encoded()) {
                (Some(encoded), Some(handler)) => handler.handle_encoded(encoded, false),
                _ => self.handler.handle(deliveries_of(&run, 1)),
            }
            .await;
            let handled = match &outcome {
                Ok(()) => run.len(),
                Err(Interrupted::Failed(failure)) => failure.index,
                Err(Interrupted::Yielded { index }) => *index,
            }
            .min(run.len());
            let attempted = match &outcome {
                Err(Interrupted::Failed(_)) => (handled + 1).min(run.len()),
                _ => handled,
            };
            self.shared.handled_in(started.elapsed(), attempted);
            self.shared
                .counters
                .processed
                .fetch_add(handled as u64, Ordering::Relaxed);
            let rest = run.split_off(handled);
            self.shared
                .finish_all(run.iter().map(|work| (&*work.message, work.generation)));
            run = rest;
            let Err(Interrupted::Failed(failure)) = outcome else {
                continue;
            };
            if run.is_empty() {
                return;
            }
            let failed = run.remove(0);
            self.retry_after_failure(&failed, failure).await;
            self.shared.finish(&failed.message, failed.generation);
        }
    }

    /// A message whose first attempt failed inside a sequence: retried on its
    /// own with backoff, then parked.
    async fn retry_after_failure(&self, work: &Work, failure: HandlerFailure) {
        let works = std::slice::from_ref(work);
        if self.shared.options.retry.retries == 0 || self.shared.closing.load(Ordering::Acquire) {
            tracing::error!(
                "Handler failed for {} after 1 attempt(s): {}",
                describe_works(works),
                failure.message
            );
            return self
                .park(work, "ERR_HANDLER_FAILED", &failure.message, 1)
                .await;
        }
        let pause = self.shared.options.retry.backoff(1);
        tracing::warn!(
            "Handler failed for {} (attempt 1): {}; retrying in {} ms",
            describe_works(works),
            failure.message,
            pause.as_millis()
        );
        self.shared.counters.retried.fetch_add(1, Ordering::Relaxed);
        tokio::time::sleep(pause).await;
        self.handle_with_retries(works, 2, None).await;
    }

    /// Gathers up to `batch.max_messages` of what arrives, waiting at most
    /// `batch.max_wait` (with none, whatever is there), and handles each
    /// batch before the next: in a transaction of `transactional`, if given.
    async fn run_batches(
        &self,
        incoming: &mut mpsc::UnboundedReceiver<Vec<Work>>,
        batch: BatchOptions,
        transactional: Option<&Arc<Producer>>,
    ) {
        let mut gatherer = Gatherer::new(incoming, batch);
        while let Some(works) = gatherer.next_batch().await {
            match transactional {
                Some(producer) => self.transact(producer, works).await,
                None => self.process(works).await,
            }
        }
    }

    /// As `run_batches`, but the next batch is gathered, and handed over
    /// to be started after the current one, while the current one runs:
    /// the handler goes from one batch to the next without waiting for its
    /// outcome to reach the dispatcher and the next batch to come back. If
    /// the current batch fails, the handler does not start the next one,
    /// which is handed over again once the current one has been retried (or
    /// parked), so batches are still handled strictly in order.
    async fn run_pipelined_batches(&self, mut feed: BatchFeed<'_>) {
        let mut ahead: Option<StartedBatch> = None;
        // Whether the last batch ran at its first hand-over. If not, the one
        // handed over ahead of its outcome was not started, and nothing may
        // go ahead until that one has been handed over again: it would be
        // started before it.
        let mut in_step = true;
        loop {
            let current = match ahead.take() {
                Some(started) => started,
                None => match feed.next().await {
                    Some(batch) => self.start_cut(batch, false),
                    None => return,
                },
            };
            if in_step {
                ahead = feed.ready().map(|batch| self.start_cut(batch, true));
            }
            in_step = self.complete(current).await;
        }
    }

    fn start_cut(&self, batch: CutBatch, after_previous: bool) -> StartedBatch {
        match batch {
            CutBatch::Works(works) => self.start(works, after_previous),
            CutBatch::Encoded(batch) => self.start_encoded(batch, after_previous),
        }
    }

    /// As `start`, handing the batch's valid messages over as the poll
    /// thread encoded them.
    fn start_encoded(&self, batch: EncodedBatch, after_previous: bool) -> StartedBatch {
        let EncodedBatch { works, encoded } = batch;
        match self.handler.as_encoded() {
            Some(handler) => {
                self.start_with(works, |_| handler.handle_encoded(encoded, after_previous))
            }
            None => self.start(works, after_previous),
        }
    }

    /// Handles messages (one, or a batch): invalid ones go to the dead-letter
    /// topic at once; valid ones get the handler with retries, then the
    /// dead-letter topic. Every message's offset is released at the end.
    async fn process(&self, works: Vec<Work>) {
        self.complete(self.start(works, false)).await;
    }

    /// Hands a batch's valid messages to the handler (first attempt), unless
    /// their partitions were revoked since they arrived: `after_previous`
    /// queues them behind the batch handed over before (see
    /// [`MessageHandler::handle_after`]).
    fn start(&self, works: Vec<Work>, after_previous: bool) -> StartedBatch {
        self.start_with(works, |valid| {
            let deliveries = deliveries_of(valid, 1);
            if after_previous {
                self.handler.handle_after(deliveries)
            } else {
                self.handler.handle(deliveries)
            }
        })
    }

    /// Splits a batch into valid and invalid messages and hands the valid
    /// ones over with `hand_over`, unless there are none or their
    /// partitions were revoked since they arrived.
    fn start_with(
        &self,
        works: Vec<Work>,
        hand_over: impl FnOnce(&[Work]) -> HandlerFuture,
    ) -> StartedBatch {
        let (valid, invalid): (Vec<Work>, Vec<Work>) =
            works.into_iter().partition(|work| work.verdict.is_ok());
        let first_attempt =
            (!valid.is_empty() && !self.skip_if_revoked(&valid)).then(|| hand_over(&valid));
        StartedBatch {
            valid,
            invalid,
            first_attempt,
        }
    }

    /// Parks a started batch's invalid messages, sees its valid ones through
    /// retries (then the dead-letter topic), and releases every offset.
    /// False when the handler did not run the batch when first handed over:
    /// it failed, or it was not started.
    async fn complete(&self, batch: StartedBatch) -> bool {
        let StartedBatch {
            valid,
            invalid,
            first_attempt,
        } = batch;
        for work in &invalid {
            if let Err((code, reason)) = &work.verdict {
                tracing::warn!(
                    "Invalid message from topic: {}, partition: {}, offset: {}: {reason}",
                    work.message.topic,
                    work.message.partition,
                    work.message.offset
                );
                self.park(work, code, reason, 0).await;
            }
        }
        let ran_at_once = match first_attempt {
            Some(first_attempt) => {
                self.handle_with_retries(&valid, 1, Some(first_attempt))
                    .await
            }
            None => true,
        };
        self.shared.finish_all(
            invalid
                .iter()
                .chain(valid.iter())
                .map(|work| (&*work.message, work.generation)),
        );
        ran_at_once
    }

    /// Messages of a partition revoked since they arrived are not handled:
    /// the partition's new owner receives them again.
    fn skip_if_revoked(&self, works: &[Work]) -> bool {
        let Ok(tracker) = self.shared.tracker.lock() else {
            return false;
        };
        let mut current = CurrentPartitions::new(&tracker);
        works.iter().all(|work| !current.hold(work))
    }

    /// Runs the handler on `works` from attempt `first_attempt` until it
    /// succeeds or the retries are spent (then parks them); `handed_over` is
    /// that first attempt when it was already handed to the handler. True
    /// when the first call handled them.
    async fn handle_with_retries(
        &self,
        works: &[Work],
        first_attempt: u32,
        mut handed_over: Option<HandlerFuture>,
    ) -> bool {
        let retry = self.shared.options.retry;
        let mut attempt = first_attempt;
        let mut first_call = true;
        loop {
            let running = match handed_over.take() {
                Some(running) => running,
                None => self.handler.handle(deliveries_of(works, attempt)),
            };
            // A batch handed over ahead waited for the one before it, which
            // has finished by now: its handling time starts here.
            let started = Instant::now();
            let outcome = running.await;
            if !matches!(outcome, Err(Interrupted::Yielded { .. })) {
                self.shared.handled_in(started.elapsed(), works.len());
            }
            match outcome {
                // Single messages and batches never yield, but a batch handed
                // over ahead is not started when the one before it failed:
                // run it (again) now.
                Err(Interrupted::Yielded { .. }) => {
                    first_call = false;
                    continue;
                }
                Ok(()) => {
                    self.shared
                        .counters
                        .processed
                        .fetch_add(works.len() as u64, Ordering::Relaxed);
                    return first_call;
                }
                Err(Interrupted::Failed(failure))
                    if attempt <= retry.retries && !self.shared.closing.load(Ordering::Acquire) =>
                {
                    let pause = retry.backoff(attempt);
                    tracing::warn!(
                        "Handler failed for {} (attempt {attempt}): {}; retrying in {} ms",
                        describe_works(works),
                        failure.message,
                        pause.as_millis()
                    );
                    self.shared
                        .counters
                        .retried
                        .fetch_add(works.len() as u64, Ordering::Relaxed);
                    tokio::time::sleep(pause).await;
                    attempt += 1;
                    first_call = false;
                }
                Err(Interrupted::Failed(failure)) => {
                    tracing::error!(
                        "Handler failed for {} after {attempt} attempt(s): {}",
                        describe_works(works),
                        failure.message
                    );
                    for work in works {
                        self.park(work, "ERR_HANDLER_FAILED", &failure.message, attempt)
                            .await;
                    }
                    return false;
                }
            }
        }
    }

    /// Writes a message to the dead-letter topic, retrying until it is
    /// acknowledged (so its offset may be stored), or skips it when the
    /// dead-letter topic is off.
    async fn park(&self, work: &Work, code: &str, reason: &str, attempts: u32) {
        let message = &work.message;
        let (Some(dead_letters), Some(mut outgoing)) = (
            &self.dead_letters,
            self.dead_letter_record(work, code, reason, attempts),
        ) else {
            self.shared.counters.skipped.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                "Skipped message from topic: {}, partition: {}, offset: {} ({code})",
                message.topic,
                message.partition,
                message.offset
            );
            return;
        };
        let mut failures = 0u32;
        loop {
            let sent = match dead_letters.producer() {
                Ok(producer) => producer.send(vec![outgoing.clone()]).await,
                Err(error) => Err(error),
            };
            match sent {
                Err(error) if error.code().ends_with("TOO_LARGE") && outgoing.value.is_some() => {
                    self.omit_dead_letter_value(work, &mut outgoing, &error.code());
                }
                Ok(_) => {
                    self.shared
                        .counters
                        .dead_lettered
                        .fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(
                        "Message from topic: {}, partition: {}, offset: {} parked in {} ({code})",
                        message.topic,
                        message.partition,
                        message.offset,
                        outgoing.topic
                    );
                    return;
                }
                Err(error) => {
                    failures += 1;
                    let pause = self.pause_after_failures(failures);
                    tracing::error!(
                        "Cannot write to dead-letter topic {}: {error}; offset {} of {}[{}] is held back, retrying in {} ms",
                        outgoing.topic,
                        message.offset,
                        message.topic,
                        message.partition,
                        pause.as_millis()
                    );
                    if self.shared.closing.load(Ordering::Acquire) {
                        // Leave the offset unstored: the message is redelivered after a restart.
                        return self.abandon(work);
                    }
                    tokio::time::sleep(pause).await;
                }
            }
        }
    }

    /// How long to wait before trying a write to Kafka again after
    /// `failures` failures: the retry policy's backoff, at least 100 ms so
    /// that a struggling cluster is not flooded.
    fn pause_after_failures(&self, failures: u32) -> Duration {
        self.shared
            .options
            .retry
            .backoff(failures)
            .max(Duration::from_millis(100))
    }

    /// Drops the value of a dead-letter record the cluster refused as too
    /// large (`code`), saying so in a header: retrying would hold the
    /// partition back for good, and the value stays readable at the original
    /// topic, partition and offset (until retention).
    fn omit_dead_letter_value(&self, work: &Work, record: &mut OutgoingMessage, code: &str) {
        let Some(value) = record.value.take() else {
            return;
        };
        let omitted = format!(
            "{} bytes, too large for {} ({code})",
            value.len(),
            record.topic
        );
        tracing::warn!(
            "Message from topic: {}, partition: {}, offset: {}: value of {omitted}; parking it without its value",
            work.message.topic,
            work.message.partition,
            work.message.offset
        );
        record
            .headers
            .push(("x-dlq-value-omitted".into(), Some(omitted.into_bytes())));
    }

    fn dead_letter_topic(&self, work: &Work) -> Option<String> {
        self.shared
            .options
            .dead_letter
            .topic_for(&work.message.topic)
    }

    /// The dead-letter record for a message (`None` when that is off): the
    /// message as it was, with headers saying where it came from and why.
    fn dead_letter_record(
        &self,
        work: &Work,
        code: &str,
        reason: &str,
        attempts: u32,
    ) -> Option<OutgoingMessage> {
        let topic = self.dead_letter_topic(work)?;
        let message = &work.message;
        let mut headers = message.headers.clone();
        let mut add =
            |name: &str, value: String| headers.push((name.to_string(), Some(value.into_bytes())));
        add("x-dlq-error-code", code.to_string());
        add("x-dlq-error-message", truncate(reason, 1000));
        add("x-dlq-original-topic", message.topic.to_string());
        add("x-dlq-original-partition", message.partition.to_string());
        add("x-dlq-original-offset", message.offset.to_string());
        if let Some(timestamp) = message.timestamp {
            add("x-dlq-original-timestamp", timestamp.to_string());
        }
        add("x-dlq-consumer-group", self.shared.group_id.clone());
        add("x-dlq-attempts", attempts.to_string());
        Some(OutgoingMessage {
            topic,
            key: message.key.clone(),
            value: message.payload.as_deref().map(<[u8]>::to_vec),
            headers,
            partition: None,
            timestamp: message.timestamp,
        })
    }

    /// Gives up on a message without storing its offset (and without ever
    /// letting a later offset of its partition be stored past it).
    fn abandon(&self, work: &Work) {
        if let Ok(mut tracker) = self.shared.tracker.lock() {
            let key = (work.message.topic.to_string(), work.message.partition);
            if tracker.generation(&key) == Some(work.generation) {
                self.shared.release(&mut tracker, &key);
            }
        }
    }
}

fn describe_works(works: &[Work]) -> String {
    match works {
        [work] => format!(
            "{}[{}]@{}",
            work.message.topic, work.message.partition, work.message.offset
        ),
        _ => format!("a batch of {} messages", works.len()),
    }
}

fn truncate(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::encoded::NUMBERS_PER_MESSAGE;
    use crate::core::logging::{LogLevel, StderrSink};
    use rdkafka::message::{Headers, Message};
    use rdkafka::mocking::MockCluster;
    use rdkafka::producer::DefaultProducerContext;
    use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};
    use std::collections::HashSet;
    use std::sync::atomic::AtomicU32;

    #[test]
    fn early_commits_are_asked_for_sooner_after_work_ran_low_during_one_and_later_again_once_it_does_not(
    ) {
        let pace = CommitPace::default();
        let reported = |ran_low: bool| {
            assert!(pace.ask_if_none_out());
            if ran_low {
                pace.work_ran_low();
            }
            pace.reported();
            pace.due(5000)
        };
        assert_eq!(pace.due(5000), 2500);
        assert_eq!(reported(false), 2500);
        assert_eq!(reported(true), 1250);
        assert_eq!(reported(true), 625);
        assert_eq!(reported(true), 312);
        assert_eq!(reported(true), 312, "at most a sixteenth");
        for _ in 1..CommitPace::RELAX_AFTER {
            assert_eq!(reported(false), 312);
        }
        assert_eq!(reported(false), 625);
        // A wait starts the count again.
        for _ in 1..CommitPace::RELAX_AFTER {
            reported(false);
        }
        assert_eq!(reported(true), 312);
        for _ in 1..CommitPace::RELAX_AFTER {
            assert_eq!(reported(false), 312);
        }
        assert_eq!(reported(false), 625);
        for _ in 0..3 * CommitPace::RELAX_AFTER {
            reported(false);
        }
        assert_eq!(pace.due(5000), 2500, "back to half, and no further");
        assert_eq!(CommitPace::default().due(1), 1);
    }

    #[test]
    fn an_early_commit_goes_once_a_share_finished_since_the_last_without_waiting_for_it_to_report()
    {
        let pace = CommitPace::default();
        pace.released(2499);
        assert!(!pace.ask_if_due(5000), "not due before half has finished");
        pace.released(1);
        assert!(pace.ask_if_due(5000));
        assert!(
            !pace.ask_if_due(5000),
            "what it covers is not asked for twice"
        );
        pace.released(2500);
        assert!(
            pace.ask_if_due(5000),
            "the next goes while the first is out"
        );
        assert!(!pace.ask_if_none_out());
        pace.reported();
        pace.reported();
        assert!(!pace.any_out());
        // An automatic commit reporting back with none out changes nothing.
        pace.reported();
        assert!(pace.ask_if_none_out());
        pace.not_sent();
        assert!(!pace.any_out());

        // A coordinator that stopped answering is not sent more than the cap.
        for _ in 0..CommitPace::MAX_OUT {
            pace.released(2500);
            assert!(pace.ask_if_due(5000));
        }
        pace.released(2500);
        assert!(!pace.ask_if_due(5000));
        pace.reported();
        assert!(
            pace.ask_if_due(5000),
            "what finished while none could go is due once one reports back"
        );
    }

    struct AlwaysFails(AtomicU32);

    impl MessageHandler for AlwaysFails {
        fn handle(&self, _deliveries: Vec<Delivery>) -> HandlerFuture {
            self.0.fetch_add(1, Ordering::SeqCst);
            Box::pin(async {
                Err(Interrupted::Failed(HandlerFailure {
                    index: 0,
                    message: "always fails".into(),
                }))
            })
        }
    }

    /// Keeps every log line.
    #[derive(Default)]
    struct Lines(Mutex<Vec<String>>);

    impl crate::core::logging::LogSink for Lines {
        fn log(&self, record: crate::core::logging::LogRecord) {
            if let Ok(mut lines) = self.0.lock() {
                lines.push(record.message);
            }
        }
    }

    /// The mock cluster can answer EndTxn as a coordinator answers a zombie
    /// (Tansu drops the connection instead): the consumer must stop.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_exactly_once_consumer_whose_producer_is_fenced_stops_handling_messages() {
        let (cluster, mut options) =
            mock_cluster_with("eos-source", "eos-fenced", vec![b"{\"id\":1}".to_vec()]).await;
        let lines = Arc::new(Lines::default());
        options.client.log_level = Some(LogLevel::Error);
        let exactly_once = ExactlyOnce {
            transactional_id: "eos-fenced".into(),
            transaction_timeout: Some(Duration::from_secs(10)),
            properties: BTreeMap::new(),
        };
        options.exactly_once =
            Some(exactly_once_producer(&options, exactly_once, None, lines.clone()).unwrap());
        cluster.request_errors(
            RDKafkaApiKey::EndTxn,
            &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_PRODUCER_FENCED],
        );
        let handler = Arc::new(Counts(AtomicU32::new(0)));
        let consumer = ConsumerHandle::register(options, handler.clone(), lines.clone())
            .await
            .unwrap();
        let stopped = |lines: &Lines| {
            lines.0.lock().unwrap().iter().any(|line| {
                line.contains("Exactly-once processing stopped (ERR_KAFKA_PRODUCER_FENCED)")
            })
        };
        let started = Instant::now();
        while !stopped(&lines) && started.elapsed() < Duration::from_secs(30) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(stopped(&lines), "{:?}", lines.0.lock().unwrap());
        assert_eq!(handler.0.load(Ordering::SeqCst), 1);
        assert_eq!(consumer.stats().processed, 0);
        // Nothing was committed: the partition's next owner gets the message again.
        assert_eq!(
            tokio::task::block_in_place(|| committed(
                &cluster.bootstrap_servers(),
                "eos-fenced",
                "eos-source"
            )),
            None
        );
        consumer.close().await.unwrap();
    }

    fn committed(bootstrap: &str, group: &str, topic: &str) -> Option<i64> {
        let reader: BaseConsumer = rdkafka::ClientConfig::new()
            .set("bootstrap.servers", bootstrap)
            .set("group.id", group)
            .create()
            .ok()?;
        let mut partitions = rdkafka::TopicPartitionList::new();
        partitions.add_partition(topic, 0);
        let offsets = reader
            .committed_offsets(partitions, Duration::from_secs(5))
            .ok()?;
        match offsets.elements().first()?.offset() {
            Offset::Offset(offset) => Some(offset),
            _ => None,
        }
    }

    /// A mock cluster holding `values` in a one-partition `topic` (and an
    /// empty `<topic>.dlq`), and options of a quiet consumer of it in `group`.
    async fn mock_cluster_with(
        topic: &str,
        group: &str,
        values: Vec<Vec<u8>>,
    ) -> (
        MockCluster<'static, DefaultProducerContext>,
        ConsumerOptions,
    ) {
        let cluster = MockCluster::new(1).unwrap();
        cluster.create_topic(topic, 1, 1).unwrap();
        cluster.create_topic(&format!("{topic}.dlq"), 1, 1).unwrap();
        let bootstrap = cluster.bootstrap_servers();
        let messages = values.into_iter().map(|value| OutgoingMessage {
            topic: topic.into(),
            value: Some(value),
            ..Default::default()
        });
        produce_each(&bootstrap, messages).await;
        (cluster, quiet_consumer_options(bootstrap, topic, group))
    }

    /// Produces the messages one at a time, in order, each acknowledged.
    async fn produce_each(bootstrap: &str, messages: impl IntoIterator<Item = OutgoingMessage>) {
        let mut producer_options = ProducerOptions::default();
        producer_options.client.brokers = Some(vec![bootstrap.to_string()]);
        let producer = Producer::new(producer_options, Arc::new(StderrSink)).unwrap();
        for message in messages {
            producer.send(vec![message]).await.unwrap();
        }
        producer.disconnect(Duration::from_secs(5)).await.unwrap();
    }

    /// A consumer of `topic` from its beginning, in `group`, that logs nothing.
    fn quiet_consumer_options(bootstrap: String, topic: &str, group: &str) -> ConsumerOptions {
        let mut options = ConsumerOptions::new(vec![topic.into()]);
        options.client.brokers = Some(vec![bootstrap]);
        options.client.log_level = Some(LogLevel::Off);
        options.group_id = Some(group.into());
        options.from_beginning = true;
        options
    }

    /// The dead-letter producer is created by the first message parked, not
    /// at registration, while a bad producer property still fails there.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_dead_letter_producer_is_created_when_first_needed() {
        let cluster = MockCluster::new(1).unwrap();
        let mut options = ProducerOptions::default();
        options.client.brokers = Some(vec![cluster.bootstrap_servers()]);
        options.client.log_level = Some(LogLevel::Off);
        let seen = Mutex::new(Vec::new());
        let env = |key: &str| {
            seen.lock().unwrap().push(key.to_string());
            None
        };
        let lazy = DeadLetterProducer::checked(options.clone(), Arc::new(StderrSink), env).unwrap();
        assert!(lazy.created().is_none());
        assert!(
            !seen.lock().unwrap().is_empty(),
            "the check reads the environment"
        );
        let first = lazy.producer().unwrap();
        assert!(Arc::ptr_eq(&first, &lazy.producer().unwrap()));
        assert!(lazy
            .created()
            .is_some_and(|created| Arc::ptr_eq(&created, &first)));
        first.disconnect(Duration::from_secs(5)).await.unwrap();

        options
            .client
            .properties
            .insert("linger.ms".into(), "not a number".into());
        let error = DeadLetterProducer::checked(options, Arc::new(StderrSink), |_: &str| None)
            .err()
            .expect("a bad property fails the check");
        assert_eq!(error.code(), "ERR_INVALID_CONFIG");
    }

    /// Fault injection needs the mock cluster: the dead-letter producer's
    /// requests fail until the faults are used up.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failing_dead_letter_topic_holds_the_offset_back_until_the_message_is_parked() {
        let (cluster, mut options) =
            mock_cluster_with("source", "dlq-fault", vec![b"{\"id\":1}".to_vec()]).await;
        let bootstrap = cluster.bootstrap_servers();

        // Every produce request now fails, non-retriably, until these run out.
        cluster.request_errors(
            RDKafkaApiKey::Produce,
            &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED; 4],
        );

        options
            .client
            .properties
            .insert("auto.commit.interval.ms".into(), "100".into());
        options.retry = RetryPolicy {
            retries: 0,
            initial_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_millis(200),
        };
        let handler = Arc::new(AlwaysFails(AtomicU32::new(0)));
        let consumer = ConsumerHandle::register(options, handler.clone(), Arc::new(StderrSink))
            .await
            .unwrap();

        let started = Instant::now();
        while handler.0.load(Ordering::SeqCst) == 0 && started.elapsed() < Duration::from_secs(20) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(handler.0.load(Ordering::SeqCst), 1);
        // While the dead-letter topic refuses the message, nothing is committed.
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(consumer.stats().dead_lettered, 0);
        assert_eq!(consumer.stats().in_flight, 1);
        assert_eq!(
            tokio::task::block_in_place(|| committed(&bootstrap, "dlq-fault", "source")),
            None
        );

        // Once the faults are used up, the message is parked and its offset committed.
        let started = Instant::now();
        while consumer.stats().dead_lettered == 0 && started.elapsed() < Duration::from_secs(30) {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(consumer.stats().dead_lettered, 1);
        assert_eq!(
            handler.0.load(Ordering::SeqCst),
            1,
            "the handler is not re-run for a dead-letter retry"
        );
        consumer.close().await.unwrap();
        assert_eq!(
            tokio::task::block_in_place(|| committed(&bootstrap, "dlq-fault", "source")),
            Some(1)
        );
    }

    /// Plays the JavaScript driver's part for batches handed over ahead: one
    /// queued behind a batch that failed, or was not started, is not started.
    #[derive(Default)]
    struct OrderedBatches {
        /// Offsets of each call, its attempt, and whether it succeeded.
        calls: Mutex<Vec<(Vec<i64>, u32, bool)>>,
        /// Offsets whose batch fails once.
        failing: Mutex<std::collections::HashSet<i64>>,
        last_did_not_succeed: std::sync::atomic::AtomicBool,
        handed_ahead: AtomicU32,
        not_started: AtomicU32,
        /// Takes first attempts encoded by the poll thread, as the
        /// JavaScript driver does.
        encoded: bool,
        encoded_calls: AtomicU32,
    }

    /// A message as a test handler saw it.
    struct SeenMessage {
        partition: i64,
        offset: i64,
        attempt: u32,
        value: serde_json::Value,
    }

    /// The messages of one call.
    type Seen = Vec<SeenMessage>;

    /// The messages of an encoded batch, read back from its chunks.
    fn seen_in(encoded: &EncodedDeliveries) -> Seen {
        let mut seen = Vec::new();
        for chunk in &encoded.chunks {
            let chunk: serde_json::Value = serde_json::from_slice(chunk).unwrap();
            let values = chunk[0].as_array().unwrap();
            let numbers = chunk[3].as_array().unwrap();
            for (index, value) in values.iter().enumerate() {
                let number = |field: usize| {
                    numbers[index * NUMBERS_PER_MESSAGE + field]
                        .as_i64()
                        .unwrap()
                };
                seen.push(SeenMessage {
                    partition: number(1),
                    offset: number(2),
                    attempt: number(4) as u32,
                    value: value.clone(),
                });
            }
        }
        seen
    }

    impl OrderedBatches {
        fn run(&self, seen: Seen, after_previous: bool) -> HandlerFuture {
            for message in &seen {
                assert_eq!(message.value, serde_json::json!({ "id": message.offset }));
            }
            if after_previous {
                self.handed_ahead.fetch_add(1, Ordering::SeqCst);
                if self.last_did_not_succeed.load(Ordering::SeqCst) {
                    self.not_started.fetch_add(1, Ordering::SeqCst);
                    return Box::pin(async { Err(Interrupted::Yielded { index: 0 }) });
                }
            }
            let offsets: Vec<i64> = seen.iter().map(|message| message.offset).collect();
            let fails = {
                let mut failing = self.failing.lock().unwrap();
                offsets.iter().any(|offset| failing.remove(offset))
            };
            self.last_did_not_succeed.store(fails, Ordering::SeqCst);
            let attempt = seen[0].attempt;
            self.calls.lock().unwrap().push((offsets, attempt, !fails));
            Box::pin(async move {
                if fails {
                    Err(Interrupted::Failed(HandlerFailure {
                        index: 0,
                        message: "fails once".into(),
                    }))
                } else {
                    Ok(())
                }
            })
        }
    }

    /// The deliveries of one call, as a test handler sees them.
    fn seen_of(deliveries: &[Delivery]) -> Seen {
        deliveries
            .iter()
            .map(|delivery| {
                let payload = delivery.message.payload.as_deref().unwrap();
                SeenMessage {
                    partition: i64::from(delivery.message.partition),
                    offset: delivery.message.offset,
                    attempt: delivery.attempt,
                    value: serde_json::from_slice(payload).unwrap(),
                }
            })
            .collect()
    }

    impl MessageHandler for OrderedBatches {
        fn handle(&self, deliveries: Vec<Delivery>) -> HandlerFuture {
            self.run(seen_of(&deliveries), false)
        }
        fn queues_runs(&self) -> bool {
            true
        }
        fn handle_after(&self, deliveries: Vec<Delivery>) -> HandlerFuture {
            self.run(seen_of(&deliveries), true)
        }
        fn as_encoded(&self) -> Option<&dyn EncodedHandler> {
            self.encoded.then_some(self as &dyn EncodedHandler)
        }
    }

    impl EncodedHandler for OrderedBatches {
        fn handle_encoded(
            &self,
            encoded: EncodedDeliveries,
            after_previous: bool,
        ) -> HandlerFuture {
            self.encoded_calls.fetch_add(1, Ordering::SeqCst);
            let seen = seen_in(&encoded);
            assert!(seen.iter().all(|message| message.attempt == 1));
            self.run(seen, after_previous)
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn batches_handed_over_ahead_are_handled_in_order_around_failures() {
        handled_in_order_around_failures(false).await;
    }

    /// The same with batches cut and encoded by the poll thread: retries
    /// are encoded again from the payloads, views into the first encoding.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn encoded_batches_are_handled_in_order_around_failures() {
        handled_in_order_around_failures(true).await;
    }

    async fn handled_in_order_around_failures(encoded: bool) {
        let total = 300;
        let values = (0..total)
            .map(|i| format!("{{\"id\":{i}}}").into_bytes())
            .collect();
        let group = if encoded {
            "encoded-group"
        } else {
            "ahead-group"
        };
        let (_cluster, mut options) = mock_cluster_with("ahead", group, values).await;
        options.batch = Some(BatchOptions {
            max_messages: 10,
            max_wait: Duration::from_millis(5),
        });
        options.retry = RetryPolicy {
            retries: 3,
            initial_backoff: Duration::from_millis(5),
            max_backoff: Duration::from_millis(20),
        };
        let handler = Arc::new(OrderedBatches {
            encoded,
            ..OrderedBatches::default()
        });
        handler.failing.lock().unwrap().extend([95, 96, 200]);
        let consumer = ConsumerHandle::register(options, handler.clone(), Arc::new(StderrSink))
            .await
            .unwrap();
        let started = Instant::now();
        while consumer.stats().processed < total && started.elapsed() < Duration::from_secs(30) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        consumer.close().await.unwrap();

        let calls = handler.calls.lock().unwrap().clone();
        let mut succeeded: Vec<i64> = Vec::new();
        for (index, (offsets, attempt, ok)) in calls.iter().enumerate() {
            if *ok {
                succeeded.extend(offsets);
            } else {
                // Retried at once, before any later batch.
                let (next, next_attempt, _) = &calls[index + 1];
                assert_eq!((next, *next_attempt), (offsets, attempt + 1));
            }
        }
        assert_eq!(succeeded, (0..total as i64).collect::<Vec<_>>());
        assert!(handler.handed_ahead.load(Ordering::SeqCst) > 0);
        assert!(handler.not_started.load(Ordering::SeqCst) > 0);
        assert_eq!(consumer.stats().processed, total);
        assert_eq!(handler.encoded_calls.load(Ordering::SeqCst) > 0, encoded);
    }

    struct Counts(AtomicU32);

    impl MessageHandler for Counts {
        fn handle(&self, deliveries: Vec<Delivery>) -> HandlerFuture {
            self.0.fetch_add(deliveries.len() as u32, Ordering::SeqCst);
            Box::pin(async { Ok(()) })
        }
    }

    type MessageHeaders = Vec<(String, Option<Vec<u8>>)>;

    /// Keeps the headers of every delivery.
    #[derive(Default)]
    struct HeadersSeen(Mutex<Vec<MessageHeaders>>);

    impl MessageHandler for HeadersSeen {
        fn handle(&self, deliveries: Vec<Delivery>) -> HandlerFuture {
            if let Ok(mut seen) = self.0.lock() {
                seen.extend(deliveries.iter().map(|d| d.message.headers.clone()));
            }
            Box::pin(async { Ok(()) })
        }
    }

    /// Another client may name a header with bytes that are not UTF-8
    /// (rdkafka's own `Headers` panics on them): the message is delivered,
    /// the name shown with replacement characters, the value untouched.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_header_name_that_is_not_utf8_is_delivered_not_a_panic() {
        use rdkafka::bindings as rdsys;
        use rdkafka::producer::{BaseProducer, Producer as _};
        let cluster = MockCluster::new(1).unwrap();
        cluster.create_topic("odd-headers", 1, 1).unwrap();
        let raw: BaseProducer = rdkafka::ClientConfig::new()
            .set("bootstrap.servers", cluster.bootstrap_servers())
            .create()
            .unwrap();
        let topic = std::ffi::CString::new("odd-headers").unwrap();
        let odd_name: &[u8] = b"bad\xff\xfename\0";
        let plain_name: &[u8] = b"plain\0";
        let value: &[u8] = b"{}";
        let header_value: &[u8] = b"\x00\x01raw";
        let field = |vtype, u| rdsys::rd_kafka_vu_t { vtype, u };
        let header = |name: &[u8], value: Option<&[u8]>| {
            field(
                rdsys::rd_kafka_vtype_t::RD_KAFKA_VTYPE_HEADER,
                rdsys::rd_kafka_vu_s__bindgen_ty_1 {
                    header: rdsys::rd_kafka_vu_s__bindgen_ty_1__bindgen_ty_2 {
                        name: name.as_ptr() as *const std::ffi::c_char,
                        val: value.map_or(std::ptr::null(), |value| {
                            value.as_ptr() as *const std::ffi::c_void
                        }),
                        size: value.map_or(0, |value| value.len() as isize),
                    },
                },
            )
        };
        let fields = [
            field(
                rdsys::rd_kafka_vtype_t::RD_KAFKA_VTYPE_TOPIC,
                rdsys::rd_kafka_vu_s__bindgen_ty_1 {
                    cstr: topic.as_ptr(),
                },
            ),
            field(
                rdsys::rd_kafka_vtype_t::RD_KAFKA_VTYPE_VALUE,
                rdsys::rd_kafka_vu_s__bindgen_ty_1 {
                    mem: rdsys::rd_kafka_vu_s__bindgen_ty_1__bindgen_ty_1 {
                        ptr: value.as_ptr() as *mut std::ffi::c_void,
                        size: value.len(),
                    },
                },
            ),
            header(odd_name, Some(header_value)),
            header(plain_name, None),
        ];
        // SAFETY: every field points at data that outlives the call, which
        // copies it (RD_KAFKA_VTYPE_VALUE without F_FREE is copied by default).
        let error = unsafe {
            rdsys::rd_kafka_produceva(raw.client().native_ptr(), fields.as_ptr(), fields.len())
        };
        assert!(error.is_null(), "produceva failed");
        raw.flush(Duration::from_secs(10)).unwrap();

        let options =
            quiet_consumer_options(cluster.bootstrap_servers(), "odd-headers", "odd-headers");
        let handler = Arc::new(HeadersSeen::default());
        let consumer = ConsumerHandle::register(options, handler.clone(), Arc::new(StderrSink))
            .await
            .unwrap();
        let started = Instant::now();
        while handler.0.lock().unwrap().is_empty() && started.elapsed() < Duration::from_secs(20) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let seen = handler.0.lock().unwrap().clone();
        assert_eq!(
            seen,
            vec![vec![
                (
                    "bad\u{FFFD}\u{FFFD}name".to_string(),
                    Some(header_value.to_vec())
                ),
                ("plain".to_string(), None),
            ]]
        );
        consumer.close().await.unwrap();
    }

    /// Partition 0 needs many fetches (the mock cluster honours
    /// max.partition.fetch.bytes), each of which fills the prefetch bound;
    /// partition 1 is soon read to its end, after which a fetch of it alone
    /// waits out fetch.wait.max.ms (10 s). Partition 0 must never wait for
    /// such a fetch: its partitions' prefetch is measured together, so
    /// partition 1 is fetched only along with partition 0.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_backlog_never_waits_for_the_long_poll_of_a_partition_read_to_its_end() {
        let cluster = MockCluster::new(1).unwrap();
        cluster.create_topic("backlog", 2, 1).unwrap();
        let mut producer_options = ProducerOptions::default();
        producer_options.client.brokers = Some(vec![cluster.bootstrap_servers()]);
        let producer = Producer::new(producer_options, Arc::new(StderrSink)).unwrap();
        let message = |partition: i32| OutgoingMessage {
            topic: "backlog".into(),
            partition: Some(partition),
            value: Some(vec![b'x'; 1000]),
            ..Default::default()
        };
        for _ in 0..4 {
            producer
                .send((0..500).map(|_| message(0)).collect())
                .await
                .unwrap();
        }
        producer
            .send((0..10).map(|_| message(1)).collect())
            .await
            .unwrap();
        producer.disconnect(Duration::from_secs(5)).await.unwrap();

        let mut options = quiet_consumer_options(cluster.bootstrap_servers(), "backlog", "backlog");
        options.schema = PayloadSchema::Raw;
        for (key, value) in [
            ("fetch.wait.max.ms", "10000"),
            ("max.partition.fetch.bytes", "65536"),
            ("queued.max.messages.kbytes", "64"),
        ] {
            options.client.properties.insert(key.into(), value.into());
        }
        let handler = Arc::new(BacklogProgress::default());
        let consumer = ConsumerHandle::register(options, handler.clone(), Arc::new(StderrSink))
            .await
            .unwrap();
        let started = Instant::now();
        while handler.count.load(Ordering::SeqCst) < 2010
            && started.elapsed() < Duration::from_secs(60)
        {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(handler.count.load(Ordering::SeqCst), 2010);
        // Timed from the backlog's first message: at the start, partition 1
        // may get its starting offset first and be fetched alone, and then
        // partition 0 waits for that long poll once, whatever the queues
        // (librdkafka has one fetch in flight per broker; seen under CPU
        // load). What must not happen is a wait behind it while the backlog
        // drains, each alone 10 s.
        let draining = handler
            .backlog_started
            .get()
            .map(Instant::elapsed)
            .expect("the backlog's first message");
        assert!(
            draining < Duration::from_secs(5),
            "the backlog drained in {draining:?}"
        );
        consumer.close().await.unwrap();
    }

    /// Counts deliveries and notes when the first one of partition 0 came.
    #[derive(Default)]
    struct BacklogProgress {
        count: AtomicU32,
        backlog_started: OnceLock<Instant>,
    }

    impl MessageHandler for BacklogProgress {
        fn handle(&self, deliveries: Vec<Delivery>) -> HandlerFuture {
            if deliveries
                .iter()
                .any(|delivery| delivery.message.partition == 0)
            {
                self.backlog_started.get_or_init(Instant::now);
            }
            self.count
                .fetch_add(deliveries.len() as u32, Ordering::SeqCst);
            Box::pin(async { Ok(()) })
        }
    }

    /// A batch the poll thread is still gathering when its partitions are
    /// revoked is handed over at the revoke, not left to the drain timeout
    /// (which would hold up the rebalance for every member), and whatever a
    /// closing member is gathering is handed over before it leaves.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_batch_being_gathered_is_handed_over_when_its_partitions_are_revoked() {
        let cluster = MockCluster::new(1).unwrap();
        cluster.create_topic("gathering", 2, 1).unwrap();
        let bootstrap = cluster.bootstrap_servers();
        let total = 40;
        let messages = (0..total).map(|i| OutgoingMessage {
            topic: "gathering".into(),
            partition: Some(i % 2),
            value: Some(format!("{{\"id\":{i}}}").into_bytes()),
            ..Default::default()
        });
        produce_each(&bootstrap, messages).await;
        let options = || {
            let mut options = quiet_consumer_options(bootstrap.clone(), "gathering", "gathering");
            options.batch = Some(BatchOptions {
                max_messages: 1000,
                max_wait: Duration::from_secs(30),
            });
            options.drain_timeout = Duration::from_secs(30);
            options.session_timeout = Duration::from_secs(6);
            options
        };
        let first = Arc::new(EncodedRecorder::default());
        let first_consumer =
            ConsumerHandle::register(options(), first.clone(), Arc::new(StderrSink))
                .await
                .unwrap();
        let started = Instant::now();
        while first_consumer.stats().received < total as u64
            && started.elapsed() < Duration::from_secs(10)
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(first_consumer.stats().received, total as u64);
        assert!(first.handled.lock().unwrap().is_empty(), "still gathering");

        let second = Arc::new(EncodedRecorder::default());
        let joining = Instant::now();
        let second_consumer =
            ConsumerHandle::register(options(), second.clone(), Arc::new(StderrSink))
                .await
                .unwrap();
        assert!(
            joining.elapsed() < Duration::from_secs(20),
            "the rebalance waited {:?}",
            joining.elapsed()
        );
        // Distinct messages: the mock cluster refuses the revoke's commit
        // while the group is joining (Kafka accepts it), so a second
        // rebalance can hand the kept partition's messages over again.
        let handed_over: HashSet<(i64, i64)> =
            first.handled.lock().unwrap().iter().copied().collect();
        assert_eq!(
            handed_over.len(),
            total as usize,
            "handed over at the revoke"
        );
        second_consumer.close().await.unwrap();
        first_consumer.close().await.unwrap();

        let mut handled = first.handled.lock().unwrap().clone();
        handled.extend(second.handled.lock().unwrap().iter().copied());
        handled.sort_unstable();
        handled.dedup();
        let mut expected: Vec<(i64, i64)> = (0..total as i64).map(|i| (i % 2, i / 2)).collect();
        expected.sort_unstable();
        assert_eq!(handled, expected);
    }

    /// A dead-letter topic's message: its value and headers.
    type ParkedMessage = (Option<Vec<u8>>, HashMap<String, String>);

    /// The first `count` messages of a dead-letter topic.
    fn dead_letters(bootstrap: &str, topic: &str, count: usize) -> Vec<ParkedMessage> {
        tokio::task::block_in_place(|| {
            let reader: BaseConsumer = rdkafka::ClientConfig::new()
                .set("bootstrap.servers", bootstrap)
                .set("group.id", format!("{topic}-reader"))
                .create()
                .unwrap();
            let mut partitions = TopicPartitionList::new();
            partitions
                .add_partition_offset(topic, 0, Offset::Beginning)
                .unwrap();
            reader.assign(&partitions).unwrap();
            (0..count)
                .map(|_| {
                    let message = reader
                        .poll(Duration::from_secs(10))
                        .expect("a parked message")
                        .unwrap();
                    let headers: HashMap<String, String> = message
                        .headers()
                        .map(|headers| {
                            headers
                                .iter()
                                .map(|header| {
                                    let value = header.value.unwrap_or_default();
                                    (
                                        header.key.to_string(),
                                        String::from_utf8_lossy(value).into_owned(),
                                    )
                                })
                                .collect()
                        })
                        .unwrap_or_default();
                    (message.payload().map(<[u8]>::to_vec), headers)
                })
                .collect()
        })
    }

    /// Takes runs and batches encoded and records the partition and offset
    /// of every message it handles; fails every attempt at the offset
    /// `failing`, if given: a batch holding it as a whole, a run (per
    /// message) from that message on.
    #[derive(Default)]
    struct EncodedRecorder {
        failing: Option<i64>,
        per_message: bool,
        handled: Mutex<Vec<(i64, i64)>>,
        encoded_calls: AtomicU32,
    }

    impl EncodedRecorder {
        fn failing_at(offset: i64, per_message: bool) -> Arc<Self> {
            Arc::new(EncodedRecorder {
                failing: Some(offset),
                per_message,
                ..EncodedRecorder::default()
            })
        }

        fn handled_offsets(&self) -> Vec<i64> {
            let handled = self.handled.lock().unwrap();
            handled.iter().map(|(_, offset)| *offset).collect()
        }

        fn run(&self, seen: Seen) -> HandlerFuture {
            let failed_at = seen
                .iter()
                .position(|message| Some(message.offset) == self.failing);
            let handled = match failed_at {
                Some(index) if self.per_message => &seen[..index],
                Some(_) => &[],
                None => &seen[..],
            };
            self.handled.lock().unwrap().extend(
                handled
                    .iter()
                    .map(|message| (message.partition, message.offset)),
            );
            let Some(index) = failed_at else {
                return Box::pin(async { Ok(()) });
            };
            let index = if self.per_message { index } else { 0 };
            Box::pin(async move {
                Err(Interrupted::Failed(HandlerFailure {
                    index,
                    message: "always fails".into(),
                }))
            })
        }
    }

    impl MessageHandler for EncodedRecorder {
        fn handle(&self, deliveries: Vec<Delivery>) -> HandlerFuture {
            self.run(seen_of(&deliveries))
        }
        fn queues_runs(&self) -> bool {
            true
        }
        fn as_encoded(&self) -> Option<&dyn EncodedHandler> {
            Some(self)
        }
    }

    impl EncodedHandler for EncodedRecorder {
        fn handle_encoded(
            &self,
            encoded: EncodedDeliveries,
            _after_previous: bool,
        ) -> HandlerFuture {
            self.encoded_calls.fetch_add(1, Ordering::SeqCst);
            self.run(seen_in(&encoded))
        }
    }

    /// Consumes with one quick retry until `done` holds (at most 20 s), then closes.
    async fn consume_with_one_retry_until(
        mut options: ConsumerOptions,
        handler: Arc<dyn MessageHandler>,
        done: impl Fn(&ConsumerStats) -> bool,
    ) {
        options.retry = RetryPolicy {
            retries: 1,
            initial_backoff: Duration::from_millis(5),
            max_backoff: Duration::from_millis(5),
        };
        let consumer = ConsumerHandle::register(options, handler, Arc::new(StderrSink))
            .await
            .unwrap();
        let started = Instant::now();
        while !done(&consumer.stats()) && started.elapsed() < Duration::from_secs(20) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        consumer.close().await.unwrap();
    }

    /// Per message, the poll thread encodes each lane's runs; a run holding
    /// an invalid value goes the general way (the invalid one parked as it
    /// came, in its place), and after a failure inside an encoded run the
    /// failed message is retried and parked with its value (a view into the
    /// encoded text) before the rest of the run is handed over again.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn encoded_runs_per_message_keep_order_and_park_invalid_and_failing_messages_with_their_values(
    ) {
        let mut values: Vec<Vec<u8>> = (0..40)
            .map(|i| format!("{{\"id\":{i}}}").into_bytes())
            .collect();
        values[7] = b"{not json".to_vec();
        let (cluster, options) = mock_cluster_with("lanes", "lanes-group", values).await;
        let bootstrap = cluster.bootstrap_servers();
        let handler = EncodedRecorder::failing_at(25, true);
        consume_with_one_retry_until(options, handler.clone(), |stats| stats.processed >= 38).await;

        assert!(handler.encoded_calls.load(Ordering::SeqCst) > 0);
        let handled = handler.handled_offsets();
        let expected: Vec<i64> = (0..40).filter(|offset| ![7, 25].contains(offset)).collect();
        assert_eq!(handled, expected, "each once, in partition order");
        let parked = dead_letters(&bootstrap, "lanes.dlq", 2);
        assert_eq!(parked[0].0.as_deref(), Some(&b"{not json"[..]));
        assert_eq!(parked[0].1["x-dlq-original-offset"], "7");
        assert_eq!(parked[1].0.as_deref(), Some(&b"{\"id\":25}"[..]));
        assert_eq!(parked[1].1["x-dlq-original-offset"], "25");
        assert_eq!(parked[1].1["x-dlq-error-code"], "ERR_HANDLER_FAILED");
    }

    /// In encoded batches an invalid value is left out of the encoding and
    /// parked as it came, and a batch that keeps failing is parked with each
    /// value as it came (the payloads are views into the encoded texts).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn encoded_batches_park_invalid_and_failing_messages_with_their_values() {
        let mut values: Vec<Vec<u8>> = (0..40)
            .map(|i| format!("{{\"id\":{i}}}").into_bytes())
            .collect();
        values[7] = b"{not json".to_vec();
        let (cluster, mut options) = mock_cluster_with("parked", "parked-group", values).await;
        let bootstrap = cluster.bootstrap_servers();
        options.batch = Some(BatchOptions {
            max_messages: 10,
            max_wait: Duration::from_millis(5),
        });
        let handler = EncodedRecorder::failing_at(25, false);
        consume_with_one_retry_until(options, handler.clone(), |stats| stats.dead_lettered >= 11)
            .await;

        let handled = handler.handled_offsets();
        let failing_batch: Vec<i64> = handled
            .iter()
            .copied()
            .filter(|offset| (20..30).contains(offset))
            .collect();
        assert!(failing_batch.is_empty(), "{handled:?}");
        let parked = dead_letters(&bootstrap, "parked.dlq", 11);
        assert_eq!(parked[0].0.as_deref(), Some(&b"{not json"[..]));
        assert_eq!(parked[0].1["x-dlq-original-offset"], "7");
        for (index, (value, headers)) in parked[1..].iter().enumerate() {
            let offset = 20 + index;
            assert_eq!(headers["x-dlq-original-offset"], offset.to_string());
            assert_eq!(headers["x-dlq-error-code"], "ERR_HANDLER_FAILED");
            assert_eq!(
                value.as_deref(),
                Some(format!("{{\"id\":{offset}}}").as_bytes())
            );
        }
        let mut expected: Vec<i64> = (0..40).filter(|offset| *offset != 7).collect();
        expected.retain(|offset| !(20..30).contains(offset));
        let mut handled = handled;
        handled.sort_unstable();
        assert_eq!(handled, expected);
    }

    /// An oversized value is parked without ever reaching the handler; when
    /// the dead-letter topic refuses it as too large, it is parked without
    /// its value instead of holding the partition back for good.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_oversized_value_is_parked_and_without_its_value_where_it_does_not_fit() {
        let value = format!("{{\"pad\":\"{}\"}}", "x".repeat(500)).into_bytes();
        let small = b"{\"id\":2}".to_vec();
        let (cluster, mut options) =
            mock_cluster_with("big", "oversized", vec![value.clone(), small]).await;
        let bootstrap = cluster.bootstrap_servers();
        // The dead-letter producer's first request is refused as too large.
        cluster.request_errors(
            RDKafkaApiKey::Produce,
            &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE],
        );

        options.max_value_bytes = 100;
        let handler = Arc::new(Counts(AtomicU32::new(0)));
        let consumer = ConsumerHandle::register(options, handler.clone(), Arc::new(StderrSink))
            .await
            .unwrap();
        let started = Instant::now();
        while (consumer.stats().dead_lettered == 0 || handler.0.load(Ordering::SeqCst) == 0)
            && started.elapsed() < Duration::from_secs(20)
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(consumer.stats().dead_lettered, 1);
        assert_eq!(
            handler.0.load(Ordering::SeqCst),
            1,
            "only the small one is handled"
        );
        consumer.close().await.unwrap();

        let parked = dead_letters(&bootstrap, "big.dlq", 1).remove(0);
        assert_eq!(parked.0, None);
        assert_eq!(parked.1["x-dlq-error-code"], "ERR_VALUE_TOO_LARGE");
        assert_eq!(parked.1["x-dlq-original-offset"], "0");
        assert!(
            parked.1["x-dlq-value-omitted"].starts_with(&format!("{} bytes", value.len())),
            "{:?}",
            parked.1
        );
    }

    /// With no brokers anywhere, consumer and producer meet on the embedded
    /// cluster; the consumer starts first, on a topic nobody has produced to.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn with_no_brokers_clients_share_the_embedded_cluster() {
        let no_env = |_: &str| None;
        // The producer's client id must not become every consumer's default group.
        let producer_id_only =
            |key: &str| (key == "KAFKA_CLIENT_ID").then(|| "movie-stream-producer".to_string());
        let topic = format!("embedded-roundtrip-{}", std::process::id());
        let mut options = ConsumerOptions::new(vec![topic.clone()]);
        options.client.log_level = Some(LogLevel::Off);
        options.from_beginning = true;
        let handler = Arc::new(Counts(AtomicU32::new(0)));
        let consumer = ConsumerHandle::register_with_env(
            options,
            handler.clone(),
            Arc::new(StderrSink),
            producer_id_only,
        )
        .await
        .unwrap();
        assert_eq!(consumer.name(), format!("{topic}-consumer"));
        assert_eq!(consumer.group_id(), format!("{topic}-consumer-group"));

        let mut producer_options = ProducerOptions::default();
        producer_options.client.log_level = Some(LogLevel::Off);
        let producer = Producer::with_env(producer_options, Arc::new(StderrSink), no_env).unwrap();
        assert_eq!(
            producer.brokers(),
            [crate::core::embedded::cluster()
                .unwrap()
                .bootstrap_servers()
                .to_string()]
        );
        let messages = (0..20)
            .map(|n| OutgoingMessage {
                topic: topic.clone(),
                key: Some(format!("movie-{}", n % 5).into_bytes()),
                value: Some(format!("{{\"n\":{n}}}").into_bytes()),
                ..Default::default()
            })
            .collect();
        producer.send(messages).await.unwrap();
        producer.disconnect(Duration::from_secs(5)).await.unwrap();

        let started = Instant::now();
        while handler.0.load(Ordering::SeqCst) < 20 && started.elapsed() < Duration::from_secs(20) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        consumer.close().await.unwrap();
        assert_eq!(handler.0.load(Ordering::SeqCst), 20);
        assert_eq!(consumer.stats().processed, 20);
    }

    #[test]
    fn a_recurring_consumer_error_is_logged_once_per_interval_with_its_count() {
        #[derive(Default)]
        struct Lines(Mutex<Vec<String>>);
        impl crate::core::logging::LogSink for Lines {
            fn log(&self, record: crate::core::logging::LogRecord) {
                self.0.lock().unwrap().push(record.message);
            }
        }
        let lines = Arc::new(Lines::default());
        let log = ClientLog::register(
            "flooded",
            crate::core::logging::LogLevel::Debug,
            lines.clone(),
        );
        let down = KafkaError::MessageConsumption(RDKafkaErrorCode::AllBrokersDown);
        let transport = KafkaError::MessageConsumption(RDKafkaErrorCode::BrokerTransportFailure);
        let mut reporter = ErrorReporter::default();
        let start = Instant::now();
        log.span().in_scope(|| {
            for step in 0..100u64 {
                let now = start + Duration::from_millis(step * 50);
                reporter.report_at(&down, now);
                if step % 10 == 0 {
                    reporter.report_at(&transport, now);
                }
            }
            reporter.report_at(
                &down,
                start + REPEATED_ERROR_INTERVAL + Duration::from_secs(1),
            );
        });
        let lines = lines.0.lock().unwrap();
        let down_lines: Vec<_> = lines
            .iter()
            .filter(|line| line.contains("AllBrokersDown"))
            .collect();
        assert_eq!(down_lines.len(), 2, "{lines:?}");
        assert!(
            down_lines[1].contains("(99 more time(s) in the last 31 s)"),
            "{lines:?}"
        );
        assert_eq!(
            lines
                .iter()
                .filter(|line| line.contains("BrokerTransportFailure"))
                .count(),
            1
        );
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let policy = RetryPolicy {
            retries: 5,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(500),
        };
        let pauses: Vec<u128> = (1..=5)
            .map(|attempt| policy.backoff(attempt).as_millis())
            .collect();
        assert_eq!(pauses, vec![100, 200, 400, 500, 500]);
        assert_eq!(policy.backoff(1000), Duration::from_millis(500));
    }

    #[test]
    fn the_stored_offset_is_the_contiguous_low_watermark() {
        let mut tracker = OffsetTracker::default();
        let key = ("t".to_string(), 0);
        let generation = tracker.assign(key.clone());
        for offset in 10..15 {
            assert!(tracker.received(&key, offset));
        }
        assert_eq!(tracker.finished(&key, generation, 12), (0, None));
        assert_eq!(tracker.finished(&key, generation, 10), (1, Some(10)));
        assert_eq!(tracker.finished(&key, generation, 11), (2, Some(12)));
        assert_eq!(tracker.finished(&key, generation, 14), (0, None));
        // 13 still runs; 14 waits behind it.
        assert_eq!(tracker.outstanding(&key), 2);
        assert_eq!(tracker.finished(&key, generation, 13), (2, Some(14)));
        assert_eq!(tracker.outstanding(&key), 0);
    }

    proptest::proptest! {
        /// Whatever order offsets arrive and finish in (redeliveries after a
        /// seek included), the tracker agrees with a plain ordered map.
        #[test]
        fn the_tracker_agrees_with_an_ordered_map(
            steps in proptest::collection::vec((proptest::bool::ANY, 0i64..40), 0..200)
        ) {
            let mut tracker = OffsetTracker::default();
            let key = ("t".to_string(), 0);
            let generation = tracker.assign(key.clone());
            let mut model: BTreeMap<i64, bool> = BTreeMap::new();
            for (receive, offset) in steps {
                if receive {
                    model.insert(offset, false);
                    proptest::prop_assert!(tracker.received(&key, offset));
                } else {
                    let expected = match model.get_mut(&offset) {
                        None => (0, None),
                        Some(done) => {
                            *done = true;
                            let mut released = 0;
                            let mut advanced = None;
                            while let Some((&first, &true)) = model.first_key_value() {
                                model.remove(&first);
                                advanced = Some(first);
                                released += 1;
                            }
                            (released, advanced)
                        }
                    };
                    proptest::prop_assert_eq!(tracker.finished(&key, generation, offset), expected);
                }
                proptest::prop_assert_eq!(tracker.outstanding(&key), model.len());
            }
        }
    }

    #[test]
    fn stored_messages_count_until_a_commit_covers_them() {
        let mut tracker = OffsetTracker::default();
        let key = ("t".to_string(), 0);
        let generation = tracker.assign(key.clone());
        for offset in 0..6 {
            tracker.received(&key, offset);
        }
        assert_eq!(tracker.finished(&key, generation, 0), (1, Some(0)));
        assert_eq!(tracker.finished(&key, generation, 2), (0, None));
        assert_eq!(tracker.finished(&key, generation, 1), (2, Some(2)));
        assert_eq!(tracker.finished(&key, generation, 3), (1, Some(3)));
        // A commit is of the next offset to read: 1 covers the store of 0 only.
        assert_eq!(tracker.committed(&key, 1), 1);
        assert_eq!(tracker.committed(&key, 1), 0);
        assert_eq!(tracker.committed(&key, 4), 3);
        assert_eq!(tracker.finished(&key, generation, 4), (1, Some(4)));
        // Unfinished 5 and uncommitted 4 both go with a revoke.
        assert_eq!(tracker.revoke(&key), (1, 1));
        assert_eq!(tracker.committed(&key, 10), 0);
    }

    #[test]
    fn finishes_from_before_a_revoke_are_ignored() {
        let mut tracker = OffsetTracker::default();
        let key = ("t".to_string(), 1);
        let old = tracker.assign(key.clone());
        tracker.received(&key, 5);
        assert_eq!(tracker.revoke(&key), (1, 0));
        let new = tracker.assign(key.clone());
        assert_ne!(old, new);
        assert_eq!(tracker.finished(&key, old, 5), (0, None));
        assert!(!tracker.received(&("other".to_string(), 0), 1));
    }

    #[test]
    fn options_are_validated() {
        let mut options = ConsumerOptions::new(vec![]);
        assert!(options.validate().is_err());
        options.topics = vec!["movie-events".into()];
        assert!(options.validate().is_ok());
        options.concurrency = 0;
        assert!(options.validate().is_err());
        options.concurrency = 4;
        options.dead_letter = DeadLetter::Topic("movie-events".into());
        assert!(options.validate().is_err());
        options.dead_letter = DeadLetter::PerTopic;
        options.batch = Some(BatchOptions {
            max_messages: options.max_in_flight,
            max_wait: Duration::from_millis(10),
        });
        assert!(options.validate().is_ok());
        options.batch = Some(BatchOptions {
            max_messages: options.max_in_flight + 1,
            max_wait: Duration::from_millis(10),
        });
        assert!(options.validate().is_err());
    }

    #[test]
    fn long_reasons_are_truncated_on_a_character_boundary() {
        let text = "é".repeat(600);
        let cut = truncate(&text, 1001);
        assert!(cut.len() <= 1004);
        assert!(cut.ends_with('…'));
    }
}
