//! The application's producer: per-message delivery futures, keyed
//! partitioning, safe defaults, a connection monitor and a clean shutdown.

use crate::core::config::{ClientOptions, ClientSettings};
use crate::core::context::KafkaContext;
use crate::core::delivery::{self, Delivered, DeliveryContext, DeliverySink, Notify, Pending};
use crate::core::embedded;
use crate::core::error::{CoreError, Result};
use crate::core::events::{self, validate_topic_name};
use crate::core::logging::{ClientLog, LogSink};
use crate::core::metrics::{
    self, ClientMetrics, MetricsSource, ProducerInstruments, ProducerMetrics,
};
use crate::core::polled_producer::PolledProducer;
use crate::core::trace;
use crate::core::transaction::{TransactionScope, Transactions, DEFAULT_TRANSACTION_TIMEOUT_MS};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer as _};
use rdkafka::util::Timeout;
use std::collections::BTreeMap;
use std::collections::VecDeque;
use std::ffi::CStr;
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::{Duration, Instant};
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;
use tracing::Instrument;

/// Defaults for a producer that must neither lose nor duplicate events:
/// idempotence (which implies `acks=all` and ordered retries), a fast codec, a
/// short linger so concurrent sends share a request, and Java's partitioner
/// so a key maps to the same partition as with kafkajs and Java clients.
pub const PRODUCER_DEFAULTS: &[(&str, &str)] = &[
    ("enable.idempotence", "true"),
    ("acks", "all"),
    ("compression.type", "lz4"),
    ("linger.ms", "5"),
    ("partitioner", "murmur2_random"),
    ("message.timeout.ms", "120000"),
    ("statistics.interval.ms", DEFAULT_STATISTICS_INTERVAL_MS),
];

/// How often librdkafka reports statistics (broker round trips, retries,
/// group state) for `metrics()`: often enough for a dashboard scraped every
/// 15 s, rare enough to cost nothing measurable.
pub const DEFAULT_STATISTICS_INTERVAL_MS: &str = "5000";

pub const DEFAULT_CLIENT_ID: &str = "kafka-napi-producer";

#[derive(Clone)]
pub struct ProducerOptions {
    pub client: ClientOptions,
    /// How long `send` waits for room when librdkafka's local queue is full.
    pub enqueue_timeout: Duration,
    /// Pause between connection attempts while the cluster is unreachable.
    pub connect_retry_interval: Duration,
    /// Put in front of the topics the typed helpers write to; `None` reads
    /// `KAFKA_TOPIC_PREFIX`. Lets environments or runs share a cluster.
    pub topic_prefix: Option<String>,
    /// Where the outcomes of `start_send_tracked` go; without it only
    /// `start_send` (one channel per message) is available.
    pub deliveries: Option<Arc<dyn DeliverySink>>,
    /// Gives each message without a `traceparent` header a new trace.
    pub generate_traceparent: bool,
    /// Makes the producer transactional (`transactional.id`): sends then go
    /// through [`Producer::begin_transaction`]. Stable per application
    /// instance, unique across the instances running at once.
    pub transactional_id: Option<String>,
    /// `transaction.timeout.ms`: the cluster aborts a transaction open longer.
    pub transaction_timeout: Option<Duration>,
}

impl Default for ProducerOptions {
    fn default() -> Self {
        ProducerOptions {
            client: ClientOptions::default(),
            enqueue_timeout: Duration::from_secs(5),
            connect_retry_interval: Duration::from_secs(5),
            topic_prefix: None,
            deliveries: None,
            generate_traceparent: false,
            transactional_id: None,
            transaction_timeout: None,
        }
    }
}

/// One message to produce. `value: None` is a tombstone.
#[derive(Debug, Clone, Default)]
pub struct OutgoingMessage {
    pub topic: String,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub headers: Vec<(String, Option<Vec<u8>>)>,
    pub partition: Option<i32>,
    /// Milliseconds since the Unix epoch; librdkafka uses "now" when absent.
    pub timestamp: Option<i64>,
}

/// Where a message was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryReport {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub timestamp: Option<i64>,
}

#[derive(Debug, Clone)]
pub struct TopicSpec {
    pub name: String,
    pub partitions: i32,
    /// `-1` lets the broker choose its default.
    pub replication_factor: i32,
    pub config: Vec<(String, String)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicOutcome {
    pub name: String,
    /// `false` when the topic already existed.
    pub created: bool,
}

type Handle = PolledProducer;
type Admin = AdminClient<KafkaContext>;

pub struct Producer {
    settings: ClientSettings,
    topics: events::PlatformTopics,
    options: ProducerOptions,
    log: ClientLog,
    handle: RwLock<Option<Arc<Handle>>>,
    admin: Mutex<Option<Arc<Admin>>>,
    connected: watch::Sender<bool>,
    monitor: Mutex<Option<JoinHandle<()>>>,
    /// Serialises `disconnect` so a second call waits for the first.
    shutdown: tokio::sync::Mutex<()>,
    backlog: Mutex<Backlog>,
    instruments: Arc<ProducerInstruments>,
    /// librdkafka's name of the handle, unique in the process.
    handle_name: String,
    /// Present when the producer has a `transactional.id`.
    transactions: Option<Transactions>,
}

/// The client options with the transactional settings applied. librdkafka
/// refuses a `message.timeout.ms` above `transaction.timeout.ms`, so a
/// transactional producer's default message timeout is the transaction's.
fn transactional_client(options: &ProducerOptions) -> Result<ClientOptions> {
    let mut client = options.client.clone();
    if let Some(id) = &options.transactional_id {
        if id.trim().is_empty() {
            return Err(CoreError::invalid_config(
                "transactionalId",
                "must not be empty",
            ));
        }
        client
            .properties
            .insert("transactional.id".into(), id.clone());
    }
    if let Some(timeout) = options.transaction_timeout {
        client.properties.insert(
            "transaction.timeout.ms".into(),
            timeout.as_millis().to_string(),
        );
    }
    if client.properties.contains_key("transactional.id")
        && !client.properties.contains_key("message.timeout.ms")
    {
        let timeout = client
            .properties
            .get("transaction.timeout.ms")
            .cloned()
            .unwrap_or_else(|| DEFAULT_TRANSACTION_TIMEOUT_MS.to_string());
        client
            .properties
            .insert("message.timeout.ms".into(), timeout);
    }
    Ok(client)
}

/// Messages waiting, in call order, for room in librdkafka's queue.
#[derive(Default)]
struct Backlog {
    queue: VecDeque<Backlogged>,
    /// Whether a drain task is running.
    draining: bool,
}

struct Backlogged {
    message: OutgoingMessage,
    deadline: Instant,
    notify: Box<Pending>,
}

/// Acknowledgements still to come for messages already handed over.
pub struct PendingSend {
    entries: Vec<(String, oneshot::Receiver<Result<Delivered>>)>,
}

impl PendingSend {
    /// Resolves once every message is acknowledged, with their positions in
    /// call order, or with the first failure.
    pub async fn acknowledged(self) -> Result<Vec<DeliveryReport>> {
        let total = self.entries.len();
        let mut reports = Vec::with_capacity(total);
        for (index, (topic, waiting)) in self.entries.into_iter().enumerate() {
            let report = waiting
                .await
                .unwrap_or(Err(CoreError::Disconnected("producer")))
                .map(|delivered| DeliveryReport {
                    topic,
                    partition: delivered.partition,
                    offset: delivered.offset,
                    timestamp: delivered.timestamp,
                });
            reports.push(report.map_err(|error| at_index(error, index, total))?);
        }
        Ok(reports)
    }

