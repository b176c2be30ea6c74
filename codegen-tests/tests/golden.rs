//! The Spark golden cases (`oracle/cases/*`), each written as a flowgate query: inputs and
//! Spark's per-batch output come from the case files; nothing is copied into this file.

use flowgate::prelude::*;
use flowgate_codegen_tests::{run_case, run_case_within_ulps, InputRows};

#[derive(Record)]
struct Line {
    value: Option<String>,
}

#[derive(Record)]
struct WordCount {
    word: String,
    count: i64,
}

stream_query! {
    /// `explode(split(value, ' ')) AS word`, `groupBy(word).count()`, complete mode.
    query WordCountComplete(lines: Line) -> WordCount, mode = complete {
        lines
            .flat_map(word = split(value, " "))
            .group_by(word)
            .agg(count() as count)
    }

    /// The same query in update mode.
    query WordCountUpdate(lines: Line) -> WordCount, mode = update {
        lines
            .flat_map(word = split(value, " "))
            .group_by(word)
            .agg(count() as count)
    }
}

/// Starts `builder` over a fresh staging directory with a memory sink, as the oracle harness
/// started Spark (file source, two shuffle partitions), and replays `case`.
macro_rules! golden {
    ($case:literal, $query:ident, $input:ident) => {
        golden!($case, $query, $input, InputRows::Check)
    };
    ($case:literal, $query:ident, $input:ident, $rows:expr) => {
        golden!($case, $query, $input, $rows, true)
    };
    ($case:literal, $query:ident, $input:ident, $rows:expr, $no_data_batches:expr) => {{
        let staging = tempfile::tempdir().unwrap();
        let table = MemoryTable::new();
        let query = $query::builder()
            .$input(Source::file(staging.path()).json())
            .sink(Sink::memory(&table))
            .shuffle_partitions(2)
            .no_data_batches($no_data_batches)
            .start()
            .unwrap();
        run_case($case, staging.path(), &query, &table, $rows);
        query.stop().unwrap();
    }};
}

#[test]
fn wordcount_complete() {
    golden!("wordcount_complete", WordCountComplete, lines);
}

#[test]
fn wordcount_update() {
    golden!("wordcount_update", WordCountUpdate, lines);
}

#[derive(Record)]
struct Event {
    id: Option<i32>,
    ts: Option<Timestamp>,
    price: Option<f64>,
    qty: Option<i32>,
    category: Option<String>,
}

#[derive(Record)]
struct Priced {
    id: Option<i32>,
    amount: Option<f64>,
    qty_mod3: Option<i32>,
    half_qty: Option<f64>,
    category: Option<String>,
    ts_plus_90m: Option<Timestamp>,
    band: String,
}

stream_query! {
    /// `where qty > 0 AND category IS NOT NULL`, then arithmetic, `upper`, interval addition and
    /// a CASE, with SQL null propagation written as Rust `Option`s.
    query PricedEvents(events: Event) -> Priced, mode = append {
        events
            .filter(qty.is_some_and(|q| q > 0) && category.is_some())
            .select(
                id,
                amount = price.zip(qty).map(|(p, q)| p * f64::from(q)),
                qty_mod3 = qty.map(|q| q % 3),
                half_qty = qty.map(|q| f64::from(q) / 2.0),
                category = upper(category),
                ts_plus_90m = ts.map(|t| t + Duration::from_secs(90 * 60)),
                band = if price.is_some_and(|p| p >= 10.0) { "high" } else { "low" },
            )
    }
}

#[test]
fn filter_projection_append() {
    golden!("filter_projection_append", PricedEvents, events, InputRows::SparkPushesFiltersDown);
}

#[derive(Record)]
struct WordEvent {
    ts: Option<Timestamp>,
    word: Option<String>,
}

#[derive(Record)]
struct WindowWordCount {
    window: Window,
    word: Option<String>,
    count: i64,
}

stream_query! {
    /// 10-minute tumbling windows, watermark 10 minutes, append mode.
    query TumblingAppend(events: WordEvent) -> WindowWordCount, mode = append {
        events
            .with_watermark(ts, "10 minutes")
            .group_by(window(ts, "10 minutes"), word)
            .agg(count() as count)
    }

    query TumblingUpdate(events: WordEvent) -> WindowWordCount, mode = update {
        events
            .with_watermark(ts, "10 minutes")
            .group_by(window(ts, "10 minutes"), word)
            .agg(count() as count)
    }

    query TumblingComplete(events: WordEvent) -> WindowWordCount, mode = complete {
        events
            .with_watermark(ts, "10 minutes")
            .group_by(window(ts, "10 minutes"), word)
            .agg(count() as count)
    }
}

