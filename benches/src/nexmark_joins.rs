//! Nexmark q4 and q5 (the queries over bids that need a join or chained aggregations) against
//! hand-written loops over the same Arrow micro-batches (in memory, one run side by side):
//! - **q4** (average closing price per category): each auction joined with its bids between
//!   its start and its expiry, the highest such bid per auction, then the average of those per
//!   category. Written for a stream as Spark must have it: both streams watermarked 1 second
//!   behind, the bid's time bounded by the auction's start + 1 second as well as by `expires`
//!   (the generator's auctions last at most 333 ms; the interval bound is what lets the join
//!   evict), the per-auction maximum grouped by the auction's 10-second window and the average
//!   by `window(window_time(window), ..)` of it (chained aggregations in append mode). Each
//!   auction lies in one window, so the per-auction maximum is Nexmark's.
//! - **q5** (hot items): bids per auction in 10-second windows sliding by 2 seconds, then the
//!   largest count per window (`window(window_time(window), "2 seconds")` names the sliding
//!   window by its last 2 seconds: one per window). Nexmark's q5 also names the auctions that
//!   reach that count, which needs the counts joined back with their maximum (a join after an
//!   aggregation) or `max_by`; neither is in the DSL yet, so this is q5's aggregation part.
//!
//! Micro-batches as in `joins.rs`: each stretch of `EVENTS_PER_BATCH` events carries its
//! auctions and bids; the watermark advances as the engine's; after the last batch one batch
//! without input at the end-of-input watermark closes every window (as the batch API's end of
//! input does), so the results compared are complete.

use std::sync::{Arc, OnceLock};
use std::time::Instant;

use arrow_array::builder::{Float64Builder, Int64Builder, TimestampMicrosecondBuilder};
use arrow_array::cast::AsArray;
use arrow_array::types::{Int64Type, TimestampMicrosecondType};
use arrow_array::{ArrayRef, RecordBatch};
use flowgate::engine::{BatchContext, PlanConfig, PlanExt};
use flowgate::prelude::*;
use hashbrown::HashMap;

use crate::joins::EVENTS_PER_BATCH;
use crate::nexmark::generator::{Auction, Bid, Generator, Kind};
use crate::workloads::{canonical, Hasher};
use crate::Measured;

/// q4's and q5's watermark delay (µs).
const DELAY_US: i64 = 1_000_000;
/// q4's bound on a bid's time after its auction's start (µs), beside `expires`.
const Q4_BOUND_US: i64 = 1_000_000;
/// q4's window (by the auction's start) and q5's window size and slide (µs).
const WINDOW_US: i64 = 10_000_000;
const SLIDE_US: i64 = 2_000_000;
/// The watermark of the last, input-less batch (the batch API's end of input).
const END_US: i64 = i64::MAX / 4;

#[derive(Record)]
pub struct Q4Row {
    pub window: Window,
    pub category: i64,
    pub avg_final: f64,
}

#[derive(Record)]
pub struct Q5Row {
    pub window: Window,
    pub maxn: i64,
}

#[derive(Record)]
pub struct Q7Row {
    pub auction: i64,
    pub price: i64,
    pub bidder: i64,
    pub date_time: Timestamp,
}

stream_query! {
    /// Nexmark q4: the average closing price per category (per 10-second window of the
    /// auctions' start).
    pub(crate) query Q4(auctions: Auction, bids: Bid) -> Q4Row, mode = append {
        auctions
            .with_watermark(date_time, "1 second")
            .join(
                bids.with_watermark(date_time, "1 second"),
                id = bids.auction,
                on = bids.date_time >= date_time && bids.date_time <= date_time + "1 second" && bids.date_time <= expires,
            )
            .group_by(window(date_time, "10 seconds"), id, category)
            .agg(max(bids.price) as final_price)
            .group_by(window(window_time(window), "10 seconds"), category)
            .agg(avg(final_price) as avg_final)
    }

    /// Nexmark q5's aggregation: the most bids any auction got in each 10-second window
    /// sliding by 2 seconds.
    pub(crate) query Q5(bids: Bid) -> Q5Row, mode = append {
        bids
            .with_watermark(date_time, "1 second")
            .group_by(window(date_time, "10 seconds", "2 seconds"), auction)
            .agg(count() as num)
            .group_by(window(window_time(window), "2 seconds"))
            .agg(max(num) as maxn)
    }

    /// Nexmark q7: the bids at the highest price of each 10-second window. As Nexmark writes
    /// it, the windowed maximum of the bids joined back with the bids on the window and the
    /// price; `maxes` and `bids` read the same bids (flowgate, as Spark, joins two streams).
    pub(crate) query Q7(maxes: Bid, bids: Bid) -> Q7Row, mode = append {
        maxes
            .with_watermark(date_time, "1 second")
            .group_by(window(date_time, "10 seconds"))
            .agg(max(price) as maxprice)
            .join(
                bids.with_watermark(date_time, "1 second"),
                window = window(bids.date_time, "10 seconds"),
                maxprice = bids.price,
            )
            .select(auction = bids.auction, price = bids.price, bidder = bids.bidder, date_time = bids.date_time)
    }
}

