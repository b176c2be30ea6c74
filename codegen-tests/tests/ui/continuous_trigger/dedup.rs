//! A continuous trigger on a query with a deduplication.
use flowgate::prelude::*;

#[derive(Record)]
struct Sale {
    shop: String,
    units: i64,
}

stream_query! {
    query FirstSales(sales: Sale) -> Sale, mode = append {
        sales.filter(units > 0).drop_duplicates(shop)
    }
}

fn main() {
    let input = MemoryStream::<Sale>::new();
    let _ = FirstSales::builder()
        .sales(Source::memory(&input))
        .sink(Sink::console())
        .trigger(Trigger::continuous("1 second"))
        .start();
}
