use flowgate::prelude::*;

#[derive(Record)]
struct Event {
    ts: Timestamp,
    word: String,
    n: i64,
}

#[derive(Record)]
struct WindowCount {
    window: Window,
    word: String,
    count: i64,
}

const SIZE: &str = "5 minutes";

stream_query! {
    query Q(events: Event) -> WindowCount, mode = update {
        events
            .with_watermark(ts, "10 minutes")
            .group_by(window(ts, SIZE), word)
            .agg(count() as count)
    }
}

fn main() {}
