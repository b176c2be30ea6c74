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

#[derive(Record)]
struct Total {
    total: i64,
}

stream_query! {
    query Q(lines: Line) -> Total, mode = complete {
        lines.agg(sum(value) as total)
    }
}

fn main() {}
