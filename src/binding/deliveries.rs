//! Send promises, settled in batches.
//!
//! A send's promise is a plain `napi_create_promise` deferred kept in the
//! producer's [`Ledger`] on the JavaScript thread. librdkafka's polling
//! thread drops each acknowledgement into an [`Inbox`] and wakes the
//! JavaScript thread through *one* threadsafe function per producer, only
//! when the inbox was empty; the wake-up then settles everything that
//! arrived meanwhile. napi-rs' own promises cost a threadsafe function, a
//! cleanup hook and a tokio task per promise, which capped one-promise-per-
//! message sends at a fraction of what librdkafka can take.

use crate::binding::js::{self, CoreResult};
use crate::binding::wake_queue::WakeQueue;
use crate::core::delivery::{Delivered, DeliverySink};
use crate::core::error::CoreError;
use crate::core::producer::at_index;
use napi::bindgen_prelude::Function;
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi::{sys, Env, JsError, Status};
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;

struct Outcome {
    tag: u64,
    index: u32,
    result: CoreResult<Delivered>,
}

/// Acknowledgements waiting for the JavaScript thread.
type Inbox = WakeQueue<Outcome>;

type Wake = ThreadsafeFunction<(), (), (), Status, false, true>;

/// The producer's [`DeliverySink`]: fills the inbox, wakes the JavaScript thread.
pub struct Courier {
    inbox: Arc<Inbox>,
    wake: Wake,
}

impl DeliverySink for Courier {
    fn delivered(&self, tag: u64, index: u32, result: CoreResult<Delivered>) {
        if self.inbox.push(Outcome { tag, index, result }) {
            // Fails only while Node shuts down, when nobody awaits the promises.
            let _ = self.wake.call((), ThreadsafeFunctionCallMode::NonBlocking);
        }
    }
}

/// The topic of each message of a send call: nearly always one for all.
pub enum Topics {
    Same { topic: String, count: usize },
    Each(Vec<String>),
}

impl Topics {
    pub fn of<'a>(mut topics: impl ExactSizeIterator<Item = &'a str> + Clone) -> Self {
        let count = topics.len();
        let first = topics.clone().next().unwrap_or_default();
        if topics.clone().all(|topic| topic == first) {
            Topics::Same {
                topic: first.to_string(),
                count,
            }
        } else {
            Topics::Each(topics.by_ref().map(str::to_string).collect())
        }
    }

    fn len(&self) -> usize {
        match self {
            Topics::Same { count, .. } => *count,
            Topics::Each(topics) => topics.len(),
        }
    }

    fn get(&self, index: usize) -> &str {
        match self {
            Topics::Same { topic, .. } => topic,
            Topics::Each(topics) => topics.get(index).map_or("", String::as_str),
        }
    }
}

/// One send call's promise and what it still waits for.
struct Waiting {
    deferred: sys::napi_deferred,
    topics: Topics,
    reports: Vec<Option<Delivered>>,
    remaining: usize,
    /// `send`/`sendBatch` resolve with an array, the single-message helpers with one report.
    single: bool,
}

/// The wake-up's JavaScript side: settle in the event loop's check phase.
/// Settling inline would let Node's threadsafe-function dispatch, which runs
/// up to a thousand queued calls per turn, chain wake-ups for seconds when
/// every settled send triggers another (a producer keeping a window of sends
/// open), and timers and I/O would wait all that time.
const SETTLE_LATER: &str =
    "(function (settle) { 'use strict'; return function settleLater() { setImmediate(settle); }; })";

/// The promises of one producer, on the JavaScript thread.
pub struct Ledger {
    inbox: Arc<Inbox>,
    waiting: RefCell<HashMap<u64, Waiting>>,
    next_tag: Cell<u64>,
    /// The courier's threadsafe function, referenced (keeping Node alive)
    /// exactly while some promise is unsettled. It lives as long as the core
    /// producer, which outlives every use of the ledger (see `Ledger::new`).
    wake: Cell<sys::napi_threadsafe_function>,
    referenced: Cell<bool>,
}

