//! Stream-stream joins of Nexmark's persons and auctions against hand-written symmetric hash
//! joins over the same Arrow micro-batches (in memory, one run side by side):
//! - **q3** (local item suggestion): auctions of category 10 joined with the persons of OR,
//!   ID or CA who sell them, `auction.seller = person.id` — Nexmark's query as a streaming
//!   inner join without watermarks (both sides keep every row, as Spark would);
//! - **q8's join** (monitor new users): persons joined with the auctions they opened in the
//!   same 10-second tumbling window, both streams watermarked 10 seconds behind, so state
//!   leaves by window. Nexmark's q8 then groups to one row per person and window; the
//!   aggregation after a stream-stream join is not built yet, so both sides here stop at the
//!   join's pairs.
//!
//! The event sequence is cut into micro-batches of `EVENTS_PER_BATCH` events, each carrying
//! that stretch's persons and auctions. The hand loops are what a careful engineer writes: a
//! `HashMap` from key to buffered rows per side, the left side's batch probing the right
//! side's rows then buffered, then the right side's, outputs built column by column; q8's
//! evicts by window end against the same watermark.

use std::sync::{Arc, OnceLock};
use std::time::Instant;

use arrow_array::builder::{Int64Builder, StringBuilder, TimestampMicrosecondBuilder};
use arrow_array::cast::AsArray;
use arrow_array::types::{Int64Type, TimestampMicrosecondType};
use arrow_array::{ArrayRef, RecordBatch};
use flowgate::engine::{BatchContext, PlanConfig};
use flowgate::prelude::*;
use flowgate::StateOperatorProgress;
use hashbrown::HashMap;

use crate::nexmark::generator::{Auction, Generator, Kind, Person};
use crate::workloads::{canonical, Hasher};
use crate::Measured;

/// Events per micro-batch (about 2 000 persons and 6 000 auctions).
pub const EVENTS_PER_BATCH: u64 = 100_000;
/// q8's window and watermark delay (µs).
const WINDOW_US: i64 = 10_000_000;

#[derive(Record)]
pub struct Q3Row {
    pub name: String,
    pub city: String,
    pub state: String,
    pub id: i64,
}

#[derive(Record)]
pub struct Q8Row {
    pub id: i64,
    pub name: String,
    pub starttime: Timestamp,
}

stream_query! {
    /// Nexmark q3: who sells category-10 items in Oregon, Idaho or California.
    pub(crate) query Q3(auctions: Auction, persons: Person) -> Q3Row, mode = append {
        auctions
            .filter(category == 10)
            .join(persons.filter(state == "OR" || state == "ID" || state == "CA"), seller = persons.id)
            .select(name = persons.name, city = persons.city, state = persons.state, id)
    }

    /// Nexmark q8's join: a person and an auction of theirs in the same 10-second window.
    pub(crate) query Q8Join(persons: Person, auctions: Auction) -> Q8Row, mode = append {
        persons
            .with_watermark(date_time, "10 seconds")
            .join(
                auctions.with_watermark(date_time, "10 seconds"),
                id = auctions.seller,
                window(date_time, "10 seconds") = window(auctions.date_time, "10 seconds"),
            )
            .select(id, name, starttime = Timestamp(date_time.0 - date_time.0.rem_euclid(WINDOW_US)))
    }
}

/// Micro-batches: (persons, auctions) of each stretch of `EVENTS_PER_BATCH` events.
static BATCHES: OnceLock<Vec<(RecordBatch, RecordBatch)>> = OnceLock::new();

/// The first `events` Nexmark events' persons and auctions, cut into micro-batches.
pub fn prepare(events: usize) {
    BATCHES.get_or_init(|| {
        let g = Generator::new(0);
        let events = events as u64;
        (0..events)
            .step_by(EVENTS_PER_BATCH as usize)
            .map(|from| {
                let to = (from + EVENTS_PER_BATCH).min(events);
                (g.batch_between(Kind::Person, from, to), g.batch_between(Kind::Auction, from, to))
            })
            .collect()
    });
}

fn batches() -> &'static [(RecordBatch, RecordBatch)] {
    BATCHES.get().expect("prepared")
}

