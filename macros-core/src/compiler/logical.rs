//! The checked query as a logical plan: resolved operators over named columns.

use proc_macro2::Span;
use syn::{Expr, Ident};

/// A named expression: a column of the operator's output.
#[derive(Clone)]
pub struct Item {
    pub name: Ident,
    pub expr: Expr,
}

/// What kind of grouping key.
#[derive(Clone)]
pub enum KeyKind {
    /// An expression.
    Plain,
    /// `window(ts, size[, slide[, start]])`: durations in microseconds.
    Window { ts: Expr, size: i64, slide: i64, offset: i64 },
    /// `session_window(ts, gap)`.
    Session { ts: Expr, gap: i64 },
}

/// A grouping key.
#[derive(Clone)]
pub struct Key {
    pub item: Item,
    pub kind: KeyKind,
}

/// The aggregate functions.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum AggFunc {
    /// `count()`: rows.
    CountRows,
    /// `count(x)`: non-null values.
    Count,
    Sum,
    Avg,
    Min,
    Max,
}

/// `sum(x) as total`.
#[derive(Clone)]
pub struct AggItem {
    pub name: Ident,
    pub func: AggFunc,
    pub arg: Option<Expr>,
    /// Span of the function name.
    pub span: Span,
}

/// A logical operator.
#[derive(Clone)]
pub enum LOp {
    /// Keep rows where `pred` is true.
    Filter { pred: Expr },
    /// The output is exactly these columns (`select`, `map`).
    Project { items: Vec<Item> },
    /// Add or replace these columns, keep the rest (`with_column`).
    WithColumns { items: Vec<Item> },
    /// One output row per item of `expr`, with the item as column `name` (`flat_map`).
    FlatMap { name: Ident, expr: Expr },
    /// Group by `keys`, compute `aggs` (`group_by(...).agg(...)`, or `agg(...)` alone).
    /// `event_time_key` is the index of the key that carries event time (a window over the
    /// watermarked column, or that column itself): state is evicted and input dropped by it.
    Aggregate { keys: Vec<Key>, aggs: Vec<AggItem>, event_time_key: Option<usize> },
    /// `with_watermark(column, delay)`: observe event times here.
    Watermark { column: Ident, delay: i64 },
}

/// The columns after an operator: the input's own (unknown to the macro, checked by rustc
/// against the record's typed columns) plus those defined so far, or exactly a known list.
#[derive(Clone, Debug)]
pub enum Schema {
    Open { defined: Vec<Ident> },
    Closed { columns: Vec<Ident> },
}

impl Schema {
    pub fn knows(&self, name: &str) -> bool {
        let list = match self {
            Schema::Open { defined } => defined,
            Schema::Closed { columns } => columns,
        };
        list.iter().any(|c| c == name)
    }

    /// Adds (or replaces) a column.
    pub fn define(&mut self, name: &Ident) {
        let list = match self {
            Schema::Open { defined } => defined,
            Schema::Closed { columns } => columns,
        };
        match list.iter_mut().find(|c| *c == name) {
            Some(existing) => *existing = name.clone(),
            None => list.push(name.clone()),
        }
    }
}

/// The output of the check phase.
pub struct Logical {
    /// Index of the input the pipeline reads.
    pub input_index: usize,
    pub ops: Vec<LOp>,
    /// Columns of the input record the pipeline reads (first use, for spans).
    pub input_columns: Vec<Ident>,
    /// The schema at the end.
    pub output: Schema,
}
