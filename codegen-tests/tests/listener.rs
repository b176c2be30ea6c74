//! Listeners and the query manager under real queries: a listener sees every event of a query
//! in order (started, each batch's progress, idle, terminated with the error if any), per
//! query, per manager and per process; the manager lists, finds and awaits its queries and
//! refuses a second active query with the same name or checkpoint; the progress JSON has
//! Spark's field names (compared with an event recorded from real Spark).

use std::collections::BTreeMap;
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::time::Duration as StdDuration;

use flowgate::engine::listener::{
    add_global_listener, remove_global_listener, QueryIdleEvent, QueryListener, QueryStartedEvent, QueryTerminatedEvent,
};
use flowgate::engine::QueryManager;
use flowgate::prelude::*;
use flowgate::QueryProgress;
use serde_json::Value;

#[derive(Record, Clone)]
struct Reading {
    sensor: String,
    value: i64,
    ts: Timestamp,
}

#[derive(Record, Debug, PartialEq)]
struct Total {
    sensor: String,
    total: i64,
}

#[derive(Record, Debug, PartialEq)]
struct WindowCount {
    window: Window,
    sensor: String,
    n: i64,
}

stream_query! {
    query Totals(readings: Reading) -> Total, mode = update {
        readings.group_by(sensor).agg(sum(value) as total)
    }

    query Windowed(readings: Reading) -> WindowCount, mode = append {
        readings
            .with_watermark(ts, "10 seconds")
            .group_by(window(ts, "5 seconds"), sensor)
            .agg(count() as n)
    }
}

/// What a listener saw, as short strings.
#[derive(Clone, Debug, PartialEq)]
enum Seen {
    Started(String),
    Progress(u64, u64),
    Idle,
    Terminated(Option<String>),
}

/// Sends every event of the query run `run_id` (all of them when `None`) on a channel.
struct Recorder {
    tx: Mutex<Sender<(String, Seen)>>,
}

impl Recorder {
    fn new() -> (Arc<Self>, Receiver<(String, Seen)>) {
        let (tx, rx) = channel();
        (Arc::new(Recorder { tx: Mutex::new(tx) }), rx)
    }
    fn send(&self, run: &str, s: Seen) {
        let _ = self.tx.lock().unwrap().send((run.to_string(), s));
    }
}

impl QueryListener for Recorder {
    fn on_query_started(&self, e: &QueryStartedEvent) {
        self.send(&e.run_id, Seen::Started(e.name.clone()));
    }
    fn on_query_progress(&self, p: &QueryProgress) {
        self.send(&p.run_id, Seen::Progress(p.batch_id, p.num_input_rows));
    }
    fn on_query_idle(&self, e: &QueryIdleEvent) {
        self.send(&e.run_id, Seen::Idle);
    }
    fn on_query_terminated(&self, e: &QueryTerminatedEvent) {
        self.send(&e.run_id, Seen::Terminated(e.error.as_ref().map(|e| e.to_string())));
    }
}

/// Events of one run until its terminated event.
fn events_of(rx: &Receiver<(String, Seen)>, run: &str) -> Vec<Seen> {
    let mut out = Vec::new();
    loop {
        let (r, s) = rx.recv_timeout(StdDuration::from_secs(20)).expect("the terminated event never came");
        if r != run {
            continue;
        }
        let last = matches!(s, Seen::Terminated(_));
        out.push(s);
        if last {
            return out;
        }
    }
}

fn reading(sensor: &str, value: i64, secs: i64) -> Reading {
    Reading { sensor: sensor.into(), value, ts: Timestamp(secs * 1_000_000) }
}

/// The run id a progress or event carries is the query's; the first progress tells it.
fn run_id_of(q: &StreamingQuery) -> String {
    q.last_progress().expect("a batch ran").run_id
}

