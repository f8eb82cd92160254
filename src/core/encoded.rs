//! The compact form in which deliveries cross into JavaScript: JSON texts
//! that V8 parses with `JSON.parse`, and one buffer holding the raw payloads,
//! which the messages' values become views into (no copy per message).
//!
//! A chunk holds its messages column by column, not as an array of message
//! objects: `[values, topics, keys, numbers, extras]`. The driver builds each
//! message object from the columns with one object literal, so every message
//! has the same shape. Parsing an array of envelopes instead (`{"topic":…,
//! "partition":…, …}` per message) made `JSON.parse` look up eight property
//! names per message: 1.2 µs per 1 KB message against 0.9 µs for the columns
//! and the objects built from them (`bench/README.md`).
//!
//! A run is split into chunks of about [`CHUNK_BYTES`] of values: V8 keeps
//! strings below 128 KiB in its young generation, while a larger one gets
//! pages of its own, mapped (and page-faulted) afresh for every hand-over.

use crate::core::consumer::{Delivery, ReceivedMessage, ValueForm};
use crate::core::trace;
use bytes::Bytes;
use std::io::Write;
use std::ops::Range;
use std::sync::Arc;

/// A chunk is closed once its values hold this much; one message may exceed it.
pub const CHUNK_BYTES: usize = 64 * 1024;

/// Numbers per message in a chunk's `numbers` column.
pub const NUMBERS_PER_MESSAGE: usize = 5;

/// A run of deliveries, encoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedDeliveries {
    /// The messages in order, in chunks of consecutive messages. Each chunk
    /// is the JSON text `[values, topics, keys, numbers, extras]`:
    /// - `values`: per message the validated JSON itself, `null`, or, for a
    ///   raw payload, `[start, end]` into `payloads`;
    /// - `topics`: the chunk's distinct topics;
    /// - `keys`: per message its key as text, or `null`;
    /// - `numbers`: per message [`NUMBERS_PER_MESSAGE`] numbers: the index
    ///   of its topic in `topics`, partition, offset, timestamp (or `null`),
    ///   attempt;
    /// - `extras`: for each message that has headers, in order, its index in
    ///   the chunk, its headers (an object of texts and `null`s), and its
    ///   trace context (or `null`). A message without headers has `{}`.
    ///
    /// Shared (`Bytes`) because a JSON value written by the poll thread
    /// stays in its chunk: the message's payload is a view into it.
    pub chunks: Vec<Chunk>,
    /// Present when some value is raw.
    pub payloads: Option<Vec<u8>>,
}

impl EncodedDeliveries {
    /// The messages as the JSON texts the driver parses, and the raw payloads
    /// the `[start, end]` values of raw messages point into. Built off the
    /// JavaScript thread, so the event loop only parses them and assembles
    /// each message from its columns.
    pub fn encode(deliveries: &[Delivery]) -> Self {
        let mut writer = EncodedWriter::default();
        for delivery in deliveries {
            writer.push(&Entry::of(
                &delivery.message,
                delivery.form,
                delivery.attempt,
            ));
        }
        writer.finish()
    }
}

/// A message as the chunk writer reads it: a received message's fields,
/// or the same read from librdkafka's own message on the poll thread.
pub struct Entry<'a> {
    pub form: ValueForm,
    pub payload: Option<&'a [u8]>,
    pub topic: &'a Arc<str>,
    pub key: Option<&'a [u8]>,
    pub partition: i32,
    pub offset: i64,
    pub timestamp: Option<i64>,
    pub attempt: u32,
    pub headers: &'a [(String, Option<Vec<u8>>)],
}

impl<'a> Entry<'a> {
    pub fn of(message: &'a ReceivedMessage, form: ValueForm, attempt: u32) -> Self {
        Entry {
            form,
            payload: message.payload.as_deref(),
            topic: &message.topic,
            key: message.key.as_deref(),
            partition: message.partition,
            offset: message.offset,
            timestamp: message.timestamp,
            attempt,
            headers: &message.headers,
        }
    }
}

/// Where an entry's value went, for the payload to be a view of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Written {
    /// The JSON value is `range` of chunk `chunk`'s text.
    Json { chunk: usize, range: Range<usize> },
    /// Raw bytes (at `range` of `payloads`), or no value.
    Elsewhere,
}

