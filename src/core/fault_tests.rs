//! Issue #6, scenario 2: faults injected into librdkafka's mock cluster while
//! the producer streams keyed, idempotent, acks=all messages: leader changes,
//! a broker down and up again, produce requests failing with retriable
//! errors (not leader, request timed out, not enough replicas, leader not
//! available), and slow brokers. Every message must be acknowledged, and
//! reading the topic back must find each id exactly once. The mock cluster is the only one here that
//! can inject these faults; the real-broker failover (Tansu, three brokers)
//! is `__test__/reliability-broker-failover.test.js`.

use crate::core::logging::{LogLevel, LogRecord, LogSink};
use crate::core::producer::{OutgoingMessage, PendingSend, Producer, ProducerOptions};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::mocking::MockCluster;
use rdkafka::producer::DefaultProducerContext;
use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const TOPIC: &str = "movie-views";
const PARTITIONS: i32 = 6;
const BROKERS: i32 = 3;

type Cluster = MockCluster<'static, DefaultProducerContext>;

/// Counts librdkafka's reports of failed produce requests and refused
/// connections: proof that a fault reached the producer.
#[derive(Default)]
struct FaultsSeen(AtomicUsize);

impl LogSink for FaultsSeen {
    fn log(&self, record: LogRecord) {
        if record.message.contains("ProduceRequest failed")
            || record.message.contains("Connection refused")
        {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }
}

fn producer_for(bootstrap: &str, faults: Arc<FaultsSeen>) -> Arc<Producer> {
    let mut options = ProducerOptions::default();
    options.client.brokers = Some(bootstrap.split(',').map(String::from).collect());
    options.client.log_level = Some(LogLevel::Debug);
    options
        .client
        .properties
        .insert("debug".into(), "broker,topic".into());
    Producer::new(options, faults).expect("producer")
}

fn event(id: u32) -> OutgoingMessage {
    OutgoingMessage {
        topic: TOPIC.into(),
        key: Some(format!("movie-{}", id % 97).into_bytes()),
        value: Some(format!("{{\"id\":{id}}}").into_bytes()),
        ..Default::default()
    }
}

/// Hands `ids` over in batches of 100, without waiting for acknowledgements.
fn send_all(producer: &Arc<Producer>, ids: std::ops::Range<u32>) -> Vec<PendingSend> {
    let ids: Vec<u32> = ids.collect();
    ids.chunks(100)
        .map(|chunk| {
            producer
                .start_send(chunk.iter().copied().map(event).collect())
                .expect("handed over")
        })
        .collect()
}

/// Reads every partition from the beginning until `expected` ids arrived and
/// nothing more comes for a while: returns how often each id was read.
fn read_back(bootstrap: &str, expected: usize) -> HashMap<u32, u32> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "fault-test-reader")
        .set("enable.auto.commit", "false")
        .create()
        .expect("reader");
    let mut assignment = TopicPartitionList::new();
    for partition in 0..PARTITIONS {
        assignment
            .add_partition_offset(TOPIC, partition, Offset::Beginning)
            .expect("partition");
    }
    consumer.assign(&assignment).expect("assign");
    let mut seen: HashMap<u32, u32> = HashMap::new();
    let mut read = 0usize;
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut quiet_since = Instant::now();
    while Instant::now() < deadline {
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(message)) => {
                let text = std::str::from_utf8(message.payload().unwrap_or_default()).unwrap();
                let id: u32 = text
                    .trim_start_matches("{\"id\":")
                    .trim_end_matches('}')
                    .parse()
                    .expect("an id");
                *seen.entry(id).or_default() += 1;
                read += 1;
                quiet_since = Instant::now();
            }
            Some(Err(error)) => panic!("read back failed: {error}"),
            // Past the expected count, wait a little for duplicates.
            None if read >= expected && quiet_since.elapsed() > Duration::from_secs(1) => break,
            None => {}
        }
    }
    seen
}

struct Outcome {
    faults_seen: usize,
    acknowledged: usize,
    failed: Vec<String>,
    lost: usize,
    duplicated: usize,
}

async fn settle(sends: Vec<PendingSend>) -> (usize, Vec<String>) {
    let mut acknowledged = 0;
    let mut failed = Vec::new();
    for send in sends {
        match send.acknowledged().await {
            Ok(reports) => acknowledged += reports.len(),
            Err(error) => failed.push(format!("{}: {error}", error.code())),
        }
    }
    (acknowledged, failed)
}

