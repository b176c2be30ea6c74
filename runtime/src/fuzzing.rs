//! Entry points of the fuzz targets (`fuzz/fuzz_targets/`, run with cargo-fuzz), compiled
//! with the `fuzzing` feature and in tests. Each takes arbitrary bytes, must never panic, and
//! returns `Err` with a description when an invariant does not hold (a target panics on it, so
//! libFuzzer reports it as a crash).
//!
//! The committed corpora (`fuzz/corpus/<target>/`), which include every input that once
//! failed, are replayed by this module's tests on every `cargo test`, with no nightly
//! toolchain: the same functions, called on every file.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::sync::Arc;

use crate::checkpoint::file::{frame, unframe};
use crate::checkpoint::state::{apply_delta, decode_batch_delta, encode_batch_delta, StateMap};
use crate::checkpoint::{BatchLog, FileStateStore, MemStorage, StateStore};
use crate::codec::{from_bytes, to_bytes, StateCodec};
use crate::record::Timestamp;
use crate::window::Window;

pub use crate::source::file::fuzz::{file_decoders, json_fast_path};

/// The checkpoint frame: [`unframe`] never panics, accepts only what [`frame`] writes (a
/// frame it accepts is re-made byte for byte from its payload), and a framed payload comes
/// back whole.
pub fn checkpoint_frame(data: &[u8]) -> Result<(), String> {
    let what = std::path::Path::new("fuzz");
    if let Ok(payload) = unframe(data, what) {
        if frame(payload) != data {
            return Err("unframe accepted bytes that frame does not write".into());
        }
    }
    match unframe(&frame(data), what) {
        Ok(payload) if payload == data => Ok(()),
        other => Err(format!("a framed payload did not come back: {other:?}")),
    }
}

/// Splits `data` after a control byte into two parts at a place the second byte picks.
fn two_parts(data: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&flags, rest) = data.split_first()?;
    let (&cut, rest) = rest.split_first()?;
    let at = (usize::from(cut) * rest.len()) / 255;
    let (a, b) = rest.split_at(at.min(rest.len()));
    Some((flags, a, b))
}

thread_local! {
    /// A directory per fuzzing thread for the files of the state store target.
    static STATE_DIR: RefCell<Option<tempfile_dir::Dir>> = const { RefCell::new(None) };
}

/// A temporary directory removed when dropped (tests and the fuzz targets only).
mod tempfile_dir {
    use std::path::PathBuf;

    pub struct Dir(pub PathBuf);

    impl Dir {
        pub fn new() -> std::io::Result<Dir> {
            // /dev/shm when there is one: the state target writes two files per input.
            let base =
                ["/dev/shm", "/tmp"].iter().map(PathBuf::from).find(|p| p.is_dir()).unwrap_or_else(std::env::temp_dir);
            let dir = base.join(format!("flowgate-fuzz-{}-{:?}", std::process::id(), std::thread::current().id()));
            std::fs::create_dir_all(&dir)?;
            Ok(Dir(dir))
        }
    }

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// Every checkpoint file reader on corrupt input: the offset and commit logs (JSON entries,
/// read through [`BatchLog`]), batch deltas ([`decode_batch_delta`], whose accepted inputs must
/// re-encode byte for byte, and each part applied), and a partition's state store reading a
/// snapshot through its memory map and a delta ([`FileStateStore`]): never a panic or a read
/// out of bounds, and a store whose files are well framed loads exactly what applying their
/// payloads in memory gives. The first byte says which files are framed (so that the payload
/// parsers are reached past the checksum) and the second where the input is split.
pub fn checkpoint_files(data: &[u8]) -> Result<(), String> {
    let Some((flags, a, b)) = two_parts(data) else { return Ok(()) };
    let framed = |bit: u8, bytes: &[u8]| if flags & bit != 0 { frame(bytes) } else { bytes.to_vec() };

    // Offsets and commits logs: JSON entries in frames.
    let storage = Arc::new(MemStorage::new());
    storage.put_raw("offsets/0", framed(1, a));
    storage.put_raw("offsets/1", framed(2, b));
    let log = BatchLog::new(storage, "offsets");
    let _ = log.get(0);
    let _ = log.latest();

    // Batch deltas.
    for part in [a, b] {
        if let Ok(deltas) = decode_batch_delta(part, "fuzz") {
            if encode_batch_delta(&deltas) != part {
                return Err("decode_batch_delta accepted bytes encode_batch_delta does not write".into());
            }
            for d in deltas.iter().flatten() {
                let _ = apply_delta(&mut StateMap::new(), d, "fuzz");
            }
        }
    }

    // A partition's store: snapshot 1 (memory-mapped) and delta 2.
    STATE_DIR.with(|cell| {
        let mut cell = cell.borrow_mut();
        if cell.is_none() {
            *cell = Some(tempfile_dir::Dir::new().map_err(|e| e.to_string())?);
        }
        let dir = &cell.as_ref().map(|d| d.0.clone()).unwrap_or_default();
        std::fs::write(dir.join("1.snapshot"), framed(4, a)).map_err(|e| e.to_string())?;
        std::fs::write(dir.join("2.delta"), framed(8, b)).map_err(|e| e.to_string())?;
        let store = FileStateStore::new(dir);
        let loaded = store.load(2);
        if flags & 12 == 12 {
            let mut expected = BTreeMap::new();
            let in_memory = apply_delta(&mut expected, a, "a").and_then(|()| apply_delta(&mut expected, b, "b"));
            match (loaded, in_memory) {
                (Ok(got), Ok(())) if got != expected => return Err("the store loaded other state".into()),
                (Ok(_), Err(e)) => return Err(format!("the store loaded state its files do not hold: {e}")),
                (Err(e), Ok(())) => return Err(format!("the store failed on well-formed files: {e}")),
                _ => {}
            }
        }
        Ok(())
    })
}

/// Checks that a `T` decoded from `data` re-encodes to bytes that decode to the same
/// encoding, and, for `canonical` types (one encoding per value), to `data` itself.
fn round_trip<T: StateCodec>(data: &[u8], canonical: bool) -> Result<(), String> {
    let Ok(value) = from_bytes::<T>(data) else { return Ok(()) };
    let encoded = to_bytes(&value);
    if canonical && encoded != data {
        return Err(format!("{} decoded and re-encoded differently", std::any::type_name::<T>()));
    }
    let again =
        from_bytes::<T>(&encoded).map_err(|e| format!("{}: re-decoding failed: {e}", std::any::type_name::<T>()))?;
    if to_bytes(&again) != encoded {
        return Err(format!("{}: a second round trip changed the encoding", std::any::type_name::<T>()));
    }
    Ok(())
}

/// The state codec's round trip through its public API ([`to_bytes`], [`from_bytes`]) for
/// keys and values of the shapes queries store: decoding arbitrary bytes never panics, and
/// what decodes re-encodes as the property above says.
pub fn state_codec(data: &[u8]) -> Result<(), String> {
    round_trip::<i64>(data, true)?;
    round_trip::<(String, i64)>(data, true)?;
    round_trip::<Option<String>>(data, true)?;
    round_trip::<(Timestamp, Option<f64>)>(data, true)?;
    round_trip::<(Window, String, Option<i64>)>(data, true)?;
    round_trip::<(bool, i32, u64)>(data, false)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use super::*;

    /// Every file of `fuzz/corpus/<target>/`.
    fn corpus(target: &str) -> Vec<PathBuf> {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus").join(target);
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.unwrap().path())
            .filter(|p| p.is_file())
            .collect();
        files.sort();
        assert!(!files.is_empty(), "{} is empty", dir.display());
        files
    }