/// A chunk's text, and whether it is all ASCII, as found on the thread that
/// wrote it: V8 takes ASCII text as Latin-1, without UTF-8 decoding, and
/// scanning each chunk for that on the JavaScript thread cost it about 2.5 %
/// of its time per message (`perf`, bench/README.md). The fields are private
/// so that the flag always describes the text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    text: Bytes,
    ascii: bool,
}

impl Chunk {
    pub fn new(text: Bytes) -> Self {
        let ascii = text.is_ascii();
        Chunk { text, ascii }
    }

    /// The text, and whether it is all ASCII.
    pub fn into_parts(self) -> (Bytes, bool) {
        (self.text, self.ascii)
    }
}

impl std::ops::Deref for Chunk {
    type Target = Bytes;

    fn deref(&self) -> &Bytes {
        &self.text
    }
}

/// Writes a run's entries into chunks as they come.
#[derive(Default)]
pub struct EncodedWriter {
    chunk: ChunkWriter,
    chunks: Vec<Chunk>,
    payloads: Option<Vec<u8>>,
}

impl EncodedWriter {
    /// A writer whose chunks the payloads of their messages will be views
    /// into (see [`ChunkWriter::for_views`]).
    pub fn for_views() -> Self {
        EncodedWriter {
            chunk: ChunkWriter {
                for_views: true,
                ..ChunkWriter::default()
            },
            ..EncodedWriter::default()
        }
    }

    /// As [`EncodedWriter::for_views`], for about `count` messages of
    /// `bytes` of values in all: the first chunk reserves room for them
    /// (and the other columns) rather than for a full chunk.
    pub fn for_views_of(count: usize, bytes: usize) -> Self {
        let mut writer = Self::for_views();
        writer.chunk.first_room = Some(bytes + count * ROOM_PER_MESSAGE + 64);
        writer
    }

    /// Appends an entry; where its value was written.
    pub fn push(&mut self, entry: &Entry<'_>) -> Written {
        let range = self.chunk.push(entry, &mut self.payloads);
        let written = match range {
            Some(range) => Written::Json {
                chunk: self.chunks.len(),
                range,
            },
            None => Written::Elsewhere,
        };
        if self.chunk.values.len() >= CHUNK_BYTES {
            self.chunks.push(Chunk::new(self.chunk.finish().into()));
        }
        written
    }

    pub fn finish(mut self) -> EncodedDeliveries {
        if self.chunk.count > 0 || self.chunks.is_empty() {
            self.chunks.push(Chunk::new(self.chunk.finish().into()));
        }
        EncodedDeliveries {
            chunks: self.chunks,
            payloads: self.payloads,
        }
    }
}

/// One chunk's columns as they are written; the values column becomes the
/// chunk's text, so a payload is copied once.
#[derive(Default)]
struct ChunkWriter {
    values: Vec<u8>,
    topics: Vec<Arc<str>>,
    keys: Vec<u8>,
    numbers: Vec<u8>,
    extras: Vec<u8>,
    count: usize,
    /// The chunks outlive the hand-over (the payloads are views into them):
    /// each reserves room for the other columns, so that appending them does
    /// not copy the values, and a short one gives back what it did not use.
    for_views: bool,
    /// The room the first chunk reserves, when known.
    first_room: Option<usize>,
}

/// Room a message takes in a chunk's other columns, and for its value's
/// separator: typically 40 to 60 bytes (five numbers, a short key).
const ROOM_PER_MESSAGE: usize = 64;

