//! `KafkaProducer` for JavaScript: reads arguments, calls the core producer.

use crate::binding::deliveries::{Courier, Ledger, Topics};
use crate::binding::js::{
    self, promise, rejected, CoreResult, InternedKeys, KeyCounter, KeysInScope,
};
use crate::binding::logger::JsLogSink;
use crate::core::config::ClientOptions;
use crate::core::logging::LogLevel;
use crate::core::producer::{
    OutgoingMessage, Producer, ProducerOptions as CoreProducerOptions, TopicOutcome, TopicSpec,
};
use crate::core::transaction::TransactionScope;
use napi::bindgen_prelude::within_runtime_if_available;
use napi::bindgen_prelude::{JsObjectValue, Object, PromiseRaw, Unknown};
use napi::{Env, JsValue};
use napi_derive::napi;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

/// Options of `new KafkaProducer(options)`. Every field is optional; brokers
/// and client id fall back to `KAFKA_BROKERS` and `KAFKA_CLIENT_ID`.
#[napi(object)]
pub struct ProducerOptions {
    /// Bootstrap brokers, `host:port`, as an array or a comma-separated string.
    #[napi(ts_type = "string | string[]")]
    pub brokers: Option<String>,
    /// The client's name in logs and on the broker. Default `KAFKA_CLIENT_ID`, else `kafka-napi-producer`.
    pub client_id: Option<String>,
    /// Minimum level forwarded to the logger. Default `info`.
    #[napi(ts_type = "LogLevel")]
    pub log_level: Option<String>,
    /// Receives log lines as `(message, context)`; `console` by default.
    #[napi(ts_type = "KafkaLogger")]
    pub logger: Option<String>,
    /// Any librdkafka property (e.g. `{ 'linger.ms': 20, 'sasl.username': 'u' }`),
    /// applied over the safe defaults (idempotence, `acks=all`, lz4, `linger.ms=5`).
    #[napi(ts_type = "Record<string, string | number | boolean>")]
    pub config: Option<String>,
    /// How long a send waits for room when the local queue is full before
    /// failing with `ERR_KAFKA_QUEUE_FULL`. Default 5000.
    pub enqueue_timeout_ms: Option<u32>,
    /// Pause between connection attempts while brokers are unreachable. Default 5000.
    pub retry_interval_ms: Option<u32>,
    /// Put in front of the topics `sendMovieEvent` and `sendMovieViewEvent`
    /// write to (e.g. `staging.`). Default `KAFKA_TOPIC_PREFIX`, else none.
    pub topic_prefix: Option<String>,
    /// How often librdkafka reports the statistics behind `metrics()` (broker
    /// state and round trips, retries). Default `KAFKA_STATISTICS_INTERVAL_MS`,
    /// else 5000; 0 turns them off.
    pub statistics_interval_ms: Option<u32>,
    /// Give each message without a `traceparent` header a new W3C trace
    /// (random ids, sampled), so an event can be followed across services by
    /// its trace id even without OpenTelemetry. A `traceparent` header given
    /// (e.g. by OpenTelemetry's `propagation.inject`) is always kept; it must
    /// be valid, or the send fails with `ERR_INVALID_ARG`. Default false.
    pub generate_traceparent: Option<bool>,
    /// Makes the producer transactional: every send then happens inside
    /// `producer.transaction(async (tx) => ...)`, and sends outside one
    /// reject with `ERR_KAFKA_TRANSACTION_STATE`. Keep it stable across
    /// restarts of one instance (a restart then fences the old instance and
    /// aborts what it left open) and unique among instances running at once.
    pub transactional_id: Option<String>,
    /// The longest a transaction may stay open before the cluster aborts
    /// it (`transaction.timeout.ms`). Default 60000.
    pub transaction_timeout_ms: Option<u32>,
}

/// A logger such as `console`, Nest's `Logger` or pino: each present method
/// is called with `(message, context)`, `context` being the client's name.
#[napi(object)]
pub struct KafkaLogger {
    #[napi(ts_type = "(message: string, context: string) => void")]
    pub error: Option<String>,
    #[napi(ts_type = "(message: string, context: string) => void")]
    pub warn: Option<String>,
    #[napi(ts_type = "(message: string, context: string) => void")]
    pub info: Option<String>,
    #[napi(ts_type = "(message: string, context: string) => void")]
    pub log: Option<String>,
    #[napi(ts_type = "(message: string, context: string) => void")]
    pub debug: Option<String>,
    #[napi(ts_type = "(message: string, context: string) => void")]
    pub verbose: Option<String>,
}

/// Levels, from quietest to most verbose.
#[napi(string_enum, js_name = "LogLevel")]
pub enum LogLevelName {
    #[napi(value = "off")]
    Off,
    #[napi(value = "error")]
    Error,
    #[napi(value = "warn")]
    Warn,
    #[napi(value = "info")]
    Info,
    #[napi(value = "debug")]
    Debug,
    #[napi(value = "trace")]
    Trace,
}

