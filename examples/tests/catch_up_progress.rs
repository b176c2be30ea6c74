//! An `available_now` run over a backlog reports its progress: a bar on stderr when stderr is
//! a terminal (run here under `script`, which gives the program a pseudo-terminal), one log
//! line per batch otherwise.

use std::path::Path;
use std::process::Command;

const FILES: usize = 25;

fn backlog(dir: &Path) {
    let input = dir.join("input");
    std::fs::create_dir_all(&input).unwrap();
    for i in 0..FILES {
        let line = format!("{{\"ts\": \"2024-01-01T00:{i:02}:00Z\", \"key\": \"k\", \"value\": 1}}\n");
        std::fs::write(input.join(format!("{i:03}.json")), line).unwrap();
    }
}

fn args(dir: &Path) -> Vec<String> {
    ["input", "output", "checkpoint"]
        .iter()
        .flat_map(|a| [format!("--{a}"), dir.join(a).display().to_string()])
        .collect()
}

/// Terminal control sequences out, carriage returns as line breaks.
fn plain(text: &str) -> String {
    let mut out = String::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\u{1b}' => {
                if chars.peek() == Some(&'[') {
                    chars.next();
                    for c in chars.by_ref() {
                        if c.is_ascii_alphabetic() {
                            break;
                        }
                    }
                }
            }
            '\r' => out.push('\n'),
            c => out.push(c),
        }
    }
    out
}

#[test]
fn a_terminal_gets_a_progress_bar() {
    let dir = tempfile::tempdir().unwrap();
    backlog(dir.path());
    let bin = flowgate_examples::example_binary("file_to_file");
    let cmd = std::iter::once(bin.display().to_string()).chain(args(dir.path())).collect::<Vec<_>>().join(" ");
    let out = Command::new("script").args(["-qec", &cmd, "/dev/null"]).env("RUST_LOG", "warn").output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    let text = plain(&String::from_utf8_lossy(&out.stdout));
    let frames: Vec<&str> = text.lines().filter(|l| l.starts_with("MinuteTotals ")).collect();
    assert!(!frames.is_empty(), "no bar drawn: {text}");
    let last = frames.last().unwrap();
    assert!(last.contains(&format!("{FILES}/{FILES} done")), "the bar ends full: {last}");
    assert!(frames.iter().any(|f| f.contains(" left")), "frames say the time left: {frames:?}");
}

#[test]
fn a_log_gets_a_line_per_batch() {
    let dir = tempfile::tempdir().unwrap();
    backlog(dir.path());
    let out = Command::new(flowgate_examples::example_binary("file_to_file"))
        .args(args(dir.path()))
        .env("RUST_LOG", "flowgate::catch_up=info")
        .output()
        .unwrap();
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains('\u{1b}'), "no terminal codes in a log: {err}");
    let lines: Vec<&str> = err.lines().filter(|l| l.contains("flowgate::catch_up")).collect();
    // One file per batch, then the no-data batch the watermark asks for.
    assert!(lines.len() >= FILES, "{err}");
    assert!(lines[0].contains("batch 0: 1 rows (1 so far), 1/25 files"), "{}", lines[0]);
    assert!(
        lines
            .iter()
            .any(|l| l.contains(&format!("batch {}: 1 rows ({FILES} so far), {FILES}/{FILES} files", FILES - 1))),
        "{err}"
    );
}
