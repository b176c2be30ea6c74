//! Binary encoding of state (grouping keys and accumulators) for checkpoints.
//!
//! Little-endian, length-prefixed, no self-description in the values: instead every type
//! states its [`StateCodec::layout`], a canonical text of what its encoding holds
//! (`(utf8,window_start[600000000])` for a key, `(count,sum[option<i64>])` for accumulators).
//! The checkpoint's metadata records the layouts and their [`fingerprint`] per stateful
//! operator, and a query refuses to start on a checkpoint whose layouts differ (showing both),
//! so a decoder always knows what it reads. Layouts are persisted: they name what a value is,
//! never how Rust spells its type (`std::any::type_name` may change with the compiler).

use crate::agg::{
    ApproxCountDistinct, Avg, CollectList, CollectSet, Count, Extreme, First, Last, Moments, NullableSum, NumericInput,
    OrdInput, Sum, ValueInput,
};
use crate::error::{Error, Result};
use crate::record::{Date, Timestamp};
use crate::window::Window;

/// A value that can be written to and read from a checkpoint.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be stored in a checkpoint",
    label = "state keys and accumulators must implement `flowgate::codec::StateCodec`"
)]
pub trait StateCodec: Sized {
    /// Appends the encoding to `out`.
    fn encode(&self, out: &mut Vec<u8>);
    /// Reads a value from the front of `input`, advancing it.
    fn decode(input: &mut &[u8]) -> Result<Self>;
    /// Appends this type's layout: a canonical description of its encoding, stable across
    /// builds (lower-case names, no spaces; composites as `name[arg,...]` or `(a,b)`).
    fn layout(out: &mut String);
}

/// `T`'s layout as a string.
pub fn layout_of<T: StateCodec>() -> String {
    let mut s = String::new();
    T::layout(&mut s);
    s
}

/// The fingerprint of a state schema: CRC-32 (IEEE) of `key=<key layout>;value=<value layout>`,
/// as eight hex digits. Recorded beside the layouts so a reader can tell two schemas apart at
/// a glance; the layouts themselves are what a restart compares.
pub fn fingerprint(key_layout: &str, value_layout: &str) -> String {
    format!("{:08x}", crc32fast::hash(format!("key={key_layout};value={value_layout}").as_bytes()))
}

fn take<'a>(input: &mut &'a [u8], n: usize) -> Result<&'a [u8]> {
    if input.len() < n {
        return Err(Error::Checkpoint(format!("state value truncated: need {n} bytes, have {}", input.len())));
    }
    let (head, rest) = input.split_at(n);
    *input = rest;
    Ok(head)
}

fn array<const N: usize>(input: &mut &[u8]) -> Result<[u8; N]> {
    let mut a = [0u8; N];
    a.copy_from_slice(take(input, N)?);
    Ok(a)
}

macro_rules! le_codec {
    ($($t:ty),*) => {$(
        impl StateCodec for $t {
            fn layout(out: &mut String) {
                out.push_str(stringify!($t));
            }
            fn encode(&self, out: &mut Vec<u8>) {
                out.extend_from_slice(&self.to_le_bytes());
            }
            fn decode(input: &mut &[u8]) -> Result<Self> {
                Ok(<$t>::from_le_bytes(array(input)?))
            }
        }
    )*};
}
le_codec!(i32, i64, u64, f64);

impl StateCodec for bool {
    fn layout(out: &mut String) {
        out.push_str("bool");
    }
    fn encode(&self, out: &mut Vec<u8>) {
        out.push(*self as u8);
    }
    fn decode(input: &mut &[u8]) -> Result<Self> {
        Ok(take(input, 1)?[0] != 0)
    }
}

impl StateCodec for String {
    fn layout(out: &mut String) {
        out.push_str("utf8");
    }
    fn encode(&self, out: &mut Vec<u8>) {
        (self.len() as u64).encode(out);
        out.extend_from_slice(self.as_bytes());
    }
    fn decode(input: &mut &[u8]) -> Result<Self> {
        let n = u64::decode(input)? as usize;
        let bytes = take(input, n)?;
        String::from_utf8(bytes.to_vec()).map_err(|e| Error::Checkpoint(format!("state string is not UTF-8: {e}")))
    }
}

impl StateCodec for Timestamp {
    fn layout(out: &mut String) {
        out.push_str("timestamp_us");
    }
    fn encode(&self, out: &mut Vec<u8>) {
        self.0.encode(out)
    }
    fn decode(input: &mut &[u8]) -> Result<Self> {
        Ok(Timestamp(i64::decode(input)?))
    }
}

impl StateCodec for Date {
    fn layout(out: &mut String) {
        out.push_str("date");
    }
    fn encode(&self, out: &mut Vec<u8>) {
        self.0.encode(out)
    }
    fn decode(input: &mut &[u8]) -> Result<Self> {
        Ok(Date(i32::decode(input)?))
    }
}

impl StateCodec for Window {
    fn layout(out: &mut String) {
        out.push_str("window");
    }
    fn encode(&self, out: &mut Vec<u8>) {
        self.start.encode(out);
        self.end.encode(out);
    }
    fn decode(input: &mut &[u8]) -> Result<Self> {
        Ok(Window::new(Timestamp::decode(input)?, Timestamp::decode(input)?))
    }
}

impl<const SIZE: i64> StateCodec for crate::window::WindowKey<SIZE> {
    fn layout(out: &mut String) {
        out.push_str(&format!("window_start[{SIZE}]"));
    }
    fn encode(&self, out: &mut Vec<u8>) {
        self.start.encode(out)
    }
    fn decode(input: &mut &[u8]) -> Result<Self> {
        Ok(crate::window::WindowKey { start: i64::decode(input)? })
    }
}

impl<T: StateCodec> StateCodec for Option<T> {
    fn layout(out: &mut String) {
        out.push_str("option<");
        T::layout(out);
        out.push('>');
    }
    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            None => out.push(0),
            Some(v) => {
                out.push(1);
                v.encode(out);
            }
        }
    }
    fn decode(input: &mut &[u8]) -> Result<Self> {
        match take(input, 1)?[0] {
            0 => Ok(None),
            1 => Ok(Some(T::decode(input)?)),
            other => Err(Error::Checkpoint(format!("bad option tag {other} in state"))),
        }
    }
}

