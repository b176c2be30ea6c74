//! The Kafka sink (Spark's `writeStream.format("kafka")`), behind the `kafka` feature.
//!
//! ```no_run
//! use flowgate::prelude::*;
//! let sink = Sink::kafka("127.0.0.1:9092").topic("counts").transactional().build();
//! ```
//!
//! # Columns (as Spark's Kafka sink reads them)
//!
//! | column | type | meaning |
//! |---|---|---|
//! | `topic` | `String` | the record's topic, unless the `topic` option is set (which wins, as in Spark) |
//! | `key` | `String` or `Vec<u8>` (`Option`) | the record's key |
//! | `value` | `String` or `Vec<u8>` | the record's value; **without a `value` column** the value is the row's other columns as a JSON object (`{"word":"cat","count":3}`, timestamps as `2024-01-01T12:00:00Z`) |
//! | `partition` | `i32` (`Option`) | the partition; none: librdkafka's partitioner (by key) |
//! | `headers` | `KafkaHeaders` | the record's headers |
//!
//! # Options
//!
//! | option | default | meaning |
//! |---|---|---|
//! | `topic` | | the topic of every record |
//! | `kafka.<name>` | | `<name>` passed to librdkafka's producer (`linger.ms`, `compression.type`, …) |
//! | transactional | off | [`KafkaSinkBuilder::transactional`], below |
//!
//! # Delivery
//!
//! **At least once** (the default, Spark's guarantee): an idempotent producer (no duplicates or
//! reordering from its own retries); a batch returns once every record is acknowledged by the
//! broker. A batch re-run after a crash writes its records again.
//!
//! **Exactly once, transactional** (beyond Spark): each micro-batch is one Kafka transaction,
//! its `transactional.id` `flowgate-<query id>-<batch id>` (the query id is kept in the
//! checkpoint, so a re-run of a batch after a restart uses the same id: starting it fences the
//! producer of the earlier attempt and aborts its open transaction). Inside the transaction the
//! sink also commits, for the consumer group `flowgate-sink-<query id>`, offset `batch + 1` on
//! partition 0 of the marker topic (the `topic` option, or
//! [`KafkaSinkBuilder::marker_topic`]): that offset becomes visible exactly when the batch's
//! records do. A batch whose marker is already there (committed before a crash, but not yet in
//! the query's commit log) is skipped, so each batch is committed in exactly one transaction,
//! in the order of the engine's commit log: batch `n` commits before the engine writes its
//! commit entry and starts batch `n + 1`. Consumers that read with `isolation.level =
//! read_committed` see every batch once. Each record carries the headers
//! `flowgate.batch` (the batch id) and `flowgate.attempt` (an id of the sink instance that
//! wrote it), so an auditor can tell attempts apart.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arrow_array::cast::AsArray;
use arrow_array::{Array, ArrayRef, ListArray, RecordBatch};
use arrow_schema::DataType;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{ClientContext, TopicPartitionList};

use super::{Sink, SinkContext, SinkImpl};
use crate::error::{Error, Result};
use crate::OutputMode;

/// How long a batch may wait for its records to be acknowledged, or a transaction call to
/// answer (librdkafka's `transaction.timeout.ms` default is 60 s; a broker outage shorter than
/// this is waited out).
pub const DELIVERY_TIMEOUT: Duration = Duration::from_secs(60);

/// The header naming the batch of a record written by the transactional sink.
pub const BATCH_HEADER: &str = "flowgate.batch";
/// The header naming the sink instance (attempt) that wrote a record, in transactional mode.
pub const ATTEMPT_HEADER: &str = "flowgate.attempt";

/// Options of a Kafka sink; `.build()` (or `.into()`) makes the [`Sink`].
#[derive(Clone, Debug)]
pub struct KafkaSinkBuilder {
    bootstrap: String,
    topic: Option<String>,
    marker_topic: Option<String>,
    kafka: Vec<(String, String)>,
    transactional: bool,
}

