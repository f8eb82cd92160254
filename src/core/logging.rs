//! Routes `tracing` events to the log sink of the client that emitted them.
//!
//! Every client runs its work inside a span that carries its name and the id
//! of its sink; one process-wide layer finds that span for each event and
//! hands the formatted record to the sink (in Node: the user's logger).

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, OnceLock, RwLock};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id};
use tracing::subscriber::Interest;
use tracing::{Event, Level, Metadata, Subscriber};
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::prelude::*;
use tracing_subscriber::registry::LookupSpan;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LogLevel {
    Off = 0,
    Error = 1,
    Warn = 2,
    Info = 3,
    Debug = 4,
    Trace = 5,
}

impl LogLevel {
    pub fn parse(text: &str) -> Option<Self> {
        Some(match text.to_ascii_lowercase().as_str() {
            "off" | "silent" | "none" => LogLevel::Off,
            "error" => LogLevel::Error,
            "warn" | "warning" => LogLevel::Warn,
            "info" | "log" => LogLevel::Info,
            "debug" => LogLevel::Debug,
            "trace" | "verbose" => LogLevel::Trace,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Off => "off",
            LogLevel::Error => "error",
            LogLevel::Warn => "warn",
            LogLevel::Info => "info",
            LogLevel::Debug => "debug",
            LogLevel::Trace => "trace",
        }
    }

    fn of(level: &Level) -> Self {
        match *level {
            Level::ERROR => LogLevel::Error,
            Level::WARN => LogLevel::Warn,
            Level::INFO => LogLevel::Info,
            Level::DEBUG => LogLevel::Debug,
            Level::TRACE => LogLevel::Trace,
        }
    }
}

/// One log line, attributed to the client that produced it.
#[derive(Debug, Clone)]
pub struct LogRecord {
    pub level: LogLevel,
    /// The client's name (its `client.id`, or a consumer's name).
    pub context: Arc<str>,
    pub message: String,
    /// Where the event came from: `kafka_napi::…` or `librdkafka`.
    pub target: String,
}

pub trait LogSink: Send + Sync + 'static {
    fn log(&self, record: LogRecord);
}

/// Writes to standard error; the sink of clients given no logger in pure Rust use.
pub struct StderrSink;

impl LogSink for StderrSink {
    fn log(&self, record: LogRecord) {
        eprintln!(
            "[kafka] {} [{}] {}",
            record.level.as_str().to_uppercase(),
            record.context,
            record.message
        );
    }
}

struct SinkEntry {
    sink: Arc<dyn LogSink>,
    level: LogLevel,
}

fn sinks() -> &'static RwLock<HashMap<u64, SinkEntry>> {
    static SINKS: OnceLock<RwLock<HashMap<u64, SinkEntry>>> = OnceLock::new();
    SINKS.get_or_init(Default::default)
}

/// The most verbose level any registered sink wants: events above it are
/// rejected at the callsite, before any formatting.
static MAX_LEVEL: AtomicU8 = AtomicU8::new(LogLevel::Warn as u8);
static NEXT_SINK_ID: AtomicU64 = AtomicU64::new(1);

fn refresh_max_level(map: &HashMap<u64, SinkEntry>) {
    let max = map
        .values()
        .map(|entry| entry.level)
        .max()
        .unwrap_or(LogLevel::Warn)
        .max(LogLevel::Warn);
    MAX_LEVEL.store(max as u8, Ordering::Relaxed);
}

/// A client's registration with the log router; unregisters when dropped.
pub struct ClientLog {
    id: u64,
    context: Arc<str>,
    span: tracing::Span,
}

impl ClientLog {
    pub fn register(context: &str, level: LogLevel, sink: Arc<dyn LogSink>) -> Self {
        install();
        let id = NEXT_SINK_ID.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut map) = sinks().write() {
            map.insert(id, SinkEntry { sink, level });
            refresh_max_level(&map);
        }
        let span = tracing::info_span!("kafka_client", client = context, sink = id);
        ClientLog {
            id,
            context: Arc::from(context),
            span,
        }
    }

    /// The span to run this client's work in, so its events reach its sink.
    pub fn span(&self) -> &tracing::Span {
        &self.span
    }

    pub fn context(&self) -> &Arc<str> {
        &self.context
    }
}

impl Drop for ClientLog {
    fn drop(&mut self) {
        if let Ok(mut map) = sinks().write() {
            map.remove(&self.id);
            refresh_max_level(&map);
        }
    }
}

/// Installs the routing layer as the global `tracing` subscriber, once. If the
/// host application already installed its own subscriber, that one wins and
/// client sinks receive nothing: the application owns logging then.
pub fn install() {
    static INSTALLED: OnceLock<()> = OnceLock::new();
    INSTALLED.get_or_init(|| {
        let _ = tracing_subscriber::registry().with(RouterLayer).try_init();
    });
}

/// Stored in a client span's extensions: which sink its events go to.
struct SinkBinding {
    sink: u64,
    context: Arc<str>,
}

