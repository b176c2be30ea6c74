//! The seed's word count over a Kafka topic: each record's value is a line of text.
//!
//! ```text
//! scripts/kafka-broker.sh start                                  # a broker on 127.0.0.1:19092
//! cargo run --release --features kafka --example kafka_word_count -- --topic lines
//! ```
//!
//! and produce lines to the topic (any Kafka producer; e.g. `kcat -P -b 127.0.0.1:19092 -t
//! lines`) to see Spark-style tables of counts (complete mode, console sink).
//!
//! Options: `--bootstrap HOST:PORT` (default `127.0.0.1:19092`, the broker script's),
//! `--topic NAME` (default `lines`), `--starting-offsets earliest|latest` (default earliest).
//! With `--output DIR --checkpoint DIR` it writes the counts that changed in each batch
//! (update mode) as JSON lines through the exactly-once file sink instead, and with
//! `--available-now` it stops once it has read what the topic had when it started (the
//! program the fault-injection test kills and restarts). `--continuous INTERVAL` runs the
//! update-mode counts in continuous mode instead (a task per partition, the counts per epoch of
//! `INTERVAL`), and `--seconds S` stops it after `S` seconds (a stop commits the epoch in
//! progress).

use flowgate::prelude::*;

/// One Kafka record's value, as text (Spark's `CAST(value AS STRING)`).
#[derive(Record)]
struct Line {
    value: Option<String>,
}

#[derive(Record)]
struct WordCount {
    word: String,
    count: i64,
}

stream_query! {
    /// `lines.select(explode(split(value, " ")) as word).groupBy("word").count()`
    query WordCounts(lines: Line) -> WordCount, mode = complete {
        lines
            .flat_map(word = split(value, " "))
            .group_by(word)
            .agg(count() as count)
    }

    /// The same counts in update mode, for the file sink.
    query WordCountUpdates(lines: Line) -> WordCount, mode = update {
        lines
            .flat_map(word = split(value, " "))
            .group_by(word)
            .agg(count() as count)
    }
}

fn main() -> flowgate::Result<()> {
    let bootstrap = flowgate_examples::arg("bootstrap").unwrap_or_else(|| "127.0.0.1:19092".to_string());
    let topic = flowgate_examples::arg("topic").unwrap_or_else(|| "lines".to_string());
    let starting = flowgate_examples::arg("starting-offsets").unwrap_or_else(|| "earliest".to_string());
    let available_now = std::env::args().any(|a| a == "--available-now");
    let source = || -> Source<Line> {
        Source::kafka(&bootstrap).subscribe(&topic).starting_offsets(&starting).max_offsets_per_trigger(500).into()
    };
    let trigger = if available_now { Trigger::available_now() } else { Trigger::default() };
    let continuous = flowgate_examples::arg("continuous");
    let query = match (flowgate_examples::arg("output"), flowgate_examples::arg("checkpoint")) {
        (Some(output), Some(checkpoint)) if continuous.is_some() => WordCountUpdates::builder()
            .lines(source())
            .sink(Sink::file(output, SinkFormat::Json))
            .checkpoint(checkpoint)
            .trigger(Trigger::continuous(continuous.as_deref().unwrap_or("1 second")))
            .start()?,
        (Some(output), Some(checkpoint)) => WordCountUpdates::builder()
            .lines(source())
            .sink(Sink::file(output, SinkFormat::Json))
            .checkpoint(checkpoint)
            .trigger(trigger)
            .start()?,
        (None, None) => {
            let b = WordCounts::builder().lines(source()).sink(Sink::console()).trigger(trigger);
            match flowgate_examples::arg("checkpoint") {
                Some(cp) => b.checkpoint(cp).start()?,
                None => b.start()?,
            }
        }
        _ => return Err(flowgate::Error::Plan("--output and --checkpoint go together".into())),
    };
    match flowgate_examples::arg("seconds") {
        Some(s) => {
            let s: f64 = s.parse().map_err(|_| flowgate::Error::Plan(format!("--seconds {s}: not a number")))?;
            if !query.await_termination_timeout(std::time::Duration::from_secs_f64(s))? {
                query.stop()?;
            }
            match query.error() {
                Some(e) => Err(flowgate::Error::QueryFailed { name: query.name().to_string(), source: e }),
                None => Ok(()),
            }
        }
        None => query.await_termination(),
    }
}