/// One message of `send`.
#[napi(object)]
pub struct Message {
    /// The partitioning key (e.g. a movie id): same key, same partition, in order.
    #[napi(ts_type = "string | Buffer | null")]
    pub key: Option<String>,
    /// A string or Buffer is sent as is; any other value as JSON; `null` is a tombstone.
    #[napi(ts_type = "string | Buffer | null | object | number | boolean")]
    pub value: Option<String>,
    #[napi(ts_type = "Record<string, string | Buffer | Array<string | Buffer>>")]
    pub headers: Option<String>,
    /// An explicit partition; by default the key decides (murmur2, as Java clients do).
    pub partition: Option<i32>,
    /// Milliseconds since the Unix epoch (number or numeric string); default: now.
    #[napi(ts_type = "number | string")]
    pub timestamp: Option<String>,
}

/// The argument of `send`.
#[napi(object)]
pub struct ProducerRecord {
    pub topic: String,
    pub messages: Vec<Message>,
}

/// The argument of `sendBatch`: several topics at once.
#[napi(object)]
pub struct ProducerBatch {
    pub topic_messages: Vec<ProducerRecord>,
}

/// Options of `sendMessage`.
#[napi(object)]
pub struct SendMessageOptions {
    #[napi(ts_type = "string | Buffer | null")]
    pub key: Option<String>,
    #[napi(ts_type = "Record<string, string | Buffer | Array<string | Buffer>>")]
    pub headers: Option<String>,
    pub partition: Option<i32>,
    #[napi(ts_type = "number | string")]
    pub timestamp: Option<String>,
}

/// Options of `connect`.
#[napi(object)]
pub struct ConnectOptions {
    /// Wait up to this long for the brokers to answer, rejecting with
    /// `ERR_KAFKA_TIMED_OUT` after it. Without it, `connect` resolves at once
    /// and keeps retrying in the background.
    pub timeout_ms: Option<u32>,
}

/// A topic for `ensureTopics`.
#[napi(object)]
pub struct TopicConfig {
    pub name: String,
    /// Default 1.
    pub partitions: Option<i32>,
    /// Default -1: the broker's default.
    pub replication_factor: Option<i32>,
    /// Topic-level settings such as `{ 'retention.ms': '86400000' }`.
    #[napi(ts_type = "Record<string, string | number>")]
    pub config: Option<String>,
}

/// What `ensureTopics` did with one topic.
#[napi(object)]
pub struct TopicResult {
    pub name: String,
    /// `false` when the topic already existed.
    pub created: bool,
}

/// Where a message was written.
#[napi(object)]
pub struct RecordMetadata {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    /// The broker's or producer's timestamp, in milliseconds since the Unix epoch.
    pub timestamp: Option<i64>,
}

impl From<TopicOutcome> for TopicResult {
    fn from(outcome: TopicOutcome) -> Self {
        TopicResult {
            name: outcome.name,
            created: outcome.created,
        }
    }
}

const DEFAULT_FLUSH_TIMEOUT_MS: u32 = 30_000;
const DEFAULT_ADMIN_TIMEOUT_MS: u32 = 30_000;

/// The application's Kafka producer: one per app. Every message has its own
/// delivery promise; concurrent sends are batched by librdkafka.
#[napi]
pub struct KafkaProducer {
    inner: Arc<Producer>,
    sender: Sender,
}

/// A core producer with what sending from JavaScript needs: the ledger of
/// its delivery promises and the interned message keys. Shared by the
/// producer and its transactions.
#[derive(Clone)]
pub struct Sender {
    producer: Arc<Producer>,
    ledger: Rc<Ledger>,
    /// [`MESSAGE_KEYS`], read for every message sent.
    message_keys: Rc<InternedKeys>,
    key_counter: Rc<KeyCounter>,
}

#[napi]
impl KafkaProducer {
    /// Validates the options and creates the client; no network I/O happens
    /// until the first send or `connect()`. Throws `ERR_INVALID_CONFIG` naming
    /// the offending key.
    #[napi(constructor, catch_unwind)]
    pub fn new(
        env: &Env,
        #[napi(ts_arg_type = "ProducerOptions")] options: Option<Unknown<'_>>,
    ) -> napi::Result<Self> {
        let build = || -> CoreResult<Self> {
            let (mut options, logger) = read_producer_options(env, js::as_option(options))?;
            let sink = JsLogSink::sink(env, logger)?;
            let sender = Sender::build(env, |courier| {
                options.deliveries = Some(courier);
                Producer::new(options, sink)
            })?;
            Ok(KafkaProducer {
                inner: sender.producer.clone(),
                sender,
            })
        };
        build().map_err(|error| js::js_error(env, error))
    }

