//! Test support for flowgate's end-to-end tests: the Spark oracle harness.
//!
//! The golden cases live in `oracle/cases/` (a copy of `../shared/oracle/cases`, refreshed by
//! `oracle/sync.sh`; set `FLOWGATE_ORACLE_DIR` to run against another directory of cases, such
//! as freshly regenerated ones). Each case holds its input files and what real Spark emitted
//! per micro-batch; [`run_case`] replays the inputs through a flowgate query exactly as the
//! oracle harness did for Spark and compares every batch.

use std::path::{Path, PathBuf};

use arrow_array::cast::AsArray;
use arrow_array::types::{Date32Type, Float64Type, Int32Type, Int64Type, TimestampMicrosecondType};
use arrow_array::{Array, RecordBatch};
use arrow_schema::{DataType, TimeUnit};
use flowgate::{MemoryTable, StreamingQuery};
use serde_json::{Map, Value};

/// The directory holding the golden cases.
pub fn cases_dir() -> PathBuf {
    if let Ok(dir) = std::env::var("FLOWGATE_ORACLE_DIR") {
        return PathBuf::from(dir);
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("oracle").join("cases")
}

/// One micro-batch as Spark reported it.
#[derive(Debug, Clone)]
pub struct ExpectedBatch {
    pub batch: u64,
    pub step: u64,
    pub no_data_batch: bool,
    pub num_input_rows: u64,
    pub rows: Vec<Value>,
    pub state: Vec<Value>,
    pub raw: Value,
}

/// Reads a case's `expected.jsonl`.
pub fn expected(case: &str) -> Vec<ExpectedBatch> {
    let path = cases_dir().join(case).join("expected.jsonl");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("{}: bad line {l}: {e}", path.display()));
            ExpectedBatch {
                batch: v["batch"].as_u64().expect("batch"),
                step: v["step"].as_u64().expect("step"),
                no_data_batch: v["no_data_batch"].as_bool().unwrap_or(false),
                num_input_rows: v["num_input_rows"].as_u64().unwrap_or(0),
                rows: v["rows"].as_array().cloned().unwrap_or_default(),
                state: v["state"].as_array().cloned().unwrap_or_default(),
                raw: v,
            }
        })
        .collect()
}

/// The case's input files for a single-source case, in step order.
pub fn input_files(case: &str) -> Vec<PathBuf> {
    let dir = cases_dir().join(case).join("input");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
        .collect();
    files.sort();
    files
}

/// Formats a timestamp as Spark's `to_json` does: `2024-01-01T12:00:00Z`, with `.ffffff`
/// (trailing zeros trimmed) only when there are sub-second digits.
pub fn spark_timestamp(micros: i64) -> String {
    let t = flowgate::Timestamp(micros).to_string();
    format!("{}Z", t.replacen(' ', "T", 1))
}

fn cell(array: &dyn Array, i: usize) -> Value {
    if array.is_null(i) {
        return Value::Null;
    }
    match array.data_type() {
        DataType::Boolean => Value::from(array.as_boolean().value(i)),
        DataType::Int32 => Value::from(array.as_primitive::<Int32Type>().value(i)),
        DataType::Int64 => Value::from(array.as_primitive::<Int64Type>().value(i)),
        DataType::Float64 => serde_json::Number::from_f64(array.as_primitive::<Float64Type>().value(i))
            .map(Value::Number)
            .unwrap_or(Value::Null),
        DataType::Utf8 => Value::from(array.as_string::<i32>().value(i)),
        DataType::Timestamp(TimeUnit::Microsecond, _) => {
            Value::from(spark_timestamp(array.as_primitive::<TimestampMicrosecondType>().value(i)))
        }
        DataType::Date32 => Value::from(flowgate::Date(array.as_primitive::<Date32Type>().value(i)).to_string()),
        DataType::List(_) => {
            let items = array.as_list::<i32>().value(i);
            Value::Array((0..items.len()).map(|j| cell(items.as_ref(), j)).collect())
        }
        DataType::Struct(fields) => {
            let s = array.as_struct();
            let mut m = Map::new();
            for (f, col) in fields.iter().zip(s.columns()) {
                m.insert(f.name().clone(), cell(col.as_ref(), i));
            }
            Value::Object(m)
        }
        other => panic!("the oracle harness cannot render {other}"),
    }
}

