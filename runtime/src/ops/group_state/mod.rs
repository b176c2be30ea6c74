//! Arbitrary stateful processing: `map_groups_with_state` / `flat_map_groups_with_state`
//! (Spark's `FlatMapGroupsWithStateExec`, `flatMapGroupsWithState` in progress).
//!
//! Per batch, generated code hands [`GroupStateOp::push_row`] each input row with its grouping
//! key (rows keep their input order within a key), then calls [`GroupStateOp::run`] with a
//! closure that calls the user's function. `run` calls it once per key that has rows, in the
//! order the keys first appeared in the batch, then — when timeouts are enabled — once per
//! key whose timeout is strictly before the batch's threshold (the batch's processing time,
//! or the eviction watermark in ms), with no rows and `has_timed_out()` true, ordered by
//! timeout and then by encoded key (so a replay calls them in the same order). Spark's rules
//! on what is written back after a call are kept exactly (see [`GroupStateOp::call`]).
//!
//! An initial state (the DSL's `initial_state = ..`, Spark's `initialState`
//! `KeyValueGroupedDataset`) is applied in the query's first batch (batch 0) only, as Spark
//! applies it only while `isFirstBatch`: each key's state is stored (with no timeout), then the
//! function is called once per key that has rows or initial state or both — the keys with
//! rows as above, then the keys with only an initial state, in its order, with no rows — as
//! Spark's `processNewDataWithInitialState`. A key given twice fails the batch with Spark's
//! message. A restart from a checkpoint whose batch 0 committed never applies it again; a
//! batch 0 re-run after a failure applies it again (it starts from no state). In continuous
//! mode, where epoch 0 runs as one call per vector, the first call applies it.
//!
//! A vector of a continuous epoch ([`BatchContext::mid_epoch`]) calls the keys with rows only:
//! the timeouts fire in the epoch's last run (without rows), so a key with rows anywhere in the
//! epoch is called with them rather than timed out, as in a micro-batch over the epoch's rows.
//!
//! With timeouts enabled, the operator keeps every key's timeout in an in-memory index by
//! (timeout, encoded key), updated by each call that changes it and rebuilt on restore: the
//! keys due are a prefix of it and the next processing-time timeout its first entry, so no
//! batch scans the state.

pub(crate) mod batch;
mod state;

pub use batch::{FromGroupRows, GroupRows};
pub use state::{GroupState, GroupStateTimeout, GroupStateValue, NO_TIMESTAMP};

use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};

use crate::checkpoint::state::StateMap;
use crate::codec::StateCodec;
use crate::engine::BatchContext;
use crate::error::{Error, Result};
use crate::ops::keyed::{state_hash, KeyedState};
use crate::ops::{PartitionChanges, StateOperatorProgress, StateSchema, StatefulOperator};
use crate::value::GroupKey;

use batch::BatchGroups;

/// Spark's name for the operator (both map and flat map run `FlatMapGroupsWithStateExec`).
pub const OPERATOR_NAME: &str = "flatMapGroupsWithState";

/// The state of a `map_groups_with_state` / `flat_map_groups_with_state`: the user's state
/// `S` and timeout per key `K`, and the batch's rows `R` grouped by key.
pub struct GroupStateOp<K, R, S> {
    state: KeyedState<K, GroupStateValue<S>>,
    timeout: GroupStateTimeout,
    /// The batch's rows by key.
    groups: BatchGroups<K, R>,
    /// Every key with a timeout, by (timeout, encoded key): the order timed-out keys are
    /// called in (timeouts enabled only).
    timeouts: BTreeMap<(i64, Vec<u8>), (u64, K)>,
    /// The earliest processing-time timeout in state (for the engine's no-data batches).
    next_timeout: Option<i64>,
    /// Whether this instance applied the initial state already (a continuous epoch 0 runs
    /// batch 0 once per vector; only its first run applies it).
    initial_applied: bool,
    metrics: StateOperatorProgress,
}

impl<K, R, S> GroupStateOp<K, R, S>
where
    K: GroupKey<Owned = K> + Clone + Eq + StateCodec,
{
    /// Empty state with `partitions` shuffle partitions and the query's timeout setting.
    pub fn new(partitions: usize, timeout: GroupStateTimeout) -> Self {
        GroupStateOp {
            state: KeyedState::new(partitions),
            timeout,
            groups: BatchGroups::default(),
            timeouts: BTreeMap::new(),
            next_timeout: None,
            initial_applied: false,
            metrics: StateOperatorProgress { operator_name: OPERATOR_NAME.to_string(), ..Default::default() },
        }
    }

    /// Starts a batch (generated code calls it before the batch's rows).
    pub fn begin_batch(&mut self) {
        let m = &mut self.metrics;
        m.num_rows_updated = 0;
        m.num_rows_removed = 0;
        m.num_rows_dropped_by_watermark = 0;
    }

    /// Counts an input row dropped as late (event-time timeouts only, as Spark).
    #[cold]
    pub fn late(&mut self) {
        self.metrics.num_rows_dropped_by_watermark += 1;
    }

    /// Adds one row to its key's group of this batch.
    #[inline]
    pub fn push_row<Q: GroupKey<Owned = K>>(&mut self, key: Q, row: R) {
        self.groups.push(key, row);
    }

    /// Number of keys with rows in this batch so far (generated code sizes the output by it).
    pub fn batch_keys(&self) -> usize {
        self.groups.keys()
    }

    /// Number of keys in state.
    pub fn len(&self) -> usize {
        self.state.len()
    }

    /// Whether no key is in state.
    pub fn is_empty(&self) -> bool {
        self.state.is_empty()
    }
}

