//! A real disk error: the checkpoint lives on a tiny filesystem the test mounts (a 2 MiB
//! tmpfs), which is filled up, leaving 0 to 15 pages free, while a stateful query runs: so
//! the error hits a different write each time (offset entries, source logs, state deltas,
//! commit entries, their temporary files and renames). The query must stop with an error
//! that names the file it could not write and the OS error (ENOSPC); after the disk recovers
//! (the filler is removed) a restart must give, batch by batch, exactly the output of a run
//! that never failed. Nothing half-written may be read back: the restart reads the
//! checkpoint as the failed run left it.
//!
//! Mounting needs root (CAP_SYS_ADMIN); where the machine does not allow it the test says so
//! on stderr and checks nothing else.

use std::path::{Path, PathBuf};
use std::process::Command;

use flowgate::prelude::*;

#[derive(Record)]
struct Reading {
    key: String,
    value: i64,
}

#[derive(Record)]
struct Total {
    key: String,
    n: i64,
    total: i64,
}

stream_query! {
    query Totals(readings: Reading) -> Total, mode = update {
        readings.group_by(key).agg(count() as n, sum(value) as total)
    }
}

/// A tmpfs mounted for the test, unmounted when dropped.
struct Mount(PathBuf);

impl Mount {
    fn tmpfs(dir: &Path, size: &str) -> Result<Mount, String> {
        std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .output()
            .map_err(|e| format!("running mount: {e}"))?;
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).trim().to_string());
        }
        Ok(Mount(dir.to_path_buf()))
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

fn write_input(dir: &Path, i: usize) {
    let text: String =
        (0..40).map(|r| format!("{{\"key\": \"k{}\", \"value\": {}}}\n", (i * 7 + r) % 11, i * 100 + r)).collect();
    let name = format!("{i:04}.json");
    std::fs::write(dir.join(format!(".{name}")), text).unwrap();
    std::fs::rename(dir.join(format!(".{name}")), dir.join(&name)).unwrap();
}

fn run(input: &Path, output: &Path, checkpoint: &Path) -> flowgate::Result<()> {
    let q = Totals::builder()
        .readings(Source::file(input).json().max_files_per_trigger(1))
        .sink(Sink::file(output, SinkFormat::Json))
        .checkpoint(checkpoint)
        .shuffle_partitions(2)
        .trigger(Trigger::available_now())
        .start()?;
    q.await_termination()
}

/// Committed rows by batch, each batch's rows sorted.
fn committed(output: &Path) -> Vec<(u64, Vec<String>)> {
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

/// Fills the filesystem of `dir` with a file until only `pages` 4 KiB pages are free; returns
/// the file.
fn fill(dir: &Path, pages: u64) -> PathBuf {
    use std::io::Write;
    let path = dir.join("filler");
    let mut f = std::fs::File::create(&path).unwrap();
    let chunk = vec![0u8; 4096];
    while f.write_all(&chunk).is_ok() {}
    let size = f.metadata().unwrap().len();
    f.set_len((size / 4096).saturating_sub(pages) * 4096).unwrap();
    path
}

/// One scenario: five files processed, the disk filled to `pages` free pages, fifteen more
/// files; returns the error of the run on the full disk, if it failed.
fn scenario(root: &Path, disk: &Path, pages: u64) -> Option<String> {
    let (input, output, checkpoint) = (root.join("in"), root.join("out"), disk.join("cp"));
    std::fs::create_dir_all(&input).unwrap();
    for i in 0..5 {
        write_input(&input, i);
    }
    run(&input, &output, &checkpoint).unwrap();
    // The disk fills up; more input arrives.
    let filler = fill(disk, pages);
    for i in 5..20 {
        write_input(&input, i);
    }
    let failed = run(&input, &output, &checkpoint).err().map(|e| e.to_string());
    if let Some(e) = &failed {
        let cp = checkpoint.display().to_string();
        assert!(e.contains(&cp) && (e.contains("No space left") || e.contains("os error 28")), "{e}");
        // A second attempt on the full disk stops the same way.
        let again = run(&input, &output, &checkpoint).unwrap_err().to_string();
        assert!(again.contains("No space left") || again.contains("os error 28"), "{again}");
    }
    // The disk recovers: the restart finishes the work.
    std::fs::remove_file(filler).unwrap();
    run(&input, &output, &checkpoint).unwrap();

    // The same input, the same clean stop after file 5, no failure.
    let (ref_input, ref_output, ref_checkpoint) = (root.join("ref-in"), root.join("ref-out"), root.join("ref-cp"));
    std::fs::create_dir_all(&ref_input).unwrap();
    for i in 0..5 {
        write_input(&ref_input, i);
    }
    run(&ref_input, &ref_output, &ref_checkpoint).unwrap();
    for i in 5..20 {
        write_input(&ref_input, i);
    }
    run(&ref_input, &ref_output, &ref_checkpoint).unwrap();
    let (got, want) = (committed(&output), committed(&ref_output));
    assert_eq!(got.len(), 20, "one batch per file ({pages} pages free)");
    assert_eq!(got, want, "{pages} pages free: the failed-and-restarted run differs from the uninterrupted one");
    std::fs::remove_dir_all(&checkpoint).unwrap();
    failed
}

#[test]
fn a_full_disk_stops_the_query_naming_the_file_and_a_restart_is_exactly_once() {
    let root = tempfile::tempdir().unwrap();
    let disk = root.path().join("disk");
    let _mount = match Mount::tmpfs(&disk, "2m") {
        Ok(m) => m,
        Err(e) => {
            eprintln!("skipped: cannot mount a tmpfs here ({e})");
            return;
        }
    };
    // Which checkpoint files the errors named (offsets, sources, state, commits, ...).
    let mut hit = std::collections::BTreeMap::<String, u32>::new();
    let mut failures = 0;
    for pages in 0..16 {
        let dir = root.path().join(format!("run{pages}"));
        if let Some(e) = scenario(&dir, &disk, pages) {
            failures += 1;
            let after = e.split("/cp/").nth(1).unwrap_or("?");
            let kind = after.split(['/', ':', ' ']).next().unwrap_or("?").to_string();
            *hit.entry(kind).or_default() += 1;
        }
    }
    eprintln!("{failures} of 16 runs failed on the full disk; files named: {hit:?}");
    assert!(failures >= 8, "{failures} failures");
    assert!(hit.len() >= 3, "the errors hit only {hit:?}");
}
