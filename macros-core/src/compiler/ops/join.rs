//! Stream-static joins: `.join(products, product_id, kind = left_outer, on = qty <= products.stock)`
//! against an input declared `products: static Product` (Spark's stream-static join; the
//! stream is the left side).
//!
//! Columns: unqualified names are the stream's; the static input's are written
//! `products.name` (in any later operator and in `on`), which the check phase rewrites to a
//! row-loop variable. A key is a column both sides have (`product_id`, Spark's `using`) or
//! `stream_col = products.static_col`. In a left outer join the static columns are nullable
//! (`Option`, never an `Option` of an `Option`); semi and anti joins keep the stream's columns
//! only.

use std::collections::BTreeMap;

use proc_macro2::TokenStream;
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::visit_mut::{self, VisitMut};
use syn::{Expr, Ident, Member};

use crate::compiler::ast::{Call, Query};
use crate::compiler::check::Cx;
use crate::compiler::diag::{hint, Diagnostics};
use crate::compiler::logical::{JoinKind, JoinSpec, LOp};
use crate::compiler::plan::Plan;

/// Per static input (by name), the columns the query reads from it, in first-use order.
pub type StaticRefs = BTreeMap<String, Vec<Ident>>;

/// Rewrites every `products.col` (a static input's column) in the calls to its row-loop
/// variable, naming top-level ones in `select`/`with_column`/`group_by` after the column, and
/// returns the rewritten calls and the columns each static input is read for.
pub fn rewrite_static_refs(q: &Query) -> (Vec<Call>, StaticRefs) {
    // Static inputs and the streams a stream-stream join reads: their columns are written
    // `input.col` after the join.
    let joined_stream = |name: &Ident| {
        q.calls.iter().any(|c| {
            c.name == "join"
                && c.args.first().is_some_and(|a| {
                    crate::compiler::ops::stream_join::is_stream_join(q, a)
                        && crate::compiler::ops::union::names_input(a, name)
                })
        })
    };
    let statics: Vec<String> =
        q.inputs.iter().filter(|i| i.is_static || joined_stream(&i.name)).map(|i| i.name.to_string()).collect();
    let mut refs = StaticRefs::new();
    let mut calls = Vec::with_capacity(q.calls.len());
    for call in &q.calls {
        let naming = matches!(call.name.to_string().as_str(), "select" | "map" | "with_column" | "group_by");
        let mut args = Vec::with_capacity(call.args.len());
        for arg in &call.args {
            let mut arg = arg.clone();
            if naming {
                if let Some((input, field)) = static_ref(&arg, &statics) {
                    let var = JoinSpec::var(&input, &field);
                    record(&mut refs, &input, &field);
                    arg = syn::parse_quote_spanned!(field.span()=> #field = #var);
                    args.push(arg);
                    continue;
                }
            }
            // A join's own key columns are read from the static side when it is indexed, not
            // per match: they do not count as columns the query reads after the join.
            let is_key = call.name == "join" && !matches!(&arg, Expr::Assign(a) if is_ident(&a.left, "on"));
            let mut scratch = StaticRefs::new();
            let mut r = Rewriter { statics: &statics, refs: if is_key { &mut scratch } else { &mut refs } };
            r.visit_expr_mut(&mut arg);
            args.push(arg);
        }
        calls.push(Call { name: call.name.clone(), args });
    }
    (calls, refs)
}

fn record(refs: &mut StaticRefs, input: &Ident, field: &Ident) {
    let list = refs.entry(input.to_string()).or_default();
    if !list.contains(field) {
        list.push(field.clone());
    }
}

/// `products.col` where `products` is a static input.
fn static_ref(expr: &Expr, statics: &[String]) -> Option<(Ident, Ident)> {
    let Expr::Field(f) = expr else { return None };
    let Expr::Path(p) = &*f.base else { return None };
    let input = p.path.get_ident()?;
    let Member::Named(field) = &f.member else { return None };
    statics.contains(&input.to_string()).then(|| (input.clone(), field.clone()))
}

struct Rewriter<'a> {
    statics: &'a [String],
    refs: &'a mut StaticRefs,
}

impl VisitMut for Rewriter<'_> {
    fn visit_expr_mut(&mut self, e: &mut Expr) {
        if let Some((input, field)) = static_ref(e, self.statics) {
            let var = JoinSpec::var(&input, &field);
            record(self.refs, &input, &field);
            *e = syn::parse_quote_spanned!(field.span()=> #var);
            return;
        }
        visit_mut::visit_expr_mut(self, e);
    }
}

/// The static column a rewritten `products.col` stands for.
fn static_field(expr: &Expr, input: &Ident) -> Option<Ident> {
    let Expr::Path(p) = expr else { return None };
    let name = p.path.get_ident()?.to_string();
    let field = name.strip_prefix(&format!("__fg_{input}_"))?;
    Some(Ident::new(field, p.span()))
}

