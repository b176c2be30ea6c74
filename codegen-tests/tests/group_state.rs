//! Arbitrary stateful processing end to end: `map_groups_with_state` and
//! `flat_map_groups_with_state` with typed user state, processing-time timeouts driven by a
//! manual clock (no sleeps), event-time timeouts on the watermark, the state checkpointed and
//! restored, and a restart with a changed state type refused, field by field.

use std::path::Path;

use flowgate::prelude::*;

#[derive(Record, Clone)]
struct Event {
    user: String,
    time: Timestamp,
    clicks: i64,
}

/// One user's session, as the state keeps it.
#[derive(StateCodec, Clone, Debug, PartialEq)]
struct Session {
    start: Timestamp,
    end: Timestamp,
    events: i64,
    clicks: i64,
}

#[derive(Record, Debug, PartialEq, Clone)]
struct SessionUpdate {
    user: String,
    events: i64,
    clicks: i64,
    expired: bool,
}

/// The programming guide's session tracking: a session ends after 10 s of processing time
/// without events.
fn track(user: &str, events: Vec<Event>, state: &mut GroupState<Session>) -> SessionUpdate {
    if state.has_timed_out() {
        let s = state.get().clone();
        state.remove();
        return SessionUpdate { user: user.into(), events: s.events, clicks: s.clicks, expired: true };
    }
    let mut s = state.get_option().cloned().unwrap_or(Session {
        start: events[0].time,
        end: events[0].time,
        events: 0,
        clicks: 0,
    });
    for e in &events {
        s.start = s.start.min(e.time);
        s.end = s.end.max(e.time);
        s.events += 1;
        s.clicks += e.clicks;
    }
    state.update(s.clone());
    state.set_timeout_duration(10_000);
    SessionUpdate { user: user.into(), events: s.events, clicks: s.clicks, expired: false }
}

#[derive(Record, Debug, PartialEq, Clone)]
struct Alert {
    user: String,
    clicks: i64,
    at: Timestamp,
}

/// Emits every event with more than 2 clicks, and the user's total once the watermark passes
/// 5 s after their last event.
fn alerts(user: &str, events: Vec<Event>, state: &mut GroupState<i64>) -> Vec<Alert> {
    if state.has_timed_out() {
        let total = *state.get();
        state.remove();
        return vec![Alert { user: user.into(), clicks: total, at: Timestamp(-1) }];
    }
    let mut out = Vec::new();
    let mut total = state.get_option().copied().unwrap_or(0);
    let mut last = i64::MIN;
    for e in events {
        total += e.clicks;
        last = last.max(e.time.0 / 1000);
        if e.clicks > 2 {
            out.push(Alert { user: user.into(), clicks: e.clicks, at: e.time });
        }
    }
    state.update(total);
    state.set_timeout_timestamp(last + 5_000);
    out
}

stream_query! {
    query Sessions(events: Event) -> SessionUpdate, mode = update {
        events
            .filter(clicks >= 0)
            .group_by(user)
            .map_groups_with_state(track, timeout = processing_time)
    }

    query Alerts(events: Event) -> Alert, mode = append {
        events
            .with_watermark(time, "2 seconds")
            .group_by(user)
            .flat_map_groups_with_state(alerts, timeout = event_time)
    }
}

fn ev(user: &str, secs: i64, clicks: i64) -> Event {
    Event { user: user.into(), time: Timestamp(secs * 1_000_000), clicks }
}

fn upd(user: &str, events: i64, clicks: i64, expired: bool) -> SessionUpdate {
    SessionUpdate { user: user.into(), events, clicks, expired }
}

fn sorted<T: Clone>(rows: &[T], key: impl Fn(&T) -> String) -> Vec<T> {
    let mut r = rows.to_vec();
    r.sort_by_key(|x| key(x));
    r
}

