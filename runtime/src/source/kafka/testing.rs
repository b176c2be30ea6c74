//! Test support: the local broker the Kafka tests, examples and benches run against, and a few
//! helpers to create topics and produce records.
//!
//! [`broker`] returns `$FLOWGATE_KAFKA_BOOTSTRAP` when set; otherwise it runs
//! `scripts/kafka-broker.sh start` (which installs tansu, hash-checked, into
//! `target/kafka-broker/` and starts it on 127.0.0.1, or finds it already running) and returns
//! its address. The broker is left running for the next test; `scripts/kafka-broker.sh stop`
//! stops it.

use std::sync::OnceLock;
use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};

/// The project's broker script.
pub const BROKER_SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/kafka-broker.sh");

/// The bootstrap address of the test broker, starting it if needed (see the module docs).
/// Panics with the script's output if it cannot be started: a test cannot go on without it.
pub fn broker() -> String {
    static BROKER: OnceLock<String> = OnceLock::new();
    BROKER
        .get_or_init(|| {
            if let Ok(b) = std::env::var("FLOWGATE_KAFKA_BOOTSTRAP") {
                return b;
            }
            let out = std::process::Command::new("bash")
                .args([BROKER_SCRIPT, "start"])
                .stdin(std::process::Stdio::null())
                .output()
                .unwrap_or_else(|e| panic!("running {BROKER_SCRIPT}: {e}"));
            assert!(
                out.status.success(),
                "{BROKER_SCRIPT} start failed:\n{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            let out = std::process::Command::new("bash").args([BROKER_SCRIPT, "bootstrap"]).output().unwrap();
            String::from_utf8_lossy(&out.stdout).trim().to_string()
        })
        .clone()
}

/// A topic name no other test (or earlier run against the same broker) uses.
pub fn unique_topic(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    format!("{prefix}-{}-{}-{}", std::process::id(), nanos % 1_000_000_000, N.fetch_add(1, Ordering::Relaxed))
}

/// Creates `topic` with `partitions` partitions (replication 1).
pub fn create_topic(bootstrap: &str, topic: &str, partitions: i32) {
    let admin: AdminClient<DefaultClientContext> =
        ClientConfig::new().set("bootstrap.servers", bootstrap).create().expect("admin client");
    let new = NewTopic::new(topic, partitions, TopicReplication::Fixed(1));
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    let res = futures_executor::block_on(admin.create_topics([&new], &opts)).expect("create_topics");
    for r in res {
        r.unwrap_or_else(|(t, e)| panic!("creating topic {t}: {e}"));
    }
}

/// Adds partitions to `topic` so it has `total`.
pub fn add_partitions(bootstrap: &str, topic: &str, total: usize) {
    let admin: AdminClient<DefaultClientContext> =
        ClientConfig::new().set("bootstrap.servers", bootstrap).create().expect("admin client");
    let np = rdkafka::admin::NewPartitions::new(topic, total);
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    let res = futures_executor::block_on(admin.create_partitions([&np], &opts)).expect("create_partitions");
    for r in res {
        r.unwrap_or_else(|(t, e)| panic!("adding partitions to {t}: {e}"));
    }
}

/// Deletes `topic`.
pub fn delete_topic(bootstrap: &str, topic: &str) {
    let admin: AdminClient<DefaultClientContext> =
        ClientConfig::new().set("bootstrap.servers", bootstrap).create().expect("admin client");
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    let res = futures_executor::block_on(admin.delete_topics(&[topic], &opts)).expect("delete_topics");
    for r in res {
        r.unwrap_or_else(|(t, e)| panic!("deleting topic {t}: {e}"));
    }
}

/// One record to produce.
#[derive(Clone, Debug, Default)]
pub struct TestRecord {
    /// Partition (`None`: the producer's partitioner).
    pub partition: Option<i32>,
    /// Key.
    pub key: Option<Vec<u8>>,
    /// Value.
    pub value: Option<Vec<u8>>,
    /// Headers.
    pub headers: Vec<(String, Vec<u8>)>,
    /// Create time in milliseconds (`None`: now).
    pub timestamp_ms: Option<i64>,
}

impl TestRecord {
    /// A record with this value on this partition.
    pub fn value(partition: i32, value: impl Into<Vec<u8>>) -> Self {
        TestRecord { partition: Some(partition), value: Some(value.into()), ..Default::default() }
    }
}

/// Produces `records` to `topic` with an idempotent producer and waits until all are
/// acknowledged. Panics on a failed delivery.
pub fn produce(bootstrap: &str, topic: &str, records: &[TestRecord]) {
    let p: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("enable.idempotence", "true")
        .set("linger.ms", "5")
        .create()
        .expect("producer");
    for r in records {
        let mut rec: BaseRecord<'_, [u8], [u8]> = BaseRecord::to(topic);
        if let Some(p) = r.partition {
            rec = rec.partition(p);
        }
        if let Some(k) = &r.key {
            rec = rec.key(k.as_slice());
        }
        if let Some(v) = &r.value {
            rec = rec.payload(v.as_slice());
        }
        if let Some(t) = r.timestamp_ms {
            rec = rec.timestamp(t);
        }
        if !r.headers.is_empty() {
            let mut hs = OwnedHeaders::new();
            for (k, v) in &r.headers {
                hs = hs.insert(Header { key: k, value: Some(v) });
            }
            rec = rec.headers(hs);
        }
        let mut rec = rec;
        loop {
            match p.send(rec) {
                Ok(()) => break,
                Err((rdkafka::error::KafkaError::MessageProduction(rdkafka::types::RDKafkaErrorCode::QueueFull), r)) => {
                    p.poll(Duration::from_millis(10));
                    rec = r;
                }
                Err((e, _)) => panic!("producing to {topic}: {e}"),
            }
        }
        p.poll(Duration::ZERO);
    }
    p.flush(Duration::from_secs(30)).expect("flushing the producer");
}
