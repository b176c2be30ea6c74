//! Arbitrary stateful processing (`map_groups_with_state`) against a hand-written loop with a
//! hash map of the same state: per key, events and clicks so far, one output row per key a
//! batch touched (update mode). The input is `BATCHES` batches over `KEYS` keys, so each
//! batch updates most keys once: the figure is per-key state updates per second, and the
//! state bytes per key (in memory, and as the checkpoint encodes it).

use std::sync::{Arc, OnceLock};
use std::time::Instant;

use arrow_array::builder::Int64Builder;
use arrow_array::cast::AsArray;
use arrow_array::types::Int64Type;
use arrow_array::{ArrayRef, RecordBatch};
use flowgate::engine::{BatchContext, PlanConfig, PlanExt};
use flowgate::prelude::*;
use hashbrown::HashMap;

use crate::data::SplitMix;
use crate::workloads::{canonical, Hasher};
use crate::Measured;

#[derive(Record)]
pub struct Click {
    pub user: i64,
    pub clicks: i64,
}

#[derive(Record)]
pub struct UserTotal {
    pub user: i64,
    pub events: i64,
    pub clicks: i64,
}

/// The state per user: a small struct, as issue 13 asks to measure.
#[derive(StateCodec, Clone, Copy, Default)]
pub struct Totals {
    events: i64,
    clicks: i64,
}

/// The user's function: fold the batch's rows of one key into its state.
fn totals(user: &i64, rows: Vec<Click>, state: &mut GroupState<Totals>) -> UserTotal {
    let mut t = state.get_option().copied().unwrap_or_default();
    for r in &rows {
        t.events += 1;
        t.clicks += r.clicks;
    }
    state.update(t);
    UserTotal { user: *user, events: t.events, clicks: t.clicks }
}

/// [`totals`] taking its rows as the batch arena's iterator (Spark's `Iterator[V]`): no
/// `Vec` per key and call.
fn totals_iter(user: &i64, rows: GroupRows<'_, Click>, state: &mut GroupState<Totals>) -> UserTotal {
    let mut t = state.get_option().copied().unwrap_or_default();
    for r in rows {
        t.events += 1;
        t.clicks += r.clicks;
    }
    state.update(t);
    UserTotal { user: *user, events: t.events, clicks: t.clicks }
}

/// The same fold as a Spark 4 `StatefulProcessor`: the totals in one value state.
#[derive(Default)]
struct TotalsProcessor {
    totals: ValueState<Totals>,
}

impl StatefulProcessor for TotalsProcessor {
    type Key = i64;
    type Input = Click;
    type Output = UserTotal;

    fn init(&mut self, handle: &mut StatefulProcessorHandle) {
        self.totals = handle.get_value_state("totals", Ttl::NONE);
    }

    fn handle_input_rows(
        &mut self,
        user: &i64,
        rows: GroupRows<'_, Click>,
        _timer_values: &TimerValues,
        h: &mut KeyHandle<'_>,
    ) -> impl IntoIterator<Item = UserTotal> {
        let mut t = self.totals.get(h).unwrap_or_default();
        for r in rows {
            t.events += 1;
            t.clicks += r.clicks;
        }
        self.totals.update(h, t);
        Some(UserTotal { user: *user, events: t.events, clicks: t.clicks })
    }
}

stream_query! {
    /// Running totals per user, the changed ones each batch.
    pub(crate) query RunningTotals(clicks: Click) -> UserTotal, mode = update {
        clicks.group_by(user).map_groups_with_state(totals)
    }

    /// The same with the rows as an iterator.
    pub(crate) query RunningTotalsIter(clicks: Click) -> UserTotal, mode = update {
        clicks.group_by(user).map_groups_with_state(totals_iter)
    }

    /// The same with `transform_with_state`.
    pub(crate) query RunningTotalsTws(clicks: Click) -> UserTotal, mode = update {
        clicks.group_by(user).transform_with_state(TotalsProcessor::default(), time_mode = none)
    }
}

/// Keys: 100 K users, a state table larger than L2, as a real per-user state is.
pub const KEYS: u64 = 100_000;
/// Batches the rows are split into: each batch touches most keys (rows / BATCHES / KEYS rows
/// per key and batch: about one at 10 M rows).
pub const BATCHES: usize = 100;

static INPUT: OnceLock<Vec<RecordBatch>> = OnceLock::new();

pub fn prepare(rows: usize) {
    INPUT.get_or_init(|| {
        let mut rng = SplitMix::new(13);
        let per = rows.div_ceil(BATCHES);
        (0..rows)
            .step_by(per)
            .map(|start| {
                let n = per.min(rows - start);
                Click::to_batch((0..n).map(|_| Click { user: rng.below(KEYS) as i64, clicks: rng.below(10) as i64 }))
                    .expect("batch")
            })
            .collect()
    });
}

pub fn fg(rows: usize) -> Measured {
    fg_of(rows, RunningTotals::spec().make_plan)
}

