//! The user's side of `transform_with_state`: the [`StatefulProcessor`] trait, the handle its
//! `init` declares state variables through, and the typed state variables and timers a call
//! reads and writes through a [`KeyHandle`] (Spark 4's `StatefulProcessorHandle`,
//! `ValueState`, `ListState`, `MapState`, `TimerValues`, `ExpiredTimerInfo`).

use std::cell::RefCell;
use std::marker::PhantomData;

use crate::codec::{to_bytes, StateCodec};
use crate::ops::group_state::GroupRows;

use super::row::{Slot, Stamped, StateBytes, TwsRow, NEVER};

/// Which clock a processor's timers use (Spark's `TimeMode`), from the DSL's
/// `time_mode = none | processing_time | event_time`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimeMode {
    /// No timers; [`TimerValues`] are both -1.
    None,
    /// Timers against the batch's processing time.
    ProcessingTime,
    /// Timers against the event-time watermark (the query needs `with_watermark`).
    EventTime,
}

/// Spark's "no timestamp" (-1): a [`TimerValues`] figure the time mode does not give.
pub const NO_TIME: i64 = -1;

/// The batch's times as a call sees them (Spark's `TimerValues`): the processing time and
/// the event-time watermark (ms), both [`NO_TIME`] with `time_mode = none`, the watermark
/// [`NO_TIME`] while the query has none.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimerValues {
    processing_time_ms: i64,
    watermark_ms: i64,
}

impl TimerValues {
    /// The times of a batch (the operator makes them; public for tests of processors).
    pub fn new(processing_time_ms: i64, watermark_ms: i64) -> Self {
        TimerValues { processing_time_ms, watermark_ms }
    }

    /// The batch's processing time (ms since the epoch), the same for every call of a batch
    /// and logged with it, so a re-run sees the same time.
    pub fn get_current_processing_time_in_ms(&self) -> i64 {
        self.processing_time_ms
    }

    /// The watermark the batch evicts by (ms).
    pub fn get_current_watermark_in_ms(&self) -> i64 {
        self.watermark_ms
    }
}

/// Which timer fired (Spark's `ExpiredTimerInfo`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExpiredTimerInfo {
    expiry_time_ms: i64,
}

impl ExpiredTimerInfo {
    /// A fired timer (the operator makes it; public for tests of processors).
    pub fn new(expiry_time_ms: i64) -> Self {
        ExpiredTimerInfo { expiry_time_ms }
    }

    /// The time the timer was registered for (ms).
    pub fn get_expiry_time_in_ms(&self) -> i64 {
        self.expiry_time_ms
    }
}

/// A state variable's time to live (Spark's `TTLConfig`): a value expires this long after
/// its last write, in processing time; an expired value is never returned and is removed at
/// the end of the batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Ttl {
    ms: Option<i64>,
}

impl Ttl {
    /// Values never expire.
    pub const NONE: Ttl = Ttl { ms: None };

    /// Values expire `ms` milliseconds of processing time after their last write.
    pub fn ms(ms: i64) -> Ttl {
        Ttl { ms: Some(ms) }
    }

    /// [`Ttl::ms`] from a Spark interval (`"30 minutes"`); a malformed one is refused by
    /// the declaration (reported as the first batch's error).
    pub fn duration(text: &str) -> Ttl {
        match crate::Duration::parse(text) {
            Ok(d) => Ttl { ms: Some(d.micros().div_euclid(1000)) },
            Err(_) => Ttl { ms: Some(i64::MIN) },
        }
    }

    /// The duration (ms), if values expire.
    pub fn as_ms(&self) -> Option<i64> {
        self.ms
    }
}

/// Which kind a state variable is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VarKind {
    Value,
    List,
    Map,
}

impl VarKind {
    fn spark(self) -> &'static str {
        match self {
            VarKind::Value => "ValueState",
            VarKind::List => "ListState",
            VarKind::Map => "MapState",
        }
    }
}

/// One declared state variable: its name, kind, layout and TTL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VarDecl {
    /// The name given to `init`'s handle.
    pub name: String,
    pub kind: VarKind,
    /// The stored layout: `value[<T>]`, `list[<T>]` or `map[<K>,<V>]`.
    pub layout: String,
    pub ttl_ms: Option<i64>,
}

