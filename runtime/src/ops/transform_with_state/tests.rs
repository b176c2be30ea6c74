use super::*;
use crate::OutputMode;

fn ctx(batch: u64, ts_ms: i64, watermark_ms: Option<i64>) -> BatchContext {
    BatchContext {
        watermark_for_late: watermark_ms.map(|w| w * 1000),
        watermark_for_eviction: watermark_ms.map(|w| w * 1000),
        batch_timestamp_ms: ts_ms,
        ..BatchContext::new(batch, OutputMode::Update)
    }
}

/// Keeps a running sum (value state), every row (list state) and a count per row value
/// (map state); registers a timer `timer_after` ms after the batch time when set; emits
/// `(key, what)` per call.
#[derive(Default)]
struct Recorder {
    sum: ValueState<i64>,
    rows: ListState<i64>,
    seen: MapState<i64, i64>,
    timer_after: Option<i64>,
    ttl: Option<i64>,
}

impl StatefulProcessor for Recorder {
    type Key = String;
    type Input = i64;
    type Output = (String, String);

    fn init(&mut self, h: &mut StatefulProcessorHandle) {
        let ttl = self.ttl.map_or(Ttl::NONE, Ttl::ms);
        self.sum = h.get_value_state("sum", ttl);
        self.rows = h.get_list_state("rows", ttl);
        self.seen = h.get_map_state("seen", ttl);
    }

    fn handle_input_rows(
        &mut self,
        key: &String,
        rows: GroupRows<'_, i64>,
        tv: &TimerValues,
        h: &mut KeyHandle<'_>,
    ) -> impl IntoIterator<Item = (String, String)> {
        let rows: Vec<i64> = rows.collect();
        let sum = self.sum.get(h).unwrap_or(0) + rows.iter().sum::<i64>();
        self.sum.update(h, sum);
        for r in &rows {
            let n = self.seen.get_value(h, r).unwrap_or(0);
            self.seen.update_value(h, *r, n + 1);
        }
        self.rows.append_list(h, rows.clone());
        if let Some(after) = self.timer_after {
            h.register_timer(tv.get_current_processing_time_in_ms() + after);
        }
        vec![(key.clone(), format!("rows {rows:?} sum {sum} all {:?} seen {:?}", self.rows.get(h), self.seen.iter(h)))]
    }

    fn handle_expired_timer(
        &mut self,
        key: &String,
        tv: &TimerValues,
        info: ExpiredTimerInfo,
        h: &mut KeyHandle<'_>,
    ) -> impl IntoIterator<Item = (String, String)> {
        let sum = self.sum.get(h);
        self.sum.clear(h);
        self.rows.clear(h);
        self.seen.clear(h);
        let out =
            format!("timer {} at {} sum {sum:?}", info.get_expiry_time_in_ms(), tv.get_current_processing_time_in_ms());
        std::iter::once((key.clone(), out))
    }
}

impl StatefulProcessorWithInitialState for Recorder {
    type InitialState = i64;

    /// Adds the key's initial values to its sum and registers its timer, as a call with rows.
    fn handle_initial_state(&mut self, _key: &String, states: Vec<i64>, tv: &TimerValues, h: &mut KeyHandle<'_>) {
        let sum = self.sum.get(h).unwrap_or(0) + states.iter().sum::<i64>();
        self.sum.update(h, sum);
        if let Some(after) = self.timer_after {
            h.register_timer(tv.get_current_processing_time_in_ms() + after);
        }
    }
}

type Op = TransformWithStateOp<(String,), i64, Recorder>;
fn init_batch(
    op: &mut Op,
    c: &BatchContext,
    rows: &[(&str, i64)],
    initial: &[(&str, i64)],
) -> Result<Vec<(String, String)>> {
    op.begin_batch();
    for (k, v) in rows {
        op.push_row((*k,), *v);
    }
    let mut out = Vec::new();
    op.run_with_initial_state(c, |k| &k.0, |o| out.push(o), || initial.iter().map(|(k, v)| ((k.to_string(),), *v)))?;
    Ok(out)
}

