//! List columns: `Vec<T>` as an Arrow `List` of non-null `T` (Spark's `ARRAY<T>` with
//! `containsNull = false`, what `collect_list` and `collect_set` return).

use std::sync::Arc;

use arrow_array::{Array, ArrayRef, ListArray};
use arrow_buffer::{NullBufferBuilder, OffsetBuffer, ScalarBuffer};
use arrow_schema::{DataType, Field};

use crate::record::{ColumnType, Date, NullableBuilder, Timestamp};
use crate::value::{IntoColumn, IntoOwned};

/// An element type of a list column: a plain (non-`Option`) column type. Equality and the
/// hash are Spark's for `collect_set`: doubles compare by their bits after `-0.0` becomes
/// `0.0` and every NaN one NaN (Spark's `NormalizeFloatingNumbers`).
pub trait ListElement: ColumnType + Clone + Default + Send + Sync + std::fmt::Debug + 'static {
    /// Whether two elements are the same set member.
    fn same(&self, other: &Self) -> bool;
    /// An in-memory hash consistent with [`ListElement::same`] (never persisted).
    fn set_hash(&self) -> u64;
}

/// A 64-bit mix of a word (in-memory tables only; never persisted).
#[inline(always)]
fn mix(x: u64) -> u64 {
    let x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    let x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

macro_rules! word_element {
    ($($t:ty => |$v:ident| $word:expr),*) => {$(
        impl ListElement for $t {
            fn same(&self, other: &Self) -> bool {
                self == other
            }
            fn set_hash(&self) -> u64 {
                let $v = self;
                mix($word)
            }
        }
    )*};
}
word_element!(
    bool => |v| *v as u64,
    i32 => |v| *v as u32 as u64,
    i64 => |v| *v as u64,
    Timestamp => |v| v.0 as u64,
    Date => |v| v.0 as u32 as u64
);

/// A double's bits after Spark's normalization (`-0.0` → `0.0`, one NaN).
#[inline(always)]
pub(crate) fn normalized_bits(v: f64) -> u64 {
    if v.is_nan() {
        f64::NAN.to_bits()
    } else if v == 0.0 {
        0
    } else {
        v.to_bits()
    }
}

impl ListElement for f64 {
    fn same(&self, other: &Self) -> bool {
        normalized_bits(*self) == normalized_bits(*other)
    }
    fn set_hash(&self) -> u64 {
        mix(normalized_bits(*self))
    }
}

impl ListElement for String {
    fn same(&self, other: &Self) -> bool {
        self == other
    }
    fn set_hash(&self) -> u64 {
        // FNV-1a over the bytes, mixed: in-memory only.
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in self.as_bytes() {
            h = (h ^ *b as u64).wrapping_mul(0x0000_0100_0000_01b3);
        }
        mix(h)
    }
}

/// A list read from a column: the element array and the row's range in it.
pub struct ListRef<'a, T: ColumnType> {
    values: &'a T::Array,
    start: usize,
    end: usize,
}

impl<T: ColumnType> Clone for ListRef<'_, T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T: ColumnType> Copy for ListRef<'_, T> {}

impl<'a, T: ColumnType> ListRef<'a, T> {
    /// Number of elements.
    pub fn len(self) -> usize {
        self.end - self.start
    }
    /// Whether the list is empty.
    pub fn is_empty(self) -> bool {
        self.start == self.end
    }
    /// The elements, borrowed.
    pub fn iter(self) -> impl Iterator<Item = T::Ref<'a>> {
        (self.start..self.end).map(move |i| T::get(self.values, i))
    }
}

/// Builds a list column: the elements' own builder and the offsets (and nulls, for an
/// `Option<Vec<T>>` column).
pub struct ListBuilder<T: ColumnType> {
    values: T::Builder,
    offsets: Vec<i32>,
    nulls: NullBufferBuilder,
}

impl<T: ColumnType> NullableBuilder for ListBuilder<T> {
    fn append_null_value(&mut self) {
        self.offsets.push(*self.offsets.last().unwrap_or(&0));
        self.nulls.append_null();
    }
}

fn item_field<T: ColumnType>() -> Arc<Field> {
    Arc::new(Field::new("item", T::data_type(), false))
}

