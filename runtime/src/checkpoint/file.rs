//! Atomic, checksummed files, and the [`Storage`] trait every checkpoint, state and file-sink
//! file is written through.
//!
//! Every checkpoint file is `magic "FLOWGATE" | format u16 | payload length u64 | crc32 u32 |
//! payload` (little-endian), written to a temporary name, fsynced, renamed over the target, and
//! the directory fsynced: a reader sees the old file or the new one, and a torn, truncated or
//! bit-flipped file is detected and reported with its path.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::error::{Error, Result};

const MAGIC: &[u8; 8] = b"FLOWGATE";
/// Format version of the header; bump when the layout changes.
const FORMAT: u16 = 1;
/// magic (8) + format (2) + length (8) + crc32 (4).
pub const HEADER_LEN: usize = 22;

/// `payload` with the checksummed header in front.
pub fn frame(payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + payload.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&FORMAT.to_le_bytes());
    out.extend_from_slice(&(payload.len() as u64).to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
    out.extend_from_slice(payload);
    out
}

/// The payload of a framed file's bytes, checked; `what` names the file in errors.
pub fn unframe<'a>(bytes: &'a [u8], what: &Path) -> Result<&'a [u8]> {
    let bad = |why: String| Error::corrupt_file(what, why);
    if bytes.len() < HEADER_LEN {
        return Err(bad(format!("truncated: {} bytes, shorter than the {HEADER_LEN}-byte header", bytes.len())));
    }
    if &bytes[..8] != MAGIC {
        return Err(bad("not a flowgate checkpoint file (bad magic)".into()));
    }
    let format = u16::from_le_bytes([bytes[8], bytes[9]]);
    if format != FORMAT {
        return Err(bad(format!("unknown format version {format} (this flowgate writes {FORMAT})")));
    }
    let mut len8 = [0u8; 8];
    len8.copy_from_slice(&bytes[10..18]);
    let len = u64::from_le_bytes(len8) as usize;
    let mut crc4 = [0u8; 4];
    crc4.copy_from_slice(&bytes[18..22]);
    let crc = u32::from_le_bytes(crc4);
    let payload = &bytes[HEADER_LEN..];
    if payload.len() != len {
        return Err(bad(format!("torn or truncated: header says {len} payload bytes, file has {}", payload.len())));
    }
    if crc32fast::hash(payload) != crc {
        return Err(bad("checksum mismatch: the file is corrupt".into()));
    }
    Ok(payload)
}

/// Syncs a directory, making the renames done in it durable. Directories can be opened and
/// synced on Unix; elsewhere this is a no-op.
pub fn fsync_dir(dir: &Path) -> Result<()> {
    fs_sync_dir(dir).map_err(|e| Error::io(format!("syncing directory {}", dir.display()), e))
}

fn fs_sync_dir(dir: &Path) -> std::io::Result<()> {
    super::crash::step(super::crash::Step::DirFsync, dir, None)?;
    super::crash::dir_synced(dir);
    #[cfg(unix)]
    File::open(dir).and_then(|d| d.sync_all())?;
    Ok(())
}

/// Writes `payload` framed to `path` through a temporary file that is fsynced and renamed over
/// `path`, without syncing the directory (see [`Storage::write_unsynced`]); returns the
/// directory.
pub fn write_synced_file<'a>(path: &'a Path, payload: &[u8]) -> Result<&'a Path> {
    let (dir, name) = split_path(path)?;
    FsStorage::new(dir).write_unsynced(name, payload)?;
    Ok(dir)
}

fn split_path(path: &Path) -> Result<(&Path, &str)> {
    let dir = path.parent().ok_or_else(|| Error::Internal(format!("{} has no parent", path.display())))?;
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| Error::Internal(format!("{} has no file name in UTF-8", path.display())))?;
    Ok((dir, name))
}

/// Writes `payload` framed to `path` atomically and durably: temp file, fsync, rename, fsync
/// directory.
pub fn write_atomic(path: &Path, payload: &[u8]) -> Result<()> {
    let (dir, name) = split_path(path)?;
    FsStorage::new(dir).write(name, payload)
}

/// Reads and checks a file written by [`write_atomic`]; `Ok(None)` when it does not exist.
pub fn read_checked(path: &Path) -> Result<Option<Vec<u8>>> {
    match fs::read(path) {
        Ok(bytes) => Ok(Some(unframe(&bytes, path)?.to_vec())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io(format!("reading {}", path.display()), e)),
    }
}

