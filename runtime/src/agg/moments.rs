//! `stddev(x)` / `stddev_samp(x)`, `stddev_pop(x)`, `variance(x)` / `var_samp(x)` and
//! `var_pop(x)`: Spark's `CentralMomentAgg` — the count, mean and sum of squared deviations
//! (`n`, `avg`, `m2`, all doubles) updated per value by Welford's method and merged by Chan's
//! formula, in Spark's operation order so the doubles round as Spark's do. The result is a
//! double, null for a group without non-null values, and for the sample statistics also for a
//! group of one value (Spark's default; `spark.sql.legacy.statisticalAggregate` would give NaN).

use super::{Merge, NumericInput};

/// `var_samp`.
pub const VAR_SAMP: u8 = 0;
/// `stddev_samp`.
pub const STDDEV_SAMP: u8 = 1;
/// `var_pop`.
pub const VAR_POP: u8 = 2;
/// `stddev_pop`.
pub const STDDEV_POP: u8 = 3;

/// The central moments of a group's values; `STAT` says which statistic `finish` gives.
#[derive(Clone, Copy, Debug)]
pub struct Moments<I, const STAT: u8> {
    n: f64,
    avg: f64,
    m2: f64,
    _input: std::marker::PhantomData<fn(I)>,
}

/// `variance(x)`, `var_samp(x)`.
pub type VarSamp<I> = Moments<I, VAR_SAMP>;
/// `stddev(x)`, `stddev_samp(x)`, `std(x)`.
pub type StddevSamp<I> = Moments<I, STDDEV_SAMP>;
/// `var_pop(x)`.
pub type VarPop<I> = Moments<I, VAR_POP>;
/// `stddev_pop(x)`.
pub type StddevPop<I> = Moments<I, STDDEV_POP>;

impl<I, const STAT: u8> Default for Moments<I, STAT> {
    fn default() -> Self {
        Moments { n: 0.0, avg: 0.0, m2: 0.0, _input: std::marker::PhantomData }
    }
}

impl<I, const STAT: u8> Moments<I, STAT> {
    /// `(n, avg, m2)` (for checkpoints).
    pub fn raw(&self) -> (f64, f64, f64) {
        (self.n, self.avg, self.m2)
    }
    /// Rebuilds from [`Moments::raw`].
    pub fn from_raw(n: f64, avg: f64, m2: f64) -> Self {
        Moments { n, avg, m2, _input: std::marker::PhantomData }
    }
    /// The statistic.
    pub fn finish(&self) -> Option<f64> {
        let n = self.n;
        if n == 0.0 {
            return None;
        }
        match STAT {
            VAR_POP => Some(self.m2 / n),
            STDDEV_POP => Some((self.m2 / n).sqrt()),
            _ if n == 1.0 => None,
            VAR_SAMP => Some(self.m2 / (n - 1.0)),
            _ => Some((self.m2 / (n - 1.0)).sqrt()),
        }
    }
}

impl<I: NumericInput, const STAT: u8> Moments<I, STAT> {
    /// Nothing seen.
    pub fn new() -> Self {
        Self::default()
    }
    /// Adds a value (nulls are skipped).
    #[inline(always)]
    pub fn update(&mut self, v: I) {
        if let Some(x) = v.to_f64() {
            let n = self.n + 1.0;
            let delta = x - self.avg;
            let delta_n = delta / n;
            self.avg += delta_n;
            self.m2 += delta * (delta - delta_n);
            self.n = n;
        }
    }
}

impl<I, const STAT: u8> Merge for Moments<I, STAT> {
    fn merge(&mut self, other: Self) {
        let (n1, n2) = (self.n, other.n);
        let n = n1 + n2;
        let delta = other.avg - self.avg;
        let delta_n = if n == 0.0 { 0.0 } else { delta / n };
        self.avg += delta_n * n2;
        self.m2 = self.m2 + other.m2 + delta * delta_n * n1 * n2;
        self.n = n;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sample_and_population_statistics_as_spark() {
        let mut v = VarSamp::<Option<i64>>::new();
        assert_eq!(v.finish(), None, "no values: null");
        v.update(Some(1));
        assert_eq!(v.finish(), None, "one value: null for the sample variance");
        let mut p = VarPop::<i64>::new();
        p.update(1);
        assert_eq!(p.finish(), Some(0.0));
        for x in [3, 5, 7] {
            v.update(Some(x));
            p.update(x);
        }
        v.update(None);
        assert_eq!(v.finish(), Some(20.0 / 3.0));
        assert_eq!(p.finish(), Some(5.0));
        let mut s = StddevSamp::<f64>::new();
        [2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0].iter().for_each(|x| s.update(*x));
        assert_eq!(s.finish(), Some((32.0f64 / 7.0).sqrt()));
        let mut sp = StddevPop::<f64>::new();
        [2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0].iter().for_each(|x| sp.update(*x));
        assert_eq!(sp.finish(), Some(2.0));
    }

    #[test]
    fn merging_equals_one_pass() {
        let (mut a, mut b, mut all) = (VarSamp::<i64>::new(), VarSamp::<i64>::new(), VarSamp::<i64>::new());
        (1..=3).for_each(|x| a.update(x * 2 - 1));
        b.update(7);
        (1..=4).for_each(|x| all.update(x * 2 - 1));
        a.merge(b);
        assert_eq!(a.finish(), all.finish());
        let mut empty = VarSamp::<i64>::new();
        empty.merge(VarSamp::new());
        assert_eq!(empty.finish(), None);
    }
}
