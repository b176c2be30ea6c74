//! Hash aggregation state.
//!
//! Groups are kept in memory in 2^[`SUB_TABLE_BITS`] sub-tables, by bits of the key's foldhash
//! [`state_hash`] (never persisted); each sub-table's groups are in two disjoint tables: the
//! groups the last batch changed and the others. The shuffle partitions (their count is part of
//! the query's checkpoint) are where the checkpoint puts a key, by the persisted partition hash
//! ([`crate::partition`]), computed only in [`HashAggState::take_changes`] and
//! [`HashAggState::restore`]. A batch starts by folding the smaller of a sub-table's two tables
//! into the larger (after the watermark evicted what it could), then aggregates its rows:
//!
//! - staged ([`HashAggState::update_staged`], what input pipelines of row operators use): the
//!   row loop pushes each row's key and aggregate inputs into a [`Stage`]. On one task over a
//!   state that fits in cache ([`STAGE_MIN_BYTES`]) they are probed at once; otherwise they are
//!   staged per sub-table (per task on several threads) and each sub-table's rows are then
//!   probed into it, one sub-table at a time, the sub-tables in parallel: radix partitioning,
//!   so the probes of a state larger than the cache hit a sub-table that sits in it, and a
//!   parallel batch needs no partial tables and no merge;
//! - row by row ([`AggPartials::entry`]): on one thread (small batches, a one-thread pool,
//!   pipelines with a dedup inside), straight into an empty "changed" table per sub-table; a
//!   group the rows meet for the first time moves there from the state with its accumulators.
//!   Above [`PARALLEL_MIN_ROWS`], as Spark does: each rayon task pre-aggregates its chunk of
//!   rows into private per-sub-table tables (partial aggregation), then every sub-table
//!   combines its tasks' tables and moves the state's groups they touched into the result, in
//!   parallel (final aggregation).
//!
//! Either way a group's rows are applied in row order, no marker is kept per group (the changed
//! tables are update mode's output, the checkpoint's delta and `rows_updated`), and generated
//! code supplies the per-row loop as a closure: this file knows no query.

use std::mem::size_of;
use std::sync::Mutex;

use hashbrown::HashTable;
use rayon::prelude::*;

use crate::agg::Merge;
use crate::ops::keyed::state_hash;
use crate::ops::StateOperatorProgress;
use crate::value::{hash_key, GroupKey};

/// Batches with fewer rows are aggregated on the calling thread, in one task.
/// Below this, splitting costs more than it saves (rayon task + a merge pass per partition);
/// 64 Ki rows is about 1 ms of per-row work on one core in `benches/` (word count).
pub const PARALLEL_MIN_ROWS: usize = 1 << 16;

/// Rows per parallel work unit (same measurement as [`PARALLEL_MIN_ROWS`]).
pub const CHUNK_ROWS: usize = 1 << 16;

/// One group: its key and its accumulators.
///
/// Neither the key's hash nor a "changed in batch N" marker is stored: a table resize or a
/// merge rehashes the key, and the batch's own tables say which groups it changed. For the
/// numeric and window keys of event-time aggregations that is cheaper than the bytes per group
/// (the windowed-count benchmark's state is 24 B per group instead of 32).
#[derive(Clone, Debug)]
pub struct Entry<K, A> {
    /// The owned key.
    pub key: K,
    /// The accumulators.
    pub acc: A,
}

type Table<K, A> = HashTable<Entry<K, A>>;

use crate::partition::partition_of;

/// Bits of a group's in-memory sub-table: 2^8 tables. The windowed-count benchmark's state
/// peaks at ~800 K groups of 24 B (`benches/`, `windowed`), ~3 K groups (~100 KB with the
/// table's slack) per sub-table, so the sub-table a staged batch's rows are probed into stays
/// in this machine's 2 MiB L2; the 256 staging streams are 16 KiB of open cache lines (L1).
pub const SUB_TABLE_BITS: u32 = 8;

/// Number of in-memory sub-tables.
const SUB_TABLES: usize = 1 << SUB_TABLE_BITS;

/// Below this many bytes of groups (half this machine's 2 MiB L2) a one-task batch probes its
/// state row by row: the tables stay in cache without staging, and staging would only add a
/// pass.
pub const STAGE_MIN_BYTES: usize = 1 << 20;

/// The sub-table of a key's [`state_hash`]: the [`SUB_TABLE_BITS`] bits below the top 7, which
/// hashbrown keeps as each slot's tag (taking the tag's bits would leave a sub-table's slots
/// with few distinct tags) and far above the bits that pick a slot.
#[inline(always)]
fn sub_of(hash: u64) -> usize {
    (hash >> (57 - SUB_TABLE_BITS)) as usize & (SUB_TABLES - 1)
}

/// The rehash of an entry when its table grows (foldhash: cheap).
#[inline(always)]
fn rehash<K: GroupKey, A>(e: &Entry<K, A>) -> u64 {
    state_hash(&e.key)
}

/// One task's batch tables (one per shuffle partition) that the generated row loop aggregates
/// into, and, for the single task of a batch aggregated on one thread, the state's tables.
pub struct AggPartials<K, A> {
    parts: Vec<Table<K, A>>,
    /// The state, when this task is the batch's only one (empty otherwise): a group met for the
    /// first time in the batch moves from here into `parts` with its accumulators, so `parts`
    /// ends up holding exactly the groups the batch changed, already merged.
    state: Vec<Table<K, A>>,
    /// Distinct keys of this batch dropped as later than the watermark (Spark counts
    /// `numRowsDroppedByWatermark` per aggregated key of the batch).
    late: HashTable<(u64, K)>,
}

impl<K, A> AggPartials<K, A> {
    fn from_tables(parts: Vec<Table<K, A>>, state: Vec<Table<K, A>>) -> Self {
        AggPartials { parts, state, late: HashTable::new() }
    }

    /// Records that `key`'s rows in this batch are dropped as late (its event time is at or
    /// behind the watermark); they do not touch the state.
    #[cold]
    pub fn late<Q>(&mut self, key: Q)
    where
        Q: GroupKey<Owned = K>,
    {
        note_late(&mut self.late, key)
    }

    /// The accumulators of `key`'s group, created with `init` on first sight. `key` may borrow
    /// (`(&str,)`): it is copied into an owned key only when the group is new.
    #[inline(always)]
    pub fn entry<Q>(&mut self, key: Q, init: impl FnOnce() -> A) -> &mut A
    where
        Q: GroupKey<Owned = K>,
        K: GroupKey,
        A: Merge,
    {
        let hash = state_hash(&key);
        let p = sub_of(hash);
        // The hit path is a plain probe (`find_entry`, inlined); `entry` would reserve a slot
        // first and probe through a `dyn` callback.
        match self.parts[p].find_entry(hash, |e| key.eq_owned(&e.key)) {
            Ok(e) => &mut e.into_mut().acc,
            Err(absent) => insert_new(absent.into_table(), self.state.get_mut(p), hash, key, init),
        }
    }
}

