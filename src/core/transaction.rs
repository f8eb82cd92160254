//! Kafka transactions on a producer with a `transactional.id`: what is sent
//! inside one, and the consumer offsets sent with it, become visible to
//! `read_committed` readers together, or not at all.
//!
//! One transaction at a time per producer (librdkafka's rule): a
//! [`Transaction`] holds the producer's turn from `begin` until it is
//! committed or aborted, and the next one waits for it; turns are given in
//! the order they were asked for. A commit or abort that runs out of time is
//! resumed (librdkafka's rule, too) before the next transaction begins. The blocking
//! librdkafka calls (init, send offsets, commit, abort) run on tokio's
//! blocking pool.

use crate::core::error::{CoreError, Result};
use crate::core::producer::Producer;
use rdkafka::consumer::ConsumerGroupMetadata;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::Producer as _;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use std::collections::VecDeque;
use std::ffi::CString;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// A commit retried with less time than this left would only queue work that
/// outlives the call (see `Transaction::commit`).
const COMMIT_RETRY_FLOOR: Duration = Duration::from_millis(100);
/// Pause before retrying a commit that librdkafka refused as retriable.
const COMMIT_RETRY_PAUSE: Duration = Duration::from_millis(20);

/// librdkafka's default `transaction.timeout.ms`, which also bounds how long
/// commit and abort may take here.
pub const DEFAULT_TRANSACTION_TIMEOUT_MS: u64 = 60_000;

/// The transactional side of a producer.
pub(crate) struct Transactions {
    turns: Arc<Turns>,
    /// `transactional.id` registered with the cluster (once per producer).
    initialised: AtomicBool,
    /// A commit or abort that ran out of time: librdkafka must be asked
    /// for the same again before anything else.
    unfinished: Mutex<Option<Ending>>,
    /// The open transaction's id, 0 when none is open: sends check it.
    open: AtomicU64,
    next_id: AtomicU64,
    /// Set once librdkafka reports a fatal error (such as being fenced by a
    /// newer instance with the same `transactional.id`): the producer can no
    /// longer transact, and every later transaction fails with it.
    fatal: Mutex<Option<CoreError>>,
    /// How long init, send offsets, commit and abort may each take.
    timeout: Duration,
    /// The first send of the open transaction that failed to be handed
    /// over: the transaction can then only abort.
    failed_send: Mutex<Option<CoreError>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ending {
    Commit,
    Abort,
}

impl Ending {
    fn name(self) -> &'static str {
        match self {
            Ending::Commit => "commit",
            Ending::Abort => "abort",
        }
    }
}

/// Turns at transacting, first asked, first served.
#[derive(Default)]
struct Turns {
    queue: Mutex<TurnQueue>,
}

#[derive(Default)]
struct TurnQueue {
    taken: bool,
    waiting: VecDeque<oneshot::Sender<Turn>>,
}

/// The right to transact; the next in line gets it when this is dropped.
pub(crate) struct Turn {
    turns: Option<Arc<Turns>>,
}

impl Turns {
    /// Asks for a turn now (so that the order of requests is the order of
    /// the calls); the receiver gets it when every earlier one is done.
    fn request(self: &Arc<Self>) -> oneshot::Receiver<Turn> {
        let (sender, receiver) = oneshot::channel();
        let free = match self.queue.lock() {
            Ok(mut queue) if queue.taken => {
                queue.waiting.push_back(sender);
                None
            }
            Ok(mut queue) => {
                queue.taken = true;
                Some(sender)
            }
            Err(_) => None,
        };
        if let Some(sender) = free {
            // A receiver already gone drops the turn, which passes it on.
            let _ = sender.send(Turn {
                turns: Some(self.clone()),
            });
        }
        receiver
    }

    fn pass_on(self: &Arc<Self>) {
        loop {
            let next = match self.queue.lock() {
                Ok(mut queue) => match queue.waiting.pop_front() {
                    Some(next) => next,
                    None => {
                        queue.taken = false;
                        return;
                    }
                },
                Err(_) => return,
            };
            let turn = Turn {
                turns: Some(self.clone()),
            };
            match next.send(turn) {
                Ok(()) => return,
                // That caller stopped waiting: the next one's turn.
                Err(mut unwanted) => {
                    unwanted.turns = None;
                }
            }
        }
    }
}

impl Drop for Turn {
    fn drop(&mut self) {
        if let Some(turns) = self.turns.take() {
            turns.pass_on();
        }
    }
}

