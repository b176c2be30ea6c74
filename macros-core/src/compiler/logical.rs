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
    /// `first(x)`, `first(x, true)` (nulls ignored).
    First {
        ignore_nulls: bool,
    },
    /// `last(x)`, `last(x, true)`.
    Last {
        ignore_nulls: bool,
    },
    CollectList,
    CollectSet,
    /// Spark's HyperLogLog++ at its default relative error.
    ApproxCountDistinct,
    /// `stddev`, `stddev_samp`, `std`.
    StddevSamp,
    StddevPop,
    /// `variance`, `var_samp`.
    VarSamp,
    VarPop,
}

impl AggFunc {
    /// The function as the plan prints it.
    pub fn name(self) -> &'static str {
        match self {
            AggFunc::CountRows | AggFunc::Count => "count",
            AggFunc::Sum => "sum",
            AggFunc::Avg => "avg",
            AggFunc::Min => "min",
            AggFunc::Max => "max",
            AggFunc::First { ignore_nulls: false } => "first",
            AggFunc::First { ignore_nulls: true } => "first_ignore_nulls",
            AggFunc::Last { ignore_nulls: false } => "last",
            AggFunc::Last { ignore_nulls: true } => "last_ignore_nulls",
            AggFunc::CollectList => "collect_list",
            AggFunc::CollectSet => "collect_set",
            AggFunc::ApproxCountDistinct => "approx_count_distinct",
            AggFunc::StddevSamp => "stddev_samp",
            AggFunc::StddevPop => "stddev_pop",
            AggFunc::VarSamp => "var_samp",
            AggFunc::VarPop => "var_pop",
        }
    }
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
    /// `with_watermark(column, delay)`: observe event times here, into tracker `tracker`.
    Watermark { column: Ident, delay: i64, tracker: usize },
    /// `order_by(keys..)` after an aggregation in complete mode: the emitted rows in this order.
    Sort { keys: Vec<SortSpec> },
    /// `limit(n)`: after an aggregation in complete mode, the first `n` emitted rows of each
    /// result (`global: None`); on a stream in append mode, the first `n` rows of the whole
    /// stream (Spark's streaming global limit), a stateful filter that is stateful operator
    /// `global` (`Some(0)` until the plan numbers it).
    Limit { n: usize, global: Option<usize> },
    /// `union(other)`: the rows of input `input` too, after its own operators `ops` (filters
    /// and its watermark); what follows applies to both.
    Union { input: usize, ops: Vec<LOp> },
    /// `join(static_input, keys.., kind = .., on = ..)`: each stream row with the static
    /// rows whose key equals its own (a stream-static join).
    Join { spec: JoinSpec },
    /// `join(other_stream[.with_watermark(..)], keys.., kind = .., on = ..)`: a stream-stream
    /// join, a stateful operator with two inputs (its id set by the plan phase).
    StreamJoin { spec: Box<crate::compiler::ops::stream_join::StreamJoinSpec> },
    /// `drop_duplicates(...)` / `drop_duplicates_within_watermark(...)` / `distinct()`: keep
    /// the first row per key. `op` is its stateful operator id (set by the plan phase).
    Dedup { op: usize, spec: DedupSpec },
    /// `group_by(keys..).map_groups_with_state(f, ..)` / `flat_map_groups_with_state`: the
    /// user's function per key.
    GroupState { spec: GroupStateSpec },
    /// `map_rows(f)` / `flat_map_rows(f)` / `filter_rows(f)`: the user's function over the
    /// whole current record (`ops/typed.rs`).
    TypedRows { spec: Box<crate::compiler::ops::typed::TypedSpec> },
}

/// Which timeouts a group-state function may set (Spark's `GroupStateTimeout`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum TimeoutKind {
    None,
    ProcessingTime,
    EventTime,
}

