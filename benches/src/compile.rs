//! Compile time is a feature: macro expansion time per query (the compiler run directly, as
//! rustc runs it) and the incremental build time of a crate with 20 queries after one changes.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// Queries of different shapes, timed one by one.
const QUERIES: &[(&str, &str)] = &[
    (
        "word count",
        r#"query Q(lines: Line) -> WordCount, mode = complete {
        lines.flat_map(word = split(value, " ")).group_by(word).agg(count() as count)
    }"#,
    ),
    (
        "sliding window",
        r#"query Q(events: Event) -> WindowCount, mode = append {
        events.with_watermark(ts, "10 minutes").group_by(window(ts, "10 minutes", "5 minutes"), key)
            .agg(count() as count, sum(value) as total, avg(value) as mean)
    }"#,
    ),
    (
        "projection",
        r#"query Q(events: Event) -> Out, mode = append {
        events.filter(value > 0 && key.len() > 2).with_column(double = value * 2)
            .select(key, double, ts, flag = value % 2 == 0)
    }"#,
    ),
    (
        "session window",
        r#"query Q(events: Event) -> Sess, mode = append {
        events.with_watermark(ts, "10 minutes").group_by(session_window(ts, "5 minutes"), key)
            .agg(count() as n, min(ts) as first, max(ts) as last)
    }"#,
    ),
];

/// Expansions per query per measurement.
const REPEAT: u32 = 200;

/// Mean expansion time of each query.
pub fn expansion_times() -> Vec<(&'static str, Duration)> {
    QUERIES
        .iter()
        .map(|(name, src)| {
            let tokens: proc_macro2::TokenStream = src.parse().expect("query tokens");
            let out = flowgate_macros_core::compile(tokens.clone());
            assert!(!out.to_string().contains("compile_error"), "benchmark query `{name}` does not compile");
            let t = Instant::now();
            for _ in 0..REPEAT {
                std::hint::black_box(flowgate_macros_core::compile(tokens.clone()));
            }
            (*name, t.elapsed() / REPEAT)
        })
        .collect()
}

/// Queries in the incremental-build crate (the issue asks for 20).
const CRATE_QUERIES: usize = 20;

fn query_module(i: usize, variant: u32) -> String {
    format!(
        r#"use flowgate::prelude::*;

#[derive(Record)]
pub struct Event{i} {{ pub ts: Timestamp, pub key: String, pub value: i64 }}

#[derive(Record)]
pub struct Out{i} {{ pub window: Window, pub key: String, pub n: i64, pub total: i64 }}

stream_query! {{
    pub query Q{i}(events: Event{i}) -> Out{i}, mode = update {{
        events
            .filter(value > {variant})
            .with_watermark(ts, "10 minutes")
            .group_by(window(ts, "{m} minutes"), key)
            .agg(count() as n, sum(value) as total)
    }}
}}
"#,
        m = 1 + i % 5
    )
}

/// Builds a crate of [`CRATE_QUERIES`] query modules, changes one, and times the rebuild.
/// Returns (first build, incremental rebuild).
pub fn incremental_build(workspace: &Path) -> std::io::Result<(Duration, Duration)> {
    let dir = workspace.join("target").join("bench-compile-crate");
    std::fs::create_dir_all(dir.join("src"))?;
    let runtime = workspace.join("runtime");
    std::fs::write(
        dir.join("Cargo.toml"),
        format!(
            "[package]\nname = \"twenty-queries\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[dependencies]\nflowgate = {{ path = {:?} }}\n\n[workspace]\n",
            runtime
        ),
    )?;
    let mut lib = String::new();
    for i in 0..CRATE_QUERIES {
        lib.push_str(&format!("pub mod q{i};\n"));
        std::fs::write(dir.join(format!("src/q{i}.rs")), query_module(i, 0))?;
    }
    std::fs::write(dir.join("src/lib.rs"), lib)?;
    let target = workspace.join("target");
    let build = || -> std::io::Result<Duration> {
        let t = Instant::now();
        let status = Command::new(env!("CARGO"))
            .args(["build", "--quiet"])
            .current_dir(&dir)
            .env("CARGO_TARGET_DIR", &target)
            .status()?;
        if !status.success() {
            return Err(std::io::Error::other("building the 20-query crate failed"));
        }
        Ok(t.elapsed())
    };
    let first = build()?;
    std::fs::write(dir.join("src/q7.rs"), query_module(7, 1))?;
    let second = build()?;
    Ok((first, second))
}