impl<K, R, S> GroupStateOp<K, R, S>
where
    K: GroupKey<Owned = K> + Clone + Eq + StateCodec + std::fmt::Debug,
{
    /// Runs the batch: `f(key, rows, state)` per key with rows, then per timed-out key (see
    /// the module docs). `f` is generated code calling the user's function and appending its
    /// output. A misuse of the `GroupState` API (Spark's exceptions) or a panic in the user's
    /// function fails the batch with an error naming the key; nothing of the batch is kept
    /// (the engine re-runs it from the previous state version after a restart).
    pub fn run(&mut self, ctx: &BatchContext, f: impl FnMut(&K, GroupRows<'_, R>, &mut GroupState<S>)) -> Result<()> {
        self.run_with_initial_state(ctx, f, std::iter::empty)
    }

    /// [`GroupStateOp::run`] with an initial state per key (the DSL's `initial_state = ..`):
    /// in batch 0 only, `initial` is called and its pairs applied (see the module docs); in
    /// any other batch it is never called. (Generated code passes the function before the
    /// initial state, so rustc takes the state's type from the function and reports a wrong
    /// initial state at its expression.)
    pub fn run_with_initial_state<I>(
        &mut self,
        ctx: &BatchContext,
        mut f: impl FnMut(&K, GroupRows<'_, R>, &mut GroupState<S>),
        initial: impl FnOnce() -> I,
    ) -> Result<()>
    where
        I: IntoIterator<Item = (K, S)>,
    {
        let batch_ms = ctx.batch_timestamp_ms;
        let watermark_ms = ctx.watermark_for_eviction.map(|w| w.div_euclid(1000));
        let initial = if ctx.batch_id == 0 && !self.initial_applied {
            self.initial_applied = true;
            self.apply_initial_state(initial())?
        } else {
            Vec::new()
        };
        // Taken out for the calls and put back drained: its buffers keep their capacity.
        let mut groups = std::mem::take(&mut self.groups);
        let mut drain = groups.drain_rows();
        while let Some((hash, key, rows)) = drain.next() {
            self.call(hash, key, rows, false, batch_ms, watermark_ms, &mut f)?;
        }
        drop(drain);
        self.groups = groups;
        for (hash, key) in initial {
            self.call(hash, key, GroupRows::empty(), false, batch_ms, watermark_ms, &mut f)?;
        }
        // A vector of a continuous epoch fires none: the epoch's end does (`BatchContext::mid_epoch`).
        let threshold = match self.timeout {
            _ if ctx.mid_epoch => None,
            GroupStateTimeout::NoTimeout => None,
            GroupStateTimeout::ProcessingTimeTimeout => Some(batch_ms),
            GroupStateTimeout::EventTimeTimeout => watermark_ms,
        };
        if let Some(threshold) = threshold {
            // The keys with rows were called first: a timeout they set is in the index.
            let due: Vec<(u64, K)> =
                self.timeouts.range(..(threshold, Vec::new())).map(|(_, (hash, key))| (*hash, key.clone())).collect();
            for (hash, key) in due {
                self.call(hash, key, GroupRows::empty(), true, batch_ms, watermark_ms, &mut f)?;
            }
        }
        self.end_batch();
        Ok(())
    }

    /// Stores the initial state (batch 0) and returns the keys it gave that have no rows in
    /// the batch, in its order: they are called after the keys with rows. A key given twice
    /// is Spark's error.
    fn apply_initial_state(&mut self, initial: impl IntoIterator<Item = (K, S)>) -> Result<Vec<(u64, K)>> {
        let mut seen = std::collections::HashSet::new();
        let mut without_rows = Vec::new();
        for (key, state) in initial {
            if !seen.insert(crate::codec::to_bytes(&key)) {
                return Err(Error::User(format!(
                    "the initial state of map_groups_with_state / flat_map_groups_with_state gives key {key:?} twice: the initial state provided contained multiple rows(state) with the same key. Make sure to de-duplicate the initial state before passing it (Spark's message)"
                )));
            }
            let hash = state_hash(&key);
            let value = GroupStateValue { state: Some(state), timeout_ms: NO_TIMESTAMP };
            match self.state.find_mut(hash, &key) {
                Some(slot) => {
                    *slot = value;
                    self.state.touch(&key);
                }
                None => self.state.put(hash, key.clone(), value, true),
            }
            if !self.groups.contains(hash, &key) {
                without_rows.push((hash, key));
            }
        }
        Ok(without_rows)
    }

    /// One call of the user's function and Spark's write-back rules: a removed state with no
    /// timeout is deleted; otherwise the state (possibly absent) and the timeout set in this
    /// call (a call that sets none clears it) are written when the state was updated or
    /// removed or the timeout changed.
    #[allow(clippy::too_many_arguments)]
    fn call(
        &mut self,
        hash: u64,
        key: K,
        rows: GroupRows<'_, R>,
        timed_out: bool,
        batch_ms: i64,
        watermark_ms: Option<i64>,
        f: &mut impl FnMut(&K, GroupRows<'_, R>, &mut GroupState<S>),
    ) -> Result<()> {
        // One probe: the stored state is moved into the call and the result written back in
        // place; only a new key (an insert) or a deleted one (a remove) probes again.
        let mut slot = self.state.find_mut(hash, &key);
        let existed = slot.is_some();
        let (stored, old_timeout) = match slot.as_deref_mut() {
            Some(v) => (v.state.take(), v.timeout_ms),
            None => (None, NO_TIMESTAMP),
        };
        let mut gs = GroupState::new(stored, self.timeout, timed_out, batch_ms, watermark_ms);
        let outcome = catch_unwind(AssertUnwindSafe(|| f(&key, rows, &mut gs)));
        if let Err(panic) = outcome {
            let msg = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a panic".to_string());
            return Err(Error::User(format!("the group-state function panicked for key {key:?}: {msg}")));
        }
        if let Some(e) = gs.misuse.take() {
            return Err(Error::User(format!("the group-state function for key {key:?}: {e}")));
        }
        let new_timeout = gs.timeout_ms;
        if new_timeout != old_timeout {
            let encoded = crate::codec::to_bytes(&key);
            if old_timeout != NO_TIMESTAMP {
                self.timeouts.remove(&(old_timeout, encoded.clone()));
            }
            if new_timeout != NO_TIMESTAMP {
                self.timeouts.insert((new_timeout, encoded), (hash, key.clone()));
            }
        }
        // Spark writes a row with no state and no timeout in one case (a timed-out key whose
        // state was removed earlier, called again without setting a timeout); such a row can
        // never be seen again, so flowgate deletes it instead.
        if (gs.removed || gs.value.is_none()) && new_timeout == NO_TIMESTAMP {
            if existed {
                self.metrics.num_rows_removed += 1;
                self.state.remove(hash, &key);
            }
        } else {
            let write = gs.updated || gs.removed || new_timeout != old_timeout;
            let value = GroupStateValue { state: gs.value, timeout_ms: new_timeout };
            if write {
                self.metrics.num_rows_updated += 1;
            }
            match slot {
                Some(slot) => {
                    *slot = value;
                    if write {
                        self.state.touch(&key);
                    }
                }
                None if write => self.state.put(hash, key, value, true),
                None => {}
            }
        }
        Ok(())
    }

    fn end_batch(&mut self) {
        self.metrics.num_rows_total = self.state.len() as u64;
        self.metrics.memory_used_bytes = self.state.estimated_bytes();
        self.next_timeout = match self.timeout {
            GroupStateTimeout::ProcessingTimeTimeout => self.timeouts.first_key_value().map(|((t, _), _)| *t),
            _ => None,
        };
    }

    /// Rebuilds the timeout index from the state (after a restore).
    fn reindex(&mut self) {
        self.timeouts.clear();
        for e in self.state.iter().filter(|e| e.value.timeout_ms != NO_TIMESTAMP) {
            let encoded = crate::codec::to_bytes(&e.key);
            self.timeouts.insert((e.value.timeout_ms, encoded), (state_hash(&e.key), e.key.clone()));
        }
    }
}

impl<K, R, S> StatefulOperator for GroupStateOp<K, R, S>
where
    K: GroupKey<Owned = K> + Clone + Eq + Send + StateCodec + std::fmt::Debug,
    R: Send,
    S: StateCodec + Send,
{
    fn state_schema(&self) -> StateSchema {
        StateSchema::of::<K, GroupStateValue<S>>(OPERATOR_NAME, self.state.partitions())
    }
    fn metrics(&self) -> StateOperatorProgress {
        self.metrics.clone()
    }
    fn set_tracking(&mut self, on: bool) {
        self.state.set_tracking(on)
    }
    fn take_changes(&mut self) -> Vec<PartitionChanges> {
        self.state.take_changes()
    }
    fn restore(&mut self, partitions: Vec<StateMap>) -> Result<()> {
        self.state.restore(partitions)?;
        self.reindex();
        self.end_batch();
        Ok(())
    }
    fn next_processing_timeout_ms(&self) -> Option<i64> {
        self.next_timeout
    }
}

#[cfg(test)]
mod tests;
