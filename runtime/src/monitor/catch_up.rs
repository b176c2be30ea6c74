//! Progress of an `available_now` run over a backlog: a progress bar on stderr (files done of
//! total, rows per second, time left; `indicatif`) when stderr is a terminal, else one log line
//! per batch (`tracing`, target `flowgate::catch_up`, level info), so a job's log shows how far
//! it got.

use std::io::IsTerminal;
use std::sync::{Arc, Mutex};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::engine::listener::ProgressSink;
use crate::engine::QueryProgress;
use crate::error::Error;

/// What a batch tells of the backlog: done and total over every source that can tell.
fn totals(p: &QueryProgress) -> Option<(u64, u64, &'static str)> {
    let mut out: Option<(u64, u64, &'static str)> = None;
    for b in p.sources.iter().filter_map(|s| s.backlog) {
        let o = out.get_or_insert((0, 0, b.unit));
        o.0 += b.done;
        o.1 += b.total;
    }
    out
}

/// Reports each batch of a catch-up run.
pub(crate) struct CatchUp {
    name: String,
    bar: Option<ProgressBar>,
    rows: Mutex<u64>,
}

impl CatchUp {
    /// A bar when stderr is a terminal, log lines otherwise.
    pub(crate) fn new(name: &str) -> Arc<Self> {
        Self::with_terminal(name, std::io::stderr().is_terminal())
    }

    pub(crate) fn with_terminal(name: &str, terminal: bool) -> Arc<Self> {
        let bar = terminal.then(|| {
            // Hidden until the first batch says how much there is.
            let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::hidden());
            bar.set_style(
                ProgressStyle::with_template("{prefix} {bar:30} {pos}/{len} {msg} · {elapsed} elapsed, {eta} left")
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            bar.set_prefix(name.to_string());
            bar
        });
        Arc::new(CatchUp { name: name.to_string(), bar, rows: Mutex::new(0) })
    }

    /// The log line for a batch (also the bar's message).
    fn line(&self, p: &QueryProgress) -> String {
        let total_rows = {
            let mut r = self.rows.lock().unwrap_or_else(|e| e.into_inner());
            *r += p.num_input_rows;
            *r
        };
        let rate = p.processed_rows_per_second;
        match totals(p) {
            Some((done, total, unit)) => format!(
                "batch {}: {} rows ({total_rows} so far), {done}/{total} {unit}, {rate:.0} rows/s",
                p.batch_id, p.num_input_rows
            ),
            None => format!("batch {}: {} rows ({total_rows} so far), {rate:.0} rows/s", p.batch_id, p.num_input_rows),
        }
    }
}

impl ProgressSink for CatchUp {
    fn progress(&self, p: &QueryProgress) {
        let line = self.line(p);
        match &self.bar {
            Some(bar) => {
                if bar.is_hidden() {
                    bar.set_draw_target(ProgressDrawTarget::stderr());
                }
                if let Some((done, total, unit)) = totals(p) {
                    bar.set_length(total);
                    bar.set_position(done);
                    bar.set_message(format!("{unit}, {:.0} rows/s", p.processed_rows_per_second));
                } else {
                    bar.set_message(line);
                }
            }
            None => tracing::info!(target: "flowgate::catch_up", query = %self.name, "{line}"),
        }
    }

    fn terminated(&self, error: Option<&Arc<Error>>) {
        if let Some(bar) = &self.bar {
            match error {
                None => bar.finish_with_message("done"),
                Some(_) => bar.abandon_with_message("failed"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::SourceProgress;
    use crate::source::Backlog;

    #[test]
    fn a_line_per_batch_says_how_far_the_run_is() {
        let c = CatchUp::with_terminal("q", false);
        let p = |batch_id, rows, done| QueryProgress {
            batch_id,
            num_input_rows: rows,
            processed_rows_per_second: 1000.0,
            sources: vec![SourceProgress {
                backlog: Some(Backlog { done, total: 4, unit: "files" }),
                ..Default::default()
            }],
            ..Default::default()
        };
        assert_eq!(c.line(&p(0, 10, 1)), "batch 0: 10 rows (10 so far), 1/4 files, 1000 rows/s");
        assert_eq!(c.line(&p(1, 5, 2)), "batch 1: 5 rows (15 so far), 2/4 files, 1000 rows/s");
    }
}