/// Micro-batches: (auctions, bids) of each stretch of `EVENTS_PER_BATCH` events.
static BATCHES: OnceLock<Vec<(RecordBatch, RecordBatch)>> = OnceLock::new();

/// The first `events` Nexmark events' auctions and bids, cut into micro-batches.
pub fn prepare(events: usize) {
    BATCHES.get_or_init(|| {
        let g = Generator::new(0);
        let events = events as u64;
        (0..events)
            .step_by(EVENTS_PER_BATCH as usize)
            .map(|from| {
                let to = (from + EVENTS_PER_BATCH).min(events);
                (g.batch_between(Kind::Auction, from, to), g.batch_between(Kind::Bid, from, to))
            })
            .collect()
    });
}

pub(crate) fn batches() -> &'static [(RecordBatch, RecordBatch)] {
    BATCHES.get().expect("prepared")
}

/// Runs `spec` one micro-batch per stretch (inputs chosen by `inputs`), the watermark advanced
/// as the engine does, then one batch without input at the end-of-input watermark; the note
/// gives the rows out and the peak state (rows, bytes per row) of each stateful operator.
fn run(
    spec: flowgate::engine::QuerySpec,
    inputs: impl Fn(&RecordBatch, &RecordBatch) -> Vec<Vec<RecordBatch>>,
) -> Measured {
    let start = Instant::now();
    let mut plan = (spec.make_plan)(&PlanConfig::with_partitions(2));
    let (mut wm_last, mut wm_next) = (0i64, 0i64);
    let mut out = Vec::new();
    let mut peaks: Vec<(u64, u64)> = Vec::new();
    let n = batches().len();
    for id in 0..=n {
        let ctx = BatchContext {
            watermark_for_late: Some(wm_last),
            watermark_for_eviction: Some(if id == n { END_US } else { wm_next }),
            ..BatchContext::new(id as u64, OutputMode::Append)
        };
        let input = match batches().get(id) {
            Some((a, b)) => inputs(a, b),
            None => inputs(&empty(&batches()[0].0), &empty(&batches()[0].1)),
        };
        out.extend(plan.run_batch(&ctx, &input).expect("run"));
        let ops = plan.state_operators();
        peaks.resize(ops.len(), (0, 0));
        for (p, m) in peaks.iter_mut().zip(&ops) {
            if id < n && m.num_rows_total > p.0 {
                *p = (m.num_rows_total, m.memory_used_bytes);
            }
        }
        let next = plan.watermarks().candidate().map_or(wm_next, |c| c.max(wm_next));
        (wm_last, wm_next) = (wm_next, next);
    }
    let elapsed = start.elapsed();
    let state: Vec<String> = plan
        .state_operators()
        .iter()
        .zip(&peaks)
        .map(|(m, (rows, bytes))| {
            format!("{} peak {rows} rows, {:.0} B/row", m.operator_name, *bytes as f64 / (*rows).max(1) as f64)
        })
        .collect();
    let note = format!("{} rows out; {}", out.iter().map(RecordBatch::num_rows).sum::<usize>(), state.join("; "));
    Measured { elapsed, note, result: canonical(&out) }
}

fn empty(like: &RecordBatch) -> RecordBatch {
    like.slice(0, 0)
}

pub fn fg_q4(_events: usize) -> Measured {
    run(Q4::spec(), |a, b| vec![vec![a.clone()], vec![b.clone()]])
}

pub fn fg_q5(_events: usize) -> Measured {
    run(Q5::spec(), |_, b| vec![vec![b.clone()]])
}

