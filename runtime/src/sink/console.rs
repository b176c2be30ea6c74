//! The console sink: each micro-batch printed as Spark 4 prints it (`ConsoleWrite.printRows`,
//! which calls `Dataset.showString` and `println`s the result):
//!
//! ```text
//! -------------------------------------------
//! Batch: 0
//! -------------------------------------------
//! +----+-----+
//! |word|count|
//! +----+-----+
//! | cat|    1|
//! | dog|    3|
//! +----+-----+
//!
//! ```
//!
//! What is reproduced from Spark, byte for byte:
//!
//! * cells are rendered as `ToPrettyString` renders them: `NULL` for nulls (also inside structs,
//!   arrays and maps), doubles as Java's `Double.toString`, timestamps as
//!   `yyyy-MM-dd HH:mm:ss[.ffffff]` with trailing zeros of the fraction dropped (session time
//!   zone UTC), structs as `{a, b}`, arrays as `[a, b]`, maps as `{k -> v}`, binary as
//!   `[0A FF]`, decimals in plain notation with their scale;
//! * header and cells get control characters escaped (`\n` is shown as the two characters
//!   `\n`, likewise `\r \t \f \b \v \a`);
//! * lengths are Java string lengths (UTF-16 code units), truncation cuts after `truncate - 3`
//!   units and appends `...` (or cuts at `truncate` units when `truncate < 4`), and column
//!   widths count East Asian full-width characters as two (Spark's `Utils.stringHalfWidth`);
//! * cells are right-aligned when truncating and left-aligned otherwise; columns are at least
//!   3 wide;
//! * more rows than `num_rows` adds `only showing top N rows` (`row` when N is 1).

use std::borrow::Cow;
use std::fmt;
use std::io::Write;

use arrow_array::cast::AsArray;
use arrow_array::types::{
    Date32Type, Date64Type, Decimal128Type, Decimal256Type, Decimal32Type, Decimal64Type, Float16Type, Float32Type,
    Float64Type, Int16Type, Int32Type, Int64Type, Int8Type, TimestampMicrosecondType, TimestampMillisecondType,
    TimestampNanosecondType, TimestampSecondType, UInt16Type, UInt32Type, UInt64Type, UInt8Type,
};
use arrow_array::{Array, RecordBatch};
use arrow_cast::display::{ArrayFormatter, FormatOptions};
use arrow_schema::{DataType, TimeUnit};

use super::SinkImpl;
use crate::error::{Error, Result};
use crate::OutputMode;

/// Spark's console sink shows 20 rows by default (`numRows`).
pub const DEFAULT_NUM_ROWS: usize = 20;
/// Spark truncates cells longer than 20 characters by default (`truncate`).
pub const DEFAULT_TRUNCATE: usize = 20;

/// The 43 dashes Spark prints above and below `Batch: N`.
const RULE: &str = "-------------------------------------------";

/// Options of the console sink, as Spark's `numRows` and `truncate`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsoleOptions {
    /// Rows shown per batch (default 20).
    pub num_rows: usize,
    /// Longest cell shown before it is cut with `...` (default `Some(20)`). `None` (or
    /// `Some(0)`, as Spark's `truncate = 0`) shows cells whole and left-aligns them, as Spark
    /// does without truncation.
    pub truncate: Option<usize>,
}

impl Default for ConsoleOptions {
    fn default() -> Self {
        ConsoleOptions { num_rows: DEFAULT_NUM_ROWS, truncate: Some(DEFAULT_TRUNCATE) }
    }
}

impl ConsoleOptions {
    /// Rows shown per batch.
    pub fn num_rows(mut self, n: usize) -> Self {
        self.num_rows = n;
        self
    }

    /// Cell truncation: `Some(n)` cuts cells longer than `n` characters, `None` never cuts.
    pub fn truncate(mut self, t: Option<usize>) -> Self {
        self.truncate = t;
        self
    }

    /// The truncation length in effect: Spark treats `truncate <= 0` as "no truncation".
    fn effective_truncate(&self) -> Option<usize> {
        self.truncate.filter(|&t| t > 0)
    }
}

/// Prints every batch as Spark's console sink does, to stdout or any writer, flushing after
/// each batch.
pub struct ConsoleSink {
    options: ConsoleOptions,
    out: Box<dyn Write + Send>,
}

impl fmt::Debug for ConsoleSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConsoleSink").field("options", &self.options).finish_non_exhaustive()
    }
}

impl ConsoleSink {
    /// A console sink printing to stdout.
    pub fn new(options: ConsoleOptions) -> Self {
        Self::with_writer(options, Box::new(std::io::stdout()))
    }