#[test]
fn window_tumbling_append() {
    golden!("window_tumbling_append", TumblingAppend, events);
}

/// Our own case (Spark run by the oracle harness): with no-data batches off, closed windows
/// come out with the next data batch, and a row behind the new watermark whose window is still
/// in state is counted.
#[test]
fn window_tumbling_append_no_nodata_batches() {
    golden!("window_tumbling_append_no_nodata_batches", TumblingAppend, events, InputRows::Check, false);
}

/// Our own case: rows with a null event time fall in no window and do not move the watermark.
#[test]
fn window_null_event_time() {
    golden!("window_null_event_time", TumblingUpdate, events);
}

#[test]
fn window_tumbling_update() {
    golden!("window_tumbling_update", TumblingUpdate, events);
}

#[test]
fn window_tumbling_complete() {
    golden!("window_tumbling_complete", TumblingComplete, events);
}

#[derive(Record)]
struct KeyEvent {
    ts: Option<Timestamp>,
    key: Option<String>,
}

#[derive(Record)]
struct WindowKeyCount {
    window: Window,
    key: Option<String>,
    count: i64,
}

stream_query! {
    /// 10-minute windows sliding every 5 minutes.
    query SlidingAppend(events: KeyEvent) -> WindowKeyCount, mode = append {
        events
            .with_watermark(ts, "10 minutes")
            .group_by(window(ts, "10 minutes", "5 minutes"), key)
            .agg(count() as count)
    }

    query SlidingUpdate(events: KeyEvent) -> WindowKeyCount, mode = update {
        events
            .with_watermark(ts, "10 minutes")
            .group_by(window(ts, "10 minutes", "5 minutes"), key)
            .agg(count() as count)
    }
}

#[test]
fn window_sliding_append() {
    golden!("window_sliding_append", SlidingAppend, events);
}

#[test]
fn window_sliding_update() {
    golden!("window_sliding_update", SlidingUpdate, events);
}

#[derive(Record)]
struct GuideWord {
    timestamp: Option<Timestamp>,
    word: Option<String>,
}

stream_query! {
    /// The programming guide's late-data example.
    query GuideLateData(words: GuideWord) -> WindowWordCount, mode = update {
        words
            .with_watermark(timestamp, "10 minutes")
            .group_by(window(timestamp, "10 minutes", "5 minutes"), word)
            .agg(count() as count)
    }
}

#[test]
fn guide_late_data_update() {
    golden!("guide_late_data_update", GuideLateData, words);
}

#[derive(Record)]
struct SensorReading {
    ts: Option<Timestamp>,
    sensor: Option<String>,
    v: Option<i32>,
}

#[derive(Record)]
struct SensorStats {
    window: Window,
    sensor: Option<String>,
    n: i64,
    n_v: i64,
    sum_v: Option<i64>,
    avg_v: Option<f64>,
    min_v: Option<i32>,
    max_v: Option<i32>,
}

stream_query! {
    /// Every aggregate over nullable integers, per window and sensor.
    query MultiAgg(readings: SensorReading) -> SensorStats, mode = update {
        readings
            .with_watermark(ts, "5 minutes")
            .group_by(window(ts, "10 minutes"), sensor)
            .agg(
                count() as n,
                count(v) as n_v,
                sum(v) as sum_v,
                avg(v) as avg_v,
                min(v) as min_v,
                max(v) as max_v,
            )
    }
}

#[test]
fn window_multi_agg_update() {
    golden!("window_multi_agg_update", MultiAgg, readings);
}

#[derive(Record)]
struct Click {
    ts: Option<Timestamp>,
    user: Option<String>,
}

#[derive(Record)]
struct UserSession {
    session_window: Window,
    user: Option<String>,
    n: i64,
    first_ts: Option<Timestamp>,
    last_ts: Option<Timestamp>,
}

stream_query! {
    /// Sessions with a 5-minute gap per user, closed by a 10-minute watermark.
    query Sessions(clicks: Click) -> UserSession, mode = append {
        clicks
            .with_watermark(ts, "10 minutes")
            .group_by(session_window(ts, "5 minutes"), user)
            .agg(count() as n, min(ts) as first_ts, max(ts) as last_ts)
    }
}

#[test]
fn session_window_append() {
    golden!("session_window_append", Sessions, clicks);
}

stream_query! {
    /// The three biggest sessions so far, each trigger (complete mode, sorted and cut).
    query TopSessions(clicks: Click) -> UserSession, mode = complete {
        clicks
            .group_by(session_window(ts, "5 minutes"), user)
            .agg(count() as n, min(ts) as first_ts, max(ts) as last_ts)
            .order_by(desc(n), first_ts)
            .limit(3)
    }
}

