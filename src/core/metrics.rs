//! Typed metrics of producers and consumers: the library's own counters and
//! latency histograms, plus librdkafka's statistics (`statistics.interval.ms`)
//! reduced to what a dashboard needs, and the Prometheus text exposition of
//! every live client of the process.

use prometheus_client::encoding::{DescriptorEncoder, MetricEncoder};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use rdkafka::statistics::Statistics;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

/// Upper bounds of the latency buckets, in seconds: from sub-millisecond
/// local acknowledgements to the tens of seconds of a broker failover.
const BUCKET_BOUNDS: [f64; 16] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    60.0,
];

/// A latency histogram with fixed buckets, updated without locks: observed
/// on librdkafka's delivery thread and the consumer's workers, read on scrape.
pub struct LatencyHistogram {
    /// Per-bucket (not cumulative) counts; the last one is `+Inf`.
    buckets: [AtomicU64; BUCKET_BOUNDS.len() + 1],
    sum_micros: AtomicU64,
    count: AtomicU64,
}

impl Default for LatencyHistogram {
    fn default() -> Self {
        LatencyHistogram {
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
            sum_micros: AtomicU64::new(0),
            count: AtomicU64::new(0),
        }
    }
}

impl LatencyHistogram {
    pub fn observe(&self, elapsed: Duration) {
        self.observe_many(elapsed, 1);
    }

    /// Records `times` observations of `each`.
    pub fn observe_many(&self, each: Duration, times: u64) {
        if times == 0 {
            return;
        }
        let seconds = each.as_secs_f64();
        let bucket = BUCKET_BOUNDS
            .iter()
            .position(|bound| seconds <= *bound)
            .unwrap_or(BUCKET_BOUNDS.len());
        self.buckets[bucket].fetch_add(times, Ordering::Relaxed);
        let micros = u64::try_from(each.as_micros()).unwrap_or(u64::MAX);
        self.sum_micros
            .fetch_add(micros.saturating_mul(times), Ordering::Relaxed);
        self.count.fetch_add(times, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> HistogramSnapshot {
        let mut cumulative = 0;
        let buckets = BUCKET_BOUNDS
            .iter()
            .copied()
            .chain([f64::INFINITY])
            .zip(&self.buckets)
            .map(|(bound, count)| {
                cumulative += count.load(Ordering::Relaxed);
                (bound, cumulative)
            })
            .collect();
        HistogramSnapshot {
            // The total of the buckets, not `count`, so the two always agree
            // even while observations land during the read.
            count: cumulative,
            sum_seconds: self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6,
            buckets,
        }
    }
}

/// A histogram as read at one moment: cumulative counts per upper bound.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HistogramSnapshot {
    pub count: u64,
    pub sum_seconds: f64,
    /// `(upper bound in seconds, observations at or below it)`, ending with `+Inf`.
    pub buckets: Vec<(f64, u64)>,
}

/// Mean and quantiles in milliseconds; quantiles are interpolated within
/// the histogram's buckets, so they are estimates (as Prometheus's
/// `histogram_quantile` is).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct LatencySummary {
    pub count: u64,
    pub mean_ms: f64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
}

impl HistogramSnapshot {
    pub fn summary(&self) -> LatencySummary {
        if self.count == 0 {
            return LatencySummary::default();
        }
        LatencySummary {
            count: self.count,
            mean_ms: self.sum_seconds * 1e3 / self.count as f64,
            p50_ms: self.quantile(0.5) * 1e3,
            p90_ms: self.quantile(0.9) * 1e3,
            p99_ms: self.quantile(0.99) * 1e3,
        }
    }

    /// The `q` quantile in seconds (0 when empty). Past the last finite
    /// bound it reports that bound, as nothing is known of the tail.
    pub fn quantile(&self, q: f64) -> f64 {
        if self.count == 0 {
            return 0.0;
        }
        let rank = q.clamp(0.0, 1.0) * self.count as f64;
        let mut lower_bound = 0.0;
        let mut below = 0u64;
        for &(bound, cumulative) in &self.buckets {
            if cumulative as f64 >= rank && cumulative > below {
                if bound.is_infinite() {
                    return lower_bound;
                }
                let within = (rank - below as f64) / (cumulative - below) as f64;
                return lower_bound + (bound - lower_bound) * within.clamp(0.0, 1.0);
            }
            lower_bound = bound;
            below = cumulative;
        }
        lower_bound
    }
}

