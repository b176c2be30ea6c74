//! Hash aggregation (Spark's `StateStoreSaveExec`, named `stateStoreSave` in progress): groups
//! by key in [`HashAggState`], fed by the generated row loop through a [`Stage`]
//! (rows staged per in-memory sub-table and probed sub-table by sub-table when the state is
//! larger than the cache) or, row by row, through [`AggPartials`].

mod table;

pub use table::{
    AggPartials, Entry, HashAggState, Stage, CHUNK_ROWS, PARALLEL_MIN_ROWS, STAGE_MIN_BYTES, SUB_TABLE_BITS,
};

use crate::agg::Merge;
use crate::checkpoint::state::StateMap;
use crate::codec::StateCodec;
use crate::ops::{PartitionChanges, StateOperatorProgress, StateSchema, StatefulOperator};
use crate::value::GroupKey;

/// Spark's name for the aggregation's state operator.
pub const OPERATOR_NAME: &str = "stateStoreSave";

impl<K, A> StatefulOperator for HashAggState<K, A>
where
    K: Clone + Eq + Send + Sync + GroupKey<Owned = K> + StateCodec,
    A: Merge + Clone + Send + StateCodec,
{
    fn state_schema(&self) -> StateSchema {
        StateSchema::of::<K, A>(OPERATOR_NAME, self.partitions())
    }
    fn metrics(&self) -> StateOperatorProgress {
        HashAggState::metrics(self)
    }
    fn set_tracking(&mut self, on: bool) {
        HashAggState::set_tracking(self, on)
    }
    fn take_changes(&mut self) -> Vec<PartitionChanges> {
        HashAggState::take_changes(self)
    }
    fn restore(&mut self, partitions: Vec<StateMap>) -> crate::Result<()> {
        HashAggState::restore(self, partitions)
    }
}
