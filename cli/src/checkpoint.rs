//! `flowgate checkpoint show|verify DIR`: what a checkpoint holds, and whether every file of it
//! is sound. The layout is `flowgate::checkpoint`'s (its module docs list every file).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use flowgate::checkpoint::file::unframe;
use flowgate::checkpoint::state::{apply_delta, decode_batch_delta, StateMap};
use flowgate::checkpoint::{BatchLog, FileStateStore, FsStorage, Storage};
use flowgate::{Error, Result};
use serde_json::{json, Value};

use crate::table;

/// The batch-delta directory (`engine/checkpoint.rs`'s `BATCH_DELTAS`).
const BATCH_DELTAS: &str = "state/deltas";

fn open(dir: &Path) -> Result<(Arc<dyn Storage>, Value)> {
    let storage: Arc<dyn Storage> = Arc::new(FsStorage::new(dir));
    let meta = storage.read("metadata")?.ok_or_else(|| {
        Error::Plan(format!(
            "{} is not a flowgate checkpoint: it has no `metadata` file (is this the directory given to \
             `.checkpoint(..)`?)",
            dir.display()
        ))
    })?;
    let meta: Value = serde_json::from_slice(&meta)
        .map_err(|e| Error::corrupt_file(&dir.join("metadata"), format!("not valid JSON: {e}")))?;
    Ok((storage, meta))
}

fn micros_text(v: &Value) -> String {
    match v.as_i64() {
        Some(us) => chrono::DateTime::from_timestamp_micros(us)
            .map(|d| d.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
            .unwrap_or_else(|| us.to_string()),
        None => "-".into(),
    }
}

/// What `show` reports, as JSON (the table is drawn from it).
pub fn describe(dir: &Path, last: usize) -> Result<Value> {
    let (storage, meta) = open(dir)?;
    let offsets = BatchLog::new(storage.clone(), "offsets");
    let commits = BatchLog::new(storage.clone(), "commits");
    let ids = offsets.batches()?;
    let mut batches = Vec::new();
    for &b in ids.iter().rev().take(last).rev() {
        let entry = offsets.get(b)?.unwrap_or(Value::Null);
        let commit = commits.get(b)?;
        batches.push(json!({
            "batchId": b,
            "offsets": entry["offsets"],
            "watermarkMicros": entry["watermark"]["eviction"],
            "committed": commit.is_some(),
            "nextBatchWatermarkMicros": commit.as_ref().map(|c| c["nextBatchWatermarkMicros"].clone()).unwrap_or(Value::Null),
        }));
    }
    let last_commit = commits.batches()?.last().copied();
    let state = state_operators(dir, &storage, &meta, last_commit.map(|b| b + 1))?;
    Ok(json!({
        "directory": dir.display().to_string(),
        "id": meta["id"],
        "name": meta["name"],
        "outputMode": meta["outputMode"],
        "shufflePartitions": meta["shufflePartitions"],
        "inputs": meta["inputs"],
        "output": meta["output"],
        "batchesInLog": ids.len(),
        "lastCommittedBatch": last_commit,
        "batches": batches,
        "stateOperators": state,
    }))
}

/// Per operator: state versions on disk, files, bytes, and the rows at the committed version.
fn state_operators(dir: &Path, storage: &Arc<dyn Storage>, meta: &Value, version: Option<u64>) -> Result<Vec<Value>> {
    let ops = meta["stateOperators"].as_array().cloned().unwrap_or_default();
    if ops.is_empty() {
        return Ok(Vec::new());
    }
    // Batch deltas hold every operator partition of one version.
    let mut batch_versions: Vec<u64> = storage.list(BATCH_DELTAS)?.iter().filter_map(|n| n.parse().ok()).collect();
    batch_versions.sort_unstable();
    // [op][part] -> version -> bytes
    let mut parts: Vec<Vec<BTreeMap<u64, Vec<u8>>>> =
        ops.iter().map(|o| vec![BTreeMap::new(); o["partitions"].as_u64().unwrap_or(0) as usize]).collect();
    let mut delta_bytes = 0u64;
    for &v in &batch_versions {
        let rel = format!("{BATCH_DELTAS}/{v}");
        let Some(bytes) = storage.read(&rel)? else { continue };
        delta_bytes += bytes.len() as u64;
        for (op, d_op) in parts.iter_mut().zip(decode_batch_delta(&bytes, &storage.describe(&rel))?) {
            for (p, d) in op.iter_mut().zip(d_op) {
                p.insert(v, d);
            }
        }
    }
    let mut out = Vec::new();
    for (i, (op, op_parts)) in ops.iter().zip(&parts).enumerate() {
        let (mut files, mut bytes, mut snapshots) = (0u64, 0u64, Vec::new());
        let mut versions: Vec<u64> = op_parts.iter().flat_map(|p| p.keys().copied()).collect();
        let mut rows = 0u64;
        let mut part_delta_bytes = 0u64;
        for (p, batch_parts) in op_parts.iter().enumerate() {
            part_delta_bytes += batch_parts.values().map(|d| d.len() as u64).sum::<u64>();
            let pdir = dir.join(format!("state/{i}/{p}"));
            for e in std::fs::read_dir(&pdir).into_iter().flatten().flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if name.starts_with('.') {
                    continue;
                }
                files += 1;
                bytes += e.metadata().map(|m| m.len()).unwrap_or(0);
                if let Some((v, kind)) = name.split_once('.') {
                    if let Ok(v) = v.parse::<u64>() {
                        versions.push(v);
                        if kind == "snapshot" {
                            snapshots.push(v);
                        }
                    }
                }
            }
            if let Some(v) = version {
                let map: StateMap = FileStateStore::new(&pdir).load_with_batch_deltas(v, batch_parts)?;
                rows += map.len() as u64;
            }
        }
        versions.sort_unstable();
        versions.dedup();
        snapshots.sort_unstable();
        snapshots.dedup();
        out.push(json!({
            "operator": i,
            "name": op["operator"],
            "partitions": op["partitions"],
            "keyLayout": op["keyLayout"],
            "valueLayout": op["valueLayout"],
            "fingerprint": op["fingerprint"],
            "versionsOnDisk": versions.len(),
            "oldestVersion": versions.first(),
            "latestVersion": versions.last(),
            "committedVersion": version,
            "snapshots": snapshots,
            "rows": version.map(|_| rows),
            "partitionFiles": files,
            "partitionFileBytes": bytes,
            "batchDeltaFiles": batch_versions.len(),
            "batchDeltaBytes": part_delta_bytes,
        }));
    }
    let _ = delta_bytes;
    Ok(out)
}