/// A group met for the first time in this batch table: moved from the state if it is there
/// (and told a new batch begins, [`Merge::begin_batch`]), new otherwise. Out of line, so the
/// hit path stays small enough to inline into the generated loop.
#[cold]
#[inline(never)]
fn insert_new<'t, Q, K, A>(
    table: &'t mut Table<K, A>,
    state: Option<&mut Table<K, A>>,
    hash: u64,
    key: Q,
    init: impl FnOnce() -> A,
) -> &'t mut A
where
    Q: GroupKey<Owned = K>,
    K: GroupKey,
    A: Merge,
{
    let old = state.and_then(|s| s.find_entry(hash, |e| key.eq_owned(&e.key)).ok()).map(|o| {
        let mut e = o.remove().0;
        e.acc.begin_batch();
        e
    });
    let e = old.unwrap_or_else(|| Entry { key: key.to_owned_key(), acc: init() });
    &mut table.insert_unique(hash, e, rehash).into_mut().acc
}

/// Records a late key once (by its [`state_hash`]).
#[cold]
fn note_late<Q, K>(late: &mut HashTable<(u64, K)>, key: Q)
where
    Q: GroupKey<Owned = K>,
{
    let hash = state_hash(&key);
    if late.find(hash, |(h, k)| *h == hash && key.eq_owned(k)).is_none() {
        late.insert_unique(hash, (hash, key.to_owned_key()), |(h, _)| *h);
    }
}

/// The accumulators of `key`'s group in a sub-table's batch table `changed`, moved over from
/// the state's sub-table `state` or created with `init` on first sight.
#[inline(always)]
fn probe<'t, Q, K, A>(
    changed: &'t mut Table<K, A>,
    state: &mut Table<K, A>,
    hash: u64,
    key: Q,
    init: &impl Fn() -> A,
) -> &'t mut A
where
    Q: GroupKey<Owned = K>,
    K: GroupKey,
    A: Merge,
{
    match changed.find_entry(hash, |e| key.eq_owned(&e.key)) {
        Ok(e) => &mut e.into_mut().acc,
        Err(absent) => insert_new(absent.into_table(), Some(state), hash, key, init),
    }
}

/// A row staged for its sub-table: the key's [`state_hash`], the key (borrowing the input
/// where it can) and the values its accumulators are updated with.
type StagedRow<Q, I> = (u64, Q, I);

/// One sub-table's staged rows: each task's, in task order.
type SubTableRows<Q, I> = Vec<Vec<StagedRow<Q, I>>>;

/// Where a batch's rows go as the generated row loop produces them ([`HashAggState::update_staged`]):
/// either straight into the tables (one task over a state that fits in cache), or staged per
/// sub-table, to be probed sub-table by sub-table once the batch's rows are all staged, so that
/// the probes of a state larger than the cache hit a sub-table that sits in it (radix
/// partitioning). Either way a group's rows are applied in row order.
pub struct Stage<'s, K, A, Q, I, N, P> {
    mode: StageMode<K, A, Q, I>,
    init: &'s N,
    apply: &'s P,
    /// Distinct keys of the rows staged here dropped as late.
    late: HashTable<(u64, K)>,
}

enum StageMode<K, A, Q, I> {
    /// Probed at once: a task's batch tables (over the state, for a batch's only task).
    Direct(AggPartials<K, A>),
    /// Staged: each sub-table's rows, in row order.
    Staged(Vec<Vec<StagedRow<Q, I>>>),
}

impl<'s, K, A, Q, I, N, P> Stage<'s, K, A, Q, I, N, P>
where
    Q: GroupKey<Owned = K>,
    K: GroupKey,
    A: Merge,
    N: Fn() -> A,
    P: Fn(&mut A, I),
{
    /// A stage of rows for `rows` rows (their staging vectors sized for them).
    fn staged(init: &'s N, apply: &'s P, rows: usize) -> Self {
        // A sub-table's share of the rows, with room for the spread of a uniform hash.
        let per = rows / SUB_TABLES + rows / (4 * SUB_TABLES) + 16;
        let bufs = (0..SUB_TABLES).map(|_| Vec::with_capacity(per)).collect();
        Stage { mode: StageMode::Staged(bufs), init, apply, late: HashTable::new() }
    }

    /// The row of `key` with accumulator inputs `input` (from the generated row loop).
    #[inline(always)]
    pub fn push(&mut self, key: Q, input: I) {
        match &mut self.mode {
            StageMode::Direct(tables) => {
                let init = self.init;
                (self.apply)(tables.entry(key, init), input);
            }
            StageMode::Staged(bufs) => {
                let hash = state_hash(&key);
                bufs[sub_of(hash)].push((hash, key, input))
            }
        }
    }

    /// A stage that probes at once into `tables`.
    fn direct(init: &'s N, apply: &'s P, tables: AggPartials<K, A>) -> Self {
        Stage { mode: StageMode::Direct(tables), init, apply, late: HashTable::new() }
    }

    /// Records that `key`'s rows in this batch are dropped as late (its event time is at or
    /// behind the watermark); they do not touch the state.
    #[cold]
    pub fn late(&mut self, key: Q) {
        note_late(&mut self.late, key)
    }
}

/// Probes a sub-table's staged rows (each task's, in task order: row order) into its batch
/// table, moving groups over from its state table.
fn apply_staged<Q, I, K, A>(
    changed: &mut Table<K, A>,
    state: &mut Table<K, A>,
    rows: SubTableRows<Q, I>,
    init: &impl Fn() -> A,
    apply: &impl Fn(&mut A, I),
) where
    Q: GroupKey<Owned = K>,
    K: GroupKey,
    A: Merge,
{
    for task in rows {
        for (hash, key, input) in task {
            apply(probe(changed, state, hash, key, init), input);
        }
    }
}

/// The state of one aggregation: groups by shuffle partition.
///
/// Between batches each partition's groups sit in two disjoint tables: `changed`, the groups the
/// last batch created or changed, with their merged accumulators (update mode's output, the
/// checkpoint's delta, `rows_updated`), and `parts`, the others. The next batch first folds the
/// smaller table into the larger, after the watermark has evicted what it could from both.
pub struct HashAggState<K, A> {
    /// Per in-memory sub-table ([`sub_of`] of the key's [`state_hash`]): the groups the last
    /// batch did not change.
    parts: Vec<Table<K, A>>,
    /// Per sub-table: the groups the last batch changed.
    changed: Vec<Table<K, A>>,
    /// The number of shuffle partitions: where [`HashAggState::take_changes`] puts a key
    /// (by its persisted partition hash); the in-memory sub-tables do not depend on it.
    shuffle: usize,
    /// Groups held at the end of the last batch's aggregation, before eviction: the size the
    /// next batch's tables are expected to reach (whether to stage its probes).
    last_groups: usize,
    /// Per sub-table: the groups the last batch changed, before eviction; the next batch's
    /// batch table is reserved for as many, so it does not grow (and rehash) batch after batch
    /// when the table that kept the capacity became the state's.
    last_changed: Vec<usize>,
    /// Distinct keys of the last batch dropped as late.
    late: HashTable<(u64, K)>,
    /// Empty tables that keep their capacity for the next batch's task tables (a table that
    /// grows from nothing every batch rehashes each group about twice and page-faults its
    /// memory in).
    spare: Mutex<Vec<Table<K, A>>>,
    metrics: StateOperatorProgress,
    /// Keys evicted since the last checkpoint, with their hashes (deletes for the state store);
    /// recorded only while `tracking` (a query with a checkpoint).
    removed: Vec<(u64, K)>,
    tracking: bool,
}

