//! `kafka`: the Kafka source and sink against the project's broker (tansu, started by
//! `scripts/kafka-broker.sh`), each beside a hand-written baseline in the same run.
//!
//! 1. Source: one topic of `--records` records (4 partitions), read to the end by flowgate's
//!    Kafka source feeding `count()` and `sum(length(value))`, and by a hand-written rdkafka
//!    consumer loop doing the same count; records/s, records per CPU-second (the process's
//!    user + system time, librdkafka's threads included) and their ratio, best of `--runs`.
//!    Batch latency p50/p99 from flowgate's progress (`triggerExecution`).
//! 2. Sink: `--batches` micro-batches of `--batch-rows` rows each written by the at-least-once
//!    (idempotent producer) and the transactional sink: the sink's time per batch (`addBatch`)
//!    p50/p99 and the
//!    transactional cost over at-least-once.
//!
//! Prints a table and writes `target/bench-kafka.csv`.

use std::time::{Duration, Instant};

use flowgate::prelude::*;
use flowgate::source::kafka::testing::{broker, create_topic, unique_topic};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::Message;

#[derive(Record)]
struct Msg {
    value: Option<String>,
}

#[derive(Record)]
struct Total {
    n: i64,
    chars: Option<i64>,
}

#[derive(Record, Clone)]
struct Row {
    key: Option<String>,
    value: Option<String>,
}

stream_query! {
    query CountAll(msgs: Msg) -> Total, mode = complete {
        msgs.agg(count() as n, sum(length(value)) as chars)
    }
    query Copy(rows: Row) -> Row, mode = append { rows.filter(true) }
}

/// Partitions of the bench topic (the source reads them all through one consumer).
const PARTITIONS: i32 = 4;

/// CPU seconds (user + system) of this process so far, from `/proc/self/stat` (Linux; clock
/// ticks of 10 ms, so runs of a second or more are needed for a useful figure).
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which is in parentheses and may hold spaces).
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // utime and stime are fields 14 and 15 of the stat line, 12 and 13 after the name.
    (ticks(11) + ticks(12)) / 100.0
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn produce_topic(b: &str, topic: &str, records: usize) {
    let p: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", b)
        .set("linger.ms", "20")
        .set("batch.num.messages", "10000")
        .set("enable.idempotence", "true")
        .create()
        .expect("producer");
    for i in 0..records {
        let value = format!("event {i:>10} some payload text");
        let mut rec: BaseRecord<'_, (), str> =
            BaseRecord::to(topic).payload(value.as_str()).partition(i as i32 % PARTITIONS);
        loop {
            match p.send(rec) {
                Ok(()) => break,
                Err((_, back)) => {
                    p.poll(Duration::from_millis(5));
                    rec = back;
                }
            }
        }
    }
    p.flush(Duration::from_secs(120)).expect("flush");
}

/// The hand-written loop: assign every partition at the beginning, poll, count.
fn hand_loop(b: &str, topic: &str, records: usize) -> (f64, f64, i64) {
    let (t, cpu) = (Instant::now(), cpu_seconds());
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", b)
        .set("group.id", unique_topic("bench-hand"))
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let mut tpl = rdkafka::TopicPartitionList::new();
    for p in 0..PARTITIONS {
        tpl.add_partition_offset(topic, p, rdkafka::Offset::Beginning).unwrap();
    }
    c.assign(&tpl).unwrap();
    let (mut n, mut chars) = (0usize, 0i64);
    while n < records {
        if let Some(Ok(m)) = c.poll(Duration::from_millis(100)) {
            n += 1;
            if let Some(Ok(v)) = m.payload_view::<str>() {
                chars += v.chars().count() as i64;
            }
        }
    }
    (t.elapsed().as_secs_f64(), cpu_seconds() - cpu, chars)
}

/// flowgate: the Kafka source feeding a count, trigger available-now.
fn flowgate_run(b: &str, topic: &str, records: usize) -> (f64, f64, i64, Vec<f64>) {
    let (t, cpu) = (Instant::now(), cpu_seconds());
    let table = MemoryTable::new();
    let q = CountAll::builder()
        .msgs(Source::kafka(b).subscribe(topic).starting_offsets("earliest").max_offsets_per_trigger(50_000))
        .sink(Sink::memory(&table))
        .trigger(Trigger::available_now())
        .start()
        .expect("start");
    q.await_termination().expect("query");
    let (wall, cpu) = (t.elapsed().as_secs_f64(), cpu_seconds() - cpu);
    let rows: Vec<Total> = table.rows().expect("rows");
    let last = rows.last().expect("a result");
    assert_eq!(last.n as usize, records, "flowgate counted every record once");
    let progress = q.recent_progress();
    let phase = |k: &str| progress.iter().filter_map(|p| p.duration_ms.get(k)).sum::<u64>();
    println!(
        "  flowgate: {} batches; ms in latestOffset {}, getBatch {}, addBatch {}, walCommit {}",
        progress.len(),
        phase("latestOffset"),
        phase("getBatch"),
        phase("addBatch"),
        phase("walCommit")
    );
    let lat = progress.iter().filter_map(|p| p.duration_ms.get("triggerExecution").map(|v| *v as f64)).collect();
    (wall, cpu, last.chars.unwrap_or(0), lat)
}

