//! `registerConsumer` for JavaScript: reads options, wraps the callback in a
//! driver called as a thread-safe function whose promise the core awaits, and
//! exposes the handle.

use crate::binding::handoff::JsHandler;
use crate::binding::js::{self, promise, rejected, CoreResult};
use crate::binding::logger::JsLogSink;
use crate::binding::producer::{read_client_options, Sender};
use crate::binding::transaction::KafkaTransaction;
use crate::core::consumer::{
    exactly_once_producer, BatchOptions, ConsumerHandle as CoreConsumerHandle,
    ConsumerOptions as CoreConsumerOptions, ConsumerStats as CoreConsumerStats, DeadLetter,
    ExactlyOnce,
};
use crate::core::schema::PayloadSchema;
use napi::bindgen_prelude::{JavaScriptClassExt, PromiseRaw, Unknown};
use napi::{Env, JsValue, ValueType};
use napi_derive::napi;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Options of `registerConsumer`. Every field is optional.
#[napi(object)]
pub struct ConsumerOptions {
    /// The consumer group; each consumer should have its own. Default `<clientId>-group`.
    pub group_id: Option<String>,
    /// Name in logs and on the broker. Default `<first topic>-consumer`.
    pub client_id: Option<String>,
    /// Default `KAFKA_BROKERS`.
    #[napi(ts_type = "string | string[]")]
    pub brokers: Option<String>,
    /// Where a new group starts: the earliest message (`true`) or new ones only (default).
    pub from_beginning: Option<bool>,
    /// How values are decoded and validated in Rust before the callback sees them:
    /// `'json'` (default: any JSON), `'raw'` (a Buffer), one of the platform's event types,
    /// or a JSON Schema document.
    #[napi(
        ts_type = "'json' | 'raw' | 'MovieEvent' | 'MovieViewEvent' | 'AnalyticsEvent' | Record<string, any>"
    )]
    pub schema: Option<String>,
    /// Messages with different keys handled at once; same key always in order. Default 1.
    pub concurrency: Option<u32>,
    /// Deliver arrays of messages to the callback instead of one at a time.
    pub batch: Option<BatchConfig>,
    pub retry: Option<RetryConfig>,
    /// Where messages go that fail validation or every retry: default `<topic>.dlq`;
    /// `false` skips (and counts) them instead.
    #[napi(ts_type = "string | false")]
    pub dead_letter_topic: Option<String>,
    /// At most this many messages are received but not yet committed (unfinished,
    /// finished behind an unfinished one of the same partition, or awaiting the
    /// commit's acknowledgement); fetching pauses beyond. This bounds what a crash
    /// redelivers: offsets are committed each time half of it has finished since the
    /// last such commit, or a smaller share when intake waits for commits, without
    /// waiting for the previous commit's acknowledgement (besides every 5 s, on revoke
    /// and on `close()`). Default 5000.
    pub max_in_flight: Option<u32>,
    /// Larger values never reach the callback: they are parked in the dead-letter topic
    /// (`x-dlq-error-code: ERR_VALUE_TOO_LARGE`), or skipped with `deadLetterTopic: false`.
    /// Default 1048576 (1 MiB, Kafka's default record size limit).
    pub max_value_bytes: Option<u32>,
    /// Default 45000.
    pub session_timeout_ms: Option<u32>,
    /// How long a revoke or `close()` waits for in-flight messages. Default 30000.
    pub drain_timeout_ms: Option<u32>,
    /// How long `registerConsumer` waits to join the group. Default 60000.
    pub join_timeout_ms: Option<u32>,
    /// How often librdkafka reports the statistics behind `metrics()` (broker
    /// state, group state, rebalances); `connected` comes back on the next
    /// report after an outage. Default `KAFKA_STATISTICS_INTERVAL_MS`, else 5000; 0 turns them off.
    pub statistics_interval_ms: Option<u32>,
    #[napi(ts_type = "LogLevel")]
    pub log_level: Option<String>,
    #[napi(ts_type = "KafkaLogger")]
    pub logger: Option<String>,
    /// Any librdkafka consumer property.
    #[napi(ts_type = "Record<string, string | number | boolean>")]
    pub config: Option<String>,
    /// Whether messages of transactions that are still open or were aborted
    /// are delivered: `'read_committed'` (default, librdkafka's) waits for
    /// commits and skips aborted ones (on brokers that report aborted
    /// transactions), `'read_uncommitted'` delivers everything at once.
    #[napi(ts_type = "'read_committed' | 'read_uncommitted'")]
    pub isolation_level: Option<String>,
    /// Consume-transform-produce exactly once: each run of messages is
    /// handled in a transaction that also commits their offsets. The callback
    /// gets a second argument, the transaction's sender (`tx.send`,
    /// `tx.sendBatch`, `tx.sendMessage`): what it sends and the offsets
    /// commit together, so after a crash at any point `read_committed`
    /// readers see each output exactly once. A failed callback aborts the
    /// transaction (retries and the dead-letter topic apply, the dead-letter
    /// record being written in a transaction too). Needs `concurrency` 1.
    pub exactly_once: Option<ExactlyOnceConfig>,
}

