//! # The `stream_query!` language reference
//!
//! A query is declared as
//!
//! ```text
//! [pub] query Name(input: Record) -> Output, mode = append | update | complete { pipeline }
//! ```
//!
//! and becomes a type `Name` with `Name::builder()` (one setter per input, then `sink`,
//! `trigger`, `checkpoint`, `shuffle_partitions`, `no_data_batches`, `query_name`, `start`).
//! The pipeline is the input's name followed by operators. Inside expressions, columns are
//! Rust values (`&str` for `String`, `Option<_>` for nullable columns); expressions are Rust and
//! rustc type-checks them where they are written. Compile-time rules and their messages are
//! listed in the README.
//!
//! ## Stateless operators
//!
//! - `.filter(expr)` / `.where_(expr)` — keep rows where the `bool` expression holds.
//! - `.select(a, b = expr, expr as c)` / `.map(...)` — exactly these columns.
//! - `.with_column(name = expr, ...)` — add or replace columns, keep the others.
//! - `.flat_map(name = iterable)` / `.explode(...)` — one row per item (Spark's `explode`).
//!
//! ```
//! use flowgate::prelude::*;
//!
//! #[derive(Record)]
//! struct Sale { shop: String, amount: Option<f64>, units: i64 }
//!
//! #[derive(Record)]
//! struct Line { shop: String, revenue: f64, big: bool }
//!
//! stream_query! {
//!     /// Revenue per sale line, for sales with units and a known amount.
//!     query Revenue(sales: Sale) -> Line, mode = append {
//!         sales
//!             .filter(units > 0 && amount.is_some())
//!             .with_column(revenue = amount.unwrap_or(0.0) * units as f64)
//!             .select(shop = shop.to_uppercase(), revenue, big = revenue > 100.0)
//!     }
//! }
//!
//! #[derive(Record)]
//! struct Text { value: Option<String> }
//!
//! #[derive(Record)]
//! struct Word { word: String, len: i64 }
//!
//! stream_query! {
//!     /// One row per word; `split` gives nothing for a null line, as Spark's explode.
//!     query Words(lines: Text) -> Word, mode = append {
//!         lines
//!             .flat_map(word = split(value, " "))
//!             .filter(!word.is_empty())
//!             .select(word, len = word.chars().count() as i64)
//!     }
//! }
//! # fn main() {}
//! ```
//!
//! ## Typed operations
//!
//! Spark's typed `Dataset` operations (`lines.as[String].map(line => DeviceData(...))`) with a
//! Rust function over the whole record, fused into the same row loop as the column operators
//! (no box, no `dyn`: the function is inlined):
//!
//! - `.map_rows(f)` — `f(row) -> Record`: one record per row. The columns after it are that
//!   record's (rustc checks each name where it is written).
//! - `.flat_map_rows(f)` — `f(row) -> impl IntoIterator<Item = Record>`: any number of records
//!   per row; return an `Option` to keep a row that parses and drop one that does not.
//! - `.filter_rows(f)` — `f(row) -> bool`: keep the row when `f` says so.
//!
//! Over the query's input, `row` is a borrowed view of the row, [`crate::record::RowRef`]
//! (`RowRef<'_, Line>`: each field as a column read gives it, `&str` for `String`; nothing is
//! allocated); after a map, a reference to the record it returned. `f` is a closure or a
//! function's path (the expression is evaluated once per row). A typed operation needs the rows
//! to be a record: the input's or a map's, after operators that only choose rows (`filter`,
//! `drop_duplicates`, …) — not after `select`, `with_column`, an aggregation or a join; and a
//! `with_watermark` goes after the map, on a column of its records. The input's source then
//! decodes every column.
//!
//! ```
//! use flowgate::prelude::*;
//! use flowgate::record::RowRef;
//!
//! #[derive(Record)]
//! struct Line { value: String }
//!
//! #[derive(Record)]
//! struct DeviceData { device: String, device_type: String, signal: f64, time: Timestamp }
//!
//! #[derive(Record)]
//! struct TypeCount { device_type: String, n: i64 }
//!
//! /// `d1 phone 12.5 2024-01-01T12:00:00Z`; a line that does not parse gives no record.
//! fn parse(line: RowRef<'_, Line>) -> Option<DeviceData> {
//!     let mut f = line.value.split(' ');
//!     let (device, device_type) = (f.next()?.to_string(), f.next()?.to_string());
//!     let signal = f.next()?.parse().ok()?;
//!     let time = Timestamp::parse(f.next()?).ok()?;
//!     Some(DeviceData { device, device_type, signal, time })
//! }
//!
//! stream_query! {
//!     /// The seed's device example over a socket's lines.
//!     query DeviceTypes(lines: Line) -> TypeCount, mode = update {
//!         lines
//!             .flat_map_rows(parse)
//!             .filter_rows(|d| d.device_type != "test")
//!             .filter(signal > 10.0)
//!             .group_by(device_type)
//!             .agg(count() as n)
//!     }
//! }
//! # fn main() {}
//! ```
//!
//! ## Aggregation
//!
//! `.group_by(keys...).agg(aggregates...)`, or `.agg(...)` alone for one group over the whole
//! stream. Aggregates: `count()` (rows), `count(x)` (non-null values), `sum(x)` (`i64` for
//! integers, `f64` for doubles), `avg(x)` (`f64`), `min(x)`, `max(x)`; nulls are skipped and a
//! group whose values are all null gets null. Operators after `.agg` run on the emitted rows
//! (Spark's `HAVING`).
//!
//! Beyond those, as Spark has them ([`crate::agg`] says how each is computed and stored):
//! - `first(x)`, `last(x)`: the value of the group's first / last row in arrival order, a null
//!   included; `first(x, true)` / `last(x, true)` skip nulls (Spark's `ignoreNulls`). The
//!   result has the column's type (`Option` for a nullable column).
//! - `collect_list(x)`, `collect_set(x)`: the non-null values as a `Vec<T>` (Spark's
//!   `ARRAY<T>`; never null, empty for a group of nulls), the set with each value once, in the
//!   order first seen.
//! - `approx_count_distinct(x)`: an `i64`, Spark's HyperLogLog++ estimate at its default
//!   relative error 0.05 — the same estimate Spark gives for the same values.
//! - `stddev(x)` (= `stddev_samp`), `stddev_pop(x)`, `variance(x)` (= `var_samp`),
//!   `var_pop(x)`: `Option<f64>`, null without values (and for the sample statistics with
//!   one value).
//!
//! ```
//! use flowgate::prelude::*;
//!
//! #[derive(Record)]
//! struct Reading { sensor: String, v: Option<i64>, tag: Option<String> }
//!
//! #[derive(Record)]
//! struct Spread {
//!     sensor: String,
//!     first_v: Option<i64>,
//!     tags: Vec<String>,
//!     distinct_tags: i64,
//!     sd: Option<f64>,
//! }
//!
//! stream_query! {
//!     query Spreads(readings: Reading) -> Spread, mode = update {
//!         readings
//!             .group_by(sensor)
//!             .agg(
//!                 first(v, true) as first_v,
//!                 collect_set(tag) as tags,
//!                 approx_count_distinct(tag) as distinct_tags,
//!                 stddev(v) as sd,
//!             )
//!     }
//! }
//! # fn main() {}
//! ```
//!
//! ```
//! use flowgate::prelude::*;
//!
//! #[derive(Record)]
//! struct Sale { shop: String, amount: Option<f64>, units: i64 }
//!
//! #[derive(Record)]
//! struct ShopStats { shop: String, n: i64, units: i64, avg_amount: Option<f64>, best: Option<f64> }
//!
//! stream_query! {
//!     query Stats(sales: Sale) -> ShopStats, mode = update {
//!         sales
//!             .group_by(shop)
//!             .agg(count() as n, sum(units) as units, avg(amount) as avg_amount, max(amount) as best)
//!             .filter(n >= 2)
//!     }
//! }
//! # fn main() {}
//! ```
//!
//! ## Event time
//!
//! `.with_watermark(ts, "10 minutes")` on a `Timestamp` column, then group by
//! `window(ts, size)` (tumbling), `window(ts, size, slide)` (sliding), `window(ts, size, slide,
//! start_offset)`, or `session_window(ts, gap)`. The window column is a [`crate::Window`]
//! (`{start, end}`), named `window` / `session_window` unless named (`w = window(...)`).
//! Durations are Spark interval strings checked at compile time.
//!
//! ```
//! use flowgate::prelude::*;
//!
//! #[derive(Record)]
//! struct Click { ts: Timestamp, user: String, page: String }
//!
//! #[derive(Record)]
//! struct PageViews { window: Window, page: String, views: i64 }
//!
//! #[derive(Record)]
//! struct Visit { session_window: Window, user: String, clicks: i64, first: Timestamp }
//!
//! stream_query! {
//!     /// Views per page in 10-minute windows every 5 minutes; closed windows only.
//!     query Views(clicks: Click) -> PageViews, mode = append {
//!         clicks
//!             .with_watermark(ts, "10 minutes")
//!             .group_by(window(ts, "10 minutes", "5 minutes"), page)
//!             .agg(count() as views)
//!     }
//!
//!     /// A user's visit ends after 30 idle minutes.
//!     query Visits(clicks: Click) -> Visit, mode = append {
//!         clicks
//!             .with_watermark(ts, "1 hour")
//!             .group_by(session_window(ts, "30 minutes"), user)
//!             .agg(count() as clicks, min(ts) as first)
//!     }
//! }
//! # fn main() {}
//! ```
//!
//! ## Arbitrary stateful processing
//!
//! `.group_by(keys..).map_groups_with_state(f, timeout = none | processing_time | event_time)`
//! and `.flat_map_groups_with_state(f, timeout = ..)` (Spark's `mapGroupsWithState` /
//! `flatMapGroupsWithState`): per batch, `f` is called once per key with rows, with the key
//! (`&K` for one key, `&(K1, K2)` for several), the key's rows as owned input records (in input
//! order) and a [`crate::ops::group_state::GroupState`] of the user's state `S`; then, with a
//! timeout, once per key whose timeout has passed, with no rows and `has_timed_out()` true. The
//! map returns one output record, the flat map any `IntoIterator` of them. `S` is any
//! [`crate::codec::StateCodec`]: `#[derive(StateCodec)]` on a struct records its fields in the
//! checkpoint, and a restart with a changed state type is refused, field by field, before the
//! first batch. Processing time is the batch's (`.clock(..)` on the builder; tests use a
//! [`crate::clock::ManualClock`]). Spark's rules are compile errors: the map only in update
//! mode, the flat map in append or update mode (the query's mode is the function's), an
//! event-time timeout only after `with_watermark` (late rows are then dropped before `f`); only
//! `filter`, `with_watermark` and `drop_duplicates` may come before it; after it Spark refuses
//! an aggregation after the map, or after the flat map in update mode, and a second
//! group-state operator (compile errors with Spark's messages), and flowgate builds nothing
//! after it yet. The rows parameter may be `Vec<Event>` or
//! [`crate::ops::group_state::GroupRows`]`<'_, Event>`, an iterator of the same owned records
//! with no allocation per key.
//!
//! `initial_state = <expr>` (Spark's `initialState`) gives keys their state before the first
//! batch: any `IntoIterator` of `(key, S)` pairs (the key as `f` sees it, a tuple for several
//! keys), evaluated when batch 0 runs. In batch 0 only, each pair's state is stored, then `f`
//! is called once per key with rows, initial state or both (a key with only an initial state
//! with no rows, after the keys with rows), as Scala Spark's `flatMapGroupsWithState(..,
//! initialState)`; a key given twice fails the batch with Spark's message. A restart from a
//! checkpoint whose batch 0 committed never applies it again. `transform_with_state(processor,
//! time_mode = .., initial_state = <expr>)` takes pairs of `(key,
//! StatefulProcessorWithInitialState::InitialState)`: in batch 0, before any row,
//! `handle_initial_state` is called once per key with its entries (a key may have several, as
//! Spark 4 allows).
//!
//! ```
//! use flowgate::prelude::*;
//!
//! #[derive(Record)]
//! struct Click { ts: Timestamp, user: String }
//!
//! #[derive(Record)]
//! struct Session { user: String, clicks: i64, ended: bool }
//!
//! #[derive(StateCodec)]
//! struct Seen { clicks: i64 }
//!
//! fn track(user: &str, clicks: Vec<Click>, state: &mut GroupState<Seen>) -> Session {
//!     if state.has_timed_out() {
//!         let n = state.get().clicks;
//!         state.remove();
//!         return Session { user: user.into(), clicks: n, ended: true };
//!     }
//!     let n = state.get_option().map_or(0, |s| s.clicks) + clicks.len() as i64;
//!     state.update(Seen { clicks: n });
//!     state.set_timeout_duration(30 * 60 * 1000); // ends after 30 idle minutes
//!     Session { user: user.into(), clicks: n, ended: false }
//! }
//!
//! stream_query! {
//!     /// A session per user, ended by 30 minutes of processing time without clicks.
//!     query Sessions(clicks: Click) -> Session, mode = update {
//!         clicks.group_by(user).map_groups_with_state(track, timeout = processing_time)
//!     }
//! }
//! # fn main() {}
//! ```
//!
//! ## Batch
//!
//! The same query runs once over bounded inputs, as Spark runs it over `spark.read`:
//! `Name::batch()` has one setter per input, then `.run()` (the output records),
//! `.run_batches()` (Arrow batches) or `.write(sink)` (one call to the sink, as batch 0). Every
//! input is read whole; there is no checkpoint and no trigger. The result is Spark's batch
//! result whatever the declared mode: an aggregation gives every group with its final value
//! (append mode too: every window is emitted, as if the watermark had passed them all), nothing
//! is dropped as late (a watermark has nothing to do in a batch), an outer join emits every
//! unmatched row padded, and a group-state function is called once per key with all its rows,
//! its timeouts never firing (see [`crate::engine::batch`]).
//!
//! ```
//! use flowgate::prelude::*;
//!
//! #[derive(Record)]
//! struct Event { ts: Timestamp, word: String }
//!
//! #[derive(Record, Debug, PartialEq)]
//! struct WindowCount { window: Window, word: String, n: i64 }
//!
//! stream_query! {
//!     query Counts(events: Event) -> WindowCount, mode = append {
//!         events
//!             .with_watermark(ts, "10 minutes")
//!             .group_by(window(ts, "10 minutes"), word)
//!             .agg(count() as n)
//!     }
//! }
//!
//! # fn main() -> flowgate::Result<()> {
//! let events = MemoryStream::new();
//! events.add(vec![Event { ts: Timestamp(0), word: "a".into() }, Event { ts: Timestamp(1), word: "a".into() }]);
//! let rows = Counts::batch().events(Source::memory(&events)).run()?;
//! assert_eq!(rows.len(), 1);
//! assert_eq!(rows[0].n, 2);
//! # Ok(())
//! # }
//! ```
//!
//! ## Functions
//!
//! [`crate::functions`] (in the prelude): `split`, `lower`, `upper`, `length`, `coalesce` —
//! Spark's functions with SQL null semantics; everything else is Rust.

