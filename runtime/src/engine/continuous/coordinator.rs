//! The epoch coordinator: the query thread of a continuous query (see the module docs of
//! [`super`] for the design and the order of an epoch's commit).

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use arrow_array::RecordBatch;
use serde_json::Value;

use super::stage::{Stage, StageCell};
use super::task::{Control, EpochReport, Message, Task, IDLE_POLL};
use super::{ContinuousTrigger, EpochProgress};
use crate::engine::checkpoint::QueryCheckpoint;
use crate::engine::microbatch::InputSlot;
use crate::engine::{
    listener::Observer, BatchContext, Plan, PlanConfig, QueryProgress, Shared, SourceProgress, RECENT_PROGRESS,
};
use crate::error::{Error, Result};
use crate::sink::SinkImpl;
use crate::source::continuous::{partition_positions, PartitionReader, MAX_VECTOR_ROWS};
use crate::source::{Offset, SourceImpl};
use crate::OutputMode;

/// Messages in flight from the tasks before a task waits for the coordinator (backpressure:
/// a sink slower than the sources slows the tasks down instead of buffering without bound).
/// 1 024 vectors is about 8 M rows at the largest vector size, a few ms of work at the
/// smallest.
const CHANNEL_CAPACITY: usize = 1_024;

/// How long replaying a logged epoch may wait for its rows before it fails (a source that
/// lost them would otherwise hang the restart).
const REPLAY_TIMEOUT: Duration = Duration::from_secs(60);

/// A continuous query's execution (the query thread).
pub(crate) struct Continuous {
    pub observer: Observer,
    pub id: String,
    pub run_id: String,
    pub name: String,
    pub output_mode: OutputMode,
    /// The stream inputs, in declaration order.
    pub sources: Vec<Box<dyn SourceImpl>>,
    /// The static inputs (name, source), in declaration order.
    pub statics: Vec<(&'static str, Box<dyn SourceImpl>)>,
    /// Per declared input, where its rows come from.
    pub slots: Vec<InputSlot>,
    pub sink: Box<dyn SinkImpl>,
    /// Builds one plan per task (and one for a replayed epoch).
    pub make_plan: fn(&PlanConfig) -> Box<dyn Plan>,
    pub config: PlanConfig,
    pub trigger: ContinuousTrigger,
    pub output_schema: arrow_schema::SchemaRef,
    pub checkpoint: Option<QueryCheckpoint>,
    pub shared: Arc<Shared>,
    /// Where epochs' processing times come from (the builder's clock).
    pub clock: Arc<dyn crate::clock::Clock>,
}

/// What the coordinator knows of an epoch whose markers are still coming in.
struct Pending {
    /// Per task, its report once it passed the marker.
    reports: Vec<Option<EpochReport>>,
    /// Output rows, for a sink that takes whole epochs.
    rows: Vec<RecordBatch>,
    output_rows: u64,
    opened: Instant,
}

impl Pending {
    fn new(tasks: usize, opened: Instant) -> Self {
        Pending { reports: (0..tasks).map(|_| None).collect(), rows: Vec::new(), output_rows: 0, opened }
    }
    fn complete(&self) -> bool {
        self.reports.iter().all(Option::is_some)
    }
}

/// A running task: its thread, to wake it and to join it.
struct TaskHandle {
    /// The stream source (index into `sources`) it reads a partition of.
    source: usize,
    thread: JoinHandle<()>,
}

impl Continuous {
    pub(crate) fn run(mut self) {
        self.observer.started();
        let mut result = self.run_loop();
        if let Some(mut cp) = self.checkpoint.take() {
            let flushed = cp.flush();
            drop(cp);
            if result.is_ok() {
                result = flushed;
            }
        }
        if let Some(t) = self.trigger.ticker() {
            t.close();
        }
        crate::engine::execution::terminate(
            &self.name,
            &mut self.sources,
            &mut self.statics,
            &self.observer,
            &self.shared,
            result,
        );
    }