/// Events per second between the last two samples of a counter.
#[derive(Default)]
pub struct RateMeter {
    state: Mutex<Option<(Instant, u64)>>,
    per_second_bits: AtomicU64,
}

impl RateMeter {
    /// Takes a sample of the counter's `total`; the rate then covers the
    /// time since the previous sample.
    pub fn sample(&self, total: u64) {
        let now = Instant::now();
        let Ok(mut last) = self.state.lock() else {
            return;
        };
        if let Some((at, previous)) = *last {
            let elapsed = now.duration_since(at).as_secs_f64();
            if elapsed > 0.0 {
                let rate = total.saturating_sub(previous) as f64 / elapsed;
                self.per_second_bits
                    .store(rate.to_bits(), Ordering::Relaxed);
            }
        }
        *last = Some((now, total));
    }

    pub fn per_second(&self) -> f64 {
        f64::from_bits(self.per_second_bits.load(Ordering::Relaxed))
    }
}

/// One broker connection of a client, from librdkafka's statistics.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BrokerSummary {
    /// `host:port/id` as librdkafka names it.
    pub name: String,
    /// -1 for a bootstrap address not yet matched to a broker id.
    pub node_id: i32,
    /// `host:port`: a bootstrap address and the broker behind it share it.
    pub address: String,
    /// librdkafka's connection state: `UP`, `DOWN`, `CONNECT`, `INIT`, ...
    pub state: String,
    pub rtt_avg_ms: f64,
    pub rtt_p99_ms: f64,
    pub request_errors: u64,
    pub request_retries: u64,
    pub request_timeouts: u64,
    pub connects: u64,
    pub disconnects: u64,
}

/// What this library reads from one librdkafka statistics report.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LibrdkafkaSummary {
    /// Milliseconds since the Unix epoch when librdkafka emitted it.
    pub at_ms: i64,
    pub brokers: Vec<BrokerSummary>,
    /// Messages and bytes in the producer's local queue (waiting or in flight).
    pub queued_messages: u64,
    pub queued_bytes: u64,
    /// Consumer group state (`up`, `wait-join`, ...), rebalances so far.
    pub group_state: Option<String>,
    pub rebalances: u64,
}

impl LibrdkafkaSummary {
    pub fn from_statistics(statistics: &Statistics) -> Self {
        let mut brokers: Vec<BrokerSummary> = statistics
            .brokers
            .values()
            // librdkafka's internal pseudo-broker (`:0/internal`) is no connection.
            .filter(|broker| broker.source != "internal")
            .map(|broker| {
                let rtt = broker.rtt.as_ref();
                BrokerSummary {
                    name: broker.name.clone(),
                    node_id: broker.nodeid,
                    address: broker.nodename.clone(),
                    state: broker.state.clone(),
                    rtt_avg_ms: rtt.map_or(0.0, |window| window.avg as f64 / 1e3),
                    rtt_p99_ms: rtt.map_or(0.0, |window| window.p99 as f64 / 1e3),
                    request_errors: broker.txerrs + broker.rxerrs,
                    request_retries: broker.txretries,
                    request_timeouts: broker.req_timeouts,
                    connects: broker.connects.map_or(0, non_negative),
                    disconnects: broker.disconnects.map_or(0, non_negative),
                }
            })
            .collect();
        brokers.sort_by(|a, b| a.name.cmp(&b.name));
        LibrdkafkaSummary {
            at_ms: statistics.time.saturating_mul(1000),
            brokers,
            queued_messages: statistics.msg_cnt,
            queued_bytes: statistics.msg_size,
            group_state: statistics.cgrp.as_ref().map(|group| group.state.clone()),
            rebalances: statistics
                .cgrp
                .as_ref()
                .map_or(0, |group| non_negative(group.rebalance_cnt)),
        }
    }

    /// Broker addresses with an established connection (a bootstrap
    /// connection and a broker's own one to the same address count once).
    pub fn brokers_up(&self) -> u32 {
        let up: std::collections::BTreeSet<&str> = self
            .brokers
            .iter()
            .filter(|broker| broker.state == "UP")
            .map(|broker| broker.address.as_str())
            .collect();
        u32::try_from(up.len()).unwrap_or(u32::MAX)
    }

    pub fn request_retries(&self) -> u64 {
        self.brokers
            .iter()
            .map(|broker| broker.request_retries)
            .sum()
    }

