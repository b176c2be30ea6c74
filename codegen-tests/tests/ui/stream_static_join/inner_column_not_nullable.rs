use flowgate::prelude::*;

#[derive(Record)]
struct Order {
    id: i64,
    product: String,
    qty: i64,
}

#[derive(Record)]
struct Product {
    product: String,
    name: String,
}

#[derive(Record)]
struct Line {
    id: i64,
    name: Option<String>,
}

stream_query! {
    // An inner join gives `name` as `&str`: the output field `Option<String>` takes it, a
    // left outer join gives `Option<&str>`; a misspelled static column is rustc's error.
    query Q(orders: Order, products: static Product) -> Line, mode = append {
        orders.join(products, product).select(id, name = products.nmae)
    }
}

fn main() {}
