//! `approx_count_distinct(x)`: Spark's HyperLogLog++ (`HyperLogLogPlusPlus`) at its default
//! relative standard deviation 0.05, which gives precision `p = ceil(2 log2(1.106 / 0.05)) = 9`:
//! 512 registers of the leading-zero counts of 64-bit hashes.
//!
//! Everything that decides an estimate is Spark's, so flowgate's estimates equal Spark's
//! (golden vectors below, from Spark 4.3):
//! - the hash of a value is Spark's `xxhash64(x)` (XXH64 with seed 42; `i32`, `bool` (1/0),
//!   `Date` over the 4 little-endian bytes of the int, `i64`, `Timestamp` (µs) and `f64` (its
//!   bits after `-0.0` → `0.0` and one NaN) over 8 bytes, strings over their UTF-8 bytes);
//! - a register's index is the hash's top 9 bits, its value the number of leading zeros of
//!   the rest plus one; registers merge by maximum;
//! - the estimate is linear counting while it is at most 400 (the HLL++ threshold for p = 9)
//!   or the raw estimate is at most 2.5 m, else the raw estimate, bias-corrected below 5 m by
//!   the mean bias of the 6 nearest measured raw estimates (the paper's empirical data,
//!   `hll_tables.rs`, generated from Spark's own copy), rounded as Java's `Math.round`.
//!
//! The result is an `i64`, 0 for a group whose values were all null. The standard error is
//! `1.04 / sqrt(512) = 4.6 %` of the true count.

use super::hll_tables::{BIASES, RAW_ESTIMATES, THRESHOLD};
use super::Merge;
use crate::list::normalized_bits;
use crate::record::{Date, Timestamp};

/// Precision: address bits (Spark's for relative error 0.05).
pub const P: u32 = 9;
/// Number of registers.
pub const M: usize = 1 << P;
/// Spark's seed for `xxhash64`.
pub const SEED: u64 = 42;
/// Neighbours averaged for the bias (the paper's and Spark's `K`).
const K: usize = 6;

/// Spark's `xxhash64` of a value (seed 42); `None` for null.
#[diagnostic::on_unimplemented(
    message = "`approx_count_distinct` cannot take a `{Self}`",
    label = "expected bool, i32, i64, f64, &str, String, Timestamp, Date or an Option of them"
)]
pub trait SparkXxHash64 {
    /// The hash, or `None` when the value is null.
    fn spark_xxhash64(&self) -> Option<u64>;
}

#[inline(always)]
fn hash_int(v: i32) -> u64 {
    twox_hash::XxHash64::oneshot(SEED, &v.to_le_bytes())
}

#[inline(always)]
fn hash_long(v: i64) -> u64 {
    twox_hash::XxHash64::oneshot(SEED, &v.to_le_bytes())
}

macro_rules! xxhash_of {
    ($($t:ty => |$v:ident| $h:expr),* $(,)?) => {$(
        impl SparkXxHash64 for $t {
            #[inline(always)]
            fn spark_xxhash64(&self) -> Option<u64> {
                let $v = self;
                Some($h)
            }
        }
    )*};
}
xxhash_of!(
    i32 => |v| hash_int(*v),
    i64 => |v| hash_long(*v),
    bool => |v| hash_int(*v as i32),
    Date => |v| hash_int(v.0),
    Timestamp => |v| hash_long(v.0),
    f64 => |v| hash_long(normalized_bits(*v) as i64),
    str => |v| twox_hash::XxHash64::oneshot(SEED, v.as_bytes()),
    String => |v| twox_hash::XxHash64::oneshot(SEED, v.as_bytes()),
);

impl<T: SparkXxHash64 + ?Sized> SparkXxHash64 for &T {
    #[inline(always)]
    fn spark_xxhash64(&self) -> Option<u64> {
        (**self).spark_xxhash64()
    }
}

impl<T: SparkXxHash64> SparkXxHash64 for Option<T> {
    #[inline(always)]
    fn spark_xxhash64(&self) -> Option<u64> {
        self.as_ref().and_then(T::spark_xxhash64)
    }
}