#[napi(object)]
pub struct ExactlyOnceConfig {
    /// The transactional id of the consumer's producer: the same across
    /// restarts of one instance (the restart then fences the old one and
    /// aborts what it left open at once), different for each instance
    /// running at the same time (e.g. `movie-stats-${podName}`).
    pub transactional_id: String,
    /// The longest a transaction may stay open. Default 60000.
    pub transaction_timeout_ms: Option<u32>,
    /// librdkafka properties for the transactional producer (e.g.
    /// `{ 'compression.type': 'zstd' }`), over its defaults and the security
    /// settings it takes from the consumer's `config`.
    #[napi(ts_type = "Record<string, string | number | boolean>")]
    pub config: Option<String>,
}

#[napi(object)]
pub struct BatchConfig {
    /// Default 100.
    pub max_messages: Option<u32>,
    /// How long to wait to fill a batch. Default 100.
    pub max_wait_ms: Option<u32>,
}

#[napi(object)]
pub struct RetryConfig {
    /// Attempts after the first failure. Default 3.
    pub retries: Option<u32>,
    /// Default 100; doubles each attempt.
    pub initial_backoff_ms: Option<u32>,
    /// Default 30000.
    pub max_backoff_ms: Option<u32>,
}

/// What the callback receives.
#[napi(object)]
pub struct ConsumedMessage {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    #[napi(ts_type = "string | null")]
    pub key: Option<String>,
    /// The parsed (and validated) JSON value, or a Buffer with `schema: 'raw'`.
    #[napi(ts_type = "any")]
    pub value: Option<String>,
    pub headers: std::collections::HashMap<String, String>,
    /// Milliseconds since the Unix epoch.
    #[napi(ts_type = "number | null")]
    pub timestamp: Option<i64>,
    /// 1 on first delivery, 2, 3, … on retries.
    pub attempt: u32,
    /// The W3C trace context the producer sent (a valid `traceparent` header),
    /// for linking the consumer's span to the producer's, e.g. with
    /// OpenTelemetry's `propagation.extract(context.active(), message.headers)`
    /// or a span link to `{ traceId, spanId }`. Absent without a valid one.
    pub trace_context: Option<TraceContext>,
}

/// A parsed W3C `traceparent` (and the `tracestate` sent with it).
#[napi(object)]
pub struct TraceContext {
    /// The header as received.
    pub traceparent: String,
    /// 32 lowercase hex digits.
    pub trace_id: String,
    /// The producer's span: 16 lowercase hex digits.
    pub span_id: String,
    /// The producer's sampling decision (flag 01).
    pub sampled: bool,
    pub tracestate: Option<String>,
}

#[napi(object)]
pub struct TopicPartition {
    pub topic: String,
    pub partition: i32,
}

#[napi(object)]
pub struct PartitionLag {
    pub topic: String,
    pub partition: i32,
    pub lag: i64,
}

#[napi(object)]
pub struct ConsumerStats {
    pub received: i64,
    pub processed: i64,
    pub retried: i64,
    pub dead_lettered: i64,
    pub skipped: i64,
    /// Received and not yet committable (see `maxInFlight`).
    pub in_flight: i64,
    pub paused: bool,
    pub lag: Vec<PartitionLag>,
}

