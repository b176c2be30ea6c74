//! The `transform_with_state` sessionization example end to end, without setup: on the rate
//! source (100 rows a second, each user quiet three seconds out of twelve) with a 300 ms gap,
//! the console shows sessions updated by events, then each user's session ending
//! (`expired = true`, from its processing-time timer) while the user is quiet, then a new one.
//! The timer semantics themselves are tested with a manual clock in codegen-tests
//! (`transform_with_state.rs`, the golden cases).

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

#[test]
fn rate_sessions_update_then_end_by_their_timers() {
    let bin = flowgate_examples::example_binary("tws_sessionization");
    let mut child = Command::new(&bin)
        .args(["--rate", "100", "--quiet-seconds", "3", "--gap-ms", "300", "--seconds", "120"])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
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
    let deadline = Instant::now() + Duration::from_secs(90);
    // Every user's session ends once (each is quiet for a second every four), and then
    // shows events again.
    let ended = |out: &str, user: &str| out.lines().any(|l| l.contains(&format!("|{user}|")) && l.contains("true"));
    let users = ["user0", "user1", "user2", "user3"];
    while !users.iter().all(|u| ended(&output, u)) {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => {
                output.push_str(&line);
                output.push('\n');
            }
            Err(_) => panic!("not every user's session ended within 90 s:\n{output}"),
        }
    }
    assert!(output.lines().any(|l| l.contains("false")), "no session update before the ends:\n{output}");
    child.kill().unwrap();
    child.wait().unwrap();
}
