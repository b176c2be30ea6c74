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
//!   valid date, hours 0-23, minutes and seconds 0-59 (no leap second);
//! - Date32: a string `YYYY-MM-DD` with a valid date.
//!
//! Values of other keys are skipped but checked to be strict JSON (strings with valid escapes
//! and no lone surrogates, numbers, literals, arrays and objects up to [`MAX_SKIP_DEPTH`]), as
//! arrow-json rejects a line whose unread values do not tokenize. The whole run must be UTF-8
//! (arrow-json checks every string it tokenizes).

use std::sync::Arc;

use arrow_array::builder::{BooleanBuilder, Float64Builder, Int32Builder, Int64Builder, StringBuilder};
use arrow_array::builder::{Date32Builder, PrimitiveBuilder, TimestampMicrosecondBuilder};
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
    Date32,
}

/// How the fast path decodes a schema: built once per layout, `None` if some field's type is
/// not handled.
#[derive(Debug)]
pub(super) struct FastPlan {
    schema: SchemaRef,
    names: Vec<Box<[u8]>>,
    /// When names match ignoring case: the lowercase names. A line with a key that matches a
    /// field only ignoring case is given up on (arrow-json's path respells it).
    lowercase: Option<Vec<String>>,
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
    Date32(Date32Builder),
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
            Kind::Date32 => Builder::Date32(Date32Builder::with_capacity(rows)),
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
            Builder::Date32(b) => b.append_null(),
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
            Builder::Date32(b) => Arc::new(b.finish()),
        }
    }
}

impl FastPlan {
    /// The plan for decoding `schema` (arrow-json's decode schema), if every field has a type
    /// the fast path builds; `case_insensitive`: keys match names ignoring case.
    pub(super) fn new(schema: &SchemaRef, case_insensitive: bool) -> Option<FastPlan> {
        let mut kinds = Vec::with_capacity(schema.fields().len());
        for field in schema.fields() {
            kinds.push(match field.data_type() {
                DataType::Int64 => Kind::Int64,
                DataType::Int32 => Kind::Int32,
                DataType::Float64 => Kind::Float64,
                DataType::Boolean => Kind::Boolean,
                DataType::Utf8 => Kind::Utf8,
                DataType::Timestamp(TimeUnit::Microsecond, _) => Kind::TimestampMicros,
                DataType::Date32 => Kind::Date32,
                _ => return None,
            });
        }
        Some(FastPlan {
            schema: schema.clone(),
            names: schema.fields().iter().map(|f| f.name().as_bytes().into()).collect(),
            lowercase: case_insensitive.then(|| schema.fields().iter().map(|f| f.name().to_lowercase()).collect()),
            kinds,
            nullable: schema.fields().iter().map(|f| f.is_nullable()).collect(),
        })
    }

