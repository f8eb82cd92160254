//! The benchmark's ceiling: the same cases as the Node.js clients, written directly
//! against the `rdkafka` crate (librdkafka) with tokio and no N-API in between. A
//! librdkafka-based Node client cannot be faster than this on the same machine.
//!
//! Run by `bench/run.mjs`, one process per case and repetition:
//!
//!   bench_ceiling <case> --brokers host:port --topic t [--messages n] [--size bytes] ...
//!
//! Cases: preload, produce-each, produce-batch, consume-each, consume-batch, latency,
//! groups. The one line printed on stdout is the result as JSON (the same fields the
//! Node workers report); diagnostics go to stderr; the exit status is non-zero only when
//! the case could not run.

use futures::stream::{FuturesUnordered, StreamExt};
use rdkafka::client::ClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance, StreamConsumer};
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Same payload recipe as `bench/lib/payloads.mjs`, so both sides send identical bytes.
const BASE_TIMESTAMP_MS: u64 = 1_764_115_200_000;
const EVENT_TYPES: [&str; 4] = ["VIEW", "LIKE", "COMMENT", "SHARE"];
const MOVIE_KEYS: usize = 100;
const PAYLOAD_POOL: usize = 1000;
/// Below this size the payload keeps only the fields a movie event needs.
const RICH_METADATA_MIN_SIZE: usize = 256;

fn event_head(i: usize) -> String {
    format!(
        r#""eventType":"{}","userId":"user-{}","movieId":"movie-{}","timestamp":{}"#,
        EVENT_TYPES[i % EVENT_TYPES.len()],
        (i * 7919) % 10_000,
        i % MOVIE_KEYS,
        BASE_TIMESTAMP_MS + i as u64
    )
}

/// `{eventType,userId,movieId,timestamp[,extra],metadata:{source,device,country,pad}}` padded to
/// `size` bytes; small events have a bare `pad` field instead of the metadata.
fn movie_event(i: usize, size: usize, extra: &str) -> String {
    let build = |pad: usize| {
        let pad = "x".repeat(pad);
        if size >= RICH_METADATA_MIN_SIZE {
            format!(
                r#"{{{}{extra},"metadata":{{"source":"web","device":"smart-tv","country":"VN","pad":"{pad}"}}}}"#,
                event_head(i)
            )
        } else {
            format!(r#"{{{}{extra},"pad":"{pad}"}}"#, event_head(i))
        }
    };
    let bare = build(0).len();
    build(size.saturating_sub(bare))
}

fn movie_key(i: usize) -> String {
    format!("movie-{}", i % MOVIE_KEYS)
}

struct Args {
    case: String,
    values: HashMap<String, String>,
}

impl Args {
    fn parse() -> Result<Args, String> {
        let mut raw = std::env::args().skip(1);
        let case = raw
            .next()
            .ok_or("usage: bench_ceiling <case> --name value ...")?;
        let mut values = HashMap::new();
        while let Some(name) = raw.next() {
            let name = name
                .strip_prefix("--")
                .ok_or_else(|| format!("expected --name, got {name}"))?
                .to_string();
            let value = raw
                .next()
                .ok_or_else(|| format!("--{name} needs a value"))?;
            values.insert(name, value);
        }
        Ok(Args { case, values })
    }

    fn text(&self, name: &str) -> Result<String, String> {
        self.values
            .get(name)
            .cloned()
            .ok_or_else(|| format!("--{name} is required"))
    }

    fn number(&self, name: &str, default: f64) -> Result<f64, String> {
        match self.values.get(name) {
            None => Ok(default),
            Some(v) => v
                .parse()
                .map_err(|_| format!("--{name} must be a number, got {v}")),
        }
    }

    fn count(&self, name: &str, default: usize) -> Result<usize, String> {
        Ok(self.number(name, default as f64)? as usize)
    }
}

fn producer(args: &Args) -> Result<FutureProducer, String> {
    // The addon's producer defaults (src/core/producer.rs PRODUCER_DEFAULTS).
    ClientConfig::new()
        .set("bootstrap.servers", args.text("brokers")?)
        .set("client.id", "bench-ceiling-producer")
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set(
            "compression.type",
            args.values
                .get("compression")
                .map(String::as_str)
                .unwrap_or("lz4"),
        )
        .set("linger.ms", "5")
        .set("partitioner", "murmur2_random")
        .set("message.timeout.ms", "120000")
        .create()
        .map_err(|e| format!("producer: {e}"))
}

/// Remembers when the group first assigned partitions: consume throughput is timed from
/// there (as the Node workers time it from their consumer's join), so work a client does
/// before handing over its first message is counted.
#[derive(Default)]
struct JoinClock(Mutex<Option<Instant>>);

impl ClientContext for JoinClock {}

impl ConsumerContext for JoinClock {
    fn post_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(partitions) = rebalance {
            if partitions.count() > 0 {
                let mut joined = self.0.lock().unwrap_or_else(|e| e.into_inner());
                joined.get_or_insert_with(Instant::now);
            }
        }
    }
}

