//! HTTP/1.1 at the byte level, for tests (test side): a reader of raw message heads and framed
//! bodies that keeps every field as it arrived ([`WireReader`], [`Head`]), and [`RawUpstream`],
//! an upstream that records the exact request each connection carried and answers with scripted
//! raw response bytes (so malformed or unusual responses can be scripted too).
//!
//! Nothing here normalizes: field names keep their case in [`Head::lines`], values are bytes, and
//! the reader refuses what it cannot frame instead of guessing, so a test sees what was on the
//! wire.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;

use crate::tasks::Tasks;

/// A message head larger than this is refused.
const MAX_HEAD: usize = 1024 * 1024;
/// How long [`RawUpstream`] waits for the next request on a connection, and for its body.
const UPSTREAM_PATIENCE: Duration = Duration::from_secs(30);
/// The pause between the parts of a response given with [`RawUpstream::script_parts`].
pub const PART_GAP: Duration = Duration::from_millis(200);

/// A message head as it arrived: the start line and the fields in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    /// The start line without its CRLF: `GET /x HTTP/1.1` or `HTTP/1.1 200 OK`.
    pub line: String,
    /// The fields in arrival order: the name as sent (case kept) and the value with the
    /// surrounding spaces and tabs trimmed.
    pub lines: Vec<(String, Vec<u8>)>,
}

impl Head {
    /// Parses a head (the bytes up to and including the empty line). Each line must end in
    /// CRLF and each field must have a colon.
    pub fn parse(bytes: &[u8]) -> Result<Head, WireError> {
        let text = bytes.strip_suffix(b"\r\n\r\n").ok_or_else(|| {
            WireError::Malformed(format!("head does not end in CRLF CRLF: {}", show(bytes)))
        })?;
        // Every line but the last kept its CR (the final CRLF CRLF was cut off above).
        let count = text.split(|&b| b == b'\n').count();
        let mut lines = text.split(|&b| b == b'\n').enumerate().map(|(i, l)| {
            if i + 1 == count {
                return Ok(l);
            }
            l.strip_suffix(b"\r")
                .ok_or_else(|| WireError::Malformed(format!("bare LF in head: {}", show(bytes))))
        });
        let start = lines.next().expect("split yields at least one line")?;
        let mut head = Head {
            line: String::from_utf8_lossy(start).into_owned(),
            lines: Vec::new(),
        };
        for line in lines {
            let line = line?;
            let colon = line.iter().position(|&b| b == b':').ok_or_else(|| {
                WireError::Malformed(format!("field without a colon: {}", show(line)))
            })?;
            let name = String::from_utf8_lossy(&line[..colon]).into_owned();
            head.lines.push((name, trim(&line[colon + 1..]).to_vec()));
        }
        Ok(head)
    }

    /// The fields with lowercase names, in arrival order.
    pub fn fields(&self) -> Vec<(String, Vec<u8>)> {
        self.lines
            .iter()
            .map(|(n, v)| (n.to_ascii_lowercase(), v.clone()))
            .collect()
    }

