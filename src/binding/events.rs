//! The platform's events as JavaScript sees them (exported to `index.d.ts`).
//! The core's serde types are the source of truth; these mirror them field
//! for field, and the `From` impls below fail to compile if the two drift.

use crate::core::events as core;
use napi::Env;
use napi_derive::napi;
use serde_json::{Map, Value};

/// What a user did to a movie.
#[napi(string_enum)]
pub enum MovieEventType {
    #[napi(value = "VIEW")]
    View,
    #[napi(value = "LIKE")]
    Like,
    #[napi(value = "COMMENT")]
    Comment,
    #[napi(value = "SHARE")]
    Share,
}

/// Kinds of analytics events on `user-actions`.
#[napi(string_enum)]
pub enum AnalyticsEventType {
    #[napi(value = "PAGE_VIEW")]
    PageView,
    #[napi(value = "USER_ACTION")]
    UserAction,
    #[napi(value = "MOVIE_VIEW")]
    MovieView,
    #[napi(value = "SEARCH")]
    Search,
}

/// An event on `movie-events`, keyed by `movieId`.
#[napi(object)]
pub struct MovieEvent {
    pub event_type: MovieEventType,
    pub user_id: String,
    pub movie_id: String,
    /// Milliseconds since the Unix epoch.
    pub timestamp: i64,
    pub metadata: Option<Map<String, Value>>,
}

/// An event on `movie-views`, keyed by `movieId`.
#[napi(object)]
pub struct MovieViewEvent {
    #[napi(ts_type = "'VIEW'")]
    pub event_type: String,
    pub user_id: String,
    pub movie_id: String,
    /// Milliseconds since the Unix epoch.
    pub timestamp: i64,
}

/// An event on `user-actions`, consumed by analytics.
#[napi(object)]
pub struct AnalyticsEvent {
    pub event_type: AnalyticsEventType,
    pub user_id: Option<String>,
    pub session_id: String,
    /// Milliseconds since the Unix epoch.
    pub timestamp: i64,
    pub data: Map<String, Value>,
}

/// The platform's topic names.
#[napi(object)]
pub struct Topics {
    pub movie_events: String,
    pub movie_views: String,
    pub user_actions: String,
    pub notification_events: String,
}

/// The platform's topic names, as the producer helpers use them: behind
/// `KAFKA_TOPIC_PREFIX` when it is set. Throws `ERR_INVALID_CONFIG` when the
/// prefix makes an invalid topic name.
#[napi(catch_unwind)]
pub fn topics(env: Env) -> napi::Result<Topics> {
    let topics = core::PlatformTopics::resolve(None, |key| std::env::var(key).ok())
        .map_err(|error| crate::binding::js::js_error(&env, error))?;
    Ok(Topics {
        movie_events: topics.movie_events,
        movie_views: topics.movie_views,
        user_actions: topics.user_actions,
        notification_events: topics.notification_events,
    })
}

impl From<core::MovieEventType> for MovieEventType {
    fn from(kind: core::MovieEventType) -> Self {
        match kind {
            core::MovieEventType::View => MovieEventType::View,
            core::MovieEventType::Like => MovieEventType::Like,
            core::MovieEventType::Comment => MovieEventType::Comment,
            core::MovieEventType::Share => MovieEventType::Share,
        }
    }
}

impl From<core::AnalyticsEventType> for AnalyticsEventType {
    fn from(kind: core::AnalyticsEventType) -> Self {
        match kind {
            core::AnalyticsEventType::PageView => AnalyticsEventType::PageView,
            core::AnalyticsEventType::UserAction => AnalyticsEventType::UserAction,
            core::AnalyticsEventType::MovieView => AnalyticsEventType::MovieView,
            core::AnalyticsEventType::Search => AnalyticsEventType::Search,
        }
    }
}

impl From<core::MovieEvent> for MovieEvent {
    fn from(event: core::MovieEvent) -> Self {
        let core::MovieEvent {
            event_type,
            user_id,
            movie_id,
            timestamp,
            metadata,
        } = event;
        MovieEvent {
            event_type: event_type.into(),
            user_id,
            movie_id,
            timestamp,
            metadata,
        }
    }
}

impl From<core::MovieViewEvent> for MovieViewEvent {
    fn from(event: core::MovieViewEvent) -> Self {
        let core::MovieViewEvent {
            event_type: core::ViewEventType::View,
            user_id,
            movie_id,
            timestamp,
        } = event;
        MovieViewEvent {
            event_type: "VIEW".into(),
            user_id,
            movie_id,
            timestamp,
        }
    }
}

impl From<core::AnalyticsEvent> for AnalyticsEvent {
    fn from(event: core::AnalyticsEvent) -> Self {
        let core::AnalyticsEvent {
            event_type,
            user_id,
            session_id,
            timestamp,
            data,
        } = event;
        AnalyticsEvent {
            event_type: event_type.into(),
            user_id,
            session_id,
            timestamp,
            data,
        }
    }
}
