//! The core's metrics as JavaScript objects, and the process's Prometheus
//! exposition.

use crate::binding::consumer::ConsumerStats;
use crate::core::metrics::{
    self as core_metrics, BrokerSummary, ConsumerMetrics as CoreConsumerMetrics, HistogramSnapshot,
    LibrdkafkaSummary, ProducerMetrics as CoreProducerMetrics,
};
use napi_derive::napi;

/// `text/plain; version=0.0.4; charset=utf-8`: the `Content-Type` to serve
/// `prometheusMetrics()` with.
#[napi]
pub const PROMETHEUS_CONTENT_TYPE: &str = core_metrics::PROMETHEUS_CONTENT_TYPE;

/// Every live producer and consumer of the process in the Prometheus text
/// format (0.0.4), for a `GET /metrics` endpoint. Series are labelled with
/// `client_id` (producers) or `consumer` and `group` (consumers), plus
/// librdkafka's `handle` name, unique in the process. Closed clients leave it.
#[napi(catch_unwind)]
pub fn prometheus_metrics() -> String {
    core_metrics::prometheus_text()
}

/// Milliseconds; quantiles are estimated within fixed buckets (as
/// Prometheus's `histogram_quantile` does). All 0 before the first observation.
#[napi(object)]
pub struct LatencySummary {
    pub count: i64,
    pub mean_ms: f64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
}

impl From<&HistogramSnapshot> for LatencySummary {
    fn from(snapshot: &HistogramSnapshot) -> Self {
        let summary = snapshot.summary();
        LatencySummary {
            count: count(summary.count),
            mean_ms: summary.mean_ms,
            p50_ms: summary.p50_ms,
            p90_ms: summary.p90_ms,
            p99_ms: summary.p99_ms,
        }
    }
}

/// One broker connection, from librdkafka's latest statistics.
#[napi(object)]
pub struct BrokerMetrics {
    /// `host:port/id` (`/bootstrap` for an address not yet matched to a broker).
    pub name: String,
    /// -1 for a bootstrap address.
    pub node_id: i32,
    /// librdkafka's connection state: `UP`, `DOWN`, `CONNECT`, `INIT`, ...
    pub state: String,
    /// Request round trip over the last statistics interval.
    pub rtt_avg_ms: f64,
    pub rtt_p99_ms: f64,
    pub request_errors: i64,
    pub request_retries: i64,
    pub request_timeouts: i64,
    pub connects: i64,
    pub disconnects: i64,
}

impl From<&BrokerSummary> for BrokerMetrics {
    fn from(broker: &BrokerSummary) -> Self {
        BrokerMetrics {
            name: broker.name.clone(),
            node_id: broker.node_id,
            state: broker.state.clone(),
            rtt_avg_ms: broker.rtt_avg_ms,
            rtt_p99_ms: broker.rtt_p99_ms,
            request_errors: count(broker.request_errors),
            request_retries: count(broker.request_retries),
            request_timeouts: count(broker.request_timeouts),
            connects: count(broker.connects),
            disconnects: count(broker.disconnects),
        }
    }
}

/// `producer.metrics()`. Counters run from the producer's creation.
#[napi(object)]
pub struct ProducerMetrics {
    pub client_id: String,
    /// librdkafka's name of the client (`rdkafka#producer-1`), unique in the process.
    pub handle: String,
    /// `false` from the moment librdkafka reports every broker down until
    /// contact is made again.
    pub connected: bool,
    /// Brokers with an open connection, at the last statistics report.
    pub brokers_up: u32,
    /// Messages accepted by `send` and the typed helpers.
    pub sent: i64,
    /// Messages the cluster acknowledged.
    pub delivered: i64,
    /// Messages whose send rejected after being accepted (timeout, refusal, disconnect).
    pub failed: i64,
    /// Requests librdkafka retried (a retry never duplicates: the producer is idempotent).
    pub retries: i64,
    /// Request errors librdkafka saw (transport errors, error responses).
    pub request_errors: i64,
    /// Messages sent and not yet acknowledged: the queue depth.
    pub queued: i64,
    /// Deliveries per second over the last statistics interval.
    pub delivered_per_second: f64,
    /// From the send call to the cluster's acknowledgement.
    pub delivery_latency: LatencySummary,
    pub brokers: Vec<BrokerMetrics>,
    /// When librdkafka's statistics were taken (ms since the epoch); absent
    /// before the first report or with `statisticsIntervalMs: 0`.
    pub statistics_at: Option<f64>,
}

