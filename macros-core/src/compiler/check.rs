//! Phase 2, check: resolves operators and column names, enforces Spark's streaming rules, and
//! produces the [`Logical`] plan. Every rule is one named function; all errors are collected.

use proc_macro2::Span;
use syn::spanned::Spanned;
use syn::{Expr, Ident, Type};

use super::ast::{Call, ModeKind, Query};
use super::diag::{did_you_mean, hint, Diagnostics};
use super::exprs::{find_aggregate_call, free_columns};
use super::logical::{Item, JoinKind, LOp, Logical, Schema, SortSpec};
use super::ops::{self, aggregate, dedup, group_state, join, typed, union, OpKind};

/// Checks `q`; returns its logical plan (meaningful only when `diags` has no errors).
pub fn check(q: &Query, diags: &mut Diagnostics) -> Logical {
    let input_index = check_source(q, diags);
    check_single_input(q, diags);
    check_builder_names(q, diags);
    let mut cx = Cx {
        schema: Schema::Open { defined: Vec::new() },
        input_columns: Vec::new(),
        aggregated: false,
        watermark: None,
        watermark_delay: 0,
        trackers: 0,
        session: false,
        event_time_unknown: false,
        union_after_map: false,
        records_from_columns: false,
        joined: Vec::new(),
        ordered: false,
        limited: false,
        unioned: Vec::new(),
        union_columns: Vec::new(),
        stream_joined: false,
        group_state: false,
        joined_watermarks: Vec::new(),
        stream_joined_inputs: Vec::new(),
        window_event_time: None,
        mapped: None,
        typed: 0,
    };
    // `products.col` of a static input becomes a row-loop variable before anything reads it.
    let (calls, static_refs) = join::rewrite_static_refs(q);
    let mut ops_out = Vec::new();
    // An unknown operator may have been meant to define the output columns: the rule that
    // judges them stays silent then (one mistake, one error).
    let mut unknown_operator = false;
    let mut i = 0;
    while i < calls.len() {
        let call = &calls[i];
        let name = call.name.to_string();
        let Some(spec) = ops::lookup(&name) else {
            check_unknown_operator(call, diags);
            unknown_operator = true;
            i += 1;
            continue;
        };
        if cx.group_state && !cx.aggregated && !group_state::may_follow(q, &calls[..i], &calls[i..], diags) {
            // One error for what follows it (Spark's rule where it has one).
            i = calls.len();
            continue;
        }
        if cx.limited || (cx.ordered && spec.kind != OpKind::Limit) {
            diags.error(
                call.name.span(),
                format!("`{name}` after `order_by`/`limit`: the sorted, limited rows are the query's result; move `{name}` before them"),
            );
            i += 1;
            continue;
        }
        // After a stream-stream join, as Spark allows: stateless operators, an aggregation
        // (`group_by(..).agg(..)` or `agg(..)`), another stream-stream join, a static join, a
        // dedup, a limit, a union with a stream of the selected columns (and a sort, refused
        // by the sort rule as Spark refuses it); group state not yet.
        let aggregates_next = spec.kind == OpKind::GroupBy && calls.get(i + 1).is_some_and(|c| c.name == "agg");
        let joins_a_stream =
            spec.kind == OpKind::Join && call.args.first().is_some_and(|a| ops::stream_join::is_stream_join(q, a));
        // Group state takes records: the join's selected columns made records by a map.
        let group_state_next = calls
            .get(i + 1)
            .is_some_and(|c| ops::lookup(&c.name.to_string()).is_some_and(|o| o.kind == OpKind::GroupState));
        let records_grouped = group_state_next && cx.records_from_columns;
        if cx.stream_joined
            && !cx.aggregated
            && !aggregates_next
            && !joins_a_stream
            && !records_grouped
            && spec.kind == OpKind::GroupBy
        {
            let message = if group_state_next {
                format!("`{}` after a stream-stream join hands the function records: `select` the columns it needs, make them records of a type you name with `.map_rows(|r: &Joined| r.clone())`, then `group_by`", calls[i + 1].name)
            } else {
                format!("`{name}` after a stream-stream join is not supported yet in flowgate: the join's rows go through stateless operators, joins, aggregations, deduplication, unions and `limit` to the output")
            };
            diags.error(call.name.span(), message);
            // `group_by(..)` and the operator over its groups are one mistake.
            let grouped_next = calls.get(i + 1).is_some_and(|c| {
                c.name == "agg" || ops::lookup(&c.name.to_string()).is_some_and(|o| o.kind == OpKind::GroupState)
            });
            i += if spec.kind == OpKind::GroupBy && grouped_next { 2 } else { 1 };
            continue;
        }
        match spec.kind {
            OpKind::Typed(_) if cx.union_after_map => {
                diags.error(
                    call.name.span(),
                    format!("`{name}` after a union of a map's records is not supported yet in flowgate: put `{name}` before the union"),
                );
            }
            OpKind::Typed(kind) => {
                let op = typed::check(q, &mut cx, call, kind, diags);
                if op.is_none() && kind != typed::TypedKind::Filter {
                    // The map meant to make the rows: what follows names its records' columns
                    // (unchecked now) and the output is not judged (one mistake, one error).
                    cx.schema = Schema::Open { defined: Vec::new() };
                    cx.mapped = Some((usize::MAX, Vec::new()));
                    unknown_operator = true;
                }
                if let Some(op) = op {
                    if let LOp::TypedRows { spec } = &op {
                        if spec.produces() {
                            // The columns named since the previous map are that map's.
                            typed::flush(&mut cx, &mut ops_out);
                            cx.mapped = Some((spec.id, Vec::new()));
                        }
                    }
                    ops_out.push(op);
                }
            }
            OpKind::Filter => {
                if let Some(pred) = single_arg(call, diags) {
                    check_no_aggregate(pred, diags);
                    cx.resolve(pred, diags);
                    ops_out.push(LOp::Filter { pred: pred.clone() });
                }
            }
            OpKind::Project => {
                let items = named_items(call, diags);
                check_unique_names(&items, diags);
                for it in &items {
                    check_no_aggregate(&it.expr, diags);
                    cx.resolve(&it.expr, diags);
                }
                cx.schema = Schema::Closed { columns: items.iter().map(|i| i.name.clone()).collect() };
                if cx.stream_joined {
                    ops::stream_join::project_event_times(&mut cx, &items);
                }
                ops_out.push(LOp::Project { items });
            }
            OpKind::WithColumn => {
                let items = named_items(call, diags);
                for it in &items {
                    check_no_aggregate(&it.expr, diags);
                    cx.resolve(&it.expr, diags);
                    cx.schema.define(&it.name);
                }
                ops_out.push(LOp::WithColumns { items });
            }
            OpKind::FlatMap => {
                let items = named_items(call, diags);
                if items.len() != 1 {
                    diags.error(
                        call.name.span(),
                        format!("`{name}` takes one named expression: `.{name}(word = split(value, \" \"))`"),
                    );
                }
                if let Some(it) = items.into_iter().next() {
                    check_no_aggregate(&it.expr, diags);
                    cx.resolve(&it.expr, diags);
                    cx.schema.define(&it.name);
                    ops_out.push(LOp::FlatMap { name: it.name, expr: it.expr });
                }
            }
            OpKind::Watermark => {
                check_watermark_position(&cx, call, diags);
                let before = diags.count();
                let args = watermark_args(call, diags);
                cx.event_time_unknown |= diags.count() > before;
                if let Some((column, delay)) = args {
                    cx.resolve(&column_expr(&column), diags);
                    cx.watermark = Some(column.clone());
                    cx.watermark_delay = delay;
                    ops_out.push(LOp::Watermark { column, delay, tracker: cx.trackers });
                    cx.trackers += 1;
                }
            }
            OpKind::GroupBy => {
                let before = diags.count();
                let keys = aggregate::group_keys(call, &mut cx, diags);
                cx.event_time_unknown |= diags.count() > before;
                match calls.get(i + 1) {
                    Some(next) if ops::lookup(&next.name.to_string()).is_some_and(|s| s.kind == OpKind::GroupState) => {
                        let followed = calls.len() > i + 2;
                        let Some(mut op) = group_state::check(q, &mut cx, keys, &calls[i + 2..], next, diags) else {
                            // Its function's records are unknown: no second error about what
                            // follows.
                            i = calls.len();
                            continue;
                        };
                        if followed {
                            // What follows reads columns of the function's records.
                            typed::flush(&mut cx, &mut ops_out);
                            group_state::records_follow(&mut cx, &mut op);
                        }
                        ops_out.push(op);
                        i += 1;
                    }
                    Some(next) if next.name == "agg" => {
                        let aggs = aggregate::agg_items(next, &mut cx, diags);
                        aggregate::check_chained_aggregation(q, &cx, &call.name, diags);
                        aggregate::finish_aggregate(&mut cx, keys, aggs, &mut ops_out, diags);
                        i += 1;
                    }
                    _ => {
                        diags.error(
                            call.name.span(),
                            "`group_by` must be followed by `.agg(...)`, e.g. `.group_by(word).agg(count() as count)`",
                        );
                        // Go on as if aggregated, so later rules do not repeat this error.
                        cx.aggregated = true;
                        cx.records_from_columns = false;
                        cx.schema = Schema::Closed { columns: keys.iter().map(|k| k.item.name.clone()).collect() };
                    }
                }
            }
            OpKind::Agg => {
                // A global aggregation: one group for the whole stream.
                let aggs = aggregate::agg_items(call, &mut cx, diags);
                aggregate::check_chained_aggregation(q, &cx, &call.name, diags);
                aggregate::finish_aggregate(&mut cx, Vec::new(), aggs, &mut ops_out, diags);
            }
            OpKind::Sort => {
                if let Some(op) = check_sort(q, &mut cx, call, diags) {
                    ops_out.push(op);
                }
            }
            OpKind::Limit => {
                if let Some(op) = check_limit(q, &mut cx, call, diags) {
                    ops_out.push(op);
                }
            }
            OpKind::Union => {
                if let Some(op) = union::check(q, &mut cx, call, diags) {
                    if let (Some((id, _)), LOp::Union { input, .. }) = (&cx.mapped, &op) {
                        typed::union_after(*id, q.inputs[*input].ty.clone(), &mut ops_out);
                        cx.union_after_map = true;
                    }
                    ops_out.push(op);
                }
            }
            OpKind::Join => {
                if let Some(op) = join::check(q, &mut cx, call, &static_refs, diags) {
                    // After an aggregation, Spark's inferred `key IS NOT NULL` of a join that
                    // drops unmatched stream rows, pushed below the aggregation.
                    match (cx.aggregated, &op) {
                        (true, LOp::Join { spec }) => join::infer_not_null_before_aggregation(spec, &mut ops_out),
                        (true, LOp::StreamJoin { spec }) if !spec.kind.left_outer() => {
                            join::not_null_before_aggregation(spec.keys.iter().map(|k| &k.left), &mut ops_out)
                        }
                        _ => {}
                    }
                    ops_out.push(op);
                }
            }
            OpKind::Dedup | OpKind::DedupWithinWatermark => {
                let within = spec.kind == OpKind::DedupWithinWatermark;
                if let Some(op) = dedup::check(q, &mut cx, call, within, diags) {
                    ops_out.push(op);
                }
            }
            OpKind::GroupState => {
                diags.error(call.name.span(), group_state::needs_keys(&name));
                // Its function makes the output: no second error about the output columns.
                cx.group_state = true;
                cx.schema = Schema::Closed { columns: Vec::new() };
            }
        }
        i += 1;
    }
    if cx.stream_joined && !unknown_operator && !cx.records_from_columns && !ops::stream_join::output_named(&cx.schema)
    {
        let span = q.calls.iter().find(|c| c.name == "join").map(|c| c.name.span()).unwrap_or_else(|| q.source.span());
        diags.error(
            span,
            "name the output columns after a stream-stream join: end the query with `.select(...)` (both sides' columns, the other stream's as `clicks.col`)",
        );
    }
    typed::flush(&mut cx, &mut ops_out);
    check_output_mode(q, &cx, &ops_out, diags);
    if !unknown_operator {
        check_output_columns(q, &cx.schema, &ops_out, diags);
    }
    let event_time_key = last_aggregate_has_event_time(&ops_out);
    let append_needs_key = (q.mode.kind == ModeKind::Append
        && q.errors.is_empty()
        && cx.aggregated
        && !event_time_key
        && !cx.event_time_unknown
        && watermark_is_input(&cx))
    .then(|| cx.watermark.clone())
    .flatten();
    let union_columns = cx.union_columns;
    Logical {
        input_index,
        ops: ops_out,
        input_columns: cx.input_columns,
        union_columns,
        output: cx.schema,
        append_needs_key,
    }
}

