//! What `transform_with_state` stores per grouping key: every declared state variable's
//! values (encoded, each with its expiry) and the key's timers, in one state-store value.
//!
//! # Encoding (persisted; pinned by the golden-vector test in `tests.rs`)
//!
//! Little-endian, as [`crate::codec`]: the number of variables (u64), then per variable in
//! declaration order a tag byte and its contents — `1` a value state: an option byte, then
//! the value's bytes and expiry; `2` a list state: the count (u64), then each element's bytes
//! and expiry; `3` a map state: the count (u64), then each entry's key bytes, value bytes and
//! expiry, in key-byte order — then the number of timers (u64) and each timer (i64 ms),
//! earliest first. "Bytes" are a length (u64) and the [`StateCodec`] encoding of the
//! variable's type; an expiry is i64 ms of processing time, [`NEVER`] without a TTL.
//!
//! The layout recorded in the checkpoint's metadata names each variable and its type:
//! `transform_with_state[count:value[i64],seen:map[utf8,i64]]` ([`row_layout`]); a restart
//! whose processor declares other variables, or changes one's type, is refused before the
//! first batch with the difference per variable ([`crate::codec::layout_difference`]).

use crate::codec::StateCodec;
use crate::error::{Error, Result};

use super::processor::{VarDecl, VarKind};

/// The expiry of a value without a TTL.
pub const NEVER: i64 = i64::MAX;

/// One stored value: the encoding of the variable's type and when it expires.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stamped {
    pub bytes: StateBytes,
    pub expires_ms: i64,
}

/// The longest encoding kept inline in a [`StateBytes`]: as many bytes as fit beside a length
/// byte in a `Vec`'s 24, so a small state struct (two `i64`s: 16 bytes) is stored without an
/// allocation of its own, and a call reads it from the row it already has in cache.
const INLINE: usize = 23;

/// A value's encoding in memory: inline up to [`INLINE`] bytes, else on the heap. Its bytes
/// are what [`StateCodec`] wrote; where they live is never persisted.
#[derive(Clone)]
pub enum StateBytes {
    Inline { len: u8, data: [u8; INLINE] },
    Heap(Vec<u8>),
}

impl StateBytes {
    /// The encoding of `value`.
    pub fn of<T: StateCodec>(value: &T) -> StateBytes {
        StateBytes::encode(value, &mut Vec::new())
    }

    /// The encoding of `value`, written through `scratch` (cleared first): an encoding that
    /// fits inline costs no allocation once `scratch` has grown, as a call's writes do.
    #[inline]
    pub fn encode<T: StateCodec>(value: &T, scratch: &mut Vec<u8>) -> StateBytes {
        scratch.clear();
        value.encode(scratch);
        StateBytes::from(&scratch[..])
    }
}

impl From<Vec<u8>> for StateBytes {
    fn from(v: Vec<u8>) -> StateBytes {
        if v.len() <= INLINE {
            let mut data = [0u8; INLINE];
            data[..v.len()].copy_from_slice(&v);
            StateBytes::Inline { len: v.len() as u8, data }
        } else {
            StateBytes::Heap(v)
        }
    }
}

impl From<&[u8]> for StateBytes {
    fn from(v: &[u8]) -> StateBytes {
        if v.len() <= INLINE {
            let mut data = [0u8; INLINE];
            data[..v.len()].copy_from_slice(v);
            StateBytes::Inline { len: v.len() as u8, data }
        } else {
            StateBytes::Heap(v.to_vec())
        }
    }
}

impl std::ops::Deref for StateBytes {
    type Target = [u8];
    #[inline]
    fn deref(&self) -> &[u8] {
        match self {
            StateBytes::Inline { len, data } => &data[..*len as usize],
            StateBytes::Heap(v) => v,
        }
    }
}

impl PartialEq for StateBytes {
    fn eq(&self, other: &Self) -> bool {
        **self == **other
    }
}

impl Eq for StateBytes {}

impl std::fmt::Debug for StateBytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(&**self, f)
    }
}

/// One state variable's contents for one key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Slot {
    Value(Option<Stamped>),
    List(Vec<Stamped>),
    /// Entries sorted by key bytes.
    Map(Vec<(Vec<u8>, Stamped)>),
}

impl Slot {
    /// An empty slot of `kind`.
    pub fn empty(kind: VarKind) -> Slot {
        match kind {
            VarKind::Value => Slot::Value(None),
            VarKind::List => Slot::List(Vec::new()),
            VarKind::Map => Slot::Map(Vec::new()),
        }
    }

    pub(super) fn is_empty(&self) -> bool {
        match self {
            Slot::Value(v) => v.is_none(),
            Slot::List(items) => items.is_empty(),
            Slot::Map(items) => items.is_empty(),
        }
    }