/// A `map_groups_with_state` / `flat_map_groups_with_state`, or a `transform_with_state`.
#[derive(Clone)]
pub struct GroupStateSpec {
    /// The grouping keys.
    pub keys: Vec<Item>,
    /// The user's function, as written; for `transform_with_state` the processor expression
    /// (evaluated once when the query starts).
    pub func: Expr,
    /// `flat_map_groups_with_state` (and `transform_with_state`): the function returns any
    /// number of records.
    pub flat: bool,
    /// `transform_with_state`: a `StatefulProcessor` with timers (`ops/transform_with_state.rs`).
    pub transform: bool,
    /// The timeout, or for `transform_with_state` its time mode.
    pub timeout: TimeoutKind,
    /// With an event-time timeout, the watermarked column: late rows are dropped before the
    /// function sees them (as Spark does only then).
    pub watermark: Option<Ident>,
    /// The operator's name token.
    pub name: Ident,
    /// After a `map_rows` / `flat_map_rows`: that typed operation's number. Its records are
    /// the rows the function gets (moved into the key's group), not the input's.
    pub from_map: Option<usize>,
    /// `initial_state = ..`: an expression of `(key, state)` pairs, evaluated when the query
    /// starts and applied in its first batch (Spark's `initialState`).
    pub initial_state: Option<Box<Expr>>,
    /// When operators follow it: the typed-operation number that names its records (the row
    /// variable `typed::row_var`), and the columns of them the rest of the query reads (bound
    /// per record, as after a `map_rows`).
    pub records: Option<(usize, Vec<Ident>)>,
    /// `initial_state = counts` / `counts.group_by(k..)` where `counts` is a static input:
    /// its records are the initial states (Spark's `initialState` from a batch `Dataset`).
    pub initial_static: Option<InitialStatic>,
}

/// A static input as a group-state operator's initial state: each of its records is one
/// key's state, keyed by its columns `keys` (the stream's key names unless the DSL gives
/// `.group_by(..)`).
#[derive(Clone)]
pub struct InitialStatic {
    /// The input's index in the query's header.
    pub input: usize,
    /// The input's name token (errors of the whole record, as its type, land on it).
    pub name: Ident,
    /// The static record's key fields, in the stream's key order.
    pub keys: Vec<Ident>,
}

impl std::fmt::Display for GroupStateSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use quote::ToTokens;
        let keys: Vec<String> =
            self.keys.iter().map(|k| format!("{} = {}", k.name, k.expr.to_token_stream())).collect();
        write!(
            f,
            "{}({}) by [{}], {} {:?}",
            self.name,
            self.func.to_token_stream(),
            keys.join(", "),
            if self.transform { "time mode" } else { "timeout" },
            self.timeout
        )?;
        if let Some(w) = &self.watermark {
            write!(f, "; rows with {w} behind the watermark dropped")?;
        }
        match (&self.initial_static, &self.initial_state) {
            (Some(s), _) => {
                let keys: Vec<String> = s.keys.iter().map(Ident::to_string).collect();
                write!(f, "; initial state: static input {} keyed by [{}], in batch 0", s.name, keys.join(", "))?;
            }
            (None, Some(init)) => write!(f, "; initial state {} in batch 0", init.to_token_stream())?,
            (None, None) => {}
        }
        if let Some((id, cols)) = &self.records {
            let cols: Vec<String> = cols.iter().map(Ident::to_string).collect();
            write!(f, "; its records as typed #{id}, binding [{}] from each", cols.join(", "))?;
        }
        Ok(())
    }
}

/// One `order_by` key: `count`, `desc(count)`, `asc_nulls_last(word)`, ...
#[derive(Clone)]
pub struct SortSpec {
    pub expr: Expr,
    pub descending: bool,
    /// Where nulls go; `None`: Spark's default (first ascending, last descending).
    pub nulls_first: Option<bool>,
}

/// The join types of a stream-static join (the stream on the left), as Spark allows them.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum JoinKind {
    Inner,
    /// Every stream row; the static columns null where nothing matches.
    LeftOuter,
    /// The stream rows with a match, once each, with the stream's columns only.
    LeftSemi,
    /// The stream rows without a match, with the stream's columns only.
    LeftAnti,
}

