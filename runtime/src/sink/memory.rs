//! The memory sink: results kept in a table the program can read (tests, notebooks).

use std::sync::{Arc, Mutex, MutexGuard};

use arrow_array::RecordBatch;

use super::SinkImpl;
use crate::error::Result;
use crate::record::Record;
use crate::OutputMode;

#[derive(Default)]
struct Shared {
    /// The batches the table holds, in order: (batch id, rows). A re-run batch replaces its
    /// earlier delivery (and the ones after it) here.
    history: Vec<(u64, RecordBatch)>,
    /// Every delivery, in order, never replaced: a batch delivered twice shows twice.
    deliveries: Vec<(u64, RecordBatch)>,
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

    /// The micro-batches the table is made of, with their batch ids, in order: a batch
    /// delivered again (a re-run after a failure) replaces its earlier delivery. See
    /// [`MemoryTable::deliveries`] for every delivery.
    pub fn history(&self) -> Vec<(u64, RecordBatch)> {
        lock(&self.shared).history.clone()
    }

    /// Every delivery the sink received, in order, with its batch id, none replaced: a test
    /// can check that each batch arrived once per attempt (a batch id twice in one run is a
    /// double delivery that [`MemoryTable::history`] would hide).
    pub fn deliveries(&self) -> Vec<(u64, RecordBatch)> {
        lock(&self.shared).deliveries.clone()
    }

    /// How many times batch `batch_id` was delivered.
    pub fn deliveries_of(&self, batch_id: u64) -> usize {
        lock(&self.shared).deliveries.iter().filter(|(id, _)| *id == batch_id).count()
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
        let rerun = match s.history.iter().position(|(id, _)| *id == batch_id) {
            Some(pos) => {
                s.history.truncate(pos);
                true
            }
            None => false,
        };
        s.history.push((batch_id, batch.clone()));
        s.deliveries.push((batch_id, batch.clone()));
        match mode {
            OutputMode::Complete => s.table = vec![batch.clone()],
            OutputMode::Append | OutputMode::Update if rerun => {
                let table: Vec<RecordBatch> = s.history.iter().map(|(_, b)| b.clone()).collect();
                s.table = table;
            }
            OutputMode::Append | OutputMode::Update => s.table.push(batch.clone()),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow_array::Int64Array;
    use arrow_schema::{DataType, Field, Schema};

    use super::*;

    fn batch(v: i64) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![Field::new("n", DataType::Int64, false)]));
        RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from(vec![v]))]).unwrap()
    }

    #[test]
    fn append_accumulates_complete_replaces_and_a_rerun_replaces_its_batch() {
        let table = MemoryTable::new();
        let mut sink = table.sink();
        sink.add_batch(0, &batch(1), OutputMode::Append).unwrap();
        sink.add_batch(1, &batch(2), OutputMode::Append).unwrap();
        assert_eq!(table.batches().len(), 2);
        // Batch 1 delivered again (a re-run): it replaces the first delivery.
        sink.add_batch(1, &batch(3), OutputMode::Append).unwrap();
        let values: Vec<i64> = table
            .batches()
            .iter()
            .map(|b| b.column(0).as_any().downcast_ref::<Int64Array>().unwrap().value(0))
            .collect();
        assert_eq!(values, vec![1, 3]);
        assert_eq!(table.batch_count(), 2);
        // Every delivery is recorded, the replaced one included.
        let delivered: Vec<u64> = table.deliveries().iter().map(|(id, _)| *id).collect();
        assert_eq!(delivered, vec![0, 1, 1]);
        assert_eq!((table.deliveries_of(0), table.deliveries_of(1), table.deliveries_of(7)), (1, 2, 0));
        sink.add_batch(2, &batch(9), OutputMode::Complete).unwrap();
        assert_eq!(table.batches().len(), 1);
    }
}