#[test]
fn processing_time_sessions_expire_when_the_manual_clock_passes_their_timeout() {
    let input = MemoryStream::<Event>::new();
    let table = MemoryTable::new();
    let clock = ManualClock::new(1_000_000);
    let q = Sessions::builder()
        .events(Source::memory(&input))
        .sink(Sink::memory(&table))
        .clock(clock.clone())
        .shuffle_partitions(2)
        .start()
        .unwrap();
    input.add(vec![ev("a", 1, 1), ev("b", 1, 2), ev("a", 2, 3), ev("b", 3, -1)]);
    q.process_all_available().unwrap();
    let rows: Vec<SessionUpdate> = table.rows().unwrap();
    assert_eq!(sorted(&rows, |r| r.user.clone()), vec![upd("a", 2, 4, false), upd("b", 1, 2, false)]);
    clock.advance_ms(6_000);
    input.add(vec![ev("b", 9, 5)]);
    q.process_all_available().unwrap();
    clock.advance_ms(5_000); // a's timeout (1_010_000) is behind; b's (1_016_000) is not.
    q.process_all_available().unwrap();
    let rows: Vec<SessionUpdate> = table.rows().unwrap();
    assert_eq!(rows[2..], [upd("b", 2, 7, false), upd("a", 2, 4, true)]);
    clock.advance_ms(100_000);
    q.process_all_available().unwrap();
    let rows: Vec<SessionUpdate> = table.rows().unwrap();
    assert_eq!(rows[4..], [upd("b", 2, 7, true)]);
    let p = q.last_progress().unwrap();
    assert_eq!(p.state_operators[0].operator_name, "flatMapGroupsWithState");
    assert_eq!(p.state_operators[0].num_rows_total, 0);
    // Nothing is due any more: no more batches however far the clock goes.
    let batches = q.recent_progress().len();
    clock.advance_ms(1_000_000);
    q.process_all_available().unwrap();
    assert_eq!(q.recent_progress().len(), batches);
    q.stop().unwrap();
}

#[test]
fn event_time_timeouts_fire_when_the_watermark_passes_and_late_rows_are_dropped() {
    let input = MemoryStream::<Event>::new();
    let table = MemoryTable::new();
    let q = Alerts::builder().events(Source::memory(&input)).sink(Sink::memory(&table)).start().unwrap();
    input.add(vec![ev("a", 10, 3), ev("a", 11, 1), ev("b", 12, 1)]);
    q.process_all_available().unwrap();
    // Watermark 10 s: nothing times out yet (a at 16 s, b at 17 s).
    input.add(vec![ev("b", 20, 4), ev("a", 5, 9)]);
    q.process_all_available().unwrap();
    // The a 5 s row is behind the late-row watermark (10 s, from batch 0) and dropped; the
    // watermark then reaches 18 s and a's timeout (16 s: its last event 11 s + 5 s) fires in
    // the no-data batch with its total; b's (25 s) does not.
    let rows: Vec<Alert> = table.rows().unwrap();
    let key = |a: &Alert| format!("{}{}", a.user, a.at.0);
    assert_eq!(
        sorted(&rows, key),
        vec![
            Alert { user: "a".into(), clicks: 4, at: Timestamp(-1) },
            Alert { user: "a".into(), clicks: 3, at: Timestamp(10_000_000) },
            Alert { user: "b".into(), clicks: 4, at: Timestamp(20_000_000) },
        ]
    );
    // Watermark 38 s after this batch: b's timeout (25 s) fires in the no-data batch; the
    // c row (1 s) is late and never reaches the function.
    input.add(vec![ev("c", 1, 7), ev("d", 40, 0)]);
    q.process_all_available().unwrap();
    let rows: Vec<Alert> = table.rows().unwrap();
    assert!(!rows.iter().any(|r| r.user == "c"), "{rows:?}");
    assert_eq!(rows[3..], [Alert { user: "b".into(), clicks: 5, at: Timestamp(-1) }]);
    let dropped: u64 = q.recent_progress().iter().map(|p| p.state_operators[0].num_rows_dropped_by_watermark).sum();
    assert_eq!(dropped, 2);
    q.stop().unwrap();
}

