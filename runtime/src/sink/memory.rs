//! The memory sink: results kept in a table the program can read (tests, notebooks).

use std::sync::{Arc, Mutex, MutexGuard};

use arrow_array::RecordBatch;

use super::SinkImpl;
use crate::error::Result;
use crate::record::Record;
use crate::OutputMode;

#[derive(Default)]
struct Shared {
    /// Every batch the sink received, in order: (batch id, rows).
    history: Vec<(u64, RecordBatch)>,
    /// The table as Spark's memory sink keeps it: appended in append/update mode, replaced in
    /// complete mode.
    table: Vec<RecordBatch>,
}

/// A queryable result table. Cloning gives another handle to the same table.
#[derive(Clone, Default)]
pub struct MemoryTable {
    shared: Arc<Mutex<Shared>>,
}

fn lock(m: &Mutex<Shared>) -> MutexGuard<'_, Shared> {
    // Updates are single pushes/assignments: a poisoned lock still holds consistent data.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl MemoryTable {
    /// A new, empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// The table's contents: all rows appended so far (append/update mode) or the last
    /// complete result (complete mode).
    pub fn batches(&self) -> Vec<RecordBatch> {
        lock(&self.shared).table.clone()
    }

    /// The table's contents as typed rows.
    pub fn rows<T: Record>(&self) -> Result<Vec<T>> {
        let mut out = Vec::new();
        for b in self.batches() {
            out.extend(T::from_batch(&b)?);
        }
        Ok(out)
    }

    /// Every micro-batch received, with its batch id, in order.
    pub fn history(&self) -> Vec<(u64, RecordBatch)> {
        lock(&self.shared).history.clone()
    }

    /// Number of micro-batches received.
    pub fn batch_count(&self) -> usize {
        lock(&self.shared).history.len()
    }

    pub(crate) fn sink(&self) -> MemorySink {
        MemorySink { table: self.clone() }
    }
}

/// The runtime side of [`MemoryTable`].
pub struct MemorySink {
    table: MemoryTable,
}

impl SinkImpl for MemorySink {
    fn description(&self) -> String {
        "MemorySink".to_string()
    }

    fn add_batch(&mut self, batch_id: u64, batch: &RecordBatch, mode: OutputMode) -> Result<()> {
        let mut s = lock(&self.table.shared);
        // A re-run batch (same id after a failure) replaces what that id delivered before.
        if let Some(pos) = s.history.iter().position(|(id, _)| *id == batch_id) {
            s.history.truncate(pos);
        }
        s.history.push((batch_id, batch.clone()));
        match mode {
            OutputMode::Complete => s.table = vec![batch.clone()],
            OutputMode::Append | OutputMode::Update => {
                let table: Vec<RecordBatch> = s.history.iter().map(|(_, b)| b.clone()).collect();
                s.table = table;
            }
        }
        Ok(())
    }
}
