//! Stream-stream joins (Spark's `StreamingSymmetricHashJoinExec`, `symmetricHashJoin` in
//! progress): both sides buffer their rows in state, by join key (a key's shuffle partition
//! is the checkpoint's layout only: see `Side`).
//!
//! Generated code drives one batch in Spark's order:
//! 1. [`StreamJoinState::begin_batch`];
//! 2. every left row (late ones counted by [`StreamJoinState::late`] and dropped) probes the
//!    right side's buffered rows ([`StreamJoinState::probe_right`]), emits the pairs its
//!    condition accepts, marks those right rows matched, and is buffered itself
//!    ([`StreamJoinState::append_left`]);
//! 3. every right row does the same against the left side, which now holds this batch's left
//!    rows too, so a pair from the same batch is emitted once;
//! 4. each side's rows behind its *state watermark* are removed
//!    ([`StreamJoinState::evict_left`] / [`StreamJoinState::evict_right`]); an outer join
//!    emits the removed rows that never matched, padded with nulls;
//! 5. [`StreamJoinState::end_batch`].
//!
//! The state watermark of a side is what the join condition proves about the rows the other
//! side can still bring ([`state_watermark_ms`], Spark's `StreamingJoinHelper`): with
//! `clicks.t >= impressions.t && clicks.t <= impressions.t + 1 hour`, no future click can match
//! an impression older than the watermark minus one hour. A side without one keeps its rows.
//!
//! Every `hash` argument below is the key's [`state_hash`] (in memory only).
//!
//! Persisted as one state store per operator: each key is stored once per side, the side as
//! the first byte (0 left, 1 right), the value the side's rows with their matched flags
//! (`list[(row,bool)]`). Both sides of a key live in the key's shuffle partition.

use std::mem::size_of;

use hashbrown::HashTable;

use crate::checkpoint::state::StateMap;
use crate::codec::StateCodec;
use crate::error::{Error, Result};
use crate::ops::keyed::state_hash;
use crate::ops::{PartitionChanges, StateOperatorProgress, StateSchema, StatefulOperator};
use crate::partition::partition_of;
use crate::record::BorrowRef;
use crate::value::{hash_key, GroupKey};
use crate::window::{Window, WindowKey};

/// One buffered row of a side and whether any row of the other side has matched it (an outer
/// join emits the unmatched ones when they leave the state; Spark's state format 2).
#[derive(Clone, Debug, PartialEq)]
pub struct Buffered<V> {
    pub value: V,
    pub matched: bool,
}

/// The buffered rows of one side: each key with its rows in arrival order, in one table found
/// by [`state_hash`] (in memory only). The shuffle partitions are the checkpoint's layout,
/// computed from a key's persisted partition hash ([`hash_key`], Murmur3) only where the key
/// meets the checkpoint: [`StatefulOperator::take_changes`] and [`StatefulOperator::restore`].
/// No join runs its partitions in parallel, so one table per partition would only cost a
/// Murmur3 hash per row (5% of q8's samples in `benches/src/joins.rs` when it did).
struct Side<K, V> {
    table: HashTable<(K, Vec<Buffered<V>>)>,
    partitions: usize,
    rows: usize,
    /// The rows' vectors' capacity, in rows (kept as rows come and go: the state's bytes are
    /// reported every batch without a pass over it).
    capacity: usize,
    /// Keys changed since the last checkpoint, while tracking.
    touched: Vec<K>,
    /// Emptied vectors of evicted keys, kept with their capacity for the next new keys (one
    /// allocation per key and its free at eviction were q8's `malloc`/`free`: a window key
    /// lives for one window, so the keys of each window reuse the last one's vectors). At
    /// most [`POOL_MAX`]; their capacity is counted in the state's bytes.
    pool: Vec<Vec<Buffered<V>>>,
}

/// At most this many emptied vectors are kept per side for reuse: q8 evicts about 24 000
/// keys a window (`benches/src/joins.rs`); beyond that the memory would outlive the keys.
const POOL_MAX: usize = 1 << 16;

impl<K: GroupKey<Owned = K> + Clone + Eq, V> Side<K, V> {
    fn new(partitions: usize) -> Self {
        Side {
            table: HashTable::new(),
            partitions: partitions.max(1),
            rows: 0,
            capacity: 0,
            touched: Vec::new(),
            pool: Vec::new(),
        }
    }

    fn rows_of<Q: GroupKey<Owned = K>>(&mut self, hash: u64, key: &Q) -> &mut [Buffered<V>] {
        match self.table.find_mut(hash, |(k, _)| key.eq_owned(k)) {
            Some((_, rows)) => rows,
            None => &mut [],
        }
    }

