//! The rate source: a fixed number of rows per second with columns `timestamp` and `value`, for
//! tests and benchmarks (after Spark's `rate` source).

use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow_array::{Int64Array, RecordBatch, TimestampMicrosecondArray};
use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};

use super::{Offset, ReadLimit, SourceImpl};
use crate::error::{Error, Result};

/// Most rows in one generated [`RecordBatch`]; larger ranges are split. 64 Ki rows is the
/// upper end of the usual Arrow batch sizes (DataFusion defaults to 8 Ki, Spark's columnar
/// batches to 4 Ki), and keeps one batch of this source to 1 MiB (16 bytes a row).
const MAX_ROWS_PER_BATCH: u64 = 65_536;

/// Most rows in one micro-batch under [`ReadLimit::Default`], unless
/// [`RateSource::with_max_rows_per_trigger`] says otherwise: a batch that starts late, or the
/// first one after a restart (when every row due while the query was down exists at once),
/// catches up over several batches of at most this many rows instead of generating them all
/// at once (at a million rows a second, ten minutes down would otherwise be one batch of
/// 9.6 GB). 4 Mi rows are 64 MiB of generated columns (16 bytes a row); at the highest rate
/// the soak bench's windowed aggregation sustained in a release build on 2 loaded cores
/// (4.8 M rows/s, `benches/results/soak-2026-12-01-1845.txt`) they are 0.9 s of rows, almost
/// two of its 500 ms triggers. A processing-time trigger whose interval holds more rows than
/// this (rate × interval) reads only this many per interval and falls behind: raise the limit.
pub const MAX_ROWS_PER_TRIGGER: u64 = 1 << 22;

const MICROS_PER_SECOND: u128 = 1_000_000;
const NANOS_PER_SECOND: u128 = 1_000_000_000;

/// When the source started: the monotonic instant and its UTC microseconds on
/// [`crate::clock`], the clock sinks measure latency with.
#[derive(Clone, Copy, Debug)]
struct Start {
    /// For measuring elapsed time (monotonic).
    instant: Instant,
    /// The timestamp of row 0, in UTC microseconds.
    micros: i64,
}

/// `rows_per_second` rows a second, with columns `timestamp` (UTC, microseconds, not null) and
/// `value` (`i64`, not null), as Spark's rate source.
///
/// The start time is fixed by the first [`SourceImpl::latest_offset`]. Row `v` has `value = v`
/// and `timestamp = start + v * 1e6 / rows_per_second` microseconds, and exists from that
/// moment on: the offset is the number of rows created by now, which is
/// `floor(elapsed * rows_per_second) + 1` (row 0 at the start). So a row's `timestamp` is the
/// time it was created and made available (on [`crate::clock`]'s clock, rounded down), and
/// end-to-end latency is [`crate::clock::now_micros`]` - timestamp`, never negative.
/// Asking for the same range again gives the same rows, also across a restart: the start
/// time (UTC microseconds) is logged with the first batch of each run
/// ([`SourceImpl::batch_log`], `{"startMicros": …}`) and restored from the checkpoint
/// ([`SourceImpl::restore_log`]), as Spark's rate source records `startTimeMs` in its offset
/// metadata, so a re-run batch has exactly the rows of its first attempt. After a restart the
/// rows due while the query was down exist at once (Spark's rate source catches up the same
/// way). A checkpoint written before the start time was logged has none to restore: then the
/// source picks a start such that the rows already processed are the ones that exist, so
/// values continue without a gap but the timestamps of a re-run batch are re-derived.
///
/// A micro-batch reads at most [`MAX_ROWS_PER_TRIGGER`] rows (except under
/// [`ReadLimit::All`]: `Trigger::once`); the rest waits for the next batch.
///
/// The source tells the engine when its next row is due ([`SourceImpl::next_data_due`]), so an
/// idle query wakes up for it instead of polling.
pub struct RateSource {
    rows_per_second: u64,
    schema: SchemaRef,
    start: Option<Start>,
    /// Under available-now: the last offset of the run.
    snapshot: Option<u64>,
    /// Whether this run logged its start time yet (once per run is enough: source logs are
    /// kept whole, and every entry holds the same start).
    logged_start: bool,
    /// Continuous mode: the number of partitions (Spark's `numPartitions`); `None`: the
    /// number of cores.
    partitions: Option<usize>,
    /// Most rows in one micro-batch ([`MAX_ROWS_PER_TRIGGER`] unless set).
    max_rows_per_trigger: u64,
}

