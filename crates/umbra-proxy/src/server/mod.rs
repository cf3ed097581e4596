//! The data plane: accepts client connections (HTTP/1.1 and h2c on one port), routes each
//! request by the snapshot in force, forwards it to an upstream server over pooled keep-alive
//! connections with bodies streamed both ways, and starts a shadow job when the route mirrors.
//!
//! Each worker thread runs its own current-thread runtime with its own `SO_REUSEPORT` listener
//! and its own upstream pools, so the hot path shares nothing but atomics and one `ArcSwap`.

pub mod body;
mod error;
pub mod headers;

use std::convert::Infallible;
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::{HeaderValue, Request, Response};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::AsyncReadExt;
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use body::{ProxyBody, Tee, UpstreamBody};
pub use error::ProxyError;

mod balance;
mod front;
pub(crate) mod h1;
pub mod pool;
mod relay;
pub use relay::{Answer, Relayed};

use crate::canary::{self, Side};
use crate::rules::RequestView;
use crate::runtime::Runtime;
use crate::shadow::{DropReason, ShadowJob};
use headers::*;

/// How long a connection to an upstream server may take to open.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

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
pub fn serve(listeners: Vec<TcpListener>, rt: Arc<Runtime>, shutdown: CancellationToken) {
    let grace = rt.load().config.proxy.grace;
    let (balance, inboxes) = balance::Balance::new(listeners.len());
    let handles: Vec<_> = listeners
        .into_iter()
        .zip(inboxes)
        .enumerate()
        .map(|(i, (l, inbox))| {
            let rt = rt.clone();
            let shutdown = shutdown.clone();
            let lane = balance::Lane::new(i, balance.clone(), inbox);
            std::thread::Builder::new()
                .name(format!("umbra-worker-{i}"))
                .spawn(move || {
                    let runtime = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .expect("worker runtime");
                    runtime.block_on(worker(l, lane, rt, shutdown, grace));
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
    rt: Arc<Runtime>,
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
        let conn = connection(
            stream,
            peer,
            rt.clone(),
            limits,
            builder.clone(),
            shutdown.clone(),
        );
        connections.spawn(async move {
            conn.await;
            drop(open);
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
fn limits_of(rt: &Runtime) -> front::Limits {
    let proxy = &rt.load().config.proxy;
    front::Limits {
        header_timeout: proxy.header_timeout,
        max_head: proxy.max_header_size,
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
    rt: Arc<Runtime>,
    limits: front::Limits,
    builder: Arc<hyper_util::server::conn::auto::Builder<TokioExecutor>>,
    shutdown: CancellationToken,
) {
    let client = client_value(peer.ip());
    let outcome = front::serve(&mut stream, limits, &shutdown, |req| {
        handle(req, peer, &client, &rt)
    })
    .await;
    let front::Outcome::HandOver(read) = outcome else {
        return;
    };
    let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
        let rt = rt.clone();
        let client = client.clone();
        async move {
            let answer = handle(req.map(Some), peer, &client, &rt).await;
            Ok::<_, Infallible>(answer.into_response())
        }
    });
    // The bytes the fast lane already read are read again first.
    let (read_half, write_half) = stream.into_split();
    let rewound = std::io::Cursor::new(read).chain(read_half);
    let io = TokioIo::new(tokio::io::join(rewound, write_half));
    let conn = builder.serve_connection_with_upgrades(io, svc);
    tokio::pin!(conn);
    tokio::select! {
        _ = conn.as_mut() => {}
        _ = shutdown.cancelled() => {
            conn.as_mut().graceful_shutdown();
            let _ = conn.await;
        }
    }
}

/// Handles one request end to end. Never fails: problems become JSON error responses.
///
/// `client` is the peer's address as a header value, made once per connection.
/// `req` has no body (`None`) when the fast lane read it.
pub async fn handle(
    mut req: Request<Option<Incoming>>,
    peer: SocketAddr,
    client: &HeaderValue,
    rt: &Arc<Runtime>,
) -> Answer {
    let start = Instant::now();
    let mut scan = Scan::of(req.headers());
    let request_id = match scan.request_id.take() {
        Some(v) if valid_request_id(&v) => v,
        _ => new_request_id(),
    };
    let snap = rt.load();
    let proxy_cfg = &snap.config.proxy;
    let upgrade = scan.upgrade;
    let client_upgrade = upgrade.then(|| hyper::upgrade::on(&mut req));
    let (mut parts, incoming) = req.into_parts();
    // The Host as the client sent it (port included) for X-Forwarded-Host; without the port
    // for matching and logs.
    let host_value = original_host(scan.host.as_ref(), &parts.uri);
    let host = strip_port(host_value.to_str().unwrap_or(""));
    let path = parts.uri.path();
    let view = RequestView {
        method: &parts.method,
        host,
        path,
        query: parts.uri.query(),
        headers: &parts.headers,
        client_ip: Some(peer.ip()),
    };
    let Some(route) = snap.route_for(&view).cloned() else {
        let err = ProxyError::NoRoute {
            method: parts.method.to_string(),
            host: host.to_string(),
            path: path.to_string(),
        };
        let resp = err.to_response(&request_id);
        let log = Log {
            method: parts.method.as_str(),
            path,
            host,
            request_id: &request_id,
            route: "",
            stats: None,
            service: "",
            upstream: "",
            start,
            shadow: "no_route",
        };
        return log.finish(rt, resp.into());
    };
    let route_name: &str = &route.spec.name;
    route.stats.requests.fetch_add(1, Ordering::Relaxed);

    if let Some(len) = scan.content_length {
        if len > proxy_cfg.max_body {
            let resp = ProxyError::BodyTooLarge {
                limit: proxy_cfg.max_body,
            }
            .to_response(&request_id);
            return Log {
                method: parts.method.as_str(),
                path,
                host,
                request_id: &request_id,
                route: route_name,
                stats: Some(&route.stats),
                service: "",
                upstream: "",
                start,
                shadow: "",
            }
            .finish(rt, resp.into());
        }
    }

    // Canary split.
    let mut service_name = route.spec.service.as_str();
    let mut set_cookie = None;
    if let Some(c) = &route.spec.canary {
        let (side, cookie) = canary::choose(route_name, c, &parts.headers);
        if side == Side::Canary
            && snap
                .service(&c.service)
                .is_some_and(|s| s.available_count() > 0)
        {
            service_name = c.service.as_str();
            route.stats.canary_requests.fetch_add(1, Ordering::Relaxed);
        }
        set_cookie = cookie.map(|v| {
            format!(
                "{}={v}; Path=/; HttpOnly; SameSite=Lax",
                canary::cookie_name(route_name)
            )
        });
    }
    let Some(service) = snap.service(service_name).cloned() else {
        let resp = ProxyError::NoHealthy {
            service: service_name.to_string(),
        }
        .to_response(&request_id);
        return Log {
            method: parts.method.as_str(),
            path,
            host,
            request_id: &request_id,
            route: route_name,
            stats: Some(&route.stats),
            service: service_name,
            upstream: "",
            start,
            shadow: "",
        }
        .finish(rt, resp.into());
    };

    // Upstream path, in origin form: the client's own path and query unless a prefix is
    // stripped (only then is a new one built and parsed).
    let mut stripped = None;
    let mut origin_form = None;
    if let Some(prefix) = &route.spec.strip_prefix {
        if let Some(rest) = path.strip_prefix(prefix.as_str()) {
            if rest.is_empty() || rest.starts_with('/') {
                let rest = if rest.is_empty() { "/" } else { rest };
                let pq = match parts.uri.query() {
                    Some(q) => format!("{rest}?{q}"),
                    None => rest.to_string(),
                };
                origin_form = pq.parse::<http::Uri>().ok();
                stripped = Some(prefix.clone());
            }
        }
    }
    let origin_form: http::Uri = origin_form
        .or_else(|| parts.uri.path_and_query().cloned().map(http::Uri::from))
        .unwrap_or_else(|| http::Uri::from_static("/"));
    let path_and_query = || {
        origin_form
            .path_and_query()
            .map_or("/", |pq| pq.as_str())
            .to_string()
    };

    // Headers for upstream: the client's without hop-by-hop fields, and umbra's own beside
    // them (see `Added`).
    if scan.hop_by_hop {
        strip_hop_by_hop(&mut parts.headers, upgrade);
        // `Connection` may have named any field.
        scan = Scan::of(&parts.headers);
    }
    let forwarded = Forwarded::new(&scan, client, &host_value);
    let prefix = stripped.and_then(|p| HeaderValue::from_str(&p).ok());
    let has_host = scan.host.is_some();
    // HTTP/2 carries the host as the URI's authority.
    let authority = parts
        .uri
        .authority()
        .filter(|_| !has_host)
        .and_then(|a| HeaderValue::from_str(a.as_str()).ok());
    let mut added = Added::new();
    forwarded.add_to(&mut added);
    if let Some(v) = &prefix {
        added.push(&X_FORWARDED_PREFIX, v);
    }
    added.push(&X_REQUEST_ID, &request_id);
    if let Some(v) = &authority {
        added.push(&HOST, v);
    }
    let has_host = has_host || authority.is_some();

    // Shadow decision: sample, method, body size, a free slot.
    let mut shadow_parts = None;
    let mut shadow_note = "";
    if let Some(sh) = &route.spec.shadow {
        let sampled = sh.percent >= 100.0 || rand::random::<f64>() * 100.0 < sh.percent;
        if !sampled {
            shadow_note = "not_sampled";
        } else if upgrade || !sh.methods.contains(&parts.method) {
            shadow_note = "method";
        } else {
            let body_len = incoming
                .as_ref()
                .map_or(Some(0), |b| http_body::Body::size_hint(b).exact());
            let shadow_svc = snap.service(&sh.service).cloned();
            match (shadow_svc, body_len) {
                (_, Some(n)) if n > sh.max_body => {
                    shadow_note = DropReason::BodyTooLarge.as_str();
                    rt.metrics.shadow_dropped(route_name, shadow_note);
                }
                (None, _) => {
                    shadow_note = DropReason::NoServer.as_str();
                    rt.metrics.shadow_dropped(route_name, shadow_note);
                }
                (Some(svc), _) => match route.shadow_slots.clone().try_acquire_owned() {
                    Ok(permit) => {
                        shadow_note = "sampled";
                        shadow_parts = Some((svc, permit, sh));
                    }
                    Err(_) => {
                        shadow_note = DropReason::Overflow.as_str();
                        route.stats.shadow_dropped.fetch_add(1, Ordering::Relaxed);
                        rt.metrics.shadow_dropped(route_name, shadow_note);
                    }
                },
            }
        }
    }

    let mut request_capture = None;
    let body = match incoming.filter(|b| !http_body::Body::is_end_stream(b)) {
        None => UpstreamBody::Empty,
        Some(incoming) => {
            let mut tee = Tee::new(incoming).limit(proxy_cfg.max_body);
            if let Some((_, _, sh)) = &shadow_parts {
                request_capture = Some(tee.capture(sh.max_body as usize));
            }
            UpstreamBody::Stream(tee)
        }
    };
    let empty = matches!(body, UpstreamBody::Empty);

    let mut primary_head_tx = None;
    let mut primary_body_tx = None;
    if let Some((svc, permit, sh)) = shadow_parts {
        let (head_tx, head_rx) = oneshot::channel();
        let (body_tx, body_rx) = oneshot::channel();
        primary_head_tx = Some(head_tx);
        primary_body_tx = Some(body_tx);
        let job = ShadowJob {
            route: route.clone(),
            shadow: svc,
            secondary: sh
                .secondary
                .as_ref()
                .filter(|_| rand::random::<f64>() * 100.0 < sh.secondary_percent)
                .and_then(|s| snap.service(s).cloned()),
            method: parts.method.clone(),
            path_and_query: path_and_query(),
            host: host.to_string(),
            headers: {
                let mut h = parts.headers.clone();
                added.merge_into(&mut h);
                h
            },
            request_id: request_id.clone(),
            started: start,
            request_body: request_capture,
            primary_head: head_rx,
            primary_body: body_rx,
            permit,
        };
        // Boxed before spawning: the task then moves a pointer, not the job's whole future.
        tokio::spawn(Box::pin(crate::shadow::run(job, rt.clone())));
    }

    // Forward, retrying once on another server when the connection could not be made and the
    // request had no body (nothing was sent).
    let timeout = proxy_cfg.timeout;
    let mut server = match service.pick(None) {
        Some(s) => s,
        None => {
            let resp = ProxyError::NoHealthy {
                service: service_name.to_string(),
            }
            .to_response(&request_id);
            return Log {
                method: parts.method.as_str(),
                path,
                host,
                request_id: &request_id,
                route: route_name,
                stats: Some(&route.stats),
                service: service_name,
                upstream: "",
                start,
                shadow: shadow_note,
            }
            .finish(rt, resp.into());
        }
    };
    let mut body = Some(body);
    let mut attempt = 0;
    // Only a request without a body can be sent again to another server, and only when the
    // service has another server.
    let retryable = empty && service.servers.len() > 1;
    let result = loop {
        attempt += 1;
        // Without a Host from the client, the server's own authority.
        let server_host = (!has_host)
            .then(|| HeaderValue::from_str(&server.addr.authority).ok())
            .flatten();
        let mut added = added;
        if let Some(v) = &server_host {
            added.push(&HOST, v);
        }
        let out = pool::Outgoing {
            method: &parts.method,
            uri: &origin_form,
            headers: &parts.headers,
            added: &added,
            upgrade,
        };
        let guard = server.begin();
        let res = pool::send(
            &server.addr.authority,
            out,
            body.take().unwrap_or(UpstreamBody::Empty),
            CONNECT_TIMEOUT,
            tokio::time::Instant::now() + timeout,
        )
        .await;
        match res {
            Ok(resp) => {
                server.record_success();
                break Ok((resp, guard));
            }
            Err(e) if e.is_timeout() => {
                break Err(ProxyError::Timeout {
                    server: server.addr.url(),
                    timeout_ms: timeout.as_millis(),
                })
            }
            Err(e) if e.is_connect() => {
                server.record_connect_failure();
                if retryable && attempt < 3 {
                    if let Some(next) = service.pick(Some(&server)) {
                        server = next;
                        continue;
                    }
                }
                break Err(ProxyError::Unavailable {
                    server: server.addr.url(),
                    source: Box::new(e),
                });
            }
            Err(e) => {
                if let Some(tl) = find_too_large(&e) {
                    break Err(ProxyError::BodyTooLarge { limit: tl });
                }
                break Err(ProxyError::Unavailable {
                    server: server.addr.url(),
                    source: Box::new(e),
                });
            }
        }
    };
    let upstream = server.addr.authority.clone();
    let ((resp, mut relayed), guard) = match result {
        Ok(x) => x,
        Err(e) => {
            tracing::warn!(route = %route_name, request_id = request_id.to_str().unwrap_or(""), error = %e, "upstream request failed");
            let resp = e.to_response(&request_id);
            return Log {
                method: parts.method.as_str(),
                path,
                host,
                request_id: &request_id,
                route: route_name,
                stats: Some(&route.stats),
                service: service_name,
                upstream: &upstream,
                start,
                shadow: shadow_note,
            }
            .finish(rt, resp.into());
        }
    };

    let mut resp = resp;
    let is_101 = resp.status() == http::StatusCode::SWITCHING_PROTOCOLS;
    if is_101 {
        if let Some(client_up) = client_upgrade {
            // Splice the two upgraded connections once both sides have switched; never mirrored.
            let upstream_up = hyper::upgrade::on(&mut resp);
            tokio::spawn(async move {
                match tokio::try_join!(client_up, upstream_up) {
                    Ok((c, u)) => {
                        let (mut c, mut u) = (TokioIo::new(c), TokioIo::new(u));
                        let _ = tokio::io::copy_bidirectional(&mut c, &mut u).await;
                    }
                    Err(e) => tracing::debug!(error = %e, "upgrade failed"),
                }
            });
        }
    }
    let (mut rparts, rbody) = resp.into_parts();
    // The upstream's fields stay lines unless they must be read or changed: a shadow compares
    // them, a hop-by-hop field needs stripping, a protocol switches.
    if primary_head_tx.is_some() || is_101 || relayed.needs_map() {
        std::mem::take(&mut relayed).merge_into(&mut rparts.headers, false);
    }
    if !rparts.headers.is_empty() {
        strip_hop_by_hop(&mut rparts.headers, upgrade && is_101);
    }
    // umbra's id replaces the upstream's; beside the map when the map holds nothing (the
    // relayed answer), so that it needs no map at all.
    let mut own_id = None;
    if rparts.headers.is_empty() && primary_head_tx.is_none() {
        own_id = Some(request_id.clone());
    } else {
        rparts
            .headers
            .insert(X_REQUEST_ID.clone(), request_id.clone());
    }
    if let Some(c) = set_cookie {
        if let Ok(v) = HeaderValue::from_str(&c) {
            rparts.headers.append(http::header::SET_COOKIE, v);
        }
    }
    if let Some(tx) = primary_head_tx {
        let _ = tx.send((rparts.status.as_u16(), rparts.headers.clone()));
    }
    let mut tee = Tee::new(rbody);
    if let Some(tx) = primary_body_tx {
        let _ = tx.send(tee.capture(route.spec.compare.max_body));
    }
    drop(guard);
    let resp = Response::from_parts(rparts, ProxyBody::Stream(tee));
    Log {
        method: parts.method.as_str(),
        path,
        host,
        request_id: &request_id,
        route: route_name,
        stats: Some(&route.stats),
        service: service_name,
        upstream: &upstream,
        start,
        shadow: shadow_note,
    }
    .finish(
        rt,
        Answer {
            resp,
            relayed,
            request_id: own_id,
        },
    )
}

/// Finds our own body-limit error inside a client error's source chain.
fn find_too_large(e: &(dyn std::error::Error + 'static)) -> Option<u64> {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(t) = err.downcast_ref::<body::BodyTooLarge>() {
            return Some(t.limit);
        }
        cur = err.source();
    }
    None
}

/// What one access-log line and the request metrics say about a request.
struct Log<'a> {
    method: &'a str,
    path: &'a str,
    host: &'a str,
    request_id: &'a HeaderValue,
    route: &'a str,
    stats: Option<&'a crate::telemetry::RouteStats>,
    service: &'a str,
    upstream: &'a str,
    start: Instant,
    shadow: &'a str,
}

impl Log<'_> {
    fn finish(self, rt: &Runtime, answer: Answer) -> Answer {
        let status = answer.resp.status().as_u16();
        let elapsed = self.start.elapsed();
        if !self.route.is_empty() {
            rt.metrics
                .request(self.route, self.service, status, elapsed);
        }
        if let Some(stats) = self.stats {
            stats.primary_latency.record_us(elapsed.as_micros() as u64);
            if status >= 500 {
                stats.errors.fetch_add(1, Ordering::Relaxed);
            }
        }
        if rt.access_log.enabled {
            let bytes = http_body::Body::size_hint(answer.resp.body()).exact();
            let line = serde_json::json!({
                "time": time::OffsetDateTime::now_utc().format(&time::format_description::well_known::Rfc3339).unwrap_or_default(),
                "request_id": self.request_id.to_str().unwrap_or(""),
                "method": self.method,
                "host": self.host,
                "path": self.path,
                "status": status,
                "route": self.route,
                "service": self.service,
                "upstream": self.upstream,
                "duration_ms": (elapsed.as_secs_f64() * 1000.0 * 1000.0).round() / 1000.0,
                "bytes": bytes,
                "shadow": self.shadow,
            });
            let mut text = line.to_string();
            text.push('\n');
            rt.access_log.write_line(text.as_bytes());
        }
        answer
    }
}
