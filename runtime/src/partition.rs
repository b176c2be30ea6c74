//! The partition hash: which shuffle partition a grouping key belongs to. It is persisted
//! (a checkpoint's state is split by it), so it is a documented algorithm of our own, never a
//! dependency's or the standard library's unpromised one.
//!
//! **Version 1** ([`PARTITION_HASH_VERSION`]) is Spark's `hash()` (`Murmur3Hash`, what its
//! `HashPartitioning` uses): Murmur3_x86_32 with seed 42, chained over a key's columns — each
//! column's hash is the seed of the next, a null column leaves the running hash unchanged.
//! Per column type, as Spark:
//! - `i32`, `Date` (days): `hashInt`; `bool`: `hashInt(1 or 0)`;
//! - `i64`, `Timestamp` (µs): `hashLong` (low word, then high word);
//! - strings: `hashUnsafeBytes` over the UTF-8 bytes (whole little-endian words, then each
//!   remaining byte, sign-extended, as a word of its own — Spark's legacy tail);
//! - a window: the struct `(start, end)`, each a timestamp.
//!
//! So a key's 32-bit hash equals Spark's `hash(key columns...)` (golden vectors below, taken
//! from Spark 4.3). The partition out of `n` is `(hash as u32 as u64 * n) >> 32` (Lemire's
//! multiply-shift, no division per row), which is *not* Spark's `pmod(hash, n)`: no state is
//! ever shared with Spark, and the division would cost more per row than the hash.
//!
//! The 64-bit value [`Murmur3Hasher::finish`] returns carries the 32-bit hash in its high half
//! (the partition reads it there) and a bijective remix of it in the low half, for in-memory
//! hash tables (hashbrown takes its bucket from the low bits and its tag from the top 7).

use std::hash::{BuildHasher, Hasher};

/// The version of the partition hash that checkpoints record. Changing anything in this file
/// that changes a key's hash is a new version, and old checkpoints must be refused.
pub const PARTITION_HASH_VERSION: u32 = 1;

/// Spark's seed for `hash()` and `HashPartitioning`.
pub const SEED: u32 = 42;

const C1: u32 = 0xcc9e_2d51;
const C2: u32 = 0x1b87_3593;

#[inline(always)]
fn mix_k1(k1: u32) -> u32 {
    k1.wrapping_mul(C1).rotate_left(15).wrapping_mul(C2)
}

#[inline(always)]
fn mix_h1(h1: u32, k1: u32) -> u32 {
    (h1 ^ k1).rotate_left(13).wrapping_mul(5).wrapping_add(0xe654_6b64)
}

#[inline(always)]
fn fmix(mut h1: u32, len: u32) -> u32 {
    h1 ^= len;
    h1 ^= h1 >> 16;
    h1 = h1.wrapping_mul(0x85eb_ca6b);
    h1 ^= h1 >> 13;
    h1 = h1.wrapping_mul(0xc2b2_ae35);
    h1 ^ (h1 >> 16)
}

/// Spark's `Murmur3_x86_32.hashInt`.
#[inline(always)]
pub fn hash_int(v: i32, seed: u32) -> u32 {
    fmix(mix_h1(seed, mix_k1(v as u32)), 4)
}

/// Spark's `Murmur3_x86_32.hashLong`.
#[inline(always)]
pub fn hash_long(v: i64, seed: u32) -> u32 {
    let h1 = mix_h1(seed, mix_k1(v as u32));
    fmix(mix_h1(h1, mix_k1((v as u64 >> 32) as u32)), 8)
}

/// Spark's `Murmur3_x86_32.hashUnsafeBytes`.
#[inline]
pub fn hash_bytes(bytes: &[u8], seed: u32) -> u32 {
    let mut h1 = seed;
    let words = bytes.chunks_exact(4);
    let tail = words.remainder();
    for w in words {
        h1 = mix_h1(h1, mix_k1(u32::from_le_bytes([w[0], w[1], w[2], w[3]])));
    }
    for &b in tail {
        h1 = mix_h1(h1, mix_k1(b as i8 as i32 as u32));
    }
    fmix(h1, bytes.len() as u32)
}

/// A [`Hasher`] computing the partition hash of a key whose columns are written one call
/// each: `write_i32`/`write_i64`/`write_u8` (a bool)/`write` (a string's bytes). A null
/// column writes nothing. Other `write_*` calls are not part of the format and hash as
/// `hashLong` of the value.
#[derive(Clone, Copy, Debug)]
pub struct Murmur3Hasher {
    h: u32,
}

impl Default for Murmur3Hasher {
    fn default() -> Self {
        Murmur3Hasher { h: SEED }
    }
}

impl Murmur3Hasher {
    /// The 32-bit partition hash so far (Spark's `hash()` of the columns written).
    pub fn hash32(&self) -> u32 {
        self.h
    }
}

/// Odd 32-bit constant (the golden ratio) whose multiplication permutes the 32-bit hash into
/// the low half of [`Murmur3Hasher::finish`].
const LOW_REMIX: u32 = 0x9e37_79b9;