    fn replay(target: &str, f: fn(&[u8]) -> Result<(), String>) {
        for path in corpus(target) {
            let data = std::fs::read(&path).unwrap();
            if let Err(e) = f(&data) {
                panic!("{}: {e}", path.display());
            }
        }
    }

    /// Each target run briefly in CI, without libFuzzer (whose instrumented build takes about
    /// 23 minutes here, a quarter of CI's limit): `runs` inputs made by mutating the corpus
    /// (bit flips, byte changes, inserts, deletes, truncations, splices of two files), from a
    /// fixed seed so a failure reproduces (`FLOWGATE_FUZZ_SEED` picks another). The full runs
    /// of ≥ 1 M executions with coverage feedback are `fuzz/run.sh`'s.
    fn brief(target: &str, f: fn(&[u8]) -> Result<(), String>, runs: usize) {
        let files: Vec<Vec<u8>> = corpus(target).iter().map(|p| std::fs::read(p).unwrap()).collect();
        let seed = std::env::var("FLOWGATE_FUZZ_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(0x5eed_u64);
        let mut rng = seed;
        let mut next = move || {
            rng = rng.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = rng;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            (z ^ (z >> 31)) as usize
        };
        for run in 0..runs {
            let mut data = files[next() % files.len()].clone();
            for _ in 0..1 + next() % 4 {
                let at = if data.is_empty() { 0 } else { next() % data.len() };
                match next() % 6 {
                    0 if !data.is_empty() => data[at] ^= 1 << (next() % 8),
                    1 if !data.is_empty() => data[at] = next() as u8,
                    2 => data.insert(at, next() as u8),
                    3 if !data.is_empty() => {
                        data.remove(at);
                    }
                    4 => data.truncate(at),
                    _ => {
                        let other = &files[next() % files.len()];
                        let from = if other.is_empty() { 0 } else { next() % other.len() };
                        data.truncate(at);
                        data.extend_from_slice(&other[from..]);
                    }
                }
            }
            if let Err(e) = f(&data) {
                panic!("{target}, seed {seed}, run {run}: {e}; input {data:?}");
            }
        }
    }

    #[test]
    fn every_target_runs_briefly_on_mutated_corpora() {
        // Runs per target: a few seconds each in a debug build (file_decoders decodes each
        // input nine ways, so it gets fewer).
        brief("json_fast_path", json_fast_path, 3000);
        brief("file_decoders", file_decoders, 500);
        brief("checkpoint_frame", checkpoint_frame, 5000);
        brief("checkpoint_files", checkpoint_files, 1000);
        brief("state_codec", state_codec, 5000);
    }

    #[test]
    fn the_json_fast_path_corpus_replays() {
        replay("json_fast_path", json_fast_path);
    }

    #[test]
    fn the_file_decoders_corpus_replays() {
        replay("file_decoders", file_decoders);
    }

    #[test]
    fn the_checkpoint_frame_corpus_replays() {
        replay("checkpoint_frame", checkpoint_frame);
    }

    #[test]
    fn the_checkpoint_files_corpus_replays() {
        replay("checkpoint_files", checkpoint_files);
    }

    #[test]
    fn the_state_codec_corpus_replays() {
        replay("state_codec", state_codec);
    }
}
