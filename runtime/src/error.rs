//! The one runtime error type.
//!
//! Kinds are semantic (after DataFusion's `DataFusionError`): what went wrong for the user, not
//! which library failed. Context is added at subsystem boundaries with [`Error::context`].

use std::fmt;

/// Result alias used throughout flowgate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong while building or running a streaming query.
#[derive(Debug, thiserror::Error)]
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
    /// An I/O error, with what flowgate was doing at the time.
    #[error("io error while {context}: {source}")]
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
