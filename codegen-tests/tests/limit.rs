//! `limit(n)` on a stream in append mode (Spark's streaming global limit): the first `n` rows
//! of the whole stream, the count kept in the checkpoint across a restart.

use std::path::Path;

use flowgate::prelude::*;

#[derive(Record, Debug, Clone, PartialEq)]
struct Event {
    id: i64,
    tag: String,
}

#[derive(Record, Debug, Clone, PartialEq)]
struct Tagged {
    id: i64,
    tag: String,
    big: bool,
}

stream_query! {
    query FirstFive(events: Event) -> Tagged, mode = append {
        events
            .filter(tag != "skip")
            .select(id, tag, big = id > 100)
            .limit(5)
    }
}

fn write(dir: &Path, name: &str, ids: &[(i64, &str)]) {
    let text: String = ids.iter().map(|(id, tag)| format!("{{\"id\": {id}, \"tag\": \"{tag}\"}}\n")).collect();
    let tmp = dir.join(format!(".{name}"));
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(tmp, dir.join(name)).unwrap();
}

fn run(input: &Path, checkpoint: &Path) -> Vec<Tagged> {
    let table = MemoryTable::new();
    let q = FirstFive::builder()
        .events(Source::file(input).json().max_files_per_trigger(1))
        .sink(Sink::memory(&table))
        .checkpoint(checkpoint)
        .trigger(Trigger::available_now())
        .start()
        .unwrap();
    q.await_termination().unwrap();
    table.rows().unwrap()
}

#[test]
fn the_limit_spans_batches_and_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let (input, cp) = (dir.path().join("in"), dir.path().join("cp"));
    std::fs::create_dir_all(&input).unwrap();
    write(&input, "1.json", &[(1, "a"), (2, "skip"), (3, "b")]);
    write(&input, "2.json", &[(4, "c"), (200, "d")]);
    let first: Vec<i64> = run(&input, &cp).iter().map(|t| t.id).collect();
    assert_eq!(first, [1, 3, 4, 200], "two batches, in row order");
    // After a restart the count goes on from the checkpoint: one more row, then nothing.
    write(&input, "3.json", &[(5, "e"), (6, "f")]);
    write(&input, "4.json", &[(7, "g")]);
    let second = run(&input, &cp);
    assert_eq!(second, [Tagged { id: 5, tag: "e".into(), big: false }]);
    write(&input, "5.json", &[(8, "h")]);
    assert!(run(&input, &cp).is_empty(), "the limit is reached for good");
}
