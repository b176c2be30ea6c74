//! Exactly-once under failure for arbitrary stateful processing: the `sessions_to_file`
//! example (`flat_map_groups_with_state` with typed user state and event-time timeouts) and
//! the `tws_sessions_to_file` one (Spark 4's `transformWithState`: a `StatefulProcessor` with
//! value, list and map state and event-time timers) are each killed with SIGKILL at random
//! moments and restarted until they finish. Every committed batch must then hold exactly the
//! rows of the same batch of an uninterrupted run over the same input (same files, the same
//! clean exits), batch by batch: a state restored wrong (a session, a list element or a map
//! entry lost or doubled, a timeout or timer lost or restored late) changes some batch's
//! closed sessions.
//! The test counts the kills that landed between a batch's offset entry and its commit entry
//! and requires some.
//!
//! `FLOWGATE_KILLS=200 cargo test -p flowgate-examples --test sessions_to_file_kill` for a
//! longer run (each test).

use std::path::Path;
use std::process::{Command, Stdio};

mod common;
use common::{rfc3339, Rng};

/// Kills in CI; `FLOWGATE_KILLS` overrides.
const DEFAULT_KILLS: usize = 20;
/// Rows per input file.
const ROWS_PER_FILE: usize = 40;
/// Users (keys).
const USERS: u64 = 9;

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

fn command(bin: &Path, input: &Path, output: &Path, checkpoint: &Path) -> Command {
    let mut c = Command::new(bin);
    c.args(["--input", input.to_str().unwrap(), "--output", output.to_str().unwrap()])
        .args(["--checkpoint", checkpoint.to_str().unwrap()]);
    c
}

#[test]
fn killed_and_restarted_closes_the_same_sessions_in_the_same_batches() {
    killed_and_restarted("sessions_to_file", 13);
}

#[test]
fn killed_and_restarted_the_stateful_processor_closes_the_same_sessions_in_the_same_batches() {
    killed_and_restarted("tws_sessions_to_file", 31);
}

/// Kills and restarts example `example` (seeded input) and compares its batches with an
/// uninterrupted run's.
fn killed_and_restarted(example: &str, seed: u64) {
    let bin = flowgate_examples::example_binary(example);
    let kills_wanted = common::kills_wanted(DEFAULT_KILLS);
    let root = tempfile::tempdir().unwrap();
    let (input, output, checkpoint) = (root.path().join("in"), root.path().join("out"), root.path().join("cp"));
    std::fs::create_dir_all(&input).unwrap();
    let mut rng = Rng(seed);
    let mut files = 0;
    for _ in 0..80 {
        write_input(&input, files, &mut rng);
        files += 1;
    }
    let spawn =
        || command(&bin, &input, &output, &checkpoint).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    let k = common::kill_at_random(kills_wanted, &mut rng, &checkpoint, &output, spawn, |rng| {
        let before = files;
        for _ in 0..8 {
            write_input(&input, files, rng);
            files += 1;
        }
        before
    });
    common::run_to_end(command(&bin, &input, &output, &checkpoint));
    let common::Kills { kills, mid_batch, mut clean_exits, .. } = k;
    clean_exits.push(files);
    let (ref_input, ref_output, ref_checkpoint) =
        (root.path().join("ref-in"), root.path().join("ref-out"), root.path().join("ref-cp"));
    common::uninterrupted_run(&[(&input, &ref_input)], &clean_exits, || {
        common::run_to_end(command(&bin, &ref_input, &ref_output, &ref_checkpoint))
    });
    let got = common::assert_same_batches(&output, &ref_output);
    let ids = got.len();
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
        "{example}: {kills} kills ({mid_batch} between a batch's offsets and its commit), {} clean exits, {files} input files, \
         {} committed batches equal to the uninterrupted run's, {sessions} sessions ({by_timeout} closed by timeout)",
        clean_exits.len(),
        ids
    );
}
