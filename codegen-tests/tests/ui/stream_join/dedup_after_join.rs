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
    query Q(impressions: Impression, clicks: Click) -> Out, mode = append {
        impressions
            .join(clicks, adId)
            .drop_duplicates(adId)
            .select(adId, clickTime = clicks.clickTime)
    }
}

fn main() {}
