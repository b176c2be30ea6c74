//! The Kafka source end to end through a real broker (tansu, started by
//! `scripts/kafka-broker.sh`; see `flowgate::source::kafka::testing`).
#![cfg(feature = "kafka")]

use flowgate::prelude::*;
use flowgate::source::kafka::testing::{broker, create_topic, produce, unique_topic, TestRecord};

#[derive(Record, Debug, Clone, PartialEq)]
struct Msg {
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
    topic: String,
    partition: i32,
    offset: i64,
    timestamp: Timestamp,
    timestamp_type: i32,
}

stream_query! {
    query Everything(msgs: Msg) -> Msg, mode = append {
        msgs.filter(offset >= 0)
    }
}

fn run_available_now(source: Source<Msg>, checkpoint: Option<&std::path::Path>) -> flowgate::Result<Vec<Msg>> {
    let table = MemoryTable::new();
    let mut b = Everything::builder().msgs(source).sink(Sink::memory(&table)).trigger(Trigger::available_now());
    if let Some(cp) = checkpoint {
        b = b.checkpoint(cp);
    }
    let q = b.start()?;
    q.await_termination()?;
    table.rows()
}

#[test]
fn reads_sparks_columns_from_every_partition_in_order() {
    let b = broker();
    let topic = unique_topic("src-cols");
    create_topic(&b, &topic, 3);
    let records: Vec<TestRecord> = (0..60)
        .map(|i| TestRecord {
            partition: Some(i % 3),
            key: (i % 2 == 0).then(|| format!("k{i}").into_bytes()),
            value: Some(format!("v{i}").into_bytes()),
            timestamp_ms: Some(1_700_000_000_000 + i as i64),
            ..Default::default()
        })
        .collect();
    produce(&b, &topic, &records);
    let rows =
        run_available_now(Source::kafka(&b).subscribe(&topic).starting_offsets("earliest").into(), None).unwrap();
    assert_eq!(rows.len(), 60, "{rows:?}");
    for p in 0..3 {
        let mine: Vec<&Msg> = rows.iter().filter(|r| r.partition == p).collect();
        assert_eq!(mine.len(), 20);
        for (n, r) in mine.iter().enumerate() {
            let i = p as usize + 3 * n;
            assert_eq!(r.offset, n as i64, "offsets in order per partition");
            assert_eq!(r.value.as_deref(), Some(format!("v{i}").as_bytes()));
            assert_eq!(r.key, (i % 2 == 0).then(|| format!("k{i}").into_bytes()));
            assert_eq!(r.topic, topic);
            assert_eq!(r.timestamp, Timestamp::from_micros((1_700_000_000_000 + i as i64) * 1000));
            assert_eq!(r.timestamp_type, 0, "create time");
        }
    }
}
