//! The `transform_with_state` Spark golden cases (`oracle/cases/tws_*`), each a flowgate query
//! whose processor is written as `oracle/harness/tws_processors.py` writes it for pyspark's
//! `transformWithStateInPandas`: inputs and Spark's per-batch output come from the case files.

use flowgate::prelude::*;
use flowgate_codegen_tests::{run_case, run_case_restarting, run_case_with_clock, InputRows};

#[derive(Record)]
struct Visit {
    user: Option<String>,
    ts: Option<Timestamp>,
    page: Option<String>,
    clicks: Option<i64>,
    action: Option<String>,
}

fn is(action: &Option<String>, what: &str) -> bool {
    action.as_deref() == Some(what)
}

#[derive(Record)]
struct PageStatsRow {
    user: Option<String>,
    events: i64,
    clicks: i64,
    pages: String,
    top_visits: i64,
    active: bool,
}

/// `PageStats`: a value, a list and a map state per user; a logout clears them.
#[derive(Default)]
struct PageStats {
    events: ValueState<i64>,
    clicks: ListState<i64>,
    visits: MapState<String, i64>,
}

impl StatefulProcessor for PageStats {
    type Key = Option<String>;
    type Input = Visit;
    type Output = PageStatsRow;

    fn init(&mut self, handle: &mut StatefulProcessorHandle) {
        self.events = handle.get_value_state("events", Ttl::NONE);
        self.clicks = handle.get_list_state("clicks", Ttl::NONE);
        self.visits = handle.get_map_state("visits", Ttl::NONE);
    }

    fn handle_input_rows(
        &mut self,
        user: &Option<String>,
        rows: GroupRows<'_, Visit>,
        _timer_values: &TimerValues,
        h: &mut KeyHandle<'_>,
    ) -> impl IntoIterator<Item = PageStatsRow> {
        let rows: Vec<Visit> = rows.collect();
        let events = self.events.get(h).unwrap_or(0) + rows.len() as i64;
        self.clicks.append_list(h, rows.iter().map(|r| r.clicks.unwrap_or(0)).collect());
        for r in &rows {
            let page = r.page.clone().unwrap_or_default();
            let n = self.visits.get_value(h, &page).unwrap_or(0);
            self.visits.update_value(h, page, n + 1);
        }
        let logout = rows.iter().any(|r| is(&r.action, "logout"));
        self.events.update(h, events);
        let clicks = self.clicks.get(h).iter().sum();
        let mut pages = self.visits.keys(h);
        pages.sort();
        let top_visits = self.visits.values(h).into_iter().max().unwrap_or(0);
        if logout {
            self.events.clear(h);
            self.clicks.clear(h);
            self.visits.clear(h);
        }
        Some(PageStatsRow { user: user.clone(), events, clicks, pages: pages.join(","), top_visits, active: !logout })
    }
}

#[derive(Record)]
struct IdleRow {
    user: Option<String>,
    events: i64,
    expired: bool,
}

/// `IDLE_TIMER_MS` in tws_processors.py.
const IDLE_TIMER_MS: i64 = 60_000;

/// `IdleTimers`: a processing-time timer a minute after the last event; `cancel` deletes it.
#[derive(Default)]
struct IdleTimers {
    events: ValueState<i64>,
}

impl StatefulProcessor for IdleTimers {
    type Key = Option<String>;
    type Input = Visit;
    type Output = IdleRow;

    fn init(&mut self, handle: &mut StatefulProcessorHandle) {
        self.events = handle.get_value_state("events", Ttl::NONE);
    }

    fn handle_input_rows(
        &mut self,
        user: &Option<String>,
        mut rows: GroupRows<'_, Visit>,
        timer_values: &TimerValues,
        h: &mut KeyHandle<'_>,
    ) -> impl IntoIterator<Item = IdleRow> {
        let events = self.events.get(h).unwrap_or(0) + rows.len() as i64;
        self.events.update(h, events);
        for t in h.list_timers() {
            h.delete_timer(t);
        }
        if !rows.any(|r| is(&r.action, "cancel")) {
            h.register_timer(timer_values.get_current_processing_time_in_ms() + IDLE_TIMER_MS);
        }
        [IdleRow { user: user.clone(), events, expired: false }]
    }

    fn handle_expired_timer(
        &mut self,
        user: &Option<String>,
        _timer_values: &TimerValues,
        _expired: ExpiredTimerInfo,
        h: &mut KeyHandle<'_>,
    ) -> impl IntoIterator<Item = IdleRow> {
        let events = self.events.get(h).unwrap_or(0);
        self.events.clear(h);
        [IdleRow { user: user.clone(), events, expired: true }]
    }
}

