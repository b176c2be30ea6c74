//! A continuous trigger on a stream-stream join.
use flowgate::prelude::*;

#[derive(Record)]
struct Impression {
    ad: i64,
    shown: Timestamp,
}

#[derive(Record)]
struct Click {
    clicked_ad: i64,
    clicked: Timestamp,
}

#[derive(Record)]
struct Match {
    ad: i64,
    shown: Timestamp,
    clicked: Timestamp,
}

stream_query! {
    query Matches(impressions: Impression, clicks: Click) -> Match, mode = append {
        impressions
            .with_watermark(shown, "1 hour")
            .join(
                clicks.with_watermark(clicked, "1 hour"),
                ad = clicks.clicked_ad,
                on = clicks.clicked >= shown && clicks.clicked <= shown + "10 minutes",
            )
            .select(ad, shown, clicked = clicks.clicked)
    }
}

fn main() {
    let (impressions, clicks) = (MemoryStream::<Impression>::new(), MemoryStream::<Click>::new());
    let _ = Matches::builder()
        .impressions(Source::memory(&impressions))
        .clicks(Source::memory(&clicks))
        .sink(Sink::console())
        .trigger(Trigger::continuous("1 second"))
        .start();
}