    /// Removes the values expired at `batch_ms`; returns how many.
    pub fn expire(&mut self, batch_ms: i64) -> u64 {
        let dead = |s: &Stamped| s.expires_ms != NEVER && batch_ms >= s.expires_ms;
        match self {
            Slot::Value(v) if v.as_ref().is_some_and(dead) => {
                *v = None;
                1
            }
            Slot::Value(_) => 0,
            Slot::List(items) => {
                let n = items.len();
                items.retain(|s| !dead(s));
                (n - items.len()) as u64
            }
            Slot::Map(items) => {
                let n = items.len();
                items.retain(|(_, s)| !dead(s));
                (n - items.len()) as u64
            }
        }
    }

    /// State rows as Spark counts them in `numRowsTotal`: a set value and a non-empty list
    /// one each (a list is one row of the store), a map one per entry.
    pub fn state_rows(&self) -> u64 {
        match self {
            Slot::Value(v) => v.is_some() as u64,
            Slot::List(items) => !items.is_empty() as u64,
            Slot::Map(items) => items.len() as u64,
        }
    }

    /// The earliest expiry in the slot, if any value has a TTL.
    pub fn next_expiry(&self) -> Option<i64> {
        let live = |s: &Stamped| (s.expires_ms != NEVER).then_some(s.expires_ms);
        match self {
            Slot::Value(v) => v.as_ref().and_then(live),
            Slot::List(items) => items.iter().filter_map(live).min(),
            Slot::Map(items) => items.iter().filter_map(|(_, s)| live(s)).min(),
        }
    }
}

/// How many state variables a [`TwsRow`] holds inline, in the state table's entry: a call
/// then reads its key's variable from the cache line the probe brought in. Measured
/// (`benches/`, `tws_value_state`, `perf record`): with the variables in a `Vec`, the first
/// read of the row's heap block missed the cache once per call, 19% of the samples. A
/// processor with more variables keeps them on the heap, as before.
pub const INLINE_VARS: usize = 1;

/// A row's state variables ([`INLINE_VARS`] of them inline).
pub type Vars = smallvec::SmallVec<[Slot; INLINE_VARS]>;

/// One grouping key's state variables (in declaration order) and timers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TwsRow {
    pub vars: Vars,
    /// Expiry times (ms), sorted, unique.
    pub timers: Vec<i64>,
}

impl TwsRow {
    /// A key's row before anything is written: empty slots of the declared kinds.
    pub fn new(decls: &[VarDecl]) -> Self {
        TwsRow { vars: decls.iter().map(|d| Slot::empty(d.kind)).collect(), timers: Vec::new() }
    }

    /// Whether nothing is stored (the key is then removed from state).
    pub fn is_empty(&self) -> bool {
        self.timers.is_empty() && self.vars.iter().all(Slot::is_empty)
    }

    /// State rows as Spark counts them (see [`Slot::state_rows`]).
    pub fn state_rows(&self) -> u64 {
        self.vars.iter().map(Slot::state_rows).sum()
    }

    /// The earliest expiry of any value ([`NEVER`] when none has a TTL): where the TTL index
    /// files the key.
    pub fn next_expiry(&self) -> i64 {
        self.vars.iter().filter_map(Slot::next_expiry).min().unwrap_or(NEVER)
    }

    /// The length of [`StateCodec::encode`]'s output, computed without encoding (the
    /// operator's `memoryUsedBytes` follows it per call instead of encoding every row per
    /// batch; a unit test holds it equal to the encoding's length).
    pub fn encoded_len(&self) -> u64 {
        const LEN: usize = 8; // a u64 count or length, an i64 expiry or timer
        let stamped = |s: &Stamped| LEN + s.bytes.len() + LEN;
        let vars: usize = self
            .vars
            .iter()
            .map(|slot| match slot {
                Slot::Value(None) => 2,
                Slot::Value(Some(s)) => 2 + stamped(s),
                Slot::List(items) => 1 + LEN + items.iter().map(stamped).sum::<usize>(),
                Slot::Map(items) => 1 + LEN + items.iter().map(|(k, s)| LEN + k.len() + stamped(s)).sum::<usize>(),
            })
            .sum();
        (LEN + vars + LEN + LEN * self.timers.len()) as u64
    }
}

/// A slot's kind.
pub(super) fn slot_kind(slot: &Slot) -> VarKind {
    match slot {
        Slot::Value(_) => VarKind::Value,
        Slot::List(_) => VarKind::List,
        Slot::Map(_) => VarKind::Map,
    }
}

/// The kind of a variable's layout text (`value[..]`, `list[..]`, `map[..]`).
pub(super) fn kind_of_layout(layout: &str) -> Option<VarKind> {
    [("value[", VarKind::Value), ("list[", VarKind::List), ("map[", VarKind::Map)]
        .into_iter()
        .find(|(p, _)| layout.starts_with(p) && layout.ends_with(']'))
        .map(|(_, k)| k)
}

