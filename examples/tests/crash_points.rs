//! Every crash point: the `file_to_file` example (a stateful windowed aggregation with a
//! watermark, into the exactly-once file sink) is crashed at the N-th step of writing its
//! checkpoint and output files (`FLOWGATE_CRASH_AT=N`: a file's data, its fsync, the rename,
//! a directory fsync, a delete; see `runtime/src/checkpoint/crash.rs`), for every N until a run
//! no longer reaches N, then restarted without faults; the committed output must equal an
//! uninterrupted run's, batch by batch. Two sweeps: a plain crash (the process stops, the
//! files stay as they are), and a harsh one: a torn data write, and the renames whose
//! directory was not fsynced undone, as a power loss may do.
//!
//! A third sweep injects EIO at step N instead (`FLOWGATE_CRASH_EIO=1`): the run must stop
//! with an error that names the file and the OS error, unless the step was one the query can
//! do without (a snapshot or a cleanup delete, whose failure is logged), and the restart must
//! again be exact.
//!
//! The steps of helper threads (the offset log, the state commit, the commit log, snapshots)
//! interleave, so step N is not always the same write from one run to the next; the sweep
//! still stops the process at every step count of a run.

use std::path::Path;
use std::process::{Command, Output};

const FILES: usize = 4;

fn write_input(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    for i in 0..FILES {
        let base = 1_704_110_400i64 + i as i64 * 60;
        let mut text = String::new();
        for r in 0..20i64 {
            // On time, late by the 1-hour watermark in later files, and filtered out.
            let ts = if r % 7 == 3 { base - 3700 } else { base + r * 13 - 100 };
            let value = if r % 5 == 4 { -1 } else { r };
            let secs = ts.rem_euclid(86_400);
            let t = format!(
                "2024-01-0{}T{:02}:{:02}:{:02}Z",
                1 + ts.div_euclid(86_400) - 19_723,
                secs / 3600,
                secs % 3600 / 60,
                secs % 60
            );
            text.push_str(&format!("{{\"ts\": \"{t}\", \"key\": \"k{}\", \"value\": {value}}}\n", r % 3));
        }
        std::fs::write(dir.join(format!("{i:03}.json")), text).unwrap();
    }
}

