//! flowgate benchmarks: generated code vs. a hand-written Rust loop over the same Arrow data,
//! measured side by side in one run (ratios, not absolute times, are the result: these machines
//! are shared and noisy).
//!
//! ```text
//! cargo run --release -p flowgate-benches -- core        # word count + grouped sum, 10 M rows
//! cargo run --release -p flowgate-benches -- windowed    # 1-minute windows, 10 M events, 100 K keys
//! cargo run --release -p flowgate-benches -- ops         # dedup, stream-static join
//! cargo run --release -p flowgate-benches -- group_state # map_groups_with_state vs a hash map of the state
//! cargo run --release -p flowgate-benches -- all --rows 1000000 --runs 5
//! cargo run --release -p flowgate-benches -- compare     # + Apache Spark, from the same files (JSON, Parquet)
//! cargo run --release -p flowgate-benches -- latency --rate 100000 --seconds 5
//! cargo run --release -p flowgate-benches -- reader [--rows 1000000] [--runs 5]   # file source vs page-cache read, one core
//! cargo run --release -p flowgate-benches -- soak [--minutes 30] [--rate R]   # 80% of the peak rate
//! cargo run --release -p flowgate-benches -- throughput [--rows 4000000] [--runs 5]   # continuous vs micro-batch
//! ```

mod checkpoint;
mod compare;
mod compile;
mod data;
mod files;
mod group_state;
mod joins;
#[cfg(feature = "kafka")]
mod kafka;
mod latency;
mod monitoring;
mod nexmark;
mod nexmark_joins;
mod ops;
mod q13;
mod reader;
mod soak;
mod throughput;
mod workloads;

use std::time::{Duration, Instant};

/// Runs of each measurement; the median is reported.
const DEFAULT_RUNS: usize = 3;
/// Rows of each workload (the issues ask for 10 M).
const DEFAULT_ROWS: usize = 10_000_000;

