//! The workloads: each a flowgate query and the hand-written loop a careful engineer would
//! write for the same job over the same Arrow batches. Both produce Arrow output.

use std::sync::{Arc, OnceLock};
use std::time::Instant;

use arrow_array::builder::{Int64Builder, StringBuilder, TimestampMicrosecondBuilder};
use arrow_array::cast::AsArray;
use arrow_array::types::{Int64Type, TimestampMicrosecondType};
use arrow_array::{Array, ArrayRef, RecordBatch};
use flowgate::engine::{BatchContext, PlanConfig, PlanExt};
use flowgate::prelude::*;
use hashbrown::{HashMap, HashTable};
use rayon::prelude::*;

use crate::data::{self, Event, KeyValue, Line};
use crate::nexmark;
use crate::Measured;

/// Rows per parallel work unit of the hand-written loops (the same as flowgate's
/// `exec::CHUNK_ROWS`, so both sides split work alike).
const CHUNK: usize = flowgate::exec::CHUNK_ROWS;

pub struct Workload {
    pub name: &'static str,
    pub group: &'static str,
    pub prepare: fn(usize),
    pub flowgate: fn(usize) -> Measured,
    pub hand: fn(usize) -> Measured,
}

pub fn all() -> Vec<Workload> {
    vec![
        Workload {
            name: "word_count",
            group: "core",
            prepare: prep_lines,
            flowgate: fg_word_count,
            hand: hand_word_count,
        },
        Workload {
            name: "grouped_sum",
            group: "core",
            prepare: prep_kv,
            flowgate: fg_grouped_sum,
            hand: hand_grouped_sum,
        },
        Workload {
            name: "dedup",
            group: "ops",
            prepare: crate::ops::prep_clicks,
            flowgate: crate::ops::fg_dedup,
            hand: crate::ops::hand_dedup,
        },
        Workload {
            name: "static_join",
            group: "ops",
            prepare: crate::ops::prep_orders,
            flowgate: crate::ops::fg_join,
            hand: crate::ops::hand_join,
        },
        Workload {
            name: "nexmark_q3_stream_join",
            group: "joins",
            prepare: crate::joins::prepare,
            flowgate: crate::joins::fg_q3,
            hand: crate::joins::hand_q3,
        },
        Workload {
            name: "nexmark_q8_window_join",
            group: "joins",
            prepare: crate::joins::prepare,
            flowgate: crate::joins::fg_q8,
            hand: crate::joins::hand_q8,
        },
        Workload {
            name: "nexmark_q4_join_avg",
            group: "joins",
            prepare: crate::nexmark_joins::prepare,
            flowgate: crate::nexmark_joins::fg_q4,
            hand: crate::nexmark_joins::hand_q4,
        },
        Workload {
            name: "nexmark_q5_hot_items",
            group: "joins",
            prepare: crate::nexmark_joins::prepare,
            flowgate: crate::nexmark_joins::fg_q5,
            hand: crate::nexmark_joins::hand_q5,
        },
        Workload {
            name: "nexmark_q7_highest_bid",
            group: "joins",
            prepare: crate::nexmark_joins::prepare,
            flowgate: crate::nexmark_joins::fg_q7,
            hand: crate::nexmark_joins::hand_q7,
        },
        Workload {
            name: "group_state",
            group: "group_state",
            prepare: crate::group_state::prepare,
            flowgate: crate::group_state::fg,
            hand: crate::group_state::hand,
        },
        Workload {
            name: "group_state_iter",
            group: "group_state",
            prepare: crate::group_state::prepare,
            flowgate: crate::group_state::fg_iter,
            hand: crate::group_state::hand,
        },
        Workload {
            name: "group_state_grouped",
            group: "group_state",
            prepare: crate::group_state::prepare,
            flowgate: crate::group_state::fg_iter,
            hand: crate::group_state::hand_grouped,
        },
        Workload {
            name: "group_state_2map",
            group: "group_state",
            prepare: crate::group_state::prepare,
            flowgate: crate::group_state::fg,
            hand: crate::group_state::hand_two_maps,
        },
        Workload {
            name: "tws_value_state",
            group: "group_state",
            prepare: crate::group_state::prepare,
            flowgate: crate::group_state::fg_tws,
            hand: crate::group_state::hand,
        },
        Workload {
            name: "tws_value_state_grouped",
            group: "group_state",
            prepare: crate::group_state::prepare,
            flowgate: crate::group_state::fg_tws,
            hand: crate::group_state::hand_grouped,
        },
        Workload {
            name: "windowed_count",
            group: "windowed",
            prepare: prep_events,
            flowgate: fg_windowed,
            hand: hand_windowed_radix,
        },
        Workload {
            name: "windowed_count_old_hand",
            group: "windowed",
            prepare: prep_events,
            flowgate: fg_windowed,
            hand: hand_windowed,
        },
        Workload {
            name: "nexmark_q0",
            group: "nexmark",
            prepare: nexmark::prepare,
            flowgate: nexmark::fg_q0,
            hand: nexmark::hand_q0,
        },
        Workload {
            name: "nexmark_q1",
            group: "nexmark",
            prepare: nexmark::prepare,
            flowgate: nexmark::fg_q1,
            hand: nexmark::hand_q1,
        },
        Workload {
            name: "nexmark_q2",
            group: "nexmark",
            prepare: nexmark::prepare,
            flowgate: nexmark::fg_q2,
            hand: nexmark::hand_q2,
        },
        Workload {
            name: "nexmark_q13",
            group: "nexmark",
            prepare: crate::q13::prepare,
            flowgate: crate::q13::fg_q13,
            hand: crate::q13::hand_q13,
        },
        Workload {
            name: "nexmark_q14",
            group: "nexmark",
            prepare: nexmark::prepare,
            flowgate: nexmark::fg_q14,
            hand: nexmark::hand_q14,
        },
        Workload {
            name: "nexmark_q22",
            group: "nexmark",
            prepare: nexmark::prepare,
            flowgate: nexmark::fg_q22,
            hand: nexmark::hand_q22,
        },
        Workload {
            name: "nexmark_q11",
            group: "nexmark",
            prepare: nexmark::prepare,
            flowgate: nexmark::fg_q11,
            hand: nexmark::hand_q11,
        },
        Workload {
            name: "nexmark_q17",
            group: "nexmark",
            prepare: nexmark::prepare,
            flowgate: nexmark::fg_q17,
            hand: nexmark::hand_q17,
        },
        Workload {
            name: "nexmark_q21",
            group: "nexmark",
            prepare: nexmark::prepare,
            flowgate: nexmark::fg_q21,
            hand: nexmark::hand_q21,
        },
    ]
}

