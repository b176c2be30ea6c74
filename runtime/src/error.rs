//! The one runtime error type.
//!
//! Kinds are semantic (after DataFusion's `DataFusionError`): what went wrong for the user, not
//! which library failed. Context is added at subsystem boundaries with [`Error::context`].
//!
//! An error displays as one sentence for a person: the context chain, outermost first, joined
//! by `: `, ending with what to do where there is something to do (a damaged checkpoint file
//! names itself and the `flowgate checkpoint verify` command that checks every file). `Debug`
//! prints the same sentence, so `fn main() -> flowgate::Result<()>` shows it as is (as
//! `anyhow` does); `{:#?}` gives the structure.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Result alias used throughout flowgate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong while building or running a streaming query.
#[derive(thiserror::Error)]
pub enum Error {
    /// The query was set up wrongly (a missing source, a schema that does not fit its source).
    #[error("plan error: {0}")]
    Plan(String),
    /// Input data that cannot be read under the chosen parse mode (FAILFAST).
    #[error("malformed input: {0}")]
    MalformedInput(String),
    /// Failure while running a batch.
    #[error("execution error: {0}")]
    Execution(String),
    /// A checkpoint or state file is missing, torn or corrupt.
    #[error("checkpoint error: {0}")]
    Checkpoint(String),
    /// A checkpoint file that fails its checks (truncated, torn, bit-flipped, not ours).
    #[error(
        "checkpoint file {} is damaged: {reason}. {}",
        path.display(),
        verify_hint(checkpoint.as_deref())
    )]
    CorruptFile {
        /// The damaged file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
        /// The checkpoint directory it belongs to, when it could be told.
        checkpoint: Option<PathBuf>,
    },
    /// An I/O error, with what flowgate was doing at the time.
    #[error("io error while {context}: {source}{}", io_hint(source))]
    Io {
        /// What flowgate was doing.
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// An error from Arrow.
    #[error("arrow error: {0}")]
    Arrow(#[from] arrow_schema::ArrowError),
    /// The user's own code (a foreach_batch closure) failed.
    #[error("user code failed: {0}")]
    User(String),
    /// The query was stopped.
    #[error("query stopped")]
    Stopped,
    /// A bug in flowgate: an invariant did not hold.
    #[error("internal error (this is a bug in flowgate, please report it): {0}")]
    Internal(String),
    /// A query stopped with an error (what `await_termination` and the query manager return).
    #[error("query `{name}` failed: {source}")]
    QueryFailed {
        /// The query's name.
        name: String,
        /// The error that stopped it (shared: every waiter gets it).
        #[source]
        source: Arc<Error>,
    },
    /// An error with context about where it happened.
    #[error("{context}: {source}")]
    Context {
        /// Where it happened.
        context: String,
        /// The underlying error.
        #[source]
        source: Box<Error>,
    },
}

impl Error {
    /// Wraps this error with a description of what was being done.
    pub fn context(self, context: impl fmt::Display) -> Self {
        Error::Context { context: context.to_string(), source: Box::new(self) }
    }

    /// An [`Error::Io`] with context.
    pub fn io(context: impl fmt::Display, source: std::io::Error) -> Self {
        Error::Io { context: context.to_string(), source }
    }

    /// An [`Error::CorruptFile`] for `path`; the checkpoint directory is the nearest ancestor
    /// holding a `metadata` file (looked up only now, on the error path).
    pub fn corrupt_file(path: &Path, reason: impl fmt::Display) -> Self {
        let checkpoint = path.ancestors().skip(1).find(|a| a.join("metadata").is_file()).map(Path::to_path_buf);
        Error::CorruptFile { path: path.to_path_buf(), reason: reason.to_string(), checkpoint }
    }

    /// The innermost error under the context wrappers (the kind that says what went wrong).
    pub fn root(&self) -> &Error {
        match self {
            Error::Context { source, .. } => source.root(),
            Error::QueryFailed { source, .. } => source.root(),
            e => e,
        }
    }
}

/// Prints the same sentence as `Display` (so `fn main() -> flowgate::Result<()>` reads well);
/// the alternate form `{:#?}` prints the variant structure.
impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !f.alternate() {
            return fmt::Display::fmt(self, f);
        }
        match self {
            Error::Plan(m) => f.debug_tuple("Plan").field(m).finish(),
            Error::MalformedInput(m) => f.debug_tuple("MalformedInput").field(m).finish(),
            Error::Execution(m) => f.debug_tuple("Execution").field(m).finish(),
            Error::Checkpoint(m) => f.debug_tuple("Checkpoint").field(m).finish(),
            Error::CorruptFile { path, reason, checkpoint } => f
                .debug_struct("CorruptFile")
                .field("path", path)
                .field("reason", reason)
                .field("checkpoint", checkpoint)
                .finish(),
            Error::Io { context, source } => {
                f.debug_struct("Io").field("context", context).field("source", source).finish()
            }
            Error::Arrow(e) => f.debug_tuple("Arrow").field(e).finish(),
            Error::User(m) => f.debug_tuple("User").field(m).finish(),
            Error::Stopped => f.write_str("Stopped"),
            Error::Internal(m) => f.debug_tuple("Internal").field(m).finish(),
            Error::QueryFailed { name, source } => {
                f.debug_struct("QueryFailed").field("name", name).field("source", source).finish()
            }
            Error::Context { context, source } => {
                f.debug_struct("Context").field("context", context).field("source", source).finish()
            }
        }
    }
}

/// What to do about a damaged checkpoint file.
fn verify_hint(checkpoint: Option<&Path>) -> String {
    let dir = checkpoint.map(|d| d.display().to_string()).unwrap_or_else(|| "CHECKPOINT_DIR".into());
    format!(
        "`flowgate checkpoint verify {dir}` lists every damaged file; restore them from a backup, or start the \
         query on a new checkpoint directory (it then reprocesses its sources from the start)"
    )
}

/// What to do about the I/O errors a user can fix.
fn io_hint(e: &std::io::Error) -> &'static str {
    match e.kind() {
        std::io::ErrorKind::NotFound => " (check that the path exists)",
        std::io::ErrorKind::PermissionDenied => " (check that this process may read and write there)",
        std::io::ErrorKind::StorageFull => " (the disk is full: free space and restart the query)",
        std::io::ErrorKind::ConnectionRefused => " (is the server running and listening on that address?)",
        std::io::ErrorKind::AddrInUse => " (another process listens there: pick another address or stop it)",
        _ => "",
    }
}

/// Adds context to a `Result`'s error.
pub trait ResultExt<T> {
    /// Wraps the error (if any) with `context`.
    fn context(self, context: impl fmt::Display) -> Result<T>;
}

impl<T, E: Into<Error>> ResultExt<T> for std::result::Result<T, E> {
    fn context(self, context: impl fmt::Display) -> Result<T> {
        self.map_err(|e| e.into().context(context))
    }
}
