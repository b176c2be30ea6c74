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
/// Rows in each small batch of the overhead measurement.
const SMALL_ROWS: i64 = 10;

fn builder(source: Source<KeyValue>, sink: Sink, checkpoint: Option<&std::path::Path>) -> StreamingQuery {
    let b = CountPerKey::builder().events(source).sink(sink).shuffle_partitions(4).trigger(Trigger::available_now());
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
    builder(Source::memory(&input), Sink::foreach_batch(|_, _| Ok(())), Some(dir.path()))
        .await_termination()
        .expect("first run");
    let bytes = dir_bytes(&dir.path().join("state"));
    let t = Instant::now();
    let q = builder(Source::memory(&MemoryStream::new()), Sink::foreach_batch(|_, _| Ok(())), Some(dir.path()));
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

/// Per-batch times of the small-batch run: the mean, and the median and 99th percentile of the
/// intervals between consecutive batches reaching the sink (back to back, so each interval is
/// one whole batch: reading its file, the plan, the offset log, the sink, the state delta and
/// the commit entry).
pub struct BatchTimes {
    pub mean: Duration,
    pub p50: Duration,
    pub p99: Duration,
}

/// `--batches`' default: enough batches that the 99th percentile is not the maximum.
pub const SMALL_BATCHES: usize = 1000;

/// Per-batch times of `batches` small batches (one small file each, back to back), without
/// (when `plain`) and with a checkpoint.
pub fn small_batch_overhead(batches: usize, plain: bool) -> (Option<BatchTimes>, BatchTimes) {
    let input = tempfile::tempdir().expect("tempdir");
    for b in 0..batches as i64 {
        let text: String =
            (0..SMALL_ROWS).map(|k| format!("{{\"key\": {}, \"value\": 1}}\n", b * SMALL_ROWS + k)).collect();
        std::fs::write(input.path().join(format!("{b:05}.json")), text).expect("write input");
    }
    let per_batch = |checkpoint: bool| {
        // On the build's disk (as the latency bench's checkpoints), not a tmpfs `/tmp`: the
        // fsyncs are what is measured.
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/latency-checkpoints");
        std::fs::create_dir_all(&root).expect("checkpoint root");
        let cp = tempfile::tempdir_in(&root).expect("tempdir");
        let arrivals = std::sync::Arc::new(std::sync::Mutex::new(Vec::with_capacity(batches)));
        let seen = arrivals.clone();
        let t = Instant::now();
        let source = Source::file(input.path()).json().max_files_per_trigger(1);
        let sink = Sink::foreach_batch(move |_, _| {
            seen.lock().expect("arrivals").push(Instant::now());
            Ok(())
        });
        builder(source.into(), sink, checkpoint.then(|| cp.path())).await_termination().expect("run");
        let mean = t.elapsed() / batches as u32;
        let arrivals = arrivals.lock().expect("arrivals");
        let mut gaps: Vec<Duration> = arrivals.windows(2).map(|w| w[1] - w[0]).collect();
        gaps.sort();
        let at = |q: f64| gaps.get(((gaps.len() as f64 * q) as usize).min(gaps.len().saturating_sub(1))).copied();
        BatchTimes { mean, p50: at(0.5).unwrap_or_default(), p99: at(0.99).unwrap_or_default() }
    };
    (plain.then(|| per_batch(false)), per_batch(true))
}