impl From<CoreProducerMetrics> for ProducerMetrics {
    fn from(metrics: CoreProducerMetrics) -> Self {
        let statistics = metrics.librdkafka.as_deref();
        ProducerMetrics {
            client_id: metrics.client_id,
            handle: metrics.handle,
            connected: metrics.connected,
            brokers_up: statistics.map_or(0, LibrdkafkaSummary::brokers_up),
            sent: count(metrics.sent),
            delivered: count(metrics.delivered),
            failed: count(metrics.failed),
            retries: count(statistics.map_or(0, LibrdkafkaSummary::request_retries)),
            request_errors: count(statistics.map_or(0, LibrdkafkaSummary::request_errors)),
            queued: count(metrics.queued),
            delivered_per_second: metrics.delivered_per_second,
            delivery_latency: (&metrics.delivery_latency).into(),
            brokers: brokers(statistics),
            statistics_at: statistics.map(|summary| summary.at_ms as f64),
        }
    }
}

/// `consumer.metrics()`: `stats()` plus rates, timings, connectivity and
/// librdkafka's view of the group and brokers.
#[napi(object)]
pub struct ConsumerMetrics {
    pub name: String,
    pub group_id: String,
    pub handle: String,
    /// `false` from the moment librdkafka reports every broker down until a
    /// broker answers again (a probe every second, or a statistics report).
    pub connected: bool,
    pub brokers_up: u32,
    pub received: i64,
    /// Messages whose callback succeeded.
    pub processed: i64,
    pub retried: i64,
    pub dead_lettered: i64,
    pub skipped: i64,
    /// Received and not yet committed (see `maxInFlight`).
    pub in_flight: i64,
    pub paused: bool,
    /// Messages processed per second over the last statistics interval.
    pub processed_per_second: f64,
    /// Time in the callback per message (a run of messages handed over
    /// together shares its time among them).
    pub processing_time: LatencySummary,
    /// Per assigned partition: messages after the last one handled. Kept
    /// current while paused (the high watermark is read every second).
    pub lag: Vec<crate::binding::consumer::PartitionLag>,
    /// The sum of `lag`.
    pub total_lag: i64,
    /// Assignments and revocations so far (librdkafka's count).
    pub rebalances: i64,
    /// librdkafka's group state (`up`, `wait-join`, ...), at the last report.
    pub group_state: Option<String>,
    pub brokers: Vec<BrokerMetrics>,
    pub statistics_at: Option<f64>,
}

impl From<CoreConsumerMetrics> for ConsumerMetrics {
    fn from(metrics: CoreConsumerMetrics) -> Self {
        let statistics = metrics.librdkafka.as_deref();
        let stats: ConsumerStats = metrics.stats.into();
        ConsumerMetrics {
            name: metrics.name,
            group_id: metrics.group_id,
            handle: metrics.handle,
            connected: metrics.connected,
            brokers_up: statistics.map_or(0, LibrdkafkaSummary::brokers_up),
            received: stats.received,
            processed: stats.processed,
            retried: stats.retried,
            dead_lettered: stats.dead_lettered,
            skipped: stats.skipped,
            in_flight: stats.in_flight,
            paused: stats.paused,
            processed_per_second: metrics.processed_per_second,
            processing_time: (&metrics.processing_time).into(),
            total_lag: stats.lag.iter().map(|partition| partition.lag).sum(),
            lag: stats.lag,
            rebalances: count(statistics.map_or(0, |summary| summary.rebalances)),
            group_state: statistics.and_then(|summary| summary.group_state.clone()),
            brokers: brokers(statistics),
            statistics_at: statistics.map(|summary| summary.at_ms as f64),
        }
    }
}

fn brokers(statistics: Option<&LibrdkafkaSummary>) -> Vec<BrokerMetrics> {
    statistics
        .map(|summary| summary.brokers.iter().map(BrokerMetrics::from).collect())
        .unwrap_or_default()
}

pub(crate) fn count(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}