/// A batch's rows as JSON objects, as Spark's `to_json` gives them (nulls kept).
pub fn rows_as_json(batch: &RecordBatch) -> Vec<Value> {
    let schema = batch.schema();
    (0..batch.num_rows())
        .map(|i| {
            let mut m = Map::new();
            for (f, col) in schema.fields().iter().zip(batch.columns()) {
                m.insert(f.name().clone(), cell(col.as_ref(), i));
            }
            Value::Object(m)
        })
        .collect()
}

/// Rows in a canonical order (the oracle sorts rows; we compare as sorted multisets).
pub fn canonical(mut rows: Vec<Value>) -> Vec<Value> {
    rows.sort_by_key(|r| r.to_string());
    rows
}

/// Replays `case` into `staging` (a continuous query's file source) step by step: per step (an
/// input file moved in, then everything processed), the rows the sink got equal the rows
/// Spark's batches of that step emitted. Epoch ids are not Spark's batch ids (empty epochs pass
/// between steps), so rows are compared per step, not per batch.
pub fn run_case_continuously(case: &str, staging: &Path, query: &StreamingQuery, table: &MemoryTable) {
    let want = expected(case);
    let scratch = tempfile::tempdir().unwrap();
    let mut seen = 0;
    let mut compared = 0;
    query.process_all_available().unwrap();
    for (step, file) in input_files(case).iter().enumerate() {
        let name = file.file_name().unwrap();
        std::fs::copy(file, scratch.path().join(name)).unwrap();
        std::fs::rename(scratch.path().join(name), staging.join(name)).unwrap();
        query.process_all_available().unwrap_or_else(|e| panic!("case {case} step {step}: {e}"));
        let history = table.history();
        let got: Vec<serde_json::Value> = history[seen..].iter().flat_map(|(_, b)| rows_as_json(b)).collect();
        seen = history.len();
        let spark: Vec<serde_json::Value> =
            want.iter().filter(|b| b.step == step as u64).flat_map(|b| b.rows.clone()).collect();
        compared += spark.len();
        assert_eq!(canonical(got), canonical(spark), "case {case} step {step}: rows differ from Spark's");
    }
    assert!(compared > 0, "case {case}: Spark emitted no rows to compare");
    query.stop().unwrap();
    assert!(query.exception().is_none(), "{:?}", query.exception());
}

/// Whether Spark's `numInputRows` is comparable with ours for a case.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum InputRows {
    /// Compare each batch's input row count.
    Check,
    /// Spark pushes the query's filters into its JSON scan and counts only the rows that pass;
    /// flowgate counts every row the source read. The rows emitted are still compared.
    SparkPushesFiltersDown,
}

/// Replays `case`'s inputs into `staging` (one file per step, renamed in atomically as the
/// oracle did), waits for the query to process everything after each step, and checks each
/// micro-batch's rows, id and state metrics against Spark's.
///
/// `table` must be the memory sink of `query`, which must read `staging` with a file source.
pub fn run_case(case: &str, staging: &Path, query: &StreamingQuery, table: &MemoryTable, input_rows: InputRows) {
    let steps: Vec<Vec<(String, PathBuf)>> = input_files(case).into_iter().map(|f| vec![(String::new(), f)]).collect();
    replay(
        case,
        &steps,
        &[(String::new(), staging.to_path_buf())],
        query,
        table,
        input_rows,
        Replay { ulps: 0, before_step: &mut |_| {}, restart: None, pruned: None },
    );
}

/// [`run_case`] with doubles compared to within `ulps` units in the last place (every other
/// value exactly): for statistics whose last bits depend on the order Spark's generated code
/// combines partial buffers in, which flowgate reproduces but for a rounding now and then.
pub fn run_case_within_ulps(case: &str, staging: &Path, query: &StreamingQuery, table: &MemoryTable, ulps: u64) {
    let steps: Vec<Vec<(String, PathBuf)>> = input_files(case).into_iter().map(|f| vec![(String::new(), f)]).collect();
    replay(
        case,
        &steps,
        &[(String::new(), staging.to_path_buf())],
        query,
        table,
        InputRows::Check,
        Replay { ulps, before_step: &mut |_| {}, restart: None, pruned: None },
    );
}

