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
    // A window of one side only: the other side's plain column is no window. (After a
    // windowed aggregation its `window` column may stand on the left.)
    query Q(impressions: Impression, clicks: Click) -> Out, mode = append {
        impressions
            .with_watermark(impressionTime, "2 hours")
            .join(
                clicks.with_watermark(clickTime, "3 hours"),
                adId,
                impressionTime = window(clicks.clickTime, "1 hour"),
            )
            .select(adId, clickTime = clicks.clickTime)
    }
}

fn main() {}
