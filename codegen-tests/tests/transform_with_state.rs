//! Spark 4's `transformWithState` end to end: a `StatefulProcessor` with value, list and map
//! state, processing-time timers driven by a manual clock (no sleeps), event-time timers on
//! the watermark, TTL, its state checkpointed and restored, and a restart whose processor
//! declares other state refused before the first batch, variable by variable.

use std::path::Path;

use flowgate::prelude::*;

#[derive(Record, Clone)]
struct Event {
    user: String,
    time: Timestamp,
    page: String,
}

#[derive(Record, Debug, PartialEq, Clone)]
struct SessionEnd {
    user: String,
    events: i64,
    pages: String,
    top_page: String,
    ended: bool,
}

/// Tracks a session per user: its event count (value state), its pages in order (list
/// state) and visits per page (map state); the session ends 10 s of processing time after
/// its last event (a processing-time timer, moved on every event).
#[derive(Default)]
struct Sessions {
    events: ValueState<i64>,
    pages: ListState<String>,
    visits: MapState<String, i64>,
}

impl Sessions {
    fn report(&self, user: &str, h: &KeyHandle<'_>, ended: bool) -> SessionEnd {
        let visits = self.visits.iter(h);
        let top = visits.iter().max_by_key(|(p, n)| (*n, std::cmp::Reverse(p.clone()))).map(|(p, _)| p.clone());
        SessionEnd {
            user: user.into(),
            events: self.events.get(h).unwrap_or(0),
            pages: self.pages.get(h).join(","),
            top_page: top.unwrap_or_default(),
            ended,
        }
    }
}

impl StatefulProcessor for Sessions {
    type Key = String;
    type Input = Event;
    type Output = SessionEnd;

    fn init(&mut self, handle: &mut StatefulProcessorHandle) {
        self.events = handle.get_value_state("events", Ttl::NONE);
        self.pages = handle.get_list_state("pages", Ttl::NONE);
        self.visits = handle.get_map_state("visits", Ttl::NONE);
    }

    fn handle_input_rows(
        &mut self,
        user: &String,
        rows: GroupRows<'_, Event>,
        timer_values: &TimerValues,
        h: &mut KeyHandle<'_>,
    ) -> impl IntoIterator<Item = SessionEnd> {
        let n = self.events.get(h).unwrap_or(0) + rows.len() as i64;
        self.events.update(h, n);
        for e in rows {
            let v = self.visits.get_value(h, &e.page).unwrap_or(0);
            self.visits.update_value(h, e.page.clone(), v + 1);
            self.pages.append_value(h, e.page);
        }
        for t in h.list_timers() {
            h.delete_timer(t);
        }
        h.register_timer(timer_values.get_current_processing_time_in_ms() + 10_000);
        Some(self.report(user, h, false))
    }

    fn handle_expired_timer(
        &mut self,
        user: &String,
        _timer_values: &TimerValues,
        _expired: ExpiredTimerInfo,
        h: &mut KeyHandle<'_>,
    ) -> impl IntoIterator<Item = SessionEnd> {
        let end = self.report(user, h, true);
        self.events.clear(h);
        self.pages.clear(h);
        self.visits.clear(h);
        vec![end]
    }
}

stream_query! {
    /// `groupBy(user).transformWithState(Sessions, ProcessingTime, update)`.
    query SessionQuery(events: Event) -> SessionEnd, mode = update {
        events
            .filter(page != "")
            .group_by(user)
            .transform_with_state(Sessions::default(), time_mode = processing_time)
    }
}

fn ev(user: &str, secs: i64, page: &str) -> Event {
    Event { user: user.into(), time: Timestamp(secs * 1_000_000), page: page.into() }
}

fn end(user: &str, events: i64, pages: &str, top: &str, ended: bool) -> SessionEnd {
    SessionEnd { user: user.into(), events, pages: pages.into(), top_page: top.into(), ended }
}

fn sorted(mut rows: Vec<SessionEnd>) -> Vec<SessionEnd> {
    rows.sort_by(|a, b| (&a.user, a.ended).cmp(&(&b.user, b.ended)));
    rows
}