impl JoinClock {
    fn joined_at(&self) -> Option<Instant> {
        *self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

type BenchConsumer = StreamConsumer<JoinClock>;

/// `k=v,k=v` librdkafka properties from `--<name>`, set over the defaults (experiments).
fn extra_config(args: &Args, name: &str, config: &mut ClientConfig) -> Result<(), String> {
    for pair in args
        .values
        .get(name)
        .map(String::as_str)
        .unwrap_or("")
        .split(',')
    {
        if pair.is_empty() {
            continue;
        }
        let (key, value) = pair
            .split_once('=')
            .ok_or_else(|| format!("--{name}: expected key=value, got {pair}"))?;
        config.set(key, value);
    }
    Ok(())
}

fn consumer(args: &Args, group: &str) -> Result<BenchConsumer, String> {
    // The addon's consumer defaults (README "Configuration"), with the bench's Tansu settings.
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", args.text("brokers")?)
        .set("client.id", "bench-ceiling-consumer")
        .set("group.id", group)
        .set(
            "session.timeout.ms",
            format!("{}", args.count("session-timeout-ms", 6000)?),
        )
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "true")
        .set("enable.auto.offset.store", "false")
        .set("auto.commit.interval.ms", "5000")
        .set("queued.max.messages.kbytes", "16384")
        .set("fetch.queue.backoff.ms", "10")
        .set("enable.partition.eof", "false")
        .set(
            "fetch.wait.max.ms",
            format!("{}", args.count("fetch-wait-ms", 100)?),
        );
    extra_config(args, "consumer-config", &mut config)?;
    let consumer: BenchConsumer = config
        .create_with_context(JoinClock::default())
        .map_err(|e| format!("consumer: {e}"))?;
    consumer
        .subscribe(&[&args.text("topic")?])
        .map_err(|e| format!("subscribe: {e}"))?;
    Ok(consumer)
}

/// Peak and current resident set size of this process, in bytes (Linux /proc).
fn rss_bytes() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| {
                rest.trim()
                    .trim_end_matches("kB")
                    .trim()
                    .parse::<u64>()
                    .ok()
            })
            .map_or(0, |kb| kb * 1024)
    };
    (field("VmHWM:"), field("VmRSS:"))
}

fn payload_pool(size: usize) -> Vec<(String, String)> {
    (0..PAYLOAD_POOL)
        .map(|i| (movie_key(i), movie_event(i, size, "")))
        .collect()
}

fn enqueue(
    producer: &FutureProducer,
    topic: &str,
    key: &str,
    payload: &str,
) -> Result<DeliveryFuture, String> {
    // send_result hands the message to librdkafka synchronously, as the addon does;
    // with the queue full it is retried after a yield (never happens with these windows).
    let mut record = FutureRecord::to(topic).key(key).payload(payload);
    loop {
        match producer.send_result(record) {
            Ok(delivery) => return Ok(delivery),
            Err((
                rdkafka::error::KafkaError::MessageProduction(
                    rdkafka::error::RDKafkaErrorCode::QueueFull,
                ),
                r,
            )) => {
                record = r;
                std::thread::sleep(Duration::from_millis(1));
            }
            Err((e, _)) => return Err(format!("enqueue: {e}")),
        }
    }
}

async fn settle(delivery: DeliveryFuture) -> Result<(), String> {
    match delivery.await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err((e, _))) => Err(format!("delivery: {e}")),
        Err(_) => Err("delivery future cancelled".into()),
    }
}

/// Connection, metadata and the idempotent producer id are set up by a first, unmeasured
/// message, as the Node workers do.
async fn warm_up(
    producer: &FutureProducer,
    topic: &str,
    pool: &[(String, String)],
) -> Result<(), String> {
    let (key, payload) = &pool[0];
    settle(enqueue(producer, topic, key, payload)?).await
}

