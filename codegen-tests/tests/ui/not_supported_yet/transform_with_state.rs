use flowgate::prelude::*;

#[derive(Record)]
struct Event {
    id: i64,
    ts: Timestamp,
}

stream_query! {
    query Q(events: Event) -> Event, mode = append {
        events.group_by(id).transform_with_state(id)
    }
}

fn main() {}