impl ChunkWriter {
    /// Appends an entry; the range of the chunk's text its JSON value took.
    fn push(&mut self, entry: &Entry<'_>, payloads: &mut Option<Vec<u8>>) -> Option<Range<usize>> {
        let separator = |column: &mut Vec<u8>| {
            if !column.is_empty() {
                column.push(b',');
            }
        };
        if self.values.is_empty() {
            let payload = entry.payload.map_or(0, <[u8]>::len);
            let room = if let Some(room) = self.first_room.take() {
                room.max(payload + ROOM_PER_MESSAGE)
            } else if self.for_views {
                CHUNK_BYTES + CHUNK_BYTES / 2 + payload
            } else {
                CHUNK_BYTES + payload + 64
            };
            self.values.reserve(room);
            self.values.extend_from_slice(b"[[");
        } else {
            self.values.push(b',');
        }
        let mut json_range = None;
        match (entry.form, entry.payload) {
            // Validated JSON (hence UTF-8) when it was decoded as such.
            (ValueForm::Json, Some(payload)) => {
                let start = self.values.len();
                self.values.extend_from_slice(payload);
                json_range = Some(start..self.values.len());
            }
            (ValueForm::Raw, Some(payload)) => {
                // Created even for an empty payload: a raw message's value
                // is always a view into the buffer.
                let buffer = payloads.get_or_insert_with(Vec::new);
                let start = buffer.len();
                buffer.extend_from_slice(payload);
                self.values.push(b'[');
                push_integer(&mut self.values, start);
                self.values.push(b',');
                push_integer(&mut self.values, buffer.len());
                self.values.push(b']');
            }
            _ => self.values.extend_from_slice(b"null"),
        }
        let topic = match self.topics.iter().position(|topic| topic == entry.topic) {
            Some(index) => index,
            None => {
                self.topics.push(entry.topic.clone());
                self.topics.len() - 1
            }
        };
        separator(&mut self.keys);
        push_optional_text(&mut self.keys, entry.key);
        separator(&mut self.numbers);
        push_integer(&mut self.numbers, topic);
        self.numbers.push(b',');
        push_integer(&mut self.numbers, entry.partition);
        self.numbers.push(b',');
        push_integer(&mut self.numbers, entry.offset);
        self.numbers.push(b',');
        match entry.timestamp {
            Some(timestamp) => push_integer(&mut self.numbers, timestamp),
            None => self.numbers.extend_from_slice(b"null"),
        }
        self.numbers.push(b',');
        push_integer(&mut self.numbers, entry.attempt);
        if !entry.headers.is_empty() {
            separator(&mut self.extras);
            push_integer(&mut self.extras, self.count);
            self.extras.extend_from_slice(b",{");
            for (position, (name, value)) in entry.headers.iter().enumerate() {
                if position > 0 {
                    self.extras.push(b',');
                }
                push_json_string(&mut self.extras, name);
                self.extras.push(b':');
                push_optional_text(&mut self.extras, value.as_deref());
            }
            self.extras.extend_from_slice(b"},");
            push_trace_context(&mut self.extras, entry.headers);
        }
        self.count += 1;
        json_range
    }

    /// The chunk's text, which starts with its values (the ranges `push`
    /// returned stay valid); the writer is empty again.
    fn finish(&mut self) -> Vec<u8> {
        let mut text = std::mem::take(&mut self.values);
        if text.is_empty() {
            text.extend_from_slice(b"[[");
        }
        text.reserve(self.keys.len() + self.numbers.len() + self.extras.len() + 16);
        text.extend_from_slice(b"],[");
        for (position, topic) in self.topics.iter().enumerate() {
            if position > 0 {
                text.push(b',');
            }
            push_json_string(&mut text, topic);
        }
        for column in [&self.keys, &self.numbers, &self.extras] {
            text.extend_from_slice(b"],[");
            text.extend_from_slice(column);
        }
        text.extend_from_slice(b"]]");
        // A chunk cut short (a small batch) must not keep the room reserved
        // for a full one: the payloads of its messages are views into it
        // until they are handled, and small batches can wait by thousands.
        if self.for_views && text.capacity() > 2 * text.len() {
            text.shrink_to_fit();
        }
        *self = ChunkWriter {
            for_views: self.for_views,
            ..ChunkWriter::default()
        };
        text
    }
}

/// The trace context of a message carrying a valid `traceparent` (with its
/// `tracestate`, if any), else `null`.
fn push_trace_context(out: &mut Vec<u8>, headers: &[(String, Option<Vec<u8>>)]) {
    let header = |wanted: &str| {
        headers
            .iter()
            .find(|(name, _)| name == wanted)
            .and_then(|(_, value)| value.as_deref())
    };
    let Some(raw) = header(trace::TRACEPARENT) else {
        out.extend_from_slice(b"null");
        return;
    };
    let Some(parent) = trace::parse(raw) else {
        out.extend_from_slice(b"null");
        return;
    };
    out.extend_from_slice(b"{\"traceparent\":");
    push_optional_text(out, Some(raw));
    out.extend_from_slice(b",\"traceId\":");
    push_json_string(out, parent.trace_id);
    out.extend_from_slice(b",\"spanId\":");
    push_json_string(out, parent.span_id);
    let _ = write!(out, ",\"sampled\":{}", parent.sampled);
    if let Some(state) = header(trace::TRACESTATE) {
        out.extend_from_slice(b",\"tracestate\":");
        push_optional_text(out, Some(state));
    }
    out.push(b'}');
}

