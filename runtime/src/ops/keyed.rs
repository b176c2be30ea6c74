//! Keyed state shared by the stateful operators: entries per shuffle partition, the keys a
//! batch changed (the checkpoint's delta), eviction, and restore from the state store.
//!
//! [`KeyedState`] is the whole machinery for operators with one value per key (deduplication,
//! session windows). Hash aggregation keeps its own two-table layout per partition for speed
//! (`ops/aggregate/table.rs`) and shares the restore path ([`restore_partitions`]).

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

/// The hash a key's slot in its partition's table is found by: the persisted partition hash
/// with its halves swapped. The table takes its 7-bit tags from the hash's top bits, and the
/// top bits of the upper half also choose the partition (`partition_of`), so within one
/// partition the unswapped tags would share their first bit(s): twice the false tag matches,
/// each a read of a key that is likely not in cache. Only the in-memory tables see it; the
/// partition and the checkpoint still go by the partition hash.
#[inline(always)]
fn slot_hash(hash: u64) -> u64 {
    hash.rotate_left(32)
}

/// Keyed state with one value per key, by shuffle partition.
pub struct KeyedState<K, V> {
    parts: Vec<HashTable<Entry<K, V>>>,
    /// Keys put or removed since the last [`KeyedState::take_changes`], with their hashes;
    /// recorded only while `tracking`.
    touched: Vec<(u64, K)>,
    tracking: bool,
}

