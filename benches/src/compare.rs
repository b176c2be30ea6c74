//! `compare`: flowgate, a hand-written Rust loop and Apache Spark side by side, one run.
//!
//! For each case the input is generated once into files under `target/bench-data/`, in each
//! of two formats: JSON lines (text lines for the word count) and Parquet, the same bytes for
//! every system ([`data_set`]). Each system then runs in a child process of its own, so that
//! its peak memory (VmHWM) is its own:
//! - `flowgate files (<format>)`: the real engine (`QueryBuilder::start`, file source, a fresh
//!   checkpoint per run, trigger available-now) over the files of one format, into a sink that
//!   reads every value and drops the batch ([`touch_sink`]); `flowgate files no ckpt`: the
//!   same without the checkpoint;
//! - `spark files (<format>)`: Spark Structured Streaming, local mode, over the same files with
//!   its checkpoint, trigger available-now and its `noop` sink (`benches/spark/run.py`), when
//!   pyspark is installed (`benches/spark/install.sh`), and its fixed cost over an empty input;
//! - `page-cache read (<format>)`: the files read from the page cache with all cores, the
//!   physical limit of each row ([`read_all`]);
//! - `flowgate memory`: the compiled plan alone over Arrow batches in memory;
//! - `hand memory`: the hand-written loop over the same Arrow batches.
//!
//! The memory runs do not read files, so they run once per case, whatever the formats.
//! Results are compared before any ratio is printed (unless `--no-verify`), from an untimed
//! first run of each file system with a memory sink: flowgate's file run against Spark's over
//! the same files, row for row (as tab-separated text: timestamps as µs, doubles to 10
//! significant digits), and flowgate's memory run against the hand-written loop's (row
//! fingerprints).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int32Type, Int64Type, TimestampMicrosecondType};
use arrow_array::{Array, RecordBatch};
use arrow_schema::DataType;
use flowgate::engine::QuerySpec;
use flowgate::prelude::*;
use flowgate::QueryBuilder;

use crate::files::{self, Encoding};
use crate::nexmark::generator::{self, Generator, Kind};
use crate::{data, nexmark, workloads};

/// The generated input a case reads.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Input {
    /// Text lines (`data::lines`): plain text, or Parquet with one string column `value`.
    Lines,
    /// `(ts, key)` events (`data::events`).
    Events,
    /// The Nexmark event sequence (`nexmark::generator`) up to the `rows`-th bid: persons,
    /// auctions and bids, one directory each; the cases read the bids.
    Nexmark,
}

impl Input {
    fn name(self) -> &'static str {
        match self {
            Input::Lines => "lines",
            Input::Events => "events",
            Input::Nexmark => "nexmark",
        }
    }

    /// How this input is written in `format`.
    fn encoding(self, format: Format) -> Encoding {
        match (self, format) {
            (_, Format::Parquet) => Encoding::Parquet,
            (Input::Lines, Format::Json) => Encoding::Text,
            (_, Format::Json) => Encoding::Json,
        }
    }

    /// The directory of the stream a case reads, within the data set at `root`.
    fn stream_dir(self, root: &Path, format: Format) -> PathBuf {
        let dir = root.join(self.encoding(format).name());
        if self == Input::Nexmark {
            dir.join(Kind::Bid.name())
        } else {
            dir
        }
    }

    /// Generates the input of `rows` rows (bids for Nexmark) and writes it in every format
    /// under `root`; returns what the `_done` marker says it holds.
    fn write(self, root: &Path, rows: usize) -> std::io::Result<String> {
        let formats = [Format::Json, Format::Parquet];
        match self {
            Input::Lines | Input::Events => {
                let batches = if self == Input::Lines { data::lines(rows) } else { data::events(rows) };
                for f in formats {
                    let e = self.encoding(f);
                    files::write(&root.join(e.name()), e, &batches, FILES)?;
                }
                Ok(format!("{rows} rows"))
            }
            Input::Nexmark => {
                let g = Generator::new(generator::DEFAULT_SEED);
                let events = generator::events_for_bids(rows as u64);
                let mut counts = Vec::new();
                for kind in Kind::ALL {
                    // One stream at a time in memory.
                    let batches = g.batches(kind, events);
                    for f in formats {
                        let e = self.encoding(f);
                        files::write(&root.join(e.name()).join(kind.name()), e, &batches, FILES)?;
                    }
                    counts.push(format!("{} {}s", kind.count(events), kind.name()));
                }
                Ok(format!("{events} events: {}", counts.join(", ")))
            }
        }
    }
}

/// The file formats `compare` runs the file systems on (`--format json|parquet|both`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Format {
    /// JSON lines (text lines for the word count).
    Json,
    /// Parquet (snappy, timestamps as µs UTC).
    Parquet,
}

impl Format {
    pub fn name(self) -> &'static str {
        match self {
            Format::Json => "json",
            Format::Parquet => "parquet",
        }
    }

    /// `--format`'s value: `json`, `parquet` or `both`.
    pub fn parse_list(s: &str) -> Option<Vec<Format>> {
        match s {
            "json" => Some(vec![Format::Json]),
            "parquet" => Some(vec![Format::Parquet]),
            "both" => Some(vec![Format::Json, Format::Parquet]),
            _ => None,
        }
    }

    fn parse(s: &str) -> Option<Format> {
        match s {
            "json" => Some(Format::Json),
            "parquet" => Some(Format::Parquet),
            _ => None,
        }
    }
}

