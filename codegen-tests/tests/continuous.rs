//! Continuous processing end to end: every eligible query shape (map-like, and the stateful
//! ones: update-mode aggregations, dedups, event-time windows with a watermark) gives the same
//! sink contents in continuous mode as in micro-batch mode over the same input, from the memory,
//! rate, file and socket sources; the stateful shapes also give Spark's golden rows, step by step
//! (`mod spark`); epochs commit in order, each with the rows its tasks had read when they passed
//! its marker (a manual epoch clock: no test depends on timing); a restart resumes after the last
//! committed epoch, a stateful one replays a logged epoch from the state before it. Append- and
//! complete-mode aggregations, session windows, the global limit, group state (with its
//! timeouts at the epoch's end) and stream-stream joins run continuously too.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use flowgate::engine::continuous::EpochTicker;
use flowgate::prelude::*;

#[derive(Record, Clone, Debug, PartialEq, PartialOrd)]
struct Sale {
    shop: String,
    units: i64,
}

#[derive(Record, Clone, Debug, PartialEq, PartialOrd)]
struct Line {
    value: String,
}

#[derive(Record, Clone, Debug, PartialEq, PartialOrd)]
struct Word {
    word: String,
    len: i64,
}

#[derive(Record, Clone, Debug, PartialEq, PartialOrd)]
struct Named {
    shop: String,
    double: i64,
}

#[derive(Record, Clone, Debug)]
struct Shop {
    name: String,
    city: String,
}

#[derive(Record, Clone, Debug, PartialEq, PartialOrd)]
struct Located {
    shop: String,
    city: String,
    units: i64,
}

#[derive(Record, Debug, PartialEq, PartialOrd)]
struct Total {
    shop: String,
    units: i64,
}

#[derive(Record, Clone, Debug)]
struct Tick {
    timestamp: Timestamp,
    value: i64,
}

#[derive(Record, Clone, Debug, PartialEq, PartialOrd)]
struct Even {
    value: i64,
    half: i64,
}

stream_query! {
    /// Filter and projection.
    query Projected(sales: Sale) -> Named, mode = append {
        sales.filter(units % 3 != 0).select(shop, double = units * 2)
    }

    /// Explode (the word count's first half) with a computed column.
    query Words(lines: Line) -> Word, mode = append {
        lines.flat_map(word = split(value, " ")).filter(word != "").select(word, len = word.len() as i64)
    }

    /// Two streams, the second filtered first.
    query Both(web: Sale, store: Sale) -> Sale, mode = append {
        web.union(store.filter(units > 0)).filter(units < 1000)
    }

    /// A stream-static join.
    query WithCity(sales: Sale, shops: static Shop) -> Located, mode = append {
        sales.join(shops, shop = shops.name).select(shop, city = shops.city, units)
    }

    /// The rate source's even values.
    query Evens(ticks: Tick) -> Even, mode = append {
        ticks.filter(value % 2 == 0).select(value, half = value / 2)
    }

    /// An aggregation in update mode: the stateful stage runs it per epoch.
    query Totals(sales: Sale) -> Total, mode = update {
        sales.group_by(shop).agg(sum(units) as units)
    }

    /// The first sale of each shop.
    query FirstSales(sales: Sale) -> Sale, mode = append {
        sales.filter(units != 0).drop_duplicates(shop)
    }

    /// Event-time windows in update mode: late readings dropped, windows evicted, per epoch.
    query PerWindow(readings: Reading) -> WindowTotal, mode = update {
        readings
            .with_watermark(at, "10 seconds")
            .group_by(window(at, "10 seconds"), sensor)
            .agg(count() as n, sum(value) as total)
    }

    /// Dedup within a watermark, then the rows' shape.
    query FirstReadings(readings: Reading) -> Reading, mode = append {
        readings.with_watermark(at, "5 seconds").drop_duplicates(sensor, at)
    }

    /// The rate source's values per residue mod 4.
    query Residues(ticks: Tick) -> Residue, mode = update {
        ticks.group_by(residue = value % 4).agg(count() as n)
    }

    /// An aggregation in complete mode: the whole result table once per epoch, at its end.
    query AllTotals(sales: Sale) -> Total, mode = complete {
        sales.group_by(shop).agg(sum(units) as units)
    }

    /// The three biggest shops so far, per epoch (complete mode, sorted and cut at its end).
    query TopShops(sales: Sale) -> Total, mode = complete {
        sales.group_by(shop).agg(sum(units) as units).order_by(desc(units), shop).limit(3)
    }

    /// Event-time windows in append mode: each emitted at the end of the epoch whose
    /// watermark passes it.
    query ClosedWindows(readings: Reading) -> WindowTotal, mode = append {
        readings
            .with_watermark(at, "10 seconds")
            .group_by(window(at, "10 seconds"), sensor)
            .agg(count() as n, sum(value) as total)
    }

    /// Session windows in append mode: each emitted at the end of the epoch whose watermark
    /// passes it.
    query Sessions(readings: Reading) -> SessionTotal, mode = append {
        readings
            .with_watermark(at, "10 seconds")
            .group_by(session_window(at, "3 seconds"), sensor)
            .agg(count() as n, sum(value) as total)
    }

    /// The stream's global limit: its first 7 sales with units.
    query FirstSeven(sales: Sale) -> Sale, mode = append {
        sales.filter(units > 0).limit(7)
    }

    /// Arbitrary stateful processing: a running count and total per shop.
    query RunningShops(sales: Sale) -> ShopRun, mode = update {
        sales.group_by(shop).map_groups_with_state(running_shop)
    }

    /// A processing-time timeout per shop: a shop idle for a minute is reported and forgotten.
    query IdleShops(sales: Sale) -> ShopIdle, mode = update {
        sales.group_by(shop).flat_map_groups_with_state(idle_shop, timeout = processing_time)
    }

    /// A stream-stream inner join without a watermark: every sale with every return of its
    /// shop, whichever arrived first.
    query SalesReturns(sales: Sale, returns: Return) -> SaleReturn, mode = append {
        sales.join(returns, shop = returns.rshop).select(shop, units, refunded = returns.refunded)
    }

    /// A stream-stream left outer join with watermarks and a time range: a reading with the
    /// alarms of its sensor within 20 s after it, or alone once the watermark proves none can come.
    query ReadingAlarms(readings: Reading, alarms: Alarm) -> ReadingAlarm, mode = append {
        readings
            .with_watermark(at, "10 seconds")
            .join(
                alarms.with_watermark(raised, "20 seconds"),
                sensor = alarms.asensor,
                kind = left_outer,
                on = alarms.raised >= at && alarms.raised <= at + "20 seconds",
            )
            .select(sensor, at, raised = alarms.raised)
    }
}

#[derive(Record, Clone, Debug, PartialEq, PartialOrd)]
struct Alarm {
    asensor: String,
    raised: Timestamp,
}

#[derive(Record, Debug, PartialEq, PartialOrd)]
struct ReadingAlarm {
    sensor: String,
    at: Timestamp,
    raised: Option<Timestamp>,
}

#[derive(Record, Debug, PartialEq, PartialOrd)]
struct SessionTotal {
    session_window: Window,
    sensor: String,
    n: i64,
    total: i64,
}

#[derive(Record, Clone, Debug, PartialEq, PartialOrd)]
struct Return {
    rshop: String,
    refunded: i64,
}

#[derive(Record, Debug, PartialEq, PartialOrd)]
struct SaleReturn {
    shop: String,
    units: i64,
    refunded: i64,
}

#[derive(Record, Debug, PartialEq, PartialOrd)]
struct ShopRun {
    shop: String,
    sales: i64,
    units: i64,
}

#[derive(StateCodec)]
struct RunState {
    sales: i64,
    units: i64,
}

/// Sales and units so far per shop.
// The key is the group's `String`: the function gets `&K`.
#[allow(clippy::ptr_arg)]
fn running_shop(shop: &String, rows: Vec<Sale>, state: &mut GroupState<RunState>) -> ShopRun {
    let (mut sales, mut units) = state.get_option().map_or((0, 0), |s| (s.sales, s.units));
    for r in &rows {
        sales += 1;
        units += r.units;
    }
    state.update(RunState { sales, units });
    ShopRun { shop: shop.clone(), sales, units }
}

#[derive(Record, Clone, Debug, PartialEq, PartialOrd)]
struct ShopIdle {
    shop: String,
    sales: i64,
    idle: bool,
}

/// Sales per shop; a shop without a sale for a minute of processing time is reported idle
/// and forgotten.
// The key is the group's `String`: the function gets `&K`.
#[allow(clippy::ptr_arg)]
fn idle_shop(shop: &String, rows: Vec<Sale>, state: &mut GroupState<i64>) -> Vec<ShopIdle> {
    if state.has_timed_out() {
        let sales = *state.get();
        state.remove();
        return vec![ShopIdle { shop: shop.clone(), sales, idle: true }];
    }
    let sales = state.get_option().copied().unwrap_or(0) + rows.len() as i64;
    state.update(sales);
    state.set_timeout_duration(60_000);
    vec![ShopIdle { shop: shop.clone(), sales, idle: false }]
}

