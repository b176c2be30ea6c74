//! Exactly-once under failure: the `file_to_file` example is killed with SIGKILL at random
//! moments and restarted until it finishes. Then every committed batch must hold exactly the
//! rows of the same batch of an uninterrupted run over the same input (same batches: one file
//! each; the same clean exits where the killed run caught up), batch by batch; and the last
//! row of every on-time group must equal the answer computed independently from the input.
//!
//! The input has late rows: rows 55 to 60 minutes behind their file, around the 1-hour
//! watermark, so a watermark restored too low after a kill counts rows the uninterrupted run
//! drops, and one restored too high drops rows it counts — both change some batch's rows.
//! (Checked by planting each bug, a restored watermark 30 minutes too high or too low, in
//! `engine/microbatch.rs`: this test then fails — on batch 2's rows when too low, on the
//! batches committed when too high — and so does `codegen-tests/tests/crash_sweep.rs`, at its
//! first crash after a commit.)
//! Rows with a negative value are filtered out. The test counts the kills that landed between
//! a batch's offset entry and its commit entry (mid-batch) and requires some: a kill during
//! start-up proves nothing.
//!
//! `FLOWGATE_KILLS=200 cargo test -p flowgate-examples --test file_to_file_kill` for a longer run
//! (CI kills at least 30 times).
//!
//! The second test runs the example's query of two stateful operators (`--dedup`: a
//! deduplication, then the windowed aggregation) over input with duplicate rows, within a file
//! and across files: both operators' state must come back from the checkpoint exactly.

use std::collections::HashMap;
use std::path::Path;
use std::process::{Command, Stdio};

mod common;
use common::{rfc3339, Rng};

/// Kills in CI; `FLOWGATE_KILLS` overrides.
const DEFAULT_KILLS: usize = 30;
/// Kills of the two-operator query in CI (fewer: the first test covers the kill points).
const DEFAULT_KILLS_DEDUP: usize = 20;
/// Rows per input file.
const ROWS_PER_FILE: usize = 50;
/// Distinct keys of on-time rows.
const KEYS: u64 = 7;
/// Rows per file near the watermark (keys `late0`…`late2`, not in the independent answer).
const LATE_ROWS_PER_FILE: usize = 10;

/// (window start, key) → (count, sum), computed directly from the rows.
type Answer = HashMap<(String, String), (i64, i64)>;

/// Duplicates of earlier rows to write into the next file (`--dedup` runs only).
#[derive(Default)]
struct Duplicates {
    on: bool,
    /// The on-time lines of the previous file.
    previous: Vec<String>,
    /// Every on-time line written: equal lines have equal event times, so they are at most
    /// ten files (minutes) apart, inside the watermark, and the second is always dropped.
    seen: std::collections::HashSet<String>,
}

/// Writes input file number `i`: event times advance about a minute per file with up to
/// 10 minutes of disorder, well inside the 1-hour watermark, so these rows are never late and
/// their answer is a plain group-by. About one value in ten is negative (filtered out). Then a
/// few rows 55 to 60 minutes behind, whose fate depends on the watermark the batch runs with
/// (keys `lateN`: compared only with the uninterrupted run).
///
/// With duplicates on, the file also repeats some of its own rows and of the previous file's:
/// rows a deduplication drops, so the answer does not count them (a generated row that equals
/// an earlier one by chance is not counted twice either).
fn write_input(dir: &Path, i: usize, rng: &mut Rng, answer: &mut Answer, dups: &mut Duplicates) {
    let base = 1_704_110_400i64 + i as i64 * 60; // 2024-01-01 12:00 UTC + i minutes
    let mut text = String::new();
    let mut lines = Vec::new();
    for _ in 0..ROWS_PER_FILE {
        let ts = base + rng.below(600) as i64 - 300;
        let key = format!("k{}", rng.below(KEYS));
        let value = rng.below(110) as i64 - 10;
        let t = rfc3339(ts);
        let line = format!("{{\"ts\": \"{t}\", \"key\": \"{key}\", \"value\": {value}}}\n");
        text.push_str(&line);
        let seen = dups.on && !dups.seen.insert(line.clone());
        lines.push(line);
        if value >= 0 && !seen {
            let w = ts - ts.rem_euclid(60);
            let e = answer.entry((rfc3339(w), key)).or_insert((0, 0));
            e.0 += 1;
            e.1 += value;
        }
    }
    if dups.on {
        for _ in 0..5 {
            let from = if rng.below(2) == 0 && !dups.previous.is_empty() { &dups.previous } else { &lines };
            text.push_str(&from[rng.below(from.len() as u64) as usize].clone());
        }
        dups.previous = lines;
    }
    for _ in 0..LATE_ROWS_PER_FILE {
        // The watermark that drops late rows in a batch is the one computed two batches before
        // (Spark's: the previous batch ran with it for eviction): about `base - 3420` s, the
        // latest row of the file before the previous one less the hour. These rows fall in
        // windows ending from `base - 3540` to `base - 3300`: two of five are late, and a
        // watermark one batch (a minute) off decides one in five differently.
        let ts = base - 3600 + rng.below(300) as i64;
        let t = rfc3339(ts);
        text.push_str(&format!(
            "{{\"ts\": \"{t}\", \"key\": \"late{}\", \"value\": {}}}\n",
            rng.below(3),
            rng.below(100)
        ));
    }
    let tmp = dir.join(format!(".{i:05}.tmp"));
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, dir.join(format!("{i:05}.json"))).unwrap();
}

