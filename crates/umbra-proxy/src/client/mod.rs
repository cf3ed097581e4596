//! The upstream connection pool of one worker thread: HTTP/1.1 keep-alive connections per
//! server, each carrying one request at a time and taken back when its response body ends.
//! A request whose body is already known goes out on the direct client (`h1.rs`); one that
//! streams a body or asks for an upgrade goes through hyper's client.
//!
//! Each worker runs its own current-thread runtime, so the pool is a thread-local with no
//! lock and no cross-thread wake-ups; requests go out in origin form (no absolute URI built
//! and parsed per request). A request that an idle connection could not even start (the
//! server had closed it) is sent again on a fresh connection: hyper hands such a request back
//! untouched, so this is safe for any method and body.
//!
//! `https://` and `h2c://` servers go through hyper-util's pooled client instead (`tls_h2`).

use std::cell::RefCell;
use std::future::poll_fn;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response};
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;

pub mod h1;
mod tls_h2;

use crate::wire::body::{BoxError, UpstreamBody};
use crate::wire::relay::Relayed;
use umbra_core::config::ServerAddr;
use umbra_core::resolve::Resolver;
use umbra_core::upstream_client::UpstreamCa;

/// Idle connections kept per server.
const MAX_IDLE_PER_SERVER: usize = 256;
/// An idle connection older than this is closed rather than reused.
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

struct Idle<C> {
    conn: C,
    since: Instant,
}

#[derive(Default)]
struct Pool {
    /// hyper's connections, per server authority (the key is shared with the bodies of
    /// responses in flight, so handing a connection back costs no allocation).
    idle: foldhash::HashMap<Arc<str>, Vec<Idle<SendRequest<UpstreamBody>>>>,
    /// The direct client's connections, keyed the same way.
    raw: foldhash::HashMap<Arc<str>, Vec<Idle<h1::Conn>>>,
    resolver: Option<Resolver>,
}

thread_local! {
    static POOL: RefCell<Pool> = RefCell::new(Pool::default());
}