    /// Every value of a field, by case-insensitive name, in arrival order.
    pub fn all(&self, name: &str) -> Vec<&[u8]> {
        self.lines
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_slice())
            .collect()
    }

    /// Whether a field's comma-separated list holds `token` (case-insensitive).
    pub fn lists(&self, name: &str, token: &str) -> bool {
        self.all(name).iter().any(|v| {
            v.split(|&b| b == b',')
                .any(|t| trim(t).eq_ignore_ascii_case(token.as_bytes()))
        })
    }

    /// The method of a request head (its first word).
    pub fn method(&self) -> &str {
        self.line.split(' ').next().unwrap_or("")
    }

    /// The request target of a request head (its second word).
    pub fn target(&self) -> &str {
        self.line.split(' ').nth(1).unwrap_or("")
    }

    /// The status code of a response head (0 if the line has none).
    pub fn status(&self) -> u16 {
        self.line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0)
    }

    /// How the body after this head is delimited (RFC 9112 §6.3). `bodiless` is true where the
    /// other side knows there is no body: a response to HEAD, or 1xx/204/304. A request
    /// without a length has no body; a response without one runs until the connection closes.
    pub fn framing(&self, request: bool, bodiless: bool) -> Result<Framing, WireError> {
        if bodiless {
            return Ok(Framing::None);
        }
        let codings = self.all("transfer-encoding");
        if !codings.is_empty() {
            let last = codings
                .iter()
                .rev()
                .flat_map(|v| v.rsplit(|&b| b == b','))
                .map(trim)
                .find(|t| !t.is_empty());
            return match last {
                Some(t) if t.eq_ignore_ascii_case(b"chunked") => Ok(Framing::Chunked),
                _ if request => Err(WireError::Malformed(format!(
                    "request transfer coding is not chunked: {}",
                    self.line
                ))),
                _ => Ok(Framing::UntilClose),
            };
        }
        let mut length = None;
        for value in self.all("content-length") {
            for part in value.split(|&b| b == b',').map(trim) {
                let n: u64 = std::str::from_utf8(part)
                    .ok()
                    .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
                    .and_then(|s| s.parse().ok())
                    .ok_or_else(|| {
                        WireError::Malformed(format!("bad Content-Length {}", show(value)))
                    })?;
                if length.is_some_and(|l| l != n) {
                    return Err(WireError::Malformed(format!(
                        "conflicting Content-Length values in {:?}",
                        self.line
                    )));
                }
                length = Some(n);
            }
        }
        Ok(match length {
            Some(n) => Framing::Length(n),
            None if request => Framing::None,
            None => Framing::UntilClose,
        })
    }
}

/// How a message body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// No body.
    None,
    /// Exactly this many bytes.
    Length(u64),
    /// Chunked transfer coding.
    Chunked,
    /// Everything until the peer closes.
    UntilClose,
}

/// A body read off the wire: the decoded bytes and any trailer fields.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Body {
    pub bytes: Vec<u8>,
    pub trailers: Vec<(String, Vec<u8>)>,
}

/// Why a raw read stopped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// The peer closed (or reset) the connection; `partial` bytes of the message had arrived.
    #[error("connection closed with {partial} bytes of the message read")]
    Closed { partial: usize },
    /// The deadline passed first.
    #[error("no complete message before the deadline ({partial} bytes read)")]
    TimedOut { partial: usize },
    /// The bytes are not a message this reader can frame.
    #[error("malformed message: {0}")]
    Malformed(String),
}

/// Reads raw HTTP/1.1 messages off a stream, keeping the bytes that follow one message for
/// the next. Every read has a deadline.
pub struct WireReader<R> {
    io: R,
    buf: Vec<u8>,
}

impl<R: AsyncRead + Unpin> WireReader<R> {
    pub fn new(io: R) -> Self {
        WireReader {
            io,
            buf: Vec::new(),
        }
    }

    /// The stream, for writing to it.
    pub fn get_mut(&mut self) -> &mut R {
        &mut self.io
    }

    /// Bytes read but not yet consumed.
    pub fn buffered(&self) -> &[u8] {
        &self.buf
    }

    /// Reads more bytes; `Closed`/`TimedOut` name how many were waiting.
    async fn fill(&mut self, deadline: Instant) -> Result<(), WireError> {
        let mut chunk = [0u8; 16 * 1024];
        let partial = self.buf.len();
        match tokio::time::timeout_at(deadline, self.io.read(&mut chunk)).await {
            Err(_) => Err(WireError::TimedOut { partial }),
            Ok(Ok(0)) | Ok(Err(_)) => Err(WireError::Closed { partial }),
            Ok(Ok(n)) => {
                self.buf.extend_from_slice(&chunk[..n]);
                Ok(())
            }
        }
    }

    /// Reads one head.
    pub async fn head(&mut self, deadline: Instant) -> Result<Head, WireError> {
        loop {
            if let Some(end) = find(&self.buf, b"\r\n\r\n") {
                let rest = self.buf.split_off(end + 4);
                let head = std::mem::replace(&mut self.buf, rest);
                return Head::parse(&head);
            }
            if self.buf.len() > MAX_HEAD {
                return Err(WireError::Malformed(format!(
                    "no end of head in {} bytes",
                    self.buf.len()
                )));
            }
            self.fill(deadline).await?;
        }
    }

