//! Session-window aggregation (Spark's `session_window(ts, gap)`): per grouping key, a sorted
//! list of sessions `[first event, last event + gap)`; an event within `gap` of a session
//! (inclusive: an event exactly at a session's end extends it) joins it, and an event that
//! reaches two sessions merges them.
//!
//! One batch: rows are first merged into sessions per key within the batch (in arrival order,
//! extending the last session on the fly when rows come in time order), then those batch
//! sessions that are already behind the late-input watermark are dropped (counted per session,
//! as Spark counts per merged row), and the rest are merged into the state.

use std::mem::size_of;

use hashbrown::HashTable;
use rayon::prelude::*;

use crate::agg::Merge;
use crate::codec::StateCodec;
use crate::ops::StateOperatorProgress;
use crate::partition::partition_of;
use crate::value::{hash_key, GroupKey};
use crate::window::{EventTime, Window};
use crate::Timestamp;

/// One session and its accumulators.
#[derive(Clone, Debug)]
pub struct Session<A> {
    /// First event time.
    pub start: i64,
    /// Last event time + gap (exclusive).
    pub end: i64,
    /// The accumulators.
    pub acc: A,
}

impl<A> Session<A> {
    /// The session as a `Window` column value.
    pub fn window(&self) -> Window {
        Window::new(Timestamp(self.start), Timestamp(self.end))
    }
}

/// What folding a batch's sessions into the state changed (the operator's metrics).
#[derive(Default)]
struct Folded {
    updated: u64,
    removed: u64,
    dropped: u64,
}

/// Folds one key's sessions from a batch into `table` (the key's shuffle partition): batch
/// sessions that end at or before `late_watermark` are dropped, the rest merged with the
/// stored ones. A changed key is pushed to `touched`, when given.
fn fold_key<K: Clone + Eq, A: Merge>(
    table: &mut HashTable<KeySessions<K, A>>,
    batch: KeySessions<K, A>,
    late_watermark: i64,
    touched: Option<&mut Vec<(u64, K)>>,
    folded: &mut Folded,
) {
    let mut fresh: Vec<Session<A>> = Vec::new();
    for s in merge_sorted(batch.sessions) {
        if s.end <= late_watermark {
            folded.dropped += 1;
        } else {
            fresh.push(s);
        }
    }
    if fresh.is_empty() {
        return;
    }
    let entry = match table.entry(batch.hash, |e| e.key == batch.key, |e| e.hash) {
        hashbrown::hash_table::Entry::Occupied(o) => o.into_mut(),
        hashbrown::hash_table::Entry::Vacant(v) => {
            v.insert(KeySessions { hash: batch.hash, key: batch.key, sessions: Vec::new() }).into_mut()
        }
    };
    if let Some(touched) = touched {
        touched.push((batch.hash, entry.key.clone()));
    }
    let old = std::mem::take(&mut entry.sessions);
    let old_starts: Vec<i64> = old.iter().map(|s| s.start).collect();
    fresh.extend(old);
    entry.sessions = merge_sorted(fresh);
    // As Spark's session state manager: every session of a touched key is written again;
    // stored sessions whose start no longer exists are removed.
    folded.updated += entry.sessions.len() as u64;
    folded.removed += old_starts.iter().filter(|st| !entry.sessions.iter().any(|s| s.start == **st)).count() as u64;
}

/// Sorts `sessions` by start and merges every pair that overlaps or touches.
fn merge_sorted<A: Merge>(mut sessions: Vec<Session<A>>) -> Vec<Session<A>> {
    sessions.sort_by_key(|s| s.start);
    let mut out: Vec<Session<A>> = Vec::with_capacity(sessions.len());
    for s in sessions {
        match out.last_mut() {
            Some(last) if s.start <= last.end => {
                last.end = last.end.max(s.end);
                last.acc.merge(s.acc);
            }
            _ => out.push(s),
        }
    }
    out
}

struct KeySessions<K, A> {
    hash: u64,
    key: K,
    sessions: Vec<Session<A>>,
}

