//! A continuous trigger on a session-window aggregation.
use flowgate::prelude::*;

#[derive(Record)]
struct Click {
    user: String,
    at: Timestamp,
}

#[derive(Record)]
struct Session {
    session_window: Window,
    user: String,
    n: i64,
}

stream_query! {
    query Sessions(clicks: Click) -> Session, mode = append {
        clicks.with_watermark(at, "10 minutes").group_by(session_window(at, "5 minutes"), user).agg(count() as n)
    }
}

fn main() {
    let input = MemoryStream::<Click>::new();
    let _ = Sessions::builder()
        .clicks(Source::memory(&input))
        .sink(Sink::console())
        .trigger(Trigger::continuous("1 second"))
        .start();
}
