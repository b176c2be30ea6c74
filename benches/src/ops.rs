//! The operators of a multi-operator plan against hand-written loops over the same Arrow
//! batches: deduplication (a hash set of seen keys, a mask, Arrow's filter) and a
//! stream-static join (a hash index of the table, a probe per row, columns built directly).

use std::sync::{Arc, OnceLock};
use std::time::Instant;

use arrow_array::builder::{Float64Builder, Int64Builder};
use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int64Type};
use arrow_array::{ArrayRef, BooleanArray, RecordBatch};
use arrow_buffer::BooleanBuffer;
use flowgate::engine::{BatchContext, PlanConfig};
use flowgate::prelude::*;
use hashbrown::{HashMap, HashSet};

use crate::data::{SplitMix, BATCH_ROWS};
use crate::workloads::{canonical, Hasher};
use crate::Measured;

#[derive(Record)]
pub struct Click {
    pub id: i64,
    pub user: i64,
    pub ts: Timestamp,
}

#[derive(Record)]
pub struct Order {
    pub order_id: i64,
    pub product: i64,
    pub qty: i64,
}

#[derive(Record)]
pub struct Product {
    pub product: i64,
    pub price: f64,
}

#[derive(Record)]
pub struct Amount {
    pub order_id: i64,
    pub amount: f64,
}

/// Products in the static table (10 K: an L2-sized index, as a dimension table is).
pub const PRODUCTS: i64 = 10_000;

stream_query! {
    /// Every click id once (about half the rows are repeats).
    pub(crate) query FirstClicks(clicks: Click) -> Click, mode = append {
        clicks.drop_duplicates(id)
    }

    /// Each order priced from the product table; orders of unknown products drop out.
    pub(crate) query Priced(orders: Order, products: static Product) -> Amount, mode = append {
        orders
            .join(products, product)
            .select(order_id, amount = qty as f64 * products.price)
    }
}

static CLICKS: OnceLock<Vec<RecordBatch>> = OnceLock::new();
static ORDERS: OnceLock<(Vec<RecordBatch>, Vec<RecordBatch>)> = OnceLock::new();

/// `rows` clicks whose ids are drawn from `rows / 2` values.
pub fn prep_clicks(rows: usize) {
    CLICKS.get_or_init(|| {
        let mut rng = SplitMix::new(7);
        let ids = (rows as u64 / 2).max(1);
        (0..rows)
            .step_by(BATCH_ROWS)
            .map(|start| {
                let n = BATCH_ROWS.min(rows - start);
                Click::to_batch((0..n).map(|i| Click {
                    id: rng.below(ids) as i64,
                    user: rng.below(1000) as i64,
                    ts: Timestamp(((start + i) as i64) * 1000),
                }))
                .expect("batch")
            })
            .collect()
    });
}

/// `rows` orders over `PRODUCTS * 11 / 10` product ids (a tenth unknown), and the table.
pub fn prep_orders(rows: usize) {
    ORDERS.get_or_init(|| {
        let mut rng = SplitMix::new(11);
        let orders = (0..rows)
            .step_by(BATCH_ROWS)
            .map(|start| {
                let n = BATCH_ROWS.min(rows - start);
                Order::to_batch((0..n).map(|i| Order {
                    order_id: (start + i) as i64,
                    product: rng.below(PRODUCTS as u64 * 11 / 10) as i64,
                    qty: 1 + rng.below(9) as i64,
                }))
                .expect("batch")
            })
            .collect();
        let products =
            vec![Product::to_batch((0..PRODUCTS).map(|p| Product { product: p, price: 0.25 + p as f64 / 100.0 }))
                .expect("batch")];
        (orders, products)
    });
}

pub fn fg_dedup(_rows: usize) -> Measured {
    let input = CLICKS.get().expect("prepared").clone();
    let start = Instant::now();
    let mut plan = (FirstClicks::spec().make_plan)(&PlanConfig::with_partitions(2));
    let out = plan.run_batch(&BatchContext::new(0, OutputMode::Append), &[input]).expect("run");
    let elapsed = start.elapsed();
    Measured {
        elapsed,
        note: format!("{} unique", out.iter().map(RecordBatch::num_rows).sum::<usize>()),
        result: canonical(&out),
    }
}

/// What a careful engineer writes: one set of seen ids, a mask per batch, Arrow's filter.
pub fn hand_dedup(_rows: usize) -> Measured {
    let input = CLICKS.get().expect("prepared");
    let start = Instant::now();
    let mut seen: HashSet<i64, Hasher> = HashSet::with_hasher(Hasher::with_seed(1));
    let mut out = Vec::with_capacity(input.len());
    for b in input {
        let ids = b.column(0).as_primitive::<Int64Type>().values();
        let mask = BooleanArray::new(BooleanBuffer::collect_bool(b.num_rows(), |i| seen.insert(ids[i])), None);
        out.push(arrow_select::filter::filter_record_batch(b, &mask).expect("filter"));
    }
    let elapsed = start.elapsed();
    Measured { elapsed, note: String::new(), result: canonical(&out) }
}

pub fn fg_join(_rows: usize) -> Measured {
    let (orders, products) = ORDERS.get().expect("prepared").clone();
    let start = Instant::now();
    let mut plan = (Priced::spec().make_plan)(&PlanConfig::with_partitions(2));
    let out = plan.run_batch(&BatchContext::new(0, OutputMode::Append), &[orders, products]).expect("run");
    let elapsed = start.elapsed();
    Measured { elapsed, note: String::new(), result: canonical(&out) }
}

/// The hand-written join: an index of the table built in the timed region (as flowgate builds
/// its own), then per chunk of orders a probe per row into output builders, in parallel.
pub fn hand_join(_rows: usize) -> Measured {
    use rayon::prelude::*;
    let (orders, products) = ORDERS.get().expect("prepared");
    let start = Instant::now();
    let mut index: HashMap<i64, Vec<f64>, Hasher> = HashMap::with_hasher(Hasher::with_seed(1));
    for b in products {
        let (ids, prices) = (b.column(0).as_primitive::<Int64Type>(), b.column(1).as_primitive::<Float64Type>());
        for i in 0..b.num_rows() {
            index.entry(ids.value(i)).or_default().push(prices.value(i));
        }
    }
    let schema = Amount::schema();
    let units: Vec<(&RecordBatch, std::ops::Range<usize>)> = orders
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
            let ids = b.column(0).as_primitive::<Int64Type>().values();
            let products = b.column(1).as_primitive::<Int64Type>().values();
            let qty = b.column(2).as_primitive::<Int64Type>().values();
            let mut id_out = Int64Builder::with_capacity(range.len());
            let mut amount = Float64Builder::with_capacity(range.len());
            for i in range.clone() {
                if let Some(prices) = index.get(&products[i]) {
                    for p in prices {
                        id_out.append_value(ids[i]);
                        amount.append_value(qty[i] as f64 * p);
                    }
                }
            }
            let cols: Vec<ArrayRef> = vec![Arc::new(id_out.finish()), Arc::new(amount.finish())];
            RecordBatch::try_new(schema.clone(), cols).expect("batch")
        })
        .collect();
    let elapsed = start.elapsed();
    Measured { elapsed, note: String::new(), result: canonical(&out) }
}