    fn append<Q: GroupKey<Owned = K>>(&mut self, hash: u64, key: &Q, value: V, matched: bool, tracking: bool) {
        let row = Buffered { value, matched };
        let owned = match self.table.find_mut(hash, |(k, _)| key.eq_owned(k)) {
            Some((k, rows)) => {
                let before = rows.capacity();
                rows.push(row);
                self.capacity += rows.capacity() - before;
                tracking.then(|| k.clone())
            }
            None => {
                let k = key.to_owned_key();
                let t = tracking.then(|| k.clone());
                // A pooled vector's capacity is already counted.
                let rows = match self.pool.pop() {
                    Some(mut v) => {
                        v.push(row);
                        v
                    }
                    None => {
                        self.capacity += 1;
                        vec![row]
                    }
                };
                self.table.insert_unique(hash, (k, rows), |(k, _)| state_hash(k));
                t
            }
        };
        self.rows += 1;
        if let Some(k) = owned {
            self.touched.push(k);
        }
    }

    fn touch<Q: GroupKey<Owned = K>>(&mut self, key: &Q) {
        self.touched.push(key.to_owned_key());
    }

    /// Keeps an emptied vector for reuse, or frees it (its capacity leaves the count).
    fn recycle(pool: &mut Vec<Vec<Buffered<V>>>, freed: &mut usize, v: Vec<Buffered<V>>) {
        debug_assert!(v.is_empty());
        if pool.len() < POOL_MAX {
            pool.push(v);
        } else {
            *freed += v.capacity();
        }
    }

    /// Removes the rows `behind` says, handing each to `removed`; returns how many. One pass
    /// over the table: each key's rows are scanned once (the kept ones stay in order, in
    /// place), and a key left without rows leaves the table in the same pass.
    fn evict(
        &mut self,
        mut behind: impl FnMut(&K, &V) -> bool,
        mut removed: impl FnMut(&K, Buffered<V>),
        tracking: bool,
    ) -> usize {
        let (mut gone, mut freed) = (0, 0);
        let (touched, pool) = (&mut self.touched, &mut self.pool);
        self.table.retain(|(k, rows)| {
            let before = rows.len();
            for r in rows.extract_if(.., |r| behind(k, &r.value)) {
                removed(k, r);
            }
            if rows.len() == before {
                return true;
            }
            gone += before - rows.len();
            if tracking {
                touched.push(k.clone());
            }
            if rows.is_empty() {
                Self::recycle(pool, &mut freed, std::mem::take(rows));
                return false;
            }
            true
        });
        self.capacity -= freed;
        self.rows -= gone;
        gone
    }

    /// Removes every key `behind` says, with all its rows (handed to `removed` in arrival
    /// order); returns how many rows. For a side evicted by a key column (a window), where a
    /// row is behind exactly when its key is: one check per key, not per row.
    fn evict_keys(
        &mut self,
        mut behind: impl FnMut(&K) -> bool,
        mut removed: impl FnMut(&K, Buffered<V>),
        tracking: bool,
    ) -> usize {
        let (mut gone, mut freed) = (0, 0);
        let (touched, pool) = (&mut self.touched, &mut self.pool);
        self.table.retain(|(k, rows)| {
            if !behind(k) {
                return true;
            }
            gone += rows.len();
            for r in rows.drain(..) {
                removed(k, r);
            }
            Self::recycle(pool, &mut freed, std::mem::take(rows));
            if tracking {
                touched.push(k.clone());
            }
            false
        });
        self.capacity -= freed;
        self.rows -= gone;
        gone
    }

    /// The rows' capacity counted anew (what `capacity` keeps).
    #[cfg(test)]
    fn recount(&self) -> usize {
        self.table.iter().map(|(_, r)| r.capacity()).sum::<usize>() + self.pool.iter().map(Vec::capacity).sum::<usize>()
    }

    fn estimated_bytes(&self) -> u64 {
        let tables = self.table.capacity() * (size_of::<(K, Vec<Buffered<V>>)>() + 1);
        (tables + self.capacity * size_of::<Buffered<V>>()) as u64
    }
}

/// The state of one stream-stream join: the left side's rows (`L`) and the right side's (`R`)
/// by key `K`.
pub struct StreamJoinState<K, L, R> {
    left: Side<K, L>,
    right: Side<K, R>,
    tracking: bool,
    /// Whether a key with a null matches an equal key (Spark's full outer join, whose key
    /// comparison is its row format's equality; the other join types filter null keys out
    /// before the join, from the `IS NOT NULL` Spark infers from the condition).
    null_keys_equal: bool,
    /// Right rows the pruning rule of a join after a `max`/`min` aggregation left out of the
    /// state since the query started (not buffered, or dropped when their group's running
    /// value passed them): `rightRowsPruned` in progress, where the rule applies.
    pruned: Option<u64>,
    metrics: StateOperatorProgress,
}

