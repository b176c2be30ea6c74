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