#[derive(Record)]
struct QuietRow {
    user: Option<String>,
    events: i64,
    fired_at: Timestamp,
}

/// `QuietAlerts`: an event-time timer 5 s after the latest event, moved forward only.
#[derive(Default)]
struct QuietAlerts {
    events: ValueState<i64>,
}

impl StatefulProcessor for QuietAlerts {
    type Key = Option<String>;
    type Input = Visit;
    type Output = QuietRow;

    fn init(&mut self, handle: &mut StatefulProcessorHandle) {
        self.events = handle.get_value_state("events", Ttl::NONE);
    }

    fn handle_input_rows(
        &mut self,
        _user: &Option<String>,
        rows: GroupRows<'_, Visit>,
        _timer_values: &TimerValues,
        h: &mut KeyHandle<'_>,
    ) -> impl IntoIterator<Item = QuietRow> {
        let events = self.events.get(h).unwrap_or(0) + rows.len() as i64;
        self.events.update(h, events);
        let latest = rows.filter_map(|r| r.ts).map(|t| t.0.div_euclid(1000)).max();
        let old = h.list_timers();
        if let Some(latest) = latest.filter(|l| old.iter().all(|t| *t < l + 5_000)) {
            old.into_iter().for_each(|t| h.delete_timer(t));
            h.register_timer(latest + 5_000);
        }
        std::iter::empty()
    }

    fn handle_expired_timer(
        &mut self,
        user: &Option<String>,
        _timer_values: &TimerValues,
        expired: ExpiredTimerInfo,
        h: &mut KeyHandle<'_>,
    ) -> impl IntoIterator<Item = QuietRow> {
        let events = self.events.get(h).unwrap_or(0);
        Some(QuietRow { user: user.clone(), events, fired_at: Timestamp(expired.get_expiry_time_in_ms() * 1000) })
    }
}

#[derive(Record)]
struct WatermarkTimerRow {
    user: Option<String>,
    events: i64,
    fired_at: Timestamp,
    watermark_at: Timestamp,
}

/// `WatermarkTimers`: each call with rows registers a timer at exactly the batch's watermark
/// (once there is one) and one at the key's latest event.
#[derive(Default)]
struct WatermarkTimers {
    events: ValueState<i64>,
}

impl StatefulProcessor for WatermarkTimers {
    type Key = Option<String>;
    type Input = Visit;
    type Output = WatermarkTimerRow;

    fn init(&mut self, handle: &mut StatefulProcessorHandle) {
        self.events = handle.get_value_state("events", Ttl::NONE);
    }

    fn handle_input_rows(
        &mut self,
        _user: &Option<String>,
        rows: GroupRows<'_, Visit>,
        timer_values: &TimerValues,
        h: &mut KeyHandle<'_>,
    ) -> impl IntoIterator<Item = WatermarkTimerRow> {
        let events = self.events.get(h).unwrap_or(0) + rows.len() as i64;
        self.events.update(h, events);
        let wm = timer_values.get_current_watermark_in_ms();
        if wm > 0 {
            h.register_timer(wm);
        }
        if let Some(latest) = rows.filter_map(|r| r.ts).map(|t| t.0.div_euclid(1000)).max() {
            h.register_timer(latest);
        }
        std::iter::empty()
    }

    fn handle_expired_timer(
        &mut self,
        user: &Option<String>,
        timer_values: &TimerValues,
        expired: ExpiredTimerInfo,
        h: &mut KeyHandle<'_>,
    ) -> impl IntoIterator<Item = WatermarkTimerRow> {
        Some(WatermarkTimerRow {
            user: user.clone(),
            events: self.events.get(h).unwrap_or(0),
            fired_at: Timestamp(expired.get_expiry_time_in_ms() * 1000),
            watermark_at: Timestamp(timer_values.get_current_watermark_in_ms() * 1000),
        })
    }
}

#[derive(Record)]
struct BatchTimeRow {
    user: Option<String>,
    events: i64,
    fired: bool,
}

/// `BatchTimeTimers`: each call with rows registers a processing-time timer at exactly the
/// batch's processing time; a fired timer says whether it fired at exactly its time.
#[derive(Default)]
struct BatchTimeTimers {
    events: ValueState<i64>,
}

impl StatefulProcessor for BatchTimeTimers {
    type Key = Option<String>;
    type Input = Visit;
    type Output = BatchTimeRow;

