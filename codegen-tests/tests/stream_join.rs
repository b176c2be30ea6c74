//! Stream-stream joins against real Spark: the shared oracle's inner and left outer cases and
//! the project's own (right outer, full outer, left semi, equal windows, the `max` watermark
//! policy), each replayed batch by batch with Spark's rows, state metrics and watermarks.
#![allow(non_snake_case)]

use flowgate::prelude::*;
use flowgate_codegen_tests::InputRows;

#[derive(Record)]
struct Impression {
    impressionAdId: Option<String>,
    impressionTime: Option<Timestamp>,
}

#[derive(Record)]
struct Click {
    clickAdId: Option<String>,
    clickTime: Option<Timestamp>,
}

#[derive(Record)]
struct AdClick {
    impressionAdId: Option<String>,
    impressionTime: Option<Timestamp>,
    clickAdId: Option<String>,
    clickTime: Option<Timestamp>,
}

#[derive(Record)]
struct WindowClick {
    impressionAdId: Option<String>,
    window_start: Option<Timestamp>,
    clickAdId: Option<String>,
}

const HOUR: i64 = 3_600_000_000;

stream_query! {
    /// Impressions and clicks of the same ad in the same hour (Spark: both sides project
    /// `window(t, '1 hour')`, joined on it): state leaves by key, when the window's end passes.
    query SameHour(impressions: Impression, clicks: Click) -> WindowClick, mode = append {
        impressions
            .with_watermark(impressionTime, "2 hours")
            .join(
                clicks.with_watermark(clickTime, "3 hours"),
                impressionAdId = clicks.clickAdId,
                window(impressionTime, "1 hour") = window(clicks.clickTime, "1 hour"),
            )
            .select(
                impressionAdId,
                window_start = impressionTime.map(|t| Timestamp(t.0 - t.0.rem_euclid(HOUR))),
                clickAdId = clicks.clickAdId,
            )
    }

    /// The same, every impression: those without a click in their hour once it has passed.
    query SameHourLeft(impressions: Impression, clicks: Click) -> WindowClick, mode = append {
        impressions
            .with_watermark(impressionTime, "2 hours")
            .join(
                clicks.with_watermark(clickTime, "3 hours"),
                impressionAdId = clicks.clickAdId,
                window(impressionTime, "1 hour") = window(clicks.clickTime, "1 hour"),
                kind = left_outer,
            )
            .select(
                impressionAdId,
                window_start = impressionTime.map(|t| Timestamp(t.0 - t.0.rem_euclid(HOUR))),
                clickAdId = clicks.clickAdId,
            )
    }
}

stream_query! {
    /// The programming guide's ad-click join: each click within an hour after its impression.
    query AdClicks(impressions: Impression, clicks: Click) -> AdClick, mode = append {
        impressions
            .with_watermark(impressionTime, "2 hours")
            .join(
                clicks.with_watermark(clickTime, "3 hours"),
                impressionAdId = clicks.clickAdId,
                on = clicks.clickTime >= impressionTime && clicks.clickTime <= impressionTime + "1 hour",
            )
            .select(impressionAdId, impressionTime, clickAdId = clicks.clickAdId, clickTime = clicks.clickTime)
    }

    /// The same, every impression: without a click once the watermark proves none can come.
    query AdClicksLeft(impressions: Impression, clicks: Click) -> AdClick, mode = append {
        impressions
            .with_watermark(impressionTime, "2 hours")
            .join(
                clicks.with_watermark(clickTime, "3 hours"),
                impressionAdId = clicks.clickAdId,
                kind = left_outer,
                on = clicks.clickTime >= impressionTime && clicks.clickTime <= impressionTime + "1 hour",
            )
            .select(impressionAdId, impressionTime, clickAdId = clicks.clickAdId, clickTime = clicks.clickTime)
    }

    /// Every click, with its impression where there is one (`between` for the range).
    query AdClicksRight(impressions: Impression, clicks: Click) -> AdClick, mode = append {
        impressions
            .with_watermark(impressionTime, "2 hours")
            .join(
                clicks.with_watermark(clickTime, "3 hours"),
                impressionAdId = clicks.clickAdId,
                kind = right_outer,
                on = between(clicks.clickTime, impressionTime, impressionTime + "1 hour"),
            )
            .select(impressionAdId, impressionTime, clickAdId = clicks.clickAdId, clickTime = clicks.clickTime)
    }

    /// Both.
    query AdClicksFull(impressions: Impression, clicks: Click) -> AdClick, mode = append {
        impressions
            .with_watermark(impressionTime, "2 hours")
            .join(
                clicks.with_watermark(clickTime, "3 hours"),
                impressionAdId = clicks.clickAdId,
                kind = full_outer,
                on = clicks.clickTime >= impressionTime && clicks.clickTime <= impressionTime + "1 hour",
            )
            .select(impressionAdId, impressionTime, clickAdId = clicks.clickAdId, clickTime = clicks.clickTime)
    }

    /// The impressions that were clicked, once each.
    query ClickedImpressions(impressions: Impression, clicks: Click) -> Impression, mode = append {
        impressions
            .with_watermark(impressionTime, "2 hours")
            .join(
                clicks.with_watermark(clickTime, "3 hours"),
                impressionAdId = clicks.clickAdId,
                kind = left_semi,
                on = clicks.clickTime >= impressionTime && clicks.clickTime <= impressionTime + "1 hour",
            )
            .select(impressionAdId, impressionTime)
    }
}