impl Transactions {
    pub(crate) fn new(timeout: Duration) -> Self {
        Transactions {
            turns: Arc::default(),
            initialised: AtomicBool::new(false),
            unfinished: Mutex::new(None),
            open: AtomicU64::new(0),
            next_id: AtomicU64::new(0),
            fatal: Mutex::new(None),
            timeout,
            failed_send: Mutex::new(None),
        }
    }

    pub(crate) fn poison(&self, error: &CoreError) {
        if let Ok(mut failed) = self.failed_send.lock() {
            failed.get_or_insert_with(|| error.clone());
        }
    }

    fn set_unfinished(&self, ending: Option<Ending>) {
        if let Ok(mut unfinished) = self.unfinished.lock() {
            *unfinished = ending;
        }
    }

    fn unfinished(&self) -> Option<Ending> {
        self.unfinished
            .lock()
            .ok()
            .and_then(|unfinished| *unfinished)
    }

    fn take_failed_send(&self) -> Option<CoreError> {
        self.failed_send
            .lock()
            .ok()
            .and_then(|mut failed| failed.take())
    }

    /// Whether a send for `scope` may go out now.
    pub(crate) fn check_send(&self, scope: Option<TransactionScope>) -> Result<()> {
        let open = self.open.load(Ordering::Acquire);
        match scope {
            None => Err(CoreError::TransactionState(
                "this producer has a transactionalId: send inside producer.transaction(async (tx) => ...) with tx.send".into(),
            )),
            Some(_) if open == 0 => Err(CoreError::TransactionState(
                "no transaction is open: this transaction already ended (a send after commit or abort)".into(),
            )),
            Some(TransactionScope::Id(id)) if id != open => Err(CoreError::TransactionState(
                "this transaction already ended (a send after commit or abort)".into(),
            )),
            Some(_) => Ok(()),
        }
    }

    fn fatal(&self) -> Option<CoreError> {
        self.fatal.lock().ok().and_then(|fatal| fatal.clone())
    }

    fn set_fatal(&self, error: &CoreError) {
        if let Ok(mut fatal) = self.fatal.lock() {
            fatal.get_or_insert_with(|| error.clone());
        }
    }
}

/// Which transaction a send belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransactionScope {
    /// The transaction with this id; a send after it ended is refused.
    Id(u64),
    /// Whichever transaction is open: for a sender handed to a handler by a
    /// consumer that opens and ends the transactions itself.
    Current,
}

/// The consumer group whose offsets a transaction commits.
pub enum ConsumerGroup {
    /// Only the group id (as kafkajs' `sendOffsets` takes it). The broker
    /// cannot then fence a consumer that lost its partitions in a rebalance.
    Id(String),
    /// A live consumer's group metadata (generation and member id included),
    /// which lets the broker refuse offsets from a consumer that is no longer
    /// the partition's owner (KIP-447).
    Metadata(ConsumerGroupMetadata),
}

/// An offset to commit: `offset` is the next one to consume.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransactionOffset {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
}

/// A transaction failure as librdkafka classifies it.
#[derive(Debug, Clone, Copy)]
struct Failure {
    code: RDKafkaErrorCode,
    fatal: bool,
    requires_abort: bool,
    retriable: bool,
}

impl Failure {
    fn of(error: &KafkaError) -> Failure {
        match error {
            KafkaError::Transaction(error) => Failure {
                code: error.code(),
                fatal: error.is_fatal(),
                requires_abort: error.txn_requires_abort(),
                retriable: error.is_retriable(),
            },
            other => Failure {
                code: other.rdkafka_error_code().unwrap_or(RDKafkaErrorCode::Fail),
                fatal: false,
                requires_abort: false,
                retriable: false,
            },
        }
    }

    fn into_error(self, context: impl Into<String>) -> CoreError {
        let mut error = CoreError::from_code(context, self.code);
        if let CoreError::Kafka { fatal, .. } = &mut error {
            *fatal = self.fatal;
        }
        error
    }
}

