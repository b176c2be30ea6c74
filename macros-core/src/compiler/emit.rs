//! Phase 4, emit: the plan as Rust. Generated code is what one would write by hand: typed
//! loops over Arrow arrays with the user's expressions inlined (so rustc type-checks them
//! where the user wrote them), fully qualified paths, and no per-row dynamic dispatch.
//! Internal names start with `__fg_`. Every decision was made by the plan phase; this file
//! writes it down: one function per pipeline shape, and the stateful operators' own emit
//! hooks in `ops/`.

use proc_macro2::TokenStream;
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{Ident, Type};

use super::ast::{ModeKind, Query};
use super::logical::LOp;
use super::ops::{aggregate, dedup, group_state, join, stream_join, typed};
use super::plan::{ColumnsPlan, OperatorKind, OutputPlan, Pipeline, Plan, Sink, Source};

/// The query's items: its type, spec, plan and builder.
pub fn emit(q: &Query, plan: &Plan) -> TokenStream {
    let continuity = super::continuous::mode_tokens(super::continuous::continuity(plan));
    let mut items = emit_skeleton(q, emit_plan(q, plan), input_reads(plan), continuity);
    items.extend(super::batch::items(q, plan.batch_finishes()));
    items
}

/// Per input, the columns the plan reads (`Some(&[..])`), or `None` where it hands the whole
/// input row on: sources skip decoding the rest.
fn input_reads(plan: &Plan) -> Vec<TokenStream> {
    plan.inputs
        .iter()
        .map(|i| match &i.reads {
            Some(cols) => {
                let names: Vec<String> = cols.iter().map(Ident::to_string).collect();
                quote!(::core::option::Option::Some(&[#(#names),*]))
            }
            None => quote!(::core::option::Option::None),
        })
        .collect()
}

/// What the macro expands to when the query has errors: the same items (so the user's code
/// that builds and starts the query still type-checks and the user sees only our errors),
/// with a plan that is never run.
pub fn emit_fallback(q: &Query) -> TokenStream {
    let reads = q.inputs.iter().map(|_| quote!(::core::option::Option::None)).collect();
    let batch = super::batch::items(q, false);
    let mut items = emit_skeleton(
        q,
        quote! {
            ::std::boxed::Box::new(::flowgate::engine::CompiledPlan::new((), ::flowgate::engine::Watermarks::none(), |_, _, _| {
                ::core::result::Result::Err(::flowgate::Error::Internal("this query did not compile".into()))
            }))
        },
        reads,
        // Any trigger type-checks: the user sees the query's errors, not one about its trigger.
        super::continuous::mode_tokens(super::continuous::Continuity::MapLike),
    );
    items.extend(batch);
    items
}

/// The plan: the operators' state, the watermark trackers, and the batch function running
/// each pipeline in order.
fn emit_plan(q: &Query, plan: &Plan) -> TokenStream {
    let inits: Vec<TokenStream> = plan
        .operators
        .iter()
        .map(|o| match &o.kind {
            OperatorKind::HashAggregate(_) => aggregate::init_hash(),
            OperatorKind::SessionAggregate(a) => aggregate::init_session(a),
            OperatorKind::Dedup(d) => dedup::init(d),
            OperatorKind::StreamJoin(s) => stream_join::init(s),
            OperatorKind::GlobalLimit(n) => {
                let n = *n as u64;
                quote!(::flowgate::ops::limit::LimitState::new(#n))
            }
            OperatorKind::GroupState(g) => group_state::init(g),
        })
        .collect();
    let vars: Vec<Ident> = plan.operators.iter().map(|o| dedup::var(o.id)).collect();
    let delays: Vec<i64> = plan.watermarks.iter().map(|w| w.delay).collect();
    let watermarks = if delays.is_empty() {
        quote!(::flowgate::engine::Watermarks::none())
    } else {
        quote!(::flowgate::engine::Watermarks::new(&[#(#delays),*], __fg_config.watermark_policy))
    };
    let begin: Vec<TokenStream> = plan
        .operators
        .iter()
        .filter(|o| {
            matches!(o.kind, OperatorKind::Dedup(_) | OperatorKind::GlobalLimit(_) | OperatorKind::GroupState(_))
        })
        .map(|o| {
            let v = dedup::var(o.id);
            quote! { #v.begin_batch(); }
        })
        .collect();
    let join_prepare_streams: Vec<TokenStream> = plan
        .operators
        .iter()
        .filter_map(|o| match &o.kind {
            OperatorKind::StreamJoin(s) => Some(stream_join::emit_prepare(q, plan, s)),
            _ => None,
        })
        .collect();
    let bind_ops = if vars.is_empty() {
        TokenStream::new()
    } else {
        quote! { let ( #(#vars,)* ) = &mut __fg_state.operators; }
    };
    // A dedup shared by a union's pipelines evicts once, after the last of them (as Spark
    // evicts after every row of the batch); an operator fed by several pipelines is updated
    // first, then fed more.
    let mut last_of: std::collections::HashMap<usize, usize> = std::collections::HashMap::new();
    for (n, p) in plan.pipelines.iter().enumerate() {
        for (id, _) in plan.filters_in(p) {
            last_of.insert(id, n);
        }
    }
    let mut fed: std::collections::HashSet<usize> = std::collections::HashSet::new();
    let mut parts: Vec<Ident> = Vec::new();
    let mut pipelines: Vec<TokenStream> = Vec::new();
    for (n, p) in plan.pipelines.iter().enumerate() {
        let mut ends: Vec<TokenStream> = plan
            .filters_in(p)
            .filter(|(id, _)| last_of.get(id) == Some(&n))
            .map(|(id, d)| dedup::emit_end(id, d))
            .collect();
        ends.extend(p.ops.iter().filter_map(|op| match op {
            LOp::Limit { global: Some(id), .. } => {
                let v = dedup::var(*id);
                Some(quote! { #v.end_batch(); })
            }
            _ => None,
        }));
        let first = match p.sink {
            Sink::Operator(o) => fed.insert(o),
            Sink::Output(_) => true,
        };
        let last = match p.sink {
            Sink::Operator(o) => {
                !plan.pipelines[n + 1..].iter().any(|later| matches!(later.sink, Sink::Operator(l) if l == o))
            }
            Sink::Output(_) => true,
        };
        let code = emit_pipeline(q, plan, p, &ends, (first, last));
        if matches!(p.sink, Sink::Output(_)) {
            let part = format_ident!("__fg_part{}", n);
            pipelines.push(quote! {
                let #part: ::flowgate::Result<::std::vec::Vec<::flowgate::__private::arrow_array::RecordBatch>> = { #code };
                let #part = #part?;
            });
            parts.push(part);
        } else {
            pipelines.push(code);
        }
    }
    let result = match parts.as_slice() {
        [one] => quote! { ::core::result::Result::Ok(#one) },
        many => quote! {
            let mut __fg_all = ::std::vec::Vec::new();
            #( __fg_all.extend(#many); )*
            ::core::result::Result::Ok(__fg_all)
        },
    };
    // A rule only rustc can decide (`flowgate::dsl::WatermarkedGroupingKey`): a closure that
    // is never called, type-checked for its one error.
    let rustc_rules = match &plan.append_needs_key {
        Some((input, column)) => {
            let in_ty = &plan.inputs[*input].ty;
            let field = Ident::new(&column.to_string(), column.span());
            let call = quote_spanned!(column.span()=> ::flowgate::dsl::append_mode_needs_the_watermarked_column(&__fg_cols.#field));
            quote! { let _ = |__fg_cols: &<#in_ty as ::flowgate::Record>::Columns<'_>| { #call }; }
        }
        None => TokenStream::new(),
    };
    // Each stream-static join's index, built on the first batch and kept by the closure.
    let join_specs: Vec<&super::logical::JoinSpec> = plan
        .pipelines
        .iter()
        .flat_map(|p| &p.ops)
        .filter_map(|op| match op {
            LOp::Join { spec } => Some(spec),
            _ => None,
        })
        .collect();
    let join_slots: Vec<Ident> = join_specs.iter().map(|j| join::slot(j)).collect();
    let join_prepare: Vec<TokenStream> = join_specs.iter().map(|j| join::emit_prepare(plan, j)).collect();
    // Only the bindings the pipelines use: the trackers where a row loop observes event
    // time, the batch's two watermarks where a stateful operator drops or evicts by them.
    let mut bind_watermarks = TokenStream::new();
    if !plan.watermarks.is_empty() {
        bind_watermarks.extend(quote! { let __fg_watermarks = &__fg_state.watermarks; });
    }
    if !plan.operators.is_empty() {
        bind_watermarks.extend(quote! {
            let __fg_late_wm = __fg_ctx.late_watermark();
            let __fg_ev_wm = __fg_ctx.eviction_watermark();
        });
    }
    quote! {
        #rustc_rules
        #( let mut #join_slots = ::core::option::Option::None; )*
        ::std::boxed::Box::new(::flowgate::engine::CompiledPlan::new(( #(#inits,)* ), #watermarks, move |__fg_state, __fg_ctx, __fg_inputs| {
            #bind_ops
            #bind_watermarks
            #(#begin)*
            #(#join_prepare_streams)*
            #(#join_prepare)*
            #(#pipelines)*
            #result
        }))
    }
}

/// One pipeline: its code, and where it outputs rows, an expression of type
/// `Result<Vec<RecordBatch>>`. `ends` are the end-of-batch hooks of the stateful filters it
/// holds last; `(first, last)` say whether it is the first and the last of the batch to feed
/// its operator.
fn emit_pipeline(
    q: &Query,
    plan: &Plan,
    p: &Pipeline,
    ends: &[TokenStream],
    (first, last): (bool, bool),
) -> TokenStream {
    match (&p.source, &p.sink) {
        (Source::Input(i), Sink::Output(OutputPlan::Columns(c))) => emit_columns(q, plan, p, *i, c, ends),
        (Source::Input(i), Sink::Output(OutputPlan::InputRows)) => emit_input_rows(q, plan, p, *i, ends),
        (Source::Input(i), Sink::Output(OutputPlan::Records)) => typed::emit_records(q, plan, p, *i, ends),
        (Source::Input(i), Sink::Operator(o)) => {
            let update = match &plan.operators[*o].kind {
                OperatorKind::HashAggregate(a) => aggregate::emit_hash_update(q, plan, p, *i, *o, a, first),
                OperatorKind::SessionAggregate(a) => aggregate::emit_session_update(plan, p, *i, *o, a, (first, last)),
                OperatorKind::Dedup(_) | OperatorKind::GlobalLimit(_) => {
                    quote! { compile_error!("flowgate bug: a stateful filter is not a breaker"); }
                }
                OperatorKind::StreamJoin(s) => stream_join::emit_side(plan, p, *i, s),
                OperatorKind::GroupState(g) => group_state::emit_update(plan, p, *i, *o, g),
            };
            quote! { #update #(#ends)* }
        }
        (Source::Operator(o), Sink::Operator(to)) => {
            let feed = match &plan.operators[*to].kind {
                OperatorKind::HashAggregate(a) => aggregate::feed_hash(*to, a),
                OperatorKind::StreamJoin(s) => stream_join::feed_left(plan, s),
                OperatorKind::GroupState(g) => group_state::feed(*to, g),
                _ => {
                    return quote! { compile_error!("flowgate bug: only a hash aggregation, a join or group state takes another operator's rows"); }
                }
            };
            let code = match &plan.operators[*o].kind {
                OperatorKind::HashAggregate(a) => aggregate::emit_hash_into(plan, p, *o, a, &feed),
                OperatorKind::SessionAggregate(a) => aggregate::emit_session_into(plan, p, *o, a, &feed),
                OperatorKind::StreamJoin(s) => stream_join::emit_into(plan, p, s, &feed),
                OperatorKind::GroupState(g) => group_state::emit_into(q, plan, p, *o, g, &feed),
                _ => quote! { compile_error!("flowgate bug: an operator whose rows do not feed another"); },
            };
            quote! { #code #(#ends)* }
        }
        (Source::Operator(o), Sink::Output(OutputPlan::Rows(columns))) if !ends.is_empty() => {
            // Stateful filters in the pipeline (a dedup after an aggregation or a join) end
            // after its rows, by the watermarks that operator passes on.
            let rows = emit_operator_output(q, plan, p, *o, columns);
            let shadow = match &plan.operators[*o].kind {
                OperatorKind::StreamJoin(s) => stream_join::shadow_watermarks(plan, s),
                _ => TokenStream::new(),
            };
            quote! {{
                let __fg_rows = { #rows };
                #shadow
                #(#ends)*
                __fg_rows
            }}
        }
        (Source::Operator(o), Sink::Output(OutputPlan::Rows(columns))) => emit_operator_output(q, plan, p, *o, columns),
        // An aggregation's or a join's rows through a map (`typed::RowFrom::Columns`): its
        // records are the output, pushed whole (the terminal `TopN::of` chooses).
        (Source::Operator(o), Sink::Output(OutputPlan::Records))
            if matches!(
                plan.operators[*o].kind,
                OperatorKind::HashAggregate(_)
                    | OperatorKind::SessionAggregate(_)
                    | OperatorKind::StreamJoin(_)
                    | OperatorKind::GroupState(_)
            ) =>
        {
            let rows = emit_operator_output(q, plan, p, *o, &[]);
            let shadow = match &plan.operators[*o].kind {
                OperatorKind::StreamJoin(s) => stream_join::shadow_watermarks(plan, s),
                _ => TokenStream::new(),
            };
            if ends.is_empty() && shadow.is_empty() {
                rows
            } else {
                quote! {{
                    let __fg_rows = { #rows };
                    #shadow
                    #(#ends)*
                    __fg_rows
                }}
            }
        }
        _ => quote! { compile_error!("flowgate bug: a pipeline shape the planner does not make"); },
    }
}

/// Where rows go when a stateful operator's emitted rows feed another one (a breaker): the
/// per-row terminal that updates it, and the call that runs a loop of such rows into it.
pub(crate) struct Feed {
    pub op: Ident,
    pub terminal: TokenStream,
    /// Whether the terminal runs in the loop itself (a stream-stream join's left side's pass,
    /// a group-state operator's grouping) rather than inside an aggregation's update.
    pub inline: bool,
}

impl Feed {
    /// `body` (a loop over the emitted rows ending in `terminal`) run into the operator, on
    /// the calling thread.
    pub fn wrap(&self, body: TokenStream) -> TokenStream {
        let op = &self.op;
        if self.inline {
            body
        } else {
            quote! { #op.update_sequential(&[()], |_: &(), __fg_tables| { #body }); }
        }
    }
}

/// The pipeline from operator `o`'s emitted rows to the output.
fn emit_operator_output(q: &Query, plan: &Plan, p: &Pipeline, o: usize, columns: &[Ident]) -> TokenStream {
    match &plan.operators[o].kind {
        OperatorKind::HashAggregate(a) => aggregate::emit_hash_output(q, plan, p, o, a, columns),
        OperatorKind::SessionAggregate(a) => aggregate::emit_session_output(q, plan, p, o, a, columns),
        OperatorKind::Dedup(_) | OperatorKind::GlobalLimit(_) => {
            quote! { compile_error!("flowgate bug: a stateful filter emits no rows of its own"); }
        }
        OperatorKind::StreamJoin(s) => stream_join::emit_output(q, plan, p, s, columns),
        OperatorKind::GroupState(g) => group_state::emit_output(q, plan, p, o, g, columns),
    }
}

fn mode_tokens(mode: ModeKind) -> TokenStream {
    match mode {
        ModeKind::Append => quote!(::flowgate::OutputMode::Append),
        ModeKind::Update => quote!(::flowgate::OutputMode::Update),
        ModeKind::Complete => quote!(::flowgate::OutputMode::Complete),
    }
}

fn emit_skeleton(q: &Query, plan_body: TokenStream, reads: Vec<TokenStream>, continuity: TokenStream) -> TokenStream {
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
    let statics: Vec<bool> = q.inputs.iter().map(|i| i.is_static).collect();
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
                    static_inputs: ::std::vec![ #(#statics),* ],
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

        impl ::flowgate::engine::continuous::Continuity for #builder {
            type Mode = #continuity;
        }
    }
}

/// `let (a, b) = (expr_a, expr_b);` — all evaluated against the previous scope.
fn let_items(names: &[&Ident], exprs: &[&syn::Expr]) -> TokenStream {
    quote! { let ( #(#names,)* ) = ( #(#exprs,)* ); }
}

/// Nests a pipeline's operators around `terminal`, innermost last.
pub(crate) fn fuse(plan: &Plan, ops: &[LOp], terminal: TokenStream) -> TokenStream {
    fuse_live(plan, ops, &[], &[], terminal)
}

/// [`fuse`], leaving out the items that `live` marks dead (`live[k][j]` for item `j` of
/// operator `k`; a missing entry is live), and with `binds[k]` (input column reads) placed
/// just before operator `k` (`binds[ops.len()]` before the terminal).
fn fuse_live(
    plan: &Plan,
    ops: &[LOp],
    live: &[Vec<bool>],
    binds: &[TokenStream],
    terminal: TokenStream,
) -> TokenStream {
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
    let inner = fuse_live(plan, rest, rest_live, rest_binds, terminal);
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
            let observe = observe(column);
            quote! { #observe #inner }
        }
        LOp::Dedup { op, spec } => {
            let _ = plan;
            let check = dedup::emit_row(*op, spec, &quote! { continue; });
            quote! { #check #inner }
        }
        LOp::Join { spec } => join::emit_row(spec, inner, &quote! { continue; }),
        LOp::TypedRows { spec } => typed::emit_row(spec, inner, &quote! { continue; }),
        LOp::Limit { global: Some(id), .. } => {
            let v = dedup::var(*id);
            quote! { if !#v.take() { continue; } #inner }
        }
        LOp::Union { .. } => quote! { compile_error!("flowgate bug: a union inside a fused stage"); },
        LOp::Sort { .. } | LOp::Limit { .. } => {
            quote! { compile_error!("flowgate bug: a sort or limit inside a fused stage"); }
        }
        LOp::Aggregate { .. } | LOp::StreamJoin { .. } | LOp::GroupState { .. } => {
            quote! { compile_error!("flowgate bug: a breaker inside a fused stage"); }
        }
    };
    quote! { #bind #op }
}

/// `let value = __fg_cols.value.get(__fg_i);` for each input column read. The field access is
/// spanned on the user's token: a misspelled column is rustc's "no field" error there.
pub(crate) fn bind_inputs(cols: &[Ident]) -> TokenStream {
    let binds = cols.iter().map(|c| {
        let field = Ident::new(&c.to_string(), c.span());
        quote_spanned!(c.span()=> let #c = __fg_cols.#field.get(__fg_i);)
    });
    quote! { #(#binds)* }
}

/// The struct-literal push of an output row; each field spanned on the DSL token that named
/// the column, the literal on the declared output type.
pub(crate) fn push_output(q: &Query, columns: &[Ident]) -> TokenStream {
    let lit = output_literal(q, columns);
    quote! { ::flowgate::RecordBuilder::push(&mut __fg_out, #lit); }
}

/// The output row as a struct literal of the declared output type.
pub(crate) fn output_literal(q: &Query, columns: &[Ident]) -> TokenStream {
    let out = &q.output;
    let path = match out {
        Type::Path(tp) => quote!(#tp),
        other => quote_spanned!(other.span()=> compile_error!("the output type must be a record struct")),
    };
    let fields = columns.iter().map(|c| quote_spanned!(c.span()=> #c: ::flowgate::value::IntoOwned::into_owned(#c)));
    quote_spanned!(out.span()=> #path { #(#fields),* })
}

/// `__fg_units`: an input's batches cut into work units of typed columns and row ranges;
/// `__fg_rows`: their row count.
pub(crate) fn collect_units(plan: &Plan, p: &Pipeline, input: usize) -> TokenStream {
    let in_ty = &plan.inputs[input].ty;
    let check = check_loaded(p);
    quote! {
        let mut __fg_units = ::std::vec::Vec::new();
        let mut __fg_rows = 0usize;
        for __fg_batch in &__fg_inputs[#input] {
            #check
            let __fg_cols = <#in_ty as ::flowgate::Record>::columns(__fg_batch)?;
            ::flowgate::exec::push_units(&mut __fg_units, __fg_cols, __fg_batch.num_rows());
            __fg_rows += __fg_batch.num_rows();
        }
    }
}

/// The debug-build check that every input column the pipeline's code loads was decoded by its
/// source (see `flowgate::exec::check_loaded`): the list comes from what this file emits,
/// independently of the plan's `input_reads`, so a wrong `input_reads` fails loudly.
fn check_loaded(p: &Pipeline) -> TokenStream {
    let mut loaded: Vec<String> = match &p.sink {
        Sink::Output(OutputPlan::Columns(c)) => c
            .binds
            .iter()
            .flatten()
            .chain(c.columns.iter().filter_map(|(_, passed)| passed.as_ref()))
            .map(Ident::to_string)
            .collect(),
        _ => p.reads.iter().map(Ident::to_string).collect(),
    };
    loaded.sort();
    loaded.dedup();
    if loaded.is_empty() {
        return TokenStream::new();
    }
    quote! { ::flowgate::exec::check_loaded(__fg_batch, &[#(#loaded),*])?; }
}

/// Per work unit: the running maximum event time of the pipeline's watermark, folded into its
/// tracker at the unit's end.
pub(crate) fn watermark_unit(p: &Pipeline) -> (TokenStream, TokenStream) {
    match p.ops.iter().find_map(|op| match op {
        LOp::Watermark { tracker, .. } => Some(*tracker),
        _ => None,
    }) {
        Some(t) => (
            quote! { let mut __fg_max_et = i64::MIN; },
            quote! { __fg_watermarks.tracker(#t).observe_max(__fg_max_et); },
        ),
        None => (TokenStream::new(), TokenStream::new()),
    }
}

/// The body of a breaker's per-unit closure: the pipeline's fused loop over the unit's rows,
/// with the unit's maximum event time folded into its watermark tracker.
pub(crate) fn unit_loop(p: &Pipeline, plan: &Plan, terminal: TokenStream) -> TokenStream {
    let binds = bind_inputs(&p.reads);
    let (wm_start, wm_end) = watermark_unit(p);
    let body = fuse(plan, &p.ops, terminal);
    quote! {
        let (__fg_cols, __fg_range) = __fg_unit;
        #wm_start
        for __fg_i in __fg_range.clone() {
            #binds
            #body
        }
        #wm_end
    }
}

/// An input pipeline that ends in output columns: each column is either an input column
/// passed through or built by the row loop, which appends each computed value to its column
/// directly.
fn emit_columns(
    q: &Query,
    plan: &Plan,
    p: &Pipeline,
    input: usize,
    c: &ColumnsPlan,
    ends: &[TokenStream],
) -> TokenStream {
    let out = &q.output;
    let units = collect_units(plan, p, input);
    let binds: Vec<TokenStream> = c.binds.iter().map(|cols| bind_inputs(cols)).collect();
    let unread = c.unread.iter().map(|col| {
        let field = Ident::new(&col.to_string(), col.span());
        quote_spanned!(col.span()=> let _ = __fg_cols.#field;)
    });
    let fields = c.columns.iter().map(|(col, source)| match source {
        Some(input) => {
            let field = Ident::new(&input.to_string(), input.span());
            quote_spanned!(col.span()=> #col: ::flowgate::record::OutColumn::pass(__fg_cols.#field, __fg_range.clone()))
        }
        None => quote_spanned!(col.span()=> #col: ::flowgate::record::OutColumn::with_capacity(__fg_capacity)),
    });
    // Every row makes one output row unless a filter, flat_map or dedup comes first; then the
    // builders start small and grow, instead of reserving a whole unit for rows it drops.
    let capacity = if p.ops.iter().any(|op| {
        matches!(op, LOp::Filter { .. } | LOp::FlatMap { .. } | LOp::Dedup { .. } | LOp::Limit { global: Some(_), .. })
            || matches!(op, LOp::TypedRows { spec } if spec.kind != typed::TypedKind::Map)
    }) {
        quote!(::core::cmp::min(__fg_range.len(), ::flowgate::exec::FILTERED_START_CAPACITY))
    } else {
        quote!(__fg_range.len())
    };
    let built = c.columns.iter().filter(|(_, s)| s.is_none()).map(|(col, _)| col);
    let pushes = built.map(|col| quote_spanned!(col.span()=> __fg_out.#col.push(#col);));
    let body = fuse_live(plan, &p.ops, &c.live, &binds, quote! { #(#pushes)* });
    let parts_ty = quote_spanned!(out.span()=> type __FgParts = <#out as ::flowgate::Record>::Parts;);
    let parts = quote_spanned!(out.span()=> __FgParts { #(#fields),* });
    let (wm_start, wm_end) = watermark_unit(p);
    let unit = quote! {
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
    };
    let run = if p.parallel {
        quote! { ::flowgate::exec::map_units(&__fg_units, |__fg_unit| { #unit }) }
    } else {
        quote! {
            let mut __fg_result = ::std::vec::Vec::with_capacity(__fg_units.len());
            for __fg_unit in &__fg_units {
                __fg_result.push({ #unit }?);
            }
            #(#ends)*
            ::core::result::Result::Ok(__fg_result)
        }
    };
    quote! { #units #run }
}

/// An input pipeline whose output rows are its input rows: the row loop only decides, per
/// row, whether it stays (a mask), and the batch is filtered with it.
fn emit_input_rows(q: &Query, plan: &Plan, p: &Pipeline, input: usize, ends: &[TokenStream]) -> TokenStream {
    let out = &q.output;
    let in_ty = &plan.inputs[input].ty;
    let binds = bind_inputs(&p.reads);
    let reject = quote! { break '__fg_row false; };
    let checks = p.ops.iter().map(|op| match op {
        LOp::Filter { pred } => quote_spanned!(pred.span()=> {
            let __fg_keep: bool = #pred;
            if !__fg_keep { #reject }
        }),
        LOp::Watermark { column, .. } => observe(column),
        LOp::Dedup { op, spec } => dedup::emit_row(*op, spec, &reject),
        LOp::Join { spec } => join::emit_row(spec, TokenStream::new(), &reject),
        LOp::TypedRows { spec } if !spec.produces() => typed::emit_row(spec, TokenStream::new(), &reject),
        LOp::Limit { global: Some(id), .. } => {
            let v = dedup::var(*id);
            quote! { if !#v.take() { #reject } }
        }
        _ => quote! { compile_error!("flowgate bug: only filters pass the input through"); },
    });
    let (wm_start, wm_end) = watermark_unit(p);
    let check = check_loaded(p);
    quote! {
        let __fg_schema = <#out as ::flowgate::Record>::schema();
        let mut __fg_result = ::std::vec::Vec::with_capacity(__fg_inputs[#input].len());
        for __fg_batch in &__fg_inputs[#input] {
            #check
            let __fg_cols = <#in_ty as ::flowgate::Record>::columns(__fg_batch)?;
            #wm_start
            __fg_result.push(::flowgate::exec::filter_batch(__fg_batch, &__fg_schema, |__fg_i| '__fg_row: {
                #binds
                #(#checks)*
                true
            })?);
            #wm_end
        }
        #(#ends)*
        ::core::result::Result::Ok(__fg_result)
    }
}

/// Folds a row's event time into the unit's running maximum.
fn observe(column: &Ident) -> TokenStream {
    quote_spanned!(column.span()=>
        if let ::core::option::Option::Some(__fg_t) = ::flowgate::window::EventTime::event_micros(#column) {
            if __fg_t > __fg_max_et { __fg_max_et = __fg_t; }
        }
    )
}
