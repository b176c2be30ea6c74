//! The stateful stage of a continuous query: the one instance of the plan that owns the
//! query's state, run on each vector of rows as it arrives, with the state snapshotted and the
//! watermarks advanced at epoch boundaries.
//!
//! The tasks of a stateful query share the stage ([`StageCell`], behind a lock): a task that
//! read a vector of the epoch the stage is in (`e`) runs it on the stage itself, one task at a
//! time, and gives the rows that produced to the sink right away (to its row writer, for a sink
//! that takes rows as they come; Spark 4.1+'s real-time mode emits update-mode rows per batch
//! of records the same way), so a vector reaches the sink without a hand-off to another thread.
//! A vector of a later epoch, from a task that already passed marker `e`, waits in the stage
//! until every task's marker `e` reached the coordinator (Flink's aligned barriers: nothing of
//! `e + 1` reaches the state before `e`'s snapshot). Then the coordinator ends epoch `e`
//! ([`StageCell::end_epoch`]), and the waiting vectors of `e + 1` run, in the order they
//! arrived. A task runs a vector before it passes the marker after it, so epoch `e` ends after
//! all its vectors ran.
//!
//! # The epoch as a micro-batch
//!
//! Every vector of epoch `e` runs with the batch id `e`, the epoch's processing time, the
//! watermark for late rows the epoch would have as a micro-batch (late rows are dropped by the
//! previous epoch's watermark, as Spark's `eventTimeWatermarkForLateEvents`) and its eviction
//! watermark, marked [`BatchContext::mid_epoch`]. What a micro-batch does once per batch, after
//! its rows, waits for the epoch's end: [`Stage::end_epoch`] runs the plan once more, without
//! rows and not mid-epoch (Spark's no-data batch, here after every epoch that had rows, owes an
//! eviction or has a processing-time timeout due; in complete mode after every epoch whose
//! sources moved, as micro-batch runs a batch then), and only that run
//! - evicts by the eviction watermark (a vector's run evicts by the late one, behind which the
//!   previous epoch's end evicted already): it closes the append-mode windows and sessions the
//!   watermark passed, drops the state behind it and emits an outer join's unmatched rows;
//! - fires group-state timeouts and `transform_with_state` timers and TTL expiries, with the
//!   epoch's processing time and watermark;
//! - emits a result table that is emitted whole (complete mode, sorted and cut for a top N;
//!   sessions outside append mode).
//!
//! Doing any of these per vector would be wrong: a window or a dedup key that the watermark
//! passed in this epoch, seen again in a later vector of the same epoch, would start again from
//! nothing, where a micro-batch over the epoch's rows aggregates (or drops as a duplicate) both
//! before it evicts; a key whose timeout is due, with rows in a later vector, would time out
//! first where a micro-batch calls it with its rows; a complete-mode table would be written
//! once per vector. Epoch 0 applies a group state's initial state in its first run only.
//!
//! The plan's operators partition their state by the persisted partition hash (`partition.rs`)
//! into the query's shuffle partitions, as in micro-batch mode. With a checkpoint, the changes
//! of each run are taken after it and merged per key (the last change wins), so the epoch's
//! state version is the state after the epoch, exactly what a micro-batch over the same rows
//! would have written; watermarks advance per epoch by the micro-batch rules.
//!
//! # The output contract
//!
//! Per vector (each vector's rows reach a `foreach_rows` sink as the vector runs):
//! - **Update-mode aggregation:** each vector emits the groups it changed, with their values
//!   after it. A group changed by several vectors of an epoch is emitted once per vector, so it
//!   may appear more than once per epoch; its **last** row in the epoch is the row a micro-batch
//!   over the epoch's rows emits for it, and the groups of the epoch are the micro-batch's. A
//!   sink that keeps the latest row per key (a key-value store, a compacted topic, the
//!   benchmark's counter) therefore holds micro-batch's result after every epoch, and
//!   collapsing an epoch's rows to the last per key gives micro-batch's batch.
//! - **Deduplication and the global limit:** each row is emitted once, by the vector that
//!   brought it: an epoch's rows are micro-batch's over the same rows in the same order.
//! - **Group state** (`map_groups_with_state`, `flat_map_groups_with_state`,
//!   `transform_with_state`): the function is called once per key with rows in the vector, with
//!   that vector's rows (a micro-batch calls it once per key with all of the batch's): a
//!   function whose output is its running state gives, collapsed to the last row per key,
//!   micro-batch's epoch; one whose output depends on how rows are split into calls gives
//!   what that split gives, as it would over other micro-batches.
//! - **Stream-stream joins:** each match is emitted once, by the vector of whichever side came
//!   later (its input's task runs it on the stage).
//!
//! Per epoch (by its last run):
//! - **Append-mode windows and sessions** the epoch's watermark closes, **outer joins'**
//!   unmatched rows, **timed-out keys** and **expired timers**, and **complete mode's** result
//!   table: exactly the rows the micro-batch over the epoch's rows emits for them.
//!
//! And:
//! - **Exactly-once sinks** get all rows of the epoch at its commit, in the order the runs
//!   produced them, so a file sink's epoch holds the repeated groups too; `foreach_rows` gets
//!   each run's rows as they are produced, before the epoch commits.
//! - Float sums and moments (`avg`, `stddev`) fold their values in another grouping than one
//!   micro-batch would, so they can differ from micro-batch's in the last bits.
//!
//! # Order and replays
//!
//! A single task (the file, memory and socket sources' one partition) feeds its vectors in its
//! partition's order, so an epoch runs exactly as a micro-batch over its rows. With several
//! tasks, vectors run in the order they reach the coordinator. A replayed epoch (logged, not
//! committed) runs as one micro-batch over the epoch's rows in task order from the state before
//! it, so it emits each changed group once. Its state equals the first run's for every
//! aggregate but the order-dependent ones (`first`, `last`, which of two rows with one key from
//! two partitions a dedup keeps, the last bits of float sums): for those, over several
//! partitions, the replay may choose differently than the first run did (the sinks that got the
//! first run's epoch before the crash keep it; the state goes on from the replay's choice).

