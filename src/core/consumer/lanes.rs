//! Per-message mode: the lanes messages are handled in (one per topic,
//! partition and key, up to `concurrency` at once), and the runs the poll
//! thread cuts for them. A run is what one lane hands to the handler in one
//! crossing. The poll thread encodes each run's first attempt as it takes
//! the messages, for a handler that takes runs encoded: each valid value is
//! copied once, from librdkafka's memory into the text that crosses, and the
//! message's payload is a view into that text. Copying the payloads out on
//! the poll thread and again into the text on a dispatcher thread, then
//! freeing the copies there, took over half of the dispatcher's CPU
//! (bench/README.md).

use super::batcher::EncodingRun;
use super::{prefetching, Accepted, Shared, Work, MAX_SEQUENCE, MAX_SEQUENCE_BYTES};
use crate::core::encoded::{EncodedDeliveries, EncodedWriter};
use foldhash::HashMap as FastMap;
use std::collections::VecDeque;
use std::hash::BuildHasher;

/// A lane per topic, partition and message key, known by their hash: a
/// collision only makes two keys share a lane (in order, less in parallel),
/// and saves building and hashing an owned key per message.
pub(super) type LaneKey = u64;

/// Which lane a message goes to.
pub(super) struct LaneKeys {
    hasher: foldhash::fast::RandomState,
    /// With a concurrency of 1 every message shares one lane.
    single: bool,
}

impl LaneKeys {
    pub(super) fn new(concurrency: usize) -> Self {
        LaneKeys {
            hasher: foldhash::fast::RandomState::default(),
            single: concurrency <= 1,
        }
    }

    pub(super) fn of(&self, topic: &str, partition: i32, key: Option<&[u8]>) -> LaneKey {
        if self.single {
            0
        } else {
            self.hasher.hash_one((topic, partition, key))
        }
    }
}

/// Consecutive messages of one lane for one crossing, and when the poll
/// thread encoded them, the first attempt of their valid ones.
pub(super) struct LaneRun {
    pub(super) key: LaneKey,
    pub(super) works: Vec<Work>,
    pub(super) encoded: Option<EncodedDeliveries>,
    /// Their payloads' bytes.
    pub(super) bytes: usize,
}

impl LaneRun {
    /// Appends `next` (of the same lane) if the two can cross as one: within
    /// [`MAX_SEQUENCE`] and [`MAX_SEQUENCE_BYTES`], and both encoded (with
    /// no raw payloads, whose ranges point into each run's own buffer) or
    /// neither. Otherwise gives `next` back.
    pub(super) fn absorb(&mut self, next: LaneRun) -> Option<LaneRun> {
        let fits = self.works.len() + next.works.len() <= MAX_SEQUENCE
            && self.bytes + next.bytes <= MAX_SEQUENCE_BYTES;
        let joinable = match (&self.encoded, &next.encoded) {
            (None, None) => true,
            (Some(first), Some(second)) => first.payloads.is_none() && second.payloads.is_none(),
            _ => false,
        };
        if !fits || !joinable {
            return Some(next);
        }
        self.works.extend(next.works);
        self.bytes += next.bytes;
        if let (Some(first), Some(second)) = (self.encoded.as_mut(), next.encoded) {
            first.chunks.extend(second.chunks);
        }
        None
    }
}

/// The next run of a lane's queue, joined with the runs that queued up
/// behind it (while the lane was busy) as far as they can cross together.
pub(super) fn take_joined(queue: &mut VecDeque<LaneRun>) -> Option<LaneRun> {
    let mut run = queue.pop_front()?;
    while let Some(next) = queue.pop_front() {
        if let Some(next) = run.absorb(next) {
            queue.push_front(next);
            break;
        }
    }
    Some(run)
}

