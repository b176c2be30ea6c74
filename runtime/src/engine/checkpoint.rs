//! The engine's use of a checkpoint directory: checking that it belongs to this query,
//! writing the offset log before and the commit log after each batch, committing state
//! versions, and working out where to resume after a restart.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::{json, Value};

use super::StateSchema;
use crate::checkpoint::state::{Change, StateMap, MIN_VERSIONS_TO_RETAIN};
use crate::checkpoint::{BatchLog, FileStateStore, FsStorage, StateStore, Storage};
use crate::error::{Error, Result};
use crate::source::Offset;

/// How many batches the logs and state keep (Spark's `spark.sql.streaming.minBatchesToRetain`).
const RETAIN: u64 = MIN_VERSIONS_TO_RETAIN;
/// Old log entries and state files are cleaned every this many batches (cleanup lists
/// directories; doing it per batch would cost more than the batch on small inputs).
const CLEANUP_EVERY: u64 = 10;

/// Where a restarted query resumes.
#[derive(Debug, Default)]
pub(crate) struct Resume {
    /// The next batch id to plan.
    pub next_batch: u64,
    /// Source offsets after the last committed batch.
    pub committed: Vec<Option<Offset>>,
    /// A batch that was planned (offset entry written) but not committed: re-run it with
    /// exactly these ends.
    pub rerun: Option<(u64, Vec<Option<Offset>>)>,
    /// Watermarks (late, eviction) of the next batch to run, when the query has one.
    pub watermarks: Option<(i64, i64)>,
    /// Per-source log entries of every batch still logged, in batch order.
    pub source_logs: Vec<Vec<Value>>,
    /// State version to load (the state after the last committed batch).
    pub state_version: u64,
}

pub(crate) struct QueryCheckpoint {
    dir: PathBuf,
    offsets: BatchLog,
    commits: BatchLog,
    sources: Vec<BatchLog>,
    /// `[operator][partition]`.
    stores: Vec<Vec<FileStateStore>>,
    /// The query id kept in the metadata.
    pub id: String,
}

fn offsets_json(offsets: &[Option<Offset>]) -> Value {
    Value::Array(offsets.iter().map(|o| o.as_ref().map(|o| o.0.clone()).unwrap_or(Value::Null)).collect())
}

fn offsets_from(v: &Value, n: usize, file: &str) -> Result<Vec<Option<Offset>>> {
    let arr = v["offsets"].as_array().ok_or_else(|| Error::Checkpoint(format!("{file}: no \"offsets\" list")))?;
    if arr.len() != n {
        return Err(Error::Checkpoint(format!("{file}: {} source offsets, the query has {n} sources", arr.len())));
    }
    Ok(arr.iter().map(|o| (!o.is_null()).then(|| Offset(o.clone()))).collect())
}

/// The query's description as the metadata file records it.
pub(crate) fn metadata(
    id: &str,
    name: &str,
    inputs: &[(String, String, String)],
    output: &str,
    mode: &str,
    shuffle_partitions: usize,
    state: &[StateSchema],
) -> Value {
    json!({
        "id": id,
        "name": name,
        "inputs": inputs.iter().map(|(n, schema, source)| json!({"name": n, "schema": schema, "source": source})).collect::<Vec<_>>(),
        "output": output,
        "outputMode": mode,
        "shufflePartitions": shuffle_partitions,
        "stateOperators": state.iter().map(|s| json!({
            "operator": s.operator, "keyType": s.key_type, "valueType": s.value_type, "partitions": s.partitions,
        })).collect::<Vec<_>>(),
    })
}

/// The shuffle partitions recorded in an existing checkpoint, if any.
pub(crate) fn recorded_partitions(dir: &Path) -> Result<Option<usize>> {
    let storage = FsStorage::new(dir);
    match storage.read("metadata")? {
        None => Ok(None),
        Some(bytes) => {
            let v: Value = serde_json::from_slice(&bytes)
                .map_err(|e| Error::Checkpoint(format!("{}: not valid JSON: {e}", storage.describe("metadata"))))?;
            Ok(v["shufflePartitions"].as_u64().map(|n| n as usize))
        }
    }
}

impl QueryCheckpoint {
    /// Opens (or creates) the checkpoint at `dir` for a query described by `meta`; refuses a
    /// checkpoint written by a different query, saying what changed.
    pub fn open(dir: &Path, meta: Value, state: &[StateSchema], sources: usize) -> Result<Self> {
        let storage: Arc<dyn Storage> = Arc::new(FsStorage::new(dir));
        let mut id = meta["id"].as_str().unwrap_or_default().to_string();
        match storage.read("metadata")? {
            None => storage.write("metadata", meta.to_string().as_bytes())?,
            Some(bytes) => {
                let old: Value = serde_json::from_slice(&bytes)
                    .map_err(|e| Error::Checkpoint(format!("{}: not valid JSON: {e}", storage.describe("metadata"))))?;
                for field in ["inputs", "output", "outputMode", "shufflePartitions", "stateOperators"] {
                    if old[field] != meta[field] {
                        return Err(Error::Checkpoint(format!(
                            "checkpoint {} belongs to a different query: `{field}` was {} and is now {}. \
                             Stateful queries cannot change these across restarts; use a new checkpoint directory",
                            dir.display(),
                            old[field],
                            meta[field]
                        )));
                    }
                }
                id = old["id"].as_str().unwrap_or(&id).to_string();
            }
        }
        let stores = state
            .iter()
            .enumerate()
            .map(|(op, s)| {
                (0..s.partitions).map(|p| FileStateStore::new(dir.join(format!("state/{op}/{p}")))).collect()
            })
            .collect();
        Ok(QueryCheckpoint {
            dir: dir.to_path_buf(),
            offsets: BatchLog::new(storage.clone(), "offsets"),
            commits: BatchLog::new(storage.clone(), "commits"),
            sources: (0..sources).map(|i| BatchLog::new(storage.clone(), &format!("sources/{i}"))).collect(),
            stores,
            id,
        })
    }