    /// A console sink printing to `w` (tests, logs).
    pub fn with_writer(options: ConsoleOptions, w: Box<dyn Write + Send>) -> Self {
        ConsoleSink { options, out: w }
    }
}

impl SinkImpl for ConsoleSink {
    fn description(&self) -> String {
        "ConsoleSink".to_string()
    }

    fn add_batch(&mut self, batch_id: u64, batch: &RecordBatch, _mode: OutputMode) -> Result<()> {
        let text = format_batch(batch_id, batch, &self.options);
        self.out
            .write_all(text.as_bytes())
            .and_then(|()| self.out.flush())
            .map_err(|e| Error::io("writing to the console", e))
    }
}

/// The text the console sink prints for one batch: the `Batch: N` banner, the table (see
/// [`show_string`]) and the empty line Spark's `println` leaves after it.
pub fn format_batch(batch_id: u64, batch: &RecordBatch, options: &ConsoleOptions) -> String {
    format!("{RULE}\nBatch: {batch_id}\n{RULE}\n{}\n", show_string(batch, options))
}

/// Spark's `Dataset.showString(numRows, truncate)`: a bordered table of the first `num_rows`
/// rows, plus `only showing top N rows` when the batch has more. Ends with a newline.
pub fn show_string(batch: &RecordBatch, options: &ConsoleOptions) -> String {
    let truncate = options.effective_truncate();
    let schema = batch.schema();
    let shown = batch.num_rows().min(options.num_rows);

    // Header first, then the shown rows, each cell escaped and truncated (Spark's `getRows`).
    let mut rows: Vec<Vec<String>> = Vec::with_capacity(shown + 1);
    rows.push(schema.fields().iter().map(|f| prepare(f.name(), truncate)).collect());
    for i in 0..shown {
        rows.push(batch.columns().iter().map(|c| prepare(&show_cell(c.as_ref(), i), truncate)).collect());
    }

    // Spark's minimum column width is 3.
    let mut widths = vec![3usize; schema.fields().len()];
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(half_width(cell));
        }
    }

    // Scala's `addString(sb, start, sep, end)`: with no columns the borders are `++` and `||`.
    let dashes: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
    let sep = format!("+{}+\n", dashes.join("+"));

    let mut out = sep.clone();
    for (r, row) in rows.iter().enumerate() {
        let padded: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, w)| {
                let pad = " ".repeat(w.saturating_sub(half_width(cell)));
                if truncate.is_some() {
                    format!("{pad}{cell}")
                } else {
                    format!("{cell}{pad}")
                }
            })
            .collect();
        out.push('|');
        out.push_str(&padded.join("|"));
        out.push_str("|\n");
        if r == 0 {
            out.push_str(&sep);
        }
    }
    out.push_str(&sep);

    if batch.num_rows() > options.num_rows {
        let noun = if options.num_rows == 1 { "row" } else { "rows" };
        out.push_str(&format!("only showing top {} {noun}\n", options.num_rows));
    }
    out
}

/// One cell escaped (`SchemaUtils.escapeMetaCharacters`) then truncated as Spark's `getRows`.
fn prepare(raw: &str, truncate: Option<usize>) -> String {
    let s = escape_meta(raw);
    match truncate {
        Some(t) if utf16_len(&s) > t => {
            if t < 4 {
                utf16_prefix(&s, t)
            } else {
                let mut cut = utf16_prefix(&s, t - 3);
                cut.push_str("...");
                cut
            }
        }
        _ => s.into_owned(),
    }
}

