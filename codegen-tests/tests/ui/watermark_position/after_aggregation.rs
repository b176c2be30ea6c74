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

stream_query! {
    query Q(events: Event) -> WindowCount, mode = update {
        events
            .group_by(window(ts, "5 minutes"), word)
            .agg(count() as count)
            .with_watermark(window, "10 minutes")
    }
}

fn main() {}
