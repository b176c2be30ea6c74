//! The batch API: the same `stream_query!` run once over bounded inputs (`Q::batch()`), as
//! Spark runs a query over `spark.read`. Its result equals a streaming run's complete result
//! for aggregations (whatever the declared mode), the union of a streaming run's append
//! output for stateless queries, and Spark's batch result on a golden case.

#![allow(non_snake_case)] // the join case's columns are Spark's camelCase names

use std::path::Path;

use flowgate::prelude::*;
use flowgate_codegen_tests::{canonical, expected, input_files, rows_as_json};

#[derive(Record, Clone, Debug, PartialEq)]
struct WordEvent {
    ts: Option<Timestamp>,
    word: Option<String>,
}

#[derive(Record, Clone, Debug, PartialEq)]
struct WindowWordCount {
    window: Window,
    word: Option<String>,
    count: i64,
}

#[derive(Record, Clone, Debug, PartialEq)]
struct Word {
    word: String,
}

#[derive(Record, Clone, Debug, PartialEq)]
struct WordCount {
    word: Option<String>,
    count: i64,
}

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

stream_query! {
    /// Every impression with its clicks within the hour, or none.
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
}

stream_query! {
    /// The golden case's query: a 10-minute tumbling count per word with a watermark.
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

    /// Complete mode never drops a late row: its last result is the whole input's.
    query TumblingComplete(events: WordEvent) -> WindowWordCount, mode = complete {
        events
            .group_by(window(ts, "10 minutes"), word)
            .agg(count() as count)
    }

    /// A stateless query: a filter and a projection.
    query Words(events: WordEvent) -> Word, mode = append {
        events.filter(word.is_some()).select(word = word.unwrap_or("").to_uppercase())
    }

    query FirstOfEachWord(events: WordEvent) -> WordEvent, mode = append {
        events.drop_duplicates(word)
    }

    query Counts(events: WordEvent) -> WordCount, mode = complete {
        events.group_by(word).agg(count() as count)
    }
}

/// A directory holding every input file of `case`.
fn all_inputs(case: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for f in input_files(case) {
        std::fs::copy(&f, dir.path().join(f.file_name().unwrap())).unwrap();
    }
    dir
}

fn json(batches: &[arrow_array::RecordBatch]) -> Vec<serde_json::Value> {
    canonical(batches.iter().flat_map(rows_as_json).collect())
}

fn files(dir: &Path) -> Source<WordEvent> {
    Source::file(dir).json().into()
}

/// Runs `builder` over `dir` one file per micro-batch until every file is read; the memory
/// table holds every batch's output.
fn stream_all(start: impl FnOnce(Source<WordEvent>, &MemoryTable) -> StreamingQuery, dir: &Path) -> MemoryTable {
    let table = MemoryTable::new();
    let q = start(Source::file(dir).json().max_files_per_trigger(1).into(), &table);
    q.await_termination().unwrap();
    assert!(table.batch_count() > 1, "the streaming run took several batches");
    table
}

#[test]
fn a_batch_run_equals_spark_batch_on_the_golden_case() {
    let dir = all_inputs("batch_window_count");
    let out = TumblingAppend::batch().events(files(dir.path())).run_batches().unwrap();
    let spark = expected("batch_window_count");
    assert_eq!(spark.len(), 1, "Spark ran one batch query");
    assert_eq!(json(&out), canonical(spark[0].rows.clone()));
}

/// A directory holding every input file of one source of a several-source case.
fn all_inputs_of(case: &str, source: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let from = flowgate_codegen_tests::cases_dir().join(case).join("input").join(source);
    for f in std::fs::read_dir(from).unwrap() {
        let f = f.unwrap().path();
        std::fs::copy(&f, dir.path().join(f.file_name().unwrap())).unwrap();
    }
    dir
}

