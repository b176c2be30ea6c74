//! Batch-indexed JSON logs (Spark's `HDFSMetadataLog`): `offsets/<batch>` written before a
//! batch runs (the write-ahead log), `commits/<batch>` after the sink has it.

use std::sync::Arc;

use serde_json::Value;

use super::file::Storage;
use crate::error::{Error, Result};

/// One log directory of JSON entries named by batch id.
#[derive(Clone)]
pub struct BatchLog {
    storage: Arc<dyn Storage>,
    dir: String,
}

impl BatchLog {
    /// The log in directory `dir` of `storage`.
    pub fn new(storage: Arc<dyn Storage>, dir: &str) -> Self {
        BatchLog { storage, dir: dir.trim_end_matches('/').to_string() }
    }

    fn rel(&self, batch: u64) -> String {
        format!("{}/{batch}", self.dir)
    }

    /// Writes the entry of `batch` (durable when this returns).
    pub fn add(&self, batch: u64, entry: &Value) -> Result<()> {
        self.storage.write(&self.rel(batch), entry.to_string().as_bytes())
    }

    /// Writes the entry of `batch` through a fsynced temporary file and a rename, without
    /// syncing the directory: the caller must make the rename durable (or keep a durable copy
    /// of the entry) itself. Falls back to [`BatchLog::add`] on storages without that split.
    pub fn add_unsynced(&self, batch: u64, entry: &Value) -> Result<()> {
        self.storage.write_unsynced(&self.rel(batch), entry.to_string().as_bytes())
    }

    /// Writes the entry of `batch` with no fsync (see [`Storage::write_lazily`]): for entries
    /// kept durably elsewhere until [`BatchLog::sync`] makes this copy durable.
    pub fn add_lazily(&self, batch: u64, entry: &Value) -> Result<()> {
        self.storage.write_lazily(&self.rel(batch), entry.to_string().as_bytes())
    }

    /// Fsyncs the file of `batch` (its data; its name is durable after the directory's fsync,
    /// [`BatchLog::sync_dir`]).
    pub fn sync(&self, batch: u64) -> Result<()> {
        self.storage.sync_checked(&self.rel(batch))
    }

    /// Fsyncs the log's directory: the entries renamed into it (or deleted) are durable.
    pub fn sync_dir(&self) -> Result<()> {
        self.storage.sync_dir_checked(&self.dir)
    }

    /// The entry of `batch`, if written.
    pub fn get(&self, batch: u64) -> Result<Option<Value>> {
        match self.storage.read(&self.rel(batch))? {
            None => Ok(None),
            Some(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| {
                Error::corrupt_file(
                    std::path::Path::new(&self.storage.describe(&self.rel(batch))),
                    format!("not valid JSON: {e}"),
                )
            }),
        }
    }

    /// Batch ids present, ascending.
    pub fn batches(&self) -> Result<Vec<u64>> {
        let mut ids: Vec<u64> = self.storage.list(&self.dir)?.iter().filter_map(|n| n.parse().ok()).collect();
        ids.sort_unstable();
        Ok(ids)
    }

    /// The latest entry.
    pub fn latest(&self) -> Result<Option<(u64, Value)>> {
        match self.batches()?.last() {
            None => Ok(None),
            Some(&b) => Ok(self.get(b)?.map(|v| (b, v))),
        }
    }

    /// Deletes entries of batches before `keep_from`.
    pub fn purge(&self, keep_from: u64) -> Result<()> {
        for b in self.batches()? {
            if b < keep_from {
                self.storage.delete(&self.rel(b))?;
            }
        }
        Ok(())
    }

    /// A file of the log for messages.
    pub fn describe(&self, batch: u64) -> String {
        self.storage.describe(&self.rel(batch))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::file::MemStorage;

    #[test]
    fn latest_get_purge() {
        let log = BatchLog::new(Arc::new(MemStorage::new()), "offsets");
        assert!(log.latest().unwrap().is_none());
        for b in 0..12 {
            log.add(b, &serde_json::json!({ "batch": b })).unwrap();
        }
        assert_eq!(log.latest().unwrap().unwrap().0, 11);
        assert_eq!(log.get(3).unwrap().unwrap()["batch"], 3);
        log.purge(10).unwrap();
        assert_eq!(log.batches().unwrap(), vec![10, 11]);
        assert!(log.get(3).unwrap().is_none());
    }
}
