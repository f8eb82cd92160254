//! Decoding and validation of consumed message payloads, before they reach
//! JavaScript.
//!
//! A consumer picks one [`PayloadSchema`] (compiled once) and runs every
//! payload through [`PayloadSchema::decode`]. What passes is handed on as the
//! payload's own bytes or text, borrowed: validation never re-serialises.
//! What fails becomes a [`Rejection`] with a stable code and a short message
//! that says what is wrong and where, without echoing the payload.

use crate::core::error::{CoreError, Result};
use crate::core::events::{self, quoted_preview};
use jsonschema::error::ValidationErrorKind;
use serde::de::{DeserializeOwned, IgnoredAny};
use serde_json::Value;
use std::borrow::Cow;
use std::fmt;
use std::io;

/// The payload bytes are not UTF-8, so they cannot be JSON.
pub const ERR_INVALID_UTF8: &str = "ERR_INVALID_UTF8";
/// The payload is not JSON, or (where values are built: JSON Schema) JSON
/// beyond the parser's limits: nested deeper than 127 levels, or a number
/// beyond f64.
pub const ERR_INVALID_JSON: &str = "ERR_INVALID_JSON";
/// The payload is JSON, but not of the shape the schema asks for.
pub const ERR_SCHEMA_VIOLATION: &str = "ERR_SCHEMA_VIOLATION";
/// The payload is larger than the consumer's `maxValueBytes`.
pub const ERR_VALUE_TOO_LARGE: &str = "ERR_VALUE_TOO_LARGE";

/// Upper bound, in bytes, of a [`Rejection`] message: rejections end up in
/// logs and headers, and a payload can be megabytes.
pub const MAX_MESSAGE_LEN: usize = 300;

/// How much of an offending JSON value a message may quote.
const VALUE_PREVIEW_LEN: usize = 48;
/// How much of a JSON pointer a message may quote; keys are caller data too.
const POINTER_PREVIEW_LEN: usize = 96;

/// Deepest JSON Schema document accepted. Compiling recurses once per level,
/// and a document built from a JS object has no parser limit in front of it;
/// payloads themselves cannot nest deeper than `serde_json`'s 127 levels.
pub const MAX_SCHEMA_DEPTH: usize = 128;

const ELLIPSIS: &str = "…";

/// The names [`PayloadSchema::from_name`] accepts.
pub const SCHEMA_NAMES: [&str; 5] = [
    "raw",
    "json",
    "MovieEvent",
    "MovieViewEvent",
    "AnalyticsEvent",
];

/// What a consumer checks a payload against: its `schema` option.
#[derive(Debug, Clone, Default)]
pub enum PayloadSchema {
    /// Bytes are passed through untouched, tombstones included.
    Raw,
    /// Any valid JSON text.
    #[default]
    Json,
    /// A [`events::MovieEvent`].
    MovieEvent,
    /// A [`events::MovieViewEvent`].
    MovieViewEvent,
    /// An [`events::AnalyticsEvent`].
    AnalyticsEvent,
    /// A caller-supplied JSON Schema document.
    JsonSchema(Box<CompiledSchema>),
}

/// A successfully decoded payload, borrowed from the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decoded<'a> {
    /// The payload as it came ([`PayloadSchema::Raw`]); `None` is a tombstone.
    Raw(Option<&'a [u8]>),
    /// Validated JSON text, exactly the payload's bytes, for `JSON.parse`.
    Json(&'a str),
    /// A tombstone (no payload) under a JSON kind of schema.
    Null,
}

/// Why a payload was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// [`ERR_INVALID_UTF8`], [`ERR_INVALID_JSON`] or [`ERR_SCHEMA_VIOLATION`].
    pub code: &'static str,
    /// At most [`MAX_MESSAGE_LEN`] bytes.
    pub message: String,
}

impl PayloadSchema {
    /// Parses the name of a built-in schema, one of [`SCHEMA_NAMES`] (case
    /// sensitive, as in the consumer's documentation).
    pub fn from_name(name: &str) -> Result<Self> {
        match name {
            "raw" => Ok(Self::Raw),
            "json" => Ok(Self::Json),
            "MovieEvent" => Ok(Self::MovieEvent),
            "MovieViewEvent" => Ok(Self::MovieViewEvent),
            "AnalyticsEvent" => Ok(Self::AnalyticsEvent),
            _ => Err(CoreError::invalid_arg(format!(
                "schema must be one of {} or a JSON Schema document (got {})",
                SCHEMA_NAMES
                    .iter()
                    .map(|known| format!("\"{known}\""))
                    .collect::<Vec<_>>()
                    .join(", "),
                quoted_preview(name)
            ))),
        }
    }

    /// Compiles a JSON Schema document (drafts 4 to 2020-12, picked by its
    /// `$schema`, 2020-12 when absent). References must resolve inside the
    /// document: nothing is ever fetched.
    pub fn from_json_schema(document: &Value) -> Result<Self> {
        CompiledSchema::compile(document).map(|compiled| Self::JsonSchema(Box::new(compiled)))
    }

    /// The consumer option as JSON: a string names a built-in schema,
    /// anything else is a JSON Schema document.
    pub fn from_option(option: &Value) -> Result<Self> {
        match option {
            Value::String(name) => Self::from_name(name),
            document => Self::from_json_schema(document),
        }
    }

