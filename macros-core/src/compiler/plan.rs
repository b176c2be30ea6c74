//! Phase 3, plan: the checked query as a small DAG of **pipelines** and **stateful operators**.
//!
//! A pipeline is one fused loop: it reads an input's Arrow batches (or a stateful operator's
//! emitted rows), runs stateless operators row by row, and ends at a breaker — a stateful
//! operator that keeps its rows (an aggregation) or the query's output. A stateful operator
//! that only filters rows (deduplication) sits *inside* a pipeline and makes it run its work
//! units in order on one thread. Stateful operators have stable ids (their position here):
//! the id names their state in the checkpoint. Each `with_watermark` is one tracker, also by
//! position.
//!
//! Every planning decision is made here and printed by `Display` (the plan snapshot): which
//! physical operator an aggregation is (hash or session), which input columns each input's
//! source must decode (`input_reads`), which output columns are passed through as input
//! slices, which computed items are dead, where each input column is loaded, and whether a
//! pipeline runs in parallel. Emit only writes these decisions down.

use std::collections::HashSet;
use std::fmt;

use quote::ToTokens;
use syn::{Expr, Ident, Type};

use super::ast::{ModeKind, Query};
use super::exprs::free_columns;
use super::logical::{AggFunc, AggItem, DedupSpec, GroupStateSpec, JoinSpec, Key, KeyKind, LOp, Logical, Schema};
use super::ops::stream_join::{Eviction, StreamJoinSpec};

/// The physical plan of one query.
pub struct Plan {
    /// Per declared input, in declaration order.
    pub inputs: Vec<InputPlan>,
    /// The event-time watermarks, by tracker id.
    pub watermarks: Vec<WatermarkPlan>,
    /// The stateful operators, by id.
    pub operators: Vec<Operator>,
    /// The pipelines, in the order they run within a batch.
    pub pipelines: Vec<Pipeline>,
    pub mode: ModeKind,
    /// See [`Logical::append_needs_key`]: the column and its input.
    pub append_needs_key: Option<(usize, Ident)>,
}

/// One declared input.
pub struct InputPlan {
    pub name: Ident,
    pub ty: Type,
    /// The columns its source must decode; `None`: every column (the input rows are the output).
    pub reads: Option<Vec<Ident>>,
}

/// One `with_watermark`.
pub struct WatermarkPlan {
    /// Whose rows it observes: an input's, or a group-state operator's records.
    pub source: Source,
    pub column: Ident,
    pub delay: i64,
}

/// A stateful operator.
pub struct Operator {
    pub id: usize,
    pub kind: OperatorKind,
    /// The watermark it drops late rows and evicts by.
    pub watermark: WatermarkInput,
}

/// Which watermark a stateful operator sees: Spark's watermark propagation between stateful
/// operators (`WatermarkPropagator`). Every operator passes its input watermark on, except a
/// stream-stream join, whose output watermark is the minimum of its input watermark and both
/// sides' state watermarks (rows it emits are never older than that).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum WatermarkInput {
    /// The query's watermark (of the batch, or of the previous batch for late rows).
    Query,
    /// The output watermark of the stream-stream join with this id.
    JoinOutput(usize),
}

pub enum OperatorKind {
    /// Hash aggregation (`stateStoreSave`): groups by key, a breaker.
    HashAggregate(AggPlan),
    /// Session-window aggregation: sessions per key, a breaker.
    SessionAggregate(AggPlan),
    /// Deduplication (`dedupe`): a stateful filter inside its pipeline.
    Dedup(DedupSpec),
    /// A stream-stream join (`symmetricHashJoin`): a breaker fed by two pipelines, the left
    /// input's and the right's.
    StreamJoin(Box<StreamJoinSpec>),
    /// The streaming global limit (`globalLimit`): the first `n` rows of the stream, a
    /// stateful filter inside its pipeline.
    GlobalLimit(usize),
    /// `map_groups_with_state` / `flat_map_groups_with_state`: the input rows grouped by key
    /// per batch, the user's function per key; a breaker whose output is the function's.
    GroupState(Box<GroupStateSpec>),
}

impl OperatorKind {
    /// Spark's name for the operator, as progress reports it.
    pub fn spark_name(&self) -> &'static str {
        match self {
            OperatorKind::HashAggregate(_) => "stateStoreSave",
            OperatorKind::SessionAggregate(_) => "sessionWindowStateStoreSaveExec",
            OperatorKind::Dedup(d) if d.within_watermark.is_some() => "dedupeWithinWatermark",
            OperatorKind::Dedup(_) => "dedupe",
            OperatorKind::StreamJoin(_) => "symmetricHashJoin",
            OperatorKind::GlobalLimit(_) => "globalLimit",
            OperatorKind::GroupState(g) if g.transform => "transformWithStateExec",
            OperatorKind::GroupState(_) => "flatMapGroupsWithState",
        }
    }
}

pub struct AggPlan {
    pub keys: Vec<Key>,
    pub aggs: Vec<AggItem>,
    /// Index of the key carrying event time (late input and eviction go by it).
    pub event_time_key: Option<usize>,
    /// Whether late input is dropped and state evicted by it (not in complete mode, as Spark).
    pub uses_watermark: bool,
}

/// Where a pipeline's rows come from.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Source {
    /// An input's batches.
    Input(usize),
    /// The rows a (breaker) stateful operator emits in this batch.
    Operator(usize),
}

/// Where a pipeline's rows go.
pub enum Sink {
    /// Into a breaker stateful operator.
    Operator(usize),
    /// Into the query's output.
    Output(OutputPlan),
}