impl Ledger {
    /// The ledger and the courier to give the core producer. The courier's
    /// wake-up settles promises through the ledger, on the JavaScript thread.
    pub fn new(env: &Env) -> napi::Result<(Rc<Ledger>, Arc<Courier>)> {
        let inbox = Arc::new(Inbox::default());
        // The wake-up owns the ledger too (no cycle: the ledger does not own
        // the wake-up), so promises still settle, rejected by librdkafka's
        // purge, when the producer object is collected with sends in flight.
        let ledger = Rc::new(Ledger {
            inbox: inbox.clone(),
            waiting: RefCell::default(),
            next_tag: Cell::new(0),
            wake: Cell::new(std::ptr::null_mut()),
            referenced: Cell::new(false),
        });
        let settling = ledger.clone();
        let settle: Function<'_, (), ()> =
            env.create_function_from_closure("settleDeliveries", move |context| {
                settling.settle_arrived(context.env);
                Ok(())
            })?;
        let defer: Function<'_, Function<'_, (), ()>, Function<'_, (), ()>> =
            env.run_script(SETTLE_LATER)?;
        let settle_later = defer.call(settle)?;
        let wake: Wake = settle_later
            .build_threadsafe_function::<()>()
            .callee_handled::<false>()
            .weak::<true>()
            .build_callback(|_| Ok(()))?;
        ledger.wake.set(wake.raw());
        Ok((ledger, Arc::new(Courier { inbox, wake })))
    }

    /// A tag for the next send call.
    pub fn next_tag(&self) -> u64 {
        let tag = self.next_tag.get();
        self.next_tag.set(tag.wrapping_add(1));
        tag
    }

    /// The promise of a send call already handed to the producer under `tag`.
    pub fn promise(
        &self,
        env: &Env,
        tag: u64,
        topics: Topics,
        single: bool,
    ) -> napi::Result<sys::napi_value> {
        let mut deferred = std::ptr::null_mut();
        let mut promise = std::ptr::null_mut();
        // SAFETY: called on the JavaScript thread with its live environment.
        napi::check_status!(unsafe {
            sys::napi_create_promise(env.raw(), &mut deferred, &mut promise)
        })?;
        let count = topics.len();
        self.waiting.borrow_mut().insert(
            tag,
            Waiting {
                deferred,
                topics,
                reports: vec![None; count],
                remaining: count,
                single,
            },
        );
        self.keep_alive(env, true);
        Ok(promise)
    }

    /// Referenced while promises are pending, so Node does not exit under them.
    fn keep_alive(&self, env: &Env, wanted: bool) {
        if self.referenced.get() == wanted {
            return;
        }
        // SAFETY: on the JavaScript thread; the threadsafe function is alive
        // while the ledger's producer is (see the field's note).
        let status = unsafe {
            if wanted {
                sys::napi_ref_threadsafe_function(env.raw(), self.wake.get())
            } else {
                sys::napi_unref_threadsafe_function(env.raw(), self.wake.get())
            }
        };
        if status == sys::Status::napi_ok {
            self.referenced.set(wanted);
        }
    }

    /// Settles every promise whose messages all have an outcome now.
    fn settle_arrived(&self, env: &Env) {
        let outcomes = self.inbox.take();
        let mut builder = MetadataBuilder::new(env);
        for outcome in outcomes {
            self.record(env, &mut builder, outcome);
        }
        if self.waiting.borrow().is_empty() {
            self.keep_alive(env, false);
        }
    }

    fn record(&self, env: &Env, builder: &mut MetadataBuilder, outcome: Outcome) {
        let mut waiting = self.waiting.borrow_mut();
        // Absent when an earlier message of the same call already failed it.
        let Some(entry) = waiting.get_mut(&outcome.tag) else {
            return;
        };
        let index = outcome.index as usize;
        let total = entry.reports.len();
        match outcome.result {
            Ok(delivered) => {
                if let Some(slot) = entry.reports.get_mut(index) {
                    if slot.replace(delivered).is_none() {
                        entry.remaining -= 1;
                    }
                }
                if entry.remaining > 0 {
                    return;
                }
                if let Some(entry) = waiting.remove(&outcome.tag) {
                    drop(waiting);
                    resolve(env, builder, entry);
                }
            }
            Err(error) => {
                if let Some(entry) = waiting.remove(&outcome.tag) {
                    drop(waiting);
                    let error = at_index(error, index, total);
                    reject(env, entry.deferred, error);
                }
            }
        }
    }
}

/// Builds `RecordMetadata` objects (the shape of `crate::binding::producer::RecordMetadata`,
/// which gives them their TypeScript type) for one wake-up, creating the property
/// names once and each topic's string once per run of the same topic: the
/// generated conversion creates (and V8 interns) all of them per object.
struct MetadataBuilder {
    env: sys::napi_env,
    keys: Option<[sys::napi_value; 4]>,
    topic: Option<(String, sys::napi_value)>,
}

