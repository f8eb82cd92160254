//! The benchmark's N-API floor (`napi-floor`): the least an N-API consumer
//! over librdkafka does to hand batches of JSON events to a JavaScript
//! callback with this addon's guarantees: each value validated as JSON off
//! the JavaScript thread, message objects with their metadata, batches in
//! order, and offsets stored only after a batch's callback settled, with at
//! most `max_in_flight` messages handed over and not settled. Both consume
//! cases use it: per message, `bench/clients/floor.mjs` awaits each
//! message's callback in turn over the same batches. Nothing else: no
//! retries, dead-letter topic, headers, early commits, revocation handling
//! or clean close.
//!
//! Built only for the benchmark (`--features bench-floor`, by
//! `scripts/bench.sh` into `bench/floor/build/`), never part of the addon.
//! It shows what the hand-over itself costs on the machine that runs the
//! benchmark, so that the addon's distance to the pure-Rust ceiling can be
//! split into what any N-API consumer pays and what the addon's own
//! pipeline adds.
//!
//! One thread takes messages from the consumer's queue in batches
//! (`rd_kafka_consume_batch_queue`), validates each value and writes it
//! straight into the texts handed to JavaScript: `[values]` and
//! `[partition, offset, timestamp, key, ...]` per chunk of about 64 KiB.

use crate::binding::handoff::JsonText;
use crate::core::encoded::Chunk as EncodedChunk;
use crate::core::schema::{Decoded, PayloadSchema};
use napi::bindgen_prelude::*;
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi_derive::napi;
use rdkafka::bindings as rdsys;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance};
use rdkafka::{ClientContext, Message, Offset, TopicPartitionList};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// As the addon's hand-over (`src/core/encoded.rs`).
const CHUNK_BYTES: usize = 64 * 1024;

/// Notes the first assignment, which the benchmark times from.
#[derive(Default)]
struct JoinFlag(AtomicBool);

impl ClientContext for JoinFlag {}

impl ConsumerContext for JoinFlag {
    fn post_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(partitions) = rebalance {
            if partitions.count() > 0 {
                self.0.store(true, Ordering::Release);
            }
        }
    }
}

/// `null` once the group assigned partitions, then each batch's chunk texts:
/// values, metadata, values, metadata, ...
type OnBatch = ThreadsafeFunction<Option<Vec<JsonText>>, (), Option<Vec<JsonText>>, Status, false>;

#[napi(object)]
pub struct FloorOptions {
    pub brokers: String,
    pub topic: String,
    pub group_id: String,
    pub batch_size: u32,
    pub batch_wait_ms: u32,
    pub session_timeout_ms: u32,
    pub fetch_wait_ms: u32,
    /// Messages handed to JavaScript and not yet settled, at most (the
    /// addon's `maxInFlight`, 5000 by default).
    pub max_in_flight: u32,
    /// More librdkafka properties.
    pub config: Option<HashMap<String, String>>,
}

/// A running floor consumer.
#[napi]
pub struct FloorConsumer {
    consumer: Arc<BaseConsumer<JoinFlag>>,
    topic: String,
    stop: Arc<AtomicBool>,
    in_flight: Arc<InFlight>,
}

/// Messages handed over and not yet settled; the taking thread waits at the bound.
#[derive(Default)]
struct InFlight {
    count: Mutex<usize>,
    settled: Condvar,
}

#[napi]
impl FloorConsumer {
    /// Stores `[partition, next offset, ...]` once a batch of `count`
    /// messages settled.
    #[napi]
    pub fn store(&self, pairs: Vec<i64>, count: u32) -> Result<()> {
        if let Ok(mut in_flight) = self.in_flight.count.lock() {
            *in_flight = in_flight.saturating_sub(count as usize);
            self.in_flight.settled.notify_one();
        }
        let mut list = TopicPartitionList::new();
        for pair in pairs.chunks_exact(2) {
            list.add_partition_offset(&self.topic, pair[0] as i32, Offset::Offset(pair[1]))
                .map_err(|error| Error::from_reason(error.to_string()))?;
        }
        self.consumer
            .store_offsets(&list)
            .map_err(|error| Error::from_reason(error.to_string()))
    }

    /// Stops taking messages; the consumer is destroyed with its last holder.
    #[napi]
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Release);
        self.in_flight.settled.notify_one();
    }
}

