//! Fault tests on librdkafka's mock cluster (`rdkafka::mocking::MockCluster`: real TCP on
//! 127.0.0.1, correct offsets, and broker outages on demand), which the tansu broker of the
//! other Kafka tests cannot stage.
#![cfg(feature = "kafka")]

use std::time::{Duration, Instant};

use flowgate::prelude::*;
use flowgate::source::kafka::testing::{produce, TestRecord};
use rdkafka::mocking::MockCluster;

#[derive(Record, Debug, Clone, PartialEq)]
struct Msg {
    value: Option<String>,
    partition: i32,
    offset: i64,
}

stream_query! {
    query Everything(msgs: Msg) -> Msg, mode = append {
        msgs.filter(offset >= 0)
    }
}

fn wait_until(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let t = Instant::now();
    while !f() {
        assert!(t.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn records(range: std::ops::Range<usize>) -> Vec<TestRecord> {
    range.map(|i| TestRecord::value((i % 2) as i32, format!("v{i}"))).collect()
}

#[test]
fn a_broker_outage_mid_stream_makes_the_query_wait_reconnect_and_stay_exactly_once() {
    let cluster = MockCluster::new(1).unwrap();
    let b = cluster.bootstrap_servers();
    cluster.create_topic("events", 2, 1).unwrap();
    produce(&b, "events", &records(0..100));
    let cp = tempfile::tempdir().unwrap();
    let table = MemoryTable::new();
    let q = Everything::builder()
        .msgs(Source::kafka(&b).subscribe("events").starting_offsets("earliest").max_offsets_per_trigger(40))
        .sink(Sink::memory(&table))
        .checkpoint(cp.path())
        .start()
        .unwrap();
    let count = || table.rows::<Msg>().unwrap().len();
    wait_until("the first 100 records", Duration::from_secs(30), || count() == 100);

    cluster.broker_down(1).unwrap();
    // Records produced during the outage wait in the producer until the broker is back.
    let b2 = b.clone();
    let producer = std::thread::spawn(move || produce(&b2, "events", &records(100..200)));
    std::thread::sleep(Duration::from_secs(3));
    assert!(q.is_active(), "the query waits out the outage: {:?}", q.exception());
    assert_eq!(count(), 100);
    cluster.broker_up(1).unwrap();
    producer.join().unwrap();
    wait_until("the records produced during the outage", Duration::from_secs(60), || count() >= 200);
    std::thread::sleep(Duration::from_millis(500));
    q.stop().unwrap();
    assert!(q.exception().is_none(), "{:?}", q.exception());
    let mut values: Vec<String> = table.rows::<Msg>().unwrap().into_iter().map(|m| m.value.unwrap()).collect();
    values.sort();
    let mut want: Vec<String> = (0..200).map(|i| format!("v{i}")).collect();
    want.sort();
    assert_eq!(values, want, "every record exactly once");

    // Started again from its checkpoint: nothing is read twice.
    produce(&b, "events", &records(200..210));
    let again = MemoryTable::new();
    let q = Everything::builder()
        .msgs(Source::kafka(&b).subscribe("events"))
        .sink(Sink::memory(&again))
        .checkpoint(cp.path())
        .trigger(Trigger::available_now())
        .start()
        .unwrap();
    q.await_termination().unwrap();
    let mut values: Vec<String> = again.rows::<Msg>().unwrap().into_iter().map(|m| m.value.unwrap()).collect();
    values.sort();
    let mut want: Vec<String> = (200..210).map(|i| format!("v{i}")).collect();
    want.sort();
    assert_eq!(values, want);
}

#[test]
fn starting_offsets_latest_reads_only_what_comes_after_the_start() {
    // tansu's ListOffsets(latest) answers too low; the mock cluster's is right.
    let cluster = MockCluster::new(1).unwrap();
    let b = cluster.bootstrap_servers();
    cluster.create_topic("later", 2, 1).unwrap();
    produce(&b, "later", &records(0..50));
    let table = MemoryTable::new();
    let q = Everything::builder()
        .msgs(Source::kafka(&b).subscribe("later").starting_offsets("latest"))
        .sink(Sink::memory(&table))
        .start()
        .unwrap();
    // The start is fixed by the first trigger.
    wait_until("the first trigger", Duration::from_secs(30), || q.status().contains("Waiting"));
    produce(&b, "later", &records(50..60));
    wait_until("the new records", Duration::from_secs(30), || table.rows::<Msg>().unwrap().len() >= 10);
    std::thread::sleep(Duration::from_millis(300));
    q.stop().unwrap();
    let mut values: Vec<String> = table.rows::<Msg>().unwrap().into_iter().map(|m| m.value.unwrap()).collect();
    values.sort();
    let mut want: Vec<String> = (50..60).map(|i| format!("v{i}")).collect();
    want.sort();
    assert_eq!(values, want);
}
