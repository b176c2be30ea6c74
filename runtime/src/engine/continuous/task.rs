//! A continuous task: one source partition, read forward, through its own instance of the
//! query's plan, until told to exit.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::SyncSender;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arrow_array::RecordBatch;
use serde_json::Value;

use super::stage::StageCell;
use crate::engine::{BatchContext, Plan};
use crate::error::Result;
use crate::sink::RowWriter;
use crate::source::continuous::{PartitionReader, MAX_VECTOR_ROWS};
use crate::OutputMode;

/// How long a task whose source can neither say when its next row is due nor wake it sleeps
/// before polling again; also the longest sleep of any task, so a missed wake-up costs at
/// most this. Spark's continuous readers poll every 1 ms; a sleeping task costs nothing.
pub(super) const IDLE_POLL: Duration = Duration::from_millis(1);

/// The most rows a task with a backlog takes at once (whole vectors): the aggregation's
/// [`crate::ops::aggregate::PARALLEL_MIN_ROWS`], so a stateful stage folds a backlog in
/// parallel as a micro-batch would, instead of one 8 Ki-row vector at a time on one thread.
const BACKLOG_ROWS: usize = 8 * MAX_VECTOR_ROWS;

/// What a task tells the coordinator, in order on one channel.
pub(super) enum Message {
    /// Output rows of epoch `epoch`.
    Rows { epoch: u64, rows: RecordBatch },
    /// The task passed the marker of `epoch`: everything it produced in the epoch was sent.
    Marker { task: usize, epoch: u64, report: EpochReport },
    /// The task failed; it has stopped.
    Failed { task: usize, error: crate::Error },
}

/// A task's account of one epoch.
pub(super) struct EpochReport {
    /// Its partition's position after the epoch.
    pub position: Value,
    pub rows_in: u64,
    /// Output rows the task gave the sink's row writer itself.
    pub rows_out: u64,
    /// Whether a poll that looked at the source found nothing to read after the epoch's last
    /// rows (it was caught up with its source).
    pub caught_up: bool,
    /// Largest and summed latency over vectors with a known availability time, and how many.
    pub max_latency: Option<Duration>,
    pub sum_latency: Duration,
    pub timed_vectors: u64,
    /// How overdue the partition's next row was at the marker.
    pub lag: Option<Duration>,
}

/// What every task shares with the coordinator.
pub(super) struct Control {
    /// The epoch tasks are in: a task whose epoch is below it passes markers up to it.
    pub open_epoch: AtomicU64,
    /// Set once the last epoch was opened: a task that has passed every marker exits.
    pub exit: AtomicBool,
}

pub(super) struct Task {
    pub index: usize,
    /// Which declared input the partition belongs to.
    pub input: usize,
    /// The rows of every static input, by declared input (`None` for streams).
    pub statics: Arc<Vec<Option<Vec<RecordBatch>>>>,
    pub reader: Box<dyn PartitionReader>,
    /// The task's instance of the plan; `None` for a stateful query, whose tasks share the
    /// stage's one instance.
    pub plan: Option<Box<dyn Plan>>,
    /// A stateful query's stage, on which the task runs its vectors (see `stage.rs`).
    pub stage: Option<Arc<Mutex<StageCell>>>,
    pub output_mode: OutputMode,
    /// The sink's row writer, for a map-like query whose sink takes rows: the task gives its
    /// output to the sink itself instead of sending it to the coordinator.
    pub writer: Option<Arc<dyn RowWriter>>,
    pub epoch: u64,
    pub control: Arc<Control>,
    pub tx: SyncSender<Message>,
    /// Waits for a due row up to this long are spun, not slept
    /// ([`super::ContinuousTrigger::with_busy_wait`]).
    pub busy_wait: Duration,
}

impl Task {
    pub(super) fn run(mut self) {
        if let Err(error) = self.run_loop() {
            let _ = self.tx.send(Message::Failed { task: self.index, error });
        }
    }