    /// Starts connecting and resolves at once; failures are logged and
    /// retried every `retryIntervalMs`. With `{ timeoutMs }`, waits for the
    /// brokers and rejects with `ERR_KAFKA_TIMED_OUT` if they do not answer.
    #[napi(
        catch_unwind,
        ts_args_type = "options?: ConnectOptions",
        ts_return_type = "Promise<void>"
    )]
    pub fn connect<'env>(
        &self,
        env: &'env Env,
        options: Option<Unknown<'env>>,
    ) -> napi::Result<PromiseRaw<'env, ()>> {
        let wait = match read_connect_options(js::as_option(options)) {
            Ok(wait) => wait,
            Err(error) => return rejected(env, error),
        };
        let producer = self.inner.clone();
        promise(env, async move { producer.connect(wait).await }, |_, ()| {
            Ok(())
        })
    }

    /// Sends messages to one topic; resolves with each message's partition and
    /// offset once all are acknowledged (`acks=all`).
    #[napi(
        catch_unwind,
        ts_args_type = "record: ProducerRecord",
        ts_return_type = "Promise<RecordMetadata[]>"
    )]
    pub fn send<'env>(
        &self,
        env: &'env Env,
        record: Unknown<'env>,
    ) -> napi::Result<PromiseRaw<'env, Vec<RecordMetadata>>> {
        self.sender.send(env, &record, None)
    }

    /// Sends to several topics in one call, like kafkajs' `sendBatch`.
    #[napi(
        catch_unwind,
        ts_args_type = "batch: ProducerBatch",
        ts_return_type = "Promise<RecordMetadata[]>"
    )]
    pub fn send_batch<'env>(
        &self,
        env: &'env Env,
        batch: Unknown<'env>,
    ) -> napi::Result<PromiseRaw<'env, Vec<RecordMetadata>>> {
        self.sender.send_batch(env, &batch, None)
    }

    /// Sends a `MovieEvent` to `movie-events`, keyed by `movieId`, with the
    /// current time as `timestamp`.
    #[napi(
        catch_unwind,
        ts_args_type = "eventType: MovieEventType, userId: string | number, movieId: string | number, metadata?: Record<string, any>",
        ts_return_type = "Promise<RecordMetadata>"
    )]
    pub fn send_movie_event<'env>(
        &self,
        env: &'env Env,
        event_type: Unknown<'env>,
        user_id: Unknown<'env>,
        movie_id: Unknown<'env>,
        metadata: Option<Unknown<'env>>,
    ) -> napi::Result<PromiseRaw<'env, RecordMetadata>> {
        let read = || -> CoreResult<(String, String, String, Option<String>)> {
            let event_type = js::string(&event_type, "eventType")?;
            let user_id = js::identifier(&user_id, "userId")?;
            let movie_id = js::identifier(&movie_id, "movieId")?;
            let metadata = match js::as_option(metadata) {
                Some(metadata) => {
                    js::object(&metadata, "metadata")?;
                    Some(js::json(env, &metadata, "metadata")?)
                }
                None => None,
            };
            Ok((event_type, user_id, movie_id, metadata))
        };
        let message = read().and_then(|(event_type, user_id, movie_id, metadata)| {
            self.inner
                .movie_event(&event_type, &user_id, &movie_id, metadata.as_deref())
                .map(|message| vec![message])
        });
        self.sender.send_tracked(env, message, true, None)
    }

    /// Sends a `MovieViewEvent` to `movie-views`, keyed by `movieId`.
    #[napi(
        catch_unwind,
        ts_args_type = "userId: string | number, movieId: string | number",
        ts_return_type = "Promise<RecordMetadata>"
    )]
    pub fn send_movie_view_event<'env>(
        &self,
        env: &'env Env,
        user_id: Unknown<'env>,
        movie_id: Unknown<'env>,
    ) -> napi::Result<PromiseRaw<'env, RecordMetadata>> {
        let message = js::identifier(&user_id, "userId").and_then(|user_id| {
            let movie_id = js::identifier(&movie_id, "movieId")?;
            self.inner
                .movie_view_event(&user_id, &movie_id)
                .map(|message| vec![message])
        });
        self.sender.send_tracked(env, message, true, None)
    }

    /// Sends any payload to any topic: strings and Buffers as they are,
    /// anything else as JSON.
    #[napi(
        catch_unwind,
        ts_args_type = "topic: string, payload: unknown, options?: SendMessageOptions",
        ts_return_type = "Promise<RecordMetadata>"
    )]
    pub fn send_message<'env>(
        &self,
        env: &'env Env,
        topic: Unknown<'env>,
        payload: Unknown<'env>,
        options: Option<Unknown<'env>>,
    ) -> napi::Result<PromiseRaw<'env, RecordMetadata>> {
        self.sender
            .send_message(env, &topic, &payload, options, None)
    }

    /// Creates the topics that do not exist yet (existing ones are untouched).
    #[napi(
        catch_unwind,
        ts_args_type = "topics: TopicConfig[], options?: { timeoutMs?: number }",
        ts_return_type = "Promise<TopicResult[]>"
    )]
    pub fn ensure_topics<'env>(
        &self,
        env: &'env Env,
        topics: Unknown<'env>,
        options: Option<Unknown<'env>>,
    ) -> napi::Result<PromiseRaw<'env, Vec<TopicResult>>> {
        let read = || -> CoreResult<(Vec<TopicSpec>, Duration)> {
            let specs = js::array(&topics, "topics")?
                .iter()
                .enumerate()
                .map(|(index, topic)| read_topic_spec(topic, &format!("topics[{index}]")))
                .collect::<CoreResult<Vec<_>>>()?;
            let timeout = read_timeout_option(options, DEFAULT_ADMIN_TIMEOUT_MS)?;
            Ok((specs, timeout))
        };
        let (specs, timeout) = match read() {
            Ok(arguments) => arguments,
            Err(error) => return rejected(env, error),
        };
        let producer = self.inner.clone();
        promise(
            env,
            async move { producer.ensure_topics(&specs, timeout).await },
            |_, outcomes| {
                Ok(outcomes
                    .into_iter()
                    .map(TopicResult::from)
                    .collect::<Vec<_>>())
            },
        )
    }

    /// Waits until every queued message is acknowledged; rejects with
    /// `ERR_KAFKA_TIMED_OUT` after `timeoutMs` (default 30000).
    #[napi(
        catch_unwind,
        ts_args_type = "timeoutMs?: number",
        ts_return_type = "Promise<void>"
    )]
    pub fn flush<'env>(
        &self,
        env: &'env Env,
        timeout_ms: Option<Unknown<'env>>,
    ) -> napi::Result<PromiseRaw<'env, ()>> {
        let timeout = match read_timeout(timeout_ms, "timeoutMs", DEFAULT_FLUSH_TIMEOUT_MS) {
            Ok(timeout) => timeout,
            Err(error) => return rejected(env, error),
        };
        let producer = self.inner.clone();
        promise(
            env,
            async move { producer.flush(timeout).await },
            |_, ()| Ok(()),
        )
    }

    /// Flushes (up to `timeoutMs`, default 30000), then closes the client.
    /// Safe to call more than once; later sends reject with `ERR_KAFKA_DISCONNECTED`.
    #[napi(
        catch_unwind,
        ts_args_type = "timeoutMs?: number",
        ts_return_type = "Promise<void>"
    )]
    pub fn disconnect<'env>(
        &self,
        env: &'env Env,
        timeout_ms: Option<Unknown<'env>>,
    ) -> napi::Result<PromiseRaw<'env, ()>> {
        let timeout = match read_timeout(timeout_ms, "timeoutMs", DEFAULT_FLUSH_TIMEOUT_MS) {
            Ok(timeout) => timeout,
            Err(error) => return rejected(env, error),
        };
        let producer = self.inner.clone();
        promise(
            env,
            async move { producer.disconnect(timeout).await },
            |_, ()| Ok(()),
        )
    }

    /// Runs `fn(tx)` in a transaction (this producer needs a `transactionalId`):
    /// what `tx` sends, and the offsets given to `tx.sendOffsets`, become
    /// visible to `read_committed` readers together when `fn` resolves, and
    /// never when it throws (the transaction is aborted and the promise
    /// rejects with `fn`'s error). Resolves with `fn`'s value. Transactions
    /// of one producer run one after the other. Without `fn`, resolves with
    /// the open transaction (kafkajs style): call its `commit` or `abort`.
    /// A newer instance with the same `transactionalId` fences this one:
    /// its transactions then reject with `ERR_KAFKA_PRODUCER_FENCED`.
    #[napi(
        catch_unwind,
        ts_generic_types = "T = KafkaTransaction",
        ts_args_type = "fn?: (tx: KafkaTransaction) => T | Promise<T>",
        ts_return_type = "Promise<T>"
    )]
    pub fn transaction<'env>(
        &self,
        env: &'env Env,
        run: Option<Unknown<'env>>,
    ) -> napi::Result<PromiseRaw<'env, ()>> {
        crate::binding::transaction::transaction(env, &self.sender, run)
    }

    /// Messages handed over but not yet acknowledged by the cluster.
    #[napi(getter, catch_unwind)]
    pub fn queued_messages(&self) -> u32 {
        u32::try_from(self.inner.queued_messages()).unwrap_or(u32::MAX)
    }

    /// Whether the brokers are reachable (since `connect()`; turns `false`
    /// when librdkafka reports every broker down, `true` again on recovery).
    #[napi(getter, catch_unwind)]
    pub fn is_connected(&self) -> bool {
        self.inner.is_connected()
    }

    /// Counters, delivery latency, queue depth, connectivity and librdkafka's
    /// latest statistics. Cheap: read from memory.
    #[napi(catch_unwind)]
    pub fn metrics(&self) -> crate::binding::metrics::ProducerMetrics {
        self.inner.metrics().into()
    }

    /// The client id in use (from options, `KAFKA_CLIENT_ID` or the default).
    #[napi(getter, catch_unwind)]
    pub fn client_id(&self) -> String {
        self.inner.client_id().to_string()
    }

    /// The bootstrap brokers in use.
    #[napi(getter, catch_unwind)]
    pub fn brokers(&self) -> Vec<String> {
        self.inner.brokers().to_vec()
    }

    /// The librdkafka configuration in effect, defaults included, secrets redacted.
    #[napi(catch_unwind)]
    pub fn effective_config(&self, env: &Env) -> napi::Result<BTreeMap<String, String>> {
        self.inner
            .effective_config()
            .map_err(|error| js::js_error(env, error))
    }
}