/// One future per message, at most `window` unacknowledged; stops issuing after `max-seconds`.
async fn produce_each(args: &Args) -> Result<serde_json::Value, String> {
    let producer = producer(args)?;
    let topic = args.text("topic")?;
    let total = args.count("messages", 50_000)?;
    let window = args.count("window", 1000)?.max(1);
    let deadline = Duration::from_secs_f64(args.number("max-seconds", 1e9)?);
    let pool = payload_pool(args.count("size", 1024)?);
    warm_up(&producer, &topic, &pool).await?;
    let mut pending = FuturesUnordered::new();
    let started = Instant::now();
    let cpu_at_start = cpu_seconds();
    let (mut sent, mut acked) = (0usize, 0usize);
    while sent < total && started.elapsed() < deadline {
        if pending.len() >= window {
            pending.next().await.expect("window not empty")?;
            acked += 1;
            continue;
        }
        let (key, payload) = &pool[sent % PAYLOAD_POOL];
        pending.push(settle(enqueue(&producer, &topic, key, payload)?));
        sent += 1;
    }
    while let Some(result) = pending.next().await {
        result?;
        acked += 1;
    }
    Ok(throughput(
        acked,
        started.elapsed(),
        cpu_seconds() - cpu_at_start,
    ))
}

/// Batches of `batch-size` messages (each batch done when all its messages are acknowledged),
/// at most `batch-window` batches in flight.
async fn produce_batch(args: &Args) -> Result<serde_json::Value, String> {
    let producer = producer(args)?;
    let topic = args.text("topic")?;
    let total = args.count("messages", 50_000)?;
    let batch_size = args.count("batch-size", 500)?.max(1);
    let batch_window = args.count("batch-window", 4)?.max(1);
    let deadline = Duration::from_secs_f64(args.number("max-seconds", 1e9)?);
    let pool = payload_pool(args.count("size", 1024)?);
    if args.case != "preload" {
        warm_up(&producer, &topic, &pool).await?;
    }
    let mut pending = FuturesUnordered::new();
    let started = Instant::now();
    let cpu_at_start = cpu_seconds();
    let (mut sent, mut acked) = (0usize, 0usize);
    while sent < total && started.elapsed() < deadline {
        if pending.len() >= batch_window {
            acked += pending.next().await.expect("window not empty")?;
            continue;
        }
        let size = batch_size.min(total - sent);
        let mut deliveries = Vec::with_capacity(size);
        for i in sent..sent + size {
            let (key, payload) = &pool[i % PAYLOAD_POOL];
            deliveries.push(settle(enqueue(&producer, &topic, key, payload)?));
        }
        sent += size;
        pending.push(async move {
            for result in futures::future::join_all(deliveries).await {
                result?;
            }
            Ok::<usize, String>(size)
        });
    }
    while let Some(result) = pending.next().await {
        acked += result?;
    }
    Ok(throughput(
        acked,
        started.elapsed(),
        cpu_seconds() - cpu_at_start,
    ))
}

/// The per-message handler all clients run: parse the JSON value and check a field.
fn handle(message: &BorrowedMessage<'_>) -> Result<serde_json::Value, String> {
    let payload = message.payload().ok_or("message without a value")?;
    let event: serde_json::Value =
        serde_json::from_slice(payload).map_err(|e| format!("bad JSON: {e}"))?;
    if event.get("movieId").and_then(|m| m.as_str()).is_none() {
        return Err("event without movieId".into());
    }
    Ok(event)
}

async fn consume_each(args: &Args) -> Result<serde_json::Value, String> {
    let consumer = consumer(args, &args.text("group")?)?;
    let total = args.count("messages", 100_000)?;
    let timeout = Duration::from_secs_f64(args.number("timeout-seconds", 120.0)?);
    let mut count = 0;
    let mut first_message = FirstMessage::default();
    while count < total {
        let message = tokio::time::timeout(timeout, consumer.recv())
            .await
            .map_err(|_| format!("timed out after {count} of {total} messages"))?
            .map_err(|e| format!("recv: {e}"))?;
        first_message.note(&consumer);
        // An awaited handler per message, as a Node per-message callback is.
        async { handle(&message) }.await?;
        consumer
            .store_offset_from_message(&message)
            .map_err(|e| format!("store offset: {e}"))?;
        count += 1;
    }
    Ok(first_message.throughput(count, &consumer))
}

