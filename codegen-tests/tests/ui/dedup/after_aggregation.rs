use flowgate::prelude::*;

#[derive(Record)]
struct Event {
    id: String,
    ts: Timestamp,
}

#[derive(Record)]
struct Count {
    id: String,
    n: i64,
}

stream_query! {
    query Q(events: Event) -> Count, mode = complete {
        events
            .group_by(id)
            .agg(count() as n)
            .drop_duplicates(id)
    }
}

fn main() {}
