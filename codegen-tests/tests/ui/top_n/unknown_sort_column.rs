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
    query Q(lines: Line) -> WordCount, mode = complete {
        lines.flat_map(word = split(value, " ")).group_by(word).agg(count() as count).order_by(desc(cnt))
    }
}

fn main() {}
