//! A continuous trigger on the stream's global limit.
use flowgate::prelude::*;

#[derive(Record)]
struct Event {
    id: i64,
}

stream_query! {
    query FirstFive(events: Event) -> Event, mode = append {
        events.filter(id > 0).limit(5)
    }
}

fn main() {
    let input = MemoryStream::<Event>::new();
    let _ = FirstFive::builder()
        .events(Source::memory(&input))
        .sink(Sink::console())
        .trigger(Trigger::continuous("1 second"))
        .start();
}
