//! Exactly-once from and to Kafka under failure, through a real broker (tansu, started by
//! `scripts/kafka-broker.sh`): the Kafka examples are killed with SIGKILL at random moments
//! and restarted until they finish.
//!
//! - `kafka_word_count` (Kafka → file sink): the committed counts must equal the counts
//!   computed from what was produced, in micro-batch mode and in continuous mode (a task per
//!   partition, the stateful stage counting per epoch).
//! - `kafka_to_kafka` (Kafka → transactional Kafka sink): every batch of the offset log must be
//!   in the output exactly once, as one transaction, and every other attempt at it must be
//!   one that was cut short by a kill. The broker does not hide aborted records from
//!   `read_committed` readers (a tansu gap), so the test reads everything and tells attempts
//!   apart by the `flowgate.batch` / `flowgate.attempt` headers the sink writes, and checks the
//!   sink's commit marker (a transactional consumer-group offset, which tansu does apply only on
//!   commit).
//!
//! `FLOWGATE_KILLS=50` for a longer run.
#![cfg(feature = "kafka")]

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use flowgate::source::kafka::testing::{
    broker, committed_offset, consume, create_topic, produce, unique_topic, HeaderWatch, TestRecord,
};

/// Kills per test in CI; `FLOWGATE_KILLS` overrides.
const DEFAULT_KILLS: usize = 12;
const WORDS: [&str; 12] = ["ant", "bee", "cat", "dog", "eel", "fox", "gnu", "hen", "ibis", "jay", "kiwi", "lynx"];

/// SplitMix64, for deterministic data and kill times.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn kills_wanted() -> usize {
    std::env::var("FLOWGATE_KILLS").ok().and_then(|v| v.parse().ok()).unwrap_or(DEFAULT_KILLS)
}

/// Number of batches committed so far (entries of the checkpoint's commit log).
fn commits(checkpoint: &Path) -> usize {
    std::fs::read_dir(checkpoint.join("commits")).map_or(0, |d| d.count())
}

