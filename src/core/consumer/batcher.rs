//! Batch mode for a handler that takes its batches encoded
//! ([`EncodedHandler`](super::EncodedHandler)): the poll thread cuts the
//! batches itself and writes each valid JSON value straight into the text
//! that crosses into JavaScript, the message's payload becoming a view into
//! that text. The dispatcher used to copy each payload out of librdkafka on
//! the poll thread, copy it again into the text, and free the copy on
//! another core: two thirds of its CPU while consuming in batches
//! (bench/README.md).

use super::hub::MessageView;
use super::{received_of, verdict_of, BatchOptions, ReceivedMessage, Shared, Work, WorkVerdict};
use crate::core::encoded::{EncodedDeliveries, EncodedWriter, Entry, Written};
use bytes::Bytes;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// A batch as the poll thread cut it: its messages in order, and its valid
/// messages (the ones whose verdict is `Ok`) encoded for their first attempt.
pub(super) struct EncodedBatch {
    pub(super) works: Vec<Work>,
    pub(super) encoded: EncodedDeliveries,
}

pub(super) struct Batcher {
    to_dispatcher: mpsc::UnboundedSender<EncodedBatch>,
    batch: BatchOptions,
    open: Option<OpenBatch>,
}

/// The batch being gathered: it goes once it holds `max_messages`, or
/// `max_wait` after its first message.
struct OpenBatch {
    opened: Instant,
    run: EncodingRun,
}

/// Messages being encoded as the poll thread takes them: the valid ones'
/// values go straight into the text that crosses into JavaScript.
pub(super) struct EncodingRun {
    messages: Vec<Gathered>,
    writer: EncodedWriter,
}

/// A message of the open batch, whose payload is attached once the text its
/// value went into is finished.
struct Gathered {
    message: ReceivedMessage,
    generation: u64,
    verdict: WorkVerdict,
    written: Written,
}

impl Batcher {
    pub(super) fn new(
        to_dispatcher: mpsc::UnboundedSender<EncodedBatch>,
        batch: BatchOptions,
    ) -> Self {
        Batcher {
            to_dispatcher,
            batch,
            open: None,
        }
    }

    /// Adds a registered message; false once the dispatcher is gone.
    pub(super) fn add(
        &mut self,
        shared: &Shared,
        view: MessageView<'_>,
        topic: Arc<str>,
        generation: u64,
    ) -> bool {
        let open = self.open.get_or_insert_with(|| OpenBatch {
            opened: Instant::now(),
            run: EncodingRun::new(EncodedWriter::for_views()),
        });
        open.run.add(shared, view, topic, generation);
        if open.run.messages.len() >= self.batch.max_messages {
            return self.flush();
        }
        true
    }

    /// Sends the open batch if its wait is over; false once the dispatcher is gone.
    pub(super) fn send_if_due(&mut self) -> bool {
        match &self.open {
            Some(open) if open.opened.elapsed() >= self.batch.max_wait => self.flush(),
            _ => true,
        }
    }

    /// How long until the open batch is due, if one is open.
    pub(super) fn due_in(&self) -> Option<Duration> {
        let open = self.open.as_ref()?;
        Some(self.batch.max_wait.saturating_sub(open.opened.elapsed()))
    }

    /// Sends the open batch now, if there is one; false once the dispatcher is gone.
    pub(super) fn flush(&mut self) -> bool {
        let Some(open) = self.open.take() else {
            return true;
        };
        self.to_dispatcher.send(open.run.finish()).is_ok()
    }
}

impl EncodingRun {
    pub(super) fn new(writer: EncodedWriter) -> Self {
        EncodingRun {
            messages: Vec::new(),
            writer,
        }
    }

    /// Adds a registered message: its verdict, and its value if valid.
    pub(super) fn add(
        &mut self,
        shared: &Shared,
        view: MessageView<'_>,
        topic: Arc<str>,
        generation: u64,
    ) {
        let payload = view.payload();
        let verdict = verdict_of(shared, payload);
        let mut message = received_of(view, topic);
        let written = match &verdict {
            // The payload is attached once the text it goes into is finished.
            Ok(form) => self.writer.push(&Entry {
                payload,
                ..Entry::of(&message, *form, 1)
            }),
            Err(_) => Written::Elsewhere,
        };
        if written == Written::Elsewhere {
            message.payload = payload.map(Bytes::copy_from_slice);
        }
        self.messages.push(Gathered {
            message,
            generation,
            verdict,
            written,
        });
    }

    /// The messages, each valid one's payload a view into the finished text.
    pub(super) fn finish(self) -> EncodedBatch {
        let encoded = self.writer.finish();
        // Sized to the run: runs wait in the channel and in the lanes, up
        // to `maxInFlight` of them when they are short.
        let mut works = Vec::with_capacity(self.messages.len());
        works.extend(self.messages.into_iter().map(|gathered| {
            let mut message = gathered.message;
            if let Written::Json { chunk, range } = gathered.written {
                message.payload = Some(encoded.chunks[chunk].slice(range));
            }
            Work {
                message: Arc::new(message),
                generation: gathered.generation,
                verdict: gathered.verdict,
            }
        }));
        EncodedBatch { works, encoded }
    }
}
