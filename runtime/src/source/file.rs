//! The file source: new files in a directory, read as JSON lines, CSV, text or Parquet with a
//! given schema (after Spark's `FileStreamSource`).
//!
//! Every [`SourceImpl::latest_offset`] lists the directory; files not seen before are appended,
//! in order of (modification time, name), to an in-memory log of files. An offset is
//! `{"logOffset": n}`: the first `n` files of that log, so the batch `(start, end]` reads
//! `log[start..end]`. A file is never taken twice, and the log is kept so a batch can be read
//! again. Files must appear atomically (written elsewhere, then renamed into the directory), as
//! in Spark.
//!
//! The log lives in memory only: the trait gives a source no checkpoint storage of its own. A
//! fresh source asked for a range beyond its log (after a restart) rebuilds the log from a
//! listing sorted by (modification time, name), which gives the same files as long as files
//! were not removed from the directory and did not arrive with a modification time older than
//! files already read.
//!
//! ## Column projection
//!
//! After [`SourceImpl::project`] the source decodes only the columns the query reads, as
//! Spark's pruned file scans do: JSON is decoded with a schema of those fields only (other keys
//! are skipped without being converted, so a bad value in an unread field no longer makes a
//! line malformed; a line that is not a JSON object still is), CSV parses only those columns
//! (a line must still have the right number of fields), Parquet reads only those column chunks,
//! and text has nothing to prune. The batches still hold every configured column: the unread
//! ones are all null, and their fields are marked nullable in the batches' schema.
//!
//! ## Continuous mode
//!
//! Under `Trigger::continuous` one task reads the directory, taking each new file as it appears
//! (see `file/continuous.rs`): the same log, offsets and per-epoch log entries as micro-batches.
//!
//! ## JSON fast path
//!
//! JSON lines are first tried with a fast path (`file/json_fast.rs`): flat objects whose decoded fields are
//! integers, floats, booleans, plain strings, RFC 3339 timestamps or dates are scanned once,
//! only the decoded values converted. Anything it is not sure of (escapes in a decoded string,
//! numbers or timestamps in other spellings, values of another type, duplicate keys, malformed
//! lines) makes it give up on the run of lines, which arrow-json then decodes as before: results
//! and malformed-line handling are the same either way.

use std::collections::HashSet;
use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use arrow_array::cast::AsArray;
use arrow_array::timezone::Tz;
use arrow_array::types::{
    ArrowTimestampType, TimestampMicrosecondType, TimestampMillisecondType, TimestampNanosecondType,
    TimestampSecondType,
};
use arrow_array::{make_array, new_null_array, Array, ArrayRef, RecordBatch, RecordBatchOptions, StringArray};
use arrow_schema::{ArrowError, DataType, FieldRef, Schema, SchemaRef, TimeUnit};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ProjectionMask;

use super::{Offset, ReadLimit, SourceImpl};
use crate::error::{Error, Result};
use json_case::KeyCase;
use json_fast::FastPlan;

mod continuous;
#[cfg(any(test, feature = "fuzzing"))]
pub mod fuzz;
mod json_case;
mod json_fast;

/// Rows per decoded Arrow batch. arrow-rs readers default to 1024; 8192 is DataFusion's default
/// `batch_size`, large enough to amortize per-batch work and small enough to stay in cache.
const DECODE_BATCH_ROWS: usize = 8192;

/// File-name endings of files still being written: HDFS's `._COPYING_` (ignored by Spark too),
/// the common `.tmp`, and editors' backup `~`.
const TEMP_SUFFIXES: &[&str] = &["._COPYING_", ".tmp", "~"];

/// Files per batch unless [`FileOptions::max_files_per_trigger`] says otherwise: Delta Lake's
/// default `maxFilesPerTrigger` (Spark's file source has none, and a large backlog then goes
/// into one batch, all of it in memory at once).
pub const DEFAULT_MAX_FILES_PER_TRIGGER: usize = 1000;

/// Bytes of files per batch unless [`FileOptions::max_bytes_per_trigger`] says otherwise
/// (a soft limit, see there). 1 GiB: a batch of JSON decodes to about as many bytes of Arrow
/// arrays, which a streaming job's worker holds comfortably, and large enough that the
/// per-batch costs (offset and commit entries, a state version) stay small beside the reading.
pub const DEFAULT_MAX_BYTES_PER_TRIGGER: u64 = 1 << 30;

/// A reading thread keeps its file buffer up to this size between files.
const KEPT_READ_BUFFER_BYTES: usize = 256 << 20;

/// A kept buffer is shrunk to the last file's size when it is more than twice that and more
/// than this (1 MiB: the reuse saves page faults on large files; small ones cost little).
const SHRINK_READ_BUFFER_ABOVE: usize = 1 << 20;

/// What a reading thread keeps of its buffer after reading a file of `used` bytes into it:
/// nothing above [`KEPT_READ_BUFFER_BYTES`], and at most about twice the last file's size
/// otherwise, so the memory kept follows the files being read, not the largest one seen.
fn settle_read_buffer(mut buf: Vec<u8>, used: usize) -> Option<Vec<u8>> {
    if buf.capacity() > KEPT_READ_BUFFER_BYTES {
        return None;
    }
    if buf.capacity() > SHRINK_READ_BUFFER_ABOVE && buf.capacity() / 2 > used {
        buf.clear();
        buf.shrink_to(used);
    }
    Some(buf)
}

thread_local! {
    /// A reading thread's file buffer, kept between files: reading into fresh memory faults
    /// in and zeroes every page first, which cost a quarter of a JSON query's time.
    static READ_BUFFER: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Reads the whole file at `path` into `buf` (appended; `buf`'s spare room is not zeroed).
fn read_into(path: &Path, buf: &mut Vec<u8>) -> Result<()> {
    use std::io::Read;
    let context = || format!("reading {}", path.display());
    let mut file = fs::File::open(path).map_err(|e| Error::io(context(), e))?;
    if let Ok(meta) = file.metadata() {
        buf.reserve(meta.len() as usize);
    }
    file.read_to_end(buf).map_err(|e| Error::io(context(), e))?;
    Ok(())
}

/// How much of a malformed line an error message quotes.
const MAX_QUOTED_LINE_CHARS: usize = 200;

/// The corrupt-record column of JSON and CSV unless another is named (Spark's default
/// `columnNameOfCorruptRecord`).
pub const DEFAULT_CORRUPT_RECORD_COLUMN: &str = "_corrupt_record";

/// The format of the files of a [`FileSource`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum FileFormat {
    /// JSON lines: one JSON object per line; blank lines are skipped, keys not in the schema
    /// are ignored.
    #[default]
    Json,
    /// CSV, optionally with a header line (ignored: columns are matched by position).
    Csv,
    /// Plain text (Spark's `text` source): every line, blank ones included, is a row of one
    /// string column; the line terminator (`\n` or `\r\n`) is not part of it. Invalid UTF-8
    /// is replaced by U+FFFD. The record must have exactly one field, a string.
    Text,
    /// Parquet (Spark's `parquet` source with a given schema). Columns are matched to the
    /// schema's fields by name, ignoring case unless [`FileOptions::case_sensitive`] (two
    /// columns matching one field are an error); a file's other columns are ignored,
    /// and a field the file lacks reads as nulls if it is nullable (Spark's schema-on-read) and
    /// fails with [`Error::Plan`] if not. A file's column must have its field's logical type:
    /// a dictionary-encoded column reads as its values, large and view strings (binaries) as
    /// strings (binaries), as pyarrow, Polars and DataFusion write them; and timestamps of any unit and time zone become the field's type (the same instants, truncated
    /// to microseconds towards the past; a timestamp without a time zone, such as Spark's
    /// INT96, is taken as UTC). Another type, or nulls in a column read into a non-nullable
    /// field, fail with [`Error::Plan`] naming the file, the column and both types; a file
    /// that is not valid Parquet fails with [`Error::MalformedInput`]. Rows keep the file's
    /// order. [`ParseMode`] does not apply, and naming a corrupt-record column is an error:
    /// a field `_corrupt_record` is an ordinary column here.
    Parquet,
}

/// What a [`FileSource`] does with a malformed line (Spark's `mode` option). JSON and CSV only.
///
/// A line is malformed when it is not a JSON object (JSON), has the wrong number of fields
/// (CSV), or holds a value that cannot be converted to its field's type (including a missing
/// value for a non-nullable field). Under a projection ([`SourceImpl::project`]) only the read
/// fields' values count.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ParseMode {
    /// The line becomes a row whose fields are all null, except the corrupt-record column (if
    /// the schema has one, and it is read) which holds the line's text. Every other read field
    /// must then be nullable (`Option<_>`); otherwise reading fails with [`Error::Plan`].
    #[default]
    Permissive,
    /// The line is dropped.
    DropMalformed,
    /// Reading fails with [`Error::MalformedInput`] naming the file, the line and the reason.
    FailFast,
}

/// Options of a [`FileSource`]; see [`FileOptions::new`] for the defaults.
#[derive(Clone, Debug)]
pub struct FileOptions {
    /// The directory to watch (not recursive).
    pub dir: PathBuf,
    /// The schema of the rows, never inferred. May include the corrupt-record column.
    pub schema: SchemaRef,
    /// The files' format.
    pub format: FileFormat,
    /// Whether CSV files start with a header line.
    pub csv_header: bool,
    /// The CSV field delimiter.
    pub csv_delimiter: u8,
    /// At most this many new files per batch under [`ReadLimit::Default`] (`None`:
    /// [`DEFAULT_MAX_FILES_PER_TRIGGER`]).
    pub max_files_per_trigger: Option<usize>,
    /// At most about this many bytes of new files per batch under [`ReadLimit::Default`]
    /// (`None`: [`DEFAULT_MAX_BYTES_PER_TRIGGER`]). A soft limit, as Delta Lake's
    /// `maxBytesPerTrigger`: a batch takes files while their sizes fit, and always at least one
    /// file, however large. Together with the file limit it bounds what one batch holds in
    /// memory however large a backlog is waiting.
    pub max_bytes_per_trigger: Option<u64>,
    /// What to do with malformed lines.
    pub mode: ParseMode,
    /// The name of the column that receives a malformed line's text under
    /// [`ParseMode::Permissive`], if the schema has a nullable string field of that name.
    /// `None`: [`DEFAULT_CORRUPT_RECORD_COLUMN`] for JSON, CSV and text, none for Parquet (for
    /// which naming one is an error).
    pub corrupt_record_column: Option<String>,
    /// Only files whose name ends with this suffix.
    pub suffix: Option<String>,
    /// Whether JSON keys and Parquet column names must match the schema's field names exactly
    /// (`true`), or ignoring case (`false`, the default, as Spark's
    /// `spark.sql.caseSensitive=false`). CSV (by position) and text have no names to match.
    pub case_sensitive: bool,
}

impl FileOptions {
    /// Options for JSON files in `dir` with rows of `schema`: CSV header on, delimiter `,`, the
    /// default per-trigger limits, [`ParseMode::Permissive`], the default corrupt-record column, no
    /// suffix filter, names matched ignoring case.
    pub fn new(dir: PathBuf, schema: SchemaRef) -> Self {
        FileOptions {
            dir,
            schema,
            format: FileFormat::Json,
            csv_header: true,
            csv_delimiter: b',',
            max_files_per_trigger: None,
            max_bytes_per_trigger: None,
            mode: ParseMode::Permissive,
            corrupt_record_column: None,
            suffix: None,
            case_sensitive: false,
        }
    }
}

/// How the configured schema maps onto the data in the files, and which of it is decoded.
#[derive(Debug)]
struct Layout {
    /// The schema of the batches handed out: the configured one (fields that are not read
    /// and have no zero value, see [`unread_column`], made nullable).
    output_schema: SchemaRef,
    /// Per field of the configured schema: whether it is decoded from the files (never the
    /// corrupt-record column, which is not in them).
    read: Vec<bool>,
    /// The decoded fields as configured, in schema order: the columns of a decoded batch.
    read_schema: SchemaRef,
    /// What the JSON, CSV and text decoders are given: the decoded fields (CSV: every data
    /// field, as CSV columns are by position, and `csv_projection` picks the decoded ones),
    /// with UTC time zones spelled `+00:00`, because arrow-rs (without its `chrono-tz` feature)
    /// parses only offsets as time zones. Timestamps are UTC microseconds either way, so
    /// decoded columns are relabelled, not converted.
    decode_schema: SchemaRef,
    /// CSV under a projection: the positions, among the data fields, of the decoded ones.
    csv_projection: Option<Vec<usize>>,
    /// Where the corrupt-record column sits in the configured schema, if it has one.
    corrupt_idx: Option<usize>,
    /// Whether the corrupt-record column is read: only then is a malformed line's text kept.
    corrupt_read: bool,
    /// JSON whose decoded fields all have types the fast path builds: its plan (see
    /// [`json_fast`]), tried before arrow-json on every run of lines.
    json_fast: Option<FastPlan>,
    /// JSON with names matched ignoring case: the decoded fields by lowercase name, for
    /// respelling the keys of lines that arrow-json decodes (see `json_case.rs`).
    json_keys: Option<KeyCase>,
}

