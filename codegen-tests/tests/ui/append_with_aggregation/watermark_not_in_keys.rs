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

#[derive(Record)]
struct WordCount {
    word: String,
    count: i64,
}

stream_query! {
    query Q(events: Event) -> WordCount, mode = append {
        events
            .with_watermark(ts, "10 minutes")
            .group_by(word)
            .agg(count() as count)
    }
}

fn main() {}
