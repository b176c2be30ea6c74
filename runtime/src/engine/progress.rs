//! Query progress, shaped like Spark's `StreamingQueryProgress`.

use std::collections::BTreeMap;

use serde_json::{json, Value};

pub use crate::ops::StateOperatorProgress;

/// Progress of one source in one batch.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SourceProgress {
    /// The source's description.
    pub description: String,
    /// Offset before the batch (JSON), if any.
    pub start_offset: Option<String>,
    /// Offset after the batch (JSON).
    pub end_offset: Option<String>,
    /// Rows read in the batch.
    pub num_input_rows: u64,
    /// What the source knows of but has not delivered after this batch, when it can tell.
    pub backlog: Option<crate::source::Backlog>,
}

/// What happened in one micro-batch.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct QueryProgress {
    /// Stable id of the query.
    pub id: String,
    /// Id of this run.
    pub run_id: String,
    /// Query name.
    pub name: String,
    /// When the batch started (RFC 3339).
    pub timestamp: String,
    /// Batch id.
    pub batch_id: u64,
    /// Rows read from all sources.
    pub num_input_rows: u64,
    /// Input rows per second since the previous batch started.
    pub input_rows_per_second: f64,
    /// Rows per second over this batch's processing time.
    pub processed_rows_per_second: f64,
    /// Milliseconds per phase: `latestOffset`, `getBatch`, `addBatch`, `commitOffsets`,
    /// `triggerExecution` (as Spark).
    pub duration_ms: BTreeMap<String, u64>,
    /// Event-time watermark in effect while the batch ran, when the query has one.
    pub watermark: Option<crate::Timestamp>,
    /// The watermark computed at the end of this batch, which the next batch uses (Spark keeps
    /// it in the checkpoint's commit log as `nextBatchWatermarkMs`).
    pub next_watermark: Option<crate::Timestamp>,
    /// Stateful operators.
    pub state_operators: Vec<StateOperatorProgress>,
    /// Sources.
    pub sources: Vec<SourceProgress>,
    /// Sink description.
    pub sink: String,
    /// Rows handed to the sink in this batch (Spark's `sink.numOutputRows`).
    pub num_output_rows: u64,
    /// Continuous mode: what the epoch's tasks report (`batch_id` is the epoch).
    pub epoch: Option<super::continuous::EpochProgress>,
}

impl QueryProgress {
    /// As Spark's progress JSON.
    pub fn json(&self) -> Value {
        let mut event_time = serde_json::Map::new();
        if let Some(w) = self.watermark {
            event_time.insert("watermark".into(), Value::from(rfc3339_millis(w)));
        }
        let mut out = json!({
            "id": self.id,
            "runId": self.run_id,
            "name": self.name,
            "timestamp": self.timestamp,
            "batchId": self.batch_id,
            "numInputRows": self.num_input_rows,
            "inputRowsPerSecond": self.input_rows_per_second,
            "processedRowsPerSecond": self.processed_rows_per_second,
            "durationMs": self.duration_ms,
            "batchDuration": self.duration_ms.get("triggerExecution").copied().unwrap_or(0),
            "eventTime": event_time,
            "stateOperators": self.state_operators.iter().map(|s| {
                let mut o = json!({
                    "operatorName": s.operator_name,
                    "numRowsTotal": s.num_rows_total,
                    "numRowsUpdated": s.num_rows_updated,
                    "numRowsRemoved": s.num_rows_removed,
                    "numRowsDroppedByWatermark": s.num_rows_dropped_by_watermark,
                    "memoryUsedBytes": s.memory_used_bytes,
                });
                // As Spark, an operator without custom metrics shows none.
                if !s.custom_metrics.is_empty() {
                    o["customMetrics"] = s.custom_metrics.iter().map(|(k, v)| (k.clone(), json!(v))).collect::<serde_json::Map<_, _>>().into();
                }
                o
            }).collect::<Vec<_>>(),
            "sources": self.sources.iter().map(|s| {
                let mut o = json!({
                    "description": s.description,
                    "startOffset": s.start_offset.as_deref().map(offset_json),
                    "endOffset": s.end_offset.as_deref().map(offset_json),
                    "numInputRows": s.num_input_rows,
                    "inputRowsPerSecond": share(s.num_input_rows, self.num_input_rows, self.input_rows_per_second),
                    "processedRowsPerSecond": share(s.num_input_rows, self.num_input_rows, self.processed_rows_per_second),
                });
                // Spark leaves an empty metrics map out.
                if let Some(b) = s.backlog {
                    o["metrics"] = source_metrics(&b);
                }
                o
            }).collect::<Vec<_>>(),
            "sink": {"description": self.sink, "numOutputRows": self.num_output_rows},
        });
        if let Some(e) = &self.epoch {
            out["continuous"] = json!({
                "tasks": e.tasks,
                "rowsPerTask": e.rows_per_task,
                "maxLatencyMicros": e.max_latency_micros,
                "meanLatencyMicros": e.mean_latency_micros,
                "maxLagMicros": e.max_lag_micros,
            });
        }
        out
    }
}

/// A source's offset as Spark prints it: the offset's own JSON (`{"logOffset": 3}`), not a
/// string holding it.
fn offset_json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|_| Value::from(text))
}

/// A source's own metrics, as Spark's `SourceProgress.metrics` (string values, as Spark
/// gives them; Kafka's `avgOffsetsBehindLatest` is one): the backlog here.
fn source_metrics(b: &crate::source::Backlog) -> Value {
    json!({
        format!("{}Outstanding", b.unit): b.outstanding().to_string(),
        format!("{}Total", b.unit): b.total.to_string(),
    })
}

/// A source's part of a rate over all sources, by its share of the rows.
fn share(rows: u64, total: u64, rate: f64) -> f64 {
    if total == 0 {
        0.0
    } else {
        rate * rows as f64 / total as f64
    }
}

/// Spark's progress JSON timestamp format: `2024-01-01T12:00:00.000Z`.
fn rfc3339_millis(t: crate::Timestamp) -> String {
    chrono::DateTime::from_timestamp_micros(t.0)
        .map(|d| d.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_else(|| t.0.to_string())
}
