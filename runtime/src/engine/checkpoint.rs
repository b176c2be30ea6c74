//! The engine's use of a checkpoint directory: checking that it belongs to this query,
//! writing the offset log before and the commit log after each batch, committing state
//! versions, and working out where to resume after a restart.
//!
//! # What each batch writes, in order, and why a crash anywhere is safe
//!
//! A stateful batch pays four fsyncs on its path: two for its offset entry and two for its
//! state delta, the two written at the same time on two helper threads, and none for its
//! commit entry (before 2026-12-02 five: the commit entry's data was fsynced; before
//! 2026-12-01 seven: the sources' files and the commit entry's directory each cost one more
//! per batch), plus, off its path, one source file's
//! fsync per batch batched ten at a time at the offset log's purge, and the snapshots. Where a write skips an fsync, the paragraph below
//! says which durable copy or which rule of `resume` covers its loss.
//!
//! 1. Write-ahead, on a helper thread while the engine reads the input and runs the plan;
//!    the engine waits for it before the sink gets anything. `offsets/<b>`, which also
//!    carries the sources' log entries of the batch (`sourceLogs`), is written atomically and
//!    durably (file fsync, rename, directory fsync); then each `sources/<i>/<b>` is written to
//!    a temporary file and renamed, with *no* fsync at all (`Storage::write_lazily`).
//!    - Nothing reaches the sink before `offsets/<b>` is durable, so a crash that loses it
//!      has had no visible effect: resume re-plans from the last durable entry and never
//!      loads a state version past it, so a delta of version `b + 1` written (step 2) before
//!      `offsets/<b>` was durable is never read, and is replaced when batch `b` runs again.
//!    - Every source entry of a batch still in the offset log is durable in `offsets/<b>`, so
//!      a crash that loses `sources/<i>/<b>` — its name, or its data (it then reads back as
//!      corrupt: its checksum fails) — loses nothing: resume takes the entry from
//!      `offsets/<b>` and writes the file again, durably (and ignores a file that
//!      `offsets/<b>` does not vouch for: the leftover of an attempt whose offsets were lost).
//!      Before offset entries are purged (every [`CLEANUP_EVERY`] batches, those older than
//!      [`RETAIN`] batches, on the commit entry's helper thread of step 3), the source files of
//!      the purged batches are fsynced and then their directories, so each is durable before
//!      its durable copy goes (an fsync per batch still, but ten at a time, off the batch's
//!      path, of files written a hundred batches earlier). That includes the files
//!      a restart found on disk and kept (a killed process may never have synced them).
//!    - Offset entries without `sourceLogs` (older checkpoints) are served from the files, as
//!      before.
//! 2. `state/deltas/<b + 1>`: one batch delta holding every operator partition's changes
//!    (one file fsync and one directory fsync per batch, instead of two per partition). It is
//!    written on a helper thread *while the sink writes* batch `b`: the state version only has
//!    to be durable before the commit log entry, because until `commits/<b>` exists a restart
//!    re-runs batch `b` from state version `b`, which this write does not touch (a re-run
//!    replaces version `b + 1` atomically). The engine joins the write before step 3.
//! 3. `commits/<b>`: written to a temporary file and renamed with *no* fsync at all
//!    (`Storage::write_lazily`), on a helper thread while the engine goes on to the next
//!    trigger, joined before the next commit entry is written. When the query stops or goes
//!    idle ([`QueryCheckpoint::flush`], before a source is told it may forget the last batch)
//!    the latest entry is fsynced and then the directory; older entries are never made
//!    durable, as none is ever read again (see below). Until then a crash may lose the entry,
//!    or leave it torn (a power loss that kept its name but not its data: it reads back as
//!    corrupt, its checksum fails), and `resume` takes a torn latest commit entry for a
//!    missing one (any other read error still stops the query). A restart then sees batch `b`
//!    as uncommitted and re-runs it from state version `b` with its logged offsets, which is
//!    what a crash just before the commit write always meant; if `offsets/<b + 1>` is durable
//!    already, the restart re-runs batch `b + 1` instead, from state version `b + 1` (durable
//!    since step 2, which was joined before this write started) and the ends of `offsets/<b>`;
//!    resume never needs `commits/<b>` then. Either way the sink gets no batch it has not had,
//!    except a re-run it handles by batch id. A commit entry that reads back whole has its
//!    state version durable (step 2 was joined before it was written), so once `commits/<b>`
//!    reads back whole a restart loads state version `b + 1`. Only the latest offset entry's
//!    commit entry is ever read, so losing an older one changes nothing. Sources forget, after batch `b`, only up to batch `b`'s starts:
//!    `offsets/<b>` is durable, so a restart re-runs at most batch `b`, from there.
//!
//! Snapshots (every [`SNAPSHOT_INTERVAL`] versions) are not needed for correctness — every
//! version can be loaded from the previous snapshot and the deltas — so they are written off
//! the batch's path by a background thread, from a copy of the state kept in memory (loaded
//! from disk at the first snapshot version of a run, then kept up to date by applying each
//! batch's deltas). A snapshot is written atomically and durably before anything relies on it:
//! only the same thread, after that, deletes the deltas it makes unnecessary (cleanup). A crash
//! mid-snapshot leaves at most a temporary file, which no reader looks at. A snapshot of
//! version `b + 1` found when batch `b` commits its state can only be from an earlier,
//! uncommitted attempt of that batch: it is deleted durably before the new delta is written,
//! so a restart can never load that attempt's state for the version.
//!
//! Format: checkpoints written before batch deltas existed have `state/<op>/<part>/<v>.delta`
//! files; they are still read (a partition's chain takes a version from the batch delta when
//! there is one, else from its own file), so such a checkpoint resumes and continues with batch
//! deltas.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::mpsc::{Receiver, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use serde_json::{json, Value};

use super::StateSchema;
use crate::checkpoint::state::{
    apply_delta, decode_batch_delta, encode_batch_delta, encode_changes, Change, StateMap, MIN_VERSIONS_TO_RETAIN,
    SNAPSHOT_INTERVAL,
};
use crate::checkpoint::{BatchLog, FileStateStore, StateStore, Storage};
use crate::error::{Error, Result};
use crate::source::Offset;

/// How many batches the logs and state keep (Spark's `spark.sql.streaming.minBatchesToRetain`).
const RETAIN: u64 = MIN_VERSIONS_TO_RETAIN;
/// Old log entries and state files are cleaned every this many batches (cleanup lists
/// directories; doing it per batch would cost more than the batch on small inputs).
const CLEANUP_EVERY: u64 = 10;
/// Directory of the batch deltas (`<version>` files; see the module docs).
const BATCH_DELTAS: &str = "state/deltas";
/// Batches the snapshot thread may lag behind before a batch waits for it.
const SNAPSHOT_QUEUE: usize = 32;

