//! Sorting emitted rows (`order_by` after an aggregation in complete mode), in Spark's order:
//! ascending puts nulls first, descending puts them last (unless the query says otherwise),
//! doubles in total order with NaN above every number, as Spark sorts them.

use std::cmp::Ordering;

use crate::record::{Date, Timestamp};
use crate::window::Window;

/// A value that can be a sort key.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be a sort key",
    label = "sort by bool, i32, i64, f64, String, Timestamp, Date, a window or an Option of them"
)]
pub trait SortValue {
    /// The order of two non-null values.
    fn cmp_value(&self, other: &Self) -> Ordering;
    /// Whether the value is null.
    fn is_null(&self) -> bool {
        false
    }
}

macro_rules! ord_value {
    ($($t:ty),*) => {$(
        impl SortValue for $t {
            #[inline]
            fn cmp_value(&self, other: &Self) -> Ordering {
                self.cmp(other)
            }
        }
    )*};
}
ord_value!(bool, i32, i64, String, Timestamp, Date);

impl SortValue for f64 {
    /// NaN sorts above every number, as in Spark (`total_cmp` also orders -0.0 below 0.0).
    #[inline]
    fn cmp_value(&self, other: &Self) -> Ordering {
        match (self.is_nan(), other.is_nan()) {
            (true, true) => Ordering::Equal,
            (true, false) => Ordering::Greater,
            (false, true) => Ordering::Less,
            (false, false) => self.total_cmp(other),
        }
    }
}

impl SortValue for Window {
    #[inline]
    fn cmp_value(&self, other: &Self) -> Ordering {
        (self.start, self.end).cmp(&(other.start, other.end))
    }
}

impl<T: SortValue> SortValue for Option<T> {
    #[inline]
    fn cmp_value(&self, other: &Self) -> Ordering {
        match (self, other) {
            (Some(a), Some(b)) => a.cmp_value(b),
            _ => Ordering::Equal,
        }
    }
    #[inline]
    fn is_null(&self) -> bool {
        self.is_none()
    }
}

/// One sort key of a row: its value, the direction and where nulls go.
#[derive(Clone, Debug)]
pub struct SortKey<T> {
    value: T,
    descending: bool,
    nulls_first: bool,
}

impl<T: SortValue> SortKey<T> {
    /// Ascending, nulls first (Spark's `asc`).
    pub fn asc(value: T) -> Self {
        SortKey { value, descending: false, nulls_first: true }
    }
    /// Descending, nulls last (Spark's `desc`).
    pub fn desc(value: T) -> Self {
        SortKey { value, descending: true, nulls_first: false }
    }
    /// With nulls first or last, whatever the direction.
    pub fn nulls(mut self, first: bool) -> Self {
        self.nulls_first = first;
        self
    }
    /// The order of two keys of the same column.
    #[inline]
    pub fn compare(&self, other: &Self) -> Ordering {
        match (self.value.is_null(), other.value.is_null()) {
            (true, true) => Ordering::Equal,
            (true, false) => {
                if self.nulls_first {
                    Ordering::Less
                } else {
                    Ordering::Greater
                }
            }
            (false, true) => {
                if self.nulls_first {
                    Ordering::Greater
                } else {
                    Ordering::Less
                }
            }
            (false, false) => {
                let o = self.value.cmp_value(&other.value);
                if self.descending {
                    o.reverse()
                } else {
                    o
                }
            }
        }
    }
}

/// A row's sort keys: a tuple of [`SortKey`]s, compared key by key.
pub trait SortKeys {
    /// Lexicographic order of two rows' keys.
    fn compare(&self, other: &Self) -> Ordering;
}

macro_rules! keys_tuple {
    ($($name:ident $idx:tt),+) => {
        impl<$($name: SortValue),+> SortKeys for ($(SortKey<$name>,)+) {
            #[inline]
            fn compare(&self, other: &Self) -> Ordering {
                Ordering::Equal $(.then_with(|| self.$idx.compare(&other.$idx)))+
            }
        }
    };
}
keys_tuple!(A 0);
keys_tuple!(A 0, B 1);
keys_tuple!(A 0, B 1, C 2);
keys_tuple!(A 0, B 1, C 2, D 3);
keys_tuple!(A 0, B 1, C 2, D 3, E 4);
keys_tuple!(A 0, B 1, C 2, D 3, E 4, F 5);

/// Sorts `rows` by their keys (stable: rows with equal keys keep their order) and keeps the
/// first `limit`.
pub fn top<K: SortKeys, R>(rows: &mut Vec<(K, R)>, limit: Option<usize>) {
    rows.sort_by(|a, b| a.0.compare(&b.0));
    if let Some(n) = limit {
        rows.truncate(n);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sparks_order_nulls_and_nan() {
        let mut rows: Vec<((SortKey<Option<i64>>,), &str)> =
            [(Some(2), "b"), (None, "n"), (Some(5), "e"), (Some(1), "a")]
                .into_iter()
                .map(|(v, r)| ((SortKey::desc(v),), r))
                .collect();
        top(&mut rows, None);
        assert_eq!(rows.iter().map(|r| r.1).collect::<Vec<_>>(), ["e", "b", "a", "n"], "desc: nulls last");
        type TwoKeys = (SortKey<Option<i64>>, SortKey<String>);
        let mut rows: Vec<(TwoKeys, i32)> = vec![
            ((SortKey::asc(Some(1)), SortKey::desc("x".into())), 0),
            ((SortKey::asc(None), SortKey::desc("y".into())), 1),
            ((SortKey::asc(Some(1)), SortKey::desc("z".into())), 2),
        ];
        top(&mut rows, Some(2));
        assert_eq!(rows.iter().map(|r| r.1).collect::<Vec<_>>(), [1, 2], "asc: nulls first, then the second key");
        assert_eq!(f64::NAN.cmp_value(&1e300), Ordering::Greater);
    }
}
