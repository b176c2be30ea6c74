//! Nexmark (the streaming benchmark of Tucker et al., as Flink's and Spark's ports run it):
//! the event generator ([`generator`]: persons, auctions and bids with the reference's
//! proportions and parameters), and the bid queries (q0 pass-through, q1 currency conversion,
//! q2 selection, q11 user sessions, q14 calculation, q17 auction statistics, q21 channel id,
//! q22 split) as flowgate queries beside hand-written loops.

use std::sync::{Arc, OnceLock};
use std::time::Instant;

use arrow_array::builder::{Float64Builder, Int64Builder, StringBuilder, TimestampMicrosecondBuilder};
use arrow_array::cast::AsArray;
use arrow_array::types::{Int64Type, TimestampMicrosecondType};
use arrow_array::{ArrayRef, RecordBatch};
use flowgate::engine::{BatchContext, PlanConfig};
use flowgate::prelude::*;

use crate::Measured;

pub mod generator;

pub use generator::Bid;
use generator::{Generator, Kind, DEFAULT_SEED};

/// The bids among the first `events` Nexmark events, in event order.
#[allow(dead_code, reason = "rows for tests and ad-hoc checks; the benchmarks read `bid_batches`")]
pub fn bids(events: u64) -> Vec<Bid> {
    Generator::new(DEFAULT_SEED).bids(events)
}

/// The first `rows` bids (the benchmark's input for `--rows rows`).
#[allow(dead_code, reason = "rows for tests and ad-hoc checks; the benchmarks read `bid_batches`")]
pub fn bid_rows(rows: usize) -> Vec<Bid> {
    bids(generator::events_for_bids(rows as u64))
}

static BIDS: OnceLock<Vec<RecordBatch>> = OnceLock::new();

/// The first `rows` bids ([`bid_rows`]) as Arrow batches of [`crate::data::BATCH_ROWS`] (one micro-batch
/// each where a query keeps state across batches).
pub fn bid_batches(rows: usize) -> Vec<RecordBatch> {
    Generator::new(DEFAULT_SEED).batches(Kind::Bid, generator::events_for_bids(rows as u64))
}

/// Generates the bids of [`bid_batches`] once.
pub fn prepare(rows: usize) {
    BIDS.get_or_init(|| bid_batches(rows));
}

fn input() -> Vec<RecordBatch> {
    BIDS.get().expect("prepared").clone()
}

fn run_plan(spec: flowgate::engine::QuerySpec) -> Measured {
    let input = input();
    let start = Instant::now();
    let mut plan = (spec.make_plan)(&PlanConfig::with_partitions(rayon::current_num_threads().max(2)));
    let out = plan.run_batch(&BatchContext::new(0, OutputMode::Append), &[input]).expect("run");
    Measured { elapsed: start.elapsed(), result: crate::workloads::canonical(&out), note: String::new() }
}

/// Runs `f` over the input in parallel, keeping order: each batch is cut into zero-copy slices
/// of [`HAND_CHUNK`] rows (Arrow's `slice`), so both cores have work whatever the batch size
/// (cutting per 1 Mi-row batch would give two tasks at 2 M rows), and the slices' outputs are
/// kept as they are (a sink takes batches; concatenating them would be a copy the engine does
/// not make either).
fn hand(f: impl Fn(&RecordBatch) -> RecordBatch + Sync) -> Measured {
    use rayon::prelude::*;
    let input = BIDS.get().expect("prepared");
    let start = Instant::now();
    let slices: Vec<RecordBatch> = input
        .iter()
        .flat_map(|b| (0..b.num_rows()).step_by(HAND_CHUNK).map(move |s| b.slice(s, HAND_CHUNK.min(b.num_rows() - s))))
        .collect();
    let out: Vec<RecordBatch> = slices.par_iter().map(&f).collect();
    Measured { elapsed: start.elapsed(), result: crate::workloads::canonical(&out), note: String::new() }
}

/// Rows per parallel unit of the stateless hand loops: 64 Ki rows is about 1 ms of per-row work
/// here (the engine's `exec::CHUNK_ROWS` came from the same measurement) — long enough that
/// rayon's per-task cost is noise, short enough that 2 M rows make 32 tasks.
const HAND_CHUNK: usize = 1 << 16;

// ------------------------------------------------------------------ q0: pass-through

stream_query! {
    pub(crate) query Q0(bids: Bid) -> Bid, mode = append {
        bids
    }
}

pub fn fg_q0(_rows: usize) -> Measured {
    run_plan(Q0::spec())
}

pub fn hand_q0(_rows: usize) -> Measured {
    hand(|b| b.clone())
}

// ------------------------------------------------------------------ q1: currency conversion

#[derive(Record)]
struct Q1Row {
    auction: i64,
    bidder: i64,
    price: f64,
    date_time: Timestamp,
}

/// Dollars to euros, Nexmark's constant.
const EUROS_PER_DOLLAR: f64 = 0.908;

