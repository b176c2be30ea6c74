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
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{Expr, Ident};

use crate::compiler::ast::{Call, ModeKind, Query};
use crate::compiler::check::Cx;
use crate::compiler::diag::{did_you_mean, Diagnostics};
use crate::compiler::emit::{collect_units, unit_loop};
use crate::compiler::logical::{GroupStateSpec, InitialStatic, Item, Key, KeyKind, LOp, Schema, TimeoutKind};
use crate::compiler::ops::{dedup, transform_with_state};
use crate::compiler::plan::{Pipeline, Plan};

/// The DSL names of the timeouts (Spark's `GroupStateTimeout.NoTimeout`, ...).
const TIMEOUTS: &[(&str, TimeoutKind)] = &[
    ("none", TimeoutKind::None),
    ("processing_time", TimeoutKind::ProcessingTime),
    ("event_time", TimeoutKind::EventTime),
];

/// Check hook: `group_by` (already parsed into `keys`) followed by `call`, a
/// `map_groups_with_state` or `flat_map_groups_with_state`.
pub fn check(q: &Query, cx: &mut Cx, keys: Vec<Key>, call: &Call, diags: &mut Diagnostics) -> Option<LOp> {
    let name = call.name.to_string();
    if name == "transform_with_state" {
        return transform_with_state::check(q, cx, keys, call, diags);
    }
    let flat = name == "flat_map_groups_with_state";
    let before = diags.count();
    check_output_mode(q, flat, call, diags);
    check_rows_are_input_records(cx, call, diags);
    // The output is whatever the function returns (rustc checks it is the output record), and
    // nothing may follow; also after an error here, so later rules stay quiet.
    let input_schema = std::mem::replace(&mut cx.schema, Schema::Closed { columns: Vec::new() });
    cx.group_state = true;
    let _ = input_schema;
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
    for arg in &call.args[1..] {
        if initial_state_arg(arg, &mut initial_state, diags) {
            continue;
        }
        match arg {
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
                    "`{name}` takes the function, `timeout = ...` and `initial_state = ...`: `.{name}(update_session, timeout = event_time)`"
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
/// function's declared one), never complete.
fn check_output_mode(q: &Query, flat: bool, call: &Call, diags: &mut Diagnostics) {
    if !q.errors.is_empty() {
        return; // The declared mode did not parse.
    }
    match (flat, q.mode.kind) {
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
/// `after`: the rest, not empty): Spark's refusals with Spark's messages (its
/// `UnsupportedOperationChecker`, probed in `oracle/group_state_rejections.jsonl`), and
/// otherwise "not yet" — one error, on the first call after it.
pub(crate) fn check_after(q: &Query, before: &[Call], after: &[Call], diags: &mut Diagnostics) {
    let Some(op) = before.iter().rev().find(|c| GROUP_STATE_OPS.contains(&c.name.to_string().as_str())) else {
        return;
    };
    let op_name = op.name.to_string();
    let first = &after[0];
    let next = first.name.to_string();
    let aggregates = next == "agg" || (next == "group_by" && after.get(1).is_some_and(|c| c.name == "agg"));
    let another =
        next == "group_by" && after.get(1).is_some_and(|c| GROUP_STATE_OPS.contains(&c.name.to_string().as_str()));
    let update = q.mode.kind == ModeKind::Update;
    let message = match op_name.as_str() {
        "map_groups_with_state" if aggregates => (
            "an aggregation after `map_groups_with_state` is not supported (Spark: \"mapGroupsWithState is not supported with aggregation on a streaming DataFrame/Dataset\"): aggregate in the function"
        )
        .to_string(),
        "flat_map_groups_with_state" if aggregates && update => (
            "an aggregation after `flat_map_groups_with_state` in update mode is not supported (Spark: \"flatMapGroupsWithState in update mode is not supported with aggregation on a streaming DataFrame/Dataset\"): aggregate in the function"
        )
        .to_string(),
        "map_groups_with_state" | "flat_map_groups_with_state" if another => {
            let second = &after[1];
            diags.error(
                second.name.span(),
                format!(
                    "`{second}` after `{op_name}` is not supported (Spark: \"Multiple flatMapGroupsWithStates are not supported on a streaming DataFrames/Datasets\"): keep both states in one function's state",
                    second = second.name
                ),
            );
            return;
        }
        _ => format!(
            "`{next}` after `map_groups_with_state` / `flat_map_groups_with_state` / `transform_with_state` is not supported yet in flowgate: do it in the function"
        ),
    };
    diags.error(first.name.span(), message);
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
/// with rows, then per timed-out key; its records appended to the output.
pub fn emit_output(q: &Query, id: usize, spec: &GroupStateSpec) -> TokenStream {
    if spec.transform {
        return transform_with_state::emit_output(q, id, spec);
    }
    let out = &q.output;
    let op = dedup::var(id);
    let func = &spec.func;
    let key = if spec.keys.len() == 1 { quote!(&__fg_key.0) } else { quote!(__fg_key) };
    // The rows as the function declares them: `GroupRows<'_, R>` (no allocation) or `Vec<R>`.
    let call = quote_spanned!(func.span()=> (#func)(
        #key,
        ::flowgate::ops::group_state::FromGroupRows::from_group_rows(__fg_rows),
        __fg_state
    ));
    let push = if spec.flat {
        let iter = quote_spanned!(func.span()=> ::core::iter::IntoIterator::into_iter(__fg_result));
        quote! {
            for __fg_row in #iter {
                ::flowgate::RecordBuilder::push(&mut __fg_out, __fg_row);
            }
        }
    } else {
        let push = quote_spanned!(func.span()=> ::flowgate::RecordBuilder::push(&mut __fg_out, __fg_result););
        quote! { #push }
    };
    let result = format_ident!("__fg_result");
    let initial = match &spec.initial_state {
        Some(init) => {
            let pairs = initial_pairs(spec, init);
            quote!(, || #pairs)
        }
        None => TokenStream::new(),
    };
    let run = if spec.initial_state.is_some() { quote!(#op.run_with_initial_state) } else { quote!(#op.run) };
    let records = initial_records(q, spec);
    quote! {
        #records
        let mut __fg_out = <#out as ::flowgate::Record>::builder(#op.batch_keys());
        #run(__fg_ctx, |__fg_key, __fg_rows, __fg_state| {
            let #result = #call;
            #push
        } #initial)?;
        ::core::result::Result::Ok(::std::vec![::flowgate::RecordBuilder::finish(&mut __fg_out)?])
    }
}
