use flowgate::prelude::*;

#[derive(Record)]
struct Event {
    id: String,
    ts: Timestamp,
}

stream_query! {
    // The macro does not know the input record's columns: a whole-row key must name them.
    query Q(events: Event) -> Event, mode = append {
        events.distinct()
    }
}

fn main() {}
