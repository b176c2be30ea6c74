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
struct Buy {
    adId: Option<String>,
    buyTime: Option<Timestamp>,
}

#[derive(Record)]
struct Out {
    adId: Option<String>,
    buyTime: Option<Timestamp>,
}

stream_query! {
    // After the first join both `impressionTime` and `clicks.clickTime` carry a watermark:
    // Spark 4 refuses to join such a stream again (MULTIPLE_EVENT_TIME_COLUMNS).
    query Q(impressions: Impression, clicks: Click, buys: Buy) -> Out, mode = append {
        impressions
            .with_watermark(impressionTime, "2 hours")
            .join(
                clicks.with_watermark(clickTime, "3 hours"),
                adId,
                on = clicks.clickTime >= impressionTime && clicks.clickTime <= impressionTime + "1 hour",
            )
            .join(
                buys.with_watermark(buyTime, "1 hour"),
                adId,
                on = buys.buyTime >= impressionTime && buys.buyTime <= impressionTime + "90 minutes",
            )
            .select(adId, buyTime = buys.buyTime)
    }
}

fn main() {}
