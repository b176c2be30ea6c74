//! The seed's continuous-mode example (`readStream.format("kafka") … writeStream.format("kafka")`)
//! as a micro-batch query: every record of one topic, its value upper-cased, to another topic,
//! exactly once through the transactional Kafka sink.
//!
//! ```text
//! scripts/kafka-broker.sh start
//! cargo run --release --features kafka --example kafka_to_kafka -- \
//!     --input in --output out --checkpoint /tmp/k2k-cp
//! ```
//!
//! Options: `--bootstrap HOST:PORT` (default `127.0.0.1:19092`), `--input TOPIC`,
//! `--output TOPIC`, `--checkpoint DIR`, `--at-least-once` (Spark's sink: no transactions),
//! `--max-offsets N` (per batch, default 200), `--available-now` (stop once the input read so
//! far is written: the program the fault-injection test kills and restarts).

use flowgate::prelude::*;

/// A record of the input topic, key and value as text (Spark's `CAST(key AS STRING)` …).
#[derive(Record)]
struct In {
    key: Option<String>,
    value: Option<String>,
}

/// What goes to the output topic: Spark's sink columns.
#[derive(Record)]
struct Out {
    key: Option<String>,
    value: Option<String>,
}

stream_query! {
    /// `selectExpr("CAST(key AS STRING) AS key", "upper(CAST(value AS STRING)) AS value")`
    query Upper(records: In) -> Out, mode = append {
        records.select(key, value = upper(value))
    }
}

fn main() -> flowgate::Result<()> {
    let need = |name: &str| {
        flowgate_examples::arg(name).ok_or_else(|| {
            flowgate::Error::Plan(format!(
                "missing --{name}; usage: kafka_to_kafka --input TOPIC --output TOPIC --checkpoint DIR"
            ))
        })
    };
    let bootstrap = flowgate_examples::arg("bootstrap").unwrap_or_else(|| "127.0.0.1:19092".to_string());
    let (input, output, checkpoint) = (need("input")?, need("output")?, need("checkpoint")?);
    let max_offsets: u64 = flowgate_examples::arg_or("max-offsets", 200).map_err(flowgate::Error::Plan)?;
    let flag = |f: &str| std::env::args().any(|a| a == f);
    let mut sink = Sink::kafka(&bootstrap).topic(&output);
    if !flag("--at-least-once") {
        sink = sink.transactional();
    }
    let query = Upper::builder()
        .records(
            Source::kafka(&bootstrap)
                .subscribe(&input)
                .starting_offsets("earliest")
                .max_offsets_per_trigger(max_offsets),
        )
        .sink(sink.build())
        .checkpoint(checkpoint)
        .trigger(if flag("--available-now") { Trigger::available_now() } else { Trigger::default() })
        .start()?;
    query.await_termination()
}
