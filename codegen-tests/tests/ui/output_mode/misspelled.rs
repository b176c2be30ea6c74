use flowgate::prelude::*;

#[derive(Record)]
struct Line {
    value: Option<String>,
}

#[derive(Record)]
struct WordCount {
    word: String,
    count: i64,
}

stream_query! {
    query Q(lines: Line) -> Line, mode = appnd {
        lines.filter(value.is_some())
    }
}

fn main() {
    // A parse-phase error still leaves the query's items: this line compiles.
    let _ = Q::builder().lines(Source::memory(&MemoryStream::<Line>::new()));
}