    fn stopped(&self) -> bool {
        self.shared.stop.load(Ordering::SeqCst)
    }

    /// Every static input read whole, by declared input (`None` for the streams).
    fn read_statics(&mut self) -> Result<Arc<Vec<Option<Vec<RecordBatch>>>>> {
        let mut out: Vec<Option<Vec<RecordBatch>>> = vec![None; self.slots.len()];
        for (i, slot) in self.slots.iter().enumerate() {
            let InputSlot::Static(k) = *slot else { continue };
            let (name, s) = &mut self.statics[k];
            out[i] = Some(crate::engine::execution::read_static(name, s)?);
        }
        Ok(Arc::new(out))
    }

    /// The declared input of stream source `j`.
    fn input_of(&self, j: usize) -> usize {
        self.slots.iter().position(|s| matches!(s, InputSlot::Stream(k) if *k == j)).unwrap_or(0)
    }

    /// The readers of every stream source from `committed`, as (source, reader).
    fn readers(&mut self, committed: &[Option<Offset>]) -> Result<Vec<(usize, Box<dyn PartitionReader>)>> {
        let mut out = Vec::new();
        for (j, (s, start)) in self.sources.iter_mut().zip(committed).enumerate() {
            let description = s.description();
            let start = start.as_ref().map(|o| partition_positions(&o.0, None, &description)).transpose()?;
            let readers = s.continuous_readers(start.as_deref())?.ok_or_else(|| {
                Error::Plan(format!(
                    "{description} cannot run in continuous mode (the rate, memory, file, socket and Kafka sources \
                     can); use a micro-batch trigger for this query"
                ))
            })?;
            out.extend(readers.into_iter().map(|r| (j, r)));
        }
        Ok(out)
    }

    fn run_loop(&mut self) -> Result<()> {
        let n = self.sources.len();
        let mut committed: Vec<Option<Offset>> = vec![None; n];
        let mut next_epoch = 0;
        let mut rerun = None;
        let mut rerun_timestamp = None;
        // A stateful query's plan runs once, in the stage (see `stage.rs`); a stateless one's
        // runs in every task.
        let mut stage = Stage::for_plan((self.make_plan)(&self.config), self.output_mode);
        if let Some(cp) = &mut self.checkpoint {
            let resume = cp.resume(n)?;
            for (s, logs) in self.sources.iter_mut().zip(resume.source_logs) {
                if !logs.is_empty() {
                    s.restore_log(logs).map_err(|e| e.context(format!("restoring source {}", s.description())))?;
                }
            }
            if let Some(stage) = &mut stage {
                stage.restore(cp, resume.state_version, resume.watermarks)?;
            }
            committed = resume.committed;
            next_epoch = resume.next_batch;
            rerun = resume.rerun;
            rerun_timestamp = resume.rerun_timestamp_ms;
            tracing::info!(query = %self.name, next_epoch, rerun = rerun.is_some(), "resuming from checkpoint");
        }
        let statics = self.read_statics()?;
        if let Some((epoch, ends)) = rerun {
            let timestamp_ms = rerun_timestamp.unwrap_or_else(|| self.clock.now_ms());
            self.replay(epoch, &committed, &ends, &statics, stage.as_mut(), timestamp_ms)?;
            committed = ends;
            next_epoch = epoch + 1;
        }
        self.run_epochs(committed, next_epoch, statics, stage)
    }

