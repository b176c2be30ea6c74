//! Typed rows over Arrow: the [`Record`] trait that `#[derive(Record)]` implements, and the
//! [`ColumnType`] trait that maps a Rust field type to its Arrow array, builder and value.

use std::fmt;
use std::ops::Range;
use std::sync::Arc;

use arrow_array::builder::{
    BinaryBuilder, BooleanBuilder, Date32Builder, Float64Builder, Int32Builder, Int64Builder, StringBuilder,
    TimestampMicrosecondBuilder,
};
use arrow_array::{
    Array, ArrayRef, BinaryArray, BooleanArray, Date32Array, Float64Array, Int32Array, Int64Array, RecordBatch,
    StringArray, TimestampMicrosecondArray,
};
use arrow_schema::{DataType, Field, SchemaRef, TimeUnit};

use crate::error::{Error, Result};

/// A plain Rust struct that is also an Arrow schema: `#[derive(Record)]` implements this.
///
/// The derive gives the struct an Arrow [`SchemaRef`], a typed columnar view
/// ([`Record::Columns`]) that generated query code reads values from without copying, a
/// columnar builder, and conversion to and from [`RecordBatch`].
pub trait Record: Sized + Send + 'static {
    /// Typed view of a batch's columns: one field per struct field, each the Arrow array.
    type Columns<'a>;
    /// A builder that appends rows column by column.
    type Builder: RecordBuilder<Self>;
    /// The output columns one by one: a struct with one [`OutColumn`] per field, named like
    /// the fields. Generated stage loops fill it column by column (passing unchanged input
    /// columns through, appending computed values without making owned rows), and
    /// [`Record::from_parts`] turns it into a batch.
    type Parts;

    /// The Arrow schema: one field per struct field, in declaration order.
    fn schema() -> SchemaRef;
    /// The typed columns of `batch`, checked against [`Record::schema`] by name and type.
    fn columns(batch: &RecordBatch) -> Result<Self::Columns<'_>>;
    /// A new, empty builder with room for `capacity` rows.
    fn builder(capacity: usize) -> Self::Builder;
    /// Finishes every column of `parts` into a batch of this schema.
    fn from_parts(parts: Self::Parts) -> Result<RecordBatch>;

    /// Converts rows to a batch.
    fn to_batch(rows: impl IntoIterator<Item = Self>) -> Result<RecordBatch> {
        let iter = rows.into_iter();
        let mut b = Self::builder(iter.size_hint().0);
        for row in iter {
            b.push(row);
        }
        b.finish()
    }

    /// Converts a batch to rows.
    fn from_batch(batch: &RecordBatch) -> Result<Vec<Self>>;

    /// Row `i` of typed columns, owned (the rows a group-state function receives).
    fn row(cols: &Self::Columns<'_>, i: usize) -> Self;

    /// A borrowed view of one row: a `Copy` struct with one public field per struct field,
    /// each as a column read gives it (`&str` for `String`, `Option<&str>` for
    /// `Option<String>`), so reading a row allocates nothing. What the functions of
    /// `map_rows` / `flat_map_rows` / `filter_rows` receive (see [`RowRef`]).
    type Ref<'a>: Copy;

    /// Row `i` of typed columns as a [`Record::Ref`] view.
    fn row_ref<'a>(cols: &Self::Columns<'a>, i: usize) -> Self::Ref<'a>;

    /// An owned record from a view (each field converted with [`ColumnType::from_ref`]).
    fn from_row_ref(r: Self::Ref<'_>) -> Self;
}

/// The borrowed view of a row of `R` that a `map_rows` / `flat_map_rows` / `filter_rows`
/// function over the query's input receives: name it in a function's signature,
/// `fn parse(line: RowRef<'_, Line>) -> Option<DeviceData>`.
pub type RowRef<'a, R> = <R as Record>::Ref<'a>;

