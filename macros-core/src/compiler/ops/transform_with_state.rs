//! Spark 4's `transformWithState`: `group_by(keys..).transform_with_state(processor,
//! time_mode = none | processing_time | event_time)`, run by the runtime's
//! `TransformWithStateOp` (`runtime/src/ops/transform_with_state/`).
//!
//! The processor is any expression whose type implements
//! `flowgate::ops::transform_with_state::StatefulProcessor` (`Tracker::default()`,
//! `Alerts { limit: 3 }`); it is evaluated once when the query starts, and its `init`
//! declares the state variables. The plan is the group-state plan (rows grouped by key in
//! one thread, then one call per key): this module holds its check rules (Spark's
//! `UnsupportedOperationChecker` and `TransformWithStateExec` ones) and its emit hooks; the
//! update pipeline is `group_state::emit_update`'s.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{Expr, Ident};

use crate::compiler::ast::{Call, ModeKind, Query};
use crate::compiler::check::Cx;
use crate::compiler::diag::{did_you_mean, Diagnostics};
use crate::compiler::logical::{GroupStateSpec, Item, Key, KeyKind, LOp, Schema, TimeoutKind};
use crate::compiler::ops::{dedup, group_state};

/// The DSL names of the time modes (Spark's `TimeMode.None()`, ...).
const TIME_MODES: &[(&str, TimeoutKind)] = &[
    ("none", TimeoutKind::None),
    ("processing_time", TimeoutKind::ProcessingTime),
    ("event_time", TimeoutKind::EventTime),
];

const EXAMPLE: &str = "`.transform_with_state(SessionTracker::default(), time_mode = processing_time)`";

