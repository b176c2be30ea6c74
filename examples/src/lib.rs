//! Runnable flowgate programs live in `examples/` (`cargo run --release --example NAME`);
//! this library holds what they share: a tiny argument parser and logging set up from
//! `RUST_LOG`.

/// Logs to stderr, filtered by `RUST_LOG` (default `info`: a line per query start, stop and
/// failure; `RUST_LOG=flowgate=debug` adds a line per batch and the spans of its phases).
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}

/// The value after `--name` in the program's arguments, if given.
pub fn arg(name: &str) -> Option<String> {
    let flag = format!("--{name}");
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        if a == flag {
            return args.next();
        }
        if let Some(v) = a.strip_prefix(&format!("{flag}=")) {
            return Some(v.to_string());
        }
    }
    None
}

/// `arg(name)` parsed, or `default`; a value that does not parse is an error naming the flag.
pub fn arg_or<T: std::str::FromStr>(name: &str, default: T) -> Result<T, String> {
    match arg(name) {
        None => Ok(default),
        Some(v) => v.parse().map_err(|_| format!("--{name}: cannot parse `{v}`")),
    }
}

/// The path of example `name`'s binary, for end-to-end tests, built first: `cargo test` builds
/// examples next to the test binaries only when it runs every target, and a binary left there
/// by an earlier build may be stale (cargo's build is a no-op when it is up to date).
pub fn example_binary(name: &str) -> std::path::PathBuf {
    // target/<profile>/deps/<test> → target/<profile>/examples/<name>
    let exe = std::env::current_exe().expect("test binary path");
    let profile_dir = exe.parent().and_then(|d| d.parent()).expect("target dir").to_path_buf();
    let bin = profile_dir.join("examples").join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    let release = profile_dir.file_name().is_some_and(|p| p == "release");
    let mut cmd = std::process::Command::new(env!("CARGO"));
    cmd.args(["build", "-q", "-p", "flowgate-examples", "--example", name]);
    if cfg!(feature = "kafka") {
        // The Kafka examples require the feature this test was built with.
        cmd.args(["--features", "kafka"]);
    }
    if release {
        cmd.arg("--release");
    }
    let status = cmd.status().expect("running cargo build");
    assert!(status.success(), "building example {name} failed");
    bin
}
