//! The micro-batch engine: triggers, output modes, foreach_batch ids, progress, stop, and
//! clear errors for a bad setup.

use std::sync::{Arc, Mutex};
use std::time::{Duration as StdDuration, Instant};

use flowgate::prelude::*;

#[derive(Record, Clone, Debug, PartialEq)]
struct Sale {
    shop: String,
    amount: Option<f64>,
    units: i64,
}

#[derive(Record, Debug, PartialEq)]
struct ShopStats {
    shop: String,
    n: i64,
    units: i64,
    avg_amount: Option<f64>,
    min_amount: Option<f64>,
    max_units: i64,
}

#[derive(Record, Debug, PartialEq)]
struct BigShop {
    shop: String,
    units: i64,
}

#[derive(Record, Debug, PartialEq)]
struct Upper {
    shop: String,
    doubled: i64,
}

stream_query! {
    query Stats(sales: Sale) -> ShopStats, mode = update {
        sales
            .group_by(shop)
            .agg(count() as n, sum(units) as units, avg(amount) as avg_amount, min(amount) as min_amount, max(units) as max_units)
    }

    /// Post-aggregation filter (Spark's HAVING) in complete mode.
    query BigShops(sales: Sale) -> BigShop, mode = complete {
        sales
            .group_by(shop)
            .agg(sum(units) as units)
            .filter(units >= 10)
    }

    /// Stateless: filter, then computed columns.
    query Doubled(sales: Sale) -> Upper, mode = append {
        sales
            .filter(units > 0)
            .with_column(doubled = units * 2)
            .select(shop = shop.to_uppercase(), doubled)
    }
}

fn sale(shop: &str, amount: Option<f64>, units: i64) -> Sale {
    Sale { shop: shop.into(), amount, units }
}

#[test]
fn update_mode_emits_changed_groups_with_spark_null_semantics() {
    let input = MemoryStream::<Sale>::new();
    let table = MemoryTable::new();
    let q = Stats::builder().sales(Source::memory(&input)).sink(Sink::memory(&table)).start().unwrap();
    input.add(vec![sale("a", Some(2.0), 1), sale("a", None, 3), sale("b", None, 5)]);
    q.process_all_available().unwrap();
    input.add(vec![sale("b", Some(1.5), 1)]);
    q.process_all_available().unwrap();
    q.stop().unwrap();
    let history = table.history();
    assert_eq!(history.len(), 2);
    let mut first: Vec<ShopStats> = ShopStats::from_batch(&history[0].1).unwrap();
    first.sort_by(|x, y| x.shop.cmp(&y.shop));
    assert_eq!(
        first,
        vec![
            ShopStats { shop: "a".into(), n: 2, units: 4, avg_amount: Some(2.0), min_amount: Some(2.0), max_units: 3 },
            ShopStats { shop: "b".into(), n: 1, units: 5, avg_amount: None, min_amount: None, max_units: 5 },
        ]
    );
    let second = ShopStats::from_batch(&history[1].1).unwrap();
    assert_eq!(
        second,
        vec![ShopStats {
            shop: "b".into(),
            n: 2,
            units: 6,
            avg_amount: Some(1.5),
            min_amount: Some(1.5),
            max_units: 5
        }],
        "update mode emits only the group that changed"
    );
    let p = q.last_progress().unwrap();
    assert_eq!(p.batch_id, 1);
    assert_eq!(p.num_input_rows, 1);
    assert_eq!(p.state_operators[0].num_rows_total, 2);
    assert_eq!(p.state_operators[0].num_rows_updated, 1);
    for phase in ["latestOffset", "getBatch", "addBatch", "commitOffsets", "triggerExecution"] {
        assert!(p.duration_ms.contains_key(phase), "progress has {phase}");
    }
    assert_eq!(p.json()["stateOperators"][0]["numRowsTotal"], 2);
}

#[test]
fn complete_mode_with_a_post_aggregation_filter() {
    let input = MemoryStream::<Sale>::new();
    let table = MemoryTable::new();
    let q = BigShops::builder().sales(Source::memory(&input)).sink(Sink::memory(&table)).start().unwrap();
    input.add(vec![sale("a", None, 6), sale("b", None, 20)]);
    q.process_all_available().unwrap();
    assert_eq!(table.rows::<BigShop>().unwrap(), vec![BigShop { shop: "b".into(), units: 20 }]);
    input.add(vec![sale("a", None, 6)]);
    q.process_all_available().unwrap();
    let mut rows: Vec<BigShop> = table.rows().unwrap();
    rows.sort_by(|x, y| x.shop.cmp(&y.shop));
    assert_eq!(rows, vec![BigShop { shop: "a".into(), units: 12 }, BigShop { shop: "b".into(), units: 20 }]);
    q.stop().unwrap();
}