/// The rows of one batch, as sessions per key (what generated code feeds).
pub struct SessionRows<K, A> {
    table: HashTable<KeySessions<K, A>>,
    gap: i64,
    /// `(p, n)`: keep only the keys of shuffle partition `p` out of `n` (one task of a
    /// parallel update); the other rows are skipped.
    only: Option<(usize, usize)>,
}

impl<K, A> SessionRows<K, A> {
    /// The accumulators of the session that row (`key`, `ts`) starts or joins; `None` for a
    /// null event time (Spark drops such rows).
    #[inline]
    pub fn row<Q>(&mut self, key: Q, ts: impl EventTime, init: impl FnOnce() -> A) -> Option<&mut A>
    where
        Q: GroupKey<Owned = K>,
    {
        let t = ts.event_micros()?;
        let gap = self.gap;
        let hash = hash_key(&key);
        if let Some((p, n)) = self.only {
            if partition_of(hash, n) != p {
                return None;
            }
        }
        let entry = match self.table.entry(hash, |e| key.eq_owned(&e.key), |e| e.hash) {
            hashbrown::hash_table::Entry::Occupied(o) => o.into_mut(),
            hashbrown::hash_table::Entry::Vacant(v) => {
                v.insert(KeySessions { hash, key: key.to_owned_key(), sessions: Vec::new() }).into_mut()
            }
        };
        let sessions = &mut entry.sessions;
        let joins_last = sessions.last().is_some_and(|s| t >= s.start && t <= s.end);
        if !joins_last {
            sessions.push(Session { start: t, end: t + gap, acc: init() });
        }
        let s = sessions.last_mut()?;
        s.end = s.end.max(t + gap);
        Some(&mut s.acc)
    }
}

/// The state of one session-window aggregation.
pub struct SessionAggState<K, A> {
    parts: Vec<HashTable<KeySessions<K, A>>>,
    gap: i64,
    metrics: StateOperatorProgress,
    /// Keys whose sessions changed since the last checkpoint (hash, key); recorded only while
    /// `tracking` (a query with a checkpoint).
    touched: Vec<(u64, K)>,
    tracking: bool,
}

impl<K, A> SessionAggState<K, A> {
    /// Empty state with `partitions` shuffle partitions and the session gap in microseconds.
    pub fn new(partitions: usize, gap: i64) -> Self {
        SessionAggState {
            parts: (0..partitions.max(1)).map(|_| HashTable::new()).collect(),
            gap,
            metrics: StateOperatorProgress {
                operator_name: "sessionWindowStateStoreSaveExec".into(),
                ..Default::default()
            },
            touched: Vec::new(),
            tracking: false,
        }
    }

    /// Whether to record changes for `take_changes` (a checkpointed query).
    pub fn set_tracking(&mut self, on: bool) {
        self.tracking = on;
        self.touched.clear();
    }

    /// Every session, with its key (complete mode).
    pub fn all(&self) -> impl Iterator<Item = (&K, &Session<A>)> {
        self.parts.iter().flat_map(|t| t.iter()).flat_map(|e| e.sessions.iter().map(move |s| (&e.key, s)))
    }

    /// Number of sessions in state.
    pub fn len(&self) -> usize {
        self.parts.iter().flat_map(|t| t.iter()).map(|e| e.sessions.len()).sum()
    }

    /// True when there is no session.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The operator's metrics after the last batch.
    pub fn metrics(&self) -> StateOperatorProgress {
        self.metrics.clone()
    }

    /// Number of shuffle partitions.
    pub fn partitions(&self) -> usize {
        self.parts.len()
    }

    fn estimated_bytes(&self) -> u64 {
        let slots: usize = self.parts.iter().map(|t| t.capacity() * (size_of::<KeySessions<K, A>>() + 1)).sum();
        (slots + self.len() * size_of::<Session<A>>()) as u64
    }
}