    /// The acknowledgement of a single message.
    pub async fn acknowledged_one(self) -> Result<DeliveryReport> {
        self.acknowledged()
            .await?
            .pop()
            .ok_or_else(|| CoreError::Internal("no acknowledgement for a sent message".into()))
    }
}

impl Producer {
    /// Validates the configuration and creates the librdkafka handle. No
    /// network I/O happens here; librdkafka connects in its own threads.
    pub fn new(options: ProducerOptions, sink: Arc<dyn LogSink>) -> Result<Arc<Self>> {
        Self::with_env(options, sink, |key| std::env::var(key).ok())
    }

    pub fn with_env(
        options: ProducerOptions,
        sink: Arc<dyn LogSink>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Arc<Self>> {
        let (topics, settings) = Self::resolve(&options, env)?;
        let transactions = match settings.property("transactional.id") {
            Some(_) => {
                let timeout_ms = settings
                    .property("transaction.timeout.ms")
                    .and_then(|ms| ms.parse().ok())
                    .unwrap_or(DEFAULT_TRANSACTION_TIMEOUT_MS);
                Some(Transactions::new(Duration::from_millis(timeout_ms)))
            }
            None => None,
        };
        let log = ClientLog::register(&settings.client_id, settings.log_level, sink);
        let (connected, _) = watch::channel(false);
        let context = KafkaContext::with_connection_state(log.span().clone(), connected.clone());
        let instruments = Arc::new(ProducerInstruments::default());
        let context =
            DeliveryContext::new(context, options.deliveries.clone(), instruments.clone());
        let producer: BaseProducer<DeliveryContext> = settings
            .to_rdkafka()
            .create_with_context(context)
            .map_err(|error| settings.config_error(&error))?;
        let handle = PolledProducer::new(producer).map_err(|error| {
            CoreError::Internal(format!("cannot start the producer's event thread: {error}"))
        })?;
        let handle_name = metrics::handle_name(handle.client());
        log.span().in_scope(|| {
            tracing::debug!(config = ?settings, "Kafka producer created");
            // Clients created with the embedded cluster's address (such as a
            // consumer's dead-letter producer) do not repeat the warning.
            if settings.embedded && options.client.brokers.is_none() {
                tracing::warn!("{}", embedded::warning(&settings.brokers.join(",")));
            }
        });
        let producer = Arc::new(Producer {
            settings,
            topics,
            options,
            log,
            handle: RwLock::new(Some(Arc::new(handle))),
            admin: Mutex::new(None),
            connected,
            monitor: Mutex::new(None),
            shutdown: tokio::sync::Mutex::new(()),
            backlog: Mutex::new(Backlog::default()),
            instruments,
            handle_name,
            transactions,
        });
        let source: Weak<dyn MetricsSource> = Arc::downgrade(&producer) as _;
        metrics::register(source);
        Ok(producer)
    }

    /// Checks what [`Producer::with_env`] would check, librdkafka's
    /// properties included, without creating a client.
    pub fn check_with_env(
        options: &ProducerOptions,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<()> {
        let (_, settings) = Self::resolve(options, env)?;
        settings
            .to_rdkafka()
            .create_native_config()
            .map(drop)
            .map_err(|error| settings.config_error(&error))
    }

    fn resolve(
        options: &ProducerOptions,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<(events::PlatformTopics, ClientSettings)> {
        if options.enqueue_timeout > Duration::from_secs(3600) {
            return Err(CoreError::invalid_arg(
                "enqueueTimeoutMs must be at most 3600000",
            ));
        }
        if options.connect_retry_interval < Duration::from_millis(10) {
            return Err(CoreError::invalid_arg(
                "retryIntervalMs must be at least 10",
            ));
        }
        let topics = events::PlatformTopics::resolve(options.topic_prefix.as_deref(), &env)?;
        let client = transactional_client(options)?;
        let settings = ClientSettings::resolve(&client, PRODUCER_DEFAULTS, DEFAULT_CLIENT_ID, env)?;
        Ok((topics, settings))
    }

    /// Counters, delivery latency and librdkafka's latest statistics.
    pub fn metrics(&self) -> ProducerMetrics {
        self.instruments.snapshot(
            &self.settings.client_id,
            &self.handle_name,
            self.is_connected(),
            u64::try_from(self.queued_messages()).unwrap_or(u64::MAX),
        )
    }

    pub fn client_id(&self) -> &str {
        &self.settings.client_id
    }

    pub fn brokers(&self) -> &[String] {
        &self.settings.brokers
    }

    pub fn is_connected(&self) -> bool {
        *self.connected.borrow()
    }

    /// Whether sends must go through transactions.
    pub fn is_transactional(&self) -> bool {
        self.transactions.is_some()
    }

    pub(crate) fn transactional_state(&self) -> Option<&Transactions> {
        self.transactions.as_ref()
    }

    /// Runs a blocking librdkafka call on tokio's blocking pool.
    pub(crate) async fn blocking<T, F>(&self, call: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Handle) -> T + Send + 'static,
    {
        let handle = self.current_handle()?;
        let span = self.log.span().clone();
        tokio::task::spawn_blocking(move || span.in_scope(|| call(&handle)))
            .await
            .map_err(|error| CoreError::Internal(format!("librdkafka call failed: {error}")))
    }

    pub(crate) fn current_handle(&self) -> Result<Arc<Handle>> {
        self.handle
            .read()
            .ok()
            .and_then(|guard| guard.clone())
            .ok_or(CoreError::Disconnected("producer"))
    }

    /// Starts the connection monitor: it retries every
    /// `connect_retry_interval` until the cluster answers, logging each
    /// failure, and never fails the application. With `wait`, also waits up to
    /// that long for the first successful contact.
    pub async fn connect(self: &Arc<Self>, wait: Option<Duration>) -> Result<()> {
        self.current_handle()?;
        self.start_monitor();
        let Some(wait) = wait else { return Ok(()) };
        let mut connected = self.connected.subscribe();
        let outcome = tokio::time::timeout(wait, connected.wait_for(|up| *up))
            .await
            .map(|seen| seen.map(|_| ()));
        match outcome {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(CoreError::Disconnected("producer")),
            Err(_) => Err(CoreError::TimedOut(format!(
                "could not reach Kafka brokers {} within {} ms (still retrying in the background)",
                self.settings.brokers.join(","),
                wait.as_millis()
            ))),
        }
    }

    fn start_monitor(self: &Arc<Self>) {
        let Ok(mut monitor) = self.monitor.lock() else {
            return;
        };
        if monitor.is_some() {
            return;
        }
        let producer = Arc::downgrade(self);
        let span = self.log.span().clone();
        *monitor = Some(tokio::spawn(monitor_connection(producer).instrument(span)));
    }

    /// Hands messages to librdkafka right away, in call order, and returns
    /// their pending acknowledgements. Never blocks: when librdkafka's local
    /// queue is full, the messages wait (in order, for at most
    /// `enqueue_timeout`) in a backlog that a background task drains. Must be
    /// called within a tokio runtime context.
    ///
    /// Validation happens before anything is enqueued. A later librdkafka
    /// refusal (e.g. a message too large) fails the call, while the messages
    /// before it are still delivered.
    pub fn start_send(self: &Arc<Self>, messages: Vec<OutgoingMessage>) -> Result<PendingSend> {
        self.start_send_in(messages, None)
    }

    /// [`start_send`](Self::start_send) inside a transaction (`scope`), as a
    /// transactional producer requires.
    pub fn start_send_in(
        self: &Arc<Self>,
        messages: Vec<OutgoingMessage>,
        scope: Option<TransactionScope>,
    ) -> Result<PendingSend> {
        let mut entries = Vec::with_capacity(messages.len());
        self.hand_over(messages, scope, |_, message| {
            let (reply, waiting) = oneshot::channel();
            entries.push((message.topic.clone(), waiting));
            Notify::Reply(reply)
        })?;
        Ok(PendingSend { entries })
    }

    /// Like [`start_send`](Self::start_send), but each message's outcome goes
    /// to the producer's [`DeliverySink`] (`ProducerOptions::deliveries`) as
    /// `(tag, index in messages)`. On an error, no outcome of this call is
    /// reported, although messages before the failing one may be delivered.
    pub fn start_send_tracked(
        self: &Arc<Self>,
        messages: Vec<OutgoingMessage>,
        tag: u64,
    ) -> Result<()> {
        self.start_send_tracked_in(messages, tag, None)
    }

    /// [`start_send_tracked`](Self::start_send_tracked) inside a transaction.
    pub fn start_send_tracked_in(
        self: &Arc<Self>,
        messages: Vec<OutgoingMessage>,
        tag: u64,
        scope: Option<TransactionScope>,
    ) -> Result<()> {
        if self.options.deliveries.is_none() {
            return Err(CoreError::Internal(
                "start_send_tracked needs ProducerOptions::deliveries".into(),
            ));
        }
        self.hand_over(messages, scope, |index, _| Notify::Sink {
            tag,
            index: u32::try_from(index).unwrap_or(u32::MAX),
        })
    }

    fn hand_over(
        self: &Arc<Self>,
        messages: Vec<OutgoingMessage>,
        scope: Option<TransactionScope>,
        notify_for: impl FnMut(usize, &OutgoingMessage) -> Notify,
    ) -> Result<()> {
        if messages.is_empty() {
            return Err(CoreError::invalid_arg(
                "messages must contain at least one message",
            ));
        }
        match &self.transactions {
            Some(transactions) => {
                transactions.check_send(scope)?;
                // As with Java's producer, a transaction in which a send
                // failed cannot commit: whoever did not await the send
                // learns of it from the commit.
                let handed_over = self.hand_over_checked(messages, notify_for);
                if let Err(error) = &handed_over {
                    transactions.poison(error);
                }
                handed_over
            }
            None if scope.is_some() => Err(CoreError::invalid_config(
                "transactionalId",
                "transactions need a producer created with a transactionalId",
            )),
            None => self.hand_over_checked(messages, notify_for),
        }
    }

    fn hand_over_checked(
        self: &Arc<Self>,
        mut messages: Vec<OutgoingMessage>,
        mut notify_for: impl FnMut(usize, &OutgoingMessage) -> Notify,
    ) -> Result<()> {
        let total = messages.len();
        for (index, message) in messages.iter_mut().enumerate() {
            validate_message(message).map_err(|error| at_index(error, index, total))?;
            if self.options.generate_traceparent {
                trace::ensure_traceparent(&mut message.headers);
            }
        }
        let handle = self.current_handle()?;
        let mut backlog = self.lock_backlog()?;
        for (index, message) in messages.into_iter().enumerate() {
            let mut notify = Pending::new(notify_for(index, &message));
            if backlog.queue.is_empty() {
                match enqueue(&handle, &message, notify) {
                    Ok(()) => {
                        self.instruments.sent(1);
                        continue;
                    }
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), returned))
                        if !self.options.enqueue_timeout.is_zero() =>
                    {
                        notify = returned;
                    }
                    Err((error, _)) => {
                        return Err(at_index(send_error(&message.topic, &error), index, total))
                    }
                }
            }
            self.instruments.sent(1);
            backlog.queue.push_back(Backlogged {
                message,
                deadline: Instant::now() + self.options.enqueue_timeout,
                notify,
            });
        }
        if !backlog.queue.is_empty() && !backlog.draining {
            let runtime = tokio::runtime::Handle::try_current().map_err(|_| {
                CoreError::Internal("start_send needs a tokio runtime context".into())
            })?;
            backlog.draining = true;
            runtime.spawn(drain_backlog(Arc::downgrade(self)).instrument(self.log.span().clone()));
        }
        Ok(())
    }

