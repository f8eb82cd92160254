//! How a consumer's runs of messages reach the JavaScript callback and how
//! their outcomes come back.
//!
//! Each lane of the core's dispatcher hands over a run and awaits its
//! outcome. Runs wait in a [`Mailbox`]; the JavaScript thread is woken through
//! *one* threadsafe function per consumer, only when the mailbox was empty,
//! and that wake-up takes every run that arrived meanwhile, however many
//! lanes are ready. Each run reports back through a
//! plain native function (`settle`) when it is done. A threadsafe-function
//! call per run, with a napi-rs promise awaited from Rust per run, cost more
//! CPU per message than librdkafka and the handler together (measured in
//! `bench/README.md`).

use crate::binding::js::{self, CoreResult};
use crate::binding::wake_queue::WakeQueue;
use crate::core::consumer::{
    Delivery, EncodedHandler, HandlerFailure, HandlerFuture, Interrupted, MessageHandler,
    YieldSignal,
};
use crate::core::encoded::{Chunk, EncodedDeliveries};
use napi::bindgen_prelude::{
    Buffer, FnArgs, FromNapiValue, Function, JsObjectValue, Object, ToNapiValue, Unknown,
};
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi::{sys, Env, JsValue, Status};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::oneshot;

/// Wraps the application's callback once per consumer. `receive` gets the
/// runs that are ready as JSON texts (chunks of a run's messages, column by
/// column, see [`EncodedDeliveries`], parsed by V8; a run is `counts[r]`
/// consecutive texts), their ids, and for raw payloads one
/// Buffer per run that the messages' values become views into. It calls the callback on each run's
/// messages in order, awaiting each, and stops at the first failure; each run
/// is reported to `settle(id, outcome)` with `null`, `[index, reason]`, or
/// `[index]` when a drain asked it to report progress (`yieldFlag`). An
/// exactly-once consumer's transaction sender (`tx`) is the callback's
/// second argument. In batch mode runs go one at a time, in the order they
/// arrived; a run marked `afterPrevious` is answered `[0]` (not started) when
/// a run before it failed or was not started itself.
const DRIVER: &str = r#"(function makeReceiver(handle, batch, yieldFlag, settle, tx, fetch) {
  'use strict';
  const callback = tx == null ? handle : (value) => handle(value, tx);
  // A byte over the core's flag (see YieldFlag): read per message, where a
  // native call cost more than the read itself.
  const yieldRequested = typeof yieldFlag === 'function' ? yieldFlag : () => Atomics.load(yieldFlag, 0) !== 0;
  function reason(error) {
    try {
      if (error !== null && typeof error === 'object' && typeof error.message === 'string') return error.message;
      return String(error);
    } catch {
      return 'the callback failed with a value that cannot be shown';
    }
  }
  // The event loop's share: once callbacks have run for SLICE_MS in one
  // iteration of the loop, the rest waits for the next iteration, so timers
  // and I/O are not held up behind a backlog. The slice ends in the check
  // phase of the next iteration, two setImmediate hops after it began: a
  // wake-up runs in the poll phase and its continuations in the check phase
  // of the *same* iteration, and ending the slice between them (one hop)
  // gave each iteration two slices (consuming in batches: an event-loop
  // delay p99 of 12 ms instead of 8, bench/README.md). It must not wait for
  // a timer either: Node's shortest is 1 ms, so with `setTimeout(endSlice,
  // 0)` an idle loop went round until then, and batches of 0.5 ms started
  // at most once a millisecond (the event loop was idle half the time).
  // A batch queued behind another starts as soon as that one ends, with no
  // round trip between them: with 3 ms, two batches of 500 often ran in one
  // turn (p99 9.6-12.5 ms where it was 7-8). In batch mode the slice is
  // therefore one batch: once a batch has run in a turn, the next waits for
  // the next turn. (With 1 ms, batches decoded faster again ran two to a
  // turn: p99 5.1-6.8 ms, up to 11.9, against 4.7-5.1, up to 6.3.)
  const SLICE_MS = batch ? 0 : 3;
  // Reading the clock costs about 40 ns, some 3 % of a quick message's
  // handling: per message, while messages take under 50 µs, it is read at
  // every fourth only, so a slice ends at most three messages late.
  const CLOCK_STRIDE = batch ? 1 : 4;
  let sliceStart = 0;
  let lastRead = 0;
  let unread = 0;
  function endSlice() {
    sliceStart = 0;
  }
  function endSliceNextTurn() {
    setImmediate(endSlice);
  }
  function overSlice() {
    if (unread > 0 && sliceStart !== 0) {
      unread--;
      return false;
    }
    const now = performance.now();
    if (sliceStart === 0) {
      sliceStart = now;
      lastRead = now;
      setImmediate(endSliceNextTurn);
      return false;
    }
    unread = now - lastRead < 0.05 ? CLOCK_STRIDE - 1 : 0;
    lastRead = now;
    return now - sliceStart > SLICE_MS;
  }
  function nextTurn() {
    return new Promise((resolve) => setImmediate(resolve));
  }
  function thenable(value) {
    try {
      return value !== null && (typeof value === 'object' || typeof value === 'function') && typeof value.then === 'function';
    } catch {
      return false;
    }
  }
  function deliverBatch(messages) {
    let result;
    try {
      result = callback(messages);
    } catch (error) {
      return [0, reason(error)];
    }
    return thenable(result) ? Promise.resolve(result).then(() => null, (error) => [0, reason(error)]) : null;
  }
  // Per message, each callback's promise is awaited before the next message.
  // The run stays synchronous while the callbacks are (it then settles
  // without a promise); from the first promise on, one async loop goes on.
  // (A promise chained per message cost three microtasks each, and the last
  // outcome unwound through every promise of the run.) A drain's request to
  // report progress is honoured between any two messages, those awaited
  // included.
  function drive(messages) {
    // A batch's turn was checked before it was decoded (pump).
    if (batch) return deliverBatch(messages);
    const outcome = runFrom(messages, 0);
    return outcome === SUSPENDED ? driveLater(messages, suspendedAt, suspendedOn) : outcome;
  }
  // `runFrom` stopped before the run ended: at message `suspendedAt`, whose
  // callback returned `suspendedOn`, or (with none) which waits for the next
  // turn. Read at once by its caller, so runs never see each other's.
  const SUSPENDED = {};
  let suspendedAt = 0;
  let suspendedOn;
  // Calls the callbacks from message `at` on while they return at once: the
  // run's outcome, or SUSPENDED.
  function runFrom(messages, at) {
    for (; at < messages.length; at++) {
      if (at > 0 && yieldRequested()) return [at];
      if (overSlice()) return suspend(at, undefined);
      let result;
      try {
        result = callback(messages[at]);
      } catch (error) {
        return [at, reason(error)];
      }
      if (thenable(result)) return suspend(at, result);
    }
    return null;
  }
  function suspend(at, pending) {
    suspendedAt = at;
    suspendedOn = pending;
    return SUSPENDED;
  }
  // The rest of a run from message `at`: once `pending` (its callback's
  // result) settles, or, with none, from `at` itself at the next turn.
  async function driveLater(messages, at, pending) {
    for (;;) {
      if (pending === undefined) {
        await nextTurn();
      } else {
        try {
          await pending;
        } catch (error) {
          return [at, reason(error)];
        }
        at++;
      }
      const outcome = runFrom(messages, at);
      if (outcome !== SUSPENDED) return outcome;
      at = suspendedAt;
      pending = suspendedOn;
    }
  }
  // Batch mode: whether a batch is running, and whether the last one to end
  // did not succeed; then batches handed over ahead of that outcome
  // (`afterPrevious`) are not started: the consumer retries the failed one
  // first and hands them over again.
  let running = false;
  let failed = false;
  function ended(id, outcome) {
    settle(id, outcome);
    if (!batch) return;
    running = false;
    if (outcome !== null) {
      failed = true;
      notStarted();
    }
    if (!pumpScheduled && !pumping) pump();
  }
  function notStarted() {
    for (let r = head; r < waiting.length; r++) {
      const run = waiting[r];
      if (run !== undefined && run.afterPrevious) {
        waiting[r] = undefined;
        settle(run.id, [0]);
      }
    }
  }
  function report(id, outcome) {
    if (thenable(outcome)) outcome.then((settled) => ended(id, settled), (error) => ended(id, [0, reason(error)]));
    else ended(id, outcome);
  }
  // A chunk is `[values, topics, keys, numbers, extras]` (core/encoded.rs):
  // five numbers per message, and for each message with headers its index,
  // headers and trace context. One literal per shape, so that every message
  // without a trace context shares one hidden class.
  function decode(texts, first, count) {
    const messages = [];
    for (let t = first; t < first + count; t++) {
      const chunk = JSON.parse(texts[t]);
      const values = chunk[0];
      const topics = chunk[1];
      const keys = chunk[2];
      const numbers = chunk[3];
      const extras = chunk[4];
      let extra = 0;
      let withExtra = extras.length > 0 ? extras[0] : -1;
      for (let i = 0, n = 0; i < values.length; i++, n += 5) {
        let headers;
        let traceContext = null;
        if (i === withExtra) {
          headers = extras[extra + 1];
          traceContext = extras[extra + 2];
          extra += 3;
          withExtra = extra < extras.length ? extras[extra] : -1;
        } else {
          headers = {};
        }
        messages.push(
          traceContext === null
            ? { topic: topics[numbers[n]], partition: numbers[n + 1], offset: numbers[n + 2], key: keys[i], value: values[i], headers, timestamp: numbers[n + 3], attempt: numbers[n + 4] }
            : { topic: topics[numbers[n]], partition: numbers[n + 1], offset: numbers[n + 2], key: keys[i], value: values[i], headers, traceContext, timestamp: numbers[n + 3], attempt: numbers[n + 4] },
        );
      }
    }
    return messages;
  }
  // Runs received and not yet started. Each is decoded only when its turn
  // comes: decoding every run of a wake-up at once held the event loop for
  // as long as several batches take to parse, whatever the slice said.
  const waiting = [];
  let head = 0;
  let pumpScheduled = false;
  function start(run) {
    if (batch) running = true;
    let messages;
    try {
      if (fetch !== null) {
        const fetched = fetch(run.id);
        run.texts = fetched[0];
        run.count = run.texts.length;
        run.buffer = fetched[1];
      }
      messages = decode(run.texts, run.first, run.count);
    } catch (error) {
      ended(run.id, [0, 'the messages could not be decoded: ' + reason(error)]);
      return;
    }
    if (run.buffer !== null) {
      for (const message of messages) {
        const range = message.value;
        message.value = range === null ? null : run.buffer.subarray(range[0], range[1]);
      }
    }
    let outcome;
    try {
      outcome = drive(messages);
    } catch (error) {
      outcome = [0, reason(error)];
    }
    report(run.id, outcome);
  }
  // A batch callback that returns at once ends its run inside `start`:
  // the loop below goes on to the next rather than nesting another.
  let pumping = false;
  function pump() {
    pumpScheduled = false;
    pumping = true;
    try {
      pumpWaiting();
    } finally {
      pumping = false;
    }
  }
  function pumpWaiting() {
    while (head < waiting.length) {
      // The running batch's end pumps again.
      if (running) return;
      const run = waiting[head];
      if (run === undefined) {
        head++;
        continue;
      }
      if (overSlice()) {
        pumpScheduled = true;
        setImmediate(pump);
        return;
      }
      waiting[head++] = undefined;
      start(run);
    }
    waiting.length = 0;
    head = 0;
  }
  return function receive(texts, counts, ids, payloads, afterPrevious) {
    let first = 0;
    for (let r = 0; r < ids.length; r++) {
      const buffer = payloads === null ? null : payloads[r];
      const run = { texts, first, count: counts[r], id: ids[r], buffer, afterPrevious: afterPrevious[r] };
      first += counts[r];
      if (run.afterPrevious && failed) {
        settle(run.id, [0]);
        continue;
      }
      // Handed over knowing every earlier outcome: start afresh.
      if (!run.afterPrevious) failed = false;
      waiting.push(run);
    }
    if (!pumpScheduled) pump();
  };
})"#;

