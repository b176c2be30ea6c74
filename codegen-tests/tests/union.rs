//! `union` end to end: two streams of one record through filters, projections, a dedup and an
//! aggregation shared by both, checked against answers computed here.

use std::collections::BTreeMap;

use flowgate::prelude::*;

#[derive(Record, Clone, Debug, PartialEq, PartialOrd)]
struct Sale {
    shop: String,
    units: i64,
}

#[derive(Record, Debug, PartialEq, PartialOrd)]
struct Named {
    shop: String,
    double: i64,
}

#[derive(Record, Debug, PartialEq, PartialOrd)]
struct Total {
    shop: String,
    units: i64,
}

stream_query! {
    /// Both streams' rows, the second filtered first.
    query Both(web: Sale, store: Sale) -> Sale, mode = append {
        web.union(store.filter(units > 0)).filter(units < 1000)
    }

    /// A projection over the union: each input's pipeline builds its own columns.
    query Doubled(web: Sale, store: Sale) -> Named, mode = append {
        web.union(store).select(shop, double = units * 2)
    }

    /// One dedup over both inputs.
    query FirstOfEach(web: Sale, store: Sale) -> Sale, mode = append {
        web.union(store).drop_duplicates(shop, units)
    }

    /// One aggregation over both inputs (update mode: the groups either input changed).
    query Totals(web: Sale, store: Sale) -> Total, mode = update {
        web.union(store).group_by(shop).agg(sum(units) as units)
    }
}

fn sales(n: usize, seed: i64) -> Vec<Sale> {
    (0..n)
        .map(|i| Sale { shop: format!("s{}", (i as i64 * 7 + seed) % 50), units: (i as i64 * 13 + seed) % 2000 - 10 })
        .collect()
}

fn run<T: Record + PartialOrd>(
    builder: impl FnOnce(&MemoryStream<Sale>, &MemoryStream<Sale>, &MemoryTable) -> StreamingQuery,
    a: &[Sale],
    b: &[Sale],
) -> Vec<T> {
    // Both inputs' rows are there before the query starts: one batch holds them all.
    let (web, store, table) = (MemoryStream::<Sale>::new(), MemoryStream::<Sale>::new(), MemoryTable::new());
    web.add(a.to_vec());
    store.add(b.to_vec());
    let q = builder(&web, &store, &table);
    q.process_all_available().unwrap();
    q.stop().unwrap();
    let mut rows: Vec<T> = table.rows().unwrap();
    rows.sort_by(|x, y| x.partial_cmp(y).unwrap());
    rows
}

#[test]
fn filters_before_and_after_the_union_apply_where_written() {
    let (a, b) = (sales(500, 1), sales(500, 2));
    let got: Vec<Sale> = run(
        |w, s, t| {
            Both::builder().web(Source::memory(w)).store(Source::memory(s)).sink(Sink::memory(t)).start().unwrap()
        },
        &a,
        &b,
    );
    let mut want: Vec<Sale> =
        a.iter().cloned().chain(b.iter().filter(|s| s.units > 0).cloned()).filter(|s| s.units < 1000).collect();
    want.sort_by(|x, y| x.partial_cmp(y).unwrap());
    assert_eq!(got, want);
}

#[test]
fn a_projection_runs_over_both_inputs() {
    let (a, b) = (sales(300, 3), sales(200, 4));
    let got: Vec<Named> = run(
        |w, s, t| {
            Doubled::builder().web(Source::memory(w)).store(Source::memory(s)).sink(Sink::memory(t)).start().unwrap()
        },
        &a,
        &b,
    );
    let mut want: Vec<Named> =
        a.iter().chain(&b).map(|s| Named { shop: s.shop.clone(), double: s.units * 2 }).collect();
    want.sort_by(|x, y| x.partial_cmp(y).unwrap());
    assert_eq!(got, want);
}

#[test]
fn one_dedup_sees_both_inputs() {
    let a = sales(400, 5);
    let b: Vec<Sale> = a.iter().step_by(3).cloned().chain(sales(100, 6)).collect();
    let got: Vec<Sale> = run(
        |w, s, t| {
            FirstOfEach::builder()
                .web(Source::memory(w))
                .store(Source::memory(s))
                .sink(Sink::memory(t))
                .start()
                .unwrap()
        },
        &a,
        &b,
    );
    let mut want: Vec<Sale> = Vec::new();
    for s in a.iter().chain(&b) {
        if !want.contains(s) {
            want.push(s.clone());
        }
    }
    want.sort_by(|x, y| x.partial_cmp(y).unwrap());
    assert_eq!(got, want);
}

#[test]
fn one_aggregation_sums_both_inputs_also_on_the_parallel_path() {
    // 200 K rows per input: above the size where aggregation runs partial-then-final.
    let (a, b) = (sales(200_000, 7), sales(150_000, 8));
    // One batch of 350 K rows: the aggregation's partial-then-final path on a machine with
    // several cores (the state's own unit test pins both paths on a 2-thread pool).
    let got: Vec<Total> = run(
        |w, s, t| {
            Totals::builder().web(Source::memory(w)).store(Source::memory(s)).sink(Sink::memory(t)).start().unwrap()
        },
        &a,
        &b,
    );
    let mut sums: BTreeMap<String, i64> = BTreeMap::new();
    for s in a.iter().chain(&b) {
        *sums.entry(s.shop.clone()).or_default() += s.units;
    }
    let want: Vec<Total> = sums.into_iter().map(|(shop, units)| Total { shop, units }).collect();
    assert_eq!(got, want);
}