/// Subscribes and starts the taking thread; `on_batch` gets `null` at the
/// join, then every batch.
#[napi]
pub fn floor_consume(
    options: FloorOptions,
    on_batch: Function<'_, Option<Vec<JsonText>>, ()>,
) -> Result<FloorConsumer> {
    let failed = |error: rdkafka::error::KafkaError| Error::from_reason(error.to_string());
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", &options.brokers)
        .set("group.id", &options.group_id)
        .set("session.timeout.ms", options.session_timeout_ms.to_string())
        .set("fetch.wait.max.ms", options.fetch_wait_ms.to_string())
        .set("auto.offset.reset", "earliest");
    // The addon's own consumer defaults, so that librdkafka does the same work in both.
    for (key, value) in crate::core::consumer::CONSUMER_DEFAULTS {
        config.set(*key, *value);
    }
    for (key, value) in options.config.unwrap_or_default() {
        config.set(key, value);
    }
    let consumer: Arc<BaseConsumer<JoinFlag>> = Arc::new(
        config
            .create_with_context(JoinFlag::default())
            .map_err(failed)?,
    );
    consumer.subscribe(&[&options.topic]).map_err(failed)?;
    let on_batch: OnBatch = on_batch
        .build_threadsafe_function::<Option<Vec<JsonText>>>()
        .callee_handled::<false>()
        .build_callback(|context| Ok(context.value))?;
    let stop = Arc::new(AtomicBool::new(false));
    let in_flight = Arc::new(InFlight::default());
    let taker = Taker {
        in_flight: in_flight.clone(),
        max_in_flight: options.max_in_flight.max(options.batch_size).max(1) as usize,
        consumer: consumer.clone(),
        batch_size: options.batch_size.max(1) as usize,
        batch_wait: Duration::from_millis(options.batch_wait_ms.into()),
        stop: stop.clone(),
    };
    std::thread::Builder::new()
        .name("floor-take".into())
        .spawn(move || taker.run(&on_batch))
        .map_err(|error| Error::from_reason(error.to_string()))?;
    Ok(FloorConsumer {
        consumer,
        topic: options.topic,
        stop,
        in_flight,
    })
}

struct Taker {
    consumer: Arc<BaseConsumer<JoinFlag>>,
    batch_size: usize,
    batch_wait: Duration,
    stop: Arc<AtomicBool>,
    in_flight: Arc<InFlight>,
    max_in_flight: usize,
}

impl Taker {
    /// Waits until a batch fits under the bound; false once stopped.
    fn wait_for_room(&self) -> bool {
        let Ok(mut in_flight) = self.in_flight.count.lock() else {
            return false;
        };
        while *in_flight + self.batch_size > self.max_in_flight {
            if self.stop.load(Ordering::Acquire) {
                return false;
            }
            in_flight = match self
                .in_flight
                .settled
                .wait_timeout(in_flight, Duration::from_millis(100))
            {
                Ok((in_flight, _)) => in_flight,
                Err(_) => return false,
            };
        }
        !self.stop.load(Ordering::Acquire)
    }

    fn hand_over(&self, on_batch: &OnBatch, texts: Vec<JsonText>, count: usize) {
        if let Ok(mut in_flight) = self.in_flight.count.lock() {
            *in_flight += count;
        }
        on_batch.call(Some(texts), ThreadsafeFunctionCallMode::NonBlocking);
    }

