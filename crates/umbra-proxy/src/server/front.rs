//! The client side of an HTTP/1.1 connection, for the common request: an HTTP/1.1 head with no
//! body, no upgrade and no `Expect`. Such requests are parsed with httparse, handled, and their
//! responses written straight to the socket, with no dispatcher, body channel or per-request
//! timer in between. The first request that is anything else (a body, an upgrade, HTTP/1.0, a
//! head httparse refuses or one too large, the h2c preface) hands the connection, with the
//! bytes already read, to hyper's server for the rest of its life, which then answers it as it
//! always did (400, 431, streaming, WebSocket, HTTP/2).

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use bytes::{Bytes, BytesMut};
use http::header::{CONNECTION, CONTENT_LENGTH, DATE, EXPECT, TRANSFER_ENCODING, UPGRADE};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, StatusCode, Uri};
use http_body::Body;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

use super::reply::{Fields, ProxyBody, Reply};
use crate::wire::headers::{lists, put_field};
use crate::wire::relay::Relayed;

/// Request headers read at most (hyper's server default); more hands over to hyper (431).
const MAX_HEADERS: usize = 100;
/// Read buffer size, and its growth step.
const READ_CHUNK: usize = 8 * 1024;
/// The header-read deadline is moved only when it is off by more than the timeout divided by
/// this (a timer reset costs more than the rest of a small request's wait).
const DEADLINE_SLACK: u32 = 32;
/// Body bytes gathered at most before they are written.
const FLUSH_AT: usize = 64 * 1024;

/// How a connection's time on the fast lane ended.
pub(super) enum Outcome {
    /// Closed (by the client, an error, a timeout, `Connection: close` or shutdown).
    Closed,
    /// A request the fast lane does not take: hyper serves the rest, starting with these bytes.
    HandOver(Bytes),
}

/// What a connection needs from its worker.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) struct Limits {
    /// How long a request head may take to arrive, idle keep-alive time included.
    pub header_timeout: Duration,
    /// The largest request head accepted (`proxy.max_header_size`); past it hyper answers 431.
    pub max_head: usize,
    /// Whether the fast lane takes requests at all (`proxy.fast_lane`).
    pub fast_lane: bool,
    /// How long a connection on hyper's server may stay idle (`proxy.idle_timeout`).
    pub idle_timeout: Duration,
    /// Client connections open at most per process; 0: no limit.
    pub max_connections: usize,
}

/// Serves requests on `io` until it closes or hands over. `handle` answers one request. On
/// `shutdown` an idle connection closes at once and a busy one after its response.
pub(super) async fn serve<F, Fut>(
    io: &mut TcpStream,
    limits: Limits,
    shutdown: &CancellationToken,
    activity: Option<&super::conns::Activity>,
    handle: F,
) -> Outcome
where
    F: Fn(Request<Option<hyper::body::Incoming>>) -> Fut,
    Fut: std::future::Future<Output = Reply>,
{
    let mut buf = BytesMut::with_capacity(READ_CHUNK);
    let mut out = Vec::with_capacity(1024);
    // One timer per connection, moved forward rather than made anew for each request.
    let deadline = tokio::time::sleep(limits.header_timeout);
    tokio::pin!(deadline);
    let cancelled = shutdown.clone().cancelled_owned();
    tokio::pin!(cancelled);
    let slack = limits.header_timeout / DEADLINE_SLACK;
    loop {
        // Each head has the whole timeout from when umbra starts waiting for it (give or take
        // the slack); bytes trickling in do not extend it.
        let want = tokio::time::Instant::now() + limits.header_timeout;
        if want > deadline.deadline() + slack {
            deadline.as_mut().reset(want);
        }
        // Read until a whole head is in the buffer.
        let (req, close) = loop {
            if !buf.is_empty() {
                match parse(&mut buf) {
                    Parsed::Request(req, close) => break (req, close),
                    Parsed::Partial if buf.len() < limits.max_head => {}
                    Parsed::Partial | Parsed::Other => return Outcome::HandOver(buf.freeze()),
                }
            }
            buf.reserve(READ_CHUNK);
            let idle = buf.is_empty();
            let read = tokio::select! {
                biased;
                r = io.read_buf(&mut buf) => r,
                _ = &mut deadline => return Outcome::Closed,
                _ = cancelled.as_mut(), if idle => return Outcome::Closed,
            };
            match read {
                Ok(0) | Err(_) => return Outcome::Closed,
                Ok(_) => {}
            }
        };
        let head_request = req.method() == Method::HEAD;
        if let Some(a) = activity {
            a.begin();
        }
        let handling = handle(req);
        tokio::pin!(handling);
        // A client that leaves while its request is handled cancels it, upstream exchange and
        // all, as hyper's server does. Bytes that come meanwhile are its next request; the
        // watch ends there. (After the short read that completed the head, tokio knows the
        // socket is drained, so watching costs no syscall.)
        let mut watching = buf.is_empty();
        let resp = loop {
            if watching {
                buf.reserve(1);
            }
            tokio::select! {
                biased;
                resp = &mut handling => break resp,
                read = io.read_buf(&mut buf), if watching => match read {
                    Ok(0) | Err(_) => return Outcome::Closed,
                    Ok(_) => watching = false,
                },
            }
        };
        let keep_alive = !close && !shutdown.is_cancelled() && !resp.closes();
        let written = write_response(io, &mut out, resp, head_request, keep_alive).await;
        if let Some(a) = activity {
            a.end();
        }
        match written {
            Ok(true) if keep_alive => {}
            _ => return Outcome::Closed,
        }
    }
}

