//! Replay is exact: every replayable source gives a re-run batch exactly the rows of its first
//! attempt, across a restart (a new query, a new source object, the same checkpoint).
//!
//! A crash between a batch's offset entry and its commit entry is simulated by removing the
//! commit entry (rate and file sources: what a restarted process sees), or made real by a sink
//! that fails the batch (memory source: its rows live in this process only).

use std::path::Path;
use std::time::{Duration, Instant};

use flowgate::__private::arrow_array::RecordBatch;
use flowgate::prelude::*;

#[derive(Record, Debug, Clone, PartialEq)]
struct Tick {
    timestamp: Timestamp,
    value: i64,
}

stream_query! {
    query Ticks(ticks: Tick) -> Tick, mode = append {
        ticks.filter(value >= 0)
    }
}

fn ticks(batch: &RecordBatch) -> Vec<Tick> {
    Tick::from_batch(batch).unwrap()
}

/// Waits until `table` holds a delivery of a batch for which `done` holds, or fails after 20 s.
fn wait_for(table: &MemoryTable, done: impl Fn(&[(u64, RecordBatch)]) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done(&table.deliveries()) {
        assert!(Instant::now() < deadline, "timed out; deliveries: {:?}", table.deliveries().len());
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Removes the commit entry of the last batch: the restart sees it as planned, not committed.
fn forget_last_commit(cp: &Path) -> u64 {
    let last = std::fs::read_dir(cp.join("commits"))
        .unwrap()
        .filter_map(|e| e.unwrap().file_name().to_str().and_then(|n| n.parse::<u64>().ok()))
        .max()
        .expect("a committed batch");
    std::fs::remove_file(cp.join(format!("commits/{last}"))).unwrap();
    last
}

#[test]
fn the_rate_source_replays_a_batch_with_its_first_timestamps_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let cp = dir.path().join("cp");
    let first = MemoryTable::new();
    let q = Ticks::builder()
        .ticks(Source::rate(1_000))
        .sink(Sink::memory(&first))
        .checkpoint(&cp)
        .trigger(Trigger::processing_time("20 milliseconds"))
        .start()
        .unwrap();
    wait_for(&first, |d| d.iter().filter(|(_, b)| b.num_rows() > 0).count() >= 3);
    q.stop().unwrap();
    let last = forget_last_commit(&cp);
    let (_, attempt1) = first.deliveries().into_iter().find(|(id, _)| *id == last).unwrap();
    assert!(attempt1.num_rows() > 0, "batch {last} is not empty");
    // Down for a while: a source that re-derived its start from the restart time would shift
    // every timestamp of the re-run by about this much.
    std::thread::sleep(Duration::from_millis(300));

    let second = MemoryTable::new();
    let q = Ticks::builder()
        .ticks(Source::rate(1_000))
        .sink(Sink::memory(&second))
        .checkpoint(&cp)
        .trigger(Trigger::processing_time("20 milliseconds"))
        .start()
        .unwrap();
    wait_for(&second, |d| d.iter().any(|(id, _)| *id > last));
    q.stop().unwrap();
    let deliveries = second.deliveries();
    assert_eq!(deliveries[0].0, last, "the restart re-runs batch {last} first");
    assert_eq!(ticks(&deliveries[0].1), ticks(&attempt1), "the re-run has exactly the first attempt's rows");
    assert_eq!(second.deliveries_of(last), 1);
    // The batch after it continues the values, and its timestamps follow the same start.
    let next = ticks(&deliveries[1].1);
    let before = ticks(&attempt1);
    let (a, b) = (before.last().unwrap(), &next[0]);
    assert_eq!(b.value, a.value + 1);
    assert_eq!(b.timestamp.0 - a.timestamp.0, 1_000, "1000 rows a second: 1 ms apart");
}

fn write_json(dir: &Path, name: &str, values: std::ops::Range<i64>) {
    let text: String =
        values.map(|v| format!("{{\"timestamp\": \"2024-01-01T00:00:{:02}Z\", \"value\": {v}}}\n", v % 60)).collect();
    let tmp = dir.join(format!(".{name}"));
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(tmp, dir.join(name)).unwrap();
}

fn run_files(input: &Path, cp: &Path) -> MemoryTable {
    let table = MemoryTable::new();
    let q = Ticks::builder()
        .ticks(Source::file(input).json().max_files_per_trigger(1))
        .sink(Sink::memory(&table))
        .checkpoint(cp)
        .trigger(Trigger::available_now())
        .start()
        .unwrap();
    q.await_termination().unwrap();
    table
}

#[test]
fn the_file_source_replays_a_batch_with_its_files_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (input, cp) = (dir.path().join("in"), dir.path().join("cp"));
    std::fs::create_dir_all(&input).unwrap();
    for i in 0..3 {
        write_json(&input, &format!("{i}.json"), i * 10..i * 10 + 10);
    }
    let first = run_files(&input, &cp);
    assert_eq!(first.deliveries().len(), 3);
    let last = forget_last_commit(&cp);
    // A file arriving while the query is down goes to a new batch, not into the re-run one.
    write_json(&input, "3.json", 100..105);
    let second = run_files(&input, &cp);
    let d = second.deliveries();
    assert_eq!(d.iter().map(|(id, _)| *id).collect::<Vec<_>>(), vec![last, last + 1]);
    let attempt1 = &first.deliveries()[last as usize].1;
    assert_eq!(ticks(&d[0].1), ticks(attempt1));
    assert_eq!(ticks(&d[1].1).iter().map(|t| t.value).collect::<Vec<_>>(), (100..105).collect::<Vec<_>>());
}

