//! Nexmark q13, the bounded side input join: each bid with the row of a static side table
//! whose key is the bid's auction modulo the table's size. As Flink's Nexmark writes it:
//!
//! ```sql
//! SELECT B.auction, B.bidder, B.price, B.dateTime, S.value
//! FROM bid B JOIN side_input FOR SYSTEM_TIME AS OF B.p_time AS S
//! ON mod(B.auction, 10000) = S.key
//! ```
//!
//! The side table is [`SIDE_KEYS`] rows, `key` 0.. and `value` the key as text (Flink's
//! `side_input` file), written as JSON lines beside the bids of each data set
//! (`<format>/side_input/`, the same file for flowgate and Spark; [`ensure_side_table`]). In
//! flowgate it is a static input, read once when the query starts and indexed by key; Spark
//! reads it with `spark.read` and joins it to the stream (`benches/spark/q13.py`). Kept in
//! this file, with its own source setter and Spark function, apart from the other cases.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use arrow_array::builder::{Int64Builder, StringBuilder, TimestampMicrosecondBuilder};
use arrow_array::cast::AsArray;
use arrow_array::types::{Int64Type, TimestampMicrosecondType};
use arrow_array::{ArrayRef, RecordBatch, StringArray};
use flowgate::engine::{BatchContext, PlanConfig};
use flowgate::prelude::*;
use flowgate::QueryBuilder;
use hashbrown::HashMap;

use crate::compare::Format;
use crate::nexmark::Bid;
use crate::workloads::Hasher;
use crate::Measured;

/// Rows of the side table (Flink's Nexmark: 10 000).
pub const SIDE_KEYS: i64 = 10_000;

/// A row of the side table.
#[derive(Record)]
pub struct SideInput {
    pub key: i64,
    pub value: String,
}

#[derive(Record)]
pub struct Q13Row {
    pub auction: i64,
    pub bidder: i64,
    pub price: i64,
    pub date_time: Timestamp,
    pub value: String,
}

stream_query! {
    /// Each bid with its side-table value.
    pub(crate) query Q13(bids: Bid, side: static SideInput) -> Q13Row, mode = append {
        bids
            .with_column(key = auction % SIDE_KEYS)
            .join(side, key)
            .select(auction, bidder, price, date_time, value = side.value)
    }
}

/// The side table's rows.
pub fn side_rows() -> impl Iterator<Item = SideInput> {
    (0..SIDE_KEYS).map(|key| SideInput { key, value: key.to_string() })
}

/// The side table's directory for the bids in `bid_dir` (`<format>/bid` → `<format>/side_input`).
pub fn side_dir(bid_dir: &Path) -> PathBuf {
    bid_dir.parent().unwrap_or(bid_dir).join("side_input")
}

/// Writes the side table beside the bids if it is not there yet (written whole to a temporary
/// file, then renamed, so a reader never sees part of it); its directory.
pub fn ensure_side_table(bid_dir: &Path) -> std::io::Result<PathBuf> {
    let dir = side_dir(bid_dir);
    let file = dir.join("side_input.json");
    if !file.exists() {
        std::fs::create_dir_all(&dir)?;
        let text: String = side_rows().map(|r| format!("{{\"key\":{},\"value\":\"{}\"}}\n", r.key, r.value)).collect();
        let tmp = dir.join(".side_input.json.tmp");
        std::fs::write(&tmp, text)?;
        std::fs::rename(&tmp, &file)?;
    }
    Ok(dir)
}

/// `compare`'s source setter: the bids from `dir` in `format`, the side table beside them.
pub fn source(b: &mut QueryBuilder, dir: &Path, max: Option<usize>, format: Format) {
    let s = Source::<Bid>::file(dir);
    let mut s = match format {
        Format::Parquet => s.parquet(),
        Format::Json => s.json().mode(ParseMode::FailFast),
    };
    if let Some(n) = max {
        s = s.max_files_per_trigger(n);
    }
    b.set_source(0, s.into());
    let side = ensure_side_table(dir).expect("writing the side table");
    b.set_source(1, Source::<SideInput>::file(side).json().mode(ParseMode::FailFast).into());
}