impl Producer {
    /// Starts a transaction, waiting for the previous one of this producer
    /// to end: transactions begin in the order of the calls. The first also
    /// registers the `transactional.id` with the cluster, which fences any
    /// older instance that used it and aborts whatever that one left open.
    pub fn begin_transaction(
        self: &Arc<Self>,
    ) -> impl Future<Output = Result<Transaction>> + Send + 'static {
        let producer = self.clone();
        // Asked for here, in the caller's order, not when the future first runs.
        let requested = self
            .transactions()
            .map(|transactions| transactions.turns.request());
        async move {
            let turn = requested?
                .await
                .map_err(|_| CoreError::Internal("the transaction queue was dropped".into()))?;
            producer.begin_in_turn(turn).await
        }
    }

    async fn begin_in_turn(self: &Arc<Self>, turn: Turn) -> Result<Transaction> {
        let transactions = self.transactions()?;
        if let Some(fatal) = transactions.fatal() {
            return Err(fatal);
        }
        let handle = self.current_handle()?;
        if !transactions.initialised.load(Ordering::Acquire) {
            let timeout = transactions.timeout;
            self.blocking(move |handle| {
                handle
                    .init_transactions(timeout)
                    .map_err(|e| Failure::of(&e))
            })
            .await?
            .map_err(|failure| self.transaction_error("cannot initialise transactions", failure))?;
            transactions.initialised.store(true, Ordering::Release);
        }
        let resumed = self.finish_unfinished().await?;
        let began = match (handle.begin_transaction(), resumed) {
            // librdkafka can return a resumed commit or abort before its
            // last step ran, the one that lets a transaction begin again
            // (its stale result answers that step's request); the state is
            // then "not acked", and the same call once more completes it.
            (Err(error), Some(ending)) if Failure::of(&error).code == RDKafkaErrorCode::State => {
                tracing::debug!(
                    "the resumed {} left the transaction unacknowledged; completing it",
                    ending.name()
                );
                self.end_unacknowledged(ending).await?;
                handle.begin_transaction()
            }
            (began, _) => began,
        };
        began.map_err(|error| {
            self.transaction_error("cannot begin a transaction", Failure::of(&error))
        })?;
        let id = transactions.next_id.fetch_add(1, Ordering::AcqRel) + 1;
        transactions.take_failed_send();
        transactions.open.store(id, Ordering::Release);
        Ok(Transaction {
            producer: self.clone(),
            turn: Some(turn),
            id,
        })
    }

    /// Calls a commit or abort that librdkafka reported done once more, to
    /// complete its acknowledgement (see `begin_in_turn`).
    async fn end_unacknowledged(&self, ending: Ending) -> Result<()> {
        self.call_ending(ending).await?.map_err(|failure| {
            let context = format!("the previous transaction's {} failed", ending.name());
            self.transaction_error(&context, failure)
        })
    }

    /// librdkafka's commit or abort of the current transaction (a new call,
    /// or the resumption of one that ran out of time), off the runtime.
    async fn call_ending(&self, ending: Ending) -> Result<std::result::Result<(), Failure>> {
        let timeout = self.transactions()?.timeout;
        self.blocking(move |handle| {
            match ending {
                Ending::Commit => handle.commit_transaction(timeout),
                Ending::Abort => handle.abort_transaction(timeout),
            }
            .map_err(|error| Failure::of(&error))
        })
        .await
    }

    /// Resumes a commit or abort of an earlier transaction that ran out of
    /// time: librdkafka accepts nothing else until it completes. Returns the
    /// ending it completed, if any.
    async fn finish_unfinished(&self) -> Result<Option<Ending>> {
        let transactions = self.transactions()?;
        let mut completed = None;
        while let Some(ending) = transactions.unfinished() {
            let timeout = transactions.timeout;
            match self.call_ending(ending).await? {
                Ok(()) => {
                    transactions.set_unfinished(None);
                    completed = Some(ending);
                }
                Err(failure) if failure.retriable && !failure.requires_abort => {
                    return Err(CoreError::TimedOut(format!(
                        "the previous transaction's {} has still not completed after {} ms (it is resumed before the next transaction)",
                        ending.name(),
                        timeout.as_millis()
                    )));
                }
                Err(failure) if ending == Ending::Commit && failure.requires_abort => {
                    transactions.set_unfinished(Some(Ending::Abort));
                }
                Err(failure) => {
                    transactions.set_unfinished(None);
                    let context = format!("the previous transaction's {} failed", ending.name());
                    return Err(self.transaction_error(&context, failure));
                }
            }
        }
        Ok(completed)
    }

    fn transactions(&self) -> Result<&Transactions> {
        self.transactional_state().ok_or_else(|| {
            CoreError::invalid_config(
                "transactionalId",
                "transactions need a producer created with a transactionalId",
            )
        })
    }

    /// Wraps a librdkafka transaction error, remembering a fatal one.
    fn transaction_error(&self, context: &str, failure: Failure) -> CoreError {
        let error = failure.into_error(context);
        if failure.fatal {
            if let Some(transactions) = self.transactional_state() {
                transactions.set_fatal(&error);
            }
        }
        error
    }
}

