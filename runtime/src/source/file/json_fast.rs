//! A fast path for JSON lines of flat objects: only the decoded fields' values are converted,
//! straight into Arrow builders; every other value is skipped with a validating scan.
//!
//! arrow-json's tape decoder tokenizes every field of every line (about 100 MB/s per core),
//! even when a projection reads two fields of seven. [`FastPlan::decode`] handles the common
//! shape and gives up (returns `None`) on a whole run of lines as soon as it meets anything
//! whose arrow-json result it is not sure to reproduce exactly; the caller then decodes the
//! run with arrow-json as before, so malformed lines and every edge case behave as they did.
//!
//! **Invariant:** whenever [`FastPlan::decode`] returns `Some`, the batches equal (`==`)
//! arrow-json's for the same lines and schema (with `coerce_primitive`), and arrow-json
//! would have decoded every line without error. The differential tests at the bottom check it.
//!
//! Accepted, per line: optional whitespace, `{`, zero or more `"key": value` pairs separated
//! by `,`, `}`, optional whitespace. Keys without escapes; a decoded key at most once. Values
//! of decoded fields:
//! - `null` (nullable fields only), or a missing key: null;
//! - Int64/Int32: `-?(0|[1-9][0-9]*)` within the type's range;
//! - Float64: a JSON number, parsed with `str::parse::<f64>` (correctly rounded, as arrow-json's
//!   lexical-core is), finite;
//! - Boolean: `true`/`false`;
//! - Utf8: a string without backslash escapes;
//! - Timestamp(Microsecond, _): a string `YYYY-MM-DD(T| )HH:MM:SS[.f{1,9}](Z|±HH:MM)` with a
//!   valid date, hours 0-23, minutes and seconds 0-59 (no leap second).
//!
//! Values of other keys are skipped but checked to be strict JSON (strings with valid escapes
//! and no lone surrogates, numbers, literals, arrays and objects up to [`MAX_SKIP_DEPTH`]), as
//! arrow-json rejects a line whose unread values do not tokenize. The whole run must be UTF-8
//! (arrow-json checks every string it tokenizes).

use std::sync::Arc;

use arrow_array::builder::{BooleanBuilder, Float64Builder, Int32Builder, Int64Builder, StringBuilder};
use arrow_array::builder::{PrimitiveBuilder, TimestampMicrosecondBuilder};
use arrow_array::{ArrayRef, RecordBatch, RecordBatchOptions};
use arrow_schema::{DataType, SchemaRef, TimeUnit};

use super::Line;

/// Nesting of arrays and objects the skipping scan follows before giving up (a guard against
/// stack overflow on pathological lines; real unread values are a level or two deep).
const MAX_SKIP_DEPTH: usize = 64;

/// The Arrow type a decoded field is built as.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Int64,
    Int32,
    Float64,
    Boolean,
    Utf8,
    TimestampMicros,
}

/// How the fast path decodes a schema: built once per layout, `None` if some field's type is
/// not handled.
#[derive(Debug)]
pub(super) struct FastPlan {
    schema: SchemaRef,
    names: Vec<Box<[u8]>>,
    kinds: Vec<Kind>,
    nullable: Vec<bool>,
}

/// One field's values being built.
enum Builder {
    Int64(Int64Builder),
    Int32(Int32Builder),
    Float64(Float64Builder),
    Boolean(BooleanBuilder),
    Utf8(StringBuilder),
    Timestamp(TimestampMicrosecondBuilder),
}

impl Builder {
    fn new(kind: Kind, data_type: &DataType, rows: usize) -> Builder {
        match kind {
            Kind::Int64 => Builder::Int64(Int64Builder::with_capacity(rows)),
            Kind::Int32 => Builder::Int32(Int32Builder::with_capacity(rows)),
            Kind::Float64 => Builder::Float64(Float64Builder::with_capacity(rows)),
            Kind::Boolean => Builder::Boolean(BooleanBuilder::with_capacity(rows)),
            Kind::Utf8 => Builder::Utf8(StringBuilder::with_capacity(rows, rows * 16)),
            Kind::TimestampMicros => {
                Builder::Timestamp(PrimitiveBuilder::with_capacity(rows).with_data_type(data_type.clone()))
            }
        }
    }

    fn append_null(&mut self) {
        match self {
            Builder::Int64(b) => b.append_null(),
            Builder::Int32(b) => b.append_null(),
            Builder::Float64(b) => b.append_null(),
            Builder::Boolean(b) => b.append_null(),
            Builder::Utf8(b) => b.append_null(),
            Builder::Timestamp(b) => b.append_null(),
        }
    }

