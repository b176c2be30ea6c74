//! Soak: a windowed aggregation with a watermark, on the rate source, checkpointed, for a long
//! time at 80% of the highest rate it sustains. What must hold (issue 17): memory flat within
//! 10%, no growth of lag, state rows level off.
//!
//! 1. Calibration: the query runs for [`TRIAL`] at rates doubling from [`FIRST_RATE`] until one
//!    it cannot keep up with (its lag at the end of the trial above [`KEPT_UP_LAG`]); the peak
//!    is the last rate it kept up with, refined by one trial halfway to the failing rate.
//! 2. Soak: a fresh checkpoint, the query at 80% of the peak for `--minutes` (default 30).
//!    Every [`SAMPLE`] a sample: resident memory of the process (`VmRSS`), lag (wall clock
//!    minus the newest event time the query has processed: the rate source stamps each row
//!    with its creation time), state rows, rows processed, batches.
//!
//! Judged after a warm-up of [`WARM_UP`] (the state fills its first windows, allocators reach
//! their working size): memory's range over the samples within 10% of its median; lag's median
//! over the last fifth no more than its median over the first fifth plus one trigger's worth
//! (a second); the state rows' maximum over the second half no more than 10% above the first
//! half's. Each sample also records the machine's 1-minute load average, so a reader can tell
//! a late batch on a busy machine from a defect. Results:
//! `benches/results/soak-<date>-<HHMM>.csv` (samples) and `.txt` (the verdict), named after the
//! start time in UTC.

use std::io::Write as _;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use flowgate::prelude::*;

/// The rate source's rows.
#[derive(Record)]
struct Tick {
    timestamp: Timestamp,
    value: i64,
}

#[derive(Record)]
struct WindowCount {
    window: Window,
    key: i64,
    n: i64,
    total: i64,
}

/// Keys per window (`value % 1000`, the literal in the query).
const KEYS: u64 = 1000;
/// The watermark delay and the window length (seconds; the literals in the query).
const DELAY_SECS: i64 = 10;

stream_query! {
    /// Count and sum per key in 10-second windows, append mode: a window is emitted and its
    /// state evicted once the 10-second watermark passes its end.
    query Windowed(ticks: Tick) -> WindowCount, mode = append {
        ticks
            .with_watermark(timestamp, "10 seconds")
            .group_by(window(timestamp, "10 seconds"), key = value % 1000)
            .agg(count() as n, sum(value) as total)
    }
}

/// Length of a calibration trial.
const TRIAL: Duration = Duration::from_secs(8);
/// The first calibration rate (rows per second).
const FIRST_RATE: u64 = 100_000;
/// A trial kept up when its lag at the end is below this: the newest processed row is less
/// than two seconds old (a few batches' worth at the rates that matter).
const KEPT_UP_LAG: Duration = Duration::from_secs(2);
/// Between samples.
const SAMPLE: Duration = Duration::from_secs(10);
/// Samples before this are not judged.
const WARM_UP: Duration = Duration::from_secs(120);

fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// The 1-minute load average (`/proc/loadavg`), 0 where there is none.
fn load_average() -> f64 {
    let text = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    text.split_whitespace().next().and_then(|v| v.parse().ok()).unwrap_or(0.0)
}

fn now_micros() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_micros() as i64)
}

/// One sample of a running query.
struct Sample {
    secs: f64,
    rss: u64,
    lag: Duration,
    state_rows: u64,
    rows: u64,
    batches: u64,
    load: f64,
}

/// A running soak query and what it has done.
struct Running {
    query: StreamingQuery,
    started: Instant,
    rows: u64,
    seen_batch: Option<u64>,
}

impl Running {
    fn start(rate: u64, checkpoint: &std::path::Path) -> Running {
        let _ = std::fs::remove_dir_all(checkpoint);
        let query = Windowed::builder()
            .ticks(Source::rate(rate))
            .sink(Sink::foreach_batch(|_, batch| {
                std::hint::black_box(batch.num_rows());
                Ok(())
            }))
            .checkpoint(checkpoint)
            .trigger(Trigger::processing_time("500 milliseconds"))
            .start()
            .expect("the soak query starts");
        Running { query, started: Instant::now(), rows: 0, seen_batch: None }
    }