impl KafkaSinkBuilder {
    pub(crate) fn new(bootstrap: &str) -> Self {
        KafkaSinkBuilder {
            bootstrap: bootstrap.to_string(),
            topic: None,
            marker_topic: None,
            kafka: Vec::new(),
            transactional: false,
        }
    }
    /// Spark's `topic` option: every record goes to this topic (a `topic` column is ignored).
    pub fn topic(mut self, topic: &str) -> Self {
        self.topic = Some(topic.to_string());
        self
    }
    /// A librdkafka producer setting (Spark's `kafka.<name>`).
    pub fn kafka(mut self, name: &str, value: &str) -> Self {
        self.kafka.push((name.to_string(), value.to_string()));
        self
    }
    /// Exactly once: one Kafka transaction per micro-batch (see the [module documentation](self)).
    pub fn transactional(mut self) -> Self {
        self.transactional = true;
        self
    }
    /// Under [`KafkaSinkBuilder::transactional`], the topic whose partition 0 carries the
    /// batch marker when records go to topics named by a `topic` column (default: the `topic`
    /// option).
    pub fn marker_topic(mut self, topic: &str) -> Self {
        self.marker_topic = Some(topic.to_string());
        self
    }
    /// The sink.
    pub fn build(self) -> Sink {
        self.into()
    }
}

impl From<KafkaSinkBuilder> for Sink {
    fn from(b: KafkaSinkBuilder) -> Sink {
        Sink::from_impl(Box::new(KafkaSink::new(b)))
    }
}

/// Delivery reports of one producer.
#[derive(Default)]
struct Deliveries {
    failed: Mutex<Option<String>>,
    delivered: AtomicU64,
}

struct DeliveryContext(Arc<Deliveries>);

impl ClientContext for DeliveryContext {}

impl ProducerContext for DeliveryContext {
    type DeliveryOpaque = ();
    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        match result {
            Ok(_) => {
                self.0.delivered.fetch_add(1, Ordering::Relaxed);
            }
            Err((e, m)) => {
                use rdkafka::Message;
                let mut failed = self.0.failed.lock().unwrap_or_else(|p| p.into_inner());
                failed.get_or_insert_with(|| format!("delivering a record to {}: {e}", m.topic()));
            }
        }
    }
}

type Producer_ = BaseProducer<DeliveryContext>;

/// The Kafka sink: see the [module documentation](self).
pub struct KafkaSink {
    opts: KafkaSinkBuilder,
    query: Option<SinkContext>,
    attempt: String,
    /// At-least-once: one producer for the query's life.
    producer: Option<(Producer_, Arc<Deliveries>)>,
    /// Transactional: reads the batch marker and gives the group metadata.
    group: Option<BaseConsumer>,
}

impl KafkaSink {
    fn new(opts: KafkaSinkBuilder) -> Self {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        KafkaSink {
            opts,
            query: None,
            attempt: format!("{nanos:x}-{}", std::process::id()),
            producer: None,
            group: None,
        }
    }

    fn query_id(&self) -> String {
        self.query.as_ref().map_or_else(|| "unnamed".to_string(), |q| q.query_id.clone())
    }

    fn marker(&self) -> Result<String> {
        self.opts.marker_topic.clone().or_else(|| self.opts.topic.clone()).ok_or_else(|| {
            Error::Plan(
                "transactional Kafka sink: set `.topic(..)` or `.marker_topic(..)` (the topic whose partition 0 \
                 carries the batch marker)"
                    .into(),
            )
        })
    }

    fn group_id(&self) -> String {
        format!("flowgate-sink-{}", self.query_id())
    }

    fn producer(&self, transactional_id: Option<&str>) -> Result<(Producer_, Arc<Deliveries>)> {
        let mut cfg = ClientConfig::new();
        cfg.set("bootstrap.servers", &self.opts.bootstrap).set("enable.idempotence", "true");
        if let Some(id) = transactional_id {
            cfg.set("transactional.id", id);
        }
        for (k, v) in &self.opts.kafka {
            cfg.set(k, v);
        }
        let deliveries = Arc::new(Deliveries::default());
        let p = cfg
            .create_with_context(DeliveryContext(deliveries.clone()))
            .map_err(|e| Error::Plan(format!("Kafka sink: cannot create a producer: {e}")))?;
        Ok((p, deliveries))
    }