    /// The `lines` of `data` as batches of at most `batch_rows`
    /// rows, or `None` if the fast path is not sure of any line (see the module doc).
    pub(super) fn decode(&self, data: &[u8], lines: &[Line], batch_rows: usize) -> Option<Vec<RecordBatch>> {
        let (first, last) = (lines.first()?, lines.last()?);
        // Checked once for the run: then every slice between ASCII delimiters is UTF-8 too.
        let text = simdutf8::basic::from_utf8(&data[first.start..last.end]).ok()?;
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
        // The field expected next: lines usually list their keys in one order.
        let mut hint = 0;
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
                match self.field_of(key.as_bytes(), &mut hint) {
                    Some(f) => {
                        if seen[f] == row {
                            return None; // a duplicate key
                        }
                        seen[f] = row;
                        self.value(&mut c, f, &mut builders[f])?;
                    }
                    None if self.matches_ignoring_case(key) => return None,
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

    /// Whether `key`, which matches no field exactly, matches one ignoring case (when names
    /// are matched so).
    fn matches_ignoring_case(&self, key: &str) -> bool {
        let Some(lowercase) = &self.lowercase else { return false };
        if key.is_ascii() {
            lowercase.iter().any(|n| n.eq_ignore_ascii_case(key))
        } else {
            let key = key.to_lowercase();
            lowercase.contains(&key)
        }
    }

    /// The decoded field named `key`, tried first at `hint`; moves `hint` past it.
    fn field_of(&self, key: &[u8], hint: &mut usize) -> Option<usize> {
        let found = match self.names.get(*hint) {
            Some(name) if name.as_ref() == key => Some(*hint),
            _ => self.names.iter().position(|n| n.as_ref() == key),
        };
        if let Some(f) = found {
            *hint = f + 1;
        }
        found
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
            Builder::Date32(b) => {
                c.expect(b'"')?;
                b.append_value(date_days(c.plain_string()?.as_bytes())?);
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

/// The position of the first `"` or `\\` in `bytes`. On x86-64, sixteen bytes at a time with
/// SSE2 (part of the x86-64 baseline: no runtime detection) while sixteen are left, the rest
/// with [`swar_quote_or_backslash`]; elsewhere eight bytes at a time (SWAR) throughout. A key
/// and its closing quote mostly fit in the first sixteen bytes: one compare finds the end.
/// With the run's UTF-8 check moved to `simdutf8` in the same change, `reader` (benches/README.md,
/// 2026-12-02) read 1 M bids in fewer CPU-seconds than with the SWAR loop and `std`'s check:
/// 2-12 % fewer for two integer fields, 17-23 % for `url`, 11-19 % for all seven.
fn quote_or_backslash(bytes: &[u8]) -> Option<usize> {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{
            __m128i, _mm_cmpeq_epi8, _mm_loadu_si128, _mm_movemask_epi8, _mm_or_si128, _mm_set1_epi8,
        };
        let mut at = 0;
        while at + 16 <= bytes.len() {
            // SAFETY: SSE2 is in the x86-64 baseline, so these intrinsics are always available;
            // the unaligned load reads bytes[at..at + 16], within `bytes` by the loop condition.
            let mask = unsafe {
                let v = _mm_loadu_si128(bytes.as_ptr().add(at).cast::<__m128i>());
                let quote = _mm_cmpeq_epi8(v, _mm_set1_epi8(b'"' as i8));
                let backslash = _mm_cmpeq_epi8(v, _mm_set1_epi8(b'\\' as i8));
                _mm_movemask_epi8(_mm_or_si128(quote, backslash)) as u32
            };
            if mask != 0 {
                return Some(at + mask.trailing_zeros() as usize);
            }
            at += 16;
        }
        swar_quote_or_backslash(&bytes[at..]).map(|n| at + n)
    }
    #[cfg(not(target_arch = "x86_64"))]
    swar_quote_or_backslash(bytes)
}

/// The position of the first `"` or `\\` in `bytes`, eight bytes at a time (SWAR): JSON strings
/// are mostly short (keys of 3-9 bytes, values of tens), where a vector search (memchr2) costs
/// more to set up than it saves. Measured with a throwaway harness timing `FastPlan::decode`
/// against arrow-json on 200k bids like those of `json_fast_path_speed` (best of 7, same run,
/// on a shared 2-core machine, so only the ratios mean much): a byte loop
/// over the first 16 bytes then memchr2 gave 1.48x arrow-json for 2 columns and 1.53x for 7;
/// this gives 1.66x and 1.83x.
fn swar_quote_or_backslash(bytes: &[u8]) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let mut chunks = bytes.chunks_exact(8);
    let mut at = 0;
    for chunk in &mut chunks {
        let word = u64::from_le_bytes(chunk.try_into().ok()?);
        let (q, b) = (word ^ (ONES * u64::from(b'"')), word ^ (ONES * u64::from(b'\\')));
        // A byte of `q` or `b` is zero where `word` holds a quote or a backslash; the lowest
        // flagged byte is always a true one (borrows only flag bytes above it).
        let found = (q.wrapping_sub(ONES) & !q | b.wrapping_sub(ONES) & !b) & HIGHS;
        if found != 0 {
            return Some(at + found.trailing_zeros() as usize / 8);
        }
        at += 8;
    }
    chunks.remainder().iter().position(|&b| b == b'"' || b == b'\\').map(|n| at + n)
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
        let n = quote_or_backslash(rest)?;
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
            let n = quote_or_backslash(&self.bytes[self.at..])?;
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

/// `YYYY-MM-DD` as days since the epoch, `None` for anything else.
fn date_days(s: &[u8]) -> Option<i32> {
    if s.len() != 10 {
        return None;
    }
    let (year, month, day) = ymd(s)?;
    i32::try_from(days_from_civil(year, month, day)).ok()
}

/// The valid date of a string starting `YYYY-MM-DD`.
fn ymd(s: &[u8]) -> Option<(i64, i64, i64)> {
    if s.get(4) != Some(&b'-') || s.get(7) != Some(&b'-') {
        return None;
    }
    let (year, month, day) = (digits(s, 0..4)?, digits(s, 5..7)?, digits(s, 8..10)?);
    if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return None;
    }
    Some((year, month, day))
}

/// The decimal number `s[range]`, all digits.
fn digits(s: &[u8], range: std::ops::Range<usize>) -> Option<i64> {
    let mut v = 0;
    for &b in s.get(range)? {
        if !b.is_ascii_digit() {
            return None;
        }
        v = v * 10 + i64::from(b - b'0');
    }
    Some(v)
}

/// `YYYY-MM-DD(T| )HH:MM:SS[.f{1,9}](Z|±HH:MM)` as UTC microseconds (sub-microsecond digits
/// truncated towards the past, as chrono's `timestamp_micros` does), `None` for anything else.
fn timestamp_micros(s: &[u8]) -> Option<i64> {
    let num = |range| digits(s, range);
    let at = |i: usize, b: u8| s.get(i) == Some(&b);
    if !((at(10, b'T') || at(10, b' ')) && at(13, b':') && at(16, b':')) {
        return None;
    }
    let (year, month, day) = ymd(s)?;
    let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow_array::RecordBatch;
    use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};

    use super::super::{arrow_json_decode, lines, FileFormat, DECODE_BATCH_ROWS};
    use super::FastPlan;

    /// Decodes `text` both ways. Returns whether the fast path took it; when it did, arrow-json
    /// must have decoded the lines without error to the same batches.
    fn differential(schema: &SchemaRef, text: &str, batch_rows: usize) -> bool {
        let data = text.as_bytes();
        let lines = lines(data, FileFormat::Json);
        let plan = FastPlan::new(schema, false).expect("a schema the fast path builds");
        let Some(fast) = plan.decode(data, &lines, batch_rows) else {
            return false;
        };
        assert!(fast.iter().all(|b| b.num_rows() <= batch_rows));
        let slow = match arrow_json_decode(schema.clone(), data, &lines, None) {
            Ok(slow) => slow,
            Err(e) => panic!("the fast path took lines arrow-json rejects ({e}):\n{text}"),
        };
        let concat = |batches: &[RecordBatch]| arrow_select::concat::concat_batches(schema, batches).unwrap();
        assert_eq!(concat(&fast), concat(&slow), "schema {schema:?}, lines:\n{text}");
        if batch_rows == DECODE_BATCH_ROWS {
            assert_eq!(fast, slow, "same batches, same sizes");
        }
        true
    }

    fn ts_type() -> DataType {
        DataType::Timestamp(TimeUnit::Microsecond, Some("+00:00".into()))
    }

    fn all_types() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("i", DataType::Int64, true),
            Field::new("j", DataType::Int32, true),
            Field::new("f", DataType::Float64, true),
            Field::new("b", DataType::Boolean, true),
            Field::new("s", DataType::Utf8, true),
            Field::new("t", ts_type(), true),
            Field::new("d", DataType::Date32, true),
        ]))
    }

    #[test]
    fn hand_picked_lines_decode_as_arrow_json_does() {
        let schema = all_types();
        let taken = [
            r#"{"i": 1, "j": 2, "f": 0.1, "b": true, "s": "x", "t": "2024-01-01T12:00:00Z"}"#,
            r#"  {  "t" :"2024-02-29T23:59:59.123+05:30" ,"s":"" , "b":false,"f":-0.0,"j":-2147483648,"i":-9223372036854775808 }  "#,
            r#"{"i": 9223372036854775807, "j": 2147483647, "f": 1e300, "s": "héllo 漢字 🎉", "t": "1969-12-31 23:59:59.999999999-08:00"}"#,
            r#"{"f": 1E-5, "t": "2000-01-01T00:00:00.5Z"}"#,
            r#"{"f": 12345678901234567890, "t": "2024-06-01T00:00:00.123456Z"}"#,
            r#"{"f": 2.5e-310, "t": "0001-01-01T00:00:00Z"}"#,
            r#"{"f": 0, "t": "9999-12-31T23:59:59.999999+00:00"}"#,
            r#"{}"#,
            "{\t}",
            r#"{"i": null, "j": null, "f": null, "b": null, "s": null, "t": null}"#,
            r#"{"x": "a \"quoted\" \\ \/ \b\f\n\r\t \u00e9 \uFFFF", "i": 3}"#,
            r#"{"x": {"a": [1, {"b": "\"}"}, [], {}], "c": null}, "y": [true, false, null, -1.5e+3], "i": 4}"#,
            r#"{"x": "}", "y": "{", "z": "]", "s": "a,b:c"}"#,
            r#"{"i": -0, "j": 0, "f": -1.25E+2, "d": "2024-02-29"}"#,
            r#"{"f": -0, "d": "0000-01-01"}"#,
            r#"{"f": 1e-400, "d": "1969-12-31"}"#,
            r#"{"f": 4.9e-324, "d": "9999-12-31"}"#,
        ];
        for line in taken {
            assert!(differential(&schema, line, DECODE_BATCH_ROWS), "the fast path gave up on {line}");
        }
        assert!(differential(&schema, &taken.join("\n"), DECODE_BATCH_ROWS));
        assert!(differential(&schema, &taken.join("\r\n\n  \n"), 3));

        // Each of these makes the fast path give up; arrow-json decides.
        let given_up = [
            r#"{"s": "a\"b"}"#,                            // an escape in a decoded string
            r#"{"i": 1.0}"#,                               // a fraction for an integer
            r#"{"i": 1e3}"#,                               // an exponent for an integer
            r#"{"i": 9223372036854775808}"#,               // out of range
            r#"{"j": 2147483648}"#,                        // out of range for Int32
            r#"{"i": "12"}"#,                              // a string for a number
            r#"{"i": 01}"#,                                // a leading zero
            r#"{"f": 1e400}"#,                             // not finite
            r#"{"f": .5}"#,                                // not a JSON number
            r#"{"s": 12}"#,                                // a number for a string (coerced by arrow-json)
            r#"{"s": true}"#,                              // a boolean for a string (coerced by arrow-json)
            r#"{"b": 1}"#,                                 // a number for a boolean
            r#"{"t": "2024-01-01T12:00:00"}"#,             // no offset
            r#"{"t": "2024-01-01t12:00:00Z"}"#,            // lower-case separator
            r#"{"t": "2024-01-01T12:00:00+0530"}"#,        // offset without colon
            r#"{"t": "2024-01-01T12:00:00.1234567890Z"}"#, // ten fraction digits
            r#"{"t": "2024-01-01T23:59:60Z"}"#,            // a leap second
            r#"{"t": "2023-02-29T00:00:00Z"}"#,            // no such day
            r#"{"t": "2024-01-01"}"#,                      // a date only
            r#"{"t": 1704110400000000}"#,                  // a number for a timestamp
            r#"{"i": 1, "i": 2}"#,                         // a duplicate key
            r#"{"i": 1} x"#,                               // trailing garbage
            r#"{"i": 1}{"i": 2}"#,                         // two objects
            r#"[1]"#,                                      // not an object
            r#"{"i": 1,}"#,                                // a trailing comma
            r#"{"i": 1 "j": 2}"#,                          // a missing comma
            r#"{"x": "\ud83c\udf89"}"#,                    // a surrogate pair (unread)
            r#"{"x": "\q"}"#,                              // an invalid escape (unread)
            r#"{"x": 1-2}"#,                               // not a number (unread)
            r#"{"x": tru}"#,                               // not a literal (unread)
            r#"{"x": [1 2]}"#,                             // not an array (unread)
            r#"{"\u0069": 1}"#,                            // an escaped key
            r#"{"i": 1"#,                                  // unterminated
            r#"{"d": "2023-02-29"}"#,                      // no such day
            r#"{"d": "20240101"}"#,                        // a date without hyphens
            r#"{"d": "2024-01-01T00:00:00Z"}"#,            // a timestamp for a date
            r#"{"d": 19000}"#,                             // a number for a date
        ];
        for line in given_up {
            assert!(!differential(&schema, line, DECODE_BATCH_ROWS), "the fast path took {line}");
            // One such line gives up on the whole run.
            assert!(!differential(&schema, &format!("{}\n{line}", taken[0]), DECODE_BATCH_ROWS));
        }
        // Invalid UTF-8, even in an unread string.
        let mut bytes = br#"{"x": "a"#.to_vec();
        bytes.extend_from_slice(b"\xff\"}");
        let lines = lines(&bytes, FileFormat::Json);
        assert!(FastPlan::new(&schema, false).unwrap().decode(&bytes, &lines, DECODE_BATCH_ROWS).is_none());

        // A null or a missing key for a non-nullable field: arrow-json fails the line.
        let strict = Arc::new(Schema::new(vec![Field::new("i", DataType::Int64, false)]));
        assert!(differential(&strict, r#"{"i": 5, "s": "x"}"#, DECODE_BATCH_ROWS));
        assert!(!differential(&strict, r#"{"i": null}"#, DECODE_BATCH_ROWS));
        assert!(!differential(&strict, r#"{"s": "x"}"#, DECODE_BATCH_ROWS));
        // Nothing decoded (a projection onto no field): the rows still count.
        let empty = Arc::new(Schema::empty());
        assert!(differential(&empty, "{\"i\": 1}\n{}", DECODE_BATCH_ROWS));
    }

    /// xorshift64*: a small seeded generator, so that a failure replays.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
        fn chance(&mut self, percent: usize) -> bool {
            self.below(100) < percent
        }
        fn pick<T: Copy>(&mut self, items: &[T]) -> T {
            items[self.below(items.len())]
        }
    }

    const KINDS: [fn() -> DataType; 7] = [
        || DataType::Int64,
        || DataType::Int32,
        || DataType::Float64,
        || DataType::Boolean,
        || DataType::Utf8,
        ts_type,
        || DataType::Date32,
    ];

    fn ws(rng: &mut Rng) -> &'static str {
        rng.pick(&["", "", "", " ", "  ", "\t"])
    }

    /// A string literal's body: mostly plain text, sometimes escapes (only if `escapes`).
    fn string_body(rng: &mut Rng, escapes: bool) -> String {
        let pieces: &[&str] = if escapes {
            &["a", "bc", " ", "é", "漢", "🎉", ",", ":", "{", "]", "\\\"", "\\\\", "\\n", "\\u00e9", "\\/", "\\t"]
        } else {
            &["a", "bc", " ", "é", "漢", "🎉", ",", ":", "{", "]", "'"]
        };
        (0..rng.below(8)).map(|_| rng.pick(pieces)).collect()
    }

    fn timestamp(rng: &mut Rng, clean: bool) -> String {
        let (y, mo) = (1900 + rng.below(200), 1 + rng.below(12));
        let d = 1 + rng.below(if clean { 28 } else { 31 });
        let (h, mi, s) = (rng.below(24), rng.below(60), rng.below(if clean { 60 } else { 61 }));
        let sep = if clean { rng.pick(&["T", " "]) } else { rng.pick(&["T", " ", "t"]) };
        let frac = match rng.below(if clean { 4 } else { 6 }) {
            0 => String::new(),
            1 => format!(".{:03}", rng.below(1000)),
            2 => format!(".{:06}", rng.below(1_000_000)),
            3 => format!(".{:09}", rng.below(1_000_000_000)),
            4 => format!(".{}", rng.below(10)),
            _ => ".1234567890".into(),
        };
        let zone = match rng.below(if clean { 3 } else { 5 }) {
            0 => "Z".to_string(),
            1 => format!("+{:02}:{:02}", rng.below(24), rng.below(60)),
            2 => format!("-{:02}:{:02}", rng.below(24), rng.below(60)),
            3 => String::new(),
            _ => "+0530".into(),
        };
        format!("\"{y:04}-{mo:02}-{d:02}{sep}{h:02}:{mi:02}:{s:02}{frac}{zone}\"")
    }

    /// A value for a field of `data_type`: of its type if `clean`, else sometimes anything.
    fn value(rng: &mut Rng, data_type: &DataType, clean: bool, nullable: bool) -> String {
        if nullable && rng.chance(10) {
            return "null".into();
        }
        if !clean && rng.chance(5) {
            return any_value(rng, 0);
        }
        match data_type {
            DataType::Int64 | DataType::Int32 => {
                let bits = if data_type == &DataType::Int32 { 31 } else { 63 };
                match rng.below(if clean { 4 } else { 6 }) {
                    0 => (rng.below(1000) as i64 - 500).to_string(),
                    1 => ((rng.next() >> (64 - bits)) as i64).to_string(),
                    2 => (-((rng.next() >> (64 - bits)) as i64) - 1).to_string(),
                    3 => rng.pick(&["0", "-0", "1", "-1"]).to_string(),
                    4 => {
                        rng.pick(&["1.0", "1e3", "01", "\"7\"", "9223372036854775808", "2147483648", "+1"]).to_string()
                    }
                    _ => format!("{}", rng.next() as i64 as f64),
                }
            }
            DataType::Float64 => {
                let x = f64::from_bits(rng.next());
                match rng.below(if clean { 5 } else { 6 }) {
                    0 if x.is_finite() => format!("{x}"),
                    1 if x.is_finite() => format!("{x:e}"),
                    2 => format!("{}", (rng.below(100_000) as f64 - 50_000.0) / 100.0),
                    3 => {
                        rng.pick(&["0.1", "-0.0", "1e300", "1E-5", "2.5e-310", "123456789012345678901234"]).to_string()
                    }
                    4 => (rng.next() as i64).to_string(),
                    5 => rng.pick(&["1e400", ".5", "2.", "\"1.5\"", "NaN", "-"]).to_string(),
                    _ => "1.5".into(),
                }
            }
            DataType::Boolean => {
                rng.pick(if clean { &["true", "false"][..] } else { &["true", "false", "1", "\"true\""] }).to_string()
            }
            DataType::Utf8 => match rng.below(if clean { 1 } else { 3 }) {
                0 => format!("\"{}\"", string_body(rng, false)),
                1 => format!("\"{}\"", string_body(rng, true)),
                _ => rng.pick(&["12", "-1.5e3", "true"]).to_string(),
            },
            DataType::Date32 => {
                let (y, mo, d) = (1 + rng.below(9998), 1 + rng.below(12), 1 + rng.below(31));
                if d > 28 && clean {
                    format!("\"{y:04}-{mo:02}-28\"")
                } else if !clean && rng.chance(20) {
                    rng.pick(&["\"2024-1-01\"", "19000", "\"2024-01-01 \"", "\"+2024-01-01\""]).to_string()
                } else {
                    format!("\"{y:04}-{mo:02}-{d:02}\"")
                }
            }
            _ => {
                if !clean && rng.chance(10) {
                    (rng.next() as i64 >> 12).to_string()
                } else {
                    timestamp(rng, clean)
                }
            }
        }
    }

    /// Any strict JSON value (for keys that are not decoded).
    fn any_value(rng: &mut Rng, depth: usize) -> String {
        match rng.below(if depth < 3 { 8 } else { 6 }) {
            0 => format!("\"{}\"", string_body(rng, true)),
            1 => (rng.next() as i64).to_string(),
            2 => format!("{:e}", (rng.below(1000) as f64) / 7.0),
            3 => rng.pick(&["true", "false", "null"]).to_string(),
            4 => "-0.5E+3".into(),
            5 => "\"plain\"".into(),
            6 => {
                let items: Vec<_> = (0..rng.below(4)).map(|_| any_value(rng, depth + 1)).collect();
                format!("[{}]", items.join(&format!("{},{}", ws(rng), ws(rng))))
            }
            _ => {
                let items: Vec<_> = (0..rng.below(4))
                    .map(|k| format!("\"k{k}\"{}:{}{}", ws(rng), ws(rng), any_value(rng, depth + 1)))
                    .collect();
                format!("{{{}}}", items.join(", "))
            }
        }
    }

    #[test]
    fn the_end_of_a_string_is_found_at_every_position() {
        let mut rng = Rng(7);
        // Bytes next to `"` (0x22) and `\` (0x5C), and above 0x80, where a SWAR test could misfire.
        let alphabet = [b'a', b'!', b'#', b'[', b']', 0x80, 0xA2, 0xDC, 0xFF, 0x00, 0x01];
        for len in 0..80 {
            for _ in 0..200 {
                let mut bytes: Vec<u8> = (0..len).map(|_| rng.pick(&alphabet)).collect();
                if len > 0 && rng.chance(80) {
                    let at = rng.below(len);
                    bytes[at] = rng.pick(b"\"\\");
                    if rng.chance(30) {
                        let later = at + rng.below(len - at);
                        bytes[later] = rng.pick(b"\"\\");
                    }
                }
                let expected = bytes.iter().position(|&b| b == b'"' || b == b'\\');
                assert_eq!(super::quote_or_backslash(&bytes), expected, "{bytes:?}");
                assert_eq!(super::swar_quote_or_backslash(&bytes), expected, "{bytes:?}");
            }
        }
    }

    #[test]
    fn random_lines_decode_as_arrow_json_does() {
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        let (mut taken, mut given_up, mut clean_cases) = (0, 0, 0);
        for case in 0..3000 {
            let clean = case % 2 == 0;
            // The fields of the file, and a random projection of them decoded.
            let fields: Vec<(String, DataType, bool)> =
                (0..1 + rng.below(7)).map(|i| (format!("f{i}"), rng.pick(&KINDS)(), rng.chance(70))).collect();
            let decoded: Vec<_> = fields.iter().filter(|_| rng.chance(60)).cloned().collect();
            let schema = Arc::new(Schema::new(
                decoded.iter().map(|(name, t, nullable)| Field::new(name, t.clone(), *nullable)).collect::<Vec<_>>(),
            ));
            let mut text = String::new();
            for _ in 0..1 + rng.below(20) {
                let mut pairs: Vec<String> = Vec::new();
                for (name, data_type, nullable) in &fields {
                    let is_decoded = decoded.iter().any(|(n, _, _)| n == name);
                    // Missing keys only where that is a null the field accepts.
                    if (!is_decoded || *nullable || !clean) && rng.chance(10) {
                        continue;
                    }
                    let v = if is_decoded || rng.chance(50) {
                        value(&mut rng, data_type, clean, *nullable || !clean)
                    } else {
                        any_value(&mut rng, 0)
                    };
                    pairs.push(format!("\"{name}\"{}:{}{v}", ws(&mut rng), ws(&mut rng)));
                }
                if rng.chance(20) {
                    pairs.push(format!("\"extra\": {}", any_value(&mut rng, 0)));
                }
                // Keys in any order.
                for i in (1..pairs.len()).rev() {
                    pairs.swap(i, rng.below(i + 1));
                }
                if !clean && rng.chance(3) {
                    pairs.push(rng.pick(&["\"f0\": 1", "oops", "\"x\":"]).to_string());
                }
                let sep = format!("{},{}", ws(&mut rng), ws(&mut rng));
                text.push_str(&format!(
                    "{}{{{}{}{}}}{}",
                    ws(&mut rng),
                    ws(&mut rng),
                    pairs.join(&sep),
                    ws(&mut rng),
                    ws(&mut rng)
                ));
                if !clean && rng.chance(2) {
                    text.push_str(rng.pick(&[" x", "}", "{}"]));
                }
                text.push_str(rng.pick(&["\n", "\r\n", "\n\n"]));
            }
            let batch_rows = rng.pick(&[1, 3, DECODE_BATCH_ROWS]);
            let took = differential(&schema, &text, batch_rows);
            if clean {
                clean_cases += 1;
                assert!(took, "the fast path gave up on common shapes: {schema:?}\n{text}");
            }
            if took {
                taken += 1;
            } else {
                given_up += 1;
            }
        }
        println!("random runs: {taken} decoded by the fast path, {given_up} given up ({clean_cases} clean, all taken)");
        assert!(given_up > 300, "the unclean runs exercise giving up");
    }
}
