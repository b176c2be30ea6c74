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
    // One error, on the unknown operator: not also "the output columns are not known here"
    // (the unknown operator may have been meant as the projection).
    query Q(lines: Line) -> WordCount, mode = append {
        lines.frobnicate(value)
    }
}

fn main() {}
