//! Aggregation: `group_by(keys..).agg(aggs..)` and `agg(..)` — the check hooks (keys, window
//! specs, aggregate calls, Spark's one-aggregation rule) and the emit hooks of the two
//! physical operators the plan chooses between (hash aggregation, session windows).

use proc_macro2::TokenStream;
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{Expr, Ident, Index};

use crate::compiler::ast::{Call, ModeKind, Query};
use crate::compiler::check::{check_no_aggregate, check_unique_names, duration_arg, named_item, optional_name, Cx};
use crate::compiler::diag::{hint, Diagnostics};
use crate::compiler::emit::{collect_units, fuse, output_literal, push_output, unit_loop, Feed};
use crate::compiler::exprs::{AGG_FUNCTIONS, UNSUPPORTED_AGGS};
use crate::compiler::logical::{AggFunc, AggItem, Item, Key, KeyKind, LOp, Schema, SortSpec};
use crate::compiler::ops::{dedup, typed};
use crate::compiler::plan::{AggPlan, Pipeline, Plan};

/// Rule: an aggregation after another runs only in append mode, as Spark 4's
/// `checkStreamingQueryGlobalWatermarkLimit` says: in update or complete mode the first emits
/// rows (updates) the second would count as late.
pub(crate) fn check_chained_aggregation(q: &Query, cx: &Cx, at: &Ident, diags: &mut Diagnostics) {
    if !cx.aggregated {
        return;
    }
    if q.mode.kind != ModeKind::Append {
        diags.error(
            at.span(),
            "an aggregation after an aggregation needs append mode (Spark: \"Detected pattern of possible 'correctness' issue due to global watermark\"): in update or complete mode the first aggregation emits rows the second would count as late; use `mode = append` and window both over event time: `.group_by(window(window_time(window), \"1 hour\"))`",
        );
    }
}

/// The function a key calls, if it is `window(...)` or `session_window(...)`.
fn window_call(expr: &Expr) -> Option<(&syn::ExprCall, String)> {
    let Expr::Call(c) = expr else { return None };
    let Expr::Path(p) = &*c.func else { return None };
    let name = p.path.get_ident()?.to_string();
    matches!(name.as_str(), "window" | "session_window").then_some((c, name))
}

/// Parses `group_by(...)` keys, with window specs checked at compile time.
pub(crate) fn group_keys(call: &Call, cx: &mut Cx, diags: &mut Diagnostics) -> Vec<Key> {
    if call.args.is_empty() {
        diags.error(call.name.span(), "`group_by` needs at least one key");
    }
    let mut keys = Vec::new();
    for arg in &call.args {
        // `window(...)` may be named (`w = window(...)`) or take Spark's default name.
        let Some((name, body)) = optional_name(arg, diags) else { continue };
        let key = match window_call(&body) {
            Some((c, fname)) => {
                let Some(kind) = window_kind(c, &fname, diags) else { continue };
                let ts = match &kind {
                    KeyKind::Window { ts, .. } | KeyKind::Session { ts, .. } => ts.clone(),
                    KeyKind::Plain => continue,
                };
                check_no_aggregate(&ts, diags);
                cx.resolve(&ts, diags);
                let name = name.unwrap_or_else(|| Ident::new(&fname, c.func.span()));
                if fname == "session_window" {
                    cx.session = true;
                }
                Key { item: Item { name, expr: body.clone() }, kind }
            }
            None => {
                let item = match name {
                    Some(n) => Item { name: n, expr: body },
                    None => match named_item(&body) {
                        Ok(i) => i,
                        Err(e) => {
                            diags.push(e);
                            continue;
                        }
                    },
                };
                check_no_aggregate(&item.expr, diags);
                cx.resolve(&item.expr, diags);
                Key { item, kind: KeyKind::Plain }
            }
        };
        keys.push(key);
    }
    let windows: Vec<&Key> = keys.iter().filter(|k| !matches!(k.kind, KeyKind::Plain)).collect();
    if let Some(second) = windows.get(1) {
        diags.error(
            second.item.name.span(),
            "only one window per aggregation (Spark: multiple time/session window expressions would result in a cartesian product)",
        );
    }
    let items: Vec<Item> = keys.iter().map(|k| k.item.clone()).collect();
    check_unique_names(&items, diags);
    keys
}