    /// Reads exactly `n` bytes.
    async fn exact(&mut self, n: usize, deadline: Instant) -> Result<Vec<u8>, WireError> {
        while self.buf.len() < n {
            self.fill(deadline).await?;
        }
        let rest = self.buf.split_off(n);
        Ok(std::mem::replace(&mut self.buf, rest))
    }

    /// Reads one line ending in CRLF, returned without it.
    async fn line(&mut self, deadline: Instant) -> Result<Vec<u8>, WireError> {
        loop {
            if let Some(end) = find(&self.buf, b"\r\n") {
                let mut line = self.exact(end + 2, deadline).await?;
                line.truncate(end);
                return Ok(line);
            }
            if self.buf.len() > MAX_HEAD {
                return Err(WireError::Malformed("line too long".into()));
            }
            self.fill(deadline).await?;
        }
    }

    /// Reads a body framed as `framing`.
    pub async fn body(&mut self, framing: Framing, deadline: Instant) -> Result<Body, WireError> {
        match framing {
            Framing::None => Ok(Body::default()),
            Framing::Length(n) => {
                let n = usize::try_from(n)
                    .map_err(|_| WireError::Malformed(format!("length {n} too large")))?;
                Ok(Body {
                    bytes: self.exact(n, deadline).await?,
                    trailers: Vec::new(),
                })
            }
            Framing::Chunked => self.chunked(deadline).await,
            Framing::UntilClose => loop {
                match self.fill(deadline).await {
                    Ok(()) => {}
                    Err(WireError::Closed { .. }) => {
                        return Ok(Body {
                            bytes: std::mem::take(&mut self.buf),
                            trailers: Vec::new(),
                        })
                    }
                    Err(e) => return Err(e),
                }
            },
        }
    }

    async fn chunked(&mut self, deadline: Instant) -> Result<Body, WireError> {
        let mut body = Body::default();
        loop {
            let line = self.line(deadline).await?;
            let size = line.split(|&b| b == b';').next().map(trim).unwrap_or(b"");
            let size = std::str::from_utf8(size)
                .ok()
                .and_then(|s| usize::from_str_radix(s, 16).ok())
                .ok_or_else(|| WireError::Malformed(format!("bad chunk size {}", show(&line))))?;
            if size == 0 {
                break;
            }
            let data = self.exact(size + 2, deadline).await?;
            if !data.ends_with(b"\r\n") {
                return Err(WireError::Malformed(
                    "chunk data not followed by CRLF".into(),
                ));
            }
            body.bytes.extend_from_slice(&data[..size]);
        }
        loop {
            let line = self.line(deadline).await?;
            if line.is_empty() {
                return Ok(body);
            }
            let colon = line.iter().position(|&b| b == b':').ok_or_else(|| {
                WireError::Malformed(format!("trailer without a colon: {}", show(&line)))
            })?;
            let name = String::from_utf8_lossy(&line[..colon]).to_ascii_lowercase();
            body.trailers
                .push((name, trim(&line[colon + 1..]).to_vec()));
        }
    }
}

/// One request as a [`RawUpstream`] received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawRequest {
    /// The connection it came on (0 for the upstream's first connection).
    pub connection: usize,
    /// The head as it arrived.
    pub head: Head,
    /// The body, decoded from its framing, and its trailers.
    pub body: Body,
    /// Why the request could not be read whole, if it could not (the connection was closed).
    pub error: Option<String>,
}

/// Configures a [`RawUpstream`].
#[derive(Default)]
pub struct RawUpstreamBuilder {
    default: Option<Bytes>,
    aside: Vec<(String, Bytes)>,
}

impl RawUpstreamBuilder {
    /// The response for a request when no scripted one is waiting (default: `200` with
    /// `Content-Length: 2` and body `ok`).
    pub fn default_reply(mut self, raw: impl Into<Bytes>) -> Self {
        self.default = Some(raw.into());
        self
    }