/// How output rows are made.
pub enum OutputPlan {
    /// From an input's Arrow batches, column by column: each output column is an input column
    /// passed through (a zero-copy slice) or built by the row loop.
    Columns(ColumnsPlan),
    /// From a stateful operator's rows: one struct literal per row.
    Rows(Vec<Ident>),
    /// The output record is the input record and only filters ran: the input batch, filtered
    /// with a mask.
    InputRows,
    /// The records the pipeline's last `map_rows` / `flat_map_rows` returned, pushed whole.
    Records,
}

/// The column-by-column output of an input pipeline.
pub struct ColumnsPlan {
    /// Output column, and the input column it passes through unchanged, if any.
    pub columns: Vec<(Ident, Option<Ident>)>,
    /// `live[k][j]`: whether item `j` of operator `k` is evaluated (a bare-column item nobody
    /// reads is dead).
    pub live: Vec<Vec<bool>>,
    /// `binds[k]`: the input columns loaded just before operator `k` (`binds[ops.len()]`
    /// before the output), so rows a filter drops skip later loads.
    pub binds: Vec<Vec<Ident>>,
    /// Input columns named in the query but never loaded per row (still checked by rustc).
    pub unread: Vec<Ident>,
}

/// One fused loop.
pub struct Pipeline {
    pub source: Source,
    /// Stateless operators and stateful filters, in order.
    pub ops: Vec<LOp>,
    pub sink: Sink,
    /// The input columns loaded at the top of the row loop (input pipelines that do not load
    /// column by column; see [`ColumnsPlan::binds`]).
    pub reads: Vec<Ident>,
    /// Whether its work units may run in parallel (not with a stateful filter inside).
    pub parallel: bool,
    /// Whether the rows it feeds into a hash aggregation are staged (each row's key and
    /// aggregate inputs pushed, then probed into the state's sub-tables one sub-table at a
    /// time: `HashAggState::update_staged`) rather than probed as the loop reaches them. Only
    /// for parallel input pipelines whose keys and inputs borrow nothing but the input's
    /// columns (no typed map, join or group state before the aggregation), since staged
    /// values outlive the row loop.
    pub staged: bool,
}

impl Plan {
    /// Whether `pipeline` ends in a group-state operator.
    pub fn feeds_group_state(&self, pipeline: &Pipeline) -> bool {
        matches!(pipeline.sink, Sink::Operator(o) if matches!(self.operators[o].kind, OperatorKind::GroupState(_)))
    }

    /// Whether the groups a hash aggregation emits into `pipeline` (one from the
    /// aggregation's rows) go in Spark's order, shuffle partition by shuffle partition, rather
    /// than in the order its in-memory sub-tables hold them: when what follows depends on the
    /// order of its rows (another stateful operator, a dedup, a limit, a sort's ties).
    pub fn emits_in_partition_order(&self, pipeline: &Pipeline) -> bool {
        matches!(pipeline.sink, Sink::Operator(_))
            || pipeline.ops.iter().any(|op| matches!(op, LOp::Dedup { .. } | LOp::Limit { .. } | LOp::Sort { .. }))
    }

    /// The dedup operators of a pipeline, in order.
    pub fn filters_in<'a>(&'a self, pipeline: &'a Pipeline) -> impl Iterator<Item = (usize, &'a DedupSpec)> + 'a {
        pipeline.ops.iter().filter_map(move |op| match op {
            LOp::Dedup { op, .. } => match &self.operators[*op].kind {
                OperatorKind::Dedup(d) => Some((*op, d)),
                _ => None,
            },
            _ => None,
        })
    }
}