/// The directory part of a relative path (`""` for a file at the root).
pub fn parent_rel(rel: &str) -> &str {
    rel.rsplit_once('/').map_or("", |(dir, _)| dir)
}

/// `dir/name`, or `name` at the root.
pub fn join_rel(dir: &str, name: &str) -> String {
    if dir.is_empty() {
        name.to_string()
    } else {
        format!("{}/{name}", dir.trim_end_matches('/'))
    }
}

/// The one layer every checkpoint, state and file-sink write goes through: where those files
/// live (a directory, memory, or the simulated disk of the crash tests, [`super::sim`]).
/// Paths are relative, `/`-separated; `""` is the root.
///
/// The required methods are a file system's primitive steps, each one step of the crash model:
/// [`Storage::write_new`] (a file's data), [`Storage::sync`] (its fsync), [`Storage::rename`],
/// [`Storage::sync_dir`] (a directory fsync, which makes the renames, creations and deletions
/// in it durable) and [`Storage::remove`] (a delete); plus reads. The provided methods build
/// the protocol on them once, for every implementation: an atomic checksummed write is
/// *temporary file, data, fsync, rename, directory fsync*, and a new directory is fsynced into
/// its parent before anything in it is relied on.
pub trait Storage: Send + Sync {
    /// Creates (or truncates) the file `rel` and writes `data` to it; not durable before
    /// [`Storage::sync`], and its name not before its directory's [`Storage::sync_dir`]. Fails
    /// with `NotFound` when the directory does not exist.
    fn write_new(&self, rel: &str, data: &[u8]) -> std::io::Result<()>;
    /// Makes the data of `rel` durable (fsync).
    fn sync(&self, rel: &str) -> std::io::Result<()>;
    /// Renames `from` over `to` (atomic; durable after the directory's [`Storage::sync_dir`]).
    fn rename(&self, from: &str, to: &str) -> std::io::Result<()>;
    /// Makes the entries of directory `rel_dir` durable (fsync of the directory).
    fn sync_dir(&self, rel_dir: &str) -> std::io::Result<()>;
    /// Deletes file `rel`; `Ok(false)` when it did not exist. Durable after the directory's
    /// [`Storage::sync_dir`].
    fn remove(&self, rel: &str) -> std::io::Result<bool>;
    /// Creates directory `rel_dir` and its missing ancestors; returns those it created,
    /// outermost first (each must be fsynced into its parent to be durable).
    fn create_dirs(&self, rel_dir: &str) -> std::io::Result<Vec<String>>;
    /// Whether directory `rel_dir` exists.
    fn dir_exists(&self, rel_dir: &str) -> std::io::Result<bool>;
    /// The raw bytes of file `rel`; `None` when absent.
    fn read_raw(&self, rel: &str) -> std::io::Result<Option<Vec<u8>>>;
    /// Names of the files directly in `rel_dir`, temporary (hidden) files included, sorted;
    /// empty when the directory does not exist.
    fn list_all(&self, rel_dir: &str) -> std::io::Result<Vec<String>>;
    /// Where `rel` is, for messages (a path, or a `mem:`/`sim:` name).
    fn describe(&self, rel: &str) -> String;

    /// Reads a file, checked (see [`unframe`]), through a memory map where the storage has
    /// one (large files such as snapshots); `None` when absent.
    fn read_large(&self, rel: &str) -> Result<Option<Vec<u8>>> {
        self.read(rel)
    }

    /// Writes `payload` framed, atomically and durably: [`Storage::write_unsynced`], then the
    /// directory's fsync.
    fn write(&self, rel: &str, payload: &[u8]) -> Result<()> {
        self.write_unsynced(rel, payload)?;
        self.sync_dir_checked(parent_rel(rel))
    }

    /// Writes `payload` framed to a temporary file, fsyncs it and renames it over `rel`,
    /// without syncing the directory: a reader sees the old file or the whole new one, but the
    /// new one may be missing after a crash until the directory is synced.
    fn write_unsynced(&self, rel: &str, payload: &[u8]) -> Result<()> {
        self.write_raw_unsynced(rel, &frame(payload))
    }

