//! The user's view of one key's state: Spark's `GroupState`, and what is stored per key.

use crate::codec::StateCodec;
use crate::error::Result;

/// No timeout set (Spark's `NO_TIMESTAMP`).
pub const NO_TIMESTAMP: i64 = -1;

/// Which timeouts a query's group state uses (Spark's `GroupStateTimeout`), from the DSL's
/// `timeout = none | processing_time | event_time`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GroupStateTimeout {
    /// No timeouts.
    NoTimeout,
    /// `set_timeout_duration`, against the batch's processing time.
    ProcessingTimeTimeout,
    /// `set_timeout_timestamp`, against the watermark.
    EventTimeTimeout,
}

/// What the checkpoint stores per key: the state (absent once removed while a timeout is
/// still set, as Spark keeps such a row) and its timeout (ms, or [`NO_TIMESTAMP`]).
#[derive(Clone, Debug, PartialEq)]
pub struct GroupStateValue<S> {
    /// The user's state.
    pub state: Option<S>,
    /// The timeout timestamp (ms since the epoch), or [`NO_TIMESTAMP`].
    pub timeout_ms: i64,
}

impl<S: StateCodec> StateCodec for GroupStateValue<S> {
    fn layout(out: &mut String) {
        out.push_str("group_state[");
        S::layout(out);
        out.push(']');
    }
    fn encode(&self, out: &mut Vec<u8>) {
        self.state.encode(out);
        self.timeout_ms.encode(out);
    }
    fn decode(input: &mut &[u8]) -> Result<Self> {
        Ok(GroupStateValue { state: Option::<S>::decode(input)?, timeout_ms: i64::decode(input)? })
    }
}

/// One key's state during one call of a `map_groups_with_state` /
/// `flat_map_groups_with_state` function: Spark's `GroupState[S]`.
///
/// The timeout is reset on every call: a function that wants one sets it again each time it
/// is called (as in Spark). Misusing the API as Spark forbids (a timeout of a kind the query
/// did not enable, a non-positive duration, a timeout timestamp behind the watermark, the
/// watermark of a query without one) fails the batch with Spark's message once the function
/// returns; [`GroupState::get`] on an absent state panics, which also fails the batch with an
/// error naming the key.
#[derive(Debug)]
pub struct GroupState<S> {
    pub(super) value: Option<S>,
    pub(super) updated: bool,
    pub(super) removed: bool,
    pub(super) timeout_ms: i64,
    pub(super) misuse: std::cell::RefCell<Option<String>>,
    conf: GroupStateTimeout,
    timed_out: bool,
    batch_ms: i64,
    watermark_ms: Option<i64>,
}

impl<S> GroupState<S> {
    /// The state of one call (the operator makes it; public for tests of user functions).
    pub fn new(
        value: Option<S>,
        conf: GroupStateTimeout,
        timed_out: bool,
        batch_ms: i64,
        watermark_ms: Option<i64>,
    ) -> Self {
        GroupState {
            value,
            updated: false,
            removed: false,
            timeout_ms: NO_TIMESTAMP,
            misuse: std::cell::RefCell::new(None),
            conf,
            timed_out,
            batch_ms,
            watermark_ms,
        }
    }

    fn misuse(&self, what: String) {
        self.misuse.borrow_mut().get_or_insert(what);
    }

    /// Whether the key has state.
    pub fn exists(&self) -> bool {
        self.value.is_some()
    }

    /// The state.
    ///
    /// # Panics
    /// When there is none (Spark throws `NoSuchElementException`); use
    /// [`GroupState::get_option`] when it may be absent.
    pub fn get(&self) -> &S {
        match &self.value {
            Some(v) => v,
            None => panic!("GroupState::get: state is either not defined or has already been removed"),
        }
    }

    /// The state, if any.
    pub fn get_option(&self) -> Option<&S> {
        self.value.as_ref()
    }

    /// The state, mutably, if any; changing it through this counts as an update only after
    /// [`GroupState::update`] (Spark's state objects are values: call `update` to keep a
    /// change).
    pub fn get_mut(&mut self) -> Option<&mut S> {
        self.value.as_mut()
    }

    /// Sets the state.
    pub fn update(&mut self, value: S) {
        self.value = Some(value);
        self.updated = true;
        self.removed = false;
    }

    /// Removes the state (a timeout set in this call is still kept, as Spark keeps it).
    pub fn remove(&mut self) {
        self.value = None;
        self.updated = false;
        self.removed = true;
    }

    /// Whether this call is for a key whose timeout expired (it gets no rows then).
    pub fn has_timed_out(&self) -> bool {
        self.timed_out
    }

    /// Sets a processing-time timeout `duration_ms` after this batch's processing time
    /// (`timeout = processing_time` only). The key is called with no rows in the first batch
    /// whose processing time is past it, unless it gets rows first.
    pub fn set_timeout_duration(&mut self, duration_ms: i64) {
        if self.conf != GroupStateTimeout::ProcessingTimeTimeout {
            self.misuse("cannot set timeout duration without enabling processing time timeout in map_groups_with_state / flat_map_groups_with_state (`timeout = processing_time`)".into());
        } else if duration_ms <= 0 {
            self.misuse(format!("timeout duration must be positive, got {duration_ms} ms"));
        } else {
            self.timeout_ms = self.batch_ms.saturating_add(duration_ms);
        }
    }

    /// [`GroupState::set_timeout_duration`] with a Spark interval string (`"10 seconds"`).
    pub fn set_timeout_duration_str(&mut self, duration: &str) {
        match crate::Duration::parse(duration) {
            Ok(d) => self.set_timeout_duration(d.micros().div_euclid(1000)),
            Err(e) => self.misuse(e.to_string()),
        }
    }

    /// Sets an event-time timeout at `timestamp_ms` (`timeout = event_time` only): the key is
    /// called with no rows once the watermark passes it. It must not be behind the current
    /// watermark.
    pub fn set_timeout_timestamp(&mut self, timestamp_ms: i64) {
        if self.conf != GroupStateTimeout::EventTimeTimeout {
            self.misuse("cannot set timeout timestamp without enabling event time timeout in map_groups_with_state / flat_map_groups_with_state (`timeout = event_time`)".into());
            return;
        }
        if let Some(w) = self.watermark_ms {
            if timestamp_ms < w {
                self.misuse(format!(
                    "timeout timestamp ({timestamp_ms}) cannot be earlier than the current watermark ({w})"
                ));
                return;
            }
        }
        self.timeout_ms = timestamp_ms;
    }

    /// The event-time watermark the batch evicts by (ms). A query without a watermark has
    /// none: calling this is a misuse (as Spark), reported after the call; it returns
    /// [`NO_TIMESTAMP`] meanwhile.
    pub fn get_current_watermark_ms(&self) -> i64 {
        match self.watermark_ms {
            Some(w) => w,
            None => {
                self.misuse("cannot get the event time watermark without `with_watermark` before map_groups_with_state / flat_map_groups_with_state".into());
                NO_TIMESTAMP
            }
        }
    }

    /// The batch's processing time (ms since the epoch), the same for every key of a batch
    /// and logged with the batch, so a re-run sees the same time.
    pub fn get_current_processing_time_ms(&self) -> i64 {
        self.batch_ms
    }

    /// The timeout set in this call (ms), if any.
    pub fn timeout_ms(&self) -> Option<i64> {
        (self.timeout_ms != NO_TIMESTAMP).then_some(self.timeout_ms)
    }
}
