//! The compact form in which deliveries cross into JavaScript: one JSON array
//! for a run of messages, so V8 builds every message object in a single
//! `JSON.parse`, and one buffer holding the raw payloads, which the messages'
//! values become views into (no copy per message).

use crate::core::consumer::{Delivery, ValueForm};
use std::fmt::Write;

/// A run of deliveries, encoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedDeliveries {
    /// `[{topic, partition, offset, key, value, headers, timestamp, attempt}, ...]`.
    /// `value` is the validated JSON itself, `null`, or, for raw payloads,
    /// `[start, end]` into `payloads`.
    pub json: String,
    /// Present when some value is raw.
    pub payloads: Option<Vec<u8>>,
}

impl EncodedDeliveries {
    /// The messages as the JSON array the driver parses, and the raw payloads the
    /// `[start, end]` values of raw messages point into. Built off the JavaScript
    /// thread, so the event loop only runs `JSON.parse`.
    pub fn encode(deliveries: &[Delivery]) -> Self {
        let mut json = String::with_capacity(
            deliveries
                .iter()
                .map(|delivery| delivery.message.payload.as_ref().map_or(0, Vec::len) + 160)
                .sum(),
        );
        let mut payloads: Option<Vec<u8>> = None;
        json.push('[');
        for (index, delivery) in deliveries.iter().enumerate() {
            let message = &delivery.message;
            if index > 0 {
                json.push(',');
            }
            json.push_str("{\"topic\":");
            push_json_string(&mut json, &message.topic);
            let _ = write!(
                json,
                ",\"partition\":{},\"offset\":{},\"key\":",
                message.partition, message.offset
            );
            push_optional_text(&mut json, message.key.as_deref());
            json.push_str(",\"value\":");
            match (delivery.form, &message.payload) {
                (ValueForm::Json, Some(payload)) => match std::str::from_utf8(payload) {
                    Ok(text) => json.push_str(text),
                    // Unreachable for validated values; lossy keeps the JSON well-formed.
                    Err(_) => json.push_str(&String::from_utf8_lossy(payload)),
                },
                (ValueForm::Raw, Some(payload)) => {
                    let buffer = payloads.get_or_insert_with(Vec::new);
                    let start = buffer.len();
                    buffer.extend_from_slice(payload);
                    let _ = write!(json, "[{start},{}]", buffer.len());
                }
                _ => json.push_str("null"),
            }
            json.push_str(",\"headers\":{");
            for (position, (name, value)) in message.headers.iter().enumerate() {
                if position > 0 {
                    json.push(',');
                }
                push_json_string(&mut json, name);
                json.push(':');
                push_optional_text(&mut json, value.as_deref());
            }
            json.push_str("},\"timestamp\":");
            match message.timestamp {
                Some(timestamp) => {
                    let _ = write!(json, "{timestamp}");
                }
                None => json.push_str("null"),
            }
            let _ = write!(json, ",\"attempt\":{}}}", delivery.attempt);
        }
        json.push(']');
        // Raw messages always need the buffer, even when every payload is empty.
        if payloads.is_none()
            && deliveries.iter().any(|delivery| {
                delivery.form == ValueForm::Raw && delivery.message.payload.is_some()
            })
        {
            payloads = Some(Vec::new());
        }
        EncodedDeliveries { json, payloads }
    }
}

fn push_json_string(json: &mut String, text: &str) {
    match serde_json::to_string(text) {
        Ok(quoted) => json.push_str(&quoted),
        Err(_) => json.push_str("null"),
    }
}

/// Keys and header values are shown as text (invalid UTF-8 replaced).
fn push_optional_text(json: &mut String, bytes: Option<&[u8]>) {
    match bytes {
        Some(bytes) => push_json_string(json, &String::from_utf8_lossy(bytes)),
        None => json.push_str("null"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::consumer::ReceivedMessage;
    use serde_json::{json, Value};
    use std::sync::Arc;

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
        let parsed: Value = serde_json::from_str(&encoded.json).unwrap();
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
    fn raw_values_are_ranges_into_one_buffer() {
        let deliveries = [
            delivery(ValueForm::Raw, Some(b"first"), None),
            delivery(ValueForm::Raw, Some(b""), None),
            delivery(ValueForm::Raw, None, None),
            delivery(ValueForm::Raw, Some(&[0, 159, 146, 150]), None),
        ];
        let encoded = EncodedDeliveries::encode(&deliveries);
        let payloads = encoded.payloads.unwrap();
        let parsed: Value = serde_json::from_str(&encoded.json).unwrap();
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
            let parsed: Value = serde_json::from_str(&encoded.json).unwrap();
            proptest::prop_assert_eq!(parsed[0]["key"].as_str().unwrap(), String::from_utf8_lossy(&key));
            proptest::prop_assert!(parsed[0]["headers"].get(&name).is_some());
        }
    }
}
