//! Sessions by event time with Spark 4's `transformWithState`, files in, files out, exactly
//! once — the program the fault-injection test (`tests/tws_sessions_to_file_kill.rs`) kills and
//! restarts.
//!
//! ```text
//! cargo run --release --example tws_sessions_to_file -- --input DIR --output DIR --checkpoint DIR
//! ```
//!
//! Input: JSON lines `{"ts": "<RFC 3339>", "user": "<string>", "clicks": <integer>}`, one file
//! per micro-batch. With a 10-minute watermark on `ts`, a `StatefulProcessor` keeps per user
//! three state variables: the open session (a value state of a derived `StateCodec` struct),
//! its clicks event by event (a list state) and its events per minute (a map state). An event
//! more than `GAP_MS` after the session's last one closes it and opens the next; an event-time
//! timer `GAP_MS` after the last event (moved on every event) closes it once the watermark
//! passes. Each closed session is one JSON line (append mode) through the file sink's manifest.
//! Processes everything available, then exits 0; killed at any moment and started again, it
//! resumes from the checkpoint and the committed output is as if it had never stopped.

use flowgate::prelude::*;

#[derive(Record)]
struct Click {
    ts: Timestamp,
    user: String,
    clicks: i64,
}

/// A user's open session.
#[derive(StateCodec, Clone, Copy)]
struct Session {
    first: Timestamp,
    last: Timestamp,
}

#[derive(Record)]
struct ClosedSession {
    user: String,
    first: Timestamp,
    last: Timestamp,
    events: i64,
    clicks: i64,
    /// Distinct minutes with an event.
    minutes: i64,
    /// The most events in one minute.
    busiest_minute: i64,
    /// `gap` (a later event came) or `timeout` (the watermark passed its timer).
    closed_by: String,
}

/// A session closes after 5 minutes of event time without events.
const GAP_MS: i64 = 5 * 60 * 1000;

#[derive(Default)]
struct Sessions {
    open: ValueState<Session>,
    clicks: ListState<i64>,
    per_minute: MapState<i64, i64>,
}

impl Sessions {
    /// Closes the open session (if any): its row, and all three variables cleared.
    fn end_session(&self, user: &str, h: &mut KeyHandle<'_>, by: &str) -> Option<ClosedSession> {
        let s = self.open.get(h)?;
        let clicks = self.clicks.get(h);
        let minutes = self.per_minute.values(h);
        let out = ClosedSession {
            user: user.into(),
            first: s.first,
            last: s.last,
            events: clicks.len() as i64,
            clicks: clicks.iter().sum(),
            minutes: minutes.len() as i64,
            busiest_minute: minutes.into_iter().max().unwrap_or(0),
            closed_by: by.into(),
        };
        self.open.clear(h);
        self.clicks.clear(h);
        self.per_minute.clear(h);
        Some(out)
    }

    fn add(&self, h: &mut KeyHandle<'_>, r: &Click) {
        let s = match self.open.get(h) {
            Some(s) => Session { first: s.first.min(r.ts), last: s.last.max(r.ts) },
            None => Session { first: r.ts, last: r.ts },
        };
        self.open.update(h, s);
        self.clicks.append_value(h, r.clicks);
        let minute = r.ts.0.div_euclid(60_000_000);
        let n = self.per_minute.get_value(h, &minute).unwrap_or(0);
        self.per_minute.update_value(h, minute, n + 1);
    }
}

impl StatefulProcessor for Sessions {
    type Key = String;
    type Input = Click;
    type Output = ClosedSession;

    fn init(&mut self, handle: &mut StatefulProcessorHandle) {
        self.open = handle.get_value_state("open", Ttl::NONE);
        self.clicks = handle.get_list_state("clicks", Ttl::NONE);
        self.per_minute = handle.get_map_state("per_minute", Ttl::NONE);
    }

    /// Folds a key's rows (in event-time order) into its sessions.
    fn handle_input_rows(
        &mut self,
        user: &String,
        rows: GroupRows<'_, Click>,
        _timer_values: &TimerValues,
        h: &mut KeyHandle<'_>,
    ) -> impl IntoIterator<Item = ClosedSession> {
        let mut rows: Vec<Click> = rows.collect();
        rows.sort_by_key(|r| (r.ts, r.clicks));
        let mut out = Vec::new();
        for r in &rows {
            if self.open.get(h).is_some_and(|s| r.ts.0 / 1000 > s.last.0 / 1000 + GAP_MS) {
                out.extend(self.end_session(user, h, "gap"));
            }
            self.add(h, r);
        }
        for t in h.list_timers() {
            h.delete_timer(t);
        }
        if let Some(s) = self.open.get(h) {
            h.register_timer(s.last.0 / 1000 + GAP_MS);
        }
        out
    }

    fn handle_expired_timer(
        &mut self,
        user: &String,
        _timer_values: &TimerValues,
        _expired: ExpiredTimerInfo,
        h: &mut KeyHandle<'_>,
    ) -> impl IntoIterator<Item = ClosedSession> {
        self.end_session(user, h, "timeout")
    }
}

stream_query! {
    /// Sessions per user by event time, closed by a gap or by the watermark passing a timer.
    query UserSessions(clicks: Click) -> ClosedSession, mode = append {
        clicks
            .with_watermark(ts, "10 minutes")
            .group_by(user)
            .transform_with_state(Sessions::default(), time_mode = event_time)
    }
}

fn main() -> flowgate::Result<()> {
    flowgate_examples::init_logging();
    let need = |name: &str| {
        flowgate_examples::arg(name).ok_or_else(|| {
            flowgate::Error::Plan(format!(
                "missing --{name}; usage: tws_sessions_to_file --input DIR --output DIR --checkpoint DIR"
            ))
        })
    };
    let (input, output, checkpoint) = (need("input")?, need("output")?, need("checkpoint")?);
    let query = UserSessions::builder()
        .clicks(Source::file(input).json().mode(ParseMode::FailFast).max_files_per_trigger(1))
        .sink(Sink::file(output, SinkFormat::Json))
        .trigger(Trigger::available_now())
        .checkpoint(checkpoint)
        .shuffle_partitions(3)
        .start()?;
    query.await_termination()
}