pub fn fg_q7(_events: usize) -> Measured {
    run(Q7::spec(), |_, b| vec![vec![b.clone()], vec![b.clone()]])
}

/// The engine's next watermark after a batch whose largest event time was `max` (whole
/// milliseconds, as Spark keeps it; never backwards).
fn next_watermark(current: i64, max: i64) -> i64 {
    if max == i64::MIN {
        current
    } else {
        ((max - DELAY_US).div_euclid(1000) * 1000).max(current)
    }
}

/// Spark's state watermark of a join side (µs) whose rows can only match rows of the other
/// side at most `bound_us` after them: the watermark in milliseconds, plus the bound, one
/// millisecond back for a non-strict comparison.
fn state_watermark(wm: i64, bound_us: i64) -> i64 {
    ((wm.div_euclid(1000) * 1000 + bound_us) / 1000 - 1) * 1000
}

fn window_column(starts: TimestampMicrosecondBuilder, ends: TimestampMicrosecondBuilder) -> ArrayRef {
    let (mut starts, mut ends) = (starts, ends);
    Arc::new(arrow_array::StructArray::new(
        match <Window as flowgate::ColumnType>::data_type() {
            arrow_schema::DataType::Struct(f) => f,
            _ => unreachable!("Window is a struct"),
        },
        vec![Arc::new(starts.finish()) as ArrayRef, Arc::new(ends.finish()) as ArrayRef],
        None,
    ))
}

fn timestamps() -> TimestampMicrosecondBuilder {
    TimestampMicrosecondBuilder::new().with_timezone("UTC")
}

/// A buffered auction of the hand-written q4: its times, its category and the highest price
/// of the bids matched so far (the join and the per-auction maximum in one).
struct OpenAuction {
    start: i64,
    expires: i64,
    category: i64,
    best: Option<i64>,
}

/// The hand-written q4: auctions by id with their running maximum, bids by auction until no
/// future auction can match them, each batch's auctions first (probing the buffered bids),
/// then its bids (probing the auctions); an auction leaves at its state watermark and hands
/// its maximum, if any bid matched, to (window, category) → (sum, count), whose windows are
/// emitted when the join's output watermark passes their end.
pub fn hand_q4(_events: usize) -> Measured {
    let start = Instant::now();
    let mut auctions: HashMap<i64, OpenAuction, Hasher> = HashMap::with_hasher(Hasher::with_seed(1));
    let mut bids: HashMap<i64, Vec<(i64, i64)>, Hasher> = HashMap::with_hasher(Hasher::with_seed(2));
    let mut averages: HashMap<(i64, i64), (f64, i64), Hasher> = HashMap::with_hasher(Hasher::with_seed(3));
    let schema = Q4Row::schema();
    let (mut wm_last, mut wm_next) = (0i64, 0i64);
    let (mut max_a, mut max_b) = (i64::MIN, i64::MIN);
    let mut out = Vec::new();
    let window = |t: i64| t - t.rem_euclid(WINDOW_US);
    let matches = |a: &OpenAuction, t: i64| t >= a.start && t <= a.start + Q4_BOUND_US && t <= a.expires;
    let n = batches().len();
    for id in 0..=n {
        let ev = if id == n { END_US } else { wm_next };
        if let Some((a, b)) = batches().get(id) {
            let a_id = a.column_by_name("id").unwrap().as_primitive::<Int64Type>().values();
            let a_time = a.column_by_name("date_time").unwrap().as_primitive::<TimestampMicrosecondType>().values();
            let a_exp = a.column_by_name("expires").unwrap().as_primitive::<TimestampMicrosecondType>().values();
            let a_cat = a.column_by_name("category").unwrap().as_primitive::<Int64Type>().values();
            for i in 0..a.num_rows() {
                let t = a_time[i];
                max_a = max_a.max(t);
                if t <= wm_last {
                    continue;
                }
                let mut open = OpenAuction { start: t, expires: a_exp[i], category: a_cat[i], best: None };
                if let Some(bs) = bids.get(&a_id[i]) {
                    for &(bt, price) in bs {
                        if matches(&open, bt) {
                            open.best = Some(open.best.map_or(price, |m| m.max(price)));
                        }
                    }
                }
                auctions.insert(a_id[i], open);
            }
            let b_auction = b.column_by_name("auction").unwrap().as_primitive::<Int64Type>().values();
            let b_price = b.column_by_name("price").unwrap().as_primitive::<Int64Type>().values();
            let b_time = b.column_by_name("date_time").unwrap().as_primitive::<TimestampMicrosecondType>().values();
            // A bid can match an auction that starts at or before it: none to come once the
            // watermark passes it.
            let bid_wm = state_watermark(ev, 0);
            for i in 0..b.num_rows() {
                let t = b_time[i];
                max_b = max_b.max(t);
                if t <= wm_last {
                    continue;
                }
                if let Some(open) = auctions.get_mut(&b_auction[i]) {
                    if matches(open, t) {
                        open.best = Some(open.best.map_or(b_price[i], |m| m.max(b_price[i])));
                    }
                }
                if t > bid_wm {
                    bids.entry(b_auction[i]).or_default().push((t, b_price[i]));
                }
            }
        }
        let auction_wm = state_watermark(ev, Q4_BOUND_US);
        let bid_wm = state_watermark(ev, 0);
        auctions.retain(|_, a| {
            if a.start > auction_wm {
                return true;
            }
            if let Some(best) = a.best {
                let e = averages.entry((window(a.start), a.category)).or_insert((0.0, 0));
                e.0 += best as f64;
                e.1 += 1;
            }
            false
        });
        bids.retain(|_, bs| {
            bs.retain(|&(t, _)| t > bid_wm);
            !bs.is_empty()
        });
        let out_wm = ev.min(auction_wm).min(bid_wm);
        let (mut starts, mut ends, mut cats, mut avgs) =
            (timestamps(), timestamps(), Int64Builder::new(), Float64Builder::new());
        averages.retain(|&(w, c), &mut (sum, count)| {
            if w + WINDOW_US > out_wm {
                return true;
            }
            starts.append_value(w);
            ends.append_value(w + WINDOW_US);
            cats.append_value(c);
            avgs.append_value(sum / count as f64);
            false
        });
        let cols = vec![window_column(starts, ends), Arc::new(cats.finish()) as ArrayRef, Arc::new(avgs.finish())];
        out.push(RecordBatch::try_new(schema.clone(), cols).expect("batch"));
        let max = if max_a == i64::MIN || max_b == i64::MIN { i64::MIN } else { max_a.min(max_b) };
        (wm_last, wm_next) = (wm_next, next_watermark(wm_next, max));
    }
    Measured { elapsed: start.elapsed(), note: String::new(), result: canonical(&out) }
}