/// Groups `items` by lane, keeping each lane's order, and cuts each lane's
/// share into runs of at most [`MAX_SEQUENCE`] items and
/// [`MAX_SEQUENCE_BYTES`] (past a run's first item): the lane, the items
/// and their bytes of each run, runs of one lane in order.
pub(super) fn cut<T>(
    items: impl IntoIterator<Item = T>,
    lane_of: impl Fn(&T) -> LaneKey,
    size_of: impl Fn(&T) -> usize,
) -> Vec<(LaneKey, Vec<T>, usize)> {
    let mut runs: Vec<(LaneKey, Vec<T>, usize)> = Vec::new();
    // Each lane's open run, by its index in `runs`.
    let mut open: FastMap<LaneKey, usize> = FastMap::default();
    for item in items {
        let key = lane_of(&item);
        let size = size_of(&item);
        let index = match open.get(&key) {
            Some(&index)
                if runs[index].1.len() < MAX_SEQUENCE
                    && runs[index].2 + size <= MAX_SEQUENCE_BYTES =>
            {
                index
            }
            _ => {
                runs.push((key, Vec::new(), 0));
                open.insert(key, runs.len() - 1);
                runs.len() - 1
            }
        };
        runs[index].1.push(item);
        runs[index].2 += size;
    }
    runs
}

