//! A continuous trigger on an aggregation in append mode (its windows wait for the watermark):
//! rustc names the operator in the way. Update mode runs continuously.
use flowgate::prelude::*;

#[derive(Record)]
struct Reading {
    sensor: String,
    at: Timestamp,
}

#[derive(Record)]
struct PerWindow {
    window: Window,
    sensor: String,
    n: i64,
}

stream_query! {
    query Counts(readings: Reading) -> PerWindow, mode = append {
        readings.with_watermark(at, "10 seconds").group_by(window(at, "1 minute"), sensor).agg(count() as n)
    }
}

fn main() {
    let input = MemoryStream::<Reading>::new();
    let _ = Counts::builder()
        .readings(Source::memory(&input))
        .sink(Sink::console())
        .trigger(Trigger::continuous("1 second"))
        .start();
}
