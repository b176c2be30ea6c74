//! Typed Dataset operations: `map_rows` / `flat_map_rows` / `filter_rows` with a Rust function
//! over the whole record, fused with the column operators. The seed's device example (socket
//! lines → `DeviceData`) written as Spark users write it, and each shape of pipeline a typed
//! operation can sit in: to the output whole, into column operators, into an aggregation,
//! into a deduplication, chained, and a filter alone (the input rows passed through by mask).

use arrow_array::RecordBatch;
use flowgate::engine::{BatchContext, PlanConfig, QuerySpec};
use flowgate::prelude::*;
use flowgate::record::RowRef;

/// What the socket source gives: one line of text per row.
#[derive(Record, Clone, Debug, PartialEq)]
struct Line {
    value: String,
}

/// The seed's record.
#[derive(Record, Clone, Debug, PartialEq)]
struct DeviceData {
    device: String,
    device_type: String,
    signal: f64,
    time: Timestamp,
}

#[derive(Record, Debug, Clone, PartialEq)]
struct TypeCount {
    device_type: String,
    n: i64,
    strongest: f64,
}

#[derive(Record, Debug, Clone, PartialEq)]
struct Strong {
    device: String,
    loud: bool,
}

#[derive(Record, Debug, Clone, PartialEq)]
struct Word {
    word: String,
    len: i64,
}

#[derive(Record, Debug, Clone, PartialEq)]
struct WindowCount {
    window: Window,
    device_type: String,
    n: i64,
}

/// `d1 phone 12.5 2024-01-01T12:00:00Z` → a record; a line that does not parse gives none
/// (Spark users write `lines.as[String].flatMap(parse)` for this).
fn parse_device(line: RowRef<'_, Line>) -> Option<DeviceData> {
    let mut parts = line.value.split(' ');
    let device = parts.next()?.to_string();
    let device_type = parts.next()?.to_string();
    let signal = parts.next()?.parse().ok()?;
    let time = Timestamp::parse(parts.next()?).ok()?;
    Some(DeviceData { device, device_type, signal, time })
}

stream_query! {
    /// The seed's device example: lines parsed into records, then column operators over the
    /// records' columns.
    query DeviceTypes(lines: Line) -> TypeCount, mode = complete {
        lines
            .flat_map_rows(parse_device)
            .filter(signal > 10.0)
            .group_by(device_type)
            .agg(count() as n, max(signal) as strongest)
    }

    /// A map's records are the output, pushed whole.
    query Parsed(lines: Line) -> DeviceData, mode = append {
        lines.filter(!value.is_empty()).flat_map_rows(parse_device).filter(signal >= 0.0)
    }

    /// A closure over the row view, then column operators; the names after the map are the
    /// record's, even where the input had the same (`value`).
    query Loud(lines: Line) -> Strong, mode = append {
        lines
            .map_rows(|l| DeviceData {
                device: l.value.split(' ').next().unwrap_or("").to_string(),
                device_type: String::new(),
                signal: l.value.len() as f64,
                time: Timestamp(0),
            })
            .with_column(loud = signal > 20.0)
            .select(device = device.to_uppercase(), loud)
    }

    /// Typed operations chained: a filter over the map's record (by reference), a second map.
    query Chained(lines: Line) -> Strong, mode = append {
        lines
            .filter_rows(|l| !l.value.starts_with('#'))
            .flat_map_rows(parse_device)
            .filter_rows(|d| d.device_type == "phone")
            .map_rows(|d| Strong { device: d.device.clone(), loud: d.signal > 20.0 })
    }

    /// A filter over the row view alone: the input rows pass through by mask.
    query Comments(lines: Line) -> Line, mode = append {
        lines.filter_rows(|l| l.value.starts_with('#'))
    }

    /// A flat map to many records, then a column filter and select.
    query Words(lines: Line) -> Word, mode = append {
        lines
            .flat_map_rows(|l| l.value.split(' ').map(|w| Word { word: w.to_string(), len: w.len() as i64 }).collect::<Vec<_>>())
            .filter(len > 1)
            .select(word, len)
    }

    /// Event time on a column of the map's records, then a windowed aggregation.
    query Windows(lines: Line) -> WindowCount, mode = update {
        lines
            .flat_map_rows(parse_device)
            .with_watermark(time, "10 minutes")
            .group_by(window(time, "1 minute"), device_type)
            .agg(count() as n)
    }

    /// A deduplication on the map's columns.
    query FirstPerDevice(lines: Line) -> DeviceData, mode = append {
        lines.flat_map_rows(parse_device).drop_duplicates(device)
    }

    /// The same as `DeviceTypes`, with column operators only (the reference).
    query DeviceTypesByColumns(lines: Line) -> TypeCount, mode = complete {
        lines
            .with_column(parts = value.split(' ').collect::<Vec<_>>())
            .filter(parts.len() == 4 && parts[2].parse::<f64>().is_ok() && Timestamp::parse(parts[3]).is_ok())
            .with_column(device_type = parts[1].to_string(), signal = parts[2].parse::<f64>().unwrap_or(0.0))
            .filter(signal > 10.0)
            .group_by(device_type)
            .agg(count() as n, max(signal) as strongest)
    }
}

