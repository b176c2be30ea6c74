//! Event-time windows, as Spark assigns them: `window(ts, size)` (tumbling),
//! `window(ts, size, slide)` (sliding, optional start offset) and the `Window` struct column
//! (`{start, end}`, end exclusive) they produce.

use std::fmt;
use std::sync::Arc;

use arrow_array::builder::TimestampMicrosecondBuilder;
use arrow_array::{Array, ArrayRef, StructArray, TimestampMicrosecondArray};
use arrow_buffer::{BooleanBufferBuilder, NullBuffer};
use arrow_schema::{DataType, Field, Fields, TimeUnit};

use crate::error::{Error, Result};
use crate::record::{ColumnType, NullableBuilder, Timestamp};

/// An event-time window `[start, end)`: Spark's `window` / `session_window` struct column.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Debug)]
pub struct Window {
    /// Inclusive start.
    pub start: Timestamp,
    /// Exclusive end.
    pub end: Timestamp,
}

impl Window {
    /// The window `[start, end)`.
    pub fn new(start: Timestamp, end: Timestamp) -> Self {
        Window { start, end }
    }
}

impl fmt::Display for Window {
    /// As Spark's console shows a struct: `{2024-01-01 12:00:00, 2024-01-01 12:10:00}`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{{{}, {}}}", self.start, self.end)
    }
}

/// A timestamp column value, nullable or not, as an event time in microseconds.
#[diagnostic::on_unimplemented(
    message = "event time must be a timestamp, but this is `{Self}`",
    label = "`with_watermark`, `window` and `session_window` need a `Timestamp` or `Option<Timestamp>` column",
    note = "declare the field as `Timestamp` in the record; flowgate reads RFC 3339 / Spark timestamp strings into it"
)]
pub trait EventTime: Copy {
    /// Microseconds since the epoch; `None` for a null.
    fn event_micros(self) -> Option<i64>;
}

impl EventTime for Timestamp {
    #[inline(always)]
    fn event_micros(self) -> Option<i64> {
        Some(self.0)
    }
}

impl EventTime for Option<Timestamp> {
    #[inline(always)]
    fn event_micros(self) -> Option<i64> {
        self.map(|t| t.0)
    }
}

/// The tumbling window of `ts` (`None` for a null timestamp: Spark filters such rows out).
/// `size` and `offset` are microseconds; `offset` shifts window starts from the epoch.
#[inline(always)]
pub fn tumbling(ts: impl EventTime, size: i64, offset: i64) -> Option<Window> {
    let t = ts.event_micros()?;
    let start = t - (t - offset).rem_euclid(size);
    Some(Window::new(Timestamp(start), Timestamp(start + size)))
}

/// The sliding windows containing `ts`, oldest first, as Spark's `TimeWindowing` rule
/// generates them: `ceil(size / slide)` candidates, kept when `start <= ts < end`.
#[inline]
pub fn sliding(ts: impl EventTime, size: i64, slide: i64, offset: i64) -> SlidingWindows {
    match ts.event_micros() {
        None => SlidingWindows { t: 0, size, slide, next_start: 0, last_start: -1, empty: true },
        Some(t) => {
            // The latest window start at or before t.
            let last_start = t - (t - offset).rem_euclid(slide);
            let n = (size + slide - 1) / slide;
            SlidingWindows { t, size, slide, next_start: last_start - (n - 1) * slide, last_start, empty: false }
        }
    }
}

/// Iterator of [`sliding`].
#[derive(Clone, Debug)]
pub struct SlidingWindows {
    t: i64,
    size: i64,
    slide: i64,
    next_start: i64,
    last_start: i64,
    empty: bool,
}

impl Iterator for SlidingWindows {
    type Item = Window;
    #[inline]
    fn next(&mut self) -> Option<Window> {
        while !self.empty && self.next_start <= self.last_start {
            let start = self.next_start;
            self.next_start += self.slide;
            if start <= self.t && self.t < start + self.size {
                return Some(Window::new(Timestamp(start), Timestamp(start + self.size)));
            }
        }
        None
    }
}

fn window_fields() -> Fields {
    let ts = DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
    Fields::from(vec![Field::new("start", ts.clone(), true), Field::new("end", ts, true)])
}

/// Builds `Window` struct columns: two timestamp builders and the struct's validity.
pub struct WindowBuilder {
    start: TimestampMicrosecondBuilder,
    end: TimestampMicrosecondBuilder,
    valid: BooleanBufferBuilder,
}

impl WindowBuilder {
    fn with_capacity(capacity: usize) -> Self {
        WindowBuilder {
            start: TimestampMicrosecondBuilder::with_capacity(capacity).with_timezone("UTC"),
            end: TimestampMicrosecondBuilder::with_capacity(capacity).with_timezone("UTC"),
            valid: BooleanBufferBuilder::new(capacity),
        }
    }

    fn append(&mut self, w: Option<Window>) {
        self.start.append_option(w.map(|w| w.start.0));
        self.end.append_option(w.map(|w| w.end.0));
        self.valid.append(w.is_some());
    }
}