/// `approx_count_distinct(x)`: HyperLogLog++ registers, one byte each. Any input type that
/// hashes as Spark's ([`SparkXxHash64`]) updates it.
#[derive(Clone, Debug)]
pub struct ApproxCountDistinct {
    registers: Box<[u8; M]>,
}

impl Default for ApproxCountDistinct {
    fn default() -> Self {
        ApproxCountDistinct { registers: Box::new([0; M]) }
    }
}

/// The register a hash updates, and the value it offers (leading zeros of the rest, plus one).
#[inline(always)]
fn register_of(hash: u64) -> (usize, u8) {
    let idx = (hash >> (64 - P)) as usize;
    let w = (hash << P) | (1 << (P - 1));
    (idx, (w.leading_zeros() + 1) as u8)
}

impl ApproxCountDistinct {
    /// No value seen.
    pub fn new() -> Self {
        Self::default()
    }
    /// Adds a value (nulls are skipped).
    #[inline(always)]
    pub fn update<V: SparkXxHash64>(&mut self, v: V) {
        if let Some(h) = v.spark_xxhash64() {
            let (idx, rank) = register_of(h);
            let r = &mut self.registers[idx];
            *r = (*r).max(rank);
        }
    }
    /// The estimate.
    pub fn finish(&self) -> i64 {
        estimate(&self.registers)
    }
    /// The registers (for checkpoints).
    pub fn registers(&self) -> &[u8; M] {
        &self.registers
    }
    /// Rebuilds from [`ApproxCountDistinct::registers`].
    pub fn from_registers(registers: [u8; M]) -> Self {
        ApproxCountDistinct { registers: Box::new(registers) }
    }
}

impl Merge for ApproxCountDistinct {
    fn merge(&mut self, other: Self) {
        for (a, b) in self.registers.iter_mut().zip(other.registers.iter()) {
            *a = (*a).max(*b);
        }
    }
}

/// Spark's `HyperLogLogPlusPlusHelper.estimateBias` for p = 9.
fn estimate_bias(e: f64) -> f64 {
    let n = RAW_ESTIMATES.len();
    let nearest = RAW_ESTIMATES.partition_point(|x| *x < e);
    let distance = |i: usize| {
        let d = e - RAW_ESTIMATES[i];
        d * d
    };
    let mut low = nearest.saturating_sub(K - 1);
    let mut high = (low + K).min(n);
    while high < n && distance(high) < distance(low) {
        low += 1;
        high += 1;
    }
    BIASES[low..high].iter().sum::<f64>() / (high - low) as f64
}