/// A run waiting to cross.
struct Run {
    id: u32,
    encoded: EncodedDeliveries,
    /// To start only if every run handed over before it succeeds.
    after_previous: bool,
}

/// Runs waiting for the JavaScript thread, and the lanes awaiting their outcomes.
#[derive(Default)]
struct Mailbox {
    runs: WakeQueue<Run>,
    replies: Mutex<HashMap<u32, oneshot::Sender<DriveResult>>>,
    next_id: AtomicU32,
    /// Batch mode: runs announced to JavaScript by id, whose messages cross
    /// only when the run starts (`fetch`). A batch handed over ahead waits
    /// here rather than as strings in V8's young generation, which made
    /// every scavenge while the running batch was handled copy it too
    /// (event-loop p99 10.4 ms, against 8.6 before batches went ahead).
    held: Option<Mutex<HashMap<u32, EncodedDeliveries>>>,
}

impl Mailbox {
    /// Everything that arrived since the last wake-up, as `receive`'s arguments.
    fn take(&self) -> ReceiveArgs {
        let mut runs = self.runs.take();
        if let Some(held) = &self.held {
            let (mut counts, mut ids, mut after_previous) = (Vec::new(), Vec::new(), Vec::new());
            if let Ok(mut held) = held.lock() {
                for run in runs.drain(..) {
                    counts.push(0);
                    ids.push(run.id);
                    after_previous.push(run.after_previous);
                    held.insert(run.id, run.encoded);
                }
            }
            return FnArgs::from((Vec::new(), counts, ids, None, after_previous));
        }
        let mut texts = Vec::with_capacity(runs.len());
        let mut counts = Vec::with_capacity(runs.len());
        let mut ids = Vec::with_capacity(runs.len());
        let mut after_previous = Vec::with_capacity(runs.len());
        let raw = runs.iter().any(|run| run.encoded.payloads.is_some());
        let mut payloads = raw.then(|| Vec::with_capacity(runs.len()));
        for run in runs {
            counts.push(run.encoded.chunks.len() as u32);
            texts.extend(run.encoded.chunks.into_iter().map(JsonText));
            ids.push(run.id);
            after_previous.push(run.after_previous);
            if let Some(payloads) = payloads.as_mut() {
                payloads.push(run.encoded.payloads.map(Buffer::from));
            }
        }
        FnArgs::from((texts, counts, ids, payloads, after_previous))
    }

