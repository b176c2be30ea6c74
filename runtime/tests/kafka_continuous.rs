//! The Kafka source and sink in continuous mode, through a real broker (tansu, started by
//! `scripts/kafka-broker.sh`; see `flowgate::source::kafka::testing`): one task per
//! topic-partition, positions logged per epoch so a restart resumes every partition exactly,
//! the same rows as a micro-batch run over the same records, and the transactional sink
//! committing one transaction per epoch.
#![cfg(feature = "kafka")]

use std::time::Duration;

use flowgate::prelude::*;
use flowgate::source::kafka::testing::{broker, consume, create_topic, produce, unique_topic, TestRecord};

#[derive(Record, Debug, Clone, PartialEq, PartialOrd)]
struct Msg {
    value: Option<String>,
    partition: i32,
    offset: i64,
}

#[derive(Record, Debug, Clone)]
struct Out {
    value: String,
}

stream_query! {
    query Kept(msgs: Msg) -> Msg, mode = append {
        msgs.filter(offset % 4 != 3)
    }

    query Values(msgs: Msg) -> Out, mode = append {
        msgs.select(value = value.unwrap_or_default())
    }
}

fn records(from: usize, n: usize, partitions: i32) -> Vec<TestRecord> {
    (from..from + n).map(|i| TestRecord::value(i as i32 % partitions, format!("v{i}"))).collect()
}

/// The rows `Kept` gives over `records(0, n, 3)`, sorted.
fn kept(n: i32) -> Vec<Msg> {
    sorted(
        (0..n)
            .map(|i| Msg { value: Some(format!("v{i}")), partition: i % 3, offset: i64::from(i / 3) })
            .filter(|m| m.offset % 4 != 3)
            .collect(),
    )
}

fn sorted(mut rows: Vec<Msg>) -> Vec<Msg> {
    rows.sort_by_key(|a| (a.partition, a.offset));
    rows
}

/// Waits (at most 60 s) until `table` holds `n` rows.
fn wait_rows(table: &MemoryTable, query: &StreamingQuery, n: usize) -> Vec<Msg> {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let rows: Vec<Msg> = table.rows().unwrap();
        if rows.len() >= n || std::time::Instant::now() > deadline {
            return rows;
        }
        assert!(query.exception().is_none(), "{:?}", query.exception());
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_task_per_partition_gives_the_rows_of_a_micro_batch_run_and_a_restart_resumes_each_partition() {
    let b = broker();
    let topic = unique_topic("cont-src");
    create_topic(&b, &topic, 3);
    produce(&b, &topic, &records(0, 90, 3));
    let source = || -> Source<Msg> { Source::kafka(&b).subscribe(&topic).starting_offsets("earliest").into() };
    // Micro-batch: everything there is, once.
    let micro = {
        let table = MemoryTable::new();
        let q = Kept::builder().msgs(source()).sink(Sink::memory(&table)).trigger(Trigger::available_now()).start();
        q.unwrap().await_termination().unwrap();
        sorted(table.rows().unwrap())
    };
    assert_eq!(micro, kept(90));
    // Continuous, with a checkpoint: the same rows; then more records, a restart, the rest.
    let cp = tempfile::tempdir().unwrap();
    let table = MemoryTable::new();
    let start = || {
        Kept::builder()
            .msgs(source())
            .sink(Sink::memory(&table))
            .checkpoint(cp.path())
            .trigger(Trigger::continuous("20 milliseconds"))
            .start()
            .unwrap()
    };
    let q = start();
    let got = sorted(wait_rows(&table, &q, micro.len()));
    q.stop().unwrap();
    assert!(q.exception().is_none(), "{:?}", q.exception());
    assert_eq!(got, micro);
    let last = q.recent_progress().into_iter().last().unwrap();
    assert_eq!(last.epoch.as_ref().unwrap().tasks, 3, "one task per partition");
    let positions: serde_json::Value = serde_json::from_str(last.sources[0].end_offset.as_deref().unwrap()).unwrap();
    let expected: Vec<serde_json::Value> =
        (0..3).map(|p| serde_json::json!({ &topic: { p.to_string(): 30 } })).collect();
    assert_eq!(positions, serde_json::Value::Array(expected), "each partition's next offset");
    // Written while the query is down: the restart reads exactly these, from each partition.
    produce(&b, &topic, &records(90, 60, 3));
    let q = start();
    wait_rows(&table, &q, kept(150).len());
    // Time to read a record twice, if anything would.
    std::thread::sleep(Duration::from_millis(200));
    q.stop().unwrap();
    assert!(q.exception().is_none(), "{:?}", q.exception());
    assert_eq!(sorted(table.rows().unwrap()), kept(150), "nothing lost, nothing read twice");
}

#[test]
fn the_transactional_sink_commits_one_transaction_per_epoch() {
    let b = broker();
    let (input, output) = (unique_topic("cont-txn-in"), unique_topic("cont-txn-out"));
    create_topic(&b, &input, 2);
    create_topic(&b, &output, 1);
    produce(&b, &input, &records(0, 40, 2));
    let cp = tempfile::tempdir().unwrap();
    let q = Values::builder()
        .msgs(Source::kafka(&b).subscribe(&input).starting_offsets("earliest"))
        .sink(Sink::kafka(&b).topic(&output).transactional().build())
        .checkpoint(cp.path())
        .trigger(Trigger::continuous("50 milliseconds"))
        .start()
        .unwrap();
    let first = consume(&b, &output, "read_committed", 40, Duration::from_millis(300));
    produce(&b, &input, &records(40, 20, 2));
    let all = consume(&b, &output, "read_committed", 60, Duration::from_millis(300));
    q.stop().unwrap();
    assert!(q.exception().is_none(), "{:?}", q.exception());
    assert_eq!(first.len(), 40);
    let mut values: Vec<String> =
        all.iter().map(|r| String::from_utf8(r.value.clone().unwrap_or_default()).unwrap()).collect();
    values.sort();
    let mut expected: Vec<String> = (0..60).map(|i| format!("v{i}")).collect();
    expected.sort();
    assert_eq!(values, expected, "every record once");
    // Each record names its epoch; every epoch with output is one committed transaction, in
    // the order of the commit log.
    let epochs: Vec<u64> = all.iter().map(|r| r.header("flowgate.batch").unwrap().parse().unwrap()).collect();
    assert!(epochs.windows(2).all(|w| w[0] <= w[1]), "transactions in epoch order: {epochs:?}");
    let progress = q.recent_progress();
    for e in epochs.iter().copied().collect::<std::collections::BTreeSet<_>>() {
        let p = progress.iter().find(|p| p.batch_id == e).expect("a committed epoch");
        assert_eq!(epochs.iter().filter(|&&x| x == e).count() as u64, p.num_output_rows, "epoch {e}");
    }
}