    /// The name to show in logs and headers.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Raw => "raw",
            Self::Json => "json",
            Self::MovieEvent => "MovieEvent",
            Self::MovieViewEvent => "MovieViewEvent",
            Self::AnalyticsEvent => "AnalyticsEvent",
            Self::JsonSchema(_) => "json-schema",
        }
    }

    /// Checks one message payload (`None` is a tombstone).
    pub fn decode<'a>(
        &self,
        payload: Option<&'a [u8]>,
    ) -> std::result::Result<Decoded<'a>, Rejection> {
        if let Self::Raw = self {
            return Ok(Decoded::Raw(payload));
        }
        let Some(bytes) = payload else {
            return Ok(Decoded::Null);
        };
        let text = std::str::from_utf8(bytes).map_err(Rejection::invalid_utf8)?;
        self.check_text(text)?;
        Ok(Decoded::Json(text))
    }

    fn check_text(&self, text: &str) -> std::result::Result<(), Rejection> {
        match self {
            Self::Raw => Ok(()),
            Self::Json => check_json_syntax(text),
            Self::MovieEvent => check_typed::<events::MovieEvent>(text, "MovieEvent"),
            Self::MovieViewEvent => check_typed::<events::MovieViewEvent>(text, "MovieViewEvent"),
            Self::AnalyticsEvent => check_typed::<events::AnalyticsEvent>(text, "AnalyticsEvent"),
            Self::JsonSchema(schema) => schema.check_text(text),
        }
    }
}

// The consumer shares one schema across its threads behind an `Arc`.
const _: () = {
    const fn shareable<T: Send + Sync>() {}
    shareable::<PayloadSchema>();
};

/// A JSON Schema document compiled into a reusable validator.
#[derive(Debug, Clone)]
pub struct CompiledSchema {
    validator: jsonschema::Validator,
}

impl CompiledSchema {
    /// Compiles `document`; an invalid document or a reference that does not
    /// resolve inside it is an [`CoreError::InvalidArgument`].
    pub fn compile(document: &Value) -> Result<Self> {
        if exceeds_depth(document, MAX_SCHEMA_DEPTH) {
            return Err(CoreError::invalid_arg(format!(
                "invalid JSON Schema: it nests deeper than {MAX_SCHEMA_DEPTH} levels"
            )));
        }
        jsonschema::options()
            .with_retriever(NoRetrieval)
            .build(document)
            .map(|validator| Self { validator })
            .map_err(|error| CoreError::invalid_arg(describe_schema_error(&error)))
    }

    /// The JSON Schema draft the document was compiled as.
    pub fn draft(&self) -> jsonschema::Draft {
        self.validator.draft()
    }

    fn check_text(&self, text: &str) -> std::result::Result<(), Rejection> {
        let instance: Value = serde_json::from_str(text).map_err(|error| {
            // Building values fails on some valid JSON too: deeper than 127
            // levels, or numbers beyond f64. The scan tells which it was.
            match check_json_syntax(text) {
                Err(not_json) => not_json,
                Ok(()) => Rejection::from_serde(
                    ERR_INVALID_JSON,
                    "payload exceeds the JSON parser's limits",
                    &error,
                ),
            }
        })?;
        self.validator
            .validate(&instance)
            .map_err(|error| Rejection {
                code: ERR_SCHEMA_VIOLATION,
                message: describe_validation_error("payload violates the JSON Schema", &error),
            })
    }
}

/// Refuses every external reference, whatever features `jsonschema` was
/// built with (Cargo unifies features, so another dependency could turn
/// HTTP retrieval back on): a consumer must not reach out to the network
/// or the file system because of what a schema document says.
struct NoRetrieval;

impl jsonschema::Retrieve for NoRetrieval {
    fn retrieve(
        &self,
        uri: &jsonschema::Uri<String>,
    ) -> std::result::Result<Value, Box<dyn std::error::Error + Send + Sync>> {
        Err(format!(
            "external $ref {} is not supported: schemas are never fetched, so include it under $defs",
            truncated(uri.as_str(), POINTER_PREVIEW_LEN)
        )
        .into())
    }
}

impl Rejection {
    fn invalid_utf8(error: std::str::Utf8Error) -> Self {
        let offset = error.valid_up_to();
        let message = match error.error_len() {
            Some(length) => format!(
                "payload is not valid UTF-8: invalid {length}-byte sequence at byte offset {offset}"
            ),
            None => format!(
                "payload is not valid UTF-8: it ends inside a multi-byte sequence at byte offset {offset}"
            ),
        };
        Self {
            code: ERR_INVALID_UTF8,
            message,
        }
    }

    /// Keeps serde's position, which it puts last, even when the description
    /// before it must be cut short.
    fn from_serde(code: &'static str, context: &str, error: &serde_json::Error) -> Self {
        let full = error.to_string();
        let position = if error.line() == 0 {
            String::new()
        } else {
            format!(" at line {} column {}", error.line(), error.column())
        };
        let description = full.strip_suffix(position.as_str()).unwrap_or(&full);
        let budget = MAX_MESSAGE_LEN.saturating_sub(context.len() + ": ".len() + position.len());
        Self {
            code,
            message: truncated(
                &format!("{context}: {}{position}", truncated(description, budget)),
                MAX_MESSAGE_LEN,
            )
            .into_owned(),
        }
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "{} ({})", self.message, self.code)
    }
}

impl std::error::Error for Rejection {}

/// Scans the text without building anything. Nesting depth is not limited
/// here: the scan keeps its own stack rather than recursing, and `JSON.parse`
/// on the JS side copes with deep nesting too.
fn check_json_syntax(text: &str) -> std::result::Result<(), Rejection> {
    serde_json::from_str::<IgnoredAny>(text)
        .map(|_| ())
        .map_err(|error| {
            Rejection::from_serde(ERR_INVALID_JSON, "payload is not valid JSON", &error)
        })
}

fn check_typed<T: DeserializeOwned>(
    text: &str,
    type_name: &str,
) -> std::result::Result<(), Rejection> {
    match serde_json::from_str::<T>(text) {
        Ok(_) => Ok(()),
        Err(error) => {
            // serde stops at the first problem, and its category misleads:
            // a wrong field early in text that is not JSON at all is a "data"
            // error, while a number where an enum belongs, nesting past its
            // limit or a number beyond f64 are "syntax" errors in valid JSON.
            // Only a scan of the whole text tells which problem to report.
            check_json_syntax(text)?;
            Err(Rejection::from_serde(
                ERR_SCHEMA_VIOLATION,
                &format!("payload is not a valid {type_name}"),
                &error,
            ))
        }
    }
}