impl Sender {
    /// A sender for the producer `make` creates from the courier that
    /// carries its delivery reports to the ledger.
    pub fn build(
        env: &Env,
        make: impl FnOnce(Arc<Courier>) -> CoreResult<Arc<Producer>>,
    ) -> CoreResult<Sender> {
        let (ledger, courier) = Ledger::new(env).map_err(internal)?;
        let message_keys = Rc::new(InternedKeys::new(env, MESSAGE_KEYS).map_err(internal)?);
        let key_counter = Rc::new(KeyCounter::new(env).map_err(internal)?);
        Ok(Sender {
            producer: make(courier)?,
            ledger,
            message_keys,
            key_counter,
        })
    }

    pub fn producer(&self) -> &Arc<Producer> {
        &self.producer
    }

    /// `send(record)`: messages to one topic.
    pub fn send<'env>(
        &self,
        env: &'env Env,
        record: &Unknown<'env>,
        scope: Option<TransactionScope>,
    ) -> napi::Result<PromiseRaw<'env, Vec<RecordMetadata>>> {
        let messages = self
            .message_keys
            .in_scope()
            .map_err(internal)
            .and_then(|keys| read_record(env, &keys, &self.key_counter, record, "record"));
        self.send_tracked(env, messages, false, scope)
    }

    /// `sendBatch(batch)`: messages to several topics.
    pub fn send_batch<'env>(
        &self,
        env: &'env Env,
        batch: &Unknown<'env>,
        scope: Option<TransactionScope>,
    ) -> napi::Result<PromiseRaw<'env, Vec<RecordMetadata>>> {
        let messages = self
            .message_keys
            .in_scope()
            .map_err(internal)
            .and_then(|keys| read_batch(env, &keys, &self.key_counter, batch));
        self.send_tracked(env, messages, false, scope)
    }

    /// `sendMessage(topic, payload, options)`: one message, any payload.
    pub fn send_message<'env>(
        &self,
        env: &'env Env,
        topic: &Unknown<'env>,
        payload: &Unknown<'env>,
        options: Option<Unknown<'env>>,
        scope: Option<TransactionScope>,
    ) -> napi::Result<PromiseRaw<'env, RecordMetadata>> {
        let read = || -> CoreResult<OutgoingMessage> {
            let topic = js::string(topic, "topic")?;
            let mut message = match js::as_option(options) {
                Some(options) => {
                    let options = js::object(&options, "options")?;
                    let mut path = FieldPath::default();
                    path.reset(format_args!("options"));
                    let keys = self.message_keys.in_scope().map_err(internal)?;
                    let (message, present) = read_message_fields(&keys, &options, &mut path)?;
                    js::reject_unknown_keys_beyond(
                        &options,
                        "options",
                        &MESSAGE_KEYS[1..],
                        present,
                    )?;
                    message
                }
                None => OutgoingMessage::default(),
            };
            message.topic = topic;
            message.value = Some(
                read_value(env, payload, "payload")?
                    .ok_or_else(|| js::invalid("payload must not be null or undefined"))?,
            );
            Ok(message)
        };
        self.send_tracked(env, read().map(|message| vec![message]), true, scope)
    }

    /// Hands the messages to the core producer on the calling (JavaScript)
    /// thread, so they reach librdkafka in call order, and returns the
    /// promise the ledger settles: with one report when `single`, else with
    /// an array. Inside the runtime so a backlog can drain.
    pub fn send_tracked<'env, T>(
        &self,
        env: &'env Env,
        messages: CoreResult<Vec<OutgoingMessage>>,
        single: bool,
        scope: Option<TransactionScope>,
    ) -> napi::Result<PromiseRaw<'env, T>>
    where
        T: napi::bindgen_prelude::ToNapiValue + Send + 'static,
    {
        let messages = match messages {
            Ok(messages) => messages,
            Err(error) => return rejected(env, error),
        };
        let topics = Topics::of(messages.iter().map(|message| message.topic.as_str()));
        let tag = self.ledger.next_tag();
        let handed_over = within_runtime_if_available(|| {
            self.producer.start_send_tracked_in(messages, tag, scope)
        });
        match handed_over {
            Ok(()) => {
                let promise = self.ledger.promise(env, tag, topics, single)?;
                Ok(PromiseRaw::new(env.raw(), promise))
            }
            Err(error) => rejected(env, error),
        }
    }
}

