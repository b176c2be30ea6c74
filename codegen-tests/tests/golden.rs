//! The Spark golden cases (`oracle/cases/*`), each written as a flowgate query: inputs and
//! Spark's per-batch output come from the case files; nothing is copied into this file.

use flowgate::prelude::*;
use flowgate_codegen_tests::{run_case, InputRows};

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
    ($case:literal, $query:ident, $input:ident, $rows:expr) => {{
        let staging = tempfile::tempdir().unwrap();
        let table = MemoryTable::new();
        let query = $query::builder()
            .$input(Source::file(staging.path()).json())
            .sink(Sink::memory(&table))
            .shuffle_partitions(2)
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