/// Runs `spawn` and kills it `kills` times, each time after it committed a random 0 to 2 more
/// batches and then a random 0-80 ms more (so kills land before, inside and after batches);
/// a run that finished on its own gets more input (`more`). Then runs it to completion.
/// Returns the pids killed.
fn kill_loop(
    spawn: &dyn Fn() -> Child,
    checkpoint: &Path,
    rng: &mut Rng,
    more: &mut dyn FnMut(),
    kills_wanted: usize,
    in_flight: Option<&dyn Fn() -> bool>,
) -> HashSet<u32> {
    let mut killed = HashSet::new();
    let deadline = Instant::now() + Duration::from_secs(600);
    let mut rounds = 0;
    while killed.len() < kills_wanted {
        assert!(Instant::now() < deadline, "fault injection took too long ({} kills)", killed.len());
        let mut child = spawn();
        let target = commits(checkpoint) + rng.below(3) as usize;
        let give_up = Instant::now() + Duration::from_secs(30);
        while commits(checkpoint) < target && Instant::now() < give_up && child.try_wait().unwrap().is_none() {
            std::thread::sleep(Duration::from_millis(2));
        }
        match in_flight {
            // Every other kill waits for a batch's records to show up before its commit.
            Some(in_flight) if killed.len() % 2 == 1 => {
                while !in_flight() && Instant::now() < give_up && child.try_wait().unwrap().is_none() {
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
            _ => std::thread::sleep(Duration::from_millis(rng.below(80))),
        }
        match child.try_wait().unwrap() {
            None => {
                let pid = child.id();
                child.kill().unwrap(); // SIGKILL
                child.wait().unwrap();
                killed.insert(pid);
            }
            Some(status) => {
                let mut err = String::new();
                std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
                assert!(status.success(), "the example failed: {status}\n{err}");
                rounds += 1;
                assert!(rounds < 200, "the example keeps finishing before it can be killed");
                more();
            }
        }
    }
    let mut child = spawn();
    let status = child.wait().unwrap();
    let mut err = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
    assert!(status.success(), "the last run failed: {status}\n{err}");
    killed
}

fn lines(rng: &mut Rng, n: usize, answer: &mut HashMap<String, i64>) -> Vec<TestRecord> {
    (0..n)
        .map(|i| {
            let words: Vec<&str> =
                (0..1 + rng.below(4)).map(|_| WORDS[rng.below(WORDS.len() as u64) as usize]).collect();
            for w in &words {
                *answer.entry(w.to_string()).or_default() += 1;
            }
            TestRecord::value((i % 3) as i32, words.join(" "))
        })
        .collect()
}

#[test]
fn kafka_to_file_killed_and_restarted_counts_every_record_once() {
    let b = broker();
    let bin = flowgate_examples::example_binary("kafka_word_count");
    let topic = unique_topic("kill-wc");
    create_topic(&b, &topic, 3);
    let root = tempfile::tempdir().unwrap();
    let (output, checkpoint) = (root.path().join("out"), root.path().join("cp"));
    let mut rng = Rng(14);
    let mut answer = HashMap::new();
    produce(&b, &topic, &lines(&mut rng, 3000, &mut answer));
    let spawn = || {
        Command::new(&bin)
            .args(["--bootstrap", &b, "--topic", &topic, "--available-now"])
            .args(["--output", output.to_str().unwrap(), "--checkpoint", checkpoint.to_str().unwrap()])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let mut more_rng = Rng(41);
    let mut more = || produce(&b, &topic, &lines(&mut more_rng, 1000, &mut answer));
    let killed = kill_loop(&spawn, &checkpoint, &mut rng, &mut more, kills_wanted(), None);
    // The answer, from the committed batches: each word's count in the last batch that has it.
    let mut got: HashMap<String, i64> = HashMap::new();
    for (_, rows) in flowgate::sink::file::read_committed_json_rows(&output).unwrap() {
        for r in rows {
            got.insert(r["word"].as_str().unwrap().to_string(), r["count"].as_i64().unwrap());
        }
    }
    assert_eq!(got, answer, "after {} kills", killed.len());
}

#[test]
fn kafka_to_file_in_continuous_mode_killed_and_restarted_counts_every_record_once() {
    // The same word count in continuous mode: a task per partition, the counts by the stateful
    // stage per 50 ms epoch, state and partition positions checkpointed per epoch.
    let b = broker();
    let bin = flowgate_examples::example_binary("kafka_word_count");
    let topic = unique_topic("kill-wc-cont");
    create_topic(&b, &topic, 3);
    let root = tempfile::tempdir().unwrap();
    let (output, checkpoint) = (root.path().join("out"), root.path().join("cp"));
    let mut rng = Rng(15);
    let mut answer = HashMap::new();
    produce(&b, &topic, &lines(&mut rng, 3000, &mut answer));
    let spawn = || {
        Command::new(&bin)
            .args(["--bootstrap", &b, "--topic", &topic, "--continuous", "50 milliseconds", "--seconds", "4"])
            .args(["--output", output.to_str().unwrap(), "--checkpoint", checkpoint.to_str().unwrap()])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let mut more_rng = Rng(51);
    let mut more = || produce(&b, &topic, &lines(&mut more_rng, 1000, &mut answer));
    let killed = kill_loop(&spawn, &checkpoint, &mut rng, &mut more, kills_wanted(), None);
    let committed = flowgate::sink::file::read_committed_json_rows(&output).unwrap();
    assert!(committed.windows(2).all(|w| w[0].0 < w[1].0), "each epoch committed once, in order");
    let mut got: HashMap<String, i64> = HashMap::new();
    for (_, rows) in committed {
        for r in rows {
            got.insert(r["word"].as_str().unwrap().to_string(), r["count"].as_i64().unwrap());
        }
    }
    assert_eq!(got, answer, "after {} kills", killed.len());
}

/// Reads the checkpoint's offset log: batch → the source's end offsets (Spark's JSON).
fn offset_log(checkpoint: &Path) -> BTreeMap<u64, serde_json::Value> {
    let mut out = BTreeMap::new();
    for e in std::fs::read_dir(checkpoint.join("offsets")).unwrap() {
        let e = e.unwrap();
        let Ok(batch) = e.file_name().to_string_lossy().parse::<u64>() else { continue };
        let bytes = flowgate::checkpoint::file::read_checked(&e.path()).unwrap().unwrap();
        let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        out.insert(batch, v["offsets"][0].clone());
    }
    out
}

fn query_id(checkpoint: &Path) -> String {
    let bytes = flowgate::checkpoint::file::read_checked(&checkpoint.join("metadata")).unwrap().unwrap();
    let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    v["id"].as_str().unwrap().to_string()
}

#[test]
fn kafka_to_kafka_transactional_killed_and_restarted_commits_each_batch_once() {
    let b = broker();
    let bin = flowgate_examples::example_binary("kafka_to_kafka");
    let (input, output) = (unique_topic("kill-in"), unique_topic("kill-out"));
    create_topic(&b, &input, 3);
    create_topic(&b, &output, 2);
    let root = tempfile::tempdir().unwrap();
    let checkpoint = root.path().join("cp");
    let mut n = 0usize;
    let mut batch_of = |count: usize| -> Vec<TestRecord> {
        let recs = (n..n + count).map(|i| TestRecord::value((i % 3) as i32, format!("record {i}"))).collect();
        n += count;
        recs
    };
    produce(&b, &input, &batch_of(3000));
    let spawn = || {
        Command::new(&bin)
            .args(["--bootstrap", &b, "--input", &input, "--output", &output, "--available-now"])
            .args(["--checkpoint", checkpoint.to_str().unwrap(), "--max-offsets", "150"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let mut rng = Rng(2026);
    let mut more = || produce(&b, &input, &batch_of(600));
    let watch = HeaderWatch::start(&b, &output, "flowgate.batch");
    let in_flight = || watch.max() >= commits(&checkpoint) as i64;
    let killed = kill_loop(&spawn, &checkpoint, &mut rng, &mut more, kills_wanted(), Some(&in_flight));
    drop(watch);
    let produced = n;

    // What each batch read, from the offset log, and the input records by position.
    let log = offset_log(&checkpoint);
    let commits = commits(&checkpoint);
    let inputs = consume(&b, &input, "read_uncommitted", produced, Duration::from_millis(500));
    assert_eq!(inputs.len(), produced);
    let value_at: HashMap<(i32, i64), String> = inputs
        .iter()
        .map(|r| ((r.partition, r.offset), String::from_utf8(r.value.clone().unwrap()).unwrap()))
        .collect();
    let mut expected: BTreeMap<u64, Vec<String>> = BTreeMap::new();
    let mut prev: HashMap<i32, i64> = HashMap::new();
    for (batch, ends) in &log {
        let mut values = Vec::new();
        for (p, end) in ends[&input].as_object().unwrap() {
            let p: i32 = p.parse().unwrap();
            let start = prev.get(&p).copied().unwrap_or(0);
            for o in start..end.as_i64().unwrap() {
                values.push(value_at[&(p, o)].to_uppercase());
            }
            prev.insert(p, end.as_i64().unwrap());
        }
        values.sort();
        expected.insert(*batch, values);
    }
    assert_eq!(prev.values().sum::<i64>() as usize, produced, "the offset log covers every input record");

    // Everything in the output, aborted attempts included, grouped by batch and attempt.
    let written = consume(&b, &output, "read_uncommitted", produced, Duration::from_millis(1500));
    let mut attempts: BTreeMap<u64, Vec<(String, Vec<String>)>> = BTreeMap::new();
    for r in &written {
        let batch: u64 = r.header("flowgate.batch").expect("batch header").parse().unwrap();
        let attempt = r.header("flowgate.attempt").expect("attempt header");
        let list = attempts.entry(batch).or_default();
        if !list.iter().any(|(a, _)| *a == attempt) {
            list.push((attempt.clone(), Vec::new()));
        }
        let entry = list.iter_mut().find(|(a, _)| *a == attempt).unwrap();
        entry.1.push(String::from_utf8(r.value.clone().unwrap()).unwrap());
    }
    let mut retried = 0;
    let mut total = 0;
    for (batch, want) in &expected {
        if want.is_empty() {
            continue;
        }
        let mut tries = attempts.get(batch).unwrap_or_else(|| panic!("batch {batch} was never written")).clone();
        // Attempts in the order they started: an attempt id is `<start time, hex ns>-<pid>`.
        tries.sort_by_key(|(a, _)| u128::from_str_radix(a.split('-').next().unwrap(), 16).unwrap());
        // The attempt that committed is the last one: the sink never starts another attempt
        // at a batch whose marker committed (checked below: the marker is past every batch).
        let (last, values) = tries.last().unwrap();
        let mut values = values.clone();
        values.sort();
        assert_eq!(&values, want, "batch {batch}: the committed attempt holds exactly the batch's records");
        total += values.len();
        for (attempt, _) in &tries[..tries.len() - 1] {
            let pid: u32 = attempt.rsplit('-').next().unwrap().parse().unwrap();
            assert!(killed.contains(&pid), "batch {batch}: attempt {attempt} (not the last) was not killed");
            assert_ne!(attempt, last);
        }
        retried += usize::from(tries.len() > 1);
    }
    assert_eq!(total, produced, "every input record is in exactly one committed batch");
    let marker = committed_offset(&b, &format!("flowgate-sink-{}", query_id(&checkpoint)), &output, 0);
    assert_eq!(marker, Some(*log.keys().last().unwrap() as i64 + 1), "the sink's marker names the last batch");
    assert_eq!(commits, log.len(), "every batch of the offset log is committed");
    assert!(retried > 0, "no kill landed inside a transaction: the test proved nothing about aborts");
    eprintln!(
        "kafka_to_kafka: {} kills, {} batches, {} of them written by more than one attempt, {} records",
        killed.len(),
        log.len(),
        retried,
        produced
    );
}
