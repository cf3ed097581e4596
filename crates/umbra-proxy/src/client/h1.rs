//! The direct HTTP/1.1 upstream exchange: a request whose body is already known (none, or a
//! shadow's copy in memory) is written on a worker's pooled keep-alive connection and its
//! response read back in the calling task itself, with no connection task, channel or wake-up
//! in between. Streaming request bodies and upgrades go through hyper's client instead
//! (`pool.rs`), which can write a body while a response arrives.
//!
//! Parsing is httparse's; what is written here is the framing (RFC 9112 §6): content-length,
//! chunked and close-delimited bodies, bodiless answers (HEAD, 1xx, 204, 304), and when a
//! connection may be used again.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use bytes::{Buf, Bytes, BytesMut};
use http::header::{CONTENT_LENGTH, TRANSFER_ENCODING};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Response, StatusCode, Version};
use http_body::{Frame, SizeHint};
use http_body_util::Full;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::wire::headers::{list, put_field};
use crate::wire::relay::{Framed, Kind, Relayed};

/// Response headers read at most (hyper's client default).
pub(crate) const MAX_HEADERS: usize = 100;
/// A response head larger than this is refused.
pub(crate) const MAX_HEAD: usize = 64 * 1024;
/// A chunk-size or trailer line longer than this is refused.
const MAX_LINE: usize = 4096;
/// Trailer lines read (and dropped) at most after a chunked body.
const MAX_TRAILERS: u32 = 64;
/// Read buffer growth step.
const READ_CHUNK: usize = 8 * 1024;

