//! The platform's event types and topics, defined once with serde.

use crate::core::error::{CoreError, Result};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use std::time::{SystemTime, UNIX_EPOCH};

/// The environment variable that prefixes the platform's topic names.
pub const ENV_TOPIC_PREFIX: &str = "KAFKA_TOPIC_PREFIX";
pub const MOVIE_EVENTS_TOPIC: &str = "movie-events";
pub const MOVIE_VIEWS_TOPIC: &str = "movie-views";
pub const USER_ACTIONS_TOPIC: &str = "user-actions";
pub const NOTIFICATION_EVENTS_TOPIC: &str = "notification-events";

/// The platform's topic names behind a prefix (`KAFKA_TOPIC_PREFIX`), so
/// environments or test runs can share one cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlatformTopics {
    pub movie_events: String,
    pub movie_views: String,
    pub user_actions: String,
    pub notification_events: String,
}

impl PlatformTopics {
    /// `prefix`, or `KAFKA_TOPIC_PREFIX` read through `env` when it is `None`.
    pub fn resolve(prefix: Option<&str>, env: impl Fn(&str) -> Option<String>) -> Result<Self> {
        let prefix = match prefix {
            Some(prefix) => prefix.to_string(),
            None => env(ENV_TOPIC_PREFIX).unwrap_or_default().trim().to_string(),
        };
        let topics = PlatformTopics {
            movie_events: format!("{prefix}{MOVIE_EVENTS_TOPIC}"),
            movie_views: format!("{prefix}{MOVIE_VIEWS_TOPIC}"),
            user_actions: format!("{prefix}{USER_ACTIONS_TOPIC}"),
            notification_events: format!("{prefix}{NOTIFICATION_EVENTS_TOPIC}"),
        };
        validate_topic_name(&topics.notification_events)
            .map_err(|error| CoreError::invalid_config("topicPrefix", error.to_string()))?;
        Ok(topics)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum MovieEventType {
    View,
    Like,
    Comment,
    Share,
}

impl MovieEventType {
    pub const ALL: [MovieEventType; 4] = [Self::View, Self::Like, Self::Comment, Self::Share];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::View => "VIEW",
            Self::Like => "LIKE",
            Self::Comment => "COMMENT",
            Self::Share => "SHARE",
        }
    }

    pub fn parse(text: &str) -> Result<Self> {
        Self::ALL
            .into_iter()
            .find(|kind| kind.as_str() == text)
            .ok_or_else(|| {
                CoreError::invalid_arg(format!(
                    "eventType must be one of VIEW, LIKE, COMMENT, SHARE (got {})",
                    quoted_preview(text)
                ))
            })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AnalyticsEventType {
    PageView,
    UserAction,
    MovieView,
    Search,
}

/// `movie-events`: something a user did to a movie.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MovieEvent {
    pub event_type: MovieEventType,
    pub user_id: String,
    pub movie_id: String,
    /// Milliseconds since the Unix epoch.
    pub timestamp: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Map<String, Value>>,
}

/// Only `VIEW` is a valid `eventType` of a [`MovieViewEvent`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ViewEventType {
    #[serde(rename = "VIEW")]
    View,
}

/// `movie-views`: a user started watching a movie.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MovieViewEvent {
    pub event_type: ViewEventType,
    pub user_id: String,
    pub movie_id: String,
    pub timestamp: i64,
}

/// `user-actions`: what the analytics consumer aggregates.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AnalyticsEvent {
    pub event_type: AnalyticsEventType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    pub session_id: String,
    pub timestamp: i64,
    pub data: Map<String, Value>,
}

/// The JSON of a [`MovieEvent`], with `metadata` embedded as the caller's
/// already-serialised JSON (so it is not parsed and re-encoded).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct MovieEventWire<'a> {
    event_type: MovieEventType,
    user_id: &'a str,
    movie_id: &'a str,
    timestamp: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    metadata: Option<&'a RawValue>,
}

/// Validates the arguments of `sendMovieEvent` and encodes the event.
pub fn encode_movie_event(
    event_type: &str,
    user_id: &str,
    movie_id: &str,
    metadata_json: Option<&str>,
    timestamp: i64,
) -> Result<Vec<u8>> {
    let event_type = MovieEventType::parse(event_type)?;
    require_id("userId", user_id)?;
    require_id("movieId", movie_id)?;
    let metadata = match metadata_json {
        Some(json) => {
            let raw: &RawValue = serde_json::from_str(json).map_err(|error| {
                CoreError::invalid_arg(format!("metadata is not valid JSON: {error}"))
            })?;
            if !raw.get().trim_start().starts_with('{') {
                return Err(CoreError::invalid_arg("metadata must be a plain object"));
            }
            Some(raw)
        }
        None => None,
    };
    let wire = MovieEventWire {
        event_type,
        user_id,
        movie_id,
        timestamp,
        metadata,
    };
    serde_json::to_vec(&wire).map_err(|error| CoreError::Serialization(error.to_string()))
}

/// Validates the arguments of `sendMovieViewEvent` and encodes the event.
pub fn encode_movie_view_event(user_id: &str, movie_id: &str, timestamp: i64) -> Result<Vec<u8>> {
    require_id("userId", user_id)?;
    require_id("movieId", movie_id)?;
    let event = MovieViewEvent {
        event_type: ViewEventType::View,
        user_id: user_id.to_string(),
        movie_id: movie_id.to_string(),
        timestamp,
    };
    serde_json::to_vec(&event).map_err(|error| CoreError::Serialization(error.to_string()))
}