fn run(spec: QuerySpec, batches: Vec<RecordBatch>) -> Vec<RecordBatch> {
    run_mode(spec, batches, OutputMode::Append)
}

fn run_mode(spec: QuerySpec, batches: Vec<RecordBatch>, mode: OutputMode) -> Vec<RecordBatch> {
    let mut plan = (spec.make_plan)(&PlanConfig::with_partitions(2));
    plan.run_batch(&BatchContext::new(0, mode), &[batches]).unwrap()
}

fn rows<R: Record>(out: &[RecordBatch]) -> Vec<R> {
    out.iter().flat_map(|b| R::from_batch(b).unwrap()).collect()
}

fn lines(text: &[&str]) -> Vec<RecordBatch> {
    vec![Line::to_batch(text.iter().map(|t| Line { value: t.to_string() })).unwrap()]
}

const DEVICES: &[&str] = &[
    "d1 phone 12.5 2024-01-01T12:00:00Z",
    "d2 tablet 30.0 2024-01-01T12:00:01Z",
    "not a reading",
    "d3 phone 8.0 2024-01-01T12:00:02Z",
    "d4 phone 20.0 2024-01-01T12:01:03Z",
    "d1 phone 25.0 2024-01-01T12:01:04Z",
    "d5 tablet x 2024-01-01T12:00:05Z",
];

fn sorted_counts(out: &[RecordBatch]) -> Vec<TypeCount> {
    let mut r: Vec<TypeCount> = rows(out);
    r.sort_by(|a, b| a.device_type.cmp(&b.device_type));
    r
}

#[test]
fn the_seed_device_example_parses_lines_into_records_and_aggregates_their_columns() {
    let out = run_mode(DeviceTypes::spec(), lines(DEVICES), OutputMode::Complete);
    assert_eq!(
        sorted_counts(&out),
        [
            TypeCount { device_type: "phone".into(), n: 3, strongest: 25.0 },
            TypeCount { device_type: "tablet".into(), n: 1, strongest: 30.0 },
        ]
    );
}

#[test]
fn typed_and_column_operators_agree_on_many_rows_over_parallel_units() {
    // Enough rows for several work units, so the typed pipeline runs in parallel.
    let text: Vec<String> = (0..200_000)
        .map(|i| match i % 11 {
            0 => format!("bad line {i}"),
            k => format!("d{i} t{} {}.5 2024-01-01T12:{:02}:00Z", k % 4, i % 40, i % 60),
        })
        .collect();
    let refs: Vec<&str> = text.iter().map(String::as_str).collect();
    let typed = sorted_counts(&run_mode(DeviceTypes::spec(), lines(&refs), OutputMode::Complete));
    let columns = sorted_counts(&run_mode(DeviceTypesByColumns::spec(), lines(&refs), OutputMode::Complete));
    assert_eq!(typed.len(), 4);
    assert_eq!(typed, columns);
}

#[test]
fn a_maps_records_are_the_output_whole() {
    let out: Vec<DeviceData> = rows(&run(Parsed::spec(), lines(DEVICES)));
    let devices: Vec<&str> = out.iter().map(|d| d.device.as_str()).collect();
    assert_eq!(devices, ["d1", "d2", "d3", "d4", "d1"]);
    assert_eq!(out[1].time, Timestamp::parse("2024-01-01T12:00:01Z").unwrap());
    assert_eq!(out[1].signal, 30.0);
}