#[derive(Record)]
struct HalfHourSessions {
    window: Window,
    total: i64,
    sessions: i64,
}

stream_query! {
    /// Chained aggregations over session windows (append mode): the closed sessions per 30
    /// minutes of their `window_time`.
    query SessionsPerHalfHour(clicks: Click) -> HalfHourSessions, mode = append {
        clicks
            .with_watermark(ts, "10 minutes")
            .group_by(session_window(ts, "5 minutes"), user)
            .agg(count() as n)
            .group_by(window(window_time(session_window), "30 minutes"))
            .agg(sum(n) as total, count() as sessions)
    }
}

#[test]
fn session_count_then_window_sum_append() {
    golden!("session_count_then_window_sum_append", SessionsPerHalfHour, clicks);
}

#[test]
fn session_window_top3_complete() {
    golden!("session_window_top3_complete", TopSessions, clicks);
}

#[derive(Record)]
struct Keyed {
    id: Option<String>,
    ts: Option<Timestamp>,
    payload: Option<String>,
}

stream_query! {
    /// `dropDuplicates(['id'])`: the first row per id, state kept forever (no watermark).
    query DedupById(events: Keyed) -> Keyed, mode = append {
        events.drop_duplicates(id)
    }

    /// `withWatermark('ts', '10 minutes').dropDuplicates(['id', 'ts'])`: late rows dropped,
    /// keys evicted once `ts` is behind the watermark.
    query DedupByIdAndTime(events: Keyed) -> Keyed, mode = append {
        events
            .with_watermark(ts, "10 minutes")
            .drop_duplicates(id, ts)
    }
}

#[test]
fn dedup_no_watermark() {
    golden!("dedup_no_watermark", DedupById, events);
}

#[test]
fn dedup_with_watermark() {
    golden!("dedup_with_watermark", DedupByIdAndTime, events);
}

#[derive(Record)]
struct WindowTotal {
    window: Window,
    count: i64,
}

stream_query! {
    /// `withWatermark('ts', '10 minutes').dropDuplicatesWithinWatermark(['id'])`.
    query DedupWithinWatermark(events: Keyed) -> Keyed, mode = append {
        events
            .with_watermark(ts, "10 minutes")
            .drop_duplicates_within_watermark(id)
    }

    /// Two stateful operators: `dropDuplicates(['id', 'ts'])` then a 10-minute window count.
    query DedupThenWindowCount(events: Keyed) -> WindowTotal, mode = append {
        events
            .with_watermark(ts, "10 minutes")
            .drop_duplicates(id, ts)
            .group_by(window(ts, "10 minutes"))
            .agg(count() as count)
    }
}

#[test]
fn dedup_within_watermark() {
    golden!("dedup_within_watermark", DedupWithinWatermark, events);
}

#[test]
fn dedup_then_window_count() {
    golden!("dedup_then_window_count", DedupThenWindowCount, events);
}

#[derive(Record)]
struct HalfHourTotal {
    window: Window,
    total: i64,
    groups: i64,
}

#[derive(Record)]
struct WordCountValue {
    word: Option<String>,
    n: i64,
}

stream_query! {
    /// Chained aggregations (append mode): a 10-minute count per word, then per 30 minutes of
    /// `window_time(window)` the sum of those counts and how many there were.
    query WindowCountThenSum(events: WordEvent) -> HalfHourTotal, mode = append {
        events
            .with_watermark(ts, "10 minutes")
            .group_by(window(ts, "10 minutes"), word)
            .agg(count() as n)
            .group_by(window(window_time(window), "30 minutes"))
            .agg(sum(n) as total, count() as groups)
    }

    /// A running count per word, then each count value once (`dropDuplicates(['n'])` after an
    /// update-mode aggregation, which Spark accepts: the dedup has no event time).
    query CountThenDedup(events: WordEvent) -> WordCountValue, mode = update {
        events
            .group_by(word)
            .agg(count() as n)
            .drop_duplicates(n)
    }

    /// Each word's first finished 10-minute window only.
    query WindowCountThenDedup(events: WordEvent) -> WindowWordCount, mode = append {
        events
            .with_watermark(ts, "10 minutes")
            .group_by(window(ts, "10 minutes"), word)
            .agg(count() as count)
            .drop_duplicates(word)
    }

    /// One row per (finished window, count): the window is the dedup's event time, so its
    /// keys leave state once the watermark passes the window's end.
    query WindowCountThenDedupWindow(events: WordEvent) -> WindowWordCount, mode = append {
        events
            .with_watermark(ts, "10 minutes")
            .group_by(window(ts, "10 minutes"), word)
            .agg(count() as count)
            .drop_duplicates(window, count)
    }

    /// Each count value once per 10 minutes of window start (`dropDuplicatesWithinWatermark`
    /// after a window aggregation in append mode: Spark takes the window's start as the
    /// event time a key expires by).
    query WindowCountThenDedupWithin(events: WordEvent) -> WindowWordCount, mode = append {
        events
            .with_watermark(ts, "10 minutes")
            .group_by(window(ts, "10 minutes"), word)
            .agg(count() as count)
            .drop_duplicates_within_watermark(count)
    }

    /// The first four rows the window count emits, nothing after (Spark's streaming limit
    /// over an aggregation in append mode).
    query WindowCountLimit(events: WordEvent) -> WindowWordCount, mode = append {
        events
            .with_watermark(ts, "10 minutes")
            .group_by(window(ts, "10 minutes"), word)
            .agg(count() as count)
            .limit(4)
    }
}

