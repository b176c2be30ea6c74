//! `first(x)` and `last(x)`: the value of a group's first or last row, in the order rows
//! arrive (a batch's rows in order, batches in order), as Spark's `First`/`Last`. By default a
//! null counts as a value (`first` of a group whose first row is null is null, even if later
//! rows have values); `first(x, true)` / `last(x, true)` skip nulls (Spark's `ignoreNulls`).

use crate::list::ListElement;
use crate::record::{Date, Timestamp};

use super::Merge;

/// Inputs of `first`, `last`, `collect_list` and `collect_set`: a column value, owned or
/// borrowed, possibly null.
#[diagnostic::on_unimplemented(
    message = "`first`/`last`/`collect_list`/`collect_set` cannot take a `{Self}`",
    label = "expected bool, i32, i64, f64, &str, String, Timestamp, Date or an Option of them"
)]
pub trait ValueInput: Sized {
    /// The stored (owned, non-null) value, also a list element.
    type Value: ListElement;
    /// This input type without its borrows (`&str` → `String`, `Option<&str>` →
    /// `Option<String>`): accumulators are named by it, so the state they live in, which
    /// outlives every batch, borrows nothing from a batch.
    type Kind: ValueInput<Value = Self::Value, Output = Self::Output> + 'static;
    /// `first`/`last`'s result: the value, or an `Option` of it for a nullable input.
    type Output;
    /// Whether this input is null.
    fn is_null_input(&self) -> bool;
    /// The owned value; `None` when null.
    fn into_value(self) -> Option<Self::Value>;
    /// The result from the stored value.
    fn output(v: Option<&Self::Value>) -> Self::Output;
}

macro_rules! value_input {
    ($($t:ty => $v:ty, |$x:ident| $own:expr);* $(;)?) => {$(
        impl ValueInput for $t {
            type Value = $v;
            type Kind = $v;
            type Output = $v;
            #[inline(always)]
            fn is_null_input(&self) -> bool {
                false
            }
            #[inline(always)]
            fn into_value(self) -> Option<$v> {
                let $x = self;
                Some($own)
            }
            fn output(v: Option<&$v>) -> $v {
                // A group has seen a row, and a non-null input always stores its value.
                v.cloned().unwrap_or_default()
            }
        }
    )*};
}
value_input!(
    bool => bool, |x| x;
    i32 => i32, |x| x;
    i64 => i64, |x| x;
    f64 => f64, |x| x;
    Timestamp => Timestamp, |x| x;
    Date => Date, |x| x;
    String => String, |x| x;
    &str => String, |x| x.to_owned();
    &String => String, |x| x.clone();
    &i64 => i64, |x| *x;
    &i32 => i32, |x| *x;
    &f64 => f64, |x| *x;
    &bool => bool, |x| *x;
    &Timestamp => Timestamp, |x| *x;
    &Date => Date, |x| *x;
);

impl<T: ValueInput> ValueInput for Option<T> {
    type Value = T::Value;
    type Kind = Option<T::Kind>;
    type Output = Option<T::Value>;
    #[inline(always)]
    fn is_null_input(&self) -> bool {
        self.as_ref().is_none_or(T::is_null_input)
    }
    #[inline(always)]
    fn into_value(self) -> Option<T::Value> {
        self.and_then(T::into_value)
    }
    fn output(v: Option<&T::Value>) -> Option<T::Value> {
        v.cloned()
    }
}

/// `first(x)` (`IGNORE_NULLS = false`) and `first(x, true)`, named by the input's
/// [`ValueInput::Kind`].
#[derive(Clone, Debug)]
pub struct First<I: ValueInput, const IGNORE_NULLS: bool> {
    set: bool,
    value: Option<I::Value>,
}

/// `last(x)` (`IGNORE_NULLS = false`) and `last(x, true)`.
#[derive(Clone, Debug)]
pub struct Last<I: ValueInput, const IGNORE_NULLS: bool> {
    set: bool,
    value: Option<I::Value>,
}

