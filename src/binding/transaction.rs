//! Transactions for JavaScript: `producer.transaction(...)` and the sender an
//! exactly-once consumer hands to its callback. Reads arguments and calls
//! the core's [`Transaction`].

use crate::binding::js::{self, promise, rejected, CoreResult};
use crate::binding::producer::{RecordMetadata, Sender};
use crate::core::error::CoreError;
use crate::core::transaction::{ConsumerGroup, Transaction, TransactionOffset, TransactionScope};
use napi::bindgen_prelude::{FnArgs, FromNapiValue, Function, PromiseRaw, Unknown};
use napi::{Env, JsValue, ValueType};
use napi_derive::napi;
use std::cell::Cell;
use std::rc::Rc;
use std::sync::Arc;

/// Runs `fn(tx)` in a transaction begun by `begin`: commits when it
/// resolves (and resolves with its value), aborts when it throws (and
/// rejects with its error, carrying `abortError` if the abort failed too).
const RUN_IN_TRANSACTION: &str = r#"(function runInTransaction(begin, fn) {
  'use strict';
  return (async () => {
    const tx = await begin();
    let result;
    try {
      result = await fn(tx);
    } catch (error) {
      try {
        await tx.abort();
      } catch (abortError) {
        if (error !== null && typeof error === 'object') {
          try {
            error.abortError = abortError;
          } catch {}
        }
      }
      throw error;
    }
    await tx.commit();
    return result;
  })();
})"#;

/// Partitions' offsets for `sendOffsets`, as kafkajs takes them.
#[napi(object)]
pub struct TransactionOffsets {
    /// The consumer group whose offsets the transaction commits.
    pub consumer_group_id: String,
    pub topics: Vec<TopicOffsets>,
}

#[napi(object)]
pub struct TopicOffsets {
    pub topic: String,
    pub partitions: Vec<PartitionOffset>,
}

#[napi(object)]
pub struct PartitionOffset {
    pub partition: i32,
    /// The next offset to consume: the last processed one plus 1.
    #[napi(ts_type = "number | string")]
    pub offset: String,
}

type Shared = Arc<tokio::sync::Mutex<Option<Transaction>>>;

/// `runInTransaction(begin, fn)`'s arguments.
type RunnerArgs<'env> = FnArgs<(Function<'env, (), Unknown<'env>>, Unknown<'env>)>;

/// An open transaction: what is sent through it, and the offsets given to
/// `sendOffsets`, become visible to `read_committed` readers on commit, and
/// never if it aborts.
#[napi]
pub struct KafkaTransaction {
    sender: Sender,
    scope: TransactionScope,
    /// `None` for the sender an exactly-once consumer hands its callback:
    /// that consumer begins and ends the transactions itself.
    transaction: Option<Shared>,
    active: Rc<Cell<bool>>,
}

impl KafkaTransaction {
    /// The sender for an exactly-once consumer's callback: sends go into
    /// whichever transaction the consumer has open.
    pub fn for_handler(sender: Sender) -> Self {
        KafkaTransaction {
            sender,
            scope: TransactionScope::Current,
            transaction: None,
            active: Rc::new(Cell::new(true)),
        }
    }

    /// In an exactly-once consumer, the commit waits for every send of the
    /// transaction, and a failed one aborts it (and the run is retried): a
    /// callback need not await its sends, so an unawaited rejection is
    /// marked handled rather than reported as unhandled (which would end
    /// the process by Node's default).
    fn awaited_by_commit<'env, T: FromNapiValue>(
        &self,
        sent: PromiseRaw<'env, T>,
    ) -> napi::Result<PromiseRaw<'env, T>> {
        if self.transaction.is_none() {
            sent.catch(|_: napi::bindgen_prelude::CallbackContext<Unknown<'_>>| Ok(()))?;
        }
        Ok(sent)
    }

    fn owned(&self) -> CoreResult<Shared> {
        self.transaction.clone().ok_or_else(|| {
            CoreError::TransactionState(
                "the consumer commits or aborts its transactions itself".into(),
            )
        })
    }
}