fn run_sessions(input: &Path, cp: &Path, clock: &ManualClock) -> flowgate::Result<Vec<SessionUpdate>> {
    let table = MemoryTable::new();
    let q = Sessions::builder()
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
            format!("{{\"user\": \"{}\", \"time\": {}, \"clicks\": {}}}\n", e.user, e.time.0 / 1_000_000, e.clicks)
        })
        .collect();
    let tmp = dir.join(format!(".{name}"));
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(tmp, dir.join(name)).unwrap();
}

#[test]
fn user_state_and_timeouts_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (input, cp) = (dir.path().join("in"), dir.path().join("cp"));
    std::fs::create_dir_all(&input).unwrap();
    let clock = ManualClock::new(0);
    write(&input, "1.json", &[ev("a", 1, 1), ev("b", 1, 2)]);
    assert_eq!(
        sorted(&run_sessions(&input, &cp, &clock).unwrap(), |r| r.user.clone()),
        vec![upd("a", 1, 1, false), upd("b", 1, 2, false)]
    );
    clock.advance_ms(5_000);
    write(&input, "2.json", &[ev("a", 3, 4)]);
    assert_eq!(run_sessions(&input, &cp, &clock).unwrap(), vec![upd("a", 2, 5, false)]);
    // After the restart b's timeout (10 s) is due at 11 s; a's (15 s) is not.
    clock.advance_ms(6_000);
    assert_eq!(run_sessions(&input, &cp, &clock).unwrap(), vec![upd("b", 1, 2, true)]);
    let meta = String::from_utf8_lossy(&std::fs::read(cp.join("metadata")).unwrap()).to_string();
    assert!(
        meta.contains("group_state[struct[start:timestamp_us,end:timestamp_us,events:i64,clicks:i64]]"),
        "the state's schema is recorded: {meta}"
    );
    let offsets = String::from_utf8_lossy(&std::fs::read(cp.join("offsets/2")).unwrap()).to_string();
    assert!(offsets.contains("\"batchTimestampMs\":11000"), "{offsets}");
}

mod changed {
    //! The same query with a changed state type (`clicks` became `f64`, `pages` added).
    use flowgate::prelude::*;

    use super::{Event, SessionUpdate};

    #[derive(StateCodec, Clone)]
    pub struct Session {
        start: Timestamp,
        end: Timestamp,
        events: i64,
        clicks: f64,
        pages: i64,
    }

    fn track(user: &str, events: Vec<Event>, state: &mut GroupState<Session>) -> SessionUpdate {
        let n = events.len() as i64;
        state.update(Session { start: Timestamp(0), end: Timestamp(0), events: n, clicks: 0.0, pages: 0 });
        let _ = (&state.get().start, &state.get().end, state.get().clicks, state.get().pages);
        SessionUpdate { user: user.into(), events: n, clicks: 0, expired: false }
    }

    stream_query! {
        pub query Sessions(events: Event) -> SessionUpdate, mode = update {
            events
                .filter(clicks >= 0)
                .group_by(user)
                .map_groups_with_state(track, timeout = processing_time)
        }
    }
}

#[test]
fn a_restart_with_a_changed_state_type_is_refused_before_the_first_batch_showing_the_difference() {
    let dir = tempfile::tempdir().unwrap();
    let (input, cp) = (dir.path().join("in"), dir.path().join("cp"));
    std::fs::create_dir_all(&input).unwrap();
    write(&input, "1.json", &[ev("a", 1, 1)]);
    run_sessions(&input, &cp, &ManualClock::new(0)).unwrap();
    write(&input, "2.json", &[ev("a", 2, 1)]);
    let table = MemoryTable::new();
    let err = changed::Sessions::builder()
        .events(Source::file(&input).json())
        .sink(Sink::memory(&table))
        .checkpoint(&cp)
        .trigger(Trigger::available_now())
        .start()
        .and_then(|q| q.await_termination())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("field `clicks`: i64 in the checkpoint, f64 now") && err.contains("field `pages` (i64) added"),
        "{err}"
    );
    assert!(table.rows::<SessionUpdate>().unwrap().is_empty(), "no batch ran");
    assert!(!cp.join("offsets/1").exists());
}

