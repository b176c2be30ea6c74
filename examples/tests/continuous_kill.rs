//! Exactly-once in continuous mode: the `continuous` example (rate source, two partitions,
//! file sink, checkpoint) is killed — with SIGKILL at random moments, and at numbered crash
//! points (`FLOWGATE_CRASH_AT`, see `flowgate::checkpoint::crash`) that land between an epoch's
//! offset entry and its commit — and restarted, many times. Then the committed output must be
//! what an uninterrupted run gives over the same input: per partition a gap-free prefix of its
//! values (nothing lost), each value once (nothing doubled), every row the query's function of
//! its value, with the timestamps of one source start (a replayed epoch re-created exactly the
//! rows of its first attempt).
//!
//! The same for the stateful query (`--query counts`: rows per key in update mode, run per
//! vector, its state checkpointed per epoch): the committed updates must count every value read
//! exactly once; and for event-time windows in append mode (`--query windows`: each written at
//! the end of the epoch whose watermark passes it): every window once, its rows a gap-free range
//! of values, the windows together every value from 0 on.
//!
//! `FLOWGATE_KILLS=100 cargo test -p flowgate-examples --test continuous_kill` for a longer run.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const DEFAULT_KILLS: usize = 12;
const RATE: u64 = 2_000;
const PARTITIONS: u64 = 2;

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

fn command(bin: &Path, output: &Path, checkpoint: &Path, seconds: &str) -> Command {
    let mut c = Command::new(bin);
    c.args(["--rate", &RATE.to_string(), "--partitions", &PARTITIONS.to_string()])
        .args(["--interval", "30 milliseconds", "--seconds", seconds])
        .args(["--output", output.to_str().unwrap(), "--checkpoint", checkpoint.to_str().unwrap()])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    c
}

fn last_entry(dir: &Path) -> Option<u64> {
    std::fs::read_dir(dir).ok()?.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok()).max()
}

/// Whether the checkpoint has an epoch logged but not committed (a restart replays it).
fn mid_epoch(checkpoint: &Path) -> bool {
    match (last_entry(&checkpoint.join("offsets")), last_entry(&checkpoint.join("commits"))) {
        (Some(o), Some(c)) => o > c,
        (Some(_), None) => true,
        _ => false,
    }
}

/// Kills and restarts the example (`extra` arguments) many times, at random moments and at
/// crash points, then runs it once cleanly: how many crash points were reached, and how many
/// restarts found an epoch to replay.
fn kill_and_restart(extra: &[&str], output: &Path, checkpoint: &Path, seed: u64) -> (usize, usize, usize) {
    let bin = flowgate_examples::example_binary("continuous");
    let kills: usize = std::env::var("FLOWGATE_KILLS").ok().and_then(|v| v.parse().ok()).unwrap_or(DEFAULT_KILLS);
    let command = |seconds: &str| {
        let mut c = command(&bin, output, checkpoint, seconds);
        c.args(extra);
        c
    };
    let mut rng = Rng(seed);
    let mut replays_owed = 0;
    // SIGKILL at random moments.
    for _ in 0..kills {
        let mut child = command("1000").spawn().unwrap();
        std::thread::sleep(Duration::from_millis(60 + rng.next() % 300));
        child.kill().unwrap();
        child.wait().unwrap();
        replays_owed += usize::from(mid_epoch(checkpoint));
    }
    // Crash points: the process aborts just before its N-th checkpoint or sink file step, at
    // start-up, in an epoch's offset entry, its sink files and manifest, or its commit entry.
    let mut crashed = 0;
    for at in [3u64, 7, 11, 14, 18, 23, 29, 36, 44, 53] {
        let started = Instant::now();
        let out = command("1000").env("FLOWGATE_CRASH_AT", at.to_string()).output().unwrap();
        if !out.status.success() {
            crashed += 1;
            replays_owed += usize::from(mid_epoch(checkpoint));
        }
        assert!(started.elapsed() < Duration::from_secs(60), "crash point {at} was never reached");
    }
    assert!(crashed >= 8, "only {crashed} crash points were reached");
    // The last run ends cleanly (a stop commits its last epoch).
    let out = command("0.5").output().unwrap();
    assert!(out.status.success(), "the last run failed: {}", String::from_utf8_lossy(&out.stderr));
    assert!(replays_owed > 0, "no kill landed between an epoch's offsets and its commit");
    (kills, crashed, replays_owed)
}

