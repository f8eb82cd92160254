//! Items handed from other threads to the JavaScript thread, which is woken
//! once for however many arrive before it runs: a threadsafe-function call
//! per item costs more than the item's own work.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

pub struct WakeQueue<T> {
    items: Mutex<Vec<T>>,
    /// Whether a wake-up is already on its way.
    woken: AtomicBool,
}

impl<T> Default for WakeQueue<T> {
    fn default() -> Self {
        WakeQueue {
            items: Mutex::new(Vec::new()),
            woken: AtomicBool::new(false),
        }
    }
}

impl<T> WakeQueue<T> {
    /// Queues `item`; `true` when the caller must wake the JavaScript thread
    /// (no wake-up is on its way yet).
    pub fn push(&self, item: T) -> bool {
        if let Ok(mut items) = self.items.lock() {
            items.push(item);
        }
        !self.woken.swap(true, Ordering::SeqCst)
    }

    /// On the JavaScript thread, when woken: everything queued so far. Items
    /// pushed from now on ask for a new wake-up.
    pub fn take(&self) -> Vec<T> {
        self.woken.store(false, Ordering::SeqCst);
        match self.items.lock() {
            Ok(mut items) => std::mem::take(&mut *items),
            Err(_) => Vec::new(),
        }
    }
}
