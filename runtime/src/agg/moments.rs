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

/// `n`, `avg`, `m2` of some values.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
struct M3 {
    n: f64,
    avg: f64,
    m2: f64,
}

impl M3 {
    /// Spark's `CentralMomentAgg` merge of `self` (left) and `other` (right).
    fn merge(self, other: M3) -> M3 {
        let (n1, n2) = (self.n, other.n);
        let n = n1 + n2;
        let delta = other.avg - self.avg;
        let delta_n = if n == 0.0 { 0.0 } else { delta / n };
        M3 { n, avg: self.avg + delta_n * n2, m2: self.m2 + other.m2 + delta * delta_n * n1 * n2 }
    }

    /// The stored moments after a batch whose own rows gave `batch`, combined as Spark's
    /// streaming aggregation combines them: the batch's partial buffer goes through two
    /// partial merges into fresh buffers (after the shuffle, and after the state is read,
    /// which puts the batch's row before the stored one), then the stored buffer is merged in.
    fn after_batch(self, batch: M3) -> M3 {
        let zero = M3::default();
        zero.merge(zero.merge(batch)).merge(self)
    }
}

/// The central moments of a group's values: those of earlier batches (`stored`) and those of
/// the current batch's rows (`batch`), kept apart until the next batch begins so the two
/// combine in Spark's order and the doubles round as Spark's do. `STAT` says which statistic
/// `finish` gives. Any numeric input updates it.
#[derive(Clone, Copy, Debug, Default)]
pub struct Moments<const STAT: u8> {
    stored: M3,
    batch: M3,
}

/// `variance(x)`, `var_samp(x)`.
pub type VarSamp = Moments<VAR_SAMP>;
/// `stddev(x)`, `stddev_samp(x)`.
pub type StddevSamp = Moments<STDDEV_SAMP>;
/// `var_pop(x)`.
pub type VarPop = Moments<VAR_POP>;
/// `stddev_pop(x)`.
pub type StddevPop = Moments<STDDEV_POP>;

impl<const STAT: u8> Moments<STAT> {
    /// Nothing seen.
    pub fn new() -> Self {
        Self::default()
    }
    /// Adds a value (nulls are skipped): Welford's update, in Spark's operation order.
    #[inline(always)]
    pub fn update<V: NumericInput>(&mut self, v: V) {
        if let Some(x) = v.to_f64() {
            let b = &mut self.batch;
            let n = b.n + 1.0;
            let delta = x - b.avg;
            let delta_n = delta / n;
            b.avg += delta_n;
            b.m2 += delta * (delta - delta_n);
            b.n = n;
        }
    }
    fn combined(&self) -> M3 {
        if self.batch.n > 0.0 {
            self.stored.after_batch(self.batch)
        } else {
            self.stored
        }
    }
    /// `(n, avg, m2)` over every value so far (for checkpoints).
    pub fn raw(&self) -> (f64, f64, f64) {
        let m = self.combined();
        (m.n, m.avg, m.m2)
    }
    /// Rebuilds from [`Moments::raw`].
    pub fn from_raw(n: f64, avg: f64, m2: f64) -> Self {
        Moments { stored: M3 { n, avg, m2 }, batch: M3::default() }
    }
    /// The statistic, evaluated as Spark's final aggregation does: on a fresh buffer merged
    /// with the stored one.
    pub fn finish(&self) -> Option<f64> {
        let M3 { n, m2, .. } = M3::default().merge(self.combined());
        if n == 0.0 {
            return None;
        }
        match STAT {
            VAR_POP => Some(m2 / n),
            STDDEV_POP => Some((m2 / n).sqrt()),
            _ if n == 1.0 => None,
            VAR_SAMP => Some(m2 / (n - 1.0)),
            _ => Some((m2 / (n - 1.0)).sqrt()),
        }
    }
}

impl<const STAT: u8> Merge for Moments<STAT> {
    fn merge(&mut self, other: Self) {
        self.batch = self.batch.merge(other.batch);
        if other.stored.n > 0.0 {
            self.stored = self.stored.merge(other.stored);
        }
    }
    fn begin_batch(&mut self) {
        self.stored = self.combined();
        self.batch = M3::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sample_and_population_statistics_as_spark() {
        let mut v = VarSamp::new();
        assert_eq!(v.finish(), None, "no values: null");
        v.update(Some(1));
        assert_eq!(v.finish(), None, "one value: null for the sample variance");
        let mut p = VarPop::new();
        p.update(1);
        assert_eq!(p.finish(), Some(0.0));
        for x in [3, 5, 7] {
            v.update(Some(x));
            p.update(x);
        }
        v.update(None::<i64>);
        assert_eq!(v.finish(), Some(20.0 / 3.0));
        assert_eq!(p.finish(), Some(5.0));
        let mut s = StddevSamp::new();
        [2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0].iter().for_each(|x| s.update(*x));
        assert_eq!(s.finish(), Some((32.0f64 / 7.0).sqrt()));
        let mut sp = StddevPop::new();
        [2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0].iter().for_each(|x| sp.update(*x));
        assert_eq!(sp.finish(), Some(2.0));
    }

    #[test]
    fn merging_equals_one_pass() {
        let (mut a, mut b, mut all) = (VarSamp::new(), VarSamp::new(), VarSamp::new());
        (1..=3).for_each(|x| a.update(x * 2 - 1));
        b.update(7);
        (1..=4).for_each(|x| all.update(x * 2 - 1));
        a.merge(b);
        assert_eq!(a.finish(), all.finish());
        let mut empty = VarSamp::new();
        empty.merge(VarSamp::new());
        assert_eq!(empty.finish(), None);
    }

    /// Spark 4.3, `stddev(x)` of one group fed 0.5, 1.25 (batch 0), 3.75 (batch 1), 2.2
    /// (batch 2): the batches' rows are combined with the state in Spark's order.
    #[test]
    fn batches_combine_in_sparks_order() {
        let mut s = StddevSamp::new();
        for batch in [&[0.5, 1.25][..], &[3.75], &[2.2]] {
            s.begin_batch();
            batch.iter().for_each(|x| s.update(*x));
        }
        assert_eq!(s.finish(), Some(1.4014873052106704));
        let back = StddevSamp::from_raw(s.raw().0, s.raw().1, s.raw().2);
        assert_eq!(back.finish(), s.finish(), "a checkpoint holds the combined moments");
    }
}
