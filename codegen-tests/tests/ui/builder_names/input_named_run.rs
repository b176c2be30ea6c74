use flowgate::prelude::*;

#[derive(Record)]
struct Line {
    value: String,
}

stream_query! {
    // `run` is the batch job's (`Q::batch().run()`), as `sink` is the builder's.
    query Q(run: Line) -> Line, mode = append {
        run.filter(!value.is_empty())
    }
}

fn main() {}
