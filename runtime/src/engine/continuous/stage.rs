//! The stateful stage of a continuous query: the one instance of the plan that owns the
//! query's state, run by the coordinator once per epoch on the rows every task read in it.
//!
//! The tasks of a stateful query only read: each sends its vectors, tagged with their epoch, and
//! then its marker down the one FIFO channel, so the coordinator holds every row of epoch `e`
//! once every task's marker `e` arrived, while rows of later epochs wait apart (Flink's aligned
//! barriers: nothing of `e + 1` reaches the state before `e`'s snapshot). At that point the stage
//! runs the plan on the epoch's rows, as a micro-batch over exactly those rows with the batch id
//! the epoch: the plan's operators partition their state by the persisted partition hash
//! (`partition.rs`) into the query's shuffle partitions, as in micro-batch mode; the epoch's
//! state changes become the state version of the epoch (the micro-batch state store and its
//! snapshots), and the watermarks advance per epoch by the micro-batch rules (late rows are
//! dropped by the previous epoch's watermark, state evicted by this epoch's). Output is per
//! epoch: in update mode, each key the epoch changed once, with its value at the epoch's end,
//! which is what a micro-batch over the same rows gives. An epoch without rows runs only when
//! the watermark moved (Spark's no-data batch); it still writes its (empty) state version.
//!
//! The epoch's rows are in task order (a task's partition order, then each partition's rows in
//! order), never in the order they happened to arrive, so a replayed epoch gives exactly the
//! rows, state and output of its first run, even where order matters (which of two duplicates
//! a dedup keeps, `first` and `last`).

use arrow_array::RecordBatch;

use crate::engine::checkpoint::QueryCheckpoint;
use crate::engine::{BatchContext, Plan, PlanExt};
use crate::error::Result;
use crate::OutputMode;

/// Per operator, per partition: the changes of one epoch.
type EpochChanges = Vec<Vec<crate::ops::PartitionChanges>>;

pub(super) struct Stage {
    plan: Box<dyn Plan>,
    /// Whether the plan has event-time watermarks.
    has_watermark: bool,
    /// The (late, eviction) watermarks the next epoch runs with, in microseconds (Spark starts
    /// both at 0).
    late: i64,
    eviction: i64,
}

/// What running one epoch gave.
pub(super) struct EpochRun {
    /// The epoch's output.
    pub rows: Vec<RecordBatch>,
    /// The state changes to commit as the epoch's version (with a checkpoint).
    pub changes: Option<EpochChanges>,
    /// The watermark the next epoch evicts with (`None` without a watermark).
    pub next_watermark: Option<i64>,
}

impl Stage {
    /// The stage for `plan`, if it needs one: stateful operators or a watermark.
    pub(super) fn for_plan(plan: Box<dyn Plan>) -> Option<Stage> {
        let has_watermark = !plan.watermarks().is_empty();
        let stateful = !plan.state_schema().is_empty();
        (stateful || has_watermark).then_some(Stage { plan, has_watermark, late: 0, eviction: 0 })
    }

    /// Restores the state and watermarks after the last committed epoch (`resume` from the
    /// checkpoint).
    pub(super) fn restore(
        &mut self,
        cp: &QueryCheckpoint,
        state_version: u64,
        watermarks: Option<(i64, i64)>,
    ) -> Result<()> {
        self.plan.set_tracking(true);
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

    /// The watermarks the next epoch runs with, to log with its offsets.
    pub(super) fn watermarks(&self) -> Option<(i64, i64)> {
        self.has_watermark.then_some((self.late, self.eviction))
    }

    /// The plan's operators' progress after the last epoch.
    pub(super) fn state_operators(&self) -> Vec<crate::ops::StateOperatorProgress> {
        self.plan.state_operators()
    }

    /// Runs epoch `epoch` on its rows (`inputs`: per declared input, the statics' rows in
    /// place), then advances the watermarks.
    pub(super) fn run(
        &mut self,
        epoch: u64,
        inputs: Vec<Vec<RecordBatch>>,
        output_mode: OutputMode,
        timestamp_ms: i64,
        tracking: bool,
    ) -> Result<EpochRun> {
        let has_rows = inputs.iter().flatten().any(|b| b.num_rows() > 0);
        let moved = self.has_watermark && self.eviction > self.late;
        if !has_rows && !moved {
            // Nothing to run, but the epoch still gets its (empty) state version: a restart
            // loads the version after the last committed epoch, whichever that is.
            let changes = tracking.then(|| self.plan.take_changes());
            return Ok(EpochRun { rows: Vec::new(), changes, next_watermark: self.watermarks().map(|w| w.1) });
        }
        let ctx = BatchContext {
            batch_id: epoch,
            output_mode,
            watermark_for_late: self.has_watermark.then_some(self.late),
            watermark_for_eviction: self.has_watermark.then_some(self.eviction),
            batch_timestamp_ms: timestamp_ms,
        };
        let rows = self.plan.run_batch(&ctx, &inputs).map_err(|e| e.context(format!("running epoch {epoch}")))?;
        let changes = tracking.then(|| self.plan.take_changes());
        let next_watermark = self.has_watermark.then(|| {
            // The watermark never moves back.
            let next = self.plan.watermarks().candidate().map_or(self.eviction, |c| c.max(self.eviction));
            self.late = self.eviction;
            self.eviction = next;
            next
        });
        Ok(EpochRun { rows, changes, next_watermark })
    }
}