/// [`fg`] with the function taking `GroupRows` (no `Vec` per key).
pub fn fg_iter(rows: usize) -> Measured {
    fg_of(rows, RunningTotalsIter::spec().make_plan)
}

fn fg_of(_rows: usize, make_plan: fn(&PlanConfig) -> Box<dyn flowgate::engine::Plan>) -> Measured {
    let input = INPUT.get().expect("prepared");
    let start = Instant::now();
    let mut plan = make_plan(&PlanConfig::with_partitions(2));
    let mut out = Vec::with_capacity(input.len());
    let mut updates = 0u64;
    for (i, b) in input.iter().enumerate() {
        out.extend(plan.run_batch(&BatchContext::new(i as u64, OutputMode::Update), &[vec![b.clone()]]).expect("run"));
        updates += plan.state_operators()[0].num_rows_updated;
    }
    let elapsed = start.elapsed();
    let m = &plan.state_operators()[0];
    let memory = m.memory_used_bytes as f64 / m.num_rows_total as f64;
    // The checkpoint's bytes per key: the encoded key and value (`group_state[struct[..]]`).
    let encoded = flowgate::codec::to_bytes(&(0i64,)).len()
        + flowgate::codec::to_bytes(&flowgate::ops::group_state::GroupStateValue {
            state: Some(Totals::default()),
            timeout_ms: -1,
        })
        .len();
    Measured {
        elapsed,
        note: format!(
            "{updates} state updates ({:.3e}/s); state {memory:.1} B/key in memory, {encoded} B/key encoded",
            updates as f64 / elapsed.as_secs_f64()
        ),
        result: canonical(&out),
    }
}

/// `transform_with_state` with one value state: the stored value is the state's encoding
/// (the runtime holds no user type), decoded and encoded per call.
pub fn fg_tws(_rows: usize) -> Measured {
    let input = INPUT.get().expect("prepared");
    let start = Instant::now();
    let mut plan = (RunningTotalsTws::spec().make_plan)(&PlanConfig::with_partitions(2));
    let mut out = Vec::with_capacity(input.len());
    let mut updates = 0u64;
    for (i, b) in input.iter().enumerate() {
        out.extend(plan.run_batch(&BatchContext::new(i as u64, OutputMode::Update), &[vec![b.clone()]]).expect("run"));
        updates += plan.state_operators()[0].num_rows_updated;
    }
    let elapsed = start.elapsed();
    let m = &plan.state_operators()[0];
    let memory = m.memory_used_bytes as f64 / m.num_rows_total as f64;
    Measured {
        elapsed,
        note: format!(
            "{updates} state updates ({:.3e}/s); state {memory:.1} B/key in memory (table and encoded rows)",
            updates as f64 / elapsed.as_secs_f64()
        ),
        result: canonical(&out),
    }
}

/// The hand loop of the first figures (`results/group_state-2026-12-01*.txt`): a second map
/// of the batch that last touched each key, so two probes per row. Kept beside [`hand`] so
/// the earlier ratios can be compared with today's.
pub fn hand_two_maps(_rows: usize) -> Measured {
    let input = INPUT.get().expect("prepared");
    let start = Instant::now();
    let mut state: HashMap<i64, Totals, Hasher> = HashMap::with_hasher(Hasher::with_seed(1));
    let mut touched_in: HashMap<i64, usize, Hasher> = HashMap::with_hasher(Hasher::with_seed(2));
    let schema = UserTotal::schema();
    let mut out = Vec::with_capacity(input.len());
    for (bi, b) in input.iter().enumerate() {
        let users = b.column(0).as_primitive::<Int64Type>().values();
        let clicks = b.column(1).as_primitive::<Int64Type>().values();
        let mut touched = Vec::new();
        for i in 0..b.num_rows() {
            let t = state.entry(users[i]).or_default();
            t.events += 1;
            t.clicks += clicks[i];
            let last = touched_in.entry(users[i]).or_insert(usize::MAX);
            if *last != bi {
                *last = bi;
                touched.push(users[i]);
            }
        }
        let (mut u, mut e, mut c) = (
            Int64Builder::with_capacity(touched.len()),
            Int64Builder::with_capacity(touched.len()),
            Int64Builder::with_capacity(touched.len()),
        );
        for k in touched {
            let t = state[&k];
            u.append_value(k);
            e.append_value(t.events);
            c.append_value(t.clicks);
        }
        let cols: Vec<ArrayRef> = vec![Arc::new(u.finish()), Arc::new(e.finish()), Arc::new(c.finish())];
        out.push(RecordBatch::try_new(schema.clone(), cols).expect("batch"));
    }
    let elapsed = start.elapsed();
    Measured { elapsed, note: String::new(), result: canonical(&out) }
}

