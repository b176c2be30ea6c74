//! The socket source: text lines read from a TCP server, for tests and demos (after Spark's
//! `socket` source). Not fault-tolerant: lines live only in memory until committed.
//!
//! The bytes come from a program this one did not write, so nothing they hold may make the
//! source panic or grow without bound: a line longer than [`SocketOptions::max_line_bytes`] is
//! never held whole (its bytes are discarded as they arrive) and is skipped or fails the query
//! per the [`ParseMode`], as is a line that is not UTF-8; and the lines held before the query
//! commits them are bounded by [`SocketOptions::max_buffered_bytes`] (the reader stops reading,
//! so TCP flow control slows the server down). [`SocketCounters`] counts what was skipped.
//! The source only connects out: nothing listens.
//!
//! By default a line is a row with column `value`, as Spark's. With a format
//! ([`SocketSourceBuilder::json`], [`SocketSourceBuilder::csv`]) each line is decoded into the
//! query's record as the file source decodes a line of a JSON or CSV file (no CSV header), with
//! its parse modes and corrupt-record column.

use std::collections::VecDeque;
use std::io::{self, BufRead, BufReader};
use std::net::{Shutdown, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use arrow_array::{RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema, SchemaRef};

use super::file::{FileFormat, FileOptions, FileSource};
use super::{Offset, ParseMode, ReadLimit, SourceImpl};
use crate::error::{Error, Result};

/// The default longest line: 1 MiB, Kafka's default largest message (`message.max.bytes`,
/// 1 MB), for lines that are messages too.
pub const DEFAULT_MAX_LINE_BYTES: usize = 1 << 20;

/// The default bound on the bytes of lines received and not yet committed: 64 MiB,
/// librdkafka's default `queued.max.messages.kbytes` (65536 KiB) for the same job.
pub const DEFAULT_MAX_BUFFERED_BYTES: usize = 64 << 20;

/// How long the reader waits for room before checking whether the source stops.
const ROOM_WAIT: Duration = Duration::from_millis(50);

/// The reader's socket buffer (a `BufReader`'s default is 8 KiB; larger reads fewer times).
const READ_CHUNK_BYTES: usize = 64 << 10;

/// Options of a [`SocketSource`]; [`SocketOptions::default`] gives the defaults.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SocketOptions {
    /// The longest line kept, in bytes without the line terminator
    /// ([`DEFAULT_MAX_LINE_BYTES`]).
    pub max_line_bytes: usize,
    /// At most about this many bytes of lines are held until committed; then the reader waits
    /// (a single line larger than that is still taken) ([`DEFAULT_MAX_BUFFERED_BYTES`]).
    pub max_buffered_bytes: usize,
    /// What to do with a line that is too long or not UTF-8. [`ParseMode::Permissive`] (the
    /// default) skips a too-long line and keeps an invalid one with U+FFFD for the bad bytes
    /// (as before); [`ParseMode::DropMalformed`] skips both; [`ParseMode::FailFast`] fails the
    /// query once the lines before the bad one are taken, with an [`Error::MalformedInput`]
    /// naming the server, the line and why. Skipped lines are counted in [`SocketCounters`].
    pub mode: ParseMode,
}

impl Default for SocketOptions {
    fn default() -> Self {
        SocketOptions {
            max_line_bytes: DEFAULT_MAX_LINE_BYTES,
            max_buffered_bytes: DEFAULT_MAX_BUFFERED_BYTES,
            mode: ParseMode::Permissive,
        }
    }
}

/// What a [`SocketSource`] skipped (shared with its reader thread; see
/// [`SocketSource::counters`]).
#[derive(Debug, Default)]
pub struct SocketCounters {
    /// Lines longer than [`SocketOptions::max_line_bytes`], skipped.
    pub overlong_lines: AtomicU64,
    /// Lines that were not UTF-8, skipped (under [`ParseMode::DropMalformed`]).
    pub invalid_lines: AtomicU64,
    /// The most bytes the reader ever held of one line (bounded by the line limit plus one
    /// read).
    pub largest_line_buffer: AtomicU64,
}

