//! The micro-batch loop (after Spark's `MicroBatchExecution`): ask sources for their latest
//! offsets, run a batch over the new range, hand the result to the sink, commit, report.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration as StdDuration, Instant};

use arrow_array::RecordBatch;

use super::{
    BatchContext, Plan, PlanExt, QueryProgress, Shared, SourceProgress, Trigger, POLL_INTERVAL, RECENT_PROGRESS,
};
use crate::error::{Error, Result};
use crate::sink::SinkImpl;
use crate::source::{Offset, ReadLimit, SourceImpl};
use crate::OutputMode;

/// Where a declared input's rows come from.
#[derive(Clone, Copy, Debug)]
pub(crate) enum InputSlot {
    /// A stream: `sources[j]`, with offsets in the log.
    Stream(usize),
    /// A static table: `statics[k]`, read once.
    Static(usize),
}

pub(crate) struct MicroBatch {
    pub observer: super::listener::Observer,
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
    pub plan: Box<dyn Plan>,
    pub trigger: Trigger,
    pub output_schema: arrow_schema::SchemaRef,
    pub no_data_batches: bool,
    pub checkpoint: Option<super::checkpoint::QueryCheckpoint>,
    pub shared: Arc<Shared>,
    /// Where batch timestamps come from ([`crate::clock`]).
    pub clock: Arc<dyn crate::clock::Clock>,
}

/// The two watermarks a batch runs with (microseconds).
#[derive(Clone, Copy, Debug)]
struct Watermarks {
    late: i64,
    eviction: i64,
}

/// Offsets of every source after the last committed batch.
type Offsets = Vec<Option<Offset>>;

fn ms(d: StdDuration) -> u64 {
    d.as_millis() as u64
}