/// A list: its length (u64), then each item. The layout is `list[<item>]`.
impl<T: StateCodec> StateCodec for Vec<T> {
    fn layout(out: &mut String) {
        out.push_str("list[");
        T::layout(out);
        out.push(']');
    }
    fn encode(&self, out: &mut Vec<u8>) {
        (self.len() as u64).encode(out);
        for v in self {
            v.encode(out);
        }
    }
    fn decode(input: &mut &[u8]) -> Result<Self> {
        let n = u64::decode(input)?;
        // Never trust a length to reserve memory: a corrupt one would abort on allocation.
        let mut out = Vec::with_capacity((n as usize).min(input.len()));
        for _ in 0..n {
            out.push(T::decode(input)?);
        }
        Ok(out)
    }
}

/// One field of a derived state struct: its name and its type's [`StateCodec::layout`].
pub type StructField<'a> = (&'a str, fn(&mut String));

/// Writes a struct's layout, `struct[name:<layout>,...]`, as `#[derive(StateCodec)]` does:
/// fields by name and in order (renaming, reordering, adding or removing a field, or changing
/// its type, changes the layout, and a checkpoint with the old one is refused).
pub fn struct_layout(out: &mut String, fields: &[StructField<'_>]) {
    out.push_str("struct[");
    for (i, (name, layout)) in fields.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(name);
        out.push(':');
        layout(out);
    }
    out.push(']');
}

/// One variant of a `#[derive(StateCodec)]` enum: its name and its fields.
pub type EnumVariant<'a> = (&'a str, &'a [StructField<'a>]);

/// Writes an enum's layout, `enum[Name:struct[..],...]`, as `#[derive(StateCodec)]` does:
/// variants by name and in order (their index is what is stored), each with its fields.
pub fn enum_layout(out: &mut String, variants: &[EnumVariant<'_>]) {
    out.push_str("enum[");
    for (i, (name, fields)) in variants.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(name);
        out.push(':');
        struct_layout(out, fields);
    }
    out.push(']');
}

/// Reads a derived enum's variant index (one byte).
pub fn enum_tag(input: &mut &[u8], type_name: &str) -> Result<u8> {
    take(input, 1).map(|b| b[0]).map_err(|e| Error::Checkpoint(format!("state value of enum `{type_name}`: {e}")))
}

/// A variant index the enum does not have.
pub fn bad_enum_tag(type_name: &str, tag: u8) -> Error {
    Error::Checkpoint(format!("state value of enum `{type_name}`: no variant {tag}"))
}

impl StateCodec for () {
    fn layout(out: &mut String) {
        out.push_str("()");
    }
    fn encode(&self, _out: &mut Vec<u8>) {}
    fn decode(_input: &mut &[u8]) -> Result<Self> {
        Ok(())
    }
}

macro_rules! tuple_codec {
    ($($name:ident $idx:tt),+) => {
        impl<$($name: StateCodec),+> StateCodec for ($($name,)+) {
            fn layout(out: &mut String) {
                out.push('(');
                let mut _first = true;
                $(
                    if !_first { out.push(','); }
                    _first = false;
                    $name::layout(out);
                )+
                out.push(')');
            }
            fn encode(&self, out: &mut Vec<u8>) {
                $(self.$idx.encode(out);)+
            }
            fn decode(input: &mut &[u8]) -> Result<Self> {
                Ok(($($name::decode(input)?,)+))
            }
        }
    };
}
tuple_codec!(A 0);
tuple_codec!(A 0, B 1);
tuple_codec!(A 0, B 1, C 2);
tuple_codec!(A 0, B 1, C 2, D 3);
tuple_codec!(A 0, B 1, C 2, D 3, E 4);
tuple_codec!(A 0, B 1, C 2, D 3, E 4, F 5);
tuple_codec!(A 0, B 1, C 2, D 3, E 4, F 5, G 6);
tuple_codec!(A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7);
tuple_codec!(A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7, I 8);
tuple_codec!(A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7, I 8, J 9);
tuple_codec!(A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7, I 8, J 9, K 10);
tuple_codec!(A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7, I 8, J 9, K 10, L 11);

impl StateCodec for Count {
    fn layout(out: &mut String) {
        out.push_str("count");
    }
    fn encode(&self, out: &mut Vec<u8>) {
        self.0.encode(out)
    }
    fn decode(input: &mut &[u8]) -> Result<Self> {
        Ok(Count(i64::decode(input)?))
    }
}

impl<S: StateCodec> StateCodec for NullableSum<S> {
    fn layout(out: &mut String) {
        out.push_str("nullable_sum[");
        S::layout(out);
        out.push(']');
    }
    fn encode(&self, out: &mut Vec<u8>) {
        self.sum.encode(out);
        self.non_null.encode(out);
    }
    fn decode(input: &mut &[u8]) -> Result<Self> {
        Ok(NullableSum { sum: S::decode(input)?, non_null: i64::decode(input)? })
    }
}

impl<I: NumericInput> StateCodec for Sum<I>
where
    I::Sum: StateCodec,
{
    fn layout(out: &mut String) {
        out.push_str("sum[");
        I::Sum::layout(out);
        out.push(']');
    }
    fn encode(&self, out: &mut Vec<u8>) {
        self.raw().encode(out)
    }
    fn decode(input: &mut &[u8]) -> Result<Self> {
        Ok(Sum::from_raw(I::Sum::decode(input)?))
    }
}

impl<I: NumericInput> StateCodec for Avg<I>
where
    I::Sum: StateCodec,
{
    fn layout(out: &mut String) {
        out.push_str("avg[");
        I::Sum::layout(out);
        out.push(']');
    }
    fn encode(&self, out: &mut Vec<u8>) {
        let (sum, n) = self.raw();
        sum.encode(out);
        n.encode(out);
    }
    fn decode(input: &mut &[u8]) -> Result<Self> {
        Ok(Avg::from_raw(I::Sum::decode(input)?, i64::decode(input)?))
    }
}