impl Layout {
    /// Checks the options (whatever the projection) and lays out reading the fields at
    /// `projection` (ascending indices into the configured schema; `None`: every field).
    fn new(opts: &FileOptions, projection: Option<&[usize]>) -> Result<Layout, String> {
        let schema = &opts.schema;
        let corrupt_name = match (opts.format, &opts.corrupt_record_column) {
            (FileFormat::Parquet, Some(name)) => {
                return Err(format!(
                    "the corrupt-record column (`{name}`) is a JSON/CSV option: Parquet files have no malformed \
                     lines to keep; remove `.corrupt_record_column(..)`"
                ))
            }
            (FileFormat::Parquet, None) => None,
            (_, name) => Some(name.as_deref().unwrap_or(DEFAULT_CORRUPT_RECORD_COLUMN)),
        };
        let corrupt_idx = corrupt_name.and_then(|name| schema.index_of(name).ok());
        if let Some(idx) = corrupt_idx {
            let field = schema.field(idx);
            if field.data_type() != &DataType::Utf8 || !field.is_nullable() {
                return Err(format!(
                    "the corrupt-record column `{}` must be a nullable string (Option<String>), but it is {}{}",
                    field.name(),
                    field.data_type(),
                    if field.is_nullable() { "" } else { " NOT NULL" }
                ));
            }
        }
        let is_data = |i: usize| Some(i) != corrupt_idx;
        if !opts.case_sensitive && matches!(opts.format, FileFormat::Json | FileFormat::Parquet) {
            let mut by_lower = std::collections::HashMap::new();
            for field in schema.fields() {
                if let Some(other) = by_lower.insert(field.name().to_lowercase(), field.name()) {
                    return Err(format!(
                        "fields `{other}` and `{}` differ only in case, but names are matched ignoring case \
                         (Spark's spark.sql.caseSensitive=false): rename one, or match names exactly with \
                         `.case_sensitive(true)`",
                        field.name()
                    ));
                }
            }
        }
        let data_fields: Vec<_> =
            schema.fields().iter().enumerate().filter(|(i, _)| is_data(*i)).map(|(_, f)| f.clone()).collect();
        if opts.format == FileFormat::Text && (data_fields.len() != 1 || data_fields[0].data_type() != &DataType::Utf8)
        {
            return Err(format!(
                "text files are read as one string column per line, but the record has {} field(s) ({}): \
                 use a record with exactly one String field (Spark's `value`)",
                data_fields.len(),
                data_fields.iter().map(|f| format!("{}: {}", f.name(), f.data_type())).collect::<Vec<_>>().join(", ")
            ));
        }
        let mut decode_fields = Vec::with_capacity(data_fields.len());
        for field in &data_fields {
            let data_type = match field.data_type() {
                DataType::Timestamp(unit, Some(tz)) => {
                    let tz = if is_utc(tz) { "+00:00" } else { tz.as_ref() };
                    tz.parse::<Tz>().map_err(|_| {
                        format!(
                            "field `{}` has time zone {tz:?}; only UTC and fixed offsets are supported",
                            field.name()
                        )
                    })?;
                    DataType::Timestamp(*unit, Some(tz.into()))
                }
                other => other.clone(),
            };
            decode_fields.push(Arc::new(field.as_ref().clone().with_data_type(data_type)));
        }
        let metadata = schema.metadata().clone();
        if opts.format == FileFormat::Json {
            // Building a decoder checks every type is supported, once, instead of every line
            // failing later. The whole schema, so that a projection does not hide a bad type.
            arrow_json::ReaderBuilder::new(Arc::new(Schema::new_with_metadata(
                decode_fields.clone(),
                metadata.clone(),
            )))
            .build_decoder()
            .map_err(|e| format!("the schema cannot be read from JSON: {e}"))?;
        }

        // What is decoded. Text has nothing to prune: its one column is the line.
        let wanted = |i: usize| opts.format == FileFormat::Text || projection.is_none_or(|p| p.contains(&i));
        let read: Vec<bool> = (0..schema.fields().len()).map(|i| is_data(i) && wanted(i)).collect();
        let corrupt_read = corrupt_idx.is_some_and(wanted);
        // Per data field, in order: whether it is read.
        let data_read = (0..schema.fields().len()).filter(|i| is_data(*i)).map(|i| read[i]);
        let (mut read_fields, mut read_decode_fields, mut read_positions) = (Vec::new(), Vec::new(), Vec::new());
        for pos in data_read.enumerate().filter(|(_, read)| *read).map(|(pos, _)| pos) {
            read_fields.push(data_fields[pos].clone());
            read_decode_fields.push(decode_fields[pos].clone());
            read_positions.push(pos);
        }
        let (decode_fields, csv_projection) = match opts.format {
            // CSV columns are by position: the decoder needs every field, and is told which to parse.
            FileFormat::Csv => {
                let all_read = read_positions.len() == data_fields.len();
                (decode_fields, (!all_read).then_some(read_positions))
            }
            _ => (read_decode_fields, None),
        };
        // Unread fields keep their nullability where a null-free placeholder exists for
        // their type (see `unread_column`), and are made nullable (all null) where not.
        // They are also marked ([`crate::source::UNREAD_COLUMN`]) so that a plan reading one
        // fails loudly instead of computing on placeholders.
        let unread_nullable = |(i, f): (usize, &FieldRef)| {
            if read[i] || !is_data(i) {
                return f.clone();
            }
            let mut meta = f.metadata().clone();
            meta.insert(crate::source::UNREAD_COLUMN.to_string(), "true".to_string());
            let marked = f.as_ref().clone().with_metadata(meta);
            if has_zero_value(f.data_type()) {
                Arc::new(marked)
            } else {
                Arc::new(marked.with_nullable(true))
            }
        };
        let output_fields: Vec<_> = schema.fields().iter().enumerate().map(unread_nullable).collect();
        let decode_schema = Arc::new(Schema::new_with_metadata(decode_fields, metadata.clone()));
        let is_json = opts.format == FileFormat::Json;
        let json_fast = is_json.then(|| FastPlan::new(&decode_schema, !opts.case_sensitive)).flatten();
        let json_keys = (is_json && !opts.case_sensitive).then(|| KeyCase::new(&decode_schema));
        Ok(Layout {
            output_schema: Arc::new(Schema::new_with_metadata(output_fields, metadata.clone())),
            read,
            read_schema: Arc::new(Schema::new_with_metadata(read_fields, metadata.clone())),
            decode_schema,
            csv_projection,
            corrupt_idx,
            corrupt_read,
            json_fast,
            json_keys,
        })
    }
}

/// Whether a time-zone name means UTC.
fn is_utc(tz: &str) -> bool {
    ["UTC", "Etc/UTC", "Z", "GMT"].iter().any(|u| tz.eq_ignore_ascii_case(u))
}

/// One non-blank line of a file.
#[derive(Clone, Copy, Debug)]
struct Line {
    /// 1-based line number in the file.
    number: usize,
    /// Byte range in the file's data, without the line terminator.
    start: usize,
    end: usize,
}

/// Files appearing in a directory, as JSON lines, CSV, text or Parquet (Spark's file stream
/// source).
///
/// See the [module documentation](self) for how files are picked up, what an offset is and how
/// a projection prunes columns, [`FileFormat`] for the formats and [`ParseMode`] for malformed
/// lines. Files of a batch are decoded in parallel; rows come in log order, then file order. Names starting with `.` or `_` and temporary files
/// (`._COPYING_`, `.tmp`, `~`) are ignored. Timestamps are read from strings such as
/// `2024-01-01T12:00:00Z` or `2024-01-01 12:00:00` (UTC when no offset is given).
pub struct FileSource {
    opts: FileOptions,
    /// The schema check, done once in [`FileSource::new`] and reported on first use; redone
    /// (with the same outcome) by [`SourceImpl::project`].
    layout: Result<Layout, String>,
    /// Every file ever taken, in the order taken: offset `n` is `log[..n]`.
    log: Vec<PathBuf>,
    /// The size of each file of `log` when listed (`None` for files restored from a
    /// checkpoint: read from the file system when needed).
    sizes: Vec<Option<u64>>,
    /// The files in `log`.
    seen: HashSet<PathBuf>,
    /// Under available-now: the new files that existed when the run was prepared.
    snapshot: Option<HashSet<PathBuf>>,
    /// Malformed lines met so far (whatever the parse mode did with them), shared with the
    /// continuous reader's decoder.
    malformed_rows: Arc<std::sync::atomic::AtomicU64>,
    /// The columns decoded ([`SourceImpl::project`]; `None`: every one), for the continuous
    /// reader's decoder.
    projection: Option<Vec<usize>>,
    /// In continuous mode: the files the reader took, in order (the log it extends), for
    /// [`SourceImpl::batch_log`] on the query thread.
    continuous_log: Option<Arc<std::sync::Mutex<Vec<PathBuf>>>>,
}

impl FileSource {
    /// A source reading the files of `opts.dir` as described by `opts`.
    pub fn new(opts: FileOptions) -> Self {
        let layout = Layout::new(&opts, None);
        FileSource {
            opts,
            layout,
            log: Vec::new(),
            sizes: Vec::new(),
            seen: HashSet::new(),
            snapshot: None,
            malformed_rows: Default::default(),
            projection: None,
            continuous_log: None,
        }
    }

    /// The files of the batch `(start, end]`, as far as this source has taken them so far.
    pub fn files_in_batch(&self, start: Option<&Offset>, end: &Offset) -> Result<Vec<PathBuf>> {
        let (start, end) = (parse_offset(start)?, parse_offset(Some(end))?);
        let end = end.min(self.log.len());
        Ok(self.log.get(start..end).map(<[PathBuf]>::to_vec).unwrap_or_default())
    }

    fn layout(&self) -> Result<&Layout> {
        self.layout.as_ref().map_err(|e| Error::Plan(format!("file source on {}: {e}", self.opts.dir.display())))
    }

    /// Whether a file of this name is one the source reads.
    fn accepts(&self, name: &str) -> bool {
        !name.starts_with('.')
            && !name.starts_with('_')
            && !TEMP_SUFFIXES.iter().any(|s| name.ends_with(s))
            && match &self.opts.suffix {
                Some(suffix) => name.ends_with(suffix.as_str()),
                None => true,
            }
    }

    /// The readable files of the directory not in the log yet, by (modification time, name),
    /// with their sizes.
    fn list_new_files(&self) -> Result<Vec<(PathBuf, u64)>> {
        let dir = &self.opts.dir;
        let io_err = |e| Error::io(format!("listing the file source directory {}", dir.display()), e);
        let mut found = Vec::new();
        for entry in fs::read_dir(dir).map_err(io_err)? {
            let entry = entry.map_err(io_err)?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            let path = entry.path();
            if !self.accepts(&name) || self.seen.contains(&path) {
                continue;
            }
            // `fs::metadata` follows symbolic links; a file removed since the listing is skipped.
            let meta = match fs::metadata(&path) {
                Ok(meta) => meta,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(Error::io(format!("reading the metadata of {}", path.display()), e)),
            };
            if meta.is_file() {
                let mtime = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
                found.push((mtime, name.into_owned(), path, meta.len()));
            }
        }
        found.sort();
        Ok(found.into_iter().map(|(_, _, path, size)| (path, size)).collect())
    }

    fn push(&mut self, path: PathBuf, size: Option<u64>) {
        self.seen.insert(path.clone());
        self.log.push(path);
        self.sizes.push(size);
    }

    /// The size of the file at `log[i]` (0 if it cannot be read now: reading it will say why).
    fn size_of(&self, i: usize) -> u64 {
        self.sizes[i].unwrap_or_else(|| fs::metadata(&self.log[i]).map_or(0, |m| m.len()))
    }

    /// The end of the next batch from `start` within the per-trigger limits: files while
    /// their sizes fit in the byte limit (at least one) and the file limit.
    fn limited_end(&self, start: usize) -> usize {
        let max_files = self.opts.max_files_per_trigger.unwrap_or(DEFAULT_MAX_FILES_PER_TRIGGER).max(1);
        let max_bytes = self.opts.max_bytes_per_trigger.unwrap_or(DEFAULT_MAX_BYTES_PER_TRIGGER);
        let (mut end, mut bytes) = (start, 0u64);
        while end < self.log.len() && end - start < max_files {
            bytes = bytes.saturating_add(self.size_of(end));
            if end > start && bytes > max_bytes {
                break;
            }
            end += 1;
        }
        end
    }

    /// Makes the log at least `n` files long, from the directory (after a restart).
    fn ensure_log_len(&mut self, n: usize) -> Result<()> {
        if self.log.len() >= n {
            return Ok(());
        }
        let missing = n - self.log.len();
        let found = self.list_new_files()?;
        if found.len() < missing {
            return Err(Error::Execution(format!(
                "file source on {}: offset {n} names {n} files but the directory has only {} readable files \
                 (were files removed from it?)",
                self.opts.dir.display(),
                self.log.len() + found.len()
            )));
        }
        found.into_iter().take(missing).for_each(|(path, size)| self.push(path, Some(size)));
        Ok(())
    }

    /// The rows of one file, with the output schema.
    fn read_file(&self, path: &Path) -> Result<Vec<RecordBatch>> {
        let layout = self.layout()?;
        if self.opts.format == FileFormat::Parquet {
            return self.read_parquet(layout, path);
        }
        READ_BUFFER.with(|cell| {
            let mut buf = cell.take();
            buf.clear();
            let rows = read_into(path, &mut buf).and_then(|()| self.decode_file(layout, path, &buf));
            let used = buf.len();
            if let Some(buf) = settle_read_buffer(buf, used) {
                cell.replace(buf);
            }
            rows
        })
    }