    /// A held run's messages, as its run starts.
    fn fetch(&self, id: u32) -> Option<Fetched> {
        let encoded = self.held.as_ref()?.lock().ok()?.remove(&id)?;
        Some(Fetched {
            texts: encoded.chunks.into_iter().map(JsonText).collect(),
            payloads: encoded.payloads.map(Buffer::from),
        })
    }

    fn settle(&self, id: u32, outcome: DriveResult) {
        // A run answered "not started" was never fetched.
        self.drop_held(id);
        let reply = self
            .replies
            .lock()
            .ok()
            .and_then(|mut replies| replies.remove(&id));
        if let Some(reply) = reply {
            // The lane stopped waiting only when the consumer is gone.
            let _ = reply.send(outcome);
        }
    }

    fn forget(&self, id: u32) {
        if let Ok(mut replies) = self.replies.lock() {
            replies.remove(&id);
        }
        self.drop_held(id);
    }

    fn drop_held(&self, id: u32) {
        if let Some(Ok(mut held)) = self.held.as_ref().map(Mutex::lock) {
            held.remove(&id);
        }
    }
}

type ReceiveArgs = FnArgs<(
    Vec<JsonText>,
    Vec<u32>,
    Vec<u32>,
    Option<Vec<Option<Buffer>>>,
    Vec<bool>,
)>;
type MakeReceiverArgs<'env> = FnArgs<(
    Unknown<'env>,
    bool,
    Unknown<'env>,
    Function<'env, (u32, Unknown<'env>), ()>,
    Option<Unknown<'env>>,
    Option<Function<'env, u32, Option<Fetched>>>,
)>;
type Wake = ThreadsafeFunction<(), (), ReceiveArgs, Status, false>;

