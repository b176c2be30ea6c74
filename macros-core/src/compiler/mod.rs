//! The `stream_query!` compiler: parse → check → plan → emit, each a function over plain data
//! (see ARCHITECTURE.md). Runs without rustc: the unit and snapshot tests call it directly.

pub mod ast;
pub mod batch;
pub mod check;
pub mod continuous;
pub mod diag;
pub mod emit;
pub mod exprs;
pub mod logical;
pub mod ops;
pub mod parse;
pub mod plan;

use proc_macro2::TokenStream;

/// The plan text of every query, or the errors' messages.
pub fn plan_text(input: TokenStream) -> Result<String, String> {
    let file = parse::parse(input).map_err(|e| e.to_string())?;
    let mut out = String::new();
    for q in &file.queries {
        let mut diags = diag::Diagnostics::new();
        q.errors.iter().for_each(|e| diags.push(e.clone()));
        let logical = check::check(q, &mut diags);
        diags.finish().map_err(|e| e.to_string())?;
        out.push_str(&plan::plan(q, logical).to_string());
    }
    Ok(out)
}

/// Compiles the macro input into Rust items (or spanned errors plus well-typed fallbacks).
pub fn compile(input: TokenStream) -> TokenStream {
    compile_reporting(input).0
}

/// [`compile`]'s expansion together with the errors it reports, one by one, from the same
/// single pass (for the fuzz checks: an invalid query has at least one error, each spanned on
/// its tokens, and its expansion holds them as `compile_error!`s; a valid one has none).
pub fn compile_reporting(input: TokenStream) -> (TokenStream, Vec<syn::Error>) {
    let file = match parse::parse(input) {
        Ok(f) => f,
        Err(e) => return (e.to_compile_error(), e.into_iter().collect()),
    };
    let mut out = TokenStream::new();
    let mut reported = Vec::new();
    for q in &file.queries {
        let mut diags = diag::Diagnostics::new();
        q.errors.iter().for_each(|e| diags.push(e.clone()));
        let logical = check::check(q, &mut diags);
        let errors = diags.into_errors();
        if errors.is_empty() {
            let physical = plan::plan(q, logical);
            out.extend(emit::emit(q, &physical));
        } else {
            // One `compile_error!` per error, as `syn::Error::combine` would give.
            errors.iter().for_each(|e| out.extend(e.to_compile_error()));
            out.extend(emit::emit_fallback(q));
            reported.extend(errors);
        }
    }
    (out, reported)
}

#[cfg(test)]
mod snapshot_tests {
    //! Expansion snapshots: the plan and the emitted code of the seed's word count, reviewed
    //! with `cargo insta review` when the compiler changes.

    use quote::quote;

    fn word_count() -> proc_macro2::TokenStream {
        quote! {
            /// The seed's word count.
            pub query WordCounts(lines: Line) -> WordCount, mode = complete {
                lines
                    .flat_map(word = split(value, " "))
                    .group_by(word)
                    .agg(count() as count)
            }
        }
    }

    #[test]
    fn word_count_plan() {
        let file = super::parse::parse(word_count()).unwrap();
        let q = &file.queries[0];
        let mut diags = super::diag::Diagnostics::new();
        let logical = super::check::check(q, &mut diags);
        assert!(diags.finish().is_ok());
        let plan = super::plan::plan(q, logical);
        insta::assert_snapshot!(plan.to_string());
    }

    #[test]
    fn word_count_expansion() {
        let out = super::compile(word_count());
        let file: syn::File = syn::parse2(out).expect("the expansion parses as Rust");
        insta::assert_snapshot!(prettyplease::unparse(&file));
    }

    /// Nexmark q1's shape: unchanged input columns are passed through, one is computed.
    fn projection() -> proc_macro2::TokenStream {
        quote! {
            query Q1(bids: Bid) -> Q1Row, mode = append {
                bids.select(auction, bidder = bidder, price = EUROS_PER_DOLLAR * price as f64, date_time)
            }
        }
    }

    #[test]
    fn projection_expansion() {
        let out = super::compile(projection());
        let file: syn::File = syn::parse2(out).expect("the expansion parses as Rust");
        insta::assert_snapshot!(prettyplease::unparse(&file));
    }

