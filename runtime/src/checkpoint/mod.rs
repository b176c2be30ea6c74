//! Checkpoints: what a query needs to restart exactly where it stopped.
//!
//! Layout of a checkpoint directory (after Spark's):
//!
//! ```text
//! metadata                 the query's identity and fixed settings (JSON)
//! offsets/<batch>          durable before the sink gets batch <batch>: each source's offset
//!                          range end, the watermarks the batch runs with, and the sources'
//!                          log entries of the batch (`sourceLogs`)
//! commits/<batch>          written after the sink has the batch: the next batch's watermark
//! sources/<i>/<batch>      per-source log (the file source's files of the batch), kept whole
//! state/deltas/<v>         state version <v>: every operator partition's delta in one file
//! state/<op>/<part>/<v>.snapshot   full state per operator and shuffle partition, every 10
//! state/<op>/<part>/<v>.delta      per-partition deltas of checkpoints written before
//!                                  `state/deltas` (still read)
//! ```
//!
//! What is written when, and why each ordering is crash-safe: `engine/checkpoint.rs`.
//!
//! Every file is written atomically and checksummed (`file.rs`); a torn or corrupt file is an
//! error naming it, never silently used. Every write, fsync, rename, directory fsync and delete
//! of a checkpoint (logs, state deltas and snapshots) and of the file sink goes through the
//! [`Storage`] trait: files (`FsStorage`), memory (`MemStorage`) or the simulated disk of the
//! crash tests (`sim.rs`).

pub(crate) mod crash;
pub mod file;
pub mod log;
pub mod sim;
pub mod state;

pub use file::{FsStorage, MemStorage, Storage};
pub use log::BatchLog;
pub use state::{FileStateStore, MemStateStore, StateStore};
