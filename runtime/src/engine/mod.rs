//! The micro-batch engine: query builder, the running query's handle, and the loop that plans
//! offsets, runs the generated plan and hands results to the sink.
//!
//! Lifecycle contract between the engine and a generated [`Plan`]:
//! 1. the plan is built once per run with the query's [`PlanConfig`] (shuffle partitions are
//!    fixed for the life of the query);
//! 2. `run_batch` is called once per micro-batch, in batch-id order, with exactly the rows of
//!    the batch's offset range, one `Vec<RecordBatch>` per declared input in declaration order;
//!    it returns the rows the sink must receive for that batch in the query's output mode;
//! 3. the plan's stateful operators ([`Plan::operators`]) are driven through their lifecycle
//!    (restore, take changes, metrics: [`crate::ops`]) by the engine, around `run_batch`.
//!
//! Breaking (2) — calling a batch twice, or out of order — would double-count in aggregations;
//! the engine is the only caller.

pub mod batch;
mod checkpoint;
pub mod continuous;
mod execution;
pub mod listener;
pub mod manager;
mod microbatch;
mod progress;
mod trigger;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Instant;

use arrow_array::RecordBatch;
use arrow_schema::{DataType, SchemaRef};

pub use progress::{QueryProgress, SourceProgress};
pub use trigger::{Trigger, POLL_INTERVAL};
pub use {listener::QueryListener, manager::QueryManager};

use crate::checkpoint::state::StateMap;
use crate::error::{Error, Result};
pub use crate::ops::StateSchema;
use crate::ops::{OperatorSet, PartitionChanges, StateOperatorProgress};
use crate::sink::Sink;
use crate::source::{Source, SourceImpl};
pub use crate::watermark::{WatermarkPolicy, Watermarks};
use crate::OutputMode;

/// Spark's default `spark.sql.shuffle.partitions` is 200, sized for clusters; on one machine we
/// default to the number of cores (at least 2) so per-partition work stays large.
pub fn default_shuffle_partitions() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2).max(2)
}

/// Settings a plan is built with, fixed for the life of the query.
#[derive(Clone, Debug)]
pub struct PlanConfig {
    /// Number of shuffle partitions of every stateful operator.
    pub shuffle_partitions: usize,
    /// How several inputs' watermarks combine.
    pub watermark_policy: WatermarkPolicy,
}

impl PlanConfig {
    /// `n` shuffle partitions and the default watermark policy (tests, benchmarks).
    pub fn with_partitions(n: usize) -> Self {
        PlanConfig { shuffle_partitions: n, watermark_policy: WatermarkPolicy::Min }
    }
}

/// What the engine tells a plan about the batch it runs.
#[derive(Clone, Debug)]
pub struct BatchContext {
    /// The batch id.
    pub batch_id: u64,
    /// The query's output mode.
    pub output_mode: OutputMode,
    /// Watermark for dropping late input: the previous batch's watermark (Spark's
    /// `eventTimeWatermarkForLateEvents`); `None` without a watermark.
    pub watermark_for_late: Option<i64>,
    /// Watermark for evicting state and closing windows: this batch's watermark (Spark's
    /// `eventTimeWatermarkForEviction`); `None` without a watermark.
    pub watermark_for_eviction: Option<i64>,
    /// The batch's processing time (ms since the epoch; Spark's `batchTimestampMs`): from the
    /// query's [`crate::clock::Clock`] when the batch is planned, logged with its offsets.
    pub batch_timestamp_ms: i64,
    /// Whether this run is one vector of a continuous epoch rather than a whole batch
    /// (`engine/continuous/stage.rs`): the epoch's end runs the plan once more, without rows,
    /// and only that run fires group-state timeouts and `transform_with_state` timers and emits
    /// a result table that is emitted whole (complete mode; sessions outside append mode), so
    /// an epoch does what a micro-batch over its rows does. Always `false` in micro-batch mode.
    pub mid_epoch: bool,
}

impl BatchContext {
    /// A context for batch `batch_id` without event time (tests, benchmarks).
    pub fn new(batch_id: u64, output_mode: OutputMode) -> Self {
        BatchContext {
            batch_id,
            output_mode,
            watermark_for_late: None,
            watermark_for_eviction: None,
            batch_timestamp_ms: 0,
            mid_epoch: false,
        }
    }

