//! The memory source: rows the program pushes itself (tests, demos). Replayable: every batch
//! added is kept until committed.

use std::marker::PhantomData;
use std::sync::{Arc, Mutex, MutexGuard};

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;

use super::{Offset, ReadLimit, SourceImpl};
use crate::error::{Error, Result};
use crate::record::Record;

#[derive(Default)]
struct Shared {
    /// Batches added and not yet committed; `base` is the offset of the first.
    batches: Vec<RecordBatch>,
    base: u64,
    /// Continuous mode: the task threads to unpark when a batch is added.
    waiters: Vec<std::thread::Thread>,
}

/// A stream of `T` rows fed by the program: `add(rows)` appends one batch of input.
///
/// The offset is the number of batches added. Cloning gives another handle to the same stream.
pub struct MemoryStream<T> {
    shared: Arc<Mutex<Shared>>,
    _t: PhantomData<fn() -> T>,
}

impl<T> Clone for MemoryStream<T> {
    fn clone(&self) -> Self {
        MemoryStream { shared: self.shared.clone(), _t: PhantomData }
    }
}

impl<T: Record> Default for MemoryStream<T> {
    fn default() -> Self {
        Self::new()
    }
}

fn lock(m: &Mutex<Shared>) -> MutexGuard<'_, Shared> {
    // A panic while holding the lock cannot leave `Shared` half-updated (every update is a
    // single push or drain), so a poisoned lock is still consistent.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl<T: Record> MemoryStream<T> {
    /// A new, empty stream.
    pub fn new() -> Self {
        MemoryStream { shared: Arc::default(), _t: PhantomData }
    }

    /// Appends one batch of rows (an empty `rows` still makes a new offset, like an empty file).
    pub fn add(&self, rows: impl IntoIterator<Item = T>) {
        // `to_batch` cannot fail for rows of the record's own type.
        let batch = T::to_batch(rows).unwrap_or_else(|_| RecordBatch::new_empty(T::schema()));
        self.add_batch(batch);
    }

    /// Appends a ready-made Arrow batch (its schema must be `T`'s).
    pub fn add_batch(&self, batch: RecordBatch) {
        let mut s = lock(&self.shared);
        s.batches.push(batch);
        for t in &s.waiters {
            t.unpark();
        }
    }

    /// Number of batches added so far (the latest offset).
    pub fn len(&self) -> u64 {
        let s = lock(&self.shared);
        s.base + s.batches.len() as u64
    }

    /// True when nothing was ever added.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub(crate) fn source(&self) -> MemorySource {
        MemorySource { shared: self.shared.clone(), schema: T::schema(), snapshot: None }
    }
}

/// The runtime side of [`MemoryStream`].
pub struct MemorySource {
    shared: Arc<Mutex<Shared>>,
    schema: SchemaRef,
    snapshot: Option<u64>,
}

impl SourceImpl for MemorySource {
    fn description(&self) -> String {
        "MemoryStream".to_string()
    }

    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn prepare_available_now(&mut self) -> Result<()> {
        let s = lock(&self.shared);
        self.snapshot = Some(s.base + s.batches.len() as u64);
        Ok(())
    }

    fn latest_offset(&mut self, _start: Option<&Offset>, _limit: ReadLimit) -> Result<Option<Offset>> {
        let s = lock(&self.shared);
        let mut end = s.base + s.batches.len() as u64;
        if let Some(snap) = self.snapshot {
            end = end.min(snap);
        }
        Ok((end > 0).then(|| Offset::number(end)))
    }

    fn get_batch(&mut self, start: Option<&Offset>, end: &Offset) -> Result<Vec<RecordBatch>> {
        let bad = |o: &Offset| Error::Checkpoint(format!("memory source offset {o} is not a number"));
        let start = start.map(|o| o.as_u64().ok_or_else(|| bad(o))).transpose()?.unwrap_or(0);
        let end = end.as_u64().ok_or_else(|| bad(end))?;
        let s = lock(&self.shared);
        if start < s.base || end > s.base + s.batches.len() as u64 || start > end {
            return Err(Error::Execution(format!(
                "memory source cannot replay ({start}, {end}]: it holds ({}, {}]",
                s.base,
                s.base + s.batches.len() as u64
            )));
        }
        Ok(s.batches[(start - s.base) as usize..(end - s.base) as usize].to_vec())
    }

    fn continuous_readers(
        &mut self,
        start: Option<&[serde_json::Value]>,
    ) -> Result<Option<Vec<Box<dyn super::continuous::PartitionReader>>>> {
        let read = match start {
            None => 0,
            Some([p]) => p
                .as_u64()
                .ok_or_else(|| Error::Checkpoint(format!("memory source: the logged position {p} is not a number")))?,
            Some(other) => {
                return Err(Error::Checkpoint(format!(
                    "memory source: the checkpoint has {} partitions, the source has one",
                    other.len()
                )))
            }
        };
        Ok(Some(vec![Box::new(MemoryPartition { shared: self.shared.clone(), read, end: None })]))
    }

    fn commit(&mut self, end: &Offset) -> Result<()> {
        if let Some(end) = end.as_u64() {
            let mut s = lock(&self.shared);
            let n = end.saturating_sub(s.base).min(s.batches.len() as u64);
            s.batches.drain(..n as usize);
            s.base += n;
        }
        Ok(())
    }
}

/// The memory source in continuous mode: one partition, whose position is the number of
/// batches read. A poll returns the next batch added, whole (a batch is never split across
/// epochs).
struct MemoryPartition {
    shared: Arc<Mutex<Shared>>,
    read: u64,
    end: Option<u64>,
}

impl super::continuous::PartitionReader for MemoryPartition {
    fn poll(&mut self, _max_rows: usize) -> Result<Option<RecordBatch>> {
        if self.end.is_some_and(|e| self.read >= e) {
            return Ok(None);
        }
        let s = lock(&self.shared);
        if self.read < s.base {
            return Err(Error::Execution(format!(
                "memory source cannot replay from batch {}: it holds batches from {}",
                self.read, s.base
            )));
        }
        let Some(batch) = s.batches.get((self.read - s.base) as usize).cloned() else { return Ok(None) };
        self.read += 1;
        Ok(Some(batch))
    }

    fn position(&self) -> serde_json::Value {
        serde_json::Value::from(self.read)
    }

    fn next_due(&self) -> Option<std::time::Instant> {
        None
    }

    fn set_end(&mut self, end: &serde_json::Value) -> Result<()> {
        self.end =
            Some(end.as_u64().ok_or_else(|| {
                Error::Checkpoint(format!("memory source: the logged position {end} is not a number"))
            })?);
        Ok(())
    }

    fn wake_on_data(&mut self, thread: std::thread::Thread) -> bool {
        lock(&self.shared).waiters.push(thread);
        true
    }
}
