//! Hash-partitioned aggregation state.
//!
//! Keys are split into a fixed number of shuffle partitions by a fixed-seed hash (the count is
//! part of the query's checkpoint). One micro-batch is aggregated either directly into the
//! state (small batches, one thread) or, above [`PARALLEL_MIN_ROWS`], as Spark does: each rayon
//! task pre-aggregates its chunk of rows into private per-partition tables (partial
//! aggregation), then every shuffle partition merges its partials in parallel (final
//! aggregation). Generated code supplies the per-row loop as a closure; this file knows no query.

use std::mem::size_of;

use hashbrown::HashTable;
use rayon::prelude::*;

use super::Merge;
use crate::value::{hash_key, GroupKey};

/// Batches with fewer rows are aggregated on the calling thread, straight into the state.
/// Below this, splitting costs more than it saves (rayon task + a merge pass per partition);
/// 64 Ki rows is about 1 ms of per-row work on one core in `benches/` (word count).
pub const PARALLEL_MIN_ROWS: usize = 1 << 16;

/// Rows per parallel work unit (same measurement as [`PARALLEL_MIN_ROWS`]).
pub const CHUNK_ROWS: usize = 1 << 16;

/// One group: its key, its accumulators and the batch that last changed it.
///
/// The key's hash is not stored: a table resize or a merge rehashes the key. For the numeric
/// and window keys of event-time aggregations that is cheaper than the 8 bytes per group (the
/// windowed-count benchmark's state is ~25% smaller and faster for it).
#[derive(Clone, Debug)]
pub struct Entry<K, A> {
    /// The owned key.
    pub key: K,
    /// The accumulators.
    pub acc: A,
    /// The epoch (batch number within this run, wrapping) in which this group last changed.
    pub updated: u32,
}

/// Per-partition hash tables that rows are aggregated into: either the state itself or a
/// task's private partial result.
pub struct AggPartials<K, A> {
    parts: Vec<HashTable<Entry<K, A>>>,
    epoch: u32,
    /// Distinct keys of this batch dropped as later than the watermark (Spark counts
    /// `numRowsDroppedByWatermark` per aggregated key of the batch).
    late: HashTable<(u64, K)>,
}

impl<K, A> AggPartials<K, A> {
    fn new(partitions: usize, epoch: u32) -> Self {
        AggPartials { parts: (0..partitions).map(|_| HashTable::new()).collect(), epoch, late: HashTable::new() }
    }

    /// The partition of a key hash. Uses the high bits: the table itself uses the low ones.
    #[inline(always)]
    fn partition_of(&self, hash: u64) -> usize {
        ((hash >> 32) as usize * self.parts.len()) >> 32
    }

    /// Records that `key`'s rows in this batch are dropped as late (its event time is at or
    /// behind the watermark); they do not touch the state.
    #[cold]
    pub fn late<Q>(&mut self, key: Q)
    where
        Q: GroupKey<Owned = K>,
    {
        let hash = hash_key(&key);
        if self.late.find(hash, |(h, k)| *h == hash && key.eq_owned(k)).is_none() {
            self.late.insert_unique(hash, (hash, key.to_owned_key()), |(h, _)| *h);
        }
    }

    /// The accumulators of `key`'s group, created with `init` on first sight. `key` may borrow
    /// (`(&str,)`): it is copied into an owned key only when the group is new.
    #[inline(always)]
    pub fn entry<Q>(&mut self, key: Q, init: impl FnOnce() -> A) -> &mut A
    where
        Q: GroupKey<Owned = K>,
        K: GroupKey,
    {
        let hash = hash_key(&key);
        let p = self.partition_of(hash);
        let epoch = self.epoch;
        let e = match self.parts[p].entry(hash, |e| key.eq_owned(&e.key), |e| hash_key(&e.key)) {
            hashbrown::hash_table::Entry::Occupied(o) => o.into_mut(),
            hashbrown::hash_table::Entry::Vacant(v) => {
                v.insert(Entry { key: key.to_owned_key(), acc: init(), updated: epoch }).into_mut()
            }
        };
        e.updated = epoch;
        &mut e.acc
    }
}

/// Metrics of one stateful operator, as in Spark's `stateOperators` progress.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OperatorMetrics {
    /// Operator name (`stateStoreSave` for aggregation, as Spark).
    pub name: String,
    /// Rows (groups) in state after the batch.
    pub rows_total: u64,
    /// Groups created or changed by the batch.
    pub rows_updated: u64,
    /// Groups removed by the batch (watermark eviction).
    pub rows_removed: u64,
    /// Input rows dropped as later than the watermark.
    pub rows_dropped_by_watermark: u64,
    /// Estimated bytes of state in memory.
    pub memory_used_bytes: u64,
}