/// One workload of the comparison.
pub struct Case {
    /// Also the name of the in-memory workload (`workloads::all`) and of the Spark query
    /// (`benches/spark/run.py`).
    name: &'static str,
    input: Input,
    spec: fn() -> QuerySpec,
    /// Sets the query's file source on the builder: the directory, files per micro-batch and
    /// format.
    source: fn(&mut QueryBuilder, &Path, Option<usize>, Format),
    /// Files per micro-batch (Spark's `maxFilesPerTrigger`); `None`: all in one batch.
    max_files: Option<usize>,
    /// Whether the query aggregates: its limit column then also shows the hand-written loop's
    /// time from memory (the ceiling of the aggregation itself, beside the read's).
    aggregation: bool,
}

/// Written into each data set's `_done` marker: bump it when a generator or the file layout
/// changes, so that files written by an older one are written again.
const DATA_VERSION: &str = "3";

/// Input files per stream and format.
const FILES: usize = 8;
/// Input rows per case (Spark needs tens of seconds for a few million rows).
pub const DEFAULT_ROWS: usize = 2_000_000;

/// A file source of `T` over `dir` in `format`; `text`: the JSON-lines format of this input is
/// plain text.
fn set_source<T: Record>(b: &mut QueryBuilder, dir: &Path, max: Option<usize>, format: Format, text: bool) {
    let s = Source::<T>::file(dir);
    let mut s = match format {
        Format::Parquet => s.parquet(),
        Format::Json if text => s.text(),
        Format::Json => s.json().mode(ParseMode::FailFast),
    };
    if let Some(n) = max {
        s = s.max_files_per_trigger(n);
    }
    b.set_source(0, s.into());
}

fn text_source(b: &mut QueryBuilder, dir: &Path, max: Option<usize>, format: Format) {
    set_source::<data::Line>(b, dir, max, format, true);
}

fn event_source(b: &mut QueryBuilder, dir: &Path, max: Option<usize>, format: Format) {
    set_source::<data::Event>(b, dir, max, format, false);
}

fn bid_source(b: &mut QueryBuilder, dir: &Path, max: Option<usize>, format: Format) {
    set_source::<nexmark::Bid>(b, dir, max, format, false);
}

pub fn cases() -> Vec<Case> {
    let bids = |name, spec| Case {
        name,
        input: Input::Nexmark,
        spec,
        source: bid_source,
        max_files: None,
        aggregation: false,
    };
    vec![
        Case {
            name: "word_count",
            input: Input::Lines,
            spec: workloads::WordCounts::spec,
            source: text_source,
            max_files: None,
            aggregation: true,
        },
        Case {
            name: "windowed_count",
            input: Input::Events,
            spec: workloads::WindowedCount::spec,
            source: event_source,
            // A stream of micro-batches, so the watermark advances and windows close.
            max_files: Some(1),
            aggregation: true,
        },
        bids("nexmark_q0", nexmark::Q0::spec),
        bids("nexmark_q1", nexmark::Q1::spec),
        bids("nexmark_q2", nexmark::Q2::spec),
        Case { max_files: Some(1), aggregation: true, ..bids("nexmark_q11", nexmark::Q11::spec) },
        bids("nexmark_q14", nexmark::Q14::spec),
        // The bounded side input join: its source setter also sets the side table (q13.rs).
        Case { source: crate::q13::source, ..bids("nexmark_q13", crate::q13::Q13::spec) },
        Case { aggregation: true, ..bids("nexmark_q17", nexmark::Q17::spec) },
        bids("nexmark_q21", nexmark::Q21::spec),
        bids("nexmark_q22", nexmark::Q22::spec),
    ]
}

// ------------------------------------------------------------------ input files

fn data_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/bench-data")
}