use std::sync::Arc;

use arrow_array::RecordBatch;
use hashbrown::HashMap;

use crate::engine::checkpoint::QueryCheckpoint;
use crate::engine::{BatchContext, Plan, PlanExt};
use crate::error::Result;
use crate::ops::{PartitionChanges, StateOperatorProgress};
use crate::sink::RowWriter;
use crate::OutputMode;

/// Per operator, per partition: the changes of one epoch.
type EpochChanges = Vec<Vec<PartitionChanges>>;

/// One partition's changes in an epoch so far: by encoded key, the new encoded value or
/// `None` for a removal (the last change of a key wins).
type PartitionDelta = HashMap<Vec<u8>, Option<Vec<u8>>>;

pub(super) struct Stage {
    plan: Box<dyn Plan>,
    output_mode: OutputMode,
    /// Whether the plan has event-time watermarks.
    has_watermark: bool,
    /// The (late, eviction) watermarks of the epoch running, in microseconds (Spark starts
    /// both at 0).
    late: i64,
    eviction: i64,
    /// The epoch running and its processing time (ms since the epoch).
    epoch: u64,
    timestamp_ms: i64,
    /// Whether a vector of the epoch ran.
    ran: bool,
    /// Whether the epoch's sources gave a vector, with rows or without (an empty file): as a
    /// micro-batch runs when its offsets moved, a complete-mode epoch then emits its table.
    moved: bool,
    /// Whether operators record changes (a checkpoint with state).
    tracking: bool,
    /// The epoch's changes so far, per operator and partition.
    delta: Vec<Vec<PartitionDelta>>,
    /// The operators' metrics over the epoch's runs.
    metrics: Vec<StateOperatorProgress>,
}

/// What ending an epoch gave.
pub(super) struct EpochEnd {
    /// Rows the end of the epoch emitted (its eviction run's; none in update mode).
    pub rows: Vec<RecordBatch>,
    /// The state changes to commit as the epoch's version (with a checkpoint).
    pub changes: Option<EpochChanges>,
    /// The watermark the next epoch evicts with (`None` without a watermark).
    pub next_watermark: Option<i64>,
}