#[test]
fn killed_and_restarted_gives_the_exact_answer() {
    kill_and_compare(false, DEFAULT_KILLS);
}

#[test]
fn two_stateful_operators_killed_and_restarted_give_the_exact_answer() {
    kill_and_compare(true, DEFAULT_KILLS_DEDUP);
}

/// Kills the example (`--dedup` when `dedup`) `default_kills` times (or `FLOWGATE_KILLS`),
/// then compares with an uninterrupted run and the independent answer.
fn kill_and_compare(dedup: bool, default_kills: usize) {
    let bin = flowgate_examples::example_binary("file_to_file");
    assert!(bin.exists(), "{} not built (cargo test builds examples)", bin.display());
    let extra: &[&str] = if dedup { &["--dedup"] } else { &[] };
    let mut dups = Duplicates { on: dedup, ..Duplicates::default() };
    let kills_wanted = common::kills_wanted(default_kills);
    let root = tempfile::tempdir().unwrap();
    let (input, output, checkpoint) = (root.path().join("in"), root.path().join("out"), root.path().join("cp"));
    std::fs::create_dir_all(&input).unwrap();
    let mut rng = Rng(2024);
    let mut answer = Answer::new();
    let mut files = 0;
    for _ in 0..60 {
        write_input(&input, files, &mut rng, &mut answer, &mut dups);
        files += 1;
    }
    let command = |input: &Path, output: &Path, checkpoint: &Path| {
        let mut c = Command::new(&bin);
        c.args(["--input", input.to_str().unwrap(), "--output", output.to_str().unwrap()])
            .args(["--checkpoint", checkpoint.to_str().unwrap()])
            .args(extra);
        c
    };
    let spawn = || command(&input, &output, &checkpoint).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    let k = common::kill_at_random(kills_wanted, &mut rng, &checkpoint, &output, spawn, |rng| {
        // It caught up before we killed it: give it more input and go on.
        let before = files;
        for _ in 0..10 {
            write_input(&input, files, rng, &mut answer, &mut dups);
            files += 1;
        }
        before
    });
    common::run_to_end(command(&input, &output, &checkpoint));
    let common::Kills { kills, mid_batch, before_sink, before_any_batch, mut clean_exits } = k;
    clean_exits.push(files);
    let (ref_input, ref_output, ref_checkpoint) =
        (root.path().join("ref-in"), root.path().join("ref-out"), root.path().join("ref-cp"));
    common::uninterrupted_run(&[(&input, &ref_input)], &clean_exits, || {
        common::run_to_end(command(&ref_input, &ref_output, &ref_checkpoint))
    });
    let ids = common::assert_same_batches(&output, &ref_output).len();
    // The rows near the watermark made a difference: some were counted and some dropped.
    let mut late_counts: HashMap<(String, String), i64> = HashMap::new();
    for (_, rows) in flowgate::sink::file::read_committed_json_rows(&output).unwrap() {
        for r in rows.iter().filter(|r| r["key"].as_str().is_some_and(|k| k.starts_with("late"))) {
            let key = (r["window_start"].as_str().unwrap().to_string(), r["key"].as_str().unwrap().to_string());
            late_counts.insert(key, r["count"].as_i64().unwrap());
        }
    }
    let (late_counted, late_written) = (late_counts.values().sum::<i64>(), (files * LATE_ROWS_PER_FILE) as i64);
    assert!(0 < late_counted && late_counted < late_written, "{late_counted} of {late_written} late rows counted");

    // For each on-time (window, key), the row of the latest committed batch that has it.
    let committed = flowgate::sink::file::read_committed_json_rows(&output).unwrap();
    let mut last: HashMap<(String, String), (i64, i64)> = HashMap::new();
    for (_, rows) in &committed {
        for r in rows {
            let key = (r["window_start"].as_str().unwrap().to_string(), r["key"].as_str().unwrap().to_string());
            if !key.1.starts_with("late") {
                last.insert(key, (r["count"].as_i64().unwrap(), r["sum"].as_i64().unwrap()));
            }
        }
    }
    assert_eq!(last.len(), answer.len(), "groups in the output vs the input");
    for (k, v) in &answer {
        assert_eq!(last.get(k), Some(v), "group {k:?}");
    }
    assert!(
        mid_batch >= kills / 4,
        "{mid_batch} of {kills} kills landed between a batch's offset entry and its commit"
    );
    eprintln!(
        "{kills} kills ({mid_batch} between a batch's offsets and its commit, {before_sink} of them before the sink \
         committed it, {before_any_batch} before the run \
         wrote an offset entry), {} clean exits, {files} input files, {} committed batches equal to the uninterrupted \
         run's, {} on-time groups exact, {late_counted} of {late_written} rows near the watermark counted",
        clean_exits.len(),
        ids,
        answer.len()
    );
}