/// The JavaScript callback as the core's [`MessageHandler`].
pub struct JsHandler {
    mailbox: Arc<Mailbox>,
    wake: Wake,
    batch: bool,
}

impl JsHandler {
    /// Wraps `callback` (already checked to be a function) for a consumer.
    pub fn new(
        env: &Env,
        callback: Unknown<'_>,
        batch: bool,
        yield_signal: YieldSignal,
        sender: Option<Unknown<'_>>,
    ) -> CoreResult<Self> {
        let failed = |error: napi::Error| js::invalid(format!("callback: {}", error.reason));
        let mailbox = Arc::new(Mailbox {
            held: batch.then(Mutex::default),
            ..Mailbox::default()
        });
        let yield_flag = YieldFlag::of(env, &yield_signal).map_err(failed)?;
        let settling = mailbox.clone();
        let settle: Function<'_, (u32, Unknown<'_>), ()> = env
            .create_function_from_closure("settle", move |context| {
                let id: u32 = context.get(0)?;
                let outcome: DriveResult = context.get(1)?;
                settling.settle(id, outcome);
                Ok(())
            })
            .map_err(failed)?;
        let fetch = if batch {
            let fetching = mailbox.clone();
            let fetch: Function<'_, u32, Option<Fetched>> = env
                .create_function_from_closure("fetch", move |context| {
                    let id: u32 = context.get(0)?;
                    Ok(fetching.fetch(id))
                })
                .map_err(failed)?;
            Some(fetch)
        } else {
            None
        };
        let make: Function<'_, MakeReceiverArgs<'_>, Unknown<'_>> =
            env.run_script(DRIVER).map_err(failed)?;
        let receive = make
            .call(FnArgs::from((
                callback, batch, yield_flag, settle, sender, fetch,
            )))
            .map_err(failed)?;
        // SAFETY: `makeReceiver` returns a function of this environment.
        let receive: Function<'_, ReceiveArgs, ()> =
            unsafe { Function::from_napi_value(env.raw(), receive.raw()) }.map_err(failed)?;
        let taking = mailbox.clone();
        let wake = receive
            .build_threadsafe_function::<()>()
            .callee_handled::<false>()
            .build_callback(move |_| Ok(taking.take()))
            .map_err(failed)?;
        Ok(JsHandler {
            mailbox,
            wake,
            batch,
        })
    }
}

