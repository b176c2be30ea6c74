//! A tiny HTTP/1.1 responder for the metrics endpoint and the query pages: `GET` only, one
//! request per connection (`Connection: close`), answered on one thread per listening address.
//!
//! Why not a web framework: what is served is a few small documents generated in memory, read
//! by Prometheus every few seconds and by a browser page polling once a second; a framework
//! would bring an async runtime into every flowgate program for that. Requests over
//! [`MAX_REQUEST_BYTES`] or slower than [`READ_TIMEOUT`] are dropped, so a bad client cannot
//! hold the thread for long.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::Duration;

use crate::error::{Error, Result};

/// Longest request head read (a browser's GET with its headers is well under 2 KiB).
pub const MAX_REQUEST_BYTES: usize = 16 * 1024;
/// How long a client may take to send its request.
pub const READ_TIMEOUT: Duration = Duration::from_secs(5);

/// What a handler answers.
pub struct Response {
    /// HTTP status.
    pub status: u16,
    /// `Content-Type`.
    pub content_type: &'static str,
    /// The body.
    pub body: Vec<u8>,
}

impl Response {
    /// A 200 with `body`.
    pub fn ok(content_type: &'static str, body: impl Into<Vec<u8>>) -> Self {
        Response { status: 200, content_type, body: body.into() }
    }
}

/// Answers the requests whose path (without the query string) it knows; `None` otherwise.
pub type Handler = Arc<dyn Fn(&str, &str) -> Option<Response> + Send + Sync>;

/// A listening address and its handlers.
pub struct Server {
    addr: SocketAddr,
    handlers: RwLock<Vec<(String, Handler)>>,
}

impl Server {
    /// The address it listens on (the real port when started on port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Adds (or replaces) the handler registered under `key`.
    pub fn handle(&self, key: &str, handler: Handler) {
        let mut hs = self.handlers.write().unwrap_or_else(|e| e.into_inner());
        hs.retain(|(k, _)| k != key);
        hs.push((key.to_string(), handler));
    }

    fn answer(&self, path: &str, query: &str) -> Response {
        let hs: Vec<Handler> =
            self.handlers.read().unwrap_or_else(|e| e.into_inner()).iter().map(|(_, h)| h.clone()).collect();
        for h in hs {
            if let Some(r) = h(path, query) {
                return r;
            }
        }
        Response { status: 404, content_type: "text/plain; charset=utf-8", body: b"not found\n".to_vec() }
    }
}

fn servers() -> &'static Mutex<HashMap<SocketAddr, Arc<Server>>> {
    static SERVERS: OnceLock<Mutex<HashMap<SocketAddr, Arc<Server>>>> = OnceLock::new();
    SERVERS.get_or_init(Default::default)
}

/// The server on `addr`, started on first use (every query asking for the same address shares
/// it). `127.0.0.1:0` picks a free port; [`Server::addr`] tells which.
pub fn server(addr: &str) -> Result<Arc<Server>> {
    let wanted: Vec<SocketAddr> = addr
        .to_socket_addrs()
        .map_err(|e| {
            Error::Plan(format!("`{addr}` is not an address to listen on (write it as `127.0.0.1:9464`): {e}"))
        })?
        .collect();
    let mut map = servers().lock().unwrap_or_else(|e| e.into_inner());
    if let Some(s) = wanted.iter().filter(|a| a.port() != 0).find_map(|a| map.get(a)) {
        return Ok(s.clone());
    }
    let listener = TcpListener::bind(&wanted[..]).map_err(|e| Error::io(format!("listening on {addr}"), e))?;
    let bound = listener.local_addr().map_err(|e| Error::io(format!("listening on {addr}"), e))?;
    let server = Arc::new(Server { addr: bound, handlers: RwLock::new(Vec::new()) });
    let s = server.clone();
    std::thread::Builder::new()
        .name(format!("flowgate-http-{}", bound.port()))
        .spawn(move || {
            for conn in listener.incoming().flatten() {
                if let Err(e) = serve(&s, conn) {
                    tracing::debug!(error = %e, "http request dropped");
                }
            }
        })
        .map_err(|e| Error::io("starting the http thread", e))?;
    tracing::info!(%bound, "serving http");
    map.insert(bound, server.clone());
    Ok(server)
}

fn serve(server: &Server, mut conn: TcpStream) -> std::io::Result<()> {
    conn.set_read_timeout(Some(READ_TIMEOUT))?;
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = conn.read(&mut chunk)?;
        if n == 0 || buf.len() + n > MAX_REQUEST_BYTES {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let head = String::from_utf8_lossy(&buf);
    let mut parts = head.lines().next().unwrap_or_default().split_whitespace();
    let (method, target) = (parts.next().unwrap_or_default(), parts.next().unwrap_or("/"));
    let response = if method == "GET" || method == "HEAD" {
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        server.answer(path, query)
    } else {
        Response { status: 405, content_type: "text/plain; charset=utf-8", body: b"only GET\n".to_vec() }
    };
    let reason = match response.status {
        200 => "OK",
        404 => "Not Found",
        405 => "Method Not Allowed",
        _ => "",
    };
    write!(
        conn,
        "HTTP/1.1 {} {reason}\r\nContent-Type: {}\r\nContent-Length: {}\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n",
        response.status,
        response.content_type,
        response.body.len()
    )?;
    if method != "HEAD" {
        conn.write_all(&response.body)?;
    }
    conn.flush()
}

/// A `GET` for tests and tools: the status and body of `http://{addr}{path}`.
pub fn get(addr: SocketAddr, path: &str) -> std::io::Result<(u16, String)> {
    let mut conn = TcpStream::connect(addr)?;
    conn.set_read_timeout(Some(READ_TIMEOUT))?;
    write!(conn, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n")?;
    let mut text = String::new();
    conn.read_to_string(&mut text)?;
    let status = text.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    Ok((status, body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_and_a_404() {
        let s = server("127.0.0.1:0").unwrap();
        s.handle(
            "hello",
            Arc::new(|path, q| (path == "/hello").then(|| Response::ok("text/plain", format!("hi {q}")))),
        );
        assert_eq!(get(s.addr(), "/hello?x=1").unwrap(), (200, "hi x=1".to_string()));
        assert_eq!(get(s.addr(), "/nope").unwrap().0, 404);
        // The same address again is the same server.
        assert!(Arc::ptr_eq(&s, &server(&s.addr().to_string()).unwrap()));
    }
}
