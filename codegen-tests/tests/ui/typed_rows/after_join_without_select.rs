use flowgate::prelude::*;

#[derive(Record)]
struct Order {
    product_id: String,
    qty: i64,
}

#[derive(Record)]
struct Product {
    product_id: String,
    name: String,
}

stream_query! {
    // After a join the rows are the stream's columns and the table's: `select` the ones the
    // record has, then name its type.
    query Q(orders: Order, products: static Product) -> Order, mode = append {
        orders.join(products, product_id).map_rows(|o: &Order| Order { product_id: o.product_id.clone(), qty: o.qty * 2 })
    }
}

fn main() {}