/// Spark's name for the operator.
pub const OPERATOR_NAME: &str = "symmetricHashJoin";

/// The state watermark (ms) one conjunct of a join condition gives a side: the rows of the
/// side whose event time is at or before it (`t <= ms * 1000`) can match no future row of the
/// other side. `offset_us` is what the conjunct adds to the other side's watermarked column,
/// solved for this side's (`other + offset < this`); `strict` is whether the comparison is
/// `<` (Spark subtracts one millisecond for `<=`, keeping the row that equals the bound).
/// Computed as Spark does: the watermark in milliseconds, the sum in microseconds, truncated
/// to milliseconds.
#[inline]
pub fn state_watermark_ms(watermark_us: i64, offset_us: i64, strict: bool) -> i64 {
    let ms = watermark_us.div_euclid(1000).saturating_mul(1000).saturating_add(offset_us) / 1000;
    if strict {
        ms
    } else {
        ms - 1
    }
}

/// A joined pair as the code after the join reads it: each side's row by reference (`None`
/// for the missing side), typed by the batch's buffer of joined rows `_rows` (which fixes the
/// side a semi join never reads).
#[inline(always)]
#[allow(clippy::type_complexity)]
pub fn pair_of<'a, L, R>(
    _rows: &[(Option<L>, Option<R>)],
    l: Option<&'a L>,
    r: Option<&'a R>,
) -> (Option<&'a L>, Option<&'a R>) {
    (l, r)
}

/// Whether a buffered row with event time `t` is behind the state watermark `ms` (null event
/// times never are).
#[inline(always)]
pub fn behind_state_watermark(t: Option<i64>, ms: Option<i64>) -> bool {
    match (t, ms) {
        (Some(t), Some(ms)) => t <= ms.saturating_mul(1000),
        _ => false,
    }
}

