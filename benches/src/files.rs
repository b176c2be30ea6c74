//! Input files of the `compare` benchmark: Arrow batches written as text lines, JSON lines or
//! Parquet, split in order over a few `part-NNNNN.<ext>` files of a directory (the bytes both
//! flowgate and Spark read).

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int64Type, TimestampMicrosecondType};
use arrow_array::{Array, RecordBatch};
use arrow_schema::DataType;
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;
use rayon::prelude::*;

/// How a directory's rows are written.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Encoding {
    /// The batch's one string column, a line per row (Spark's `text` source).
    Text,
    /// One JSON object per line: integers, doubles, strings, timestamps as RFC 3339 UTC with µs.
    Json,
    /// Parquet, snappy-compressed (Spark's default codec), timestamps as `TIMESTAMP(MICROS,
    /// UTC)` (the Arrow type `Timestamp(µs, "UTC")`).
    Parquet,
}

impl Encoding {
    /// The encoding's name: also the directory of its files within a data set.
    pub fn name(self) -> &'static str {
        match self {
            Encoding::Text => "text",
            Encoding::Json => "json",
            Encoding::Parquet => "parquet",
        }
    }

    /// The files' extension.
    pub fn ext(self) -> &'static str {
        match self {
            Encoding::Text => "txt",
            Encoding::Json => "json",
            Encoding::Parquet => "parquet",
        }
    }
}

/// Rows per Parquet row group: parquet-rs's default (`DEFAULT_MAX_ROW_GROUP_ROW_COUNT`, 1 Mi
/// rows), so the files of the benchmark's sizes hold one or a few row groups each.
const PARQUET_ROW_GROUP_ROWS: usize = 1 << 20;

/// The rows of `batches`, in order, cut into at most `files` runs of equal length (the last one
/// shorter), as slices of the batches.
fn split(batches: &[RecordBatch], files: usize) -> Vec<Vec<RecordBatch>> {
    let total: usize = batches.iter().map(RecordBatch::num_rows).sum();
    let per_file = total.div_ceil(files.max(1)).max(1);
    let mut out: Vec<Vec<RecordBatch>> = Vec::new();
    let mut room = 0;
    for b in batches {
        let mut at = 0;
        while at < b.num_rows() {
            if room == 0 {
                out.push(Vec::new());
                room = per_file;
            }
            let n = room.min(b.num_rows() - at);
            out.last_mut().expect("a file").push(b.slice(at, n));
            at += n;
            room -= n;
        }
    }
    out
}

/// Writes the rows of `batches` into `dir` (created) as at most `files` files
/// `part-00000.<ext>`, … in row order.
///
/// The files are written in parallel, then given modification times one second apart in name
/// order: a streaming file source takes new files oldest first (Spark by modification time
/// alone, flowgate by time then name), and with one file per micro-batch the order decides
/// which rows are late.
pub fn write(dir: &Path, encoding: Encoding, batches: &[RecordBatch], files: usize) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let parts = split(batches, files);
    let paths: Vec<PathBuf> = (0..parts.len()).map(|i| dir.join(format!("part-{i:05}.{}", encoding.ext()))).collect();
    parts.par_iter().zip(&paths).try_for_each(|(slices, path)| {
        let file = std::fs::File::create(path)?;
        match encoding {
            Encoding::Parquet => write_parquet(file, slices),
            Encoding::Text | Encoding::Json => write_lines(file, encoding, slices),
        }
    })?;
    let now = SystemTime::now();
    for (i, path) in paths.iter().enumerate() {
        let age = Duration::from_secs((paths.len() - i) as u64);
        std::fs::File::options().write(true).open(path)?.set_modified(now - age)?;
    }
    Ok(())
}

fn write_lines(file: std::fs::File, encoding: Encoding, slices: &[RecordBatch]) -> std::io::Result<()> {
    let mut w = std::io::BufWriter::with_capacity(1 << 20, file);
    let mut line = String::new();
    for b in slices {
        for i in 0..b.num_rows() {
            line.clear();
            if encoding == Encoding::Text {
                line.push_str(b.column(0).as_string::<i32>().value(i));
            } else {
                json_row(b, i, &mut line);
            }
            line.push('\n');
            w.write_all(line.as_bytes())?;
        }
    }
    w.flush()
}