    /// The late-input watermark, or `i64::MIN` (nothing is late) without one.
    #[inline]
    pub fn late_watermark(&self) -> i64 {
        self.watermark_for_late.unwrap_or(i64::MIN)
    }

    /// The watermark this run evicts state and closes windows by, or `i64::MIN` (nothing is
    /// evicted) without one: the eviction watermark, but the late one in a vector of a
    /// continuous epoch ([`BatchContext::mid_epoch`]; state behind it was evicted at the previous
    /// epoch's end, so a vector evicts nothing, and the epoch's end evicts by the eviction
    /// watermark).
    #[inline]
    pub fn eviction_watermark(&self) -> i64 {
        let wm = if self.mid_epoch { self.watermark_for_late } else { self.watermark_for_eviction };
        wm.unwrap_or(i64::MIN)
    }
}

/// The query-specific code a `stream_query!` emits, as the engine sees it: the batch function
/// and the plan's state (its stateful operators and watermarks), which the engine drives
/// through their lifecycle ([`crate::ops`]) without knowing any operator.
pub trait Plan: Send {
    /// Runs one micro-batch (see the module's lifecycle contract).
    fn run_batch(&mut self, ctx: &BatchContext, inputs: &[Vec<RecordBatch>]) -> Result<Vec<RecordBatch>>;
    /// The stateful operators, in id order.
    fn operators(&self) -> &dyn OperatorSet;
    /// The stateful operators, mutably.
    fn operators_mut(&mut self) -> &mut dyn OperatorSet;
    /// The event-time watermarks of the inputs.
    fn watermarks(&self) -> &Watermarks;
}

/// What the engine asks of a plan's state, through the operators' lifecycle.
pub trait PlanExt {
    /// Metrics of the stateful operators after the last batch, in Spark's progress order:
    /// the operator nearest the output first.
    fn state_operators(&self) -> Vec<StateOperatorProgress>;
    /// The state schemas, in operator-id order.
    fn state_schema(&self) -> Vec<StateSchema>;
    /// Per operator, per partition: the changes since the last call.
    fn take_changes(&mut self) -> Vec<Vec<PartitionChanges>>;
    /// Replaces every operator's state (`[operator][partition]`).
    fn restore(&mut self, state: Vec<Vec<StateMap>>) -> Result<()>;
    /// Whether operators record changes (a checkpointed query).
    fn set_tracking(&mut self, on: bool);
    /// Offers each operator whose schema differs from the checkpoint's `recorded` one the
    /// chance to read it ([`StatefulOperator::adopt_recorded_schema`]); the checkpoint then
    /// compares the schemas as before.
    fn adopt_recorded_schemas(&mut self, recorded: &[StateSchema]);
}

impl PlanExt for dyn Plan {
    fn state_operators(&self) -> Vec<StateOperatorProgress> {
        let mut out = Vec::new();
        self.operators().each(&mut |op| out.push(op.metrics()));
        // Spark lists them from the output back to the inputs (a pre-order walk of its
        // physical plan): the last operator first.
        out.reverse();
        out
    }
    fn state_schema(&self) -> Vec<StateSchema> {
        let mut out = Vec::new();
        self.operators().each(&mut |op| out.push(op.state_schema()));
        out
    }
    fn take_changes(&mut self) -> Vec<Vec<PartitionChanges>> {
        let mut out = Vec::new();
        self.operators_mut().each_mut(&mut |op| out.push(op.take_changes()));
        out
    }
    fn adopt_recorded_schemas(&mut self, recorded: &[StateSchema]) {
        let mut id = 0;
        self.operators_mut().each_mut(&mut |op| {
            if let Some(r) = recorded.get(id) {
                if *r != op.state_schema() {
                    op.adopt_recorded_schema(r);
                }
            }
            id += 1;
        });
    }
    fn restore(&mut self, state: Vec<Vec<StateMap>>) -> Result<()> {
        let n = self.operators().len();
        if state.len() != n {
            return Err(Error::Internal(format!("restoring {n} stateful operators from {} states", state.len())));
        }
        let mut state = state.into_iter();
        let mut result = Ok(());
        let mut id = 0;
        self.operators_mut().each_mut(&mut |op| {
            if result.is_ok() {
                let maps = state.next().unwrap_or_default();
                result = op.restore(maps).map_err(|e| e.context(format!("stateful operator {id}")));
            }
            id += 1;
        });
        result
    }
    fn set_tracking(&mut self, on: bool) {
        self.operators_mut().each_mut(&mut |op| op.set_tracking(on));
    }
}

