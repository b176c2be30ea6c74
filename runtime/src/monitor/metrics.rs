//! Prometheus metrics of the queries that ask for them (`.metrics("127.0.0.1:9464")` on the
//! builder), in the text exposition format at `/metrics`, through the `prometheus` crate.
//!
//! Every metric has a `query` label (the query's name). They are updated from each batch's
//! progress, on the query thread, after the batch committed (a few hash lookups and atomic
//! adds: the `monitoring` bench measures it). The watermark lag is computed when scraped, so
//! it grows while a query waits.
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `flowgate_batches_total` | counter | query |
//! | `flowgate_input_rows_total` | counter | query |
//! | `flowgate_output_rows_total` | counter | query |
//! | `flowgate_input_rows_per_second` | gauge | query |
//! | `flowgate_processed_rows_per_second` | gauge | query |
//! | `flowgate_batch_duration_seconds` | histogram | query, phase (Spark's `durationMs` keys) |
//! | `flowgate_state_rows` | gauge | query, operator |
//! | `flowgate_state_memory_bytes` | gauge | query, operator |
//! | `flowgate_rows_dropped_by_watermark_total` | counter | query, operator |
//! | `flowgate_watermark_seconds` | gauge (Unix time) | query |
//! | `flowgate_watermark_lag_seconds` | gauge (wall time − watermark) | query |
//! | `flowgate_source_backlog` | gauge | query, source, unit (`files`) |

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use prometheus::{
    Encoder, GaugeVec, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry, TextEncoder,
};

use crate::engine::listener::ProgressSink;
use crate::engine::QueryProgress;
use crate::error::{Error, Result};

/// The address examples and docs use: loopback (nothing outside the machine can scrape it
/// unless told), port 9464 (the OpenTelemetry Prometheus exporter's default).
pub const DEFAULT_METRICS_ADDR: &str = "127.0.0.1:9464";

/// Batch-duration buckets in seconds: Prometheus' defaults (5 ms to 10 s) plus 1 ms for small
/// batches and 30 s, 60 s for catch-up batches over a backlog.
const DURATION_BUCKETS: &[f64] = &[0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0];

struct Metrics {
    registry: Registry,
    batches: IntCounterVec,
    input_rows: IntCounterVec,
    output_rows: IntCounterVec,
    input_rate: GaugeVec,
    process_rate: GaugeVec,
    duration: HistogramVec,
    state_rows: IntGaugeVec,
    state_bytes: IntGaugeVec,
    dropped: IntCounterVec,
    watermark: GaugeVec,
    watermark_lag: GaugeVec,
    backlog: IntGaugeVec,
    /// Each query's last watermark (µs), for the lag at scrape time.
    watermarks: Mutex<HashMap<String, i64>>,
}

fn build() -> std::result::Result<Metrics, prometheus::Error> {
    let registry = Registry::new();
    let counter = |name: &str, help: &str, labels: &[&str]| -> std::result::Result<IntCounterVec, prometheus::Error> {
        let c = IntCounterVec::new(Opts::new(name, help), labels)?;
        registry.register(Box::new(c.clone()))?;
        Ok(c)
    };
    let gauge = |name: &str, help: &str, labels: &[&str]| -> std::result::Result<GaugeVec, prometheus::Error> {
        let g = GaugeVec::new(Opts::new(name, help), labels)?;
        registry.register(Box::new(g.clone()))?;
        Ok(g)
    };
    let int_gauge = |name: &str, help: &str, labels: &[&str]| -> std::result::Result<IntGaugeVec, prometheus::Error> {
        let g = IntGaugeVec::new(Opts::new(name, help), labels)?;
        registry.register(Box::new(g.clone()))?;
        Ok(g)
    };
    let duration = HistogramVec::new(
        HistogramOpts::new("flowgate_batch_duration_seconds", "Time per micro-batch phase (Spark's durationMs keys)")
            .buckets(DURATION_BUCKETS.to_vec()),
        &["query", "phase"],
    )?;
    registry.register(Box::new(duration.clone()))?;
    Ok(Metrics {
        batches: counter("flowgate_batches_total", "Micro-batches run", &["query"])?,
        input_rows: counter("flowgate_input_rows_total", "Rows read from the sources", &["query"])?,
        output_rows: counter("flowgate_output_rows_total", "Rows handed to the sink", &["query"])?,
        input_rate: gauge("flowgate_input_rows_per_second", "Input rows per second, last batch", &["query"])?,
        process_rate: gauge("flowgate_processed_rows_per_second", "Rows processed per second, last batch", &["query"])?,
        duration,
        state_rows: int_gauge("flowgate_state_rows", "Rows in a stateful operator's state", &["query", "operator"])?,
        state_bytes: int_gauge(
            "flowgate_state_memory_bytes",
            "Estimated memory of a stateful operator's state",
            &["query", "operator"],
        )?,
        dropped: counter(
            "flowgate_rows_dropped_by_watermark_total",
            "Input rows dropped as later than the watermark",
            &["query", "operator"],
        )?,
        watermark: gauge("flowgate_watermark_seconds", "Event-time watermark (Unix time)", &["query"])?,
        watermark_lag: gauge("flowgate_watermark_lag_seconds", "Wall time minus the watermark", &["query"])?,
        backlog: int_gauge(
            "flowgate_source_backlog",
            "What a source knows of but has not delivered",
            &["query", "source", "unit"],
        )?,
        registry,
        watermarks: Mutex::new(HashMap::new()),
    })
}

