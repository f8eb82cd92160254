//! A librdkafka producer whose events (delivery reports, errors, logs,
//! statistics) are served by a thread of its own, woken by librdkafka when
//! an event arrives.
//!
//! rdkafka's `ThreadedProducer` polls in rounds of 100 ms and passes
//! librdkafka the time left in whole milliseconds, so the last fraction of a
//! millisecond of every round is polled with a timeout of 0, over and over:
//! an idle producer spent 0.9 % of a core spinning (bench/README.md,
//! 2026-11-27). Every consumer has one, for its dead-letter topic.

use crate::core::delivery::DeliveryContext;
use crate::core::wakeup::{Wakeup, WatchedQueue};
use rdkafka::bindings as rdsys;
use rdkafka::producer::{BaseProducer, Producer as _};
use std::ops::Deref;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// How long the serving thread sleeps without a wake-up before it looks at
/// the queue anyway: a safety net only, librdkafka wakes it for every event.
const SAFETY_NET: Duration = Duration::from_secs(1);

/// A pause, should polling ever stop shortening the queue: never a spin.
const STALLED_PAUSE: Duration = Duration::from_millis(1);

/// Polls in a row that may leave the queue no shorter (events arriving as
/// fast as they are served) before the round counts as stalled.
const POLLS_WITHOUT_PROGRESS: u32 = 100;

/// Serves events until the queue is empty, which is when librdkafka wakes
/// the thread again: events that arrived before the watch, or while the
/// queue was not empty, raised no wake-up. `poll(0)` serves at most one
/// event. True when the queue stopped getting shorter (librdkafka always
/// removes what it serves, so this is a guard, not a path).
fn serve_until_empty(producer: &BaseProducer<DeliveryContext>, events: &WatchedQueue) -> bool {
    let mut without_progress = 0;
    let mut waiting = events.len();
    while waiting > 0 {
        producer.poll(Duration::ZERO);
        let left = events.len();
        if left >= waiting {
            without_progress += 1;
            if without_progress == POLLS_WITHOUT_PROGRESS {
                return true;
            }
        } else {
            without_progress = 0;
        }
        waiting = left;
    }
    false
}

pub(crate) struct PolledProducer {
    producer: Arc<BaseProducer<DeliveryContext>>,
    serving: Option<JoinHandle<()>>,
    stop: Arc<AtomicBool>,
    wakeup: Arc<Wakeup>,
    /// Shared with the serving thread; released after it ends.
    events: Option<Arc<WatchedQueue>>,
    #[cfg(test)]
    rounds: Arc<std::sync::atomic::AtomicUsize>,
}

impl PolledProducer {
    /// Starts serving `producer`'s events on a thread of its own.
    pub(crate) fn new(producer: BaseProducer<DeliveryContext>) -> std::io::Result<Self> {
        let producer = Arc::new(producer);
        let wakeup = Arc::new(Wakeup::default());
        let stop = Arc::new(AtomicBool::new(false));
        // SAFETY: a new reference to the producer's event queue, released
        // (see `Drop`) before the last reference to the producer.
        let events = unsafe {
            WatchedQueue::new(
                rdsys::rd_kafka_queue_get_main(producer.client().native_ptr()),
                wakeup.clone(),
            )
        }
        .map(Arc::new)
        .ok_or_else(|| std::io::Error::other("librdkafka has no event queue for the producer"))?;
        #[cfg(test)]
        let rounds = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let serving = {
            let (producer, events, stop, wakeup) = (
                producer.clone(),
                events.clone(),
                stop.clone(),
                wakeup.clone(),
            );
            #[cfg(test)]
            let rounds = rounds.clone();
            std::thread::Builder::new()
                .name("producer events".to_string())
                .spawn(move || loop {
                    #[cfg(test)]
                    rounds.fetch_add(1, Ordering::Relaxed);
                    let stalled = serve_until_empty(&producer, &events);
                    if stop.load(Ordering::Acquire) {
                        return;
                    }
                    wakeup.wait(if stalled { STALLED_PAUSE } else { SAFETY_NET });
                })?
        };
        Ok(PolledProducer {
            producer,
            serving: Some(serving),
            stop,
            wakeup,
            events: Some(events),
            #[cfg(test)]
            rounds,
        })
    }

    /// How many times the serving thread woke up.
    #[cfg(test)]
    pub(crate) fn rounds(&self) -> usize {
        self.rounds.load(Ordering::Relaxed)
    }
}

impl Deref for PolledProducer {
    type Target = BaseProducer<DeliveryContext>;

    fn deref(&self) -> &Self::Target {
        &self.producer
    }
}

impl Drop for PolledProducer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        self.wakeup.wake();
        if let Some(serving) = self.serving.take() {
            let _ = serving.join();
        }
        // Before the producer: librdkafka's handle is destroyed with its last
        // reference, which must not outlive our queue reference.
        self.events = None;
    }
}