#[test]
fn columns_after_a_map_are_its_records_columns() {
    let out: Vec<Strong> = rows(&run(Loud::spec(), lines(&["ab cd", "a much longer line than twenty"])));
    assert_eq!(out, [Strong { device: "AB".into(), loud: false }, Strong { device: "A".into(), loud: true }]);
}

#[test]
fn typed_operations_chain_by_reference() {
    let mut text = DEVICES.to_vec();
    text.push("# d9 phone 99.0 2024-01-01T12:00:00Z");
    let out: Vec<Strong> = rows(&run(Chained::spec(), lines(&text)));
    assert_eq!(
        out,
        [
            Strong { device: "d1".into(), loud: false },
            Strong { device: "d3".into(), loud: false },
            Strong { device: "d4".into(), loud: false },
            Strong { device: "d1".into(), loud: true },
        ]
    );
}

#[test]
fn a_filter_alone_passes_the_input_rows_through() {
    let out: Vec<Line> = rows(&run(Comments::spec(), lines(&["# a", "b", "#c"])));
    assert_eq!(out, [Line { value: "# a".into() }, Line { value: "#c".into() }]);
    // The source decodes every column: the function reads the row whole.
    assert_eq!(Comments::spec().input_reads, vec![None]);
}

#[test]
fn a_flat_map_makes_any_number_of_records() {
    let out: Vec<Word> = rows(&run(Words::spec(), lines(&["to be or not", "", "x yz"])));
    let words: Vec<&str> = out.iter().map(|w| w.word.as_str()).collect();
    assert_eq!(words, ["to", "be", "or", "not", "yz"]);
}

#[test]
fn event_time_of_a_maps_records_drives_a_window() {
    let out: Vec<WindowCount> = rows(&run_mode(Windows::spec(), lines(DEVICES), OutputMode::Update));
    let mut got: Vec<(i64, String, i64)> =
        out.iter().map(|w| (w.window.start.micros(), w.device_type.clone(), w.n)).collect();
    got.sort();
    let minute = |m: &str| Timestamp::parse(&format!("2024-01-01T12:{m}:00Z")).unwrap().micros();
    assert_eq!(
        got,
        [
            (minute("00"), "phone".to_string(), 2),
            (minute("00"), "tablet".to_string(), 1),
            (minute("01"), "phone".to_string(), 2),
        ]
    );
}

#[test]
fn a_deduplication_keys_on_a_maps_columns() {
    let out: Vec<DeviceData> = rows(&run(FirstPerDevice::spec(), lines(DEVICES)));
    let devices: Vec<(&str, f64)> = out.iter().map(|d| (d.device.as_str(), d.signal)).collect();
    assert_eq!(devices, [("d1", 12.5), ("d2", 30.0), ("d3", 8.0), ("d4", 20.0)]);
}

#[derive(Record, Clone, Debug, PartialEq)]
struct Owner {
    device: String,
    owner: String,
}

#[derive(Record, Clone, Debug, PartialEq)]
struct OwnedReading {
    device: String,
    owner: Option<String>,
    signal: f64,
}

#[derive(Record, Clone, Debug, PartialEq)]
struct Alert {
    device: String,
    time: Timestamp,
}

#[derive(Record, Clone, Debug, PartialEq)]
struct AlertedReading {
    device: String,
    signal: f64,
    alert_time: Timestamp,
}

stream_query! {
    /// A map's records joined with a static table on a column of the records.
    query Owned(lines: Line, owners: static Owner) -> OwnedReading, mode = append {
        lines
            .flat_map_rows(parse_device)
            .join(owners, device, kind = left_outer)
            .select(device, owner = owners.owner, signal)
    }

    /// A map's records joined with another stream (inner, event time within a minute).
    query Alerted(lines: Line, alerts: Alert) -> AlertedReading, mode = append {
        lines
            .flat_map_rows(parse_device)
            .with_watermark(time, "1 minute")
            .join(
                alerts.with_watermark(time, "1 minute"),
                device = alerts.device,
                on = alerts.time >= time && alerts.time <= time + "1 minute",
            )
            .select(device, signal, alert_time = alerts.time)
    }
}

