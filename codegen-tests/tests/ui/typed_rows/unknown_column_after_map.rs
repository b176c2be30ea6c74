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
struct Out {
    device: String,
}

stream_query! {
    query Q(lines: Line) -> Out, mode = append {
        lines.map_rows(parse).filter(signl > 1.0).select(device)
    }
}

fn main() {}