    /// Runs a logged, uncommitted epoch again with exactly its offsets, on this thread.
    fn replay(
        &mut self,
        epoch: u64,
        starts: &[Option<Offset>],
        ends: &[Option<Offset>],
        statics: &Arc<Vec<Option<Vec<RecordBatch>>>>,
        stage: Option<&mut Stage>,
        timestamp_ms: i64,
    ) -> Result<()> {
        let _span = tracing::info_span!("replay", query = %self.name, epoch).entered();
        let readers = self.readers(starts)?;
        let mut plan = (self.make_plan)(&self.config);
        let mut by_source: Vec<Vec<Value>> = Vec::with_capacity(ends.len());
        for (j, end) in ends.iter().enumerate() {
            let description = self.sources[j].description();
            by_source.push(match end {
                Some(e) => partition_positions(&e.0, None, &description)?,
                None => Vec::new(),
            });
        }
        let mut next_of_source = vec![0usize; ends.len()];
        let mut out = Vec::new();
        // A stateful query's epoch rows, per declared input, for one run of the stage.
        let mut inputs: Vec<Vec<RecordBatch>> = vec![Vec::new(); self.slots.len()];
        for (j, mut reader) in readers {
            let p = next_of_source[j];
            next_of_source[j] += 1;
            let Some(end) = by_source[j].get(p).cloned() else {
                return Err(Error::Checkpoint(format!(
                    "epoch {epoch}: the offset log has {} partitions for {}, the source more",
                    by_source[j].len(),
                    self.sources[j].description()
                )));
            };
            reader.set_end(&end)?;
            let input = self.input_of(j);
            let deadline = Instant::now() + REPLAY_TIMEOUT;
            while reader.position() != end {
                match reader.poll(MAX_VECTOR_ROWS)? {
                    Some(rows) if stage.is_some() => inputs[input].push(rows),
                    Some(rows) => {
                        let inputs = inputs_for(statics, input, vec![rows]);
                        let ctx = BatchContext::new(epoch, self.output_mode);
                        out.extend(
                            plan.run_batch(&ctx, &inputs).map_err(|e| e.context(format!("replaying epoch {epoch}")))?,
                        );
                    }
                    None if Instant::now() >= deadline => {
                        return Err(Error::Execution(format!(
                            "replaying epoch {epoch}: {} did not give the rows up to its logged position {end} \
                             within {REPLAY_TIMEOUT:?}",
                            self.sources[j].description()
                        )))
                    }
                    None => std::thread::sleep(IDLE_POLL),
                }
            }
        }
        let mut next_watermark = None;
        if let Some(stage) = stage {
            // The state of the epoch before, the logged watermarks: the epoch as it first ran.
            let run = self.run_stage(stage, epoch, inputs, statics, timestamp_ms)?;
            out = run.0;
            next_watermark = run.1;
        }
        let rows: u64 = out.iter().map(|b| b.num_rows() as u64).sum();
        self.deliver(epoch, out)?;
        if let Some(cp) = &mut self.checkpoint {
            cp.log_commit(epoch, next_watermark)?;
        }
        tracing::info!(query = %self.name, epoch, rows, "replayed an uncommitted epoch");
        Ok(())
    }

    /// Runs a replayed epoch's rows through the stage as one micro-batch (one vector, then the
    /// epoch's end) and makes its state version durable (its offsets were logged before): the
    /// output and the next watermark.
    fn run_stage(
        &mut self,
        stage: &mut Stage,
        epoch: u64,
        inputs: Vec<Vec<RecordBatch>>,
        statics: &[Option<Vec<RecordBatch>>],
        timestamp_ms: i64,
    ) -> Result<(Vec<RecordBatch>, Option<i64>)> {
        stage.begin_epoch(epoch, timestamp_ms);
        let has_rows = inputs.iter().flatten().any(|b| b.num_rows() > 0);
        let inputs: Vec<Vec<RecordBatch>> = inputs
            .into_iter()
            .zip(statics)
            .map(|(rows, st)| match st {
                Some(st) => st.clone(),
                None => rows,
            })
            .collect();
        let mut rows = if has_rows { stage.run_vector(&inputs)? } else { Vec::new() };
        let end = stage.end_epoch(&empty_inputs(statics))?;
        rows.extend(end.rows);
        if let (Some(cp), Some(changes)) = (&self.checkpoint, end.changes) {
            cp.commit_state(epoch, changes)?;
        }
        Ok((rows, end.next_watermark))
    }