    /// How many malformed lines (or values) this source met so far, whatever its parse mode
    /// did with them (a PERMISSIVE row, a dropped line, the FAILFAST error).
    pub fn malformed_count(&self) -> u64 {
        self.malformed_rows.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Decodes byte strings that are each one JSON object or one CSV line (message values of
    /// the Kafka source) as rows of this source's schema and projection, with its format and
    /// parse mode: `data` holds them at `ranges` (no line breaks inside a CSV value), and
    /// `place(i)` names value `i` in error messages.
    #[cfg_attr(not(feature = "kafka"), allow(dead_code))]
    pub(crate) fn decode_values(
        &self,
        data: &[u8],
        ranges: &[(usize, usize)],
        place: &dyn Fn(usize) -> String,
    ) -> Result<Vec<RecordBatch>> {
        let layout = self.layout()?;
        let lines: Vec<Line> =
            ranges.iter().enumerate().map(|(i, &(start, end))| Line { number: i, start, end }).collect();
        if lines.is_empty() {
            return Ok(Vec::new());
        }
        let place = |line: &Line| place(line.number);
        let mut pieces = Vec::new();
        self.decode_lines(layout, &place, data, &lines, &mut pieces)?;
        if pieces.len() <= 1 {
            return Ok(pieces);
        }
        Ok(vec![arrow_select::concat::concat_batches(&layout.output_schema, &pieces)?])
    }

    /// The rows of one JSON, CSV or text file whose bytes are `bytes`.
    fn decode_file(&self, layout: &Layout, path: &Path, bytes: &[u8]) -> Result<Vec<RecordBatch>> {
        // A UTF-8 byte order mark is not data.
        let data = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
        let mut lines = lines(data, self.opts.format);
        if self.opts.format == FileFormat::Csv && self.opts.csv_header && !lines.is_empty() {
            lines.remove(0);
        }
        if lines.is_empty() {
            return Ok(Vec::new());
        }
        // Fast path: the whole file at once.
        let reason = match self.decode(layout, data, &lines) {
            Ok(batches) => {
                return batches.iter().map(|b| self.to_output(layout, b.columns(), b.num_rows(), None)).collect()
            }
            Err(reason) => reason,
        };
        // Slow path: find the malformed lines by halving the runs of lines that fail.
        let mut pieces = Vec::new();
        let place = |line: &Line| format!("line {} of {}", line.number, path.display());
        self.split(layout, &place, data, &lines, &reason, &mut pieces)?;
        if pieces.is_empty() {
            return Ok(Vec::new());
        }
        Ok(vec![arrow_select::concat::concat_batches(&layout.output_schema, &pieces)?])
    }

    /// Decodes `lines` (a run of lines of `data`) into `out`, handling malformed lines as the
    /// parse mode says.
    fn decode_lines(
        &self,
        layout: &Layout,
        place: &dyn Fn(&Line) -> String,
        data: &[u8],
        lines: &[Line],
        out: &mut Vec<RecordBatch>,
    ) -> Result<()> {
        match self.decode(layout, data, lines) {
            Ok(batches) => {
                for batch in batches {
                    out.push(self.to_output(layout, batch.columns(), batch.num_rows(), None)?);
                }
                Ok(())
            }
            Err(reason) => self.split(layout, place, data, lines, &reason, out),
        }
    }

    /// Handles `lines`, which failed to decode for `reason`: one line is malformed; more are
    /// decoded again in two halves.
    fn split(
        &self,
        layout: &Layout,
        place: &dyn Fn(&Line) -> String,
        data: &[u8],
        lines: &[Line],
        reason: &str,
        out: &mut Vec<RecordBatch>,
    ) -> Result<()> {
        if let [line] = lines {
            return self.malformed(layout, place, data, *line, reason, out);
        }
        let (left, right) = lines.split_at(lines.len() / 2);
        self.decode_lines(layout, place, data, left, out)?;
        self.decode_lines(layout, place, data, right, out)
    }

    /// Handles one malformed line as the parse mode says.
    fn malformed(
        &self,
        layout: &Layout,
        place: &dyn Fn(&Line) -> String,
        data: &[u8],
        line: Line,
        reason: &str,
        out: &mut Vec<RecordBatch>,
    ) -> Result<()> {
        let text = String::from_utf8_lossy(&data[line.start..line.end]);
        self.malformed_rows.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let place = place(&line);
        match self.opts.mode {
            ParseMode::DropMalformed => {
                tracing::debug!("file source: dropping malformed {place}: {reason}");
                Ok(())
            }
            ParseMode::FailFast => Err(Error::MalformedInput(format!(
                "{place}: {reason}; the line is: {} (mode FAILFAST: use PERMISSIVE or DROPMALFORMED to keep going)",
                quote(&text)
            ))),
            ParseMode::Permissive => {
                if let Some(field) = layout.read_schema.fields().iter().find(|f| !f.is_nullable()) {
                    return Err(Error::Plan(format!(
                        "{place} is malformed ({reason}). Under mode PERMISSIVE a malformed line becomes a row of \
                         nulls, but field `{}` is not nullable: make it Option<_> in the record, or use mode \
                         DROPMALFORMED or FAILFAST",
                        field.name()
                    )));
                }
                let nulls =
                    layout.read_schema.fields().iter().map(|f| new_null_array(f.data_type(), 1)).collect::<Vec<_>>();
                let corrupt =
                    layout.corrupt_read.then(|| Arc::new(StringArray::from(vec![text.into_owned()])) as ArrayRef);
                out.push(self.to_output(layout, &nulls, 1, corrupt)?);
                Ok(())
            }
        }
    }

    /// Decodes `lines`, a run of lines of `data`, with the decode schema. Fails with the
    /// reason if any line is malformed.
    fn decode(&self, layout: &Layout, data: &[u8], lines: &[Line]) -> Result<Vec<RecordBatch>, String> {
        let (Some(first), Some(last)) = (lines.first(), lines.last()) else {
            return Ok(Vec::new());
        };
        let schema = layout.decode_schema.clone();
        let mut batches = Vec::new();
        match self.opts.format {
            FileFormat::Json => {
                // Batch by batch, so a line the fast path gives up on sends only its own
                // batch's lines to arrow-json, not the whole file's.
                for chunk in lines.chunks(DECODE_BATCH_ROWS) {
                    match layout.json_fast.as_ref().and_then(|plan| plan.decode(data, chunk, DECODE_BATCH_ROWS)) {
                        Some(decoded) => batches.extend(decoded),
                        None => {
                            batches.extend(arrow_json_decode(schema.clone(), data, chunk, layout.json_keys.as_ref())?)
                        }
                    }
                }
            }
            FileFormat::Text => {
                for chunk in lines.chunks(DECODE_BATCH_ROWS) {
                    let bytes: usize = chunk.iter().map(|l| l.end - l.start).sum();
                    let mut values = arrow_array::builder::StringBuilder::with_capacity(chunk.len(), bytes);
                    for line in chunk {
                        values.append_value(String::from_utf8_lossy(&data[line.start..line.end]));
                    }
                    let column: ArrayRef = Arc::new(values.finish());
                    batches.push(RecordBatch::try_new(schema.clone(), vec![column]).map_err(|e| e.to_string())?);
                }
            }
            FileFormat::Parquet => {
                return Err("internal error: Parquet files are not read line by line".into());
            }
            FileFormat::Csv => {
                let mut builder = arrow_csv::ReaderBuilder::new(schema)
                    .with_header(false)
                    .with_delimiter(self.opts.csv_delimiter)
                    .with_batch_size(DECODE_BATCH_ROWS);
                if let Some(projection) = &layout.csv_projection {
                    // Only these columns are parsed; every line must still have all the fields.
                    builder = builder.with_projection(projection.clone());
                }
                let mut decoder = builder.build_decoder();
                // The decoder skips the blank lines in between. Decoding an empty slice tells
                // it the input has ended.
                let mut rest = &data[first.start..last.end];
                loop {
                    let n = decoder.decode(rest).map_err(|e| e.to_string())?;
                    rest = &rest[n..];
                    if n == 0 || decoder.capacity() == 0 {
                        match decoder.flush().map_err(|e| e.to_string())? {
                            Some(batch) => batches.push(batch),
                            None if n == 0 => break,
                            None => {}
                        }
                    }
                }
            }
        }
        Ok(batches)
    }

    /// The decoded columns (one per field of `layout.read_schema`, of its type or, for
    /// timestamps, another time-zone label) as a batch of the output schema: time zones
    /// relabelled, the corrupt-record column inserted if the schema has one (`corrupt`, or
    /// nulls), and the fields that are not read filled with nulls.
    fn to_output(
        &self,
        layout: &Layout,
        decoded: &[ArrayRef],
        rows: usize,
        corrupt: Option<ArrayRef>,
    ) -> Result<RecordBatch> {
        let mut decoded = decoded.iter();
        let mut corrupt = corrupt;
        let mut columns = Vec::with_capacity(layout.output_schema.fields().len());
        for (i, field) in layout.output_schema.fields().iter().enumerate() {
            let column = if layout.read[i] {
                let column = decoded.next().ok_or_else(|| {
                    Error::Internal(format!("file source: no decoded column for field `{}`", field.name()))
                })?;
                if column.data_type() == field.data_type() {
                    column.clone()
                } else {
                    // Same values, other time-zone label (see `Layout::decode_schema`).
                    make_array(column.to_data().into_builder().data_type(field.data_type().clone()).build()?)
                }
            } else if Some(i) == layout.corrupt_idx {
                corrupt.take().unwrap_or_else(|| new_null_array(&DataType::Utf8, rows))
            } else {
                unread_column(field.data_type(), rows)
            };
            columns.push(column);
        }
        // The row count is explicit: a schema may have no column left to carry it.
        let options = RecordBatchOptions::new().with_row_count(Some(rows));
        Ok(RecordBatch::try_new_with_options(layout.output_schema.clone(), columns, &options)?)
    }

    /// The index of the root column of `file_schema` (the file at `path`) that holds field
    /// `name`: the column of exactly that name when names are case-sensitive; otherwise the one
    /// column whose name equals it ignoring case, and an error naming them when several do
    /// (Spark's "Found duplicate field(s)" in case-insensitive mode).
    fn file_column(&self, file_schema: &Schema, name: &str, path: &Path) -> Result<Option<usize>> {
        let fields = file_schema.fields();
        if self.opts.case_sensitive {
            return Ok(fields.iter().position(|f| f.name() == name));
        }
        let lower = name.to_lowercase();
        let hits: Vec<usize> = (0..fields.len()).filter(|&i| fields[i].name().to_lowercase() == lower).collect();
        match hits[..] {
            [] => Ok(None),
            [i] => Ok(Some(i)),
            _ => Err(Error::Plan(format!(
                "{}: columns {} all match field `{name}` ignoring case (Spark's spark.sql.caseSensitive=false): \
                 match names exactly with `.case_sensitive(true)`",
                path.display(),
                hits.iter().map(|&i| format!("`{}`", fields[i].name())).collect::<Vec<_>>().join(", ")
            ))),
        }
    }

    /// The rows of a Parquet file, in the file's order: the read fields matched to the file's
    /// columns by name, only their column chunks decoded (see [`FileFormat::Parquet`]).
    fn read_parquet(&self, layout: &Layout, path: &Path) -> Result<Vec<RecordBatch>> {
        let file = fs::File::open(path).map_err(|e| Error::io(format!("opening {}", path.display()), e))?;
        let unreadable = |e: &dyn fmt::Display| {
            Error::MalformedInput(format!("{} is not a readable Parquet file: {e}", path.display()))
        };
        let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(|e| unreadable(&e))?;
        let file_schema = builder.schema().clone();
        // Per read field: the file's root column holding it, or none (nulls).
        let mut found = Vec::with_capacity(layout.read_schema.fields().len());
        for field in layout.read_schema.fields() {
            let idx = self.file_column(&file_schema, field.name(), path)?;
            match idx.map(|idx| file_schema.field(idx)) {
                Some(file_field) => {
                    let file_type = file_field.data_type();
                    if !readable_as(file_type, field.data_type()) {
                        return Err(Error::Plan(format!(
                            "{}: column `{}` is {file_type} in the file, but the record's field is {}: \
                             change the field's type to match the file",
                            path.display(),
                            file_field.name(),
                            field.data_type()
                        )));
                    }
                }
                None if field.is_nullable() => {}
                None => {
                    return Err(Error::Plan(format!(
                        "{}: the file has no column `{}`, and its field is not nullable: make it Option<_> to read \
                         a missing column as nulls",
                        path.display(),
                        field.name()
                    )))
                }
            }
            found.push(idx);
        }
        let mut roots: Vec<usize> = found.iter().flatten().copied().collect();
        roots.sort_unstable();
        roots.dedup();
        let mask = ProjectionMask::roots(builder.parquet_schema(), roots.iter().copied());
        let reader =
            builder.with_projection(mask).with_batch_size(DECODE_BATCH_ROWS).build().map_err(|e| unreadable(&e))?;
        let mut out = Vec::new();
        for batch in reader {
            let batch = batch.map_err(|e| unreadable(&e))?;
            let rows = batch.num_rows();
            let mut columns = Vec::with_capacity(found.len());
            for (field, idx) in layout.read_schema.fields().iter().zip(&found) {
                let Some(idx) = *idx else {
                    columns.push(new_null_array(field.data_type(), rows));
                    continue;
                };
                let name = file_schema.field(idx).name();
                let column = batch.column_by_name(name).ok_or_else(|| {
                    Error::Internal(format!("{}: column `{name}` missing from the decoded batch", path.display()))
                })?;
                let column = logical_column(column, field.data_type())
                    .map_err(|e| Error::MalformedInput(format!("{}: column `{name}`: {e}", path.display())))?;
                if !field.is_nullable() && column.null_count() > 0 {
                    return Err(Error::Plan(format!(
                        "{}: column `{}` holds nulls, but its field is not nullable: make it Option<_>",
                        path.display(),
                        field.name()
                    )));
                }
                columns.push(column);
            }
            out.push(self.to_output(layout, &columns, rows, None)?);
        }
        Ok(out)
    }
}

/// Whether a Parquet file's column of type `file` reads as a field of type `field`: the same
/// type, or the same logical type in another encoding that other writers choose (pyarrow,
/// Polars and DataFusion write dictionary-encoded, large and view strings): a dictionary reads
/// as its values, `LargeUtf8`/`Utf8View` as `Utf8` (and the like for binary), and timestamps
/// of any unit and time zone as microseconds.
fn readable_as(file: &DataType, field: &DataType) -> bool {
    use DataType::*;
    match (file, field) {
        (a, b) if a == b => true,
        (Dictionary(_, values), field) => readable_as(values, field),
        (Timestamp(..), Timestamp(TimeUnit::Microsecond, _)) => true,
        (Utf8 | LargeUtf8 | Utf8View, Utf8 | LargeUtf8 | Utf8View) => true,
        (Binary | LargeBinary | BinaryView, Binary | LargeBinary | BinaryView) => true,
        _ => false,
    }
}

/// A decoded Parquet column (of a type [`readable_as`] accepts for `field`) as `field`'s type:
/// dictionaries unpacked, strings and binaries re-encoded, timestamps converted.
fn logical_column(column: &ArrayRef, field: &DataType) -> Result<ArrayRef, ArrowError> {
    let column = match column.data_type() {
        DataType::Dictionary(_, values) => arrow_cast::cast(column, values)?,
        _ => column.clone(),
    };
    match (column.data_type(), field) {
        (a, b) if a == b => Ok(column),
        (DataType::Timestamp(unit, _), DataType::Timestamp(TimeUnit::Microsecond, tz)) => {
            timestamp_micros(&column, *unit, tz.clone())
        }
        _ => arrow_cast::cast(&column, field),
    }
}

/// A timestamp column of `unit` as microseconds labelled `tz`: the same instants (a column
/// without a time zone is taken as UTC), truncated towards the past.
fn timestamp_micros(column: &ArrayRef, unit: TimeUnit, tz: Option<Arc<str>>) -> Result<ArrayRef, ArrowError> {
    fn convert<T: ArrowTimestampType>(
        column: &ArrayRef,
        f: impl Fn(i64) -> Option<i64>,
    ) -> Result<ArrayRef, ArrowError> {
        let micros = column.as_primitive::<T>().try_unary::<_, TimestampMicrosecondType, _>(|v| {
            f(v).ok_or_else(|| ArrowError::ComputeError(format!("timestamp {v} {:?} is out of range", T::UNIT)))
        })?;
        Ok(Arc::new(micros))
    }
    let converted = match unit {
        TimeUnit::Second => convert::<TimestampSecondType>(column, |v| v.checked_mul(1_000_000))?,
        TimeUnit::Millisecond => convert::<TimestampMillisecondType>(column, |v| v.checked_mul(1_000))?,
        TimeUnit::Microsecond => Arc::clone(column),
        TimeUnit::Nanosecond => convert::<TimestampNanosecondType>(column, |v| Some(v.div_euclid(1_000)))?,
    };
    let data_type = DataType::Timestamp(TimeUnit::Microsecond, tz);
    Ok(make_array(converted.to_data().into_builder().data_type(data_type).build()?))
}

/// Decodes `lines` of `data`, JSON objects, with arrow-json and `schema` (the decode schema);
/// with `keys`, top-level keys match the fields ignoring case. Fails with the reason if any
/// line is malformed.
fn arrow_json_decode(
    schema: SchemaRef,
    data: &[u8],
    lines: &[Line],
    keys: Option<&KeyCase>,
) -> Result<Vec<RecordBatch>, String> {
    let mut batches = Vec::new();
    let mut decoder = arrow_json::ReaderBuilder::new(schema)
        .with_batch_size(DECODE_BATCH_ROWS)
        // A number or boolean for a string field is read as its text, as Spark does.
        .with_coerce_primitive(true)
        .build_decoder()
        .map_err(|e| e.to_string())?;
    // Line by line, so that a line holding anything but exactly one JSON value is
    // caught here (the decoder itself does not care about line breaks).
    for line in lines {
        if decoder.len() >= DECODE_BATCH_ROWS {
            batches.extend(decoder.flush().map_err(|e| e.to_string())?);
        }
        let text = &data[line.start..line.end];
        let respelled = match keys {
            Some(keys) => keys.rename(text)?,
            None => None,
        };
        let text = respelled.as_deref().unwrap_or(text);
        let before = decoder.len();
        let read = decoder.decode(text).map_err(|e| e.to_string())?;
        if decoder.has_partial_record() {
            return Err("the line ends inside a JSON value (one JSON object per line is expected)".into());
        }
        let values = decoder.len() - before;
        if values != 1 || read != text.len() {
            return Err(format!("expected one JSON object per line, found {values} or more values"));
        }
    }
    batches.extend(decoder.flush().map_err(|e| e.to_string())?);
    Ok(batches)
}

/// Whether [`unread_column`] gives `data_type` a placeholder without nulls.
fn has_zero_value(data_type: &DataType) -> bool {
    match data_type {
        DataType::Struct(fields) => fields.iter().all(|f| has_zero_value(f.data_type())),
        t => {
            t.is_primitive() || matches!(t, DataType::Boolean | DataType::Utf8 | DataType::LargeUtf8 | DataType::Binary)
        }
    }
}

/// The placeholder of a column the plan does not read: `rows` zero values (0, false, empty
/// strings, the epoch) without nulls, so that a typed view of a non-nullable field accepts
/// it, from one zeroed allocation and no decoding. Types without such a value (see
/// [`has_zero_value`]) get an all-null column; their field is made nullable.
fn unread_column(data_type: &DataType, rows: usize) -> ArrayRef {
    if let DataType::Struct(fields) = data_type {
        if has_zero_value(data_type) {
            let children = fields.iter().map(|f| unread_column(f.data_type(), rows)).collect();
            return Arc::new(arrow_array::StructArray::new(fields.clone(), children, None));
        }
    }
    let nulls = new_null_array(data_type, rows);
    if !has_zero_value(data_type) {
        return nulls;
    }
    // Zeroed values and offsets are valid values of these types once the validity is dropped.
    match nulls.to_data().into_builder().nulls(None).build() {
        Ok(data) => make_array(data),
        Err(_) => nulls,
    }
}

/// The non-blank lines of `data` (JSON: blank = only whitespace; CSV: empty; text: none), without their
/// `\n` or `\r\n`.
fn lines(data: &[u8], format: FileFormat) -> Vec<Line> {
    let mut out = Vec::new();
    let mut start = 0;
    // memchr finds the line breaks a vector at a time (a byte-at-a-time split costs as much
    // as decoding the JSON).
    let breaks = memchr::memchr_iter(b'\n', data).chain(std::iter::once(data.len()));
    for (i, brk) in breaks.enumerate() {
        let text = &data[start..brk];
        let end = start + text.strip_suffix(b"\r").unwrap_or(text).len();
        let blank = match format {
            FileFormat::Json => data[start..end].iter().all(u8::is_ascii_whitespace),
            FileFormat::Csv | FileFormat::Parquet => start == end,
            // Every line is a row, but the empty piece after a final line break is no line.
            FileFormat::Text => start == data.len(),
        };
        if !blank {
            out.push(Line { number: i + 1, start, end });
        }
        start = brk + 1;
    }
    out
}

/// `text`, shortened for an error message.
fn quote(text: &str) -> String {
    if text.chars().count() <= MAX_QUOTED_LINE_CHARS {
        format!("{text:?}")
    } else {
        let head: String = text.chars().take(MAX_QUOTED_LINE_CHARS).collect();
        format!("{head:?}…")
    }
}

/// The number of files of a `{"logOffset": n}` offset (0 for none).
fn parse_offset(offset: Option<&Offset>) -> Result<usize> {
    let Some(offset) = offset else { return Ok(0) };
    offset
        .0
        .get("logOffset")
        .and_then(serde_json::Value::as_u64)
        .and_then(|n| usize::try_from(n).ok())
        .ok_or_else(|| Error::Checkpoint(format!("file source offset {offset} is not {{\"logOffset\": n}}")))
}

fn log_offset(n: usize) -> Offset {
    Offset(serde_json::json!({ "logOffset": n }))
}

impl SourceImpl for FileSource {
    fn description(&self) -> String {
        format!("FileSource[{}]", self.opts.dir.display())
    }

    fn schema(&self) -> SchemaRef {
        self.opts.schema.clone()
    }

    /// Decodes only `columns` from now on (see the [module documentation](self)); each call
    /// replaces the last. A name that is not in the schema means the caller's idea of the
    /// schema is not this source's: the projection is then dropped and every column decoded,
    /// which costs time but cannot lose data.
    fn project(&mut self, columns: &[&str]) {
        let mut indices = Vec::with_capacity(columns.len());
        for name in columns {
            match self.opts.schema.index_of(name) {
                Ok(idx) => indices.push(idx),
                Err(_) => {
                    tracing::debug!(
                        "file source on {}: projected column `{name}` is not in the schema; reading every column",
                        self.opts.dir.display()
                    );
                    self.layout = Layout::new(&self.opts, None);
                    self.projection = None;
                    return;
                }
            }
        }
        indices.sort_unstable();
        indices.dedup();
        self.layout = Layout::new(&self.opts, Some(&indices));
        self.projection = Some(indices);
    }

    fn prepare_available_now(&mut self) -> Result<()> {
        self.layout()?;
        self.snapshot = Some(self.list_new_files()?.into_iter().map(|(path, _)| path).collect());
        Ok(())
    }

    fn backlog(&self, end: Option<&Offset>) -> Option<super::Backlog> {
        let done = parse_offset(end).ok()? as u64;
        Some(super::Backlog { done, total: self.log.len() as u64, unit: "files" })
    }

    fn latest_offset(&mut self, start: Option<&Offset>, limit: ReadLimit) -> Result<Option<Offset>> {
        self.layout()?;
        let start = parse_offset(start)?;
        self.ensure_log_len(start)?;
        let mut new = self.list_new_files()?;
        if let Some(snapshot) = &self.snapshot {
            new.retain(|(path, _)| snapshot.contains(path));
        }
        new.into_iter().for_each(|(path, size)| self.push(path, Some(size)));
        let end = match limit {
            ReadLimit::Default => self.limited_end(start),
            ReadLimit::All => self.log.len(),
        };
        Ok((end > 0).then(|| log_offset(end)))
    }

    fn batch_log(&self, start: Option<&Offset>, end: &Offset) -> Result<Option<serde_json::Value>> {
        if let Some(log) = &self.continuous_log {
            return continuous::batch_log(log, start, end);
        }
        let files: Vec<String> =
            self.files_in_batch(start, end)?.iter().map(|p| p.to_string_lossy().into_owned()).collect();
        Ok(Some(serde_json::json!({ "files": files })))
    }

    fn restore_log(&mut self, entries: Vec<serde_json::Value>) -> Result<()> {
        self.log.clear();
        self.sizes.clear();
        self.seen.clear();
        for e in entries {
            let files = e["files"]
                .as_array()
                .ok_or_else(|| Error::Checkpoint(format!("file source log entry {e} has no \"files\" list")))?;
            for f in files {
                let f =
                    f.as_str().ok_or_else(|| Error::Checkpoint(format!("file source log entry {e}: bad file name")))?;
                self.push(PathBuf::from(f), None);
            }
        }
        Ok(())
    }

    fn get_batch(&mut self, start: Option<&Offset>, end: &Offset) -> Result<Vec<RecordBatch>> {
        self.layout()?;
        let (start, end) = (parse_offset(start)?, parse_offset(Some(end))?);
        if start > end {
            return Err(Error::Execution(format!("file source asked for an empty range ({start}, {end}]")));
        }
        self.ensure_log_len(end)?;
        // Files are read and decoded in parallel, their rows kept in log order.
        use rayon::prelude::*;
        let per_file: Vec<Vec<RecordBatch>> =
            self.log[start..end].par_iter().map(|path| self.read_file(path)).collect::<Result<_>>()?;
        Ok(per_file.into_iter().flatten().filter(|b| b.num_rows() > 0).collect())
    }

    /// One partition: the directory, its files taken as they appear (see `file/continuous.rs`).
    fn continuous_readers(
        &mut self,
        start: Option<&[serde_json::Value]>,
    ) -> Result<Option<Vec<Box<dyn super::continuous::PartitionReader>>>> {
        continuous::readers(self, start).map(Some)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use arrow_array::cast::AsArray;
    use arrow_array::types::{Int64Type, TimestampMicrosecondType};
    use arrow_schema::{Field, TimeUnit};

    use super::*;

    fn ts_type() -> DataType {
        DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
    }

    /// `id: i64, name: Option<String>`, plus an optional corrupt-record column.
    fn schema(nullable_id: bool, corrupt: bool) -> SchemaRef {
        let mut fields = vec![Field::new("id", DataType::Int64, nullable_id), Field::new("name", DataType::Utf8, true)];
        if corrupt {
            fields.push(Field::new("_corrupt_record", DataType::Utf8, true));
        }
        Arc::new(Schema::new(fields))
    }

    /// Writes `name` with `text` and a modification time of `secs` after the epoch, so the
    /// order of files does not depend on the file system's clock resolution.
    fn write(dir: &Path, name: &str, text: &str, secs: u64) {
        let path = dir.join(name);
        fs::write(&path, text).unwrap();
        let file = fs::File::options().write(true).open(&path).unwrap();
        file.set_modified(SystemTime::UNIX_EPOCH + Duration::from_secs(secs)).unwrap();
    }

    fn source(dir: &Path, schema: SchemaRef, f: impl FnOnce(&mut FileOptions)) -> FileSource {
        let mut opts = FileOptions::new(dir.to_path_buf(), schema);
        f(&mut opts);
        FileSource::new(opts)
    }

    fn off(n: usize) -> Offset {
        log_offset(n)
    }

    fn ids(batches: &[RecordBatch]) -> Vec<Option<i64>> {
        batches.iter().flat_map(|b| b.column(0).as_primitive::<Int64Type>().iter().collect::<Vec<_>>()).collect()
    }

    fn strings(batches: &[RecordBatch], col: &str) -> Vec<Option<String>> {
        batches
            .iter()
            .flat_map(|b| {
                let c = b.column_by_name(col).unwrap().as_string::<i32>();
                c.iter().map(|s| s.map(str::to_string)).collect::<Vec<_>>()
            })
            .collect()
    }

    #[test]
    fn new_files_are_picked_up_once_each() {
        let dir = tempfile::tempdir().unwrap();
        let mut src = source(dir.path(), schema(true, false), |_| {});
        assert_eq!(src.latest_offset(None, ReadLimit::Default).unwrap(), None);

        write(dir.path(), "a.json", "{\"id\": 1}\n{\"id\": 2}\n", 10);
        write(dir.path(), ".hidden", "{\"id\": 100}\n", 10);
        write(dir.path(), "_SUCCESS", "", 10);
        write(dir.path(), "b.json.tmp", "{\"id\": 101}\n", 10);
        let end = src.latest_offset(None, ReadLimit::Default).unwrap().unwrap();
        assert_eq!(end, off(1));
        assert_eq!(ids(&src.get_batch(None, &end).unwrap()), [Some(1), Some(2)]);
        src.commit(&end).unwrap();

        // Nothing new: the same offset.
        assert_eq!(src.latest_offset(Some(&end), ReadLimit::Default).unwrap(), Some(off(1)));

        // `c` is older than `b` but arrives with it: ordered by modification time.
        write(dir.path(), "b.json", "{\"id\": 3}\n", 30);
        write(dir.path(), "c.json", "{\"id\": 4}\n", 20);
        let end2 = src.latest_offset(Some(&end), ReadLimit::Default).unwrap().unwrap();
        assert_eq!(end2, off(3));
        assert_eq!(ids(&src.get_batch(Some(&end), &end2).unwrap()), [Some(4), Some(3)]);
        assert_eq!(
            src.files_in_batch(Some(&end), &end2).unwrap(),
            [dir.path().join("c.json"), dir.path().join("b.json")]
        );

        // A file rewritten later is not taken again.
        write(dir.path(), "a.json", "{\"id\": 99}\n", 40);
        assert_eq!(src.latest_offset(Some(&end2), ReadLimit::Default).unwrap(), Some(off(3)));
    }

    #[test]
    fn max_bytes_per_trigger_caps_a_batch_softly_and_the_defaults_apply() {
        let dir = tempfile::tempdir().unwrap();
        // Sizes 10, 10, 30, 10, 10 bytes (`{"id": N}` padded to the size).
        for (i, size) in [10usize, 10, 30, 10, 10].into_iter().enumerate() {
            let line = format!("{{\"id\": {i}}}");
            write(dir.path(), &format!("f{i}.json"), &format!("{line:<width$}\n", width = size - 1), 10 + i as u64);
        }
        let batches_of = |src: &mut FileSource| {
            let (mut start, mut out) = (None, Vec::new());
            loop {
                let end = src.latest_offset(start.as_ref(), ReadLimit::Default).unwrap().unwrap();
                if Some(&end) == start.as_ref() {
                    return out;
                }
                out.push(ids(&src.get_batch(start.as_ref(), &end).unwrap()));
                start = Some(end);
            }
        };
        let mut src = source(dir.path(), schema(true, false), |o| o.max_bytes_per_trigger = Some(25));
        // 10 + 10 fit; the 30-byte file is more than the limit but goes alone; then 10 + 10.
        assert_eq!(batches_of(&mut src), [vec![Some(0), Some(1)], vec![Some(2)], vec![Some(3), Some(4)]]);
        // Both limits: whichever is reached first.
        let mut src = source(dir.path(), schema(true, false), |o| {
            o.max_bytes_per_trigger = Some(45);
            o.max_files_per_trigger = Some(2)
        });
        assert_eq!(batches_of(&mut src), [vec![Some(0), Some(1)], vec![Some(2), Some(3)], vec![Some(4)]]);
        // After a restart the sizes of restored files are read from the file system.
        let mut restored = source(dir.path(), schema(true, false), |o| o.max_bytes_per_trigger = Some(25));
        restored.restore_log(vec![serde_json::json!({"files": [dir.path().join("f0.json")]})]).unwrap();
        assert_eq!(restored.latest_offset(Some(&off(1)), ReadLimit::Default).unwrap(), Some(off(2)));
        // The defaults: everything here fits.
        let mut src = source(dir.path(), schema(true, false), |_| {});
        assert_eq!(batches_of(&mut src).len(), 1);
        let mut many = FileSource::new(FileOptions::new(dir.path().into(), schema(true, false)));
        many.log = (0..DEFAULT_MAX_FILES_PER_TRIGGER + 5).map(|i| PathBuf::from(format!("x{i}"))).collect();
        many.sizes = vec![Some(1); many.log.len()];
        assert_eq!(many.limited_end(0), DEFAULT_MAX_FILES_PER_TRIGGER);
        many.sizes[0] = Some(DEFAULT_MAX_BYTES_PER_TRIGGER);
        assert_eq!(many.limited_end(0), 1, "the default byte limit");
    }

    #[test]
    fn max_files_per_trigger_caps_a_batch() {
        let dir = tempfile::tempdir().unwrap();
        for i in 0..5 {
            write(dir.path(), &format!("f{i}.json"), &format!("{{\"id\": {i}}}\n"), 10 + i);
        }
        let mut src = source(dir.path(), schema(true, false), |o| o.max_files_per_trigger = Some(2));
        let mut start = None;
        let mut batches = Vec::new();
        loop {
            let end = src.latest_offset(start.as_ref(), ReadLimit::Default).unwrap().unwrap();
            if Some(&end) == start.as_ref() {
                break;
            }
            batches.push(ids(&src.get_batch(start.as_ref(), &end).unwrap()));
            start = Some(end);
        }
        assert_eq!(batches, [vec![Some(0), Some(1)], vec![Some(2), Some(3)], vec![Some(4)]]);

        // ReadLimit::All ignores the cap.
        let mut src = source(dir.path(), schema(true, false), |o| o.max_files_per_trigger = Some(2));
        assert_eq!(src.latest_offset(None, ReadLimit::All).unwrap(), Some(off(5)));
    }

    #[test]
    fn available_now_takes_only_files_present_when_prepared() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "a.json", "{\"id\": 1}\n", 10);
        write(dir.path(), "b.json", "{\"id\": 2}\n", 11);
        let mut src = source(dir.path(), schema(true, false), |o| o.max_files_per_trigger = Some(1));
        src.prepare_available_now().unwrap();
        write(dir.path(), "c.json", "{\"id\": 3}\n", 5);
        let end1 = src.latest_offset(None, ReadLimit::Default).unwrap().unwrap();
        assert_eq!(ids(&src.get_batch(None, &end1).unwrap()), [Some(1)]);
        let end2 = src.latest_offset(Some(&end1), ReadLimit::Default).unwrap().unwrap();
        assert_eq!(ids(&src.get_batch(Some(&end1), &end2).unwrap()), [Some(2)]);
        assert_eq!(src.latest_offset(Some(&end2), ReadLimit::Default).unwrap(), Some(off(2)));
    }

    #[test]
    fn replay_gives_the_same_rows_and_a_restart_rebuilds_the_log() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "a.json", "{\"id\": 1, \"name\": \"x\"}\n", 10);
        write(dir.path(), "b.json", "{\"id\": 2, \"name\": \"y\"}\n", 11);
        let mut src = source(dir.path(), schema(true, false), |o| o.max_files_per_trigger = Some(1));
        let end1 = src.latest_offset(None, ReadLimit::Default).unwrap().unwrap();
        let end2 = src.latest_offset(Some(&end1), ReadLimit::Default).unwrap().unwrap();
        let first = src.get_batch(Some(&end1), &end2).unwrap();
        assert_eq!(first, src.get_batch(Some(&end1), &end2).unwrap());
        assert_eq!(ids(&first), [Some(2)]);