/// `window(ts, size[, slide[, start]])` or `session_window(ts, gap)`.
fn window_kind(c: &syn::ExprCall, fname: &str, diags: &mut Diagnostics) -> Option<KeyKind> {
    let args: Vec<&Expr> = c.args.iter().collect();
    if fname == "session_window" {
        if args.len() != 2 {
            diags.error(
                c.func.span(),
                "`session_window` takes a timestamp column and a gap: `session_window(ts, \"5 minutes\")`",
            );
            return None;
        }
        let gap = duration_arg(args[1], "session gap", diags)?;
        if gap <= 0 {
            diags.error(args[1].span(), "the session gap must be positive");
            return None;
        }
        return Some(KeyKind::Session { ts: args[0].clone(), gap });
    }
    if !(2..=4).contains(&args.len()) {
        diags.error(
            c.func.span(),
            "`window` takes a timestamp column and durations: `window(ts, \"10 minutes\")`, `window(ts, \"10 minutes\", \"5 minutes\")` or with a start offset as fourth argument",
        );
        return None;
    }
    let size = duration_arg(args[1], "window duration", diags);
    let slide = match args.get(2) {
        Some(a) => duration_arg(a, "slide duration", diags),
        None => size,
    };
    let offset = match args.get(3) {
        Some(a) => duration_arg(a, "window start offset", diags),
        None => Some(0),
    };
    let (size, slide, offset) = (size?, slide?, offset?);
    let mut ok = true;
    if size <= 0 {
        diags.error(args[1].span(), "the window duration must be positive");
        ok = false;
    }
    if let Some(a) = args.get(2) {
        if slide <= 0 {
            diags.error(a.span(), "the slide duration must be positive");
            ok = false;
        } else if slide > size {
            diags.error(a.span(), "the slide duration must be less than or equal to the window duration (as in Spark)");
            ok = false;
        }
    }
    if let Some(a) = args.get(3) {
        if slide > 0 && offset.abs() >= slide {
            diags.error(a.span(), "the window start offset must be less than the slide duration (as in Spark)");
            ok = false;
        }
    }
    ok.then(|| KeyKind::Window { ts: args[0].clone(), size, slide, offset })
}

/// Parses `.agg(...)` items and resolves their arguments against the pre-aggregation schema.
pub(crate) fn agg_items(call: &Call, cx: &mut Cx, diags: &mut Diagnostics) -> Vec<AggItem> {
    if call.args.is_empty() {
        diags.error(call.name.span(), "`agg` needs at least one aggregate, e.g. `.agg(count() as count)`");
    }
    let mut out = Vec::new();
    for arg in &call.args {
        let Some((name, body)) = optional_name(arg, diags) else { continue };
        let Expr::Call(c) = &body else {
            diags.error(
                body.span(),
                "expected an aggregate call: count(), count(x), sum(x), avg(x), min(x), max(x), first(x), last(x), collect_list(x), collect_set(x), approx_count_distinct(x), stddev(x) or variance(x)",
            );
            continue;
        };
        let Some(fname) = (match &*c.func {
            Expr::Path(p) => p.path.get_ident().cloned(),
            _ => None,
        }) else {
            diags.error(c.func.span(), "expected an aggregate function name");
            continue;
        };
        let fstr = fname.to_string();
        if let Some((_, why)) = UNSUPPORTED_AGGS.iter().find(|(n, _)| *n == fstr) {
            diags.error(fname.span(), *why);
            continue;
        }
        let Some(func) = agg_func(&fname, &fstr, c, diags) else { continue };
        let arg_expr = c.args.first().cloned();
        if let Some(a) = &arg_expr {
            check_no_aggregate(a, diags);
            cx.resolve(a, diags);
        }
        let name = match name {
            Some(n) => n,
            None if func == AggFunc::CountRows => Ident::new("count", fname.span()),
            None => {
                diags.error(body.span(), format!("name this aggregate: `{fstr}(...) as name`"));
                continue;
            }
        };
        out.push(AggItem { name, func, arg: arg_expr, span: fname.span() });
    }
    out
}

