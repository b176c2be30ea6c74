//! Deduplication: `drop_duplicates(cols..)`, `distinct()` and
//! `drop_duplicates_within_watermark(cols..)` (Spark's `StreamingDeduplicateExec` and
//! `StreamingDeduplicateWithinWatermarkExec`).
//!
//! A stateful filter: it keeps the first row per key and sits inside its pipeline's row loop
//! (the loop then runs in row order on one thread). With a watermark on the input, rows whose
//! event time is at or behind it are dropped first (counted as dropped by watermark); a key
//! holding the watermarked column is evicted once it is behind the watermark; a key of
//! `drop_duplicates_within_watermark` expires when its first event time plus the delay is.

use proc_macro2::TokenStream;
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{Expr, Ident, Index};

use crate::compiler::ast::{Call, ModeKind, Query};
use crate::compiler::check::Cx;
use crate::compiler::diag::Diagnostics;
use crate::compiler::logical::{DedupSpec, LOp, Schema};

/// Check hook: the key columns (bare column names; none for the whole row, which must then be
/// known), Spark's rules, and the spec.
///
/// After an aggregation (Spark 4 accepts it in every mode when the keys hold no event time)
/// the dedup sees the aggregation's emitted rows, has no watermark of its own and keeps its
/// keys forever.
pub fn check(q: &Query, cx: &mut Cx, call: &Call, within_watermark: bool, diags: &mut Diagnostics) -> Option<LOp> {
    let name = call.name.to_string();
    let mut keys: Vec<Ident> = Vec::new();
    for arg in &call.args {
        match arg {
            Expr::Path(p) if p.path.get_ident().is_some() && p.qself.is_none() => {
                let col = p.path.get_ident().cloned()?;
                if keys.contains(&col) {
                    diags.error(col.span(), format!("column `{col}` is named twice"));
                    continue;
                }
                cx.resolve(arg, diags);
                keys.push(col);
            }
            other => diags.error(
                other.span(),
                format!(
                    "`{name}` takes column names: `.{name}(user_id, ts)` (compute other keys with `with_column` first)"
                ),
            ),
        }
    }
    if keys.is_empty() && call.args.is_empty() {
        match &cx.schema {
            Schema::Closed { columns } => keys = columns.clone(),
            Schema::Open { .. } => {
                diags.error(
                    call.name.span(),
                    format!(
                        "`{name}` over the whole input record needs its columns named here: write `.drop_duplicates(col, ...)` with every column, or `select` them first"
                    ),
                );
                return None;
            }
        }
    }
    if keys.is_empty() {
        return None;
    }
    if cx.aggregated && within_watermark {
        // Spark 4 accepts it after an aggregation in append mode: the window (or a plain key on
        // the watermarked column) is its event time.
        let event_time = match (&cx.window_event_time, &cx.watermark) {
            (Some(w), _) => Some((w.clone(), true)),
            (None, Some(w)) => Some((w.clone(), false)),
            (None, None) => None,
        };
        let Some((w, window_time)) = event_time else {
            diags.error(
                call.name.span(),
                format!("`{name}` after an aggregation needs its event time: aggregate by an event-time window, e.g. `.group_by(window(ts, \"10 minutes\"), ..)`"),
            );
            return None;
        };
        if q.mode.kind != ModeKind::Append {
            diags.error(
                call.name.span(),
                format!("`{name}` after an aggregation needs append mode (Spark: \"Detected pattern of possible 'correctness' issue due to global watermark\"): in update or complete mode the aggregation emits rows the dedup would count as late; use `mode = append`"),
            );
            return None;
        }
        return Some(LOp::Dedup {
            op: 0,
            spec: DedupSpec {
                keys,
                event_time_key: None,
                watermark: Some(w),
                within_watermark: Some(cx.watermark_delay),
                window_time,
            },
        });
    }
    if cx.aggregated {
        let event_time =
            keys.iter().find(|k| Some(*k) == cx.window_event_time.as_ref() || Some(*k) == cx.watermark.as_ref());
        if let Some(k) = event_time {
            if q.mode.kind != ModeKind::Append {
                let mode = if q.mode.kind == ModeKind::Update { "update" } else { "complete" };
                diags.error(
                    k.span(),
                    format!("`{name}` on the event-time column `{k}` after an aggregation needs append mode (Spark: \"Detected pattern of possible 'correctness' issue due to global watermark\"): in {mode} mode the aggregation emits rows the dedup would count as late; use `mode = append`, or deduplicate on columns without event time"),
                );
                return None;
            }
            // Append mode: the aggregation emits each window once its end passes the
            // watermark; the dedup, fed by it, drops rows whose window ends at or before the
            // previous batch's watermark and evicts keys whose window ends at or before this
            // batch's (Spark's `window.end <= watermark` on a struct event-time column).
            let k = k.clone();
            let event_time_key = keys.iter().position(|c| *c == k);
            return Some(LOp::Dedup {
                op: 0,
                spec: DedupSpec { keys, event_time_key, watermark: Some(k), within_watermark: None, window_time: true },
            });
        }
        return Some(LOp::Dedup {
            op: 0,
            spec: DedupSpec { keys, event_time_key: None, watermark: None, within_watermark: None, window_time: false },
        });
    }
    // After a stream-stream join the event-time columns are both sides' (those a `select`
    // kept): late rows are judged by the first, as Spark's filter takes the first watermarked
    // column of its input, and a key holding any of them is evicted by it.
    let watermark = cx.watermark.clone().or_else(|| cx.joined_watermarks.first().cloned());
    if within_watermark && cx.watermark.is_none() && watermark.is_some() {
        diags.error(
            call.name.span(),
            format!("`{name}` on the other stream's event time after a join is not supported yet in flowgate: keep the query's own event-time column in the `select` before it"),
        );
        return None;
    }
    let delay = match (within_watermark, &watermark) {
        (true, None) => {
            diags.error(
                call.name.span(),
                "drop_duplicates_within_watermark needs a watermark (as in Spark): add `.with_watermark(ts, \"10 minutes\")` before it",
            );
            return None;
        }
        (true, Some(_)) => Some(cx.watermark_delay),
        (false, _) => None,
    };
    let event_time_key = match &watermark {
        Some(_) if delay.is_none() => {
            keys.iter().position(|k| cx.watermark.as_ref() == Some(k) || cx.joined_watermarks.contains(k))
        }
        _ => None,
    };
    Some(LOp::Dedup {
        op: 0,
        spec: DedupSpec { keys, event_time_key, watermark, within_watermark: delay, window_time: false },
    })
}