#[test]
fn a_listener_sees_every_event_of_its_query_in_order() {
    let (rec, rx) = Recorder::new();
    let input = MemoryStream::<Reading>::new();
    let table = MemoryTable::new();
    let q = Totals::builder()
        .readings(Source::memory(&input))
        .sink(Sink::memory(&table))
        .listener(rec.clone())
        .start()
        .unwrap();
    input.add(vec![reading("a", 1, 0), reading("b", 2, 0)]);
    q.process_all_available().unwrap();
    input.add(vec![reading("a", 5, 1)]);
    q.process_all_available().unwrap();
    let run = run_id_of(&q);
    q.stop().unwrap();
    let seen = events_of(&rx, &run);
    // Idle events come between batches while the query waits (one per idle spell within
    // IDLE_EVENT_INTERVAL); before the first batch there is one only if the query looked
    // before the rows were added.
    let mut squashed: Vec<Seen> = Vec::new();
    for s in seen {
        if s == Seen::Idle && matches!(squashed.last(), Some(Seen::Idle | Seen::Started(_))) {
            continue;
        }
        squashed.push(s);
    }
    assert_eq!(
        squashed,
        vec![
            Seen::Started("Totals".into()),
            Seen::Progress(0, 2),
            Seen::Idle,
            Seen::Progress(1, 1),
            Seen::Idle,
            Seen::Terminated(None),
        ]
    );
}

#[test]
fn a_failed_query_reports_its_error_to_listeners_and_to_await_any_termination() {
    let manager = QueryManager::new();
    let (rec, rx) = Recorder::new();
    manager.add_listener(rec);
    let input = MemoryStream::<Reading>::new();
    let q = Totals::builder()
        .readings(Source::memory(&input))
        .sink(Sink::foreach_batch(|batch, _| {
            Err(flowgate::Error::User(format!("the warehouse refused batch {batch}")))
        }))
        .manager(&manager)
        .start()
        .unwrap();
    input.add(vec![reading("a", 1, 0)]);
    let e = manager.await_any_termination().unwrap_err();
    assert_eq!(
        e.to_string(),
        "query `Totals` failed: sink ForeachBatchSink at batch 0: user code failed: the warehouse refused batch 0"
    );
    assert_eq!(format!("{e:?}"), e.to_string(), "Debug prints the same sentence (what `fn main` shows)");
    assert!(matches!(e.root(), flowgate::Error::User(_)), "the cause is kept, not flattened: {e:#?}");
    let (_, first) = rx.recv_timeout(StdDuration::from_secs(20)).unwrap();
    assert_eq!(first, Seen::Started("Totals".into()));
    let last = loop {
        let (_, s) = rx.recv_timeout(StdDuration::from_secs(20)).unwrap();
        if matches!(s, Seen::Terminated(_)) {
            break s;
        }
    };
    assert_eq!(
        last,
        Seen::Terminated(Some(
            "sink ForeachBatchSink at batch 0: user code failed: the warehouse refused batch 0".into()
        ))
    );
    assert!(manager.active().is_empty(), "a terminated query leaves the active list");
    assert_eq!(q.await_termination().unwrap_err().to_string(), e.to_string());
}

