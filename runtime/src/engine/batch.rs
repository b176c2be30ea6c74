//! The batch API: the same compiled query run once over bounded inputs, as Spark runs a
//! query over `spark.read` instead of `spark.readStream`.
//!
//! Generated `<Query>::batch()` wraps a [`BatchJob`] with one setter per input. [`BatchJob`]
//! reads every input whole (as the engine reads a static input: `prepare_available_now`, then
//! everything up to the latest offset), runs the query's plan once over all of it — batch 0,
//! nothing late (no watermark yet), no checkpoint, no state kept afterwards — and returns the
//! output, or gives it to a sink as batch 0.
//!
//! What Spark's batch semantics need beyond that one run, and how they are met:
//! - **Aggregations give the complete result.** In complete and update mode the one run
//!   emits every group with its final value (each group changed in it). In append mode an
//!   aggregation emits a window only once the watermark passes it, so after the run the plan
//!   runs once more without input at an end-of-input watermark ([`END_OF_INPUT_WATERMARK`]):
//!   every window closes and is emitted, every outer-join row still unmatched is emitted
//!   null-padded, and the union of the two runs is the result. Nothing is dropped as late in
//!   either run: the first has no watermark, the second no input.
//! - **Output modes and watermarks** are streaming's: the declared mode only picks how the
//!   plan emits, and the result is the same rows in every mode Spark accepts the query in.
//! - **Group-state functions** are called once per key with all its rows, and their timeouts
//!   never fire (as in Spark's batch `mapGroupsWithState`): the end-of-input run is not made.
//!
//! The generated code decides whether the end-of-input run is needed (`finish`): only with a
//! watermark, outside complete mode, without group state.

use arrow_array::RecordBatch;

use super::{check_source_schema, default_shuffle_partitions, BatchContext, PlanConfig, QuerySpec};
use crate::error::{Error, Result};
use crate::sink::{Sink, SinkContext};
use crate::source::{Source, SourceImpl};
use crate::watermark::WatermarkPolicy;
use crate::Record;

/// The watermark of the end-of-input run: later than any event time a timestamp column can
/// hold in practice (about 146 000 years after the epoch, in µs), and half of `i64::MAX` so
/// that the operators' watermark arithmetic (a join's state watermark adds its range's
/// offsets) cannot overflow.
pub const END_OF_INPUT_WATERMARK: i64 = i64::MAX / 2;

/// A query set up to run once over bounded inputs. Use the generated `<Query>::batch()`.
pub struct BatchJob {
    spec: QuerySpec,
    sources: Vec<Option<Box<dyn SourceImpl>>>,
    shuffle_partitions: Option<usize>,
    watermark_policy: WatermarkPolicy,
    finish: bool,
}

impl BatchJob {
    /// A job for `spec`; `finish` says whether the plan needs the end-of-input run (called by
    /// generated code).
    pub fn new(spec: QuerySpec, finish: bool) -> Self {
        let n = spec.inputs.len();
        BatchJob {
            spec,
            sources: (0..n).map(|_| None).collect(),
            shuffle_partitions: None,
            watermark_policy: WatermarkPolicy::Min,
            finish,
        }
    }

    /// Sets input `index`'s source (called by the generated setters).
    pub fn set_source<T: Record>(&mut self, index: usize, source: Source<T>) {
        self.sources[index] = Some(source.into_impl());
    }

    /// Number of shuffle partitions of the stateful operators (the result does not depend on
    /// it; the work is spread over them).
    pub fn shuffle_partitions(mut self, n: usize) -> Self {
        self.shuffle_partitions = Some(n);
        self
    }

    /// How several inputs' watermarks combine (the end-of-input run passes every one).
    pub fn watermark_policy(mut self, policy: WatermarkPolicy) -> Self {
        self.watermark_policy = policy;
        self
    }

