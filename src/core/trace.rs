//! W3C Trace Context (<https://www.w3.org/TR/trace-context/>) in Kafka
//! headers, as OpenTelemetry's propagators write it: producers may send a
//! `traceparent` header (checked, or generated), and consumers hand the
//! parsed context to the callback so spans link across Kafka.

use crate::core::error::{CoreError, Result};
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};

pub const TRACEPARENT: &str = "traceparent";
pub const TRACESTATE: &str = "tracestate";

/// A parsed `traceparent`: `version-traceid-parentid-flags`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceParent<'a> {
    pub trace_id: &'a str,
    pub span_id: &'a str,
    pub sampled: bool,
}

/// Parses a `traceparent` value by the specification's rules: lowercase hex
/// fields, ids not all zeros, version `ff` invalid, and for version `00`
/// nothing after the flags (later versions may append `-` fields).
pub fn parse(value: &[u8]) -> Option<TraceParent<'_>> {
    // Only ASCII is valid, which also makes the slicing below safe.
    if value.len() < 55 || !value.is_ascii() {
        return None;
    }
    let text = std::str::from_utf8(value).ok()?;
    let (version, trace_id, span_id, flags) =
        (&text[0..2], &text[3..35], &text[36..52], &text[53..55]);
    let separators = [2, 35, 52].iter().all(|&at| text.as_bytes()[at] == b'-');
    let valid = separators
        && [version, trace_id, span_id, flags]
            .iter()
            .all(|field| is_lower_hex(field))
        && version != "ff"
        && (text.len() == 55 || (version != "00" && text.as_bytes()[55] == b'-'))
        && !all_zeros(trace_id)
        && !all_zeros(span_id);
    let flags = u8::from_str_radix(flags, 16).ok()?;
    valid.then_some(TraceParent {
        trace_id,
        span_id,
        sampled: flags & 1 == 1,
    })
}

fn is_lower_hex(field: &str) -> bool {
    field
        .bytes()
        .all(|byte| byte.is_ascii_digit() || (b'a'..=b'f').contains(&byte))
}

fn all_zeros(field: &str) -> bool {
    field.bytes().all(|byte| byte == b'0')
}

/// Checks the trace headers of an outgoing message: at most one
/// `traceparent`, and a valid one, so a malformed context does not spread to
/// every consumer downstream.
pub fn check_headers(headers: &[(String, Option<Vec<u8>>)]) -> Result<()> {
    let mut seen = false;
    for (name, value) in headers {
        if name != TRACEPARENT {
            continue;
        }
        if seen {
            return Err(CoreError::invalid_arg(
                "headers.traceparent must be given once",
            ));
        }
        seen = true;
        let Some(value) = value.as_deref() else {
            return Err(CoreError::invalid_arg(
                "headers.traceparent must be a W3C traceparent, not null",
            ));
        };
        if parse(value).is_none() {
            return Err(CoreError::invalid_arg(format!(
                "headers.traceparent must be a W3C traceparent such as \
                 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01 (got {:?})",
                String::from_utf8_lossy(&value[..value.len().min(80)])
            )));
        }
    }
    Ok(())
}

/// Adds a new sampled `traceparent` (fresh random trace and span ids) when
/// the message has none.
pub fn ensure_traceparent(headers: &mut Vec<(String, Option<Vec<u8>>)>) {
    if headers.iter().any(|(name, _)| name == TRACEPARENT) {
        return;
    }
    let (high, low, span) = (random_u64(), random_u64(), random_u64());
    // Ids of all zeros are invalid; at 2^-64 a nonzero substitute is fine.
    let (low, span) = (low.max(1), span.max(1));
    headers.push((
        TRACEPARENT.to_string(),
        Some(format!("00-{high:016x}{low:016x}-{span:016x}-01").into_bytes()),
    ));
}

/// Random enough for trace ids (unique, not secret): a per-process random
/// hasher over a counter.
fn random_u64() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    static SEED: std::sync::OnceLock<std::hash::RandomState> = std::sync::OnceLock::new();
    let mut hasher = SEED.get_or_init(std::hash::RandomState::new).build_hasher();
    hasher.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    hasher.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const EXAMPLE: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn parses_the_specification_example() {
        assert_eq!(
            parse(EXAMPLE.as_bytes()),
            Some(TraceParent {
                trace_id: "4bf92f3577b34da6a3ce929d0e0e4736",
                span_id: "00f067aa0ba902b7",
                sampled: true,
            })
        );
        let unsampled = EXAMPLE.replace("-01", "-00");
        assert_eq!(parse(unsampled.as_bytes()).map(|p| p.sampled), Some(false));
    }

    #[test]
    fn rejects_what_the_specification_rejects() {
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",
        ] {
            assert_eq!(parse(bad.as_bytes()), None, "{bad:?}");
        }
        // A later version may carry more fields after a dash.
        let future = "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-more";
        assert!(parse(future.as_bytes()).is_some());
    }

    #[test]
    fn outgoing_headers_are_checked_and_generated_ones_are_valid_and_distinct() {
        let header = |value: &str| (TRACEPARENT.to_string(), Some(value.as_bytes().to_vec()));
        assert!(check_headers(&[header(EXAMPLE)]).is_ok());
        assert!(check_headers(&[]).is_ok());
        let error = check_headers(&[header("nope")]).unwrap_err();
        assert_eq!(error.code(), "ERR_INVALID_ARG");
        assert!(error.to_string().contains(r#"(got "nope")"#), "{error}");
        assert!(check_headers(&[header(EXAMPLE), header(EXAMPLE)]).is_err());
        assert!(check_headers(&[(TRACEPARENT.into(), None)]).is_err());

        let mut first = Vec::new();
        ensure_traceparent(&mut first);
        let mut second = vec![("other".to_string(), None)];
        ensure_traceparent(&mut second);
        let value = |headers: &[(String, Option<Vec<u8>>)]| {
            headers
                .iter()
                .find(|(name, _)| name == TRACEPARENT)
                .and_then(|(_, value)| value.clone())
                .unwrap()
        };
        assert!(check_headers(&first).is_ok() && check_headers(&second).is_ok());
        assert_ne!(value(&first)[3..35], value(&second)[3..35]);
        let mut kept = vec![header(EXAMPLE)];
        ensure_traceparent(&mut kept);
        assert_eq!(kept, vec![header(EXAMPLE)]);
    }

    proptest! {
        #[test]
        fn never_panics_and_accepts_only_well_formed_values(bytes in proptest::collection::vec(any::<u8>(), 0..80)) {
            if let Some(parsed) = parse(&bytes) {
                prop_assert_eq!(parsed.trace_id.len(), 32);
                prop_assert_eq!(parsed.span_id.len(), 16);
            }
        }
    }
}
