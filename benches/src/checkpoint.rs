//! Checkpoint costs: restart time with 1 M keys of state, and the overhead a checkpoint adds
//! to a small micro-batch — each measured beside the same query without a checkpoint.

use std::time::{Duration, Instant};

use flowgate::prelude::*;

use crate::data::KeyValue;

#[derive(Record)]
struct KeyCount {
    key: i64,
    n: i64,
}

stream_query! {
    query CountPerKey(events: KeyValue) -> KeyCount, mode = update {
        events.group_by(key).agg(count() as n)
    }
}

/// Keys of state for the restart measurement (the issue asks for 1 M).
pub const RESTART_KEYS: i64 = 1_000_000;
/// Small batches for the overhead measurement, and rows in each.
const SMALL_BATCHES: usize = 200;
const SMALL_ROWS: i64 = 10;

fn builder(source: Source<KeyValue>, checkpoint: Option<&std::path::Path>) -> StreamingQuery {
    let b = CountPerKey::builder()
        .events(source)
        .sink(Sink::foreach_batch(|_, _| Ok(())))
        .shuffle_partitions(4)
        .trigger(Trigger::available_now());
    let b = match checkpoint {
        Some(dir) => b.checkpoint(dir),
        None => b,
    };
    b.start().expect("start")
}

/// Time from `start()` until a query with `keys` keys of checkpointed state has restored it and
/// found nothing new (trigger available-now, so it then stops), and the state's size on disk.
pub fn restart_time(keys: i64) -> (Duration, u64) {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = MemoryStream::<KeyValue>::new();
    input.add((0..keys).map(|k| KeyValue { key: k, value: 1 }));
    builder(Source::memory(&input), Some(dir.path())).await_termination().expect("first run");
    let bytes = dir_bytes(&dir.path().join("state"));
    let t = Instant::now();
    let q = builder(Source::memory(&MemoryStream::new()), Some(dir.path()));
    q.await_termination().expect("restart");
    (t.elapsed(), bytes)
}

fn dir_bytes(p: &std::path::Path) -> u64 {
    std::fs::read_dir(p)
        .map(|it| {
            it.flatten()
                .map(
                    |e| {
                        if e.path().is_dir() {
                            dir_bytes(&e.path())
                        } else {
                            e.metadata().map(|m| m.len()).unwrap_or(0)
                        }
                    },
                )
                .sum()
        })
        .unwrap_or(0)
}

/// Mean time per small batch (one small file each, back to back), without and with a
/// checkpoint.
pub fn small_batch_overhead() -> (Duration, Duration) {
    let input = tempfile::tempdir().expect("tempdir");
    for b in 0..SMALL_BATCHES as i64 {
        let text: String =
            (0..SMALL_ROWS).map(|k| format!("{{\"key\": {}, \"value\": 1}}\n", b * SMALL_ROWS + k)).collect();
        std::fs::write(input.path().join(format!("{b:05}.json")), text).expect("write input");
    }
    let per_batch = |checkpoint: bool| {
        let cp = tempfile::tempdir().expect("tempdir");
        let t = Instant::now();
        let source = Source::file(input.path()).json().max_files_per_trigger(1);
        builder(source.into(), checkpoint.then(|| cp.path())).await_termination().expect("run");
        t.elapsed() / SMALL_BATCHES as u32
    };
    (per_batch(false), per_batch(true))
}