/// Streams `total` events in four quarters, injecting `faults[i]` before quarter i + 1.
async fn stream_through_faults(total: u32, faults: &[&dyn Fn(&Cluster)]) -> Outcome {
    let cluster = MockCluster::new(BROKERS).expect("mock cluster");
    cluster
        .create_topic(TOPIC, PARTITIONS, BROKERS)
        .expect("topic");
    let bootstrap = cluster.bootstrap_servers();
    let faults_seen = Arc::new(FaultsSeen::default());
    let producer = producer_for(&bootstrap, faults_seen.clone());
    producer
        .connect(Some(Duration::from_secs(10)))
        .await
        .expect("connected");
    let quarter = total / 4;
    let mut sends = send_all(&producer, 0..quarter);
    for (index, fault) in faults.iter().enumerate() {
        fault(&cluster);
        let start = quarter * (index as u32 + 1);
        let end = if index + 1 == faults.len() {
            total
        } else {
            start + quarter
        };
        sends.extend(send_all(&producer, start..end));
        // Let the fault bite while these are on the wire.
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let (acknowledged, failed) = settle(sends).await;
    producer
        .disconnect(Duration::from_secs(10))
        .await
        .expect("disconnect");
    let seen = tokio::task::spawn_blocking(move || read_back(&bootstrap, total as usize))
        .await
        .expect("reader thread");
    let lost = (0..total).filter(|id| !seen.contains_key(id)).count();
    let duplicated = seen.values().map(|count| *count as usize - 1).sum();
    drop(cluster);
    Outcome {
        faults_seen: faults_seen.0.load(Ordering::Relaxed),
        acknowledged,
        failed,
        lost,
        duplicated,
    }
}

fn assert_exactly_once(name: &str, total: u32, outcome: &Outcome) {
    eprintln!(
        "{name}: faults seen {}, produced {total}, acknowledged {}, failed {}, lost {}, duplicated {}",
        outcome.faults_seen,
        outcome.acknowledged,
        outcome.failed.len(),
        outcome.lost,
        outcome.duplicated
    );
    assert!(
        outcome.faults_seen > 0,
        "{name}: no fault reached the producer"
    );
    assert!(
        outcome.failed.is_empty(),
        "{name}: failed sends {:?}",
        outcome.failed
    );
    assert_eq!(outcome.acknowledged, total as usize, "{name}: acknowledged");
    assert_eq!(outcome.lost, 0, "{name}: lost");
    assert_eq!(outcome.duplicated, 0, "{name}: duplicated");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leaders_move_and_a_broker_goes_down_and_up_mid_stream() {
    let total = 20_000;
    let move_leaders = |cluster: &Cluster| {
        for partition in 0..PARTITIONS {
            cluster
                .partition_leader(TOPIC, partition, Some(1 + (partition + 1) % BROKERS))
                .expect("leader");
        }
    };
    let take_broker_down = |cluster: &Cluster| {
        cluster.broker_down(2).expect("down");
    };
    let bring_broker_up = |cluster: &Cluster| {
        cluster.broker_up(2).expect("up");
    };
    let outcome =
        stream_through_faults(total, &[&move_leaders, &take_broker_down, &bring_broker_up]).await;
    assert_exactly_once("leader change, broker down/up", total, &outcome);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn produce_requests_fail_with_retriable_errors_and_brokers_answer_slowly() {
    let total = 20_000;
    let fail_requests = |cluster: &Cluster| {
        cluster.request_errors(
            RDKafkaApiKey::Produce,
            &[
                RDKafkaRespErr::RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION,
                RDKafkaRespErr::RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT,
                RDKafkaRespErr::RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS,
                RDKafkaRespErr::RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE,
            ],
        );
    };
    // Then every broker answers 1.5 s late for a while: requests pile up in
    // flight (up to five per connection) and must still land once, in order.
    let slow_brokers = |cluster: &Cluster| {
        for broker in 1..=BROKERS {
            cluster
                .broker_round_trip_time(broker, Duration::from_millis(1500))
                .expect("rtt");
        }
    };
    let fast_brokers = |cluster: &Cluster| {
        for broker in 1..=BROKERS {
            cluster
                .broker_round_trip_time(broker, Duration::ZERO)
                .expect("rtt");
        }
    };
    let outcome =
        stream_through_faults(total, &[&fail_requests, &slow_brokers, &fast_brokers]).await;
    assert_exactly_once("request errors, timeouts", total, &outcome);
}
