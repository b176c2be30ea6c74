//! Keyed state shared by the stateful operators: one value per key, the keys a batch changed
//! (the checkpoint's delta, split by shuffle partition), eviction, and restore from the state
//! store.
//!
//! [`KeyedState`] is the whole machinery for operators with one value per key (deduplication,
//! group state, `transform_with_state`). Hash aggregation and session windows keep their own
//! layouts per partition (they run partitions in parallel: `ops/aggregate/table.rs`,
//! `ops/session/state.rs`) and share the restore path ([`restore_partitions`]).

use std::hash::{BuildHasher, Hasher};
use std::mem::size_of;

use hashbrown::HashTable;
use rayon::prelude::*;

use crate::checkpoint::state::StateMap;
use crate::codec::StateCodec;
use crate::error::{Error, Result};
use crate::partition::partition_of;
use crate::value::{hash_key, GroupKey};

/// Changes of one shuffle partition since the last checkpoint: encoded key, and the encoded
/// value or `None` for a delete.
pub type PartitionChanges = Vec<(Vec<u8>, Option<Vec<u8>>)>;

/// One key and its value.
#[derive(Clone, Debug)]
pub struct Entry<K, V> {
    /// The owned key.
    pub key: K,
    /// The value.
    pub value: V,
}

/// Decodes the state store's maps (one per shuffle partition) into `(partition, hash, key,
/// value)` calls of `insert`, in parallel over partitions; a key stored in a partition its
/// hash does not belong to is an error naming both (the partition hash changed, or the file
/// is not this query's).
pub fn restore_partitions<K, V, T>(
    maps: Vec<StateMap>,
    tables: &mut [T],
    insert: impl Fn(&mut T, u64, K, V) + Sync,
) -> Result<()>
where
    K: GroupKey + StateCodec + Send,
    V: StateCodec + Send,
    T: Send,
{
    let n = tables.len();
    if maps.len() != n {
        return Err(Error::Checkpoint(format!("state has {} partitions, the query {n}", maps.len())));
    }
    tables.par_iter_mut().zip(maps.into_par_iter()).enumerate().try_for_each(|(p, (table, map))| {
        for (k, v) in map {
            let key: K = crate::codec::from_bytes(&k)?;
            let value: V = crate::codec::from_bytes(&v)?;
            let hash = hash_key(&key);
            let home = partition_of(hash, n);
            if home != p {
                return Err(Error::Checkpoint(format!(
                    "a key stored in state partition {p} belongs to partition {home}: the checkpoint was written \
                     with another partition hash"
                )));
            }
            insert(table, hash, key, value);
        }
        Ok(())
    })
}

/// The hash a key is found by in memory: foldhash with a fixed seed, never persisted. The
/// partition hash ([`hash_key`], Murmur3) is what the checkpoint goes by, and it is computed
/// only where a key meets the checkpoint: [`KeyedState::take_changes`] (once per changed key)
/// and [`KeyedState::restore`]. A probe is then one fast hash, and growing the table rehashes
/// with it too; the Murmur3 rounds per row and per rehash were most of what the dedup bench's
/// flowgate side paid over its hand loop (`benches/src/ops.rs`, dedup; `benches/README.md`).
#[inline(always)]
pub fn state_hash<K: GroupKey + ?Sized>(key: &K) -> u64 {
    let mut h = foldhash::fast::FixedState::with_seed(STATE_SEED).build_hasher();
    key.hash_key(&mut h);
    h.finish()
}

/// Any constant: [`state_hash`] is never persisted.
const STATE_SEED: u64 = 0x6b65_7965_645f_0001;

/// Keyed state with one value per key. Its keys live in one in-memory table found by
/// [`state_hash`]; the shuffle partitions (a fixed number, recorded in the checkpoint) are
/// the checkpoint's layout, computed from each key's partition hash when changes are taken or
/// state is restored. No operator over `KeyedState` runs its partitions in parallel (a
/// deduplication runs in row order, group state per key on one thread), so splitting the
/// table by partition in memory would only cost a Murmur3 hash per probe.
pub struct KeyedState<K, V> {
    table: HashTable<Entry<K, V>>,
    partitions: usize,
    /// Keys put or removed since the last [`KeyedState::take_changes`]; recorded only while
    /// `tracking`.
    touched: Vec<K>,
    tracking: bool,
}