stream_query! {
    pub(crate) query Q1(bids: Bid) -> Q1Row, mode = append {
        bids.select(auction, bidder, price = EUROS_PER_DOLLAR * price as f64, date_time)
    }
}

pub fn fg_q1(_rows: usize) -> Measured {
    run_plan(Q1::spec())
}

pub fn hand_q1(_rows: usize) -> Measured {
    hand(|b| {
        let n = b.num_rows();
        let price = b.column(2).as_primitive::<Int64Type>();
        let mut p = Float64Builder::with_capacity(n);
        for i in 0..n {
            p.append_value(EUROS_PER_DOLLAR * price.value(i) as f64);
        }
        RecordBatch::try_new(
            Q1Row::schema(),
            vec![b.column(0).clone(), b.column(1).clone(), Arc::new(p.finish()) as ArrayRef, b.column(5).clone()],
        )
        .expect("batch")
    })
}

// ------------------------------------------------------------------ q2: selection

#[derive(Record)]
struct Q2Row {
    auction: i64,
    price: i64,
}

stream_query! {
    pub(crate) query Q2(bids: Bid) -> Q2Row, mode = append {
        bids.filter(auction % 123 == 0).select(auction, price)
    }
}

pub fn fg_q2(_rows: usize) -> Measured {
    run_plan(Q2::spec())
}

pub fn hand_q2(_rows: usize) -> Measured {
    hand(|b| {
        let auction = b.column(0).as_primitive::<Int64Type>();
        let price = b.column(2).as_primitive::<Int64Type>();
        let (mut a, mut p) = (Int64Builder::new(), Int64Builder::new());
        for i in 0..b.num_rows() {
            if auction.value(i) % 123 == 0 {
                a.append_value(auction.value(i));
                p.append_value(price.value(i));
            }
        }
        RecordBatch::try_new(Q2Row::schema(), vec![Arc::new(a.finish()) as ArrayRef, Arc::new(p.finish())])
            .expect("batch")
    })
}

// ------------------------------------------------------------------ q14: calculation

#[derive(Record)]
struct Q14Row {
    auction: i64,
    bidder: i64,
    price: f64,
    bid_time_type: String,
    date_time: Timestamp,
    extra: String,
    c_counts: i64,
}

fn bid_time_type(t: Timestamp) -> &'static str {
    let hour = t.0.div_euclid(3_600_000_000).rem_euclid(24);
    if (8..=18).contains(&hour) {
        "dayTime"
    } else if hour <= 6 || hour >= 20 {
        "nightTime"
    } else {
        "otherTime"
    }
}

stream_query! {
    pub(crate) query Q14(bids: Bid) -> Q14Row, mode = append {
        bids
            .with_column(euros = EUROS_PER_DOLLAR * price as f64)
            .filter(euros > 1_000_000.0 && euros < 50_000_000.0)
            .select(
                auction,
                bidder,
                price = euros,
                bid_time_type = bid_time_type(date_time),
                date_time,
                extra,
                c_counts = extra.bytes().filter(|b| *b == b'c').count() as i64,
            )
    }
}

pub fn fg_q14(_rows: usize) -> Measured {
    run_plan(Q14::spec())
}

pub fn hand_q14(_rows: usize) -> Measured {
    hand(|b| {
        let auction = b.column(0).as_primitive::<Int64Type>();
        let bidder = b.column(1).as_primitive::<Int64Type>();
        let price = b.column(2).as_primitive::<Int64Type>();
        let ts = b.column(5).as_primitive::<TimestampMicrosecondType>();
        let extra = b.column(6).as_string::<i32>();
        let (mut a, mut bi, mut p) = (Int64Builder::new(), Int64Builder::new(), Float64Builder::new());
        let (mut tt, mut e, mut c) = (StringBuilder::new(), StringBuilder::new(), Int64Builder::new());
        let mut d = TimestampMicrosecondBuilder::new().with_timezone("UTC");
        for i in 0..b.num_rows() {
            let euros = EUROS_PER_DOLLAR * price.value(i) as f64;
            if euros > 1_000_000.0 && euros < 50_000_000.0 {
                a.append_value(auction.value(i));
                bi.append_value(bidder.value(i));
                p.append_value(euros);
                tt.append_value(bid_time_type(Timestamp(ts.value(i))));
                d.append_value(ts.value(i));
                e.append_value(extra.value(i));
                c.append_value(extra.value(i).bytes().filter(|b| *b == b'c').count() as i64);
            }
        }
        let cols: Vec<ArrayRef> = vec![
            Arc::new(a.finish()),
            Arc::new(bi.finish()),
            Arc::new(p.finish()),
            Arc::new(tt.finish()),
            Arc::new(d.finish()),
            Arc::new(e.finish()),
            Arc::new(c.finish()),
        ];
        RecordBatch::try_new(Q14Row::schema(), cols).expect("batch")
    })
}