/// Builds the physical plan.
pub fn plan(q: &Query, logical: Logical) -> Plan {
    let mut operators: Vec<Operator> = Vec::new();
    let mut watermarks = Vec::new();
    let mut pipelines = Vec::new();
    let input = logical.input_index;
    let input_pipeline = |i: usize| Pipeline {
        source: Source::Input(i),
        ops: Vec::new(),
        sink: Sink::Operator(0),
        reads: Vec::new(),
        parallel: true,
        staged: false,
    };
    let mut current = input_pipeline(input);
    // The other inputs of a union: their pipelines take every operator after the union too.
    let mut branches: Vec<Pipeline> = Vec::new();
    // The inputs unioned after a map, with the map's columns the rest of the query reads.
    let mut mapped_branches: Vec<(usize, Vec<Ident>)> = Vec::new();
    let push = |current: &mut Pipeline, branches: &mut Vec<Pipeline>, op: LOp| {
        for b in branches.iter_mut() {
            b.ops.push(op.clone());
        }
        current.ops.push(op);
    };
    for op in logical.ops {
        match op {
            LOp::Watermark { column, delay, tracker } => {
                debug_assert_eq!(tracker, watermarks.len());
                watermarks.push(WatermarkPlan { source: current.source, column: column.clone(), delay });
                push(&mut current, &mut branches, LOp::Watermark { column, delay, tracker });
            }
            LOp::Union { input: other, ops } => {
                // After a map, the other input's rows are records of the map's type: the
                // branch loads the columns the operators after the map read.
                if let Some(spec) = current.ops.iter().rev().find_map(|o| match o {
                    LOp::TypedRows { spec } if spec.produces() => Some(spec),
                    _ => None,
                }) {
                    mapped_branches.push((other, spec.columns.clone()));
                } else if matches!(current.source, Source::Operator(o) if matches!(operators[o].kind, OperatorKind::StreamJoin(_)))
                {
                    // After a stream-stream join the other input gives the selected columns
                    // (its `union_columns`), none of the query input's.
                    mapped_branches.push((other, Vec::new()));
                }
                let mut b = input_pipeline(other);
                for op in ops {
                    if let LOp::Watermark { column, delay, tracker } = &op {
                        debug_assert_eq!(*tracker, watermarks.len());
                        watermarks.push(WatermarkPlan {
                            source: Source::Input(other),
                            column: column.clone(),
                            delay: *delay,
                        });
                    }
                    b.ops.push(op);
                }
                branches.push(b);
            }
            LOp::Aggregate { keys, aggs, event_time_key } => {
                let id = operators.len();
                let uses_watermark = event_time_key.is_some() && q.mode.kind != ModeKind::Complete;
                let session = keys.iter().any(|k| matches!(k.kind, KeyKind::Session { .. }));
                let agg = AggPlan { keys, aggs, event_time_key, uses_watermark };
                let kind = if session { OperatorKind::SessionAggregate(agg) } else { OperatorKind::HashAggregate(agg) };
                operators.push(Operator { id, kind, watermark: WatermarkInput::Query });
                current.sink = Sink::Operator(id);
                let next = Pipeline {
                    source: Source::Operator(id),
                    ops: Vec::new(),
                    sink: Sink::Operator(0),
                    reads: Vec::new(),
                    parallel: false,
                    staged: false,
                };
                pipelines.push(std::mem::replace(&mut current, next));
                for mut b in branches.drain(..) {
                    b.sink = Sink::Operator(id);
                    pipelines.push(b);
                }
            }
            LOp::StreamJoin { mut spec } => {
                let id = operators.len();
                spec.op = id;
                if let (Source::Operator(a), true) = (current.source, branches.is_empty()) {
                    if let OperatorKind::HashAggregate(agg) = &operators[a].kind {
                        spec.prune = super::ops::stream_join::prune_rule(
                            &spec,
                            a,
                            agg,
                            &current.ops,
                            q.mode.kind == ModeKind::Append,
                        );
                    }
                }
                let right = spec.right;
                let mut b = input_pipeline(right);
                b.parallel = false;
                b.sink = Sink::Operator(id);
                b.reads = spec.right_columns.clone();
                // The null filters first, before the watermark sees the rows (Spark pushes them
                // into the scan), where they read only input columns.
                if let Some(f) = spec.null_filter(true) {
                    b.ops.push(LOp::Filter { pred: f });
                    spec.null_filter_first.1 = true;
                }
                if let Some(f) = spec.null_filter(false) {
                    let defined: Vec<String> = current
                        .ops
                        .iter()
                        .flat_map(|o| match o {
                            LOp::Project { items } | LOp::WithColumns { items } => {
                                items.iter().map(|i| i.name.to_string()).collect::<Vec<_>>()
                            }
                            LOp::FlatMap { name, .. } => vec![name.to_string()],
                            _ => Vec::new(),
                        })
                        .collect();
                    if free_columns(&f).iter().all(|c| !defined.contains(&c.to_string())) {
                        // After a typed map the columns are its records': right after it.
                        let at = current
                            .ops
                            .iter()
                            .rposition(|o| matches!(o, LOp::TypedRows { spec } if spec.produces()))
                            .map_or(0, |i| i + 1);
                        current.ops.insert(at, LOp::Filter { pred: f.clone() });
                        // A union's other inputs feed the left side too: filtered first alike.
                        for br in &mut branches {
                            br.ops.insert(0, LOp::Filter { pred: f.clone() });
                        }
                        spec.null_filter_first.0 = true;
                    }
                }
                for op in &spec.right_ops {
                    if let LOp::Watermark { column, delay, tracker } = op {
                        debug_assert_eq!(*tracker, watermarks.len());
                        watermarks.push(WatermarkPlan {
                            source: Source::Input(right),
                            column: column.clone(),
                            delay: *delay,
                        });
                    }
                    b.ops.push(op.clone());
                }
                operators.push(Operator { id, kind: OperatorKind::StreamJoin(spec), watermark: WatermarkInput::Query });
                current.sink = Sink::Operator(id);
                current.parallel = false;
                let next = Pipeline {
                    source: Source::Operator(id),
                    ops: Vec::new(),
                    sink: Sink::Operator(0),
                    reads: Vec::new(),
                    parallel: false,
                    staged: false,
                };
                // Spark runs a left semi join's right side first: a left row matched by a
                // buffered right row is emitted at once and never buffered.
                let semi = matches!(&operators[id].kind, OperatorKind::StreamJoin(s) if s.kind == super::ops::stream_join::StreamJoinKind::LeftSemi);
                let left = std::mem::replace(&mut current, next);
                // A union's other inputs are left-side pipelines too, in order after the first.
                let mut lefts = vec![left];
                for mut br in branches.drain(..) {
                    br.sink = Sink::Operator(id);
                    br.parallel = false;
                    lefts.push(br);
                }
                if semi {
                    pipelines.push(b);
                    pipelines.extend(lefts);
                } else {
                    pipelines.extend(lefts);
                    pipelines.push(b);
                }
            }
            LOp::GroupState { spec, .. } => {
                let id = operators.len();
                operators.push(Operator {
                    id,
                    kind: OperatorKind::GroupState(Box::new(spec)),
                    watermark: WatermarkInput::Query,
                });
                // One thread in row order: a key's rows reach the function in input order.
                current.parallel = false;
                current.sink = Sink::Operator(id);
                let next = Pipeline {
                    source: Source::Operator(id),
                    ops: Vec::new(),
                    sink: Sink::Operator(0),
                    reads: Vec::new(),
                    parallel: false,
                    staged: false,
                };
                pipelines.push(std::mem::replace(&mut current, next));
            }
            LOp::Dedup { spec, .. } => {
                let id = operators.len();
                operators.push(Operator {
                    id,
                    kind: OperatorKind::Dedup(spec.clone()),
                    watermark: WatermarkInput::Query,
                });
                current.parallel = false;
                branches.iter_mut().for_each(|b| b.parallel = false);
                push(&mut current, &mut branches, LOp::Dedup { op: id, spec });
            }
            LOp::Limit { n, global: Some(_) } => {
                let id = operators.len();
                operators.push(Operator { id, kind: OperatorKind::GlobalLimit(n), watermark: WatermarkInput::Query });
                current.parallel = false;
                branches.iter_mut().for_each(|b| b.parallel = false);
                push(&mut current, &mut branches, LOp::Limit { n, global: Some(id) });
            }
            other => push(&mut current, &mut branches, other),
        }
    }
    // The columns each input's pipelines read: a unioned input the same as the query's own
    // (the record is the same) plus what its own operators read.
    let union_reads = |i: usize| -> Vec<Ident> {
        let mut cols = match mapped_branches.iter().find(|(b, _)| *b == i) {
            Some((_, mapped)) => mapped.clone(),
            None => logical.input_columns.clone(),
        };
        for (_, extra) in logical.union_columns.iter().filter(|(u, _)| *u == i) {
            for c in extra {
                if !cols.contains(c) {
                    cols.push(c.clone());
                }
            }
        }
        cols
    };
    let output = |p: &Pipeline| match (&logical.output, p.source) {
        (Schema::Open { .. }, _) if p.ops.iter().any(|o| matches!(o, LOp::TypedRows { spec } if spec.produces())) => {
            OutputPlan::Records
        }
        // A group-state function's records, through operators that only choose rows.
        (Schema::Open { .. }, Source::Operator(_)) => OutputPlan::Records,
        (Schema::Open { .. }, _) => OutputPlan::InputRows,
        (Schema::Closed { columns }, Source::Input(i)) => {
            OutputPlan::Columns(columns_plan(&p.ops, columns, &union_reads(i)))
        }
        (Schema::Closed { columns }, Source::Operator(_)) => OutputPlan::Rows(columns.clone()),
    };
    current.sink = Sink::Output(output(&current));
    pipelines.push(current);
    for mut b in branches {
        b.sink = Sink::Output(output(&b));
        pipelines.push(b);
    }
    // Watermark propagation: an operator fed by another's emitted rows (a breaker it sinks
    // into, or a stateful filter inside that pipeline) sees what that one passes on.
    for p in &pipelines {
        let Source::Operator(from) = p.source else { continue };
        let passed = match operators[from].kind {
            OperatorKind::StreamJoin(_) => WatermarkInput::JoinOutput(from),
            _ => operators[from].watermark,
        };
        let mut fed: Vec<usize> = p
            .ops
            .iter()
            .filter_map(|op| match op {
                LOp::Dedup { op, .. } | LOp::Limit { global: Some(op), .. } => Some(*op),
                _ => None,
            })
            .collect();
        if let Sink::Operator(to) = p.sink {
            fed.push(to);
        }
        for o in fed {
            operators[o].watermark = passed;
        }
    }
    // An input pipeline that does not build its output column by column loads every input
    // column it names at the top of its row loop (a stream-stream join's right side: its own).
    let right_inputs: Vec<usize> = operators
        .iter()
        .filter_map(|o| match &o.kind {
            OperatorKind::StreamJoin(s) => Some(s.right),
            _ => None,
        })
        .collect();
    for p in &mut pipelines {
        if let Source::Input(i) = p.source {
            if !matches!(p.sink, Sink::Output(OutputPlan::Columns(_))) && !right_inputs.contains(&i) {
                p.reads = union_reads(i);
            }
        }
    }
    // What each side of a stream-stream join buffers: what its condition and the operators
    // after it read, and the column its eviction reads.
    // Last join first: a join fed by another's rows decides what it reads from them.
    for id in (0..operators.len()).rev() {
        let Some(out) = pipelines.iter().find(|p| p.source == Source::Operator(id)) else { continue };
        let fed_columns: Vec<Ident> = match &out.sink {
            Sink::Operator(to) => match &operators[*to].kind {
                OperatorKind::StreamJoin(next) => next.left_reads(),
                other => operator_input_columns(other),
            },
            _ => Vec::new(),
        };
        let o = &mut operators[id];
        let OperatorKind::StreamJoin(spec) = &mut o.kind else { continue };
        let terminal: Vec<&Ident> = match &out.sink {
            Sink::Output(OutputPlan::Rows(c)) => c.iter().collect(),
            Sink::Operator(_) => fed_columns.iter().collect(),
            _ => Vec::new(),
        };
        let (_, needed) = liveness(&out.ops, &terminal);
        let vars: Vec<String> = spec.vars().iter().map(Ident::to_string).collect();
        spec.right_after = spec.fields.iter().filter(|f| needed.contains(&spec.var(f).to_string())).cloned().collect();
        let mut left: Vec<Ident> = Vec::new();
        let push = |v: &mut Vec<Ident>, c: Ident| {
            if !v.contains(&c) {
                v.push(c);
            }
        };
        let mut after: Vec<String> = needed.into_iter().filter(|n| !vars.contains(n)).collect();
        after.sort();
        let left_cols: Vec<Ident> = logical.input_columns.clone();
        for n in &after {
            let c = left_cols
                .iter()
                .find(|c| c.to_string() == *n)
                .cloned()
                .unwrap_or_else(|| Ident::new(n, proc_macro2::Span::call_site()));
            push(&mut left, c);
        }
        for c in spec.condition_left_names() {
            push(&mut left, c);
        }
        if let Eviction::Value { column, .. } = &spec.left_eviction {
            push(&mut left, column.clone());
        }
        let mut right: Vec<Ident> = spec.fields.clone();
        for c in spec.condition_right_columns() {
            push(&mut right, c);
        }
        if let Eviction::Value { column, .. } = &spec.right_eviction {
            push(&mut right, column.clone());
        }
        spec.left_stored = left;
        spec.right_stored = right;
    }
    // An input whose rows are the output, or whose rows a group-state function gets whole.
    let reads_all = |i: usize| {
        pipelines.iter().filter(|p| p.source == Source::Input(i)).any(|p| match p.sink {
            _ if reads_whole_rows(p) => true,
            Sink::Output(OutputPlan::InputRows) => true,
            Sink::Operator(o) => matches!(operators[o].kind, OperatorKind::GroupState(_)),
            Sink::Output(_) => false,
        })
    };
    let joins: Vec<JoinSpec> = pipelines
        .iter()
        .flat_map(|p| &p.ops)
        .filter_map(|op| match op {
            LOp::Join { spec } => Some(spec.clone()),
            _ => None,
        })
        .collect();
    let unioned: Vec<usize> = logical.union_columns.iter().map(|(i, _)| *i).collect();
    let inputs = q
        .inputs
        .iter()
        .enumerate()
        .map(|(i, decl)| InputPlan {
            name: decl.name.clone(),
            ty: decl.ty.clone(),
            reads: if i == input || unioned.contains(&i) {
                (!reads_all(i)).then(|| union_reads(i))
            } else if operators.iter().any(|o| {
                matches!(&o.kind, OperatorKind::GroupState(g) if g.initial_static.as_ref().is_some_and(|s| s.input == i))
            }) {
                // A group-state operator's initial state: whole records.
                None
            } else if let Some(s) = operators.iter().find_map(|o| match &o.kind {
                OperatorKind::StreamJoin(s) if s.right == i => Some(s),
                _ => None,
            }) {
                Some(s.right_columns.clone())
            } else {
                Some(joins.iter().filter(|j| j.input == i).flat_map(JoinSpec::static_reads).collect())
            },
        })
        .collect();
    for p in &mut pipelines {
        p.staged = stages_probes(p, &operators);
    }
    let append_needs_key = logical.append_needs_key.map(|c| (input, c));
    Plan { inputs, watermarks, operators, pipelines, mode: q.mode.kind, append_needs_key }
}