/// What the check phase knows at a point of the pipeline.
pub(crate) struct Cx {
    pub schema: Schema,
    pub input_columns: Vec<Ident>,
    pub aggregated: bool,
    /// The watermarked column, once `with_watermark` was seen.
    pub watermark: Option<Ident>,
    /// Its delay (µs).
    pub watermark_delay: i64,
    /// Number of `with_watermark`s so far (the next one's tracker id).
    pub trackers: usize,
    /// Whether the aggregation groups by a session window.
    pub session: bool,
    /// The static inputs joined so far.
    pub joined: Vec<usize>,
    /// Whether the rows were sorted (`order_by`) or limited (`limit`): nothing may follow.
    pub ordered: bool,
    pub limited: bool,
    /// The other streams unioned in so far.
    pub unioned: Vec<usize>,
    /// Per unioned input, the columns its own operators read.
    pub union_columns: Vec<(usize, Vec<Ident>)>,
    /// Whether a stream-stream join was seen (operators after it run on its emitted rows).
    pub stream_joined: bool,
    /// Whether a `map_groups_with_state` / `flat_map_groups_with_state` was seen (its function
    /// makes the output; nothing may follow it).
    pub group_state: bool,
    /// After stream-stream joins, the other streams' watermarked columns (their `clicks.col`
    /// variables): event time for an operator after the join, as the query's own.
    pub joined_watermarks: Vec<Ident>,
    /// The streams joined so far.
    pub stream_joined_inputs: Vec<usize>,
    /// After an aggregation grouped by an event-time window, that window's column: a later
    /// aggregation's event time is `window_time(it)` (Spark's watermarked `window_time`).
    pub window_event_time: Option<Ident>,
    /// After a `map_rows` / `flat_map_rows`: its number, and the columns of its records named
    /// since (bound from each record; rustc checks them).
    pub mapped: Option<(usize, Vec<Ident>)>,
    /// Typed operations so far (the next one's number).
    pub typed: usize,
    /// Whether an error in a `with_watermark` or a grouping key left the event time unknown:
    /// the rules about it (append mode) then stay silent instead of adding a false error.
    pub event_time_unknown: bool,
    /// Whether a union followed a `map_rows` / `flat_map_rows` (its other inputs' rows have
    /// no record of that map to call a later typed operation on).
    pub union_after_map: bool,
    /// Whether a map made records of an aggregation's or a join's columns
    /// (`typed::RowFrom::Columns`) with no aggregation or join since: the operators after it
    /// act on those records as on any map's.
    pub records_from_columns: bool,
}