static LINES: OnceLock<Vec<RecordBatch>> = OnceLock::new();
static KV: OnceLock<Vec<RecordBatch>> = OnceLock::new();
static EVENTS: OnceLock<Vec<RecordBatch>> = OnceLock::new();

fn prep_lines(rows: usize) {
    LINES.get_or_init(|| data::lines(rows));
}
fn prep_kv(rows: usize) {
    KV.get_or_init(|| data::key_values(rows));
}
fn prep_events(rows: usize) {
    EVENTS.get_or_init(|| data::events(rows));
}

fn partitions() -> usize {
    rayon::current_num_threads().max(2)
}

pub(crate) type Hasher = foldhash::fast::FixedState;

pub(crate) fn new_map<K, V>() -> HashMap<K, V, Hasher> {
    HashMap::with_hasher(Hasher::with_seed(1))
}

/// The hand-written aggregations' structure: the batches cut into `chunk`-row work units,
/// each folded into a map by `fold`; on one thread a plain loop into one map, on several a
/// rayon fold per thread and a `merge` of the per-thread maps.
pub(crate) fn fold_units<K, V>(
    input: &[RecordBatch],
    chunk: usize,
    fold: impl Fn(&RecordBatch, std::ops::Range<usize>, &mut HashMap<K, V, Hasher>) + Sync,
    merge: impl Fn(&mut HashMap<K, V, Hasher>, HashMap<K, V, Hasher>) + Sync,
) -> HashMap<K, V, Hasher>
where
    K: Send,
    V: Send,
{
    let units: Vec<(&RecordBatch, std::ops::Range<usize>)> = input
        .iter()
        .flat_map(|b| (0..b.num_rows()).step_by(chunk).map(move |s| (b, s..(s + chunk).min(b.num_rows()))))
        .collect();
    if rayon::current_num_threads() == 1 {
        let mut map = new_map();
        for (b, r) in &units {
            fold(b, r.clone(), &mut map);
        }
        return map;
    }
    units
        .par_iter()
        .fold(new_map, |mut m, (b, r)| {
            fold(b, r.clone(), &mut m);
            m
        })
        .reduce(new_map, |mut a, b| {
            merge(&mut a, b);
            a
        })
}

