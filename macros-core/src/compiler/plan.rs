//! Phase 3, plan: the logical operators cut into physical stages. A stage is a run of
//! stateless operators fused into one loop; it ends at a stateful operator or at the sink.

use std::fmt;

use quote::ToTokens;
use syn::Ident;

use super::ast::{ModeKind, Query};
use super::logical::{AggFunc, AggItem, Item, Key, KeyKind, LOp, Logical, Schema};

/// The physical plan of one query.
pub struct Physical {
    pub input_index: usize,
    /// Input columns the first stage reads.
    pub input_columns: Vec<Ident>,
    /// Stage 0: stateless operators over the input, fused.
    pub pre: Vec<LOp>,
    /// The stateful aggregation, if any.
    pub agg: Option<AggPlan>,
    /// Stateless operators over emitted aggregate rows, fused into the emit loop.
    pub post: Vec<LOp>,
    /// How output rows are made.
    pub terminal: Terminal,
    pub mode: ModeKind,
    /// The watermark delay (µs) when the query has `with_watermark`.
    pub watermark_delay: Option<i64>,
}

pub struct AggPlan {
    pub keys: Vec<Key>,
    pub aggs: Vec<AggItem>,
    /// Index of the key carrying event time (late input and eviction go by it).
    pub event_time_key: Option<usize>,
}

impl AggPlan {
    /// Whether late input is dropped and state evicted (not in complete mode, as Spark).
    pub fn uses_watermark(&self, mode: ModeKind) -> bool {
        self.event_time_key.is_some() && mode != ModeKind::Complete
    }
}

pub enum Terminal {
    /// Build the output record from these columns (struct literal, checked by rustc).
    Columns(Vec<Ident>),
    /// Filters only, output record = input record: filter the input batch with a mask.
    FilterInput,
}

/// Builds the physical plan.
pub fn plan(q: &Query, logical: Logical) -> Physical {
    let mut pre = Vec::new();
    let mut post = Vec::new();
    let mut agg = None;
    let mut watermark_delay = None;
    for op in logical.ops {
        if let LOp::Watermark { delay, .. } = &op {
            watermark_delay = Some(*delay);
        }
        match op {
            LOp::Aggregate { keys, aggs, event_time_key } => agg = Some(AggPlan { keys, aggs, event_time_key }),
            other if agg.is_none() => pre.push(other),
            other => post.push(other),
        }
    }
    let terminal = match logical.output {
        Schema::Closed { columns } => Terminal::Columns(columns),
        Schema::Open { .. } => Terminal::FilterInput,
    };
    Physical {
        input_index: logical.input_index,
        input_columns: logical.input_columns,
        pre,
        agg,
        post,
        terminal,
        mode: q.mode.kind,
        watermark_delay,
    }
}

fn tokens(t: &impl ToTokens) -> String {
    t.to_token_stream().to_string()
}

fn items(items: &[Item]) -> String {
    items.iter().map(|i| format!("{} = {}", i.name, tokens(&i.expr))).collect::<Vec<_>>().join(", ")
}

fn ops(f: &mut fmt::Formatter<'_>, ops: &[LOp]) -> fmt::Result {
    for op in ops {
        match op {
            LOp::Filter { pred } => writeln!(f, "    filter {}", tokens(pred))?,
            LOp::Project { items: it } => writeln!(f, "    project {}", items(it))?,
            LOp::WithColumns { items: it } => writeln!(f, "    with_columns {}", items(it))?,
            LOp::FlatMap { name, expr } => writeln!(f, "    flat_map {name} in {}", tokens(expr))?,
            LOp::Aggregate { .. } => writeln!(f, "    (aggregate)")?,
            LOp::Watermark { column, delay } => {
                writeln!(f, "    watermark on {column}, delay {delay} µs (observe max event time)")?
            }
        }
    }
    Ok(())
}

impl fmt::Display for Physical {
    /// A readable dump for snapshot tests and `FLOWGATE_DUMP_PLAN`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let cols: Vec<String> = self.input_columns.iter().map(Ident::to_string).collect();
        writeln!(
            f,
            "stage 0: fused loop over input #{} reading [{}], parallel over row chunks",
            self.input_index,
            cols.join(", ")
        )?;
        ops(f, &self.pre)?;
        if let Some(a) = &self.agg {
            let aggs: Vec<String> =
                a.aggs
                    .iter()
                    .map(|x| {
                        let func = match x.func {
                            AggFunc::CountRows => "count()".to_string(),
                            AggFunc::Count => format!("count({})", x.arg.as_ref().map(tokens).unwrap_or_default()),
                            other => format!("{:?}({})", other, x.arg.as_ref().map(tokens).unwrap_or_default())
                                .to_lowercase(),
                        };
                        format!("{} = {}", x.name, func)
                    })
                    .collect();
            writeln!(f, "    → partial aggregate into shuffle partitions")?;
            let keys: Vec<String> = a
                .keys
                .iter()
                .map(|k| match &k.kind {
                    KeyKind::Plain => format!("{} = {}", k.item.name, tokens(&k.item.expr)),
                    KeyKind::Window { ts, size, slide, offset } => {
                        format!(
                            "{} = window({}, size {size} µs, slide {slide} µs, offset {offset} µs)",
                            k.item.name,
                            tokens(ts)
                        )
                    }
                    KeyKind::Session { ts, gap } => {
                        format!("{} = session_window({}, gap {gap} µs)", k.item.name, tokens(ts))
                    }
                })
                .collect();
            writeln!(f, "stateful 1: hash aggregate keys [{}] aggs [{}]", keys.join(", "), aggs.join(", "))?;
            if let Some(i) = a.event_time_key {
                writeln!(f, "    event-time key #{i}: late input dropped, state evicted by the watermark")?;
            }
            writeln!(f, "stage 2: emit {:?} rows", self.mode)?;
            ops(f, &self.post)?;
        }
        match &self.terminal {
            Terminal::Columns(c) => {
                let c: Vec<String> = c.iter().map(Ident::to_string).collect();
                writeln!(f, "    → output record ({})", c.join(", "))
            }
            Terminal::FilterInput => writeln!(f, "    → output = input rows (mask filter)"),
        }
    }
}