/// The state a generated plan keeps between batches: its stateful operators (a tuple, in
/// operator-id order) and the watermark trackers of its inputs.
pub struct PlanState<O> {
    /// The stateful operators.
    pub operators: O,
    /// One tracker per `with_watermark`, combined by the query's policy.
    pub watermarks: Watermarks,
}

/// A plan made of its state and the generated batch function. Generated code builds one with
/// [`CompiledPlan::new`]; the operators' concrete types (keys, accumulators) are inferred by
/// rustc from how the batch function uses them, so the macro never has to name them.
pub struct CompiledPlan<O, F> {
    state: PlanState<O>,
    run: F,
}

impl<O, F> CompiledPlan<O, F>
where
    F: FnMut(&mut PlanState<O>, &BatchContext, &[Vec<RecordBatch>]) -> Result<Vec<RecordBatch>>,
{
    /// A plan from its operators, watermarks and batch function.
    pub fn new(operators: O, watermarks: Watermarks, run: F) -> Self {
        CompiledPlan { state: PlanState { operators, watermarks }, run }
    }
}

impl<O, F> Plan for CompiledPlan<O, F>
where
    O: OperatorSet,
    F: FnMut(&mut PlanState<O>, &BatchContext, &[Vec<RecordBatch>]) -> Result<Vec<RecordBatch>> + Send,
{
    fn run_batch(&mut self, ctx: &BatchContext, inputs: &[Vec<RecordBatch>]) -> Result<Vec<RecordBatch>> {
        (self.run)(&mut self.state, ctx, inputs)
    }
    fn operators(&self) -> &dyn OperatorSet {
        &self.state.operators
    }
    fn operators_mut(&mut self) -> &mut dyn OperatorSet {
        &mut self.state.operators
    }
    fn watermarks(&self) -> &Watermarks {
        &self.state.watermarks
    }
}

/// What a compiled query declares about itself.
#[derive(Clone, Debug)]
pub struct QuerySpec {
    /// The query's name (`query WordCount(...)`).
    pub name: &'static str,
    /// Input names in declaration order, with the schema of each input's record.
    pub inputs: Vec<(&'static str, SchemaRef)>,
    /// Per input, whether it is static (declared `name: static Record`): a bounded table read
    /// once when the query starts, joined with the streams, never part of the offset log.
    pub static_inputs: Vec<bool>,
    /// Per input, the columns the plan reads, as the compiler found them; `None` when it
    /// needs every column. Sources are told (`SourceImpl::project`) so they can skip
    /// decoding the others.
    pub input_reads: Vec<Option<&'static [&'static str]>>,
    /// The output record's schema.
    pub output: SchemaRef,
    /// The output mode declared in the query.
    pub output_mode: OutputMode,
    /// Builds the plan.
    pub make_plan: fn(&PlanConfig) -> Box<dyn Plan>,
}

/// Sets up and starts a query. Generated `<Query>::builder()` wraps this with one setter per
/// input; use those.
pub struct QueryBuilder {
    spec: QuerySpec,
    sources: Vec<Option<Box<dyn SourceImpl>>>,
    sink: Option<Sink>,
    trigger: Trigger,
    checkpoint: Option<PathBuf>,
    /// Set by [`QueryBuilder::checkpoint_storage`]: the checkpoint's storage, instead of files
    /// in `checkpoint`.
    checkpoint_storage: Option<Arc<dyn crate::checkpoint::Storage>>,
    shuffle_partitions: Option<usize>,
    name: Option<String>,
    no_data_batches: bool,
    watermark_policy: WatermarkPolicy,
    clock: Arc<dyn crate::clock::Clock>,
    // Operating the query (listener.rs, manager.rs).
    listeners: Vec<Arc<dyn QueryListener>>,
    manager: Option<QueryManager>,
    monitor: crate::monitor::Options,
}

