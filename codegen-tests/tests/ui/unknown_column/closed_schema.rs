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
    query Q(lines: Line) -> WordCount, mode = update {
        lines
            .flat_map(word = split(value, " "))
            .select(word)
            .group_by(wrod)
            .agg(count() as count)
    }
}

fn main() {}
