use flowgate::prelude::*;

#[derive(Record)]
struct Visit {
    user: String,
    ts: Timestamp,
}

#[derive(Record)]
struct Alert {
    user: String,
    fired_at: Timestamp,
}

#[derive(Record)]
struct Out {
    window: Window,
    alerts: i64,
}

#[derive(Default)]
struct Quiet;

impl StatefulProcessor for Quiet {
    type Key = String;
    type Input = Visit;
    type Output = Alert;

    fn init(&mut self, _handle: &mut StatefulProcessorHandle) {}

    fn handle_input_rows(
        &mut self,
        user: &String,
        rows: GroupRows<'_, Visit>,
        _timer_values: &TimerValues,
        _h: &mut KeyHandle<'_>,
    ) -> impl IntoIterator<Item = Alert> {
        rows.map(|r| Alert { user: user.clone(), fired_at: r.ts }).collect::<Vec<_>>()
    }
}

stream_query! {
    query Q(events: Visit) -> Out, mode = append {
        events
            .with_watermark(ts, "2 seconds")
            .group_by(user)
            .transform_with_state(Quiet, time_mode = event_time)
            .with_watermark(fired_at, "0 seconds")
            .group_by(window(fired_at, "20 seconds"))
            .agg(count() as alerts)
    }
}

fn main() {}