/// Lines received and not yet committed.
#[derive(Debug, Default)]
struct Lines {
    /// The lines after the first `base` ones (which were committed and dropped).
    lines: VecDeque<String>,
    base: u64,
    /// The bytes of `lines`.
    bytes: usize,
    /// Under FAILFAST: the offset at which a bad line was met, and the error.
    error: Option<(u64, String)>,
    /// In continuous mode: the task to wake when a line arrives.
    waiter: Option<std::thread::Thread>,
}

impl Lines {
    fn end(&self) -> u64 {
        self.base + self.lines.len() as u64
    }
}

/// The lines and the condition the reader waits on for room.
#[derive(Debug, Default)]
struct Shared {
    lines: Mutex<Lines>,
    room: Condvar,
}

fn lock(m: &Mutex<Lines>) -> MutexGuard<'_, Lines> {
    // Every update is a single push or drain, so a poisoned lock still holds consistent lines.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// An open connection and the thread reading it.
struct Connection {
    /// A handle on the socket, to shut it down (which ends the reader's blocking read).
    stream: TcpStream,
    stopping: Arc<AtomicBool>,
    reader: JoinHandle<()>,
}

/// Lines of UTF-8 text from a TCP server, as Spark's socket source: every line (without its
/// `\n` or `\r\n`) becomes a row with the column `value: String`. Lines too long or not UTF-8
/// are handled as [`SocketOptions`] say.
///
/// The source connects on the first [`SourceImpl::latest_offset`]; a background thread then
/// reads lines into memory. The offset is the number of lines received so far; committed lines
/// are dropped, so only uncommitted batches can be read again, and lines received but not
/// committed are lost when the query fails. When the server closes the connection the source
/// has no more data.
pub struct SocketSource {
    host: String,
    port: u16,
    opts: SocketOptions,
    schema: SchemaRef,
    shared: Arc<Shared>,
    counters: Arc<SocketCounters>,
    conn: Option<Connection>,
    /// Under available-now: the last offset of the run.
    snapshot: Option<u64>,
    /// With a format: the decoder of the lines into the record (a file source that is only
    /// asked to decode values).
    decoder: Option<FileSource>,
}

impl SocketSource {
    /// A source that will read lines from `host:port`, with the default options.
    pub fn new(host: &str, port: u16) -> Self {
        Self::with_options(host, port, SocketOptions::default())
    }

    /// A source that will read lines from `host:port` as `opts` say.
    pub fn with_options(host: &str, port: u16, opts: SocketOptions) -> Self {
        SocketSource {
            host: host.to_string(),
            port,
            opts: SocketOptions { max_line_bytes: opts.max_line_bytes.max(1), ..opts },
            schema: Arc::new(Schema::new(vec![Field::new("value", DataType::Utf8, false)])),
            shared: Arc::default(),
            counters: Arc::default(),
            conn: None,
            snapshot: None,
            decoder: None,
        }
    }

    /// Decodes each line into rows of `decoder`'s schema (see [`SocketSourceBuilder`]).
    fn with_decoder(mut self, decoder: FileSource) -> Self {
        self.schema = SourceImpl::schema(&decoder);
        self.decoder = Some(decoder);
        self
    }

    /// The counters of what this source skipped (a handle: keep it before handing the source
    /// to a query with [`crate::Source::from_impl`]).
    pub fn counters(&self) -> Arc<SocketCounters> {
        self.counters.clone()
    }

    fn address(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }

    /// Connects and starts the reader thread, unless connected already.
    fn connect(&mut self) -> Result<()> {
        if self.conn.is_some() {
            return Ok(());
        }
        let address = self.address();
        let stream = TcpStream::connect((self.host.as_str(), self.port))
            .map_err(|e| Error::io(format!("connecting the socket source to {address}"), e))?;
        let reading = stream.try_clone().map_err(|e| Error::io(format!("cloning the socket to {address}"), e))?;
        let stopping = Arc::new(AtomicBool::new(false));
        let reader = {
            let reader = Reader {
                shared: self.shared.clone(),
                counters: self.counters.clone(),
                stopping: stopping.clone(),
                opts: self.opts,
                address: address.clone(),
            };
            std::thread::Builder::new()
                .name(format!("flowgate-socket-{address}"))
                .spawn(move || reader.run(reading))
                .map_err(|e| Error::io(format!("starting the reader thread of the socket source on {address}"), e))?
        };
        tracing::info!("socket source connected to {address}");
        self.conn = Some(Connection { stream, stopping, reader });
        Ok(())
    }
}

