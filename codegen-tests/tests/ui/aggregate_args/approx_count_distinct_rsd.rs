use flowgate::prelude::*;

#[derive(Record)]
struct Reading {
    word: Option<String>,
    v: Option<i64>,
}

#[derive(Record)]
struct Out {
    word: Option<String>,
    n: Option<f64>,
}

stream_query! {
    query Q(readings: Reading) -> Out, mode = update {
        readings
            .group_by(word)
            .agg(approx_count_distinct(word, 0.01) as n)
    }
}

fn main() {}
