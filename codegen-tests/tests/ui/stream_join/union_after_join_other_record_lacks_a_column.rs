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
struct AdAt {
    adId: Option<String>,
    time: Option<Timestamp>,
}

#[derive(Record)]
struct AdOnly {
    adId: Option<String>,
}

stream_query! {
    // The other stream's records must have the selected columns (by name): `AdOnly` has no
    // `time`, rustc's error at the column.
    query Q(impressions: Impression, clicks: Click, direct: AdOnly) -> AdAt, mode = append {
        impressions
            .join(clicks, adId)
            .select(adId, time = clicks.clickTime)
            .union(direct)
    }
}

fn main() {}