/// Whether two JSON values are equal, doubles to within `ulps` (exactly when 0).
fn same_within(a: &Value, b: &Value, ulps: u64) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) if ulps > 0 && (x.is_f64() || y.is_f64()) => {
            let (Some(x), Some(y)) = (x.as_f64(), y.as_f64()) else { return false };
            let key = |v: f64| {
                let bits = v.to_bits() as i64;
                if bits < 0 {
                    i64::MIN - bits
                } else {
                    bits
                }
            };
            key(x).abs_diff(key(y)) <= ulps
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| same_within(a, b, ulps))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same_within(v, w, ulps)))
        }
        _ => a == b,
    }
}

/// Rows in a canonical order that does not depend on a double's last bits.
fn canonical_within(rows: Vec<Value>, ulps: u64) -> Vec<Value> {
    if ulps == 0 {
        return canonical(rows);
    }
    fn rounded(v: &Value) -> Value {
        match v {
            Value::Number(n) if n.is_f64() => Value::from(format!("{:.9e}", n.as_f64().unwrap_or(0.0))),
            Value::Array(a) => Value::Array(a.iter().map(rounded).collect()),
            Value::Object(o) => Value::Object(o.iter().map(|(k, v)| (k.clone(), rounded(v))).collect()),
            other => other.clone(),
        }
    }
    let mut rows = rows;
    rows.sort_by_key(|r| rounded(r).to_string());
    rows
}

/// [`run_case`] for a case that pauses the wall clock before some steps
/// (`sleep_before_step_ms` in its case.json: processing-time timeouts): `clock`, the query's
/// manual clock, is moved forward by each pause before its step, and by
/// [`STEP_PROCESSING_MS`] before every other step, standing for the time Spark spent on a step.
pub fn run_case_with_clock(
    case: &str,
    staging: &Path,
    query: &StreamingQuery,
    table: &MemoryTable,
    input_rows: InputRows,
    clock: &flowgate::clock::ManualClock,
) {
    let steps: Vec<Vec<(String, PathBuf)>> = input_files(case).into_iter().map(|f| vec![(String::new(), f)]).collect();
    let path = cases_dir().join(case).join("case.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    let spec: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let pauses = spec["sleep_before_step_ms"].clone();
    let mut before = |step: usize| {
        let pause = pauses[step.to_string()].as_i64().unwrap_or(STEP_PROCESSING_MS);
        clock.advance_ms(pause);
    };
    replay(
        case,
        &steps,
        &[(String::new(), staging.to_path_buf())],
        query,
        table,
        input_rows,
        Replay { ulps: 0, before_step: &mut before, restart: None, pruned: None },
    );
}

/// How far a replay moves a manual clock before a step the harness did not pause before: a
/// second, well within the harness's rule that such steps follow each other much faster than
/// a case's processing-time timeouts (60 s in `group_state_processing_time_timeout`).
pub const STEP_PROCESSING_MS: i64 = 1_000;

/// A case's steps over several sources: the input files named alike (`batch_003.jsonl` of each
/// source) make one step, in name order; and the staging directories by source name.
#[allow(clippy::type_complexity)]
fn source_steps(case: &str, stagings: &[(&str, &Path)]) -> (Vec<Vec<(String, PathBuf)>>, Vec<(String, PathBuf)>) {
    let mut by_step: std::collections::BTreeMap<String, Vec<(String, PathBuf)>> = Default::default();
    for (source, _) in stagings {
        let dir = cases_dir().join(case).join("input").join(source);
        for e in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("reading {}: {e}", dir.display())).flatten() {
            let name = e.file_name().to_string_lossy().to_string();
            by_step.entry(name).or_default().push((source.to_string(), e.path()));
        }
    }
    let steps = by_step.into_values().collect();
    (steps, stagings.iter().map(|(s, p)| (s.to_string(), p.to_path_buf())).collect())
}

/// [`run_case`] for a case of several stream sources: `input/<source>/batch_NNN.jsonl`, step
/// NNN of each source (a missing file adds nothing to that source in that step), each source
/// through its own staging directory (`stagings`: source name, directory).
pub fn run_case_sources(
    case: &str,
    stagings: &[(&str, &Path)],
    query: &StreamingQuery,
    table: &MemoryTable,
    input_rows: InputRows,
) {
    let (steps, stagings) = source_steps(case, stagings);
    replay(
        case,
        &steps,
        &stagings,
        query,
        table,
        input_rows,
        Replay { ulps: 0, before_step: &mut |_| {}, restart: None, pruned: None },
    );
}