/// The handle a processor's [`StatefulProcessor::init`] declares its state variables
/// through (Spark's `StatefulProcessorHandle.getValueState` and co.). Each declaration
/// returns a typed handle to keep in the processor; the variables' names and layouts become
/// the operator's state schema, recorded in the checkpoint and compared on every restart.
#[derive(Debug)]
pub struct StatefulProcessorHandle {
    pub(super) decls: Vec<VarDecl>,
    /// The names `delete_if_exists` was called with.
    pub(super) deleted: Vec<String>,
    pub(super) errors: Vec<String>,
    time_mode: TimeMode,
}

impl StatefulProcessorHandle {
    pub(super) fn new(time_mode: TimeMode) -> Self {
        StatefulProcessorHandle { decls: Vec::new(), deleted: Vec::new(), errors: Vec::new(), time_mode }
    }

    /// The query's time mode.
    pub fn time_mode(&self) -> TimeMode {
        self.time_mode
    }

    fn check_name(&mut self, name: &str) {
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            self.errors.push(format!(
                "state variable name `{name}`: use letters, digits and `_` (it names the state in the checkpoint)"
            ));
        }
    }

    fn declare(&mut self, name: &str, kind: VarKind, layout: String, ttl: Ttl) -> usize {
        self.check_name(name);
        if self.decls.iter().any(|d| d.name == name) {
            self.errors.push(format!("state variable `{name}` is declared twice in `init`"));
        }
        if self.deleted.iter().any(|d| d == name) {
            self.errors.push(format!("state variable `{name}` is deleted and declared in `init`"));
        }
        if let Some(ms) = ttl.ms.filter(|ms| *ms <= 0) {
            self.errors.push(if ms == i64::MIN {
                format!("state variable `{name}`: the TTL is not an interval (`Ttl::duration(\"10 minutes\")`)")
            } else {
                format!("state variable `{name}`: the TTL must be positive, got {ms} ms")
            });
        }
        self.decls.push(VarDecl { name: name.to_string(), kind, layout, ttl_ms: ttl.ms });
        self.decls.len() - 1
    }

    /// Deletes the state variable `name` and its values for every key, if the checkpoint has
    /// one (Spark's `deleteIfExists`): a processor that no longer uses a variable calls it in
    /// `init`, and a restart from a checkpoint that recorded the variable is then accepted
    /// (its values are dropped when the state is restored) instead of refused. Keep the call as
    /// long as the checkpoint is used: the recorded layout keeps the variable's place. On a
    /// new checkpoint it does nothing.
    pub fn delete_if_exists(&mut self, name: &str) {
        self.check_name(name);
        if self.decls.iter().any(|d| d.name == name) {
            self.errors.push(format!("state variable `{name}` is declared and deleted in `init`"));
        }
        if !self.deleted.iter().any(|d| d == name) {
            self.deleted.push(name.to_string());
        }
    }

    /// Declares a single-value state variable (Spark's `getValueState`).
    pub fn get_value_state<T: StateCodec>(&mut self, name: &str, ttl: Ttl) -> ValueState<T> {
        let layout = format!("value[{}]", crate::codec::layout_of::<T>());
        ValueState { id: self.declare(name, VarKind::Value, layout, ttl), _t: PhantomData }
    }

    /// Declares a list state variable (Spark's `getListState`).
    pub fn get_list_state<T: StateCodec>(&mut self, name: &str, ttl: Ttl) -> ListState<T> {
        let layout = format!("list[{}]", crate::codec::layout_of::<T>());
        ListState { id: self.declare(name, VarKind::List, layout, ttl), _t: PhantomData }
    }

    /// Declares a map state variable (Spark's `getMapState`): user keys `K` to values `V`,
    /// iterated in the order of the keys' encodings.
    pub fn get_map_state<K: StateCodec, V: StateCodec>(&mut self, name: &str, ttl: Ttl) -> MapState<K, V> {
        let layout = format!("map[{},{}]", crate::codec::layout_of::<K>(), crate::codec::layout_of::<V>());
        MapState { id: self.declare(name, VarKind::Map, layout, ttl), _t: PhantomData }
    }
}

