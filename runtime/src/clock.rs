//! One clock for event stamps and measurements: UTC microseconds that advance with the
//! monotonic clock.
//!
//! The wall clock (`SystemTime`) can step or be slewed by NTP while a query runs, so a time
//! stamped from it at one moment and compared with a later reading can come out negative. The
//! rate source stamps its rows on this clock instead, and a sink that measures latency reads
//! the same clock ([`now_micros`]): a row's latency is then never negative. The clock is
//! anchored to the wall clock once per process (the first call), so its readings are UTC
//! microseconds as long as the process runs, off the wall clock by at most the drift since.

use std::sync::OnceLock;
use std::time::Instant;

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
