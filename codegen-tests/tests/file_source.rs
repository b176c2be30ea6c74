//! The file source under a real query: each file is read once, in arrival order, malformed
//! lines are handled per Spark's modes, `max_files_per_trigger` splits batches, and Parquet
//! files are read by column name.

use std::path::Path;

use flowgate::prelude::*;

#[derive(Record, Debug, PartialEq)]
struct Reading {
    sensor: Option<String>,
    value: Option<i64>,
    _corrupt_record: Option<String>,
}

#[derive(Record, Debug, PartialEq)]
struct Strict {
    sensor: String,
    value: i64,
}

/// What a Parquet-writing query puts in its files: `Strict`'s columns in another order, and
/// one more.
#[derive(Record, Debug, PartialEq)]
struct Measured {
    value: i64,
    note: String,
    sensor: String,
}

#[derive(Record, Debug, PartialEq)]
struct Total {
    sensor: String,
    total: i64,
    n: i64,
}

stream_query! {
    /// Everything the source gives, malformed rows included.
    query AllReadings(readings: Reading) -> Reading, mode = append {
        readings.filter(true)
    }

    query StrictReadings(readings: Strict) -> Strict, mode = append {
        readings
    }

    query Measurements(measured: Measured) -> Measured, mode = append {
        measured
    }

    query Totals(readings: Strict) -> Total, mode = complete {
        readings.group_by(sensor).agg(sum(value) as total, count() as n)
    }

    /// Reads `sensor` and `value` of `Wide`, never `note`.
    query WideTotals(readings: Wide) -> Total, mode = complete {
        readings.group_by(sensor).agg(sum(value) as total, count() as n)
    }

    /// Reads `note` too.
    query Notes(readings: Wide) -> Strict, mode = append {
        readings.select(sensor = note, value)
    }
}

/// `Strict` with one more non-nullable column.
#[derive(Record, Debug, PartialEq)]
struct Wide {
    sensor: String,
    note: String,
    value: i64,
}

/// The `Total` rows of `table`, by sensor.
fn totals_by_sensor(table: &MemoryTable) -> Vec<Total> {
    let mut rows: Vec<Total> = table.rows().unwrap();
    rows.sort_by(|a, b| a.sensor.cmp(&b.sensor));
    rows
}

fn write(dir: &Path, name: &str, text: &str) {
    let tmp = dir.join(format!(".{name}.tmp"));
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, dir.join(name)).unwrap();
}

const GOOD_AND_BAD: &str =
    "{\"sensor\": \"a\", \"value\": 1}\n{\"sensor\": \"b\", \"value\": oops}\n{\"sensor\": \"c\", \"value\": 3}\n";

#[test]
fn permissive_keeps_bad_lines_as_null_rows_with_their_text() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "1.json", GOOD_AND_BAD);
    let table = MemoryTable::new();
    let q = AllReadings::builder()
        .readings(Source::file(dir.path()).json().mode(ParseMode::Permissive))
        .sink(Sink::memory(&table))
        .trigger(Trigger::available_now())
        .start()
        .unwrap();
    q.await_termination().unwrap();
    let rows: Vec<Reading> = table.rows().unwrap();
    assert_eq!(rows.len(), 3);
    assert_eq!(rows[0], Reading { sensor: Some("a".into()), value: Some(1), _corrupt_record: None });
    assert_eq!(rows[1].sensor, None);
    assert_eq!(rows[1].value, None);
    assert_eq!(rows[1]._corrupt_record.as_deref(), Some("{\"sensor\": \"b\", \"value\": oops}"));
}

#[test]
fn drop_malformed_drops_only_the_bad_lines() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "1.json", GOOD_AND_BAD);
    let table = MemoryTable::new();
    let q = StrictReadings::builder()
        .readings(Source::file(dir.path()).json().mode(ParseMode::DropMalformed))
        .sink(Sink::memory(&table))
        .trigger(Trigger::available_now())
        .start()
        .unwrap();
    q.await_termination().unwrap();
    let rows: Vec<Strict> = table.rows().unwrap();
    assert_eq!(rows, vec![Strict { sensor: "a".into(), value: 1 }, Strict { sensor: "c".into(), value: 3 }]);
}

#[test]
fn fail_fast_stops_the_query_with_the_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "1.json", GOOD_AND_BAD);
    let table = MemoryTable::new();
    let q = StrictReadings::builder()
        .readings(Source::file(dir.path()).json().mode(ParseMode::FailFast))
        .sink(Sink::memory(&table))
        .trigger(Trigger::available_now())
        .start()
        .unwrap();
    let err = q.await_termination().unwrap_err().to_string();
    assert!(err.contains("1.json") && err.contains('2'), "error names file and line: {err}");
    assert_eq!(table.batch_count(), 0, "nothing reached the sink");
    assert!(q.exception().is_some());
}

