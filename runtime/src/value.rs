//! Value conversions used by generated code: grouping keys looked up by reference and stored
//! owned ([`GroupKey`]), values moved into output rows ([`IntoOwned`]) and values appended to
//! output columns ([`IntoColumn`]).

use std::hash::{BuildHasher, Hasher};

use crate::record::{ColumnType, Date, NullableBuilder, Timestamp};
use crate::window::Window;

/// The hasher for grouping keys: the persisted partition hash ([`crate::partition`]), so a
/// key's shuffle partition never changes between runs or builds of a query (the partition
/// count and assignment are part of its checkpoint).
pub fn key_hasher() -> crate::partition::PartitionHash {
    crate::partition::PartitionHash
}

/// Hashes a grouping key with [`key_hasher`].
#[inline]
pub fn hash_key<K: GroupKey + ?Sized>(key: &K) -> u64 {
    let mut h = key_hasher().build_hasher();
    key.hash_key(&mut h);
    h.finish()
}

/// A grouping key as computed per row (often borrowing from the input, like `&str`), with the
/// owned form that aggregation state stores.
///
/// Invariant: `k.hash_key` equals `k.to_owned_key().hash_key` and `k.eq_owned(&k.to_owned_key())`,
/// so a borrowed key finds its owned entry without allocating. `hash_key` feeds each column
/// with exactly one call of the format [`crate::partition`] documents (the hash is persisted).
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be a grouping key",
    label = "group by bool, i32, i64, &str, String, Timestamp, Date or an Option of them",
    note = "doubles are not grouping keys in flowgate; group by a rounded integer instead"
)]
pub trait GroupKey {
    /// The owned key stored in state.
    type Owned: GroupKey<Owned = Self::Owned> + Clone + Eq + Send + Sync + 'static;
    /// Feeds the key into `h`.
    fn hash_key<H: Hasher>(&self, h: &mut H);
    /// Whether this key equals a stored one.
    fn eq_owned(&self, other: &Self::Owned) -> bool;
    /// The owned key.
    fn to_owned_key(&self) -> Self::Owned;
    /// Whether any column of the key is null (an equi-join key that never matches, as SQL's
    /// `=`).
    #[inline(always)]
    fn has_null(&self) -> bool {
        false
    }
}

macro_rules! copy_key {
    ($($t:ty => |$v:ident, $h:ident| $write:expr),*) => {$(
        impl GroupKey for $t {
            type Owned = $t;
            #[inline(always)]
            fn hash_key<H: Hasher>(&self, $h: &mut H) {
                let $v = self;
                $write
            }
            #[inline(always)]
            fn eq_owned(&self, other: &$t) -> bool {
                self == other
            }
            #[inline(always)]
            fn to_owned_key(&self) -> $t {
                *self
            }
        }
    )*};
}
copy_key!(
    bool => |v, h| h.write_u8(*v as u8),
    i32 => |v, h| h.write_i32(*v),
    i64 => |v, h| h.write_i64(*v),
    Timestamp => |v, h| h.write_i64(v.0),
    Date => |v, h| h.write_i32(v.0)
);

impl GroupKey for Window {
    type Owned = Window;
    /// As Spark's struct `(start, end)`.
    #[inline(always)]
    fn hash_key<H: Hasher>(&self, h: &mut H) {
        h.write_i64(self.start.0);
        h.write_i64(self.end.0)
    }
    #[inline(always)]
    fn eq_owned(&self, other: &Window) -> bool {
        self == other
    }
    #[inline(always)]
    fn to_owned_key(&self) -> Window {
        *self
    }
}

impl<const SIZE: i64> GroupKey for crate::window::WindowKey<SIZE> {
    type Owned = Self;
    /// As the window it stands for (struct `(start, end)`).
    #[inline(always)]
    fn hash_key<H: Hasher>(&self, h: &mut H) {
        h.write_i64(self.start);
        h.write_i64(self.start + SIZE)
    }
    #[inline(always)]
    fn eq_owned(&self, other: &Self) -> bool {
        self.start == other.start
    }
    #[inline(always)]
    fn to_owned_key(&self) -> Self {
        *self
    }
}

