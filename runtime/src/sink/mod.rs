//! Sinks: where each micro-batch's result goes.

use std::fmt;

use arrow_array::RecordBatch;

use crate::error::Result;
use crate::OutputMode;

pub mod console;
pub mod file;
pub mod foreach;
#[cfg(feature = "kafka")]
pub mod kafka;
pub mod memory;

pub use console::ConsoleOptions;
pub use file::SinkFormat;
pub use memory::MemoryTable;

/// The runtime side of a sink.
pub trait SinkImpl: Send {
    /// Human description for progress, e.g. `ConsoleSink`.
    fn description(&self) -> String;
    /// Receives the result of micro-batch `batch_id` (already concatenated into one batch).
    /// May be called again with the same id after a failure: sinks that promise exactly-once
    /// must make that idempotent.
    fn add_batch(&mut self, batch_id: u64, batch: &RecordBatch, mode: OutputMode) -> Result<()>;
    /// Called once when the query starts, before the first batch, with the query's identity
    /// (a transactional sink derives its transaction ids from it).
    fn open(&mut self, _query: &SinkContext) -> Result<()> {
        Ok(())
    }
    /// Continuous mode ([`crate::engine::continuous`]): whether this sink takes an epoch's rows
    /// as the tasks produce them ([`SinkImpl::add_rows`], then [`SinkImpl::commit_epoch`]),
    /// at-least-once, rather than whole when the epoch commits ([`SinkImpl::add_batch`] with
    /// the epoch id, after the epoch's offsets are durable: exactly-once for the sinks that are
    /// idempotent by batch id). Default false.
    fn takes_rows(&self) -> bool {
        false
    }
    /// Continuous mode, when [`SinkImpl::takes_rows`]: rows of epoch `epoch`, not committed yet
    /// (after a failure the epoch's rows are delivered again).
    fn add_rows(&mut self, epoch: u64, _rows: &RecordBatch, _mode: OutputMode) -> Result<()> {
        Err(crate::Error::Internal(format!(
            "{} was given the rows of epoch {epoch} but does not take rows",
            self.description()
        )))
    }
    /// Continuous mode, when [`SinkImpl::takes_rows`]: every row of `epoch` was given to
    /// [`SinkImpl::add_rows`] (or to its [`SinkImpl::row_writer`]) and the epoch's offsets are
    /// durable.
    fn commit_epoch(&mut self, _epoch: u64) -> Result<()> {
        Ok(())
    }
    /// Continuous mode, when [`SinkImpl::takes_rows`]: a handle the tasks of a map-like query
    /// call from their own threads with the rows they produced, so a row reaches the sink
    /// without waking the coordinator (one thread hand-off less per vector: see
    /// `benches/README.md`, latency). A task gives an epoch's rows to it before it passes the
    /// epoch's marker, so [`SinkImpl::commit_epoch`] still follows every row of its epoch.
    /// `None` (the default): the rows go through the coordinator's [`SinkImpl::add_rows`].
    fn row_writer(&mut self) -> Option<std::sync::Arc<dyn RowWriter>> {
        None
    }
}

/// Rows for a sink from several threads at once ([`SinkImpl::row_writer`]).
pub trait RowWriter: Send + Sync {
    /// As [`SinkImpl::add_rows`].
    fn add_rows(&self, epoch: u64, rows: &RecordBatch, mode: OutputMode) -> Result<()>;
}

/// What a sink learns about its query when it starts ([`SinkImpl::open`]).
#[derive(Clone, Debug)]
pub struct SinkContext {
    /// The query's id: kept in the checkpoint, so the same across restarts (random without one).
    pub query_id: String,
    /// The query's name.
    pub query_name: String,
    /// Whether the query has a checkpoint (and so replays batches after a restart).
    pub checkpointed: bool,
}

/// A sink handed to a query builder.
pub struct Sink {
    pub(crate) inner: Box<dyn SinkImpl>,
}

impl fmt::Debug for Sink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Sink({})", self.inner.description())
    }
}

impl Sink {
    /// Wraps any [`SinkImpl`] (for custom sinks).
    pub fn from_impl(inner: Box<dyn SinkImpl>) -> Self {
        Sink { inner }
    }
    /// Prints each batch as Spark's console sink does (`Batch: N` and a table) to stdout.
    pub fn console() -> Self {
        Self::console_with(ConsoleOptions::default())
    }
    /// The console sink with options (row limit, truncation).
    pub fn console_with(options: ConsoleOptions) -> Self {
        Sink::from_impl(Box::new(console::ConsoleSink::new(options)))
    }
    /// Writes each batch as files in `output`, exactly once through `output/_manifest` (see
    /// [`mod@file`]): JSON lines, CSV or Parquet. Append and update mode.
    pub fn file(output: impl Into<std::path::PathBuf>, format: SinkFormat) -> Self {
        Sink::from_impl(Box::new(file::FileSink::new(output, format)))
    }
    /// The file sink writing into the root of `storage` instead of a directory (see
    /// [`crate::checkpoint::Storage`]; the crash tests use the simulated disk of
    /// [`crate::checkpoint::sim`]).
    pub fn file_in(storage: std::sync::Arc<dyn crate::checkpoint::Storage>, format: SinkFormat) -> Self {
        Sink::from_impl(Box::new(file::FileSink::in_storage(storage, format)))
    }
    /// Keeps results in a table the program can query (see [`MemoryTable`]).
    pub fn memory(table: &MemoryTable) -> Self {
        Sink::from_impl(Box::new(table.sink()))
    }
    /// Calls `f(batch_id, batch)` for every micro-batch (Spark's `foreachBatch`). The batch id
    /// lets `f` be idempotent when a batch is re-run after a failure.
    pub fn foreach_batch<F>(f: F) -> Self
    where
        F: FnMut(u64, &RecordBatch) -> Result<()> + Send + 'static,
    {
        Sink::from_impl(Box::new(foreach::ForeachBatchSink::new(f)))
    }
    /// Calls `f(epoch, rows)` with the rows of a continuous query as soon as a task produced
    /// them, before their epoch commits (at-least-once: after a failure the rows of an
    /// uncommitted epoch come again, with the same epoch id). The lowest-latency way out of a
    /// continuous query; under a micro-batch trigger it is called once per batch, like
    /// [`Sink::foreach_batch`].
    pub fn foreach_rows<F>(f: F) -> Self
    where
        F: FnMut(u64, &RecordBatch) -> Result<()> + Send + 'static,
    {
        Sink::from_impl(Box::new(foreach::ForeachRowsSink::new(f)))
    }
    /// Writes each row as a Kafka record (Spark's Kafka sink) to the brokers at
    /// `bootstrap_servers`: see [`kafka`] for the columns, options and the transactional
    /// mode. Needs the `kafka` feature.
    #[cfg(feature = "kafka")]
    pub fn kafka(bootstrap_servers: &str) -> kafka::KafkaSinkBuilder {
        kafka::KafkaSinkBuilder::new(bootstrap_servers)
    }
    /// The description of the underlying sink.
    pub fn description(&self) -> String {
        self.inner.description()
    }
}