    fn init(&mut self, handle: &mut StatefulProcessorHandle) {
        self.events = handle.get_value_state("events", Ttl::NONE);
    }

    fn handle_input_rows(
        &mut self,
        user: &Option<String>,
        rows: GroupRows<'_, Visit>,
        timer_values: &TimerValues,
        h: &mut KeyHandle<'_>,
    ) -> impl IntoIterator<Item = BatchTimeRow> {
        let events = self.events.get(h).unwrap_or(0) + rows.len() as i64;
        self.events.update(h, events);
        h.register_timer(timer_values.get_current_processing_time_in_ms());
        Some(BatchTimeRow { user: user.clone(), events, fired: false })
    }

    fn handle_expired_timer(
        &mut self,
        user: &Option<String>,
        timer_values: &TimerValues,
        expired: ExpiredTimerInfo,
        h: &mut KeyHandle<'_>,
    ) -> impl IntoIterator<Item = BatchTimeRow> {
        let fired = expired.get_expiry_time_in_ms() == timer_values.get_current_processing_time_in_ms();
        Some(BatchTimeRow { user: user.clone(), events: self.events.get(h).unwrap_or(0), fired })
    }
}

#[derive(Record)]
struct TtlRow {
    user: Option<String>,
    events: i64,
    pages: String,
}

/// `TTL_MS` in tws_processors.py.
const TTL_MS: i64 = 60_000;

/// `TtlCounts`: a value and a map state, both with a TTL of a minute of processing time.
#[derive(Default)]
struct TtlCounts {
    events: ValueState<i64>,
    visits: MapState<String, i64>,
}

impl StatefulProcessor for TtlCounts {
    type Key = Option<String>;
    type Input = Visit;
    type Output = TtlRow;

    fn init(&mut self, handle: &mut StatefulProcessorHandle) {
        self.events = handle.get_value_state("events", Ttl::ms(TTL_MS));
        self.visits = handle.get_map_state("visits", Ttl::ms(TTL_MS));
    }

    fn handle_input_rows(
        &mut self,
        user: &Option<String>,
        rows: GroupRows<'_, Visit>,
        _timer_values: &TimerValues,
        h: &mut KeyHandle<'_>,
    ) -> impl IntoIterator<Item = TtlRow> {
        let events = self.events.get(h).unwrap_or(0) + rows.len() as i64;
        for r in rows {
            let page = r.page.clone().unwrap_or_default();
            let n = self.visits.get_value(h, &page).unwrap_or(0);
            self.visits.update_value(h, page, n + 1);
        }
        self.events.update(h, events);
        let mut pages = self.visits.keys(h);
        pages.sort();
        Some(TtlRow { user: user.clone(), events, pages: pages.join(",") })
    }
}

#[derive(Record)]
struct InitialCountsRow {
    user: Option<String>,
    events: i64,
    seeded: i64,
}

/// `InitialCounts`: events so far and the count the initial state gave, per user.
#[derive(Default)]
struct InitialCounts {
    events: ValueState<i64>,
    seeded: ValueState<i64>,
}

impl StatefulProcessor for InitialCounts {
    type Key = Option<String>;
    type Input = Visit;
    type Output = InitialCountsRow;

    fn init(&mut self, handle: &mut StatefulProcessorHandle) {
        self.events = handle.get_value_state("events", Ttl::NONE);
        self.seeded = handle.get_value_state("seeded", Ttl::NONE);
    }

    fn handle_input_rows(
        &mut self,
        user: &Option<String>,
        rows: GroupRows<'_, Visit>,
        _timer_values: &TimerValues,
        h: &mut KeyHandle<'_>,
    ) -> impl IntoIterator<Item = InitialCountsRow> {
        let events = self.events.get(h).unwrap_or(0) + rows.len() as i64;
        let seeded = self.seeded.get(h).unwrap_or(0);
        self.events.update(h, events);
        Some(InitialCountsRow { user: user.clone(), events, seeded })
    }
}

impl StatefulProcessorWithInitialState for InitialCounts {
    type InitialState = i64;

    fn handle_initial_state(
        &mut self,
        _user: &Option<String>,
        counts: Vec<i64>,
        _tv: &TimerValues,
        h: &mut KeyHandle<'_>,
    ) {
        let n: i64 = counts.iter().sum();
        let events = self.events.get(h).unwrap_or(0);
        let seeded = self.seeded.get(h).unwrap_or(0);
        self.events.update(h, events + n);
        self.seeded.update(h, seeded + n);
    }
}