fn write_parquet(file: std::fs::File, slices: &[RecordBatch]) -> std::io::Result<()> {
    let Some(first) = slices.first() else { return Ok(()) };
    let props = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .set_max_row_group_row_count(Some(PARQUET_ROW_GROUP_ROWS))
        .build();
    let mut w = ArrowWriter::try_new(file, first.schema(), Some(props)).map_err(std::io::Error::other)?;
    for b in slices {
        w.write(b).map_err(std::io::Error::other)?;
    }
    w.close().map_err(std::io::Error::other)?;
    Ok(())
}

/// Row `i` of `b` as a JSON object (integers, doubles, strings, UTC timestamps with µs).
pub fn json_row(b: &RecordBatch, i: usize, out: &mut String) {
    out.push('{');
    for (n, (field, col)) in b.schema_ref().fields().iter().zip(b.columns()).enumerate() {
        if n > 0 {
            out.push(',');
        }
        json_string(field.name(), out);
        out.push(':');
        if col.is_null(i) {
            out.push_str("null");
            continue;
        }
        match col.data_type() {
            DataType::Int64 => write!(out, "{}", col.as_primitive::<Int64Type>().value(i)).expect("write"),
            DataType::Float64 => write!(out, "{:?}", col.as_primitive::<Float64Type>().value(i)).expect("write"),
            DataType::Utf8 => json_string(col.as_string::<i32>().value(i), out),
            DataType::Timestamp(..) => {
                out.push('"');
                rfc3339_micros(col.as_primitive::<TimestampMicrosecondType>().value(i), out);
                out.push('"');
            }
            other => panic!("no JSON writer for {other}"),
        }
    }
    out.push('}');
}

fn json_string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => write!(out, "\\u{:04x}", c as u32).expect("write"),
            c => out.push(c),
        }
    }
    out.push('"');
}