#[test]
fn a_maps_records_join_a_static_table() {
    let owners = MemoryStream::<Owner>::new();
    owners.add([
        Owner { device: "d1".into(), owner: "ann".into() },
        Owner { device: "d2".into(), owner: "bob".into() },
        Owner { device: "d2".into(), owner: "cy".into() },
    ]);
    let input = MemoryStream::<Line>::new();
    input.add(DEVICES.iter().map(|t| Line { value: t.to_string() }));
    let mut out = Owned::batch().lines(Source::memory(&input)).owners(Source::memory(&owners)).run().unwrap();
    out.sort_by(|a, b| (&a.device, &a.owner, a.signal).partial_cmp(&(&b.device, &b.owner, b.signal)).unwrap());
    let got: Vec<(&str, Option<&str>, f64)> =
        out.iter().map(|r| (r.device.as_str(), r.owner.as_deref(), r.signal)).collect();
    assert_eq!(
        got,
        [
            ("d1", Some("ann"), 12.5),
            ("d1", Some("ann"), 25.0),
            ("d2", Some("bob"), 30.0),
            ("d2", Some("cy"), 30.0),
            ("d3", None, 8.0),
            ("d4", None, 20.0),
        ]
    );
}

#[test]
fn a_maps_records_join_another_stream() {
    let alerts = MemoryStream::<Alert>::new();
    let at = |s: &str| Timestamp::parse(s).unwrap();
    alerts.add([
        Alert { device: "d1".into(), time: at("2024-01-01T12:00:30Z") },
        Alert { device: "d2".into(), time: at("2024-01-01T12:05:00Z") },
        Alert { device: "d4".into(), time: at("2024-01-01T12:02:00Z") },
    ]);
    let input = MemoryStream::<Line>::new();
    input.add(DEVICES.iter().map(|t| Line { value: t.to_string() }));
    let mut out = Alerted::batch().lines(Source::memory(&input)).alerts(Source::memory(&alerts)).run().unwrap();
    out.sort_by(|a, b| a.signal.partial_cmp(&b.signal).unwrap());
    let got: Vec<(&str, f64, Timestamp)> = out.iter().map(|r| (r.device.as_str(), r.signal, r.alert_time)).collect();
    // d1 at 12:00:00 (alert 30 s later) and d4 at 12:01:03 (alert 57 s later) match; d1 at
    // 12:01:04 is after its alert, d2's alert is five minutes late.
    assert_eq!(got, [("d1", 12.5, at("2024-01-01T12:00:30Z")), ("d4", 20.0, at("2024-01-01T12:02:00Z"))]);
}

stream_query! {
    /// A map's records unioned with a stream of the same records, then aggregated together.
    query AllTypes(lines: Line, readings: DeviceData) -> TypeCount, mode = complete {
        lines
            .flat_map_rows(parse_device)
            .union(readings.filter(signal >= 0.0))
            .filter(signal > 10.0)
            .group_by(device_type)
            .agg(count() as n, max(signal) as strongest)
    }
}

#[test]
fn a_maps_records_union_a_stream_of_the_same_records() {
    let readings = MemoryStream::<DeviceData>::new();
    let at = |s: &str| Timestamp::parse(s).unwrap();
    readings.add([
        DeviceData { device: "r1".into(), device_type: "phone".into(), signal: 40.0, time: at("2024-01-01T12:00:00Z") },
        DeviceData { device: "r2".into(), device_type: "watch".into(), signal: 11.0, time: at("2024-01-01T12:00:00Z") },
        DeviceData { device: "r3".into(), device_type: "watch".into(), signal: -1.0, time: at("2024-01-01T12:00:00Z") },
    ]);
    let input = MemoryStream::<Line>::new();
    input.add(DEVICES.iter().map(|t| Line { value: t.to_string() }));
    let mut out = AllTypes::batch().lines(Source::memory(&input)).readings(Source::memory(&readings)).run().unwrap();
    out.sort_by(|a, b| a.device_type.cmp(&b.device_type));
    let got: Vec<(&str, i64, f64)> = out.iter().map(|r| (r.device_type.as_str(), r.n, r.strongest)).collect();
    // Lines: phones 12.5, 20.0, 25.0 (8.0 is not > 10), the tablet 30.0; readings: a phone at
    // 40.0 and a watch at 11.0 (the one at -1.0 is filtered on its side).
    assert_eq!(got, [("phone", 4, 40.0), ("tablet", 1, 30.0), ("watch", 1, 11.0)]);
}