/// Whether `p` stages its rows into a hash aggregation ([`Pipeline::staged`]): a parallel
/// input pipeline of stateless row operators only, so keys and aggregate inputs are input
/// values (borrowing the input's columns) or owned values computed from them.
fn stages_probes(p: &Pipeline, operators: &[Operator]) -> bool {
    let into_hash = matches!(p.sink, Sink::Operator(o) if matches!(operators[o].kind, OperatorKind::HashAggregate(_)));
    let row_ops = p.ops.iter().all(|op| {
        matches!(
            op,
            LOp::Filter { .. }
                | LOp::Project { .. }
                | LOp::WithColumns { .. }
                | LOp::FlatMap { .. }
                | LOp::Watermark { .. }
        )
    });
    matches!(p.source, Source::Input(_)) && p.parallel && into_hash && row_ops
}

/// The columns a breaker reads from the rows fed to it (its keys and aggregate arguments).
fn operator_input_columns(kind: &OperatorKind) -> Vec<Ident> {
    let mut cols: Vec<Ident> = Vec::new();
    let mut add = |e: &Expr| {
        for c in free_columns(e) {
            if !cols.contains(&c) {
                cols.push(c);
            }
        }
    };
    if let OperatorKind::HashAggregate(a) | OperatorKind::SessionAggregate(a) = kind {
        for k in &a.keys {
            match &k.kind {
                KeyKind::Window { ts, .. } | KeyKind::Session { ts, .. } => add(ts),
                KeyKind::Plain => add(&k.item.expr),
            }
        }
        for g in &a.aggs {
            if let Some(arg) = &g.arg {
                add(arg);
            }
        }
    }
    cols
}