#[test]
fn sessions_keep_value_list_and_map_state_and_end_when_the_manual_clock_passes_their_timer() {
    let input = MemoryStream::<Event>::new();
    let table = MemoryTable::new();
    let clock = ManualClock::new(1_000_000);
    let q = SessionQuery::builder()
        .events(Source::memory(&input))
        .sink(Sink::memory(&table))
        .clock(clock.clone())
        .shuffle_partitions(2)
        .start()
        .unwrap();
    input.add(vec![ev("a", 1, "home"), ev("b", 1, "cart"), ev("a", 2, "shop"), ev("a", 3, "home"), ev("c", 3, "")]);
    q.process_all_available().unwrap();
    let rows: Vec<SessionEnd> = table.rows().unwrap();
    assert_eq!(sorted(rows), vec![end("a", 3, "home,shop,home", "home", false), end("b", 1, "cart", "cart", false)]);
    clock.advance_ms(6_000);
    input.add(vec![ev("b", 9, "pay")]);
    q.process_all_available().unwrap();
    // At 1 011 000 a's timer (1 010 000) is behind; b's (1 016 000) is not.
    clock.advance_ms(5_000);
    q.process_all_available().unwrap();
    let rows: Vec<SessionEnd> = table.rows().unwrap();
    assert_eq!(rows[2..], [end("b", 2, "cart,pay", "cart", false), end("a", 3, "home,shop,home", "home", true)]);
    clock.advance_ms(100_000);
    q.process_all_available().unwrap();
    let rows: Vec<SessionEnd> = table.rows().unwrap();
    assert_eq!(rows[4..], [end("b", 2, "cart,pay", "cart", true)]);
    let p = q.last_progress().unwrap();
    let op = &p.state_operators[0];
    assert_eq!((op.operator_name.as_str(), op.num_rows_total, op.num_rows_removed), ("transformWithStateExec", 0, 5));
    assert!(op.custom_metrics.contains(&("numExpiredTimers".to_string(), 1)), "{:?}", op.custom_metrics);
    // Nothing is due any more: no more batches however far the clock goes.
    let batches = q.recent_progress().len();
    clock.advance_ms(1_000_000);
    q.process_all_available().unwrap();
    assert_eq!(q.recent_progress().len(), batches);
    q.stop().unwrap();
}

#[derive(Record, Debug, PartialEq, Clone)]
struct Alert {
    user: String,
    pages: i64,
    at_ms: i64,
}

/// Event time: counts a user's pages and reports them when the watermark passes 5 s after
/// the user's latest event (an event-time timer, moved forward only); the count lives 30 s
/// of processing time after its last write (TTL).
#[derive(Default)]
struct Quiet {
    pages: ValueState<i64>,
}

impl StatefulProcessor for Quiet {
    type Key = String;
    type Input = Event;
    type Output = Alert;

    fn init(&mut self, handle: &mut StatefulProcessorHandle) {
        self.pages = handle.get_value_state("pages", Ttl::duration("30 seconds"));
    }

    fn handle_input_rows(
        &mut self,
        user: &String,
        rows: GroupRows<'_, Event>,
        _timer_values: &TimerValues,
        h: &mut KeyHandle<'_>,
    ) -> impl IntoIterator<Item = Alert> {
        let n = self.pages.get(h).unwrap_or(0) + rows.len() as i64;
        let latest = rows.map(|e| e.time.0 / 1000).max().unwrap_or(0);
        self.pages.update(h, n);
        let old = h.list_timers();
        if old.iter().all(|t| *t < latest + 5_000) {
            old.into_iter().for_each(|t| h.delete_timer(t));
            h.register_timer(latest + 5_000);
        }
        let _ = user;
        std::iter::empty()
    }

    fn handle_expired_timer(
        &mut self,
        user: &String,
        timer_values: &TimerValues,
        expired: ExpiredTimerInfo,
        h: &mut KeyHandle<'_>,
    ) -> impl IntoIterator<Item = Alert> {
        assert!(timer_values.get_current_watermark_in_ms() > expired.get_expiry_time_in_ms());
        let pages = self.pages.get(h).unwrap_or(-1);
        Some(Alert { user: user.clone(), pages, at_ms: expired.get_expiry_time_in_ms() })
    }
}

