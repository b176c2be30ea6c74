use flowgate::prelude::*;

#[derive(Record)]
struct Event {
    user: String,
    ts: Timestamp,
}

#[derive(Record)]
struct Alert {
    user: String,
    n: i64,
}

#[derive(Record)]
struct Out {
    user: String,
    alerts: i64,
}

fn alerts(user: &str, rows: Vec<Event>, state: &mut GroupState<i64>) -> Vec<Alert> {
    let n = state.get_option().copied().unwrap_or(0) + rows.len() as i64;
    state.update(n);
    state.set_timeout_duration(1_000);
    vec![Alert { user: user.into(), n }]
}

stream_query! {
    query Q(events: Event) -> Out, mode = update {
        events
            .with_watermark(ts, "10 seconds")
            .group_by(user)
            .flat_map_groups_with_state(alerts, timeout = event_time, output_mode = append)
            .group_by(user)
            .agg(count() as alerts)
    }
}

fn main() {}