impl Stage {
    /// The stage for `plan`, if it needs one: stateful operators or a watermark.
    pub(super) fn for_plan(plan: Box<dyn Plan>, output_mode: OutputMode) -> Option<Stage> {
        let has_watermark = !plan.watermarks().is_empty();
        let stateful = !plan.state_schema().is_empty();
        (stateful || has_watermark).then_some(Stage {
            plan,
            output_mode,
            has_watermark,
            late: 0,
            eviction: 0,
            epoch: 0,
            timestamp_ms: 0,
            ran: false,
            moved: false,
            tracking: false,
            delta: Vec::new(),
            metrics: Vec::new(),
        })
    }

    /// Restores the state and watermarks after the last committed epoch (`resume` from the
    /// checkpoint), and records changes from now on when the checkpoint keeps state.
    pub(super) fn restore(
        &mut self,
        cp: &QueryCheckpoint,
        state_version: u64,
        watermarks: Option<(i64, i64)>,
    ) -> Result<()> {
        self.tracking = cp.has_state();
        self.plan.set_tracking(self.tracking);
        if state_version > 0 {
            let state = cp.load_state(state_version)?;
            self.plan.restore(state).map_err(|e| e.context(format!("restoring state from {}", cp.describe())))?;
        }
        if let Some((late, eviction)) = watermarks {
            self.late = late;
            self.eviction = eviction;
        }
        Ok(())
    }

    /// Starts epoch `epoch`, whose processing time is `timestamp_ms` (logged with its offsets).
    pub(super) fn begin_epoch(&mut self, epoch: u64, timestamp_ms: i64) {
        self.epoch = epoch;
        self.timestamp_ms = timestamp_ms;
        self.ran = false;
        self.moved = false;
        self.delta.clear();
        self.metrics.clear();
    }

    /// The epoch running.
    pub(super) fn epoch(&self) -> u64 {
        self.epoch
    }

    /// The running epoch's processing time, to log with its offsets.
    pub(super) fn timestamp_ms(&self) -> i64 {
        self.timestamp_ms
    }

    /// The watermarks the running epoch runs with, to log with its offsets.
    pub(super) fn watermarks(&self) -> Option<(i64, i64)> {
        self.has_watermark.then_some((self.late, self.eviction))
    }

    /// Whether the running epoch evicts at its end (its watermark moved past the late one): an
    /// epoch before it is not idle yet, as a micro-batch run is not while it owes a no-data
    /// batch.
    pub(super) fn owes_eviction(&self) -> bool {
        self.has_watermark && self.eviction > self.late
    }

    /// The operators' progress over the last epoch's runs (counts summed over its vectors).
    pub(super) fn state_operators(&self) -> Vec<StateOperatorProgress> {
        // Spark's order, the operator nearest the output first (as `PlanExt::state_operators`).
        self.metrics.iter().rev().cloned().collect()
    }

    /// The context of a run of the epoch: a vector's (`mid_epoch`: it evicts by the late
    /// watermark, fires no timeouts or timers and emits no whole result table) or the epoch's
    /// end.
    fn context(&self, mid_epoch: bool) -> BatchContext {
        BatchContext {
            batch_id: self.epoch,
            output_mode: self.output_mode,
            watermark_for_late: self.has_watermark.then_some(self.late),
            watermark_for_eviction: self.has_watermark.then_some(self.eviction),
            batch_timestamp_ms: self.timestamp_ms,
            mid_epoch,
        }
    }

    /// Whether a group-state timeout or a processing-time timer is due at the running epoch's
    /// processing time (as the micro-batch loop asks before a batch without new data).
    fn timeout_due(&self) -> bool {
        let mut due = false;
        self.plan.operators().each(&mut |op| {
            due |= op.next_processing_timeout_ms().is_some_and(|t| t < self.timestamp_ms);
        });
        due
    }

    /// Whether the running epoch ends with a run without rows (see the module docs): in
    /// complete mode when a vector ran (the epoch's result table; never for the watermark
    /// alone, as micro-batch runs no batch without new data in complete mode), else when a
    /// vector ran (its timeouts and timers), the watermark owes an eviction or a timeout is due.
    fn ends_with_a_run(&self) -> bool {
        match self.output_mode {
            OutputMode::Complete => self.ran || self.moved,
            _ => self.ran || self.owes_eviction() || self.timeout_due(),
        }
    }

