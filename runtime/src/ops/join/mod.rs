//! Stream-static joins (Spark's broadcast of a static table against each micro-batch): the
//! static side is read once, when the query starts, and indexed by its equi-join key; every
//! stream row probes the index. Not a stateful operator: nothing is checkpointed, and a
//! restart reads the static input again.
//!
//! Join types with the stream on the left, as Spark allows them: inner, left outer (the
//! static columns become nullable: [`crate::ColumnType::Padded`]), left semi and left anti.
//! A key with a null column never matches (SQL `=`), on either side.

pub mod stream;

use arrow_array::RecordBatch;
use hashbrown::HashTable;

use std::hash::{BuildHasher, Hasher};

use crate::value::GroupKey;

/// The hash of the index: in memory only (the table is rebuilt from the static input whenever
/// the query starts), so a fast one, not the persisted partition hash, whose Murmur3 rounds
/// cost more per probe (measured in `benches/src/ops.rs`, static_join).
#[inline(always)]
fn index_hash<K: GroupKey + ?Sized>(key: &K) -> u64 {
    let mut h = foldhash::fast::FixedState::with_seed(INDEX_SEED).build_hasher();
    key.hash_key(&mut h);
    h.finish()
}

/// Any constant: the index is never persisted.
const INDEX_SEED: u64 = 0x5157_4154_4943_0001;

/// The static side of a join: its batches and an index from key to rows.
///
/// Built in two steps: [`StaticTable::insert`] per static row, then [`StaticTable::finish`],
/// which lays every key's rows out contiguously in one vector, so a probe is one hash lookup
/// and one slice (no per-key allocation to chase while the stream is probing).
pub struct StaticTable<K> {
    batches: Vec<RecordBatch>,
    building: HashTable<(K, Vec<(u32, u32)>)>,
    /// Key → `(start, len)` into `rows`.
    index: HashTable<(K, u32, u32)>,
    rows: Vec<(u32, u32)>,
}

impl<K> StaticTable<K>
where
    K: GroupKey<Owned = K> + Eq,
{
    /// An empty index over `batches` (fill it with [`StaticTable::insert`], then
    /// [`StaticTable::finish`]).
    pub fn new(batches: Vec<RecordBatch>) -> Self {
        StaticTable { batches, building: HashTable::new(), index: HashTable::new(), rows: Vec::new() }
    }

    /// The static rows, by batch.
    pub fn batches(&self) -> &[RecordBatch] {
        &self.batches
    }

    /// Indexes row `row` of batch `batch` under `key`; a key with a null column is left out.
    #[inline]
    pub fn insert<Q: GroupKey<Owned = K>>(&mut self, key: Q, batch: usize, row: usize) {
        if key.has_null() {
            return;
        }
        let hash = index_hash(&key);
        let at = (batch as u32, row as u32);
        match self.building.find_mut(hash, |(k, _)| key.eq_owned(k)) {
            Some((_, rows)) => rows.push(at),
            None => {
                self.building.insert_unique(hash, (key.to_owned_key(), vec![at]), |(k, _)| index_hash(k));
            }
        }
    }

    /// Ends the build: every key's rows, in the order they were read, one after another.
    pub fn finish(&mut self) {
        let building = std::mem::take(&mut self.building);
        self.rows.reserve(building.iter().map(|(_, r)| r.len()).sum());
        self.index.reserve(building.len(), |(k, _, _)| index_hash(k));
        for (key, rows) in building {
            let start = self.rows.len() as u32;
            self.rows.extend_from_slice(&rows);
            let hash = index_hash(&key);
            self.index.insert_unique(hash, (key, start, rows.len() as u32), |(k, _, _)| index_hash(k));
        }
    }

    /// The `(batch, row)`s whose key equals `key`, in the order they were read; none for a key
    /// with a null column.
    #[inline]
    pub fn matches<Q: GroupKey<Owned = K>>(&self, key: &Q) -> &[(u32, u32)] {
        if key.has_null() {
            return &[];
        }
        match self.index.find(index_hash(key), |(k, _, _)| key.eq_owned(k)) {
            Some(&(_, start, len)) => &self.rows[start as usize..(start + len) as usize],
            None => &[],
        }
    }

    /// Number of indexed rows.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Whether no row is indexed.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_index_their_rows_in_order_and_nulls_never_match() {
        let mut t: StaticTable<(Option<String>,)> = StaticTable::new(Vec::new());
        t.insert((Some("p1"),), 0, 0);
        t.insert((Some("p3"),), 0, 2);
        t.insert((Some("p3"),), 1, 0);
        t.insert((None::<&str>,), 1, 1);
        t.finish();
        assert_eq!(t.matches(&(Some("p3"),)), &[(0, 2), (1, 0)]);
        assert_eq!(t.matches(&(Some("p2"),)), &[]);
        assert_eq!(t.matches(&(None::<&str>,)), &[], "a null key matches nothing, not the null row");
        assert_eq!(t.len(), 3);
    }
}
