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

/// The state, as a static table keeps it, with the user as a number: it does not key a
/// stream grouped by a `String`.
#[derive(Record, StateCodec)]
struct Seed {
    id: i64,
    n: i64,
}

fn count(user: &str, rows: Vec<Event>, state: &mut GroupState<Seed>) -> Out {
    let n = state.get_option().map(|s| s.n).unwrap_or(0) + rows.len() as i64;
    state.update(Seed { id: 0, n });
    Out { user: user.into(), n }
}

stream_query! {
    query Q(events: Event, seeds: static Seed) -> Out, mode = update {
        events.group_by(user).map_groups_with_state(count, initial_state = seeds.group_by(id))
    }
}

fn main() {}
