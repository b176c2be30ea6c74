//! The engine's clock: where a batch's processing time comes from.
//!
//! Each micro-batch takes its timestamp (Spark's `batchTimestampMs`) from the query's clock
//! when it is planned, writes it to the offset log with the batch's offsets, and uses the
//! logged value when the batch is re-run after a restart, so processing-time timeouts
//! (`GroupState::set_timeout_duration`) fire in the same batch on a replay. A query uses the
//! system clock unless its builder is given another (`.clock(...)`); tests give it a
//! [`ManualClock`] and advance it by hand (Spark's `StreamManualClock`), so no test sleeps
//! to make a timeout fire.
//!
//! Also here: [`now_micros`], the one clock for event stamps and latency measurements (see
//! below).

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

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

// ---- One clock for event stamps and measurements: UTC microseconds that advance with the
// monotonic clock. The wall clock (`SystemTime`) can step or be slewed by NTP while a query
// runs, so a time stamped from it at one moment and compared with a later reading can come
// out negative. The rate source stamps its rows on this clock instead, and a sink that
// measures latency reads the same clock ([`now_micros`]): a row's latency is then never
// negative. The clock is anchored to the wall clock once per process (the first call), so its
// readings are UTC microseconds as long as the process runs, off the wall clock by at most
// the drift since.

struct Anchor {
    instant: Instant,
    micros: i64,
}

fn anchor() -> &'static Anchor {
    static ANCHOR: OnceLock<Anchor> = OnceLock::new();
    ANCHOR.get_or_init(|| Anchor { instant: Instant::now(), micros: chrono::Utc::now().timestamp_micros() })
}

/// Now, in UTC microseconds on the process's monotonic clock.
pub fn now_micros() -> i64 {
    micros_at(Instant::now())
}

/// `instant` in UTC microseconds on the same clock as [`now_micros`] (rounded down).
pub fn micros_at(instant: Instant) -> i64 {
    let a = anchor();
    if instant >= a.instant {
        a.micros.saturating_add(i64::try_from(instant.duration_since(a.instant).as_micros()).unwrap_or(i64::MAX))
    } else {
        // Rounded down as well: the instant is at or after the result.
        let back = a.instant.duration_since(instant).as_nanos().div_ceil(1_000);
        a.micros.saturating_sub(i64::try_from(back).unwrap_or(i64::MAX))
    }
}

/// The instant of `micros` on this clock (the inverse of [`micros_at`], to the microsecond).
pub fn instant_at(micros: i64) -> Instant {
    let a = anchor();
    let d = micros.saturating_sub(a.micros);
    let offset = std::time::Duration::from_micros(d.unsigned_abs());
    if d >= 0 {
        a.instant.checked_add(offset).unwrap_or(a.instant)
    } else {
        a.instant.checked_sub(offset).unwrap_or(a.instant)
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

#[cfg(test)]
mod monotonic_tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn readings_never_go_back_and_follow_the_monotonic_clock() {
        let a = now_micros();
        let i = Instant::now();
        std::thread::sleep(Duration::from_millis(2));
        let b = now_micros();
        assert!(b >= a + 2_000, "{a} {b}");
        let m = micros_at(i);
        assert!(m >= a && m <= b);
        // Rounded down both ways: an instant is never before its reading.
        let earlier = i - Duration::from_nanos(1_500);
        assert!(instant_at(micros_at(earlier)) <= earlier);
        assert!(instant_at(micros_at(i)) <= i);
        assert!((now_micros() - chrono::Utc::now().timestamp_micros()).abs() < 1_000_000);
    }
}