    fn finish(&mut self) -> ArrayRef {
        match self {
            Builder::Int64(b) => Arc::new(b.finish()),
            Builder::Int32(b) => Arc::new(b.finish()),
            Builder::Float64(b) => Arc::new(b.finish()),
            Builder::Boolean(b) => Arc::new(b.finish()),
            Builder::Utf8(b) => Arc::new(b.finish()),
            Builder::Timestamp(b) => Arc::new(b.finish()),
        }
    }
}

impl FastPlan {
    /// The plan for decoding `schema` (arrow-json's decode schema), if every field has a type
    /// the fast path builds.
    pub(super) fn new(schema: &SchemaRef) -> Option<FastPlan> {
        let mut kinds = Vec::with_capacity(schema.fields().len());
        for field in schema.fields() {
            kinds.push(match field.data_type() {
                DataType::Int64 => Kind::Int64,
                DataType::Int32 => Kind::Int32,
                DataType::Float64 => Kind::Float64,
                DataType::Boolean => Kind::Boolean,
                DataType::Utf8 => Kind::Utf8,
                DataType::Timestamp(TimeUnit::Microsecond, _) => Kind::TimestampMicros,
                _ => return None,
            });
        }
        Some(FastPlan {
            schema: schema.clone(),
            names: schema.fields().iter().map(|f| f.name().as_bytes().into()).collect(),
            kinds,
            nullable: schema.fields().iter().map(|f| f.is_nullable()).collect(),
        })
    }

    /// The `lines` of `data` as batches of at most `batch_rows`
    /// rows, or `None` if the fast path is not sure of any line (see the module doc).
    pub(super) fn decode(&self, data: &[u8], lines: &[Line], batch_rows: usize) -> Option<Vec<RecordBatch>> {
        let (first, last) = (lines.first()?, lines.last()?);
        // Checked once for the run: then every slice between ASCII delimiters is UTF-8 too.
        let text = std::str::from_utf8(&data[first.start..last.end]).ok()?;
        let base = first.start;
        let mut batches = Vec::with_capacity(lines.len().div_ceil(batch_rows.max(1)));
        // Per field: the number (1-based) of the last row that set it.
        let mut seen = vec![0usize; self.kinds.len()];
        let mut row = 0;
        for chunk in lines.chunks(batch_rows.max(1)) {
            let mut builders: Vec<Builder> = self
                .kinds
                .iter()
                .zip(self.schema.fields())
                .map(|(kind, f)| Builder::new(*kind, f.data_type(), chunk.len()))
                .collect();
            for line in chunk {
                row += 1;
                self.line(&text[line.start - base..line.end - base], row, &mut seen, &mut builders)?;
            }
            let columns = builders.iter_mut().map(Builder::finish).collect();
            let options = RecordBatchOptions::new().with_row_count(Some(chunk.len()));
            batches.push(RecordBatch::try_new_with_options(self.schema.clone(), columns, &options).ok()?);
        }
        Some(batches)
    }

    /// Appends one line's row to `builders`.
    fn line(&self, line: &str, row: usize, seen: &mut [usize], builders: &mut [Builder]) -> Option<()> {
        let mut c = Cursor { text: line, bytes: line.as_bytes(), at: 0 };
        c.ws();
        c.expect(b'{')?;
        c.ws();
        if c.peek() == Some(b'}') {
            c.at += 1;
        } else {
            loop {
                c.expect(b'"')?;
                let key = c.plain_string()?;
                c.ws();
                c.expect(b':')?;
                c.ws();
                match self.names.iter().position(|n| n.as_ref() == key.as_bytes()) {
                    Some(f) => {
                        if seen[f] == row {
                            return None; // a duplicate key
                        }
                        seen[f] = row;
                        self.value(&mut c, f, &mut builders[f])?;
                    }
                    None => c.skip_value(0)?,
                }
                c.ws();
                match c.next()? {
                    b',' => c.ws(),
                    b'}' => break,
                    _ => return None,
                }
            }
        }
        c.ws();
        if c.at != c.bytes.len() {
            return None;
        }
        for (f, builder) in builders.iter_mut().enumerate() {
            if seen[f] != row {
                if !self.nullable[f] {
                    return None;
                }
                builder.append_null();
            }
        }
        Some(())
    }

