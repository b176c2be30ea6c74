//! One batch's input rows grouped by key, for the operators that call user code once per key
//! (`GroupStateOp`, `TransformWithStateOp`): keys in first-seen order, each key's rows in
//! input order.
//!
//! The rows are kept in one arena in input order, each linked to its key's next row, and a
//! key's `Vec` is built only when its call starts. The user's function takes that `Vec` and
//! drops it, so each call allocates and frees one block that the allocator hands straight
//! back to the next call. Measured (`benches/`, `group_state`): a `Vec` per key filled while
//! grouping left tens of thousands of small blocks alive per batch, and glibc's
//! `malloc_consolidate` walked them all on the batch's next large free — about a third of
//! the operator's time.

use hashbrown::HashTable;

use crate::ops::keyed::state_hash;
use crate::value::GroupKey;

/// No next row.
const END: usize = usize::MAX;

/// One key of the batch: its hash, owned key, and its rows' chain in the arena.
struct Group<K> {
    hash: u64,
    key: K,
    head: usize,
    tail: usize,
    len: usize,
}

/// The batch's rows grouped by key (see the module docs).
pub(crate) struct BatchGroups<K, R> {
    groups: Vec<Group<K>>,
    /// Group indexes by key hash.
    index: HashTable<usize>,
    /// Every row of the batch, in input order, with the index of its key's next row.
    rows: Vec<(Option<R>, usize)>,
}

impl<K, R> Default for BatchGroups<K, R> {
    fn default() -> Self {
        BatchGroups { groups: Vec::new(), index: HashTable::new(), rows: Vec::new() }
    }
}

impl<K: GroupKey<Owned = K>, R> BatchGroups<K, R> {
    /// Adds one row to its key's group.
    #[inline]
    pub(crate) fn push<Q: GroupKey<Owned = K>>(&mut self, key: Q, row: R) {
        let hash = state_hash(&key);
        let at = self.rows.len();
        self.rows.push((Some(row), END));
        let groups = &mut self.groups;
        match self.index.find(hash, |&i| key.eq_owned(&groups[i].key)) {
            Some(&i) => {
                let g = &mut groups[i];
                self.rows[g.tail].1 = at;
                g.tail = at;
                g.len += 1;
            }
            None => {
                let i = groups.len();
                groups.push(Group { hash, key: key.to_owned_key(), head: at, tail: at, len: 1 });
                self.index.insert_unique(hash, i, |&j| groups[j].hash);
            }
        }
    }

    /// Whether `key` (with hash `hash`) has rows.
    pub(crate) fn contains(&self, hash: u64, key: &K) -> bool
    where
        K: Eq,
    {
        self.index.find(hash, |&i| self.groups[i].key == *key).is_some()
    }

    /// Number of keys with rows.
    pub(crate) fn keys(&self) -> usize {
        self.groups.len()
    }

    /// Takes the groups out in first-seen order: `(hash, key, rows)`. Whatever the caller
    /// does not take is dropped with the iterator; the buffers keep their capacity.
    pub(crate) fn drain(&mut self) -> Drain<'_, K, R> {
        self.index.clear();
        Drain { groups: self.groups.drain(..), rows: &mut self.rows }
    }
}

/// The iterator of [`BatchGroups::drain`].
pub(crate) struct Drain<'a, K, R> {
    groups: std::vec::Drain<'a, Group<K>>,
    rows: &'a mut Vec<(Option<R>, usize)>,
}

impl<K, R> Iterator for Drain<'_, K, R> {
    type Item = (u64, K, Vec<R>);

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        let g = self.groups.next()?;
        let mut rows = Vec::with_capacity(g.len);
        let mut at = g.head;
        while at != END {
            let (row, next) = &mut self.rows[at];
            rows.extend(row.take());
            at = *next;
        }
        Some((g.hash, g.key, rows))
    }
}

impl<K, R> Drop for Drain<'_, K, R> {
    fn drop(&mut self) {
        self.rows.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_come_out_in_first_seen_order_with_their_rows_in_input_order() {
        let mut b: BatchGroups<(String,), i64> = BatchGroups::default();
        for (k, v) in [("b", 1), ("a", 2), ("b", 3), ("c", 4), ("b", 5), ("a", 6)] {
            b.push((k,), v);
        }
        assert_eq!(b.keys(), 3);
        let got: Vec<(String, Vec<i64>)> = b.drain().map(|(_, k, rows)| (k.0, rows)).collect();
        assert_eq!(got, vec![("b".into(), vec![1, 3, 5]), ("a".into(), vec![2, 6]), ("c".into(), vec![4])]);
        // A second batch starts empty, and a drain left half-way drops the rest.
        b.push(("x",), 7);
        b.push(("y",), 8);
        assert_eq!(b.drain().next().map(|(_, k, rows)| (k.0, rows)), Some(("x".into(), vec![7])));
        assert_eq!(b.keys(), 0);
        b.push(("x",), 9);
        assert_eq!(b.drain().map(|(_, _, rows)| rows).collect::<Vec<_>>(), vec![vec![9]]);
    }
}
