//! What operating a query costs per batch: the `checkpoint` bench's small batches (one 10-row
//! file each, back to back, checkpointed) with nothing attached, and with a listener, the
//! Prometheus metrics and the live page all on — in one run, rounds interleaved so both
//! variants see the same machine, the median round of each reported.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use flowgate::engine::listener::QueryListener;
use flowgate::prelude::*;
use flowgate::QueryProgress;

use crate::data::KeyValue;

#[derive(Record)]
struct KeyCount {
    key: i64,
    n: i64,
}

stream_query! {
    query CountPerKeyMonitored(events: KeyValue) -> KeyCount, mode = update {
        events.group_by(key).agg(count() as n)
    }
}

/// As the `checkpoint` bench: 200 batches of 10 rows.
const SMALL_BATCHES: usize = 200;
const SMALL_ROWS: i64 = 10;
/// Rounds of each variant (interleaved); the median is reported.
pub const ROUNDS: usize = 7;

/// Counts progress events (a listener doing the least a real one does).
#[derive(Default)]
struct Counting(AtomicU64);

impl QueryListener for Counting {
    fn on_query_progress(&self, _: &QueryProgress) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}

/// Time to feed one real batch's progress into the Prometheus metrics (what the query thread
/// does per batch with `.metrics(..)` on), averaged over many calls.
pub fn metrics_cost_per_batch() -> Duration {
    let input = MemoryStream::<KeyValue>::new();
    let q = CountPerKeyMonitored::builder()
        .events(Source::memory(&input))
        .sink(Sink::foreach_batch(|_, _| Ok(())))
        .shuffle_partitions(4)
        .start()
        .expect("start");
    input.add((0..SMALL_ROWS).map(|k| KeyValue { key: k, value: 1 }));
    q.process_all_available().expect("run");
    let progress = q.last_progress().expect("a batch ran");
    q.stop().expect("stop");
    let record = flowgate::monitor::metrics::recorder("bench").expect("metrics");
    const CALLS: u32 = 100_000;
    let t = Instant::now();
    for _ in 0..CALLS {
        record(std::hint::black_box(&progress));
    }
    t.elapsed() / CALLS
}

/// Mean time per small batch without and with listener + metrics + page (median of
/// [`ROUNDS`] each), and how many progress events the listener saw in its last round.
pub fn overhead() -> (Duration, Duration, u64) {
    let input = tempfile::tempdir().expect("tempdir");
    for b in 0..SMALL_BATCHES as i64 {
        let text: String =
            (0..SMALL_ROWS).map(|k| format!("{{\"key\": {}, \"value\": 1}}\n", b * SMALL_ROWS + k)).collect();
        std::fs::write(input.path().join(format!("{b:05}.json")), text).expect("write input");
    }
    let server = flowgate::monitor::http::server("127.0.0.1:0").expect("http server");
    let addr = server.addr().to_string();
    let mut seen = 0;
    let mut run = |monitored: bool| {
        let cp = tempfile::tempdir().expect("tempdir");
        let listener = Arc::new(Counting::default());
        let b = CountPerKeyMonitored::builder()
            .events(Source::file(input.path()).json().max_files_per_trigger(1))
            .sink(Sink::foreach_batch(|_, _| Ok(())))
            .shuffle_partitions(4)
            .checkpoint(cp.path())
            .catch_up_progress(false)
            .trigger(Trigger::available_now());
        let b = if monitored { b.listener(listener.clone()).metrics(&addr).ui(&addr) } else { b };
        let t = Instant::now();
        b.start().expect("start").await_termination().expect("run");
        let per_batch = t.elapsed() / SMALL_BATCHES as u32;
        if monitored {
            // The dispatcher may still be delivering the last events.
            std::thread::sleep(Duration::from_millis(50));
            seen = listener.0.load(Ordering::Relaxed);
        }
        per_batch
    };
    let (mut plain, mut monitored) = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        plain.push(run(false));
        monitored.push(run(true));
    }
    plain.sort();
    monitored.sort();
    (plain[ROUNDS / 2], monitored[ROUNDS / 2], seen)
}