/// Appends rows of `R` column by column.
pub trait RecordBuilder<R>: Send {
    /// Appends one row.
    fn push(&mut self, row: R);
    /// Rows appended so far.
    fn len(&self) -> usize;
    /// True when no row was appended.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Finishes the batch and resets the builder.
    fn finish(&mut self) -> Result<RecordBatch>;
}

/// A Rust type that can be a column of a [`Record`].
///
/// `T` is a non-null column; `Option<T>` is its nullable version.
pub trait ColumnType: Sized + Send + 'static {
    /// The Arrow array type of the column.
    type Array: Array + 'static;
    /// The column's builder.
    type Builder: Send;
    /// A value as read from the array, borrowing where it can (`&str` for `String`).
    type Ref<'a>: Copy;
    /// A value of the optional side of an outer join: `Option<Ref>` (a nullable column stays
    /// `Option<Ref>`, not an `Option` of an `Option`).
    type Padded<'a>: Copy;

    /// A matched value of the optional side of an outer join.
    fn pad(r: Self::Ref<'_>) -> Self::Padded<'_>;
    /// The null of the optional side of an outer join, for a row without a match.
    fn pad_null<'a>() -> Self::Padded<'a>;

    /// The Arrow data type.
    fn data_type() -> DataType;
    /// Whether the column may hold nulls.
    fn nullable() -> bool {
        false
    }
    /// The Arrow field for a column named `name`.
    fn field(name: &str) -> Field {
        Field::new(name, Self::data_type(), Self::nullable())
    }
    /// Reads slot `i` (no bounds check beyond Arrow's own).
    fn get(array: &Self::Array, i: usize) -> Self::Ref<'_>;
    /// Converts a read value to an owned one.
    fn from_ref(r: Self::Ref<'_>) -> Self;
    /// A new builder.
    fn new_builder(capacity: usize) -> Self::Builder;
    /// Appends a value.
    fn append(builder: &mut Self::Builder, value: Self);
    /// Finishes the builder into an array.
    fn finish(builder: &mut Self::Builder) -> ArrayRef;
    /// Rows `range` of an input column as a column of this type, without copying values
    /// where it can: a zero-copy slice when the array already has [`ColumnType::data_type`]
    /// (the usual case), else the values read and appended one by one (an input whose
    /// timestamps carry another time zone label, say).
    fn pass_through(array: &Self::Array, range: Range<usize>) -> ArrayRef {
        if array.data_type() == &Self::data_type() {
            return array.slice(range.start, range.len());
        }
        let mut b = Self::new_builder(range.len());
        for i in range {
            Self::append(&mut b, Self::from_ref(Self::get(array, i)));
        }
        Self::finish(&mut b)
    }
    /// Downcasts a column of a batch, checking the type and nullability.
    fn downcast<'a>(column: &'a ArrayRef, name: &str) -> Result<&'a Self::Array> {
        if column.data_type() != &Self::data_type() {
            return Err(Error::Plan(format!(
                "column `{name}` has type {} but the record declares {}",
                column.data_type(),
                Self::data_type()
            )));
        }
        if !Self::nullable() && column.null_count() > 0 {
            return Err(Error::Plan(format!(
                "column `{name}` holds {} null(s) but the record declares it non-nullable; use Option<_>",
                column.null_count()
            )));
        }
        column
            .as_any()
            .downcast_ref::<Self::Array>()
            .ok_or_else(|| Error::Internal(format!("column `{name}`: array type mismatch")))
    }
}

/// Looks up column `name` in `batch` (helper for derived [`Record::columns`]).
pub fn column_by_name<'a>(batch: &'a RecordBatch, name: &str) -> Result<&'a ArrayRef> {
    batch.column_by_name(name).ok_or_else(|| {
        let have: Vec<&str> = batch.schema_ref().fields().iter().map(|f| f.name().as_str()).collect();
        Error::Plan(format!("batch has no column `{name}` (it has: {})", have.join(", ")))
    })
}

/// Builds a batch from finished columns (helper for derived builders).
pub fn batch_from_columns(schema: SchemaRef, columns: Vec<ArrayRef>) -> Result<RecordBatch> {
    Ok(RecordBatch::try_new(schema, columns)?)
}

