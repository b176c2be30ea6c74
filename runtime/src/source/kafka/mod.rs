//! The Kafka source (Spark's `spark.readStream.format("kafka")`), behind the `kafka` feature.
//!
//! ```no_run
//! use flowgate::prelude::*;
//!
//! #[derive(Record)]
//! struct Message { key: Option<Vec<u8>>, value: Option<Vec<u8>>, topic: String, partition: i32, offset: i64 }
//!
//! let source: Source<Message> = Source::kafka("127.0.0.1:9092").subscribe("events").into();
//! ```
//!
//! # Options (Spark's, under Spark's names)
//!
//! Every option can be set by its Spark name with [`KafkaSourceBuilder::option`] or with the
//! method of the same name in snake case.
//!
//! | option | default | meaning |
//! |---|---|---|
//! | `subscribe` | | comma-separated topics |
//! | `subscribePattern` | | a regular expression; every matching topic, also ones created later |
//! | `assign` | | `{"topicA":[0,1]}`: exactly these partitions |
//! | `startingOffsets` | `latest` | `earliest`, `latest` or `{"topic":{"0":23,"1":-2}}` (-2 earliest, -1 latest); only for a new query: a restart goes on from its checkpoint |
//! | `startingTimestamp` | | milliseconds: per partition, the first offset whose timestamp is at or after it (overrides `startingOffsets`) |
//! | `maxOffsetsPerTrigger` | none | at most this many offsets per batch, shared between partitions in proportion to what each has |
//! | `minOffsetsPerTrigger` | none | wait until this many offsets are available ... |
//! | `maxTriggerDelay` | `15m` | ... or this long since the last batch |
//! | `failOnDataLoss` | `true` | whether a lost range (a topic deleted, offsets aged out) stops the query; `false`: a warning, a count in [`KafkaSourceMetrics::data_loss_events`], and the query goes on from what is left |
//! | `includeHeaders` | `false` | fill a `headers` column |
//! | `kafka.<name>` | | `<name>` passed to librdkafka (`kafka.security.protocol`, `kafka.isolation.level`, …) |
//!
//! # Rows
//!
//! Without a value format, the record's fields are Spark's columns, any subset, by name:
//! `key` and `value` (`Vec<u8>`, or `String` for UTF-8 text, replacing invalid bytes; `Option`
//! where a record may have none), `topic: String`, `partition: i32`, `offset: i64`,
//! `timestamp: Timestamp`, `timestamp_type: i32` (0 create time, 1 log-append time) and
//! `headers: KafkaHeaders` (with `includeHeaders`). With [`KafkaSourceBuilder::json`] or
//! [`KafkaSourceBuilder::csv`] the record is what each message value holds, parsed as the
//! file source parses a line, under its [`ParseMode`]s: a malformed value becomes a row of
//! nulls (PERMISSIVE, its text in the corrupt-record column), is dropped (DROPMALFORMED) or stops
//! the query naming the topic, partition and offset (FAILFAST); every one is counted in
//! [`KafkaSourceMetrics::malformed_records`].
//!
//! # Offsets and exactly-once
//!
//! An offset is, per topic-partition, the offset of the next record to read, in Spark's JSON
//! shape: `{"topic":{"0":42}}`. The end of a batch is always one past a record (or transaction
//! marker) the consumer has passed, never a high watermark, so a batch `(start, end]` re-read after a restart reads exactly
//! the records it read before. A partition that appears later (a topic grew, or a new topic
//! matches the pattern) starts at its earliest offset; the partition list is asked for again
//! at most every second, so a new one shows up within a second. Offsets are also committed to the
//! consumer group (`kafka.group.id`, default `flowgate-<random>`) after each batch, for
//! monitoring tools only: the source never reads them back; its positions come from the
//! checkpoint. (Spark commits nothing.)
//!
//! The source fetches every partition at once through one librdkafka consumer (librdkafka
//! fetches the partitions of each broker in parallel, in the background, while a batch runs),
//! keeps what it fetched ahead of the current batch in memory (bounded by
//! [`MAX_BUFFERED_BYTES`]), and decodes a batch on the query thread.
//!
//! # Continuous mode
//!
//! Under `Trigger::continuous` each topic-partition is a task with a consumer of its own, its
//! position Spark's offset JSON for that partition, logged per epoch (see `continuous.rs`);
//! the partitions are fixed when the query first starts.