/// A stream-static join.
#[derive(Clone)]
pub struct JoinSpec {
    /// The static input's index and name.
    pub input: usize,
    pub input_name: Ident,
    pub kind: JoinKind,
    /// Equi-join keys: the stream side's expression, the static side's column.
    pub keys: Vec<(Expr, Ident)>,
    /// The extra condition (`on = ...`), over both sides' columns.
    pub condition: Option<Expr>,
    /// The static columns the query reads after the join (or in its condition).
    pub fields: Vec<Ident>,
}

impl JoinSpec {
    /// The variable standing for static column `field` in the row loop (the user writes
    /// `products.field`).
    pub fn var(input_name: &Ident, field: &Ident) -> Ident {
        Ident::new(&format!("__fg_{input_name}_{field}"), field.span())
    }

    /// The columns a join defines in the row loop.
    pub fn vars(&self) -> Vec<Ident> {
        self.fields.iter().map(|f| Self::var(&self.input_name, f)).collect()
    }

    /// The static input's columns it reads: keys, then the others.
    pub fn static_reads(&self) -> Vec<Ident> {
        let mut r: Vec<Ident> = self.keys.iter().map(|(_, f)| f.clone()).collect();
        for f in &self.fields {
            if !r.contains(f) {
                r.push(f.clone());
            }
        }
        r
    }
}

impl std::fmt::Display for JoinSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use quote::ToTokens;
        let keys: Vec<String> =
            self.keys.iter().map(|(e, s)| format!("{} = {}.{s}", e.to_token_stream(), self.input_name)).collect();
        write!(f, "{:?} join with static {} on [{}]", self.kind, self.input_name, keys.join(", "))?;
        if let Some(c) = &self.condition {
            // Shown as written: `products.col`, not its row-loop variable.
            let text = c
                .to_token_stream()
                .to_string()
                .replace(&format!("__fg_{}_", self.input_name), &format!("{}.", self.input_name));
            write!(f, " and {text}")?;
        }
        Ok(())
    }
}

/// What a deduplication keys on and how its state ends.
#[derive(Clone)]
pub struct DedupSpec {
    /// The key columns, as written.
    pub keys: Vec<Ident>,
    /// Index of the key that is the watermarked column: a key is evicted once it is behind
    /// the watermark (without one, state is kept forever).
    pub event_time_key: Option<usize>,
    /// The watermarked column of the input, when it has one: rows behind the watermark are
    /// dropped before deduplication (Spark's late-row filter).
    pub watermark: Option<Ident>,
    /// `drop_duplicates_within_watermark`: the watermark delay (µs); a key is remembered until
    /// its first event time plus the delay is behind the watermark.
    pub within_watermark: Option<i64>,
    /// Whether the watermarked column is an aggregation's window (a dedup after a window
    /// aggregation): rows are late, and keys evicted, by its end; a key of
    /// `drop_duplicates_within_watermark` expires by its start plus the delay, as Spark reads
    /// a window struct's event time there.
    pub window_time: bool,
}

impl DedupSpec {
    /// The columns the dedup reads per row.
    pub fn reads(&self) -> Vec<Ident> {
        let mut r = self.keys.clone();
        if let Some(w) = &self.watermark {
            if !r.contains(w) {
                r.push(w.clone());
            }
        }
        r
    }
}

impl std::fmt::Display for DedupSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let keys: Vec<String> = self.keys.iter().map(Ident::to_string).collect();
        write!(f, "deduplicate on [{}]", keys.join(", "))?;
        if let Some(w) = &self.watermark {
            write!(f, "; rows with {w} behind the watermark dropped")?;
        }
        match (self.within_watermark, self.event_time_key) {
            (Some(d), _) => write!(f, "; a key expires {d} µs after its first event time"),
            (None, Some(i)) => write!(f, "; a key is evicted when key #{i} is behind the watermark"),
            (None, None) => write!(f, "; state kept forever"),
        }
    }
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
    /// Per unioned input, the columns its own operators read.
    pub union_columns: Vec<(usize, Vec<Ident>)>,
    /// The schema at the end.
    pub output: Schema,
    /// An input column the query watermarks but an append-mode aggregation does not group by:
    /// left to rustc to report (see `flowgate::dsl::WatermarkedGroupingKey`), so a misspelled
    /// column gets only rustc's "no field" error.
    pub append_needs_key: Option<Ident>,
}
