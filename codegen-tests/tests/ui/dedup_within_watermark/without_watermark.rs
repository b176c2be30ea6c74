use flowgate::prelude::*;

#[derive(Record)]
struct Event {
    ts: Timestamp,
    word: String,
}

#[derive(Record)]
struct WordCount {
    word: String,
    count: i64,
}

stream_query! {
    query Q(events: Event) -> Event, mode = append {
        events.drop_duplicates_within_watermark(word)
    }
}

fn main() {}