/// The `(name, layout)` of each variable of a recorded [`row_layout`], in order; `None` for
/// text that is not one.
pub(super) fn parse_row_layout(text: &str) -> Option<Vec<(String, String)>> {
    let body = text.strip_prefix("transform_with_state[")?.strip_suffix(']')?;
    let mut vars = Vec::new();
    let (mut depth, mut start) = (0usize, 0usize);
    for (i, c) in body.char_indices() {
        match c {
            '[' | '(' => depth += 1,
            ']' | ')' => depth = depth.checked_sub(1)?,
            ',' if depth == 0 => {
                vars.push(&body[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    if !body.is_empty() {
        vars.push(&body[start..]);
    }
    vars.into_iter()
        .map(|v| {
            let (name, layout) = v.split_once(':')?;
            kind_of_layout(layout)?;
            Some((name.to_string(), layout.to_string()))
        })
        .collect()
}

/// The layout of the stored value for these declarations.
pub fn row_layout(decls: &[VarDecl]) -> String {
    let vars: Vec<String> = decls.iter().map(|d| format!("{}:{}", d.name, d.layout)).collect();
    format!("transform_with_state[{}]", vars.join(","))
}

fn put_bytes(b: &[u8], out: &mut Vec<u8>) {
    (b.len() as u64).encode(out);
    out.extend_from_slice(b);
}

fn get_slice<'a>(input: &mut &'a [u8]) -> Result<&'a [u8]> {
    let n = u64::decode(input)? as usize;
    if input.len() < n {
        return Err(Error::Checkpoint(format!("state value truncated: need {n} bytes, have {}", input.len())));
    }
    let (head, rest) = input.split_at(n);
    *input = rest;
    Ok(head)
}

fn get_bytes(input: &mut &[u8]) -> Result<Vec<u8>> {
    Ok(get_slice(input)?.to_vec())
}

fn put_stamped(s: &Stamped, out: &mut Vec<u8>) {
    put_bytes(&s.bytes, out);
    s.expires_ms.encode(out);
}

fn get_stamped(input: &mut &[u8]) -> Result<Stamped> {
    Ok(Stamped { bytes: get_slice(input)?.into(), expires_ms: i64::decode(input)? })
}

fn tag(input: &mut &[u8]) -> Result<u8> {
    let Some((&t, rest)) = input.split_first() else {
        return Err(Error::Checkpoint("state value truncated: need a tag byte".into()));
    };
    *input = rest;
    Ok(t)
}

/// A count, never trusted to reserve more than the input could hold.
fn count(input: &mut &[u8]) -> Result<(u64, usize)> {
    let n = u64::decode(input)?;
    Ok((n, (n as usize).min(input.len())))
}

/// The stored value. Its static layout is only the operator's name: the layout the
/// checkpoint records is per query, from the processor's declarations ([`row_layout`]).
impl StateCodec for TwsRow {
    fn layout(out: &mut String) {
        out.push_str("transform_with_state[]");
    }

    fn encode(&self, out: &mut Vec<u8>) {
        (self.vars.len() as u64).encode(out);
        for slot in &self.vars {
            match slot {
                Slot::Value(v) => {
                    out.push(1);
                    match v {
                        None => out.push(0),
                        Some(s) => {
                            out.push(1);
                            put_stamped(s, out);
                        }
                    }
                }
                Slot::List(items) => {
                    out.push(2);
                    (items.len() as u64).encode(out);
                    items.iter().for_each(|s| put_stamped(s, out));
                }
                Slot::Map(items) => {
                    out.push(3);
                    (items.len() as u64).encode(out);
                    for (k, s) in items {
                        put_bytes(k, out);
                        put_stamped(s, out);
                    }
                }
            }
        }
        self.timers.encode(out);
    }

    fn decode(input: &mut &[u8]) -> Result<Self> {
        let (n, cap) = count(input)?;
        let mut vars = Vars::with_capacity(cap);
        for _ in 0..n {
            vars.push(match tag(input)? {
                1 => match tag(input)? {
                    0 => Slot::Value(None),
                    1 => Slot::Value(Some(get_stamped(input)?)),
                    t => return Err(Error::Checkpoint(format!("bad option tag {t} in state"))),
                },
                2 => {
                    let (n, cap) = count(input)?;
                    let mut items = Vec::with_capacity(cap);
                    for _ in 0..n {
                        items.push(get_stamped(input)?);
                    }
                    Slot::List(items)
                }
                3 => {
                    let (n, cap) = count(input)?;
                    let mut items = Vec::with_capacity(cap);
                    for _ in 0..n {
                        items.push((get_bytes(input)?, get_stamped(input)?));
                    }
                    Slot::Map(items)
                }
                t => return Err(Error::Checkpoint(format!("bad state variable tag {t} in state"))),
            });
        }
        Ok(TwsRow { vars, timers: Vec::<i64>::decode(input)? })
    }
}