impl<K, L, R> StreamJoinState<K, L, R>
where
    K: GroupKey<Owned = K> + Clone + Eq,
{
    /// Empty state with `partitions` shuffle partitions.
    pub fn new(partitions: usize) -> Self {
        StreamJoinState {
            left: Side::new(partitions),
            right: Side::new(partitions),
            tracking: false,
            null_keys_equal: false,
            pruned: None,
            metrics: StateOperatorProgress { operator_name: OPERATOR_NAME.to_string(), ..Default::default() },
        }
    }

    /// Keys with nulls match equal keys (a full outer join, as Spark compares them).
    pub fn null_keys_equal(mut self, on: bool) -> Self {
        self.null_keys_equal = on;
        self
    }

    /// The query prunes right rows by the aggregation before the join (progress then
    /// reports `rightRowsPruned`).
    pub fn prunes_right(mut self, on: bool) -> Self {
        self.pruned = on.then_some(0);
        self
    }

    /// Counts a right row the pruning rule does not buffer: it can never match.
    #[inline(always)]
    pub fn pruned_right(&mut self) {
        if let Some(n) = &mut self.pruned {
            *n += 1;
        }
    }

    /// Removes the right keys `pruned` says can never match again (the pruning rule, at the
    /// end of a batch), with all their rows, which are never emitted (the rule applies only
    /// where unmatched right rows are not).
    pub fn prune_right_keys(&mut self, pruned: impl FnMut(&K) -> bool) {
        let n = self.right.evict_keys(pruned, |_, _| {}, self.tracking);
        self.metrics.num_rows_removed += n as u64;
        if let Some(p) = &mut self.pruned {
            *p += n as u64;
        }
    }

    /// Starts a batch's metrics.
    pub fn begin_batch(&mut self) {
        let m = &mut self.metrics;
        m.num_rows_updated = 0;
        m.num_rows_removed = 0;
        m.num_rows_dropped_by_watermark = 0;
    }

    /// Counts an input row dropped as late (its event time at or behind the watermark).
    #[cold]
    pub fn late(&mut self) {
        self.metrics.num_rows_dropped_by_watermark += 1;
    }

    /// The right side's rows buffered under `key` (none for a key with a null: SQL's `=`).
    #[inline]
    pub fn probe_right<Q: GroupKey<Owned = K>>(&mut self, hash: u64, key: &Q) -> &mut [Buffered<R>] {
        if !self.null_keys_equal && key.has_null() {
            return &mut [];
        }
        self.right.rows_of(hash, key)
    }

    /// The left side's rows buffered under `key` (none for a key with a null).
    #[inline]
    pub fn probe_left<Q: GroupKey<Owned = K>>(&mut self, hash: u64, key: &Q) -> &mut [Buffered<L>] {
        if !self.null_keys_equal && key.has_null() {
            return &mut [];
        }
        self.left.rows_of(hash, key)
    }

    /// Records that a probe set matched flags of the right rows under `key` (for the checkpoint;
    /// `_hash`, the key's [`state_hash`] as every probe takes it, is not needed here).
    pub fn matched_right<Q: GroupKey<Owned = K>>(&mut self, _hash: u64, key: &Q) {
        if self.tracking {
            self.right.touch(key);
        }
    }

    /// Records that a probe set matched flags of the left rows under `key`.
    pub fn matched_left<Q: GroupKey<Owned = K>>(&mut self, _hash: u64, key: &Q) {
        if self.tracking {
            self.left.touch(key);
        }
    }

    /// Removes the left rows under `key` that a right row matched (a left semi join emits each
    /// left row once, when it is first matched, and forgets it then, as Spark does).
    pub fn remove_matched_left<Q: GroupKey<Owned = K>>(&mut self, hash: u64, key: &Q) {
        let Ok(mut entry) = self.left.table.find_entry(hash, |(k, _)| key.eq_owned(k)) else { return };
        let rows = &mut entry.get_mut().1;
        let before = rows.len();
        rows.retain(|r| !r.matched);
        let gone = before - rows.len();
        if rows.is_empty() {
            let mut freed = 0;
            let v = std::mem::take(rows);
            Side::<K, L>::recycle(&mut self.left.pool, &mut freed, v);
            self.left.capacity -= freed;
            entry.remove();
        }
        self.left.rows -= gone;
        self.metrics.num_rows_removed += gone as u64;
        if self.tracking {
            self.left.touch(key);
        }
    }

    /// Buffers a left row.
    #[inline]
    pub fn append_left<Q: GroupKey<Owned = K>>(&mut self, hash: u64, key: &Q, value: L, matched: bool) {
        self.left.append(hash, key, value, matched, self.tracking);
        self.metrics.num_rows_updated += 1;
    }

    /// Buffers a right row.
    #[inline]
    pub fn append_right<Q: GroupKey<Owned = K>>(&mut self, hash: u64, key: &Q, value: R, matched: bool) {
        self.right.append(hash, key, value, matched, self.tracking);
        self.metrics.num_rows_updated += 1;
    }

    /// Removes the left rows `behind` says (by key or by the row's event time), handing each
    /// removed row to `removed` (an outer join emits the unmatched ones).
    pub fn evict_left(&mut self, behind: impl FnMut(&K, &L) -> bool, removed: impl FnMut(&K, Buffered<L>)) {
        let n = self.left.evict(behind, removed, self.tracking);
        self.metrics.num_rows_removed += n as u64;
    }

    /// Removes the right rows `behind` says.
    pub fn evict_right(&mut self, behind: impl FnMut(&K, &R) -> bool, removed: impl FnMut(&K, Buffered<R>)) {
        let n = self.right.evict(behind, removed, self.tracking);
        self.metrics.num_rows_removed += n as u64;
    }

    /// Removes the left keys `behind` says, each with all its rows, handing each row to
    /// `removed`: [`StreamJoinState::evict_left`] for a side evicted by a key column, where a
    /// row is behind exactly when its key is (one check per key).
    pub fn evict_left_keys(&mut self, behind: impl FnMut(&K) -> bool, removed: impl FnMut(&K, Buffered<L>)) {
        let n = self.left.evict_keys(behind, removed, self.tracking);
        self.metrics.num_rows_removed += n as u64;
    }

    /// Removes the right keys `behind` says, each with all its rows.
    pub fn evict_right_keys(&mut self, behind: impl FnMut(&K) -> bool, removed: impl FnMut(&K, Buffered<R>)) {
        let n = self.right.evict_keys(behind, removed, self.tracking);
        self.metrics.num_rows_removed += n as u64;
    }

    /// Fixes the right side's row type for type inference: generated code passes a closure,
    /// never called, that builds a right row from the right input's typed columns (the left
    /// side's pass reads right rows before the right side's pass stores one).
    #[inline(always)]
    pub fn pin_right<A>(&self, _row: impl FnOnce(A) -> R) {}

    /// The left side's [`StreamJoinState::pin_right`] (a left semi join runs its right side
    /// first).
    #[inline(always)]
    pub fn pin_left<A>(&self, _row: impl FnOnce(A) -> L) {}

    /// An empty buffer for the batch's joined rows: left and right values, `None` for the
    /// null side of an outer row (or the right side of a semi join's rows).
    #[allow(clippy::type_complexity)]
    pub fn output_buffer(&self) -> Vec<(Option<L>, Option<R>)> {
        Vec::new()
    }

    /// Buffered rows per side.
    pub fn rows(&self) -> (usize, usize) {
        (self.left.rows, self.right.rows)
    }

    /// Closes the batch's metrics.
    pub fn end_batch(&mut self) {
        let (lb, rb) = (self.left.estimated_bytes(), self.right.estimated_bytes());
        self.metrics.num_rows_total = (self.left.rows + self.right.rows) as u64;
        self.metrics.memory_used_bytes = lb + rb;
        self.metrics.custom_metrics = vec![
            ("leftBytes".into(), lb),
            ("leftRows".into(), self.left.rows as u64),
            ("rightBytes".into(), rb),
            ("rightRows".into(), self.right.rows as u64),
        ];
        if let Some(n) = self.pruned {
            self.metrics.custom_metrics.push(("rightRowsPruned".into(), n));
        }
    }
}

