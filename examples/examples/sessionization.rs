//! The programming guide's session tracking (Spark's `StructuredSessionization`): events per
//! session id; a session ends after a gap of processing time without events; each trigger
//! shows the sessions that changed, with their duration and event count, and the ones that
//! ended (`expired = true`) — `map_groups_with_state` with a processing-time timeout and typed
//! session state.
//!
//! ```text
//! cargo run --release --example sessionization                   # rate source, no setup, 30 s
//! cargo run --release --example sessionization -- --seconds 60 --gap-ms 2000
//! nc -lk 9999                                                    # or: one session id per line
//! cargo run --release --example sessionization -- --socket localhost:9999
//! ```
//!
//! On the rate source (10 rows a second) the session id is `user{value % 4}`; user `u` is
//! quiet while `(value / 100) % 4 == u`, ten seconds out of forty, so its session ends after the
//! gap and a new one starts when it is back.

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
#[derive(StateCodec, Clone)]
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

/// The session's gap: the `--gap-ms` option, read once at start (10 s, as the guide).
static GAP_MS: std::sync::OnceLock<i64> = std::sync::OnceLock::new();

/// One session's update from its new events' times (ms); the guide's `mapGroupsWithState`
/// function.
fn update(id: String, times: impl Iterator<Item = i64>, state: &mut GroupState<SessionInfo>) -> SessionUpdate {
    if state.has_timed_out() {
        let s = state.get().clone();
        state.remove();
        return SessionUpdate { id, duration_ms: s.end_ms - s.start_ms, events: s.events, expired: true };
    }
    let mut s = state.get_option().cloned().unwrap_or(SessionInfo { events: 0, start_ms: i64::MAX, end_ms: i64::MIN });
    for t in times {
        s.events += 1;
        s.start_ms = s.start_ms.min(t);
        s.end_ms = s.end_ms.max(t);
    }
    let out = SessionUpdate { id, duration_ms: s.end_ms - s.start_ms, events: s.events, expired: false };
    state.update(s);
    state.set_timeout_duration(*GAP_MS.get().unwrap_or(&10_000));
    out
}

fn rate_session(user: &i64, ticks: Vec<Tick>, state: &mut GroupState<SessionInfo>) -> SessionUpdate {
    update(format!("user{user}"), ticks.iter().map(|t| t.timestamp.0 / 1000), state)
}

fn socket_session(id: &Option<String>, lines: Vec<Line>, state: &mut GroupState<SessionInfo>) -> SessionUpdate {
    // A line's time is when the batch reading it ran (Spark's example reads the socket with
    // `includeTimestamp`, the time a line arrived).
    let now = state.get_current_processing_time_ms();
    update(id.clone().unwrap_or_default(), lines.iter().map(|_| now), state)
}

stream_query! {
    /// Sessions of the rate source's users, quiet now and then.
    query RateSessions(ticks: Tick) -> SessionUpdate, mode = update {
        ticks
            .filter((value / 100) % 4 != value % 4)
            .group_by(user = value % 4)
            .map_groups_with_state(rate_session, timeout = processing_time)
    }

    /// Sessions of the ids typed into a socket, one per line.
    query SocketSessions(lines: Line) -> SessionUpdate, mode = update {
        lines
            .filter(value.is_some_and(|v| !v.trim().is_empty()))
            .group_by(value)
            .map_groups_with_state(socket_session, timeout = processing_time)
    }
}

fn main() -> flowgate::Result<()> {
    flowgate_examples::init_logging();
    let seconds: u64 = flowgate_examples::arg_or("seconds", 30).map_err(flowgate::Error::Plan)?;
    let gap: i64 = flowgate_examples::arg_or("gap-ms", 10_000).map_err(flowgate::Error::Plan)?;
    GAP_MS.get_or_init(|| gap);
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
        None => RateSessions::builder().ticks(Source::rate(10)).sink(Sink::console()).trigger(trigger).start()?,
    };
    if !query.await_termination_timeout(std::time::Duration::from_secs(seconds))? {
        query.stop()?;
    }
    Ok(())
}