/// The hand-written q5: per sliding window (by start) a map auction → bids, each bid counted
/// in the five windows that hold it; a window whose end the watermark passed gives its
/// largest count and is dropped.
pub fn hand_q5(_events: usize) -> Measured {
    let start = Instant::now();
    let mut windows: HashMap<i64, HashMap<i64, i64, Hasher>, Hasher> = HashMap::with_hasher(Hasher::with_seed(1));
    let schema = Q5Row::schema();
    let (mut wm_last, mut wm_next) = (0i64, 0i64);
    let mut out = Vec::new();
    let n = batches().len();
    for id in 0..=n {
        let ev = if id == n { END_US } else { wm_next };
        let mut max_b = i64::MIN;
        if let Some((_, b)) = batches().get(id) {
            let b_auction = b.column_by_name("auction").unwrap().as_primitive::<Int64Type>().values();
            let b_time = b.column_by_name("date_time").unwrap().as_primitive::<TimestampMicrosecondType>().values();
            for i in 0..b.num_rows() {
                let t = b_time[i];
                max_b = max_b.max(t);
                // The newest window holding t starts at or before it; the others every slide back.
                let last = t - t.rem_euclid(SLIDE_US);
                let mut w = last;
                while w > t - WINDOW_US {
                    // A window already closed takes no more rows (Spark drops them as late).
                    if w + WINDOW_US > wm_last {
                        *windows
                            .entry(w)
                            .or_insert_with(|| HashMap::with_hasher(Hasher::with_seed(2)))
                            .entry(b_auction[i])
                            .or_insert(0) += 1;
                    }
                    w -= SLIDE_US;
                }
            }
        }
        let (mut starts, mut ends, mut maxes) = (timestamps(), timestamps(), Int64Builder::new());
        windows.retain(|&w, counts| {
            if w + WINDOW_US > ev {
                return true;
            }
            // The second aggregation's window: the last slide of this one.
            starts.append_value(w + WINDOW_US - SLIDE_US);
            ends.append_value(w + WINDOW_US);
            maxes.append_value(counts.values().copied().max().unwrap_or(0));
            false
        });
        let cols = vec![window_column(starts, ends), Arc::new(maxes.finish()) as ArrayRef];
        out.push(RecordBatch::try_new(schema.clone(), cols).expect("batch"));
        (wm_last, wm_next) = (wm_next, next_watermark(wm_next, max_b));
    }
    Measured { elapsed: start.elapsed(), note: String::new(), result: canonical(&out) }
}

