//! Sources: where a streaming query's rows come from.
//!
//! A source is replayable through offsets (after Spark's `Source`/`MicroBatchStream`): the
//! engine asks for the latest offset, writes the range `(start, end]` to the offset log, then
//! asks for exactly that range. Asking again for the same range must give the same rows (except
//! for sources documented as not fault-tolerant, such as the socket source).

use std::fmt;
use std::marker::PhantomData;

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;

use crate::error::Result;
use crate::record::Record;

pub mod continuous;
pub mod file;
#[cfg(feature = "kafka")]
pub mod kafka;
pub mod memory;
pub mod rate;
pub mod socket;

pub use file::{FileFormat, FileSource, ParseMode};
pub use memory::MemoryStream;
pub use socket::{SocketCounters, SocketOptions};

/// A position in a source, as JSON (Spark's offsets are JSON too: a number for the memory
/// source, `{"logOffset": n}` for files, `{"topic": {"0": 42}}` for Kafka).
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Offset(pub serde_json::Value);

impl Offset {
    /// An offset that is a plain number.
    pub fn number(n: u64) -> Self {
        Offset(serde_json::Value::from(n))
    }
    /// The number, for offsets made by [`Offset::number`].
    pub fn as_u64(&self) -> Option<u64> {
        self.0.as_u64()
    }
}

impl fmt::Display for Offset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// How much a batch may read.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum ReadLimit {
    /// Everything available (Trigger::once).
    All,
    /// The source's own per-trigger limit (`max_files_per_trigger`, …).
    Default,
}

/// Field metadata key marking a column a source filled with placeholders because the plan
/// did not ask for it (`SourceImpl::project`). Generated code checks, in debug builds, that
/// it never reads such a column ([`crate::exec::check_loaded`]).
pub const UNREAD_COLUMN: &str = "flowgate.unread";

/// The runtime side of a source. Implemented by every built-in source; the engine only sees
/// `Box<dyn SourceImpl>` (one virtual call per batch, never per row).
pub trait SourceImpl: Send {
    /// Human description for progress, e.g. `FileSource[/data/in]`.
    fn description(&self) -> String;
    /// The schema of the batches this source returns.
    fn schema(&self) -> SchemaRef;
    /// The plan reads only these columns (by name) of this source's rows: the engine says so
    /// once, before the first batch, from the columns the query compiler found the plan reads
    /// (`QuerySpec::input_reads`). A source may then decode only those. The batches it returns
    /// must still hold every column of `schema()`, by name and type, in order; the unread ones
    /// hold placeholders that a typed view of the record accepts: values without nulls (the
    /// file source's zeros), or nulls with the field marked nullable in the batch's schema.
    fn project(&mut self, _columns: &[&str]) {}
    /// Called once before the first batch under Trigger::available_now: the source fixes the
    /// data it will deliver (later arrivals wait for the next run).
    fn prepare_available_now(&mut self) -> Result<()> {
        Ok(())
    }
    /// The end offset of the next batch, given the end of the last one (`start`), within
    /// `limit`. `Ok(None)` or an offset equal to `start` means: nothing new.
    fn latest_offset(&mut self, start: Option<&Offset>, limit: ReadLimit) -> Result<Option<Offset>>;
    /// The rows in `(start, end]`. Must be repeatable for a replayable source.
    fn get_batch(&mut self, start: Option<&Offset>, end: &Offset) -> Result<Vec<RecordBatch>>;
    /// What this source needs logged with batch `(start, end]` to replay it after a restart
    /// (Spark's per-source logs: the file source's list of files). Written to the checkpoint
    /// before the batch runs.
    fn batch_log(&self, _start: Option<&Offset>, _end: &Offset) -> Result<Option<serde_json::Value>> {
        Ok(None)
    }
    /// After a restart: the entries [`SourceImpl::batch_log`] gave for every batch that ran, in
    /// batch order.
    fn restore_log(&mut self, _entries: Vec<serde_json::Value>) -> Result<()> {
        Ok(())
    }
    /// The earliest time this source can have new data, if it knows (the rate source knows when
    /// its next row is created): it promises that [`SourceImpl::latest_offset`] reports nothing
    /// new before then. An idle query under the default trigger sleeps until the earliest due
    /// time of its sources; a source that cannot tell (`None`, the default) is polled every
    /// [`crate::engine::POLL_INTERVAL`].
    fn next_data_due(&self) -> Option<std::time::Instant> {
        None
    }
    /// Everything up to `end` is committed; the source may forget it.
    fn commit(&mut self, _end: &Offset) -> Result<()> {
        Ok(())
    }
    /// The query stops.
    fn stop(&mut self) {}
    /// How much this source knows of but has not delivered yet, once a batch ends at `end`
    /// (the file source: files listed but not read), for progress, metrics and progress
    /// bars; `None` (the default) when the source cannot tell.
    fn backlog(&self, _end: Option<&Offset>) -> Option<Backlog> {
        None
    }
    /// Continuous mode: this source as partitions, each read by one long-running task
    /// ([`continuous::PartitionReader`]), from `start` (the partitions' positions after the
    /// last committed epoch; `None` on a first run). `Ok(None)` (the default): the source
    /// cannot run continuously, and a continuous query on it fails to start saying so.
    fn continuous_readers(
        &mut self,
        _start: Option<&[serde_json::Value]>,
    ) -> Result<Option<Vec<Box<dyn continuous::PartitionReader>>>> {
        Ok(None)
    }
}

