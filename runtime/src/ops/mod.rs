//! Stateful operators: their lifecycle, the engine's only view of them, and one module each.
//!
//! # The lifecycle contract
//!
//! A stateful operator keeps keyed state between micro-batches, split into the query's fixed
//! number of shuffle partitions by the persisted partition hash ([`crate::partition`]). Its
//! life, in the order the engine and the generated plan drive it:
//!
//! 1. **create** — generated code builds it with the plan's [`crate::engine::PlanConfig`]
//!    (`new(partitions, ..)`); [`StatefulOperator::state_schema`] is recorded in the
//!    checkpoint's metadata and compared on every restart, before anything is read; where the
//!    recorded one differs the engine first offers it to the operator
//!    ([`StatefulOperator::adopt_recorded_schema`]: a `transform_with_state` whose processor
//!    deleted variables), which then reports it as its own. The metadata is never rewritten.
//! 2. **restore** — on a restart, before the first batch: [`StatefulOperator::restore`] with
//!    every partition's map, exactly as [`StatefulOperator::take_changes`] produced them over
//!    the batches committed so far. A key found in the wrong partition is an error, never
//!    silently used.
//! 3. **process** — once per batch, in batch order, typed and called by generated code: the
//!    operator's `update`/`process` takes the batch's rows (a closure per work unit that the
//!    macro wrote) and the late-input watermark. Calling a batch twice, or out of order, would
//!    double-count: only the engine calls the plan, once per batch id (continuous mode's
//!    stateful stage calls it once per vector of an epoch, each vector's rows once, with the
//!    epoch's id; see `engine/continuous/stage.rs`).
//! 4. **evict** — also from generated code, after process: state behind the eviction
//!    watermark is removed (and, for operators that emit on eviction, returned).
//! 5. **take changes** — with a checkpoint, once per batch after 3–4:
//!    [`StatefulOperator::take_changes`] returns per partition the keys put (with their new
//!    encoded value) and deleted since the last call; they become the next state version.
//!    Without [`StatefulOperator::set_tracking`] the operator records nothing (an
//!    uncheckpointed query pays nothing for it).
//! 6. **metrics** — [`StatefulOperator::metrics`] after each batch: Spark's `stateOperators`
//!    progress of the batch just run.
//!
//! A wrong answer at 2 or 5 loses or resurrects state after a crash; the kill tests and the
//! operators' unit tests check them.

pub mod aggregate;
pub mod dedup;
pub mod group_state;
pub mod join;
pub mod keyed;
pub mod limit;
pub mod session;
pub mod transform_with_state;

use crate::checkpoint::state::StateMap;
use crate::error::Result;

pub use keyed::PartitionChanges;

/// Progress of one stateful operator in one batch (Spark's `StateOperatorProgress`): what each
/// operator reports as its metrics, and what [`crate::QueryProgress`] shows.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StateOperatorProgress {
    /// Operator name, as Spark names it (`stateStoreSave` for aggregations, `dedupe`, ...).
    pub operator_name: String,
    /// Rows in state after the batch.
    pub num_rows_total: u64,
    /// Rows created or changed.
    pub num_rows_updated: u64,
    /// Rows evicted.
    pub num_rows_removed: u64,
    /// Input rows dropped as late.
    pub num_rows_dropped_by_watermark: u64,
    /// Estimated memory.
    pub memory_used_bytes: u64,
    /// Operator-specific figures (Spark's `customMetrics`), by name: a stream-stream join's
    /// rows and bytes per side (`leftRows`, `leftBytes`, `rightRows`, `rightBytes`).
    pub custom_metrics: Vec<(String, u64)>,
}

/// One stateful operator's state as the checkpoint's metadata records it. Compared on every
/// restart: a difference refuses the checkpoint before anything is read from it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StateSchema {
    /// Operator name (Spark's).
    pub operator: String,
    /// Layout of the stored key ([`crate::codec::StateCodec::layout`]).
    pub key_layout: String,
    /// Layout of the stored value.
    pub value_layout: String,
    /// Number of shuffle partitions.
    pub partitions: usize,
}

