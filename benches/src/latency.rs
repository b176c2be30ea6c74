//! End-to-end latency of real queries, in micro-batch and continuous mode side by side: a query
//! started with `builder().start()` on the rate source, a sink that records, for every input
//! row, the time it reached the sink minus the time the row became available to the source (the
//! rate source's `timestamp`: row `v` is created at `start + v / rowsPerSecond`). Both times are
//! read on one clock, `flowgate::clock` (UTC microseconds advancing with the monotonic clock),
//! on which the rate source stamps each row, rounded down, when it comes into existence: so a
//! latency is never negative. (Results before 2026-12-01 read the sink time from the wall clock
//! and the row's existence from the monotonic one; the drift between the two made some medians
//! negative.)
//!
//! The sink is `foreach_batch` in micro-batch mode (called once per batch, after the batch's
//! offsets are durable when there is a checkpoint) and `foreach_rows` in continuous mode
//! (called with each vector a task produced, before its epoch commits: at-least-once; the
//! exactly-once sinks publish an epoch at its commit, up to one epoch interval later).
//!
//! Two queries: `stateless` (a filter and a select, Nexmark q1/q2 on the rate rows; one output
//! row per input row that passes the filter) and `stateful` (count per key in update mode; the
//! sink keeps the last count per key, so an output row whose count grew by `k` stands for `k`
//! new input rows, whose values and creation times follow from the key and the group's last
//! value). Each with the default trigger (as fast as possible), a 1 ms processing-time
//! trigger and the continuous trigger with 1-second epochs, with and without a checkpoint
//! directory (under `target/`, on the same disk as the build, so fsyncs are real). The
//! stateful query in continuous mode runs each vector on the stateful stage as it arrives and
//! emits the keys it changed at once (see `engine/continuous/stage.rs`), so its latency is a
//! vector's, as the stateless query's; results before 2026-12-01 20:00 ran it once per epoch
//! (latency about the epoch interval).

use std::collections::HashMap;
use std::io::Write as _;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arrow_array::cast::AsArray;
use arrow_array::types::{Int64Type, TimestampMicrosecondType};
use arrow_array::RecordBatch;
use flowgate::prelude::*;

/// The rate source's rows.
#[derive(Record)]
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
    last_ts: Timestamp,
    last_value: i64,
}

/// Keys of the stateful query (`value % KEYS`; the literal in the query must match).
const KEYS: i64 = 100;

stream_query! {
    /// Nexmark q1 (currency conversion) after a q2-like selection, on the rate rows.
    query Stateless(ticks: Tick) -> Converted, mode = append {
        ticks
            .filter(value % 100 != 99)
            .select(timestamp, value, euros = 0.908 * value as f64)
    }

    /// Count per key, update mode: every batch emits the keys it changed.
    query Stateful(ticks: Tick) -> KeyCount, mode = update {
        ticks
            .group_by(key = value % 100)
            .agg(count() as n, max(timestamp) as last_ts, max(value) as last_value)
    }
}

/// Which query.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Stateless,
    Stateful,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Stateless => "stateless",
            Kind::Stateful => "stateful",
        }
    }
}

/// Which trigger.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TriggerKind {
    /// Micro-batches as fast as possible.
    Default,
    /// Micro-batches on a processing-time trigger of this many milliseconds.
    Interval(u64),
    /// Continuous processing with epochs of this many milliseconds.
    Continuous(u64),
    /// The same, its tasks spinning through waits up to [`BUSY_WAIT_US`] for their next row
    /// (`ContinuousTrigger::with_busy_wait`) instead of sleeping.
    ContinuousSpin(u64),
}

/// The busy wait of `continuous-spin`: at 100 000 rows/s over the rate source's two partitions
/// a partition's next row is due every 20 µs, so its tasks never sleep while rows come; 50 µs
/// is the default timer slack a sleep could add.
pub const BUSY_WAIT_US: u64 = 50;

/// The epoch interval of the continuous runs (the issue's `Trigger::continuous("1 second")`).
const EPOCH_MS: u64 = 1_000;

/// One configuration to measure.
#[derive(Clone, Debug)]
pub struct Config {
    pub kind: Kind,
    pub rate: u64,
    pub trigger: TriggerKind,
    pub checkpoint: bool,
    /// Length of the measured window (after a warm-up).
    pub seconds: f64,
}

impl Config {
    fn trigger_name(&self) -> String {
        match self.trigger {
            TriggerKind::Default => "default".into(),
            TriggerKind::Interval(ms) => format!("{ms}ms"),
            TriggerKind::Continuous(_) => "continuous".into(),
            TriggerKind::ContinuousSpin(_) => "continuous-spin".into(),
        }
    }
}