    /// Nexmark q14's shape: after a filter every output column is built row by row.
    #[test]
    fn filtered_projection_expansion() {
        let out = super::compile(quote! {
            query Q14(bids: Bid) -> Q14Row, mode = append {
                bids
                    .with_column(euros = EUROS_PER_DOLLAR * price as f64)
                    .filter(euros > 1_000_000.0)
                    .select(auction, price = euros, kind = kind_of(date_time), extra)
            }
        });
        let file: syn::File = syn::parse2(out).expect("the expansion parses as Rust");
        insta::assert_snapshot!(prettyplease::unparse(&file));
    }

    fn plan_of(tokens: proc_macro2::TokenStream) -> String {
        super::plan_text(tokens).expect("the query compiles")
    }

    /// Filter-only: the input rows are the output, every column is read.
    #[test]
    fn filter_only_plan() {
        insta::assert_snapshot!(plan_of(quote! {
            query Big(bids: Bid) -> Bid, mode = append {
                bids.filter(price > 100)
            }
        }));
    }

    /// A window aggregation with a watermark, in append mode.
    #[test]
    fn window_plan() {
        insta::assert_snapshot!(plan_of(quote! {
            query W(events: Event) -> WindowCount, mode = append {
                events
                    .with_watermark(ts, "10 minutes")
                    .group_by(window(ts, "10 minutes", "5 minutes"), word)
                    .agg(count() as count)
            }
        }));
    }

    /// Session windows are their own physical operator.
    #[test]
    fn session_plan() {
        insta::assert_snapshot!(plan_of(quote! {
            query S(events: Event) -> Sessions, mode = append {
                events
                    .with_watermark(ts, "10 minutes")
                    .group_by(session_window(ts, "5 minutes"), user)
                    .agg(count() as events)
            }
        }));
    }

    /// Deduplication: a stateful filter inside its pipeline.
    #[test]
    fn dedup_plan() {
        insta::assert_snapshot!(plan_of(quote! {
            query D(events: Event) -> Event, mode = append {
                events.with_watermark(ts, "10 minutes").drop_duplicates(id, ts)
            }
        }));
    }

    /// Two stateful operators: deduplication, then a window count over its rows.
    #[test]
    fn dedup_then_aggregate_plan() {
        insta::assert_snapshot!(plan_of(quote! {
            query T(events: Event) -> WindowCount, mode = append {
                events
                    .with_watermark(ts, "10 minutes")
                    .drop_duplicates(id, ts)
                    .filter(id.is_some())
                    .group_by(window(ts, "10 minutes"))
                    .agg(count() as count)
            }
        }));
    }

    /// `map_groups_with_state` with a processing-time timeout: rows grouped by key in one
    /// thread, the function per key; the input decodes every column (the rows go whole).
    #[test]
    fn map_groups_with_state_plan() {
        insta::assert_snapshot!(plan_of(quote! {
            query S(events: Event) -> SessionUpdate, mode = update {
                events
                    .filter(clicks >= 0)
                    .group_by(user)
                    .map_groups_with_state(track, timeout = processing_time)
            }
        }));
    }

    /// `flat_map_groups_with_state` with an event-time timeout: late rows dropped first.
    #[test]
    fn flat_map_groups_with_state_plan() {
        insta::assert_snapshot!(plan_of(quote! {
            query A(events: Event) -> Alert, mode = append {
                events
                    .with_watermark(time, "2 seconds")
                    .drop_duplicates(user, time)
                    .group_by(user, device)
                    .flat_map_groups_with_state(alerts, timeout = event_time)
            }
        }));
    }

    /// The expansion of a group-state query: the row loop into the operator, the call per key.
    #[test]
    fn flat_map_groups_with_state_expansion() {
        let file: syn::File = syn::parse2(super::compile(quote! {
            query A(events: Event) -> Alert, mode = append {
                events
                    .with_watermark(time, "2 seconds")
                    .group_by(user)
                    .flat_map_groups_with_state(alerts, timeout = event_time)
            }
        }))
        .unwrap();
        insta::assert_snapshot!(prettyplease::unparse(&file));
    }

    /// `transform_with_state` in event time: the group-state plan (late rows dropped first,
    /// one thread), named as Spark names the operator.
    #[test]
    fn transform_with_state_plan() {
        insta::assert_snapshot!(plan_of(quote! {
            query Q(events: Event) -> Alert, mode = append {
                events
                    .with_watermark(time, "2 seconds")
                    .filter(page != "")
                    .group_by(user)
                    .transform_with_state(Quiet::default(), time_mode = event_time)
            }
        }));
    }