    fn run(&self, on_batch: &OnBatch) {
        // Until the join, poll the consumer itself: that serves the
        // rebalance. A message taken meanwhile is a batch of its own.
        while !self.consumer.context().0.load(Ordering::Acquire) {
            if self.stop.load(Ordering::Acquire) {
                return;
            }
            let message = self.consumer.poll(Duration::from_millis(100));
            if self.consumer.context().0.load(Ordering::Acquire) {
                on_batch.call(None, ThreadsafeFunctionCallMode::NonBlocking);
            }
            if let Some(Ok(message)) = message {
                let mut chunk = Chunk::default();
                chunk.push(
                    message.payload(),
                    message.key(),
                    message.partition(),
                    message.offset(),
                    message.timestamp().to_millis().unwrap_or(-1),
                );
                self.hand_over(on_batch, chunk.finish(Vec::new()), 1);
            }
        }
        // SAFETY: a new reference to the consumer's queue, released below.
        let queue =
            unsafe { rdsys::rd_kafka_queue_get_consumer(self.consumer.client().native_ptr()) };
        if queue.is_null() {
            return;
        }
        let mut slots: Vec<*mut rdsys::rd_kafka_message_t> =
            vec![std::ptr::null_mut(); self.batch_size];
        while self.wait_for_room() {
            let mut texts = Vec::new();
            let mut chunk = Chunk::default();
            let mut taken = 0;
            let started = Instant::now();
            while taken < self.batch_size {
                // The first message of a batch is waited for in steps, so
                // that `stop` is seen; the rest within the batch's wait.
                let wait = if taken == 0 {
                    100
                } else {
                    let left = self.batch_wait.saturating_sub(started.elapsed());
                    if left.is_zero() {
                        break;
                    }
                    left.as_millis().max(1) as i32
                };
                // SAFETY: `slots` holds `batch_size - taken` or more pointers.
                let count = unsafe {
                    rdsys::rd_kafka_consume_batch_queue(
                        queue,
                        wait,
                        slots.as_mut_ptr(),
                        self.batch_size - taken,
                    )
                };
                if taken == 0 && count <= 0 && self.stop.load(Ordering::Acquire) {
                    break;
                }
                for &slot in &slots[..count.max(0) as usize] {
                    // SAFETY: librdkafka handed over `count` valid messages,
                    // each destroyed once, below.
                    let message = unsafe { &*slot };
                    if message.err == rdsys::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR {
                        // SAFETY: pointers and lengths of a live message.
                        let (payload, key, timestamp) = unsafe {
                            (
                                (!message.payload.is_null()).then(|| {
                                    std::slice::from_raw_parts(
                                        message.payload as *const u8,
                                        message.len,
                                    )
                                }),
                                (!message.key.is_null()).then(|| {
                                    std::slice::from_raw_parts(
                                        message.key as *const u8,
                                        message.key_len,
                                    )
                                }),
                                rdsys::rd_kafka_message_timestamp(slot, std::ptr::null_mut()),
                            )
                        };
                        if chunk.push(payload, key, message.partition, message.offset, timestamp) {
                            taken += 1;
                        }
                        if chunk.values.len() >= CHUNK_BYTES {
                            texts = std::mem::take(&mut chunk).finish(texts);
                        }
                    }
                    // SAFETY: see above.
                    unsafe { rdsys::rd_kafka_message_destroy(slot) };
                }
            }
            if chunk.count > 0 {
                texts = chunk.finish(texts);
            }
            if !texts.is_empty() {
                self.hand_over(on_batch, texts, taken);
            }
        }
        // SAFETY: the reference taken above.
        unsafe { rdsys::rd_kafka_queue_destroy(queue) };
    }
}

#[derive(Default)]
struct Chunk {
    values: Vec<u8>,
    metadata: Vec<u8>,
    count: usize,
}

impl Chunk {
    /// Adds a message whose value is valid JSON; false (skipped) otherwise.
    fn push(
        &mut self,
        payload: Option<&[u8]>,
        key: Option<&[u8]>,
        partition: i32,
        offset: i64,
        timestamp: i64,
    ) -> bool {
        // The addon's own check for `schema: 'json'`.
        let value: &[u8] = match PayloadSchema::Json.decode(payload) {
            Ok(Decoded::Json(text)) => text.as_bytes(),
            Ok(_) => b"null",
            Err(_) => return false,
        };
        let opening = if self.count == 0 { b'[' } else { b',' };
        if self.count == 0 {
            self.values.reserve(CHUNK_BYTES + value.len() + 2);
        }
        self.values.push(opening);
        self.values.extend_from_slice(value);
        self.metadata.push(opening);
        let mut number = itoa::Buffer::new();
        self.metadata
            .extend_from_slice(number.format(partition).as_bytes());
        self.metadata.push(b',');
        self.metadata
            .extend_from_slice(number.format(offset).as_bytes());
        self.metadata.push(b',');
        self.metadata
            .extend_from_slice(number.format(timestamp).as_bytes());
        self.metadata.push(b',');
        match key {
            Some(key)
                if key
                    .iter()
                    .all(|byte| byte.is_ascii_alphanumeric() || b"-_.:".contains(byte)) =>
            {
                self.metadata.push(b'"');
                self.metadata.extend_from_slice(key);
                self.metadata.push(b'"');
            }
            Some(key) => {
                let _ = serde_json::to_writer(&mut self.metadata, &String::from_utf8_lossy(key));
            }
            None => self.metadata.extend_from_slice(b"null"),
        }
        self.count += 1;
        true
    }

    fn finish(mut self, mut texts: Vec<JsonText>) -> Vec<JsonText> {
        self.values.push(b']');
        self.metadata.push(b']');
        texts.push(JsonText(EncodedChunk::new(self.values.into())));
        texts.push(JsonText(EncodedChunk::new(self.metadata.into())));
        texts
    }
}