/// Why a request did not get a response.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// No connection could be made: nothing was sent (safe to try another server).
    #[error("connect to {authority}: {source}")]
    Connect {
        authority: String,
        source: std::io::Error,
    },
    /// The exchange failed after the request was (possibly) sent.
    #[error(transparent)]
    Http(#[from] hyper::Error),
    /// The same, on the direct client.
    #[error(transparent)]
    Direct(#[from] h1::Error),
    /// The TLS handshake with an `https://` server failed (its certificate was refused, say):
    /// nothing was sent.
    #[error("TLS handshake with {authority} failed: {source}")]
    Tls {
        authority: String,
        source: rustls::Error,
    },
    /// The exchange with an `https://` or `h2c://` server failed after connecting.
    #[error("{}", umbra_core::upstream_client::describe(.0))]
    Pooled(#[source] hyper_util::client::legacy::Error),
    /// No response head by the deadline.
    #[error("no response head before the deadline")]
    Timeout,
}

impl SendError {
    pub fn is_connect(&self) -> bool {
        matches!(self, SendError::Connect { .. } | SendError::Tls { .. })
    }

    pub fn is_timeout(&self) -> bool {
        matches!(
            self,
            SendError::Timeout | SendError::Direct(h1::Error::TimedOut)
        )
    }
}

type IdleLists<C> = foldhash::HashMap<Arc<str>, Vec<Idle<C>>>;

/// The newest idle connection to `authority` that is young enough and still `usable`; older or
/// dead ones met on the way are dropped.
fn take<C>(lists: &mut IdleLists<C>, authority: &str, usable: impl Fn(&C) -> bool) -> Option<C> {
    let list = lists.get_mut(authority)?;
    while let Some(idle) = list.pop() {
        if idle.since.elapsed() < IDLE_TIMEOUT && usable(&idle.conn) {
            return Some(idle.conn);
        }
    }
    None
}

/// Keeps `conn` idle for `authority`, up to the per-server limit. The oldest idle connection
/// goes once it is past the idle timeout: a direct connection has nothing watching it, so one
/// the server closed would otherwise sit in CLOSE_WAIT until taken.
fn put<C>(lists: &mut IdleLists<C>, authority: &Arc<str>, conn: C) {
    let list = match lists.get_mut(&**authority) {
        Some(l) => l,
        None => lists.entry(authority.clone()).or_default(),
    };
    if list
        .first()
        .is_some_and(|i| i.since.elapsed() >= IDLE_TIMEOUT)
    {
        list.remove(0);
    }
    if list.len() < MAX_IDLE_PER_SERVER {
        list.push(Idle {
            conn,
            since: Instant::now(),
        });
    }
}

fn take_idle(authority: &str) -> Option<SendRequest<UpstreamBody>> {
    POOL.with(|p| take(&mut p.borrow_mut().idle, authority, |c| !c.is_closed()))
}

fn take_raw(authority: &str) -> Option<h1::Conn> {
    POOL.with(|p| take(&mut p.borrow_mut().raw, authority, h1::Conn::is_usable))
}

/// Hands a direct-client connection back after its response ended cleanly.
pub(super) fn put_raw(authority: &Arc<str>, conn: h1::Conn) {
    POOL.with(|p| put(&mut p.borrow_mut().raw, authority, conn));
}

fn put_idle(authority: &Arc<str>, sender: SendRequest<UpstreamBody>) {
    if !sender.is_closed() {
        POOL.with(|p| put(&mut p.borrow_mut().idle, authority, sender));
    }
}

/// The pool's key for `authority`, made once per server.
fn key(authority: &str) -> Arc<str> {
    POOL.with(|p| {
        let mut p = p.borrow_mut();
        if let Some((k, _)) = p.idle.get_key_value(authority) {
            return k.clone();
        }
        let k: Arc<str> = Arc::from(authority);
        p.idle.insert(k.clone(), Vec::new());
        k
    })
}

async fn resolve(authority: &str) -> std::io::Result<Vec<SocketAddr>> {
    if let Ok(addr) = authority.parse::<SocketAddr>() {
        return Ok(vec![addr]);
    }
    let (host, port) = authority
        .rsplit_once(':')
        .and_then(|(h, p)| Some((h, p.parse::<u16>().ok()?)))
        .unwrap_or((authority, 80));
    let resolver = POOL.with(|p| {
        p.borrow_mut()
            .resolver
            .get_or_insert_with(Resolver::system)
            .clone()
    });
    let ips = resolver
        .lookup(host.trim_start_matches('[').trim_end_matches(']'))
        .await?;
    Ok(ips
        .into_iter()
        .map(|ip| SocketAddr::new(ip, port))
        .collect())
}

fn connect_error(authority: &str, source: std::io::Error) -> SendError {
    SendError::Connect {
        authority: authority.to_string(),
        source,
    }
}

/// A new TCP connection (no delay) to one of `authority`'s addresses.
async fn connect_tcp(
    authority: &str,
    connect_timeout: Duration,
) -> Result<tokio::net::TcpStream, SendError> {
    let addrs = resolve(authority)
        .await
        .map_err(|e| connect_error(authority, e))?;
    let mut last = std::io::Error::new(std::io::ErrorKind::NotFound, "no address");
    for addr in addrs {
        match tokio::time::timeout(connect_timeout, tokio::net::TcpStream::connect(addr)).await {
            Ok(Ok(stream)) => {
                let _ = stream.set_nodelay(true);
                return Ok(stream);
            }
            Ok(Err(e)) => last = e,
            Err(_) => last = std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timed out"),
        }
    }
    Err(connect_error(authority, last))
}

async fn connect(
    authority: &str,
    connect_timeout: Duration,
) -> Result<SendRequest<UpstreamBody>, SendError> {
    let stream = connect_tcp(authority, connect_timeout).await?;
    // The same limits as the direct client's, so an upstream's head gets the same answer
    // whichever client fetched it.
    let (sender, conn) = http1::Builder::new()
        .writev(false)
        .max_headers(h1::MAX_HEADERS)
        .max_buf_size(h1::MAX_HEAD)
        .handshake(TokioIo::new(stream))
        .await
        .map_err(|e| connect_error(authority, std::io::Error::other(e)))?;
    tokio::spawn(async move {
        let _ = conn.with_upgrades().await;
    });
    Ok(sender)
}

/// The direct client's part of `send`: the request's body is already in memory.
/// Sends a request already encoded by `h1::encode_request` on the direct client.
/// The response head must have arrived by `deadline`.
pub async fn send_wire(
    authority: &str,
    wire: &[u8],
    method: &http::Method,
    connect_timeout: Duration,
    deadline: tokio::time::Instant,
) -> Result<(Response<PooledBody>, Relayed), SendError> {
    let fresh = || async {
        // Boxed: connecting is a large future, needed only for a new connection.
        let connecting = tokio::time::timeout_at(deadline, connect_tcp(authority, connect_timeout));
        let stream = Box::pin(connecting)
            .await
            .map_err(|_| SendError::Timeout)??;
        Ok(h1::Conn::new(stream))
    };
    let (conn, reused) = match take_raw(authority) {
        Some(c) => (c, true),
        None => (fresh().await?, false),
    };
    let (head, conn) = h1::send_on(conn, reused, wire, method, fresh, deadline).await?;
    let (resp, fields) = h1::into_response(head, conn, key(authority));
    Ok((resp.map(PooledBody::Direct), fields))
}

/// Where a request goes: the server, and the private CA its service trusts (`https://`).
#[derive(Clone, Copy)]
pub struct Dest<'a> {
    pub addr: &'a ServerAddr,
    pub ca: Option<&'a UpstreamCa>,
}

impl Dest<'_> {
    /// A plain `http://` server: the direct client and this module's pool.
    fn plain(&self) -> bool {
        self.addr.scheme == "http"
    }
}