/// What a careful engineer writes: one hash map holding each key's state and the batch that
/// last touched it (one probe per row), per batch the touched keys in first-seen order, then
/// one output row per touched key.
pub fn hand(_rows: usize) -> Measured {
    let input = INPUT.get().expect("prepared");
    let start = Instant::now();
    let mut state: HashMap<i64, (Totals, usize), Hasher> = HashMap::with_hasher(Hasher::with_seed(1));
    let schema = UserTotal::schema();
    let mut out = Vec::with_capacity(input.len());
    let mut touched = Vec::new();
    for (bi, b) in input.iter().enumerate() {
        let users = b.column(0).as_primitive::<Int64Type>().values();
        let clicks = b.column(1).as_primitive::<Int64Type>().values();
        touched.clear();
        for i in 0..b.num_rows() {
            let (t, last) = state.entry(users[i]).or_insert((Totals::default(), usize::MAX));
            t.events += 1;
            t.clicks += clicks[i];
            if *last != bi {
                *last = bi;
                touched.push(users[i]);
            }
        }
        let (mut u, mut e, mut c) = (
            Int64Builder::with_capacity(touched.len()),
            Int64Builder::with_capacity(touched.len()),
            Int64Builder::with_capacity(touched.len()),
        );
        for k in &touched {
            let t = state[k].0;
            u.append_value(*k);
            e.append_value(t.events);
            c.append_value(t.clicks);
        }
        let cols: Vec<ArrayRef> = vec![Arc::new(u.finish()), Arc::new(e.finish()), Arc::new(c.finish())];
        out.push(RecordBatch::try_new(schema.clone(), cols).expect("batch"));
    }
    let elapsed = start.elapsed();
    Measured { elapsed, note: String::new(), result: canonical(&out) }
}

/// No next row in [`hand_grouped`]'s arena.
const END: u32 = u32::MAX;

/// The fold of [`totals`], as the hand loop calls it: once per key and batch, with its rows.
#[inline]
fn fold(user: i64, rows: impl Iterator<Item = Click>, t: &mut Totals) -> (i64, i64, i64) {
    for r in rows {
        t.events += 1;
        t.clicks += r.clicks;
    }
    (user, t.events, t.clicks)
}

/// What a careful engineer writes for `map_groups_with_state`'s semantics — the function
/// called once per key and batch with that key's rows, in input order, keys in first-seen
/// order — with one hash map: each key's slot (its state, the batch that last touched it,
/// its rows' chain in the batch's arena) found once per row, the touched slots listed, then
/// one call per touched key over its chain. The state is kept in memory only, as in [`fg`]
/// (no checkpoint on either side).
pub fn hand_grouped(_rows: usize) -> Measured {
    struct Slot {
        state: Totals,
        last: usize,
        head: u32,
        tail: u32,
    }
    let input = INPUT.get().expect("prepared");
    let start = Instant::now();
    let mut index: HashMap<i64, u32, Hasher> = HashMap::with_hasher(Hasher::with_seed(1));
    let mut slots: Vec<Slot> = Vec::new();
    let mut arena: Vec<(Click, u32)> = Vec::new();
    let mut touched: Vec<(i64, u32)> = Vec::new();
    let schema = UserTotal::schema();
    let mut out = Vec::with_capacity(input.len());
    for (bi, b) in input.iter().enumerate() {
        let users = b.column(0).as_primitive::<Int64Type>().values();
        let clicks = b.column(1).as_primitive::<Int64Type>().values();
        touched.clear();
        arena.clear();
        for i in 0..b.num_rows() {
            let at = arena.len() as u32;
            arena.push((Click { user: users[i], clicks: clicks[i] }, END));
            let idx = *index.entry(users[i]).or_insert_with(|| {
                slots.push(Slot { state: Totals::default(), last: usize::MAX, head: END, tail: END });
                slots.len() as u32 - 1
            });
            let s = &mut slots[idx as usize];
            if s.last != bi {
                s.last = bi;
                s.head = at;
                touched.push((users[i], idx));
            } else {
                arena[s.tail as usize].1 = at;
            }
            s.tail = at;
        }
        let (mut u, mut e, mut c) = (
            Int64Builder::with_capacity(touched.len()),
            Int64Builder::with_capacity(touched.len()),
            Int64Builder::with_capacity(touched.len()),
        );
        for &(user, idx) in &touched {
            let s = &mut slots[idx as usize];
            let mut at = s.head;
            let rows = std::iter::from_fn(|| {
                (at != END).then(|| {
                    let (r, next) = &arena[at as usize];
                    at = *next;
                    Click { user: r.user, clicks: r.clicks }
                })
            });
            let (k, events, clicks) = fold(user, rows, &mut s.state);
            u.append_value(k);
            e.append_value(events);
            c.append_value(clicks);
        }
        let cols: Vec<ArrayRef> = vec![Arc::new(u.finish()), Arc::new(e.finish()), Arc::new(c.finish())];
        out.push(RecordBatch::try_new(schema.clone(), cols).expect("batch"));
    }
    let elapsed = start.elapsed();
    Measured { elapsed, note: String::new(), result: canonical(&out) }
}
