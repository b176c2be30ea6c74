//! The file sink: each micro-batch's rows as files in an output directory, exactly once
//! through a manifest (Spark's file sink keeps `_spark_metadata` for the same purpose).
//!
//! Layout:
//!
//! ```text
//! <output>/part-<batch:08>-<n>.<json|csv|parquet>   data files
//! <output>/_manifest/<batch>                        {"batch": N, "files": [...], "rows": R}
//! ```
//!
//! A batch's data files are written first (each to a hidden temporary name, fsynced, renamed),
//! then its manifest entry (atomically, the same way): the manifest entry is the commit. A
//! reader follows the manifest ([`read_committed`]) and never sees a file of an uncommitted
//! batch. When the engine delivers a batch again after a crash, a batch whose manifest entry
//! exists is skipped, and one without is written afresh after deleting its leftover files.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::TimestampMicrosecondType;
use arrow_array::{Array, ArrayRef, RecordBatch, StringArray, StructArray};
use arrow_schema::{DataType, Field, Fields, Schema, TimeUnit};
use serde_json::{json, Value};

use super::SinkImpl;
use crate::checkpoint::{FsStorage, Storage};
use crate::error::{Error, Result};
use crate::OutputMode;

/// Rows per data file: a batch larger than this is split into several files (1 Mi rows keeps
/// files in the tens of megabytes for typical rows, as Spark's `maxRecordsPerFile` users pick).
pub const MAX_ROWS_PER_FILE: usize = 1 << 20;

/// Output format of the file sink.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SinkFormat {
    /// JSON lines; timestamps as `2024-01-01T12:00:00Z` (Spark's `to_json` form).
    Json,
    /// CSV with a header line; timestamps as in JSON.
    Csv,
    /// Parquet (native types).
    Parquet,
}

impl SinkFormat {
    fn extension(self) -> &'static str {
        match self {
            SinkFormat::Json => "json",
            SinkFormat::Csv => "csv",
            SinkFormat::Parquet => "parquet",
        }
    }
}

/// Writes batches as files under a directory, committed through a manifest.
pub struct FileSink {
    storage: Arc<dyn Storage>,
    format: SinkFormat,
}

/// The manifest's directory in the output.
const MANIFEST: &str = "_manifest";

impl FileSink {
    /// A sink writing `format` files into `output` (created if needed).
    pub fn new(output: impl Into<PathBuf>, format: SinkFormat) -> Self {
        Self::in_storage(Arc::new(FsStorage::new(output)), format)
    }

    /// A sink writing `format` files into the root of `storage`.
    pub fn in_storage(storage: Arc<dyn Storage>, format: SinkFormat) -> Self {
        FileSink { storage, format }
    }

    /// One data file: encoded in memory (a file holds at most [`MAX_ROWS_PER_FILE`] rows), then
    /// written to a temporary name, fsynced and renamed (its directory is fsynced by the caller).
    fn write_file(&self, name: &str, batch: &RecordBatch) -> Result<()> {
        let what = || self.storage.describe(name);
        let mut w = Vec::new();
        match self.format {
            SinkFormat::Json => {
                let batch = textual(batch, false)?;
                let mut writer = arrow_json::WriterBuilder::new()
                    .with_explicit_nulls(true)
                    .build::<_, arrow_json::writer::LineDelimited>(&mut w);
                writer.write(&batch)?;
                writer.finish()?;
            }
            SinkFormat::Csv => {
                let batch = textual(batch, true)?;
                let mut writer = arrow_csv::WriterBuilder::new().with_header(true).build(&mut w);
                writer.write(&batch)?;
            }
            SinkFormat::Parquet => {
                let mut writer = parquet::arrow::ArrowWriter::try_new(&mut w, batch.schema(), None)
                    .map_err(|e| Error::Execution(format!("parquet writer for {}: {e}", what())))?;
                writer.write(batch).map_err(|e| Error::Execution(format!("writing parquet {}: {e}", what())))?;
                writer.close().map_err(|e| Error::Execution(format!("closing parquet {}: {e}", what())))?;
            }
        }
        self.storage.write_raw_unsynced(name, &w)
    }
}

