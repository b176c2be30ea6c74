//! The operator registry: every DSL operator, its kind and its reference documentation.
//! Adding an operator starts here.

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
    /// Known (from Spark) but not implemented yet: the message says so.
    Unsupported(&'static str),
}

/// One registered operator.
pub struct OpSpec {
    pub name: &'static str,
    pub kind: OpKind,
    pub doc: &'static str,
}

/// Every operator, in the order the reference lists them.
pub const OPERATORS: &[OpSpec] = &[
    OpSpec { name: "filter", kind: OpKind::Filter, doc: "`.filter(expr)`: keeps rows where the Rust boolean expression is true" },
    OpSpec { name: "where_", kind: OpKind::Filter, doc: "`.where_(expr)`: same as filter (Spark's `where`)" },
    OpSpec { name: "select", kind: OpKind::Project, doc: "`.select(a, b = expr, expr as c)`: exactly these columns" },
    OpSpec { name: "map", kind: OpKind::Project, doc: "`.map(a = expr, ...)`: each row becomes a new row of these columns (Dataset.map)" },
    OpSpec { name: "with_column", kind: OpKind::WithColumn, doc: "`.with_column(name = expr)`: adds or replaces columns, keeps the rest" },
    OpSpec { name: "flat_map", kind: OpKind::FlatMap, doc: "`.flat_map(word = iterable)`: one row per item (Spark's explode)" },
    OpSpec { name: "explode", kind: OpKind::FlatMap, doc: "`.explode(word = iterable)`: same as flat_map" },
    OpSpec { name: "group_by", kind: OpKind::GroupBy, doc: "`.group_by(keys...)`: followed by `.agg(...)`" },
    OpSpec { name: "agg", kind: OpKind::Agg, doc: "`.agg(count() as n, sum(x) as s, ...)`: aggregates per group (or over the whole stream)" },
    OpSpec { name: "with_watermark", kind: OpKind::Watermark, doc: "`.with_watermark(ts, \"10 minutes\")`: event-time watermark = max(ts) − delay" },
    OpSpec { name: "drop_duplicates", kind: OpKind::Unsupported("deduplication is not implemented yet"), doc: "" },
    OpSpec { name: "drop_duplicates_within_watermark", kind: OpKind::Unsupported("deduplication is not implemented yet"), doc: "" },
    OpSpec { name: "distinct", kind: OpKind::Unsupported("deduplication is not implemented yet"), doc: "" },
    OpSpec { name: "join", kind: OpKind::Unsupported("joins are not implemented yet"), doc: "" },
    OpSpec { name: "union", kind: OpKind::Unsupported("union is not implemented yet"), doc: "" },
    OpSpec { name: "order_by", kind: OpKind::Unsupported("sorting a stream is only possible after an aggregation in complete mode, and is not implemented yet"), doc: "" },
    OpSpec { name: "sort", kind: OpKind::Unsupported("sorting a stream is only possible after an aggregation in complete mode, and is not implemented yet"), doc: "" },
    OpSpec { name: "limit", kind: OpKind::Unsupported("limit is not implemented yet"), doc: "" },
    OpSpec { name: "map_groups_with_state", kind: OpKind::Unsupported("arbitrary stateful processing is not implemented yet"), doc: "" },
    OpSpec { name: "flat_map_groups_with_state", kind: OpKind::Unsupported("arbitrary stateful processing is not implemented yet"), doc: "" },
];

/// Methods of the generated query builder (input names must differ from these).
pub const BUILDER_METHODS: &[&str] = &["sink", "trigger", "checkpoint", "shuffle_partitions", "no_data_batches", "query_name", "start", "builder", "spec"];

pub fn lookup(name: &str) -> Option<&'static OpSpec> {
    OPERATORS.iter().find(|o| o.name == name)
}

pub fn names() -> impl Iterator<Item = &'static str> {
    OPERATORS.iter().map(|o| o.name)
}
