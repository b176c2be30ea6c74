//! Errors for people: a query's error reads as one sentence with its cause chain, `Debug`
//! prints the same sentence (what `fn main() -> flowgate::Result<()>` shows), and a damaged
//! checkpoint file is named along with the command that checks them all.

use std::path::Path;

use flowgate::prelude::*;

#[derive(Record)]
struct Line {
    value: Option<String>,
}

#[derive(Record, Debug, PartialEq)]
struct WordCount {
    word: String,
    count: i64,
}

stream_query! {
    query Words(lines: Line) -> WordCount, mode = update {
        lines.flat_map(word = split(value, " ")).group_by(word).agg(count() as count)
    }
}

fn run(input: &Path, checkpoint: &Path) -> flowgate::Result<()> {
    let q = Words::builder()
        .lines(Source::file(input).json())
        .sink(Sink::memory(&MemoryTable::new()))
        .checkpoint(checkpoint)
        .trigger(Trigger::available_now())
        .start()?;
    q.await_termination()
}

#[test]
fn a_damaged_checkpoint_file_is_named_with_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let (input, cp) = (dir.path().join("in"), dir.path().join("cp"));
    std::fs::create_dir_all(&input).unwrap();
    std::fs::write(input.join("1.json"), "{\"value\": \"a b\"}\n").unwrap();
    run(&input, &cp).unwrap();
    let offsets = cp.join("offsets/0");
    let mut bytes = std::fs::read(&offsets).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&offsets, bytes).unwrap();

    let e = run(&input, &cp).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "query `Words` failed: checkpoint file {} is damaged: checksum mismatch: the file is corrupt. \
             `flowgate checkpoint verify {}` lists every damaged file; restore them from a backup, or start the \
             query on a new checkpoint directory (it then reprocesses its sources from the start)",
            offsets.display(),
            cp.display()
        )
    );
    // No Debug escaping: `Error: ...` in `main` reads the same.
    assert_eq!(format!("{e:?}"), e.to_string());
    match e.root() {
        flowgate::Error::CorruptFile { path, checkpoint, .. } => {
            assert_eq!(path, &offsets);
            assert_eq!(checkpoint.as_deref(), Some(cp.as_path()));
        }
        other => panic!("expected CorruptFile, got {other:#?}"),
    }
}

#[test]
fn a_setup_mistake_says_what_to_call() {
    let e = Words::builder().lines(Source::memory(&MemoryStream::<Line>::new())).start().unwrap_err();
    assert_eq!(format!("{e:?}"), "plan error: query `Words` has no sink: call `.sink(Sink::console())` or another");
}

#[test]
fn an_io_error_the_user_can_fix_says_how() {
    // A socket source on a port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let q = Words::builder().lines(Source::socket("127.0.0.1", port)).sink(Sink::memory(&MemoryTable::new())).start();
    let e = match q {
        Err(e) => e,
        Ok(q) => q.await_termination().unwrap_err(),
    };
    let text = e.to_string();
    assert!(text.contains(&format!("127.0.0.1:{port}")), "{text}");
    assert!(text.ends_with("(is the server running and listening on that address?)"), "{text}");
}
