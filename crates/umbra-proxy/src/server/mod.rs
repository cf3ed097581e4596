//! The client side of the data plane: listeners, one worker thread per listener, and each
//! connection's life — the fast lane (`front`) while its requests are plain HTTP/1.1 heads,
//! then hyper's server (HTTP/1.1 and h2c) — with every request answered by `handle`.
//!
//! Each worker thread runs its own current-thread runtime with its own `SO_REUSEPORT` listener
//! and its own upstream pools, so the hot path shares nothing but atomics and one `ArcSwap`.

mod balance;
mod conns;
pub(crate) mod front;
mod handle;
mod log;
mod reply;

use std::convert::Infallible;
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::Duration;

use http::Request;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::AsyncReadExt;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use handle::handle;
pub use reply::{ProxyBody, Reply};

use crate::wire::headers::client_value;
use crate::Proxy;

/// Binds `n` listeners on one address with `SO_REUSEPORT` (one per worker). With port 0 the
/// first picks the port and the rest join it.
pub fn bind(addr: SocketAddr, n: usize) -> std::io::Result<Vec<TcpListener>> {
    use socket2::{Domain, Protocol, Socket, Type};
    let mut out = Vec::with_capacity(n.max(1));
    let mut addr = addr;
    for _ in 0..n.max(1) {
        let s = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
        s.set_reuse_address(true)?;
        #[cfg(unix)]
        s.set_reuse_port(true)?;
        s.set_nodelay(true)?;
        s.bind(&addr.into())?;
        s.listen(4096)?;
        s.set_nonblocking(true)?;
        let l: TcpListener = s.into();
        addr = l.local_addr()?;
        out.push(l);
    }
    Ok(out)
}

/// Runs the proxy on already-bound listeners, one worker thread each, until `shutdown`; then
/// stops accepting and lets in-flight requests finish within the grace period. Blocks until
/// every worker is done, so call it from a dedicated thread or `spawn_blocking`.
pub fn serve(listeners: Vec<TcpListener>, rt: Arc<Proxy>, shutdown: CancellationToken) {
    let grace = rt.runtime.load().config.proxy.grace;
    let conns = conns::Conns::new(rt.runtime.metrics.clone());
    let (balance, inboxes) = balance::Balance::new(listeners.len());
    let handles: Vec<_> = listeners
        .into_iter()
        .zip(inboxes)
        .enumerate()
        .map(|(i, (l, inbox))| {
            let rt = rt.clone();
            let shutdown = shutdown.clone();
            let conns = conns.clone();
            let lane = balance::Lane::new(i, balance.clone(), inbox);
            std::thread::Builder::new()
                .name(format!("umbra-worker-{i}"))
                .spawn(move || {
                    let runtime = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .expect("worker runtime");
                    runtime.block_on(worker(l, lane, rt, conns, shutdown, grace));
                })
                .expect("spawn worker thread")
        })
        .collect();
    for h in handles {
        let _ = h.join();
    }
}

async fn worker(
    l: TcpListener,
    mut lane: balance::Lane,
    rt: Arc<Proxy>,
    conns: Arc<conns::Conns>,
    shutdown: CancellationToken,
    grace: Duration,
) {
    let listener = match tokio::net::TcpListener::from_std(l) {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(error = %e, "worker cannot use its listener");
            return;
        }
    };
    let mut limits = limits_of(&rt);
    let mut builder = hyper_server(limits);
    let connections = TaskTracker::new();
    loop {
        let (stream, peer, open) = tokio::select! {
            _ = shutdown.cancelled() => break,
            Some(handed) = lane.handed() => match handed {
                Some(x) => x,
                None => continue,
            },
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(x) => x,
                    Err(e) => {
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        continue;
                    }
                };
                match lane.keep_or_hand_over(stream) {
                    Some((stream, open)) => (stream, peer, open),
                    None => continue,
                }
            }
        };
        let _ = stream.set_nodelay(true);
        // A reload's limits apply to the connections accepted after it.
        let now = limits_of(&rt);
        if now != limits {
            limits = now;
            builder = hyper_server(limits);
        }
        // Within `max_connections`, each connection has a close signal of its own (shedding
        // it) and a place in the table; without a limit, the shared shutdown is enough.
        let (close, ticket, activity) = match limits.max_connections {
            0 => (shutdown.clone(), None, None),
            max => {
                let (close, activity) = (shutdown.child_token(), conns::Activity::new());
                match conns.admit(max, activity.clone(), close.clone()) {
                    Some(ticket) => (close, Some(ticket), Some(activity)),
                    None => continue,
                }
            }
        };
        let conn = connection(
            stream,
            peer,
            rt.clone(),
            limits,
            builder.clone(),
            close,
            activity,
        );
        let open_gauge = rt.runtime.metrics.connections_open.clone();
        open_gauge.inc();
        connections.spawn(async move {
            conn.await;
            open_gauge.dec();
            drop((open, ticket));
        });
    }
    drop(listener);
    connections.close();
    if tokio::time::timeout(grace, connections.wait())
        .await
        .is_err()
    {
        tracing::warn!("grace period over; closing connections still open");
    }
}

/// The per-connection limits of the config in force.
fn limits_of(rt: &Proxy) -> front::Limits {
    let proxy = &rt.runtime.load().config.proxy;
    front::Limits {
        header_timeout: proxy.header_timeout,
        max_head: proxy.max_header_size,
        fast_lane: proxy.fast_lane,
        idle_timeout: proxy.idle_timeout,
        max_connections: proxy.max_connections,
    }
}

