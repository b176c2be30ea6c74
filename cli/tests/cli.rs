//! The `flowgate` command run as a process on checkpoints and sink output written by real
//! queries, including damaged checkpoints, and on sample files for `infer-schema`.

use std::path::Path;
use std::process::{Command, Output};

use flowgate::prelude::*;
use serde_json::Value;

#[derive(Record)]
struct Reading {
    sensor: String,
    ts: Timestamp,
}

#[derive(Record, Debug, PartialEq)]
struct WindowCount {
    window: Window,
    sensor: String,
    n: i64,
}

/// What `flowgate infer-schema` printed for the sample in the infer-schema test, compiled.
mod inferred {
    use flowgate::prelude::*;
    include!("golden/sensor_readings.rs");
}

stream_query! {
    /// Reads rows with the inferred struct.
    query EchoInferred(rows: inferred::SensorReadings) -> inferred::SensorReadings, mode = append {
        rows.select(sensor, value, temp, ts, ok)
    }

    query Counts(readings: Reading) -> WindowCount, mode = append {
        readings
            .with_watermark(ts, "5 seconds")
            .group_by(window(ts, "10 seconds"), sensor)
            .agg(count() as n)
    }
}

fn flowgate(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_flowgate")).args(args).output().expect("the flowgate binary runs")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Three files, one batch each (plus the no-data batch the watermark asks for): sensor `a` at
/// 0 s and 3 s, `b` at 4 s, then `a` at 25 s, which moves the watermark to 20 s and closes the
/// window [0, 10).
fn run_query(dir: &Path, format: SinkFormat) -> (std::path::PathBuf, std::path::PathBuf) {
    let (input, cp, out) = (dir.join("in"), dir.join("cp"), dir.join("out"));
    std::fs::create_dir_all(&input).unwrap();
    let files = [
        ("1.json", "{\"sensor\": \"a\", \"ts\": \"2024-01-01T00:00:00Z\"}\n{\"sensor\": \"a\", \"ts\": \"2024-01-01T00:00:03Z\"}\n"),
        ("2.json", "{\"sensor\": \"b\", \"ts\": \"2024-01-01T00:00:04Z\"}\n"),
        ("3.json", "{\"sensor\": \"a\", \"ts\": \"2024-01-01T00:00:25Z\"}\n"),
    ];
    for (name, text) in files {
        std::fs::write(input.join(name), text).unwrap();
    }
    let q = Counts::builder()
        .readings(Source::file(&input).json().max_files_per_trigger(1))
        .sink(Sink::file(&out, format))
        .checkpoint(&cp)
        .shuffle_partitions(2)
        .trigger(Trigger::available_now())
        .start()
        .unwrap();
    q.await_termination().unwrap();
    (cp, out)
}

#[test]
fn checkpoint_show_lists_the_query_its_batches_and_its_state() {
    let dir = tempfile::tempdir().unwrap();
    let (cp, _) = run_query(dir.path(), SinkFormat::Json);
    let cp_s = cp.to_str().unwrap();

    let o = flowgate(&["checkpoint", "show", cp_s, "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["name"], "Counts");
    assert_eq!(v["outputMode"], "Append");
    assert_eq!(v["shufflePartitions"], 2);
    let batches = v["batches"].as_array().unwrap();
    let ids: Vec<u64> = batches.iter().map(|b| b["batchId"].as_u64().unwrap()).collect();
    assert_eq!(ids, [0, 1, 2, 3], "three data batches and the no-data batch after the watermark moved");
    assert!(batches.iter().all(|b| b["committed"] == true));
    // The file source's offset counts the files read so far.
    assert_eq!(batches[2]["offsets"][0]["logOffset"], 3, "{v:#}");
    // The watermark after batch 2 (max event time 25 s - 5 s).
    assert_eq!(batches[2]["nextBatchWatermarkMicros"], 1_704_067_220_000_000i64);
    let op = &v["stateOperators"][0];
    assert_eq!(op["partitions"], 2);
    assert_eq!(op["committedVersion"], 4);
    // Windows [0,10) of a and b were evicted by the watermark; [20,30) of a is left.
    assert_eq!(op["rows"], 1);
    assert!(op["batchDeltaBytes"].as_u64().unwrap() > 0);

    let o = flowgate(&["checkpoint", "show", cp_s]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    assert!(text.contains("query       Counts (id "), "{text}");
    assert!(text.contains("2024-01-01T00:00:20.000Z"), "the watermark as a time: {text}");
    assert!(text.contains("stateStoreSave") || text.contains("state operator"), "{text}");
}

#[test]
fn state_read_gives_each_key_and_value_at_a_committed_batch() {
    let dir = tempfile::tempdir().unwrap();
    let (cp, _) = run_query(dir.path(), SinkFormat::Json);
    let cp_s = cp.to_str().unwrap();
    let read = |extra: &[&str]| {
        let mut args = vec!["state", "read", cp_s, "--json"];
        args.extend_from_slice(extra);
        let o = flowgate(&args);
        assert!(o.status.success(), "{}", stderr(&o));
        let mut rows: Vec<Value> = stdout(&o).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        rows.sort_by_key(|r| r["key"].to_string());
        rows
    };
    // After batch 1: windows [0, 10) of a (2 rows) and b (1 row), none evicted yet.
    let rows = read(&["--batch", "1"]);
    let keys: Vec<String> = rows.iter().map(|r| r["key"].to_string()).collect();
    assert_eq!(
        keys,
        [
            r#"[{"end":"2024-01-01 00:00:10","start":"2024-01-01 00:00:00"},"a"]"#,
            r#"[{"end":"2024-01-01 00:00:10","start":"2024-01-01 00:00:00"},"b"]"#,
        ]
    );
    assert_eq!(rows[0]["value"], serde_json::json!([{"count": 2}]));
    assert_eq!(rows[1]["value"], serde_json::json!([{"count": 1}]));
    // The last committed batch: only a's window [20, 30) is left.
    let rows = read(&[]);
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["key"][0]["start"], "2024-01-01 00:00:20");
    // A table for people, and clear errors.
    let o = flowgate(&["state", "read", cp_s]);
    assert!(o.status.success() && stdout(&o).contains("1 rows"), "{}", stdout(&o));
    let o = flowgate(&["state", "read", cp_s, "--operator", "3"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("there is no operator 3"), "{}", stderr(&o));
    let o = flowgate(&["state", "read", cp_s, "--batch", "99"]);
    assert!(stderr(&o).contains("batch 99 is not committed"), "{}", stderr(&o));
}

#[test]
fn checkpoint_verify_passes_a_sound_checkpoint_and_names_each_damaged_file() {
    let dir = tempfile::tempdir().unwrap();
    let (cp, _) = run_query(dir.path(), SinkFormat::Json);
    let cp_s = cp.to_str().unwrap();
    let o = flowgate(&["checkpoint", "verify", cp_s]);
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    assert!(stdout(&o).contains(" 0 damaged"), "{}", stdout(&o));

    // A flipped bit in a state delta, a truncated offset entry.
    let delta = cp.join("state/deltas/2");
    let mut b = std::fs::read(&delta).unwrap();
    let n = b.len() - 1;
    b[n] ^= 4;
    std::fs::write(&delta, b).unwrap();
    let offsets = cp.join("offsets/1");
    let b = std::fs::read(&offsets).unwrap();
    std::fs::write(&offsets, &b[..b.len() - 3]).unwrap();

    let o = flowgate(&["checkpoint", "verify", cp_s]);
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    let (out, err) = (stdout(&o), stderr(&o));
    assert!(out.contains("2 damaged"), "{out}");
    assert!(err.contains(&format!("damaged: {}: checksum mismatch", delta.display())), "{err}");
    assert!(err.contains(&format!("damaged: {}: torn or truncated", offsets.display())), "{err}");

    let o = flowgate(&["checkpoint", "verify", cp_s, "--json"]);
    assert_eq!(o.status.code(), Some(1));
    let v: Value = serde_json::from_str(&stdout(&o)).unwrap();
    let bad: Vec<&str> = v["files"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["ok"] == false)
        .map(|f| f["file"].as_str().unwrap())
        .collect();
    assert_eq!(bad, ["offsets/1", "state/deltas/2"]);

    // Sound files, but a state delta the committed version needs is gone.
    let dir2 = tempfile::tempdir().unwrap();
    let (cp2, _) = run_query(dir2.path(), SinkFormat::Json);
    std::fs::remove_file(cp2.join("state/deltas/3")).unwrap();
    let o = flowgate(&["checkpoint", "verify", cp2.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    assert!(
        stderr(&o).contains("state at version 4 (after batch 3)") && stderr(&o).contains("missing"),
        "{}",
        stderr(&o)
    );

    // `show` on the damaged checkpoint fails with the sentence that points at `verify`.
    let o = flowgate(&["checkpoint", "show", cp_s]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains(&format!("`flowgate checkpoint verify {cp_s}` lists every damaged file")),
        "{}",
        stderr(&o)
    );

    // Not a checkpoint at all.
    let o = flowgate(&["checkpoint", "verify", dir.path().join("in").to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("is not a flowgate checkpoint: it has no `metadata` file"), "{}", stderr(&o));
}

#[test]
fn sink_read_gives_the_committed_rows_through_the_manifest() {
    for format in [SinkFormat::Json, SinkFormat::Parquet] {
        let dir = tempfile::tempdir().unwrap();
        let (_, out) = run_query(dir.path(), format);
        // A data file of a batch that never committed: not read.
        let stray = if format == SinkFormat::Json { "part-00000099-0.json" } else { "part-00000099-0.parquet" };
        std::fs::write(out.join(stray), "garbage").unwrap();
        let o = flowgate(&["sink", "read", out.to_str().unwrap(), "--json"]);
        assert!(o.status.success(), "{}", stderr(&o));
        let rows: Vec<Value> = stdout(&o).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        let mut got: Vec<(u64, String, i64)> = rows
            .iter()
            .map(|r| {
                (r["_batch"].as_u64().unwrap(), r["sensor"].as_str().unwrap().to_string(), r["n"].as_i64().unwrap())
            })
            .collect();
        got.sort();
        // Window [0, 10) closes in the no-data batch 3 (watermark 20 s).
        assert_eq!(got, [(3, "a".to_string(), 2), (3, "b".to_string(), 1)], "{format:?}");

        let o = flowgate(&["sink", "read", out.to_str().unwrap()]);
        let text = stdout(&o);
        assert!(text.contains("batch 3: 2 rows") && text.contains("4 committed batches, 2 rows"), "{text}");
    }
}

#[test]
fn infer_schema_writes_a_record_struct_with_optional_fields_and_comments_on_guesses() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("sensor-readings.jsonl");
    std::fs::write(
        &json,
        concat!(
            "{\"sensor\": \"a\", \"value\": 1, \"temp\": 20.5, \"ts\": \"2024-01-01T00:00:00Z\", \"ok\": true}\n",
            "{\"sensor\": \"b\", \"value\": 2, \"temp\": 21, \"ts\": \"2024-01-01T00:00:01Z\", \"ok\": null, \"tags\": [\"x\"]}\n",
            "{\"sensor\": \"c\", \"value\": 3, \"ts\": \"2024-01-01T00:00:02Z\", \"ok\": false, \"user-id\": \"u1\"}\n",
        ),
    )
    .unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_flowgate"))
        .args(["infer-schema", "sensor-readings.jsonl"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    // The golden file is also compiled into this test (`mod inferred`), and reads the sample.
    assert_eq!(stdout(&o), include_str!("golden/sensor_readings.rs"));
    let table = MemoryTable::new();
    let q = EchoInferred::builder()
        .rows(Source::file(dir.path()).json())
        .sink(Sink::memory(&table))
        .trigger(Trigger::available_now())
        .start()
        .unwrap();
    q.await_termination().unwrap();
    let mut rows: Vec<inferred::SensorReadings> = table.rows().unwrap();
    rows.sort_by(|a, b| a.sensor.cmp(&b.sensor));
    let got: Vec<_> = rows.iter().map(|r| (r.sensor.as_str(), r.value, r.temp, r.ts.0, r.ok)).collect();
    assert_eq!(
        got,
        [
            ("a", 1, Some(20.5), 1_704_067_200_000_000, Some(true)),
            ("b", 2, Some(21.0), 1_704_067_201_000_000, None),
            ("c", 3, None, 1_704_067_202_000_000, Some(false)),
        ]
    );

    let csv = dir.path().join("shops.csv");
    std::fs::write(&csv, "shop,units,price,day\nx,1,2.5,2024-01-01\ny,,3,2024-01-02\n").unwrap();
    let o = flowgate(&["infer-schema", csv.to_str().unwrap(), "--name", "Shop", "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: Value = serde_json::from_str(&stdout(&o)).unwrap();
    let types: Vec<(&str, &str)> = v["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (f["column"].as_str().unwrap(), f["type"].as_str().unwrap()))
        .collect();
    assert_eq!(types, [("shop", "String"), ("units", "Option<i64>"), ("price", "f64"), ("day", "Date")]);

    // Parquet: the file's own types and nullability (a file the sink wrote).
    let (_, out) = run_query(&dir.path().join("pq"), SinkFormat::Parquet);
    let part = std::fs::read_dir(&out)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "parquet"))
        .unwrap();
    let o = flowgate(&["infer-schema", part.to_str().unwrap(), "--name", "Out"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    assert!(text.contains("pub sensor: String,") && text.contains("pub n: i64,"), "{text}");
    assert!(text.contains("// column `window`: Parquet type Struct"), "{text}");

    // Bad input: a clear error, exit 2.
    let o = flowgate(&["infer-schema", dir.path().join("x.txt").to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("unknown file type `.txt`"), "{}", stderr(&o));
}

#[test]
fn a_reader_that_stops_early_ends_the_command_quietly() {
    // 20 000 rows of output: more than a pipe holds, so the command is still writing when
    // the reader goes away (`flowgate sink read DIR --json | head -1`).
    let dir = tempfile::tempdir().unwrap();
    let (input, cp, out) = (dir.path().join("in"), dir.path().join("cp"), dir.path().join("out"));
    std::fs::create_dir_all(&input).unwrap();
    let mut text: String =
        (0..20_000).map(|i| format!("{{\"sensor\": \"s{i}\", \"ts\": \"2024-01-01T00:00:01Z\"}}\n")).collect();
    std::fs::write(input.join("1.json"), &text).unwrap();
    text = "{\"sensor\": \"s0\", \"ts\": \"2024-01-01T00:00:30Z\"}\n".into();
    std::fs::write(input.join("2.json"), &text).unwrap();
    let q = Counts::builder()
        .readings(Source::file(&input).json().max_files_per_trigger(1))
        .sink(Sink::file(&out, SinkFormat::Json))
        .checkpoint(&cp)
        .trigger(Trigger::available_now())
        .start()
        .unwrap();
    q.await_termination().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_flowgate"))
        .args(["sink", "read", out.to_str().unwrap(), "--json"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(child.stdout.take().unwrap()), &mut first).unwrap();
    assert!(first.contains("\"_batch\""), "{first}");
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(!stderr(&o).contains("panicked"), "{}", stderr(&o));
}
