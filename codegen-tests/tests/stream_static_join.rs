//! Stream-static joins end to end: keys with other names on each side, an extra condition,
//! several matches per row, null keys, nullable padding in a left outer join, a static table
//! given in memory, and the result checked against a join computed here by nested loops.

use flowgate::prelude::*;

#[derive(Record, Clone, Debug)]
struct Order {
    id: i64,
    product: Option<String>,
    qty: i64,
}

#[derive(Record, Clone, Debug)]
struct Price {
    sku: Option<String>,
    min_qty: i64,
    unit: f64,
    label: String,
}

#[derive(Record, Debug, PartialEq, PartialOrd, Clone)]
struct Priced {
    id: i64,
    label: Option<String>,
    total: Option<f64>,
}

stream_query! {
    /// Each order with every price row of its product whose minimum quantity it reaches.
    query Tiered(orders: Order, prices: static Price) -> Priced, mode = append {
        orders
            .join(prices, product = prices.sku, kind = left_outer, on = qty >= prices.min_qty)
            .filter(id != 13)
            .select(id, label = prices.label, total = prices.unit.map(|u| u * qty as f64))
    }

    /// The same as an inner join.
    query TieredInner(orders: Order, prices: static Price) -> Priced, mode = append {
        orders
            .join(prices, product = prices.sku, on = qty >= prices.min_qty)
            .select(id, label = Some(prices.label), total = Some(prices.unit * qty as f64))
    }
}

fn prices() -> Vec<Price> {
    let p = |sku: Option<&str>, min_qty, unit, label: &str| Price {
        sku: sku.map(String::from),
        min_qty,
        unit,
        label: label.into(),
    };
    vec![
        p(Some("a"), 1, 2.0, "a-single"),
        p(Some("a"), 10, 1.5, "a-bulk"),
        p(Some("b"), 5, 3.0, "b-five"),
        p(None, 1, 100.0, "no-sku"),
    ]
}

fn orders() -> Vec<Order> {
    (0..40)
        .map(|i| Order {
            id: i,
            product: match i % 4 {
                0 => Some("a".into()),
                1 => Some("b".into()),
                2 => None,
                _ => Some("zzz".into()),
            },
            qty: i % 13,
        })
        .collect()
}

/// The join by nested loops, as SQL defines it.
fn expected(outer: bool) -> Vec<Priced> {
    let mut out = Vec::new();
    for o in orders() {
        let matches: Vec<Price> =
            prices().into_iter().filter(|p| p.sku.is_some() && p.sku == o.product && o.qty >= p.min_qty).collect();
        if matches.is_empty() && outer {
            out.push(Priced { id: o.id, label: None, total: None });
        }
        for p in matches {
            out.push(Priced { id: o.id, label: Some(p.label.clone()), total: Some(p.unit * o.qty as f64) });
        }
    }
    if outer {
        out.retain(|r| r.id != 13);
    }
    out.sort_by(|a, b| a.partial_cmp(b).unwrap());
    out
}

fn run(outer: bool) -> Vec<Priced> {
    let input = MemoryStream::<Order>::new();
    let table = MemoryStream::<Price>::new();
    table.add(prices());
    let sink = MemoryTable::new();
    let query = if outer {
        Tiered::builder()
            .orders(Source::memory(&input))
            .prices(Source::memory(&table))
            .sink(Sink::memory(&sink))
            .start()
    } else {
        TieredInner::builder()
            .orders(Source::memory(&input))
            .prices(Source::memory(&table))
            .sink(Sink::memory(&sink))
            .start()
    }
    .unwrap();
    let all = orders();
    input.add(all[..25].to_vec());
    query.process_all_available().unwrap();
    input.add(all[25..].to_vec());
    query.process_all_available().unwrap();
    query.stop().unwrap();
    let mut rows: Vec<Priced> = sink.rows().unwrap();
    rows.sort_by(|a, b| a.partial_cmp(b).unwrap());
    rows
}

#[test]
fn a_left_outer_join_with_a_condition_gives_what_nested_loops_give() {
    let got = run(true);
    assert_eq!(got, expected(true));
    assert!(got.iter().any(|r| r.label.is_none()), "unmatched orders are padded");
    assert!(got.iter().filter(|r| r.id == 12).count() == 2, "order 12 reaches both tiers of a");
}

#[test]
fn an_inner_join_with_a_condition_gives_what_nested_loops_give() {
    assert_eq!(run(false), expected(false));
}