    /// Writes `payload` framed to a temporary file and renames it over `rel`, with no fsync at
    /// all: a reader sees the old file or the whole new one while the machine stays up, but
    /// after a power loss the new file may be missing, or present with its data lost (read back
    /// as corrupt: its checksum fails). For files whose content is also durable elsewhere, made
    /// durable later with [`Storage::sync`] and the directory's fsync when that copy goes.
    fn write_lazily(&self, rel: &str, payload: &[u8]) -> Result<()> {
        let (tmp, framed) = (self.temp_for(rel), frame(payload));
        let io = |what: &str, e| Error::io(format!("{what} {}", self.describe(rel)), e);
        match self.write_new(&tmp, &framed) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                self.create_dirs_durably(parent_rel(rel))?;
                self.write_new(&tmp, &framed).map_err(|e| io("writing", e))?;
            }
            r => r.map_err(|e| io("writing", e))?,
        }
        self.rename(&tmp, rel).map_err(|e| io("renaming into place", e))
    }

    /// The temporary name `rel` is written under before its rename (hidden: never listed).
    fn temp_for(&self, rel: &str) -> String {
        let name = rel.rsplit_once('/').map_or(rel, |(_, n)| n);
        join_rel(parent_rel(rel), &format!(".{name}.{}.tmp", std::process::id()))
    }

    /// [`Storage::sync`] of `rel`, its error naming the file.
    fn sync_checked(&self, rel: &str) -> Result<()> {
        self.sync(rel).map_err(|e| Error::io(format!("syncing {}", self.describe(rel)), e))
    }

    /// [`Storage::write_unsynced`] of bytes as they are (no frame: a file sink's data file).
    /// The directory is created (durably) only when the temporary file cannot be created
    /// because it is missing, so writes into existing directories pay no `mkdir` calls.
    fn write_raw_unsynced(&self, rel: &str, bytes: &[u8]) -> Result<()> {
        let dir = parent_rel(rel);
        let tmp = self.temp_for(rel);
        let io = |what: &str, e| Error::io(format!("{what} {}", self.describe(rel)), e);
        match self.write_new(&tmp, bytes) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                self.create_dirs_durably(dir)?;
                self.write_new(&tmp, bytes).map_err(|e| io("writing", e))?;
            }
            r => r.map_err(|e| io("writing", e))?,
        }
        self.sync(&tmp).map_err(|e| io("syncing", e))?;
        self.rename(&tmp, rel).map_err(|e| io("renaming into place", e))
    }

    /// Creates `rel_dir` and its missing ancestors, and fsyncs the parent of each one created,
    /// so that a file later made durable in `rel_dir` is not lost with a directory entry that
    /// was not.
    fn create_dirs_durably(&self, rel_dir: &str) -> Result<()> {
        let created =
            self.create_dirs(rel_dir).map_err(|e| Error::io(format!("creating {}", self.describe(rel_dir)), e))?;
        for d in created {
            self.sync_dir_checked(parent_rel(&d))?;
        }
        Ok(())
    }

    /// [`Storage::sync_dir`], its error naming the directory.
    fn sync_dir_checked(&self, rel_dir: &str) -> Result<()> {
        self.sync_dir(rel_dir).map_err(|e| Error::io(format!("syncing directory {}", self.describe(rel_dir)), e))
    }

    /// Reads a file, checked (see [`unframe`]); `None` when absent.
    fn read(&self, rel: &str) -> Result<Option<Vec<u8>>> {
        match self.read_raw(rel) {
            Ok(None) => Ok(None),
            Ok(Some(bytes)) => Ok(Some(unframe(&bytes, Path::new(&self.describe(rel)))?.to_vec())),
            Err(e) => Err(Error::io(format!("reading {}", self.describe(rel)), e)),
        }
    }

    /// Names of the files directly in `rel_dir` (not temporary files), sorted.
    fn list(&self, rel_dir: &str) -> Result<Vec<String>> {
        let names = self.list_all(rel_dir).map_err(|e| Error::io(format!("listing {}", self.describe(rel_dir)), e))?;
        Ok(names.into_iter().filter(|n| !n.starts_with('.')).collect())
    }

    /// Deletes a file (absent is fine), without syncing its directory.
    fn delete(&self, rel: &str) -> Result<()> {
        self.remove(rel).map(|_| ()).map_err(|e| Error::io(format!("deleting {}", self.describe(rel)), e))
    }
}