/// The rows as a sorted list of per-row fingerprints: the canonical form both sides are
/// compared in (a 64-bit hash of each row's values; comparing millions of formatted rows would
/// take longer than the benchmark).
pub fn canonical(batches: &[RecordBatch]) -> Vec<u64> {
    use std::hash::{BuildHasher, Hasher as _};
    fn feed(h: &mut impl std::hash::Hasher, col: &dyn Array, i: usize) {
        use arrow_schema::DataType as T;
        if col.is_null(i) {
            h.write_u8(0);
            return;
        }
        match col.data_type() {
            T::Int64 => h.write_i64(col.as_primitive::<Int64Type>().value(i)),
            T::Timestamp(..) => h.write_i64(col.as_primitive::<TimestampMicrosecondType>().value(i)),
            T::Utf8 => h.write(col.as_string::<i32>().value(i).as_bytes()),
            T::Float64 => h.write_u64(col.as_primitive::<arrow_array::types::Float64Type>().value(i).to_bits()),
            T::Struct(_) => {
                for c in col.as_struct().columns() {
                    feed(h, c.as_ref(), i);
                }
            }
            other => panic!("benchmark rows of type {other} are not compared"),
        }
    }
    let state = foldhash::fast::FixedState::with_seed(3);
    let mut rows = Vec::new();
    for b in batches {
        for i in 0..b.num_rows() {
            let mut h = state.build_hasher();
            for c in b.columns() {
                feed(&mut h, c.as_ref(), i);
            }
            rows.push(h.finish());
        }
    }
    rows.sort_unstable();
    rows
}

// ---------------------------------------------------------------- word count

#[derive(Record)]
struct WordCount {
    word: String,
    count: i64,
}

stream_query! {
    pub(crate) query WordCounts(lines: Line) -> WordCount, mode = complete {
        lines
            .flat_map(word = split(value, " "))
            .group_by(word)
            .agg(count() as count)
    }
}

fn fg_word_count(_rows: usize) -> Measured {
    let input = LINES.get().expect("prepared").clone();
    let start = Instant::now();
    let mut plan = (WordCounts::spec().make_plan)(&PlanConfig::with_partitions(partitions()));
    let out = plan.run_batch(&BatchContext::new(0, OutputMode::Complete), &[input]).expect("run");
    let elapsed = start.elapsed();
    Measured { elapsed, result: canonical(&out), note: String::new() }
}

fn count_words(arr: &arrow_array::StringArray, range: std::ops::Range<usize>, map: &mut HashMap<String, i64, Hasher>) {
    for i in range {
        if arr.is_null(i) {
            continue;
        }
        for w in arr.value(i).split(' ') {
            match map.get_mut(w) {
                Some(c) => *c += 1,
                None => {
                    map.insert(w.to_owned(), 1);
                }
            }
        }
    }
}