// ------------------------------------------------------------------ q22: split

#[derive(Record)]
struct Q22Row {
    auction: i64,
    bidder: i64,
    price: i64,
    channel: String,
    dir1: Option<String>,
    dir2: Option<String>,
    dir3: Option<String>,
}

/// The parts 3, 4 and 5 of `url` split at `/`: Spark's `split(url, '/')` indexed three
/// times, which Spark computes once per row (subexpression elimination), so the query splits
/// once too.
fn url_dirs(url: &str) -> [Option<&str>; 3] {
    let mut parts = url.split('/').skip(3);
    [parts.next(), parts.next(), parts.next()]
}

stream_query! {
    pub(crate) query Q22(bids: Bid) -> Q22Row, mode = append {
        bids.with_column(dirs = url_dirs(url)).select(
            auction,
            bidder,
            price,
            channel,
            dir1 = dirs[0],
            dir2 = dirs[1],
            dir3 = dirs[2],
        )
    }
}

pub fn fg_q22(_rows: usize) -> Measured {
    run_plan(Q22::spec())
}

pub fn hand_q22(_rows: usize) -> Measured {
    hand(|b| {
        let url = b.column(4).as_string::<i32>();
        let mut dirs = [StringBuilder::new(), StringBuilder::new(), StringBuilder::new()];
        for i in 0..b.num_rows() {
            let mut parts = url.value(i).split('/').skip(3);
            for d in dirs.iter_mut() {
                d.append_option(parts.next());
            }
        }
        let [d1, d2, d3] = dirs.map(|mut d| Arc::new(d.finish()) as ArrayRef);
        RecordBatch::try_new(
            Q22Row::schema(),
            vec![b.column(0).clone(), b.column(1).clone(), b.column(2).clone(), b.column(3).clone(), d1, d2, d3],
        )
        .expect("batch")
    })
}

/// Runs `spec` as the engine runs a query with a watermark over the input: one micro-batch per
/// input batch, late input judged by the previous batch's watermark and state evicted by this
/// batch's, the watermark after a batch `max(current, max event time − delay)`, and a final
/// no-data batch that closes what the last watermark allows (Spark runs one too when the
/// watermark moved).
fn run_plan_with_watermark(spec: flowgate::engine::QuerySpec) -> Measured {
    let input = BIDS.get().expect("prepared");
    let start = Instant::now();
    let mut plan = (spec.make_plan)(&PlanConfig::with_partitions(rayon::current_num_threads().max(2)));
    let (mut wm_last, mut wm_next) = (0i64, 0i64);
    let mut out = Vec::new();
    let batches = input.iter().map(|b| vec![b.clone()]).chain(std::iter::once(Vec::new()));
    for (id, batch) in batches.enumerate() {
        let ctx = BatchContext {
            watermark_for_late: Some(wm_last),
            watermark_for_eviction: Some(wm_next),
            ..BatchContext::new(id as u64, OutputMode::Append)
        };
        out.extend(plan.run_batch(&ctx, &[batch]).expect("run"));
        let next = plan.watermarks().candidate().map_or(wm_next, |c| c.max(wm_next));
        wm_last = wm_next;
        wm_next = next;
    }
    Measured { elapsed: start.elapsed(), result: crate::workloads::canonical(&out), note: String::new() }
}

use crate::workloads::{new_map, Hasher};

// ------------------------------------------------------------------ q11: user sessions

/// q11's session gap and watermark delay in µs (as in the query).
const Q11_GAP_US: i64 = 10_000_000;
const Q11_DELAY_US: i64 = 4_000_000;

#[derive(Record)]
struct Q11Row {
    bidder: i64,
    bid_count: i64,
    starttime: Timestamp,
    endtime: Timestamp,
}

stream_query! {
    pub(crate) query Q11(bids: Bid) -> Q11Row, mode = append {
        bids
            .with_watermark(date_time, "4 seconds")
            .group_by(session_window(date_time, "10 seconds"), bidder)
            .agg(count() as bid_count)
            .select(bidder, bid_count, starttime = session_window.start, endtime = session_window.end)
    }
}