    /// Operators over a group-state function's records: its records collected, then each
    /// bound by the columns the rest reads, filtered and deduplicated into the output.
    #[test]
    fn group_state_then_dedup_plan() {
        insta::assert_snapshot!(plan_of(quote! {
            query Q(events: Event) -> Alert, mode = append {
                events
                    .group_by(user)
                    .flat_map_groups_with_state(alerts)
                    .filter(clicks > 1)
                    .drop_duplicates(user, kind)
            }
        }));
    }

    /// A watermark on a group-state function's records (a query without one before it) and
    /// an append-mode window count over them: the watermark observes the records.
    #[test]
    fn group_state_then_window_plan() {
        insta::assert_snapshot!(plan_of(quote! {
            query Q(events: Event) -> ClicksWindow, mode = append {
                events
                    .group_by(user)
                    .flat_map_groups_with_state(latest, output_mode = append)
                    .with_watermark(at, "0 seconds")
                    .group_by(window(at, "10 seconds"))
                    .agg(count() as n, sum(events) as events)
            }
        }));
    }

    /// Group state over a stream-stream join's matches, made records by a map: the join's
    /// emitted rows go through the map into the function's groups.
    #[test]
    fn stream_join_then_group_state_plan() {
        insta::assert_snapshot!(plan_of(quote! {
            query Q(impressions: Impression, clicks: Click) -> AdClicks, mode = update {
                impressions
                    .with_watermark(impressionTime, "2 hours")
                    .join(
                        clicks.with_watermark(clickTime, "3 hours"),
                        impressionAdId = clicks.clickAdId,
                        on = clicks.clickTime >= impressionTime && clicks.clickTime <= impressionTime + "1 hour",
                    )
                    .select(adId = impressionAdId, time = clicks.clickTime)
                    .map_rows(|r: &AdAt| r.clone())
                    .group_by(adId)
                    .flat_map_groups_with_state(ad_clicks)
            }
        }));
    }

    /// `transform_with_state`'s records into an aggregation, through a filter.
    #[test]
    fn transform_with_state_then_aggregate_plan() {
        insta::assert_snapshot!(plan_of(quote! {
            query Q(events: Event) -> AlertCount, mode = update {
                events
                    .with_watermark(time, "2 seconds")
                    .group_by(user)
                    .transform_with_state(Quiet::default(), time_mode = event_time)
                    .filter(events > 1)
                    .group_by(user)
                    .agg(count() as alerts, max(events) as events)
            }
        }));
    }

    /// The expansion: the processor's records collected, then folded into the aggregation one
    /// by one, each column read from the record.
    #[test]
    fn transform_with_state_then_aggregate_expansion() {
        let file: syn::File = syn::parse2(super::compile(quote! {
            query Q(events: Event) -> AlertCount, mode = update {
                events
                    .group_by(user)
                    .transform_with_state(Quiet::default(), time_mode = none)
                    .filter(events > 1)
                    .group_by(user)
                    .agg(count() as alerts)
            }
        }))
        .unwrap();
        insta::assert_snapshot!(prettyplease::unparse(&file));
    }

    /// The expansion of a flat map's records into the output through a dedup: pushed whole.
    #[test]
    fn group_state_then_dedup_expansion() {
        let file: syn::File = syn::parse2(super::compile(quote! {
            query Q(events: Event) -> Alert, mode = append {
                events.group_by(user).flat_map_groups_with_state(alerts).drop_duplicates(user, kind)
            }
        }))
        .unwrap();
        insta::assert_snapshot!(prettyplease::unparse(&file));
    }

    /// The expansion of a `transform_with_state` query: the operator built from the processor
    /// expression, the row loop into it, its run per batch.
    #[test]
    fn transform_with_state_expansion() {
        let file: syn::File = syn::parse2(super::compile(quote! {
            query S(events: Event) -> SessionEnd, mode = update {
                events
                    .group_by(user, device)
                    .transform_with_state(Sessions::default(), time_mode = processing_time)
            }
        }))
        .unwrap();
        insta::assert_snapshot!(prettyplease::unparse(&file));
    }