#[test]
fn window_count_then_window_time_sum() {
    golden!("window_count_then_window_time_sum", WindowCountThenSum, events);
}

#[test]
fn count_then_dedup_update() {
    golden!("count_then_dedup_update", CountThenDedup, events);
}

#[test]
fn window_count_then_dedup_append() {
    golden!("window_count_then_dedup_append", WindowCountThenDedup, events);
}

#[test]
fn window_count_then_dedup_window_append() {
    golden!("window_count_then_dedup_window_append", WindowCountThenDedupWindow, events);
}

#[test]
fn window_count_then_dedup_within_watermark_append() {
    golden!("window_count_then_dedup_within_watermark_append", WindowCountThenDedupWithin, events);
}

#[test]
fn window_count_limit_append() {
    golden!("window_count_limit_append", WindowCountLimit, events);
}

#[derive(Record)]
struct Order {
    order_id: Option<i32>,
    ts: Option<Timestamp>,
    product_id: Option<String>,
    qty: Option<i32>,
}

#[derive(Record)]
struct Product {
    product_id: Option<String>,
    name: Option<String>,
    price: Option<f64>,
}

#[derive(Record)]
struct OrderLine {
    order_id: Option<i32>,
    product_id: Option<String>,
    name: Option<String>,
    qty: Option<i32>,
    amount: Option<f64>,
}

stream_query! {
    /// `orders.join(products, 'product_id')` with a static JSON table, then a projection.
    query OrderLines(orders: Order, products: static Product) -> OrderLine, mode = append {
        orders
            .join(products, product_id)
            .select(
                order_id,
                product_id,
                name = products.name,
                qty,
                amount = qty.zip(products.price).map(|(q, p)| f64::from(q) * p),
            )
    }

    /// The same as a left outer join: orders without a product keep null product columns.
    query OrderLinesOuter(orders: Order, products: static Product) -> OrderLine, mode = append {
        orders
            .join(products, product_id, kind = left_outer)
            .select(
                order_id,
                product_id,
                name = products.name,
                qty,
                amount = qty.zip(products.price).map(|(q, p)| f64::from(q) * p),
            )
    }
}

/// A stream-static golden case: the stream through the staging directory as usual, the static
/// table from the case's `static/` directory.
macro_rules! golden_static {
    ($case:literal, $query:ident, $stream:ident, $static_input:ident, $rows:expr) => {{
        let staging = tempfile::tempdir().unwrap();
        let table = MemoryTable::new();
        let statics = flowgate_codegen_tests::cases_dir().join($case).join("static");
        let query = $query::builder()
            .$stream(Source::file(staging.path()).json())
            .$static_input(Source::file(&statics).json())
            .sink(Sink::memory(&table))
            .shuffle_partitions(2)
            .start()
            .unwrap();
        run_case($case, staging.path(), &query, &table, $rows);
        query.stop().unwrap();
    }};
}

#[test]
fn stream_static_inner_join() {
    // Spark infers `product_id IS NOT NULL` from the inner join and pushes it into the scan.
    golden_static!("stream_static_inner_join", OrderLines, orders, products, InputRows::SparkPushesFiltersDown);
}

#[test]
fn stream_static_left_outer_join() {
    golden_static!("stream_static_left_outer_join", OrderLinesOuter, orders, products, InputRows::Check);
}

