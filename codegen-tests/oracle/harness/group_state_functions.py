"""flowgate's extension of the shared harness: the functions of the group-state golden cases.

Each case's `applyInPandasWithState` op names one of these by `function`. They are written for
pyspark's `GroupState` exactly as the flowgate tests write the same function in Rust
(codegen-tests/tests/golden.rs), and never depend on row order within a key.
"""
import pandas as pd


def _ms(t):
    """A pandas timestamp as milliseconds since the epoch."""
    return int(pd.Timestamp(t).value // 1_000_000)


def running_totals(key, pdfs, state):
    """Per user: events and clicks so far; a `logout` action removes the state (the next
    event starts from zero). One output row per call (mapGroupsWithState's shape)."""
    events, clicks = state.get if state.exists else (0, 0)
    logout = False
    for pdf in pdfs:
        events += len(pdf)
        clicks += int(pdf["clicks"].sum())
        logout = logout or bool((pdf["action"] == "logout").any())
    if logout:
        state.remove()
    else:
        state.update((events, clicks))
    yield pd.DataFrame({"user": [key[0]], "events": [events], "clicks": [clicks], "active": [not logout]})


def session_alerts(key, pdfs, state):
    """Per user: an `alert` row for every event with more than 2 clicks, and once the watermark
    passes 5 s after the user's last event, an `expired` row with the totals (event-time
    timeout, flatMapGroupsWithState in append mode)."""
    if state.hasTimedOut:
        events, clicks, _last = state.get
        state.remove()
        yield pd.DataFrame({"user": [key[0]], "kind": ["expired"], "clicks": [clicks], "events": [events]})
        return
    events, clicks, last = state.get if state.exists else (0, 0, 0)
    alerts = []
    for pdf in pdfs:
        for c, t in zip(pdf["clicks"], pdf["ts"]):
            events += 1
            clicks += int(c)
            last = max(last, _ms(t))
            if c > 2:
                alerts.append(int(c))
    state.update((events, clicks, last))
    state.setTimeoutTimestamp(last + 5000)
    yield pd.DataFrame(
        {"user": [key[0]] * len(alerts), "kind": ["alert"] * len(alerts), "clicks": alerts, "events": [0] * len(alerts)}
    )


def idle_sessions(key, pdfs, state):
    """Per user: events so far, emitted on every call with data; a processing-time timeout of
    the case's `timeout_ms` after the last call with data ends the session with an `expired`
    row (flatMapGroupsWithState in update mode)."""
    if state.hasTimedOut:
        (events,) = state.get
        state.remove()
        yield pd.DataFrame({"user": [key[0]], "events": [events], "expired": [True]})
        return
    (events,) = state.get if state.exists else (0,)
    for pdf in pdfs:
        events += len(pdf)
    state.update((events,))
    state.setTimeoutDuration(IDLE_TIMEOUT_MS)
    yield pd.DataFrame({"user": [key[0]], "events": [events], "expired": [False]})


# The processing-time timeout of `idle_sessions` (see case group_state_processing_time_timeout:
# the harness pauses longer than this before the steps where a timeout must fire; every other
# step follows the previous one well within it: the slowest, the first batch that starts the
# Python workers, took 21 s on a loaded 2-core machine).
IDLE_TIMEOUT_MS = 60000


def click_milestones(key, pdfs, state):
    """Per user: an `alert` row for every event with more than 2 clicks, and a `milestone`
    row with the user's totals when a batch takes their event count past a multiple of 3
    (flatMapGroupsWithState in append mode, no timeout: the rows an aggregation after it
    counts)."""
    events, clicks = state.get if state.exists else (0, 0)
    before = events
    alerts = []
    for pdf in pdfs:
        for c in pdf["clicks"]:
            events += 1
            clicks += int(c)
            if c > 2:
                alerts.append(int(c))
    state.update((events, clicks))
    rows = [("alert", c, 0) for c in alerts]
    if events // 3 > before // 3:
        rows.append(("milestone", clicks, events))
    yield pd.DataFrame(
        {"user": [key[0]] * len(rows), "kind": [r[0] for r in rows], "clicks": [r[1] for r in rows],
         "events": [r[2] for r in rows]}
    )


def latest_clicks(key, pdfs, state):
    """Per user and batch: one row with the user's events so far and the time of their
    latest event in the batch (flatMapGroupsWithState in append mode, no timeout: the records
    a watermark and a window aggregation after it take)."""
    (events,) = state.get if state.exists else (0,)
    latest = None
    for pdf in pdfs:
        events += len(pdf)
        for t in pdf["ts"]:
            latest = t if latest is None else max(latest, t)
    state.update((events,))
    yield pd.DataFrame({"user": [key[0]], "events": [events], "at": [latest]})


def ad_clicks(key, pdfs, state):
    """Per ad, over a stream-stream join's matches: the matches so far and the latest click
    time in the batch (flatMapGroupsWithState in update mode after a join)."""
    (clicks,) = state.get if state.exists else (0,)
    latest = None
    for pdf in pdfs:
        clicks += len(pdf)
        for t in pdf["time"]:
            latest = t if latest is None else max(latest, t)
    state.update((clicks,))
    yield pd.DataFrame({"adId": [key[0]], "clicks": [clicks], "latest": [latest]})