impl<K, A> SessionAggState<K, A>
where
    K: Clone + Eq + Send + Sync,
    A: Merge + Send,
{
    /// Aggregates one micro-batch: `f` feeds each unit's rows; batch sessions whose end is at
    /// or before `late_watermark` are dropped.
    ///
    /// With several units, shuffle partitions and threads, one task per shuffle partition
    /// reads every unit, keeps the rows of its partition's keys and folds them into its own
    /// table, in parallel (a shuffle without moving rows: each task hashes every row's key,
    /// which costs less than merging per-task tables for the sorted session lists).
    pub fn update<U, F>(&mut self, units: &[U], late_watermark: i64, f: F)
    where
        U: Sync,
        F: Fn(&U, &mut SessionRows<K, A>) + Sync,
    {
        let (n, gap, tracking) = (self.parts.len(), self.gap, self.tracking);
        let mut folded = Folded::default();
        if units.len() > 1 && n > 1 && rayon::current_num_threads() > 1 {
            let per_part: Vec<(Folded, Vec<(u64, K)>)> = self
                .parts
                .par_iter_mut()
                .enumerate()
                .map(|(p, table)| {
                    let mut rows = SessionRows { table: HashTable::new(), gap, only: Some((p, n)) };
                    for u in units {
                        f(u, &mut rows);
                    }
                    let (mut folded, mut touched) = (Folded::default(), Vec::new());
                    for batch in rows.table {
                        fold_key(table, batch, late_watermark, tracking.then_some(&mut touched), &mut folded);
                    }
                    (folded, touched)
                })
                .collect();
            for (f, touched) in per_part {
                folded.updated += f.updated;
                folded.removed += f.removed;
                folded.dropped += f.dropped;
                self.touched.extend(touched);
            }
            self.finish_metrics(folded);
        } else {
            let mut rows = self.batch_rows();
            self.collect(units, &mut rows, f);
            self.fold(rows, late_watermark);
        }
    }

    /// Aggregates one micro-batch on the calling thread, the units in order: for a pipeline
    /// whose row loop holds other state (a deduplication), so `f` may be `FnMut`.
    pub fn update_sequential<U, F>(&mut self, units: &[U], late_watermark: i64, f: F)
    where
        F: FnMut(&U, &mut SessionRows<K, A>),
    {
        let mut rows = self.batch_rows();
        self.collect(units, &mut rows, f);
        self.fold(rows, late_watermark);
    }

    /// An empty set of one batch's rows, for an update fed by several pipelines (the inputs of
    /// a union): each feeds it with [`Self::collect`], then [`Self::fold`] aggregates them
    /// once, as one batch.
    pub fn batch_rows(&self) -> SessionRows<K, A> {
        SessionRows { table: HashTable::new(), gap: self.gap, only: None }
    }

    /// Feeds `rows` with each unit's rows (`f`), in order.
    pub fn collect<U, F>(&self, units: &[U], rows: &mut SessionRows<K, A>, mut f: F)
    where
        F: FnMut(&U, &mut SessionRows<K, A>),
    {
        for u in units {
            f(u, rows);
        }
    }

    /// Aggregates the batch's collected rows: [`Self::update_sequential`] over rows that
    /// several pipelines fed.
    pub fn fold(&mut self, rows: SessionRows<K, A>, late_watermark: i64) {
        let (n, tracking) = (self.parts.len(), self.tracking);
        let mut folded = Folded::default();
        for batch in rows.table {
            let table = &mut self.parts[partition_of(batch.hash, n)];
            fold_key(table, batch, late_watermark, tracking.then_some(&mut self.touched), &mut folded);
        }
        self.finish_metrics(folded);
    }

    fn finish_metrics(&mut self, folded: Folded) {
        let Folded { updated, removed, dropped } = folded;
        self.metrics.num_rows_total = self.len() as u64;
        self.metrics.num_rows_updated = updated;
        self.metrics.num_rows_removed = removed;
        self.metrics.num_rows_dropped_by_watermark = dropped;
        self.metrics.memory_used_bytes = self.estimated_bytes();
    }

    /// Removes and returns the sessions that closed (end at or before `watermark`).
    pub fn evict(&mut self, watermark: i64) -> Vec<(K, Session<A>)> {
        let mut out = Vec::new();
        for t in &mut self.parts {
            for e in t.iter_mut() {
                if e.sessions.iter().any(|s| s.end <= watermark) {
                    if self.tracking {
                        self.touched.push((e.hash, e.key.clone()));
                    }
                    let (closed, open): (Vec<_>, Vec<_>) =
                        std::mem::take(&mut e.sessions).into_iter().partition(|s| s.end <= watermark);
                    e.sessions = open;
                    out.extend(closed.into_iter().map(|s| (e.key.clone(), s)));
                }
            }
            t.retain(|e| !e.sessions.is_empty());
        }
        self.metrics.num_rows_removed += out.len() as u64;
        self.metrics.num_rows_total = self.len() as u64;
        self.metrics.memory_used_bytes = self.estimated_bytes();
        out
    }
}

