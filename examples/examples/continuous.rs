//! No setup needed: continuous processing on the rate source. Two tasks (one per rate
//! partition) filter and convert the rows as they are created, and every epoch (`--interval`,
//! default 1 second) commits what they produced: printed to the console, or written exactly
//! once to JSON files with `--output DIR` (and a checkpoint with `--checkpoint DIR`: a restart
//! resumes after the last committed epoch).
//!
//! ```text
//! cargo run --release --example continuous                  # runs for 5 seconds
//! cargo run --release --example continuous -- --rate 100000 --seconds 10
//! cargo run --release --example continuous -- --output /tmp/out --checkpoint /tmp/cp --interval "200 milliseconds"
//! ```
//!
//! At the end it prints the last epoch's progress, with the tasks' latency from a row's
//! creation to the end of its processing (`continuous.maxLatencyMicros`).
//!
//! `--query counts` runs a stateful query instead: rows per key (`value % 14`) in update mode,
//! counted per vector on the stateful stage the tasks share, its state checkpointed per epoch.
//! `--query windows` counts the rows per 200 ms of their timestamp in append mode, with a
//! 1-second watermark: each window is written once, by the epoch whose end the watermark passes
//! it at.

use flowgate::prelude::*;
use flowgate::source::rate::RateSource;

/// The rate source's schema.
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

stream_query! {
    /// Nexmark q1 (currency conversion) after a selection, on the rate rows: map-like, so it
    /// can run continuously.
    query Euros(ticks: Tick) -> Converted, mode = append {
        ticks
            .filter(value % 10 != 9)
            .select(timestamp, value, euros = 0.908 * value as f64)
    }

    /// Rows and the largest value per key, in update mode: each vector emits the keys it
    /// changed, and an epoch's file holds them at the epoch's commit (a key once per vector
    /// that changed it, its last row the epoch's value).
    query Counts(ticks: Tick) -> KeyCount, mode = update {
        ticks.group_by(key = value % 14).agg(count() as n, max(value) as top)
    }

    /// Rows and their values' range per 200 ms of event time, in append mode: a window is
    /// written at the end of the epoch whose watermark passes it, once.
    query Windows(ticks: Tick) -> WindowRange, mode = append {
        ticks
            .with_watermark(timestamp, "1 second")
            .group_by(window(timestamp, "200 milliseconds"))
            .agg(count() as n, min(value) as lo, max(value) as hi)
    }
}

#[derive(Record)]
struct WindowRange {
    window: Window,
    n: i64,
    lo: i64,
    hi: i64,
}

#[derive(Record)]
struct KeyCount {
    key: i64,
    n: i64,
    top: i64,
}

fn main() -> flowgate::Result<()> {
    flowgate_examples::init_logging();
    let seconds: f64 = flowgate_examples::arg_or("seconds", 5.0).map_err(flowgate::Error::Plan)?;
    let rate: u64 = flowgate_examples::arg_or("rate", 1000).map_err(flowgate::Error::Plan)?;
    let partitions: usize = flowgate_examples::arg_or("partitions", 2).map_err(flowgate::Error::Plan)?;
    let interval = flowgate_examples::arg("interval").unwrap_or_else(|| "1 second".into());
    let sink = match flowgate_examples::arg("output") {
        Some(dir) => Sink::file(dir, SinkFormat::Json),
        None => Sink::console(),
    };
    let source = Source::from_impl(Box::new(RateSource::new(rate).with_partitions(partitions)));
    let checkpoint = flowgate_examples::arg("checkpoint");
    let query = match flowgate_examples::arg("query").as_deref() {
        None | Some("euros") => {
            let mut builder = Euros::builder().ticks(source).sink(sink).trigger(Trigger::continuous(&interval));
            if let Some(dir) = checkpoint {
                builder = builder.checkpoint(dir);
            }
            builder.start()?
        }
        Some("counts") => {
            let mut builder = Counts::builder().ticks(source).sink(sink).trigger(Trigger::continuous(&interval));
            if let Some(dir) = checkpoint {
                builder = builder.checkpoint(dir);
            }
            builder.start()?
        }
        Some("windows") => {
            let mut builder = Windows::builder().ticks(source).sink(sink).trigger(Trigger::continuous(&interval));
            if let Some(dir) = checkpoint {
                builder = builder.checkpoint(dir);
            }
            builder.start()?
        }
        Some(other) => return Err(flowgate::Error::Plan(format!("--query {other}: use euros, counts or windows"))),
    };
    if !query.await_termination_timeout(std::time::Duration::from_secs_f64(seconds))? {
        // A stop commits the epoch in progress.
        query.stop()?;
    }
    if let Some(e) = query.error() {
        return Err(flowgate::Error::QueryFailed { name: query.name().to_string(), source: e });
    }
    if let Some(p) = query.last_progress() {
        println!("last progress: {}", p.json());
    }
    Ok(())
}
