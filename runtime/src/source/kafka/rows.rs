//! Spark's Kafka rows as Arrow columns: `key`, `value`, `topic`, `partition`, `offset`,
//! `timestamp`, `timestamp_type`, `headers`, and the [`KafkaHeaders`] column type.

use std::sync::Arc;

use arrow_array::builder::{ArrayBuilder, BinaryBuilder, Int32Builder, Int64Builder, StringBuilder};
use arrow_array::{Array, ArrayRef, BinaryArray, ListArray, StringArray, StructArray, TimestampMicrosecondArray};
use arrow_buffer::{NullBufferBuilder, OffsetBuffer};
use arrow_schema::{DataType, Field, Fields, SchemaRef};

use crate::error::{Error, Result};
use crate::record::{ColumnType, NullableBuilder};

/// One record header: a key and an optional value (Spark's `struct<key: string, value: binary>`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KafkaHeader {
    /// The header's key.
    pub key: String,
    /// The header's value; Kafka allows none.
    pub value: Option<Vec<u8>>,
}

/// A record's headers, in order (Spark's `headers: array<struct<key: string, value: binary>>`):
/// the type of a `headers` field of a Kafka source's record (with `includeHeaders`), or of a
/// Kafka sink's output record.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct KafkaHeaders(pub Vec<KafkaHeader>);

impl KafkaHeaders {
    /// The value of the first header named `key`.
    pub fn get(&self, key: &str) -> Option<&[u8]> {
        self.0.iter().find(|h| h.key == key).and_then(|h| h.value.as_deref())
    }
}

fn header_fields() -> Fields {
    Fields::from(vec![Field::new("key", DataType::Utf8, false), Field::new("value", DataType::Binary, true)])
}

fn header_item() -> Arc<Field> {
    Arc::new(Field::new("element", DataType::Struct(header_fields()), false))
}

/// Headers as read from a column: the list at one row.
#[derive(Clone, Copy, Debug)]
pub struct KafkaHeadersRef<'a> {
    array: &'a ListArray,
    row: usize,
}

impl<'a> KafkaHeadersRef<'a> {
    /// The headers, as `(key, value)` pairs.
    pub fn iter(&self) -> impl Iterator<Item = (&'a str, Option<&'a [u8]>)> + 'a {
        let offsets = self.array.value_offsets();
        let (start, end) = (offsets[self.row] as usize, offsets[self.row + 1] as usize);
        let items = self.array.values().as_any().downcast_ref::<StructArray>();
        let keys = items.and_then(|s| s.column(0).as_any().downcast_ref::<StringArray>());
        let values = items.and_then(|s| s.column(1).as_any().downcast_ref::<BinaryArray>());
        (start..end).filter_map(move |i| {
            let (keys, values) = (keys?, values?);
            Some((keys.value(i), (!values.is_null(i)).then(|| values.value(i))))
        })
    }
}

/// The builder of a [`KafkaHeaders`] column.
#[derive(Debug)]
pub struct KafkaHeadersBuilder {
    offsets: Vec<i32>,
    keys: StringBuilder,
    values: BinaryBuilder,
    nulls: NullBufferBuilder,
}

impl KafkaHeadersBuilder {
    fn push_pairs<'a>(&mut self, pairs: impl Iterator<Item = (&'a str, Option<&'a [u8]>)>) {
        for (k, v) in pairs {
            self.keys.append_value(k);
            self.values.append_option(v);
        }
        self.offsets.push(self.keys.len() as i32);
        self.nulls.append_non_null();
    }
}

impl NullableBuilder for KafkaHeadersBuilder {
    fn append_null_value(&mut self) {
        self.offsets.push(self.keys.len() as i32);
        self.nulls.append_null();
    }
}

impl ColumnType for KafkaHeaders {
    type Array = ListArray;
    type Builder = KafkaHeadersBuilder;
    type Ref<'a> = KafkaHeadersRef<'a>;
    crate::record::padded_as_option!();
    fn data_type() -> DataType {
        DataType::List(header_item())
    }
    fn get(array: &ListArray, row: usize) -> KafkaHeadersRef<'_> {
        KafkaHeadersRef { array, row }
    }
    fn from_ref(r: KafkaHeadersRef<'_>) -> Self {
        KafkaHeaders(r.iter().map(|(k, v)| KafkaHeader { key: k.to_string(), value: v.map(<[u8]>::to_vec) }).collect())
    }
    fn new_builder(capacity: usize) -> KafkaHeadersBuilder {
        let mut offsets = Vec::with_capacity(capacity + 1);
        offsets.push(0);
        KafkaHeadersBuilder {
            offsets,
            keys: StringBuilder::new(),
            values: BinaryBuilder::new(),
            nulls: NullBufferBuilder::new(capacity),
        }
    }
    fn append(builder: &mut KafkaHeadersBuilder, value: Self) {
        builder.push_pairs(value.0.iter().map(|h| (h.key.as_str(), h.value.as_deref())));
    }
    fn finish(b: &mut KafkaHeadersBuilder) -> ArrayRef {
        let keys: ArrayRef = Arc::new(b.keys.finish());
        let values: ArrayRef = Arc::new(b.values.finish());
        let items = StructArray::new(header_fields(), vec![keys, values], None);
        let offsets = std::mem::replace(&mut b.offsets, vec![0]);
        let nulls = b.nulls.finish();
        Arc::new(ListArray::new(header_item(), OffsetBuffer::new(offsets.into()), Arc::new(items), nulls))
    }
}

