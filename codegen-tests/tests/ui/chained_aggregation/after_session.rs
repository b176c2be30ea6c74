use flowgate::prelude::*;

#[derive(Record)]
struct Event {
    user: String,
    ts: Timestamp,
}

#[derive(Record)]
struct Total {
    window: Window,
    sessions: i64,
}

stream_query! {
    query Q(events: Event) -> Total, mode = append {
        events
            .with_watermark(ts, "10 minutes")
            .group_by(session_window(ts, "5 minutes"), user)
            .agg(count() as n)
            .group_by(window(window_time(session_window), "1 hour"))
            .agg(count() as sessions)
    }
}

fn main() {}