#[test]
fn the_initial_state_is_handled_per_key_before_the_rows_of_batch_0_only() {
    let rec = Recorder { timer_after: Some(500), ..Default::default() };
    let mut op = Op::new(2, TimeMode::ProcessingTime, rec);
    let out = init_batch(&mut op, &ctx(0, 1_000, None), &[("a", 2)], &[("z", 7), ("a", 10), ("z", 1)]).unwrap();
    assert_eq!(out, vec![("a".into(), "rows [2] sum 12 all [2] seen [(2, 1)]".into())], "z emits nothing");
    let m = op.metrics();
    assert_eq!((m.num_rows_total, m.num_rows_updated), (4, 5), "z: sum; a: sum twice, rows, seen");
    assert!(m.custom_metrics.contains(&("numRegisteredTimers".into(), 2)), "{:?}", m.custom_metrics);
    // z's timer, registered by its initial state, fires; nothing is applied again.
    let out = init_batch(&mut op, &ctx(1, 1_500, None), &[("b", 1)], &[("b", 100)]).unwrap();
    assert_eq!(
        out,
        vec![
            ("b".into(), "rows [1] sum 1 all [1] seen [(1, 1)]".into()),
            ("a".into(), "timer 1500 at 1500 sum Some(12)".into()),
            ("z".into(), "timer 1500 at 1500 sum Some(8)".into()),
        ]
    );
}

#[test]
fn an_initial_state_is_not_handled_after_batch_0() {
    let mut op = Op::new(2, TimeMode::None, Recorder::default());
    let out = init_batch(&mut op, &ctx(4, 0, None), &[("a", 2)], &[("a", 10)]).unwrap();
    assert_eq!(out, vec![("a".into(), "rows [2] sum 2 all [2] seen [(2, 1)]".into())]);
}

fn batch(op: &mut Op, c: &BatchContext, rows: &[(&str, i64)]) -> Result<Vec<(String, String)>> {
    op.begin_batch();
    for (k, v) in rows {
        op.push_row((*k,), *v);
    }
    let mut out = Vec::new();
    op.run(c, |k| &k.0, |o| out.push(o))?;
    Ok(out)
}

#[test]
fn keys_are_called_in_first_seen_order_and_each_state_variable_keeps_its_own_values() {
    let mut op = Op::new(2, TimeMode::None, Recorder::default());
    let out = batch(&mut op, &ctx(0, 0, None), &[("b", 1), ("a", 2), ("b", 1)]).unwrap();
    assert_eq!(
        out,
        vec![
            ("b".into(), "rows [1, 1] sum 2 all [1, 1] seen [(1, 2)]".into()),
            ("a".into(), "rows [2] sum 2 all [2] seen [(2, 1)]".into()),
        ]
    );
    let out = batch(&mut op, &ctx(1, 0, None), &[("b", 3)]).unwrap();
    assert_eq!(out, vec![("b".into(), "rows [3] sum 5 all [1, 1, 3] seen [(1, 2), (3, 1)]".into())]);
    let m = op.metrics();
    assert_eq!((m.operator_name.as_str(), m.num_rows_total, m.num_rows_updated), (OPERATOR_NAME, 7, 3));
    assert!(m.custom_metrics.contains(&("numMapStateVars".into(), 1)), "{:?}", m.custom_metrics);
    assert_eq!(op.state_schema().value_layout, "transform_with_state[sum:value[i64],rows:list[i64],seen:map[i64,i64]]");
}

#[test]
fn processing_time_timers_fire_at_or_before_the_batch_time_in_time_then_key_order_and_are_deleted() {
    let rec = Recorder { timer_after: Some(500), ..Default::default() };
    let mut op = Op::new(2, TimeMode::ProcessingTime, rec);
    batch(&mut op, &ctx(0, 1_000, None), &[("b", 1), ("a", 1)]).unwrap();
    // Reported a millisecond early: the engine runs a no-data batch once its clock is past it.
    assert_eq!(op.next_processing_timeout_ms(), Some(1_499));
    // A millisecond before the timers' time nothing fires; at exactly it they do (Spark 4.3).
    assert!(batch(&mut op, &ctx(1, 1_499, None), &[]).unwrap().is_empty());
    let out = batch(&mut op, &ctx(2, 1_500, None), &[("c", 5)]).unwrap();
    assert_eq!(
        out,
        vec![
            ("c".into(), "rows [5] sum 5 all [5] seen [(5, 1)]".into()),
            ("a".into(), "timer 1500 at 1500 sum Some(1)".into()),
            ("b".into(), "timer 1500 at 1500 sum Some(1)".into()),
        ]
    );
    // a and b are empty after their timers and gone; c's timer (2 000) is next.
    assert_eq!(op.len(), 1);
    assert_eq!(op.next_processing_timeout_ms(), Some(1_999));
    let m = op.metrics();
    assert_eq!((m.num_rows_total, m.num_rows_removed), (3, 6), "each key's value, list and map entry cleared");
    assert!(m.custom_metrics.contains(&("numExpiredTimers".into(), 2)), "{:?}", m.custom_metrics);
}