fn describe_schema_error(error: &jsonschema::ValidationError<'_>) -> String {
    match error.kind() {
        // A reference that does not resolve has no place in the document to
        // point at, and its message names the reference.
        ValidationErrorKind::Referencing(_) => {
            truncated(&format!("invalid JSON Schema: {error}"), MAX_MESSAGE_LEN).into_owned()
        }
        _ => describe_validation_error("invalid JSON Schema", error),
    }
}

/// `{context} at {where}: {what} (schema path {which keyword})`, with the
/// offending value quoted only as a short preview.
fn describe_validation_error(context: &str, error: &jsonschema::ValidationError<'_>) -> String {
    let instance_path = error.instance_path().as_str();
    let location = if instance_path.is_empty() {
        Cow::Borrowed("the root")
    } else {
        truncated(instance_path, POINTER_PREVIEW_LEN)
    };
    let schema_path = error.schema_path().as_str();
    let keyword = if schema_path.is_empty() {
        String::new()
    } else {
        format!(
            " (schema path {})",
            truncated(schema_path, POINTER_PREVIEW_LEN)
        )
    };
    let what = error
        .masked_with(json_preview(error.instance()))
        .to_string();
    let budget = MAX_MESSAGE_LEN
        .saturating_sub(context.len() + " at : ".len() + location.len() + keyword.len());
    truncated(
        &format!(
            "{context} at {location}: {}{keyword}",
            truncated(&what, budget)
        ),
        MAX_MESSAGE_LEN,
    )
    .into_owned()
}

/// The start of `value`'s JSON text; serialisation stops at the preview's
/// length, so a huge value costs no more than a small one.
fn json_preview(value: &Value) -> String {
    let mut sink = BoundedSink {
        bytes: Vec::with_capacity(VALUE_PREVIEW_LEN),
        capacity: VALUE_PREVIEW_LEN,
        overflowed: false,
    };
    // An error here only means the sink is full, and what it holds is the preview.
    let _ = serde_json::to_writer(&mut sink, value);
    let text = match std::str::from_utf8(&sink.bytes) {
        Ok(text) => text,
        Err(error) => {
            let whole_chars = &sink.bytes[..error.valid_up_to()];
            std::str::from_utf8(whole_chars).unwrap_or_default()
        }
    };
    if sink.overflowed {
        format!("{text}{ELLIPSIS}")
    } else {
        text.to_owned()
    }
}

struct BoundedSink {
    bytes: Vec<u8>,
    capacity: usize,
    overflowed: bool,
}

