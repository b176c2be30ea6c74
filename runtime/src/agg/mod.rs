//! Aggregation: accumulators for `count`, `sum`, `avg`, `min`, `max` (here), `first`/`last`
//! ([`first`]), `collect_list`/`collect_set` ([`collect`]), `approx_count_distinct` ([`hll`],
//! Spark's HyperLogLog++) and `stddev`/`variance` ([`moments`]), with Spark's semantics. The
//! operators that keep them per group are `ops::aggregate` (hash aggregation) and
//! `ops::session` (session windows).
//!
//! Accumulators are generic over the *input* type, which rustc infers from the user's
//! expression: `sum(x)` over an `i64` column is `Sum<i64>` and yields `i64`; over an
//! `Option<i64>` column it is `Sum<Option<i64>>` and yields `Option<i64>` (null when every
//! input was null, as in Spark).

use std::cmp::Ordering;

use crate::record::{Date, Timestamp};

pub mod collect;
pub mod first;
pub mod hll;
mod hll_tables;
pub mod moments;

pub use collect::{CollectList, CollectSet};
pub use first::{First, Last, ValueInput};
pub use hll::{ApproxCountDistinct, SparkXxHash64};
pub use moments::{Moments, StddevPop, StddevSamp, VarPop, VarSamp};

/// Accumulators whose partial results combine (Spark's partial/final aggregation).
pub trait Merge {
    /// Folds `other` (a partial result over later rows) into `self`.
    fn merge(&mut self, other: Self);
    /// Called on a group's stored accumulators when a batch first reaches the group, before
    /// its rows: an accumulator that keeps the batch's rows apart from the state (to combine
    /// the two in Spark's order, [`moments`]) folds them in here. Nothing by default.
    #[inline(always)]
    fn begin_batch(&mut self) {}
}

/// `count()` (rows) and `count(x)` (non-null values).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Count(pub i64);

impl Count {
    /// A zero count.
    pub fn new() -> Self {
        Count(0)
    }
    /// Counts a row (`count()` / `count(*)`).
    #[inline(always)]
    pub fn add_row(&mut self) {
        self.0 += 1;
    }
    /// Counts a value unless it is null (`count(x)`).
    #[inline(always)]
    pub fn add<V: Nullable>(&mut self, v: V) {
        self.0 += (!v.is_null()) as i64;
    }
    /// The count.
    pub fn finish(&self) -> i64 {
        self.0
    }
}

impl Merge for Count {
    fn merge(&mut self, other: Self) {
        self.0 += other.0;
    }
}

/// Values that may be null: `Option<_>` is null when `None`; plain values never are.
pub trait Nullable {
    /// Whether this value is SQL null.
    fn is_null(&self) -> bool;
}

impl<T> Nullable for Option<T> {
    #[inline(always)]
    fn is_null(&self) -> bool {
        self.is_none()
    }
}

macro_rules! never_null {
    ($($t:ty),*) => {$(
        impl Nullable for $t {
            #[inline(always)]
            fn is_null(&self) -> bool { false }
        }
    )*};
}
never_null!(bool, i32, i64, f64, String, &str, &String, Timestamp, Date);

/// Inputs of `sum` and `avg`.
#[diagnostic::on_unimplemented(
    message = "`sum`/`avg`/`stddev`/`variance` need a numeric column, but this is `{Self}`",
    label = "not a number: expected i32, i64, f64 or an Option of them",
    note = "convert it first, e.g. `sum(x.parse::<i64>().ok())`"
)]
pub trait NumericInput: Copy {
    /// The running sum (Spark: `bigint` for integers, `double` for doubles; a nullable input
    /// also counts its non-null values, [`NullableSum`]).
    type Sum: Copy + Default + Send + Sync + 'static + std::fmt::Debug;
    /// `sum`'s result type.
    type SumOutput;
    /// `avg`'s result type.
    type AvgOutput;
    /// Adds the value to the sum; returns false when the value was null.
    fn add_to(self, sum: &mut Self::Sum) -> bool;
    /// Adds two sums.
    fn combine(a: Self::Sum, b: Self::Sum) -> Self::Sum;
    /// The sum's result.
    fn sum_output(sum: Self::Sum) -> Self::SumOutput;
    /// The sum as a double (for `avg`).
    fn as_f64(sum: Self::Sum) -> f64;
    /// The average's result.
    fn avg_output(avg: Option<f64>) -> Self::AvgOutput;
    /// The value as a double (`stddev`, `variance`); `None` when null.
    fn to_f64(self) -> Option<f64>;
}

