//! Consume-transform-produce, exactly once: each run of messages is handled
//! inside one transaction of the consumer's transactional producer, and the
//! run's offsets are committed in that same transaction. What the handler
//! sends through the handed-in sender and the consumed offsets thus become
//! visible together or not at all: after a crash at any point, the next
//! owner of the partitions starts after the last committed transaction, and
//! `read_committed` readers never see the outputs of an aborted one.
//!
//! One transaction at a time (a producer has at most one open), in arrival
//! order, so the offsets a transaction commits never pass a message that is
//! not handled yet. A failed handler aborts the transaction; the retry and
//! dead-letter policies apply as in at-least-once mode, the dead-letter
//! record itself being written in a transaction with its offset.

use super::{Dispatcher, Interrupted, Work};
use crate::core::error::CoreError;
use crate::core::producer::{PendingSend, Producer};
use crate::core::transaction::{ConsumerGroup, Transaction, TransactionOffset};
use rdkafka::consumer::Consumer as _;
use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// How a transaction over some works ended.
enum Outcome {
    Committed,
    /// The handler failed on the work at `position`; the transaction was aborted.
    HandlerFailed {
        position: usize,
        message: String,
    },
    /// The transaction could not be completed; it was aborted (or the
    /// producer is unusable, when the error is fatal).
    TransactionFailed(CoreError),
    /// The cluster refused a dead-letter record as too large (this code):
    /// aborted, to be parked again without its value.
    DeadLetterTooLarge(String),
}

/// Works still to commit, in order.
enum Segment {
    /// To handle, with the number of their next attempt.
    Handle { works: Vec<Work>, attempt: u32 },
    /// The handler gave up on these: to park (or skip) with their offsets.
    Park {
        works: Vec<Work>,
        reason: String,
        attempts: u32,
    },
}

/// What to do with the valid works of a transaction.
enum Treatment<'a> {
    Handle {
        attempt: u32,
    },
    /// Park them in the dead-letter topic (the handler gave up on them).
    Park {
        reason: &'a str,
        attempts: u32,
    },
}

impl Dispatcher {
    /// Handles works in transactions until each is committed, parked,
    /// skipped or given up on (left for redelivery), in order: the offsets
    /// each transaction commits only ever move forward.
    pub(super) async fn transact(&self, producer: &Arc<Producer>, works: Vec<Work>) {
        let works = self.without_revoked(works);
        let retry = self.shared.options.retry;
        let mut segments = VecDeque::from([Segment::Handle { works, attempt: 1 }]);
        let mut failures = 0u32;
        // Set once the cluster refused a dead-letter record as too large.
        let mut too_large: Option<String> = None;
        while let Some(segment) = segments.pop_front() {
            let (mut works, attempt) = match segment {
                Segment::Handle { works, attempt } => (works, attempt),
                Segment::Park {
                    works,
                    reason,
                    attempts,
                } => {
                    if !self
                        .park_in_transaction(producer, &works, &reason, attempts)
                        .await
                    {
                        return self.give_up_all(&works, segments);
                    }
                    continue;
                }
            };
            if works.is_empty() {
                continue;
            }
            let outcome = self
                .in_transaction(
                    producer,
                    &works,
                    Treatment::Handle { attempt },
                    too_large.as_deref(),
                )
                .await;
            match outcome {
                Outcome::DeadLetterTooLarge(code) => {
                    too_large = Some(code);
                    segments.push_front(Segment::Handle { works, attempt });
                }
                Outcome::Committed => {
                    let handled = works.iter().filter(|work| work.verdict.is_ok()).count();
                    self.shared
                        .counters
                        .processed
                        .fetch_add(handled as u64, Ordering::Relaxed);
                    self.count_parked(&works[..], works.len() - handled);
                    self.finish_committed(&works);
                }
                Outcome::HandlerFailed { position, message } => {
                    let closing = self.shared.closing.load(Ordering::Acquire);
                    if closing {
                        return self.give_up_all(&works, segments);
                    }
                    if attempt <= retry.retries {
                        let pause = retry.backoff(attempt);
                        tracing::warn!(
                            "Handler failed for {} (attempt {attempt}): {message}; the transaction was aborted, retrying in {} ms",
                            super::describe_works(&works[position..=position]),
                            pause.as_millis()
                        );
                        self.shared.counters.retried.fetch_add(1, Ordering::Relaxed);
                        tokio::time::sleep(pause).await;
                        segments.push_front(Segment::Handle {
                            works,
                            attempt: attempt + 1,
                        });
                        continue;
                    }
                    tracing::error!(
                        "Handler failed for {} after {attempt} attempt(s): {message}",
                        super::describe_works(&works[position..=position])
                    );
                    // In order: commit what came before it (handled again, as
                    // its transaction was aborted), park it, then go on.
                    let rest = works.split_off(position + 1);
                    let failed = works.split_off(position);
                    segments.push_front(Segment::Handle {
                        works: rest,
                        attempt: 1,
                    });
                    segments.push_front(Segment::Park {
                        works: failed,
                        reason: message,
                        attempts: attempt,
                    });
                    segments.push_front(Segment::Handle {
                        works,
                        attempt: attempt + 1,
                    });
                }
                Outcome::TransactionFailed(error) => {
                    if !self.may_go_on(&error) {
                        return self.give_up_all(&works, segments);
                    }
                    failures += 1;
                    let pause = self.pause_after_failures(failures);
                    tracing::warn!(
                        "Transaction for {} failed: {error}; retrying in {} ms",
                        super::describe_works(&works),
                        pause.as_millis()
                    );
                    tokio::time::sleep(pause).await;
                    segments.push_front(Segment::Handle { works, attempt });
                }
            }
        }
    }