/// Arbitrary stateful processing per grouping key (Spark 4's `StatefulProcessor`), run by
/// `group_by(keys..).transform_with_state(processor, time_mode = ..)`.
///
/// The operator calls [`init`](StatefulProcessor::init) once when the query starts (before
/// its checkpoint is read: the declared variables are the state schema compared with it),
/// then per batch [`handle_input_rows`](StatefulProcessor::handle_input_rows) once per key
/// with rows (the batch's rows of that key, in input order), then
/// [`handle_expired_timer`](StatefulProcessor::handle_expired_timer) once per timer due
/// (ordered by expiry time, then key), and [`close`](StatefulProcessor::close) when the
/// query stops. What the calls return is the query's output. A panic, or a misuse of the
/// state API, fails the batch with an error naming the key; nothing of the batch is kept.
///
/// ```
/// use flowgate::prelude::*;
/// use flowgate::ops::transform_with_state::*;
///
/// /// Counts events per user and emits the count once a minute of processing time passes
/// /// without events.
/// #[derive(Default)]
/// struct Idle {
///     count: ValueState<i64>,
/// }
///
/// impl StatefulProcessor for Idle {
///     type Key = String;
///     type Input = i64;
///     type Output = (String, i64);
///
///     fn init(&mut self, handle: &mut StatefulProcessorHandle) {
///         self.count = handle.get_value_state("count", Ttl::NONE);
///     }
///
///     fn handle_input_rows(
///         &mut self,
///         key: &String,
///         rows: GroupRows<'_, i64>,
///         timer_values: &TimerValues,
///         handle: &mut KeyHandle<'_>,
///     ) -> impl IntoIterator<Item = (String, i64)> {
///         let n = self.count.get(handle).unwrap_or(0) + rows.len() as i64;
///         self.count.update(handle, n);
///         for t in handle.list_timers() {
///             handle.delete_timer(t);
///         }
///         handle.register_timer(timer_values.get_current_processing_time_in_ms() + 60_000);
///         None
///     }
///
///     fn handle_expired_timer(
///         &mut self,
///         key: &String,
///         _timer_values: &TimerValues,
///         _expired: ExpiredTimerInfo,
///         handle: &mut KeyHandle<'_>,
///     ) -> impl IntoIterator<Item = (String, i64)> {
///         let n = self.count.get(handle).unwrap_or(0);
///         self.count.clear(handle);
///         Some((key.clone(), n))
///     }
/// }
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a stateful processor",
    label = "`transform_with_state` takes a value whose type implements `flowgate::ops::transform_with_state::StatefulProcessor`",
    note = "implement `StatefulProcessor` for it: `init` declares its state variables, `handle_input_rows` is called per key"
)]
pub trait StatefulProcessor: Send {
    /// The grouping key: the key column's type for one `group_by` key, a tuple for several.
    type Key;
    /// The input record.
    type Input;
    /// The output record (the query's).
    type Output;

    /// Declares the state variables through `handle` and keeps their handles.
    fn init(&mut self, handle: &mut StatefulProcessorHandle);

    /// One key's rows of the batch, in input order, as an iterator of owned records moved
    /// out of the batch (Spark's `inputRows: Iterator[I]`; `rows.collect::<Vec<_>>()` if
    /// the call needs them twice); returns output records.
    fn handle_input_rows(
        &mut self,
        key: &Self::Key,
        rows: GroupRows<'_, Self::Input>,
        timer_values: &TimerValues,
        handle: &mut KeyHandle<'_>,
    ) -> impl IntoIterator<Item = Self::Output>;

    /// A timer of `key` is due; it is deleted after the call. Returns output records (none
    /// by default).
    fn handle_expired_timer(
        &mut self,
        key: &Self::Key,
        timer_values: &TimerValues,
        expired_timer: ExpiredTimerInfo,
        handle: &mut KeyHandle<'_>,
    ) -> impl IntoIterator<Item = Self::Output> {
        let _ = (key, timer_values, expired_timer, handle);
        std::iter::empty()
    }