mod continuous;
mod offsets;
mod reader;
mod rows;
pub mod testing;

use std::marker::PhantomData;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

pub use offsets::{PartitionOffsets, TopicPartition, EARLIEST, LATEST};
pub use reader::KafkaSource;
pub use rows::{KafkaHeader, KafkaHeaders};

use super::{FileFormat, ParseMode, Source};
use crate::record::Record;

/// How much fetched-ahead data the source keeps in memory before it stops taking more from
/// librdkafka (which then pauses fetching at its own queue limit, `queued.max.messages.kbytes`,
/// 64 MiB by default). The same figure as librdkafka's default, so the two together stay
/// within a few hundred megabytes.
pub const MAX_BUFFERED_BYTES: usize = 64 << 20;

/// Spark's default `maxTriggerDelay` (`15m`).
pub const DEFAULT_MAX_TRIGGER_DELAY_MS: u64 = 15 * 60 * 1000;

/// How long reading a batch's range may wait for its records before failing (Spark's
/// `kafkaConsumer.pollTimeoutMs` default is 120 s; a broker outage shorter than this is waited
/// out).
pub const DEFAULT_POLL_TIMEOUT_MS: u64 = 120_000;

/// What the source reads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Topics {
    /// `subscribe`: these topics.
    Subscribe(Vec<String>),
    /// `subscribePattern`: topics matching the expression.
    Pattern(String),
    /// `assign`: these partitions.
    Assign(Vec<TopicPartition>),
}

/// Where a new query starts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Starting {
    Earliest,
    Latest,
    Offsets(PartitionOffsets),
    Timestamp(i64),
}

/// The options of a Kafka source, as set on its builder.
#[derive(Clone, Debug)]
pub(crate) struct KafkaOptions {
    pub bootstrap: String,
    pub topics: Option<Topics>,
    pub starting: Starting,
    pub max_offsets_per_trigger: Option<u64>,
    pub min_offsets_per_trigger: Option<u64>,
    pub max_trigger_delay_ms: u64,
    pub fail_on_data_loss: bool,
    pub include_headers: bool,
    pub poll_timeout_ms: u64,
    /// `kafka.*` settings, without the prefix.
    pub kafka: Vec<(String, String)>,
    /// `None`: Spark's columns; else the value format of the typed path.
    pub format: Option<FileFormat>,
    pub mode: ParseMode,
    pub corrupt_record_column: Option<String>,
    pub csv_delimiter: u8,
    /// Options that could not be taken, reported when the query starts.
    pub errors: Vec<String>,
}

/// Counters of a Kafka source, shared with the program ([`KafkaSourceBuilder::metrics`]).
#[derive(Debug, Default)]
pub struct KafkaSourceMetrics {
    pub(crate) records: AtomicU64,
    pub(crate) data_loss_events: AtomicU64,
    pub(crate) malformed: AtomicU64,
}

impl KafkaSourceMetrics {
    /// Records read into batches so far (a batch read again after a restart counts again).
    pub fn records_read(&self) -> u64 {
        self.records.load(Ordering::Relaxed)
    }
    /// Ranges found lost (and skipped, under `failOnDataLoss = false`).
    pub fn data_loss_events(&self) -> u64 {
        self.data_loss_events.load(Ordering::Relaxed)
    }
    /// Malformed message values met by the typed path, whatever the parse mode did with them.
    pub fn malformed_records(&self) -> u64 {
        self.malformed.load(Ordering::Relaxed)
    }
}

/// Options of a Kafka source (see the [module documentation](self) for the table): pick the
/// topics, then hand it to a query builder (`.into()`).
pub struct KafkaSourceBuilder<T> {
    opts: KafkaOptions,
    metrics: Arc<KafkaSourceMetrics>,
    _t: PhantomData<fn() -> T>,
}

impl<T> std::fmt::Debug for KafkaSourceBuilder<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "KafkaSourceBuilder({:?})", self.opts)
    }
}