/// The compiler tells the source which columns the plan reads; the file source decodes only
/// those, as Spark's pruned JSON reading does: a bad value in a column the query never reads
/// does not make its line malformed, even under FAILFAST.
#[test]
fn only_the_columns_a_query_reads_are_decoded() {
    assert_eq!(WideTotals::spec().input_reads, [Some(&["sensor", "value"][..])]);
    assert_eq!(AllReadings::spec().input_reads, [None], "a filter-only query hands on whole rows");
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "1.json",
        "{\"sensor\": \"a\", \"note\": \"x\", \"value\": 1}\n\
         {\"sensor\": \"a\", \"note\": [1, 2], \"value\": 2}\n\
         {\"sensor\": \"b\", \"value\": 3, \"note\": \"z\"}\n",
    );
    let table = MemoryTable::new();
    let q = WideTotals::builder()
        .readings(Source::file(dir.path()).json().mode(ParseMode::FailFast))
        .sink(Sink::memory(&table))
        .trigger(Trigger::available_now())
        .start()
        .unwrap();
    q.await_termination().unwrap();
    let rows = totals_by_sensor(&table);
    assert_eq!(rows, [Total { sensor: "a".into(), total: 3, n: 2 }, Total { sensor: "b".into(), total: 3, n: 1 }]);

    // A query that reads `note` meets the bad value.
    let table = MemoryTable::new();
    let q = Notes::builder()
        .readings(Source::file(dir.path()).json().mode(ParseMode::FailFast))
        .sink(Sink::memory(&table))
        .trigger(Trigger::available_now())
        .start()
        .unwrap();
    let err = q.await_termination().unwrap_err().to_string();
    assert!(err.contains("1.json") && err.contains("line 2"), "{err}");
}

#[test]
fn files_are_read_once_each_across_triggers() {
    let dir = tempfile::tempdir().unwrap();
    let table = MemoryTable::new();
    let q = Totals::builder().readings(Source::file(dir.path()).json()).sink(Sink::memory(&table)).start().unwrap();
    write(dir.path(), "1.json", "{\"sensor\": \"a\", \"value\": 1}\n");
    q.process_all_available().unwrap();
    write(dir.path(), "2.json", "{\"sensor\": \"a\", \"value\": 2}\n{\"sensor\": \"b\", \"value\": 5}\n");
    q.process_all_available().unwrap();
    // Nothing new: no more batches however long we wait.
    q.process_all_available().unwrap();
    q.stop().unwrap();
    assert_eq!(table.batch_count(), 2);
    let rows = totals_by_sensor(&table);
    assert_eq!(rows, vec![Total { sensor: "a".into(), total: 3, n: 2 }, Total { sensor: "b".into(), total: 5, n: 1 }]);
}

#[test]
fn max_files_per_trigger_splits_available_now_into_batches() {
    let dir = tempfile::tempdir().unwrap();
    for i in 0..5 {
        write(dir.path(), &format!("{i}.json"), &format!("{{\"sensor\": \"s\", \"value\": {i}}}\n"));
    }
    let table = MemoryTable::new();
    let q = Totals::builder()
        .readings(Source::file(dir.path()).json().max_files_per_trigger(2))
        .sink(Sink::memory(&table))
        .trigger(Trigger::available_now())
        .start()
        .unwrap();
    q.await_termination().unwrap();
    assert_eq!(table.batch_count(), 3, "5 files, 2 per batch");
    let rows: Vec<Total> = table.rows().unwrap();
    assert_eq!(rows, vec![Total { sensor: "s".into(), total: 10, n: 5 }]);
}

#[test]
fn csv_files_with_a_header() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "1.csv", "sensor,value\na,4\nb,6\na,1\n");
    let table = MemoryTable::new();
    let q = Totals::builder()
        .readings(Source::file(dir.path()).csv())
        .sink(Sink::memory(&table))
        .trigger(Trigger::once())
        .start()
        .unwrap();
    q.await_termination().unwrap();
    let rows = totals_by_sensor(&table);
    assert_eq!(rows, vec![Total { sensor: "a".into(), total: 5, n: 2 }, Total { sensor: "b".into(), total: 6, n: 1 }]);
}

#[test]
fn parquet_files_written_by_a_query_are_read_by_column_name() {
    // One query writes Parquet files (one per batch) with the file sink ...
    let dir = tempfile::tempdir().unwrap();
    let input = MemoryStream::<Measured>::new();
    let writer = Measurements::builder()
        .measured(Source::memory(&input))
        .sink(Sink::file(dir.path(), SinkFormat::Parquet))
        .start()
        .unwrap();
    let m = |sensor: &str, value: i64| Measured { value, note: format!("{sensor}={value}"), sensor: sensor.into() };
    input.add(vec![m("a", 1), m("b", 5)]);
    writer.process_all_available().unwrap();
    input.add(vec![m("a", 2), m("a", 4)]);
    writer.process_all_available().unwrap();
    writer.stop().unwrap();
    let parquet_files = std::fs::read_dir(dir.path())
        .unwrap()
        .filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().ends_with(".parquet"))
        .count();
    assert_eq!(parquet_files, 2);

    // ... another reads them as rows of `Strict`: `sensor` and `value` by name, `note` ignored.
    let table = MemoryTable::new();
    let reader = Totals::builder()
        .readings(Source::file(dir.path()).parquet())
        .sink(Sink::memory(&table))
        .trigger(Trigger::available_now())
        .start()
        .unwrap();
    reader.await_termination().unwrap();
    let rows = totals_by_sensor(&table);
    assert_eq!(rows, vec![Total { sensor: "a".into(), total: 7, n: 3 }, Total { sensor: "b".into(), total: 5, n: 1 }]);
}