/// Whether a typed operation's function gets the input's rows whole.
fn reads_whole_rows(p: &Pipeline) -> bool {
    p.ops.iter().any(|o| matches!(o, LOp::TypedRows { spec } if spec.reads_input()))
}

/// The column `name` a bare column reference names (`auction` in `select(auction)` or in
/// `x = auction`), or `None` for any other expression.
pub fn bare_column(expr: &Expr) -> Option<Ident> {
    match expr {
        Expr::Path(p) if p.attrs.is_empty() && p.qself.is_none() && p.path.get_ident().is_some() => {
            free_columns(expr).into_iter().next()
        }
        _ => None,
    }
}

/// Whether an operator changes which rows there are (then no output column is a slice of
/// the input).
fn changes_rows(op: &LOp) -> bool {
    matches!(
        op,
        LOp::Filter { .. }
            | LOp::FlatMap { .. }
            | LOp::Aggregate { .. }
            | LOp::Dedup { .. }
            | LOp::Join { .. }
            | LOp::StreamJoin { .. }
            | LOp::Limit { global: Some(_), .. }
            | LOp::GroupState { .. }
            | LOp::TypedRows { .. }
    )
}

/// The input column that output column `name` is, unchanged, after the stateless operators
/// `ops` — or `None` when it is computed, or when an operator changes the rows.
fn passed_input(ops: &[LOp], name: &Ident) -> Option<Ident> {
    if ops.iter().any(changes_rows) {
        return None;
    }
    let mut current = name.clone();
    for op in ops.iter().rev() {
        match op {
            LOp::Project { items } | LOp::WithColumns { items } => match items.iter().find(|i| i.name == current) {
                Some(item) => current = bare_column(&item.expr)?,
                None if matches!(op, LOp::Project { .. }) => return None,
                None => {}
            },
            LOp::Watermark { .. } => {}
            LOp::Filter { .. }
            | LOp::FlatMap { .. }
            | LOp::Aggregate { .. }
            | LOp::Dedup { .. }
            | LOp::Join { .. }
            | LOp::StreamJoin { .. }
            | LOp::Union { .. }
            | LOp::GroupState { .. }
            | LOp::TypedRows { .. }
            | LOp::Sort { .. }
            | LOp::Limit { .. } => return None,
        }
    }
    Some(current)
}