/// After an aggregation, an inner or semi join on a grouping key never matches that key's
/// null group: as Spark infers `key IS NOT NULL` from the join and pushes it through the
/// aggregation, the rows with a null key are filtered before it (fewer state rows, the same
/// result). Inserted before the last aggregation in `ops`.
pub fn infer_not_null_before_aggregation(spec: &JoinSpec, ops: &mut Vec<LOp>) {
    if matches!(spec.kind, JoinKind::Inner | JoinKind::LeftSemi) {
        not_null_before_aggregation(spec.keys.iter().map(|(e, _)| e), ops);
    }
}

/// For the stream side's join keys `keys` that are grouping keys of the last aggregation in
/// `ops` (bare columns of its input): `key IS NOT NULL`, pushed down as far as Spark pushes
/// it — before the watermark sees the rows (into the scan), but after whatever defines the
/// column, a union (whose other input must be filtered too) and a stateful filter (whose
/// first row per key it would change).
pub(crate) fn not_null_before_aggregation<'a>(keys: impl Iterator<Item = &'a Expr>, ops: &mut Vec<LOp>) {
    let Some(agg) = ops.iter().rposition(|o| matches!(o, LOp::Aggregate { .. })) else { return };
    let LOp::Aggregate { keys: group, .. } = &ops[agg] else { return };
    let cols: Vec<Ident> = keys
        .filter_map(|e| {
            let name = crate::compiler::plan::bare_column(e)?;
            let key = group.iter().find(|k| k.item.name == name)?;
            crate::compiler::plan::bare_column(&key.item.expr)
        })
        .collect();
    for col in cols {
        let agg = ops.iter().rposition(|o| matches!(o, LOp::Aggregate { .. })).unwrap_or(ops.len());
        let barrier = ops[..agg].iter().rposition(|o| match o {
            LOp::Project { items } | LOp::WithColumns { items } => items.iter().any(|i| i.name == col),
            LOp::FlatMap { name, .. } => *name == col,
            LOp::TypedRows { spec } => spec.produces(),
            LOp::Union { .. } | LOp::Dedup { .. } | LOp::Limit { .. } | LOp::Aggregate { .. } => true,
            _ => false,
        });
        let pred = syn::parse_quote_spanned!(col.span()=> !::flowgate::agg::Nullable::is_null(&#col));
        ops.insert(barrier.map_or(0, |b| b + 1), LOp::Filter { pred });
    }
}

/// Check hook: the static input, the keys, the join type (Spark's rules for stream-static
/// joins) and the condition; defines the static columns read later.
pub fn check(q: &Query, cx: &mut Cx, call: &Call, refs: &StaticRefs, diags: &mut Diagnostics) -> Option<LOp> {
    if call.args.first().is_some_and(|a| crate::compiler::ops::stream_join::is_stream_join(q, a)) {
        return crate::compiler::ops::stream_join::check(q, cx, call, refs, diags);
    }
    let Some(Expr::Path(target)) = call.args.first() else {
        diags.error(call.name.span(), "`join` takes the static input first: `.join(products, product_id)`");
        return None;
    };
    let Some(name) = target.path.get_ident().cloned() else {
        diags.error(target.span(), "expected the name of a declared input");
        return None;
    };
    let Some(input) = q.inputs.iter().position(|i| i.name == name) else {
        let names: Vec<String> = q.inputs.iter().map(|i| i.name.to_string()).collect();
        diags.error(name.span(), format!("unknown input `{name}`{}", hint(&name.to_string(), &names)));
        return None;
    };
    if !q.inputs[input].is_static {
        // Another stream is a stream-stream join (`ops::stream_join`); this is the query's own.
        diags.error(name.span(), format!("`{name}` is this query's own stream: a self-join is not supported"));
        return None;
    }
    if cx.joined.contains(&input) {
        diags.error(name.span(), format!("`{name}` is joined twice: join a static input once"));
        return None;
    }
    let mut kind = JoinKind::Inner;
    let mut keys = Vec::new();
    let mut condition = None;
    for arg in &call.args[1..] {
        match arg {
            Expr::Assign(a) if is_ident(&a.left, "kind") => match join_kind(&a.right, diags) {
                Some(k) => kind = k,
                None => return None,
            },
            Expr::Assign(a) if is_ident(&a.left, "on") => condition = Some((*a.right).clone()),
            Expr::Assign(a) => match (&*a.left, static_field(&a.right, &name)) {
                (Expr::Path(p), Some(field)) if p.path.get_ident().is_some() => keys.push(((*a.left).clone(), field)),
                _ => {
                    diags.error(
                        arg.span(),
                        format!(
                            "a join key is a column of both sides (`product_id`) or `stream_column = {name}.column`"
                        ),
                    );
                    return None;
                }
            },
            Expr::Path(p) if p.path.get_ident().is_some() => {
                let col = p.path.get_ident().cloned()?;
                keys.push((arg.clone(), col));
            }
            other => {
                diags.error(
                    other.span(),
                    format!(
                        "expected a join key (`product_id`, `order_product = {name}.id`), `kind = ...` or `on = ...`"
                    ),
                );
                return None;
            }
        }
    }
    if keys.is_empty() {
        diags.error(
            call.name.span(),
            "a stream-static join needs an equi-join key: `.join(products, product_id)` or `.join(products, pid = products.id)`",
        );
        return None;
    }
    for (e, _) in &keys {
        cx.resolve(e, diags);
    }
    let fields = refs.get(&name.to_string()).cloned().unwrap_or_default();
    if matches!(kind, JoinKind::LeftSemi | JoinKind::LeftAnti) {
        // The condition may read the static side; nothing after the join may.
        let in_condition: Vec<String> = condition
            .iter()
            .flat_map(crate::compiler::exprs::free_columns)
            .filter_map(|c| static_field(&syn::parse_quote!(#c), &name))
            .map(|f| f.to_string())
            .collect();
        if let Some(f) = fields.iter().find(|f| !in_condition.contains(&f.to_string())) {
            diags.error(
                f.span(),
                format!(
                    "a {} join keeps only the stream's columns: `{name}.{f}` is not available after it",
                    kind_name(kind)
                ),
            );
            return None;
        }
    }
    cx.joined.push(input);
    cx.records_from_columns = false;
    for f in &fields {
        cx.schema.define(&JoinSpec::var(&name, f));
    }
    if let Some(c) = &condition {
        cx.resolve(c, diags);
    }
    Some(LOp::Join { spec: JoinSpec { input, input_name: name, kind, keys, condition, fields } })
}

fn is_ident(e: &Expr, name: &str) -> bool {
    matches!(e, Expr::Path(p) if p.path.is_ident(name))
}

fn kind_name(kind: JoinKind) -> &'static str {
    match kind {
        JoinKind::Inner => "inner",
        JoinKind::LeftOuter => "left outer",
        JoinKind::LeftSemi => "left semi",
        JoinKind::LeftAnti => "left anti",
    }
}

/// `kind = inner | left_outer | left_semi | left_anti`; the others are Spark's errors.
fn join_kind(e: &Expr, diags: &mut Diagnostics) -> Option<JoinKind> {
    let Expr::Path(p) = e else {
        diags.error(e.span(), "expected a join type: inner, left_outer, left_semi or left_anti");
        return None;
    };
    let Some(id) = p.path.get_ident() else {
        diags.error(e.span(), "expected a join type: inner, left_outer, left_semi or left_anti");
        return None;
    };
    match id.to_string().as_str() {
        "inner" => Some(JoinKind::Inner),
        "left_outer" | "left" => Some(JoinKind::LeftOuter),
        "left_semi" | "semi" => Some(JoinKind::LeftSemi),
        "left_anti" | "anti" => Some(JoinKind::LeftAnti),
        "right_outer" | "right" => {
            diags.error(
                id.span(),
                "a right outer join with a stream on the left and a static table on the right is not supported (as in Spark: it would need every future stream row before emitting the static rows without a match)",
            );
            None
        }
        "full_outer" | "full" | "outer" => {
            diags.error(
                id.span(),
                "a full outer join between a stream and a static table is not supported (as in Spark): use `kind = left_outer`",
            );
            None
        }
        other => {
            let known = ["inner", "left_outer", "left_semi", "left_anti"];
            let names: Vec<String> = known.iter().map(|s| s.to_string()).collect();
            diags.error(
                id.span(),
                format!("unknown join type `{other}`{} (inner, left_outer, left_semi, left_anti)", hint(other, &names)),
            );
            None
        }
    }
}

/// The slot holding join `spec`'s static table, built on the first batch.
pub fn slot(spec: &JoinSpec) -> Ident {
    format_ident!("__fg_join_{}", spec.input_name)
}

fn columns_var(spec: &JoinSpec) -> Ident {
    format_ident!("__fg_static_{}", spec.input_name)
}

/// Emit hook at the start of a batch: index the static rows (first batch only) and take the
/// typed columns of every static batch.
pub fn emit_prepare(plan: &Plan, spec: &JoinSpec) -> TokenStream {
    let slot = slot(spec);
    let cols = columns_var(spec);
    let input = spec.input;
    let ty = &plan.inputs[input].ty;
    let key_reads = spec.keys.iter().map(|(_, f)| {
        let field = Ident::new(&f.to_string(), f.span());
        quote_spanned!(f.span()=> __fg_c.#field.get(__fg_r))
    });
    let none_var = format_ident!("__fg_none_{}", spec.input_name);
    let none_batch = format_ident!("__fg_empty_{}", spec.input_name);
    let padding = if spec.kind == JoinKind::LeftOuter {
        quote! {
            let #none_batch = ::flowgate::__private::arrow_array::RecordBatch::new_empty(<#ty as ::flowgate::Record>::schema());
            let #none_var = <#ty as ::flowgate::Record>::columns(&#none_batch)?;
        }
    } else {
        TokenStream::new()
    };
    quote! {
        if #slot.is_none() {
            let mut __fg_t = ::flowgate::ops::join::StaticTable::new(__fg_inputs[#input].clone());
            let __fg_batches = __fg_t.batches().to_vec();
            for (__fg_b, __fg_batch) in __fg_batches.iter().enumerate() {
                let __fg_c = <#ty as ::flowgate::Record>::columns(__fg_batch)?;
                for __fg_r in 0..__fg_batch.num_rows() {
                    __fg_t.insert(( #(#key_reads,)* ), __fg_b, __fg_r);
                }
            }
            __fg_t.finish();
            #slot = ::core::option::Option::Some(__fg_t);
        }
        let #slot = match &#slot {
            ::core::option::Option::Some(__fg_t) => __fg_t,
            ::core::option::Option::None => {
                return ::core::result::Result::Err(::flowgate::Error::Internal("a static table was not built".into()));
            }
        };
        let #cols = #slot
            .batches()
            .iter()
            .map(<#ty as ::flowgate::Record>::columns)
            .collect::<::flowgate::Result<::std::vec::Vec<_>>>()?;
        #padding
    }
}

/// Emit hook inside the row loop: the stream row with each matching static row (`inner` once
/// per match), padded or filtered by the join type (`reject` leaves a row a semi or anti join
/// drops: `continue` in a unit loop, `break '__fg_row false` in a mask).
pub fn emit_row(spec: &JoinSpec, inner: TokenStream, reject: &TokenStream) -> TokenStream {
    let slot = slot(spec);
    let cols = columns_var(spec);
    let stream_keys = spec.keys.iter().map(|(e, _)| e);
    let binds = |padded: bool| {
        let b = spec.fields.iter().map(|f| {
            let var = JoinSpec::var(&spec.input_name, f);
            let field = Ident::new(&f.to_string(), f.span());
            if padded {
                quote_spanned!(f.span()=> let #var = #cols[__fg_b as usize].#field.get_padded(__fg_r as usize);)
            } else {
                quote_spanned!(f.span()=> let #var = #cols[__fg_b as usize].#field.get(__fg_r as usize);)
            }
        });
        quote! { #(#b)* }
    };
    let cond = |reject: TokenStream| match &spec.condition {
        Some(c) => quote_spanned!(c.span()=> { let __fg_on: bool = #c; if !__fg_on { #reject } }),
        None => TokenStream::new(),
    };
    let key = quote! { let __fg_matches = #slot.matches(&( #(#stream_keys,)* )); };
    match spec.kind {
        JoinKind::Inner => {
            let (b, c) = (binds(false), cond(quote!(continue;)));
            quote! { #key for &(__fg_b, __fg_r) in __fg_matches { #b #c #inner } }
        }
        JoinKind::LeftOuter => {
            // The condition sees the matched row as it is; what follows sees it padded.
            let c = match &spec.condition {
                Some(_) => {
                    let (plain, c) = (binds(false), cond(quote!(continue;)));
                    quote! { #plain #c }
                }
                None => TokenStream::new(),
            };
            let b = binds(true);
            let none_var = format_ident!("__fg_none_{}", spec.input_name);
            let nulls = spec.fields.iter().map(|f| {
                let var = JoinSpec::var(&spec.input_name, f);
                let field = Ident::new(&f.to_string(), f.span());
                quote_spanned!(f.span()=> let #var = #none_var.#field.padded_null();)
            });
            quote! {
                #key
                let mut __fg_hit = false;
                for &(__fg_b, __fg_r) in __fg_matches {
                    #c
                    #b
                    __fg_hit = true;
                    #inner
                }
                if !__fg_hit {
                    #(#nulls)*
                    #inner
                }
            }
        }
        JoinKind::LeftSemi | JoinKind::LeftAnti => {
            let (b, c) = (binds(false), cond(quote!(return false;)));
            let want = spec.kind == JoinKind::LeftSemi;
            quote! {
                #key
                let __fg_hit = __fg_matches.iter().any(|&(__fg_b, __fg_r)| { #b #c true });
                if __fg_hit != #want { #reject }
                #inner
            }
        }
    }
}
