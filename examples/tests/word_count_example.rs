//! The word_count example end to end: a test plays `nc -lk`, runs the example's binary against
//! it, writes lines and reads the counts the console sink prints.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

#[test]
fn word_count_prints_spark_style_counts() {
    let bin = flowgate_examples::example_binary("word_count");
    assert!(bin.exists(), "{} not built (cargo test builds examples)", bin.display());
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let mut child = Command::new(&bin)
        .args(["--host", "127.0.0.1", "--port", &port.to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let (mut conn, _) = listener.accept().unwrap();

    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            if tx.send(line.unwrap_or_default()).is_err() {
                break;
            }
        }
    });
    let mut output = String::new();
    let mut wait_for = |needle: &str| {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !output.contains(needle) {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => {
                    output.push_str(&line);
                    output.push('\n');
                }
                Err(_) => panic!("timed out waiting for {needle:?}; output so far:\n{output}"),
            }
        }
    };

    conn.write_all(b"apache spark\n").unwrap();
    wait_for("| spark|    1|");
    conn.write_all(b"apache hadoop\n").unwrap();
    wait_for("|apache|    2|");
    // The table's rows come in no set order: read on to batch 1's closing border (its third).
    let border = "+------+-----+";
    let deadline = Instant::now() + Duration::from_secs(60);
    while output[output.find("Batch: 1").unwrap_or(0)..].matches(border).count() < 3 {
        match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(line) => {
                output.push_str(&line);
                output.push('\n');
            }
            Err(_) => panic!("timed out waiting for batch 1's table to end; output so far:\n{output}"),
        }
    }
    child.kill().ok();
    child.wait().ok();

    assert!(output.contains("Batch: 0"), "{output}");
    assert!(output.contains("Batch: 1"), "{output}");
    // Batch 1's complete table, as Spark prints it.
    let batch1 = &output[output.find("Batch: 1").unwrap()..];
    for row in ["|  word|count|", "|apache|    2|", "| spark|    1|", "|hadoop|    1|"] {
        assert!(batch1.contains(row), "missing {row:?} in:\n{batch1}");
    }
}