impl QueryBuilder {
    /// A builder for `spec` (called by generated code).
    pub fn new(spec: QuerySpec) -> Self {
        let n = spec.inputs.len();
        QueryBuilder {
            spec,
            sources: (0..n).map(|_| None).collect(),
            sink: None,
            trigger: Trigger::Default,
            checkpoint: None,
            checkpoint_storage: None,
            shuffle_partitions: None,
            name: None,
            no_data_batches: true,
            watermark_policy: WatermarkPolicy::Min,
            clock: Arc::new(crate::clock::SystemClock),
            listeners: Vec::new(),
            manager: None,
            monitor: Default::default(),
        }
    }

    /// Sets input `index`'s source (called by the generated per-input setters).
    pub fn set_source<T>(&mut self, index: usize, source: Source<T>)
    where
        T: crate::Record,
    {
        self.sources[index] = Some(source.into_impl());
    }

    /// Where results go.
    pub fn sink(mut self, sink: Sink) -> Self {
        self.sink = Some(sink);
        self
    }

    /// When batches run (default: as soon as data arrives).
    pub fn trigger(mut self, trigger: Trigger) -> Self {
        self.trigger = trigger;
        self
    }

    /// The checkpoint directory.
    pub fn checkpoint(mut self, dir: impl Into<PathBuf>) -> Self {
        self.checkpoint = Some(dir.into());
        self.checkpoint_storage = None;
        self
    }

    /// Keeps the checkpoint in `storage` instead of a directory (see
    /// [`crate::checkpoint::Storage`]; the crash tests use the simulated disk of
    /// [`crate::checkpoint::sim`]).
    pub fn checkpoint_storage(mut self, storage: Arc<dyn crate::checkpoint::Storage>) -> Self {
        self.checkpoint = None;
        self.checkpoint_storage = Some(storage);
        self
    }

    /// Number of shuffle partitions of stateful operators (default: the number of cores).
    pub fn shuffle_partitions(mut self, n: usize) -> Self {
        self.shuffle_partitions = Some(n.max(1));
        self
    }

    /// Whether to run a batch without new data when the watermark moved and a stateful
    /// operator could emit or evict (Spark's `spark.sql.streaming.noDataMicroBatches.enabled`,
    /// default true).
    pub fn no_data_batches(mut self, enabled: bool) -> Self {
        self.no_data_batches = enabled;
        self
    }

    /// How the watermarks of several inputs combine (Spark's
    /// `spark.sql.streaming.multipleWatermarkPolicy`; default [`WatermarkPolicy::Min`]).
    pub fn watermark_policy(mut self, policy: WatermarkPolicy) -> Self {
        self.watermark_policy = policy;
        self
    }

    /// The clock batch timestamps (processing time) come from (default: the system clock);
    /// tests give a [`crate::clock::ManualClock`] to drive processing-time timeouts by hand.
    pub fn clock(mut self, clock: impl crate::clock::Clock + 'static) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// A name for progress reports (default: the query's name).
    pub fn query_name(mut self, name: &str) -> Self {
        self.name = Some(name.to_string());
        self
    }

    /// Adds a listener of this query's events (see [`listener`]).
    pub fn listener(mut self, listener: Arc<dyn QueryListener>) -> Self {
        self.listeners.push(listener);
        self
    }

    /// Starts the query under `manager`, which refuses it while an active query of the
    /// manager has the same name or checkpoint (see [`manager`]).
    pub fn manager(mut self, manager: &QueryManager) -> Self {
        self.manager = Some(manager.clone());
        self
    }

    /// Serves this query's Prometheus metrics at `http://{addr}/metrics` (see
    /// [`crate::monitor::metrics`]; queries on one address share the endpoint). Use a loopback
    /// address such as [`crate::monitor::metrics::DEFAULT_METRICS_ADDR`] unless the scraper
    /// runs elsewhere.
    pub fn metrics(mut self, addr: &str) -> Self {
        self.monitor.metrics = Some(addr.to_string());
        self
    }

    /// Serves a live page of this query at `http://{addr}/query/<name>` (see
    /// [`crate::monitor::ui`]), e.g. `.ui("127.0.0.1:4040")`.
    pub fn ui(mut self, addr: &str) -> Self {
        self.monitor.ui = Some(addr.to_string());
        self
    }

    /// Whether an `available_now` run reports each batch: a progress bar on stderr when it is
    /// a terminal, else a log line (default on).
    pub fn catch_up_progress(mut self, on: bool) -> Self {
        self.monitor.no_catch_up = !on;
        self
    }