/// Builds a schema (helper for derived records).
pub fn schema_of(fields: Vec<Field>) -> SchemaRef {
    Arc::new(arrow_schema::Schema::new(fields))
}

/// The [`ColumnType::Padded`] items of a column type whose padded value is `Option<Ref>`
/// (every type but `Option` itself, which stays one `Option`).
macro_rules! padded_as_option {
    () => {
        type Padded<'a> = Option<Self::Ref<'a>>;
        #[inline(always)]
        fn pad(r: Self::Ref<'_>) -> Self::Padded<'_> {
            Some(r)
        }
        #[inline(always)]
        fn pad_null<'a>() -> Self::Padded<'a> {
            None
        }
    };
}
pub(crate) use padded_as_option;

macro_rules! primitive_column {
    ($t:ty, $arr:ty, $builder:ty, $dt:expr) => {
        impl ColumnType for $t {
            type Array = $arr;
            type Builder = $builder;
            type Ref<'a> = $t;
            crate::record::padded_as_option!();
            fn data_type() -> DataType {
                $dt
            }
            #[inline(always)]
            fn get(array: &Self::Array, i: usize) -> $t {
                array.value(i)
            }
            #[inline(always)]
            fn from_ref(r: $t) -> $t {
                r
            }

            fn new_builder(capacity: usize) -> Self::Builder {
                <$builder>::with_capacity(capacity)
            }
            #[inline(always)]
            fn append(builder: &mut Self::Builder, value: $t) {
                builder.append_value(value)
            }
            fn finish(builder: &mut Self::Builder) -> ArrayRef {
                Arc::new(builder.finish())
            }
        }
    };
}

primitive_column!(bool, BooleanArray, BooleanBuilder, DataType::Boolean);
primitive_column!(i32, Int32Array, Int32Builder, DataType::Int32);
primitive_column!(i64, Int64Array, Int64Builder, DataType::Int64);
primitive_column!(f64, Float64Array, Float64Builder, DataType::Float64);

impl ColumnType for String {
    type Array = StringArray;
    type Builder = StringBuilder;
    type Ref<'a> = &'a str;
    crate::record::padded_as_option!();
    fn data_type() -> DataType {
        DataType::Utf8
    }
    #[inline(always)]
    fn get(array: &StringArray, i: usize) -> &str {
        array.value(i)
    }
    fn from_ref(r: &str) -> String {
        r.to_owned()
    }

    fn new_builder(capacity: usize) -> StringBuilder {
        StringBuilder::with_capacity(capacity, capacity * 8)
    }
    #[inline(always)]
    fn append(builder: &mut StringBuilder, value: String) {
        builder.append_value(value)
    }
    fn finish(builder: &mut StringBuilder) -> ArrayRef {
        Arc::new(builder.finish())
    }
}

/// Bytes (Spark's `BINARY`, an Arrow `Binary` column): the `key` and `value` of a Kafka record.
impl ColumnType for Vec<u8> {
    type Array = BinaryArray;
    type Builder = BinaryBuilder;
    type Ref<'a> = &'a [u8];
    crate::record::padded_as_option!();
    fn data_type() -> DataType {
        DataType::Binary
    }
    #[inline(always)]
    fn get(array: &BinaryArray, i: usize) -> &[u8] {
        array.value(i)
    }
    fn from_ref(r: &[u8]) -> Vec<u8> {
        r.to_vec()
    }
    fn new_builder(capacity: usize) -> BinaryBuilder {
        BinaryBuilder::with_capacity(capacity, capacity * 16)
    }
    #[inline(always)]
    fn append(builder: &mut BinaryBuilder, value: Vec<u8>) {
        builder.append_value(value)
    }
    fn finish(builder: &mut BinaryBuilder) -> ArrayRef {
        Arc::new(builder.finish())
    }
}

/// A point in time: microseconds since the Unix epoch, UTC (Spark's `TIMESTAMP`).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(pub i64);

impl Timestamp {
    /// From microseconds since the epoch.
    pub const fn from_micros(micros: i64) -> Self {
        Timestamp(micros)
    }
    /// Microseconds since the epoch.
    pub const fn micros(self) -> i64 {
        self.0
    }
    /// Parses RFC 3339 (`2024-01-01T12:00:00Z`) or Spark's `2024-01-01 12:00:00` (UTC).
    pub fn parse(s: &str) -> Result<Self> {
        if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
            return Ok(Timestamp(t.timestamp_micros()));
        }
        for fmt in ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M", "%Y-%m-%d"] {
            if let Ok(t) = chrono::NaiveDateTime::parse_from_str(s, fmt) {
                return Ok(Timestamp(t.and_utc().timestamp_micros()));
            }
        }
        if let Ok(d) = chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d") {
            return Ok(Timestamp(d.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc().timestamp_micros()));
        }
        Err(Error::MalformedInput(format!("`{s}` is not a timestamp")))
    }
}