/// A state machine per key as a derived enum.
#[derive(StateCodec, Clone, Debug, PartialEq)]
enum Phase {
    Idle,
    Active(i64, Timestamp),
    Done { clicks: i64, reason: Option<String> },
}

/// Golden vectors: a derived enum's layout and bytes are persisted (the variant's position is
/// stored); a change here makes existing checkpoints refuse to restore.
#[test]
fn a_derived_enum_codec_stores_the_variant_index_then_its_fields_and_its_layout_names_them() {
    use flowgate::codec::{from_bytes, layout_difference, layout_of, to_bytes, Layout};
    let layout = layout_of::<Phase>();
    assert_eq!(
        layout,
        "enum[Idle:struct[],Active:struct[_0:i64,_1:timestamp_us],Done:struct[clicks:i64,reason:option<utf8>]]"
    );
    let values = [Phase::Idle, Phase::Active(3, Timestamp(5)), Phase::Done { clicks: 7, reason: Some("x".into()) }];
    let bytes: Vec<Vec<u8>> = values.iter().map(to_bytes).collect();
    assert_eq!(bytes[0], [0]);
    assert_eq!(bytes[1], [1, 3, 0, 0, 0, 0, 0, 0, 0, 5, 0, 0, 0, 0, 0, 0, 0]);
    assert_eq!(bytes[2], [2, 7, 0, 0, 0, 0, 0, 0, 0, 1, 1, 0, 0, 0, 0, 0, 0, 0, b'x']);
    for (v, b) in values.iter().zip(&bytes) {
        assert_eq!(&from_bytes::<Phase>(b).unwrap(), v);
    }
    let err = from_bytes::<Phase>(&[9]).unwrap_err().to_string();
    assert!(err.contains("enum `Phase`: no variant 9"), "{err}");
    let json = Layout::parse(&layout).unwrap().decode_all(&bytes[2]).unwrap();
    assert_eq!(json, serde_json::json!({"variant": "Done", "fields": {"clicks": 7, "reason": "x"}}));
    let changed = "enum[Idle:struct[],Active:struct[_0:f64,_1:timestamp_us],Paused:struct[]]";
    assert_eq!(
        layout_difference(&layout, changed).unwrap(),
        "variant `Active`: struct[_0:i64,_1:timestamp_us] in the checkpoint, struct[_0:f64,_1:timestamp_us] now; \
         variant `Done` (struct[clicks:i64,reason:option<utf8>]) removed; variant `Paused` (struct[]) added"
    );
}

#[derive(Record, Debug, PartialEq, Clone)]
struct Count {
    user: String,
    count: i64,
    rows: i64,
}

/// Counts events per user on top of its state; a count below zero (an initial state can
/// give one) removes the user's state and emits nothing.
fn count_from(user: &str, events: Vec<Event>, state: &mut GroupState<i64>) -> Option<Count> {
    let before = state.get_option().copied().unwrap_or(0);
    if before < 0 {
        state.remove();
        return None;
    }
    let count = before + events.len() as i64;
    state.update(count);
    Some(Count { user: user.into(), count, rows: events.len() as i64 })
}

fn initial_counts() -> Vec<(String, i64)> {
    vec![("a".into(), 10), ("z".into(), 7), ("y".into(), -1)]
}

fn duplicate_counts() -> Vec<(String, i64)> {
    vec![("a".into(), 10), ("b".into(), 1), ("a".into(), 3)]
}

stream_query! {
    query InitialCounts(events: Event) -> Count, mode = update {
        events.group_by(user).flat_map_groups_with_state(count_from, timeout = none, initial_state = initial_counts())
    }

    query DuplicateInitialCounts(events: Event) -> Count, mode = update {
        events.group_by(user).flat_map_groups_with_state(count_from, initial_state = duplicate_counts())
    }
}

fn run_counts(input: &Path, cp: &Path) -> flowgate::Result<Vec<Count>> {
    let table = MemoryTable::new();
    let q = InitialCounts::builder()
        .events(Source::file(input).json())
        .sink(Sink::memory(&table))
        .checkpoint(cp)
        .shuffle_partitions(3)
        .trigger(Trigger::available_now())
        .start()?;
    q.await_termination()?;
    table.rows()
}

