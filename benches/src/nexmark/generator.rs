//! The Nexmark event generator: one deterministic sequence of person, auction and bid events
//! with the proportions, id arithmetic and value distributions of the reference generator
//! (Apache Beam's `sdks/java/testing/nexmark/.../sources/generator`: `GeneratorConfig`,
//! `PersonGenerator`, `AuctionGenerator`, `BidGenerator`, `PriceGenerator`,
//! `StringsGenerator`, with `NexmarkConfiguration`'s defaults; the bid's channel and url as
//! added by the Flink port, github.com/nexmark/nexmark, and kept by RisingWave's nexmark-rs).
//!
//! Event `e` (from 0) is, by `e mod 50`: a person (0), an auction (1–3) or a bid (4–49), and
//! happens at `BASE_TIME + e × INTER_EVENT_DELAY` (10 000 events per second of event time, in
//! order). Ids come from the event number, not from a counter: the `e`-th event's person or
//! auction id is the number of persons or auctions before it plus 1000, and a bid or an
//! auction refers to a person or an auction that the sequence has generated or will generate
//! within [`PERSON_ID_LEAD`] / [`AUCTION_ID_LEAD`] ids (the reference's "leads", which make a
//! few bids look as if they arrived before their auction). Each event draws its values from a
//! random stream of its own, seeded by the generator's seed and the event number (as
//! RisingWave's port does), so any event can be generated alone, in parallel and in any order,
//! and the same seed always gives the same events.
//!
//! Where this port differs from the reference, on purpose: the random numbers (SplitMix64
//! instead of `java.util.Random`, so the values are not the reference's, only their
//! distributions); times in microseconds (the reference truncates event times to ms, which
//! gives ten events the same time); the channel urls are drawn from the seed, not from an
//! unseeded `Random`.

use arrow_array::RecordBatch;
use flowgate::prelude::*;
use rayon::prelude::*;

use crate::data::{SplitMix, BATCH_ROWS};

// ------------------------------------------------------------------ parameters
//
// All from Beam's `NexmarkConfiguration` defaults and the generator classes' constants; the
// same values in the Flink and RisingWave ports unless noted.

/// Events per 50 that are persons, auctions and bids (`personProportion`,
/// `auctionProportion`, `bidProportion`).
pub const PERSON_PROPORTION: u64 = 1;
pub const AUCTION_PROPORTION: u64 = 3;
pub const BID_PROPORTION: u64 = 46;
/// One epoch of the sequence: a person, then 3 auctions, then 46 bids.
pub const TOTAL_PROPORTION: u64 = PERSON_PROPORTION + AUCTION_PROPORTION + BID_PROPORTION;

/// Ids start here so that queries find matches on small data sets (`GeneratorConfig`).
pub const FIRST_PERSON_ID: u64 = 1000;
pub const FIRST_AUCTION_ID: u64 = 1000;
pub const FIRST_CATEGORY_ID: u64 = 10;
/// Categories of auctions (`AuctionGenerator.NUM_CATEGORIES`: ids 10..=14).
pub const NUM_CATEGORIES: u64 = 5;

/// People that may place auctions and bids: the newest 1000 (`numActivePeople`).
pub const NUM_ACTIVE_PEOPLE: u64 = 1000;
/// Auctions a cold bid may be for: the newest 100 (`numInFlightAuctions`).
pub const NUM_IN_FLIGHT_AUCTIONS: u64 = 100;
/// Ids not generated yet that a reference may name (`PERSON_ID_LEAD`, `AUCTION_ID_LEAD`).
pub const PERSON_ID_LEAD: u64 = 10;
pub const AUCTION_ID_LEAD: u64 = 10;