/// Runs `spec` one micro-batch per stretch, inputs in `order` (0 persons, 1 auctions), the
/// watermark advanced as the engine does; returns the output and the join's last progress.
fn run(spec: flowgate::engine::QuerySpec, persons_first: bool) -> (Measured, StateOperatorProgress) {
    let start = Instant::now();
    let mut plan = (spec.make_plan)(&PlanConfig::with_partitions(2));
    let (mut wm_last, mut wm_next) = (0i64, 0i64);
    let mut out = Vec::new();
    let mut last = StateOperatorProgress::default();
    for (id, (p, a)) in batches().iter().enumerate() {
        let ctx = BatchContext {
            watermark_for_late: Some(wm_last),
            watermark_for_eviction: Some(wm_next),
            ..BatchContext::new(id as u64, OutputMode::Append)
        };
        let inputs =
            if persons_first { [vec![p.clone()], vec![a.clone()]] } else { [vec![a.clone()], vec![p.clone()]] };
        out.extend(plan.run_batch(&ctx, &inputs).expect("run"));
        let next = plan.watermarks().candidate().map_or(wm_next, |c| c.max(wm_next));
        (wm_last, wm_next) = (wm_next, next);
        plan.operators().each(&mut |o| last = o.metrics());
    }
    let elapsed = start.elapsed();
    let note = format!(
        "{} rows out, {} rows buffered at the end, {:.0} state bytes per buffered row",
        out.iter().map(RecordBatch::num_rows).sum::<usize>(),
        last.num_rows_total,
        last.memory_used_bytes as f64 / last.num_rows_total.max(1) as f64
    );
    (Measured { elapsed, note, result: canonical(&out) }, last)
}

pub fn fg_q3(_events: usize) -> Measured {
    run(Q3::spec(), false).0
}

pub fn fg_q8(_events: usize) -> Measured {
    run(Q8Join::spec(), true).0
}

/// The hand-written q3: buffered auctions (seller → ids) and persons (id → name, city,
/// state), each batch's auctions probing the persons, then its persons probing the auctions.
pub fn hand_q3(_events: usize) -> Measured {
    let start = Instant::now();
    let mut auctions: HashMap<i64, Vec<i64>, Hasher> = HashMap::with_hasher(Hasher::with_seed(1));
    let mut persons: HashMap<i64, Vec<(String, String, String)>, Hasher> = HashMap::with_hasher(Hasher::with_seed(2));
    let schema = Q3Row::schema();
    let mut out = Vec::new();
    for (p, a) in batches() {
        let (mut name, mut city, mut state, mut id) =
            (StringBuilder::new(), StringBuilder::new(), StringBuilder::new(), Int64Builder::new());
        let a_id = a.column_by_name("id").unwrap().as_primitive::<Int64Type>();
        let seller = a.column_by_name("seller").unwrap().as_primitive::<Int64Type>();
        let category = a.column_by_name("category").unwrap().as_primitive::<Int64Type>();
        for i in 0..a.num_rows() {
            if category.value(i) != 10 {
                continue;
            }
            let s = seller.value(i);
            if let Some(ps) = persons.get(&s) {
                for (n, c, st) in ps {
                    name.append_value(n);
                    city.append_value(c);
                    state.append_value(st);
                    id.append_value(a_id.value(i));
                }
            }
            auctions.entry(s).or_default().push(a_id.value(i));
        }
        let p_id = p.column_by_name("id").unwrap().as_primitive::<Int64Type>();
        let p_name = p.column_by_name("name").unwrap().as_string::<i32>();
        let p_city = p.column_by_name("city").unwrap().as_string::<i32>();
        let p_state = p.column_by_name("state").unwrap().as_string::<i32>();
        for i in 0..p.num_rows() {
            let st = p_state.value(i);
            if !(st == "OR" || st == "ID" || st == "CA") {
                continue;
            }
            let k = p_id.value(i);
            if let Some(ids) = auctions.get(&k) {
                for aid in ids {
                    name.append_value(p_name.value(i));
                    city.append_value(p_city.value(i));
                    state.append_value(st);
                    id.append_value(*aid);
                }
            }
            persons.entry(k).or_default().push((p_name.value(i).into(), p_city.value(i).into(), st.into()));
        }
        let cols: Vec<ArrayRef> =
            vec![Arc::new(name.finish()), Arc::new(city.finish()), Arc::new(state.finish()), Arc::new(id.finish())];
        out.push(RecordBatch::try_new(schema.clone(), cols).expect("batch"));
    }
    let elapsed = start.elapsed();
    let buffered: usize =
        auctions.values().map(Vec::len).sum::<usize>() + persons.values().map(Vec::len).sum::<usize>();
    Measured { elapsed, note: format!("{buffered} rows buffered at the end"), result: canonical(&out) }
}