fn count(user: &str, count: i64, rows: i64) -> Count {
    Count { user: user.into(), count, rows }
}

/// Scala's `flatMapGroupsWithState(.., initialState)` (PySpark's `applyInPandasWithState` has
/// no initial state): in the first batch each key's initial state is stored, and the function
/// is called once per key with rows, initial state or both — a key with only an initial state
/// with no rows. A restart from the checkpoint never applies it again.
#[test]
fn an_initial_state_is_applied_in_the_first_batch_only_and_not_again_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (input, cp) = (dir.path().join("in"), dir.path().join("cp"));
    std::fs::create_dir_all(&input).unwrap();
    write(&input, "1.json", &[ev("a", 1, 1), ev("b", 1, 2), ev("a", 2, 1)]);
    assert_eq!(
        sorted(&run_counts(&input, &cp).unwrap(), |r| r.user.clone()),
        vec![count("a", 12, 2), count("b", 1, 1), count("z", 7, 0)],
        "y's initial state was removed by its call"
    );
    // Restarted: z and y continue from batch 0's state, the initial state is not read again.
    write(&input, "2.json", &[ev("z", 3, 1), ev("y", 3, 1), ev("a", 3, 1)]);
    assert_eq!(
        sorted(&run_counts(&input, &cp).unwrap(), |r| r.user.clone()),
        vec![count("a", 13, 1), count("y", 1, 1), count("z", 8, 1)]
    );
}

#[test]
fn a_key_twice_in_the_initial_state_fails_the_first_batch_with_sparks_message() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    std::fs::create_dir_all(&input).unwrap();
    write(&input, "1.json", &[ev("a", 1, 1)]);
    let table = MemoryTable::new();
    let err = DuplicateInitialCounts::builder()
        .events(Source::file(&input).json())
        .sink(Sink::memory(&table))
        .trigger(Trigger::available_now())
        .start()
        .and_then(|q| q.await_termination())
        .unwrap_err()
        .to_string();
    assert!(err.contains("multiple rows(state) with the same key") && err.contains("\"a\""), "{err}");
    assert!(table.rows::<Count>().unwrap().is_empty());
}

#[derive(Record, Debug, PartialEq, Clone)]
struct UsersPerCount {
    count: i64,
    users: i64,
}

stream_query! {
    /// Stateless and typed operators over the function's records, by their columns.
    query BusyUsers(events: Event) -> Count, mode = update {
        events
            .group_by(user)
            .flat_map_groups_with_state(count_from)
            .filter(count > 1)
            .with_column(rows = rows * 10)
            .select(user, count, rows)
    }

    query ShoutedCounts(events: Event) -> Count, mode = update {
        events
            .group_by(user)
            .flat_map_groups_with_state(count_from)
            .map_rows(|c: &Count| Count { user: c.user.to_uppercase(), ..c.clone() })
            .filter(count != 2)
    }

    /// An aggregation over the function's records (the flat map in append mode, as Spark
    /// requires there), its state and the function's both checkpointed.
    query UsersPerCountQuery(events: Event) -> UsersPerCount, mode = update {
        events
            .group_by(user)
            .flat_map_groups_with_state(count_from, output_mode = append)
            .group_by(count)
            .agg(count() as users)
    }
}

#[test]
fn stateless_and_typed_operators_run_over_the_functions_records() {
    let input = MemoryStream::<Event>::new();
    let (busy, shouted) = (MemoryTable::new(), MemoryTable::new());
    let q1 = BusyUsers::builder().events(Source::memory(&input)).sink(Sink::memory(&busy)).start().unwrap();
    input.add(vec![ev("a", 1, 1), ev("b", 1, 1), ev("a", 2, 1)]);
    q1.process_all_available().unwrap();
    input.add(vec![ev("b", 3, 1), ev("c", 3, 1)]);
    q1.process_all_available().unwrap();
    q1.stop().unwrap();
    // a: 2 after batch 0 (2 rows); b: 2 after batch 1 (1 row); c: 1, filtered out.
    let rows: Vec<Count> = busy.rows().unwrap();
    assert_eq!(sorted(&rows, |r| r.user.clone()), vec![count("a", 2, 20), count("b", 2, 10)]);

    let input = MemoryStream::<Event>::new();
    let q2 = ShoutedCounts::builder().events(Source::memory(&input)).sink(Sink::memory(&shouted)).start().unwrap();
    input.add(vec![ev("a", 1, 1), ev("b", 1, 1), ev("a", 2, 1)]);
    q2.process_all_available().unwrap();
    q2.stop().unwrap();
    let rows: Vec<Count> = shouted.rows().unwrap();
    assert_eq!(rows, vec![count("B", 1, 1)], "a's count of 2 is filtered after the map");
}