/// The aggregate function a call names, its arguments checked: one column expression, plus
/// for `first`/`last` an optional `true`/`false` literal (Spark's `ignoreNulls`).
fn agg_func(fname: &Ident, fstr: &str, c: &syn::ExprCall, diags: &mut Diagnostics) -> Option<AggFunc> {
    let n = c.args.len();
    let mut ignore_nulls = || -> Option<bool> {
        match c.args.iter().nth(1) {
            None => Some(false),
            Some(Expr::Lit(syn::ExprLit { lit: syn::Lit::Bool(b), .. })) => Some(b.value),
            Some(other) => {
                diags.error(
                    other.span(),
                    format!("the second argument of `{fstr}` is `true` or `false` (ignore nulls), as in Spark's `{fstr}(x, true)`"),
                );
                None
            }
        }
    };
    let func = match (fstr, n) {
        ("count", 0) => AggFunc::CountRows,
        ("count", 1) => AggFunc::Count,
        ("sum", 1) => AggFunc::Sum,
        ("avg" | "mean", 1) => AggFunc::Avg,
        ("min", 1) => AggFunc::Min,
        ("max", 1) => AggFunc::Max,
        ("first" | "first_value", 1 | 2) => AggFunc::First { ignore_nulls: ignore_nulls()? },
        ("last" | "last_value", 1 | 2) => AggFunc::Last { ignore_nulls: ignore_nulls()? },
        ("collect_list", 1) => AggFunc::CollectList,
        ("collect_set", 1) => AggFunc::CollectSet,
        ("approx_count_distinct", 1) => AggFunc::ApproxCountDistinct,
        ("approx_count_distinct", 2) => {
            let arg = c.args.iter().nth(1).map(|a| a.span()).unwrap_or(fname.span());
            diags.error(
                arg,
                "approx_count_distinct takes Spark's default relative error (0.05) only in flowgate: write `approx_count_distinct(x)`",
            );
            return None;
        }
        ("stddev" | "stddev_samp", 1) => AggFunc::StddevSamp,
        ("stddev_pop", 1) => AggFunc::StddevPop,
        ("variance" | "var_samp", 1) => AggFunc::VarSamp,
        ("var_pop", 1) => AggFunc::VarPop,
        (known, n) if AGG_FUNCTIONS.contains(&known) => {
            let want = match known {
                "count" => "0 or 1",
                "first" | "first_value" | "last" | "last_value" => "1 or 2",
                _ => "1",
            };
            diags.error(fname.span(), format!("`{known}` takes {want} argument(s), got {n}"));
            return None;
        }
        (other, _) => {
            let names: Vec<String> = AGG_FUNCTIONS.iter().map(|s| s.to_string()).collect();
            diags.error(
                fname.span(),
                format!(
                    "unknown aggregate function `{other}`{} (known: {})",
                    hint(other, &names),
                    AGG_FUNCTIONS.join(", ")
                ),
            );
            return None;
        }
    };
    Some(func)
}

pub(crate) fn finish_aggregate(
    cx: &mut Cx,
    keys: Vec<Key>,
    aggs: Vec<AggItem>,
    ops: &mut Vec<LOp>,
    diags: &mut Diagnostics,
) {
    // A map before it: the columns named since are its records' (the keys and arguments
    // too); the aggregation's rows are no map's records.
    typed::flush(cx, ops);
    cx.mapped = None;
    let mut columns: Vec<Ident> = keys.iter().map(|k| k.item.name.clone()).collect();
    for a in &aggs {
        if columns.contains(&a.name) {
            diags.error(a.name.span(), format!("column `{}` is defined twice", a.name));
        }
        columns.push(a.name.clone());
    }
    // Event time: the watermarked column (the other stream's too after a join), or, after an
    // aggregation by an event-time window, `window_time(window)`.
    let watermarked: Vec<&Ident> = cx.watermark.iter().chain(&cx.joined_watermarks).collect();
    let on_watermark = |e: &Expr| match e {
        Expr::Path(p) => watermarked.iter().any(|w| p.path.is_ident(*w)),
        Expr::Call(c) => {
            matches!(&*c.func, Expr::Path(f) if f.path.is_ident("window_time"))
                && c.args.len() == 1
                && cx
                    .window_event_time
                    .as_ref()
                    .is_some_and(|w| matches!(&c.args[0], Expr::Path(p) if p.path.is_ident(w)))
        }
        _ => false,
    };
    let event_time_key = keys.iter().position(|k| match &k.kind {
        KeyKind::Window { ts, .. } | KeyKind::Session { ts, .. } => on_watermark(ts),
        KeyKind::Plain => on_watermark(&k.item.expr),
    });
    // What carries event time after this aggregation: its event-time window's column, or its
    // plain key on the watermarked column when the key keeps the column's name.
    let key_on = |k: &Key| match &k.item.expr {
        Expr::Path(p) => p.path.is_ident(&k.item.name),
        _ => false,
    };
    // (Without an event-time key the watermark stays as it was: the output-mode rule names it.)
    if let Some(k) = event_time_key.map(|i| &keys[i]) {
        let (watermark, window) = match k.kind {
            KeyKind::Plain if key_on(k) && cx.watermark.as_ref() == Some(&k.item.name) => (cx.watermark.clone(), None),
            KeyKind::Plain => (None, None),
            _ => (None, Some(k.item.name.clone())),
        };
        cx.watermark = watermark;
        cx.window_event_time = window;
    }
    cx.joined_watermarks.clear();
    cx.schema = Schema::Closed { columns };
    cx.aggregated = true;
    cx.records_from_columns = false;
    ops.push(LOp::Aggregate { keys, aggs, event_time_key });
}

// ---- emit hooks ----