/// Timestamps (also inside structs such as windows) as Spark-style strings, for text formats;
/// with `flatten` (CSV, which has no nesting) a struct column `window` becomes `window_start`,
/// `window_end`.
pub(crate) fn textual(batch: &RecordBatch, flatten: bool) -> Result<RecordBatch> {
    fn convert(field: &Field, col: &ArrayRef) -> Result<(Field, ArrayRef)> {
        match col.data_type() {
            DataType::Timestamp(TimeUnit::Microsecond, _) => {
                let ts = col.as_primitive::<TimestampMicrosecondType>();
                let strings: StringArray =
                    (0..ts.len()).map(|i| (!ts.is_null(i)).then(|| spark_timestamp(ts.value(i)))).collect();
                Ok((Field::new(field.name(), DataType::Utf8, field.is_nullable()), Arc::new(strings)))
            }
            DataType::Struct(_) => {
                let s = col.as_struct();
                let (fields, cols): (Vec<Field>, Vec<ArrayRef>) = s
                    .fields()
                    .iter()
                    .zip(s.columns())
                    .map(|(f, c)| convert(f, c))
                    .collect::<Result<Vec<_>>>()?
                    .into_iter()
                    .unzip();
                let fields = Fields::from(fields);
                let arr = StructArray::try_new(fields.clone(), cols, s.nulls().cloned())?;
                Ok((Field::new(field.name(), DataType::Struct(fields), field.is_nullable()), Arc::new(arr)))
            }
            _ => Ok((field.clone(), col.clone())),
        }
    }
    let mut fields = Vec::new();
    let mut cols = Vec::new();
    for (f, c) in batch.schema().fields().iter().zip(batch.columns()) {
        let (f, c) = convert(f, c)?;
        match (flatten, c.data_type()) {
            (true, DataType::Struct(inner)) => {
                let s = c.as_struct();
                for (inner_f, inner_c) in inner.iter().zip(s.columns()) {
                    fields.push(Field::new(
                        format!("{}_{}", f.name(), inner_f.name()),
                        inner_f.data_type().clone(),
                        true,
                    ));
                    cols.push(inner_c.clone());
                }
            }
            _ => {
                fields.push(f);
                cols.push(c);
            }
        }
    }
    Ok(RecordBatch::try_new(Arc::new(Schema::new(fields)), cols)?)
}

/// `2024-01-01T12:00:00Z`, with `.ffffff` (trailing zeros trimmed) only when needed.
pub fn spark_timestamp(micros: i64) -> String {
    format!("{}Z", crate::Timestamp(micros).to_string().replacen(' ', "T", 1))
}

impl SinkImpl for FileSink {
    fn description(&self) -> String {
        format!("FileSink[{}]", self.storage.describe(""))
    }

    fn add_batch(&mut self, batch_id: u64, batch: &RecordBatch, mode: OutputMode) -> Result<()> {
        if mode == OutputMode::Complete {
            return Err(Error::Plan(
                "the file sink does not support complete mode (as in Spark): use append or update".into(),
            ));
        }
        let manifest = format!("{MANIFEST}/{batch_id}");
        if self.storage.read(&manifest)?.is_some() {
            // Committed before a restart: already delivered exactly once.
            return Ok(());
        }
        let prefix = format!("part-{batch_id:08}-");
        let listed =
            self.storage.list_all("").map_err(|e| Error::io(format!("listing {}", self.storage.describe("")), e))?;
        for name in listed {
            if name.starts_with(&prefix) || name.starts_with(&format!(".{prefix}")) {
                self.storage
                    .remove(&name)
                    .map_err(|err| Error::io(format!("removing leftover {}", self.storage.describe(&name)), err))?;
            }
        }
        let mut files = Vec::new();
        let mut offset = 0;
        while offset < batch.num_rows() {
            let len = (batch.num_rows() - offset).min(MAX_ROWS_PER_FILE);
            let name = format!("{prefix}{}.{}", files.len(), self.format.extension());
            self.write_file(&name, &batch.slice(offset, len))?;
            files.push(name);
            offset += len;
        }
        // The data files' renames must be durable before the manifest entry that names them:
        // otherwise a power loss can keep the entry and lose a file (found by the crash-point
        // sweep, `examples/tests/crash_points.rs`, with unsynced renames undone).
        if !files.is_empty() {
            self.storage.sync_dir_checked("")?;
        }
        let entry = json!({ "batch": batch_id, "files": files, "rows": batch.num_rows() });
        self.storage.write(&manifest, entry.to_string().as_bytes())
    }
}