fn run_users_per_count(input: &Path, cp: &Path) -> flowgate::Result<Vec<UsersPerCount>> {
    let table = MemoryTable::new();
    let q = UsersPerCountQuery::builder()
        .events(Source::file(input).json())
        .sink(Sink::memory(&table))
        .checkpoint(cp)
        .shuffle_partitions(3)
        .trigger(Trigger::available_now())
        .start()?;
    q.await_termination()?;
    table.rows()
}

/// Each call emits the user's running count; the aggregation counts the records per count
/// value (update mode: the groups a batch changed). Restarted between batches, both states
/// come back from the checkpoint.
#[test]
fn an_aggregation_over_the_functions_records_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (input, cp) = (dir.path().join("in"), dir.path().join("cp"));
    std::fs::create_dir_all(&input).unwrap();
    let per = |count, users| UsersPerCount { count, users };
    write(&input, "1.json", &[ev("a", 1, 1), ev("b", 1, 1), ev("a", 2, 1), ev("c", 2, 1)]);
    let mut got = run_users_per_count(&input, &cp).unwrap();
    got.sort_by_key(|r| r.count);
    assert_eq!(got, vec![per(1, 2), per(2, 1)], "b and c at 1, a at 2");
    write(&input, "2.json", &[ev("b", 3, 1), ev("c", 3, 1), ev("c", 4, 1), ev("d", 4, 1)]);
    let mut got = run_users_per_count(&input, &cp).unwrap();
    got.sort_by_key(|r| r.count);
    // b reaches 2, c 3, d 1: the counts of 1, 2 and 3 changed (records, not users, are
    // counted: 1 now has b, c and d's first records).
    assert_eq!(got, vec![per(1, 3), per(2, 2), per(3, 1)]);
}

#[derive(Record, Debug, PartialEq, Clone)]
struct Team {
    member: String,
    team: String,
}

#[derive(Record, Debug, PartialEq, Clone)]
struct TeamCount {
    user: String,
    team: Option<String>,
    count: i64,
}

stream_query! {
    /// The function's records joined with a static table by one of their columns.
    query TeamCounts(events: Event, teams: static Team) -> TeamCount, mode = update {
        events
            .group_by(user)
            .flat_map_groups_with_state(count_from)
            .join(teams, user = teams.member, kind = left_outer)
            .select(user, team = teams.team, count)
    }
}

#[test]
fn the_functions_records_join_a_static_table() {
    let (input, teams, out) = (MemoryStream::<Event>::new(), MemoryStream::<Team>::new(), MemoryTable::new());
    teams.add(vec![Team { member: "a".into(), team: "red".into() }, Team { member: "b".into(), team: "blue".into() }]);
    let q = TeamCounts::builder()
        .events(Source::memory(&input))
        .teams(Source::memory(&teams))
        .sink(Sink::memory(&out))
        .start()
        .unwrap();
    input.add(vec![ev("a", 1, 1), ev("c", 1, 1), ev("a", 2, 1)]);
    q.process_all_available().unwrap();
    q.stop().unwrap();
    let mut rows: Vec<TeamCount> = out.rows().unwrap();
    rows.sort_by_key(|r| r.user.clone());
    let tc = |user: &str, team: Option<&str>, count| TeamCount { user: user.into(), team: team.map(Into::into), count };
    assert_eq!(rows, vec![tc("a", Some("red"), 2), tc("c", None, 1)], "c has no team: the left outer join keeps it");
}