/// Files under a root directory. Each primitive step is a crash point of the process-wide
/// fault injection in `crash.rs` (`FLOWGATE_CRASH_AT`, for tests that crash a real process).
pub struct FsStorage {
    root: PathBuf,
}

impl FsStorage {
    /// Storage rooted at `root` (created on first write).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        FsStorage { root: root.into() }
    }
    /// The absolute path of `rel`.
    pub fn path(&self, rel: &str) -> PathBuf {
        if rel.is_empty() {
            self.root.clone()
        } else {
            self.root.join(rel)
        }
    }
}

impl Storage for FsStorage {
    fn write_new(&self, rel: &str, data: &[u8]) -> std::io::Result<()> {
        use super::crash::{step, Step};
        let path = self.path(rel);
        let mut f = File::create(&path)?;
        step(Step::Write, &path, Some((&mut f, data)))?;
        f.write_all(data)
    }
    fn sync(&self, rel: &str) -> std::io::Result<()> {
        let path = self.path(rel);
        super::crash::step(super::crash::Step::Fsync, &path, None)?;
        File::options().write(true).open(&path)?.sync_all()
    }
    fn rename(&self, from: &str, to: &str) -> std::io::Result<()> {
        let to = self.path(to);
        super::crash::step(super::crash::Step::Rename, &to, None)?;
        fs::rename(self.path(from), &to)?;
        if let Some(dir) = to.parent() {
            super::crash::renamed(dir, &to);
        }
        Ok(())
    }
    fn sync_dir(&self, rel_dir: &str) -> std::io::Result<()> {
        fs_sync_dir(&self.path(rel_dir))
    }
    fn remove(&self, rel: &str) -> std::io::Result<bool> {
        let path = self.path(rel);
        super::crash::step(super::crash::Step::Delete, &path, None)?;
        match fs::remove_file(path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
        }
    }
    fn create_dirs(&self, rel_dir: &str) -> std::io::Result<Vec<String>> {
        let mut missing = Vec::new();
        let mut d = rel_dir;
        while !d.is_empty() && !self.path(d).exists() {
            missing.push(d.to_string());
            d = parent_rel(d);
        }
        // The root and its missing ancestors are outside the storage: fsynced into their
        // parents here, as plain paths.
        let above: Vec<PathBuf> = self
            .root
            .ancestors()
            .take_while(|a| !a.as_os_str().is_empty() && !a.exists())
            .map(Path::to_path_buf)
            .collect();
        fs::create_dir_all(self.path(rel_dir))?;
        for created in above.iter().rev() {
            if let Some(parent) = created.parent().filter(|p| !p.as_os_str().is_empty()) {
                fs_sync_dir(parent)?;
            }
        }
        missing.reverse();
        Ok(missing)
    }
    fn dir_exists(&self, rel_dir: &str) -> std::io::Result<bool> {
        Ok(self.path(rel_dir).is_dir())
    }
    fn read_raw(&self, rel: &str) -> std::io::Result<Option<Vec<u8>>> {
        match fs::read(self.path(rel)) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }
    fn list_all(&self, rel_dir: &str) -> std::io::Result<Vec<String>> {
        let entries = match fs::read_dir(self.path(rel_dir)) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        let mut names = Vec::new();
        for e in entries {
            let e = e?;
            if e.file_type().map(|t| t.is_file()).unwrap_or(false) {
                names.push(e.file_name().to_string_lossy().into_owned());
            }
        }
        names.sort();
        Ok(names)
    }
    fn describe(&self, rel: &str) -> String {
        self.path(rel).display().to_string()
    }
    fn read_large(&self, rel: &str) -> Result<Option<Vec<u8>>> {
        let path = self.path(rel);
        let file = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io(format!("opening {}", path.display()), e)),
        };
        // SAFETY: checkpoint files are written to a temporary name and renamed into place
        // (`write_unsynced`), and never modified afterwards; nothing else writes this file
        // while it is mapped, so the mapping's contents cannot change under us.
        let map =
            unsafe { memmap2::Mmap::map(&file) }.map_err(|e| Error::io(format!("mapping {}", path.display()), e))?;
        Ok(Some(unframe(&map, &path)?.to_vec()))
    }
}

