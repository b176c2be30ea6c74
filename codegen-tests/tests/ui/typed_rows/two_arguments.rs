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

stream_query! {
    query Q(lines: Line) -> DeviceData, mode = append {
        lines.map_rows(|l, i| parse(l)).filter(signal > 0.0)
    }
}

fn main() {}
