//! Whether a planned query can run in continuous mode, and what stands in the way if not.
//!
//! The answer is written down by emit as the builder's `flowgate::engine::continuous::Continuity`
//! impl: `Mode = MapLike` for an eligible query, else `Mode` is the runtime's type named after
//! the first operator in the way (`unsupported::Aggregation`, ...), and rustc refuses a
//! `Trigger::continuous(..)` for that builder with a message naming it (as Spark's
//! `UnsupportedOperationChecker` does when a continuous query starts).

use proc_macro2::TokenStream;
use quote::{format_ident, quote};

use super::logical::LOp;
use super::plan::{OperatorKind, Plan};

/// The operator that keeps `plan` from running continuously: the name of its type in
/// `flowgate::engine::continuous::unsupported`, or `None` for a map-like query.
pub fn blocker(plan: &Plan) -> Option<&'static str> {
    // Stateful operators first (the first in id order), then what needs event time, then sorts.
    if let Some(op) = plan.operators.first() {
        return Some(match op.kind {
            OperatorKind::HashAggregate(_) => "Aggregation",
            OperatorKind::SessionAggregate(_) => "SessionWindowAggregation",
            OperatorKind::Dedup(_) => "Deduplication",
            OperatorKind::StreamJoin(_) => "StreamStreamJoin",
            OperatorKind::GroupState(_) => "GroupState",
            OperatorKind::GlobalLimit(_) => "GlobalLimit",
        });
    }
    if !plan.watermarks.is_empty() {
        return Some("Watermark");
    }
    let sorts = plan.pipelines.iter().flat_map(|p| &p.ops).any(|op| matches!(op, LOp::Sort { .. } | LOp::Limit { .. }));
    sorts.then_some("Sort")
}

/// The `Continuity::Mode` of a query with `blocker`.
pub fn mode_tokens(blocker: Option<&str>) -> TokenStream {
    match blocker {
        None => quote!(::flowgate::engine::continuous::MapLike),
        Some(name) => {
            let ty = format_ident!("{}", name);
            quote!(::flowgate::engine::continuous::unsupported::#ty)
        }
    }
}

#[cfg(test)]
mod tests {
    use quote::quote;

    fn blocker_of(query: proc_macro2::TokenStream) -> Option<&'static str> {
        let file = super::super::parse::parse(query).unwrap();
        let q = &file.queries[0];
        let mut diags = super::super::diag::Diagnostics::new();
        let logical = super::super::check::check(q, &mut diags);
        assert!(diags.finish().is_ok());
        super::blocker(&super::super::plan::plan(q, logical))
    }

    #[test]
    fn map_like_queries_run_continuously_and_the_rest_name_their_operator() {
        let map_like = quote! {
            query Q(lines: Line) -> Word, mode = append {
                lines.filter(value != "").flat_map(word = split(value, " ")).select(word)
            }
        };
        assert_eq!(blocker_of(map_like), None);
        let agg = quote! {
            query Q(lines: Line) -> Count, mode = update { lines.group_by(value).agg(count() as n) }
        };
        assert_eq!(blocker_of(agg), Some("Aggregation"));
        let dedup = quote! {
            query Q(lines: Line) -> Line, mode = append { lines.drop_duplicates(value) }
        };
        assert_eq!(blocker_of(dedup), Some("Deduplication"));
        let watermark = quote! {
            query Q(events: Event) -> Event, mode = append { events.with_watermark(time, "1 minute").filter(n > 0) }
        };
        assert_eq!(blocker_of(watermark), Some("Watermark"));
    }
}