/// Spark's `SchemaUtils.escapeMetaCharacters`: control characters that would break the table
/// are shown as their escape sequences.
fn escape_meta(s: &str) -> Cow<'_, str> {
    let escape = |c: char| match c {
        '\n' => Some("\\n"),
        '\r' => Some("\\r"),
        '\t' => Some("\\t"),
        '\u{0C}' => Some("\\f"),
        '\u{08}' => Some("\\b"),
        '\u{0B}' => Some("\\v"),
        '\u{07}' => Some("\\a"),
        _ => None,
    };
    if !s.chars().any(|c| escape(c).is_some()) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match escape(c) {
            Some(e) => out.push_str(e),
            None => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// Length of `s` as a Java string (UTF-16 code units), which is what Spark compares with
/// `truncate` and pads by.
fn utf16_len(s: &str) -> usize {
    s.chars().map(char::len_utf16).sum()
}

/// Java's `s.substring(0, n)`. When the cut falls inside a surrogate pair Java keeps a lone
/// high surrogate, which its UTF-8 console encoder prints as `?`; so does this.
fn utf16_prefix(s: &str, n: usize) -> String {
    let mut out = String::new();
    let mut len = 0;
    for c in s.chars() {
        let l = c.len_utf16();
        if len + l > n {
            if len < n {
                out.push('?');
            }
            break;
        }
        out.push(c);
        len += l;
    }
    out
}

/// Spark's `Utils.stringHalfWidth`: the Java length plus one for every full-width character
/// (those take two terminal columns).
fn half_width(s: &str) -> usize {
    utf16_len(s) + s.chars().filter(|&c| is_full_width(c)).count()
}

/// The character classes of Spark's `Utils.fullWidthRegex`.
fn is_full_width(c: char) -> bool {
    matches!(
        c,
        '\u{1100}'..='\u{115F}'
            | '\u{2E80}'..='\u{A4CF}'
            | '\u{AC00}'..='\u{D7A3}'
            | '\u{F900}'..='\u{FAFF}'
            | '\u{FE10}'..='\u{FE19}'
            | '\u{FE30}'..='\u{FE6F}'
            | '\u{FF00}'..='\u{FF60}'
            | '\u{FFE0}'..='\u{FFE6}'
    )
}

/// Java's special values, or `None` for a finite non-zero value.
fn java_special(nan: bool, infinite: bool, zero: bool, negative: bool) -> Option<String> {
    let s = match (nan, infinite, zero, negative) {
        (true, ..) => "NaN",
        (_, true, _, false) => "Infinity",
        (_, true, _, true) => "-Infinity",
        (_, _, true, false) => "0.0",
        (_, _, true, true) => "-0.0",
        _ => return None,
    };
    Some(s.to_string())
}

/// Java's `Double.toString` / `Float.toString` of a finite non-zero value, from its shortest
/// round-trip digits (JDK 19+; Java 17 differs only for rare values). `plain` is the shortest
/// decimal form without exponent (used from 10⁻³ up to 10⁷), `sci` the shortest `d.ddde±n`
/// form, and `two_digits` the closest two-significant-digit `d.de±n` form when that reads back
/// as the same value.
fn java_finite(
    plain_range: bool,
    plain: impl FnOnce() -> String,
    sci: impl FnOnce() -> String,
    two_digits: impl FnOnce() -> Option<String>,
) -> String {
    if plain_range {
        let s = plain();
        return if s.contains('.') { s } else { s + ".0" };
    }
    // Computerized scientific notation: d.dddE±n, at least one digit after the point. When
    // the shortest form has one significant digit Java picks, among the two-digit decimals
    // that read back as the value, the closest one (`4.9E-324` for `Double.MIN_VALUE`).
    let s = sci();
    let (mantissa, exp) = s.split_once('e').unwrap_or((&s, "0"));
    if mantissa.contains('.') {
        return format!("{mantissa}E{exp}");
    }
    if let Some((m, e)) = two_digits().as_deref().and_then(|t| t.split_once('e')) {
        return format!("{m}E{e}");
    }
    format!("{mantissa}.0E{exp}")
}

/// A double as Java's `Double.toString` prints it, which is how Spark shows doubles: `4.0`,
/// `0.30000000000000004`, `1.0E10` (from 10⁷ up), `1.0E-4` (below 10⁻³), `NaN`, `Infinity`,
/// `-Infinity`, `-0.0`.
pub fn java_double_string(v: f64) -> String {
    if let Some(s) = java_special(v.is_nan(), v.is_infinite(), v == 0.0, v.is_sign_negative()) {
        return s;
    }
    java_finite(
        (1e-3..1e7).contains(&v.abs()),
        || format!("{v}"),
        || format!("{v:e}"),
        || {
            let s = format!("{v:.1e}");
            (s.parse::<f64>().ok() == Some(v)).then_some(s)
        },
    )
}

/// A float as Java's `Float.toString` prints it (Spark's `FloatType`): as
/// [`java_double_string`], with the shortest digits that identify the `f32`.
pub fn java_float_string(v: f32) -> String {
    if let Some(s) = java_special(v.is_nan(), v.is_infinite(), v == 0.0, v.is_sign_negative()) {
        return s;
    }
    java_finite(
        (1e-3f32..1e7f32).contains(&v.abs()),
        || format!("{v}"),
        || format!("{v:e}"),
        || {
            let s = format!("{v:.1e}");
            (s.parse::<f32>().ok() == Some(v)).then_some(s)
        },
    )
}

/// A timestamp (microseconds since the epoch, shown in UTC) as Spark shows it:
/// `2024-01-01 12:00:00`, with the fraction of a second only when non-zero and without
/// trailing zeros (`2024-01-01 12:00:00.5`).
fn timestamp_string(micros: i64) -> String {
    let secs = micros.div_euclid(1_000_000);
    let frac = micros.rem_euclid(1_000_000);
    match chrono::DateTime::from_timestamp(secs, 0) {
        Some(t) => {
            let mut s = t.format("%Y-%m-%d %H:%M:%S").to_string();
            if frac != 0 {
                let digits = format!("{frac:06}");
                s.push('.');
                s.push_str(digits.trim_end_matches('0'));
            }
            s
        }
        None => micros.to_string(),
    }
}

/// A date (days since the epoch) as Spark shows it: `2024-01-01`.
fn date_string(days: i64) -> String {
    days.checked_add(719_163)
        .and_then(|d| i32::try_from(d).ok())
        .and_then(chrono::NaiveDate::from_num_days_from_ce_opt)
        .map_or_else(|| days.to_string(), |d| d.format("%Y-%m-%d").to_string())
}

/// Bytes as Spark's pretty string shows binary: `[0A 1B FF]`.
fn hex_string(bytes: &[u8]) -> String {
    let parts: Vec<String> = bytes.iter().map(|b| format!("{b:02X}")).collect();
    format!("[{}]", parts.join(" "))
}

/// One cell as Spark's console shows it (`ToPrettyString`), before escaping and truncation:
/// `NULL`, Java-style doubles, `{start, end}` structs, `[a, b]` lists, `{k -> v}` maps.
/// Types Spark has no counterpart for fall back to Arrow's display.
pub fn show_cell(array: &dyn Array, i: usize) -> String {
    let mut out = String::new();
    write_cell(&mut out, array, i);
    out
}

fn write_cell(out: &mut String, array: &dyn Array, i: usize) {
    if array.is_null(i) {
        out.push_str("NULL");
        return;
    }
    macro_rules! prim {
        ($t:ty) => {
            out.push_str(&array.as_primitive::<$t>().value(i).to_string())
        };
    }
    macro_rules! decimal {
        ($t:ty) => {
            out.push_str(&array.as_primitive::<$t>().value_as_string(i))
        };
    }
    let join = |out: &mut String, open: &str, close: &str, values: &dyn Array| {
        out.push_str(open);
        for j in 0..values.len() {
            if j > 0 {
                out.push_str(", ");
            }
            write_cell(out, values, j);
        }
        out.push_str(close);
    };
    match array.data_type() {
        DataType::Null => out.push_str("NULL"),
        DataType::Boolean => out.push_str(if array.as_boolean().value(i) { "true" } else { "false" }),
        DataType::Int8 => prim!(Int8Type),
        DataType::Int16 => prim!(Int16Type),
        DataType::Int32 => prim!(Int32Type),
        DataType::Int64 => prim!(Int64Type),
        DataType::UInt8 => prim!(UInt8Type),
        DataType::UInt16 => prim!(UInt16Type),
        DataType::UInt32 => prim!(UInt32Type),
        DataType::UInt64 => prim!(UInt64Type),
        DataType::Float16 => out.push_str(&java_float_string(array.as_primitive::<Float16Type>().value(i).to_f32())),
        DataType::Float32 => out.push_str(&java_float_string(array.as_primitive::<Float32Type>().value(i))),
        DataType::Float64 => out.push_str(&java_double_string(array.as_primitive::<Float64Type>().value(i))),
        DataType::Decimal32(..) => decimal!(Decimal32Type),
        DataType::Decimal64(..) => decimal!(Decimal64Type),
        DataType::Decimal128(..) => decimal!(Decimal128Type),
        DataType::Decimal256(..) => decimal!(Decimal256Type),
        DataType::Utf8 => out.push_str(array.as_string::<i32>().value(i)),
        DataType::LargeUtf8 => out.push_str(array.as_string::<i64>().value(i)),
        DataType::Utf8View => out.push_str(array.as_string_view().value(i)),
        DataType::Binary => out.push_str(&hex_string(array.as_binary::<i32>().value(i))),
        DataType::LargeBinary => out.push_str(&hex_string(array.as_binary::<i64>().value(i))),
        DataType::BinaryView => out.push_str(&hex_string(array.as_binary_view().value(i))),
        DataType::FixedSizeBinary(_) => out.push_str(&hex_string(array.as_fixed_size_binary().value(i))),
        DataType::Date32 => out.push_str(&date_string(array.as_primitive::<Date32Type>().value(i).into())),
        DataType::Date64 => {
            out.push_str(&date_string(array.as_primitive::<Date64Type>().value(i).div_euclid(86_400_000)))
        }
        DataType::Timestamp(unit, _) => {
            let micros = match unit {
                TimeUnit::Second => array.as_primitive::<TimestampSecondType>().value(i).checked_mul(1_000_000),
                TimeUnit::Millisecond => array.as_primitive::<TimestampMillisecondType>().value(i).checked_mul(1_000),
                TimeUnit::Microsecond => Some(array.as_primitive::<TimestampMicrosecondType>().value(i)),
                // Spark keeps microseconds: nanoseconds are dropped.
                TimeUnit::Nanosecond => {
                    Some(array.as_primitive::<TimestampNanosecondType>().value(i).div_euclid(1_000))
                }
            };
            match micros {
                Some(us) => out.push_str(&timestamp_string(us)),
                None => fallback(out, array, i),
            }
        }
        DataType::Struct(_) => {
            out.push('{');
            for (k, column) in array.as_struct().columns().iter().enumerate() {
                if k > 0 {
                    out.push_str(", ");
                }
                write_cell(out, column.as_ref(), i);
            }
            out.push('}');
        }
        DataType::List(_) => join(out, "[", "]", array.as_list::<i32>().value(i).as_ref()),
        DataType::LargeList(_) => join(out, "[", "]", array.as_list::<i64>().value(i).as_ref()),
        DataType::FixedSizeList(..) => join(out, "[", "]", array.as_fixed_size_list().value(i).as_ref()),
        DataType::Map(..) => {
            let entries = array.as_map().value(i);
            let (keys, values) = (entries.column(0), entries.column(1));
            out.push('{');
            for j in 0..entries.len() {
                if j > 0 {
                    out.push_str(", ");
                }
                write_cell(out, keys.as_ref(), j);
                out.push_str(" -> ");
                write_cell(out, values.as_ref(), j);
            }
            out.push('}');
        }
        DataType::Dictionary(..) => {
            let dict = array.as_any_dictionary();
            match dictionary_key(dict.keys(), i) {
                Some(k) if k < dict.values().len() => write_cell(out, dict.values().as_ref(), k),
                _ => fallback(out, array, i),
            }
        }
        _ => fallback(out, array, i),
    }
}

/// The dictionary key at `i` as an index into the dictionary's values.
fn dictionary_key(keys: &dyn Array, i: usize) -> Option<usize> {
    macro_rules! key {
        ($t:ty) => {
            usize::try_from(keys.as_primitive::<$t>().value(i)).ok()
        };
    }
    match keys.data_type() {
        DataType::Int8 => key!(Int8Type),
        DataType::Int16 => key!(Int16Type),
        DataType::Int32 => key!(Int32Type),
        DataType::Int64 => key!(Int64Type),
        DataType::UInt8 => key!(UInt8Type),
        DataType::UInt16 => key!(UInt16Type),
        DataType::UInt32 => key!(UInt32Type),
        DataType::UInt64 => key!(UInt64Type),
        _ => None,
    }
}

/// Arrow's own display, for types Spark has no counterpart for (intervals, durations, times).
fn fallback(out: &mut String, array: &dyn Array, i: usize) {
    let options = FormatOptions::new().with_null("NULL");
    let text = ArrayFormatter::try_new(array, &options).and_then(|f| f.value(i).try_to_string());
    match text {
        Ok(s) => out.push_str(&s),
        Err(_) => out.push_str(&format!("<{}>", array.data_type())),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use arrow_array::builder::{Int32Builder, ListBuilder, MapBuilder, StringBuilder};
    use arrow_array::{
        ArrayRef, BinaryArray, BooleanArray, Date32Array, Decimal128Array, Float32Array, Float64Array, Int32Array,
        Int64Array, StringArray, StructArray, TimestampMicrosecondArray,
    };
    use arrow_schema::{Field, Fields, Schema};

    use super::*;

    fn batch(columns: Vec<(&str, ArrayRef)>) -> RecordBatch {
        RecordBatch::try_from_iter(columns.into_iter().map(|(n, a)| (n.to_string(), a))).unwrap()
    }

    fn words() -> RecordBatch {
        batch(vec![
            ("word", Arc::new(StringArray::from(vec!["cat", "dog"]))),
            ("count", Arc::new(Int64Array::from(vec![1, 3]))),
        ])
    }

    fn strings(name: &str, values: Vec<Option<&str>>) -> RecordBatch {
        batch(vec![(name, Arc::new(StringArray::from(values)))])
    }

    fn utc_micros(values: Vec<Option<i64>>) -> ArrayRef {
        Arc::new(TimestampMicrosecondArray::from(values).with_timezone("UTC"))
    }

    const T0: i64 = 1_704_110_400_000_000; // 2024-01-01 12:00:00 UTC

    #[test]
    fn word_count_table_as_spark() {
        let text = format_batch(0, &words(), &ConsoleOptions::default());
        let want = "-------------------------------------------\n\
                    Batch: 0\n\
                    -------------------------------------------\n\
                    +----+-----+\n\
                    |word|count|\n\
                    +----+-----+\n\
                    | cat|    1|\n\
                    | dog|    3|\n\
                    +----+-----+\n\
                    \n";
        assert_eq!(text, want);
    }

    #[test]
    fn options_default_and_builders() {
        let o = ConsoleOptions::default();
        assert_eq!((o.num_rows, o.truncate), (20, Some(20)));
        let o = o.num_rows(5).truncate(None);
        assert_eq!((o.num_rows, o.truncate), (5, None));
    }

    #[test]
    fn truncation_cuts_with_ellipsis_and_right_aligns() {
        let b = strings("s", vec![Some("abcdefghijklmnopqrstuvwxyz"), Some("x"), Some("exactly twenty chars")]);
        assert_eq!(
            show_string(&b, &ConsoleOptions::default()),
            "+--------------------+\n\
             |                   s|\n\
             +--------------------+\n\
             |abcdefghijklmnopq...|\n\
             |                   x|\n\
             |exactly twenty chars|\n\
             +--------------------+\n"
        );
        // Below 4 there is no room for the ellipsis: Spark just cuts.
        let t = show_string(&b, &ConsoleOptions::default().truncate(Some(2)));
        assert_eq!(t, "+---+\n|  s|\n+---+\n| ab|\n|  x|\n| ex|\n+---+\n");
        // Headers are truncated too.
        let h = strings("a_very_long_column_name", vec![Some("v")]);
        assert_eq!(
            show_string(&h, &ConsoleOptions::default().truncate(Some(8))),
            "+--------+\n|a_ver...|\n+--------+\n|       v|\n+--------+\n"
        );
    }

    #[test]
    fn no_truncation_left_aligns() {
        let b = strings("s", vec![Some("abcdefghijklmnopqrstuvwxyz"), Some("x")]);
        let want = "+--------------------------+\n\
                    |s                         |\n\
                    +--------------------------+\n\
                    |abcdefghijklmnopqrstuvwxyz|\n\
                    |x                         |\n\
                    +--------------------------+\n";
        assert_eq!(show_string(&b, &ConsoleOptions::default().truncate(None)), want);
        // Spark's truncate = 0 means the same.
        assert_eq!(show_string(&b, &ConsoleOptions::default().truncate(Some(0))), want);
    }

    #[test]
    fn right_alignment_and_minimum_width() {
        let b = batch(vec![
            ("n", Arc::new(Int32Array::from(vec![7, 12345]))),
            ("b", Arc::new(BooleanArray::from(vec![true, false]))),
        ]);
        assert_eq!(
            show_string(&b, &ConsoleOptions::default()),
            "+-----+-----+\n|    n|    b|\n+-----+-----+\n|    7| true|\n|12345|false|\n+-----+-----+\n"
        );
        let narrow = batch(vec![("x", Arc::new(Int32Array::from(vec![1])))]);
        assert_eq!(show_string(&narrow, &ConsoleOptions::default()), "+---+\n|  x|\n+---+\n|  1|\n+---+\n");
    }

    #[test]
    fn num_rows_limit_message() {
        let b = batch(vec![("n", Arc::new(Int32Array::from((0..25).collect::<Vec<_>>())))]);
        let t = show_string(&b, &ConsoleOptions::default());
        assert_eq!(t.lines().count(), 3 + 20 + 1 + 1, "{t}");
        assert!(t.contains("| 19|\n+---+\nonly showing top 20 rows\n"), "{t}");
        assert!(!t.contains("| 20|"), "{t}");

        let t = format_batch(3, &b, &ConsoleOptions::default().num_rows(2));
        assert!(t.ends_with("|  0|\n|  1|\n+---+\nonly showing top 2 rows\n\n"), "{t}");
        let t = show_string(&b, &ConsoleOptions::default().num_rows(1));
        assert!(t.ends_with("only showing top 1 row\n"), "{t}");
        // Exactly num_rows rows: no message.
        let t = show_string(&b, &ConsoleOptions::default().num_rows(25));
        assert!(!t.contains("only showing"), "{t}");
    }

    #[test]
    fn nulls_print_as_null() {
        let b = batch(vec![
            ("s", Arc::new(StringArray::from(vec![Some("a"), None]))),
            ("n", Arc::new(Int64Array::from(vec![None, Some(5)]))),
            ("d", Arc::new(Float64Array::from(vec![None, Some(1.5)]))),
        ]);
        assert_eq!(
            show_string(&b, &ConsoleOptions::default()),
            "+----+----+----+\n|   s|   n|   d|\n+----+----+----+\n|   a|NULL|NULL|\n|NULL|   5| 1.5|\n+----+----+----+\n"
        );
    }

    #[test]
    fn java_double_strings() {
        for (v, s) in [
            (4.0, "4.0"),
            (0.1 + 0.2, "0.30000000000000004"),
            (1e10, "1.0E10"),
            (1e7, "1.0E7"),
            (9_999_999.0, "9999999.0"),
            (1234567.0, "1234567.0"),
            (1e-3, "0.001"),
            (1e-4, "1.0E-4"),
            (1.5e-4, "1.5E-4"),
            (-2.5, "-2.5"),
            (-1.25e20, "-1.25E20"),
            (100.0, "100.0"),
            (0.0, "0.0"),
            (-0.0, "-0.0"),
            (3.3333333333333335, "3.3333333333333335"),
            (f64::MAX, "1.7976931348623157E308"),
            (f64::MIN_POSITIVE, "2.2250738585072014E-308"),
            (f64::from_bits(1), "4.9E-324"),
            (f64::NAN, "NaN"),
            (f64::INFINITY, "Infinity"),
            (f64::NEG_INFINITY, "-Infinity"),
        ] {
            assert_eq!(java_double_string(v), s, "{v:?}");
        }
        for (v, s) in
            [(1.1f32, "1.1"), (4.0, "4.0"), (1e10, "1.0E10"), (f32::from_bits(1), "1.4E-45"), (f32::NAN, "NaN")]
        {
            assert_eq!(java_float_string(v), s, "{v:?}");
        }
    }

    #[test]
    fn doubles_in_a_table() {
        let b = batch(vec![
            ("avg", Arc::new(Float64Array::from(vec![3.3333333333333335, 1e10, 2.0]))),
            ("f", Arc::new(Float32Array::from(vec![0.1f32, 1e-5, 2.0]))),
        ]);
        assert_eq!(
            show_string(&b, &ConsoleOptions::default()),
            "+------------------+------+\n\
             |               avg|     f|\n\
             +------------------+------+\n\
             |3.3333333333333335|   0.1|\n\
             |            1.0E10|1.0E-5|\n\
             |               2.0|   2.0|\n\
             +------------------+------+\n"
        );
    }

    #[test]
    fn timestamps_and_dates() {
        let b = batch(vec![
            ("ts", utc_micros(vec![Some(T0), Some(T0 + 500_000), Some(T0 + 123_456), Some(-1), None])),
            ("d", Arc::new(Date32Array::from(vec![Some(19_723), Some(0), Some(-1), Some(1), None]))),
        ]);
        assert_eq!(
            show_string(&b, &ConsoleOptions::default().truncate(None)),
            "+--------------------------+----------+\n\
             |ts                        |d         |\n\
             +--------------------------+----------+\n\
             |2024-01-01 12:00:00       |2024-01-01|\n\
             |2024-01-01 12:00:00.5     |1970-01-01|\n\
             |2024-01-01 12:00:00.123456|1969-12-31|\n\
             |1969-12-31 23:59:59.999999|1970-01-02|\n\
             |NULL                      |NULL      |\n\
             +--------------------------+----------+\n"
        );
        // Other units convert to Spark's microseconds.
        let secs: ArrayRef = Arc::new(arrow_array::TimestampSecondArray::from(vec![T0 / 1_000_000]));
        assert_eq!(show_cell(secs.as_ref(), 0), "2024-01-01 12:00:00");
        let nanos: ArrayRef = Arc::new(arrow_array::TimestampNanosecondArray::from(vec![T0 * 1000 + 250_000_999]));
        assert_eq!(show_cell(nanos.as_ref(), 0), "2024-01-01 12:00:00.25");
    }

    fn window_column() -> ArrayRef {
        let fields = Fields::from(vec![
            Field::new("start", DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())), true),
            Field::new("end", DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())), true),
        ]);
        let ten_minutes = 600_000_000;
        Arc::new(StructArray::new(
            fields,
            vec![utc_micros(vec![Some(T0), Some(T0 + ten_minutes)]), utc_micros(vec![Some(T0 + ten_minutes), None])],
            None,
        ))
    }

    #[test]
    fn window_struct_column() {
        let b = batch(vec![("window", window_column()), ("count", Arc::new(Int64Array::from(vec![2, 1])))]);
        assert_eq!(
            show_string(&b, &ConsoleOptions::default().truncate(None)),
            "+------------------------------------------+-----+\n\
             |window                                    |count|\n\
             +------------------------------------------+-----+\n\
             |{2024-01-01 12:00:00, 2024-01-01 12:10:00}|2    |\n\
             |{2024-01-01 12:10:00, NULL}               |1    |\n\
             +------------------------------------------+-----+\n"
        );
        // The console default truncates the window to 20 characters, as Spark does.
        assert_eq!(
            show_string(&b, &ConsoleOptions::default()),
            "+--------------------+-----+\n\
             |              window|count|\n\
             +--------------------+-----+\n\
             |{2024-01-01 12:00...|    2|\n\
             |{2024-01-01 12:10...|    1|\n\
             +--------------------+-----+\n"
        );
    }

    #[test]
    fn lists_maps_binary_decimals() {
        let mut lb = ListBuilder::new(StringBuilder::new());
        lb.values().append_value("a");
        lb.values().append_value("b");
        lb.append(true);
        lb.values().append_null();
        lb.values().append_value("c");
        lb.append(true);
        lb.append(true);
        lb.append(false);
        let list = lb.finish();
        let cells: Vec<String> = (0..4).map(|i| show_cell(&list, i)).collect();
        assert_eq!(cells, ["[a, b]", "[NULL, c]", "[]", "NULL"]);

        let mut mb = MapBuilder::new(None, StringBuilder::new(), Int32Builder::new());
        mb.keys().append_value("k");
        mb.values().append_value(1);
        mb.keys().append_value("z");
        mb.values().append_null();
        mb.append(true).unwrap();
        let map = mb.finish();
        assert_eq!(show_cell(&map, 0), "{k -> 1, z -> NULL}");

        let bin = BinaryArray::from(vec![&[0x0au8, 0xff, 0x00][..], &[][..]]);
        assert_eq!(show_cell(&bin, 0), "[0A FF 00]");
        assert_eq!(show_cell(&bin, 1), "[]");

        let dec = Decimal128Array::from(vec![150, -5]).with_precision_and_scale(10, 2).unwrap();
        assert_eq!(show_cell(&dec, 0), "1.50");
        assert_eq!(show_cell(&dec, 1), "-0.05");
    }

    #[test]
    fn control_characters_are_escaped() {
        let b = strings("a\tb", vec![Some("line1\nline2")]);
        assert_eq!(
            show_string(&b, &ConsoleOptions::default()),
            "+------------+\n|        a\\tb|\n+------------+\n|line1\\nline2|\n+------------+\n"
        );
    }

    #[test]
    fn full_width_characters_count_twice() {
        let b = strings("名前", vec![Some("日本語"), Some("ab")]);
        assert_eq!(
            show_string(&b, &ConsoleOptions::default()),
            "+------+\n|  名前|\n+------+\n|日本語|\n|    ab|\n+------+\n"
        );
        // Lengths are Java's (UTF-16 units): an emoji counts two, and a cut through it shows `?`.
        assert_eq!(prepare("😀😀😀😀", Some(6)), "😀?...");
        assert_eq!(half_width("😀"), 2);
    }

    #[test]
    fn empty_batch_prints_header_only() {
        let empty = RecordBatch::new_empty(words().schema());
        assert_eq!(
            format_batch(7, &empty, &ConsoleOptions::default()),
            "-------------------------------------------\n\
             Batch: 7\n\
             -------------------------------------------\n\
             +----+-----+\n\
             |word|count|\n\
             +----+-----+\n\
             +----+-----+\n\
             \n"
        );
        // No columns at all: Scala's `addString` still writes the outer borders.
        let none = RecordBatch::new_empty(Arc::new(Schema::empty()));
        assert_eq!(show_string(&none, &ConsoleOptions::default()), "++\n||\n++\n++\n");
    }

    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);

    impl Write for Shared {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn sink_writes_each_batch() {
        let buf = Shared::default();
        let mut sink = ConsoleSink::with_writer(ConsoleOptions::default(), Box::new(buf.clone()));
        assert_eq!(sink.description(), "ConsoleSink");
        sink.add_batch(0, &words(), OutputMode::Complete).unwrap();
        sink.add_batch(1, &words(), OutputMode::Update).unwrap();
        let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        let one = format_batch(0, &words(), &ConsoleOptions::default());
        assert_eq!(text, format!("{one}{}", one.replace("Batch: 0", "Batch: 1")));
    }
}
