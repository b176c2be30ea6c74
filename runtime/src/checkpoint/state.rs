//! The versioned state store: for one stateful operator and shuffle partition, the state
//! after each batch, as a delta file per version and a full snapshot every
//! [`SNAPSHOT_INTERVAL`] versions (Spark's HDFS-backed state store provider).
//!
//! Version convention: version `v` is the state after batch `v - 1`; version 0 is empty. A
//! re-run of batch `b` loads version `b` and commits version `b + 1` again (atomically replacing
//! the earlier attempt's files).
//!
//! File formats (inside the checkpoint's checksummed frame, see `file.rs`):
//! a delta is a sequence of `u32 key length | key | u8 1 | u32 value length | value` (a put) or
//! `u32 key length | key | u8 0` (a delete); a snapshot is the same with puts only.
//!
//! Batch deltas (format 2 of the engine's state, see `engine/checkpoint.rs`): the deltas of
//! every operator partition of one version in one file, `state/deltas/<version>`:
//! `u32 operators | per operator: u32 partitions | per partition: u64 length | delta`. One
//! file (one fsync, one directory fsync) per batch instead of one per partition. A partition's
//! chain is read from its own `<v>.delta` file or, when there is a batch delta for `v`, from its
//! part of that (a batch delta wins: only a newer flowgate writes them).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use super::file::{join_rel, FsStorage, Storage};
use crate::error::{Error, Result};

/// A full snapshot every 10 versions: Spark's `spark.sql.streaming.stateStore.minDeltasForSnapshot`
/// default.
pub const SNAPSHOT_INTERVAL: u64 = 10;
/// Versions kept by `cleanup`: Spark's `spark.sql.streaming.minBatchesToRetain` default.
pub const MIN_VERSIONS_TO_RETAIN: u64 = 100;

/// The state of one operator partition at one version: encoded key → encoded value.
pub type StateMap = BTreeMap<Vec<u8>, Vec<u8>>;

/// One change: a put (`Some(value)`) or a delete (`None`).
pub type Change = (Vec<u8>, Option<Vec<u8>>);

/// The state of one operator partition, by version.
pub trait StateStore: Send {
    /// The state at `version` (0 = empty).
    fn load(&self, version: u64) -> Result<BTreeMap<Vec<u8>, Vec<u8>>>;
    /// Records version `version` as version `version - 1` plus `changes`.
    fn commit(&mut self, version: u64, changes: &[Change]) -> Result<()>;
    /// Forgets what is not needed to load the last `retain` versions up to `latest`.
    fn cleanup(&mut self, latest: u64, retain: u64) -> Result<()>;
}

/// Encodes changes as a delta (the format of a `.delta` file's payload).
pub fn encode_changes(changes: &[Change]) -> Vec<u8> {
    encode(changes.iter().cloned())
}

/// Encodes a full map as a snapshot payload.
pub fn encode_snapshot(map: &StateMap) -> Vec<u8> {
    encode(map.iter().map(|(k, v)| (k.clone(), Some(v.clone()))))
}

/// Applies an encoded delta (or snapshot) to `map`; `what` names its file in errors.
pub fn apply_delta(map: &mut StateMap, bytes: &[u8], what: &str) -> Result<()> {
    apply(map, bytes, what)
}

/// A batch delta's payload: every operator partition's encoded delta, `[operator][partition]`.
pub fn encode_batch_delta(deltas: &[Vec<Vec<u8>>]) -> Vec<u8> {
    let len = deltas.iter().flatten().map(|d| d.len() + 8).sum::<usize>() + 4 + 4 * deltas.len();
    let mut out = Vec::with_capacity(len);
    out.extend_from_slice(&(deltas.len() as u32).to_le_bytes());
    for op in deltas {
        out.extend_from_slice(&(op.len() as u32).to_le_bytes());
        for d in op {
            out.extend_from_slice(&(d.len() as u64).to_le_bytes());
            out.extend_from_slice(d);
        }
    }
    out
}