/// Registers an event-time timer at the row's value (ms) and reports it when it fires.
#[derive(Default)]
struct Deadline {
    last: ValueState<i64>,
}

impl StatefulProcessor for Deadline {
    type Key = String;
    type Input = i64;
    type Output = String;
    fn init(&mut self, h: &mut StatefulProcessorHandle) {
        self.last = h.get_value_state("last", Ttl::NONE);
    }
    fn handle_input_rows(
        &mut self,
        key: &String,
        rows: GroupRows<'_, i64>,
        _tv: &TimerValues,
        h: &mut KeyHandle<'_>,
    ) -> impl IntoIterator<Item = String> {
        for t in h.list_timers() {
            h.delete_timer(t);
        }
        let last = rows.max().unwrap_or(0);
        self.last.update(h, last);
        h.register_timer(last);
        (key == "never").then(String::new)
    }
    fn handle_expired_timer(
        &mut self,
        key: &String,
        tv: &TimerValues,
        info: ExpiredTimerInfo,
        _h: &mut KeyHandle<'_>,
    ) -> impl IntoIterator<Item = String> {
        [format!("{key} {} wm {}", info.get_expiry_time_in_ms(), tv.get_current_watermark_in_ms())]
    }
}

#[test]
fn event_time_timers_fire_on_the_watermark_and_a_deleted_timer_never_fires() {
    let mut op: TransformWithStateOp<(String,), i64, Deadline> =
        TransformWithStateOp::new(1, TimeMode::EventTime, Deadline::default());
    let run = |op: &mut TransformWithStateOp<(String,), i64, Deadline>, b, wm, rows: &[(&str, i64)]| {
        op.begin_batch();
        for (k, v) in rows {
            op.push_row((*k,), *v);
        }
        let mut out = Vec::new();
        op.run(&ctx(b, 0, wm), |k| &k.0, |o| out.push(o)).unwrap();
        out
    };
    assert!(run(&mut op, 0, None, &[("a", 5_000), ("b", 7_000)]).is_empty());
    // a moves its timer to 9 000: the 5 000 one is deleted and never fires.
    assert!(run(&mut op, 1, Some(4_000), &[("a", 9_000)]).is_empty());
    assert_eq!(run(&mut op, 2, Some(8_000), &[]), vec!["b 7000 wm 8000".to_string()]);
    assert_eq!(run(&mut op, 3, Some(20_000), &[]), vec!["a 9000 wm 20000".to_string()]);
    // The value state is kept after the timer: the key stays.
    assert_eq!(op.len(), 2);
}

#[test]
fn a_ttl_hides_values_from_their_expiry_and_removes_them_at_the_end_of_the_batch() {
    let rec = Recorder { ttl: Some(1_000), ..Default::default() };
    let mut op = Op::new(1, TimeMode::ProcessingTime, rec);
    batch(&mut op, &ctx(0, 10_000, None), &[("a", 1), ("b", 2)]).unwrap();
    // a writes again at 10 500: its values expire at 11 500; b's at 11 000.
    batch(&mut op, &ctx(1, 10_500, None), &[("a", 3)]).unwrap();
    let out = batch(&mut op, &ctx(2, 11_000, None), &[("b", 4)]).unwrap();
    assert_eq!(out, vec![("b".into(), "rows [4] sum 4 all [4] seen [(4, 1)]".into())], "b's old values expired");
    // Each list element and map entry has its own expiry: a's first ones (11 000) are gone,
    // those written at 10 500 are not.
    let out = batch(&mut op, &ctx(3, 11_499, None), &[("a", 0)]).unwrap();
    assert_eq!(out, vec![("a".into(), "rows [0] sum 4 all [3, 0] seen [(0, 1), (3, 1)]".into())]);
    // Nothing written after 11 499 + 1 000: everything of both keys expires, the keys go.
    batch(&mut op, &ctx(4, 13_000, None), &[]).unwrap();
    assert_eq!(op.len(), 0);
    let m = op.metrics();
    // a: sum, rows [3, 0], seen {0, 3}; b: sum, rows [4], seen {4}: 8 values, counted as Spark.
    assert_eq!((m.num_rows_removed, m.num_rows_total), (8, 0));
    assert!(m.custom_metrics.contains(&("numValuesRemovedDueToTTLExpiry".into(), 8)), "{:?}", m.custom_metrics);
}