/// Each operator partition's encoded delta of one version, `[operator][partition]`.
type Deltas = Vec<Vec<Vec<u8>>>;

/// The state files of a query: per-partition stores (snapshots, and deltas of older
/// checkpoints) and the batch deltas.
#[derive(Clone)]
struct StateFiles {
    storage: Arc<dyn Storage>,
    /// `[operator][partition]`.
    stores: Vec<Vec<FileStateStore>>,
}

impl StateFiles {
    fn batch_delta_versions(&self) -> Result<Vec<u64>> {
        let mut v: Vec<u64> = self.storage.list(BATCH_DELTAS)?.iter().filter_map(|n| n.parse().ok()).collect();
        v.sort_unstable();
        Ok(v)
    }

    fn batch_delta_rel(version: u64) -> String {
        format!("{BATCH_DELTAS}/{version}")
    }

    /// The state of every operator partition at `version`. The batch deltas a partition may
    /// need (those after the oldest snapshot any partition starts from) are read once and
    /// split; partitions then load in parallel (restart time is the time to read and decode
    /// them).
    fn load(&self, version: u64) -> Result<Vec<Vec<StateMap>>> {
        use rayon::prelude::*;
        let mut min_base = version;
        for s in self.stores.iter().flatten() {
            min_base = min_base.min(s.snapshot_base(version)?);
        }
        let mut parts: Vec<Vec<BTreeMap<u64, Vec<u8>>>> =
            self.stores.iter().map(|op| vec![BTreeMap::new(); op.len()]).collect();
        for v in self.batch_delta_versions()? {
            if v <= min_base || v > version {
                continue;
            }
            let rel = Self::batch_delta_rel(v);
            let what = self.storage.describe(&rel);
            let Some(bytes) = self.storage.read(&rel)? else { continue };
            let deltas = decode_batch_delta(&bytes, &what)?;
            if deltas.len() != parts.len() || deltas.iter().zip(&parts).any(|(d, p)| d.len() != p.len()) {
                return Err(Error::Checkpoint(format!(
                    "{what}: its operators and partitions do not match the query's ({:?} partitions)",
                    parts.iter().map(Vec::len).collect::<Vec<_>>()
                )));
            }
            for (op, d_op) in parts.iter_mut().zip(deltas) {
                for (p, d) in op.iter_mut().zip(d_op) {
                    p.insert(v, d);
                }
            }
        }
        self.stores
            .iter()
            .zip(&parts)
            .map(|(op, op_parts)| {
                op.par_iter().zip(op_parts).map(|(s, p)| s.load_with_batch_deltas(version, p)).collect()
            })
            .collect()
    }

    /// Forgets what loading the last [`RETAIN`] versions up to `latest` does not need: old
    /// per-partition files, and batch deltas at or below every partition's snapshot base
    /// (each partition then loads from a snapshot at or after them).
    fn cleanup(&self, latest: u64) -> Result<()> {
        let keep_from = latest.saturating_sub(RETAIN);
        let mut min_base = None::<u64>;
        for s in self.stores.iter().flatten() {
            let base = s.snapshot_base(keep_from)?;
            min_base = Some(min_base.map_or(base, |m| m.min(base)));
            let mut s = s.clone();
            s.cleanup(latest, RETAIN)?;
        }
        if let Some(base) = min_base {
            for v in self.batch_delta_versions()? {
                if v <= base {
                    self.storage.delete(&Self::batch_delta_rel(v))?;
                }
            }
        }
        Ok(())
    }
}

/// A log entry being written on a helper thread: the batch and the thread.
type PendingWrite = Option<(u64, JoinHandle<Result<()>>)>;