/// The hand-written q7: per open 10-second window (by start) its highest price so far and the
/// bids at that price (a higher price starts the list again), each bid read once; a window
/// whose end the watermark passed gives its bids. Late bids (at or behind the last
/// watermark) are dropped, as the query's aggregation and join drop them.
pub fn hand_q7(_events: usize) -> Measured {
    let start = Instant::now();
    type Best = (i64, Vec<(i64, i64, i64)>);
    let mut windows: HashMap<i64, Best, Hasher> = HashMap::with_hasher(Hasher::with_seed(1));
    let schema = Q7Row::schema();
    let (mut wm_last, mut wm_next) = (0i64, 0i64);
    let mut out = Vec::new();
    let n = batches().len();
    for id in 0..=n {
        let ev = if id == n { END_US } else { wm_next };
        let mut max_b = i64::MIN;
        if let Some((_, b)) = batches().get(id) {
            let b_auction = b.column_by_name("auction").unwrap().as_primitive::<Int64Type>().values();
            let b_bidder = b.column_by_name("bidder").unwrap().as_primitive::<Int64Type>().values();
            let b_price = b.column_by_name("price").unwrap().as_primitive::<Int64Type>().values();
            let b_time = b.column_by_name("date_time").unwrap().as_primitive::<TimestampMicrosecondType>().values();
            for i in 0..b.num_rows() {
                let t = b_time[i];
                max_b = max_b.max(t);
                let w = t - t.rem_euclid(WINDOW_US);
                if w + WINDOW_US <= wm_last {
                    continue;
                }
                let price = b_price[i];
                let best = windows.entry(w).or_insert_with(|| (price, Vec::new()));
                if price > best.0 {
                    *best = (price, Vec::new());
                }
                if price == best.0 {
                    best.1.push((b_auction[i], b_bidder[i], t));
                }
            }
        }
        let (mut auction, mut price, mut bidder, mut time) =
            (Int64Builder::new(), Int64Builder::new(), Int64Builder::new(), timestamps());
        windows.retain(|&w, (p, bids)| {
            if w + WINDOW_US > ev {
                return true;
            }
            for &(a, b, t) in bids.iter() {
                auction.append_value(a);
                price.append_value(*p);
                bidder.append_value(b);
                time.append_value(t);
            }
            false
        });
        let cols: Vec<ArrayRef> = vec![
            Arc::new(auction.finish()),
            Arc::new(price.finish()),
            Arc::new(bidder.finish()),
            Arc::new(time.finish()),
        ];
        out.push(RecordBatch::try_new(schema.clone(), cols).expect("batch"));
        (wm_last, wm_next) = (wm_next, next_watermark(wm_next, max_b));
    }
    Measured { elapsed: start.elapsed(), note: String::new(), result: canonical(&out) }
}

/// One row of a q4, q5 or q7 result as `benches/spark/joins.py` prints it: tab-separated, a
/// window as its start and end, timestamps as µs, doubles with 4 decimals.
fn result_lines(batches: &[RecordBatch]) -> Vec<String> {
    use arrow_array::Array;
    fn cell(c: &dyn Array, i: usize, out: &mut Vec<String>) {
        if c.is_null(i) {
            out.push("None".into());
        } else if let Some(w) = c.as_struct_opt() {
            for f in w.columns() {
                cell(f.as_ref(), i, out);
            }
        } else if let Some(t) = c.as_primitive_opt::<TimestampMicrosecondType>() {
            out.push(t.value(i).to_string());
        } else if let Some(f) = c.as_primitive_opt::<arrow_array::types::Float64Type>() {
            out.push(format!("{:.4}", f.value(i)));
        } else {
            out.push(c.as_primitive::<Int64Type>().value(i).to_string());
        }
    }
    let mut lines = Vec::new();
    for b in batches {
        for i in 0..b.num_rows() {
            let mut cells = Vec::new();
            for c in b.columns() {
                cell(c.as_ref(), i, &mut cells);
            }
            lines.push(cells.join("\t"));
        }
    }
    lines.sort();
    lines
}

