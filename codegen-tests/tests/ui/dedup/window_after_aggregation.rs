use flowgate::prelude::*;

#[derive(Record)]
struct Event {
    id: String,
    ts: Timestamp,
}

#[derive(Record)]
struct Count {
    window: Window,
    n: i64,
}

stream_query! {
    // Spark accepts this in append mode; flowgate does not deduplicate on the window yet.
    query Q(events: Event) -> Count, mode = append {
        events
            .with_watermark(ts, "10 minutes")
            .group_by(window(ts, "10 minutes"))
            .agg(count() as n)
            .drop_duplicates(window, n)
    }
}

fn main() {}