fn join_write(pending: PendingWrite, what: &str) -> Result<()> {
    match pending {
        None => Ok(()),
        Some((batch, h)) => {
            h.join().map_err(|_| Error::Internal(format!("writing the {what} of batch {batch} panicked")))?
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // The guarded value is a plain `Option` swapped whole: a poisoned lock still holds it.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The background thread that writes snapshots and cleans up old state files.
struct SnapshotWorker {
    tx: Option<SyncSender<(u64, Arc<Deltas>)>>,
    handle: Option<JoinHandle<()>>,
}

impl SnapshotWorker {
    fn start(files: StateFiles) -> Result<Self> {
        let (tx, rx) = std::sync::mpsc::sync_channel(SNAPSHOT_QUEUE);
        let handle = std::thread::Builder::new()
            .name("flowgate-snapshots".into())
            .spawn(move || snapshot_loop(files, rx))
            .map_err(|e| Error::io("starting the state snapshot thread", e))?;
        Ok(SnapshotWorker { tx: Some(tx), handle: Some(handle) })
    }

    /// Hands the worker the deltas of `version` (durable already).
    fn committed(&self, version: u64, deltas: Arc<Deltas>) {
        if let Some(tx) = &self.tx {
            // A worker that is gone (it panicked) only means no more snapshots: the deltas
            // alone still load every version.
            let _ = tx.send((version, deltas));
        }
    }
}

impl Drop for SnapshotWorker {
    fn drop(&mut self) {
        // Let the worker finish what it has queued (a stopped query leaves its snapshots
        // written), then end.
        self.tx.take();
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// The worker: keeps the state of the last version in memory, writes a snapshot of it every
/// [`SNAPSHOT_INTERVAL`] versions, then cleans up. Failures are logged and only cost
/// snapshots (the copy is rebuilt from disk at the next snapshot version).
fn snapshot_loop(files: StateFiles, rx: Receiver<(u64, Arc<Deltas>)>) {
    use rayon::prelude::*;
    let mut mirror: Option<(u64, Vec<Vec<StateMap>>)> = None;
    for (version, deltas) in rx {
        if mirror.as_ref().is_some_and(|(v, _)| v + 1 != version) {
            mirror = None;
        }
        let due = version.is_multiple_of(SNAPSHOT_INTERVAL);
        let mut step = || -> Result<()> {
            if mirror.is_none() && due {
                // Built when first needed (not from version 1: a large first batch would keep
                // this thread busy for nothing), from version - 1 on disk (never `version`
                // itself: a snapshot of `version` left by an earlier, uncommitted attempt of
                // this batch must not be read back), then kept up to date in memory.
                mirror = Some((version - 1, files.load(version - 1)?));
            }
            let Some((v, maps)) = &mut mirror else { return Ok(()) };
            for (op, d_op) in maps.iter_mut().zip(deltas.iter()) {
                op.par_iter_mut().zip(d_op).try_for_each(|(m, d)| apply_delta(m, d, "a batch's state delta"))?;
            }
            *v = version;
            if due {
                files.stores.iter().zip(maps.iter()).try_for_each(|(op, m_op)| {
                    op.par_iter().zip(m_op).try_for_each(|(s, m)| s.write_snapshot(version, m))
                })?;
                if version.is_multiple_of(CLEANUP_EVERY) && version > RETAIN {
                    files.cleanup(version)?;
                }
            }
            Ok(())
        };
        if let Err(e) = step() {
            tracing::warn!(version, error = %e, "state snapshot failed; the deltas still hold every version");
            mirror = None;
        }
    }
}

/// What a restart finds of the sources' log entries ([`QueryCheckpoint::resume`]).
struct RecoveredSourceLogs {
    /// Per source, the entries of every batch still logged, in batch order.
    logs: Vec<Vec<Value>>,
    /// Per source, the batches whose file may not be durable (see
    /// [`QueryCheckpoint::sources_lazy`]).
    lazy: Vec<BTreeSet<u64>>,
}

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
    /// The processing time (ms) logged for the batch to re-run, when its entry has one
    /// (entries written before batch timestamps were logged have none).
    pub rerun_timestamp_ms: Option<i64>,
    /// Watermarks (late, eviction) of the next batch to run, when the query has one.
    pub watermarks: Option<(i64, i64)>,
    /// Per-source log entries of every batch still logged, in batch order.
    pub source_logs: Vec<Vec<Value>>,
    /// State version to load (the state after the last committed batch).
    pub state_version: u64,
}

pub(crate) struct QueryCheckpoint {
    storage: Arc<dyn Storage>,
    offsets: BatchLog,
    commits: BatchLog,
    sources: Vec<BatchLog>,
    /// Per source: the batches whose `sources/<i>/<b>` file may not be durable yet (written
    /// with no fsync, or found on disk at a restart): fsynced, with their directory, before
    /// the offset entries that hold their durable copy are purged (see the module docs).
    sources_lazy: Vec<BTreeSet<u64>>,
    /// The last commit entry written with no fsync since `commits/` was last fsynced (step 3
    /// of the module docs): its data and its name are made durable at a stop or an idle point.
    commit_unsynced: Option<u64>,
    state: StateFiles,
    /// `None` for a query without state.
    snapshots: Option<SnapshotWorker>,
    /// The offset entry being written (step 1 of the module docs); behind a lock so that the
    /// engine can wait for it while the state commit holds `&self`.
    pending_offsets: Mutex<PendingWrite>,
    /// The commit entry being written (step 3 of the module docs).
    pending_commit: PendingWrite,
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
        "partitionHash": PARTITION_HASH,
        "stateOperators": state.iter().enumerate().map(|(id, s)| json!({
            "id": id,
            "operator": s.operator,
            "keyLayout": s.key_layout,
            "valueLayout": s.value_layout,
            "fingerprint": s.fingerprint(),
            "partitions": s.partitions,
        })).collect::<Vec<_>>(),
    })
}

/// The partition hash as the metadata names it ([`crate::partition`]).
const PARTITION_HASH: &str = "murmur3_x86_32-seed42-v1";

/// Why a checkpoint's recorded state operators do not fit the query's, in words: which
/// operator, and both layouts of what differs.
fn state_difference(old: &Value, new: &Value) -> Option<String> {
    if old == new {
        return None;
    }
    let (old, new) = (old.as_array().cloned().unwrap_or_default(), new.as_array().cloned().unwrap_or_default());
    if old.len() != new.len() {
        return Some(format!("the checkpoint has {} stateful operators, the query {}", old.len(), new.len()));
    }
    for (id, (o, n)) in old.iter().zip(&new).enumerate() {
        for (field, what) in
            [("operator", "operator"), ("keyLayout", "key"), ("valueLayout", "value"), ("partitions", "partitions")]
        {
            if o[field] != n[field] {
                // For a user's state type, say which fields (or state variables) changed.
                let detail = match (o[field].as_str(), n[field].as_str()) {
                    (Some(a), Some(b))
                        if field == "valueLayout"
                            && (b.contains("struct[") || b.starts_with("transform_with_state[")) =>
                    {
                        let mut d =
                            crate::codec::layout_difference(a, b).map(|d| format!(" ({d})")).unwrap_or_default();
                        if b.starts_with("transform_with_state[") && d.contains(") removed") {
                            d.push_str("; a processor that no longer uses a state variable deletes it in `init`: `handle.delete_if_exists(\"name\")`");
                        }
                        d
                    }
                    _ => String::new(),
                };
                return Some(format!(
                    "stateful operator {id} ({}): its {what} was {} in the checkpoint and is {} in the query{detail}",
                    n["operator"].as_str().unwrap_or("?"),
                    o[field],
                    n[field]
                ));
            }
        }
    }
    Some(format!("state operators were {} and are now {}", Value::Array(old), Value::Array(new)))
}

/// The state schemas recorded in an existing checkpoint, if any (operators in id order).
pub(crate) fn recorded_state_schemas(storage: &dyn Storage) -> Result<Option<Vec<StateSchema>>> {
    let Some(bytes) = storage.read("metadata")? else { return Ok(None) };
    let v: Value = serde_json::from_slice(&bytes)
        .map_err(|e| Error::Checkpoint(format!("{}: not valid JSON: {e}", storage.describe("metadata"))))?;
    let ops = v["stateOperators"].as_array().cloned().unwrap_or_default();
    Ok(Some(
        ops.iter()
            .map(|o| StateSchema {
                operator: o["operator"].as_str().unwrap_or_default().to_string(),
                key_layout: o["keyLayout"].as_str().unwrap_or_default().to_string(),
                value_layout: o["valueLayout"].as_str().unwrap_or_default().to_string(),
                partitions: o["partitions"].as_u64().unwrap_or_default() as usize,
            })
            .collect(),
    ))
}

/// The shuffle partitions recorded in an existing checkpoint, if any.
pub(crate) fn recorded_partitions(storage: &dyn Storage) -> Result<Option<usize>> {
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
    /// Opens (or creates) the checkpoint in `storage` for a query described by `meta`; refuses
    /// a checkpoint written by a different query, saying what changed.
    pub fn open(storage: Arc<dyn Storage>, meta: Value, state: &[StateSchema], sources: usize) -> Result<Self> {
        let dir = storage.describe("");
        let mut id = meta["id"].as_str().unwrap_or_default().to_string();
        match storage.read("metadata")? {
            None => storage.write("metadata", meta.to_string().as_bytes())?,
            Some(bytes) => {
                let old: Value = serde_json::from_slice(&bytes)
                    .map_err(|e| Error::Checkpoint(format!("{}: not valid JSON: {e}", storage.describe("metadata"))))?;
                if old.get("partitionHash").is_none() && old["stateOperators"].as_array().is_some_and(|a| !a.is_empty())
                {
                    return Err(Error::Checkpoint(format!(
                        "checkpoint {} was written by an older flowgate whose state partitioning and state \
                         schemas are not stable across builds; its state cannot be restored safely. Start the \
                         query on a new checkpoint directory",
                        dir
                    )));
                }
                for field in ["inputs", "output", "outputMode", "shufflePartitions", "partitionHash"] {
                    if old[field] != meta[field] {
                        return Err(Error::Checkpoint(format!(
                            "checkpoint {} belongs to a different query: `{field}` was {} and is now {}. \
                             Stateful queries cannot change these across restarts; use a new checkpoint directory",
                            dir, old[field], meta[field]
                        )));
                    }
                }
                if let Some(why) = state_difference(&old["stateOperators"], &meta["stateOperators"]) {
                    return Err(Error::Checkpoint(format!(
                        "checkpoint {} holds state this query cannot read: {why}. The state of a stateful \
                         query cannot change across restarts; use a new checkpoint directory",
                        dir
                    )));
                }
                id = old["id"].as_str().unwrap_or(&id).to_string();
            }
        }
        let stores = state
            .iter()
            .enumerate()
            .map(|(op, s)| {
                (0..s.partitions)
                    .map(|p| FileStateStore::in_storage(storage.clone(), &format!("state/{op}/{p}")))
                    .collect()
            })
            .collect::<Vec<Vec<_>>>();
        let state = StateFiles { storage: storage.clone(), stores };
        let snapshots = if state.stores.is_empty() { None } else { Some(SnapshotWorker::start(state.clone())?) };
        Ok(QueryCheckpoint {
            storage: storage.clone(),
            offsets: BatchLog::new(storage.clone(), "offsets"),
            commits: BatchLog::new(storage.clone(), "commits"),
            sources: (0..sources).map(|i| BatchLog::new(storage.clone(), &format!("sources/{i}"))).collect(),
            sources_lazy: vec![BTreeSet::new(); sources],
            commit_unsynced: None,
            state,
            snapshots,
            pending_offsets: Mutex::new(None),
            pending_commit: None,
            id,
        })
    }

    /// Where to resume, from the logs.
    pub fn resume(&mut self, sources: usize) -> Result<Resume> {
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
        let RecoveredSourceLogs { logs: source_logs, lazy } = self.resume_source_logs(last, sources)?;
        self.sources_lazy = lazy;
        // A commit entry is written with no fsync (step 3 of the module docs): after a power
        // loss its name may be durable and its data not, so a torn latest entry is a lost one,
        // and its batch runs again. Any other error (an I/O error) still stops the query.
        let commit = match self.commits.get(last) {
            Err(e) if matches!(e.root(), Error::CorruptFile { .. }) => {
                tracing::warn!(error = %e, "the last commit entry is torn (a crash before it was durable): batch {last} runs again");
                None
            }
            other => other?,
        };
        match commit {
            Some(commit) => {
                let watermarks = logged_wm(&entry)
                    .map(|(_, eviction)| (eviction, commit["nextBatchWatermarkMicros"].as_i64().unwrap_or(eviction)));
                Ok(Resume {
                    next_batch: last + 1,
                    committed: ends,
                    rerun: None,
                    rerun_timestamp_ms: None,
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
                    rerun_timestamp_ms: entry["batchTimestampMs"].as_i64(),
                    watermarks: logged_wm(&entry),
                    source_logs,
                    state_version: last,
                })
            }
        }
    }

    /// Per source, the log entries of batches up to `last`, in batch order. An offset entry
    /// with `sourceLogs` is authoritative for its batch: a missing or different
    /// `sources/<i>/<b>` file is written again (durably) from it, a file it does not vouch for
    /// is ignored. Batches without such an entry (purged, or an older checkpoint) use the files.
    /// Also returns, per source, the batches whose file is vouched for by an offset entry: a
    /// file found on disk may never have been fsynced (the process that wrote it was killed),
    /// so each is fsynced before its offset entry is purged, as if written by this process.
    fn resume_source_logs(&self, last: u64, sources: usize) -> Result<RecoveredSourceLogs> {
        let mut embedded: BTreeMap<u64, Vec<Value>> = BTreeMap::new();
        for b in self.offsets.batches()? {
            if b > last {
                continue;
            }
            if let Some(arr) = self.offsets.get(b)?.and_then(|e| e["sourceLogs"].as_array().cloned()) {
                if arr.len() != sources {
                    return Err(Error::Checkpoint(format!(
                        "{}: {} source log entries, the query has {sources} sources",
                        self.offsets.describe(b),
                        arr.len()
                    )));
                }
                embedded.insert(b, arr);
            }
        }
        let mut source_logs = vec![Vec::new(); sources];
        let mut lazy = vec![BTreeSet::new(); sources];
        for (i, log) in self.sources.iter().enumerate() {
            let files: BTreeSet<u64> = log.batches()?.into_iter().filter(|b| *b <= last).collect();
            let all: BTreeSet<u64> = files.iter().copied().chain(embedded.keys().copied()).collect();
            let mut rewrote = false;
            for b in all {
                match embedded.get(&b).map(|arr| &arr[i]) {
                    Some(Value::Null) => {}
                    Some(v) => {
                        let on_file = if files.contains(&b) { log.get(b).ok().flatten() } else { None };
                        if on_file.as_ref() != Some(v) {
                            log.add_unsynced(b, v)?;
                            rewrote = true;
                        } else {
                            lazy[i].insert(b);
                        }
                        source_logs[i].push(v.clone());
                    }
                    None => {
                        if let Some(v) = log.get(b)? {
                            source_logs[i].push(v);
                        }
                    }
                }
            }
            if rewrote {
                log.sync_dir()?;
            }
        }
        Ok(RecoveredSourceLogs { logs: source_logs, lazy })
    }

    /// Whether the query keeps state (has state stores).
    pub fn has_state(&self) -> bool {
        !self.state.stores.is_empty()
    }

    /// The state of every operator partition at `version`.
    pub fn load_state(&self, version: u64) -> Result<Vec<Vec<StateMap>>> {
        self.state.load(version)
    }

    /// Starts writing the write-ahead entry of a batch (and the sources' files) on a helper
    /// thread, so that it overlaps reading the input and running the plan; it is durable once
    /// [`QueryCheckpoint::wait_offsets`] returns, which the engine calls before the sink gets
    /// the batch (see the module docs for why that is the point that matters, and why the
    /// sources' own files need no directory fsync here).
    pub fn log_offsets(
        &mut self,
        batch: u64,
        ends: &[Option<Offset>],
        watermarks: Option<(i64, i64)>,
        source_logs: Vec<Option<Value>>,
        timestamp_ms: i64,
    ) -> Result<()> {
        self.wait_offsets()?;
        let wm = watermarks.map(|(late, eviction)| json!({"late": late, "eviction": eviction}));
        let logs: Vec<Value> = source_logs.iter().map(|e| e.clone().unwrap_or(Value::Null)).collect();
        // `batchTimestampMs` (Spark's name in its offset log metadata): a re-run batch takes
        // its processing time from here, so processing-time timeouts fire in the same batch.
        let entry = json!({"batchId": batch, "offsets": offsets_json(ends), "watermark": wm, "sourceLogs": logs, "batchTimestampMs": timestamp_ms});
        for (lazy, e) in self.sources_lazy.iter_mut().zip(&source_logs) {
            if e.is_some() {
                lazy.insert(batch);
            }
        }
        let (sources, offsets) = (self.sources.clone(), self.offsets.clone());
        let handle = std::thread::Builder::new()
            .name("flowgate-offset-log".into())
            .spawn(move || {
                offsets.add(batch, &entry)?;
                // Durable in the entry already: no fsync until the entry is purged.
                sources.iter().zip(&source_logs).try_for_each(|(log, e)| match e {
                    Some(e) => log.add_lazily(batch, e),
                    None => Ok(()),
                })
            })
            .map_err(|e| Error::io("starting the offset log thread", e))?;
        *lock(&self.pending_offsets) = Some((batch, handle));
        Ok(())
    }

    /// Waits for the write-ahead entry being written, if any; it is durable when this returns.
    pub fn wait_offsets(&self) -> Result<()> {
        let pending = lock(&self.pending_offsets).take();
        join_write(pending, "offset log entry")
    }

    /// Commits the state after `batch` as version `batch + 1`: one batch delta for all operator
    /// partitions, durable when this returns (see the module docs for why that is enough).
    /// Takes `&self` so that the engine can run it beside the sink.
    pub fn commit_state(&self, batch: u64, changes: Vec<Vec<Vec<Change>>>) -> Result<()> {
        use rayon::prelude::*;
        let stores = &self.state.stores;
        if changes.len() != stores.len() || changes.iter().zip(stores).any(|(c, s)| c.len() != s.len()) {
            return Err(Error::Internal(format!(
                "state changes for {:?} partitions, the checkpoint has {:?}",
                changes.iter().map(Vec::len).collect::<Vec<_>>(),
                stores.iter().map(Vec::len).collect::<Vec<_>>()
            )));
        }
        if stores.is_empty() {
            return Ok(());
        }
        let version = batch + 1;
        if version.is_multiple_of(SNAPSHOT_INTERVAL) {
            // A snapshot of this version can only be here from an earlier attempt of this batch
            // (this process's snapshot thread writes it after this returns): that attempt's
            // changes may differ, so the snapshot goes (durably) before the new delta, and the
            // snapshot thread writes it again from this one.
            for s in stores.iter().flatten() {
                s.remove_snapshot(version)?;
            }
        }
        let deltas: Deltas =
            changes.par_iter().map(|op| op.par_iter().map(|part| encode_changes(part)).collect()).collect();
        self.state.storage.write(&StateFiles::batch_delta_rel(version), &encode_batch_delta(&deltas))?;
        if let Some(w) = &self.snapshots {
            w.committed(version, Arc::new(deltas));
        }
        Ok(())
    }

    /// Marks `batch` done (the sink has it) and cleans up old entries now and then.
    /// The entry is written on a helper thread, with its data fsynced but not its directory
    /// (step 3 of the module docs): it is durable once [`QueryCheckpoint::flush`] returns.
    pub fn log_commit(&mut self, batch: u64, next_watermark: Option<i64>) -> Result<()> {
        self.join_writes()?;
        let (commits, offsets, sources) = (self.commits.clone(), self.offsets.clone(), self.sources.clone());
        let entry = json!({"batchId": batch, "nextBatchWatermarkMicros": next_watermark});
        // Every CLEANUP_EVERY batches, old log entries go too, on the same helper thread (off the
        // batch's path): the offset entries about to go are the durable copy of their batches'
        // source entries, so those source files are made durable first (their data, then their
        // names).
        let purge = (batch.is_multiple_of(CLEANUP_EVERY) && batch > RETAIN).then(|| {
            let keep_from = batch - RETAIN;
            let due: Vec<Vec<u64>> = self
                .sources_lazy
                .iter_mut()
                .map(|lazy| {
                    let rest = lazy.split_off(&keep_from);
                    std::mem::replace(lazy, rest).into_iter().collect()
                })
                .collect();
            (keep_from, due)
        });
        let handle = std::thread::Builder::new()
            .name("flowgate-commit-log".into())
            .spawn(move || {
                commits.add_lazily(batch, &entry)?;
                let Some((keep_from, due)) = purge else { return Ok(()) };
                for (log, due) in sources.iter().zip(&due) {
                    for &b in due {
                        log.sync(b)?;
                    }
                    if !due.is_empty() {
                        log.sync_dir()?;
                    }
                }
                offsets.purge(keep_from)?;
                // Source logs are kept whole: a source rebuilds its full history from them (the
                // file source's offset counts files from the first batch). State files are
                // cleaned by the snapshot thread, after the snapshots they rely on are durable.
                commits.purge(keep_from)
            })
            .map_err(|e| Error::io("starting the commit log thread", e))?;
        self.pending_commit = Some((batch, handle));
        self.commit_unsynced = Some(batch);
        Ok(())
    }

    /// Waits for the log entries being written, if any.
    fn join_writes(&mut self) -> Result<()> {
        let offsets = self.wait_offsets();
        join_write(self.pending_commit.take(), "commit entry").and(offsets)
    }

    /// Waits for the log entries being written, if any, and makes the commit entries durable
    /// (the fsync of `commits/` the batches skip): every entry is durable when this returns.
    pub fn flush(&mut self) -> Result<()> {
        self.join_writes()?;
        if let Some(batch) = self.commit_unsynced.take() {
            // Only the latest commit entry is ever read (older ones never need to be durable).
            self.commits.sync(batch)?;
            self.commits.sync_dir()?;
        }
        Ok(())
    }

    /// Where the checkpoint is, for messages.
    pub fn describe(&self) -> String {
        self.storage.describe("")
    }
}

impl Drop for QueryCheckpoint {
    fn drop(&mut self) {
        // The engine flushes when it stops; this is for paths that return early.
        if let Err(e) = self.flush() {
            tracing::error!(dir = %self.describe(), error = %e, "writing the last commit entry failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    const PARTS: usize = 3;

    fn open(dir: &Path) -> QueryCheckpoint {
        open_in(Arc::new(crate::checkpoint::FsStorage::new(dir)))
    }

    fn open_in(storage: Arc<dyn Storage>) -> QueryCheckpoint {
        let schema = vec![StateSchema {
            operator: "agg".into(),
            key_layout: "(i64)".into(),
            value_layout: "count".into(),
            partitions: PARTS,
        }];
        let meta = metadata("id", "q", &[], "out", "update", PARTS, &schema);
        QueryCheckpoint::open(storage, meta, &schema, 1).unwrap()
    }

    /// Deterministic changes for `version`: per partition a few puts and deletes (partition
    /// 2 often has none, as an idle partition would).
    fn changes(version: u64) -> Vec<Vec<Change>> {
        (0..PARTS as u64)
            .map(|p| {
                if p == 2 && !version.is_multiple_of(3) {
                    return Vec::new();
                }
                (0..4u64)
                    .map(|i| {
                        let key = vec![p as u8, ((version * 7 + i * 3) % 11) as u8];
                        let value = (!version.is_multiple_of(5)).then(|| version.to_le_bytes().to_vec());
                        (key, value)
                    })
                    .collect()
            })
            .collect()
    }

    fn apply_model(model: &mut [StateMap], version: u64) {
        for (m, part) in model.iter_mut().zip(changes(version)) {
            for (k, v) in part {
                match v {
                    Some(v) => m.insert(k, v),
                    None => m.remove(&k),
                };
            }
        }
    }

    #[test]
    fn older_per_partition_deltas_load_and_the_chain_continues_with_batch_deltas() {
        let dir = tempfile::tempdir().unwrap();
        // A checkpoint written before batch deltas: versions 1..=12 as per-partition files,
        // with the snapshot at 10.
        let mut models = vec![vec![StateMap::new(); PARTS]];
        for version in 1..=12u64 {
            for (p, part) in changes(version).into_iter().enumerate() {
                FileStateStore::new(dir.path().join(format!("state/0/{p}"))).commit(version, &part).unwrap();
            }
            let mut m = models.last().unwrap().clone();
            apply_model(&mut m, version);
            models.push(m);
        }
        assert!(dir.path().join("state/0/1/10.snapshot").exists());
        {
            let mut cp = open(dir.path());
            for v in 0..=12u64 {
                assert_eq!(cp.load_state(v).unwrap(), vec![models[v as usize].clone()], "old version {v}");
            }
            for version in 13..=25u64 {
                cp.commit_state(version - 1, vec![changes(version)]).unwrap();
                let mut m = models.last().unwrap().clone();
                apply_model(&mut m, version);
                models.push(m);
            }
            assert!(!dir.path().join("state/0/0/13.delta").exists(), "new versions go to batch deltas");
            assert!(dir.path().join("state/deltas/13").exists());
            cp.log_commit(24, None).unwrap();
        } // dropped: the snapshot thread has finished
        assert!(dir.path().join("state/0/2/20.snapshot").exists(), "snapshot written from memory");
        let cp = open(dir.path());
        for v in 0..=25u64 {
            assert_eq!(cp.load_state(v).unwrap(), vec![models[v as usize].clone()], "version {v}");
        }
        // A snapshot must equal what the deltas give: drop the deltas before 20 and load 20..
        for v in 1..=12 {
            for p in 0..PARTS {
                std::fs::remove_file(dir.path().join(format!("state/0/{p}/{v}.delta"))).unwrap();
            }
        }
        for v in 13..=20 {
            std::fs::remove_file(dir.path().join(format!("state/deltas/{v}"))).unwrap();
        }
        for v in 20..=25u64 {
            assert_eq!(cp.load_state(v).unwrap(), vec![models[v as usize].clone()], "version {v} from the snapshot");
        }
    }

    #[test]
    fn a_re_run_replaces_its_version_and_a_snapshot_is_rebuilt_after_restart() {
        let dir = tempfile::tempdir().unwrap();
        let mut model = vec![StateMap::new(); PARTS];
        {
            let cp = open(dir.path());
            for version in 1..=8u64 {
                cp.commit_state(version - 1, vec![changes(version)]).unwrap();
                apply_model(&mut model, version);
            }
            // An attempt of batch 8 (version 9) that will be re-run with other changes.
            cp.commit_state(8, vec![vec![vec![(vec![9, 9], Some(vec![1]))]; PARTS]]).unwrap();
        }
        let cp = open(dir.path());
        assert_eq!(cp.load_state(8).unwrap(), vec![model.clone()]);
        for version in 9..=12u64 {
            cp.commit_state(version - 1, vec![changes(version)]).unwrap();
            apply_model(&mut model, version);
        }
        drop(cp);
        // The restarted thread had no copy in memory: it loaded version 9 from disk for the
        // snapshot at 10.
        assert!(dir.path().join("state/0/0/10.snapshot").exists());
        let cp = open(dir.path());
        assert_eq!(cp.load_state(12).unwrap(), vec![model]);
        assert!(!cp.load_state(12).unwrap()[0][0].contains_key(&vec![9u8, 9]));
    }

    #[test]
    fn source_entries_are_recovered_from_the_offset_log() {
        let dir = tempfile::tempdir().unwrap();
        let entry = |b: u64| json!({ "files": [format!("{b}.json")] });
        let offsets = |b: u64| vec![Some(Offset(json!(b)))];
        {
            let mut cp = open(dir.path());
            for b in 0..4u64 {
                let log = (b != 2).then(|| entry(b));
                cp.log_offsets(b, &offsets(b), None, vec![log], 0).unwrap();
            }
        }
        let src = |b: u64| dir.path().join(format!("sources/0/{b}"));
        // A crash lost the (unsynced) rename of batch 1's source file …
        std::fs::remove_file(src(1)).unwrap();
        // … an attempt of batch 2 whose offsets were lost left a file no entry vouches for …
        crate::checkpoint::file::write_atomic(&src(2), entry(99).to_string().as_bytes()).unwrap();
        // … and batch 3's file is from an earlier attempt.
        crate::checkpoint::file::write_atomic(&src(3), entry(98).to_string().as_bytes()).unwrap();
        // An offset entry of an older flowgate (no `sourceLogs`): its file is used.
        let storage: Arc<dyn Storage> = Arc::new(crate::checkpoint::FsStorage::new(dir.path()));
        BatchLog::new(storage.clone(), "offsets")
            .add(4, &json!({"batchId": 4, "offsets": [4], "watermark": null}))
            .unwrap();
        BatchLog::new(storage.clone(), "sources/0").add(4, &entry(4)).unwrap();

        let mut cp = open(dir.path());
        let resume = cp.resume(1).unwrap();
        assert_eq!(resume.source_logs, vec![vec![entry(0), entry(1), entry(3), entry(4)]]);
        assert_eq!(resume.rerun.as_ref().map(|r| r.0), Some(4));
        // The files the offset log vouches for are on disk again, as logged.
        let log = BatchLog::new(storage, "sources/0");
        assert_eq!(log.get(1).unwrap(), Some(entry(1)));
        assert_eq!(log.get(3).unwrap(), Some(entry(3)));
    }

    /// Writes batches `from..to` as the engine does: offsets (with a source entry), state,
    /// commit.
    fn run_batches(cp: &mut QueryCheckpoint, from: u64, to: u64) {
        for b in from..to {
            let log = json!({ "files": [format!("{b}.json")] });
            cp.log_offsets(b, &[Some(Offset(json!(b)))], None, vec![Some(log)], 0).unwrap();
            cp.commit_state(b, vec![changes(b + 1)]).unwrap();
            cp.wait_offsets().unwrap();
            cp.log_commit(b, None).unwrap();
        }
    }

    /// The source entries `resume` gives, and those of the purged batches (files only).
    fn source_files_after(disk: &Arc<crate::checkpoint::sim::SimDisk>, batches: u64) -> (Vec<Value>, Vec<u64>) {
        let storage = disk.storage("cp");
        let mut cp = open_in(storage.clone());
        let resume = cp.resume(1).unwrap();
        let log = BatchLog::new(storage, "sources/0");
        let purged: Vec<u64> = (0..batches)
            .filter(|b| cp.offsets.get(*b).unwrap().is_none())
            .filter(|b| log.get(*b).ok().flatten() != Some(json!({ "files": [format!("{b}.json")] })))
            .collect();
        (resume.source_logs[0].clone(), purged)
    }

    #[test]
    fn source_files_written_without_fsync_are_durable_before_their_offset_entries_are_purged() {
        use crate::checkpoint::sim::{CrashMode, SimDisk};
        // Past two purges (every 10 batches once past RETAIN): a power loss right after the
        // last batch keeps only what was fsynced.
        let batches = RETAIN + 2 * CLEANUP_EVERY + 3;
        let disk = SimDisk::new();
        {
            let mut cp = open_in(disk.storage("cp"));
            run_batches(&mut cp, 0, batches);
            cp.join_writes().unwrap();
            // The snapshot thread done, so that the armed step is the flush's.
            drop(cp.snapshots.take());
            disk.crash_at(1, CrashMode::PowerLoss);
            // The next step is the crash (the commit directory's fsync of a stop).
            assert!(cp.flush().is_err());
        }
        let after = disk.after_crash();
        let (logs, missing) = source_files_after(&after, batches);
        assert!(missing.is_empty(), "purged batches whose source file is not durable: {missing:?}");
        let all: Vec<Value> = (0..batches).map(|b| json!({ "files": [format!("{b}.json")] })).collect();
        assert_eq!(logs, all, "every batch's entry from a file or the offset log");
        // The lazily written files of the batches still in the offset log were lost to the
        // power loss, and the restart wrote them again from there.
        let storage = after.storage("cp");
        let log = BatchLog::new(storage, "sources/0");
        assert_eq!(log.get(batches - 1).unwrap(), Some(all[batches as usize - 1].clone()));
    }

    #[test]
    fn a_commit_entry_whose_directory_was_not_fsynced_is_lost_to_a_power_loss_and_its_batch_re_run() {
        use crate::checkpoint::sim::{CrashMode, SimDisk};
        let disk = SimDisk::new();
        {
            let mut cp = open_in(disk.storage("cp"));
            run_batches(&mut cp, 0, 3);
            cp.join_writes().unwrap();
            // The snapshot thread done, so that the armed step is the flush's.
            drop(cp.snapshots.take());
            disk.crash_at(1, CrashMode::PowerLoss);
            assert!(cp.flush().is_err());
        }
        let mut cp = open_in(disk.after_crash().storage("cp"));
        let resume = cp.resume(1).unwrap();
        // Batch 2's offsets are durable, its commit entry's name is not: it runs again, from
        // the state after batch 1, which is durable.
        assert_eq!(resume.rerun.as_ref().map(|r| r.0), Some(2));
        assert_eq!(resume.state_version, 2);
        let mut model = vec![StateMap::new(); PARTS];
        apply_model(&mut model, 1);
        apply_model(&mut model, 2);
        assert_eq!(cp.load_state(2).unwrap(), vec![model]);

        // After a stop, every commit entry is durable.
        let disk = SimDisk::new();
        {
            let mut cp = open_in(disk.storage("cp"));
            run_batches(&mut cp, 0, 3);
            cp.flush().unwrap();
            drop(cp.snapshots.take());
            disk.crash_at(1, CrashMode::PowerLoss);
            let _ = cp.log_offsets(3, &[Some(Offset(json!(3)))], None, vec![None], 0);
            let _ = cp.wait_offsets();
        }
        let mut cp = open_in(disk.after_crash().storage("cp"));
        let resume = cp.resume(1).unwrap();
        assert_eq!((resume.next_batch, resume.rerun.is_none(), resume.state_version), (3, true, 3));
    }

    #[test]
    fn a_torn_latest_commit_entry_is_read_as_missing_and_its_batch_re_run() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut cp = open(dir.path());
            run_batches(&mut cp, 0, 3);
            cp.flush().unwrap();
        }
        // A power loss kept the name of commits/2, written with no fsync, but not its data
        // (nothing, or part of it).
        let path = dir.path().join("commits/2");
        let whole = std::fs::read(&path).unwrap();
        for torn in [Vec::new(), whole[..whole.len() / 2].to_vec(), b"garbage".to_vec()] {
            std::fs::write(&path, &torn).unwrap();
            let mut cp = open(dir.path());
            let resume = cp.resume(1).unwrap();
            assert_eq!(resume.rerun.as_ref().map(|r| r.0), Some(2), "batch 2 runs again");
            assert_eq!(resume.state_version, 2);
            let mut model = vec![StateMap::new(); PARTS];
            apply_model(&mut model, 1);
            apply_model(&mut model, 2);
            assert_eq!(cp.load_state(2).unwrap(), vec![model]);
        }
        // A torn older commit entry is never read.
        std::fs::write(&path, &whole).unwrap();
        std::fs::write(dir.path().join("commits/1"), b"").unwrap();
        let resume = open(dir.path()).resume(1).unwrap();
        assert_eq!((resume.next_batch, resume.rerun.is_none(), resume.state_version), (3, true, 3));
        // A torn offset entry still stops the query: nothing covers its loss once it is read.
        std::fs::write(dir.path().join("offsets/2"), b"").unwrap();
        assert!(matches!(open(dir.path()).resume(1).map(|_| ()).unwrap_err().root(), Error::CorruptFile { .. }));
    }

    #[test]
    fn a_commit_entry_lost_behind_the_next_offsets_re_runs_the_next_batch() {
        let dir = tempfile::tempdir().unwrap();
        let offsets = |b: u64| vec![Some(Offset(json!(b * 10)))];
        let mut model = vec![StateMap::new(); PARTS];
        {
            let mut cp = open(dir.path());
            for b in 0..2u64 {
                cp.log_offsets(b, &offsets(b), Some((b as i64, b as i64 + 1)), vec![None], 0).unwrap();
                cp.commit_state(b, vec![changes(b + 1)]).unwrap();
                apply_model(&mut model, b + 1);
                if b == 0 {
                    cp.log_commit(b, Some(1)).unwrap();
                }
            }
            cp.flush().unwrap();
            assert!(dir.path().join("commits/0").exists(), "durable after flush");
        }
        // The commit entry of batch 0 was still being written when the process died after
        // batch 1's offsets and state: resume re-runs batch 1 from state version 1 (after batch 0).
        std::fs::remove_file(dir.path().join("commits/0")).unwrap();
        let mut cp = open(dir.path());
        let resume = cp.resume(1).unwrap();
        assert_eq!(resume.rerun, Some((1, offsets(1))));
        assert_eq!(resume.committed, offsets(0));
        assert_eq!(resume.state_version, 1);
        assert_eq!(resume.watermarks, Some((1, 2)));
    }

    #[test]
    fn a_re_run_removes_the_snapshot_of_its_earlier_attempt() {
        let dir = tempfile::tempdir().unwrap();
        let mut model = vec![StateMap::new(); PARTS];
        {
            let mut cp = open(dir.path());
            for b in 0..10u64 {
                cp.log_offsets(b, &[Some(Offset(json!(b)))], None, vec![None], 0).unwrap();
                if b < 9 {
                    cp.commit_state(b, vec![changes(b + 1)]).unwrap();
                    apply_model(&mut model, b + 1);
                    cp.log_commit(b, None).unwrap();
                }
            }
        }
        // The first attempt of batch 9 got as far as a snapshot of version 10 (with other
        // changes) before the crash.
        for p in 0..PARTS {
            let stale: StateMap = [(vec![7u8], vec![7u8])].into_iter().collect();
            FileStateStore::new(dir.path().join(format!("state/0/{p}"))).write_snapshot(10, &stale).unwrap();
        }
        {
            let mut cp = open(dir.path());
            assert_eq!(cp.resume(1).unwrap().rerun.map(|r| r.0), Some(9));
            assert_eq!(cp.load_state(9).unwrap(), vec![model.clone()]);
            cp.commit_state(9, vec![changes(10)]).unwrap();
            apply_model(&mut model, 10);
            // Before the commit entry: the stale snapshot is gone (the snapshot thread may
            // have written the new one already).
            for (p, m) in model.iter().enumerate() {
                let store = FileStateStore::new(dir.path().join(format!("state/0/{p}")));
                if store.snapshot_base(10).unwrap() == 10 {
                    assert_eq!(&store.load(10).unwrap(), m, "partition {p}");
                }
            }
            cp.log_commit(9, None).unwrap();
        }
        assert!(dir.path().join("state/0/0/10.snapshot").exists(), "written again");
        assert_eq!(open(dir.path()).load_state(10).unwrap(), vec![model]);
    }

    #[test]
    fn a_delta_written_before_its_offsets_were_durable_is_never_read() {
        let dir = tempfile::tempdir().unwrap();
        let mut model = vec![StateMap::new(); PARTS];
        {
            let mut cp = open(dir.path());
            cp.log_offsets(0, &[Some(Offset(json!(0)))], None, vec![None], 0).unwrap();
            cp.commit_state(0, vec![changes(1)]).unwrap();
            apply_model(&mut model, 1);
            cp.log_commit(0, None).unwrap();
            // Batch 1: its state delta is written while its offset entry is still being
            // written; the process dies before that entry is durable.
            cp.log_offsets(1, &[Some(Offset(json!(1)))], None, vec![None], 0).unwrap();
            cp.commit_state(1, vec![vec![vec![(vec![5, 5], Some(vec![5]))]; PARTS]]).unwrap();
        }
        std::fs::remove_file(dir.path().join("offsets/1")).unwrap();
        let mut cp = open(dir.path());
        let resume = cp.resume(1).unwrap();
        assert_eq!((resume.next_batch, resume.rerun.is_none(), resume.state_version), (1, true, 1));
        assert_eq!(cp.load_state(1).unwrap(), vec![model.clone()]);
        // Batch 1 planned again (other offsets, other changes) replaces the orphan delta.
        cp.log_offsets(1, &[Some(Offset(json!(2)))], None, vec![None], 0).unwrap();
        cp.commit_state(1, vec![changes(2)]).unwrap();
        apply_model(&mut model, 2);
        cp.flush().unwrap();
        assert_eq!(cp.load_state(2).unwrap(), vec![model]);
    }

    #[test]
    fn corrupt_batch_delta_is_named_and_cleanup_keeps_what_loads() {
        let dir = tempfile::tempdir().unwrap();
        let mut models = vec![vec![StateMap::new(); PARTS]];
        {
            let mut cp = open(dir.path());
            for version in 1..=135u64 {
                cp.commit_state(version - 1, vec![changes(version)]).unwrap();
                cp.log_commit(version - 1, None).unwrap();
                let mut m = models.last().unwrap().clone();
                apply_model(&mut m, version);
                models.push(m);
            }
        }
        // The snapshot thread cleaned up at 110, 120 and 130: versions from 130 - RETAIN load.
        assert!(!dir.path().join("state/deltas/5").exists(), "old batch deltas removed");
        assert!(!dir.path().join("state/0/0/10.snapshot").exists(), "old snapshots removed");
        let cp = open(dir.path());
        for v in 30..=135u64 {
            assert_eq!(cp.load_state(v).unwrap(), vec![models[v as usize].clone()], "version {v}");
        }
        let p = dir.path().join("state/deltas/133");
        let mut bytes = std::fs::read(&p).unwrap();
        let n = bytes.len() - 1;
        bytes[n] ^= 0x04;
        std::fs::write(&p, bytes).unwrap();
        let e = cp.load_state(134).unwrap_err().to_string();
        assert!(e.contains("deltas/133") && e.contains("checksum"), "{e}");
        std::fs::remove_file(&p).unwrap();
        let e = cp.load_state(134).unwrap_err().to_string();
        assert!(e.contains("133.delta") && e.contains("missing"), "{e}");
    }
}
