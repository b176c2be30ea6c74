//! How a planned query runs in continuous mode.
//!
//! The answer is written down by emit as the builder's `flowgate::engine::continuous::Continuity`
//! impl: `Mode = MapLike` for a query of map-like operators (every task runs the plan on its
//! vectors), `Mode = Stateful` for one with stateful operators or a watermark (the runtime's
//! stateful stage runs each vector, and what a micro-batch does once per batch — eviction,
//! timeouts and timers, a complete-mode result table — at the epoch's end). A builder's
//! `trigger` takes a `Trigger::continuous(..)` only for a `Mode` that implements
//! `RunsContinuously`: both do, as every operator the planner builds runs continuously (the
//! sources that cannot are refused when the query starts).

use proc_macro2::TokenStream;
use quote::quote;

use super::plan::Plan;

/// How a planned query runs in continuous mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Continuity {
    /// Map-like operators only: every task runs the plan on its vectors.
    MapLike,
    /// Stateful operators or a watermark: the stateful stage runs the plan per vector, and
    /// once more at each epoch's end.
    Stateful,
}

/// How `plan` runs in continuous mode.
///
/// Every stateful operator the planner builds runs in the stage, per vector, with what a
/// micro-batch does once per batch (eviction, timeouts and timers, a complete-mode result
/// table, sorted and cut) deferred to the epoch's end (`BatchContext::mid_epoch`), so no
/// operator is in the way; the sources that cannot run continuously are refused at start.
pub fn continuity(plan: &Plan) -> Continuity {
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
    fn map_like_queries_run_in_tasks_and_every_stateful_shape_in_the_stage() {
        let map_like = quote! {
            query Q(lines: Line) -> Word, mode = append {
                lines.filter(value != "").flat_map(word = split(value, " ")).select(word)
            }
        };
        assert_eq!(continuity_of(map_like), Continuity::MapLike);
        let stateful = [
            quote! { query Q(lines: Line) -> Count, mode = update { lines.group_by(value).agg(count() as n) } },
            quote! { query Q(lines: Line) -> Line, mode = append { lines.drop_duplicates(value) } },
            quote! {
                query Q(events: Event) -> Event, mode = append { events.with_watermark(time, "1 minute").filter(n > 0) }
            },
            quote! {
                query Q(events: Event) -> Count, mode = append {
                    events.with_watermark(time, "1 minute").group_by(window(time, "1 minute")).agg(count() as n)
                }
            },
            quote! { query Q(lines: Line) -> Count, mode = complete { lines.group_by(value).agg(count() as n) } },
            quote! {
                query Q(lines: Line) -> Count, mode = complete {
                    lines.group_by(value).agg(count() as n).order_by(desc(n)).limit(3)
                }
            },
            quote! {
                query Q(events: Event) -> Count, mode = append {
                    events.with_watermark(time, "1 minute").group_by(session_window(time, "1 minute")).agg(count() as n)
                }
            },
            quote! { query Q(lines: Line) -> Line, mode = append { lines.limit(3) } },
        ];
        for q in stateful {
            assert_eq!(continuity_of(q), Continuity::Stateful);
        }
    }
}