    /// Called once when the query stops.
    fn close(&mut self) {}
}

/// A [`StatefulProcessor`] that takes an initial state (Spark 4's
/// `StatefulProcessorWithInitialState`), for `transform_with_state(processor, time_mode = ..,
/// initial_state = ..)`: the initial state is any iterable of `(key, Self::InitialState)`,
/// evaluated when the query starts. In the query's first batch (batch 0) only, before any input
/// row, [`handle_initial_state`](StatefulProcessorWithInitialState::handle_initial_state) is
/// called once per key of the initial state (keys in first-seen order) with that key's
/// entries in their order: Spark 4 allows a key several initial rows, and
/// `transformWithStateInPandas` hands them to one call as one DataFrame (golden case
/// `tws_initial_state`; Scala's row API calls once per row: loop over them). It may write
/// state variables and register timers; it emits nothing. A restart whose batch 0 committed
/// never calls it again; a batch 0 re-run after a failure calls it again (from no state).
///
/// ```
/// use flowgate::ops::transform_with_state::*;
///
/// /// Counts events per user, starting from a count carried over from elsewhere.
/// #[derive(Default)]
/// struct Counts {
///     count: ValueState<i64>,
/// }
///
/// impl StatefulProcessor for Counts {
///     type Key = String;
///     type Input = i64;
///     type Output = (String, i64);
///
///     fn init(&mut self, handle: &mut StatefulProcessorHandle) {
///         self.count = handle.get_value_state("count", Ttl::NONE);
///     }
///
///     fn handle_input_rows(
///         &mut self,
///         key: &String,
///         rows: GroupRows<'_, i64>,
///         _timer_values: &TimerValues,
///         handle: &mut KeyHandle<'_>,
///     ) -> impl IntoIterator<Item = (String, i64)> {
///         let n = self.count.get(handle).unwrap_or(0) + rows.len() as i64;
///         self.count.update(handle, n);
///         Some((key.clone(), n))
///     }
/// }
///
/// impl StatefulProcessorWithInitialState for Counts {
///     type InitialState = i64;
///
///     fn handle_initial_state(
///         &mut self,
///         _key: &String,
///         initial: Vec<i64>,
///         _timer_values: &TimerValues,
///         handle: &mut KeyHandle<'_>,
///     ) {
///         let n = self.count.get(handle).unwrap_or(0) + initial.iter().sum::<i64>();
///         self.count.update(handle, n);
///     }
/// }
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` takes no initial state",
    label = "`initial_state = ..` needs a processor whose type implements `flowgate::ops::transform_with_state::StatefulProcessorWithInitialState`",
    note = "implement `StatefulProcessorWithInitialState` for it: `handle_initial_state` is called per key of the initial state in the query's first batch"
)]
pub trait StatefulProcessorWithInitialState: StatefulProcessor {
    /// One entry's initial state (the second element of the initial state's pairs).
    type InitialState;

    /// `key`'s initial-state entries, in their order (first batch only): write its state
    /// variables or register timers through `handle`.
    fn handle_initial_state(
        &mut self,
        key: &Self::Key,
        initial_states: Vec<Self::InitialState>,
        timer_values: &TimerValues,
        handle: &mut KeyHandle<'_>,
    );
}

/// One key's state variables and timers during one call (the per-key side of Spark's
/// `StatefulProcessorHandle`): the typed state handles read and write through it.
#[derive(Debug)]
pub struct KeyHandle<'a> {
    pub(super) row: &'a mut TwsRow,
    pub(super) decls: &'a [VarDecl],
    /// Each declared variable's slot in the row (its position in the stored layout, which
    /// keeps deleted variables' places).
    pub(super) slots: &'a [usize],
    pub(super) time_mode: TimeMode,
    pub(super) batch_ms: i64,
    pub(super) watermark_ms: Option<i64>,
    pub(super) changed: bool,
    pub(super) timers_registered: u64,
    pub(super) timers_deleted: u64,
    /// State rows written and removed, as Spark counts them (`numUpdatedStateRows`,
    /// `numRemovedStateRows`): a value, a list element, a map entry each.
    pub(super) rows_updated: u64,
    pub(super) rows_removed: u64,
    /// The timers this call registered (`true`) and deleted, in order, for the operator's
    /// timer index.
    pub(super) timer_log: &'a mut Vec<(i64, bool)>,
    /// Where values are encoded before they are stored (the operator's, reused by every call).
    pub(super) scratch: &'a mut Vec<u8>,
    pub(super) misuse: RefCell<Option<String>>,
}

impl KeyHandle<'_> {
    fn misuse(&self, what: String) {
        self.misuse.borrow_mut().get_or_insert(what);
    }

    /// The slot of variable `id`, checked to be of `kind` (a handle from another processor,
    /// or one never declared, is a misuse).
    fn slot(&self, id: usize, kind: VarKind) -> Option<&Slot> {
        match self.decls.get(id) {
            Some(d) if d.kind == kind => self.row.vars.get(self.slots[id]),
            _ => {
                self.misuse(format!(
                    "a {} used before `init` declared it (keep the handle `get_{}_state` returns)",
                    kind.spark(),
                    kind.spark().trim_end_matches("State").to_lowercase()
                ));
                None
            }
        }
    }

    fn slot_mut(&mut self, id: usize, kind: VarKind) -> Option<&mut Slot> {
        self.slot(id, kind)?;
        self.changed = true;
        self.row.vars.get_mut(self.slots[id])
    }

    /// When a value written now expires ([`NEVER`] without a TTL).
    fn expiry(&self, id: usize) -> i64 {
        match self.decls.get(id).and_then(|d| d.ttl_ms) {
            Some(ttl) => self.batch_ms.saturating_add(ttl),
            None => NEVER,
        }
    }

    /// `value` encoded, stamped with `expires_ms`.
    #[inline]
    fn stamp<T: StateCodec>(&mut self, value: &T, expires_ms: i64) -> Stamped {
        Stamped { bytes: StateBytes::encode(value, self.scratch), expires_ms }
    }

    fn live(&self, s: &Stamped) -> bool {
        s.expires_ms == NEVER || self.batch_ms < s.expires_ms
    }

    fn decode<T: StateCodec>(&self, bytes: &[u8]) -> Option<T> {
        match crate::codec::from_bytes(bytes) {
            Ok(v) => Some(v),
            Err(e) => {
                self.misuse(format!("a stored state value does not decode: {e}"));
                None
            }
        }
    }

    /// Registers a timer at `expiry_ms` for this key (Spark's `registerTimer`); registering
    /// the same time twice keeps one timer. A timer already due fires in this batch.
    pub fn register_timer(&mut self, expiry_ms: i64) {
        if self.time_mode == TimeMode::None {
            self.misuse("cannot use timers with `time_mode = none`: use `processing_time` or `event_time`".into());
            return;
        }
        if let Err(at) = self.row.timers.binary_search(&expiry_ms) {
            self.row.timers.insert(at, expiry_ms);
            self.timer_log.push((expiry_ms, true));
            self.changed = true;
            self.timers_registered += 1;
        }
    }

    /// Deletes this key's timer at `expiry_ms`, if there is one (Spark's `deleteTimer`).
    pub fn delete_timer(&mut self, expiry_ms: i64) {
        if self.time_mode == TimeMode::None {
            self.misuse("cannot use timers with `time_mode = none`: use `processing_time` or `event_time`".into());
            return;
        }
        if let Ok(at) = self.row.timers.binary_search(&expiry_ms) {
            self.row.timers.remove(at);
            self.timer_log.push((expiry_ms, false));
            self.changed = true;
            self.timers_deleted += 1;
        }
    }

    /// This key's timers, earliest first (Spark's `listTimers`).
    pub fn list_timers(&self) -> Vec<i64> {
        self.row.timers.clone()
    }

    /// The batch's processing time (ms).
    pub fn processing_time_ms(&self) -> i64 {
        self.batch_ms
    }

    /// The batch's eviction watermark (ms), if the query has one.
    pub fn watermark_ms(&self) -> Option<i64> {
        self.watermark_ms
    }
}

/// A single-value state variable (Spark's `ValueState`), declared in `init` with
/// [`StatefulProcessorHandle::get_value_state`]. `Default` is an undeclared handle: using it
/// is a misuse that fails the batch.
pub struct ValueState<T> {
    id: usize,
    _t: PhantomData<fn() -> T>,
}

/// A list state variable (Spark's `ListState`); each element has its own TTL.
pub struct ListState<T> {
    id: usize,
    _t: PhantomData<fn() -> T>,
}

/// A map state variable (Spark's `MapState`); each entry has its own TTL.
pub struct MapState<K, V> {
    id: usize,
    _t: PhantomData<fn() -> (K, V)>,
}

macro_rules! handle_traits {
    ($($name:ident<$($p:ident),+>),*) => {$(
        impl<$($p),+> Default for $name<$($p),+> {
            fn default() -> Self {
                $name { id: usize::MAX, _t: PhantomData }
            }
        }
        impl<$($p),+> Clone for $name<$($p),+> {
            fn clone(&self) -> Self {
                *self
            }
        }
        impl<$($p),+> Copy for $name<$($p),+> {}
        impl<$($p),+> std::fmt::Debug for $name<$($p),+> {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "{}#{}", stringify!($name), self.id)
            }
        }
    )*};
}
handle_traits!(ValueState<T>, ListState<T>, MapState<K, V>);

impl<T: StateCodec> ValueState<T> {
    /// The value, if set and not expired.
    pub fn get(&self, h: &KeyHandle<'_>) -> Option<T> {
        match h.slot(self.id, VarKind::Value)? {
            Slot::Value(Some(s)) if h.live(s) => h.decode(&s.bytes),
            _ => None,
        }
    }

    /// Whether a value is set (and not expired).
    pub fn exists(&self, h: &KeyHandle<'_>) -> bool {
        matches!(h.slot(self.id, VarKind::Value), Some(Slot::Value(Some(s))) if h.live(s))
    }

    /// Sets the value (its TTL restarts).
    pub fn update(&self, h: &mut KeyHandle<'_>, value: T) {
        let stamped = h.stamp(&value, h.expiry(self.id));
        if let Some(slot) = h.slot_mut(self.id, VarKind::Value) {
            *slot = Slot::Value(Some(stamped));
            h.rows_updated += 1;
        }
    }

    /// Removes the value.
    pub fn clear(&self, h: &mut KeyHandle<'_>) {
        if let Some(Slot::Value(v)) = h.slot_mut(self.id, VarKind::Value) {
            let removed = v.take().is_some() as u64;
            h.rows_removed += removed;
        }
    }
}

impl<T: StateCodec> ListState<T> {
    /// The elements that have not expired, in order.
    pub fn get(&self, h: &KeyHandle<'_>) -> Vec<T> {
        match h.slot(self.id, VarKind::List) {
            Some(Slot::List(items)) => items.iter().filter(|s| h.live(s)).filter_map(|s| h.decode(&s.bytes)).collect(),
            _ => Vec::new(),
        }
    }

    /// Whether the list has an element that has not expired.
    pub fn exists(&self, h: &KeyHandle<'_>) -> bool {
        matches!(h.slot(self.id, VarKind::List), Some(Slot::List(items)) if items.iter().any(|s| h.live(s)))
    }

    /// Replaces the list.
    pub fn put(&self, h: &mut KeyHandle<'_>, values: Vec<T>) {
        let expires_ms = h.expiry(self.id);
        let stamped: Vec<Stamped> = values.iter().map(|v| h.stamp(v, expires_ms)).collect();
        if let Some(Slot::List(items)) = h.slot_mut(self.id, VarKind::List) {
            *items = stamped;
            h.rows_updated += values.len() as u64;
        }
    }

    /// Appends one element.
    pub fn append_value(&self, h: &mut KeyHandle<'_>, value: T) {
        let stamped = h.stamp(&value, h.expiry(self.id));
        if let Some(Slot::List(items)) = h.slot_mut(self.id, VarKind::List) {
            items.push(stamped);
            h.rows_updated += 1;
        }
    }

    /// Appends elements.
    pub fn append_list(&self, h: &mut KeyHandle<'_>, values: Vec<T>) {
        let expires_ms = h.expiry(self.id);
        let stamped: Vec<Stamped> = values.iter().map(|v| h.stamp(v, expires_ms)).collect();
        if let Some(Slot::List(items)) = h.slot_mut(self.id, VarKind::List) {
            items.extend(stamped);
            h.rows_updated += values.len() as u64;
        }
    }

    /// Removes every element.
    pub fn clear(&self, h: &mut KeyHandle<'_>) {
        if let Some(Slot::List(items)) = h.slot_mut(self.id, VarKind::List) {
            let removed = items.len() as u64;
            items.clear();
            h.rows_removed += removed;
        }
    }
}

impl<K: StateCodec, V: StateCodec> MapState<K, V> {
    fn entries<'h>(&self, h: &'h KeyHandle<'_>) -> impl Iterator<Item = &'h (Vec<u8>, Stamped)> + 'h {
        let items: &'h [(Vec<u8>, Stamped)] = match h.slot(self.id, VarKind::Map) {
            Some(Slot::Map(items)) => items,
            _ => &[],
        };
        let batch_ms = h.batch_ms;
        items.iter().filter(move |(_, s)| s.expires_ms == NEVER || batch_ms < s.expires_ms)
    }

    /// The value of `key`, if set and not expired.
    pub fn get_value(&self, h: &KeyHandle<'_>, key: &K) -> Option<V> {
        let k = to_bytes(key);
        let found = self.entries(h).find(|(ek, _)| *ek == k).map(|(_, s)| s.bytes.clone());
        found.and_then(|b| h.decode(&b))
    }

    /// Whether `key` has a value that has not expired.
    pub fn contains_key(&self, h: &KeyHandle<'_>, key: &K) -> bool {
        let k = to_bytes(key);
        self.entries(h).any(|(ek, _)| *ek == k)
    }

    /// Whether the map has an entry that has not expired.
    pub fn exists(&self, h: &KeyHandle<'_>) -> bool {
        self.entries(h).next().is_some()
    }

    /// Sets `key`'s value (its TTL restarts).
    pub fn update_value(&self, h: &mut KeyHandle<'_>, key: K, value: V) {
        let stamped = h.stamp(&value, h.expiry(self.id));
        let k = to_bytes(&key);
        if let Some(Slot::Map(items)) = h.slot_mut(self.id, VarKind::Map) {
            match items.binary_search_by(|(ek, _)| ek.cmp(&k)) {
                Ok(at) => items[at].1 = stamped,
                Err(at) => items.insert(at, (k, stamped)),
            }
            h.rows_updated += 1;
        }
    }

    /// The entries that have not expired, in the order of the keys' encodings.
    pub fn iter(&self, h: &KeyHandle<'_>) -> Vec<(K, V)> {
        let raw: Vec<(Vec<u8>, StateBytes)> = self.entries(h).map(|(k, s)| (k.clone(), s.bytes.clone())).collect();
        raw.into_iter().filter_map(|(k, v)| Some((h.decode(&k)?, h.decode(&v)?))).collect()
    }

    /// The keys that have not expired.
    pub fn keys(&self, h: &KeyHandle<'_>) -> Vec<K> {
        self.iter(h).into_iter().map(|(k, _)| k).collect()
    }

    /// The values that have not expired.
    pub fn values(&self, h: &KeyHandle<'_>) -> Vec<V> {
        self.iter(h).into_iter().map(|(_, v)| v).collect()
    }

    /// Removes `key`.
    pub fn remove_key(&self, h: &mut KeyHandle<'_>, key: &K) {
        let k = to_bytes(key);
        if let Some(Slot::Map(items)) = h.slot_mut(self.id, VarKind::Map) {
            if let Ok(at) = items.binary_search_by(|(ek, _)| ek.cmp(&k)) {
                items.remove(at);
                h.rows_removed += 1;
            }
        }
    }

    /// Removes every entry.
    pub fn clear(&self, h: &mut KeyHandle<'_>) {
        if let Some(Slot::Map(items)) = h.slot_mut(self.id, VarKind::Map) {
            let removed = items.len() as u64;
            items.clear();
            h.rows_removed += removed;
        }
    }
}