impl Cx {
    /// Resolves the column references of `expr` against the current schema.
    pub(crate) fn resolve(&mut self, expr: &Expr, diags: &mut Diagnostics) {
        for col in free_columns(expr) {
            let name = col.to_string();
            if self.schema.knows(&name) {
                continue;
            }
            match &self.schema {
                // A column of the input record: rustc checks it exists against the record's
                // typed columns (with its own "did you mean"), at this very token.
                // After a map, a column of the records its function returns.
                Schema::Open { .. } if self.mapped.is_some() => {
                    if let Some((_, cols)) = &mut self.mapped {
                        if !cols.iter().any(|c| *c == name) {
                            cols.push(col);
                        }
                    }
                }
                Schema::Open { .. } => {
                    if !self.input_columns.iter().any(|c| *c == name) {
                        self.input_columns.push(col);
                    }
                }
                Schema::Closed { columns } => check_unknown_column(&col, columns, diags),
            }
        }
    }
}

/// Rule: the pipeline starts with a declared input.
fn check_source(q: &Query, diags: &mut Diagnostics) -> usize {
    match q.inputs.iter().position(|i| i.name == q.source) {
        Some(i) => i,
        None => {
            let names: Vec<String> = q.inputs.iter().map(|i| i.name.to_string()).collect();
            diags.error(
                q.source.span(),
                format!(
                    "unknown input `{}`: the query declares {}{}",
                    q.source,
                    names.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", "),
                    hint(&q.source.to_string(), &names)
                ),
            );
            0
        }
    }
}