/// The data set of `input` at `rows` rows, written if it is not there yet:
/// `target/bench-data/<input>-<rows>/`, holding `{text|json,parquet}/part-NNNNN.<ext>`
/// (Nexmark: `{json,parquet}/{person,auction,bid}/part-NNNNN.<ext>`) and a `_done` marker
/// written last.
fn data_set(input: Input, rows: usize) -> std::io::Result<PathBuf> {
    let dir = data_root().join(format!("{}-{rows}", input.name()));
    let marker = dir.join("_done");
    if std::fs::read_to_string(&marker).is_ok_and(|m| m.starts_with(&format!("version {DATA_VERSION},"))) {
        return Ok(dir);
    }
    let started = Instant::now();
    if dir.exists() {
        std::fs::remove_dir_all(&dir)?;
    }
    std::fs::create_dir_all(&dir)?;
    let what = input.write(&dir, rows)?;
    std::fs::write(marker, format!("version {DATA_VERSION}, {what}\n"))?;
    eprintln!(
        "  wrote {} ({what}) as {FILES} files per stream and format in {:.1}s",
        dir.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(dir)
}

// ------------------------------------------------------------------ results as text

/// The rows of `batches` as tab-separated lines: structs flattened, timestamps as µs since the
/// epoch, null as `\N`.
fn tsv(batches: &[RecordBatch]) -> Vec<String> {
    fn field(col: &dyn Array, i: usize, out: &mut Vec<String>) {
        if let DataType::Struct(_) = col.data_type() {
            for c in col.as_struct().columns() {
                field(c.as_ref(), i, out);
            }
            return;
        }
        if col.is_null(i) {
            out.push("\\N".into());
            return;
        }
        out.push(match col.data_type() {
            DataType::Int64 => col.as_primitive::<Int64Type>().value(i).to_string(),
            DataType::Int32 => col.as_primitive::<Int32Type>().value(i).to_string(),
            DataType::Float64 => format!("{:?}", col.as_primitive::<Float64Type>().value(i)),
            DataType::Utf8 => col.as_string::<i32>().value(i).to_string(),
            DataType::Boolean => col.as_boolean().value(i).to_string(),
            DataType::Timestamp(..) => col.as_primitive::<TimestampMicrosecondType>().value(i).to_string(),
            other => panic!("results of type {other} are not compared"),
        });
    }
    let mut lines = Vec::new();
    for b in batches {
        for i in 0..b.num_rows() {
            let mut fields = Vec::with_capacity(b.num_columns());
            for c in b.columns() {
                field(c.as_ref(), i, &mut fields);
            }
            lines.push(fields.join("\t"));
        }
    }
    lines
}

/// A result line in the form both systems are compared in: doubles to 10 significant digits
/// (Spark prints `1.2E7` where Rust prints `12000000`).
fn normalize(line: &str) -> String {
    line.split('\t')
        .map(|f| match f.parse::<f64>() {
            Ok(x) if f.contains(['.', 'e', 'E']) => format!("{x:.9e}"),
            _ => f.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\t")
}

fn read_lines(path: &Path) -> std::io::Result<Vec<String>> {
    let mut lines = Vec::new();
    let mut paths = Vec::new();
    if path.is_dir() {
        for e in std::fs::read_dir(path)? {
            let p = e?.path();
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if name.starts_with("part-") && !name.ends_with(".crc") {
                paths.push(p);
            }
        }
    } else {
        paths.push(path.to_path_buf());
    }
    for p in paths {
        lines.extend(std::fs::read_to_string(&p)?.lines().map(normalize));
    }
    lines.sort_unstable();
    Ok(lines)
}

/// How two sorted result sets differ, or `None` if they agree.
fn disagreement(a: &[String], b: &[String]) -> Option<String> {
    if a == b {
        return None;
    }
    let only_a: Vec<&String> = a.iter().filter(|l| b.binary_search(l).is_err()).take(3).collect();
    let only_b: Vec<&String> = b.iter().filter(|l| a.binary_search(l).is_err()).take(3).collect();
    Some(format!("{} vs {} rows; only in the first: {only_a:?}; only in the second: {only_b:?}", a.len(), b.len()))
}

// ------------------------------------------------------------------ child processes

/// What a child process reports.
#[derive(Debug, Clone)]
struct Report {
    elapsed: Vec<Duration>,
    rows: usize,
    peak_rss_kb: u64,
    /// Spark only: the time of the same query over an empty input (its fixed cost: planning,
    /// starting the query, the first trigger, stopping), per run.
    empty: Vec<Duration>,
    /// The page-cache read only: the bytes read per run.
    bytes: u64,
}

fn median_of(e: &[Duration]) -> Duration {
    let mut e = e.to_vec();
    e.sort();
    e[e.len() / 2]
}

impl Report {
    fn median(&self) -> Duration {
        median_of(&self.elapsed)
    }

    fn to_line(&self) -> String {
        let secs = |d: &[Duration]| d.iter().map(Duration::as_secs_f64).collect::<Vec<f64>>();
        serde_json::json!({
            "elapsed_s": secs(&self.elapsed),
            "rows": self.rows,
            "peak_rss_kb": self.peak_rss_kb,
            "empty_s": secs(&self.empty),
            "bytes": self.bytes,
        })
        .to_string()
    }

    /// Parses the last JSON line of a child's stdout (`to_line`'s format, also what run.py
    /// prints; `empty_s` and `bytes` may be absent).
    fn parse(stdout: &str) -> Option<Report> {
        let line = stdout.lines().rev().find(|l| l.trim_start().starts_with('{'))?;
        let v: serde_json::Value = serde_json::from_str(line).ok()?;
        let durations = |v: &serde_json::Value| {
            v.as_array().map_or(Some(Vec::new()), |a| {
                a.iter().map(|s| s.as_f64().map(Duration::from_secs_f64)).collect::<Option<Vec<_>>>()
            })
        };
        let elapsed = durations(&v["elapsed_s"])?;
        if elapsed.is_empty() {
            return None;
        }
        Some(Report {
            elapsed,
            rows: v["rows"].as_u64()? as usize,
            peak_rss_kb: v["peak_rss_kb"].as_u64()?,
            empty: durations(&v["empty_s"])?,
            bytes: v["bytes"].as_u64().unwrap_or(0),
        })
    }
}

fn peak_rss_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmHWM:")).and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// The flowgate sink of the timed runs, the counterpart of Spark's `noop` sink: it reads every
/// value of every row of each batch (a fold over every column's buffers, so nothing the query
/// computed can be skipped) and drops the batch.
fn touch_sink() -> Sink {
    fn touch(col: &dyn Array) -> u64 {
        let data = col.to_data();
        let own: u64 = data
            .buffers()
            .iter()
            .map(|b| b.as_slice().chunks(8).fold(0u64, |acc, c| acc.wrapping_add(c.iter().map(|&x| x as u64).sum())))
            .fold(0, u64::wrapping_add);
        let children: u64 = match col.data_type() {
            DataType::Struct(_) => col.as_struct().columns().iter().map(|c| touch(c.as_ref())).sum(),
            _ => 0,
        };
        own.wrapping_add(children).wrapping_add(col.len() as u64)
    }
    Sink::foreach_batch(|_, batch| {
        std::hint::black_box(batch.columns().iter().map(|c| touch(c.as_ref())).fold(0u64, u64::wrapping_add));
        Ok(())
    })
}

/// A fresh checkpoint directory for one timed run, on the same disk as the input (Spark's go
/// there too, `--checkpoint-root`).
fn checkpoint_root() -> PathBuf {
    data_root().join("compare").join("checkpoints")
}

/// Reads every file of `dir` with all cores (one file per task, each into a buffer reused
/// across files) and returns the bytes read: the physical limit of a run over those files once
/// they are in the page cache.
fn read_all(dir: &Path) -> u64 {
    use rayon::prelude::*;
    use std::io::Read;
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("input dir")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("part-")))
        .collect();
    files.sort();
    files
        .par_iter()
        .map_init(
            || vec![0u8; 1 << 20],
            |buf, p| {
                let mut f = std::fs::File::open(p).expect("input file");
                let mut n = 0u64;
                loop {
                    match f.read(buf).expect("read") {
                        0 => break n,
                        k => {
                            std::hint::black_box(&buf[..k]);
                            n += k as u64;
                        }
                    }
                }
            },
        )
        .sum()
}

/// The child side: `compare-child CASE SYSTEM ROWS RUNS OUT` with SYSTEM `files-<format>`
/// (with a checkpoint), `files-<format>-nockpt`, `read-<format>`, `memory` or `hand`; prints a
/// [`Report`] line. OUT `-`: no result is written (and the file systems skip their
/// verification run).
pub fn child(args: &[String]) {
    let [case, system, rows, runs, out] = args else {
        eprintln!("usage: compare-child CASE files-json|files-parquet|files-json-nockpt|files-parquet-nockpt|read-json|read-parquet|memory|hand ROWS RUNS OUT");
        std::process::exit(2);
    };
    let rows: usize = rows.parse().expect("rows");
    let runs: usize = runs.parse().expect("runs");
    let case = cases().into_iter().find(|c| c.name == case).expect("known case");
    let verify = out != "-";
    let report = |elapsed, rows| Report { elapsed, rows, peak_rss_kb: peak_rss_kb(), empty: Vec::new(), bytes: 0 };
    let report = match system.as_str() {
        "memory" | "hand" => {
            let w = workloads::all().into_iter().find(|w| w.name == case.name).expect("in-memory workload");
            (w.prepare)(rows);
            let f = if system == "memory" { w.flowgate } else { w.hand };
            let all: Vec<crate::Measured> = (0..runs).map(|_| f(rows)).collect();
            let n = all[0].result.len();
            if verify {
                let text: String = all[0].result.iter().map(|h| format!("{h}\n")).collect();
                std::fs::write(format!("{out}.hashes"), text).expect("write hashes");
            }
            report(all.iter().map(|m| m.elapsed).collect(), n)
        }
        read if read.starts_with("read-") => {
            let format = Format::parse(&read["read-".len()..]).unwrap_or_else(|| panic!("unknown system {read}"));
            let root = data_set(case.input, rows).expect("input files");
            let dir = case.input.stream_dir(&root, format);
            // A first read brings the files into the page cache (the systems' first runs do
            // the same for them).
            let bytes = read_all(&dir);
            let elapsed = (0..runs)
                .map(|_| {
                    let t = Instant::now();
                    assert_eq!(read_all(&dir), bytes);
                    t.elapsed()
                })
                .collect();
            Report { bytes, ..report(elapsed, 0) }
        }
        files => {
            let rest = files.strip_prefix("files-").unwrap_or_else(|| panic!("unknown system {files}"));
            let (rest, checkpointed) = match rest.strip_suffix("-nockpt") {
                Some(r) => (r, false),
                None => (rest, true),
            };
            let format = Format::parse(rest).unwrap_or_else(|| panic!("unknown system {files}"));
            let root = data_set(case.input, rows).expect("input files");
            let dir = case.input.stream_dir(&root, format);
            let run = |sink: Sink, checkpoint: Option<&Path>| {
                let mut b = QueryBuilder::new((case.spec)());
                (case.source)(&mut b, &dir, case.max_files, format);
                let b = b.sink(sink).trigger(Trigger::available_now());
                let b = match checkpoint {
                    Some(c) => b.checkpoint(c),
                    None => b,
                };
                let started = Instant::now();
                let q = b.start().expect("start");
                q.await_termination().expect("query");
                started.elapsed()
            };
            // The verification run (untimed, as Spark's): the memory sink keeps the rows to
            // compare. It also warms the page cache and the allocator, as Spark's warms its JIT.
            let mut result_rows = 0;
            if verify {
                let table = MemoryTable::new();
                run(Sink::memory(&table), None);
                let lines = tsv(&table.batches());
                result_rows = lines.len();
                let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
                std::fs::write(out, text).expect("write result");
            }
            std::fs::create_dir_all(checkpoint_root()).expect("checkpoint root");
            let elapsed = (0..runs)
                .map(|_| {
                    let cp = tempfile::tempdir_in(checkpoint_root()).expect("checkpoint dir");
                    run(touch_sink(), checkpointed.then(|| cp.path()))
                })
                .collect();
            report(elapsed, result_rows)
        }
    };
    println!("{}", report.to_line());
}

fn run_child(case: &str, system: &str, rows: usize, runs: usize, out: &Path) -> Result<Report, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let output = Command::new(exe)
        .args(["compare-child", case, system, &rows.to_string(), &runs.to_string()])
        .arg(out)
        .stderr(std::process::Stdio::inherit())
        .output()
        .map_err(|e| e.to_string())?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        return Err(format!("{system} run of {case} failed ({})", output.status));
    }
    Report::parse(&stdout).ok_or_else(|| format!("no report from the {system} run of {case}: {stdout}"))
}