    /// The last batch committed by the transactional sink (its marker), if any.
    fn committed_batches(&mut self) -> Result<i64> {
        let marker = self.marker()?;
        if self.group.is_none() {
            let c: BaseConsumer = ClientConfig::new()
                .set("bootstrap.servers", &self.opts.bootstrap)
                .set("group.id", self.group_id())
                .set("enable.auto.commit", "false")
                .create()
                .map_err(|e| Error::Plan(format!("Kafka sink: cannot create the marker consumer: {e}")))?;
            self.group = Some(c);
        }
        let c = self.group.as_ref().ok_or_else(|| Error::Internal("Kafka sink: no marker consumer".into()))?;
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition(&marker, 0);
        let got = c.committed_offsets(tpl, DELIVERY_TIMEOUT).map_err(|e| {
            Error::Execution(format!("Kafka sink: reading the batch marker of group {}: {e}", self.group_id()))
        })?;
        Ok(match got.find_partition(&marker, 0).map(|e| e.offset()) {
            Some(rdkafka::Offset::Offset(o)) => o,
            _ => 0,
        })
    }

    fn transactional_batch(&mut self, batch_id: u64, records: &[OutRecord]) -> Result<()> {
        let committed = self.committed_batches()?;
        if committed > batch_id as i64 {
            tracing::info!(batch_id, "Kafka sink: batch already committed in an earlier attempt; skipped");
            return Ok(());
        }
        let marker = self.marker()?;
        let txn_id = format!("flowgate-{}-{batch_id}", self.query_id());
        let (p, deliveries) = self.producer(Some(&txn_id))?;
        let fail =
            |what: &str, e: KafkaError| Error::Execution(format!("Kafka sink: {what} (transaction {txn_id}): {e}"));
        // Fences an earlier attempt's producer and aborts its open transaction.
        p.init_transactions(DELIVERY_TIMEOUT).map_err(|e| fail("initializing transactions", e))?;
        p.begin_transaction().map_err(|e| fail("beginning the transaction", e))?;
        let body = || -> Result<()> {
            let batch = batch_id.to_string();
            send_all(&p, records, Some((&batch, &self.attempt)))?;
            p.flush(DELIVERY_TIMEOUT).map_err(|e| fail("flushing", e))?;
            if let Some(e) = deliveries.failed.lock().unwrap_or_else(|p| p.into_inner()).take() {
                return Err(Error::Execution(format!("Kafka sink: {e}")));
            }
            let mut tpl = TopicPartitionList::new();
            tpl.add_partition_offset(&marker, 0, rdkafka::Offset::Offset(batch_id as i64 + 1))
                .map_err(|e| fail("marking the batch", e))?;
            let group = self.group.as_ref().ok_or_else(|| Error::Internal("Kafka sink: no marker consumer".into()))?;
            let meta = group.group_metadata().ok_or_else(|| Error::Internal("Kafka sink: no group metadata".into()))?;
            p.send_offsets_to_transaction(&tpl, &meta, DELIVERY_TIMEOUT).map_err(|e| fail("marking the batch", e))?;
            p.commit_transaction(DELIVERY_TIMEOUT).map_err(|e| fail("committing", e))
        };
        match body() {
            Ok(()) => Ok(()),
            Err(e) => {
                if let Err(abort) = p.abort_transaction(DELIVERY_TIMEOUT) {
                    tracing::warn!("Kafka sink: aborting transaction {txn_id}: {abort}");
                }
                Err(e)
            }
        }
    }

    fn at_least_once_batch(&mut self, records: &[OutRecord]) -> Result<()> {
        if self.producer.is_none() {
            self.producer = Some(self.producer(None)?);
        }
        let (p, deliveries) =
            self.producer.as_ref().ok_or_else(|| Error::Internal("Kafka sink: no producer".into()))?;
        send_all(p, records, None)?;
        p.flush(DELIVERY_TIMEOUT).map_err(|e| Error::Execution(format!("Kafka sink: flushing: {e}")))?;
        if let Some(e) = deliveries.failed.lock().unwrap_or_else(|p| p.into_inner()).take() {
            return Err(Error::Execution(format!("Kafka sink: {e}")));
        }
        Ok(())
    }
}

/// One record to write.
struct OutRecord {
    topic: String,
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
    partition: Option<i32>,
    headers: Vec<(String, Option<Vec<u8>>)>,
}

