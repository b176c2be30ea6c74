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
    query Q(lines: Line, more: Line) -> DeviceData, mode = append {
        // `more` gives `Line` rows, the map `DeviceData` records: a union needs one type.
        lines.map_rows(parse).union(more)
    }
}

fn main() {}