impl<K, V> KeyedState<K, V>
where
    K: GroupKey<Owned = K> + Clone + Eq,
{
    /// Empty state with `partitions` shuffle partitions.
    pub fn new(partitions: usize) -> Self {
        KeyedState {
            parts: (0..partitions.max(1)).map(|_| HashTable::new()).collect(),
            touched: Vec::new(),
            tracking: false,
        }
    }

    /// Number of shuffle partitions.
    pub fn partitions(&self) -> usize {
        self.parts.len()
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.parts.iter().map(HashTable::len).sum()
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
    #[inline]
    pub fn insert_absent<Q: GroupKey<Owned = K>>(&mut self, hash: u64, key: &Q, value: V) -> bool {
        let p = partition_of(hash, self.parts.len());
        // `entry`: the probe that finds the key absent also finds its slot (`find_entry`
        // then `insert_unique` probed twice; measured in `benches/src/ops.rs`, dedup).
        match self.parts[p].entry(slot_hash(hash), |e| key.eq_owned(&e.key), |e| slot_hash(hash_key(&e.key))) {
            hashbrown::hash_table::Entry::Occupied(_) => false,
            hashbrown::hash_table::Entry::Vacant(slot) => {
                let owned = key.to_owned_key();
                if self.tracking {
                    self.touched.push((hash, owned.clone()));
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
        let p = partition_of(hash, self.parts.len());
        match self.parts[p].find_entry(slot_hash(hash), |e| key.eq_owned(&e.key)) {
            Ok(entry) => Some(entry.remove().0.value),
            Err(_) => None,
        }
    }

    /// `key`'s value, in place (one probe; the group-state operator writes the user's call
    /// back into it). A change made through it is recorded with [`KeyedState::touch`].
    #[inline]
    pub fn find_mut<Q: GroupKey<Owned = K>>(&mut self, hash: u64, key: &Q) -> Option<&mut V> {
        let p = partition_of(hash, self.parts.len());
        self.parts[p].find_mut(slot_hash(hash), |e| key.eq_owned(&e.key)).map(|e| &mut e.value)
    }

    /// Records a change of `key`'s value made in place, for the next
    /// [`KeyedState::take_changes`].
    #[inline]
    pub fn touch(&mut self, hash: u64, key: &K) {
        if self.tracking {
            self.touched.push((hash, key.clone()));
        }
    }

    /// Removes `key` and records the removal.
    pub fn remove<Q: GroupKey<Owned = K>>(&mut self, hash: u64, key: &Q) -> Option<V> {
        let p = partition_of(hash, self.parts.len());
        let (entry, _) = self.parts[p].find_entry(slot_hash(hash), |e| key.eq_owned(&e.key)).ok()?.remove();
        if self.tracking {
            self.touched.push((hash, entry.key));
        }
        Some(entry.value)
    }

    /// Inserts `key` (absent: taken out, or new) with `value`; `changed` records it for the
    /// next [`KeyedState::take_changes`].
    pub fn put(&mut self, hash: u64, key: K, value: V, changed: bool) {
        let p = partition_of(hash, self.parts.len());
        if self.tracking && changed {
            self.touched.push((hash, key.clone()));
        }
        self.parts[p].insert_unique(slot_hash(hash), Entry { key, value }, |e| slot_hash(hash_key(&e.key)));
    }

    /// Records the removal of a key already [`KeyedState::take`]n.
    pub fn mark_removed(&mut self, hash: u64, key: K) {
        if self.tracking {
            self.touched.push((hash, key));
        }
    }

    /// Every entry, partition by partition.
    pub fn iter(&self) -> impl Iterator<Item = &Entry<K, V>> {
        self.parts.iter().flat_map(|t| t.iter())
    }

    /// Removes and returns the entries for which `behind` is true.
    pub fn evict(&mut self, mut behind: impl FnMut(&Entry<K, V>) -> bool) -> Vec<Entry<K, V>> {
        let mut out = Vec::new();
        for t in &mut self.parts {
            out.extend(t.extract_if(|e| behind(e)));
        }
        if self.tracking {
            self.touched.extend(out.iter().map(|e| (hash_key(&e.key), e.key.clone())));
        }
        out
    }

    /// Table slots times entry size (heap data of keys such as `String`s is not counted).
    pub fn estimated_bytes(&self) -> u64 {
        self.parts.iter().map(|t| (t.capacity() * (size_of::<Entry<K, V>>() + 1)) as u64).sum()
    }
}

impl<K, V> KeyedState<K, V>
where
    K: GroupKey<Owned = K> + Clone + Eq + StateCodec + Send,
    V: StateCodec + Send,
{
    /// Per partition, the keys changed since the last call: their value now, or a delete.
    pub fn take_changes(&mut self) -> Vec<PartitionChanges> {
        let n = self.parts.len();
        let mut out: Vec<PartitionChanges> = (0..n).map(|_| Vec::new()).collect();
        let mut touched = std::mem::take(&mut self.touched);
        touched.sort_by_key(|(h, _)| *h);
        touched.dedup_by(|a, b| a.0 == b.0 && a.1 == b.1);
        for (hash, key) in touched {
            let p = partition_of(hash, n);
            let value = self.parts[p].find(slot_hash(hash), |e| e.key == key).map(|e| crate::codec::to_bytes(&e.value));
            out[p].push((crate::codec::to_bytes(&key), value));
        }
        out
    }

    /// Replaces the state with the state store's maps.
    pub fn restore(&mut self, maps: Vec<StateMap>) -> Result<()> {
        self.touched.clear();
        self.parts.iter_mut().for_each(HashTable::clear);
        restore_partitions(maps, &mut self.parts, |t: &mut HashTable<Entry<K, V>>, hash, key: K, value: V| {
            t.insert_unique(slot_hash(hash), Entry { key, value }, |e| slot_hash(hash_key(&e.key)));
        })
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
            assert!(st.insert_absent(hash_key(&k), &k, i as i64));
        }
        st.evict(|e| e.key.0 == "b");
        let changes = st.take_changes();
        assert_eq!(changes.iter().map(Vec::len).sum::<usize>(), 4, "three puts and a delete (b was put then removed)");
        let mut maps: Vec<StateMap> = (0..3).map(|_| StateMap::new()).collect();
        for (p, c) in changes.into_iter().enumerate() {
            for (k, v) in c {
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
