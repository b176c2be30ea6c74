//! The socket source: text lines read from a TCP server, for tests and demos (after Spark's
//! `socket` source). Not fault-tolerant: lines live only in memory until committed.

use std::collections::VecDeque;
use std::io::{self, BufRead, BufReader};
use std::net::{Shutdown, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;

use arrow_array::{RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema, SchemaRef};

use super::{Offset, ReadLimit, SourceImpl};
use crate::error::{Error, Result};

/// Lines received and not yet committed.
#[derive(Debug, Default)]
struct Lines {
    /// The lines after the first `base` ones (which were committed and dropped).
    lines: VecDeque<String>,
    base: u64,
}

impl Lines {
    fn end(&self) -> u64 {
        self.base + self.lines.len() as u64
    }
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
/// `\n` or `\r\n`; invalid UTF-8 replaced by U+FFFD) becomes a row with the column
/// `value: String`.
///
/// The source connects on the first [`SourceImpl::latest_offset`]; a background thread then
/// reads lines into memory. The offset is the number of lines received so far; committed lines
/// are dropped, so only uncommitted batches can be read again, and lines received but not
/// committed are lost when the query fails. When the server closes the connection the source
/// has no more data.
pub struct SocketSource {
    host: String,
    port: u16,
    schema: SchemaRef,
    shared: Arc<Mutex<Lines>>,
    conn: Option<Connection>,
    /// Under available-now: the last offset of the run.
    snapshot: Option<u64>,
}

impl SocketSource {
    /// A source that will read lines from `host:port`.
    pub fn new(host: &str, port: u16) -> Self {
        SocketSource {
            host: host.to_string(),
            port,
            schema: Arc::new(Schema::new(vec![Field::new("value", DataType::Utf8, false)])),
            shared: Arc::default(),
            conn: None,
            snapshot: None,
        }
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
            let (shared, stopping, thread_address) = (self.shared.clone(), stopping.clone(), address.clone());
            std::thread::Builder::new()
                .name(format!("flowgate-socket-{address}"))
                .spawn(move || read_lines(reading, &shared, &stopping, &thread_address))
                .map_err(|e| Error::io(format!("starting the reader thread of the socket source on {address}"), e))?
        };
        tracing::info!("socket source connected to {address}");
        self.conn = Some(Connection { stream, stopping, reader });
        Ok(())
    }
}

/// The reader thread: appends every line of `stream` to `shared` until the connection ends.
fn read_lines(stream: TcpStream, shared: &Mutex<Lines>, stopping: &AtomicBool, address: &str) {
    let mut reader = BufReader::new(stream);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match reader.read_until(b'\n', &mut buf) {
            Ok(0) => {
                if !stopping.load(Ordering::Acquire) {
                    tracing::warn!("socket source: {address} closed the connection; no more lines will arrive");
                }
                return;
            }
            Ok(_) => {
                let line = buf.strip_suffix(b"\n").unwrap_or(&buf);
                let line = line.strip_suffix(b"\r").unwrap_or(line);
                lock(shared).lines.push_back(String::from_utf8_lossy(line).into_owned());
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                if !stopping.load(Ordering::Acquire) {
                    tracing::warn!("socket source: reading from {address} failed ({e}); no more lines will arrive");
                }
                return;
            }
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

    fn prepare_available_now(&mut self) -> Result<()> {
        self.connect()?;
        self.snapshot = Some(lock(&self.shared).end());
        Ok(())
    }

    fn latest_offset(&mut self, _start: Option<&Offset>, _limit: ReadLimit) -> Result<Option<Offset>> {
        self.connect()?;
        let mut end = lock(&self.shared).end();
        if let Some(snapshot) = self.snapshot {
            end = end.min(snapshot);
        }
        Ok((end > 0).then(|| Offset::number(end)))
    }

    fn get_batch(&mut self, start: Option<&Offset>, end: &Offset) -> Result<Vec<RecordBatch>> {
        let start = start.map(parse).transpose()?.unwrap_or(0);
        let end = parse(end)?;
        let shared = lock(&self.shared);
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
        let values: StringArray = shared.lines.range(range).map(Some).collect();
        drop(shared);
        Ok(vec![RecordBatch::try_new(self.schema.clone(), vec![Arc::new(values)])?])
    }

    fn commit(&mut self, end: &Offset) -> Result<()> {
        let end = parse(end)?;
        let mut shared = lock(&self.shared);
        let n = end.saturating_sub(shared.base).min(shared.lines.len() as u64);
        shared.lines.drain(..n as usize);
        shared.base += n;
        Ok(())
    }

    fn stop(&mut self) {
        if let Some(conn) = self.conn.take() {
            conn.stopping.store(true, Ordering::Release);
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