macro_rules! first_last_common {
    ($name:ident) => {
        impl<I: ValueInput, const IGNORE_NULLS: bool> Default for $name<I, IGNORE_NULLS> {
            fn default() -> Self {
                $name { set: false, value: None }
            }
        }

        impl<I: ValueInput, const IGNORE_NULLS: bool> $name<I, IGNORE_NULLS> {
            /// Nothing seen yet.
            pub fn new() -> Self {
                Self::default()
            }
            /// The result.
            pub fn finish(&self) -> I::Output {
                I::output(self.value.as_ref())
            }
            /// Whether a value (a null too, unless nulls are ignored) was taken, and the value
            /// (for checkpoints).
            pub fn raw(&self) -> (bool, Option<&I::Value>) {
                (self.set, self.value.as_ref())
            }
            /// Rebuilds from [`Self::raw`].
            pub fn from_raw(set: bool, value: Option<I::Value>) -> Self {
                $name { set, value }
            }
        }
    };
}
first_last_common!(First);
first_last_common!(Last);

impl<I: ValueInput, const IGNORE_NULLS: bool> First<I, IGNORE_NULLS> {
    /// Considers a row's value: kept if it is the first (the first non-null with
    /// `IGNORE_NULLS`).
    #[inline(always)]
    pub fn update<V: ValueInput<Kind = I, Value = I::Value>>(&mut self, v: V) {
        if self.set || (IGNORE_NULLS && v.is_null_input()) {
            return;
        }
        self.value = v.into_value();
        self.set = true;
    }
}

impl<I: ValueInput, const IGNORE_NULLS: bool> Last<I, IGNORE_NULLS> {
    /// Considers a row's value: it replaces the previous one (unless null with
    /// `IGNORE_NULLS`).
    #[inline(always)]
    pub fn update<V: ValueInput<Kind = I, Value = I::Value>>(&mut self, v: V) {
        if IGNORE_NULLS && v.is_null_input() {
            return;
        }
        self.value = v.into_value();
        self.set = true;
    }
}

impl<I: ValueInput, const IGNORE_NULLS: bool> Merge for First<I, IGNORE_NULLS> {
    /// `other` holds later rows: it only counts if nothing was taken yet.
    fn merge(&mut self, other: Self) {
        if !self.set {
            *self = other;
        }
    }
}

impl<I: ValueInput, const IGNORE_NULLS: bool> Merge for Last<I, IGNORE_NULLS> {
    /// `other` holds later rows: its value wins if it took one.
    fn merge(&mut self, other: Self) {
        if other.set {
            *self = other;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nulls_count_unless_ignored() {
        let mut f = First::<Option<i64>, false>::new();
        let _: Option<String> = {
            let mut borrowed = First::<Option<String>, false>::new();
            borrowed.update(Some("a"));
            borrowed.finish()
        };
        let mut fi = First::<Option<i64>, true>::new();
        let mut l = Last::<Option<i64>, false>::new();
        let mut li = Last::<Option<i64>, true>::new();
        for v in [None, Some(1i64), Some(2), None] {
            f.update(v);
            fi.update(v);
            l.update(v);
            li.update(v);
        }
        assert_eq!((f.finish(), fi.finish(), l.finish(), li.finish()), (None, Some(1), None, Some(2)));
        let mut s = First::<String, false>::new();
        s.update("b");
        s.update("a");
        assert_eq!(s.finish(), "b");
    }

    #[test]
    fn merge_keeps_row_order() {
        let (mut f, mut later) = (First::<Option<i64>, true>::new(), First::<Option<i64>, true>::new());
        f.update(None::<i64>);
        later.update(Some(5i64));
        f.merge(later);
        assert_eq!(f.finish(), Some(5), "nothing taken yet: the later part's value");
        let (mut l, later) = (Last::<i64, false>::new(), Last::<i64, false>::new());
        l.update(3i64);
        l.merge(later);
        assert_eq!(l.finish(), 3, "a later part that saw nothing changes nothing");
    }
}