#[derive(Record, Clone, Debug, PartialEq)]
struct TypeSummary {
    device_type: String,
    label: String,
}

stream_query! {
    /// An aggregation's rows as records (`|r: &TypeCount|`), mapped to the output.
    query TypeLabels(lines: Line) -> TypeSummary, mode = complete {
        lines
            .flat_map_rows(parse_device)
            .group_by(device_type)
            .agg(count() as n, max(signal) as strongest)
            .map_rows(|r: &TypeCount| TypeSummary {
                device_type: r.device_type.clone(),
                label: format!("{} x{} up to {}", r.device_type, r.n, r.strongest),
            })
    }

    /// The same, filtered as records, then columns of the map's records.
    query LoudTypes(lines: Line) -> Strong, mode = complete {
        lines
            .flat_map_rows(parse_device)
            .group_by(device_type)
            .agg(count() as n, max(signal) as strongest)
            .filter_rows(|r: &TypeCount| r.n > 1)
            .map_rows(|r: &TypeCount| Strong { device: r.device_type.clone(), loud: r.strongest > 20.0 })
            .select(device = device.to_uppercase(), loud)
    }
}

#[test]
fn an_aggregations_rows_map_as_records() {
    let mut out: Vec<TypeSummary> = rows(&run_mode(TypeLabels::spec(), lines(DEVICES), OutputMode::Complete));
    out.sort_by(|a, b| a.device_type.cmp(&b.device_type));
    let labels: Vec<&str> = out.iter().map(|r| r.label.as_str()).collect();
    assert_eq!(labels, ["phone x4 up to 25", "tablet x1 up to 30"]);
    let mut loud: Vec<Strong> = rows(&run_mode(LoudTypes::spec(), lines(DEVICES), OutputMode::Complete));
    loud.sort_by(|a, b| a.device.cmp(&b.device));
    assert_eq!(loud, [Strong { device: "PHONE".into(), loud: true }]);
}

#[derive(Record, Clone, Debug, PartialEq)]
struct DeviceSummary {
    device: String,
    readings: i64,
    strongest: f64,
}

/// The running count and maximum per device, in typed state: the seed's
/// `lines.as[String].map(parse).groupByKey(_.device).mapGroupsWithState(..)`.
fn summarize(device: &str, readings: Vec<DeviceData>, state: &mut GroupState<(i64, f64)>) -> DeviceSummary {
    let (mut n, mut strongest) = state.get_option().copied().unwrap_or((0, f64::MIN));
    for r in &readings {
        n += 1;
        strongest = strongest.max(r.signal);
    }
    state.update((n, strongest));
    DeviceSummary { device: device.to_string(), readings: n, strongest }
}

stream_query! {
    /// Group state over a map's records: each device's readings, parsed from lines, reach the
    /// function as `DeviceData` records.
    query DeviceSummaries(lines: Line) -> DeviceSummary, mode = update {
        lines
            .flat_map_rows(parse_device)
            .group_by(device)
            .map_groups_with_state(summarize, timeout = none)
    }
}

#[test]
fn group_state_gets_a_maps_records() {
    let mut plan = (DeviceSummaries::spec().make_plan)(&PlanConfig::with_partitions(2));
    let ctx = BatchContext::new(0, OutputMode::Update);
    let mut first: Vec<DeviceSummary> = rows(&plan.run_batch(&ctx, &[lines(DEVICES)]).unwrap());
    first.sort_by(|a, b| a.device.cmp(&b.device));
    let got: Vec<(&str, i64, f64)> = first.iter().map(|s| (s.device.as_str(), s.readings, s.strongest)).collect();
    assert_eq!(got, [("d1", 2, 25.0), ("d2", 1, 30.0), ("d3", 1, 8.0), ("d4", 1, 20.0)]);
    // The state carries over: d1's next reading counts on from 2.
    let next: Vec<DeviceSummary> = rows(
        &plan
            .run_batch(&BatchContext::new(1, OutputMode::Update), &[lines(&["d1 phone 40.0 2024-01-01T12:02:00Z"])])
            .unwrap(),
    );
    assert_eq!(next, [DeviceSummary { device: "d1".into(), readings: 3, strongest: 40.0 }]);
}