fn send_all(p: &Producer_, records: &[OutRecord], batch: Option<(&str, &str)>) -> Result<()> {
    for r in records {
        let mut rec: BaseRecord<'_, [u8], [u8]> = BaseRecord::to(&r.topic);
        if let Some(k) = &r.key {
            rec = rec.key(k.as_slice());
        }
        if let Some(v) = &r.value {
            rec = rec.payload(v.as_slice());
        }
        if let Some(part) = r.partition {
            rec = rec.partition(part);
        }
        if !r.headers.is_empty() || batch.is_some() {
            let mut hs = OwnedHeaders::new_with_capacity(r.headers.len() + 2);
            for (k, v) in &r.headers {
                hs = hs.insert(Header { key: k, value: v.as_deref() });
            }
            if let Some((b, a)) = batch {
                hs = hs.insert(Header { key: BATCH_HEADER, value: Some(b) });
                hs = hs.insert(Header { key: ATTEMPT_HEADER, value: Some(a) });
            }
            rec = rec.headers(hs);
        }
        let mut rec = rec;
        loop {
            match p.send(rec) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    // librdkafka's queue is full: serve delivery reports until there is room.
                    p.poll(Duration::from_millis(10));
                    rec = back;
                }
                Err((e, _)) => return Err(Error::Execution(format!("Kafka sink: producing to {}: {e}", r.topic))),
            }
        }
    }
    Ok(())
}

/// The byte strings of a `key`/`value` column (`Utf8` or `Binary`).
fn bytes_of(col: &ArrayRef, name: &str) -> Result<Vec<Option<Vec<u8>>>> {
    Ok(match col.data_type() {
        DataType::Utf8 => col.as_string::<i32>().iter().map(|v| v.map(|s| s.as_bytes().to_vec())).collect(),
        DataType::LargeUtf8 => col.as_string::<i64>().iter().map(|v| v.map(|s| s.as_bytes().to_vec())).collect(),
        DataType::Binary => col.as_binary::<i32>().iter().map(|v| v.map(<[u8]>::to_vec)).collect(),
        other => {
            return Err(Error::Plan(format!(
                "Kafka sink: column `{name}` is {other}; Spark's Kafka sink takes a string or binary {name}"
            )))
        }
    })
}

/// The records of `batch`, as Spark's Kafka sink reads its columns.
fn records(batch: &RecordBatch, topic_option: Option<&str>) -> Result<Vec<OutRecord>> {
    let n = batch.num_rows();
    let col = |name: &str| batch.column_by_name(name);
    let topics: Vec<String> = match (topic_option, col("topic")) {
        (Some(t), _) => vec![t.to_string(); n],
        (None, Some(c)) if c.data_type() == &DataType::Utf8 => {
            let mut out = Vec::with_capacity(n);
            for (i, t) in c.as_string::<i32>().iter().enumerate() {
                out.push(
                    t.ok_or_else(|| {
                        Error::Plan(format!("Kafka sink: row {i} has a null topic (set `.topic(..)` for a default)"))
                    })?
                    .to_string(),
                );
            }
            out
        }
        (None, Some(c)) => {
            return Err(Error::Plan(format!("Kafka sink: column `topic` is {}, not a string", c.data_type())))
        }
        (None, None) => {
            return Err(Error::Plan(
                "Kafka sink: no topic: set `.topic(..)` or give the output record a `topic: String` column".into(),
            ))
        }
    };
    let keys = match col("key") {
        Some(c) => bytes_of(c, "key")?,
        None => vec![None; n],
    };
    let values = match col("value") {
        Some(c) => bytes_of(c, "value")?,
        None => json_values(batch)?,
    };
    let partitions: Vec<Option<i32>> = match col("partition") {
        Some(c) if c.data_type() == &DataType::Int32 => {
            c.as_primitive::<arrow_array::types::Int32Type>().iter().collect()
        }
        Some(c) => return Err(Error::Plan(format!("Kafka sink: column `partition` is {}, not i32", c.data_type()))),
        None => vec![None; n],
    };
    let headers: Vec<Vec<(String, Option<Vec<u8>>)>> = match col("headers") {
        Some(c) => {
            let list = c.as_any().downcast_ref::<ListArray>().ok_or_else(|| {
                Error::Plan(format!("Kafka sink: column `headers` is {}, not KafkaHeaders", c.data_type()))
            })?;
            (0..n)
                .map(|i| {
                    if list.is_null(i) {
                        return Vec::new();
                    }
                    <crate::source::kafka::KafkaHeaders as crate::record::ColumnType>::from_ref(
                        <crate::source::kafka::KafkaHeaders as crate::record::ColumnType>::get(list, i),
                    )
                    .0
                    .into_iter()
                    .map(|h| (h.key, h.value))
                    .collect()
                })
                .collect()
        }
        None => vec![Vec::new(); n],
    };
    Ok(topics
        .into_iter()
        .zip(keys)
        .zip(values)
        .zip(partitions)
        .zip(headers)
        .map(|((((topic, key), value), partition), headers)| OutRecord { topic, key, value, partition, headers })
        .collect())
}