impl<K, A> HashAggState<K, A> {
    /// Empty state with `partitions` shuffle partitions.
    pub fn new(partitions: usize) -> Self {
        HashAggState {
            parts: (0..SUB_TABLES).map(|_| HashTable::new()).collect(),
            changed: (0..SUB_TABLES).map(|_| HashTable::new()).collect(),
            shuffle: partitions.max(1),
            last_groups: 0,
            last_changed: vec![0; SUB_TABLES],
            late: HashTable::new(),
            spare: Mutex::new(Vec::new()),
            metrics: StateOperatorProgress { operator_name: "stateStoreSave".into(), ..Default::default() },
            removed: Vec::new(),
            tracking: false,
        }
    }

    /// Whether to record changes for [`HashAggState::take_changes`] (a checkpointed query).
    pub fn set_tracking(&mut self, on: bool) {
        self.tracking = on;
        self.removed.clear();
    }

    /// Every group (complete mode), sub-table by sub-table.
    pub fn all(&self) -> impl Iterator<Item = &Entry<K, A>> {
        self.parts.iter().zip(&self.changed).flat_map(|(s, c)| s.iter().chain(c.iter()))
    }

    /// The groups changed by the last [`HashAggState::update`] (update mode), with their
    /// merged accumulators; groups evicted since are left out.
    pub fn updated(&self) -> impl Iterator<Item = &Entry<K, A>> {
        self.changed.iter().flat_map(|t| t.iter())
    }

    /// Number of groups.
    pub fn len(&self) -> usize {
        self.parts.iter().chain(&self.changed).map(HashTable::len).sum()
    }

    /// True when there is no group.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Number of shuffle partitions.
    pub fn partitions(&self) -> usize {
        self.shuffle
    }

    /// The operator's metrics after the last batch.
    pub fn metrics(&self) -> StateOperatorProgress {
        self.metrics.clone()
    }

    /// The accumulators of `key`'s group as the state holds them between batches (after the
    /// last batch was folded in), or `None` when the state has no such group. `hash` is the
    /// key's [`state_hash`]. A stream-stream join after this aggregation reads a group's
    /// running `max`/`min` here (`StreamJoinState`'s pruning rule).
    #[inline]
    pub fn get<Q>(&self, hash: u64, key: &Q) -> Option<&A>
    where
        Q: GroupKey<Owned = K>,
    {
        let s = sub_of(hash);
        self.changed[s]
            .find(hash, |e| key.eq_owned(&e.key))
            .or_else(|| self.parts[s].find(hash, |e| key.eq_owned(&e.key)))
            .map(|e| &e.acc)
    }

    /// Table slots times entry size (heap data of keys such as `String`s is not counted).
    fn estimated_bytes(&self) -> u64 {
        self.parts.iter().chain(&self.changed).map(|t| (t.capacity() * (size_of::<Entry<K, A>>() + 1)) as u64).sum()
    }

    /// A parallel task's batch tables, from the spare ones where there are any.
    fn new_partials(spare: &Mutex<Vec<Table<K, A>>>, n: usize) -> AggPartials<K, A> {
        let mut pool = spare.lock().unwrap_or_else(|e| e.into_inner());
        let keep = pool.len().saturating_sub(n);
        let mut parts: Vec<Table<K, A>> = pool.drain(keep..).collect();
        drop(pool);
        parts.resize_with(n, HashTable::new);
        AggPartials::from_tables(parts, Vec::new())
    }
}

/// Folds the partial result `e` into `table`: merged into its group if there is one, inserted
/// otherwise. `earlier` says that `e` covers earlier rows than the table: partial results are
/// merged in row order either way (for `min`/`max` ties and floating-point sums).
#[inline]
fn merge_entry<K, A>(table: &mut Table<K, A>, hash: u64, e: Entry<K, A>, earlier: bool)
where
    K: Eq + GroupKey<Owned = K>,
    A: Merge,
{
    match table.find_entry(hash, |s| s.key == e.key) {
        Ok(mut s) => {
            let s = &mut s.get_mut().acc;
            if earlier {
                let later = std::mem::replace(s, e.acc);
                s.merge(later);
            } else {
                s.merge(e.acc);
            }
        }
        Err(absent) => {
            absent.into_table().insert_unique(hash, e, rehash);
        }
    }
}

/// The final aggregation of one sub-table: combines the tasks' batch tables (in task
/// order) into one, then moves the state's groups that the batch touched into it, merged
/// (state first). Returns the batch's table (the changed groups) and the tables left empty.
fn merge_partition<K, A>(state: &mut Table<K, A>, mut tables: Vec<Table<K, A>>) -> (Table<K, A>, Vec<Table<K, A>>)
where
    K: Eq + GroupKey<Owned = K>,
    A: Merge + Clone,
{
    let mut spare = Vec::new();
    if tables.is_empty() {
        tables.push(HashTable::new());
    }
    // Into the largest task table, merging fewer groups.
    let big = (0..tables.len()).max_by_key(|&i| tables[i].len()).unwrap_or(0);
    let mut batch = tables.swap_remove(big);
    // `swap_remove` moved the last table to `big`; restore task order for the rest.
    if big < tables.len() {
        let last = tables.remove(big);
        tables.push(last);
    }
    for (i, mut t) in tables.into_iter().enumerate() {
        let earlier = i < big;
        for e in t.drain() {
            let hash = state_hash(&e.key);
            merge_entry(&mut batch, hash, e, earlier);
        }
        spare.push(t);
    }
    // Probe from the smaller side.
    if state.len() <= batch.len() {
        state
            .extract_if(|s| match batch.find_mut(state_hash(&s.key), |b| b.key == s.key) {
                Some(b) => {
                    let partial = std::mem::replace(&mut b.acc, s.acc.clone());
                    b.acc.begin_batch();
                    b.acc.merge(partial);
                    true
                }
                None => false,
            })
            .for_each(drop);
    } else {
        for b in batch.iter_mut() {
            if let Ok(o) = state.find_entry(state_hash(&b.key), |s| s.key == b.key) {
                let (old, _) = o.remove();
                let partial = std::mem::replace(&mut b.acc, old.acc);
                b.acc.begin_batch();
                b.acc.merge(partial);
            }
        }
    }
    (batch, spare)
}

