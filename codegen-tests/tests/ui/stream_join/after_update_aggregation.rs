#![allow(non_snake_case)]
use flowgate::prelude::*;

#[derive(Record)]
struct Impression {
    adId: Option<String>,
    impressionTime: Option<Timestamp>,
}

#[derive(Record)]
struct Click {
    adId: Option<String>,
    clickTime: Option<Timestamp>,
}

#[derive(Record)]
struct Out {
    adId: Option<String>,
    n: i64,
    clickTime: Option<Timestamp>,
}

stream_query! {
    // Spark refuses a stream-stream join after an update-mode aggregation: its updates would
    // be late rows for the join.
    query Q(impressions: Impression, clicks: Click) -> Out, mode = update {
        impressions
            .group_by(adId)
            .agg(count() as n)
            .join(clicks.with_watermark(clickTime, "1 hour"), adId)
            .select(adId, n, clickTime = clicks.clickTime)
    }
}

fn main() {}
