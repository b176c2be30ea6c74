use flowgate::prelude::*;

#[derive(Record)]
struct Line {
    value: String,
}

#[derive(Record)]
struct DeviceData {
    device: String,
    signal: f64,
}

fn parse(line: flowgate::record::RowRef<'_, Line>) -> DeviceData {
    DeviceData { device: line.value.to_string(), signal: line.value.len() as f64 }
}

#[derive(Record)]
struct Count {
    value: String,
    n: i64,
}

stream_query! {
    // Sorting the records a map made of an aggregation's rows is not built yet.
    query Q(lines: Line) -> Count, mode = complete {
        lines
            .group_by(value)
            .agg(count() as n)
            .map_rows(|c: &Count| Count { value: c.value.to_uppercase(), n: c.n })
            .order_by(n)
    }
}

fn main() {}