impl GroupKey for &str {
    type Owned = String;
    #[inline(always)]
    fn hash_key<H: Hasher>(&self, h: &mut H) {
        h.write(self.as_bytes())
    }
    #[inline(always)]
    fn eq_owned(&self, other: &String) -> bool {
        *self == other.as_str()
    }
    #[inline(always)]
    fn to_owned_key(&self) -> String {
        (*self).to_owned()
    }
}

impl GroupKey for String {
    type Owned = String;
    #[inline(always)]
    fn hash_key<H: Hasher>(&self, h: &mut H) {
        h.write(self.as_bytes())
    }
    #[inline(always)]
    fn eq_owned(&self, other: &String) -> bool {
        self == other
    }
    #[inline(always)]
    fn to_owned_key(&self) -> String {
        self.clone()
    }
}

/// A key borrowed from where it is kept (an aggregation's emitted group, read by an operator
/// after it): the key itself.
impl<T: GroupKey> GroupKey for &T {
    type Owned = T::Owned;
    #[inline(always)]
    fn hash_key<H: Hasher>(&self, h: &mut H) {
        (**self).hash_key(h)
    }
    #[inline(always)]
    fn eq_owned(&self, other: &Self::Owned) -> bool {
        (**self).eq_owned(other)
    }
    #[inline(always)]
    fn to_owned_key(&self) -> Self::Owned {
        (**self).to_owned_key()
    }
    #[inline(always)]
    fn has_null(&self) -> bool {
        (**self).has_null()
    }
}

impl<T: GroupKey> GroupKey for Option<T> {
    type Owned = Option<T::Owned>;
    #[inline(always)]
    /// A null column leaves the hash unchanged (as Spark's `hash()`).
    fn hash_key<H: Hasher>(&self, h: &mut H) {
        if let Some(v) = self {
            v.hash_key(h)
        }
    }
    #[inline(always)]
    fn eq_owned(&self, other: &Self::Owned) -> bool {
        match (self, other) {
            (None, None) => true,
            (Some(a), Some(b)) => a.eq_owned(b),
            _ => false,
        }
    }
    #[inline(always)]
    fn to_owned_key(&self) -> Self::Owned {
        self.as_ref().map(T::to_owned_key)
    }
    #[inline(always)]
    fn has_null(&self) -> bool {
        self.as_ref().is_none_or(T::has_null)
    }
}

macro_rules! tuple_key {
    ($($name:ident $idx:tt),+) => {
        impl<$($name: GroupKey),+> GroupKey for ($($name,)+) {
            type Owned = ($($name::Owned,)+);
            #[inline(always)]
            fn hash_key<HH: Hasher>(&self, h: &mut HH) {
                $(self.$idx.hash_key(h);)+
            }
            #[inline(always)]
            fn eq_owned(&self, other: &Self::Owned) -> bool {
                $(self.$idx.eq_owned(&other.$idx))&&+
            }
            #[inline(always)]
            fn to_owned_key(&self) -> Self::Owned {
                ($(self.$idx.to_owned_key(),)+)
            }
            #[inline(always)]
            fn has_null(&self) -> bool {
                $(self.$idx.has_null())||+
            }
        }
    };
}
tuple_key!(A 0);
tuple_key!(A 0, B 1);
tuple_key!(A 0, B 1, C 2);
tuple_key!(A 0, B 1, C 2, D 3);
tuple_key!(A 0, B 1, C 2, D 3, E 4);
tuple_key!(A 0, B 1, C 2, D 3, E 4, F 5);
tuple_key!(A 0, B 1, C 2, D 3, E 4, F 5, G 6);
tuple_key!(A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7);

impl GroupKey for () {
    type Owned = ();
    fn hash_key<H: Hasher>(&self, _h: &mut H) {}
    fn eq_owned(&self, _other: &()) -> bool {
        true
    }
    fn to_owned_key(&self) {}
}

/// A value moved into an output row: `&str` becomes `String`, `&i64` becomes `i64`,
/// `Option<&str>` becomes `Option<String>`; owned values pass through.
#[diagnostic::on_unimplemented(
    message = "a `{Self}` cannot become a column of the output record",
    label = "columns are bool, i32, i64, f64, String, Timestamp, Date or an Option of them"
)]
pub trait IntoOwned {
    /// The owned form (the output record's field type).
    type Owned;
    /// Converts.
    fn into_owned(self) -> Self::Owned;
}