impl<T: Record> KafkaSourceBuilder<T> {
    pub(crate) fn new(bootstrap: &str) -> Self {
        KafkaSourceBuilder {
            opts: KafkaOptions {
                bootstrap: bootstrap.to_string(),
                topics: None,
                starting: Starting::Latest,
                max_offsets_per_trigger: None,
                min_offsets_per_trigger: None,
                max_trigger_delay_ms: DEFAULT_MAX_TRIGGER_DELAY_MS,
                fail_on_data_loss: true,
                include_headers: false,
                poll_timeout_ms: DEFAULT_POLL_TIMEOUT_MS,
                kafka: Vec::new(),
                format: None,
                mode: ParseMode::Permissive,
                corrupt_record_column: None,
                csv_delimiter: b',',
                errors: Vec::new(),
            },
            metrics: Arc::default(),
            _t: PhantomData,
        }
    }

    /// Sets an option by its Spark name (`subscribe`, `startingOffsets`, `kafka.linger.ms`,
    /// …; see the [module documentation](self)). A bad name or value stops the query at
    /// start with a message naming it.
    pub fn option(mut self, name: &str, value: &str) -> Self {
        if let Err(e) = self.set(name, value) {
            self.opts.errors.push(e);
        }
        self
    }

    fn set(&mut self, name: &str, value: &str) -> Result<(), String> {
        let o = &mut self.opts;
        let number = |v: &str| v.trim().parse::<u64>().map_err(|_| format!("option {name}: `{v}` is not a number"));
        let boolean = |v: &str| match v.trim().to_ascii_lowercase().as_str() {
            "true" => Ok(true),
            "false" => Ok(false),
            _ => Err(format!("option {name}: `{v}` is not true or false")),
        };
        let mut set_topics = |t: Topics| {
            if o.topics.as_ref().is_some_and(|old| std::mem::discriminant(old) != std::mem::discriminant(&t)) {
                return Err(format!(
                    "option {name}: only one of subscribe, subscribePattern and assign may be set (as in Spark)"
                ));
            }
            o.topics = Some(t);
            Ok(())
        };
        if let Some(k) = name.strip_prefix("kafka.") {
            // Spark refuses the settings it manages itself; so do we.
            let managed = ["auto.offset.reset", "enable.auto.commit", "key.deserializer", "value.deserializer"];
            if managed.contains(&k) {
                return Err(format!("option kafka.{k} is managed by the source (offsets come from the checkpoint)"));
            }
            if k == "bootstrap.servers" {
                o.bootstrap = value.to_string();
            } else {
                o.kafka.push((k.to_string(), value.to_string()));
            }
            return Ok(());
        }
        match name {
            "subscribe" => {
                let topics: Vec<String> =
                    value.split(',').map(str::trim).filter(|t| !t.is_empty()).map(String::from).collect();
                if topics.is_empty() {
                    return Err("option subscribe: no topic".into());
                }
                set_topics(Topics::Subscribe(topics))?;
            }
            "subscribePattern" => {
                regex::Regex::new(value).map_err(|e| format!("option subscribePattern: {e}"))?;
                set_topics(Topics::Pattern(value.to_string()))?;
            }
            "assign" => set_topics(Topics::Assign(offsets::parse_assign(value).map_err(|e| e.to_string())?))?,
            "startingOffsets" => {
                o.starting = match value.trim() {
                    "earliest" => Starting::Earliest,
                    "latest" => Starting::Latest,
                    json => {
                        let v: serde_json::Value = serde_json::from_str(json).map_err(|_| {
                            format!("option startingOffsets: `{json}` is not earliest, latest or Spark's JSON offsets")
                        })?;
                        Starting::Offsets(
                            PartitionOffsets::from_json(&v, "option startingOffsets").map_err(|e| e.to_string())?,
                        )
                    }
                }
            }
            "startingTimestamp" => {
                o.starting = Starting::Timestamp(number(value)? as i64);
            }
            "maxOffsetsPerTrigger" => o.max_offsets_per_trigger = Some(number(value)?.max(1)),
            "minOffsetsPerTrigger" => o.min_offsets_per_trigger = Some(number(value)?),
            "maxTriggerDelay" => {
                o.max_trigger_delay_ms =
                    (crate::Duration::parse(value).map_err(|e| format!("option maxTriggerDelay: {e}"))?.micros() / 1000)
                        .max(0) as u64
            }
            "failOnDataLoss" => o.fail_on_data_loss = boolean(value)?,
            "includeHeaders" => o.include_headers = boolean(value)?,
            "kafkaConsumer.pollTimeoutMs" => o.poll_timeout_ms = number(value)?,
            other => {
                return Err(format!(
                "unknown Kafka source option `{other}` (known: subscribe, subscribePattern, assign, startingOffsets, \
                     startingTimestamp, maxOffsetsPerTrigger, minOffsetsPerTrigger, maxTriggerDelay, failOnDataLoss, \
                     includeHeaders, kafkaConsumer.pollTimeoutMs, kafka.*)"
            ))
            }
        }
        Ok(())
    }