/// The stored value of one key of one side: its rows and matched flags.
struct Rows<V>(Vec<Buffered<V>>);

impl<V: StateCodec> StateCodec for Rows<V> {
    fn layout(out: &mut String) {
        out.push_str("list[(");
        V::layout(out);
        out.push_str(",bool)]");
    }
    fn encode(&self, out: &mut Vec<u8>) {
        (self.0.len() as u64).encode(out);
        for r in &self.0 {
            r.value.encode(out);
            r.matched.encode(out);
        }
    }
    fn decode(input: &mut &[u8]) -> Result<Self> {
        let n = u64::decode(input)? as usize;
        let mut rows = Vec::with_capacity(n.min(1 << 16));
        for _ in 0..n {
            let value = V::decode(input)?;
            let matched = bool::decode(input)?;
            rows.push(Buffered { value, matched });
        }
        Ok(Rows(rows))
    }
}

const LEFT: u8 = 0;
const RIGHT: u8 = 1;

fn side_key<K: StateCodec>(side: u8, key: &K) -> Vec<u8> {
    let mut out = vec![side];
    key.encode(&mut out);
    out
}

fn changes<K, V>(side: &mut Side<K, V>, tag: u8, out: &mut [PartitionChanges])
where
    K: GroupKey<Owned = K> + Clone + Eq + StateCodec,
    V: StateCodec + Clone,
{
    let n = side.partitions;
    // The partition hash, computed here, once per changed key; the keys in its order, as the
    // checkpoint has always had them.
    let mut touched: Vec<(u64, K)> = std::mem::take(&mut side.touched).into_iter().map(|k| (hash_key(&k), k)).collect();
    touched.sort_by_key(|(h, _)| *h);
    touched.dedup_by(|a, b| a.0 == b.0 && a.1 == b.1);
    for (hash, key) in touched {
        let p = partition_of(hash, n);
        let value = side.table.find(state_hash(&key), |(k, _)| *k == key).map(|(_, rows)| {
            let mut buf = vec![tag];
            (rows.len() as u64).encode(&mut buf);
            for r in rows {
                r.value.encode(&mut buf);
                r.matched.encode(&mut buf);
            }
            buf
        });
        out[p].push((side_key(tag, &key), value));
    }
}

impl<K, L, R> StatefulOperator for StreamJoinState<K, L, R>
where
    K: GroupKey<Owned = K> + Clone + Eq + Send + StateCodec,
    L: StateCodec + Clone + Send,
    R: StateCodec + Clone + Send,
{
    fn state_schema(&self) -> StateSchema {
        let mut key = String::from("(join_side,");
        K::layout(&mut key);
        key.push(')');
        let mut value = String::from("join_rows[");
        Rows::<L>::layout(&mut value);
        value.push(',');
        Rows::<R>::layout(&mut value);
        value.push(']');
        StateSchema {
            operator: OPERATOR_NAME.to_string(),
            key_layout: key,
            value_layout: value,
            partitions: self.left.partitions,
        }
    }
    fn metrics(&self) -> StateOperatorProgress {
        self.metrics.clone()
    }
    fn set_tracking(&mut self, on: bool) {
        self.tracking = on;
        self.left.touched.clear();
        self.right.touched.clear();
    }
    fn take_changes(&mut self) -> Vec<PartitionChanges> {
        let mut out: Vec<PartitionChanges> = (0..self.left.partitions).map(|_| Vec::new()).collect();
        changes(&mut self.left, LEFT, &mut out);
        changes(&mut self.right, RIGHT, &mut out);
        out
    }
    fn restore(&mut self, maps: Vec<StateMap>) -> Result<()> {
        let n = self.left.partitions;
        if maps.len() != n {
            return Err(Error::Checkpoint(format!("join state has {} partitions, the query {n}", maps.len())));
        }
        self.left = Side::new(n);
        self.right = Side::new(n);
        for (p, map) in maps.into_iter().enumerate() {
            for (k, v) in map {
                let Some((&tag, mut rest)) = k.split_first() else {
                    return Err(Error::Checkpoint("an empty join state key".into()));
                };
                let key = K::decode(&mut rest)?;
                let home = partition_of(hash_key(&key), n);
                if home != p {
                    return Err(Error::Checkpoint(format!(
                        "a join key stored in state partition {p} belongs to partition {home}: the checkpoint was \
                         written with another partition hash"
                    )));
                }
                let Some((&vtag, v)) = v.split_first() else {
                    return Err(Error::Checkpoint("an empty join state value".into()));
                };
                if vtag != tag {
                    return Err(Error::Checkpoint(format!(
                        "a join state value of side {vtag} under a key of side {tag}"
                    )));
                }
                match tag {
                    LEFT => {
                        let rows = crate::codec::from_bytes::<Rows<L>>(v)?.0;
                        self.left.rows += rows.len();
                        self.left.capacity += rows.capacity();
                        self.left.table.insert_unique(state_hash(&key), (key, rows), |(k, _)| state_hash(k));
                    }
                    RIGHT => {
                        let rows = crate::codec::from_bytes::<Rows<R>>(v)?.0;
                        self.right.rows += rows.len();
                        self.right.capacity += rows.capacity();
                        self.right.table.insert_unique(state_hash(&key), (key, rows), |(k, _)| state_hash(k));
                    }
                    other => return Err(Error::Checkpoint(format!("bad join side {other} in state"))),
                }
            }
        }
        self.end_batch();
        Ok(())
    }
}