    pub fn request_errors(&self) -> u64 {
        self.brokers
            .iter()
            .map(|broker| broker.request_errors)
            .sum()
    }
}

fn non_negative(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

/// librdkafka's name of a client handle (`rdkafka#producer-3`), unique in the process.
pub fn handle_name<C: rdkafka::client::ClientContext>(
    client: &rdkafka::client::Client<C>,
) -> String {
    // SAFETY: the handle is alive for the call, and librdkafka returns a
    // NUL-terminated name owned by the handle, copied here before returning.
    unsafe { std::ffi::CStr::from_ptr(rdkafka::bindings::rd_kafka_name(client.native_ptr())) }
        .to_string_lossy()
        .into_owned()
}

/// The latest librdkafka statistics of one client.
#[derive(Default)]
pub struct LatestStatistics(Mutex<Option<Arc<LibrdkafkaSummary>>>);

impl LatestStatistics {
    /// Parses and keeps a raw statistics report; returns the summary, or
    /// `None` (after a debug log) when librdkafka's JSON does not parse.
    pub fn record(&self, raw: &[u8]) -> Option<Arc<LibrdkafkaSummary>> {
        let statistics: Statistics = match serde_json::from_slice(raw) {
            Ok(statistics) => statistics,
            Err(error) => {
                tracing::debug!("librdkafka statistics not understood: {error}");
                return None;
            }
        };
        let summary = Arc::new(LibrdkafkaSummary::from_statistics(&statistics));
        if let Ok(mut latest) = self.0.lock() {
            *latest = Some(summary.clone());
        }
        Some(summary)
    }

    pub fn get(&self) -> Option<Arc<LibrdkafkaSummary>> {
        self.0.lock().ok().and_then(|latest| latest.clone())
    }
}

/// What a producer measures as messages flow.
#[derive(Default)]
pub struct ProducerInstruments {
    sent: AtomicU64,
    delivered: AtomicU64,
    failed: AtomicU64,
    latency: LatencyHistogram,
    delivered_rate: RateMeter,
    statistics: LatestStatistics,
}

impl ProducerInstruments {
    pub fn sent(&self, messages: u64) {
        self.sent.fetch_add(messages, Ordering::Relaxed);
    }

    /// Messages sent whose outcome is not known yet. Counted here rather
    /// than read from librdkafka, whose count keeps a delivered message until
    /// its report has been served, a little after its promise settled.
    pub fn awaiting_outcome(&self) -> u64 {
        let settled = self.delivered.load(Ordering::Relaxed) + self.failed.load(Ordering::Relaxed);
        self.sent.load(Ordering::Relaxed).saturating_sub(settled)
    }

    /// A message's outcome is known; `since` is when it was sent.
    pub fn settled(&self, since: Instant, delivered: bool) {
        if delivered {
            self.delivered.fetch_add(1, Ordering::Relaxed);
            self.latency.observe(since.elapsed());
        } else {
            self.failed.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn record_statistics(&self, raw: &[u8]) {
        self.statistics.record(raw);
        self.delivered_rate
            .sample(self.delivered.load(Ordering::Relaxed));
    }

    pub fn snapshot(
        &self,
        client_id: &str,
        handle: &str,
        connected: bool,
        queued: u64,
    ) -> ProducerMetrics {
        ProducerMetrics {
            client_id: client_id.to_string(),
            handle: handle.to_string(),
            connected,
            sent: self.sent.load(Ordering::Relaxed),
            delivered: self.delivered.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
            queued,
            delivered_per_second: self.delivered_rate.per_second(),
            delivery_latency: self.latency.snapshot(),
            librdkafka: self.statistics.get(),
        }
    }
}

/// What a consumer measures beyond its counters.
#[derive(Default)]
pub struct ConsumerInstruments {
    pub processing_time: LatencyHistogram,
    processed_rate: RateMeter,
    statistics: LatestStatistics,
}

impl ConsumerInstruments {
    /// Keeps a statistics report; `processed` is the consumer's running
    /// total, sampled for the rate. Returns the report's summary.
    pub fn record_statistics(&self, raw: &[u8], processed: u64) -> Option<Arc<LibrdkafkaSummary>> {
        self.processed_rate.sample(processed);
        self.statistics.record(raw)
    }

    pub fn processed_per_second(&self) -> f64 {
        self.processed_rate.per_second()
    }

    pub fn statistics(&self) -> Option<Arc<LibrdkafkaSummary>> {
        self.statistics.get()
    }
}

/// A producer's metrics at one moment.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProducerMetrics {
    pub client_id: String,
    /// librdkafka's handle name (`rdkafka#producer-N`), unique in the process.
    pub handle: String,
    pub connected: bool,
    /// Messages handed to the producer (accepted by `send`).
    pub sent: u64,
    pub delivered: u64,
    /// Messages whose delivery failed (their sends rejected).
    pub failed: u64,
    /// Messages not yet acknowledged: in librdkafka's queue or in flight,
    /// plus those waiting for room in it.
    pub queued: u64,
    /// Deliveries per second over the last statistics interval.
    pub delivered_per_second: f64,
    /// From the send call to the broker's acknowledgement.
    pub delivery_latency: HistogramSnapshot,
    pub librdkafka: Option<Arc<LibrdkafkaSummary>>,
}

/// A consumer's metrics at one moment.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ConsumerMetrics {
    pub name: String,
    pub handle: String,
    pub group_id: String,
    pub connected: bool,
    pub stats: crate::core::consumer::ConsumerStats,
    /// Messages finished per second over the last statistics interval.
    pub processed_per_second: f64,
    /// Time in the application's callback per message.
    pub processing_time: HistogramSnapshot,
    pub librdkafka: Option<Arc<LibrdkafkaSummary>>,
}

/// A client whose metrics the process's exposition includes.
pub trait MetricsSource: Send + Sync {
    /// `None` once the client is closed: it leaves the exposition.
    fn collect(&self) -> Option<ClientMetrics>;
}

pub enum ClientMetrics {
    Producer(ProducerMetrics),
    Consumer(ConsumerMetrics),
}

static SOURCES: Mutex<Vec<Weak<dyn MetricsSource>>> = Mutex::new(Vec::new());

/// Adds a client to the process's exposition for as long as it lives.
pub fn register(source: Weak<dyn MetricsSource>) {
    if let Ok(mut sources) = SOURCES.lock() {
        sources.retain(|source| source.strong_count() > 0);
        sources.push(source);
    }
}

fn collect_all() -> Vec<ClientMetrics> {
    let live: Vec<Arc<dyn MetricsSource>> = match SOURCES.lock() {
        Ok(mut sources) => {
            sources.retain(|source| source.strong_count() > 0);
            sources.iter().filter_map(Weak::upgrade).collect()
        }
        Err(_) => Vec::new(),
    };
    // Collected outside the registry lock: a consumer's collect takes its own locks.
    live.iter().filter_map(|source| source.collect()).collect()
}

/// The `Content-Type` of [`prometheus_text`].
pub const PROMETHEUS_CONTENT_TYPE: &str =
    prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// Every live client's metrics in the Prometheus text format (0.0.4).
pub fn prometheus_text() -> String {
    encode_prometheus(collect_all())
}

fn encode_prometheus(clients: Vec<ClientMetrics>) -> String {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(Exposition(clients)));
    let mut text = String::new();
    // Writing to a String cannot fail.
    let _ = prometheus_client::encoding::prometheus_text::encode(&mut text, &registry);
    text
}

