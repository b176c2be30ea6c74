//! A simulated disk for deterministic crash tests (after FoundationDB's simulation and
//! TigerBeetle's storage fault model): a [`Storage`] in memory that knows which of its steps
//! are durable, counts every step (a file's data, its fsync, a rename, a directory fsync, a
//! delete), and can stop the world at the N-th one. A test runs a query on it with a crash
//! armed at step N, takes [`SimDisk::after_crash`] — the disk as a restarted process would find
//! it — and runs the query again on that, for every N.
//!
//! The durability model (POSIX, as the crash-safety argument in `engine/checkpoint.rs`
//! assumes it):
//! - a file's data is durable once the file is fsynced ([`Storage::sync`]);
//! - a directory entry — a file created or renamed into the directory, a file deleted from it,
//!   a subdirectory created in it — is durable once the directory is fsynced
//!   ([`Storage::sync_dir`]); a durable entry under a directory whose own entry is not durable
//!   is lost with it.
//!
//! What a crash at step N leaves depends on the [`CrashMode`]: everything done before step N
//! ([`CrashMode::Stop`], a process killed), the same with step N half done when it writes a
//! file's data ([`CrashMode::Torn`]: a torn file), or only what the model says is durable
//! ([`CrashMode::PowerLoss`]: every unsynced write, rename, creation and deletion undone — a
//! crash between a rename and its directory fsync loses the rename).
//!
//! From the crash on, every step and read of the disk fails (the process is gone; its threads
//! stop at their next step with an error), so nothing done after the crash is on the disk
//! a restart sees.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use super::file::{join_rel, parent_rel, Storage};

/// What a crash leaves on the disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CrashMode {
    /// The process stops before step N: every step before it is on the disk, N is not.
    Stop,
    /// As [`CrashMode::Stop`], but when step N writes a file's data, half of the data is
    /// written first (a torn file).
    Torn,
    /// Power loss before step N: only durable steps survive (synced data, entries of synced
    /// directories); unsynced renames, creations and deletions are undone.
    PowerLoss,
}

/// One step of writing files: a crash point.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StepKind {
    /// A file's data ([`Storage::write_new`]).
    Write,
    /// A file's fsync.
    Fsync,
    /// A rename.
    Rename,
    /// A directory's fsync.
    DirFsync,
    /// A delete.
    Delete,
}

/// Where a crash happened.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Crash {
    /// The step number (1-based) the crash stopped before.
    pub step: u64,
    /// What the step was.
    pub kind: StepKind,
    /// The file or directory it was on (disk path).
    pub path: String,
    /// Renames into the step's directory that the crash lost because the directory was not
    /// fsynced since ([`CrashMode::PowerLoss`] only).
    pub lost_renames: usize,
}

#[derive(Clone, Default)]
struct Inode {
    data: Vec<u8>,
    /// The data as of the last fsync.
    synced: Vec<u8>,
}

#[derive(Clone, Default)]
struct State {
    /// Current namespace: path → inode.
    files: BTreeMap<String, u64>,
    dirs: BTreeSet<String>,
    /// Durable namespace.
    durable_files: BTreeMap<String, u64>,
    durable_dirs: BTreeSet<String>,
    inodes: BTreeMap<u64, Inode>,
    next_inode: u64,
    /// Renames whose directory was not fsynced since: (directory, new path).
    unsynced_renames: Vec<(String, String)>,
}

impl State {
    fn has_dir(&self, dir: &str) -> bool {
        dir.is_empty() || self.dirs.contains(dir)
    }