    /// Where to resume, from the logs.
    pub fn resume(&self, sources: usize) -> Result<Resume> {
        let Some((last, entry)) = self.offsets.latest()? else {
            return Ok(Resume {
                committed: vec![None; sources],
                source_logs: vec![Vec::new(); sources],
                ..Default::default()
            });
        };
        let ends = offsets_from(&entry, sources, &self.offsets.describe(last))?;
        let logged_wm = |e: &Value| {
            e["watermark"].as_object().map(|w| (w["late"].as_i64().unwrap_or(0), w["eviction"].as_i64().unwrap_or(0)))
        };
        let mut source_logs = vec![Vec::new(); sources];
        for (i, log) in self.sources.iter().enumerate() {
            for b in log.batches()? {
                if b <= last {
                    if let Some(v) = log.get(b)? {
                        source_logs[i].push(v);
                    }
                }
            }
        }
        match self.commits.get(last)? {
            Some(commit) => {
                let watermarks = logged_wm(&entry)
                    .map(|(_, eviction)| (eviction, commit["nextBatchWatermarkMicros"].as_i64().unwrap_or(eviction)));
                Ok(Resume {
                    next_batch: last + 1,
                    committed: ends,
                    rerun: None,
                    watermarks,
                    source_logs,
                    state_version: last + 1,
                })
            }
            None => {
                let committed = match last.checked_sub(1) {
                    None => vec![None; sources],
                    Some(prev) => match self.offsets.get(prev)? {
                        Some(p) => offsets_from(&p, sources, &self.offsets.describe(prev))?,
                        None if last == 0 => vec![None; sources],
                        None => {
                            return Err(Error::Checkpoint(format!(
                                "{} is missing: cannot re-run batch {last} without the offsets it starts from",
                                self.offsets.describe(prev)
                            )))
                        }
                    },
                };
                Ok(Resume {
                    next_batch: last,
                    committed,
                    rerun: Some((last, ends)),
                    watermarks: logged_wm(&entry),
                    source_logs,
                    state_version: last,
                })
            }
        }
    }

    /// The state of every operator partition at `version`.
    /// Partitions load in parallel (restart time is the time to read and decode them).
    pub fn load_state(&self, version: u64) -> Result<Vec<Vec<StateMap>>> {
        use rayon::prelude::*;
        self.stores.iter().map(|op| op.par_iter().map(|s| s.load(version)).collect()).collect()
    }

    /// The write-ahead entry of a batch, durable before the batch runs.
    pub fn log_offsets(
        &self,
        batch: u64,
        ends: &[Option<Offset>],
        watermarks: Option<(i64, i64)>,
        source_logs: &[Option<Value>],
    ) -> Result<()> {
        for (log, entry) in self.sources.iter().zip(source_logs) {
            if let Some(e) = entry {
                log.add(batch, e)?;
            }
        }
        let wm = watermarks.map(|(late, eviction)| json!({"late": late, "eviction": eviction}));
        self.offsets.add(batch, &json!({"batchId": batch, "offsets": offsets_json(ends), "watermark": wm}))
    }

    /// Commits the state after `batch` as version `batch + 1`.
    pub fn commit_state(&mut self, batch: u64, changes: Vec<Vec<Vec<Change>>>) -> Result<()> {
        if changes.len() != self.stores.len() {
            return Err(Error::Internal(format!(
                "{} state change sets for {} operators",
                changes.len(),
                self.stores.len()
            )));
        }
        for (stores, op_changes) in self.stores.iter_mut().zip(changes) {
            for (store, part) in stores.iter_mut().zip(op_changes) {
                store.commit(batch + 1, &part)?;
            }
        }
        Ok(())
    }

    /// Marks `batch` done (the sink has it) and cleans up old entries now and then.
    pub fn log_commit(&mut self, batch: u64, next_watermark: Option<i64>) -> Result<()> {
        self.commits.add(batch, &json!({"batchId": batch, "nextBatchWatermarkMicros": next_watermark}))?;
        if batch.is_multiple_of(CLEANUP_EVERY) && batch > RETAIN {
            let keep_from = batch - RETAIN;
            self.offsets.purge(keep_from)?;
            self.commits.purge(keep_from)?;
            // Source logs are kept whole: a source rebuilds its full history from them (the
            // file source's offset counts files from the first batch).
            for op in &mut self.stores {
                for s in op.iter_mut() {
                    s.cleanup(batch + 1, RETAIN)?;
                }
            }
        }
        Ok(())
    }

    /// The directory, for messages.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}