/// An open transaction. Commit or abort it; dropped while open, it is
/// aborted in the background (and the next transaction waits for that).
pub struct Transaction {
    producer: Arc<Producer>,
    turn: Option<Turn>,
    id: u64,
}

impl Transaction {
    pub fn id(&self) -> u64 {
        self.id
    }

    pub fn scope(&self) -> TransactionScope {
        TransactionScope::Id(self.id)
    }

    pub fn producer(&self) -> &Arc<Producer> {
        &self.producer
    }

    fn transactions(&self) -> Result<&Transactions> {
        self.producer.transactions()
    }

    fn ensure_open(&self) -> Result<()> {
        let transactions = self.transactions()?;
        if self.turn.is_none() || transactions.open.load(Ordering::Acquire) != self.id {
            return Err(CoreError::TransactionState(
                "this transaction already ended".into(),
            ));
        }
        Ok(())
    }

    /// The error of a send of this transaction that could not be handed
    /// over, if any: the transaction cannot commit then.
    pub fn failed_send(&self) -> Option<CoreError> {
        let transactions = self.transactions().ok()?;
        transactions
            .failed_send
            .lock()
            .ok()
            .and_then(|failed| failed.clone())
    }

    /// Adds consumer offsets to the transaction: they are committed for the
    /// group if, and only if, the transaction commits.
    pub async fn send_offsets(
        &self,
        offsets: Vec<TransactionOffset>,
        group: ConsumerGroup,
    ) -> Result<()> {
        self.ensure_open()?;
        if offsets.is_empty() {
            return Ok(());
        }
        let mut list = TopicPartitionList::with_capacity(offsets.len());
        for offset in &offsets {
            if offset.offset < 0 {
                return Err(CoreError::invalid_arg(format!(
                    "the offset of {}[{}] must be at least 0 (got {})",
                    offset.topic, offset.partition, offset.offset
                )));
            }
            list.add_partition_offset(
                &offset.topic,
                offset.partition,
                Offset::Offset(offset.offset),
            )
            .map_err(|error| CoreError::kafka("invalid offset", &error))?;
        }
        let timeout = self.transactions()?.timeout;
        let outcome = self
            .producer
            .blocking(move |handle| match &group {
                ConsumerGroup::Metadata(metadata) => handle
                    .send_offsets_to_transaction(&list, metadata, timeout)
                    .map_err(|error| Failure::of(&error)),
                ConsumerGroup::Id(group_id) => {
                    send_offsets_for_group_id(handle.client(), &list, group_id, timeout)
                }
            })
            .await?;
        outcome.map_err(|failure| {
            self.producer
                .transaction_error("cannot add the offsets to the transaction", failure)
        })
    }