macro_rules! numeric_input {
    ($t:ty, $sum:ty, |$s:ident, $v:ident| $add:expr) => {
        impl NumericInput for $t {
            type Sum = $sum;
            type SumOutput = $sum;
            type AvgOutput = f64;
            #[inline(always)]
            fn add_to(self, sum: &mut $sum) -> bool {
                let ($s, $v): ($sum, $t) = (*sum, self);
                *sum = $add;
                true
            }
            #[inline(always)]
            fn combine(a: $sum, b: $sum) -> $sum {
                a + b
            }
            fn sum_output(sum: $sum) -> $sum {
                sum
            }
            fn as_f64(sum: $sum) -> f64 {
                sum as f64
            }
            fn avg_output(avg: Option<f64>) -> f64 {
                avg.unwrap_or(f64::NAN)
            }
            #[inline(always)]
            fn to_f64(self) -> Option<f64> {
                Some(self as f64)
            }
        }
    };
}
// Integer sums wrap on overflow in release builds like the hand-written loop they compete with;
// Spark's ANSI mode would fail the query instead (noted in the README's semantics section).
numeric_input!(i64, i64, |s, v| s.wrapping_add(v));
numeric_input!(i32, i64, |s, v| s.wrapping_add(v as i64));
numeric_input!(f64, f64, |s, v| s + v);

/// Generated code passes every `sum`/`avg`/`stddev`/`variance` argument through this method. When the column is
/// not a number, method resolution fails right there — one error, under the argument, that
/// names [`NumericInput`] — and rustc, having no type for the argument, reports nothing about
/// the accumulators and the state built from it (a bound checked later would be reported
/// once per use of the state's type).
pub trait NumericColumn: Sized {
    /// The value itself.
    #[inline(always)]
    fn sum_or_avg_needs_a_number(self) -> Self {
        self
    }
}

impl<T: NumericInput> NumericColumn for T {}

/// The running sum of a nullable input: the sum of the non-null values and how many there were
/// (Spark's `sum` is null when every value was null).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct NullableSum<S> {
    /// Sum of the non-null values.
    pub sum: S,
    /// Number of non-null values.
    pub non_null: i64,
}

impl<T: NumericInput> NumericInput for Option<T> {
    type Sum = NullableSum<T::Sum>;
    type SumOutput = Option<T::SumOutput>;
    type AvgOutput = Option<f64>;
    #[inline(always)]
    fn add_to(self, sum: &mut Self::Sum) -> bool {
        match self {
            Some(v) => {
                sum.non_null += v.add_to(&mut sum.sum) as i64;
                true
            }
            None => false,
        }
    }
    fn combine(a: Self::Sum, b: Self::Sum) -> Self::Sum {
        NullableSum { sum: T::combine(a.sum, b.sum), non_null: a.non_null + b.non_null }
    }
    fn sum_output(sum: Self::Sum) -> Self::SumOutput {
        (sum.non_null > 0).then(|| T::sum_output(sum.sum))
    }
    fn as_f64(sum: Self::Sum) -> f64 {
        T::as_f64(sum.sum)
    }
    fn avg_output(avg: Option<f64>) -> Option<f64> {
        avg
    }
    #[inline(always)]
    fn to_f64(self) -> Option<f64> {
        self.and_then(T::to_f64)
    }
}

/// `sum(x)`.
#[derive(Clone, Copy, Debug)]
pub struct Sum<I: NumericInput> {
    sum: I::Sum,
}

impl<I: NumericInput> Default for Sum<I> {
    fn default() -> Self {
        Sum { sum: I::Sum::default() }
    }
}

impl<I: NumericInput> Sum<I> {
    /// An empty sum.
    pub fn new() -> Self {
        Self::default()
    }
    /// Adds a value (nulls are skipped).
    #[inline(always)]
    pub fn update(&mut self, v: I) {
        v.add_to(&mut self.sum);
    }
    /// The sum (null when every value of a nullable input was null).
    pub fn finish(&self) -> I::SumOutput {
        I::sum_output(self.sum)
    }
    /// The running sum (for checkpoints).
    pub fn raw(&self) -> I::Sum {
        self.sum
    }
    /// Rebuilds a sum from [`Sum::raw`].
    pub fn from_raw(sum: I::Sum) -> Self {
        Sum { sum }
    }
}

