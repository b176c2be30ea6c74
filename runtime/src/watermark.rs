//! Event-time watermarks (Spark's `withWatermark`): the watermark is the maximum event time
//! seen minus the allowed delay, computed at the end of a micro-batch and used from the next
//! one; it never moves back.

use std::sync::atomic::{AtomicI64, Ordering};

use crate::record::Timestamp;
use crate::window::Window;

/// Tracks the maximum event time a `with_watermark` operator has seen.
#[derive(Debug)]
pub struct WatermarkTracker {
    delay_micros: i64,
    max_seen: AtomicI64,
}

/// "Nothing seen yet".
const NONE_SEEN: i64 = i64::MIN;

impl WatermarkTracker {
    /// A tracker for `with_watermark(col, delay)`.
    pub fn new(delay_micros: i64) -> Self {
        WatermarkTracker { delay_micros, max_seen: AtomicI64::new(NONE_SEEN) }
    }

    /// Folds in the maximum event time of a chunk of rows (`i64::MIN` when it had none).
    /// Called once per work unit, not per row.
    #[inline]
    pub fn observe_max(&self, micros: i64) {
        if micros != NONE_SEEN {
            self.max_seen.fetch_max(micros, Ordering::Relaxed);
        }
    }

    /// The largest event time seen so far.
    pub fn max_event_time(&self) -> Option<i64> {
        let m = self.max_seen.load(Ordering::Relaxed);
        (m != NONE_SEEN).then_some(m)
    }

    /// `max event time − delay`, if any row was seen, in whole milliseconds as Spark keeps it:
    /// Spark's `EventTimeWatermarkExec` records event times as `micros / 1000` and its delay
    /// in milliseconds, so a watermark never has a sub-millisecond part (late rows and
    /// eviction then compare microsecond event times against it).
    pub fn candidate(&self) -> Option<i64> {
        self.max_event_time().map(|m| (m / 1000).saturating_sub(self.delay_micros / 1000).saturating_mul(1000))
    }
}

/// How the watermarks of several inputs combine into the query's (Spark's
/// `spark.sql.streaming.multipleWatermarkPolicy`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum WatermarkPolicy {
    /// The slowest input decides (Spark's default): no row of any input is dropped while
    /// another input lags.
    #[default]
    Min,
    /// The fastest input decides: the slower inputs' late rows are dropped.
    Max,
}

/// The watermark trackers of a plan, one per `with_watermark` (per input), in input order.
#[derive(Debug, Default)]
pub struct Watermarks {
    trackers: Vec<WatermarkTracker>,
    policy: WatermarkPolicy,
}

impl Watermarks {
    /// No watermark.
    pub fn none() -> Self {
        Watermarks::default()
    }

    /// One tracker per delay (µs), combined by `policy`.
    pub fn new(delays: &[i64], policy: WatermarkPolicy) -> Self {
        Watermarks { trackers: delays.iter().map(|d| WatermarkTracker::new(*d)).collect(), policy }
    }

    /// Whether the query has any watermark.
    pub fn is_empty(&self) -> bool {
        self.trackers.is_empty()
    }

    /// Tracker `i` (the `i`-th `with_watermark` of the plan).
    #[inline]
    pub fn tracker(&self, i: usize) -> &WatermarkTracker {
        &self.trackers[i]
    }

    /// The watermark the data seen so far allows, before the never-move-back rule: per
    /// tracker `max event time − delay`, or the epoch (0) for a tracker that has seen no row
    /// yet, combined by the policy — as Spark's `WatermarkTracker`, so with the default
    /// policy an input without data holds the query's watermark back. `None` without trackers.
    pub fn candidate(&self) -> Option<i64> {
        let each = self.trackers.iter().map(|t| t.candidate().unwrap_or(0));
        match self.policy {
            WatermarkPolicy::Min => each.min(),
            WatermarkPolicy::Max => each.max(),
        }
    }
}

/// Grouping keys that carry event time: a window (its end) or a timestamp (itself). State is
/// evicted, and input dropped as late, when this time is at or before the watermark.
pub trait EventTimeKey {
    /// The key's event time in microseconds (`None` for null: never late, never evicted).
    fn key_time(&self) -> Option<i64>;
}

impl EventTimeKey for Window {
    #[inline(always)]
    fn key_time(&self) -> Option<i64> {
        Some(self.end.0)
    }
}

impl<const SIZE: i64> EventTimeKey for crate::window::WindowKey<SIZE> {
    #[inline(always)]
    fn key_time(&self) -> Option<i64> {
        Some(self.start + SIZE)
    }
}

impl EventTimeKey for Timestamp {
    #[inline(always)]
    fn key_time(&self) -> Option<i64> {
        Some(self.0)
    }
}

impl<T: EventTimeKey> EventTimeKey for Option<T> {
    #[inline(always)]
    fn key_time(&self) -> Option<i64> {
        self.as_ref().and_then(T::key_time)
    }
}

impl<T: EventTimeKey> EventTimeKey for &T {
    #[inline(always)]
    fn key_time(&self) -> Option<i64> {
        (**self).key_time()
    }
}

/// Whether a key with this event time is at or behind `watermark` (Spark's
/// `window.end <= watermark`).
#[inline(always)]
pub fn is_behind(key: &impl EventTimeKey, watermark: i64) -> bool {
    key.key_time().is_some_and(|t| t <= watermark)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn candidate_is_max_minus_delay() {
        let t = WatermarkTracker::new(10_000);
        assert_eq!(t.candidate(), None);
        t.observe_max(100_000);
        t.observe_max(i64::MIN);
        t.observe_max(50_000);
        assert_eq!(t.candidate(), Some(90_000));
        // Spark keeps event times and the watermark in milliseconds: the sub-millisecond part
        // of the maximum (and of the delay) does not count.
        t.observe_max(100_999);
        assert_eq!(t.candidate(), Some(90_000));
        let t = WatermarkTracker::new(10_500);
        t.observe_max(100_999);
        assert_eq!(t.candidate(), Some(90_000));
        assert!(is_behind(&Window::new(Timestamp(0), Timestamp(90)), 90));
        assert!(!is_behind(&Window::new(Timestamp(0), Timestamp(91)), 90));
        assert!(!is_behind(&None::<Window>, 90));
    }

    #[test]
    fn several_watermarks_combine_by_policy_and_an_idle_input_counts_as_the_epoch() {
        for (policy, want) in
            [(WatermarkPolicy::Min, [Some(0), Some(40_000)]), (WatermarkPolicy::Max, [Some(90_000), Some(90_000)])]
        {
            let w = Watermarks::new(&[10_000, 20_000], policy);
            assert_eq!(w.candidate(), Some(0), "no row yet");
            w.tracker(0).observe_max(100_000);
            assert_eq!(w.candidate(), want[0]);
            w.tracker(1).observe_max(60_000);
            assert_eq!(w.candidate(), want[1]);
        }
        assert_eq!(Watermarks::none().candidate(), None);
    }
}