impl MessageHandler for JsHandler {
    fn handle(&self, deliveries: Vec<Delivery>) -> HandlerFuture {
        self.hand_over(deliveries, false)
    }

    /// The driver runs batches one at a time and can hold the next back.
    fn queues_runs(&self) -> bool {
        self.batch
    }

    fn handle_after(&self, deliveries: Vec<Delivery>) -> HandlerFuture {
        self.hand_over(deliveries, true)
    }

    fn as_encoded(&self) -> Option<&dyn EncodedHandler> {
        Some(self)
    }
}

impl EncodedHandler for JsHandler {
    fn handle_encoded(&self, encoded: EncodedDeliveries, after_previous: bool) -> HandlerFuture {
        self.hand_over_encoded(encoded, after_previous)
    }
}

impl JsHandler {
    fn hand_over(&self, deliveries: Vec<Delivery>, after_previous: bool) -> HandlerFuture {
        self.hand_over_encoded(EncodedDeliveries::encode(&deliveries), after_previous)
    }

    fn hand_over_encoded(&self, encoded: EncodedDeliveries, after_previous: bool) -> HandlerFuture {
        let mailbox = self.mailbox.clone();
        let id = mailbox.next_id.fetch_add(1, Ordering::Relaxed);
        let (reply, outcome) = oneshot::channel();
        if let Ok(mut replies) = mailbox.replies.lock() {
            replies.insert(id, reply);
        }
        let woken = if mailbox.runs.push(Run {
            id,
            encoded,
            after_previous,
        }) {
            self.wake.call((), ThreadsafeFunctionCallMode::NonBlocking)
        } else {
            Status::Ok
        };
        Box::pin(async move {
            let failed =
                |message: String| Interrupted::Failed(HandlerFailure { index: 0, message });
            if woken != Status::Ok {
                mailbox.forget(id);
                return Err(failed(format!(
                    "the JavaScript callback cannot be called: {woken}"
                )));
            }
            match outcome.await {
                Ok(DriveResult::Done) => Ok(()),
                Ok(DriveResult::Yielded { index }) => Err(Interrupted::Yielded { index }),
                Ok(DriveResult::Failed { index, message }) => {
                    Err(Interrupted::Failed(HandlerFailure { index, message }))
                }
                Err(_) => Err(failed("the JavaScript callback is gone".to_string())),
            }
        })
    }
}

/// How the driver reads the core's [`YieldSignal`]: a one-byte `Uint8Array`
/// over the flag itself, so a check between two messages is a memory read
/// rather than a call into the addon; where the runtime refuses external
/// memory (Electron), a `shouldYield()` function.
struct YieldFlag;

