//! Sessions by event time, files in, files out, exactly once — the group-state program the
//! fault-injection test (`tests/sessions_to_file_kill.rs`) kills and restarts.
//!
//! ```text
//! cargo run --release --example sessions_to_file -- --input DIR --output DIR --checkpoint DIR
//! ```
//!
//! Input: JSON lines `{"ts": "<RFC 3339>", "user": "<string>", "clicks": <integer>}`, one file
//! per micro-batch. With a 10-minute watermark on `ts`, `flat_map_groups_with_state` keeps a
//! session per user (first and last event, events, clicks) in typed state; an event more than
//! `GAP_MS` after the session's last one closes it and opens the next; once the watermark
//! passes `GAP_MS` after its last event, the session closes by its event-time timeout. Each
//! closed session is one JSON line (append mode) through the file sink's manifest. Processes
//! everything available, then exits 0; killed at any moment and started again, it resumes from
//! the checkpoint and the committed output is as if it had never stopped.

use flowgate::prelude::*;

#[derive(Record)]
struct Click {
    ts: Timestamp,
    user: String,
    clicks: i64,
}

/// A user's open session.
#[derive(StateCodec, Clone)]
struct Session {
    first: Timestamp,
    last: Timestamp,
    events: i64,
    clicks: i64,
}

#[derive(Record)]
struct ClosedSession {
    user: String,
    first: Timestamp,
    last: Timestamp,
    events: i64,
    clicks: i64,
    /// `gap` (a later event came) or `timeout` (the watermark passed).
    closed_by: String,
}

/// A session closes after 5 minutes of event time without events.
const GAP_MS: i64 = 5 * 60 * 1000;

fn closed(user: &str, s: &Session, by: &str) -> ClosedSession {
    ClosedSession {
        user: user.into(),
        first: s.first,
        last: s.last,
        events: s.events,
        clicks: s.clicks,
        closed_by: by.into(),
    }
}

/// Folds a key's rows (in event-time order) into its sessions.
fn sessions(user: &str, mut rows: Vec<Click>, state: &mut GroupState<Session>) -> Vec<ClosedSession> {
    if state.has_timed_out() {
        let out = state.get_option().map(|s| closed(user, s, "timeout")).into_iter().collect();
        state.remove();
        return out;
    }
    rows.sort_by_key(|r| (r.ts, r.clicks));
    let mut out = Vec::new();
    let mut open = state.get_option().cloned();
    for r in rows {
        match &mut open {
            Some(s) if r.ts.0 / 1000 > s.last.0 / 1000 + GAP_MS => {
                out.push(closed(user, s, "gap"));
                open = Some(Session { first: r.ts, last: r.ts, events: 1, clicks: r.clicks });
            }
            Some(s) => {
                s.first = s.first.min(r.ts);
                s.last = s.last.max(r.ts);
                s.events += 1;
                s.clicks += r.clicks;
            }
            None => open = Some(Session { first: r.ts, last: r.ts, events: 1, clicks: r.clicks }),
        }
    }
    if let Some(s) = open {
        // Never behind the watermark (a row just past the late-row watermark may be older
        // than the eviction watermark less the gap).
        let timeout = (s.last.0 / 1000 + GAP_MS).max(state.get_current_watermark_ms());
        state.update(s);
        state.set_timeout_timestamp(timeout);
    }
    out
}

stream_query! {
    /// Sessions per user by event time, closed by a gap or by the watermark.
    query UserSessions(clicks: Click) -> ClosedSession, mode = append {
        clicks
            .with_watermark(ts, "10 minutes")
            .group_by(user)
            .flat_map_groups_with_state(sessions, timeout = event_time)
    }
}

fn main() -> flowgate::Result<()> {
    flowgate_examples::init_logging();
    let need = |name: &str| {
        flowgate_examples::arg(name).ok_or_else(|| {
            flowgate::Error::Plan(format!(
                "missing --{name}; usage: sessions_to_file --input DIR --output DIR --checkpoint DIR"
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