stream_query! {
    query QuietQuery(events: Event) -> Alert, mode = append {
        events
            .with_watermark(time, "2 seconds")
            .group_by(user)
            .transform_with_state(Quiet::default(), time_mode = event_time)
    }
}

#[test]
fn event_time_timers_fire_on_the_watermark_late_rows_are_dropped_and_a_ttl_expires_state() {
    let input = MemoryStream::<Event>::new();
    let table = MemoryTable::new();
    let clock = ManualClock::new(0);
    let q = QuietQuery::builder()
        .events(Source::memory(&input))
        .sink(Sink::memory(&table))
        .clock(clock.clone())
        .start()
        .unwrap();
    input.add(vec![ev("a", 10, "x"), ev("a", 11, "y"), ev("b", 12, "z")]);
    q.process_all_available().unwrap();
    // Watermark 10 s: a's timer (16 s) and b's (17 s) are ahead.
    input.add(vec![ev("b", 20, "w"), ev("a", 5, "late")]);
    q.process_all_available().unwrap();
    // The a 5 s row was behind the late-row watermark (10 s) and dropped; the watermark then
    // reaches 18 s and a's timer (16 s) fires in the no-data batch; b's moved to 25 s.
    let rows: Vec<Alert> = table.rows().unwrap();
    assert_eq!(rows, vec![Alert { user: "a".into(), pages: 2, at_ms: 16_000 }]);
    // 40 s of processing time later b's count (last written at 0) has expired.
    clock.advance_ms(40_000);
    input.add(vec![ev("c", 40, "v")]);
    q.process_all_available().unwrap();
    let rows: Vec<Alert> = table.rows().unwrap();
    assert_eq!(rows[1..], [Alert { user: "b".into(), pages: -1, at_ms: 25_000 }]);
    let dropped: u64 = q.recent_progress().iter().map(|p| p.state_operators[0].num_rows_dropped_by_watermark).sum();
    assert_eq!(dropped, 1);
    let ttl: u64 = q
        .recent_progress()
        .iter()
        .flat_map(|p| p.state_operators[0].custom_metrics.clone())
        .filter(|(n, _)| n == "numValuesRemovedDueToTTLExpiry")
        .map(|(_, v)| v)
        .sum();
    assert_eq!(ttl, 2, "a's and b's counts expired (c's was written at 40 s)");
    q.stop().unwrap();
}

fn run_sessions(input: &Path, cp: &Path, clock: &ManualClock) -> flowgate::Result<Vec<SessionEnd>> {
    let table = MemoryTable::new();
    let q = SessionQuery::builder()
        .events(Source::file(input).json())
        .sink(Sink::memory(&table))
        .checkpoint(cp)
        .clock(clock.clone())
        .shuffle_partitions(3)
        .trigger(Trigger::available_now())
        .start()?;
    q.await_termination()?;
    table.rows()
}

fn write(dir: &Path, name: &str, events: &[Event]) {
    let text: String = events
        .iter()
        .map(|e| {
            format!("{{\"user\": \"{}\", \"time\": {}, \"page\": \"{}\"}}\n", e.user, e.time.0 / 1_000_000, e.page)
        })
        .collect();
    let tmp = dir.join(format!(".{name}"));
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(tmp, dir.join(name)).unwrap();
}