// ------------------------------------------------------------------ Spark

pub(crate) fn spark_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("spark")
}

/// The python of the Spark venv, installing it if needed; `Err` says why Spark is skipped.
pub(crate) fn spark_python() -> Result<PathBuf, String> {
    if let Ok(p) = std::env::var("FLOWGATE_SPARK_PYTHON") {
        return Ok(p.into());
    }
    let out = Command::new("bash")
        .arg(spark_dir().join("install.sh"))
        .stderr(std::process::Stdio::inherit())
        .output()
        .map_err(|e| format!("could not run benches/spark/install.sh: {e}"))?;
    if !out.status.success() {
        return Err(format!("benches/spark/install.sh failed ({})", out.status));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let python = text.lines().last().unwrap_or("").trim().to_string();
    if python.is_empty() {
        return Err("benches/spark/install.sh did not name a python".into());
    }
    Ok(python.into())
}

/// How the Spark child runs: result written (and a verification run made) or not, and the
/// runs over an empty input that measure its fixed cost.
struct SparkRun<'a> {
    python: &'a Path,
    runs: usize,
    threads: usize,
    verify: bool,
    empty_runs: usize,
}

fn run_spark(s: &SparkRun<'_>, case: &Case, format: Format, input: &Path, out: &Path) -> Result<Report, String> {
    let mut cmd = Command::new(s.python);
    cmd.arg(spark_dir().join("run.py"))
        .args(["--query", case.name, "--format", format.name(), "--sink", "noop"])
        .args(["--runs", &s.runs.to_string(), "--threads", &s.threads.to_string()])
        .args(["--empty-runs", &s.empty_runs.to_string()])
        .arg("--input")
        .arg(input)
        .arg("--checkpoint-root")
        .arg(checkpoint_root())
        .stderr(std::process::Stdio::inherit());
    if s.verify {
        cmd.arg("--output").arg(out);
    }
    if let Some(n) = case.max_files {
        cmd.args(["--max-files", &n.to_string()]);
    }
    std::fs::create_dir_all(checkpoint_root()).map_err(|e| format!("checkpoint root: {e}"))?;
    let output = cmd.output().map_err(|e| format!("could not start Spark: {e}"))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        return Err(format!("Spark failed on {} ({}, {})", case.name, format.name(), output.status));
    }
    Report::parse(&stdout).ok_or_else(|| format!("no report from Spark on {} ({}): {stdout}", case.name, format.name()))
}