/// The columns an operator reads.
fn reads_of(op: &LOp, live: Option<&[bool]>) -> Vec<String> {
    match op {
        LOp::Filter { pred } => free_columns(pred).iter().map(Ident::to_string).collect(),
        LOp::Project { items } | LOp::WithColumns { items } => items
            .iter()
            .enumerate()
            .filter(|(j, _)| live.and_then(|l| l.get(*j)).copied().unwrap_or(true))
            .flat_map(|(_, i)| free_columns(&i.expr))
            .map(|c| c.to_string())
            .collect(),
        LOp::FlatMap { expr, .. } => free_columns(expr).iter().map(Ident::to_string).collect(),
        LOp::Watermark { column, .. } => vec![column.to_string()],
        LOp::Dedup { spec, .. } => spec.reads().iter().map(Ident::to_string).collect(),
        LOp::Join { spec } => spec
            .keys
            .iter()
            .flat_map(|(e, _)| free_columns(e))
            .chain(spec.condition.iter().flat_map(free_columns))
            .map(|c| c.to_string())
            .collect(),
        LOp::Sort { keys } => keys.iter().flat_map(|k| free_columns(&k.expr)).map(|c| c.to_string()).collect(),
        LOp::Aggregate { .. }
        | LOp::Union { .. }
        | LOp::Limit { .. }
        | LOp::StreamJoin { .. }
        | LOp::GroupState { .. } => Vec::new(),
        // A map over columns (an aggregation's or a join's) reads the columns it makes its
        // records of; one over a record reads the record whole.
        LOp::TypedRows { spec } => spec.column_reads().iter().map(Ident::to_string).collect(),
    }
}

/// Which `select`/`with_column` items the row loop must evaluate so that output columns
/// `built` can be made, and the names it reads per row.
fn liveness(ops: &[LOp], built: &[&Ident]) -> (Vec<Vec<bool>>, HashSet<String>) {
    let mut needed: HashSet<String> = built.iter().map(|c| c.to_string()).collect();
    let mut live = vec![Vec::new(); ops.len()];
    for (k, op) in ops.iter().enumerate().rev() {
        match op {
            LOp::Project { items } | LOp::WithColumns { items } => {
                let flags: Vec<bool> = items
                    .iter()
                    .map(|i| bare_column(&i.expr).is_none() || needed.contains(&i.name.to_string()))
                    .collect();
                if matches!(op, LOp::Project { .. }) {
                    needed.clear();
                } else {
                    for i in items {
                        needed.remove(&i.name.to_string());
                    }
                }
                for (i, _) in items.iter().zip(&flags).filter(|(_, l)| **l) {
                    needed.extend(free_columns(&i.expr).iter().map(Ident::to_string));
                }
                live[k] = flags;
            }
            LOp::FlatMap { name, .. } => {
                needed.remove(&name.to_string());
                needed.extend(reads_of(op, None));
            }
            LOp::Join { spec } => {
                for v in spec.vars() {
                    needed.remove(&v.to_string());
                }
                needed.extend(reads_of(op, None));
            }
            // Names after a map are its records' columns; its function reads the row whole
            // (or, over columns, the columns it makes its records of).
            LOp::TypedRows { spec } if spec.produces() => {
                needed.clear();
                needed.extend(reads_of(op, None));
            }
            other => needed.extend(reads_of(other, None)),
        }
    }
    (live, needed)
}

/// Where the row loop reads each of `row_inputs`: `result[k]` holds the input columns that
/// operator `k` (or, for `k == ops.len()`, the output columns `terminal`) reads first.
/// Columns first read after a flat_map are read before it, once per input row.
fn bind_points(ops: &[LOp], live: &[Vec<bool>], row_inputs: &[Ident], terminal: &[&Ident]) -> Vec<Vec<Ident>> {
    let mut points = vec![Vec::new(); ops.len() + 1];
    let mut defined: HashSet<String> = HashSet::new();
    let mut bound: HashSet<String> = HashSet::new();
    let mut flat_map_at = None;
    // After a map no name is an input column: each is bound from the map's records.
    let mut mapped = false;
    for k in 0..=ops.len() {
        let reads: Vec<String> = match ops.get(k) {
            None => terminal.iter().map(|c| c.to_string()).collect(),
            Some(op) => reads_of(op, live.get(k).map(Vec::as_slice)),
        };
        let at = flat_map_at.unwrap_or(k);
        for r in reads {
            if mapped || defined.contains(&r) || bound.contains(&r) {
                continue;
            }
            if let Some(c) = row_inputs.iter().find(|c| **c == r) {
                bound.insert(r);
                points[at].push(c.clone());
            }
        }
        match ops.get(k) {
            Some(LOp::Project { items } | LOp::WithColumns { items }) => {
                defined.extend(items.iter().map(|i| i.name.to_string()))
            }
            Some(LOp::FlatMap { name, .. }) => {
                defined.insert(name.to_string());
                flat_map_at.get_or_insert(k);
            }
            Some(LOp::Join { spec }) => {
                defined.extend(spec.vars().iter().map(Ident::to_string));
                flat_map_at.get_or_insert(k);
            }
            Some(LOp::TypedRows { spec }) if spec.produces() => mapped = true,
            _ => {}
        }
    }
    points
}