stream_query! {
    /// `orders.join(products, 'product_id', 'left_semi')`: the orders that have a product.
    query OrdersWithProduct(orders: Order, products: static Product) -> Order, mode = append {
        orders.join(products, product_id, kind = left_semi)
    }

    /// `orders.join(products, 'product_id', 'left_anti')`: the orders without one.
    query OrdersWithoutProduct(orders: Order, products: static Product) -> Order, mode = append {
        orders.join(products, product_id, kind = left_anti)
    }
}

#[test]
fn stream_static_left_semi_join() {
    golden_static!(
        "stream_static_left_semi_join",
        OrdersWithProduct,
        orders,
        products,
        InputRows::SparkPushesFiltersDown
    );
}

#[test]
fn stream_static_left_anti_join() {
    golden_static!("stream_static_left_anti_join", OrdersWithoutProduct, orders, products, InputRows::Check);
}

#[derive(Record)]
struct Word {
    ts: Option<Timestamp>,
    word: Option<String>,
}

stream_query! {
    /// `a.withWatermark(ts, 10 min).union(b.withWatermark(ts, 5 min))`, counted per window.
    query UnionCounts(a: Word, b: Word) -> WindowTotal, mode = append {
        a
            .with_watermark(ts, "10 minutes")
            .union(b.with_watermark(ts, "5 minutes"))
            .group_by(window(ts, "10 minutes"))
            .agg(count() as count)
    }
}

fn union_case(case: &str, policy: WatermarkPolicy) {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let table = MemoryTable::new();
    let query = UnionCounts::builder()
        .a(Source::file(a.path()).json())
        .b(Source::file(b.path()).json())
        .watermark_policy(policy)
        // Two files per step, renamed one after the other: see `stream_join.rs`.
        .trigger(Trigger::processing_time("200 milliseconds"))
        .sink(Sink::memory(&table))
        .shuffle_partitions(2)
        .start()
        .unwrap();
    flowgate_codegen_tests::run_case_sources(
        case,
        &[("a", a.path()), ("b", b.path())],
        &query,
        &table,
        InputRows::Check,
    );
    query.stop().unwrap();
}

#[test]
fn union_two_watermarks_min() {
    union_case("union_two_watermarks_min", WatermarkPolicy::Min);
}

#[test]
fn union_two_watermarks_max() {
    union_case("union_two_watermarks_max", WatermarkPolicy::Max);
}

stream_query! {
    /// The word count's top 3 per trigger: `orderBy(count DESC, word ASC).limit(3)` in complete
    /// mode.
    query TopWords(lines: Line) -> WordCount, mode = complete {
        lines
            .flat_map(word = split(value, " "))
            .group_by(word)
            .agg(count() as count)
            .order_by(desc(count), word)
            .limit(3)
    }
}

#[test]
fn wordcount_top3_complete() {
    golden!("wordcount_top3_complete", TopWords, lines);
}

#[derive(Record)]
struct AggReading {
    ts: Option<Timestamp>,
    sensor: Option<String>,
    v: Option<i32>,
    word: Option<String>,
}

#[derive(Record)]
struct FirstLastCollect {
    window: Window,
    sensor: Option<String>,
    first_v: Option<i32>,
    first_nn: Option<i32>,
    last_v: Option<i32>,
    last_nn: Option<i32>,
    vs: Vec<i32>,
    words: Vec<String>,
}

stream_query! {
    /// `first`/`last` with and without ignoring nulls, `collect_list`, and `collect_set`
    /// sorted (Spark's `array_sort(collect_set(word))`: Spark leaves the set's order open).
    query FirstLastCollectUpdate(readings: AggReading) -> FirstLastCollect, mode = update {
        readings
            .with_watermark(ts, "5 minutes")
            .group_by(window(ts, "10 minutes"), sensor)
            .agg(
                first(v) as first_v,
                first(v, true) as first_nn,
                last(v) as last_v,
                last(v, true) as last_nn,
                collect_list(v) as vs,
                collect_set(word) as words,
            )
            .with_column(words = {
                let mut sorted = words.clone();
                sorted.sort();
                sorted
            })
    }
}

#[test]
fn agg_first_last_collect_update() {
    golden!("agg_first_last_collect_update", FirstLastCollectUpdate, readings);
}

#[derive(Record)]
struct StatReading {
    sensor: Option<String>,
    v: Option<i32>,
    x: Option<f64>,
    word: Option<String>,
}

#[derive(Record)]
struct SensorSpread {
    sensor: Option<String>,
    sd: Option<f64>,
    sd_pop: Option<f64>,
    var: Option<f64>,
    var_pop: Option<f64>,
    sd_x: Option<f64>,
    words: i64,
    values: i64,
    n: i64,
}

