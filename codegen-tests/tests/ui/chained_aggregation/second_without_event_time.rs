use flowgate::prelude::*;

#[derive(Record)]
struct Event {
    word: String,
    ts: Timestamp,
}

#[derive(Record)]
struct Total {
    word: String,
    total: i64,
}

stream_query! {
    // The second aggregation of an append-mode query must group by event time too:
    // `window(window_time(window), ...)`.
    query Q(events: Event) -> Total, mode = append {
        events
            .with_watermark(ts, "10 minutes")
            .group_by(window(ts, "10 minutes"), word)
            .agg(count() as n)
            .group_by(word)
            .agg(sum(n) as total)
    }
}

fn main() {}