    /// A flat map with an initial state: the plan names it (applied in batch 0); the
    /// expansion passes it to the run after the function, as pairs keyed like the batch's rows.
    #[test]
    fn group_state_initial_state_plan_and_run() {
        let q = quote! {
            query C(events: Event) -> Count, mode = update {
                events.group_by(user).flat_map_groups_with_state(count_from, initial_state = load_counts())
            }
        };
        insta::assert_snapshot!(plan_of(q.clone()));
        let file: syn::File = syn::parse2(super::compile(q)).unwrap();
        let text = prettyplease::unparse(&file);
        let at = text.find("run_with_initial_state").expect("the run takes the initial state");
        insta::assert_snapshot!(text[at..].lines().take(26).collect::<Vec<_>>().join("\n"));
    }

    /// A stream-static left outer join with an extra condition, then a projection.
    #[test]
    fn stream_static_join_plan() {
        insta::assert_snapshot!(plan_of(quote! {
            query J(orders: Order, prices: static Price) -> Priced, mode = append {
                orders
                    .join(prices, product = prices.sku, kind = left_outer, on = qty >= prices.min_qty)
                    .select(id, label = prices.label, total = prices.unit.map(|u| u * qty as f64))
            }
        }));
    }

    /// The guide's stream-stream left outer join: two input pipelines into the join (the left
    /// side first), the state watermark each side gets from the time range, the columns each
    /// side buffers, and the output pipeline from the join's rows.
    fn stream_join() -> proc_macro2::TokenStream {
        quote! {
            query J(impressions: Impression, clicks: Click) -> AdClick, mode = append {
                impressions
                    .with_watermark(impressionTime, "2 hours")
                    .join(
                        clicks.with_watermark(clickTime, "3 hours").filter(clickAdId.is_some()),
                        impressionAdId = clicks.clickAdId,
                        kind = left_outer,
                        on = clicks.clickTime >= impressionTime && clicks.clickTime <= impressionTime + "1 hour",
                    )
                    .select(impressionAdId, impressionTime, clickTime = clicks.clickTime)
            }
        }
    }

    #[test]
    fn stream_join_plan() {
        insta::assert_snapshot!(plan_of(stream_join()));
    }

    #[test]
    fn stream_join_expansion() {
        let out = super::compile(stream_join());
        let file: syn::File = syn::parse2(out).expect("the expansion parses as Rust");
        insta::assert_snapshot!(prettyplease::unparse(&file));
    }

    /// Two stateful operators after each other: a stream-stream join, then an aggregation fed
    /// by its rows, which sees the join's output watermark.
    fn join_then_aggregate() -> proc_macro2::TokenStream {
        quote! {
            query HourlyMatches(impressions: Impression, clicks: Click) -> Hourly, mode = append {
                impressions
                    .with_watermark(impressionTime, "2 hours")
                    .join(
                        clicks.with_watermark(clickTime, "3 hours"),
                        impressionAdId = clicks.clickAdId,
                        on = clicks.clickTime >= impressionTime && clicks.clickTime <= impressionTime + "1 hour",
                    )
                    .group_by(window(impressionTime, "1 hour"))
                    .agg(count() as n, count(clicks.clickTime) as clicks)
            }
        }
    }

    #[test]
    fn join_then_aggregate_plan() {
        insta::assert_snapshot!(plan_of(join_then_aggregate()));
    }

    #[test]
    fn join_then_aggregate_expansion() {
        let out = super::compile(join_then_aggregate());
        let file: syn::File = syn::parse2(out).expect("the expansion parses as Rust");
        insta::assert_snapshot!(prettyplease::unparse(&file));
    }

    /// Two stream-stream joins in a row: the second's left side is a pass over the first's
    /// pairs, and its watermark is the first's output watermark.
    #[test]
    fn join_then_join_plan() {
        insta::assert_snapshot!(plan_of(quote! {
            query ClickedThenBought(impressions: Impression, clicks: Click, buys: Buy) -> ClickBuy, mode = append {
                impressions
                    .with_watermark(impressionTime, "2 hours")
                    .join(
                        clicks.with_watermark(clickTime, "3 hours"),
                        impressionAdId = clicks.clickAdId,
                        on = clicks.clickTime >= impressionTime && clicks.clickTime <= impressionTime + "1 hour",
                    )
                    .select(impressionAdId, impressionTime, clickAdId = clicks.clickAdId)
                    .join(
                        buys.with_watermark(buyTime, "1 hour"),
                        clickAdId = buys.buyAdId,
                        kind = left_outer,
                        on = buys.buyTime >= impressionTime && buys.buyTime <= impressionTime + "90 minutes",
                    )
                    .select(impressionAdId, clickAdId, buyTime = buys.buyTime)
            }
        }));
    }