/// One fetched record, with only the parts the query reads.
#[derive(Debug)]
pub(crate) struct Fetched {
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    /// Milliseconds since the epoch (-1: none).
    pub timestamp_ms: i64,
    /// 0 create time, 1 log-append time, -1 none (Spark's `timestampType` values).
    pub timestamp_type: i32,
    pub headers: Option<Vec<(String, Option<Vec<u8>>)>>,
}

impl Fetched {
    /// Memory held, for the fetch-ahead bound.
    pub fn bytes(&self) -> usize {
        64 + self.key.as_ref().map_or(0, Vec::len)
            + self.value.as_ref().map_or(0, Vec::len)
            + self.headers.as_ref().map_or(0, |h| h.iter().map(|(k, v)| k.len() + v.as_ref().map_or(0, Vec::len)).sum())
    }
}

/// A Spark column of the Kafka source.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Column {
    Key { text: bool },
    Value { text: bool },
    Topic,
    Partition,
    Offset,
    Timestamp,
    TimestampType,
    Headers,
}

/// Which Spark column each field of `schema` is, checking its type; an error names the field
/// and says what to write.
pub(crate) fn raw_layout(schema: &SchemaRef, include_headers: bool) -> Result<Vec<Column>> {
    let mut out = Vec::new();
    for f in schema.fields() {
        let dt = f.data_type();
        let want = |ok: bool, rust: &str| {
            if ok {
                Ok(())
            } else {
                Err(Error::Plan(format!(
                    "Kafka source: field `{}` is {dt}, but Spark's `{}` column is read as {rust}",
                    f.name(),
                    f.name()
                )))
            }
        };
        let col = match f.name().as_str() {
            "key" | "value" => {
                want(matches!(dt, DataType::Binary | DataType::Utf8), "Vec<u8> or String (or Option of either)")?;
                let text = dt == &DataType::Utf8;
                if f.name() == "key" {
                    Column::Key { text }
                } else {
                    Column::Value { text }
                }
            }
            "topic" => {
                want(dt == &DataType::Utf8, "String")?;
                Column::Topic
            }
            "partition" => {
                want(dt == &DataType::Int32, "i32")?;
                Column::Partition
            }
            "offset" => {
                want(dt == &DataType::Int64, "i64")?;
                Column::Offset
            }
            "timestamp" => {
                want(matches!(dt, DataType::Timestamp(arrow_schema::TimeUnit::Microsecond, _)), "Timestamp")?;
                Column::Timestamp
            }
            "timestamp_type" | "timestampType" => {
                want(dt == &DataType::Int32, "i32")?;
                Column::TimestampType
            }
            "headers" => {
                want(dt == &KafkaHeaders::data_type(), "KafkaHeaders (or Option<KafkaHeaders>)")?;
                if !include_headers {
                    return Err(Error::Plan(
                        "Kafka source: the record has a `headers` field: set `.include_headers(true)` (Spark's \
                         includeHeaders) to fill it"
                            .into(),
                    ));
                }
                Column::Headers
            }
            other => {
                return Err(Error::Plan(format!(
                    "Kafka source: field `{other}` is not one of Spark's Kafka columns (key, value, topic, partition, \
                     offset, timestamp, timestamp_type, headers); to parse message values into your own fields use \
                     `.json()` or `.csv()`"
                )))
            }
        };
        out.push(col);
    }
    Ok(out)
}

