use flowgate::prelude::*;

#[derive(Record)]
struct Click {
    ts: Timestamp,
    user: String,
}

#[derive(Record)]
struct View {
    ts: Timestamp,
    page: String,
}

stream_query! {
    query Q(clicks: Click, more: Click) -> Click, mode = append {
        clicks.select(ts, user).union(more)
    }
}

fn main() {}