    /// Chained aggregations (append mode): a window count, then a coarser window over
    /// `window_time(window)`; and a dedup of the second one's rows.
    #[test]
    fn chained_aggregation_plan() {
        insta::assert_snapshot!(plan_of(quote! {
            query HalfHours(events: Word) -> Totals, mode = append {
                events
                    .with_watermark(ts, "10 minutes")
                    .group_by(window(ts, "10 minutes"), word)
                    .agg(count() as n)
                    .group_by(window(window_time(window), "30 minutes"))
                    .agg(sum(n) as total)
                    .drop_duplicates(total)
            }
        }));
    }

    /// A union of two inputs with their own watermarks into one aggregation: a pipeline per
    /// input, the second feeding the same batch of the state.
    #[test]
    fn union_plan() {
        insta::assert_snapshot!(plan_of(quote! {
            query U(a: Word, b: Word) -> WindowCount, mode = append {
                a
                    .with_watermark(ts, "10 minutes")
                    .union(b.with_watermark(ts, "5 minutes").filter(word.is_some()))
                    .group_by(window(ts, "10 minutes"))
                    .agg(count() as count)
            }
        }));
    }

    /// Top-N: the word count's top 3 per trigger in complete mode.
    #[test]
    fn top_n_plan() {
        insta::assert_snapshot!(plan_of(quote! {
            query TopWords(lines: Line) -> WordCount, mode = complete {
                lines
                    .flat_map(word = split(value, " "))
                    .group_by(word)
                    .agg(count() as count)
                    .order_by(desc(count), word)
                    .limit(3)
            }
        }));
    }

    /// `limit` on a stream in append mode: Spark's global limit, a stateful filter.
    #[test]
    fn global_limit_plan() {
        insta::assert_snapshot!(plan_of(quote! {
            query L(events: Event) -> Out, mode = append {
                events.filter(n > 0).select(id, n).limit(10)
            }
        }));
    }

    /// The aggregates after the first five: each becomes its own accumulator in the plan.
    #[test]
    fn more_aggregates_plan() {
        insta::assert_snapshot!(plan_of(quote! {
            query A(readings: Reading) -> Stats, mode = update {
                readings
                    .group_by(sensor)
                    .agg(
                        first(v) as first_v,
                        last(v, true) as last_v,
                        collect_list(v) as vs,
                        collect_set(word) as words,
                        approx_count_distinct(word) as n_words,
                        stddev(v) as sd,
                        variance(v) as var,
                    )
            }
        }));
    }

    /// The emitted accumulators and their updates (the type of each is left to rustc).
    #[test]
    fn more_aggregates_expansion() {
        let out = super::compile(quote! {
            query A(readings: Reading) -> Stats, mode = update {
                readings
                    .group_by(sensor)
                    .agg(first(v, true) as first_v, collect_set(word) as words, approx_count_distinct(word) as n, stddev_pop(v) as sd)
            }
        });
        let file: syn::File = syn::parse2(out).expect("the expansion parses as Rust");
        insta::assert_snapshot!(prettyplease::unparse(&file));
    }

    /// The code of a two-operator query: the dedup check inside the aggregation's row loop.
    #[test]
    fn dedup_then_aggregate_expansion() {
        let out = super::compile(quote! {
            query T(events: Event) -> WindowCount, mode = append {
                events
                    .with_watermark(ts, "10 minutes")
                    .drop_duplicates(id, ts)
                    .group_by(window(ts, "10 minutes"))
                    .agg(count() as count)
            }
        });
        let file: syn::File = syn::parse2(out).expect("the expansion parses as Rust");
        insta::assert_snapshot!(prettyplease::unparse(&file));
    }

    /// The seed's device example with typed operations: a filter over the row view, a flat map
    /// to records, column operators over the records' columns, into an aggregation.
    fn typed_rows() -> proc_macro2::TokenStream {
        quote! {
            query DeviceTypes(lines: Line) -> TypeCount, mode = complete {
                lines
                    .filter_rows(|l| !l.value.is_empty())
                    .flat_map_rows(parse_device)
                    .filter(signal > 10.0)
                    .group_by(device_type)
                    .agg(count() as n, max(signal) as strongest)
            }
        }
    }