/// The state of one aggregation: groups by shuffle partition.
pub struct HashAggState<K, A> {
    state: AggPartials<K, A>,
    metrics: OperatorMetrics,
    /// Keys evicted since the last checkpoint, with their hashes (deletes for the state store);
    /// recorded only while `tracking` (a query with a checkpoint).
    removed: Vec<(u64, K)>,
    tracking: bool,
}

impl<K, A> HashAggState<K, A> {
    /// Empty state with `partitions` shuffle partitions.
    pub fn new(partitions: usize) -> Self {
        HashAggState {
            state: AggPartials::new(partitions.max(1), 0),
            metrics: OperatorMetrics { name: "stateStoreSave".into(), ..Default::default() },
            removed: Vec::new(),
            tracking: false,
        }
    }

    /// Whether to record changes for [`HashAggState::take_changes`] (a checkpointed query).
    pub fn set_tracking(&mut self, on: bool) {
        self.tracking = on;
        self.removed.clear();
    }

    /// Every group (complete mode), partition by partition.
    pub fn all(&self) -> impl Iterator<Item = &Entry<K, A>> {
        self.state.parts.iter().flat_map(|t| t.iter())
    }

    /// The groups changed by the last [`HashAggState::update`] (update mode).
    pub fn updated(&self) -> impl Iterator<Item = &Entry<K, A>> {
        let epoch = self.state.epoch;
        self.all().filter(move |e| e.updated == epoch)
    }

    /// Number of groups.
    pub fn len(&self) -> usize {
        self.state.parts.iter().map(HashTable::len).sum()
    }

    /// True when there is no group.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Number of shuffle partitions.
    pub fn partitions(&self) -> usize {
        self.state.parts.len()
    }

    /// The operator's metrics after the last batch.
    pub fn metrics(&self) -> OperatorMetrics {
        self.metrics.clone()
    }

    /// Table slots times entry size (heap data of keys such as `String`s is not counted).
    fn estimated_bytes(&self) -> u64 {
        self.state.parts.iter().map(|t| (t.capacity() * (size_of::<Entry<K, A>>() + 1)) as u64).sum()
    }
}

impl<K, A> HashAggState<K, A>
where
    K: Clone + Eq + Send + Sync + GroupKey<Owned = K>,
    A: Merge + Send,
{
    /// Aggregates one micro-batch. `units` are the batch's work units (typed column views with a
    /// row range); `rows` is their total row count; `f` runs the generated per-row loop of one
    /// unit into the tables it is given.
    pub fn update<U, F>(&mut self, units: &[U], rows: usize, f: F)
    where
        U: Sync,
        F: Fn(&U, &mut AggPartials<K, A>) + Sync,
    {
        self.state.epoch = self.state.epoch.wrapping_add(1);
        self.state.late.clear();
        let epoch = self.state.epoch;
        if rows < PARALLEL_MIN_ROWS || units.len() <= 1 || rayon::current_num_threads() == 1 {
            for u in units {
                f(u, &mut self.state);
            }
        } else {
            let n = self.state.parts.len();
            // One partial table per thread, not per rayon split: merging partials costs a pass
            // over their groups, which for many distinct keys exceeds the rows they saved.
            // Floor, not ceiling: rayon splits while `len / 2 >= min_len`, so a ceiling on an
            // odd count (123 units / 2 threads → 62) would never split at all.
            let min_len = (units.len() / rayon::current_num_threads()).max(1);
            let partials: Vec<AggPartials<K, A>> = units
                .par_iter()
                .with_min_len(min_len)
                .fold(
                    || AggPartials::new(n, epoch),
                    |mut p, u| {
                        f(u, &mut p);
                        p
                    },
                )
                .collect();
            // Transpose: for each shuffle partition, the tables every task built for it.
            let mut by_part: Vec<Vec<HashTable<Entry<K, A>>>> =
                (0..n).map(|_| Vec::with_capacity(partials.len())).collect();
            for mut p in partials {
                for (hash, key) in std::mem::take(&mut p.late) {
                    if self.state.late.find(hash, |(h, k)| *h == hash && *k == key).is_none() {
                        self.state.late.insert_unique(hash, (hash, key), |(h, _)| *h);
                    }
                }
                for (i, t) in p.parts.into_iter().enumerate() {
                    by_part[i].push(t);
                }
            }
            self.state.parts.par_iter_mut().zip(by_part.into_par_iter()).for_each(|(state, tables)| {
                for t in tables {
                    for e in t {
                        let hash = hash_key(&e.key);
                        match state.find_mut(hash, |s| s.key == e.key) {
                            Some(s) => {
                                s.acc.merge(e.acc);
                                s.updated = epoch;
                            }
                            None => {
                                state.insert_unique(hash, Entry { updated: epoch, ..e }, |x| hash_key(&x.key));
                            }
                        }
                    }
                }
            });
        }
        let total: usize = self.state.parts.iter().map(HashTable::len).sum();
        let updated = self.state.parts.iter().flat_map(|t| t.iter()).filter(|e| e.updated == epoch).count();
        self.metrics.rows_total = total as u64;
        self.metrics.rows_updated = updated as u64;
        self.metrics.rows_removed = 0;
        self.metrics.rows_dropped_by_watermark = self.state.late.len() as u64;
        self.metrics.memory_used_bytes = self.estimated_bytes();
    }

    /// Removes and returns the groups whose key is `behind` (the watermark passed their event
    /// time). Append mode emits them; update mode just drops them.
    pub fn evict(&mut self, mut behind: impl FnMut(&K) -> bool) -> Vec<Entry<K, A>> {
        let mut out: Vec<Entry<K, A>> = Vec::new();
        for t in &mut self.state.parts {
            out.extend(t.extract_if(|e| behind(&e.key)));
        }
        if self.tracking {
            self.removed.extend(out.iter().map(|e| (hash_key(&e.key), e.key.clone())));
        }
        self.metrics.rows_removed = out.len() as u64;
        self.metrics.rows_total = self.len() as u64;
        self.metrics.memory_used_bytes = self.estimated_bytes();
        out
    }
}

