//! Waking a thread of ours when a librdkafka queue receives something.
//!
//! librdkafka calls a queue's event callback when an event arrives on the
//! queue while it is empty, from its own thread and under the queue's lock:
//! the callback only raises a flag. The thread then serves the queue until it
//! is empty again, and sleeps until the next call, instead of polling on a
//! timer.

use rdkafka::bindings as rdsys;
use std::ffi::c_void;
use std::ptr::NonNull;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

/// A flag a thread sleeps on until it is raised (or a timeout passes).
#[derive(Default)]
pub(crate) struct Wakeup {
    pending: Mutex<bool>,
    signal: Condvar,
}

impl Wakeup {
    pub(crate) fn wake(&self) {
        if let Ok(mut pending) = self.pending.lock() {
            *pending = true;
            self.signal.notify_one();
        }
    }

    /// Returns at once when woken since the last wait.
    pub(crate) fn wait(&self, timeout: Duration) {
        let Ok(pending) = self.pending.lock() else {
            return;
        };
        if let Ok((mut pending, _)) = self
            .signal
            .wait_timeout_while(pending, timeout, |pending| !*pending)
        {
            *pending = false;
        }
    }
}

unsafe extern "C" fn wake_on_event(_: *mut rdsys::rd_kafka_t, opaque: *mut c_void) {
    // SAFETY: `opaque` is the `Wakeup` a `WatchedQueue` keeps alive until it
    // disables the callback.
    let wakeup = unsafe { &*(opaque as *const Wakeup) };
    wakeup.wake();
}

/// A reference to a librdkafka queue, released when dropped.
pub(crate) struct QueueRef(NonNull<rdsys::rd_kafka_queue_t>);

// librdkafka's queues may be used from any thread.
unsafe impl Send for QueueRef {}
unsafe impl Sync for QueueRef {}

impl QueueRef {
    /// Takes over `queue`, a reference from `rd_kafka_queue_new` or
    /// `rd_kafka_queue_get_*` (`None` when null).
    ///
    /// # Safety
    /// `queue` must be null or a queue reference the caller owns, and its
    /// client must outlive the returned value.
    pub(crate) unsafe fn new(queue: *mut rdsys::rd_kafka_queue_t) -> Option<Self> {
        NonNull::new(queue).map(QueueRef)
    }

    pub(crate) fn as_ptr(&self) -> *mut rdsys::rd_kafka_queue_t {
        self.0.as_ptr()
    }

    /// Events (or messages) waiting in the queue.
    pub(crate) fn len(&self) -> usize {
        // SAFETY: the reference is valid until `drop`.
        unsafe { rdsys::rd_kafka_queue_length(self.0.as_ptr()) }
    }
}

impl Drop for QueueRef {
    fn drop(&mut self) {
        // SAFETY: the reference is ours, released once.
        unsafe { rdsys::rd_kafka_queue_destroy(self.0.as_ptr()) }
    }
}

/// A reference to a librdkafka queue that raises a [`Wakeup`] whenever the
/// queue receives an event while empty. Dropping it stops the wake-ups, then
/// releases the reference.
pub(crate) struct WatchedQueue {
    /// Released after `drop` has disabled the callback (fields drop last).
    queue: QueueRef,
    /// Passed to librdkafka as the callback's opaque pointer.
    wakeup: *const Wakeup,
}

// `wakeup` is an `Arc`'s pointer, released only in `drop` after librdkafka
// stops using it.
unsafe impl Send for WatchedQueue {}
unsafe impl Sync for WatchedQueue {}

impl WatchedQueue {
    /// Takes over `queue` as [`QueueRef::new`] does.
    ///
    /// # Safety
    /// As for [`QueueRef::new`].
    pub(crate) unsafe fn new(
        queue: *mut rdsys::rd_kafka_queue_t,
        wakeup: Arc<Wakeup>,
    ) -> Option<Self> {
        // SAFETY: the caller's promise.
        let queue = unsafe { QueueRef::new(queue) }?;
        let wakeup = Arc::into_raw(wakeup);
        // SAFETY: `queue` is valid (the caller's promise); `wakeup` outlives
        // the callback (see `drop`).
        unsafe {
            rdsys::rd_kafka_queue_cb_event_enable(
                queue.as_ptr(),
                Some(wake_on_event),
                wakeup as *mut c_void,
            );
        }
        Some(WatchedQueue { queue, wakeup })
    }

    pub(crate) fn as_ptr(&self) -> *mut rdsys::rd_kafka_queue_t {
        self.queue.as_ptr()
    }

    /// Events (or messages) waiting in the queue.
    pub(crate) fn len(&self) -> usize {
        self.queue.len()
    }
}

impl Drop for WatchedQueue {
    fn drop(&mut self) {
        // SAFETY: once the callback is disabled (under the queue's lock)
        // librdkafka no longer uses `wakeup`. The queue reference is released
        // after this, with the fields.
        unsafe {
            rdsys::rd_kafka_queue_cb_event_enable(self.queue.as_ptr(), None, std::ptr::null_mut());
            drop(Arc::from_raw(self.wakeup));
        }
    }
}
