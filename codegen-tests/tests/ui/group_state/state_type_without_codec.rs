use flowgate::prelude::*;

#[derive(Record)]
struct Event {
    user: String,
}

#[derive(Record)]
struct Out {
    user: String,
}

/// Not a `StateCodec`: the state could not be checkpointed.
struct Seen {
    n: usize,
}

fn track(user: &str, _rows: Vec<Event>, state: &mut GroupState<Seen>) -> Out {
    state.update(Seen { n: 1 });
    let _ = state.get().n;
    Out { user: user.into() }
}

stream_query! {
    query Q(events: Event) -> Out, mode = update {
        events.group_by(user).map_groups_with_state(track)
    }
}

fn main() {}
