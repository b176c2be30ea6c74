//! Continuous processing: the second execution mode beside the micro-batch loop
//! (`Trigger::continuous("1 second")`).
//!
//! # Execution
//!
//! The query thread becomes an epoch coordinator (`coordinator.rs`). It starts one long-running
//! task per source partition (`task.rs`: the rate source's partitions, a Kafka task per
//! topic-partition, the one partition of the memory, file and socket sources),
//! each with its own instance of the query's generated plan, reading its partition
//! ([`crate::source::continuous::PartitionReader`]) and running the plan's stage code on the
//! small vectors of rows that arrived since its last poll (everything available, at most
//! [`crate::source::continuous::MAX_VECTOR_ROWS`]: one virtual call per vector, typed loops
//! inside, never a call per row). A task with nothing to read sleeps until its next row is
//! due (the rate source tells) or its source wakes it (the memory source).
//!
//! Every epoch interval the coordinator opens the next epoch; each task passes the epoch
//! marker between two vectors (Chandy-Lamport without channels to align: a task's output and
//! its marker travel on one FIFO channel to the coordinator, so everything a task produced in
//! epoch `e` has arrived when its marker `e` does; a sink that takes rows as they come gets
//! them from the task itself, before the task passes the marker after them), reporting its
//! partition's position. When
//! every task has passed marker `e`, epoch `e` commits, in the micro-batch loop's order and
//! through the same checkpoint code (`engine/checkpoint.rs`):
//!
//! 1. `offsets/<e>`: every source's partition positions (a JSON list per source), durable
//!    before step 2 (a stateful query's stage writes the epoch's state version meanwhile, see
//!    below);
//! 2. the sink gets the epoch: `add_batch(e, rows of e)` for sinks that take whole batches
//!    (nothing reaches them before step 1), or `commit_epoch(e)` for a sink that took the
//!    rows as they came ([`crate::sink::SinkImpl::takes_rows`]); an epoch without output
//!    rows is committed without an `add_batch`;
//! 3. `commits/<e>`.
//!
//! A restart resumes after the last committed epoch. An epoch whose offsets were logged but
//! not committed is replayed first, exactly: its partitions are read from the previous
//! positions up to the logged ones (replayable sources give the same rows), and the sink gets
//! it again under the same epoch id. The rows of an epoch not logged are read again in the
//! next epoch. Stopping the query ends the epoch in progress and commits it before the tasks
//! exit, so a stop loses nothing.
//!
//! # What each sink guarantees in continuous mode
//!
//! Spark's continuous mode is at-least-once; here the sinks that are idempotent by batch id
//! are exactly-once, with an epoch as the batch:
//! - file sink: exactly-once; an epoch's files appear with its manifest entry at commit;
//! - memory sink: exactly-once; the table grows by an epoch at commit (a replayed epoch
//!   replaces its earlier delivery);
//! - `foreach_batch`: called once per epoch at commit with the epoch id; exactly-once if the
//!   function is idempotent by that id, as in micro-batch mode;
//! - console: prints each epoch at commit (`Batch: <epoch>`); a replayed epoch prints again;
//! - Kafka, transactional: exactly-once, one transaction per epoch with output (the sink's
//!   transaction id and marker are the epoch's, as a batch's); without `transactional()`,
//!   at-least-once;
//! - `foreach_rows`: rows as soon as a task produced them, given by the task's own thread (the
//!   sink's [`crate::sink::RowWriter`]; the lowest latency), at-least-once:
//!   after a failure an uncommitted epoch's rows come again under the same epoch id.
//!
//! So the latency a sink sees is the processing latency for `foreach_rows` (about a
//! millisecond, see `benches/`), and up to one epoch interval for the exactly-once sinks,
//! which publish at commit.
//!
//! # Which queries run continuously
//!
//! Every query micro-batch mode runs, over sources that have partition readers (rate, memory,
//! file, socket, Kafka; the socket source is not replayable, as in micro-batch mode; another
//! source fails the start):
//! - map-like queries ([`MapLike`]): `filter`, `select`, `map`, `with_column`, `flat_map`,
//!   `union` of streams and stream-static joins, run by every task on its vectors;
//! - stateful queries ([`Stateful`]): aggregations (update, append and complete mode, event-time
//!   and session windows, chained), `drop_duplicates`, the global `limit`,
//!   `map_groups_with_state` / `flat_map_groups_with_state` / `transform_with_state`,
//!   stream-stream joins, sorts of a complete-mode result, and a watermark on a map-like query,
//!   run by the stateful stage on each vector, with state snapshotted per epoch (below).
//!
//! The generated builder's `trigger` takes a [`Trigger::continuous`](super::Trigger::continuous)
//! when the query's [`Continuity::Mode`] [`RunsContinuously`]: the seam for an operator that
//! could not run this way, which today none is.
//!
//! # Stateful queries
//!
//! The tasks of a stateful query read in parallel (one per partition of every input, decoding
//! included) and share the one instance of the plan, the stateful stage (`stage.rs`): each task
//! runs its vectors on it as they arrive, one task at a time under its lock, and gives the rows
//! they emit to the sink at once (as Spark 4.1+'s real-time mode does in update mode). Markers
//! are aligned: a vector of epoch `e + 1` from a task that already passed marker `e` waits in
//! the stage until every task passed it and the coordinator ended epoch `e`. State is
//! snapshotted per epoch: the operators' state, partitioned by the persisted partition hash
//! into the shuffle partitions, gets the epoch's changes (merged over its vectors) as the
//! epoch's state version in the micro-batch state store, so a restart restores the state after
//! the last committed epoch and replays a logged one from the state before it. Watermarks
//! advance per epoch by the micro-batch rules: an epoch's vectors drop the rows late by the
//! previous epoch's watermark, and what a micro-batch does once per batch happens once per
//! epoch, in a run of the plan without rows at its end (`BatchContext::mid_epoch` tells the
//! vectors' runs from it): state behind the epoch's own watermark is evicted (closing windows
//! and sessions in append mode, emitting an outer join's unmatched rows), group-state timeouts
//! and `transform_with_state` timers and TTLs fire with the epoch's processing time and
//! watermark, and a complete-mode result table is emitted. The sink commits per epoch, as for
//! map-like queries.
//!
//! The output contract, per operator (see `stage.rs`):
//! - **per vector** (the rows reach `foreach_rows` about a millisecond after their source had
//!   them): an update-mode aggregation emits the groups the vector changed, with their values
//!   after it, so a group can appear more than once per epoch, its last row per epoch being
//!   the micro-batch's over the epoch's rows (a sink that keeps the latest row per key holds
//!   micro-batch's result after every epoch); a dedup and the global limit emit each row they
//!   let through once; group state calls the function once per key with rows in the vector
//!   (an update-mode function that returns its running state so gives, collapsed to the last
//!   row per key, micro-batch's epoch; one that emits per call emits per vector); a
//!   stream-stream join emits each match once, from the vector of its later side;
//! - **per epoch** (at its end): append-mode windows and sessions the epoch's watermark
//!   closes, an outer join's unmatched rows, timed-out keys and expired timers, and a
//!   complete-mode result table (sorted and cut, for a top N), each exactly as the micro-batch
//!   over the epoch's rows emits them.
//!
//! The keyed exchange is into this one stage; parallel stateful tasks, each owning a range of
//! the partition hash, are not built.
//!
//! Progress: one [`super::QueryProgress`] per committed epoch (`batch_id` is the epoch), with
//! [`EpochProgress`] (rows per task, the latency from a row's availability to the end of its
//! vector's processing, and how far the tasks are behind their sources).