    /// The lag now: wall clock minus the newest event time processed (the next watermark plus
    /// the delay); the whole run so far before the first batch.
    fn sample(&mut self) -> Sample {
        if let Some(e) = self.query.exception() {
            panic!("the soak query failed: {e}");
        }
        let p = self.query.last_progress();
        let lag = match p.as_ref().and_then(|p| p.next_watermark) {
            Some(wm) => Duration::from_micros((now_micros() - wm.0 - DELAY_SECS * 1_000_000).max(0) as u64),
            None => self.started.elapsed(),
        };
        // Rows: summed over the recent progress (each batch once).
        for r in self.query.recent_progress() {
            if self.seen_batch.is_none_or(|b| r.batch_id > b) {
                self.rows += r.num_input_rows;
                self.seen_batch = Some(r.batch_id);
            }
        }
        Sample {
            secs: self.started.elapsed().as_secs_f64(),
            rss: rss_bytes(),
            lag,
            state_rows: p.as_ref().and_then(|p| p.state_operators.first()).map_or(0, |s| s.num_rows_total),
            rows: self.rows,
            batches: p.map_or(0, |p| p.batch_id + 1),
            load: load_average(),
        }
    }
}

/// Whether the query keeps up with `rate` for a trial.
fn keeps_up(rate: u64, checkpoint: &std::path::Path) -> bool {
    let mut run = Running::start(rate, checkpoint);
    std::thread::sleep(TRIAL);
    let s = run.sample();
    run.query.stop().expect("the trial stops");
    let ok = s.lag < KEPT_UP_LAG;
    println!(
        "  calibration: {rate} rows/s for {:?}: lag {:.2} s → {}",
        TRIAL,
        s.lag.as_secs_f64(),
        if ok { "kept up" } else { "behind" }
    );
    ok
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    if v.is_empty() {
        0.0
    } else {
        v[v.len() / 2]
    }
}