    /// Sends messages and waits until every one is acknowledged.
    pub async fn send(
        self: &Arc<Self>,
        messages: Vec<OutgoingMessage>,
    ) -> Result<Vec<DeliveryReport>> {
        self.start_send(messages)?.acknowledged().await
    }

    /// A `MovieEvent` keyed by `movie_id` for `movie-events` (behind the
    /// topic prefix, if any), stamped with the current time.
    pub fn movie_event(
        &self,
        event_type: &str,
        user_id: &str,
        movie_id: &str,
        metadata_json: Option<&str>,
    ) -> Result<OutgoingMessage> {
        let value = events::encode_movie_event(
            event_type,
            user_id,
            movie_id,
            metadata_json,
            events::now_millis(),
        )?;
        Ok(keyed(&self.topics.movie_events, movie_id, value))
    }

    /// A `MovieViewEvent` keyed by `movie_id` for `movie-views`.
    pub fn movie_view_event(&self, user_id: &str, movie_id: &str) -> Result<OutgoingMessage> {
        let value = events::encode_movie_view_event(user_id, movie_id, events::now_millis())?;
        Ok(keyed(&self.topics.movie_views, movie_id, value))
    }

    /// Messages handed to librdkafka that the cluster has not acknowledged
    /// (or refused) yet, plus those waiting in the backlog for room in its
    /// queue: every message sent whose outcome is not known.
    pub fn queued_messages(&self) -> usize {
        usize::try_from(self.instruments.awaiting_outcome()).unwrap_or(usize::MAX)
    }