fn metrics() -> Result<&'static Metrics> {
    static METRICS: OnceLock<std::result::Result<Metrics, String>> = OnceLock::new();
    METRICS
        .get_or_init(|| build().map_err(|e| e.to_string()))
        .as_ref()
        .map_err(|e| Error::Internal(format!("registering the Prometheus metrics: {e}")))
}

/// Every query's metrics in the Prometheus text format.
pub fn render() -> Result<String> {
    let m = metrics()?;
    let now = chrono::Utc::now().timestamp_micros();
    for (q, wm) in m.watermarks.lock().unwrap_or_else(|e| e.into_inner()).iter() {
        m.watermark_lag.with_label_values(&[q]).set((now - wm) as f64 / 1e6);
    }
    let mut out = Vec::new();
    TextEncoder::new()
        .encode(&m.registry.gather(), &mut out)
        .map_err(|e| Error::Internal(format!("encoding the Prometheus metrics: {e}")))?;
    Ok(String::from_utf8_lossy(&out).into_owned())
}

/// Feeds one query's progress into the metrics.
struct QueryMetrics {
    m: &'static Metrics,
    query: String,
}

impl ProgressSink for QueryMetrics {
    fn progress(&self, p: &QueryProgress) {
        let (m, q) = (self.m, self.query.as_str());
        m.batches.with_label_values(&[q]).inc();
        m.input_rows.with_label_values(&[q]).inc_by(p.num_input_rows);
        m.output_rows.with_label_values(&[q]).inc_by(p.num_output_rows);
        m.input_rate.with_label_values(&[q]).set(p.input_rows_per_second);
        m.process_rate.with_label_values(&[q]).set(p.processed_rows_per_second);
        for (phase, ms) in &p.duration_ms {
            m.duration.with_label_values(&[q, phase]).observe(*ms as f64 / 1e3);
        }
        for (i, op) in p.state_operators.iter().enumerate() {
            let label = format!("{i}:{}", op.operator_name);
            m.state_rows.with_label_values(&[q, &label]).set(op.num_rows_total as i64);
            m.state_bytes.with_label_values(&[q, &label]).set(op.memory_used_bytes as i64);
            m.dropped.with_label_values(&[q, &label]).inc_by(op.num_rows_dropped_by_watermark);
        }
        if let Some(wm) = p.next_watermark.or(p.watermark) {
            m.watermark.with_label_values(&[q]).set(wm.0 as f64 / 1e6);
            m.watermarks.lock().unwrap_or_else(|e| e.into_inner()).insert(q.to_string(), wm.0);
        }
        for s in &p.sources {
            if let Some(b) = s.backlog {
                m.backlog.with_label_values(&[q, &s.description, b.unit]).set(b.outstanding() as i64);
            }
        }
    }
}

/// Records `query`'s metrics and serves `/metrics` on `addr` (shared with other queries and
/// the query pages on the same address).
pub(crate) fn enable(addr: &str, query: &str) -> Result<Arc<dyn ProgressSink>> {
    let m = metrics()?;
    let server = super::http::server(addr)?;
    server.handle(
        "metrics",
        Arc::new(|path, _| {
            (path == "/metrics").then(|| match render() {
                Ok(text) => super::http::Response::ok("text/plain; version=0.0.4; charset=utf-8", text),
                Err(e) => super::http::Response {
                    status: 500,
                    content_type: "text/plain; charset=utf-8",
                    body: e.to_string().into_bytes(),
                },
            })
        }),
    );
    Ok(Arc::new(QueryMetrics { m, query: query.to_string() }))
}

/// A sink for the bench and tests: records into the registry without serving it.
#[doc(hidden)]
pub fn recorder(query: &str) -> Result<impl Fn(&QueryProgress)> {
    let q = QueryMetrics { m: metrics()?, query: query.to_string() };
    Ok(move |p: &QueryProgress| q.progress(p))
}