const PRODUCER_OPTION_KEYS: &[&str] = &[
    "brokers",
    "clientId",
    "logLevel",
    "logger",
    "config",
    "enqueueTimeoutMs",
    "retryIntervalMs",
    "topicPrefix",
    "statisticsIntervalMs",
    "generateTraceparent",
    "transactionalId",
    "transactionTimeoutMs",
];

fn read_producer_options<'env>(
    env: &Env,
    options: Option<Unknown<'env>>,
) -> CoreResult<(CoreProducerOptions, Option<Unknown<'env>>)> {
    let mut result = CoreProducerOptions::default();
    let Some(options) = options else {
        return Ok((result, None));
    };
    let options = js::object(&options, "options")?;
    js::reject_unknown_keys(&options, "options", PRODUCER_OPTION_KEYS)?;
    result.client = read_client_options(env, &options)?;
    if let Some(ms) = js::optional(&options, "enqueueTimeoutMs", "options", |value, what| {
        js::integer(value, what, 0, 3_600_000)
    })? {
        result.enqueue_timeout = Duration::from_millis(ms as u64);
    }
    if let Some(ms) = js::optional(&options, "retryIntervalMs", "options", |value, what| {
        js::integer(value, what, 10, 3_600_000)
    })? {
        result.connect_retry_interval = Duration::from_millis(ms as u64);
    }
    result.topic_prefix = js::optional(&options, "topicPrefix", "options", js::string)?;
    result.generate_traceparent =
        js::optional(&options, "generateTraceparent", "options", js::boolean)?.unwrap_or(false);
    result.transactional_id = js::optional(&options, "transactionalId", "options", js::string)?;
    result.transaction_timeout = js::optional(
        &options,
        "transactionTimeoutMs",
        "options",
        |value, what| js::integer(value, what, 1_000, 3_600_000),
    )?
    .map(|ms| Duration::from_millis(ms as u64));
    let logger = js::property(&options, "logger", "options")?;
    Ok((result, logger))
}