impl std::ops::Add<crate::Duration> for Timestamp {
    type Output = Timestamp;
    fn add(self, d: crate::Duration) -> Timestamp {
        Timestamp(self.0 + d.micros())
    }
}

impl std::ops::Sub<crate::Duration> for Timestamp {
    type Output = Timestamp;
    fn sub(self, d: crate::Duration) -> Timestamp {
        Timestamp(self.0 - d.micros())
    }
}

impl fmt::Display for Timestamp {
    /// Spark's console format: `2024-01-01 12:00:00` (with `.ffffff` trimmed when present).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match chrono::DateTime::from_timestamp_micros(self.0) {
            Some(t) => {
                use chrono::{Datelike, Timelike};
                let (date, time) = (t.date_naive(), t.time());
                if (0..=9999).contains(&date.year()) {
                    // Written field by field: chrono's `format` parses its pattern per call.
                    write!(
                        f,
                        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
                        date.year(),
                        date.month(),
                        date.day(),
                        time.hour(),
                        time.minute(),
                        time.second()
                    )?;
                } else {
                    write!(f, "{}", t.format("%Y-%m-%d %H:%M:%S"))?;
                }
                let mut frac = self.0.rem_euclid(1_000_000);
                if frac != 0 {
                    let mut digits = 6;
                    while frac % 10 == 0 {
                        frac /= 10;
                        digits -= 1;
                    }
                    write!(f, ".{frac:0digits$}")?;
                }
                Ok(())
            }
            None => write!(f, "{}us", self.0),
        }
    }
}

impl fmt::Debug for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Timestamp({self})")
    }
}

impl ColumnType for Timestamp {
    type Array = TimestampMicrosecondArray;
    type Builder = TimestampMicrosecondBuilder;
    type Ref<'a> = Timestamp;
    crate::record::padded_as_option!();
    fn data_type() -> DataType {
        DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
    }
    #[inline(always)]
    fn get(array: &Self::Array, i: usize) -> Timestamp {
        Timestamp(array.value(i))
    }
    fn from_ref(r: Timestamp) -> Timestamp {
        r
    }
    fn new_builder(capacity: usize) -> Self::Builder {
        TimestampMicrosecondBuilder::with_capacity(capacity).with_timezone("UTC")
    }
    #[inline(always)]
    fn append(builder: &mut Self::Builder, value: Timestamp) {
        builder.append_value(value.0)
    }
    fn finish(builder: &mut Self::Builder) -> ArrayRef {
        Arc::new(builder.finish())
    }
    /// A slice relabelled as UTC (the values are microseconds since the epoch whatever the
    /// label; `downcast` accepts any label).
    fn pass_through(array: &Self::Array, range: Range<usize>) -> ArrayRef {
        Arc::new(array.slice(range.start, range.len()).with_timezone("UTC"))
    }
    fn downcast<'a>(column: &'a ArrayRef, name: &str) -> Result<&'a Self::Array> {
        match column.data_type() {
            DataType::Timestamp(TimeUnit::Microsecond, _) => {}
            other => {
                return Err(Error::Plan(format!(
                    "column `{name}` has type {other} but the record declares Timestamp (microseconds)"
                )))
            }
        }
        if column.null_count() > 0 {
            return Err(Error::Plan(format!(
                "column `{name}` holds null(s) but the record declares it non-nullable; use Option<Timestamp>"
            )));
        }
        column
            .as_any()
            .downcast_ref::<Self::Array>()
            .ok_or_else(|| Error::Internal(format!("column `{name}`: array type mismatch")))
    }
}

