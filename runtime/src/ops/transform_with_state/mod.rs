//! Spark 4's `transformWithState`: `group_by(keys..).transform_with_state(processor,
//! time_mode = ..)` runs a user [`StatefulProcessor`] per grouping key with typed state
//! variables ([`ValueState`], [`ListState`], [`MapState`], each with its own layout and TTL)
//! and timers in processing or event time (Spark's `TransformWithStateExec`).
//!
//! Per batch, generated code hands [`TransformWithStateOp::push_row`] each input row with its
//! grouping key, then calls [`TransformWithStateOp::run`], which
//! 1. calls `handle_input_rows` once per key with rows, in the order the keys first appeared
//!    in the batch, with that key's rows in input order;
//! 2. then, with `time_mode = processing_time` or `event_time`, calls `handle_expired_timer`
//!    once per timer strictly before the batch's processing time or eviction watermark, in
//!    order of expiry time then encoded key (so a replay calls them in the same order), and
//!    deletes the timer after the call. The timers due are those in state once step 1 is
//!    done (a timer registered in step 1 that is already due fires in this batch);
//! 3. then removes the values whose TTL has passed (`batch time >= last write + ttl`), which
//!    no call has seen since they expired.
//!
//! A key whose variables are all empty and that has no timer is removed from state. The
//! progress counts state rows as Spark's does: `numRowsTotal` a set value, a non-empty list
//! and each map entry one row (timers are not counted); `numRowsUpdated` each value written,
//! list element appended or put, and map entry updated; `numRowsRemoved` each value, list
//! element and map entry cleared or removed, or removed by its TTL (not one overwritten
//! after it expired). The
//! state goes through the checkpoint as one value per key ([`row`]); the state schema is the
//! processor's declarations, made when the operator is created, so a changed processor is
//! refused before the first batch.

mod processor;
mod row;

pub use processor::{
    ExpiredTimerInfo, KeyHandle, ListState, MapState, StatefulProcessor, StatefulProcessorHandle, TimeMode,
    TimerValues, Ttl, ValueState, VarDecl, VarKind, NO_TIME,
};
pub use row::{row_layout, TwsRow};

use std::cell::RefCell;
use std::panic::{catch_unwind, AssertUnwindSafe};

use hashbrown::HashTable;

use crate::checkpoint::state::StateMap;
use crate::codec::StateCodec;
use crate::engine::BatchContext;
use crate::error::{Error, Result};
use crate::ops::keyed::{state_hash, KeyedState};
use crate::ops::{PartitionChanges, StateOperatorProgress, StateSchema, StatefulOperator};
use crate::value::GroupKey;

/// The processor's view of a one-column grouping key: the column (generated code).
#[inline]
pub fn single_key<T>(key: &(T,)) -> &T {
    &key.0
}

/// The processor's view of a grouping key of several columns: the tuple (generated code).
#[inline]
pub fn whole_key<K>(key: &K) -> &K {
    key
}

/// Spark's name for the operator in progress reports.
pub const OPERATOR_NAME: &str = "transformWithStateExec";

/// One key's rows of the current batch.
struct BatchGroup<K, R> {
    hash: u64,
    key: K,
    rows: Vec<R>,
}

/// What a call is for: the key's rows of the batch, or one of its timers that is due.
enum Call<R> {
    Rows(Vec<R>),
    Timer(i64),
}

/// What one batch did, beyond the common state metrics (Spark's `customMetrics` names).
#[derive(Clone, Copy, Default, Debug)]
struct BatchCounts {
    timers_registered: u64,
    timers_deleted: u64,
    timers_expired: u64,
    ttl_removed: u64,
}