/// How a replay compares doubles (within `ulps`, exactly when 0), what runs before each
/// step (a manual clock moved), and whether the query is stopped before a step and started
/// again from its checkpoint (`restart`: the step, and how to start it).
struct Replay<'a> {
    ulps: u64,
    before_step: &'a mut dyn FnMut(usize),
    restart: Option<(usize, &'a dyn Fn() -> StreamingQuery)>,
    /// A stateful operator (its index in progress) that may hold fewer rows than Spark's.
    pruned: Option<usize>,
}

/// [`run_case`], with the query stopped before step `restart_at` and started again by `start`
/// (which must give it the same checkpoint and sink): every batch after the restart must
/// still be Spark's.
pub fn run_case_restarting(
    case: &str,
    staging: &Path,
    start: &dyn Fn() -> StreamingQuery,
    table: &MemoryTable,
    input_rows: InputRows,
    restart_at: usize,
) {
    let steps: Vec<Vec<(String, PathBuf)>> = input_files(case).into_iter().map(|f| vec![(String::new(), f)]).collect();
    let query = start();
    let restart = Some((restart_at, start));
    let stagings = [(String::new(), staging.to_path_buf())];
    replay(
        case,
        &steps,
        &stagings,
        &query,
        table,
        input_rows,
        Replay { ulps: 0, before_step: &mut |_| {}, restart, pruned: None },
    );
}

/// [`run_case_sources`], with the query stopped before step `restart_at` and started again
/// by `start` (which must give it the same checkpoint and sink): every batch after the
/// restart must still be Spark's — state, watermarks and offsets restored exactly.
pub fn run_case_sources_restarting(
    case: &str,
    stagings: &[(&str, &Path)],
    start: &dyn Fn() -> StreamingQuery,
    table: &MemoryTable,
    input_rows: InputRows,
    restart_at: usize,
) {
    let (steps, stagings) = source_steps(case, stagings);
    let query = start();
    let restart = Some((restart_at, start));
    replay(
        case,
        &steps,
        &stagings,
        &query,
        table,
        input_rows,
        Replay { ulps: 0, before_step: &mut |_| {}, restart, pruned: None },
    );
}

/// [`run_case_sources`], restarted before step `restart_at` if given (as
/// [`run_case_sources_restarting`]), for a query whose stateful operator `pruned` (its index in
/// progress) keeps fewer rows than Spark's by a plan rule of ours (a stream-stream join after a
/// `max` aggregation buffers only the rows that can still match): its rows and updates are at
/// most Spark's each batch and its removals are not compared; everything else, the rows emitted
/// first of all, must be Spark's. Returns the last batch's progress.
pub fn run_case_sources_pruned(
    case: &str,
    stagings: &[(&str, &Path)],
    start: &dyn Fn() -> StreamingQuery,
    table: &MemoryTable,
    input_rows: InputRows,
    pruned: usize,
    restart_at: Option<usize>,
) -> flowgate::engine::QueryProgress {
    let (steps, stagings) = source_steps(case, stagings);
    let query = start();
    let restart = restart_at.map(|at| (at, start));
    let options = Replay { ulps: 0, before_step: &mut |_| {}, restart, pruned: Some(pruned) };
    let last = replay(case, &steps, &stagings, &query, table, input_rows, options);
    query.stop().ok();
    last.unwrap_or_else(|| panic!("case {case}: no progress"))
}