/// Each row's columns other than Spark's sink columns, as a JSON object.
fn json_values(batch: &RecordBatch) -> Result<Vec<Option<Vec<u8>>>> {
    let special = ["topic", "key", "partition", "headers"];
    let keep: Vec<usize> = batch
        .schema()
        .fields()
        .iter()
        .enumerate()
        .filter(|(_, f)| !special.contains(&f.name().as_str()))
        .map(|(i, _)| i)
        .collect();
    let projected = batch.project(&keep)?;
    let text = crate::sink::file::textual(&projected, false)?;
    let mut buf = Vec::new();
    {
        let mut w = arrow_json::WriterBuilder::new()
            .with_explicit_nulls(true)
            .build::<_, arrow_json::writer::LineDelimited>(&mut buf);
        w.write(&text)?;
        w.finish()?;
    }
    let out: Vec<Option<Vec<u8>>> =
        buf.split(|b| *b == b'\n').filter(|l| !l.is_empty()).map(|l| Some(l.to_vec())).collect();
    if out.len() != batch.num_rows() {
        return Err(Error::Internal(format!("Kafka sink: {} JSON values for {} rows", out.len(), batch.num_rows())));
    }
    Ok(out)
}

impl SinkImpl for KafkaSink {
    fn description(&self) -> String {
        format!(
            "KafkaSink[{}{}]",
            self.opts.topic.as_deref().unwrap_or("<topic column>"),
            if self.opts.transactional { ", transactional" } else { "" }
        )
    }

    fn open(&mut self, query: &SinkContext) -> Result<()> {
        if self.opts.transactional {
            self.marker()?;
            if !query.checkpointed {
                tracing::warn!(
                    "transactional Kafka sink without a checkpoint: each batch is atomic, but a restart starts a new \
                     query (no exactly-once across restarts)"
                );
            }
        }
        self.query = Some(query.clone());
        Ok(())
    }

    fn add_batch(&mut self, batch_id: u64, batch: &RecordBatch, mode: OutputMode) -> Result<()> {
        // Every output mode is accepted, as in Spark (complete mode writes the whole result
        // table every batch).
        let _ = mode;
        let records = records(batch, self.opts.topic.as_deref())?;
        if self.opts.transactional {
            self.transactional_batch(batch_id, &records)
        } else {
            self.at_least_once_batch(&records)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::{Int64Array, StringArray};
    use arrow_schema::{Field, Schema};

    fn batch() -> RecordBatch {
        RecordBatch::try_new(
            Arc::new(Schema::new(vec![
                Field::new("word", DataType::Utf8, false),
                Field::new("count", DataType::Int64, false),
                Field::new("key", DataType::Utf8, true),
            ])),
            vec![
                Arc::new(StringArray::from(vec!["cat", "dog"])),
                Arc::new(Int64Array::from(vec![3, 1])),
                Arc::new(StringArray::from(vec![Some("c"), None])),
            ],
        )
        .unwrap()
    }

    #[test]
    fn rows_without_a_value_column_become_json_values() {
        let recs = records(&batch(), Some("out")).unwrap();
        assert_eq!(recs.len(), 2);
        assert_eq!(recs[0].value.as_deref(), Some(br#"{"word":"cat","count":3}"#.as_slice()));
        assert_eq!(recs[0].key.as_deref(), Some(b"c".as_slice()));
        assert_eq!(recs[1].key, None);
        assert_eq!(recs[1].topic, "out");
    }

    #[test]
    fn a_missing_topic_is_a_clear_error() {
        let e = records(&batch(), None).err().unwrap().to_string();
        assert!(e.contains("no topic") && e.contains(".topic("), "{e}");
    }
}
