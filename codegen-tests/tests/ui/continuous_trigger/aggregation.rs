//! A continuous trigger on a query with an aggregation: rustc names the operator in the way.
use flowgate::prelude::*;

#[derive(Record)]
struct Sale {
    shop: String,
    units: i64,
}

#[derive(Record)]
struct Total {
    shop: String,
    units: i64,
}

stream_query! {
    query Totals(sales: Sale) -> Total, mode = update {
        sales.group_by(shop).agg(sum(units) as units)
    }
}

fn main() {
    let input = MemoryStream::<Sale>::new();
    let _ = Totals::builder()
        .sales(Source::memory(&input))
        .sink(Sink::console())
        .trigger(Trigger::continuous("1 second"))
        .start();
}
