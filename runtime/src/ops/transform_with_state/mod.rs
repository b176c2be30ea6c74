//! Spark 4's `transformWithState`: `group_by(keys..).transform_with_state(processor,
//! time_mode = ..)` runs a user [`StatefulProcessor`] per grouping key with typed state
//! variables ([`ValueState`], [`ListState`], [`MapState`], each with its own layout and TTL)
//! and timers in processing or event time (Spark's `TransformWithStateExec`).
//!
//! Per batch, generated code hands [`TransformWithStateOp::push_row`] each input row with its
//! grouping key, then calls [`TransformWithStateOp::run`], which
//! 0. in the query's first batch (batch 0) only, run with
//!    [`TransformWithStateOp::run_with_initial_state`], calls `handle_initial_state` once per
//!    key of the initial state, with its entries (Spark's `initialState`; golden case
//!    `tws_initial_state`);
//! 1. calls `handle_input_rows` once per key with rows, in the order the keys first appeared
//!    in the batch, with that key's rows in input order;
//! 2. then, with `time_mode = processing_time` or `event_time`, calls `handle_expired_timer`
//!    once per timer at or before the batch's processing time or eviction watermark (as Spark
//!    4.3; golden cases `tws_timer_at_batch_time`, `tws_timer_at_watermark`), in
//!    order of expiry time then encoded key (so a replay calls them in the same order), and
//!    deletes the timer after the call. The timers due are those in state once step 1 is
//!    done (a timer registered in step 1 that is already due fires in this batch);
//! 3. then removes the values whose TTL has passed (`batch time >= last write + ttl`), which
//!    no call has seen since they expired.
//!
//! A vector of a continuous epoch ([`BatchContext::mid_epoch`]) does step 1 only (and step 0
//! in the first run of epoch 0): timers and TTL expiries wait for the epoch's last run, without
//! rows, so an epoch does what a micro-batch over its rows does.
//!
//! Neither step scans the state: the operator keeps, in memory beside the keyed state, every
//! timer by (time, encoded key) — Spark's timer index — and every key holding a value with a
//! TTL by its earliest expiry (Spark's TTL index), so a batch reads only the timers and
//! expiries that are due, and the next processing-time timer is the first entry. Both
//! indexes, the state-row count and the stored bytes are kept up to date per call (from the
//! key's row before and after it) and rebuilt from the rows on restore; none is persisted.
//!
//! A key whose variables are all empty and that has no timer is removed from state. The
//! progress counts state rows as Spark's does: `numRowsTotal` a set value, a non-empty list
//! and each map entry one row (timers are not counted); `numRowsUpdated` each value written,
//! list element appended or put, and map entry updated; `numRowsRemoved` each value, list
//! element and map entry cleared or removed, or removed by its TTL (not one overwritten
//! after it expired). The
//! state goes through the checkpoint as one value per key ([`row`]); the state schema is the
//! processor's declarations, made when the operator is created, so a changed processor is
//! refused before the first batch — but for variables `init` deletes
//! ([`StatefulProcessorHandle::delete_if_exists`], Spark's `deleteIfExists`): a recorded
//! layout that holds them besides the declared ones is adopted as the stored row's, their
//! places emptied when the state is restored.

mod processor;
mod row;

pub use processor::{
    ExpiredTimerInfo, KeyHandle, ListState, MapState, StatefulProcessor, StatefulProcessorHandle,
    StatefulProcessorWithInitialState, TimeMode, TimerValues, Ttl, ValueState, VarDecl, VarKind, NO_TIME,
};
pub use row::{row_layout, TwsRow};

pub use crate::ops::group_state::GroupRows;

use row::Slot;

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};

use crate::checkpoint::state::StateMap;
use crate::codec::StateCodec;
use crate::engine::BatchContext;
use crate::error::{Error, Result};
use crate::ops::group_state::batch::BatchGroups;
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

