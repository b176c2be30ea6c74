//! Helpers the generated stage loops call: cutting batches into work units, running units in
//! parallel, mask filtering. Generic and inlined; no query knowledge.

use std::ops::Range;

use arrow_array::{BooleanArray, RecordBatch};
use arrow_buffer::BooleanBuffer;
use arrow_schema::SchemaRef;
use rayon::prelude::*;

use crate::error::Result;
pub use crate::ops::aggregate::{CHUNK_ROWS, PARALLEL_MIN_ROWS};

/// Starting room, in rows, of a stage's output builders when a filter or flat_map may change
/// the row count: they grow by doubling from here. Reserving a whole unit up front costs more
/// than the growth when a filter keeps few rows (Nexmark q2 keeps 1 %), and 1024 is where
/// arrow's own builders start.
pub const FILTERED_START_CAPACITY: usize = 1024;

/// Appends work units for one input batch: its typed columns with row ranges of at most
/// [`CHUNK_ROWS`] rows.
#[inline]
pub fn push_units<C: Copy>(units: &mut Vec<(C, Range<usize>)>, cols: C, rows: usize) {
    let mut start = 0;
    while start < rows {
        let end = (start + CHUNK_ROWS).min(rows);
        units.push((cols, start..end));
        start = end;
    }
}

/// Runs `f` over every unit, in parallel when the units hold at least [`PARALLEL_MIN_ROWS`]
/// rows, keeping the units' order in the result.
pub fn map_units<C, F>(units: &[(C, Range<usize>)], f: F) -> Result<Vec<RecordBatch>>
where
    C: Sync,
    F: Fn(&(C, Range<usize>)) -> Result<RecordBatch> + Sync,
{
    let rows: usize = units.iter().map(|(_, r)| r.len()).sum();
    if units.len() > 1 && rows >= PARALLEL_MIN_ROWS {
        units.par_iter().map(&f).collect()
    } else {
        units.iter().map(f).collect()
    }
}

/// Checks, in debug builds, that none of `columns` (the input columns the generated code
/// loads from `batch`) is a placeholder its source filled in because the plan's
/// `input_reads` left it out: computing on placeholders would be silently wrong, so it is an
/// internal error (a bug) instead. Release builds skip the check.
#[inline]
pub fn check_loaded(batch: &RecordBatch, columns: &[&str]) -> Result<()> {
    if cfg!(debug_assertions) {
        let schema = batch.schema_ref();
        for c in columns {
            if let Ok(f) = schema.field_with_name(c) {
                if f.metadata().contains_key(crate::source::UNREAD_COLUMN) {
                    return Err(crate::Error::Internal(format!(
                        "the plan reads input column `{c}`, which it did not ask its source for \
                         (input_reads): its values are placeholders"
                    )));
                }
            }
        }
    }
    Ok(())
}

/// Keeps the rows of `batch` where `keep(i)` is true, projected onto `schema`'s columns (by
/// name). The mask is built 64 rows at a time ([`BooleanBuffer::collect_bool`]).
pub fn filter_batch(batch: &RecordBatch, schema: &SchemaRef, keep: impl FnMut(usize) -> bool) -> Result<RecordBatch> {
    let projected = project(batch, schema)?;
    let mask = BooleanArray::new(BooleanBuffer::collect_bool(batch.num_rows(), keep), None);
    if mask.true_count() == batch.num_rows() {
        return Ok(projected);
    }
    Ok(arrow_select::filter::filter_record_batch(&projected, &mask)?)
}

/// `batch`'s columns named in `schema`, in `schema`'s order, with `schema` as the batch schema.
pub fn project(batch: &RecordBatch, schema: &SchemaRef) -> Result<RecordBatch> {
    if batch.schema_ref() == schema {
        return Ok(batch.clone());
    }
    let cols = schema
        .fields()
        .iter()
        .map(|f| crate::record::column_by_name(batch, f.name()).cloned())
        .collect::<Result<Vec<_>>>()?;
    Ok(RecordBatch::try_new(schema.clone(), cols)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn a_placeholder_column_is_refused_in_debug_builds() {
        use arrow_array::Int64Array;
        use arrow_schema::{Field, Schema};
        let mut meta = std::collections::HashMap::new();
        meta.insert(crate::source::UNREAD_COLUMN.to_string(), "true".to_string());
        let schema = Arc::new(Schema::new(vec![
            Field::new("a", arrow_schema::DataType::Int64, false),
            Field::new("b", arrow_schema::DataType::Int64, false).with_metadata(meta),
        ]));
        let col = || Arc::new(Int64Array::from(vec![1, 2])) as arrow_array::ArrayRef;
        let batch = RecordBatch::try_new(schema, vec![col(), col()]).unwrap();
        assert!(check_loaded(&batch, &["a"]).is_ok());
        let err = check_loaded(&batch, &["a", "b"]).unwrap_err().to_string();
        assert!(err.contains("`b`") && err.contains("input_reads"), "{err}");
    }

    #[test]
    fn units_cover_rows_in_chunks() {
        let mut units = Vec::new();
        push_units(&mut units, (), CHUNK_ROWS * 2 + 5);
        let ranges: Vec<_> = units.iter().map(|(_, r)| r.clone()).collect();
        assert_eq!(ranges, vec![0..CHUNK_ROWS, CHUNK_ROWS..2 * CHUNK_ROWS, 2 * CHUNK_ROWS..2 * CHUNK_ROWS + 5]);
        push_units(&mut units, (), 0);
        assert_eq!(units.len(), 3, "an empty batch makes no unit");
    }
}