    /// Reads every input whole and runs the query once: its output batches.
    pub fn run(self) -> Result<Vec<RecordBatch>> {
        let name = self.spec.name;
        let mut inputs = Vec::with_capacity(self.sources.len());
        for (i, ((input, schema), src)) in self.spec.inputs.iter().zip(self.sources).enumerate() {
            let mut src = src.ok_or_else(|| {
                Error::Plan(format!(
                    "query `{name}` has no source for input `{input}`: call `.{input}(Source::...)` on `{name}::batch()`"
                ))
            })?;
            check_source_schema(input, schema, &src.schema(), &src.description())?;
            if let Some(Some(columns)) = self.spec.input_reads.get(i) {
                src.project(columns);
            }
            let rows = super::execution::read_static(input, &mut src);
            src.stop();
            inputs.push(rows.map_err(|e| e.context(format!("batch run of query `{name}`")))?);
        }
        let partitions = self.shuffle_partitions.unwrap_or_else(default_shuffle_partitions);
        let config = PlanConfig { shuffle_partitions: partitions, watermark_policy: self.watermark_policy };
        let mut plan = (self.spec.make_plan)(&config);
        let now_ms = crate::clock::now_micros() / 1000;
        let ctx = BatchContext {
            batch_id: 0,
            output_mode: self.spec.output_mode,
            watermark_for_late: None,
            watermark_for_eviction: None,
            batch_timestamp_ms: now_ms,
            mid_epoch: false,
        };
        let mut out = plan.run_batch(&ctx, &inputs).map_err(|e| e.context(format!("batch run of query `{name}`")))?;
        drop(inputs);
        if self.finish {
            let end = BatchContext {
                batch_id: 1,
                watermark_for_late: Some(END_OF_INPUT_WATERMARK),
                watermark_for_eviction: Some(END_OF_INPUT_WATERMARK),
                ..ctx
            };
            let none: Vec<Vec<RecordBatch>> = self.spec.inputs.iter().map(|_| Vec::new()).collect();
            let rest = plan
                .run_batch(&end, &none)
                .map_err(|e| e.context(format!("end of the batch run of query `{name}`")))?;
            out.extend(rest);
        }
        out.retain(|b| b.num_rows() > 0);
        Ok(out)
    }

    /// [`BatchJob::run`], the output as records.
    pub fn run_rows<R: Record>(self) -> Result<Vec<R>> {
        let mut rows = Vec::new();
        for b in self.run()? {
            rows.extend(R::from_batch(&b)?);
        }
        Ok(rows)
    }

    /// [`BatchJob::run`], the output given to `sink` as batch 0 (one call, all rows); the
    /// number of rows written.
    pub fn write(self, sink: Sink) -> Result<u64> {
        let name = self.spec.name;
        let (schema, mode) = (self.spec.output.clone(), self.spec.output_mode);
        let mut sink = sink.inner;
        sink.open(&SinkContext { query_id: super::new_id(), query_name: name.to_string(), checkpointed: false })?;
        let out = self.run()?;
        let out = arrow_select::concat::concat_batches(&schema, &out)?;
        sink.add_batch(0, &out, mode)
            .map_err(|e| e.context(format!("sink {} of query `{name}`", sink.description())))?;
        Ok(out.num_rows() as u64)
    }
}

/// The methods every generated `<Query>Batch` has besides its input setters.
#[doc(hidden)]
#[macro_export]
macro_rules! __batch_job_methods {
    ($job:ident, $out:ty) => {
        /// Number of shuffle partitions of the stateful operators.
        pub fn shuffle_partitions(self, n: usize) -> Self {
            $job { inner: self.inner.shuffle_partitions(n) }
        }
        /// How several inputs' watermarks combine.
        pub fn watermark_policy(self, policy: $crate::watermark::WatermarkPolicy) -> Self {
            $job { inner: self.inner.watermark_policy(policy) }
        }
        /// Reads every input whole, runs the query once and returns its output records.
        pub fn run(self) -> $crate::Result<::std::vec::Vec<$out>> {
            self.inner.run_rows::<$out>()
        }
        /// [`Self::run`], the output as Arrow batches.
        pub fn run_batches(self) -> $crate::Result<::std::vec::Vec<$crate::__private::arrow_array::RecordBatch>> {
            self.inner.run()
        }
        /// [`Self::run`], the output written to `sink` once (as batch 0); the rows written.
        pub fn write(self, sink: $crate::Sink) -> $crate::Result<u64> {
            self.inner.write(sink)
        }
    };
}
