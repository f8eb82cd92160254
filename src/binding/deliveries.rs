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
use napi::bindgen_prelude::{
    Float64Array, FnArgs, FromNapiValue, Function, FunctionRef, Int32Array, JsObjectValue, Object,
    Uint32Array, Unknown,
};
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi::{sys, Env, JsError, JsValue, Status};
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
    build_reports: FunctionRef<ReportColumns, Unknown<'static>>,
}

type ReportColumns = FnArgs<(
    Vec<String>,
    Uint32Array,
    Int32Array,
    Float64Array,
    Float64Array,
    Uint32Array,
)>;

impl Ledger {
    /// The ledger and the courier to give the core producer. The courier's
    /// wake-up settles promises through the ledger, on the JavaScript thread.
    pub fn new(env: &Env) -> napi::Result<(Rc<Ledger>, Arc<Courier>)> {
        let inbox = Arc::new(Inbox::default());
        // The wake-up owns the ledger too (no cycle: the ledger does not own
        // the wake-up), so promises still settle, rejected by librdkafka's
        // purge, when the producer object is collected with sends in flight.
        let build_reports: Function<'_, ReportColumns, Unknown<'static>> =
            env.run_script(BUILD_REPORTS)?;
        let ledger = Rc::new(Ledger {
            inbox: inbox.clone(),
            waiting: RefCell::default(),
            next_tag: Cell::new(0),
            wake: Cell::new(std::ptr::null_mut()),
            referenced: Cell::new(false),
            build_reports: build_reports.create_ref()?,
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

    /// Settles every promise whose messages all have an outcome now, in the
    /// order their last outcome arrived.
    fn settle_arrived(&self, env: &Env) {
        let outcomes = self.inbox.take();
        let mut settlements = Vec::new();
        for outcome in outcomes {
            if let Some(settlement) = self.record(outcome) {
                settlements.push(settlement);
            }
        }
        if !settlements.is_empty() {
            self.settle(env, settlements);
        }
        if self.waiting.borrow().is_empty() {
            self.keep_alive(env, false);
        }
    }

    /// Files one outcome; the settlement of its call once that is decided.
    fn record(&self, outcome: Outcome) -> Option<Settlement> {
        let mut waiting = self.waiting.borrow_mut();
        // Absent when an earlier message of the same call already failed it.
        let entry = waiting.get_mut(&outcome.tag)?;
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
                    return None;
                }
                waiting.remove(&outcome.tag).map(Settlement::Resolve)
            }
            Err(error) => waiting
                .remove(&outcome.tag)
                .map(|entry| Settlement::Reject(entry.deferred, at_index(error, index, total))),
        }
    }

    fn settle(&self, env: &Env, settlements: Vec<Settlement>) {
        let resolved: Vec<&Waiting> = settlements
            .iter()
            .filter_map(|settlement| match settlement {
                Settlement::Resolve(entry) => Some(entry),
                Settlement::Reject(..) => None,
            })
            .collect();
        let reports = if resolved.is_empty() {
            Ok(None)
        } else {
            self.build_reports(env, &resolved).map(Some)
        };
        let mut next_report = 0;
        for settlement in settlements {
            match settlement {
                Settlement::Reject(deferred, error) => reject(env, deferred, error),
                Settlement::Resolve(entry) => {
                    let report = match &reports {
                        Ok(Some(reports)) => reports.get_element::<Unknown<'_>>(next_report),
                        Ok(None) => Err(napi::Error::from_reason("no report was built")),
                        Err(error) => Err(napi::Error::from_reason(error.reason.clone())),
                    };
                    next_report += 1;
                    match report {
                        // SAFETY: on the JavaScript thread; `deferred` is settled exactly once.
                        Ok(report) => unsafe {
                            sys::napi_resolve_deferred(env.raw(), entry.deferred, report.raw());
                        },
                        Err(error) => reject_with(env, entry.deferred, error),
                    }
                }
            }
        }
    }

    /// Every resolved call's report (`RecordMetadata`, or an array of them),
    /// built by one call of [`BUILD_REPORTS`] from columns: creating each
    /// object from Rust, property by property, cost more of the JavaScript
    /// thread than reading the message in (`bench/README.md`).
    fn build_reports<'env>(
        &self,
        env: &'env Env,
        resolved: &[&Waiting],
    ) -> napi::Result<Object<'env>> {
        let count: usize = resolved.iter().map(|entry| entry.reports.len()).sum();
        let mut topics: Vec<&str> = Vec::new();
        let mut topic_of = Vec::with_capacity(count);
        let mut partitions = Vec::with_capacity(count);
        let mut offsets = Vec::with_capacity(count);
        let mut timestamps = Vec::with_capacity(count);
        let mut sizes = Vec::with_capacity(resolved.len());
        for entry in resolved {
            sizes.push(if entry.single {
                SINGLE_REPORT
            } else {
                entry.reports.len() as u32
            });
            for (index, delivered) in entry.reports.iter().enumerate() {
                let delivered = delivered
                    .ok_or_else(|| napi::Error::from_reason("a delivery report is missing"))?;
                let topic = entry.topics.get(index);
                // Nearly always one topic per wake-up.
                let position = match topics.iter().rposition(|known| *known == topic) {
                    Some(position) => position,
                    None => {
                        topics.push(topic);
                        topics.len() - 1
                    }
                };
                topic_of.push(position as u32);
                partitions.push(delivered.partition);
                // Offsets and timestamps are below 2^53: numbers, as before.
                offsets.push(delivered.offset as f64);
                timestamps.push(delivered.timestamp.map_or(f64::NAN, |ms| ms as f64));
            }
        }
        let topics: Vec<String> = topics.into_iter().map(str::to_string).collect();
        let build = self.build_reports.borrow_back(env)?;
        let reports = build.call(FnArgs::from((
            topics,
            Uint32Array::new(topic_of),
            Int32Array::new(partitions),
            Float64Array::new(offsets),
            Float64Array::new(timestamps),
            Uint32Array::new(sizes),
        )))?;
        // SAFETY: `BUILD_REPORTS` returns an array of this environment.
        unsafe { Object::from_napi_value(env.raw(), reports.raw()) }
    }
}

/// How a send call is settled.
enum Settlement {
    Resolve(Waiting),
    Reject(sys::napi_deferred, CoreError),
}

/// In `BUILD_REPORTS`' sizes: the call resolves with one report, not an array.
const SINGLE_REPORT: u32 = u32::MAX;

/// Builds the reports of a wake-up's resolved calls, in order: for each call
/// `sizes[c]` reports (an array), or one report when it is `SINGLE_REPORT`;
/// report `r` is `{ topic: topics[topicOf[r]], partition, offset[, timestamp] }`
/// (the shape of `crate::binding::producer::RecordMetadata`, which gives them
/// their TypeScript type).
const BUILD_REPORTS: &str = r#"(function buildReports(topics, topicOf, partitions, offsets, timestamps, sizes) {
  'use strict';
  let next = 0;
  function report() {
    const r = next++;
    const metadata = { topic: topics[topicOf[r]], partition: partitions[r], offset: offsets[r] };
    const timestamp = timestamps[r];
    if (timestamp === timestamp) metadata.timestamp = timestamp;
    return metadata;
  }
  const reports = new Array(sizes.length);
  for (let c = 0; c < sizes.length; c++) {
    const size = sizes[c];
    if (size === 0xffffffff) {
      reports[c] = report();
      continue;
    }
    const array = new Array(size);
    for (let i = 0; i < size; i++) array[i] = report();
    reports[c] = array;
  }
  return reports;
})"#;

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
