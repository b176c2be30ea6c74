//! The programming guide's session tracking with Spark 4's `transformWithState`: events per
//! session id; a session ends after a gap of processing time without events. Each call with
//! events updates the session (a value state), shows it, and moves the session's
//! processing-time timer to one gap after now (the older timer deleted); when the timer fires,
//! the session's duration and event count are shown with `expired = true` and its state is
//! cleared. The same sessions as `sessionization.rs` (`map_groups_with_state`), written as a
//! `StatefulProcessor`.
//!
//! ```text
//! cargo run --release --example tws_sessionization                 # rate source, no setup, 30 s
//! cargo run --release --example tws_sessionization -- --rate 100 --quiet-seconds 3 --gap-ms 300
//! nc -lk 9999                                                      # or: one session id per line
//! cargo run --release --example tws_sessionization -- --socket localhost:9999
//! ```
//!
//! On the rate source (`--rate` rows a second, 10 by default) the session id is
//! `user{value % 4}`; each user in turn is quiet for `--quiet-seconds` (10: ten seconds out of
//! forty), so its session ends after the gap and a new one starts when it is back.

use flowgate::prelude::*;

/// The rate source's rows.
#[derive(Record)]
struct Tick {
    timestamp: Timestamp,
    value: i64,
}

/// A socket line: the session id.
#[derive(Record)]
struct Line {
    value: Option<String>,
}

/// What the state keeps per session (Spark's example's `SessionInfo`).
#[derive(StateCodec, Clone, Copy)]
struct SessionInfo {
    events: i64,
    start_ms: i64,
    end_ms: i64,
}

/// What each trigger shows (Spark's example's `SessionUpdate`).
#[derive(Record)]
struct SessionUpdate {
    id: String,
    duration_ms: i64,
    events: i64,
    expired: bool,
}

/// The session tracker: one value state per session id and one processing-time timer, a gap
/// after its latest events. `K` is the grouping key's type; `id` names it in the output.
struct Sessions<K, R> {
    gap_ms: i64,
    session: ValueState<SessionInfo>,
    id: fn(&K) -> String,
    /// An input row's event time (ms); `None` takes the batch's processing time.
    time: fn(&R) -> Option<i64>,
}

impl<K, R> Sessions<K, R> {
    fn new(gap_ms: i64, id: fn(&K) -> String, time: fn(&R) -> Option<i64>) -> Self {
        Sessions { gap_ms, session: ValueState::default(), id, time }
    }
}

impl<K: Send, R: Send> StatefulProcessor for Sessions<K, R> {
    type Key = K;
    type Input = R;
    type Output = SessionUpdate;

    fn init(&mut self, handle: &mut StatefulProcessorHandle) {
        self.session = handle.get_value_state("session", Ttl::NONE);
    }

    fn handle_input_rows(
        &mut self,
        key: &K,
        rows: GroupRows<'_, R>,
        timer_values: &TimerValues,
        h: &mut KeyHandle<'_>,
    ) -> impl IntoIterator<Item = SessionUpdate> {
        let now = timer_values.get_current_processing_time_in_ms();
        let mut s = self.session.get(h).unwrap_or(SessionInfo { events: 0, start_ms: i64::MAX, end_ms: i64::MIN });
        for r in rows {
            let t = (self.time)(&r).unwrap_or(now);
            s.events += 1;
            s.start_ms = s.start_ms.min(t);
            s.end_ms = s.end_ms.max(t);
        }
        self.session.update(h, s);
        for t in h.list_timers() {
            h.delete_timer(t);
        }
        h.register_timer(now + self.gap_ms);
        Some(SessionUpdate { id: (self.id)(key), duration_ms: s.end_ms - s.start_ms, events: s.events, expired: false })
    }

    fn handle_expired_timer(
        &mut self,
        key: &K,
        _timer_values: &TimerValues,
        _expired: ExpiredTimerInfo,
        h: &mut KeyHandle<'_>,
    ) -> impl IntoIterator<Item = SessionUpdate> {
        let s = self.session.get(h)?;
        self.session.clear(h);
        Some(SessionUpdate { id: (self.id)(key), duration_ms: s.end_ms - s.start_ms, events: s.events, expired: true })
    }
}