impl From<CoreConsumerStats> for ConsumerStats {
    fn from(stats: CoreConsumerStats) -> Self {
        use crate::binding::metrics::count;
        ConsumerStats {
            received: count(stats.received),
            processed: count(stats.processed),
            retried: count(stats.retried),
            dead_lettered: count(stats.dead_lettered),
            skipped: count(stats.skipped),
            in_flight: count(stats.in_flight),
            paused: stats.paused,
            lag: stats
                .lag
                .into_iter()
                .map(|lag| PartitionLag {
                    topic: lag.topic,
                    partition: lag.partition,
                    lag: lag.lag,
                })
                .collect(),
        }
    }
}

/// Consumers run until `close()`, as kafkajs consumers run until `disconnect()`:
/// an application that lets go of the handle must not stop its delivery.
static RUNNING: Mutex<Vec<Arc<CoreConsumerHandle>>> = Mutex::new(Vec::new());

/// A running consumer, as returned by `registerConsumer`.
#[napi(js_name = "ConsumerHandle")]
pub struct JsConsumerHandle {
    inner: Arc<CoreConsumerHandle>,
}

#[napi]
impl JsConsumerHandle {
    /// Stops fetching, lets in-flight messages finish, commits and leaves the group. Idempotent.
    #[napi(catch_unwind, ts_return_type = "Promise<void>")]
    pub fn close<'env>(&self, env: &'env Env) -> napi::Result<PromiseRaw<'env, ()>> {
        let inner = self.inner.clone();
        promise(
            env,
            async move {
                let closed = inner.close().await;
                if let Ok(mut running) = RUNNING.lock() {
                    running.retain(|consumer| !Arc::ptr_eq(consumer, &inner));
                }
                closed
            },
            |_, ()| Ok(()),
        )
    }

    /// Stops delivering new messages (in-flight ones finish) and pauses fetching.
    #[napi(catch_unwind)]
    pub fn pause(&self) {
        self.inner.pause();
    }

    #[napi(catch_unwind)]
    pub fn resume(&self) {
        self.inner.resume();
    }

    #[napi(catch_unwind)]
    pub fn stats(&self) -> ConsumerStats {
        self.inner.stats().into()
    }

    /// Counters, processing time, lag per partition, connectivity and
    /// librdkafka's latest statistics. Cheap: read from memory.
    #[napi(catch_unwind)]
    pub fn metrics(&self) -> crate::binding::metrics::ConsumerMetrics {
        self.inner.metrics().into()
    }

    /// The partitions this member currently owns.
    #[napi(catch_unwind)]
    pub fn assignment(&self) -> Vec<TopicPartition> {
        self.inner
            .assignment()
            .into_iter()
            .map(|(topic, partition)| TopicPartition { topic, partition })
            .collect()
    }

    #[napi(getter, catch_unwind)]
    pub fn name(&self) -> String {
        self.inner.name().to_string()
    }

    #[napi(getter, catch_unwind)]
    pub fn group_id(&self) -> String {
        self.inner.group_id().to_string()
    }
}

/// Subscribes `callback` to `topic` in its own consumer group; resolves once
/// the group has assigned partitions. The callback may return a promise; a
/// message's offset is committed only after it settles (or after the message
/// is parked in the dead-letter topic). With the `batch` option the callback
/// receives arrays: `registerConsumer<ConsumedMessage[]>(topic, handleBatch, { batch: {} })`.
/// With `exactlyOnce`, its second argument `tx` sends within the transaction
/// that commits the messages' offsets (`undefined` otherwise).
#[napi(
    catch_unwind,
    ts_generic_types = "Message extends ConsumedMessage | ConsumedMessage[] = ConsumedMessage",
    ts_args_type = "topic: string | string[], callback: (message: Message, tx?: KafkaTransaction) => unknown, options?: ConsumerOptions",
    ts_return_type = "Promise<ConsumerHandle>"
)]
pub fn register_consumer<'env>(
    env: &'env Env,
    topic: Unknown<'env>,
    callback: Unknown<'env>,
    options: Option<Unknown<'env>>,
) -> napi::Result<PromiseRaw<'env, JsConsumerHandle>> {
    let read = || -> CoreResult<_> {
        let topics = read_topics(&topic)?;
        if !matches!(callback.get_type(), Ok(ValueType::Function)) {
            return Err(js::invalid(format!(
                "callback must be a function (got {})",
                js::type_name(&callback)
            )));
        }
        let (mut options, exactly_once, logger) =
            read_consumer_options(env, topics, js::as_option(options))?;
        let batch = options.batch.is_some();
        let sink = JsLogSink::sink(env, logger)?;
        let sender = match exactly_once {
            Some(request) => {
                let sender = Sender::build(env, |courier| {
                    exactly_once_producer(
                        &options,
                        ExactlyOnce {
                            transactional_id: request.transactional_id,
                            transaction_timeout: request.timeout,
                            properties: request.properties,
                        },
                        Some(courier),
                        sink.clone(),
                    )
                })?;
                options.exactly_once = Some(sender.producer().clone());
                Some(
                    KafkaTransaction::for_handler(sender)
                        .into_instance(env)
                        .map_err(|error| js::invalid(format!("exactlyOnce: {}", error.reason)))?,
                )
            }
            None => None,
        };
        let sender = sender.map(|instance| instance.to_unknown());
        let handler = Arc::new(JsHandler::new(
            env,
            callback,
            batch,
            options.yield_signal.clone(),
            sender,
        )?);
        Ok((options, handler, sink))
    };
    let (options, handler, sink) = match read() {
        Ok(arguments) => arguments,
        Err(error) => return rejected(env, error),
    };
    promise(
        env,
        CoreConsumerHandle::register(options, handler, sink),
        |_, handle| {
            let inner = Arc::new(handle);
            if let Ok(mut running) = RUNNING.lock() {
                running.push(inner.clone());
            }
            Ok(JsConsumerHandle { inner })
        },
    )
}

