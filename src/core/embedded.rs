//! The embedded development cluster: librdkafka's in-process mock cluster,
//! started on first use when no brokers are configured, so the platform runs
//! with no Kafka installed. It is not a broker: its data lives in this process
//! and is gone when the process exits. Every client of the process shares it.

use crate::core::error::{CoreError, Result};
use rdkafka::error::KafkaError;
use rdkafka::mocking::MockCluster;
use rdkafka::types::RDKafkaErrorCode;
use std::sync::mpsc;
use std::sync::OnceLock;

/// Partitions of a topic the embedded cluster creates on its own, the same
/// number librdkafka's mock cluster gives auto-created topics.
pub const DEFAULT_PARTITIONS: i32 = 4;

/// One broker is enough to show every client behaviour in development, and
/// keeps the cluster's own threads to a minimum.
const BROKERS: i32 = 1;

static CLUSTER: OnceLock<std::result::Result<EmbeddedCluster, String>> = OnceLock::new();

/// The running embedded cluster of this process.
pub struct EmbeddedCluster {
    bootstrap_servers: String,
    requests: mpsc::Sender<TopicRequest>,
}

struct TopicRequest {
    name: String,
    partitions: i32,
    reply: mpsc::Sender<std::result::Result<bool, KafkaError>>,
}

/// The embedded cluster, started on the first call.
pub fn cluster() -> Result<&'static EmbeddedCluster> {
    CLUSTER
        .get_or_init(EmbeddedCluster::start)
        .as_ref()
        .map_err(|reason| {
            CoreError::Internal(format!("cannot start the embedded Kafka cluster: {reason}"))
        })
}

impl EmbeddedCluster {
    /// librdkafka's mock cluster handle cannot move between threads, so one
    /// thread owns it for the life of the process and serves topic creation.
    fn start() -> std::result::Result<Self, String> {
        let (started_tx, started) = mpsc::channel();
        let (requests, incoming) = mpsc::channel::<TopicRequest>();
        std::thread::Builder::new()
            .name("kafka-embedded-cluster".into())
            .spawn(move || {
                let cluster = match MockCluster::new(BROKERS) {
                    Ok(cluster) => cluster,
                    Err(error) => {
                        let _ = started_tx.send(Err(error.to_string()));
                        return;
                    }
                };
                let _ = started_tx.send(Ok(cluster.bootstrap_servers()));
                for request in incoming {
                    let outcome = match cluster.create_topic(&request.name, request.partitions, 1) {
                        Ok(()) => Ok(true),
                        Err(KafkaError::MockCluster(RDKafkaErrorCode::TopicAlreadyExists)) => {
                            Ok(false)
                        }
                        Err(error) => Err(error),
                    };
                    let _ = request.reply.send(outcome);
                }
            })
            .map_err(|error| format!("cannot start its thread: {error}"))?;
        let bootstrap_servers = started
            .recv()
            .map_err(|_| "its thread ended before starting".to_string())??;
        Ok(EmbeddedCluster {
            bootstrap_servers,
            requests,
        })
    }

    /// `host:port` of the cluster's brokers, as `bootstrap.servers` takes them.
    pub fn bootstrap_servers(&self) -> &str {
        &self.bootstrap_servers
    }

    /// Creates `name` unless it exists; `Ok(true)` when it was created. The mock
    /// cluster has no admin API, so this stands in for `CreateTopics`.
    pub fn create_topic(&self, name: &str, partitions: i32) -> Result<bool> {
        let (reply, outcome) = mpsc::channel();
        let request = TopicRequest {
            name: name.to_string(),
            partitions,
            reply,
        };
        self.requests
            .send(request)
            .map_err(|_| CoreError::Internal("the embedded cluster has stopped".into()))?;
        outcome
            .recv()
            .map_err(|_| CoreError::Internal("the embedded cluster has stopped".into()))?
            .map_err(|error| CoreError::kafka(format!("cannot create topic `{name}`"), &error))
    }
}

/// Creates each `(name, partitions)` that does not exist yet, off the async
/// runtime (the mock cluster's topic creation waits on its thread); one
/// `created` flag per topic, in order.
pub async fn create_topics(topics: Vec<(String, i32)>) -> Result<Vec<bool>> {
    tokio::task::spawn_blocking(move || {
        let cluster = cluster()?;
        topics
            .iter()
            .map(|(name, partitions)| cluster.create_topic(name, *partitions))
            .collect()
    })
    .await
    .map_err(|error| CoreError::Internal(format!("topic creation failed: {error}")))?
}

/// Whether `brokers` is this process's embedded cluster (when it runs).
pub fn serves(brokers: &[String]) -> bool {
    matches!(CLUSTER.get(), Some(Ok(cluster)) if brokers.len() == 1 && brokers[0] == cluster.bootstrap_servers)
}

/// The line every client started on the embedded cluster logs, as a warning.
pub fn warning(bootstrap_servers: &str) -> String {
    format!(
        "KAFKA_BROKERS is not set: using the EMBEDDED in-process Kafka cluster at {bootstrap_servers}. \
         For development only: nothing leaves this process and every message is lost when it exits. \
         Set KAFKA_BROKERS (or pass `brokers`) to use a real cluster."
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_cluster_per_process_and_topics_created_once() {
        let first = cluster().unwrap();
        let second = cluster().unwrap();
        assert!(std::ptr::eq(first, second));
        assert!(first.bootstrap_servers().starts_with("127.0.0.1:"));
        let name = format!("embedded-topic-{}", std::process::id());
        assert!(first.create_topic(&name, 2).unwrap());
        assert!(!first.create_topic(&name, 2).unwrap());
    }
}