/// Nexmark q11, user sessions: bids per bidder per session (a session ends after 10 s of event
/// time without a bid by that bidder), emitted once closed by the watermark (append mode).
///
/// The gap is Nexmark's 10 s and means something here: a bidder bids while it is among the
/// 1 000 active people (about 5 s of event time at 10 000 events/s), a cold bidder every ~0.4 s
/// on average (the hot bidder of each block of 100 people, 3 bids in 4, for 0.5 s), so each
/// bidder's bids form one session of a few seconds that closes 10 s after its last bid (about
/// 180 sessions close per second of event time; 2 M bids make ~40 000).
/// The watermark delay is Nexmark's 4 s (`WATERMARK FOR dateTime AS dateTime - INTERVAL '4'
/// SECOND`). A session's end is its last bid + gap (Spark's `session_window`; Flink's
/// `SESSION_END` is the same). Sessions still open after the input are not emitted.
///
/// Spark (pyspark, over the `compare` harness's input files, `benches/spark/run.py`):
///
/// ```text
/// from pyspark.sql import functions as F
/// q11 = (bids.withWatermark("date_time", "4 seconds")
///        .groupBy(F.session_window("date_time", "10 seconds"), "bidder")
///        .agg(F.count("*").alias("bid_count"))
///        .select("bidder", "bid_count",
///                F.col("session_window.start").alias("starttime"),
///                F.col("session_window.end").alias("endtime")))
/// q11.writeStream.outputMode("append") ...   # the run ends with a no-data batch
/// ```
///
/// The watermark is in whole milliseconds, as Spark keeps it (the maximum event time is
/// truncated to a millisecond before the delay is subtracted), in the engine and in the hand
/// loop alike.
pub fn fg_q11(_rows: usize) -> Measured {
    run_plan_with_watermark(Q11::spec())
}

/// One session of the hand-written q11: first bid, last bid + gap, bids.
#[derive(Clone, Copy)]
struct HandSession {
    start: i64,
    end: i64,
    count: i64,
}

/// Adds a bid at `t` to a bidder's sessions (sorted by start, disjoint): extends the last one
/// if `t` is within it (its end inclusive), starts a new one after it, or (out of order)
/// inserts and merges every pair that now touches.
fn add_to_sessions(sessions: &mut Vec<HandSession>, t: i64) {
    let fresh = HandSession { start: t, end: t + Q11_GAP_US, count: 1 };
    match sessions.last_mut() {
        Some(s) if t >= s.start && t <= s.end => {
            s.end = s.end.max(t + Q11_GAP_US);
            s.count += 1;
        }
        Some(s) if t > s.end => sessions.push(fresh),
        None => sessions.push(fresh),
        Some(_) => {
            sessions.push(fresh);
            sessions.sort_unstable_by_key(|s| s.start);
            let mut merged: Vec<HandSession> = Vec::with_capacity(sessions.len());
            for s in sessions.drain(..) {
                match merged.last_mut() {
                    Some(m) if s.start <= m.end => {
                        m.end = m.end.max(s.end);
                        m.count += s.count;
                    }
                    _ => merged.push(s),
                }
            }
            *sessions = merged;
        }
    }
}

type SessionMap = hashbrown::HashMap<i64, Vec<HandSession>, Hasher>;

pub fn hand_q11(_rows: usize) -> Measured {
    use rayon::prelude::*;
    use std::hash::BuildHasher;
    let input = BIDS.get().expect("prepared");
    let start = Instant::now();
    // Bidders are split over one state map per thread by hash; each thread reads every row and
    // takes its own bidders.
    let parts = rayon::current_num_threads().max(1);
    let part_hasher = Hasher::with_seed(7);
    let part_of = |b: i64| if parts == 1 { 0 } else { (part_hasher.hash_one(b) % parts as u64) as usize };
    let mut states: Vec<SessionMap> = (0..parts).map(|_| new_map()).collect();
    let (mut wm_last, mut wm_next) = (0i64, 0i64);
    let mut closed: Vec<(i64, HandSession)> = Vec::new();
    let empty: &[RecordBatch] = &[];
    for batch in input.iter().map(std::slice::from_ref).chain(std::iter::once(empty)) {
        let cols: Vec<(&[i64], &[i64])> = batch
            .iter()
            .map(|b| {
                (
                    b.column(1).as_primitive::<Int64Type>().values().as_ref(),
                    b.column(5).as_primitive::<TimestampMicrosecondType>().values().as_ref(),
                )
            })
            .collect();
        let (late, evict) = (wm_last, wm_next);
        let per_part: Vec<Vec<(i64, HandSession)>> = states
            .par_iter_mut()
            .enumerate()
            .map(|(p, map)| {
                for (bidders, ts) in &cols {
                    for (&b, &t) in bidders.iter().zip(ts.iter()) {
                        // Late: the bid's own session [t, t + gap) is behind the watermark.
                        if part_of(b) != p || t + Q11_GAP_US <= late {
                            continue;
                        }
                        add_to_sessions(map.entry(b).or_default(), t);
                    }
                }
                let mut out = Vec::new();
                map.retain(|b, sessions| {
                    if sessions.iter().any(|s| s.end <= evict) {
                        sessions.retain(|s| {
                            let close = s.end <= evict;
                            if close {
                                out.push((*b, *s));
                            }
                            !close
                        });
                    }
                    !sessions.is_empty()
                });
                out
            })
            .collect();
        closed.extend(per_part.into_iter().flatten());
        let max_ts = cols.iter().filter_map(|(_, ts)| ts.iter().max().copied()).max();
        // The engine's watermark, as Spark keeps it: whole milliseconds, the maximum event time
        // truncated to a millisecond before the delay is subtracted.
        let next = max_ts.map_or(wm_next, |m| (m.div_euclid(1000) * 1000 - Q11_DELAY_US).max(wm_next));
        wm_last = wm_next;
        wm_next = next;
    }
    let n = closed.len();
    let (mut bidder, mut count) = (Int64Builder::with_capacity(n), Int64Builder::with_capacity(n));
    let mut st = TimestampMicrosecondBuilder::with_capacity(n).with_timezone("UTC");
    let mut en = TimestampMicrosecondBuilder::with_capacity(n).with_timezone("UTC");
    for (b, s) in &closed {
        bidder.append_value(*b);
        count.append_value(s.count);
        st.append_value(s.start);
        en.append_value(s.end);
    }
    let out = RecordBatch::try_new(
        Q11Row::schema(),
        vec![
            Arc::new(bidder.finish()) as ArrayRef,
            Arc::new(count.finish()),
            Arc::new(st.finish()),
            Arc::new(en.finish()),
        ],
    )
    .expect("batch");
    Measured { elapsed: start.elapsed(), result: crate::workloads::canonical(&[out]), note: format!("{n} sessions") }
}

