//! Checkpoints under a real query: state and offsets survive a restart; a torn, corrupt or
//! missing checkpoint file stops the query with an error that names it; a checkpoint of a
//! different query is refused with what changed.

use std::path::Path;

use flowgate::prelude::*;

#[derive(Record)]
struct Line {
    value: Option<String>,
}

#[derive(Record, Debug, PartialEq, Clone)]
struct WordCount {
    word: String,
    count: i64,
}

stream_query! {
    query Words(lines: Line) -> WordCount, mode = update {
        lines.flat_map(word = split(value, " ")).group_by(word).agg(count() as count)
    }

    query WordsComplete(lines: Line) -> WordCount, mode = complete {
        lines.flat_map(word = split(value, " ")).group_by(word).agg(count() as count)
    }
}

fn write(dir: &Path, name: &str, lines: &[&str]) {
    let text: String = lines.iter().map(|l| format!("{{\"value\": \"{l}\"}}\n")).collect();
    let tmp = dir.join(format!(".{name}"));
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(tmp, dir.join(name)).unwrap();
}

/// Runs `Words` over what is in `input` until it has processed everything, then stops.
fn run(input: &Path, checkpoint: &Path) -> flowgate::Result<Vec<WordCount>> {
    let table = MemoryTable::new();
    let q = Words::builder()
        .lines(Source::file(input).json().max_files_per_trigger(1))
        .sink(Sink::memory(&table))
        .checkpoint(checkpoint)
        .shuffle_partitions(3)
        .trigger(Trigger::available_now())
        .start()?;
    q.await_termination()?;
    let mut rows: Vec<WordCount> = table.rows()?;
    rows.sort_by(|a, b| a.word.cmp(&b.word));
    Ok(rows)
}

fn wc(word: &str, count: i64) -> WordCount {
    WordCount { word: word.into(), count }
}

#[test]
fn state_and_offsets_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (input, cp) = (dir.path().join("in"), dir.path().join("cp"));
    std::fs::create_dir_all(&input).unwrap();
    write(&input, "1.json", &["cat dog", "dog"]);
    assert_eq!(run(&input, &cp).unwrap(), vec![wc("cat", 1), wc("dog", 2)]);
    // A new run: file 1 is not read again, and counts continue from the checkpoint's state.
    write(&input, "2.json", &["dog owl"]);
    assert_eq!(run(&input, &cp).unwrap(), vec![wc("dog", 3), wc("owl", 1)]);
    // Nothing new: nothing emitted.
    assert_eq!(run(&input, &cp).unwrap(), vec![]);
    assert!(cp.join("offsets/1").exists() && cp.join("commits/1").exists() && cp.join("metadata").exists());
    assert!(cp.join("sources/0/0").exists(), "the file source logs its files per batch");
    assert!(cp.join("state/deltas/2").exists(), "one batch delta per state version, all partitions in it");
}

#[test]
fn an_uncommitted_batch_is_re_run_with_its_logged_offsets() {
    let dir = tempfile::tempdir().unwrap();
    let (input, cp) = (dir.path().join("in"), dir.path().join("cp"));
    std::fs::create_dir_all(&input).unwrap();
    write(&input, "1.json", &["a"]);
    write(&input, "2.json", &["a b"]);
    run(&input, &cp).unwrap();
    // Pretend the process died after logging batch 1's offsets but before its commit: the
    // restart must re-run batch 1 from state version 1 (after batch 0) with exactly those
    // offsets, and emit what batch 1 emits.
    std::fs::remove_file(cp.join("commits/1")).unwrap();
    assert_eq!(run(&input, &cp).unwrap(), vec![wc("a", 2), wc("b", 1)]);
}

fn corrupt_last_byte(p: &Path) {
    let mut b = std::fs::read(p).unwrap();
    let n = b.len() - 1;
    b[n] ^= 0x20;
    std::fs::write(p, b).unwrap();
}

#[test]
fn damaged_checkpoint_files_are_named_in_the_error() {
    let dir = tempfile::tempdir().unwrap();
    let (input, cp) = (dir.path().join("in"), dir.path().join("cp"));
    std::fs::create_dir_all(&input).unwrap();
    write(&input, "1.json", &["a b c"]);
    write(&input, "2.json", &["a"]);
    run(&input, &cp).unwrap();

    // A flipped bit in the latest offset entry.
    let offsets = cp.join("offsets/1");
    let good = std::fs::read(&offsets).unwrap();
    corrupt_last_byte(&offsets);
    let e = run(&input, &cp).unwrap_err().to_string();
    assert!(e.contains("offsets/1") && e.contains("checksum"), "{e}");
    std::fs::write(&offsets, &good).unwrap();

    // A truncated latest commit entry: a commit entry is written with no fsync, so a power
    // loss can leave it torn; it reads as missing, and batch 1 runs again from state version 1
    // (its output again, which a sink handles by batch id), writing the entry again whole.
    let commit = cp.join("commits/1");
    let good_commit = std::fs::read(&commit).unwrap();
    std::fs::write(&commit, &good_commit[..good_commit.len() / 2]).unwrap();
    assert_eq!(run(&input, &cp).unwrap(), vec![wc("a", 2)], "batch 1 again");
    assert_eq!(std::fs::read(&commit).unwrap(), good_commit);

    // A corrupt state delta (the batch delta of version 2, after batch 1).
    let delta = cp.join("state/deltas/2");
    let good_delta = std::fs::read(&delta).unwrap();
    corrupt_last_byte(&delta);
    let e = run(&input, &cp).unwrap_err().to_string();
    assert!(e.contains(&delta.display().to_string()), "{e}");
    std::fs::write(&delta, &good_delta).unwrap();

    // A deleted delta in the chain.
    std::fs::remove_file(&delta).unwrap();
    let e = run(&input, &cp).unwrap_err().to_string();
    assert!(e.contains("missing") && e.contains("batch delta of version 2"), "{e}");
    std::fs::write(&delta, &good_delta).unwrap();

    // Everything restored: the query runs again.
    assert_eq!(run(&input, &cp).unwrap(), vec![]);
}

#[test]
fn a_checkpoint_of_a_different_query_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (input, cp) = (dir.path().join("in"), dir.path().join("cp"));
    std::fs::create_dir_all(&input).unwrap();
    write(&input, "1.json", &["a"]);
    run(&input, &cp).unwrap();
    // Other shuffle partitions.
    let err = Words::builder()
        .lines(Source::file(&input).json())
        .sink(Sink::memory(&MemoryTable::new()))
        .checkpoint(&cp)
        .shuffle_partitions(5)
        .start()
        .unwrap_err()
        .to_string();
    assert!(err.contains("shufflePartitions") && err.contains('3') && err.contains('5'), "{err}");
    // Another output mode.
    let err = WordsComplete::builder()
        .lines(Source::file(&input).json())
        .sink(Sink::memory(&MemoryTable::new()))
        .checkpoint(&cp)
        .start()
        .unwrap_err()
        .to_string();
    assert!(err.contains("outputMode") && err.contains("Update") && err.contains("Complete"), "{err}");
    // Another source.
    let err = Words::builder()
        .lines(Source::file(dir.path()).json())
        .sink(Sink::memory(&MemoryTable::new()))
        .checkpoint(&cp)
        .start()
        .unwrap_err()
        .to_string();
    assert!(err.contains("inputs"), "{err}");
}
