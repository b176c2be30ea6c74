//! The seam between starting a query and running it: an execution mode owns the query thread
//! from start to termination. Two implement it: the micro-batch loop
//! ([`super::microbatch::MicroBatch`]) and continuous processing
//! ([`super::continuous::coordinator::Continuous`]). `QueryBuilder::start` picks one by the
//! trigger; neither knows of the other.

use super::continuous::coordinator::Continuous;
use super::microbatch::MicroBatch;
use super::{Plan, PlanExt};
use crate::error::{Error, Result};

/// An execution mode: runs the query on the query thread until it stops, then reports its
/// termination (status, listeners) as every mode must.
pub(crate) trait Execution: Send {
    /// Runs the query to its end.
    fn execute(self: Box<Self>);
}

impl Execution for MicroBatch {
    fn execute(self: Box<Self>) {
        (*self).run();
    }
}

impl Execution for Continuous {
    fn execute(self: Box<Self>) {
        (*self).run();
    }
}

/// The engine's own check that a plan can run continuously, behind the compiler's (a
/// `Trigger::Continuous` built by hand reaches `start` without it): no stateful operator and no
/// watermark.
pub(crate) fn check_continuous(query: &str, plan: &(dyn Plan + 'static)) -> Result<()> {
    let operators: Vec<String> = plan.state_schema().into_iter().map(|s| s.operator).collect();
    if !operators.is_empty() {
        return Err(Error::Plan(format!(
            "query `{query}` cannot run in continuous mode: it has stateful operators ({}); use a micro-batch \
             trigger",
            operators.join(", ")
        )));
    }
    if !plan.watermarks().is_empty() {
        return Err(Error::Plan(format!(
            "query `{query}` cannot run in continuous mode: it has a watermark; use a micro-batch trigger"
        )));
    }
    Ok(())
}