/// hyper's server (HTTP/1.1 and h2c) for the connections the fast lane hands over.
fn hyper_server(
    limits: front::Limits,
) -> Arc<hyper_util::server::conn::auto::Builder<TokioExecutor>> {
    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .writev(false)
        .max_buf_size(limits.max_head.max(8192))
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(limits.header_timeout);
    Arc::new(builder)
}

/// Serves one client connection: the fast lane while its requests are plain HTTP/1.1 heads,
/// then (if ever) hyper's server for the rest. On shutdown, in-flight responses finish and
/// the connection closes.
async fn connection(
    mut stream: tokio::net::TcpStream,
    peer: SocketAddr,
    rt: Arc<Proxy>,
    limits: front::Limits,
    builder: Arc<hyper_util::server::conn::auto::Builder<TokioExecutor>>,
    shutdown: CancellationToken,
    activity: Option<Arc<conns::Activity>>,
) {
    let client = client_value(peer.ip());
    let outcome = match limits.fast_lane {
        true => {
            front::serve(&mut stream, limits, &shutdown, activity.as_deref(), |req| {
                handle(req, peer, &client, &rt)
            })
            .await
        }
        false => front::Outcome::HandOver(bytes::Bytes::new()),
    };
    let front::Outcome::HandOver(read) = outcome else {
        return;
    };
    // The bytes the fast lane already read are read again first.
    let (read_half, write_half) = stream.into_split();
    let rewound = std::io::Cursor::new(read).chain(read_half);
    let lane = HyperLane {
        peer,
        client,
        rt,
        limits,
        builder,
        shutdown,
        secure: false,
    };
    lane.serve(tokio::io::join(rewound, write_half), activity)
        .await;
}

/// Serves one connection that arrived on another transport (umbra-edge's TLS) with hyper's
/// server (HTTP/2 and HTTP/1.1, whichever the client speaks), every request marked
/// [`Secure`], until the connection closes or, on `shutdown`, its in-flight requests finish.
pub async fn serve_secure<I>(io: I, peer: SocketAddr, rt: Arc<Proxy>, shutdown: CancellationToken)
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let limits = limits_of(&rt);
    let lane = HyperLane {
        peer,
        client: client_value(peer.ip()),
        rt: rt.clone(),
        limits,
        builder: hyper_server(limits),
        shutdown,
        secure: true,
    };
    let open_gauge = rt.runtime.metrics.connections_open.clone();
    open_gauge.inc();
    lane.serve(io, None).await;
    open_gauge.dec();
}

/// Marks a request that came over TLS (a request extension): its `X-Forwarded-Proto` is
/// `https`, and the plain listener's [`PlainHook`] leaves it alone.
#[derive(Debug, Clone, Copy)]
pub struct Secure;

/// What the plain listener asks before routing a request that did not come over TLS:
/// umbra-edge answers ACME's HTTP-01 challenges and redirects to HTTPS through it.
pub trait PlainHook: Send + Sync {
    /// umbra's own answer to a plain request, or `None` to route it as usual.
    fn answer(
        &self,
        method: &http::Method,
        uri: &http::Uri,
        host: &http::HeaderValue,
    ) -> Option<http::Response<ProxyBody>>;
}

/// One connection on hyper's server.
struct HyperLane {
    peer: SocketAddr,
    /// The peer's address as a header value.
    client: http::HeaderValue,
    rt: Arc<Proxy>,
    limits: front::Limits,
    builder: Arc<hyper_util::server::conn::auto::Builder<TokioExecutor>>,
    shutdown: CancellationToken,
    secure: bool,
}

impl HyperLane {
    async fn serve<I>(self, io: I, activity: Option<Arc<conns::Activity>>)
    where
        I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let HyperLane {
            peer,
            client,
            rt,
            limits,
            builder,
            shutdown,
            secure,
        } = self;
        // The connection's activity is watched: requests in flight, bytes moved.
        let activity = activity.unwrap_or_else(conns::Activity::new);
        activity.touch();
        let watched = activity.clone();
        let svc = hyper::service::service_fn(move |mut req: Request<Incoming>| {
            let rt = rt.clone();
            let client = client.clone();
            let activity = watched.clone();
            if secure {
                req.extensions_mut().insert(Secure);
            }
            async move {
                activity.begin();
                let reply = handle(req.map(Some), peer, &client, &rt).await;
                activity.end();
                Ok::<_, Infallible>(reply.into_response())
            }
        });
        let io = TokioIo::new(conns::Watched {
            inner: io,
            activity: activity.clone(),
        });
        let conn = builder.serve_connection_with_upgrades(io, svc);
        tokio::pin!(conn);
        // An idle connection closes after `idle_timeout`: HTTP/1.1 has its header timeout too,
        // HTTP/2 has only this.
        tokio::select! {
            _ = conn.as_mut() => {}
            _ = shutdown.cancelled() => {
                conn.as_mut().graceful_shutdown();
                let _ = conn.await;
            }
            _ = activity.idled(limits.idle_timeout) => {
                // HTTP/2's goodbye waits for the client to answer a PING; a client that never
                // answers is dropped after one more idle period.
                conn.as_mut().graceful_shutdown();
                let _ = tokio::time::timeout(limits.idle_timeout, conn).await;
            }
        }
    }
}
