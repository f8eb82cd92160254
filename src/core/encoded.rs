//! The compact form in which deliveries cross into JavaScript: JSON arrays
//! of messages, so V8 builds every message object with `JSON.parse`, and one
//! buffer holding the raw payloads, which the messages' values become views
//! into (no copy per message).
//!
//! A run is split into chunks of about [`CHUNK_BYTES`]: V8 keeps strings
//! below 128 KiB in its young generation, while a larger one gets pages of
//! its own, mapped (and page-faulted) afresh for every hand-over.

use crate::core::consumer::{Delivery, ValueForm};
use crate::core::trace;
use std::io::Write;

/// A chunk is closed once it holds this much; one message may exceed it.
pub const CHUNK_BYTES: usize = 64 * 1024;

/// A run of deliveries, encoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedDeliveries {
    /// The messages in order, as JSON arrays (UTF-8 text) whose concatenation
    /// is the run: `[{topic, partition, offset, key, value, headers,
    /// timestamp, attempt}, ...]`. `value` is the validated JSON itself,
    /// `null`, or, for raw payloads, `[start, end]` into `payloads`.
    pub chunks: Vec<Vec<u8>>,
    /// Present when some value is raw.
    pub payloads: Option<Vec<u8>>,
}

impl EncodedDeliveries {
    /// The messages as the JSON arrays the driver parses, and the raw payloads
    /// the `[start, end]` values of raw messages point into. Built off the
    /// JavaScript thread, so the event loop only runs `JSON.parse`.
    pub fn encode(deliveries: &[Delivery]) -> Self {
        let mut chunks = Vec::new();
        let mut chunk: Vec<u8> = Vec::new();
        let mut payloads: Option<Vec<u8>> = None;
        for delivery in deliveries {
            let message = &delivery.message;
            if chunk.is_empty() {
                chunk.reserve(CHUNK_BYTES + message.payload.as_ref().map_or(0, Vec::len) + 256);
                chunk.push(b'[');
            } else {
                chunk.push(b',');
            }
            chunk.extend_from_slice(b"{\"topic\":");
            push_json_string(&mut chunk, &message.topic);
            chunk.extend_from_slice(b",\"partition\":");
            push_integer(&mut chunk, message.partition);
            chunk.extend_from_slice(b",\"offset\":");
            push_integer(&mut chunk, message.offset);
            chunk.extend_from_slice(b",\"key\":");
            push_optional_text(&mut chunk, message.key.as_deref());
            chunk.extend_from_slice(b",\"value\":");
            match (delivery.form, &message.payload) {
                // Validated JSON (hence UTF-8) when it was decoded as such.
                (ValueForm::Json, Some(payload)) => chunk.extend_from_slice(payload),
                (ValueForm::Raw, Some(payload)) => {
                    let buffer = payloads.get_or_insert_with(Vec::new);
                    let start = buffer.len();
                    buffer.extend_from_slice(payload);
                    chunk.push(b'[');
                    push_integer(&mut chunk, start);
                    chunk.push(b',');
                    push_integer(&mut chunk, buffer.len());
                    chunk.push(b']');
                }
                _ => chunk.extend_from_slice(b"null"),
            }
            chunk.extend_from_slice(b",\"headers\":{");
            for (position, (name, value)) in message.headers.iter().enumerate() {
                if position > 0 {
                    chunk.push(b',');
                }
                push_json_string(&mut chunk, name);
                chunk.push(b':');
                push_optional_text(&mut chunk, value.as_deref());
            }
            chunk.push(b'}');
            push_trace_context(&mut chunk, &message.headers);
            chunk.extend_from_slice(b",\"timestamp\":");
            match message.timestamp {
                Some(timestamp) => push_integer(&mut chunk, timestamp),
                None => chunk.extend_from_slice(b"null"),
            }
            chunk.extend_from_slice(b",\"attempt\":");
            push_integer(&mut chunk, delivery.attempt);
            chunk.push(b'}');
            if chunk.len() >= CHUNK_BYTES {
                chunk.push(b']');
                chunks.push(std::mem::take(&mut chunk));
            }
        }
        if !chunk.is_empty() || chunks.is_empty() {
            if chunk.is_empty() {
                chunk.push(b'[');
            }
            chunk.push(b']');
            chunks.push(chunk);
        }
        // Raw messages always need the buffer, even when every payload is empty.
        if payloads.is_none()
            && deliveries.iter().any(|delivery| {
                delivery.form == ValueForm::Raw && delivery.message.payload.is_some()
            })
        {
            payloads = Some(Vec::new());
        }
        EncodedDeliveries { chunks, payloads }
    }
}

/// `,"traceContext":{...}` when the message carries a valid `traceparent`
/// (and, with it, its `tracestate`, if any).
fn push_trace_context(out: &mut Vec<u8>, headers: &[(String, Option<Vec<u8>>)]) {
    let header = |wanted: &str| {
        headers
            .iter()
            .find(|(name, _)| name == wanted)
            .and_then(|(_, value)| value.as_deref())
    };
    let Some(raw) = header(trace::TRACEPARENT) else {
        return;
    };
    let Some(parent) = trace::parse(raw) else {
        return;
    };
    out.extend_from_slice(b",\"traceContext\":{\"traceparent\":");
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

    /// The run the chunks encode, as one JSON array.
    fn parsed(encoded: &EncodedDeliveries) -> Value {
        let mut messages = Vec::new();
        for chunk in &encoded.chunks {
            let Value::Array(part) = serde_json::from_slice(chunk).unwrap() else {
                panic!("a chunk is not an array");
            };
            messages.extend(part);
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
                payload: payload.map(<[u8]>::to_vec),
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