/// The key of the start time in the rate source's log entries.
const START_KEY: &str = "startMicros";

impl RateSource {
    /// A source producing `rows_per_second` rows a second (must be positive; 0 is reported as
    /// an [`Error::Plan`] when the query starts).
    pub fn new(rows_per_second: u64) -> Self {
        let schema = Arc::new(Schema::new(vec![
            Field::new("timestamp", DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())), false),
            Field::new("value", DataType::Int64, false),
        ]));
        RateSource {
            rows_per_second,
            schema,
            start: None,
            snapshot: None,
            logged_start: false,
            partitions: None,
            max_rows_per_trigger: MAX_ROWS_PER_TRIGGER,
        }
    }

    /// At most `n` rows in one micro-batch (at least 1; default [`MAX_ROWS_PER_TRIGGER`]);
    /// `Trigger::once` reads everything regardless. Use
    /// `Source::from_impl(Box::new(RateSource::new(r).with_max_rows_per_trigger(n)))`.
    pub fn with_max_rows_per_trigger(mut self, n: u64) -> Self {
        self.max_rows_per_trigger = n.max(1);
        self
    }

    /// In continuous mode, `n` partitions, each read by its own task (Spark's `numPartitions`;
    /// default: the number of cores): partition `p` has the rows whose `value % n == p`, so
    /// the rows are those of a micro-batch run, with the same timestamps. Micro-batch runs
    /// ignore it. Fixed for the life of a checkpoint.
    pub fn with_partitions(mut self, n: usize) -> Self {
        self.partitions = Some(n.max(1));
        self
    }

    fn check(&self) -> Result<()> {
        if self.rows_per_second == 0 {
            return Err(Error::Plan("the rate source needs rows_per_second > 0".to_string()));
        }
        Ok(())
    }

    /// The start, fixed now if not yet, such that `rows_done` rows already exist (row
    /// `rows_done - 1` is created now).
    fn start(&mut self, rows_done: u64) -> Start {
        let rps = self.rows_per_second as u128;
        *self.start.get_or_insert_with(|| {
            let last = rows_done.saturating_sub(1) as u128;
            let back = u64::try_from(last * NANOS_PER_SECOND / rps).unwrap_or(u64::MAX);
            let now = Instant::now();
            let instant = now.checked_sub(Duration::from_nanos(back)).unwrap_or(now);
            // Stamped on the clock sinks measure with (`crate::clock`), rounded down: a row's
            // timestamp is never after the moment it exists.
            Start { instant, micros: crate::clock::micros_at(instant) }
        })
    }

    /// The start whose row 0 has timestamp `micros` (a logged start), on the same clock.
    fn start_at(micros: i64) -> Start {
        Start { instant: crate::clock::instant_at(micros), micros }
    }

    /// Rows that exist at this moment ([`rows_now`]).
    fn rows_now(&self, start: Start) -> u64 {
        rows_now(self.rows_per_second, start)
    }

    /// When row `value` is created ([`created_at`]).
    fn created_at(&self, start: Start, value: u64) -> Instant {
        created_at(self.rows_per_second, start, value)
    }

    /// The timestamp of row `value` ([`timestamp`]).
    fn timestamp(&self, start: Start, value: u64) -> i64 {
        timestamp(self.rows_per_second, start, value)
    }
}

/// Rows that exist at this moment: row `v` exists once `v / rps` seconds have passed since
/// the start.
fn rows_now(rps: u64, start: Start) -> u64 {
    let elapsed = start.instant.elapsed().as_nanos();
    u64::try_from(elapsed * rps as u128 / NANOS_PER_SECOND).map_or(u64::MAX, |n| n.saturating_add(1))
}

/// When row `value` is created (rounded up to the nanosecond, so it exists then).
fn created_at(rps: u64, start: Start, value: u64) -> Instant {
    let nanos = (value as u128 * NANOS_PER_SECOND).div_ceil(rps as u128);
    start.instant + Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
}