impl<A: StateCodec> StateCodec for Session<A> {
    fn layout(out: &mut String) {
        out.push_str("session[");
        A::layout(out);
        out.push(']');
    }
    fn encode(&self, out: &mut Vec<u8>) {
        self.start.encode(out);
        self.end.encode(out);
        self.acc.encode(out);
    }
    fn decode(input: &mut &[u8]) -> crate::Result<Self> {
        Ok(Session { start: i64::decode(input)?, end: i64::decode(input)?, acc: A::decode(input)? })
    }
}

impl<K, A> SessionAggState<K, A>
where
    K: Clone + Eq + GroupKey<Owned = K> + StateCodec,
    A: StateCodec,
{
    /// The keys whose sessions changed since the last call, per shuffle partition: the key's
    /// whole session list, or a delete when it has none left.
    pub fn take_changes(&mut self) -> Vec<crate::ops::PartitionChanges> {
        let mut out: Vec<crate::ops::PartitionChanges> = (0..self.parts.len()).map(|_| Vec::new()).collect();
        let mut touched = std::mem::take(&mut self.touched);
        touched.sort_by_key(|(h, _)| *h);
        touched.dedup_by(|a, b| a.0 == b.0 && a.1 == b.1);
        for (hash, key) in touched {
            let p = partition_of(hash, self.parts.len());
            let value = self.parts[p].find(hash, |e| e.key == key).map(|e| encode_sessions(&e.sessions));
            out[p].push((crate::codec::to_bytes(&key), value));
        }
        out
    }

    /// Replaces the state with what the state store holds.
    pub fn restore(&mut self, partitions: Vec<crate::checkpoint::state::StateMap>) -> crate::Result<()>
    where
        K: Send,
        A: Send,
    {
        for t in &mut self.parts {
            t.clear();
        }
        self.touched.clear();
        crate::ops::keyed::restore_partitions(
            partitions,
            &mut self.parts,
            |t: &mut HashTable<KeySessions<K, A>>, hash, key: K, list: SessionList<A>| {
                t.insert_unique(hash, KeySessions { hash, key, sessions: list.0 }, |e| e.hash);
            },
        )?;
        self.metrics.num_rows_total = self.len() as u64;
        Ok(())
    }
}

/// The stored value of one key: its sessions, sorted by start (a count, then each session).
pub(crate) struct SessionList<A>(pub Vec<Session<A>>);

fn encode_sessions<A: StateCodec>(sessions: &[Session<A>]) -> Vec<u8> {
    let mut buf = Vec::new();
    (sessions.len() as u64).encode(&mut buf);
    for s in sessions {
        s.encode(&mut buf);
    }
    buf
}

