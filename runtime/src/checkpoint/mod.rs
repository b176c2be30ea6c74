//! Checkpoints: what a query needs to restart exactly where it stopped.
//!
//! Layout of a checkpoint directory (after Spark's):
//!
//! ```text
//! metadata                 the query's identity and fixed settings (JSON)
//! offsets/<batch>          written before batch <batch> runs: each source's offset range end,
//!                          the watermarks the batch runs with
//! commits/<batch>          written after the sink has the batch: the next batch's watermark
//! sources/<i>/<batch>      per-source log (the file source's files of the batch)
//! state/<op>/<part>/<v>.delta|.snapshot   versioned state per operator and shuffle partition
//! ```
//!
//! Every file is written atomically and checksummed (`file.rs`); a torn or corrupt file is an
//! error naming it, never silently used.

pub mod file;
pub mod log;
pub mod state;

pub use file::{FsStorage, MemStorage, Storage};
pub use log::BatchLog;
pub use state::{FileStateStore, MemStateStore, StateStore};