    /// Requests whose target starts with `prefix` get `raw`, are not recorded and leave the
    /// script alone (for probes that must not disturb what a test looks at).
    pub fn aside(mut self, prefix: impl Into<String>, raw: impl Into<Bytes>) -> Self {
        self.aside.push((prefix.into(), raw.into()));
        self
    }

    /// Binds 127.0.0.1:0 and starts serving on the current tokio runtime.
    pub async fn start(self) -> RawUpstream {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("raw upstream: bind 127.0.0.1:0");
        let addr = listener
            .local_addr()
            .expect("local_addr of a bound listener");
        let shared = Arc::new(RawShared {
            default: self.default.unwrap_or_else(|| {
                Bytes::from_static(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
            }),
            aside: self.aside,
            script: Mutex::new(VecDeque::new()),
            seen: Mutex::new(Vec::new()),
            connections: AtomicUsize::new(0),
            reading: AtomicUsize::new(0),
        });
        let tasks = Tasks::default();
        tasks.spawn(raw_accept(shared.clone(), listener, tasks.clone()));
        RawUpstream {
            addr,
            shared,
            tasks,
        }
    }
}

/// An upstream that records each request's head and body as they arrived and answers with
/// scripted raw bytes, written as they are. Keeps connections alive while the response's
/// framing allows; after a `101` it echoes whatever comes. Stops on drop.
pub struct RawUpstream {
    addr: SocketAddr,
    shared: Arc<RawShared>,
    tasks: Tasks,
}

struct RawShared {
    default: Bytes,
    aside: Vec<(String, Bytes)>,
    script: Mutex<VecDeque<Vec<Bytes>>>,
    seen: Mutex<Vec<RawRequest>>,
    connections: AtomicUsize,
    /// Requests whose head arrived and whose body is still being read.
    reading: AtomicUsize,
}

impl RawUpstream {
    pub fn builder() -> RawUpstreamBuilder {
        RawUpstreamBuilder::default()
    }

    /// The listening address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The responses for the next requests, one each in order (replacing any still waiting);
    /// after them the default reply. Each is written as is: it may hold interim (1xx) heads
    /// before the final one, and need not be valid HTTP.
    pub fn script(&self, responses: Vec<Bytes>) {
        self.script_parts(responses.into_iter().map(|r| vec![r]).collect());
    }

    /// Like [`RawUpstream::script`], each response given in parts that are written
    /// [`PART_GAP`] apart (a body that stalls, a close that comes after the last bytes).
    pub fn script_parts(&self, responses: Vec<Vec<Bytes>>) {
        *self.shared.script.lock().expect("raw upstream script") = responses.into();
    }

    /// Every request recorded so far, in arrival order.
    pub fn requests(&self) -> Vec<RawRequest> {
        self.shared.seen.lock().expect("raw upstream log").clone()
    }

    /// Forgets the recorded requests.
    pub fn clear_requests(&self) {
        self.shared.seen.lock().expect("raw upstream log").clear();
    }

    /// How many requests are being read: their head arrived, their body is not whole yet (a
    /// test waits for 0 before it looks at [`RawUpstream::requests`]).
    pub fn reading(&self) -> usize {
        self.shared.reading.load(Ordering::SeqCst)
    }

    /// How many connections were accepted.
    pub fn connections(&self) -> usize {
        self.shared.connections.load(Ordering::SeqCst)
    }

    /// Stops accepting and closes open connections; returns once the port is released.
    pub async fn shutdown(self) {
        self.tasks.shutdown().await;
    }
}

impl Drop for RawUpstream {
    fn drop(&mut self) {
        self.tasks.cancel();
    }
}

async fn raw_accept(shared: Arc<RawShared>, listener: TcpListener, tasks: Tasks) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                let n = shared.connections.fetch_add(1, Ordering::SeqCst);
                tasks.spawn(raw_conn(shared.clone(), stream, n));
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
        }
    }
}