stream_query! {
    /// The central-moment statistics and HyperLogLog++ distinct counts per sensor.
    query StatsUpdate(readings: StatReading) -> SensorSpread, mode = update {
        readings
            .group_by(sensor)
            .agg(
                stddev(v) as sd,
                stddev_pop(v) as sd_pop,
                variance(v) as var,
                var_pop(v) as var_pop,
                stddev(x) as sd_x,
                approx_count_distinct(word) as words,
                approx_count_distinct(v) as values,
                count() as n,
            )
    }
}

/// The distinct counts and row counts are compared exactly, the statistics to within 2 ulps:
/// flowgate combines each batch's moments with the state in Spark's order (the batch's buffer
/// through two partial merges, then the stored one; `flowgate::agg::moments`), which gives
/// Spark's doubles in most groups here, but Spark's generated code still rounds a few last
/// bits differently (a variance of 14.8 where the same formulas give 14.799999999999999).
#[test]
fn agg_stats_approx_update() {
    let staging = tempfile::tempdir().unwrap();
    let table = MemoryTable::new();
    let query = StatsUpdate::builder()
        .readings(Source::file(staging.path()).json())
        .sink(Sink::memory(&table))
        .shuffle_partitions(2)
        .start()
        .unwrap();
    run_case_within_ulps("agg_stats_approx_update", staging.path(), &query, &table, 2);
    query.stop().unwrap();
}

#[derive(Record)]
struct IdWord {
    id: Option<i32>,
    word: Option<String>,
}

stream_query! {
    /// Spark's streaming global limit: the first 4 odd ids of the stream, over batches.
    query FirstOddIds(events: IdWord) -> IdWord, mode = append {
        events
            .filter(id.is_some_and(|i| i % 2 == 1))
            .limit(4)
    }
}

#[test]
fn limit_append() {
    golden!("limit_append", FirstOddIds, events, InputRows::SparkPushesFiltersDown);
}

// ---- Arbitrary stateful processing: the cases Spark ran with applyInPandasWithState (the
// same GroupState semantics as flatMapGroupsWithState), each function written here in Rust as
// `oracle/harness/group_state_functions.py` writes it in Python.

#[derive(Record)]
struct Activity {
    user: Option<String>,
    ts: Option<Timestamp>,
    clicks: Option<i64>,
    action: Option<String>,
}

#[derive(Record)]
struct Totals {
    user: Option<String>,
    events: i64,
    clicks: i64,
    active: bool,
}

#[derive(StateCodec)]
struct RunningTotals {
    events: i64,
    clicks: i64,
}

/// `running_totals`: events and clicks per user; a logout removes the state.
fn running_totals(user: &Option<String>, rows: Vec<Activity>, state: &mut GroupState<RunningTotals>) -> Totals {
    let (mut events, mut clicks) = state.get_option().map_or((0, 0), |s| (s.events, s.clicks));
    let mut logout = false;
    for r in &rows {
        events += 1;
        clicks += r.clicks.unwrap_or(0);
        logout |= r.action.as_deref() == Some("logout");
    }
    if logout {
        state.remove();
    } else {
        state.update(RunningTotals { events, clicks });
    }
    Totals { user: user.clone(), events, clicks, active: !logout }
}

#[derive(Record)]
struct UserAlert {
    user: Option<String>,
    kind: String,
    clicks: i64,
    events: i64,
}

#[derive(StateCodec)]
struct AlertState {
    events: i64,
    clicks: i64,
    /// The user's last event time (ms).
    last: i64,
}

/// `session_alerts`: an alert per event with more than 2 clicks; the user's totals once the
/// watermark passes 5 s after their last event.
fn session_alerts(user: &Option<String>, rows: Vec<Activity>, state: &mut GroupState<AlertState>) -> Vec<UserAlert> {
    if state.has_timed_out() {
        let s = state.get();
        let expired = UserAlert { user: user.clone(), kind: "expired".into(), clicks: s.clicks, events: s.events };
        state.remove();
        return vec![expired];
    }
    let mut s = state.get_option().map_or(AlertState { events: 0, clicks: 0, last: 0 }, |s| AlertState { ..*s });
    let mut alerts = Vec::new();
    for r in &rows {
        let c = r.clicks.unwrap_or(0);
        s.events += 1;
        s.clicks += c;
        s.last = s.last.max(r.ts.map_or(0, |t| t.0.div_euclid(1000)));
        if c > 2 {
            alerts.push(UserAlert { user: user.clone(), kind: "alert".into(), clicks: c, events: 0 });
        }
    }
    let timeout = s.last + 5000;
    state.update(s);
    state.set_timeout_timestamp(timeout);
    alerts
}

