//! `foreach_batch`: user code receives every micro-batch with its id.

use arrow_array::RecordBatch;

use super::SinkImpl;
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