/// Files in memory (tests), with no crash model (every step is durable at once; see
/// [`super::sim`] for one that has). Stored as written (framed), so corruption tests work the
/// same way.
#[derive(Default)]
pub struct MemStorage {
    files: Mutex<BTreeMap<String, Vec<u8>>>,
}

impl MemStorage {
    /// Empty storage.
    pub fn new() -> Self {
        Self::default()
    }
    fn files(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Vec<u8>>> {
        // Each operation is a single map update: a poisoned lock still holds consistent data.
        self.files.lock().unwrap_or_else(|e| e.into_inner())
    }
    /// Overwrites the raw (framed) bytes of a file (corruption tests).
    pub fn put_raw(&self, rel: &str, bytes: Vec<u8>) {
        self.files().insert(rel.to_string(), bytes);
    }
    /// The raw (framed) bytes of a file.
    pub fn get_raw(&self, rel: &str) -> Option<Vec<u8>> {
        self.files().get(rel).cloned()
    }
}

impl Storage for MemStorage {
    fn write_new(&self, rel: &str, data: &[u8]) -> std::io::Result<()> {
        self.files().insert(rel.to_string(), data.to_vec());
        Ok(())
    }
    fn sync(&self, _rel: &str) -> std::io::Result<()> {
        Ok(())
    }
    fn rename(&self, from: &str, to: &str) -> std::io::Result<()> {
        let mut files = self.files();
        let data = files.remove(from).ok_or_else(|| std::io::Error::from(std::io::ErrorKind::NotFound))?;
        files.insert(to.to_string(), data);
        Ok(())
    }
    fn sync_dir(&self, _rel_dir: &str) -> std::io::Result<()> {
        Ok(())
    }
    fn remove(&self, rel: &str) -> std::io::Result<bool> {
        Ok(self.files().remove(rel).is_some())
    }
    fn create_dirs(&self, _rel_dir: &str) -> std::io::Result<Vec<String>> {
        Ok(Vec::new())
    }
    fn dir_exists(&self, _rel_dir: &str) -> std::io::Result<bool> {
        Ok(true)
    }
    fn read_raw(&self, rel: &str) -> std::io::Result<Option<Vec<u8>>> {
        Ok(self.files().get(rel).cloned())
    }
    fn list_all(&self, rel_dir: &str) -> std::io::Result<Vec<String>> {
        let prefix = if rel_dir.is_empty() { String::new() } else { format!("{}/", rel_dir.trim_end_matches('/')) };
        Ok(self
            .files()
            .keys()
            .filter_map(|k| k.strip_prefix(&prefix))
            .filter(|rest| !rest.contains('/'))
            .map(str::to_string)
            .collect())
    }
    fn describe(&self, rel: &str) -> String {
        format!("mem:{rel}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_corruption_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("offsets").join("0");
        write_atomic(&p, b"hello").unwrap();
        assert_eq!(read_checked(&p).unwrap().unwrap(), b"hello");
        assert_eq!(read_checked(&dir.path().join("missing")).unwrap(), None);

        let mut bytes = fs::read(&p).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0x01;
        fs::write(&p, &bytes).unwrap();
        let e = read_checked(&p).unwrap_err().to_string();
        assert!(e.contains("checksum mismatch") && e.contains(&p.display().to_string()), "{e}");

        fs::write(&p, &bytes[..bytes.len() - 2]).unwrap();
        let e = read_checked(&p).unwrap_err().to_string();
        assert!(e.contains("truncated") && e.contains("offsets"), "{e}");

        fs::write(&p, b"garbage that is long enough").unwrap();
        assert!(read_checked(&p).unwrap_err().to_string().contains("bad magic"));
    }

    #[test]
    fn storages_list_and_delete_alike() {
        let dir = tempfile::tempdir().unwrap();
        let fs_storage = FsStorage::new(dir.path());
        let mem = MemStorage::new();
        for s in [&fs_storage as &dyn Storage, &mem as &dyn Storage] {
            s.write("a/1", b"x").unwrap();
            s.write("a/0", b"y").unwrap();
            s.write("a/b/2", b"z").unwrap();
            assert_eq!(s.list("a").unwrap(), vec!["0".to_string(), "1".to_string()]);
            s.delete("a/0").unwrap();
            s.delete("a/0").unwrap();
            assert_eq!(s.read("a/0").unwrap(), None);
            assert_eq!(s.read("a/1").unwrap().unwrap(), b"x");
        }
    }
}