/// A request head, read or not yet.
// Returned once per request and matched at once: a move is cheaper than a box.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Parsed {
    /// A request for the fast lane, and whether the client asked to close after it.
    Request(Request<Option<hyper::body::Incoming>>, bool),
    Partial,
    /// Anything else: hyper's server takes the connection.
    Other,
}

/// Parses the head at the start of `buf`; a fast-lane request's bytes leave the buffer.
pub(crate) fn parse(buf: &mut BytesMut) -> Parsed {
    let mut slots = [const { std::mem::MaybeUninit::<httparse::Header>::uninit() }; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut []);
    let len = match httparse::ParserConfig::default()
        .parse_request_with_uninit_headers(&mut req, buf, &mut slots)
    {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Parsed::Partial,
        Err(_) => return Parsed::Other,
    };
    let (Some(method), Some(path), Some(1)) = (req.method, req.path, req.version) else {
        return Parsed::Other;
    };
    if !path.starts_with('/') {
        return Parsed::Other;
    }
    let Ok(method) = Method::from_bytes(method.as_bytes()) else {
        return Parsed::Other;
    };
    if method == Method::CONNECT {
        return Parsed::Other;
    }
    let path_at = range_in(buf, path.as_bytes());
    let mut close = false;
    let mut fields = Vec::with_capacity(req.headers.len());
    for h in req.headers.iter() {
        let Ok(name) = HeaderName::from_bytes(h.name.as_bytes()) else {
            return Parsed::Other;
        };
        if name == TRANSFER_ENCODING || name == UPGRADE || name == EXPECT {
            return Parsed::Other;
        }
        if name == CONTENT_LENGTH && h.value != b"0" {
            return Parsed::Other;
        }
        if name == CONNECTION {
            close |= lists(h.value, b"close");
        }
        fields.push((name, range_in(buf, h.value)));
    }
    let raw = buf.split_to(len).freeze();
    let build = || {
        let uri = Uri::from_maybe_shared(raw.slice(path_at)).ok()?;
        let headers = shared_map(&raw, fields)?;
        let mut req = Request::new(None);
        *req.method_mut() = method;
        *req.uri_mut() = uri;
        *req.headers_mut() = headers;
        Some(req)
    };
    match build() {
        Some(req) => Parsed::Request(req, close),
        None => {
            // Refused after all: the head goes back in front of what followed it.
            let mut back = BytesMut::with_capacity(raw.len() + buf.len());
            back.extend_from_slice(&raw);
            back.extend_from_slice(buf);
            *buf = back;
            Parsed::Other
        }
    }
}

