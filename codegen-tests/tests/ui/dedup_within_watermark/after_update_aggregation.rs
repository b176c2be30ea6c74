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
    // Spark refuses drop_duplicates_within_watermark after an update-mode aggregation: the
    // aggregation's updates would be late rows for it.
    query Q(events: Event) -> Count, mode = update {
        events
            .with_watermark(ts, "10 minutes")
            .group_by(window(ts, "10 minutes"))
            .agg(count() as n)
            .drop_duplicates_within_watermark(n)
    }
}

fn main() {}