#[test]
fn killed_and_restarted_the_file_sink_holds_every_row_once() {
    let root = tempfile::tempdir().unwrap();
    let (output, checkpoint) = (root.path().join("out"), root.path().join("cp"));
    let (kills, crashed, replays_owed) = kill_and_restart(&[], &output, &checkpoint, 15);

    // What the sink committed, epoch by epoch.
    let committed = flowgate::sink::file::read_committed_json_rows(&output).unwrap();
    let epochs: Vec<u64> = committed.iter().map(|(e, _)| *e).collect();
    assert!(epochs.windows(2).all(|w| w[0] < w[1]), "each epoch committed once, in order: {epochs:?}");
    let rows: Vec<&serde_json::Value> = committed.iter().flat_map(|(_, r)| r).collect();
    let mut values = BTreeSet::new();
    let mut ts0: Option<i64> = None;
    for r in &rows {
        let v = r["value"].as_i64().unwrap();
        assert!(values.insert(v), "value {v} was written twice");
        assert_ne!(v % 10, 9, "value {v} passed the filter");
        let euros = r["euros"].as_f64().unwrap();
        assert!((euros - 0.908 * v as f64).abs() <= 1e-9 * euros.abs().max(1.0), "value {v}: euros {euros}");
        // Timestamps of one start: ts = start + floor(v * 1e6 / rate).
        let ts = chrono_micros(r["timestamp"].as_str().unwrap());
        let start = ts - (v * 1_000_000 / RATE as i64);
        assert_eq!(*ts0.get_or_insert(start), start, "value {v} has a timestamp of another start");
    }
    // Nothing lost: per partition, every value below its highest one is there (but those the
    // filter drops).
    for p in 0..PARTITIONS as i64 {
        let mine: Vec<i64> = values.iter().copied().filter(|v| v % PARTITIONS as i64 == p).collect();
        let top = *mine.last().expect("every partition has rows");
        let expected: Vec<i64> = (0..=top).filter(|v| v % PARTITIONS as i64 == p && v % 10 != 9).collect();
        assert_eq!(mine, expected, "partition {p} has a gap");
    }
    assert!(values.len() > 1_000, "{} rows", values.len());
    eprintln!(
        "{kills} kills, {crashed} crash points, {replays_owed} restarts replayed an epoch; {} epochs, {} rows",
        epochs.len(),
        values.len()
    );
}

#[test]
fn killed_and_restarted_a_continuous_aggregation_counts_every_row_once() {
    let root = tempfile::tempdir().unwrap();
    let (output, checkpoint) = (root.path().join("out"), root.path().join("cp"));
    let (kills, crashed, replays_owed) = kill_and_restart(&["--query", "counts"], &output, &checkpoint, 16);
    let committed = flowgate::sink::file::read_committed_json_rows(&output).unwrap();
    let epochs: Vec<u64> = committed.iter().map(|(e, _)| *e).collect();
    assert!(epochs.windows(2).all(|w| w[0] < w[1]), "each epoch committed once, in order: {epochs:?}");
    // The stage emits a key once per vector that changed it, so an epoch may hold a key several
    // times, in the order the vectors ran (the contract in `engine/continuous/stage.rs`): a
    // key's count and top grow from row to row, within an epoch and across epochs, and its last
    // row in the last epoch is its count.
    let mut latest: std::collections::BTreeMap<i64, (i64, i64)> = Default::default();
    let mut repeated = 0;
    for (epoch, rows) in &committed {
        let mut keys = BTreeSet::new();
        for r in rows {
            let (key, n, top) = (r["key"].as_i64().unwrap(), r["n"].as_i64().unwrap(), r["top"].as_i64().unwrap());
            repeated += usize::from(!keys.insert(key));
            if let Some(&(n0, top0)) = latest.get(&key) {
                assert!(n > n0 && top > top0, "epoch {epoch}: key {key} went from ({n0}, {top0}) to ({n}, {top})");
            }
            latest.insert(key, (n, top));
        }
    }
    // With 2 partitions and keys `value % 14`, a key's values are one partition's, read as a
    // gap-free prefix: its count is exactly the number of its values up to its top (nothing
    // lost, nothing counted twice across the crashes and replays).
    assert_eq!(latest.len(), 14, "every key has rows");
    for (key, (n, top)) in &latest {
        assert_eq!((top - key) % 14, 0, "key {key}: top {top}");
        assert_eq!(*n, (top - key) / 14 + 1, "key {key}: {n} rows counted up to value {top}");
    }
    let rows: i64 = latest.values().map(|(n, _)| n).sum();
    assert!(rows > 1_000, "{rows} rows");
    eprintln!(
        "{kills} kills, {crashed} crash points, {replays_owed} restarts replayed an epoch; {} epochs, {rows} rows counted, \
         {repeated} rows of a key already in their epoch",
        epochs.len()
    );
}