// ------------------------------------------------------------------ q17: auction statistics per day

const DAY_US: i64 = 86_400_000_000;

/// The UTC calendar day of an event time.
fn utc_day(t: Timestamp) -> Date {
    Date(t.0.div_euclid(DAY_US) as i32)
}

#[derive(Record)]
struct Q17Row {
    auction: i64,
    day: String,
    total_bids: i64,
    rank1_bids: i64,
    rank2_bids: i64,
    rank3_bids: i64,
    min_price: i64,
    max_price: i64,
    avg_price: f64,
    sum_price: i64,
}

stream_query! {
    pub(crate) query Q17(bids: Bid) -> Q17Row, mode = complete {
        bids
            .group_by(auction, day = utc_day(date_time))
            .agg(
                count() as total_bids,
                sum(i64::from(price < 10_000)) as rank1_bids,
                sum(i64::from(price >= 10_000 && price < 1_000_000)) as rank2_bids,
                sum(i64::from(price >= 1_000_000)) as rank3_bids,
                min(price) as min_price,
                max(price) as max_price,
                avg(price) as avg_price,
                sum(price) as sum_price
            )
            .select(
                auction,
                day = day.to_string(),
                total_bids,
                rank1_bids,
                rank2_bids,
                rank3_bids,
                min_price,
                max_price,
                avg_price,
                sum_price,
            )
    }
}

/// Nexmark q17, auction statistics per day: per auction and UTC day (`yyyy-MM-dd`), the bids,
/// the bids in three price ranks, and min/max/avg/sum of the price, in complete mode (the
/// whole result table after the input; Nexmark/Flink emit the same table as an updating
/// result).
///
/// The DSL has no `date_format`: the group key is the day as a `Date` (a plain Rust function
/// of `date_time`, the UTC day) and is formatted `yyyy-MM-dd` after the aggregation, which
/// gives the same groups and strings as Spark's `date_format(date_time, 'yyyy-MM-dd')` in UTC
/// without formatting a string per bid. The rank counts are `sum` of a 0/1 value (Spark's
/// `count_if`; the DSL has no `count_if` or `FILTER`). `avg_price` is a double, as Spark's
/// `avg` (Flink's Nexmark text yields a BIGINT there); sums of these prices are exact in a
/// double, so Spark's double-accumulated average and flowgate's `sum as f64 / count` agree bit
/// for bit. (All generated bids fall on one day, 2024-01-01, for any `--rows` up to ~4 × 10⁸.)
///
/// Spark SQL (session time zone UTC; `bids` the streaming view of the compare harness's
/// files), output mode complete:
///
/// ```text
/// SELECT auction,
///        date_format(date_time, 'yyyy-MM-dd') AS day,
///        count(*) AS total_bids,
///        count_if(price < 10000) AS rank1_bids,
///        count_if(price >= 10000 AND price < 1000000) AS rank2_bids,
///        count_if(price >= 1000000) AS rank3_bids,
///        min(price) AS min_price,
///        max(price) AS max_price,
///        avg(price) AS avg_price,
///        sum(price) AS sum_price
/// FROM bids
/// GROUP BY auction, date_format(date_time, 'yyyy-MM-dd')
/// ```
pub fn fg_q17(_rows: usize) -> Measured {
    let input = input();
    let start = Instant::now();
    let mut plan = (Q17::spec().make_plan)(&PlanConfig::with_partitions(rayon::current_num_threads().max(2)));
    let out = plan.run_batch(&BatchContext::new(0, OutputMode::Complete), &[input]).expect("run");
    Measured { elapsed: start.elapsed(), result: crate::workloads::canonical(&out), note: String::new() }
}

