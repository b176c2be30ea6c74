//! The live query page in a real browser: headless Chromium (Debian's `chromium`, installed by
//! `.ci/run`) loads a running query's page, its script fetches the progress and draws every
//! chart with the query's numbers; a screenshot is kept as a test artifact
//! (`target/tmp/query_page.png`). A failed query's page data carries its error.

use std::path::{Path, PathBuf};
use std::process::Command;

use flowgate::monitor::http;
use flowgate::prelude::*;
use serde_json::Value;

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

const CHARTS: [&str; 6] = ["inputRate", "processRate", "inputRows", "duration", "stateRows", "watermarkLag"];

fn chromium() -> PathBuf {
    let bin = PathBuf::from(std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into()));
    assert!(
        bin.exists(),
        "{} not found: install Debian's chromium (`apt-get install chromium`, as .ci/run does) or set CHROMIUM",
        bin.display()
    );
    bin
}

/// Headless Chromium with the flags that work on these machines (no sandbox as root, no
/// background network: the machine's network is closed), a fresh profile each run. Virtual
/// time lets the page's fetch and timers run before the DOM is dumped or the shot taken.
fn headless(profile: &Path, args: &[&str]) -> std::process::Output {
    Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            "--hide-scrollbars",
            "--window-size=1280,1000",
            "--virtual-time-budget=4000",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .output()
        .expect("chromium runs")
}

/// The value of `attr="..."` on the element with `id` in a dumped DOM.
fn attr(dom: &str, id: &str, attr: &str) -> Option<String> {
    let at = dom.find(&format!("id=\"{id}\""))?;
    let tag_start = dom[..at].rfind('<')?;
    let tag_end = at + dom[at..].find('>')?;
    let tag = &dom[tag_start..tag_end];
    let key = format!("{attr}=\"");
    let v = tag.find(&key)? + key.len();
    Some(tag[v..v + tag[v..].find('"')?].replace("&quot;", "\""))
}

fn write(dir: &Path, name: &str, rows: &[(&str, i64)]) {
    let text: String = rows
        .iter()
        .map(|(s, secs)| format!("{{\"sensor\": \"{s}\", \"ts\": \"2024-01-01T00:00:{secs:02}Z\"}}\n"))
        .collect();
    let tmp = dir.join(format!(".{name}"));
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(tmp, dir.join(name)).unwrap();
}

#[test]
fn the_page_draws_live_charts_in_chromium() {
    let server = http::server("127.0.0.1:0").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    std::fs::create_dir_all(&input).unwrap();
    let q = Counts::builder()
        .readings(Source::file(&input).json())
        .sink(Sink::memory(&MemoryTable::new()))
        .query_name("sensor counts")
        .ui(&server.addr().to_string())
        .start()
        .unwrap();
    let batches = [
        vec![("a", 0), ("b", 1), ("a", 2)],
        vec![("a", 12), ("c", 13)],
        vec![("b", 25), ("b", 26), ("c", 27), ("a", 28)],
    ];
    for (i, rows) in batches.iter().enumerate() {
        write(&input, &format!("{i}.json"), rows);
        q.process_all_available().unwrap();
    }
    let url = format!("http://{}/query/sensor%20counts", server.addr());

    let profile = tempfile::tempdir().unwrap();
    let out = headless(profile.path(), &["--dump-dom", &url]);
    let dom = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "chromium failed: {}", String::from_utf8_lossy(&out.stderr));
    assert!(dom.contains("<h1 id=\"title\">sensor counts</h1>"), "the script filled the page: {dom}");
    let ran = q.recent_progress().len();
    assert!(ran >= 3);
    let shown: usize = attr(&dom, "title", "id")
        .and_then(|_| {
            let at = dom.find("<body")?;
            let tag = &dom[at..at + dom[at..].find('>')?];
            let v = tag.find("data-batches=\"")? + 14;
            tag[v..v + tag[v..].find('"')?].parse().ok()
        })
        .expect("body data-batches");
    assert_eq!(shown, ran, "every batch of the query is on the charts");
    for chart in CHARTS {
        let points: usize = attr(&dom, chart, "data-points").unwrap_or_default().parse().unwrap_or(0);
        assert!(points >= ran.min(3), "chart {chart} drew {points} points: {dom}");
    }
    // The input-rows chart ends with the last batch's rows; state rows with the state's size.
    let last = q.last_progress().unwrap();
    let rows_last: Vec<Value> = serde_json::from_str(&attr(&dom, "inputRows", "data-last").unwrap()).unwrap();
    assert_eq!(rows_last, [Value::from(last.num_input_rows)]);
    let state_last: Vec<Value> = serde_json::from_str(&attr(&dom, "stateRows", "data-last").unwrap()).unwrap();
    assert_eq!(state_last, [Value::from(last.state_operators[0].num_rows_total)]);
    let lag: Vec<f64> = serde_json::from_str(&attr(&dom, "watermarkLag", "data-last").unwrap()).unwrap();
    assert!(lag[0] > 1e7, "a 2024 watermark lags wall time: {lag:?}");

    // Live: one more batch, and the screenshot shows it.
    write(&input, "9.json", &[("d", 40), ("d", 41)]);
    q.process_all_available().unwrap();
    let shot = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("query_page.png");
    let _ = std::fs::remove_file(&shot);
    let out = headless(profile.path(), &[&format!("--screenshot={}", shot.display()), &url]);
    assert!(out.status.success(), "chromium failed: {}", String::from_utf8_lossy(&out.stderr));
    let png = std::fs::read(&shot).expect("the screenshot was written");
    assert!(png.starts_with(b"\x89PNG") && png.len() > 20_000, "{} bytes", png.len());
    eprintln!("screenshot: {}", shot.display());
    q.stop().unwrap();

    // After stopping, the page data says so.
    let (status, body) = http::get(server.addr(), "/api/query/sensor%20counts").unwrap();
    assert_eq!(status, 200);
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["active"], false);
    let (_, index) = http::get(server.addr(), "/").unwrap();
    assert!(index.contains("<a href=\"/query/sensor%20counts\">sensor counts</a>"), "{index}");
}

#[test]
fn a_failed_query_shows_its_error() {
    let server = http::server("127.0.0.1:0").unwrap();
    let input = MemoryStream::<Reading>::new();
    let q = Counts::builder()
        .readings(Source::memory(&input))
        .sink(Sink::foreach_batch(|b, _| Err(flowgate::Error::User(format!("disk full at batch {b}")))))
        .query_name("failing")
        .ui(&server.addr().to_string())
        .start()
        .unwrap();
    input.add(vec![Reading { sensor: "a".into(), ts: Timestamp(0) }]);
    assert!(q.await_termination().is_err());
    let (_, body) = http::get(server.addr(), "/api/query/failing").unwrap();
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["error"], "sink ForeachBatchSink at batch 0: user code failed: disk full at batch 0");
    assert_eq!(v["active"], false);
}
