//! Phase 4, emit: the physical plan as Rust. Generated code is what one would write by hand:
//! typed loops over Arrow arrays with the user's expressions inlined (so rustc type-checks
//! them where the user wrote them), fully qualified paths, and no per-row dynamic dispatch.
//! Internal names start with `__fg_`.

use std::collections::HashSet;

use proc_macro2::TokenStream;
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{Expr, Ident, Index, Type};

use super::ast::{ModeKind, Query};
use super::exprs::free_columns;
use super::logical::{AggFunc, AggItem, KeyKind, LOp};
use super::plan::{AggPlan, Physical, Terminal};

/// The query's items: its type, spec, plan and builder.
pub fn emit(q: &Query, p: &Physical) -> TokenStream {
    let body = match &p.agg {
        Some(agg) if agg.keys.iter().any(|k| matches!(k.kind, KeyKind::Session { .. })) => emit_session_plan(q, p, agg),
        Some(agg) => emit_aggregate_plan(q, p, agg),
        None => emit_stateless_plan(q, p),
    };
    emit_skeleton(q, body, input_reads(q, p))
}

/// Per input, the columns the plan reads (`Some(&[..])`), or `None` where it hands the
/// whole input row on (a filter-only query) or does not know: sources may skip decoding the
/// rest. Stage 0 is the only reader of input batches.
fn input_reads(q: &Query, p: &Physical) -> Vec<TokenStream> {
    (0..q.inputs.len())
        .map(|i| match &p.terminal {
            Terminal::Columns(_) if i == p.input_index => {
                let names: Vec<String> = p.input_columns.iter().map(Ident::to_string).collect();
                quote!(::core::option::Option::Some(&[#(#names),*]))
            }
            _ => quote!(::core::option::Option::None),
        })
        .collect()
}

/// What the macro expands to when the query has errors: the same items (so the user's code
/// that builds and starts the query still type-checks and the user sees only our errors),
/// with a plan that is never run.
pub fn emit_fallback(q: &Query) -> TokenStream {
    let reads = q.inputs.iter().map(|_| quote!(::core::option::Option::None)).collect();
    emit_skeleton(
        q,
        quote! {
            ::std::boxed::Box::new(::flowgate::engine::CompiledPlan::new((), |_, _, _| {
                ::core::result::Result::Err(::flowgate::Error::Internal("this query did not compile".into()))
            }))
        },
        reads,
    )
}

fn mode_tokens(mode: ModeKind) -> TokenStream {
    match mode {
        ModeKind::Append => quote!(::flowgate::OutputMode::Append),
        ModeKind::Update => quote!(::flowgate::OutputMode::Update),
        ModeKind::Complete => quote!(::flowgate::OutputMode::Complete),
    }
}

fn emit_skeleton(q: &Query, plan_body: TokenStream, reads: Vec<TokenStream>) -> TokenStream {
    let attrs = &q.attrs;
    let vis = &q.vis;
    let name = &q.name;
    let name_str = name.to_string();
    let builder = format_ident!("{}Builder", name);
    let out = &q.output;
    let mode = mode_tokens(q.mode.kind);
    let in_names: Vec<&Ident> = q.inputs.iter().map(|i| &i.name).collect();
    let in_strs: Vec<String> = in_names.iter().map(|i| i.to_string()).collect();
    let in_tys: Vec<&Type> = q.inputs.iter().map(|i| &i.ty).collect();
    let idx: Vec<usize> = (0..q.inputs.len()).collect();
    let builder_doc =
        format!("Sets up and starts [`{name}`]: one setter per input, then `sink`, `trigger`, … and `start`.");
    let setter_docs: Vec<String> = in_strs.iter().map(|n| format!("The source of input `{n}`.")).collect();
    // Spanned on the declared types so that a type that is not a Record is reported there.
    let in_schema: Vec<TokenStream> =
        in_tys.iter().map(|t| quote_spanned!(t.span()=> <#t as ::flowgate::Record>::schema())).collect();
    let out_schema = quote_spanned!(out.span()=> <#out as ::flowgate::Record>::schema());

    quote! {
        #(#attrs)*
        #vis struct #name {
            _private: (),
        }

        impl #name {
            /// Starts setting up this query.
            #[allow(dead_code)]
            pub fn builder() -> #builder {
                #builder { inner: ::flowgate::engine::QueryBuilder::new(Self::spec()) }
            }

            /// The query as the engine sees it: name, inputs, output schema, mode, plan.
            pub fn spec() -> ::flowgate::engine::QuerySpec {
                ::flowgate::engine::QuerySpec {
                    name: #name_str,
                    inputs: ::std::vec![ #( (#in_strs, #in_schema) ),* ],
                    input_reads: ::std::vec![ #(#reads),* ],
                    output: #out_schema,
                    output_mode: #mode,
                    make_plan: Self::__flowgate_plan,
                }
            }

            #[allow(unused_variables, unused_mut, unused_parens, clippy::all)]
            fn __flowgate_plan(
                __fg_config: &::flowgate::engine::PlanConfig,
            ) -> ::std::boxed::Box<dyn ::flowgate::engine::Plan> {
                #plan_body
            }
        }

        #[doc = #builder_doc]
        #vis struct #builder {
            inner: ::flowgate::engine::QueryBuilder,
        }

        #[allow(dead_code)]
        impl #builder {
            #(
                #[doc = #setter_docs]
                pub fn #in_names(mut self, source: impl ::core::convert::Into<::flowgate::Source<#in_tys>>) -> Self {
                    self.inner.set_source(#idx, source.into());
                    self
                }
            )*
            ::flowgate::__query_builder_methods!(#builder);
        }
    }
}

/// `let (a, b) = (expr_a, expr_b);` — all evaluated against the previous scope.
fn let_items(names: &[&Ident], exprs: &[&syn::Expr]) -> TokenStream {
    quote! { let ( #(#names,)* ) = ( #(#exprs,)* ); }
}

/// Nests the stateless operators around `terminal`, innermost last.
fn fuse(ops: &[LOp], terminal: TokenStream) -> TokenStream {
    fuse_live(ops, &[], &[], terminal)
}

/// [`fuse`], leaving out the items that `live` marks dead (`live[k][j]` for item `j` of
/// operator `k`; a missing entry is live), and with `binds[k]` (input column reads) placed
/// just before operator `k` (`binds[ops.len()]` before the terminal).
fn fuse_live(ops: &[LOp], live: &[Vec<bool>], binds: &[TokenStream], terminal: TokenStream) -> TokenStream {
    let (bind, rest_binds) = match binds.split_first() {
        Some((b, r)) => (b.clone(), r),
        None => (TokenStream::new(), &[][..]),
    };
    let Some((first, rest)) = ops.split_first() else {
        return quote! { #bind #terminal };
    };
    let (first_live, rest_live) = match live.split_first() {
        Some((f, r)) => (f.as_slice(), r),
        None => (&[][..], &[][..]),
    };
    let inner = fuse_live(rest, rest_live, rest_binds, terminal);
    let op = match first {
        LOp::Filter { pred } => {
            let keep = quote_spanned!(pred.span()=> let __fg_keep: bool = #pred;);
            quote! { #keep if !__fg_keep { continue; } #inner }
        }
        LOp::Project { items } | LOp::WithColumns { items } => {
            let kept = items.iter().enumerate().filter(|(j, _)| first_live.get(*j).copied().unwrap_or(true));
            let (names, exprs): (Vec<&Ident>, Vec<&syn::Expr>) = kept.map(|(_, i)| (&i.name, &i.expr)).unzip();
            if names.is_empty() {
                return quote! { #bind #inner };
            }
            let lets = let_items(&names, &exprs);
            quote! { #lets #inner }
        }
        LOp::FlatMap { name, expr } => {
            let iter = quote_spanned!(expr.span()=> ::core::iter::IntoIterator::into_iter(#expr));
            quote! { for #name in #iter { #inner } }
        }
        LOp::Watermark { column, .. } => {
            let observe = quote_spanned!(column.span()=>
                if let ::core::option::Option::Some(__fg_t) = ::flowgate::window::EventTime::event_micros(#column) {
                    if __fg_t > __fg_max_et { __fg_max_et = __fg_t; }
                }
            );
            quote! { #observe #inner }
        }
        LOp::Aggregate { .. } => quote! { compile_error!("flowgate bug: aggregate inside a fused stage"); },
    };
    quote! { #bind #op }
}

/// `let value = __fg_cols.value.get(__fg_i);` for each input column read. The field access is
/// spanned on the user's token: a misspelled column is rustc's "no field" error there.
fn bind_inputs(cols: &[Ident]) -> TokenStream {
    let binds = cols.iter().map(|c| {
        let field = Ident::new(&c.to_string(), c.span());
        quote_spanned!(c.span()=> let #c = __fg_cols.#field.get(__fg_i);)
    });
    quote! { #(#binds)* }
}

/// The struct-literal push of an output row; each field spanned on the DSL token that named
/// the column, the literal on the declared output type.
fn push_output(q: &Query, columns: &[Ident]) -> TokenStream {
    let out = &q.output;
    let path = match out {
        Type::Path(tp) => quote!(#tp),
        other => quote_spanned!(other.span()=> compile_error!("the output type must be a record struct")),
    };
    let fields = columns.iter().map(|c| quote_spanned!(c.span()=> #c: ::flowgate::value::IntoOwned::into_owned(#c)));
    let lit = quote_spanned!(out.span()=> #path { #(#fields),* });
    quote! { ::flowgate::RecordBuilder::push(&mut __fg_out, #lit); }
}

/// The column a bare column reference names (`auction` in `select(auction)` or in
/// `x = auction`), or `None` for any other expression.
fn bare_column(expr: &Expr) -> Option<Ident> {
    match expr {
        Expr::Path(p) if p.attrs.is_empty() && p.qself.is_none() && p.path.get_ident().is_some() => {
            free_columns(expr).into_iter().next()
        }
        _ => None,
    }
}

/// The input column that output column `name` is, unchanged, after the stateless operators
/// `ops` — or `None` when it is computed, or when an operator changes the rows (a filter or
/// a flat_map: then every output column is built row by row). Such a column is passed
/// through as the input array itself (a zero-copy slice) instead of copied value by value.
fn passed_input(ops: &[LOp], name: &Ident) -> Option<Ident> {
    if ops.iter().any(|op| matches!(op, LOp::Filter { .. } | LOp::FlatMap { .. } | LOp::Aggregate { .. })) {
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
            LOp::Filter { .. } | LOp::FlatMap { .. } | LOp::Aggregate { .. } => return None,
        }
    }
    Some(current)
}

/// Which `select`/`with_column` items the row loop must evaluate so that output columns
/// `built` can be made (`result[k][j]` for item `j` of operator `k`), and the names of the
/// input columns it reads per row. A bare column item whose result nobody reads (an output
/// column passed through) is dead; every other item is evaluated, as the user wrote it.
fn liveness(ops: &[LOp], built: &[&Ident]) -> (Vec<Vec<bool>>, HashSet<String>) {
    let mut needed: HashSet<String> = built.iter().map(|c| c.to_string()).collect();
    let mut live = vec![Vec::new(); ops.len()];
    for (k, op) in ops.iter().enumerate().rev() {
        match op {
            LOp::Filter { pred } => needed.extend(free_columns(pred).iter().map(Ident::to_string)),
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
            LOp::FlatMap { name, expr } => {
                needed.remove(&name.to_string());
                needed.extend(free_columns(expr).iter().map(Ident::to_string));
            }
            LOp::Watermark { column, .. } => {
                needed.insert(column.to_string());
            }
            LOp::Aggregate { .. } => {}
        }
    }
    (live, needed)
}

/// Where the row loop reads each of `row_inputs`: `result[k]` holds the input columns that
/// operator `k` (or, for `k == ops.len()`, the output columns `terminal`) reads first, so a
/// row that a filter drops never loads the columns only later operators read — as a hand
/// loop would. Columns first read after a flat_map are read before it, once per input row.
fn bind_points(ops: &[LOp], live: &[Vec<bool>], row_inputs: &[Ident], terminal: &[&Ident]) -> Vec<Vec<Ident>> {
    let mut points = vec![Vec::new(); ops.len() + 1];
    let mut defined: HashSet<String> = HashSet::new();
    let mut bound: HashSet<String> = HashSet::new();
    let mut flat_map_at = None;
    for k in 0..=ops.len() {
        let reads: Vec<String> = match ops.get(k) {
            None => terminal.iter().map(|c| c.to_string()).collect(),
            Some(LOp::Filter { pred }) => free_columns(pred).iter().map(Ident::to_string).collect(),
            Some(LOp::Project { items } | LOp::WithColumns { items }) => items
                .iter()
                .enumerate()
                .filter(|(j, _)| live.get(k).and_then(|l| l.get(*j)).copied().unwrap_or(true))
                .flat_map(|(_, i)| free_columns(&i.expr))
                .map(|c| c.to_string())
                .collect(),
            Some(LOp::FlatMap { expr, .. }) => free_columns(expr).iter().map(Ident::to_string).collect(),
            Some(LOp::Watermark { column, .. }) => vec![column.to_string()],
            Some(LOp::Aggregate { .. }) => Vec::new(),
        };
        let at = flat_map_at.unwrap_or(k);
        for r in reads {
            if defined.contains(&r) || bound.contains(&r) {
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
            _ => {}
        }
    }
    points
}

/// A stateless stage that ends in output columns: each column is either an input column
/// passed through (no filter or flat_map before it) or built by the row loop, which appends
/// each computed value to its column directly (borrowed values like `&str` are copied into
/// the column without an owned `String` per row).
fn columns_unit(q: &Query, p: &Physical, columns: &[Ident]) -> TokenStream {
    let out = &q.output;
    let passed: Vec<Option<Ident>> = columns.iter().map(|c| passed_input(&p.pre, c)).collect();
    let built: Vec<&Ident> = columns.iter().zip(&passed).filter(|(_, s)| s.is_none()).map(|(c, _)| c).collect();
    let (live, needed) = liveness(&p.pre, &built);
    let row_inputs: Vec<Ident> = p.input_columns.iter().filter(|c| needed.contains(&c.to_string())).cloned().collect();
    let binds: Vec<TokenStream> =
        bind_points(&p.pre, &live, &row_inputs, &built).iter().map(|cols| bind_inputs(cols)).collect();
    // Input columns named only where they are dead still go through rustc's field check.
    let passed_names: HashSet<String> = passed.iter().flatten().map(Ident::to_string).collect();
    let unread = p
        .input_columns
        .iter()
        .filter(|c| !needed.contains(&c.to_string()) && !passed_names.contains(&c.to_string()))
        .map(|c| {
            let field = Ident::new(&c.to_string(), c.span());
            quote_spanned!(c.span()=> let _ = __fg_cols.#field;)
        });
    let fields = columns.iter().zip(&passed).map(|(c, source)| match source {
        Some(input) => {
            let field = Ident::new(&input.to_string(), input.span());
            quote_spanned!(c.span()=> #c: ::flowgate::record::OutColumn::pass(__fg_cols.#field, __fg_range.clone()))
        }
        None => quote_spanned!(c.span()=> #c: ::flowgate::record::OutColumn::with_capacity(__fg_capacity)),
    });
    // Every row makes one output row unless a filter or flat_map comes first; then the
    // builders start small and grow, instead of reserving a whole unit for rows a selective
    // filter drops.
    let capacity = if p.pre.iter().any(|op| matches!(op, LOp::Filter { .. } | LOp::FlatMap { .. })) {
        quote!(::core::cmp::min(__fg_range.len(), ::flowgate::exec::FILTERED_START_CAPACITY))
    } else {
        quote!(__fg_range.len())
    };
    let pushes = built.iter().map(|c| quote_spanned!(c.span()=> __fg_out.#c.push(#c);));
    let body = fuse_live(&p.pre, &live, &binds, quote! { #(#pushes)* });
    let parts_ty = quote_spanned!(out.span()=> type __FgParts = <#out as ::flowgate::Record>::Parts;);
    let parts = quote_spanned!(out.span()=> __FgParts { #(#fields),* });
    let (wm_start, wm_end) = watermark_unit(p);
    quote! {
        let (__fg_cols, __fg_range) = __fg_unit;
        let __fg_capacity = #capacity;
        #(#unread)*
        #parts_ty
        let mut __fg_out = #parts;
        #wm_start
        for __fg_i in __fg_range.clone() {
            #body
        }
        #wm_end
        <#out as ::flowgate::Record>::from_parts(__fg_out)
    }
}

fn collect_units(q: &Query, p: &Physical) -> TokenStream {
    let idx = p.input_index;
    let in_ty = &q.inputs[idx].ty;
    quote! {
        let mut __fg_units = ::std::vec::Vec::new();
        let mut __fg_rows = 0usize;
        for __fg_batch in &__fg_inputs[#idx] {
            let __fg_cols = <#in_ty as ::flowgate::Record>::columns(__fg_batch)?;
            ::flowgate::exec::push_units(&mut __fg_units, __fg_cols, __fg_batch.num_rows());
            __fg_rows += __fg_batch.num_rows();
        }
    }
}

/// The plan's state: `(operator state, watermark tracker)`, either part `()` when absent.
fn initial_state(p: &Physical, operator: TokenStream) -> TokenStream {
    let tracker = match p.watermark_delay {
        Some(delay) => quote!(::flowgate::watermark::WatermarkTracker::new(#delay)),
        None => quote!(()),
    };
    quote! { (#operator, #tracker) }
}

/// Per work unit: the running maximum event time, folded into the tracker at the unit's end.
fn watermark_unit(p: &Physical) -> (TokenStream, TokenStream) {
    match p.watermark_delay {
        Some(_) => (quote! { let mut __fg_max_et = i64::MIN; }, quote! { __fg_watermark.observe_max(__fg_max_et); }),
        None => (TokenStream::new(), TokenStream::new()),
    }
}

fn emit_stateless_plan(q: &Query, p: &Physical) -> TokenStream {
    let out = &q.output;
    let binds = bind_inputs(&p.input_columns);
    let state = initial_state(p, quote!(()));
    let (wm_start, wm_end) = watermark_unit(p);
    match &p.terminal {
        Terminal::Columns(columns) => {
            let units = collect_units(q, p);
            let unit = columns_unit(q, p, columns);
            quote! {
                ::std::boxed::Box::new(::flowgate::engine::CompiledPlan::new(#state, move |__fg_state, __fg_ctx, __fg_inputs| {
                    let __fg_watermark = &__fg_state.1;
                    #units
                    ::flowgate::exec::map_units(&__fg_units, |__fg_unit| { #unit })
                }))
            }
        }
        Terminal::FilterInput => {
            let idx = p.input_index;
            let in_ty = &q.inputs[idx].ty;
            let checks = p.pre.iter().map(|op| match op {
                LOp::Filter { pred } => quote_spanned!(pred.span()=> {
                    let __fg_keep: bool = #pred;
                    if !__fg_keep { break '__fg_row false; }
                }),
                LOp::Watermark { column, .. } => quote_spanned!(column.span()=>
                    if let ::core::option::Option::Some(__fg_t) = ::flowgate::window::EventTime::event_micros(#column) {
                        if __fg_t > __fg_max_et { __fg_max_et = __fg_t; }
                    }
                ),
                _ => quote! { compile_error!("flowgate bug: only filters pass the input through"); },
            });
            quote! {
                let __fg_schema = <#out as ::flowgate::Record>::schema();
                ::std::boxed::Box::new(::flowgate::engine::CompiledPlan::new(#state, move |__fg_state, __fg_ctx, __fg_inputs| {
                    let __fg_watermark = &__fg_state.1;
                    let mut __fg_result = ::std::vec::Vec::with_capacity(__fg_inputs[#idx].len());
                    for __fg_batch in &__fg_inputs[#idx] {
                        let __fg_cols = <#in_ty as ::flowgate::Record>::columns(__fg_batch)?;
                        #wm_start
                        __fg_result.push(::flowgate::exec::filter_batch(__fg_batch, &__fg_schema, |__fg_i| '__fg_row: {
                            #binds
                            #(#checks)*
                            true
                        })?);
                        #wm_end
                    }
                    ::core::result::Result::Ok(__fg_result)
                }))
            }
        }
    }
}

fn agg_init(a: &AggItem) -> TokenStream {
    let span = a.span;
    match a.func {
        AggFunc::CountRows | AggFunc::Count => quote_spanned!(span=> ::flowgate::agg::Count::new()),
        AggFunc::Sum => quote_spanned!(span=> ::flowgate::agg::Sum::new()),
        AggFunc::Avg => quote_spanned!(span=> ::flowgate::agg::Avg::new()),
        AggFunc::Min => quote_spanned!(span=> ::flowgate::agg::Min::new()),
        AggFunc::Max => quote_spanned!(span=> ::flowgate::agg::Max::new()),
    }
}

fn agg_update(a: &AggItem, j: usize) -> TokenStream {
    let j = Index::from(j);
    match (&a.func, &a.arg) {
        (AggFunc::CountRows, _) => quote! { __fg_acc.#j.add_row(); },
        (AggFunc::Count, Some(arg)) => quote_spanned!(arg.span()=> __fg_acc.#j.add(#arg);),
        (_, Some(arg)) => quote_spanned!(arg.span()=> __fg_acc.#j.update(#arg);),
        (_, None) => quote! { compile_error!("flowgate bug: aggregate without argument"); },
    }
}

/// Stage 0's end: the grouping key (looping over a row's windows), the late-input check, and
/// the accumulator updates.
fn aggregate_terminal(p: &Physical, agg: &AggPlan) -> TokenStream {
    let inits: Vec<TokenStream> = agg.aggs.iter().map(agg_init).collect();
    let updates: Vec<TokenStream> = agg.aggs.iter().enumerate().map(|(j, a)| agg_update(a, j)).collect();
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
    let late = match (agg.uses_watermark(p.mode), agg.event_time_key) {
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
    let body = quote! {
        '__fg_key: {
            let __fg_key = ( #(#key_values,)* );
            #late
            let __fg_acc = __fg_tables.entry(__fg_key, || ( #(#inits,)* ));
            #(#updates)*
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

/// The body of a stateful operator's per-unit closure: stage 0's fused loop over the unit's
/// rows, with the unit's maximum event time folded into the watermark tracker.
fn unit_loop(p: &Physical, stage0: TokenStream) -> TokenStream {
    let binds = bind_inputs(&p.input_columns);
    let (wm_start, wm_end) = watermark_unit(p);
    quote! {
        let (__fg_cols, __fg_range) = __fg_unit;
        #wm_start
        for __fg_i in __fg_range.clone() {
            #binds
            #stage0
        }
        #wm_end
    }
}

fn emit_aggregate_plan(q: &Query, p: &Physical, agg: &AggPlan) -> TokenStream {
    let out = &q.output;
    let units = collect_units(q, p);
    let unit_loop = unit_loop(p, fuse(&p.pre, aggregate_terminal(p, agg)));
    let state = initial_state(p, quote!(::flowgate::agg::HashAggState::new(__fg_config.shuffle_partitions)));

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
    let columns = match &p.terminal {
        Terminal::Columns(c) => c.clone(),
        Terminal::FilterInput => Vec::new(),
    };
    let emit_body = fuse(&p.post, push_output(q, &columns));
    let emit_loop = |entries: TokenStream| {
        quote! {
            for __fg_e in #entries {
                #(#key_binds)*
                #(#finishes)*
                #emit_body
            }
        }
    };
    let evict = |i: usize| {
        let i = Index::from(i);
        quote! { __fg_agg.evict(|__fg_k| ::flowgate::watermark::is_behind(&__fg_k.#i, __fg_ev_wm)) }
    };
    // Append: closed groups, once, as they are evicted. Update: changed groups, then evict.
    // Complete: everything, nothing evicted.
    let emit = match (p.mode, agg.uses_watermark(p.mode), agg.event_time_key) {
        (ModeKind::Append, true, Some(i)) => {
            let evicted = evict(i);
            let lp = emit_loop(quote!(&__fg_closed));
            quote! { let __fg_closed = #evicted; #lp }
        }
        (ModeKind::Update, true, Some(i)) => {
            let evicted = evict(i);
            let lp = emit_loop(quote!(__fg_agg.updated()));
            quote! { #lp #evicted; }
        }
        (ModeKind::Complete, _, _) => emit_loop(quote!(__fg_agg.all())),
        _ => emit_loop(quote!(__fg_agg.updated())),
    };
    quote! {
        ::std::boxed::Box::new(::flowgate::engine::CompiledPlan::new(#state, move |__fg_state, __fg_ctx, __fg_inputs| {
            let (__fg_agg, __fg_watermark) = __fg_state;
            let __fg_watermark = &*__fg_watermark;
            let __fg_late_wm = __fg_ctx.late_watermark();
            let __fg_ev_wm = __fg_ctx.eviction_watermark();
            #units
            __fg_agg.update(&__fg_units, __fg_rows, |__fg_unit, __fg_tables| { #unit_loop });
            let mut __fg_out = <#out as ::flowgate::Record>::builder(__fg_agg.len());
            #emit
            ::core::result::Result::Ok(::std::vec![::flowgate::RecordBuilder::finish(&mut __fg_out)?])
        }))
    }
}

/// Session windows: their own state (sessions per key), fed row by row, merged per batch.
fn emit_session_plan(q: &Query, p: &Physical, agg: &AggPlan) -> TokenStream {
    let out = &q.output;
    let units = collect_units(q, p);
    let Some((session_idx, ts, gap)) = agg.keys.iter().enumerate().find_map(|(i, k)| match &k.kind {
        KeyKind::Session { ts, gap } => Some((i, ts, *gap)),
        _ => None,
    }) else {
        return quote! { compile_error!("flowgate bug: session plan without a session key") };
    };
    let inits: Vec<TokenStream> = agg.aggs.iter().map(agg_init).collect();
    let updates: Vec<TokenStream> = agg.aggs.iter().enumerate().map(|(j, a)| agg_update(a, j)).collect();
    // The state's key is the grouping key without the session window.
    let plain: Vec<(usize, &syn::Expr)> =
        agg.keys.iter().enumerate().filter(|(i, _)| *i != session_idx).map(|(i, k)| (i, &k.item.expr)).collect();
    let plain_exprs = plain.iter().map(|(_, e)| e);
    let row = quote_spanned!(ts.span()=> __fg_rows.row(__fg_key, #ts, || ( #(#inits,)* )));
    let terminal = quote! {
        let __fg_key = ( #(#plain_exprs,)* );
        if let ::core::option::Option::Some(__fg_acc) = #row {
            #(#updates)*
        }
    };
    let unit_loop = unit_loop(p, fuse(&p.pre, terminal));
    let state = initial_state(p, quote!(::flowgate::agg::SessionAggState::new(__fg_config.shuffle_partitions, #gap)));
    let late = if agg.uses_watermark(p.mode) { quote!(__fg_ctx.late_watermark()) } else { quote!(i64::MIN) };

    let key_binds = agg.keys.iter().enumerate().map(|(i, k)| {
        let name = &k.item.name;
        if i == session_idx {
            quote! { let #name = &__fg_s.window(); }
        } else {
            let j = Index::from(plain.iter().position(|(pi, _)| *pi == i).unwrap_or(0));
            quote! { let #name = &__fg_k.#j; }
        }
    });
    let finishes = agg.aggs.iter().enumerate().map(|(j, a)| {
        let (name, j) = (&a.name, Index::from(j));
        quote_spanned!(a.span=> let #name = __fg_s.acc.#j.finish();)
    });
    let columns = match &p.terminal {
        Terminal::Columns(c) => c.clone(),
        Terminal::FilterInput => Vec::new(),
    };
    let emit_body = fuse(&p.post, push_output(q, &columns));
    // Append: sessions closed by the watermark, once, as they are evicted. Complete: all.
    let (prefix, entries) = match (p.mode, agg.uses_watermark(p.mode)) {
        (ModeKind::Append, true) => (
            quote! { let __fg_closed = __fg_agg.evict(__fg_ctx.eviction_watermark()); },
            quote! { __fg_closed.iter().map(|(__fg_k, __fg_s)| (__fg_k, __fg_s)) },
        ),
        _ => (TokenStream::new(), quote! { __fg_agg.all() }),
    };
    quote! {
        ::std::boxed::Box::new(::flowgate::engine::CompiledPlan::new(#state, move |__fg_state, __fg_ctx, __fg_inputs| {
            let (__fg_agg, __fg_watermark) = __fg_state;
            let __fg_watermark = &*__fg_watermark;
            #units
            __fg_agg.update(&__fg_units, #late, |__fg_unit, __fg_rows| { #unit_loop });
            let mut __fg_out = <#out as ::flowgate::Record>::builder(__fg_agg.len());
            #prefix
            for (__fg_k, __fg_s) in #entries {
                #(#key_binds)*
                #(#finishes)*
                #emit_body
            }
            ::core::result::Result::Ok(::std::vec![::flowgate::RecordBuilder::finish(&mut __fg_out)?])
        }))
    }
}