impl<I: OrdInput, const MAX: bool> StateCodec for Extreme<I, MAX>
where
    I::Value: StateCodec,
{
    fn layout(out: &mut String) {
        out.push_str(if MAX { "max[" } else { "min[" });
        Option::<I::Value>::layout(out);
        out.push(']');
    }
    fn encode(&self, out: &mut Vec<u8>) {
        self.value().cloned().encode(out)
    }
    fn decode(input: &mut &[u8]) -> Result<Self> {
        Ok(Extreme::from_value(Option::<I::Value>::decode(input)?))
    }
}

fn encode_items<T: StateCodec>(items: &[T], out: &mut Vec<u8>) {
    (items.len() as u64).encode(out);
    for v in items {
        v.encode(out);
    }
}

fn decode_items<T: StateCodec>(input: &mut &[u8]) -> Result<Vec<T>> {
    let n = u64::decode(input)?;
    // Each item takes at least a byte only for some layouts, so the count is checked against
    // what is left only as a bound on the first allocation.
    let mut items = Vec::with_capacity((n as usize).min(input.len()));
    for _ in 0..n {
        items.push(T::decode(input)?);
    }
    Ok(items)
}

macro_rules! first_last_codec {
    ($ty:ident, $name:literal, $ignoring:literal) => {
        /// `set` (bool), then the value (`option<T>`).
        impl<I: ValueInput, const IGNORE_NULLS: bool> StateCodec for $ty<I, IGNORE_NULLS>
        where
            I::Value: StateCodec,
        {
            fn layout(out: &mut String) {
                out.push_str(if IGNORE_NULLS { $ignoring } else { $name });
                out.push('[');
                I::Value::layout(out);
                out.push(']');
            }
            fn encode(&self, out: &mut Vec<u8>) {
                let (set, value) = self.raw();
                set.encode(out);
                value.cloned().encode(out);
            }
            fn decode(input: &mut &[u8]) -> Result<Self> {
                let set = bool::decode(input)?;
                Ok($ty::from_raw(set, Option::<I::Value>::decode(input)?))
            }
        }
    };
}
first_last_codec!(First, "first", "first_ignore_nulls");
first_last_codec!(Last, "last", "last_ignore_nulls");

macro_rules! collect_codec {
    ($ty:ident, $name:literal) => {
        /// The number of values (u64), then each value.
        impl<I: ValueInput> StateCodec for $ty<I>
        where
            I::Value: StateCodec,
        {
            fn layout(out: &mut String) {
                out.push_str(concat!($name, "["));
                I::Value::layout(out);
                out.push(']');
            }
            fn encode(&self, out: &mut Vec<u8>) {
                encode_items(self.items(), out)
            }
            fn decode(input: &mut &[u8]) -> Result<Self> {
                Ok($ty::from_items(decode_items(input)?))
            }
        }
    };
}
collect_codec!(CollectList, "collect_list");
collect_codec!(CollectSet, "collect_set");

/// The 512 registers of HyperLogLog++ at precision 9, a byte each.
impl StateCodec for ApproxCountDistinct {
    fn layout(out: &mut String) {
        out.push_str(&format!("hll_pp[{}]", crate::agg::hll::P));
    }
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.registers());
    }
    fn decode(input: &mut &[u8]) -> Result<Self> {
        let registers: [u8; crate::agg::hll::M] = array(input)?;
        if let Some(r) = registers.iter().find(|r| **r > 64 - crate::agg::hll::P as u8 + 1) {
            return Err(Error::Checkpoint(format!("HyperLogLog++ register {r} out of range in state")));
        }
        Ok(ApproxCountDistinct::from_registers(registers))
    }
}

/// `n`, `avg`, `m2` as doubles (the same state for every statistic: which one a query asks
/// for is decided when it finishes).
impl<const STAT: u8> StateCodec for Moments<STAT> {
    fn layout(out: &mut String) {
        out.push_str("moments");
    }
    fn encode(&self, out: &mut Vec<u8>) {
        let (n, avg, m2) = self.raw();
        n.encode(out);
        avg.encode(out);
        m2.encode(out);
    }
    fn decode(input: &mut &[u8]) -> Result<Self> {
        Ok(Moments::from_raw(f64::decode(input)?, f64::decode(input)?, f64::decode(input)?))
    }
}

/// A parsed [`StateCodec::layout`]: enough to decode a stored value without its Rust type, as
/// `flowgate state read` does (Spark 4's state data source reads state as a table the same
/// way, from the schema the checkpoint records).
#[derive(Clone, Debug, PartialEq)]
// Variant names differ from the crate's own types (`Option`, `Sum`, `Window`, ...): rustc
// prints a type by its short name only while no other public item shares it.
pub enum Layout {
    Bool,
    I32,
    I64,
    U64,
    F64,
    Utf8,
    TimestampUs,
    Days,
    WindowStruct,
    /// A window by its start, of this size (µs).
    WindowStart(i64),
    Unit,
    Nullable(Box<Layout>),
    Tuple(Vec<Layout>),
    CountAcc,
    SumAcc(Box<Layout>),
    NullableSumAcc(Box<Layout>),
    AvgAcc(Box<Layout>),
    MinAcc(Box<Layout>),
    MaxAcc(Box<Layout>),
    SessionOf(Box<Layout>),
    ListOf(Box<Layout>),
    /// The side of a stream-stream join's stored key: a byte, 0 left, 1 right.
    JoinSide,
    /// A stream-stream join's stored value: the side's byte, then the left or the right
    /// side's layout.
    JoinRows(Box<Layout>, Box<Layout>),
    FirstAcc(Box<Layout>),
    FirstIgnoreNullsAcc(Box<Layout>),
    LastAcc(Box<Layout>),
    LastIgnoreNullsAcc(Box<Layout>),
    CollectListAcc(Box<Layout>),
    CollectSetAcc(Box<Layout>),
    /// HyperLogLog++ registers at this precision.
    HllAcc(u32),
    MomentsAcc,
    /// A `#[derive(StateCodec)]` struct: its fields by name, in order.
    Fields(Vec<(String, Layout)>),
    /// A group-state value: the user's state (absent once removed) and its timeout (ms).
    GroupStateOf(Box<Layout>),
    /// A `#[derive(StateCodec)]` enum: its variants by name, in order, each a `Fields`.
    Variants(Vec<(String, Layout)>),
    /// A `transform_with_state` row: its state variables by name, in declaration order,
    /// then its timers (`ops/transform_with_state/row.rs` has the encoding).
    StateVars(Vec<(String, StateVarLayout)>),
}