macro_rules! golden_join {
    ($case:literal, $query:ident, $rows:expr) => {
        golden_join!($case, $query, $rows, WatermarkPolicy::Min)
    };
    ($case:literal, $query:ident, $rows:expr, $policy:expr) => {{
        let (i, c) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let table = MemoryTable::new();
        let query = $query::builder()
            .impressions(Source::file(i.path()).json())
            .clicks(Source::file(c.path()).json())
            .watermark_policy($policy)
            // A step stages one file per source, one rename after the other; a trigger every
            // 200 ms (the next one just after `process_all_available` returns) keeps a batch
            // from starting between the two, as the oracle placed its files mid-interval.
            .trigger(Trigger::processing_time("200 milliseconds"))
            .sink(Sink::memory(&table))
            .shuffle_partitions(2)
            .start()
            .unwrap();
        flowgate_codegen_tests::run_case_sources(
            $case,
            &[("impressions", i.path()), ("clicks", c.path())],
            &query,
            &table,
            $rows,
        );
        query.stop().unwrap();
    }};
}

#[test]
fn stream_stream_inner_join() {
    // Spark infers `clickAdId IS NOT NULL` and `impressionAdId IS NOT NULL` from the inner join.
    golden_join!("stream_stream_inner_join", AdClicks, InputRows::SparkPushesFiltersDown);
}

#[test]
fn stream_stream_left_outer_join() {
    golden_join!("stream_stream_left_outer_join", AdClicksLeft, InputRows::SparkPushesFiltersDown);
}

#[test]
fn stream_stream_right_outer_join() {
    golden_join!("stream_stream_right_outer_join", AdClicksRight, InputRows::SparkPushesFiltersDown);
}

#[test]
fn stream_stream_full_outer_join() {
    golden_join!("stream_stream_full_outer_join", AdClicksFull, InputRows::Check);
}

#[test]
fn stream_stream_left_semi_join() {
    golden_join!("stream_stream_left_semi_join", ClickedImpressions, InputRows::SparkPushesFiltersDown);
}

#[test]
fn stream_stream_inner_join_max_policy() {
    golden_join!(
        "stream_stream_inner_join_max_policy",
        AdClicks,
        InputRows::SparkPushesFiltersDown,
        WatermarkPolicy::Max
    );
}

#[test]
fn stream_stream_window_join() {
    golden_join!("stream_stream_window_join", SameHour, InputRows::SparkPushesFiltersDown);
}

#[test]
fn stream_stream_left_outer_window_join() {
    golden_join!("stream_stream_left_outer_window_join", SameHourLeft, InputRows::SparkPushesFiltersDown);
}

#[derive(Record)]
struct HourlyMatches {
    window: Window,
    n: i64,
}

#[derive(Record)]
struct HourlyImpressions {
    window: Window,
    n: i64,
    clicks: i64,
}

#[derive(Record)]
struct AdMatches {
    impressionAdId: Option<String>,
    n: i64,
}

stream_query! {
    /// Two stateful operators: the ad-click join, then matches per hour of impression. The
    /// window closes when the join's output watermark passes its end.
    query HourlyAdClicks(impressions: Impression, clicks: Click) -> HourlyMatches, mode = append {
        impressions
            .with_watermark(impressionTime, "2 hours")
            .join(
                clicks.with_watermark(clickTime, "3 hours"),
                impressionAdId = clicks.clickAdId,
                on = clicks.clickTime >= impressionTime && clicks.clickTime <= impressionTime + "1 hour",
            )
            .group_by(window(impressionTime, "1 hour"))
            .agg(count() as n)
    }

    /// Every impression per hour, and how many had a click: the unmatched ones arrive
    /// null-padded when the join's watermark proves them unmatched.
    query HourlyImpressionsLeft(impressions: Impression, clicks: Click) -> HourlyImpressions, mode = append {
        impressions
            .with_watermark(impressionTime, "2 hours")
            .join(
                clicks.with_watermark(clickTime, "3 hours"),
                impressionAdId = clicks.clickAdId,
                kind = left_outer,
                on = clicks.clickTime >= impressionTime && clicks.clickTime <= impressionTime + "1 hour",
            )
            .group_by(window(impressionTime, "1 hour"))
            .agg(count() as n, count(clicks.clickTime) as clicks)
    }

    /// A running count of matches per ad (update mode, which Spark 4 accepts for an inner join).
    query MatchesPerAd(impressions: Impression, clicks: Click) -> AdMatches, mode = update {
        impressions
            .with_watermark(impressionTime, "2 hours")
            .join(
                clicks.with_watermark(clickTime, "3 hours"),
                impressionAdId = clicks.clickAdId,
                on = clicks.clickTime >= impressionTime && clicks.clickTime <= impressionTime + "1 hour",
            )
            .group_by(impressionAdId)
            .agg(count() as n)
    }
}

#[test]
fn stream_stream_inner_join_then_window_count() {
    golden_join!("stream_stream_inner_join_then_window_count", HourlyAdClicks, InputRows::SparkPushesFiltersDown);
}

#[test]
fn stream_stream_left_outer_join_then_window_count() {
    golden_join!(
        "stream_stream_left_outer_join_then_window_count",
        HourlyImpressionsLeft,
        InputRows::SparkPushesFiltersDown
    );
}

#[test]
fn stream_stream_inner_join_then_count_update() {
    golden_join!("stream_stream_inner_join_then_count_update", MatchesPerAd, InputRows::SparkPushesFiltersDown);
}

#[derive(Record)]
struct Buy {
    buyAdId: Option<String>,
    buyTime: Option<Timestamp>,
}

#[derive(Record)]
struct ClickBuy {
    impressionAdId: Option<String>,
    impressionTime: Option<Timestamp>,
    clickAdId: Option<String>,
    buyAdId: Option<String>,
    buyTime: Option<Timestamp>,
}

