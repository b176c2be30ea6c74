use flowgate::prelude::*;

#[derive(Record)]
struct Reading {
    value: Option<i64>,
}

stream_query! {
    // Three hundred negations in a row: past the compiler's nesting bound, one error on the
    // token that crosses it (before the bound, syn's parser overflowed a 2 MiB stack on a
    // thousand of them).
    query Q(readings: Reading) -> Reading, mode = append {
        readings.filter(value.is_some_and(|v| - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - v > 0))
    }
}

fn main() {}