/// What one run measured.
#[derive(Clone, Debug)]
pub struct Outcome {
    pub rows: usize,
    pub batches: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
    /// Input rows per second that reached the sink during the window.
    pub rows_per_s: f64,
    /// How far behind the sink was at the end of the window (ms): the time between the
    /// window's end and the creation of the newest row delivered by then, if older.
    pub behind_ms: f64,
}

/// Rows created before the window (start-up, first batches) are not counted.
const WARMUP: Duration = Duration::from_secs(1);

/// Now, on the clock the rate source stamps its rows on.
fn wall_micros() -> i64 {
    flowgate::clock::now_micros()
}

/// The rate source's offset of row `v` from row 0, in microseconds (same rounding as the source).
fn offset_micros(v: i64, rate: u64) -> i64 {
    (v as u128 * 1_000_000 / rate as u128) as i64
}

struct Recorder {
    rate: u64,
    /// Creation times counted: `[from, to)`, wall-clock microseconds.
    window: (i64, i64),
    latencies: Vec<i64>,
    /// Stateful: the last count seen per key.
    counts: HashMap<i64, i64>,
    /// Per batch: (delivery time, highest value delivered so far).
    deliveries: Vec<(i64, i64)>,
    max_value: i64,
    batches: u64,
}

impl Recorder {
    fn new(rate: u64, window: (i64, i64)) -> Self {
        Recorder {
            rate,
            window,
            latencies: Vec::with_capacity(1 << 20),
            counts: HashMap::new(),
            deliveries: Vec::new(),
            max_value: -1,
            batches: 0,
        }
    }

    fn record(&mut self, now: i64, created: i64) {
        if created >= self.window.0 && created < self.window.1 {
            self.latencies.push(now - created);
        }
    }

    fn add(&mut self, kind: Kind, batch: &RecordBatch) {
        let now = wall_micros();
        self.batches += 1;
        let col = |name: &str| batch.column_by_name(name).unwrap_or_else(|| panic!("no column {name}"));
        match kind {
            Kind::Stateless => {
                let ts = col("timestamp").as_primitive::<TimestampMicrosecondType>();
                let values = col("value").as_primitive::<Int64Type>();
                for i in 0..batch.num_rows() {
                    self.record(now, ts.value(i));
                    self.max_value = self.max_value.max(values.value(i));
                }
            }
            Kind::Stateful => {
                let keys = col("key").as_primitive::<Int64Type>();
                let ns = col("n").as_primitive::<Int64Type>();
                let last_ts = col("last_ts").as_primitive::<TimestampMicrosecondType>();
                let last_values = col("last_value").as_primitive::<Int64Type>();
                for i in 0..batch.num_rows() {
                    let (key, n, last) = (keys.value(i), ns.value(i), last_values.value(i));
                    assert_eq!(last % KEYS, key, "a group's last value is not in its key");
                    let before = self.counts.insert(key, n).unwrap_or(0);
                    // The rows new in this batch: the last `n - before` values of the key.
                    for j in 0..n - before {
                        let v = last - j * KEYS;
                        let created = last_ts.value(i) - (offset_micros(last, self.rate) - offset_micros(v, self.rate));
                        self.record(now, created);
                    }
                    self.max_value = self.max_value.max(last);
                }
            }
        }
        self.deliveries.push((now, self.max_value));
    }

    fn outcome(mut self, start: i64) -> Outcome {
        let (from, to) = self.window;
        self.latencies.sort_unstable();
        let pct = |q: f64| -> f64 {
            if self.latencies.is_empty() {
                return f64::NAN;
            }
            let i = ((q * self.latencies.len() as f64).ceil() as usize).clamp(1, self.latencies.len()) - 1;
            self.latencies[i] as f64 / 1e3
        };
        // Rows that reached the sink between the first delivery in the window and the last.
        let inside: Vec<&(i64, i64)> = self.deliveries.iter().filter(|(t, _)| *t >= from && *t < to).collect();
        let rows_per_s = match (inside.first(), inside.last()) {
            (Some(a), Some(b)) if b.0 > a.0 => (b.1 - a.1) as f64 / ((b.0 - a.0) as f64 / 1e6),
            _ => 0.0,
        };
        let newest_by_end = self.deliveries.iter().filter(|(t, _)| *t < to).map(|d| d.1).max().unwrap_or(-1);
        // Creation time of the newest row delivered by the window's end (the source started at
        // about `start`; only the difference to `to` matters, to a millisecond).
        let newest_created = start + offset_micros(newest_by_end.max(0), self.rate);
        Outcome {
            rows: self.latencies.len(),
            batches: self.batches,
            p50_ms: pct(0.50),
            p99_ms: pct(0.99),
            p999_ms: pct(0.999),
            max_ms: self.latencies.last().map_or(f64::NAN, |m| *m as f64 / 1e3),
            rows_per_s,
            behind_ms: ((to - newest_created) as f64 / 1e3 - 1e3 / self.rate as f64).max(0.0),
        }
    }
}