    /// Leaves `works` and every segment after them for redelivery.
    fn give_up_all(&self, works: &[Work], segments: VecDeque<Segment>) {
        self.give_up(works);
        for segment in segments {
            match segment {
                Segment::Handle { works, .. } | Segment::Park { works, .. } => self.give_up(&works),
            }
        }
    }

    /// Writes a message the handler gave up on to the dead-letter topic (or
    /// skips it) in a transaction with its offset, retrying until that commits.
    /// Returns whether it committed (else the messages were given up on).
    async fn park_in_transaction(
        &self,
        producer: &Arc<Producer>,
        works: &[Work],
        reason: &str,
        attempts: u32,
    ) -> bool {
        let mut failures = 0u32;
        // Set once the cluster refused a dead-letter record as too large.
        let mut too_large: Option<String> = None;
        loop {
            let treatment = Treatment::Park { reason, attempts };
            match self
                .in_transaction(producer, works, treatment, too_large.as_deref())
                .await
            {
                Outcome::DeadLetterTooLarge(code) => too_large = Some(code),
                Outcome::Committed => {
                    self.count_parked(works, works.len());
                    self.finish_committed(works);
                    return true;
                }
                Outcome::TransactionFailed(error) if self.may_go_on(&error) => {
                    failures += 1;
                    let pause = self.pause_after_failures(failures);
                    tracing::error!(
                        "Cannot park {} in a transaction: {error}; retrying in {} ms",
                        super::describe_works(works),
                        pause.as_millis()
                    );
                    tokio::time::sleep(pause).await;
                }
                _ => {
                    self.give_up(works);
                    return false;
                }
            }
        }
    }

    /// One transaction over `works`: dead-letter records for the invalid
    /// ones, the handler (or parking) for the valid ones, their offsets.
    async fn in_transaction(
        &self,
        producer: &Arc<Producer>,
        works: &[Work],
        treatment: Treatment<'_>,
        too_large: Option<&str>,
    ) -> Outcome {
        let transaction = match producer.begin_transaction().await {
            Ok(transaction) => transaction,
            Err(error) => return Outcome::TransactionFailed(error),
        };
        let scope = Some(transaction.scope());
        let mut parked: Vec<PendingSend> = Vec::new();
        let mut valid_positions = Vec::new();
        for (position, work) in works.iter().enumerate() {
            let record = match (&work.verdict, &treatment) {
                (Err((code, reason)), _) => self.dead_letter_record(work, code, reason, 0),
                (Ok(_), Treatment::Park { reason, attempts }) => {
                    self.dead_letter_record(work, "ERR_HANDLER_FAILED", reason, *attempts)
                }
                (Ok(_), Treatment::Handle { .. }) => {
                    valid_positions.push(position);
                    None
                }
            };
            if let Some(mut record) = record {
                if let Some(code) = too_large {
                    self.omit_dead_letter_value(work, &mut record, code);
                }
                match producer.start_send_in(vec![record], scope) {
                    Ok(pending) => parked.push(pending),
                    Err(error) => return self.aborting(transaction, error).await,
                }
            }
        }
        if let Treatment::Handle { attempt } = treatment {
            if !valid_positions.is_empty() {
                let deliveries = super::deliveries_of(
                    valid_positions.iter().map(|&position| &works[position]),
                    attempt,
                );
                let started = std::time::Instant::now();
                let outcome = self.handler.handle(deliveries).await;
                self.shared
                    .handled_in(started.elapsed(), valid_positions.len());
                match outcome {
                    Ok(()) => {}
                    Err(Interrupted::Failed(failure)) => {
                        let position = valid_positions
                            .get(failure.index)
                            .copied()
                            .unwrap_or(valid_positions[0]);
                        if let Err(error) = transaction.abort().await {
                            return Outcome::TransactionFailed(error);
                        }
                        return Outcome::HandlerFailed {
                            position,
                            message: failure.message,
                        };
                    }
                    // Exactly-once handlers are never asked to yield (a run is
                    // one transaction); should one all the same, the run is
                    // tried again like any transaction that did not complete.
                    Err(Interrupted::Yielded { .. }) => {
                        let error = CoreError::Internal("the handler yielded".into());
                        return self.aborting(transaction, error).await;
                    }
                }
            }
        }
        // A send the callback did not await that failed: the run failed.
        if let (Some(failed), Some(&position)) =
            (transaction.failed_send(), valid_positions.first())
        {
            if let Err(error) = transaction.abort().await {
                return Outcome::TransactionFailed(error);
            }
            return Outcome::HandlerFailed {
                position,
                message: format!(
                    "a send of the callback failed: {failed} ({})",
                    failed.code()
                ),
            };
        }
        for pending in parked {
            if let Err(error) = pending.acknowledged().await {
                let code = error.code();
                return match self.aborting(transaction, error).await {
                    Outcome::TransactionFailed(_)
                        if code.ends_with("TOO_LARGE") && too_large.is_none() =>
                    {
                        Outcome::DeadLetterTooLarge(code)
                    }
                    other => other,
                };
            }
        }
        let group = self.consumer_group();
        if let Err(error) = transaction.send_offsets(next_offsets(works), group).await {
            return self.aborting(transaction, error).await;
        }
        match transaction.commit().await {
            Ok(()) => Outcome::Committed,
            Err(error) => Outcome::TransactionFailed(error),
        }
    }

