//! The streaming global limit (Spark's `StreamingGlobalLimitExec`, `globalLimit` in progress):
//! `limit(n)` on a stream in append mode passes the first `n` rows of the whole stream, over
//! every batch, and nothing after. Its state is one count (the rows passed so far) under one
//! key in one partition; a restart goes on from the count a checkpoint holds.
//!
//! Generated code calls, per batch: [`LimitState::begin_batch`], [`LimitState::take`] for each
//! row that reaches the limit (true: the row goes on), then [`LimitState::end_batch`].

use crate::checkpoint::state::StateMap;
use crate::codec::{from_bytes, to_bytes};
use crate::error::{Error, Result};
use crate::ops::{PartitionChanges, StateOperatorProgress, StateSchema, StatefulOperator};

/// The rows a global limit passed so far.
#[derive(Debug)]
pub struct LimitState {
    limit: u64,
    passed: u64,
    /// Whether the count changed since the last [`StatefulOperator::take_changes`].
    changed: bool,
    /// Whether a row passed in this batch.
    passed_in_batch: bool,
    tracking: bool,
    metrics: StateOperatorProgress,
}

impl LimitState {
    /// A limit of `limit` rows that has passed none.
    pub fn new(limit: u64) -> Self {
        LimitState {
            limit,
            passed: 0,
            changed: false,
            passed_in_batch: false,
            tracking: false,
            metrics: StateOperatorProgress { operator_name: "globalLimit".into(), ..Default::default() },
        }
    }

    /// Whether a row may pass (and counts it if so).
    #[inline(always)]
    pub fn take(&mut self) -> bool {
        if self.passed >= self.limit {
            return false;
        }
        self.passed += 1;
        self.changed = true;
        self.passed_in_batch = true;
        true
    }

    /// Whether no more rows can pass.
    pub fn is_full(&self) -> bool {
        self.passed >= self.limit
    }

    /// The rows passed so far.
    pub fn passed(&self) -> u64 {
        self.passed
    }

    /// Resets the per-batch metrics.
    pub fn begin_batch(&mut self) {
        self.passed_in_batch = false;
    }

    /// The batch's metrics: as Spark's, one state row once a row has passed, updated in a
    /// batch that passed rows.
    pub fn end_batch(&mut self) {
        self.metrics.num_rows_total = (self.passed > 0) as u64;
        self.metrics.num_rows_updated = self.passed_in_batch as u64;
        self.metrics.memory_used_bytes = std::mem::size_of::<u64>() as u64;
    }
}

impl StatefulOperator for LimitState {
    fn state_schema(&self) -> StateSchema {
        StateSchema::of::<(), u64>(&self.metrics.operator_name, 1)
    }
    fn metrics(&self) -> StateOperatorProgress {
        self.metrics.clone()
    }
    fn set_tracking(&mut self, on: bool) {
        self.tracking = on;
    }
    fn take_changes(&mut self) -> Vec<PartitionChanges> {
        let changes = if self.tracking && self.changed {
            vec![(to_bytes(&()), Some(to_bytes(&self.passed)))]
        } else {
            Vec::new()
        };
        self.changed = false;
        vec![changes]
    }
    fn restore(&mut self, partitions: Vec<StateMap>) -> Result<()> {
        let [map]: [StateMap; 1] = partitions.try_into().map_err(|p: Vec<StateMap>| {
            Error::Checkpoint(format!("a global limit has 1 state partition, got {}", p.len()))
        })?;
        self.passed = match map.get(&to_bytes(&())) {
            Some(v) => from_bytes::<u64>(v)?,
            None => 0,
        };
        self.changed = false;
        self.passed_in_batch = false;
        self.end_batch();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passes_the_first_rows_over_batches_and_restores_its_count() {
        let mut l = LimitState::new(3);
        l.set_tracking(true);
        l.begin_batch();
        assert_eq!([l.take(), l.take()], [true, true]);
        l.end_batch();
        let changes = l.take_changes();
        assert_eq!(changes, vec![vec![(Vec::new(), Some(2u64.to_le_bytes().to_vec()))]]);
        let mut restored = LimitState::new(3);
        let map: StateMap = changes[0].iter().map(|(k, v)| (k.clone(), v.clone().unwrap())).collect();
        restored.restore(vec![map]).unwrap();
        restored.begin_batch();
        assert_eq!([restored.take(), restored.take(), restored.take()], [true, false, false]);
        restored.end_batch();
        assert_eq!((restored.metrics().num_rows_total, restored.metrics().num_rows_updated), (1, 1));
        restored.take_changes();
        restored.begin_batch();
        restored.end_batch();
        assert_eq!(restored.metrics().num_rows_updated, 0, "a batch that passed nothing updated nothing");
        assert!(restored.take_changes()[0].is_empty());
        assert_eq!(StateSchema::of::<(), u64>("globalLimit", 1).fingerprint(), restored.state_schema().fingerprint());
    }
}
