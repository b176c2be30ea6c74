//! Prometheus metrics scraped over HTTP from real queries: the numbers move with the data
//! (input rows, batches, state rows, watermark and its lag, rows dropped as late, the file
//! source's backlog, batch durations by phase).

use std::net::SocketAddr;
use std::path::Path;

use flowgate::monitor::http;
use flowgate::prelude::*;

#[derive(Record)]
struct Reading {
    sensor: String,
    ts: Timestamp,
}

#[derive(Record, Debug)]
struct WindowCount {
    window: Window,
    sensor: String,
    n: i64,
}

stream_query! {
    query Counts(readings: Reading) -> WindowCount, mode = update {
        readings
            .with_watermark(ts, "10 seconds")
            .group_by(window(ts, "10 seconds"), sensor)
            .agg(count() as n)
    }
}

/// The value of the sample `name{labels}` in a scrape (labels as Prometheus prints them).
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|l| l.strip_prefix(series).and_then(|rest| rest.trim().parse().ok()))
}

fn scrape(addr: SocketAddr) -> String {
    let (status, body) = http::get(addr, "/metrics").unwrap();
    assert_eq!(status, 200);
    body
}

fn write(dir: &Path, name: &str, rows: &[(&str, i64)]) {
    let text: String = rows
        .iter()
        .map(|(s, secs)| {
            format!("{{\"sensor\": \"{s}\", \"ts\": \"2024-01-01T00:{:02}:{:02}Z\"}}\n", secs / 60, secs % 60)
        })
        .collect();
    let tmp = dir.join(format!(".{name}"));
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(tmp, dir.join(name)).unwrap();
}

#[test]
fn the_scrape_follows_the_data() {
    let server = http::server("127.0.0.1:0").unwrap();
    let addr = server.addr();
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    std::fs::create_dir_all(&input).unwrap();
    write(&input, "1.json", &[("a", 0), ("a", 1), ("b", 2)]);
    let q = Counts::builder()
        .readings(Source::file(&input).json())
        .sink(Sink::memory(&MemoryTable::new()))
        .query_name("metrics-follow")
        .metrics(&addr.to_string())
        .start()
        .unwrap();
    q.process_all_available().unwrap();
    let s = |text: &str, series: &str| sample(text, series).unwrap_or_else(|| panic!("no {series} in:\n{text}"));
    let first = scrape(addr);
    assert_eq!(s(&first, "flowgate_input_rows_total{query=\"metrics-follow\"}"), 3.0);
    assert_eq!(s(&first, "flowgate_state_rows{operator=\"0:stateStoreSave\",query=\"metrics-follow\"}"), 2.0);
    // Watermark after the batch: max event time 2 s − 10 s.
    assert_eq!(s(&first, "flowgate_watermark_seconds{query=\"metrics-follow\"}"), 1_704_067_200.0 - 8.0);
    let lag = s(&first, "flowgate_watermark_lag_seconds{query=\"metrics-follow\"}");
    assert!(lag > 60.0 * 60.0 * 24.0 * 300.0, "2024's watermark lags wall time by most of a year or more: {lag}");
    assert!(first
        .contains("flowgate_batch_duration_seconds_bucket{phase=\"addBatch\",query=\"metrics-follow\",le=\"0.001\"}"));
    let backlog = format!(
        "flowgate_source_backlog{{query=\"metrics-follow\",source=\"FileSource[{}]\",unit=\"files\"}}",
        input.display()
    );
    assert_eq!(s(&first, &backlog), 0.0, "every listed file was read");
    let batches_1 = s(&first, "flowgate_batches_total{query=\"metrics-follow\"}");

    // More data, one row late (event time 5 s, the watermark is at 50 s by then).
    write(&input, "2.json", &[("a", 60), ("c", 61)]);
    q.process_all_available().unwrap();
    write(&input, "3.json", &[("a", 5)]);
    q.process_all_available().unwrap();
    let second = scrape(addr);
    assert_eq!(s(&second, "flowgate_input_rows_total{query=\"metrics-follow\"}"), 6.0);
    assert!(s(&second, "flowgate_batches_total{query=\"metrics-follow\"}") >= batches_1 + 2.0);
    assert_eq!(
        s(&second, "flowgate_rows_dropped_by_watermark_total{operator=\"0:stateStoreSave\",query=\"metrics-follow\"}"),
        1.0
    );
    assert_eq!(s(&second, "flowgate_watermark_seconds{query=\"metrics-follow\"}"), 1_704_067_200.0 + 51.0);
    let count =
        s(&second, "flowgate_batch_duration_seconds_count{phase=\"triggerExecution\",query=\"metrics-follow\"}");
    assert_eq!(count, s(&second, "flowgate_batches_total{query=\"metrics-follow\"}"), "one observation per batch");
    q.stop().unwrap();
}

#[test]
fn the_file_source_backlog_is_what_is_left_to_read() {
    let server = http::server("127.0.0.1:0").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    std::fs::create_dir_all(&input).unwrap();
    for i in 0..4 {
        write(&input, &format!("{i}.json"), &[("a", i)]);
    }
    // One file per batch, and the next batch an hour away: three files stay behind.
    let q = Counts::builder()
        .readings(Source::file(&input).json().max_files_per_trigger(1))
        .sink(Sink::memory(&MemoryTable::new()))
        .query_name("metrics-backlog")
        .trigger(Trigger::processing_time("1 hour"))
        .metrics(&server.addr().to_string())
        .start()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while q.last_progress().is_none() {
        assert!(std::time::Instant::now() < deadline, "the first batch never ran");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let text = scrape(server.addr());
    let series = format!(
        "flowgate_source_backlog{{query=\"metrics-backlog\",source=\"FileSource[{}]\",unit=\"files\"}}",
        input.display()
    );
    assert_eq!(sample(&text, &series), Some(3.0), "{text}");
    assert_eq!(sample(&text, "flowgate_input_rows_total{query=\"metrics-backlog\"}"), Some(1.0));
    q.stop().unwrap();
}