#[derive(Record, Debug, PartialEq, PartialOrd)]
struct Residue {
    residue: i64,
    n: i64,
}

#[derive(Record, Clone, Debug, PartialEq, PartialOrd)]
struct Reading {
    sensor: String,
    at: Timestamp,
    value: i64,
}

#[derive(Record, Debug, PartialEq, PartialOrd)]
struct WindowTotal {
    window: Window,
    sensor: String,
    n: i64,
    total: i64,
}

fn sales(n: usize, seed: i64) -> Vec<Sale> {
    (0..n)
        .map(|i| Sale { shop: format!("s{}", (i as i64 * 7 + seed) % 5), units: (i as i64 * 13 + seed) % 2000 - 10 })
        .collect()
}

fn sorted<T: PartialOrd>(mut rows: Vec<T>) -> Vec<T> {
    rows.sort_by(|a, b| a.partial_cmp(b).unwrap());
    rows
}

/// Epochs of 5 ms in the comparison tests: many epochs, rows split across them at random.
fn fast() -> flowgate::engine::continuous::ContinuousTrigger {
    Trigger::continuous("5 milliseconds")
}

/// Feeds `batches` one by one (waiting for each), then returns the sink's rows, sorted.
fn feed<T: Record + PartialOrd, R: Record + Clone>(
    query: StreamingQuery,
    stream: &MemoryStream<R>,
    table: &MemoryTable,
    batches: &[Vec<R>],
) -> Vec<T> {
    for b in batches {
        stream.add(b.clone());
        query.process_all_available().unwrap();
    }
    query.stop().unwrap();
    assert!(query.exception().is_none(), "{:?}", query.exception());
    sorted(table.rows().unwrap())
}

#[test]
fn a_projection_gives_the_same_rows_in_both_modes() {
    let batches = vec![sales(100, 1), sales(7, 2), Vec::new(), sales(300, 3)];
    let run = |continuous: bool| {
        let (input, table) = (MemoryStream::<Sale>::new(), MemoryTable::new());
        let b = Projected::builder().sales(Source::memory(&input)).sink(Sink::memory(&table));
        let query = if continuous { b.trigger(fast()).start() } else { b.start() }.unwrap();
        feed::<Named, _>(query, &input, &table, &batches)
    };
    let micro = run(false);
    let expected: Vec<Named> = sorted(
        batches
            .iter()
            .flatten()
            .filter(|s| s.units % 3 != 0)
            .map(|s| Named { shop: s.shop.clone(), double: s.units * 2 })
            .collect(),
    );
    assert_eq!(micro, expected);
    assert_eq!(run(true), micro);
}

#[test]
fn an_explode_gives_the_same_rows_in_both_modes() {
    let lines = |k: usize| -> Vec<Line> {
        (0..k).map(|i| Line { value: format!("a b{} {}  c", i % 4, "x".repeat(i % 3)) }).collect()
    };
    let batches = vec![lines(50), lines(3), lines(120)];
    let run = |continuous: bool| {
        let (input, table) = (MemoryStream::<Line>::new(), MemoryTable::new());
        let b = Words::builder().lines(Source::memory(&input)).sink(Sink::memory(&table));
        let query = if continuous { b.trigger(fast()).start() } else { b.start() }.unwrap();
        feed::<Word, _>(query, &input, &table, &batches)
    };
    let micro = run(false);
    assert!(micro.iter().any(|w| w.word == "xx") && micro.iter().all(|w| !w.word.is_empty()));
    assert_eq!(run(true), micro);
}

#[test]
fn a_union_gives_the_same_rows_in_both_modes_with_a_task_per_input() {
    let run = |continuous: bool| {
        let (web, store, table) = (MemoryStream::<Sale>::new(), MemoryStream::<Sale>::new(), MemoryTable::new());
        let b = Both::builder().web(Source::memory(&web)).store(Source::memory(&store)).sink(Sink::memory(&table));
        let query = if continuous { b.trigger(fast()).start() } else { b.start() }.unwrap();
        for (i, (a, s)) in [(sales(40, 1), sales(60, 2)), (sales(5, 3), Vec::new()), (Vec::new(), sales(90, 4))]
            .into_iter()
            .enumerate()
        {
            web.add(a);
            if i != 1 {
                store.add(s);
            }
            query.process_all_available().unwrap();
        }
        if continuous {
            let p = query.last_progress().unwrap();
            assert_eq!(p.epoch.as_ref().unwrap().tasks, 2, "one task per input partition");
            assert_eq!(p.sources.len(), 2);
        }
        query.stop().unwrap();
        sorted::<Sale>(table.rows().unwrap())
    };
    let micro = run(false);
    let web = sales(40, 1).into_iter().chain(sales(5, 3));
    let store = sales(60, 2).into_iter().chain(sales(90, 4)).filter(|s| s.units > 0);
    assert_eq!(micro, sorted(web.chain(store).filter(|s| s.units < 1000).collect::<Vec<_>>()));
    assert_eq!(run(true), micro);
}

#[test]
fn a_stream_static_join_gives_the_same_rows_in_both_modes() {
    let shops = vec![
        Shop { name: "s0".into(), city: "Oslo".into() },
        Shop { name: "s1".into(), city: "Lyon".into() },
        Shop { name: "s1".into(), city: "Gent".into() },
        Shop { name: "s3".into(), city: "Bern".into() },
    ];
    let batches = vec![sales(30, 1), sales(70, 5)];
    let run = |continuous: bool| {
        let (input, static_shops, table) =
            (MemoryStream::<Sale>::new(), MemoryStream::<Shop>::new(), MemoryTable::new());
        static_shops.add(shops.clone());
        let b = WithCity::builder()
            .sales(Source::memory(&input))
            .shops(Source::memory(&static_shops))
            .sink(Sink::memory(&table));
        let query = if continuous { b.trigger(fast()).start() } else { b.start() }.unwrap();
        feed::<Located, _>(query, &input, &table, &batches)
    };
    let micro = run(false);
    assert!(micro.iter().any(|r| r.city == "Gent") && micro.iter().all(|r| r.shop != "s2"));
    assert_eq!(run(true), micro);
}

#[test]
fn the_rate_source_gives_the_rows_of_a_micro_batch_run_over_the_same_values() {
    // Continuous: three partitions of the rate source, each a task; the committed rows are
    // those of the partitions' logged positions.
    let table = MemoryTable::new();
    let ticker = EpochTicker::new();
    let query = Evens::builder()
        .ticks(flowgate::Source::from_impl(Box::new(flowgate::source::rate::RateSource::new(2_000).with_partitions(3))))
        .sink(Sink::memory(&table))
        .trigger(Trigger::continuous("1 hour").with_ticker(&ticker))
        .start()
        .unwrap();
    for _ in 0..5 {
        std::thread::sleep(Duration::from_millis(20));
        ticker.end_epoch(Duration::from_secs(30)).expect("the epoch commits");
    }
    query.stop().unwrap();
    // The stop committed the epoch in progress too.
    let progress = query.recent_progress();
    let last = progress.last().unwrap();
    let positions: Vec<u64> = serde_json::from_str::<serde_json::Value>(last.sources[0].end_offset.as_deref().unwrap())
        .unwrap()
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap())
        .collect();
    assert_eq!(positions.len(), 3);
    // The input rows, partition by partition: values p, p + 3, ... below each position.
    let mut values: Vec<i64> =
        (0..3u64).flat_map(|p| (0..positions[p as usize]).map(move |k| (p + 3 * k) as i64)).collect();
    values.sort_unstable();
    let expected: Vec<Even> =
        values.iter().filter(|v| *v % 2 == 0).map(|&value| Even { value, half: value / 2 }).collect();
    let got: Vec<Even> = sorted(table.rows().unwrap());
    assert!(!got.is_empty());
    assert_eq!(got, expected);
    // Every committed epoch reported its tasks.
    assert!(progress.iter().all(|p| p.epoch.as_ref().is_some_and(|e| e.tasks == 3 && e.rows_per_task.len() == 3)));
}