/// The reader thread's side.
struct Reader {
    shared: Arc<Shared>,
    counters: Arc<SocketCounters>,
    stopping: Arc<AtomicBool>,
    opts: SocketOptions,
    address: String,
}

/// What the reader does after a line.
enum Next {
    Continue,
    Stop,
}

impl Reader {
    /// Appends every line of `stream` to the shared lines until the connection ends, the
    /// source stops, or a bad line under FAILFAST.
    fn run(&self, stream: TcpStream) {
        let mut reader = BufReader::with_capacity(READ_CHUNK_BYTES, stream);
        // The line so far; emptied and marked `overlong` once it passes the limit, after which
        // its bytes are discarded as they arrive, up to its end.
        let mut line = Vec::new();
        let mut overlong = false;
        let mut number: u64 = 0;
        loop {
            let chunk = match reader.fill_buf() {
                Ok(chunk) => chunk,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    if !self.stopping.load(Ordering::Acquire) {
                        tracing::warn!(
                            "socket source: reading from {} failed ({e}); no more lines will arrive",
                            self.address
                        );
                    }
                    return;
                }
            };
            if chunk.is_empty() {
                if !line.is_empty() || overlong {
                    self.line(number + 1, &line, overlong);
                }
                if !self.stopping.load(Ordering::Acquire) {
                    tracing::warn!("socket source: {} closed the connection; no more lines will arrive", self.address);
                }
                return;
            }
            let (take, ends) = match memchr::memchr(b'\n', chunk) {
                Some(i) => (i, true),
                None => (chunk.len(), false),
            };
            if !overlong {
                // One byte more than the limit may be a `\r` that is not part of the line.
                if line.len() + take > self.opts.max_line_bytes.saturating_add(1) {
                    overlong = true;
                    line = Vec::new();
                } else {
                    line.extend_from_slice(&chunk[..take]);
                    self.counters.largest_line_buffer.fetch_max(line.capacity() as u64, Ordering::Relaxed);
                }
            }
            reader.consume(take + usize::from(ends));
            if ends {
                number += 1;
                if let Next::Stop = self.line(number, &line, overlong) {
                    return;
                }
                line.clear();
                overlong = false;
            }
        }
    }

    /// Handles line `number` (its bytes `raw`, without the `\n`, unless `overlong`).
    fn line(&self, number: u64, raw: &[u8], overlong: bool) -> Next {
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        let overlong = overlong || raw.len() > self.opts.max_line_bytes;
        let text = if overlong {
            None
        } else {
            match std::str::from_utf8(raw) {
                Ok(text) => Some(text.to_string()),
                Err(_) if self.opts.mode == ParseMode::Permissive => Some(String::from_utf8_lossy(raw).into_owned()),
                Err(_) => None,
            }
        };
        if let Some(text) = text {
            self.push(text);
            return Next::Continue;
        }
        let why = if overlong {
            format!("is longer than the limit of {} bytes (SocketOptions::max_line_bytes)", self.opts.max_line_bytes)
        } else {
            "is not UTF-8 text".to_string()
        };
        if self.opts.mode == ParseMode::FailFast {
            let message = format!(
                "socket source on {}: line {number} {why} (mode FAILFAST: use PERMISSIVE or DROPMALFORMED to skip it)",
                self.address
            );
            let mut lines = lock(&self.shared.lines);
            let at = lines.end();
            lines.error = Some((at, message));
            if let Some(t) = &lines.waiter {
                t.unpark();
            }
            return Next::Stop;
        }
        let counter = if overlong { &self.counters.overlong_lines } else { &self.counters.invalid_lines };
        let skipped = counter.fetch_add(1, Ordering::Relaxed) + 1;
        tracing::warn!("socket source on {}: skipping line {number}, which {why} ({skipped} so far)", self.address);
        Next::Continue
    }

    /// Appends a line once there is room for it (or nothing is held).
    fn push(&self, text: String) {
        let mut lines = lock(&self.shared.lines);
        while !lines.lines.is_empty()
            && lines.bytes + text.len() > self.opts.max_buffered_bytes
            && !self.stopping.load(Ordering::Acquire)
        {
            lines = self.shared.room.wait_timeout(lines, ROOM_WAIT).unwrap_or_else(|e| e.into_inner()).0;
        }
        lines.bytes += text.len();
        lines.lines.push_back(text);
        if let Some(t) = &lines.waiter {
            t.unpark();
        }
    }
}