struct RouterLayer;

impl<S> Layer<S> for RouterLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn register_callsite(&self, _metadata: &'static Metadata<'static>) -> Interest {
        // Sinks come and go with their levels, so no callsite's interest may be cached.
        Interest::sometimes()
    }

    fn enabled(&self, metadata: &Metadata<'_>, _ctx: Context<'_, S>) -> bool {
        metadata.is_span()
            || LogLevel::of(metadata.level()) as u8 <= MAX_LEVEL.load(Ordering::Relaxed)
    }

    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        if attrs.metadata().name() != "kafka_client" {
            return;
        }
        let mut visitor = BindingVisitor::default();
        attrs.record(&mut visitor);
        if let (Some(sink), Some(context), Some(span)) =
            (visitor.sink, visitor.client, ctx.span(id))
        {
            span.extensions_mut().insert(SinkBinding {
                sink,
                context: Arc::from(context.as_str()),
            });
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let level = LogLevel::of(event.metadata().level());
        let binding = ctx.event_scope(event).and_then(|scope| {
            scope.into_iter().find_map(|span| {
                span.extensions()
                    .get::<SinkBinding>()
                    .map(|binding| (binding.sink, binding.context.clone()))
            })
        });
        let (entry_sink, context) = match &binding {
            Some((sink_id, context)) => {
                let Ok(map) = sinks().read() else { return };
                match map.get(sink_id) {
                    Some(entry) if level <= entry.level => (entry.sink.clone(), context.clone()),
                    Some(_) => return,
                    None => return,
                }
            }
            // Events outside any client (rare): only problems are worth showing.
            None if level <= LogLevel::Warn => {
                (Arc::new(StderrSink) as Arc<dyn LogSink>, Arc::from("kafka"))
            }
            None => return,
        };
        let mut visitor = MessageVisitor::default();
        event.record(&mut visitor);
        entry_sink.log(LogRecord {
            level,
            context,
            message: visitor.finish(),
            target: event.metadata().target().to_string(),
        });
    }
}

#[derive(Default)]
struct BindingVisitor {
    sink: Option<u64>,
    client: Option<String>,
}

impl Visit for BindingVisitor {
    fn record_u64(&mut self, field: &Field, value: u64) {
        if field.name() == "sink" {
            self.sink = Some(value);
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "client" {
            self.client = Some(value.to_string());
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "client" {
            self.client = Some(format!("{value:?}"));
        }
    }
}

#[derive(Default)]
struct MessageVisitor {
    message: String,
    fields: String,
}

impl MessageVisitor {
    fn finish(self) -> String {
        if self.fields.is_empty() {
            self.message
        } else {
            format!("{} {}", self.message, self.fields.trim_start())
        }
    }
}

impl Visit for MessageVisitor {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message.push_str(value);
        } else {
            let _ = write!(self.fields, " {}={}", field.name(), value);
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.message, "{value:?}");
        } else {
            let _ = write!(self.fields, " {}={:?}", field.name(), value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[derive(Default)]
    struct Collect(Mutex<Vec<LogRecord>>);

    impl LogSink for Collect {
        fn log(&self, record: LogRecord) {
            self.0.lock().unwrap().push(record);
        }
    }

    #[test]
    fn events_reach_the_sink_of_their_client_at_its_level() {
        let movie = Arc::new(Collect::default());
        let analytics = Arc::new(Collect::default());
        let movie_log = ClientLog::register("movie-consumer", LogLevel::Debug, movie.clone());
        let analytics_log =
            ClientLog::register("analytics-consumer", LogLevel::Warn, analytics.clone());

        movie_log.span().in_scope(|| {
            tracing::info!(topic = "movie-events", "Subscribed to topic");
            tracing::debug!("Received message");
        });
        analytics_log.span().in_scope(|| {
            tracing::info!("not shown at warn");
            tracing::warn!("shown");
        });

        let movie = movie.0.lock().unwrap();
        assert_eq!(movie.len(), 2);
        assert_eq!(&*movie[0].context, "movie-consumer");
        assert_eq!(movie[0].message, "Subscribed to topic topic=movie-events");
        assert_eq!(movie[1].level, LogLevel::Debug);
        let analytics = analytics.0.lock().unwrap();
        assert_eq!(analytics.len(), 1);
        assert_eq!(analytics[0].message, "shown");
    }

    #[test]
    fn a_dropped_client_receives_nothing() {
        let sink = Arc::new(Collect::default());
        let log = ClientLog::register("gone", LogLevel::Info, sink.clone());
        let span = log.span().clone();
        drop(log);
        span.in_scope(|| tracing::warn!("after drop"));
        assert!(sink.0.lock().unwrap().is_empty());
    }

    #[test]
    fn levels_parse_from_common_names() {
        assert_eq!(LogLevel::parse("WARN"), Some(LogLevel::Warn));
        assert_eq!(LogLevel::parse("log"), Some(LogLevel::Info));
        assert_eq!(LogLevel::parse("loud"), None);
    }
}
