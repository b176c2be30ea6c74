//! Deterministic input data (no `rand`: a SplitMix64 generator, so every run and every
//! machine sees the same bytes).

use flowgate::prelude::*;

/// SplitMix64 (Steele, Lea, Flood 2014): tiny, fast, and good enough to draw test data.
pub struct SplitMix(u64);

impl SplitMix {
    pub fn new(seed: u64) -> Self {
        SplitMix(seed)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// Uniform in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        ((self.next_u64() as u128 * n as u128) >> 64) as u64
    }
}

/// Rows per Arrow batch handed to a query (1 Mi: big enough that per-batch costs vanish).
pub const BATCH_ROWS: usize = 1 << 20;

/// Words in the word-count vocabulary.
pub const VOCABULARY: u64 = 10_000;

#[derive(Record)]
pub struct Line {
    pub value: Option<String>,
}

/// Text lines of 1–4 words; word ranks are skewed (the square of a uniform draw favours small
/// ranks), like natural text.
pub fn lines(rows: usize) -> Vec<arrow_array::RecordBatch> {
    let words: Vec<String> = (0..VOCABULARY).map(|i| format!("w{i}")).collect();
    let mut rng = SplitMix::new(42);
    let mut out = Vec::new();
    let mut left = rows;
    while left > 0 {
        let n = left.min(BATCH_ROWS);
        let batch: Vec<Line> = (0..n)
            .map(|_| {
                let k = 1 + rng.below(4);
                let line: Vec<&str> = (0..k)
                    .map(|_| {
                        let u = rng.below(VOCABULARY * VOCABULARY);
                        let rank = (u as f64).sqrt() as u64;
                        words[(VOCABULARY - 1 - rank.min(VOCABULARY - 1)) as usize].as_str()
                    })
                    .collect();
                Line { value: Some(line.join(" ")) }
            })
            .collect();
        out.push(Line::to_batch(batch).expect("batch"));
        left -= n;
    }
    out
}

#[derive(Record)]
pub struct KeyValue {
    pub key: i64,
    pub value: i64,
}

/// Distinct keys of the grouped-sum workload.
pub const SUM_KEYS: u64 = 100_000;

pub fn key_values(rows: usize) -> Vec<arrow_array::RecordBatch> {
    let mut rng = SplitMix::new(7);
    let mut out = Vec::new();
    let mut left = rows;
    while left > 0 {
        let n = left.min(BATCH_ROWS);
        let batch: Vec<KeyValue> =
            (0..n).map(|_| KeyValue { key: rng.below(SUM_KEYS) as i64, value: rng.below(1000) as i64 }).collect();
        out.push(KeyValue::to_batch(batch).expect("batch"));
        left -= n;
    }
    out
}

#[derive(Record)]
pub struct Event {
    pub ts: Timestamp,
    pub key: i64,
}

/// Distinct keys of the windowed-count workload (issue: 100 K keys).
pub const WINDOW_KEYS: u64 = 100_000;
/// Event-time spacing: one event per millisecond of event time, so 1-minute windows hold
/// 60 000 events and 10 M events span about 2.8 hours.
pub const EVENT_SPACING_US: i64 = 1_000;
/// Events arrive up to 5 s out of order (inside the 10 s watermark delay).
pub const JITTER_US: u64 = 5_000_000;

/// Events in arrival order, as micro-batches of [`BATCH_ROWS`].
pub fn events(rows: usize) -> Vec<arrow_array::RecordBatch> {
    let base = 1_704_110_400_000_000i64; // 2024-01-01 12:00 UTC
    let mut rng = SplitMix::new(99);
    let mut out = Vec::new();
    let mut i = 0usize;
    while i < rows {
        let n = (rows - i).min(BATCH_ROWS);
        let batch: Vec<Event> = (0..n)
            .map(|j| {
                let t = base + (i + j) as i64 * EVENT_SPACING_US - rng.below(JITTER_US) as i64;
                Event { ts: Timestamp(t), key: rng.below(WINDOW_KEYS) as i64 }
            })
            .collect();
        out.push(Event::to_batch(batch).expect("batch"));
        i += n;
    }
    out
}