/// 1 in `hotAuctionRatio` bids is for a random in-flight auction, the others for the hot one
/// (`hotAuctionRatio` = 2).
pub const HOT_AUCTION_RATIO: u64 = 2;
/// 1 in `hotSellersRatio` auctions is by a random active person (`hotSellersRatio` = 4).
pub const HOT_SELLER_RATIO: u64 = 4;
/// 1 in `hotBiddersRatio` bids is by a random active person (`hotBiddersRatio` = 4).
pub const HOT_BIDDER_RATIO: u64 = 4;
/// The hot auction, seller and bidder is the first (bidder: second) of the newest block of 100
/// auctions or persons (`BidGenerator.HOT_AUCTION_RATIO`, `HOT_BIDDER_RATIO`,
/// `AuctionGenerator.HOT_SELLER_RATIO`, all 100): so it changes every 100 auctions or persons.
pub const HOT_BLOCK: u64 = 100;
/// Half the bids come through one of the 4 hot channels (Flink's `HOT_CHANNELS_RATIO`).
pub const HOT_CHANNELS_RATIO: u64 = 2;
/// The other channels: `channel-0` … `channel-9999` (Flink's `CHANNELS_NUMBER`).
pub const CHANNELS_NUMBER: u64 = 10_000;
pub const HOT_CHANNELS: [&str; 4] = ["Google", "Facebook", "Baidu", "Apple"];

/// Idealized average sizes in bytes that `extra` pads each event to (`avgPersonByteSize`,
/// `avgAuctionByteSize`, `avgBidByteSize`).
pub const AVG_PERSON_BYTES: usize = 200;
pub const AVG_AUCTION_BYTES: usize = 500;
pub const AVG_BID_BYTES: usize = 100;

/// Event time of event 0: 2024-01-01 12:00 UTC, in µs (fixed, like the reference's
/// deterministic base time, so that every run sees the same events).
pub const BASE_TIME_US: i64 = 1_704_110_400_000_000;
/// 10 000 events per second of event time (`firstEventRate` = `nextEventRate` = 10 000 with
/// one generator: `interEventDelayUs` = 100).
pub const INTER_EVENT_DELAY_US: i64 = 100;

/// The seed of the benchmark's event sequence.
pub const DEFAULT_SEED: u64 = 0x4e58;

const US_STATES: [&str; 6] = ["AZ", "CA", "ID", "OR", "WA", "WY"];
const US_CITIES: [&str; 10] =
    ["Phoenix", "Los Angeles", "San Francisco", "Boise", "Portland", "Bend", "Redmond", "Seattle", "Kent", "Cheyenne"];
const FIRST_NAMES: [&str; 11] =
    ["Peter", "Paul", "Luke", "John", "Saul", "Vicky", "Kate", "Julie", "Sarah", "Deiter", "Walter"];
const LAST_NAMES: [&str; 9] = ["Shultz", "Abrams", "Spencer", "White", "Bartels", "Walton", "Smith", "Jones", "Noris"];

/// Shortest random string (`StringsGenerator.MIN_STRING_LENGTH`).
const MIN_STRING_LENGTH: u64 = 3;

// ------------------------------------------------------------------ records

/// A new person (Nexmark's `Person`).
#[derive(Record, Clone, Debug, PartialEq)]
pub struct Person {
    pub id: i64,
    pub name: String,
    pub email_address: String,
    pub credit_card: String,
    pub city: String,
    pub state: String,
    pub date_time: Timestamp,
    pub extra: String,
}

/// A new auction (Nexmark's `Auction`); prices in cents.
#[derive(Record, Clone, Debug, PartialEq)]
pub struct Auction {
    pub id: i64,
    pub item_name: String,
    pub description: String,
    pub initial_bid: i64,
    pub reserve: i64,
    pub date_time: Timestamp,
    pub expires: Timestamp,
    pub seller: i64,
    pub category: i64,
    pub extra: String,
}

/// A bid (Nexmark's `Bid` with the Flink port's `channel` and `url`); price in cents.
#[derive(Record, Clone, Debug, PartialEq)]
pub struct Bid {
    pub auction: i64,
    pub bidder: i64,
    pub price: i64,
    pub channel: String,
    pub url: String,
    pub date_time: Timestamp,
    pub extra: String,
}

/// One event of the sequence.
#[derive(Clone, Debug, PartialEq)]
#[allow(dead_code, reason = "the sequence as rows, for tests and ad-hoc checks; the benchmarks read `batches`")]
pub enum Event {
    Person(Person),
    Auction(Auction),
    Bid(Bid),
}

/// The three streams.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Kind {
    Person,
    Auction,
    Bid,
}

impl Kind {
    pub const ALL: [Kind; 3] = [Kind::Person, Kind::Auction, Kind::Bid];

