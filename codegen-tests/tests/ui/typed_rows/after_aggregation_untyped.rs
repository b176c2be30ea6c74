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
    // The function must name the record type the aggregation's rows become.
    query Q(lines: Line) -> Count, mode = complete {
        lines.group_by(value).agg(count() as n).filter_rows(|c| c.n > 1)
    }
}

fn main() {}