pub(crate) mod coordinator;
mod stage;
mod task;

use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration as StdDuration;

use crate::Duration;

/// The trigger of a continuous query: the epoch (checkpoint) interval, or a manual
/// [`EpochTicker`]. Made by [`Trigger::continuous`](super::Trigger::continuous).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContinuousTrigger {
    interval: std::result::Result<Duration, String>,
    ticker: Option<EpochTicker>,
    busy_wait: StdDuration,
}

impl ContinuousTrigger {
    pub(crate) fn parse(interval: &str) -> Self {
        let interval = match Duration::parse(interval) {
            Ok(d) if d.micros() <= 0 => {
                Err(format!("the continuous trigger's interval \"{interval}\" is not positive"))
            }
            Ok(d) => Ok(d),
            Err(e) => Err(e.to_string()),
        };
        ContinuousTrigger { interval, ticker: None, busy_wait: StdDuration::ZERO }
    }

    /// Epochs end only when `ticker` says so, never by the clock (tests that need a given
    /// order of epoch commits).
    pub fn with_ticker(mut self, ticker: &EpochTicker) -> Self {
        self.ticker = Some(ticker.clone());
        self
    }

    /// A task whose source says its next row is due within `wait` spins until then instead of
    /// sleeping (Aeron's busy-spin idle strategy, bounded): it saves the wake-up, whose delay
    /// is the scheduler's (the timer's expiry, then the wait for a core), at the cost of a core
    /// kept busy for up to `wait` per poll. Default: none, every wait sleeps; worth it only with
    /// a core per task to spare (see `benches/README.md`, "Latency").
    pub fn with_busy_wait(mut self, wait: StdDuration) -> Self {
        self.busy_wait = wait;
        self
    }

    pub(crate) fn busy_wait(&self) -> StdDuration {
        self.busy_wait
    }

    /// The epoch interval, or why it did not parse.
    pub fn interval(&self) -> std::result::Result<Duration, String> {
        self.interval.clone()
    }

    pub(crate) fn ticker(&self) -> Option<&EpochTicker> {
        self.ticker.as_ref()
    }
}