#[derive(Record, Debug, PartialEq, Clone)]
struct Seen {
    user: String,
    at: Timestamp,
}

/// One record per user and batch: the time of the user's latest event in it.
fn latest_seen(user: &str, events: GroupRows<'_, Event>, _state: &mut GroupState<i64>) -> Option<Seen> {
    events.map(|e| e.time).max_by_key(|t| t.0).map(|at| Seen { user: user.into(), at })
}

stream_query! {
    /// A watermark on the function's records, then a dedup within it.
    query FirstSeen(events: Event) -> Seen, mode = append {
        events
            .group_by(user)
            .flat_map_groups_with_state(latest_seen)
            .with_watermark(at, "10 seconds")
            .drop_duplicates_within_watermark(user)
    }

    /// The first two records the function returns, across batches.
    query FirstTwoCounts(events: Event) -> Count, mode = append {
        events.group_by(user).flat_map_groups_with_state(count_from).limit(2)
    }
}

#[test]
fn a_dedup_within_the_records_watermark_and_a_limit_follow_the_function() {
    let (input, out) = (MemoryStream::<Event>::new(), MemoryTable::new());
    let q = FirstSeen::builder().events(Source::memory(&input)).sink(Sink::memory(&out)).start().unwrap();
    input.add(vec![ev("a", 100, 1), ev("b", 100, 1)]);
    q.process_all_available().unwrap();
    // a again 5 s later: within its dedup's 10 s, dropped. b at 130 s: b's key (kept until
    // 110 s) has not expired, the records' watermark being 95 s (a's 105 s - 10 s), so it is
    // dropped too; b at 131 s, after the watermark reached 120 s (130 s - 10 s), is new again.
    input.add(vec![ev("a", 105, 1)]);
    q.process_all_available().unwrap();
    input.add(vec![ev("b", 130, 1)]);
    q.process_all_available().unwrap();
    input.add(vec![ev("b", 131, 1)]);
    q.process_all_available().unwrap();
    q.stop().unwrap();
    let rows: Vec<Seen> = out.rows().unwrap();
    let seen = |user: &str, secs: i64| Seen { user: user.into(), at: Timestamp(secs * 1_000_000) };
    assert_eq!(
        sorted(&rows, |r| format!("{}{}", r.user, r.at.0)),
        vec![seen("a", 100), seen("b", 100), seen("b", 131)]
    );

    let (input, out) = (MemoryStream::<Event>::new(), MemoryTable::new());
    let q = FirstTwoCounts::builder().events(Source::memory(&input)).sink(Sink::memory(&out)).start().unwrap();
    input.add(vec![ev("a", 1, 1)]);
    q.process_all_available().unwrap();
    input.add(vec![ev("b", 2, 1), ev("c", 2, 1)]);
    q.process_all_available().unwrap();
    input.add(vec![ev("d", 3, 1)]);
    q.process_all_available().unwrap();
    q.stop().unwrap();
    let rows: Vec<Count> = out.rows().unwrap();
    assert_eq!(rows.len(), 2, "a limit of 2 across batches: {rows:?}");
    assert_eq!(rows[0], count("a", 1, 1));
}

/// A user's count as a static table keeps it: the initial state's records, and the state.
#[derive(Record, StateCodec, Debug, PartialEq, Clone)]
struct Seed {
    user: String,
    count: i64,
}

/// The same table with the key under another name (`group_by(name)` in the DSL).
#[derive(Record, StateCodec, Debug, PartialEq, Clone)]
struct NamedSeed {
    name: String,
    count: i64,
}

/// [`count_from`] with the state as the static table's record.
fn count_seeded(user: &str, events: Vec<Event>, state: &mut GroupState<Seed>) -> Option<Count> {
    let before = state.get_option().map(|s| s.count).unwrap_or(0);
    if before < 0 {
        state.remove();
        return None;
    }
    let count = before + events.len() as i64;
    state.update(Seed { user: user.into(), count });
    Some(Count { user: user.into(), count, rows: events.len() as i64 })
}