#[test]
fn the_memory_source_replays_a_failed_batch_to_a_restarted_query() {
    use std::sync::{Arc, Mutex};
    let dir = tempfile::tempdir().unwrap();
    let cp = dir.path().join("cp");
    let stream = MemoryStream::<Tick>::new();
    let tick = |v: i64| Tick { timestamp: Timestamp(v * 1_000), value: v };
    stream.add((0..5).map(tick));
    stream.add((5..9).map(tick));
    // The sink fails batch 0 (both additions), keeping what it was given.
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s2 = seen.clone();
    let q = Ticks::builder()
        .ticks(Source::memory(&stream))
        .sink(Sink::foreach_batch(move |id, batch| {
            s2.lock().unwrap().push((id, ticks(batch)));
            if id == 0 {
                return Err(flowgate::Error::User("disk full".into()));
            }
            Ok(())
        }))
        .checkpoint(&cp)
        .trigger(Trigger::available_now())
        .start()
        .unwrap();
    let e = q.await_termination().unwrap_err().to_string();
    assert!(e.contains("disk full"), "{e}");
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.iter().map(|(id, _)| *id).collect::<Vec<_>>(), vec![0]);
    assert_eq!(seen[0].1, (0..9).map(tick).collect::<Vec<_>>());
    // The restarted query re-runs batch 0 with the same rows, then goes on.
    stream.add((9..10).map(tick));
    let table = MemoryTable::new();
    let q = Ticks::builder()
        .ticks(Source::memory(&stream))
        .sink(Sink::memory(&table))
        .checkpoint(&cp)
        .trigger(Trigger::available_now())
        .start()
        .unwrap();
    q.await_termination().unwrap();
    let d = table.deliveries();
    assert_eq!(d.iter().map(|(id, _)| *id).collect::<Vec<_>>(), vec![0, 1]);
    assert_eq!(ticks(&d[0].1), seen[0].1);
    assert_eq!(ticks(&d[1].1), vec![tick(9)]);
}

#[test]
fn the_memory_source_replays_a_batch_whose_commit_entry_could_not_be_written() {
    let dir = tempfile::tempdir().unwrap();
    let cp = dir.path().join("cp");
    let stream = MemoryStream::<Tick>::new();
    let tick = |v: i64| Tick { timestamp: Timestamp(v * 1_000), value: v };
    stream.add((0..3).map(tick));
    // The commit entry of batch 0 cannot be written: a directory stands where it goes.
    std::fs::create_dir_all(cp.join("commits/0")).unwrap();
    let first = MemoryTable::new();
    let run = |table: &MemoryTable| {
        Ticks::builder()
            .ticks(Source::memory(&stream))
            .sink(Sink::memory(table))
            .checkpoint(&cp)
            .trigger(Trigger::available_now())
            .start()
            .unwrap()
            .await_termination()
    };
    let e = run(&first).unwrap_err().to_string();
    assert!(e.contains("commits/0"), "{e}");
    assert_eq!(first.deliveries_of(0), 1, "the sink had batch 0");
    // The disk is fixed; the restart re-runs batch 0, which the source must still hold: its
    // commit entry never became durable.
    std::fs::remove_dir(cp.join("commits/0")).unwrap();
    let second = MemoryTable::new();
    run(&second).unwrap();
    let d = second.deliveries();
    assert_eq!(d.iter().map(|(id, _)| *id).collect::<Vec<_>>(), vec![0]);
    assert_eq!(ticks(&d[0].1), (0..3).map(tick).collect::<Vec<_>>());
}