/// Rule: the pipeline reads one stream; other inputs are static tables it joins (until union
/// and stream-stream joins exist).
fn check_single_input(q: &Query, diags: &mut Diagnostics) {
    if !q.inputs.iter().any(|i| i.name == q.source) {
        return; // `check_source` said which input it meant.
    }
    if let Some(src) = q.inputs.iter().find(|i| i.name == q.source && i.is_static) {
        diags.error(
            q.source.span(),
            format!("`{}` is static: a query's pipeline starts from a stream, and joins the static input with `.join({}, ...)`", src.name, src.name),
        );
        return;
    }
    // A stream named in a `join` is the join's mistake, reported there; one in a `union` is
    // the union's other side.
    // A stream named as a group-state operator's initial state is that operator's mistake.
    let joined = |name: &Ident| {
        q.calls.iter().any(|c| {
            (c.name == "join" && c.args.first().is_some_and(|a| union::names_input(a, name)))
                || (c.name == "union" && c.args.first().is_some_and(|a| union::names_input(a, name)))
                || c.args.iter().any(|a| group_state::names_initial_state_input(a, name))
        })
    };
    for extra in q.inputs.iter().filter(|i| !i.is_static && i.name != q.source && !joined(&i.name)) {
        diags.error(
            extra.name.span(),
            format!(
                "input `{}` is declared but the query never reads it: union it (`.union({0})`), join it (`.join({0}, key)`; declare it `{0}: static {}` for a static table), or remove it",
                extra.name,
                quote::ToTokens::to_token_stream(&extra.ty)
            ),
        );
    }
}

