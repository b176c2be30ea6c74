//! Throughput of the same query in micro-batch and continuous mode, side by side in one run
//! (issue 15's goal: continuous within 1.5× of micro-batch).
//!
//! The input is fixed and present before the query starts: `--rows` rows (default 4 M) in a
//! memory stream, as batches of [`BATCH_ROWS`] (what a task reads as one vector). A run is
//! timed from `start()` until the sink has every row's result: micro-batch mode (default
//! trigger) takes the whole backlog in one batch, its best case; continuous mode's one task
//! (the memory source has one partition) runs the plan on each vector as it reads it, the
//! stateless query's in the task's plan, the stateful query's on the stage it shares (before
//! 2026-12-01 20:00 the stage ran once per epoch on the epoch's vectors); a task that finds a
//! backlog takes up to 64 Ki rows of it in one call, so the stage aggregates it in parallel. Epochs are [`EPOCH_MS`] long here, so waiting for the last epoch to end costs little
//! beside the run. Two queries, as in `latency.rs`: `stateless` (a filter and a select) and
//! `stateful` (count per key, update mode). The runs alternate between the modes and the
//! median of `--runs` (default 5) is reported, with the ratio continuous / micro-batch of the
//! rows per second.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arrow_array::cast::AsArray;
use arrow_array::types::Int64Type;
use arrow_array::RecordBatch;
use flowgate::prelude::*;

/// Rows a batch of the input (a task's vector: the runtime's `MAX_VECTOR_ROWS`).
const BATCH_ROWS: usize = 8_192;

/// The epoch interval of the continuous runs: short, so the end of the last epoch is near.
const EPOCH_MS: u64 = 10;

/// Keys of the stateful query (`value % 100`).
const KEYS: i64 = 100;

#[derive(Record, Clone)]
struct Tick {
    timestamp: Timestamp,
    value: i64,
}

#[derive(Record)]
struct Converted {
    timestamp: Timestamp,
    value: i64,
    euros: f64,
}

#[derive(Record)]
struct KeyCount {
    key: i64,
    n: i64,
}

