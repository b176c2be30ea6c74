//! A live page per query (`.ui("127.0.0.1:4040")` on the builder), after Spark's Structured
//! Streaming tab: input and process rates, input rows, batch duration by phase, state rows
//! and watermark lag as charts over the recent batches, the status and the last error.
//!
//! Routes on the address: `/` lists the queries served there; `/query/<name>` is a query's
//! page (static HTML with a small chart script, `page.html`, no external resources);
//! `/api/query/<name>` its recent progress as JSON (Spark's progress JSON per batch, plus
//! `watermarkLagMs`: wall time minus the watermark when the batch ended), which the page
//! polls every second.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::{json, Value};

use super::http::{self, Response};
use crate::engine::listener::ProgressSink;
use crate::engine::QueryProgress;
use crate::error::{Error, Result};

/// Batches kept for the charts (Spark's UI keeps `spark.sql.streaming.numRecentProgressUpdates`,
/// 100; a few minutes of one-second batches reads better on a chart).
pub const UI_HISTORY: usize = 300;

const PAGE: &str = include_str!("page.html");

/// One query's page data, fed by its progress.
struct QueryPage {
    name: String,
    id: String,
    run_id: String,
    active: AtomicBool,
    history: Mutex<VecDeque<(QueryProgress, Option<i64>)>>,
    error: Mutex<Option<String>>,
}

impl QueryPage {
    fn json(&self) -> Value {
        let history = self.history.lock().unwrap_or_else(|e| e.into_inner());
        let progress: Vec<Value> = history
            .iter()
            .map(|(p, lag)| {
                let mut v = p.json();
                v["watermarkLagMs"] = json!(lag);
                v
            })
            .collect();
        json!({
            "name": self.name,
            "id": self.id,
            "runId": self.run_id,
            "active": self.active.load(Ordering::SeqCst),
            "error": *self.error.lock().unwrap_or_else(|e| e.into_inner()),
            "progress": progress,
        })
    }
}

impl ProgressSink for QueryPage {
    fn progress(&self, p: &QueryProgress) {
        let lag = p.next_watermark.or(p.watermark).map(|w| (chrono::Utc::now().timestamp_micros() - w.0) / 1000);
        let mut h = self.history.lock().unwrap_or_else(|e| e.into_inner());
        h.push_back((p.clone(), lag));
        while h.len() > UI_HISTORY {
            h.pop_front();
        }
    }

    fn terminated(&self, error: Option<&Arc<Error>>) {
        self.active.store(false, Ordering::SeqCst);
        *self.error.lock().unwrap_or_else(|e| e.into_inner()) = error.map(|e| e.to_string());
    }
}

/// `%XX` escapes decoded (names in URLs).
fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        if b[i] == b'%' && i + 2 < b.len() {
            if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            b => format!("%{b:02X}"),
        })
        .collect()
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// Pages served per address, by query name (a restarted query replaces its page).
type Pages = Mutex<Vec<(String, Arc<QueryPage>)>>;

/// Every address's pages.
type AllPages = Mutex<Vec<(std::net::SocketAddr, Arc<Pages>)>>;

fn pages_of(server: &http::Server) -> Arc<Pages> {
    static ALL: std::sync::OnceLock<AllPages> = std::sync::OnceLock::new();
    let mut all = ALL.get_or_init(Default::default).lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, p)) = all.iter().find(|(a, _)| *a == server.addr()) {
        return p.clone();
    }
    let pages: Arc<Pages> = Arc::default();
    all.push((server.addr(), pages.clone()));
    let for_handler = pages.clone();
    server.handle(
        "ui",
        Arc::new(move |path, _| {
            let pages = for_handler.lock().unwrap_or_else(|e| e.into_inner());
            if path == "/" {
                let items: String = pages
                    .iter()
                    .map(|(n, _)| format!("<li><a href=\"/query/{}\">{}</a></li>", percent_encode(n), html_escape(n)))
                    .collect();
                return Some(Response::ok(
                    "text/html; charset=utf-8",
                    format!(
                        "<!doctype html><meta charset=utf-8><title>flowgate</title><h1>Queries</h1><ul>{items}</ul>"
                    ),
                ));
            }
            if let Some(name) = path.strip_prefix("/api/query/") {
                let name = percent_decode(name);
                let (_, page) = pages.iter().find(|(n, _)| *n == name)?;
                return Some(Response::ok("application/json", page.json().to_string()));
            }
            let name = percent_decode(path.strip_prefix("/query/")?);
            pages.iter().find(|(n, _)| *n == name)?;
            let api = format!("/api/query/{}", percent_encode(&name));
            Some(Response::ok("text/html; charset=utf-8", PAGE.replace("__API__", &api)))
        }),
    );
    pages
}

/// Serves the page of query `name` on `addr` (shared with other queries, and the metrics, on
/// the same address). Returns the sink that feeds it.
pub(crate) fn enable(addr: &str, name: &str, id: &str, run_id: &str) -> Result<Arc<dyn ProgressSink>> {
    let server = http::server(addr)?;
    let page = Arc::new(QueryPage {
        name: name.to_string(),
        id: id.to_string(),
        run_id: run_id.to_string(),
        active: AtomicBool::new(true),
        history: Mutex::new(VecDeque::new()),
        error: Mutex::new(None),
    });
    let pages = pages_of(&server);
    let mut p = pages.lock().unwrap_or_else(|e| e.into_inner());
    p.retain(|(n, _)| n != name);
    p.push((name.to_string(), page.clone()));
    tracing::info!(query = name, url = %format!("http://{}/query/{}", server.addr(), percent_encode(name)), "query page");
    Ok(page)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_survive_the_url() {
        for n in ["plain", "with space", "ü/%?&"] {
            assert_eq!(percent_decode(&percent_encode(n)), n);
        }
        assert_eq!(percent_decode("100%"), "100%");
    }
}