#[test]
fn stateless_query_in_append_mode_over_many_rows_in_parallel() {
    let input = MemoryStream::<Sale>::new();
    let table = MemoryTable::new();
    let q = Doubled::builder().sales(Source::memory(&input)).sink(Sink::memory(&table)).start().unwrap();
    // Enough rows for several parallel work units; order must be kept.
    let rows: Vec<Sale> = (0..300_000).map(|i| sale(if i % 2 == 0 { "x" } else { "y" }, None, i % 7)).collect();
    input.add(rows.clone());
    q.process_all_available().unwrap();
    q.stop().unwrap();
    let out: Vec<Upper> = table.rows().unwrap();
    let want: Vec<Upper> = rows
        .iter()
        .filter(|s| s.units > 0)
        .map(|s| Upper { shop: s.shop.to_uppercase(), doubled: s.units * 2 })
        .collect();
    assert_eq!(out.len(), want.len());
    assert!(out == want, "rows differ (in order)");
}

#[test]
fn foreach_batch_gets_increasing_batch_ids_and_once_stops() {
    let input = MemoryStream::<Sale>::new();
    input.add(vec![sale("a", None, 1)]);
    input.add(vec![sale("a", None, 2)]);
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s2 = seen.clone();
    let q = Stats::builder()
        .sales(Source::memory(&input))
        .sink(Sink::foreach_batch(move |id, batch| {
            s2.lock().unwrap().push((id, batch.num_rows()));
            Ok(())
        }))
        .trigger(Trigger::once())
        .start()
        .unwrap();
    q.await_termination().unwrap();
    assert_eq!(*seen.lock().unwrap(), vec![(0, 1)], "once: one batch with everything available");
    assert!(!q.is_active());
}

#[test]
fn processing_time_trigger_runs_no_batch_without_data() {
    let input = MemoryStream::<Sale>::new();
    let table = MemoryTable::new();
    let q = Stats::builder()
        .sales(Source::memory(&input))
        .sink(Sink::memory(&table))
        .trigger(Trigger::processing_time("100 milliseconds"))
        .start()
        .unwrap();
    input.add(vec![sale("a", None, 1)]);
    let deadline = Instant::now() + StdDuration::from_secs(10);
    while table.batch_count() == 0 && Instant::now() < deadline {
        std::thread::sleep(StdDuration::from_millis(20));
    }
    std::thread::sleep(StdDuration::from_millis(400));
    q.stop().unwrap();
    assert_eq!(table.batch_count(), 1, "intervals without new data run no batch");
}

#[test]
fn processing_time_trigger_collects_an_interval_of_input_into_one_batch() {
    let input = MemoryStream::<Sale>::new();
    let table = MemoryTable::new();
    let q = Stats::builder()
        .sales(Source::memory(&input))
        .sink(Sink::memory(&table))
        .trigger(Trigger::processing_time("1 second"))
        .start()
        .unwrap();
    input.add(vec![sale("a", None, 1)]);
    let deadline = Instant::now() + StdDuration::from_secs(10);
    while table.batch_count() == 0 && Instant::now() < deadline {
        std::thread::sleep(StdDuration::from_millis(5));
    }
    // Two additions 100 ms apart, right after a batch: the default trigger would run a batch
    // for each; a 1-second interval takes both in the next batch.
    input.add(vec![sale("b", None, 1)]);
    std::thread::sleep(StdDuration::from_millis(100));
    input.add(vec![sale("c", None, 1)]);
    while table.batch_count() < 2 && Instant::now() < deadline {
        std::thread::sleep(StdDuration::from_millis(5));
    }
    q.stop().unwrap();
    let p = q.recent_progress();
    assert_eq!(p.len(), 2, "two batches");
    assert_eq!(p[1].num_input_rows, 2, "one batch for the interval's input");
}

#[test]
fn a_failing_foreach_batch_stops_the_query_with_its_error() {
    let input = MemoryStream::<Sale>::new();
    input.add(vec![sale("a", None, 1)]);
    let q = Stats::builder()
        .sales(Source::memory(&input))
        .sink(Sink::foreach_batch(|_, _| Err(flowgate::Error::User("disk full".into()))))
        .start()
        .unwrap();
    let err = q.await_termination().unwrap_err().to_string();
    assert!(err.contains("disk full"), "{err}");
}