    /// Spark's `subscribe`: comma-separated topics.
    pub fn subscribe(self, topics: &str) -> Self {
        self.option("subscribe", topics)
    }
    /// Spark's `subscribePattern`: every topic whose name matches the regular expression
    /// (from start to end), including topics created while the query runs.
    pub fn subscribe_pattern(self, pattern: &str) -> Self {
        let anchored = format!("^(?:{pattern})$");
        self.option("subscribePattern", &anchored)
    }
    /// Spark's `assign`: `{"topicA":[0,1],"topicB":[2]}`.
    pub fn assign(self, json: &str) -> Self {
        self.option("assign", json)
    }
    /// Spark's `startingOffsets`: `"earliest"`, `"latest"` (the default) or JSON offsets.
    pub fn starting_offsets(self, offsets: &str) -> Self {
        self.option("startingOffsets", offsets)
    }
    /// Spark's `startingTimestamp` (milliseconds since the epoch).
    pub fn starting_timestamp(self, millis: i64) -> Self {
        self.option("startingTimestamp", &millis.to_string())
    }
    /// Spark's `maxOffsetsPerTrigger`.
    pub fn max_offsets_per_trigger(self, n: u64) -> Self {
        self.option("maxOffsetsPerTrigger", &n.to_string())
    }
    /// Spark's `minOffsetsPerTrigger`, with `maxTriggerDelay` (an interval such as `"30 seconds"`).
    pub fn min_offsets_per_trigger(self, n: u64, max_trigger_delay: &str) -> Self {
        self.option("minOffsetsPerTrigger", &n.to_string()).option("maxTriggerDelay", max_trigger_delay)
    }
    /// Spark's `failOnDataLoss` (default true).
    pub fn fail_on_data_loss(self, fail: bool) -> Self {
        self.option("failOnDataLoss", &fail.to_string())
    }
    /// Spark's `includeHeaders` (default false): fills a `headers: KafkaHeaders` column.
    pub fn include_headers(self, include: bool) -> Self {
        self.option("includeHeaders", &include.to_string())
    }
    /// A librdkafka setting (Spark's `kafka.<name>` options), e.g. `("fetch.min.bytes", "1")`.
    pub fn kafka(self, name: &str, value: &str) -> Self {
        self.option(&format!("kafka.{name}"), value)
    }
    /// The typed path: each message value is a JSON object, parsed into the record's fields
    /// (as the file source parses a JSON line).
    pub fn json(mut self) -> Self {
        self.opts.format = Some(FileFormat::Json);
        self
    }
    /// The typed path: each message value is one CSV line (no header), fields in the
    /// record's order.
    pub fn csv(mut self) -> Self {
        self.opts.format = Some(FileFormat::Csv);
        self
    }
    /// CSV field delimiter (default `,`).
    pub fn delimiter(mut self, delimiter: u8) -> Self {
        self.opts.csv_delimiter = delimiter;
        self
    }
    /// What the typed path does with a malformed value (default PERMISSIVE): see [`ParseMode`].
    pub fn mode(mut self, mode: ParseMode) -> Self {
        self.opts.mode = mode;
        self
    }
    /// Under PERMISSIVE, the nullable string field that receives a malformed value's text
    /// (default `_corrupt_record`).
    pub fn corrupt_record_column(mut self, name: &str) -> Self {
        self.opts.corrupt_record_column = Some(name.to_string());
        self
    }
    /// The source's counters (records read, data-loss events, malformed values).
    pub fn metrics(&self) -> Arc<KafkaSourceMetrics> {
        self.metrics.clone()
    }
}

impl<T: Record> From<KafkaSourceBuilder<T>> for Source<T> {
    fn from(b: KafkaSourceBuilder<T>) -> Self {
        Source::from_impl(Box::new(KafkaSource::new(b.opts, T::schema(), b.metrics)))
    }
}
