//! Whether a planned query can run in continuous mode, and what stands in the way if not.
//!
//! The answer is written down by emit as the builder's `flowgate::engine::continuous::Continuity`
//! impl: `Mode = MapLike` for a query of map-like operators, `Mode = Stateful` for one whose
//! stateful operators run in continuous mode (aggregations in update mode and dedups, with or
//! without a watermark: the runtime's stateful stage runs them per epoch), else `Mode` is the
//! runtime's type named after the first operator in the way (`unsupported::Aggregation`, ...),
//! and rustc refuses a `Trigger::continuous(..)` for that builder with a message naming it (as
//! Spark's `UnsupportedOperationChecker` does when a continuous query starts).

use proc_macro2::TokenStream;
use quote::{format_ident, quote};

use super::ast::ModeKind;
use super::logical::LOp;
use super::plan::{OperatorKind, Plan};

/// How a planned query runs in continuous mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Continuity {
    /// Map-like operators only: every task runs the plan on its vectors.
    MapLike,
    /// Stateful operators continuous mode runs: the stateful stage runs the plan per epoch.
    Stateful,
    /// Not at all: the name of the operator's type in
    /// `flowgate::engine::continuous::unsupported`.
    Unsupported(&'static str),
}

/// How `plan` runs in continuous mode (the first operator in the way, in id order, if it
/// cannot).
pub fn continuity(plan: &Plan) -> Continuity {
    for op in &plan.operators {
        let blocker = match op.kind {
            // Per epoch, the changed groups: update mode. Append mode's windows wait for the
            // watermark to pass them and complete mode's result table is the whole state; neither
            // is built for continuous mode yet.
            OperatorKind::HashAggregate(_) if plan.mode == ModeKind::Update => continue,
            OperatorKind::HashAggregate(_) => "Aggregation",
            OperatorKind::Dedup(_) => continue,
            OperatorKind::SessionAggregate(_) => "SessionWindowAggregation",
            OperatorKind::StreamJoin(_) => "StreamStreamJoin",
            OperatorKind::GroupState(_) => "GroupState",
            OperatorKind::GlobalLimit(_) => "GlobalLimit",
        };
        return Continuity::Unsupported(blocker);
    }
    let sorts = plan.pipelines.iter().flat_map(|p| &p.ops).any(|op| matches!(op, LOp::Sort { .. } | LOp::Limit { .. }));
    if sorts {
        return Continuity::Unsupported("Sort");
    }
    if plan.operators.is_empty() && plan.watermarks.is_empty() {
        Continuity::MapLike
    } else {
        // A watermark without stateful operators runs in the stage too (late rows are dropped
        // by the epoch's watermark).
        Continuity::Stateful
    }
}

/// The `Continuity::Mode` of a query that runs as `continuity` says.
pub fn mode_tokens(continuity: Continuity) -> TokenStream {
    match continuity {
        Continuity::MapLike => quote!(::flowgate::engine::continuous::MapLike),
        Continuity::Stateful => quote!(::flowgate::engine::continuous::Stateful),
        Continuity::Unsupported(name) => {
            let ty = format_ident!("{}", name);
            quote!(::flowgate::engine::continuous::unsupported::#ty)
        }
    }
}

#[cfg(test)]
mod tests {
    use quote::quote;

    use super::Continuity;

    fn continuity_of(query: proc_macro2::TokenStream) -> Continuity {
        let file = super::super::parse::parse(query).unwrap();
        let q = &file.queries[0];
        let mut diags = super::super::diag::Diagnostics::new();
        let logical = super::super::check::check(q, &mut diags);
        assert!(diags.finish().is_ok());
        super::continuity(&super::super::plan::plan(q, logical))
    }

    #[test]
    fn map_like_queries_run_in_tasks_update_aggregations_and_dedups_in_the_stage_the_rest_name_their_operator() {
        let map_like = quote! {
            query Q(lines: Line) -> Word, mode = append {
                lines.filter(value != "").flat_map(word = split(value, " ")).select(word)
            }
        };
        assert_eq!(continuity_of(map_like), Continuity::MapLike);
        let agg = quote! {
            query Q(lines: Line) -> Count, mode = update { lines.group_by(value).agg(count() as n) }
        };
        assert_eq!(continuity_of(agg), Continuity::Stateful);
        let dedup = quote! {
            query Q(lines: Line) -> Line, mode = append { lines.drop_duplicates(value) }
        };
        assert_eq!(continuity_of(dedup), Continuity::Stateful);
        let watermark = quote! {
            query Q(events: Event) -> Event, mode = append { events.with_watermark(time, "1 minute").filter(n > 0) }
        };
        assert_eq!(continuity_of(watermark), Continuity::Stateful);
        let append_agg = quote! {
            query Q(events: Event) -> Count, mode = append {
                events.with_watermark(time, "1 minute").group_by(window(time, "1 minute")).agg(count() as n)
            }
        };
        assert_eq!(continuity_of(append_agg), Continuity::Unsupported("Aggregation"));
        let complete_agg = quote! {
            query Q(lines: Line) -> Count, mode = complete { lines.group_by(value).agg(count() as n) }
        };
        assert_eq!(continuity_of(complete_agg), Continuity::Unsupported("Aggregation"));
    }
}