    /// Commits: waits for every message sent in the transaction to be
    /// acknowledged, then makes them and the offsets visible. When the
    /// cluster refuses, the transaction is aborted and the error returned.
    /// When the commit runs out of time (`ERR_KAFKA_TIMED_OUT`), it may yet
    /// succeed: it is resumed before the next transaction begins.
    pub async fn commit(mut self) -> Result<()> {
        let transactions = self.transactions()?;
        self.ensure_open()?;
        transactions.open.store(0, Ordering::Release);
        if let Some(failed) = transactions.take_failed_send() {
            self.abort_now().await?;
            return Err(failed.aborted());
        }
        let timeout = transactions.timeout;
        let deadline = Instant::now() + timeout;
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            let outcome = self
                .producer
                .blocking(move |handle| {
                    handle
                        .commit_transaction(remaining)
                        .map_err(|error| Failure::of(&error))
                })
                .await?;
            let Err(failure) = outcome else {
                self.turn = None;
                return Ok(());
            };
            if failure.retriable && !failure.requires_abort {
                // librdkafka's own wait running out is final for this call;
                // other retriable refusals are tried again while time is left.
                // A call with almost no time left only queues one more step
                // that runs after the call returned, racing the resumed commit.
                let out_of_time = failure.code == RDKafkaErrorCode::OperationTimedOut
                    || deadline.saturating_duration_since(Instant::now()) < COMMIT_RETRY_FLOOR;
                if !out_of_time {
                    tokio::time::sleep(COMMIT_RETRY_PAUSE).await;
                    continue;
                }
                transactions.set_unfinished(Some(Ending::Commit));
                self.turn = None;
                return Err(CoreError::TimedOut(format!(
                    "the transaction's commit did not complete within {} ms ({}): it may yet commit, and is resumed before the next transaction",
                    timeout.as_millis(),
                    crate::core::error::librdkafka_error_name(failure.code)
                )));
            }
            let error = self
                .producer
                .transaction_error("the transaction could not be committed", failure);
            if failure.fatal {
                self.turn = None;
                return Err(error);
            }
            // The cluster refused: abort, so that the producer can go on,
            // and report why the commit failed (not how the abort went).
            return match self.abort_now().await {
                Ok(()) => Err(error.aborted()),
                Err(abort_error) => {
                    tracing::warn!(
                        "after a failed commit ({error}), the abort failed too: {abort_error}"
                    );
                    Err(error)
                }
            };
        }
    }

    /// Aborts: nothing sent in the transaction becomes visible to
    /// `read_committed` readers, and its offsets are not committed.
    pub async fn abort(mut self) -> Result<()> {
        self.ensure_open()?;
        self.abort_now().await
    }

    async fn abort_now(&mut self) -> Result<()> {
        let transactions = self.transactions()?;
        transactions.open.store(0, Ordering::Release);
        let timeout = transactions.timeout;
        let outcome = self
            .producer
            .blocking(move |handle| {
                handle
                    .abort_transaction(timeout)
                    .map_err(|error| Failure::of(&error))
            })
            .await;
        let outcome = match outcome {
            Ok(outcome) => outcome,
            Err(error) => {
                self.turn = None;
                return Err(error);
            }
        };
        let result = match outcome {
            Ok(()) => Ok(()),
            Err(failure) if failure.retriable => {
                transactions.set_unfinished(Some(Ending::Abort));
                Err(CoreError::TimedOut(format!(
                    "the transaction's abort did not complete within {} ms: it is resumed before the next transaction (the cluster also aborts it after transactionTimeoutMs)",
                    timeout.as_millis()
                )))
            }
            Err(failure) => Err(self
                .producer
                .transaction_error("the transaction could not be aborted", failure)),
        };
        self.turn = None;
        result
    }
}

impl Drop for Transaction {
    fn drop(&mut self) {
        let Some(turn) = self.turn.take() else {
            return;
        };
        let Ok(transactions) = self.producer.transactions() else {
            return;
        };
        transactions.open.store(0, Ordering::Release);
        let Ok(handle) = self.producer.current_handle() else {
            return;
        };
        let timeout = transactions.timeout;
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let producer = self.producer.clone();
        // The turn moves along, so the next transaction starts only after
        // this one is aborted (or known to need resuming).
        runtime.spawn_blocking(move || {
            let _turn = turn;
            if let Err(error) = handle.abort_transaction(timeout) {
                tracing::warn!("could not abort an abandoned transaction: {error}");
                if Failure::of(&error).retriable {
                    if let Some(transactions) = producer.transactional_state() {
                        transactions.set_unfinished(Some(Ending::Abort));
                    }
                }
            }
        });
    }
}

