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
    adId: String,
    clicks: i64,
}

fn count(ad: &String, rows: Vec<Impression>, state: &mut GroupState<i64>) -> Out {
    let n = state.get_option().copied().unwrap_or(0) + rows.len() as i64;
    state.update(n);
    Out { adId: ad.clone(), clicks: n }
}

stream_query! {
    // Group state over a join's rows: not built yet (one error, on `group_by`).
    query Q(impressions: Impression, clicks: Click) -> Out, mode = update {
        impressions
            .join(clicks, adId)
            .select(adId, clickTime = clicks.clickTime)
            .group_by(adId)
            .map_groups_with_state(count, timeout = none)
    }
}

fn main() {}