    /// Parses the value at the cursor into field `f`'s builder.
    fn value(&self, c: &mut Cursor<'_>, f: usize, builder: &mut Builder) -> Option<()> {
        if c.peek() == Some(b'n') {
            c.literal(b"null")?;
            if !self.nullable[f] {
                return None;
            }
            builder.append_null();
            return Some(());
        }
        match builder {
            Builder::Int64(b) => b.append_value(c.integer()?),
            Builder::Int32(b) => b.append_value(i32::try_from(c.integer()?).ok()?),
            Builder::Float64(b) => {
                let text = c.number()?;
                let v: f64 = text.parse().ok()?;
                if !v.is_finite() {
                    return None;
                }
                b.append_value(v);
            }
            Builder::Boolean(b) => match c.peek()? {
                b't' => {
                    c.literal(b"true")?;
                    b.append_value(true);
                }
                b'f' => {
                    c.literal(b"false")?;
                    b.append_value(false);
                }
                _ => return None,
            },
            Builder::Utf8(b) => {
                c.expect(b'"')?;
                b.append_value(c.plain_string()?);
            }
            Builder::Timestamp(b) => {
                c.expect(b'"')?;
                b.append_value(timestamp_micros(c.plain_string()?.as_bytes())?);
            }
        }
        Some(())
    }
}

/// A position in one line.
struct Cursor<'a> {
    text: &'a str,
    bytes: &'a [u8],
    at: usize,
}

/// Whether arrow-json's tokenizer takes `b` as part of a number.
fn number_byte(b: u8) -> bool {
    matches!(b, b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E')
}

impl<'a> Cursor<'a> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.at).copied()
    }

    #[allow(clippy::should_implement_trait, reason = "a parser step, not an iterator")]
    fn next(&mut self) -> Option<u8> {
        let b = self.peek()?;
        self.at += 1;
        Some(b)
    }

    fn expect(&mut self, b: u8) -> Option<()> {
        (self.next()? == b).then_some(())
    }

    /// Skips JSON whitespace.
    fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\r' | b'\n') = self.peek() {
            self.at += 1;
        }
    }

    fn literal(&mut self, word: &[u8]) -> Option<()> {
        let end = self.at + word.len();
        (self.bytes.get(self.at..end)? == word).then_some(())?;
        self.at = end;
        Some(())
    }

    /// The rest of a string whose opening quote is consumed, if it has no escape.
    fn plain_string(&mut self) -> Option<&'a str> {
        let rest = &self.bytes[self.at..];
        let n = memchr::memchr2(b'"', b'\\', rest)?;
        if rest[n] != b'"' {
            return None;
        }
        let s = &self.text[self.at..self.at + n];
        self.at += n + 1;
        Some(s)
    }

    /// Skips the rest of a string whose opening quote is consumed, checking its escapes.
    fn skip_string(&mut self) -> Option<()> {
        loop {
            let n = memchr::memchr2(b'"', b'\\', &self.bytes[self.at..])?;
            self.at += n + 1;
            if self.bytes[self.at - 1] == b'"' {
                return Some(());
            }
            match self.next()? {
                b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => {}
                b'u' => {
                    let hex = std::str::from_utf8(self.bytes.get(self.at..self.at + 4)?).ok()?;
                    if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                        return None;
                    }
                    let unit = u16::from_str_radix(hex, 16).ok()?;
                    // Surrogate pairs are rare; arrow-json's rules for them are not copied.
                    if (0xD800..=0xDFFF).contains(&unit) {
                        return None;
                    }
                    self.at += 4;
                }
                _ => return None,
            }
        }
    }

    /// The text of a strict JSON number at the cursor, which arrow-json's tokenizer would end
    /// at the same place.
    fn number(&mut self) -> Option<&'a str> {
        let start = self.at;
        if self.peek() == Some(b'-') {
            self.at += 1;
        }
        match self.next()? {
            b'0' => {}
            b'1'..=b'9' => self.digits(),
            _ => return None,
        }
        if self.peek() == Some(b'.') {
            self.at += 1;
            self.some_digits()?;
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.at += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.at += 1;
            }
            self.some_digits()?;
        }
        if self.peek().is_some_and(number_byte) {
            return None;
        }
        Some(&self.text[start..self.at])
    }

    fn digits(&mut self) {
        while self.peek().is_some_and(|b| b.is_ascii_digit()) {
            self.at += 1;
        }
    }

    fn some_digits(&mut self) -> Option<()> {
        let start = self.at;
        self.digits();
        (self.at > start).then_some(())
    }

    /// A plain integer `-?(0|[1-9][0-9]*)` in the range of i64.
    fn integer(&mut self) -> Option<i64> {
        let negative = self.peek() == Some(b'-');
        if negative {
            self.at += 1;
        }
        let first = self.next()?;
        if !first.is_ascii_digit() {
            return None;
        }
        // Accumulated negative, so that i64::MIN fits.
        let mut v = -i64::from(first - b'0');
        if first != b'0' {
            while let Some(b @ b'0'..=b'9') = self.peek() {
                v = v.checked_mul(10)?.checked_sub(i64::from(b - b'0'))?;
                self.at += 1;
            }
        }
        if self.peek().is_some_and(number_byte) {
            return None;
        }
        if negative {
            Some(v)
        } else {
            v.checked_neg()
        }
    }

    /// Skips one strict JSON value.
    fn skip_value(&mut self, depth: usize) -> Option<()> {
        match self.peek()? {
            b'"' => {
                self.at += 1;
                self.skip_string()
            }
            b'-' | b'0'..=b'9' => self.number().map(|_| ()),
            b't' => self.literal(b"true"),
            b'f' => self.literal(b"false"),
            b'n' => self.literal(b"null"),
            b'[' if depth < MAX_SKIP_DEPTH => {
                self.at += 1;
                self.ws();
                if self.peek() == Some(b']') {
                    self.at += 1;
                    return Some(());
                }
                loop {
                    self.skip_value(depth + 1)?;
                    self.ws();
                    match self.next()? {
                        b',' => self.ws(),
                        b']' => return Some(()),
                        _ => return None,
                    }
                }
            }
            b'{' if depth < MAX_SKIP_DEPTH => {
                self.at += 1;
                self.ws();
                if self.peek() == Some(b'}') {
                    self.at += 1;
                    return Some(());
                }
                loop {
                    self.expect(b'"')?;
                    self.skip_string()?;
                    self.ws();
                    self.expect(b':')?;
                    self.ws();
                    self.skip_value(depth + 1)?;
                    self.ws();
                    match self.next()? {
                        b',' => self.ws(),
                        b'}' => return Some(()),
                        _ => return None,
                    }
                }
            }
            _ => None,
        }
    }
}