/// What a source has delivered and what it knows of ([`SourceImpl::backlog`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Backlog {
    /// Units delivered up to the batch's end.
    pub done: u64,
    /// Units known to exist (delivered or not).
    pub total: u64,
    /// What a unit is (`files`, `offsets`).
    pub unit: &'static str,
}

impl Backlog {
    /// Units not delivered yet.
    pub fn outstanding(&self) -> u64 {
        self.total.saturating_sub(self.done)
    }
}

/// A source of rows of type `T`, handed to a query builder (`.events(Source::memory(&s))`).
pub struct Source<T> {
    pub(crate) inner: Box<dyn SourceImpl>,
    _t: PhantomData<fn() -> T>,
}

impl<T> fmt::Debug for Source<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Source({})", self.inner.description())
    }
}

impl<T: Record> Source<T> {
    /// Wraps any [`SourceImpl`] (for custom sources).
    pub fn from_impl(inner: Box<dyn SourceImpl>) -> Self {
        Source { inner, _t: PhantomData }
    }

    /// Rows pushed by the program itself (tests, demos): see [`MemoryStream`].
    pub fn memory(stream: &MemoryStream<T>) -> Self {
        Self::from_impl(Box::new(stream.source()))
    }

    /// Text lines from a TCP server, as Spark's socket source: the query connects to
    /// `host:port` and every line becomes a row with column `value: String`, or, after
    /// `.json()` / `.csv()`, a row of the record decoded from the line (see
    /// [`socket::SocketSourceBuilder`]). For tests and demos only: lines are not replayable
    /// after a failure.
    pub fn socket(host: &str, port: u16) -> socket::SocketSourceBuilder<T> {
        socket::SocketSourceBuilder::new(host, port, SocketOptions::default())
    }

    /// [`Source::socket`] with other limits and handling of too-long or non-UTF-8 lines (see
    /// [`SocketOptions`]; to read its counters, build a [`socket::SocketSource`] and use
    /// [`Source::from_impl`]).
    pub fn socket_with(host: &str, port: u16, options: SocketOptions) -> socket::SocketSourceBuilder<T> {
        socket::SocketSourceBuilder::new(host, port, options)
    }

    /// `rows_per_second` rows per second with columns `timestamp: Timestamp` and `value: i64`,
    /// as Spark's rate source.
    pub fn rate(rows_per_second: u64) -> Self {
        Self::from_impl(Box::new(rate::RateSource::new(rows_per_second)))
    }

    /// Files in a directory: see [`FileSource`] for formats and options.
    pub fn file(dir: impl Into<std::path::PathBuf>) -> FileSourceBuilder<T> {
        FileSourceBuilder { opts: file::FileOptions::new(dir.into(), T::schema()), _t: PhantomData }
    }

    /// Records of Kafka topics (Spark's Kafka source), from the brokers at `bootstrap_servers`
    /// (`host:port,host:port`): see [`kafka`] for the options and the rows. Needs the `kafka`
    /// feature.
    #[cfg(feature = "kafka")]
    pub fn kafka(bootstrap_servers: &str) -> kafka::KafkaSourceBuilder<T> {
        kafka::KafkaSourceBuilder::new(bootstrap_servers)
    }

    /// The description of the underlying source.
    pub fn description(&self) -> String {
        self.inner.description()
    }

