//! Bounded memory on a backlog: a file backlog several times larger than the memory a batch
//! may take is processed in batches of bounded size, and the process's peak RSS (`VmHWM` of
//! `/proc/self/status`) stays well below the backlog's size. Measured in a child process (this
//! test binary again, running only [`child_reads_the_backlog`]), so that no other test's
//! memory counts; the same child without a per-trigger limit shows the measure would catch a
//! batch that holds the whole backlog.

use std::path::Path;
use std::process::Command;

use flowgate::prelude::*;

#[derive(Record)]
struct Reading {
    sensor: String,
    value: i64,
    note: String,
}

#[derive(Record, Debug, PartialEq)]
struct Total {
    sensor: String,
    total: i64,
    n: i64,
}

stream_query! {
    query Totals(readings: Reading) -> Total, mode = update {
        readings.filter(note != "").group_by(sensor).agg(sum(value) as total, count() as n)
    }
}

const FILES: usize = 24;
const LINES_PER_FILE: usize = 16_000;
/// Each line is about 170 bytes: 24 files of about 2.7 MB, 65 MB in all.
const NOTE: &str = "a note long enough that the decoded strings weigh about what the file does: \
                    0123456789abcdefghijklmnopqrstuvwxyz0123456789";
const SENSORS: usize = 7;
/// The per-trigger byte limit of the bounded run: one file a batch (two do not fit).
const LIMIT_BYTES: u64 = 4 << 20;

const DIR_VAR: &str = "FLOWGATE_BACKLOG_DIR";
const LIMIT_VAR: &str = "FLOWGATE_BACKLOG_LIMIT";

fn status_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with(field)).unwrap_or_else(|| panic!("no {field} in {status}"));
    line[field.len()..].trim().trim_end_matches("kB").trim().parse().unwrap()
}

fn write_backlog(dir: &Path) -> u64 {
    let mut bytes = 0;
    for f in 0..FILES {
        let mut text = String::with_capacity(LINES_PER_FILE * 180);
        for i in 0..LINES_PER_FILE {
            let row = f * LINES_PER_FILE + i;
            text.push_str(&format!(
                "{{\"sensor\": \"s{}\", \"value\": {}, \"note\": \"{NOTE}\"}}\n",
                row % SENSORS,
                row % 100
            ));
        }
        bytes += text.len() as u64;
        let path = dir.join(format!("{f:03}.json"));
        std::fs::write(&path, text).unwrap();
        // Arrival order = name order.
        let t = std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_000 + f as u64);
        std::fs::File::options().write(true).open(&path).unwrap().set_modified(t).unwrap();
    }
    bytes
}

#[test]
#[ignore = "the child process of backlog_is_processed_with_bounded_memory"]
fn child_reads_the_backlog() {
    let dir = std::env::var(DIR_VAR).expect("run by backlog_is_processed_with_bounded_memory");
    let limit: u64 = std::env::var(LIMIT_VAR).unwrap().parse().unwrap();
    let before = status_kib("VmRSS:");
    let table = MemoryTable::new();
    let q = Totals::builder()
        .readings(Source::file(&dir).json().max_bytes_per_trigger(limit))
        .sink(Sink::memory(&table))
        .shuffle_partitions(2)
        .trigger(Trigger::available_now())
        .start()
        .unwrap();
    q.await_termination().unwrap();
    let hwm = status_kib("VmHWM:");
    // The last update of every sensor: its total count.
    let mut last = std::collections::BTreeMap::new();
    for t in table.rows::<Total>().unwrap() {
        last.insert(t.sensor.clone(), t.n);
    }
    let rows: i64 = last.values().sum();
    println!("RESULT before_kib={before} hwm_kib={hwm} batches={} rows={rows}", table.batch_count());
}

/// Runs the child over `dir` with a per-trigger limit; returns (peak growth KiB, batches, rows).
fn run_child(dir: &Path, limit: u64) -> (u64, u64, u64) {
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["child_reads_the_backlog", "--exact", "--ignored", "--nocapture", "--test-threads=1"])
        .env(DIR_VAR, dir)
        .env(LIMIT_VAR, limit.to_string())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "child failed: {stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let line = stdout
        .lines()
        .find_map(|l| l.split_once("RESULT ").map(|(_, r)| r))
        .unwrap_or_else(|| panic!("no result: {stdout}"));
    let get = |key: &str| -> u64 {
        let v = line.split_whitespace().find_map(|kv| kv.strip_prefix(&format!("{key}="))).unwrap();
        v.parse().unwrap()
    };
    eprintln!("limit {limit}: {line}");
    (get("hwm_kib").saturating_sub(get("before_kib")), get("batches"), get("rows"))
}

#[test]
fn backlog_is_processed_with_bounded_memory() {
    let dir = tempfile::tempdir().unwrap();
    let backlog = write_backlog(dir.path());
    let backlog_kib = backlog / 1024;
    assert!(backlog_kib > 60 * 1024, "{backlog_kib} KiB");
    let rows = (FILES * LINES_PER_FILE) as u64;

    let (bounded, batches, seen) = run_child(dir.path(), LIMIT_BYTES);
    assert_eq!(seen, rows, "every row counted once");
    assert!(batches >= (backlog / LIMIT_BYTES), "{batches} batches of at most {LIMIT_BYTES} bytes");
    // Peak growth under a third of the backlog (the backlog is 16 times the per-batch limit).
    assert!(bounded < backlog_kib / 3, "peak RSS grew by {bounded} KiB over a {backlog_kib} KiB backlog");

    // The same without limits: one batch holds the whole backlog, and the measure shows it.
    let (unbounded, batches, seen) = run_child(dir.path(), u64::MAX);
    assert_eq!((batches, seen), (1, rows));
    assert!(unbounded > bounded * 2, "unbounded {unbounded} KiB vs bounded {bounded} KiB");
}