/// [`count_seeded`] for the renamed table.
fn count_named(user: &str, events: Vec<Event>, state: &mut GroupState<NamedSeed>) -> Option<Count> {
    let count = state.get_option().map(|s| s.count).unwrap_or(0) + events.len() as i64;
    state.update(NamedSeed { name: user.into(), count });
    Some(Count { user: user.into(), count, rows: events.len() as i64 })
}

stream_query! {
    query SeededCounts(events: Event, seeds: static Seed) -> Count, mode = update {
        events.group_by(user).flat_map_groups_with_state(count_seeded, initial_state = seeds)
    }

    query NamedSeedCounts(events: Event, seeds: static NamedSeed) -> Count, mode = update {
        events.group_by(user).flat_map_groups_with_state(count_named, initial_state = seeds.group_by(name))
    }
}

fn seed(user: &str, count: i64) -> Seed {
    Seed { user: user.into(), count }
}

/// Spark's `initialState` from a batch `Dataset`: a static input of the query, each record one
/// key's state (keyed by its `user` column, the stream's key name), applied in batch 0 only;
/// the restart reads the static input again but does not apply it.
#[test]
fn a_static_input_as_the_initial_state_is_applied_in_the_first_batch_only() {
    let dir = tempfile::tempdir().unwrap();
    let (input, cp) = (dir.path().join("in"), dir.path().join("cp"));
    std::fs::create_dir_all(&input).unwrap();
    let run = |seeds: Vec<Seed>| -> flowgate::Result<Vec<Count>> {
        let (table, statics) = (MemoryTable::new(), MemoryStream::<Seed>::new());
        statics.add(seeds);
        let q = SeededCounts::builder()
            .events(Source::file(&input).json())
            .seeds(Source::memory(&statics))
            .sink(Sink::memory(&table))
            .checkpoint(&cp)
            .shuffle_partitions(3)
            .trigger(Trigger::available_now())
            .start()?;
        q.await_termination()?;
        table.rows()
    };
    write(&input, "1.json", &[ev("a", 1, 1), ev("b", 1, 2), ev("a", 2, 1)]);
    assert_eq!(
        sorted(&run(vec![seed("a", 10), seed("z", 7), seed("y", -1)]).unwrap(), |r| r.user.clone()),
        vec![count("a", 12, 2), count("b", 1, 1), count("z", 7, 0)],
        "y's initial state was removed by its call"
    );
    // Restarted with other static rows: batch 0 committed, so they are not applied.
    write(&input, "2.json", &[ev("z", 3, 1), ev("y", 3, 1), ev("a", 3, 1)]);
    assert_eq!(
        sorted(&run(vec![seed("a", 100), seed("q", 5)]).unwrap(), |r| r.user.clone()),
        vec![count("a", 13, 1), count("y", 1, 1), count("z", 8, 1)]
    );
}

/// `seeds.group_by(name)`: the static rows keyed by their own column; a key twice is Spark's
/// error, as for an expression.
#[test]
fn a_static_initial_state_grouped_by_its_own_column_and_a_key_twice_refused() {
    let run = |seeds: Vec<NamedSeed>| -> flowgate::Result<Vec<Count>> {
        let (input, table, statics) =
            (MemoryStream::<Event>::new(), MemoryTable::new(), MemoryStream::<NamedSeed>::new());
        statics.add(seeds);
        input.add(vec![ev("a", 1, 1)]);
        let q = NamedSeedCounts::builder()
            .events(Source::memory(&input))
            .seeds(Source::memory(&statics))
            .sink(Sink::memory(&table))
            .trigger(Trigger::available_now())
            .start()?;
        q.await_termination()?;
        table.rows()
    };
    let named = |n: &str, c| NamedSeed { name: n.into(), count: c };
    assert_eq!(
        sorted(&run(vec![named("a", 4), named("c", 1)]).unwrap(), |r| r.user.clone()),
        vec![count("a", 5, 1), count("c", 1, 0)]
    );
    let err = run(vec![named("a", 4), named("a", 1)]).unwrap_err().to_string();
    assert!(err.contains("multiple rows(state) with the same key"), "{err}");
}