stream_query! {
    /// Two stream-stream joins in a row: the ad clicks, then purchases within 90 minutes of
    /// the impression. The first join's output keeps one event-time column (Spark 4 joins a
    /// stream with one at most); the second join's watermark is the first's output watermark.
    query ClickedThenBought(impressions: Impression, clicks: Click, buys: Buy) -> ClickBuy, mode = append {
        impressions
            .with_watermark(impressionTime, "2 hours")
            .join(
                clicks.with_watermark(clickTime, "3 hours"),
                impressionAdId = clicks.clickAdId,
                on = clicks.clickTime >= impressionTime && clicks.clickTime <= impressionTime + "1 hour",
            )
            .select(impressionAdId, impressionTime, clickAdId = clicks.clickAdId)
            .join(
                buys.with_watermark(buyTime, "1 hour"),
                clickAdId = buys.buyAdId,
                on = buys.buyTime >= impressionTime && buys.buyTime <= impressionTime + "90 minutes",
            )
            .select(impressionAdId, impressionTime, clickAdId, buyAdId = buys.buyAdId, buyTime = buys.buyTime)
    }

    /// The same with a left outer second join: clicked impressions without a purchase come
    /// out null-padded once the watermark proves none can come.
    query ClickedMaybeBought(impressions: Impression, clicks: Click, buys: Buy) -> ClickBuy, mode = append {
        impressions
            .with_watermark(impressionTime, "2 hours")
            .join(
                clicks.with_watermark(clickTime, "3 hours"),
                impressionAdId = clicks.clickAdId,
                on = clicks.clickTime >= impressionTime && clicks.clickTime <= impressionTime + "1 hour",
            )
            .select(impressionAdId, impressionTime, clickAdId = clicks.clickAdId)
            .join(
                buys.with_watermark(buyTime, "1 hour"),
                clickAdId = buys.buyAdId,
                kind = left_outer,
                on = buys.buyTime >= impressionTime && buys.buyTime <= impressionTime + "90 minutes",
            )
            .select(impressionAdId, impressionTime, clickAdId, buyAdId = buys.buyAdId, buyTime = buys.buyTime)
    }
}