/// Rule: input names become builder methods, so they cannot clash with the builder's own.
fn check_builder_names(q: &Query, diags: &mut Diagnostics) {
    for i in &q.inputs {
        let n = i.name.to_string();
        if ops::BUILDER_METHODS.contains(&n.as_str()) {
            diags.error(
                i.name.span(),
                format!("input name `{n}` clashes with the query builder's `.{n}(...)`: rename the input"),
            );
        }
    }
}

/// Rule: operator names are known ("did you mean" otherwise).
fn check_unknown_operator(call: &Call, diags: &mut Diagnostics) {
    let name = call.name.to_string();
    let suggestion = did_you_mean(&name, ops::names()).map(|c| format!("; did you mean `{c}`?")).unwrap_or_default();
    diags.error(call.name.span(), format!("unknown operator `{name}`{suggestion}"));
}

/// Rule: a column that the schema at this point does not have.
pub(crate) fn check_unknown_column(col: &Ident, columns: &[Ident], diags: &mut Diagnostics) {
    let names: Vec<String> = columns.iter().map(Ident::to_string).collect();
    diags.error(
        col.span(),
        format!("unknown column `{col}`{} (columns here: {})", hint(&col.to_string(), &names), names.join(", ")),
    );
}

/// Rule: aggregate functions only inside `.agg(...)`.
pub(crate) fn check_no_aggregate(expr: &Expr, diags: &mut Diagnostics) {
    if let Some((name, span)) = find_aggregate_call(expr) {
        diags.error(
            span,
            format!("aggregate function `{name}` can only be used inside `.agg(...)`, e.g. `.group_by(key).agg({name}(x) as total)`"),
        );
    }
}

/// Rules on the output mode (Spark's `UnsupportedOperationChecker`).
fn check_output_mode(q: &Query, cx: &Cx, ops: &[LOp], diags: &mut Diagnostics) {
    if !q.errors.is_empty() {
        // The declared mode did not parse: its rules would judge a guess.
        return;
    }
    let event_time_key = last_aggregate_has_event_time(ops);
    match q.mode.kind {
        ModeKind::Complete if !cx.aggregated && !cx.group_state => diags.error(
            q.mode.span,
            "complete mode needs an aggregation (Spark: \"Complete output mode not supported when there are no streaming aggregations\"); use `mode = append`",
        ),
        ModeKind::Append if cx.aggregated && !event_time_key && !cx.event_time_unknown && watermark_is_input(cx) => {
            // Left to rustc (see `Logical::append_needs_key`).
        }
        ModeKind::Append if cx.aggregated && !event_time_key && !cx.event_time_unknown => {
            let how = match (&cx.watermark, &cx.window_event_time) {
                (_, Some(w)) => format!("group by `window(window_time({w}), ...)` (the first aggregation's watermarked window)"),
                (None, None) => "add `.with_watermark(ts, \"10 minutes\")` before the aggregation and group by `window(ts, ...)` or `ts`".to_string(),
                (Some(w), None) => format!("group by `window({w}, ...)` or `{w}` (the watermarked column)"),
            };
            diags.error(
                q.mode.span,
                format!(
                    "append mode is not supported for streaming aggregations without a watermark on an event-time grouping column (Spark: STREAMING_OUTPUT_MODE.UNSUPPORTED_OPERATION): {how}, or use `mode = update` / `mode = complete`"
                ),
            );
        }
        ModeKind::Update if cx.session => diags.error(
            q.mode.span,
            "update mode is not supported for session window aggregations (as in Spark 4): use `mode = append` or `mode = complete`",
        ),
        _ => {}
    }
}

