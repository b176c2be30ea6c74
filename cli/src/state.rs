//! `flowgate state read DIR --operator N [--batch B]`: a stateful operator's state as rows
//! (Spark 4's `statestore` data source): every key and value at a committed batch, decoded by
//! the layouts the checkpoint's metadata records (`flowgate::codec::Layout`), so no query
//! type is needed to read it.

use std::collections::BTreeMap;
use std::path::Path;

use flowgate::checkpoint::state::decode_batch_delta;
use flowgate::checkpoint::{BatchLog, FileStateStore, FsStorage, Storage};
use flowgate::codec::Layout;
use flowgate::{Error, Result};
use serde_json::{json, Value};

use crate::table;

/// The state rows of operator `operator` after batch `batch` (default: the last committed).
pub fn rows(dir: &Path, operator: usize, batch: Option<u64>) -> Result<Vec<Value>> {
    let storage = FsStorage::new(dir);
    let meta = storage.read("metadata")?.ok_or_else(|| {
        Error::Plan(format!("{} is not a flowgate checkpoint: it has no `metadata` file", dir.display()))
    })?;
    let meta: Value = serde_json::from_slice(&meta)
        .map_err(|e| Error::corrupt_file(&dir.join("metadata"), format!("not valid JSON: {e}")))?;
    let ops = meta["stateOperators"].as_array().cloned().unwrap_or_default();
    let op = ops.get(operator).ok_or_else(|| {
        Error::Plan(format!(
            "the query has {} stateful operators (0..{}); there is no operator {operator}",
            ops.len(),
            ops.len()
        ))
    })?;
    let (Some(key), Some(value)) = (op["keyLayout"].as_str(), op["valueLayout"].as_str()) else {
        return Err(Error::Plan(format!(
            "{}: this checkpoint records no state layouts (an older flowgate wrote it); its state cannot be read",
            dir.display()
        )));
    };
    let (key, value) = (Layout::parse(key)?, Layout::parse(value)?);
    let commits = BatchLog::new(std::sync::Arc::new(FsStorage::new(dir)), "commits");
    let committed = commits.batches()?;
    let batch = match batch {
        Some(b) if committed.contains(&b) => b,
        Some(b) => {
            return Err(Error::Plan(format!(
                "batch {b} is not committed in {} (committed: {committed:?})",
                dir.display()
            )))
        }
        None => match committed.last() {
            Some(b) => *b,
            None => return Ok(Vec::new()),
        },
    };
    // State version v holds the state after batch v - 1.
    let version = batch + 1;
    let partitions = op["partitions"].as_u64().unwrap_or(0) as usize;
    let mut deltas: Vec<BTreeMap<u64, Vec<u8>>> = vec![BTreeMap::new(); partitions];
    let names = storage.list("state/deltas")?;
    for v in names.iter().filter_map(|n| n.parse::<u64>().ok()).filter(|v| *v <= version) {
        let rel = format!("state/deltas/{v}");
        let Some(bytes) = storage.read(&rel)? else { continue };
        let all = decode_batch_delta(&bytes, &storage.describe(&rel))?;
        if let Some(mine) = all.into_iter().nth(operator) {
            for (p, d) in mine.into_iter().enumerate().take(partitions) {
                deltas[p].insert(v, d);
            }
        }
    }
    let mut out = Vec::new();
    for (p, batch_parts) in deltas.iter().enumerate() {
        let pdir = dir.join(format!("state/{operator}/{p}"));
        let map = FileStateStore::new(&pdir).load_with_batch_deltas(version, batch_parts)?;
        for (k, v) in map {
            let what = |e: Error| e.context(format!("state operator {operator} partition {p}"));
            out.push(json!({
                "partition": p,
                "key": key.decode_all(&k).map_err(what)?,
                "value": value.decode_all(&v).map_err(what)?,
            }));
        }
    }
    Ok(out)
}

/// Prints the rows as a table, or as JSON lines with `json`.
pub fn read(dir: &Path, operator: usize, batch: Option<u64>, json: bool) -> Result<()> {
    let rows = rows(dir, operator, batch)?;
    if json {
        for r in &rows {
            out!("{r}");
        }
        return Ok(());
    }
    let body: Vec<Vec<String>> =
        rows.iter().map(|r| vec![r["partition"].to_string(), r["key"].to_string(), r["value"].to_string()]).collect();
    out!("{}", table::render(&["partition", "key", "value"], body));
    out!("{} rows", rows.len());
    Ok(())
}