impl<I: NumericInput> Merge for Sum<I> {
    fn merge(&mut self, other: Self) {
        self.sum = I::combine(self.sum, other.sum);
    }
}

/// `avg(x)`: a double, null when every value was null.
#[derive(Clone, Copy, Debug)]
pub struct Avg<I: NumericInput> {
    sum: I::Sum,
    n: i64,
}

impl<I: NumericInput> Default for Avg<I> {
    fn default() -> Self {
        Avg { sum: I::Sum::default(), n: 0 }
    }
}

impl<I: NumericInput> Avg<I> {
    /// An empty average.
    pub fn new() -> Self {
        Self::default()
    }
    /// Adds a value (nulls are skipped).
    #[inline(always)]
    pub fn update(&mut self, v: I) {
        self.n += v.add_to(&mut self.sum) as i64;
    }
    /// The running sum and count of non-null values (for checkpoints).
    pub fn raw(&self) -> (I::Sum, i64) {
        (self.sum, self.n)
    }
    /// Rebuilds an average from [`Avg::raw`].
    pub fn from_raw(sum: I::Sum, n: i64) -> Self {
        Avg { sum, n }
    }
    /// The average.
    pub fn finish(&self) -> I::AvgOutput {
        I::avg_output((self.n > 0).then(|| I::as_f64(self.sum) / self.n as f64))
    }
}

impl<I: NumericInput> Merge for Avg<I> {
    fn merge(&mut self, other: Self) {
        self.sum = I::combine(self.sum, other.sum);
        self.n += other.n;
    }
}

/// Inputs of `min` and `max`: ordered values, compared without allocating (`&str` against a
/// stored `String`).
#[diagnostic::on_unimplemented(
    message = "`min`/`max` need an ordered column, but this is `{Self}`",
    label = "expected bool, i32, i64, f64, &str, String, Timestamp, Date or an Option of them"
)]
pub trait OrdInput: Sized {
    /// The stored (owned) value.
    type Value: Clone + Default + Send + Sync + 'static + std::fmt::Debug;
    /// `min`/`max`'s result type.
    type Output;
    /// This input type without its borrows (`&str` → `String`): what [`Extreme`] is named
    /// by, so the state it lives in borrows nothing from a batch.
    type Kind: OrdInput<Value = Self::Value, Output = Self::Output> + 'static;
    /// Compares with a stored value; `None` when this input is null.
    fn cmp_stored(&self, stored: &Self::Value) -> Option<Ordering>;
    /// Whether this input is null.
    fn is_null_input(&self) -> bool;
    /// The owned value (only called when not null).
    fn to_value(&self) -> Self::Value;
    /// Compares two stored values (merging partial results).
    fn cmp_values(a: &Self::Value, b: &Self::Value) -> Ordering;
    /// The result from the extreme value seen, if any.
    fn output(v: Option<&Self::Value>) -> Self::Output;
}

/// Spark orders doubles with NaN above everything and -0.0 equal to 0.0.
fn spark_cmp_f64(a: f64, b: f64) -> Ordering {
    match (a.is_nan(), b.is_nan()) {
        (true, true) => Ordering::Equal,
        (true, false) => Ordering::Greater,
        (false, true) => Ordering::Less,
        (false, false) => a.partial_cmp(&b).unwrap_or(Ordering::Equal),
    }
}

macro_rules! ord_input {
    ($t:ty, $cmp:expr) => {
        impl OrdInput for $t {
            type Value = $t;
            type Output = $t;
            type Kind = $t;
            #[inline(always)]
            fn cmp_stored(&self, stored: &$t) -> Option<Ordering> {
                let cmp: fn(&$t, &$t) -> Ordering = $cmp;
                Some(cmp(self, stored))
            }
            fn is_null_input(&self) -> bool {
                false
            }
            fn to_value(&self) -> $t {
                self.clone()
            }
            fn cmp_values(a: &$t, b: &$t) -> Ordering {
                let cmp: fn(&$t, &$t) -> Ordering = $cmp;
                cmp(a, b)
            }
            fn output(v: Option<&$t>) -> $t {
                v.cloned().unwrap_or_default()
            }
        }
    };
}
ord_input!(bool, |a, b| a.cmp(b));
ord_input!(i32, |a, b| a.cmp(b));
ord_input!(i64, |a, b| a.cmp(b));
ord_input!(f64, |a, b| spark_cmp_f64(*a, *b));
ord_input!(Timestamp, |a, b| a.cmp(b));
ord_input!(Date, |a, b| a.cmp(b));
ord_input!(String, |a, b| a.cmp(b));