/// Whether the query's last aggregation groups by event time. Spark checks the last one: an
/// earlier one without event time would leave the later one none to group by.
fn last_aggregate_has_event_time(ops: &[LOp]) -> bool {
    ops.iter()
        .rev()
        .find_map(|o| match o {
            LOp::Aggregate { event_time_key, .. } => Some(event_time_key.is_some()),
            _ => None,
        })
        .unwrap_or(false)
}

/// Whether the watermarked column is a column of the input record (which only rustc knows).
fn watermark_is_input(cx: &Cx) -> bool {
    cx.watermark.as_ref().is_some_and(|w| cx.input_columns.contains(w))
}

/// Rule: sorting a stream only after an aggregation in complete mode (Spark: "Sorting is not
/// supported on streaming DataFrames/Datasets, unless it is on aggregated DataFrame/Dataset in
/// Complete output mode"). Keys are output columns or expressions over them, in `asc(..)`,
/// `desc(..)`, `asc_nulls_last(..)`, `desc_nulls_first(..)` (a bare key is ascending).
fn check_sort(q: &Query, cx: &mut Cx, call: &Call, diags: &mut Diagnostics) -> Option<LOp> {
    if !check_not_after_map_of_aggregation(cx, call, diags) {
        return None;
    }
    if !(cx.aggregated && q.mode.kind == ModeKind::Complete) {
        diags.error(
            call.name.span(),
            "sorting is not supported on streams unless it is on an aggregation's result in complete mode (as in Spark): remove it, or sort in the sink (foreach_batch)",
        );
        return None;
    }
    if cx.ordered {
        diags.error(call.name.span(), "the rows are already sorted: give every key to one `order_by`");
        return None;
    }
    if call.args.is_empty() {
        diags.error(call.name.span(), "`order_by` needs at least one key: `.order_by(desc(count), word)`");
        return None;
    }
    let mut keys = Vec::new();
    for arg in &call.args {
        let (expr, descending, nulls_first) = match arg {
            Expr::Call(c) => match &*c.func {
                Expr::Path(p) if c.args.len() == 1 => {
                    let f = p.path.get_ident().map(Ident::to_string).unwrap_or_default();
                    let inner = c.args[0].clone();
                    match f.as_str() {
                        "asc" => (inner, false, None),
                        "desc" => (inner, true, None),
                        "asc_nulls_first" => (inner, false, Some(true)),
                        "asc_nulls_last" => (inner, false, Some(false)),
                        "desc_nulls_first" => (inner, true, Some(true)),
                        "desc_nulls_last" => (inner, true, Some(false)),
                        _ => (arg.clone(), false, None),
                    }
                }
                _ => (arg.clone(), false, None),
            },
            other => (other.clone(), false, None),
        };
        check_no_aggregate(&expr, diags);
        cx.resolve(&expr, diags);
        keys.push(SortSpec { expr, descending, nulls_first });
    }
    cx.ordered = true;
    Some(LOp::Sort { keys })
}

/// Rule (not built yet): `order_by`/`limit` after a map of an aggregation's rows.
fn check_not_after_map_of_aggregation(cx: &Cx, call: &Call, diags: &mut Diagnostics) -> bool {
    if cx.aggregated && cx.mapped.is_some() {
        let name = call.name.to_string();
        diags.error(
            call.name.span(),
            format!("`{name}` after `map_rows` over an aggregation's rows is not supported yet in flowgate: put `{name}` before the map"),
        );
        return false;
    }
    true
}

/// Rule: no limit in update mode (Spark: "Limits are not supported on streaming
/// DataFrames/Datasets in Update output mode"); after an aggregation in complete mode it keeps
/// the first `n` rows of each result (the top N after an `order_by`).
fn check_limit(q: &Query, cx: &mut Cx, call: &Call, diags: &mut Diagnostics) -> Option<LOp> {
    if !check_not_after_map_of_aggregation(cx, call, diags) {
        return None;
    }
    if q.mode.kind == ModeKind::Update {
        diags.error(
            call.name.span(),
            "limit is not supported on streams in update mode (as in Spark): use append or complete mode",
        );
        return None;
    }
    // In append mode: Spark's streaming global limit, the first n rows of the stream (after
    // an aggregation: of the rows it emits, as windows close). In complete mode after an
    // aggregation: the first n rows of each result.
    let global = q.mode.kind == ModeKind::Append;
    let n = match single_arg(call, diags)? {
        Expr::Lit(syn::ExprLit { lit: syn::Lit::Int(i), .. }) => match i.base10_parse::<usize>() {
            Ok(n) => n,
            Err(e) => {
                diags.push(e);
                return None;
            }
        },
        other => {
            diags.error(other.span(), "`limit` takes a number of rows: `.limit(10)`");
            return None;
        }
    };
    cx.limited = true;
    Some(LOp::Limit { n, global: global.then_some(0) })
}