    /// Checks the setup and starts the query on its own thread.
    pub fn start(self) -> Result<StreamingQuery> {
        if let Trigger::Invalid(msg) = &self.trigger {
            return Err(Error::Plan(format!("invalid trigger: {msg}")));
        }
        if let Trigger::Continuous(t) = &self.trigger {
            t.interval().map_err(|msg| Error::Plan(format!("invalid trigger: {msg}")))?;
        }
        let continuous = matches!(self.trigger, Trigger::Continuous(_));
        let mut sources = Vec::new();
        for (i, ((name, schema), src)) in self.spec.inputs.iter().zip(self.sources).enumerate() {
            let mut src = src.ok_or_else(|| {
                Error::Plan(format!(
                    "query `{}` has no source for input `{name}`: call `.{name}(Source::...)` on the builder",
                    self.spec.name
                ))
            })?;
            check_source_schema(name, schema, &src.schema(), &src.description())?;
            if let Some(Some(columns)) = self.spec.input_reads.get(i) {
                src.project(columns);
            }
            sources.push(src);
        }
        // Static inputs are read once, apart from the streams and their offsets.
        let mut streams = Vec::new();
        let mut statics = Vec::new();
        let mut slots = Vec::new();
        for (i, src) in sources.into_iter().enumerate() {
            if self.spec.static_inputs.get(i).copied().unwrap_or(false) {
                slots.push(microbatch::InputSlot::Static(statics.len()));
                statics.push((self.spec.inputs[i].0, src));
            } else {
                slots.push(microbatch::InputSlot::Stream(streams.len()));
                streams.push(src);
            }
        }
        let sink = self.sink.ok_or_else(|| {
            Error::Plan(format!("query `{}` has no sink: call `.sink(Sink::console())` or another", self.spec.name))
        })?;
        // Shuffle partitions are fixed for the life of a query: a restart takes them from the
        // checkpoint unless set explicitly (and then they must match).
        let storage: Option<Arc<dyn crate::checkpoint::Storage>> = match (&self.checkpoint_storage, &self.checkpoint) {
            (Some(s), _) => Some(s.clone()),
            (None, Some(dir)) => Some(Arc::new(crate::checkpoint::FsStorage::new(dir))),
            (None, None) => None,
        };
        let recorded = match &storage {
            Some(s) => checkpoint::recorded_partitions(s.as_ref())?,
            None => None,
        };
        let partitions = self.shuffle_partitions.or(recorded).unwrap_or_else(default_shuffle_partitions);
        let config = PlanConfig { shuffle_partitions: partitions, watermark_policy: self.watermark_policy };
        let mut plan = (self.spec.make_plan)(&config);
        if let Some(recorded) = match &storage {
            Some(s) => checkpoint::recorded_state_schemas(s.as_ref())?,
            None => None,
        } {
            plan.as_mut().adopt_recorded_schemas(&recorded);
        }
        let plan_state: &dyn Plan = plan.as_ref();
        let name = self.name.unwrap_or_else(|| self.spec.name.to_string());
        let shared = Arc::new(Shared::new());
        let mut id = new_id();
        let run_id = new_id();
        let reservation = match &self.manager {
            Some(m) => Some(m.reserve(&run_id, &name, self.checkpoint.as_deref())?),
            None => None,
        };
        let checkpoint = match storage {
            None => None,
            Some(storage) => {
                let inputs: Vec<(String, String, String)> = self
                    .spec
                    .inputs
                    .iter()
                    .zip(&slots)
                    .map(|((n, schema), slot)| {
                        let description = match *slot {
                            // A continuous run logs partition positions: its checkpoint is not a
                            // micro-batch run's, and the metadata says so.
                            microbatch::InputSlot::Stream(j) if continuous => {
                                format!("continuous {}", streams[j].description())
                            }
                            microbatch::InputSlot::Stream(j) => streams[j].description(),
                            microbatch::InputSlot::Static(k) => format!("static {}", statics[k].1.description()),
                        };
                        (n.to_string(), schema_string(schema), description)
                    })
                    .collect();
                let meta = checkpoint::metadata(
                    &id,
                    self.spec.name,
                    &inputs,
                    &schema_string(&self.spec.output),
                    &self.spec.output_mode.to_string(),
                    partitions,
                    &plan_state.state_schema(),
                );
                let cp = checkpoint::QueryCheckpoint::open(storage, meta, &plan_state.state_schema(), streams.len())?;
                id = cp.id.clone();
                Some(cp)
            }
        };
        // Kafka sink hook (issue 14): the sink learns the query's identity before the first batch.
        let mut sink = sink;
        let context = crate::sink::SinkContext {
            query_id: id.clone(),
            query_name: name.clone(),
            checkpointed: checkpoint.is_some(),
        };
        sink.inner.open(&context)?;
        let sinks = self.monitor.sinks(&name, &id, &run_id, &self.trigger)?;
        let observer = listener::Observer::new(&id, &run_id, &name, self.listeners, self.manager, sinks);
        let exec: Box<dyn execution::Execution> = match self.trigger {
            Trigger::Continuous(trigger) => Box::new(continuous::coordinator::Continuous {
                observer,
                id: id.clone(),
                run_id,
                name: name.clone(),
                output_mode: self.spec.output_mode,
                sources: streams,
                statics,
                slots,
                sink: sink.inner,
                make_plan: self.spec.make_plan,
                config,
                trigger,
                output_schema: self.spec.output.clone(),
                checkpoint,
                shared: shared.clone(),
                clock: self.clock,
            }),
            trigger => Box::new(microbatch::MicroBatch {
                observer,
                id: id.clone(),
                run_id,
                name: name.clone(),
                output_mode: self.spec.output_mode,
                sources: streams,
                statics,
                slots,
                sink: sink.inner,
                plan,
                trigger,
                output_schema: self.spec.output.clone(),
                no_data_batches: self.no_data_batches,
                checkpoint,
                shared: shared.clone(),
                clock: self.clock,
            }),
        };
        let handle = std::thread::Builder::new()
            .name(format!("flowgate-{name}"))
            .spawn(move || exec.execute())
            .map_err(|e| Error::io("starting the query thread", e))?;
        let guard = Arc::new(StopGuard(shared.clone()));
        let query = StreamingQuery { id, name, shared, thread: Arc::new(Mutex::new(Some(handle))), guard };
        if let Some(r) = reservation {
            r.register(&query);
        }
        Ok(query)
    }
}