impl<T: ListElement> ColumnType for Vec<T> {
    type Array = ListArray;
    type Builder = ListBuilder<T>;
    type Ref<'a> = ListRef<'a, T>;
    crate::record::padded_as_option!();
    fn data_type() -> DataType {
        DataType::List(item_field::<T>())
    }
    #[inline(always)]
    fn get(array: &ListArray, i: usize) -> ListRef<'_, T> {
        let offsets = array.value_offsets();
        // `downcast` checked the element type, so the values are a `T::Array`.
        let values = array.values().as_any().downcast_ref::<T::Array>().expect("list elements of the declared type");
        ListRef { values, start: offsets[i] as usize, end: offsets[i + 1] as usize }
    }
    fn from_ref(r: ListRef<'_, T>) -> Vec<T> {
        r.iter().map(T::from_ref).collect()
    }
    fn new_builder(capacity: usize) -> ListBuilder<T> {
        let mut offsets = Vec::with_capacity(capacity + 1);
        offsets.push(0);
        ListBuilder { values: T::new_builder(capacity), offsets, nulls: NullBufferBuilder::new(capacity) }
    }
    #[inline]
    fn append(builder: &mut ListBuilder<T>, value: Vec<T>) {
        let n = value.len() as i32;
        for v in value {
            T::append(&mut builder.values, v);
        }
        builder.offsets.push(builder.offsets.last().copied().unwrap_or(0) + n);
        builder.nulls.append_non_null();
    }
    fn finish(builder: &mut ListBuilder<T>) -> ArrayRef {
        let values = T::finish(&mut builder.values);
        let offsets = std::mem::replace(&mut builder.offsets, vec![0]);
        let nulls = builder.nulls.finish();
        // The offsets start at 0 and never decrease (each append adds a length).
        let offsets = OffsetBuffer::new(ScalarBuffer::from(offsets));
        Arc::new(ListArray::new(item_field::<T>(), offsets, values, nulls))
    }
}

impl<T: ListElement> IntoOwned for Vec<T> {
    type Owned = Vec<T>;
    #[inline(always)]
    fn into_owned(self) -> Vec<T> {
        self
    }
}

impl<T: ListElement> IntoColumn<Vec<T>> for Vec<T> {
    #[inline(always)]
    fn append_to(self, builder: &mut ListBuilder<T>) {
        <Vec<T> as ColumnType>::append(builder, self)
    }
}

impl<T: ListElement> IntoColumn<Vec<T>> for &Vec<T> {
    #[inline(always)]
    fn append_to(self, builder: &mut ListBuilder<T>) {
        <Vec<T> as ColumnType>::append(builder, self.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::cast::AsArray;

    #[test]
    fn lists_round_trip_through_arrow() {
        let mut b = <Vec<String> as ColumnType>::new_builder(2);
        <Vec<String> as ColumnType>::append(&mut b, vec!["a".into(), "b".into()]);
        <Vec<String> as ColumnType>::append(&mut b, vec![]);
        let a = <Vec<String> as ColumnType>::finish(&mut b);
        assert_eq!(a.data_type(), &<Vec<String> as ColumnType>::data_type());
        let list = a.as_list::<i32>();
        let back: Vec<Vec<String>> =
            (0..2).map(|i| <Vec<String> as ColumnType>::from_ref(<Vec<String> as ColumnType>::get(list, i))).collect();
        assert_eq!(back, vec![vec!["a".to_string(), "b".to_string()], vec![]]);

        let mut b = <Option<Vec<i64>> as ColumnType>::new_builder(2);
        <Option<Vec<i64>> as ColumnType>::append(&mut b, None);
        <Option<Vec<i64>> as ColumnType>::append(&mut b, Some(vec![3]));
        let a = <Option<Vec<i64>> as ColumnType>::finish(&mut b);
        assert!(a.is_null(0) && !a.is_null(1));
        assert_eq!(<Vec<i64> as ColumnType>::get(a.as_list::<i32>(), 1).iter().collect::<Vec<_>>(), vec![3]);
    }

    #[test]
    fn set_equality_normalizes_doubles() {
        assert!((-0.0f64).same(&0.0) && f64::NAN.same(&-f64::NAN));
        assert_eq!((-0.0f64).set_hash(), 0.0f64.set_hash());
        assert!(!1.0f64.same(&2.0));
    }
}