    /// Reports the outcome of a message that never reached librdkafka.
    fn settle(&self, pending: Pending, outcome: Result<Delivered>) {
        self.instruments.settled(pending.since, outcome.is_ok());
        delivery::settle(self.options.deliveries.as_ref(), pending.notify, outcome);
    }

    fn lock_backlog(&self) -> Result<std::sync::MutexGuard<'_, Backlog>> {
        self.backlog
            .lock()
            .map_err(|_| CoreError::Internal("producer backlog lock poisoned".into()))
    }

    /// Waits (asynchronously) until the backlog is empty or `deadline` passes.
    async fn wait_for_backlog(&self, deadline: Instant) {
        while Instant::now() < deadline
            && self
                .backlog
                .lock()
                .map(|backlog| !backlog.queue.is_empty())
                .unwrap_or(false)
        {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Waits until every queued message is delivered or `timeout` passes.
    pub async fn flush(&self, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        self.current_handle()?;
        self.wait_for_backlog(deadline).await;
        let timeout = deadline.saturating_duration_since(Instant::now());
        let handle = self.current_handle()?;
        let span = self.log.span().clone();
        tokio::task::spawn_blocking(move || span.in_scope(|| handle.flush(Timeout::After(timeout))))
            .await
            .map_err(|error| CoreError::Internal(format!("flush task failed: {error}")))?
            .map_err(|error| {
                CoreError::kafka(
                    format!("flush did not complete within {} ms", timeout.as_millis()),
                    &error,
                )
            })
    }

    /// Flushes for up to `timeout`, then closes the client. Messages still
    /// undelivered then are purged and their sends reject. Idempotent.
    pub async fn disconnect(&self, timeout: Duration) -> Result<()> {
        let _serialised = self.shutdown.lock().await;
        let deadline = Instant::now() + timeout;
        self.wait_for_backlog(deadline).await;
        let timeout = deadline.saturating_duration_since(Instant::now());
        let handle = self.handle.write().ok().and_then(|mut guard| guard.take());
        let Some(handle) = handle else { return Ok(()) };
        if let Some(monitor) = self.monitor.lock().ok().and_then(|mut guard| guard.take()) {
            monitor.abort();
        }
        let admin = self.admin.lock().ok().and_then(|mut guard| guard.take());
        self.connected.send_replace(false);
        let span = self.log.span().clone();
        span.in_scope(|| tracing::info!("Kafka producer disconnecting"));
        let undelivered = tokio::task::spawn_blocking(move || {
            let flushed = handle.flush(Timeout::After(timeout));
            let undelivered = handle.in_flight_count();
            // Destroying librdkafka handles joins their threads: do it here,
            // off the async workers.
            drop(handle);
            drop(admin);
            flushed.map(|()| 0).unwrap_or(undelivered)
        })
        .await
        .map_err(|error| CoreError::Internal(format!("disconnect task failed: {error}")))?;
        span.in_scope(|| {
            if undelivered > 0 {
                tracing::warn!(
                    "Kafka producer disconnected with {undelivered} message(s) undelivered after {} ms; their sends were rejected",
                    timeout.as_millis()
                );
            } else {
                tracing::info!("Kafka producer disconnected");
            }
        });
        Ok(())
    }

    /// Creates the topics that do not exist yet; existing ones are left as they are.
    /// On the embedded cluster, which has no admin API, through its own interface.
    pub async fn ensure_topics(
        &self,
        topics: &[TopicSpec],
        timeout: Duration,
    ) -> Result<Vec<TopicOutcome>> {
        if topics.is_empty() {
            return Ok(Vec::new());
        }
        for topic in topics {
            validate_topic_spec(topic)?;
        }
        let outcomes = if self.settings.embedded {
            let wanted = topics
                .iter()
                .map(|topic| (topic.name.clone(), topic.partitions))
                .collect();
            let created = embedded::create_topics(wanted).await?;
            topics
                .iter()
                .zip(created)
                .map(|(topic, created)| TopicOutcome {
                    name: topic.name.clone(),
                    created,
                })
                .collect()
        } else {
            self.create_topics(topics, timeout).await?
        };
        self.log.span().in_scope(|| {
            for outcome in &outcomes {
                if outcome.created {
                    tracing::info!("Created topic: {}", outcome.name);
                }
            }
        });
        Ok(outcomes)
    }

    async fn create_topics(
        &self,
        topics: &[TopicSpec],
        timeout: Duration,
    ) -> Result<Vec<TopicOutcome>> {
        let admin = self.admin_client()?;
        let new_topics: Vec<NewTopic<'_>> = topics
            .iter()
            .map(|topic| {
                topic.config.iter().fold(
                    NewTopic::new(
                        &topic.name,
                        topic.partitions,
                        TopicReplication::Fixed(topic.replication_factor),
                    ),
                    |new_topic, (key, value)| new_topic.set(key, value),
                )
            })
            .collect();
        let options = AdminOptions::new()
            .request_timeout(Some(timeout))
            .operation_timeout(Some(timeout));
        let results = admin
            .create_topics(new_topics.iter(), &options)
            .instrument(self.log.span().clone())
            .await
            .map_err(|error| CoreError::kafka("cannot create topics", &error))?;
        results
            .into_iter()
            .map(|result| match result {
                Ok(name) => Ok(TopicOutcome {
                    name,
                    created: true,
                }),
                Err((name, RDKafkaErrorCode::TopicAlreadyExists)) => Ok(TopicOutcome {
                    name,
                    created: false,
                }),
                Err((name, code)) => Err(CoreError::from_code(
                    format!("cannot create topic `{name}`"),
                    code,
                )),
            })
            .collect()
    }

    fn admin_client(&self) -> Result<Arc<Admin>> {
        self.current_handle()?;
        let mut admin = self
            .admin
            .lock()
            .map_err(|_| CoreError::Internal("admin client lock poisoned".into()))?;
        if let Some(client) = admin.as_ref() {
            return Ok(client.clone());
        }
        let client: Admin = self
            .settings
            .to_rdkafka()
            .create_with_context(KafkaContext::new(self.log.span().clone()))
            .map_err(|error| self.settings.config_error(&error))?;
        let client = Arc::new(client);
        *admin = Some(client.clone());
        Ok(client)
    }

    /// The configuration librdkafka is actually running with (defaults
    /// included), secrets redacted.
    pub fn effective_config(&self) -> Result<BTreeMap<String, String>> {
        let handle = self.current_handle()?;
        let native = handle.client().native_ptr();
        let mut dump = BTreeMap::new();
        // SAFETY: `native` is a live handle for as long as `handle` is held; the
        // dump functions return `count` C strings (key, value, key, value, …)
        // that stay valid until the matching `*_dump_free`.
        unsafe {
            let conf = rdkafka::bindings::rd_kafka_conf(native);
            let mut count: usize = 0;
            let pairs = rdkafka::bindings::rd_kafka_conf_dump(conf as *mut _, &mut count);
            collect_dump(pairs, count, &mut dump);
            // Topic-level settings such as `acks` live in the default topic configuration.
            let topic_conf =
                rdkafka::bindings::rd_kafka_conf_get_default_topic_conf(conf as *mut _);
            if !topic_conf.is_null() {
                let mut count: usize = 0;
                let pairs = rdkafka::bindings::rd_kafka_topic_conf_dump(topic_conf, &mut count);
                collect_dump(pairs, count, &mut dump);
            }
        }
        Ok(crate::core::config::redact_properties(&dump))
    }
}

impl Drop for Producer {
    fn drop(&mut self) {
        // Reached when the application never called `disconnect`. Destroying
        // the handle joins librdkafka's threads, so keep it off the caller's
        // thread (in Node, the event loop).
        let handle = self.handle.get_mut().ok().and_then(Option::take);
        let admin = self.admin.get_mut().ok().and_then(Option::take);
        if let Some(monitor) = self.monitor.get_mut().ok().and_then(Option::take) {
            monitor.abort();
        }
        if handle.is_some() || admin.is_some() {
            let _ = std::thread::Builder::new()
                .name("kafka-producer-drop".into())
                .spawn(move || drop((handle, admin)));
        }
    }
}

/// Copies a librdkafka configuration dump into `into` and frees it.
///
/// # Safety
/// `pairs` must be null or the result of `rd_kafka_conf_dump`/`rd_kafka_topic_conf_dump`
/// with `count` entries, not yet freed.
unsafe fn collect_dump(
    pairs: *mut *const std::os::raw::c_char,
    count: usize,
    into: &mut BTreeMap<String, String>,
) {
    if pairs.is_null() {
        return;
    }
    let text = |ptr: *const std::os::raw::c_char| {
        if ptr.is_null() {
            String::new()
        } else {
            CStr::from_ptr(ptr).to_string_lossy().into_owned()
        }
    };
    // The first dump wins: a topic-level `inherit` must not hide the global value.
    for pair in std::slice::from_raw_parts(pairs, count).chunks_exact(2) {
        into.entry(text(pair[0])).or_insert_with(|| text(pair[1]));
    }
    rdkafka::bindings::rd_kafka_conf_dump_free(pairs, count);
}

/// Runs for the producer's life: while the cluster is unreachable it probes
/// every retry interval and warns; it reports the first contact and every
/// recovery after an outage.
async fn monitor_connection(producer: Weak<Producer>) {
    let mut ever_connected = false;
    loop {
        let Some((handle, interval, brokers, connected)) =
            producer.upgrade().and_then(|producer| {
                let handle = producer.current_handle().ok()?;
                Some((
                    handle,
                    producer.options.connect_retry_interval,
                    producer.settings.brokers.join(","),
                    producer.connected.clone(),
                ))
            })
        else {
            return;
        };
        if *connected.borrow() {
            drop(handle);
            let mut state = connected.subscribe();
            // Ends when librdkafka reports every broker down, or when the producer is gone.
            if state.wait_for(|up| !*up).await.is_err() || producer.strong_count() == 0 {
                return;
            }
            tracing::warn!(
                "Kafka producer lost contact with all brokers ({brokers}); reconnecting"
            );
            continue;
        }
        let probe_timeout = interval.clamp(Duration::from_millis(500), Duration::from_secs(10));
        let span = tracing::Span::current();
        let probe = tokio::task::spawn_blocking(move || {
            span.in_scope(|| {
                handle
                    .client()
                    .fetch_metadata(None, probe_timeout)
                    .map(|metadata| metadata.brokers().len())
            })
        })
        .await;
        match probe {
            Ok(Ok(broker_count)) => {
                connected.send_replace(true);
                if ever_connected {
                    tracing::info!("Kafka producer reconnected to {brokers}");
                } else {
                    tracing::info!("Kafka producer connected to {brokers} ({broker_count} broker(s) in the cluster)");
                }
                ever_connected = true;
                continue;
            }
            Ok(Err(error)) => tracing::warn!(
                "Kafka producer cannot reach {brokers}: {error}; retrying in {} ms",
                interval.as_millis()
            ),
            Err(error) => tracing::error!("Kafka connection probe failed: {error}"),
        }
        tokio::time::sleep(interval).await;
    }
}

impl MetricsSource for Producer {
    fn collect(&self) -> Option<ClientMetrics> {
        self.current_handle().ok()?;
        Some(ClientMetrics::Producer(self.metrics()))
    }
}

/// Hands one message to librdkafka (never blocks); on a refusal, gives the
/// notification back so the message can wait in the backlog.
fn enqueue(
    handle: &Handle,
    message: &OutgoingMessage,
    notify: Box<Pending>,
) -> std::result::Result<(), (KafkaError, Box<Pending>)> {
    let mut record: BaseRecord<'_, [u8], [u8], Box<Pending>> =
        BaseRecord::with_opaque_to(&message.topic, notify);
    if let Some(key) = &message.key {
        record = record.key(key.as_slice());
    }
    if let Some(value) = &message.value {
        record = record.payload(value.as_slice());
    }
    if let Some(partition) = message.partition {
        record = record.partition(partition);
    }
    if let Some(timestamp) = message.timestamp {
        record = record.timestamp(timestamp);
    }
    if !message.headers.is_empty() {
        let headers = message.headers.iter().fold(
            OwnedHeaders::new_with_capacity(message.headers.len()),
            |headers, (key, value)| {
                headers.insert(Header {
                    key,
                    value: value.as_deref(),
                })
            },
        );
        record = record.headers(headers);
    }
    handle
        .send(record)
        .map_err(|(error, record)| (error, record.delivery_opaque))
}

fn send_error(topic: &str, error: &KafkaError) -> CoreError {
    CoreError::kafka(format!("cannot send to topic `{topic}`"), error)
}

/// Moves backlogged messages into librdkafka's queue as room appears, in
/// order, failing those whose deadline passes with `ERR_KAFKA_QUEUE_FULL`.
async fn drain_backlog(producer: Weak<Producer>) {
    let mut pause = Duration::from_millis(1);
    loop {
        {
            let Some(producer) = producer.upgrade() else {
                return;
            };
            let Ok(mut backlog) = producer.backlog.lock() else {
                return;
            };
            let handle = match producer.current_handle() {
                Ok(handle) => handle,
                Err(error) => {
                    for waiting in backlog.queue.drain(..) {
                        producer.settle(*waiting.notify, Err(error.clone()));
                    }
                    backlog.draining = false;
                    return;
                }
            };
            loop {
                let Some(front) = backlog.queue.pop_front() else {
                    backlog.draining = false;
                    return;
                };
                match enqueue(&handle, &front.message, front.notify) {
                    Ok(()) => pause = Duration::from_millis(1),
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), notify))
                        if Instant::now() < front.deadline =>
                    {
                        backlog.queue.push_front(Backlogged { notify, ..front });
                        break;
                    }
                    Err((error, notify)) => {
                        let error = send_error(&front.message.topic, &error);
                        producer.settle(*notify, Err(error));
                        pause = Duration::from_millis(1);
                    }
                }
            }
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(50));
    }
}