stream_query! {
    /// `groupBy(user).applyInPandasWithState(running_totals, ..., "update", NoTimeout)`.
    query RunningTotalsQuery(events: Activity) -> Totals, mode = update {
        events.group_by(user).map_groups_with_state(running_totals)
    }

    /// `withWatermark(ts, 10 seconds).groupBy(user).applyInPandasWithState(session_alerts, ...,
    /// "append", EventTimeTimeout)`.
    query SessionAlerts(events: Activity) -> UserAlert, mode = append {
        events
            .with_watermark(ts, "10 seconds")
            .group_by(user)
            .flat_map_groups_with_state(session_alerts, timeout = event_time)
    }
}

#[derive(StateCodec)]
struct Milestones {
    events: i64,
    clicks: i64,
}

/// `click_milestones`: an alert per event with more than 2 clicks, and the user's totals when
/// a batch takes their event count past a multiple of 3.
fn click_milestones(
    user: &Option<String>,
    rows: GroupRows<'_, Activity>,
    state: &mut GroupState<Milestones>,
) -> Vec<UserAlert> {
    let (mut events, mut clicks) = state.get_option().map_or((0, 0), |s| (s.events, s.clicks));
    let before = events;
    let mut out = Vec::new();
    for r in rows {
        let c = r.clicks.unwrap_or(0);
        events += 1;
        clicks += c;
        if c > 2 {
            out.push(UserAlert { user: user.clone(), kind: "alert".into(), clicks: c, events: 0 });
        }
    }
    state.update(Milestones { events, clicks });
    if events / 3 > before / 3 {
        out.push(UserAlert { user: user.clone(), kind: "milestone".into(), clicks, events });
    }
    out
}

#[derive(Record)]
struct KindCount {
    kind: String,
    n: i64,
    clicks: i64,
}

stream_query! {
    /// `groupBy(user).applyInPandasWithState(click_milestones, ..., "append", NoTimeout)
    /// .where(clicks > 1).groupBy(kind).agg(count(*) AS n, sum(clicks) AS clicks)`, complete
    /// mode: an aggregation over the function's records.
    query MilestoneKinds(events: Activity) -> KindCount, mode = complete {
        events
            .group_by(user)
            .flat_map_groups_with_state(click_milestones, output_mode = append)
            .filter(clicks > 1)
            .group_by(kind)
            .agg(count() as n, sum(clicks) as clicks)
    }
}

#[test]
fn group_state_then_count() {
    golden!("group_state_then_count", MilestoneKinds, events);
}

#[derive(Record)]
struct LatestClicks {
    user: Option<String>,
    events: i64,
    at: Option<Timestamp>,
}

/// `latest_clicks`: per user and batch, the events so far and the time of the latest event
/// in the batch.
fn latest_clicks(user: &Option<String>, rows: GroupRows<'_, Activity>, state: &mut GroupState<i64>) -> LatestClicks {
    let mut events = state.get_option().copied().unwrap_or(0);
    let mut at: Option<Timestamp> = None;
    for r in rows {
        events += 1;
        at = match (at, r.ts) {
            (Some(a), Some(t)) => Some(if t.0 > a.0 { t } else { a }),
            (a, t) => a.or(t),
        };
    }
    state.update(events);
    LatestClicks { user: user.clone(), events, at }
}

#[derive(Record)]
struct ClicksWindow {
    window: Window,
    n: i64,
    events: i64,
}

stream_query! {
    /// `applyInPandasWithState(latest_clicks, ..., "append", NoTimeout)`, then
    /// `withWatermark(at, 0 seconds)` on its records and a 10-second window count, append mode.
    query LatestClicksPerWindow(events: Activity) -> ClicksWindow, mode = append {
        events
            .group_by(user)
            .flat_map_groups_with_state(latest_clicks_all, output_mode = append)
            .with_watermark(at, "0 seconds")
            .group_by(window(at, "10 seconds"))
            .agg(count() as n, sum(events) as events)
    }
}

fn latest_clicks_all(
    user: &Option<String>,
    rows: GroupRows<'_, Activity>,
    state: &mut GroupState<i64>,
) -> Option<LatestClicks> {
    Some(latest_clicks(user, rows, state))
}

#[test]
fn group_state_then_window_count() {
    golden!("group_state_then_window_count", LatestClicksPerWindow, events);
}

#[test]
fn group_state_update_remove() {
    golden!("group_state_update_remove", RunningTotalsQuery, events);
}

#[test]
fn group_state_event_time_timeout() {
    golden!("group_state_event_time_timeout", SessionAlerts, events);
}