fn apply(changes: Vec<PartitionChanges>, maps: &mut [StateMap]) {
    for (p, c) in changes.into_iter().enumerate() {
        for (k, v) in c {
            match v {
                Some(v) => maps[p].insert(k, v),
                None => maps[p].remove(&k),
            };
        }
    }
}

#[test]
fn state_and_timers_round_trip_through_the_checkpoints_changes() {
    let rec = || Recorder { timer_after: Some(100), ..Default::default() };
    let mut op = Op::new(3, TimeMode::ProcessingTime, rec());
    op.set_tracking(true);
    let mut maps: Vec<StateMap> = (0..3).map(|_| StateMap::new()).collect();
    batch(&mut op, &ctx(0, 0, None), &[("a", 1), ("b", 2), ("c", 3)]).unwrap();
    apply(op.take_changes(), &mut maps);
    batch(&mut op, &ctx(1, 50, None), &[("a", 4)]).unwrap();
    apply(op.take_changes(), &mut maps);
    let mut back = Op::new(3, TimeMode::ProcessingTime, rec());
    back.restore(maps.clone()).unwrap();
    assert_eq!(back.len(), 3);
    assert_eq!(back.next_processing_timeout_ms(), Some(99));
    let a = batch(&mut op, &ctx(2, 60, None), &[("a", 1)]).unwrap();
    assert_eq!(a, batch(&mut back, &ctx(2, 60, None), &[("a", 1)]).unwrap());
    assert_eq!(a[0].1, "rows [1] sum 6 all [1, 4, 1] seen [(1, 2), (4, 1)]");
    apply(op.take_changes(), &mut maps);
    // b's and c's timers (100) fire and empty them: deletes. a keeps its later timers.
    let fired = batch(&mut op, &ctx(3, 120, None), &[]).unwrap();
    assert_eq!(fired.len(), 3);
    apply(op.take_changes(), &mut maps);
    let mut third = Op::new(3, TimeMode::ProcessingTime, rec());
    third.restore(maps).unwrap();
    assert_eq!(third.len(), 1);
    assert_eq!(third.next_processing_timeout_ms(), Some(149));
}

/// The stored encoding is persisted: these bytes must decode the same in every build.
#[test]
fn the_stored_row_encoding_is_pinned() {
    let row = TwsRow {
        vars: smallvec::smallvec![
            row::Slot::Value(Some(row::Stamped { bytes: vec![7].into(), expires_ms: row::NEVER })),
            row::Slot::List(vec![row::Stamped { bytes: vec![1, 2].into(), expires_ms: 9 }]),
            row::Slot::Map(vec![(vec![3], row::Stamped { bytes: vec![].into(), expires_ms: -2 })]),
        ],
        timers: vec![5],
    };
    let bytes = crate::codec::to_bytes(&row);
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(
        hex,
        concat!(
            "0300000000000000", // 3 variables
            "01",
            "01",
            "0100000000000000",
            "07",
            "ffffffffffffff7f", // value: some, [7], never
            "02",
            "0100000000000000",
            "0200000000000000",
            "0102",
            "0900000000000000", // list: 1 item
            "03",
            "0100000000000000",
            "0100000000000000",
            "03",
            "0000000000000000",
            "feffffffffffffff", // map
            "0100000000000000",
            "0500000000000000" // timers: [5]
        )
    );
    assert_eq!(crate::codec::from_bytes::<TwsRow>(&bytes).unwrap(), row);
    // The operator's stored-bytes total follows `encoded_len`, never the encoding itself.
    assert_eq!(row.encoded_len(), bytes.len() as u64);
    let empty = TwsRow {
        vars: smallvec::smallvec![row::Slot::Value(None), row::Slot::List(vec![]), row::Slot::Map(vec![])],
        timers: vec![],
    };
    assert_eq!(empty.encoded_len(), crate::codec::to_bytes(&empty).len() as u64);
    // Encodings up to 23 bytes live inline in memory, longer ones on the heap: the stored
    // bytes are the same either way.
    for n in [0, 1, 22, 23, 24, 100] {
        let bytes: Vec<u8> = (0..n as u8).collect();
        let held = row::StateBytes::from(bytes.clone());
        assert_eq!(matches!(held, row::StateBytes::Inline { .. }), n <= 23, "{n}");
        assert_eq!(&*held, &bytes[..]);
        let row = TwsRow {
            vars: smallvec::smallvec![row::Slot::Value(Some(row::Stamped { bytes: held, expires_ms: 3 }))],
            timers: vec![],
        };
        let encoded = crate::codec::to_bytes(&row);
        assert_eq!(row.encoded_len(), encoded.len() as u64);
        assert_eq!(crate::codec::from_bytes::<TwsRow>(&encoded).unwrap(), row);
    }
}

