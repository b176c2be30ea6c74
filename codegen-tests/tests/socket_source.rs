//! The socket source under a real query: its bounded buffer never stalls a query with a
//! checkpoint, which lets a source forget a batch only once the batch's commit entry is
//! durable (one batch later, or when the query is idle).

use std::io::Write;
use std::net::TcpListener;
use std::time::{Duration, Instant};

use flowgate::prelude::*;
use flowgate::source::SocketOptions;

#[derive(Record, Debug, Clone, PartialEq)]
struct Line {
    value: String,
}

stream_query! {
    query Lines(lines: Line) -> Line, mode = append {
        lines.filter(value != "")
    }
}

#[test]
fn a_full_socket_buffer_drains_under_a_checkpointed_query() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = std::thread::spawn(move || {
        let (mut conn, _) = listener.accept().unwrap();
        for i in 0..200 {
            conn.write_all(format!("{i:03} {}\n", "x".repeat(96)).as_bytes()).unwrap();
        }
        // Keep the connection open until the test is done reading.
        std::thread::sleep(Duration::from_secs(30));
    });
    let dir = tempfile::tempdir().unwrap();
    let table = MemoryTable::new();
    // Room for about ten lines: the reader waits for every batch to be forgotten.
    let opts = SocketOptions { max_buffered_bytes: 1_000, ..SocketOptions::default() };
    let q = Lines::builder()
        .lines(Source::socket_with("127.0.0.1", port, opts))
        .sink(Sink::memory(&table))
        .checkpoint(dir.path().join("cp"))
        .start()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while table.rows::<Line>().unwrap().len() < 200 {
        assert!(Instant::now() < deadline, "stalled at {} of 200 lines", table.rows::<Line>().unwrap().len());
        std::thread::sleep(Duration::from_millis(5));
    }
    q.stop().unwrap();
    let rows = table.rows::<Line>().unwrap();
    assert!(rows.iter().enumerate().all(|(i, l)| l.value.starts_with(&format!("{i:03} "))));
    drop(server);
}