fn replay(
    case: &str,
    steps: &[Vec<(String, PathBuf)>],
    stagings: &[(String, PathBuf)],
    query: &StreamingQuery,
    table: &MemoryTable,
    input_rows: InputRows,
    options: Replay<'_>,
) -> Option<flowgate::engine::QueryProgress> {
    let Replay { ulps, before_step, restart, pruned } = options;
    let mut restarted: Option<StreamingQuery> = None;
    let expected = expected(case);
    assert!(!steps.is_empty(), "case {case} has no input files");
    let scratch = tempfile::tempdir().expect("scratch dir");
    let mut seen_batches = 0usize;
    let mut checked = 0usize;
    query.process_all_available().expect("initial trigger");
    for (step, files) in steps.iter().enumerate() {
        if let Some((at, start)) = restart {
            if at == step {
                query.stop().unwrap_or_else(|e| panic!("case {case}: stopping before step {step}: {e}"));
                let q = start();
                // As at the first start: the restarted query's first trigger runs before the
                // step's files arrive, so no batch starts between two of their renames.
                q.process_all_available().unwrap_or_else(|e| panic!("case {case}: restarting before step {step}: {e}"));
                restarted = Some(q);
            }
        }
        let query = restarted.as_ref().unwrap_or(query);
        before_step(step);
        for (source, file) in files {
            let name = file.file_name().expect("file name");
            let staging = &stagings.iter().find(|(s, _)| s == source).expect("a staging dir per source").1;
            let tmp = scratch.path().join(name);
            std::fs::copy(file, &tmp).expect("copy input");
            std::fs::rename(&tmp, staging.join(name)).expect("rename input into staging");
        }
        query.process_all_available().unwrap_or_else(|e| panic!("case {case} step {step}: {e}"));
        let history = table.history();
        let progress = query.recent_progress();
        let new = &history[seen_batches..];
        let want: Vec<&ExpectedBatch> = expected.iter().filter(|b| b.step == step as u64).collect();
        assert_eq!(
            new.iter().map(|(id, _)| *id).collect::<Vec<_>>(),
            want.iter().map(|b| b.batch).collect::<Vec<_>>(),
            "case {case} step {step}: batch ids differ from Spark's"
        );
        for ((id, batch), exp) in new.iter().zip(&want) {
            let got = canonical_within(rows_as_json(batch), ulps);
            let exp_rows = canonical_within(exp.rows.clone(), ulps);
            assert!(
                got.len() == exp_rows.len() && got.iter().zip(&exp_rows).all(|(g, w)| same_within(g, w, ulps)),
                "case {case} batch {id}: rows differ from Spark's\n got:  {}\n want: {}",
                Value::Array(got.clone()),
                Value::Array(exp_rows.clone())
            );
            let p = progress.iter().find(|p| p.batch_id == *id).expect("progress of the batch");
            if input_rows == InputRows::Check {
                assert_eq!(p.num_input_rows, exp.num_input_rows, "case {case} batch {id}: input rows");
            }
            for (i, (op, want_op)) in p.state_operators.iter().zip(&exp.state).enumerate() {
                if pruned == Some(i) {
                    let at_most = |got: u64, key: &str| {
                        let want = want_op[key].as_u64().unwrap_or_else(|| panic!("case {case}: no {key}"));
                        assert!(got <= want, "case {case} batch {id}: operator {i}'s {key} {got} above Spark's {want}");
                    };
                    at_most(op.num_rows_total, "rows_total");
                    at_most(op.num_rows_updated, "rows_updated");
                } else {
                    assert_eq!(
                        Some(op.num_rows_total),
                        want_op["rows_total"].as_u64(),
                        "case {case} batch {id}: state rows_total"
                    );
                    assert_eq!(
                        Some(op.num_rows_updated),
                        want_op["rows_updated"].as_u64(),
                        "case {case} batch {id}: state rows_updated"
                    );
                }
                assert_eq!(
                    Some(op.num_rows_dropped_by_watermark),
                    want_op["rows_dropped_by_watermark"].as_u64(),
                    "case {case} batch {id}: rows dropped by watermark"
                );
            }
            assert_eq!(
                p.state_operators.len(),
                exp.state.len(),
                "case {case} batch {id}: number of stateful operators"
            );
            for (op, want_op) in
                p.state_operators.iter().zip(&exp.state).enumerate().filter(|(i, _)| pruned != Some(*i)).map(|(_, x)| x)
            {
                assert_eq!(
                    Some(op.num_rows_removed),
                    want_op["rows_removed"].as_u64(),
                    "case {case} batch {id}: state rows_removed"
                );
            }
            let fmt =
                |t: Option<flowgate::Timestamp>| t.map(|t| Value::from(spark_timestamp(t.0))).unwrap_or(Value::Null);
            assert_eq!(fmt(p.watermark), exp.raw["progress_watermark"], "case {case} batch {id}: watermark in effect");
            assert_eq!(
                fmt(p.next_watermark),
                exp.raw["watermark"],
                "case {case} batch {id}: watermark after the batch"
            );
            let no_data = p.sources.iter().all(|s| s.start_offset == s.end_offset);
            assert_eq!(no_data, exp.no_data_batch, "case {case} batch {id}: no-data batch");
            checked += 1;
        }
        seen_batches = history.len();
    }
    assert_eq!(checked, expected.len(), "case {case}: Spark ran {} batches, flowgate {}", expected.len(), checked);
    let last = restarted.as_ref().unwrap_or(query).recent_progress().pop();
    if let Some(q) = restarted {
        q.stop().unwrap_or_else(|e| panic!("case {case}: stopping the restarted query: {e}"));
    }
    last
}