/// Rule: one watermark per query, before the aggregation.
pub(crate) fn check_watermark_position(cx: &Cx, call: &Call, diags: &mut Diagnostics) {
    if cx.aggregated {
        diags.error(
            call.name.span(),
            "`with_watermark` must come before the aggregation: it defines the event time the aggregation uses",
        );
    } else if cx.watermark.is_some() {
        diags.error(call.name.span(), "this query already has a watermark: use one `with_watermark` per input");
    }
}

fn column_expr(col: &Ident) -> Expr {
    Expr::Path(syn::ExprPath { attrs: Vec::new(), qself: None, path: col.clone().into() })
}

/// A duration string literal, parsed and checked at compile time; errors point at it.
pub(crate) fn duration_arg(expr: &Expr, what: &str, diags: &mut Diagnostics) -> Option<i64> {
    let Expr::Lit(syn::ExprLit { lit: syn::Lit::Str(s), .. }) = expr else {
        diags.error(expr.span(), format!("the {what} must be a string literal such as \"10 minutes\""));
        return None;
    };
    match crate::duration::parse_duration_micros(&s.value()) {
        Ok(v) => Some(v),
        Err(e) => {
            let mut msg = format!("malformed {what} \"{}\": {e}", s.value());
            if let crate::duration::DurationError::UnknownUnit(u) = &e {
                let lower = u.to_ascii_lowercase();
                let word = lower.strip_suffix('s').unwrap_or(&lower);
                if let Some(c) = did_you_mean(word, crate::duration::unit_names()) {
                    msg = format!("malformed {what} \"{}\": unknown time unit `{u}`; did you mean `{c}s`?", s.value());
                }
            }
            diags.error(s.span(), msg);
            None
        }
    }
}

/// `with_watermark(column, "delay")`.
pub(crate) fn watermark_args(call: &Call, diags: &mut Diagnostics) -> Option<(Ident, i64)> {
    if call.args.len() != 2 {
        diags.error(
            call.name.span(),
            "`with_watermark` takes a column and a delay: `.with_watermark(ts, \"10 minutes\")`",
        );
        return None;
    }
    let column = match &call.args[0] {
        Expr::Path(p) if p.path.get_ident().is_some() => p.path.get_ident().cloned(),
        other => {
            diags.error(other.span(), "the watermark column must be a column name");
            None
        }
    };
    let delay = duration_arg(&call.args[1], "watermark delay", diags);
    if let Some(d) = delay {
        if d < 0 {
            diags.error(call.args[1].span(), "the watermark delay must not be negative");
        }
    }
    Some((column?, delay?))
}

/// An argument that may be named (`name = expr`, `expr as name`) or not: the name, if any, and
/// the expression. `None` after reporting a malformed name.
pub(crate) fn optional_name(arg: &Expr, diags: &mut Diagnostics) -> Option<(Option<Ident>, Expr)> {
    match arg {
        Expr::Assign(_) | Expr::Cast(_) => match named_item(arg) {
            Ok(i) => Some((Some(i.name), i.expr)),
            Err(e) => {
                diags.push(e);
                None
            }
        },
        other => Some((None, other.clone())),
    }
}