fn parse(offset: &Offset) -> Result<u64> {
    offset.as_u64().ok_or_else(|| Error::Checkpoint(format!("socket source offset {offset} is not a number")))
}

impl SourceImpl for SocketSource {
    fn description(&self) -> String {
        format!("TextSocketSource[host: {}, port: {}]", self.host, self.port)
    }

    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn project(&mut self, columns: &[&str]) {
        if let Some(d) = &mut self.decoder {
            d.project(columns);
        }
    }

    fn prepare_available_now(&mut self) -> Result<()> {
        self.connect()?;
        self.snapshot = Some(lock(&self.shared.lines).end());
        Ok(())
    }

    fn latest_offset(&mut self, start: Option<&Offset>, _limit: ReadLimit) -> Result<Option<Offset>> {
        self.connect()?;
        let start = start.map(parse).transpose()?.unwrap_or(0);
        let lines = lock(&self.shared.lines);
        let mut end = lines.end();
        if let Some((at, message)) = &lines.error {
            // The lines before the bad one go first; then the query fails.
            if start >= *at {
                return Err(Error::MalformedInput(message.clone()));
            }
        }
        drop(lines);
        if let Some(snapshot) = self.snapshot {
            end = end.min(snapshot);
        }
        Ok((end > 0).then(|| Offset::number(end)))
    }

    fn get_batch(&mut self, start: Option<&Offset>, end: &Offset) -> Result<Vec<RecordBatch>> {
        let start = start.map(parse).transpose()?.unwrap_or(0);
        let end = parse(end)?;
        let shared = lock(&self.shared.lines);
        if start < shared.base || end > shared.end() || start > end {
            return Err(Error::Execution(format!(
                "socket source on {} cannot give lines ({start}, {end}]: it holds ({}, {}] (the socket source is \
                 not replayable: committed lines are dropped)",
                self.address(),
                shared.base,
                shared.end()
            )));
        }
        let range = (start - shared.base) as usize..(end - shared.base) as usize;
        if let Some(decoder) = &self.decoder {
            let mut data = Vec::new();
            let mut ranges = Vec::with_capacity(range.len());
            for line in shared.lines.range(range) {
                let at = data.len();
                data.extend_from_slice(line.as_bytes());
                ranges.push((at, data.len()));
                data.push(b'\n');
            }
            drop(shared);
            let address = self.address();
            let place = |i: usize| format!("line {} from {address}", start + i as u64 + 1);
            return decoder.decode_values(&data, &ranges, &place);
        }
        let values: StringArray = shared.lines.range(range).map(Some).collect();
        drop(shared);
        Ok(vec![RecordBatch::try_new(self.schema.clone(), vec![Arc::new(values)])?])
    }

    fn commit(&mut self, end: &Offset) -> Result<()> {
        let end = parse(end)?;
        let mut shared = lock(&self.shared.lines);
        let n = end.saturating_sub(shared.base).min(shared.lines.len() as u64);
        let freed: usize = shared.lines.drain(..n as usize).map(|l| l.len()).sum();
        shared.base += n;
        shared.bytes -= freed;
        drop(shared);
        self.shared.room.notify_all();
        Ok(())
    }

