//! The upstream connection pool of one worker thread: HTTP/1.1 keep-alive connections per
//! server, each carrying one request at a time and taken back when its response body ends.
//!
//! Each worker runs its own current-thread runtime, so the pool is a thread-local with no
//! lock and no cross-thread wake-ups; requests go out in origin form (no absolute URI built
//! and parsed per request). A request that an idle connection could not even start (the
//! server had closed it) is sent again on a fresh connection: hyper hands such a request back
//! untouched, so this is safe for any method and body.

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

use super::body::UpstreamBody;
use crate::resolve::Resolver;

/// Idle connections kept per server.
const MAX_IDLE_PER_SERVER: usize = 256;
/// An idle connection older than this is closed rather than reused.
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

struct Idle {
    sender: SendRequest<UpstreamBody>,
    since: Instant,
}

#[derive(Default)]
struct Pool {
    /// Per server authority (the key is shared with the bodies of responses in flight, so
    /// handing a connection back costs no allocation).
    idle: foldhash::HashMap<Arc<str>, Vec<Idle>>,
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
}

impl SendError {
    pub fn is_connect(&self) -> bool {
        matches!(self, SendError::Connect { .. })
    }
}

fn take_idle(authority: &str) -> Option<SendRequest<UpstreamBody>> {
    POOL.with(|p| {
        let mut p = p.borrow_mut();
        let list = p.idle.get_mut(authority)?;
        while let Some(idle) = list.pop() {
            if !idle.sender.is_closed() && idle.since.elapsed() < IDLE_TIMEOUT {
                return Some(idle.sender);
            }
        }
        None
    })
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

fn put_idle(authority: &Arc<str>, sender: SendRequest<UpstreamBody>) {
    if sender.is_closed() {
        return;
    }
    POOL.with(|p| {
        let mut p = p.borrow_mut();
        let list = match p.idle.get_mut(&**authority) {
            Some(l) => l,
            None => p.idle.entry(authority.clone()).or_default(),
        };
        if list.len() < MAX_IDLE_PER_SERVER {
            list.push(Idle {
                sender,
                since: Instant::now(),
            });
        }
    });
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

async fn connect(
    authority: &str,
    connect_timeout: Duration,
) -> Result<SendRequest<UpstreamBody>, SendError> {
    let err = |source| SendError::Connect {
        authority: authority.to_string(),
        source,
    };
    let addrs = resolve(authority).await.map_err(err)?;
    let mut last = std::io::Error::new(std::io::ErrorKind::NotFound, "no address");
    for addr in addrs {
        match tokio::time::timeout(connect_timeout, tokio::net::TcpStream::connect(addr)).await {
            Ok(Ok(stream)) => {
                let _ = stream.set_nodelay(true);
                let (sender, conn) = http1::Builder::new()
                    .writev(false)
                    .handshake(TokioIo::new(stream))
                    .await
                    .map_err(|e| err(std::io::Error::other(e)))?;
                tokio::spawn(async move {
                    let _ = conn.with_upgrades().await;
                });
                return Ok(sender);
            }
            Ok(Err(e)) => last = e,
            Err(_) => last = std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timed out"),
        }
    }
    Err(err(last))
}

/// Sends `req` (origin-form URI) to `authority` on a pooled connection.
pub async fn send(
    authority: &str,
    req: Request<UpstreamBody>,
    connect_timeout: Duration,
) -> Result<Response<PooledBody>, SendError> {
    let mut req = req;
    // Idle connections first; one the server closed hands the request back unsent.
    while let Some(mut sender) = take_idle(authority) {
        if poll_fn(|cx| sender.poll_ready(cx)).await.is_err() {
            continue;
        }
        match sender.try_send_request(req).await {
            Ok(resp) => return Ok(wrap(authority, sender, resp)),
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
    Ok(wrap(authority, sender, resp))
}

fn wrap(
    authority: &str,
    sender: SendRequest<UpstreamBody>,
    resp: Response<Incoming>,
) -> Response<PooledBody> {
    // An upgraded connection (101) never goes back to the pool.
    let reusable = resp.status() != http::StatusCode::SWITCHING_PROTOCOLS;
    resp.map(|inner| PooledBody {
        inner,
        slot: reusable.then(|| (key(authority), sender)),
    })
}

/// A response body that returns its connection to the pool when it ends.
pub struct PooledBody {
    inner: Incoming,
    slot: Option<(Arc<str>, SendRequest<UpstreamBody>)>,
}

impl PooledBody {
    fn release(&mut self) {
        if let Some((authority, sender)) = self.slot.take() {
            put_idle(&authority, sender);
        }
    }
}

impl Body for PooledBody {
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

impl Drop for PooledBody {
    fn drop(&mut self) {
        // Dropped after its end (e.g. an empty body nobody polled): reuse; midway: close.
        if self.inner.is_end_stream() {
            self.release();
        }
    }
}