/// The per-partition deltas of a batch delta's payload, `[operator][partition]`.
pub fn decode_batch_delta(mut bytes: &[u8], what: &str) -> Result<Vec<Vec<Vec<u8>>>> {
    let bad = || Error::corrupt_file(std::path::Path::new(what), "malformed batch delta");
    fn take<'a>(n: usize, bytes: &mut &'a [u8]) -> Option<&'a [u8]> {
        if bytes.len() < n {
            return None;
        }
        let (h, t) = bytes.split_at(n);
        *bytes = t;
        Some(h)
    }
    let u32_at = |b: &mut &[u8]| take(4, b).map(|h| u32::from_le_bytes(h.try_into().unwrap_or_default()) as usize);
    let ops = u32_at(&mut bytes).ok_or_else(bad)?;
    let mut out = Vec::with_capacity(ops.min(1024));
    for _ in 0..ops {
        let parts = u32_at(&mut bytes).ok_or_else(bad)?;
        let mut op = Vec::with_capacity(parts.min(1 << 16));
        for _ in 0..parts {
            let len =
                take(8, &mut bytes).map(|h| u64::from_le_bytes(h.try_into().unwrap_or_default())).ok_or_else(bad)?;
            let len = usize::try_from(len).map_err(|_| bad())?;
            op.push(take(len, &mut bytes).ok_or_else(bad)?.to_vec());
        }
        out.push(op);
    }
    if !bytes.is_empty() {
        return Err(bad());
    }
    Ok(out)
}

fn encode(changes: impl Iterator<Item = (Vec<u8>, Option<Vec<u8>>)>) -> Vec<u8> {
    let mut out = Vec::new();
    for (k, v) in changes {
        out.extend_from_slice(&(k.len() as u32).to_le_bytes());
        out.extend_from_slice(&k);
        match v {
            Some(v) => {
                out.push(1);
                out.extend_from_slice(&(v.len() as u32).to_le_bytes());
                out.extend_from_slice(&v);
            }
            None => out.push(0),
        }
    }
    out
}

fn apply(map: &mut BTreeMap<Vec<u8>, Vec<u8>>, mut bytes: &[u8], what: &str) -> Result<()> {
    let bad = || Error::corrupt_file(std::path::Path::new(what), "malformed state record");
    let take = |n: usize, bytes: &mut &[u8]| -> Result<Vec<u8>> {
        if bytes.len() < n {
            return Err(bad());
        }
        let (h, t) = bytes.split_at(n);
        *bytes = t;
        Ok(h.to_vec())
    };
    while !bytes.is_empty() {
        let klen = u32::from_le_bytes(take(4, &mut bytes)?.try_into().map_err(|_| bad())?) as usize;
        let key = take(klen, &mut bytes)?;
        match take(1, &mut bytes)?[0] {
            1 => {
                let vlen = u32::from_le_bytes(take(4, &mut bytes)?.try_into().map_err(|_| bad())?) as usize;
                map.insert(key, take(vlen, &mut bytes)?);
            }
            0 => {
                map.remove(&key);
            }
            _ => return Err(bad()),
        }
    }
    Ok(())
}

/// Folds version files into a map: the latest snapshot at or below `version`, then deltas.
fn load_with(
    version: u64,
    snapshots: &[u64],
    has_delta: impl Fn(u64) -> bool,
    read: impl Fn(u64, bool) -> Result<Vec<u8>>,
    name: impl Fn(u64, bool) -> String,
) -> Result<BTreeMap<Vec<u8>, Vec<u8>>> {
    let mut map = BTreeMap::new();
    if version == 0 {
        return Ok(map);
    }
    let base = snapshots.iter().copied().filter(|s| *s <= version).max().unwrap_or(0);
    if base > 0 {
        apply(&mut map, &read(base, true)?, &name(base, true))?;
    }
    for v in base + 1..=version {
        if !has_delta(v) {
            return Err(Error::Checkpoint(format!(
                "state version {version} cannot be loaded: {} is missing",
                name(v, false)
            )));
        }
        apply(&mut map, &read(v, false)?, &name(v, false))?;
    }
    Ok(map)
}

/// State in memory (tests): the same versions, deltas and snapshots, without files.
#[derive(Default)]
pub struct MemStateStore {
    deltas: Mutex<BTreeMap<u64, Vec<u8>>>,
    snapshots: Mutex<BTreeMap<u64, Vec<u8>>>,
}

impl MemStateStore {
    /// Empty store.
    pub fn new() -> Self {
        Self::default()
    }
}

impl StateStore for MemStateStore {
    fn load(&self, version: u64) -> Result<BTreeMap<Vec<u8>, Vec<u8>>> {
        let deltas = self.deltas.lock().unwrap_or_else(|e| e.into_inner());
        let snaps = self.snapshots.lock().unwrap_or_else(|e| e.into_inner());
        let snapshot_ids: Vec<u64> = snaps.keys().copied().collect();
        load_with(
            version,
            &snapshot_ids,
            |v| deltas.contains_key(&v),
            |v, snap| Ok(if snap { snaps[&v].clone() } else { deltas[&v].clone() }),
            |v, snap| format!("mem:{v}.{}", if snap { "snapshot" } else { "delta" }),
        )
    }

