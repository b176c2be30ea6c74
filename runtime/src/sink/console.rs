//! The console sink: each micro-batch printed as Spark prints it (`Dataset.showString`):
//!
//! ```text
//! -------------------------------------------
//! Batch: 0
//! -------------------------------------------
//! +----+-----+
//! |word|count|
//! +----+-----+
//! | cat|    1|
//! +----+-----+
//!
//! ```

use std::io::Write;

use arrow_array::cast::AsArray;
use arrow_array::types::{Date32Type, Float64Type, Int32Type, Int64Type, TimestampMicrosecondType};
use arrow_array::{Array, RecordBatch};
use arrow_schema::{DataType, TimeUnit};

use super::SinkImpl;
use crate::error::{Error, Result};
use crate::record::{Date, Timestamp};
use crate::OutputMode;

/// Spark's console sink shows 20 rows by default (`numRows`).
pub const DEFAULT_NUM_ROWS: usize = 20;
/// Spark truncates cells longer than 20 characters by default (`truncate`).
pub const DEFAULT_TRUNCATE: usize = 20;

/// Options of the console sink, as Spark's `numRows` and `truncate`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsoleOptions {
    /// Rows shown per batch.
    pub num_rows: usize,
    /// Longest cell shown before it is cut with `...`; `None` shows cells whole (and
    /// left-aligns them, as Spark does without truncation).
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
    /// Cell truncation (`None`: never).
    pub fn truncate(mut self, t: Option<usize>) -> Self {
        self.truncate = t;
        self
    }
}

/// Prints batches to stdout (or any writer).
pub struct ConsoleSink {
    options: ConsoleOptions,
    out: Box<dyn Write + Send>,
}

impl ConsoleSink {
    /// Prints to stdout.
    pub fn new(options: ConsoleOptions) -> Self {
        Self::with_writer(options, Box::new(std::io::stdout()))
    }

    /// Prints to `out` (tests, logs).
    pub fn with_writer(options: ConsoleOptions, out: Box<dyn Write + Send>) -> Self {
        ConsoleSink { options, out }
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
            .and_then(|_| self.out.flush())
            .map_err(|e| Error::io("writing to the console", e))
    }
}

/// The text the console sink prints for one batch.
pub fn format_batch(batch_id: u64, batch: &RecordBatch, options: &ConsoleOptions) -> String {
    let rule = "-".repeat(43);
    format!("{rule}\nBatch: {batch_id}\n{rule}\n{}\n", show_string(batch, options))
}

/// Spark's `showString`: a bordered table, cells right-aligned when truncating.
pub fn show_string(batch: &RecordBatch, options: &ConsoleOptions) -> String {
    let schema = batch.schema();
    let shown = batch.num_rows().min(options.num_rows);
    let cut = |s: String| match options.truncate {
        Some(t) if s.chars().count() > t => {
            if t < 4 {
                s.chars().take(t).collect()
            } else {
                let mut c: String = s.chars().take(t - 3).collect();
                c.push_str("...");
                c
            }
        }
        _ => s,
    };
    let header: Vec<String> = schema.fields().iter().map(|f| cut(f.name().clone())).collect();
    let rows: Vec<Vec<String>> =
        (0..shown).map(|i| batch.columns().iter().map(|c| cut(cell(c.as_ref(), i))).collect()).collect();
    // Spark's minimum column width is 3.
    let mut widths: Vec<usize> = header.iter().map(|h| display_width(h).max(3)).collect();
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(display_width(c));
        }
    }
    let sep: String = widths.iter().fold(String::from("+"), |mut s, w| {
        s.push_str(&"-".repeat(*w));
        s.push('+');
        s
    });
    let line = |cells: &[String]| {
        let mut s = String::from("|");
        for (c, w) in cells.iter().zip(&widths) {
            let pad = " ".repeat(w.saturating_sub(display_width(c)));
            if options.truncate.is_some() {
                s.push_str(&pad);
                s.push_str(c);
            } else {
                s.push_str(c);
                s.push_str(&pad);
            }
            s.push('|');
        }
        s
    };
    let mut out = format!("{sep}\n{}\n{sep}\n", line(&header));
    for r in &rows {
        out.push_str(&line(r));
        out.push('\n');
    }
    out.push_str(&sep);
    out.push('\n');
    if batch.num_rows() > shown {
        let noun = if shown == 1 { "row" } else { "rows" };
        out.push_str(&format!("only showing top {shown} {noun}\n"));
    }
    out
}

/// Columns a character takes in a terminal: East Asian wide characters take two (as Spark's
/// `Utils.stringHalfWidth` counts them).
fn display_width(s: &str) -> usize {
    s.chars()
        .map(|c| {
            let u = c as u32;
            let wide = (0x1100..=0x115F).contains(&u)
                || (0x2E80..=0xA4CF).contains(&u)
                || (0xAC00..=0xD7A3).contains(&u)
                || (0xF900..=0xFAFF).contains(&u)
                || (0xFE30..=0xFE4F).contains(&u)
                || (0xFF00..=0xFF60).contains(&u)
                || (0xFFE0..=0xFFE6).contains(&u);
            if wide {
                2
            } else {
                1
            }
        })
        .sum()
}

/// A double as Java's `Double.toString` prints it (what Spark shows).
pub fn java_double_string(v: f64) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "Infinity".into() } else { "-Infinity".into() };
    }
    if v == 0.0 {
        return if v.is_sign_negative() { "-0.0".into() } else { "0.0".into() };
    }
    let abs = v.abs();
    if (1e-3..1e7).contains(&abs) {
        // Shortest round-trip digits, always with a fractional part.
        let s = format!("{v}");
        if s.contains('.') {
            s
        } else {
            format!("{s}.0")
        }
    } else {
        // Computerized scientific notation: d.dddE±n, mantissa with at least one decimal.
        let s = format!("{v:e}");
        let (mantissa, exp) = s.split_once('e').unwrap_or((&s, "0"));
        let mantissa = if mantissa.contains('.') { mantissa.to_string() } else { format!("{mantissa}.0") };
        format!("{mantissa}E{exp}")
    }
}