/// One `transform_with_state` state variable's layout: `value[T]`, `list[T]`, `map[K,V]`.
#[derive(Clone, Debug, PartialEq)]
pub enum StateVarLayout {
    Single(Layout),
    Elements(Layout),
    Entries(Layout, Layout),
}

impl StateVarLayout {
    fn write(&self, out: &mut String) {
        let (kind, items): (&str, Vec<&Layout>) = match self {
            StateVarLayout::Single(l) => ("value", vec![l]),
            StateVarLayout::Elements(l) => ("list", vec![l]),
            StateVarLayout::Entries(k, v) => ("map", vec![k, v]),
        };
        out.push_str(kind);
        out.push('[');
        for (i, l) in items.into_iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            write_layout(l, out);
        }
        out.push(']');
    }
}

/// Reads a length-prefixed encoding (a state variable's value inside a row).
fn take_bytes<'a>(input: &mut &'a [u8]) -> Result<&'a [u8]> {
    let n = u64::decode(input)? as usize;
    take(input, n)
}

/// A stored value and its expiry, as JSON.
fn decode_stamped(l: &Layout, input: &mut &[u8]) -> Result<serde_json::Value> {
    let value = l.decode_all(take_bytes(input)?)?;
    let expires = i64::decode(input)?;
    let expires = if expires == i64::MAX {
        serde_json::Value::Null
    } else {
        serde_json::Value::from(Timestamp(expires.saturating_mul(1000)).to_string())
    };
    Ok(serde_json::json!({"value": value, "expires": expires}))
}

impl Layout {
    /// Parses a layout string as [`StateCodec::layout`] writes it.
    pub fn parse(text: &str) -> Result<Layout> {
        let mut p = LayoutParser { s: text.as_bytes(), at: 0 };
        let l = p.layout()?;
        if p.at != p.s.len() {
            return Err(p.error("trailing text"));
        }
        Ok(l)
    }

    /// Decodes one value of this layout from the front of `input`, as JSON: numbers, strings,
    /// timestamps as RFC 3339 text, windows as `{start, end}`, accumulators by their parts.
    pub fn decode(&self, input: &mut &[u8]) -> Result<serde_json::Value> {
        use serde_json::{json, Value};
        let ts = |us: i64| Value::from(Timestamp(us).to_string());
        Ok(match self {
            Layout::Bool => Value::from(bool::decode(input)?),
            Layout::I32 => Value::from(i32::decode(input)?),
            Layout::I64 => Value::from(i64::decode(input)?),
            Layout::U64 => Value::from(u64::decode(input)?),
            Layout::F64 => serde_json::Number::from_f64(f64::decode(input)?).map_or(Value::Null, Value::Number),
            Layout::Utf8 => Value::from(String::decode(input)?),
            Layout::TimestampUs => ts(i64::decode(input)?),
            Layout::Days => Value::from(Date(i32::decode(input)?).to_string()),
            Layout::WindowStruct => {
                let (a, b) = (i64::decode(input)?, i64::decode(input)?);
                json!({"start": ts(a), "end": ts(b)})
            }
            Layout::WindowStart(size) => {
                let a = i64::decode(input)?;
                json!({"start": ts(a), "end": ts(a + size)})
            }
            Layout::Unit => Value::Null,
            Layout::Nullable(inner) => match take(input, 1)?[0] {
                0 => Value::Null,
                1 => inner.decode(input)?,
                t => return Err(Error::Checkpoint(format!("bad option tag {t} in state"))),
            },
            Layout::Tuple(items) => Value::Array(items.iter().map(|l| l.decode(input)).collect::<Result<_>>()?),
            Layout::CountAcc => json!({"count": i64::decode(input)?}),
            Layout::SumAcc(s) => json!({"sum": s.decode(input)?}),
            Layout::NullableSumAcc(s) => {
                let sum = s.decode(input)?;
                json!({"sum": sum, "non_null": i64::decode(input)?})
            }
            Layout::AvgAcc(s) => {
                let sum = s.decode(input)?;
                json!({"sum": sum, "count": i64::decode(input)?})
            }
            Layout::MinAcc(v) => json!({"min": v.decode(input)?}),
            Layout::MaxAcc(v) => json!({"max": v.decode(input)?}),
            Layout::SessionOf(acc) => {
                let (a, b) = (i64::decode(input)?, i64::decode(input)?);
                json!({"start": ts(a), "end": ts(b), "acc": acc.decode(input)?})
            }
            Layout::ListOf(item) | Layout::CollectListAcc(item) | Layout::CollectSetAcc(item) => {
                let n = u64::decode(input)?;
                Value::Array((0..n).map(|_| item.decode(input)).collect::<Result<_>>()?)
            }
            Layout::JoinSide => match take(input, 1)?[0] {
                0 => Value::from("left"),
                1 => Value::from("right"),
                t => return Err(Error::Checkpoint(format!("bad join side {t} in state"))),
            },
            Layout::JoinRows(left, right) => match take(input, 1)?[0] {
                0 => json!({"side": "left", "rows": left.decode(input)?}),
                1 => json!({"side": "right", "rows": right.decode(input)?}),
                t => return Err(Error::Checkpoint(format!("bad join side {t} in state"))),
            },
            Layout::FirstAcc(v)
            | Layout::FirstIgnoreNullsAcc(v)
            | Layout::LastAcc(v)
            | Layout::LastIgnoreNullsAcc(v) => {
                let set = bool::decode(input)?;
                let value = Layout::Nullable(v.clone()).decode(input)?;
                json!({"set": set, "value": value})
            }
            Layout::HllAcc(p) => {
                let registers = take(input, 1usize << p)?;
                let set = registers.iter().filter(|r| **r != 0).count();
                match <[u8; crate::agg::hll::M]>::try_from(registers) {
                    Ok(r) => {
                        json!({"estimate": ApproxCountDistinct::from_registers(r).finish(), "registers_set": set})
                    }
                    Err(_) => json!({"registers_set": set}),
                }
            }
            Layout::MomentsAcc => {
                let (n, avg, m2) = (f64::decode(input)?, f64::decode(input)?, f64::decode(input)?);
                json!({"n": n, "avg": avg, "m2": m2})
            }
            Layout::Fields(fields) => {
                let mut m = serde_json::Map::new();
                for (name, l) in fields {
                    m.insert(name.clone(), l.decode(input)?);
                }
                Value::Object(m)
            }
            Layout::Variants(variants) => {
                let tag = take(input, 1)?[0] as usize;
                let Some((name, fields)) = variants.get(tag) else {
                    return Err(Error::Checkpoint(format!("bad enum variant {tag} in state")));
                };
                json!({"variant": name, "fields": fields.decode(input)?})
            }
            Layout::StateVars(vars) => {
                let n = u64::decode(input)?;
                if n != vars.len() as u64 {
                    return Err(Error::Checkpoint(format!(
                        "a transform_with_state row holds {n} state variables, its layout {}",
                        vars.len()
                    )));
                }
                let mut m = serde_json::Map::new();
                for (name, var) in vars {
                    let tag = take(input, 1)?[0];
                    let v = match (var, tag) {
                        (StateVarLayout::Single(l), 1) => match take(input, 1)?[0] {
                            0 => Value::Null,
                            _ => decode_stamped(l, input)?,
                        },
                        (StateVarLayout::Elements(l), 2) => {
                            let n = u64::decode(input)?;
                            Value::Array((0..n).map(|_| decode_stamped(l, input)).collect::<Result<_>>()?)
                        }
                        (StateVarLayout::Entries(k, l), 3) => {
                            let n = u64::decode(input)?;
                            let mut entries = Vec::new();
                            for _ in 0..n {
                                let key = k.decode_all(take_bytes(input)?)?;
                                let mut e = decode_stamped(l, input)?;
                                e["key"] = key;
                                entries.push(e);
                            }
                            Value::Array(entries)
                        }
                        (_, t) => return Err(Error::Checkpoint(format!("bad state variable tag {t} for `{name}`"))),
                    };
                    m.insert(name.clone(), v);
                }
                let n = u64::decode(input)?;
                let timers: Vec<Value> =
                    (0..n).map(|_| i64::decode(input).map(|t| ts(t.saturating_mul(1000)))).collect::<Result<_>>()?;
                json!({"state": Value::Object(m), "timers": timers})
            }
            Layout::GroupStateOf(inner) => {
                let state = Layout::Nullable(inner.clone()).decode(input)?;
                let t = i64::decode(input)?;
                json!({"state": state, "timeout": if t < 0 { Value::Null } else { ts(t * 1000) }})
            }
        })
    }

