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

#[derive(Default)]
struct Counter {
    n: ValueState<i64>,
}

impl StatefulProcessor for Counter {
    type Key = String;
    type Input = Event;
    type Output = Out;
    fn init(&mut self, handle: &mut StatefulProcessorHandle) {
        self.n = handle.get_value_state("n", Ttl::NONE);
    }
    fn handle_input_rows(
        &mut self,
        user: &String,
        rows: GroupRows<'_, Event>,
        _timer_values: &TimerValues,
        h: &mut KeyHandle<'_>,
    ) -> impl IntoIterator<Item = Out> {
        let n = self.n.get(h).unwrap_or(0) + rows.len() as i64;
        self.n.update(h, n);
        Some(Out { user: user.clone(), n })
    }
}

stream_query! {
    query Q(events: Event) -> Out, mode = update {
        events.group_by(user).transform_with_state(Counter::default(), timeout = processing_time)
    }
}

fn main() {}
