//! Atomic, checksummed files, and the [`Storage`] trait the logs are written through.
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
    let context = || format!("syncing directory {}", dir.display());
    super::crash::step(super::crash::Step::DirFsync, dir, None).map_err(|e| Error::io(context(), e))?;
    super::crash::dir_synced(dir);
    #[cfg(unix)]
    File::open(dir).and_then(|d| d.sync_all()).map_err(|e| Error::io(context(), e))?;
    Ok(())
}

/// Creates `dir` and its missing ancestors, and fsyncs the parent of each created directory,
/// so that a file later made durable in `dir` is not lost with a directory entry that was not.
fn create_dirs_durably(dir: &Path) -> std::io::Result<()> {
    let missing: Vec<&Path> = dir.ancestors().take_while(|d| !d.as_os_str().is_empty() && !d.exists()).collect();
    fs::create_dir_all(dir)?;
    for created in missing.iter().rev() {
        if let Some(parent) = created.parent().filter(|p| !p.as_os_str().is_empty()) {
            fsync_dir(parent).map_err(|e| std::io::Error::other(e.to_string()))?;
        }
    }
    Ok(())
}

/// Writes `payload` framed to `path` through a temporary file that is fsynced and renamed over
/// `path`; returns the directory, which the caller must sync ([`fsync_dir`]) before relying on
/// the file being there after a crash. A reader sees the old file or the whole new one, never
/// a torn one (the data is on disk before the rename can be).
///
/// The directory is created only when the temporary file cannot be created because it is
/// missing, so a steady stream of writes into existing directories pays no `mkdir` calls.
pub fn write_synced_file<'a>(path: &'a Path, payload: &[u8]) -> Result<&'a Path> {
    let dir = path.parent().ok_or_else(|| Error::Internal(format!("{} has no parent", path.display())))?;
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let bytes = frame(payload);
    let create = || match File::create(&tmp) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            create_dirs_durably(dir)?;
            File::create(&tmp)
        }
        r => r,
    };
    let write = || -> std::io::Result<()> {
        use super::crash::{step, Step};
        let mut f = create()?;
        step(Step::Write, &tmp, Some((&mut f, &bytes)))?;
        f.write_all(&bytes)?;
        step(Step::Fsync, &tmp, None)?;
        f.sync_all()?;
        step(Step::Rename, path, None)?;
        fs::rename(&tmp, path)?;
        super::crash::renamed(dir, path);
        Ok(())
    };
    write().map_err(|e| Error::io(format!("writing {}", path.display()), e))?;
    Ok(dir)
}

/// Writes `payload` framed to `path` atomically and durably: temp file, fsync, rename, fsync
/// directory.
pub fn write_atomic(path: &Path, payload: &[u8]) -> Result<()> {
    fsync_dir(write_synced_file(path, payload)?)
}

/// Reads and checks a file written by [`write_atomic`]; `Ok(None)` when it does not exist.
pub fn read_checked(path: &Path) -> Result<Option<Vec<u8>>> {
    match fs::read(path) {
        Ok(bytes) => Ok(Some(unframe(&bytes, path)?.to_vec())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io(format!("reading {}", path.display()), e)),
    }
}

/// Where checkpoint files live: a directory, or memory for tests. Paths are relative,
/// `/`-separated.
pub trait Storage: Send + Sync {
    /// Writes a file atomically (durable when this returns).
    fn write(&self, rel: &str, payload: &[u8]) -> Result<()>;
    /// Writes a file atomically, its data durable, but without syncing its directory, so the
    /// file may be missing after a crash until the directory is synced (see
    /// [`write_synced_file`]). By default the same as [`Storage::write`].
    fn write_unsynced(&self, rel: &str, payload: &[u8]) -> Result<()> {
        self.write(rel, payload)
    }
    /// Reads a file, checked; `None` when absent.
    fn read(&self, rel: &str) -> Result<Option<Vec<u8>>>;
    /// Names of the files directly in `rel_dir` (not temporary files), sorted.
    fn list(&self, rel_dir: &str) -> Result<Vec<String>>;
    /// Deletes a file (absent is fine).
    fn delete(&self, rel: &str) -> Result<()>;
    /// Where this storage is, for messages.
    fn describe(&self, rel: &str) -> String;
}

/// Files under a root directory.
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
        self.root.join(rel)
    }
}

impl Storage for FsStorage {
    fn write(&self, rel: &str, payload: &[u8]) -> Result<()> {
        write_atomic(&self.path(rel), payload)
    }
    fn write_unsynced(&self, rel: &str, payload: &[u8]) -> Result<()> {
        write_synced_file(&self.path(rel), payload).map(|_| ())
    }
    fn read(&self, rel: &str) -> Result<Option<Vec<u8>>> {
        read_checked(&self.path(rel))
    }
    fn list(&self, rel_dir: &str) -> Result<Vec<String>> {
        let dir = self.path(rel_dir);
        let entries = match fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Error::io(format!("listing {}", dir.display()), e)),
        };
        let mut names = Vec::new();
        for e in entries {
            let e = e.map_err(|e| Error::io(format!("listing {}", dir.display()), e))?;
            let name = e.file_name().to_string_lossy().into_owned();
            if !name.starts_with('.') && e.file_type().map(|t| t.is_file()).unwrap_or(false) {
                names.push(name);
            }
        }
        names.sort();
        Ok(names)
    }
    fn delete(&self, rel: &str) -> Result<()> {
        let removed = super::crash::step(super::crash::Step::Delete, &self.path(rel), None)
            .and_then(|()| fs::remove_file(self.path(rel)));
        match removed {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::io(format!("deleting {}", self.path(rel).display()), e)),
        }
    }
    fn describe(&self, rel: &str) -> String {
        self.path(rel).display().to_string()
    }
}

/// Files in memory (tests). Stored framed, so corruption tests work the same way.
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
    fn write(&self, rel: &str, payload: &[u8]) -> Result<()> {
        self.files().insert(rel.to_string(), frame(payload));
        Ok(())
    }
    fn read(&self, rel: &str) -> Result<Option<Vec<u8>>> {
        match self.files().get(rel) {
            None => Ok(None),
            Some(b) => Ok(Some(unframe(b, Path::new(&format!("mem:{rel}")))?.to_vec())),
        }
    }
    fn list(&self, rel_dir: &str) -> Result<Vec<String>> {
        let prefix = format!("{}/", rel_dir.trim_end_matches('/'));
        Ok(self
            .files()
            .keys()
            .filter_map(|k| k.strip_prefix(&prefix))
            .filter(|rest| !rest.contains('/'))
            .map(str::to_string)
            .collect())
    }
    fn delete(&self, rel: &str) -> Result<()> {
        self.files().remove(rel);
        Ok(())
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