    /// Decodes a value that must use all of `bytes`.
    pub fn decode_all(&self, mut bytes: &[u8]) -> Result<serde_json::Value> {
        let v = self.decode(&mut bytes)?;
        if !bytes.is_empty() {
            return Err(Error::Checkpoint(format!("{} trailing bytes after a state value", bytes.len())));
        }
        Ok(v)
    }
}

struct LayoutParser<'a> {
    s: &'a [u8],
    at: usize,
}

impl LayoutParser<'_> {
    fn error(&self, what: &str) -> Error {
        Error::Checkpoint(format!("state layout `{}`: {what} at byte {}", String::from_utf8_lossy(self.s), self.at))
    }

    fn eat(&mut self, c: u8) -> Result<()> {
        if self.s.get(self.at) == Some(&c) {
            self.at += 1;
            Ok(())
        } else {
            Err(self.error(&format!("expected `{}`", c as char)))
        }
    }

    fn word(&mut self) -> &str {
        let start = self.at;
        while self.s.get(self.at).is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'_') {
            self.at += 1;
        }
        std::str::from_utf8(&self.s[start..self.at]).unwrap_or("")
    }

    /// `name[inner]` or `name<inner>`.
    fn wrapped(&mut self, open: u8, close: u8) -> Result<Box<Layout>> {
        self.eat(open)?;
        let l = self.layout()?;
        self.eat(close)?;
        Ok(Box::new(l))
    }

    fn layout(&mut self) -> Result<Layout> {
        if self.s.get(self.at) == Some(&b'(') {
            self.at += 1;
            if self.s.get(self.at) == Some(&b')') {
                self.at += 1;
                return Ok(Layout::Unit);
            }
            let mut items = vec![self.layout()?];
            while self.s.get(self.at) == Some(&b',') {
                self.at += 1;
                items.push(self.layout()?);
            }
            self.eat(b')')?;
            return Ok(Layout::Tuple(items));
        }
        let word = self.word().to_string();
        Ok(match word.as_str() {
            "bool" => Layout::Bool,
            "i32" => Layout::I32,
            "i64" => Layout::I64,
            "u64" => Layout::U64,
            "f64" => Layout::F64,
            "utf8" => Layout::Utf8,
            "timestamp_us" => Layout::TimestampUs,
            "date" => Layout::Days,
            "window" => Layout::WindowStruct,
            "count" => Layout::CountAcc,
            "moments" => Layout::MomentsAcc,
            "hll_pp" => {
                self.eat(b'[')?;
                let start = self.at;
                while self.s.get(self.at).is_some_and(|c| c.is_ascii_digit()) {
                    self.at += 1;
                }
                let p = std::str::from_utf8(&self.s[start..self.at])
                    .ok()
                    .and_then(|t| t.parse().ok())
                    .filter(|p| (4..=18).contains(p))
                    .ok_or_else(|| self.error("expected a precision from 4 to 18"))?;
                self.eat(b']')?;
                Layout::HllAcc(p)
            }
            "window_start" => {
                self.eat(b'[')?;
                let start = self.at;
                while self.s.get(self.at).is_some_and(|c| c.is_ascii_digit() || *c == b'-') {
                    self.at += 1;
                }
                let size = std::str::from_utf8(&self.s[start..self.at])
                    .ok()
                    .and_then(|t| t.parse().ok())
                    .ok_or_else(|| self.error("expected a window size"))?;
                self.eat(b']')?;
                Layout::WindowStart(size)
            }
            "option" => Layout::Nullable(self.wrapped(b'<', b'>')?),
            "sum" => Layout::SumAcc(self.wrapped(b'[', b']')?),
            "nullable_sum" => Layout::NullableSumAcc(self.wrapped(b'[', b']')?),
            "avg" => Layout::AvgAcc(self.wrapped(b'[', b']')?),
            "min" => Layout::MinAcc(self.wrapped(b'[', b']')?),
            "max" => Layout::MaxAcc(self.wrapped(b'[', b']')?),
            "session" => Layout::SessionOf(self.wrapped(b'[', b']')?),
            "list" => Layout::ListOf(self.wrapped(b'[', b']')?),
            "join_side" => Layout::JoinSide,
            "join_rows" => {
                self.eat(b'[')?;
                let left = self.layout()?;
                self.eat(b',')?;
                let right = self.layout()?;
                self.eat(b']')?;
                Layout::JoinRows(Box::new(left), Box::new(right))
            }
            "first" => Layout::FirstAcc(self.wrapped(b'[', b']')?),
            "first_ignore_nulls" => Layout::FirstIgnoreNullsAcc(self.wrapped(b'[', b']')?),
            "last" => Layout::LastAcc(self.wrapped(b'[', b']')?),
            "last_ignore_nulls" => Layout::LastIgnoreNullsAcc(self.wrapped(b'[', b']')?),
            "collect_list" => Layout::CollectListAcc(self.wrapped(b'[', b']')?),
            "collect_set" => Layout::CollectSetAcc(self.wrapped(b'[', b']')?),
            "group_state" => Layout::GroupStateOf(self.wrapped(b'[', b']')?),
            "enum" => {
                self.eat(b'[')?;
                let mut variants = Vec::new();
                while self.s.get(self.at) != Some(&b']') {
                    if !variants.is_empty() {
                        self.eat(b',')?;
                    }
                    let name = self.word().to_string();
                    if name.is_empty() {
                        return Err(self.error("expected a variant name"));
                    }
                    self.eat(b':')?;
                    variants.push((name, self.layout()?));
                }
                self.eat(b']')?;
                Layout::Variants(variants)
            }
            "transform_with_state" => {
                self.eat(b'[')?;
                let mut vars = Vec::new();
                while self.s.get(self.at) != Some(&b']') {
                    if !vars.is_empty() {
                        self.eat(b',')?;
                    }
                    let name = self.word().to_string();
                    if name.is_empty() {
                        return Err(self.error("expected a state variable name"));
                    }
                    self.eat(b':')?;
                    let kind = self.word().to_string();
                    self.eat(b'[')?;
                    let first = self.layout()?;
                    let var = match kind.as_str() {
                        "value" => StateVarLayout::Single(first),
                        "list" => StateVarLayout::Elements(first),
                        "map" => {
                            self.eat(b',')?;
                            StateVarLayout::Entries(first, self.layout()?)
                        }
                        other => return Err(self.error(&format!("unknown state variable kind `{other}`"))),
                    };
                    self.eat(b']')?;
                    vars.push((name, var));
                }
                self.eat(b']')?;
                Layout::StateVars(vars)
            }
            "struct" => {
                self.eat(b'[')?;
                let mut fields = Vec::new();
                while self.s.get(self.at) != Some(&b']') {
                    if !fields.is_empty() {
                        self.eat(b',')?;
                    }
                    let name = self.word().to_string();
                    if name.is_empty() {
                        return Err(self.error("expected a field name"));
                    }
                    self.eat(b':')?;
                    fields.push((name, self.layout()?));
                }
                self.eat(b']')?;
                Layout::Fields(fields)
            }
            other => return Err(self.error(&format!("unknown layout `{other}`"))),
        })
    }
}