impl<K, A> HashAggState<K, A>
where
    K: Clone + Eq + Send + Sync + GroupKey<Owned = K>,
    A: Merge + Clone + Send,
{
    /// Folds each partition's `changed` table into `parts` (the smaller into the larger; they
    /// are disjoint), leaving `changed` empty with its capacity.
    fn consolidate(&mut self) {
        for ((s, c), &expected) in self.parts.iter_mut().zip(&mut self.changed).zip(&self.last_changed) {
            if !c.is_empty() {
                if s.len() < c.len() {
                    std::mem::swap(s, c);
                }
                for e in c.drain() {
                    s.insert_unique(state_hash(&e.key), e, rehash);
                }
            }
            // Empty: allocating is all a reserve costs here.
            c.reserve(expected, rehash);
        }
    }

    /// Aggregates one micro-batch. `units` are the batch's work units (typed column views with a
    /// row range); `rows` is their total row count; `f` runs the generated per-row loop of one
    /// unit into the tables it is given.
    pub fn update<U, F>(&mut self, units: &[U], rows: usize, f: F)
    where
        U: Sync,
        F: Fn(&U, &mut AggPartials<K, A>) + Sync,
    {
        self.consolidate();
        self.late.clear();
        self.fold(units, rows, f);
    }

    /// More rows of the same micro-batch, from another input of a union (after
    /// [`HashAggState::update`] for the first): the groups the batch changed so far stay the
    /// batch's, and this input's rows are folded into them.
    pub fn update_more<U, F>(&mut self, units: &[U], rows: usize, f: F)
    where
        U: Sync,
        F: Fn(&U, &mut AggPartials<K, A>) + Sync,
    {
        self.fold(units, rows, f);
    }

    /// Aggregates one micro-batch through a [`Stage`]: `stage` runs the generated per-row loop
    /// of one unit, which pushes each row's key and accumulator inputs; `init` creates a new
    /// group's accumulators and `apply` updates them with one row's inputs.
    ///
    /// On one task over a state that fits in cache ([`STAGE_MIN_BYTES`]) the rows are probed
    /// as they come. Otherwise they are staged per sub-table (on several threads, per task
    /// over its units), then each sub-table's rows are probed into it, task by task, one
    /// sub-table at a time (on several threads, the sub-tables in parallel): the probes of a
    /// state larger than the cache hit a sub-table that sits in it, and a parallel batch needs
    /// no partial tables and no merge.
    pub fn update_staged<U, Q, I, S, N, P>(&mut self, units: &[U], rows: usize, stage: S, init: N, apply: P)
    where
        U: Sync,
        Q: GroupKey<Owned = K> + Send,
        I: Send,
        S: Fn(&U, &mut Stage<'_, K, A, Q, I, N, P>) + Sync,
        N: Fn() -> A + Sync,
        P: Fn(&mut A, I) + Sync,
    {
        self.consolidate();
        self.late.clear();
        self.fold_staged(units, rows, stage, init, apply);
    }

    /// [`HashAggState::update_staged`] for another input of the same batch (a union): the
    /// groups the batch changed so far stay the batch's, and this input's rows are folded into
    /// them.
    pub fn update_staged_more<U, Q, I, S, N, P>(&mut self, units: &[U], rows: usize, stage: S, init: N, apply: P)
    where
        U: Sync,
        Q: GroupKey<Owned = K> + Send,
        I: Send,
        S: Fn(&U, &mut Stage<'_, K, A, Q, I, N, P>) + Sync,
        N: Fn() -> A + Sync,
        P: Fn(&mut A, I) + Sync,
    {
        self.fold_staged(units, rows, stage, init, apply);
    }

    /// Whether a batch stages its probes: when the groups it is expected to reach (the
    /// state's, or the last batch's before eviction) exceed [`STAGE_MIN_BYTES`]. A first batch
    /// probes directly (its groups are unknown; staging a large batch over a small state
    /// costs more than it saves: the word-count bench's one 10 M-line batch over 10 K words
    /// took 3× the time staged).
    fn stages(&self) -> bool {
        self.last_groups.max(self.len()).saturating_mul(size_of::<Entry<K, A>>()) > STAGE_MIN_BYTES
    }

    fn fold_staged<U, Q, I, S, N, P>(&mut self, units: &[U], rows: usize, stage: S, init: N, apply: P)
    where
        U: Sync,
        Q: GroupKey<Owned = K> + Send,
        I: Send,
        S: Fn(&U, &mut Stage<'_, K, A, Q, I, N, P>) + Sync,
        N: Fn() -> A + Sync,
        P: Fn(&mut A, I) + Sync,
    {
        let parallel = rows >= PARALLEL_MIN_ROWS && units.len() > 1 && rayon::current_num_threads() > 1;
        let staged = self.stages();
        let (init, apply) = (&init, &apply);
        if parallel && !staged {
            // Partial tables per task, merged per sub-table (as `fold`).
            let min_len = (units.len() / rayon::current_num_threads()).max(1);
            let spare = &self.spare;
            let tasks: Vec<Stage<'_, K, A, Q, I, N, P>> = units
                .par_iter()
                .with_min_len(min_len)
                .fold(
                    || Stage::direct(init, apply, Self::new_partials(spare, SUB_TABLES)),
                    |mut st, u| {
                        stage(u, &mut st);
                        st
                    },
                )
                .collect();
            let mut partials = Vec::with_capacity(tasks.len());
            for task in tasks {
                self.merge_late(task.late);
                if let StageMode::Direct(t) = task.mode {
                    partials.push(t);
                }
            }
            self.merge_tasks(partials);
            self.finish_metrics();
            return;
        }
        if !staged {
            let mut st = Stage::direct(init, apply, self.take_tables());
            for u in units {
                stage(u, &mut st);
            }
            self.merge_late(st.late);
            if let StageMode::Direct(t) = st.mode {
                self.put_tables(t);
            }
            self.finish_metrics();
            return;
        }
        let tasks: Vec<Stage<'_, K, A, Q, I, N, P>> = if parallel {
            // One task per thread, as `fold` (and the same floor).
            let min_len = (units.len() / rayon::current_num_threads()).max(1);
            let per_task = rows / rayon::current_num_threads() + 1;
            units
                .par_iter()
                .with_min_len(min_len)
                .fold(
                    || Stage::staged(init, apply, per_task),
                    |mut st, u| {
                        stage(u, &mut st);
                        st
                    },
                )
                .collect()
        } else {
            let mut st = Stage::staged(init, apply, rows);
            for u in units {
                stage(u, &mut st);
            }
            vec![st]
        };
        // Transpose: for each sub-table, every task's rows for it, in task (row) order.
        let mut by_sub: Vec<SubTableRows<Q, I>> = (0..SUB_TABLES).map(|_| Vec::with_capacity(tasks.len())).collect();
        for task in tasks {
            self.merge_late(task.late);
            if let StageMode::Staged(bufs) = task.mode {
                for (s, b) in bufs.into_iter().enumerate() {
                    by_sub[s].push(b);
                }
            }
        }
        if parallel {
            self.changed
                .par_iter_mut()
                .zip(self.parts.par_iter_mut())
                .zip(by_sub.into_par_iter())
                .for_each(|((c, s), rows)| apply_staged(c, s, rows, init, apply));
        } else {
            for ((c, s), rows) in self.changed.iter_mut().zip(&mut self.parts).zip(by_sub) {
                apply_staged(c, s, rows, init, apply);
            }
        }
        self.finish_metrics();
    }

    /// Adds a task's late keys to the batch's.
    fn merge_late(&mut self, late: HashTable<(u64, K)>) {
        for (hash, key) in late {
            if self.late.find(hash, |(h, k)| *h == hash && *k == key).is_none() {
                self.late.insert_unique(hash, (hash, key), |(h, _)| *h);
            }
        }
    }

    fn fold<U, F>(&mut self, units: &[U], rows: usize, f: F)
    where
        U: Sync,
        F: Fn(&U, &mut AggPartials<K, A>) + Sync,
    {
        let n = self.parts.len();
        if rows < PARALLEL_MIN_ROWS || units.len() <= 1 || rayon::current_num_threads() == 1 {
            self.fold_in_order(units, f);
        } else {
            // One task per thread, not per rayon split: merging batch tables costs a pass
            // over their groups, which for many distinct keys exceeds the rows they saved.
            // Floor, not ceiling: rayon splits while `len / 2 >= min_len`, so a ceiling on
            // an odd count (123 units / 2 threads → 62) would never split at all.
            let min_len = (units.len() / rayon::current_num_threads()).max(1);
            let spare = &self.spare;
            let tasks: Vec<AggPartials<K, A>> = units
                .par_iter()
                .with_min_len(min_len)
                .fold(
                    || Self::new_partials(spare, n),
                    |mut p, u| {
                        f(u, &mut p);
                        p
                    },
                )
                .collect();
            self.merge_tasks(tasks);
        }
        self.finish_metrics();
    }

    /// The final aggregation of a parallel batch's tasks' tables (in task order).
    fn merge_tasks(&mut self, tasks: Vec<AggPartials<K, A>>) {
        let n = self.parts.len();
        {
            // Transpose: for each sub-table, the tables every task built for it.
            let mut by_part: Vec<Vec<Table<K, A>>> = (0..n).map(|_| Vec::with_capacity(tasks.len())).collect();
            for mut task in tasks {
                let late = std::mem::take(&mut task.late);
                self.merge_late(late);
                for (i, t) in task.parts.into_iter().enumerate() {
                    by_part[i].push(t);
                }
            }
            let merged: Vec<_> =
                self.parts.par_iter_mut().zip(by_part.into_par_iter()).map(|(s, t)| merge_partition(s, t)).collect();
            let spare = self.spare.get_mut().unwrap_or_else(|e| e.into_inner());
            for (p, (mut batch, tables)) in merged.into_iter().enumerate() {
                // Groups an earlier input of this batch changed (a union) are not in the state
                // `merge_partition` merged from: fold them in, as earlier rows.
                for e in self.changed[p].drain() {
                    let hash = state_hash(&e.key);
                    merge_entry(&mut batch, hash, e, true);
                }
                let empty = std::mem::replace(&mut self.changed[p], batch);
                spare.extend(std::iter::once(empty).chain(tables).filter(|t| t.capacity() > 0));
            }
            // Enough spares for the next batch's tasks; beyond that they only hold memory.
            spare.truncate(n * (rayon::current_num_threads() + 1));
        }
    }

    /// Aggregates one micro-batch on the calling thread, the units in order: for a pipeline
    /// whose row loop holds other state (a deduplication), so `f` may be `FnMut`.
    pub fn update_sequential<U, F>(&mut self, units: &[U], f: F)
    where
        F: FnMut(&U, &mut AggPartials<K, A>),
    {
        self.consolidate();
        self.late.clear();
        self.fold_in_order(units, f);
        self.finish_metrics();
    }

    /// [`HashAggState::update_sequential`] for another input of the same batch (a union).
    pub fn update_sequential_more<U, F>(&mut self, units: &[U], f: F)
    where
        F: FnMut(&U, &mut AggPartials<K, A>),
    {
        self.fold_in_order(units, f);
        self.finish_metrics();
    }

    /// [`HashAggState::update_sequential`] in two halves, for rows that come one by one from
    /// another operator's loop (a stream-stream join folds its pairs as they match, with no
    /// buffer between): the batch's tables, to aggregate into on the calling thread, until
    /// [`HashAggState::end_sequential`] takes them back. Groups move from the state into them
    /// as rows meet them, as in `update_sequential`.
    pub fn begin_sequential(&mut self) -> AggPartials<K, A> {
        self.consolidate();
        self.late.clear();
        self.take_tables()
    }

    /// Ends what [`HashAggState::begin_sequential`] began: the tables back, the batch's late
    /// keys counted, the metrics.
    pub fn end_sequential(&mut self, t: AggPartials<K, A>) {
        self.put_tables(t);
        self.finish_metrics();
    }

    /// One task: its tables are `changed` (empty) over the state, and groups move from the
    /// state into them as the rows meet them. No merge pass.
    fn fold_in_order<U, F>(&mut self, units: &[U], mut f: F)
    where
        F: FnMut(&U, &mut AggPartials<K, A>),
    {
        let mut t = self.take_tables();
        for u in units {
            f(u, &mut t);
        }
        self.put_tables(t);
    }

    /// The batch's tables (`changed`, empty) over the state, for one task to fold into.
    fn take_tables(&mut self) -> AggPartials<K, A> {
        AggPartials::from_tables(std::mem::take(&mut self.changed), std::mem::take(&mut self.parts))
    }

    /// The tables [`HashAggState::take_tables`] lent back, and the task's late keys counted
    /// once each.
    fn put_tables(&mut self, t: AggPartials<K, A>) {
        self.parts = t.state;
        self.changed = t.parts;
        self.merge_late(t.late);
    }

    fn finish_metrics(&mut self) {
        self.last_groups = self.len();
        for (n, c) in self.last_changed.iter_mut().zip(&self.changed) {
            *n = c.len();
        }
        self.metrics.num_rows_total = self.last_groups as u64;
        self.metrics.num_rows_updated = self.changed.iter().map(HashTable::len).sum::<usize>() as u64;
        self.metrics.num_rows_removed = 0;
        self.metrics.num_rows_dropped_by_watermark = self.late.len() as u64;
        self.metrics.memory_used_bytes = self.estimated_bytes();
    }

    /// Removes and returns the groups whose key is `behind` (the watermark passed their event
    /// time), in Spark's order: shuffle partition by shuffle partition, the groups the last
    /// batch left unchanged before those it changed (as the state store iterates). Append mode
    /// emits them; update mode just drops them. The order costs a partition hash per group:
    /// where nothing after the aggregation depends on the order of its rows (a sink),
    /// [`HashAggState::evict_unordered`] skips it.
    pub fn evict(&mut self, behind: impl FnMut(&K) -> bool) -> Vec<Entry<K, A>> {
        let n = self.shuffle;
        let (unchanged, changed) = self.evict_from_both(behind);
        let mut out = in_partition_order(unchanged, n);
        out.extend(in_partition_order(changed, n));
        out
    }

    /// [`HashAggState::evict`] in the order the in-memory sub-tables hold the groups.
    pub fn evict_unordered(&mut self, behind: impl FnMut(&K) -> bool) -> Vec<Entry<K, A>> {
        let (mut out, changed) = self.evict_from_both(behind);
        out.extend(changed);
        out
    }

    /// The groups the last batch changed (as [`HashAggState::updated`]) in Spark's order:
    /// shuffle partition by shuffle partition.
    pub fn updated_in_order(&self) -> impl Iterator<Item = &Entry<K, A>> {
        in_partition_order(self.updated().collect(), self.shuffle).into_iter()
    }

    /// Every group (as [`HashAggState::all`]) in Spark's order: shuffle partition by shuffle
    /// partition.
    pub fn all_in_order(&self) -> impl Iterator<Item = &Entry<K, A>> {
        in_partition_order(self.all().collect(), self.shuffle).into_iter()
    }

    /// The groups evicted from the unchanged tables and from the changed ones.
    fn evict_from_both(&mut self, mut behind: impl FnMut(&K) -> bool) -> Evicted<K, A> {
        let mut unchanged: Vec<Entry<K, A>> = Vec::new();
        for t in &mut self.parts {
            unchanged.extend(t.extract_if(|e| behind(&e.key)));
        }
        let mut changed: Vec<Entry<K, A>> = Vec::new();
        for t in &mut self.changed {
            changed.extend(t.extract_if(|e| behind(&e.key)));
        }
        self.record_evicted(&unchanged);
        self.record_evicted(&changed);
        self.metrics.num_rows_removed = (unchanged.len() + changed.len()) as u64;
        self.metrics.num_rows_total = self.len() as u64;
        self.metrics.memory_used_bytes = self.estimated_bytes();
        (unchanged, changed)
    }

    /// Keeps evicted groups' keys for the checkpoint's deletes (while tracking).
    fn record_evicted(&mut self, out: &[Entry<K, A>]) {
        if self.tracking {
            self.removed.extend(out.iter().map(|e| (hash_key(&e.key), e.key.clone())));
        }
    }
}

/// Evicted groups: from the tables of groups the last batch left unchanged, and from those it
/// changed.
type Evicted<K, A> = (Vec<Entry<K, A>>, Vec<Entry<K, A>>);

/// Groups (or references to them) stably sorted by their key's shuffle partition out of `n`.
fn in_partition_order<E: std::borrow::Borrow<Entry<K, A>>, K: GroupKey, A>(mut groups: Vec<E>, n: usize) -> Vec<E> {
    if n > 1 {
        groups.sort_by_cached_key(|e| partition_of(hash_key(&e.borrow().key), n));
    }
    groups
}

use crate::ops::PartitionChanges;

impl<K, A> HashAggState<K, A>
where
    K: Clone + Eq + GroupKey<Owned = K> + crate::codec::StateCodec,
    A: crate::codec::StateCodec,
{
    /// The groups changed by the last batch and the groups evicted since the last call, per
    /// shuffle partition, encoded for the state store.
    pub fn take_changes(&mut self) -> Vec<PartitionChanges> {
        let n = self.shuffle;
        let mut out: Vec<PartitionChanges> = vec![Vec::new(); n];
        for e in self.changed.iter().flat_map(|t| t.iter()) {
            out[partition_of(hash_key(&e.key), n)]
                .push((crate::codec::to_bytes(&e.key), Some(crate::codec::to_bytes(&e.acc))));
        }
        for (hash, key) in std::mem::take(&mut self.removed) {
            out[partition_of(hash, n)].push((crate::codec::to_bytes(&key), None));
        }
        out
    }

    /// Replaces the state with the groups loaded from the state store (one map per shuffle
    /// partition, as [`HashAggState::take_changes`] wrote them), in parallel over partitions.
    pub fn restore(&mut self, partitions: Vec<crate::checkpoint::state::StateMap>) -> crate::Result<()>
    where
        K: Send,
        A: Send,
    {
        self.removed.clear();
        self.changed.iter_mut().for_each(HashTable::clear);
        self.parts.iter_mut().for_each(HashTable::clear);
        // Decoded (and checked against their partition) per shuffle partition in parallel,
        // then placed by their in-memory hash.
        let mut decoded: Vec<Vec<Entry<K, A>>> = (0..self.shuffle).map(|_| Vec::new()).collect();
        crate::ops::keyed::restore_partitions(
            partitions,
            &mut decoded,
            |v: &mut Vec<Entry<K, A>>, _, key: K, acc: A| v.push(Entry { key, acc }),
        )?;
        for e in decoded.into_iter().flatten() {
            let hash = state_hash(&e.key);
            self.parts[sub_of(hash)].insert_unique(hash, e, rehash);
        }
        self.last_groups = self.len();
        self.metrics.num_rows_total = self.len() as u64;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agg::Count;

    fn words(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("w{}", i % 1000)).collect()
    }

    #[test]
    fn direct_and_parallel_paths_agree() {
        let data = words(300_000);
        let units: Vec<std::ops::Range<usize>> =
            (0..data.len()).step_by(CHUNK_ROWS).map(|s| s..(s + CHUNK_ROWS).min(data.len())).collect();
        let run = |units: &[std::ops::Range<usize>], rows: usize| {
            let mut st = HashAggState::new(4);
            st.update(units, rows, |r, t| {
                for w in &data[r.clone()] {
                    t.entry((w.as_str(),), Count::new).add_row();
                }
            });
            let mut v: Vec<(String, i64)> = st.all().map(|e| (e.key.0.clone(), e.acc.0)).collect();
            v.sort();
            (v, st.metrics())
        };
        let (direct, m1) = run(std::slice::from_ref(&(0..data.len())), data.len());
        let (parallel, m2) = run(&units, data.len());
        assert_eq!(direct, parallel);
        assert_eq!(direct.len(), 1000);
        assert!(direct.iter().all(|(_, c)| *c == 300));
        assert_eq!(m1.num_rows_total, 1000);
        assert_eq!(m2.num_rows_updated, 1000);
    }

    #[test]
    fn large_batches_use_every_thread_even_with_an_odd_unit_count() {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
        let units: Vec<std::ops::Range<usize>> = (0..123).map(|u| u * CHUNK_ROWS..(u + 1) * CHUNK_ROWS).collect();
        let threads = std::sync::Mutex::new(std::collections::HashSet::new());
        pool.install(|| {
            let mut st: HashAggState<(i64,), Count> = HashAggState::new(2);
            st.update(&units, 123 * CHUNK_ROWS, |r, t| {
                threads.lock().unwrap().insert(std::thread::current().id());
                // Enough work per unit that one thread cannot finish before the other starts.
                for i in r.clone().step_by(64) {
                    t.entry((((i / 64) % 1000) as i64,), Count::new).add_row();
                }
                std::thread::sleep(std::time::Duration::from_millis(1));
            });
            assert_eq!(st.len(), 1000);
        });
        assert_eq!(threads.lock().unwrap().len(), 2, "both threads aggregated part of the batch");
    }

    /// A batch's sorted updated groups, metrics, and number of changes per partition.
    type BatchResult = (Vec<(i64, i64)>, StateOperatorProgress, Vec<usize>);

    /// Runs `batches` of `(key, n)` rows (counted n times) through a state, in units of `unit` rows (the
    /// parallel path once a batch has `PARALLEL_MIN_ROWS` rows and there are several units),
    /// evicting keys below `evict_below` after each batch; returns per batch the sorted updated
    /// groups, the metrics and the encoded changes.
    fn run_batches(batches: &[Vec<(i64, i64)>], unit: usize, evict_below: i64) -> Vec<BatchResult> {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
        pool.install(|| {
            let mut st: HashAggState<(i64,), (Count,)> = HashAggState::new(3);
            st.set_tracking(true);
            let mut out = Vec::new();
            for rows in batches {
                let units: Vec<&[(i64, i64)]> = rows.chunks(unit).collect();
                st.update(&units, rows.len(), |u, t| {
                    for (k, v) in u.iter() {
                        for _ in 0..*v {
                            t.entry((*k,), || (Count::new(),)).0.add_row();
                        }
                    }
                });
                let mut upd: Vec<(i64, i64)> = st.updated().map(|e| (e.key.0, e.acc.0 .0)).collect();
                upd.sort();
                st.evict(|k| k.0 < evict_below);
                let m = st.metrics();
                let changes: Vec<usize> = st.take_changes().iter().map(Vec::len).collect();
                out.push((upd, m, changes));
            }
            out
        })
    }

    #[test]
    fn direct_and_parallel_paths_track_the_same_changes() {
        // Batch 1: keys 0..40_000; batch 2: keys 20_000..100_000 (half old, half new), large
        // enough for the parallel path; batch 3: a small one touching a few old keys.
        let b1: Vec<(i64, i64)> = (0..80_000).map(|i| (i % 40_000, 1)).collect();
        let b2: Vec<(i64, i64)> = (0..80_000).map(|i| (20_000 + i, 1)).collect();
        let b3: Vec<(i64, i64)> = vec![(5, 2), (25_000, 1), (5, 1)];
        let batches = [b1, b2, b3];
        let direct = run_batches(&batches, usize::MAX, 0);
        let parallel = run_batches(&batches, 1000, 0);
        assert_eq!(direct, parallel);
        assert_eq!(direct[1].1.num_rows_updated, 80_000);
        assert_eq!(direct[1].1.num_rows_total, 100_000);
        assert_eq!(direct[2].0, vec![(5, 5), (25_000, 4)], "state first, then the batch's rows");
        assert_eq!(direct[2].1.num_rows_updated, 2);
        assert_eq!(direct[2].2.iter().sum::<usize>(), 2, "only the changed groups go to the checkpoint");
    }

    #[test]
    fn evicted_groups_are_deletes_not_updates() {
        let b1: Vec<(i64, i64)> = (0..100_000).map(|i| (i % 1000, 1)).collect();
        let b2: Vec<(i64, i64)> = (0..100_000).map(|i| (500 + i % 1000, 1)).collect();
        for unit in [usize::MAX, 1000] {
            let r = run_batches(&[b1.clone(), b2.clone()], unit, 800);
            // Batch 1 evicts keys 0..800 (800 deletes), keeps 800..1000 changed.
            assert_eq!(r[0].1.num_rows_removed, 800);
            assert_eq!(r[0].2.iter().sum::<usize>(), 1000, "800 deletes and 200 puts");
            // Batch 2 touches 500..1500: 500..800 come back (were evicted), then 500..800 go again.
            assert_eq!(r[1].1.num_rows_updated, 1000);
            assert_eq!(r[1].1.num_rows_removed, 300);
            assert_eq!(r[1].1.num_rows_total, 700);
            assert_eq!(r[1].2.iter().sum::<usize>(), 300 + 700);
            assert!(r[1].0.contains(&(900, 200)), "old count 100 merged with the batch's 100");
        }
    }

    #[test]
    fn a_batch_fed_in_two_parts_equals_it_fed_whole() {
        // A union: the batch's rows arrive as two inputs, `update` then `update_more`.
        let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
        let a: Vec<(i64, i64)> = (0..90_000).map(|i| (i % 5000, 1)).collect();
        let b: Vec<(i64, i64)> = (0..90_000).map(|i| (2500 + i % 5000, 1)).collect();
        let old: Vec<(i64, i64)> = (0..100).map(|i| (i * 97, 1)).collect();
        for unit in [usize::MAX, 1000] {
            let run = |parts: &[&[(i64, i64)]]| {
                pool.install(|| {
                    let mut st: HashAggState<(i64,), (Count,)> = HashAggState::new(3);
                    let feed = |u: &&[(i64, i64)], t: &mut AggPartials<(i64,), (Count,)>| {
                        for (k, _) in u.iter() {
                            t.entry((*k,), || (Count::new(),)).0.add_row();
                        }
                    };
                    st.update(&old.chunks(unit).collect::<Vec<_>>(), old.len(), feed);
                    for (i, rows) in parts.iter().enumerate() {
                        let units: Vec<&[(i64, i64)]> = rows.chunks(unit).collect();
                        if i == 0 {
                            st.update(&units, rows.len(), feed);
                        } else {
                            st.update_more(&units, rows.len(), feed);
                        }
                    }
                    let mut upd: Vec<(i64, i64)> = st.updated().map(|e| (e.key.0, e.acc.0 .0)).collect();
                    upd.sort();
                    (upd, st.metrics())
                })
            };
            let whole: Vec<(i64, i64)> = a.iter().chain(&b).copied().collect();
            assert_eq!(run(&[&a, &b]), run(&[&whole]), "units of {unit} rows");
        }
    }

    /// How a test feeds a batch: row by row through `update` (the reference), or staged
    /// through `update_staged`.
    #[derive(Clone, Copy, Debug)]
    enum Feed {
        RowByRow,
        Staged,
    }

    /// A batch's sorted updated groups, metrics and sorted encoded changes per partition.
    type Observed = (Vec<(i64, i64)>, StateOperatorProgress, Vec<Vec<(Vec<u8>, Option<Vec<u8>>)>>);

    /// Runs `batches` of keys (each counted once, keys below `late_below` dropped as late) on
    /// `threads` threads in units of `unit` rows, evicting keys below `evict_below` after each
    /// batch, with change tracking; what each batch showed.
    fn run_fed(batches: &[Vec<i64>], feed: Feed, threads: usize, unit: usize, late_below: i64) -> Vec<Observed> {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        pool.install(|| {
            let mut st: HashAggState<(i64,), (Count,)> = HashAggState::new(3);
            st.set_tracking(true);
            let mut out = Vec::new();
            for (b, rows) in batches.iter().enumerate() {
                let units: Vec<&[i64]> = rows.chunks(unit).collect();
                match feed {
                    Feed::RowByRow => st.update(&units, rows.len(), |u, t| {
                        for k in u.iter() {
                            if *k < late_below {
                                t.late((*k,));
                            } else {
                                t.entry((*k,), || (Count::new(),)).0.add_row();
                            }
                        }
                    }),
                    Feed::Staged => st.update_staged(
                        &units,
                        rows.len(),
                        |u, t| {
                            for k in u.iter() {
                                if *k < late_below {
                                    t.late((*k,));
                                } else {
                                    t.push((*k,), ());
                                }
                            }
                        },
                        || (Count::new(),),
                        |acc, ()| acc.0.add_row(),
                    ),
                }
                let mut upd: Vec<(i64, i64)> = st.updated().map(|e| (e.key.0, e.acc.0 .0)).collect();
                upd.sort();
                st.evict(|k| k.0 < 1000 * b as i64);
                // Table capacities (the memory estimate) depend on the path, not the result.
                let m = StateOperatorProgress { memory_used_bytes: 0, ..st.metrics() };
                let mut changes = st.take_changes();
                changes.iter_mut().for_each(|c| c.sort());
                out.push((upd, m, changes));
            }
            out
        })
    }

    #[test]
    fn staged_batches_equal_row_by_row_ones_on_every_path() {
        // Batch 1: 200 000 distinct keys (a first batch: probed directly); batch 2: half of
        // them again and new ones (after a state beyond `STAGE_MIN_BYTES`: staged, on one
        // thread too); batch 3: a few rows, staged; the last, after eviction left a state
        // under the threshold... still staged: the last batch's peak was above it.
        let b1: Vec<i64> = (0..400_000).map(|i| (i * 7919) % 200_000).collect();
        let b2: Vec<i64> = (0..300_000).map(|i| 100_000 + (i * 104_729) % 150_000).collect();
        let b3: Vec<i64> = vec![5, 150_001, 5, 2_500, 999_999];
        let small: Vec<i64> = (0..5000).map(|i| i % 300).collect();
        let batches = [b1, b2, b3, small];
        let reference = run_fed(&batches, Feed::RowByRow, 1, usize::MAX, 0);
        for (threads, unit) in [(1, usize::MAX), (1, 1000), (2, CHUNK_ROWS), (2, 777)] {
            assert_eq!(
                run_fed(&batches, Feed::Staged, threads, unit, 0),
                reference,
                "{threads} threads, units of {unit}"
            );
        }
        assert_eq!(reference[0].1.num_rows_updated, 200_000);
        assert_eq!(reference[1].1.num_rows_total, 250_000 - 1000, "evicted below 1000 after batch 2");
    }

    #[test]
    fn staged_late_keys_are_counted_once_per_batch() {
        let b: Vec<i64> = (0..200_000).map(|i| i % 50_000).collect();
        for (threads, unit) in [(1, usize::MAX), (2, 1000)] {
            let r = run_fed(std::slice::from_ref(&b), Feed::Staged, threads, unit, 100);
            assert_eq!(r[0].1.num_rows_dropped_by_watermark, 100, "{threads} threads");
            assert_eq!(r[0].1.num_rows_updated, 49_900);
            assert_eq!(r, run_fed(std::slice::from_ref(&b), Feed::RowByRow, threads, unit, 100));
        }
    }

    /// The rows of each group in the order they were applied.
    #[derive(Clone, Debug, Default, PartialEq)]
    struct Seq(Vec<u32>);

    impl Merge for Seq {
        fn merge(&mut self, other: Self) {
            self.0.extend(other.0)
        }
    }

    #[test]
    fn staged_rows_reach_their_group_in_row_order() {
        // Many groups (staged), each met by rows spread over every unit and task.
        let rows: Vec<(i64, u32)> = (0..300_000u32).map(|i| (((i as i64) * 31) % 100_000, i)).collect();
        let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
        for unit in [usize::MAX, 4096] {
            let groups = pool.install(|| {
                let mut st: HashAggState<(i64,), Seq> = HashAggState::new(2);
                let units: Vec<&[(i64, u32)]> = rows.chunks(unit).collect();
                // The first batch is probed directly; the second, over its 100 000 groups, staged.
                for _ in 0..2 {
                    st.update_staged(
                        &units,
                        rows.len(),
                        |u, t| u.iter().for_each(|(k, i)| t.push((*k,), *i)),
                        Seq::default,
                        |acc, i| acc.0.push(i),
                    );
                }
                st.updated().map(|e| e.acc.0.clone()).collect::<Vec<_>>()
            });
            assert_eq!(groups.len(), 100_000);
            // Each group's three rows of the first batch, then its three of the second.
            assert!(
                groups.iter().all(|g| g.len() == 6 && g[..3].windows(2).all(|w| w[0] < w[1]) && g[..3] == g[3..]),
                "units of {unit}"
            );
        }
    }

    #[test]
    fn updated_tracks_the_last_batch() {
        let mut st: HashAggState<(String,), Count> = HashAggState::new(2);
        let b1 = ["a", "b"];
        st.update(&[&b1[..]], 2, |u, t| u.iter().for_each(|w| t.entry((*w,), Count::new).add_row()));
        let b2 = ["b"];
        st.update(&[&b2[..]], 1, |u, t| u.iter().for_each(|w| t.entry((*w,), Count::new).add_row()));
        let upd: Vec<_> = st.updated().map(|e| (e.key.0.clone(), e.acc.0)).collect();
        assert_eq!(upd, vec![("b".to_string(), 2)]);
        assert_eq!(st.metrics().num_rows_updated, 1);
        assert_eq!(st.metrics().num_rows_total, 2);
        let empty: [&str; 0] = [];
        st.update(&[&empty[..]], 0, |u, t| u.iter().for_each(|w| t.entry((*w,), Count::new).add_row()));
        assert_eq!(st.updated().count(), 0);
    }
}
