//! Files in, files out, exactly once — the program the fault-injection test kills and
//! restarts.
//!
//! ```text
//! cargo run --release --example file_to_file -- --input DIR --output DIR --checkpoint DIR
//! ```
//!
//! Input: JSON lines `{"ts": "<RFC 3339>", "key": "<string>", "value": <integer>}`, one file
//! per micro-batch. Rows with a negative value are dropped; with a 1-hour watermark on `ts`,
//! count and sum of `value` per 1-minute tumbling window and key, in update mode, written as
//! JSON lines (`window_start`, `window_end`, `key`, `count`, `sum`) through the file sink's
//! manifest. Processes everything available (trigger available-now), then exits 0. Killed at
//! any moment and started again with the same arguments, it resumes from the checkpoint and
//! the committed output is as if it had never stopped.
//!
//! With `--dedup`, a query of two stateful operators: rows are first deduplicated on
//! `(key, value, ts)` (state evicted behind the watermark), then aggregated the same way.

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

stream_query! {
    /// Per-minute count and sum per key, late data bounded by a 1-hour watermark.
    query MinuteTotals(readings: Reading) -> WindowTotal, mode = update {
        readings
            .filter(value >= 0)
            .with_watermark(ts, "1 hour")
            .group_by(window(ts, "1 minute"), key)
            .agg(count() as count, sum(value) as sum)
            .select(window_start = window.start, window_end = window.end, key, count, sum)
    }
}

stream_query! {
    /// The same totals over the distinct readings: a deduplication, then the aggregation.
    query DistinctMinuteTotals(readings: Reading) -> WindowTotal, mode = update {
        readings
            .filter(value >= 0)
            .with_watermark(ts, "1 hour")
            .drop_duplicates(key, value, ts)
            .group_by(window(ts, "1 minute"), key)
            .agg(count() as count, sum(value) as sum)
            .select(window_start = window.start, window_end = window.end, key, count, sum)
    }
}

fn main() -> flowgate::Result<()> {
    flowgate_examples::init_logging();
    let need = |name: &str| {
        flowgate_examples::arg(name).ok_or_else(|| {
            flowgate::Error::Plan(format!(
                "missing --{name}; usage: file_to_file --input DIR --output DIR --checkpoint DIR"
            ))
        })
    };
    let (input, output, checkpoint) = (need("input")?, need("output")?, need("checkpoint")?);
    let source = Source::file(input).json().mode(ParseMode::FailFast).max_files_per_trigger(1);
    let sink = Sink::file(output, SinkFormat::Json);
    let query = if std::env::args().any(|a| a == "--dedup") {
        DistinctMinuteTotals::builder()
            .readings(source)
            .sink(sink)
            .trigger(Trigger::available_now())
            .checkpoint(checkpoint)
            .start()?
    } else {
        MinuteTotals::builder()
            .readings(source)
            .sink(sink)
            .trigger(Trigger::available_now())
            .checkpoint(checkpoint)
            .start()?
    };
    query.await_termination()
}