    /// The stream's name (a directory name of the input files).
    pub fn name(self) -> &'static str {
        match self {
            Kind::Person => "person",
            Kind::Auction => "auction",
            Kind::Bid => "bid",
        }
    }

    /// The event kind's offsets within an epoch of [`TOTAL_PROPORTION`] events.
    fn offsets(self) -> std::ops::Range<u64> {
        match self {
            Kind::Person => 0..PERSON_PROPORTION,
            Kind::Auction => PERSON_PROPORTION..PERSON_PROPORTION + AUCTION_PROPORTION,
            Kind::Bid => PERSON_PROPORTION + AUCTION_PROPORTION..TOTAL_PROPORTION,
        }
    }

    /// Events of this kind among the first `events` events.
    pub fn count(self, events: u64) -> u64 {
        let o = self.offsets();
        let (epochs, rest) = (events / TOTAL_PROPORTION, events % TOTAL_PROPORTION);
        epochs * (o.end - o.start) + rest.clamp(o.start, o.end) - o.start
    }

    /// The event number of the `n`-th event (from 0) of this kind.
    pub fn event_id(self, n: u64) -> u64 {
        let o = self.offsets();
        let per_epoch = o.end - o.start;
        n / per_epoch * TOTAL_PROPORTION + o.start + n % per_epoch
    }
}

/// The kind of event `event_id` (`NexmarkGenerator.nextEvent`).
pub fn kind(event_id: u64) -> Kind {
    match event_id % TOTAL_PROPORTION {
        r if r < PERSON_PROPORTION => Kind::Person,
        r if r < PERSON_PROPORTION + AUCTION_PROPORTION => Kind::Auction,
        _ => Kind::Bid,
    }
}

/// The event time of event `event_id` (`GeneratorConfig.timestampForEvent`, in µs).
pub fn event_time(event_id: u64) -> Timestamp {
    Timestamp(BASE_TIME_US + event_id as i64 * INTER_EVENT_DELAY_US)
}

/// The events up to and including the `bids`-th bid: the input of `--rows bids`.
pub fn events_for_bids(bids: u64) -> u64 {
    if bids == 0 {
        0
    } else {
        Kind::Bid.event_id(bids - 1) + 1
    }
}

/// The newest person id (base 0) at event `event_id`: the event's own if it is a person
/// (`PersonGenerator.lastBase0PersonId`).
pub fn last_base0_person_id(event_id: u64) -> u64 {
    let epoch = event_id / TOTAL_PROPORTION;
    let offset = event_id % TOTAL_PROPORTION;
    // An auction or a bid: the last person of this epoch.
    let offset = if offset < PERSON_PROPORTION { offset } else { PERSON_PROPORTION - 1 };
    epoch * PERSON_PROPORTION + offset
}

/// The newest auction id (base 0) at event `event_id`: the event's own if it is an auction
/// (`AuctionGenerator.lastBase0AuctionId`). Events before the first auction (event 0, a
/// person) give 0, the reference −1; only auctions and bids ask.
pub fn last_base0_auction_id(event_id: u64) -> u64 {
    let mut epoch = event_id / TOTAL_PROPORTION;
    let mut offset = event_id % TOTAL_PROPORTION;
    if offset < PERSON_PROPORTION {
        // A person: the last auction of the previous epoch.
        epoch = epoch.saturating_sub(1);
        offset = AUCTION_PROPORTION - 1;
    } else if offset >= PERSON_PROPORTION + AUCTION_PROPORTION {
        // A bid: the last auction of this epoch.
        offset = AUCTION_PROPORTION - 1;
    } else {
        offset -= PERSON_PROPORTION;
    }
    epoch * AUCTION_PROPORTION + offset
}

// ------------------------------------------------------------------ random values

