//! Arbitrary stateful processing: `group_by(keys..).map_groups_with_state(f, timeout = ..)` and
//! `.flat_map_groups_with_state(f, timeout = ..)` (Spark's `mapGroupsWithState` /
//! `flatMapGroupsWithState`, run by `FlatMapGroupsWithStateExec`).
//!
//! The user's function gets the key (`&K` for one grouping key, `&(K1, K2, ..)` for several),
//! the batch's rows of that key as owned input records (`Vec<Event>`, or without an
//! allocation per key `GroupRows<'_, Event>`, an iterator) and a
//! `&mut GroupState<S>`; `map_groups_with_state` returns one output record, the flat map
//! anything iterable of output records. The check hooks hold Spark's rules (output modes,
//! event-time timeouts need a watermark, nothing after it yet); the emit hooks write the row
//! loop that groups rows by key and the call of the function per key.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{Expr, Ident};

use crate::compiler::ast::{Call, ModeKind, Query};
use crate::compiler::check::Cx;
use crate::compiler::diag::{did_you_mean, Diagnostics};
use crate::compiler::emit::{collect_units, fuse, push_output, unit_loop, watermark_unit, Feed};
use crate::compiler::logical::{GroupStateSpec, InitialStatic, Item, Key, KeyKind, LOp, Schema, TimeoutKind};
use crate::compiler::ops::{dedup, transform_with_state, typed, OpKind};
use crate::compiler::plan::{OutputPlan, Pipeline, Plan, Sink};

/// The DSL names of the timeouts (Spark's `GroupStateTimeout.NoTimeout`, ...).
const TIMEOUTS: &[(&str, TimeoutKind)] = &[
    ("none", TimeoutKind::None),
    ("processing_time", TimeoutKind::ProcessingTime),
    ("event_time", TimeoutKind::EventTime),
];