/// The hand-written q8 join: per side a map from (person id, window start) to buffered rows,
/// late rows (window end at or behind the previous watermark) dropped, each side's rows
/// evicted when their window ends at or behind the watermark.
pub fn hand_q8(_events: usize) -> Measured {
    let start = Instant::now();
    type Key = (i64, i64);
    let mut persons: HashMap<Key, Vec<(String, i64)>, Hasher> = HashMap::with_hasher(Hasher::with_seed(1));
    let mut auctions: HashMap<Key, usize, Hasher> = HashMap::with_hasher(Hasher::with_seed(2));
    let schema = Q8Row::schema();
    let (mut wm_last, mut wm_next) = (0i64, 0i64);
    let (mut max_p, mut max_a) = (i64::MIN, i64::MIN);
    let mut out = Vec::new();
    let window = |t: i64| t - t.rem_euclid(WINDOW_US);
    for (p, a) in batches() {
        let (mut id, mut name, mut starttime) =
            (Int64Builder::new(), StringBuilder::new(), TimestampMicrosecondBuilder::new().with_timezone("UTC"));
        let p_id = p.column_by_name("id").unwrap().as_primitive::<Int64Type>();
        let p_name = p.column_by_name("name").unwrap().as_string::<i32>();
        let p_time = p.column_by_name("date_time").unwrap().as_primitive::<TimestampMicrosecondType>();
        for i in 0..p.num_rows() {
            let t = p_time.value(i);
            max_p = max_p.max(t);
            let w = window(t);
            if w + WINDOW_US <= wm_last {
                continue;
            }
            let key = (p_id.value(i), w);
            for _ in 0..auctions.get(&key).copied().unwrap_or(0) {
                id.append_value(key.0);
                name.append_value(p_name.value(i));
                starttime.append_value(w);
            }
            persons.entry(key).or_default().push((p_name.value(i).to_string(), t));
        }
        let seller = a.column_by_name("seller").unwrap().as_primitive::<Int64Type>();
        let a_time = a.column_by_name("date_time").unwrap().as_primitive::<TimestampMicrosecondType>();
        for i in 0..a.num_rows() {
            let t = a_time.value(i);
            max_a = max_a.max(t);
            let w = window(t);
            if w + WINDOW_US <= wm_last {
                continue;
            }
            let key = (seller.value(i), w);
            if let Some(ps) = persons.get(&key) {
                for (n, _) in ps {
                    id.append_value(key.0);
                    name.append_value(n);
                    starttime.append_value(w);
                }
            }
            if w + WINDOW_US > wm_next {
                *auctions.entry(key).or_default() += 1;
            }
        }
        persons.retain(|k, _| k.1 + WINDOW_US > wm_next);
        auctions.retain(|k, _| k.1 + WINDOW_US > wm_next);
        let cols: Vec<ArrayRef> = vec![Arc::new(id.finish()), Arc::new(name.finish()), Arc::new(starttime.finish())];
        out.push(RecordBatch::try_new(schema.clone(), cols).expect("batch"));
        let candidate = if max_p == i64::MIN || max_a == i64::MIN {
            wm_next
        } else {
            (max_p.min(max_a) - WINDOW_US).div_euclid(1000) * 1000
        };
        (wm_last, wm_next) = (wm_next, candidate.max(wm_next));
    }
    let elapsed = start.elapsed();
    Measured { elapsed, note: String::new(), result: canonical(&out) }
}