impl StateSchema {
    /// A schema from the stored key and value types.
    pub fn of<K: crate::codec::StateCodec, V: crate::codec::StateCodec>(operator: &str, partitions: usize) -> Self {
        StateSchema {
            operator: operator.to_string(),
            key_layout: crate::codec::layout_of::<K>(),
            value_layout: crate::codec::layout_of::<V>(),
            partitions,
        }
    }

    /// The fingerprint of the key and value layouts ([`crate::codec::fingerprint`]).
    pub fn fingerprint(&self) -> String {
        crate::codec::fingerprint(&self.key_layout, &self.value_layout)
    }
}

/// The engine's view of one stateful operator (see the module's lifecycle contract). Object
/// safe: the engine calls it once per batch, never per row.
pub trait StatefulOperator: Send {
    /// What the checkpoint records about this operator's state.
    fn state_schema(&self) -> StateSchema;
    /// Metrics of the last batch.
    fn metrics(&self) -> StateOperatorProgress;
    /// Whether to record changes for [`StatefulOperator::take_changes`].
    fn set_tracking(&mut self, on: bool);
    /// Per shuffle partition, the state changes since the last call.
    fn take_changes(&mut self) -> Vec<PartitionChanges>;
    /// Replaces the state with the state store's maps, one per shuffle partition.
    fn restore(&mut self, partitions: Vec<StateMap>) -> Result<()>;
    /// The earliest processing-time timeout in state (ms since the epoch), if the operator
    /// has any: once the query's clock is past it, the engine runs a batch without new data
    /// so the timeout can fire (group state with `timeout = processing_time`).
    fn next_processing_timeout_ms(&self) -> Option<i64> {
        None
    }
    /// Called before [`StatefulOperator::restore`] when the checkpoint recorded a schema
    /// other than [`StatefulOperator::state_schema`]: whether the operator reads state written
    /// with `recorded` (its `state_schema` is then `recorded`). None does, but a
    /// `transform_with_state` whose processor deleted the variables it no longer declares
    /// (Spark's `deleteIfExists`).
    fn adopt_recorded_schema(&mut self, recorded: &StateSchema) -> bool {
        let _ = recorded;
        false
    }
}

/// The stateful operators of one plan, in operator-id order: `()`, or a tuple of
/// [`StatefulOperator`]s. Their position is their stable id; it names their state in the
/// checkpoint (`state/<id>/...`).
pub trait OperatorSet: Send {
    /// Number of operators.
    fn len(&self) -> usize;
    /// Whether there is none.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Calls `f` on each operator, in id order.
    fn each(&self, f: &mut dyn FnMut(&dyn StatefulOperator));
    /// Calls `f` on each operator, mutably, in id order.
    fn each_mut(&mut self, f: &mut dyn FnMut(&mut dyn StatefulOperator));
}

impl OperatorSet for () {
    fn len(&self) -> usize {
        0
    }
    fn each(&self, _f: &mut dyn FnMut(&dyn StatefulOperator)) {}
    fn each_mut(&mut self, _f: &mut dyn FnMut(&mut dyn StatefulOperator)) {}
}

macro_rules! operator_tuple {
    ($n:literal: $($name:ident $idx:tt),+) => {
        impl<$($name: StatefulOperator),+> OperatorSet for ($($name,)+) {
            fn len(&self) -> usize {
                $n
            }
            fn each(&self, f: &mut dyn FnMut(&dyn StatefulOperator)) {
                $(f(&self.$idx);)+
            }
            fn each_mut(&mut self, f: &mut dyn FnMut(&mut dyn StatefulOperator)) {
                $(f(&mut self.$idx);)+
            }
        }
    };
}
operator_tuple!(1: A 0);
operator_tuple!(2: A 0, B 1);
operator_tuple!(3: A 0, B 1, C 2);
operator_tuple!(4: A 0, B 1, C 2, D 3);
operator_tuple!(5: A 0, B 1, C 2, D 3, E 4);
operator_tuple!(6: A 0, B 1, C 2, D 3, E 4, F 5);