/// `micros` since the epoch as `YYYY-MM-DDTHH:MM:SS.ffffffZ` (UTC).
fn rfc3339_micros(micros: i64, out: &mut String) {
    let t = chrono::DateTime::from_timestamp_micros(micros).expect("timestamp in chrono's range");
    write!(out, "{}", t.format("%Y-%m-%dT%H:%M:%S%.6fZ")).expect("write");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nexmark::generator::{self, Auction, Bid, Generator, Kind, Person};
    use flowgate::prelude::Record;

    #[test]
    fn timestamps_format_as_rfc3339_with_micros() {
        let mut s = String::new();
        rfc3339_micros(1_704_110_400_000_100, &mut s);
        assert_eq!(s, "2024-01-01T12:00:00.000100Z");
        s.clear();
        rfc3339_micros(-1, &mut s);
        assert_eq!(s, "1969-12-31T23:59:59.999999Z");
        s.clear();
        rfc3339_micros(951_782_400_000_000, &mut s); // leap day
        assert_eq!(s, "2000-02-29T00:00:00.000000Z");
    }

    #[test]
    fn files_are_oldest_first_in_name_order() {
        let dir = tempfile::tempdir().unwrap();
        let b = Bid::to_batch(Generator::new(1).bids(2_000)).unwrap();
        write(dir.path(), Encoding::Json, &[b], 8).unwrap();
        let mut files: Vec<(SystemTime, String)> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                (e.metadata().unwrap().modified().unwrap(), e.file_name().into_string().unwrap())
            })
            .collect();
        files.sort();
        let names: Vec<&str> = files.iter().map(|(_, n)| n.as_str()).collect();
        assert_eq!(names.len(), 8);
        assert!(names.windows(2).all(|w| w[0] < w[1]), "{names:?}");
        assert!(files.windows(2).all(|w| w[0].0 < w[1].0));
    }

    #[test]
    fn rows_split_in_order_over_the_files() {
        let b = Bid::to_batch(generator::Generator::new(1).bids(500)).unwrap();
        let parts = split(&[b.slice(0, 100), b.slice(100, 360)], 8);
        let sizes: Vec<Vec<usize>> = parts.iter().map(|p| p.iter().map(RecordBatch::num_rows).collect()).collect();
        assert_eq!(sizes, [vec![58], vec![42, 16], vec![58], vec![58], vec![58], vec![58], vec![58], vec![54]]);
        assert_eq!(split(&[b.slice(0, 3)], 8).len(), 3);
        assert!(split(&[], 8).is_empty());
    }

    /// `schema` with naive timestamps: arrow-json parses RFC 3339 with an offset into one (as
    /// UTC) but knows no named time zone such as `UTC` without its chrono-tz feature.
    fn naive(schema: &arrow_schema::Schema) -> arrow_schema::SchemaRef {
        let fields: Vec<arrow_schema::Field> = schema
            .fields()
            .iter()
            .map(|f| match f.data_type() {
                DataType::Timestamp(unit, Some(_)) => {
                    f.as_ref().clone().with_data_type(DataType::Timestamp(*unit, None))
                }
                _ => f.as_ref().clone(),
            })
            .collect();
        std::sync::Arc::new(arrow_schema::Schema::new(fields))
    }

    /// Reads `dir`'s files back in order: JSON lines with arrow-json (timestamps read naive,
    /// then marked UTC), Parquet with the parquet crate.
    fn read_back(dir: &Path, encoding: Encoding, schema: arrow_schema::SchemaRef) -> RecordBatch {
        let mut paths: Vec<_> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
        paths.sort();
        let mut batches = Vec::new();
        for p in paths {
            let file = std::fs::File::open(&p).unwrap();
            if encoding == Encoding::Parquet {
                let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
                    .unwrap()
                    .build()
                    .unwrap();
                batches.extend(reader.map(Result::unwrap));
            } else {
                let reader =
                    arrow_json::ReaderBuilder::new(naive(&schema)).build(std::io::BufReader::new(file)).unwrap();
                for b in reader {
                    let columns = b
                        .unwrap()
                        .columns()
                        .iter()
                        .map(|c| match c.data_type() {
                            DataType::Timestamp(..) => std::sync::Arc::new(
                                c.as_primitive::<TimestampMicrosecondType>().clone().with_timezone("UTC"),
                            ) as arrow_array::ArrayRef,
                            _ => c.clone(),
                        })
                        .collect();
                    batches.push(RecordBatch::try_new(schema.clone(), columns).unwrap());
                }
            }
        }
        arrow_select::concat::concat_batches(&schema, &batches).unwrap()
    }

    #[test]
    fn json_lines_and_parquet_read_back_as_the_same_batches() {
        let g = Generator::new(generator::DEFAULT_SEED);
        let events = generator::events_for_bids(20_000);
        let dir = tempfile::tempdir().unwrap();
        for kind in Kind::ALL {
            let batches = g.batches(kind, events);
            // Several generated batches per file and files cutting across them.
            let batches: Vec<RecordBatch> = batches
                .iter()
                .flat_map(|b| (0..b.num_rows()).step_by(3_000).map(|s| b.slice(s, 3_000.min(b.num_rows() - s))))
                .collect();
            let schema = match kind {
                Kind::Person => Person::schema(),
                Kind::Auction => Auction::schema(),
                Kind::Bid => Bid::schema(),
            };
            let all = arrow_select::concat::concat_batches(&schema, &batches).unwrap();
            assert!(all.num_rows() > 400, "{kind:?}: {}", all.num_rows());
            for encoding in [Encoding::Json, Encoding::Parquet] {
                let d = dir.path().join(format!("{}-{}", kind.name(), encoding.ext()));
                write(&d, encoding, &batches, 3).unwrap();
                assert_eq!(std::fs::read_dir(&d).unwrap().count(), 3);
                let back = read_back(&d, encoding, schema.clone());
                assert_eq!(back.schema().fields(), all.schema().fields(), "{kind:?} {encoding:?}");
                assert_eq!(back.columns(), all.columns(), "{kind:?} {encoding:?}");
            }
        }
    }

    #[test]
    fn parquet_timestamps_are_utc_micros_and_snappy() {
        let dir = tempfile::tempdir().unwrap();
        let b = Bid::to_batch(Generator::new(1).bids(100)).unwrap();
        write(dir.path(), Encoding::Parquet, &[b], 1).unwrap();
        let file = std::fs::File::open(dir.path().join("part-00000.parquet")).unwrap();
        let reader = parquet::file::serialized_reader::SerializedFileReader::new(file).unwrap();
        use parquet::file::reader::FileReader;
        let meta = reader.metadata();
        let schema = meta.file_metadata().schema_descr();
        let ts = schema.column(5);
        assert_eq!(ts.name(), "date_time");
        use parquet::basic::{LogicalType, TimeUnit};
        assert_eq!(ts.logical_type_ref(), Some(&LogicalType::timestamp(true, TimeUnit::MICROS)));
        assert_eq!(meta.row_group(0).column(0).compression(), Compression::SNAPPY);
    }
}
