//! Nexmark (the streaming benchmark of Tucker et al., as Flink's and Spark's ports run it):
//! a bid-stream generator with the standard parameters, and the stateless bid queries
//! (q0 pass-through, q1 currency conversion, q2 selection, q14 calculation, q22 split) as
//! flowgate queries beside hand-written loops. Spark and the stateful queries come next
//! (issue 6).

use std::sync::{Arc, OnceLock};
use std::time::Instant;

use arrow_array::builder::{Float64Builder, Int64Builder, StringBuilder, TimestampMicrosecondBuilder};
use arrow_array::cast::AsArray;
use arrow_array::types::{Int64Type, TimestampMicrosecondType};
use arrow_array::{ArrayRef, RecordBatch};
use flowgate::engine::{BatchContext, PlanConfig};
use flowgate::prelude::*;

use crate::data::{SplitMix, BATCH_ROWS};
use crate::Measured;

// Nexmark's generator defaults (GeneratorConfig / NexmarkConfiguration).
const PERSON_PROPORTION: u64 = 1;
const AUCTION_PROPORTION: u64 = 3;
const BID_PROPORTION: u64 = 46;
const TOTAL_PROPORTION: u64 = PERSON_PROPORTION + AUCTION_PROPORTION + BID_PROPORTION;
const FIRST_PERSON_ID: u64 = 1000;
const FIRST_AUCTION_ID: u64 = 1000;
const NUM_ACTIVE_PEOPLE: u64 = 1000;
const NUM_IN_FLIGHT_AUCTIONS: u64 = 100;
const PERSON_ID_LEAD: u64 = 10;
const AUCTION_ID_LEAD: u64 = 10;
const HOT_AUCTION_RATIO: u64 = 2;
const HOT_BIDDER_RATIO: u64 = 4;
const HOT_CHANNELS_RATIO: u64 = 2;
const CHANNELS_NUMBER: u64 = 10_000;
const HOT_CHANNELS: [&str; 4] = ["Google", "Facebook", "Baidu", "Apple"];
/// 10 000 events per second of event time (Nexmark's default first event rate).
const INTER_EVENT_DELAY_US: i64 = 100;
/// Average bid size in bytes, filled up by `extra` (Nexmark's `avgBidByteSize`).
const AVG_BID_BYTES: usize = 100;

/// A bid (Nexmark's `Bid`).
#[derive(Record, Clone)]
pub struct Bid {
    pub auction: i64,
    pub bidder: i64,
    pub price: i64,
    pub channel: String,
    pub url: String,
    pub date_time: Timestamp,
    pub extra: String,
}

fn last_base0_person_id(event_id: u64) -> u64 {
    // Nexmark: the offset within the epoch, capped at the last person slot.
    let epoch = event_id / TOTAL_PROPORTION;
    let offset = event_id % TOTAL_PROPORTION;
    epoch * PERSON_PROPORTION + if offset >= PERSON_PROPORTION { PERSON_PROPORTION - 1 } else { offset }
}

fn last_base0_auction_id(event_id: u64) -> u64 {
    let mut epoch = event_id / TOTAL_PROPORTION;
    let mut offset = event_id % TOTAL_PROPORTION;
    if offset < PERSON_PROPORTION {
        epoch = epoch.saturating_sub(1);
        offset = AUCTION_PROPORTION - 1;
    } else if offset >= PERSON_PROPORTION + AUCTION_PROPORTION {
        offset = AUCTION_PROPORTION - 1;
    } else {
        offset -= PERSON_PROPORTION;
    }
    epoch * AUCTION_PROPORTION + offset
}

fn next_string(rng: &mut SplitMix, len: usize) -> String {
    (0..len).map(|_| (b'a' + rng.below(26) as u8) as char).collect()
}

fn base_url(rng: &mut SplitMix) -> String {
    format!(
        "https://www.nexmark.com/{}/{}/{}/item.htm?query=1",
        next_string(rng, 5),
        next_string(rng, 5),
        next_string(rng, 5)
    )
}