/// Sends a request whose body is in memory (a shadow's): already encoded for the direct
/// client to an `http://` server, through `tls_h2` to the others. The response head must
/// have arrived by `deadline`.
#[allow(clippy::too_many_arguments)]
pub async fn send_buffered(
    dest: Dest<'_>,
    method: &http::Method,
    path_and_query: &str,
    headers: &http::HeaderMap,
    added: &crate::wire::headers::Added<'_>,
    body: &Bytes,
    connect_timeout: Duration,
    deadline: tokio::time::Instant,
) -> Result<(Response<PooledBody>, Relayed), SendError> {
    if dest.plain() {
        let wire = h1::encode_request(method, path_and_query, headers, added.as_slice(), body);
        return send_wire(
            &dest.addr.authority,
            &wire,
            method,
            connect_timeout,
            deadline,
        )
        .await;
    }
    let head = tls_h2::Head {
        method,
        path_and_query,
        headers,
        added,
    };
    let body = http_body_util::Either::Right(http_body_util::Full::new(body.clone()));
    send_tls_h2(dest, head, body, connect_timeout, deadline).await
}

/// A request for an upstream server, borrowed from the client's: the `added` fields replace
/// any of the same name in `headers`; the URI is in origin form.
pub struct Outgoing<'a> {
    pub method: &'a http::Method,
    pub uri: &'a http::Uri,
    pub headers: &'a http::HeaderMap,
    pub added: &'a crate::wire::headers::Added<'a>,
    /// An HTTP/1.1 upgrade (WebSocket): it needs hyper's client.
    pub upgrade: bool,
}