/// The timestamp of row `value` (rounded down to the microsecond: never after it exists).
fn timestamp(rps: u64, start: Start, value: u64) -> i64 {
    let offset = value as u128 * MICROS_PER_SECOND / rps as u128;
    start.micros.saturating_add(i64::try_from(offset).unwrap_or(i64::MAX))
}

fn parse(offset: &Offset) -> Result<u64> {
    offset.as_u64().ok_or_else(|| Error::Checkpoint(format!("rate source offset {offset} is not a number")))
}

impl SourceImpl for RateSource {
    fn description(&self) -> String {
        format!("RateSource[rowsPerSecond={}]", self.rows_per_second)
    }

    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn prepare_available_now(&mut self) -> Result<()> {
        self.check()?;
        let start = self.start(0);
        self.snapshot = Some(self.rows_now(start));
        Ok(())
    }

    fn latest_offset(&mut self, start: Option<&Offset>, limit: ReadLimit) -> Result<Option<Offset>> {
        self.check()?;
        let done = start.map(parse).transpose()?.unwrap_or(0);
        let begun = self.start(done);
        let mut end = self.rows_now(begun).max(done);
        if let Some(snapshot) = self.snapshot {
            end = end.min(snapshot.max(done));
        }
        if limit == ReadLimit::Default {
            end = end.min(done.saturating_add(self.max_rows_per_trigger));
        }
        Ok((end > 0).then(|| Offset::number(end)))
    }

    fn get_batch(&mut self, start: Option<&Offset>, end: &Offset) -> Result<Vec<RecordBatch>> {
        self.check()?;
        let from = start.map(parse).transpose()?.unwrap_or(0);
        let to = parse(end)?;
        if from > to {
            return Err(Error::Execution(format!("rate source asked for an empty range ({from}, {to}]")));
        }
        let begun = self.start(to);
        let mut batches = Vec::new();
        let mut lo = from;
        while lo < to {
            let hi = to.min(lo + MAX_ROWS_PER_BATCH);
            let timestamps: TimestampMicrosecondArray =
                (lo..hi).map(|v| self.timestamp(begun, v)).collect::<Vec<_>>().into();
            let values: Int64Array = (lo..hi).map(|v| v as i64).collect::<Vec<_>>().into();
            let columns = vec![Arc::new(timestamps.with_timezone("UTC")) as _, Arc::new(values) as _];
            batches.push(RecordBatch::try_new(self.schema.clone(), columns)?);
            lo = hi;
        }
        Ok(batches)
    }

    fn batch_log(&self, _start: Option<&Offset>, _end: &Offset) -> Result<Option<serde_json::Value>> {
        Ok(match self.start {
            Some(start) if !self.logged_start => Some(serde_json::json!({ START_KEY: start.micros })),
            _ => None,
        })
    }

    fn restore_log(&mut self, entries: Vec<serde_json::Value>) -> Result<()> {
        // The first run's start: every later entry repeats it (a run after a restart logs the
        // start it restored).
        let Some(first) = entries.iter().find(|e| !e.is_null()) else { return Ok(()) };
        let micros = first[START_KEY].as_i64().ok_or_else(|| {
            Error::Checkpoint(format!("rate source log entry {first} has no integer \"{START_KEY}\""))
        })?;
        self.start = Some(Self::start_at(micros));
        Ok(())
    }

    fn commit(&mut self, _end: &Offset) -> Result<()> {
        // The batch's log entry (written before it ran) holds the start.
        self.logged_start = true;
        Ok(())
    }

    fn continuous_readers(
        &mut self,
        start: Option<&[serde_json::Value]>,
    ) -> Result<Option<Vec<Box<dyn super::continuous::PartitionReader>>>> {
        self.check()?;
        let n = match (start, self.partitions) {
            (Some(s), Some(n)) if s.len() != n => {
                return Err(Error::Checkpoint(format!(
                    "the rate source has {n} partitions and the checkpoint {}: the partitions of a continuous \
                     query are fixed by its first run",
                    s.len()
                )))
            }
            (Some(s), _) => s.len(),
            (None, Some(n)) => n,
            (None, None) => std::thread::available_parallelism().map_or(1, |n| n.get()),
        };
        let mut read = Vec::with_capacity(n);
        for p in 0..n {
            let r = match start {
                Some(s) => s[p].as_u64().ok_or_else(|| {
                    Error::Checkpoint(format!("rate source partition {p}: logged position {} is not a number", s[p]))
                })?,
                None => 0,
            };
            read.push(r);
        }
        // Rows done across partitions: the start is fixed (unless restored) such that they exist.
        let done =
            read.iter().enumerate().map(|(p, &k)| if k == 0 { 0 } else { p as u64 + (k - 1) * n as u64 + 1 }).max();
        let start = self.start(done.unwrap_or(0));
        let readers = (0..n)
            .map(|p| {
                Box::new(RatePartition {
                    rows_per_second: self.rows_per_second,
                    schema: self.schema.clone(),
                    start,
                    partition: p as u64,
                    partitions: n as u64,
                    read: read[p],
                    end: None,
                    since: None,
                }) as Box<dyn super::continuous::PartitionReader>
            })
            .collect();
        Ok(Some(readers))
    }