/// Check hook: `group_by` (already parsed into `keys`) followed by `call`, a
/// `map_groups_with_state` or `flat_map_groups_with_state`; `after`: the calls after it.
pub fn check(
    q: &Query,
    cx: &mut Cx,
    keys: Vec<Key>,
    after: &[Call],
    call: &Call,
    diags: &mut Diagnostics,
) -> Option<LOp> {
    let name = call.name.to_string();
    if name == "transform_with_state" {
        return transform_with_state::check(q, cx, keys, after, call, diags);
    }
    let flat = name == "flat_map_groups_with_state";
    let before = diags.count();
    check_output_mode(q, flat, aggregated_later(after), call, diags);
    check_rows_are_input_records(cx, call, diags);
    // The output is whatever the function returns (rustc checks it is the output record, or
    // what follows reads its columns: `records_follow`); also after an error here, so later
    // rules stay quiet.
    cx.schema = Schema::Closed { columns: Vec::new() };
    cx.group_state = true;
    for k in &keys {
        if !matches!(k.kind, KeyKind::Plain) {
            diags.error(
                k.item.name.span(),
                format!("`{name}` groups by plain keys: a window is not a group-state key (keep the window in the state, or aggregate with `.agg(...)`)"),
            );
        }
    }
    let Some(func) = call.args.first().filter(|a| !matches!(a, Expr::Assign(_))) else {
        diags.error(
            call.name.span(),
            format!("`{name}` takes the function to call per key first: `.{name}(update_session, timeout = processing_time)`"),
        );
        return None;
    };
    let mut timeout = TimeoutKind::None;
    let mut initial_state = None;
    let mut declared_mode = None;
    for arg in &call.args[1..] {
        if initial_state_arg(arg, &mut initial_state, diags) {
            continue;
        }
        match arg {
            Expr::Assign(a) if flat && matches!(&*a.left, Expr::Path(p) if p.path.is_ident("output_mode")) => {
                match &*a.right {
                    Expr::Path(p) if p.path.is_ident("append") => declared_mode = Some((ModeKind::Append, a.right.span())),
                    Expr::Path(p) if p.path.is_ident("update") => declared_mode = Some((ModeKind::Update, a.right.span())),
                    other => diags.error(
                        other.span(),
                        "the function's output mode is `append` or `update` (Spark's `outputMode` of `flatMapGroupsWithState`): `output_mode = append`",
                    ),
                }
            }
            Expr::Assign(a) if matches!(&*a.left, Expr::Path(p) if p.path.is_ident("timeout")) => match &*a.right {
                Expr::Path(p) if p.path.get_ident().is_some() => {
                    let word = p.path.get_ident().map(Ident::to_string).unwrap_or_default();
                    match TIMEOUTS.iter().find(|(n, _)| *n == word) {
                        Some((_, t)) => timeout = *t,
                        None => {
                            let hint = did_you_mean(&word, TIMEOUTS.iter().map(|(n, _)| *n))
                                .map(|c| format!("; did you mean `{c}`?"))
                                .unwrap_or_default();
                            diags.error(
                                p.span(),
                                format!("unknown timeout `{word}`: `none`, `processing_time` or `event_time`{hint}"),
                            );
                        }
                    }
                }
                other => diags.error(
                    other.span(),
                    "the timeout is `none`, `processing_time` or `event_time`: `timeout = processing_time`",
                ),
            },
            other => diags.error(
                other.span(),
                format!(
                    "`{name}` takes the function, `timeout = ...`, {}`initial_state = ...`: `.{name}(update_session, timeout = event_time)`",
                    if flat { "`output_mode = ...` and " } else { "and " }
                ),
            ),
        }
    }
    if timeout == TimeoutKind::EventTime && cx.watermark.is_none() {
        let at = call.args[1..].iter().find_map(|a| match a {
            Expr::Assign(x) => Some(x.right.span()),
            _ => None,
        });
        diags.error(
            at.unwrap_or_else(|| call.name.span()),
            "an event-time timeout needs a watermark (as in Spark): add `.with_watermark(ts, \"10 minutes\")` before the `group_by`",
        );
    }
    if flat {
        check_flat_map_mode(q, declared_mode, timeout, after, diags);
    }
    let keys: Vec<Item> = keys.into_iter().map(|k| k.item).collect();
    let initial_static = initial_static(q, &keys, initial_state.as_deref(), diags);
    if diags.count() > before {
        return None;
    }
    let watermark = (timeout == TimeoutKind::EventTime).then(|| cx.watermark.clone()).flatten();
    Some(LOp::GroupState {
        spec: GroupStateSpec {
            keys,
            func: func.clone(),
            flat,
            transform: false,
            timeout,
            watermark,
            name: call.name.clone(),
            from_map: cx.mapped.as_ref().map(|(id, _)| *id),
            initial_state,
            records: None,
            initial_static,
        },
    })
}

/// Rule: an initial state that names an input of the query — `initial_state = counts`, or
/// `counts.group_by(user_id)` where the static rows name the key otherwise — is that static
/// input's records, each one key's state (Spark's `initialState`, a batch `Dataset` grouped
/// by key). Without `group_by` the records are keyed by the columns named as the stream's
/// keys. Any other expression is the user's `(key, state)` pairs. rustc checks the key
/// columns exist and the record is the state type, at the tokens named here.
pub(crate) fn initial_static(
    q: &Query,
    keys: &[Item],
    init: Option<&Expr>,
    diags: &mut Diagnostics,
) -> Option<InitialStatic> {
    let (name, group_by) = match init? {
        Expr::Path(p) => (p.path.get_ident()?, None),
        Expr::MethodCall(m) => match &*m.receiver {
            Expr::Path(p) => (p.path.get_ident()?, Some(m)),
            _ => return None,
        },
        _ => return None,
    };
    let (input, decl) = q.inputs.iter().enumerate().find(|(_, i)| i.name == *name)?;
    if !decl.is_static {
        diags.error(
            name.span(),
            format!(
                "`{name}` is a stream: an initial state is read once, from a static input (declare it `{name}: static {}`) or an expression of `(key, state)` pairs",
                quote::ToTokens::to_token_stream(&decl.ty)
            ),
        );
        return None;
    }
    let keys = match group_by {
        None => keys.iter().map(|k| k.name.clone()).collect(),
        Some(m) if m.method == "group_by" => {
            let mut cols = Vec::new();
            for arg in &m.args {
                match arg {
                    Expr::Path(p) if p.path.get_ident().is_some() => cols.extend(p.path.get_ident().cloned()),
                    other => {
                        diags.error(
                            other.span(),
                            format!(
                                "the initial state's `group_by` takes columns of `{name}`: `{name}.group_by(user_id)`"
                            ),
                        );
                        return None;
                    }
                }
            }
            if cols.len() != keys.len() {
                diags.error(
                    m.method.span(),
                    format!(
                        "the initial state's `group_by` has {} key{}, the stream's has {}: give `{name}`'s column for each of [{}]",
                        cols.len(),
                        if cols.len() == 1 { "" } else { "s" },
                        keys.len(),
                        keys.iter().map(|k| k.name.to_string()).collect::<Vec<_>>().join(", ")
                    ),
                );
                return None;
            }
            cols
        }
        Some(m) => {
            diags.error(
                m.method.span(),
                format!("an initial state from static input `{name}` is `{name}` or `{name}.group_by(key, ..)`, not `.{}(..)`", m.method),
            );
            return None;
        }
    };
    Some(InitialStatic { input, name: name.clone(), keys })
}