/// Sends a request to `authority` on a pooled connection: one whose body is known (none, or
/// in memory) on the direct client, straight from the borrowed head; a streaming body or an
/// upgrade on hyper's client. The response head must have arrived by `deadline`. Its fields
/// are in the map (hyper's client) or beside it, as lines (the direct client).
pub async fn send(
    dest: Dest<'_>,
    out: Outgoing<'_>,
    body: UpstreamBody,
    connect_timeout: Duration,
    deadline: tokio::time::Instant,
) -> Result<(Response<PooledBody>, Relayed), SendError> {
    let path = out.uri.path_and_query().map_or("/", |p| p.as_str());
    if !dest.plain() {
        let head = tls_h2::Head {
            method: out.method,
            path_and_query: path,
            headers: out.headers,
            added: out.added,
        };
        let body = http_body_util::Either::Left(body);
        return send_tls_h2(dest, head, body, connect_timeout, deadline).await;
    }
    let authority = dest.addr.authority.as_str();
    if !out.upgrade && matches!(body, UpstreamBody::Empty) {
        let wire = h1::encode_request(out.method, path, out.headers, out.added.as_slice(), b"");
        return send_wire(authority, &wire, out.method, connect_timeout, deadline).await;
    }
    // Boxed: the rare path's future is the largest, and every caller's future would carry it.
    let sending = Box::pin(send_hyper(authority, out, body, connect_timeout));
    let resp = tokio::time::timeout_at(deadline, sending)
        .await
        .map_err(|_| SendError::Timeout)??;
    Ok((resp, Relayed::default()))
}

/// Sends through `tls_h2` (an `https://` or `h2c://` server); the response head must have
/// arrived by `deadline`.
async fn send_tls_h2(
    dest: Dest<'_>,
    head: tls_h2::Head<'_>,
    body: tls_h2::OutBody,
    connect_timeout: Duration,
    deadline: tokio::time::Instant,
) -> Result<(Response<PooledBody>, Relayed), SendError> {
    // Boxed: the TLS and HTTP/2 client's future is large.
    let sending = Box::pin(tls_h2::send(
        dest.addr,
        dest.ca,
        head,
        body,
        connect_timeout,
    ));
    let resp = tokio::time::timeout_at(deadline, sending)
        .await
        .map_err(|_| SendError::Timeout)??;
    Ok((resp, Relayed::default()))
}

/// `send` for a streaming body or an upgrade, on hyper's client.
async fn send_hyper(
    authority: &str,
    out: Outgoing<'_>,
    body: UpstreamBody,
    connect_timeout: Duration,
) -> Result<Response<PooledBody>, SendError> {
    let mut req = Request::new(body);
    *req.method_mut() = out.method.clone();
    *req.uri_mut() = out.uri.clone();
    *req.headers_mut() = out.headers.clone();
    out.added.merge_into(req.headers_mut());
    // A body of unknown length goes chunked, whatever the method: hyper's client sends
    // none for a GET or HEAD unless the framing is said (RFC 9110 §9.3.1 allows one).
    let unknown = http_body::Body::size_hint(req.body()).exact().is_none();
    if unknown && !req.headers().contains_key(http::header::CONTENT_LENGTH) {
        req.headers_mut().insert(
            http::header::TRANSFER_ENCODING,
            http::HeaderValue::from_static("chunked"),
        );
    }
    // Idle connections first; one the server closed hands the request back unsent.
    while let Some(mut sender) = take_idle(authority) {
        if poll_fn(|cx| sender.poll_ready(cx)).await.is_err() {
            continue;
        }
        match sender.try_send_request(req).await {
            Ok(resp) => {
                within_limits(&resp)?;
                return Ok(wrap(authority, sender, resp));
            }
            Err(mut e) => match e.take_message() {
                Some(unsent) => req = unsent,
                None => return Err(SendError::Http(e.into_error())),
            },
        }
    }
    // Boxed: resolving and connecting is a large future, needed only for a new connection,
    // and every caller's future (the shadow job's in particular) would otherwise carry it.
    let mut sender = Box::pin(connect(authority, connect_timeout)).await?;
    let resp = sender.send_request(req).await?;
    within_limits(&resp)?;
    Ok(wrap(authority, sender, resp))
}