impl MetadataBuilder {
    fn new(env: &Env) -> Self {
        MetadataBuilder {
            env: env.raw(),
            keys: None,
            topic: None,
        }
    }

    fn string(&self, text: &str) -> napi::Result<sys::napi_value> {
        let mut value = std::ptr::null_mut();
        // SAFETY: on the JavaScript thread; `text` is valid UTF-8 of that length.
        napi::check_status!(unsafe {
            sys::napi_create_string_utf8(
                self.env,
                text.as_ptr().cast(),
                text.len() as isize,
                &mut value,
            )
        })?;
        Ok(value)
    }

    fn build(&mut self, topic: &str, delivered: Delivered) -> napi::Result<sys::napi_value> {
        let keys = match self.keys {
            Some(keys) => keys,
            None => {
                let keys = [
                    self.string("topic")?,
                    self.string("partition")?,
                    self.string("offset")?,
                    self.string("timestamp")?,
                ];
                self.keys = Some(keys);
                keys
            }
        };
        let topic_value = match &self.topic {
            Some((name, value)) if *name == topic => *value,
            _ => {
                let value = self.string(topic)?;
                self.topic = Some((topic.to_string(), value));
                value
            }
        };
        let env = self.env;
        let mut object = std::ptr::null_mut();
        let mut partition = std::ptr::null_mut();
        let mut offset = std::ptr::null_mut();
        // SAFETY: on the JavaScript thread, with values of this environment.
        unsafe {
            napi::check_status!(sys::napi_create_object(env, &mut object))?;
            napi::check_status!(sys::napi_create_int32(
                env,
                delivered.partition,
                &mut partition
            ))?;
            napi::check_status!(sys::napi_create_int64(env, delivered.offset, &mut offset))?;
            napi::check_status!(sys::napi_set_property(env, object, keys[0], topic_value))?;
            napi::check_status!(sys::napi_set_property(env, object, keys[1], partition))?;
            napi::check_status!(sys::napi_set_property(env, object, keys[2], offset))?;
            if let Some(timestamp) = delivered.timestamp {
                let mut value = std::ptr::null_mut();
                napi::check_status!(sys::napi_create_int64(env, timestamp, &mut value))?;
                napi::check_status!(sys::napi_set_property(env, object, keys[3], value))?;
            }
        }
        Ok(object)
    }
}

fn resolve(env: &Env, builder: &mut MetadataBuilder, entry: Waiting) {
    // Resolved only once every report arrived (`remaining == 0`).
    let arrived = |delivered: Option<Delivered>| {
        delivered.ok_or_else(|| napi::Error::from_reason("a delivery report is missing"))
    };
    let build = |builder: &mut MetadataBuilder| -> napi::Result<sys::napi_value> {
        if entry.single {
            return builder.build(
                entry.topics.get(0),
                arrived(entry.reports.first().copied().flatten())?,
            );
        }
        let mut array = std::ptr::null_mut();
        // SAFETY: on the JavaScript thread.
        napi::check_status!(unsafe {
            sys::napi_create_array_with_length(env.raw(), entry.topics.len(), &mut array)
        })?;
        for (index, delivered) in entry.reports.into_iter().enumerate() {
            let report = builder.build(entry.topics.get(index), arrived(delivered)?)?;
            // SAFETY: as above.
            napi::check_status!(unsafe {
                sys::napi_set_element(env.raw(), array, index as u32, report)
            })?;
        }
        Ok(array)
    };
    match build(builder) {
        // SAFETY: on the JavaScript thread; `deferred` is settled exactly once.
        Ok(value) => unsafe {
            sys::napi_resolve_deferred(env.raw(), entry.deferred, value);
        },
        Err(error) => reject_with(env, entry.deferred, error),
    }
}

fn reject(env: &Env, deferred: sys::napi_deferred, error: CoreError) {
    reject_with(env, deferred, js::js_error(env, error));
}

fn reject_with(env: &Env, deferred: sys::napi_deferred, error: napi::Error) {
    // SAFETY: on the JavaScript thread; `deferred` is settled exactly once.
    unsafe {
        let value = JsError::from(error).into_value(env.raw());
        sys::napi_reject_deferred(env.raw(), deferred, value);
    }
}