/// Calls the function of a `map_rows` / `flat_map_rows` / `filter_rows` on one row. Generated
/// code passes the user's closure here rather than calling it, so that rustc infers the
/// closure's parameter from the row (a closure literal needs no type annotation).
#[doc(hidden)]
#[inline(always)]
pub fn call_row<A, O>(row: A, f: impl FnOnce(A) -> O) -> O {
    f(row)
}

/// A rule the macro cannot decide alone, left to rustc so that one mistake gets one error:
/// append mode over an aggregation needs the watermarked column as a grouping key (or inside
/// the grouping window). When the query watermarks an input column that is not the window's
/// or key's, the generated code calls [`append_mode_needs_the_watermarked_column`] on that
/// column: if the column does not exist, rustc's "no field" error is the only one (the call
/// has no type to check); if it does, this trait, implemented by no type, reports the rule.
#[diagnostic::on_unimplemented(
    message = "append mode is not supported for streaming aggregations without a watermark on an event-time grouping column (Spark: STREAMING_OUTPUT_MODE.UNSUPPORTED_OPERATION)",
    label = "this column is watermarked, but the aggregation does not group by it",
    note = "group by `window(<this column>, ...)` or by the column itself, or use `mode = update` / `mode = complete`"
)]
pub trait WatermarkedGroupingKey {}

/// See [`WatermarkedGroupingKey`]: never compiles when called.
#[doc(hidden)]
pub fn append_mode_needs_the_watermarked_column<T: WatermarkedGroupingKey>(_column: &T) {}
