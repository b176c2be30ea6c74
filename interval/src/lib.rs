//! Spark-style interval strings ("10 minutes", "1 hour 30 minutes", "500 milliseconds").
//!
//! One crate used by the macro (compile-time checks of window and watermark durations) and
//! the runtime (`Trigger::processing_time("1 second")`), so both accept exactly the same
//! language. It depends on nothing but `core`/`std`.

/// Microseconds per unit, by Spark's unit names (singular and plural accepted).
const UNITS: &[(&str, i64)] = &[
    ("microsecond", 1),
    ("millisecond", 1_000),
    ("second", 1_000_000),
    ("minute", 60_000_000),
    ("hour", 3_600_000_000),
    ("day", 86_400_000_000),
    ("week", 604_800_000_000),
];

/// The unit names, for "did you mean" hints.
pub fn unit_names() -> impl Iterator<Item = &'static str> {
    UNITS.iter().map(|(n, _)| *n)
}

/// Why a duration string was rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DurationError {
    /// Nothing but whitespace (or an optional `interval` keyword).
    Empty,
    /// A number was expected here.
    BadNumber(String),
    /// A number without a unit.
    MissingUnit(String),
    /// A word that is not a unit.
    UnknownUnit(String),
    /// The total overflowed 64-bit microseconds.
    Overflow,
}

impl std::fmt::Display for DurationError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DurationError::Empty => write!(f, "empty duration; write e.g. \"10 minutes\""),
            DurationError::BadNumber(s) => write!(f, "`{s}` is not a number; write e.g. \"10 minutes\""),
            DurationError::MissingUnit(n) => {
                write!(f, "`{n}` has no unit; write e.g. \"{n} seconds\"")
            }
            DurationError::UnknownUnit(u) => write!(
                f,
                "unknown time unit `{u}`; expected one of: microseconds, milliseconds, seconds, minutes, hours, days, weeks"
            ),
            DurationError::Overflow => write!(f, "duration too large"),
        }
    }
}

/// Parses `"<n> <unit> [<n> <unit> ...]"` into microseconds. Negative numbers are allowed
/// here (callers decide whether a negative or zero duration makes sense).
pub fn parse_duration_micros(text: &str) -> Result<i64, DurationError> {
    let mut words = text.split_whitespace().peekable();
    if words.peek().is_some_and(|w| w.eq_ignore_ascii_case("interval")) {
        words.next();
    }
    let mut total: i64 = 0;
    let mut any = false;
    while let Some(num) = words.next() {
        let n: i64 = num.parse().map_err(|_| DurationError::BadNumber(num.to_string()))?;
        let unit = words.next().ok_or_else(|| DurationError::MissingUnit(num.to_string()))?;
        let lower = unit.to_ascii_lowercase();
        let singular = lower.strip_suffix('s').unwrap_or(&lower);
        let per = UNITS
            .iter()
            .find(|(name, _)| *name == singular)
            .map(|(_, m)| *m)
            .ok_or_else(|| DurationError::UnknownUnit(unit.to_string()))?;
        total = n.checked_mul(per).and_then(|v| total.checked_add(v)).ok_or(DurationError::Overflow)?;
        any = true;
    }
    if !any {
        return Err(DurationError::Empty);
    }
    Ok(total)
}