/// The `initial_state = <expr>` argument of the three group-state operators: whether `arg` is
/// one (kept in `slot`; given twice is an error on the second).
pub(crate) fn initial_state_arg(arg: &Expr, slot: &mut Option<Box<Expr>>, diags: &mut Diagnostics) -> bool {
    match arg {
        Expr::Assign(a) if matches!(&*a.left, Expr::Path(p) if p.path.is_ident("initial_state")) => {
            if slot.is_some() {
                diags.error(a.left.span(), "`initial_state` is given twice");
            } else {
                *slot = Some(a.right.clone());
            }
            true
        }
        _ => false,
    }
}

/// Whether `arg` is `initial_state = name` or `initial_state = name.group_by(..)`.
pub(crate) fn names_initial_state_input(arg: &Expr, name: &Ident) -> bool {
    let Expr::Assign(a) = arg else { return false };
    if !matches!(&*a.left, Expr::Path(p) if p.path.is_ident("initial_state")) {
        return false;
    }
    let target = match &*a.right {
        Expr::MethodCall(m) => &*m.receiver,
        other => other,
    };
    matches!(target, Expr::Path(p) if p.path.is_ident(name))
}

/// The initial state's pairs as the operator keys them: a one-column key in a 1-tuple, as
/// the batch's rows are grouped (spanned on the user's expression, so a wrong item type is
/// reported there). The operator calls it in batch 0 only; it is passed after the user's
/// function, so rustc takes the state's type from the function.
pub(crate) fn initial_pairs(spec: &GroupStateSpec, init: &Expr) -> TokenStream {
    let span = init.span();
    if let Some(s) = &spec.initial_static {
        // The records read in batch 0 (`initial_records`), each keyed by its key columns.
        let fields = s.keys.iter().map(|k| quote_spanned!(k.span()=> ::core::clone::Clone::clone(&__fg_s.#k)));
        return quote_spanned!(span=> ::core::iter::Iterator::map(
            ::core::iter::IntoIterator::into_iter(__fg_initial_records),
            |__fg_s| (( #(#fields,)* ), __fg_s)
        ));
    }
    if spec.keys.len() == 1 {
        quote_spanned!(span=> ::core::iter::Iterator::map(
            ::core::iter::IntoIterator::into_iter(#init),
            |(__fg_k, __fg_s)| ((__fg_k,), __fg_s)
        ))
    } else {
        quote_spanned!(span=> #init)
    }
}

/// With a static input as the initial state: its records, read in batch 0 only (the only
/// batch that applies an initial state), before the operator runs.
pub(crate) fn initial_records(q: &Query, spec: &GroupStateSpec) -> TokenStream {
    let Some(s) = &spec.initial_static else { return TokenStream::new() };
    let input = s.input;
    let ty = &q.inputs[input].ty;
    quote! {
        let __fg_initial_records: ::std::vec::Vec<#ty> = if __fg_ctx.batch_id == 0 {
            let mut __fg_v = ::std::vec::Vec::new();
            for __fg_batch in &__fg_inputs[#input] {
                __fg_v.extend(<#ty as ::flowgate::Record>::from_batch(__fg_batch)?);
            }
            __fg_v
        } else {
            ::std::vec::Vec::new()
        };
    }
}

/// Rules on output modes (Spark's `UnsupportedOperationChecker`): `mapGroupsWithState` only in
/// update mode; `flatMapGroupsWithState` in append or update mode (the query's mode is the
/// function's declared one), never complete — unless an aggregation follows it, whose output
/// mode the query's then is.
fn check_output_mode(q: &Query, flat: bool, aggregated_after: bool, call: &Call, diags: &mut Diagnostics) {
    if !q.errors.is_empty() {
        return; // The declared mode did not parse.
    }
    match (flat, q.mode.kind) {
        (true, _) if aggregated_after => {}
        (false, ModeKind::Append | ModeKind::Complete) => diags.error(
            q.mode.span,
            format!(
                "`map_groups_with_state` is not supported with {} output mode (as in Spark): use `mode = update`, or `flat_map_groups_with_state` for append mode",
                if q.mode.kind == ModeKind::Append { "append" } else { "complete" }
            ),
        ),
        (true, ModeKind::Complete) => diags.error(
            q.mode.span,
            "`flat_map_groups_with_state` is not supported with complete output mode (as in Spark): use `mode = append` or `mode = update`",
        ),
        _ => {}
    }
    let _ = call;
}

/// Rules on a flat map's own output mode (Spark's `outputMode` of `flatMapGroupsWithState`,
/// `output_mode = ..`; by default the query's): with an aggregation after it, append (the
/// aggregation's mode is the query's), and not with an event-time timeout, whose rows may be
/// late for the aggregation (Spark's global-watermark check); without one, the query's mode.
fn check_flat_map_mode(
    q: &Query,
    declared: Option<(ModeKind, proc_macro2::Span)>,
    timeout: TimeoutKind,
    after: &[Call],
    diags: &mut Diagnostics,
) {
    if !q.errors.is_empty() {
        return;
    }
    let word = |m: ModeKind| match m {
        ModeKind::Append => "append",
        ModeKind::Update => "update",
        ModeKind::Complete => "complete",
    };
    if aggregated_later(after) {
        let at = declared.map(|(_, s)| s).unwrap_or_else(|| aggregation_call(after));
        match declared.map_or(q.mode.kind, |(m, _)| m) {
            ModeKind::Append if timeout == TimeoutKind::EventTime => diags.error(
                at,
                "an aggregation after `flat_map_groups_with_state` with an event-time timeout is not supported (Spark: \"Detected pattern of possible 'correctness' issue due to global watermark. The query contains stateful operation which can emit rows older than the current watermark plus allowed late record delay\"): its timed-out rows may be late for the aggregation; aggregate in the function",
            ),
            ModeKind::Append => {}
            _ if declared.is_none() => diags.error(
                at,
                format!("an aggregation after `flat_map_groups_with_state` in {} mode is not supported (Spark: \"flatMapGroupsWithState in update mode is not supported with aggregation on a streaming DataFrame/Dataset\"): declare the function's output mode, `output_mode = append`, or aggregate in the function", word(q.mode.kind)),
            ),
            _ => diags.error(
                at,
                "an aggregation after `flat_map_groups_with_state` in update mode is not supported (Spark: \"flatMapGroupsWithState in update mode is not supported with aggregation on a streaming DataFrame/Dataset\"): use `output_mode = append`, or aggregate in the function",
            ),
        }
    } else if let Some((m, span)) = declared {
        if m != q.mode.kind {
            diags.error(
                span,
                format!(
                    "`flat_map_groups_with_state` in {} mode is not supported with {} output mode (as in Spark): without an aggregation after it, the function's output mode is the query's (`mode = {}`)",
                    word(m),
                    word(q.mode.kind),
                    word(m)
                ),
            );
        }
    }
}

/// The `group_by` (or `agg`) of the aggregation after a group-state operator.
fn aggregation_call(after: &[Call]) -> proc_macro2::Span {
    (0..after.len()).find(|i| aggregates(&after[*i..])).map_or(after[0].name.span(), |i| after[i].name.span())
}

/// Whether `after` starts with an aggregation.
fn aggregates(after: &[Call]) -> bool {
    let Some(first) = after.first() else { return false };
    first.name == "agg" || (first.name == "group_by" && after.get(1).is_some_and(|c| c.name == "agg"))
}

/// Whether an aggregation takes the records of a group-state operator (`after`: the calls
/// after it), past the stateless operators between.
pub(crate) fn aggregated_later(after: &[Call]) -> bool {
    for (i, c) in after.iter().enumerate() {
        if aggregates(&after[i..]) {
            return true;
        }
        let stateless = super::lookup(&c.name.to_string()).is_some_and(|o| {
            matches!(o.kind, OpKind::Filter | OpKind::Project | OpKind::WithColumn | OpKind::FlatMap | OpKind::Typed(_))
        });
        if !stateless {
            return false;
        }
    }
    false
}

/// Operators follow group-state operator `op`: its function's records become the rows, each
/// column the rest of the query names bound from them (as after a `map_rows`); they carry no
/// event time (as in Spark, the function's output has no watermarked column).
pub(crate) fn records_follow(cx: &mut Cx, op: &mut LOp) {
    let LOp::GroupState { spec } = op else { return };
    let id = cx.typed;
    cx.typed += 1;
    spec.records = Some((id, Vec::new()));
    cx.mapped = Some((id, Vec::new()));
    cx.schema = Schema::Open { defined: Vec::new() };
    cx.watermark = None;
    cx.window_event_time = None;
}

/// Rule: the function gets the input record's rows, so only operators that choose rows
/// (filters, a watermark, deduplication) may come before it.
pub(crate) fn check_rows_are_input_records(cx: &Cx, call: &Call, diags: &mut Diagnostics) {
    let reshaped = match &cx.schema {
        Schema::Open { defined } => !defined.is_empty(),
        Schema::Closed { .. } => true,
    };
    if cx.aggregated {
        diags.error(
            call.name.span(),
            format!("`{}` after an aggregation is not supported (as in Spark's append mode rules in flowgate): group the input rows", call.name),
        );
    } else if reshaped || !cx.joined.is_empty() || !cx.unioned.is_empty() {
        diags.error(
            call.name.span(),
            format!(
                "`{}` hands the function the input record's rows: only `filter`, `with_watermark`, `drop_duplicates` and typed operations (`map_rows`, `flat_map_rows`, `filter_rows`) may come before it in flowgate (compute the other values in the function, or make its records with `map_rows`)",
                call.name
            ),
        );
    }
}

/// Rule: a group-state operator needs `group_by` before it.
pub(crate) fn needs_keys(name: &str) -> String {
    if name == "transform_with_state" {
        format!(
            "`{name}` needs its keys: `.group_by(user).{name}(SessionTracker::default(), time_mode = processing_time)`"
        )
    } else {
        format!("`{name}` needs its keys: `.group_by(user).{name}(update_session, timeout = processing_time)`")
    }
}

/// The group-state operator names.
const GROUP_STATE_OPS: &[&str] = &["map_groups_with_state", "flat_map_groups_with_state", "transform_with_state"];

/// Rules on what follows a group-state operator (`before`: the calls up to and including it;
/// `after`: the rest, not empty), as Spark's `UnsupportedOperationChecker` (probed in
/// `oracle/group_state_rejections.jsonl`): stateless operators, typed operations, dedups,
/// a watermark, a stream-static join and a global limit over its records; an aggregation after a flat map in append mode
/// (`check_flat_map_mode`) or after `transform_with_state`. Whether `after[0]` may follow;
/// if not, one error on it (Spark's message where Spark refuses it, else "not yet").
pub(crate) fn may_follow(q: &Query, before: &[Call], after: &[Call], diags: &mut Diagnostics) -> bool {
    let Some(op) = before.iter().rev().find(|c| GROUP_STATE_OPS.contains(&c.name.to_string().as_str())) else {
        return true;
    };
    let op_name = op.name.to_string();
    let first = &after[0];
    let next = first.name.to_string();
    let another =
        next == "group_by" && after.get(1).is_some_and(|c| GROUP_STATE_OPS.contains(&c.name.to_string().as_str()));
    let kind = super::lookup(&next).map(|o| o.kind);
    let message = match kind {
        Some(
            OpKind::Filter
            | OpKind::Project
            | OpKind::WithColumn
            | OpKind::FlatMap
            | OpKind::Typed(_)
            | OpKind::Dedup
            | OpKind::DedupWithinWatermark,
        ) => return true,
        Some(OpKind::Watermark) if !before.iter().any(|c| c.name == "with_watermark") => return true,
        // A stream-static join enriches the records (a stream-stream join after it: not yet).
        Some(OpKind::Join) if first.args.first().is_some_and(|a| !super::stream_join::is_stream_join(q, a)) => {
            return true;
        }
        // Spark refuses it when the watermark propagates (`PropagateWatermarkSimulator`,
        // once the first watermark has a value): a watermark on the output of a stateful
        // operator that already has one.
        Some(OpKind::Watermark) => format!(
            "`with_watermark` after `{op_name}` in a query with a watermark before it is not supported (Spark: \"Redefining watermark is disallowed\"): aggregate its records in update or complete mode (no watermark needed there), or drop the watermark before `{op_name}`"
        ),
        _ if aggregates(after) && op_name == "map_groups_with_state" => (
            "an aggregation after `map_groups_with_state` is not supported (Spark: \"mapGroupsWithState is not supported with aggregation on a streaming DataFrame/Dataset\"): aggregate in the function, or use `flat_map_groups_with_state` in append mode"
        )
        .to_string(),
        // A flat map's mode rules ran in its check.
        _ if aggregates(after) => return true,
        _ if another => {
            let second = &after[1];
            diags.error(
                second.name.span(),
                format!(
                    "`{second}` after `{op_name}` is not supported (Spark: \"Multiple flatMapGroupsWithStates are not supported on a streaming DataFrames/Datasets\"): keep both states in one function's state",
                    second = second.name
                ),
            );
            return false;
        }
        // A global limit in append mode; refused by their own rules, as Spark refuses them
        // here: a sort without an aggregation, a limit in update mode.
        Some(OpKind::Sort | OpKind::Limit) => return true,
        _ => format!(
            "`{next}` after `{op_name}` is not supported yet in flowgate: its records go through stateless operators, typed operations, dedups, `with_watermark`, a stream-static join, a `limit` and an aggregation (not after `map_groups_with_state`) to the output; do the rest in the function"
        ),
    };
    diags.error(first.name.span(), message);
    false
}

// ---- emit hooks ----

/// The operator's state at plan creation.
pub fn init(spec: &GroupStateSpec) -> TokenStream {
    if spec.transform {
        return transform_with_state::init(spec);
    }
    let t = match spec.timeout {
        TimeoutKind::None => quote!(NoTimeout),
        TimeoutKind::ProcessingTime => quote!(ProcessingTimeTimeout),
        TimeoutKind::EventTime => quote!(EventTimeTimeout),
    };
    quote!(::flowgate::ops::group_state::GroupStateOp::new(
        __fg_config.shuffle_partitions,
        ::flowgate::ops::group_state::GroupStateTimeout::#t
    ))
}

/// The pipeline from `input` into group-state operator `id`: each row (after the pipeline's
/// filters; late rows dropped first with an event-time timeout, as Spark) goes, owned, into
/// its key's group of the batch. One thread, in row order: a key's rows keep their order.
pub fn emit_update(plan: &Plan, p: &Pipeline, input: usize, id: usize, spec: &GroupStateSpec) -> TokenStream {
    let op = dedup::var(id);
    let in_ty = &plan.inputs[input].ty;
    let units = collect_units(plan, p, input);
    let late = match &spec.watermark {
        Some(w) => quote_spanned!(w.span()=>
            if ::flowgate::ops::dedup::is_late(#w, __fg_late_wm) {
                #op.late();
                continue;
            }
        ),
        None => TokenStream::new(),
    };
    let keys = spec.keys.iter().map(|k| &k.expr);
    // After a map its record moves into the group (the key, read from it, owned first).
    let terminal = match spec.from_map {
        Some(id) => {
            let row = crate::compiler::ops::typed::row_var(id);
            quote! {
                #late
                let __fg_gkey = ::flowgate::value::GroupKey::to_owned_key(&( #(#keys,)* ));
                #op.push_row(__fg_gkey, #row);
            }
        }
        None => quote! {
            #late
            #op.push_row(( #(#keys,)* ), <#in_ty as ::flowgate::Record>::row(__fg_cols, __fg_i));
        },
    };
    let body = unit_loop(p, plan, terminal);
    quote! {
        #units
        for __fg_unit in &__fg_units {
            #body
        }
    }
}

/// The pipeline from group-state operator `id` to the output: the user's function per key
/// with rows, then per timed-out key; its records appended to the output, or, when operators
/// follow (`spec.records`), run through them (`p.ops`) into the output's `columns` (a
/// `select`) or pushed whole.
pub fn emit_output(
    q: &Query,
    plan: &Plan,
    p: &Pipeline,
    id: usize,
    spec: &GroupStateSpec,
    columns: &[Ident],
) -> TokenStream {
    if let Some((records, cols)) = &spec.records {
        let var = typed::row_var(*records);
        let calls = collect_records(q, id, spec);
        let terminal = match p.ops.iter().rev().find_map(|o| match o {
            LOp::TypedRows { spec } if spec.produces() => Some(spec),
            _ => None,
        }) {
            // Spanned on the last map's function: a record of another type than the output is
            // rustc's "expected `Out`, found `Record`" there.
            Some(last) => {
                let v = Ident::new(&typed::row_var(last.id).to_string(), last.func.span());
                quote_spanned!(last.func.span()=> ::flowgate::RecordBuilder::push(&mut __fg_out, #v);)
            }
            None if matches!(p.sink, Sink::Output(OutputPlan::Records)) => {
                let v = Ident::new(&var.to_string(), spec.func.span());
                quote_spanned!(spec.func.span()=> ::flowgate::RecordBuilder::push(&mut __fg_out, #v);)
            }
            None => push_output(q, columns),
        };
        let each = records_loop(plan, p, &var, cols, terminal);
        let out = &q.output;
        return quote! {
            #calls
            let mut __fg_out = <#out as ::flowgate::Record>::builder(__fg_recs.len());
            #each
            ::core::result::Result::Ok(::std::vec![::flowgate::RecordBuilder::finish(&mut __fg_out)?])
        };
    }
    // Straight to the output: each record pushed as the function returns it (spanned on the
    // function: a record of another type than the output is rustc's error there).
    let out = &q.output;
    let op = dedup::var(id);
    let span = spec.func.span();
    let calls =
        function_calls(q, id, spec, |rec| quote_spanned!(span=> ::flowgate::RecordBuilder::push(&mut __fg_out, #rec);));
    quote! {
        let mut __fg_out = <#out as ::flowgate::Record>::builder(#op.batch_keys());
        #calls
        ::core::result::Result::Ok(::std::vec![::flowgate::RecordBuilder::finish(&mut __fg_out)?])
    }
}

/// The pipeline from group-state operator `id`'s records into another stateful operator
/// (`feed`, an aggregation): each record, its columns bound, through `p.ops` into it.
pub fn emit_into(q: &Query, plan: &Plan, p: &Pipeline, id: usize, spec: &GroupStateSpec, feed: &Feed) -> TokenStream {
    let Some((records, cols)) = &spec.records else {
        return quote! { compile_error!("flowgate bug: a group-state operator feeds another without its records named"); };
    };
    let var = typed::row_var(*records);
    let calls = collect_records(q, id, spec);
    let run = feed.wrap(records_loop(plan, p, &var, cols, feed.terminal.clone()));
    quote! {
        #calls
        #run
    }
}

/// The loop over the batch's collected records (`__fg_recs`, drained): each bound as `var`, the
/// columns `cols` the rest reads bound from it, through the pipeline's operators into
/// `terminal`, its event time observed for a watermark on them.
fn records_loop(plan: &Plan, p: &Pipeline, var: &Ident, cols: &[Ident], terminal: TokenStream) -> TokenStream {
    let binds = typed::record_binds(var, cols);
    let body = fuse(plan, &p.ops, terminal);
    let (wm_start, wm_end) = watermark_unit(p);
    quote! {
        #wm_start
        for #var in __fg_recs.drain(..) {
            #binds
            #body
        }
        #wm_end
    }
}

/// The batch's calls of the function (or processor) of group-state operator `id`, its records
/// collected in `__fg_recs` (their type is the function's: rustc infers it).
fn collect_records(q: &Query, id: usize, spec: &GroupStateSpec) -> TokenStream {
    let calls = function_calls(q, id, spec, |rec| quote! { __fg_recs.push(#rec); });
    quote! {
        let mut __fg_recs = ::std::vec::Vec::new();
        #calls
    }
}

/// The batch's calls of group-state operator `id`'s function (or processor): per key with
/// rows, per timed-out key or timer, and in batch 0 with the initial state; `each(record)` is
/// the statement for each record it returns.
fn function_calls(
    q: &Query,
    id: usize,
    spec: &GroupStateSpec,
    each: impl Fn(TokenStream) -> TokenStream,
) -> TokenStream {
    let op = dedup::var(id);
    let func = &spec.func;
    let records = initial_records(q, spec);
    // Each record spanned on the function: a record of another type than the output is
    // rustc's error there.
    let span = func.span();
    if spec.transform {
        return transform_with_state::calls(id, spec, each(quote_spanned!(span=> __fg_row)), records);
    }
    let key = if spec.keys.len() == 1 { quote!(&__fg_key.0) } else { quote!(__fg_key) };
    // The rows as the function declares them: `GroupRows<'_, R>` (no allocation) or `Vec<R>`.
    let call = quote_spanned!(func.span()=> (#func)(
        #key,
        ::flowgate::ops::group_state::FromGroupRows::from_group_rows(__fg_rows),
        __fg_state
    ));
    let push = if spec.flat {
        let iter = quote_spanned!(func.span()=> ::core::iter::IntoIterator::into_iter(__fg_result));
        let one = each(quote_spanned!(span=> __fg_row));
        quote! {
            for __fg_row in #iter {
                #one
            }
        }
    } else {
        each(quote_spanned!(span=> __fg_result))
    };
    let (run, initial) = match &spec.initial_state {
        Some(init) => {
            let pairs = initial_pairs(spec, init);
            (quote!(#op.run_with_initial_state), quote!(, || #pairs))
        }
        None => (quote!(#op.run), TokenStream::new()),
    };
    quote! {
        #records
        #run(__fg_ctx, |__fg_key, __fg_rows, __fg_state| {
            let __fg_result = #call;
            #push
        } #initial)?;
    }
}

/// The pipeline from another operator's rows (a stream-stream join's, made records by a map
/// over its selected columns) into group-state operator `id`: each record, owned, into its
/// key's group of the batch, in the order the join emits them.
pub fn feed(id: usize, spec: &GroupStateSpec) -> Feed {
    let op = dedup::var(id);
    let keys = spec.keys.iter().map(|k| &k.expr);
    let terminal = match spec.from_map {
        Some(m) => {
            let row = typed::row_var(m);
            quote! {
                let __fg_gkey = ::flowgate::value::GroupKey::to_owned_key(&( #(#keys,)* ));
                #op.push_row(__fg_gkey, #row);
            }
        }
        None => quote! { compile_error!("flowgate bug: group state over another operator's rows without a map"); },
    };
    Feed { op, terminal, inline: true }
}