stream_query! {
    /// Nexmark q1 after a q2-like selection (latency.rs's `stateless`).
    query Stateless(ticks: Tick) -> Converted, mode = append {
        ticks
            .filter(value % 100 != 99)
            .select(timestamp, value, euros = 0.908 * value as f64)
    }

    /// Count per key in update mode (latency.rs's `stateful`).
    query Stateful(ticks: Tick) -> KeyCount, mode = update {
        ticks.group_by(key = value % 100).agg(count() as n)
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Stateless,
    Stateful,
}

/// What the sink has seen: output rows (stateless), or the last count per key (stateful).
#[derive(Default)]
struct Seen {
    rows: u64,
    counts: HashMap<i64, i64>,
}

impl Seen {
    /// Input rows accounted for so far.
    fn done(&self, kind: Kind) -> u64 {
        match kind {
            Kind::Stateless => self.rows,
            Kind::Stateful => self.counts.values().sum::<i64>() as u64,
        }
    }

    fn add(&mut self, kind: Kind, batch: &RecordBatch) {
        match kind {
            Kind::Stateless => self.rows += batch.num_rows() as u64,
            Kind::Stateful => {
                let keys = batch.column(0).as_primitive::<Int64Type>();
                let counts = batch.column(1).as_primitive::<Int64Type>();
                for (k, n) in keys.values().iter().zip(counts.values()) {
                    self.counts.insert(*k, *n);
                }
            }
        }
    }
}

fn input(rows: usize) -> Vec<Vec<Tick>> {
    (0..rows)
        .step_by(BATCH_ROWS)
        .map(|at| {
            (at..(at + BATCH_ROWS).min(rows))
                .map(|v| Tick { timestamp: Timestamp(1_700_000_000_000_000 + v as i64), value: v as i64 })
                .collect()
        })
        .collect()
}

/// One timed run: from `start()` until the sink accounted for every row.
fn run(kind: Kind, continuous: bool, batches: &[Vec<Tick>], expected: u64) -> flowgate::Result<Duration> {
    let stream = MemoryStream::<Tick>::new();
    for b in batches {
        stream.add(b.clone());
    }
    let seen = Arc::new(Mutex::new(Seen::default()));
    let s = seen.clone();
    let record = move |_: u64, batch: &RecordBatch| {
        s.lock().unwrap_or_else(|e| e.into_inner()).add(kind, batch);
        Ok(())
    };
    let sink = if continuous { Sink::foreach_rows(record) } else { Sink::foreach_batch(record) };
    let epochs = Trigger::continuous(&format!("{EPOCH_MS} milliseconds"));
    let started = Instant::now();
    let query = match (kind, continuous) {
        (Kind::Stateless, false) => Stateless::builder().ticks(Source::memory(&stream)).sink(sink).start()?,
        (Kind::Stateless, true) => {
            Stateless::builder().ticks(Source::memory(&stream)).sink(sink).trigger(epochs).start()?
        }
        (Kind::Stateful, false) => Stateful::builder().ticks(Source::memory(&stream)).sink(sink).start()?,
        (Kind::Stateful, true) => {
            Stateful::builder().ticks(Source::memory(&stream)).sink(sink).trigger(epochs).start()?
        }
    };
    let deadline = started + Duration::from_secs(300);
    let elapsed = loop {
        if seen.lock().unwrap_or_else(|e| e.into_inner()).done(kind) >= expected {
            break started.elapsed();
        }
        if Instant::now() > deadline {
            return Err(flowgate::Error::Execution("the run did not finish within 300 s".into()));
        }
        if let Some(e) = query.exception() {
            return Err(flowgate::Error::Execution(e));
        }
        std::thread::sleep(Duration::from_micros(200));
    };
    query.stop()?;
    let done = seen.lock().unwrap_or_else(|e| e.into_inner()).done(kind);
    if done != expected {
        return Err(flowgate::Error::Execution(format!("the sink accounted for {done} rows, expected {expected}")));
    }
    Ok(elapsed)
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// Runs both queries in both modes, prints a table and writes it to
/// `target/bench-throughput.txt`.
pub fn main(rows: usize, runs: usize) {
    let batches = input(rows);
    let mut out = String::new();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let header = format!(
        "throughput: {rows} rows in batches of {BATCH_ROWS} from a memory stream, median of {runs} runs \
         (modes alternating), {cores} cores; continuous epochs {EPOCH_MS} ms\n\n{:<10} {:>12} {:>14} {:>12} {:>14} {:>10}\n",
        "query", "micro ms", "micro rows/s", "cont. ms", "cont. rows/s", "cont/micro"
    );
    print!("{header}");
    out.push_str(&header);
    for kind in [Kind::Stateless, Kind::Stateful] {
        let expected = match kind {
            Kind::Stateless => (0..rows as i64).filter(|v| v % 100 != 99).count() as u64,
            Kind::Stateful => rows as u64,
        };
        let (mut micro, mut cont) = (Vec::new(), Vec::new());
        for _ in 0..runs.max(1) {
            for continuous in [false, true] {
                match run(kind, continuous, &batches, expected) {
                    Ok(t) if continuous => cont.push(t),
                    Ok(t) => micro.push(t),
                    Err(e) => {
                        eprintln!("throughput run failed: {e}");
                        std::process::exit(1);
                    }
                }
            }
        }
        let (m, c) = (median(micro), median(cont));
        let rate = |d: Duration| rows as f64 / d.as_secs_f64();
        let line = format!(
            "{:<10} {:>12.1} {:>14.0} {:>12.1} {:>14.0} {:>10.2}\n",
            if kind == Kind::Stateless { "stateless" } else { "stateful" },
            m.as_secs_f64() * 1e3,
            rate(m),
            c.as_secs_f64() * 1e3,
            rate(c),
            rate(c) / rate(m)
        );
        print!("{line}");
        out.push_str(&line);
    }
    let note = format!(
        "\nrows/s = input rows / time from start() until the sink accounted for every row (stateful: \
         the last count per key of {KEYS} keys sums to the input); cont/micro ≥ 0.67 meets the goal \
         (within 1.5×)\n"
    );
    print!("{note}");
    out.push_str(&note);
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/bench-throughput.txt");
    if let Err(e) = std::fs::write(&path, out) {
        eprintln!("could not write {}: {e}", path.display());
    } else {
        println!("written to {}", path.display());
    }
}
