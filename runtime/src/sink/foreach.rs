//! `foreach_batch`: user code receives every micro-batch with its id; `foreach_rows`: user
//! code receives a continuous query's rows as they are produced.

use arrow_array::RecordBatch;

use std::sync::{Arc, Mutex};

use super::{RowWriter, SinkImpl};
use crate::error::{Error, Result};
use crate::OutputMode;

/// Calls a user closure per micro-batch.
pub struct ForeachBatchSink<F> {
    f: F,
}

impl<F> ForeachBatchSink<F> {
    /// Wraps `f`.
    pub fn new(f: F) -> Self {
        ForeachBatchSink { f }
    }
}

impl<F> SinkImpl for ForeachBatchSink<F>
where
    F: FnMut(u64, &RecordBatch) -> Result<()> + Send,
{
    fn description(&self) -> String {
        "ForeachBatchSink".to_string()
    }

    fn add_batch(&mut self, batch_id: u64, batch: &RecordBatch, _mode: OutputMode) -> Result<()> {
        (self.f)(batch_id, batch).map_err(|e| match e {
            e @ Error::User(_) => e,
            other => Error::User(other.to_string()),
        })
    }
}

/// Calls a user closure with rows as they are produced (continuous mode), or per micro-batch.
/// The closure sits behind a mutex, so the tasks of a continuous query call it from their own
/// threads ([`SinkImpl::row_writer`]), one call at a time.
pub struct ForeachRowsSink<F> {
    f: Arc<ForeachRowsWriter<F>>,
}

/// The closure of a [`ForeachRowsSink`], shared with the tasks.
pub struct ForeachRowsWriter<F> {
    f: Mutex<F>,
}

impl<F> ForeachRowsSink<F> {
    /// Wraps `f`.
    pub fn new(f: F) -> Self {
        ForeachRowsSink { f: Arc::new(ForeachRowsWriter { f: Mutex::new(f) }) }
    }
}

impl<F> RowWriter for ForeachRowsWriter<F>
where
    F: FnMut(u64, &RecordBatch) -> Result<()> + Send,
{
    fn add_rows(&self, epoch: u64, rows: &RecordBatch, _mode: OutputMode) -> Result<()> {
        // A panic in the closure poisons the lock; the closure's own state is the user's to
        // keep consistent, as when it is called from one thread.
        let mut f = self.f.lock().unwrap_or_else(|e| e.into_inner());
        (f)(epoch, rows).map_err(|e| match e {
            e @ Error::User(_) => e,
            other => Error::User(other.to_string()),
        })
    }
}

impl<F> SinkImpl for ForeachRowsSink<F>
where
    F: FnMut(u64, &RecordBatch) -> Result<()> + Send + 'static,
{
    fn description(&self) -> String {
        "ForeachRowsSink".to_string()
    }

    fn add_batch(&mut self, batch_id: u64, batch: &RecordBatch, mode: OutputMode) -> Result<()> {
        self.add_rows(batch_id, batch, mode)
    }

    fn takes_rows(&self) -> bool {
        true
    }

    fn add_rows(&mut self, epoch: u64, rows: &RecordBatch, mode: OutputMode) -> Result<()> {
        self.f.add_rows(epoch, rows, mode)
    }

    fn row_writer(&mut self) -> Option<Arc<dyn RowWriter>> {
        Some(self.f.clone())
    }
}
