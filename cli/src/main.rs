//! `flowgate`: inspect and verify checkpoints, read a stateful operator's state and a file
//! sink's committed output, and write
//! `#[derive(Record)]` structs from sample data.
//!
//! Output is a table for people, JSON with `--json` for scripts. Exit status: 0 when all went
//! well, 1 when `checkpoint verify` found a damaged file, 2 for a usage error or a failure (the
//! error is printed as one sentence on stderr). `RUST_LOG` sets the log level (`warn` by
//! default).

/// `println!` that ends the program quietly when stdout is closed early (`flowgate ... | head`)
/// instead of panicking.
macro_rules! out {
    ($($t:tt)*) => {
        $crate::write_line(format_args!($($t)*))
    };
}

mod checkpoint;
mod infer;
mod sink;
mod state;
mod table;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "flowgate", version, about = "Operate flowgate streaming queries: checkpoints, sink output, schemas")]
struct Cli {
    /// Print JSON instead of tables.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Inspect a query's checkpoint directory.
    Checkpoint {
        #[command(subcommand)]
        command: CheckpointCommand,
    },
    /// Read a stateful operator's state (Spark 4's `statestore` reader).
    State {
        #[command(subcommand)]
        command: StateCommand,
    },
    /// Read a file sink's output.
    Sink {
        #[command(subcommand)]
        command: SinkCommand,
    },
    /// Print a `#[derive(Record)]` struct for sample files (JSON lines, CSV with a header,
    /// Parquet).
    InferSchema {
        /// Sample files, all of one format (by extension: .json/.jsonl, .csv, .parquet).
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Name of the struct (default: from the first file's name).
        #[arg(long)]
        name: Option<String>,
        /// Lines read per file for JSON and CSV.
        #[arg(long, default_value_t = infer::DEFAULT_SAMPLE_LINES)]
        sample: usize,
    },
}

#[derive(Subcommand)]
enum CheckpointCommand {
    /// The query's id and settings, its last batches (offsets, commits, watermarks) and its
    /// state per operator.
    Show {
        /// The checkpoint directory.
        dir: PathBuf,
        /// How many of the latest batches to list.
        #[arg(long, default_value_t = 10)]
        batches: usize,
    },
    /// Check every file of the checkpoint (checksums, and that each file decodes); exits 1 and
    /// names each damaged file when any is.
    Verify {
        /// The checkpoint directory.
        dir: PathBuf,
    },
}

#[derive(Subcommand)]
enum StateCommand {
    /// Every key and value of one operator's state after a committed batch, decoded by the
    /// layouts the checkpoint records.
    Read {
        /// The checkpoint directory.
        dir: PathBuf,
        /// The stateful operator's id (`flowgate checkpoint show` lists them).
        #[arg(long, default_value_t = 0)]
        operator: usize,
        /// The committed batch whose resulting state to read (default: the last committed).
        #[arg(long)]
        batch: Option<u64>,
    },
}

#[derive(Subcommand)]
enum SinkCommand {
    /// The rows of every committed batch, through the sink's manifest (files of batches that
    /// were never committed are not read).
    Read {
        /// The sink's output directory.
        dir: PathBuf,
    },
}

fn main() -> ExitCode {
    init_logging();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Checkpoint { command: CheckpointCommand::Show { dir, batches } } => {
            checkpoint::show(&dir, batches, cli.json).map(|()| ExitCode::SUCCESS)
        }
        Command::Checkpoint { command: CheckpointCommand::Verify { dir } } => checkpoint::verify(&dir, cli.json)
            .map(|damaged| if damaged == 0 { ExitCode::SUCCESS } else { ExitCode::from(1) }),
        Command::State { command: StateCommand::Read { dir, operator, batch } } => {
            state::read(&dir, operator, batch, cli.json).map(|()| ExitCode::SUCCESS)
        }
        Command::Sink { command: SinkCommand::Read { dir } } => sink::read(&dir, cli.json).map(|()| ExitCode::SUCCESS),
        Command::InferSchema { files, name, sample } => {
            infer::run(&files, name.as_deref(), sample, cli.json).map(|()| ExitCode::SUCCESS)
        }
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

/// Writes a line to stdout; a closed pipe ends the program with success (the reader has what
/// it wanted), another write error with status 2.
fn write_line(args: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    if let Err(e) = writeln!(out, "{args}") {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("error: writing the output: {e}");
        std::process::exit(2);
    }
}

/// Logs to stderr, filtered by `RUST_LOG` (default `warn`).
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}
