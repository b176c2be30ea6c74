//! The Kafka sink end to end through a real broker (tansu, `scripts/kafka-broker.sh`).
#![cfg(feature = "kafka")]

use std::time::Duration;

use flowgate::prelude::*;
use flowgate::source::kafka::testing::{broker, committed_offset, consume, create_topic, unique_topic};
use flowgate::source::kafka::{KafkaHeader, KafkaHeaders};

#[derive(Record, Debug, Clone, PartialEq)]
struct Count {
    word: String,
    count: i64,
}

#[derive(Record, Debug, Clone)]
struct Line {
    value: Option<String>,
}

stream_query! {
    query Counts(lines: Line) -> Count, mode = update {
        lines.flat_map(word = split(value, " ")).group_by(word).agg(count() as count)
    }
}

#[derive(Record, Debug, Clone)]
struct Spec {
    topic: String,
    key: Option<String>,
    value: Vec<u8>,
    partition: i32,
    headers: KafkaHeaders,
}

stream_query! {
    query Passthrough(specs: Spec) -> Spec, mode = append { specs.filter(true) }
}

#[test]
fn rows_without_a_value_column_are_written_as_json_values() {
    let b = broker();
    let topic = unique_topic("sink-json");
    create_topic(&b, &topic, 1);
    let input = MemoryStream::<Line>::new();
    let q =
        Counts::builder().lines(Source::memory(&input)).sink(Sink::kafka(&b).topic(&topic).build()).start().unwrap();
    input.add(vec![Line { value: Some("cat dog cat".into()) }]);
    q.process_all_available().unwrap();
    q.stop().unwrap();
    let mut got: Vec<String> = consume(&b, &topic, "read_committed", 2, Duration::from_millis(300))
        .into_iter()
        .map(|r| String::from_utf8(r.value.unwrap()).unwrap())
        .collect();
    got.sort();
    assert_eq!(got, vec![r#"{"word":"cat","count":2}"#, r#"{"word":"dog","count":1}"#]);
}

#[test]
fn topic_key_value_partition_and_headers_columns_are_sparks() {
    let b = broker();
    let (t1, t2) = (unique_topic("sink-cols-a"), unique_topic("sink-cols-b"));
    create_topic(&b, &t1, 3);
    create_topic(&b, &t2, 1);
    let input = MemoryStream::<Spec>::new();
    let q = Passthrough::builder().specs(Source::memory(&input)).sink(Sink::kafka(&b).build()).start().unwrap();
    let hdr = KafkaHeaders(vec![KafkaHeader { key: "h".into(), value: Some(b"1".to_vec()) }]);
    input.add(vec![
        Spec { topic: t1.clone(), key: Some("k".into()), value: b"\x00bin".to_vec(), partition: 2, headers: hdr },
        Spec { topic: t2.clone(), key: None, value: b"plain".to_vec(), partition: 0, headers: KafkaHeaders::default() },
    ]);
    q.process_all_available().unwrap();
    q.stop().unwrap();
    let a = consume(&b, &t1, "read_committed", 1, Duration::from_millis(300));
    assert_eq!(a.len(), 1);
    assert_eq!(
        (a[0].partition, a[0].key.as_deref(), a[0].value.as_deref()),
        (2, Some(b"k".as_slice()), Some(b"\x00bin".as_slice()))
    );
    assert_eq!(a[0].header("h").as_deref(), Some("1"));
    let c = consume(&b, &t2, "read_committed", 1, Duration::from_millis(300));
    assert_eq!((c[0].key.as_deref(), c[0].value.as_deref()), (None, Some(b"plain".as_slice())));
}

#[test]
fn a_batch_already_committed_in_kafka_is_not_written_again_after_a_restart() {
    // A crash after the batch's transaction committed but before the query's commit log entry:
    // staged by deleting that entry, so the restarted query runs the batch again.
    let b = broker();
    let topic = unique_topic("sink-txn");
    create_topic(&b, &topic, 1);
    let cp = tempfile::tempdir().unwrap();
    let input_dir = tempfile::tempdir().unwrap();
    std::fs::write(input_dir.path().join("1.json"), "{\"value\": \"a b\"}\n").unwrap();
    let run = || {
        let q = Counts::builder()
            .lines(Source::file(input_dir.path()).json())
            .sink(Sink::kafka(&b).topic(&topic).transactional().build())
            .checkpoint(cp.path())
            .trigger(Trigger::available_now())
            .start()
            .unwrap();
        q.await_termination().unwrap();
        q.id().to_string()
    };
    let id = run();
    let first = consume(&b, &topic, "read_committed", 2, Duration::from_millis(300));
    assert_eq!(first.len(), 2);
    assert!(first.iter().all(|r| r.header("flowgate.batch").as_deref() == Some("0")), "{first:?}");
    assert_eq!(committed_offset(&b, &format!("flowgate-sink-{id}"), &topic, 0), Some(1), "the batch marker");
    std::fs::remove_file(cp.path().join("commits").join("0")).unwrap();
    assert_eq!(run(), id, "the same query");
    assert!(cp.path().join("commits").join("0").exists(), "batch 0 ran again and was committed");
    let after = consume(&b, &topic, "read_uncommitted", 2, Duration::from_millis(800));
    assert_eq!(after.len(), 2, "the re-run wrote nothing: its batch was already in Kafka");
}

#[test]
fn the_transactional_sink_needs_a_topic_for_its_marker() {
    let b = broker();
    let input = MemoryStream::<Spec>::new();
    let e = Passthrough::builder().specs(Source::memory(&input)).sink(Sink::kafka(&b).transactional().build()).start();
    let e = e.unwrap_err().to_string();
    assert!(e.contains("marker_topic"), "{e}");
}