/// How two layouts differ, in words, field by field where both are structs (`field `count`:
/// i64 in the checkpoint, f64 now; field `user` added`), so a refused restart says what
/// changed in the state type. `None` when they are equal.
pub fn layout_difference(old: &str, new: &str) -> Option<String> {
    if old == new {
        return None;
    }
    fn fields(l: Layout) -> Option<Vec<(String, Layout)>> {
        match l {
            Layout::Fields(f) => Some(f),
            Layout::GroupStateOf(inner) => fields(*inner),
            _ => None,
        }
    }
    let text = |l: &Layout| {
        let mut s = String::new();
        write_layout(l, &mut s);
        s
    };
    let (Ok(o), Ok(n)) = (Layout::parse(old), Layout::parse(new)) else {
        return Some(format!("`{old}` in the checkpoint, `{new}` now"));
    };
    if let (Layout::StateVars(o), Layout::StateVars(n)) = (&o, &n) {
        return Some(state_var_difference(o, n));
    }
    if let (Layout::Variants(o), Layout::Variants(n)) = (&o, &n) {
        return Some(variant_difference(o, n));
    }
    let (Some(o), Some(n)) = (fields(o), fields(n)) else {
        return Some(format!("`{old}` in the checkpoint, `{new}` now"));
    };
    Some(named_difference("field", "fields reordered", true, &o, &n, text))
}

/// How a derived enum's variants differ, variant by variant.
fn variant_difference(o: &[(String, Layout)], n: &[(String, Layout)]) -> String {
    let text = |l: &Layout| {
        let mut s = String::new();
        write_layout(l, &mut s);
        s
    };
    named_difference("variant", "variants reordered (a variant is stored by its position)", false, o, n, text)
}