/// The operator's state at plan creation.
pub fn init(spec: &DedupSpec) -> TokenStream {
    let name = if spec.within_watermark.is_some() { "dedupeWithinWatermark" } else { "dedupe" };
    quote!(::flowgate::ops::dedup::DedupState::new(__fg_config.shuffle_partitions, #name))
}

/// The variable holding stateful operator `id`.
pub fn var(id: usize) -> Ident {
    format_ident!("__fg_op{}", id)
}

/// Emit hook inside the row loop: drops late rows, then every row whose key was seen
/// (`reject` leaves the row: `continue` in a unit loop, `break '__fg_row false` in a mask).
pub fn emit_row(id: usize, spec: &DedupSpec, reject: &TokenStream) -> TokenStream {
    let op = var(id);
    let late = match &spec.watermark {
        Some(w) => quote_spanned!(w.span()=>
            if ::flowgate::ops::dedup::is_late(#w, __fg_late_wm) {
                #op.late();
                #reject
            }
        ),
        None => TokenStream::new(),
    };
    let keys = &spec.keys;
    let value = match (spec.within_watermark, &spec.watermark) {
        (Some(delay), Some(w)) if spec.window_time => quote!(::flowgate::ops::dedup::window_expiry(#w, #delay)),
        (Some(delay), Some(w)) => quote!(::flowgate::ops::dedup::expiry(#w, #delay)),
        _ => quote!(()),
    };
    quote! {
        #late
        if !#op.first(( #(#keys,)* ), #value) {
            #reject
        }
    }
}

/// Emit hook after the batch's rows: eviction by the watermark, and the batch's metrics.
pub fn emit_end(id: usize, spec: &DedupSpec) -> TokenStream {
    let op = var(id);
    let evict = match (spec.within_watermark, spec.event_time_key) {
        (Some(_), _) => quote! { #op.evict_expired(__fg_ev_wm); },
        (None, Some(i)) => {
            let i = Index::from(i);
            quote! { #op.evict(|__fg_k| ::flowgate::watermark::is_behind(&__fg_k.#i, __fg_ev_wm)); }
        }
        (None, None) => TokenStream::new(),
    };
    quote! { #evict #op.end_batch(); }
}
