use flowgate::prelude::*;

#[derive(Record)]
struct Line {
    value: Option<String>,
}

stream_query! {
    // The error goes on the last token, where the query stops, not on the whole invocation.
    query Q(lines: Line) -> Line, mode
}

fn main() {}
