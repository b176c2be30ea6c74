//! The seed's program: count words in lines read from a socket, complete mode, console sink.
//!
//! ```text
//! nc -lk 9999                                   # terminal 1: type lines here
//! cargo run --release --example word_count      # terminal 2: see the counts
//! ```
//!
//! Options: `--host HOST` (default localhost), `--port PORT` (default 9999).

use flowgate::prelude::*;

/// One line of text from the socket (Spark's socket source has one column, `value`).
#[derive(Record)]
struct Line {
    value: Option<String>,
}

#[derive(Record)]
struct WordCount {
    word: String,
    count: i64,
}

stream_query! {
    /// `lines.select(explode(split(value, " ")) as word).groupBy("word").count()`
    query WordCounts(lines: Line) -> WordCount, mode = complete {
        lines
            .flat_map(word = split(value, " "))
            .group_by(word)
            .agg(count() as count)
    }
}

fn main() -> flowgate::Result<()> {
    flowgate_examples::init_logging();
    let host = flowgate_examples::arg("host").unwrap_or_else(|| "localhost".to_string());
    let port: u16 = flowgate_examples::arg_or("port", 9999).map_err(flowgate::Error::Plan)?;
    let query = WordCounts::builder().lines(Source::socket(&host, port)).sink(Sink::console()).start()?;
    query.await_termination()
}