macro_rules! owned_self {
    ($($t:ty),*) => {$(
        impl IntoOwned for $t {
            type Owned = $t;
            #[inline(always)]
            fn into_owned(self) -> $t {
                self
            }
        }
    )*};
}
owned_self!(bool, i32, i64, f64, String, Timestamp, Date, Window);

impl IntoOwned for &str {
    type Owned = String;
    #[inline(always)]
    fn into_owned(self) -> String {
        self.to_owned()
    }
}

impl<T: IntoOwned + Clone> IntoOwned for &T {
    type Owned = T::Owned;
    #[inline(always)]
    fn into_owned(self) -> T::Owned {
        self.clone().into_owned()
    }
}

impl<T: IntoOwned> IntoOwned for Option<T> {
    type Owned = Option<T::Owned>;
    #[inline(always)]
    fn into_owned(self) -> Self::Owned {
        self.map(T::into_owned)
    }
}

/// A value appended to an output column of type `T` (see [`crate::record::OutColumn::push`]):
/// `T` itself, or a borrowed form that is copied straight into the column's builder — `&str`
/// for `String`, `Option<&str>` for `Option<String>`, `&i64` for `i64` — so no owned value
/// is made per row. Accepts the same values as [`IntoOwned`] with `Owned = T`.
#[diagnostic::on_unimplemented(
    message = "a `{Self}` cannot be written to an output column of type `{T}`",
    label = "expected `{T}` (or a borrowed form of it)"
)]
pub trait IntoColumn<T: ColumnType> {
    /// Appends `self` to `builder`.
    fn append_to(self, builder: &mut T::Builder);
}

macro_rules! into_column_self {
    ($($t:ty),*) => {$(
        impl IntoColumn<$t> for $t {
            #[inline(always)]
            fn append_to(self, builder: &mut <$t as ColumnType>::Builder) {
                <$t as ColumnType>::append(builder, self)
            }
        }
        impl IntoColumn<$t> for &$t {
            #[inline(always)]
            fn append_to(self, builder: &mut <$t as ColumnType>::Builder) {
                <$t as ColumnType>::append(builder, *self)
            }
        }
    )*};
}
into_column_self!(bool, i32, i64, f64, Timestamp, Date, Window);

impl IntoColumn<String> for String {
    #[inline(always)]
    fn append_to(self, builder: &mut arrow_array::builder::StringBuilder) {
        builder.append_value(self)
    }
}

impl IntoColumn<String> for &str {
    #[inline(always)]
    fn append_to(self, builder: &mut arrow_array::builder::StringBuilder) {
        builder.append_value(self)
    }
}

impl IntoColumn<String> for &&str {
    #[inline(always)]
    fn append_to(self, builder: &mut arrow_array::builder::StringBuilder) {
        builder.append_value(*self)
    }
}

impl IntoColumn<String> for &String {
    #[inline(always)]
    fn append_to(self, builder: &mut arrow_array::builder::StringBuilder) {
        builder.append_value(self)
    }
}

impl<T, V> IntoColumn<Option<T>> for Option<V>
where
    T: ColumnType,
    T::Builder: NullableBuilder,
    V: IntoColumn<T>,
{
    #[inline(always)]
    fn append_to(self, builder: &mut T::Builder) {
        match self {
            Some(v) => v.append_to(builder),
            None => builder.append_null_value(),
        }
    }
}

impl<'a, T, V> IntoColumn<Option<T>> for &'a Option<V>
where
    T: ColumnType,
    T::Builder: NullableBuilder,
    &'a V: IntoColumn<T>,
{
    #[inline(always)]
    fn append_to(self, builder: &mut T::Builder) {
        match self {
            Some(v) => v.append_to(builder),
            None => builder.append_null_value(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn borrowed_and_owned_keys_hash_alike() {
        let k = ("dog", Some(3i64));
        let owned = k.to_owned_key();
        assert_eq!(hash_key(&k), hash_key(&owned));
        assert!(k.eq_owned(&owned));
        assert!(!("cat", Some(3i64)).eq_owned(&owned));
        assert_eq!(hash_key(&(None::<&str>,)), hash_key(&(None::<String>,)));
    }

    #[test]
    fn into_owned_conversions() {
        let s: String = "a".into_owned();
        assert_eq!(s, "a");
        let o: Option<String> = Some("b").into_owned();
        assert_eq!(o.as_deref(), Some("b"));
        let n: i64 = (&5i64).into_owned();
        assert_eq!(n, 5);
    }
}