fn agg_init(a: &AggItem) -> TokenStream {
    let span = a.span;
    match a.func {
        AggFunc::CountRows | AggFunc::Count => quote_spanned!(span=> ::flowgate::agg::Count::new()),
        AggFunc::Sum => quote_spanned!(span=> ::flowgate::agg::Sum::new()),
        AggFunc::Avg => quote_spanned!(span=> ::flowgate::agg::Avg::new()),
        AggFunc::Min => quote_spanned!(span=> ::flowgate::agg::Min::new()),
        AggFunc::Max => quote_spanned!(span=> ::flowgate::agg::Max::new()),
        AggFunc::First { ignore_nulls } => quote_spanned!(span=> ::flowgate::agg::First::<_, #ignore_nulls>::new()),
        AggFunc::Last { ignore_nulls } => quote_spanned!(span=> ::flowgate::agg::Last::<_, #ignore_nulls>::new()),
        AggFunc::CollectList => quote_spanned!(span=> ::flowgate::agg::CollectList::new()),
        AggFunc::CollectSet => quote_spanned!(span=> ::flowgate::agg::CollectSet::new()),
        AggFunc::ApproxCountDistinct => quote_spanned!(span=> ::flowgate::agg::ApproxCountDistinct::new()),
        AggFunc::StddevSamp => quote_spanned!(span=> ::flowgate::agg::StddevSamp::new()),
        AggFunc::StddevPop => quote_spanned!(span=> ::flowgate::agg::StddevPop::new()),
        AggFunc::VarSamp => quote_spanned!(span=> ::flowgate::agg::VarSamp::new()),
        AggFunc::VarPop => quote_spanned!(span=> ::flowgate::agg::VarPop::new()),
    }
}

fn agg_update(a: &AggItem, j: usize) -> TokenStream {
    let j = Index::from(j);
    match (&a.func, &a.arg) {
        (AggFunc::CountRows, _) => quote! { __fg_acc.#j.add_row(); },
        (AggFunc::Count, Some(arg)) => quote_spanned!(arg.span()=> __fg_acc.#j.add(#arg);),
        (
            AggFunc::Sum | AggFunc::Avg | AggFunc::StddevSamp | AggFunc::StddevPop | AggFunc::VarSamp | AggFunc::VarPop,
            Some(arg),
        ) => quote_spanned!(arg.span()=>
            __fg_acc.#j.update({
                use ::flowgate::agg::NumericColumn as _;
                (#arg).sum_or_avg_needs_a_number()
            });
        ),
        (_, Some(arg)) => quote_spanned!(arg.span()=> __fg_acc.#j.update(#arg);),
        (_, None) => quote! { compile_error!("flowgate bug: aggregate without argument"); },
    }
}

/// The value a staged row carries for aggregate `a` (its argument, as [`agg_update`] passes it;
/// nothing for `count()`).
fn agg_input(a: &AggItem) -> TokenStream {
    match (&a.func, &a.arg) {
        (AggFunc::CountRows, _) => quote!(()),
        (
            AggFunc::Sum | AggFunc::Avg | AggFunc::StddevSamp | AggFunc::StddevPop | AggFunc::VarSamp | AggFunc::VarPop,
            Some(arg),
        ) => quote_spanned!(arg.span()=> {
            use ::flowgate::agg::NumericColumn as _;
            (#arg).sum_or_avg_needs_a_number()
        }),
        (_, Some(arg)) => quote_spanned!(arg.span()=> #arg),
        (_, None) => quote! { compile_error!("flowgate bug: aggregate without argument") },
    }
}

/// The update of aggregate `j` with a staged row's value `__fg_in.j` ([`agg_input`]).
fn agg_apply(a: &AggItem, j: usize) -> TokenStream {
    let j = Index::from(j);
    match (&a.func, &a.arg) {
        (AggFunc::CountRows, _) => quote! { __fg_acc.#j.add_row(); },
        (AggFunc::Count, Some(arg)) => quote_spanned!(arg.span()=> __fg_acc.#j.add(__fg_in.#j);),
        (_, Some(arg)) => quote_spanned!(arg.span()=> __fg_acc.#j.update(__fg_in.#j);),
        (_, None) => quote! { compile_error!("flowgate bug: aggregate without argument"); },
    }
}

/// The closures a staged pipeline passes after its row loop: the accumulators of a new group,
/// and the update of a group's accumulators with one staged row's values.
fn staged_closures(agg: &AggPlan) -> TokenStream {
    let inits: Vec<TokenStream> = agg.aggs.iter().map(agg_init).collect();
    let applies: Vec<TokenStream> = agg.aggs.iter().enumerate().map(|(j, a)| agg_apply(a, j)).collect();
    // `count()` alone reads no staged value.
    let input = if agg.aggs.iter().all(|a| matches!(a.func, AggFunc::CountRows)) { quote!(_) } else { quote!(__fg_in) };
    quote! { || ( #(#inits,)* ), |__fg_acc, #input| { #(#applies)* } }
}

/// The end of the pipeline into a hash aggregation: the grouping key (looping over a row's
/// windows), the late-input check, and the accumulator updates — or, `staged`, the key and the
/// aggregates' inputs pushed into the stage ([`staged_closures`] applies them).
fn hash_terminal(agg: &AggPlan, staged: bool) -> TokenStream {
    let inits: Vec<TokenStream> = agg.aggs.iter().map(agg_init).collect();
    let updates: Vec<TokenStream> = agg.aggs.iter().enumerate().map(|(j, a)| agg_update(a, j)).collect();
    let inputs: Vec<TokenStream> = agg.aggs.iter().map(agg_input).collect();
    let key_values: Vec<TokenStream> = agg
        .keys
        .iter()
        .map(|k| match &k.kind {
            KeyKind::Plain => {
                let e = &k.item.expr;
                quote!(#e)
            }
            _ => quote!(__fg_window),
        })
        .collect();
    let late = match (agg.uses_watermark, agg.event_time_key) {
        (true, Some(i)) => {
            let i = Index::from(i);
            quote! {
                if ::flowgate::watermark::is_behind(&__fg_key.#i, __fg_late_wm) {
                    __fg_tables.late(__fg_key);
                    break '__fg_key;
                }
            }
        }
        _ => TokenStream::new(),
    };
    let body = if staged {
        quote! {
            '__fg_key: {
                let __fg_key = ( #(#key_values,)* );
                #late
                __fg_tables.push(__fg_key, ( #(#inputs,)* ));
            }
        }
    } else {
        quote! {
            '__fg_key: {
                let __fg_key = ( #(#key_values,)* );
                #late
                let __fg_acc = __fg_tables.entry(__fg_key, || ( #(#inits,)* ));
                #(#updates)*
            }
        }
    };
    // A row belongs to zero or one tumbling window and to several sliding ones.
    match agg.keys.iter().find(|k| !matches!(k.kind, KeyKind::Plain)).map(|k| &k.kind) {
        Some(KeyKind::Window { ts, size, slide, offset }) => {
            // The key holds the window start only (`WindowKey<SIZE>`); emit rebuilds the window.
            let key = quote! { let __fg_window = ::flowgate::window::WindowKey::<#size>::of(__fg_w); };
            if size == slide {
                let window = quote_spanned!(ts.span()=> ::flowgate::window::tumbling(#ts, #size, #offset));
                quote! { if let ::core::option::Option::Some(__fg_w) = #window { #key #body } }
            } else {
                let windows = quote_spanned!(ts.span()=> ::flowgate::window::sliding(#ts, #size, #slide, #offset));
                quote! { for __fg_w in #windows { #key #body } }
            }
        }
        Some(KeyKind::Session { ts, .. }) => {
            quote_spanned!(ts.span()=> compile_error!("flowgate bug: session windows use their own operator");)
        }
        _ => body,
    }
}

/// How rows another stateful operator emits are fed into hash aggregation `id`: the same
/// per-row terminal as an input's, on the calling thread.
pub fn feed_hash(id: usize, agg: &AggPlan) -> Feed {
    Feed { op: dedup::var(id), terminal: hash_terminal(agg, false), inline: false }
}

/// The hash aggregation's state at plan creation.
pub fn init_hash() -> TokenStream {
    quote!(::flowgate::ops::aggregate::HashAggState::new(__fg_config.shuffle_partitions))
}

/// The session-window aggregation's state at plan creation.
pub fn init_session(agg: &AggPlan) -> TokenStream {
    let gap = agg.keys.iter().find_map(|k| match &k.kind {
        KeyKind::Session { gap, .. } => Some(*gap),
        _ => None,
    });
    quote!(::flowgate::ops::session::SessionAggState::new(__fg_config.shuffle_partitions, #gap))
}

/// The pipeline from `input` into hash aggregation `id`: its rows folded into the state
/// (partial-then-final in parallel for large batches, unless a stateful filter inside makes
/// the pipeline run in row order).
pub fn emit_hash_update(
    _q: &Query,
    plan: &Plan,
    p: &Pipeline,
    input: usize,
    id: usize,
    agg: &AggPlan,
    first: bool,
) -> TokenStream {
    let op = dedup::var(id);
    let units = collect_units(plan, p, input);
    let unit_loop = unit_loop(p, plan, hash_terminal(agg, p.staged));
    // A union's later inputs feed the same batch of the same state.
    let closures = staged_closures(agg);
    let update = match (p.parallel, first) {
        (true, true) if p.staged => quote! {
            #op.update_staged(&__fg_units, __fg_rows, |__fg_unit, __fg_tables| { #unit_loop }, #closures);
        },
        (true, false) if p.staged => quote! {
            #op.update_staged_more(&__fg_units, __fg_rows, |__fg_unit, __fg_tables| { #unit_loop }, #closures);
        },
        (true, true) => quote! { #op.update(&__fg_units, __fg_rows, |__fg_unit, __fg_tables| { #unit_loop }); },
        (true, false) => quote! { #op.update_more(&__fg_units, __fg_rows, |__fg_unit, __fg_tables| { #unit_loop }); },
        (false, true) => quote! { #op.update_sequential(&__fg_units, |__fg_unit, __fg_tables| { #unit_loop }); },
        (false, false) => {
            quote! { #op.update_sequential_more(&__fg_units, |__fg_unit, __fg_tables| { #unit_loop }); }
        }
    };
    quote! { #units #update }
}

/// The pipeline from hash aggregation `id`'s emitted groups to the output: append mode emits
/// the groups the watermark closes (once, as they are evicted), update mode the groups the
/// batch changed (then evicts), complete mode every group.
pub fn emit_hash_output(
    q: &Query,
    plan: &Plan,
    p: &Pipeline,
    id: usize,
    agg: &AggPlan,
    columns: &[Ident],
) -> TokenStream {
    let ordered = plan.emits_in_partition_order(p);
    output_of(q, p, id, columns, |ops, terminal| hash_emission(plan, ops, id, agg, ordered, terminal, |lp| lp))
}

/// The pipeline from aggregation `id` to the output: `emission` runs the rows it emits
/// through the pipeline's operators before any top N into each row's terminal, into the
/// output record's builder.
fn output_of(
    q: &Query,
    p: &Pipeline,
    id: usize,
    columns: &[Ident],
    emission: impl FnOnce(&[LOp], TokenStream) -> TokenStream,
) -> TokenStream {
    let out = &q.output;
    let op = dedup::var(id);
    let top = TopN::of(q, p, columns, quote!(#op.len()));
    let emit = emission(top.ops, top.terminal);
    let (start, finish) = (top.start, top.finish);
    quote! {
        let mut __fg_out = <#out as ::flowgate::Record>::builder(#op.len());
        #start
        #emit
        #finish
        ::core::result::Result::Ok(::std::vec![::flowgate::RecordBuilder::finish(&mut __fg_out)?])
    }
}

/// The pipeline from hash aggregation `id`'s emitted groups into another stateful operator
/// (`feed`): the groups append mode closes, as they would go to the output.
pub fn emit_hash_into(plan: &Plan, p: &Pipeline, id: usize, agg: &AggPlan, feed: &Feed) -> TokenStream {
    let ordered = plan.emits_in_partition_order(p);
    hash_emission(plan, &p.ops, id, agg, ordered, feed.terminal.clone(), |lp| feed.wrap(lp))
}

/// The groups hash aggregation `id` emits this batch, each bound by its key and aggregate
/// names and run through `ops` into `terminal`; `wrap` places the loop (into a downstream
/// operator's update, or as is). `ordered`: in Spark's shuffle-partition order
/// ([`Plan::emits_in_partition_order`]).
fn hash_emission(
    plan: &Plan,
    ops: &[LOp],
    id: usize,
    agg: &AggPlan,
    ordered: bool,
    terminal: TokenStream,
    wrap: impl Fn(TokenStream) -> TokenStream,
) -> TokenStream {
    let op = dedup::var(id);
    let key_binds: Vec<TokenStream> = agg
        .keys
        .iter()
        .enumerate()
        .map(|(i, k)| {
            let (name, i) = (&k.item.name, Index::from(i));
            match k.kind {
                KeyKind::Window { .. } => quote! { let #name = &__fg_e.key.#i.window(); },
                _ => quote! { let #name = &__fg_e.key.#i; },
            }
        })
        .collect();
    // Spanned on the aggregate's name, so any error about its result points at the DSL.
    let finishes: Vec<TokenStream> = agg
        .aggs
        .iter()
        .enumerate()
        .map(|(j, a)| {
            let (name, j) = (&a.name, Index::from(j));
            quote_spanned!(a.span=> let #name = __fg_e.acc.#j.finish();)
        })
        .collect();
    let emit_body = fuse(plan, ops, terminal);
    let emit_loop = |entries: TokenStream| {
        wrap(quote! {
            for __fg_e in #entries {
                #(#key_binds)*
                #(#finishes)*
                #emit_body
            }
        })
    };
    let (evict_method, updated, all) = if ordered {
        (quote!(evict), quote!(updated_in_order), quote!(all_in_order))
    } else {
        (quote!(evict_unordered), quote!(updated), quote!(all))
    };
    let evict = |i: usize, method: &TokenStream| {
        let i = Index::from(i);
        quote! { #op.#method(|__fg_k| ::flowgate::watermark::is_behind(&__fg_k.#i, __fg_ev_wm)) }
    };
    match (plan.mode, agg.uses_watermark, agg.event_time_key) {
        (ModeKind::Append, true, Some(i)) => {
            let evicted = evict(i, &evict_method);
            let lp = emit_loop(quote!(&__fg_closed));
            quote! { let __fg_closed = #evicted; #lp }
        }
        (ModeKind::Update, true, Some(i)) => {
            // Evicted groups are dropped, not emitted: no order to keep.
            let evicted = evict(i, &quote!(evict_unordered));
            let lp = emit_loop(quote!(#op.#updated()));
            quote! { #lp #evicted; }
        }
        (ModeKind::Complete, _, _) => {
            // The whole result table, once per batch: a continuous epoch's vectors emit none,
            // its end emits it (`BatchContext::mid_epoch`).
            let lp = emit_loop(quote!(#op.#all()));
            quote! { if !__fg_ctx.mid_epoch { #lp } }
        }
        _ => emit_loop(quote!(#op.#updated())),
    }
}

/// `order_by`/`limit` at the end of an aggregation's output pipeline (Spark's top N of a
/// complete-mode result): the rows are collected with their sort keys, sorted and cut, then
/// pushed. Without them, rows are pushed as they are emitted.
struct TopN<'a> {
    /// The pipeline's operators before the sort and limit.
    ops: &'a [LOp],
    /// Where each emitted row goes.
    terminal: TokenStream,
    /// Before the emission loop, and after it.
    start: TokenStream,
    finish: TokenStream,
}

impl<'a> TopN<'a> {
    fn of(q: &Query, p: &'a Pipeline, columns: &[Ident], capacity: TokenStream) -> Self {
        let (ops, sort, limit) = split_top(&p.ops);
        if sort.is_none() && limit.is_none() {
            // Rows made records by a map are pushed whole (rustc checks their type against
            // the output's, at the map's function).
            let records =
                matches!(p.sink, crate::compiler::plan::Sink::Output(crate::compiler::plan::OutputPlan::Records));
            let last_map = ops.iter().rev().find_map(|o| match o {
                LOp::TypedRows { spec } if spec.produces() => Some(spec),
                _ => None,
            });
            let terminal = match last_map.filter(|_| records) {
                Some(last) => {
                    let var = Ident::new(&typed::row_var(last.id).to_string(), last.func.span());
                    quote_spanned!(last.func.span()=> ::flowgate::RecordBuilder::push(&mut __fg_out, #var);)
                }
                None => push_output(q, columns),
            };
            return TopN { ops, terminal, start: TokenStream::new(), finish: TokenStream::new() };
        }
        let lit = output_literal(q, columns);
        let keys = sort.unwrap_or(&[]).iter().map(|k| {
            let e = &k.expr;
            let value = quote_spanned!(e.span()=> ::flowgate::value::IntoOwned::into_owned(#e));
            let key = if k.descending {
                quote!(::flowgate::sort::SortKey::desc(#value))
            } else {
                quote!(::flowgate::sort::SortKey::asc(#value))
            };
            match k.nulls_first {
                Some(first) => quote!(#key.nulls(#first)),
                None => key,
            }
        });
        let limit = match limit {
            Some(n) => quote!(::core::option::Option::Some(#n)),
            None => quote!(::core::option::Option::None),
        };
        TopN {
            ops,
            terminal: quote! { __fg_top.push(( ( #(#keys,)* ), #lit )); },
            start: quote! { let mut __fg_top = ::std::vec::Vec::with_capacity(#capacity); },
            finish: quote! {
                ::flowgate::sort::top(&mut __fg_top, #limit);
                for (_, __fg_row) in __fg_top {
                    ::flowgate::RecordBuilder::push(&mut __fg_out, __fg_row);
                }
            },
        }
    }
}

/// The pipeline's stateless operators, and its trailing `order_by` keys and `limit` (a
/// complete-mode result's top N; a streaming global limit, in append mode, stays in the row
/// loop as a stateful filter).
fn split_top(ops: &[LOp]) -> (&[LOp], Option<&[SortSpec]>, Option<usize>) {
    let mut end = ops.len();
    let mut sort = None;
    let mut limit = None;
    while let Some(op) = end.checked_sub(1).and_then(|i| ops.get(i)) {
        match op {
            LOp::Limit { n, global: None } => limit = Some(*n),
            LOp::Sort { keys } => sort = Some(keys.as_slice()),
            _ => break,
        }
        end -= 1;
    }
    (&ops[..end], sort, limit)
}

/// The pipeline from `input` into session-window aggregation `id`: rows become sessions per
/// key, merged into the state.
///
/// A union's inputs feed one batch of rows (`(first, last)`: whether this pipeline is the
/// first and the last to feed it), folded into the state once, after the last: a session may
/// take rows of every input.
pub fn emit_session_update(
    plan: &Plan,
    p: &Pipeline,
    input: usize,
    id: usize,
    agg: &AggPlan,
    (first, last): (bool, bool),
) -> TokenStream {
    let op = dedup::var(id);
    let units = collect_units(plan, p, input);
    let Some((session_idx, ts)) = agg.keys.iter().enumerate().find_map(|(i, k)| match &k.kind {
        KeyKind::Session { ts, .. } => Some((i, ts)),
        _ => None,
    }) else {
        return quote! { compile_error!("flowgate bug: session plan without a session key") };
    };
    let inits: Vec<TokenStream> = agg.aggs.iter().map(agg_init).collect();
    let updates: Vec<TokenStream> = agg.aggs.iter().enumerate().map(|(j, a)| agg_update(a, j)).collect();
    // The state's key is the grouping key without the session window.
    let plain = agg.keys.iter().enumerate().filter(|(i, _)| *i != session_idx).map(|(_, k)| &k.item.expr);
    let row = quote_spanned!(ts.span()=> __fg_rows.row(__fg_key, #ts, || ( #(#inits,)* )));
    let terminal = quote! {
        let __fg_key = ( #(#plain,)* );
        if let ::core::option::Option::Some(__fg_acc) = #row {
            #(#updates)*
        }
    };
    let unit_loop = unit_loop(p, plan, terminal);
    let late = if agg.uses_watermark { quote!(__fg_late_wm) } else { quote!(i64::MIN) };
    if !(first && last) {
        let rows = format_ident!("__fg_srows{}", id);
        let start = if first {
            quote! { let mut #rows = #op.batch_rows(); }
        } else {
            TokenStream::new()
        };
        let end = if last {
            quote! { #op.fold(#rows, #late); }
        } else {
            TokenStream::new()
        };
        return quote! {
            #units
            #start
            #op.collect(&__fg_units, &mut #rows, |__fg_unit, __fg_rows| { #unit_loop });
            #end
        };
    }
    let update = if p.parallel {
        quote! { #op.update(&__fg_units, #late, |__fg_unit, __fg_rows| { #unit_loop }); }
    } else {
        quote! { #op.update_sequential(&__fg_units, #late, |__fg_unit, __fg_rows| { #unit_loop }); }
    };
    quote! { #units #update }
}

/// The pipeline from session-window aggregation `id` to the output: append mode emits the
/// sessions the watermark closes, once, as they are evicted; complete mode every session.
pub fn emit_session_output(
    q: &Query,
    plan: &Plan,
    p: &Pipeline,
    id: usize,
    agg: &AggPlan,
    columns: &[Ident],
) -> TokenStream {
    output_of(q, p, id, columns, |ops, terminal| session_emission(plan, ops, id, agg, terminal, |lp| lp))
}

/// The pipeline from session aggregation `id`'s closed sessions into another stateful
/// operator (an aggregation over `window_time(session_window)`, append mode).
pub fn emit_session_into(plan: &Plan, p: &Pipeline, id: usize, agg: &AggPlan, feed: &Feed) -> TokenStream {
    session_emission(plan, &p.ops, id, agg, feed.terminal.clone(), |lp| feed.wrap(lp))
}

/// The sessions aggregation `id` emits this batch (append mode: those the watermark closes,
/// evicted; else all), each bound by its key and aggregate names and run through `ops` into
/// `terminal`; `wrap` places the loop.
fn session_emission(
    plan: &Plan,
    ops: &[LOp],
    id: usize,
    agg: &AggPlan,
    terminal: TokenStream,
    wrap: impl Fn(TokenStream) -> TokenStream,
) -> TokenStream {
    let op = dedup::var(id);
    let session_idx = agg.keys.iter().position(|k| matches!(k.kind, KeyKind::Session { .. })).unwrap_or(0);
    let plain: Vec<usize> = (0..agg.keys.len()).filter(|i| *i != session_idx).collect();
    let key_binds = agg.keys.iter().enumerate().map(|(i, k)| {
        let name = &k.item.name;
        if i == session_idx {
            quote! { let #name = &__fg_s.window(); }
        } else {
            let j = Index::from(plain.iter().position(|pi| *pi == i).unwrap_or(0));
            quote! { let #name = &__fg_k.#j; }
        }
    });
    let finishes = agg.aggs.iter().enumerate().map(|(j, a)| {
        let (name, j) = (&a.name, Index::from(j));
        quote_spanned!(a.span=> let #name = __fg_s.acc.#j.finish();)
    });
    let emit_body = fuse(plan, ops, terminal);
    let (prefix, entries) = match (plan.mode, agg.uses_watermark) {
        (ModeKind::Append, true) => (
            quote! { let __fg_closed = #op.evict(__fg_ev_wm); },
            quote! { __fg_closed.iter().map(|(__fg_k, __fg_s)| (__fg_k, __fg_s)) },
        ),
        _ => (TokenStream::new(), quote! { #op.all() }),
    };
    let lp = wrap(quote! {
        for (__fg_k, __fg_s) in #entries {
            #(#key_binds)*
            #(#finishes)*
            #emit_body
        }
    });
    if prefix.is_empty() {
        // Every session, once per batch: a continuous epoch's vectors emit none, its end
        // emits them (`BatchContext::mid_epoch`).
        return quote! { if !__fg_ctx.mid_epoch { #lp } };
    }
    quote! {
        #prefix
        #lp
    }
}