macro_rules! golden_join3 {
    ($case:literal, $query:ident, $rows:expr) => {{
        let (i, c, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let table = MemoryTable::new();
        let query = $query::builder()
            .impressions(Source::file(i.path()).json())
            .clicks(Source::file(c.path()).json())
            .buys(Source::file(b.path()).json())
            .trigger(Trigger::processing_time("200 milliseconds"))
            .sink(Sink::memory(&table))
            .shuffle_partitions(2)
            .start()
            .unwrap();
        flowgate_codegen_tests::run_case_sources(
            $case,
            &[("impressions", i.path()), ("clicks", c.path()), ("buys", b.path())],
            &query,
            &table,
            $rows,
        );
        query.stop().unwrap();
    }};
}

#[test]
fn stream_stream_join_then_join() {
    golden_join3!("stream_stream_join_then_join", ClickedThenBought, InputRows::SparkPushesFiltersDown);
}

#[test]
fn stream_stream_join_then_left_outer_join() {
    golden_join3!("stream_stream_join_then_left_outer_join", ClickedMaybeBought, InputRows::SparkPushesFiltersDown);
}

#[derive(Record, Clone)]
struct Imp {
    ad: i64,
    ts: Timestamp,
}

#[derive(Record)]
struct Pair {
    ad: i64,
    it: Timestamp,
    ct: Timestamp,
}

stream_query! {
    /// Clicks within 5 minutes of their impression, both streams watermarked 1 minute behind.
    query Bounded(imps: Imp, clicks: Imp) -> Pair, mode = append {
        imps
            .with_watermark(ts, "1 minute")
            .join(clicks.with_watermark(ts, "1 minute"), ad, on = between(clicks.ts, ts, ts + "5 minutes"))
            .select(ad, it = ts, ct = clicks.ts)
    }

    /// The same without watermarks: Spark allows it, and both sides keep every row.
    query Unbounded(imps: Imp, clicks: Imp) -> Pair, mode = append {
        imps
            .join(clicks, ad, on = between(clicks.ts, ts, ts + "5 minutes"))
            .select(ad, it = ts, ct = clicks.ts)
    }
}

/// State rows after each of `batches` batches of 50 impressions and 50 clicks, event time
/// advancing 10 s a batch; and the number of joined rows.
fn state_rows(bounded: bool, batches: usize) -> (Vec<u64>, usize) {
    let (imps, clicks, table) = (MemoryStream::<Imp>::new(), MemoryStream::<Imp>::new(), MemoryTable::new());
    let q = if bounded {
        Bounded::builder()
            .imps(Source::memory(&imps))
            .clicks(Source::memory(&clicks))
            .sink(Sink::memory(&table))
            .no_data_batches(false)
            .start()
    } else {
        Unbounded::builder()
            .imps(Source::memory(&imps))
            .clicks(Source::memory(&clicks))
            .sink(Sink::memory(&table))
            .no_data_batches(false)
            .start()
    }
    .unwrap();
    let mut rows = Vec::new();
    for b in 0..batches as i64 {
        let t = 1_704_110_400_000_000 + b * 10_000_000;
        imps.add((0..50).map(|i| Imp { ad: (b * 50 + i) % 500, ts: Timestamp(t + i * 100_000) }).collect::<Vec<_>>());
        clicks.add(
            (0..50).map(|i| Imp { ad: (b * 50 + i + 250) % 500, ts: Timestamp(t + i * 100_000) }).collect::<Vec<_>>(),
        );
        q.process_all_available().unwrap();
        let op = q.recent_progress().last().unwrap().state_operators[0].clone();
        let side = |name: &str| op.custom_metrics.iter().find(|(k, _)| k == name).map(|(_, v)| *v);
        assert_eq!(
            side("leftRows").zip(side("rightRows")).map(|(l, r)| l + r),
            Some(op.num_rows_total),
            "rows per side"
        );
        assert!(
            side("leftBytes").is_some_and(|b| b > 0) && side("rightBytes").is_some_and(|b| b > 0),
            "bytes per side"
        );
        rows.push(op.num_rows_total);
    }
    q.stop().unwrap();
    (rows, table.rows::<Pair>().unwrap().len())
}

#[test]
fn state_levels_off_with_watermarks_and_grows_without() {
    let (bounded, joined) = state_rows(true, 240);
    // Rows stay about 7 minutes (the 1-minute delay and the 5-minute range) of 10 s batches
    // of 100 rows: the state levels off near 4 200 rows instead of growing by 100 a batch.
    let (early, late) = (&bounded[60..120], &bounded[180..]);
    let (max_early, max_late) = (early.iter().max().unwrap(), late.iter().max().unwrap());
    assert!(*max_late <= max_early + max_early / 10, "state grew: {max_early} rows, later {max_late}");
    assert!(*max_late < 6_000, "state rows {max_late}: not bounded by the watermark");
    assert!(joined > 0, "the join matched rows");
    let (unbounded, _) = state_rows(false, 120);
    assert_eq!(unbounded.last(), Some(&(120 * 100)), "without watermarks every row stays");
}

#[derive(Record)]
struct ImpressionOnly {
    impressionAdId: Option<String>,
    impressionTime: Option<Timestamp>,
}

#[derive(Record)]
struct AdClicked {
    impressionAdId: Option<String>,
    clicked: bool,
}

#[derive(Record)]
struct AdOnly {
    impressionAdId: Option<String>,
}

stream_query! {
    /// Each clicked impression once: a dedup after the join, on the impression's ad and event
    /// time. Its late rows and evicted keys go by the join's output watermark.
    query ClickedImpressionsOnce(impressions: Impression, clicks: Click) -> ImpressionOnly, mode = append {
        impressions
            .with_watermark(impressionTime, "2 hours")
            .join(
                clicks.with_watermark(clickTime, "3 hours"),
                impressionAdId = clicks.clickAdId,
                on = clicks.clickTime >= impressionTime && clicks.clickTime <= impressionTime + "1 hour",
            )
            .select(impressionAdId, impressionTime)
            .drop_duplicates(impressionAdId, impressionTime)
    }

    /// Each ad at most once clicked and once not: a dedup without event time after a left
    /// outer join, its null-padded rows included when the join emits them.
    query AdsClickedOrNot(impressions: Impression, clicks: Click) -> AdClicked, mode = append {
        impressions
            .with_watermark(impressionTime, "2 hours")
            .join(
                clicks.with_watermark(clickTime, "3 hours"),
                impressionAdId = clicks.clickAdId,
                kind = left_outer,
                on = clicks.clickTime >= impressionTime && clicks.clickTime <= impressionTime + "1 hour",
            )
            .select(impressionAdId, clicked = clicks.clickTime.is_some())
            .drop_duplicates(impressionAdId, clicked)
    }

    /// Each clicked ad once until its first impression time plus the 2-hour delay passes the
    /// join's output watermark (`dropDuplicatesWithinWatermark` after the join).
    query ClickedAdsWithin(impressions: Impression, clicks: Click) -> ImpressionOnly, mode = append {
        impressions
            .with_watermark(impressionTime, "2 hours")
            .join(
                clicks.with_watermark(clickTime, "3 hours"),
                impressionAdId = clicks.clickAdId,
                on = clicks.clickTime >= impressionTime && clicks.clickTime <= impressionTime + "1 hour",
            )
            .select(impressionAdId, impressionTime)
            .drop_duplicates_within_watermark(impressionAdId)
    }

    /// The first three joined rows of the stream, nothing after (Spark's streaming limit).
    query FirstThreeMatches(impressions: Impression, clicks: Click) -> AdOnly, mode = append {
        impressions
            .with_watermark(impressionTime, "2 hours")
            .join(
                clicks.with_watermark(clickTime, "3 hours"),
                impressionAdId = clicks.clickAdId,
                on = clicks.clickTime >= impressionTime && clicks.clickTime <= impressionTime + "1 hour",
            )
            .select(impressionAdId)
            .limit(3)
    }
}

#[test]
fn stream_stream_inner_join_then_dedup() {
    golden_join!("stream_stream_inner_join_then_dedup", ClickedImpressionsOnce, InputRows::SparkPushesFiltersDown);
}

#[test]
fn stream_stream_left_outer_join_then_dedup() {
    golden_join!("stream_stream_left_outer_join_then_dedup", AdsClickedOrNot, InputRows::SparkPushesFiltersDown);
}

#[test]
fn stream_stream_inner_join_then_limit() {
    golden_join!("stream_stream_inner_join_then_limit", FirstThreeMatches, InputRows::SparkPushesFiltersDown);
}

#[test]
fn stream_stream_inner_join_then_dedup_within_watermark() {
    golden_join!(
        "stream_stream_inner_join_then_dedup_within_watermark",
        ClickedAdsWithin,
        InputRows::SparkPushesFiltersDown
    );
}

#[derive(Record)]
struct Ad {
    adId: Option<String>,
    campaign: Option<String>,
}

#[derive(Record)]
struct CampaignClick {
    impressionAdId: Option<String>,
    campaign: Option<String>,
    clickTime: Option<Timestamp>,
}

stream_query! {
    /// Each ad-click pair with its ad's campaign from a static table (a stream-static join on
    /// the stream-stream join's rows).
    query CampaignClicks(impressions: Impression, clicks: Click, ads: static Ad) -> CampaignClick, mode = append {
        impressions
            .with_watermark(impressionTime, "2 hours")
            .join(
                clicks.with_watermark(clickTime, "3 hours"),
                impressionAdId = clicks.clickAdId,
                on = clicks.clickTime >= impressionTime && clicks.clickTime <= impressionTime + "1 hour",
            )
            .join(ads, impressionAdId = ads.adId)
            .select(impressionAdId, campaign = ads.campaign, clickTime = clicks.clickTime)
    }
}

#[test]
fn stream_stream_inner_join_then_static_join() {
    let case = "stream_stream_inner_join_then_static_join";
    let (i, c) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let statics = flowgate_codegen_tests::cases_dir().join(case).join("static");
    let table = MemoryTable::new();
    let query = CampaignClicks::builder()
        .impressions(Source::file(i.path()).json())
        .clicks(Source::file(c.path()).json())
        .ads(Source::file(&statics).json())
        .trigger(Trigger::processing_time("200 milliseconds"))
        .sink(Sink::memory(&table))
        .shuffle_partitions(2)
        .start()
        .unwrap();
    flowgate_codegen_tests::run_case_sources(
        case,
        &[("impressions", i.path()), ("clicks", c.path())],
        &query,
        &table,
        InputRows::SparkPushesFiltersDown,
    );
    query.stop().unwrap();
}

#[derive(Record)]
struct HourClick {
    impressionAdId: Option<String>,
    hour: Timestamp,
    n: i64,
    clickTime: Option<Timestamp>,
}

stream_query! {
    /// Impressions per ad and hour, each closed hour joined with its ad's clicks inside it (a
    /// stream-stream join after an aggregation, append mode). The window is not a range
    /// condition Spark bounds state by: both sides are kept.
    query HourlyClicks(impressions: Impression, clicks: Click) -> HourClick, mode = append {
        impressions
            .with_watermark(impressionTime, "2 hours")
            .group_by(window(impressionTime, "1 hour"), impressionAdId)
            .agg(count() as n)
            .join(
                clicks.with_watermark(clickTime, "3 hours"),
                impressionAdId = clicks.clickAdId,
                on = clicks.clickTime.is_some_and(|t| t >= window.start && t < window.end),
            )
            .select(impressionAdId, hour = window.start, n, clickTime = clicks.clickTime)
    }
}

#[test]
fn window_count_then_stream_join() {
    golden_join!("window_count_then_stream_join", HourlyClicks, InputRows::SparkPushesFiltersDown);
}

stream_query! {
    /// Two impression streams unioned, then joined with the clicks: both feed the left side.
    query UnionAdClicks(impressions: Impression, more: Impression, clicks: Click) -> AdClick, mode = append {
        impressions
            .with_watermark(impressionTime, "2 hours")
            .union(more.with_watermark(impressionTime, "2 hours"))
            .join(
                clicks.with_watermark(clickTime, "3 hours"),
                impressionAdId = clicks.clickAdId,
                on = clicks.clickTime >= impressionTime && clicks.clickTime <= impressionTime + "1 hour",
            )
            .select(impressionAdId, impressionTime, clickAdId = clicks.clickAdId, clickTime = clicks.clickTime)
    }
}

#[test]
fn union_then_stream_join() {
    let (i, m, c) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let table = MemoryTable::new();
    let query = UnionAdClicks::builder()
        .impressions(Source::file(i.path()).json())
        .more(Source::file(m.path()).json())
        .clicks(Source::file(c.path()).json())
        .trigger(Trigger::processing_time("200 milliseconds"))
        .sink(Sink::memory(&table))
        .shuffle_partitions(2)
        .start()
        .unwrap();
    flowgate_codegen_tests::run_case_sources(
        "union_then_stream_join",
        &[("impressions", i.path()), ("more", m.path()), ("clicks", c.path())],
        &query,
        &table,
        InputRows::SparkPushesFiltersDown,
    );
    query.stop().unwrap();
}

stream_query! {
    /// A static join before a stream-stream join: each impression takes its campaign first.
    query CampaignClicksFirst(impressions: Impression, ads: static Ad, clicks: Click) -> CampaignClick, mode = append {
        impressions
            .with_watermark(impressionTime, "2 hours")
            .join(ads, impressionAdId = ads.adId)
            .join(
                clicks.with_watermark(clickTime, "3 hours"),
                impressionAdId = clicks.clickAdId,
                on = clicks.clickTime >= impressionTime && clicks.clickTime <= impressionTime + "1 hour",
            )
            .select(impressionAdId, campaign = ads.campaign, clickTime = clicks.clickTime)
    }
}

#[test]
fn a_static_join_before_a_stream_stream_join() {
    let at = |s: &str| Some(Timestamp::parse(s).unwrap());
    let imp = |ad: &str, t: &str| Impression { impressionAdId: Some(ad.into()), impressionTime: at(t) };
    let click = |ad: &str, t: &str| Click { clickAdId: Some(ad.into()), clickTime: at(t) };
    let (impressions, ads, clicks) = (MemoryStream::new(), MemoryStream::new(), MemoryStream::new());
    impressions.add([
        imp("ad1", "2024-01-01T10:00:00Z"),
        imp("ad2", "2024-01-01T10:00:00Z"),
        imp("ad3", "2024-01-01T10:00:00Z"),
    ]);
    ads.add([
        Ad { adId: Some("ad1".into()), campaign: Some("c1".into()) },
        Ad { adId: Some("ad3".into()), campaign: Some("c3".into()) },
    ]);
    // ad1 clicked in time, ad2 has no campaign, ad3's click is two hours late.
    clicks.add([
        click("ad1", "2024-01-01T10:30:00Z"),
        click("ad2", "2024-01-01T10:10:00Z"),
        click("ad3", "2024-01-01T12:00:00Z"),
    ]);
    let out = CampaignClicksFirst::batch()
        .impressions(Source::memory(&impressions))
        .ads(Source::memory(&ads))
        .clicks(Source::memory(&clicks))
        .run()
        .unwrap();
    let got: Vec<(Option<String>, Option<String>, Option<Timestamp>)> =
        out.into_iter().map(|r| (r.impressionAdId, r.campaign, r.clickTime)).collect();
    assert_eq!(got, [(Some("ad1".to_string()), Some("c1".to_string()), at("2024-01-01T10:30:00Z"))]);
}

/// A two-input golden case, stopped before step `$at` and restarted from its checkpoint:
/// every batch after the restart is still Spark's (each operator's state, the watermarks and
/// the offsets restored). The step after the restart must bring rows to every input: after a
/// restart each input's watermark starts unknown, counted as 0 until the input has rows
/// again (Spark's `WatermarkTracker`), so the query's watermark cannot move before then —
/// there the uninterrupted run Spark recorded would differ.
macro_rules! golden_join_restarting {
    ($case:literal, $query:ident, $at:expr) => {{
        let (i, c, ck) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let table = MemoryTable::new();
        let start = || {
            $query::builder()
                .impressions(Source::file(i.path()).json())
                .clicks(Source::file(c.path()).json())
                .checkpoint(ck.path())
                .trigger(Trigger::processing_time("200 milliseconds"))
                .sink(Sink::memory(&table))
                .shuffle_partitions(2)
                .start()
                .unwrap()
        };
        flowgate_codegen_tests::run_case_sources_restarting(
            $case,
            &[("impressions", i.path()), ("clicks", c.path())],
            &start,
            &table,
            InputRows::SparkPushesFiltersDown,
            $at,
        );
    }};
}

#[test]
fn a_join_then_dedup_restarts_from_its_checkpoint() {
    golden_join_restarting!("stream_stream_inner_join_then_dedup", ClickedImpressionsOnce, 2);
}

#[test]
fn a_window_count_then_join_restarts_from_its_checkpoint() {
    golden_join_restarting!("window_count_then_stream_join", HourlyClicks, 2);
}

#[test]
fn a_join_then_window_count_restarts_from_its_checkpoint() {
    golden_join_restarting!("stream_stream_inner_join_then_window_count", HourlyAdClicks, 2);
}

#[derive(Record)]
struct AdAt {
    adId: Option<String>,
    time: Option<Timestamp>,
}

stream_query! {
    /// A join's matches selected as (adId, time), unioned with a stream of such rows (a union
    /// after a stream-stream join: the other stream's records have the selected columns).
    query MatchesAndDirect(impressions: Impression, clicks: Click, direct: AdAt) -> AdAt, mode = append {
        impressions
            .with_watermark(impressionTime, "2 hours")
            .join(
                clicks.with_watermark(clickTime, "3 hours"),
                impressionAdId = clicks.clickAdId,
                on = clicks.clickTime >= impressionTime && clicks.clickTime <= impressionTime + "1 hour",
            )
            .select(adId = impressionAdId, time = clicks.clickTime)
            .union(direct.with_watermark(time, "1 hour"))
    }
}

#[test]
fn stream_stream_inner_join_then_union() {
    let (i, c, d) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let table = MemoryTable::new();
    let query = MatchesAndDirect::builder()
        .impressions(Source::file(i.path()).json())
        .clicks(Source::file(c.path()).json())
        .direct(Source::file(d.path()).json())
        .trigger(Trigger::processing_time("200 milliseconds"))
        .sink(Sink::memory(&table))
        .shuffle_partitions(2)
        .start()
        .unwrap();
    flowgate_codegen_tests::run_case_sources(
        "stream_stream_inner_join_then_union",
        &[("impressions", i.path()), ("clicks", c.path()), ("direct", d.path())],
        &query,
        &table,
        InputRows::SparkPushesFiltersDown,
    );
    query.stop().unwrap();
}

#[derive(Record)]
struct AdClickTotal {
    adId: Option<String>,
    clicks: i64,
    latest: Option<Timestamp>,
}

/// `ad_clicks`: per ad, the matches so far and the latest click time of the batch.
fn ad_clicks(ad: &Option<String>, rows: GroupRows<'_, AdAt>, state: &mut GroupState<i64>) -> Vec<AdClickTotal> {
    let mut clicks = state.get_option().copied().unwrap_or(0);
    let mut latest: Option<Timestamp> = None;
    for r in rows {
        clicks += 1;
        latest = match (latest, r.time) {
            (Some(a), Some(t)) => Some(if t.0 > a.0 { t } else { a }),
            (a, t) => a.or(t),
        };
    }
    state.update(clicks);
    vec![AdClickTotal { adId: ad.clone(), clicks, latest }]
}

stream_query! {
    /// Group state over a join's matches: selected, made records, grouped by ad.
    query AdClickTotalsQuery(impressions: Impression, clicks: Click) -> AdClickTotal, mode = update {
        impressions
            .with_watermark(impressionTime, "2 hours")
            .join(
                clicks.with_watermark(clickTime, "3 hours"),
                impressionAdId = clicks.clickAdId,
                on = clicks.clickTime >= impressionTime && clicks.clickTime <= impressionTime + "1 hour",
            )
            .select(adId = impressionAdId, time = clicks.clickTime)
            .map_rows(|r: &AdAt| AdAt { adId: r.adId.clone(), time: r.time })
            .group_by(adId)
            .flat_map_groups_with_state(ad_clicks)
    }
}

#[test]
fn stream_stream_inner_join_then_group_state() {
    golden_join!("stream_stream_inner_join_then_group_state", AdClickTotalsQuery, InputRows::SparkPushesFiltersDown);
}

/// Restarted after step 2: the join's state and the function's both come back.
#[test]
fn a_join_then_group_state_restarts_from_its_checkpoint() {
    golden_join_restarting!("stream_stream_inner_join_then_group_state", AdClickTotalsQuery, 2);
}

#[derive(Record)]
struct MaxBid {
    mAuction: Option<i64>,
    mPrice: Option<i64>,
    mTime: Option<Timestamp>,
}

#[derive(Record)]
struct PricedBid {
    auction: Option<i64>,
    price: Option<i64>,
    bidTime: Option<Timestamp>,
}

stream_query! {
    /// Nexmark q7's shape: the highest price of each closed minute, joined back with the bids
    /// of that minute at that price. The aggregation's window is a join key, so both sides
    /// leave the state when it closes (Spark: `window = bw`, the bids' window projected).
    query HighestBids(maxes: MaxBid, bids: PricedBid) -> PricedBid, mode = append {
        maxes
            .with_watermark(mTime, "10 seconds")
            .group_by(window(mTime, "1 minute"))
            .agg(max(mPrice) as maxprice)
            .join(
                bids.with_watermark(bidTime, "10 seconds"),
                window = window(bids.bidTime, "1 minute"),
                maxprice = bids.price,
            )
            .select(auction = bids.auction, price = bids.price, bidTime = bids.bidTime)
    }
}

/// The bids a join after a `max` aggregation buffers are the ones at or above their window's
/// running maximum (the pruning rule): the join's state rows are at most Spark's batch by batch,
/// every row emitted is Spark's, and the bids the rule left out are counted in progress.
#[test]
fn window_max_then_stream_join_on_window() {
    let (m, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let table = MemoryTable::new();
    let start = || {
        HighestBids::builder()
            .maxes(Source::file(m.path()).json())
            .bids(Source::file(b.path()).json())
            .trigger(Trigger::processing_time("200 milliseconds"))
            .sink(Sink::memory(&table))
            .shuffle_partitions(2)
            .start()
            .unwrap()
    };
    let last = flowgate_codegen_tests::run_case_sources_pruned(
        "window_max_then_stream_join_on_window",
        &[("maxes", m.path()), ("bids", b.path())],
        &start,
        &table,
        InputRows::SparkPushesFiltersDown,
        0,
        None,
    );
    // Bid 1 (5 below 10:00's 9) and bid 7 (2 below 10:01's 7) are never buffered; bid 4 (3,
    // 10:01's maximum when it came) is dropped when bid 5 raises it to 7. The ties (2 and 3 at
    // 9, 10 at 7, 12 at 1) and the bids of windows with no maximum yet are buffered.
    assert_eq!(pruned_bids(&last), 3);
}

/// The join's `rightRowsPruned` in a batch's progress.
fn pruned_bids(p: &flowgate::engine::QueryProgress) -> u64 {
    let join = p.state_operators.iter().find(|o| o.operator_name == "symmetricHashJoin").expect("the join");
    join.custom_metrics.iter().find(|(k, _)| k == "rightRowsPruned").map(|(_, v)| *v).expect("rightRowsPruned")
}

/// The same case stopped in the middle of the 10:01 window (its bid at 3 buffered, the running
/// maximum 3) and restarted from the checkpoint: the restored aggregation's running maximum
/// (7 after the next batch) still prunes the restored bid, and the rows emitted are Spark's.
#[test]
fn window_max_then_stream_join_restarts_in_the_middle_of_a_window() {
    let (m, b, cp) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let table = MemoryTable::new();
    let start = || {
        HighestBids::builder()
            .maxes(Source::file(m.path()).json())
            .bids(Source::file(b.path()).json())
            .trigger(Trigger::processing_time("200 milliseconds"))
            .sink(Sink::memory(&table))
            .checkpoint(cp.path())
            .shuffle_partitions(2)
            .start()
            .unwrap()
    };
    let last = flowgate_codegen_tests::run_case_sources_pruned(
        "window_max_then_stream_join_on_window",
        &[("maxes", m.path()), ("bids", b.path())],
        &start,
        &table,
        InputRows::SparkPushesFiltersDown,
        0,
        Some(1),
    );
    // After the restart (the count starts again with the process): bid 7 never buffered, the
    // restored bid 4 dropped.
    assert_eq!(pruned_bids(&last), 2);
}

#[derive(Record)]
struct RandomBid {
    auction: Option<i64>,
    price: Option<i64>,
    t: Option<Timestamp>,
}

#[derive(Record)]
struct RandomBidOut {
    auction: Option<i64>,
    price: Option<i64>,
    t: Option<Timestamp>,
}

stream_query! {
    /// q7's shape over random bids: pruned (a join key is the aggregation's `max`).
    query PrunedMax(maxes: RandomBid, bids: RandomBid) -> RandomBidOut, mode = append {
        maxes
            .with_watermark(t, "2 seconds")
            .group_by(window(t, "10 seconds"))
            .agg(max(price) as best)
            .join(bids.with_watermark(t, "2 seconds"), window = window(bids.t, "10 seconds"), best = bids.price)
            .select(auction = bids.auction, price = bids.price, t = bids.t)
    }

    /// The same query with a projection between the aggregation and the join, which the
    /// pruning rule does not look through: every bid of an open window is buffered.
    query UnprunedMax(maxes: RandomBid, bids: RandomBid) -> RandomBidOut, mode = append {
        maxes
            .with_watermark(t, "2 seconds")
            .group_by(window(t, "10 seconds"))
            .agg(max(price) as best)
            .select(window, best)
            .join(bids.with_watermark(t, "2 seconds"), window = window(bids.t, "10 seconds"), best = bids.price)
            .select(auction = bids.auction, price = bids.price, t = bids.t)
    }

    /// The lowest price per auction and window, a grouping column besides the window among the
    /// keys, in a left outer join: pruned.
    query PrunedMin(maxes: RandomBid, bids: RandomBid) -> RandomBidOut, mode = append {
        maxes
            .with_watermark(t, "2 seconds")
            .group_by(window(t, "10 seconds"), auction)
            .agg(min(price) as low)
            .join(
                bids.with_watermark(t, "2 seconds"),
                window = window(bids.t, "10 seconds"),
                auction = bids.auction,
                low = bids.price,
                kind = left_outer,
            )
            .select(auction, price = bids.price, t = bids.t)
    }

    /// [`PrunedMin`] unpruned.
    query UnprunedMin(maxes: RandomBid, bids: RandomBid) -> RandomBidOut, mode = append {
        maxes
            .with_watermark(t, "2 seconds")
            .group_by(window(t, "10 seconds"), auction)
            .agg(min(price) as low)
            .select(window, auction, low)
            .join(
                bids.with_watermark(t, "2 seconds"),
                window = window(bids.t, "10 seconds"),
                auction = bids.auction,
                low = bids.price,
                kind = left_outer,
            )
            .select(auction, price = bids.price, t = bids.t)
    }
}

/// Random bids in micro-batches: few prices (ties), some nulls, some late, two streams that
/// share most rows (as q7's) and differ in some; the watermark advanced as the engine does.
/// Runs `spec` over them and returns each batch's rows (sorted), the join's peak state rows
/// and the rows it pruned (`None`: the rule does not apply).
fn run_random_bids(spec: flowgate::engine::QuerySpec, seed: u64) -> (Vec<Vec<String>>, u64, Option<u64>) {
    use flowgate::engine::{BatchContext, PlanConfig, PlanExt};
    use flowgate::RecordBuilder;
    let mut x = seed;
    let mut next = move |n: u64| {
        x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (x >> 33) % n
    };
    let mut plan = (spec.make_plan)(&PlanConfig::with_partitions(2));
    let (mut wm_last, mut wm_next) = (0i64, 0i64);
    let (mut out, mut peak, mut pruned) = (Vec::new(), 0u64, None);
    let mut now = 0i64;
    let batches = 40;
    for id in 0..=batches {
        let (mut maxes, mut bids) = (RandomBid::builder(0), RandomBid::builder(0));
        if id < batches {
            for _ in 0..(next(30) + 1) {
                now += next(600_000) as i64;
                // One row in eight is up to 15 s back (late once its window closed).
                let t = if next(8) == 0 { now - next(15_000_000) as i64 } else { now };
                let auction = Some(next(3) as i64);
                let price = (next(10) != 0).then(|| next(6) as i64);
                let t = (next(40) != 0).then_some(Timestamp(t.max(0)));
                let r = RandomBid { auction, price, t };
                let other = RandomBid { auction: r.auction, price: r.price, t: r.t };
                match next(6) {
                    0 => maxes.push(r),
                    1 => bids.push(r),
                    _ => {
                        maxes.push(r);
                        bids.push(other);
                    }
                }
            }
        }
        let ctx = BatchContext {
            watermark_for_late: Some(wm_last),
            watermark_for_eviction: Some(if id == batches { i64::MAX / 4 } else { wm_next }),
            ..BatchContext::new(id as u64, OutputMode::Append)
        };
        let input = vec![vec![maxes.finish().unwrap()], vec![bids.finish().unwrap()]];
        let batches_out = plan.run_batch(&ctx, &input).expect("run");
        let mut rows: Vec<String> =
            batches_out.iter().flat_map(flowgate_codegen_tests::rows_as_json).map(|v| v.to_string()).collect();
        rows.sort();
        out.push(rows);
        for m in plan.state_operators() {
            if m.operator_name == "symmetricHashJoin" {
                peak = peak.max(m.num_rows_total);
                pruned = m.custom_metrics.iter().find(|(k, _)| k == "rightRowsPruned").map(|(_, v)| *v);
            }
        }
        let next_wm = plan.watermarks().candidate().map_or(wm_next, |c| c.max(wm_next));
        (wm_last, wm_next) = (wm_next, next_wm);
    }
    (out, peak, pruned)
}

/// The pruning rule changes what the join buffers, never what it emits: over random bids
/// (ties, nulls, late rows, rows in one stream only), a `max` and a `min` (per window and
/// auction, left outer) give batch for batch the rows of the same queries with the rule
/// defeated by a projection, from a smaller state.
#[test]
fn pruning_by_the_running_max_changes_the_state_not_the_rows() {
    for seed in 1..=12u64 {
        let (pruned, pruned_peak, left_out) = run_random_bids(PrunedMax::spec(), seed);
        let (full, full_peak, none) = run_random_bids(UnprunedMax::spec(), seed);
        assert!(full.iter().map(Vec::len).sum::<usize>() > 0, "seed {seed}: the join emits rows");
        assert_eq!(pruned, full, "seed {seed}: max");
        assert!(pruned_peak < full_peak, "seed {seed}: max: state {pruned_peak} rows, unpruned {full_peak}");
        assert!(left_out.is_some_and(|n| n > 0) && none.is_none(), "seed {seed}: max: pruned {left_out:?}, {none:?}");
        let (pruned, pruned_peak, left_out) = run_random_bids(PrunedMin::spec(), seed);
        let (full, full_peak, none) = run_random_bids(UnprunedMin::spec(), seed);
        assert!(full.iter().map(Vec::len).sum::<usize>() > 0, "seed {seed}: the join emits rows");
        assert_eq!(pruned, full, "seed {seed}: min");
        assert!(pruned_peak <= full_peak, "seed {seed}: min: state {pruned_peak} rows, unpruned {full_peak}");
        assert!(left_out.is_some_and(|n| n > 0) && none.is_none(), "seed {seed}: min: pruned {left_out:?}, {none:?}");
    }
}