    /// One partition: the connection, whose lines a task takes as they arrive (not
    /// replayable: see `SocketPartition`).
    fn continuous_readers(
        &mut self,
        start: Option<&[serde_json::Value]>,
    ) -> Result<Option<Vec<Box<dyn super::continuous::PartitionReader>>>> {
        let read = match start {
            None => 0,
            Some([p]) => p.as_u64().ok_or_else(|| {
                Error::Checkpoint(format!(
                    "socket source on {}: the logged position {p} is not a number",
                    self.address()
                ))
            })?,
            Some(other) => {
                return Err(Error::Checkpoint(format!(
                    "socket source on {}: the checkpoint has {} partitions, the source has one",
                    self.address(),
                    other.len()
                )))
            }
        };
        self.connect()?;
        Ok(Some(vec![Box::new(SocketPartition {
            shared: self.shared.clone(),
            schema: self.schema.clone(),
            decoder: self.decoder.take(),
            address: self.address(),
            read,
            taken: 0,
        })]))
    }

    fn stop(&mut self) {
        if let Some(conn) = self.conn.take() {
            conn.stopping.store(true, Ordering::Release);
            self.shared.room.notify_all();
            // Ends the reader's blocking read; an error means the socket is already closed.
            let _ = conn.stream.shutdown(Shutdown::Both);
            if conn.reader.join().is_err() {
                tracing::warn!("socket source: the reader thread of {} panicked", self.address());
            }
        }
    }
}

impl Drop for SocketSource {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The socket source in continuous mode: one partition, the connection, read by one task
/// that the reader thread wakes when a line arrives. A poll takes every line received (at
/// most the vector size) and drops it at once: lines are never read twice in one run (a
/// continuous query re-reads nothing while it runs), and after a restart they are gone in
/// any case. The position is the number of lines taken, counted on from the logged one
/// after a restart (the new connection's lines follow the old ones').
///
/// Not replayable, as in micro-batch mode: an epoch that was logged but not committed when
/// the query died cannot be read again, and the restart fails saying so.
struct SocketPartition {
    shared: Arc<Shared>,
    schema: SchemaRef,
    decoder: Option<FileSource>,
    address: String,
    /// Lines taken in earlier runs (the logged position this run started from).
    read: u64,
    /// Lines taken in this run.
    taken: u64,
}

impl super::continuous::PartitionReader for SocketPartition {
    fn poll(&mut self, max_rows: usize) -> Result<Option<RecordBatch>> {
        let mut lines = lock(&self.shared.lines);
        if lines.lines.is_empty() {
            if let Some((_, message)) = &lines.error {
                // Every line before the bad one was taken: now the query fails.
                return Err(Error::MalformedInput(message.clone()));
            }
            return Ok(None);
        }
        let n = lines.lines.len().min(max_rows.max(1));
        let taken: Vec<String> = lines.lines.drain(..n).collect();
        let freed: usize = taken.iter().map(String::len).sum();
        lines.bytes -= freed;
        lines.base += n as u64;
        drop(lines);
        self.shared.room.notify_all();
        let first = self.read + self.taken;
        self.taken += n as u64;
        if let Some(decoder) = &self.decoder {
            let mut data = Vec::with_capacity(freed + n);
            let mut ranges = Vec::with_capacity(n);
            for line in &taken {
                let at = data.len();
                data.extend_from_slice(line.as_bytes());
                ranges.push((at, data.len()));
                data.push(b'\n');
            }
            let address = &self.address;
            let place = |i: usize| format!("line {} from {address}", first + i as u64 + 1);
            let batches = decoder.decode_values(&data, &ranges, &place)?;
            let batch = match batches.len() {
                0 => RecordBatch::new_empty(self.schema.clone()),
                1 => batches.into_iter().next().unwrap_or_else(|| RecordBatch::new_empty(self.schema.clone())),
                _ => arrow_select::concat::concat_batches(&batches[0].schema(), &batches)?,
            };
            return Ok(Some(batch));
        }
        let values: StringArray = taken.iter().map(|l| Some(l.as_str())).collect();
        Ok(Some(RecordBatch::try_new(self.schema.clone(), vec![Arc::new(values)])?))
    }

    fn position(&self) -> serde_json::Value {
        serde_json::Value::from(self.read + self.taken)
    }

    fn next_due(&self) -> Option<std::time::Instant> {
        None
    }