#[test]
fn state_variables_and_timers_survive_a_restart_from_the_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let (input, cp) = (dir.path().join("in"), dir.path().join("cp"));
    std::fs::create_dir_all(&input).unwrap();
    let clock = ManualClock::new(0);
    write(&input, "1.json", &[ev("a", 1, "home"), ev("b", 1, "cart")]);
    assert_eq!(
        sorted(run_sessions(&input, &cp, &clock).unwrap()),
        vec![end("a", 1, "home", "home", false), end("b", 1, "cart", "cart", false)]
    );
    clock.advance_ms(5_000);
    write(&input, "2.json", &[ev("a", 3, "shop"), ev("a", 4, "shop")]);
    assert_eq!(run_sessions(&input, &cp, &clock).unwrap(), vec![end("a", 3, "home,shop,shop", "shop", false)]);
    // After the restart b's timer (10 s) is due at 11 s; a's (15 s) is not.
    clock.advance_ms(6_000);
    assert_eq!(run_sessions(&input, &cp, &clock).unwrap(), vec![end("b", 1, "cart", "cart", true)]);
    clock.advance_ms(6_000);
    write(&input, "3.json", &[ev("a", 16, "home")]);
    // a's timer (15 s) was due before this batch's rows arrived, but a key with rows is
    // called with them first; its timer then moved to 27 s.
    assert_eq!(run_sessions(&input, &cp, &clock).unwrap(), vec![end("a", 4, "home,shop,shop,home", "home", false)]);
    let meta = String::from_utf8_lossy(&std::fs::read(cp.join("metadata")).unwrap()).to_string();
    assert!(
        meta.contains("transform_with_state[events:value[i64],pages:list[utf8],visits:map[utf8,i64]]"),
        "each state variable's schema is recorded: {meta}"
    );
}

mod changed {
    //! The same query whose processor's state changed: `events` became `f64`, `visits` is
    //! gone, `last` is new.
    use flowgate::prelude::*;

    use super::{Event, SessionEnd};

    #[derive(Default)]
    pub(super) struct Sessions {
        events: ValueState<f64>,
        pages: ListState<String>,
        last: ValueState<Timestamp>,
    }

    impl StatefulProcessor for Sessions {
        type Key = String;
        type Input = Event;
        type Output = SessionEnd;
        fn init(&mut self, handle: &mut StatefulProcessorHandle) {
            self.events = handle.get_value_state("events", Ttl::NONE);
            self.pages = handle.get_list_state("pages", Ttl::NONE);
            self.last = handle.get_value_state("last", Ttl::NONE);
        }
        fn handle_input_rows(
            &mut self,
            user: &String,
            mut rows: GroupRows<'_, Event>,
            _timer_values: &TimerValues,
            h: &mut KeyHandle<'_>,
        ) -> impl IntoIterator<Item = SessionEnd> {
            self.events.update(h, rows.len() as f64);
            self.pages.clear(h);
            if let Some(first) = rows.next() {
                self.last.update(h, first.time);
            }
            [SessionEnd { user: user.clone(), events: 0, pages: String::new(), top_page: String::new(), ended: false }]
        }
    }

    stream_query! {
        pub(super) query SessionQuery(events: Event) -> SessionEnd, mode = update {
            events
                .filter(page != "")
                .group_by(user)
                .transform_with_state(Sessions::default(), time_mode = processing_time)
        }
    }
}

#[test]
fn a_restart_whose_processor_declares_other_state_is_refused_before_the_first_batch_showing_the_difference() {
    let dir = tempfile::tempdir().unwrap();
    let (input, cp) = (dir.path().join("in"), dir.path().join("cp"));
    std::fs::create_dir_all(&input).unwrap();
    write(&input, "1.json", &[ev("a", 1, "home")]);
    run_sessions(&input, &cp, &ManualClock::new(0)).unwrap();
    write(&input, "2.json", &[ev("a", 2, "shop")]);
    let table = MemoryTable::new();
    let err = changed::SessionQuery::builder()
        .events(Source::file(&input).json())
        .sink(Sink::memory(&table))
        .checkpoint(&cp)
        .trigger(Trigger::available_now())
        .start()
        .and_then(|q| q.await_termination())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("state variable `events`: value[i64] in the checkpoint, value[f64] now")
            && err.contains("state variable `visits` (map[utf8,i64]) removed")
            && err.contains("state variable `last` (value[timestamp_us]) added"),
        "{err}"
    );
    assert!(table.rows::<SessionEnd>().unwrap().is_empty(), "no batch ran");
    assert!(!cp.join("offsets/1").exists());
}

mod pruned {
    //! The same query whose processor no longer keeps `pages`: `init` deletes it
    //! (`delete_if_exists`, Spark's `deleteIfExists`); `Sessions` without the deletion is
    //! `Unpruned`.
    use flowgate::prelude::*;

    use super::{Event, SessionEnd};

    #[derive(Default)]
    pub(super) struct Sessions<const DELETE: bool> {
        events: ValueState<i64>,
        visits: MapState<String, i64>,
    }