    fn next_data_due(&self) -> Option<Instant> {
        let start = self.start?;
        if self.rows_per_second == 0 || self.snapshot.is_some() {
            return None;
        }
        Some(self.created_at(start, self.rows_now(start)))
    }
}

/// One partition of the rate source in continuous mode: the values `p, p + n, p + 2n, …`.
struct RatePartition {
    rows_per_second: u64,
    schema: SchemaRef,
    start: Start,
    partition: u64,
    partitions: u64,
    /// Rows of this partition read so far (the position).
    read: u64,
    /// Never read past this position (a replayed epoch).
    end: Option<u64>,
    /// When the first row of the last vector was created.
    since: Option<Instant>,
}

impl RatePartition {
    fn value(&self, k: u64) -> u64 {
        self.partition + k * self.partitions
    }
}

impl super::continuous::PartitionReader for RatePartition {
    fn poll(&mut self, max_rows: usize) -> Result<Option<RecordBatch>> {
        let rps = self.rows_per_second;
        // Rows `0..total` exist; this partition's among them: values `p + k n < total`.
        let total = rows_now(rps, self.start);
        let mut exist = if total > self.partition { (total - self.partition).div_ceil(self.partitions) } else { 0 };
        if let Some(end) = self.end {
            exist = exist.min(end);
        }
        if exist <= self.read {
            return Ok(None);
        }
        let hi = exist.min(self.read + max_rows as u64);
        let values: Vec<u64> = (self.read..hi).map(|k| self.value(k)).collect();
        self.since = Some(created_at(rps, self.start, values[0]));
        let timestamps: TimestampMicrosecondArray =
            values.iter().map(|&v| timestamp(rps, self.start, v)).collect::<Vec<_>>().into();
        let values: Int64Array = values.iter().map(|&v| v as i64).collect::<Vec<_>>().into();
        self.read = hi;
        let columns = vec![Arc::new(timestamps.with_timezone("UTC")) as _, Arc::new(values) as _];
        Ok(Some(RecordBatch::try_new(self.schema.clone(), columns)?))
    }

    fn position(&self) -> serde_json::Value {
        serde_json::Value::from(self.read)
    }

    fn next_due(&self) -> Option<Instant> {
        if self.end.is_some_and(|e| self.read >= e) {
            return None;
        }
        Some(created_at(self.rows_per_second, self.start, self.value(self.read)))
    }

    fn available_since(&self) -> Option<Instant> {
        self.since
    }