/// Runs one configuration: warm-up, then `seconds` of measured rows.
pub fn run(cfg: &Config) -> flowgate::Result<Outcome> {
    let checkpoint_root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/latency-checkpoints");
    std::fs::create_dir_all(&checkpoint_root).map_err(|e| flowgate::Error::io("creating checkpoint root", e))?;
    let dir = tempfile::tempdir_in(&checkpoint_root).map_err(|e| flowgate::Error::io("checkpoint dir", e))?;
    let start = wall_micros();
    let window_from = start + WARMUP.as_micros() as i64;
    let window_to = window_from + (cfg.seconds * 1e6) as i64;
    let recorder = Arc::new(Mutex::new(Recorder::new(cfg.rate, (window_from, window_to))));
    let rec = recorder.clone();
    let kind = cfg.kind;
    let record = move |_: u64, batch: &RecordBatch| {
        rec.lock().unwrap_or_else(|e| e.into_inner()).add(kind, batch);
        Ok(())
    };
    let source = Source::rate(cfg.rate);
    let checkpoint = cfg.checkpoint.then(|| dir.path().to_path_buf());
    let continuous = |ms: u64, spin: bool| {
        let t = Trigger::continuous(&format!("{ms} milliseconds"));
        if spin {
            t.with_busy_wait(Duration::from_micros(BUSY_WAIT_US))
        } else {
            t
        }
    };
    let query = match (cfg.kind, cfg.trigger) {
        (Kind::Stateless, TriggerKind::Continuous(ms) | TriggerKind::ContinuousSpin(ms)) => {
            let spin = matches!(cfg.trigger, TriggerKind::ContinuousSpin(_));
            let b = Stateless::builder().ticks(source).sink(Sink::foreach_rows(record)).trigger(continuous(ms, spin));
            match checkpoint {
                Some(dir) => b.checkpoint(dir).start()?,
                None => b.start()?,
            }
        }
        (Kind::Stateful, TriggerKind::Continuous(ms) | TriggerKind::ContinuousSpin(ms)) => {
            let spin = matches!(cfg.trigger, TriggerKind::ContinuousSpin(_));
            let b = Stateful::builder().ticks(source).sink(Sink::foreach_rows(record)).trigger(continuous(ms, spin));
            match checkpoint {
                Some(dir) => b.checkpoint(dir).start()?,
                None => b.start()?,
            }
        }
        (kind, trigger) => {
            let trigger = match trigger {
                TriggerKind::Interval(ms) => Trigger::try_processing_time(&format!("{ms} milliseconds"))?,
                _ => Trigger::default(),
            };
            let sink = Sink::foreach_batch(record);
            match kind {
                Kind::Stateless => {
                    let b = Stateless::builder().ticks(source).sink(sink).trigger(trigger);
                    match checkpoint {
                        Some(dir) => b.checkpoint(dir).start()?,
                        None => b.start()?,
                    }
                }
                Kind::Stateful => {
                    let b = Stateful::builder().ticks(source).sink(sink).trigger(trigger);
                    match checkpoint {
                        Some(dir) => b.checkpoint(dir).start()?,
                        None => b.start()?,
                    }
                }
            }
        }
    };
    // Let the rows created at the end of the window arrive.
    let interval_ms = match cfg.trigger {
        TriggerKind::Interval(ms) => ms,
        _ => 0,
    };
    let grace = Duration::from_millis(200 + interval_ms);
    let end = window_to + grace.as_micros() as i64;
    while wall_micros() < end {
        if query.await_termination_timeout(Duration::from_millis(50))? {
            break;
        }
    }
    query.stop()?;
    if let Some(e) = query.exception() {
        return Err(flowgate::Error::Execution(e));
    }
    let rec = std::mem::replace(&mut *recorder.lock().unwrap_or_else(|e| e.into_inner()), Recorder::new(1, (0, 0)));
    Ok(rec.outcome(start))
}

