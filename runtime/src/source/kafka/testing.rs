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
                Err((
                    rdkafka::error::KafkaError::MessageProduction(rdkafka::types::RDKafkaErrorCode::QueueFull),
                    r,
                )) => {
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

/// A record read back by [`consume`].
#[derive(Clone, Debug)]
pub struct Consumed {
    /// Partition.
    pub partition: i32,
    /// Offset.
    pub offset: i64,
    /// Key.
    pub key: Option<Vec<u8>>,
    /// Value.
    pub value: Option<Vec<u8>>,
    /// Headers, in order.
    pub headers: Vec<(String, Option<Vec<u8>>)>,
}

impl Consumed {
    /// The value of header `key`, as text.
    pub fn header(&self, key: &str) -> Option<String> {
        self.headers
            .iter()
            .find(|(k, _)| k == key)
            .and_then(|(_, v)| v.as_ref().map(|v| String::from_utf8_lossy(v).into_owned()))
    }
}

/// Every record of `topic` from the beginning, read with `isolation` (`read_committed` or
/// `read_uncommitted`): waits until `at_least` records came, then until none comes for
/// `quiet` (the test broker's ListOffsets cannot say where the end is). Per partition in
/// offset order.
pub fn consume(bootstrap: &str, topic: &str, isolation: &str, at_least: usize, quiet: Duration) -> Vec<Consumed> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::message::{Headers, Message};
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", unique_topic("flowgate-test-reader"))
        .set("enable.auto.commit", "false")
        .set("isolation.level", isolation)
        .create()
        .expect("consumer");
    let md = c.fetch_metadata(Some(topic), Duration::from_secs(10)).expect("metadata");
    let mut tpl = rdkafka::TopicPartitionList::new();
    for t in md.topics() {
        for p in t.partitions() {
            tpl.add_partition_offset(topic, p.id(), rdkafka::Offset::Beginning).expect("partition");
        }
    }
    c.assign(&tpl).expect("assign");
    let mut out = Vec::new();
    let mut last = std::time::Instant::now();
    let give_up = std::time::Instant::now() + Duration::from_secs(120);
    while (out.len() < at_least || last.elapsed() < quiet) && std::time::Instant::now() < give_up {
        match c.poll(Duration::from_millis(50)) {
            Some(Ok(m)) => {
                out.push(Consumed {
                    partition: m.partition(),
                    offset: m.offset(),
                    key: m.key().map(<[u8]>::to_vec),
                    value: m.payload().map(<[u8]>::to_vec),
                    headers: m
                        .headers()
                        .map(|hs| hs.iter().map(|h| (h.key.to_string(), h.value.map(<[u8]>::to_vec))).collect())
                        .unwrap_or_default(),
                });
                last = std::time::Instant::now();
            }
            Some(Err(e)) => panic!("consuming {topic}: {e}"),
            None => {}
        }
    }
    out.sort_by_key(|r| (r.partition, r.offset));
    out
}

/// The offset the consumer group `group` committed for `topic` partition `partition`.
pub fn committed_offset(bootstrap: &str, group: &str, topic: &str, partition: i32) -> Option<i64> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let mut tpl = rdkafka::TopicPartitionList::new();
    tpl.add_partition(topic, partition);
    let got = c.committed_offsets(tpl, Duration::from_secs(10)).expect("committed offsets");
    match got.find_partition(topic, partition).map(|e| e.offset()) {
        Some(rdkafka::Offset::Offset(o)) => Some(o),
        _ => None,
    }
}

/// Follows `topic` (uncommitted records included) on a thread and keeps the largest value of
/// the numeric header `header` seen so far: a kill test uses it to kill a writer while its
/// transaction is open. Stops when dropped.
pub struct HeaderWatch {
    max: std::sync::Arc<std::sync::atomic::AtomicI64>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl std::fmt::Debug for HeaderWatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "HeaderWatch(max {})", self.max())
    }
}

impl HeaderWatch {
    /// Starts following `topic` from the beginning.
    pub fn start(bootstrap: &str, topic: &str, header: &str) -> Self {
        use rdkafka::consumer::{BaseConsumer, Consumer};
        use rdkafka::message::{Headers, Message};
        use std::sync::atomic::Ordering;
        let max = std::sync::Arc::new(std::sync::atomic::AtomicI64::new(-1));
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let c: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", bootstrap)
            .set("group.id", unique_topic("flowgate-test-watch"))
            .set("enable.auto.commit", "false")
            .set("isolation.level", "read_uncommitted")
            .set("fetch.wait.max.ms", "5")
            .create()
            .expect("consumer");
        let md = c.fetch_metadata(Some(topic), Duration::from_secs(10)).expect("metadata");
        let mut tpl = rdkafka::TopicPartitionList::new();
        for t in md.topics() {
            for p in t.partitions() {
                tpl.add_partition_offset(topic, p.id(), rdkafka::Offset::Beginning).expect("partition");
            }
        }
        c.assign(&tpl).expect("assign");
        let (m2, s2, header) = (max.clone(), stop.clone(), header.to_string());
        let thread = std::thread::spawn(move || {
            while !s2.load(Ordering::Relaxed) {
                if let Some(Ok(m)) = c.poll(Duration::from_millis(20)) {
                    let v = m.headers().and_then(|hs| {
                        hs.iter()
                            .find(|h| h.key == header)
                            .and_then(|h| std::str::from_utf8(h.value?).ok()?.parse().ok())
                    });
                    if let Some(v) = v {
                        m2.fetch_max(v, Ordering::Relaxed);
                    }
                }
            }
        });
        HeaderWatch { max, stop, thread: Some(thread) }
    }

    /// The largest value seen (-1: none yet).
    pub fn max(&self) -> i64 {
        self.max.load(std::sync::atomic::Ordering::Relaxed)
    }
}

impl Drop for HeaderWatch {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
