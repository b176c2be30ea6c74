use flowgate::prelude::*;

#[derive(Record)]
struct Event {
    user: String,
}

#[derive(Record)]
struct Out {
    user: String,
    n: i64,
}

/// A static table of counts: its records are not the function's state (`i64`).
#[derive(Record)]
struct Seed {
    user: String,
    n: i64,
}

fn count(user: &str, rows: Vec<Event>, state: &mut GroupState<i64>) -> Out {
    let n = state.get_option().copied().unwrap_or(0) + rows.len() as i64;
    state.update(n);
    Out { user: user.into(), n }
}

stream_query! {
    query Q(events: Event, seeds: static Seed) -> Out, mode = update {
        events.group_by(user).map_groups_with_state(count, initial_state = seeds)
    }
}

fn main() {}
