//! The operator registry: every DSL operator and its kind; the operators with state of their
//! own have a module here holding their check, plan and emit hooks (`aggregate`, `dedup`).
//! Adding an operator starts here.

pub mod aggregate;
pub mod dedup;
pub mod group_state;
pub mod join;
pub mod stream_join;
pub mod transform_with_state;
pub mod typed;
pub mod union;

/// What an operator does, as the check phase sees it.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum OpKind {
    Filter,
    Project,
    WithColumn,
    FlatMap,
    GroupBy,
    Agg,
    Watermark,
    /// `order_by` / `sort`: only after an aggregation in complete mode (Spark's rule).
    Sort,
    /// `limit`: not in update mode (Spark's rule).
    Limit,
    /// `join(static_input, keys.., kind = .., on = ..)`.
    Join,
    /// `union(other)` / `union(other.with_watermark(..))`: the rows of another stream of the
    /// same record.
    Union,
    /// `drop_duplicates(cols..)`, `distinct()`.
    Dedup,
    /// `drop_duplicates_within_watermark(cols..)`: needs a watermark (Spark's rule).
    DedupWithinWatermark,
    /// `group_by(keys..).map_groups_with_state(f, timeout = ..)` and the flat map: the user's
    /// function per key with typed state (`ops/group_state.rs`); and
    /// `group_by(keys..).transform_with_state(processor, time_mode = ..)`
    /// (`ops/transform_with_state.rs`).
    GroupState,
    /// `map_rows(f)` / `flat_map_rows(f)` / `filter_rows(f)`: the user's function over the
    /// whole record (`ops/typed.rs`).
    Typed(typed::TypedKind),
}

/// One registered operator.
pub struct OpSpec {
    pub name: &'static str,
    pub kind: OpKind,
}

/// Every operator, in the order the reference lists them.
pub const OPERATORS: &[OpSpec] = &[
    OpSpec { name: "filter", kind: OpKind::Filter },
    OpSpec { name: "where_", kind: OpKind::Filter },
    OpSpec { name: "select", kind: OpKind::Project },
    OpSpec { name: "map", kind: OpKind::Project },
    OpSpec { name: "with_column", kind: OpKind::WithColumn },
    OpSpec { name: "flat_map", kind: OpKind::FlatMap },
    OpSpec { name: "explode", kind: OpKind::FlatMap },
    OpSpec { name: "map_rows", kind: OpKind::Typed(typed::TypedKind::Map) },
    OpSpec { name: "flat_map_rows", kind: OpKind::Typed(typed::TypedKind::FlatMap) },
    OpSpec { name: "filter_rows", kind: OpKind::Typed(typed::TypedKind::Filter) },
    OpSpec { name: "group_by", kind: OpKind::GroupBy },
    OpSpec { name: "agg", kind: OpKind::Agg },
    OpSpec { name: "with_watermark", kind: OpKind::Watermark },
    OpSpec { name: "drop_duplicates", kind: OpKind::Dedup },
    OpSpec { name: "drop_duplicates_within_watermark", kind: OpKind::DedupWithinWatermark },
    OpSpec { name: "distinct", kind: OpKind::Dedup },
    OpSpec { name: "join", kind: OpKind::Join },
    OpSpec { name: "union", kind: OpKind::Union },
    OpSpec { name: "order_by", kind: OpKind::Sort },
    OpSpec { name: "sort", kind: OpKind::Sort },
    OpSpec { name: "limit", kind: OpKind::Limit },
    OpSpec { name: "map_groups_with_state", kind: OpKind::GroupState },
    OpSpec { name: "flat_map_groups_with_state", kind: OpKind::GroupState },
    OpSpec { name: "transform_with_state", kind: OpKind::GroupState },
];

/// Methods of the generated query builder (input names must differ from these).
pub const BUILDER_METHODS: &[&str] = &[
    "sink",
    "trigger",
    "checkpoint",
    "shuffle_partitions",
    "no_data_batches",
    "watermark_policy",
    "clock",
    "query_name",
    "start",
    "builder",
    "spec",
    // The batch job's (`<Query>Batch`).
    "run",
    "run_batches",
    "write",
    "batch",
];

pub fn lookup(name: &str) -> Option<&'static OpSpec> {
    OPERATORS.iter().find(|o| o.name == name)
}

pub fn names() -> impl Iterator<Item = &'static str> {
    OPERATORS.iter().map(|o| o.name)
}