/// The totals kept per call (state rows, stored bytes) and the timer and TTL indexes equal
/// what a scan of the state gives, batch after batch and after a restore.
#[test]
fn the_per_call_totals_and_indexes_equal_a_scan_of_the_state() {
    let rec = || Recorder { ttl: Some(300), timer_after: Some(200), ..Default::default() };
    let mut op = Op::new(2, TimeMode::ProcessingTime, rec());
    op.set_tracking(true);
    let mut maps: Vec<StateMap> = (0..2).map(|_| StateMap::new()).collect();
    let scan = |op: &Op| {
        let rows: u64 = op.state.iter().map(|e| e.value.state_rows()).sum();
        let bytes: u64 = op.state.iter().map(|e| crate::codec::to_bytes(&e.value).len() as u64).sum();
        let mut timers: Vec<(i64, Vec<u8>)> =
            op.state.iter().flat_map(|e| e.value.timers.iter().map(|t| (*t, crate::codec::to_bytes(&e.key)))).collect();
        timers.sort();
        let mut expiries: Vec<(i64, Vec<u8>)> = op
            .state
            .iter()
            .filter(|e| e.value.next_expiry() != row::NEVER)
            .map(|e| (e.value.next_expiry(), crate::codec::to_bytes(&e.key)))
            .collect();
        expiries.sort();
        (rows, bytes, timers, expiries)
    };
    let indexed = |op: &Op| {
        (
            op.rows_total,
            op.stored_bytes,
            op.timers.keys().cloned().collect::<Vec<_>>(),
            op.expiries.keys().cloned().collect::<Vec<_>>(),
        )
    };
    let steps: [(i64, &[(&str, i64)]); 6] = [
        (0, &[("a", 1), ("b", 2), ("a", 3)]),
        (100, &[("c", 4)]),
        (250, &[("a", 5)]),
        (450, &[]),
        (520, &[("b", 6), ("d", 7)]),
        (2_000, &[]),
    ];
    for (i, (t, rows)) in steps.iter().enumerate() {
        batch(&mut op, &ctx(i as u64, *t, None), rows).unwrap();
        assert_eq!(indexed(&op), scan(&op), "after batch {i}");
        apply(op.take_changes(), &mut maps);
        let mut back = Op::new(2, TimeMode::ProcessingTime, rec());
        back.restore(maps.clone()).unwrap();
        assert_eq!(indexed(&back), indexed(&op), "restored after batch {i}");
    }
    assert_eq!(op.len(), 0, "every value expired and every timer fired by 2 000 ms");
}

/// Declares `count` twice, with a bad TTL.
#[derive(Default)]
struct Twice;

impl StatefulProcessor for Twice {
    type Key = String;
    type Input = i64;
    type Output = i64;
    fn init(&mut self, h: &mut StatefulProcessorHandle) {
        let _: ValueState<i64> = h.get_value_state("count", Ttl::NONE);
        let _: ListState<i64> = h.get_list_state("count", Ttl::ms(0));
    }
    fn handle_input_rows(
        &mut self,
        _key: &String,
        rows: GroupRows<'_, i64>,
        _tv: &TimerValues,
        _h: &mut KeyHandle<'_>,
    ) -> impl IntoIterator<Item = i64> {
        rows
    }
}

