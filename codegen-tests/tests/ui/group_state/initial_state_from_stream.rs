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

#[derive(Record, StateCodec)]
struct Seed {
    user: String,
    n: i64,
}

fn count(user: &str, rows: Vec<Event>, state: &mut GroupState<Seed>) -> Out {
    let n = state.get_option().map(|s| s.n).unwrap_or(0) + rows.len() as i64;
    state.update(Seed { user: user.into(), n });
    Out { user: user.into(), n }
}

stream_query! {
    /// `seeds` is declared a stream, not `static`: refused; and a `group_by` with two keys
    /// for a stream grouped by one.
    query Q(events: Event, seeds: Seed) -> Out, mode = update {
        events.group_by(user).map_groups_with_state(count, initial_state = seeds)
    }

    query R(events: Event, seeds: static Seed) -> Out, mode = update {
        events.group_by(user).map_groups_with_state(count, initial_state = seeds.group_by(user, n))
    }
}

fn main() {}