/// The options every client shares: brokers, client id, log level, pass-through config.
pub fn read_client_options(_env: &Env, options: &Object<'_>) -> CoreResult<ClientOptions> {
    let brokers = js::optional(options, "brokers", "options", |value, what| {
        if value.is_array().unwrap_or(false) {
            js::array(value, what)?
                .iter()
                .enumerate()
                .map(|(index, broker)| js::string(broker, &format!("{what}[{index}]")))
                .collect()
        } else {
            Ok(js::string(value, what)?
                .split(',')
                .map(str::to_string)
                .collect())
        }
    })?;
    let client_id = js::optional(options, "clientId", "options", js::string)?;
    let log_level = js::optional(options, "logLevel", "options", |value, what| {
        let name = js::string(value, what)?;
        LogLevel::parse(&name).ok_or_else(|| {
            js::invalid(format!(
                "{what} must be one of off, error, warn, info, debug, trace (got {name:?})"
            ))
        })
    })?;
    let mut properties =
        js::optional(options, "config", "options", read_string_map)?.unwrap_or_default();
    if let Some(ms) = js::optional(options, "statisticsIntervalMs", "options", |value, what| {
        js::integer(value, what, 0, 86_400_000)
    })? {
        properties.insert("statistics.interval.ms".into(), ms.to_string());
    }
    Ok(ClientOptions {
        brokers,
        client_id,
        log_level,
        properties,
    })
}

/// `{ key: string | number | boolean }` as strings, the form librdkafka takes.
fn read_string_map(value: &Unknown<'_>, what: &str) -> CoreResult<BTreeMap<String, String>> {
    let object = js::object(value, what)?;
    let mut map = BTreeMap::new();
    for key in js::keys(&object, what)? {
        let Some(entry) = js::property(&object, &key, what)? else {
            continue;
        };
        let name = format!("{what}['{key}']");
        let text = match entry.get_type() {
            Ok(napi::ValueType::String) => js::string(&entry, &name)?,
            Ok(napi::ValueType::Number) => {
                let number = js::number(&entry, &name)?;
                if number.fract() == 0.0 && number.abs() < 9.0e15 {
                    format!("{}", number as i64)
                } else {
                    format!("{number}")
                }
            }
            Ok(napi::ValueType::Boolean) => js::boolean(&entry, &name)?.to_string(),
            _ => {
                return Err(js::invalid(format!(
                    "{name} must be a string, number or boolean (got {})",
                    js::type_name(&entry)
                )))
            }
        };
        map.insert(key, text);
    }
    Ok(map)
}

fn read_connect_options(options: Option<Unknown<'_>>) -> CoreResult<Option<Duration>> {
    let Some(options) = options else {
        return Ok(None);
    };
    let options = js::object(&options, "options")?;
    js::reject_unknown_keys(&options, "options", &["timeoutMs"])?;
    Ok(
        js::optional(&options, "timeoutMs", "options", |value, what| {
            js::integer(value, what, 0, 3_600_000)
        })?
        .map(|ms| Duration::from_millis(ms as u64)),
    )
}

fn read_timeout(value: Option<Unknown<'_>>, what: &str, default_ms: u32) -> CoreResult<Duration> {
    let ms = match js::as_option(value) {
        Some(value) => js::integer(&value, what, 0, 3_600_000)?,
        None => i64::from(default_ms),
    };
    Ok(Duration::from_millis(ms as u64))
}