    fn commit(&mut self, version: u64, changes: &[Change]) -> Result<()> {
        self.deltas.lock().unwrap_or_else(|e| e.into_inner()).insert(version, encode(changes.iter().cloned()));
        if version.is_multiple_of(SNAPSHOT_INTERVAL) {
            let full = self.load(version)?;
            self.snapshots
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(version, encode(full.into_iter().map(|(k, v)| (k, Some(v)))));
        }
        Ok(())
    }

    fn cleanup(&mut self, latest: u64, retain: u64) -> Result<()> {
        let keep_from = latest.saturating_sub(retain);
        let snaps = self.snapshots.lock().unwrap_or_else(|e| e.into_inner());
        let base = snaps.keys().copied().filter(|s| *s <= keep_from).max().unwrap_or(0);
        drop(snaps);
        self.deltas.lock().unwrap_or_else(|e| e.into_inner()).retain(|v, _| *v > base);
        self.snapshots.lock().unwrap_or_else(|e| e.into_inner()).retain(|v, _| *v >= base);
        Ok(())
    }
}

/// State in files of a [`Storage`]: `<dir>/<version>.delta` and `<dir>/<version>.snapshot`.
#[derive(Clone)]
pub struct FileStateStore {
    storage: Arc<dyn Storage>,
    dir: String,
}

impl FileStateStore {
    /// The store of one operator partition in directory `dir` (created on first commit).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self::in_storage(Arc::new(FsStorage::new(dir)), "")
    }

    /// The store of one operator partition in directory `dir` of `storage`.
    pub fn in_storage(storage: Arc<dyn Storage>, dir: &str) -> Self {
        FileStateStore { storage, dir: dir.trim_end_matches('/').to_string() }
    }

    /// The state at `version`, taking the delta of a version from `batch_deltas` (this
    /// partition's parts of batch deltas, by version) when it has one, else from the
    /// partition's `.delta` file.
    pub fn load_with_batch_deltas(&self, version: u64, batch_deltas: &BTreeMap<u64, Vec<u8>>) -> Result<StateMap> {
        let snapshots = self.versions("snapshot")?;
        let deltas = self.versions("delta")?;
        load_with(
            version,
            &snapshots,
            |v| batch_deltas.contains_key(&v) || deltas.binary_search(&v).is_ok(),
            |v, snap| match (snap, batch_deltas.get(&v)) {
                (false, Some(d)) => Ok(d.clone()),
                _ => self.read(v, snap),
            },
            |v, snap| {
                let path = self.describe(v, snap);
                match (snap, batch_deltas.contains_key(&v)) {
                    (true, _) => path,
                    (false, true) => format!("this partition's part of the batch delta of version {v}"),
                    (false, false) => format!("{path} (and the batch delta of version {v})"),
                }
            },
        )
    }

    /// The latest snapshot at or below `version`, 0 when none.
    pub fn snapshot_base(&self, version: u64) -> Result<u64> {
        Ok(self.versions("snapshot")?.into_iter().filter(|s| *s <= version).max().unwrap_or(0))
    }

    /// Removes the snapshot of `version`, if any (durably).
    pub fn remove_snapshot(&self, version: u64) -> Result<()> {
        let rel = self.rel(version, true);
        match self.storage.remove(&rel) {
            Ok(true) => self.storage.sync_dir_checked(&self.dir),
            Ok(false) => Ok(()),
            Err(e) => Err(Error::io(format!("deleting {}", self.storage.describe(&rel)), e)),
        }
    }

    /// Writes the snapshot of `version` (durable when this returns).
    pub fn write_snapshot(&self, version: u64, map: &StateMap) -> Result<()> {
        self.storage.write(&self.rel(version, true), &encode_snapshot(map))
    }

    fn rel(&self, v: u64, snapshot: bool) -> String {
        join_rel(&self.dir, &format!("{v}.{}", if snapshot { "snapshot" } else { "delta" }))
    }

    fn describe(&self, v: u64, snapshot: bool) -> String {
        self.storage.describe(&self.rel(v, snapshot))
    }

    fn versions(&self, ext: &str) -> Result<Vec<u64>> {
        let mut out: Vec<u64> = self
            .storage
            .list(&self.dir)?
            .iter()
            .filter_map(|name| name.strip_suffix(ext).and_then(|n| n.strip_suffix('.')).and_then(|n| n.parse().ok()))
            .collect();
        out.sort_unstable();
        Ok(out)
    }

    /// Reads a version file: snapshots through a memory map where the storage has one (they
    /// can be large), deltas with a plain read.
    fn read(&self, v: u64, snapshot: bool) -> Result<Vec<u8>> {
        let rel = self.rel(v, snapshot);
        let bytes = if snapshot { self.storage.read_large(&rel)? } else { self.storage.read(&rel)? };
        bytes.ok_or_else(|| {
            Error::io(format!("opening {}", self.storage.describe(&rel)), std::io::ErrorKind::NotFound.into())
        })
    }
}

