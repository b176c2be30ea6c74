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
    query Q(lines: Line) -> Line, mode = append {
        lines.limit(3)
    }
}

fn main() {}