    fn run_loop(&mut self) -> Result<()> {
        reduce_timer_slack();
        let woken = self.reader.wake_on_data(std::thread::current());
        let mut report = self.fresh_report();
        loop {
            // Markers first: a vector read after the coordinator opened epoch `e + 1` belongs
            // to it (or later), never to `e`.
            if !self.pass_markers(&mut report) {
                return Ok(()); // the coordinator is gone: the query stopped
            }
            if self.control.exit.load(Ordering::Acquire) {
                // The coordinator opened the last epoch before it set `exit`: its marker is
                // visible now, and passed before the task ends.
                self.pass_markers(&mut report);
                return Ok(());
            }
            match self.reader.poll(MAX_VECTOR_ROWS)? {
                Some(rows) => {
                    report.caught_up = false;
                    let since = self.reader.available_since();
                    // A full vector means a backlog: take what else is there at once (up to
                    // BACKLOG_ROWS), so the plan runs on it in one call, on all cores where
                    // it can. A task that keeps up gets a vector and then nothing.
                    let mut n = rows.num_rows();
                    let mut vectors = vec![rows];
                    while (MAX_VECTOR_ROWS..BACKLOG_ROWS).contains(&n) {
                        let Some(more) = self.reader.poll(MAX_VECTOR_ROWS)? else { break };
                        n += more.num_rows();
                        vectors.push(more);
                    }
                    report.rows_in += n as u64;
                    report.rows_out += self.process(vectors)?;
                    if let Some(since) = since {
                        let latency = since.elapsed();
                        report.max_latency = Some(report.max_latency.map_or(latency, |m| m.max(latency)));
                        report.sum_latency += latency;
                        report.timed_vectors += 1;
                    }
                }
                None => {
                    report.caught_up |= self.reader.looked();
                    let due = self.reader.next_due();
                    let wait = match due {
                        Some(due) => due.saturating_duration_since(Instant::now()).min(IDLE_POLL),
                        None if woken => IDLE_POLL * 10,
                        None => IDLE_POLL,
                    };
                    if let (Some(due), true) = (due, !wait.is_zero() && wait <= self.busy_wait) {
                        // Spun, bounded by the wait; a marker opened meanwhile is passed first.
                        let open = self.control.open_epoch.load(Ordering::Acquire);
                        while Instant::now() < due && self.control.open_epoch.load(Ordering::Acquire) == open {
                            std::hint::spin_loop();
                        }
                    } else if !wait.is_zero() {
                        // Unparked early by the coordinator (a marker) or the source (rows).
                        std::thread::park_timeout(wait);
                    }
                }
            }
        }
    }

    /// Sends the markers of every epoch before the open one; false if the coordinator is gone.
    fn pass_markers(&mut self, report: &mut EpochReport) -> bool {
        let open = self.control.open_epoch.load(Ordering::Acquire);
        while self.epoch < open {
            report.position = self.reader.position();
            report.lag = self.reader.next_due().map(|due| Instant::now().saturating_duration_since(due));
            let done = std::mem::replace(report, self.fresh_report());
            if self.tx.send(Message::Marker { task: self.index, epoch: self.epoch, report: done }).is_err() {
                return false;
            }
            self.epoch += 1;
        }
        true
    }

    fn fresh_report(&self) -> EpochReport {
        EpochReport {
            position: Value::Null,
            rows_in: 0,
            rows_out: 0,
            caught_up: false,
            max_latency: None,
            sum_latency: Duration::ZERO,
            timed_vectors: 0,
            lag: None,
        }
    }

    /// Runs the plan's generated code on vectors of rows (a stateful query's on the stage it
    /// shares): the output rows the task gave the sink's row writer.
    fn process(&mut self, rows: Vec<RecordBatch>) -> Result<u64> {
        let Some(plan) = self.plan.as_mut() else {
            if let Some(stage) = &self.stage {
                // Before this epoch's marker, so the epoch ends after its vectors ran. A vector
                // without rows (an empty file) still runs a complete-mode epoch, as it runs a
                // micro-batch.
                stage
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .offer(self.epoch, self.input, rows)
                    .map_err(|e| e.context(format!("task {}, epoch {}", self.index, self.epoch)))?;
            }
            return Ok(0);
        };
        let inputs = super::coordinator::inputs_for(&self.statics, self.input, rows);
        let ctx = BatchContext::new(self.epoch, self.output_mode);
        let out = plan
            .run_batch(&ctx, &inputs)
            .map_err(|e| e.context(format!("task {}, epoch {}", self.index, self.epoch)))?;
        let mut written = 0;
        for rows in out.into_iter().filter(|b| b.num_rows() > 0) {
            if let Some(w) = &self.writer {
                // Before this epoch's marker, so the epoch commits after its rows.
                w.add_rows(self.epoch, &rows, self.output_mode)
                    .map_err(|e| e.context(format!("sink at epoch {} (task {})", self.epoch, self.index)))?;
                written += rows.num_rows() as u64;
            } else if self.tx.send(Message::Rows { epoch: self.epoch, rows }).is_err() {
                break;
            }
        }
        Ok(written)
    }
}

/// Asks the kernel to expire this thread's timers within 1 µs of when they are due (Linux's
/// `PR_SET_TIMERSLACK`; the default slack is 50 µs, which a task sleeping until its next row
/// adds to that row's latency). Elsewhere, and if the call fails, the default stays.
fn reduce_timer_slack() {
    #[cfg(target_os = "linux")]
    {
        /// 1 µs, in ns: well under the 10–20 µs between a partition's rows at 100 000 rows/s.
        const TIMER_SLACK_NS: libc::c_ulong = 1_000;
        // SAFETY: PR_SET_TIMERSLACK takes one unsigned long (the slack in ns) and changes only
        // the calling thread's timer slack; the other arguments are ignored.
        let rc = unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, TIMER_SLACK_NS, 0, 0, 0) };
        if rc != 0 {
            tracing::debug!(error = %std::io::Error::last_os_error(), "PR_SET_TIMERSLACK failed");
        }
    }
}
