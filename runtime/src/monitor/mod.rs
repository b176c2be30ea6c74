//! Watching a running query from outside: Prometheus metrics (`metrics.rs`) and a live page
//! per query (`ui.rs`), served on loopback by a tiny HTTP responder (`http.rs`), all opt-in
//! from the query builder (`.metrics(addr)`, `.ui(addr)`). A query that asks for neither
//! starts no thread and pays nothing.

mod catch_up;
pub mod http;
pub mod metrics;
pub mod ui;

use std::sync::Arc;

use crate::engine::listener::ProgressSink;
use crate::error::Result;

/// What a query builder asked to be served.
#[derive(Clone, Debug, Default)]
pub(crate) struct Options {
    pub metrics: Option<String>,
    pub ui: Option<String>,
    /// Report each batch of an `available_now` run (a bar on a terminal, else a log line);
    /// on unless turned off.
    pub no_catch_up: bool,
}

impl Options {
    /// The progress sinks for a query named `query`, servers started as needed.
    pub(crate) fn sinks(
        &self,
        query: &str,
        id: &str,
        run_id: &str,
        trigger: &crate::Trigger,
    ) -> Result<Vec<Arc<dyn ProgressSink>>> {
        let mut out: Vec<Arc<dyn ProgressSink>> = Vec::new();
        if *trigger == crate::Trigger::AvailableNow && !self.no_catch_up {
            out.push(catch_up::CatchUp::new(query));
        }
        if let Some(addr) = &self.metrics {
            out.push(metrics::enable(addr, query)?);
        }
        if let Some(addr) = &self.ui {
            out.push(ui::enable(addr, query, id, run_id)?);
        }
        Ok(out)
    }
}
