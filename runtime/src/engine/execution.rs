//! The seam between starting a query and running it: an execution mode owns the query thread
//! from start to termination. Two implement it: the micro-batch loop
//! ([`super::microbatch::MicroBatch`]) and continuous processing
//! ([`super::continuous::coordinator::Continuous`]). `QueryBuilder::start` picks one by the
//! trigger; neither knows of the other.

use std::sync::Arc;

use arrow_array::RecordBatch;

use super::continuous::coordinator::Continuous;
use super::listener::Observer;
use super::microbatch::MicroBatch;
use super::Shared;
use crate::error::{Error, Result};
use crate::source::{ReadLimit, SourceImpl};

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

/// A static input read whole (both modes read them once, when the query starts).
pub(crate) fn read_static(name: &str, s: &mut Box<dyn SourceImpl>) -> Result<Vec<RecordBatch>> {
    let description = s.description();
    let what = || format!("reading static input `{name}` from {description}");
    s.prepare_available_now().map_err(|e| e.context(what()))?;
    let end = s.latest_offset(None, ReadLimit::All).map_err(|e| e.context(what()))?;
    match end {
        Some(end) => s.get_batch(None, &end).map_err(|e| e.context(what())),
        None => Ok(Vec::new()),
    }
}

/// The end every mode shares: the sources stopped, the error (if any) logged, then progress
/// bar, page and metrics made final before anyone sees the query stopped, the status set, and
/// the listeners told.
pub(crate) fn terminate(
    name: &str,
    sources: &mut [Box<dyn SourceImpl>],
    statics: &mut [(&'static str, Box<dyn SourceImpl>)],
    observer: &Observer,
    shared: &Shared,
    result: Result<()>,
) {
    for s in sources.iter_mut() {
        s.stop();
    }
    for (_, s) in statics.iter_mut() {
        s.stop();
    }
    let error = match result {
        Ok(()) | Err(Error::Stopped) => None,
        Err(e) => {
            tracing::error!(query = %name, error = %e, "query failed");
            Some(Arc::new(e))
        }
    };
    observer.stopping(error.as_ref());
    shared.update(|st| {
        st.active = false;
        st.message = "Stopped".into();
        st.error = error.clone();
    });
    observer.terminated(error);
}