/// A calendar date: days since 1970-01-01 (Spark's `DATE`).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Debug)]
pub struct Date(pub i32);

impl fmt::Display for Date {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match chrono::NaiveDate::from_num_days_from_ce_opt(self.0 + 719_163) {
            Some(d) if (0..=9999).contains(&chrono::Datelike::year(&d)) => {
                use chrono::Datelike;
                write!(f, "{:04}-{:02}-{:02}", d.year(), d.month(), d.day())
            }
            Some(d) => write!(f, "{}", d.format("%Y-%m-%d")),
            None => write!(f, "{}d", self.0),
        }
    }
}

impl ColumnType for Date {
    type Array = Date32Array;
    type Builder = Date32Builder;
    type Ref<'a> = Date;
    crate::record::padded_as_option!();
    fn data_type() -> DataType {
        DataType::Date32
    }
    #[inline(always)]
    fn get(array: &Self::Array, i: usize) -> Date {
        Date(array.value(i))
    }
    fn from_ref(r: Date) -> Date {
        r
    }
    fn new_builder(capacity: usize) -> Self::Builder {
        Date32Builder::with_capacity(capacity)
    }
    #[inline(always)]
    fn append(builder: &mut Self::Builder, value: Date) {
        builder.append_value(value.0)
    }
    fn finish(builder: &mut Self::Builder) -> ArrayRef {
        Arc::new(builder.finish())
    }
}

/// Builders whose values can be null (every Arrow builder we use).
pub trait NullableBuilder {
    /// Appends a null.
    fn append_null_value(&mut self);
}

macro_rules! nullable_builder {
    ($($b:ty),*) => {$(
        impl NullableBuilder for $b {
            fn append_null_value(&mut self) {
                self.append_null()
            }
        }
    )*};
}
nullable_builder!(
    BinaryBuilder,
    BooleanBuilder,
    Int32Builder,
    Int64Builder,
    Float64Builder,
    StringBuilder,
    TimestampMicrosecondBuilder,
    Date32Builder
);

impl<T: ColumnType> ColumnType for Option<T>
where
    T::Builder: NullableBuilder,
{
    type Array = T::Array;
    type Builder = T::Builder;
    type Ref<'a> = Option<T::Ref<'a>>;
    type Padded<'a> = Option<T::Ref<'a>>;
    #[inline(always)]
    fn pad(r: Self::Ref<'_>) -> Self::Padded<'_> {
        r
    }
    #[inline(always)]
    fn pad_null<'a>() -> Self::Padded<'a> {
        None
    }
    fn data_type() -> DataType {
        T::data_type()
    }
    fn nullable() -> bool {
        true
    }
    #[inline(always)]
    fn get(array: &Self::Array, i: usize) -> Self::Ref<'_> {
        if array.is_null(i) {
            None
        } else {
            Some(T::get(array, i))
        }
    }
    fn from_ref(r: Self::Ref<'_>) -> Self {
        r.map(T::from_ref)
    }

    fn new_builder(capacity: usize) -> Self::Builder {
        T::new_builder(capacity)
    }
    #[inline(always)]
    fn append(builder: &mut Self::Builder, value: Self) {
        match value {
            Some(v) => T::append(builder, v),
            None => builder.append_null_value(),
        }
    }
    fn finish(builder: &mut Self::Builder) -> ArrayRef {
        T::finish(builder)
    }
    fn downcast<'a>(column: &'a ArrayRef, name: &str) -> Result<&'a Self::Array> {
        // Same checks as `T`, but nulls are allowed.
        if column.null_count() == 0 {
            return T::downcast(column, name);
        }
        let ok = match (column.data_type(), T::data_type()) {
            (DataType::Timestamp(TimeUnit::Microsecond, _), DataType::Timestamp(TimeUnit::Microsecond, _)) => true,
            (a, b) => *a == b,
        };
        if !ok {
            return Err(Error::Plan(format!(
                "column `{name}` has type {} but the record declares {}",
                column.data_type(),
                T::data_type()
            )));
        }
        column
            .as_any()
            .downcast_ref::<Self::Array>()
            .ok_or_else(|| Error::Internal(format!("column `{name}`: array type mismatch")))
    }
}

