//! One librdkafka queue for the messages of every assigned partition.
//!
//! Messages are kept apart from the consumer's own queue so that rebalances,
//! commit results and errors are served while intake waits for room. Each
//! partition's fetch queue is forwarded here rather than split into a queue
//! of its own: librdkafka measures a forwarded queue's prefetch against the
//! queue it forwards to, so partitions fill and back off together, as they
//! do through the consumer's queue. With one queue per partition, a partition
//! whose prefetch was full could not be fetched again until the long poll of
//! the caught-up partitions returned (`fetch.wait.max.ms`, 500 ms by
//! default): catching up on a backlog ran at a quarter of the speed
//! (bench/README.md, 2026-11-27).

use super::ConsumerHooks;
use crate::core::wakeup::{QueueRef, Wakeup, WatchedQueue};
use rdkafka::bindings as rdsys;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::BorrowedMessage;
use rdkafka::types::RDKafkaErrorCode;
use std::ffi::{CStr, CString};
use std::ptr::NonNull;
use std::sync::Arc;

pub(super) struct MessageHub {
    /// Wakes the poll thread when messages arrive.
    queue: WatchedQueue,
    /// The consumer's own queue (rebalances, commit results, errors), which
    /// rdkafka's non-empty callback watches: read for its length only.
    /// `None` only for a consumer without a group, which has no such queue.
    events: Option<QueueRef>,
    /// The queues must be released before the consumer is destroyed.
    consumer: Arc<BaseConsumer<ConsumerHooks>>,
}

impl MessageHub {
    pub(super) fn new(
        consumer: Arc<BaseConsumer<ConsumerHooks>>,
        wakeup: Arc<Wakeup>,
    ) -> Option<Self> {
        let client = consumer.client().native_ptr();
        // SAFETY: new queue references, owned by the hub, which keeps the
        // consumer (their client) alive until they are released.
        let (queue, events) = unsafe {
            (
                WatchedQueue::new(rdsys::rd_kafka_queue_new(client), wakeup)?,
                QueueRef::new(rdsys::rd_kafka_queue_get_consumer(client)),
            )
        };
        Some(MessageHub {
            queue,
            events,
            consumer,
        })
    }

    /// Routes an assigned partition's messages here. Needed at each
    /// assignment: librdkafka clears the forwarding when it stops fetching
    /// a partition. Messages forwarded to the consumer's queue before this
    /// arrive there (the poll thread takes them from it, too).
    pub(super) fn attach(&self, topic: &str, partition: i32) -> bool {
        let Ok(topic) = CString::new(topic) else {
            return false;
        };
        // SAFETY: the client is alive (held by `self.consumer`); the
        // partition's queue handle is released after forwarding, which
        // persists on the queue itself.
        unsafe {
            let partition_queue = rdsys::rd_kafka_queue_get_partition(
                self.consumer.client().native_ptr(),
                topic.as_ptr(),
                partition,
            );
            if partition_queue.is_null() {
                return false;
            }
            rdsys::rd_kafka_queue_forward(partition_queue, self.queue.as_ptr());
            rdsys::rd_kafka_queue_destroy(partition_queue);
        }
        true
    }

    /// Whether rebalances, commit results or errors wait in the consumer's
    /// queue: polling serves one at a time, and the non-empty callback
    /// wakes the poll thread only for an event that finds the queue empty.
    pub(super) fn events_waiting(&self) -> bool {
        self.events.as_ref().is_some_and(|events| events.len() > 0)
    }

    /// Takes up to `max` messages without waiting, appending them to `taken`.
    pub(super) fn take(&self, max: usize, taken: &mut Vec<HubMessage>) {
        let start = taken.len();
        taken.reserve(max);
        // SAFETY: the spare capacity holds at least `max` pointers, and
        // librdkafka writes at most `max` of them; each one written is a
        // message this function then owns.
        unsafe {
            let slots =
                taken.spare_capacity_mut().as_mut_ptr() as *mut *mut rdsys::rd_kafka_message_t;
            let count = rdsys::rd_kafka_consume_batch_queue(self.queue.as_ptr(), 0, slots, max);
            if count > 0 {
                // `HubMessage` is a transparent `NonNull`; librdkafka never
                // returns null entries within `count`.
                taken.set_len(start + count as usize);
            }
        }
    }
}

/// A message taken from the hub; destroyed (its memory returned to
/// librdkafka) when dropped.
#[repr(transparent)]
pub(super) struct HubMessage(NonNull<rdsys::rd_kafka_message_t>);

// A consumed message is librdkafka's to free from any thread.
unsafe impl Send for HubMessage {}

impl HubMessage {
    pub(super) fn view(&self) -> MessageView<'_> {
        // SAFETY: valid until `drop`.
        MessageView(unsafe { self.0.as_ref() })
    }
}

impl Drop for HubMessage {
    fn drop(&mut self) {
        // SAFETY: the message is owned and destroyed once.
        unsafe { rdsys::rd_kafka_message_destroy(self.0.as_ptr()) }
    }
}