    impl<const DELETE: bool> StatefulProcessor for Sessions<DELETE> {
        type Key = String;
        type Input = Event;
        type Output = SessionEnd;
        fn init(&mut self, handle: &mut StatefulProcessorHandle) {
            self.events = handle.get_value_state("events", Ttl::NONE);
            if DELETE {
                handle.delete_if_exists("pages");
            }
            self.visits = handle.get_map_state("visits", Ttl::NONE);
        }
        fn handle_input_rows(
            &mut self,
            user: &String,
            rows: GroupRows<'_, Event>,
            _timer_values: &TimerValues,
            h: &mut KeyHandle<'_>,
        ) -> impl IntoIterator<Item = SessionEnd> {
            let n = self.events.get(h).unwrap_or(0) + rows.len() as i64;
            self.events.update(h, n);
            for e in rows {
                let v = self.visits.get_value(h, &e.page).unwrap_or(0);
                self.visits.update_value(h, e.page, v + 1);
            }
            let visits = self.visits.iter(h);
            let top = visits.iter().max_by_key(|(p, n)| (*n, std::cmp::Reverse(p.clone()))).map(|(p, _)| p.clone());
            Some(SessionEnd {
                user: user.clone(),
                events: n,
                pages: String::new(),
                top_page: top.unwrap_or_default(),
                ended: false,
            })
        }
    }

    stream_query! {
        pub(super) query SessionQuery(events: Event) -> SessionEnd, mode = update {
            events
                .filter(page != "")
                .group_by(user)
                .transform_with_state(Sessions::<true>::default(), time_mode = processing_time)
        }

        pub(super) query Unpruned(events: Event) -> SessionEnd, mode = update {
            events
                .filter(page != "")
                .group_by(user)
                .transform_with_state(Sessions::<false>::default(), time_mode = processing_time)
        }
    }
}

fn run_pruned(input: &Path, cp: &Path, clock: &ManualClock) -> flowgate::Result<Vec<SessionEnd>> {
    let table = MemoryTable::new();
    let q = pruned::SessionQuery::builder()
        .events(Source::file(input).json())
        .sink(Sink::memory(&table))
        .checkpoint(cp)
        .clock(clock.clone())
        .trigger(Trigger::available_now())
        .start()?;
    q.await_termination()?;
    table.rows()
}

/// Spark's `deleteIfExists`: a restart whose processor dropped a state variable and deletes
/// it in `init` is accepted, the variable's values are gone, the others and the timers
/// continue; the checkpoint's layout keeps the variable's place, so the original processor
/// can read the state again (with the variable empty), and one that drops it without
/// deleting it is refused with a hint.
#[test]
fn a_state_variable_deleted_in_init_is_dropped_from_the_checkpoint_and_the_restart_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let (input, cp) = (dir.path().join("in"), dir.path().join("cp"));
    std::fs::create_dir_all(&input).unwrap();
    let clock = ManualClock::new(0);
    write(&input, "1.json", &[ev("a", 1, "home"), ev("b", 1, "cart"), ev("a", 2, "shop")]);
    run_sessions(&input, &cp, &clock).unwrap();
    // Without the deletion the restart is refused before any batch, saying what to do.
    write(&input, "2.json", &[ev("a", 3, "shop")]);
    let table = MemoryTable::new();
    let err = pruned::Unpruned::builder()
        .events(Source::file(&input).json())
        .sink(Sink::memory(&table))
        .checkpoint(&cp)
        .trigger(Trigger::available_now())
        .start()
        .and_then(|q| q.await_termination())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("state variable `pages` (list[utf8]) removed")
            && err.contains("handle.delete_if_exists(\"name\")"),
        "{err}"
    );
    assert!(!cp.join("offsets/1").exists());
    // With it: events and visits continue, twice (the deletion stays in `init`).
    clock.advance_ms(1_000);
    assert_eq!(run_pruned(&input, &cp, &clock).unwrap(), vec![end("a", 3, "", "shop", false)]);
    write(&input, "3.json", &[ev("b", 4, "cart")]);
    assert_eq!(run_pruned(&input, &cp, &clock).unwrap(), vec![end("b", 2, "", "cart", false)]);
    // The original processor reads the checkpoint again: `pages` is empty for every key,
    // and b's timer, registered before the deletion (at 10 s), still fires.
    clock.advance_ms(10_000);
    write(&input, "4.json", &[ev("a", 5, "home")]);
    assert_eq!(
        sorted(run_sessions(&input, &cp, &clock).unwrap()),
        vec![end("a", 4, "home", "home", false), end("b", 2, "", "cart", true)]
    );
}