/// `--rate`: rows a second of the rate source, read once at start.
static RATE: std::sync::OnceLock<i64> = std::sync::OnceLock::new();

/// `--quiet-seconds`: how long each user is quiet in turn, read once at start.
static QUIET_S: std::sync::OnceLock<i64> = std::sync::OnceLock::new();

/// Whether the rate source's row `value` is sent: user `value % 4` is quiet `--quiet-seconds`
/// out of four times that.
fn active(value: i64) -> bool {
    let rows = *RATE.get().unwrap_or(&10) * *QUIET_S.get().unwrap_or(&10);
    (value / rows) % 4 != value % 4
}

fn rate_sessions(gap_ms: i64) -> Sessions<i64, Tick> {
    Sessions::new(gap_ms, |user| format!("user{user}"), |t| Some(t.timestamp.0 / 1000))
}

fn socket_sessions(gap_ms: i64) -> Sessions<Option<String>, Line> {
    // A line's time is when the batch reading it ran (Spark's example reads the socket with
    // `includeTimestamp`, the time a line arrived).
    Sessions::new(gap_ms, |id| id.clone().unwrap_or_default(), |_| None)
}

/// The `--gap-ms` option (10 s, as the guide).
static GAP_MS: std::sync::OnceLock<i64> = std::sync::OnceLock::new();

fn gap_ms() -> i64 {
    *GAP_MS.get().unwrap_or(&10_000)
}

stream_query! {
    /// Sessions of the rate source's users, quiet now and then.
    query RateSessions(ticks: Tick) -> SessionUpdate, mode = update {
        ticks
            .filter(active(value))
            .group_by(user = value % 4)
            .transform_with_state(rate_sessions(gap_ms()), time_mode = processing_time)
    }

    /// Sessions of the ids typed into a socket, one per line.
    query SocketSessions(lines: Line) -> SessionUpdate, mode = update {
        lines
            .filter(value.is_some_and(|v| !v.trim().is_empty()))
            .group_by(value)
            .transform_with_state(socket_sessions(gap_ms()), time_mode = processing_time)
    }
}

fn main() -> flowgate::Result<()> {
    flowgate_examples::init_logging();
    let seconds: u64 = flowgate_examples::arg_or("seconds", 30).map_err(flowgate::Error::Plan)?;
    let gap: i64 = flowgate_examples::arg_or("gap-ms", 10_000).map_err(flowgate::Error::Plan)?;
    let rate: i64 = flowgate_examples::arg_or("rate", 10).map_err(flowgate::Error::Plan)?;
    let quiet: i64 = flowgate_examples::arg_or("quiet-seconds", 10).map_err(flowgate::Error::Plan)?;
    if rate <= 0 || quiet <= 0 {
        return Err(flowgate::Error::Plan(format!("--rate {rate} --quiet-seconds {quiet}: both must be positive")));
    }
    GAP_MS.get_or_init(|| gap);
    RATE.get_or_init(|| rate);
    QUIET_S.get_or_init(|| quiet);
    let trigger = Trigger::processing_time("1 second");
    let query = match flowgate_examples::arg("socket") {
        Some(addr) => {
            let (host, port) = addr
                .rsplit_once(':')
                .and_then(|(h, p)| Some((h.to_string(), p.parse::<u16>().ok()?)))
                .ok_or_else(|| flowgate::Error::Plan(format!("--socket {addr}: expected HOST:PORT")))?;
            SocketSessions::builder()
                .lines(Source::socket(&host, port))
                .sink(Sink::console())
                .trigger(trigger)
                .start()?
        }
        None => {
            RateSessions::builder().ticks(Source::rate(rate as u64)).sink(Sink::console()).trigger(trigger).start()?
        }
    };
    if !query.await_termination_timeout(std::time::Duration::from_secs(seconds))? {
        query.stop()?;
    }
    Ok(())
}