// ------------------------------------------------------------------ the comparison

struct Line {
    case: &'static str,
    system: &'static str,
    /// The input files' encoding (`text`, `json`, `parquet`) for the file systems, `None` for
    /// the memory ones.
    encoding: Option<&'static str>,
    report: Report,
    /// Why no speed-up is printed against this line, if so.
    verdict: Result<(), String>,
}

impl Line {
    /// The system as the table shows it, e.g. `flowgate files (parquet)`.
    fn label(&self) -> String {
        match self.encoding {
            Some(e) => format!("{} ({e})", self.system),
            None => self.system.to_string(),
        }
    }
}

/// Whether two result files agree row for row.
fn verdict(flowgate: &Path, spark: &Path) -> Result<(), String> {
    match (read_lines(flowgate), read_lines(spark)) {
        (Ok(a), Ok(b)) => match disagreement(&a, &b) {
            None if a.is_empty() => Err("both results are empty: nothing was compared".into()),
            None => Ok(()),
            Some(d) => Err(format!("flowgate and Spark DISAGREE: {d}")),
        },
        (Err(e), _) | (_, Err(e)) => Err(format!("could not read the results: {e}")),
    }
}

/// The systems' names in the table.
const FG_CHECKPOINT: &str = "flowgate files";
const FG_PLAIN: &str = "flowgate files no ckpt";
const SPARK: &str = "spark files";
const READ: &str = "page-cache read";
const FG_MEMORY: &str = "flowgate memory";
const HAND: &str = "hand memory";

/// What `compare` runs: sizes and runs, and what is checked.
pub struct Options<'a> {
    pub rows: usize,
    pub runs: usize,
    pub only: Option<&'a str>,
    pub skip_spark: bool,
    pub formats: &'a [Format],
    /// Compare the results (a verification run per file system, untimed); off for sizes whose
    /// results are too large to collect (Spark's memory sink holds them all in the driver).
    pub verify: bool,
    /// Runs of each Spark query over an empty input (its fixed cost).
    pub empty_runs: usize,
}

