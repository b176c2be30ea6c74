//! Session-window aggregation (Spark's `SessionWindowStateStoreSaveExec`): per key, sorted
//! sessions merged per batch, in [`SessionAggState`], fed through [`SessionRows`].

mod state;

pub use state::{Session, SessionAggState, SessionRows};

use crate::agg::Merge;
use crate::checkpoint::state::StateMap;
use crate::codec::StateCodec;
use crate::ops::{PartitionChanges, StateOperatorProgress, StateSchema, StatefulOperator};
use crate::value::GroupKey;

/// Spark's name for the session window's state operator.
pub const OPERATOR_NAME: &str = "sessionWindowStateStoreSaveExec";

impl<K, A> StatefulOperator for SessionAggState<K, A>
where
    K: Clone + Eq + Send + Sync + GroupKey<Owned = K> + StateCodec,
    A: Merge + Send + StateCodec,
{
    fn state_schema(&self) -> StateSchema {
        StateSchema::of::<K, state::SessionList<A>>(OPERATOR_NAME, self.partitions())
    }
    fn metrics(&self) -> StateOperatorProgress {
        SessionAggState::metrics(self)
    }
    fn set_tracking(&mut self, on: bool) {
        SessionAggState::set_tracking(self, on)
    }
    fn take_changes(&mut self) -> Vec<PartitionChanges> {
        SessionAggState::take_changes(self)
    }
    fn restore(&mut self, partitions: Vec<StateMap>) -> crate::Result<()> {
        SessionAggState::restore(self, partitions)
    }
}