/// Spark's `HyperLogLogPlusPlusHelper.query` for p = 9.
fn estimate(registers: &[u8; M]) -> i64 {
    let m = M as f64;
    let alpha_m2 = (0.7213 / (1.0 + 1.079 / m)) * m * m;
    let (mut z_inverse, mut zeros) = (0.0f64, 0.0f64);
    for &r in registers.iter() {
        z_inverse += 1.0 / (1u64 << r) as f64;
        if r == 0 {
            zeros += 1.0;
        }
    }
    let e = alpha_m2 / z_inverse;
    let corrected = || if e < 5.0 * m { e - estimate_bias(e) } else { e };
    let estimate = if zeros > 0.0 {
        let linear = m * (m / zeros).ln();
        if linear <= THRESHOLD || e <= 2.5 * m {
            linear
        } else {
            corrected()
        }
    } else {
        corrected()
    };
    // Java's Math.round: the nearest integer, halves up.
    (estimate + 0.5).floor() as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `SELECT xxhash64(x)` in Spark 4.3 (seed 42), by type.
    #[test]
    fn hashes_are_sparks_xxhash64() {
        let h = |v: &dyn Fn() -> Option<u64>| v().unwrap() as i64;
        for (v, want) in [
            (0, 3614696996920510707),
            (1, -6698625589789238999),
            (-1, 2017008487422258757),
            (42, -387659249110444264),
            (i32::MAX, 1508894993788531228),
            (i32::MIN, 2073849959933241805),
        ] {
            assert_eq!(h(&|| v.spark_xxhash64()), want, "int {v}");
        }
        for (v, want) in [
            (0i64, -5252525462095825812),
            (1, -7001672635703045582),
            (-1, 3858142552250413010),
            (1234567890123, 1687537368341330389),
            (i64::MAX, -3246596055638297850),
        ] {
            assert_eq!(h(&|| v.spark_xxhash64()), want, "bigint {v}");
        }
        for (v, want) in [
            (0.0f64, -5252525462095825812),
            (-0.0, -5252525462095825812),
            (1.5, 7738255526519901366),
            (-2.25, -8344676507314498009),
            (f64::NAN, -3127944061524951246),
            (1e300, -6660537626403695510),
        ] {
            assert_eq!(h(&|| v.spark_xxhash64()), want, "double {v}");
        }
        for (v, want) in [
            ("", -7444071767201028348),
            ("a", -8582455328737087284),
            ("dog", 7234039700573616243),
            ("hello world", 7620854247404556961),
            ("abcdefghijklmnopqrstuvwxyz0123456789", 2724237963427677065),
            ("héllo", 501425390238239234),
        ] {
            assert_eq!(h(&|| v.spark_xxhash64()), want, "string {v}");
        }
        assert_eq!(h(&|| true.spark_xxhash64()), -6698625589789238999);
        assert_eq!(h(&|| false.spark_xxhash64()), 3614696996920510707);
        assert_eq!(h(&|| Date(19723).spark_xxhash64()), 3242891694566951137, "date 2024-01-01");
        assert_eq!(h(&|| Timestamp(1_704_110_400_500_000).spark_xxhash64()), -2300346235395750725);
        assert_eq!(None::<i64>.spark_xxhash64(), None);
    }

    fn count<I: SparkXxHash64>(values: impl Iterator<Item = I>) -> i64 {
        let mut a = ApproxCountDistinct::new();
        values.for_each(|v| a.update(v));
        a.finish()
    }

    /// `SELECT approx_count_distinct(id), approx_count_distinct(CAST(id AS INT)),
    /// approx_count_distinct(CAST(id AS STRING)), approx_count_distinct(CAST(id AS DOUBLE) / 7)
    /// FROM range(n)` in Spark 4.3: linear counting (n ≤ 400), the bias-corrected range
    /// (up to 5 m = 2560) and the raw estimate above.
    #[test]
    fn estimates_equal_sparks() {
        let spark: [(i64, [i64; 4]); 11] = [
            (1, [1, 1, 1, 1]),
            (10, [10, 10, 10, 10]),
            (100, [103, 99, 104, 101]),
            (300, [296, 295, 296, 293]),
            (400, [397, 399, 397, 403]),
            (500, [484, 494, 492, 518]),
            (1000, [1026, 1026, 1034, 990]),
            (2000, [1947, 2023, 1937, 2048]),
            (2600, [2483, 2647, 2508, 2684]),
            (5000, [4671, 4956, 4632, 4832]),
            (100000, [95546, 94954, 97299, 101258]),
        ];
        for (n, want) in spark {
            let got = [
                count(0..n),
                count((0..n).map(|i| i as i32)),
                count((0..n).map(|i| i.to_string())),
                count((0..n).map(|i| i as f64 / 7.0)),
            ];
            assert_eq!(got, want, "range({n})");
        }
        assert_eq!(count([None::<&str>, None].into_iter()), 0, "only nulls: 0");
    }

    #[test]
    fn merged_registers_estimate_the_union() {
        let (mut a, mut b) = (ApproxCountDistinct::new(), ApproxCountDistinct::new());
        (0..600).for_each(|i| a.update(i));
        (400..1000).for_each(|i| b.update(i));
        a.merge(b);
        assert_eq!(a.finish(), count(0..1000i64));
    }
}