    #[test]
    fn typed_rows_plan() {
        insta::assert_snapshot!(plan_of(typed_rows()));
    }

    #[test]
    fn typed_rows_expansion() {
        let out = super::compile(typed_rows());
        let file: syn::File = syn::parse2(out).expect("the expansion parses as Rust");
        insta::assert_snapshot!(prettyplease::unparse(&file));
    }

    /// A map's records to the output whole, and a map into column operators.
    #[test]
    fn typed_rows_to_output_plan() {
        insta::assert_snapshot!(plan_of(quote! {
            query Parsed(lines: Line) -> DeviceData, mode = append {
                lines.map_rows(|l| parse(l)).filter(signal >= 0.0)
            }
            query Loud(lines: Line) -> Strong, mode = append {
                lines.map_rows(parse).with_column(loud = signal > 20.0).select(device, loud)
            }
        }));
    }

    /// A map's records into a stream-stream join's left side.
    fn map_then_stream_join() -> proc_macro2::TokenStream {
        quote! {
            query Alerted(lines: Line, alerts: Alert) -> AlertedReading, mode = append {
                lines
                    .flat_map_rows(parse_device)
                    .with_watermark(time, "1 minute")
                    .join(
                        alerts.with_watermark(time, "1 minute"),
                        device = alerts.device,
                        on = alerts.time >= time && alerts.time <= time + "1 minute",
                    )
                    .select(device, signal, alert_time = alerts.time)
            }
        }
    }

    #[test]
    fn map_then_stream_join_plan() {
        insta::assert_snapshot!(plan_of(map_then_stream_join()));
    }

    #[test]
    fn map_then_stream_join_expansion() {
        let out = super::compile(map_then_stream_join());
        let file: syn::File = syn::parse2(out).expect("the expansion parses as Rust");
        insta::assert_snapshot!(prettyplease::unparse(&file));
    }

    /// Operators after stateful operators: a stream-stream join's rows through a dedup (by the
    /// join's output watermark), an aggregation's through a static join.
    fn join_then_dedup() -> proc_macro2::TokenStream {
        quote! {
            query ClickedOnce(impressions: Impression, clicks: Click) -> ImpressionOnly, mode = append {
                impressions
                    .with_watermark(impressionTime, "2 hours")
                    .join(
                        clicks.with_watermark(clickTime, "3 hours"),
                        impressionAdId = clicks.clickAdId,
                        on = clicks.clickTime >= impressionTime && clicks.clickTime <= impressionTime + "1 hour",
                    )
                    .select(impressionAdId, impressionTime)
                    .drop_duplicates(impressionAdId, impressionTime)
            }
        }
    }

    #[test]
    fn join_then_dedup_plan() {
        insta::assert_snapshot!(plan_of(join_then_dedup()));
    }

    #[test]
    fn join_then_dedup_expansion() {
        let out = super::compile(join_then_dedup());
        let file: syn::File = syn::parse2(out).expect("the expansion parses as Rust");
        insta::assert_snapshot!(prettyplease::unparse(&file));
    }

    #[test]
    fn aggregate_then_static_join_plan() {
        insta::assert_snapshot!(plan_of(quote! {
            query Totals(orders: Order, products: static Product) -> ProductTotals, mode = update {
                orders
                    .group_by(product_id)
                    .agg(count() as n, sum(qty) as qty)
                    .join(products, product_id)
                    .select(product_id, name = products.name, n, qty)
            }
        }));
    }

    #[test]
    fn aggregate_then_stream_join_plan() {
        insta::assert_snapshot!(plan_of(quote! {
            query HourlyClicks(impressions: Impression, clicks: Click) -> HourClick, mode = append {
                impressions
                    .with_watermark(impressionTime, "2 hours")
                    .group_by(window(impressionTime, "1 hour"), impressionAdId)
                    .agg(count() as n)
                    .join(
                        clicks.with_watermark(clickTime, "3 hours"),
                        impressionAdId = clicks.clickAdId,
                        on = clicks.clickTime.is_some_and(|t| t >= window.start && t < window.end),
                    )
                    .select(impressionAdId, hour = window.start, n, clickTime = clicks.clickTime)
            }
        }));
    }

