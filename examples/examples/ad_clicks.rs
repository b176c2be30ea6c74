//! A stream-stream join, files in and files out, exactly once — the program the join's
//! fault-injection test kills and restarts.
//!
//! ```text
//! cargo run --release --example ad_clicks -- --impressions DIR --clicks DIR --output DIR --checkpoint DIR
//! ```
//!
//! Input: JSON lines `{"ad": "<string>", "ts": "<RFC 3339>"}` in two directories, one file
//! per source per micro-batch. Each impression joined with every click of its ad in the 10
//! minutes after it (both inputs watermarked 30 minutes behind), left outer: an impression
//! without a click is written with a null `click_time` once the watermark proves none can
//! come. Output: JSON lines (`ad`, `impression_time`, `click_time`) through the file sink's
//! manifest. Processes everything available (trigger available-now), then exits 0.

use flowgate::prelude::*;

#[derive(Record)]
struct Impression {
    ad: String,
    ts: Timestamp,
}

#[derive(Record)]
struct Click {
    ad: String,
    ts: Timestamp,
}

#[derive(Record)]
struct AdClick {
    ad: String,
    impression_time: Timestamp,
    click_time: Option<Timestamp>,
}

stream_query! {
    /// Each impression with its clicks in the next 10 minutes, or alone.
    query AdClicks(impressions: Impression, clicks: Click) -> AdClick, mode = append {
        impressions
            .with_watermark(ts, "30 minutes")
            .join(
                clicks.with_watermark(ts, "30 minutes"),
                ad,
                kind = left_outer,
                on = between(clicks.ts, ts, ts + "10 minutes"),
            )
            .select(ad, impression_time = ts, click_time = clicks.ts)
    }
}

fn main() -> flowgate::Result<()> {
    flowgate_examples::init_logging();
    let need = |name: &str| {
        flowgate_examples::arg(name).ok_or_else(|| {
            flowgate::Error::Plan(format!(
                "missing --{name}; usage: ad_clicks --impressions DIR --clicks DIR --output DIR --checkpoint DIR"
            ))
        })
    };
    let (impressions, clicks) = (need("impressions")?, need("clicks")?);
    let (output, checkpoint) = (need("output")?, need("checkpoint")?);
    let query = AdClicks::builder()
        .impressions(Source::file(impressions).json().mode(ParseMode::FailFast).max_files_per_trigger(1))
        .clicks(Source::file(clicks).json().mode(ParseMode::FailFast).max_files_per_trigger(1))
        .sink(Sink::file(output, SinkFormat::Json))
        .trigger(Trigger::available_now())
        .checkpoint(checkpoint)
        .start()?;
    query.await_termination()
}
