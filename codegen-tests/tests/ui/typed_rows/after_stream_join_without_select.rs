use flowgate::prelude::*;

#[derive(Record)]
struct Impression {
    ad_id: i64,
    time: Timestamp,
}

#[derive(Record)]
struct Click {
    ad_id: i64,
    time: Timestamp,
}

stream_query! {
    // After a stream-stream join the rows are both streams' columns: `select` the ones the
    // record has, then name its type.
    query Q(impressions: Impression, clicks: Click) -> Impression, mode = append {
        impressions
            .with_watermark(time, "1 hour")
            .join(clicks.with_watermark(time, "1 hour"), ad_id = clicks.ad_id, on = clicks.time >= time && clicks.time <= time + "10 minutes")
            .map_rows(|i: &Impression| Impression { ad_id: i.ad_id, time: i.time })
    }
}

fn main() {}