fn read_timeout_option(options: Option<Unknown<'_>>, default_ms: u32) -> CoreResult<Duration> {
    let Some(options) = js::as_option(options) else {
        return Ok(Duration::from_millis(u64::from(default_ms)));
    };
    let options = js::object(&options, "options")?;
    js::reject_unknown_keys(&options, "options", &["timeoutMs"])?;
    let ms = js::optional(&options, "timeoutMs", "options", |value, what| {
        js::integer(value, what, 1, 3_600_000)
    })?;
    Ok(Duration::from_millis(
        ms.map_or(u64::from(default_ms), |ms| ms as u64),
    ))
}

fn read_batch(
    env: &Env,
    keys: &KeysInScope,
    key_counter: &KeyCounter,
    batch: &Unknown<'_>,
) -> CoreResult<Vec<OutgoingMessage>> {
    let batch = js::object(batch, "batch")?;
    js::reject_unknown_keys(&batch, "batch", &["topicMessages"])?;
    let records = js::property(&batch, "topicMessages", "batch")?
        .ok_or_else(|| js::invalid("batch.topicMessages is required"))?;
    let mut messages = Vec::new();
    for (index, record) in js::array(&records, "batch.topicMessages")?
        .iter()
        .enumerate()
    {
        messages.extend(read_record(
            env,
            keys,
            key_counter,
            record,
            &format!("batch.topicMessages[{index}]"),
        )?);
    }
    Ok(messages)
}

fn read_record(
    env: &Env,
    keys: &KeysInScope,
    key_counter: &KeyCounter,
    record: &Unknown<'_>,
    what: &str,
) -> CoreResult<Vec<OutgoingMessage>> {
    let record = js::object(record, what)?;
    js::reject_unknown_keys(&record, what, &["topic", "messages"])?;
    let topic = js::optional(&record, "topic", what, js::string)?
        .ok_or_else(|| js::invalid(format!("{what}.topic is required")))?;
    let messages = js::property(&record, "messages", what)?
        .ok_or_else(|| js::invalid(format!("{what}.messages is required")))?;
    let elements = js::array(&messages, &format!("{what}.messages"))?;
    let key_counts = key_counter.counts(env, &messages);
    // One buffer for every message's path (`record.messages[7]`), rewritten
    // in place: formatting a path per message and property cost allocations.
    let mut path = FieldPath::default();
    let mut outgoing_messages = Vec::with_capacity(elements.len());
    for (index, message) in elements.iter().enumerate() {
        path.reset(format_args!("{what}.messages[{index}]"));
        let message = js::object(message, path.as_str())?;
        let (mut outgoing, present) = read_message_fields(keys, &message, &mut path)?;
        outgoing.topic = topic.clone();
        // `value` must be present: `null` is a deliberate tombstone, a
        // missing value is almost always a bug.
        let value = read_field(keys, &message, &mut path, MessageKey::Value)?;
        if matches!(value.get_type(), Ok(napi::ValueType::Undefined)) {
            return Err(js::invalid(format!(
                "{}.value is required (use null for a tombstone)",
                path.as_str()
            )));
        }
        // Enumerated here only when its count says a key is unknown (or it
        // could not be counted): then for the key's name, or the error.
        let counted_known = key_counts
            .get(index)
            .is_some_and(|&count| count != KeyCounter::UNREADABLE && count as usize <= present + 1);
        if !counted_known {
            js::reject_unknown_keys_beyond(&message, path.as_str(), MESSAGE_KEYS, present + 1)?;
        }
        outgoing.value = path.within(MessageKey::Value.name(), |what| {
            read_value(env, &value, what)
        })?;
        outgoing_messages.push(outgoing);
    }
    Ok(outgoing_messages)
}

/// The properties of a message (`send`); `sendMessage`'s options are all but
/// `value`. In the order of [`MessageKey`], which indexes their interned keys.
const MESSAGE_KEYS: &[&str] = &["value", "key", "headers", "partition", "timestamp"];

#[derive(Clone, Copy)]
enum MessageKey {
    Value,
    Key,
    Headers,
    Partition,
    Timestamp,
}

impl MessageKey {
    fn name(self) -> &'static str {
        MESSAGE_KEYS[self as usize]
    }
}

/// `object[key]`; a failed read (a throwing getter or trap) names `path.key`.
fn read_field<'env>(
    keys: &KeysInScope,
    object: &Object<'env>,
    path: &mut FieldPath,
    key: MessageKey,
) -> CoreResult<Unknown<'env>> {
    keys.get(object, key as usize).map_err(|error| {
        path.within(key.name(), |what| {
            js::unreadable(object, what.to_string(), &error)
        })
    })
}

fn internal(error: napi::Error) -> crate::core::error::CoreError {
    crate::core::error::CoreError::Internal(error.reason)
}

/// Where in the arguments a value was read, for error messages.
#[derive(Default)]
struct FieldPath {
    text: String,
}

