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
    query Q(lines: Line, more: DeviceData) -> DeviceData, mode = append {
        // The union's other input has no `Line` rows for the second map to call `parse` on.
        lines.map_rows(parse).union(more).map_rows(|d| DeviceData { device: d.device.clone(), signal: d.signal * 2.0 })
    }
}

fn main() {}