/// Why an exchange failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("upstream I/O: {0}")]
    Io(#[from] std::io::Error),
    #[error("upstream closed the connection before a complete response head")]
    Closed {
        /// Some response bytes had arrived (false: the request may never have been read).
        received: bool,
    },
    #[error("malformed upstream response: {0}")]
    Parse(#[from] httparse::Error),
    #[error("upstream response head is larger than {MAX_HEAD} bytes")]
    HeadTooLarge,
    #[error("invalid upstream response: {0}")]
    Invalid(&'static str),
    #[error("upstream closed the connection in the middle of the body")]
    BodyCut,
    #[error("no response head before the deadline")]
    TimedOut,
}

impl Error {
    /// Nothing came back: on a reused connection the server had most likely closed it idle.
    fn nothing_received(&self) -> bool {
        match self {
            Error::Closed { received } => !received,
            Error::Io(e) => matches!(
                e.kind(),
                std::io::ErrorKind::ConnectionReset
                    | std::io::ErrorKind::BrokenPipe
                    | std::io::ErrorKind::ConnectionAborted
            ),
            _ => false,
        }
    }
}

/// One upstream connection and what has been read from it but not yet consumed.
pub struct Conn {
    io: TcpStream,
    buf: BytesMut,
    /// The response deadline, one timer for the connection's life: each exchange moves it
    /// (later deadlines cost tokio no timer-wheel work) instead of making and dropping a timer.
    deadline: Pin<Box<tokio::time::Sleep>>,
}

impl Conn {
    pub fn new(io: TcpStream) -> Conn {
        Conn {
            io,
            buf: BytesMut::new(),
            deadline: Box::pin(tokio::time::sleep(std::time::Duration::ZERO)),
        }
    }

    /// Still open and silent (an idle connection the server closed reads as EOF; one that
    /// sent something unasked can't be trusted). Costs no syscall unless the socket was
    /// reported readable.
    pub fn is_usable(&self) -> bool {
        if !self.buf.is_empty() {
            return false;
        }
        let mut probe = [0u8; 1];
        matches!(self.io.try_read(&mut probe), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
    }
}

/// Whether a request may be sent again after its connection failed with nothing received
/// (RFC 9110 §9.2.2 idempotent methods).
fn idempotent(m: &Method) -> bool {
    matches!(
        *m,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE | Method::PUT | Method::DELETE
    )
}

/// The request's bytes on the wire: head, then the body (already in memory). `overrides`
/// are written after `headers`, replacing any field of the same name there.
pub fn encode_request(
    method: &Method,
    path_and_query: &str,
    headers: &HeaderMap,
    overrides: &[(&HeaderName, &HeaderValue)],
    body: &[u8],
) -> Vec<u8> {
    let mut out = Vec::with_capacity(256 + body.len());
    out.extend_from_slice(method.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(path_and_query.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    let mut has_length = false;
    let fields = headers
        .iter()
        .filter(|(name, _)| !overrides.iter().any(|(n, _)| n == name))
        .chain(overrides.iter().copied());
    for (name, value) in fields {
        // The framing is ours: the body is sent whole with its own length.
        if name == TRANSFER_ENCODING {
            continue;
        }
        if name == CONTENT_LENGTH {
            if !body.is_empty() {
                continue;
            }
            has_length = true;
        }
        put_field(&mut out, name.as_str().as_bytes(), value.as_bytes());
    }
    // Methods that usually carry a body say it is empty (some servers answer 411 otherwise).
    let wants_length = !body.is_empty()
        || (!has_length && matches!(*method, Method::POST | Method::PUT | Method::PATCH));
    if wants_length {
        put_field(
            &mut out,
            b"content-length",
            body.len().to_string().as_bytes(),
        );
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
    out
}

/// How the response body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Framing {
    Length(u64),
    Chunked,
    /// Until the server closes the connection (never reusable).
    Close,
}

/// A parsed response head, its body framing, and whether the connection may carry another
/// request once the body has been read. The fields stay lines (`Relayed`) until something
/// needs them as a map.
pub struct Head {
    pub status: StatusCode,
    pub version: Version,
    pub fields: Relayed,
    pub(crate) framing: Framing,
    pub(crate) reusable: bool,
}

/// Writes `wire` and reads the response head, by `deadline`. `head_request`: the request was
/// HEAD (its response has no body whatever its headers say).
async fn exchange(
    conn: &mut Conn,
    wire: &[u8],
    head_request: bool,
    deadline: tokio::time::Instant,
) -> Result<Head, Error> {
    conn.deadline.as_mut().reset(deadline);
    let Conn { io, buf, deadline } = conn;
    let work = async {
        io.write_all(wire).await?;
        let mut received = false;
        loop {
            if !buf.is_empty() {
                received = true;
                if let Some(head) = parse_head(buf, head_request)? {
                    return Ok(head);
                }
                if buf.len() >= MAX_HEAD {
                    return Err(Error::HeadTooLarge);
                }
            }
            buf.reserve(READ_CHUNK);
            if io.read_buf(buf).await? == 0 {
                return Err(Error::Closed { received });
            }
        }
    };
    tokio::select! {
        biased;
        head = work => head,
        _ = deadline.as_mut() => Err(Error::TimedOut),
    }
}

/// What the head says about framing, gathered while its fields are read.
#[derive(Default)]
struct Facts {
    length: Option<u64>,
    /// Whether the last transfer coding named is chunked (None: no transfer-encoding).
    chunked: Option<bool>,
    close: bool,
    /// `Connection` names no other field (only `keep-alive` / `close`), so it and
    /// `Keep-Alive` can be left out of the relayed head: the proxy would strip them anyway.
    connection_plain: bool,
}

impl Facts {
    fn note(&mut self, kind: Kind, value: &[u8]) -> Result<(), Error> {
        if kind == Kind::ContentLength {
            for part in list(value) {
                // At most 19 digits: no u64 overflow.
                if part.is_empty() || part.len() > 19 || !part.iter().all(u8::is_ascii_digit) {
                    return Err(Error::Invalid("content-length"));
                }
                let n = part.iter().fold(0u64, |n, &d| n * 10 + u64::from(d - b'0'));
                if self.length.is_some_and(|l| l != n) {
                    return Err(Error::Invalid("conflicting content-length values"));
                }
                self.length = Some(n);
            }
        } else if kind == Kind::TransferEncoding {
            let last = list(value).next_back().unwrap_or_default();
            self.chunked = Some(last.eq_ignore_ascii_case(b"chunked"));
        } else if kind == Kind::Connection {
            for token in list(value) {
                if token.eq_ignore_ascii_case(b"close") {
                    self.close = true;
                } else if !token.is_empty() && !token.eq_ignore_ascii_case(b"keep-alive") {
                    self.connection_plain = false;
                }
            }
        }
        Ok(())
    }
}

/// Parses one complete final response head off the front of `buf` (skipping 1xx interim
/// responses); None when more bytes are needed.
pub(crate) fn parse_head(buf: &mut BytesMut, head_request: bool) -> Result<Option<Head>, Error> {
    loop {
        let mut slots =
            [const { std::mem::MaybeUninit::<httparse::Header>::uninit() }; MAX_HEADERS];
        let mut resp = httparse::Response::new(&mut []);
        let parsed = httparse::ParserConfig::default()
            .parse_response_with_uninit_headers(&mut resp, buf, &mut slots)?;
        let len = match parsed {
            httparse::Status::Complete(n) => n,
            httparse::Status::Partial => return Ok(None),
        };
        let code = resp.code.unwrap_or(0);
        if (100..200).contains(&code) && code != 101 {
            buf.advance(len);
            continue;
        }
        let status = StatusCode::from_u16(code).map_err(|_| Error::Invalid("status code"))?;
        let version = if resp.version == Some(0) {
            Version::HTTP_10
        } else {
            Version::HTTP_11
        };
        let mut facts = Facts {
            connection_plain: true,
            ..Facts::default()
        };
        // Each name is told apart once: the facts first, then the lines, which depend on them.
        let mut kinds = [Kind::Other; MAX_HEADERS];
        for (h, kind) in resp.headers.iter().zip(kinds.iter_mut()) {
            *kind = Kind::of(h.name.as_bytes());
            facts.note(*kind, h.value)?;
        }
        let (framing, reusable) = framing(code, version, &facts, head_request);
        let fields = Relayed::from_fields(
            resp.headers,
            &kinds,
            Framed {
                // A 204 or 304 has no body: its length, if any, is not relayed (RFC 9110
                // §8.6 forbids one on a 204; hyper's server drops both).
                coded: facts.chunked.is_some() || code == 204 || code == 304,
                connection_plain: facts.connection_plain,
            },
        );
        buf.advance(len);
        return Ok(Some(Head {
            status,
            version,
            fields,
            framing,
            reusable,
        }));
    }
}

/// RFC 9112 §6.3 message body length, and whether the connection survives the response.
fn framing(code: u16, version: Version, facts: &Facts, head_request: bool) -> (Framing, bool) {
    let reusable = version == Version::HTTP_11 && !facts.close;
    if code == 101 {
        // Switched protocols without being asked to: the connection is no longer HTTP.
        return (Framing::Length(0), false);
    }
    if head_request || code == 204 || code == 304 {
        return (Framing::Length(0), reusable);
    }
    match (facts.chunked, facts.length) {
        // Both framings given: don't trust the connection afterwards.
        (Some(true), length) => (Framing::Chunked, reusable && length.is_none()),
        (Some(false), _) => (Framing::Close, false),
        (None, Some(n)) => (Framing::Length(n), reusable),
        (None, None) => (Framing::Close, false),
    }
}

/// Gives a connection whose response has been read to its end back to the pool (`key`), if it
/// may carry another request: the response allowed it and nothing was read past its end (a
/// server out of step is not trusted again).
fn release(conn: Conn, reusable: bool, key: &Arc<str>) {
    if reusable && conn.buf.is_empty() {
        super::put_raw(key, conn);
    }
}

/// Turns a parsed head and its connection into a response. When the whole body has already
/// arrived (the usual small answer) the connection goes back to the pool (`key`) right here;
/// otherwise the body takes it along and gives it back at its end. The response's own map is
/// empty: the fields come beside it.
pub fn into_response(head: Head, mut conn: Conn, key: Arc<str>) -> (Response<RawBody>, Relayed) {
    let body = match head.framing {
        Framing::Length(n) if n <= conn.buf.len() as u64 => {
            let data = conn.buf.split_to(n as usize).freeze();
            release(conn, head.reusable, &key);
            RawBody::Full(Full::new(data))
        }
        framing => RawBody::Stream(Box::new(Stream {
            conn: Some(conn),
            state: match framing {
                Framing::Length(n) => State::Length(n),
                Framing::Chunked => State::Chunked(Chunk::Size),
                Framing::Close => State::Close,
            },
            reusable: head.reusable,
            key,
        })),
    };
    let mut resp = Response::new(body);
    *resp.status_mut() = head.status;
    *resp.version_mut() = head.version;
    (resp, head.fields)
}

/// A response body read by the direct client.
pub enum RawBody {
    /// All of it arrived with the head.
    Full(Full<Bytes>),
    Stream(Box<Stream>),
}

/// A body still arriving on its connection.
pub struct Stream {
    conn: Option<Conn>,
    state: State,
    reusable: bool,
    key: Arc<str>,
}

enum State {
    Length(u64),
    Chunked(Chunk),
    Close,
    Done,
}

/// Where a chunked decoder stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Chunk {
    Size,
    Data(u64),
    DataEnd,
    /// Trailer lines read so far (dropped; at most `MAX_TRAILERS`).
    Trailers(u32),
}

pub(crate) enum Step {
    Data(Bytes),
    More,
    End,
}

/// Takes one line (through `\r\n`) off the front of `buf`, without its line ending. A bare
/// `\n` is refused (RFC 9112 §7.1: chunk lines end in CRLF; a lenient reader disagrees with a
/// strict one about where the body ends).
fn line(buf: &mut BytesMut) -> Result<Option<BytesMut>, Error> {
    match buf.iter().position(|&b| b == b'\n') {
        Some(i) => {
            if i == 0 || buf[i - 1] != b'\r' {
                return Err(Error::Invalid("chunked line without CRLF"));
            }
            let mut l = buf.split_to(i + 1);
            l.truncate(i - 1);
            Ok(Some(l))
        }
        None if buf.len() > MAX_LINE => Err(Error::Invalid("chunked line too long")),
        None => Ok(None),
    }
}

fn chunk_size(l: &[u8]) -> Result<u64, Error> {
    let digits = l
        .split(|&b| b == b';')
        .next()
        .unwrap_or_default()
        .trim_ascii();
    if digits.is_empty() || digits.len() > 15 {
        return Err(Error::Invalid("chunk size"));
    }
    let mut n = 0u64;
    for &d in digits {
        let v = (d as char)
            .to_digit(16)
            .ok_or(Error::Invalid("chunk size"))?;
        n = n * 16 + v as u64;
    }
    Ok(n)
}

/// Decodes what `buf` holds of a chunked body.
pub(crate) fn decode_chunked(state: &mut Chunk, buf: &mut BytesMut) -> Result<Step, Error> {
    loop {
        match *state {
            Chunk::Size => match line(buf)? {
                None => return Ok(Step::More),
                Some(l) => {
                    let n = chunk_size(&l)?;
                    *state = if n == 0 {
                        Chunk::Trailers(0)
                    } else {
                        Chunk::Data(n)
                    };
                }
            },
            Chunk::Data(n) => {
                if buf.is_empty() {
                    return Ok(Step::More);
                }
                let take = n.min(buf.len() as u64);
                let data = buf.split_to(take as usize).freeze();
                *state = if take == n {
                    Chunk::DataEnd
                } else {
                    Chunk::Data(n - take)
                };
                return Ok(Step::Data(data));
            }
            Chunk::DataEnd => match line(buf)? {
                None => return Ok(Step::More),
                Some(l) if l.is_empty() => *state = Chunk::Size,
                Some(_) => return Err(Error::Invalid("chunk data longer than its size")),
            },
            // Trailer fields are read and dropped.
            Chunk::Trailers(n) => match line(buf)? {
                None => return Ok(Step::More),
                Some(l) if l.is_empty() => return Ok(Step::End),
                Some(_) if n >= MAX_TRAILERS => return Err(Error::Invalid("too many trailers")),
                Some(_) => *state = Chunk::Trailers(n + 1),
            },
        }
    }
}

impl Stream {
    /// The body ended cleanly: the connection may serve again.
    fn finish(&mut self) {
        self.state = State::Done;
        if let Some(conn) = self.conn.take() {
            release(conn, self.reusable, &self.key);
        }
    }

    fn poll_frame(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        loop {
            let Some(conn) = self.conn.as_mut() else {
                return Poll::Ready(None);
            };
            let step = match &mut self.state {
                State::Done => Step::End,
                State::Length(0) => Step::End,
                State::Length(n) if !conn.buf.is_empty() => {
                    let take = (*n).min(conn.buf.len() as u64);
                    *n -= take;
                    Step::Data(conn.buf.split_to(take as usize).freeze())
                }
                State::Close if !conn.buf.is_empty() => Step::Data(conn.buf.split().freeze()),
                State::Chunked(c) => match decode_chunked(c, &mut conn.buf) {
                    Ok(s) => s,
                    Err(e) => {
                        self.conn = None;
                        return Poll::Ready(Some(Err(e)));
                    }
                },
                State::Length(_) | State::Close => Step::More,
            };
            match step {
                Step::Data(d) => {
                    if matches!(self.state, State::Length(0)) {
                        self.finish();
                    }
                    return Poll::Ready(Some(Ok(Frame::data(d))));
                }
                Step::End => {
                    self.finish();
                    return Poll::Ready(None);
                }
                Step::More => {}
            }
            // Read more.
            conn.buf.reserve(READ_CHUNK);
            let n = match conn.io.try_read_buf(&mut conn.buf) {
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    if let Err(e) = ready!(conn.io.poll_read_ready(cx)) {
                        self.conn = None;
                        return Poll::Ready(Some(Err(e.into())));
                    }
                    continue;
                }
                Err(e) => {
                    self.conn = None;
                    return Poll::Ready(Some(Err(e.into())));
                }
            };
            if n == 0 {
                self.conn = None;
                if matches!(self.state, State::Close) {
                    self.state = State::Done;
                    return Poll::Ready(None);
                }
                return Poll::Ready(Some(Err(Error::BodyCut)));
            }
        }
    }
}

impl http_body::Body for RawBody {
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        match self.get_mut() {
            RawBody::Full(b) => Pin::new(b).poll_frame(cx).map_err(|never| match never {}),
            RawBody::Stream(s) => s.poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            RawBody::Full(b) => b.is_end_stream(),
            RawBody::Stream(s) => matches!(s.state, State::Done | State::Length(0)),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            RawBody::Full(b) => b.size_hint(),
            RawBody::Stream(s) => match s.state {
                State::Length(n) => SizeHint::with_exact(n),
                State::Done => SizeHint::with_exact(0),
                _ => SizeHint::default(),
            },
        }
    }
}

/// Sends `wire` on `conn` and reads the response head by `deadline`; when a reused connection
/// turns out dead with nothing received and the request may be repeated, once more on a fresh
/// one from `fresh`.
pub async fn send_on<F, Fut>(
    mut conn: Conn,
    reused: bool,
    wire: &[u8],
    method: &Method,
    fresh: F,
    deadline: tokio::time::Instant,
) -> Result<(Head, Conn), super::SendError>
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = Result<Conn, super::SendError>>,
{
    let head_request = *method == Method::HEAD;
    match exchange(&mut conn, wire, head_request, deadline).await {
        Ok(head) => Ok((head, conn)),
        Err(e) if reused && e.nothing_received() && idempotent(method) => {
            let mut conn = fresh().await?;
            let head = exchange(&mut conn, wire, head_request, deadline).await?;
            Ok((head, conn))
        }
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(text: &str) -> Result<Option<Head>, Error> {
        let mut buf = BytesMut::from(text.as_bytes());
        parse_head(&mut buf, false)
    }

    #[test]
    fn request_bytes() {
        let mut h = HeaderMap::new();
        h.insert("host", HeaderValue::from_static("up:80"));
        h.insert("transfer-encoding", HeaderValue::from_static("chunked"));
        h.insert("content-length", HeaderValue::from_static("99"));
        let wire = encode_request(&Method::POST, "/a?b=1", &h, &[], b"hello");
        assert_eq!(
            String::from_utf8(wire).unwrap(),
            "POST /a?b=1 HTTP/1.1\r\nhost: up:80\r\ncontent-length: 5\r\n\r\nhello"
        );
        let wire = encode_request(&Method::GET, "/", &HeaderMap::new(), &[], b"");
        assert_eq!(wire, b"GET / HTTP/1.1\r\n\r\n");
        let wire = encode_request(&Method::PUT, "/", &HeaderMap::new(), &[], b"");
        assert_eq!(wire, b"PUT / HTTP/1.1\r\ncontent-length: 0\r\n\r\n");

        // Overrides replace fields of the same name and come last.
        let mut h = HeaderMap::new();
        h.insert("x-request-id", HeaderValue::from_static("client"));
        h.insert("accept", HeaderValue::from_static("*/*"));
        let id = HeaderValue::from_static("ours");
        let name = HeaderName::from_static("x-request-id");
        let wire = encode_request(&Method::GET, "/x", &h, &[(&name, &id)], b"");
        assert_eq!(
            String::from_utf8(wire).unwrap(),
            "GET /x HTTP/1.1\r\naccept: */*\r\nx-request-id: ours\r\n\r\n"
        );
    }

    #[test]
    fn heads_and_framing() {
        let h = head("HTTP/1.1 200 OK\r\nContent-Length: 3\r\nX-A: b\r\n\r\nabc")
            .unwrap()
            .unwrap();
        assert_eq!(h.status, 200);
        assert_eq!(h.framing, Framing::Length(3));
        assert!(h.reusable);
        assert_eq!(h.fields.lines(), b"Content-Length: 3\r\nX-A: b\r\n");

        let h = head(
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\nContent-Length: 3\r\n\r\n",
        )
        .unwrap()
        .unwrap();
        assert_eq!(h.framing, Framing::Chunked);
        assert!(
            !h.reusable,
            "both framings given: don't trust the connection"
        );
        assert!(h.fields.lines().is_empty(), "the framing is not relayed");

        let h = head(
            "HTTP/1.1 200 OK\r\nConnection: keep-alive\r\nKeep-Alive: timeout=5\r\nContent-Length: 0\r\n\r\n",
        )
        .unwrap()
        .unwrap();
        assert!(h.reusable);
        assert_eq!(
            h.fields.lines(),
            b"Content-Length: 0\r\n",
            "plain hop-by-hop fields are left out"
        );
        let h =
            head("HTTP/1.1 200 OK\r\nConnection: x-hop\r\nX-Hop: 1\r\nContent-Length: 0\r\n\r\n")
                .unwrap()
                .unwrap();
        assert!(
            h.fields.needs_map(),
            "a Connection naming a field stays for the proxy to act on"
        );
        assert_eq!(
            h.fields.lines(),
            b"Connection: x-hop\r\nX-Hop: 1\r\nContent-Length: 0\r\n"
        );

        let h = head("HTTP/1.1 200 OK\r\n\r\n").unwrap().unwrap();
        assert_eq!((h.framing, h.reusable), (Framing::Close, false));
        let h = head("HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n")
            .unwrap()
            .unwrap();
        assert!(!h.reusable, "HTTP/1.0 closes");
        let h =
            head("HTTP/1.1 200 OK\r\nConnection: keep-alive, Close\r\nContent-Length: 0\r\n\r\n")
                .unwrap()
                .unwrap();
        assert!(!h.reusable);
        let h = head("HTTP/1.1 204 No Content\r\n\r\n").unwrap().unwrap();
        assert_eq!((h.framing, h.reusable), (Framing::Length(0), true));
        let h = head("HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(h.framing, Framing::Length(0));

        let mut buf = BytesMut::from(&b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n"[..]);
        let h = parse_head(&mut buf, true).unwrap().unwrap();
        assert_eq!(h.framing, Framing::Length(0), "a HEAD answer has no body");

        // Interim responses are skipped.
        let mut buf = BytesMut::from(
            &b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok"[..],
        );
        let h = parse_head(&mut buf, false).unwrap().unwrap();
        assert_eq!(h.status, 201);
        assert_eq!(&buf[..], b"ok");

        assert!(head("HTTP/1.1 200 OK\r\nContent-Le").unwrap().is_none());
        assert!(matches!(
            head("HTTP/1.1 200 OK\r\nContent-Length: 1, 2\r\n\r\n"),
            Err(Error::Invalid(_))
        ));
        assert!(matches!(
            head("HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n"),
            Err(Error::Invalid(_))
        ));
        let h = head("HTTP/1.1 200 OK\r\nContent-Length: 7, 7 ,7\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(h.framing, Framing::Length(7), "repeats of one length agree");
        let h = head("HTTP/1.1 200 OK\r\nContent-Length: 9999999999999999999\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(h.framing, Framing::Length(9_999_999_999_999_999_999));
        assert!(
            matches!(
                head("HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999\r\n\r\n"),
                Err(Error::Invalid(_))
            ),
            "20 digits could overflow: refused"
        );
        assert!(matches!(head("garbage\r\n\r\n"), Err(Error::Parse(_))));
    }

    #[test]
    fn chunked_decoding_across_any_split() {
        let wire = b"5;ext=1\r\nhello\r\n0000007\r\n, world\r\n0\r\nX-Trailer: t\r\n\r\n";
        for split in 0..wire.len() {
            let mut state = Chunk::Size;
            let mut buf = BytesMut::from(&wire[..split]);
            let mut out = Vec::new();
            let mut fed = false;
            loop {
                match decode_chunked(&mut state, &mut buf).unwrap() {
                    Step::Data(d) => out.extend_from_slice(&d),
                    Step::More => {
                        assert!(!fed, "needs no more than the whole body");
                        buf.extend_from_slice(&wire[split..]);
                        fed = true;
                    }
                    Step::End => break,
                }
            }
            assert_eq!(out, b"hello, world", "split at {split}");
            assert!(buf.is_empty());
        }
        let mut state = Chunk::Size;
        let mut bad = BytesMut::from(&b"zz\r\n"[..]);
        assert!(decode_chunked(&mut state, &mut bad).is_err());
        let mut state = Chunk::Size;
        let mut long = BytesMut::from(&b"2\r\nabc\r\n"[..]);
        assert!(matches!(
            decode_chunked(&mut state, &mut long),
            Ok(Step::Data(_))
        ));
        assert!(decode_chunked(&mut state, &mut long).is_err());
    }

    /// Decodes a whole chunked body, or says why not.
    fn decode_all(wire: &[u8]) -> Result<Vec<u8>, Error> {
        let (mut state, mut buf, mut out) = (Chunk::Size, BytesMut::from(wire), Vec::new());
        loop {
            match decode_chunked(&mut state, &mut buf)? {
                Step::Data(d) => out.extend_from_slice(&d),
                Step::More => return Err(Error::Invalid("incomplete")),
                Step::End => return Ok(out),
            }
        }
    }

    #[test]
    fn chunked_framing_is_read_strictly() {
        assert_eq!(decode_all(b"5\r\nhello\r\n0\r\n\r\n").unwrap(), b"hello");
        let refused: [&[u8]; 6] = [
            b"5\nhello\r\n0\r\n\r\n",
            b"5\r\nhello\n0\r\n\r\n",
            b"5\r\nhello\r\n0\r\n\n",
            b"ffffffffffffffffff\r\nx\r\n0\r\n\r\n",
            b"-5\r\nhello\r\n0\r\n\r\n",
            b"0x5\r\nhello\r\n0\r\n\r\n",
        ];
        for wire in refused {
            assert!(
                decode_all(wire).is_err(),
                "{:?}",
                String::from_utf8_lossy(wire)
            );
        }
        let mut trailers = b"0\r\n".to_vec();
        for i in 0..MAX_TRAILERS {
            trailers.extend_from_slice(format!("X-T{i}: v\r\n").as_bytes());
        }
        let mut ok = trailers.clone();
        ok.extend_from_slice(b"\r\n");
        assert!(decode_all(&ok).is_ok(), "{MAX_TRAILERS} trailers are read");
        trailers.extend_from_slice(b"X-One-More: v\r\n\r\n");
        assert!(decode_all(&trailers).is_err(), "one more is refused");
    }
}

#[cfg(test)]
mod wire_tests {
    use super::*;
    use http_body_util::BodyExt;

    #[tokio::test]
    async fn a_body_arriving_after_its_head_streams() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            let mut b = [0u8; 1024];
            let _ = s.read(&mut b).await;
            s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n")
                .await
                .unwrap();
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            s.write_all(b"he").await.unwrap();
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            s.write_all(b"llo").await.unwrap();
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        });
        let mut conn = Conn::new(TcpStream::connect(addr).await.unwrap());
        let wire = encode_request(&Method::GET, "/", &HeaderMap::new(), &[], b"");
        let far = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
        let head = exchange(&mut conn, &wire, false, far).await.unwrap();
        let (resp, _) = into_response(head, conn, Arc::from("k"));
        let body = tokio::time::timeout(
            std::time::Duration::from_secs(2),
            resp.into_body().collect(),
        )
        .await
        .expect("the body arrives")
        .unwrap()
        .to_bytes();
        assert_eq!(&body[..], b"hello");
    }
}