/// q17's accumulators: count, the three rank counts, min, max, sum.
#[derive(Clone, Copy)]
struct AuctionDay {
    count: i64,
    ranks: [i64; 3],
    min: i64,
    max: i64,
    sum: i64,
}

impl AuctionDay {
    fn new() -> Self {
        AuctionDay { count: 0, ranks: [0; 3], min: i64::MAX, max: i64::MIN, sum: 0 }
    }
    #[inline]
    fn add(&mut self, price: i64) {
        self.count += 1;
        self.ranks[if price < 10_000 {
            0
        } else if price < 1_000_000 {
            1
        } else {
            2
        }] += 1;
        self.min = self.min.min(price);
        self.max = self.max.max(price);
        self.sum = self.sum.wrapping_add(price);
    }
    fn merge(&mut self, o: &AuctionDay) {
        self.count += o.count;
        for (a, b) in self.ranks.iter_mut().zip(o.ranks) {
            *a += b;
        }
        self.min = self.min.min(o.min);
        self.max = self.max.max(o.max);
        self.sum = self.sum.wrapping_add(o.sum);
    }
}

type AuctionDayMap = hashbrown::HashMap<(i64, i32), AuctionDay, Hasher>;

fn q17_chunk(b: &RecordBatch, range: std::ops::Range<usize>, map: &mut AuctionDayMap) {
    let auction = b.column(0).as_primitive::<Int64Type>().values();
    let price = b.column(2).as_primitive::<Int64Type>().values();
    let ts = b.column(5).as_primitive::<TimestampMicrosecondType>().values();
    for i in range {
        let key = (auction[i], ts[i].div_euclid(DAY_US) as i32);
        map.entry(key).or_insert_with(AuctionDay::new).add(price[i]);
    }
}

pub fn hand_q17(_rows: usize) -> Measured {
    const CHUNK: usize = flowgate::exec::CHUNK_ROWS;
    let input = BIDS.get().expect("prepared");
    let start = Instant::now();
    let map = crate::workloads::fold_units(input, CHUNK, q17_chunk, |a, b| {
        for (k, v) in b {
            a.entry(k).or_insert_with(AuctionDay::new).merge(&v);
        }
    });
    let n = map.len();
    let mut auction = Int64Builder::with_capacity(n);
    let mut day = StringBuilder::with_capacity(n, n * 10);
    let mut ints: [Int64Builder; 7] = std::array::from_fn(|_| Int64Builder::with_capacity(n));
    let mut avg = Float64Builder::with_capacity(n);
    for ((a, d), acc) in &map {
        auction.append_value(*a);
        day.append_value(Date(*d).to_string());
        for (builder, v) in ints.iter_mut().zip([acc.count, acc.ranks[0], acc.ranks[1], acc.ranks[2], acc.min, acc.max])
        {
            builder.append_value(v);
        }
        avg.append_value(acc.sum as f64 / acc.count as f64);
        ints[6].append_value(acc.sum);
    }
    let [count, r1, r2, r3, min, max, sum] = ints.map(|mut b| Arc::new(b.finish()) as ArrayRef);
    let cols: Vec<ArrayRef> = vec![
        Arc::new(auction.finish()),
        Arc::new(day.finish()),
        count,
        r1,
        r2,
        r3,
        min,
        max,
        Arc::new(avg.finish()),
        sum,
    ];
    let out = RecordBatch::try_new(Q17Row::schema(), cols).expect("batch");
    Measured { elapsed: start.elapsed(), result: crate::workloads::canonical(&[out]), note: format!("{n} groups") }
}

// ------------------------------------------------------------------ q21: add channel id

#[derive(Record)]
struct Q21Row {
    auction: i64,
    bidder: i64,
    price: i64,
    channel: String,
    channel_id: String,
}

/// The hot channels' ids, by lower-case name.
const HOT_CHANNEL_IDS: [(&str, &str); 4] = [("apple", "0"), ("google", "1"), ("facebook", "2"), ("baidu", "3")];

/// The id of a hot channel, matched as `lower(channel) = name` (ASCII names compared without
/// allocating; others lower-cased in full, so e.g. the Kelvin sign matches `k` as in Spark).
fn hot_channel_id(channel: &str) -> Option<&'static str> {
    if channel.is_ascii() {
        HOT_CHANNEL_IDS.iter().find(|(name, _)| channel.eq_ignore_ascii_case(name)).map(|(_, id)| *id)
    } else {
        let lower = channel.to_lowercase();
        HOT_CHANNEL_IDS.iter().find(|(name, _)| lower == *name).map(|(_, id)| *id)
    }
}

