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
    query Q(events: Event) -> WordCount, mode = update {
        events.group_by(word).agg(count() as count).limit(10)
    }
}

fn main() {}