    async fn aborting(&self, transaction: Transaction, error: CoreError) -> Outcome {
        if !error.is_fatal() {
            if let Err(abort_error) = transaction.abort().await {
                return Outcome::TransactionFailed(abort_error);
            }
        }
        Outcome::TransactionFailed(error)
    }

    /// The live consumer's group metadata, so the broker can refuse offsets
    /// from a member that lost the partitions in a rebalance.
    fn consumer_group(&self) -> ConsumerGroup {
        let consumer = self
            .shared
            .consumer
            .lock()
            .ok()
            .and_then(|guard| guard.clone());
        match consumer.and_then(|consumer| consumer.group_metadata()) {
            Some(metadata) => ConsumerGroup::Metadata(metadata),
            None => ConsumerGroup::Id(self.shared.group_id.clone()),
        }
    }

    /// Whether transactions can go on after `error`. A fatal one (such as
    /// being fenced by a newer instance with the same transactional id) ends
    /// this consumer's processing: it closes, and its partitions go to the
    /// instance that took over.
    fn may_go_on(&self, error: &CoreError) -> bool {
        if self.shared.closing.load(Ordering::Acquire) {
            return false;
        }
        if error.is_fatal() {
            tracing::error!(
                "Exactly-once processing stopped ({}): {error}; closing the consumer, its uncommitted messages will be redelivered",
                error.code()
            );
            self.shared.closing.store(true, Ordering::Release);
            self.shared.wakeup.wake();
            return false;
        }
        true
    }

    fn without_revoked(&self, works: Vec<Work>) -> Vec<Work> {
        let Ok(tracker) = self.shared.tracker.lock() else {
            return works;
        };
        let (current, revoked): (Vec<Work>, Vec<Work>) = works.into_iter().partition(|work| {
            let key = (work.message.topic.to_string(), work.message.partition);
            tracker.generation(&key) == Some(work.generation)
        });
        drop(tracker);
        // The partition's new owner receives these again.
        for work in revoked {
            self.shared.finish(&work.message, work.generation);
        }
        current
    }

    /// Counts `count` messages of `works` as dead-lettered (or skipped,
    /// when the dead-letter topic is off) once their transaction committed.
    fn count_parked(&self, works: &[Work], count: usize) {
        let Some(first) = works.first() else { return };
        if count == 0 {
            return;
        }
        let counter = match self.dead_letter_topic(first) {
            Some(_) => &self.shared.counters.dead_lettered,
            None => &self.shared.counters.skipped,
        };
        counter.fetch_add(count as u64, Ordering::Relaxed);
    }

    fn finish_committed(&self, works: &[Work]) {
        self.shared
            .finish_all(works.iter().map(|work| (&*work.message, work.generation)));
    }

    /// Leaves messages unhandled: nothing of theirs was committed, so the
    /// partition's owner receives them again after a restart or rebalance.
    fn give_up(&self, works: &[Work]) {
        for work in works {
            self.abandon(work);
        }
    }
}

/// The offsets to commit: per partition, the one after its last message.
fn next_offsets(works: &[Work]) -> Vec<TransactionOffset> {
    let mut next: BTreeMap<(&str, i32), i64> = BTreeMap::new();
    for work in works {
        let entry = next
            .entry((&*work.message.topic, work.message.partition))
            .or_insert(0);
        *entry = (*entry).max(work.message.offset + 1);
    }
    next.into_iter()
        .map(|((topic, partition), offset)| TransactionOffset {
            topic: topic.to_string(),
            partition,
            offset,
        })
        .collect()
}