/// Builds a batch of `schema` (laid out by `layout`) from the records of each partition.
/// Columns the query does not read (`read[i]` false) are filled with placeholders.
pub(crate) fn build_batch(
    schema: &SchemaRef,
    layout: &[Column],
    read: &[bool],
    parts: &[(&str, i32, &[Fetched])],
) -> Result<arrow_array::RecordBatch> {
    let rows: usize = parts.iter().map(|(_, _, r)| r.len()).sum();
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(layout.len());
    for ((col, field), read) in layout.iter().zip(schema.fields()).zip(read) {
        let all = || parts.iter().flat_map(|(t, p, recs)| recs.iter().map(move |r| (*t, *p, r)));
        let nullable = field.is_nullable();
        let null_error = |what: &str, t: &str, p: i32, o: i64| {
            Error::Plan(format!(
                "Kafka record {t}-{p} at offset {o} has no {what}, but field `{what}` is not nullable: make it Option<_>"
            ))
        };
        let array: ArrayRef = match col {
            Column::Key { text } | Column::Value { text } => {
                let is_key = matches!(col, Column::Key { .. });
                let name = if is_key { "key" } else { "value" };
                if !read {
                    // Placeholders: empty, non-null values.
                    if *text {
                        Arc::new(StringArray::from_iter_values(std::iter::repeat_n("", rows)))
                    } else {
                        Arc::new(BinaryArray::from_iter_values(std::iter::repeat_n(b"".as_slice(), rows)))
                    }
                } else if *text {
                    let mut b = StringBuilder::with_capacity(rows, rows * 16);
                    for (t, p, r) in all() {
                        match if is_key { &r.key } else { &r.value } {
                            Some(v) => b.append_value(String::from_utf8_lossy(v)),
                            None if nullable => b.append_null(),
                            None => return Err(null_error(name, t, p, r.offset)),
                        }
                    }
                    Arc::new(b.finish())
                } else {
                    let mut b = BinaryBuilder::with_capacity(rows, rows * 16);
                    for (t, p, r) in all() {
                        match if is_key { &r.key } else { &r.value } {
                            Some(v) => b.append_value(v),
                            None if nullable => b.append_null(),
                            None => return Err(null_error(name, t, p, r.offset)),
                        }
                    }
                    Arc::new(b.finish())
                }
            }
            Column::Topic => Arc::new(StringArray::from_iter_values(all().map(|(t, _, _)| t))),
            Column::Partition => {
                let mut b = Int32Builder::with_capacity(rows);
                for (_, p, _) in all() {
                    b.append_value(p);
                }
                Arc::new(b.finish())
            }
            Column::Offset => {
                let mut b = Int64Builder::with_capacity(rows);
                for (_, _, r) in all() {
                    b.append_value(r.offset);
                }
                Arc::new(b.finish())
            }
            Column::Timestamp => {
                let values: Vec<i64> = all().map(|(_, _, r)| r.timestamp_ms.max(0) * 1000).collect();
                let tz = match field.data_type() {
                    DataType::Timestamp(_, tz) => tz.clone(),
                    _ => None,
                };
                Arc::new(TimestampMicrosecondArray::from(values).with_timezone_opt(tz))
            }
            Column::TimestampType => {
                let mut b = Int32Builder::with_capacity(rows);
                for (_, _, r) in all() {
                    b.append_value(r.timestamp_type.max(0));
                }
                Arc::new(b.finish())
            }
            Column::Headers => {
                let mut b = KafkaHeaders::new_builder(rows);
                for (_, _, r) in all() {
                    let empty = Vec::new();
                    let hs = if *read { r.headers.as_ref().unwrap_or(&empty) } else { &empty };
                    b.push_pairs(hs.iter().map(|(k, v)| (k.as_str(), v.as_deref())));
                }
                KafkaHeaders::finish(&mut b)
            }
        };
        columns.push(array);
    }
    let options = arrow_array::RecordBatchOptions::new().with_row_count(Some(rows));
    Ok(arrow_array::RecordBatch::try_new_with_options(schema.clone(), columns, &options)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_round_trip_through_a_column() {
        let h = KafkaHeaders(vec![
            KafkaHeader { key: "a".into(), value: Some(b"1".to_vec()) },
            KafkaHeader { key: "b".into(), value: None },
        ]);
        let mut b = KafkaHeaders::new_builder(3);
        KafkaHeaders::append(&mut b, h.clone());
        b.append_null_value();
        KafkaHeaders::append(&mut b, KafkaHeaders::default());
        let array = KafkaHeaders::finish(&mut b);
        let list = array.as_any().downcast_ref::<ListArray>().unwrap();
        assert_eq!(list.len(), 3);
        assert!(list.is_null(1));
        assert_eq!(KafkaHeaders::from_ref(<KafkaHeaders as ColumnType>::get(list, 0)), h);
        assert_eq!(KafkaHeaders::from_ref(<KafkaHeaders as ColumnType>::get(list, 2)), KafkaHeaders::default());
        assert_eq!(h.get("a"), Some(b"1".as_slice()));
    }

    #[test]
    fn a_field_that_is_no_kafka_column_is_refused_with_a_hint() {
        let schema = Arc::new(arrow_schema::Schema::new(vec![Field::new("word", DataType::Utf8, false)]));
        let e = raw_layout(&schema, false).unwrap_err().to_string();
        assert!(e.contains("`word` is not one of Spark's Kafka columns") && e.contains(".json()"), "{e}");
        let schema = Arc::new(arrow_schema::Schema::new(vec![Field::new("partition", DataType::Int64, false)]));
        let e = raw_layout(&schema, false).unwrap_err().to_string();
        assert!(e.contains("read as i32"), "{e}");
    }
}
