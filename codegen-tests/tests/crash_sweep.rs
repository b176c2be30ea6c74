//! Every crash point, deterministically, in process: a stateful query (a windowed aggregation
//! with a watermark; a deduplication with a watermark; two aggregations in a row; a
//! stream-stream join feeding an aggregation) runs with its checkpoint and its file
//! sink's output on the simulated disk of `flowgate::checkpoint::sim`, which stops the world
//! at the N-th step of writing files (a file's data, its fsync, a rename, a directory fsync, a
//! delete — every one of them, for the offset and commit logs, the source logs, the state's
//! batch deltas, snapshots and cleanup, and the sink's data files and manifest). For every N
//! until a run no longer reaches N, the disk as the crash left it is handed to a restarted
//! query, which must finish and leave, batch by batch, exactly the committed output of an
//! uninterrupted run.
//!
//! Three sweeps, one per `CrashMode`: a plain stop; a torn file (the crashing data write
//! half done); and a power loss (only what was fsynced survives: a crash between a rename and
//! its directory fsync loses the rename, new directories not fsynced into their parents
//! vanish, unsynced deletes come back).
//!
//! The helper threads of the engine (offset log, state commit beside the sink, commit log,
//! snapshots) may interleave their steps differently from one run to the next, so step N is
//! not always the same write; each sweep still crashes a run at every step count, and a
//! failure prints the steps of the failing run.

use std::path::Path;
use std::sync::Arc;

use flowgate::checkpoint::sim::{CrashMode, SimDisk, StepKind};
use flowgate::checkpoint::Storage;
use flowgate::prelude::*;

#[derive(Record)]
struct Reading {
    ts: Timestamp,
    key: String,
    value: i64,
}

#[derive(Record)]
struct WindowTotal {
    window_start: Timestamp,
    window_end: Timestamp,
    key: String,
    count: i64,
    sum: i64,
}

#[derive(Record)]
struct SpanTotal {
    window_start: Timestamp,
    rows: i64,
    /// The number of per-minute groups (chained), or the sum of the joined values (join).
    extra: i64,
}

stream_query! {
    /// Per-minute count and sum per key in append mode: a window is emitted once the 1-minute
    /// watermark passes its end, and rows behind the watermark are dropped.
    query MinuteTotals(readings: Reading) -> WindowTotal, mode = append {
        readings
            .with_watermark(ts, "1 minute")
            .group_by(window(ts, "1 minute"), key)
            .agg(count() as count, sum(value) as sum)
            .select(window_start = window.start, window_end = window.end, key, count, sum)
    }

    /// Two aggregations in a row (two state stores): the per-minute counts, then per
    /// 3 minutes of `window_time(window)` their sum and how many keys had one.
    query ThreeMinuteTotals(readings: Reading) -> SpanTotal, mode = append {
        readings
            .with_watermark(ts, "1 minute")
            .group_by(window(ts, "1 minute"), key)
            .agg(count() as count)
            .group_by(window(window_time(window), "3 minutes"))
            .agg(sum(count) as rows, count() as extra)
            .select(window_start = window.start, rows, extra)
    }

    /// A stream-stream join, then an aggregation (three state stores: the join's two sides
    /// and the aggregation's): readings of the same key within 10 s of each other, counted per
    /// minute once the join's output watermark passes.
    query CloseReadings(readings: Reading, others: Reading) -> SpanTotal, mode = append {
        readings
            .with_watermark(ts, "1 minute")
            .join(
                others.with_watermark(ts, "1 minute"),
                key,
                on = between(others.ts, ts, ts + "10 seconds"),
            )
            .group_by(window(ts, "1 minute"))
            .agg(count() as rows, sum(others.value) as extra)
            .select(window_start = window.start, rows, extra)
    }

    /// The first row per (key, ts); keys evicted behind the 1-minute watermark, late rows dropped.
    query FirstReadings(readings: Reading) -> Reading, mode = append {
        readings
            .with_watermark(ts, "1 minute")
            .drop_duplicates(key, ts)
    }
}

/// Files of input, one batch each: on-time rows, duplicates, and rows late by the watermark.
fn write_input(dir: &Path, files: usize) {
    std::fs::create_dir_all(dir).unwrap();
    for i in 0..files as i64 {
        let mut text = String::new();
        for r in 0..12i64 {
            // Minute i, a few seconds apart; every fourth row repeats the previous one's key and
            // time (a duplicate), every fifth is three minutes late (dropped once the watermark
            // passed it).
            let base = if r % 4 == 3 { r - 1 } else { r };
            let secs = 4200 + if r % 5 == 4 { i * 60 - 180 + r } else { i * 60 + base * 4 };
            let t = format!("2024-01-01T{:02}:{:02}:{:02}Z", secs / 3600, secs % 3600 / 60, secs % 60);
            text.push_str(&format!("{{\"ts\": \"{t}\", \"key\": \"k{}\", \"value\": {}}}\n", base % 3, i * 100 + r));
        }
        std::fs::write(dir.join(format!("{i:03}.json")), text).unwrap();
    }
}

#[derive(Clone, Copy)]
enum Which {
    Totals,
    Dedup,
    Chained,
    JoinThenTotals,
}

