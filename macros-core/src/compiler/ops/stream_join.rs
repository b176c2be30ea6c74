//! Stream-stream joins: `.join(clicks.with_watermark(clickTime, "3 hours"), impressionAdId =
//! clicks.clickAdId, kind = left_outer, on = clicks.clickTime >= impressionTime &&
//! clicks.clickTime <= impressionTime + "1 hour")` (Spark's `StreamingSymmetricHashJoinExec`).
//!
//! The query's own stream is the left side; the other stream, with its own filters and
//! watermark, is the first argument. As in a stream-static join, the right side's columns are
//! written `clicks.col` (in the keys, the condition and every later operator), the left's
//! unqualified. A key is `left_expr = clicks.col`, a column both sides have (`ad_id`), or equal
//! tumbling windows `window(impressionTime, "1 hour") = window(clicks.clickTime, "1 hour")`.
//!
//! `on` is split into its `&&` conjuncts, as Spark splits a join condition: a conjunct over
//! one side only filters that side before the join (an outer side's row that fails it is
//! emitted null-padded at once); a conjunct comparing the two sides' times (`col ± "interval"`
//! on each side, `between(t, lo, hi)` for two) is a *time range*, compiled here with SQL's null
//! semantics and solved for each side's state watermark (Spark's `StreamingJoinHelper`); every
//! other conjunct is Rust, evaluated per candidate pair. The outer side's columns become
//! nullable after an outer join (`ColumnType::Padded`: `Option`, never an `Option` of one).

use proc_macro2::TokenStream;
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{BinOp, Expr, Ident, Index};

use crate::compiler::ast::{Call, ModeKind, Query};
use crate::compiler::check::{check_no_aggregate, duration_arg, single_arg, watermark_args, Cx};
use crate::compiler::diag::{hint, Diagnostics};
use crate::compiler::emit::{collect_units, fuse, unit_loop, Feed};
use crate::compiler::exprs::free_columns;
use crate::compiler::logical::{JoinSpec, LOp, Schema};
use crate::compiler::ops::join::StaticRefs;
use crate::compiler::ops::{self, typed, OpKind};
use crate::compiler::parse::unwind_chain;
use crate::compiler::plan::{Pipeline, Plan};

/// The join types of a stream-stream join.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum StreamJoinKind {
    Inner,
    LeftOuter,
    RightOuter,
    FullOuter,
    LeftSemi,
}

impl StreamJoinKind {
    fn name(self) -> &'static str {
        match self {
            StreamJoinKind::Inner => "inner",
            StreamJoinKind::LeftOuter => "left outer",
            StreamJoinKind::RightOuter => "right outer",
            StreamJoinKind::FullOuter => "full outer",
            StreamJoinKind::LeftSemi => "left semi",
        }
    }
    /// Whether the left side's unmatched rows are emitted (null-padded).
    pub fn left_outer(self) -> bool {
        matches!(self, StreamJoinKind::LeftOuter | StreamJoinKind::FullOuter)
    }
    /// Whether the right side's unmatched rows are emitted.
    pub fn right_outer(self) -> bool {
        matches!(self, StreamJoinKind::RightOuter | StreamJoinKind::FullOuter)
    }
}

/// One equi-join key: the left side's expression and the right side's (over `clicks.col`
/// variables); `window`: both are `window(t, size)` of one column each (size µs).
#[derive(Clone)]
pub struct JoinKey {
    pub left: Expr,
    pub right: Expr,
    pub window: Option<(Ident, Ident, i64)>,
    /// Whether the left column of a window key is already a window: the event-time window of
    /// the aggregation before the join (`window = window(bids.date_time, "10 seconds")`, as
    /// Spark compares `maxes.window = window(bids.date_time, ...)`).
    pub left_is_window: bool,
}

/// One side of a time comparison: a column plus a constant (µs).
#[derive(Clone, Debug)]
pub struct TimeTerm {
    pub column: Ident,
    /// Whether the column is the right side's (its variable name is `column`).
    pub right: bool,
    pub offset: i64,
}

/// `lo < hi` (`strict`) or `lo <= hi`, one term per side.
#[derive(Clone, Debug)]
pub struct TimeRange {
    pub lo: TimeTerm,
    pub hi: TimeTerm,
    pub strict: bool,
}

/// How a side's buffered rows leave the state.
#[derive(Clone, Debug, PartialEq)]
pub enum Eviction {
    /// Kept forever (no watermark bounds them).
    Never,
    /// By key: key `#i` (a watermarked column or its window) behind the watermark.
    Key(usize),
    /// By the side's watermarked column against its state watermark: per bound, the offset
    /// added to the watermark and whether the comparison is strict.
    Value { column: Ident, bounds: Vec<(i64, bool)> },
}

/// A checked stream-stream join.
#[derive(Clone)]
pub struct StreamJoinSpec {
    /// The stateful operator's id (set by the plan phase).
    pub op: usize,
    pub right: usize,
    pub right_name: Ident,
    /// The right side's own operators (filters, its watermark).
    pub right_ops: Vec<LOp>,
    pub kind: StreamJoinKind,
    pub keys: Vec<JoinKey>,
    /// Conjuncts over the left side only, the right side only, and both (Rust).
    pub left_pre: Vec<Expr>,
    pub right_pre: Vec<Expr>,
    pub post: Vec<Expr>,
    pub ranges: Vec<TimeRange>,
    /// Right columns read after the join, in the keys or the condition, and by its own
    /// operators (each loaded by the right side's pipeline).
    pub right_columns: Vec<Ident>,
    /// Right columns the operators after the join read (as `clicks.col`).
    pub fields: Vec<Ident>,
    pub left_watermark: Option<Ident>,
    pub right_watermark: Option<Ident>,
    pub left_eviction: Eviction,
    pub right_eviction: Eviction,
    /// The columns each side buffers (set by the plan phase): what the condition and the
    /// operators after the join read, and the column eviction reads.
    pub left_stored: Vec<Ident>,
    pub right_stored: Vec<Ident>,
    /// The right columns the operators after the join read (set by the plan phase).
    pub right_after: Vec<Ident>,
    /// Whether each side's null filter (see [`StreamJoinSpec::null_filter`]) runs first in its
    /// pipeline, before its watermark sees the row, as Spark pushes it into the scan (set by
    /// the plan phase; otherwise it runs just before the join).
    pub null_filter_first: (bool, bool),
    /// The right rows that can never match, by the aggregation before the join (set by the
    /// plan phase, [`prune_rule`]).
    pub prune: Option<Prune>,
}

/// A plan rule of ours (Spark has none such): the left side is the rows an append-mode
/// aggregation emits, one per group when its window closes, and one join key is that group's
/// `max` (or `min`) while the other keys name every grouping column. A right row then belongs
/// to one group, found from its keys, and while that group is open in the aggregation's state
/// (after the batch's rows are folded in) its running `max` only rises: a right row whose value
/// is below it can never equal the value the group will emit, so it is not buffered, and a
/// buffered row that falls below it is dropped at the end of the batch.
/// The output is the same; the state holds fewer rows (Nexmark q7: the bids at each window's
/// running maximum, as a hand-written loop keeps them).
#[derive(Clone, Debug)]
pub struct Prune {
    /// The aggregation's stateful operator.
    pub agg: usize,
    /// The join key that is the aggregate, and the aggregate's index in the accumulators.
    pub value_key: usize,
    pub acc: usize,
    /// `max` (else `min`), and the aggregate's output name (for the plan).
    pub max: bool,
    pub name: Ident,
    /// Per grouping column, in the aggregation's key order: the join key that gives it, and
    /// whether it is the aggregation's window (the right key is then an `Option` of it).
    pub group_keys: Vec<(usize, bool)>,
}

impl StreamJoinSpec {
    /// The variable of right column `c`.
    pub fn var(&self, c: &Ident) -> Ident {
        JoinSpec::var(&self.right_name, c)
    }

    fn right_column_of(&self, var: &Ident) -> Option<Ident> {
        var.to_string().strip_prefix(&format!("__fg_{}_", self.right_name)).map(|c| Ident::new(c, var.span()))
    }

    /// The right-side variables the join defines for later operators.
    pub fn vars(&self) -> Vec<Ident> {
        self.fields.iter().map(|f| self.var(f)).collect()
    }

    /// Left names the join's condition reads from a buffered left row.
    /// What the left side's pass reads of a row: its key, its own conjuncts, its watermarked
    /// column and the columns it buffers (of another join's rows, when that join feeds it).
    pub fn left_reads(&self) -> Vec<Ident> {
        let mut cols: Vec<Ident> = Vec::new();
        let mut push = |c: Ident| {
            if !cols.contains(&c) {
                cols.push(c);
            }
        };
        for k in &self.keys {
            match &k.window {
                Some((l, _, _)) => push(l.clone()),
                None => free_columns(&k.left).into_iter().for_each(&mut push),
            }
        }
        self.left_pre.iter().flat_map(free_columns).for_each(&mut push);
        self.left_watermark.iter().cloned().for_each(&mut push);
        self.left_stored.iter().cloned().for_each(&mut push);
        cols
    }

    pub fn condition_left_names(&self) -> Vec<Ident> {
        let mut out = Vec::new();
        for e in &self.post {
            for c in free_columns(e) {
                if self.right_column_of(&c).is_none() && !out.contains(&c) {
                    out.push(c);
                }
            }
        }
        for r in &self.ranges {
            for t in [&r.lo, &r.hi] {
                if !t.right && !out.contains(&t.column) {
                    out.push(t.column.clone());
                }
            }
        }
        out
    }

    /// Right columns the join's condition reads from a buffered right row.
    pub fn condition_right_columns(&self) -> Vec<Ident> {
        let mut out = Vec::new();
        for e in &self.post {
            for c in free_columns(e) {
                if let Some(col) = self.right_column_of(&c) {
                    if !out.contains(&col) {
                        out.push(col);
                    }
                }
            }
        }
        for r in &self.ranges {
            for t in [&r.lo, &r.hi] {
                if t.right {
                    if let Some(col) = self.right_column_of(&t.column) {
                        if !out.contains(&col) {
                            out.push(col);
                        }
                    }
                }
            }
        }
        out
    }
}