async fn consume_batch(args: &Args) -> Result<serde_json::Value, String> {
    let consumer = consumer(args, &args.text("group")?)?;
    let total = args.count("messages", 100_000)?;
    let batch_size = args.count("batch-size", 500)?.max(1);
    let batch_wait = Duration::from_millis(args.count("batch-wait-ms", 10)? as u64);
    let timeout = Duration::from_secs_f64(args.number("timeout-seconds", 120.0)?);
    let mut count = 0;
    let mut first_message = FirstMessage::default();
    let mut batch = Vec::with_capacity(batch_size);
    while count < total {
        // A batch is what arrives within batch-wait of its first message, up to batch-size.
        let first = tokio::time::timeout(timeout, consumer.recv())
            .await
            .map_err(|_| format!("timed out after {count} of {total} messages"))?
            .map_err(|e| format!("recv: {e}"))?;
        first_message.note(&consumer);
        let fill_until = tokio::time::Instant::now() + batch_wait;
        batch.push(first);
        while batch.len() < batch_size {
            match tokio::time::timeout_at(fill_until, consumer.recv()).await {
                Ok(message) => batch.push(message.map_err(|e| format!("recv: {e}"))?),
                Err(_) => break,
            }
        }
        for message in &batch {
            handle(message)?;
        }
        for message in &batch {
            consumer
                .store_offset_from_message(message)
                .map_err(|e| format!("store offset: {e}"))?;
        }
        count += batch.len();
        batch.clear();
    }
    Ok(first_message.throughput(count, &consumer))
}