#[derive(Record, Clone, Debug, PartialEq)]
struct OwnedSignal {
    device: String,
    owner: String,
    signal: f64,
}

#[derive(Record, Clone, Debug, PartialEq)]
struct Tagged {
    tag: String,
}

stream_query! {
    /// A stream-static join's selected columns as records (`|r: &OwnedSignal|`).
    query Tags(lines: Line, owners: static Owner) -> Tagged, mode = append {
        lines
            .flat_map_rows(parse_device)
            .join(owners, device)
            .select(device, owner = owners.owner, signal)
            .map_rows(|r: &OwnedSignal| Tagged { tag: format!("{}@{}:{}", r.device, r.owner, r.signal) })
    }
}

#[test]
fn a_joins_selected_columns_map_as_records() {
    let owners = MemoryStream::<Owner>::new();
    owners
        .add([Owner { device: "d1".into(), owner: "ann".into() }, Owner { device: "d4".into(), owner: "bob".into() }]);
    let input = MemoryStream::<Line>::new();
    input.add(DEVICES.iter().map(|t| Line { value: t.to_string() }));
    let mut out: Vec<String> = Tags::batch()
        .lines(Source::memory(&input))
        .owners(Source::memory(&owners))
        .run()
        .unwrap()
        .into_iter()
        .map(|t| t.tag)
        .collect();
    out.sort();
    assert_eq!(out, ["d1@ann:12.5", "d1@ann:25", "d4@bob:20"]);
}

#[derive(Record, Clone, Debug, PartialEq)]
struct AlertedSignal {
    device: String,
    signal: f64,
    alert_time: Timestamp,
}

#[derive(Record, Clone, Debug, PartialEq)]
struct AlertLine {
    line: String,
    late_secs: i64,
}

stream_query! {
    /// A stream-stream join's selected columns as records (`|r: &AlertedSignal|`), then a
    /// filter on the records.
    query AlertLines(lines: Line, alerts: Alert) -> AlertLine, mode = append {
        lines
            .flat_map_rows(parse_device)
            .with_watermark(time, "1 minute")
            .join(
                alerts.with_watermark(time, "1 minute"),
                device = alerts.device,
                on = alerts.time >= time && alerts.time <= time + "1 minute",
            )
            .select(device, signal, alert_time = alerts.time)
            .map_rows(|r: &AlertedSignal| AlertLine {
                line: format!("{} {}", r.device, r.signal),
                late_secs: (r.alert_time.micros() / 1_000_000) % 60,
            })
            .filter_rows(|a| a.late_secs > 0)
    }
}

#[test]
fn a_stream_joins_selected_columns_map_as_records() {
    let alerts = MemoryStream::<Alert>::new();
    let at = |s: &str| Timestamp::parse(s).unwrap();
    alerts.add([
        Alert { device: "d1".into(), time: at("2024-01-01T12:00:30Z") },
        Alert { device: "d2".into(), time: at("2024-01-01T12:05:00Z") },
        Alert { device: "d4".into(), time: at("2024-01-01T12:02:00Z") },
    ]);
    let input = MemoryStream::<Line>::new();
    input.add(DEVICES.iter().map(|t| Line { value: t.to_string() }));
    let mut out = AlertLines::batch().lines(Source::memory(&input)).alerts(Source::memory(&alerts)).run().unwrap();
    out.sort_by(|a, b| a.line.cmp(&b.line));
    // As `a_maps_records_join_another_stream`: d1 and d4 match; d4's alert at 12:02:00 is at
    // second 0, which the filter drops.
    assert_eq!(out, [AlertLine { line: "d1 12.5".into(), late_secs: 30 }]);
}
