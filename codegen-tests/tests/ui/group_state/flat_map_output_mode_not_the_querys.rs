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

fn counts(user: &str, rows: Vec<Event>, state: &mut GroupState<i64>) -> Vec<Out> {
    let n = state.get_option().copied().unwrap_or(0) + rows.len() as i64;
    state.update(n);
    vec![Out { user: user.into(), n }]
}

stream_query! {
    query Q(events: Event) -> Out, mode = update {
        events.group_by(user).flat_map_groups_with_state(counts, output_mode = append)
    }
}

fn main() {}
