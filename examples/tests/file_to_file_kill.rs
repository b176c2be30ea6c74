//! Exactly-once under failure: the `file_to_file` example is killed with SIGKILL at random
//! moments and restarted until it finishes; the committed output must then equal the answer
//! computed independently from the input — nothing lost, nothing counted twice.
//!
//! `FLOWGATE_KILLS=200 cargo test -p flowgate-examples --test file_to_file_kill` for a longer run
//! (CI kills at least 30 times).

use std::collections::HashMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Kills in CI; `FLOWGATE_KILLS` overrides.
const DEFAULT_KILLS: usize = 30;
/// Rows per input file.
const ROWS_PER_FILE: usize = 50;
/// Distinct keys.
const KEYS: u64 = 7;

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

/// Writes input file number `i`: event times advance about a minute per file with up to
/// 10 minutes of disorder, always well inside the 1-hour watermark, so no row is late and the
/// answer is a plain group-by. About one value in ten is negative (filtered out).
fn write_input(dir: &Path, i: usize, rng: &mut Rng, answer: &mut Answer) {
    let base = 1_704_110_400i64 + i as i64 * 60; // 2024-01-01 12:00 UTC + i minutes
    let mut text = String::new();
    for _ in 0..ROWS_PER_FILE {
        let ts = base + rng.below(600) as i64 - 300;
        let key = format!("k{}", rng.below(KEYS));
        let value = rng.below(110) as i64 - 10;
        let t = chrono_like(ts);
        text.push_str(&format!("{{\"ts\": \"{t}\", \"key\": \"{key}\", \"value\": {value}}}\n"));
        if value >= 0 {
            let w = ts - ts.rem_euclid(60);
            let e = answer.entry((chrono_like(w), key)).or_insert((0, 0));
            e.0 += 1;
            e.1 += value;
        }
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

#[test]
fn killed_and_restarted_gives_the_exact_answer() {
    let bin = flowgate_examples::example_binary("file_to_file");
    assert!(bin.exists(), "{} not built (cargo test builds examples)", bin.display());
    let kills_wanted: usize =
        std::env::var("FLOWGATE_KILLS").ok().and_then(|v| v.parse().ok()).unwrap_or(DEFAULT_KILLS);
    let root = tempfile::tempdir().unwrap();
    let (input, output, checkpoint) = (root.path().join("in"), root.path().join("out"), root.path().join("cp"));
    std::fs::create_dir_all(&input).unwrap();
    let mut rng = Rng(2024);
    let mut answer = Answer::new();
    let mut files = 0;
    for _ in 0..60 {
        write_input(&input, files, &mut rng, &mut answer);
        files += 1;
    }
    let run = || {
        Command::new(&bin)
            .args(["--input", input.to_str().unwrap(), "--output", output.to_str().unwrap()])
            .args(["--checkpoint", checkpoint.to_str().unwrap()])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let mut kills = 0;
    let deadline = Instant::now() + Duration::from_secs(600);
    while kills < kills_wanted {
        assert!(Instant::now() < deadline, "fault injection took too long ({kills} kills)");
        let mut child = run();
        std::thread::sleep(Duration::from_millis(2 + rng.below(40)));
        match child.try_wait().unwrap() {
            None => {
                child.kill().unwrap(); // SIGKILL
                child.wait().unwrap();
                kills += 1;
            }
            Some(status) => {
                let mut err = String::new();
                std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
                assert!(status.success(), "the example failed: {status}\n{err}");
                // It caught up before we killed it: give it more input and go on.
                for _ in 0..10 {
                    write_input(&input, files, &mut rng, &mut answer);
                    files += 1;
                }
            }
        }
    }
    let out = run().wait_with_output().unwrap();
    assert!(out.status.success(), "final run failed: {}", String::from_utf8_lossy(&out.stderr));

    // For each (window, key), the row of the latest committed batch that has it.
    let committed = flowgate::sink::file::read_committed_json_rows(&output).unwrap();
    let batches: Vec<u64> = committed.iter().map(|(b, _)| *b).collect();
    assert_eq!(batches, (0..batches.len() as u64).collect::<Vec<_>>(), "committed batches are 0..n, each once");
    let mut last: HashMap<(String, String), (i64, i64)> = HashMap::new();
    for (_, rows) in &committed {
        for r in rows {
            let key = (r["window_start"].as_str().unwrap().to_string(), r["key"].as_str().unwrap().to_string());
            last.insert(key, (r["count"].as_i64().unwrap(), r["sum"].as_i64().unwrap()));
        }
    }
    assert_eq!(last.len(), answer.len(), "groups in the output vs the input");
    for (k, v) in &answer {
        assert_eq!(last.get(k), Some(v), "group {k:?}");
    }
    eprintln!(
        "{kills} kills, {files} input files, {} committed batches, {} groups: exact",
        batches.len(),
        answer.len()
    );
}