    /// Output rows of epoch `epoch` for the sink: to it right away if it takes rows as they
    /// come, else kept for the epoch's commit.
    fn emit(&mut self, p: &mut Pending, epoch: u64, rows: RecordBatch) -> Result<()> {
        if rows.num_rows() == 0 {
            return Ok(());
        }
        p.output_rows += rows.num_rows() as u64;
        if self.sink.takes_rows() {
            self.sink
                .add_rows(epoch, &rows, self.output_mode)
                .map_err(|e| e.context(format!("sink {} at epoch {epoch}", self.sink.description())))
        } else {
            p.rows.push(rows);
            Ok(())
        }
    }

    /// Hands a whole epoch to the sink (a replay, or a sink that takes whole epochs).
    fn deliver(&mut self, epoch: u64, rows: Vec<RecordBatch>) -> Result<()> {
        let what = |e: Error, sink: &dyn SinkImpl| e.context(format!("sink {} at epoch {epoch}", sink.description()));
        if self.sink.takes_rows() {
            for b in rows.iter().filter(|b| b.num_rows() > 0) {
                self.sink.add_rows(epoch, b, self.output_mode).map_err(|e| what(e, self.sink.as_ref()))?;
            }
            return self.sink.commit_epoch(epoch).map_err(|e| what(e, self.sink.as_ref()));
        }
        // An epoch without output commits without troubling the sink (as a micro-batch run
        // runs no batch without new data).
        if rows.iter().all(|b| b.num_rows() == 0) {
            return Ok(());
        }
        let batch = match rows.len() {
            1 => rows.into_iter().next().unwrap_or_else(|| RecordBatch::new_empty(self.output_schema.clone())),
            _ => arrow_select::concat::concat_batches(&self.output_schema, &rows)?,
        };
        self.sink.add_batch(epoch, &batch, self.output_mode).map_err(|e| what(e, self.sink.as_ref()))
    }

    /// Starts the tasks and coordinates epochs until the query stops.
    fn run_epochs(
        &mut self,
        mut committed: Vec<Option<Offset>>,
        first_epoch: u64,
        statics: Arc<Vec<Option<Vec<RecordBatch>>>>,
        mut stage: Option<Stage>,
    ) -> Result<()> {
        let readers = self.readers(&committed)?;
        let tasks_n = readers.len();
        let control = Arc::new(Control { open_epoch: AtomicU64::new(first_epoch), exit: AtomicBool::new(false) });
        let (tx, rx) = sync_channel(CHANNEL_CAPACITY);
        // The tasks give their rows to a sink that takes rows themselves: a map-like query's
        // from their plans, a stateful one's from the stage they share.
        let writer = self.sink.row_writer();
        let now_ms = self.clock.now_ms();
        let cell = stage.take().map(|mut stage| {
            stage.begin_epoch(first_epoch, now_ms);
            Arc::new(Mutex::new(StageCell::new(stage, writer.clone(), statics.clone())))
        });
        let mut tasks = Vec::with_capacity(tasks_n);
        for (index, (source, reader)) in readers.into_iter().enumerate() {
            let task = Task {
                index,
                input: self.input_of(source),
                statics: statics.clone(),
                reader,
                plan: cell.is_none().then(|| (self.make_plan)(&self.config)),
                stage: cell.clone(),
                output_mode: self.output_mode,
                writer: if cell.is_none() { writer.clone() } else { None },
                epoch: first_epoch,
                control: control.clone(),
                busy_wait: self.trigger.busy_wait(),
                tx: tx.clone(),
            };
            let thread = std::thread::Builder::new()
                .name(format!("flowgate-{}-task-{index}", self.name))
                .spawn(move || task.run())
                .map_err(|e| Error::io("starting a continuous task", e))?;
            tasks.push(TaskHandle { source, thread });
        }
        drop(tx);
        tracing::info!(query = %self.name, tasks = tasks_n, first_epoch, "continuous tasks started");
        self.shared.update(|st| st.message = "Processing new data".into());
        let result = self.coordinate(&mut committed, first_epoch, &tasks, &control, &rx, cell.as_deref());
        // Whatever happened, the tasks end: the last epoch is open (or the query failed).
        control.open_epoch.fetch_add(1, Ordering::AcqRel);
        control.exit.store(true, Ordering::Release);
        drop(rx);
        for t in &tasks {
            t.thread.thread().unpark();
        }
        for t in tasks {
            let _ = t.thread.join();
        }
        result
    }

