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

    /// [`BatchGroups::drain`] without a `Vec` per key: each group's rows as a
    /// [`GroupRows`] over the arena (see [`DrainRows::next`]).
    pub(crate) fn drain_rows(&mut self) -> DrainRows<'_, K, R> {
        self.index.clear();
        DrainRows { groups: self.groups.drain(..), rows: &mut self.rows }
    }
}

/// The groups of [`BatchGroups::drain_rows`], each borrowing the arena until the next.
pub(crate) struct DrainRows<'a, K, R> {
    groups: std::vec::Drain<'a, Group<K>>,
    rows: &'a mut Vec<(Option<R>, usize)>,
}

impl<K, R> DrainRows<'_, K, R> {
    /// The next group: `(hash, key, rows)`, its rows moved out of the arena as they are read.
    #[inline]
    pub(crate) fn next(&mut self) -> Option<(u64, K, GroupRows<'_, R>)> {
        let g = self.groups.next()?;
        Some((g.hash, g.key, GroupRows { arena: &mut self.rows[..], at: g.head, left: g.len }))
    }
}

impl<K, R> Drop for DrainRows<'_, K, R> {
    fn drop(&mut self) {
        self.rows.clear();
    }
}

/// One key's rows of the batch, in input order, as the group-state function may take them
/// (`rows: GroupRows<'_, Click>`): an iterator of owned records moved out of the batch's
/// arena as it is read, with no allocation per key — Spark's `Iterator[V]`. A function that
/// takes `Vec<Click>` instead gets them collected ([`FromGroupRows`]).
pub struct GroupRows<'a, R> {
    arena: &'a mut [(Option<R>, usize)],
    at: usize,
    left: usize,
}

impl<R> GroupRows<'_, R> {
    /// No rows (a timed-out key's call, or one for its initial state only).
    pub fn empty() -> Self {
        GroupRows { arena: &mut [], at: END, left: 0 }
    }

    /// Rows not read yet.
    pub fn len(&self) -> usize {
        self.left
    }

    /// Whether every row has been read (or there was none).
    pub fn is_empty(&self) -> bool {
        self.left == 0
    }
}

impl<R> Iterator for GroupRows<'_, R> {
    type Item = R;

    #[inline]
    fn next(&mut self) -> Option<R> {
        if self.at == END {
            return None;
        }
        let (row, next) = &mut self.arena[self.at];
        self.at = *next;
        self.left -= 1;
        row.take()
    }

    #[inline]
    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left, Some(self.left))
    }
}

impl<R> ExactSizeIterator for GroupRows<'_, R> {}

impl<R> std::fmt::Debug for GroupRows<'_, R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "GroupRows({} rows)", self.left)
    }
}

/// What a group-state function's rows parameter may be: [`GroupRows`] (an iterator, no
/// allocation) or `Vec<R>` (collected). Generated code converts the key's rows to whichever
/// the function declares.
#[diagnostic::on_unimplemented(
    message = "a group-state function takes its rows as `Vec<{R}>` or `GroupRows<'_, {R}>`, not `{Self}`",
    label = "the function's second parameter"
)]
pub trait FromGroupRows<'a, R>: Sized {
    /// The rows as this type.
    fn from_group_rows(rows: GroupRows<'a, R>) -> Self;
}

impl<'a, R> FromGroupRows<'a, R> for GroupRows<'a, R> {
    #[inline]
    fn from_group_rows(rows: GroupRows<'a, R>) -> Self {
        rows
    }
}

impl<'a, R> FromGroupRows<'a, R> for Vec<R> {
    #[inline]
    fn from_group_rows(rows: GroupRows<'a, R>) -> Self {
        rows.collect()
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

    #[test]
    fn drained_rows_are_an_exact_size_iterator_over_the_arena_and_what_is_left_is_dropped() {
        let mut b: BatchGroups<(String,), String> = BatchGroups::default();
        for (k, v) in [("b", "1"), ("a", "2"), ("b", "3"), ("b", "5")] {
            b.push((k,), v.to_string());
        }
        let mut d = b.drain_rows();
        let (_, k, mut rows) = d.next().unwrap();
        assert_eq!((k.0.as_str(), rows.len()), ("b", 3));
        assert_eq!(rows.next().as_deref(), Some("1"));
        assert_eq!(rows.len(), 2, "b's last two rows left unread");
        let (_, k, rows) = d.next().unwrap();
        assert_eq!((k.0, rows.collect::<Vec<_>>()), ("a".to_string(), vec!["2".to_string()]));
        assert!(d.next().is_none());
        drop(d);
        assert_eq!(b.keys(), 0);
        b.push(("c",), "9".into());
        let mut d = b.drain_rows();
        let (_, _, rows) = d.next().unwrap();
        assert_eq!(<Vec<String> as FromGroupRows<'_, String>>::from_group_rows(rows), vec!["9".to_string()]);
        assert_eq!(GroupRows::<i64>::empty().len(), 0);
    }
}