/// The bids among the first `events` Nexmark events, in event order.
pub fn bids(events: u64) -> Vec<Bid> {
    let mut rng = SplitMix::new(0x4e58);
    let hot_urls: Vec<String> = HOT_CHANNELS.iter().map(|_| base_url(&mut rng)).collect();
    let channel_urls: Vec<String> = (0..CHANNELS_NUMBER)
        .map(|c| {
            let url = base_url(&mut rng);
            if rng.below(10) > 0 {
                format!("{url}&channel_id={}", ((c as u32).reverse_bits() as i32 as i64).abs())
            } else {
                url
            }
        })
        .collect();
    let base_time = 1_704_110_400_000_000i64;
    let mut out = Vec::with_capacity((events * BID_PROPORTION / TOTAL_PROPORTION) as usize);
    for event_id in 0..events {
        if event_id % TOTAL_PROPORTION < PERSON_PROPORTION + AUCTION_PROPORTION {
            continue;
        }
        let auction = if rng.below(HOT_AUCTION_RATIO) > 0 {
            (last_base0_auction_id(event_id) / HOT_AUCTION_RATIO) * HOT_AUCTION_RATIO
        } else {
            let max = last_base0_auction_id(event_id);
            let min = max.saturating_sub(NUM_IN_FLIGHT_AUCTIONS);
            min + rng.below(max - min + 1 + AUCTION_ID_LEAD)
        } + FIRST_AUCTION_ID;
        let bidder = if rng.below(HOT_BIDDER_RATIO) > 0 {
            (last_base0_person_id(event_id) / HOT_BIDDER_RATIO) * HOT_BIDDER_RATIO + 1
        } else {
            let num_people = last_base0_person_id(event_id) + 1;
            let active = num_people.min(NUM_ACTIVE_PEOPLE);
            num_people - active + rng.below(active + PERSON_ID_LEAD)
        } + FIRST_PERSON_ID;
        let unit = (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        let price = (10f64.powf(unit * 6.0) * 100.0).round() as i64;
        let (channel, url) = if rng.below(HOT_CHANNELS_RATIO) > 0 {
            let i = rng.below(HOT_CHANNELS.len() as u64) as usize;
            (HOT_CHANNELS[i].to_string(), hot_urls[i].clone())
        } else {
            let c = rng.below(CHANNELS_NUMBER);
            (format!("channel-{c}"), channel_urls[c as usize].clone())
        };
        let size = 32 + channel.len() + url.len();
        let extra_len =
            if size < AVG_BID_BYTES { rng.below(2 * (AVG_BID_BYTES - size) as u64 + 1) as usize } else { 0 };
        out.push(Bid {
            auction: auction as i64,
            bidder: bidder as i64,
            price,
            channel,
            url,
            date_time: Timestamp(base_time + event_id as i64 * INTER_EVENT_DELAY_US),
            extra: next_string(&mut rng, extra_len),
        });
    }
    out
}

static BIDS: OnceLock<Vec<RecordBatch>> = OnceLock::new();

/// The bids among the first Nexmark events, at least `rows` of them (the events around them
/// are skipped), as Arrow batches of [`BATCH_ROWS`].
pub fn bid_batches(rows: usize) -> Vec<RecordBatch> {
    let events = rows as u64 * TOTAL_PROPORTION / BID_PROPORTION + TOTAL_PROPORTION;
    let all = bids(events);
    all.chunks(BATCH_ROWS).map(|c| Bid::to_batch(c.iter().cloned()).expect("bid batch")).collect()
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
    let mut plan = (spec.make_plan)(&PlanConfig { shuffle_partitions: rayon::current_num_threads().max(2) });
    let out = plan.run_batch(&BatchContext::new(0, OutputMode::Append), &[input]).expect("run");
    Measured { elapsed: start.elapsed(), result: crate::workloads::canonical(&out), note: String::new() }
}

/// Runs `f` over every input batch in parallel (the hand-written side's structure), keeping
/// order.
fn hand(f: impl Fn(&RecordBatch) -> RecordBatch + Sync) -> Measured {
    use rayon::prelude::*;
    let input = BIDS.get().expect("prepared");
    let start = Instant::now();
    let out: Vec<RecordBatch> = input.par_iter().map(&f).collect();
    Measured { elapsed: start.elapsed(), result: crate::workloads::canonical(&out), note: String::new() }
}

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

/// Spark's / Flink's `SPLIT_INDEX(url, '/', i)`.
fn split_index(s: &str, i: usize) -> Option<&str> {
    s.split('/').nth(i)
}

stream_query! {
    pub(crate) query Q22(bids: Bid) -> Q22Row, mode = append {
        bids.select(
            auction,
            bidder,
            price,
            channel,
            dir1 = split_index(url, 3),
            dir2 = split_index(url, 4),
            dir3 = split_index(url, 5),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bids_follow_nexmark_proportions_and_ranges() {
        let b = bids(5_000);
        assert_eq!(b.len(), 5_000 / 50 * 46);
        assert!(b.iter().all(|x| x.auction >= FIRST_AUCTION_ID as i64 && x.bidder >= FIRST_PERSON_ID as i64));
        assert!(b.iter().all(|x| (100..=100_000_000).contains(&x.price)));
        assert!(b.iter().any(|x| HOT_CHANNELS.contains(&x.channel.as_str())));
        assert!(b.iter().any(|x| x.url.contains("channel_id=")));
        assert!(b.windows(2).all(|w| w[0].date_time <= w[1].date_time));
    }
}
