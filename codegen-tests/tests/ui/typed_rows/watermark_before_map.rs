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
struct Event {
    value: String,
    ts: Timestamp,
}

fn parse_event(e: flowgate::record::RowRef<'_, Event>) -> DeviceData {
    DeviceData { device: e.value.to_string(), signal: 0.0 }
}

stream_query! {
    query Q(events: Event) -> DeviceData, mode = append {
        events.with_watermark(ts, "1 minute").map_rows(parse_event)
    }
}

fn main() {}