/// `text` as a JSON string; most topics, keys and header names need no escapes.
fn push_json_string(out: &mut Vec<u8>, text: &str) {
    let plain = text
        .bytes()
        .all(|byte| byte >= 0x20 && byte != b'"' && byte != b'\\');
    if plain {
        out.push(b'"');
        out.extend_from_slice(text.as_bytes());
        out.push(b'"');
    } else if serde_json::to_writer(&mut *out, text).is_err() {
        out.extend_from_slice(b"null");
    }
}

fn push_integer(out: &mut Vec<u8>, value: impl itoa::Integer) {
    out.extend_from_slice(itoa::Buffer::new().format(value).as_bytes());
}

/// Keys and header values are shown as text (invalid UTF-8 replaced).
fn push_optional_text(out: &mut Vec<u8>, bytes: Option<&[u8]>) {
    match bytes {
        // `from_utf8` first: `from_utf8_lossy` walks the bytes chunk by
        // chunk, several times slower on the valid text that keys nearly
        // always are.
        Some(bytes) => match std::str::from_utf8(bytes) {
            Ok(text) => push_json_string(out, text),
            Err(_) => push_json_string(out, &String::from_utf8_lossy(bytes)),
        },
        None => out.extend_from_slice(b"null"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::consumer::ReceivedMessage;
    use serde_json::{json, Value};
    use std::sync::Arc;

    /// The run the chunks encode, as one JSON array of message objects,
    /// built from the columns as the driver builds them.
    fn parsed(encoded: &EncodedDeliveries) -> Value {
        let mut messages = Vec::new();
        for chunk in &encoded.chunks {
            let chunk: Value = serde_json::from_slice(chunk).unwrap();
            let [values, topics, keys, numbers, extras] = [0, 1, 2, 3, 4].map(|column| {
                chunk[column]
                    .as_array()
                    .unwrap_or_else(|| panic!("column {column} is not an array"))
                    .clone()
            });
            assert_eq!(keys.len(), values.len());
            assert_eq!(numbers.len(), values.len() * NUMBERS_PER_MESSAGE);
            let mut extras = extras.chunks(3).peekable();
            for (index, value) in values.into_iter().enumerate() {
                let number = |field: usize| numbers[index * NUMBERS_PER_MESSAGE + field].clone();
                let mut message = serde_json::Map::new();
                let topic = number(0).as_u64().unwrap() as usize;
                message.insert("topic".into(), topics[topic].clone());
                message.insert("partition".into(), number(1));
                message.insert("offset".into(), number(2));
                message.insert("key".into(), keys[index].clone());
                message.insert("value".into(), value);
                message.insert("headers".into(), json!({}));
                if let Some(extra) = extras.next_if(|extra| extra[0] == json!(index)) {
                    message.insert("headers".into(), extra[1].clone());
                    if !extra[2].is_null() {
                        message.insert("traceContext".into(), extra[2].clone());
                    }
                }
                message.insert("timestamp".into(), number(3));
                message.insert("attempt".into(), number(4));
                messages.push(Value::Object(message));
            }
            assert!(extras.next().is_none(), "extras out of order");
        }
        Value::Array(messages)
    }

    fn delivery(form: ValueForm, payload: Option<&[u8]>, key: Option<&[u8]>) -> Delivery {
        Delivery {
            message: Arc::new(ReceivedMessage {
                topic: "movie-events".into(),
                partition: 3,
                offset: 42,
                key: key.map(<[u8]>::to_vec),
                payload: payload.map(bytes::Bytes::copy_from_slice),
                headers: vec![
                    ("trace\"id".into(), Some(b"a\nb".to_vec())),
                    ("__proto__".into(), None),
                    ("bytes".into(), Some(vec![0xff, b'x'])),
                ],
                timestamp: Some(1_700_000_000_000),
            }),
            form,
            attempt: 2,
        }
    }

    #[test]
    fn json_values_are_embedded_and_every_field_survives_parsing() {
        let deliveries = [
            delivery(
                ValueForm::Json,
                Some(br#"{"eventType":"LIKE","n":[1,2.5,null]}"#),
                Some(b"movie-\"7\""),
            ),
            delivery(ValueForm::Null, None, None),
        ];
        let encoded = EncodedDeliveries::encode(&deliveries);
        assert_eq!(encoded.payloads, None);
        let parsed: Value = parsed(&encoded);
        assert_eq!(
            parsed,
            json!([
                {
                    "topic": "movie-events", "partition": 3, "offset": 42, "key": "movie-\"7\"",
                    "value": {"eventType": "LIKE", "n": [1, 2.5, null]},
                    "headers": {"trace\"id": "a\nb", "__proto__": null, "bytes": "\u{fffd}x"},
                    "timestamp": 1_700_000_000_000_i64, "attempt": 2
                },
                {
                    "topic": "movie-events", "partition": 3, "offset": 42, "key": null, "value": null,
                    "headers": {"trace\"id": "a\nb", "__proto__": null, "bytes": "\u{fffd}x"},
                    "timestamp": 1_700_000_000_000_i64, "attempt": 2
                }
            ])
        );
    }

    #[test]
    fn a_chunk_lists_each_topic_once_and_numbers_refer_to_it() {
        let on = |topic: &str, offset: i64| {
            let mut delivery = delivery(ValueForm::Null, None, Some(b"k"));
            let message = Arc::get_mut(&mut delivery.message).unwrap();
            message.topic = topic.into();
            message.offset = offset;
            message.headers.clear();
            message.timestamp = None;
            delivery
        };
        let encoded = EncodedDeliveries::encode(&[on("a", 1), on("b", 2), on("a", 3)]);
        let chunk: Value = serde_json::from_slice(&encoded.chunks[0]).unwrap();
        assert_eq!(chunk[1], json!(["a", "b"]));
        assert_eq!(chunk[4], json!([]));
        let messages = parsed(&encoded);
        let described: Vec<(Value, Value, Value)> = messages
            .as_array()
            .unwrap()
            .iter()
            .map(|m| {
                (
                    m["topic"].clone(),
                    m["offset"].clone(),
                    m["timestamp"].clone(),
                )
            })
            .collect();
        assert_eq!(
            described,
            [
                (json!("a"), json!(1), Value::Null),
                (json!("b"), json!(2), Value::Null),
                (json!("a"), json!(3), Value::Null),
            ]
        );
        assert_eq!(messages[1]["headers"], json!({}));
    }

    #[test]
    fn a_valid_traceparent_becomes_the_trace_context_and_an_invalid_one_does_not() {
        let with_headers = |headers: Vec<(&str, &str)>| {
            let mut delivery = delivery(ValueForm::Null, None, None);
            let message = Arc::get_mut(&mut delivery.message).unwrap();
            message.headers = headers
                .into_iter()
                .map(|(name, value)| (name.to_string(), Some(value.as_bytes().to_vec())))
                .collect();
            delivery
        };
        let parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00";
        let deliveries = [
            with_headers(vec![
                ("traceparent", parent),
                ("tracestate", "congo=t61rcWkgMzE"),
            ]),
            with_headers(vec![("traceparent", parent)]),
            with_headers(vec![("traceparent", "00-zz-00f067aa0ba902b7-01")]),
            with_headers(vec![]),
        ];
        let parsed = parsed(&EncodedDeliveries::encode(&deliveries));
        let contexts: Vec<&Value> = parsed
            .as_array()
            .unwrap()
            .iter()
            .map(|m| &m["traceContext"])
            .collect();
        assert_eq!(
            contexts,
            [
                &json!({"traceparent": parent, "traceId": "4bf92f3577b34da6a3ce929d0e0e4736",
                        "spanId": "00f067aa0ba902b7", "sampled": false, "tracestate": "congo=t61rcWkgMzE"}),
                &json!({"traceparent": parent, "traceId": "4bf92f3577b34da6a3ce929d0e0e4736",
                        "spanId": "00f067aa0ba902b7", "sampled": false}),
                &Value::Null,
                &Value::Null,
            ]
        );
        // The headers themselves are handed over as they came.
        assert_eq!(
            parsed[2]["headers"]["traceparent"],
            json!("00-zz-00f067aa0ba902b7-01")
        );
    }

    #[test]
    fn raw_values_are_ranges_into_one_buffer() {
        let deliveries = [
            delivery(ValueForm::Raw, Some(b"first"), None),
            delivery(ValueForm::Raw, Some(b""), None),
            delivery(ValueForm::Raw, None, None),
            delivery(ValueForm::Raw, Some(&[0, 159, 146, 150]), None),
        ];
        let encoded = EncodedDeliveries::encode(&deliveries);
        let payloads = encoded.payloads.clone().unwrap();
        let parsed: Value = parsed(&encoded);
        let values: Vec<Value> = parsed
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["value"].clone())
            .collect();
        assert_eq!(
            values,
            vec![json!([0, 5]), json!([5, 5]), Value::Null, json!([5, 9])]
        );
        assert_eq!(&payloads[0..5], b"first");
        assert_eq!(&payloads[5..9], &[0, 159, 146, 150]);
    }

    /// The payloads of a batch's messages are views into its chunks while
    /// they are in flight: a short chunk must not keep the room reserved for
    /// a full one (about 100 KB), or thousands of one-message batches waiting
    /// to be handled would hold that much each.
    #[test]
    fn a_short_chunk_does_not_keep_the_room_reserved_for_a_full_one() {
        let one = delivery(ValueForm::Json, Some(br#"{"id":1}"#), Some(b"k"));
        let mut writer = ChunkWriter {
            for_views: true,
            ..ChunkWriter::default()
        };
        let mut payloads = None;
        writer.push(&Entry::of(&one.message, one.form, 1), &mut payloads);
        let text = writer.finish();
        assert!(
            text.capacity() <= 2 * text.len(),
            "{} bytes held for {}",
            text.capacity(),
            text.len()
        );
    }

    #[test]
    fn a_chunk_says_whether_its_text_is_ascii_as_written() {
        let plain = |value: &str, key: &str| {
            let mut delivery = delivery(
                ValueForm::Json,
                Some(value.as_bytes()),
                Some(key.as_bytes()),
            );
            Arc::get_mut(&mut delivery.message).unwrap().headers.clear();
            delivery
        };
        let escaped = EncodedDeliveries::encode(&[plain(r#"{"t":"h\u00e9llo"}"#, "k")]);
        assert!(escaped.chunks[0].ascii);
        for non_ascii in [plain(r#"{"t":"héllo"}"#, "k"), plain("1", "clé")] {
            let encoded = EncodedDeliveries::encode(&[plain("2", "k"), non_ascii]);
            assert!(!encoded.chunks[0].ascii);
        }
    }

    #[test]
    fn long_runs_are_split_into_bounded_chunks_that_concatenate_to_the_run() {
        let value = format!(r#"{{"pad":"{}"}}"#, "x".repeat(1000));
        let big = format!(r#"{{"pad":"{}"}}"#, "y".repeat(3 * CHUNK_BYTES));
        let mut deliveries: Vec<Delivery> = (0..300)
            .map(|_| delivery(ValueForm::Json, Some(value.as_bytes()), None))
            .collect();
        deliveries.insert(150, delivery(ValueForm::Json, Some(big.as_bytes()), None));
        let encoded = EncodedDeliveries::encode(&deliveries);
        assert!(encoded.chunks.len() >= 5, "{} chunks", encoded.chunks.len());
        for chunk in &encoded.chunks {
            let longest_message = big.len() + 400;
            assert!(chunk.len() < CHUNK_BYTES + longest_message);
        }
        let messages = parsed(&encoded);
        let messages = messages.as_array().unwrap();
        assert_eq!(messages.len(), 301);
        assert_eq!(
            messages[150]["value"]["pad"].as_str().unwrap().len(),
            3 * CHUNK_BYTES
        );
        assert_eq!(messages[300]["value"]["pad"].as_str().unwrap().len(), 1000);
        assert_eq!(
            parsed(&EncodedDeliveries::encode(&[])),
            Value::Array(Vec::new())
        );
    }

    proptest::proptest! {
        /// Whatever the key, headers and topic hold, the text stays one valid JSON array.
        #[test]
        fn any_key_and_headers_encode_to_valid_json(
            key in proptest::collection::vec(proptest::num::u8::ANY, 0..40),
            name in ".{0,20}",
            value in proptest::collection::vec(proptest::num::u8::ANY, 0..40),
        ) {
            let mut message = (*delivery(ValueForm::Raw, Some(&value), Some(&key)).message).clone();
            message.headers = vec![(name.clone(), Some(value.clone()))];
            let deliveries = [Delivery { message: Arc::new(message), form: ValueForm::Raw, attempt: 1 }];
            let encoded = EncodedDeliveries::encode(&deliveries);
            let parsed: Value = parsed(&encoded);
            proptest::prop_assert_eq!(parsed[0]["key"].as_str().unwrap(), String::from_utf8_lossy(&key));
            proptest::prop_assert!(parsed[0]["headers"].get(&name).is_some());
        }
    }
}