/// The state of a `transform_with_state`: the processor `P`, its declarations, and per key
/// `K` its state variables and timers; the batch's input rows `R` (`P::Input`) grouped by key.
///
/// The struct has no bounds, and its constructor's type is `Self` with `R = P::Input`: a
/// value that is no processor is one error, at [`TransformWithStateOp::new`], after which
/// the operator's type is an error to rustc and nothing using it is reported again.
pub struct TransformWithStateOp<K, R, P> {
    processor: P,
    /// `P::close` (the struct is unbounded, so its `Drop` cannot name it).
    close: fn(&mut P),
    decls: Vec<VarDecl>,
    /// Misuses in `init` (a name declared twice, a bad TTL): the first batch fails with them.
    init_errors: Vec<String>,
    time_mode: TimeMode,
    has_ttl: bool,
    state: KeyedState<K, TwsRow>,
    groups: Vec<BatchGroup<K, R>>,
    index: HashTable<usize>,
    /// The earliest processing-time timer in state (for the engine's no-data batches).
    next_timer: Option<i64>,
    counts: BatchCounts,
    /// The running batch's processing time (ms).
    batch_ms: i64,
    metrics: StateOperatorProgress,
}

impl<K, P> TransformWithStateOp<K, P::Input, P>
where
    K: GroupKey<Owned = K> + Clone + Eq,
    P: StatefulProcessor,
{
    /// The operator with `partitions` shuffle partitions: calls the processor's `init`,
    /// whose declarations are the state schema.
    pub fn new(partitions: usize, time_mode: TimeMode, mut processor: P) -> Self {
        let mut handle = StatefulProcessorHandle::new(time_mode);
        processor.init(&mut handle);
        let has_ttl = handle.decls.iter().any(|d| d.ttl_ms.is_some());
        TransformWithStateOp {
            processor,
            close: P::close,
            decls: handle.decls,
            init_errors: handle.errors,
            time_mode,
            has_ttl,
            state: KeyedState::new(partitions),
            groups: Vec::new(),
            index: HashTable::new(),
            next_timer: None,
            counts: BatchCounts::default(),
            batch_ms: 0,
            metrics: StateOperatorProgress { operator_name: OPERATOR_NAME.to_string(), ..Default::default() },
        }
    }
}