/// The committed batches of a file-sink output, in batch order, with their data files: what a
/// reader that follows the manifest sees. Files of uncommitted batches are not listed.
pub fn read_committed(output: &Path) -> Result<Vec<(u64, Vec<PathBuf>)>> {
    let batches = read_committed_in(&FsStorage::new(output))?;
    Ok(batches.into_iter().map(|(b, files)| (b, files.iter().map(|f| output.join(f)).collect())).collect())
}

/// [`read_committed`] of an output in a [`Storage`]: the data files' names in it.
pub fn read_committed_in(storage: &dyn Storage) -> Result<Vec<(u64, Vec<String>)>> {
    let mut out = Vec::new();
    for name in storage.list(MANIFEST)? {
        let Ok(batch) = name.parse::<u64>() else { continue };
        let rel = format!("{MANIFEST}/{name}");
        let bytes = storage.read(&rel)?.unwrap_or_default();
        let v: Value = serde_json::from_slice(&bytes)
            .map_err(|err| Error::Checkpoint(format!("{}: not valid JSON: {err}", storage.describe(&rel))))?;
        let files = v["files"]
            .as_array()
            .ok_or_else(|| Error::Checkpoint(format!("{}: no \"files\" list", storage.describe(&rel))))?
            .iter()
            .filter_map(|f| f.as_str().map(str::to_string))
            .collect();
        out.push((batch, files));
    }
    out.sort_by_key(|(b, _)| *b);
    Ok(out)
}

/// The rows of every committed batch of a JSON-lines output, as JSON objects.
pub fn read_committed_json_rows(output: &Path) -> Result<Vec<(u64, Vec<Value>)>> {
    read_committed_json_rows_in(&FsStorage::new(output))
}