fn run(which: Which, input: &Path, disk: &Arc<SimDisk>) -> flowgate::Result<()> {
    let source = || Source::file(input).json().mode(ParseMode::FailFast).max_files_per_trigger(1);
    let (cp, out) = (disk.storage("cp"), disk.storage("out"));
    let q = match which {
        Which::Totals => MinuteTotals::builder()
            .readings(source())
            .sink(Sink::file_in(out, SinkFormat::Json))
            .checkpoint_storage(cp)
            .shuffle_partitions(2)
            .trigger(Trigger::available_now())
            .start()?,
        Which::Dedup => FirstReadings::builder()
            .readings(source())
            .sink(Sink::file_in(out, SinkFormat::Json))
            .checkpoint_storage(cp)
            .shuffle_partitions(2)
            .trigger(Trigger::available_now())
            .start()?,
        Which::Chained => ThreeMinuteTotals::builder()
            .readings(source())
            .sink(Sink::file_in(out, SinkFormat::Json))
            .checkpoint_storage(cp)
            .shuffle_partitions(2)
            .trigger(Trigger::available_now())
            .start()?,
        Which::JoinThenTotals => CloseReadings::builder()
            .readings(source())
            .others(source())
            .sink(Sink::file_in(out, SinkFormat::Json))
            .checkpoint_storage(cp)
            .shuffle_partitions(2)
            .trigger(Trigger::available_now())
            .start()?,
    };
    q.await_termination()
}

/// Committed rows by batch, each batch's rows sorted.
fn committed(out: &dyn Storage) -> flowgate::Result<Vec<(u64, Vec<String>)>> {
    Ok(flowgate::sink::file::read_committed_json_rows_in(out)?
        .into_iter()
        .map(|(b, rows)| {
            let mut rows: Vec<String> = rows.iter().map(|r| r.to_string()).collect();
            rows.sort();
            (b, rows)
        })
        .collect())
}

/// What a sweep covered.
#[derive(Debug, Default)]
struct Covered {
    points: u64,
    torn_writes: u64,
    lost_renames: u64,
}

/// Crashes a fresh run at every step N in turn, restarts on what the crash left, and compares
/// the committed output with `want`.
fn sweep(which: Which, input: &Path, mode: CrashMode, want: &[(u64, Vec<String>)]) -> Covered {
    let mut covered = Covered::default();
    for n in 1.. {
        let disk = SimDisk::new();
        disk.crash_at(n, mode);
        let first = run(which, input, &disk);
        let Some(crash) = disk.crash() else {
            // The run ended before step N: every step was a crash point.
            first.unwrap();
            assert_eq!(committed(disk.storage("out").as_ref()).unwrap(), want, "the run that did not crash");
            return covered;
        };
        covered.points += 1;
        covered.torn_writes += u64::from(mode == CrashMode::Torn && crash.kind == StepKind::Write);
        covered.lost_renames += u64::from(crash.lost_renames > 0);
        let trace = || disk.trace().iter().map(|(k, p)| format!("{k:?} {p}")).collect::<Vec<_>>().join("\n  ");
        let restarted = disk.after_crash();
        if let Err(e) = run(which, input, &restarted) {
            panic!("{mode:?} crash at {crash:?}: the restart failed: {e}\nsteps before the crash:\n  {}", trace());
        }
        let got = committed(restarted.storage("out").as_ref()).unwrap_or_else(|e| {
            panic!(
                "{mode:?} crash at {crash:?}: the committed output cannot be read: {e}\nsteps before the crash:\n  {}",
                trace()
            )
        });
        assert_eq!(
            got,
            want,
            "{mode:?} crash at {crash:?}: the output differs\nsteps before the crash:\n  {}",
            trace()
        );
    }
    unreachable!()
}

fn sweep_all(which: Which, files: usize) {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    write_input(&input, files);
    let reference = SimDisk::new();
    run(which, &input, &reference).unwrap();
    let want = committed(reference.storage("out").as_ref()).unwrap();
    let steps = reference.steps();
    if files > 10 {
        let snapshot = reference.trace().iter().any(|(k, p)| *k == StepKind::Rename && p.ends_with("10.snapshot"));
        assert!(snapshot, "the run writes the state snapshot of version 10");
    }
    assert!(want.len() >= files, "a batch per file at least: {want:?}");
    assert!(want.iter().any(|(_, rows)| !rows.is_empty()));
    let mut total = 0;
    for mode in [CrashMode::Stop, CrashMode::Torn, CrashMode::PowerLoss] {
        let covered = sweep(which, &input, mode, &want);
        eprintln!("{mode:?}: {covered:?} (an uninterrupted run has {steps} steps)");
        assert!(covered.points + 5 >= steps, "{mode:?}: {} crash points for {steps} steps", covered.points);
        match mode {
            CrashMode::Torn => assert!(covered.torn_writes > 0),
            CrashMode::PowerLoss => assert!(covered.lost_renames > 0, "some crash lost an unsynced rename"),
            CrashMode::Stop => {}
        }
        total += covered.points;
    }
    eprintln!("{total} crash points in all");
}

#[test]
fn every_crash_point_of_a_windowed_aggregation_with_a_watermark() {
    // Twelve batches: the state's snapshot at version 10 and its cleanup are crossed too.
    sweep_all(Which::Totals, 12);
}

#[test]
fn every_crash_point_of_a_deduplication_with_a_watermark() {
    sweep_all(Which::Dedup, 6);
}

#[test]
fn every_crash_point_of_two_chained_aggregations() {
    sweep_all(Which::Chained, 6);
}

#[test]
fn every_crash_point_of_a_stream_stream_join_then_an_aggregation() {
    sweep_all(Which::JoinThenTotals, 6);
}
