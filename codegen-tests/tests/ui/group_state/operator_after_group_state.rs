use flowgate::prelude::*;

#[derive(Record)]
struct Event {
    user: String,
    ts: Timestamp,
}

#[derive(Record)]
struct Out {
    user: String,
    n: i64,
}

fn count(user: &str, rows: Vec<Event>, state: &mut GroupState<i64>) -> Out {
    let n = state.get_option().copied().unwrap_or(0) + rows.len() as i64;
    state.update(n);
    Out { user: user.into(), n }
}

fn count_all(user: &str, rows: Vec<Event>, state: &mut GroupState<i64>) -> Vec<Out> {
    vec![count(user, rows, state)]
}

stream_query! {
    query Q(events: Event) -> Out, mode = update {
        events.group_by(user).map_groups_with_state(count).filter(n > 1).union(events)
    }
}

fn main() {
    let _ = count_all;
    let _ = count;
}