/// The column-by-column output plan of an input pipeline.
fn columns_plan(ops: &[LOp], columns: &[Ident], input_columns: &[Ident]) -> ColumnsPlan {
    let passed: Vec<Option<Ident>> = columns.iter().map(|c| passed_input(ops, c)).collect();
    let built: Vec<&Ident> = columns.iter().zip(&passed).filter(|(_, s)| s.is_none()).map(|(c, _)| c).collect();
    let (live, needed) = liveness(ops, &built);
    let row_inputs: Vec<Ident> = input_columns.iter().filter(|c| needed.contains(&c.to_string())).cloned().collect();
    let binds = bind_points(ops, &live, &row_inputs, &built);
    let passed_names: HashSet<String> = passed.iter().flatten().map(Ident::to_string).collect();
    let unread = input_columns
        .iter()
        .filter(|c| !needed.contains(&c.to_string()) && !passed_names.contains(&c.to_string()))
        .cloned()
        .collect();
    ColumnsPlan { columns: columns.iter().cloned().zip(passed).collect(), live, binds, unread }
}

fn tokens(t: &impl ToTokens) -> String {
    t.to_token_stream().to_string()
}

fn idents(ids: &[Ident]) -> String {
    ids.iter().map(Ident::to_string).collect::<Vec<_>>().join(", ")
}

fn items(items: &[super::logical::Item], live: Option<&[bool]>) -> String {
    items
        .iter()
        .enumerate()
        .map(|(j, i)| {
            let dead = live.and_then(|l| l.get(j)).is_some_and(|l| !l);
            format!("{} = {}{}", i.name, tokens(&i.expr), if dead { " (dead: passed through)" } else { "" })
        })
        .collect::<Vec<_>>()
        .join(", ")
}

impl fmt::Display for AggPlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let keys: Vec<String> = self
            .keys
            .iter()
            .map(|k| match &k.kind {
                KeyKind::Plain => format!("{} = {}", k.item.name, tokens(&k.item.expr)),
                KeyKind::Window { ts, size, slide, offset } => {
                    format!(
                        "{} = window({}, size {size} µs, slide {slide} µs, offset {offset} µs)",
                        k.item.name,
                        tokens(ts)
                    )
                }
                KeyKind::Session { ts, gap } => {
                    format!("{} = session_window({}, gap {gap} µs)", k.item.name, tokens(ts))
                }
            })
            .collect();
        let aggs: Vec<String> = self
            .aggs
            .iter()
            .map(|x| {
                let arg = x.arg.as_ref().map(tokens).unwrap_or_default();
                let func = match x.func {
                    AggFunc::CountRows => "count()".to_string(),
                    other => format!("{}({arg})", other.name()),
                };
                format!("{} = {}", x.name, func)
            })
            .collect();
        write!(f, "keys [{}] aggs [{}]", keys.join(", "), aggs.join(", "))?;
        match (self.event_time_key, self.uses_watermark) {
            (Some(i), true) => write!(f, "; event-time key #{i}: late input dropped, state evicted by the watermark"),
            (Some(i), false) => write!(f, "; event-time key #{i}: complete mode keeps every group"),
            (None, _) => Ok(()),
        }
    }
}