impl StreamJoinSpec {
    /// Whether a side drops rows with a null key or a null time of a range before the join:
    /// the `IS NOT NULL` filters Spark infers from the condition for a side whose rows are
    /// never emitted unmatched (none in a full outer join).
    pub fn filters_nulls(&self, right: bool) -> bool {
        let preserved = if right { self.kind.right_outer() } else { self.kind.left_outer() };
        !preserved && self.kind != StreamJoinKind::FullOuter
    }

    /// The null filter of a side as a predicate over its own (unqualified) columns.
    pub fn null_filter(&self, right: bool) -> Option<Expr> {
        if !self.filters_nulls(right) {
            return None;
        }
        let unqualify = |e: &Expr| -> Expr {
            if !right {
                return e.clone();
            }
            struct U<'a>(&'a StreamJoinSpec);
            impl syn::visit_mut::VisitMut for U<'_> {
                fn visit_expr_path_mut(&mut self, p: &mut syn::ExprPath) {
                    if let Some(c) = p.path.get_ident().and_then(|i| self.0.right_column_of(i)) {
                        p.path = c.into();
                    }
                }
            }
            let mut e = e.clone();
            syn::visit_mut::VisitMut::visit_expr_mut(&mut U(self), &mut e);
            e
        };
        let keys: Vec<TokenStream> = self
            .keys
            .iter()
            .map(|k| match &k.window {
                Some((lc, rc, size)) => {
                    let c = unqualify(&syn::parse_quote!(#rc));
                    if right {
                        quote!(::flowgate::window::EventTime::event_micros(#c))
                    } else if k.left_is_window {
                        quote!(::flowgate::ops::join::stream::window_key::<#size>(#lc))
                    } else {
                        quote!(::flowgate::window::EventTime::event_micros(#lc))
                    }
                }
                None => {
                    let e = unqualify(if right { &k.right } else { &k.left });
                    quote!(#e)
                }
            })
            .collect();
        let times: Vec<TokenStream> = self
            .ranges
            .iter()
            .flat_map(|r| [&r.lo, &r.hi])
            .filter(|t| t.right == right)
            .fold(Vec::<&TimeTerm>::new(), |mut seen, t| {
                if !seen.iter().any(|s| s.column == t.column) {
                    seen.push(t);
                }
                seen
            })
            .into_iter()
            .map(|t| {
                let c = unqualify(&{
                    let col = &t.column;
                    syn::parse_quote!(#col)
                });
                quote!(::flowgate::window::EventTime::event_micros(#c).is_some())
            })
            .collect();
        Some(syn::parse_quote!(!::flowgate::value::GroupKey::has_null(&( #(#keys,)* )) #(&& #times)*))
    }
}

/// Whether `arg`, a `join` argument, names a stream input of `q` (a stream-stream join).
pub fn is_stream_join(q: &Query, arg: &Expr) -> bool {
    match unwind_chain(arg.clone()) {
        Ok((name, _)) => q.inputs.iter().any(|i| i.name == name && !i.is_static && name != q.source),
        Err(_) => false,
    }
}

fn is_ident(e: &Expr, name: &str) -> bool {
    matches!(e, Expr::Path(p) if p.path.is_ident(name))
}

/// `kind = inner | left_outer | right_outer | full_outer | left_semi`.
fn join_kind(e: &Expr, diags: &mut Diagnostics) -> Option<StreamJoinKind> {
    let known = ["inner", "left_outer", "right_outer", "full_outer", "left_semi"];
    let Some(id) = (match e {
        Expr::Path(p) => p.path.get_ident(),
        _ => None,
    }) else {
        diags.error(e.span(), "expected a join type: inner, left_outer, right_outer, full_outer or left_semi");
        return None;
    };
    match id.to_string().as_str() {
        "inner" => Some(StreamJoinKind::Inner),
        "left_outer" | "left" => Some(StreamJoinKind::LeftOuter),
        "right_outer" | "right" => Some(StreamJoinKind::RightOuter),
        "full_outer" | "full" | "outer" => Some(StreamJoinKind::FullOuter),
        "left_semi" | "semi" => Some(StreamJoinKind::LeftSemi),
        "left_anti" | "anti" => {
            diags.error(
                id.span(),
                "a left anti join between two streams is not supported (Spark: \"LeftAnti joins with a streaming DataFrame/Dataset on the right are not supported\")",
            );
            None
        }
        other => {
            let names: Vec<String> = known.iter().map(|s| s.to_string()).collect();
            diags
                .error(id.span(), format!("unknown join type `{other}`{} ({})", hint(other, &names), known.join(", ")));
            None
        }
    }
}

/// `col`, `col + "1 hour"`, `col - "30 minutes" + "5 seconds"`: the column and its offset.
fn time_term(e: &Expr, diags: &mut Diagnostics, errors: &mut bool) -> Option<(Ident, i64, bool)> {
    match e {
        Expr::Paren(p) => time_term(&p.expr, diags, errors),
        Expr::Path(p) => p.path.get_ident().map(|i| (i.clone(), 0, false)),
        Expr::Binary(b) if matches!(b.op, BinOp::Add(_) | BinOp::Sub(_)) => {
            let (col, off, _) = time_term(&b.left, diags, errors)?;
            let Expr::Lit(syn::ExprLit { lit: syn::Lit::Str(_), .. }) = &*b.right else { return None };
            let Some(d) = duration_arg(&b.right, "interval", diags) else {
                *errors = true;
                return None;
            };
            let d = if matches!(b.op, BinOp::Sub(_)) { -d } else { d };
            Some((col, off + d, true))
        }
        _ => None,
    }
}

/// The conjuncts of `e` (`a && b && c`), with `between(t, lo, hi)` as `t >= lo && t <= hi`.
fn conjuncts(e: &Expr, out: &mut Vec<Expr>) {
    match e {
        Expr::Binary(b) if matches!(b.op, BinOp::And(_)) => {
            conjuncts(&b.left, out);
            conjuncts(&b.right, out);
        }
        Expr::Paren(p) if matches!(&*p.expr, Expr::Binary(b) if matches!(b.op, BinOp::And(_))) => {
            conjuncts(&p.expr, out)
        }
        Expr::Call(c) if matches!(&*c.func, Expr::Path(p) if p.path.is_ident("between")) && c.args.len() == 3 => {
            let (t, lo, hi) = (&c.args[0], &c.args[1], &c.args[2]);
            out.push(syn::parse_quote_spanned!(c.span()=> #t >= #lo));
            out.push(syn::parse_quote_spanned!(c.span()=> #t <= #hi));
        }
        other => out.push(other.clone()),
    }
}

/// Check hook: the other stream and its own operators, the keys, the join type, the
/// condition, and Spark's rules for stream-stream joins.
pub fn check(q: &Query, cx: &mut Cx, call: &Call, refs: &StaticRefs, diags: &mut Diagnostics) -> Option<LOp> {
    let first = call.args.first()?;
    let (name, calls) = match unwind_chain(first.clone()) {
        Ok(x) => x,
        Err(e) => {
            diags.push(e);
            return None;
        }
    };
    let right = q.inputs.iter().position(|i| i.name == name)?;
    // After an aggregation (Spark 4 accepts it in append mode): its emitted rows are the
    // left side. In update mode they would be late rows for the join.
    if cx.aggregated && q.mode.kind != ModeKind::Append {
        diags.error(
            call.name.span(),
            "a stream-stream join after an aggregation needs append mode (Spark: \"Detected pattern of possible 'correctness' issue due to global watermark\"): in update mode the aggregation emits rows the join would count as late; use `mode = append` with an event-time window",
        );
        // The join is checked on: its columns stay known to the operators after it.
    }
    if !cx.unioned.is_empty() && cx.aggregated {
        diags.error(
            call.name.span(),
            "a stream-stream join after an aggregation of a union is not supported yet in flowgate",
        );
        return None;
    }
    if cx.stream_joined
        && q.inputs.iter().position(|i| i.name == name).is_some_and(|r| cx.stream_joined_inputs.contains(&r))
    {
        diags.error(call.name.span(), format!("`{name}` is already joined: join each stream once"));
        return None;
    }
    // The right side's own operators: filters and its watermark.
    let mut right_ops = Vec::new();
    let mut right_columns: Vec<Ident> = Vec::new();
    let mut right_watermark = None;
    let push_col = |cols: &mut Vec<Ident>, c: Ident| {
        if !cols.contains(&c) {
            cols.push(c);
        }
    };
    for c in &calls {
        match ops::lookup(&c.name.to_string()).map(|o| o.kind) {
            Some(OpKind::Filter) => {
                let pred = single_arg(c, diags)?;
                check_no_aggregate(pred, diags);
                for col in free_columns(pred) {
                    push_col(&mut right_columns, col);
                }
                right_ops.push(LOp::Filter { pred: pred.clone() });
            }
            Some(OpKind::Watermark) => {
                if right_watermark.is_some() {
                    diags
                        .error(c.name.span(), "this input already has a watermark: use one `with_watermark` per input");
                    return None;
                }
                let (column, delay) = watermark_args(c, diags)?;
                push_col(&mut right_columns, column.clone());
                right_watermark = Some(column.clone());
                right_ops.push(LOp::Watermark { column, delay, tracker: cx.trackers });
                cx.trackers += 1;
            }
            _ => {
                diags.error(
                    c.name.span(),
                    format!("only `filter` and `with_watermark` may come between `{name}` and the join: write other operators after it"),
                );
                return None;
            }
        }
    }
    let spec_name = name.clone();
    let var = |c: &Ident| JoinSpec::var(&spec_name, c);
    let right_col =
        |v: &Ident| v.to_string().strip_prefix(&format!("__fg_{spec_name}_")).map(|c| Ident::new(c, v.span()));
    let refs_right = |e: &Expr| free_columns(e).iter().any(|c| right_col(c).is_some());
    let refs_left = |e: &Expr| free_columns(e).iter().any(|c| right_col(c).is_none());
    let mut kind = StreamJoinKind::Inner;
    let mut keys: Vec<JoinKey> = Vec::new();
    let mut condition = None;
    for arg in &call.args[1..] {
        match arg {
            Expr::Assign(a) if is_ident(&a.left, "kind") => kind = join_kind(&a.right, diags)?,
            Expr::Assign(a) if is_ident(&a.left, "on") => condition = Some((*a.right).clone()),
            Expr::Assign(a) => {
                let (l, r) = match (refs_right(&a.left), refs_right(&a.right)) {
                    (false, true) if !refs_left(&a.right) => ((*a.left).clone(), (*a.right).clone()),
                    (true, false) if !refs_left(&a.left) => ((*a.right).clone(), (*a.left).clone()),
                    _ => {
                        diags.error(
                            arg.span(),
                            format!("a join key is `left_expression = {name}.column`: one side over this stream's columns, the other over `{name}.`'s"),
                        );
                        return None;
                    }
                };
                // The left side's event-time window after a windowed aggregation.
                let agg_window = match &l {
                    Expr::Path(p) => p.path.get_ident().filter(|i| cx.window_event_time.as_ref() == Some(*i)).cloned(),
                    _ => None,
                };
                let mut left_is_window = false;
                let window = match (window_call(&l, diags), window_call(&r, diags)) {
                    (Some(Err(())), _) | (_, Some(Err(()))) => return None,
                    (Some(Ok((lc, ls))), Some(Ok((rc, rs)))) => {
                        if ls != rs {
                            diags.error(r.span(), "the two sides' windows must have the same size");
                            return None;
                        }
                        Some((lc, rc, ls))
                    }
                    (None, Some(Ok((rc, rs)))) if agg_window.is_some() => {
                        left_is_window = true;
                        agg_window.map(|lc| (lc, rc, rs))
                    }
                    (None, None) => None,
                    _ => {
                        diags.error(arg.span(), "a window key compares a window of each side: `window(t, \"1 hour\") = window(clicks.t, \"1 hour\")`, or, after a windowed aggregation, its `window` with the other side's: `window = window(clicks.t, \"1 hour\")`");
                        return None;
                    }
                };
                keys.push(JoinKey { left: l, right: r, window, left_is_window });
            }
            Expr::Path(p) if p.path.get_ident().is_some() => {
                let col = p.path.get_ident().cloned()?;
                let v = var(&col);
                keys.push(JoinKey {
                    left: arg.clone(),
                    right: syn::parse_quote_spanned!(col.span()=> #v),
                    window: None,
                    left_is_window: false,
                });
            }
            other => {
                diags.error(
                    other.span(),
                    format!(
                        "expected a join key (`ad_id`, `impression_ad = {name}.ad_id`), `kind = ...` or `on = ...`"
                    ),
                );
                return None;
            }
        }
    }
    if keys.is_empty() {
        diags.error(
            call.name.span(),
            format!("a stream-stream join needs an equi-join key: `.join({name}, ad_id)` or `.join({name}, ad = {name}.ad_id)`"),
        );
        return None;
    }
    for k in &keys {
        check_no_aggregate(&k.left, diags);
        for c in free_columns(&k.left) {
            cx.resolve(&syn::parse_quote!(#c), diags);
        }
        for c in free_columns(&k.right) {
            if let Some(col) = right_col(&c) {
                push_col(&mut right_columns, col);
            }
        }
    }
    // The condition, conjunct by conjunct.
    let (mut left_pre, mut right_pre, mut post, mut ranges) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    if let Some(c) = &condition {
        check_no_aggregate(c, diags);
        let mut parts = Vec::new();
        conjuncts(c, &mut parts);
        for part in parts {
            let mut bad = false;
            if let Some(r) = time_range(&part, &right_col, cx, &right_watermark, diags, &mut bad) {
                ranges.push(r);
                continue;
            }
            if bad {
                return None;
            }
            match (refs_left(&part), refs_right(&part)) {
                (true, false) => left_pre.push(part.clone()),
                (false, true) => right_pre.push(part.clone()),
                _ => post.push(part.clone()),
            }
        }
    }
    let fields = refs.get(&name.to_string()).cloned().unwrap_or_default();
    for f in &fields {
        cx.schema.define(&var(f));
    }
    for e in left_pre.iter().chain(&right_pre).chain(&post) {
        for c in free_columns(e) {
            if let Some(col) = right_col(&c) {
                push_col(&mut right_columns, col.clone());
                cx.schema.define(&c);
            }
        }
        cx.resolve(e, diags);
    }
    for r in &ranges {
        for t in [&r.lo, &r.hi] {
            if t.right {
                if let Some(col) = right_col(&t.column) {
                    push_col(&mut right_columns, col);
                }
            } else {
                let col = &t.column;
                cx.resolve(&syn::parse_quote!(#col), diags);
            }
        }
    }
    for f in &fields {
        push_col(&mut right_columns, f.clone());
    }
    // Spark 4 joins a side with one event-time column at most (`MULTIPLE_EVENT_TIME_COLUMNS`):
    // after a join, the left side's are the query's and each joined stream's.
    let left_event_times: Vec<Ident> = cx.watermark.iter().chain(&cx.joined_watermarks).cloned().collect();
    if left_event_times.len() > 1 {
        let names: Vec<String> = left_event_times
            .iter()
            .map(|c| {
                let c = c.to_string();
                match c.strip_prefix("__fg_").and_then(|r| r.split_once('_')) {
                    Some((input, col)) => format!("`{input}.{col}`"),
                    None => format!("`{c}`"),
                }
            })
            .collect();
        diags.error(
            call.name.span(),
            format!(
                "this side of the join has {} event-time columns ({}); Spark 4 joins a stream with one at most (MULTIPLE_EVENT_TIME_COLUMNS): `select` the columns to keep before this join, with one of them",
                names.len(),
                names.join(", ")
            ),
        );
        return None;
    }
    let left_watermark = left_event_times.into_iter().next();
    let mut spec = StreamJoinSpec {
        op: 0,
        right,
        right_name: name.clone(),
        right_ops,
        kind,
        keys,
        left_pre,
        right_pre,
        post,
        ranges,
        right_columns,
        fields,
        left_watermark,
        right_watermark,
        left_eviction: Eviction::Never,
        right_eviction: Eviction::Never,
        left_stored: Vec::new(),
        right_stored: Vec::new(),
        right_after: Vec::new(),
        null_filter_first: (false, false),
        prune: None,
    };
    evictions(&mut spec);
    check_rules(q, &spec, call, diags)?;
    if kind == StreamJoinKind::LeftSemi {
        if let Some(f) = right_refs_after_join(q, &name).first() {
            diags.error(
                f.span(),
                format!("a left semi join keeps only this stream's columns: `{name}.{f}` is not available after it"),
            );
            return None;
        }
    }
    cx.stream_joined = true;
    cx.records_from_columns = false;
    cx.stream_joined_inputs.push(spec.right);
    // The event-time columns after the join: the query's own and each joined stream's.
    if let Some(w) = spec.right_watermark.as_ref().map(|c| spec.var(c)) {
        cx.joined_watermarks.push(w);
    }
    Some(LOp::StreamJoin { spec: Box::new(spec) })
}

/// The pruning rule ([`Prune`]) for a join whose left side is the rows aggregation `agg`
/// (operator `agg_id`) emits in append mode, through `between` (the operators between the two):
/// `Some` when a join key is the aggregation's `max`/`min` and the other keys give every
/// grouping column, only filters lie between, and the right side's unmatched rows are never
/// emitted (an inner or left outer join).
pub fn prune_rule(
    spec: &StreamJoinSpec,
    agg_id: usize,
    agg: &crate::compiler::plan::AggPlan,
    between: &[LOp],
    append: bool,
) -> Option<Prune> {
    use crate::compiler::logical::{AggFunc, KeyKind};
    if !append || !agg.uses_watermark || !matches!(spec.kind, StreamJoinKind::Inner | StreamJoinKind::LeftOuter) {
        return None;
    }
    if !between.iter().all(|o| matches!(o, LOp::Filter { .. })) {
        return None;
    }
    let left_ident = |k: &JoinKey| match &k.left {
        Expr::Path(p) => p.path.get_ident().cloned(),
        _ => None,
    };
    let (value_key, acc, max, name) = spec.keys.iter().enumerate().find_map(|(i, k)| {
        let l = left_ident(k).filter(|_| k.window.is_none())?;
        let (j, a) = agg.aggs.iter().enumerate().find(|(_, a)| a.name == l)?;
        match a.func {
            AggFunc::Max => Some((i, j, true, a.name.clone())),
            AggFunc::Min => Some((i, j, false, a.name.clone())),
            _ => None,
        }
    })?;
    let group_keys = agg
        .keys
        .iter()
        .map(|g| {
            spec.keys.iter().enumerate().find_map(|(i, k)| match (&g.kind, &k.window) {
                (KeyKind::Window { size, .. }, Some((lc, _, jsize)))
                    if k.left_is_window && *lc == g.item.name && jsize == size =>
                {
                    Some((i, true))
                }
                (KeyKind::Plain, None) if left_ident(k).as_ref() == Some(&g.item.name) => Some((i, false)),
                _ => None,
            })
        })
        .collect::<Option<Vec<_>>>()?;
    Some(Prune { agg: agg_id, value_key, acc, max, name, group_keys })
}

/// The code that finds a right row's group in the aggregation's state from its join key
/// `key` (a tuple, owned or as the row loop holds it) and binds its accumulators as
/// `__fg_acc`, then runs `found`, or `missing` when the state has no such group (or the
/// row's window is null; both are expressions of one type). `pass`: in the right side's
/// pass, after [`lookup_cache`].
fn prune_lookup(prune: &Prune, key: TokenStream, found: TokenStream, missing: TokenStream, pass: bool) -> TokenStream {
    let agg = crate::compiler::ops::dedup::var(prune.agg);
    let window = prune.group_keys.iter().find(|(_, w)| *w).map(|(i, _)| Index::from(*i));
    if let (Some(i), true) = (&window, pass && cached_lookup(prune)) {
        // The right side's pass, grouped by its window alone: consecutive rows of one window
        // (nearly all of them, in event-time order) reuse the last lookup (`__fg_pc`, see
        // `lookup_cache`); the state does not change during the pass.
        return quote! {
            match (#key).#i {
                ::core::option::Option::Some(__fg_gw) => {
                    let __fg_found = match __fg_pc {
                        ::core::option::Option::Some((__fg_k, __fg_f)) if __fg_k == __fg_gw => __fg_f,
                        _ => {
                            let __fg_gk = (__fg_gw,);
                            let __fg_f = __fg_pagg.get(::flowgate::ops::keyed::state_hash(&__fg_gk), &__fg_gk);
                            __fg_pc = ::core::option::Option::Some((__fg_gw, __fg_f));
                            __fg_f
                        }
                    };
                    match __fg_found {
                        ::core::option::Option::Some(__fg_acc) => { #found }
                        ::core::option::Option::None => { #missing }
                    }
                }
                ::core::option::Option::None => { #missing }
            }
        };
    }
    let comps = prune.group_keys.iter().map(|(i, w)| {
        let i = Index::from(*i);
        if *w {
            quote!(__fg_gw)
        } else {
            quote!(::core::clone::Clone::clone(&(#key).#i))
        }
    });
    let lookup = quote! {
        let __fg_gk = ( #(#comps,)* );
        match #agg.get(::flowgate::ops::keyed::state_hash(&__fg_gk), &__fg_gk) {
            ::core::option::Option::Some(__fg_acc) => { #found }
            ::core::option::Option::None => { #missing }
        }
    };
    match window {
        Some(i) => quote! {
            match (#key).#i {
                ::core::option::Option::Some(__fg_gw) => { #lookup }
                ::core::option::Option::None => { #missing }
            }
        },
        None => lookup,
    }
}

/// Whether the right side's pass caches its last group lookup: the aggregation is grouped by
/// its window alone (a `Copy` key; a key that borrows from a batch could not outlive it).
fn cached_lookup(prune: &Prune) -> bool {
    matches!(prune.group_keys.as_slice(), [(_, true)])
}

/// Before the right side's pass, where [`cached_lookup`]: the aggregation's state borrowed for
/// the pass and the last lookup (window, accumulators or none).
fn lookup_cache(spec: &StreamJoinSpec) -> TokenStream {
    match &spec.prune {
        Some(prune) if cached_lookup(prune) => {
            let agg = crate::compiler::ops::dedup::var(prune.agg);
            quote! {
                let __fg_pagg = &*#agg;
                let mut __fg_pc = ::core::option::Option::None;
            }
        }
        _ => TokenStream::new(),
    }
}

/// After a `select` that follows a stream-stream join: the event-time columns it keeps, under
/// their new names (a bare column keeps its watermark, as Spark's alias keeps the metadata; an
/// expression over it does not).
pub(crate) fn project_event_times(cx: &mut Cx, items: &[crate::compiler::logical::Item]) {
    let kept = |w: &Ident| {
        items.iter().find(|i| crate::compiler::plan::bare_column(&i.expr).as_ref() == Some(w)).map(|i| i.name.clone())
    };
    cx.watermark = cx.watermark.as_ref().and_then(kept);
    cx.joined_watermarks = cx.joined_watermarks.iter().filter_map(kept).collect();
}

/// The `input.col` references in the operators after the (first) join, as written.
fn right_refs_after_join(q: &Query, input: &Ident) -> Vec<Ident> {
    struct V<'a>(&'a Ident, Vec<Ident>);
    impl<'ast> syn::visit::Visit<'ast> for V<'_> {
        fn visit_expr_field(&mut self, f: &'ast syn::ExprField) {
            if let (Expr::Path(p), syn::Member::Named(m)) = (&*f.base, &f.member) {
                if p.path.is_ident(self.0) {
                    self.1.push(m.clone());
                    return;
                }
            }
            syn::visit::visit_expr_field(self, f);
        }
    }
    let mut v = V(input, Vec::new());
    let Some(at) = q.calls.iter().position(|c| c.name == "join") else { return Vec::new() };
    for c in &q.calls[at + 1..] {
        for a in &c.args {
            syn::visit::Visit::visit_expr(&mut v, a);
        }
    }
    v.1
}

/// `window(col, "size")`: the column and the size; `Some(Err)` after an error.
#[allow(clippy::type_complexity)]
fn window_call(e: &Expr, diags: &mut Diagnostics) -> Option<Result<(Ident, i64), ()>> {
    let Expr::Call(c) = e else { return None };
    if !matches!(&*c.func, Expr::Path(p) if p.path.is_ident("window")) {
        return None;
    }
    let col = match c.args.first() {
        Some(Expr::Path(p)) if p.path.get_ident().is_some() => p.path.get_ident().cloned(),
        _ => None,
    };
    let (Some(col), 2) = (col, c.args.len()) else {
        diags.error(c.span(), "a join's window key is `window(column, \"size\")` (a tumbling window)");
        return Some(Err(()));
    };
    match duration_arg(&c.args[1], "window size", diags) {
        Some(size) if size > 0 => Some(Ok((col, size))),
        Some(_) => {
            diags.error(c.args[1].span(), "the window size must be positive");
            Some(Err(()))
        }
        None => Some(Err(())),
    }
}

/// A conjunct comparing one side's time with the other's: `clicks.t >= t`, `clicks.t <= t + "1
/// hour"`. A comparison of two plain columns that are not both watermarked stays Rust.
fn time_range(
    e: &Expr,
    right_col: &dyn Fn(&Ident) -> Option<Ident>,
    cx: &Cx,
    right_watermark: &Option<Ident>,
    diags: &mut Diagnostics,
    bad: &mut bool,
) -> Option<TimeRange> {
    let Expr::Binary(b) = e else { return None };
    let (flip, strict) = match b.op {
        BinOp::Lt(_) => (false, true),
        BinOp::Le(_) => (false, false),
        BinOp::Gt(_) => (true, true),
        BinOp::Ge(_) => (true, false),
        _ => return None,
    };
    let (l, r) = if flip { (&*b.right, &*b.left) } else { (&*b.left, &*b.right) };
    let (lc, lo, li) = time_term(l, diags, bad)?;
    let (rc, ro, ri) = time_term(r, diags, bad)?;
    let (l_right, r_right) = (right_col(&lc).is_some(), right_col(&rc).is_some());
    if l_right == r_right {
        return None;
    }
    let watermarked = |c: &Ident, right: bool| {
        if right {
            right_col(c).as_ref() == right_watermark.as_ref()
        } else {
            cx.watermark.as_ref() == Some(c) || cx.joined_watermarks.contains(c)
        }
    };
    if !(li || ri || (watermarked(&lc, l_right) && watermarked(&rc, r_right))) {
        return None;
    }
    Some(TimeRange {
        lo: TimeTerm { column: lc, right: l_right, offset: lo },
        hi: TimeTerm { column: rc, right: r_right, offset: ro },
        strict,
    })
}

/// Each side's eviction, as Spark derives it: by a key that carries event time (both sides),
/// else by the side's watermarked column against what the time ranges prove (the side and
/// the other both need a watermark).
fn evictions(spec: &mut StreamJoinSpec) {
    let rw = spec.right_watermark.clone().map(|c| spec.var(&c));
    let lw = spec.left_watermark.clone();
    let key = spec.keys.iter().position(|k| match &k.window {
        Some((lc, rc, _)) => Some(lc) == lw.as_ref() || Some(rc) == rw.as_ref(),
        None => {
            matches!(&k.left, Expr::Path(p) if p.path.get_ident().is_some() && p.path.get_ident() == lw.as_ref())
                || matches!(&k.right, Expr::Path(p) if p.path.get_ident().is_some() && p.path.get_ident() == rw.as_ref())
        }
    });
    if let Some(i) = key {
        spec.left_eviction = Eviction::Key(i);
        spec.right_eviction = Eviction::Key(i);
        return;
    }
    // For side S against the other side O: `O.t + a < S.t + b` (or `<=`) bounds S's rows by
    // O's watermark: `S.t > W + a - b`.
    let bounds = |right_side: bool| -> Vec<(i64, bool)> {
        let (own, other) = if right_side { (rw.as_ref(), lw.as_ref()) } else { (lw.as_ref(), rw.as_ref()) };
        spec.ranges
            .iter()
            .filter(|r| r.hi.right == right_side && Some(&r.hi.column) == own && Some(&r.lo.column) == other)
            .map(|r| (r.lo.offset - r.hi.offset, r.strict))
            .collect()
    };
    let (lb, rb) = (bounds(false), bounds(true));
    if let (Some(l), Some(_)) = (&lw, &rw) {
        if !lb.is_empty() {
            spec.left_eviction = Eviction::Value { column: l.clone(), bounds: lb };
        }
        if !rb.is_empty() {
            let col = spec.right_watermark.clone().unwrap_or_else(|| l.clone());
            spec.right_eviction = Eviction::Value { column: col, bounds: rb };
        }
    }
}

/// Spark's `UnsupportedOperationChecker` rules for stream-stream joins, found at compile time.
fn check_rules(q: &Query, spec: &StreamJoinSpec, call: &Call, diags: &mut Diagnostics) -> Option<()> {
    let name = &spec.right_name;
    let how = match &spec.kind {
        StreamJoinKind::LeftOuter | StreamJoinKind::LeftSemi => format!(
            "a watermark on `{name}` (`{name}.with_watermark(ts, \"1 hour\")`) and a time range bounding this stream's rows by it (`on = {name}.ts >= ts && {name}.ts <= ts + \"1 hour\"`), or a watermarked column or its window among the keys"
        ),
        StreamJoinKind::RightOuter => format!(
            "a watermark on this stream and a time range bounding `{name}`'s rows by it (`on = {name}.ts >= ts && {name}.ts <= ts + \"1 hour\"`), or a watermarked column or its window among the keys"
        ),
        _ => "a watermark on both streams and a time range between them, or a watermarked column or its window among the keys".to_string(),
    };
    let (need_left, need_right) = match spec.kind {
        StreamJoinKind::Inner => (false, false),
        StreamJoinKind::LeftOuter | StreamJoinKind::LeftSemi => (true, false),
        StreamJoinKind::RightOuter => (false, true),
        StreamJoinKind::FullOuter => (true, true),
    };
    let evicts = |e: &Eviction| *e != Eviction::Never;
    // Spark's test: a key carrying event time, or a range bounding the side's rows by the
    // other side's watermarked column (whether the side itself has a watermark or not).
    let keyed = matches!(spec.left_eviction, Eviction::Key(_));
    let bounded = |right_side: bool| {
        let other =
            if right_side { spec.left_watermark.clone() } else { spec.right_watermark.clone().map(|c| spec.var(&c)) };
        keyed || spec.ranges.iter().any(|r| r.hi.right == right_side && Some(&r.lo.column) == other.as_ref())
    };
    let ok = match spec.kind {
        StreamJoinKind::FullOuter => bounded(false) || bounded(true),
        _ => (!need_left || bounded(false)) && (!need_right || bounded(true)),
    };
    if !ok {
        diags.error(
            call.name.span(),
            format!(
                "a stream-stream {} join needs {how} (Spark: \"Stream-stream {} join between two streaming DataFrame/Datasets is not supported without a watermark in the join keys, or a watermark on the nullable side and an appropriate range condition\")",
                spec.kind.name(),
                match spec.kind {
                    StreamJoinKind::LeftOuter => "LeftOuter",
                    StreamJoinKind::RightOuter => "RightOuter",
                    StreamJoinKind::FullOuter => "FullOuter",
                    _ => "LeftSemi",
                }
            ),
        );
        return None;
    }
    // Stricter than Spark, which accepts it and then never emits the unmatched rows: the
    // outer side's own rows must leave the state to be emitted.
    let stuck = |outer: bool, e: &Eviction| outer && !evicts(e);
    if spec.kind != StreamJoinKind::FullOuter
        && (stuck(spec.kind.left_outer(), &spec.left_eviction) || stuck(spec.kind.right_outer(), &spec.right_eviction))
    {
        let side = if spec.kind.left_outer() { "this stream".to_string() } else { format!("`{name}`") };
        diags.error(
            call.name.span(),
            format!("the {} join's unmatched rows would never be emitted: put a watermark on {side} too, so its rows leave the state when no match can come", spec.kind.name()),
        );
        return None;
    }
    if q.mode.kind == ModeKind::Update && (spec.kind.left_outer() || spec.kind.right_outer()) {
        let spark = match spec.kind {
            StreamJoinKind::LeftOuter => "LeftOuter",
            StreamJoinKind::RightOuter => "RightOuter",
            _ => "FullOuter",
        };
        diags.error(
            q.mode.span,
            format!("a stream-stream {} join is supported in append mode only (Spark: \"{spark} join between two streaming DataFrames/Datasets is not supported in Update output mode, only in Append output mode\"): use `mode = append`", spec.kind.name()),
        );
        return None;
    }
    Some(())
}

/// Column `i` of a buffered row tuple (nested by sixes past seven columns).
fn field_path(i: usize, n: usize) -> TokenStream {
    if n <= 7 {
        let i = Index::from(i);
        quote!(.#i)
    } else {
        let (a, b) = (Index::from(i / 6), Index::from(i % 6));
        quote!(.#a.#b)
    }
}

fn tuple_of(items: &[TokenStream]) -> TokenStream {
    if items.len() <= 7 {
        quote!(( #(#items,)* ))
    } else {
        let chunks = items.chunks(6).map(|c| quote!(( #(#c,)* )));
        quote!(( #(#chunks,)* ))
    }
}

fn joined_var(op: usize) -> Ident {
    format_ident!("__fg_joined{}", op)
}

/// Emit hook at the start of a batch: the operator's batch metrics, its output buffer, and
/// each side's state watermark of this batch.
pub fn emit_prepare(q: &Query, plan: &Plan, spec: &StreamJoinSpec) -> TokenStream {
    let op = crate::compiler::ops::dedup::var(spec.op);
    let right_ty = &plan.inputs[spec.right].ty;
    let witness: Vec<TokenStream> = spec
        .right_stored
        .iter()
        .map(|c| quote_spanned!(c.span()=> ::flowgate::ops::join::stream::owned_of(&__fg_c.#c)))
        .collect();
    let witness = tuple_of(&witness);
    let pin_left = if spec.kind == StreamJoinKind::LeftSemi {
        let left_ty = &plan.inputs[plan
            .pipelines
            .iter()
            .find_map(|p| match (p.source, &p.sink) {
                (crate::compiler::plan::Source::Input(i), crate::compiler::plan::Sink::Operator(o))
                    if *o == spec.op && i != spec.right =>
                {
                    Some(i)
                }
                _ => None,
            })
            .unwrap_or(0)]
        .ty;
        let w: Vec<TokenStream> = spec
            .left_stored
            .iter()
            .map(|c| quote_spanned!(c.span()=> ::flowgate::ops::join::stream::owned_of(&__fg_c.#c)))
            .collect();
        let w = tuple_of(&w);
        quote! { #op.pin_left(|__fg_c: &<#left_ty as ::flowgate::Record>::Columns<'_>| #w); }
    } else {
        TokenStream::new()
    };
    let joined = joined_var(spec.op);
    // The join's input watermark: the batch's, or the output watermark of the join whose rows
    // feed it (the code after that join sees it as `__fg_ev_wm`; this runs before).
    let input_wm = input_watermark(plan, spec, quote!(__fg_ev_wm));
    let wm = |e: &Eviction, v: Ident| match e {
        Eviction::Value { bounds, .. } => {
            let parts = bounds.iter().map(
                |(off, strict)| quote!(::flowgate::ops::join::stream::state_watermark_ms(__fg_in_wm, #off, #strict)),
            );
            quote! { let #v: ::core::option::Option<i64> = [ #(#parts),* ].into_iter().min(); }
        }
        _ => quote! { let #v: ::core::option::Option<i64> = ::core::option::Option::None; },
    };
    // The output columns (or records) the pairs are appended to as they match.
    let parts = match direct_output(plan, spec) {
        Some((_, Direct::Columns(columns))) => {
            let out = &q.output;
            let v = out_parts(spec);
            let fields =
                columns.iter().map(|c| quote_spanned!(c.span()=> #c: ::flowgate::record::OutColumn::with_capacity(0)));
            let ty = quote_spanned!(out.span()=> type __FgJoinParts = <#out as ::flowgate::Record>::Parts;);
            quote! {
                #ty
                let mut #v = __FgJoinParts { #(#fields),* };
            }
        }
        Some((_, Direct::Records)) => {
            let out = &q.output;
            let v = out_parts(spec);
            quote! { let mut #v = <#out as ::flowgate::Record>::builder(0); }
        }
        None => TokenStream::new(),
    };
    let lw = wm(&spec.left_eviction, format_ident!("__fg_jl_wm{}", spec.op));
    let rw = wm(&spec.right_eviction, format_ident!("__fg_jr_wm{}", spec.op));
    // The join's output watermarks, for the stateful filters after it (a dedup's late rows
    // and eviction): fixed for the batch, computed once here.
    let output_wms = if filters_after(plan, spec) || fused_aggregation(plan, spec).is_some() {
        let (late, ev) = output_watermark_vars(spec);
        let late_wm = output_watermark(spec, input_watermark(plan, spec, quote!(__fg_late_wm)));
        let ev_wm = output_watermark(spec, input_watermark(plan, spec, quote!(__fg_ev_wm)));
        quote! {
            let #late: i64 = #late_wm;
            let #ev: i64 = #ev_wm;
        }
    } else {
        TokenStream::new()
    };
    // The aggregation the pairs fold into, its batch's tables taken for the join's loops.
    let fused = match fused_aggregation(plan, spec) {
        Some((_, to)) => {
            let agg = crate::compiler::ops::dedup::var(to);
            let tables = fused_tables(spec);
            quote! { let mut #tables = #agg.begin_sequential(); }
        }
        None => TokenStream::new(),
    };
    quote! {
        #output_wms
        #fused
        let __fg_in_wm: i64 = #input_wm;
        #op.begin_batch();
        #op.pin_right(|__fg_c: &<#right_ty as ::flowgate::Record>::Columns<'_>| #witness);
        #pin_left
        let mut #joined = #op.output_buffer();
        #parts
        #lw
        #rw
    }
}

/// Whether the pipeline of the join's rows holds a dedup (which drops late rows and evicts by
/// the watermarks).
fn filters_after(plan: &Plan, spec: &StreamJoinSpec) -> bool {
    plan.pipelines
        .iter()
        .find(|p| p.source == crate::compiler::plan::Source::Operator(spec.op))
        .is_some_and(|p| plan.filters_in(p).next().is_some())
}

fn output_watermark_vars(spec: &StreamJoinSpec) -> (Ident, Ident) {
    (format_ident!("__fg_jlate_wm{}", spec.op), format_ident!("__fg_jev_wm{}", spec.op))
}

/// Where the join's rows go through stateful filters: the batch's watermarks, shadowed by the
/// join's output watermarks (Spark's watermark propagation) for the code that follows.
pub fn shadow_watermarks(plan: &Plan, spec: &StreamJoinSpec) -> TokenStream {
    if !filters_after(plan, spec) {
        return TokenStream::new();
    }
    let (late, ev) = output_watermark_vars(spec);
    quote! {
        let __fg_late_wm: i64 = #late;
        let __fg_ev_wm: i64 = #ev;
    }
}

/// Whether a row of one side (its key `key`, its buffered row `row`) is behind that side's
/// state watermark.
fn behind(spec: &StreamJoinSpec, right: bool, key: TokenStream, row: TokenStream) -> TokenStream {
    let (eviction, stored, wm) = if right {
        (&spec.right_eviction, &spec.right_stored, format_ident!("__fg_jr_wm{}", spec.op))
    } else {
        (&spec.left_eviction, &spec.left_stored, format_ident!("__fg_jl_wm{}", spec.op))
    };
    match eviction {
        Eviction::Never => quote!(false),
        Eviction::Key(i) => {
            let i = Index::from(*i);
            quote!(::flowgate::watermark::is_behind(&(#key).#i, __fg_ev_wm))
        }
        Eviction::Value { column, .. } => {
            let at = stored.iter().position(|c| c == column).unwrap_or(0);
            let path = field_path(at, stored.len());
            quote!(::flowgate::ops::join::stream::behind_state_watermark(
                ::flowgate::window::EventTime::event_micros(::flowgate::ops::join::stream::bind(&(#row) #path)),
                #wm
            ))
        }
    }
}

/// The condition of a candidate pair: the time ranges (null: no match) and the Rust conjuncts.
fn pair_condition(spec: &StreamJoinSpec) -> TokenStream {
    let ranges = spec.ranges.iter().map(|r| {
        let (a, b) = (&r.lo.column, &r.hi.column);
        let (ao, bo) = (r.lo.offset, r.hi.offset);
        let cmp = if r.strict { quote!(<) } else { quote!(<=) };
        quote_spanned!(a.span()=> match (
            ::flowgate::window::EventTime::event_micros(#a),
            ::flowgate::window::EventTime::event_micros(#b),
        ) {
            (::core::option::Option::Some(__fg_a), ::core::option::Option::Some(__fg_b)) => (__fg_a + #ao) #cmp (__fg_b + #bo),
            _ => false,
        })
    });
    let post = spec.post.iter().map(|e| quote_spanned!(e.span()=> { let __fg_c: bool = #e; __fg_c }));
    let all: Vec<TokenStream> = ranges.chain(post).collect();
    if all.is_empty() {
        quote!(true)
    } else {
        quote!(#(#all)&&*)
    }
}

/// The pipeline of one side into the join: its operators, then per row the late filter, the
/// side's own conjuncts, the probe of the other side's rows, and the row buffered.
pub fn emit_side(plan: &Plan, p: &Pipeline, input: usize, spec: &StreamJoinSpec) -> TokenStream {
    let right = input == spec.right;
    let units = collect_units(plan, p, input);
    let terminal = side_terminal(plan, spec, right);
    let body = unit_loop(p, plan, terminal);
    let cache = if right { lookup_cache(spec) } else { TokenStream::new() };
    quote! {
        #units
        #cache
        for __fg_unit in __fg_units {
            let __fg_unit = &__fg_unit;
            #body
        }
    }
}

/// How another join's rows feed this join as its left side: per row, the left side's pass.
pub fn feed_left(plan: &Plan, spec: &StreamJoinSpec) -> Feed {
    Feed { op: crate::compiler::ops::dedup::var(spec.op), terminal: side_terminal(plan, spec, false), inline: true }
}

/// One side's pass over a row: the null filter, its key, the late filter, its own
/// conjuncts, the probe of the other side's rows and the row buffered.
fn side_terminal(plan: &Plan, spec: &StreamJoinSpec, right: bool) -> TokenStream {
    let op = crate::compiler::ops::dedup::var(spec.op);
    let joined = joined_var(spec.op);
    let wm_col = if right { spec.right_watermark.as_ref() } else { spec.left_watermark.as_ref() };
    // Late rows: by the side's watermarked column, or, where a key is its window, by the
    // window's end (Spark's event-time column is then the window).
    let window_key = match (&spec.left_eviction, wm_col) {
        (Eviction::Key(i), Some(_)) if spec.keys[*i].window.is_some() => Some(Index::from(*i)),
        _ => None,
    };
    let late = match (wm_col, &window_key) {
        (Some(_), Some(i)) => quote! {
            if ::flowgate::watermark::is_behind(&__fg_key.#i, __fg_late_wm) { #op.late(); continue; }
        },
        (Some(c), None) => quote! {
            if ::flowgate::ops::dedup::is_late(#c, __fg_late_wm) { #op.late(); continue; }
        },
        (None, _) => TokenStream::new(),
    };
    // The right side's columns under their `clicks.col` names too.
    let aliases = if right {
        let a = spec.right_columns.iter().map(|c| {
            let v = spec.var(c);
            quote_spanned!(c.span()=> let #v = #c;)
        });
        quote! { #(#a)* }
    } else {
        TokenStream::new()
    };
    let own_vars: Vec<Ident> =
        if right { spec.right_stored.iter().map(|c| spec.var(c)).collect() } else { spec.left_stored.clone() };
    let owned: Vec<TokenStream> =
        own_vars.iter().map(|v| quote_spanned!(v.span()=> ::flowgate::value::IntoOwned::into_owned(#v))).collect();
    let row = tuple_of(&owned);
    let pre = if right { &spec.right_pre } else { &spec.left_pre };
    let pre_check = if pre.is_empty() {
        TokenStream::new()
    } else {
        let conds = pre.iter().map(|e| quote_spanned!(e.span()=> { let __fg_c: bool = #e; __fg_c }));
        let outer = if right { spec.kind.right_outer() } else { spec.kind.left_outer() };
        let emit = match (outer, right) {
            (true, false) => {
                quote! { #joined.push((::core::option::Option::Some(__fg_row), ::core::option::Option::None)); }
            }
            (true, true) => {
                quote! { #joined.push((::core::option::Option::None, ::core::option::Option::Some(__fg_row))); }
            }
            _ => TokenStream::new(),
        };
        quote! { if !( #(#conds)&&* ) { #emit continue; } }
    };
    let keys: Vec<TokenStream> = spec
        .keys
        .iter()
        .map(|k| {
            let e = if right { &k.right } else { &k.left };
            match &k.window {
                Some((lc, _, size)) if !right && k.left_is_window => {
                    quote_spanned!(e.span()=> ::flowgate::ops::join::stream::window_key::<#size>(#lc))
                }
                Some((lc, rc, size)) => {
                    let c = if right { rc } else { lc };
                    quote_spanned!(e.span()=> ::flowgate::window::tumbling(#c, #size, 0).map(::flowgate::window::WindowKey::<#size>::of))
                }
                None => quote_spanned!(e.span()=> #e),
            }
        })
        .collect();
    // The other side's buffered rows bound under their names for the condition.
    let (other_names, other_vars): (Vec<Ident>, Vec<Ident>) = if right {
        (spec.left_stored.clone(), spec.left_stored.clone())
    } else {
        (spec.right_stored.clone(), spec.right_stored.iter().map(|c| spec.var(c)).collect())
    };
    let cond_names: Vec<Ident> = if right {
        spec.condition_left_names()
    } else {
        spec.condition_right_columns().iter().map(|c| spec.var(c)).collect()
    };
    let other_binds = {
        let n = other_names.len();
        let b = other_vars.iter().enumerate().filter(|(_, v)| cond_names.contains(v)).map(|(i, v)| {
            let path = field_path(i, n);
            quote_spanned!(v.span()=> let #v = ::flowgate::ops::join::stream::bind(&__fg_m.value #path);)
        });
        quote! { #(#b)* }
    };
    let cond = pair_condition(spec);
    let semi = spec.kind == StreamJoinKind::LeftSemi;
    let (probe, mark, append) = if right {
        (quote!(probe_left), quote!(matched_left), quote!(append_right))
    } else {
        (quote!(probe_right), quote!(matched_right), quote!(append_left))
    };
    let on_match = match (semi, right) {
        (true, false) => quote! { break; },
        (true, true) => {
            let pair = emit_pair(
                plan,
                spec,
                quote!(::core::option::Option::Some(&__fg_m.value)),
                quote!(::core::option::Option::None),
            );
            quote! { if __fg_first { #pair } }
        }
        (false, false) => emit_pair(
            plan,
            spec,
            quote!(::core::option::Option::Some(&__fg_row)),
            quote!(::core::option::Option::Some(&__fg_m.value)),
        ),
        (false, true) => emit_pair(
            plan,
            spec,
            quote!(::core::option::Option::Some(&__fg_m.value)),
            quote!(::core::option::Option::Some(&__fg_row)),
        ),
    };
    let store = match (semi, right) {
        (true, false) => quote! {
            if __fg_hit {
                #joined.push((::core::option::Option::Some(__fg_row), ::core::option::Option::None));
            } else {
                #op.#append(__fg_h, &__fg_key, __fg_row, false);
            }
        },
        (_, false) => quote! { #op.#append(__fg_h, &__fg_key, __fg_row, __fg_hit); },
        (_, true) => {
            let now = behind(spec, true, quote!(__fg_key), quote!(__fg_row));
            let keep_unmatched = spec.kind.right_outer();
            quote! {
                let __fg_now: bool = #now;
                if !__fg_now || (#keep_unmatched && !__fg_hit) {
                    #op.#append(__fg_h, &__fg_key, __fg_row, __fg_hit);
                }
            }
        }
    };
    // A side whose rows are never emitted unmatched drops rows with a null key or a null time
    // of the range first: the `IS NOT NULL` filters Spark infers from the join condition and
    // pushes into that side's scan (full outer joins infer none).
    let first = if right { spec.null_filter_first.1 } else { spec.null_filter_first.0 };
    let null_filter = match spec.null_filter(right) {
        Some(f) if !first => quote! { if !(#f) { continue; } },
        _ => TokenStream::new(),
    };
    let forget = if semi && right {
        quote! { if __fg_flip { #op.remove_matched_left(__fg_h, &__fg_key); } }
    } else {
        TokenStream::new()
    };
    // The pruning rule: a right row of a group still open in the aggregation's state is
    // dropped when its value is below the group's running max (it can never match).
    let prune = match (&spec.prune, right) {
        (Some(prune), true) => {
            let (v, acc) = (Index::from(prune.value_key), Index::from(prune.acc));
            let found = quote! {
                if __fg_acc.#acc.excludes(&__fg_key.#v) { #op.pruned_right(); continue; }
            };
            prune_lookup(prune, quote!(__fg_key), found, TokenStream::new(), true)
        }
        _ => TokenStream::new(),
    };
    let terminal = quote! {
        #aliases
        #null_filter
        let __fg_key = ( #(#keys,)* );
        #late
        let __fg_row = #row;
        #pre_check
        #prune
        let __fg_h = ::flowgate::ops::keyed::state_hash(&__fg_key);
        let mut __fg_hit = false;
        let mut __fg_flip = false;
        for __fg_m in #op.#probe(__fg_h, &__fg_key).iter_mut() {
            #other_binds
            let __fg_pair: bool = #cond;
            if !__fg_pair { continue; }
            __fg_hit = true;
            let __fg_first = !__fg_m.matched;
            if __fg_first { __fg_m.matched = true; __fg_flip = true; }
            #on_match
        }
        if __fg_flip { #op.#mark(__fg_h, &__fg_key); }
        #forget
        #store
    };
    terminal
}

/// The pipeline from the join's rows to the output: the rows the watermark retires (an outer
/// side's unmatched ones null-padded), then every joined row through the operators after the
/// join.
/// The pipeline from the join's rows to the output: the pairs were appended to the output
/// columns as they matched; then the rows the batch emitted unmatched (an outer side's rows
/// failing their side's conjuncts, the rows eviction proves unmatched, null-padded; a semi
/// join's left rows).
pub fn emit_output(q: &Query, plan: &Plan, p: &Pipeline, spec: &StreamJoinSpec, columns: &[Ident]) -> TokenStream {
    let out = &q.output;
    let parts = out_parts(spec);
    match direct_output(plan, spec) {
        Some((_, direct @ Direct::Records)) => {
            let (evict, rows) = emit_joined(plan, p, spec, direct.terminal(p, spec));
            quote! {
                #evict
                #rows
                ::core::result::Result::Ok(::std::vec![::flowgate::RecordBuilder::finish(&mut #parts)?])
            }
        }
        _ => {
            let (evict, rows) = emit_joined(plan, p, spec, push_parts(spec, columns));
            quote! {
                #evict
                #rows
                ::core::result::Result::Ok(::std::vec![<#out as ::flowgate::Record>::from_parts(#parts)?])
            }
        }
    }
}

/// The pipeline from the join's rows into another stateful operator (an aggregation). From
/// here on the batch's watermarks are the join's output watermarks: what the operators after
/// it drop late rows and evict by (Spark's watermark propagation).
pub fn emit_into(plan: &Plan, p: &Pipeline, spec: &StreamJoinSpec, feed: &Feed) -> TokenStream {
    let (evict, rows) = emit_joined(plan, p, spec, feed.terminal.clone());
    let late = output_watermark(spec, quote!(__fg_late_wm));
    let ev = output_watermark(spec, quote!(__fg_ev_wm));
    // Pairs folded as they matched: the rows eviction emitted go into the same tables, then
    // the aggregation takes them back.
    let update = if fused_aggregation(plan, spec).is_some() {
        let (op, tables) = (&feed.op, fused_tables(spec));
        quote! {
            {
                let __fg_tables = &mut #tables;
                #rows
            }
            #op.end_sequential(#tables);
        }
    } else {
        feed.wrap(rows)
    };
    quote! {
        #evict
        let __fg_late_wm: i64 = #late;
        let __fg_ev_wm: i64 = #ev;
        #update
    }
}

/// Join `spec`'s input watermark for the batch's watermark `w`: `w` itself, or, when
/// another join's rows feed it, that join's output watermark of `w`.
fn input_watermark(plan: &Plan, spec: &StreamJoinSpec, w: TokenStream) -> TokenStream {
    match plan.operators[spec.op].watermark {
        crate::compiler::plan::WatermarkInput::JoinOutput(j) => match &plan.operators[j].kind {
            crate::compiler::plan::OperatorKind::StreamJoin(up) => {
                let inner = input_watermark(plan, up, w);
                output_watermark(up, inner)
            }
            _ => w,
        },
        crate::compiler::plan::WatermarkInput::Query => w,
    }
}

/// The join's output watermark (µs) for input watermark `w`: the minimum of `w` and both
/// sides' state watermarks, as Spark's `produceOutputWatermark` (a side evicted by a
/// watermarked key has the input watermark as its state watermark).
fn output_watermark(spec: &StreamJoinSpec, w: TokenStream) -> TokenStream {
    let sides = [&spec.left_eviction, &spec.right_eviction].into_iter().filter_map(|e| match e {
        Eviction::Value { bounds, .. } => {
            let parts = bounds
                .iter()
                .map(|(off, strict)| quote!(::flowgate::ops::join::stream::state_watermark_ms(__fg_w, #off, #strict)));
            Some(quote! {
                if let ::core::option::Option::Some(__fg_ms) = [ #(#parts),* ].into_iter().min() {
                    __fg_m = __fg_m.min(__fg_ms.saturating_mul(1000));
                }
            })
        }
        _ => None,
    });
    quote! {{
        let __fg_w: i64 = #w;
        let mut __fg_m = __fg_w;
        #(#sides)*
        __fg_m
    }}
}

fn emit_joined(plan: &Plan, p: &Pipeline, spec: &StreamJoinSpec, terminal: TokenStream) -> (TokenStream, TokenStream) {
    let op = crate::compiler::ops::dedup::var(spec.op);
    let joined = joined_var(spec.op);
    let lb = behind(spec, false, quote!(__fg_k), quote!(__fg_v));
    let rb = behind(spec, true, quote!(__fg_k), quote!(__fg_v));
    let left_emit = if spec.kind.left_outer() {
        quote! { if !__fg_r.matched { #joined.push((::core::option::Option::Some(__fg_r.value), ::core::option::Option::None)); } }
    } else {
        TokenStream::new()
    };
    let right_emit = if spec.kind.right_outer() {
        quote! { if !__fg_r.matched { #joined.push((::core::option::Option::None, ::core::option::Option::Some(__fg_r.value))); } }
    } else {
        TokenStream::new()
    };
    // A side evicted by a watermarked key (a window) loses whole keys: the runtime then checks
    // each key once instead of each row.
    let evict_left = match spec.left_eviction {
        Eviction::Never => TokenStream::new(),
        Eviction::Key(_) => quote! { #op.evict_left_keys(|__fg_k| #lb, |_, __fg_r| { #left_emit }); },
        Eviction::Value { .. } => quote! { #op.evict_left(|__fg_k, __fg_v| #lb, |_, __fg_r| { #left_emit }); },
    };
    let evict_right = match spec.right_eviction {
        Eviction::Never => TokenStream::new(),
        Eviction::Key(_) => quote! { #op.evict_right_keys(|__fg_k| #rb, |_, __fg_r| { #right_emit }); },
        Eviction::Value { .. } => quote! { #op.evict_right(|__fg_k, __fg_v| #rb, |_, __fg_r| { #right_emit }); },
    };
    // The pruning rule: buffered right rows that fell below their group's running value.
    let prune_right = match &spec.prune {
        Some(prune) => {
            let (v, acc) = (Index::from(prune.value_key), Index::from(prune.acc));
            let check =
                prune_lookup(prune, quote!(__fg_k), quote!(__fg_acc.#acc.excludes(&__fg_k.#v)), quote!(false), false);
            quote! { #op.prune_right_keys(|__fg_k| { #check }); }
        }
        None => TokenStream::new(),
    };
    let body = pair_body(plan, p, spec, terminal);
    let evict = quote! {
        #evict_left
        #prune_right
        #evict_right
        #op.end_batch();
    };
    let rows = quote! {
        for (__fg_l, __fg_r) in #joined.iter() {
            let (__fg_l, __fg_r) = (__fg_l.as_ref(), __fg_r.as_ref());
            #body
        }
    };
    (evict, rows)
}

/// One joined row through the operators after the join into `terminal`: `__fg_l` and
/// `__fg_r` (`Option<&row>` of each side's buffered columns; `None` for the missing side of
/// an outer row) bound under the columns' names, as a row loop reads them.
fn pair_body(plan: &Plan, p: &Pipeline, spec: &StreamJoinSpec, terminal: TokenStream) -> TokenStream {
    let n = spec.left_stored.len();
    let left_binds: Vec<TokenStream> = spec
        .left_stored
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let path = field_path(i, n);
            if spec.kind.right_outer() {
                quote_spanned!(c.span()=> let #c = ::flowgate::ops::join::stream::bind_padded(__fg_l.map(|__fg_x| &__fg_x #path));)
            } else {
                quote_spanned!(c.span()=> let #c = ::flowgate::ops::join::stream::bind(&__fg_lv #path);)
            }
        })
        .collect();
    let m = spec.right_stored.len();
    let right_binds: Vec<TokenStream> = spec
        .right_stored
        .iter()
        .enumerate()
        .filter(|(_, c)| spec.right_after.contains(c))
        .map(|(i, c)| {
            let v = spec.var(c);
            let path = field_path(i, m);
            if spec.kind.left_outer() {
                quote_spanned!(c.span()=> let #v = ::flowgate::ops::join::stream::bind_padded(__fg_r.map(|__fg_x| &__fg_x #path));)
            } else {
                quote_spanned!(c.span()=> let #v = ::flowgate::ops::join::stream::bind(&__fg_rv #path);)
            }
        })
        .collect();
    let unwrap_left = if spec.kind.right_outer() {
        TokenStream::new()
    } else {
        quote! { let ::core::option::Option::Some(__fg_lv) = __fg_l else { continue; }; }
    };
    let unwrap_right = if spec.kind.left_outer() || spec.right_after.is_empty() {
        TokenStream::new()
    } else {
        quote! { let ::core::option::Option::Some(__fg_rv) = __fg_r else { continue; }; }
    };
    let body = fuse(plan, &p.ops, terminal);
    let shadow = shadow_watermarks(plan, spec);
    quote! {
        #unwrap_left
        #unwrap_right
        #(#left_binds)*
        #(#right_binds)*
        #shadow
        #body
    }
}

/// Where the join's pairs go as they match: straight into the output columns
/// (`__fg_jout<op>`) when the join's rows are the output, with no copy of either row; into
/// the batch's buffer of joined rows when an operator after the join takes them.
fn direct_output<'a>(plan: &'a Plan, spec: &StreamJoinSpec) -> Option<(&'a Pipeline, Direct<'a>)> {
    use crate::compiler::plan::{OutputPlan, Sink};
    let p = plan.pipelines.iter().find(|p| p.source == crate::compiler::plan::Source::Operator(spec.op))?;
    match &p.sink {
        Sink::Output(OutputPlan::Rows(c)) => Some((p, Direct::Columns(c.as_slice()))),
        Sink::Output(OutputPlan::Records) => Some((p, Direct::Records)),
        _ => None,
    }
}

/// What the join's rows become where they are the output: the output's columns, or the
/// records a map after the join makes (`typed::RowFrom::Columns`), pushed whole.
#[derive(Clone, Copy)]
enum Direct<'a> {
    Columns(&'a [Ident]),
    Records,
}

impl Direct<'_> {
    /// The terminal that appends one joined row (or the map's record of it).
    fn terminal(self, p: &Pipeline, spec: &StreamJoinSpec) -> TokenStream {
        match self {
            Direct::Columns(columns) => push_parts(spec, columns),
            Direct::Records => {
                let last = p.ops.iter().rev().find_map(|o| match o {
                    LOp::TypedRows { spec } if spec.produces() => Some(spec),
                    _ => None,
                });
                let parts = out_parts(spec);
                match last {
                    // Spanned on the map's function: a record of another type than the
                    // output's is rustc's error there.
                    Some(last) => {
                        let var = Ident::new(&typed::row_var(last.id).to_string(), last.func.span());
                        quote_spanned!(last.func.span()=> ::flowgate::RecordBuilder::push(&mut #parts, #var);)
                    }
                    None => quote! { compile_error!("flowgate bug: records after a join without a map"); },
                }
            }
        }
    }
}

/// Where the join's pairs are folded into a hash aggregation as they match (the pipeline from
/// the join's rows into it, and the aggregation's id): the join's rows go nowhere else and no
/// stateful filter sits between, so the aggregation sees the rows in the order the buffer
/// would have given them, with no copy of either row. The rows only eviction emits (an outer
/// side's unmatched ones) still go through the buffer, after the pairs, as before.
fn fused_aggregation<'a>(plan: &'a Plan, spec: &StreamJoinSpec) -> Option<(&'a Pipeline, usize)> {
    let p = plan.pipelines.iter().find(|p| p.source == crate::compiler::plan::Source::Operator(spec.op))?;
    match &p.sink {
        crate::compiler::plan::Sink::Operator(to)
            if matches!(plan.operators[*to].kind, crate::compiler::plan::OperatorKind::HashAggregate(_))
                && plan.filters_in(p).next().is_none() =>
        {
            Some((p, *to))
        }
        _ => None,
    }
}

/// The batch's tables of the aggregation the join's pairs are folded into.
fn fused_tables(spec: &StreamJoinSpec) -> Ident {
    format_ident!("__fg_jagg{}", spec.op)
}

/// The output columns the join's rows are appended to.
fn out_parts(spec: &StreamJoinSpec) -> Ident {
    format_ident!("__fg_jout{}", spec.op)
}

/// The terminal that appends one joined row to the output columns.
fn push_parts(spec: &StreamJoinSpec, columns: &[Ident]) -> TokenStream {
    let parts = out_parts(spec);
    let pushes = columns.iter().map(|c| quote_spanned!(c.span()=> #parts.#c.push(#c);));
    quote! { #(#pushes)* }
}

/// A matched pair: emitted at once where the join's rows are the output, else buffered
/// (`l`, `r`: the pair's rows, `Option<&row>`).
fn emit_pair(plan: &Plan, spec: &StreamJoinSpec, l: TokenStream, r: TokenStream) -> TokenStream {
    match direct_output(plan, spec) {
        Some((p, direct)) => {
            let body = pair_body(plan, p, spec, direct.terminal(p, spec));
            let joined = joined_var(spec.op);
            quote! {{
                let (__fg_l, __fg_r) = ::flowgate::ops::join::stream::pair_of(&#joined, #l, #r);
                #body
            }}
        }
        None => match fused_aggregation(plan, spec) {
            Some((p, to)) => {
                let joined = joined_var(spec.op);
                let tables = fused_tables(spec);
                let terminal = match &plan.operators[to].kind {
                    crate::compiler::plan::OperatorKind::HashAggregate(a) => {
                        crate::compiler::ops::aggregate::feed_hash(to, a).terminal
                    }
                    _ => quote! { compile_error!("flowgate bug: a join's pairs fold into a hash aggregation only"); },
                };
                let body = pair_body(plan, p, spec, terminal);
                let (late, ev) = output_watermark_vars(spec);
                quote! {{
                    let (__fg_l, __fg_r) = ::flowgate::ops::join::stream::pair_of(&#joined, #l, #r);
                    let __fg_tables = &mut #tables;
                    let __fg_late_wm: i64 = #late;
                    let __fg_ev_wm: i64 = #ev;
                    #body
                }}
            }
            None => {
                let joined = joined_var(spec.op);
                let owned = |x: TokenStream| quote!((#x).cloned());
                let (l, r) = (owned(l), owned(r));
                quote! { #joined.push((#l, #r)); }
            }
        },
    }
}

/// The operator's state, created with the plan.
pub fn init(spec: &StreamJoinSpec) -> TokenStream {
    let full = spec.kind == StreamJoinKind::FullOuter;
    let prunes = spec.prune.is_some();
    let prune = if prunes { quote!(.prunes_right(true)) } else { TokenStream::new() };
    quote!(::flowgate::ops::join::stream::StreamJoinState::new(__fg_config.shuffle_partitions).null_keys_equal(#full) #prune)
}

impl std::fmt::Display for StreamJoinSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use quote::ToTokens;
        let show = |e: &Expr| {
            e.to_token_stream()
                .to_string()
                .replace(&format!("__fg_{}_", self.right_name), &format!("{}.", self.right_name))
        };
        let keys: Vec<String> = self
            .keys
            .iter()
            .map(|k| match &k.window {
                Some((l, r, size)) if k.left_is_window => format!("{l} = window({}.{r}, {size} µs)", self.right_name)
                    .replace(&format!("__fg_{}_", self.right_name), ""),
                Some((l, r, size)) => format!("window({l}, {size} µs) = window({}.{r}, {size} µs)", self.right_name)
                    .replace(&format!("__fg_{}_", self.right_name), ""),
                None => format!("{} = {}", show(&k.left), show(&k.right)),
            })
            .collect();
        write!(f, "{} join with stream {} on [{}]", self.kind.name(), self.right_name, keys.join(", "))?;
        for r in &self.ranges {
            let term = |t: &TimeTerm| {
                let col = &t.column;
                let c = if t.right { show(&syn::parse_quote!(#col)) } else { t.column.to_string() };
                if t.offset == 0 {
                    c
                } else {
                    format!("{c} {:+} µs", t.offset)
                }
            };
            write!(f, "; time range {} {} {}", term(&r.lo), if r.strict { "<" } else { "<=" }, term(&r.hi))?;
        }
        for e in &self.post {
            write!(f, "; and {}", show(e))?;
        }
        for (side, e) in [("left", &self.left_pre), ("right", &self.right_pre)] {
            for x in e {
                write!(f, "; {side} rows filtered by {} first", show(x))?;
            }
        }
        let ev = |e: &Eviction| match e {
            Eviction::Never => "kept forever".to_string(),
            Eviction::Key(i) => format!("evicted when key #{i} is behind the watermark"),
            Eviction::Value { column, bounds } => {
                let b: Vec<String> = bounds
                    .iter()
                    .map(|(o, s)| format!("watermark {o:+} µs{}", if *s { "" } else { " - 1 ms" }))
                    .collect();
                format!("evicted when {column} <= min({})", b.join(", "))
                    .replace(&format!("__fg_{}_", self.right_name), "")
            }
        };
        write!(f, "; left rows {}, right rows {}", ev(&self.left_eviction), ev(&self.right_eviction))?;
        if let Some(p) = &self.prune {
            write!(
                f,
                "; right rows below their group's running {}({}) in stateful #{} not buffered, and dropped when it passes them",
                if p.max { "max" } else { "min" },
                p.name,
                p.agg
            )?;
        }
        let names = |v: &[Ident]| v.iter().map(Ident::to_string).collect::<Vec<_>>().join(", ");
        write!(f, "; buffers left [{}], right [{}]", names(&self.left_stored), names(&self.right_stored))
    }
}

/// Whether the schema after a stream-stream join names its output columns.
pub fn output_named(schema: &Schema) -> bool {
    matches!(schema, Schema::Closed { .. })
}