fn run(bin: &Path, input: &Path, output: &Path, checkpoint: &Path, env: &[(&str, String)]) -> Output {
    let mut cmd = Command::new(bin);
    cmd.args(["--input", input.to_str().unwrap(), "--output", output.to_str().unwrap()])
        .args(["--checkpoint", checkpoint.to_str().unwrap()]);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

/// Committed rows by batch, each batch's rows sorted.
fn committed(output: &Path) -> Result<Vec<(u64, Vec<String>)>, String> {
    let batches = flowgate::sink::file::read_committed_json_rows(output).map_err(|e| e.to_string())?;
    Ok(batches
        .into_iter()
        .map(|(b, rows)| {
            let mut rows: Vec<String> = rows.iter().map(|r| r.to_string()).collect();
            rows.sort();
            (b, rows)
        })
        .collect())
}

/// Crashes a fresh run at every step N in turn; returns the number of crash points.
fn sweep(bin: &Path, root: &Path, input: &Path, want: &[(u64, Vec<String>)], harsh: bool) -> u64 {
    let mut n = 1;
    loop {
        let dir = root.join(format!("{}-{n}", if harsh { "harsh" } else { "plain" }));
        let (output, checkpoint) = (dir.join("out"), dir.join("cp"));
        let mut env = vec![("FLOWGATE_CRASH_AT", n.to_string())];
        if harsh {
            env.push(("FLOWGATE_CRASH_TORN", "1".into()));
            env.push(("FLOWGATE_CRASH_LOSE_UNSYNCED", "1".into()));
        }
        let crashed = run(bin, input, &output, &checkpoint, &env);
        let stderr = String::from_utf8_lossy(&crashed.stderr);
        if crashed.status.success() {
            // The run has fewer steps than n: every crash point was covered.
            return n - 1;
        }
        assert!(stderr.contains(&format!("flowgate crash point {n}:")), "run {n} failed without crashing: {stderr}");
        let point = stderr.lines().find(|l| l.contains("crash point")).unwrap_or("").to_string();
        let recovered = run(bin, input, &output, &checkpoint, &[]);
        assert!(
            recovered.status.success(),
            "after {point}: the restart failed: {}",
            String::from_utf8_lossy(&recovered.stderr)
        );
        let got = committed(&output).unwrap_or_else(|e| panic!("after {point}: reading the output: {e}"));
        assert_eq!(got, want, "after {point}: the committed output differs from the uninterrupted run's");
        std::fs::remove_dir_all(&dir).unwrap();
        n += 1;
    }
}

/// Fails step N with EIO for every N in turn; returns (fault points, runs that stopped).
fn eio_sweep(bin: &Path, root: &Path, input: &Path, want: &[(u64, Vec<String>)]) -> (u64, u64) {
    let (mut n, mut stopped) = (1, 0);
    loop {
        let dir = root.join(format!("eio-{n}"));
        let (output, checkpoint) = (dir.join("out"), dir.join("cp"));
        let env = [("FLOWGATE_CRASH_AT", n.to_string()), ("FLOWGATE_CRASH_EIO", "1".to_string())];
        let faulty = run(bin, input, &output, &checkpoint, &env);
        let stderr = String::from_utf8_lossy(&faulty.stderr).to_string();
        let Some(point) = stderr.lines().find(|l| l.contains(&format!("fault point {n}:"))).map(str::to_string) else {
            assert!(faulty.status.success(), "run {n} failed without a fault: {stderr}");
            return (n - 1, stopped);
        };
        if !faulty.status.success() {
            stopped += 1;
            // The file, or the one its temporary file becomes (`dir/.name.<pid>.tmp`).
            let file = Path::new(point.rsplit(" of ").next().unwrap_or("?"));
            let name = file.file_name().and_then(|n| n.to_str()).unwrap_or("?");
            let target = match name.strip_prefix('.').and_then(|n| n.strip_suffix(".tmp")) {
                Some(n) => n.rsplit_once('.').map_or(n, |(n, _)| n),
                None => name,
            };
            let target = file.with_file_name(target).display().to_string();
            let eio = |l: &str| l.contains("code: 5") || l.contains("os error 5");
            let names = |l: &str| l.contains(&target) || l.contains(&file.display().to_string());
            let named = stderr.lines().any(|l| eio(l) && names(l));
            assert!(named, "after {point}: the error does not name {target} and EIO: {stderr}");
        }
        let recovered = run(bin, input, &output, &checkpoint, &[]);
        assert!(recovered.status.success(), "after {point}: {}", String::from_utf8_lossy(&recovered.stderr));
        let got = committed(&output).unwrap_or_else(|e| panic!("after {point}: reading the output: {e}"));
        assert_eq!(got, want, "after {point}: the committed output differs from the uninterrupted run's");
        std::fs::remove_dir_all(&dir).unwrap();
        n += 1;
    }
}

#[test]
fn a_crash_at_every_write_fsync_rename_and_delete_is_exactly_once() {
    let bin = flowgate_examples::example_binary("file_to_file");
    let root = tempfile::tempdir().unwrap();
    let input = root.path().join("in");
    write_input(&input);
    let (ref_out, ref_cp) = (root.path().join("ref-out"), root.path().join("ref-cp"));
    let clean = run(&bin, &input, &ref_out, &ref_cp, &[]);
    assert!(clean.status.success(), "{}", String::from_utf8_lossy(&clean.stderr));
    let want = committed(&ref_out).unwrap();
    // One batch per file, and a no-data batch after the last (the watermark moved).
    assert_eq!(want.len(), FILES + 1);
    assert!(want[..FILES].iter().all(|(_, rows)| !rows.is_empty()));

    let plain = sweep(&bin, root.path(), &input, &want, false);
    let harsh = sweep(&bin, root.path(), &input, &want, true);
    assert!(plain >= 10 * FILES as u64, "only {plain} crash points");
    let (faults, stopped) = eio_sweep(&bin, root.path(), &input, &want);
    assert!(stopped * 10 >= faults * 9, "only {stopped} of {faults} injected EIOs stopped the query");
    eprintln!(
        "{plain} crash points (plain), {harsh} (torn writes, unsynced renames lost), {faults} EIO points \
         ({stopped} stopped the query naming the file): every restart exact"
    );
}