/// The clients' metrics as one scrape sees them.
struct Exposition(Vec<ClientMetrics>);

impl std::fmt::Debug for Exposition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Exposition({} clients)", self.0.len())
    }
}

type Labels = Vec<(&'static str, String)>;

struct Counter(u64);
/// Counts and flags print as integers, durations as floats.
enum Gauge {
    Whole(i64),
    Fraction(f64),
}
struct Histogram<'a>(&'a HistogramSnapshot);

/// One metric family: its samples, each with its labels.
struct Family<'a> {
    name: &'static str,
    help: &'static str,
    samples: Vec<(Labels, Sample<'a>)>,
}

enum Sample<'a> {
    Counter(Counter),
    Gauge(Gauge),
    Histogram(Histogram<'a>),
}

impl Family<'_> {
    fn metric_type(&self) -> MetricType {
        match self.samples.first().map(|(_, sample)| sample) {
            Some(Sample::Counter(_)) => MetricType::Counter,
            Some(Sample::Histogram(_)) => MetricType::Histogram,
            _ => MetricType::Gauge,
        }
    }

    fn encode(&self, encoder: &mut DescriptorEncoder) -> std::fmt::Result {
        if self.samples.is_empty() {
            return Ok(());
        }
        let mut metric =
            encoder.encode_descriptor(self.name, self.help, None, self.metric_type())?;
        for (labels, sample) in &self.samples {
            let mut labelled = metric.encode_family(labels)?;
            sample.encode(&mut labelled)?;
        }
        Ok(())
    }
}

