//! The sessionization example end to end on the real clock: the test plays `nc -lk`, sends
//! session ids, and reads the console: the sessions' updates, then each session ending once
//! its gap (500 ms here) has passed without events. The timeout semantics themselves are
//! tested with a manual clock in codegen-tests (`group_state.rs`, the golden cases).

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

#[test]
fn sessions_update_then_expire_after_their_gap() {
    let bin = flowgate_examples::example_binary("sessionization");
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let mut child = Command::new(&bin)
        .args(["--socket", &format!("127.0.0.1:{port}"), "--gap-ms", "500", "--seconds", "120"])
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
    let mut wait_for = |pred: &dyn Fn(&str) -> bool, what: &str| {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !output.lines().any(pred) {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => {
                    output.push_str(&line);
                    output.push('\n');
                }
                Err(_) => panic!("no {what} in the output within 60 s:\n{output}"),
            }
        }
    };
    conn.write_all(b"alice\nbob\nalice\n").unwrap();
    wait_for(&|l| l.contains("alice") && l.contains("|     2|") && l.contains("false"), "update of alice's 2 events");
    wait_for(&|l| l.contains("alice") && l.contains("true"), "end of alice's session");
    wait_for(&|l| l.contains("bob") && l.contains("true"), "end of bob's session");
    child.kill().unwrap();
    child.wait().unwrap();
}