/// A buffered column value as the row loop reads it from an input column (`&str` for a
/// `String`): what the operators after the join see.
#[inline(always)]
pub fn bind<T: BorrowRef>(v: &T) -> T::Ref<'_> {
    T::borrow_ref(v)
}

/// A buffered column value of the optional side of an outer join (`None`: the row had no
/// match), as [`crate::ColumnType::Padded`].
#[inline(always)]
pub fn bind_padded<T: BorrowRef>(v: Option<&T>) -> T::Padded<'_> {
    match v {
        Some(v) => T::pad(T::borrow_ref(v)),
        None => T::pad_null(),
    }
}

/// The join key of a window column (the left side's event-time window after a windowed
/// aggregation, joined with `window(clicks.t, size)` of the other side): the window when it is
/// `SIZE` long, else `None`, a null key that matches nothing (every window of the other side
/// is `SIZE` long, so no row of it could equal this one).
#[inline(always)]
pub fn window_key<const SIZE: i64>(window: impl std::borrow::Borrow<Window>) -> Option<WindowKey<SIZE>> {
    let w = *window.borrow();
    (w.end.0 - w.start.0 == SIZE).then(|| WindowKey::of(w))
}

/// The owned value type of a typed column (for [`StreamJoinState::pin_right`]; never called).
pub fn owned_of<T: crate::ColumnType>(_column: &crate::record::Col<'_, T>) -> T {
    unreachable!("a type witness, never called")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::state::StateMap;

    #[test]
    fn state_watermark_follows_spark_arithmetic() {
        // impressions ⋈ clicks, clickTime <= impressionTime + 1 hour: impressions older than
        // the watermark minus an hour are done (Spark: W - 3 600 000 ms - 1 for `<=`).
        let w = 1_704_096_600_000_000; // 2024-01-01T08:10:00Z in µs
        assert_eq!(state_watermark_ms(w, -3_600_000_000, false), 1_704_096_600_000 - 3_600_000 - 1);
        assert_eq!(state_watermark_ms(w, 0, true), 1_704_096_600_000);
        assert!(behind_state_watermark(Some(5_000), Some(5)));
        assert!(!behind_state_watermark(Some(5_001), Some(5)));
        assert!(!behind_state_watermark(None, Some(5)));
        assert!(!behind_state_watermark(Some(0), None));
    }

    /// The bytes reported each batch come from a running count of the rows' capacity; it
    /// equals a recount after appends, evictions (emptying keys too), semi-join removals and
    /// a restore.
    #[test]
    fn state_bytes_are_kept_without_a_pass_over_the_state() {
        let mut j: StreamJoinState<(i64,), (i64,), (i64,)> = StreamJoinState::new(3);
        j.set_tracking(true);
        for i in 0..500i64 {
            let k = (i % 37,);
            j.append_left(state_hash(&k), &k, (i,), i % 3 == 0);
            j.append_right(state_hash(&k), &k, (i,), false);
            if i % 50 == 49 {
                j.evict_left(|_, v| v.0 <= i - 60, |_, _| {});
                j.evict_right(|k, _| k.0 % 2 == 0, |_, _| {});
                let k = (i % 37,);
                j.remove_matched_left(state_hash(&k), &k);
                assert_eq!(j.left.capacity, j.left.recount());
                assert_eq!(j.right.capacity, j.right.recount());
            }
        }
        let changes = j.take_changes();
        let mut maps: Vec<StateMap> = (0..3).map(|_| StateMap::new()).collect();
        for (p, c) in changes.into_iter().enumerate() {
            for (k, v) in c {
                if let Some(v) = v {
                    maps[p].insert(k, v);
                }
            }
        }
        let mut back: StreamJoinState<(i64,), (i64,), (i64,)> = StreamJoinState::new(3);
        back.restore(maps).unwrap();
        assert_eq!((back.left.capacity, back.right.capacity), (back.left.recount(), back.right.recount()));
        j.end_batch();
        assert!(j.metrics().memory_used_bytes > 0);
    }

    /// Evicting whole keys gives what evicting each row by its key gives: the same rows
    /// removed in the same order, the same rows left, the same changes for the checkpoint and
    /// a byte count that equals a recount.
    #[test]
    fn evicting_by_key_equals_evicting_each_row_by_its_key() {
        let fill = || {
            let mut j: StreamJoinState<(i64,), (i64,), (i64,)> = StreamJoinState::new(3);
            j.set_tracking(true);
            for i in 0..400i64 {
                let k = (i % 41,);
                j.append_left(state_hash(&k), &k, (i,), i % 5 == 0);
                j.append_right(state_hash(&k), &k, (-i,), i % 7 == 0);
            }
            j
        };
        let (mut by_row, mut by_key) = (fill(), fill());
        let (mut out_row, mut out_key) = (Vec::new(), Vec::new());
        by_row.evict_left(|k, _| k.0 % 3 == 0, |k, r| out_row.push((*k, r)));
        by_row.evict_right(|k, _| k.0 < 10, |k, r| out_row.push((*k, r)));
        by_key.evict_left_keys(|k| k.0 % 3 == 0, |k, r| out_key.push((*k, r)));
        by_key.evict_right_keys(|k| k.0 < 10, |k, r| out_key.push((*k, r)));
        assert!(!out_row.is_empty());
        assert_eq!(out_row, out_key);
        assert_eq!(by_row.rows(), by_key.rows());
        assert_eq!(by_row.metrics().num_rows_removed, by_key.metrics().num_rows_removed);
        for j in [&by_row, &by_key] {
            assert_eq!((j.left.capacity, j.right.capacity), (j.left.recount(), j.right.recount()));
        }
        assert_eq!(by_row.take_changes(), by_key.take_changes());
    }

    #[test]
    fn probes_match_marks_evicts_and_round_trips() {
        let mut j: StreamJoinState<(Option<String>,), (i64,), (i64,)> = StreamJoinState::new(2);
        j.set_tracking(true);
        j.begin_batch();
        let a = (Some("a"),);
        let h = state_hash(&a);
        j.append_left(h, &a, (1,), false);
        j.append_left(h, &a, (5,), false);
        let rows = j.probe_left(h, &a);
        assert_eq!(rows.len(), 2);
        rows[0].matched = true;
        j.matched_left(h, &a);
        j.append_right(h, &a, (2,), true);
        let null = (None::<&str>,);
        j.append_left(state_hash(&null), &null, (9,), false);
        assert!(j.probe_left(state_hash(&null), &null).is_empty(), "a null key matches nothing");
        let mut out = Vec::new();
        j.evict_left(|_, v| v.0 <= 1, |_, r| out.push(r));
        j.end_batch();
        assert_eq!(out, vec![Buffered { value: (1,), matched: true }]);
        let m = j.metrics();
        assert_eq!((m.num_rows_total, m.num_rows_updated, m.num_rows_removed), (3, 4, 1));
        let changes = j.take_changes();
        let mut maps: Vec<StateMap> = (0..2).map(|_| StateMap::new()).collect();
        for (p, c) in changes.into_iter().enumerate() {
            for (k, v) in c {
                match v {
                    Some(v) => maps[p].insert(k, v),
                    None => maps[p].remove(&k),
                };
            }
        }
        let mut back: StreamJoinState<(Option<String>,), (i64,), (i64,)> = StreamJoinState::new(2);
        back.restore(maps).unwrap();
        assert_eq!(back.rows(), (2, 1));
        assert_eq!(back.probe_left(h, &a).iter().map(|r| r.value.0).collect::<Vec<_>>(), vec![5]);
        assert!(back.probe_right(h, &a)[0].matched);
        let schema = back.state_schema();
        assert_eq!(
            schema.key_layout, "(join_side,(option<utf8>))",
            "the side and the key, as the checkpoint records them"
        );
        assert_eq!(schema.value_layout, "join_rows[list[((i64),bool)],list[((i64),bool)]]");
        // The layouts describe the bytes: `flowgate state` decodes them.
        let (kl, vl) = (
            crate::codec::Layout::parse(&schema.key_layout).unwrap(),
            crate::codec::Layout::parse(&schema.value_layout).unwrap(),
        );
        let mut left_key = vec![0u8];
        crate::codec::StateCodec::encode(&(Some("a".to_string()),), &mut left_key);
        let mut k: &[u8] = &left_key;
        assert_eq!(kl.decode(&mut k).unwrap(), serde_json::json!(["left", ["a"]]));
        let changes = {
            let mut j: StreamJoinState<(Option<String>,), (i64,), (i64,)> = StreamJoinState::new(1);
            j.set_tracking(true);
            j.append_left(h, &a, (5,), true);
            j.take_changes()
        };
        let mut v: &[u8] = changes[0][0].1.as_deref().unwrap();
        assert_eq!(vl.decode(&mut v).unwrap(), serde_json::json!({"side": "left", "rows": [[[5], true]]}));
    }

    /// A window column joins another side's windows of its size only: a window of another
    /// length is a null key (it could equal none of them).
    #[test]
    fn a_window_column_is_a_key_of_its_size_only() {
        use crate::Timestamp;
        let w = Window::new(Timestamp(20_000_000), Timestamp(30_000_000));
        assert_eq!(window_key::<10_000_000>(w), Some(WindowKey { start: 20_000_000 }));
        assert_eq!(window_key::<10_000_000>(&w), Some(WindowKey { start: 20_000_000 }));
        assert_eq!(window_key::<5_000_000>(w), None);
        assert!(crate::value::GroupKey::has_null(&(window_key::<5_000_000>(w), 1i64)));
    }

    /// The checkpoint's bytes of a join's state are pinned: a fixed run of appends, matches,
    /// evictions and a semi join's removal gives exactly these changes, partition by partition,
    /// key and value bytes in this order. They were recorded before the in-memory table moved
    /// from the partition hash to [`state_hash`] (one table instead of one per partition), and
    /// the move changed none of them: the checkpoint does not depend on how memory finds a key.
    #[test]
    fn checkpoint_bytes_of_join_state_are_pinned() {
        fn hex(b: &[u8]) -> String {
            b.iter().map(|x| format!("{x:02x}")).collect()
        }
        type Join = StreamJoinState<(Option<String>, i64), (i64, Option<String>), (i64,)>;
        let mut j = Join::new(3);
        j.set_tracking(true);
        for i in 0..12i64 {
            let k = (Some(format!("k{}", i % 4)), i % 2);
            let kr = (k.0.as_deref(), k.1);
            let h = state_hash(&kr);
            j.append_left(h, &kr, (i, (i % 3 == 0).then(|| format!("v{i}"))), i % 5 == 0);
            if !j.probe_left(h, &kr).is_empty() {
                j.probe_left(h, &kr)[0].matched = true;
                j.matched_left(h, &kr);
            }
            j.append_right(h, &kr, (-i,), false);
        }
        j.evict_left(|_, v| v.0 < 3, |_, _| {});
        j.evict_right_keys(|k| k.0.as_deref() == Some("k1"), |_, _| {});
        let k = (Some("k2"), 0i64);
        j.remove_matched_left(state_hash(&k), &k);
        let changes = j.take_changes();
        let text: Vec<String> = changes
            .iter()
            .enumerate()
            .flat_map(|(p, c)| {
                c.iter().map(move |(k, v)| format!("{p} {} {}", hex(k), v.as_deref().map_or("-".to_string(), hex)))
            })
            .collect();
        let text = text.join("\n");
        println!("{text}");
        assert_eq!(text, GOLDEN_JOIN_CHANGES);
    }

    /// What [`checkpoint_bytes_of_join_state_are_pinned`] expects: `partition key value` per
    /// change, in hex (recorded with the code before the move to one in-memory table).
    const GOLDEN_JOIN_CHANGES: &str = "0 000102000000000000006b300000000000000000 0002000000000000000400000000000000000008000000000000000000\n\
0 000102000000000000006b320000000000000000 0001000000000000000600000000000000010200000000000000763600\n\
0 010102000000000000006b300000000000000000 010300000000000000000000000000000000fcffffffffffffff00f8ffffffffffffff00\n\
0 010102000000000000006b320000000000000000 010300000000000000feffffffffffffff00faffffffffffffff00f6ffffffffffffff00\n\
1 000102000000000000006b310100000000000000 000200000000000000050000000000000000010900000000000000010200000000000000763900\n\
1 000102000000000000006b330100000000000000 0003000000000000000300000000000000010200000000000000763301070000000000000000000b000000000000000000\n\
1 010102000000000000006b310100000000000000 -\n\
1 010102000000000000006b330100000000000000 010300000000000000fdffffffffffffff00f9ffffffffffffff00f5ffffffffffffff00";
}