impl FieldPath {
    fn reset(&mut self, base: std::fmt::Arguments<'_>) {
        use std::fmt::Write;
        self.text.clear();
        let _ = self.text.write_fmt(base);
    }

    fn as_str(&self) -> &str {
        &self.text
    }

    /// Runs `read` with the path of the property `name`.
    fn within<T>(&mut self, name: &str, read: impl FnOnce(&str) -> T) -> T {
        let base = self.text.len();
        self.text.push('.');
        self.text.push_str(name);
        let result = read(&self.text);
        self.text.truncate(base);
        result
    }
}

/// `object[key]` converted under its own path (`….key`); `None` when absent.
fn read_optional<'env, T>(
    keys: &KeysInScope,
    object: &Object<'env>,
    path: &mut FieldPath,
    key: MessageKey,
    convert: impl FnOnce(&Unknown<'env>, &str) -> CoreResult<T>,
) -> CoreResult<Option<T>> {
    match js::as_option(Some(read_field(keys, object, path, key)?)) {
        Some(value) => path
            .within(key.name(), |what| convert(&value, what))
            .map(Some),
        None => Ok(None),
    }
}

/// Key, headers, partition and timestamp of a message (everything but the
/// value), and how many of them were given.
fn read_message_fields(
    keys: &KeysInScope,
    object: &Object<'_>,
    path: &mut FieldPath,
) -> CoreResult<(OutgoingMessage, usize)> {
    let key = read_optional(keys, object, path, MessageKey::Key, js::bytes)?;
    let partition = read_optional(keys, object, path, MessageKey::Partition, |value, what| {
        js::integer(value, what, 0, i64::from(i32::MAX))
    })?
    .map(|partition| partition as i32);
    let timestamp = read_optional(keys, object, path, MessageKey::Timestamp, read_timestamp)?;
    let headers = read_optional(keys, object, path, MessageKey::Headers, read_headers)?;
    let present = usize::from(key.is_some())
        + usize::from(partition.is_some())
        + usize::from(timestamp.is_some())
        + usize::from(headers.is_some());
    let message = OutgoingMessage {
        topic: String::new(),
        key,
        value: None,
        headers: headers.unwrap_or_default(),
        partition,
        timestamp,
    };
    Ok((message, present))
}

fn read_value(env: &Env, value: &Unknown<'_>, what: &str) -> CoreResult<Option<Vec<u8>>> {
    if js::is_nullish(value) {
        return Ok(None);
    }
    js::payload(env, value, what).map(Some)
}

fn read_timestamp(value: &Unknown<'_>, what: &str) -> CoreResult<i64> {
    match value.get_type() {
        Ok(napi::ValueType::String) => {
            let text = js::string(value, what)?;
            text.trim()
                .parse::<i64>()
                .ok()
                .filter(|ms| *ms >= 0)
                .ok_or_else(|| {
                    js::invalid(format!(
                        "{what} must be milliseconds since the epoch (got {:?})",
                        text
                    ))
                })
        }
        _ => js::integer(value, what, 0, 8_640_000_000_000_000),
    }
}

fn read_headers(value: &Unknown<'_>, what: &str) -> CoreResult<Vec<(String, Option<Vec<u8>>)>> {
    let object = js::object(value, what)?;
    let mut headers = Vec::new();
    for key in js::keys(&object, what)? {
        let entry: Unknown<'_> = object
            .get_named_property(&key)
            .map_err(|error| js::invalid(format!("{what}['{key}']: {}", error.reason)))?;
        let name = format!("{what}['{key}']");
        // An array repeats the header, as Kafka allows.
        let values = if entry.is_array().unwrap_or(false) {
            js::array(&entry, &name)?
        } else {
            vec![entry]
        };
        for value in values {
            let bytes = if js::is_nullish(&value) {
                None
            } else {
                Some(js::bytes(&value, &name)?)
            };
            headers.push((key.clone(), bytes));
        }
    }
    Ok(headers)
}

fn read_topic_spec(value: &Unknown<'_>, what: &str) -> CoreResult<TopicSpec> {
    let object = js::object(value, what)?;
    js::reject_unknown_keys(
        &object,
        what,
        &["name", "partitions", "replicationFactor", "config"],
    )?;
    let name = js::optional(&object, "name", what, js::string)?
        .ok_or_else(|| js::invalid(format!("{what}.name is required")))?;
    let partitions = js::optional(&object, "partitions", what, |value, what| {
        js::integer(value, what, 1, 1_000_000)
    })?
    .unwrap_or(1);
    let replication_factor = js::optional(&object, "replicationFactor", what, |value, what| {
        js::integer(value, what, -1, i64::from(i16::MAX))
    })?
    .unwrap_or(-1);
    let config = js::optional(&object, "config", what, read_string_map)?.unwrap_or_default();
    Ok(TopicSpec {
        name,
        partitions: partitions as i32,
        replication_factor: replication_factor as i32,
        config: config.into_iter().collect(),
    })
}