impl OrdInput for &str {
    type Value = String;
    type Output = String;
    type Kind = String;
    #[inline(always)]
    fn cmp_stored(&self, stored: &String) -> Option<Ordering> {
        Some((*self).cmp(stored.as_str()))
    }
    fn is_null_input(&self) -> bool {
        false
    }
    fn to_value(&self) -> String {
        (*self).to_owned()
    }
    fn cmp_values(a: &String, b: &String) -> Ordering {
        a.cmp(b)
    }
    fn output(v: Option<&String>) -> String {
        v.cloned().unwrap_or_default()
    }
}

impl<T: OrdInput> OrdInput for Option<T> {
    type Value = T::Value;
    type Output = Option<T::Value>;
    type Kind = Option<T::Kind>;
    #[inline(always)]
    fn cmp_stored(&self, stored: &T::Value) -> Option<Ordering> {
        self.as_ref().and_then(|v| v.cmp_stored(stored))
    }
    fn is_null_input(&self) -> bool {
        self.as_ref().is_none_or(T::is_null_input)
    }
    fn to_value(&self) -> T::Value {
        self.as_ref().map(T::to_value).unwrap_or_default()
    }
    fn cmp_values(a: &T::Value, b: &T::Value) -> Ordering {
        T::cmp_values(a, b)
    }
    fn output(v: Option<&T::Value>) -> Option<T::Value> {
        v.cloned()
    }
}

/// `min(x)` (`MAX = false`) and `max(x)` (`MAX = true`).
#[derive(Clone, Debug)]
pub struct Extreme<I: OrdInput, const MAX: bool> {
    value: Option<I::Value>,
}

/// `min(x)`: nulls are skipped; null when every value was null.
pub type Min<I> = Extreme<I, false>;
/// `max(x)`: nulls are skipped; null when every value was null.
pub type Max<I> = Extreme<I, true>;

impl<I: OrdInput, const MAX: bool> Default for Extreme<I, MAX> {
    fn default() -> Self {
        Extreme { value: None }
    }
}

impl<I: OrdInput, const MAX: bool> Extreme<I, MAX> {
    /// Nothing seen yet.
    pub fn new() -> Self {
        Self::default()
    }
    #[inline(always)]
    fn better(ord: Ordering) -> bool {
        if MAX {
            ord == Ordering::Greater
        } else {
            ord == Ordering::Less
        }
    }
    /// Considers a value (of any input type whose [`OrdInput::Kind`] is `I`).
    #[inline(always)]
    pub fn update<V: OrdInput<Kind = I, Value = I::Value>>(&mut self, v: V) {
        match &self.value {
            None => {
                if !v.is_null_input() {
                    self.value = Some(v.to_value());
                }
            }
            Some(cur) => {
                if v.cmp_stored(cur).is_some_and(Self::better) {
                    self.value = Some(v.to_value());
                }
            }
        }
    }
    /// Whether `v` is worse than the extreme seen so far (below a running `max`, above a
    /// running `min`), so that no later row can make it this aggregate's final value: the
    /// extreme only moves further away. Null inputs, ties and anything before the first
    /// value are never excluded.
    #[inline(always)]
    pub fn excludes<V: OrdInput<Value = I::Value>>(&self, v: &V) -> bool {
        match &self.value {
            Some(cur) => v.cmp_stored(cur).is_some_and(|o| o != Ordering::Equal && !Self::better(o)),
            None => false,
        }
    }
    /// The extreme value seen so far (for checkpoints).
    pub fn value(&self) -> Option<&I::Value> {
        self.value.as_ref()
    }
    /// Rebuilds from [`Extreme::value`].
    pub fn from_value(value: Option<I::Value>) -> Self {
        Extreme { value }
    }
    /// The extreme value.
    pub fn finish(&self) -> I::Output {
        I::output(self.value.as_ref())
    }
}

