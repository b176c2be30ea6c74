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

#[derive(Record)]
struct DeviceData {
    device: String,
    device_type: String,
    signal: f64,
    time: Timestamp,
}

#[derive(Record, Debug, Clone, PartialEq)]
struct TypeCount {
    device_type: String,
    n: i64,
    strongest: f64,
}

#[derive(Record, Debug, Clone, PartialEq)]
struct Reading {
    device: Option<String>,
    signal: Option<f64>,
    _corrupt_record: Option<String>,
}

stream_query! {
    /// The seed's device example, with the socket's lines decoded as CSV into the record.
    query DeviceTypes(events: DeviceData) -> TypeCount, mode = complete {
        events
            .filter(signal > 10.0)
            .group_by(device_type)
            .agg(count() as n, max(signal) as strongest)
    }

    query Readings(readings: Reading) -> Reading, mode = append {
        readings.filter(true)
    }
}

/// Serves `lines` to one connection, then keeps it open for a while.
fn serve(lines: &'static str) -> (u16, std::thread::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = std::thread::spawn(move || {
        let (mut conn, _) = listener.accept().unwrap();
        conn.write_all(lines.as_bytes()).unwrap();
        std::thread::sleep(Duration::from_secs(20));
    });
    (port, server)
}

fn wait_for<T: Record>(table: &MemoryTable, n: usize) -> Vec<T> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let rows: Vec<T> = table.rows().unwrap();
        if rows.len() >= n || Instant::now() > deadline {
            return rows;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn socket_lines_decode_as_csv_into_a_record() {
    let (port, server) = serve(
        "d1,phone,12.5,2024-01-01T12:00:00Z\nd2,tablet,30.0,2024-01-01T12:00:01Z\nd3,phone,8.0,2024-01-01T12:00:02Z\nd4,phone,20.0,2024-01-01T12:00:03Z\n",
    );
    let table = MemoryTable::new();
    let q = DeviceTypes::builder()
        .events(Source::socket("127.0.0.1", port).csv())
        .sink(Sink::memory(&table))
        .start()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut rows: Vec<TypeCount>;
    loop {
        // Complete mode: the latest batch holds the whole result.
        rows = table.history().last().map(|(_, b)| flowgate::Record::from_batch(b).unwrap()).unwrap_or_default();
        if rows.iter().map(|r| r.n).sum::<i64>() == 3 || Instant::now() > deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    q.stop().unwrap();
    rows.sort_by(|a, b| a.device_type.cmp(&b.device_type));
    assert_eq!(
        rows,
        [
            TypeCount { device_type: "phone".into(), n: 2, strongest: 20.0 },
            TypeCount { device_type: "tablet".into(), n: 1, strongest: 30.0 }
        ]
    );
    drop(server);
}

#[test]
fn socket_lines_decode_as_json_with_the_parse_mode() {
    let (port, server) = serve("{\"device\": \"d1\", \"signal\": 1.5}\nnot json\n{\"device\": \"d2\"}\n");
    let table = MemoryTable::new();
    let q = Readings::builder()
        .readings(Source::socket("127.0.0.1", port).json())
        .sink(Sink::memory(&table))
        .start()
        .unwrap();
    let rows: Vec<Reading> = wait_for(&table, 3);
    q.stop().unwrap();
    assert_eq!(
        rows,
        [
            Reading { device: Some("d1".into()), signal: Some(1.5), _corrupt_record: None },
            Reading { device: None, signal: None, _corrupt_record: Some("not json".into()) },
            Reading { device: Some("d2".into()), signal: None, _corrupt_record: None },
        ],
        "PERMISSIVE by default: the malformed line's text in the corrupt-record column"
    );
    drop(server);

    let (port, server) = serve("{\"device\": \"d1\", \"signal\": 1.5}\nnot json\n{\"device\": \"d2\"}\n");
    let table = MemoryTable::new();
    let q = Readings::builder()
        .readings(Source::socket("127.0.0.1", port).json().mode(ParseMode::DropMalformed))
        .sink(Sink::memory(&table))
        .start()
        .unwrap();
    let rows: Vec<Reading> = wait_for(&table, 2);
    std::thread::sleep(Duration::from_millis(200));
    q.stop().unwrap();
    assert_eq!(table.rows::<Reading>().unwrap().len(), 2, "DROPMALFORMED drops the bad line: {}", rows.len());
    drop(server);
}