fn hand_word_count(_rows: usize) -> Measured {
    let input = LINES.get().expect("prepared");
    let start = Instant::now();
    let units: Vec<(&arrow_array::StringArray, std::ops::Range<usize>)> = input
        .iter()
        .flat_map(|b| {
            let arr = b.column(0).as_string::<i32>();
            (0..b.num_rows()).step_by(CHUNK).map(move |s| (arr, s..(s + CHUNK).min(b.num_rows())))
        })
        .collect();
    let map = if rayon::current_num_threads() == 1 {
        let mut map = new_map();
        for (arr, r) in &units {
            count_words(arr, r.clone(), &mut map);
        }
        map
    } else {
        units
            .par_iter()
            .fold(new_map, |mut m, (arr, r)| {
                count_words(arr, r.clone(), &mut m);
                m
            })
            .reduce(new_map, |mut a, b| {
                for (k, v) in b {
                    *a.entry(k).or_insert(0) += v;
                }
                a
            })
    };
    let mut words = StringBuilder::with_capacity(map.len(), map.len() * 6);
    let mut counts = Int64Builder::with_capacity(map.len());
    for (w, c) in &map {
        words.append_value(w);
        counts.append_value(*c);
    }
    let out = RecordBatch::try_new(
        WordCount::schema(),
        vec![Arc::new(words.finish()) as ArrayRef, Arc::new(counts.finish()) as ArrayRef],
    )
    .expect("batch");
    let elapsed = start.elapsed();
    Measured { elapsed, result: canonical(&[out]), note: format!("{} words", map.len()) }
}

// ---------------------------------------------------------------- grouped sum

#[derive(Record)]
struct KeyTotal {
    key: i64,
    total: i64,
}

stream_query! {
    query GroupedSum(events: KeyValue) -> KeyTotal, mode = complete {
        events.group_by(key).agg(sum(value) as total)
    }
}

fn fg_grouped_sum(_rows: usize) -> Measured {
    let input = KV.get().expect("prepared").clone();
    let start = Instant::now();
    let mut plan = (GroupedSum::spec().make_plan)(&PlanConfig::with_partitions(partitions()));
    let out = plan.run_batch(&BatchContext::new(0, OutputMode::Complete), &[input]).expect("run");
    let elapsed = start.elapsed();
    Measured { elapsed, result: canonical(&out), note: String::new() }
}

fn sum_chunk(b: &RecordBatch, range: std::ops::Range<usize>, map: &mut HashMap<i64, i64, Hasher>) {
    let keys = b.column(0).as_primitive::<Int64Type>().values();
    let values = b.column(1).as_primitive::<Int64Type>().values();
    for i in range {
        *map.entry(keys[i]).or_insert(0) += values[i];
    }
}

fn hand_grouped_sum(_rows: usize) -> Measured {
    let input = KV.get().expect("prepared");
    let start = Instant::now();
    let map = fold_units(input, CHUNK, sum_chunk, |a, b| {
        for (k, v) in b {
            *a.entry(k).or_insert(0) += v;
        }
    });
    let mut keys = Int64Builder::with_capacity(map.len());
    let mut totals = Int64Builder::with_capacity(map.len());
    for (k, v) in &map {
        keys.append_value(*k);
        totals.append_value(*v);
    }
    let out = RecordBatch::try_new(
        KeyTotal::schema(),
        vec![Arc::new(keys.finish()) as ArrayRef, Arc::new(totals.finish()) as ArrayRef],
    )
    .expect("batch");
    Measured { elapsed: start.elapsed(), result: canonical(&[out]), note: String::new() }
}

// ---------------------------------------------------------------- windowed count

/// CPU seconds this process has used (user + system, all threads; `/proc/self/stat`, in clock
/// ticks of 10 ms). On this shared machine (2 cores, load 8–20) wall time measures the load as
/// much as the code; CPU time over the timed region gives events per CPU-second, the per-core
/// figure. Zero where `/proc` is missing.
fn cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else { return 0.0 };
    // Fields after the command's closing parenthesis: state is the 3rd field, utime the 14th.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}

/// The note of a windowed run: events per CPU-second over the timed region.
fn cpu_note(rows: usize, cpu: f64) -> String {
    if cpu > 0.0 {
        format!("{:.2e} events/CPU-s", rows as f64 / cpu)
    } else {
        String::new()
    }
}

#[derive(Record)]
struct WindowCount {
    window: Window,
    key: i64,
    count: i64,
}

stream_query! {
    pub(crate) query WindowedCount(events: Event) -> WindowCount, mode = append {
        events
            .with_watermark(ts, "10 seconds")
            .group_by(window(ts, "1 minute"), key)
            .agg(count() as count)
    }
}

