//! Exactly-once under failure for arbitrary stateful processing: the `sessions_to_file`
//! example (`flat_map_groups_with_state` with typed user state and event-time timeouts) is
//! killed with SIGKILL at random moments and restarted until it finishes. Every committed batch
//! must then hold exactly the rows of the same batch of an uninterrupted run over the same
//! input (same files, the same clean exits), batch by batch: a state restored wrong (a session
//! lost or doubled, a timeout lost or restored late) changes some batch's closed sessions.
//! The test counts the kills that landed between a batch's offset entry and its commit entry
//! and requires some.
//!
//! `FLOWGATE_KILLS=200 cargo test -p flowgate-examples --test sessions_to_file_kill` for a
//! longer run.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

/// Kills in CI; `FLOWGATE_KILLS` overrides.
const DEFAULT_KILLS: usize = 20;
/// Rows per input file.
const ROWS_PER_FILE: usize = 40;
/// Users (keys).
const USERS: u64 = 9;

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

/// Writes input file `i`: event times advance two minutes per file with a minute of disorder.
/// Each user is active in bursts (period 27 files): three files, a pause of three (6-8 minutes:
/// the session closes by the gap when the user is back), three more, then 36 minutes of
/// silence (the watermark passes the session's last event plus the gap: it closes by its
/// timeout). One row in twenty is 15 minutes behind its file: behind the 10-minute watermark
/// and dropped, or not, depending on the watermark the batch runs with.
fn write_input(dir: &Path, i: usize, rng: &mut Rng) {
    let base = 1_704_110_400i64 + i as i64 * 120;
    let mut text = String::new();
    for _ in 0..ROWS_PER_FILE {
        let user = rng.below(USERS);
        let phase = (i as u64 + 3 * user) % 27;
        if !(phase < 3 || (6..9).contains(&phase)) {
            continue;
        }
        let ts = if rng.below(20) == 0 { base - 900 - rng.below(60) as i64 } else { base - rng.below(60) as i64 };
        let clicks = rng.below(5);
        text.push_str(&format!("{{\"ts\": \"{}\", \"user\": \"u{user}\", \"clicks\": {clicks}}}\n", rfc3339(ts)));
    }
    let tmp = dir.join(format!(".{i:05}.tmp"));
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, dir.join(format!("{i:05}.json"))).unwrap();
}

/// Seconds since the epoch as `YYYY-MM-DDTHH:MM:SSZ` (civil-from-days, Howard Hinnant).
fn rfc3339(secs: i64) -> String {
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

fn command(bin: &Path, input: &Path, output: &Path, checkpoint: &Path) -> Command {
    let mut c = Command::new(bin);
    c.args(["--input", input.to_str().unwrap(), "--output", output.to_str().unwrap()])
        .args(["--checkpoint", checkpoint.to_str().unwrap()]);
    c
}

/// Runs the example to completion; fails the test if it fails.
fn run_to_end(bin: &Path, input: &Path, output: &Path, checkpoint: &Path) {
    let out = command(bin, input, output, checkpoint).output().unwrap();
    assert!(out.status.success(), "the example failed: {}", String::from_utf8_lossy(&out.stderr));
}

/// Committed rows by batch, each batch's rows as sorted JSON text.
fn committed_batches(output: &Path) -> Vec<(u64, Vec<String>)> {
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

#[test]
fn killed_and_restarted_closes_the_same_sessions_in_the_same_batches() {
    let bin = flowgate_examples::example_binary("sessions_to_file");
    let kills_wanted: usize =
        std::env::var("FLOWGATE_KILLS").ok().and_then(|v| v.parse().ok()).unwrap_or(DEFAULT_KILLS);
    let root = tempfile::tempdir().unwrap();
    let (input, output, checkpoint) = (root.path().join("in"), root.path().join("out"), root.path().join("cp"));
    std::fs::create_dir_all(&input).unwrap();
    let mut rng = Rng(13);
    let mut files = 0;
    for _ in 0..80 {
        write_input(&input, files, &mut rng);
        files += 1;
    }
    let mut clean_exits = Vec::new();
    let (mut kills, mut mid_batch) = (0, 0);
    let deadline = Instant::now() + Duration::from_secs(600);
    while kills < kills_wanted {
        assert!(Instant::now() < deadline, "fault injection took too long ({kills} kills)");
        let started = SystemTime::now();
        let mut child =
            command(&bin, &input, &output, &checkpoint).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
        if rng.below(4) != 0 {
            // Mostly: wait for this run's first offset entry, then kill a little later.
            let wait_until = Instant::now() + Duration::from_secs(5);
            while written_since(&checkpoint, started).is_none()
                && child.try_wait().unwrap().is_none()
                && Instant::now() < wait_until
            {
                std::thread::sleep(Duration::from_micros(500));
            }
            std::thread::sleep(Duration::from_millis(rng.below(15)));
        } else {
            std::thread::sleep(Duration::from_millis(2 + rng.below(40)));
        }
        match child.try_wait().unwrap() {
            None => {
                child.kill().unwrap(); // SIGKILL
                child.wait().unwrap();
                kills += 1;
                if let Some(planned) = written_since(&checkpoint, started) {
                    if last_entry(&checkpoint.join("commits")) < Some(planned) {
                        mid_batch += 1;
                    }
                }
            }
            Some(status) => {
                let mut err = String::new();
                std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
                assert!(status.success(), "the example failed: {status}\n{err}");
                clean_exits.push(files);
                for _ in 0..8 {
                    write_input(&input, files, &mut rng);
                    files += 1;
                }
            }
        }
    }
    run_to_end(&bin, &input, &output, &checkpoint);
    clean_exits.push(files);

    // The uninterrupted run: the same files, arriving at the same points.
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
        run_to_end(&bin, &ref_input, &ref_output, &ref_checkpoint);
    }

    let got = committed_batches(&output);
    let want = committed_batches(&ref_output);
    let ids: Vec<u64> = got.iter().map(|(b, _)| *b).collect();
    assert_eq!(ids, (0..ids.len() as u64).collect::<Vec<_>>(), "committed batches are 0..n, each once");
    assert_eq!(got.len(), want.len(), "batches committed: killed run vs uninterrupted run");
    for ((b, rows), (_, want_rows)) in got.iter().zip(&want) {
        assert_eq!(rows, want_rows, "batch {b}: the killed run's sessions differ from the uninterrupted run's");
    }
    let sessions: usize = got.iter().map(|(_, r)| r.len()).sum();
    let by_timeout = got.iter().flat_map(|(_, r)| r).filter(|r| r.contains("\"closed_by\":\"timeout\"")).count();
    assert!(
        by_timeout > 0 && by_timeout < sessions,
        "sessions closed both ways: {by_timeout} of {sessions} by timeout"
    );
    assert!(sessions > 20, "{sessions} sessions");
    assert!(
        mid_batch >= kills / 4,
        "{mid_batch} of {kills} kills landed between a batch's offset entry and its commit"
    );
    eprintln!(
        "{kills} kills ({mid_batch} between a batch's offsets and its commit), {} clean exits, {files} input files, \
         {} committed batches equal to the uninterrupted run's, {sessions} sessions ({by_timeout} closed by timeout)",
        clean_exits.len(),
        ids.len()
    );
}
