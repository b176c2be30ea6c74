use flowgate::prelude::*;

#[derive(Record)]
struct Event {
    user: String,
}

#[derive(Record)]
struct Out {
    user: String,
}

fn count(user: &str, _rows: Vec<Event>, _state: &mut GroupState<i64>) -> Out {
    Out { user: user.into() }
}

stream_query! {
    query Q(events: Event) -> Out, mode = update {
        events.group_by(user).transform_with_state(count, time_mode = none)
    }
}

fn main() {}