        // A fresh source (after a restart) replays the same range.
        let mut restarted = source(dir.path(), schema(true, false), |_| {});
        assert_eq!(restarted.get_batch(Some(&end1), &end2).unwrap(), first);
        write(dir.path(), "c.json", "{\"id\": 3}\n", 12);
        let end3 = restarted.latest_offset(Some(&end2), ReadLimit::Default).unwrap().unwrap();
        assert_eq!(ids(&restarted.get_batch(Some(&end2), &end3).unwrap()), [Some(3)]);
    }

    #[test]
    fn text_lines_are_rows_blank_ones_included() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "a.txt", "hello world\r\n\nsecond, line\nno terminator", 10);
        let schema = Arc::new(Schema::new(vec![Field::new("value", DataType::Utf8, false)]));
        let mut src = source(dir.path(), schema, |o| o.format = FileFormat::Text);
        let end = src.latest_offset(None, ReadLimit::Default).unwrap().unwrap();
        let batches = src.get_batch(None, &end).unwrap();
        let values = batches[0].column(0).as_string::<i32>();
        let values: Vec<&str> = values.iter().map(Option::unwrap).collect();
        assert_eq!(values, ["hello world", "", "second, line", "no terminator"]);

        // A final line break ends the last line; it does not start an empty one.
        write(dir.path(), "b.txt", "x\n", 11);
        let end2 = src.latest_offset(Some(&end), ReadLimit::Default).unwrap().unwrap();
        assert_eq!(src.get_batch(Some(&end), &end2).unwrap()[0].num_rows(), 1);
    }

    #[test]
    fn text_needs_one_string_field() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "a.txt", "1\n", 10);
        let mut src = source(dir.path(), schema(true, false), |o| o.format = FileFormat::Text);
        let err = src.latest_offset(None, ReadLimit::Default).unwrap_err().to_string();
        assert!(err.contains("exactly one String field"), "{err}");
    }

    #[test]
    fn json_schema_is_exact_and_timestamps_parse() {
        let dir = tempfile::tempdir().unwrap();
        let schema = Arc::new(Schema::new(vec![
            Field::new("ts", ts_type(), false),
            Field::new("word", DataType::Utf8, false),
            Field::new("n", DataType::Int64, true),
        ]));
        write(
            dir.path(),
            "a.json",
            "{\"n\": 1, \"word\": \"a\", \"extra\": [1, 2], \"ts\": \"2024-01-01T12:00:00Z\"}\n\n  \n\
             {\"ts\": \"2024-01-01 12:00:01\", \"word\": 7, \"n\": null}\r\n\
             {\"ts\": \"2024-01-01T13:00:02+01:00\", \"word\": \"c\"}",
            10,
        );
        let mut src = source(dir.path(), schema.clone(), |_| {});
        let end = src.latest_offset(None, ReadLimit::Default).unwrap().unwrap();
        let batches = src.get_batch(None, &end).unwrap();
        assert_eq!(batches[0].schema(), schema);
        let ts: Vec<_> = batches
            .iter()
            .flat_map(|b| b.column(0).as_primitive::<TimestampMicrosecondType>().values().to_vec())
            .collect();
        let noon = 1_704_110_400_000_000;
        assert_eq!(ts, [noon, noon + 1_000_000, noon + 2_000_000]);
        assert_eq!(strings(&batches, "word"), [Some("a".into()), Some("7".into()), Some("c".into())]);
        let n: Vec<_> =
            batches.iter().flat_map(|b| b.column(2).as_primitive::<Int64Type>().iter().collect::<Vec<_>>()).collect();
        assert_eq!(n, [Some(1), None, None]);
    }

    #[test]
    fn csv_schema_is_exact_and_timestamps_parse() {
        let dir = tempfile::tempdir().unwrap();
        let schema =
            Arc::new(Schema::new(vec![Field::new("ts", ts_type(), false), Field::new("n", DataType::Int64, true)]));
        write(dir.path(), "a.csv", "ts;n\n2024-01-01T12:00:00Z;1\n\n2024-01-01 12:00:01;\r\n", 10);
        let mut src = source(dir.path(), schema.clone(), |o| {
            o.format = FileFormat::Csv;
            o.csv_delimiter = b';';
        });
        let end = src.latest_offset(None, ReadLimit::Default).unwrap().unwrap();
        let batches = src.get_batch(None, &end).unwrap();
        assert_eq!(batches[0].schema(), schema);
        let noon = 1_704_110_400_000_000;
        assert_eq!(
            batches[0].column(0).as_primitive::<TimestampMicrosecondType>().values().to_vec(),
            [noon, noon + 1_000_000]
        );
        assert_eq!(batches[0].column(1).as_primitive::<Int64Type>().iter().collect::<Vec<_>>(), [Some(1), None]);
    }

    #[test]
    fn json_keys_match_ignoring_case_by_default_and_a_clash_is_a_malformed_line() {
        let dir = tempfile::tempdir().unwrap();
        // Fast-path lines, lines arrow-json decodes (an escape), and one with a clash.
        let text = "{\"ID\": 1, \"Name\": \"a\"}\n{\"id\": 2, \"NAME\": \"b\\n\"}\n{\"id\": 3, \"name\": \"c\"}\n\
                    {\"id\": 4, \"Id\": 5}\n";
        write(dir.path(), "a.json", text, 10);
        let mut src = source(dir.path(), schema(true, true), |_| {});
        let batches = read_all(&mut src).unwrap();
        assert_eq!(ids(&batches), [Some(1), Some(2), Some(3), None]);
        assert_eq!(strings(&batches, "name"), [Some("a".into()), Some("b\n".into()), Some("c".into()), None]);
        assert_eq!(strings(&batches, "_corrupt_record")[3].as_deref(), Some("{\"id\": 4, \"Id\": 5}"));
        let mut strict = source(dir.path(), schema(true, false), |o| o.mode = ParseMode::FailFast);
        let err = read_all(&mut strict).unwrap_err().to_string();
        assert!(err.contains("line 4") && err.contains("keys `id` and `Id` both match field `id`"), "{err}");
        // Case-sensitive: only exact keys count (and no clash).
        let mut exact = source(dir.path(), schema(true, false), |o| o.case_sensitive = true);
        let batches = read_all(&mut exact).unwrap();
        assert_eq!(ids(&batches), [None, Some(2), Some(3), Some(4)]);
        assert_eq!(strings(&batches, "name"), [None, None, Some("c".into()), None]);
        // A projection still matches the read fields ignoring case; keys of unread fields do not
        // clash (only the read fields' values count, as for malformed values).
        let mut projected = source(dir.path(), schema(true, false), |o| o.mode = ParseMode::FailFast);
        projected.project(&["name"]);
        let names = strings(&read_all(&mut projected).unwrap(), "name");
        assert_eq!(names, [Some("a".into()), Some("b\n".into()), Some("c".into()), None]);
    }

    #[test]
    fn a_reading_thread_keeps_memory_for_the_files_it_reads_not_the_largest_seen() {
        let dir = tempfile::tempdir().unwrap();
        let line = "{\"id\": 1, \"name\": \"0123456789012345678901234567890123456789\"}\n";
        write(dir.path(), "big.json", &line.repeat(200_000), 10);
        write(dir.path(), "small.json", &line.repeat(10), 20);
        let src = source(dir.path(), schema(true, false), |_| {});
        let kept = || READ_BUFFER.with(|c| c.borrow().capacity());
        assert_eq!(
            src.read_file(&dir.path().join("big.json")).unwrap().iter().map(RecordBatch::num_rows).sum::<usize>(),
            200_000
        );
        assert!(kept() >= line.len() * 200_000, "the buffer is kept for the next file of that size");
        src.read_file(&dir.path().join("small.json")).unwrap();
        assert!(kept() <= SHRINK_READ_BUFFER_ABOVE, "after a small file the thread keeps {} bytes", kept());
        // The rule itself: above the cap nothing is kept; otherwise at most twice the last use.
        assert!(settle_read_buffer(Vec::with_capacity(KEPT_READ_BUFFER_BYTES + 1), 10).is_none());
        assert_eq!(settle_read_buffer(Vec::with_capacity(4 << 20), 3 << 20).unwrap().capacity(), 4 << 20);
        assert!(settle_read_buffer(Vec::with_capacity(4 << 20), 1 << 10).unwrap().capacity() < 4 << 20);
    }

    const BAD_JSON: &str =
        "{\"id\": 1, \"name\": \"a\"}\nnot json\n{\"id\": \"x\", \"name\": \"b\"}\n[1]\n{\"id\": 5}\n";
    const BAD_CSV: &str = "id,name\n1,a\n2,b,extra\nx,c\n\n5,e\n";

    fn read_all(src: &mut FileSource) -> Result<Vec<RecordBatch>> {
        let end = src.latest_offset(None, ReadLimit::Default)?.unwrap();
        src.get_batch(None, &end)
    }

    fn with_bad_file(format: FileFormat, schema: SchemaRef, mode: ParseMode) -> (tempfile::TempDir, FileSource) {
        let dir = tempfile::tempdir().unwrap();
        let text = if format == FileFormat::Json { BAD_JSON } else { BAD_CSV };
        write(dir.path(), "bad", text, 10);
        let src = source(dir.path(), schema, |o| {
            o.format = format;
            o.mode = mode;
        });
        (dir, src)
    }

    #[test]
    fn permissive_keeps_malformed_lines_as_null_rows_with_their_text() {
        let (_dir, mut src) = with_bad_file(FileFormat::Json, schema(true, true), ParseMode::Permissive);
        let batches = read_all(&mut src).unwrap();
        assert_eq!(batches[0].schema(), schema(true, true));
        assert_eq!(ids(&batches), [Some(1), None, None, None, Some(5)]);
        assert_eq!(strings(&batches, "name"), [Some("a".into()), None, None, None, None]);
        assert_eq!(
            strings(&batches, "_corrupt_record"),
            [None, Some("not json".into()), Some("{\"id\": \"x\", \"name\": \"b\"}".into()), Some("[1]".into()), None]
        );

        let (_dir, mut src) = with_bad_file(FileFormat::Csv, schema(true, true), ParseMode::Permissive);
        let batches = read_all(&mut src).unwrap();
        assert_eq!(ids(&batches), [Some(1), None, None, Some(5)]);
        assert_eq!(strings(&batches, "_corrupt_record"), [None, Some("2,b,extra".into()), Some("x,c".into()), None]);

        // Without a corrupt-record column the rows are all null.
        let (_dir, mut src) = with_bad_file(FileFormat::Csv, schema(true, false), ParseMode::Permissive);
        assert_eq!(ids(&read_all(&mut src).unwrap()), [Some(1), None, None, Some(5)]);
    }

    #[test]
    fn permissive_with_a_non_nullable_field_is_a_plan_error() {
        let (_dir, mut src) = with_bad_file(FileFormat::Json, schema(false, true), ParseMode::Permissive);
        let err = read_all(&mut src).unwrap_err();
        assert!(matches!(&err, Error::Plan(m) if m.contains("`id`") && m.contains("Option<_>")), "{err}");

        // A clean file reads fine with the same schema.
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "ok", "{\"id\": 1}\n", 10);
        let mut src = source(dir.path(), schema(false, true), |_| {});
        assert_eq!(ids(&read_all(&mut src).unwrap()), [Some(1)]);
    }

    #[test]
    fn drop_malformed_drops_the_lines() {
        let (_dir, mut src) = with_bad_file(FileFormat::Json, schema(false, false), ParseMode::DropMalformed);
        assert_eq!(ids(&read_all(&mut src).unwrap()), [Some(1), Some(5)]);
        let (_dir, mut src) = with_bad_file(FileFormat::Csv, schema(false, true), ParseMode::DropMalformed);
        let batches = read_all(&mut src).unwrap();
        assert_eq!(ids(&batches), [Some(1), Some(5)]);
        assert_eq!(strings(&batches, "_corrupt_record"), [None, None]);
    }

    #[test]
    fn fail_fast_names_the_file_and_line() {
        let (dir, mut src) = with_bad_file(FileFormat::Json, schema(true, true), ParseMode::FailFast);
        let err = read_all(&mut src).unwrap_err();
        let path = dir.path().join("bad").display().to_string();
        assert!(matches!(&err, Error::MalformedInput(m) if m.contains(&format!("line 2 of {path}"))), "{err}");

        let (dir, mut src) = with_bad_file(FileFormat::Csv, schema(true, false), ParseMode::FailFast);
        let err = read_all(&mut src).unwrap_err();
        let path = dir.path().join("bad").display().to_string();
        assert!(
            matches!(&err, Error::MalformedInput(m) if m.contains(&format!("line 3 of {path}")) && m.contains("2,b,extra")),
            "{err}"
        );
    }

    #[test]
    fn json_lines_must_hold_one_object_each() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "a", "{\"id\": 1}{\"id\": 2}\n{\"id\":\n 3}\n{\"id\": 4}\n", 10);
        let mut src = source(dir.path(), schema(true, true), |_| {});
        let batches = read_all(&mut src).unwrap();
        assert_eq!(ids(&batches), [None, None, None, Some(4)]);
        assert_eq!(
            strings(&batches, "_corrupt_record"),
            [Some("{\"id\": 1}{\"id\": 2}".into()), Some("{\"id\":".into()), Some(" 3}".into()), None]
        );
    }

    #[test]
    fn a_bad_corrupt_record_column_is_a_plan_error() {
        let dir = tempfile::tempdir().unwrap();
        let schema = Arc::new(Schema::new(vec![Field::new("_corrupt_record", DataType::Int64, true)]));
        let mut src = source(dir.path(), schema, |_| {});
        assert!(matches!(src.latest_offset(None, ReadLimit::Default), Err(Error::Plan(_))));
    }

    #[test]
    fn suffix_filters_files_and_a_missing_directory_is_an_io_error() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "a.json", "{\"id\": 1}\n", 10);
        write(dir.path(), "b.txt", "{\"id\": 2}\n", 11);
        let mut src = source(dir.path(), schema(true, false), |o| o.suffix = Some(".json".into()));
        assert_eq!(ids(&read_all(&mut src).unwrap()), [Some(1)]);

        let mut src = source(&dir.path().join("missing"), schema(true, false), |_| {});
        assert!(matches!(src.latest_offset(None, ReadLimit::Default), Err(Error::Io { .. })));
    }

    #[test]
    fn large_files_with_a_bad_line_keep_every_good_row() {
        let dir = tempfile::tempdir().unwrap();
        let mut text = String::new();
        for i in 0..20_000 {
            if i == 12_345 {
                text.push_str("{oops\n");
            }
            text.push_str(&format!("{{\"id\": {i}}}\n"));
        }
        write(dir.path(), "big", &text, 10);
        let mut src = source(dir.path(), schema(true, false), |o| o.mode = ParseMode::DropMalformed);
        let got = ids(&read_all(&mut src).unwrap());
        assert_eq!(got, (0..20_000).map(Some).collect::<Vec<_>>());
    }

    /// An escape the fast path leaves to arrow-json, in one line of a large file: every row
    /// still decodes, in order, with the escaped string unescaped.
    #[test]
    fn a_line_the_fast_path_leaves_to_arrow_json_keeps_every_row() {
        let dir = tempfile::tempdir().unwrap();
        let mut text = String::new();
        for i in 0..20_000 {
            let name = if i == 12_345 { "say \\\"hi\\\"".to_string() } else { format!("n{i}") };
            text.push_str(&format!("{{\"id\": {i}, \"name\": \"{name}\"}}\n"));
        }
        write(dir.path(), "big", &text, 10);
        let mut src = source(dir.path(), schema(true, false), |o| o.mode = ParseMode::FailFast);
        let batches = read_all(&mut src).unwrap();
        assert_eq!(ids(&batches), (0..20_000).map(Some).collect::<Vec<_>>());
        let names = strings(&batches, "name");
        assert_eq!(names[12_345].as_deref(), Some("say \"hi\""));
        assert_eq!(names[12_346].as_deref(), Some("n12346"));
    }

    // ---- Parquet ----

    /// Writes `batch` as a Parquet file `name`, in row groups of `row_group_rows`, with a
    /// modification time of `secs` after the epoch.
    fn write_parquet_groups(dir: &Path, name: &str, batch: &RecordBatch, secs: u64, row_group_rows: usize) {
        let path = dir.join(name);
        let props = parquet::file::properties::WriterProperties::builder()
            .set_max_row_group_row_count(Some(row_group_rows))
            .build();
        let mut writer =
            parquet::arrow::ArrowWriter::try_new(fs::File::create(&path).unwrap(), batch.schema(), Some(props))
                .unwrap();
        writer.write(batch).unwrap();
        writer.close().unwrap();
        let file = fs::File::options().write(true).open(&path).unwrap();
        file.set_modified(SystemTime::UNIX_EPOCH + Duration::from_secs(secs)).unwrap();
    }

    fn write_parquet(dir: &Path, name: &str, batch: &RecordBatch, secs: u64) {
        write_parquet_groups(dir, name, batch, secs, 1 << 20);
    }

    fn int64s(values: impl IntoIterator<Item = Option<i64>>) -> ArrayRef {
        Arc::new(values.into_iter().collect::<arrow_array::Int64Array>())
    }

    fn utf8s(values: &[Option<&str>]) -> ArrayRef {
        Arc::new(values.iter().copied().collect::<StringArray>())
    }

    fn parquet_source(dir: &Path, schema: SchemaRef) -> FileSource {
        source(dir, schema, |o| o.format = FileFormat::Parquet)
    }

    #[test]
    fn parquet_rows_keep_the_file_order_and_files_the_log_order() {
        let dir = tempfile::tempdir().unwrap();
        // Several row groups and decode batches in one file.
        let big = RecordBatch::try_from_iter([("id", int64s((0..20_000).map(Some)))]).unwrap();
        write_parquet_groups(dir.path(), "b.parquet", &big, 20, 3_000);
        write_parquet(
            dir.path(),
            "a.parquet",
            &RecordBatch::try_from_iter([("id", int64s([Some(-2), Some(-1)]))]).unwrap(),
            10,
        );
        write_parquet(
            dir.path(),
            "c.parquet",
            &RecordBatch::try_from_iter([("id", int64s([Some(20_000)]))]).unwrap(),
            30,
        );
        let mut src = parquet_source(dir.path(), schema(true, false));
        let batches = read_all(&mut src).unwrap();
        assert_eq!(batches[0].schema(), schema(true, false));
        assert_eq!(ids(&batches), (-2..=20_000).map(Some).collect::<Vec<_>>());
        assert_eq!(strings(&batches, "name"), vec![None; 20_003]);
        // No column read: the rows of every row group are still counted.
        src.project(&[]);
        assert_eq!(rows(&read_all(&mut src).unwrap()), 20_003);
    }

    #[test]
    fn parquet_columns_are_matched_by_name_and_extra_ones_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let file = RecordBatch::try_from_iter([
            ("extra", Arc::new(arrow_array::Float64Array::from(vec![0.5, 1.5])) as ArrayRef),
            ("name", utf8s(&[Some("a"), None])),
            ("id", int64s([Some(1), Some(2)])),
        ])
        .unwrap();
        write_parquet(dir.path(), "a.parquet", &file, 10);
        let mut src = parquet_source(dir.path(), schema(false, false));
        let batches = read_all(&mut src).unwrap();
        assert_eq!(batches[0].schema(), schema(false, false));
        assert_eq!(ids(&batches), [Some(1), Some(2)]);
        assert_eq!(strings(&batches, "name"), [Some("a".into()), None]);
    }

    #[test]
    fn parquet_missing_column_reads_as_nulls_if_nullable_else_fails() {
        let dir = tempfile::tempdir().unwrap();
        write_parquet(
            dir.path(),
            "a.parquet",
            &RecordBatch::try_from_iter([("name", utf8s(&[Some("x")]))]).unwrap(),
            10,
        );
        let mut src = parquet_source(dir.path(), schema(true, false));
        let batches = read_all(&mut src).unwrap();
        assert_eq!(ids(&batches), [None]);
        assert_eq!(strings(&batches, "name"), [Some("x".into())]);

        let mut src = parquet_source(dir.path(), schema(false, false));
        let err = read_all(&mut src).unwrap_err();
        let path = dir.path().join("a.parquet").display().to_string();
        assert!(matches!(&err, Error::Plan(m) if m.contains(&path) && m.contains("no column `id`")), "{err}");
    }

    #[test]
    fn parquet_timestamps_of_any_unit_and_zone_become_utc_micros() {
        let dir = tempfile::tempdir().unwrap();
        let noon_ns = 1_704_110_400_000_000_000_i64;
        // Spark's INT96 reads as nanoseconds without a time zone; before 1970 the instant is
        // truncated towards the past.
        let ns: ArrayRef = Arc::new(arrow_array::TimestampNanosecondArray::from(vec![noon_ns + 1_999, -1]));
        let ms: ArrayRef =
            Arc::new(arrow_array::TimestampMillisecondArray::from(vec![1_000, 2_000]).with_timezone("+01:00"));
        let file = RecordBatch::try_from_iter([("ts", ns), ("ms", ms)]).unwrap();
        write_parquet(dir.path(), "a.parquet", &file, 10);
        let schema = Arc::new(Schema::new(vec![Field::new("ts", ts_type(), false), Field::new("ms", ts_type(), true)]));
        let mut src = parquet_source(dir.path(), schema.clone());
        let batches = read_all(&mut src).unwrap();
        assert_eq!(batches[0].schema(), schema);
        let micros = |i: usize| batches[0].column(i).as_primitive::<TimestampMicrosecondType>().values().to_vec();
        assert_eq!(micros(0), [noon_ns / 1_000 + 1, -1]);
        assert_eq!(micros(1), [1_000_000, 2_000_000]);
    }

    #[test]
    fn parquet_wrong_type_names_the_file_the_column_and_both_types() {
        let dir = tempfile::tempdir().unwrap();
        write_parquet(dir.path(), "a.parquet", &RecordBatch::try_from_iter([("id", utf8s(&[Some("1")]))]).unwrap(), 10);
        let mut src = parquet_source(dir.path(), schema(true, false));
        let err = read_all(&mut src).unwrap_err();
        let path = dir.path().join("a.parquet").display().to_string();
        assert!(
            matches!(&err, Error::Plan(m) if m.contains(&path) && m.contains("`id` is Utf8") && m.contains("Int64")),
            "{err}"
        );
    }

    #[test]
    fn parquet_nulls_for_a_non_nullable_field_are_an_error() {
        let dir = tempfile::tempdir().unwrap();
        write_parquet(
            dir.path(),
            "a.parquet",
            &RecordBatch::try_from_iter([("id", int64s([Some(1), None]))]).unwrap(),
            10,
        );
        let mut src = parquet_source(dir.path(), schema(false, false));
        let err = read_all(&mut src).unwrap_err();
        assert!(matches!(&err, Error::Plan(m) if m.contains("`id` holds nulls")), "{err}");
    }

    #[test]
    fn parquet_garbage_or_truncated_files_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "garbage.parquet", "this is not parquet", 10);
        let mut src = parquet_source(dir.path(), schema(true, false));
        let err = read_all(&mut src).unwrap_err();
        let path = dir.path().join("garbage.parquet").display().to_string();
        assert!(
            matches!(&err, Error::MalformedInput(m) if m.contains(&path) && m.contains("not a readable Parquet")),
            "{err}"
        );

        let dir = tempfile::tempdir().unwrap();
        let big = RecordBatch::try_from_iter([("id", int64s((0..1000).map(Some)))]).unwrap();
        write_parquet(dir.path(), "cut.parquet", &big, 10);
        let path = dir.path().join("cut.parquet");
        let bytes = fs::read(&path).unwrap();
        fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
        let mut src = parquet_source(dir.path(), schema(true, false));
        let err = read_all(&mut src).unwrap_err();
        assert!(matches!(&err, Error::MalformedInput(m) if m.contains(&path.display().to_string())), "{err}");
    }

    #[test]
    fn parquet_has_no_corrupt_record_column() {
        let dir = tempfile::tempdir().unwrap();
        write_parquet(dir.path(), "a.parquet", &RecordBatch::try_from_iter([("id", int64s([Some(1)]))]).unwrap(), 10);
        // Naming one is a JSON/CSV option, reported on first use.
        let mut src = source(dir.path(), schema(true, true), |o| {
            o.format = FileFormat::Parquet;
            o.corrupt_record_column = Some("_corrupt_record".into());
        });
        let err = read_all(&mut src).unwrap_err();
        assert!(matches!(&err, Error::Plan(m) if m.contains("JSON/CSV option")), "{err}");
        // Unnamed, a `_corrupt_record` field is an ordinary column (here missing: nulls).
        let mut src = parquet_source(dir.path(), schema(true, true));
        let batches = read_all(&mut src).unwrap();
        assert_eq!(ids(&batches), [Some(1)]);
        assert_eq!(strings(&batches, "_corrupt_record"), [None]);
    }

    #[test]
    fn parquet_dictionary_large_and_view_strings_read_as_strings() {
        use arrow_array::types::Int32Type;
        let dir = tempfile::tempdir().unwrap();
        let dict: ArrayRef = Arc::new(
            [Some("a"), None, Some("b"), Some("a")].into_iter().collect::<arrow_array::DictionaryArray<Int32Type>>(),
        );
        let large: ArrayRef =
            Arc::new(arrow_array::LargeStringArray::from(vec![Some("x"), Some("y"), None, Some("z")]));
        let view: ArrayRef = Arc::new(arrow_array::StringViewArray::from(vec![
            Some("a string longer than twelve bytes"),
            Some("v"),
            Some(""),
            None,
        ]));
        let dict_ids: ArrayRef = Arc::new(arrow_array::DictionaryArray::<Int32Type>::new(
            arrow_array::Int32Array::from(vec![Some(0), Some(0), Some(1), None]),
            int64s([Some(7), Some(8)]),
        ));
        let file = RecordBatch::try_from_iter([("id", dict_ids), ("d", dict), ("l", large), ("v", view)]).unwrap();
        write_parquet(dir.path(), "a.parquet", &file, 10);
        // The file keeps its encodings: the parquet crate reads them back as written.
        let back = ParquetRecordBatchReaderBuilder::try_new(fs::File::open(dir.path().join("a.parquet")).unwrap())
            .unwrap()
            .schema()
            .clone();
        assert!(matches!(back.field(1).data_type(), DataType::Dictionary(..)), "{back:?}");
        assert_eq!(back.field(2).data_type(), &DataType::LargeUtf8);
        assert_eq!(back.field(3).data_type(), &DataType::Utf8View);
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, true),
            Field::new("d", DataType::Utf8, true),
            Field::new("l", DataType::Utf8, true),
            Field::new("v", DataType::Utf8, true),
        ]));
        let mut src = parquet_source(dir.path(), schema.clone());
        let batches = read_all(&mut src).unwrap();
        assert_eq!(batches[0].schema(), schema);
        assert_eq!(ids(&batches), [Some(7), Some(7), Some(8), None]);
        let s = |v: &[Option<&str>]| v.iter().map(|s| s.map(String::from)).collect::<Vec<_>>();
        assert_eq!(strings(&batches, "d"), s(&[Some("a"), None, Some("b"), Some("a")]));
        assert_eq!(strings(&batches, "l"), s(&[Some("x"), Some("y"), None, Some("z")]));
        assert_eq!(strings(&batches, "v"), s(&[Some("a string longer than twelve bytes"), Some("v"), Some(""), None]));
        // A dictionary of strings is still no integer.
        let wrong = Arc::new(Schema::new(vec![Field::new("d", DataType::Int64, true)]));
        let err = read_all(&mut parquet_source(dir.path(), wrong)).unwrap_err();
        assert!(matches!(&err, Error::Plan(m) if m.contains("`d` is Dictionary")), "{err}");
    }

    #[test]
    fn parquet_written_by_pyarrow_reads_as_the_logical_types() {
        // runtime/tests/fixtures/parquet/make_fixtures.py wrote it (pyarrow 26): a column `Id`,
        // strings dictionary-encoded, large and view, nanosecond timestamps in Europe/Paris.
        let dir = tempfile::tempdir().unwrap();
        let fixture = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/parquet/pyarrow_encodings.parquet");
        fs::copy(fixture, dir.path().join("a.parquet")).unwrap();
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, true),
            Field::new("dict", DataType::Utf8, true),
            Field::new("large", DataType::Utf8, true),
            Field::new("view", DataType::Utf8, true),
            Field::new("ts", ts_type(), true),
        ]));
        let batches = read_all(&mut parquet_source(dir.path(), schema.clone())).unwrap();
        assert_eq!(batches[0].schema(), schema);
        assert_eq!(ids(&batches), [Some(1), Some(2), Some(3), None]);
        let names: Vec<Option<String>> =
            [Some("alpha"), None, Some("a string longer than twelve bytes"), Some("alpha")]
                .map(|s| s.map(String::from))
                .to_vec();
        for col in ["dict", "large", "view"] {
            assert_eq!(strings(&batches, col), names, "{col}");
        }
        let ts = batches[0].column(4).as_primitive::<TimestampMicrosecondType>();
        assert_eq!((ts.value(0), ts.value(1), ts.is_null(2), ts.value(3)), (0, 1_000_000, true, -1));
    }

    #[test]
    fn parquet_names_match_ignoring_case_by_default_and_a_clash_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let file = RecordBatch::try_from_iter([("ID", int64s([Some(1)])), ("Name", utf8s(&[Some("a")]))]).unwrap();
        write_parquet(dir.path(), "a.parquet", &file, 10);
        let batches = read_all(&mut parquet_source(dir.path(), schema(true, false))).unwrap();
        assert_eq!(ids(&batches), [Some(1)]);
        assert_eq!(strings(&batches, "name"), [Some("a".to_string())]);
        // Case-sensitive: no column `id`, so nulls.
        let mut exact = source(dir.path(), schema(true, false), |o| {
            o.format = FileFormat::Parquet;
            o.case_sensitive = true;
        });
        assert_eq!(ids(&read_all(&mut exact).unwrap()), [None]);
        // Two columns for one field.
        let dir = tempfile::tempdir().unwrap();
        let file = RecordBatch::try_from_iter([("id", int64s([Some(1)])), ("Id", int64s([Some(2)]))]).unwrap();
        write_parquet(dir.path(), "a.parquet", &file, 10);
        let err = read_all(&mut parquet_source(dir.path(), schema(true, false))).unwrap_err();
        assert!(matches!(&err, Error::Plan(m) if m.contains("`id`, `Id`") && m.contains("case_sensitive")), "{err}");
        let mut exact = source(dir.path(), schema(true, false), |o| {
            o.format = FileFormat::Parquet;
            o.case_sensitive = true;
        });
        assert_eq!(ids(&read_all(&mut exact).unwrap()), [Some(1)]);
        // Two fields that differ in case only cannot be matched ignoring case.
        let clash = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, true),
            Field::new("ID", DataType::Int64, true),
        ]));
        let err = read_all(&mut parquet_source(dir.path(), clash)).unwrap_err();
        assert!(matches!(&err, Error::Plan(m) if m.contains("differ only in case")), "{err}");
    }

    // ---- Projection ----

    /// Per column of `batches`' schema: its name, whether its field is nullable, and its
    /// null count over all batches.
    fn nulls_by_column(batches: &[RecordBatch]) -> Vec<(String, bool, usize)> {
        let schema = batches[0].schema();
        schema
            .fields()
            .iter()
            .enumerate()
            .map(|(i, f)| (f.name().clone(), f.is_nullable(), batches.iter().map(|b| b.column(i).null_count()).sum()))
            .collect()
    }

    fn rows(batches: &[RecordBatch]) -> usize {
        batches.iter().map(RecordBatch::num_rows).sum()
    }

    /// `id: i64, name: String, n: i64`, none nullable.
    fn strict_schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("name", DataType::Utf8, false),
            Field::new("n", DataType::Int64, false),
        ]))
    }

    /// Checks a projection onto `name` of three rows ("a", "b", "c"), then an empty one.
    fn check_projection(mut src: FileSource) {
        src.project(&["name"]);
        let batches = read_all(&mut src).unwrap();
        // Unread columns are zero placeholders without nulls: the schema stays as configured,
        // but for the mark on the unread columns (which generated code checks it never loads).
        let schema = batches[0].schema();
        let plain: Vec<Field> = schema
            .fields()
            .iter()
            .map(|f| f.as_ref().clone().with_metadata(std::collections::HashMap::new()))
            .collect();
        assert_eq!(Arc::new(Schema::new(plain)), strict_schema());
        let marked: Vec<&str> = schema
            .fields()
            .iter()
            .filter(|f| f.metadata().contains_key(crate::source::UNREAD_COLUMN))
            .map(|f| f.name().as_str())
            .collect();
        assert_eq!(marked, ["id", "n"]);
        assert_eq!(
            nulls_by_column(&batches),
            [("id".into(), false, 0), ("name".into(), false, 0), ("n".into(), false, 0)]
        );
        assert_eq!(ids(&batches), [Some(0), Some(0), Some(0)]);
        assert_eq!(strings(&batches, "name"), [Some("a".into()), Some("b".into()), Some("c".into())]);

        // Nothing read (`count()`): the rows are still counted.
        src.project(&[]);
        let end = src.latest_offset(None, ReadLimit::Default).unwrap().unwrap();
        let batches = src.get_batch(None, &end).unwrap();
        assert_eq!(rows(&batches), 3);
        assert_eq!(
            nulls_by_column(&batches),
            [("id".into(), false, 0), ("name".into(), false, 0), ("n".into(), false, 0)]
        );
        assert_eq!(strings(&batches, "name"), vec![Some(String::new()); 3]);

        // A name not in the schema: no projection.
        src.project(&["name", "nope"]);
        let batches = src.get_batch(None, &end).unwrap();
        assert_eq!(batches[0].schema(), strict_schema());
        assert_eq!(ids(&batches), [Some(1), Some(2), Some(3)]);
    }

    #[test]
    fn json_projection_decodes_only_the_read_columns() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "a.json",
            "{\"id\": 1, \"name\": \"a\", \"n\": 10}\n{\"id\": 2, \"name\": \"b\", \"n\": 20}\n\n{\"name\": \"c\", \"id\": 3, \"n\": 30}\n",
            10,
        );
        check_projection(source(dir.path(), strict_schema(), |o| o.mode = ParseMode::FailFast));
    }

    #[test]
    fn csv_projection_decodes_only_the_read_columns() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "a.csv", "id,name,n\n1,a,10\n2,b,20\n3,c,30\n", 10);
        check_projection(source(dir.path(), strict_schema(), |o| {
            o.format = FileFormat::Csv;
            o.mode = ParseMode::FailFast;
        }));
    }

    #[test]
    fn parquet_projection_decodes_only_the_read_columns() {
        let dir = tempfile::tempdir().unwrap();
        let file = RecordBatch::try_from_iter([
            ("n", int64s([Some(10), Some(20)])),
            ("name", utf8s(&[Some("a"), Some("b")])),
            ("id", int64s([Some(1), Some(2)])),
        ])
        .unwrap();
        write_parquet(dir.path(), "a.parquet", &file, 10);
        let file = RecordBatch::try_from_iter([
            ("id", int64s([Some(3)])),
            ("name", utf8s(&[Some("c")])),
            ("n", int64s([Some(30)])),
        ])
        .unwrap();
        write_parquet(dir.path(), "b.parquet", &file, 11);
        check_projection(source(dir.path(), strict_schema(), |o| o.format = FileFormat::Parquet));
    }

    #[test]
    fn a_bad_value_in_an_unread_field_does_not_make_a_line_malformed() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "a.json",
            "{\"id\": 1, \"name\": \"a\", \"n\": 10}\n{\"id\": \"x\", \"name\": \"b\", \"n\": 20}\n",
            10,
        );
        let mut src = source(dir.path(), strict_schema(), |o| o.mode = ParseMode::FailFast);
        src.project(&["name", "n"]);
        let batches = read_all(&mut src).unwrap();
        assert_eq!(strings(&batches, "name"), [Some("a".into()), Some("b".into())]);

        // Read, the same field fails the line.
        src.project(&["id", "name"]);
        let err = read_all(&mut src).unwrap_err();
        assert!(matches!(&err, Error::MalformedInput(m) if m.contains("line 2 of")), "{err}");

        // A line that is not a JSON object is malformed whatever is read.
        write(dir.path(), "b.json", "{\"id\": 3, \"name\": \"c\", \"n\": 30}\n[1]\n", 11);
        let mut src = source(dir.path(), strict_schema(), |o| o.mode = ParseMode::FailFast);
        src.project(&[]);
        let err = read_all(&mut src).unwrap_err();
        assert!(matches!(&err, Error::MalformedInput(m) if m.contains("line 2 of") && m.contains("b.json")), "{err}");

        // CSV: an unread column is not parsed, but the number of fields still counts.
        write(dir.path(), "c.csv", "id,name,n\nx,a,10\n", 10);
        let csv = |dir: &Path| {
            source(dir, strict_schema(), |o| {
                o.format = FileFormat::Csv;
                o.mode = ParseMode::FailFast;
                o.suffix = Some(".csv".into());
            })
        };
        let mut src = csv(dir.path());
        src.project(&["name"]);
        assert_eq!(strings(&read_all(&mut src).unwrap(), "name"), [Some("a".into())]);
        write(dir.path(), "d.csv", "id,name,n\n1,b\n", 11);
        let mut src = csv(dir.path());
        src.project(&["name"]);
        assert!(matches!(read_all(&mut src), Err(Error::MalformedInput(_))));
    }

    #[test]
    fn parse_modes_work_under_a_projection() {
        // BAD_JSON: {"id": 1, "name": "a"} / not json / {"id": "x", "name": "b"} / [1] / {"id": 5}
        let (_dir, mut src) = with_bad_file(FileFormat::Json, schema(true, true), ParseMode::Permissive);
        src.project(&["name"]);
        let batches = read_all(&mut src).unwrap();
        assert_eq!(strings(&batches, "name"), [Some("a".into()), None, Some("b".into()), None, None]);
        // The corrupt-record column is not read: null. `id` is not read either: zeros.
        assert_eq!(strings(&batches, "_corrupt_record"), vec![None; 5]);
        assert_eq!(ids(&batches), [Some(0); 5]);

        let (_dir, mut src) = with_bad_file(FileFormat::Json, schema(true, true), ParseMode::Permissive);
        src.project(&["name", "_corrupt_record"]);
        let batches = read_all(&mut src).unwrap();
        assert_eq!(
            strings(&batches, "_corrupt_record"),
            [None, Some("not json".into()), None, Some("[1]".into()), None]
        );

        // A non-nullable field outside the projection does not stop PERMISSIVE.
        let (_dir, mut src) = with_bad_file(FileFormat::Json, schema(false, false), ParseMode::Permissive);
        src.project(&["name"]);
        assert_eq!(rows(&read_all(&mut src).unwrap()), 5);

        let (_dir, mut src) = with_bad_file(FileFormat::Json, schema(false, false), ParseMode::DropMalformed);
        src.project(&["name"]);
        assert_eq!(strings(&read_all(&mut src).unwrap(), "name"), [Some("a".into()), Some("b".into()), None]);

        // BAD_CSV: 1,a / 2,b,extra / x,c / 5,e
        let (_dir, mut src) = with_bad_file(FileFormat::Csv, schema(true, true), ParseMode::DropMalformed);
        src.project(&["name"]);
        assert_eq!(
            strings(&read_all(&mut src).unwrap(), "name"),
            [Some("a".into()), Some("c".into()), Some("e".into())]
        );
    }

    /// A measurement, not a check: rows per second reading Nexmark-like bids (7 fields), all of
    /// them and then two, with arrow-json alone and with the fast path (`json_fast`).
    /// `cargo test --release -p flowgate --lib json_fast_path_speed -- --ignored --nocapture`
    #[test]
    #[ignore = "a measurement; run it in release mode"]
    fn json_fast_path_speed() {
        const ROWS: usize = 500_000;
        let dir = tempfile::tempdir().unwrap();
        let mut text = String::with_capacity(ROWS * 260);
        let channels = ["Google", "Facebook", "Baidu", "Apple"];
        let filler =
            "abcdefghijklmnopqrstuvwxyz0123456789 ABCDEFGHIJKLMNOPQRSTUVWXYZ abcdefghijklmnopqrstuvwxyz0123456789";
        for i in 0..ROWS {
            let channel = channels[i % 4];
            let extra = &filler[..30 + (i * 7919) % 71];
            text.push_str(&format!(
                "{{\"auction\": {}, \"bidder\": {}, \"price\": {}, \"channel\": \"{channel}\", \
                 \"url\": \"https://www.nexmark.com/{channel}/item.htm?query=1&channel_id={}\", \
                 \"date_time\": \"2024-01-01T12:{:02}:{:02}.{:06}Z\", \"extra\": \"{extra}\"}}\n",
                1000 + i % 5000,
                2000 + (i * 31) % 100_000,
                (i * 7) % 10_000_000,
                i % 1000,
                (i / 60_000) % 60,
                (i / 1000) % 60,
                (i * 997) % 1_000_000,
            ));
        }
        write(dir.path(), "bids.json", &text, 10);
        let schema = Arc::new(Schema::new(vec![
            Field::new("auction", DataType::Int64, false),
            Field::new("bidder", DataType::Int64, false),
            Field::new("price", DataType::Int64, false),
            Field::new("channel", DataType::Utf8, false),
            Field::new("url", DataType::Utf8, false),
            Field::new("date_time", ts_type(), false),
            Field::new("extra", DataType::Utf8, false),
        ]));
        println!("{ROWS} bids, {:.1} MB", text.len() as f64 / 1e6);
        for columns in [None, Some(&["auction", "price"][..])] {
            let mut results = Vec::new();
            for fast in [false, true] {
                let mut src = source(dir.path(), schema.clone(), |_| {});
                if let Some(columns) = columns {
                    src.project(columns);
                }
                if let Ok(layout) = &mut src.layout {
                    assert!(layout.json_fast.is_some());
                    if !fast {
                        layout.json_fast = None;
                    }
                }
                let end = src.latest_offset(None, ReadLimit::Default).unwrap().unwrap();
                let mut best = f64::MAX;
                let mut batches = Vec::new();
                for _ in 0..5 {
                    let started = std::time::Instant::now();
                    batches = src.get_batch(None, &end).unwrap();
                    best = best.min(started.elapsed().as_secs_f64());
                }
                assert_eq!(rows(&batches), ROWS);
                // The decoding step alone, without reading the file and splitting it in lines.
                let layout = src.layout().unwrap();
                let lines = lines(text.as_bytes(), FileFormat::Json);
                let mut best_decode = f64::MAX;
                for _ in 0..5 {
                    let started = std::time::Instant::now();
                    let decoded = src.decode(layout, text.as_bytes(), &lines).unwrap();
                    best_decode = best_decode.min(started.elapsed().as_secs_f64());
                    assert_eq!(rows(&decoded), ROWS);
                }
                println!(
                    "{:?} {}: get_batch {:.2} M rows/s, decode alone {:.2} M rows/s ({:.0} MB/s) (best of 5)",
                    columns.unwrap_or(&["all 7"]),
                    if fast { "fast path" } else { "arrow-json" },
                    ROWS as f64 / best / 1e6,
                    ROWS as f64 / best_decode / 1e6,
                    text.len() as f64 / best_decode / 1e6,
                );
                results.push(arrow_select::concat::concat_batches(&batches[0].schema(), &batches).unwrap());
            }
            assert_eq!(results[0], results[1], "both paths give the same rows");
        }
    }
}