/// The windowed workload's window and watermark delay, in µs (as in the query above).
const WINDOW_US: i64 = 60_000_000;
const DELAY_US: i64 = 10_000_000;

fn fg_windowed(_rows: usize) -> Measured {
    let input = EVENTS.get().expect("prepared");
    let events: usize = input.iter().map(|b| b.num_rows()).sum();
    let cpu = cpu_seconds();
    let start = Instant::now();
    let mut plan = (WindowedCount::spec().make_plan)(&PlanConfig::with_partitions(partitions()));
    // The engine's watermark protocol: late input by the previous batch's watermark, eviction
    // by this batch's; the watermark after a batch is max(current, max event time − delay).
    let (mut wm_last, mut wm_next) = (0i64, 0i64);
    let mut out = Vec::new();
    // State bytes per group where the state is largest (a table keeps its capacity after
    // eviction, so the end of the run would overstate it).
    let mut peak = (0u64, 0u64);
    for (id, batch) in input.iter().enumerate() {
        let ctx = BatchContext {
            watermark_for_late: Some(wm_last),
            watermark_for_eviction: Some(wm_next),
            ..BatchContext::new(id as u64, OutputMode::Append)
        };
        out.extend(plan.run_batch(&ctx, &[vec![batch.clone()]]).expect("run"));
        let m = &plan.state_operators()[0];
        if m.num_rows_total > peak.0 {
            peak = (m.num_rows_total, m.memory_used_bytes);
        }
        let next = plan.watermarks().candidate().map_or(wm_next, |c| c.max(wm_next));
        wm_last = wm_next;
        wm_next = next;
    }
    let elapsed = start.elapsed();
    let cpu = cpu_seconds() - cpu;
    let per_group = peak.1 as f64 / peak.0.max(1) as f64;
    Measured {
        elapsed,
        result: canonical(&out),
        note: format!(
            "{}; state {per_group:.1} B per (window, key) at the peak of {} groups",
            cpu_note(events, cpu),
            peak.0
        ),
    }
}

/// (window start, key) → count.
type WindowMap = HashMap<(i64, i64), i64, Hasher>;

fn hand_windowed(_rows: usize) -> Measured {
    let input = EVENTS.get().expect("prepared");
    let events: usize = input.iter().map(|b| b.num_rows()).sum();
    let cpu = cpu_seconds();
    let start = Instant::now();
    let mut state: WindowMap = new_map();
    let (mut wm_last, mut wm_next) = (0i64, 0i64);
    let mut out = Vec::new();
    for batch in input {
        let ts = batch.column(0).as_primitive::<TimestampMicrosecondType>().values();
        let keys = batch.column(1).as_primitive::<Int64Type>().values();
        let count_range = |range: std::ops::Range<usize>, map: &mut WindowMap| {
            let mut max_ts = i64::MIN;
            for i in range {
                let t = ts[i];
                max_ts = max_ts.max(t);
                let w = t - t.rem_euclid(WINDOW_US);
                if w + WINDOW_US > wm_last {
                    *map.entry((w, keys[i])).or_insert(0) += 1;
                }
            }
            max_ts
        };
        let max_ts = if rayon::current_num_threads() == 1 {
            count_range(0..batch.num_rows(), &mut state)
        } else {
            let starts: Vec<usize> = (0..batch.num_rows()).step_by(CHUNK).collect();
            let partials: Vec<(WindowMap, i64)> = starts
                .par_iter()
                .map(|&s| {
                    let mut m = new_map();
                    let mx = count_range(s..(s + CHUNK).min(batch.num_rows()), &mut m);
                    (m, mx)
                })
                .collect();
            let mut mx = i64::MIN;
            for (m, x) in partials {
                mx = mx.max(x);
                for (k, v) in m {
                    *state.entry(k).or_insert(0) += v;
                }
            }
            mx
        };
        let mut windows = TimestampMicrosecondBuilder::new().with_timezone("UTC");
        let mut ends = TimestampMicrosecondBuilder::new().with_timezone("UTC");
        let mut ks = Int64Builder::new();
        let mut counts = Int64Builder::new();
        state.retain(|(w, k), c| {
            if w + WINDOW_US <= wm_next {
                windows.append_value(*w);
                ends.append_value(w + WINDOW_US);
                ks.append_value(*k);
                counts.append_value(*c);
                false
            } else {
                true
            }
        });
        let window_col = arrow_array::StructArray::new(
            match <Window as flowgate::ColumnType>::data_type() {
                arrow_schema::DataType::Struct(f) => f,
                _ => unreachable!("Window is a struct"),
            },
            vec![Arc::new(windows.finish()) as ArrayRef, Arc::new(ends.finish()) as ArrayRef],
            None,
        );
        out.push(
            RecordBatch::try_new(
                WindowCount::schema(),
                vec![Arc::new(window_col) as ArrayRef, Arc::new(ks.finish()), Arc::new(counts.finish())],
            )
            .expect("batch"),
        );
        // The engine's watermark: whole milliseconds, as Spark keeps it.
        let next = if max_ts == i64::MIN { wm_next } else { (max_ts.div_euclid(1000) * 1000 - DELAY_US).max(wm_next) };
        wm_last = wm_next;
        wm_next = next;
    }
    let elapsed = start.elapsed();
    let cpu = cpu_seconds() - cpu;
    Measured { elapsed, result: canonical(&out), note: cpu_note(events, cpu) }
}

