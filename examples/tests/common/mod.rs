//! What the kill tests share: deterministic data and kill times, the kill loop itself, the
//! uninterrupted reference run and the batch-by-batch comparison of the file sink's output.
//! Each test writes its own input and its own independent answer.
#![allow(dead_code, reason = "each test binary uses part of it")]

use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant, SystemTime};

/// SplitMix64, for deterministic data and kill times.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Seconds since the epoch as `YYYY-MM-DDTHH:MM:SSZ` (civil-from-days, Howard Hinnant).
pub fn rfc3339(secs: i64) -> String {
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

/// Kills to make: `FLOWGATE_KILLS`, or `default` (CI's).
pub fn kills_wanted(default: usize) -> usize {
    std::env::var("FLOWGATE_KILLS").ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// The highest batch id with an entry in `dir` (`offsets` or `commits`), if any.
pub fn last_entry(dir: &Path) -> Option<u64> {
    std::fs::read_dir(dir).ok()?.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok()).max()
}

/// The latest offset entry, if this run (started at `since`) wrote it.
pub fn written_since(checkpoint: &Path, since: SystemTime) -> Option<u64> {
    let last = last_entry(&checkpoint.join("offsets"))?;
    let modified = std::fs::metadata(checkpoint.join(format!("offsets/{last}"))).ok()?.modified().ok()?;
    (modified >= since).then_some(last)
}

/// Runs `cmd` to completion; fails the test if it fails.
pub fn run_to_end(mut cmd: Command) {
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "the example failed: {}", String::from_utf8_lossy(&out.stderr));
}

/// What a kill loop did.
#[derive(Default)]
pub struct Kills {
    pub kills: usize,
    /// Kills that landed between this run's offset entry and its commit entry.
    pub mid_batch: usize,
    /// Of those, kills before the file sink committed the batch.
    pub before_sink: usize,
    /// Kills before the run wrote an offset entry.
    pub before_any_batch: usize,
    /// The input file counts at which a run finished by itself (more input was added then).
    pub clean_exits: Vec<usize>,
}

/// Starts the example with `spawn` (its stderr piped) and kills it with SIGKILL at random
/// moments until `wanted` kills. Start-up takes a while (a debug build: tens of
/// milliseconds), and a kill before the run plans its first batch tests little: mostly wait
/// for this run's first offset entry, then kill a few milliseconds later; now and then kill
/// at any time. A run that finishes by itself must succeed; `more_input` then adds input and
/// returns the file count before it did.
pub fn kill_at_random(
    wanted: usize,
    rng: &mut Rng,
    checkpoint: &Path,
    output: &Path,
    mut spawn: impl FnMut() -> Child,
    mut more_input: impl FnMut(&mut Rng) -> usize,
) -> Kills {
    let mut k = Kills::default();
    let deadline = Instant::now() + Duration::from_secs(600);
    while k.kills < wanted {
        assert!(Instant::now() < deadline, "fault injection took too long ({} kills)", k.kills);
        let started = SystemTime::now();
        let mut child = spawn();
        if rng.below(4) != 0 {
            let wait_until = Instant::now() + Duration::from_secs(5);
            while written_since(checkpoint, started).is_none()
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
                k.kills += 1;
                match written_since(checkpoint, started) {
                    None => k.before_any_batch += 1,
                    // The latest offset entry is this run's, and has no commit entry.
                    Some(planned) if last_entry(&checkpoint.join("commits")) < Some(planned) => {
                        k.mid_batch += 1;
                        // Before the sink committed it: the re-run's rows are the ones kept.
                        let sunk = flowgate::sink::file::read_committed_json_rows(output).unwrap_or_default();
                        if sunk.last().map(|(b, _)| *b) < Some(planned) {
                            k.before_sink += 1;
                        }
                    }
                    Some(_) => {}
                }
            }
            Some(status) => {
                let mut err = String::new();
                std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
                assert!(status.success(), "the example failed: {status}\n{err}");
                let files = more_input(rng);
                k.clean_exits.push(files);
            }
        }
    }
    k
}

/// The uninterrupted run: the same input files (`NNNNN.json` in each `(killed run's dir,
/// reference dir)` pair) arriving at the same points — each batch is one file per source, and
/// the clean exits decide where a no-data batch runs — with `run` run to the end after each.
pub fn uninterrupted_run(dirs: &[(&Path, &Path)], clean_exits: &[usize], mut run: impl FnMut()) {
    for (_, to) in dirs {
        std::fs::create_dir_all(to).unwrap();
    }
    let mut copied = 0;
    for &upto in clean_exits {
        for i in copied..upto {
            let name = format!("{i:05}.json");
            for (from, to) in dirs {
                let tmp = to.join(format!(".{name}"));
                std::fs::copy(from.join(&name), &tmp).unwrap();
                std::fs::rename(&tmp, to.join(&name)).unwrap();
            }
        }
        copied = upto;
        run();
    }
}

/// Committed rows by batch, each batch's rows as sorted JSON text.
pub fn committed_batches(output: &Path) -> Vec<(u64, Vec<String>)> {
    flowgate::sink::file::read_committed_json_rows(output)
        .unwrap()
        .into_iter()
        .map(|(b, rows)| {
            let mut rows: Vec<String> = rows.iter().map(|r| r.to_string()).collect();
            rows.sort();
            (b, rows)
        })
        .collect()
}

/// Asserts that the killed run committed batches `0..n`, each once, each holding exactly the
/// rows of the uninterrupted run's batch; returns them.
pub fn assert_same_batches(output: &Path, reference: &Path) -> Vec<(u64, Vec<String>)> {
    let got = committed_batches(output);
    let want = committed_batches(reference);
    let ids: Vec<u64> = got.iter().map(|(b, _)| *b).collect();
    assert_eq!(ids, (0..ids.len() as u64).collect::<Vec<_>>(), "committed batches are 0..n, each once");
    assert_eq!(got.len(), want.len(), "batches committed: killed run vs uninterrupted run");
    for ((b, rows), (_, want_rows)) in got.iter().zip(&want) {
        assert_eq!(rows, want_rows, "batch {b}: the killed run's rows differ from the uninterrupted run's");
    }
    got
}