/// The case's initial state: its static table `initial` (user, count), read as Spark reads it.
fn initial_counts() -> Vec<(Option<String>, i64)> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/oracle/cases/tws_initial_state/static/initial.jsonl");
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|line| {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            (v["user"].as_str().map(str::to_string), v["count"].as_i64().unwrap())
        })
        .collect()
}

stream_query! {
    /// `groupBy(user).transformWithStateInPandas(InitialCounts(), ..., "Update", "None",
    /// initialState=initial.groupBy("user"))`.
    query InitialCountsQuery(events: Visit) -> InitialCountsRow, mode = update {
        events
            .group_by(user)
            .transform_with_state(InitialCounts::default(), time_mode = none, initial_state = initial_counts())
    }

    /// `groupBy(user).transformWithStateInPandas(PageStats(), ..., "Update", "None")`.
    query PageStatsQuery(events: Visit) -> PageStatsRow, mode = update {
        events.group_by(user).transform_with_state(PageStats::default(), time_mode = none)
    }

    /// `groupBy(user).transformWithStateInPandas(IdleTimers(), ..., "Update", "ProcessingTime")`.
    query IdleTimersQuery(events: Visit) -> IdleRow, mode = update {
        events.group_by(user).transform_with_state(IdleTimers::default(), time_mode = processing_time)
    }

    /// `withWatermark(ts, 2 seconds).groupBy(user).transformWithStateInPandas(QuietAlerts(),
    /// ..., "Append", "EventTime")`.
    query QuietAlertsQuery(events: Visit) -> QuietRow, mode = append {
        events
            .with_watermark(ts, "2 seconds")
            .group_by(user)
            .transform_with_state(QuietAlerts::default(), time_mode = event_time)
    }

    /// `withWatermark(ts, 2 seconds).groupBy(user).transformWithStateInPandas(WatermarkTimers(),
    /// ..., "Append", "EventTime")`.
    query WatermarkTimersQuery(events: Visit) -> WatermarkTimerRow, mode = append {
        events
            .with_watermark(ts, "2 seconds")
            .group_by(user)
            .transform_with_state(WatermarkTimers::default(), time_mode = event_time)
    }

    /// `groupBy(user).transformWithStateInPandas(BatchTimeTimers(), ..., "Update", "ProcessingTime")`.
    query BatchTimeTimersQuery(events: Visit) -> BatchTimeRow, mode = update {
        events.group_by(user).transform_with_state(BatchTimeTimers::default(), time_mode = processing_time)
    }

    /// `groupBy(user).transformWithStateInPandas(TtlCounts(), ..., "Update", "ProcessingTime")`.
    query TtlCountsQuery(events: Visit) -> TtlRow, mode = update {
        events.group_by(user).transform_with_state(TtlCounts::default(), time_mode = processing_time)
    }
}

/// A case run on its query: the events from the case's files, the rows and progress per batch
/// compared with Spark's.
macro_rules! golden_tws {
    ($case:literal, $query:ident) => {{
        let staging = tempfile::tempdir().unwrap();
        let table = MemoryTable::new();
        let query = $query::builder()
            .events(Source::file(staging.path()).json())
            .sink(Sink::memory(&table))
            .shuffle_partitions(2)
            .start()
            .unwrap();
        run_case($case, staging.path(), &query, &table, InputRows::Check);
        query.stop().unwrap();
    }};
}

#[test]
fn tws_value_list_map() {
    golden_tws!("tws_value_list_map", PageStatsQuery);
}

#[test]
fn tws_event_time_timers() {
    golden_tws!("tws_event_time_timers", QuietAlertsQuery);
}

/// A timer at exactly the watermark fires in the batch that registers it (Spark fires event-time
/// timers at or before the watermark).
#[test]
fn tws_timer_at_watermark() {
    golden_tws!("tws_timer_at_watermark", WatermarkTimersQuery);
}

/// Processing time from a manual clock moved as the harness paused Spark's wall clock (see
/// the cases' descriptions); no-data batches off, as the cases ran Spark.
fn replay_with_clock(case: &str, builder: impl FnOnce(&Path, &MemoryTable, &ManualClock) -> StreamingQuery) {
    let staging = tempfile::tempdir().unwrap();
    let table = MemoryTable::new();
    let clock = ManualClock::new(1_704_110_400_000);
    let query = builder(staging.path(), &table, &clock);
    run_case_with_clock(case, staging.path(), &query, &table, InputRows::Check, &clock);
    query.stop().unwrap();
}

