//! Crash points for tests (after FoundationDB's and TigerBeetle's deterministic fault
//! injection): every step of writing checkpoint and file-sink files — a file's data, its
//! fsync, the rename into place, a directory fsync, a delete — counts one, and with
//! `FLOWGATE_CRASH_AT=N` in its environment the process aborts (no destructors, no flush:
//! as `kill -9` would stop it) just before step `N`. A test sweeps `N` over every step of a
//! run and checks after each crash that a restart is exactly-once.
//!
//! With `FLOWGATE_CRASH_EIO=1` step `N` does not crash but fails with EIO (an injected disk
//! error: the query must stop with an error naming the file, and a restart be exactly-once).
//!
//! Two options make the crash harsher, as a power loss may be:
//! - `FLOWGATE_CRASH_TORN=1`: a crash at a data write first writes half the data (a torn file);
//! - `FLOWGATE_CRASH_LOSE_UNSYNCED=1`: renames whose directory was not fsynced since are undone
//!   first (the new files vanish), the loss the crash-safety argument must allow for.
//!
//! Without `FLOWGATE_CRASH_AT` (always, outside such tests) each step costs one relaxed atomic
//! increment.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};

/// A step of writing a file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Step {
    /// Writing a (temporary) file's data.
    Write,
    /// Fsyncing a file.
    Fsync,
    /// Renaming a temporary file into place.
    Rename,
    /// Fsyncing a directory.
    DirFsync,
    /// Deleting a file.
    Delete,
}

struct Config {
    at: u64,
    eio: bool,
    torn: bool,
    lose_unsynced: bool,
}

fn config() -> Option<&'static Config> {
    static CONFIG: OnceLock<Option<Config>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let at = std::env::var("FLOWGATE_CRASH_AT").ok()?.parse().ok()?;
            let flag = |name: &str| std::env::var(name).is_ok_and(|v| v == "1");
            Some(Config {
                at,
                eio: flag("FLOWGATE_CRASH_EIO"),
                torn: flag("FLOWGATE_CRASH_TORN"),
                lose_unsynced: flag("FLOWGATE_CRASH_LOSE_UNSYNCED"),
            })
        })
        .as_ref()
}

static STEPS: AtomicU64 = AtomicU64::new(0);

/// Set when the crash step is reached: every other thread stops at its next step, as all of a
/// process stops at once in a real crash.
static CRASHING: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Renames not yet made durable by a directory fsync: (directory, new path).
fn unsynced() -> &'static Mutex<Vec<(PathBuf, PathBuf)>> {
    static UNSYNCED: OnceLock<Mutex<Vec<(PathBuf, PathBuf)>>> = OnceLock::new();
    UNSYNCED.get_or_init(Mutex::default)
}

/// Counts a step on `path`; aborts the process if it is the crash step (or fails it with EIO
/// under `FLOWGATE_CRASH_EIO`). For a data write, `torn` writes half of it first (given the
/// file and the data).
pub(crate) fn step(kind: Step, path: &Path, torn: Option<(&mut std::fs::File, &[u8])>) -> std::io::Result<()> {
    let Some(config) = config() else { return Ok(()) };
    if CRASHING.load(Ordering::SeqCst) {
        loop {
            std::thread::park();
        }
    }
    let n = STEPS.fetch_add(1, Ordering::Relaxed) + 1;
    if n != config.at {
        return Ok(());
    }
    if config.eio {
        eprintln!("flowgate fault point {n}: EIO at {kind:?} of {}", path.display());
        return Err(std::io::Error::from_raw_os_error(5));
    }
    CRASHING.store(true, Ordering::SeqCst);
    if let (true, Some((file, data))) = (config.torn, torn) {
        use std::io::Write;
        let _ = file.write_all(&data[..data.len() / 2]);
        let _ = file.sync_all();
    }
    if config.lose_unsynced {
        let lost = unsynced().lock().map(|l| l.clone()).unwrap_or_default();
        for (_, new) in lost {
            let _ = std::fs::remove_file(new);
        }
    }
    eprintln!("flowgate crash point {n}: before {kind:?} of {}", path.display());
    std::process::abort();
}

/// Records a rename into `dir` (to undo at a crash under `FLOWGATE_CRASH_LOSE_UNSYNCED`).
pub(crate) fn renamed(dir: &Path, new: &Path) {
    if config().is_some_and(|c| c.lose_unsynced) {
        if let Ok(mut l) = unsynced().lock() {
            l.push((dir.to_path_buf(), new.to_path_buf()));
        }
    }
}

/// Records that `dir` is being fsynced: its renames are durable (called just before the
/// fsync, so that a crash elsewhere while it runs never undoes a rename it makes durable; a
/// crash before it is the fsync's own step).
pub(crate) fn dir_synced(dir: &Path) {
    if config().is_some_and(|c| c.lose_unsynced) {
        if let Ok(mut l) = unsynced().lock() {
            l.retain(|(d, _)| d != dir);
        }
    }
}