/// Uses handles it never declared, sets timers without a time mode, or panics, by key.
#[derive(Default)]
struct Misuser {
    undeclared: ValueState<i64>,
}

impl StatefulProcessor for Misuser {
    type Key = String;
    type Input = i64;
    type Output = i64;
    fn init(&mut self, _h: &mut StatefulProcessorHandle) {}
    fn handle_input_rows(
        &mut self,
        key: &String,
        _rows: GroupRows<'_, i64>,
        _tv: &TimerValues,
        h: &mut KeyHandle<'_>,
    ) -> impl IntoIterator<Item = i64> {
        match key.as_str() {
            "timer" => h.register_timer(1),
            "undeclared" => self.undeclared.update(h, 1),
            _ => panic!("boom"),
        }
        None
    }
}

#[test]
fn misuses_fail_the_batch_with_a_message_naming_the_key() {
    let mut op: TransformWithStateOp<(String,), i64, Twice> = TransformWithStateOp::new(1, TimeMode::None, Twice);
    op.push_row(("a",), 1);
    let err = op.run(&ctx(0, 0, None), |k| &k.0, |_| {}).unwrap_err().to_string();
    assert!(err.contains("`count` is declared twice") && err.contains("TTL must be positive"), "{err}");
    for (key, want) in [
        ("timer", "cannot use timers with `time_mode = none`"),
        ("undeclared", "a ValueState used before `init` declared it"),
        ("boom", "panicked for key (\"boom\",): boom"),
    ] {
        let mut op: TransformWithStateOp<(String,), i64, Misuser> =
            TransformWithStateOp::new(1, TimeMode::None, Misuser::default());
        op.push_row((key,), 1);
        let err = op.run(&ctx(0, 0, None), |k| &k.0, |_| {}).unwrap_err().to_string();
        assert!(err.contains(want) && err.contains(key), "{key}: {err}");
    }
}

#[test]
fn the_recorded_layout_decodes_stored_rows_and_a_changed_processor_shows_the_difference() {
    let rec = Recorder { ttl: Some(1_000), timer_after: Some(5), ..Default::default() };
    let mut op = Op::new(1, TimeMode::ProcessingTime, rec);
    op.set_tracking(true);
    batch(&mut op, &ctx(0, 2_000, None), &[("a", 7)]).unwrap();
    let changes = op.take_changes();
    let (_, value) = &changes[0][0];
    let layout = crate::codec::Layout::parse(&op.state_schema().value_layout).unwrap();
    let json = layout.decode_all(value.as_ref().unwrap()).unwrap();
    assert_eq!(json["state"]["sum"]["value"], 7);
    assert_eq!(json["state"]["sum"]["expires"], "1970-01-01 00:00:03");
    assert_eq!(json["state"]["rows"][0]["value"], 7);
    assert_eq!(json["state"]["seen"][0]["key"], 7);
    assert_eq!(json["timers"][0], "1970-01-01 00:00:02.005");
    let old = "transform_with_state[sum:value[i64],rows:list[i64],seen:map[i64,i64]]";
    let new = "transform_with_state[sum:value[f64],seen:map[i64,i64],last:value[utf8]]";
    assert_eq!(
        crate::codec::layout_difference(old, new).unwrap(),
        "state variable `sum`: value[i64] in the checkpoint, value[f64] now; state variable `rows` (list[i64]) removed; \
         state variable `last` (value[utf8]) added"
    );
    let swapped = "transform_with_state[rows:list[i64],sum:value[i64],seen:map[i64,i64]]";
    assert!(crate::codec::layout_difference(old, swapped).unwrap().contains("reordered"));
}

/// `Recorder` without its `rows` list, deleting it (or not) in `init`, or with `seen`'s
/// values changed to strings.
#[derive(Default)]
struct Pruned {
    sum: ValueState<i64>,
    seen: MapState<i64, i64>,
    delete: bool,
}

impl StatefulProcessor for Pruned {
    type Key = String;
    type Input = i64;
    type Output = (String, String);

    fn init(&mut self, h: &mut StatefulProcessorHandle) {
        self.sum = h.get_value_state("sum", Ttl::NONE);
        if self.delete {
            h.delete_if_exists("rows");
        }
        self.seen = h.get_map_state("seen", Ttl::NONE);
    }