fn keyed(topic: &str, key: &str, value: Vec<u8>) -> OutgoingMessage {
    OutgoingMessage {
        topic: topic.to_string(),
        key: Some(key.as_bytes().to_vec()),
        value: Some(value),
        ..OutgoingMessage::default()
    }
}

fn validate_message(message: &OutgoingMessage) -> Result<()> {
    validate_topic_name(&message.topic)?;
    if let Some(partition) = message.partition {
        if partition < 0 {
            return Err(CoreError::invalid_arg(format!(
                "partition must be a non-negative integer (got {partition})"
            )));
        }
    }
    if let Some(timestamp) = message.timestamp {
        if timestamp < 0 {
            return Err(CoreError::invalid_arg(format!(
                "timestamp must be non-negative milliseconds (got {timestamp})"
            )));
        }
    }
    for (key, _) in &message.headers {
        if key.is_empty() {
            return Err(CoreError::invalid_arg("header names must not be empty"));
        }
    }
    trace::check_headers(&message.headers)
}

fn validate_topic_spec(topic: &TopicSpec) -> Result<()> {
    validate_topic_name(&topic.name)?;
    if !(1..=1_000_000).contains(&topic.partitions) {
        return Err(CoreError::invalid_arg(format!(
            "topic `{}`: partitions must be between 1 and 1000000 (got {})",
            topic.name, topic.partitions
        )));
    }
    if topic.replication_factor != -1 && !(1..=i16::MAX as i32).contains(&topic.replication_factor)
    {
        return Err(CoreError::invalid_arg(format!(
            "topic `{}`: replicationFactor must be -1 (broker default) or 1-32767 (got {})",
            topic.name, topic.replication_factor
        )));
    }
    Ok(())
}

