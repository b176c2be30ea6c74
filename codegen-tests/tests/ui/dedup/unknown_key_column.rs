use flowgate::prelude::*;

#[derive(Record)]
struct Event {
    id: i64,
    ts: Timestamp,
}

#[derive(Record)]
struct Out {
    id: i64,
}

stream_query! {
    query Q(events: Event) -> Out, mode = append {
        events.select(id).drop_duplicates(idd)
    }
}

fn main() {}