    fn handle_input_rows(
        &mut self,
        key: &String,
        rows: GroupRows<'_, i64>,
        _tv: &TimerValues,
        h: &mut KeyHandle<'_>,
    ) -> impl IntoIterator<Item = (String, String)> {
        let sum = self.sum.get(h).unwrap_or(0) + rows.sum::<i64>();
        self.sum.update(h, sum);
        vec![(key.clone(), format!("sum {sum} seen {:?}", self.seen.iter(h)))]
    }
}

#[test]
fn a_variable_deleted_in_init_is_read_past_and_emptied_and_nothing_else_is_adopted() {
    let mut op = Op::new(2, TimeMode::None, Recorder::default());
    op.set_tracking(true);
    let mut maps: Vec<StateMap> = (0..2).map(|_| StateMap::new()).collect();
    batch(&mut op, &ctx(0, 0, None), &[("a", 1), ("b", 2), ("a", 3)]).unwrap();
    apply(op.take_changes(), &mut maps);
    let recorded = op.state_schema();
    // Not deleted, or a kept variable's type changed: refused.
    let mut kept = TransformWithStateOp::<(String,), i64, Pruned>::new(2, TimeMode::None, Pruned::default());
    assert!(!kept.adopt_recorded_schema(&recorded));
    let mut moved = Op::new(3, TimeMode::None, Recorder::default());
    assert!(!moved.adopt_recorded_schema(&recorded), "other partitions");
    // Deleted: the stored layout stays the recorded one, `rows` emptied on restore.
    let mut pruned = TransformWithStateOp::<(String,), i64, Pruned>::new(
        2,
        TimeMode::None,
        Pruned { delete: true, ..Default::default() },
    );
    assert_eq!(pruned.state_schema().value_layout, "transform_with_state[sum:value[i64],seen:map[i64,i64]]");
    assert!(pruned.adopt_recorded_schema(&recorded));
    assert_eq!(pruned.state_schema(), recorded);
    pruned.set_tracking(true);
    pruned.restore(maps.clone()).unwrap();
    assert_eq!(pruned.metrics().num_rows_total, 5, "a: sum, seen 1 and 3; b: sum, seen 2; no lists");
    let changed: usize = pruned.take_changes().iter().map(|p| p.len()).sum();
    assert_eq!(changed, 2, "both rows are written again without their list");
    pruned.begin_batch();
    pruned.push_row(("a",), 10);
    let mut out = Vec::new();
    pruned.run(&ctx(1, 0, None), |k| &k.0, |o| out.push(o)).unwrap();
    assert_eq!(out, vec![("a".into(), "sum 14 seen [(1, 1), (3, 1)]".into())]);
    // A deletion of a variable the checkpoint does not have is no change.
    let mut fresh = TransformWithStateOp::<(String,), i64, Pruned>::new(
        2,
        TimeMode::None,
        Pruned { delete: true, ..Default::default() },
    );
    assert!(batch_pruned(&mut fresh).is_ok());
}

fn batch_pruned(op: &mut TransformWithStateOp<(String,), i64, Pruned>) -> Result<()> {
    op.begin_batch();
    op.push_row(("x",), 1);
    op.run(&ctx(0, 0, None), |k| &k.0, |_| {})
}

#[test]
fn a_variable_deleted_and_declared_is_a_misuse_of_init() {
    struct Both(ValueState<i64>);
    impl StatefulProcessor for Both {
        type Key = String;
        type Input = i64;
        type Output = ();
        fn init(&mut self, h: &mut StatefulProcessorHandle) {
            h.delete_if_exists("n");
            self.0 = h.get_value_state("n", Ttl::NONE);
        }
        fn handle_input_rows(
            &mut self,
            _key: &String,
            _rows: GroupRows<'_, i64>,
            _tv: &TimerValues,
            _h: &mut KeyHandle<'_>,
        ) -> impl IntoIterator<Item = ()> {
            None
        }
    }
    let mut op = TransformWithStateOp::<(String,), i64, Both>::new(1, TimeMode::None, Both(ValueState::default()));
    op.begin_batch();
    let err = op.run(&ctx(0, 0, None), |k| &k.0, |_| {}).unwrap_err().to_string();
    assert!(err.contains("state variable `n` is deleted and declared in `init`"), "{err}");
}