/// One cell as Spark's console shows it (`NULL`, Java-style doubles, `{start, end}` structs).
pub fn show_cell(array: &dyn Array, i: usize) -> String {
    cell(array, i)
}

fn cell(array: &dyn Array, i: usize) -> String {
    if array.is_null(i) {
        return "NULL".into();
    }
    match array.data_type() {
        DataType::Boolean => array.as_boolean().value(i).to_string(),
        DataType::Int32 => array.as_primitive::<Int32Type>().value(i).to_string(),
        DataType::Int64 => array.as_primitive::<Int64Type>().value(i).to_string(),
        DataType::Float64 => java_double_string(array.as_primitive::<Float64Type>().value(i)),
        DataType::Utf8 => array.as_string::<i32>().value(i).to_string(),
        DataType::LargeUtf8 => array.as_string::<i64>().value(i).to_string(),
        DataType::Timestamp(TimeUnit::Microsecond, _) => {
            Timestamp(array.as_primitive::<TimestampMicrosecondType>().value(i)).to_string()
        }
        DataType::Date32 => Date(array.as_primitive::<Date32Type>().value(i)).to_string(),
        DataType::Struct(_) => {
            let s = array.as_struct();
            let parts: Vec<String> = s.columns().iter().map(|c| cell(c.as_ref(), i)).collect();
            format!("{{{}}}", parts.join(", "))
        }
        DataType::List(_) => {
            let l = array.as_list::<i32>();
            let values = l.value(i);
            let parts: Vec<String> = (0..values.len()).map(|j| cell(values.as_ref(), j)).collect();
            format!("[{}]", parts.join(", "))
        }
        other => format!("<{other}>"),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow_array::{Float64Array, Int64Array, StringArray};
    use arrow_schema::{Field, Schema};

    use super::*;
    use crate::record::ColumnType;
    use crate::window::Window;

    fn words() -> RecordBatch {
        RecordBatch::try_new(
            Arc::new(Schema::new(vec![
                Field::new("word", DataType::Utf8, true),
                Field::new("count", DataType::Int64, false),
            ])),
            vec![Arc::new(StringArray::from(vec!["cat", "dog"])), Arc::new(Int64Array::from(vec![1, 3]))],
        )
        .unwrap()
    }

    #[test]
    fn word_count_table_as_spark() {
        let text = format_batch(0, &words(), &ConsoleOptions::default());
        let want =
            "-------------------------------------------\nBatch: 0\n-------------------------------------------\n\
                    +----+-----+\n|word|count|\n+----+-----+\n| cat|    1|\n| dog|    3|\n+----+-----+\n\n";
        assert_eq!(text, want);
    }

    #[test]
    fn truncation_nulls_limits_and_alignment() {
        let b = RecordBatch::try_new(
            Arc::new(Schema::new(vec![Field::new("s", DataType::Utf8, true)])),
            vec![Arc::new(StringArray::from(vec![Some("abcdefghijklmnopqrstuvwxyz"), None, Some("x")]))],
        )
        .unwrap();
        let t = show_string(&b, &ConsoleOptions::default().num_rows(2));
        assert!(t.contains("|abcdefghijklmnopq...|"), "{t}");
        assert!(t.contains("|                NULL|"), "{t}");
        assert!(t.ends_with("only showing top 2 rows\n"), "{t}");
        let t = show_string(&b, &ConsoleOptions::default().truncate(None));
        assert!(t.contains("|x                         |"), "left-aligned without truncation: {t}");
    }

    #[test]
    fn doubles_as_java() {
        for (v, s) in [
            (4.0, "4.0"),
            (0.1 + 0.2, "0.30000000000000004"),
            (1e10, "1.0E10"),
            (1.5e-4, "1.5E-4"),
            (-2.5, "-2.5"),
            (1234567.0, "1234567.0"),
            (f64::NAN, "NaN"),
            (f64::NEG_INFINITY, "-Infinity"),
        ] {
            assert_eq!(java_double_string(v), s);
        }
        let b = RecordBatch::try_new(
            Arc::new(Schema::new(vec![Field::new("avg", DataType::Float64, true)])),
            vec![Arc::new(Float64Array::from(vec![3.3333333333333335]))],
        )
        .unwrap();
        assert!(show_string(&b, &ConsoleOptions::default()).contains("|3.3333333333333335|"));
    }

    #[test]
    fn window_struct_and_empty_batch() {
        let mut wb = Window::new_builder(1);
        let t0 = Timestamp::parse("2024-01-01T12:00:00Z").unwrap();
        let t1 = Timestamp::parse("2024-01-01T12:10:00Z").unwrap();
        Window::append(&mut wb, Window::new(t0, t1));
        let arr = Window::finish(&mut wb);
        let b = RecordBatch::try_new(
            Arc::new(Schema::new(vec![Field::new("window", Window::data_type(), false)])),
            vec![arr],
        )
        .unwrap();
        let t = show_string(&b, &ConsoleOptions::default().truncate(None));
        assert!(t.contains("|{2024-01-01 12:00:00, 2024-01-01 12:10:00}|"), "{t}");
        let empty = RecordBatch::new_empty(words().schema());
        assert_eq!(
            show_string(&empty, &ConsoleOptions::default()),
            "+----+-----+\n|word|count|\n+----+-----+\n+----+-----+\n"
        );
    }
}
