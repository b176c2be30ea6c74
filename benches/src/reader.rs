//! `reader`: the file source's read path on one core beside a page-cache read of the same
//! bytes on one core, in one run, rounds interleaved.
//!
//! The input is the Nexmark bids (`nexmark::generator`, 7 fields: three integers, a timestamp
//! and three strings, `extra` padding each record to ~100 bytes of values) up to `--rows`
//! bids, written once as JSON lines and as Parquet under `target/bench-data/reader-<rows>/`,
//! [`FILES`] files each. Each configuration reads every file in one batch through the file
//! source itself (`FileSource::get_batch`: the file read, the line split and the decoding, or
//! Parquet's reader with its projection mask) inside a one-thread rayon pool, so the figure is
//! per core. The projections are those a query's column pruning gives the source
//! (`SourceImpl::project`): two integer fields (q1/q2), one string field (`url`, q21's), and
//! all seven (q0). The page-cache read is the same files read with `read(2)` into a reused
//! 1 MiB buffer on the calling thread, after a warm-up read.
//!
//! Printed per configuration: the median wall time of `--runs` and the input's bytes per
//! second of it (GB/s), the median of the process's CPU seconds over the timed region and the
//! input's bytes per CPU-second (on this shared machine a busy core shows as wall time above
//! CPU time: the CPU figures are the per-core ones), and the ratio of each to the page-cache
//! read of the same bytes (wall / wall, CPU / CPU).

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Instant;

use flowgate::source::file::FileOptions;
use flowgate::source::{FileFormat, FileSource, ReadLimit, SourceImpl};
use flowgate::Record;

use crate::files::{self, Encoding};
use crate::nexmark::generator::{self, Bid, Generator, Kind};

/// Files per format.
const FILES: usize = 8;

/// The column sets read, as a query's column pruning gives them to the source.
const PROJECTIONS: [(&str, &[&str]); 3] = [
    ("auction, price", &["auction", "price"]),
    ("url", &["url"]),
    ("all 7", &["auction", "bidder", "price", "channel", "url", "date_time", "extra"]),
];

fn data(rows: usize) -> std::io::Result<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../target/bench-data/reader-{rows}"));
    let marker = dir.join("_done");
    if marker.exists() {
        return Ok(dir);
    }
    if dir.exists() {
        std::fs::remove_dir_all(&dir)?;
    }
    let g = Generator::new(generator::DEFAULT_SEED);
    let batches = g.batches(Kind::Bid, generator::events_for_bids(rows as u64));
    for e in [Encoding::Json, Encoding::Parquet] {
        files::write(&dir.join(e.name()), e, &batches, FILES)?;
    }
    std::fs::write(marker, format!("{rows} bids\n"))?;
    Ok(dir)
}

fn part_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("input dir")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("part-")))
        .collect();
    files.sort();
    files
}

/// The files read on this thread: the bytes read.
fn read_files(files: &[PathBuf], buf: &mut [u8]) -> u64 {
    let mut n = 0u64;
    for p in files {
        let mut f = std::fs::File::open(p).expect("input file");
        loop {
            match f.read(buf).expect("read") {
                0 => break,
                k => {
                    std::hint::black_box(&buf[..k]);
                    n += k as u64;
                }
            }
        }
    }
    n
}

/// Every file of `dir` read through the file source in one batch, on the current thread's
/// rayon pool: the rows read.
fn read_source(dir: &Path, format: FileFormat, columns: &[&str]) -> usize {
    let mut opts = FileOptions::new(dir.to_path_buf(), Bid::schema());
    opts.format = format;
    let mut src = FileSource::new(opts);
    src.project(columns);
    let end = src.latest_offset(None, ReadLimit::All).expect("listing").expect("files");
    let batches = src.get_batch(None, &end).expect("reading");
    std::hint::black_box(&batches);
    batches.iter().map(|b| b.num_rows()).sum()
}

/// CPU seconds of this process (user + system, all threads; `/proc/self/stat`).
fn cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else { return 0.0 };
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

pub fn main(rows: usize, runs: usize) {
    let dir = data(rows).expect("writing the reader's data");
    let pool = rayon::ThreadPoolBuilder::new().num_threads(1).build().expect("pool");
    println!("reader: {rows} Nexmark bids, one core (a one-thread pool), median of {runs} interleaved rounds");
    println!(
        "{:<8} {:<15} {:>7} {:>8} {:>7} {:>7} {:>9} {:>10} {:>9}",
        "format", "columns", "MB", "wall s", "GB/s", "CPU s", "GB/CPU-s", "x read wall", "x read CPU"
    );
    for (format, encoding) in [(FileFormat::Json, Encoding::Json), (FileFormat::Parquet, Encoding::Parquet)] {
        let fdir = dir.join(encoding.name());
        let files = part_files(&fdir);
        let mut buf = vec![0u8; 1 << 20];
        let bytes = read_files(&files, &mut buf);
        let (mut read_times, mut read_cpus) = (Vec::new(), Vec::new());
        let mut times = vec![Vec::new(); PROJECTIONS.len()];
        let mut cpus = vec![Vec::new(); PROJECTIONS.len()];
        for _ in 0..runs {
            let (c, t) = (cpu_seconds(), Instant::now());
            assert_eq!(read_files(&files, &mut buf), bytes);
            read_times.push(t.elapsed().as_secs_f64());
            read_cpus.push(cpu_seconds() - c);
            for (i, (_, columns)) in PROJECTIONS.iter().enumerate() {
                let (c, t) = (cpu_seconds(), Instant::now());
                let n = pool.install(|| read_source(&fdir, format, columns));
                times[i].push(t.elapsed().as_secs_f64());
                cpus[i].push(cpu_seconds() - c);
                assert_eq!(n, rows, "every bid read");
            }
        }
        let (read, read_cpu) = (median(read_times), median(read_cpus));
        let mb = bytes as f64 / 1e6;
        let name = encoding.name();
        let per_cpu = |cpu: f64| if cpu > 0.0 { format!("{:.3}", mb / cpu / 1e3) } else { "-".into() };
        println!(
            "{name:<8} {:<15} {mb:>7.1} {read:>8.4} {:>7.3} {read_cpu:>7.2} {:>9} {:>10} {:>9}",
            "page-cache read",
            mb / read / 1e3,
            per_cpu(read_cpu),
            "1.00",
            "1.00"
        );
        for (i, (label, _)) in PROJECTIONS.iter().enumerate() {
            let (t, cpu) = (median(times[i].clone()), median(cpus[i].clone()));
            let cpu_ratio = if read_cpu > 0.0 { format!("{:.2}", cpu / read_cpu) } else { "-".into() };
            println!(
                "{name:<8} {label:<15} {mb:>7.1} {t:>8.4} {:>7.3} {cpu:>7.2} {:>9} {:>10.2} {cpu_ratio:>9}",
                mb / t / 1e3,
                per_cpu(cpu),
                t / read
            );
        }
    }
}