/// How a `transform_with_state` processor's state variables differ, variable by variable.
fn state_var_difference(o: &[(String, StateVarLayout)], n: &[(String, StateVarLayout)]) -> String {
    let text = |v: &StateVarLayout| {
        let mut s = String::new();
        v.write(&mut s);
        s
    };
    named_difference("state variable", "state variables reordered", false, o, n, text)
}

/// How two named lists (a struct's fields, an enum's variants, a processor's state
/// variables) differ, name by name: each `what` removed, changed or added. When nothing
/// differs by name, the two orders (`reordered`; for fields only when the order does differ).
fn named_difference<T: PartialEq>(
    what: &str,
    reordered: &str,
    only_if_reordered: bool,
    o: &[(String, T)],
    n: &[(String, T)],
    text: impl Fn(&T) -> String,
) -> String {
    let mut out = Vec::new();
    for (name, l) in o {
        match n.iter().find(|(m, _)| m == name) {
            None => out.push(format!("{what} `{name}` ({}) removed", text(l))),
            Some((_, w)) if w != l => {
                out.push(format!("{what} `{name}`: {} in the checkpoint, {} now", text(l), text(w)))
            }
            _ => {}
        }
    }
    for (name, l) in n {
        if !o.iter().any(|(m, _)| m == name) {
            out.push(format!("{what} `{name}` ({}) added", text(l)));
        }
    }
    let names = |v: &[(String, T)]| v.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>();
    if out.is_empty() && (!only_if_reordered || names(o) != names(n)) {
        out.push(format!("{reordered}: [{}] in the checkpoint, [{}] now", names(o).join(", "), names(n).join(", ")));
    }
    out.join("; ")
}

/// A parsed layout written back as text (the inverse of [`Layout::parse`]).
fn write_layout(l: &Layout, out: &mut String) {
    let wrap = |out: &mut String, name: &str, inner: &Layout| {
        out.push_str(name);
        out.push('[');
        write_layout(inner, out);
        out.push(']');
    };
    match l {
        Layout::Bool => out.push_str("bool"),
        Layout::I32 => out.push_str("i32"),
        Layout::I64 => out.push_str("i64"),
        Layout::U64 => out.push_str("u64"),
        Layout::F64 => out.push_str("f64"),
        Layout::Utf8 => out.push_str("utf8"),
        Layout::TimestampUs => out.push_str("timestamp_us"),
        Layout::Days => out.push_str("date"),
        Layout::WindowStruct => out.push_str("window"),
        Layout::WindowStart(size) => out.push_str(&format!("window_start[{size}]")),
        Layout::Unit => out.push_str("()"),
        Layout::Nullable(inner) => {
            out.push_str("option<");
            write_layout(inner, out);
            out.push('>');
        }
        Layout::Tuple(items) => {
            out.push('(');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_layout(item, out);
            }
            out.push(')');
        }
        Layout::CountAcc => out.push_str("count"),
        Layout::SumAcc(i) => wrap(out, "sum", i),
        Layout::NullableSumAcc(i) => wrap(out, "nullable_sum", i),
        Layout::AvgAcc(i) => wrap(out, "avg", i),
        Layout::MinAcc(i) => wrap(out, "min", i),
        Layout::MaxAcc(i) => wrap(out, "max", i),
        Layout::SessionOf(i) => wrap(out, "session", i),
        Layout::ListOf(i) => wrap(out, "list", i),
        Layout::GroupStateOf(i) => wrap(out, "group_state", i),
        Layout::JoinSide => out.push_str("join_side"),
        Layout::JoinRows(l, r) => {
            out.push_str("join_rows[");
            write_layout(l, out);
            out.push(',');
            write_layout(r, out);
            out.push(']');
        }
        Layout::FirstAcc(i) => wrap(out, "first", i),
        Layout::FirstIgnoreNullsAcc(i) => wrap(out, "first_ignore_nulls", i),
        Layout::LastAcc(i) => wrap(out, "last", i),
        Layout::LastIgnoreNullsAcc(i) => wrap(out, "last_ignore_nulls", i),
        Layout::CollectListAcc(i) => wrap(out, "collect_list", i),
        Layout::CollectSetAcc(i) => wrap(out, "collect_set", i),
        Layout::HllAcc(p) => out.push_str(&format!("hll_pp[{p}]")),
        Layout::MomentsAcc => out.push_str("moments"),
        Layout::Variants(variants) => {
            out.push_str("enum[");
            for (i, (name, l)) in variants.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(name);
                out.push(':');
                write_layout(l, out);
            }
            out.push(']');
        }
        Layout::StateVars(vars) => {
            out.push_str("transform_with_state[");
            for (i, (name, v)) in vars.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(name);
                out.push(':');
                v.write(out);
            }
            out.push(']');
        }
        Layout::Fields(fields) => {
            out.push_str("struct[");
            for (i, (name, l)) in fields.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(name);
                out.push(':');
                write_layout(l, out);
            }
            out.push(']');
        }
    }
}

/// Encodes one value into a fresh buffer.
pub fn to_bytes<T: StateCodec>(v: &T) -> Vec<u8> {
    let mut out = Vec::new();
    v.encode(&mut out);
    out
}