    fn set_end(&mut self, end: &serde_json::Value) -> Result<()> {
        let end = end.as_u64().ok_or_else(|| {
            Error::Checkpoint(format!("rate source partition {}: position {end} is not a number", self.partition))
        })?;
        self.end = Some(end);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use arrow_array::cast::AsArray;
    use arrow_array::types::{Int64Type, TimestampMicrosecondType};

    use super::*;

    #[test]
    fn rows_appear_over_time() {
        let mut src = RateSource::new(1000);
        let first = src.latest_offset(None, ReadLimit::Default).unwrap();
        std::thread::sleep(Duration::from_millis(50));
        let later = src.latest_offset(first.as_ref(), ReadLimit::Default).unwrap().unwrap();
        let n = later.as_u64().unwrap();
        assert!(n >= 50, "{n}");
        assert!(first.map_or(0, |o| o.as_u64().unwrap()) < n);
        let batches = src.get_batch(None, &later).unwrap();
        assert_eq!(batches.iter().map(RecordBatch::num_rows).sum::<usize>() as u64, n);
        assert_eq!(batches[0].schema(), src.schema());
        let values = batches[0].column(1).as_primitive::<Int64Type>();
        assert_eq!(values.value(0), 0);
        assert_eq!(values.value(1), 1);
        let ts = batches[0].column(0).as_primitive::<TimestampMicrosecondType>();
        assert_eq!(ts.value(1) - ts.value(0), 1000);
        let now = chrono::Utc::now().timestamp_micros();
        assert!((now - ts.value(0)).abs() < 60_000_000);
    }

    #[test]
    fn replay_is_deterministic_and_large_ranges_are_split() {
        let mut src = RateSource::new(3);
        src.latest_offset(None, ReadLimit::Default).unwrap();
        let end = Offset::number(150_000);
        let a = src.get_batch(Some(&Offset::number(10)), &end).unwrap();
        let b = src.get_batch(Some(&Offset::number(10)), &end).unwrap();
        assert_eq!(a, b);
        assert_eq!(a.iter().map(RecordBatch::num_rows).collect::<Vec<_>>(), [65_536, 65_536, 149_990 - 131_072]);
        let ts = a[0].column(0).as_primitive::<TimestampMicrosecondType>();
        let values = a[0].column(1).as_primitive::<Int64Type>();
        assert_eq!(values.value(0), 10);
        // Row 10 at 3 rows a second: 3.333333 s after row 0; row 11: 3.666666 s.
        assert_eq!(ts.value(1) - ts.value(0), 3_666_666 - 3_333_333);
    }

    #[test]
    fn available_now_stops_at_the_snapshot() {
        let mut src = RateSource::new(1_000_000);
        src.latest_offset(None, ReadLimit::Default).unwrap();
        std::thread::sleep(Duration::from_millis(20));
        src.prepare_available_now().unwrap();
        std::thread::sleep(Duration::from_millis(20));
        let end = src.latest_offset(None, ReadLimit::Default).unwrap().unwrap();
        assert!(end.as_u64().unwrap() >= 20_000);
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(src.latest_offset(Some(&end), ReadLimit::Default).unwrap(), Some(end));
    }

    #[test]
    fn a_restarted_source_continues_from_its_offset() {
        let mut src = RateSource::new(10);
        let end = src.latest_offset(Some(&Offset::number(1_000)), ReadLimit::Default).unwrap().unwrap();
        assert!(end.as_u64().unwrap() >= 1_000);
        assert!(end.as_u64().unwrap() < 1_100);
        let batch = &src.get_batch(Some(&Offset::number(999)), &Offset::number(1_000)).unwrap()[0];
        let ts = batch.column(0).as_primitive::<TimestampMicrosecondType>().value(0);
        assert!((chrono::Utc::now().timestamp_micros() - ts).abs() < 10_000_000);
    }

    #[test]
    fn a_row_exists_from_its_timestamp_and_the_next_one_is_announced() {
        let mut src = RateSource::new(100);
        assert_eq!(src.next_data_due(), None, "no start yet");
        let before = crate::clock::now_micros();
        let first = src.latest_offset(None, ReadLimit::Default).unwrap().unwrap();
        // Row 0 is created at the start: it exists at once.
        assert!(first.as_u64().unwrap() >= 1);
        let row0 = &src.get_batch(None, &Offset::number(1)).unwrap()[0];
        let ts0 = row0.column(0).as_primitive::<TimestampMicrosecondType>().value(0);
        assert!(ts0 >= before - 1_000 && ts0 <= crate::clock::now_micros(), "{ts0} vs {before}");
        // The next row is due within 10 ms; at that time it exists, and its timestamp is not later
        // than the wall clock.
        let n = src.latest_offset(None, ReadLimit::Default).unwrap().unwrap().as_u64().unwrap();
        let due = src.next_data_due().unwrap();
        assert!(due <= Instant::now() + Duration::from_millis(10));
        std::thread::sleep(due.saturating_duration_since(Instant::now()));
        let m = src.latest_offset(None, ReadLimit::Default).unwrap().unwrap().as_u64().unwrap();
        assert!(m > n, "{m} > {n}");
        let batch = &src.get_batch(Some(&Offset::number(m - 1)), &Offset::number(m)).unwrap()[0];
        let ts = batch.column(0).as_primitive::<TimestampMicrosecondType>().value(0);
        assert!(ts <= crate::clock::now_micros());
        // Under available-now there is nothing more to wait for.
        src.prepare_available_now().unwrap();
        assert_eq!(src.next_data_due(), None);
    }

    #[test]
    fn a_restarted_source_replays_a_batch_exactly_from_its_logged_start() {
        let mut first = RateSource::new(1_000);
        let end = first.latest_offset(None, ReadLimit::Default).unwrap().unwrap();
        let entry = first.batch_log(None, &end).unwrap().expect("the first batch logs the start");
        let rows = first.get_batch(None, &end).unwrap();
        first.commit(&end).unwrap();
        std::thread::sleep(Duration::from_millis(30));
        let next = first.latest_offset(Some(&end), ReadLimit::Default).unwrap().unwrap();
        assert_eq!(first.batch_log(Some(&end), &next).unwrap(), None, "once per run");
        let second = first.get_batch(Some(&end), &next).unwrap();
        // Another process, later: it restores the start and replays both batches row for row.
        std::thread::sleep(Duration::from_millis(20));
        let mut restarted = RateSource::new(1_000);
        restarted.restore_log(vec![entry.clone()]).unwrap();
        assert_eq!(restarted.get_batch(None, &end).unwrap(), rows);
        assert_eq!(restarted.get_batch(Some(&end), &next).unwrap(), second);
        // It logs the restored start for its own first batch, and new rows continue the clock:
        // everything due while it was down exists at once.
        let later = restarted.latest_offset(Some(&next), ReadLimit::Default).unwrap().unwrap();
        assert!(later.as_u64().unwrap() >= next.as_u64().unwrap() + 20, "{later} after {next}");
        assert_eq!(restarted.batch_log(Some(&next), &later).unwrap(), Some(entry));
    }

    #[test]
    fn a_late_batch_reads_at_most_max_rows_per_trigger_and_the_rest_follows() {
        // Restarted after ten seconds down at a million rows a second: ten million rows exist.
        let mut src = RateSource::new(1_000_000);
        src.restore_log(vec![serde_json::json!({ START_KEY: crate::clock::now_micros() - 10_000_000 })]).unwrap();
        let done = Offset::number(1_000);
        let end = src.latest_offset(Some(&done), ReadLimit::Default).unwrap().unwrap();
        assert_eq!(end.as_u64().unwrap(), 1_000 + MAX_ROWS_PER_TRIGGER);
        let next = src.latest_offset(Some(&end), ReadLimit::Default).unwrap().unwrap();
        assert_eq!(next.as_u64().unwrap(), 1_000 + 2 * MAX_ROWS_PER_TRIGGER);
        // The rows of a capped batch are the same rows, whatever the limit.
        let rows: usize = src.get_batch(Some(&end), &next).unwrap().iter().map(RecordBatch::num_rows).sum();
        assert_eq!(rows as u64, MAX_ROWS_PER_TRIGGER);
        // Trigger::once reads everything that exists.
        let all = src.latest_offset(Some(&done), ReadLimit::All).unwrap().unwrap();
        assert!(all.as_u64().unwrap() >= 10_000_000, "{all}");
        // A limit of its own.
        let mut small = RateSource::new(1_000_000).with_max_rows_per_trigger(500);
        small.restore_log(vec![serde_json::json!({ START_KEY: crate::clock::now_micros() - 1_000_000 })]).unwrap();
        assert_eq!(small.latest_offset(Some(&done), ReadLimit::Default).unwrap(), Some(Offset::number(1_500)));
    }

    #[test]
    fn a_log_entry_without_a_start_is_a_checkpoint_error() {
        let mut src = RateSource::new(10);
        let e = src.restore_log(vec![serde_json::json!({"x": 1})]).unwrap_err();
        assert!(matches!(e, Error::Checkpoint(_)) && e.to_string().contains("startMicros"), "{e}");
        // Null entries (batches that logged nothing) are skipped.
        src.restore_log(vec![serde_json::Value::Null]).unwrap();
        assert!(src.start.is_none());
    }

    #[test]
    fn zero_rows_per_second_is_a_plan_error() {
        assert!(matches!(RateSource::new(0).latest_offset(None, ReadLimit::Default), Err(Error::Plan(_))));
    }
}