    fn set_end(&mut self, end: &serde_json::Value) -> Result<()> {
        if *end == self.position() {
            return Ok(()); // the epoch took no lines: nothing to read again
        }
        Err(Error::Execution(format!(
            "socket source on {}: an epoch ending at line {end} was logged but not committed when the query stopped, \
             and the socket source cannot read its lines again (it is not replayable); start the query with a new \
             checkpoint directory",
            self.address
        )))
    }

    fn wake_on_data(&mut self, thread: std::thread::Thread) -> bool {
        lock(&self.shared.lines).waiter = Some(thread);
        true
    }
}

/// A socket source being set up (`Source::socket(host, port)`): lines as Spark's `value`
/// column by default, or decoded into the query's record with [`SocketSourceBuilder::json`] or
/// [`SocketSourceBuilder::csv`] and the file source's options for those formats.
pub struct SocketSourceBuilder<T> {
    host: String,
    port: u16,
    options: SocketOptions,
    decode: Option<FileOptions>,
    _t: std::marker::PhantomData<fn() -> T>,
}

impl<T: crate::Record> SocketSourceBuilder<T> {
    pub(crate) fn new(host: &str, port: u16, options: SocketOptions) -> Self {
        SocketSourceBuilder { host: host.to_string(), port, options, decode: None, _t: std::marker::PhantomData }
    }

    fn format(mut self, format: FileFormat) -> Self {
        let mut fo = self.decode.take().unwrap_or_else(|| {
            let mut fo = FileOptions::new(std::path::PathBuf::from("<socket>"), T::schema());
            fo.csv_header = false;
            fo
        });
        fo.format = format;
        // A malformed line is the parse mode's business, as in a file.
        fo.mode = self.options.mode;
        self.decode = Some(fo);
        self
    }

    /// Each line is one JSON object, decoded into the record (as a line of a JSON file).
    pub fn json(self) -> Self {
        self.format(FileFormat::Json)
    }

    /// Each line is one CSV record of the record's fields in order (no header line).
    pub fn csv(self) -> Self {
        self.format(FileFormat::Csv)
    }

    /// The CSV field delimiter (default `,`).
    pub fn delimiter(mut self, delimiter: u8) -> Self {
        if let Some(fo) = &mut self.decode {
            fo.csv_delimiter = delimiter;
        }
        self
    }

    /// What to do with a line that does not decode (Spark's `mode`; default PERMISSIVE), and
    /// with a line that is too long or not UTF-8 ([`SocketOptions::mode`]).
    pub fn mode(mut self, mode: ParseMode) -> Self {
        self.options.mode = mode;
        if let Some(fo) = &mut self.decode {
            fo.mode = mode;
        }
        self
    }

