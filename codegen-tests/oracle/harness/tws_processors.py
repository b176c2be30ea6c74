"""flowgate's extension of the shared harness: the stateful processors of the
transform_with_state golden cases.

Each case's `transformWithStateInPandas` op names one of these classes by `processor`. They are
written for pyspark's StatefulProcessor exactly as the flowgate tests write the same processor in
Rust (codegen-tests/tests/golden.rs), and never depend on row order within a key.
"""
import pandas as pd

from pyspark.sql.streaming.stateful_processor import StatefulProcessor


def _ms(t):
    """A pandas timestamp as milliseconds since the epoch."""
    return int(pd.Timestamp(t).value // 1_000_000)


class PageStats(StatefulProcessor):
    """Per user, three state variables: `events` (value), `clicks` (list: one element per
    event), `visits` (map: page -> visits). A `logout` action clears all three. One output row
    per call: events, total clicks, the visited pages (sorted), the most visits of a page."""

    def init(self, handle):
        self.events = handle.getValueState("events", "events LONG")
        self.clicks = handle.getListState("clicks", "clicks LONG")
        self.visits = handle.getMapState("visits", "page STRING", "visits LONG")

    def handleInputRows(self, key, rows, timerValues):
        events = self.events.get()[0] if self.events.exists() else 0
        logout = False
        for pdf in rows:
            events += len(pdf)
            self.clicks.appendList([(int(c),) for c in pdf["clicks"]])
            for page in pdf["page"]:
                n = self.visits.getValue((page,))[0] if self.visits.containsKey((page,)) else 0
                self.visits.updateValue((page,), (n + 1,))
            logout = logout or bool((pdf["action"] == "logout").any())
        self.events.update((events,))
        total = sum(c for (c,) in self.clicks.get())
        pages = sorted(k for (k,) in self.visits.keys())
        top = max((v for (v,) in self.visits.values()), default=0)
        if logout:
            self.events.clear()
            self.clicks.clear()
            self.visits.clear()
        yield pd.DataFrame(
            {"user": [key[0]], "events": [events], "clicks": [total], "pages": [",".join(pages)],
             "top_visits": [top], "active": [not logout]}
        )

    def close(self):
        pass


# The processing-time timer of `IdleTimers` (see case tws_processing_time_timers: the harness
# pauses longer than this before the steps where a timer must fire; every other step follows
# the previous one well within it).
IDLE_TIMER_MS = 60000


class IdleTimers(StatefulProcessor):
    """Per user: events so far (value state), emitted on every call with data; a processing-time
    timer IDLE_TIMER_MS after the last call with data (the older one deleted) ends the session
    with an `expired` row. An event with action `cancel` deletes the user's timer: that session
    never expires."""

    def init(self, handle):
        self.handle = handle
        self.events = handle.getValueState("events", "events LONG")

    def handleInputRows(self, key, rows, timerValues):
        events = self.events.get()[0] if self.events.exists() else 0
        cancel = False
        for pdf in rows:
            events += len(pdf)
            cancel = cancel or bool((pdf["action"] == "cancel").any())
        self.events.update((events,))
        for t in list(self.handle.listTimers()):
            self.handle.deleteTimer(t)
        if not cancel:
            self.handle.registerTimer(timerValues.getCurrentProcessingTimeInMs() + IDLE_TIMER_MS)
        yield pd.DataFrame({"user": [key[0]], "events": [events], "expired": [False]})

    def handleExpiredTimer(self, key, timerValues, expiredTimerInfo):
        events = self.events.get()[0] if self.events.exists() else 0
        self.events.clear()
        yield pd.DataFrame({"user": [key[0]], "events": [events], "expired": [True]})

    def close(self):
        pass


class QuietAlerts(StatefulProcessor):
    """Event time, per user: events so far (value state) and an event-time timer 5 s after the
    user's latest event (moved forward only); when the watermark passes it, a row with the
    count and the timer's time."""

    def init(self, handle):
        self.handle = handle
        self.events = handle.getValueState("events", "events LONG")

    def handleInputRows(self, key, rows, timerValues):
        events = self.events.get()[0] if self.events.exists() else 0
        latest = None
        for pdf in rows:
            events += len(pdf)
            for t in pdf["ts"]:
                latest = _ms(t) if latest is None else max(latest, _ms(t))
        self.events.update((events,))
        old = list(self.handle.listTimers())
        if latest is not None and all(t < latest + 5000 for t in old):
            for t in old:
                self.handle.deleteTimer(t)
            self.handle.registerTimer(latest + 5000)
        return iter([])

    def handleExpiredTimer(self, key, timerValues, expiredTimerInfo):
        events = self.events.get()[0] if self.events.exists() else 0
        at = pd.Timestamp(expiredTimerInfo.getExpiryTimeInMs(), unit="ms")
        yield pd.DataFrame({"user": [key[0]], "events": [events], "fired_at": [at]})

    def close(self):
        pass


# The TTL of `TtlCounts` (see case tws_ttl: the harness pauses longer than this before the step
# where the counts must have expired).
TTL_MS = 60000


class TtlCounts(StatefulProcessor):
    """Per user: events so far in a value state with a TTL of TTL_MS of processing time (every
    update restarts it), and visits per page in a map state with the same TTL; emitted on every
    call. After a pause longer than the TTL the counts start again."""

    def init(self, handle):
        self.events = handle.getValueState("events", "events LONG", TTL_MS)
        self.visits = handle.getMapState("visits", "page STRING", "visits LONG", TTL_MS)

    def handleInputRows(self, key, rows, timerValues):
        events = self.events.get()[0] if self.events.exists() else 0
        for pdf in rows:
            events += len(pdf)
            for page in pdf["page"]:
                n = self.visits.getValue((page,))[0] if self.visits.containsKey((page,)) else 0
                self.visits.updateValue((page,), (n + 1,))
        self.events.update((events,))
        pages = sorted(k for (k,) in self.visits.keys())
        yield pd.DataFrame({"user": [key[0]], "events": [events], "pages": [",".join(pages)]})

    def close(self):
        pass


class WatermarkTimers(StatefulProcessor):
    """Event time, per user: events so far (value state); each call with rows registers a timer
    at exactly the batch's watermark (once the query has one) and one at the user's latest event
    time. Each fired timer emits the count, the timer's time and the watermark it fired at: does
    a timer at exactly the watermark fire in the batch that registered it?"""

    def init(self, handle):
        self.handle = handle
        self.events = handle.getValueState("events", "events LONG")

    def handleInputRows(self, key, rows, timerValues):
        events = self.events.get()[0] if self.events.exists() else 0
        latest = None
        for pdf in rows:
            events += len(pdf)
            for t in pdf["ts"]:
                latest = _ms(t) if latest is None else max(latest, _ms(t))
        self.events.update((events,))
        wm = timerValues.getCurrentWatermarkInMs()
        if wm > 0:
            self.handle.registerTimer(wm)
        if latest is not None:
            self.handle.registerTimer(latest)
        return iter([])

    def handleExpiredTimer(self, key, timerValues, expiredTimerInfo):
        events = self.events.get()[0] if self.events.exists() else 0
        at = pd.Timestamp(expiredTimerInfo.getExpiryTimeInMs(), unit="ms")
        wm = pd.Timestamp(timerValues.getCurrentWatermarkInMs(), unit="ms")
        yield pd.DataFrame({"user": [key[0]], "events": [events], "fired_at": [at], "watermark_at": [wm]})

    def close(self):
        pass


class BatchTimeTimers(StatefulProcessor):
    """Processing time, per user: events so far (value state); each call with rows registers a
    timer at exactly the batch's processing time. A fired timer emits the count: does a timer at
    exactly the batch time fire in the batch that registered it?"""

    def init(self, handle):
        self.handle = handle
        self.events = handle.getValueState("events", "events LONG")

    def handleInputRows(self, key, rows, timerValues):
        events = self.events.get()[0] if self.events.exists() else 0
        for pdf in rows:
            events += len(pdf)
        self.events.update((events,))
        self.handle.registerTimer(timerValues.getCurrentProcessingTimeInMs())
        yield pd.DataFrame({"user": [key[0]], "events": [events], "fired": [False]})

    def handleExpiredTimer(self, key, timerValues, expiredTimerInfo):
        events = self.events.get()[0] if self.events.exists() else 0
        at_batch_time = expiredTimerInfo.getExpiryTimeInMs() == timerValues.getCurrentProcessingTimeInMs()
        yield pd.DataFrame({"user": [key[0]], "events": [events], "fired": [bool(at_batch_time)]})

    def close(self):
        pass


class InitialCounts(StatefulProcessor):
    """Per user: events so far (value state) and the count the initial state gave (value state
    `seeded`). `handleInitialState` adds each initial row's `count` to both (a user with several
    initial rows gets their sum); each call with rows adds the rows and emits the user, events
    and seeded. A user only in the initial state emits nothing until their first event."""

    def init(self, handle):
        self.events = handle.getValueState("events", "events LONG")
        self.seeded = handle.getValueState("seeded", "seeded LONG")

    def handleInitialState(self, key, initialState, timerValues):
        n = int(initialState["count"].sum())
        events = self.events.get()[0] if self.events.exists() else 0
        seeded = self.seeded.get()[0] if self.seeded.exists() else 0
        self.events.update((events + n,))
        self.seeded.update((seeded + n,))

    def handleInputRows(self, key, rows, timerValues):
        events = self.events.get()[0] if self.events.exists() else 0
        seeded = self.seeded.get()[0] if self.seeded.exists() else 0
        for pdf in rows:
            events += len(pdf)
        self.events.update((events,))
        yield pd.DataFrame({"user": [key[0]], "events": [events], "seeded": [seeded]})

    def close(self):
        pass