/// A stream-stream outer join in batch: late rows joined, every unmatched row padded (the
/// end-of-input pass evicts both sides).
#[test]
fn an_outer_join_in_batch_equals_spark_batch() {
    let (imps, clicks) =
        (all_inputs_of("batch_left_outer_join", "impressions"), all_inputs_of("batch_left_outer_join", "clicks"));
    let out = AdClicksLeft::batch()
        .impressions(Source::file(imps.path()).json())
        .clicks(Source::file(clicks.path()).json())
        .run_batches()
        .unwrap();
    let spark = expected("batch_left_outer_join");
    assert_eq!(json(&out), canonical(spark[0].rows.clone()));
}

#[test]
fn an_aggregation_in_batch_is_the_streaming_complete_result_in_every_mode() {
    let dir = all_inputs("batch_window_count");
    let table = stream_all(
        |src, t| {
            TumblingComplete::builder()
                .events(src)
                .sink(Sink::memory(t))
                .trigger(Trigger::available_now())
                .start()
                .unwrap()
        },
        dir.path(),
    );
    let (_, last) = table.history().last().cloned().unwrap();
    let streaming = json(&[last]);
    assert_eq!(json(&TumblingComplete::batch().events(files(dir.path())).run_batches().unwrap()), streaming);
    // Append mode emits each window once the watermark passes it: the batch run's
    // end-of-input pass closes them all; nothing is dropped as late in a batch.
    assert_eq!(json(&TumblingAppend::batch().events(files(dir.path())).run_batches().unwrap()), streaming);
    // Update mode: every group once, with its final count.
    assert_eq!(json(&TumblingUpdate::batch().events(files(dir.path())).run_batches().unwrap()), streaming);
}

#[test]
fn a_stateless_query_in_batch_is_the_union_of_its_streaming_output() {
    let dir = all_inputs("batch_window_count");
    let table = stream_all(
        |src, t| Words::builder().events(src).sink(Sink::memory(t)).trigger(Trigger::available_now()).start().unwrap(),
        dir.path(),
    );
    let streaming: Vec<Word> = table.rows().unwrap();
    let mut batch = Words::batch().events(files(dir.path())).run().unwrap();
    let mut streaming = streaming;
    streaming.sort_by(|a, b| a.word.cmp(&b.word));
    batch.sort_by(|a, b| a.word.cmp(&b.word));
    assert_eq!(batch.len(), 12);
    assert_eq!(batch, streaming);
}

#[test]
fn a_deduplication_in_batch_keeps_the_first_row_per_key() {
    let events = MemoryStream::<WordEvent>::new();
    let row = |w: Option<&str>, s: i64| WordEvent { ts: Some(Timestamp(s * 1_000_000)), word: w.map(str::to_string) };
    events.add(vec![row(Some("a"), 1), row(Some("b"), 2), row(Some("a"), 3), row(None, 4), row(None, 5)]);
    let mut out = FirstOfEachWord::batch().events(Source::memory(&events)).run().unwrap();
    out.sort_by_key(|e| e.ts);
    assert_eq!(out, [row(Some("a"), 1), row(Some("b"), 2), row(None, 4)]);
}

#[test]
fn a_batch_run_writes_its_result_to_a_sink_once() {
    let dir = all_inputs("batch_window_count");
    let table = MemoryTable::new();
    let n = Counts::batch().events(files(dir.path())).write(Sink::memory(&table)).unwrap();
    let history = table.history();
    assert_eq!(history.len(), 1);
    assert_eq!(history[0].0, 0, "batch 0");
    assert_eq!(history[0].1.num_rows() as u64, n);
    let mut rows: Vec<WordCount> = table.rows().unwrap();
    rows.sort_by(|a, b| a.word.cmp(&b.word));
    assert_eq!(rows.iter().map(|r| r.count).sum::<i64>(), 13);
    assert_eq!(rows[0], WordCount { word: None, count: 1 });
}

#[test]
fn a_batch_run_without_a_source_names_the_missing_input() {
    let err = Counts::batch().run().unwrap_err().to_string();
    assert!(err.contains("no source for input `events`"), "{err}");
    assert!(err.contains("Counts::batch()"), "{err}");
}