    /// The disk a restart finds after a crash in `mode` (a torn write already applied).
    fn image(&self, mode: CrashMode) -> State {
        if mode != CrashMode::PowerLoss {
            let mut s = self.clone();
            s.durable_files = s.files.clone();
            s.durable_dirs = s.dirs.clone();
            for i in s.inodes.values_mut() {
                i.synced = i.data.clone();
            }
            s.unsynced_renames.clear();
            return s;
        }
        let reachable = |path: &str| {
            let mut d = parent_rel(path);
            while !d.is_empty() {
                if !self.durable_dirs.contains(d) {
                    return false;
                }
                d = parent_rel(d);
            }
            true
        };
        let dirs: BTreeSet<String> = self.durable_dirs.iter().filter(|d| reachable(d)).cloned().collect();
        let files: BTreeMap<String, u64> =
            self.durable_files.iter().filter(|(p, _)| reachable(p)).map(|(p, i)| (p.clone(), *i)).collect();
        let inodes = files
            .values()
            .map(|i| {
                let synced = self.inodes.get(i).map(|n| n.synced.clone()).unwrap_or_default();
                (*i, Inode { data: synced.clone(), synced })
            })
            .collect();
        State {
            durable_files: files.clone(),
            files,
            durable_dirs: dirs.clone(),
            dirs,
            inodes,
            next_inode: self.next_inode,
            unsynced_renames: Vec::new(),
        }
    }
}

struct Inner {
    state: State,
    steps: u64,
    armed: Option<(u64, CrashMode)>,
    /// Set at the crash: the crash and the disk it left.
    crashed: Option<(Crash, State)>,
    trace: Vec<(StepKind, String)>,
}

/// A simulated disk shared by the storages of one simulated machine (a query's checkpoint and
/// its file sink's output), so that one step count and one crash cover them all.
pub struct SimDisk {
    inner: Mutex<Inner>,
}

fn crashed_error() -> std::io::Error {
    std::io::Error::other("simulated crash: the process is gone")
}

impl SimDisk {
    /// An empty disk, no crash armed.
    pub fn new() -> Arc<SimDisk> {
        Self::with_state(State::default())
    }

