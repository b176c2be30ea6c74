//! The Kafka source in continuous mode: one task per topic-partition, each with a consumer of
//! its own assigned to that one partition.
//!
//! A task's reader is a Kafka source of its own over that partition (`assign` mode, the same
//! options, projection and value format), so fetching, decoding, gaps and data-loss checks are
//! the micro-batch source's. A poll takes every record fetched past the reader's position (at
//! most the vector size): it waits up to the source's idle fetch wait (10 ms) for the first
//! record and returns as soon as one is there. The partition's position is Spark's offset JSON
//! for that one partition, `{"topic":{"0":42}}`, the offset of the next record to read; the
//! offset log records the list of them per epoch, so a restart resumes every partition exactly
//! and a replayed epoch reads exactly its records again (the end of a range is always one past
//! a record or a transaction marker the consumer passed).
//!
//! The partitions are those the options name when the query first starts; the checkpoint then
//! fixes them (a partition added later is not read, as Spark's continuous Kafka reader reads
//! none until the query is restarted with a new checkpoint). `startingOffsets` and
//! `startingTimestamp` resolve as in micro-batch mode and are logged with epoch 0;
//! `maxOffsetsPerTrigger` and `minOffsetsPerTrigger` have no meaning without triggers and are
//! ignored, as in Spark's continuous mode.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use arrow_array::RecordBatch;
use serde_json::Value;

use super::offsets::{PartitionOffsets, TopicPartition};
use super::reader::KafkaSource;
use super::{Starting, Topics};
use crate::error::{Error, Result};
use crate::source::continuous::PartitionReader;
use crate::source::{ReadLimit, SourceImpl};

/// One reader per topic-partition of `src`, from `start` (the logged positions; `None` on a
/// first run).
pub(super) fn readers(src: &mut KafkaSource, start: Option<&[Value]>) -> Result<Vec<Box<dyn PartitionReader>>> {
    src.check()?;
    let positions: Vec<(TopicPartition, i64)> = match start {
        Some(logged) => logged.iter().map(position).collect::<Result<_>>()?,
        None => {
            let deadline = Instant::now() + Duration::from_millis(src.opts.poll_timeout_ms);
            let tps = loop {
                if let Some(tps) = src.partitions()? {
                    break tps;
                }
                if Instant::now() > deadline {
                    return Err(Error::Execution(format!(
                        "{}: the cluster did not list the partitions within {} ms; is the broker up?",
                        src.description(),
                        src.opts.poll_timeout_ms
                    )));
                }
                std::thread::sleep(Duration::from_millis(100));
            };
            if tps.is_empty() {
                return Err(Error::Execution(format!(
                    "{} has no partitions yet: a continuous query reads the partitions there are when it first \
                     starts, so create the topic first (or use a micro-batch trigger, which picks up topics as they \
                     appear)",
                    src.description()
                )));
            }
            // A replay of epoch 0 after a restart finds its starting offsets in the log.
            let initial = match src.initial.clone() {
                Some(initial) => initial,
                None => src.resolve_initial(&tps)?,
            };
            src.initial = Some(initial.clone());
            tps.into_iter()
                .map(|tp| {
                    let at = initial.get(&tp).ok_or_else(|| {
                        Error::Checkpoint(format!("Kafka source: the logged starting offsets name no offset for {tp}"))
                    })?;
                    Ok((tp, at))
                })
                .collect::<Result<_>>()?
        }
    };
    let mut out: Vec<Box<dyn PartitionReader>> = Vec::with_capacity(positions.len());
    for (tp, next) in positions {
        let mut opts = src.opts.clone();
        opts.topics = Some(Topics::Assign(vec![tp.clone()]));
        opts.starting = Starting::Offsets(PartitionOffsets(BTreeMap::from([(tp.clone(), next)])));
        opts.max_offsets_per_trigger = None;
        opts.min_offsets_per_trigger = None;
        let mut inner = KafkaSource::new(opts, src.schema.clone(), src.metrics.clone());
        if let Some(columns) = &src.projected {
            let columns: Vec<&str> = columns.iter().map(String::as_str).collect();
            inner.project(&columns);
        }
        out.push(Box::new(KafkaPartition { inner, tp, next, end: None }));
    }
    Ok(out)
}

/// A logged partition position: `{"topic":{"0":42}}` with exactly one partition.
fn position(p: &Value) -> Result<(TopicPartition, i64)> {
    let offsets = PartitionOffsets::from_json(p, "Kafka source continuous position")
        .map_err(|e| Error::Checkpoint(e.to_string()))?;
    let mut it = offsets.0.into_iter();
    match (it.next(), it.next()) {
        (Some(one), None) => Ok(one),
        _ => {
            Err(Error::Checkpoint(format!("Kafka source: the logged position {p} does not name exactly one partition")))
        }
    }
}

/// One topic-partition, read forward by one task.
struct KafkaPartition {
    inner: KafkaSource,
    tp: TopicPartition,
    /// The offset of the next record to read (the position).
    next: i64,
    /// Never read up to this offset or past it (a replayed epoch).
    end: Option<i64>,
}

impl KafkaPartition {
    fn offset(&self, at: i64) -> crate::source::Offset {
        PartitionOffsets(BTreeMap::from([(self.tp.clone(), at)])).to_offset()
    }
}

impl PartitionReader for KafkaPartition {
    fn poll(&mut self, max_rows: usize) -> Result<Option<RecordBatch>> {
        if self.end.is_some_and(|e| self.next >= e) {
            return Ok(None);
        }
        let start = self.offset(self.next);
        let Some(latest) = self.inner.latest_offset(Some(&start), ReadLimit::All)? else { return Ok(None) };
        let mut end = PartitionOffsets::from_offset(&latest)?.get(&self.tp).unwrap_or(self.next);
        if let Some(e) = self.end {
            end = end.min(e);
        }
        end = end.min(self.next.saturating_add(max_rows.max(1) as i64));
        if end <= self.next {
            return Ok(None);
        }
        let batches = self.inner.get_batch(Some(&start), &self.offset(end))?;
        self.next = end;
        let schema = match batches.first() {
            Some(b) => b.schema(),
            None => self.inner.schema(),
        };
        Ok(Some(match batches.len() {
            0 => RecordBatch::new_empty(schema),
            1 => batches.into_iter().next().unwrap_or_else(|| RecordBatch::new_empty(schema)),
            _ => arrow_select::concat::concat_batches(&schema, &batches)?,
        }))
    }

    fn position(&self) -> Value {
        self.offset(self.next).0
    }

    fn next_due(&self) -> Option<Instant> {
        None
    }

    fn set_end(&mut self, end: &Value) -> Result<()> {
        let (tp, at) = position(end)?;
        if tp != self.tp {
            return Err(Error::Checkpoint(format!(
                "Kafka source: the logged position {end} is for {tp}, this task reads {}",
                self.tp
            )));
        }
        self.end = Some(at);
        Ok(())
    }
}