/// `joins-spark` for q4, q5 and q7: the same auctions and bids as JSON files, read by flowgate's
/// engine (two file sources, one file each per micro-batch, trigger available-now, memory
/// sink) and by Spark (`benches/spark/joins.py`), side by side; the results must agree row for
/// row.
pub fn spark_compare(events: usize, runs: usize, queries: &[&str]) {
    prepare(events);
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../target/bench-data")
        .join(format!("joins-bids-{events}"));
    let (adir, bdir) = (root.join("auction"), root.join("bid"));
    if !root.join("_done").exists() {
        let _ = std::fs::remove_dir_all(&root);
        let auctions: Vec<RecordBatch> = batches().iter().map(|(a, _)| a.clone()).collect();
        let bids: Vec<RecordBatch> = batches().iter().map(|(_, b)| b.clone()).collect();
        crate::files::write(&adir, crate::files::Encoding::Json, &auctions, auctions.len()).expect("write auctions");
        crate::files::write(&bdir, crate::files::Encoding::Json, &bids, bids.len()).expect("write bids");
        std::fs::write(root.join("_done"), "").expect("marker");
    }
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let python = crate::compare::spark_python();
    println!("{events} Nexmark events as JSON files ({} micro-batches of {EVENTS_PER_BATCH} events)", batches().len());
    println!("query  system      median s   events/s    rows   spark/flowgate");
    for &q in queries {
        let mut times = Vec::new();
        let mut result = Vec::new();
        for _ in 0..runs {
            let table = MemoryTable::new();
            let start = Instant::now();
            let auctions = || Source::file(&adir).json().max_files_per_trigger(1);
            let bids = || Source::file(&bdir).json().max_files_per_trigger(1);
            let query = match q {
                "q4" => Q4::builder()
                    .auctions(auctions())
                    .bids(bids())
                    .sink(Sink::memory(&table))
                    .trigger(Trigger::available_now())
                    .start(),
                "q5" => Q5::builder().bids(bids()).sink(Sink::memory(&table)).trigger(Trigger::available_now()).start(),
                "q7" => Q7::builder()
                    .maxes(bids())
                    .bids(bids())
                    .sink(Sink::memory(&table))
                    .trigger(Trigger::available_now())
                    .start(),
                other => panic!("no query {other} over auctions and bids"),
            }
            .expect("start");
            query.await_termination().expect("run");
            times.push(start.elapsed().as_secs_f64());
            let out: Vec<RecordBatch> = table.history().into_iter().map(|(_, b)| b).collect();
            result = result_lines(&out);
        }
        let fg = median(times);
        println!("{q}     flowgate    {fg:8.3}   {:9.3e}  {:7}", events as f64 / fg, result.len());
        match &python {
            Err(why) => println!("{q}     spark       skipped: {why}"),
            Ok(py) => {
                let Some(v) = crate::joins::run_spark_join(py, q, runs, &[("--auctions", &adir), ("--bids", &bdir)])
                else {
                    continue;
                };
                let sp = median(v["elapsed_s"].as_array().unwrap().iter().filter_map(|x| x.as_f64()).collect());
                let spark: Vec<String> = v["result"]
                    .as_array()
                    .map(|a| a.iter().filter_map(|x| x.as_str().map(str::to_string)).collect())
                    .unwrap_or_default();
                if spark != result {
                    let first = spark.iter().zip(&result).position(|(a, b)| a != b);
                    println!(
                        "{q}     spark       DISAGREE: {} rows against flowgate's {}; first difference {:?}",
                        spark.len(),
                        result.len(),
                        first.map(|i| (&spark[i], &result[i]))
                    );
                    continue;
                }
                println!(
                    "{q}     spark       {sp:8.3}   {:9.3e}  {:7}   {:.1}x (agree row for row; Spark's fixed cost of a query: {:.2} s)",
                    events as f64 / sp,
                    spark.len(),
                    sp / fg,
                    v["empty_s"].as_f64().unwrap_or(0.0)
                );
            }
        }
    }
}