#[napi]
impl KafkaTransaction {
    /// Sends messages to one topic within the transaction.
    #[napi(
        catch_unwind,
        ts_args_type = "record: ProducerRecord",
        ts_return_type = "Promise<RecordMetadata[]>"
    )]
    pub fn send<'env>(
        &self,
        env: &'env Env,
        record: Unknown<'env>,
    ) -> napi::Result<PromiseRaw<'env, Vec<RecordMetadata>>> {
        self.awaited_by_commit(self.sender.send(env, &record, Some(self.scope))?)
    }

    /// Sends to several topics within the transaction.
    #[napi(
        catch_unwind,
        ts_args_type = "batch: ProducerBatch",
        ts_return_type = "Promise<RecordMetadata[]>"
    )]
    pub fn send_batch<'env>(
        &self,
        env: &'env Env,
        batch: Unknown<'env>,
    ) -> napi::Result<PromiseRaw<'env, Vec<RecordMetadata>>> {
        self.awaited_by_commit(self.sender.send_batch(env, &batch, Some(self.scope))?)
    }

    /// Sends any payload to any topic within the transaction (strings and
    /// Buffers as they are, anything else as JSON).
    #[napi(
        catch_unwind,
        ts_args_type = "topic: string, payload: unknown, options?: SendMessageOptions",
        ts_return_type = "Promise<RecordMetadata>"
    )]
    pub fn send_message<'env>(
        &self,
        env: &'env Env,
        topic: Unknown<'env>,
        payload: Unknown<'env>,
        options: Option<Unknown<'env>>,
    ) -> napi::Result<PromiseRaw<'env, RecordMetadata>> {
        let sent = self
            .sender
            .send_message(env, &topic, &payload, options, Some(self.scope))?;
        self.awaited_by_commit(sent)
    }

    /// Commits these consumer offsets (the next offset to read, per
    /// partition) if, and only if, the transaction commits.
    #[napi(
        catch_unwind,
        ts_args_type = "offsets: TransactionOffsets",
        ts_return_type = "Promise<void>"
    )]
    pub fn send_offsets<'env>(
        &self,
        env: &'env Env,
        offsets: Unknown<'env>,
    ) -> napi::Result<PromiseRaw<'env, ()>> {
        let read = || -> CoreResult<(Shared, String, Vec<TransactionOffset>)> {
            let shared = self.owned()?;
            let (group, offsets) = read_offsets(&offsets)?;
            Ok((shared, group, offsets))
        };
        let (shared, group, offsets) = match read() {
            Ok(arguments) => arguments,
            Err(error) => return rejected(env, error),
        };
        promise(
            env,
            async move {
                let guard = shared.lock().await;
                let transaction = guard.as_ref().ok_or_else(ended)?;
                transaction
                    .send_offsets(offsets, ConsumerGroup::Id(group))
                    .await
            },
            |_, ()| Ok(()),
        )
    }

    /// Makes everything sent in the transaction visible, with its offsets.
    /// When the cluster refuses, or a send of the transaction failed, the
    /// transaction is aborted and the promise rejects with why. When it runs
    /// out of time it rejects with `ERR_KAFKA_TIMED_OUT`: it may yet commit,
    /// and is completed before the next transaction begins.
    /// `producer.transaction(fn)` calls it when `fn` resolves.
    #[napi(catch_unwind, ts_return_type = "Promise<void>")]
    pub fn commit<'env>(&self, env: &'env Env) -> napi::Result<PromiseRaw<'env, ()>> {
        self.end(env, true)
    }

    /// Discards everything sent in the transaction, and its offsets.
    /// `producer.transaction(fn)` calls it when `fn` throws.
    #[napi(catch_unwind, ts_return_type = "Promise<void>")]
    pub fn abort<'env>(&self, env: &'env Env) -> napi::Result<PromiseRaw<'env, ()>> {
        self.end(env, false)
    }

    /// `false` once `commit` or `abort` was called.
    #[napi(getter, catch_unwind)]
    pub fn is_active(&self) -> bool {
        self.active.get()
    }
}

impl KafkaTransaction {
    fn end<'env>(&self, env: &'env Env, commit: bool) -> napi::Result<PromiseRaw<'env, ()>> {
        let shared = match self.owned() {
            Ok(shared) => shared,
            Err(error) => return rejected(env, error),
        };
        if !self.active.replace(false) {
            return rejected(env, ended());
        }
        promise(
            env,
            async move {
                let transaction = shared.lock().await.take().ok_or_else(ended)?;
                if commit {
                    transaction.commit().await
                } else {
                    transaction.abort().await
                }
            },
            |_, ()| Ok(()),
        )
    }
}

fn ended() -> CoreError {
    CoreError::TransactionState("this transaction already ended".into())
}