/// Sends at a fixed rate (the send time of message i is its scheduled time, so a stalled
/// sender shows up as latency) and consumes in the same process: end-to-end latency.
async fn latency(args: &Args) -> Result<serde_json::Value, String> {
    let consumer = consumer(args, &args.text("group")?)?;
    let producer = producer(args)?;
    let topic = args.text("topic")?;
    let rate = args.number("rate", 1000.0)?;
    let seconds = args.number("seconds", 5.0)?;
    let size = args.count("size", 1024)?;
    let total = (rate * seconds).round() as usize;
    let clock = Instant::now();
    let now_ms = move || clock.elapsed().as_secs_f64() * 1000.0;

    // Warm up until the consumer has joined and sees messages, then measure.
    let warmup_until =
        Instant::now() + Duration::from_secs_f64(args.number("timeout-seconds", 60.0)?);
    loop {
        let payload = movie_event(0, size, &format!(r#","warmup":true,"sentAt":{}"#, now_ms()));
        tokio::spawn(settle(enqueue(&producer, &topic, &movie_key(0), &payload)?));
        if let Ok(Ok(_)) = tokio::time::timeout(Duration::from_millis(100), consumer.recv()).await {
            break;
        }
        if Instant::now() > warmup_until {
            return Err("consumer received nothing during warm-up".into());
        }
    }

    let sender = {
        let producer = producer.clone();
        let topic = topic.clone();
        tokio::spawn(async move {
            let start_ms = now_ms();
            let mut pending = FuturesUnordered::new();
            for i in 0..total {
                let scheduled = start_ms + i as f64 * 1000.0 / rate;
                let wait = scheduled - now_ms();
                if wait > 0.0 {
                    tokio::time::sleep(Duration::from_secs_f64(wait / 1000.0)).await;
                }
                let payload = movie_event(i, size, &format!(r#","sentAt":{scheduled}"#));
                pending.push(settle(enqueue(&producer, &topic, &movie_key(i), &payload)?));
                while let Some(Some(done)) = futures::FutureExt::now_or_never(pending.next()) {
                    done?;
                }
            }
            while let Some(done) = pending.next().await {
                done?;
            }
            Ok::<(), String>(())
        })
    };

    let mut latencies = Vec::with_capacity(total);
    let timeout = Duration::from_secs_f64(seconds + args.number("timeout-seconds", 60.0)?);
    let deadline = Instant::now() + timeout;
    while latencies.len() < total {
        let left = deadline.saturating_duration_since(Instant::now());
        let message = tokio::time::timeout(left, consumer.recv())
            .await
            .map_err(|_| format!("timed out with {} of {total} messages", latencies.len()))?
            .map_err(|e| format!("recv: {e}"))?;
        let event = handle(&message)?;
        if event.get("warmup").is_some() {
            continue;
        }
        let sent_at = event
            .get("sentAt")
            .and_then(|v| v.as_f64())
            .ok_or("message without sentAt")?;
        latencies.push(now_ms() - sent_at);
        consumer
            .store_offset_from_message(&message)
            .map_err(|e| format!("store offset: {e}"))?;
    }
    sender.await.map_err(|e| format!("sender: {e}"))??;
    latencies.sort_by(|a, b| a.total_cmp(b));
    let quantile = |q: f64| {
        latencies[((latencies.len() as f64 * q).ceil() as usize).clamp(1, latencies.len()) - 1]
    };
    let (peak, _) = rss_bytes();
    Ok(serde_json::json!({
        "count": latencies.len(),
        "latencyMs": { "p50": quantile(0.5), "p99": quantile(0.99), "p999": quantile(0.999), "max": latencies.last() },
        "peakRssBytes": peak,
    }))
}

/// `groups` consumer groups in this one process, each reading `messages` messages.
async fn groups(args: &Args) -> Result<serde_json::Value, String> {
    let groups = args.count("groups", 10)?;
    let total = args.count("messages", 10_000)?;
    let prefix = args.text("group")?;
    let mut tasks = Vec::new();
    for g in 0..groups {
        let consumer = consumer(args, &format!("{prefix}-{g}"))?;
        tasks.push(tokio::spawn(async move {
            let mut count = 0;
            while count < total {
                let message = tokio::time::timeout(Duration::from_secs(120), consumer.recv())
                    .await
                    .map_err(|_| format!("group {g} timed out after {count} of {total}"))?
                    .map_err(|e| format!("recv: {e}"))?;
                handle(&message)?;
                consumer
                    .store_offset_from_message(&message)
                    .map_err(|e| format!("store offset: {e}"))?;
                count += 1;
            }
            // Keep the consumer (and its memory) alive until every group is done.
            Ok::<BenchConsumer, String>(consumer)
        }));
    }
    let mut consumers = Vec::new();
    for task in tasks {
        consumers.push(task.await.map_err(|e| format!("group task: {e}"))??);
    }
    let (peak, current) = rss_bytes();
    drop(consumers);
    Ok(
        serde_json::json!({ "count": groups * total, "groups": groups, "peakRssBytes": peak, "rssBytes": current }),
    )
}

/// Fills a topic for the consume cases (lz4, idempotent, as the addon would write it).
async fn preload(args: &Args) -> Result<serde_json::Value, String> {
    produce_batch(args).await
}

fn since_join(consumer: &BenchConsumer) -> Duration {
    consumer
        .context()
        .joined_at()
        .map_or(Duration::ZERO, |joined| joined.elapsed())
}

/// CPU time (user + system, every thread) this process has used: the Node workers report
/// the same (`process.cpuUsage`) over the same interval.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // After the command name: state is field 3, utime 14 and stime 15, in clock ticks (100 Hz).
    let fields: Vec<&str> = stat
        .rsplit_once(") ")
        .map_or(vec![], |(_, rest)| rest.split(' ').collect());
    let ticks = |index: usize| {
        fields
            .get(index)
            .and_then(|field| field.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}

/// When a consume run received its first message: CPU is counted from there, as the Node
/// workers count it, and `firstMessageSeconds` (from the join) is reported as they report it.
#[derive(Default)]
struct FirstMessage {
    cpu_seconds: Option<f64>,
    after_join: Option<Duration>,
}

impl FirstMessage {
    fn note(&mut self, consumer: &BenchConsumer) {
        if self.cpu_seconds.is_none() {
            self.cpu_seconds = Some(cpu_seconds());
            self.after_join = Some(since_join(consumer));
        }
    }

    /// The run's throughput from the join, with the CPU since the first message.
    fn throughput(&self, count: usize, consumer: &BenchConsumer) -> serde_json::Value {
        let mut result = throughput(
            count,
            since_join(consumer),
            cpu_seconds() - self.cpu_seconds.unwrap_or_default(),
        );
        if let (Some(fields), Some(first)) = (result.as_object_mut(), self.after_join) {
            fields.insert("firstMessageSeconds".into(), first.as_secs_f64().into());
        }
        result
    }
}

fn throughput(count: usize, elapsed: Duration, cpu_seconds: f64) -> serde_json::Value {
    let seconds = elapsed.as_secs_f64();
    let (peak, current) = rss_bytes();
    serde_json::json!({
        "count": count,
        "seconds": seconds,
        "msgPerSec": if seconds > 0.0 { count as f64 / seconds } else { 0.0 },
        "cpuSeconds": cpu_seconds,
        "peakRssBytes": peak,
        "rssBytes": current,
    })
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let outcome = async {
        let args = Args::parse()?;
        match args.case.as_str() {
            "preload" => preload(&args).await,
            "produce-each" => produce_each(&args).await,
            "produce-batch" => produce_batch(&args).await,
            "consume-each" => consume_each(&args).await,
            "consume-batch" => consume_batch(&args).await,
            "latency" => latency(&args).await,
            "groups" => groups(&args).await,
            "payload" => {
                // For checking that both languages build the same bytes.
                let (i, size) = (args.count("index", 0)?, args.count("size", 1024)?);
                Ok(serde_json::json!({ "key": movie_key(i), "payload": movie_event(i, size, "") }))
            }
            other => Err(format!("unknown case {other}")),
        }
    }
    .await;
    match outcome {
        Ok(result) => println!("{result}"),
        Err(message) => {
            eprintln!("bench_ceiling: {message}");
            std::process::exit(1);
        }
    }
}