/// Cuts registered messages into runs, encoding them when `encode`.
pub(super) fn runs_of(
    shared: &Shared,
    keys: &LaneKeys,
    encode: bool,
    accepted: Vec<Accepted<'_>>,
) -> Vec<LaneRun> {
    let size_of = |(message, _, _): &Accepted<'_>| message.payload().map_or(0, <[u8]>::len);
    let cut = cut(
        accepted,
        |(message, topic, _)| keys.of(topic, message.partition(), message.key()),
        size_of,
    );
    cut.into_iter()
        .map(|(key, messages, bytes)| {
            if encode {
                let mut run = EncodingRun::new(EncodedWriter::for_views_of(messages.len(), bytes));
                for (message, topic, generation) in prefetching(messages) {
                    run.add(shared, message, topic, generation);
                }
                let batch = run.finish();
                LaneRun {
                    key,
                    works: batch.works,
                    encoded: Some(batch.encoded),
                    bytes,
                }
            } else {
                let works = messages
                    .into_iter()
                    .map(|(message, topic, generation)| {
                        super::work_of(shared, message, topic, generation)
                    })
                    .collect();
                LaneRun {
                    key,
                    works,
                    encoded: None,
                    bytes,
                }
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::consumer::{ReceivedMessage, ValueForm};
    use crate::core::encoded::Chunk;
    use std::sync::Arc;

    fn run(
        offsets: std::ops::Range<i64>,
        bytes: usize,
        encoded: Option<EncodedDeliveries>,
    ) -> LaneRun {
        let works = offsets
            .map(|offset| Work {
                message: Arc::new(ReceivedMessage {
                    topic: Arc::from("t"),
                    partition: 0,
                    offset,
                    key: None,
                    payload: None,
                    headers: Vec::new(),
                    timestamp: None,
                }),
                generation: 1,
                verdict: Ok(ValueForm::Json),
            })
            .collect();
        LaneRun {
            key: 1,
            works,
            encoded,
            bytes,
        }
    }

    fn encoded(chunk: &str, raw: bool) -> Option<EncodedDeliveries> {
        Some(EncodedDeliveries {
            chunks: vec![Chunk::new(bytes::Bytes::from(chunk.to_string()))],
            payloads: raw.then(Vec::new),
        })
    }

    #[test]
    fn queued_runs_of_a_lane_cross_together_only_within_the_limits_and_when_their_encodings_join() {
        let mut first = run(0..2, 100, encoded("a", false));
        assert!(first.absorb(run(2..5, 100, encoded("b", false))).is_none());
        let offsets: Vec<i64> = first.works.iter().map(|work| work.message.offset).collect();
        assert_eq!(offsets, [0, 1, 2, 3, 4]);
        assert_eq!(first.bytes, 200);
        let texts: Vec<&[u8]> = first
            .encoded
            .as_ref()
            .unwrap()
            .chunks
            .iter()
            .map(|chunk| &chunk[..])
            .collect();
        assert_eq!(texts, [b"a", b"b"]);

        let mut first = run(0..1, 0, None);
        assert!(first.absorb(run(1..2, 0, None)).is_none());
        assert_eq!(first.works.len(), 2);

        let refused = [
            (run(0..1, 0, None), run(1..2, 0, encoded("b", false))),
            (run(0..1, 0, encoded("a", false)), run(1..2, 0, None)),
            (
                run(0..1, 0, encoded("a", true)),
                run(1..2, 0, encoded("b", false)),
            ),
            (
                run(0..1, 0, encoded("a", false)),
                run(1..2, 0, encoded("b", true)),
            ),
            (run(0..1, MAX_SEQUENCE_BYTES, None), run(1..2, 1, None)),
            (run(0..MAX_SEQUENCE as i64, 0, None), run(0..1, 0, None)),
        ];
        let mut queue: VecDeque<LaneRun> = [
            run(0..100, 0, None),
            run(100..200, 0, None),
            run(200..300, 0, None),
        ]
        .into();
        let taken = take_joined(&mut queue).unwrap();
        assert_eq!(
            taken.works.len(),
            200,
            "joined up to {MAX_SEQUENCE} messages"
        );
        assert_eq!(queue.len(), 1, "the rest waits, first in line");
        assert_eq!(queue[0].works[0].message.offset, 200);
        assert!(take_joined(&mut VecDeque::new()).is_none());

        for (mut first, second) in refused {
            let length = first.works.len();
            let given_back = first.absorb(second).expect("given back");
            assert_eq!(first.works.len(), length);
            assert_eq!(given_back.works.len(), 1);
        }
    }

    #[test]
    fn runs_keep_each_lanes_order_and_are_cut_by_count_and_by_bytes_but_never_empty() {
        // (lane, size, position)
        let items: Vec<(u64, usize, usize)> = (0..600)
            .map(|position| ((position % 3) as u64, 10, position))
            .collect();
        let runs = cut(items, |item| item.0, |item| item.1);
        for lane in 0..3u64 {
            let positions: Vec<usize> = runs
                .iter()
                .filter(|run| run.0 == lane)
                .flat_map(|run| run.1.iter().map(|item| item.2))
                .collect();
            assert_eq!(
                positions,
                (0..600)
                    .filter(|p| p % 3 == lane as usize)
                    .collect::<Vec<_>>()
            );
        }
        assert!(runs
            .iter()
            .all(|run| run.1.iter().all(|item| item.0 == run.0)));
        assert!(runs
            .iter()
            .all(|run| !run.1.is_empty() && run.1.len() <= MAX_SEQUENCE));
        assert_eq!(runs.len(), 3, "200 items of 10 B fit one run per lane");

        let items: Vec<(u64, usize)> = (0..10).map(|_| (7, MAX_SEQUENCE_BYTES / 4)).collect();
        let runs = cut(items, |item| item.0, |item| item.1);
        assert_eq!(
            runs.iter().map(|run| run.1.len()).collect::<Vec<_>>(),
            [4, 4, 2]
        );
        assert!(runs.iter().all(|run| run.2 <= MAX_SEQUENCE_BYTES));

        let items = vec![(1u64, MAX_SEQUENCE_BYTES * 3), (1, 1)];
        let runs = cut(items, |item| item.0, |item| item.1);
        assert_eq!(runs.len(), 2, "an oversized item is a run of its own");

        let items: Vec<(u64, usize)> = (0..MAX_SEQUENCE + 1).map(|_| (1, 0)).collect();
        let runs = cut(items, |item| item.0, |item| item.1);
        assert_eq!(
            runs.iter().map(|run| run.1.len()).collect::<Vec<_>>(),
            [MAX_SEQUENCE, 1]
        );
    }
}