/// The methods every generated `<Query>Builder` forwards to its [`QueryBuilder`] (one list, here,
/// so a new engine option reaches every query). Used by `stream_query!` output only.
#[doc(hidden)]
#[macro_export]
macro_rules! __query_builder_methods {
    ($builder:ident) => {
        /// Where results go.
        pub fn sink(self, sink: $crate::Sink) -> Self {
            $builder { inner: self.inner.sink(sink) }
        }
        /// When micro-batches run, or `Trigger::continuous(..)` for a query that can run
        /// continuously.
        pub fn trigger(self, trigger: impl $crate::engine::continuous::TriggerFor<Self>) -> Self {
            $builder { inner: self.inner.trigger(trigger.into_trigger()) }
        }
        /// The checkpoint directory.
        pub fn checkpoint(self, dir: impl ::core::convert::Into<::std::path::PathBuf>) -> Self {
            $builder { inner: self.inner.checkpoint(dir) }
        }
        /// Keeps the checkpoint in a [`Storage`]($crate::checkpoint::Storage) instead of a directory.
        pub fn checkpoint_storage(self, storage: ::std::sync::Arc<dyn $crate::checkpoint::Storage>) -> Self {
            $builder { inner: self.inner.checkpoint_storage(storage) }
        }
        /// Number of shuffle partitions of stateful operators.
        pub fn shuffle_partitions(self, n: usize) -> Self {
            $builder { inner: self.inner.shuffle_partitions(n) }
        }
        /// Whether to run batches without new data when the watermark moves (default true).
        pub fn no_data_batches(self, enabled: bool) -> Self {
            $builder { inner: self.inner.no_data_batches(enabled) }
        }
        /// How several inputs' watermarks combine (default: the minimum).
        pub fn watermark_policy(self, policy: $crate::watermark::WatermarkPolicy) -> Self {
            $builder { inner: self.inner.watermark_policy(policy) }
        }
        /// The clock of batch timestamps (processing time); default: the system clock.
        pub fn clock(self, clock: impl $crate::clock::Clock + 'static) -> Self {
            $builder { inner: self.inner.clock(clock) }
        }
        /// A name for progress reports.
        pub fn query_name(self, name: &str) -> Self {
            $builder { inner: self.inner.query_name(name) }
        }
        /// Adds a listener of this query's events.
        pub fn listener(self, listener: ::std::sync::Arc<dyn $crate::engine::QueryListener>) -> Self {
            $builder { inner: self.inner.listener(listener) }
        }
        /// Serves this query's Prometheus metrics at `http://{addr}/metrics`.
        pub fn metrics(self, addr: &str) -> Self {
            $builder { inner: self.inner.metrics(addr) }
        }
        /// Serves a live page of this query at `http://{addr}/query/<name>`.
        pub fn ui(self, addr: &str) -> Self {
            $builder { inner: self.inner.ui(addr) }
        }
        /// Whether an `available_now` run reports each batch (a bar on a terminal, else a log line).
        pub fn catch_up_progress(self, on: bool) -> Self {
            $builder { inner: self.inner.catch_up_progress(on) }
        }
        /// Starts the query under a query manager.
        pub fn manager(self, manager: &$crate::engine::QueryManager) -> Self {
            $builder { inner: self.inner.manager(manager) }
        }
        /// Checks the setup and starts the query.
        pub fn start(self) -> $crate::Result<$crate::StreamingQuery> {
            self.inner.start()
        }
    };
}