/// What the poll thread reads of a consumed message, from the hub or from
/// the consumer's own queue. Read here rather than through rdkafka's
/// `Headers`, which panics on a header name that is not UTF-8.
#[derive(Clone, Copy)]
pub(super) struct MessageView<'a>(&'a rdsys::rd_kafka_message_t);

impl<'a> MessageView<'a> {
    pub(super) fn of(message: &'a BorrowedMessage<'_>) -> Self {
        // SAFETY: the message outlives the view.
        MessageView(unsafe { &*message.ptr() })
    }

    fn ptr(self) -> *mut rdsys::rd_kafka_message_t {
        self.0 as *const rdsys::rd_kafka_message_t as *mut rdsys::rd_kafka_message_t
    }

    /// A consumer error delivered in place of a message.
    pub(super) fn error(self) -> Option<KafkaError> {
        let code = self.0.err;
        (code != rdsys::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR)
            .then(|| KafkaError::MessageConsumption(RDKafkaErrorCode::from(code)))
    }

    /// Topic names are ASCII by Kafka's rules; anything else is shown lossily.
    pub(super) fn topic(self) -> String {
        if self.0.rkt.is_null() {
            return String::new();
        }
        // SAFETY: a message's topic handle and name live as long as it does.
        unsafe { CStr::from_ptr(rdsys::rd_kafka_topic_name(self.0.rkt)) }
            .to_string_lossy()
            .into_owned()
    }

    /// Whether both messages are of one partition (of one topic handle).
    pub(super) fn same_partition(self, other: MessageView<'_>) -> bool {
        self.0.partition == other.0.partition && std::ptr::eq(self.0.rkt, other.0.rkt)
    }

    pub(super) fn partition(self) -> i32 {
        self.0.partition
    }

    pub(super) fn offset(self) -> i64 {
        self.0.offset
    }

    pub(super) fn key(self) -> Option<&'a [u8]> {
        bytes(self.0.key as *const u8, self.0.key_len)
    }

    pub(super) fn payload(self) -> Option<&'a [u8]> {
        bytes(self.0.payload as *const u8, self.0.len)
    }

    /// Asks the CPU to bring the payload into its cache, to be read after
    /// the message before it has been checked and copied: librdkafka's
    /// broker thread wrote it on another core, and the first reads of each
    /// value waited on memory (8 % of the poll thread per message).
    pub(super) fn prefetch_payload(self) {
        #[cfg(target_arch = "x86_64")]
        if let Some(payload) = self.payload() {
            use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
            // The first 4 KB: past that, the hardware's own prefetch keeps up.
            for line in payload.chunks(64).take(64) {
                // SAFETY: SSE is part of x86_64; a prefetch reads nothing
                // and cannot fault, and the address is inside the payload.
                unsafe { _mm_prefetch::<_MM_HINT_T0>(line.as_ptr().cast()) };
            }
        }
    }

    /// Milliseconds since the epoch, when the record has a timestamp.
    pub(super) fn timestamp(self) -> Option<i64> {
        let mut kind = rdsys::rd_kafka_timestamp_type_t::RD_KAFKA_TIMESTAMP_NOT_AVAILABLE;
        // SAFETY: valid message; `kind` is written by librdkafka.
        let timestamp = unsafe { rdsys::rd_kafka_message_timestamp(self.ptr(), &mut kind) };
        (kind != rdsys::rd_kafka_timestamp_type_t::RD_KAFKA_TIMESTAMP_NOT_AVAILABLE
            && timestamp >= 0)
            .then_some(timestamp)
    }

    /// Header names as text (bytes that are not UTF-8 are replaced: another
    /// client may have written anything), values as bytes.
    pub(super) fn headers(self) -> Vec<(String, Option<Vec<u8>>)> {
        let mut headers = std::ptr::null_mut();
        // SAFETY: valid message; its headers belong to it.
        let found = unsafe { rdsys::rd_kafka_message_headers(self.ptr(), &mut headers) };
        if found != rdsys::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR || headers.is_null() {
            return Vec::new();
        }
        let mut all = Vec::new();
        for index in 0.. {
            let mut name = std::ptr::null();
            let mut value = std::ptr::null();
            let mut size = 0usize;
            // SAFETY: librdkafka writes a name and a value that stay valid
            // while the message lives.
            let got = unsafe {
                rdsys::rd_kafka_header_get_all(headers, index, &mut name, &mut value, &mut size)
            };
            if got != rdsys::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR || name.is_null() {
                break;
            }
            // SAFETY: header names are NUL-terminated by librdkafka.
            let name = unsafe { CStr::from_ptr(name) }
                .to_string_lossy()
                .into_owned();
            all.push((name, bytes(value as *const u8, size).map(<[u8]>::to_vec)));
        }
        all
    }
}

fn bytes<'a>(data: *const u8, len: usize) -> Option<&'a [u8]> {
    // SAFETY: librdkafka gives a pointer to `len` readable bytes that live as
    // long as the message, or null.
    (!data.is_null()).then(|| unsafe { std::slice::from_raw_parts(data, len) })
}