/// A page count per user as a static table keeps it (a user may have several rows).
#[derive(Record, Clone)]
struct PageSeed {
    user: String,
    pages: i64,
}

#[derive(Record, Debug, PartialEq, Clone)]
struct PageCount {
    user: String,
    pages: i64,
}

/// Counts pages per user, from the static table's counts (summed per user) in batch 0.
#[derive(Default)]
struct SeededPages {
    pages: ValueState<i64>,
}

impl StatefulProcessor for SeededPages {
    type Key = String;
    type Input = Event;
    type Output = PageCount;

    fn init(&mut self, handle: &mut StatefulProcessorHandle) {
        self.pages = handle.get_value_state("pages", Ttl::NONE);
    }

    fn handle_input_rows(
        &mut self,
        user: &String,
        rows: GroupRows<'_, Event>,
        _timer_values: &TimerValues,
        h: &mut KeyHandle<'_>,
    ) -> impl IntoIterator<Item = PageCount> {
        let pages = self.pages.get(h).unwrap_or(0) + rows.len() as i64;
        self.pages.update(h, pages);
        Some(PageCount { user: user.clone(), pages })
    }
}

impl StatefulProcessorWithInitialState for SeededPages {
    type InitialState = PageSeed;

    fn handle_initial_state(
        &mut self,
        _user: &String,
        initial: Vec<PageSeed>,
        _timer_values: &TimerValues,
        h: &mut KeyHandle<'_>,
    ) {
        self.pages.update(h, initial.iter().map(|s| s.pages).sum());
    }
}

stream_query! {
    query SeededPageCounts(events: Event, seeds: static PageSeed) -> PageCount, mode = update {
        events
            .group_by(user)
            .transform_with_state(SeededPages::default(), time_mode = none, initial_state = seeds)
    }
}

/// Spark 4's `initialState` from a batch `Dataset`: the static input's records are handed to
/// `handle_initial_state` per key (both of a key's rows to one call) in batch 0 only; a
/// restart reads the static input again and does not apply it.
#[test]
fn a_static_input_as_the_processors_initial_state_is_handled_in_the_first_batch_only() {
    let dir = tempfile::tempdir().unwrap();
    let (input, cp) = (dir.path().join("in"), dir.path().join("cp"));
    std::fs::create_dir_all(&input).unwrap();
    let run = |seeds: Vec<PageSeed>| -> flowgate::Result<Vec<PageCount>> {
        let (table, statics) = (MemoryTable::new(), MemoryStream::<PageSeed>::new());
        statics.add(seeds);
        let q = SeededPageCounts::builder()
            .events(Source::file(&input).json())
            .seeds(Source::memory(&statics))
            .sink(Sink::memory(&table))
            .checkpoint(&cp)
            .shuffle_partitions(3)
            .trigger(Trigger::available_now())
            .start()?;
        q.await_termination()?;
        let mut rows: Vec<PageCount> = table.rows()?;
        rows.sort_by(|a, b| a.user.cmp(&b.user));
        Ok(rows)
    };
    let seed = |u: &str, pages| PageSeed { user: u.into(), pages };
    let count = |u: &str, pages| PageCount { user: u.into(), pages };
    write(&input, "1.json", &[ev("a", 1, "home"), ev("b", 1, "cart"), ev("a", 2, "shop")]);
    assert_eq!(run(vec![seed("a", 10), seed("z", 7), seed("a", 5)]).unwrap(), vec![count("a", 17), count("b", 1)]);
    write(&input, "2.json", &[ev("z", 3, "home"), ev("a", 3, "home")]);
    assert_eq!(run(vec![seed("a", 100), seed("q", 5)]).unwrap(), vec![count("a", 18), count("z", 8)]);
}
