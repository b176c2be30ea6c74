// One mistake, one error: nothing else is reported about this query.
use flowgate::prelude::*;

#[derive(Record)]
struct Event {
    ts: Timestamp,
    flag: bool,
}

#[derive(Record)]
struct WindowCount {
    window: Window,
    count: i64,
}

#[derive(Record)]
struct WindowShare {
    window: Window,
    count: i64,
    share: f64,
}

stream_query! {
    query Q(events: Event) -> WindowCount, mode = append {
        events
            .with_watermark(tss, "10 minutes")
            .group_by(window(ts, "10 minutes"))
            .agg(count() as count)
    }
}

fn main() {
    // The query's items exist despite the error.
    let _ = Q::builder().events(Source::memory(&MemoryStream::<Event>::new()));
}