#[test]
fn killed_and_restarted_continuous_append_mode_windows_are_each_written_once_and_whole() {
    let root = tempfile::tempdir().unwrap();
    let (output, checkpoint) = (root.path().join("out"), root.path().join("cp"));
    let (kills, crashed, replays_owed) = kill_and_restart(&["--query", "windows"], &output, &checkpoint, 17);
    let committed = flowgate::sink::file::read_committed_json_rows(&output).unwrap();
    let epochs: Vec<u64> = committed.iter().map(|(e, _)| *e).collect();
    assert!(epochs.windows(2).all(|w| w[0] < w[1]), "each epoch committed once, in order: {epochs:?}");
    // A window holds the values whose timestamps fall in its 200 ms: a range, since timestamps
    // grow with the value. Every window once (nothing doubled across the replays), each a
    // gap-free range (nothing lost in it), one after the other from value 0 (nothing lost
    // between them: the 1-second watermark drops no row of two tasks a few ms apart).
    let mut windows: Vec<(i64, i64, i64, String)> = committed
        .iter()
        .flat_map(|(_, rows)| rows)
        .map(|r| {
            let w = r["window"]["start"].as_str().unwrap().to_string();
            (r["lo"].as_i64().unwrap(), r["hi"].as_i64().unwrap(), r["n"].as_i64().unwrap(), w)
        })
        .collect();
    windows.sort();
    let starts: BTreeSet<&String> = windows.iter().map(|w| &w.3).collect();
    assert_eq!(starts.len(), windows.len(), "a window written twice");
    assert!(windows.len() >= 5, "{} windows", windows.len());
    let mut next = 0;
    for (lo, hi, n, start) in &windows {
        assert_eq!(*lo, next, "window {start}: values {next}..{lo} are in no window");
        assert_eq!(*n, hi - lo + 1, "window {start}: {n} rows for values {lo}..={hi}");
        next = hi + 1;
    }
    eprintln!(
        "{kills} kills, {crashed} crash points, {replays_owed} restarts replayed an epoch; {} epochs, {} windows, \
         {next} values",
        epochs.len(),
        windows.len()
    );
}

/// `2026-12-01T12:00:00.123456Z` (the JSON sink's timestamp) → microseconds since the epoch.
fn chrono_micros(text: &str) -> i64 {
    let (date, time) = text.trim_end_matches('Z').split_once('T').unwrap();
    let d: Vec<i64> = date.split('-').map(|x| x.parse().unwrap()).collect();
    let (hms, frac) = time.split_once('.').unwrap_or((time, "0"));
    let t: Vec<i64> = hms.split(':').map(|x| x.parse().unwrap()).collect();
    let micros: i64 = format!("{frac:0<6}")[..6].parse().unwrap();
    // Days from civil (Howard Hinnant).
    let (y, m) = if d[1] <= 2 { (d[0] - 1, d[1] + 9) } else { (d[0], d[1] - 3) };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * m + 2) / 5 + d[2] - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    ((days * 86_400 + t[0] * 3600 + t[1] * 60 + t[2]) * 1_000_000) + micros
}