/// The configurations for `--rate`, `--seconds`, `--query`, `--trigger`, `--checkpoint`.
pub fn configs(
    rates: &[u64],
    seconds: f64,
    query: &str,
    trigger: &str,
    interval_ms: u64,
    checkpoint: &str,
) -> Vec<Config> {
    let kinds: Vec<Kind> = match query {
        "stateless" => vec![Kind::Stateless],
        "stateful" => vec![Kind::Stateful],
        _ => vec![Kind::Stateless, Kind::Stateful],
    };
    let triggers: Vec<TriggerKind> = match trigger {
        "default" => vec![TriggerKind::Default],
        "interval" => vec![TriggerKind::Interval(interval_ms)],
        "continuous" => vec![TriggerKind::Continuous(EPOCH_MS), TriggerKind::ContinuousSpin(EPOCH_MS)],
        _ => vec![
            TriggerKind::Default,
            TriggerKind::Interval(interval_ms),
            TriggerKind::Continuous(EPOCH_MS),
            TriggerKind::ContinuousSpin(EPOCH_MS),
        ],
    };
    let checkpoints: Vec<bool> = match checkpoint {
        "no" => vec![false],
        "yes" => vec![true],
        _ => vec![false, true],
    };
    let mut out = Vec::new();
    for &rate in rates {
        for &kind in &kinds {
            for &trigger in &triggers {
                for &checkpoint in &checkpoints {
                    out.push(Config { kind, rate, trigger, checkpoint, seconds });
                }
            }
        }
    }
    out
}

/// Runs `configs`, prints a table and appends it to `target/bench-latency.csv`.
pub fn main(configs: &[Config]) {
    println!(
        "{:<10} {:>8} {:>8} {:>10} {:>9} {:>9} {:>9} {:>9} {:>12} {:>8} {:>9}",
        "query", "trigger", "ckpt", "rate", "p50 ms", "p99 ms", "p99.9 ms", "max ms", "rows/s", "batches", "behind ms"
    );
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/bench-latency.csv");
    let new = !path.exists();
    let mut csv = match std::fs::OpenOptions::new().create(true).append(true).open(&path) {
        Ok(f) => Some(f),
        Err(e) => {
            eprintln!("could not open {}: {e}", path.display());
            None
        }
    };
    if new {
        if let Some(f) = &mut csv {
            let _ = writeln!(
                f,
                "unix_time,query,trigger,checkpoint,rate,seconds,rows,batches,p50_ms,p99_ms,p999_ms,max_ms,rows_per_s,behind_ms"
            );
        }
    }
    let mut failed = false;
    for cfg in configs {
        match run(cfg) {
            Ok(o) => {
                println!(
                    "{:<10} {:>8} {:>8} {:>10} {:>9.3} {:>9.3} {:>9.3} {:>9.3} {:>12.0} {:>8} {:>9.1}",
                    cfg.kind.name(),
                    cfg.trigger_name(),
                    if cfg.checkpoint { "yes" } else { "no" },
                    cfg.rate,
                    o.p50_ms,
                    o.p99_ms,
                    o.p999_ms,
                    o.max_ms,
                    o.rows_per_s,
                    o.batches,
                    o.behind_ms
                );
                if let Some(f) = &mut csv {
                    let _ = writeln!(
                        f,
                        "{},{},{},{},{},{},{},{},{:.3},{:.3},{:.3},{:.3},{:.0},{:.1}",
                        wall_micros() / 1_000_000,
                        cfg.kind.name(),
                        cfg.trigger_name(),
                        cfg.checkpoint,
                        cfg.rate,
                        cfg.seconds,
                        o.rows,
                        o.batches,
                        o.p50_ms,
                        o.p99_ms,
                        o.p999_ms,
                        o.max_ms,
                        o.rows_per_s,
                        o.behind_ms
                    );
                }
            }
            Err(e) => {
                failed = true;
                eprintln!("{} {} at {} rows/s failed: {e}", cfg.kind.name(), cfg.trigger_name(), cfg.rate);
            }
        }
    }
    println!(
        "\nlatency = sink time − the time the row became available (rate source `timestamp`), both on \
         flowgate::clock, per input row; continuous: foreach_rows, before the epoch commits"
    );
    println!("csv: {}", path.display());
    if failed {
        std::process::exit(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stateful_rows_are_reconstructed_from_counts() {
        let rate = 1000;
        let mut r = Recorder::new(rate, (0, i64::MAX));
        let batch = KeyCount::to_batch([
            KeyCount { key: 1, n: 2, last_ts: Timestamp(101_000), last_value: 101 },
            KeyCount { key: 2, n: 1, last_ts: Timestamp(2_000), last_value: 2 },
        ])
        .unwrap();
        r.add(Kind::Stateful, &batch);
        assert_eq!(r.latencies.len(), 3);
        let now = r.deliveries[0].0;
        let mut created: Vec<i64> = r.latencies.iter().map(|l| now - l).collect();
        created.sort_unstable();
        assert_eq!(created, [1_000, 2_000, 101_000]);
        // The next batch: key 1 grew by one row (value 201).
        let batch =
            KeyCount::to_batch([KeyCount { key: 1, n: 3, last_ts: Timestamp(201_000), last_value: 201 }]).unwrap();
        r.add(Kind::Stateful, &batch);
        assert_eq!(r.latencies.len(), 4);
        assert_eq!(r.max_value, 201);
    }
}
