//! What a user sees when an example fails: one readable sentence on stderr (not `Debug` with
//! escaped quotes), naming the damaged file and the command that checks the checkpoint; and
//! `RUST_LOG` controls the log lines.

use std::process::Command;

fn run(args: &[&str], rust_log: &str) -> (bool, String) {
    let out = Command::new(flowgate_examples::example_binary("file_to_file"))
        .args(args)
        .env("RUST_LOG", rust_log)
        .output()
        .unwrap();
    (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn a_damaged_checkpoint_reads_as_a_sentence_with_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let (input, output, cp) = (dir.path().join("in"), dir.path().join("out"), dir.path().join("cp"));
    std::fs::create_dir_all(&input).unwrap();
    std::fs::write(input.join("1.json"), "{\"ts\": \"2024-01-01T00:00:00Z\", \"key\": \"a\", \"value\": 1}\n").unwrap();
    let args = [
        "--input",
        input.to_str().unwrap(),
        "--output",
        output.to_str().unwrap(),
        "--checkpoint",
        cp.to_str().unwrap(),
    ];
    let (ok, log) = run(&args, "flowgate=debug");
    assert!(ok, "{log}");
    assert!(log.contains("batch done"), "RUST_LOG=flowgate=debug shows a line per batch: {log}");

    // The latest offset entry (resume reads it; a torn latest commit entry, written with no
    // fsync, would only re-run its batch).
    let last = std::fs::read_dir(cp.join("offsets"))
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u64>().ok())
        .max()
        .unwrap();
    let entry = cp.join(format!("offsets/{last}"));
    let bytes = std::fs::read(&entry).unwrap();
    std::fs::write(&entry, &bytes[..bytes.len() - 2]).unwrap();
    let (ok, err) = run(&args, "off");
    assert!(!ok);
    assert_eq!(
        err.trim_end(),
        format!(
            "Error: query `MinuteTotals` failed: checkpoint file {} is damaged: torn or truncated: header says {} \
             payload bytes, file has {}. `flowgate checkpoint verify {}` lists every damaged file; restore them \
             from a backup, or start the query on a new checkpoint directory (it then reprocesses its sources \
             from the start)",
            entry.display(),
            bytes.len() - 22,
            bytes.len() - 24,
            cp.display()
        )
    );
}

#[test]
fn a_missing_argument_says_how_to_call() {
    let (ok, err) = run(&[], "off");
    assert!(!ok);
    assert_eq!(
        err.trim_end(),
        "Error: plan error: missing --input; usage: file_to_file --input DIR --output DIR --checkpoint DIR"
    );
}