impl<A: StateCodec> StateCodec for SessionList<A> {
    fn layout(out: &mut String) {
        out.push_str("list[");
        Session::<A>::layout(out);
        out.push(']');
    }
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&encode_sessions(&self.0));
    }
    fn decode(input: &mut &[u8]) -> crate::Result<Self> {
        let n = u64::decode(input)? as usize;
        (0..n).map(|_| Session::decode(input)).collect::<crate::Result<Vec<_>>>().map(SessionList)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agg::Count;

    const MIN: i64 = 60_000_000;

    #[test]
    fn sessions_merge_at_the_gap_inclusive() {
        let mut st: SessionAggState<(String,), (Count,)> = SessionAggState::new(2, 5 * MIN);
        let batch1 = [("u1", 0), ("u1", 3), ("u1", 10), ("u2", 1)];
        st.update(&[&batch1[..]], i64::MIN, |u, rows| {
            for (k, t) in u.iter() {
                rows.row((*k,), Timestamp(t * MIN), || (Count::new(),)).unwrap().0.add_row();
            }
        });
        let mut s: Vec<(String, i64, i64, i64)> =
            st.all().map(|(k, s)| (k.0.clone(), s.start / MIN, s.end / MIN, s.acc.0 .0)).collect();
        s.sort();
        assert_eq!(s, vec![("u1".into(), 0, 8, 2), ("u1".into(), 10, 15, 1), ("u2".into(), 1, 6, 1)]);
        // 8 touches [0, 8) and reaches [10, 15): all three merge.
        let batch2 = [("u1", 8)];
        st.update(&[&batch2[..]], 0, |u, rows| {
            for (k, t) in u.iter() {
                rows.row((*k,), Timestamp(t * MIN), || (Count::new(),)).unwrap().0.add_row();
            }
        });
        let m = st.metrics();
        assert_eq!((m.num_rows_total, m.num_rows_updated, m.num_rows_removed), (2, 1, 1));
        let closed = st.evict(20 * MIN);
        assert_eq!(closed.len(), 2);
        assert!(st.is_empty());
        let u1 = closed.iter().find(|(k, _)| k.0 == "u1").unwrap();
        assert_eq!((u1.1.start / MIN, u1.1.end / MIN, u1.1.acc.0 .0), (0, 15, 4));
    }

    /// (key, start, end, count) of every session, the metrics (total, updated, removed,
    /// dropped) and the number of changed keys.
    type Outcome = (Vec<(i64, i64, i64, i64)>, [u64; 4], usize);

    /// The outcome of two batches of `units`, on `threads` threads.
    fn run_units(threads: usize, units: &[Vec<(i64, i64)>]) -> Outcome {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        pool.install(|| {
            let mut st: SessionAggState<(i64,), (Count,)> = SessionAggState::new(4, 5 * MIN);
            st.set_tracking(true);
            let feed = |u: &Vec<(i64, i64)>, rows: &mut SessionRows<(i64,), (Count,)>| {
                for &(k, t) in u {
                    if let Some(acc) = rows.row((k,), Timestamp(t * MIN), || (Count::new(),)) {
                        acc.0.add_row();
                    }
                }
            };
            st.update(units, i64::MIN, feed);
            // The second batch: everything before minute 30 is late.
            st.update(units, 30 * MIN, feed);
            let m = st.metrics();
            let mut s: Vec<_> = st.all().map(|(k, s)| (k.0, s.start / MIN, s.end / MIN, s.acc.0 .0)).collect();
            s.sort();
            let mut touched: Vec<i64> = st.touched.iter().map(|(_, k)| k.0).collect();
            touched.sort();
            touched.dedup();
            (
                s,
                [m.num_rows_total, m.num_rows_updated, m.num_rows_removed, m.num_rows_dropped_by_watermark],
                touched.len(),
            )
        })
    }

    #[test]
    fn a_parallel_update_gives_the_sequential_result() {
        // 40 keys, 6 units with disordered times: sessions meet across units.
        let mut x = 7u64;
        let units: Vec<Vec<(i64, i64)>> = (0..6)
            .map(|_| {
                (0..500)
                    .map(|_| {
                        x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                        ((x >> 33) as i64 % 40, (x >> 20) as i64 % 120)
                    })
                    .collect()
            })
            .collect();
        let one = run_units(1, &units);
        let two = run_units(2, &units);
        assert!(one.0.len() > 40, "several sessions per key: {}", one.0.len());
        assert!(one.1[3] > 0, "the second batch drops late sessions");
        assert_eq!(one, two);
    }
}