impl fmt::Display for Plan {
    /// A readable dump for snapshot tests and `FLOWGATE_DUMP_PLAN`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, input) in self.inputs.iter().enumerate() {
            let is_static = self
                .pipelines
                .iter()
                .flat_map(|p| &p.ops)
                .any(|op| matches!(op, LOp::Join { spec } if spec.input == i));
            let reads = match &input.reads {
                Some(cols) if is_static => format!("static, read once, reads [{}]", idents(cols)),
                Some(cols) => format!("reads [{}]", idents(cols)),
                None if self.pipelines.iter().any(|p| p.source == Source::Input(i) && self.feeds_group_state(p)) => {
                    "reads every column (the group-state function gets whole rows)".to_string()
                }
                None if self.pipelines.iter().any(|p| p.source == Source::Input(i) && reads_whole_rows(p)) => {
                    "reads every column (a typed function gets whole rows)".to_string()
                }
                None => "reads every column (the rows are the output)".to_string(),
            };
            writeln!(f, "input #{i} {}: {}, {reads}", input.name, tokens(&input.ty))?;
        }
        for (i, w) in self.watermarks.iter().enumerate() {
            let on = match w.source {
                Source::Input(i) => format!("input #{i}"),
                Source::Operator(o) => format!("the records of stateful #{o}"),
            };
            writeln!(f, "watermark #{i}: {on} column {}, delay {} µs", w.column, w.delay)?;
        }
        for op in &self.operators {
            if let WatermarkInput::JoinOutput(j) = op.watermark {
                writeln!(f, "stateful #{} watermark: the output watermark of stateful #{j} (min of its input and both sides' state watermarks)", op.id)?;
            }
            match &op.kind {
                OperatorKind::HashAggregate(a) => {
                    writeln!(f, "stateful #{} {}: hash aggregate {a}", op.id, op.kind.spark_name())?
                }
                OperatorKind::SessionAggregate(a) => {
                    writeln!(f, "stateful #{} {}: session-window aggregate {a}", op.id, op.kind.spark_name())?
                }
                OperatorKind::Dedup(d) => writeln!(f, "stateful #{} {}: {d}", op.id, op.kind.spark_name())?,
                OperatorKind::StreamJoin(j) => writeln!(f, "stateful #{} {}: {j}", op.id, op.kind.spark_name())?,
                OperatorKind::GlobalLimit(n) => {
                    writeln!(f, "stateful #{} {}: the first {n} rows of the stream", op.id, op.kind.spark_name())?
                }
                OperatorKind::GroupState(g) => writeln!(f, "stateful #{} {}: {g}", op.id, op.kind.spark_name())?,
            }
        }
        for (n, p) in self.pipelines.iter().enumerate() {
            let from = match p.source {
                Source::Input(i) => format!("input #{i}"),
                Source::Operator(o) => format!("the rows stateful #{o} emits ({:?} mode)", self.mode),
            };
            let how = match (p.source, p.parallel, &p.sink) {
                (Source::Input(_), false, _) if self.feeds_group_state(p) => {
                    ", one thread in row order (a key's rows reach the function in input order)"
                }
                (Source::Input(_), true, _) if p.staged => {
                    ", parallel over row chunks, probes staged by state sub-table"
                }
                (Source::Input(_), true, _) => ", parallel over row chunks",
                (Source::Input(_), false, Sink::Operator(o))
                    if matches!(self.operators[*o].kind, OperatorKind::StreamJoin(_)) =>
                {
                    ", one thread in row order (a join side: the left side's rows first)"
                }
                (Source::Input(_), false, _) => ", one thread in row order (a stateful filter inside)",
                (Source::Operator(o), _, _)
                    if matches!(self.operators[o].kind, OperatorKind::HashAggregate(_))
                        && self.emits_in_partition_order(p) =>
                {
                    ", groups in shuffle-partition order (Spark's: the rows' order matters after)"
                }
                (Source::Operator(_), _, _) => "",
            };
            let reads =
                if p.reads.is_empty() { String::new() } else { format!(", loading [{}] per row", idents(&p.reads)) };
            writeln!(f, "pipeline {n}: from {from}{reads}{how}")?;
            let columns = match &p.sink {
                Sink::Output(OutputPlan::Columns(c)) => Some(c),
                _ => None,
            };
            for (k, op) in p.ops.iter().enumerate() {
                if let Some(c) = columns {
                    if !c.binds[k].is_empty() {
                        writeln!(f, "    load [{}]", idents(&c.binds[k]))?;
                    }
                }
                let live = columns.and_then(|c| c.live.get(k)).map(Vec::as_slice);
                match op {
                    LOp::Filter { pred } => writeln!(f, "    filter {}", tokens(pred))?,
                    LOp::Project { items: it } => writeln!(f, "    project {}", items(it, live))?,
                    LOp::WithColumns { items: it } => writeln!(f, "    with_columns {}", items(it, live))?,
                    LOp::FlatMap { name, expr } => writeln!(f, "    flat_map {name} in {}", tokens(expr))?,
                    LOp::Watermark { column, tracker, .. } => {
                        writeln!(f, "    observe max event time of {column} (watermark #{tracker})")?
                    }
                    LOp::Dedup { op, .. } => writeln!(f, "    keep the first row per key (stateful #{op})")?,
                    LOp::Join { spec } => {
                        let fields = spec.fields.iter().map(Ident::to_string).collect::<Vec<_>>().join(", ");
                        writeln!(f, "    {spec}, binding [{fields}] per match (static side indexed once, when the query starts)")?
                    }
                    LOp::Sort { keys } => {
                        let keys: Vec<String> = keys
                            .iter()
                            .map(|k| {
                                let nulls = match k.nulls_first {
                                    Some(true) => " nulls first",
                                    Some(false) => " nulls last",
                                    None => "",
                                };
                                format!("{} {}{nulls}", tokens(&k.expr), if k.descending { "desc" } else { "asc" })
                            })
                            .collect();
                        writeln!(f, "    sort the batch's rows by [{}]", keys.join(", "))?
                    }
                    LOp::Limit { n, global: None } => writeln!(f, "    keep the first {n} rows")?,
                    LOp::Limit { global: Some(op), .. } => {
                        writeln!(f, "    pass rows while the limit has room (stateful #{op})")?
                    }
                    LOp::TypedRows { spec } => writeln!(f, "    {spec}")?,
                    LOp::Aggregate { .. } | LOp::Union { .. } | LOp::StreamJoin { .. } | LOp::GroupState { .. } => {
                        writeln!(f, "    (breaker)")?
                    }
                }
            }
            match &p.sink {
                Sink::Operator(o) => writeln!(f, "    → into stateful #{o}")?,
                Sink::Output(OutputPlan::Columns(c)) => {
                    if !c.binds[p.ops.len()].is_empty() {
                        writeln!(f, "    load [{}]", idents(&c.binds[p.ops.len()]))?;
                    }
                    let cols: Vec<String> = c
                        .columns
                        .iter()
                        .map(|(name, passed)| match passed {
                            Some(input) => format!("{name} (passed through from {input})"),
                            None => name.to_string(),
                        })
                        .collect();
                    writeln!(f, "    → output record ({})", cols.join(", "))?;
                    if !c.unread.is_empty() {
                        writeln!(f, "    (named but never loaded: {})", idents(&c.unread))?;
                    }
                }
                Sink::Output(OutputPlan::Rows(c))
                    if c.is_empty() && matches!(p.source, Source::Operator(o) if matches!(self.operators[o].kind, OperatorKind::GroupState(_))) =>
                {
                    writeln!(f, "    → output record (the records the function returns, one thread, keys with rows first, then timed-out keys)")?
                }
                Sink::Output(OutputPlan::Rows(c)) => writeln!(f, "    → output record ({})", idents(c))?,
                Sink::Output(OutputPlan::InputRows) => writeln!(f, "    → output = input rows (mask filter)")?,
                Sink::Output(OutputPlan::Records)
                    if !p.ops.iter().any(|o| matches!(o, LOp::TypedRows { spec } if spec.produces())) =>
                {
                    writeln!(f, "    → output record = the records the function returns, pushed whole")?
                }
                Sink::Output(OutputPlan::Records) => {
                    writeln!(f, "    → output record = the records the last map returns, pushed whole")?
                }
            }
        }
        Ok(())
    }
}