/// `flowgate checkpoint show DIR`.
pub fn show(dir: &Path, last: usize, as_json: bool) -> Result<()> {
    let d = describe(dir, last)?;
    if as_json {
        out!("{}", serde_json::to_string_pretty(&d).unwrap_or_default());
        return Ok(());
    }
    let s = |v: &Value| match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        v => v.to_string(),
    };
    out!("checkpoint  {}", s(&d["directory"]));
    out!("query       {} (id {})", s(&d["name"]), s(&d["id"]));
    out!("output      {} mode: {}", s(&d["outputMode"]), s(&d["output"]));
    out!("partitions  {} shuffle partitions", s(&d["shufflePartitions"]));
    for input in d["inputs"].as_array().into_iter().flatten() {
        out!("input       {} from {}: {}", s(&input["name"]), s(&input["source"]), s(&input["schema"]));
    }
    out!("batches     {} in the log, last committed: {}", s(&d["batchesInLog"]), s(&d["lastCommittedBatch"]));
    out!("");
    let rows = d["batches"].as_array().into_iter().flatten().map(|b| {
        vec![
            s(&b["batchId"]),
            b["offsets"].as_array().map(|o| o.iter().map(s).collect::<Vec<_>>().join(", ")).unwrap_or_default(),
            micros_text(&b["watermarkMicros"]),
            if b["committed"].as_bool() == Some(true) { "yes".into() } else { "no (re-runs on restart)".into() },
            micros_text(&b["nextBatchWatermarkMicros"]),
        ]
    });
    out!(
        "{}",
        table::render(&["batch", "offsets (end, per source)", "watermark", "committed", "next watermark"], rows)
    );
    let ops = d["stateOperators"].as_array().cloned().unwrap_or_default();
    if ops.is_empty() {
        out!("\nno state (a stateless query)");
        return Ok(());
    }
    out!("");
    let rows = ops.iter().map(|o| {
        let oldest = s(&o["oldestVersion"]);
        let latest = s(&o["latestVersion"]);
        vec![
            format!("{} {}", s(&o["operator"]), s(&o["name"])),
            s(&o["partitions"]),
            format!("{} ({oldest}..={latest})", s(&o["versionsOnDisk"])),
            s(&o["committedVersion"]),
            s(&o["rows"]),
            format!("{} partition files, {} batch deltas", s(&o["partitionFiles"]), s(&o["batchDeltaFiles"])),
            format!(
                "{} + {} in batch deltas",
                table::bytes(o["partitionFileBytes"].as_u64().unwrap_or(0)),
                table::bytes(o["batchDeltaBytes"].as_u64().unwrap_or(0))
            ),
        ]
    });
    out!(
        "{}",
        table::render(&["state operator", "partitions", "versions", "committed", "rows", "files", "bytes"], rows)
    );
    Ok(())
}

