//! Stateless projections: output columns that are unchanged input columns are passed through
//! as the input arrays (sliced per work unit), computed ones are appended row by row, borrowed
//! values (`&str`, `Option<&str>`) straight into the column. Same rows as building every
//! column row by row, whatever the path.

use std::sync::Arc;

use arrow_array::{Array, ArrayRef, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray};
use arrow_schema::{DataType, Field, Schema, TimeUnit};
use flowgate::engine::{BatchContext, PlanConfig, QuerySpec};
use flowgate::prelude::*;

#[derive(Record, Clone, Debug, PartialEq)]
struct Event {
    id: i64,
    name: Option<String>,
    url: String,
    at: Timestamp,
}

#[derive(Record, Debug, PartialEq)]
struct Renamed {
    key: i64,
    name: Option<String>,
    host: Option<String>,
    kind: String,
    at: Timestamp,
}

#[derive(Record, Debug, PartialEq)]
struct Shadowed {
    id: i64,
    url: String,
    first: String,
}

stream_query! {
    /// Pass-through (renamed, nullable, timestamp) beside borrowed computed columns.
    query Rename(events: Event) -> Renamed, mode = append {
        events.select(
            key = id,
            name,
            host = url.split('/').nth(2),
            kind = if id % 2 == 0 { "even" } else { "odd" },
            at,
        )
    }

    /// A with_column that replaces an input column: the output is computed, not passed.
    query Shadow(events: Event) -> Shadowed, mode = append {
        events
            .with_column(id = id * 10)
            .with_column(first = url)
            .select(id, url = first, first = url.split('/').next().unwrap_or(""))
    }

    /// After a filter every column is built row by row.
    query Filtered(events: Event) -> Renamed, mode = append {
        events
            .filter(id % 3 == 0)
            .select(key = id, name, host = url.split('/').nth(2), kind = "x", at)
    }
}

fn run(spec: QuerySpec, batches: Vec<RecordBatch>) -> Vec<RecordBatch> {
    let mut plan = (spec.make_plan)(&PlanConfig::with_partitions(2));
    plan.run_batch(&BatchContext::new(0, OutputMode::Append), &[batches]).unwrap()
}

fn event(i: i64) -> Event {
    Event {
        id: i,
        name: (i % 5 != 0).then(|| format!("n{i}")),
        url: format!("https://h{}/p/{i}", i % 7),
        at: Timestamp(1_700_000_000_000_000 + i),
    }
}

fn rows<R: Record>(out: &[RecordBatch]) -> Vec<R> {
    out.iter().flat_map(|b| R::from_batch(b).unwrap()).collect()
}

/// More rows than one work unit, so that passed columns are slices at an offset.
const ROWS: i64 = flowgate::exec::CHUNK_ROWS as i64 * 2 + 17;

#[test]
fn passed_and_computed_columns_give_the_rows_of_the_row_by_row_path() {
    let input: Vec<Event> = (0..ROWS).map(event).collect();
    let out = run(Rename::spec(), vec![Event::to_batch(input.clone()).unwrap()]);
    assert!(out.iter().all(|b| b.schema() == Renamed::schema()));
    let got: Vec<Renamed> = rows(&out);
    let want: Vec<Renamed> = input
        .iter()
        .map(|e| Renamed {
            key: e.id,
            name: e.name.clone(),
            host: e.url.split('/').nth(2).map(String::from),
            kind: if e.id % 2 == 0 { "even" } else { "odd" }.into(),
            at: e.at,
        })
        .collect();
    assert_eq!(got, want);
    // The unit boundaries are where the input was cut: passed columns are its slices.
    assert!(out.len() > 1);
}

#[test]
fn a_replaced_column_is_computed_and_a_renamed_one_passed() {
    let input: Vec<Event> = (0..100).map(event).collect();
    let got: Vec<Shadowed> = rows(&run(Shadow::spec(), vec![Event::to_batch(input.clone()).unwrap()]));
    let want: Vec<Shadowed> =
        input.iter().map(|e| Shadowed { id: e.id * 10, url: e.url.clone(), first: "https:".into() }).collect();
    assert_eq!(got, want);
}

#[test]
fn after_a_filter_columns_are_built() {
    let input: Vec<Event> = (0..ROWS).map(event).collect();
    let got: Vec<Renamed> = rows(&run(Filtered::spec(), vec![Event::to_batch(input.clone()).unwrap()]));
    let want: Vec<Renamed> = input
        .iter()
        .filter(|e| e.id % 3 == 0)
        .map(|e| Renamed {
            key: e.id,
            name: e.name.clone(),
            host: e.url.split('/').nth(2).map(String::from),
            kind: "x".into(),
            at: e.at,
        })
        .collect();
    assert_eq!(got, want);
}

#[test]
fn a_passed_timestamp_with_another_zone_label_gets_the_output_schema() {
    // Sources may label timestamps differently; the values are UTC microseconds either way.
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("name", DataType::Utf8, true),
        Field::new("url", DataType::Utf8, false),
        Field::new("at", DataType::Timestamp(TimeUnit::Microsecond, Some("+02:00".into())), false),
    ]));
    let cols: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from(vec![1, 2])),
        Arc::new(StringArray::from(vec![None, Some("b")])),
        Arc::new(StringArray::from(vec!["a/b/c", "d"])),
        Arc::new(TimestampMicrosecondArray::from(vec![10, 20]).with_timezone("+02:00")),
    ];
    let out = run(Rename::spec(), vec![RecordBatch::try_new(schema, cols).unwrap()]);
    assert_eq!(out[0].schema(), Renamed::schema());
    let got: Vec<Renamed> = rows(&out);
    assert_eq!(got[0].at, Timestamp(10));
    assert_eq!(got[0].name, None);
    assert_eq!(got[1].host, None);
    assert!(out[0].column(1).is_null(0));
}

#[test]
fn a_plan_that_reads_a_column_it_did_not_ask_for_fails_loudly() {
    // Simulates a planner bug: `input_reads` leaves out `url`, which `Rename` reads. The file
    // source then fills `url` with placeholders, and the query must stop, not compute on them.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("1.json"),
        "{\"id\": 1, \"name\": \"a\", \"url\": \"https://x/y\", \"at\": \"2024-01-01T00:00:00Z\"}\n",
    )
    .unwrap();
    let mut spec = Rename::spec();
    spec.input_reads = vec![Some(&["id", "name", "at"])];
    let mut builder = flowgate::QueryBuilder::new(spec);
    builder.set_source(0, Source::<Event>::from(Source::<Event>::file(dir.path()).json()));
    let table = MemoryTable::new();
    let query = builder.sink(Sink::memory(&table)).start().unwrap();
    let err = query.process_all_available().unwrap_err().to_string();
    assert!(err.contains("`url`") && err.contains("input_reads"), "{err}");
    assert!(table.history().is_empty(), "nothing computed on placeholders reached the sink");
}
