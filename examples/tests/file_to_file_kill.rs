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
use std::time::{Duration, Instant, SystemTime};

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
        let t = chrono_like(ts);
        let line = format!("{{\"ts\": \"{t}\", \"key\": \"{key}\", \"value\": {value}}}\n");
        text.push_str(&line);
        let seen = dups.on && !dups.seen.insert(line.clone());
        lines.push(line);
        if value >= 0 && !seen {
            let w = ts - ts.rem_euclid(60);
            let e = answer.entry((chrono_like(w), key)).or_insert((0, 0));
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
        let t = chrono_like(ts);
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

/// Seconds since the epoch as `YYYY-MM-DDTHH:MM:SSZ` (civil-from-days, Howard Hinnant).
fn chrono_like(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z", rem / 3600, rem % 3600 / 60, rem % 60)
}

/// The highest batch id with an entry in `dir` (`offsets` or `commits`), if any.
fn last_entry(dir: &Path) -> Option<u64> {
    std::fs::read_dir(dir).ok()?.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok()).max()
}

/// The latest offset entry, if this run (started at `since`) wrote it.
fn written_since(checkpoint: &Path, since: SystemTime) -> Option<u64> {
    let last = last_entry(&checkpoint.join("offsets"))?;
    let modified = std::fs::metadata(checkpoint.join(format!("offsets/{last}"))).ok()?.modified().ok()?;
    (modified >= since).then_some(last)
}

/// Runs the example to completion over `input`; fails the test if it fails.
fn run_to_end(bin: &Path, input: &Path, output: &Path, checkpoint: &Path, extra: &[&str]) {
    let out = Command::new(bin)
        .args(["--input", input.to_str().unwrap(), "--output", output.to_str().unwrap()])
        .args(["--checkpoint", checkpoint.to_str().unwrap()])
        .args(extra)
        .output()
        .unwrap();
    assert!(out.status.success(), "the example failed: {}", String::from_utf8_lossy(&out.stderr));
}

/// Committed rows by batch, each batch's rows as sorted JSON text.
fn committed_batches(output: &Path) -> Vec<(u64, Vec<String>)> {
    let committed = flowgate::sink::file::read_committed_json_rows(output).unwrap();
    committed
        .into_iter()
        .map(|(b, rows)| {
            let mut rows: Vec<String> = rows.iter().map(|r| r.to_string()).collect();
            rows.sort();
            (b, rows)
        })
        .collect()
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
    let kills_wanted: usize =
        std::env::var("FLOWGATE_KILLS").ok().and_then(|v| v.parse().ok()).unwrap_or(default_kills);
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
    // The file counts at which the killed run finished cleanly (and more input was added).
    let mut clean_exits = Vec::new();
    let run = || {
        Command::new(&bin)
            .args(["--input", input.to_str().unwrap(), "--output", output.to_str().unwrap()])
            .args(["--checkpoint", checkpoint.to_str().unwrap()])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (mut kills, mut mid_batch, mut before_sink, mut before_any_batch) = (0, 0, 0, 0);
    let deadline = Instant::now() + Duration::from_secs(600);
    while kills < kills_wanted {
        assert!(Instant::now() < deadline, "fault injection took too long ({kills} kills)");
        let started = SystemTime::now();
        let mut child = run();
        // Start-up takes a while (a debug build: tens of milliseconds); a kill before the run
        // plans its first batch tests little. Mostly wait for this run's first offset entry,
        // then kill a few milliseconds later; now and then kill at any time.
        if rng.below(4) != 0 {
            let wait_until = Instant::now() + Duration::from_secs(5);
            while written_since(&checkpoint, started).is_none()
                && child.try_wait().unwrap().is_none()
                && Instant::now() < wait_until
            {
                std::thread::sleep(Duration::from_micros(500));
            }
            std::thread::sleep(Duration::from_millis(rng.below(12)));
        } else {
            std::thread::sleep(Duration::from_millis(2 + rng.below(40)));
        }
        match child.try_wait().unwrap() {
            None => {
                child.kill().unwrap(); // SIGKILL
                child.wait().unwrap();
                kills += 1;
                match written_since(&checkpoint, started) {
                    None => before_any_batch += 1,
                    // The latest offset entry is this run's, and has no commit entry.
                    Some(planned) if last_entry(&checkpoint.join("commits")) < Some(planned) => {
                        mid_batch += 1;
                        // Before the sink committed it: the re-run's rows are the ones kept.
                        let sunk = flowgate::sink::file::read_committed_json_rows(&output).unwrap_or_default();
                        if sunk.last().map(|(b, _)| *b) < Some(planned) {
                            before_sink += 1;
                        }
                    }
                    Some(_) => {}
                }
            }
            Some(status) => {
                let mut err = String::new();
                std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
                assert!(status.success(), "the example failed: {status}\n{err}");
                // It caught up before we killed it: give it more input and go on.
                clean_exits.push(files);
                for _ in 0..10 {
                    write_input(&input, files, &mut rng, &mut answer, &mut dups);
                    files += 1;
                }
            }
        }
    }
    run_to_end(&bin, &input, &output, &checkpoint, extra);
    clean_exits.push(files);

    // The uninterrupted run: the same files, arriving at the same points (each batch is one
    // file, and the clean exits decide where a no-data batch runs).
    let (ref_input, ref_output, ref_checkpoint) =
        (root.path().join("ref-in"), root.path().join("ref-out"), root.path().join("ref-cp"));
    std::fs::create_dir_all(&ref_input).unwrap();
    let mut copied = 0;
    for &upto in &clean_exits {
        for i in copied..upto {
            let name = format!("{i:05}.json");
            let tmp = ref_input.join(format!(".{name}"));
            std::fs::copy(input.join(&name), &tmp).unwrap();
            std::fs::rename(&tmp, ref_input.join(&name)).unwrap();
        }
        copied = upto;
        run_to_end(&bin, &ref_input, &ref_output, &ref_checkpoint, extra);
    }

    let got = committed_batches(&output);
    let want = committed_batches(&ref_output);
    let ids: Vec<u64> = got.iter().map(|(b, _)| *b).collect();
    assert_eq!(ids, (0..ids.len() as u64).collect::<Vec<_>>(), "committed batches are 0..n, each once");
    assert_eq!(got.len(), want.len(), "batches committed: killed run vs uninterrupted run");
    for ((b, rows), (_, want_rows)) in got.iter().zip(&want) {
        assert_eq!(rows, want_rows, "batch {b}: the killed run's rows differ from the uninterrupted run's");
    }
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
        ids.len(),
        answer.len()
    );
}