    // The coordinator's loop state is these locals; a struct for them would only rename them.
    #[allow(clippy::too_many_arguments)]
    fn coordinate(
        &mut self,
        committed: &mut Vec<Option<Offset>>,
        first_epoch: u64,
        tasks: &[TaskHandle],
        control: &Control,
        rx: &Receiver<Message>,
        stage: Option<&Mutex<StageCell>>,
    ) -> Result<()> {
        let interval = self.trigger.interval().map_err(Error::Plan)?.to_std();
        let ticker = self.trigger.ticker().cloned();
        let mut open = first_epoch;
        let mut to_commit = first_epoch;
        let mut pending: BTreeMap<u64, Pending> = BTreeMap::new();
        pending.insert(open, Pending::new(tasks.len(), Instant::now()));
        let mut deadline = Instant::now() + interval;
        // Epochs closed for a ticker request, waiting to be committed.
        let mut ticked: VecDeque<u64> = VecDeque::new();
        let mut stopping = false;
        let mut last_commit: Option<Instant> = None;
        loop {
            // Open the next epoch when its time came (or the ticker asked, or the query stops).
            let now = Instant::now();
            let due = match &ticker {
                Some(t) => t.pending() > ticked.len() as u64,
                None => now >= deadline,
            };
            if !stopping && (due || self.stopped()) {
                stopping = self.stopped();
                if ticker.is_some() && due && !stopping {
                    ticked.push_back(open);
                }
                open += 1;
                pending.insert(open, Pending::new(tasks.len(), now));
                // Open before exit (see `Task::run_loop`): a task that sees `exit` sees the
                // last epoch too.
                control.open_epoch.store(open, Ordering::Release);
                if stopping {
                    control.exit.store(true, Ordering::Release);
                }
                for t in tasks {
                    t.thread.thread().unpark();
                }
                // The next epoch ends on the interval's grid; one that overran ends one
                // interval after now.
                deadline += interval;
                if deadline <= now {
                    deadline = now + interval;
                }
            }
            if stopping && to_commit == open {
                return Ok(());
            }
            let wait = match &ticker {
                Some(_) => IDLE_POLL,
                None => deadline.saturating_duration_since(Instant::now()).min(IDLE_POLL * 10),
            };
            match rx.recv_timeout(wait) {
                Ok(Message::Rows { epoch, rows }) => {
                    let p = pending.get_mut(&epoch).ok_or_else(|| {
                        Error::Internal(format!("rows of epoch {epoch}, which is not open (committing {to_commit})"))
                    })?;
                    self.emit(p, epoch, rows)?;
                }
                Ok(Message::Marker { task, epoch, report }) => {
                    let p = pending
                        .get_mut(&epoch)
                        .ok_or_else(|| Error::Internal(format!("a marker of epoch {epoch}, which is not open")))?;
                    p.output_rows += report.rows_out;
                    p.reports[task] = Some(report);
                }
                Ok(Message::Failed { task, error }) => {
                    return Err(error.context(format!("continuous task {task}")));
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => {
                    return Err(Error::Internal("every continuous task ended without a marker".into()));
                }
            }
            // Commit, in order, every epoch all tasks have passed.
            while pending.get(&to_commit).is_some_and(Pending::complete) && to_commit < open {
                let Some(p) = pending.remove(&to_commit) else { break };
                let ends = self.commit(to_commit, committed, tasks, p, last_commit, stage)?;
                last_commit = Some(Instant::now());
                *committed = ends;
                if ticked.front() == Some(&to_commit) {
                    ticked.pop_front();
                    if let Some(t) = &ticker {
                        t.served(to_commit);
                    }
                }
                to_commit += 1;
            }
        }
    }

    /// Commits epoch `epoch` (offset log, sink, commit log) and reports its progress;
    /// returns the sources' offsets after it.
    // As `coordinate`.
    #[allow(clippy::too_many_arguments)]
    fn commit(
        &mut self,
        epoch: u64,
        starts: &[Option<Offset>],
        tasks: &[TaskHandle],
        mut p: Pending,
        last_commit: Option<Instant>,
        stage: Option<&Mutex<StageCell>>,
    ) -> Result<Vec<Option<Offset>>> {
        let _span = tracing::debug_span!("epoch", query = %self.name, epoch).entered();
        let commit_start = Instant::now();
        let reports: Vec<EpochReport> = std::mem::take(&mut p.reports).into_iter().flatten().collect();
        let mut ends: Vec<Option<Offset>> = Vec::with_capacity(self.sources.len());
        let mut rows_per_source = vec![0u64; self.sources.len()];
        for (j, rows) in rows_per_source.iter_mut().enumerate() {
            let positions: Vec<Value> = tasks
                .iter()
                .zip(&reports)
                .filter(|(t, _)| t.source == j)
                .map(|(_, r)| {
                    *rows += r.rows_in;
                    r.position.clone()
                })
                .collect();
            ends.push(Some(Offset(Value::Array(positions))));
        }
        // A stateful epoch's end: its eviction and its state changes (its rows ran as they
        // came), and the next epoch's vectors that waited for it run.
        let now_ms = self.clock.now_ms();
        let output = stage.map(|s| lock(s).end_epoch(now_ms)).transpose()?;
        // A stateful epoch's processing time is the one its vectors ran with.
        let (watermarks, timestamp_ms) = match &output {
            Some(o) => (o.watermarks, o.timestamp_ms),
            None => (None, now_ms),
        };
        let mut state_operators = Vec::new();
        let mut owes_eviction = false;
        if let Some(cp) = &mut self.checkpoint {
            let mut logs = Vec::with_capacity(self.sources.len());
            for ((s, start), end) in self.sources.iter().zip(starts).zip(&ends) {
                logs.push(match end {
                    Some(end) => s.batch_log(start.as_ref(), end)?,
                    None => None,
                });
            }
            // An epoch's processing time: when it was logged (a replay runs with it again).
            cp.log_offsets(epoch, &ends, watermarks, logs, timestamp_ms)?;
        }
        let mut next_watermark = None;
        if let Some(output) = output {
            if let (Some(cp), Some(changes)) = (&self.checkpoint, output.end.changes) {
                cp.commit_state(epoch, changes)?;
            }
            p.output_rows += output.output_rows;
            p.rows.extend(output.rows);
            next_watermark = output.end.next_watermark;
            state_operators = output.state_operators;
            owes_eviction = output.owes_eviction;
        }
        if let Some(cp) = &mut self.checkpoint {
            // Nothing reaches a sink that takes whole epochs before the offsets are durable.
            cp.wait_offsets()?;
        }
        self.deliver(epoch, p.rows)?;
        if let Some(cp) = &mut self.checkpoint {
            cp.log_commit(epoch, next_watermark)?;
        }
        let rows: u64 = rows_per_source.iter().sum();
        let epoch_ms = commit_start.duration_since(p.opened).as_millis() as u64;
        let commit_ms = commit_start.elapsed().as_millis() as u64;
        let since_last = last_commit.map(|l| l.elapsed().as_secs_f64()).unwrap_or(0.0);
        let timed: u64 = reports.iter().map(|r| r.timed_vectors).sum();
        let micros = |d: Duration| d.as_micros() as u64;
        let epoch_progress = EpochProgress {
            tasks: reports.len(),
            rows_per_task: reports.iter().map(|r| r.rows_in).collect(),
            max_latency_micros: reports.iter().filter_map(|r| r.max_latency).max().map(micros),
            mean_latency_micros: (timed > 0)
                .then(|| micros(reports.iter().map(|r| r.sum_latency).sum::<Duration>()) / timed),
            max_lag_micros: reports.iter().filter_map(|r| r.lag).max().map(micros),
        };
        // Idle: every task had read all its source had, and the next epoch owes no eviction
        // (`process_all_available` returns after the epoch that evicts, as a micro-batch run
        // returns after its no-data batch).
        let caught_up = reports.iter().all(|r| r.caught_up) && !owes_eviction;
        let mut duration_ms = BTreeMap::new();
        duration_ms.insert("epoch".to_string(), epoch_ms);
        duration_ms.insert("commit".to_string(), commit_ms);
        duration_ms.insert("triggerExecution".to_string(), epoch_ms + commit_ms);
        let total = (epoch_ms + commit_ms) as f64 / 1e3;
        let progress = QueryProgress {
            id: self.id.clone(),
            run_id: self.run_id.clone(),
            name: self.name.clone(),
            timestamp: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            batch_id: epoch,
            num_input_rows: rows,
            input_rows_per_second: if since_last > 0.0 { rows as f64 / since_last } else { 0.0 },
            processed_rows_per_second: if total > 0.0 { rows as f64 / total } else { 0.0 },
            duration_ms,
            watermark: watermarks.map(|w| crate::Timestamp(w.1)),
            next_watermark: next_watermark.map(crate::Timestamp),
            state_operators,
            sources: self
                .sources
                .iter()
                .zip(starts)
                .zip(&ends)
                .zip(&rows_per_source)
                .map(|(((s, start), end), &rows)| SourceProgress {
                    description: s.description(),
                    start_offset: start.as_ref().map(Offset::to_string),
                    end_offset: end.as_ref().map(Offset::to_string),
                    num_input_rows: rows,
                    backlog: None,
                })
                .collect(),
            sink: self.sink.description(),
            num_output_rows: p.output_rows,
            epoch: Some(epoch_progress),
        };
        tracing::debug!(query = %self.name, epoch, rows, "epoch committed");
        self.observer.progress(&progress);
        self.shared.update(|st| {
            st.recent.push_back(progress);
            while st.recent.len() > RECENT_PROGRESS {
                st.recent.pop_front();
            }
            if caught_up {
                // Every task had read all its source had when it passed the marker.
                st.idle_checks += 1;
                st.message = "Waiting for data to arrive".into();
            } else {
                st.message = "Processing new data".into();
            }
        });
        Ok(ends)
    }
}

/// The stage, locked. A task that panicked while it held the lock has failed the query
/// already; what the stage holds then is not read again but to end.
fn lock(stage: &Mutex<StageCell>) -> MutexGuard<'_, StageCell> {
    stage.lock().unwrap_or_else(|e| e.into_inner())
}

/// A plan's inputs without stream rows: the static inputs' rows, empty streams.
fn empty_inputs(statics: &[Option<Vec<RecordBatch>>]) -> Vec<Vec<RecordBatch>> {
    statics.iter().map(|s| s.clone().unwrap_or_default()).collect()
}

/// A plan's inputs for vectors of input `input`: the static inputs' rows, empty streams.
pub(super) fn inputs_for(
    statics: &[Option<Vec<RecordBatch>>],
    input: usize,
    rows: Vec<RecordBatch>,
) -> Vec<Vec<RecordBatch>> {
    let mut rows = Some(rows);
    (0..statics.len())
        .map(|i| if i == input { rows.take().unwrap_or_default() } else { statics[i].clone().unwrap_or_default() })
        .collect()
}