    /// Runs the plan on one vector of the running epoch (`inputs`: per declared input, the
    /// statics' rows in place) and returns the rows it emitted. Eviction, timeouts and a whole
    /// result table wait for the epoch's end (see the module docs).
    pub(super) fn run_vector(&mut self, inputs: &[Vec<RecordBatch>]) -> Result<Vec<RecordBatch>> {
        self.moved = true;
        let ctx = self.context(true);
        let rows = self.plan.run_batch(&ctx, inputs).map_err(|e| e.context(format!("running epoch {}", self.epoch)))?;
        self.after_run();
        Ok(rows)
    }

    /// After a run: its changes into the epoch's, its metrics into the epoch's.
    fn after_run(&mut self) {
        self.ran = true;
        if self.tracking {
            let changes = self.plan.take_changes();
            if self.delta.is_empty() {
                self.delta = changes.iter().map(|op| op.iter().map(|_| HashMap::new()).collect()).collect();
            }
            for (op, parts) in self.delta.iter_mut().zip(changes) {
                for (part, changes) in op.iter_mut().zip(parts) {
                    // A later change of a key replaces the earlier.
                    part.extend(changes);
                }
            }
        }
        let now = PlanExt::state_operators(self.plan.as_ref());
        if self.metrics.is_empty() {
            // `PlanExt::state_operators` lists the last operator first; keep id order here.
            self.metrics = now.into_iter().rev().collect();
            return;
        }
        for (sum, m) in self.metrics.iter_mut().zip(now.into_iter().rev()) {
            sum.num_rows_updated += m.num_rows_updated;
            sum.num_rows_removed += m.num_rows_removed;
            sum.num_rows_dropped_by_watermark += m.num_rows_dropped_by_watermark;
            sum.num_rows_total = m.num_rows_total;
            sum.memory_used_bytes = m.memory_used_bytes;
            sum.custom_metrics = m.custom_metrics;
        }
    }

    /// Ends the running epoch: one run without rows (`empty` the inputs of one: statics in
    /// place, streams empty) when it [ends with one](Stage::ends_with_a_run), which evicts
    /// what the epoch's watermark passed, fires the timeouts and timers due and emits the
    /// complete-mode result table; then takes its state changes and advances the watermarks.
    /// The rest of the epoch's output was returned by its vectors' runs already.
    pub(super) fn end_epoch(&mut self, empty: &[Vec<RecordBatch>]) -> Result<EpochEnd> {
        let mut rows = Vec::new();
        if self.ends_with_a_run() {
            let ctx = self.context(false);
            rows = self.plan.run_batch(&ctx, empty).map_err(|e| e.context(format!("ending epoch {}", self.epoch)))?;
            self.after_run();
        }
        let changes = self.tracking.then(|| match self.ran {
            true => std::mem::take(&mut self.delta)
                .into_iter()
                .map(|op| op.into_iter().map(|part| part.into_iter().collect()).collect())
                .collect(),
            // Nothing ran, but the epoch still gets its state version (a restart loads the
            // version after the last committed epoch, whichever that is); the operators'
            // changes since their last run are none new, or the last run's again.
            false => self.plan.take_changes(),
        });
        if !self.ran {
            // The state's size as it is; nothing updated, removed or dropped in this epoch.
            self.metrics = PlanExt::state_operators(self.plan.as_ref())
                .into_iter()
                .rev()
                .map(|m| StateOperatorProgress {
                    num_rows_updated: 0,
                    num_rows_removed: 0,
                    num_rows_dropped_by_watermark: 0,
                    ..m
                })
                .collect();
        }
        let next_watermark = self.has_watermark.then(|| {
            // The watermark never moves back.
            let next = self.plan.watermarks().candidate().map_or(self.eviction, |c| c.max(self.eviction));
            self.late = self.eviction;
            self.eviction = next;
            next
        });
        Ok(EpochEnd { rows, changes, next_watermark })
    }
}

/// The stage as the tasks of a stateful query share it with the coordinator: each task runs
/// its vectors on it itself, one task at a time under its lock, so a vector's rows reach the
/// sink without a hand-off to another thread; the coordinator ends its epochs.
pub(super) struct StageCell {
    stage: Stage,
    /// Vectors of epochs after the stage's, in arrival order: they run when their epoch
    /// begins (aligned markers).
    waiting: Vec<Waiting>,
    /// The stage's epoch's output, for a sink without a row writer (kept for the commit).
    rows: Vec<RecordBatch>,
    /// Output rows of the stage's epoch.
    output_rows: u64,
    /// The sink's row writer, if it takes rows as they come.
    writer: Option<Arc<dyn RowWriter>>,
    /// The rows of every static input, by declared input (`None` for streams).
    statics: Arc<Vec<Option<Vec<RecordBatch>>>>,
}