/// A manual epoch clock for tests: a continuous query whose trigger has a ticker
/// ([`ContinuousTrigger::with_ticker`]) ends an epoch only when [`EpochTicker::end_epoch`]
/// asks (or when it stops). `StreamingQuery::process_all_available` waits for epochs to
/// commit, so under a ticker it returns only as the test ends epochs.
#[derive(Clone, Default)]
pub struct EpochTicker {
    inner: Arc<TickerInner>,
}

#[derive(Default)]
struct TickerInner {
    state: Mutex<TickState>,
    changed: Condvar,
}

#[derive(Default)]
struct TickState {
    /// Epoch ends asked for so far.
    requested: u64,
    /// Per request served, in order: the epoch it committed.
    served: Vec<u64>,
    /// The query stopped: no request will be served any more.
    closed: bool,
}

impl std::fmt::Debug for EpochTicker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "EpochTicker")
    }
}

impl PartialEq for EpochTicker {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }
}

impl Eq for EpochTicker {}

impl EpochTicker {
    /// A ticker that has asked for nothing yet.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, TickState> {
        // Plain counters: a poisoned lock still holds consistent data.
        self.inner.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Ends the epoch in progress and waits until the query committed it (at most
    /// `timeout`): the epoch's id, or `None` if the query stopped or the time ran out first.
    /// Every task has passed the epoch's marker by then, so the epoch holds every row its
    /// tasks had read when they saw the marker.
    pub fn end_epoch(&self, timeout: StdDuration) -> Option<u64> {
        let deadline = std::time::Instant::now() + timeout;
        let mut st = self.lock();
        st.requested += 1;
        let mine = st.requested as usize;
        loop {
            if let Some(&e) = st.served.get(mine - 1) {
                return Some(e);
            }
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if st.closed || left.is_zero() {
                return None;
            }
            st = self.inner.changed.wait_timeout(st, left).map(|(g, _)| g).unwrap_or_else(|e| e.into_inner().0);
        }
    }

    /// Requests not served yet (the coordinator's side).
    pub(crate) fn pending(&self) -> u64 {
        let st = self.lock();
        st.requested - st.served.len() as u64
    }

    /// The coordinator committed `epoch` for the oldest pending request.
    pub(crate) fn served(&self, epoch: u64) {
        self.lock().served.push(epoch);
        self.inner.changed.notify_all();
    }

    pub(crate) fn close(&self) {
        self.lock().closed = true;
        self.inner.changed.notify_all();
    }
}

/// What a continuous query reports per epoch, beside the usual progress fields.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct EpochProgress {
    /// Number of tasks (source partitions).
    pub tasks: usize,
    /// Input rows per task in this epoch, in task order.
    pub rows_per_task: Vec<u64>,
    /// Over the epoch's vectors whose source knew when their first row became available: the
    /// largest time from that moment to the end of the vector's processing (microseconds).
    pub max_latency_micros: Option<u64>,
    /// The same, averaged over those vectors (microseconds).
    pub mean_latency_micros: Option<u64>,
    /// When each task passed the marker: the largest time by which its next row was overdue
    /// (microseconds; 0 when every task was caught up), for sources that know.
    pub max_lag_micros: Option<u64>,
}

/// The eligibility of a query for continuous mode, as the compiler found it: every generated
/// builder implements this, with `Mode` [`MapLike`] or [`Stateful`].
pub trait Continuity {
    /// [`MapLike`] or [`Stateful`] (a type that does not implement [`RunsContinuously`] would
    /// name what stands in the way).
    type Mode;
}

/// Implemented for the [`Continuity::Mode`]s that run continuously.
#[diagnostic::on_unimplemented(
    message = "this query cannot run in continuous mode: `{Self}` does not run continuously",
    label = "a continuous trigger needs a query continuous mode can run",
    note = "use `Trigger::default()` or `Trigger::processing_time(..)` for this query"
)]
pub trait RunsContinuously {}

/// A query of map-like operators only: every task runs it on its vectors.
pub struct MapLike;

impl RunsContinuously for MapLike {}

/// A query with stateful operators or a watermark: the tasks read and run each vector on the
/// stateful stage they share as it arrives, its state snapshotted per epoch and what a
/// micro-batch does once per batch done at each epoch's end (see the module docs).
pub struct Stateful;

impl RunsContinuously for Stateful {}

/// What a generated builder's `trigger` accepts: any [`super::Trigger`], and a
/// [`ContinuousTrigger`] when the query [`RunsContinuously`].
pub trait TriggerFor<B> {
    /// As the engine's trigger.
    fn into_trigger(self) -> super::Trigger;
}

impl<B> TriggerFor<B> for super::Trigger {
    fn into_trigger(self) -> super::Trigger {
        self
    }
}

impl<B> TriggerFor<B> for ContinuousTrigger
where
    B: Continuity,
    B::Mode: RunsContinuously,
{
    fn into_trigger(self) -> super::Trigger {
        super::Trigger::Continuous(self)
    }
}
