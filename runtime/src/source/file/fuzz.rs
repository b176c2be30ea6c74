//! Entry points for the fuzz targets of the file decoders (`fuzz/fuzz_targets/`), and their
//! corpus replay in `crate::fuzzing`: each takes arbitrary bytes, must never panic, and
//! returns `Err` with a description when an invariant does not hold (the target panics on it).

use std::path::Path;
use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};

use super::json_fast::FastPlan;
use super::{arrow_json_decode, lines, FileFormat, FileOptions, FileSource, ParseMode, DECODE_BATCH_ROWS};

fn schemas() -> Vec<SchemaRef> {
    let ts = DataType::Timestamp(TimeUnit::Microsecond, Some("+00:00".into()));
    let all = |nullable: bool| {
        Arc::new(Schema::new(vec![
            Field::new("i", DataType::Int64, nullable),
            Field::new("j", DataType::Int32, nullable),
            Field::new("f", DataType::Float64, nullable),
            Field::new("b", DataType::Boolean, nullable),
            Field::new("s", DataType::Utf8, nullable),
            Field::new("t", ts.clone(), nullable),
            Field::new("d", DataType::Date32, nullable),
        ]))
    };
    vec![all(true), all(false), Arc::new(Schema::new(vec![Field::new("s", DataType::Utf8, true)]))]
}

/// The JSON-lines fast path against arrow-json: whenever the fast path decodes `data` (taken
/// as a file of JSON lines, under several schemas and batch sizes), arrow-json must decode the
/// same lines without error into equal batches. The first byte picks the batch size.
pub fn json_fast_path(data: &[u8]) -> Result<(), String> {
    let (batch_rows, data) = match data.split_first() {
        Some((b, rest)) => (usize::from(*b % 8) + 1, rest),
        None => return Ok(()),
    };
    let lines = lines(data, FileFormat::Json);
    for schema in schemas() {
        let Some(plan) = FastPlan::new(&schema, false) else { return Err("no plan".into()) };
        for rows in [batch_rows, DECODE_BATCH_ROWS] {
            let Some(fast) = plan.decode(data, &lines, rows) else { continue };
            if fast.iter().any(|b| b.num_rows() > rows) {
                return Err(format!("a fast batch has more than {rows} rows"));
            }
            let slow = arrow_json_decode(schema.clone(), data, &lines, None)
                .map_err(|e| format!("the fast path took lines arrow-json rejects: {e}"))?;
            let concat =
                |b: &[RecordBatch]| arrow_select::concat::concat_batches(&schema, b).map_err(|e| e.to_string());
            if concat(&fast)? != concat(&slow)? {
                return Err(format!("fast and arrow-json batches differ for schema {schema:?}"));
            }
        }
    }
    Ok(())
}

/// The JSON, CSV and text decoders of the file source on `data` as a whole file, under every
/// parse mode: none may panic; PERMISSIVE gives one row per line (the corrupt ones with their
/// text); DROPMALFORMED at most as many; FAILFAST fails exactly when DROPMALFORMED dropped a
/// line, and otherwise gives the same rows. The first byte picks the format and options.
pub fn file_decoders(data: &[u8]) -> Result<(), String> {
    let Some((&pick, data)) = data.split_first() else { return Ok(()) };
    let format = match pick % 3 {
        0 => FileFormat::Json,
        1 => FileFormat::Csv,
        _ => FileFormat::Text,
    };
    let schema = match format {
        FileFormat::Text => Arc::new(Schema::new(vec![Field::new("value", DataType::Utf8, true)])),
        _ => Arc::new(Schema::new(vec![
            Field::new("i", DataType::Int64, true),
            Field::new("s", DataType::Utf8, true),
            Field::new("t", DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())), true),
            Field::new("_corrupt_record", DataType::Utf8, true),
        ])),
    };
    let path = Path::new("fuzz-input");
    let run = |mode: ParseMode| {
        let mut opts = FileOptions::new(path.to_path_buf(), schema.clone());
        opts.format = format;
        opts.mode = mode;
        opts.csv_header = pick & 8 != 0;
        opts.case_sensitive = pick & 16 != 0;
        if pick & 32 != 0 {
            opts.csv_delimiter = b';';
        }
        let source = FileSource::new(opts);
        let layout = source.layout()?;
        source.decode_file(layout, path, data).map(|b| b.iter().map(RecordBatch::num_rows).sum::<usize>())
    };
    let permissive = run(ParseMode::Permissive);
    let dropped = run(ParseMode::DropMalformed).map_err(|e| format!("DROPMALFORMED failed: {e}"))?;
    let failfast = run(ParseMode::FailFast);
    let bom_free = data.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(data);
    let mut expected = lines(bom_free, format).len();
    if format == FileFormat::Csv && pick & 8 != 0 && expected > 0 {
        expected -= 1;
    }
    let permissive = permissive.map_err(|e| format!("PERMISSIVE failed: {e}"))?;
    if format != FileFormat::Csv && permissive != expected {
        // CSV may hold quoted line breaks: one row for several lines.
        return Err(format!("PERMISSIVE gave {permissive} rows for {expected} lines"));
    }
    if dropped > permissive {
        return Err(format!("DROPMALFORMED gave {dropped} rows, PERMISSIVE {permissive}"));
    }
    match failfast {
        Ok(rows) if rows != dropped => Err(format!("FAILFAST gave {rows} rows, DROPMALFORMED {dropped}")),
        Ok(_) => Ok(()),
        Err(crate::Error::MalformedInput(_)) if dropped < permissive => Ok(()),
        Err(crate::Error::MalformedInput(e)) => Err(format!("FAILFAST failed ({e}) but no line was dropped")),
        Err(e) => Err(format!("FAILFAST failed with something else than malformed input: {e}")),
    }
}