    /// Under PERMISSIVE, the nullable string field that receives a malformed line's text
    /// (default `_corrupt_record`, if the record has it).
    pub fn corrupt_record_column(mut self, name: &str) -> Self {
        if let Some(fo) = &mut self.decode {
            fo.corrupt_record_column = Some(name.to_string());
        }
        self
    }
}

impl<T: crate::Record> From<SocketSourceBuilder<T>> for super::Source<T> {
    fn from(b: SocketSourceBuilder<T>) -> Self {
        let source = SocketSource::with_options(&b.host, b.port, b.options);
        let source = match b.decode {
            Some(fo) => source.with_decoder(FileSource::new(fo)),
            None => source,
        };
        super::Source::from_impl(Box::new(source))
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::net::TcpListener;
    use std::time::{Duration, Instant};

    use arrow_array::cast::AsArray;

    use super::*;

    /// Polls `latest_offset` until it reaches `n` lines (or fails the test after 10 s).
    fn wait_for(src: &mut SocketSource, n: u64) -> Offset {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(end) = src.latest_offset(None, ReadLimit::Default).unwrap() {
                if end.as_u64() == Some(n) {
                    return end;
                }
            }
            assert!(Instant::now() < deadline, "timed out waiting for {n} lines");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    fn values(batches: &[RecordBatch]) -> Vec<String> {
        batches.iter().flat_map(|b| b.column(0).as_string::<i32>().iter().map(|s| s.unwrap().to_string())).collect()
    }

    #[test]
    fn lines_become_rows_and_commit_drops_them() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = std::thread::spawn(move || {
            let (mut conn, _) = listener.accept().unwrap();
            conn.write_all(b"hello world\r\nthe cat\n").unwrap();
            std::thread::sleep(Duration::from_millis(50));
            conn.write_all(b"\nlast line without newline").unwrap();
        });
        let mut src = SocketSource::new("127.0.0.1", port);
        assert_eq!(src.description(), format!("TextSocketSource[host: 127.0.0.1, port: {port}]"));
        let first = wait_for(&mut src, 2);
        let batches = src.get_batch(None, &first).unwrap();
        assert_eq!(batches[0].schema(), src.schema());
        assert_eq!(values(&batches), ["hello world", "the cat"]);
        // Uncommitted lines can be read again.
        assert_eq!(values(&src.get_batch(None, &first).unwrap()), ["hello world", "the cat"]);
        src.commit(&first).unwrap();
        assert!(matches!(src.get_batch(None, &first), Err(Error::Execution(_))));

        server.join().unwrap();
        let second = wait_for(&mut src, 4);
        assert_eq!(values(&src.get_batch(Some(&first), &second).unwrap()), ["", "last line without newline"]);
        // The server is gone: no more data, no error.
        assert_eq!(src.latest_offset(Some(&second), ReadLimit::Default).unwrap(), Some(second));
        src.stop();
    }

    /// A server that sends `data` to one client, then closes.
    fn serve(data: Vec<u8>) -> (u16, std::thread::JoinHandle<()>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = std::thread::spawn(move || {
            let (mut conn, _) = listener.accept().unwrap();
            // The source may stop reading (FAILFAST) before taking everything.
            let _ = conn.write_all(&data);
        });
        (port, server)
    }

    /// Takes and commits every line until the reader has finished with the connection and
    /// nothing is left; returns the lines, or the error the source reported.
    fn drain(src: &mut SocketSource, server: std::thread::JoinHandle<()>) -> Result<Vec<String>> {
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut out = Vec::new();
        let mut start = None;
        loop {
            let finished = src.conn.as_ref().unwrap().reader.is_finished();
            let end = src.latest_offset(start.as_ref(), ReadLimit::Default)?;
            if let Some(end) = end.filter(|e| Some(e) != start.as_ref()) {
                out.extend(values(&src.get_batch(start.as_ref(), &end)?));
                src.commit(&end)?;
                start = Some(end);
            } else if finished {
                server.join().unwrap();
                return Ok(out);
            } else {
                assert!(Instant::now() < deadline, "the reader did not finish");
                std::thread::sleep(Duration::from_millis(2));
            }
        }
    }

    /// Valid lines around binary junk: invalid UTF-8, NULs, control bytes, a lone `\r`.
    fn junk() -> Vec<u8> {
        let mut data = b"first\n".to_vec();
        data.extend_from_slice(&[0xff, 0xfe, 0x00, 0x01, b'a', 0xc3, b'\n']);
        data.extend_from_slice(b"\x00\x07 nul and bell are text\r\n\rmid\rline\n");
        data.extend_from_slice(&[0xed, 0xa0, 0x80, b'\n']); // an encoded surrogate: not UTF-8
        data.extend_from_slice(b"last");
        data
    }

    #[test]
    fn binary_junk_is_kept_replaced_skipped_or_fails_per_mode() {
        let opts = |mode| SocketOptions { mode, ..SocketOptions::default() };
        let (port, server) = serve(junk());
        let mut src = SocketSource::with_options("127.0.0.1", port, opts(ParseMode::Permissive));
        src.latest_offset(None, ReadLimit::Default).unwrap();
        let lines = drain(&mut src, server).unwrap();
        assert_eq!(
            lines,
            [
                "first",
                "\u{fffd}\u{fffd}\0\u{1}a\u{fffd}",
                "\0\u{7} nul and bell are text",
                "\rmid\rline",
                "\u{fffd}\u{fffd}\u{fffd}",
                "last"
            ]
        );

        let (port, server) = serve(junk());
        let mut src = SocketSource::with_options("127.0.0.1", port, opts(ParseMode::DropMalformed));
        src.latest_offset(None, ReadLimit::Default).unwrap();
        let lines = drain(&mut src, server).unwrap();
        assert_eq!(lines, ["first", "\0\u{7} nul and bell are text", "\rmid\rline", "last"]);
        assert_eq!(src.counters().invalid_lines.load(Ordering::Relaxed), 2);

        let (port, server) = serve(junk());
        let mut src = SocketSource::with_options("127.0.0.1", port, opts(ParseMode::FailFast));
        src.latest_offset(None, ReadLimit::Default).unwrap();
        // The line before the bad one is delivered; then the source fails, naming it.
        let err = drain(&mut src, server).unwrap_err();
        let message = err.to_string();
        assert!(matches!(err, Error::MalformedInput(_)), "{err}");
        assert!(message.contains(&format!("127.0.0.1:{port}")) && message.contains("line 2 is not UTF-8"), "{message}");
        assert_eq!(src.counters().invalid_lines.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn a_100_mb_line_is_never_held_and_is_skipped_or_fails_per_mode() {
        let mut data = b"before\n".to_vec();
        data.resize(data.len() + (100 << 20), b'x');
        data.extend_from_slice(b"\r\nafter\n");
        let data = Arc::new(data);
        let (port, server) = serve(data.to_vec());
        let mut src = SocketSource::new("127.0.0.1", port);
        src.latest_offset(None, ReadLimit::Default).unwrap();
        assert_eq!(drain(&mut src, server).unwrap(), ["before", "after"]);
        let counters = src.counters();
        assert_eq!(counters.overlong_lines.load(Ordering::Relaxed), 1);
        let held = counters.largest_line_buffer.load(Ordering::Relaxed);
        assert!(held <= 2 * (DEFAULT_MAX_LINE_BYTES + READ_CHUNK_BYTES) as u64, "held {held} bytes of one line");

        // A line of exactly the limit is kept; one byte more is not.
        let opts = SocketOptions { max_line_bytes: 4, mode: ParseMode::FailFast, ..SocketOptions::default() };
        let (port, server) = serve(b"abcd\r\nabcde\nnever\n".to_vec());
        let mut src = SocketSource::with_options("127.0.0.1", port, opts);
        src.latest_offset(None, ReadLimit::Default).unwrap();
        let err = drain(&mut src, server).unwrap_err().to_string();
        assert!(err.contains("line 2 is longer than the limit of 4 bytes"), "{err}");
    }

    #[test]
    fn lines_held_before_a_commit_are_bounded_and_the_rest_waits_in_the_socket() {
        let line = "0123456789".repeat(10);
        let text: String = (0..2_000).map(|i| format!("{i} {line}\n")).collect();
        let (port, server) = serve(text.into_bytes());
        let opts = SocketOptions { max_buffered_bytes: 4_096, ..SocketOptions::default() };
        let mut src = SocketSource::with_options("127.0.0.1", port, opts);
        src.latest_offset(None, ReadLimit::Default).unwrap();
        std::thread::sleep(Duration::from_millis(200));
        let held = lock(&src.shared.lines).bytes;
        assert!(held <= 4_096 && held > 0, "{held} bytes held");
        // Committing makes room: every line arrives, in order.
        let lines = drain(&mut src, server).unwrap();
        assert_eq!(lines.len(), 2_000);
        assert!(lines.iter().enumerate().all(|(i, l)| l.starts_with(&format!("{i} "))));
    }

    #[test]
    fn connection_errors_name_the_address() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let mut src = SocketSource::new("127.0.0.1", port);
        let err = src.latest_offset(None, ReadLimit::Default).unwrap_err();
        assert!(matches!(&err, Error::Io { context, .. } if context.contains(&format!("127.0.0.1:{port}"))), "{err}");
    }

    #[test]
    fn stop_closes_the_connection() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = std::thread::spawn(move || {
            let (mut conn, _) = listener.accept().unwrap();
            conn.write_all(b"one\n").unwrap();
            // Returns once the source has closed its end.
            let mut rest = Vec::new();
            conn.read_to_end(&mut rest).unwrap();
        });
        let mut src = SocketSource::new("127.0.0.1", port);
        wait_for(&mut src, 1);
        src.stop();
        server.join().unwrap();
    }
}