/// What one batch did, beyond the common state metrics (Spark's `customMetrics` names).
#[derive(Clone, Copy, Default, Debug)]
struct BatchCounts {
    timers_registered: u64,
    timers_deleted: u64,
    timers_expired: u64,
    ttl_removed: u64,
}

/// An in-memory index of keys by a time (a timer's, or the earliest TTL expiry), ordered as
/// due entries are processed: by time, then by encoded key (so a replay sees one order).
type TimeIndex<K> = BTreeMap<(i64, Vec<u8>), (u64, K)>;

/// What one key's row counts for in the operator's totals, taken before and after a call.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Footprint {
    rows: u64,
    bytes: u64,
    expiry: i64,
}

impl Footprint {
    const NONE: Footprint = Footprint { rows: 0, bytes: 0, expiry: row::NEVER };

    fn of(row: &TwsRow, ttl: bool) -> Footprint {
        Footprint {
            rows: row.state_rows(),
            bytes: row.encoded_len(),
            expiry: if ttl { row.next_expiry() } else { row::NEVER },
        }
    }
}

/// The state of a `transform_with_state`: the processor `P`, its declarations, and per key
/// `K` its state variables and timers; the batch's input rows `R` (`P::Input`) grouped by key.
///
/// The struct and its [`StatefulOperator`] impl need no `P: StatefulProcessor`; only
/// [`TransformWithStateOp::new`] and [`TransformWithStateOp::run`] do. Generated code spans
/// both calls on the processor expression, so a value that is no processor is one error
/// there (rustc reports an unmet bound once per span).
pub struct TransformWithStateOp<K, R, P> {
    processor: P,
    /// `P::close` (the struct is unbounded, so its `Drop` cannot name it).
    close: fn(&mut P),
    decls: Vec<VarDecl>,
    /// The stored row's variables: the declared ones, and after a restart from a checkpoint
    /// that recorded variables `init` deleted (`delete_if_exists`), the recorded layout with
    /// those kept as empty places ([`StatefulOperator::adopt_recorded_schema`]).
    stored: Vec<VarDecl>,
    /// Each declared variable's place in `stored`.
    slot_of: Vec<usize>,
    /// The names `init` deleted.
    deleted: Vec<String>,
    /// The places in `stored` of deleted variables (emptied on restore).
    dropped: Vec<usize>,
    /// Misuses in `init` (a name declared twice, a bad TTL): the first batch fails with them.
    init_errors: Vec<String>,
    time_mode: TimeMode,
    has_ttl: bool,
    state: KeyedState<K, TwsRow>,
    /// The batch's rows by key.
    groups: BatchGroups<K, R>,
    /// Every timer in state.
    timers: TimeIndex<K>,
    /// Every key holding a value with a TTL, by its earliest expiry.
    expiries: TimeIndex<K>,
    /// Spark's state rows in state (`numRowsTotal`), and the rows' encoded bytes.
    rows_total: u64,
    stored_bytes: u64,
    /// Timer changes of the running call (reused between calls).
    timer_log: Vec<(i64, bool)>,
    /// The calls' encoding buffer ([`KeyHandle`]'s `scratch`).
    scratch: Vec<u8>,
    /// One millisecond before the earliest processing-time timer in state: the engine runs a
    /// no-data batch once its clock is past it.
    next_timer: Option<i64>,
    counts: BatchCounts,
    /// The running batch's processing time (ms).
    batch_ms: i64,
    /// Whether the running batch is a vector of a continuous epoch (no timers, no TTL
    /// expiries: the epoch's end runs them).
    mid_epoch: bool,
    /// Whether this instance applied the initial state already (a continuous epoch 0 runs
    /// batch 0 once per vector; only its first run applies it).
    initial_applied: bool,
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
            stored: handle.decls.clone(),
            slot_of: (0..handle.decls.len()).collect(),
            decls: handle.decls,
            deleted: handle.deleted,
            dropped: Vec::new(),
            init_errors: handle.errors,
            time_mode,
            has_ttl,
            state: KeyedState::new(partitions),
            groups: BatchGroups::default(),
            timers: BTreeMap::new(),
            expiries: BTreeMap::new(),
            rows_total: 0,
            stored_bytes: 0,
            timer_log: Vec::new(),
            scratch: Vec::new(),
            next_timer: None,
            counts: BatchCounts::default(),
            batch_ms: 0,
            mid_epoch: false,
            initial_applied: false,
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

impl<K, R, P> TransformWithStateOp<K, R, P>
where
    K: GroupKey<Owned = K> + Clone + Eq + StateCodec + std::fmt::Debug,
{
    /// Runs the batch (see the module docs): `key_of` gives the processor's view of a key
    /// (the column for one grouping key), `emit` takes each output record.
    pub fn run(
        &mut self,
        ctx: &BatchContext,
        key_of: impl Fn(&K) -> &P::Key,
        mut emit: impl FnMut(P::Output),
    ) -> Result<()>
    where
        P: StatefulProcessor<Input = R>,
    {
        let (timer_values, watermark_ms) = self.start_run(ctx)?;
        self.run_rest(&timer_values, watermark_ms, &key_of, &mut emit)
    }

    /// [`TransformWithStateOp::run`] with an initial state per key (the DSL's
    /// `initial_state = ..`, Spark's `initialState`): in batch 0 only, `initial` is called
    /// and, before any input row, [`StatefulProcessorWithInitialState::handle_initial_state`]
    /// once per key (first-seen order) with its entries in their order (a key may have
    /// several, as Spark 4 allows); in any other batch `initial` is never called.
    pub fn run_with_initial_state<I>(
        &mut self,
        ctx: &BatchContext,
        key_of: impl Fn(&K) -> &P::Key,
        mut emit: impl FnMut(P::Output),
        initial: impl FnOnce() -> I,
    ) -> Result<()>
    where
        P: StatefulProcessorWithInitialState<Input = R>,
        I: IntoIterator<Item = (K, P::InitialState)>,
    {
        let (timer_values, watermark_ms) = self.start_run(ctx)?;
        if ctx.batch_id == 0 && !self.initial_applied {
            self.initial_applied = true;
            let mut by_key: BatchGroups<K, P::InitialState> = BatchGroups::default();
            for (key, state) in initial() {
                by_key.push(key, state);
            }
            for (hash, key, states) in by_key.drain() {
                let tv = &timer_values;
                self.call(hash, key, watermark_ms, |p, k, h| p.handle_initial_state(key_of(k), states, tv, h))?;
            }
        }
        self.run_rest(&timer_values, watermark_ms, &key_of, &mut emit)
    }

    /// The start of a batch: `init`'s misuses fail it; the batch's times.
    fn start_run(&mut self, ctx: &BatchContext) -> Result<(TimerValues, Option<i64>)> {
        if !self.init_errors.is_empty() {
            return Err(Error::User(format!("the stateful processor's `init`: {}", self.init_errors.join("; "))));
        }
        let batch_ms = ctx.batch_timestamp_ms;
        self.batch_ms = batch_ms;
        self.mid_epoch = ctx.mid_epoch;
        let watermark_ms = ctx.watermark_for_eviction.map(|w| w.div_euclid(1000));
        let timer_values = match self.time_mode {
            TimeMode::None => TimerValues::new(NO_TIME, NO_TIME),
            _ => TimerValues::new(batch_ms, watermark_ms.unwrap_or(NO_TIME)),
        };
        Ok((timer_values, watermark_ms))
    }

    /// The batch's calls with rows, then its timers and TTL expiries (module docs, 1-3).
    fn run_rest(
        &mut self,
        timer_values: &TimerValues,
        watermark_ms: Option<i64>,
        key_of: &impl Fn(&K) -> &P::Key,
        emit: &mut impl FnMut(P::Output),
    ) -> Result<()>
    where
        P: StatefulProcessor<Input = R>,
    {
        let batch_ms = self.batch_ms;
        // Taken out for the calls and put back drained: its buffers keep their capacity.
        let mut groups = std::mem::take(&mut self.groups);
        let mut drain = groups.drain_rows();
        while let Some((hash, key, rows)) = drain.next() {
            self.call(hash, key, watermark_ms, |p, k, h| {
                for out in p.handle_input_rows(key_of(k), rows, timer_values, h) {
                    emit(out);
                }
            })?;
        }
        drop(drain);
        self.groups = groups;
        // The first timer time not yet due: Spark 4.3 fires a timer at or before the batch's
        // processing time or watermark, so one set at exactly that time fires in the batch
        // that sets it (golden cases `tws_timer_at_batch_time`, `tws_timer_at_watermark`).
        let threshold = match self.time_mode {
            _ if self.mid_epoch => None,
            TimeMode::None => None,
            TimeMode::ProcessingTime => Some(batch_ms.saturating_add(1)),
            TimeMode::EventTime => watermark_ms.map(|w| w.saturating_add(1)),
        };
        if let Some(threshold) = threshold {
            // The timers due once step 1 is done, in (time, encoded key) order; a call may
            // delete a later one of its key (then skipped) or register new ones (next batch).
            let due: Vec<(i64, u64, K)> = self
                .timers
                .range(..(threshold, Vec::new()))
                .map(|((t, _), (hash, key))| (*t, *hash, key.clone()))
                .collect();
            for (t, hash, key) in due {
                self.counts.timers_expired += 1;
                self.call(hash, key, watermark_ms, |p, k, h| {
                    // An earlier call of this key may have deleted it.
                    if h.row.timers.binary_search(&t).is_ok() {
                        let info = ExpiredTimerInfo::new(t);
                        for out in p.handle_expired_timer(key_of(k), timer_values, info, h) {
                            emit(out);
                        }
                    }
                    if let Ok(at) = h.row.timers.binary_search(&t) {
                        h.row.timers.remove(at);
                        h.timer_log.push((t, false));
                        h.changed = true;
                    }
                })?;
            }
        }
        if self.has_ttl && !self.mid_epoch {
            self.expire_ttl(batch_ms);
        }
        self.end_batch();
        Ok(())
    }

    /// One call of the processor for `key` (`body`: the rows, a timer or an initial state),
    /// on its row in place, then the write-back: a row left empty is removed, a changed one
    /// recorded for the checkpoint, and the indexes and totals follow the row's change.
    fn call(
        &mut self,
        hash: u64,
        key: K,
        watermark_ms: Option<i64>,
        body: impl FnOnce(&mut P, &K, &mut KeyHandle<'_>),
    ) -> Result<()> {
        let has_ttl = self.has_ttl;
        let mut fresh = None;
        let stored = self.state.find_mut(hash, &key);
        let existed = stored.is_some();
        let row: &mut TwsRow = match stored {
            Some(row) => row,
            None => fresh.insert(TwsRow::new(&self.stored)),
        };
        let before = if existed { Footprint::of(row, has_ttl) } else { Footprint::NONE };
        self.timer_log.clear();
        let mut h = KeyHandle {
            row,
            decls: &self.decls,
            slots: &self.slot_of,
            time_mode: self.time_mode,
            batch_ms: self.batch_ms,
            watermark_ms,
            changed: false,
            timers_registered: 0,
            timers_deleted: 0,
            rows_updated: 0,
            rows_removed: 0,
            timer_log: &mut self.timer_log,
            scratch: &mut self.scratch,
            misuse: RefCell::new(None),
        };
        let processor = &mut self.processor;
        let outcome = catch_unwind(AssertUnwindSafe(|| body(processor, &key, &mut h)));
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
        if !changed && existed {
            return Ok(());
        }
        let empty = h.row.is_empty();
        let after = if empty { Footprint::NONE } else { Footprint::of(h.row, has_ttl) };
        self.account(before, after);
        if !self.timer_log.is_empty() || before.expiry != after.expiry {
            let encoded = crate::codec::to_bytes(&key);
            for &(t, added) in &self.timer_log {
                if added {
                    self.timers.insert((t, encoded.clone()), (hash, key.clone()));
                } else {
                    self.timers.remove(&(t, encoded.clone()));
                }
            }
            refile(&mut self.expiries, before.expiry, after.expiry, encoded, hash, &key);
        }
        match (existed, empty) {
            (true, true) => {
                self.state.remove(hash, &key);
            }
            (true, false) => self.state.touch(&key),
            (false, true) => {}
            (false, false) => {
                if let Some(row) = fresh {
                    self.state.put(hash, key, row, true);
                }
            }
        }
        Ok(())
    }

    /// The totals after a row went from `before` to `after`.
    fn account(&mut self, before: Footprint, after: Footprint) {
        self.rows_total = self.rows_total - before.rows + after.rows;
        self.stored_bytes = self.stored_bytes - before.bytes + after.bytes;
    }

    /// Removes every value whose TTL passed at `batch_ms` (`batch_ms >= expiry`): the keys
    /// filed in the TTL index at or before it, each expired and filed again by its next
    /// expiry.
    fn expire_ttl(&mut self, batch_ms: i64) {
        let due: Vec<(i64, Vec<u8>, u64, K)> = self
            .expiries
            .iter()
            .take_while(|((t, _), _)| *t <= batch_ms)
            .map(|((t, encoded), (hash, key))| (*t, encoded.clone(), *hash, key.clone()))
            .collect();
        for (t, encoded, hash, key) in due {
            self.expiries.remove(&(t, encoded.clone()));
            let Some(row) = self.state.find_mut(hash, &key) else { continue };
            let before = Footprint::of(row, true);
            let removed = row.vars.iter_mut().map(|s| s.expire(batch_ms)).sum::<u64>();
            let empty = row.is_empty();
            let after = if empty { Footprint::NONE } else { Footprint::of(row, true) };
            self.counts.ttl_removed += removed;
            self.metrics.num_rows_removed += removed;
            self.account(before, after);
            if after.expiry != row::NEVER {
                self.expiries.insert((after.expiry, encoded), (hash, key.clone()));
            }
            if empty {
                self.state.remove(hash, &key);
            } else if removed > 0 {
                self.state.touch(&key);
            }
        }
    }

    /// Rebuilds the indexes and totals from the rows (after a restore).
    fn reindex(&mut self) {
        self.timers.clear();
        self.expiries.clear();
        self.rows_total = 0;
        self.stored_bytes = 0;
        for e in self.state.iter() {
            let f = Footprint::of(&e.value, self.has_ttl);
            self.rows_total += f.rows;
            self.stored_bytes += f.bytes;
            if e.value.timers.is_empty() && f.expiry == row::NEVER {
                continue;
            }
            let encoded = crate::codec::to_bytes(&e.key);
            let hash = state_hash(&e.key);
            for &t in &e.value.timers {
                self.timers.insert((t, encoded.clone()), (hash, e.key.clone()));
            }
            if f.expiry != row::NEVER {
                self.expiries.insert((f.expiry, encoded), (hash, e.key.clone()));
            }
        }
    }

    fn end_batch(&mut self) {
        let m = &mut self.metrics;
        m.num_rows_total = self.rows_total;
        m.memory_used_bytes = self.state.estimated_bytes() + self.stored_bytes;
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
        // The engine runs a no-data batch once its clock is past the reported time; a timer is
        // due at its time, so it is reported one millisecond early.
        self.next_timer = match self.time_mode {
            TimeMode::ProcessingTime => self.timers.first_key_value().map(|((t, _), _)| t.saturating_sub(1)),
            _ => None,
        };
    }
}

/// Moves `key` in a TTL index from its old earliest expiry to its new one.
fn refile<K: Clone>(index: &mut TimeIndex<K>, old: i64, new: i64, encoded: Vec<u8>, hash: u64, key: &K) {
    if old == new {
        return;
    }
    if old != row::NEVER {
        index.remove(&(old, encoded.clone()));
    }
    if new != row::NEVER {
        index.insert((new, encoded), (hash, key.clone()));
    }
}

impl<K, R, P> Drop for TransformWithStateOp<K, R, P> {
    /// The query stopped (or failed): the processor's `close`.
    fn drop(&mut self) {
        (self.close)(&mut self.processor);
    }
}

impl<K, R, P> StatefulOperator for TransformWithStateOp<K, R, P>
where
    K: GroupKey<Owned = K> + Clone + Eq + Send + StateCodec + std::fmt::Debug,
    R: Send,
    P: Send,
{
    fn state_schema(&self) -> StateSchema {
        StateSchema {
            operator: OPERATOR_NAME.to_string(),
            key_layout: crate::codec::layout_of::<K>(),
            value_layout: row_layout(&self.stored),
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
        let n = self.stored.len();
        if let Some(bad) = self.state.iter().find(|e| e.value.vars.len() != n) {
            return Err(Error::Checkpoint(format!(
                "a stored transform_with_state row holds {} state variables, the processor declares {n}",
                bad.value.vars.len()
            )));
        }
        self.drop_deleted();
        self.reindex();
        self.end_batch();
        Ok(())
    }
    fn next_processing_timeout_ms(&self) -> Option<i64> {
        self.next_timer
    }
    /// Accepts a recorded layout whose variables are the declared ones (same names and
    /// types, in any order) and ones `init` deleted with `delete_if_exists`: the stored row
    /// keeps the recorded layout, the deleted variables' places emptied on restore.
    fn adopt_recorded_schema(&mut self, recorded: &StateSchema) -> bool {
        let now = self.state_schema();
        if recorded.operator != now.operator
            || recorded.key_layout != now.key_layout
            || recorded.partitions != now.partitions
            || self.deleted.is_empty()
        {
            return false;
        }
        let Some(vars) = row::parse_row_layout(&recorded.value_layout) else { return false };
        let mut stored = Vec::with_capacity(vars.len());
        let mut slot_of = vec![usize::MAX; self.decls.len()];
        let mut dropped = Vec::new();
        for (at, (name, layout)) in vars.into_iter().enumerate() {
            match self.decls.iter().position(|d| d.name == name) {
                Some(id) if self.decls[id].layout == layout => {
                    slot_of[id] = at;
                    stored.push(self.decls[id].clone());
                }
                Some(_) => return false,
                None if self.deleted.contains(&name) => {
                    let Some(kind) = row::kind_of_layout(&layout) else { return false };
                    dropped.push(at);
                    stored.push(VarDecl { name, kind, layout, ttl_ms: None });
                }
                None => return false,
            }
        }
        // A declared variable the checkpoint does not have is a change this cannot absorb.
        if slot_of.contains(&usize::MAX) {
            return false;
        }
        self.stored = stored;
        self.slot_of = slot_of;
        self.dropped = dropped;
        true
    }
}

impl<K, R, P> TransformWithStateOp<K, R, P>
where
    K: GroupKey<Owned = K> + Clone + Eq + StateCodec + std::fmt::Debug,
{
    /// Empties the deleted variables' places in every restored row (before the indexes are
    /// built); a row left empty is removed. The rows changed are recorded, so the next
    /// checkpoint stores them without the deleted values.
    fn drop_deleted(&mut self) {
        if self.dropped.is_empty() {
            return;
        }
        let dropped = &self.dropped;
        let touched: Vec<K> = self
            .state
            .iter()
            .filter(|e| dropped.iter().any(|&at| !e.value.vars[at].is_empty()))
            .map(|e| e.key.clone())
            .collect();
        for key in touched {
            let hash = state_hash(&key);
            let Some(row) = self.state.find_mut(hash, &key) else { continue };
            for &at in &self.dropped {
                row.vars[at] = Slot::empty(row::slot_kind(&row.vars[at]));
            }
            if row.is_empty() {
                self.state.remove(hash, &key);
            } else {
                self.state.touch(&key);
            }
        }
    }
}

#[cfg(test)]
mod tests;