impl StateStore for FileStateStore {
    fn load(&self, version: u64) -> Result<BTreeMap<Vec<u8>, Vec<u8>>> {
        let snapshots = self.versions("snapshot")?;
        let deltas = self.versions("delta")?;
        load_with(
            version,
            &snapshots,
            |v| deltas.binary_search(&v).is_ok(),
            |v, snap| self.read(v, snap),
            |v, snap| self.describe(v, snap),
        )
    }

    fn commit(&mut self, version: u64, changes: &[Change]) -> Result<()> {
        self.storage.write(&self.rel(version, false), &encode(changes.iter().cloned()))?;
        if version.is_multiple_of(SNAPSHOT_INTERVAL) {
            let full = self.load(version)?;
            self.storage.write(&self.rel(version, true), &encode(full.into_iter().map(|(k, v)| (k, Some(v)))))?;
        }
        Ok(())
    }

    fn cleanup(&mut self, latest: u64, retain: u64) -> Result<()> {
        let keep_from = latest.saturating_sub(retain);
        let snapshots = self.versions("snapshot")?;
        let base = snapshots.iter().copied().filter(|s| *s <= keep_from).max().unwrap_or(0);
        // Best effort: a file left behind costs disk space, never correctness.
        for v in self.versions("delta")? {
            if v <= base {
                let _ = self.storage.remove(&self.rel(v, false));
            }
        }
        for v in snapshots {
            if v < base {
                let _ = self.storage.remove(&self.rel(v, true));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The same checks against any store: every version loads as a model map says.
    fn exercise(store: &mut dyn StateStore) {
        let mut model: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
        let mut models = vec![model.clone()];
        let mut seed = 1u64;
        for version in 1..=25u64 {
            let mut changes = Vec::new();
            for _ in 0..8 {
                seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                let key = vec![(seed >> 60) as u8];
                if (seed >> 40).is_multiple_of(4) {
                    model.remove(&key);
                    changes.push((key, None));
                } else {
                    let v = (seed >> 20).to_le_bytes().to_vec();
                    model.insert(key.clone(), v.clone());
                    changes.push((key, Some(v)));
                }
            }
            store.commit(version, &changes).unwrap();
            models.push(model.clone());
        }
        for (v, m) in models.iter().enumerate() {
            assert_eq!(&store.load(v as u64).unwrap(), m, "version {v}");
        }
        store.cleanup(25, 5).unwrap();
        for v in 20..=25u64 {
            assert_eq!(&store.load(v).unwrap(), &models[v as usize], "version {v} after cleanup");
        }
    }

    #[test]
    fn memory_store() {
        exercise(&mut MemStateStore::new());
    }

    #[test]
    fn file_store_snapshots_and_corruption() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = FileStateStore::new(dir.path().join("state/0/1"));
        exercise(&mut store);
        assert!(dir.path().join("state/0/1/20.snapshot").exists(), "a snapshot every 10 versions");
        assert!(!dir.path().join("state/0/1/3.delta").exists(), "old deltas cleaned up");
        // A flipped bit in the snapshot is reported with its file.
        let snap = dir.path().join("state/0/1/20.snapshot");
        let good = std::fs::read(&snap).unwrap();
        let mut bytes = good.clone();
        let n = bytes.len() - 1;
        bytes[n] ^= 0x80;
        std::fs::write(&snap, bytes).unwrap();
        let e = store.load(22).unwrap_err().to_string();
        assert!(e.contains("20.snapshot") && e.contains("checksum"), "{e}");
        // A missing delta in the chain is an error naming it.
        std::fs::write(&snap, good).unwrap();
        std::fs::remove_file(dir.path().join("state/0/1/24.delta")).unwrap();
        let e = store.load(25).unwrap_err().to_string();
        assert!(e.contains("24.delta") && e.contains("missing"), "{e}");
    }
}