/// The direct client's head limit, applied to what hyper's client read (its buffer limit is
/// not a head limit: a head that arrives whole is taken at any size), so an upstream's head
/// gets the same answer whichever client fetched it.
fn within_limits(resp: &Response<Incoming>) -> Result<(), SendError> {
    let size: usize = resp
        .headers()
        .iter()
        .map(|(n, v)| n.as_str().len() + v.len() + 4)
        .sum();
    match size >= h1::MAX_HEAD {
        true => Err(SendError::Direct(h1::Error::HeadTooLarge)),
        false => Ok(()),
    }
}

fn wrap(
    authority: &str,
    sender: SendRequest<UpstreamBody>,
    resp: Response<Incoming>,
) -> Response<PooledBody> {
    // An upgraded connection (101) never goes back to the pool.
    let reusable = resp.status() != http::StatusCode::SWITCHING_PROTOCOLS;
    resp.map(|inner| {
        PooledBody::Hyper(HyperBody {
            inner,
            slot: reusable.then(|| (key(authority), sender)),
        })
    })
}

/// A response body that returns its connection to the pool when it ends.
pub enum PooledBody {
    Hyper(HyperBody),
    Direct(h1::RawBody),
}

impl Body for PooledBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.get_mut() {
            PooledBody::Hyper(b) => Pin::new(b).poll_frame(cx).map_err(BoxError::from),
            PooledBody::Direct(b) => Pin::new(b).poll_frame(cx).map_err(BoxError::from),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            PooledBody::Hyper(b) => b.is_end_stream(),
            PooledBody::Direct(b) => b.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            PooledBody::Hyper(b) => b.size_hint(),
            PooledBody::Direct(b) => b.size_hint(),
        }
    }
}

/// hyper's response body, giving its connection back to the pool at its end.
pub struct HyperBody {
    inner: Incoming,
    slot: Option<(Arc<str>, SendRequest<UpstreamBody>)>,
}

impl HyperBody {
    fn release(&mut self) {
        if let Some((authority, sender)) = self.slot.take() {
            put_idle(&authority, sender);
        }
    }
}

impl Body for HyperBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let out = Pin::new(&mut self.inner).poll_frame(cx);
        match &out {
            Poll::Ready(None) => self.release(),
            Poll::Ready(Some(Err(_))) => self.slot = None,
            _ => {}
        }
        out
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for HyperBody {
    fn drop(&mut self) {
        // Dropped after its end (e.g. an empty body nobody polled): reuse; midway: close.
        if self.inner.is_end_stream() {
            self.release();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idle_lists_take_the_newest_live_one_and_let_the_stale_go() {
        let key: Arc<str> = Arc::from("up:80");
        let mut lists: IdleLists<u32> = Default::default();
        assert_eq!(take(&mut lists, "up:80", |_| true), None);
        put(&mut lists, &key, 1);
        put(&mut lists, &key, 2);
        put(&mut lists, &key, 3);
        assert_eq!(
            take(&mut lists, "up:80", |&c| c != 3),
            Some(2),
            "a dead one is skipped"
        );
        assert_eq!(lists[&key].len(), 1, "and dropped");

        // Past the idle timeout: never taken, and the oldest is let go when another comes back.
        let old = Instant::now().checked_sub(IDLE_TIMEOUT + Duration::from_secs(1));
        let Some(old) = old else { return };
        lists.get_mut(&key).unwrap()[0].since = old;
        put(&mut lists, &key, 4);
        assert_eq!(lists[&key].iter().map(|i| i.conn).collect::<Vec<_>>(), [4]);
        lists.get_mut(&key).unwrap()[0].since = old;
        assert_eq!(
            take(&mut lists, "up:80", |_| true),
            None,
            "too old to reuse"
        );
    }
}