#[derive(Record)]
struct IdleSession {
    user: Option<String>,
    events: i64,
    expired: bool,
}

/// `idle_sessions`: events per user; a session ends 60 s of processing time after its last
/// event (`IDLE_TIMEOUT_MS` in group_state_functions.py).
fn idle_sessions(user: &Option<String>, rows: Vec<Activity>, state: &mut GroupState<i64>) -> Vec<IdleSession> {
    if state.has_timed_out() {
        let events = *state.get();
        state.remove();
        return vec![IdleSession { user: user.clone(), events, expired: true }];
    }
    let events = state.get_option().copied().unwrap_or(0) + rows.len() as i64;
    state.update(events);
    state.set_timeout_duration(60_000);
    vec![IdleSession { user: user.clone(), events, expired: false }]
}

stream_query! {
    /// `groupBy(user).applyInPandasWithState(idle_sessions, ..., "update", ProcessingTimeTimeout)`.
    query IdleSessions(events: Activity) -> IdleSession, mode = update {
        events.group_by(user).flat_map_groups_with_state(idle_sessions, timeout = processing_time)
    }
}

/// Processing time from a manual clock moved as the harness paused Spark's wall clock (see
/// the case's description); no-data batches off, as the case ran Spark.
#[test]
fn group_state_processing_time_timeout() {
    let staging = tempfile::tempdir().unwrap();
    let table = MemoryTable::new();
    let clock = ManualClock::new(1_704_110_400_000);
    let query = IdleSessions::builder()
        .events(Source::file(staging.path()).json())
        .sink(Sink::memory(&table))
        .shuffle_partitions(2)
        .no_data_batches(false)
        .clock(clock.clone())
        .start()
        .unwrap();
    flowgate_codegen_tests::run_case_with_clock(
        "group_state_processing_time_timeout",
        staging.path(),
        &query,
        &table,
        InputRows::Check,
        &clock,
    );
    query.stop().unwrap();
}

#[derive(Record)]
struct ProductTotals {
    product_id: Option<String>,
    name: Option<String>,
    n: i64,
    qty: Option<i64>,
}

stream_query! {
    /// Orders and quantity per product as they change, each changed row joined with the
    /// static product names (a stream-static join after an aggregation, update mode).
    query ProductTotalsUpdate(orders: Order, products: static Product) -> ProductTotals, mode = update {
        orders
            .group_by(product_id)
            .agg(count() as n, sum(qty) as qty)
            .join(products, product_id, kind = left_outer)
            .select(product_id, name = products.name, n, qty)
    }

    /// The whole result each trigger, joined (complete mode, inner join).
    query ProductTotalsComplete(orders: Order, products: static Product) -> ProductTotals, mode = complete {
        orders
            .group_by(product_id)
            .agg(count() as n, sum(qty) as qty)
            .join(products, product_id)
            .select(product_id, name = products.name, n, qty)
    }
}

#[test]
fn count_then_static_left_outer_join_update() {
    golden_static!("count_then_static_left_outer_join_update", ProductTotalsUpdate, orders, products, InputRows::Check);
}

#[test]
fn count_then_static_join_complete() {
    // Spark infers `product_id IS NOT NULL` from the inner join on the grouping key and pushes it
    // through the aggregation into the scan.
    golden_static!(
        "count_then_static_join_complete",
        ProductTotalsComplete,
        orders,
        products,
        InputRows::SparkPushesFiltersDown
    );
}

stream_query! {
    /// Session windows over two unioned click streams: a session takes rows of both.
    query UnionSessions(clicks: Click, more: Click) -> UserSession, mode = append {
        clicks
            .with_watermark(ts, "10 minutes")
            .union(more.with_watermark(ts, "10 minutes"))
            .group_by(session_window(ts, "5 minutes"), user)
            .agg(count() as n, min(ts) as first_ts, max(ts) as last_ts)
    }
}

#[test]
fn union_then_session_window_append() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let table = MemoryTable::new();
    let query = UnionSessions::builder()
        .clicks(Source::file(a.path()).json())
        .more(Source::file(b.path()).json())
        // Two files per step, renamed one after the other: see `stream_join.rs`.
        .trigger(Trigger::processing_time("200 milliseconds"))
        .sink(Sink::memory(&table))
        .shuffle_partitions(2)
        .start()
        .unwrap();
    flowgate_codegen_tests::run_case_sources(
        "union_then_session_window_append",
        &[("clicks", a.path()), ("more", b.path())],
        &query,
        &table,
        InputRows::Check,
    );
    query.stop().unwrap();
}