    fn with_state(state: State) -> Arc<SimDisk> {
        Arc::new(SimDisk {
            inner: Mutex::new(Inner { state, steps: 0, armed: None, crashed: None, trace: Vec::new() }),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // Every step updates the state whole under the lock: a poisoned lock still holds it.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A storage whose root is directory `root` of this disk (`""`: the disk's root).
    pub fn storage(self: &Arc<Self>, root: &str) -> Arc<dyn Storage> {
        Arc::new(SimStorage { disk: self.clone(), root: root.trim_end_matches('/').to_string() })
    }

    /// Arms a crash just before step `step` (1-based; counted from now on, over every storage
    /// of this disk).
    pub fn crash_at(&self, step: u64, mode: CrashMode) {
        let mut inner = self.lock();
        inner.armed = Some((inner.steps + step, mode));
    }

    /// The steps done so far.
    pub fn steps(&self) -> u64 {
        self.lock().steps
    }

    /// The steps done so far, in order, with their paths (for messages when a test fails).
    pub fn trace(&self) -> Vec<(StepKind, String)> {
        self.lock().trace.clone()
    }

    /// The crash, once it happened.
    pub fn crash(&self) -> Option<Crash> {
        self.lock().crashed.as_ref().map(|(c, _)| c.clone())
    }

    /// The disk as a restarted process finds it: after the crash, what the crash left; without
    /// one, everything written so far (as after a clean stop). A fresh disk, no crash armed.
    pub fn after_crash(&self) -> Arc<SimDisk> {
        let inner = self.lock();
        let state = match &inner.crashed {
            Some((_, s)) => s.clone(),
            None => inner.state.image(CrashMode::Stop),
        };
        Self::with_state(state)
    }

    /// Runs step `kind` on `path` unless the world stops at it: `f` does the step on the
    /// state; `torn` (for a data write) does half of it.
    fn step<T>(
        &self,
        kind: StepKind,
        path: &str,
        torn: impl FnOnce(&mut State),
        f: impl FnOnce(&mut State) -> std::io::Result<T>,
    ) -> std::io::Result<T> {
        let mut inner = self.lock();
        if inner.crashed.is_some() {
            return Err(crashed_error());
        }
        inner.steps += 1;
        let n = inner.steps;
        if let Some((_, mode)) = inner.armed.filter(|(at, _)| *at == n) {
            if mode == CrashMode::Torn && kind == StepKind::Write {
                torn(&mut inner.state);
            }
            let lost_renames = if mode == CrashMode::PowerLoss {
                let dir = if kind == StepKind::DirFsync { path } else { parent_rel(path) };
                inner.state.unsynced_renames.iter().filter(|(d, _)| d == dir).count()
            } else {
                0
            };
            let image = inner.state.image(mode);
            inner.crashed = Some((Crash { step: n, kind, path: path.to_string(), lost_renames }, image));
            return Err(crashed_error());
        }
        inner.trace.push((kind, path.to_string()));
        f(&mut inner.state)
    }

    fn read<T>(&self, f: impl FnOnce(&State) -> T) -> std::io::Result<T> {
        let inner = self.lock();
        if inner.crashed.is_some() {
            return Err(crashed_error());
        }
        Ok(f(&inner.state))
    }
}

fn not_found(what: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::NotFound, format!("sim: no such file or directory: {what}"))
}

fn new_file(s: &mut State, path: &str, data: Vec<u8>) {
    let id = s.next_inode;
    s.next_inode += 1;
    s.inodes.insert(id, Inode { data, synced: Vec::new() });
    s.files.insert(path.to_string(), id);
}

/// One root directory of a [`SimDisk`].
struct SimStorage {
    disk: Arc<SimDisk>,
    root: String,
}

impl SimStorage {
    fn path(&self, rel: &str) -> String {
        join_rel(&self.root, rel).trim_end_matches('/').to_string()
    }
}

impl Storage for SimStorage {
    fn write_new(&self, rel: &str, data: &[u8]) -> std::io::Result<()> {
        let path = self.path(rel);
        // A missing directory fails before the step, as `open(O_CREAT)` does on a real disk.
        if !self.disk.read(|s| s.has_dir(parent_rel(&path)))? {
            return Err(not_found(parent_rel(&path)));
        }
        let half = data[..data.len() / 2].to_vec();
        let torn_path = path.clone();
        self.disk.step(
            StepKind::Write,
            &path,
            |s| {
                if s.has_dir(parent_rel(&torn_path)) {
                    new_file(s, &torn_path, half);
                }
            },
            |s| {
                if !s.has_dir(parent_rel(&path)) {
                    return Err(not_found(parent_rel(&path)));
                }
                new_file(s, &path, data.to_vec());
                Ok(())
            },
        )
    }

    fn sync(&self, rel: &str) -> std::io::Result<()> {
        let path = self.path(rel);
        self.disk.step(
            StepKind::Fsync,
            &path,
            |_| {},
            |s| {
                let id = *s.files.get(&path).ok_or_else(|| not_found(&path))?;
                if let Some(i) = s.inodes.get_mut(&id) {
                    i.synced = i.data.clone();
                }
                Ok(())
            },
        )
    }

    fn rename(&self, from: &str, to: &str) -> std::io::Result<()> {
        let (from, to) = (self.path(from), self.path(to));
        self.disk.step(
            StepKind::Rename,
            &to,
            |_| {},
            |s| {
                if !s.has_dir(parent_rel(&to)) {
                    return Err(not_found(parent_rel(&to)));
                }
                let id = s.files.remove(&from).ok_or_else(|| not_found(&from))?;
                s.files.insert(to.clone(), id);
                s.unsynced_renames.push((parent_rel(&to).to_string(), to.clone()));
                Ok(())
            },
        )
    }

    fn sync_dir(&self, rel_dir: &str) -> std::io::Result<()> {
        let dir = self.path(rel_dir);
        self.disk.step(
            StepKind::DirFsync,
            &dir,
            |_| {},
            |s| {
                if !s.has_dir(&dir) {
                    return Err(not_found(&dir));
                }
                let in_dir = |p: &String| parent_rel(p) == dir;
                s.durable_files.retain(|p, _| !in_dir(p));
                let now: Vec<(String, u64)> =
                    s.files.iter().filter(|(p, _)| in_dir(p)).map(|(p, i)| (p.clone(), *i)).collect();
                s.durable_files.extend(now);
                s.durable_dirs.retain(|d| !in_dir(d));
                let now: Vec<String> = s.dirs.iter().filter(|d| in_dir(d)).cloned().collect();
                s.durable_dirs.extend(now);
                s.unsynced_renames.retain(|(d, _)| *d != dir);
                Ok(())
            },
        )
    }

    fn remove(&self, rel: &str) -> std::io::Result<bool> {
        let path = self.path(rel);
        self.disk.step(StepKind::Delete, &path, |_| {}, |s| Ok(s.files.remove(&path).is_some()))
    }

    fn create_dirs(&self, rel_dir: &str) -> std::io::Result<Vec<String>> {
        // Not a step of its own: a new directory is durable once its parent is fsynced, a step.
        let target = self.path(rel_dir);
        let root_created = !self.root.is_empty() && self.disk.read(|s| !s.has_dir(&self.root))?;
        let created = self.disk.read(|s| {
            let mut missing = Vec::new();
            let mut d = target.as_str();
            while !d.is_empty() && !s.has_dir(d) {
                missing.push(d.to_string());
                d = parent_rel(d);
            }
            missing.reverse();
            missing
        })?;
        {
            let mut inner = self.disk.lock();
            if inner.crashed.is_some() {
                return Err(crashed_error());
            }
            inner.state.dirs.extend(created.iter().cloned());
        }
        if root_created {
            // The root's own entries above it, made durable here (as `FsStorage` does).
            let mut d = self.root.as_str();
            let mut above = Vec::new();
            while !d.is_empty() {
                above.push(d.to_string());
                d = parent_rel(d);
            }
            for d in above.iter().rev() {
                let parent = parent_rel(d).to_string();
                self.disk.step(
                    StepKind::DirFsync,
                    &parent,
                    |_| {},
                    |s| {
                        let now: Vec<String> = s.dirs.iter().filter(|x| parent_rel(x) == parent).cloned().collect();
                        s.durable_dirs.extend(now);
                        Ok(())
                    },
                )?;
            }
        }
        let prefix = if self.root.is_empty() { String::new() } else { format!("{}/", self.root) };
        Ok(created.into_iter().filter_map(|d| d.strip_prefix(&prefix).map(str::to_string)).collect())
    }

    fn dir_exists(&self, rel_dir: &str) -> std::io::Result<bool> {
        let dir = self.path(rel_dir);
        self.disk.read(|s| s.has_dir(&dir))
    }

    fn read_raw(&self, rel: &str) -> std::io::Result<Option<Vec<u8>>> {
        let path = self.path(rel);
        self.disk.read(|s| s.files.get(&path).and_then(|i| s.inodes.get(i)).map(|i| i.data.clone()))
    }

    fn list_all(&self, rel_dir: &str) -> std::io::Result<Vec<String>> {
        let dir = self.path(rel_dir);
        self.disk.read(|s| {
            s.files
                .keys()
                .filter(|p| parent_rel(p) == dir)
                .map(|p| p.rsplit_once('/').map_or(p.as_str(), |(_, n)| n).to_string())
                .collect()
        })
    }

    fn describe(&self, rel: &str) -> String {
        format!("sim:{}", self.path(rel))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(s: &dyn Storage, dir: &str) -> Vec<String> {
        s.list(dir).unwrap()
    }

    #[test]
    fn a_durable_write_survives_every_crash_mode() {
        for mode in [CrashMode::Stop, CrashMode::Torn, CrashMode::PowerLoss] {
            let disk = SimDisk::new();
            let s = disk.storage("cp");
            s.write("offsets/0", b"zero").unwrap();
            disk.crash_at(1, mode);
            assert!(s.write("offsets/1", b"one").is_err());
            assert!(s.read("offsets/0").is_err(), "no reads after the crash");
            let after = disk.after_crash();
            let s = after.storage("cp");
            assert_eq!(s.read("offsets/0").unwrap().unwrap(), b"zero", "{mode:?}");
            assert_eq!(names(s.as_ref(), "offsets"), vec!["0"], "{mode:?}");
            assert_eq!(after.crash(), None);
        }
    }

    #[test]
    fn power_loss_undoes_a_rename_whose_directory_was_not_fsynced() {
        let disk = SimDisk::new();
        let s = disk.storage("cp");
        s.write("offsets/0", b"zero").unwrap();
        s.write_unsynced("offsets/1", b"one").unwrap();
        // Step 1 is the next one: the directory fsync that would make the rename durable.
        disk.crash_at(1, CrashMode::PowerLoss);
        assert!(s.sync_dir("offsets").is_err());
        let crash = disk.crash().unwrap();
        assert_eq!((crash.kind, crash.lost_renames), (StepKind::DirFsync, 1));
        let after = disk.after_crash();
        assert_eq!(names(after.storage("cp").as_ref(), "offsets"), vec!["0"]);
        // A plain stop at the same step keeps it.
        let disk = SimDisk::new();
        let s = disk.storage("cp");
        s.write_unsynced("offsets/1", b"one").unwrap();
        disk.crash_at(1, CrashMode::Stop);
        assert!(s.sync_dir("offsets").is_err());
        assert_eq!(names(disk.after_crash().storage("cp").as_ref(), "offsets"), vec!["1"]);
    }

    #[test]
    fn power_loss_loses_a_new_directory_not_fsynced_into_its_parent_and_unsynced_data() {
        let disk = SimDisk::new();
        let s = disk.storage("cp");
        // A file fsynced and its directory fsynced, but the directory itself never made
        // durable in its parent: `create_dirs` without the parent's fsync.
        s.create_dirs("state/deltas").unwrap();
        s.write_new("state/deltas/1", b"x").unwrap();
        s.sync("state/deltas/1").unwrap();
        s.sync_dir("state/deltas").unwrap();
        // Unsynced data in a durable entry.
        s.write("a", b"old").unwrap();
        s.write_new("b", b"unsynced").unwrap();
        s.sync_dir("").unwrap();
        disk.crash_at(1, CrashMode::PowerLoss);
        assert!(s.sync("b").is_err());
        let after = disk.after_crash();
        let s = after.storage("cp");
        assert_eq!(names(s.as_ref(), "state/deltas"), Vec::<String>::new());
        assert_eq!(s.read_raw("b").unwrap().unwrap(), b"", "the entry is durable, the data not");
        assert_eq!(s.read("a").unwrap().unwrap(), b"old");
    }

    #[test]
    fn a_torn_write_leaves_half_a_file_that_reads_as_corrupt() {
        let disk = SimDisk::new();
        let s = disk.storage("out");
        s.write("_manifest/0", b"{}").unwrap();
        disk.crash_at(1, CrashMode::Torn);
        assert!(s.write_raw_unsynced("part-0", b"0123456789").is_err());
        let after = disk.after_crash();
        let s = after.storage("out");
        let tmp = s.list_all("").unwrap().into_iter().find(|n| n.starts_with(".part-0")).unwrap();
        assert_eq!(s.read_raw(&tmp).unwrap().unwrap(), b"01234");
        assert_eq!(s.list("").unwrap(), Vec::<String>::new(), "temporary files are not listed");
    }

    #[test]
    fn steps_are_counted_over_every_storage_of_a_disk() {
        let disk = SimDisk::new();
        disk.storage("cp").write("metadata", b"m").unwrap();
        let first = disk.steps();
        disk.storage("out").write("x", b"y").unwrap();
        assert!(disk.steps() > first);
        let kinds: Vec<StepKind> = disk.trace().iter().map(|(k, _)| *k).collect();
        assert!(kinds.starts_with(&[StepKind::DirFsync]), "the root cp fsynced into the disk root: {kinds:?}");
        assert!(kinds.contains(&StepKind::Write) && kinds.contains(&StepKind::Rename), "{kinds:?}");
    }
}
