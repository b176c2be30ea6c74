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
    query Q(orders: Order, products: static Product) -> Line, mode = append {
        orders.join(products, on = qty > 1).select(id, name = products.name)
    }
}

fn main() {}
