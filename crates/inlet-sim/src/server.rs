//! A minimal HTTP/1.1 server on tokio's `TcpListener`: keep-alive, `Content-Length` bodies only,
//! and exact control over how (or whether) a response is delivered, so faults such as
//! connection resets and truncated bodies can be reproduced byte for byte.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// Largest accepted request head (request line plus headers).
const MAX_HEAD: usize = 32 * 1024;
/// Largest accepted request body.
const MAX_BODY: usize = 1024 * 1024;

/// A parsed request; borrows the connection's read buffer.
#[derive(Debug)]
pub(crate) struct Request<'a> {
    /// `GET`, `POST`, ...
    pub method: &'a str,
    /// Path without the query string.
    pub path: &'a str,
    /// Raw query string (without `?`), possibly empty.
    pub query: &'a str,
    headers: Vec<(&'a str, &'a str)>,
    /// Request body (`Content-Length` bytes).
    pub body: &'a [u8],
}

impl Request<'_> {
    /// The first header named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| *v)
    }
}

/// A response under construction; reused across requests on one connection.
#[derive(Debug, Default)]
pub(crate) struct Response {
    /// Status code.
    pub status: u16,
    /// `Content-Type` value.
    pub content_type: &'static str,
    /// Extra headers.
    pub headers: Vec<(&'static str, String)>,
    /// Body bytes.
    pub body: Vec<u8>,
}

impl Response {
    /// The status to log for this response delivered as `d` (0: reset, nothing answered).
    pub fn logged_status(&self, d: Delivery) -> u16 {
        if d == Delivery::Reset { 0 } else { self.status }
    }

    fn reset(&mut self) {
        self.status = 200;
        self.content_type = "application/json; charset=UTF-8";
        self.headers.clear();
        self.body.clear();
    }

    /// Sets status, a JSON body and nothing else.
    pub fn json(&mut self, status: u16, body: &str) {
        self.status = status;
        self.content_type = "application/json; charset=UTF-8";
        self.body.clear();
        self.body.extend_from_slice(body.as_bytes());
    }

    /// Sets status and an HTML body.
    pub fn html(&mut self, status: u16, body: &str) {
        self.status = status;
        self.content_type = "text/html; charset=UTF-8";
        self.body.clear();
        self.body.extend_from_slice(body.as_bytes());
    }
}

/// How the response is put on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum Delivery {
    /// Send it whole.
    #[default]
    Normal,
    /// Send nothing; close with a TCP RST.
    Reset,
    /// Send the head with the full `Content-Length` and half of the body, then close.
    Truncate,
}

/// The handler's decision about delivery.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Reply {
    /// How to deliver.
    pub delivery: Delivery,
    /// Wait this long before answering.
    pub delay: Option<Duration>,
}

/// Application logic behind the server. Called synchronously on the connection's task.
pub(crate) trait Handler: Send + Sync + 'static {
    /// Fill `resp` for `req`.
    fn handle(&self, req: &Request<'_>, resp: &mut Response) -> Reply;
    /// Called for requests that could not be parsed (answered 400).
    fn malformed(&self, _reason: &str) {}
}

/// Requests being answered at once: now and at most.
#[derive(Debug, Default)]
pub(crate) struct Concurrency {
    now: std::sync::atomic::AtomicU64,
    max: std::sync::atomic::AtomicU64,
}

impl Concurrency {
    fn enter(self: &Arc<Self>) -> InFlight {
        use std::sync::atomic::Ordering::SeqCst;
        let n = self.now.fetch_add(1, SeqCst) + 1;
        self.max.fetch_max(n, SeqCst);
        InFlight(self.clone())
    }