/// Serves one connection: request, scripted response, until a response or request says the
/// connection ends.
async fn raw_conn(shared: Arc<RawShared>, stream: TcpStream, connection: usize) {
    let _ = stream.set_nodelay(true);
    let mut wire = WireReader::new(stream);
    loop {
        let deadline = Instant::now() + UPSTREAM_PATIENCE;
        let head = match wire.head(deadline).await {
            Ok(head) => head,
            Err(WireError::Closed { partial: 0 }) | Err(WireError::TimedOut { partial: 0 }) => {
                return
            }
            Err(e) => {
                let head = Head {
                    line: format!("<unreadable head: {}>", show(wire.buffered())),
                    lines: Vec::new(),
                };
                shared.record(connection, head, Body::default(), Some(e.to_string()));
                return;
            }
        };
        shared.reading.fetch_add(1, Ordering::SeqCst);
        let reading = Decrement(&shared.reading);
        let body = match head.framing(true, false) {
            Ok(framing) => wire.body(framing, deadline).await,
            Err(e) => Err(e),
        };
        let aside = shared
            .aside
            .iter()
            .find(|(p, _)| head.target().starts_with(p.as_str()))
            .map(|(_, raw)| raw.clone());
        let head_request = head.method() == "HEAD";
        let close = head.lists("connection", "close");
        let body = match body {
            Ok(body) => body,
            Err(e) => {
                if aside.is_none() {
                    shared.record(connection, head, Body::default(), Some(e.to_string()));
                }
                return;
            }
        };
        let parts = match aside {
            Some(raw) => vec![raw],
            None => {
                shared.record(connection, head, body, None);
                shared.next_reply()
            }
        };
        drop(reading);
        if write_parts(wire.get_mut(), &parts).await.is_err() {
            return;
        }
        let reply = parts.concat();
        if close || !keeps_going(&reply, head_request) {
            let _ = wire.get_mut().shutdown().await;
            return;
        }
        if final_status(&reply) == Some(101) {
            echo(wire).await;
            return;
        }
    }
}

impl RawShared {
    fn record(&self, connection: usize, head: Head, body: Body, error: Option<String>) {
        self.seen
            .lock()
            .expect("raw upstream log")
            .push(RawRequest {
                connection,
                head,
                body,
                error,
            });
    }

    fn next_reply(&self) -> Vec<Bytes> {
        self.script
            .lock()
            .expect("raw upstream script")
            .pop_front()
            .unwrap_or_else(|| vec![self.default.clone()])
    }
}

/// Writes a response's parts, [`PART_GAP`] apart.
async fn write_parts(stream: &mut TcpStream, parts: &[Bytes]) -> std::io::Result<()> {
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            tokio::time::sleep(PART_GAP).await;
        }
        stream.write_all(part).await?;
    }
    Ok(())
}

/// Whether the connection may carry another request after this raw response: its final head
/// parses, does not say `Connection: close`, and delimits its body (or has none). A `101`
/// keeps going (as a tunnel).
fn keeps_going(reply: &[u8], head_request: bool) -> bool {
    let Some(head) = final_head(reply) else {
        return false;
    };
    if head.status() == 101 {
        return true;
    }
    if head.lists("connection", "close") || head.line.starts_with("HTTP/1.0") {
        return false;
    }
    let bodiless = head_request || matches!(head.status(), 100..=199 | 204 | 304);
    matches!(
        head.framing(false, bodiless),
        Ok(Framing::None | Framing::Length(_) | Framing::Chunked)
    )
}

/// The first non-interim head of a raw response.
fn final_head(reply: &[u8]) -> Option<Head> {
    let mut rest = reply;
    loop {
        let end = find(rest, b"\r\n\r\n")? + 4;
        let head = Head::parse(&rest[..end]).ok()?;
        if !(100..200).contains(&head.status()) || head.status() == 101 {
            return Some(head);
        }
        rest = &rest[end..];
    }
}

fn final_status(reply: &[u8]) -> Option<u16> {
    final_head(reply).map(|h| h.status())
}