static INPUT: OnceLock<(Vec<RecordBatch>, Vec<RecordBatch>)> = OnceLock::new();

/// The bids of `rows` and the side table, in memory.
pub fn prepare(rows: usize) {
    INPUT.get_or_init(|| {
        let side = vec![SideInput::to_batch(side_rows()).expect("batch")];
        (crate::nexmark::bid_batches(rows), side)
    });
}

pub fn fg_q13(_rows: usize) -> Measured {
    let (bids, side) = INPUT.get().expect("prepared").clone();
    let start = Instant::now();
    let mut plan = (Q13::spec().make_plan)(&PlanConfig::with_partitions(rayon::current_num_threads().max(2)));
    let out = plan.run_batch(&BatchContext::new(0, OutputMode::Append), &[bids, side]).expect("run");
    Measured { elapsed: start.elapsed(), result: crate::workloads::canonical(&out), note: String::new() }
}

/// The hand-written join: the side table indexed by key in the timed region (as flowgate
/// indexes its static input), then per chunk of bids a probe per row into output builders, in
/// parallel.
pub fn hand_q13(_rows: usize) -> Measured {
    use rayon::prelude::*;
    let (bids, side) = INPUT.get().expect("prepared");
    let start = Instant::now();
    let mut index: HashMap<i64, Vec<(usize, usize)>, Hasher> = HashMap::with_hasher(Hasher::with_seed(1));
    for (n, b) in side.iter().enumerate() {
        let keys = b.column(0).as_primitive::<Int64Type>();
        for i in 0..b.num_rows() {
            index.entry(keys.value(i)).or_default().push((n, i));
        }
    }
    // The side table's value columns, downcast once (not per matched row).
    let values: Vec<&StringArray> = side.iter().map(|b| b.column(1).as_string::<i32>()).collect();
    let schema = Q13Row::schema();
    let units: Vec<(&RecordBatch, std::ops::Range<usize>)> = bids
        .iter()
        .flat_map(|b| {
            (0..b.num_rows())
                .step_by(flowgate::exec::CHUNK_ROWS)
                .map(move |s| (b, s..(s + flowgate::exec::CHUNK_ROWS).min(b.num_rows())))
        })
        .collect();
    let out: Vec<RecordBatch> = units
        .par_iter()
        .map(|(b, range)| {
            let auction = b.column(0).as_primitive::<Int64Type>().values();
            let bidder = b.column(1).as_primitive::<Int64Type>().values();
            let price = b.column(2).as_primitive::<Int64Type>().values();
            let ts = b.column(5).as_primitive::<TimestampMicrosecondType>().values();
            let (mut a, mut bi, mut p) = (
                Int64Builder::with_capacity(range.len()),
                Int64Builder::with_capacity(range.len()),
                Int64Builder::with_capacity(range.len()),
            );
            let mut d = TimestampMicrosecondBuilder::with_capacity(range.len()).with_timezone("UTC");
            let mut v = StringBuilder::with_capacity(range.len(), range.len() * 4);
            for i in range.clone() {
                if let Some(rows) = index.get(&(auction[i] % SIDE_KEYS)) {
                    for &(n, j) in rows {
                        a.append_value(auction[i]);
                        bi.append_value(bidder[i]);
                        p.append_value(price[i]);
                        d.append_value(ts[i]);
                        v.append_value(values[n].value(j));
                    }
                }
            }
            let cols: Vec<ArrayRef> = vec![
                Arc::new(a.finish()),
                Arc::new(bi.finish()),
                Arc::new(p.finish()),
                Arc::new(d.finish()),
                Arc::new(v.finish()),
            ];
            RecordBatch::try_new(schema.clone(), cols).expect("batch")
        })
        .collect();
    Measured { elapsed: start.elapsed(), result: crate::workloads::canonical(&out), note: String::new() }
}
