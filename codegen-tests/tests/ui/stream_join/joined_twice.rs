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
    buyTime: Option<Timestamp>,
}

stream_query! {
    // The same stream twice: each stream joins once.
    query Q(impressions: Impression, clicks: Click) -> Out, mode = append {
        impressions
            .with_watermark(impressionTime, "2 hours")
            .join(
                clicks.with_watermark(clickTime, "3 hours"),
                adId,
                on = clicks.clickTime >= impressionTime && clicks.clickTime <= impressionTime + "1 hour",
            )
            .join(
                clicks.with_watermark(clickTime, "3 hours"),
                adId,
                on = clicks.clickTime >= impressionTime,
            )
            .select(adId, buyTime = clicks.clickTime)
    }
}

fn main() {}