/// A schema as `name: type` pairs (what the checkpoint metadata records).
fn schema_string(schema: &SchemaRef) -> String {
    schema
        .fields()
        .iter()
        .map(|f| format!("{}: {}{}", f.name(), f.data_type(), if f.is_nullable() { "?" } else { "" }))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Types are compared loosely for timestamps (any time zone is UTC micros to us).
fn same_type(a: &DataType, b: &DataType) -> bool {
    match (a, b) {
        (DataType::Timestamp(u1, _), DataType::Timestamp(u2, _)) => u1 == u2,
        _ => a == b,
    }
}

fn check_source_schema(input: &str, record: &SchemaRef, source: &SchemaRef, desc: &str) -> Result<()> {
    for f in record.fields() {
        match source.field_with_name(f.name()) {
            Ok(s) if same_type(s.data_type(), f.data_type()) => {}
            Ok(s) => {
                return Err(Error::Plan(format!(
                    "input `{input}`: {desc} gives column `{}` as {} but the record declares {}",
                    f.name(),
                    s.data_type(),
                    f.data_type()
                )))
            }
            Err(_) => {
                let have: Vec<String> =
                    source.fields().iter().map(|f| format!("{}: {}", f.name(), f.data_type())).collect();
                return Err(Error::Plan(format!(
                    "input `{input}`: {desc} has no column `{}` (it gives: {})",
                    f.name(),
                    have.join(", ")
                )));
            }
        }
    }
    Ok(())
}

fn new_id() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0));
    let a = h.finish();
    h.write_u64(a);
    let b = h.finish();
    format!(
        "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xffff,
        b >> 48,
        b & 0xffff_ffff_ffff
    )
}

/// Progress reports kept per query (Spark's `spark.sql.streaming.numRecentProgressUpdates`).
pub const RECENT_PROGRESS: usize = 100;

#[derive(Default)]
pub(crate) struct Status {
    pub active: bool,
    pub error: Option<Arc<Error>>,
    pub recent: std::collections::VecDeque<QueryProgress>,
    /// Incremented every time the engine found no new data in its sources.
    pub idle_checks: u64,
    pub message: String,
}

pub(crate) struct Shared {
    pub status: Mutex<Status>,
    pub changed: Condvar,
    pub stop: AtomicBool,
}

impl Shared {
    fn new() -> Self {
        Shared {
            status: Mutex::new(Status { active: true, message: "Initializing".into(), ..Default::default() }),
            changed: Condvar::new(),
            stop: AtomicBool::new(false),
        }
    }
    pub(crate) fn lock(&self) -> MutexGuard<'_, Status> {
        // Status updates are plain assignments: a poisoned lock still holds consistent data.
        self.status.lock().unwrap_or_else(|e| e.into_inner())
    }
    /// Waits for a change of the status, or `deadline`.
    pub(crate) fn wait_until<'a>(&self, st: MutexGuard<'a, Status>, deadline: Instant) -> MutexGuard<'a, Status> {
        let left = deadline.saturating_duration_since(Instant::now());
        self.changed.wait_timeout(st, left).map(|(g, _)| g).unwrap_or_else(|e| e.into_inner().0)
    }

    pub(crate) fn update(&self, f: impl FnOnce(&mut Status)) {
        f(&mut self.lock());
        self.changed.notify_all();
    }
}