/// [`read_committed_json_rows`] of an output in a [`Storage`]. A committed data file that is
/// missing is an error (the manifest names only durable files).
pub fn read_committed_json_rows_in(storage: &dyn Storage) -> Result<Vec<(u64, Vec<Value>)>> {
    let mut out = Vec::new();
    for (batch, files) in read_committed_in(storage)? {
        let mut rows = Vec::new();
        for f in files {
            let bytes = storage
                .read_raw(&f)
                .map_err(|e| Error::io(format!("reading {}", storage.describe(&f)), e))?
                .ok_or_else(|| {
                    Error::io(format!("reading {}", storage.describe(&f)), std::io::ErrorKind::NotFound.into())
                })?;
            let text = String::from_utf8(bytes)
                .map_err(|e| Error::MalformedInput(format!("{}: not UTF-8: {e}", storage.describe(&f))))?;
            for line in text.lines().filter(|l| !l.trim().is_empty()) {
                rows.push(
                    serde_json::from_str(line)
                        .map_err(|e| Error::MalformedInput(format!("{}: bad JSON line: {e}", storage.describe(&f))))?,
                );
            }
        }
        out.push((batch, rows));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{ColumnType, Timestamp};
    use crate::window::Window;
    use std::fs::{self, File};

    fn batch() -> RecordBatch {
        let mut wb = Window::new_builder(2);
        Window::append(&mut wb, Window::new(Timestamp(0), Timestamp(60_000_000)));
        Window::append(&mut wb, Window::new(Timestamp(60_000_000), Timestamp(120_000_000)));
        let schema = Arc::new(Schema::new(vec![
            Field::new("window", Window::data_type(), false),
            Field::new("key", DataType::Utf8, true),
            Field::new("count", DataType::Int64, false),
        ]));
        RecordBatch::try_new(
            schema,
            vec![
                Window::finish(&mut wb),
                Arc::new(StringArray::from(vec![Some("a"), None])),
                Arc::new(arrow_array::Int64Array::from(vec![3, 4])),
            ],
        )
        .unwrap()
    }

    #[test]
    fn json_round_trip_and_idempotent_redelivery() {
        let dir = tempfile::tempdir().unwrap();
        let mut sink = FileSink::new(dir.path(), SinkFormat::Json);
        sink.add_batch(0, &batch(), OutputMode::Update).unwrap();
        let rows = read_committed_json_rows(dir.path()).unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(
            rows[0].1[0],
            json!({"window": {"start": "1970-01-01T00:00:00Z", "end": "1970-01-01T00:01:00Z"}, "key": "a", "count": 3})
        );
        assert_eq!(rows[0].1[1]["key"], Value::Null, "nulls are written explicitly");
        // The same batch again (a re-run after a crash): nothing changes.
        sink.add_batch(0, &batch(), OutputMode::Update).unwrap();
        assert_eq!(read_committed(dir.path()).unwrap()[0].1.len(), 1);
        let parts = fs::read_dir(dir.path())
            .unwrap()
            .filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().starts_with("part-"))
            .count();
        assert_eq!(parts, 1);
    }

    #[test]
    fn leftovers_of_a_crashed_batch_are_replaced_and_ignored_by_readers() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("part-00000007-0.json"), "{\"garbage\": true}\n").unwrap();
        fs::write(dir.path().join("part-00000007-5.json"), "{\"garbage\": true}\n").unwrap();
        assert!(read_committed(dir.path()).unwrap().is_empty(), "files without a manifest entry are not data");
        let mut sink = FileSink::new(dir.path(), SinkFormat::Json);
        sink.add_batch(7, &batch(), OutputMode::Append).unwrap();
        assert!(!dir.path().join("part-00000007-5.json").exists());
        let rows = read_committed_json_rows(dir.path()).unwrap();
        assert_eq!(rows[0].0, 7);
        assert_eq!(rows[0].1.len(), 2);
    }

    #[test]
    fn csv_and_parquet_are_readable() {
        let dir = tempfile::tempdir().unwrap();
        let mut sink = FileSink::new(dir.path().join("csv"), SinkFormat::Csv);
        sink.add_batch(0, &batch(), OutputMode::Append).unwrap();
        let files = &read_committed(&dir.path().join("csv")).unwrap()[0].1;
        let text = fs::read_to_string(&files[0]).unwrap();
        assert!(
            text.starts_with("window_start,window_end,key,count\n1970-01-01T00:00:00Z,1970-01-01T00:01:00Z,a,3\n"),
            "{text}"
        );

        let mut sink = FileSink::new(dir.path().join("pq"), SinkFormat::Parquet);
        sink.add_batch(0, &batch(), OutputMode::Append).unwrap();
        let files = &read_committed(&dir.path().join("pq")).unwrap()[0].1;
        let reader =
            parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(File::open(&files[0]).unwrap())
                .unwrap()
                .build()
                .unwrap();
        let back: Vec<RecordBatch> = reader.collect::<std::result::Result<_, _>>().unwrap();
        assert_eq!(back[0].num_rows(), 2);
        assert_eq!(back[0].column(2).as_primitive::<arrow_array::types::Int64Type>().value(1), 4);
    }

    #[test]
    fn complete_mode_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut sink = FileSink::new(dir.path(), SinkFormat::Json);
        let e = sink.add_batch(0, &batch(), OutputMode::Complete).unwrap_err().to_string();
        assert!(e.contains("complete mode"), "{e}");
    }
}
