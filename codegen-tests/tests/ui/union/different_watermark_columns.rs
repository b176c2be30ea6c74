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
        clicks.with_watermark(ts, "1 minute").union(more.with_watermark(user, "1 minute"))
    }
}

fn main() {}