/// Radix bits of the partitioned hand loop: 2^8 partitions. At the windowed workload's peak of
/// ~800 K groups a partition holds ~3 K groups (24 B each: ~100 KB with the table's slack),
/// so one partition's table stays in this machine's 2 MiB L2 while its rows are probed, and the
/// scatter writes 256 streams (16 KiB of open cache lines, within L1).
const RADIX_BITS: u32 = 8;

/// The partition of a hash: the RADIX_BITS bits below the top 7, which hashbrown keeps as
/// each slot's tag (partitioning by the tag's bits would leave every slot of a partition's
/// table with the same few tags, and every probe comparing keys).
#[inline(always)]
fn radix_part(h: u64) -> usize {
    (h >> (57 - RADIX_BITS)) as usize & ((1 << RADIX_BITS) - 1)
}

/// One (window, key) group of the partitioned hand loop.
struct WindowGroup {
    start: i64,
    key: i64,
    count: i64,
}

/// A row staged for its partition: the group's hash, window start and key.
type Staged = (u64, i64, i64);

/// The windowed count as a careful engineer writes it for a state larger than the cache:
/// each batch's rows are hashed and scattered into 2^[`RADIX_BITS`] partitions by the hash's
/// high bits (one sequential pass), then each partition's rows are counted into that
/// partition's own table, one partition at a time, so the probes of a partition hit a table
/// that sits in cache; the watermark then evicts each partition's closed windows. On several
/// threads the scatter runs per 64 Ki-row chunk and the partitions are counted in parallel,
/// each by one task over every chunk's rows for it in row order: no partial tables, no merge.
fn hand_windowed_radix(_rows: usize) -> Measured {
    let input = EVENTS.get().expect("prepared");
    let events: usize = input.iter().map(|b| b.num_rows()).sum();
    let cpu = cpu_seconds();
    let start = Instant::now();
    let parts = 1usize << RADIX_BITS;
    let hasher = Hasher::with_seed(1);
    let hash = move |w: i64, k: i64| {
        use std::hash::BuildHasher;
        hasher.hash_one((w, k))
    };
    let mut state: Vec<HashTable<WindowGroup>> = (0..parts).map(|_| HashTable::new()).collect();
    let (mut wm_last, mut wm_next) = (0i64, 0i64);
    let mut out = Vec::new();
    let one_thread = rayon::current_num_threads() == 1;
    for batch in input {
        let ts = batch.column(0).as_primitive::<TimestampMicrosecondType>().values();
        let keys = batch.column(1).as_primitive::<Int64Type>().values();
        let late_wm = wm_last;
        // Pass 1: scatter (hash, window, key) by the hash's high bits.
        let scatter = |range: std::ops::Range<usize>| {
            let per = range.len() / parts + range.len() / (4 * parts) + 16;
            let mut bufs: Vec<Vec<Staged>> = (0..parts).map(|_| Vec::with_capacity(per)).collect();
            let mut max_ts = i64::MIN;
            for i in range {
                let t = ts[i];
                max_ts = max_ts.max(t);
                let w = t - t.rem_euclid(WINDOW_US);
                if w + WINDOW_US > late_wm {
                    let k = keys[i];
                    let h = hash(w, k);
                    bufs[radix_part(h)].push((h, w, k));
                }
            }
            (bufs, max_ts)
        };
        let chunks: Vec<(Vec<Vec<Staged>>, i64)> = if one_thread {
            vec![scatter(0..batch.num_rows())]
        } else {
            let starts: Vec<usize> = (0..batch.num_rows()).step_by(CHUNK).collect();
            starts.par_iter().map(|&s| scatter(s..(s + CHUNK).min(batch.num_rows()))).collect()
        };
        let max_ts = chunks.iter().map(|c| c.1).max().unwrap_or(i64::MIN);
        // Transpose: each partition's rows, chunk by chunk (row order).
        let mut by_part: Vec<Vec<Vec<Staged>>> = (0..parts).map(|_| Vec::with_capacity(chunks.len())).collect();
        for (bufs, _) in chunks {
            for (p, b) in bufs.into_iter().enumerate() {
                by_part[p].push(b);
            }
        }
        // Pass 2: count each partition into its table, then evict its closed windows.
        let evict_wm = wm_next;
        let count_part = |table: &mut HashTable<WindowGroup>, rows: Vec<Vec<Staged>>| {
            for b in rows {
                for (h, w, k) in b {
                    match table.find_mut(h, |g| g.start == w && g.key == k) {
                        Some(g) => g.count += 1,
                        None => {
                            table
                                .insert_unique(h, WindowGroup { start: w, key: k, count: 1 }, |g| hash(g.start, g.key));
                        }
                    }
                }
            }
            table.extract_if(|g| g.start + WINDOW_US <= evict_wm).collect::<Vec<WindowGroup>>()
        };
        let closed: Vec<Vec<WindowGroup>> = if one_thread {
            state.iter_mut().zip(by_part).map(|(t, r)| count_part(t, r)).collect()
        } else {
            state.par_iter_mut().zip(by_part.into_par_iter()).map(|(t, r)| count_part(t, r)).collect()
        };
        let n: usize = closed.iter().map(Vec::len).sum();
        let mut windows = TimestampMicrosecondBuilder::with_capacity(n).with_timezone("UTC");
        let mut ends = TimestampMicrosecondBuilder::with_capacity(n).with_timezone("UTC");
        let mut ks = Int64Builder::with_capacity(n);
        let mut counts = Int64Builder::with_capacity(n);
        for g in closed.iter().flatten() {
            windows.append_value(g.start);
            ends.append_value(g.start + WINDOW_US);
            ks.append_value(g.key);
            counts.append_value(g.count);
        }
        let window_col = arrow_array::StructArray::new(
            match <Window as flowgate::ColumnType>::data_type() {
                arrow_schema::DataType::Struct(f) => f,
                _ => unreachable!("Window is a struct"),
            },
            vec![Arc::new(windows.finish()) as ArrayRef, Arc::new(ends.finish()) as ArrayRef],
            None,
        );
        out.push(
            RecordBatch::try_new(
                WindowCount::schema(),
                vec![Arc::new(window_col) as ArrayRef, Arc::new(ks.finish()), Arc::new(counts.finish())],
            )
            .expect("batch"),
        );
        // The engine's watermark: whole milliseconds, as Spark keeps it.
        let next = if max_ts == i64::MIN { wm_next } else { (max_ts.div_euclid(1000) * 1000 - DELAY_US).max(wm_next) };
        wm_last = wm_next;
        wm_next = next;
    }
    let elapsed = start.elapsed();
    let cpu = cpu_seconds() - cpu;
    Measured { elapsed, result: canonical(&out), note: cpu_note(events, cpu) }
}