    pub(crate) fn into_impl(self) -> Box<dyn SourceImpl> {
        self.inner
    }
}

/// Options of a file source: pick the format (`.json()`, the default, `.csv()`, `.text()` or
/// `.parquet()`) and options, then hand it to a query builder (`.into()`).
pub struct FileSourceBuilder<T> {
    opts: file::FileOptions,
    _t: PhantomData<fn() -> T>,
}

impl<T: Record> FileSourceBuilder<T> {
    /// JSON lines (one object per line). The default format.
    pub fn json(mut self) -> Self {
        self.opts.format = FileFormat::Json;
        self
    }
    /// Plain text, one row per line (Spark's `text` format): the record must have exactly one
    /// `String` field, which receives the line.
    pub fn text(mut self) -> Self {
        self.opts.format = FileFormat::Text;
        self
    }
    /// CSV with a header line (see [`FileSourceBuilder::header`]).
    pub fn csv(mut self) -> Self {
        self.opts.format = FileFormat::Csv;
        self
    }
    /// Parquet files (Spark's `spark.readStream.schema(s).parquet(dir)`): columns are matched to
    /// the record's fields by name, a column missing from a file reads as nulls if its field is
    /// nullable, and timestamps of any unit and time zone become the record's microseconds.
    /// The parse mode and the corrupt-record column are JSON/CSV options: see
    /// [`FileFormat::Parquet`].
    pub fn parquet(mut self) -> Self {
        self.opts.format = FileFormat::Parquet;
        self
    }
    /// Whether CSV files start with a header line (default true).
    pub fn header(mut self, header: bool) -> Self {
        self.opts.csv_header = header;
        self
    }
    /// CSV field delimiter (default `,`).
    pub fn delimiter(mut self, delimiter: u8) -> Self {
        self.opts.csv_delimiter = delimiter;
        self
    }
    /// At most this many new files per micro-batch (Spark's `maxFilesPerTrigger`; default
    /// [`file::DEFAULT_MAX_FILES_PER_TRIGGER`], `usize::MAX` for no limit). Trigger::once reads
    /// everything in one batch regardless.
    pub fn max_files_per_trigger(mut self, n: usize) -> Self {
        self.opts.max_files_per_trigger = Some(n.max(1));
        self
    }
    /// At most about this many bytes of new files per micro-batch (Delta Lake's
    /// `maxBytesPerTrigger`; default [`file::DEFAULT_MAX_BYTES_PER_TRIGGER`], `u64::MAX` for no
    /// limit). Soft: a batch takes at least one file, however large.
    pub fn max_bytes_per_trigger(mut self, bytes: u64) -> Self {
        self.opts.max_bytes_per_trigger = Some(bytes.max(1));
        self
    }
    /// What to do with malformed lines (Spark's `mode`; default PERMISSIVE). JSON and CSV only:
    /// text and Parquet files have no malformed lines, and ignore it.
    pub fn mode(mut self, mode: ParseMode) -> Self {
        self.opts.mode = mode;
        self
    }
    /// Under PERMISSIVE, the column (a nullable string field of the record) that receives the
    /// raw text of a malformed line (Spark's `columnNameOfCorruptRecord`, default
    /// `_corrupt_record`). JSON and CSV only: with Parquet, reading fails with [`Error::Plan`].
    ///
    /// [`Error::Plan`]: crate::Error::Plan
    pub fn corrupt_record_column(mut self, name: &str) -> Self {
        self.opts.corrupt_record_column = Some(name.to_string());
        self
    }
    /// Whether JSON keys and Parquet column names must match the record's field names exactly.
    /// Default false: matched ignoring case, as Spark's `spark.sql.caseSensitive=false`; two
    /// keys or columns that both match one field, or two fields that differ only in case, are
    /// then an error (a malformed line, for JSON keys) that says so.
    pub fn case_sensitive(mut self, case_sensitive: bool) -> Self {
        self.opts.case_sensitive = case_sensitive;
        self
    }
    /// Only files whose name ends with this suffix (e.g. `.json`); default: every file not
    /// starting with `.` or `_`.
    pub fn suffix(mut self, suffix: &str) -> Self {
        self.opts.suffix = Some(suffix.to_string());
        self
    }
}

impl<T: Record> From<FileSourceBuilder<T>> for Source<T> {
    fn from(b: FileSourceBuilder<T>) -> Self {
        Source::from_impl(Box::new(FileSource::new(b.opts)))
    }
}
