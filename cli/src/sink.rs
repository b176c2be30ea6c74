//! `flowgate sink read DIR`: the rows of a file sink's committed batches, through its manifest
//! (`_manifest/<batch>` lists the batch's data files; files of a batch that never committed are
//! not listed, so not read).

use std::fs::File;
use std::io::{BufReader, Seek};
use std::path::Path;
use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_schema::{DataType, Field, Schema};
use flowgate::{Error, Result};
use serde_json::Value;

/// Rows per decoded Arrow batch when reading.
const READ_BATCH_ROWS: usize = 8192;
/// Lines sampled to infer a JSON or CSV data file's column types for display.
const INFER_LINES: usize = 1000;

fn read_file(path: &Path) -> Result<Vec<RecordBatch>> {
    let io = |e: std::io::Error| Error::io(format!("reading {}", path.display()), e);
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or_default();
    let mut file = File::open(path).map_err(io)?;
    match ext {
        "json" => {
            let (schema, _) =
                arrow_json::reader::infer_json_schema_from_seekable(BufReader::new(&mut file), Some(INFER_LINES))?;
            file.rewind().map_err(io)?;
            let reader = arrow_json::ReaderBuilder::new(Arc::new(schema))
                .with_batch_size(READ_BATCH_ROWS)
                .build(BufReader::new(file))?;
            Ok(reader.collect::<std::result::Result<Vec<_>, _>>()?)
        }
        "csv" => {
            let format = arrow_csv::reader::Format::default().with_header(true);
            let (schema, _) = format.infer_schema(BufReader::new(&mut file), Some(INFER_LINES))?;
            file.rewind().map_err(io)?;
            let reader = arrow_csv::ReaderBuilder::new(Arc::new(schema))
                .with_format(format)
                .with_batch_size(READ_BATCH_ROWS)
                .build(file)?;
            Ok(reader.collect::<std::result::Result<Vec<_>, _>>()?)
        }
        "parquet" => {
            let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
                .and_then(|b| b.with_batch_size(READ_BATCH_ROWS).build())
                .map_err(|e| {
                    Error::MalformedInput(format!("{} is not a readable Parquet file: {e}", path.display()))
                })?;
            Ok(reader.collect::<std::result::Result<Vec<_>, _>>()?)
        }
        other => Err(Error::Plan(format!(
            "{}: unknown data file type `.{other}` (the file sink writes .json, .csv and .parquet)",
            path.display()
        ))),
    }
}

/// `UTC` time zones as `+00:00`: the same instant, in the form Arrow's printers read without
/// a time-zone database (Parquet files name UTC by name).
fn utc_as_offset(dt: &DataType) -> DataType {
    match dt {
        DataType::Timestamp(u, Some(tz)) if tz.eq_ignore_ascii_case("utc") => {
            DataType::Timestamp(*u, Some("+00:00".into()))
        }
        DataType::Struct(fields) => DataType::Struct(
            fields.iter().map(|f| Arc::new(f.as_ref().clone().with_data_type(utc_as_offset(f.data_type())))).collect(),
        ),
        dt => dt.clone(),
    }
}

fn printable(batch: RecordBatch) -> Result<RecordBatch> {
    let schema = batch.schema();
    if schema.fields().iter().all(|f| utc_as_offset(f.data_type()) == *f.data_type()) {
        return Ok(batch);
    }
    let fields: Vec<Field> =
        schema.fields().iter().map(|f| f.as_ref().clone().with_data_type(utc_as_offset(f.data_type()))).collect();
    let cols = batch
        .columns()
        .iter()
        .zip(&fields)
        .map(|(c, f)| arrow_cast::cast(c, f.data_type()))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    Ok(RecordBatch::try_new(Arc::new(Schema::new(fields)), cols)?)
}

/// Rows as JSON objects (Arrow's JSON writer, explicit nulls).
fn json_rows(batches: &[RecordBatch]) -> Result<Vec<Value>> {
    let mut buf = Vec::new();
    let mut w = arrow_json::WriterBuilder::new()
        .with_explicit_nulls(true)
        .build::<_, arrow_json::writer::LineDelimited>(&mut buf);
    for b in batches {
        w.write(b)?;
    }
    w.finish()?;
    drop(w);
    let text = String::from_utf8_lossy(&buf);
    Ok(text.lines().filter_map(|l| serde_json::from_str(l).ok()).collect())
}

/// `flowgate sink read DIR`.
pub fn read(dir: &Path, as_json: bool) -> Result<()> {
    if !dir.join("_manifest").is_dir() {
        return Err(Error::Plan(format!(
            "{} has no `_manifest` directory: it is not the output directory of a flowgate file sink (or no \
             batch has committed yet)",
            dir.display()
        )));
    }
    let committed = flowgate::sink::file::read_committed(dir)?;
    let mut total = 0usize;
    for (batch, files) in &committed {
        let mut batches = Vec::new();
        for f in files {
            for b in read_file(f)? {
                batches.push(printable(b)?);
            }
        }
        let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
        total += rows;
        if as_json {
            for mut row in json_rows(&batches)? {
                if let Value::Object(m) = &mut row {
                    m.insert("_batch".into(), Value::from(*batch));
                }
                out!("{row}");
            }
        } else {
            out!("batch {batch}: {rows} rows in {} files", files.len());
            if rows > 0 {
                out!("{}", arrow_cast::pretty::pretty_format_batches(&batches)?);
            }
        }
    }
    if !as_json {
        out!("{} committed batches, {total} rows", committed.len());
    }
    Ok(())
}