impl io::Write for BoundedSink {
    fn write(&mut self, buffer: &[u8]) -> io::Result<usize> {
        let room = self.capacity.saturating_sub(self.bytes.len());
        if buffer.len() > room {
            self.bytes.extend_from_slice(&buffer[..room]);
            self.overflowed = true;
            return Err(io::Error::new(io::ErrorKind::WriteZero, "preview is full"));
        }
        self.bytes.extend_from_slice(buffer);
        Ok(buffer.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// `text` cut to at most `max_len` bytes on a character boundary, ending in
/// an ellipsis when cut.
fn truncated(text: &str, max_len: usize) -> Cow<'_, str> {
    if text.len() <= max_len {
        return Cow::Borrowed(text);
    }
    let mut end = max_len.saturating_sub(ELLIPSIS.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    Cow::Owned(format!("{}{ELLIPSIS}", &text[..end]))
}

/// Whether `document` nests deeper than `limit` levels, found without
/// recursion so that the check itself cannot overflow the stack.
fn exceeds_depth(document: &Value, limit: usize) -> bool {
    let mut pending = vec![(document, 1_usize)];
    while let Some((value, depth)) = pending.pop() {
        match value {
            Value::Array(_) | Value::Object(_) if depth > limit => return true,
            Value::Array(items) => pending.extend(items.iter().map(|item| (item, depth + 1))),
            Value::Object(members) => {
                pending.extend(members.values().map(|member| (member, depth + 1)))
            }
            _ => {}
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;
    use std::sync::Arc;

    const MOVIE_EVENT: &str =
        r#"{"eventType":"LIKE","userId":"u1","movieId":"m42","timestamp":1700000000000}"#;
    const VIEW_EVENT: &str =
        r#"{"eventType":"VIEW","userId":"u1","movieId":"m42","timestamp":1700000000000}"#;
    const ANALYTICS_EVENT: &str =
        r#"{"eventType":"SEARCH","sessionId":"s1","timestamp":1,"data":{"q":"matrix"}}"#;

    fn user_schema() -> PayloadSchema {
        PayloadSchema::from_json_schema(&json!({
            "type": "object",
            "required": ["name", "age"],
            "properties": {
                "name": {"type": "string", "pattern": "^[A-Z][a-z]+$"},
                "age": {"type": "integer", "minimum": 18},
                "role": {"enum": ["admin", "member"]},
                "tags": {"type": "array", "items": {"type": "string"}}
            }
        }))
        .unwrap()
    }

    fn every_kind() -> Vec<PayloadSchema> {
        vec![
            PayloadSchema::Raw,
            PayloadSchema::Json,
            PayloadSchema::MovieEvent,
            PayloadSchema::MovieViewEvent,
            PayloadSchema::AnalyticsEvent,
            user_schema(),
        ]
    }

    fn json_kinds() -> Vec<PayloadSchema> {
        every_kind().into_iter().skip(1).collect()
    }

    fn decode_text<'a>(
        schema: &PayloadSchema,
        text: &'a str,
    ) -> std::result::Result<Decoded<'a>, Rejection> {
        schema.decode(Some(text.as_bytes()))
    }

    fn rejection(schema: &PayloadSchema, text: &str) -> Rejection {
        decode_text(schema, text).unwrap_err()
    }

    fn nested_arrays(depth: usize) -> String {
        format!("{}{}", "[".repeat(depth), "]".repeat(depth))
    }

    #[test]
    fn names_are_parsed_exactly() {
        for name in SCHEMA_NAMES {
            assert_eq!(PayloadSchema::from_name(name).unwrap().name(), name);
        }
        for wrong in ["", "JSON", "Json", "movieevent", "json-schema", " raw"] {
            let error = PayloadSchema::from_name(wrong).unwrap_err();
            assert_eq!(error.code(), "ERR_INVALID_ARG");
            let message = error.to_string();
            assert!(
                message
                    .contains(r#""raw", "json", "MovieEvent", "MovieViewEvent", "AnalyticsEvent""#),
                "{message}"
            );
        }
        assert_eq!(user_schema().name(), "json-schema");
        assert_eq!(PayloadSchema::default().name(), "json");
    }

    #[test]
    fn an_option_is_a_name_or_a_schema_document() {
        assert_eq!(
            PayloadSchema::from_option(&json!("raw")).unwrap().name(),
            "raw"
        );
        assert_eq!(
            PayloadSchema::from_option(&json!({"type": "string"}))
                .unwrap()
                .name(),
            "json-schema"
        );
        assert!(PayloadSchema::from_option(&json!("nope")).is_err());
    }

    #[test]
    fn raw_passes_everything_through_untouched() {
        let bytes: &[u8] = b"\xff\xfe not json";
        let decoded = PayloadSchema::Raw.decode(Some(bytes)).unwrap();
        let Decoded::Raw(Some(passed)) = decoded else {
            panic!("{decoded:?}")
        };
        assert!(std::ptr::eq(passed, bytes));
        assert_eq!(PayloadSchema::Raw.decode(None).unwrap(), Decoded::Raw(None));
        assert_eq!(
            PayloadSchema::Raw.decode(Some(b"")).unwrap(),
            Decoded::Raw(Some(b""))
        );
    }

    #[test]
    fn json_accepts_any_json_text_and_borrows_it() {
        for text in [
            "{}",
            " [1, 2.5, -3e10, \"x\", null, true, {\"a\": {}}] ",
            "\"just a string\"",
            "0",
            "null",
            "{\"emoji\":\"🎬\",\"escaped\":\"\\u00e9\\n\"}",
        ] {
            let decoded = decode_text(&PayloadSchema::Json, text).unwrap();
            let Decoded::Json(passed) = decoded else {
                panic!("{decoded:?}")
            };
            assert!(
                std::ptr::eq(passed, text),
                "the text is borrowed, not copied"
            );
        }
    }

    #[test]
    fn json_rejects_malformed_text_with_its_position() {
        let cases = [
            ("", "EOF while parsing a value at line 1 column 0"),
            ("{\"a\":1,}", "key must be a string at line 1 column 8"),
            ("[1,]", "expected value at line 1 column 4"),
            (
                "{\"a\":1}\n{\"b\":2}",
                "trailing characters at line 2 column 1",
            ),
            ("{'a':1}", "key must be a string at line 1 column 2"),
            ("[1,\n2,\n", "EOF while parsing a value at line 3 column 0"),
            ("\u{feff}{}", "expected value at line 1 column 1"),
            ("{\"a\":\"tab\tinside\"}", "control character"),
            ("NaN", "expected value at line 1 column 1"),
        ];
        for (text, expected) in cases {
            let rejected = rejection(&PayloadSchema::Json, text);
            assert_eq!(rejected.code, ERR_INVALID_JSON, "{text:?}");
            assert!(rejected.message.starts_with("payload is not valid JSON: "));
            assert!(
                rejected.message.contains(expected),
                "{text:?}: {}",
                rejected.message
            );
        }
    }

    #[test]
    fn tombstones_decode_to_null_under_every_json_kind() {
        for schema in json_kinds() {
            assert_eq!(
                schema.decode(None).unwrap(),
                Decoded::Null,
                "{}",
                schema.name()
            );
        }
    }

    #[test]
    fn invalid_utf8_is_its_own_rejection() {
        for schema in json_kinds() {
            let rejected = schema.decode(Some(b"{\"a\":\"\xc3\x28\"}")).unwrap_err();
            assert_eq!(rejected.code, ERR_INVALID_UTF8, "{}", schema.name());
            assert_eq!(
                rejected.message,
                "payload is not valid UTF-8: invalid 1-byte sequence at byte offset 6"
            );
            let cut_short = schema.decode(Some("\"é".as_bytes().split_last().unwrap().1));
            assert!(cut_short
                .unwrap_err()
                .message
                .contains("ends inside a multi-byte sequence at byte offset 1"));
        }
    }

    #[test]
    fn movie_events_are_checked_against_the_type() {
        let schema = PayloadSchema::MovieEvent;
        assert!(decode_text(&schema, MOVIE_EVENT).is_ok());
        let with_extras = r#"{"eventType":"SHARE","userId":"u","movieId":"m","timestamp":-5,"metadata":{"source":"web"},"traceId":"t"}"#;
        assert!(decode_text(&schema, with_extras).is_ok());

        let cases = [
            (r#"{"eventType":"DISLIKE","userId":"u","movieId":"m","timestamp":1}"#, "unknown variant `DISLIKE`, expected one of `VIEW`, `LIKE`, `COMMENT`, `SHARE` at line 1 column 22"),
            (r#"{"eventType":"like","userId":"u","movieId":"m","timestamp":1}"#, "unknown variant `like`"),
            (r#"{"eventType":"LIKE","movieId":"m","timestamp":1}"#, "missing field `userId` at line 1 column 48"),
            (r#"{"eventType":"LIKE","userId":"u","movieId":"m","timestamp":1.5}"#, "invalid type: floating point `1.5`, expected i64 at line 1 column 62"),
            (r#"{"eventType":"LIKE","userId":"u","movieId":"m","timestamp":"1"}"#, "invalid type: string \"1\", expected i64"),
            (r#"{"eventType":"LIKE","userId":"u","movieId":"m","timestamp":1e3}"#, "expected i64"),
            (r#"{"eventType":"LIKE","userId":"u","movieId":"m","timestamp":9223372036854775808}"#, "expected i64"),
            (r#"{"eventType":"LIKE","userId":7,"movieId":"m","timestamp":1}"#, "invalid type: integer `7`, expected a string"),
            (r#"{"eventType":"LIKE","userId":"u","movieId":"m","timestamp":1,"metadata":[1]}"#, "expected a map"),
            (r#"{"eventType":"LIKE","userId":"u","userId":"v","movieId":"m","timestamp":1}"#, "duplicate field `userId`"),
            ("[]", "invalid length 0, expected struct MovieEvent"),
            ("null", "invalid type: null, expected struct MovieEvent"),
        ];
        for (text, expected) in cases {
            let rejected = rejection(&schema, text);
            assert_eq!(rejected.code, ERR_SCHEMA_VIOLATION, "{text}");
            assert!(rejected
                .message
                .starts_with("payload is not a valid MovieEvent: "));
            assert!(
                rejected.message.contains(expected),
                "{text}: {}",
                rejected.message
            );
        }
    }

    #[test]
    fn a_type_mismatch_in_malformed_json_reports_the_syntax_error() {
        let text = r#"{"eventType":"DISLIKE", oops"#;
        let rejected = rejection(&PayloadSchema::MovieEvent, text);
        assert_eq!(rejected.code, ERR_INVALID_JSON);
        assert!(
            rejected
                .message
                .contains("key must be a string at line 1 column 25"),
            "{}",
            rejected.message
        );
        let rejected = rejection(
            &PayloadSchema::MovieEvent,
            &format!("{MOVIE_EVENT} trailing"),
        );
        assert_eq!(rejected.code, ERR_INVALID_JSON);
        assert!(
            rejected.message.contains("trailing characters"),
            "{}",
            rejected.message
        );
    }

    #[test]
    fn view_events_must_be_views() {
        let schema = PayloadSchema::MovieViewEvent;
        assert!(decode_text(&schema, VIEW_EVENT).is_ok());
        let rejected = rejection(&schema, MOVIE_EVENT);
        assert_eq!(rejected.code, ERR_SCHEMA_VIOLATION);
        assert!(
            rejected
                .message
                .contains("unknown variant `LIKE`, expected `VIEW`"),
            "{}",
            rejected.message
        );
    }

    #[test]
    fn analytics_events_are_checked_against_the_type() {
        let schema = PayloadSchema::AnalyticsEvent;
        assert!(decode_text(&schema, ANALYTICS_EVENT).is_ok());
        let with_user =
            r#"{"eventType":"PAGE_VIEW","userId":"u","sessionId":"s","timestamp":1,"data":{}}"#;
        assert!(decode_text(&schema, with_user).is_ok());
        let without_data = r#"{"eventType":"SEARCH","sessionId":"s","timestamp":1}"#;
        let rejected = rejection(&schema, without_data);
        assert_eq!(rejected.code, ERR_SCHEMA_VIOLATION);
        assert!(
            rejected.message.contains("missing field `data`"),
            "{}",
            rejected.message
        );
        assert!(rejection(&schema, MOVIE_EVENT)
            .message
            .contains("unknown variant `LIKE`"));
    }

    #[test]
    fn deep_nesting_is_a_clean_rejection_where_values_are_built() {
        let deep = nested_arrays(10_000);
        // The syntax scan keeps its own stack: deep but valid JSON is JSON.
        assert!(decode_text(&PayloadSchema::Json, &deep).is_ok());
        assert!(decode_text(&PayloadSchema::Json, &nested_arrays(1_000_000)).is_ok());
        let unbalanced = &deep[..deep.len() - 1];
        assert_eq!(
            rejection(&PayloadSchema::Json, unbalanced).code,
            ERR_INVALID_JSON
        );

        let accept_all = PayloadSchema::from_json_schema(&json!(true)).unwrap();
        assert!(decode_text(&accept_all, &nested_arrays(127)).is_ok());
        for schema in [accept_all, user_schema()] {
            let rejected = rejection(&schema, &deep);
            assert_eq!(rejected.code, ERR_INVALID_JSON);
            assert_eq!(
                rejected.message,
                "payload exceeds the JSON parser's limits: recursion limit exceeded at line 1 column 128"
            );
            let rejected = rejection(&schema, unbalanced);
            assert_eq!(rejected.code, ERR_INVALID_JSON);
            assert!(
                rejected.message.starts_with("payload is not valid JSON: "),
                "{}",
                rejected.message
            );
        }

        let deep_metadata = format!(
            r#"{{"eventType":"LIKE","userId":"u","movieId":"m","timestamp":1,"metadata":{{"a":{deep}}}}}"#
        );
        let rejected = rejection(&PayloadSchema::MovieEvent, &deep_metadata);
        assert_eq!(rejected.code, ERR_SCHEMA_VIOLATION);
        assert_eq!(
            rejected.message,
            "payload is not a valid MovieEvent: recursion limit exceeded at line 1 column 203"
        );
        let deep_extra_field = format!(r#"{{"ignored":{deep},{}"#, &MOVIE_EVENT[1..]);
        assert!(decode_text(&PayloadSchema::MovieEvent, &deep_extra_field).is_ok());
        for schema in [
            PayloadSchema::MovieEvent,
            PayloadSchema::MovieViewEvent,
            PayloadSchema::AnalyticsEvent,
        ] {
            let rejected = rejection(&schema, &deep);
            assert_eq!(rejected.code, ERR_SCHEMA_VIOLATION, "{}", schema.name());
            assert!(rejected.message.len() <= MAX_MESSAGE_LEN);
        }
    }

    #[test]
    fn numbers_beyond_f64_are_json_but_not_values() {
        assert!(decode_text(&PayloadSchema::Json, "[1e400]").is_ok());
        let rejected = rejection(&user_schema(), "[1e400]");
        assert_eq!(rejected.code, ERR_INVALID_JSON);
        assert_eq!(
            rejected.message,
            "payload exceeds the JSON parser's limits: number out of range at line 1 column 6"
        );
        let huge_timestamp = r#"{"eventType":"LIKE","userId":"u","movieId":"m","timestamp":1e400}"#;
        let rejected = rejection(&PayloadSchema::MovieEvent, huge_timestamp);
        assert_eq!(rejected.code, ERR_SCHEMA_VIOLATION);
        assert!(
            rejected.message.contains("number out of range"),
            "{}",
            rejected.message
        );
    }

    #[test]
    fn a_number_where_an_enum_belongs_is_a_violation_not_bad_json() {
        let numeric_type = r#"{"eventType":5,"userId":"u","movieId":"m","timestamp":1}"#;
        let rejected = rejection(&PayloadSchema::MovieEvent, numeric_type);
        assert_eq!(rejected.code, ERR_SCHEMA_VIOLATION);
        assert!(
            rejected.message.contains("at line 1 column 14"),
            "{}",
            rejected.message
        );
    }

    #[test]
    fn messages_about_huge_payloads_stay_short() {
        let huge = "x".repeat(1 << 20);
        let huge_event_type =
            format!(r#"{{"eventType":"{huge}","userId":"u","movieId":"m","timestamp":1}}"#);
        let rejected = rejection(&PayloadSchema::MovieEvent, &huge_event_type);
        assert_eq!(rejected.code, ERR_SCHEMA_VIOLATION);
        assert!(
            rejected.message.len() <= MAX_MESSAGE_LEN,
            "{}",
            rejected.message.len()
        );
        assert!(
            rejected.message.ends_with(" at line 1 column 1048591"),
            "{}",
            rejected.message
        );
        assert!(rejected.message.contains("unknown variant `xxxx"));

        let unterminated = format!("\"{huge}");
        let rejected = rejection(&PayloadSchema::Json, &unterminated);
        assert!(rejected.message.len() <= MAX_MESSAGE_LEN);

        let huge_multibyte = format!(r#"{{"name":"{}","age":30}}"#, "é".repeat(1 << 19));
        let rejected = rejection(&user_schema(), &huge_multibyte);
        assert_eq!(rejected.code, ERR_SCHEMA_VIOLATION);
        assert!(
            rejected.message.len() <= MAX_MESSAGE_LEN,
            "{}",
            rejected.message.len()
        );
        assert!(
            rejected.message.contains("at /name: \"éééé"),
            "{}",
            rejected.message
        );

        let huge_key = format!(r#"{{"name":"Ann","age":30,"tags":{{"{huge}":1}}}}"#);
        let rejected = rejection(&user_schema(), &huge_key);
        assert!(
            rejected.message.len() <= MAX_MESSAGE_LEN,
            "{}",
            rejected.message.len()
        );
        assert!(
            rejected.message.contains("at /tags: "),
            "{}",
            rejected.message
        );
    }

    #[test]
    fn json_schema_accepts_conforming_payloads() {
        let schema = user_schema();
        for text in [
            r#"{"name":"Ann","age":18}"#,
            r#"{"name":"Bob","age":99,"role":"admin","tags":["a"],"extra":{}}"#,
        ] {
            let decoded = decode_text(&schema, text).unwrap();
            assert_eq!(decoded, Decoded::Json(text));
        }
    }

    #[test]
    fn json_schema_violations_say_where_and_what() {
        let schema = user_schema();
        let cases = [
            (r#"{"name":"Ann"}"#, r#"payload violates the JSON Schema at the root: "age" is a required property (schema path /required)"#),
            (r#"{"name":"Ann","age":"30"}"#, r#"payload violates the JSON Schema at /age: "30" is not of type "integer" (schema path /properties/age/type)"#),
            (r#"{"name":"Ann","age":17}"#, "payload violates the JSON Schema at /age: 17 is less than the minimum of 18 (schema path /properties/age/minimum)"),
            (r#"{"name":"ann","age":30}"#, r#"payload violates the JSON Schema at /name: "ann" does not match "^[A-Z][a-z]+$" (schema path /properties/name/pattern)"#),
            (r#"{"name":"Ann","age":30,"role":"owner"}"#, r#"payload violates the JSON Schema at /role: "owner" is not one of "admin" or "member" (schema path /properties/role/enum)"#),
            (r#"{"name":"Ann","age":30,"tags":["a",2]}"#, r#"payload violates the JSON Schema at /tags/1: 2 is not of type "string" (schema path /properties/tags/items/type)"#),
            ("[]", r#"payload violates the JSON Schema at the root: [] is not of type "object" (schema path /type)"#),
        ];
        for (text, expected) in cases {
            let rejected = rejection(&schema, text);
            assert_eq!(rejected.code, ERR_SCHEMA_VIOLATION, "{text}");
            assert_eq!(rejected.message, expected);
        }
        assert_eq!(rejection(&schema, "{\"name\":").code, ERR_INVALID_JSON);
    }

    #[test]
    fn json_schema_drafts_7_and_2020_12_both_compile_and_validate() {
        let draft7 = PayloadSchema::from_json_schema(&json!({
            "$schema": "http://json-schema.org/draft-07/schema#",
            "definitions": {"id": {"type": "string", "minLength": 1}},
            "type": "object",
            "properties": {"userId": {"$ref": "#/definitions/id"}},
            "dependencies": {"movieId": ["userId"]},
            "additionalItems": false
        }))
        .unwrap();
        let draft2020 = PayloadSchema::from_json_schema(&json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "$defs": {"id": {"type": "string", "minLength": 1}},
            "type": "object",
            "properties": {"userId": {"$ref": "#/$defs/id"}, "pair": {"prefixItems": [{"type": "integer"}], "items": false}},
            "dependentRequired": {"movieId": ["userId"]},
            "unevaluatedProperties": {"type": ["string", "array"]}
        }))
        .unwrap();
        let PayloadSchema::JsonSchema(compiled) = &draft7 else {
            panic!()
        };
        assert_eq!(compiled.draft(), jsonschema::Draft::Draft7);
        let PayloadSchema::JsonSchema(compiled) = &draft2020 else {
            panic!()
        };
        assert_eq!(compiled.draft(), jsonschema::Draft::Draft202012);

        for schema in [&draft7, &draft2020] {
            assert!(decode_text(schema, r#"{"userId":"u","movieId":"m"}"#).is_ok());
            let rejected = rejection(schema, r#"{"userId":""}"#);
            assert!(
                rejected
                    .message
                    .contains("at /userId: \"\" is shorter than 1 character"),
                "{}",
                rejected.message
            );
            let rejected = rejection(schema, r#"{"movieId":"m"}"#);
            assert!(
                rejected
                    .message
                    .contains("\"userId\" is a required property"),
                "{}",
                rejected.message
            );
        }
        let rejected = rejection(&draft2020, r#"{"pair":[1,2]}"#);
        assert!(
            rejected.message.contains("at /pair"),
            "{}",
            rejected.message
        );
        let rejected = rejection(&draft2020, r#"{"other":1}"#);
        assert!(
            rejected.message.contains("unevaluatedProperties"),
            "{}",
            rejected.message
        );
    }

    #[test]
    fn an_unset_draft_means_2020_12() {
        let PayloadSchema::JsonSchema(compiled) = user_schema() else {
            panic!()
        };
        assert_eq!(compiled.draft(), jsonschema::Draft::Draft202012);
    }

    #[test]
    fn invalid_schema_documents_are_invalid_arguments() {
        let cases = [
            (json!({"type": "strng"}), "at /type"),
            (
                json!({"minimum": "5"}),
                "at /minimum: \"5\" is not of type \"number\"",
            ),
            (
                json!({"properties": {"a": {"pattern": "(unclosed"}}}),
                "at /properties/a/pattern",
            ),
            (json!({"required": "name"}), "at /required"),
            (json!(42), "42 is not of types \"boolean\", \"object\""),
            (
                json!({"$ref": "#/$defs/missing"}),
                "/$defs/missing' does not exist",
            ),
        ];
        for (document, expected) in cases {
            let error = PayloadSchema::from_json_schema(&document).unwrap_err();
            assert_eq!(error.code(), "ERR_INVALID_ARG");
            let message = error.to_string();
            assert!(message.starts_with("invalid JSON Schema"), "{message}");
            assert!(message.contains(expected), "{document}: {message}");
            assert!(message.len() <= MAX_MESSAGE_LEN);
        }
    }

    #[test]
    fn remote_references_fail_at_compile_time() {
        for (reference, resource) in [
            (
                "https://example.com/schemas/user.json",
                "https://example.com/schemas/user.json",
            ),
            (
                "http://127.0.0.1:1/user.json#/definitions/id",
                "http://127.0.0.1:1/user.json",
            ),
            ("file:///etc/passwd", "file:///etc/passwd"),
        ] {
            let error = PayloadSchema::from_json_schema(&json!({
                "type": "object",
                "properties": {"user": {"$ref": reference}}
            }))
            .unwrap_err();
            assert_eq!(error.code(), "ERR_INVALID_ARG");
            assert_eq!(
                error.to_string(),
                format!(
                    "invalid JSON Schema: Resource '{resource}' is not present in a registry and retrieving it failed: \
                     external $ref {resource} is not supported: schemas are never fetched, so include it under $defs"
                )
            );
        }
        let relative = PayloadSchema::from_json_schema(&json!({"$ref": "other.json"})).unwrap_err();
        assert!(
            relative.to_string().contains("'other.json' is not present"),
            "{relative}"
        );
        let with_base = json!({"$id": "https://example.com/root.json", "$ref": "other.json"});
        let message = PayloadSchema::from_json_schema(&with_base)
            .unwrap_err()
            .to_string();
        assert!(
            message.contains("https://example.com/other.json is not supported"),
            "{message}"
        );
        let unknown_dialect =
            json!({"$schema": "https://example.com/my-dialect", "type": "object"});
        let message = PayloadSchema::from_json_schema(&unknown_dialect)
            .unwrap_err()
            .to_string();
        assert!(
            message.contains("Unknown meta-schema: 'https://example.com/my-dialect'"),
            "{message}"
        );
    }

    #[test]
    fn local_and_self_references_resolve_offline() {
        let self_reference = PayloadSchema::from_json_schema(&json!({"$ref": "#"})).unwrap();
        assert!(decode_text(&self_reference, "1").is_ok());
        let anchored = PayloadSchema::from_json_schema(&json!({
            "$id": "https://example.com/root.json",
            "$defs": {"id": {"$anchor": "id", "type": "string"}},
            "properties": {"a": {"$ref": "#id"}, "b": {"$ref": "https://example.com/root.json#/$defs/id"}}
        }))
        .unwrap();
        assert!(decode_text(&anchored, r#"{"a":"x","b":"y"}"#).is_ok());
        assert!(rejection(&anchored, r#"{"b":1}"#)
            .message
            .contains("at /b: 1 is not of type \"string\""));
    }

    fn nested_items_schema(depth: usize) -> Value {
        let mut document = json!({"type": "string"});
        for _ in 1..depth {
            let mut wrapper = serde_json::Map::new();
            wrapper.insert("items".to_owned(), document);
            document = Value::Object(wrapper);
        }
        document
    }

    /// `Value`'s own drop recurses, so a very deep one is taken apart from
    /// the outside in.
    fn dismantle(mut document: Value) {
        while let Value::Object(mut members) = document {
            document = members.remove("items").unwrap_or_default();
        }
    }

    #[test]
    fn overly_deep_schema_documents_are_refused_without_recursing() {
        let too_deep = nested_items_schema(100_000);
        let error = PayloadSchema::from_json_schema(&too_deep).unwrap_err();
        assert_eq!(
            error.to_string(),
            "invalid JSON Schema: it nests deeper than 128 levels"
        );
        dismantle(too_deep);
        assert!(PayloadSchema::from_json_schema(&nested_items_schema(129)).is_err());

        // The deepest accepted document compiles and validates on a thread
        // with the default 2 MiB stack (this test's own).
        let deepest =
            PayloadSchema::from_json_schema(&nested_items_schema(MAX_SCHEMA_DEPTH)).unwrap();
        let leaf = format!("{}1{}", "[".repeat(127), "]".repeat(127));
        let rejected = rejection(&deepest, &leaf);
        assert_eq!(rejected.code, ERR_SCHEMA_VIOLATION);
        assert!(rejected.message.len() <= MAX_MESSAGE_LEN);
    }

    #[test]
    fn recursive_schemas_validate_payloads_up_to_the_parser_limit() {
        let tree = PayloadSchema::from_json_schema(&json!({
            "type": "array",
            "items": {"$ref": "#"}
        }))
        .unwrap();
        assert!(decode_text(&tree, &nested_arrays(127)).is_ok());
        let leaf = format!("{}1{}", "[".repeat(126), "]".repeat(126));
        let rejected = rejection(&tree, &leaf);
        assert!(
            rejected
                .message
                .starts_with("payload violates the JSON Schema at /0/0/0/"),
            "{}",
            rejected.message
        );
        assert!(
            rejected
                .message
                .ends_with("…: 1 is not of type \"array\" (schema path /type)"),
            "{}",
            rejected.message
        );
        assert!(rejected.message.len() <= MAX_MESSAGE_LEN);
    }

    #[test]
    fn one_compiled_schema_serves_many_threads() {
        let schema = Arc::new(user_schema());
        let workers: Vec<_> = (0..4)
            .map(|worker| {
                let schema = Arc::clone(&schema);
                std::thread::spawn(move || {
                    for age in 0..500 {
                        let text = format!(r#"{{"name":"Ann","age":{}}}"#, age + worker);
                        assert_eq!(
                            schema.decode(Some(text.as_bytes())).is_ok(),
                            age + worker >= 18
                        );
                    }
                })
            })
            .collect();
        for worker in workers {
            worker.join().unwrap();
        }
    }

    #[test]
    fn rejections_display_message_and_code() {
        let rejected = rejection(&PayloadSchema::Json, "{");
        assert_eq!(
            rejected.to_string(),
            "payload is not valid JSON: EOF while parsing an object at line 1 column 1 (ERR_INVALID_JSON)"
        );
    }

    #[test]
    fn truncation_respects_character_boundaries() {
        assert_eq!(truncated("short", 10), "short");
        assert_eq!(truncated("exactly10!", 10), "exactly10!");
        assert_eq!(truncated("abcdefghijk", 10), "abcdefg…");
        assert_eq!(truncated("ééééé", 8), "éé…");
        assert_eq!(
            json_preview(&json!("é".repeat(100))).len(),
            1 + 23 * 2 + ELLIPSIS.len()
        );
        assert_eq!(json_preview(&json!({"a": [1, 2]})), r#"{"a":[1,2]}"#);
    }

    fn arbitrary_payload() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            prop::collection::vec(any::<u8>(), 0..256),
            "[\\[\\]{}\",:0-9a-zA-Z .eE+\\\\-]{0,64}".prop_map(String::into_bytes),
            (
                prop::sample::select(vec![
                    MOVIE_EVENT,
                    VIEW_EVENT,
                    ANALYTICS_EVENT,
                    r#"{"name":"Ann","age":30}"#
                ]),
                any::<prop::sample::Index>(),
                any::<u8>(),
            )
                .prop_map(|(valid, position, byte)| {
                    let mut bytes = valid.as_bytes().to_vec();
                    let at = position.index(bytes.len());
                    bytes[at] = byte;
                    bytes
                }),
        ]
    }

    proptest! {
        #[test]
        fn decode_never_panics_and_borrows_what_it_accepts(payload in arbitrary_payload()) {
            for schema in every_kind() {
                match schema.decode(Some(&payload)) {
                    Ok(Decoded::Raw(Some(passed))) => prop_assert!(std::ptr::eq(passed, payload.as_slice())),
                    Ok(Decoded::Json(text)) => {
                        prop_assert!(std::ptr::eq(text.as_bytes(), payload.as_slice()));
                        prop_assert!(serde_json::from_str::<Value>(text).is_ok());
                    }
                    Ok(other) => prop_assert!(false, "{other:?} for a present payload"),
                    Err(rejected) => {
                        prop_assert!([ERR_INVALID_UTF8, ERR_INVALID_JSON, ERR_SCHEMA_VIOLATION].contains(&rejected.code));
                        prop_assert!(rejected.message.len() <= MAX_MESSAGE_LEN);
                        if matches!(schema, PayloadSchema::Json) {
                            prop_assert!(serde_json::from_slice::<Value>(&payload).is_err());
                        }
                    }
                }
            }
        }
    }
}