/// `rd_kafka_send_offsets_to_transaction` for a group known only by its id:
/// rdkafka exposes group metadata only from a live consumer.
fn send_offsets_for_group_id(
    client: &rdkafka::client::Client<crate::core::delivery::DeliveryContext>,
    offsets: &TopicPartitionList,
    group_id: &str,
    timeout: Duration,
) -> std::result::Result<(), Failure> {
    let Ok(group_id) = CString::new(group_id) else {
        return Err(Failure {
            code: RDKafkaErrorCode::InvalidArgument,
            fatal: false,
            requires_abort: false,
            retriable: false,
        });
    };
    let timeout_ms = i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX);
    // SAFETY: the metadata is created from a valid C string and destroyed
    // after the call; librdkafka copies what it needs from it and from the
    // offsets list, which both outlive the call. The returned error object is
    // read, then destroyed, exactly once.
    unsafe {
        let metadata = rdkafka::bindings::rd_kafka_consumer_group_metadata_new(group_id.as_ptr());
        let error = rdkafka::bindings::rd_kafka_send_offsets_to_transaction(
            client.native_ptr(),
            offsets.ptr(),
            metadata,
            timeout_ms,
        );
        rdkafka::bindings::rd_kafka_consumer_group_metadata_destroy(metadata);
        if error.is_null() {
            return Ok(());
        }
        let failure = Failure {
            code: RDKafkaErrorCode::from(rdkafka::bindings::rd_kafka_error_code(error)),
            fatal: rdkafka::bindings::rd_kafka_error_is_fatal(error) != 0,
            retriable: rdkafka::bindings::rd_kafka_error_is_retriable(error) != 0,
            requires_abort: rdkafka::bindings::rd_kafka_error_txn_requires_abort(error) != 0,
        };
        rdkafka::bindings::rd_kafka_error_destroy(error);
        Err(failure)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::logging::{LogLevel, LogRecord, LogSink, StderrSink};
    use crate::core::producer::{DeliveryReport, OutgoingMessage, ProducerOptions};
    use rdkafka::mocking::MockCluster;

    fn transactional(brokers: &str, id: &str) -> Arc<Producer> {
        transactional_timing_out(brokers, id, Duration::from_secs(10))
    }

    fn transactional_timing_out(brokers: &str, id: &str, timeout: Duration) -> Arc<Producer> {
        Producer::new(
            transactional_options(brokers, id, timeout),
            Arc::new(StderrSink),
        )
        .expect("producer")
    }

    fn transactional_options(brokers: &str, id: &str, timeout: Duration) -> ProducerOptions {
        let mut options = ProducerOptions::default();
        options.client.brokers = Some(vec![brokers.to_string()]);
        options.transactional_id = Some(id.to_string());
        options.transaction_timeout = Some(timeout);
        options
    }

    /// Keeps every line librdkafka logged: with `debug=eos`, its own account
    /// of each transactional API call. Shown if the test fails (see
    /// [`ShownOnPanic`]).
    #[derive(Default)]
    struct KeptLog(Mutex<Vec<String>>);

    impl KeptLog {
        fn lines(&self) -> Vec<String> {
            self.0.lock().map(|lines| lines.clone()).unwrap_or_default()
        }
    }

    impl LogSink for KeptLog {
        fn log(&self, record: LogRecord) {
            if let Ok(mut lines) = self.0.lock() {
                lines.push(record.message);
            }
        }
    }

    /// Prints the lines of a [`KeptLog`] when the test panics: a rare failure
    /// in CI is then explained by librdkafka's own `eos` lines.
    struct ShownOnPanic(Arc<KeptLog>);

    impl Drop for ShownOnPanic {
        fn drop(&mut self) {
            if std::thread::panicking() {
                eprintln!("librdkafka's log:\n{}", self.0.lines().join("\n"));
            }
        }
    }

    /// Sends one message in `transaction` and waits for its acknowledgement.
    async fn sent_in(transaction: &Transaction, value: &str) -> DeliveryReport {
        transaction
            .producer()
            .start_send_in(message(value), Some(transaction.scope()))
            .expect("accepted")
            .acknowledged_one()
            .await
            .expect("delivered")
    }

    fn message(value: &str) -> Vec<OutgoingMessage> {
        vec![OutgoingMessage {
            topic: "outputs".into(),
            key: Some(b"k".to_vec()),
            value: Some(value.as_bytes().to_vec()),
            ..Default::default()
        }]
    }

    #[tokio::test]
    async fn sends_of_a_transactional_producer_must_be_inside_an_open_transaction() {
        let cluster = MockCluster::new(1).expect("mock cluster");
        cluster.create_topic("outputs", 1, 1).expect("topic");
        let producer = transactional(&cluster.bootstrap_servers(), "tx-sends");
        let outside = producer
            .start_send(message("outside"))
            .err()
            .expect("refused");
        assert_eq!(outside.code(), "ERR_KAFKA_TRANSACTION_STATE");

        let transaction = producer.begin_transaction().await.expect("begin");
        let scope = Some(transaction.scope());
        let report = sent_in(&transaction, "inside").await;
        assert_eq!(report.topic, "outputs");
        producer
            .start_send_in(message("current"), Some(TransactionScope::Current))
            .expect("the open transaction takes sends for the current scope");
        transaction.commit().await.expect("commit");

        let late = producer
            .start_send_in(message("late"), scope)
            .err()
            .expect("refused");
        assert_eq!(late.code(), "ERR_KAFKA_TRANSACTION_STATE");
        let no_open = producer
            .start_send_in(message("late"), Some(TransactionScope::Current))
            .err()
            .expect("refused");
        assert_eq!(no_open.code(), "ERR_KAFKA_TRANSACTION_STATE");
        producer
            .disconnect(Duration::from_secs(5))
            .await
            .expect("disconnect");
    }

    #[tokio::test]
    async fn transactions_of_one_producer_run_one_after_another() {
        let cluster = MockCluster::new(1).expect("mock cluster");
        cluster.create_topic("outputs", 1, 1).expect("topic");
        let producer = transactional(&cluster.bootstrap_servers(), "tx-turns");
        let first = producer.begin_transaction().await.expect("begin");
        let waiting = tokio::spawn({
            let producer = producer.clone();
            async move { producer.begin_transaction().await.map(|second| second.id()) }
        });
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(
            !waiting.is_finished(),
            "a second transaction began while the first was open"
        );
        let first_id = first.id();
        first.abort().await.expect("abort");
        let second_id = waiting.await.expect("task").expect("second begins");
        assert!(second_id > first_id);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn waiting_transactions_begin_in_the_order_they_were_asked_for() {
        let cluster = MockCluster::new(1).expect("mock cluster");
        cluster.create_topic("outputs", 1, 1).expect("topic");
        let producer = transactional(&cluster.bootstrap_servers(), "tx-order");
        let first = producer.begin_transaction().await.expect("begin");
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut waiting = Vec::new();
        for caller in 0..8 {
            // Asked for now, in this order; the tasks may first run in any order.
            let begun = producer.begin_transaction();
            let order = order.clone();
            waiting.push(tokio::spawn(async move {
                let transaction = begun.await.expect("begin");
                order.lock().expect("order").push(caller);
                transaction.commit().await.expect("commit");
            }));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        first.commit().await.expect("commit");
        for task in waiting {
            task.await.expect("task");
        }
        assert_eq!(*order.lock().expect("order"), (0..8).collect::<Vec<_>>());
    }

    #[tokio::test]
    async fn a_commit_or_abort_out_of_time_is_resumed_before_the_next_transaction() {
        let cluster = MockCluster::new(1).expect("mock cluster");
        cluster.create_topic("outputs", 1, 1).expect("topic");
        let mut options = transactional_options(
            &cluster.bootstrap_servers(),
            "tx-slow",
            Duration::from_secs(2),
        );
        options.client.log_level = Some(LogLevel::Debug);
        options
            .client
            .properties
            .insert("debug".into(), "eos".into());
        let log = Arc::new(KeptLog::default());
        let _shown_on_panic = ShownOnPanic(log.clone());
        let producer = Producer::new(options, log.clone()).expect("producer");
        for ending in [Ending::Commit, Ending::Abort] {
            let transaction = producer.begin_transaction().await.expect("begin");
            sent_in(&transaction, "slow").await;
            // The coordinator now answers after the transaction timeout.
            cluster
                .broker_round_trip_time(1, Duration::from_secs(4))
                .expect("slow broker");
            let ended = match ending {
                Ending::Commit => transaction.commit().await,
                Ending::Abort => transaction.abort().await,
            };
            let error = ended.expect_err("out of time");
            assert_eq!(error.code(), "ERR_KAFKA_TIMED_OUT", "{ending:?}: {error}");
            cluster
                .broker_round_trip_time(1, Duration::ZERO)
                .expect("fast broker");
            // The next transaction first completes the pending one, then begins.
            let next = producer
                .begin_transaction()
                .await
                .expect("begins after resuming");
            next.commit().await.expect("commit");
        }
        // A commit is not retried with next to no time left: such a call
        // returns at once, and the step it queued runs later, racing the
        // resumed commit inside librdkafka.
        // Four commit calls: the one out of time, its resumption, and each
        // round's next transaction. librdkafka's log lines arrive through
        // its log queue, after the calls themselves.
        let commits_of = |calls: &[String]| -> Vec<String> {
            calls
                .iter()
                .filter(|call| call.contains("commit_transaction"))
                .cloned()
                .collect()
        };
        let logged_so_far = || -> Vec<String> {
            log.lines()
                .into_iter()
                .filter(|line| line.contains("Transactional API called"))
                .collect()
        };
        let logged = Instant::now();
        let mut calls = logged_so_far();
        while commits_of(&calls).len() < 4 && logged.elapsed() < Duration::from_secs(10) {
            tokio::time::sleep(Duration::from_millis(20)).await;
            calls = logged_so_far();
        }
        let commits = commits_of(&calls);
        assert!(commits.len() >= 4, "{calls:#?}");
        for call in commits {
            let timeout_ms: u64 = call
                .rsplit("API timeout ")
                .next()
                .and_then(|rest| rest.trim_end_matches(')').parse().ok())
                .unwrap_or_else(|| panic!("no API timeout in {call}"));
            assert!(timeout_ms >= 100, "{call}");
        }
    }

    #[tokio::test]
    async fn a_fenced_producer_reports_it_with_one_code_and_transacts_no_more() {
        use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};
        let cluster = MockCluster::new(1).expect("mock cluster");
        cluster.create_topic("outputs", 1, 1).expect("topic");
        let producer = transactional(&cluster.bootstrap_servers(), "tx-fenced");
        let transaction = producer.begin_transaction().await.expect("begin");
        sent_in(&transaction, "zombie").await;
        // What the coordinator answers a zombie once a newer instance took its id over.
        cluster.request_errors(
            RDKafkaApiKey::EndTxn,
            &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_PRODUCER_FENCED],
        );
        let error = transaction.commit().await.expect_err("fenced");
        assert_eq!(error.code(), "ERR_KAFKA_PRODUCER_FENCED", "{error}");
        assert!(error.is_fatal(), "{error:?}");
        let again = producer.begin_transaction().await.err().expect("refused");
        assert_eq!(again.code(), "ERR_KAFKA_PRODUCER_FENCED", "{again}");
    }

    #[tokio::test]
    async fn a_transaction_dropped_while_open_is_aborted_and_frees_the_producer() {
        let cluster = MockCluster::new(1).expect("mock cluster");
        cluster.create_topic("outputs", 1, 1).expect("topic");
        let producer = transactional(&cluster.bootstrap_servers(), "tx-drop");
        let abandoned = producer.begin_transaction().await.expect("begin");
        let scope = Some(abandoned.scope());
        drop(abandoned);
        let refused = producer
            .start_send_in(message("after drop"), scope)
            .err()
            .expect("refused");
        assert_eq!(refused.code(), "ERR_KAFKA_TRANSACTION_STATE");
        let next = tokio::time::timeout(Duration::from_secs(15), producer.begin_transaction())
            .await
            .expect("the next transaction begins once the dropped one is aborted")
            .expect("begin");
        next.commit().await.expect("commit");
    }

    #[tokio::test]
    async fn offsets_are_checked_before_they_reach_librdkafka() {
        let cluster = MockCluster::new(1).expect("mock cluster");
        cluster.create_topic("outputs", 1, 1).expect("topic");
        let producer = transactional(&cluster.bootstrap_servers(), "tx-offsets");
        let transaction = producer.begin_transaction().await.expect("begin");
        let negative = TransactionOffset {
            topic: "outputs".into(),
            partition: 0,
            offset: -1,
        };
        let error = transaction
            .send_offsets(vec![negative], ConsumerGroup::Id("group".into()))
            .await
            .expect_err("refused");
        assert_eq!(error.code(), "ERR_INVALID_ARG");
        transaction.abort().await.expect("abort");
    }

    #[tokio::test]
    async fn a_producer_without_a_transactional_id_has_no_transactions() {
        let mut options = ProducerOptions::default();
        options.client.brokers = Some(vec!["127.0.0.1:1".into()]);
        let producer = Producer::new(options, Arc::new(StderrSink)).expect("producer");
        let error = producer.begin_transaction().await.err().expect("refused");
        assert_eq!(error.code(), "ERR_INVALID_CONFIG");
        let scoped = producer
            .start_send_in(message("x"), Some(TransactionScope::Current))
            .err()
            .expect("refused");
        assert_eq!(scoped.code(), "ERR_INVALID_CONFIG");
    }

    #[test]
    fn a_transactional_producer_times_messages_out_with_its_transactions() {
        let mut options = ProducerOptions::default();
        options.client.brokers = Some(vec!["127.0.0.1:1".into()]);
        options.transactional_id = Some("tx-config".into());
        options.transaction_timeout = Some(Duration::from_secs(15));
        let producer = Producer::new(options, Arc::new(StderrSink)).expect("producer");
        let config = producer.effective_config().expect("config");
        assert_eq!(
            config.get("transactional.id").map(String::as_str),
            Some("tx-config")
        );
        assert_eq!(
            config.get("message.timeout.ms").map(String::as_str),
            Some("15000")
        );
        let empty = ProducerOptions {
            transactional_id: Some(" ".into()),
            ..ProducerOptions::default()
        };
        let error = Producer::new(empty, Arc::new(StderrSink))
            .err()
            .expect("refused");
        assert_eq!(error.code(), "ERR_INVALID_CONFIG");
    }
}