impl<K, R, P> TransformWithStateOp<K, R, P>
where
    K: GroupKey<Owned = K> + Clone + Eq,
{
    /// The declared state variables, in declaration order.
    pub fn declarations(&self) -> &[VarDecl] {
        &self.decls
    }

    /// Starts a batch (generated code calls it before the batch's rows).
    pub fn begin_batch(&mut self) {
        let m = &mut self.metrics;
        m.num_rows_updated = 0;
        m.num_rows_removed = 0;
        m.num_rows_dropped_by_watermark = 0;
        self.counts = BatchCounts::default();
    }

    /// Counts an input row dropped as late (`time_mode = event_time` only).
    #[cold]
    pub fn late(&mut self) {
        self.metrics.num_rows_dropped_by_watermark += 1;
    }

    /// Adds one input row to its key's group of this batch.
    #[inline]
    pub fn push_row<Q: GroupKey<Owned = K>>(&mut self, key: Q, row: R) {
        let hash = state_hash(&key);
        let groups = &mut self.groups;
        match self.index.find(hash, |&i| key.eq_owned(&groups[i].key)) {
            Some(&i) => groups[i].rows.push(row),
            None => {
                let i = groups.len();
                groups.push(BatchGroup { hash, key: key.to_owned_key(), rows: vec![row] });
                self.index.insert_unique(hash, i, |&j| groups[j].hash);
            }
        }
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

impl<K, P> TransformWithStateOp<K, P::Input, P>
where
    K: GroupKey<Owned = K> + Clone + Eq + StateCodec + std::fmt::Debug,
    P: StatefulProcessor,
{
    /// Runs the batch (see the module docs): `key_of` gives the processor's view of a key
    /// (the column for one grouping key), `emit` takes each output record.
    pub fn run(
        &mut self,
        ctx: &BatchContext,
        key_of: impl Fn(&K) -> &P::Key,
        mut emit: impl FnMut(P::Output),
    ) -> Result<()> {
        if !self.init_errors.is_empty() {
            return Err(Error::User(format!("the stateful processor's `init`: {}", self.init_errors.join("; "))));
        }
        let batch_ms = ctx.batch_timestamp_ms;
        self.batch_ms = batch_ms;
        let watermark_ms = ctx.watermark_for_eviction.map(|w| w.div_euclid(1000));
        let timer_values = match self.time_mode {
            TimeMode::None => TimerValues::new(NO_TIME, NO_TIME),
            _ => TimerValues::new(batch_ms, watermark_ms.unwrap_or(NO_TIME)),
        };
        let groups = std::mem::take(&mut self.groups);
        self.index.clear();
        for g in groups {
            self.call(g.hash, g.key, Call::Rows(g.rows), &timer_values, watermark_ms, &key_of, &mut emit)?;
        }
        let threshold = match self.time_mode {
            TimeMode::None => None,
            TimeMode::ProcessingTime => Some(batch_ms),
            TimeMode::EventTime => watermark_ms,
        };
        if let Some(threshold) = threshold {
            let mut due: Vec<(i64, Vec<u8>, u64, K)> = Vec::new();
            for e in self.state.iter() {
                for &t in e.value.timers.iter().take_while(|t| **t < threshold) {
                    due.push((t, crate::codec::to_bytes(&e.key), state_hash(&e.key), e.key.clone()));
                }
            }
            due.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
            for (t, _, hash, key) in due {
                self.counts.timers_expired += 1;
                self.call(hash, key, Call::Timer(t), &timer_values, watermark_ms, &key_of, &mut emit)?;
            }
        }
        if self.has_ttl {
            self.expire_ttl(batch_ms);
        }
        self.end_batch();
        Ok(())
    }

    /// One call of the processor for `key` and the write-back of its row: a row left empty
    /// is removed, a changed one recorded for the checkpoint.
    #[allow(clippy::too_many_arguments)]
    fn call(
        &mut self,
        hash: u64,
        key: K,
        what: Call<P::Input>,
        timer_values: &TimerValues,
        watermark_ms: Option<i64>,
        key_of: &impl Fn(&K) -> &P::Key,
        emit: &mut impl FnMut(P::Output),
    ) -> Result<()> {
        let stored = self.state.take(hash, &key);
        let existed = stored.is_some();
        let mut row = stored.unwrap_or_else(|| TwsRow::new(&self.decls));
        let mut h = KeyHandle {
            row: &mut row,
            decls: &self.decls,
            time_mode: self.time_mode,
            batch_ms: self.batch_ms,
            watermark_ms,
            changed: false,
            timers_registered: 0,
            timers_deleted: 0,
            rows_updated: 0,
            rows_removed: 0,
            misuse: RefCell::new(None),
        };
        let processor = &mut self.processor;
        let outcome = catch_unwind(AssertUnwindSafe(|| match what {
            Call::Rows(rows) => {
                for out in processor.handle_input_rows(key_of(&key), rows, timer_values, &mut h) {
                    emit(out);
                }
            }
            Call::Timer(t) => {
                // An earlier call of this key may have deleted it.
                if h.row.timers.binary_search(&t).is_ok() {
                    let info = ExpiredTimerInfo::new(t);
                    for out in processor.handle_expired_timer(key_of(&key), timer_values, info, &mut h) {
                        emit(out);
                    }
                }
                if let Ok(at) = h.row.timers.binary_search(&t) {
                    h.row.timers.remove(at);
                    h.changed = true;
                }
            }
        }));
        if let Err(panic) = outcome {
            let msg = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a panic".to_string());
            return Err(Error::User(format!("the stateful processor panicked for key {key:?}: {msg}")));
        }
        if let Some(e) = h.misuse.take() {
            return Err(Error::User(format!("the stateful processor for key {key:?}: {e}")));
        }
        let changed = h.changed;
        self.counts.timers_registered += h.timers_registered;
        self.counts.timers_deleted += h.timers_deleted;
        self.metrics.num_rows_updated += h.rows_updated;
        self.metrics.num_rows_removed += h.rows_removed;
        if row.is_empty() {
            if existed {
                self.state.mark_removed(key);
            }
        } else {
            self.state.put(hash, key, row, changed || !existed);
        }
        Ok(())
    }

    /// Removes every value whose TTL passed at `batch_ms` (a scan of the keys holding one).
    fn expire_ttl(&mut self, batch_ms: i64) {
        let due: Vec<(u64, K)> = self
            .state
            .iter()
            .filter(|e| e.value.vars.iter().filter_map(|s| s.next_expiry()).any(|t| batch_ms >= t))
            .map(|e| (state_hash(&e.key), e.key.clone()))
            .collect();
        for (hash, key) in due {
            let Some(mut row) = self.state.take(hash, &key) else { continue };
            let removed = row.vars.iter_mut().map(|s| s.expire(batch_ms)).sum::<u64>();
            self.counts.ttl_removed += removed;
            self.metrics.num_rows_removed += removed;
            if row.is_empty() {
                self.state.mark_removed(key);
            } else {
                self.state.put(hash, key, row, true);
            }
        }
    }

    fn end_batch(&mut self) {
        let m = &mut self.metrics;
        m.num_rows_total = self.state.iter().flat_map(|e| &e.value.vars).map(row::Slot::state_rows).sum();
        m.memory_used_bytes = self.state.estimated_bytes()
            + self
                .state
                .iter()
                .map(|e| {
                    let stored = crate::codec::to_bytes(&e.value).len();
                    stored as u64
                })
                .sum::<u64>();
        let count = |k: VarKind| self.decls.iter().filter(|d| d.kind == k).count() as u64;
        let c = self.counts;
        m.custom_metrics = vec![
            ("numValueStateVars".into(), count(VarKind::Value)),
            ("numListStateVars".into(), count(VarKind::List)),
            ("numMapStateVars".into(), count(VarKind::Map)),
            ("numRegisteredTimers".into(), c.timers_registered),
            ("numDeletedTimers".into(), c.timers_deleted),
            ("numExpiredTimers".into(), c.timers_expired),
            ("numValuesRemovedDueToTTLExpiry".into(), c.ttl_removed),
        ];
        self.next_timer = match self.time_mode {
            TimeMode::ProcessingTime => self.state.iter().filter_map(|e| e.value.timers.first().copied()).min(),
            _ => None,
        };
    }
}

impl<K, R, P> Drop for TransformWithStateOp<K, R, P> {
    /// The query stopped (or failed): the processor's `close`.
    fn drop(&mut self) {
        (self.close)(&mut self.processor);
    }
}

impl<K, P> StatefulOperator for TransformWithStateOp<K, P::Input, P>
where
    K: GroupKey<Owned = K> + Clone + Eq + Send + StateCodec + std::fmt::Debug,
    P: StatefulProcessor,
    P::Input: Send,
{
    fn state_schema(&self) -> StateSchema {
        StateSchema {
            operator: OPERATOR_NAME.to_string(),
            key_layout: crate::codec::layout_of::<K>(),
            value_layout: row_layout(&self.decls),
            partitions: self.state.partitions(),
        }
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
        let n = self.decls.len();
        if let Some(bad) = self.state.iter().find(|e| e.value.vars.len() != n) {
            return Err(Error::Checkpoint(format!(
                "a stored transform_with_state row holds {} state variables, the processor declares {n}",
                bad.value.vars.len()
            )));
        }
        self.end_batch();
        Ok(())
    }
    fn next_processing_timeout_ms(&self) -> Option<i64> {
        self.next_timer
    }
}

#[cfg(test)]
mod tests;
