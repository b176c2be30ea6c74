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

#[derive(Record)]
struct Total {
    value: String,
    total: i64,
}

stream_query! {
    // `Count` has no field `total`: the aggregation's columns are `value` and `total`.
    query Q(lines: Line) -> Total, mode = complete {
        lines.group_by(value).agg(count() as total).filter_rows(|c: &Count| c.n > 1)
    }
}

fn main() {}
