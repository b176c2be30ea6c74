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
    clickTime: Option<Timestamp>,
}

stream_query! {
    // After a stream-stream join a union takes the selected columns: `select` first.
    query Q(impressions: Impression, clicks: Click, more: Impression) -> Out, mode = append {
        impressions
            .join(clicks, adId)
            .union(more)
            .select(adId, clickTime = clicks.clickTime)
    }
}

fn main() {}
