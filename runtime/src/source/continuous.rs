//! Sources in continuous mode: a source split into partitions, each read by one long-running
//! task ([`crate::engine::continuous`]).
//!
//! A partition's position is a JSON value of its own (the rate source: rows read; the memory
//! source: batches read). The engine logs a source's position per epoch as the list of its
//! partitions' positions, in partition order, and hands that list back after a restart, so the
//! number of partitions is fixed by the first run.

use std::time::Instant;

use arrow_array::RecordBatch;
use serde_json::Value;

use crate::error::Result;

/// Rows one poll returns at most: the size of the vectors a task runs the query's code on.
/// 8 Ki rows is DataFusion's default batch size, the upper end of what keeps a vector in the
/// L2 cache (a rate row is 16 bytes); at 100 000 rows/s a task's vectors are far smaller (what
/// arrived since its last poll).
pub const MAX_VECTOR_ROWS: usize = 8_192;

/// One partition of a source, read by one task, forward only.
pub trait PartitionReader: Send {
    /// The rows available now after this reader's position (at most `max_rows`, never past
    /// the end set by [`PartitionReader::set_end`]); `None` when nothing is available.
    fn poll(&mut self, max_rows: usize) -> Result<Option<RecordBatch>>;
    /// The position after the last row returned (what the offset log records per epoch).
    fn position(&self) -> Value;
    /// When the next row is due, if the reader knows (the rate source does); `None`: the task
    /// waits to be woken ([`PartitionReader::wake_on_data`]) or polls.
    fn next_due(&self) -> Option<Instant>;
    /// When the first row of the last vector [`PartitionReader::poll`] returned became
    /// available, if the reader knows (for the epoch's latency in progress reports).
    fn available_since(&self) -> Option<Instant> {
        None
    }
    /// Whether the last [`PartitionReader::poll`] that returned `None` looked at the source: a
    /// reader that checks its source only every so often (the file source lists its directory
    /// every [`crate::engine::POLL_INTERVAL`]) says no between checks. A task counts as caught
    /// up in an epoch (`StreamingQuery::process_all_available`) only once a poll that looked
    /// found nothing after its last rows.
    fn looked(&self) -> bool {
        true
    }
    /// Replays an epoch: never read past `end` (a position this reader's partition logged).
    fn set_end(&mut self, end: &Value) -> Result<()>;
    /// The reader's source unparks `thread` when new rows arrive, if it can (the memory
    /// source); returns whether it will.
    fn wake_on_data(&mut self, _thread: std::thread::Thread) -> bool {
        false
    }
}

/// The partitions' positions in a logged source offset (a JSON list), checked against the
/// number of partitions `expected` when the source has one.
pub fn partition_positions(offset: &Value, expected: Option<usize>, source: &str) -> Result<Vec<Value>> {
    let list = offset.as_array().ok_or_else(|| {
        crate::Error::Checkpoint(format!(
            "{source}: the logged offset {offset} is not a list of partition positions; was the checkpoint \
             written by a micro-batch run? Continuous and micro-batch runs cannot share a checkpoint"
        ))
    })?;
    if let Some(n) = expected {
        if n != list.len() {
            return Err(crate::Error::Checkpoint(format!(
                "{source}: the checkpoint has {} partitions and the source {n}; the partitions of a continuous \
                 query are fixed by its first run",
                list.len()
            )));
        }
    }
    Ok(list.clone())
}
