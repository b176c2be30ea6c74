use flowgate::prelude::*;

#[derive(Record)]
struct Event {
    ts: Timestamp,
    word: String,
}

#[derive(Record)]
struct WindowCount {
    window: Window,
    count: i64,
}

stream_query! {
    query Q(events: Event) -> WindowCount, mode = append {
        events
            .with_watermark(ts, "10 minutes")
            .group_by(window(ts, "10 minutes"))
            .agg(count() as count)
            .limit(3)
    }
}

fn main() {}
