//! Deduplication (Spark's `StreamingDeduplicateExec`, `dedupe` in progress, and
//! `StreamingDeduplicateWithinWatermarkExec`): the keys seen so far (checkpointed by shuffle
//! partition).
//!
//! Generated code calls, per batch: [`DedupState::begin_batch`], [`DedupState::late`] for each row dropped as behind the
//! watermark, [`DedupState::first`] for each other row (true: the row is the first of its key
//! and goes on), then [`DedupState::evict`] or [`DedupState::evict_expired`], then
//! [`DedupState::end_batch`]. Each stored key's value is the time its state expires for
//! `drop_duplicates_within_watermark` (first event time + delay, µs); a plain deduplication
//! stores nothing but the key (`V = ()`).

use crate::checkpoint::state::StateMap;
use crate::codec::StateCodec;
use crate::ops::keyed::{state_hash, KeyedState};
use crate::ops::{PartitionChanges, StateOperatorProgress, StateSchema, StatefulOperator};
use crate::value::GroupKey;
use crate::watermark::{is_behind, EventTimeKey};
use crate::window::{EventTime, Window};

/// The keys a deduplication has seen, each with `V`: `()`, or the expiry time (µs) for
/// `drop_duplicates_within_watermark`.
pub struct DedupState<K, V = ()> {
    keys: KeyedState<K, V>,
    metrics: StateOperatorProgress,
}

/// Whether a row whose watermarked column is `t` is late: at or behind `watermark` (Spark's
/// `eventTime <= watermark` filter before deduplication; for a window, as an aggregation
/// emits it, Spark's `window.end <= watermark`). A null event time is never late.
#[inline(always)]
pub fn is_late(t: impl EventTimeKey, watermark: i64) -> bool {
    is_behind(&t, watermark)
}

/// When the state of a key first seen at event time `t` expires: `t + delay` (µs). A null
/// event time counts as the epoch, as Spark reads it.
#[inline(always)]
pub fn expiry(t: impl EventTime, delay: i64) -> i64 {
    t.event_micros().unwrap_or(0).saturating_add(delay)
}

/// [`expiry`] for a key whose event time is an aggregation's window: its start plus the
/// delay (Spark's `dropDuplicatesWithinWatermark` reads a window struct's first field, the
/// start, as the event time).
#[inline(always)]
pub fn window_expiry(w: &Window, delay: i64) -> i64 {
    w.start.0.saturating_add(delay)
}

impl<K, V> DedupState<K, V>
where
    K: GroupKey<Owned = K> + Clone + Eq,
{
    /// Empty state with `partitions` shuffle partitions; `name` is Spark's operator name.
    pub fn new(partitions: usize, name: &str) -> Self {
        DedupState {
            keys: KeyedState::new(partitions),
            metrics: StateOperatorProgress { operator_name: name.to_string(), ..Default::default() },
        }
    }

    /// Counts a row dropped as late.
    #[cold]
    pub fn late(&mut self) {
        self.metrics.num_rows_dropped_by_watermark += 1;
    }

    /// Whether `key` is new; if so it is remembered with `value` (its expiry time, or `()`).
    #[inline]
    pub fn first<Q: GroupKey<Owned = K>>(&mut self, key: Q, value: V) -> bool {
        let new = self.keys.insert_absent(state_hash(&key), &key, value);
        self.metrics.num_rows_updated += new as u64;
        new
    }

    /// Forgets the keys for which `behind` is true (their event-time column is behind the
    /// eviction watermark).
    pub fn evict(&mut self, mut behind: impl FnMut(&K) -> bool) {
        let gone = self.keys.evict(|e| behind(&e.key));
        self.metrics.num_rows_removed += gone.len() as u64;
    }

    /// Closes the batch's metrics (after its rows and eviction).
    pub fn end_batch(&mut self) {
        self.metrics.num_rows_total = self.keys.len() as u64;
        self.metrics.memory_used_bytes = self.keys.estimated_bytes();
    }

    /// Starts a batch's metrics (generated code calls it before the batch's rows).
    pub fn begin_batch(&mut self) {
        let m = &mut self.metrics;
        m.num_rows_updated = 0;
        m.num_rows_removed = 0;
        m.num_rows_dropped_by_watermark = 0;
    }

    /// Number of keys in state.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether no key is in state.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

impl<K> DedupState<K, i64>
where
    K: GroupKey<Owned = K> + Clone + Eq,
{
    /// Forgets the keys whose expiry is at or behind `watermark` (Spark's
    /// `watermark >= expiresAt`).
    pub fn evict_expired(&mut self, watermark: i64) {
        let gone = self.keys.evict(|e| e.value <= watermark);
        self.metrics.num_rows_removed += gone.len() as u64;
    }
}

impl<K, V> StatefulOperator for DedupState<K, V>
where
    K: GroupKey<Owned = K> + Clone + Eq + Send + StateCodec,
    V: StateCodec + Send,
{
    fn state_schema(&self) -> StateSchema {
        StateSchema::of::<K, V>(&self.metrics.operator_name, self.keys.partitions())
    }
    fn metrics(&self) -> StateOperatorProgress {
        self.metrics.clone()
    }
    fn set_tracking(&mut self, on: bool) {
        self.keys.set_tracking(on)
    }
    fn take_changes(&mut self) -> Vec<PartitionChanges> {
        self.keys.take_changes()
    }
    fn restore(&mut self, partitions: Vec<StateMap>) -> crate::Result<()> {
        self.keys.restore(partitions)?;
        self.end_batch();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Timestamp;

    #[test]
    fn first_rows_pass_duplicates_do_not_and_eviction_forgets() {
        let mut d: DedupState<(Option<String>, Option<Timestamp>)> = DedupState::new(2, "dedupe");
        d.begin_batch();
        let rows = [(Some("a"), 1), (Some("a"), 1), (Some("a"), 2), (None, 1), (None, 1)];
        let kept: Vec<bool> = rows.iter().map(|(k, t)| d.first((*k, Some(Timestamp(*t))), ())).collect();
        assert_eq!(kept, [true, false, true, true, false]);
        d.evict(|k| k.1.is_some_and(|t| t.0 <= 1));
        d.end_batch();
        let m = d.metrics();
        assert_eq!((m.num_rows_total, m.num_rows_updated, m.num_rows_removed), (1, 3, 2));
        d.begin_batch();
        assert!(d.first((Some("a"), Some(Timestamp(1))), ()), "an evicted key is new again");
    }

    #[test]
    fn within_watermark_keys_expire_at_first_time_plus_delay() {
        let mut d: DedupState<(i64,), i64> = DedupState::new(1, "dedupeWithinWatermark");
        d.begin_batch();
        assert!(d.first((7i64,), expiry(Timestamp(100), 50)));
        assert!(!d.first((7i64,), expiry(Timestamp(120), 50)), "the first sighting sets the expiry");
        d.evict_expired(149);
        assert_eq!(d.len(), 1);
        d.evict_expired(150);
        assert_eq!(d.len(), 0);
        assert!(is_late(Some(Timestamp(10)), 10) && !is_late(None::<Timestamp>, 10));
    }
}