/// A column type whose owned value can be read back as a column read gives it (`&str` from a
/// `String`): how a stream-stream join's buffered rows are seen by the operators after it.
/// Every column type but those whose read value borrows the Arrow array itself (Kafka
/// headers).
pub trait BorrowRef: ColumnType {
    /// The value as [`ColumnType::get`] would read it.
    fn borrow_ref(v: &Self) -> Self::Ref<'_>;
}

macro_rules! borrow_copy {
    ($($t:ty),*) => {$(
        impl BorrowRef for $t {
            #[inline(always)]
            fn borrow_ref(v: &$t) -> $t {
                *v
            }
        }
    )*};
}
borrow_copy!(bool, i32, i64, f64, Timestamp, Date, crate::window::Window);

impl BorrowRef for String {
    #[inline(always)]
    fn borrow_ref(v: &String) -> &str {
        v
    }
}

impl BorrowRef for Vec<u8> {
    #[inline(always)]
    fn borrow_ref(v: &Vec<u8>) -> &[u8] {
        v
    }
}

impl<T: BorrowRef> BorrowRef for Option<T>
where
    T::Builder: NullableBuilder,
{
    #[inline(always)]
    fn borrow_ref(v: &Self) -> Self::Ref<'_> {
        v.as_ref().map(T::borrow_ref)
    }
}

/// One typed column of a batch: the Arrow array and the Rust type it is read as. The fields of
/// a derived record's [`Record::Columns`] are these.
pub struct Col<'a, T: ColumnType>(pub &'a T::Array);

impl<T: ColumnType> Clone for Col<'_, T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T: ColumnType> Copy for Col<'_, T> {}

impl<'a, T: ColumnType> Col<'a, T> {
    /// Checks and wraps column `name` of `batch`.
    pub fn of(batch: &'a RecordBatch, name: &str) -> Result<Self> {
        Ok(Col(T::downcast(column_by_name(batch, name)?, name)?))
    }
    /// The value in row `i`.
    #[inline(always)]
    pub fn get(self, i: usize) -> T::Ref<'a> {
        T::get(self.0, i)
    }
    /// The value in row `i`, owned (as a stream-stream join buffers it).
    #[inline(always)]
    pub fn get_owned(self, i: usize) -> T {
        T::from_ref(T::get(self.0, i))
    }
    /// Row `i` as the optional side of an outer join gives it (see [`ColumnType::Padded`]).
    #[inline(always)]
    pub fn get_padded(self, i: usize) -> T::Padded<'a> {
        T::pad(T::get(self.0, i))
    }
    /// The null the optional side of an outer join gives a row without a match.
    #[inline(always)]
    pub fn padded_null(self) -> T::Padded<'a> {
        T::pad_null()
    }
    /// Number of rows.
    pub fn len(self) -> usize {
        self.0.len()
    }
    /// True for an empty column.
    pub fn is_empty(self) -> bool {
        self.0.is_empty()
    }
}

/// One column of a [`Record::Parts`]: an input column passed through unchanged, or a builder
/// that the stage loop appends computed values to.
pub struct OutColumn<T: ColumnType> {
    builder: T::Builder,
    passed: Option<ArrayRef>,
}

