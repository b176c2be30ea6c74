//! The engine's clock: where a batch's processing time comes from.
//!
//! Each micro-batch takes its timestamp (Spark's `batchTimestampMs`) from the query's clock
//! when it is planned, writes it to the offset log with the batch's offsets, and uses the
//! logged value when the batch is re-run after a restart, so processing-time timeouts
//! (`GroupState::set_timeout_duration`) fire in the same batch on a replay. A query uses the
//! system clock unless its builder is given another (`.clock(...)`); tests give it a
//! [`ManualClock`] and advance it by hand (Spark's `StreamManualClock`), so no test sleeps
//! to make a timeout fire.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

/// A source of processing time, in milliseconds since the epoch.
pub trait Clock: Send + Sync {
    /// The current processing time (ms since the epoch).
    fn now_ms(&self) -> i64;
}

/// The system's wall clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        chrono::Utc::now().timestamp_millis()
    }
}

/// A clock that only moves when told to. Clones share the same time.
///
/// ```
/// use flowgate::clock::{Clock, ManualClock};
/// let clock = ManualClock::new(1_000);
/// clock.advance_ms(500);
/// assert_eq!(clock.now_ms(), 1_500);
/// ```
#[derive(Clone, Debug, Default)]
pub struct ManualClock(Arc<AtomicI64>);

impl ManualClock {
    /// A clock standing at `start_ms`.
    pub fn new(start_ms: i64) -> Self {
        ManualClock(Arc::new(AtomicI64::new(start_ms)))
    }

    /// Moves the clock forward by `ms`.
    pub fn advance_ms(&self, ms: i64) {
        self.0.fetch_add(ms, Ordering::SeqCst);
    }

    /// Sets the time (it may move back: a test's choice).
    pub fn set_ms(&self, ms: i64) {
        self.0.store(ms, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_moves_only_when_told_and_clones_share_it() {
        let c = ManualClock::new(10);
        let d = c.clone();
        assert_eq!(c.now_ms(), 10);
        d.advance_ms(5);
        assert_eq!(c.now_ms(), 15);
        c.set_ms(3);
        assert_eq!(d.now_ms(), 3);
        assert!(SystemClock.now_ms() > 1_700_000_000_000);
    }
}