pub fn compare(o: &Options<'_>) {
    let (rows, runs, formats) = (o.rows, o.runs, o.formats);
    let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    // One work directory per size, so that runs of two sizes never share result files.
    let work = data_root().join(format!("compare-{rows}"));
    std::fs::create_dir_all(&work).expect("work dir");
    let python = if o.skip_spark { Err("--no-spark given".to_string()) } else { spark_python() };
    if let Err(why) = &python {
        println!("Spark is skipped: {why}");
    }
    let names: Vec<&str> = formats.iter().map(|f| f.name()).collect();
    println!(
        "compare: {rows} input rows per case (bids for Nexmark), median of {runs} runs, {threads} cores, files: {}, \
         sinks: Spark `noop`, flowgate a sink that reads every value and drops the batch; results {}\n",
        names.join(", "),
        if o.verify { "compared in an untimed first run" } else { "NOT compared (--no-verify)" }
    );
    let unchecked = || Err::<(), String>("not compared (--no-verify)".into());
    let mut lines: Vec<Line> = Vec::new();
    for case in cases().iter().filter(|c| o.only.is_none_or(|only| only.split(',').any(|n| n == c.name))) {
        eprintln!("{}:", case.name);
        let root = match data_set(case.input, rows) {
            Ok(d) => d,
            Err(e) => {
                eprintln!("  could not write the input files: {e}");
                continue;
            }
        };
        for &format in formats {
            let encoding = Some(case.input.encoding(format).name());
            let fg_out = work.join(format!("{}.{}.flowgate.tsv", case.name, format.name()));
            let out_arg = |p: &Path| if o.verify { p.to_path_buf() } else { PathBuf::from("-") };
            let mut fg = Vec::new();
            for (system, child_system) in [
                (FG_CHECKPOINT, format!("files-{}", format.name())),
                (FG_PLAIN, format!("files-{}-nockpt", format.name())),
            ] {
                // Only the first writes the result (the same query over the same files).
                let out = if system == FG_CHECKPOINT { out_arg(&fg_out) } else { PathBuf::from("-") };
                match run_child(case.name, &child_system, rows, runs, &out) {
                    Ok(r) => fg.push((system, r)),
                    Err(e) => eprintln!("  {e}"),
                }
            }
            // The run without a checkpoint wrote no result: it has the same rows.
            let result_rows = fg.iter().find(|(s, _)| *s == FG_CHECKPOINT).map(|(_, r)| r.rows);
            for (_, r) in fg.iter_mut().filter(|(s, _)| *s == FG_PLAIN) {
                r.rows = result_rows.unwrap_or(r.rows);
            }
            match run_child(case.name, &format!("read-{}", format.name()), rows, runs.max(3), Path::new("-")) {
                Ok(report) => lines.push(Line { case: case.name, system: READ, encoding, report, verdict: Ok(()) }),
                Err(e) => eprintln!("  {e}"),
            }
            let mut files_verdict = Err("Spark not run".to_string());
            let mut spark_line = None;
            if let Ok(py) = &python {
                let spark_out = work.join(format!("{}.{}.spark", case.name, format.name()));
                let input = case.input.stream_dir(&root, format);
                let how = SparkRun { python: py, runs, threads, verify: o.verify, empty_runs: o.empty_runs };
                match run_spark(&how, case, format, &input, &spark_out) {
                    Ok(report) => {
                        let v = if !o.verify {
                            unchecked()
                        } else if fg.iter().any(|(s, _)| *s == FG_CHECKPOINT) {
                            verdict(&fg_out, &spark_out)
                        } else {
                            Err("the flowgate run failed: nothing was compared".into())
                        };
                        if let Err(why) = &v {
                            eprintln!("  {} ({}): {why}", case.name, format.name());
                        }
                        files_verdict = v.clone();
                        spark_line = Some(Line { case: case.name, system: SPARK, encoding, report, verdict: v });
                    }
                    Err(e) => {
                        eprintln!("  {e}");
                        files_verdict = Err(e);
                    }
                }
            }
            for (system, report) in fg {
                lines.push(Line { case: case.name, system, encoding, report, verdict: files_verdict.clone() });
            }
            lines.extend(spark_line);
        }
        let mut mine = Vec::new();
        for system in ["memory", "hand"] {
            let out = work.join(format!("{}.{system}", case.name));
            match run_child(case.name, system, rows, runs, &out) {
                Ok(r) => mine.push((system, r, out)),
                Err(e) => eprintln!("  {e}"),
            }
        }
        let read_hashes = |p: &Path| std::fs::read_to_string(format!("{}.hashes", p.display())).unwrap_or_default();
        let by = |s: &str| mine.iter().find(|(sys, ..)| *sys == s);
        let memory_verdict = match (by("memory"), by("hand")) {
            (Some(m), Some(h)) if m.1.rows == 0 && h.1.rows == 0 => {
                Err("both results are empty: nothing was compared".into())
            }
            (Some(m), Some(h)) if read_hashes(&m.2) == read_hashes(&h.2) => Ok(()),
            (Some(m), Some(h)) => {
                Err(format!("flowgate memory and hand-written results DISAGREE ({} vs {} rows)", m.1.rows, h.1.rows))
            }
            _ => Err("a memory run failed".into()),
        };
        for (system, report, _) in mine {
            let name = if system == "memory" { FG_MEMORY } else { HAND };
            lines.push(Line { case: case.name, system: name, encoding: None, report, verdict: memory_verdict.clone() });
        }
    }
    print_table(&lines, rows, threads, &cases());
}