/// `joins-spark`: q3 and q8's join over the same JSON files in flowgate (the engine: two file
/// sources, one file each per micro-batch, trigger available-now, memory sink) and in Spark
/// (`benches/spark/joins.py`, the same shape), side by side in one run; Spark's fixed cost of
/// a query (an empty input) printed apart. The row counts must agree.
pub fn spark_compare(events: usize, runs: usize, queries: &[&str]) {
    prepare(events);
    let root =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/bench-data").join(format!("joins-{events}"));
    let (pdir, adir) = (root.join("person"), root.join("auction"));
    if !root.join("_done").exists() {
        let _ = std::fs::remove_dir_all(&root);
        let persons: Vec<RecordBatch> = batches().iter().map(|(p, _)| p.clone()).collect();
        let auctions: Vec<RecordBatch> = batches().iter().map(|(_, a)| a.clone()).collect();
        crate::files::write(&pdir, crate::files::Encoding::Json, &persons, persons.len()).expect("write persons");
        crate::files::write(&adir, crate::files::Encoding::Json, &auctions, auctions.len()).expect("write auctions");
        std::fs::write(root.join("_done"), "").expect("marker");
    }
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let python = crate::compare::spark_python();
    println!("{events} Nexmark events as JSON files ({} micro-batches of {EVENTS_PER_BATCH} events)", batches().len());
    println!("query  system      median s   events/s    rows   spark/flowgate");
    for &q in queries {
        let mut times = Vec::new();
        let mut rows = 0;
        for _ in 0..runs {
            let table = MemoryTable::new();
            let start = Instant::now();
            let query = if q == "q3" {
                Q3::builder()
                    .auctions(Source::file(&adir).json().max_files_per_trigger(1))
                    .persons(Source::file(&pdir).json().max_files_per_trigger(1))
                    .sink(Sink::memory(&table))
                    .trigger(Trigger::available_now())
                    .start()
            } else {
                Q8Join::builder()
                    .persons(Source::file(&pdir).json().max_files_per_trigger(1))
                    .auctions(Source::file(&adir).json().max_files_per_trigger(1))
                    .sink(Sink::memory(&table))
                    .trigger(Trigger::available_now())
                    .start()
            }
            .expect("start");
            query.await_termination().expect("run");
            times.push(start.elapsed().as_secs_f64());
            rows = table.history().iter().map(|(_, b)| b.num_rows()).sum::<usize>();
        }
        let fg = median(times);
        println!("{q}     flowgate    {fg:8.3}   {:9.3e}  {rows:7}", events as f64 / fg);
        match &python {
            Err(why) => println!("{q}     spark       skipped: {why}"),
            Ok(py) => {
                let Some(v) = run_spark_join(py, q, runs, &[("--persons", &pdir), ("--auctions", &adir)]) else {
                    continue;
                };
                let sp = median(v["elapsed_s"].as_array().unwrap().iter().filter_map(|x| x.as_f64()).collect());
                let spark_rows = v["rows"].as_u64().unwrap_or(0) as usize;
                assert_eq!(spark_rows, rows, "{q}: Spark and flowgate disagree on the number of joined rows");
                println!(
                    "{q}     spark       {sp:8.3}   {:9.3e}  {spark_rows:7}   {:.1}x (Spark's fixed cost of a query: {:.2} s)",
                    events as f64 / sp,
                    sp / fg,
                    v["empty_s"].as_f64().unwrap_or(0.0)
                );
            }
        }
    }
}

/// Runs query `q` of `benches/spark/joins.py` with `runs` and the given input directories
/// (`--flag`, directory), and returns the JSON object its last line prints; on a failure prints
/// Spark's last error line and returns `None`.
pub(crate) fn run_spark_join(
    py: &std::path::Path,
    q: &str,
    runs: usize,
    inputs: &[(&str, &std::path::Path)],
) -> Option<serde_json::Value> {
    let mut cmd = std::process::Command::new(py);
    cmd.arg(crate::compare::spark_dir().join("joins.py")).args([
        "--query",
        q,
        "--runs",
        &runs.to_string(),
        "--threads",
        "2",
    ]);
    for (flag, dir) in inputs {
        cmd.arg(flag).arg(dir);
    }
    let out = cmd.output().expect("run spark");
    let text = String::from_utf8_lossy(&out.stdout);
    let v = text.lines().last().and_then(|l| serde_json::from_str::<serde_json::Value>(l).ok());
    if v.is_none() {
        println!("{q}     spark       failed: {}", String::from_utf8_lossy(&out.stderr).lines().last().unwrap_or(""));
    }
    v
}