/// Writes one response. Returns whether the connection may carry another request (the body
/// was written whole and its framing leaves the connection in step).
async fn write_response(
    io: &mut TcpStream,
    out: &mut Vec<u8>,
    answer: Reply,
    head_request: bool,
    keep_alive: bool,
) -> io::Result<bool> {
    let status = answer.status();
    let bodiless = head_request
        || status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED;
    out.clear();
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status.as_str().as_bytes());
    out.push(b' ');
    // hyper's server spells a status without a reason phrase `<none>`; so does this lane.
    out.extend_from_slice(status.canonical_reason().unwrap_or("<none>").as_bytes());
    out.extend_from_slice(b"\r\n");
    let mut head = Head {
        out,
        dated: false,
        known: false,
    };
    answer.fields(&mut head);
    let (dated, known) = (head.dated, head.known);
    let mut body = answer.into_body();
    if !keep_alive {
        put_field(out, b"connection", b"close");
    }
    let chunked = if bodiless || known {
        false
    } else if let Some(n) = body.size_hint().exact() {
        put_field(out, b"content-length", n.to_string().as_bytes());
        false
    } else {
        put_field(out, b"transfer-encoding", b"chunked");
        true
    };
    // Last, as hyper's server writes it: the two lanes answer field for field alike.
    if !dated {
        date(out);
    }
    out.extend_from_slice(b"\r\n");
    if bodiless {
        io.write_all(out).await?;
        return Ok(true);
    }
    // The usual small answer is whole already: head and body leave in one write.
    loop {
        let next = match std::future::poll_fn(|cx| Poll::Ready(poll_data(&mut body, cx))).await {
            Poll::Ready(next) => next,
            Poll::Pending => {
                // Not there yet: what is ready leaves now, the rest as it comes.
                if !out.is_empty() {
                    io.write_all(out).await?;
                    out.clear();
                }
                std::future::poll_fn(|cx| poll_data(&mut body, cx)).await
            }
        };
        match next {
            Some(Ok(data)) => {
                if chunked {
                    chunk(out, &data);
                } else {
                    out.extend_from_slice(&data);
                }
                if out.len() >= FLUSH_AT {
                    io.write_all(out).await?;
                    out.clear();
                }
            }
            Some(Err(_)) => {
                // The upstream failed midway: the connection closes so that the client
                // cannot take a cut body for a whole one.
                let _ = io.write_all(out).await;
                return Ok(false);
            }
            None => {
                if chunked {
                    out.extend_from_slice(b"0\r\n\r\n");
                }
                io.write_all(out).await?;
                return Ok(true);
            }
        }
    }
}

/// A reply's fields written as bytes, noting whether a `Date` and a length were among them.
struct Head<'a> {
    out: &'a mut Vec<u8>,
    dated: bool,
    known: bool,
}

impl Fields for Head<'_> {
    fn relayed(&mut self, relayed: &Relayed) {
        self.out.extend_from_slice(relayed.lines());
        self.dated |= relayed.has_date();
        self.known |= relayed.has_length();
    }

    fn field(&mut self, name: &HeaderName, value: &HeaderValue) {
        // The framing is ours.
        if name == TRANSFER_ENCODING || name == CONNECTION {
            return;
        }
        self.dated |= name == DATE;
        self.known |= name == CONTENT_LENGTH;
        put_field(self.out, name.as_str().as_bytes(), value.as_bytes());
    }
}

/// The body's next data frame (trailers and other frames are skipped).
fn poll_data(
    body: &mut ProxyBody,
    cx: &mut Context<'_>,
) -> Poll<Option<Result<Bytes, crate::wire::body::BoxError>>> {
    loop {
        match Pin::new(&mut *body).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                Ok(data) if data.is_empty() => continue,
                Ok(data) => return Poll::Ready(Some(Ok(data))),
                Err(_) => continue,
            },
            Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(e))),
            Poll::Ready(None) => return Poll::Ready(None),
            Poll::Pending => return Poll::Pending,
        }
    }
}

/// Where `part`, a slice of `whole`, sits in it.
fn range_in(whole: &[u8], part: &[u8]) -> std::ops::Range<usize> {
    let start = part.as_ptr() as usize - whole.as_ptr() as usize;
    start..start + part.len()
}

/// A header map whose values share the bytes of `raw`, the head they were parsed from
/// (`fields`: each name, and where its value sits in `raw`). None if a value is not one.
fn shared_map(raw: &Bytes, fields: Vec<(HeaderName, std::ops::Range<usize>)>) -> Option<HeaderMap> {
    let mut headers = HeaderMap::with_capacity(fields.len());
    for (name, range) in fields {
        headers.append(name, HeaderValue::from_maybe_shared(raw.slice(range)).ok()?);
    }
    Some(headers)
}

fn chunk(out: &mut Vec<u8>, data: &[u8]) {
    use std::io::Write;
    let _ = write!(out, "{:x}\r\n", data.len());
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
}

/// Adds `Date` (RFC 9110 §6.6.1: a recipient forwarding a response without one adds it),
/// formatted once per second per thread.
fn date(out: &mut Vec<u8>) {
    thread_local! {
        static CACHE: std::cell::RefCell<(u64, String)> = const { std::cell::RefCell::new((u64::MAX, String::new())) };
    }
    let now = SystemTime::now();
    let secs = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    CACHE.with_borrow_mut(|(at, text)| {
        if *at != secs {
            *at = secs;
            *text = httpdate::fmt_http_date(now);
        }
        put_field(out, b"date", text.as_bytes());
    });
}