impl Sample<'_> {
    fn encode(&self, encoder: &mut MetricEncoder) -> std::fmt::Result {
        match self {
            Sample::Counter(Counter(value)) => encoder
                .encode_counter::<prometheus_client::encoding::NoLabelSet, _, u64>(value, None),
            Sample::Gauge(Gauge::Whole(value)) => encoder.encode_gauge(value),
            Sample::Gauge(Gauge::Fraction(value)) => encoder.encode_gauge(value),
            Sample::Histogram(Histogram(snapshot)) => {
                // prometheus-client takes each bucket's own count and sums them itself.
                let mut below = 0;
                let own_counts: Vec<(f64, u64)> = snapshot
                    .buckets
                    .iter()
                    .map(|&(bound, cumulative)| {
                        let own = cumulative - below;
                        below = cumulative;
                        (bound, own)
                    })
                    .collect();
                encoder.encode_histogram::<prometheus_client::encoding::NoLabelSet>(
                    snapshot.sum_seconds,
                    snapshot.count,
                    &own_counts,
                    None,
                )
            }
        }
    }
}

impl prometheus_client::collector::Collector for Exposition {
    fn encode(&self, mut encoder: DescriptorEncoder) -> std::fmt::Result {
        for family in families(&self.0) {
            family.encode(&mut encoder)?;
        }
        Ok(())
    }
}

fn whole(value: u64) -> Gauge {
    Gauge::Whole(i64::try_from(value).unwrap_or(i64::MAX))
}