    /// The most requests answered at once so far.
    pub fn max(&self) -> u64 {
        self.max.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// One request being answered; leaves on drop.
struct InFlight(Arc<Concurrency>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.now.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

/// A running server; dropping it (or calling [`ServerHandle::shutdown`]) stops it.
#[derive(Debug)]
pub(crate) struct ServerHandle {
    addr: SocketAddr,
    stop: watch::Sender<bool>,
    concurrency: Arc<Concurrency>,
}

impl ServerHandle {
    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Requests answered at once.
    pub fn concurrency(&self) -> &Concurrency {
        &self.concurrency
    }

    /// Stops accepting and closes open connections.
    pub fn shutdown(&self) {
        let _ = self.stop.send(true);
    }
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Binds `127.0.0.1:0` and serves `handler` on the current tokio runtime.
pub(crate) async fn serve(handler: Arc<dyn Handler>) -> std::io::Result<ServerHandle> {
    let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
    let addr = listener.local_addr()?;
    let (stop, stopped) = watch::channel(false);
    let concurrency = Arc::new(Concurrency::default());
    tokio::spawn(accept_loop(listener, handler, stopped, concurrency.clone()));
    Ok(ServerHandle {
        addr,
        stop,
        concurrency,
    })
}

async fn accept_loop(
    listener: TcpListener,
    handler: Arc<dyn Handler>,
    mut stopped: watch::Receiver<bool>,
    concurrency: Arc<Concurrency>,
) {
    loop {
        tokio::select! {
            r = listener.accept() => match r {
                Ok((stream, _)) => {
                    tokio::spawn(connection(stream, handler.clone(), stopped.clone(), concurrency.clone()));
                }
                Err(e) => {
                    tracing::debug!("sim accept error: {e}");
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            },
            _ = stopped.changed() => return,
        }
    }
}

/// Result of trying to parse the buffered bytes as one request.
enum Parsed<'a> {
    /// Need more bytes.
    Partial,
    /// Unusable request: answer 400 and close.
    Bad(&'static str),
    /// A full request and the number of bytes it occupies.
    Ready(Request<'a>, usize),
}

async fn connection(
    mut stream: TcpStream,
    handler: Arc<dyn Handler>,
    mut stopped: watch::Receiver<bool>,
    concurrency: Arc<Concurrency>,
) {
    let _ = stream.set_nodelay(true);
    let mut buf: Vec<u8> = Vec::with_capacity(8192);
    let mut resp = Response::default();
    let mut out: Vec<u8> = Vec::with_capacity(8192);
    loop {
        let step = match parse(&buf) {
            Parsed::Partial => None,
            Parsed::Bad(reason) => {
                handler.malformed(reason);
                resp.reset();
                resp.json(400, r#"{"message": "Bad Request", "error": 400}"#);
                Some((Reply::default(), buf.len(), true, None))
            }
            Parsed::Ready(req, used) => {
                let guard = concurrency.enter();
                resp.reset();
                let close = wants_close(&req);
                Some((handler.handle(&req, &mut resp), used, close, Some(guard)))
            }
        };
        let Some((reply, used, close, in_flight)) = step else {
            if buf.len() >= MAX_HEAD + MAX_BODY {
                return;
            }
            buf.reserve(8192);
            tokio::select! {
                r = stream.read_buf(&mut buf) => match r {
                    Ok(0) | Err(_) => return,
                    Ok(_) => continue,
                },
                _ = stopped.changed() => return,
            }
        };
        buf.drain(..used);
        if let Some(d) = reply.delay {
            tokio::select! {
                _ = tokio::time::sleep(d) => {}
                _ = stopped.changed() => return,
            }
        }
        let delivered = deliver(&mut stream, &resp, reply.delivery, close, &mut out).await;
        drop(in_flight);
        if !delivered {
            return;
        }
    }
}

fn wants_close(req: &Request<'_>) -> bool {
    req.header("connection")
        .is_some_and(|v| v.eq_ignore_ascii_case("close"))
}

/// Writes the response as `delivery` says; false when the connection must be dropped.
async fn deliver(
    stream: &mut TcpStream,
    resp: &Response,
    delivery: Delivery,
    close: bool,
    out: &mut Vec<u8>,
) -> bool {
    if delivery == Delivery::Reset {
        #[allow(deprecated)] // linger 0 never blocks: the kernel drops the socket with an RST
        let _ = stream.set_linger(Some(Duration::ZERO));
        return false;
    }
    out.clear();
    write_head(out, resp, close || delivery == Delivery::Truncate);
    let body_len = match delivery {
        Delivery::Truncate => resp.body.len() / 2,
        _ => resp.body.len(),
    };
    out.extend_from_slice(&resp.body[..body_len]);
    if stream.write_all(out).await.is_err() {
        return false;
    }
    if delivery == Delivery::Truncate || close {
        let _ = stream.shutdown().await;
        return false;
    }
    true
}

fn write_head(out: &mut Vec<u8>, resp: &Response, close: bool) {
    use std::io::Write as _;
    let _ = write!(
        out,
        "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nServer: inlet-sim\r\n",
        resp.status,
        reason(resp.status),
        resp.content_type,
        resp.body.len()
    );
    for (k, v) in &resp.headers {
        let _ = write!(out, "{k}: {v}\r\n");
    }
    out.extend_from_slice(if close {
        b"Connection: close\r\n\r\n".as_slice()
    } else {
        b"Connection: keep-alive\r\n\r\n".as_slice()
    });
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Unknown",
    }
}

fn parse(buf: &[u8]) -> Parsed<'_> {
    let Some(head_end) = find_head_end(buf) else {
        return if buf.len() > MAX_HEAD {
            Parsed::Bad("request head too large")
        } else {
            Parsed::Partial
        };
    };
    let Ok(head) = std::str::from_utf8(&buf[..head_end]) else {
        return Parsed::Bad("request head is not UTF-8");
    };
    let mut lines = head.split("\r\n");
    let Some((method, target)) = lines.next().and_then(parse_request_line) else {
        return Parsed::Bad("bad request line");
    };
    let mut headers = Vec::with_capacity(12);
    for line in lines {
        match line.split_once(':') {
            Some((k, v)) if !k.is_empty() => headers.push((k.trim(), v.trim())),
            _ => return Parsed::Bad("bad header line"),
        }
    }
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let mut req = Request {
        method,
        path,
        query,
        headers,
        body: &[],
    };
    if req.header("transfer-encoding").is_some() {
        return Parsed::Bad("chunked request bodies are not supported");
    }
    let len = match req.header("content-length").map(str::parse::<usize>) {
        None => 0,
        Some(Ok(n)) if n <= MAX_BODY => n,
        Some(_) => return Parsed::Bad("bad content-length"),
    };
    let body_start = head_end + 4;
    if buf.len() < body_start + len {
        return Parsed::Partial;
    }
    req.body = &buf[body_start..body_start + len];
    Parsed::Ready(req, body_start + len)
}

fn find_head_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n")
}

fn parse_request_line(line: &str) -> Option<(&str, &str)> {
    let mut parts = line.split(' ');
    let method = parts.next().filter(|m| !m.is_empty())?;
    let target = parts.next().filter(|t| t.starts_with('/'))?;
    let version = parts.next()?;
    if !version.starts_with("HTTP/1.") || parts.next().is_some() {
        return None;
    }
    Some((method, target))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_requests() {
        let raw = b"GET /a/b?x=1 HTTP/1.1\r\nHost: h\r\nUser-Agent: t\r\n\r\nextra";
        match parse(raw) {
            Parsed::Ready(r, used) => {
                assert_eq!((r.method, r.path, r.query), ("GET", "/a/b", "x=1"));
                assert_eq!(r.header("user-agent"), Some("t"));
                assert_eq!(used, raw.len() - 5);
            }
            _ => panic!("not parsed"),
        }
        assert!(matches!(parse(b"GET / HTTP/1.1\r\n"), Parsed::Partial));
        assert!(matches!(parse(b"GARBAGE\r\n\r\n"), Parsed::Bad(_)));
        assert!(matches!(
            parse(b"POST / HTTP/1.1\r\nContent-Length: x\r\n\r\n"),
            Parsed::Bad(_)
        ));
        assert!(matches!(
            parse(b"POST / HTTP/1.1\r\nContent-Length: 4\r\n\r\nab"),
            Parsed::Partial
        ));
    }
}