/// Check hook: `group_by` (already parsed into `keys`) followed by `transform_with_state`.
pub fn check(
    q: &Query,
    cx: &mut Cx,
    keys: Vec<Key>,
    after: &[Call],
    call: &Call,
    diags: &mut Diagnostics,
) -> Option<LOp> {
    let before = diags.count();
    if !group_state::aggregated_later(after) {
        // With an aggregation after it, the query's mode is the aggregation's (Spark accepts
        // all three there; append needs the aggregation's own watermark).
        check_output_mode(q, diags);
    }
    group_state::check_rows_are_input_records(cx, call, diags);
    // The output is what the processor returns (rustc checks it is the output record, or what
    // follows reads its columns: `group_state::records_follow`); also after an error here, so
    // later rules stay quiet.
    cx.schema = Schema::Closed { columns: Vec::new() };
    cx.group_state = true;
    for k in &keys {
        if !matches!(k.kind, KeyKind::Plain) {
            diags.error(
                k.item.name.span(),
                "`transform_with_state` groups by plain keys: a window is not a grouping key of a processor (keep the window in a state variable, or aggregate with `.agg(...)`)",
            );
        }
    }
    let Some(processor) = call.args.first().filter(|a| !matches!(a, Expr::Assign(_))) else {
        diags.error(call.name.span(), format!("`transform_with_state` takes the stateful processor first: {EXAMPLE}"));
        return None;
    };
    let (mode, initial_state) = time_mode(call, diags);
    if mode == Some(TimeoutKind::EventTime) && cx.watermark.is_none() {
        let at = call.args[1..].iter().find_map(|a| match a {
            Expr::Assign(x) => Some(x.right.span()),
            _ => None,
        });
        diags.error(
            at.unwrap_or_else(|| call.name.span()),
            "`time_mode = event_time` needs a watermark (its timers fire on it): add `.with_watermark(ts, \"10 minutes\")` before the `group_by`",
        );
    }
    let keys: Vec<Item> = keys.into_iter().map(|k| k.item).collect();
    let initial_static = group_state::initial_static(q, &keys, initial_state.as_deref(), diags);
    if diags.count() > before {
        return None;
    }
    let timeout = mode?;
    // In event time the late rows are dropped before the processor sees them, as Spark's
    // `TransformWithStateExec` filters by the late-events watermark.
    let watermark = (timeout == TimeoutKind::EventTime).then(|| cx.watermark.clone()).flatten();
    Some(LOp::GroupState {
        spec: GroupStateSpec {
            keys,
            func: processor.clone(),
            flat: true,
            transform: true,
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

/// The `time_mode = ..` argument (required, as Spark's `timeMode` has no default; `None`
/// after an error) and the `initial_state = ..` one.
fn time_mode(call: &Call, diags: &mut Diagnostics) -> (Option<TimeoutKind>, Option<Box<Expr>>) {
    let mut mode = None;
    let mut seen = false;
    let mut timeout = false;
    let mut initial_state = None;
    for arg in &call.args[1..] {
        if group_state::initial_state_arg(arg, &mut initial_state, diags) {
            continue;
        }
        match arg {
            Expr::Assign(a) if matches!(&*a.left, Expr::Path(p) if p.path.is_ident("time_mode")) => {
                if seen {
                    diags.error(a.left.span(), "`time_mode` is given twice");
                    continue;
                }
                seen = true;
                match &*a.right {
                    Expr::Path(p) if p.path.get_ident().is_some() => {
                        let word = p.path.get_ident().map(Ident::to_string).unwrap_or_default();
                        match TIME_MODES.iter().find(|(n, _)| *n == word) {
                            Some((_, t)) => mode = Some(*t),
                            None => {
                                let hint = did_you_mean(&word, TIME_MODES.iter().map(|(n, _)| *n))
                                    .map(|c| format!("; did you mean `{c}`?"))
                                    .unwrap_or_default();
                                diags.error(
                                    p.span(),
                                    format!(
                                        "unknown time mode `{word}`: `none`, `processing_time` or `event_time`{hint}"
                                    ),
                                );
                            }
                        }
                    }
                    other => diags.error(
                        other.span(),
                        "the time mode is `none`, `processing_time` or `event_time`: `time_mode = processing_time`",
                    ),
                }
            }
            Expr::Assign(a) if matches!(&*a.left, Expr::Path(p) if p.path.is_ident("timeout")) => {
                timeout = true;
                diags.error(
                    a.left.span(),
                    "`transform_with_state` has a time mode, not a timeout (the processor registers timers): `time_mode = processing_time`",
                )
            }
            other => diags.error(
                other.span(),
                format!("`transform_with_state` takes the processor, `time_mode = ...` and `initial_state = ...`: {EXAMPLE}"),
            ),
        }
    }
    if !seen && !timeout {
        diags.error(
            call.name.span(),
            format!(
                "`transform_with_state` needs its time mode (Spark's `timeMode`): `none`, `processing_time` or `event_time`, as in {EXAMPLE}"
            ),
        );
    }
    (mode, initial_state)
}

/// Rule (Spark's `UnsupportedOperationChecker`): `transformWithState` runs in append or
/// update mode, never complete.
fn check_output_mode(q: &Query, diags: &mut Diagnostics) {
    if q.errors.is_empty() && q.mode.kind == ModeKind::Complete {
        diags.error(
            q.mode.span,
            "`transform_with_state` is not supported with complete output mode (as in Spark): use `mode = append` or `mode = update`",
        );
    }
}

// ---- emit hooks ----

/// The operator at plan creation: the processor is evaluated and its `init` called.
pub fn init(spec: &GroupStateSpec) -> TokenStream {
    let mode = match spec.timeout {
        TimeoutKind::None => quote!(None),
        TimeoutKind::ProcessingTime => quote!(ProcessingTime),
        TimeoutKind::EventTime => quote!(EventTime),
    };
    let processor = &spec.func;
    // The call and its argument spanned on the processor, as the `run` call in
    // `calls`: a value that is no processor is one unmet bound at one span, which
    // rustc reports once, under the processor.
    let new = quote_spanned!(processor.span()=>
        ::flowgate::ops::transform_with_state::TransformWithStateOp::new(
            __fg_config.shuffle_partitions,
            ::flowgate::ops::transform_with_state::TimeMode::#mode,
            __fg_processor
        )
    );
    let binding = quote_spanned!(processor.span()=> __fg_processor);
    quote!({
        let #binding = #processor;
        #new
    })
}

/// The processor's calls for the batch (`records`: the static initial state's records, read
/// first); `push` is the statement for each record `__fg_row` it returns.
pub(crate) fn calls(id: usize, spec: &GroupStateSpec, push: TokenStream, records: TokenStream) -> TokenStream {
    let op = dedup::var(id);
    let key_of = key_of(spec);
    let span = spec.func.span();
    // Spanned on the processor (see `init`): `run` needs `P: StatefulProcessor` too. The
    // receiver in parentheses spanned there makes the call's span the processor's while the
    // operator's variable keeps its own hygiene.
    // With an initial state the processor must also be a `StatefulProcessorWithInitialState`
    // (one unmet bound, under the processor); the pairs are built in batch 0 only.
    let run = if let Some(init) = &spec.initial_state {
        let pairs = group_state::initial_pairs(spec, init);
        quote_spanned!(span=> (#op).run_with_initial_state(__fg_ctx, #key_of, |__fg_row| { #push }, || #pairs))
    } else {
        quote_spanned!(span=> (#op).run(__fg_ctx, #key_of, |__fg_row| { #push }))
    };
    quote! {
        #records
        #run?;
    }
}

/// How the operator's grouping key becomes the processor's: the one column itself, or the
/// tuple of several.
pub(crate) fn key_of(spec: &GroupStateSpec) -> TokenStream {
    if spec.keys.len() == 1 {
        quote!(::flowgate::ops::transform_with_state::single_key)
    } else {
        quote!(::flowgate::ops::transform_with_state::whole_key)
    }
}