/// Spark's `regexp_extract(url, '(&|^)channel_id=([^&]*)', 2)`, but `None` where the pattern
/// does not match (Flink's `REGEXP_EXTRACT`; Spark returns `''` there): the value after the
/// first `channel_id=` at the start of `url` or after a `&`, up to the next `&`.
fn url_channel_id(url: &str) -> Option<&str> {
    const KEY: &str = "channel_id=";
    let mut from = 0;
    while let Some(i) = url[from..].find(KEY) {
        let at = from + i;
        if at == 0 || url.as_bytes()[at - 1] == b'&' {
            let rest = &url[at + KEY.len()..];
            return Some(&rest[..rest.find('&').unwrap_or(rest.len())]);
        }
        from = at + 1;
    }
    None
}

/// q21's `CASE`: a hot channel's id, else the url's `channel_id` parameter.
fn q21_channel_id<'a>(channel: &str, url: &'a str) -> Option<&'a str> {
    hot_channel_id(channel).or_else(|| url_channel_id(url))
}

stream_query! {
    pub(crate) query Q21(bids: Bid) -> Q21Row, mode = append {
        bids
            .with_column(channel_id = q21_channel_id(channel, url))
            .filter(channel_id.is_some())
            .select(auction, bidder, price, channel, channel_id = channel_id.unwrap_or_default())
    }
}

/// Nexmark q21, add channel id: `channel_id` is `'0'`/`'1'`/`'2'`/`'3'` for the channels
/// apple/google/facebook/baidu (any case), else the url's `channel_id` query parameter; bids
/// with neither are dropped.
///
/// Semantics follow Flink's Nexmark q21 text exactly: its `REGEXP_EXTRACT` is NULL when the
/// pattern does not match, and its `WHERE` keeps a bid when the extract is not NULL or the
/// channel is a hot one. So a bid is dropped exactly when its channel is not hot and its url
/// has no `channel_id=` parameter (at the start or after `&`); an empty parameter value
/// (`…&channel_id=&…`) would be kept as `''` (the generator never writes one: ~1 in 10 of the
/// cold channels' urls have no parameter, none has an empty one). Spark's `regexp_extract`
/// returns `''` instead of NULL on no match, so the Spark text tests the match with `RLIKE`
/// (Java `find`, the same leftmost search); `WHERE channel_id <> ''` would give the same rows on
/// this data.
///
/// Spark SQL (`bids` the streaming view of the `compare` harness's input files (`compare.rs`)), output mode append:
///
/// ```text
/// SELECT auction, bidder, price, channel,
///        CASE
///            WHEN lower(channel) = 'apple' THEN '0'
///            WHEN lower(channel) = 'google' THEN '1'
///            WHEN lower(channel) = 'facebook' THEN '2'
///            WHEN lower(channel) = 'baidu' THEN '3'
///            ELSE regexp_extract(url, '(&|^)channel_id=([^&]*)', 2)
///        END AS channel_id
/// FROM bids
/// WHERE lower(channel) IN ('apple', 'google', 'facebook', 'baidu')
///    OR url RLIKE '(&|^)channel_id=([^&]*)'
/// ```
pub fn fg_q21(_rows: usize) -> Measured {
    run_plan(Q21::spec())
}

