//! `collect_list(x)` and `collect_set(x)`: a group's non-null values as a list (`Vec<T>`,
//! Spark's `ARRAY<T>`), every value in row order, or each distinct value once in the order it
//! was first seen. Nulls are skipped; a group with only nulls gets an empty list, as in Spark.
//! Spark's `collect_set` gives its elements in its hash set's order, which it does not
//! specify; flowgate's first-seen order is deterministic (sort the list to compare the two).

use hashbrown::HashTable;

use crate::list::ListElement;

use super::first::ValueInput;
use super::Merge;

/// `collect_list(x)`, named by the input's [`ValueInput::Kind`].
#[derive(Clone, Debug)]
pub struct CollectList<I: ValueInput> {
    items: Vec<I::Value>,
}

impl<I: ValueInput> Default for CollectList<I> {
    fn default() -> Self {
        CollectList { items: Vec::new() }
    }
}

impl<I: ValueInput> CollectList<I> {
    /// An empty list.
    pub fn new() -> Self {
        Self::default()
    }
    /// Appends a value (nulls are skipped).
    #[inline(always)]
    pub fn update<V: ValueInput<Kind = I, Value = I::Value>>(&mut self, v: V) {
        if let Some(v) = v.into_value() {
            self.items.push(v);
        }
    }
    /// The values so far.
    pub fn items(&self) -> &[I::Value] {
        &self.items
    }
    /// Rebuilds from [`CollectList::items`].
    pub fn from_items(items: Vec<I::Value>) -> Self {
        CollectList { items }
    }
    /// The list.
    pub fn finish(&self) -> Vec<I::Value> {
        self.items.clone()
    }
}

impl<I: ValueInput> Merge for CollectList<I> {
    fn merge(&mut self, other: Self) {
        self.items.extend(other.items);
    }
}

/// `collect_set(x)`: the distinct values, with an index of them by hash (in memory only; a
/// restore rebuilds it).
#[derive(Clone, Debug)]
pub struct CollectSet<I: ValueInput> {
    items: Vec<I::Value>,
    index: HashTable<u32>,
}

impl<I: ValueInput> Default for CollectSet<I> {
    fn default() -> Self {
        CollectSet { items: Vec::new(), index: HashTable::new() }
    }
}

impl<I: ValueInput> CollectSet<I> {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }
    fn insert(&mut self, v: I::Value) {
        let hash = v.set_hash();
        let items = &self.items;
        if self.index.find(hash, |&i| items[i as usize].same(&v)).is_none() {
            let at = self.items.len() as u32;
            let items = &self.items;
            self.index.insert_unique(hash, at, |&i| items[i as usize].set_hash());
            self.items.push(v);
        }
    }
    /// Adds a value unless it is null or already there.
    #[inline(always)]
    pub fn update<V: ValueInput<Kind = I, Value = I::Value>>(&mut self, v: V) {
        if let Some(v) = v.into_value() {
            self.insert(v);
        }
    }
    /// The distinct values, in the order first seen.
    pub fn items(&self) -> &[I::Value] {
        &self.items
    }
    /// Rebuilds from [`CollectSet::items`] (duplicates, which a valid checkpoint never holds,
    /// are dropped).
    pub fn from_items(items: Vec<I::Value>) -> Self {
        let mut s = Self::default();
        for v in items {
            s.insert(v);
        }
        s
    }
    /// The set as a list.
    pub fn finish(&self) -> Vec<I::Value> {
        self.items.clone()
    }
}

impl<I: ValueInput> Merge for CollectSet<I> {
    fn merge(&mut self, other: Self) {
        for v in other.items {
            self.insert(v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_skip_nulls_sets_keep_first_occurrences() {
        let mut l = CollectList::<Option<String>>::new();
        let mut s = CollectSet::<Option<String>>::new();
        for v in [Some("b"), None, Some("a"), Some("b")] {
            l.update(v);
            s.update(v);
        }
        assert_eq!(l.finish(), ["b", "a", "b"]);
        assert_eq!(s.finish(), ["b", "a"]);
        let mut only_nulls = CollectList::<Option<i64>>::new();
        only_nulls.update(None::<i64>);
        assert!(only_nulls.finish().is_empty(), "an empty list, not null, as in Spark");
    }

    #[test]
    fn merge_appends_later_rows() {
        let (mut a, mut b) = (CollectSet::<f64>::new(), CollectSet::<f64>::new());
        a.update(0.0);
        a.update(1.0);
        b.update(-0.0);
        b.update(2.0);
        a.merge(b);
        assert_eq!(a.finish(), [0.0, 1.0, 2.0], "-0.0 is 0.0 in a set, as in Spark");
        let (mut a, mut b) = (CollectList::<i64>::new(), CollectList::<i64>::new());
        a.update(1i64);
        b.update(1i64);
        a.merge(b);
        assert_eq!(a.finish(), [1, 1]);
        let many = CollectSet::<i64>::from_items((0..1000).chain(0..10).collect());
        assert_eq!(many.items().len(), 1000);
    }
}