impl<T: ColumnType> OutColumn<T> {
    /// A column built row by row, with room for `capacity` rows.
    pub fn with_capacity(capacity: usize) -> Self {
        OutColumn { builder: T::new_builder(capacity), passed: None }
    }
    /// Rows `range` of input column `col`, unchanged (see [`ColumnType::pass_through`]).
    pub fn pass(col: Col<'_, T>, range: Range<usize>) -> Self {
        OutColumn { builder: T::new_builder(0), passed: Some(T::pass_through(col.0, range)) }
    }
    /// Appends one value: `T` itself or a borrowed form of it (`&str` for `String`,
    /// `Option<&str>` for `Option<String>`), copied straight into the builder.
    #[inline(always)]
    pub fn push<V: crate::value::IntoColumn<T>>(&mut self, value: V) {
        value.append_to(&mut self.builder)
    }
    /// The finished array.
    pub fn finish(mut self) -> ArrayRef {
        match self.passed.take() {
            Some(a) => a,
            None => T::finish(&mut self.builder),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamp_parse_and_display() {
        let t = Timestamp::parse("2024-01-01T12:00:00Z").unwrap();
        assert_eq!(t.to_string(), "2024-01-01 12:00:00");
        let t2 = Timestamp::parse("2024-01-01 12:00:00.5").unwrap();
        assert_eq!(t2.micros() - t.micros(), 500_000);
        assert_eq!(t2.to_string(), "2024-01-01 12:00:00.5");
        assert!(Timestamp::parse("yesterday").is_err());
        assert_eq!(Timestamp(1_000_123).to_string(), "1970-01-01 00:00:01.000123");
        assert_eq!(Timestamp(-1).to_string(), "1969-12-31 23:59:59.999999");
        assert_eq!(Timestamp(1_250_000).to_string(), "1970-01-01 00:00:01.25");
        assert_eq!(Date(0).to_string(), "1970-01-01");
        assert_eq!(Date(-1).to_string(), "1969-12-31");
        assert_eq!(Date(19_723).to_string(), "2024-01-01");
        assert_eq!(Date(3_000_000).to_string(), "+10183-09-21");
    }

    #[test]
    fn option_column_round_trip() {
        let mut b = <Option<String>>::new_builder(2);
        <Option<String>>::append(&mut b, Some("a".into()));
        <Option<String>>::append(&mut b, None);
        let arr = <Option<String>>::finish(&mut b);
        let typed = <Option<String>>::downcast(&arr, "x").unwrap();
        assert_eq!(<Option<String>>::get(typed, 0), Some("a"));
        assert_eq!(<Option<String>>::get(typed, 1), None);
        assert!(String::downcast(&arr, "x").is_err(), "nulls in a non-null column are an error");
    }

    #[test]
    fn pass_through_slices_and_relabels() {
        let ts = TimestampMicrosecondArray::from(vec![1, 2, 3]).with_timezone("+01:00");
        let out = OutColumn::<Timestamp>::pass(Col(&ts), 1..3).finish();
        assert_eq!(out.data_type(), &Timestamp::data_type());
        assert_eq!(out.as_any().downcast_ref::<TimestampMicrosecondArray>().unwrap().values(), &[2, 3]);
        let s = StringArray::from(vec![Some("a"), None, Some("c")]);
        let out = OutColumn::<Option<String>>::pass(Col(&s), 1..3).finish();
        assert_eq!(out.len(), 2);
        assert!(out.is_null(0));
    }

    #[test]
    fn out_column_appends_borrowed_values() {
        let mut c = OutColumn::<Option<String>>::with_capacity(3);
        c.push(Some("a"));
        c.push(None::<&str>);
        c.push(Some(String::from("b")));
        let out = c.finish();
        let s = out.as_any().downcast_ref::<StringArray>().unwrap();
        assert_eq!(s.iter().collect::<Vec<_>>(), [Some("a"), None, Some("b")]);
    }

    #[test]
    fn date_display() {
        assert_eq!(Date(0).to_string(), "1970-01-01");
        assert_eq!(Date(19723).to_string(), "2024-01-01");
    }
}