/// The hand-written q21, written from the SQL text on its own (it shares no code with the
/// query's `q21_channel_id`, so their agreement checks both): `lower(channel)` compared with
/// the four names (ASCII channels byte by byte, others lower-cased as Spark's `lower` does),
/// else the first `&`-separated part of the url that starts with `channel_id=` (the regex
/// `(&|^)channel_id=([^&]*)`: a match starts at the url's start or right after a `&`, and the
/// leftmost such part is the leftmost match).
pub fn hand_q21(_rows: usize) -> Measured {
    fn hot(channel: &str) -> Option<&'static str> {
        let id = |lower: &str| match lower {
            "apple" => Some("0"),
            "google" => Some("1"),
            "facebook" => Some("2"),
            "baidu" => Some("3"),
            _ => None,
        };
        if !channel.is_ascii() {
            return id(&channel.to_lowercase());
        }
        let mut buf = [0u8; 8];
        let bytes = channel.as_bytes();
        if bytes.len() > buf.len() {
            return None;
        }
        for (b, c) in buf.iter_mut().zip(bytes) {
            *b = c.to_ascii_lowercase();
        }
        id(std::str::from_utf8(&buf[..bytes.len()]).ok()?)
    }
    fn param(url: &str) -> Option<&str> {
        url.split('&').find_map(|part| part.strip_prefix("channel_id="))
    }
    hand(|b| {
        let n = b.num_rows();
        let auction = b.column(0).as_primitive::<Int64Type>().values();
        let bidder = b.column(1).as_primitive::<Int64Type>().values();
        let price = b.column(2).as_primitive::<Int64Type>().values();
        let channel = b.column(3).as_string::<i32>();
        let url = b.column(4).as_string::<i32>();
        let (mut a, mut bi, mut p) =
            (Int64Builder::with_capacity(n), Int64Builder::with_capacity(n), Int64Builder::with_capacity(n));
        let (mut ch, mut id) = (StringBuilder::with_capacity(n, n * 8), StringBuilder::with_capacity(n, n * 8));
        for i in 0..n {
            let c = channel.value(i);
            let Some(cid) = hot(c).or_else(|| param(url.value(i))) else { continue };
            a.append_value(auction[i]);
            bi.append_value(bidder[i]);
            p.append_value(price[i]);
            ch.append_value(c);
            id.append_value(cid);
        }
        let cols: Vec<ArrayRef> = vec![
            Arc::new(a.finish()),
            Arc::new(bi.finish()),
            Arc::new(p.finish()),
            Arc::new(ch.finish()),
            Arc::new(id.finish()),
        ];
        RecordBatch::try_new(Q21Row::schema(), cols).expect("batch")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bids_follow_nexmark_proportions_and_ranges() {
        let b = bids(5_000);
        assert_eq!(b.len(), 5_000 / 50 * 46);
        assert!(b.iter().all(|x| x.auction >= 1000 && x.bidder >= 1000));
        assert!(b.iter().all(|x| (100..=100_000_000).contains(&x.price)));
        assert!(b.iter().any(|x| generator::HOT_CHANNELS.contains(&x.channel.as_str())));
        assert!(b.iter().any(|x| x.url.contains("channel_id=")));
        assert!(b.windows(2).all(|w| w[0].date_time <= w[1].date_time));
    }

    /// Enough bids (~33 s of event time) that q11's sessions close before the end.
    const ROWS: usize = 300_000;

    #[test]
    fn q21_channel_ids_follow_flink_regexp_extract_and_case() {
        let u = "https://www.nexmark.com/a/b/c/item.htm?query=1&channel_id=42";
        assert_eq!(url_channel_id(u), Some("42"));
        assert_eq!(url_channel_id("channel_id=7&x=1"), Some("7"));
        assert_eq!(url_channel_id("a=1&channel_id=&b=2"), Some(""));
        assert_eq!(url_channel_id("https://x/item.htm?channel_id=5"), None, "after '?' is not (&|^)");
        assert_eq!(url_channel_id("a=1&xchannel_id=3&channel_id=4&channel_id=5"), Some("4"));
        assert_eq!(url_channel_id("https://x/item.htm?query=1"), None);
        assert_eq!(q21_channel_id("Google", u), Some("1"));
        assert_eq!(q21_channel_id("BAIDU", u), Some("3"));
        assert_eq!(q21_channel_id("faceboo\u{212a}", u), Some("2"), "lower() maps the Kelvin sign to k");
        assert_eq!(q21_channel_id("channel-9", u), Some("42"));
        assert_eq!(q21_channel_id("channel-9", "https://x/item.htm?query=1"), None);
    }

    #[test]
    fn q11_q17_q21_agree_with_the_hand_written_loops() {
        prepare(ROWS);
        for (name, fg, hand) in [
            ("q11", fg_q11 as fn(usize) -> Measured, hand_q11 as fn(usize) -> Measured),
            ("q17", fg_q17, hand_q17),
            ("q21", fg_q21, hand_q21),
        ] {
            let (f, h) = (fg(ROWS), hand(ROWS));
            assert!(!f.result.is_empty(), "{name} is empty");
            assert!(f.result == h.result, "{name}: {} vs {} rows", f.result.len(), h.result.len());
        }
        let q21 = fg_q21(ROWS).result.len();
        assert!(q21 < ROWS && q21 > ROWS / 2, "q21 drops the bids without a channel id: {q21}");
    }

    #[test]
    fn q11_sessions_match_a_reference_over_all_bids() {
        prepare(ROWS);
        let all = bid_rows(ROWS);
        let wm = all.iter().map(|b| b.date_time.0).max().unwrap().div_euclid(1000) * 1000 - Q11_DELAY_US;
        let mut by_bidder: std::collections::BTreeMap<i64, Vec<i64>> = Default::default();
        for b in &all {
            by_bidder.entry(b.bidder).or_default().push(b.date_time.0);
        }
        let mut expected = Vec::new();
        for (bidder, mut ts) in by_bidder {
            ts.sort_unstable();
            let (mut start, mut last, mut n) = (ts[0], ts[0], 0);
            for t in ts {
                if t > last + Q11_GAP_US {
                    expected.push(Q11Row {
                        bidder,
                        bid_count: n,
                        starttime: Timestamp(start),
                        endtime: Timestamp(last + Q11_GAP_US),
                    });
                    (start, n) = (t, 0);
                }
                last = t;
                n += 1;
            }
            expected.push(Q11Row {
                bidder,
                bid_count: n,
                starttime: Timestamp(start),
                endtime: Timestamp(last + Q11_GAP_US),
            });
        }
        expected.retain(|r| r.endtime.0 <= wm);
        assert!(expected.len() > 1_000, "sessions close: {}", expected.len());
        let expected = crate::workloads::canonical(&[Q11Row::to_batch(expected).unwrap()]);
        assert!(fg_q11(ROWS).result == expected);
    }
}