/// Changes of one shuffle partition since the last checkpoint: encoded key, and the encoded
/// value or `None` for a delete.
pub type PartitionChanges = Vec<(Vec<u8>, Option<Vec<u8>>)>;

impl<K, A> HashAggState<K, A>
where
    K: Clone + Eq + GroupKey<Owned = K> + crate::codec::StateCodec,
    A: crate::codec::StateCodec,
{
    /// The groups changed by the last batch and the groups evicted since the last call, per
    /// shuffle partition, encoded for the state store.
    pub fn take_changes(&mut self) -> Vec<PartitionChanges> {
        let epoch = self.state.epoch;
        let mut out: Vec<PartitionChanges> = self
            .state
            .parts
            .iter()
            .map(|t| {
                t.iter()
                    .filter(|e| e.updated == epoch)
                    .map(|e| (crate::codec::to_bytes(&e.key), Some(crate::codec::to_bytes(&e.acc))))
                    .collect()
            })
            .collect();
        for (hash, key) in std::mem::take(&mut self.removed) {
            let p = self.state.partition_of(hash);
            out[p].push((crate::codec::to_bytes(&key), None));
        }
        out
    }

    /// Replaces the state with the groups loaded from the state store (one map per shuffle
    /// partition, as [`HashAggState::take_changes`] wrote them). Partitions are rebuilt in
    /// parallel: a key's partition is a function of its hash, so map `p` fills table `p`.
    pub fn restore(&mut self, partitions: Vec<std::collections::BTreeMap<Vec<u8>, Vec<u8>>>) -> crate::Result<()>
    where
        K: Send,
        A: Send,
    {
        if partitions.len() != self.state.parts.len() {
            return Err(crate::Error::Checkpoint(format!(
                "state has {} partitions, the query {}",
                partitions.len(),
                self.state.parts.len()
            )));
        }
        self.removed.clear();
        let n = self.state.parts.len();
        self.state.parts.par_iter_mut().zip(partitions.into_par_iter()).enumerate().try_for_each(
            |(p, (table, map))| -> crate::Result<()> {
                table.clear();
                table.reserve(map.len(), |e| hash_key(&e.key));
                for (k, v) in map {
                    let key: K = crate::codec::from_bytes(&k)?;
                    let acc: A = crate::codec::from_bytes(&v)?;
                    let hash = hash_key(&key);
                    if ((hash >> 32) as usize * n) >> 32 != p {
                        return Err(crate::Error::Checkpoint(format!("a key of state partition {p} hashes elsewhere")));
                    }
                    table.insert_unique(hash, Entry { key, acc, updated: 0 }, |e| hash_key(&e.key));
                }
                Ok(())
            },
        )?;
        self.metrics.rows_total = self.len() as u64;
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
        assert_eq!(m1.rows_total, 1000);
        assert_eq!(m2.rows_updated, 1000);
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

    #[test]
    fn updated_tracks_the_last_batch() {
        let mut st: HashAggState<(String,), Count> = HashAggState::new(2);
        let b1 = ["a", "b"];
        st.update(&[&b1[..]], 2, |u, t| u.iter().for_each(|w| t.entry((*w,), Count::new).add_row()));
        let b2 = ["b"];
        st.update(&[&b2[..]], 1, |u, t| u.iter().for_each(|w| t.entry((*w,), Count::new).add_row()));
        let upd: Vec<_> = st.updated().map(|e| (e.key.0.clone(), e.acc.0)).collect();
        assert_eq!(upd, vec![("b".to_string(), 2)]);
        assert_eq!(st.metrics().rows_updated, 1);
        assert_eq!(st.metrics().rows_total, 2);
        let empty: [&str; 0] = [];
        st.update(&[&empty[..]], 0, |u, t| u.iter().for_each(|w| t.entry((*w,), Count::new).add_row()));
        assert_eq!(st.updated().count(), 0);
    }
}