impl MicroBatch {
    pub(crate) fn run(mut self) {
        self.observer.started();
        let mut result = self.run_loop();
        if let Some(mut cp) = self.checkpoint.take() {
            // The last batch's commit entry is durable, and the snapshot thread done, before
            // the query reports it stopped.
            let flushed = cp.flush();
            drop(cp);
            if result.is_ok() {
                result = flushed;
            }
        }
        super::execution::terminate(
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

    /// Sleeps until `deadline` unless the query is stopped first.
    fn sleep_until(&self, deadline: Instant) {
        let mut st = self.shared.lock();
        while !self.stopped() && Instant::now() < deadline {
            st = self.shared.wait_until(st, deadline);
        }
    }

    /// Until when an idle query under the default trigger sleeps: the earliest time a source
    /// can have new data; a source that cannot tell is polled after [`POLL_INTERVAL`].
    fn idle_deadline(&self) -> Instant {
        let poll = Instant::now() + POLL_INTERVAL;
        self.sources.iter().map(|s| s.next_data_due().unwrap_or(poll)).min().unwrap_or(poll)
    }

    fn run_loop(&mut self) -> Result<()> {
        let mut committed: Offsets = vec![None; self.sources.len()];
        let mut next_batch: u64 = 0;
        let mut last_trigger_start: Option<Instant> = None;
        // Effective watermark of the last batch run, and the one the next batch will use
        // (Spark starts both at 0, the epoch).
        let mut wm_last: i64 = 0;
        let mut wm_next: i64 = 0;
        let mut rerun = None;
        let mut rerun_timestamp = None;
        // Whether the sources still hold the last batch (see `run_batch`: with a checkpoint
        // they forget a batch once its commit entry is durable).
        let mut sources_behind = false;
        if let Some(cp) = &mut self.checkpoint {
            let resume = cp.resume(self.sources.len())?;
            for (s, logs) in self.sources.iter_mut().zip(resume.source_logs) {
                if !logs.is_empty() {
                    s.restore_log(logs).map_err(|e| e.context(format!("restoring source {}", s.description())))?;
                }
            }
            self.plan.set_tracking(true);
            if resume.state_version > 0 {
                let state = cp.load_state(resume.state_version)?;
                self.plan.restore(state).map_err(|e| e.context(format!("restoring state from {}", cp.describe())))?;
            }
            if let Some((late, eviction)) = resume.watermarks {
                wm_last = late;
                wm_next = eviction;
            }
            committed = resume.committed;
            next_batch = resume.next_batch;
            rerun = resume.rerun;
            rerun_timestamp = resume.rerun_timestamp_ms;
            tracing::info!(query = %self.name, next_batch, rerun = rerun.is_some(), "resuming from checkpoint");
        }
        let static_rows = self.read_statics()?;
        if self.trigger == Trigger::AvailableNow {
            for s in &mut self.sources {
                s.prepare_available_now()?;
            }
        }
        let limit = if self.trigger == Trigger::Once { ReadLimit::All } else { ReadLimit::Default };
        let mut next_tick = Instant::now();
        let has_watermark = !self.plan.watermarks().is_empty();
        let stateful = !self.plan.state_operators().is_empty();
        // After a restart, a watermark that moved in the last committed batch still owes its
        // no-data batch.
        let mut no_data_due = rerun.is_none()
            && self.no_data_batches
            && stateful
            && self.output_mode != OutputMode::Complete
            && wm_next > wm_last;
        loop {
            if self.stopped() {
                return Ok(());
            }
            if let Trigger::ProcessingTime(interval) = self.trigger {
                self.sleep_until(next_tick);
                if self.stopped() {
                    return Ok(());
                }
                // Batches start on a grid of intervals. A batch that starts late (the previous one
                // overran) runs at once, and the next one takes the next grid point after now, as
                // Spark's ProcessingTimeExecutor does.
                let iv = interval.to_std();
                if iv.is_zero() {
                    next_tick = Instant::now();
                } else {
                    let late_by = Instant::now().saturating_duration_since(next_tick);
                    let skipped = (late_by.as_nanos() / iv.as_nanos()) as u32;
                    next_tick += iv * (skipped + 1);
                }
            }
            let trigger_start = Instant::now();
            let t = super::listener::Phase::start("latestOffset");
            // A batch planned before a restart runs again with exactly its logged offsets.
            let replay = rerun.take();
            let ends: Offsets = match &replay {
                Some((_, ends)) => ends.clone(),
                None => {
                    let mut ends = Vec::with_capacity(self.sources.len());
                    for (s, start) in self.sources.iter_mut().zip(&committed) {
                        let end = s
                            .latest_offset(start.as_ref(), limit)
                            .map_err(|e| e.context(format!("source {}", s.description())))?;
                        ends.push(end.or_else(|| start.clone()));
                    }
                    ends
                }
            };
            let latest_ms = t.finish();
            let has_new = replay.is_some() || ends.iter().zip(&committed).any(|(e, c)| e != c);
            // A batch's processing time: the logged one for a re-run, else the clock's now.
            let timestamp_ms = match &replay {
                Some(_) => rerun_timestamp.take().unwrap_or_else(|| self.clock.now_ms()),
                None => self.clock.now_ms(),
            };
            // A processing-time timeout that is due needs a batch even without new data.
            if !has_new && !no_data_due && self.no_data_batches {
                let mut due = false;
                self.plan.operators().each(&mut |op| {
                    due |= op.next_processing_timeout_ms().is_some_and(|t| t < timestamp_ms);
                });
                no_data_due = due;
            }
            if !has_new && !no_data_due && sources_behind {
                // Idle: make the last commit entry durable and let the sources forget that
                // batch too (a source holding it, such as a full socket buffer, may be why
                // nothing new arrives).
                if let Some(cp) = &mut self.checkpoint {
                    cp.flush()?;
                }
                for (s, end) in self.sources.iter_mut().zip(&committed) {
                    if let Some(end) = end {
                        s.commit(end)?;
                    }
                }
                sources_behind = false;
            }
            if !has_new && !no_data_due {
                self.shared.update(|st| {
                    st.idle_checks += 1;
                    st.message = "Waiting for data to arrive".into();
                });
                self.observer.idle();
                match self.trigger {
                    Trigger::Once | Trigger::AvailableNow => return Ok(()),
                    Trigger::Default => self.sleep_until(self.idle_deadline()),
                    Trigger::ProcessingTime(_) | Trigger::Continuous(_) | Trigger::Invalid(_) => {}
                }
                continue;
            }
            self.shared.update(|st| st.message = "Processing new data".into());
            let batch_id = next_batch;
            let watermarks = has_watermark.then_some(Watermarks { late: wm_last, eviction: wm_next });
            let next = self.run_batch(
                batch_id,
                &committed,
                &ends,
                &static_rows,
                watermarks,
                trigger_start,
                last_trigger_start,
                latest_ms,
                timestamp_ms,
            )?;
            if let Some(next) = next {
                wm_last = wm_next;
                wm_next = next;
                // Spark runs one more batch, without new data, when the watermark moved and a
                // stateful operator could emit or evict with it (never in complete mode).
                no_data_due =
                    self.no_data_batches && stateful && self.output_mode != OutputMode::Complete && wm_next > wm_last;
            } else {
                no_data_due = false;
            }
            last_trigger_start = Some(trigger_start);
            sources_behind = self.checkpoint.is_some();
            committed = ends;
            next_batch += 1;
            if self.trigger == Trigger::Once && replay.is_none() {
                return Ok(());
            }
        }
    }

    /// Reads every static input whole, once, before the first batch (Spark re-plans its static
    /// side per batch; flowgate reads it when the query starts, and again after a restart).
    fn read_statics(&mut self) -> Result<Vec<Vec<RecordBatch>>> {
        let mut out = Vec::with_capacity(self.statics.len());
        for (name, s) in &mut self.statics {
            let rows = super::execution::read_static(name, s)?;
            tracing::info!(query = %self.name, input = %name, rows = rows.iter().map(RecordBatch::num_rows).sum::<usize>(), "static input read");
            out.push(rows);
        }
        Ok(out)
    }

    /// Runs one batch; returns the watermark for the next batch when the query has one.
    #[allow(clippy::too_many_arguments)]
    fn run_batch(
        &mut self,
        batch_id: u64,
        starts: &Offsets,
        ends: &Offsets,
        static_rows: &[Vec<RecordBatch>],
        watermarks: Option<Watermarks>,
        trigger_start: Instant,
        last_trigger_start: Option<Instant>,
        latest_ms: u64,
        timestamp_ms: i64,
    ) -> Result<Option<i64>> {
        let _batch = tracing::info_span!("batch", query = %self.name, batch_id).entered();
        let mut durations = BTreeMap::new();
        durations.insert("latestOffset".to_string(), latest_ms);
        let t = super::listener::Phase::start("walCommit");
        if let Some(cp) = &mut self.checkpoint {
            let mut logs = Vec::with_capacity(self.sources.len());
            for ((s, start), end) in self.sources.iter().zip(starts).zip(ends) {
                logs.push(match end {
                    Some(end) if Some(end) != start.as_ref() => s.batch_log(start.as_ref(), end)?,
                    _ => None,
                });
            }
            cp.log_offsets(batch_id, ends, watermarks.map(|w| (w.late, w.eviction)), logs, timestamp_ms)?;
        }
        t.record(&mut durations);
        let t = super::listener::Phase::start("getBatch");
        let mut streams: Vec<Vec<RecordBatch>> = Vec::with_capacity(self.sources.len());
        let mut source_progress = Vec::with_capacity(self.sources.len());
        for ((s, start), end) in self.sources.iter_mut().zip(starts).zip(ends) {
            let batches = match end {
                Some(end) if Some(end) != start.as_ref() => s
                    .get_batch(start.as_ref(), end)
                    .map_err(|e| e.context(format!("reading batch {batch_id} from {}", s.description())))?,
                _ => Vec::new(),
            };
            let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
            source_progress.push(SourceProgress {
                description: s.description(),
                start_offset: start.as_ref().map(Offset::to_string),
                end_offset: end.as_ref().map(Offset::to_string),
                num_input_rows: rows as u64,
                backlog: s.backlog(end.as_ref()),
            });
            streams.push(batches);
        }
        let mut streams = streams.into_iter().map(Some).collect::<Vec<_>>();
        let inputs: Vec<Vec<RecordBatch>> = self
            .slots
            .iter()
            .map(|slot| match *slot {
                InputSlot::Stream(j) => streams[j].take().unwrap_or_default(),
                InputSlot::Static(k) => static_rows[k].clone(),
            })
            .collect();
        t.record(&mut durations);

        let t = super::listener::Phase::start("addBatch");
        let ctx = BatchContext {
            batch_id,
            output_mode: self.output_mode,
            watermark_for_late: watermarks.map(|w| w.late),
            watermark_for_eviction: watermarks.map(|w| w.eviction),
            batch_timestamp_ms: timestamp_ms,
            mid_epoch: false,
        };
        let out = self.plan.run_batch(&ctx, &inputs).map_err(|e| e.context(format!("running batch {batch_id}")))?;
        drop(inputs);
        let out = if out.len() == 1 {
            out.into_iter().next().unwrap_or_else(|| RecordBatch::new_empty(self.output_schema.clone()))
        } else {
            arrow_select::concat::concat_batches(&self.output_schema, &out)?
        };
        // The state version is written while the sink writes: it only has to be durable before
        // the commit log entry (until then a restart re-runs this batch from the version before
        // it, which this write does not touch); both are joined here, before `log_commit`.
        let changes = match &self.checkpoint {
            Some(cp) if cp.has_state() => Some(self.plan.take_changes()),
            _ => None,
        };
        let output_rows = out.num_rows() as u64;
        let (sink, mode) = (&mut self.sink, self.output_mode);
        let mut add = move || {
            sink.add_batch(batch_id, &out, mode)
                .map_err(|e| e.context(format!("sink {} at batch {batch_id}", sink.description())))
        };
        match (&self.checkpoint, changes) {
            (Some(cp), Some(changes)) => {
                let (state, sink) = std::thread::scope(|scope| {
                    let state = std::thread::Builder::new()
                        .name("flowgate-state-commit".into())
                        .spawn_scoped(scope, move || cp.commit_state(batch_id, changes))
                        .map_err(|e| Error::io("starting the state commit thread", e))?;
                    // Nothing reaches the sink before the batch's offsets are durable.
                    let sink = cp.wait_offsets().and_then(|()| add());
                    let state = state
                        .join()
                        .map_err(|_| Error::Internal(format!("committing the state of batch {batch_id} panicked")))?;
                    Ok::<_, Error>((state, sink))
                })?;
                sink?;
                state?;
            }
            (cp, _) => {
                if let Some(cp) = cp {
                    cp.wait_offsets()?;
                }
                add()?
            }
        }
        t.record(&mut durations);

        // The watermark never moves back.
        let next_watermark =
            watermarks.map(|w| self.plan.watermarks().candidate().map_or(w.eviction, |c| c.max(w.eviction)));
        if let Some(cp) = &mut self.checkpoint {
            cp.log_commit(batch_id, next_watermark)?;
        }
        // A source may forget only what a restart can no longer need (a batch whose commit
        // entry is lost is re-run and read again): with a checkpoint, up to the previous
        // batch's ends, this batch's starts — `offsets/<this batch>` is durable, so a restart
        // re-runs at most this batch, from those starts, whether or not the commit entries are
        // durable yet (as Spark commits batch N - 1 to its sources once batch N is planned).
        let t = super::listener::Phase::start("commitOffsets");
        let forgettable = if self.checkpoint.is_some() { starts } else { ends };
        for (s, end) in self.sources.iter_mut().zip(forgettable) {
            if let Some(end) = end {
                s.commit(end)?;
            }
        }
        t.record(&mut durations);
        let total = trigger_start.elapsed();
        durations.insert("triggerExecution".to_string(), ms(total));
        let rows: u64 = source_progress.iter().map(|s| s.num_input_rows).sum();
        let since_last = last_trigger_start.map(|l| trigger_start.duration_since(l).as_secs_f64()).unwrap_or(0.0);
        let progress = QueryProgress {
            id: self.id.clone(),
            run_id: self.run_id.clone(),
            name: self.name.clone(),
            timestamp: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            batch_id,
            num_input_rows: rows,
            input_rows_per_second: if since_last > 0.0 { rows as f64 / since_last } else { 0.0 },
            processed_rows_per_second: if total.as_secs_f64() > 0.0 { rows as f64 / total.as_secs_f64() } else { 0.0 },
            duration_ms: durations,
            watermark: watermarks.map(|w| crate::Timestamp(w.eviction)),
            next_watermark: next_watermark.map(crate::Timestamp),
            state_operators: self.plan.state_operators(),
            sources: source_progress,
            sink: self.sink.description(),
            num_output_rows: output_rows,
            epoch: None,
        };
        tracing::debug!(query = %self.name, batch_id, rows, "batch done");
        self.observer.progress(&progress);
        self.shared.update(|st| {
            st.recent.push_back(progress);
            while st.recent.len() > RECENT_PROGRESS {
                st.recent.pop_front();
            }
        });
        Ok(next_watermark)
    }
}