#[test]
fn the_manager_lists_finds_and_refuses_duplicates() {
    let manager = QueryManager::new();
    let dir = tempfile::tempdir().unwrap();
    let cp = dir.path().join("cp");
    let input = MemoryStream::<Reading>::new();
    let start = |name: &str, cp: &std::path::Path| {
        Totals::builder()
            .readings(Source::memory(&input))
            .sink(Sink::memory(&MemoryTable::new()))
            .query_name(name)
            .checkpoint(cp)
            .manager(&manager)
            .start()
    };
    let a = start("a", &cp).unwrap();
    let e = start("a", &dir.path().join("other")).unwrap_err().to_string();
    assert!(e.contains("a query named `a` is already active in this manager"), "{e}");
    let e = start("b", &dir.path().join("x/../cp")).unwrap_err().to_string();
    assert!(e.contains("query `a` is already running on checkpoint") && e.contains("cp"), "{e}");
    let b = start("b", &dir.path().join("cp-b")).unwrap();

    let names: Vec<String> = manager.active().iter().map(|q| q.name().to_string()).collect();
    assert_eq!(names, ["a", "b"]);
    assert_eq!(manager.get(a.id()).unwrap().name(), "a");
    assert_eq!(manager.get_by_name("b").unwrap().id(), b.id());
    assert!(manager.get("no-such-id").is_none());
    // A handle from the manager is the same query: dropping it does not stop it.
    drop(manager.get_by_name("a"));
    assert!(a.is_active());

    assert!(!manager.await_any_termination_timeout(StdDuration::from_millis(50)).unwrap());
    a.stop().unwrap();
    assert!(manager.await_any_termination_timeout(StdDuration::from_secs(20)).unwrap());
    assert_eq!(manager.active().iter().map(|q| q.name().to_string()).collect::<Vec<_>>(), ["b"]);
    // Name and checkpoint are free again.
    let a2 = start("a", &cp).unwrap();
    assert!(a2.is_active());
    manager.reset_terminated();
    assert!(!manager.await_any_termination_timeout(StdDuration::from_millis(50)).unwrap());
    // Dropping the last handle stops a managed query too.
    drop(a2);
    assert!(manager.await_any_termination_timeout(StdDuration::from_secs(20)).unwrap());
    b.stop().unwrap();
}

#[test]
fn a_global_listener_sees_queries_started_anywhere() {
    let (rec, rx) = Recorder::new();
    let handle = add_global_listener(rec);
    let input = MemoryStream::<Reading>::new();
    let q = Totals::builder()
        .readings(Source::memory(&input))
        .sink(Sink::memory(&MemoryTable::new()))
        .query_name("global-seen")
        .start()
        .unwrap();
    input.add(vec![reading("a", 1, 0)]);
    q.process_all_available().unwrap();
    let run = run_id_of(&q);
    q.stop().unwrap();
    let seen = events_of(&rx, &run);
    remove_global_listener(&handle);
    assert_eq!(seen.first(), Some(&Seen::Started("global-seen".into())));
    assert!(seen.contains(&Seen::Progress(0, 1)), "{seen:?}");
}

/// Every key path of a JSON value (`a.b`, arrays by their first element's keys as `a[].b`),
/// with the JSON kind of its value (`null` where it is null).
fn key_paths(v: &Value, prefix: &str, out: &mut BTreeMap<String, &'static str>) {
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                let p = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
                let kind = match v {
                    Value::Null => "null",
                    Value::Bool(_) => "bool",
                    Value::Number(_) => "number",
                    Value::String(_) => "string",
                    Value::Array(_) => "array",
                    Value::Object(_) => "object",
                };
                out.insert(p.clone(), kind);
                key_paths(v, &p, out);
            }
        }
        Value::Array(a) => {
            if let Some(first) = a.first() {
                key_paths(first, &format!("{prefix}[]"), out);
            }
        }
        _ => {}
    }
}