impl Hasher for Murmur3Hasher {
    #[inline(always)]
    fn finish(&self) -> u64 {
        ((self.h as u64) << 32) | self.h.wrapping_mul(LOW_REMIX) as u64
    }
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        self.h = hash_bytes(bytes, self.h);
    }
    #[inline(always)]
    fn write_u8(&mut self, v: u8) {
        self.h = hash_int(v as i32, self.h);
    }
    #[inline(always)]
    fn write_i32(&mut self, v: i32) {
        self.h = hash_int(v, self.h);
    }
    #[inline(always)]
    fn write_u32(&mut self, v: u32) {
        self.h = hash_int(v as i32, self.h);
    }
    #[inline(always)]
    fn write_i64(&mut self, v: i64) {
        self.h = hash_long(v, self.h);
    }
    #[inline(always)]
    fn write_u64(&mut self, v: u64) {
        self.h = hash_long(v as i64, self.h);
    }
    #[inline(always)]
    fn write_usize(&mut self, v: usize) {
        self.h = hash_long(v as i64, self.h);
    }
}

/// Builds [`Murmur3Hasher`]s (seed 42).
#[derive(Clone, Copy, Debug, Default)]
pub struct PartitionHash;

impl BuildHasher for PartitionHash {
    type Hasher = Murmur3Hasher;
    #[inline(always)]
    fn build_hasher(&self) -> Murmur3Hasher {
        Murmur3Hasher::default()
    }
}

/// The shuffle partition, out of `n`, of a key hash as [`Murmur3Hasher::finish`] returns it:
/// multiply-shift of its 32-bit partition hash.
#[inline(always)]
pub fn partition_of(hash: u64, n: usize) -> usize {
    ((hash >> 32) as usize * n) >> 32
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::value::hash_key;
    use crate::window::{Window, WindowKey};
    use crate::{Date, Timestamp};

    fn spark(h: u32) -> i32 {
        h as i32
    }

    /// Golden vectors: what Spark 4.3.0 answers for `SELECT hash(...)` (recorded with pyspark;
    /// `benches/spark/hash_vectors.py` prints them). A change here is a new
    /// [`PARTITION_HASH_VERSION`] and breaks every existing checkpoint.
    #[test]
    fn partition_hash_equals_sparks_hash() {
        let h = |k: u64| spark((k >> 32) as u32);
        // Each line: `SELECT hash(<the key's columns>)` in Spark 4.3.0.
        assert_eq!(h(hash_key(&(0i32,))), 933211791);
        assert_eq!(h(hash_key(&(1i32,))), -559580957);
        assert_eq!(h(hash_key(&(-1i32,))), -1604776387);
        assert_eq!(h(hash_key(&(i32::MAX,))), 133916647);
        assert_eq!(h(hash_key(&(0i64,))), -1670924195);
        assert_eq!(h(hash_key(&(1i64,))), -1712319331);
        assert_eq!(h(hash_key(&(-1i64,))), -939490007);
        assert_eq!(h(hash_key(&(i64::MAX,))), -1604625029);
        assert_eq!(h(hash_key(&(true,))), -559580957);
        assert_eq!(h(hash_key(&(false,))), 933211791);
        assert_eq!(h(hash_key(&("",))), 142593372);
        assert_eq!(h(hash_key(&("a",))), 1485273170);
        assert_eq!(h(hash_key(&("abc",))), 1322437556);
        assert_eq!(h(hash_key(&("abcd",))), -396302900);
        assert_eq!(h(hash_key(&("hello world",))), -1528836094);
        assert_eq!(h(hash_key(&("héllo ✓",))), 528773591);
        assert_eq!(h(hash_key(&(None::<&str>,))), 42);
        assert_eq!(h(hash_key(&(None::<i32>,))), 42);
        assert_eq!(h(hash_key(&("a", 1i64))), 1838122449);
        assert_eq!(h(hash_key(&(None::<&str>, 1i64))), -1712319331);
        assert_eq!(h(hash_key(&(1i64, "a"))), 573093329);
        // 2024-01-01 12:00:00 UTC in µs, 2024-01-01 in days.
        let noon = Timestamp(1_704_110_400_000_000);
        assert_eq!(h(hash_key(&(noon,))), -1186101039);
        assert_eq!(h(hash_key(&(Date(19_723),))), -456589419);
        let w = Window::new(noon, Timestamp(noon.0 + 600_000_000));
        assert_eq!(h(hash_key(&(w,))), -1543950611);
        assert_eq!(hash_key(&(WindowKey::<600_000_000>::of(w),)), hash_key(&(w,)), "a window key hashes as its window");
    }

    #[test]
    fn partitions_spread_and_stay_in_range() {
        let n = 7;
        let mut counts = [0usize; 7];
        for i in 0..70_000i64 {
            let p = partition_of(hash_key(&(i,)), n);
            counts[p] += 1;
        }
        for c in counts {
            assert!((9_000..11_000).contains(&c), "{counts:?}");
        }
    }
}