#[test]
fn epochs_commit_in_order_with_the_rows_read_before_their_marker() {
    let input = MemoryStream::<Sale>::new();
    let ticker = EpochTicker::new();
    let calls: Arc<Mutex<Vec<(u64, usize)>>> = Arc::default();
    let seen = calls.clone();
    let query = Projected::builder()
        .sales(Source::memory(&input))
        .sink(Sink::foreach_batch(move |epoch, batch| {
            seen.lock().unwrap().push((epoch, batch.num_rows()));
            Ok(())
        }))
        .trigger(Trigger::continuous("1 hour").with_ticker(&ticker))
        .start()
        .unwrap();
    let wait_read = |n: u64| {
        // The task reads a memory batch as soon as it is added; wait until it has.
        for _ in 0..2_000 {
            if query.status() == "Stopped" {
                break;
            }
            if input.len() >= n {
                std::thread::sleep(Duration::from_millis(5));
                return;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    };
    let mut epochs = Vec::new();
    // Epoch 0: 9 rows (6 pass the filter); epoch 1: nothing; epoch 2: 30 rows (20 pass).
    input.add(sales(9, 0));
    wait_read(1);
    epochs.push(ticker.end_epoch(Duration::from_secs(30)).unwrap());
    epochs.push(ticker.end_epoch(Duration::from_secs(30)).unwrap());
    input.add(sales(30, 0));
    wait_read(2);
    epochs.push(ticker.end_epoch(Duration::from_secs(30)).unwrap());
    assert_eq!(epochs, [0, 1, 2]);
    let progress = query.recent_progress();
    query.stop().unwrap();
    assert_eq!(progress.iter().map(|p| p.batch_id).take(3).collect::<Vec<_>>(), [0, 1, 2]);
    let rows: Vec<u64> = progress.iter().map(|p| p.num_input_rows).collect();
    assert_eq!(&rows[..3], &[9, 0, 30], "each epoch has the rows read before its marker");
    // The sink got each epoch with output once, with the epoch id, in order; the empty epoch 1
    // was committed without a call.
    let calls = calls.lock().unwrap().clone();
    assert_eq!(calls, [(0, 6), (2, 20)]);
    // The source offsets: batches read per partition, as the offset log has them.
    assert_eq!(progress[0].sources[0].end_offset.as_deref(), Some("[1]"));
    assert_eq!(progress[2].sources[0].end_offset.as_deref(), Some("[2]"));
}

#[test]
fn a_restart_resumes_after_the_last_committed_epoch() {
    let dir = tempfile::tempdir().unwrap();
    let (input, table) = (MemoryStream::<Sale>::new(), MemoryTable::new());
    let start = || {
        Projected::builder()
            .sales(Source::memory(&input))
            .sink(Sink::memory(&table))
            .checkpoint(dir.path())
            .trigger(fast())
            .start()
            .unwrap()
    };
    let query = start();
    input.add(sales(50, 1));
    query.process_all_available().unwrap();
    query.stop().unwrap();
    let first = table.rows::<Named>().unwrap().len();
    assert!(first > 0);
    let last_epoch = table.history().last().unwrap().0;
    // A stop commits the epoch in progress: nothing is read twice after the restart.
    let query = start();
    input.add(sales(20, 2));
    query.process_all_available().unwrap();
    query.stop().unwrap();
    let all: Vec<Named> = sorted(table.rows().unwrap());
    let mut expected: Vec<Named> = sales(50, 1)
        .into_iter()
        .chain(sales(20, 2))
        .filter(|s| s.units % 3 != 0)
        .map(|s| Named { shop: s.shop, double: s.units * 2 })
        .collect();
    expected = sorted(expected);
    assert_eq!(all, expected);
    assert!(table.history().iter().skip_while(|(e, _)| *e <= last_epoch).count() > 0, "new epochs after the restart");
    assert!(table.history().windows(2).all(|w| w[0].0 < w[1].0), "epoch ids keep growing across the restart");
}

#[test]
fn a_micro_batch_run_refuses_a_continuous_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let (input, table) = (MemoryStream::<Sale>::new(), MemoryTable::new());
    let q = Projected::builder()
        .sales(Source::memory(&input))
        .sink(Sink::memory(&table))
        .checkpoint(dir.path())
        .trigger(fast())
        .start()
        .unwrap();
    input.add(sales(5, 1));
    q.process_all_available().unwrap();
    q.stop().unwrap();
    let e = Projected::builder()
        .sales(Source::memory(&input))
        .sink(Sink::memory(&table))
        .checkpoint(dir.path())
        .start()
        .unwrap_err();
    assert!(e.to_string().contains("continuous MemoryStream"), "{e}");
}

#[test]
fn a_malformed_epoch_interval_fails_the_start() {
    let input = MemoryStream::<Sale>::new();
    let e = Projected::builder()
        .sales(Source::memory(&input))
        .sink(Sink::memory(&MemoryTable::new()))
        .trigger(Trigger::continuous("1 secnd"))
        .start()
        .unwrap_err();
    assert!(e.to_string().contains("invalid trigger"), "{e}");
}

#[test]
fn foreach_rows_sees_rows_before_their_epoch_commits() {
    let input = MemoryStream::<Sale>::new();
    let ticker = EpochTicker::new();
    let got: Arc<Mutex<Vec<(u64, usize)>>> = Arc::default();
    let seen = got.clone();
    let query = Projected::builder()
        .sales(Source::memory(&input))
        .sink(Sink::foreach_rows(move |epoch, rows| {
            seen.lock().unwrap().push((epoch, rows.num_rows()));
            Ok(())
        }))
        .trigger(Trigger::continuous("1 hour").with_ticker(&ticker))
        .start()
        .unwrap();
    input.add(sales(9, 0));
    // No epoch has ended: the rows arrive anyway.
    for _ in 0..5_000 {
        if !got.lock().unwrap().is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(got.lock().unwrap().clone(), [(0, 6)]);
    assert!(query.recent_progress().is_empty(), "epoch 0 is not committed");
    assert_eq!(ticker.end_epoch(Duration::from_secs(30)), Some(0));
    query.stop().unwrap();
}

/// What a `foreach_rows` sink got: (epoch, rows) per call, in order.
type Calls = Arc<Mutex<Vec<(u64, arrow_array::RecordBatch)>>>;

fn recording_sink() -> (Sink, Calls) {
    let calls: Calls = Arc::default();
    let seen = calls.clone();
    let sink = Sink::foreach_rows(move |epoch, rows| {
        seen.lock().unwrap().push((epoch, rows.clone()));
        Ok(())
    });
    (sink, calls)
}

/// Waits until the sink got `n` calls with rows (the stage ran that many vectors).
fn wait_calls(calls: &Calls, n: usize) {
    for _ in 0..10_000 {
        if calls.lock().unwrap().iter().filter(|(_, b)| b.num_rows() > 0).count() >= n {
            return;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    panic!("the sink did not get {n} calls within 10 s: {:?}", calls.lock().unwrap().len());
}

/// Per epoch, the rows the sink got, each call's rows decoded.
fn calls_per_epoch<T: Record>(calls: &Calls) -> std::collections::BTreeMap<u64, Vec<Vec<T>>> {
    let mut out: std::collections::BTreeMap<u64, Vec<Vec<T>>> = Default::default();
    for (epoch, b) in calls.lock().unwrap().iter().filter(|(_, b)| b.num_rows() > 0) {
        out.entry(*epoch).or_default().push(T::from_batch(b).unwrap());
    }
    out
}

/// An epoch's rows collapsed to the last row per key (`key`), sorted: what a sink that keeps
/// the latest row per key holds of the epoch.
fn collapsed<T: PartialOrd, K: Ord>(calls: Vec<Vec<T>>, key: impl Fn(&T) -> K) -> Vec<T> {
    let mut last = std::collections::BTreeMap::new();
    for row in calls.into_iter().flatten() {
        last.insert(key(&row), row);
    }
    sorted(last.into_values().collect())
}

/// Micro-batch's batches over `batches`, each one micro-batch: each sorted.
fn micro_batches<I: Record + Clone, T: Record + PartialOrd>(
    batches: &[Vec<I>],
    start: impl Fn(&MemoryStream<I>, &MemoryTable) -> StreamingQuery,
) -> Vec<Vec<T>> {
    let (input, table) = (MemoryStream::<I>::new(), MemoryTable::new());
    let query = start(&input, &table);
    for b in batches {
        input.add(b.clone());
        query.process_all_available().unwrap();
    }
    query.stop().unwrap();
    assert!(query.exception().is_none(), "{:?}", query.exception());
    updates(&table)
}

#[test]
fn a_stateful_query_emits_each_vectors_changed_groups_before_its_epoch_commits() {
    let input = MemoryStream::<Sale>::new();
    let ticker = EpochTicker::new();
    let (sink, calls) = recording_sink();
    let query = Totals::builder()
        .sales(Source::memory(&input))
        .sink(sink)
        .trigger(Trigger::continuous("1 hour").with_ticker(&ticker));
    let query = query.start().unwrap();
    // Two vectors in epoch 0, each waited for: no epoch has ended, the changed groups arrive.
    input.add(sales(20, 1));
    wait_calls(&calls, 1);
    input.add(sales(15, 2));
    wait_calls(&calls, 2);
    assert!(query.recent_progress().is_empty(), "epoch 0 is not committed");
    assert_eq!(ticker.end_epoch(Duration::from_secs(30)), Some(0));
    query.stop().unwrap();
    assert!(query.exception().is_none(), "{:?}", query.exception());
    let mut epochs = calls_per_epoch::<Total>(&calls);
    assert_eq!(epochs.keys().copied().collect::<Vec<_>>(), [0]);
    let epoch0 = epochs.remove(&0).unwrap();
    assert_eq!(epoch0.len(), 2, "one call per vector");
    // A shop both vectors changed is emitted twice, with its total after each.
    let shops = |rows: &[Total]| rows.iter().map(|t| t.shop.clone()).collect::<std::collections::BTreeSet<_>>();
    assert!(!shops(&epoch0[0]).is_disjoint(&shops(&epoch0[1])), "{epoch0:?}");
    // Its last row per shop is the micro-batch's over the epoch's rows.
    let epoch_rows: Vec<Sale> = sales(20, 1).into_iter().chain(sales(15, 2)).collect();
    let micro = micro_batches::<Sale, Total>(&[epoch_rows], |input, table| {
        Totals::builder().sales(Source::memory(input)).sink(Sink::memory(table)).start().unwrap()
    });
    assert_eq!(micro.len(), 1);
    assert_eq!(collapsed(epoch0, |t| t.shop.clone()), micro[0]);
}

/// A reading of sensor `sensor` at `secs` seconds past a fixed instant.
fn reading(sensor: &str, secs: i64, value: i64) -> Reading {
    Reading { sensor: sensor.into(), at: Timestamp((1_700_000_000 + secs) * 1_000_000), value }
}

/// Runs `query` continuously over `epochs` (each inner list one epoch, each of its batches one
/// vector, each waited for before the next) and returns the sink's calls per epoch.
fn vectors_per_epoch<T: Record>(
    epochs: &[Vec<Vec<Reading>>],
    start: impl Fn(&MemoryStream<Reading>, Sink, &EpochTicker) -> StreamingQuery,
) -> std::collections::BTreeMap<u64, Vec<Vec<T>>> {
    let input = MemoryStream::<Reading>::new();
    let ticker = EpochTicker::new();
    let (sink, calls) = recording_sink();
    let query = start(&input, sink, &ticker);
    let mut vectors = 0;
    for (e, epoch) in epochs.iter().enumerate() {
        for v in epoch {
            input.add(v.clone());
            if !v.is_empty() {
                // Only a vector with output can be waited for; the tests' vectors all have some.
                vectors += 1;
                wait_calls(&calls, vectors);
            }
        }
        assert_eq!(ticker.end_epoch(Duration::from_secs(30)), Some(e as u64));
    }
    query.stop().unwrap();
    assert!(query.exception().is_none(), "{:?}", query.exception());
    calls_per_epoch(&calls)
}

#[test]
fn a_window_the_watermark_passes_mid_epoch_keeps_counting_until_the_epochs_end() {
    // Epoch 0 moves the watermark to 90 s (100 s seen, 10 s delay): epoch 1 evicts windows
    // ending at or before 90 s, at its end. Its two vectors both count into [80 s, 90 s), which
    // a micro-batch over them counts twice before evicting: so must the stage.
    let epochs = vec![
        vec![vec![reading("a", 100, 1)]],
        vec![vec![reading("a", 85, 2)], vec![reading("a", 82, 3), reading("b", 101, 4)]],
        // Late by epoch 1's watermark: dropped.
        vec![vec![reading("a", 86, 5), reading("b", 103, 6)]],
    ];
    let got = vectors_per_epoch::<WindowTotal>(&epochs, |input, sink, ticker| {
        PerWindow::builder()
            .readings(Source::memory(input))
            .sink(sink)
            .trigger(Trigger::continuous("1 hour").with_ticker(ticker))
            .start()
            .unwrap()
    });
    let micro = micro_batches::<Reading, WindowTotal>(
        &epochs.iter().map(|e| e.concat()).collect::<Vec<_>>(),
        // Without no-data batches, a micro-batch's batches are the epochs (a no-data batch would
        // move the late watermark before epoch 1's rows).
        |input, table| {
            PerWindow::builder()
                .readings(Source::memory(input))
                .sink(Sink::memory(table))
                .no_data_batches(false)
                .start()
                .unwrap()
        },
    );
    assert_eq!(got.len(), 3);
    let window_80: Vec<i64> = got[&1].iter().flatten().filter(|w| w.sensor == "a").map(|w| w.n).collect();
    assert_eq!(window_80, [1, 2], "the window is emitted per vector, its count growing");
    let collapsed: Vec<Vec<WindowTotal>> =
        got.into_values().map(|e| collapsed(e, |w| (w.window.start, w.sensor.clone()))).collect();
    assert_eq!(collapsed, micro);
    assert_eq!(micro[1].iter().find(|w| w.sensor == "a").map(|w| (w.n, w.total)), Some((2, 5)));
    assert!(micro[2].iter().all(|w| w.sensor == "b"), "{:?}", micro[2]);
}

#[test]
fn a_duplicate_the_watermark_passes_mid_epoch_is_still_dropped() {
    // Epoch 0 moves the watermark to 95 s (5 s delay): epoch 1 forgets keys at or before 95 s at
    // its end. Its second vector repeats a key of its first: a micro-batch over both drops it.
    let epochs = vec![
        vec![vec![reading("a", 100, 1)]],
        vec![vec![reading("a", 90, 2)], vec![reading("a", 90, 3), reading("b", 97, 4)]],
        // The key is forgotten now, and late anyway: dropped.
        vec![vec![reading("a", 90, 5), reading("b", 98, 6)]],
    ];
    let got = vectors_per_epoch::<Reading>(&epochs, |input, sink, ticker| {
        FirstReadings::builder()
            .readings(Source::memory(input))
            .sink(sink)
            .trigger(Trigger::continuous("1 hour").with_ticker(ticker))
            .start()
            .unwrap()
    });
    let micro =
        micro_batches::<Reading, Reading>(&epochs.iter().map(|e| e.concat()).collect::<Vec<_>>(), |input, table| {
            // As above: the batches are the epochs.
            FirstReadings::builder()
                .readings(Source::memory(input))
                .sink(Sink::memory(table))
                .no_data_batches(false)
                .start()
                .unwrap()
        });
    let got: Vec<Vec<Reading>> = got.into_values().map(|e| sorted(e.concat())).collect();
    assert_eq!(got, micro);
    assert_eq!(got[1], [reading("a", 90, 2), reading("b", 97, 4)]);
}

/// Writes `rows` as a JSON-lines file `name` in `dir` atomically (written aside, then renamed
/// in, as the file source expects), with modification time `secs` past a fixed instant so the
/// listing order is the writing order.
fn write_json(dir: &std::path::Path, name: &str, rows: &[Sale], secs: u64) {
    let text: String = rows.iter().map(|s| format!("{{\"shop\":\"{}\",\"units\":{}}}\n", s.shop, s.units)).collect();
    let aside = dir.join(format!(".{name}"));
    std::fs::write(&aside, text).unwrap();
    let t = std::time::SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000 + secs);
    std::fs::File::options().write(true).open(&aside).unwrap().set_modified(t).unwrap();
    std::fs::rename(&aside, dir.join(name)).unwrap();
}

fn projected(rows: impl IntoIterator<Item = Sale>) -> Vec<Named> {
    sorted(rows.into_iter().filter(|s| s.units % 3 != 0).map(|s| Named { shop: s.shop, double: s.units * 2 }).collect())
}

#[test]
fn the_file_source_gives_the_same_rows_in_both_modes_taking_files_as_they_appear() {
    let files = [sales(40, 1), sales(3, 2), Vec::new(), sales(200, 3), sales(1, 4)];
    let run = |continuous: bool| {
        let dir = tempfile::tempdir().unwrap();
        let table = MemoryTable::new();
        let b = Projected::builder().sales(Source::file(dir.path()).json()).sink(Sink::memory(&table));
        let query = if continuous { b.trigger(fast()).start() } else { b.start() }.unwrap();
        for (i, rows) in files.iter().enumerate() {
            write_json(dir.path(), &format!("part-{i}.json"), rows, i as u64);
            query.process_all_available().unwrap();
        }
        if continuous {
            let p = query.last_progress().unwrap();
            assert_eq!(p.sources[0].end_offset.as_deref(), Some(r#"[{"logOffset":5}]"#), "five files taken");
        }
        query.stop().unwrap();
        assert!(query.exception().is_none(), "{:?}", query.exception());
        sorted::<Named>(table.rows().unwrap())
    };
    let micro = run(false);
    assert_eq!(micro, projected(files.iter().flatten().cloned()));
    assert_eq!(run(true), micro);
}

#[test]
fn a_file_source_restart_goes_on_after_the_files_of_committed_epochs() {
    let (input, out) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let checkpoint = tempfile::tempdir().unwrap();
    let start = || {
        Projected::builder()
            .sales(Source::file(input.path()).json())
            .sink(Sink::file(out.path(), flowgate::sink::SinkFormat::Json))
            .checkpoint(checkpoint.path())
            .trigger(fast())
            .start()
            .unwrap()
    };
    let query = start();
    write_json(input.path(), "a.json", &sales(30, 1), 1);
    query.process_all_available().unwrap();
    write_json(input.path(), "b.json", &sales(20, 2), 2);
    query.process_all_available().unwrap();
    query.stop().unwrap();
    // Written while the query is down: the restart takes it, and only it.
    write_json(input.path(), "c.json", &sales(25, 3), 3);
    let query = start();
    query.process_all_available().unwrap();
    write_json(input.path(), "d.json", &sales(5, 4), 4);
    query.process_all_available().unwrap();
    query.stop().unwrap();
    assert!(query.exception().is_none(), "{:?}", query.exception());
    let committed = flowgate::sink::file::read_committed_json_rows(out.path()).unwrap();
    assert!(committed.windows(2).all(|w| w[0].0 < w[1].0), "one manifest entry per epoch, in order");
    let got: Vec<Named> = sorted(
        committed
            .iter()
            .flat_map(|(_, rows)| rows)
            .map(|r| Named { shop: r["shop"].as_str().unwrap().into(), double: r["double"].as_i64().unwrap() })
            .collect(),
    );
    let all = [sales(30, 1), sales(20, 2), sales(25, 3), sales(5, 4)];
    assert_eq!(got, projected(all.into_iter().flatten()));
}

/// A line server: serves `lines` to the first client, then keeps the connection open until
/// the returned sender is dropped.
fn serve_lines(lines: Vec<String>) -> (u16, std::sync::mpsc::Sender<()>, std::thread::JoinHandle<()>) {
    serve_lines_on(0, lines)
}

/// [`serve_lines`] on `port` (0: any free one).
fn serve_lines_on(port: u16, lines: Vec<String>) -> (u16, std::sync::mpsc::Sender<()>, std::thread::JoinHandle<()>) {
    use std::io::Write;
    let listener = std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let server = std::thread::spawn(move || {
        let (mut conn, _) = listener.accept().unwrap();
        for chunk in lines.chunks(37) {
            let text: String = chunk.iter().map(|l| format!("{l}\n")).collect();
            conn.write_all(text.as_bytes()).unwrap();
            std::thread::sleep(Duration::from_millis(2));
        }
        let _ = rx.recv();
    });
    (port, tx, server)
}

/// Waits (at most 30 s) until `table` holds `n` rows.
fn wait_rows<T: Record>(table: &MemoryTable, query: &StreamingQuery, n: usize) -> Vec<T> {
    for _ in 0..3_000 {
        query.process_all_available().unwrap();
        let rows: Vec<T> = table.rows().unwrap();
        if rows.len() >= n {
            return rows;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("the query did not produce {n} rows within 30 s");
}

#[test]
fn the_socket_source_gives_the_same_rows_in_both_modes() {
    let lines: Vec<String> = (0..500).map(|i| format!("w{} x{}  y", i % 7, i % 3)).collect();
    // "w.. x.. y": three words a line.
    let expected_words = lines.len() * 3;
    let run = |continuous: bool| {
        let (port, done, server) = serve_lines(lines.clone());
        let table = MemoryTable::new();
        let b = Words::builder().lines(Source::socket("127.0.0.1", port)).sink(Sink::memory(&table));
        let query = if continuous { b.trigger(fast()).start() } else { b.start() }.unwrap();
        let words: Vec<Word> = wait_rows(&table, &query, expected_words);
        if continuous {
            let positions = query.recent_progress().last().unwrap().sources[0].end_offset.clone();
            assert_eq!(positions.as_deref(), Some("[500]"), "the position is the lines taken");
        }
        query.stop().unwrap();
        drop(done);
        server.join().unwrap();
        assert!(query.exception().is_none(), "{:?}", query.exception());
        sorted(words)
    };
    let micro = run(false);
    assert_eq!(micro.len(), expected_words);
    assert_eq!(run(true), micro);
}

/// Every batch the sink got with rows, each sorted: the sequence of updates.
fn updates<T: Record + PartialOrd>(table: &MemoryTable) -> Vec<Vec<T>> {
    table
        .history()
        .into_iter()
        .filter(|(_, b)| b.num_rows() > 0)
        .map(|(_, b)| sorted(T::from_batch(&b).unwrap()))
        .collect()
}

/// Runs a stateful query over `batches` in both modes (each batch added, then waited for:
/// an epoch holds whole memory batches, so a batch is an epoch in both modes) and returns
/// the sink's batches of rows in each.
fn both_modes<I: Record + Clone, T: Record + PartialOrd>(
    batches: &[Vec<I>],
    start: impl Fn(&MemoryStream<I>, &MemoryTable, bool) -> StreamingQuery,
) -> (Vec<Vec<T>>, Vec<Vec<T>>) {
    let run = |continuous: bool| {
        let (input, table) = (MemoryStream::<I>::new(), MemoryTable::new());
        let query = start(&input, &table, continuous);
        for b in batches {
            input.add(b.clone());
            query.process_all_available().unwrap();
        }
        query.stop().unwrap();
        assert!(query.exception().is_none(), "{:?}", query.exception());
        updates(&table)
    };
    (run(false), run(true))
}

#[test]
fn an_update_mode_aggregation_gives_the_same_updates_in_both_modes() {
    let batches = vec![sales(100, 1), sales(7, 2), Vec::new(), sales(300, 3), sales(1, 4)];
    let (micro, continuous) = both_modes::<Sale, Total>(&batches, |input, table, continuous| {
        let b = Totals::builder().sales(Source::memory(input)).sink(Sink::memory(table));
        if continuous { b.trigger(fast()).start() } else { b.start() }.unwrap()
    });
    assert_eq!(micro.len(), 4, "one update per batch with rows");
    let mut totals = std::collections::BTreeMap::new();
    for s in batches.iter().flatten() {
        *totals.entry(s.shop.clone()).or_insert(0) += s.units;
    }
    let mut latest = std::collections::BTreeMap::new();
    for t in micro.iter().flatten() {
        latest.insert(t.shop.clone(), t.units);
    }
    assert_eq!(latest, totals, "the groups a batch changed, with their values after it");
    assert_eq!(continuous, micro);
}

#[test]
fn a_dedup_gives_the_same_rows_in_both_modes() {
    let batches = vec![sales(3, 1), sales(40, 2), sales(200, 3)];
    let (micro, continuous) = both_modes::<Sale, Sale>(&batches, |input, table, continuous| {
        let b = FirstSales::builder().sales(Source::memory(input)).sink(Sink::memory(table));
        if continuous { b.trigger(fast()).start() } else { b.start() }.unwrap()
    });
    assert_eq!(micro.iter().flatten().count(), 5, "one row per shop");
    assert_eq!(continuous, micro);
}

fn readings(round: i64) -> Vec<Reading> {
    // Times move forward by 7 s a round, with stragglers up to 25 s behind: some late.
    (0..60)
        .map(|i| {
            let behind = if i % 9 == 0 { 25 } else { i % 4 };
            let secs = 1_700_000_000 + round * 7 - behind;
            Reading { sensor: format!("s{}", i % 3), at: Timestamp(secs * 1_000_000 + i * 1_000), value: i - 20 }
        })
        .collect()
}

#[test]
fn event_time_windows_with_a_watermark_give_the_same_updates_in_both_modes() {
    let batches: Vec<Vec<Reading>> = (0..8).map(readings).collect();
    let (micro, continuous) = both_modes::<Reading, WindowTotal>(&batches, |input, table, continuous| {
        let b = PerWindow::builder().readings(Source::memory(input)).sink(Sink::memory(table));
        if continuous { b.trigger(fast()).start() } else { b.start() }.unwrap()
    });
    let mut latest = std::collections::BTreeMap::new();
    for w in micro.iter().flatten() {
        latest.insert((w.window.start, w.sensor.clone()), w.n);
    }
    let counted: i64 = latest.values().sum();
    assert!(micro.len() >= 8, "{micro:?}");
    assert!(counted > 0 && counted < 8 * 60, "late readings were dropped by the watermark ({counted})");
    assert_eq!(continuous, micro);
}

#[test]
fn a_dedup_within_a_watermark_gives_the_same_rows_in_both_modes() {
    let batches: Vec<Vec<Reading>> =
        (0..6).map(|r| readings(r).into_iter().chain(readings(r.saturating_sub(1))).collect()).collect();
    let (micro, continuous) = both_modes::<Reading, Reading>(&batches, |input, table, continuous| {
        let b = FirstReadings::builder().readings(Source::memory(input)).sink(Sink::memory(table));
        if continuous { b.trigger(fast()).start() } else { b.start() }.unwrap()
    });
    assert!(!micro.is_empty());
    assert_eq!(continuous, micro);
}

#[test]
fn the_rate_source_aggregated_continuously_counts_each_partitions_rows_once() {
    // Three partitions read in parallel; one stage counts the values per residue.
    let table = MemoryTable::new();
    let ticker = EpochTicker::new();
    let query = Residues::builder()
        .ticks(flowgate::Source::from_impl(Box::new(flowgate::source::rate::RateSource::new(5_000).with_partitions(3))))
        .sink(Sink::memory(&table))
        .trigger(Trigger::continuous("1 hour").with_ticker(&ticker))
        .start()
        .unwrap();
    for _ in 0..4 {
        std::thread::sleep(Duration::from_millis(20));
        ticker.end_epoch(Duration::from_secs(30)).expect("the epoch commits");
    }
    query.stop().unwrap();
    assert!(query.exception().is_none(), "{:?}", query.exception());
    let last = query.recent_progress().into_iter().last().unwrap();
    let positions: Vec<u64> = serde_json::from_str::<serde_json::Value>(last.sources[0].end_offset.as_deref().unwrap())
        .unwrap()
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap())
        .collect();
    let mut expected = std::collections::BTreeMap::new();
    for p in 0..3u64 {
        for k in 0..positions[p as usize] {
            *expected.entry(((p + 3 * k) % 4) as i64).or_insert(0i64) += 1;
        }
    }
    // The latest update per residue is its count over every row read.
    let mut latest = std::collections::BTreeMap::new();
    for (_, b) in table.history() {
        for r in Residue::from_batch(&b).unwrap() {
            latest.insert(r.residue, r.n);
        }
    }
    assert!(!latest.is_empty());
    assert_eq!(latest, expected);
    assert!(last.state_operators.iter().any(|s| s.operator_name == "stateStoreSave"), "state metrics per epoch");
}

#[test]
fn a_stateful_restart_replays_a_logged_epoch_from_the_state_before_it() {
    let dir = tempfile::tempdir().unwrap();
    let (input, table) = (MemoryStream::<Sale>::new(), MemoryTable::new());
    let ticker = EpochTicker::new();
    let start = |ticker: Option<&EpochTicker>| {
        let b = Totals::builder().sales(Source::memory(&input)).sink(Sink::memory(&table)).checkpoint(dir.path());
        match ticker {
            Some(t) => b.trigger(Trigger::continuous("1 hour").with_ticker(t)).start(),
            None => b.trigger(fast()).start(),
        }
        .unwrap()
    };
    let wait_read = |query: &StreamingQuery, n: u64| {
        for _ in 0..2_000 {
            if input.len() >= n || query.status() == "Stopped" {
                std::thread::sleep(Duration::from_millis(5));
                return;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    };
    let query = start(Some(&ticker));
    input.add(sales(50, 1));
    wait_read(&query, 1);
    assert_eq!(ticker.end_epoch(Duration::from_secs(30)), Some(0));
    input.add(sales(30, 2));
    wait_read(&query, 2);
    assert_eq!(ticker.end_epoch(Duration::from_secs(30)), Some(1));
    query.stop().unwrap();
    assert!(query.exception().is_none(), "{:?}", query.exception());
    // The last epoch with rows (epoch 1, unless the task read both batches before marker 0).
    let last = table.deliveries().last().map(|(e, _)| *e).expect("an epoch with rows");
    // A crash after that epoch's offsets (and its state version) were written, before its
    // commit entry: the restart runs it again, from the state after the epoch before.
    let cp = dir.path();
    for e in last + 1..last + 10 {
        let _ = std::fs::remove_file(cp.join("offsets").join(e.to_string()));
        let _ = std::fs::remove_file(cp.join("commits").join(e.to_string()));
    }
    std::fs::remove_file(cp.join("commits").join(last.to_string())).unwrap();
    let query = start(None);
    input.add(sales(20, 3));
    query.process_all_available().unwrap();
    query.stop().unwrap();
    assert!(query.exception().is_none(), "{:?}", query.exception());
    let runs: Vec<Vec<Total>> = table
        .deliveries()
        .into_iter()
        .filter(|(e, _)| *e == last)
        .map(|(_, b)| collapsed(vec![Total::from_batch(&b).unwrap()], |t| t.shop.clone()))
        .collect();
    assert_eq!(runs.len(), 2, "epoch {last} delivered again");
    // The first run emitted a shop once per vector, the replay (one micro-batch) once; the
    // last row per shop is the same.
    assert_eq!(runs[0], runs[1], "the replayed epoch gave its first run's last row per shop");
    // In delivery order (a replayed epoch replaces its first delivery in the history).
    let after: Vec<Vec<Total>> = table.history().into_iter().map(|(_, b)| Total::from_batch(&b).unwrap()).collect();
    let mut totals = std::collections::BTreeMap::new();
    for s in sales(50, 1).into_iter().chain(sales(30, 2)).chain(sales(20, 3)) {
        *totals.entry(s.shop).or_insert(0) += s.units;
    }
    let mut latest = std::collections::BTreeMap::new();
    for batch in &after {
        for t in batch {
            latest.insert(t.shop.clone(), t.units);
        }
    }
    assert_eq!(latest, totals, "every sale counted once across the crash");
}

#[test]
fn a_socket_restart_that_owes_an_epoch_with_lines_fails_saying_the_source_cannot_replay() {
    let dir = tempfile::tempdir().unwrap();
    let lines: Vec<String> = (0..40).map(|i| format!("a{i} b")).collect();
    let (port, done, server) = serve_lines(lines);
    let (table, ticker) = (MemoryTable::new(), EpochTicker::new());
    let query = Words::builder()
        .lines(Source::socket("127.0.0.1", port))
        .sink(Sink::memory(&table))
        .checkpoint(dir.path())
        .trigger(Trigger::continuous("1 hour").with_ticker(&ticker))
        .start()
        .unwrap();
    // Epochs end until every line's two words were committed.
    for _ in 0..3_000 {
        ticker.end_epoch(Duration::from_secs(30)).unwrap();
        if table.rows::<Word>().unwrap().len() == 80 {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    query.stop().unwrap();
    drop(done);
    server.join().unwrap();
    assert_eq!(table.rows::<Word>().unwrap().len(), 80);
    // Every commit entry lost: the restart owes the first epoch with lines.
    let first = query.recent_progress().iter().find(|p| p.num_input_rows > 0).unwrap().batch_id;
    for e in first..first + 100 {
        let _ = std::fs::remove_file(dir.path().join("commits").join(e.to_string()));
        if e > first {
            let _ = std::fs::remove_file(dir.path().join("offsets").join(e.to_string()));
        }
    }
    // The same server address (the checkpoint names it), other lines.
    let (_, done, server) = serve_lines_on(port, vec!["late line".into()]);
    let query = Words::builder()
        .lines(Source::socket("127.0.0.1", port))
        .sink(Sink::memory(&table))
        .checkpoint(dir.path())
        .trigger(fast())
        .start()
        .unwrap();
    let e = query.await_termination().unwrap_err().to_string();
    drop(done);
    let _ = server.join();
    assert!(e.contains("cannot read its lines again (it is not replayable)"), "{e}");
}

#[test]
fn an_append_mode_window_aggregation_gives_the_same_windows_in_both_modes() {
    let batches: Vec<Vec<Reading>> = (0..8).map(readings).collect();
    let (micro, continuous) = both_modes::<Reading, WindowTotal>(&batches, |input, table, continuous| {
        let b = ClosedWindows::builder().readings(Source::memory(input)).sink(Sink::memory(table));
        if continuous { b.trigger(fast()).start() } else { b.start() }.unwrap()
    });
    // Each window once, when the watermark passed it; the last ones stay open.
    let windows: std::collections::BTreeSet<_> =
        micro.iter().flatten().map(|w| (w.window.start, w.sensor.clone())).collect();
    assert_eq!(windows.len(), micro.iter().flatten().count(), "{micro:?}");
    assert!(micro.len() >= 5, "{micro:?}");
    assert_eq!(continuous, micro);
}

#[test]
fn a_complete_mode_aggregation_gives_the_whole_table_once_per_epoch_as_micro_batch_per_batch() {
    let batches = vec![sales(100, 1), sales(7, 2), Vec::new(), sales(300, 3), sales(1, 4)];
    let (micro, continuous) = both_modes::<Sale, Total>(&batches, |input, table, continuous| {
        let b = AllTotals::builder().sales(Source::memory(input)).sink(Sink::memory(table));
        if continuous { b.trigger(fast()).start() } else { b.start() }.unwrap()
    });
    // The whole table per batch, an empty one too (its offsets moved), as Spark's.
    assert_eq!(micro.len(), 5, "{micro:?}");
    assert_eq!(micro.last().map(Vec::len), Some(5), "every shop");
    assert_eq!(continuous, micro);
}

#[test]
fn a_complete_mode_top_n_gives_the_same_rows_in_both_modes() {
    let batches = vec![sales(10, 1), sales(70, 2), sales(300, 3)];
    let (micro, continuous) = both_modes::<Sale, Total>(&batches, |input, table, continuous| {
        let b = TopShops::builder().sales(Source::memory(input)).sink(Sink::memory(table));
        if continuous { b.trigger(fast()).start() } else { b.start() }.unwrap()
    });
    assert!(micro.iter().all(|b| b.len() == 3), "{micro:?}");
    assert_eq!(continuous, micro);
}

#[test]
fn a_complete_mode_epoch_of_several_vectors_emits_the_table_once_at_its_end() {
    let input = MemoryStream::<Sale>::new();
    let ticker = EpochTicker::new();
    let table = MemoryTable::new();
    let query = AllTotals::builder()
        .sales(Source::memory(&input))
        .sink(Sink::memory(&table))
        .trigger(Trigger::continuous("1 hour").with_ticker(&ticker))
        .start()
        .unwrap();
    input.add(sales(20, 1));
    input.add(sales(15, 2));
    input.add(sales(9, 3));
    // The epoch ends when every row was read (its progress says how many).
    let mut read = 0;
    for _ in 0..1_000 {
        ticker.end_epoch(Duration::from_secs(30)).unwrap();
        read = query.recent_progress().iter().map(|p| p.num_input_rows).sum::<u64>();
        if read == 44 {
            break;
        }
    }
    assert_eq!(read, 44);
    query.stop().unwrap();
    assert!(query.exception().is_none(), "{:?}", query.exception());
    let tables = updates::<Total>(&table);
    let rows: Vec<Sale> = sales(20, 1).into_iter().chain(sales(15, 2)).chain(sales(9, 3)).collect();
    let micro = micro_batches::<Sale, Total>(&[rows], |input, table| {
        AllTotals::builder().sales(Source::memory(input)).sink(Sink::memory(table)).start().unwrap()
    });
    // One table per epoch with rows, never one per vector; the last is micro-batch's.
    assert!(tables.iter().all(|t| t.len() <= 5), "{tables:?}");
    assert_eq!(tables.last(), micro.last());
}

#[test]
fn an_append_mode_session_window_aggregation_gives_the_same_sessions_in_both_modes() {
    let batches: Vec<Vec<Reading>> = (0..8).map(readings).collect();
    let (micro, continuous) = both_modes::<Reading, SessionTotal>(&batches, |input, table, continuous| {
        let b = Sessions::builder().readings(Source::memory(input)).sink(Sink::memory(table));
        if continuous { b.trigger(fast()).start() } else { b.start() }.unwrap()
    });
    assert!(micro.len() >= 3, "{micro:?}");
    assert_eq!(continuous, micro);
}

#[test]
fn a_global_limit_gives_the_same_first_rows_in_both_modes() {
    let batches = vec![sales(3, 1), sales(4, 2), sales(20, 3), sales(5, 4)];
    let (micro, continuous) = both_modes::<Sale, Sale>(&batches, |input, table, continuous| {
        let b = FirstSeven::builder().sales(Source::memory(input)).sink(Sink::memory(table));
        if continuous { b.trigger(fast()).start() } else { b.start() }.unwrap()
    });
    assert_eq!(micro.iter().flatten().count(), 7);
    assert_eq!(continuous, micro);
}

#[test]
fn map_groups_with_state_gives_the_same_updates_in_both_modes() {
    let batches = vec![sales(100, 1), sales(7, 2), Vec::new(), sales(300, 3), sales(1, 4)];
    let (micro, continuous) = both_modes::<Sale, ShopRun>(&batches, |input, table, continuous| {
        let b = RunningShops::builder().sales(Source::memory(input)).sink(Sink::memory(table));
        if continuous { b.trigger(fast()).start() } else { b.start() }.unwrap()
    });
    assert_eq!(micro.len(), 4, "one update per batch with rows");
    assert_eq!(micro.last().map(Vec::len), Some(1), "the one shop the last batch sold in");
    assert_eq!(continuous, micro);
}

#[test]
fn map_groups_with_state_over_several_vectors_collapses_to_micro_batchs_epoch() {
    let input = MemoryStream::<Sale>::new();
    let ticker = EpochTicker::new();
    let (sink, calls) = recording_sink();
    let query = RunningShops::builder()
        .sales(Source::memory(&input))
        .sink(sink)
        .trigger(Trigger::continuous("1 hour").with_ticker(&ticker))
        .start()
        .unwrap();
    input.add(sales(20, 1));
    wait_calls(&calls, 1);
    input.add(sales(15, 2));
    wait_calls(&calls, 2);
    assert_eq!(ticker.end_epoch(Duration::from_secs(30)), Some(0));
    query.stop().unwrap();
    assert!(query.exception().is_none(), "{:?}", query.exception());
    let mut epochs = calls_per_epoch::<ShopRun>(&calls);
    let epoch0 = epochs.remove(&0).unwrap();
    assert_eq!(epoch0.len(), 2, "one call per vector, each with the keys it had rows of");
    let rows: Vec<Sale> = sales(20, 1).into_iter().chain(sales(15, 2)).collect();
    let micro = micro_batches::<Sale, ShopRun>(&[rows], |input, table| {
        RunningShops::builder().sales(Source::memory(input)).sink(Sink::memory(table)).start().unwrap()
    });
    assert_eq!(collapsed(epoch0, |r| r.shop.clone()), micro[0]);
}

#[test]
fn a_processing_time_timeout_fires_at_the_epochs_end_never_before_a_later_vector_of_its_key() {
    let input = MemoryStream::<Sale>::new();
    let ticker = EpochTicker::new();
    let clock = flowgate::clock::ManualClock::new(1_700_000_000_000);
    let (sink, calls) = recording_sink();
    let query = IdleShops::builder()
        .sales(Source::memory(&input))
        .sink(sink)
        .clock(clock.clone())
        .trigger(Trigger::continuous("1 hour").with_ticker(&ticker))
        .start()
        .unwrap();
    let sale = |shop: &str| Sale { shop: shop.into(), units: 1 };
    // Epoch 0: a and b sell (their timeouts: a minute after epoch 0's processing time).
    input.add(vec![sale("a"), sale("b")]);
    wait_calls(&calls, 1);
    assert_eq!(ticker.end_epoch(Duration::from_secs(30)), Some(0));
    // Epoch 1 starts 70 s later: both timeouts are due in it. Its first vector has c only, its
    // second b: b is called with its sale (not timed out), a times out at the epoch's end.
    clock.advance_ms(70_000);
    assert_eq!(ticker.end_epoch(Duration::from_secs(30)), Some(1));
    input.add(vec![sale("c")]);
    wait_calls(&calls, 2);
    input.add(vec![sale("b")]);
    wait_calls(&calls, 3);
    assert_eq!(ticker.end_epoch(Duration::from_secs(30)), Some(2));
    query.stop().unwrap();
    assert!(query.exception().is_none(), "{:?}", query.exception());
    let epochs = calls_per_epoch::<ShopIdle>(&calls);
    let row = |shop: &str, sales, idle| ShopIdle { shop: shop.into(), sales, idle };
    assert_eq!(sorted(epochs[&0].concat()), [row("a", 1, false), row("b", 1, false)]);
    assert!(!epochs.contains_key(&1), "epoch 1 began before the clock moved: nothing is due at its end");
    assert_eq!(epochs[&2], [vec![row("c", 1, false)], vec![row("b", 2, false)], vec![row("a", 1, true)]]);
}

#[test]
fn a_stream_stream_join_gives_the_same_rows_in_both_modes_with_a_task_per_input() {
    let returns = |n: i64, seed: i64| -> Vec<Return> {
        (0..n).map(|i| Return { rshop: format!("s{}", (i * 3 + seed) % 7), refunded: i * 10 + seed }).collect()
    };
    let run = |continuous: bool| {
        let (s, r, table) = (MemoryStream::<Sale>::new(), MemoryStream::<Return>::new(), MemoryTable::new());
        let b =
            SalesReturns::builder().sales(Source::memory(&s)).returns(Source::memory(&r)).sink(Sink::memory(&table));
        let query = if continuous { b.trigger(fast()).start() } else { b.start() }.unwrap();
        for round in 0..4 {
            s.add(sales(6, round));
            query.process_all_available().unwrap();
            r.add(returns(4, round));
            if round % 2 == 1 {
                s.add(sales(3, round + 10));
            }
            query.process_all_available().unwrap();
        }
        query.stop().unwrap();
        assert!(query.exception().is_none(), "{:?}", query.exception());
        sorted(table.rows::<SaleReturn>().unwrap())
    };
    let micro = run(false);
    assert!(micro.len() > 20, "{}", micro.len());
    // Every match once, whichever side's task brought the later row.
    assert_eq!(run(true), micro);
}

#[test]
fn a_stream_stream_left_outer_join_emits_its_unmatched_rows_at_the_epoch_the_watermark_passes_them() {
    let run = |continuous: bool| {
        let (r, a, table) = (MemoryStream::<Reading>::new(), MemoryStream::<Alarm>::new(), MemoryTable::new());
        let b =
            ReadingAlarms::builder().readings(Source::memory(&r)).alarms(Source::memory(&a)).sink(Sink::memory(&table));
        let query = if continuous { b.trigger(fast()).start() } else { b.start() }.unwrap();
        for round in 0..6 {
            r.add((0..4).map(|i| reading(&format!("s{i}"), round * 30 + i, i)).collect::<Vec<_>>());
            query.process_all_available().unwrap();
            // Sensors 0 and 2 raise an alarm 5 s after their reading (a match), the others none.
            let alarm = |i: i64| Alarm { asensor: format!("s{i}"), raised: reading("", round * 30 + i + 5, 0).at };
            a.add(vec![alarm(0), alarm(2)]);
            query.process_all_available().unwrap();
        }
        query.stop().unwrap();
        assert!(query.exception().is_none(), "{:?}", query.exception());
        updates::<ReadingAlarm>(&table)
    };
    let micro = run(false);
    let rows: Vec<&ReadingAlarm> = micro.iter().flatten().collect();
    assert!(rows.iter().any(|r| r.raised.is_none()) && rows.iter().any(|r| r.raised.is_some()), "{micro:?}");
    assert_eq!(run(true), micro);
}

/// Spark's golden cases (`oracle/cases/*`) of the stateful shapes continuous mode runs, the
/// queries as `golden.rs` writes them, run continuously: per step (an input file moved into the
/// watched directory, then everything processed), the rows the sink got equal the rows Spark's
/// batches of that step emitted. Epoch ids are not Spark's batch ids (empty epochs pass between
/// steps), so rows are compared per step.
mod spark {
    use flowgate::prelude::*;
    use flowgate_codegen_tests::run_case_continuously;

    #[derive(Record)]
    struct Line {
        value: Option<String>,
    }

    #[derive(Record)]
    struct WordCount {
        word: String,
        count: i64,
    }

    #[derive(Record)]
    struct WordEvent {
        ts: Option<Timestamp>,
        word: Option<String>,
    }

    #[derive(Record)]
    struct GuideWord {
        timestamp: Option<Timestamp>,
        word: Option<String>,
    }

    #[derive(Record)]
    struct WindowWordCount {
        window: Window,
        word: Option<String>,
        count: i64,
    }

    #[derive(Record)]
    struct Keyed {
        id: Option<String>,
        ts: Option<Timestamp>,
        payload: Option<String>,
    }

    stream_query! {
        query WordCountUpdate(lines: Line) -> WordCount, mode = update {
            lines.flat_map(word = split(value, " ")).group_by(word).agg(count() as count)
        }

        query TumblingUpdate(events: WordEvent) -> WindowWordCount, mode = update {
            events.with_watermark(ts, "10 minutes").group_by(window(ts, "10 minutes"), word).agg(count() as count)
        }

        query GuideLateData(words: GuideWord) -> WindowWordCount, mode = update {
            words
                .with_watermark(timestamp, "10 minutes")
                .group_by(window(timestamp, "10 minutes", "5 minutes"), word)
                .agg(count() as count)
        }

        query DedupById(events: Keyed) -> Keyed, mode = append {
            events.drop_duplicates(id)
        }

        query DedupByIdAndTime(events: Keyed) -> Keyed, mode = append {
            events.with_watermark(ts, "10 minutes").drop_duplicates(id, ts)
        }

        query DedupWithinWatermark(events: Keyed) -> Keyed, mode = append {
            events.with_watermark(ts, "10 minutes").drop_duplicates_within_watermark(id)
        }

        query WordCountComplete(lines: Line) -> WordCount, mode = complete {
            lines.flat_map(word = split(value, " ")).group_by(word).agg(count() as count)
        }

        query TopWords(lines: Line) -> WordCount, mode = complete {
            lines
                .flat_map(word = split(value, " "))
                .group_by(word)
                .agg(count() as count)
                .order_by(desc(count), word)
                .limit(3)
        }

        query TumblingAppend(events: WordEvent) -> WindowWordCount, mode = append {
            events.with_watermark(ts, "10 minutes").group_by(window(ts, "10 minutes"), word).agg(count() as count)
        }

        query TumblingComplete(events: WordEvent) -> WindowWordCount, mode = complete {
            events.with_watermark(ts, "10 minutes").group_by(window(ts, "10 minutes"), word).agg(count() as count)
        }

        query Sessions(clicks: Click) -> UserSession, mode = append {
            clicks
                .with_watermark(ts, "10 minutes")
                .group_by(session_window(ts, "5 minutes"), user)
                .agg(count() as n, min(ts) as first_ts, max(ts) as last_ts)
        }

        query TopSessions(clicks: Click) -> UserSession, mode = complete {
            clicks
                .group_by(session_window(ts, "5 minutes"), user)
                .agg(count() as n, min(ts) as first_ts, max(ts) as last_ts)
                .order_by(desc(n), first_ts)
                .limit(3)
        }

        query FirstOddIds(events: IdWord) -> IdWord, mode = append {
            events.filter(id.is_some_and(|i| i % 2 == 1)).limit(4)
        }

        query RunningTotalsQuery(events: Activity) -> Totals, mode = update {
            events.group_by(user).map_groups_with_state(running_totals)
        }

        query SessionAlerts(events: Activity) -> UserAlert, mode = append {
            events
                .with_watermark(ts, "10 seconds")
                .group_by(user)
                .flat_map_groups_with_state(session_alerts, timeout = event_time)
        }
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

    #[derive(Record)]
    struct IdWord {
        id: Option<i32>,
        word: Option<String>,
    }

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

    /// `running_totals` of `oracle/harness/group_state_functions.py` (as `golden.rs`).
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
        last: i64,
    }

    /// `session_alerts` of `group_state_functions.py` (as `golden.rs`): an alert per event with
    /// more than 2 clicks; the user's totals once the watermark passes 5 s after their last one.
    fn session_alerts(
        user: &Option<String>,
        rows: Vec<Activity>,
        state: &mut GroupState<AlertState>,
    ) -> Vec<UserAlert> {
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

    fn continuous() -> flowgate::engine::continuous::ContinuousTrigger {
        Trigger::continuous("5 milliseconds")
    }

    macro_rules! spark_case {
        ($test:ident, $case:literal, $query:ident, $input:ident) => {
            #[test]
            fn $test() {
                let staging = tempfile::tempdir().unwrap();
                let table = MemoryTable::new();
                let query = $query::builder()
                    .$input(Source::file(staging.path()).json())
                    .sink(Sink::memory(&table))
                    .shuffle_partitions(2)
                    .trigger(continuous())
                    .start()
                    .unwrap();
                run_case_continuously($case, staging.path(), &query, &table);
            }
        };
    }

    spark_case!(wordcount_update, "wordcount_update", WordCountUpdate, lines);
    spark_case!(window_tumbling_update, "window_tumbling_update", TumblingUpdate, events);
    spark_case!(guide_late_data_update, "guide_late_data_update", GuideLateData, words);
    spark_case!(dedup_no_watermark, "dedup_no_watermark", DedupById, events);
    spark_case!(dedup_with_watermark, "dedup_with_watermark", DedupByIdAndTime, events);
    spark_case!(dedup_within_watermark, "dedup_within_watermark", DedupWithinWatermark, events);
    spark_case!(wordcount_complete, "wordcount_complete", WordCountComplete, lines);
    spark_case!(wordcount_top3_complete, "wordcount_top3_complete", TopWords, lines);
    spark_case!(window_tumbling_append, "window_tumbling_append", TumblingAppend, events);
    spark_case!(window_tumbling_complete, "window_tumbling_complete", TumblingComplete, events);
    spark_case!(session_window_append, "session_window_append", Sessions, clicks);
    spark_case!(session_window_top3_complete, "session_window_top3_complete", TopSessions, clicks);
    spark_case!(limit_append, "limit_append", FirstOddIds, events);
    spark_case!(group_state_update_remove, "group_state_update_remove", RunningTotalsQuery, events);
    spark_case!(group_state_event_time_timeout, "group_state_event_time_timeout", SessionAlerts, events);
}