/// After a protocol switch: every byte that comes is sent back, until either side closes.
async fn echo(mut wire: WireReader<TcpStream>) {
    let pending = std::mem::take(&mut wire.buf);
    let mut stream = wire.io;
    if !pending.is_empty() && stream.write_all(&pending).await.is_err() {
        return;
    }
    let mut buf = [0u8; 4096];
    while let Ok(Ok(n @ 1..)) = tokio::time::timeout(UPSTREAM_PATIENCE, stream.read(&mut buf)).await
    {
        if stream.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

/// Takes one off a counter when dropped (also when the task is cancelled).
struct Decrement<'a>(&'a AtomicUsize);

impl Drop for Decrement<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn trim(v: &[u8]) -> &[u8] {
    let start = v
        .iter()
        .position(|b| !matches!(b, b' ' | b'\t'))
        .unwrap_or(v.len());
    let end = v
        .iter()
        .rposition(|b| !matches!(b, b' ' | b'\t'))
        .map_or(start, |e| e + 1);
    &v[start..end]
}

/// Bytes for a message: printable ASCII as is, the rest escaped, cut after 200 bytes.
pub fn show(bytes: &[u8]) -> String {
    let mut out: String = bytes
        .iter()
        .take(200)
        .flat_map(|&b| std::ascii::escape_default(b))
        .map(char::from)
        .collect();
    if bytes.len() > 200 {
        out.push_str(&format!("... ({} bytes)", bytes.len()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_head_keeps_order_case_and_trims_values() {
        let head =
            Head::parse(b"HTTP/1.1 200 OK\r\nX-A:  1 \r\nSet-Cookie: a\r\nset-cookie:b\r\n\r\n")
                .expect("a head");
        assert_eq!(head.status(), 200);
        assert_eq!(head.lines[0], ("X-A".to_string(), b"1".to_vec()));
        assert_eq!(head.all("SET-COOKIE"), [b"a".as_slice(), b"b".as_slice()]);
        assert!(
            Head::parse(b"GET / HTTP/1.1\nHost: x\r\n\r\n").is_err(),
            "bare LF"
        );
    }

    #[test]
    fn framing_follows_rfc_9112() {
        let h = |s: &str| Head::parse(s.as_bytes()).expect("a head");
        let cl = h("HTTP/1.1 200 OK\r\nContent-Length: 5, 5\r\nContent-Length: 5\r\n\r\n");
        assert_eq!(cl.framing(false, false), Ok(Framing::Length(5)));
        let both = h("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n");
        assert_eq!(both.framing(false, false), Ok(Framing::Chunked));
        let bad = h("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n");
        assert!(bad.framing(false, false).is_err());
        let none = h("HTTP/1.1 200 OK\r\n\r\n");
        assert_eq!(none.framing(false, false), Ok(Framing::UntilClose));
        assert_eq!(none.framing(true, false), Ok(Framing::None));
        assert_eq!(cl.framing(false, true), Ok(Framing::None));
    }

    #[tokio::test]
    async fn chunked_bodies_decode_with_trailers() {
        let raw: &[u8] = b"5;x=y\r\nhello\r\n1\r\n!\r\n0\r\nX-T: 1\r\n\r\nNEXT";
        let mut wire = WireReader::new(raw);
        let deadline = Instant::now() + Duration::from_secs(1);
        let body = wire.body(Framing::Chunked, deadline).await.expect("a body");
        assert_eq!(body.bytes, b"hello!");
        assert_eq!(body.trailers, [("x-t".to_string(), b"1".to_vec())]);
        assert_eq!(wire.buffered(), b"NEXT");
    }

    #[test]
    fn keep_alive_follows_the_final_head() {
        assert!(keeps_going(
            b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
            false
        ));
        assert!(!keeps_going(b"HTTP/1.1 200 OK\r\n\r\nuntil close", false));
        assert!(keeps_going(b"HTTP/1.1 200 OK\r\n\r\n", true), "HEAD");
        assert!(!keeps_going(
            b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
            false
        ));
        assert!(keeps_going(
            b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n",
            false
        ));
    }
}