/// Decodes one value that must use all of `bytes`.
pub fn from_bytes<T: StateCodec>(mut bytes: &[u8]) -> Result<T> {
    let v = T::decode(&mut bytes)?;
    if !bytes.is_empty() {
        return Err(Error::Checkpoint(format!("{} trailing bytes after a state value", bytes.len())));
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let k = (Window::new(Timestamp(1), Timestamp(2)), Some("dog".to_string()), None::<i64>, true, Date(3));
        assert_eq!(from_bytes::<(Window, Option<String>, Option<i64>, bool, Date)>(&to_bytes(&k)).unwrap(), k);
        let mut s = Sum::<Option<i64>>::new();
        s.update(Some(4));
        let mut m = crate::agg::Max::<String>::new();
        m.update("x");
        let acc = (Count(7), s, Avg::<f64>::new(), m);
        let back: (Count, Sum<Option<i64>>, Avg<f64>, crate::agg::Max<String>) = from_bytes(&to_bytes(&acc)).unwrap();
        assert_eq!(back.0, Count(7));
        assert_eq!(back.1.finish(), Some(4));
        assert!(back.2.finish().is_nan());
        assert_eq!(back.3.finish(), "x");
        assert!(from_bytes::<String>(&[9, 0, 0]).is_err(), "truncated input is an error");
    }

    #[test]
    fn layouts_parse_and_decode_what_the_types_encode() {
        type Key = (crate::window::WindowKey<600_000_000>, Option<String>);
        type Acc = (Count, Sum<Option<i64>>, Avg<f64>, crate::agg::Max<String>, crate::agg::Min<Option<i32>>);
        let key: Key = (crate::window::WindowKey { start: 0 }, Some("dog".into()));
        let mut sum = Sum::<Option<i64>>::new();
        sum.update(Some(5));
        let mut max = crate::agg::Max::<String>::new();
        max.update("z");
        let acc: Acc = (Count(3), sum, Avg::<f64>::new(), max, crate::agg::Min::new());
        let k = Layout::parse(&layout_of::<Key>()).unwrap().decode_all(&to_bytes(&key)).unwrap();
        assert_eq!(k, serde_json::json!([{"start": "1970-01-01 00:00:00", "end": "1970-01-01 00:10:00"}, "dog"]));
        let v = Layout::parse(&layout_of::<Acc>()).unwrap().decode_all(&to_bytes(&acc)).unwrap();
        assert_eq!(
            v,
            serde_json::json!([{"count": 3}, {"sum": {"sum": 5, "non_null": 1}}, {"sum": 0.0, "count": 0}, {"max": "z"}, {"min": null}])
        );
        let sessions = Layout::parse("list[session[(count)]]").unwrap();
        assert_eq!(
            sessions,
            Layout::ListOf(Box::new(Layout::SessionOf(Box::new(Layout::Tuple(vec![Layout::CountAcc])))))
        );
        assert!(Layout::parse("(i64,").is_err() && Layout::parse("blob").is_err());
        assert!(Layout::parse("i64").unwrap().decode_all(&[1, 2]).is_err(), "a truncated value is an error");
    }

    /// Golden vectors: layouts and fingerprints are persisted in checkpoint metadata; a change
    /// here makes every existing checkpoint of that shape refuse to restore.
    #[test]
    fn layouts_and_fingerprints_are_pinned() {
        type Key = (crate::window::WindowKey<600_000_000>, Option<String>);
        type Acc = (Count, Sum<Option<i64>>, Avg<f64>, crate::agg::Max<String>, crate::agg::Min<Option<i32>>);
        let (k, v) = (layout_of::<Key>(), layout_of::<Acc>());
        assert_eq!(k, "(window_start[600000000],option<utf8>)");
        assert_eq!(v, "(count,sum[nullable_sum[i64]],avg[f64],max[option<utf8>],min[option<i32>])");
        assert_eq!(fingerprint(&k, &v), "0dbd6b78");
        assert_eq!(
            layout_of::<(bool, i32, i64, f64, Timestamp, Date, Window, ())>(),
            "(bool,i32,i64,f64,timestamp_us,date,window,())"
        );
        assert_eq!(fingerprint("(utf8)", "count"), "9ddf0268");
    }

    /// Golden vectors of the accumulators after the first five: layouts, fingerprints and
    /// bytes are persisted; a change here breaks restoring existing checkpoints.
    #[test]
    fn new_accumulators_are_pinned() {
        use crate::agg::{StddevSamp, VarPop};
        type Acc = (
            First<Option<String>, false>,
            Last<i64, true>,
            CollectList<Option<i32>>,
            CollectSet<String>,
            ApproxCountDistinct,
            StddevSamp,
            VarPop,
        );
        let v = layout_of::<Acc>();
        assert_eq!(
            v,
            "(first[utf8],last_ignore_nulls[i64],collect_list[i32],collect_set[utf8],hll_pp[9],moments,moments)"
        );
        assert_eq!(fingerprint("(utf8)", &v), "9f6c2f17");
        let mut acc: Acc = Default::default();
        acc.0.update(None::<&str>);
        acc.0.update(Some("x"));
        acc.1.update(7i64);
        acc.2.update(Some(1));
        acc.2.update(None::<i32>);
        acc.2.update(Some(2));
        acc.3.update("a");
        acc.3.update("a");
        acc.4.update(Some(5i64));
        acc.5.update(Some(1.0));
        acc.5.update(Some(3.0));
        acc.6.update(4i32);
        let bytes = to_bytes(&acc);
        assert_eq!(bytes[..3], [1, 0, 1], "first: set, null value; last: set");
        assert_eq!(bytes.len(), 2 + 10 + (8 + 8) + (8 + 8 + 1) + 512 + 24 + 24);
        let back: Acc = from_bytes(&bytes).unwrap();
        assert_eq!(back.0.finish(), None);
        assert_eq!(back.1.finish(), 7);
        assert_eq!(back.2.finish(), [1, 2]);
        assert_eq!(back.3.finish(), ["a"]);
        assert_eq!(back.4.finish(), 1);
        assert_eq!(back.5.finish(), Some(2f64.sqrt()));
        assert_eq!(back.6.finish(), Some(0.0));
        let json = Layout::parse(&v).unwrap().decode_all(&bytes).unwrap();
        assert_eq!(json[0], serde_json::json!({"set": true, "value": null}));
        assert_eq!(json[2], serde_json::json!([1, 2]));
        assert_eq!(json[4], serde_json::json!({"estimate": 1, "registers_set": 1}));
        assert_eq!(json[5], serde_json::json!({"n": 2.0, "avg": 2.0, "m2": 2.0}));
        let mut bad = bytes.clone();
        bad[2 + 10 + 16 + 17] = 60;
        assert!(from_bytes::<Acc>(&bad).is_err(), "a register above 56 is refused");
    }
}
