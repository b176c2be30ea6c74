//! # flowgate
//!
//! Spark Structured Streaming for Rust, as a code-generating query compiler. A query is
//! written in the [`stream_query!`] DSL; the macro checks it at compile time and emits
//! specialized operator code (typed loops over Arrow arrays) that runs on this runtime:
//! sources, sinks, triggers, the micro-batch engine and the stateful operator kernels.
//!
//! ```
//! use flowgate::prelude::*;
//!
//! #[derive(Record)]
//! struct Line { value: Option<String> }
//!
//! #[derive(Record, Debug, PartialEq)]
//! struct WordCount { word: String, count: i64 }
//!
//! stream_query! {
//!     /// The seed's word count.
//!     query Words(lines: Line) -> WordCount, mode = complete {
//!         lines
//!             .flat_map(word = split(value, " "))
//!             .group_by(word)
//!             .agg(count() as count)
//!     }
//! }
//!
//! # fn main() -> flowgate::Result<()> {
//! let input = MemoryStream::<Line>::new();
//! let table = MemoryTable::new();
//! let query = Words::builder()
//!     .lines(Source::memory(&input))
//!     .sink(Sink::memory(&table))
//!     .start()?;
//! input.add(vec![Line { value: Some("cat dog dog".into()) }]);
//! query.process_all_available()?;
//! let mut rows: Vec<WordCount> = table.rows()?;
//! rows.sort_by(|a, b| a.word.cmp(&b.word));
//! assert_eq!(rows, vec![
//!     WordCount { word: "cat".into(), count: 1 },
//!     WordCount { word: "dog".into(), count: 2 },
//! ]);
//! query.stop()?;
//! # Ok(()) }
//! ```

pub mod agg;
pub mod checkpoint;
pub mod clock;
pub mod codec;
pub mod dsl;
pub mod engine;
pub mod error;
pub mod exec;
pub mod functions;
#[cfg(any(test, feature = "fuzzing"))]
pub mod fuzzing;
pub mod list;
pub mod monitor;
pub mod ops;
pub mod partition;
pub mod record;
pub mod sink;
pub mod sort;
pub mod source;
pub mod value;
pub mod watermark;
pub mod window;

use flowgate_interval as duration_parse;

use std::fmt;

pub use engine::{QueryBuilder, QueryProgress, StreamingQuery, Trigger};
pub use error::{Error, Result};
pub use flowgate_macros::{stream_query, Record, StateCodec};
pub use ops::StateOperatorProgress;
pub use record::{ColumnType, Date, Record, RecordBuilder, Timestamp};
pub use sink::{ConsoleOptions, MemoryTable, Sink, SinkFormat};
pub use source::{MemoryStream, ParseMode, Source};
pub use watermark::WatermarkPolicy;
pub use window::Window;

/// Re-exports for generated code and derive output. Not a stable API.
#[doc(hidden)]
pub mod __private {
    pub use arrow_array;
    pub use arrow_schema;
    pub use rayon;
}

/// What a query writes to its sink each trigger.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash)]
pub enum OutputMode {
    /// Only rows that will never change again.
    Append,
    /// The rows that changed in this trigger.
    Update,
    /// The whole result table, every trigger.
    Complete,
}

impl fmt::Display for OutputMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            OutputMode::Append => "Append",
            OutputMode::Update => "Update",
            OutputMode::Complete => "Complete",
        })
    }
}

/// A length of time in microseconds, written as Spark writes intervals: `"10 minutes"`,
/// `"1 hour 30 minutes"`, `"500 milliseconds"`.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Default)]
pub struct Duration(i64);

impl Duration {
    /// From microseconds.
    pub const fn from_micros(micros: i64) -> Self {
        Duration(micros)
    }
    /// From milliseconds.
    pub const fn from_millis(ms: i64) -> Self {
        Duration(ms * 1000)
    }
    /// From seconds.
    pub const fn from_secs(s: i64) -> Self {
        Duration(s * 1_000_000)
    }
    /// Microseconds.
    pub const fn micros(self) -> i64 {
        self.0
    }
    /// Parses a Spark interval string such as `"10 minutes"`.
    pub fn parse(text: &str) -> Result<Self> {
        duration_parse::parse_duration_micros(text)
            .map(Duration)
            .map_err(|e| Error::Plan(format!("bad duration \"{text}\": {e}")))
    }
    /// As a `std::time::Duration` (negative durations become zero).
    pub fn to_std(self) -> std::time::Duration {
        std::time::Duration::from_micros(self.0.max(0) as u64)
    }
}

/// Everything a query file needs: `use flowgate::prelude::*;`.
pub mod prelude {
    pub use crate::clock::ManualClock;
    pub use crate::functions::*;
    pub use crate::ops::group_state::{GroupRows, GroupState};
    pub use crate::ops::transform_with_state::{
        ExpiredTimerInfo, KeyHandle, ListState, MapState, StatefulProcessor, StatefulProcessorHandle,
        StatefulProcessorWithInitialState, TimerValues, Ttl, ValueState,
    };
    pub use crate::{
        stream_query, ConsoleOptions, Date, Duration, MemoryStream, MemoryTable, OutputMode, ParseMode, Record, Sink,
        SinkFormat, Source, StateCodec, StreamingQuery, Timestamp, Trigger, WatermarkPolicy, Window,
    };
}