fn read_topics(value: &Unknown<'_>) -> CoreResult<Vec<String>> {
    if value.is_array().unwrap_or(false) {
        js::array(value, "topic")?
            .iter()
            .enumerate()
            .map(|(index, topic)| js::string(topic, &format!("topic[{index}]")))
            .collect()
    } else {
        Ok(vec![js::string(value, "topic")?])
    }
}

const CONSUMER_OPTION_KEYS: &[&str] = &[
    "groupId",
    "clientId",
    "brokers",
    "fromBeginning",
    "schema",
    "concurrency",
    "batch",
    "retry",
    "deadLetterTopic",
    "maxInFlight",
    "maxValueBytes",
    "sessionTimeoutMs",
    "drainTimeoutMs",
    "joinTimeoutMs",
    "statisticsIntervalMs",
    "logLevel",
    "logger",
    "config",
    "isolationLevel",
    "exactlyOnce",
];

/// What `options.exactlyOnce` asked for.
struct ExactlyOnceRequest {
    transactional_id: String,
    timeout: Option<Duration>,
    properties: BTreeMap<String, String>,
}

fn read_consumer_options<'env>(
    env: &Env,
    topics: Vec<String>,
    options: Option<Unknown<'env>>,
) -> CoreResult<(
    CoreConsumerOptions,
    Option<ExactlyOnceRequest>,
    Option<Unknown<'env>>,
)> {
    let mut result = CoreConsumerOptions::new(topics);
    let Some(options) = options else {
        return Ok((result, None, None));
    };
    let options = js::object(&options, "options")?;
    js::reject_unknown_keys(&options, "options", CONSUMER_OPTION_KEYS)?;
    result.client = read_client_options(env, &options)?;
    let millis = |ms: i64| Duration::from_millis(ms as u64);
    let int = |min: i64, max: i64| {
        move |value: &Unknown<'_>, what: &str| js::integer(value, what, min, max)
    };
    result.group_id = js::optional(&options, "groupId", "options", js::string)?;
    result.from_beginning =
        js::optional(&options, "fromBeginning", "options", js::boolean)?.unwrap_or(false);
    if let Some(schema) = js::property(&options, "schema", "options")? {
        result.schema = read_schema(env, &schema)?;
    }
    if let Some(concurrency) = js::optional(&options, "concurrency", "options", int(1, 10_000))? {
        result.concurrency = concurrency as usize;
    }
    if let Some(max) = js::optional(&options, "maxInFlight", "options", int(1, 1_000_000))? {
        result.max_in_flight = max as usize;
    }
    if let Some(max) = js::optional(&options, "maxValueBytes", "options", int(1, 1_000_000_000))? {
        result.max_value_bytes = max as usize;
    }
    if let Some(ms) = js::optional(
        &options,
        "sessionTimeoutMs",
        "options",
        int(1_000, 3_600_000),
    )? {
        result.session_timeout = millis(ms);
    }
    if let Some(ms) = js::optional(&options, "drainTimeoutMs", "options", int(0, 3_600_000))? {
        result.drain_timeout = millis(ms);
    }
    if let Some(ms) = js::optional(&options, "joinTimeoutMs", "options", int(1, 3_600_000))? {
        result.join_timeout = millis(ms);
    }
    if let Some(batch) = js::property(&options, "batch", "options")? {
        let batch = js::object(&batch, "options.batch")?;
        js::reject_unknown_keys(&batch, "options.batch", &["maxMessages", "maxWaitMs"])?;
        result.batch = Some(BatchOptions {
            max_messages: js::optional(&batch, "maxMessages", "options.batch", int(1, 1_000_000))?
                .unwrap_or(100) as usize,
            max_wait: millis(
                js::optional(&batch, "maxWaitMs", "options.batch", int(0, 3_600_000))?
                    .unwrap_or(100),
            ),
        });
    }
    if let Some(retry) = js::property(&options, "retry", "options")? {
        let retry = js::object(&retry, "options.retry")?;
        js::reject_unknown_keys(
            &retry,
            "options.retry",
            &["retries", "initialBackoffMs", "maxBackoffMs"],
        )?;
        if let Some(retries) = js::optional(&retry, "retries", "options.retry", int(0, 1_000))? {
            result.retry.retries = retries as u32;
        }
        if let Some(ms) = js::optional(
            &retry,
            "initialBackoffMs",
            "options.retry",
            int(0, 3_600_000),
        )? {
            result.retry.initial_backoff = millis(ms);
        }
        if let Some(ms) = js::optional(&retry, "maxBackoffMs", "options.retry", int(0, 3_600_000))?
        {
            result.retry.max_backoff = millis(ms);
        }
    }
    if let Some(dead_letter) = js::property(&options, "deadLetterTopic", "options")? {
        result.dead_letter = match dead_letter.get_type() {
            Ok(ValueType::Boolean) if !js::boolean(&dead_letter, "options.deadLetterTopic")? => {
                DeadLetter::Off
            }
            Ok(ValueType::String) => {
                DeadLetter::Topic(js::string(&dead_letter, "options.deadLetterTopic")?)
            }
            _ => {
                return Err(js::invalid(format!(
                    "options.deadLetterTopic must be a topic name or false (got {})",
                    js::type_name(&dead_letter)
                )))
            }
        };
    }
    if let Some(level) = js::optional(&options, "isolationLevel", "options", js::string)? {
        if level != "read_committed" && level != "read_uncommitted" {
            return Err(js::invalid(format!(
                "options.isolationLevel must be 'read_committed' or 'read_uncommitted' (got {level:?})"
            )));
        }
        result
            .client
            .properties
            .insert("isolation.level".into(), level);
    }
    let exactly_once = match js::property(&options, "exactlyOnce", "options")? {
        Some(value) => {
            let what = "options.exactlyOnce";
            let config = js::object(&value, what)?;
            js::reject_unknown_keys(
                &config,
                what,
                &["transactionalId", "transactionTimeoutMs", "config"],
            )?;
            let transactional_id = js::optional(&config, "transactionalId", what, js::string)?
                .ok_or_else(|| js::invalid(format!("{what}.transactionalId is required")))?;
            let timeout =
                js::optional(&config, "transactionTimeoutMs", what, int(1_000, 3_600_000))?
                    .map(millis);
            let properties = read_client_options(env, &config)?.properties;
            Some(ExactlyOnceRequest {
                transactional_id,
                timeout,
                properties,
            })
        }
        None => None,
    };
    let logger = js::property(&options, "logger", "options")?;
    Ok((result, exactly_once, logger))
}

fn read_schema(env: &Env, value: &Unknown<'_>) -> CoreResult<PayloadSchema> {
    match value.get_type() {
        Ok(ValueType::String) => PayloadSchema::from_name(&js::string(value, "options.schema")?),
        Ok(ValueType::Object) => {
            js::object(value, "options.schema")?;
            let text = js::json(env, value, "options.schema")?;
            let document: serde_json::Value = serde_json::from_str(&text).map_err(|error| {
                js::invalid(format!(
                    "options.schema is not a JSON Schema document: {error}"
                ))
            })?;
            PayloadSchema::from_json_schema(&document)
        }
        _ => Err(js::invalid(format!(
            "options.schema must be a schema name or a JSON Schema object (got {})",
            js::type_name(value)
        ))),
    }
}
