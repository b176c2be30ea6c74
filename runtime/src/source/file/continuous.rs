//! The file source in continuous mode: one partition (the directory), read by one task that
//! takes new files as they appear.
//!
//! The task lists the directory at most every [`LISTING_INTERVAL`] while it has read every file
//! it knows, appends new files to the source's log in the micro-batch order (modification time,
//! then name) and reads them one per poll, whole: a file's rows are one vector, never split
//! across epochs. The partition's position is `{"logOffset": n}`, the first `n` files of the
//! log, as a micro-batch offset; each epoch's files go to the offset log's source entry
//! (`{"files": [...]}`, as a micro-batch's), so a restart rebuilds the log from the
//! checkpoint and a replayed epoch reads exactly its files again.
//!
//! Spark has no continuous file source; its micro-batch one lists once per trigger.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use arrow_array::RecordBatch;
use serde_json::Value;

use super::{log_offset, parse_offset, FileSource, Layout};
use crate::error::{Error, Result};
use crate::source::continuous::PartitionReader;
use crate::source::Offset;

/// How often a task that has read every file it knows lists the directory again: a file's rows
/// reach the query within about this long of its appearing. The micro-batch loop's idle poll
/// (Spark's `spark.sql.streaming.pollingDelay`, 10 ms): a listing reads every entry of the
/// directory, so listing at the task's 1 ms poll would spend a core on a large directory.
pub(super) const LISTING_INTERVAL: Duration = crate::engine::POLL_INTERVAL;

/// The log shared between the task (which extends it) and the source on the query thread
/// (which logs each epoch's files from it).
type SharedLog = Arc<Mutex<Vec<PathBuf>>>;

fn lock(log: &SharedLog) -> MutexGuard<'_, Vec<PathBuf>> {
    // Only pushes: a poisoned lock still holds a consistent prefix.
    log.lock().unwrap_or_else(|e| e.into_inner())
}

/// The one partition of `src`, from `start` (the logged positions; `None` on a first run).
pub(super) fn readers(src: &mut FileSource, start: Option<&[Value]>) -> Result<Vec<Box<dyn PartitionReader>>> {
    src.layout()?;
    let read = match start {
        None => 0,
        Some([p]) => position(p)?,
        Some(other) => {
            return Err(Error::Checkpoint(format!(
                "file source on {}: the checkpoint has {} partitions, the source has one",
                src.opts.dir.display(),
                other.len()
            )))
        }
    };
    // After a restart the log holds the files of every logged epoch (`restore_log`); files
    // beyond it are listed again in the micro-batch order.
    src.ensure_log_len(read)?;
    let log: SharedLog = Arc::new(Mutex::new(src.log.clone()));
    src.continuous_log = Some(log.clone());
    let inner = FileSource {
        opts: src.opts.clone(),
        layout: Layout::new(&src.opts, src.projection.as_deref()),
        log: src.log.clone(),
        sizes: src.sizes.clone(),
        seen: src.seen.clone(),
        snapshot: None,
        malformed_rows: src.malformed_rows.clone(),
        projection: src.projection.clone(),
        continuous_log: None,
    };
    Ok(vec![Box::new(FilePartition { inner, read, end: None, listed: None, looked: true, shared: log })])
}

/// The files of an epoch `(start, end]` (continuous offsets: a list of one position).
pub(super) fn batch_log(log: &SharedLog, start: Option<&Offset>, end: &Offset) -> Result<Option<Value>> {
    let at = |o: Option<&Offset>| -> Result<usize> {
        match o.map(|o| &o.0) {
            None => Ok(0),
            Some(Value::Array(list)) if list.len() == 1 => position(&list[0]),
            Some(other) => Err(Error::Checkpoint(format!(
                "file source: the continuous offset {other} is not a list of one position"
            ))),
        }
    };
    let (start, end) = (at(start)?, at(Some(end))?);
    let log = lock(log);
    let files = log.get(start..end).ok_or_else(|| {
        Error::Internal(format!("file source: epoch ({start}, {end}] is beyond the {} files taken", log.len()))
    })?;
    let files: Vec<String> = files.iter().map(|p| p.to_string_lossy().into_owned()).collect();
    Ok(Some(serde_json::json!({ "files": files })))
}

/// A partition position: `{"logOffset": n}`.
fn position(p: &Value) -> Result<usize> {
    parse_offset(Some(&Offset(p.clone())))
}

/// The reading side: a file source of its own (same options, projection and log), one file per
/// poll.
struct FilePartition {
    inner: FileSource,
    /// Files of the log read so far (the position).
    read: usize,
    /// Never read past this many files (a replayed epoch).
    end: Option<usize>,
    /// When the directory was last listed.
    listed: Option<Instant>,
    /// Whether the last poll listed the directory (or had files to read).
    looked: bool,
    shared: SharedLog,
}

impl FilePartition {
    /// Lists the directory if it is time, appending new files to both logs.
    fn list(&mut self) -> Result<()> {
        self.looked = self.listed.is_none_or(|at| at.elapsed() >= LISTING_INTERVAL);
        if !self.looked {
            return Ok(());
        }
        self.listed = Some(Instant::now());
        let new = self.inner.list_new_files()?;
        if new.is_empty() {
            return Ok(());
        }
        let mut shared = lock(&self.shared);
        for (path, size) in new {
            shared.push(path.clone());
            self.inner.push(path, Some(size));
        }
        Ok(())
    }
}