impl<K, V> KeyedState<K, V>
where
    K: GroupKey<Owned = K> + Clone + Eq,
{
    /// Empty state with `partitions` shuffle partitions.
    pub fn new(partitions: usize) -> Self {
        KeyedState { table: HashTable::new(), partitions: partitions.max(1), touched: Vec::new(), tracking: false }
    }

    /// Number of shuffle partitions.
    pub fn partitions(&self) -> usize {
        self.partitions
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.table.len()
    }

    /// Whether there is no key.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether to record changes (a checkpointed query).
    pub fn set_tracking(&mut self, on: bool) {
        self.tracking = on;
        self.touched.clear();
    }

    /// Inserts `key` with `value` if it is absent (one probe); returns whether it was.
    /// `hash` is the key's [`state_hash`], as for every method here that takes one.
    #[inline]
    pub fn insert_absent<Q: GroupKey<Owned = K>>(&mut self, hash: u64, key: &Q, value: V) -> bool {
        // `entry`: the probe that finds the key absent also finds its slot (`find_entry`
        // then `insert_unique` probed twice; measured in `benches/src/ops.rs`, dedup).
        match self.table.entry(hash, |e| key.eq_owned(&e.key), |e| state_hash(&e.key)) {
            hashbrown::hash_table::Entry::Occupied(_) => false,
            hashbrown::hash_table::Entry::Vacant(slot) => {
                let owned = key.to_owned_key();
                if self.tracking {
                    self.touched.push(owned.clone());
                }
                slot.insert(Entry { key: owned, value });
                true
            }
        }
    }

    /// Takes `key`'s value out of the table, without recording a change: the caller puts it
    /// back with [`KeyedState::put`] or records its removal with [`KeyedState::mark_removed`]
    /// (the group-state operator moves a key's state into the user's call and back).
    pub fn take<Q: GroupKey<Owned = K>>(&mut self, hash: u64, key: &Q) -> Option<V> {
        match self.table.find_entry(hash, |e| key.eq_owned(&e.key)) {
            Ok(entry) => Some(entry.remove().0.value),
            Err(_) => None,
        }
    }

    /// `key`'s value, in place (one probe; the group-state operator writes the user's call
    /// back into it). A change made through it is recorded with [`KeyedState::touch`].
    #[inline]
    pub fn find_mut<Q: GroupKey<Owned = K>>(&mut self, hash: u64, key: &Q) -> Option<&mut V> {
        self.table.find_mut(hash, |e| key.eq_owned(&e.key)).map(|e| &mut e.value)
    }

    /// Records a change of `key`'s value made in place, for the next
    /// [`KeyedState::take_changes`].
    #[inline]
    pub fn touch(&mut self, key: &K) {
        if self.tracking {
            self.touched.push(key.clone());
        }
    }

    /// Removes `key` and records the removal.
    pub fn remove<Q: GroupKey<Owned = K>>(&mut self, hash: u64, key: &Q) -> Option<V> {
        let (entry, _) = self.table.find_entry(hash, |e| key.eq_owned(&e.key)).ok()?.remove();
        if self.tracking {
            self.touched.push(entry.key);
        }
        Some(entry.value)
    }

    /// Inserts `key` (absent: taken out, or new) with `value`; `changed` records it for the
    /// next [`KeyedState::take_changes`].
    pub fn put(&mut self, hash: u64, key: K, value: V, changed: bool) {
        if self.tracking && changed {
            self.touched.push(key.clone());
        }
        self.table.insert_unique(hash, Entry { key, value }, |e| state_hash(&e.key));
    }

    /// Records the removal of a key already [`KeyedState::take`]n.
    pub fn mark_removed(&mut self, key: K) {
        if self.tracking {
            self.touched.push(key);
        }
    }

    /// Every entry (in no particular order).
    pub fn iter(&self) -> impl Iterator<Item = &Entry<K, V>> {
        self.table.iter()
    }

    /// Removes and returns the entries for which `behind` is true.
    pub fn evict(&mut self, mut behind: impl FnMut(&Entry<K, V>) -> bool) -> Vec<Entry<K, V>> {
        let out: Vec<Entry<K, V>> = self.table.extract_if(|e| behind(e)).collect();
        if self.tracking {
            self.touched.extend(out.iter().map(|e| e.key.clone()));
        }
        out
    }

    /// Table slots times entry size (heap data of keys such as `String`s is not counted).
    pub fn estimated_bytes(&self) -> u64 {
        (self.table.capacity() * (size_of::<Entry<K, V>>() + 1)) as u64
    }
}