/// Uniform in `[0, 1)` with 53 random bits.
fn unit(rng: &mut SplitMix) -> f64 {
    (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64
}

/// A price in cents, log-uniform between $1 and $1 000 000 (`PriceGenerator.nextPrice`).
fn next_price(rng: &mut SplitMix) -> i64 {
    (10f64.powf(unit(rng) * 6.0) * 100.0).round() as i64
}

/// 3 to `max_len − 1` characters, each a space (`special`) with probability 1/13, else a
/// lower-case letter, trimmed of spaces (`StringsGenerator.nextString`; the url's form with
/// `_` is the Flink port's `nextString(random, 5, '_')`).
fn next_string(rng: &mut SplitMix, max_len: u64, special: char) -> String {
    let len = MIN_STRING_LENGTH + rng.below(max_len - MIN_STRING_LENGTH);
    let s: String =
        (0..len).map(|_| if rng.below(13) == 0 { special } else { (b'a' + rng.below(26) as u8) as char }).collect();
    if special == ' ' {
        s.trim().to_string()
    } else {
        s
    }
}

/// Exactly `len` lower-case letters (`StringsGenerator.nextExactString`).
fn next_exact_string(rng: &mut SplitMix, len: usize) -> String {
    (0..len).map(|_| (b'a' + rng.below(26) as u8) as char).collect()
}

/// Padding that brings an event of idealized size `current` to `average` on average: uniform
/// within ±20 % of the missing bytes (`StringsGenerator.nextExtra`).
fn next_extra(rng: &mut SplitMix, current: usize, average: usize) -> String {
    if current > average {
        return String::new();
    }
    let missing = average - current;
    let delta = (missing as f64 * 0.2).round() as usize;
    let len = missing - delta + if delta == 0 { 0 } else { rng.below(2 * delta as u64) as usize };
    next_exact_string(rng, len)
}

/// `https://www.nexmark.com/<3–4>/<3–4>/<3–4>/item.htm?query=1` (Flink's `getBaseUrl`).
fn base_url(rng: &mut SplitMix) -> String {
    let dirs: Vec<String> = (0..3).map(|_| next_string(rng, 5, '_')).collect();
    format!("https://www.nexmark.com/{}/{}/{}/item.htm?query=1", dirs[0], dirs[1], dirs[2])
}

/// A random active person, or one of the next [`PERSON_ID_LEAD`] (base 0,
/// `PersonGenerator.nextBase0PersonId`).
fn next_base0_person_id(rng: &mut SplitMix, event_id: u64) -> u64 {
    let people = last_base0_person_id(event_id) + 1;
    let active = people.min(NUM_ACTIVE_PEOPLE);
    people - active + rng.below(active + PERSON_ID_LEAD)
}

/// A random in-flight auction, or one of the next [`AUCTION_ID_LEAD`] (base 0,
/// `AuctionGenerator.nextBase0AuctionId`).
fn next_base0_auction_id(rng: &mut SplitMix, event_id: u64) -> u64 {
    let max = last_base0_auction_id(event_id);
    let min = max.saturating_sub(NUM_IN_FLIGHT_AUCTIONS);
    min + rng.below(max - min + 1 + AUCTION_ID_LEAD)
}

// ------------------------------------------------------------------ the generator

/// The generator of one event sequence: its seed and the channels' urls drawn from it.
pub struct Generator {
    seed: u64,
    hot_urls: Vec<String>,
    /// `channel-<i>` and its url, which has a `channel_id` parameter 9 times in 10.
    channels: Vec<(String, String)>,
}

impl Generator {
    pub fn new(seed: u64) -> Self {
        let mut rng = SplitMix::new(seed);
        let hot_urls = HOT_CHANNELS.iter().map(|_| base_url(&mut rng)).collect();
        let channels = (0..CHANNELS_NUMBER)
            .map(|c| {
                let url = base_url(&mut rng);
                let url = if rng.below(10) > 0 {
                    // Java's Math.abs(Integer.reverse(c)), without its overflow at c = 1.
                    format!("{url}&channel_id={}", ((c as u32).reverse_bits() as i32 as i64).abs())
                } else {
                    url
                };
                (format!("channel-{c}"), url)
            })
            .collect();
        Generator { seed, hot_urls, channels }
    }

    /// Event `event_id`'s own random stream: a SplitMix64 started at a hash of the seed and
    /// the event number (not at `seed + event_id`, whose streams would be shifted copies of
    /// each other).
    fn rng(&self, event_id: u64) -> SplitMix {
        let mut h = SplitMix::new(self.seed ^ event_id.wrapping_mul(0xd1b5_4a32_d192_ed03));
        SplitMix::new(h.next_u64())
    }

    /// Event `event_id`.
    #[allow(dead_code, reason = "the sequence as rows, for tests and ad-hoc checks; the benchmarks read `batches`")]
    pub fn event(&self, event_id: u64) -> Event {
        match kind(event_id) {
            Kind::Person => Event::Person(self.person(event_id)),
            Kind::Auction => Event::Auction(self.auction(event_id)),
            Kind::Bid => Event::Bid(self.bid(event_id)),
        }
    }

    /// The person of event `event_id`, which must be a person event
    /// (`PersonGenerator.nextPerson`).
    pub fn person(&self, event_id: u64) -> Person {
        debug_assert_eq!(kind(event_id), Kind::Person);
        let rng = &mut self.rng(event_id);
        let name = format!(
            "{} {}",
            FIRST_NAMES[rng.below(FIRST_NAMES.len() as u64) as usize],
            LAST_NAMES[rng.below(LAST_NAMES.len() as u64) as usize]
        );
        let email_address = format!("{}@{}.com", next_string(rng, 7, ' '), next_string(rng, 5, ' '));
        let credit_card = (0..4).map(|_| format!("{:04}", rng.below(10_000))).collect::<Vec<_>>().join(" ");
        let city = US_CITIES[rng.below(US_CITIES.len() as u64) as usize].to_string();
        let state = US_STATES[rng.below(US_STATES.len() as u64) as usize].to_string();
        let size = 8 + name.len() + email_address.len() + credit_card.len() + city.len() + state.len();
        let extra = next_extra(rng, size, AVG_PERSON_BYTES);
        Person {
            id: (last_base0_person_id(event_id) + FIRST_PERSON_ID) as i64,
            name,
            email_address,
            credit_card,
            city,
            state,
            date_time: event_time(event_id),
            extra,
        }
    }

    /// The auction of event `event_id`, which must be an auction event
    /// (`AuctionGenerator.nextAuction`).
    pub fn auction(&self, event_id: u64) -> Auction {
        debug_assert_eq!(kind(event_id), Kind::Auction);
        let rng = &mut self.rng(event_id);
        let seller = if rng.below(HOT_SELLER_RATIO) > 0 {
            last_base0_person_id(event_id) / HOT_BLOCK * HOT_BLOCK
        } else {
            next_base0_person_id(rng, event_id)
        };
        let category = FIRST_CATEGORY_ID + rng.below(NUM_CATEGORIES);
        let initial_bid = next_price(rng);
        let date_time = event_time(event_id);
        let expires = Timestamp(date_time.0 + auction_length_us(rng, event_id));
        let item_name = next_string(rng, 20, ' ');
        let description = next_string(rng, 100, ' ');
        let reserve = initial_bid + next_price(rng);
        let size = 8 + item_name.len() + description.len() + 8 + 8 + 8 + 8 + 8;
        let extra = next_extra(rng, size, AVG_AUCTION_BYTES);
        Auction {
            id: (last_base0_auction_id(event_id) + FIRST_AUCTION_ID) as i64,
            item_name,
            description,
            initial_bid,
            reserve,
            date_time,
            expires,
            seller: (seller + FIRST_PERSON_ID) as i64,
            category: category as i64,
            extra,
        }
    }

    /// The bid of event `event_id`, which must be a bid event (`BidGenerator.nextBid`).
    pub fn bid(&self, event_id: u64) -> Bid {
        debug_assert_eq!(kind(event_id), Kind::Bid);
        let rng = &mut self.rng(event_id);
        let auction = if rng.below(HOT_AUCTION_RATIO) > 0 {
            last_base0_auction_id(event_id) / HOT_BLOCK * HOT_BLOCK
        } else {
            next_base0_auction_id(rng, event_id)
        };
        let bidder = if rng.below(HOT_BIDDER_RATIO) > 0 {
            // The second person of the block, so that hot bidders are not hot sellers.
            last_base0_person_id(event_id) / HOT_BLOCK * HOT_BLOCK + 1
        } else {
            next_base0_person_id(rng, event_id)
        };
        let price = next_price(rng);
        let (channel, url) = if rng.below(HOT_CHANNELS_RATIO) > 0 {
            let i = rng.below(HOT_CHANNELS.len() as u64) as usize;
            (HOT_CHANNELS[i].to_string(), self.hot_urls[i].clone())
        } else {
            self.channels[rng.below(CHANNELS_NUMBER) as usize].clone()
        };
        // The reference's idealized size counts the four numbers only, not channel and url.
        let extra = next_extra(rng, 8 + 8 + 8 + 8, AVG_BID_BYTES);
        Bid {
            auction: (auction + FIRST_AUCTION_ID) as i64,
            bidder: (bidder + FIRST_PERSON_ID) as i64,
            price,
            channel,
            url,
            date_time: event_time(event_id),
            extra,
        }
    }

    /// The records `range` (numbered from 0 within stream `kind`), generated in parallel, in
    /// order.
    fn records<T: Send>(&self, kind: Kind, range: std::ops::Range<u64>, f: impl Fn(&Self, u64) -> T + Sync) -> Vec<T> {
        range.into_par_iter().map(|n| f(self, kind.event_id(n))).collect()
    }

    /// The persons among the first `events` events, in order.
    #[allow(dead_code, reason = "the sequence as rows, for tests and ad-hoc checks; the benchmarks read `batches`")]
    pub fn persons(&self, events: u64) -> Vec<Person> {
        self.records(Kind::Person, 0..Kind::Person.count(events), Self::person)
    }

    /// The auctions among the first `events` events, in order.
    #[allow(dead_code, reason = "the sequence as rows, for tests and ad-hoc checks; the benchmarks read `batches`")]
    pub fn auctions(&self, events: u64) -> Vec<Auction> {
        self.records(Kind::Auction, 0..Kind::Auction.count(events), Self::auction)
    }

    /// The bids among the first `events` events, in order.
    #[allow(dead_code, reason = "the sequence as rows, for tests and ad-hoc checks; the benchmarks read `batches`")]
    pub fn bids(&self, events: u64) -> Vec<Bid> {
        self.records(Kind::Bid, 0..Kind::Bid.count(events), Self::bid)
    }

    /// Stream `kind`'s rows among events `from..to`, as one Arrow batch (a micro-batch of a
    /// two-stream query: persons and auctions of the same stretch of event time).
    pub fn batch_between(&self, kind: Kind, from: u64, to: u64) -> RecordBatch {
        let range = kind.count(from)..kind.count(to);
        match kind {
            Kind::Person => Person::to_batch(self.records(kind, range, Self::person)),
            Kind::Auction => Auction::to_batch(self.records(kind, range, Self::auction)),
            Kind::Bid => Bid::to_batch(self.records(kind, range, Self::bid)),
        }
        .expect("event batch")
    }

    /// Stream `kind` among the first `events` events as Arrow batches of [`BATCH_ROWS`]
    /// (generated batch by batch, so that only one batch of rows is in memory at a time).
    pub fn batches(&self, kind: Kind, events: u64) -> Vec<RecordBatch> {
        let n = kind.count(events);
        (0..n)
            .step_by(BATCH_ROWS)
            .map(|start| {
                let range = start..(start + BATCH_ROWS as u64).min(n);
                match kind {
                    Kind::Person => Person::to_batch(self.records(kind, range, Self::person)),
                    Kind::Auction => Auction::to_batch(self.records(kind, range, Self::auction)),
                    Kind::Bid => Bid::to_batch(self.records(kind, range, Self::bid)),
                }
                .expect("event batch")
            })
            .collect()
    }
}

/// An auction's length in µs: uniform up to twice the time until 100 more auctions will have
/// been generated (`AuctionGenerator.nextAuctionLengthMs`: 1 + uniform below 2 × horizon; with
/// the defaults the horizon is 1666 events = 166.6 ms, so auctions last up to 333 ms of event
/// time).
fn auction_length_us(rng: &mut SplitMix, event_id: u64) -> i64 {
    let events_for_auctions = NUM_IN_FLIGHT_AUCTIONS * TOTAL_PROPORTION / AUCTION_PROPORTION;
    let horizon = event_time(event_id + events_for_auctions).0 - event_time(event_id).0;
    1 + rng.below((2 * horizon).max(1) as u64) as i64
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    /// 1000 epochs of 50 events.
    const EVENTS: u64 = 50_000;

    fn all(g: &Generator, events: u64) -> Vec<Event> {
        (0..events).into_par_iter().map(|e| g.event(e)).collect()
    }

    #[test]
    fn every_50_events_are_1_person_3_auctions_46_bids() {
        let g = Generator::new(DEFAULT_SEED);
        let events = all(&g, EVENTS);
        for (epoch, chunk) in events.chunks(TOTAL_PROPORTION as usize).enumerate() {
            let count = |k: Kind| {
                chunk
                    .iter()
                    .filter(|e| {
                        matches!(
                            (e, k),
                            (Event::Person(_), Kind::Person)
                                | (Event::Auction(_), Kind::Auction)
                                | (Event::Bid(_), Kind::Bid)
                        )
                    })
                    .count()
            };
            assert_eq!((count(Kind::Person), count(Kind::Auction), count(Kind::Bid)), (1, 3, 46), "epoch {epoch}");
        }
        assert_eq!(g.persons(EVENTS).len(), 1_000);
        assert_eq!(g.auctions(EVENTS).len(), 3_000);
        assert_eq!(g.bids(EVENTS).len(), 46_000);
        for k in Kind::ALL {
            for events in [0, 1, 3, 4, 5, 49, 50, 51, 54, 99, 12_345] {
                let n = (0..events).filter(|&e| kind(e) == k).count() as u64;
                assert_eq!(k.count(events), n, "{k:?} among {events}");
            }
            for n in 0..200 {
                assert_eq!(kind(k.event_id(n)), k);
                assert_eq!(k.count(k.event_id(n)), n, "{k:?} #{n}");
            }
        }
        assert_eq!(events_for_bids(0), 0);
        assert_eq!(events_for_bids(1), 5);
        assert_eq!(events_for_bids(46), 50);
        assert_eq!(events_for_bids(47), 55);
        assert_eq!(Kind::Bid.count(events_for_bids(1_000_003)), 1_000_003);
    }

    #[test]
    fn the_same_seed_gives_the_same_events() {
        let (a, b, c) = (Generator::new(DEFAULT_SEED), Generator::new(DEFAULT_SEED), Generator::new(7));
        let ea = all(&a, 5_000);
        assert_eq!(ea, all(&b, 5_000));
        assert_ne!(ea, all(&c, 5_000));
        // Any event alone, in any order, is the one of the sequence.
        for e in [4_321, 17, 0, 1, 4_999] {
            assert_eq!(a.event(e), ea[e as usize]);
        }
        assert_eq!(a.batches(Kind::Bid, 5_000), b.batches(Kind::Bid, 5_000));
        assert_eq!(a.batches(Kind::Bid, 5_000)[0], Bid::to_batch(a.bids(5_000)).unwrap());
    }

    #[test]
    fn references_are_to_generated_ids_or_within_the_lead() {
        let g = Generator::new(DEFAULT_SEED);
        let (mut persons, mut auctions) = (BTreeSet::new(), BTreeSet::new());
        let (mut bids, mut bids_to_known) = (0, 0);
        for e in all(&g, EVENTS) {
            // Ids so far: persons are dense from FIRST_PERSON_ID, so the newest is the count.
            let last_person = FIRST_PERSON_ID as i64 + persons.len() as i64 - 1;
            let last_auction = FIRST_AUCTION_ID as i64 + auctions.len() as i64 - 1;
            let person_ok = |id: i64| {
                id >= FIRST_PERSON_ID as i64 && (persons.contains(&id) || id <= last_person + PERSON_ID_LEAD as i64)
            };
            match e {
                Event::Person(p) => {
                    assert_eq!(p.id, last_person + 1, "person ids are dense and in order");
                    persons.insert(p.id);
                }
                Event::Auction(a) => {
                    assert_eq!(a.id, last_auction + 1, "auction ids are dense and in order");
                    assert!(person_ok(a.seller), "seller {} after person {last_person}", a.seller);
                    assert!(persons.contains(&a.seller) || a.seller > last_person);
                    assert!(a.expires > a.date_time, "auction {} expires at {:?}", a.id, a.expires);
                    assert!(a.expires.0 - a.date_time.0 <= 2 * 166_600);
                    assert!(a.reserve > a.initial_bid && a.initial_bid >= 100);
                    assert!((10..15).contains(&a.category));
                    auctions.insert(a.id);
                }
                Event::Bid(b) => {
                    assert!(person_ok(b.bidder), "bidder {} after person {last_person}", b.bidder);
                    assert!(
                        b.auction >= FIRST_AUCTION_ID as i64
                            && (auctions.contains(&b.auction) || b.auction <= last_auction + AUCTION_ID_LEAD as i64),
                        "auction {} after auction {last_auction}",
                        b.auction
                    );
                    assert!((100..=100_000_000).contains(&b.price));
                    bids += 1;
                    bids_to_known += i32::from(auctions.contains(&b.auction) && persons.contains(&b.bidder));
                }
            }
        }
        // Ahead of the sequence are: 10 of the 111 auctions a cold pick (half the bids) draws
        // from, 10 of the ≤ 1010 people a cold bidder (a quarter) is drawn from, and the hot
        // bidder in the epoch that starts its block of 100 persons (1 % of the time): ~6 %.
        assert!(bids_to_known as f64 > 0.92 * bids as f64, "{bids_to_known} of {bids}");
    }

    #[test]
    fn values_follow_the_reference_distributions() {
        let g = Generator::new(DEFAULT_SEED);
        let persons = g.persons(EVENTS);
        let auctions = g.auctions(EVENTS);
        let bids = g.bids(EVENTS);
        let mean = |sizes: Vec<usize>| sizes.iter().sum::<usize>() as f64 / sizes.len() as f64;
        // `extra` pads the reference's idealized size to its average.
        let person_size = mean(
            persons
                .iter()
                .map(|p| {
                    8 + p.name.len()
                        + p.email_address.len()
                        + p.credit_card.len()
                        + p.city.len()
                        + p.state.len()
                        + p.extra.len()
                })
                .collect(),
        );
        let auction_size =
            mean(auctions.iter().map(|a| 8 + a.item_name.len() + a.description.len() + 40 + a.extra.len()).collect());
        let bid_size = mean(bids.iter().map(|b| 32 + b.extra.len()).collect());
        assert!((person_size - 200.0).abs() < 2.0, "person {person_size}");
        assert!((auction_size - 500.0).abs() < 5.0, "auction {auction_size}");
        assert!((bid_size - 100.0).abs() < 1.0, "bid {bid_size}");
        for p in &persons {
            let cc: Vec<&str> = p.credit_card.split(' ').collect();
            assert!(cc.len() == 4 && cc.iter().all(|g| g.len() == 4 && g.bytes().all(|b| b.is_ascii_digit())));
            assert!(US_STATES.contains(&p.state.as_str()) && US_CITIES.contains(&p.city.as_str()));
            assert!(p.email_address.ends_with(".com") && p.email_address.contains('@'));
        }
        // Half the bids are for the hot auction, 3/4 by the hot bidder, half on hot channels.
        let share = |f: &dyn Fn(&Bid) -> bool| bids.iter().filter(|b| f(b)).count() as f64 / bids.len() as f64;
        let hot_auction = share(&|b| (b.auction as u64 - FIRST_AUCTION_ID).is_multiple_of(HOT_BLOCK));
        let hot_bidder = share(&|b| (b.bidder as u64 - FIRST_PERSON_ID) % HOT_BLOCK == 1);
        let hot_channel = share(&|b| HOT_CHANNELS.contains(&b.channel.as_str()));
        assert!((0.49..0.53).contains(&hot_auction), "hot auction {hot_auction}");
        assert!((0.75..0.77).contains(&hot_bidder), "hot bidder {hot_bidder}");
        assert!((0.49..0.51).contains(&hot_channel), "hot channel {hot_channel}");
        let hot_seller =
            auctions.iter().filter(|a| (a.seller as u64 - FIRST_PERSON_ID).is_multiple_of(HOT_BLOCK)).count();
        assert!((0.72..0.79).contains(&(hot_seller as f64 / auctions.len() as f64)), "hot seller {hot_seller}");
        // Prices are log-uniform over 6 decades: the median is $1000.
        let mut prices: Vec<i64> = bids.iter().map(|b| b.price).collect();
        prices.sort_unstable();
        let median = prices[prices.len() / 2] as f64;
        assert!((80_000.0..125_000.0).contains(&median), "median price {median}");
        // Event time: 10 000 events per second.
        assert_eq!(bids.last().unwrap().date_time, event_time(EVENTS - 1));
        assert_eq!(event_time(10_000).0 - event_time(0).0, 1_000_000);
    }
}