impl PartitionReader for FilePartition {
    fn poll(&mut self, _max_rows: usize) -> Result<Option<RecordBatch>> {
        self.looked = true;
        if self.end.is_some_and(|e| self.read >= e) {
            return Ok(None);
        }
        if self.read >= self.inner.log.len() {
            self.list()?;
            if self.read >= self.inner.log.len() {
                return Ok(None);
            }
        }
        let path = self.inner.log[self.read].clone();
        let batches = self.inner.read_file(&path)?;
        self.read += 1;
        let schema = match batches.first() {
            Some(b) => b.schema(),
            None => self.inner.layout()?.output_schema.clone(),
        };
        let batch = match batches.len() {
            0 => RecordBatch::new_empty(schema),
            1 => batches.into_iter().next().unwrap_or_else(|| RecordBatch::new_empty(schema)),
            _ => arrow_select::concat::concat_batches(&schema, &batches)?,
        };
        Ok(Some(batch))
    }

    fn position(&self) -> Value {
        log_offset(self.read).0
    }

    fn next_due(&self) -> Option<Instant> {
        None
    }

    fn looked(&self) -> bool {
        self.looked
    }

    fn set_end(&mut self, end: &Value) -> Result<()> {
        let end = position(end)?;
        // The epoch's files are in the restored log; if the log is shorter, the listing order
        // gives them (as a micro-batch replay does).
        self.inner.ensure_log_len(end)?;
        {
            let mut shared = lock(&self.shared);
            let have = shared.len();
            shared.extend(self.inner.log.iter().skip(have).cloned());
        }
        self.end = Some(end);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow_array::cast::AsArray;
    use arrow_array::types::Int64Type;
    use arrow_schema::{DataType, Field, Schema};

    use super::*;
    use crate::source::file::FileOptions;
    use crate::source::SourceImpl;

    fn source(dir: &std::path::Path) -> FileSource {
        let schema = Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, false)]));
        FileSource::new(FileOptions::new(dir.to_path_buf(), schema))
    }

    fn write(dir: &std::path::Path, name: &str, ids: &[i64], secs: u64) {
        let text: String = ids.iter().map(|i| format!("{{\"id\": {i}}}\n")).collect();
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        let t = std::time::SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000 + secs);
        std::fs::File::options().write(true).open(&path).unwrap().set_modified(t).unwrap();
    }

    fn ids(b: &RecordBatch) -> Vec<i64> {
        b.column(0).as_primitive::<Int64Type>().values().to_vec()
    }

    /// Polls until a file arrives (the listing waits its interval).
    fn next(r: &mut dyn PartitionReader) -> Option<RecordBatch> {
        for _ in 0..200 {
            if let Some(b) = r.poll(8192).unwrap() {
                return Some(b);
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        None
    }

    #[test]
    fn files_are_taken_as_they_appear_one_per_poll_and_logged_per_epoch() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "a.json", &[1, 2], 1);
        let mut src = source(dir.path());
        let mut r = readers(&mut src, None).unwrap().pop().unwrap();
        assert_eq!(ids(&next(r.as_mut()).unwrap()), [1, 2]);
        assert_eq!(r.position(), serde_json::json!({"logOffset": 1}));
        assert!(r.poll(8192).unwrap().is_none());
        write(dir.path(), "b.json", &[3], 2);
        write(dir.path(), "c.json", &[4, 5, 6], 3);
        assert_eq!(ids(&next(r.as_mut()).unwrap()), [3]);
        assert_eq!(ids(&next(r.as_mut()).unwrap()), [4, 5, 6]);
        // The epoch (1, 3] logged on the query thread names exactly its files.
        let (s, e) = (Offset(serde_json::json!([{"logOffset": 1}])), Offset(serde_json::json!([{"logOffset": 3}])));
        let entry = src.batch_log(Some(&s), &e).unwrap().unwrap();
        let names: Vec<String> = entry["files"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| std::path::Path::new(f.as_str().unwrap()).file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["b.json", "c.json"]);
    }

    #[test]
    fn a_restart_replays_an_epoch_from_its_log_and_goes_on_after_it() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "a.json", &[1], 1);
        write(dir.path(), "b.json", &[2], 2);
        write(dir.path(), "c.json", &[3], 3);
        // A restarted source: epoch 0 took a.json (committed), epoch 1 took b.json (logged).
        let mut src = source(dir.path());
        let a = dir.path().join("a.json").to_string_lossy().into_owned();
        let b = dir.path().join("b.json").to_string_lossy().into_owned();
        src.restore_log(vec![serde_json::json!({"files": [a]}), serde_json::json!({"files": [b]})]).unwrap();
        let start = [serde_json::json!({"logOffset": 1})];
        let mut replay = readers(&mut src, Some(&start)).unwrap().pop().unwrap();
        replay.set_end(&serde_json::json!({"logOffset": 2})).unwrap();
        assert_eq!(ids(&replay.poll(8192).unwrap().unwrap()), [2]);
        assert!(replay.poll(8192).unwrap().is_none(), "a replay never reads past its end");
        assert_eq!(replay.position(), serde_json::json!({"logOffset": 2}));
        let start = [serde_json::json!({"logOffset": 2})];
        let mut run = readers(&mut src, Some(&start)).unwrap().pop().unwrap();
        assert_eq!(ids(&next(run.as_mut()).unwrap()), [3]);
        assert!(run.poll(8192).unwrap().is_none());
    }

    #[test]
    fn a_checkpoint_of_two_partitions_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut src = source(dir.path());
        let start = [serde_json::json!({"logOffset": 0}), serde_json::json!({"logOffset": 0})];
        let err = readers(&mut src, Some(&start)).err().unwrap().to_string();
        assert!(err.contains("2 partitions, the source has one"), "{err}");
    }
}