/// `producer.transaction()`: begins a transaction and resolves with it; with
/// a function, runs it inside the transaction and commits or aborts. (The
/// promise's value type is the caller's: `()` stands for it here.)
pub fn transaction<'env>(
    env: &'env Env,
    sender: &Sender,
    run: Option<Unknown<'env>>,
) -> napi::Result<PromiseRaw<'env, ()>> {
    let run = js::as_option(run);
    if let Some(run) = &run {
        if !matches!(run.get_type(), Ok(ValueType::Function)) {
            return rejected(
                env,
                js::invalid(format!(
                    "the argument of transaction() must be a function (got {})",
                    js::type_name(run)
                )),
            );
        }
    }
    let beginning = sender.clone();
    let begin = move |env: &Env| -> napi::Result<napi::sys::napi_value> {
        // Asks for the producer's turn now, so transactions begin in call order.
        let beginning_transaction = beginning.producer().begin_transaction();
        let sender = beginning.clone();
        let begun = promise(
            env,
            beginning_transaction,
            move |_, transaction: Transaction| {
                Ok(KafkaTransaction {
                    scope: transaction.scope(),
                    sender,
                    transaction: Some(Arc::new(tokio::sync::Mutex::new(Some(transaction)))),
                    active: Rc::new(Cell::new(true)),
                })
            },
        )?;
        Ok(begun.raw())
    };
    let Some(run) = run else {
        let begun = begin(env)?;
        return Ok(PromiseRaw::new(env.raw(), begun));
    };
    let begin: Function<'_, (), Unknown<'_>> =
        env.create_function_from_closure("beginTransaction", move |context| {
            let raw = begin(context.env)?;
            // SAFETY: a promise just created in this environment.
            unsafe { Unknown::from_napi_value(context.env.raw(), raw) }
        })?;
    let runner: Function<'_, RunnerArgs<'_>, Unknown<'_>> = env.run_script(RUN_IN_TRANSACTION)?;
    let running = runner.call(FnArgs::from((begin, run)))?;
    Ok(PromiseRaw::new(env.raw(), running.raw()))
}

fn read_offsets(value: &Unknown<'_>) -> CoreResult<(String, Vec<TransactionOffset>)> {
    let what = "offsets";
    let object = js::object(value, what)?;
    js::reject_unknown_keys(&object, what, &["consumerGroupId", "topics"])?;
    let group = js::optional(&object, "consumerGroupId", what, js::string)?
        .filter(|group| !group.trim().is_empty())
        .ok_or_else(|| js::invalid("offsets.consumerGroupId is required"))?;
    let topics = js::property(&object, "topics", what)?
        .ok_or_else(|| js::invalid("offsets.topics is required"))?;
    let mut offsets = Vec::new();
    for (index, topic) in js::array(&topics, "offsets.topics")?.iter().enumerate() {
        let what = format!("offsets.topics[{index}]");
        let topic = js::object(topic, &what)?;
        js::reject_unknown_keys(&topic, &what, &["topic", "partitions"])?;
        let name = js::optional(&topic, "topic", &what, js::string)?
            .ok_or_else(|| js::invalid(format!("{what}.topic is required")))?;
        let partitions = js::property(&topic, "partitions", &what)?
            .ok_or_else(|| js::invalid(format!("{what}.partitions is required")))?;
        for (index, partition) in js::array(&partitions, &format!("{what}.partitions"))?
            .iter()
            .enumerate()
        {
            let what = format!("{what}.partitions[{index}]");
            let entry = js::object(partition, &what)?;
            js::reject_unknown_keys(&entry, &what, &["partition", "offset"])?;
            let partition = js::optional(&entry, "partition", &what, |value, what| {
                js::integer(value, what, 0, i64::from(i32::MAX))
            })?
            .ok_or_else(|| js::invalid(format!("{what}.partition is required")))?;
            let offset = js::optional(&entry, "offset", &what, read_offset)?
                .ok_or_else(|| js::invalid(format!("{what}.offset is required")))?;
            offsets.push(TransactionOffset {
                topic: name.clone(),
                partition: partition as i32,
                offset,
            });
        }
    }
    Ok((group, offsets))
}

/// An offset as a non-negative integer number or numeric string (kafkajs
/// passes offsets as strings).
fn read_offset(value: &Unknown<'_>, what: &str) -> CoreResult<i64> {
    match value.get_type() {
        Ok(ValueType::String) => {
            let text = js::string(value, what)?;
            text.trim()
                .parse::<i64>()
                .ok()
                .filter(|offset| *offset >= 0)
                .ok_or_else(|| {
                    js::invalid(format!(
                        "{what} must be a non-negative integer (got {text:?})"
                    ))
                })
        }
        _ => js::integer(value, what, 0, 9_007_199_254_740_991),
    }
}