struct Waiting {
    epoch: u64,
    input: usize,
    rows: Vec<RecordBatch>,
}

/// What an epoch gave, as the coordinator commits it.
pub(super) struct EpochOutput {
    /// The watermarks and processing time the epoch ran with (logged with its offsets).
    pub watermarks: Option<(i64, i64)>,
    pub timestamp_ms: i64,
    pub end: EpochEnd,
    /// Output rows kept for the sink (none when the row writer took them).
    pub rows: Vec<RecordBatch>,
    pub output_rows: u64,
    pub state_operators: Vec<StateOperatorProgress>,
    /// Whether the next epoch evicts at its end.
    pub owes_eviction: bool,
}

impl StageCell {
    pub(super) fn new(
        stage: Stage,
        writer: Option<Arc<dyn RowWriter>>,
        statics: Arc<Vec<Option<Vec<RecordBatch>>>>,
    ) -> Self {
        StageCell { stage, waiting: Vec::new(), rows: Vec::new(), output_rows: 0, writer, statics }
    }

    /// A task's vectors of epoch `epoch` (declared input `input`): run now if the epoch is the
    /// stage's (its output to the sink at once), else kept until the epoch begins.
    pub(super) fn offer(&mut self, epoch: u64, input: usize, rows: Vec<RecordBatch>) -> Result<()> {
        if epoch == self.stage.epoch() {
            self.run(input, rows)
        } else {
            self.waiting.push(Waiting { epoch, input, rows });
            Ok(())
        }
    }

    fn run(&mut self, input: usize, rows: Vec<RecordBatch>) -> Result<()> {
        if rows.iter().all(|b| b.num_rows() == 0) {
            // Nothing to run on, but the epoch's sources moved.
            self.stage.moved = true;
            return Ok(());
        }
        let inputs = super::coordinator::inputs_for(&self.statics, input, rows);
        let out = self.stage.run_vector(&inputs)?;
        self.emit(out)
    }

    fn emit(&mut self, out: Vec<RecordBatch>) -> Result<()> {
        let epoch = self.stage.epoch();
        for rows in out.into_iter().filter(|b| b.num_rows() > 0) {
            self.output_rows += rows.num_rows() as u64;
            match &self.writer {
                Some(w) => w
                    .add_rows(epoch, &rows, self.stage.output_mode)
                    .map_err(|e| e.context(format!("sink at epoch {epoch}")))?,
                None => self.rows.push(rows),
            }
        }
        Ok(())
    }

    /// Ends the stage's epoch (its eviction, its state changes, the watermarks advanced), then
    /// begins the next, whose processing time is `next_timestamp_ms`, and runs the vectors of
    /// it that waited, in the order they arrived.
    pub(super) fn end_epoch(&mut self, next_timestamp_ms: i64) -> Result<EpochOutput> {
        let (watermarks, timestamp_ms) = (self.stage.watermarks(), self.stage.timestamp_ms());
        let empty: Vec<Vec<RecordBatch>> = self.statics.iter().map(|s| s.clone().unwrap_or_default()).collect();
        let mut end = self.stage.end_epoch(&empty)?;
        self.emit(std::mem::take(&mut end.rows))?;
        let out = EpochOutput {
            watermarks,
            timestamp_ms,
            end,
            rows: std::mem::take(&mut self.rows),
            output_rows: std::mem::take(&mut self.output_rows),
            state_operators: self.stage.state_operators(),
            owes_eviction: self.stage.owes_eviction(),
        };
        let next = self.stage.epoch() + 1;
        self.stage.begin_epoch(next, next_timestamp_ms);
        let (now, later): (Vec<Waiting>, Vec<Waiting>) =
            std::mem::take(&mut self.waiting).into_iter().partition(|w| w.epoch == next);
        self.waiting = later;
        for w in now {
            self.run(w.input, w.rows)?;
        }
        Ok(out)
    }
}