/// One row's physical limits: the page-cache read of the same files (memory rows: of the
/// smallest encoding), and for aggregations the hand-written loop's time from memory.
fn limits(lines: &[Line], l: &Line, aggregation: bool) -> (Option<f64>, Option<f64>) {
    let reads = lines.iter().filter(|o| o.case == l.case && o.system == READ);
    let read = match l.encoding {
        Some(e) => reads.clone().find(|o| o.encoding == Some(e)).map(|o| o.report.median().as_secs_f64()),
        None => reads.map(|o| o.report.median().as_secs_f64()).min_by(f64::total_cmp),
    };
    let hand = aggregation
        .then(|| lines.iter().find(|o| o.case == l.case && o.system == HAND))
        .flatten()
        .map(|o| o.report.median().as_secs_f64());
    (read, hand)
}

fn print_table(lines: &[Line], rows: usize, threads: usize, cases: &[Case]) {
    let find = |l: &Line, system: &str| {
        lines.iter().find(|o| o.case == l.case && o.system == system && o.encoding == l.encoding)
    };
    println!(
        "{:<15} {:<33} {:>10} {:>11} {:>8} {:>7} {:>9}  {:<22} {:<22} ratio",
        "workload",
        "system",
        "seconds",
        "events/s/c",
        "peak MB",
        "MB/s/c",
        "result",
        "x page-cache read",
        "x hand loop"
    );
    let mut csv = vec![
        "workload,system,format,rows,threads,median_s,events_per_s,events_per_s_per_core,peak_rss_mb,result_rows,agrees,ratio_name,ratio,limit_read_s,x_read,limit_hand_s,x_hand,spark_fixed_s,bytes"
            .to_string(),
    ];
    for l in lines {
        let secs = l.report.median().as_secs_f64();
        let eps = rows as f64 / secs;
        let aggregation = cases.iter().find(|c| c.name == l.case).is_some_and(|c| c.aggregation);
        let (read, hand) = limits(lines, l, aggregation);
        let (ratio_name, ratio) = match l.system {
            FG_CHECKPOINT | FG_PLAIN => match (&l.verdict, find(l, SPARK)) {
                (Ok(()), Some(s)) => ("speed-up over Spark", Some(s.report.median().as_secs_f64() / secs)),
                _ => ("speed-up over Spark", None),
            },
            FG_MEMORY => match (&l.verdict, find(l, HAND)) {
                (Ok(()), Some(h)) => ("time / hand-written", Some(secs / h.report.median().as_secs_f64())),
                _ => ("time / hand-written", None),
            },
            _ => ("", None),
        };
        let ratio_text = match (ratio, &l.verdict) {
            (Some(r), _) => format!("{ratio_name} {r:.2}"),
            (None, Err(why)) if !ratio_name.is_empty() => {
                // Unchecked sizes still show the ratio, marked.
                match (l.system, find(l, SPARK)) {
                    (FG_CHECKPOINT | FG_PLAIN, Some(s)) if why.contains("--no-verify") => {
                        format!("{ratio_name} {:.2} (results not compared)", s.report.median().as_secs_f64() / secs)
                    }
                    _ => format!("no ratio: {why}"),
                }
            }
            _ => String::new(),
        };
        let ratio_text = match (l.system, l.report.empty.is_empty()) {
            (SPARK, false) => format!("fixed cost (empty input) {:.2} s", median_of(&l.report.empty).as_secs_f64()),
            _ => ratio_text,
        };
        let x = |limit: Option<f64>| match limit {
            Some(t) if l.system != READ && !(l.system == HAND && Some(t) == hand) => {
                format!("{t:.3} s x{:.1}", secs / t)
            }
            _ => String::new(),
        };
        let mb_s = if l.report.bytes > 0 {
            format!("{:.0}", l.report.bytes as f64 / 1e6 / secs / threads as f64)
        } else {
            String::new()
        };
        println!(
            "{:<15} {:<33} {:>10.3} {:>11.3e} {:>8.0} {:>7} {:>9}  {:<22} {:<22} {}",
            l.case,
            l.label(),
            secs,
            eps / threads as f64,
            l.report.peak_rss_kb as f64 / 1024.0,
            mb_s,
            if l.system == READ { String::new() } else { l.report.rows.to_string() },
            x(read),
            x(hand),
            ratio_text
        );
        let opt = |v: Option<f64>| v.map(|v| format!("{v:.6}")).unwrap_or_default();
        let spark_fixed =
            (l.system == SPARK && !l.report.empty.is_empty()).then(|| median_of(&l.report.empty).as_secs_f64());
        csv.push(format!(
            "{},{},{},{rows},{threads},{secs:.6},{eps:.0},{:.0},{:.1},{},{},{},{},{},{},{},{},{},{}",
            l.case,
            l.label(),
            l.encoding.unwrap_or(""),
            eps / threads as f64,
            l.report.peak_rss_kb as f64 / 1024.0,
            l.report.rows,
            match &l.verdict {
                Ok(()) => "true",
                Err(w) if w.contains("--no-verify") => "unchecked",
                Err(_) => "false",
            },
            ratio_name,
            ratio.map(|r| format!("{r:.4}")).unwrap_or_default(),
            opt(read),
            opt(read.map(|t| secs / t)),
            opt(hand),
            opt(hand.map(|t| secs / t)),
            opt(spark_fixed),
            l.report.bytes,
        ));
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target");
    let csv_path = root.join("bench-compare.csv");
    match std::fs::write(&csv_path, csv.join("\n") + "\n") {
        Ok(()) => println!("\ncsv: {}", csv_path.display()),
        Err(e) => eprintln!("could not write {}: {e}", csv_path.display()),
    }
    chart(&csv_path, &root.join("bench-compare.png"));
}

/// Draws the CSV as a PNG with matplotlib (from the Spark venv, or the system python).
fn chart(csv: &Path, png: &Path) {
    let candidates: Vec<PathBuf> = std::env::var("FLOWGATE_SPARK_PYTHON")
        .ok()
        .map(PathBuf::from)
        .into_iter()
        .chain(std::env::var("HOME").ok().map(|h| Path::new(&h).join(".cache/flowgate/spark-venv/bin/python")))
        .chain([PathBuf::from("python3")])
        .collect();
    for python in candidates {
        let status = Command::new(&python).arg(spark_dir().join("chart.py")).arg(csv).arg(png).status();
        if matches!(status, Ok(s) if s.success()) {
            println!("chart: {}", png.display());
            return;
        }
    }
    println!("no chart: matplotlib not found (benches/spark/install.sh installs it)");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_compare_across_spellings() {
        assert_eq!(normalize("a\t1.2E7\t3"), normalize("a\t12000000.0\t3"));
        assert_ne!(normalize("a\t1.2E7"), normalize("a\t1.3E7"));
        assert_eq!(normalize("x\t\\N"), "x\t\\N");
    }

    #[test]
    fn reports_round_trip() {
        let r = Report {
            elapsed: vec![Duration::from_millis(1500), Duration::from_millis(20)],
            rows: 7,
            peak_rss_kb: 9,
            empty: vec![Duration::from_millis(300)],
            bytes: 5,
        };
        let back = Report::parse(&format!("noise\n{}\n", r.to_line())).unwrap();
        assert_eq!(back.elapsed, r.elapsed);
        assert_eq!((back.rows, back.peak_rss_kb, back.empty, back.bytes), (7, 9, r.empty, 5));
        let spark = Report::parse("{\"elapsed_s\": [2.5, 3.0], \"rows\": 10, \"peak_rss_kb\": 1234}").unwrap();
        assert_eq!(spark.median(), Duration::from_secs(3));
    }

    use crate::nexmark::generator::{Auction, Person};

    stream_query! {
        pub(crate) query AllPersons(persons: Person) -> Person, mode = append {
            persons
        }
    }

    stream_query! {
        pub(crate) query AllAuctions(auctions: Auction) -> Auction, mode = append {
            auctions
        }
    }

    /// The rows flowgate's file source reads from `dir` in `format`, through a pass-through
    /// query of `T`.
    fn read_with_flowgate<T: Record>(spec: QuerySpec, dir: &Path, format: Format) -> Vec<String> {
        let table = MemoryTable::new();
        let mut b = QueryBuilder::new(spec);
        set_source::<T>(&mut b, dir, None, format, false);
        let q = b.sink(Sink::memory(&table)).trigger(Trigger::available_now()).start().unwrap();
        q.await_termination().unwrap();
        tsv(&table.batches())
    }

    #[test]
    fn every_stream_reads_back_through_the_file_source_in_both_formats() {
        let g = Generator::new(generator::DEFAULT_SEED);
        let events = generator::events_for_bids(5_000);
        let dir = tempfile::tempdir().unwrap();
        for kind in Kind::ALL {
            let batches = g.batches(kind, events);
            let expected = tsv(&batches);
            assert!(expected.len() > 100, "{kind:?}");
            for format in [Format::Json, Format::Parquet] {
                let e = Input::Nexmark.encoding(format);
                let d = dir.path().join(e.name()).join(kind.name());
                files::write(&d, e, &batches, 3).unwrap();
                let read = match kind {
                    Kind::Person => read_with_flowgate::<Person>(AllPersons::spec(), &d, format),
                    Kind::Auction => read_with_flowgate::<Auction>(AllAuctions::spec(), &d, format),
                    Kind::Bid => read_with_flowgate::<nexmark::Bid>(nexmark::Q0::spec(), &d, format),
                };
                assert!(read == expected, "{kind:?} from {format:?}: {} vs {} rows", read.len(), expected.len());
            }
        }
    }

    #[test]
    fn word_count_lines_read_back_as_text_and_parquet() {
        let batches = data::lines(3_000);
        let dir = tempfile::tempdir().unwrap();
        for format in [Format::Json, Format::Parquet] {
            let e = Input::Lines.encoding(format);
            let d = dir.path().join(e.name());
            files::write(&d, e, &batches, 3).unwrap();
            let table = MemoryTable::new();
            let mut b = QueryBuilder::new(workloads::WordCounts::spec());
            text_source(&mut b, &d, None, format);
            let q = b.sink(Sink::memory(&table)).trigger(Trigger::available_now()).start().unwrap();
            q.await_termination().unwrap();
            let mut counts = tsv(&table.batches());
            counts.sort();
            let words: usize = counts.iter().map(|l| l.rsplit('\t').next().unwrap().parse::<usize>().unwrap()).sum();
            let expected: usize = batches
                .iter()
                .flat_map(|b| (0..b.num_rows()).map(|i| b.column(0).as_string::<i32>().value(i).split(' ').count()))
                .sum();
            assert_eq!(words, expected, "{format:?}");
        }
    }
}