/// Rule: the output columns must be known to build the output record.
fn check_output_columns(q: &Query, schema: &Schema, ops: &[LOp], diags: &mut Diagnostics) {
    if !q.inputs.iter().any(|i| i.name == q.source) {
        return; // An unknown input has no columns to judge.
    }
    if ops.iter().any(|o| matches!(o, LOp::StreamJoin { .. })) {
        return; // The join's own rule says what to name.
    }
    if let Schema::Open { defined } = schema {
        // After a map or a group-state operator, the rows are its records (rustc checks their
        // type is the output's).
        let last_map = ops.iter().rposition(|o| {
            matches!(o, LOp::TypedRows { spec } if spec.produces()) || matches!(o, LOp::GroupState { .. })
        });
        let after = &ops[last_map.map_or(0, |m| m + 1)..];
        // Semi and anti joins only choose rows, as filters do.
        let only_filters = after.iter().all(|o| match o {
            LOp::Filter { .. }
            | LOp::Watermark { .. }
            | LOp::Dedup { .. }
            | LOp::Union { .. }
            | LOp::Limit { global: Some(_), .. } => true,
            LOp::TypedRows { spec } => !spec.produces(),
            LOp::Join { spec } => matches!(spec.kind, JoinKind::LeftSemi | JoinKind::LeftAnti),
            _ => false,
        });
        let same_type = last_map.is_some()
            || q.inputs.iter().find(|i| i.name == q.source).is_some_and(|i| same_type(&i.ty, &q.output));
        if !(only_filters && same_type) {
            let span = q.calls.last().map(|c| c.name.span()).unwrap_or_else(|| q.source.span());
            let extra =
                if defined.is_empty() { String::new() } else { format!(" (defined so far: {})", join(defined)) };
            diags.error(
                span,
                format!(
                    "the output columns are not known here{extra}: end the query with `.select(...)` naming the columns of the output record, or output the input record itself after filters"
                ),
            );
        }
    }
}

fn join(ids: &[Ident]) -> String {
    ids.iter().map(Ident::to_string).collect::<Vec<_>>().join(", ")
}

/// Whether two types are written the same (the macro cannot know more).
pub fn same_type(a: &Type, b: &Type) -> bool {
    quote::quote!(#a).to_string() == quote::quote!(#b).to_string()
}

/// Rule: names within one operator are unique.
pub(crate) fn check_unique_names(items: &[Item], diags: &mut Diagnostics) {
    for (i, it) in items.iter().enumerate() {
        if items[..i].iter().any(|o| o.name == it.name) {
            diags.error(it.name.span(), format!("column `{}` is defined twice", it.name));
        }
    }
}

pub(crate) fn single_arg<'a>(call: &'a Call, diags: &mut Diagnostics) -> Option<&'a Expr> {
    if call.args.len() != 1 {
        diags.error(call.name.span(), format!("`{}` takes exactly one expression", call.name));
        return None;
    }
    call.args.first()
}

const PRIMITIVE_TYPES: &[&str] = &[
    "i8", "i16", "i32", "i64", "i128", "isize", "u8", "u16", "u32", "u64", "u128", "usize", "f32", "f64", "bool",
    "char", "str",
];

/// `name = expr`, `expr as name`, or a bare column `name`.
pub(crate) fn named_item(expr: &Expr) -> Result<Item, syn::Error> {
    match expr {
        Expr::Assign(a) => match &*a.left {
            Expr::Path(p) if p.path.get_ident().is_some() => {
                Ok(Item { name: p.path.get_ident().cloned().unwrap_or_else(|| Ident::new("_", Span::call_site())), expr: (*a.right).clone() })
            }
            other => Err(syn::Error::new(other.span(), "expected a column name before `=`")),
        },
        Expr::Cast(c) => match &*c.ty {
            Type::Path(tp) if tp.qself.is_none() && tp.path.get_ident().is_some_and(|i| !PRIMITIVE_TYPES.contains(&i.to_string().as_str())) => {
                Ok(Item { name: tp.path.get_ident().cloned().unwrap_or_else(|| Ident::new("_", Span::call_site())), expr: (*c.expr).clone() })
            }
            _ => Err(syn::Error::new(
                expr.span(),
                "name this expression: `name = <expr>` (a cast at the top level needs parentheses: `name = (x as f64)`)",
            )),
        },
        Expr::Path(p) if p.path.get_ident().is_some() => {
            Ok(Item { name: p.path.get_ident().cloned().unwrap_or_else(|| Ident::new("_", Span::call_site())), expr: expr.clone() })
        }
        other => Err(syn::Error::new(other.span(), "name this expression: `name = <expr>` or `<expr> as name`")),
    }
}

pub(crate) fn named_items(call: &Call, diags: &mut Diagnostics) -> Vec<Item> {
    if call.args.is_empty() {
        diags.error(call.name.span(), format!("`{}` needs at least one column", call.name));
    }
    call.args
        .iter()
        .filter_map(|a| match named_item(a) {
            Ok(i) => Some(i),
            Err(e) => {
                diags.push(e);
                None
            }
        })
        .collect()
}