fn families<'a>(clients: &'a [ClientMetrics]) -> Vec<Family<'a>> {
    let mut families = Vec::new();
    let mut family =
        |name: &'static str, help: &'static str, samples: Vec<(Labels, Sample<'a>)>| {
            families.push(Family {
                name,
                help,
                samples,
            })
        };
    let producers: Vec<(&ProducerMetrics, Labels)> = clients
        .iter()
        .filter_map(|client| match client {
            ClientMetrics::Producer(metrics) => Some((
                metrics,
                vec![
                    ("client_id", metrics.client_id.clone()),
                    ("handle", metrics.handle.clone()),
                ],
            )),
            ClientMetrics::Consumer(_) => None,
        })
        .collect();
    let consumers: Vec<(&ConsumerMetrics, Labels)> = clients
        .iter()
        .filter_map(|client| match client {
            ClientMetrics::Consumer(metrics) => Some((
                metrics,
                vec![
                    ("consumer", metrics.name.clone()),
                    ("group", metrics.group_id.clone()),
                    ("handle", metrics.handle.clone()),
                ],
            )),
            ClientMetrics::Producer(_) => None,
        })
        .collect();

    let each_producer = |value: &dyn Fn(&ProducerMetrics) -> Sample<'static>| {
        producers
            .iter()
            .map(|(metrics, labels)| (labels.clone(), value(metrics)))
            .collect::<Vec<_>>()
    };
    family(
        "kafka_producer_messages_sent",
        "Messages accepted by send",
        each_producer(&|m| Sample::Counter(Counter(m.sent))),
    );
    family(
        "kafka_producer_messages_delivered",
        "Messages acknowledged by the cluster",
        each_producer(&|m| Sample::Counter(Counter(m.delivered))),
    );
    family(
        "kafka_producer_delivery_failures",
        "Messages whose delivery failed",
        each_producer(&|m| Sample::Counter(Counter(m.failed))),
    );
    family(
        "kafka_producer_queued_messages",
        "Messages sent and not yet acknowledged",
        each_producer(&|m| Sample::Gauge(whole(m.queued))),
    );
    family(
        "kafka_producer_request_retries",
        "Produce and other requests retried by librdkafka",
        each_producer(&|m| {
            Sample::Counter(Counter(
                m.librdkafka.as_ref().map_or(0, |s| s.request_retries()),
            ))
        }),
    );
    family(
        "kafka_producer_request_errors",
        "Request errors reported by librdkafka",
        each_producer(&|m| {
            Sample::Counter(Counter(
                m.librdkafka.as_ref().map_or(0, |s| s.request_errors()),
            ))
        }),
    );
    family(
        "kafka_producer_delivery_latency_seconds",
        "Time from send to the cluster's acknowledgement",
        producers
            .iter()
            .map(|(metrics, labels)| {
                (
                    labels.clone(),
                    Sample::Histogram(Histogram(&metrics.delivery_latency)),
                )
            })
            .collect(),
    );

    let each_consumer = |value: &dyn Fn(&ConsumerMetrics) -> Sample<'static>| {
        consumers
            .iter()
            .map(|(metrics, labels)| (labels.clone(), value(metrics)))
            .collect::<Vec<_>>()
    };
    family(
        "kafka_consumer_messages_received",
        "Messages fetched and handed to processing",
        each_consumer(&|m| Sample::Counter(Counter(m.stats.received))),
    );
    family(
        "kafka_consumer_messages_processed",
        "Messages whose callback succeeded",
        each_consumer(&|m| Sample::Counter(Counter(m.stats.processed))),
    );
    family(
        "kafka_consumer_retries",
        "Callback attempts retried after a failure",
        each_consumer(&|m| Sample::Counter(Counter(m.stats.retried))),
    );
    family(
        "kafka_consumer_messages_dead_lettered",
        "Messages parked in the dead-letter topic",
        each_consumer(&|m| Sample::Counter(Counter(m.stats.dead_lettered))),
    );
    family(
        "kafka_consumer_messages_skipped",
        "Messages given up on without a dead-letter topic",
        each_consumer(&|m| Sample::Counter(Counter(m.stats.skipped))),
    );
    family(
        "kafka_consumer_in_flight_messages",
        "Messages received and not yet committed",
        each_consumer(&|m| Sample::Gauge(whole(m.stats.in_flight))),
    );
    family(
        "kafka_consumer_paused",
        "1 while fetching is paused (by the application or backpressure)",
        each_consumer(&|m| Sample::Gauge(Gauge::Whole(i64::from(m.stats.paused)))),
    );
    family(
        "kafka_consumer_rebalances",
        "Partition assignments and revocations of the consumer group",
        each_consumer(&|m| {
            Sample::Counter(Counter(m.librdkafka.as_ref().map_or(0, |s| s.rebalances)))
        }),
    );
    family(
        "kafka_consumer_processing_seconds",
        "Time in the application's callback per message",
        consumers
            .iter()
            .map(|(metrics, labels)| {
                (
                    labels.clone(),
                    Sample::Histogram(Histogram(&metrics.processing_time)),
                )
            })
            .collect(),
    );
    family(
        "kafka_consumer_lag",
        "Messages in the partition after the last one handled",
        consumers
            .iter()
            .flat_map(|(metrics, labels)| {
                metrics.stats.lag.iter().map(move |partition| {
                    let mut labels = labels.clone();
                    labels.push(("topic", partition.topic.clone()));
                    labels.push(("partition", partition.partition.to_string()));
                    (labels, Sample::Gauge(Gauge::Whole(partition.lag)))
                })
            })
            .collect(),
    );

    let with_role = |labels: &Labels, role: &str| {
        let mut labels = labels.clone();
        labels.push(("role", role.to_string()));
        labels
    };
    let clients_labelled = producers
        .iter()
        .map(|(metrics, labels)| {
            let labels = with_role(labels, "producer");
            (metrics.connected, metrics.librdkafka.as_ref(), labels)
        })
        .chain(consumers.iter().map(|(metrics, labels)| {
            let labels = with_role(labels, "consumer");
            (metrics.connected, metrics.librdkafka.as_ref(), labels)
        }))
        .collect::<Vec<_>>();
    family(
        "kafka_client_connected",
        "1 while the client reaches at least one broker",
        clients_labelled
            .iter()
            .map(|(connected, _, labels)| {
                (
                    labels.clone(),
                    Sample::Gauge(Gauge::Whole(i64::from(*connected))),
                )
            })
            .collect(),
    );
    family(
        "kafka_broker_rtt_seconds",
        "Mean request round trip to each broker over the last statistics interval",
        clients_labelled
            .iter()
            .flat_map(|(_, statistics, labels)| {
                statistics
                    .iter()
                    .flat_map(|statistics| statistics.brokers.iter())
                    .filter(|broker| broker.node_id >= 0)
                    .map(move |broker| {
                        let mut labels = labels.clone();
                        labels.push(("broker", broker.name.clone()));
                        (
                            labels,
                            Sample::Gauge(Gauge::Fraction(broker.rtt_avg_ms / 1e3)),
                        )
                    })
            })
            .collect(),
    );
    families
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::consumer::{ConsumerStats, PartitionLag};

    #[test]
    fn quantiles_are_interpolated_within_buckets() {
        let histogram = LatencyHistogram::default();
        for _ in 0..90 {
            histogram.observe(Duration::from_micros(800)); // 0.5..1 ms bucket
        }
        for _ in 0..10 {
            histogram.observe(Duration::from_millis(40)); // 25..50 ms bucket
        }
        let summary = histogram.snapshot().summary();
        assert_eq!(summary.count, 100);
        assert!((summary.mean_ms - 4.72).abs() < 1e-9, "{summary:?}");
        assert!(summary.p50_ms > 0.5 && summary.p50_ms <= 1.0, "{summary:?}");
        assert!(summary.p90_ms <= 1.0, "{summary:?}");
        assert!(
            summary.p99_ms > 25.0 && summary.p99_ms <= 50.0,
            "{summary:?}"
        );
    }

    #[test]
    fn an_empty_histogram_summarises_to_zeros_and_the_tail_reports_the_last_bound() {
        assert_eq!(
            LatencyHistogram::default().snapshot().summary(),
            LatencySummary::default()
        );
        let histogram = LatencyHistogram::default();
        histogram.observe_many(Duration::from_secs(100), 3);
        let snapshot = histogram.snapshot();
        assert_eq!(snapshot.count, 3);
        assert_eq!(snapshot.quantile(0.99), 60.0);
        assert_eq!(snapshot.buckets.last(), Some(&(f64::INFINITY, 3)));
    }

    #[test]
    fn librdkafka_statistics_are_summarised() {
        let raw = br#"{"name":"rdkafka#consumer-3","client_id":"c","type":"consumer","ts":1,"time":1700000000,"age":1,
            "replyq":0,"msg_cnt":7,"msg_size":700,"msg_max":100000,"msg_size_max":1000,"simple_cnt":0,"metadata_cache_cnt":1,
            "tx":1,"tx_bytes":1,"rx":1,"rx_bytes":1,"txmsgs":0,"txmsg_bytes":0,"rxmsgs":0,"rxmsg_bytes":0,
            "brokers":{
              "127.0.0.1:9092/bootstrap":{"name":"127.0.0.1:9092/bootstrap","nodeid":-1,"nodename":"127.0.0.1:9092","source":"learned","state":"UP","stateage":1,"outbuf_cnt":0,"outbuf_msg_cnt":0,"waitresp_cnt":0,"waitresp_msg_cnt":0,"tx":1,"txbytes":1,"txerrs":0,"txretries":0,"txidle":0,"req_timeouts":0,"rx":1,"rxbytes":1,"rxerrs":0,"rxcorriderrs":0,"rxpartial":0,"rxidle":0,"zbuf_grow":0,"buf_grow":0,"wakeups":1,"connects":1,"disconnects":0,"req":{},"toppars":{}},
              "127.0.0.1:9092/1":{"name":"127.0.0.1:9092/1","nodeid":1,"nodename":"127.0.0.1:9092","source":"learned","state":"DOWN","stateage":1,"outbuf_cnt":0,"outbuf_msg_cnt":0,"waitresp_cnt":0,"waitresp_msg_cnt":0,"tx":1,"txbytes":1,"txerrs":2,"txretries":5,"txidle":0,"req_timeouts":1,"rx":1,"rxbytes":1,"rxerrs":1,"rxcorriderrs":0,"rxpartial":0,"rxidle":0,"zbuf_grow":0,"buf_grow":0,"wakeups":1,"connects":2,"disconnects":1,"req":{},"toppars":{},
                "rtt":{"min":1000,"max":9000,"avg":2500,"sum":1,"cnt":1,"stddev":0,"hdrsize":1,"p50":2000,"p75":1,"p90":1,"p95":1,"p99":8000,"p99_99":1,"outofrange":0}},
              ":0/internal":{"name":":0/internal","nodeid":-1,"nodename":"","source":"internal","state":"UP","stateage":1,"outbuf_cnt":0,"outbuf_msg_cnt":0,"waitresp_cnt":0,"waitresp_msg_cnt":0,"tx":0,"txbytes":0,"txerrs":0,"txretries":0,"txidle":0,"req_timeouts":0,"rx":0,"rxbytes":0,"rxerrs":0,"rxcorriderrs":0,"rxpartial":0,"rxidle":0,"zbuf_grow":0,"buf_grow":0,"req":{},"toppars":{}}},
            "topics":{},
            "cgrp":{"state":"up","stateage":1,"join_state":"steady","rebalance_age":1,"rebalance_cnt":2,"rebalance_reason":"","assignment_size":3}}"#;
        let latest = LatestStatistics::default();
        let summary = latest.record(raw).expect("parses");
        assert_eq!(latest.get().as_deref(), Some(&*summary));
        assert_eq!(summary.at_ms, 1_700_000_000_000);
        assert_eq!(summary.brokers.len(), 2, "the internal broker is left out");
        let broker = summary
            .brokers
            .iter()
            .find(|broker| broker.node_id == 1)
            .expect("broker 1");
        assert_eq!((broker.node_id, broker.state.as_str()), (1, "DOWN"));
        assert_eq!((broker.rtt_avg_ms, broker.rtt_p99_ms), (2.5, 8.0));
        assert_eq!(summary.request_retries(), 5);
        assert_eq!(summary.request_errors(), 3);
        // Broker 1's own connection is down, the bootstrap one to the same address is up.
        assert_eq!(summary.brokers_up(), 1);
        assert_eq!(summary.group_state.as_deref(), Some("up"));
        assert_eq!(summary.rebalances, 2);
        assert_eq!((summary.queued_messages, summary.queued_bytes), (7, 700));
        assert!(latest.record(b"{not json").is_none());
        assert_eq!(
            latest.get().as_deref(),
            Some(&*summary),
            "a bad report keeps the last good one"
        );
    }

    #[test]
    fn the_exposition_has_one_family_per_metric_with_a_series_per_client() {
        let latency = LatencyHistogram::default();
        latency.observe(Duration::from_millis(3));
        let producer = |id: &str, sent| {
            ClientMetrics::Producer(ProducerMetrics {
                client_id: id.into(),
                handle: format!("rdkafka#producer-{id}"),
                connected: true,
                sent,
                delivery_latency: latency.snapshot(),
                ..Default::default()
            })
        };
        let consumer = ClientMetrics::Consumer(ConsumerMetrics {
            name: "movie \"views\"".into(),
            handle: "rdkafka#consumer-9".into(),
            group_id: "g".into(),
            stats: ConsumerStats {
                processed: 12,
                lag: vec![PartitionLag {
                    topic: "movie-views".into(),
                    partition: 2,
                    lag: 40,
                }],
                ..Default::default()
            },
            ..Default::default()
        });
        let text = encode_prometheus(vec![producer("a", 5), producer("b", 7), consumer]);
        assert_eq!(
            text.matches("# TYPE kafka_producer_messages_sent_total counter")
                .count(),
            1,
            "{text}"
        );
        assert!(text.contains(
            "kafka_producer_messages_sent_total{client_id=\"a\",handle=\"rdkafka#producer-a\"} 5\n"
        ), "{text}");
        assert!(text.contains("client_id=\"b\""), "{text}");
        assert!(text.contains(
            "kafka_consumer_lag{consumer=\"movie \\\"views\\\"\",group=\"g\",handle=\"rdkafka#consumer-9\",topic=\"movie-views\",partition=\"2\"} 40"
        ), "{text}");
        assert!(
            text.contains("kafka_consumer_messages_processed_total{consumer="),
            "{text}"
        );
        assert!(text.contains(
            "kafka_producer_delivery_latency_seconds_bucket{client_id=\"a\",handle=\"rdkafka#producer-a\",le=\"0.005\"} 1"
        ), "{text}");
        assert!(text.contains("kafka_client_connected{client_id=\"a\",handle=\"rdkafka#producer-a\",role=\"producer\"} 1"), "{text}");
        // Buckets are cumulative and end at the count.
        assert!(text.contains(
            "kafka_producer_delivery_latency_seconds_bucket{client_id=\"a\",handle=\"rdkafka#producer-a\",le=\"0.01\"} 1"
        ), "{text}");
        assert!(text.contains(
            "kafka_producer_delivery_latency_seconds_bucket{client_id=\"a\",handle=\"rdkafka#producer-a\",le=\"+Inf\"} 1"
        ), "{text}");
        assert!(text.contains(
            "kafka_producer_delivery_latency_seconds_count{client_id=\"a\",handle=\"rdkafka#producer-a\"} 1"
        ), "{text}");
    }
}