/// Names the failing message of a multi-message call in its error.
pub fn at_index(error: CoreError, index: usize, total: usize) -> CoreError {
    if total == 1 {
        return error;
    }
    error.reworded(|text| format!("messages[{index}]: {text}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::logging::StderrSink;
    use rdkafka::mocking::MockCluster;

    /// A producer's options for a broker that never answers, with room for
    /// `queued` messages in librdkafka and a short enqueue timeout.
    fn unreachable_with_small_queue(queued: u32, message_timeout_ms: u32) -> ProducerOptions {
        let mut options = options_for("127.0.0.1:1");
        options.enqueue_timeout = Duration::from_millis(100);
        options.client.log_level = Some(crate::core::logging::LogLevel::Off);
        let properties = &mut options.client.properties;
        properties.insert("queue.buffering.max.messages".into(), queued.to_string());
        properties.insert("message.timeout.ms".into(), message_timeout_ms.to_string());
        options
    }

    /// A producer connected to a new mock cluster with `topic` on it; the
    /// cluster lives as long as the first value.
    async fn connected_on_mock_cluster(
        topic: &str,
        partitions: i32,
    ) -> (
        MockCluster<'static, rdkafka::producer::DefaultProducerContext>,
        Arc<Producer>,
    ) {
        let cluster = MockCluster::new(1).unwrap();
        cluster.create_topic(topic, partitions, 1).unwrap();
        let producer = Producer::new(
            options_for(&cluster.bootstrap_servers()),
            Arc::new(StderrSink),
        )
        .unwrap();
        producer
            .connect(Some(Duration::from_secs(10)))
            .await
            .unwrap();
        (cluster, producer)
    }

    fn options_for(brokers: &str) -> ProducerOptions {
        let mut options = ProducerOptions::default();
        options.client.brokers = Some(vec![brokers.to_string()]);
        options
    }

    #[test]
    fn invalid_messages_are_rejected_before_anything_is_sent() {
        let bad_topic = OutgoingMessage {
            topic: "bad topic".into(),
            ..Default::default()
        };
        assert_eq!(
            validate_message(&bad_topic).unwrap_err().code(),
            "ERR_INVALID_ARG"
        );
        let bad_partition = OutgoingMessage {
            topic: "t".into(),
            partition: Some(-2),
            ..Default::default()
        };
        assert!(validate_message(&bad_partition).is_err());
        let spec = TopicSpec {
            name: "t".into(),
            partitions: 0,
            replication_factor: 1,
            config: vec![],
        };
        assert!(validate_topic_spec(&spec).is_err());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn keyed_sends_are_acknowledged_in_order_on_the_mock_cluster() {
        let (_cluster, producer) = connected_on_mock_cluster("movie-events", 4).await;
        assert!(producer.is_connected());

        let messages: Vec<OutgoingMessage> = (0..50)
            .map(|i| {
                keyed(
                    "movie-events",
                    "movie-7",
                    format!("{{\"n\":{i}}}").into_bytes(),
                )
            })
            .collect();
        let reports = producer.send(messages).await.unwrap();
        assert_eq!(reports.len(), 50);
        assert!(reports.iter().all(|r| r.partition == reports[0].partition));
        assert!(reports
            .windows(2)
            .all(|pair| pair[1].offset == pair[0].offset + 1));

        let config = producer.effective_config().unwrap();
        assert_eq!(
            config.get("enable.idempotence").map(String::as_str),
            Some("true")
        );
        assert_eq!(
            config.get("request.required.acks").map(String::as_str),
            Some("-1")
        );
        assert_eq!(
            config.get("compression.codec").map(String::as_str),
            Some("lz4")
        );

        producer.disconnect(Duration::from_secs(5)).await.unwrap();
        producer.disconnect(Duration::from_secs(5)).await.unwrap();
        let after = producer
            .send(vec![keyed("movie-events", "m", b"x".to_vec())])
            .await;
        assert_eq!(after.unwrap_err().code(), "ERR_KAFKA_DISCONNECTED");
    }

    /// The event thread sleeps until librdkafka has something for it: idle,
    /// it wakes about once per `SAFETY_NET`, not in a loop (rdkafka's
    /// `ThreadedProducer` spun through the last millisecond of each 100 ms
    /// round), and a delivery after a quiet spell still wakes it at once.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_event_thread_sleeps_while_idle_and_wakes_for_deliveries() {
        let (_cluster, producer) = connected_on_mock_cluster("quiet", 1).await;
        let handle = producer.current_handle().unwrap();
        for _ in 0..3 {
            let before = handle.rounds();
            tokio::time::sleep(Duration::from_millis(400)).await;
            let woken = handle.rounds() - before;
            // Connection chatter may wake it a few times; a polling loop
            // would have gone round thousands of times.
            assert!(woken <= 10, "woken {woken} times in 400 ms of quiet");
            let started = Instant::now();
            producer
                .send(vec![keyed("quiet", "k", b"{}".to_vec())])
                .await
                .unwrap();
            // Well under the safety net's 1 s: the delivery report woke it.
            assert!(started.elapsed() < Duration::from_millis(500));
        }
        producer.disconnect(Duration::from_secs(5)).await.unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn oversized_messages_fail_with_the_librdkafka_code() {
        let cluster = MockCluster::new(1).unwrap();
        cluster.create_topic("big", 1, 1).unwrap();
        let producer = Producer::new(
            options_for(&cluster.bootstrap_servers()),
            Arc::new(StderrSink),
        )
        .unwrap();
        let huge = keyed("big", "k", vec![b'x'; 2_000_000]);
        let error = producer.send(vec![huge]).await.unwrap_err();
        assert_eq!(error.code(), "ERR_KAFKA_MSG_SIZE_TOO_LARGE");
        producer.disconnect(Duration::from_secs(5)).await.unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_full_queue_keeps_call_order_through_the_backlog() {
        let cluster = MockCluster::new(1).unwrap();
        cluster.create_topic("ordered", 1, 1).unwrap();
        let mut options = options_for(&cluster.bootstrap_servers());
        options
            .client
            .properties
            .insert("queue.buffering.max.messages".into(), "7".into());
        let producer = Producer::new(options, Arc::new(StderrSink)).unwrap();
        let pending: Vec<PendingSend> = (0..300)
            .map(|i| {
                producer
                    .start_send(vec![keyed(
                        "ordered",
                        "one-key",
                        format!("{i}").into_bytes(),
                    )])
                    .unwrap()
            })
            .collect();
        assert!(producer.queued_messages() > 0);
        let mut offsets = Vec::new();
        for send in pending {
            offsets.push(send.acknowledged_one().await.unwrap().offset);
        }
        assert!(
            offsets.windows(2).all(|pair| pair[1] == pair[0] + 1),
            "{offsets:?}"
        );
        assert_eq!(producer.queued_messages(), 0);
        producer.disconnect(Duration::from_secs(5)).await.unwrap();
    }

    /// Collects what a [`DeliverySink`] is told.
    struct ChannelSink(std::sync::mpsc::Sender<(u64, u32, Result<Delivered>)>);

    impl DeliverySink for ChannelSink {
        fn delivered(&self, tag: u64, index: u32, outcome: Result<Delivered>) {
            let _ = self.0.send((tag, index, outcome));
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn tracked_sends_report_every_message_to_the_sink() {
        let cluster = MockCluster::new(1).unwrap();
        cluster.create_topic("views", 2, 1).unwrap();
        let (sender, received) = std::sync::mpsc::channel();
        let mut options = options_for(&cluster.bootstrap_servers());
        options.deliveries = Some(Arc::new(ChannelSink(sender)));
        let producer = Producer::new(options, Arc::new(StderrSink)).unwrap();

        let batch: Vec<OutgoingMessage> = (0..3)
            .map(|i| keyed("views", "movie-1", vec![b'0' + i]))
            .collect();
        producer.start_send_tracked(batch, 7).unwrap();
        producer
            .start_send_tracked(vec![keyed("views", "movie-2", b"x".to_vec())], 8)
            .unwrap();
        // Refused before anything is handed over: nothing is reported for tag 9.
        let invalid = producer.start_send_tracked(vec![keyed("", "k", b"x".to_vec())], 9);
        assert_eq!(invalid.unwrap_err().code(), "ERR_INVALID_ARG");

        let mut outcomes: Vec<(u64, u32, Delivered)> = (0..4)
            .map(|_| {
                let (tag, index, outcome) = received.recv_timeout(Duration::from_secs(10)).unwrap();
                (tag, index, outcome.unwrap())
            })
            .collect();
        outcomes.sort_by_key(|(tag, index, _)| (*tag, *index));
        let ids: Vec<(u64, u32)> = outcomes
            .iter()
            .map(|(tag, index, _)| (*tag, *index))
            .collect();
        assert_eq!(ids, vec![(7, 0), (7, 1), (7, 2), (8, 0)]);
        // One key, one partition, consecutive offsets in call order.
        assert!(outcomes[..3]
            .windows(2)
            .all(|pair| pair[1].2.partition == pair[0].2.partition
                && pair[1].2.offset == pair[0].2.offset + 1));
        producer.disconnect(Duration::from_secs(5)).await.unwrap();
        assert!(received.try_recv().is_err());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn tracked_sends_that_never_reach_librdkafka_are_reported_as_failed() {
        let (sender, received) = std::sync::mpsc::channel();
        let mut options = unreachable_with_small_queue(2, 1000);
        options.deliveries = Some(Arc::new(ChannelSink(sender)));
        let producer = Producer::new(options, Arc::new(StderrSink)).unwrap();
        let messages: Vec<OutgoingMessage> = (0..4).map(|i| keyed("t", "k", vec![i])).collect();
        producer.start_send_tracked(messages, 1).unwrap();
        let mut codes: Vec<(u32, String)> = (0..4)
            .map(|_| {
                let (tag, index, outcome) = received.recv_timeout(Duration::from_secs(10)).unwrap();
                assert_eq!(tag, 1);
                (index, outcome.unwrap_err().code())
            })
            .collect();
        codes.sort();
        assert_eq!(
            codes,
            vec![
                (0, "ERR_KAFKA_MSG_TIMED_OUT".to_string()),
                (1, "ERR_KAFKA_MSG_TIMED_OUT".to_string()),
                (2, "ERR_KAFKA_QUEUE_FULL".to_string()),
                (3, "ERR_KAFKA_QUEUE_FULL".to_string()),
            ]
        );
        // Without a sink, tracked sends are refused.
        let plain = Producer::new(options_for("127.0.0.1:1"), Arc::new(StderrSink)).unwrap();
        let refused = plain.start_send_tracked(vec![keyed("t", "k", vec![1])], 1);
        assert_eq!(refused.unwrap_err().code(), "ERR_INTERNAL");
        producer
            .disconnect(Duration::from_millis(100))
            .await
            .unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn past_the_bounded_queue_sends_fail_fast_with_queue_full() {
        let options = unreachable_with_small_queue(5, 1500);
        let producer = Producer::new(options, Arc::new(StderrSink)).unwrap();
        let started = Instant::now();
        let pending: Vec<PendingSend> = (0..8)
            .map(|i| producer.start_send(vec![keyed("t", "k", vec![i])]).unwrap())
            .collect();
        let mut codes = Vec::new();
        for send in pending {
            codes.push(send.acknowledged_one().await.unwrap_err().code());
        }
        assert_eq!(&codes[..5], vec!["ERR_KAFKA_MSG_TIMED_OUT"; 5].as_slice());
        assert_eq!(&codes[5..], vec!["ERR_KAFKA_QUEUE_FULL"; 3].as_slice());
        assert!(started.elapsed() < Duration::from_secs(10));
        producer
            .disconnect(Duration::from_millis(100))
            .await
            .unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn connect_with_a_deadline_times_out_when_nothing_listens() {
        let mut options = options_for("127.0.0.1:1");
        options.connect_retry_interval = Duration::from_millis(100);
        options.client.log_level = Some(crate::core::logging::LogLevel::Off);
        let producer = Producer::new(options, Arc::new(StderrSink)).unwrap();
        let error = producer
            .connect(Some(Duration::from_millis(300)))
            .await
            .unwrap_err();
        assert_eq!(error.code(), "ERR_KAFKA_TIMED_OUT");
        assert!(!producer.is_connected());
        producer
            .disconnect(Duration::from_millis(100))
            .await
            .unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn ensure_topics_on_the_embedded_cluster_creates_each_topic_once() {
        let mut options = ProducerOptions::default();
        options.client.log_level = Some(crate::core::logging::LogLevel::Off);
        let producer = Producer::with_env(options, Arc::new(StderrSink), |_| None).unwrap();
        let name = format!("embedded-ensure-{}", std::process::id());
        let spec = TopicSpec {
            name: name.clone(),
            partitions: 3,
            replication_factor: -1,
            config: vec![],
        };
        let first = producer
            .ensure_topics(std::slice::from_ref(&spec), Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!(
            first,
            vec![TopicOutcome {
                name: name.clone(),
                created: true
            }]
        );
        let again = producer
            .ensure_topics(&[spec], Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!(
            again,
            vec![TopicOutcome {
                name,
                created: false
            }]
        );
        producer.disconnect(Duration::from_secs(1)).await.unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn ensure_topics_is_validated() {
        let producer = Producer::new(options_for("127.0.0.1:1"), Arc::new(StderrSink)).unwrap();
        let bad = TopicSpec {
            name: "x".into(),
            partitions: 1,
            replication_factor: 0,
            config: vec![],
        };
        let error = producer
            .ensure_topics(&[bad], Duration::from_secs(1))
            .await
            .unwrap_err();
        assert_eq!(error.code(), "ERR_INVALID_ARG");
        producer
            .disconnect(Duration::from_millis(100))
            .await
            .unwrap();
    }
}