#[test]
fn bad_setups_are_clear_errors() {
    let err = Stats::builder().sink(Sink::memory(&MemoryTable::new())).start().unwrap_err().to_string();
    assert!(err.contains("no source for input `sales`"), "{err}");
    let err = Stats::builder().sales(Source::memory(&MemoryStream::new())).start().unwrap_err().to_string();
    assert!(err.contains("no sink"), "{err}");
    let err = Stats::builder()
        .sales(Source::memory(&MemoryStream::new()))
        .sink(Sink::memory(&MemoryTable::new()))
        .trigger(Trigger::processing_time("1 secnd"))
        .start()
        .unwrap_err()
        .to_string();
    assert!(err.contains("secnd"), "{err}");
    // A source whose schema does not fit the record.
    let err = Stats::builder()
        .sales(Source::socket("127.0.0.1", 9))
        .sink(Sink::memory(&MemoryTable::new()))
        .start()
        .unwrap_err()
        .to_string();
    assert!(err.contains("no column `shop`"), "{err}");
}

/// A source with one row, created at a fixed time that the source announces through
/// `next_data_due`; it counts how often the engine asks for its latest offset.
struct DueSource {
    due: Instant,
    polls: Arc<Mutex<u32>>,
}

impl flowgate::source::SourceImpl for DueSource {
    fn description(&self) -> String {
        "DueSource".into()
    }
    fn schema(&self) -> flowgate::__private::arrow_schema::SchemaRef {
        Sale::schema()
    }
    fn latest_offset(
        &mut self,
        _start: Option<&flowgate::source::Offset>,
        _limit: flowgate::source::ReadLimit,
    ) -> flowgate::Result<Option<flowgate::source::Offset>> {
        *self.polls.lock().unwrap() += 1;
        Ok((Instant::now() >= self.due).then(|| flowgate::source::Offset::number(1)))
    }
    fn get_batch(
        &mut self,
        _start: Option<&flowgate::source::Offset>,
        _end: &flowgate::source::Offset,
    ) -> flowgate::Result<Vec<flowgate::__private::arrow_array::RecordBatch>> {
        Ok(vec![Sale::to_batch([sale("a", None, 1)])?])
    }
    fn next_data_due(&self) -> Option<Instant> {
        (Instant::now() < self.due).then_some(self.due)
    }
}

#[test]
fn an_idle_default_trigger_sleeps_until_a_source_says_data_is_due() {
    let wait = StdDuration::from_millis(300);
    let due = Instant::now() + wait;
    let polls = Arc::new(Mutex::new(0));
    let arrived = Arc::new(Mutex::new(None));
    let a2 = arrived.clone();
    let q = Doubled::builder()
        .sales(Source::from_impl(Box::new(DueSource { due, polls: polls.clone() })))
        .sink(Sink::foreach_batch(move |_, _| {
            a2.lock().unwrap().get_or_insert(Instant::now());
            Ok(())
        }))
        .start()
        .unwrap();
    let deadline = Instant::now() + StdDuration::from_secs(10);
    while arrived.lock().unwrap().is_none() && Instant::now() < deadline {
        std::thread::sleep(StdDuration::from_millis(5));
    }
    q.stop().unwrap();
    let at = arrived.lock().unwrap().expect("the row arrives");
    assert!(at >= due, "not before it is due");
    // Polling every POLL_INTERVAL would have asked about 30 times before the row was due; the
    // engine asked once, slept until `due`, and asked again (a few more after the batch).
    let polls = *polls.lock().unwrap();
    assert!(polls <= 6, "the engine polled {polls} times");
}

#[derive(Record)]
struct Tick {
    timestamp: Timestamp,
    value: i64,
}

stream_query! {
    query Ticks(ticks: Tick) -> Tick, mode = append {
        ticks.filter(value >= 0)
    }
}

#[test]
fn rate_source_rows_reach_the_sink_soon_after_their_timestamp() {
    // A row every 50 ms. Before, a row existed only 1 / rowsPerSecond after its timestamp (and
    // an idle engine looked only every 10 ms): 50 ms of latency per row, built in.
    let lags = Arc::new(Mutex::new(Vec::new()));
    let l2 = lags.clone();
    let q = Ticks::builder()
        .ticks(Source::rate(20))
        .sink(Sink::foreach_batch(move |_, batch| {
            use flowgate::__private::arrow_array::cast::AsArray;
            use flowgate::__private::arrow_array::types::TimestampMicrosecondType;
            let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_micros() as i64;
            let ts = batch.column(0).as_primitive::<TimestampMicrosecondType>();
            l2.lock().unwrap().extend(ts.values().iter().map(|t| now - t));
            Ok(())
        }))
        .start()
        .unwrap();
    std::thread::sleep(StdDuration::from_millis(1_000));
    q.stop().unwrap();
    let mut lags = lags.lock().unwrap().clone();
    assert!(lags.len() >= 10, "{} rows", lags.len());
    lags.sort_unstable();
    let median = lags[lags.len() / 2];
    assert!(lags[0] >= -1_000, "a row reached the sink before its timestamp: {lags:?}");
    assert!(median < 25_000, "median lag {median} µs: {lags:?}");
}
