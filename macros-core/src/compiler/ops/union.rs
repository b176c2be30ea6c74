//! `union(other)`: the rows of another stream of the same record type (Spark's `union`, by
//! position; here the types must be the same record). The other side may filter and set its
//! own watermark (`events.union(late_events.with_watermark(ts, "1 hour"))`); each input's
//! watermark is tracked apart and the query's is their minimum (or maximum:
//! `.watermark_policy(..)`). What follows the union runs over both inputs' rows: the plan
//! gives each input its own pipeline, the shared operators fused into both, into the same
//! stateful operator or output.

use syn::spanned::Spanned;
use syn::{Expr, Ident};

use crate::compiler::ast::{Call, Query};
use crate::compiler::check::{check_no_aggregate, same_type, single_arg, watermark_args, Cx};
use crate::compiler::diag::{hint, Diagnostics};
use crate::compiler::exprs::free_columns;
use crate::compiler::logical::{LOp, Schema};
use crate::compiler::ops::{self, OpKind};
use crate::compiler::parse::unwind_chain;

/// Whether `arg` (a `union` argument) reads input `name`.
pub fn names_input(arg: &Expr, name: &Ident) -> bool {
    unwind_chain(arg.clone()).is_ok_and(|(source, _)| source == *name)
}

/// Check hook: the other input, its own operators (filters and a watermark), and Spark's
/// rules for a union of streams.
pub fn check(q: &Query, cx: &mut Cx, call: &Call, diags: &mut Diagnostics) -> Option<LOp> {
    let arg = single_arg(call, diags)?;
    let (name, calls) = match unwind_chain(arg.clone()) {
        Ok(x) => x,
        Err(e) => {
            diags.push(e);
            return None;
        }
    };
    let Some(input) = q.inputs.iter().position(|i| i.name == name) else {
        let names: Vec<String> = q.inputs.iter().map(|i| i.name.to_string()).collect();
        diags.error(name.span(), format!("unknown input `{name}`{}", hint(&name.to_string(), &names)));
        return None;
    };
    let source = q.inputs.iter().position(|i| i.name == q.source)?;
    let decl = &q.inputs[input];
    if input == source || cx.unioned.contains(&input) {
        diags.error(name.span(), format!("`{name}` is already part of this query's rows: union each stream once"));
        return None;
    }
    if decl.is_static {
        diags.error(
            name.span(),
            format!("`{name}` is static: a stream can be unioned only with streams (join a static table instead)"),
        );
        return None;
    }
    // After a stream-stream join and its `select`, the rows are the selected columns: the
    // other input's records give the same columns by name (rustc checks each field).
    let after_join = match &cx.schema {
        Schema::Closed { columns } if cx.stream_joined && !cx.aggregated && !cx.records_from_columns => {
            Some(columns.clone())
        }
        _ => None,
    };
    if cx.stream_joined && after_join.is_none() {
        diags.error(
            call.name.span(),
            "a union after a stream-stream join takes the columns a `select` names: `select` them first, then union a stream whose records have those fields (Spark's union by position; here by name)",
        );
        return None;
    }
    // After a map the rows are its records: rustc checks the other input's type against them
    // (`TypedSpec::unioned`).
    if after_join.is_none() && cx.mapped.is_none() && !same_type(&decl.ty, &q.inputs[source].ty) {
        let (a, b) = (&q.inputs[source].ty, &decl.ty);
        diags.error(
            decl.ty.span(),
            format!(
                "a union needs inputs of the same record type: `{}` is `{}`, `{name}` is `{}`",
                q.source,
                quote::ToTokens::to_token_stream(a),
                quote::ToTokens::to_token_stream(b)
            ),
        );
        return None;
    }
    if after_join.is_none() && (cx.aggregated || !matches!(&cx.schema, Schema::Open { defined } if defined.is_empty()))
    {
        diags.error(
            call.name.span(),
            "union is supported right after an input's filters and watermark, before columns are defined or rows aggregated: move the union up",
        );
        return None;
    }
    let mut branch = Vec::new();
    let mut columns: Vec<Ident> = after_join.clone().unwrap_or_default();
    let mut watermark = None;
    for c in &calls {
        let kind = ops::lookup(&c.name.to_string()).map(|o| o.kind);
        match kind {
            Some(OpKind::Filter) => {
                let pred = single_arg(c, diags)?;
                check_no_aggregate(pred, diags);
                for col in free_columns(pred) {
                    if !columns.contains(&col) {
                        columns.push(col);
                    }
                }
                branch.push(LOp::Filter { pred: pred.clone() });
            }
            Some(OpKind::Watermark) => {
                if watermark.is_some() {
                    diags
                        .error(c.name.span(), "this input already has a watermark: use one `with_watermark` per input");
                    return None;
                }
                let (column, delay) = watermark_args(c, diags)?;
                if let Some(main) = &cx.watermark {
                    if *main != column {
                        diags.error(
                            column.span(),
                            format!("the unioned inputs watermark different columns (`{main}` and `{column}`): watermark the same event-time column on each"),
                        );
                        return None;
                    }
                }
                if !columns.contains(&column) {
                    columns.push(column.clone());
                }
                watermark = Some((column.clone(), delay));
                branch.push(LOp::Watermark { column, delay, tracker: cx.trackers });
                cx.trackers += 1;
            }
            _ => {
                diags.error(
                    c.name.span(),
                    format!("only `filter` and `with_watermark` may come between `{name}` and the union: write other operators after it"),
                );
                return None;
            }
        }
    }
    if cx.watermark.is_none() {
        if let Some((column, delay)) = watermark {
            cx.watermark = Some(column);
            cx.watermark_delay = delay;
        }
    }
    cx.unioned.push(input);
    cx.union_columns.push((input, columns));
    Some(LOp::Union { input, ops: branch })
}