impl YieldFlag {
    fn of<'env>(env: &'env Env, signal: &YieldSignal) -> napi::Result<Unknown<'env>> {
        let flag = signal.flag();
        let byte = flag.as_ptr().cast::<std::ffi::c_void>();
        let owner = Box::into_raw(Box::new(flag));
        let mut buffer = std::ptr::null_mut();
        // SAFETY: on the JavaScript thread; the byte belongs to the atomic
        // that `owner` keeps alive until V8 collects the buffer and calls
        // `release`, which reclaims `owner` exactly once.
        let status = unsafe {
            sys::napi_create_external_arraybuffer(
                env.raw(),
                byte,
                1,
                Some(Self::release),
                owner.cast(),
                &mut buffer,
            )
        };
        if status != sys::Status::napi_ok {
            // SAFETY: not handed to V8, so still ours to reclaim.
            drop(unsafe { Box::from_raw(owner) });
            let signal = signal.clone();
            let should_yield: Function<'_, (), bool> =
                env.create_function_from_closure("shouldYield", move |_| Ok(signal.is_raised()))?;
            return Ok(should_yield.to_unknown());
        }
        let mut view = std::ptr::null_mut();
        // SAFETY: as above, with the buffer just created.
        napi::check_status!(unsafe {
            sys::napi_create_typedarray(
                env.raw(),
                sys::TypedarrayType::uint8_array,
                1,
                buffer,
                0,
                &mut view,
            )
        })?;
        // SAFETY: a live value of `env`.
        Ok(unsafe { Unknown::from_raw_unchecked(env.raw(), view) })
    }

    unsafe extern "C" fn release(
        _env: sys::napi_env,
        _data: *mut std::ffi::c_void,
        owner: *mut std::ffi::c_void,
    ) {
        // SAFETY: `owner` is the box `of` leaked for this buffer, released once.
        drop(unsafe { Box::from_raw(owner.cast::<Arc<std::sync::atomic::AtomicBool>>()) });
    }
}

/// A held run's messages: `[texts, payloads]` (`payloads` a Buffer or null).
struct Fetched {
    texts: Vec<JsonText>,
    payloads: Option<Buffer>,
}

impl ToNapiValue for Fetched {
    unsafe fn to_napi_value(env: sys::napi_env, value: Self) -> napi::Result<sys::napi_value> {
        let mut pair = std::ptr::null_mut();
        // SAFETY: on the JavaScript thread of `env`, with values of `env`.
        unsafe {
            let texts = Vec::<JsonText>::to_napi_value(env, value.texts)?;
            let payloads = Option::<Buffer>::to_napi_value(env, value.payloads)?;
            napi::check_status!(sys::napi_create_array_with_length(env, 2, &mut pair))?;
            napi::check_status!(sys::napi_set_element(env, pair, 0, texts))?;
            napi::check_status!(sys::napi_set_element(env, pair, 1, payloads))?;
        }
        Ok(pair)
    }
}

/// An encoded chunk, handed to V8 as Latin-1 when it is ASCII (the common
/// case): the same characters, without UTF-8 decoding.
pub struct JsonText(pub(crate) Chunk);

impl ToNapiValue for JsonText {
    unsafe fn to_napi_value(env: sys::napi_env, value: Self) -> napi::Result<sys::napi_value> {
        let (bytes, ascii) = value.0.into_parts();
        let mut text = std::ptr::null_mut();
        // SAFETY: on the JavaScript thread; `bytes` outlives the call, which
        // copies them (invalid UTF-8, impossible for validated values, would
        // be replaced, not read out of bounds).
        napi::check_status!(unsafe {
            if ascii {
                sys::napi_create_string_latin1(
                    env,
                    bytes.as_ptr().cast(),
                    bytes.len() as isize,
                    &mut text,
                )
            } else {
                sys::napi_create_string_utf8(
                    env,
                    bytes.as_ptr().cast(),
                    bytes.len() as isize,
                    &mut text,
                )
            }
        })?;
        Ok(text)
    }
}

/// `null` when every message was handled; `[index, reason]` at the first
/// failure; `[index]` when it stopped early to report progress.
enum DriveResult {
    Done,
    Yielded { index: usize },
    Failed { index: usize, message: String },
}

impl FromNapiValue for DriveResult {
    unsafe fn from_napi_value(env: sys::napi_env, value: sys::napi_value) -> napi::Result<Self> {
        // SAFETY: `value` is a live value of `env`, on its thread.
        let value = unsafe { Unknown::from_napi_value(env, value) }?;
        if !value.is_array().unwrap_or(false) {
            return Ok(DriveResult::Done);
        }
        // SAFETY: as above.
        let failure = unsafe { Object::from_napi_value(env, value.raw()) }?;
        let index: f64 = failure.get_element(0)?;
        let index = index as usize;
        if failure.get_array_length()? < 2 {
            return Ok(DriveResult::Yielded { index });
        }
        let message: String = failure.get_element(1)?;
        Ok(DriveResult::Failed { index, message })
    }
}