impl NullableBuilder for WindowBuilder {
    fn append_null_value(&mut self) {
        self.append(None)
    }
}

impl ColumnType for Window {
    type Array = StructArray;
    type Builder = WindowBuilder;
    type Ref<'a> = Window;
    crate::record::padded_as_option!();

    fn data_type() -> DataType {
        DataType::Struct(window_fields())
    }
    #[inline]
    fn get(array: &StructArray, i: usize) -> Window {
        let part = |j: usize| {
            array
                .column(j)
                .as_any()
                .downcast_ref::<TimestampMicrosecondArray>()
                .map(|a| Timestamp(a.value(i)))
                .unwrap_or_default()
        };
        Window::new(part(0), part(1))
    }
    fn from_ref(r: Window) -> Window {
        r
    }
    fn new_builder(capacity: usize) -> WindowBuilder {
        WindowBuilder::with_capacity(capacity)
    }
    fn append(builder: &mut WindowBuilder, value: Window) {
        builder.append(Some(value))
    }
    fn finish(builder: &mut WindowBuilder) -> ArrayRef {
        let columns: Vec<ArrayRef> = vec![Arc::new(builder.start.finish()), Arc::new(builder.end.finish())];
        let valid = NullBuffer::new(builder.valid.finish());
        let nulls = (valid.null_count() > 0).then_some(valid);
        Arc::new(StructArray::new(window_fields(), columns, nulls))
    }
    fn downcast<'a>(column: &'a ArrayRef, name: &str) -> Result<&'a StructArray> {
        let ok = matches!(column.data_type(), DataType::Struct(f) if f.len() == 2
            && f.iter().all(|x| matches!(x.data_type(), DataType::Timestamp(TimeUnit::Microsecond, _))));
        if !ok {
            return Err(Error::Plan(format!(
                "column `{name}` has type {} but the record declares a Window (struct<start, end> of timestamps)",
                column.data_type()
            )));
        }
        column
            .as_any()
            .downcast_ref::<StructArray>()
            .ok_or_else(|| Error::Internal(format!("column `{name}`: not a struct")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60_000_000;

    fn at(min: i64) -> Timestamp {
        Timestamp(1_704_110_400_000_000 + min * MIN) // 2024-01-01 12:00 + min
    }

    #[test]
    fn tumbling_windows_are_end_exclusive() {
        let w = tumbling(at(9), 10 * MIN, 0).unwrap();
        assert_eq!((w.start, w.end), (at(0), at(10)));
        let w = tumbling(at(10), 10 * MIN, 0).unwrap();
        assert_eq!(w.start, at(10));
        assert!(tumbling(None::<Timestamp>, 10 * MIN, 0).is_none());
        let w = tumbling(Timestamp(-1), 10, 0).unwrap();
        assert_eq!((w.start.0, w.end.0), (-10, 0), "before the epoch rounds down");
    }

    #[test]
    fn sliding_windows_as_spark() {
        let ws: Vec<_> = sliding(at(3), 10 * MIN, 5 * MIN, 0).map(|w| (w.start, w.end)).collect();
        assert_eq!(ws, vec![(at(-5), at(5)), (at(0), at(10))]);
        let ws: Vec<_> = sliding(at(5), 10 * MIN, 5 * MIN, 0).map(|w| w.start).collect();
        assert_eq!(ws, vec![at(0), at(5)], "a boundary belongs to the window it starts");
        // size not a multiple of slide
        let ws: Vec<_> = sliding(Timestamp(7), 10, 4, 0).map(|w| (w.start.0, w.end.0)).collect();
        assert_eq!(ws, vec![(0, 10), (4, 14)]);
    }

    #[test]
    fn window_column_round_trip() {
        let mut b = Window::new_builder(1);
        Window::append(&mut b, Window::new(at(0), at(10)));
        let arr = Window::finish(&mut b);
        let typed = Window::downcast(&arr, "window").unwrap();
        assert_eq!(Window::get(typed, 0), Window::new(at(0), at(10)));
        assert_eq!(Window::new(at(0), at(10)).to_string(), "{2024-01-01 12:00:00, 2024-01-01 12:10:00}");
    }
}

/// A window as a grouping key: only its start, the size being a constant of the query. Half the
/// bytes of a [`Window`] per group in aggregation state.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Debug)]
pub struct WindowKey<const SIZE: i64> {
    /// Window start, microseconds.
    pub start: i64,
}

impl<const SIZE: i64> WindowKey<SIZE> {
    /// The key of `window` (whose length must be `SIZE`).
    #[inline(always)]
    pub fn of(window: Window) -> Self {
        debug_assert_eq!(window.end.0 - window.start.0, SIZE);
        WindowKey { start: window.start.0 }
    }
    /// The window.
    #[inline(always)]
    pub fn window(self) -> Window {
        Window::new(Timestamp(self.start), Timestamp(self.start + SIZE))
    }
}