impl<K, V> KeyedState<K, V>
where
    K: GroupKey<Owned = K> + Clone + Eq + StateCodec + Send,
    V: StateCodec + Send,
{
    /// Per partition, the keys changed since the last call: their value now, or a delete.
    /// Each partition's changes are in the order of their keys' partition hashes.
    pub fn take_changes(&mut self) -> Vec<PartitionChanges> {
        let n = self.partitions;
        let mut out: Vec<PartitionChanges> = (0..n).map(|_| Vec::new()).collect();
        let mut touched: Vec<(u64, K)> =
            std::mem::take(&mut self.touched).into_iter().map(|k| (hash_key(&k), k)).collect();
        touched.sort_by_key(|(h, _)| *h);
        touched.dedup_by(|a, b| a.0 == b.0 && a.1 == b.1);
        for (hash, key) in touched {
            let p = partition_of(hash, n);
            let value = self.table.find(state_hash(&key), |e| e.key == key).map(|e| crate::codec::to_bytes(&e.value));
            out[p].push((crate::codec::to_bytes(&key), value));
        }
        out
    }

    /// Replaces the state with the state store's maps (decoded and checked in parallel, one
    /// map per partition, then inserted into the table).
    pub fn restore(&mut self, maps: Vec<StateMap>) -> Result<()> {
        self.touched.clear();
        self.table.clear();
        let mut decoded: Vec<Vec<(K, V)>> = (0..self.partitions).map(|_| Vec::new()).collect();
        restore_partitions(maps, &mut decoded, |d: &mut Vec<(K, V)>, _, key: K, value: V| d.push((key, value)))?;
        self.table.reserve(decoded.iter().map(Vec::len).sum(), |e| state_hash(&e.key));
        for (key, value) in decoded.into_iter().flatten() {
            self.table.insert_unique(state_hash(&key), Entry { key, value }, |e| state_hash(&e.key));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_round_trip_through_restore() {
        let mut st: KeyedState<(String,), i64> = KeyedState::new(3);
        st.set_tracking(true);
        for (i, w) in ["a", "b", "c", "d"].iter().enumerate() {
            let k = (*w,);
            assert!(st.insert_absent(state_hash(&k), &k, i as i64));
        }
        st.evict(|e| e.key.0 == "b");
        let changes = st.take_changes();
        assert_eq!(changes.iter().map(Vec::len).sum::<usize>(), 4, "three puts and a delete (b was put then removed)");
        let mut maps: Vec<StateMap> = (0..3).map(|_| StateMap::new()).collect();
        for (p, c) in changes.into_iter().enumerate() {
            for (k, v) in c {
                // The checkpoint's layout: a key's changes go to its partition hash's partition
                // (the table in memory is one, found by `state_hash`).
                let key: (String,) = crate::codec::from_bytes(&k).unwrap();
                assert_eq!(partition_of(hash_key(&key), 3), p, "{key:?}");
                match v {
                    Some(v) => maps[p].insert(k, v),
                    None => maps[p].remove(&k),
                };
            }
        }
        let mut back: KeyedState<(String,), i64> = KeyedState::new(3);
        back.restore(maps.clone()).unwrap();
        let mut got: Vec<(String, i64)> = back.iter().map(|e| (e.key.0.clone(), e.value)).collect();
        got.sort();
        assert_eq!(got, vec![("a".into(), 0), ("c".into(), 2), ("d".into(), 3)]);
        // A map restored into the wrong partition is refused.
        maps.rotate_left(1);
        let mut wrong: KeyedState<(String,), i64> = KeyedState::new(3);
        let err = wrong.restore(maps).unwrap_err().to_string();
        assert!(err.contains("another partition hash"), "{err}");
    }
}
