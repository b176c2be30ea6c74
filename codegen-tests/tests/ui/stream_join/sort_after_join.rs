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
    // Spark: "Sorting is not supported on streaming DataFrames/Datasets, unless it is on
    // aggregated DataFrame/Dataset in Complete output mode".
    query Q(impressions: Impression, clicks: Click) -> Out, mode = append {
        impressions
            .join(clicks, adId)
            .select(adId, clickTime = clicks.clickTime)
            .order_by(clickTime)
    }
}

fn main() {}