/// Ids are keys and partitioning input: they must be non-empty and bounded.
pub fn require_id(name: &str, value: &str) -> Result<()> {
    if value.trim().is_empty() {
        return Err(CoreError::invalid_arg(format!(
            "{name} must be a non-empty string"
        )));
    }
    if value.len() > 1024 {
        return Err(CoreError::invalid_arg(format!(
            "{name} must be at most 1024 bytes (got {})",
            value.len()
        )));
    }
    Ok(())
}

pub fn now_millis() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.as_millis() as i64)
        .unwrap_or_default()
}

/// A short, safe rendering of caller input for an error message.
pub fn quoted_preview(text: &str) -> String {
    let preview: String = text.chars().take(40).collect();
    if preview.len() < text.len() {
        format!("{preview:?}…")
    } else {
        format!("{preview:?}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn platform_topics_take_the_prefix_from_the_option_or_the_environment() {
        let env = |key: &str| (key == ENV_TOPIC_PREFIX).then(|| " staging. ".to_string());
        let from_env = PlatformTopics::resolve(None, env).unwrap();
        assert_eq!(from_env.movie_events, "staging.movie-events");
        assert_eq!(from_env.notification_events, "staging.notification-events");
        let explicit = PlatformTopics::resolve(Some("run-1-"), env).unwrap();
        assert_eq!(explicit.movie_views, "run-1-movie-views");
        let none = PlatformTopics::resolve(None, |_| None).unwrap();
        assert_eq!(none.user_actions, USER_ACTIONS_TOPIC);
        let error = PlatformTopics::resolve(Some("bad prefix/"), |_| None).unwrap_err();
        assert_eq!(error.code(), "ERR_INVALID_CONFIG");
        assert!(error.to_string().contains("topicPrefix"), "{error}");
    }

    #[test]
    fn movie_event_has_the_platform_field_names() {
        let bytes = encode_movie_event(
            "LIKE",
            "u1",
            "m42",
            Some(r#"{"source":"web","duration":120}"#),
            1700000000000,
        )
        .unwrap();
        let parsed: MovieEvent = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(parsed.event_type, MovieEventType::Like);
        assert_eq!(parsed.movie_id, "m42");
        assert_eq!(parsed.metadata.unwrap()["duration"], 120);
        let text = String::from_utf8(bytes).unwrap();
        assert!(
            text.starts_with(
                r#"{"eventType":"LIKE","userId":"u1","movieId":"m42","timestamp":1700000000000"#
            ),
            "{text}"
        );
    }

    #[test]
    fn movie_event_arguments_are_validated() {
        assert_eq!(
            encode_movie_event("DISLIKE", "u", "m", None, 0)
                .unwrap_err()
                .code(),
            "ERR_INVALID_ARG"
        );
        assert!(encode_movie_event("VIEW", "", "m", None, 0).is_err());
        assert!(encode_movie_event("VIEW", "u", "  ", None, 0).is_err());
        assert!(encode_movie_event("VIEW", "u", "m", Some("[1,2]"), 0).is_err());
        assert!(encode_movie_event("VIEW", "u", "m", Some("{"), 0).is_err());
        assert!(encode_movie_event("view", "u", "m", None, 0).is_err());
    }

    #[test]
    fn view_event_round_trips_and_rejects_other_types() {
        let bytes = encode_movie_view_event("u", "m", 5).unwrap();
        let event: MovieViewEvent = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(event.timestamp, 5);
        let like = r#"{"eventType":"LIKE","userId":"u","movieId":"m","timestamp":1}"#;
        assert!(serde_json::from_str::<MovieViewEvent>(like).is_err());
    }

    #[test]
    fn analytics_event_accepts_the_seed_shape() {
        let json = r#"{"eventType":"SEARCH","sessionId":"s","timestamp":1,"data":{"q":"matrix"}}"#;
        let event: AnalyticsEvent = serde_json::from_str(json).unwrap();
        assert_eq!(event.event_type, AnalyticsEventType::Search);
        assert!(event.user_id.is_none());
    }
}

/// Kafka's rules for a topic name: 1–249 characters of `[a-zA-Z0-9._-]`.
pub fn validate_topic_name(topic: &str) -> Result<()> {
    if topic.is_empty() || topic.len() > 249 {
        return Err(CoreError::invalid_arg(format!(
            "topic name must be 1-249 characters (got {} characters)",
            topic.chars().count()
        )));
    }
    if topic == "." || topic == ".." {
        return Err(CoreError::invalid_arg(
            "topic name must not be \".\" or \"..\"",
        ));
    }
    if let Some(bad) = topic
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Err(CoreError::invalid_arg(format!(
            "topic name {} contains {bad:?}; allowed are letters, digits, '.', '_' and '-'",
            quoted_preview(topic)
        )));
    }
    Ok(())
}

#[cfg(test)]
mod topic_tests {
    use super::*;

    #[test]
    fn topic_names_follow_kafka_rules() {
        for good in ["movie-events", "a", "user_actions.v2", &"x".repeat(249)] {
            assert!(validate_topic_name(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            ".",
            "..",
            "movie events",
            "tópico",
            "a/b",
            &"x".repeat(250),
        ] {
            assert!(validate_topic_name(bad).is_err(), "{bad}");
        }
    }
}