    /// Nexmark q7's shape: the aggregation's window is a join key against the other stream's
    /// window, so both sides are evicted by it.
    #[test]
    fn window_max_then_stream_join_on_window_plan() {
        insta::assert_snapshot!(plan_of(quote! {
            query HighestBids(maxes: MaxBid, bids: PricedBid) -> PricedBid, mode = append {
                maxes
                    .with_watermark(mTime, "10 seconds")
                    .group_by(window(mTime, "1 minute"))
                    .agg(max(mPrice) as maxprice)
                    .join(
                        bids.with_watermark(bidTime, "10 seconds"),
                        window = window(bids.bidTime, "1 minute"),
                        maxprice = bids.price,
                    )
                    .select(auction = bids.auction, price = bids.price, bidTime = bids.bidTime)
            }
        }));
    }

    #[test]
    fn union_then_stream_join_plan() {
        insta::assert_snapshot!(plan_of(quote! {
            query UnionAdClicks(impressions: Impression, more: Impression, clicks: Click) -> AdClick, mode = append {
                impressions
                    .with_watermark(impressionTime, "2 hours")
                    .union(more.with_watermark(impressionTime, "2 hours"))
                    .join(
                        clicks.with_watermark(clickTime, "3 hours"),
                        impressionAdId = clicks.clickAdId,
                        on = clicks.clickTime >= impressionTime && clicks.clickTime <= impressionTime + "1 hour",
                    )
                    .select(impressionAdId, impressionTime, clickAdId = clicks.clickAdId, clickTime = clicks.clickTime)
            }
        }));
    }

    #[test]
    fn aggregate_then_map_rows_plan() {
        insta::assert_snapshot!(plan_of(quote! {
            query TypeLabels(lines: Line) -> TypeSummary, mode = complete {
                lines
                    .flat_map_rows(parse_device)
                    .group_by(device_type)
                    .agg(count() as n, max(signal) as strongest)
                    .map_rows(|r: &TypeCount| TypeSummary { device_type: r.device_type.clone(), label: String::new() })
            }
        }));
    }

    #[test]
    fn stream_join_then_map_rows_plan() {
        insta::assert_snapshot!(plan_of(quote! {
            query AlertLines(lines: Line, alerts: Alert) -> AlertLine, mode = append {
                lines
                    .flat_map_rows(parse_device)
                    .with_watermark(time, "1 minute")
                    .join(
                        alerts.with_watermark(time, "1 minute"),
                        device = alerts.device,
                        on = alerts.time >= time && alerts.time <= time + "1 minute",
                    )
                    .select(device, signal, alert_time = alerts.time)
                    .map_rows(|r: &AlertedSignal| AlertLine { line: r.device.clone(), late_secs: 0 })
                    .filter_rows(|a| a.late_secs > 0)
            }
        }));
    }

    #[test]
    fn stream_join_then_union_plan() {
        insta::assert_snapshot!(plan_of(quote! {
            query MatchesAndDirect(impressions: Impression, clicks: Click, direct: AdAt) -> AdAt, mode = append {
                impressions
                    .with_watermark(impressionTime, "2 hours")
                    .join(
                        clicks.with_watermark(clickTime, "3 hours"),
                        impressionAdId = clicks.clickAdId,
                        on = clicks.clickTime >= impressionTime && clicks.clickTime <= impressionTime + "1 hour",
                    )
                    .select(adId = impressionAdId, time = clicks.clickTime)
                    .union(direct.with_watermark(time, "1 hour"))
                    .filter(adId.is_some())
            }
        }));
    }

    #[test]
    fn map_then_group_state_plan() {
        insta::assert_snapshot!(plan_of(quote! {
            query DeviceSummaries(lines: Line) -> DeviceSummary, mode = update {
                lines
                    .flat_map_rows(parse_device)
                    .group_by(device)
                    .map_groups_with_state(summarize, timeout = none)
            }
        }));
    }

    #[test]
    fn errors_are_collected_not_first_wins() {
        let out = super::compile(quote! {
            query Q(lines: Line) -> Out, mode = complete {
                lines.fliter(x).select(a = count())
            }
        })
        .to_string();
        assert!(out.contains("unknown operator `fliter`"), "{out}");
        assert!(out.contains("aggregate function `count`"), "{out}");
        assert!(out.contains("complete mode needs an aggregation"), "{out}");
        assert!(out.contains("struct Q"), "the fallback items are still emitted: {out}");
    }
}