use std::path::Path;

#[test]
fn tws_processing_time_timers() {
    replay_with_clock("tws_processing_time_timers", |staging, table, clock| {
        IdleTimersQuery::builder()
            .events(Source::file(staging).json())
            .sink(Sink::memory(table))
            .shuffle_partitions(2)
            .no_data_batches(false)
            .clock(clock.clone())
            .start()
            .unwrap()
    });
}

#[test]
fn tws_ttl() {
    replay_with_clock("tws_ttl", |staging, table, clock| {
        TtlCountsQuery::builder()
            .events(Source::file(staging).json())
            .sink(Sink::memory(table))
            .shuffle_partitions(2)
            .no_data_batches(false)
            .clock(clock.clone())
            .start()
            .unwrap()
    });
}

/// A processing-time timer at exactly the batch's time fires in that batch (Spark fires timers
/// at or before the batch time).
#[test]
fn tws_timer_at_batch_time() {
    replay_with_clock("tws_timer_at_batch_time", |staging, table, clock| {
        BatchTimeTimersQuery::builder()
            .events(Source::file(staging).json())
            .sink(Sink::memory(table))
            .shuffle_partitions(2)
            .no_data_batches(false)
            .clock(clock.clone())
            .start()
            .unwrap()
    });
}

/// The initial state is handled in the first batch only: the query is stopped after it and
/// restarted from its checkpoint before each later step, and never handles it again.
#[test]
fn tws_initial_state() {
    let staging = tempfile::tempdir().unwrap();
    let cp = tempfile::tempdir().unwrap();
    let table = MemoryTable::new();
    let start = || {
        InitialCountsQuery::builder()
            .events(Source::file(staging.path()).json())
            .sink(Sink::memory(&table))
            .checkpoint(cp.path())
            .shuffle_partitions(2)
            .start()
            .unwrap()
    };
    run_case_restarting("tws_initial_state", staging.path(), &start, &table, InputRows::Check, 1);
}

#[derive(Record)]
struct AlertCount {
    user: Option<String>,
    alerts: i64,
    events: i64,
}

stream_query! {
    /// `QuietAlerts`' rows, then `where(events > 1).dropDuplicates(user)`: operators over the
    /// processor's records.
    query QuietAlertsThenDedup(events: Visit) -> QuietRow, mode = append {
        events
            .with_watermark(ts, "2 seconds")
            .group_by(user)
            .transform_with_state(QuietAlerts::default(), time_mode = event_time)
            .filter(events > 1)
            .drop_duplicates(user)
    }

    /// `QuietAlerts`' rows, then `where(events > 1).groupBy(user).agg(count, max(events))` in
    /// update mode.
    query QuietAlertsThenCount(events: Visit) -> AlertCount, mode = update {
        events
            .with_watermark(ts, "2 seconds")
            .group_by(user)
            .transform_with_state(QuietAlerts::default(), time_mode = event_time)
            .filter(events > 1)
            .group_by(user)
            .agg(count() as alerts, max(events) as events)
    }
}

#[test]
fn tws_then_dedup() {
    golden_tws!("tws_then_dedup", QuietAlertsThenDedup);
}

#[test]
fn tws_then_count() {
    golden_tws!("tws_then_count", QuietAlertsThenCount);
}

/// The cases without processing time, run continuously (`Trigger::continuous`): per step, the
/// rows the sink got equal Spark's (`run_case_continuously`); each vector calls the processor
/// for its keys with rows, each epoch's end fires the timers its watermark passed.
mod continuous {
    use super::*;
    use flowgate_codegen_tests::run_case_continuously;

    macro_rules! continuous_case {
        ($test:ident, $case:literal, $query:ident) => {
            #[test]
            fn $test() {
                let staging = tempfile::tempdir().unwrap();
                let table = MemoryTable::new();
                let query = $query::builder()
                    .events(Source::file(staging.path()).json())
                    .sink(Sink::memory(&table))
                    .shuffle_partitions(2)
                    .trigger(Trigger::continuous("5 milliseconds"))
                    .start()
                    .unwrap();
                run_case_continuously($case, staging.path(), &query, &table);
            }
        };
    }

    continuous_case!(tws_value_list_map, "tws_value_list_map", PageStatsQuery);
    continuous_case!(tws_event_time_timers, "tws_event_time_timers", QuietAlertsQuery);
    continuous_case!(tws_timer_at_watermark, "tws_timer_at_watermark", WatermarkTimersQuery);
}
