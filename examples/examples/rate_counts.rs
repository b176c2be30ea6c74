//! No setup needed: a rate source makes rows (`timestamp`, `value`) at a fixed rate; the query
//! counts and sums them per `value % 10` and prints the table each second (complete mode).
//!
//! ```text
//! cargo run --release --example rate_counts                 # runs for 5 seconds
//! cargo run --release --example rate_counts -- --seconds 30 --rate 100000
//! cargo run --release --example rate_counts -- --seconds 600 --ui 127.0.0.1:4040 --metrics 127.0.0.1:9464
//! ```
//!
//! With `--ui`, open `http://127.0.0.1:4040/query/Buckets` for live charts; with `--metrics`,
//! Prometheus can scrape `http://127.0.0.1:9464/metrics`.

use flowgate::prelude::*;

/// The rate source's schema.
#[derive(Record)]
struct Tick {
    timestamp: Timestamp,
    value: i64,
}

#[derive(Record)]
struct Bucket {
    bucket: i64,
    rows: i64,
    total: i64,
    first: Timestamp,
    last: Timestamp,
}

stream_query! {
    /// Rows, sum of values and first/last timestamps per `value % 10`.
    query Buckets(ticks: Tick) -> Bucket, mode = complete {
        ticks
            .group_by(bucket = value % 10)
            .agg(count() as rows, sum(value) as total, min(timestamp) as first, max(timestamp) as last)
    }
}

fn main() -> flowgate::Result<()> {
    flowgate_examples::init_logging();
    let seconds: u64 = flowgate_examples::arg_or("seconds", 5).map_err(flowgate::Error::Plan)?;
    let rate: u64 = flowgate_examples::arg_or("rate", 1000).map_err(flowgate::Error::Plan)?;
    let mut builder = Buckets::builder()
        .ticks(Source::rate(rate))
        .sink(Sink::console())
        .trigger(Trigger::processing_time("1 second"));
    if let Some(addr) = flowgate_examples::arg("ui") {
        builder = builder.ui(&addr);
    }
    if let Some(addr) = flowgate_examples::arg("metrics") {
        builder = builder.metrics(&addr);
    }
    let query = builder.start()?;
    if !query.await_termination_timeout(std::time::Duration::from_secs(seconds))? {
        query.stop()?;
    }
    if let Some(p) = query.last_progress() {
        println!("last progress: {}", p.json());
    }
    Ok(())
}