pub fn main(minutes: f64, rate: Option<u64>) {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/soak");
    std::fs::create_dir_all(&root).expect("target/soak");
    let checkpoint = root.join("checkpoint");
    let peak = match rate {
        Some(r) => r,
        None => {
            println!("calibrating (trials of {:?}, rates doubling from {FIRST_RATE}):", TRIAL);
            let mut ok = 0;
            let mut r = FIRST_RATE;
            while keeps_up(r, &checkpoint) {
                ok = r;
                r *= 2;
            }
            let mid = (ok + r) / 2;
            if ok > 0 && keeps_up(mid, &checkpoint) {
                ok = mid;
            }
            ok.max(FIRST_RATE / 2)
        }
    };
    let rate = peak * 4 / 5;
    println!(
        "peak sustained {peak} rows/s; soaking at {rate} rows/s (80%) for {minutes} min, a sample every {:?}",
        SAMPLE
    );
    let began = chrono::Utc::now();
    let date = began.format("%Y-%m-%d");
    let name = began.format("soak-%Y-%m-%d-%H%M");
    let results = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("results");
    let csv_path = results.join(format!("{name}.csv"));
    let mut csv = std::fs::File::create(&csv_path).expect("results csv");
    writeln!(csv, "seconds,rss_mb,lag_s,state_rows,rows,batches,load1").unwrap();
    let mut run = Running::start(rate, &checkpoint);
    let end = Duration::from_secs_f64(minutes * 60.0);
    let mut samples = Vec::new();
    while run.started.elapsed() < end {
        std::thread::sleep(SAMPLE);
        let s = run.sample();
        writeln!(
            csv,
            "{:.0},{:.1},{:.3},{},{},{},{:.2}",
            s.secs,
            s.rss as f64 / 1e6,
            s.lag.as_secs_f64(),
            s.state_rows,
            s.rows,
            s.batches,
            s.load
        )
        .unwrap();
        csv.flush().unwrap();
        samples.push(s);
    }
    run.query.stop().expect("the soak stops");
    let judged: Vec<&Sample> = samples.iter().filter(|s| s.secs >= WARM_UP.as_secs_f64()).collect();
    let n = judged.len().max(1);
    let rss: Vec<f64> = judged.iter().map(|s| s.rss as f64).collect();
    let (rss_min, rss_max) = rss.iter().fold((f64::MAX, 0f64), |(lo, hi), &v| (lo.min(v), hi.max(v)));
    let rss_med = median(rss.clone());
    let spread = (rss_max - rss_min) / rss_med.max(1.0);
    // Not judged, for the reader: whether memory grows (the medians of the first and last
    // fifths) and how many samples lie outside 10% of the median.
    let rss_first = median(rss[..n / 5].to_vec());
    let rss_last = median(rss[rss.len() - n / 5..].to_vec());
    let rss_outside = rss.iter().filter(|&&v| (v - rss_med).abs() > 0.10 * rss_med).count();
    let loads: Vec<f64> = samples.iter().map(|s| s.load).collect();
    let (load_min, load_max) = loads.iter().fold((f64::MAX, 0f64), |(lo, hi), &v| (lo.min(v), hi.max(v)));
    let load_med = median(loads);
    let lag_first = median(judged[..n / 5].iter().map(|s| s.lag.as_secs_f64()).collect());
    let lag_last = median(judged[n - n / 5..].iter().map(|s| s.lag.as_secs_f64()).collect());
    let half = n / 2;
    let state_first = judged[..half].iter().map(|s| s.state_rows).max().unwrap_or(0);
    let state_second = judged[half..].iter().map(|s| s.state_rows).max().unwrap_or(0);
    let last = samples.last().map_or((0, 0), |s| (s.rows, s.batches));
    let verdict = |ok: bool| if ok { "PASS" } else { "FAIL" };
    let memory_ok = spread <= 0.10;
    let lag_ok = lag_last <= lag_first + 1.0;
    let state_ok = state_second as f64 <= state_first as f64 * 1.10;
    let expected_state = (2 * KEYS) as f64;
    let text = format!(
        "soak {date}: windowed count+sum per key (10 s windows, 10 s watermark, {KEYS} keys, append mode), rate source, \
         checkpointed, 500 ms processing-time trigger\n\
         build: {} profile; machine: {} cores; 1-minute load average over the soak's samples: median {:.1}, \
         {:.1}..{:.1}\n\
         peak sustained rate (calibration, {:?} trials): {peak} rows/s; soak rate (80%): {rate} rows/s; {minutes} min; \
         {} rows in {} batches\n\
         judged after {:?} of warm-up, {} samples every {:?}:\n\
         memory: RSS {:.1}..{:.1} MB, median {:.1} MB, range {:.1}% of the median (≤ 10%): {}\n\
         memory (not judged): median {:.1} MB over the first fifth, {:.1} MB over the last fifth; {} of {} samples \
         outside 10% of the median\n\
         lag: median {:.2} s over the first fifth, {:.2} s over the last fifth (no growth beyond 1 s): {}\n\
         state rows: max {} in the first half, {} in the second (≤ +10%; about {} windows × keys in flight: {:.0}): {}\n",
        if cfg!(debug_assertions) { "dev" } else { "release" },
        std::thread::available_parallelism().map_or(0, usize::from),
        load_med,
        load_min,
        load_max,
        TRIAL,
        last.0,
        last.1,
        WARM_UP,
        judged.len(),
        SAMPLE,
        rss_min / 1e6,
        rss_max / 1e6,
        rss_med / 1e6,
        spread * 100.0,
        verdict(memory_ok),
        rss_first / 1e6,
        rss_last / 1e6,
        rss_outside,
        judged.len(),
        lag_first,
        lag_last,
        verdict(lag_ok),
        state_first,
        state_second,
        2,
        expected_state,
        verdict(state_ok),
    );
    print!("{text}");
    std::fs::write(results.join(format!("{name}.txt")), &text).expect("results txt");
    println!("samples: {}", csv_path.display());
}