/// The sink's time per batch (ms, the progress's `addBatch`) over `batches` micro-batches.
fn sink_run(b: &str, transactional: bool, batches: usize, rows: usize) -> Vec<f64> {
    let topic = unique_topic(if transactional { "bench-sink-txn" } else { "bench-sink-alo" });
    create_topic(b, &topic, PARTITIONS);
    let cp = tempfile::tempdir().unwrap();
    let input = MemoryStream::<Row>::new();
    let mut sink = Sink::kafka(b).topic(&topic).kafka("linger.ms", "1");
    if transactional {
        sink = sink.transactional();
    }
    let q = Copy::builder().rows(Source::memory(&input)).sink(sink.build()).checkpoint(cp.path()).start().unwrap();
    let batch: Vec<Row> = (0..rows)
        .map(|i| Row { key: Some(format!("k{i}")), value: Some(format!("value {i:>10} some payload")) })
        .collect();
    for _ in 0..batches {
        input.add(batch.clone());
        q.process_all_available().unwrap();
    }
    q.stop().unwrap();
    // The sink's own time per batch (`addBatch`), not the engine's idle polling between them.
    q.recent_progress().iter().filter_map(|p| p.duration_ms.get("addBatch").map(|v| *v as f64)).collect()
}

/// Runs the Kafka benches.
pub fn main(records: usize, runs: usize, batches: usize, batch_rows: usize) {
    let b = broker();
    let topic = unique_topic("bench-src");
    create_topic(&b, &topic, PARTITIONS);
    let t = Instant::now();
    produce_topic(&b, &topic, records);
    println!("produced {records} records to {topic} in {:.1} s", t.elapsed().as_secs_f64());
    // Best (wall, cpu) seconds of each.
    let mut best_hand: Option<(f64, f64)> = None;
    let mut best_fg: Option<(f64, f64)> = None;
    let mut latencies = Vec::new();
    for run in 0..runs {
        let (hw, hc, hchars) = hand_loop(&b, &topic, records);
        let (fw, fc, fchars, lat) = flowgate_run(&b, &topic, records);
        assert_eq!(hchars, fchars, "the same answer");
        println!("run {run}: hand {hw:.2} s wall {hc:.2} s cpu; flowgate {fw:.2} s wall {fc:.2} s cpu");
        if best_hand.is_none_or(|(w, _)| hw < w) {
            best_hand = Some((hw, hc));
        }
        if best_fg.is_none_or(|(w, _)| fw < w) {
            best_fg = Some((fw, fc));
        }
        latencies.extend(lat);
    }
    let ((hw, hc), (fw, fc)) = (best_hand.unwrap(), best_fg.unwrap());
    latencies.sort_by(f64::total_cmp);
    let r = records as f64;
    println!();
    println!("| source: {records} records, {PARTITIONS} partitions | records/s | records per CPU-s | batch p50 ms | batch p99 ms |");
    println!("|---|---|---|---|---|");
    println!("| hand-written rdkafka loop | {:.0} | {:.0} | | |", r / hw, r / hc.max(0.01));
    println!(
        "| flowgate Kafka source + count | {:.0} | {:.0} | {:.0} | {:.0} |",
        r / fw,
        r / fc.max(0.01),
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99)
    );
    println!("| flowgate / hand | {:.2} | {:.2} | | |", hw / fw, (r / fc.max(0.01)) / (r / hc.max(0.01)));

    let mut alo = sink_run(&b, false, batches, batch_rows);
    let mut txn = sink_run(&b, true, batches, batch_rows);
    alo.sort_by(f64::total_cmp);
    txn.sort_by(f64::total_cmp);
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    println!();
    println!("| sink: {batches} batches of {batch_rows} rows | ms/batch p50 | p99 | mean | records/s |");
    println!("|---|---|---|---|---|");
    for (name, v) in [("at-least-once (idempotent)", &alo), ("transactional (one txn per batch)", &txn)] {
        println!(
            "| {name} | {:.1} | {:.1} | {:.1} | {:.0} |",
            percentile(v, 0.5),
            percentile(v, 0.99),
            mean(v),
            batch_rows as f64 / (mean(v) / 1000.0)
        );
    }
    println!(
        "| transactional / at-least-once | {:.2} | | {:.2} | |",
        percentile(&txn, 0.5) / percentile(&alo, 0.5),
        mean(&txn) / mean(&alo)
    );

    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/bench-kafka.csv");
    let csv = format!(
        "what,records_per_s,records_per_cpu_s,p50_ms,p99_ms\nhand_loop,{:.0},{:.0},,\nflowgate_source,{:.0},{:.0},{:.1},{:.1}\nsink_at_least_once,{:.0},,{:.1},{:.1}\nsink_transactional,{:.0},,{:.1},{:.1}\n",
        r / hw,
        r / hc.max(0.01),
        r / fw,
        r / fc.max(0.01),
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99),
        batch_rows as f64 / (mean(&alo) / 1000.0),
        percentile(&alo, 0.5),
        percentile(&alo, 0.99),
        batch_rows as f64 / (mean(&txn) / 1000.0),
        percentile(&txn, 0.5),
        percentile(&txn, 0.99),
    );
    if std::fs::write(&path, csv).is_ok() {
        println!("csv: {}", path.display());
    }
}
