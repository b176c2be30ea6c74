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
    query Q(lines: Line) -> Line, mode = complete {
        lines.filter(value.is_some())
    }
}

fn main() {}