/// Spark's names for what flowgate reports too; flowgate's JSON must not invent names. The
/// golden event comes from `codegen-tests/spark/progress_event.py` (pyspark 4.3.0): a windowed
/// count with a watermark over a JSON file source.
#[test]
fn progress_json_uses_sparks_field_names() {
    let spark: Value = serde_json::from_str(include_str!("golden/spark_progress.json")).unwrap();
    let mut spark_keys = BTreeMap::new();
    key_paths(&spark, "", &mut spark_keys);

    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    std::fs::create_dir_all(&input).unwrap();
    let lines: String = (0..10)
        .map(|i| format!("{{\"sensor\": \"k{}\", \"value\": {i}, \"ts\": \"2024-01-01T00:00:{i:02}Z\"}}\n", i % 3))
        .collect();
    std::fs::write(input.join("a.json"), lines).unwrap();
    let q = Windowed::builder()
        .readings(Source::file(&input).json())
        .sink(Sink::memory(&MemoryTable::new()))
        .checkpoint(dir.path().join("cp"))
        .trigger(Trigger::available_now())
        .start()
        .unwrap();
    q.await_termination().unwrap();
    let progress = q.recent_progress().into_iter().find(|p| p.num_input_rows > 0).unwrap();
    let ours = progress.json();
    let mut our_keys = BTreeMap::new();
    key_paths(&ours, "", &mut our_keys);

    // Spark's `SourceProgress.metrics` is a source's own string map (Kafka's
    // `avgOffsetsBehindLatest`); its file source reports none, so the golden event has none.
    // flowgate's file source reports its backlog there.
    for k in ["sources[].metrics", "sources[].metrics.filesOutstanding", "sources[].metrics.filesTotal"] {
        assert!(our_keys.contains_key(k), "{k}");
        spark_keys.insert(k.to_string(), our_keys[k]);
    }
    let invented: Vec<&String> = our_keys.keys().filter(|k| !spark_keys.contains_key(*k)).collect();
    assert!(invented.is_empty(), "flowgate's progress has keys Spark's does not: {invented:?}");
    // Same kind of value under each name (a null on either side says nothing).
    for (k, kind) in &our_keys {
        let theirs = spark_keys[k];
        assert!(*kind == theirs || *kind == "null" || theirs == "null", "{k}: ours is a {kind}, Spark's a {theirs}");
    }
    // The sections a dashboard reads are all there.
    for key in [
        "id",
        "runId",
        "name",
        "timestamp",
        "batchId",
        "numInputRows",
        "inputRowsPerSecond",
        "processedRowsPerSecond",
        "durationMs.addBatch",
        "durationMs.getBatch",
        "durationMs.latestOffset",
        "durationMs.triggerExecution",
        "durationMs.walCommit",
        "durationMs.commitOffsets",
        "eventTime.watermark",
        "stateOperators[].operatorName",
        "stateOperators[].numRowsTotal",
        "stateOperators[].numRowsUpdated",
        "stateOperators[].numRowsRemoved",
        "stateOperators[].numRowsDroppedByWatermark",
        "stateOperators[].memoryUsedBytes",
        "sources[].description",
        "sources[].startOffset",
        "sources[].endOffset",
        "sources[].numInputRows",
        "sink.description",
        "sink.numOutputRows",
        "batchDuration",
        "sources[].endOffset.logOffset",
    ] {
        assert!(our_keys.contains_key(key) && spark_keys.contains_key(key), "{key}: ours {our_keys:?}");
    }
}

/// Holds every event until released.
struct Blocked {
    gate: Arc<(Mutex<bool>, std::sync::Condvar)>,
    delivered: Arc<std::sync::atomic::AtomicU64>,
}

impl QueryListener for Blocked {
    fn on_query_progress(&self, _: &QueryProgress) {
        let (open, cv) = &*self.gate;
        let mut g = open.lock().unwrap();
        while !*g {
            g = cv.wait(g).unwrap();
        }
        self.delivered.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
}

#[test]
fn a_stuck_listener_does_not_hold_up_the_query() {
    let gate = Arc::new((Mutex::new(false), std::sync::Condvar::new()));
    let delivered = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let input = MemoryStream::<Reading>::new();
    let q = Totals::builder()
        .readings(Source::memory(&input))
        .sink(Sink::memory(&MemoryTable::new()))
        .query_name("stuck-listener")
        .listener(Arc::new(Blocked { gate: gate.clone(), delivered: delivered.clone() }))
        .start()
        .unwrap();
    // Five batches run while the listener is stuck in the first event.
    for i in 0..5 {
        input.add(vec![reading("a", i, i)]);
        q.process_all_available().unwrap();
    }
    assert_eq!(q.last_progress().unwrap().batch_id, 4);
    assert_eq!(delivered.load(std::sync::atomic::Ordering::SeqCst), 0);
    // Released, it gets every event, in order.
    *gate.0.lock().unwrap() = true;
    gate.1.notify_all();
    let deadline = std::time::Instant::now() + StdDuration::from_secs(20);
    while delivered.load(std::sync::atomic::Ordering::SeqCst) < 5 {
        assert!(std::time::Instant::now() < deadline, "the held events were never delivered");
        std::thread::sleep(StdDuration::from_millis(5));
    }
    q.stop().unwrap();
}