impl<I: OrdInput, const MAX: bool> Merge for Extreme<I, MAX> {
    fn merge(&mut self, other: Self) {
        if let Some(o) = other.value {
            match &self.value {
                Some(cur) if !Self::better(I::cmp_values(&o, cur)) => {}
                _ => self.value = Some(o),
            }
        }
    }
}

impl Merge for () {
    fn merge(&mut self, _other: Self) {}
}

macro_rules! tuple_merge {
    ($($name:ident $idx:tt),+) => {
        impl<$($name: Merge),+> Merge for ($($name,)+) {
            #[inline]
            fn merge(&mut self, other: Self) {
                $(self.$idx.merge(other.$idx);)+
            }
            #[inline]
            fn begin_batch(&mut self) {
                $(self.$idx.begin_batch();)+
            }
        }
    };
}
tuple_merge!(A 0);
tuple_merge!(A 0, B 1);
tuple_merge!(A 0, B 1, C 2);
tuple_merge!(A 0, B 1, C 2, D 3);
tuple_merge!(A 0, B 1, C 2, D 3, E 4);
tuple_merge!(A 0, B 1, C 2, D 3, E 4, F 5);
tuple_merge!(A 0, B 1, C 2, D 3, E 4, F 5, G 6);
tuple_merge!(A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7);
tuple_merge!(A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7, I 8);
tuple_merge!(A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7, I 8, J 9);
tuple_merge!(A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7, I 8, J 9, K 10);
tuple_merge!(A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7, I 8, J 9, K 10, L 11);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sum_avg_nulls_as_spark() {
        let mut s = Sum::<Option<i64>>::new();
        s.update(None);
        assert_eq!(s.finish(), None, "sum over only nulls is null");
        s.update(Some(3));
        s.update(Some(-1));
        assert_eq!(s.finish(), Some(2));
        let mut a = Avg::<Option<i64>>::new();
        a.update(None);
        assert_eq!(a.finish(), None);
        a.update(Some(1));
        a.update(Some(2));
        assert_eq!(a.finish(), Some(1.5));
        let mut c = Count::new();
        c.add(None::<i64>);
        c.add(Some(1i64));
        c.add_row();
        assert_eq!(c.finish(), 2);
    }

    #[test]
    fn min_max_strings_and_merge() {
        let mut mn = Min::<String>::new();
        let mut mx = Max::<String>::new();
        for w in ["dog", "cat", "owl"] {
            mn.update(w);
            mx.update(w);
        }
        assert_eq!(mn.finish(), "cat");
        assert_eq!(mx.finish(), "owl");
        let mut other = Max::<String>::new();
        other.update("zebra");
        mx.merge(other);
        assert_eq!(mx.finish(), "zebra");
        let mut m = Max::<Option<f64>>::new();
        m.update(None::<f64>);
        assert_eq!(m.finish(), None);
        m.update(Some(1.0));
        m.update(Some(f64::NAN));
        assert!(m.finish().unwrap().is_nan(), "NaN is the largest double in Spark");
    }

    /// A value worse than the running extreme can never become the final one; a tie, a null
    /// or anything before the first value can.
    #[test]
    fn a_value_below_a_running_max_is_excluded_and_a_tie_is_not() {
        let mut mx = Max::<i64>::new();
        assert!(!mx.excludes(&i64::MIN), "nothing seen yet");
        mx.update(7i64);
        assert!(mx.excludes(&6i64));
        assert!(!mx.excludes(&7i64), "a tie can still be the final value");
        assert!(!mx.excludes(&8i64));
        assert!(!mx.excludes(&None::<i64>), "a null is never excluded (it matches nothing anyway)");
        assert!(mx.excludes(&Some(3i64)));
        let mut mn = Min::<Option<i64>>::new();
        mn.update(None::<i64>);
        assert!(!mn.excludes(&100i64), "only nulls seen: no value yet");
        mn.update(Some(5i64));
        assert!(mn.excludes(&6i64) && !mn.excludes(&5i64) && !mn.excludes(&4i64));
        let mut s = Max::<String>::new();
        s.update("kiwi");
        assert!(s.excludes(&"apple") && !s.excludes(&"kiwi"));
        let mut f = Max::<f64>::new();
        f.update(0.0f64);
        assert!(!f.excludes(&-0.0f64), "-0.0 equals 0.0 in Spark's order");
        f.update(f64::NAN);
        assert!(f.excludes(&f64::INFINITY) && !f.excludes(&f64::NAN), "NaN is the largest double");
    }
}