/// One file's check.
pub struct Checked {
    /// Path relative to the checkpoint.
    pub rel: String,
    /// Size.
    pub bytes: u64,
    /// What is wrong, if anything.
    pub problem: Option<String>,
}

/// Every file under `dir` (temporary files of interrupted writes excepted: no reader looks at
/// them), checked: the frame's checksum, then that the payload decodes as what its place says.
pub fn check_all(dir: &Path) -> Result<Vec<Checked>> {
    open(dir).map(drop).or_else(|e| match e {
        // A damaged metadata file is reported like any other.
        Error::CorruptFile { .. } => Ok(()),
        e => Err(e),
    })?;
    let mut files = Vec::new();
    walk(dir, &mut files)?;
    files.sort();
    let mut out = Vec::new();
    for path in files {
        let rel = path.strip_prefix(dir).unwrap_or(&path).to_string_lossy().replace('\\', "/");
        let bytes = std::fs::read(&path).map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
        let problem = check_file(&rel, &path, &bytes).err().map(|e| match e {
            Error::CorruptFile { reason, .. } => reason,
            e => e.to_string(),
        });
        out.push(Checked { rel, bytes: bytes.len() as u64, problem });
    }
    // Every file may be sound and the state still not loadable (a delta deleted): load the
    // committed version the way a restart does.
    if out.iter().all(|c| c.problem.is_none()) {
        if let Ok((storage, meta)) = open(dir) {
            let commits = BatchLog::new(storage.clone(), "commits");
            if let Some(last) = commits.batches()?.last().copied() {
                if let Err(e) = state_operators(dir, &storage, &meta, Some(last + 1)) {
                    out.push(Checked {
                        rel: format!("state at version {} (after batch {last})", last + 1),
                        bytes: 0,
                        problem: Some(e.to_string()),
                    });
                }
            }
        }
    }
    Ok(out)
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let entries = std::fs::read_dir(dir).map_err(|e| Error::io(format!("listing {}", dir.display()), e))?;
    for e in entries {
        let e = e.map_err(|e| Error::io(format!("listing {}", dir.display()), e))?;
        let name = e.file_name().to_string_lossy().into_owned();
        let ty = e.file_type().map_err(|err| Error::io(format!("reading {}", e.path().display()), err))?;
        if ty.is_dir() {
            walk(&e.path(), out)?;
        } else if !name.starts_with('.') {
            out.push(e.path());
        }
    }
    Ok(())
}

fn check_file(rel: &str, path: &Path, bytes: &[u8]) -> Result<()> {
    let payload = unframe(bytes, path)?;
    let what = path.display().to_string();
    let json = |payload: &[u8]| {
        serde_json::from_slice::<Value>(payload)
            .map(drop)
            .map_err(|e| Error::corrupt_file(path, format!("not valid JSON: {e}")))
    };
    let parts: Vec<&str> = rel.split('/').collect();
    match parts.as_slice() {
        ["metadata"] | ["offsets", _] | ["commits", _] | ["sources", _, _] => json(payload),
        ["state", "deltas", _] => decode_batch_delta(payload, &what).map(drop),
        ["state", _, _, name] if name.ends_with(".delta") || name.ends_with(".snapshot") => {
            apply_delta(&mut StateMap::new(), payload, &what)
        }
        _ => Ok(()),
    }
}

/// `flowgate checkpoint verify DIR`; returns how many files are damaged.
pub fn verify(dir: &Path, as_json: bool) -> Result<usize> {
    let checked = check_all(dir)?;
    let damaged = checked.iter().filter(|c| c.problem.is_some()).count();
    if as_json {
        let files: Vec<Value> = checked
            .iter()
            .map(|c| json!({"file": c.rel, "bytes": c.bytes, "ok": c.problem.is_none(), "problem": c.problem}))
            .collect();
        let report = json!({"directory": dir.display().to_string(), "files": files, "damaged": damaged});
        out!("{}", serde_json::to_string_pretty(&report).unwrap_or_default());
    } else {
        let rows = checked.iter().map(|c| {
            vec![
                c.rel.clone(),
                table::bytes(c.bytes),
                c.problem.clone().map_or_else(|| "ok".into(), |p| format!("DAMAGED: {p}")),
            ]
        });
        out!("{}", table::render(&["file", "size", "check"], rows));
        out!("{} files checked, {damaged} damaged", checked.len());
        for c in checked.iter().filter(|c| c.problem.is_some()) {
            eprintln!("damaged: {}: {}", dir.join(&c.rel).display(), c.problem.as_deref().unwrap_or_default());
        }
    }
    Ok(damaged)
}