/// A running (or finished) streaming query. Clones are handles to the same query; dropping
/// the last one stops it.
#[derive(Clone)]
pub struct StreamingQuery {
    id: String,
    name: String,
    shared: Arc<Shared>,
    thread: Arc<Mutex<Option<JoinHandle<()>>>>,
    guard: Arc<StopGuard>,
}

/// Stops the query when the last handle is dropped.
struct StopGuard(Arc<Shared>);

impl Drop for StopGuard {
    fn drop(&mut self) {
        self.0.stop.store(true, Ordering::SeqCst);
        self.0.changed.notify_all();
    }
}

impl std::fmt::Debug for StreamingQuery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "StreamingQuery({} {})", self.name, self.id)
    }
}

impl StreamingQuery {
    /// The query's id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The query's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether the query is still running.
    pub fn is_active(&self) -> bool {
        self.shared.lock().active
    }

    /// What the query is doing now (`Waiting for data to arrive`, `Processing new data`, …).
    pub fn status(&self) -> String {
        self.shared.lock().message.clone()
    }

    /// The error that stopped the query, if any, as text.
    pub fn exception(&self) -> Option<String> {
        self.shared.lock().error.as_ref().map(|e| e.to_string())
    }

    /// The error that stopped the query, if any.
    pub fn error(&self) -> Option<Arc<Error>> {
        self.shared.lock().error.clone()
    }

    /// The progress of the last batch.
    pub fn last_progress(&self) -> Option<QueryProgress> {
        self.shared.lock().recent.back().cloned()
    }

    /// The progress of recent batches, oldest first.
    pub fn recent_progress(&self) -> Vec<QueryProgress> {
        self.shared.lock().recent.iter().cloned().collect()
    }

    /// Blocks until every row available in the sources when this was called has been
    /// processed and handed to the sink (for tests; Spark's `processAllAvailable`).
    pub fn process_all_available(&self) -> Result<()> {
        let mut st = self.shared.lock();
        // An idle check that completes after this call may have started before it; the next
        // one started after, so it saw everything added before the call.
        let target = st.idle_checks + 2;
        loop {
            if let Some(e) = &st.error {
                return Err(Error::QueryFailed { name: self.name.clone(), source: e.clone() });
            }
            if st.idle_checks >= target || !st.active {
                return Ok(());
            }
            st = self.shared.changed.wait(st).unwrap_or_else(|e| e.into_inner());
        }
    }

    /// Blocks until the query stops (by [`StreamingQuery::stop`], its trigger, or an error).
    pub fn await_termination(&self) -> Result<()> {
        let mut st = self.shared.lock();
        while st.active {
            st = self.shared.changed.wait(st).unwrap_or_else(|e| e.into_inner());
        }
        match &st.error {
            Some(e) => Err(Error::QueryFailed { name: self.name.clone(), source: e.clone() }),
            None => Ok(()),
        }
    }

    /// Like [`StreamingQuery::await_termination`] with a limit; returns whether it stopped.
    pub fn await_termination_timeout(&self, timeout: std::time::Duration) -> Result<bool> {
        let deadline = Instant::now() + timeout;
        let mut st = self.shared.lock();
        while st.active {
            if Instant::now() >= deadline {
                return Ok(false);
            }
            st = self.shared.wait_until(st, deadline);
        }
        match &st.error {
            Some(e) => Err(Error::QueryFailed { name: self.name.clone(), source: e.clone() }),
            None => Ok(true),
        }
    }

    /// Stops the query after the batch in progress and waits for its thread.
    pub fn stop(&self) -> Result<()> {
        self.shared.stop.store(true, Ordering::SeqCst);
        self.shared.changed.notify_all();
        let handle = self.thread.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(h) = handle {
            h.join().map_err(|_| Error::Internal("the query thread panicked".into()))?;
        }
        Ok(())
    }
}