/// `YYYY-MM-DD(T| )HH:MM:SS[.f{1,9}](Z|±HH:MM)` as UTC microseconds (sub-microsecond digits
/// truncated towards the past, as chrono's `timestamp_micros` does), `None` for anything else.
fn timestamp_micros(s: &[u8]) -> Option<i64> {
    let num = |range: std::ops::Range<usize>| -> Option<i64> {
        let mut v = 0;
        for &b in s.get(range)? {
            if !b.is_ascii_digit() {
                return None;
            }
            v = v * 10 + i64::from(b - b'0');
        }
        Some(v)
    };
    let at = |i: usize, b: u8| s.get(i) == Some(&b);
    if !(at(4, b'-') && at(7, b'-') && (at(10, b'T') || at(10, b' ')) && at(13, b':') && at(16, b':')) {
        return None;
    }
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return None;
    }
    if hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    let mut i = 19;
    let mut micros = 0;
    if at(i, b'.') {
        i += 1;
        let start = i;
        while s.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        let digits = i - start;
        if !(1..=9).contains(&digits) {
            return None;
        }
        let frac = num(start..i)?;
        let nanos = frac * 10i64.pow(9 - digits as u32);
        micros = nanos / 1000;
    }
    let offset_secs = match &s[i..] {
        b"Z" => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let digit = |b: u8| b.is_ascii_digit().then(|| i64::from(b - b'0'));
            let (h, m) = (digit(*h1)? * 10 + digit(*h2)?, digit(*m1)? * 10 + digit(*m2)?);
            if h > 23 || m > 59 {
                return None;
            }
            let secs = h * 3600 + m * 60;
            if *sign == b'+' {
                secs
            } else {
                -secs
            }
        }
        _ => return None,
    };
    let days = days_from_civil(year, month, day);
    let secs = days * 86_400 + hour * 3600 + minute * 60 + second - offset_secs;
    Some(secs * 1_000_000 + micros)
}

fn is_leap(year: i64) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days from 1970-01-01 to the proleptic Gregorian date (Howard Hinnant's `days_from_civil`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}