fn arg<T: std::str::FromStr>(name: &str, default: T) -> T {
    let args: Vec<String> = std::env::args().collect();
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// One measured side: elapsed time and a canonical result to compare.
pub struct Measured {
    pub elapsed: Duration,
    pub result: Vec<u64>,
    /// Extra figure (e.g. state bytes per group) to print.
    pub note: String,
}

/// The medians of `runs` executions each of `a` and `b`, interleaved round by round (which of
/// the two goes first alternates), so that a change in the machine's load during the
/// measurement falls on both sides alike rather than on whichever ran last.
fn medians_interleaved(
    runs: usize,
    mut a: impl FnMut() -> Measured,
    mut b: impl FnMut() -> Measured,
) -> (Measured, Measured) {
    let (mut all_a, mut all_b) = (Vec::new(), Vec::new());
    for round in 0..runs.max(1) {
        if round % 2 == 0 {
            all_a.push(a());
            all_b.push(b());
        } else {
            all_b.push(b());
            all_a.push(a());
        }
    }
    let pick = |mut all: Vec<Measured>| {
        for m in &all[1..] {
            assert!(m.result == all[0].result, "a workload gave different results on different runs");
        }
        all.sort_by_key(|m| m.elapsed);
        all.swap_remove(all.len() / 2)
    };
    (pick(all_a), pick(all_b))
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn pool(threads: usize) -> rayon::ThreadPool {
    rayon::ThreadPoolBuilder::new().num_threads(threads).build().expect("thread pool")
}

struct Row {
    workload: &'static str,
    threads: usize,
    rows: usize,
    flowgate: Duration,
    hand: Duration,
    note: String,
}

fn run_workload(w: &workloads::Workload, rows: usize, runs: usize, threads: usize, out: &mut Vec<Row>) {
    let p = pool(threads);
    let (fg, hand) = p.install(|| medians_interleaved(runs, || (w.flowgate)(rows), || (w.hand)(rows)));
    if fg.result != hand.result {
        eprintln!(
            "{}: flowgate and the hand-written loop DISAGREE ({} vs {} result rows); no ratio printed",
            w.name,
            fg.result.len(),
            hand.result.len()
        );
        std::process::exit(1);
    }
    let note = if hand.note.is_empty() { fg.note } else { format!("flowgate {}; hand {}", fg.note, hand.note) };
    out.push(Row { workload: w.name, threads, rows, flowgate: fg.elapsed, hand: hand.elapsed, note });
}

fn main() {
    let what = std::env::args().nth(1).unwrap_or_else(|| "all".into());
    if what == "compare-child" {
        let args: Vec<String> = std::env::args().skip(2).collect();
        compare::child(&args);
        return;
    }
    if what == "compare" {
        let only = Some(arg("--only", String::new())).filter(|s| !s.is_empty());
        let no_spark = std::env::args().any(|a| a == "--no-spark");
        let format = arg("--format", "both".to_string());
        let Some(formats) = compare::Format::parse_list(&format) else {
            eprintln!("--format takes json, parquet or both, not {format:?}");
            std::process::exit(2);
        };
        compare::compare(&compare::Options {
            rows: arg("--rows", compare::DEFAULT_ROWS),
            runs: arg("--runs", DEFAULT_RUNS),
            only: only.as_deref(),
            skip_spark: no_spark,
            formats: &formats,
            verify: !std::env::args().any(|a| a == "--no-verify"),
            empty_runs: arg("--empty-runs", 3),
        });
        return;
    }
    if what == "joins-spark" {
        // `--queries q3,q8,q4,q5,q7` (default all): q3 and q8 over persons and auctions, q4,
        // q5 and q7 over auctions and bids.
        let queries = arg("--queries", "q3,q8,q4,q5,q7".to_string());
        let queries: Vec<&str> = queries.split(',').collect();
        let (rows, runs) = (arg("--rows", 10_000_000), arg("--runs", 3));
        let pa: Vec<&str> = queries.iter().copied().filter(|q| matches!(*q, "q3" | "q8")).collect();
        let ab: Vec<&str> = queries.iter().copied().filter(|q| matches!(*q, "q4" | "q5" | "q7")).collect();
        if !pa.is_empty() {
            joins::spark_compare(rows, runs, &pa);
        }
        if !ab.is_empty() {
            nexmark_joins::spark_compare(rows, runs, &ab);
        }
        return;
    }
    if what == "kafka" {
        #[cfg(feature = "kafka")]
        {
            kafka::main(arg("--records", 500_000), arg("--runs", 3), arg("--batches", 50), arg("--batch-rows", 1000));
            return;
        }
        #[cfg(not(feature = "kafka"))]
        {
            eprintln!(
                "the Kafka benches need the feature: cargo run --release -p flowgate-benches --features kafka -- kafka"
            );
            std::process::exit(2);
        }
    }
    if what == "reader" {
        // The file source's read path on one core beside a page-cache read (not in `all`).
        reader::main(arg("--rows", 1_000_000usize), arg("--runs", 5usize));
        return;
    }
    if what == "soak" {
        // Not part of `all` (nor of CI): half an hour of one core by default.
        soak::main(arg("--minutes", 30.0), Some(arg("--rate", 0u64)).filter(|r| *r > 0));
        return;
    }
    if what == "throughput" {
        // Not part of `all`: the same queries in micro-batch and continuous mode, timed end to end.
        throughput::main(arg("--rows", 4_000_000usize), arg("--runs", 5usize));
        return;
    }
    if what == "latency" {
        // Not part of `all`: it runs real queries for a while and measures time, not throughput.
        // `--rate 100000` or `--rate 1000,100000,1000000`.
        let rates: Vec<u64> = arg("--rate", "1000,100000".to_string())
            .split(',')
            .map(|r| r.trim().parse().unwrap_or_else(|_| panic!("--rate: `{r}` is not a number")))
            .collect();
        let configs = latency::configs(
            &rates,
            arg("--seconds", 5.0),
            &arg("--query", "all".to_string()),
            &arg("--trigger", "all".to_string()),
            arg("--interval-ms", 1),
            &arg("--checkpoint", "both".to_string()),
        );
        latency::main(&configs);
        return;
    }
    if what == "compile" || what == "all" {
        for (name, t) in compile::expansion_times() {
            println!("macro expansion, {name}: {:.3} ms per query (goal ≤ 20 ms)", t.as_secs_f64() * 1e3);
        }
        let workspace = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        match compile::incremental_build(&workspace) {
            Ok((first, incremental)) => println!(
                "crate with 20 queries: first build {:.1} s, rebuild after changing one query {:.1} s (goal ≤ 15 s)\n",
                first.as_secs_f64(),
                incremental.as_secs_f64()
            ),
            Err(e) => println!("incremental build measurement failed: {e}\n"),
        }
        if what == "compile" {
            return;
        }
    }
    if what == "checkpoint" || what == "all" {
        let batches = arg("--batches", checkpoint::SMALL_BATCHES);
        if std::env::args().any(|a| a == "--only-checkpointed") {
            // One checkpointed run alone (to count its system calls from outside, e.g. with
            // `strace -f -c -e trace=fsync,fdatasync,rename`).
            let (_, c) = checkpoint::small_batch_overhead(batches, false);
            println!("{batches} checkpointed small batches: p50 {:.3} ms, p99 {:.3} ms", ms(c.p50), ms(c.p99));
            return;
        }
        let keys = arg("--keys", checkpoint::RESTART_KEYS);
        let (restart, bytes) = checkpoint::restart_time(keys);
        println!(
            "restart with {keys} keys of state ({:.1} MB on disk): {:.3} s (goal ≤ 1 s)",
            bytes as f64 / 1e6,
            restart.as_secs_f64()
        );
        let (plain, checkpointed) = checkpoint::small_batch_overhead(batches, true);
        let plain = plain.expect("asked for the plain run");
        println!(
            "{batches} small batches: {:.3} ms without a checkpoint, {:.3} ms with (mean); checkpoint overhead {:.3} ms \
             per batch (goal ≤ 1 ms); per batch p50 / p99: {:.3} / {:.3} ms without, {:.3} / {:.3} ms with\n",
            ms(plain.mean),
            ms(checkpointed.mean),
            ms(checkpointed.mean) - ms(plain.mean),
            ms(plain.p50),
            ms(plain.p99),
            ms(checkpointed.p50),
            ms(checkpointed.p99),
        );
        if what == "checkpoint" {
            return;
        }
    }
    if what == "monitoring" || what == "all" {
        let (plain, monitored, events) = monitoring::overhead();
        println!(
            "small checkpointed batch, median of {} rounds: {:.3} ms plain, {:.3} ms with a listener, metrics and the \
             query page; overhead {:+.1}% (goal < 5%; the listener saw {events} progress events in a round)\n",
            monitoring::ROUNDS,
            plain.as_secs_f64() * 1e3,
            monitored.as_secs_f64() * 1e3,
            (monitored.as_secs_f64() / plain.as_secs_f64() - 1.0) * 100.0
        );
        println!(
            "feeding one batch's progress into the Prometheus metrics: {:.2} µs\n",
            monitoring::metrics_cost_per_batch().as_secs_f64() * 1e6
        );
        if what == "monitoring" {
            return;
        }
    }
    let rows = arg("--rows", DEFAULT_ROWS);
    let runs = arg("--runs", DEFAULT_RUNS);
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let only = arg("--only", String::new());
    let selected: Vec<workloads::Workload> = workloads::all()
        .into_iter()
        .filter(|w| what == "all" || w.group == what)
        .filter(|w| only.is_empty() || only.split(',').any(|o| o == w.name))
        .collect();
    if selected.is_empty() {
        eprintln!(
            "usage: flowgate-benches [compare | core | windowed | ops | nexmark | checkpoint | monitoring | compile | all] [--rows N] [--runs N] [--keys N] [--only CASE,..] [--no-spark] [--format json|parquet|both]\n       \
             flowgate-benches latency [--rate N[,N..]] [--seconds S] [--query stateless|stateful|all] \
             [--trigger default|interval|continuous|all] [--interval-ms N] [--checkpoint no|yes|both]\n       \
             flowgate-benches throughput [--rows N] [--runs N]"
        );
        std::process::exit(2);
    }
    println!("flowgate benchmarks: {rows} rows, median of {runs} runs, {cores} cores\n");
    let mut table = Vec::new();
    for w in &selected {
        (w.prepare)(rows);
        let mut threads = vec![1];
        if cores > 1 {
            threads.push(cores);
        }
        for t in threads {
            let started = Instant::now();
            run_workload(w, rows, runs, t, &mut table);
            eprintln!("  {} on {t} thread(s) measured in {:.1}s", w.name, started.elapsed().as_secs_f64());
        }
    }
    let header = "workload,threads,rows,flowgate_rows_per_s,hand_rows_per_s,flowgate_rows_per_s_per_core,ratio_time_flowgate_over_hand,note";
    println!(
        "{:<16} {:>7} {:>14} {:>14} {:>14} {:>8}  note",
        "workload", "threads", "flowgate rows/s", "hand rows/s", "fg rows/s/core", "ratio"
    );
    let mut csv = vec![header.to_string()];
    for r in &table {
        let fg = r.rows as f64 / r.flowgate.as_secs_f64();
        let hand = r.rows as f64 / r.hand.as_secs_f64();
        let ratio = r.flowgate.as_secs_f64() / r.hand.as_secs_f64();
        println!(
            "{:<16} {:>7} {:>14.3e} {:>14.3e} {:>14.3e} {:>8.3}  {}",
            r.workload,
            r.threads,
            fg,
            hand,
            fg / r.threads as f64,
            ratio,
            r.note
        );
        csv.push(format!(
            "{},{},{},{fg:.0},{hand:.0},{:.0},{ratio:.4},{}",
            r.workload,
            r.threads,
            r.rows,
            fg / r.threads as f64,
            r.note
        ));
    }
    println!("\nratio = flowgate time / hand-written time (goal ≤ 1.25)");
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/bench-results.csv");
    if let Err(e) = std::fs::write(&path, csv.join("\n") + "\n") {
        eprintln!("could not write {}: {e}", path.display());
    } else {
        println!("csv: {}", path.display());
    }
}
