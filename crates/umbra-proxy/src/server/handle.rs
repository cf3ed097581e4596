//! The request handler, as a short pipeline of named stages: **route** (which route, and may
//! its body come in), **plan** (canary side, the upstream request's fields, the shadow
//! decision), **forward** (to a server of the chosen service, retrying a connect failure on
//! another when nothing was sent) and **respond** (the reply's fields, the copies a shadow
//! compares). Every stage fills in the one access-log [`Record`]; a stage that fails returns a
//! [`ProxyError`], which becomes the JSON error reply in one place.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, Uri};
use hyper_util::rt::TokioIo;
use tokio::sync::oneshot;

use umbra_core::canary::{self, Side};
use umbra_core::config::{ProxyConfig, RateKey};
use umbra_core::rules::RequestView;
use umbra_core::snapshot::{Route, Snapshot};
use umbra_core::upstream::{InFlight, ServerState, Service};

use super::log::Record;
use super::reply::{ProxyBody, Reply};
use crate::client::{self, PooledBody};
use crate::error::{find_in_chain, ProxyError};
use crate::mirror::{Candidate, Candidates, DropReason, ShadowJob};
use crate::wire::body::{BodyTooLarge, Captured, ClientBodyError, Tee, UpstreamBody};
use crate::wire::headers::*;
use crate::wire::relay::Relayed;
use crate::Proxy;

/// How long a connection to an upstream server may take to open.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Handles one request end to end. Never fails: problems become JSON error replies.
///
/// `client` is the peer's address as a header value, made once per connection.
/// `req` has no body (`None`) when the fast lane read it.
pub async fn handle(
    mut req: Request<Option<hyper::body::Incoming>>,
    peer: SocketAddr,
    client: &HeaderValue,
    proxy: &Arc<Proxy>,
) -> Reply {
    let start = Instant::now();
    let mut scan = Scan::of(req.headers());
    let request_id = match scan.request_id.take() {
        Some(v) if valid_request_id(&v) => v,
        _ => new_request_id(),
    };
    let client_upgrade = scan.upgrade.then(|| hyper::upgrade::on(&mut req));
    let secure = req.extensions().get::<super::Secure>().is_some();
    let (parts, body) = req.into_parts();
    let http::request::Parts {
        method,
        uri,
        version,
        headers,
        ..
    } = parts;
    // The Host as the client sent it (port included) for X-Forwarded-Host; without the port
    // for matching and logs.
    let host_value = original_host(scan.host.as_ref(), &uri);
    let host = strip_port(host_value.to_str().unwrap_or(""));
    // The snapshot the whole request is handled under; the record borrows its route and service.
    let snap = proxy.runtime.load();
    let mut rec = Record::new(start, &method, uri.path(), host, &request_id);
    if let Some(answer) = (!secure)
        .then(|| proxy.plain_hook.get())
        .flatten()
        .and_then(|hook| hook.answer(&method, &uri, &host_value))
    {
        let reply = Reply::from(answer);
        rec.finish(&proxy.runtime, &reply);
        return reply;
    }
    let mut req = Req {
        method: &method,
        uri: &uri,
        headers,
        body,
        scan,
        host_value: &host_value,
        host,
        peer,
        client,
        client_upgrade,
        request_id: &request_id,
    };
    // The stages, in this function's own future (a nested future per stage would be moved,
    // whole, at each level): each returns its value, or the error that ends the request.
    let result: Result<Reply, ProxyError> = 'stages: {
        macro_rules! stage {
            ($e:expr) => {
                match $e {
                    Ok(v) => v,
                    Err(e) => break 'stages Err(e),
                }
            };
        }
        if let Some(e) = refuse(&req, version) {
            break 'stages Err(e);
        }
        let body = req.body.take();
        let route = stage!(route(&snap, &mut req, &mut rec));
        if !route.hold.is_open() {
            stage!(held(route, &req).await);
        }
        stage!(limit(route, &req, &snap, proxy));
        let side = stage!(choose_side(&snap, route, &req, &mut rec));
        let trusted = snap.config.proxy.trusts(req.peer.ip());
        let target = target(route, &mut req, trusted);
        let mut forwarded = Forwarded::new(&req.scan, req.client, req.host_value);
        forwarded.secure = secure;
        let prefix = target
            .stripped
            .as_ref()
            .and_then(|p| HeaderValue::from_str(p).ok());
        let (added, has_host) = upstream_fields(&req, &forwarded, prefix.as_ref());
        let shadow = plan_shadow(&snap, route, &req, body.as_ref(), proxy, &mut rec);
        let (body, copies) = start_shadow(
            &snap, route, &req, body, &target, &added, shadow, proxy, &rec,
        );
        let out = Outgoing {
            req: &req,
            uri: &target.uri,
            added,
            has_host,
            body,
        };
        let sent = stage!(forward(side.service, out, &snap, &mut rec).await);
        let own = Own {
            set_cookie: side.set_cookie,
            prefix: target.stripped.as_deref(),
        };
        respond(sent, &mut req, route, own, copies, &snap, &rec)
    };
    let reply = match result {
        Ok(reply) => reply,
        Err(e) => error_reply(e, &rec, &request_id),
    };
    rec.finish(&proxy.runtime, &reply);
    reply
}

/// The one mapping from a failed stage to the client's answer: the JSON error, and the
/// connection closed after it when the request's framing can no longer be trusted.
fn error_reply(e: ProxyError, rec: &Record<'_>, request_id: &HeaderValue) -> Reply {
    if e.is_upstream() {
        let route = rec.route.as_ref().map_or("", |r| r.spec.name.as_str());
        tracing::warn!(route = %route, request_id = request_id.to_str().unwrap_or(""), error = %e, "upstream request failed");
    }
    let close = matches!(
        e,
        ProxyError::ClientBody { .. }
            | ProxyError::BadRequest { .. }
            | ProxyError::UnsolicitedSwitch { .. }
    );
    let mut resp = e.to_response(request_id);
    // The route's response fields (security headers) go on umbra's own answers too.
    if let Some(ops) = rec
        .route
        .and_then(|r| r.spec.headers.as_ref()?.response.as_ref())
    {
        ops.apply_set(resp.headers_mut());
    }
    let reply: Reply = resp.into();
    if close {
        reply.closing()
    } else {
        reply
    }
}

/// Requests refused before routing (RFC 9112 §3.2, RFC 9110 §9.3.6): more than one `Host`,
/// or none on HTTP/1.1; `CONNECT` (umbra is no tunnel) and `OPTIONS *` (nothing to forward).
fn refuse(req: &Req<'_>, version: http::Version) -> Option<ProxyError> {
    let bad = |reason: &str| {
        Some(ProxyError::BadRequest {
            reason: reason.to_string(),
        })
    };
    if *req.method == Method::CONNECT {
        return Some(ProxyError::MethodNotAllowed {
            method: req.method.to_string(),
        });
    }
    if req.uri.path() == "*" {
        return bad("`*` is not a path umbra forwards (OPTIONS * asks about umbra itself)");
    }
    match req.scan.hosts {
        0 if version == http::Version::HTTP_11 => bad("an HTTP/1.1 request needs a Host field"),
        0 | 1 => None,
        _ => bad("a request has exactly one Host field"),
    }
}

/// The request as the stages see it.
struct Req<'a> {
    method: &'a Method,
    uri: &'a Uri,
    headers: HeaderMap,
    body: Option<hyper::body::Incoming>,
    scan: Scan,
    host_value: &'a HeaderValue,
    host: &'a str,
    peer: SocketAddr,
    client: &'a HeaderValue,
    client_upgrade: Option<hyper::upgrade::OnUpgrade>,
    request_id: &'a HeaderValue,
}

/// **Route**: the route that matches, and whether the declared body fits the limit.
fn route<'s>(
    snap: &'s Snapshot,
    req: &mut Req<'_>,
    rec: &mut Record<'s>,
) -> Result<&'s Arc<Route>, ProxyError> {
    let view = RequestView {
        method: req.method,
        host: req.host,
        path: req.uri.path(),
        query: req.uri.query(),
        headers: &req.headers,
        client_ip: Some(req.peer.ip()),
    };
    let Some(route) = snap.route_for(&view) else {
        rec.shadow = "no_route";
        return Err(ProxyError::NoRoute {
            method: req.method.to_string(),
            host: req.host.to_string(),
            path: req.uri.path().to_string(),
        });
    };
    route.stats.requests.fetch_add(1, Ordering::Relaxed);
    rec.route = Some(route);
    if req.scan.upgrade {
        let wanted = upgrade_protocol(&req.headers).unwrap_or_default();
        if !route.spec.upgrades.contains(&wanted) {
            // Not a protocol this route switches to: forwarded as a plain request, its
            // `Upgrade` and `Connection` dropped as hop-by-hop fields.
            req.scan.upgrade = false;
            req.client_upgrade = None;
        }
    }
    let limit = snap.config.proxy.max_body;
    match req.scan.content_length {
        Some(len) if len > limit => Err(ProxyError::BodyTooLarge { limit }),
        _ => Ok(route),
    }
}

/// A paused route's request waits for `resume` (503 after the pause's `max`); a route in
/// maintenance answers 503, as a page when the client asks for HTML.
async fn held(route: &Route, req: &Req<'_>) -> Result<(), ProxyError> {
    use umbra_core::runtime::Held;
    match route.hold.wait().await {
        Ok(()) => Ok(()),
        Err(Held::PauseExpired(max)) => Err(ProxyError::Paused {
            route: route.spec.name.clone(),
            max_ms: max.as_millis(),
        }),
        Err(Held::Maintenance(message)) => {
            let html = req
                .headers
                .get(http::header::ACCEPT)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|a| a.contains("text/html"));
            Err(ProxyError::Maintenance { message, html })
        }
    }
}

/// **Route**, part two: a token from the route's bucket for this client, or 429.
fn limit(route: &Route, req: &Req<'_>, snap: &Snapshot, proxy: &Proxy) -> Result<(), ProxyError> {
    let Some(limiter) = &route.limiter else {
        return Ok(());
    };
    let ip;
    let key: &[u8] = match &limiter.spec().key {
        RateKey::Header(name) => req.headers.get(name).map_or(&[], |v| v.as_bytes()),
        RateKey::ClientIp => {
            // One key per client whichever way its address came (`::ffff:a.b.c.d` = a.b.c.d).
            ip = client_ip(&req.headers, req.peer.ip(), &snap.config.proxy).to_canonical();
            match &ip {
                IpAddr::V4(v4) => &v4.octets()[..],
                IpAddr::V6(v6) => &v6.octets()[..],
            }
        }
    };
    limiter.check(key).map_err(|retry_after| {
        proxy.runtime.metrics.rate_limited(&route.spec.name);
        ProxyError::RateLimited {
            route: route.spec.name.clone(),
            retry_after,
        }
    })
}

/// The client's address: the peer's, or — when the peer is a trusted proxy — the nearest
/// address in `X-Forwarded-For` that is not a trusted proxy (read from the right, where the
/// trusted proxies appended; what an untrusted sender wrote further left is not believed).
fn client_ip(headers: &HeaderMap, peer: IpAddr, proxy: &ProxyConfig) -> IpAddr {
    if !proxy.trusts(peer) {
        return peer;
    }
    let mut client = peer;
    for value in headers.get_all(&X_FORWARDED_FOR).iter().rev() {
        let Ok(text) = value.to_str() else {
            return client;
        };
        for item in text.rsplit(',') {
            let Ok(ip) = item.trim().parse::<IpAddr>() else {
                return client;
            };
            client = ip;
            if !proxy.trusts(ip) {
                return ip;
            }
        }
    }
    client
}

/// The canary decision: which side, and the sticky cookie to set.
struct SideChoice<'s> {
    service: &'s Arc<Service>,
    set_cookie: Option<String>,
}

/// **Plan**, part one: the primary or the canary service (sticky per client).
fn choose_side<'s>(
    snap: &'s Snapshot,
    route: &Route,
    req: &Req<'_>,
    rec: &mut Record<'s>,
) -> Result<SideChoice<'s>, ProxyError> {
    let mut service_name = route.spec.service.as_str();
    let mut set_cookie = None;
    if let Some(c) = &route.spec.canary {
        let (side, cookie) = canary::choose(&route.spec.name, c, &req.headers);
        if side == Side::Canary
            && snap
                .service(&c.service)
                .is_some_and(|s| s.available_count() > 0)
        {
            service_name = c.service.as_str();
            rec.canary = true;
            route.stats.canary_requests.fetch_add(1, Ordering::Relaxed);
        }
        set_cookie = cookie.map(|v| {
            format!(
                "{}={v}; Path=/; HttpOnly; SameSite=Lax",
                canary::cookie_name(&route.spec.name)
            )
        });
    }
    match snap.service(service_name) {
        Some(s) => {
            rec.service = Some(s);
            Ok(SideChoice {
                service: s,
                set_cookie,
            })
        }
        None => Err(ProxyError::NoHealthy {
            service: service_name.to_string(),
        }),
    }
}

/// Where the request goes on the upstream: its origin-form URI, and the prefix stripped.
struct Target {
    uri: Uri,
    stripped: Option<String>,
}

impl Target {
    fn path_and_query(&self) -> String {
        self.uri
            .path_and_query()
            .map_or("/", |pq| pq.as_str())
            .to_string()
    }
}

/// **Plan**, part two: the upstream path — the client's own path and query unless a prefix is
/// stripped (only then is a new one built and parsed) — and the client's fields without the
/// hop-by-hop ones, and the route's changes to the fields.
fn target(route: &Route, req: &mut Req<'_>, trusted: bool) -> Target {
    let path = req.uri.path();
    let mut stripped = None;
    let mut uri = None;
    if let Some(prefix) = &route.spec.strip_prefix {
        if let Some(rest) = path.strip_prefix(prefix.as_str()) {
            if rest.is_empty() || rest.starts_with('/') {
                let rest = if rest.is_empty() { "/" } else { rest };
                let pq = match req.uri.query() {
                    Some(q) => format!("{rest}?{q}"),
                    None => rest.to_string(),
                };
                uri = pq.parse::<Uri>().ok();
                stripped = Some(prefix.clone());
            }
        }
    }
    let uri = uri
        .or_else(|| req.uri.path_and_query().cloned().map(Uri::from))
        .unwrap_or_else(|| Uri::from_static("/"));
    if req.scan.hop_by_hop {
        strip_hop_by_hop(&mut req.headers, req.scan.upgrade);
        // `Connection` may have named any field; the upgrade flag stays the client's.
        let upgrade = req.scan.upgrade;
        req.scan = Scan::of(&req.headers);
        req.scan.upgrade = upgrade;
    }
    let underscores = route.spec.underscores_in_headers;
    if req.scan.needs_sanitizing(trusted, underscores) {
        sanitize(
            &mut req.headers,
            trusted,
            underscores,
            req.scan.content_length,
        );
    }
    if !trusted {
        req.scan.untrusted();
    }
    // The route's own changes, before the shadow copies the fields: primary and shadow get
    // the same request.
    if let Some(ops) = route.spec.headers.as_ref().and_then(|h| h.request.as_ref()) {
        ops.apply(&mut req.headers);
    }
    Target { uri, stripped }
}

/// umbra's own fields for the upstream request (see `Added`), and whether it has a Host.
fn upstream_fields<'a>(
    req: &'a Req<'_>,
    forwarded: &'a Forwarded,
    prefix: Option<&'a HeaderValue>,
) -> (Added<'a>, bool) {
    let has_host = req.scan.host.is_some();
    let mut added = Added::new();
    forwarded.add_to(&mut added);
    if let Some(v) = prefix {
        added.push(&X_FORWARDED_PREFIX, v);
    }
    added.push(&X_REQUEST_ID, req.request_id);
    // An absolute-form target's authority, or HTTP/2's, replaces any Host field.
    if req.uri.authority().is_some() {
        added.push(&HOST, req.host_value);
        return (added, true);
    }
    (added, has_host)
}

/// The candidates the plan decided to mirror a request to, and the largest body one takes.
struct ShadowPlan {
    candidates: Candidates,
    max_body: u64,
}

/// Why a candidate does not get this request.
enum Skip {
    NotSampled,
    Method,
    Dropped(DropReason),
}

/// **Plan**, part three: the candidates this request is mirrored to — each sampled at its own
/// percent, a mirrored method, a body within its cap, a shadow server, a free slot — or why
/// none is (the access log's `shadow`).
fn plan_shadow(
    snap: &Snapshot,
    route: &Route,
    req: &Req<'_>,
    body: Option<&hyper::body::Incoming>,
    proxy: &Proxy,
    rec: &mut Record<'_>,
) -> Option<ShadowPlan> {
    if route.spec.shadows.is_empty() {
        return None;
    }
    let body_len = body.map_or(Some(0), |b| http_body::Body::size_hint(b).exact());
    let mut plan: Option<ShadowPlan> = None;
    for (index, sh) in route.spec.shadows.iter().enumerate() {
        match candidate(snap, route, index, req, body_len) {
            Ok(c) => {
                let p = plan.get_or_insert_with(|| ShadowPlan {
                    candidates: Candidates::with_capacity(route.spec.shadows.len()),
                    max_body: 0,
                });
                p.max_body = p.max_body.max(sh.max_body);
                p.candidates.push(c);
                rec.shadow = "sampled";
            }
            Err(skip) => {
                let why = match skip {
                    Skip::NotSampled => "not_sampled",
                    Skip::Method => "method",
                    Skip::Dropped(reason) => {
                        let name = &route.spec.name;
                        proxy.runtime.metrics.shadow_dropped(name, reason.as_str());
                        reason.as_str()
                    }
                };
                if plan.is_none() {
                    rec.shadow = why;
                }
            }
        }
    }
    plan
}

/// Whether candidate `index` of the route gets this request.
fn candidate(
    snap: &Snapshot,
    route: &Route,
    index: usize,
    req: &Req<'_>,
    body_len: Option<u64>,
) -> Result<Candidate, Skip> {
    let sh = &route.spec.shadows[index];
    let sampled = sh.percent >= 100.0 || rand::random::<f64>() * 100.0 < sh.percent;
    if !sampled {
        return Err(Skip::NotSampled);
    }
    if req.scan.upgrade || !sh.methods.contains(req.method) {
        return Err(Skip::Method);
    }
    if body_len.is_some_and(|n| n > sh.max_body) {
        return Err(Skip::Dropped(DropReason::BodyTooLarge));
    }
    let Some(service) = snap.service(&sh.service).cloned() else {
        return Err(Skip::Dropped(DropReason::NoServer));
    };
    match route.shadow_slots[index].clone().try_acquire_owned() {
        Ok(permit) => Ok(Candidate {
            index,
            service,
            permit,
        }),
        Err(_) => {
            route.stats.shadow_dropped.fetch_add(1, Ordering::Relaxed);
            Err(Skip::Dropped(DropReason::Overflow))
        }
    }
}

/// Where the primary's response copies go for the shadow to compare.
struct Copies {
    head: oneshot::Sender<(u16, HeaderMap)>,
    body: oneshot::Sender<oneshot::Receiver<Captured>>,
}

/// The upstream body (teed when a shadow needs a copy), and the shadow job started.
#[allow(clippy::too_many_arguments)]
fn start_shadow(
    snap: &Snapshot,
    route: &Arc<Route>,
    req: &Req<'_>,
    body: Option<hyper::body::Incoming>,
    target: &Target,
    added: &Added<'_>,
    shadow: Option<ShadowPlan>,
    proxy: &Arc<Proxy>,
    rec: &Record<'_>,
) -> (UpstreamBody, Option<Copies>) {
    let max_body = snap.config.proxy.max_body;
    let mut request_copy = None;
    let body = match body.filter(|b| !http_body::Body::is_end_stream(b)) {
        None => UpstreamBody::Empty,
        Some(incoming) => {
            let idle = snap.config.proxy.idle_timeout;
            let mut tee = Tee::new(incoming).limit(max_body).idle(idle);
            if let Some(plan) = &shadow {
                request_copy = Some(tee.capture(plan.max_body as usize));
            }
            UpstreamBody::Stream(tee)
        }
    };
    let Some(plan) = shadow else {
        return (body, None);
    };
    let (head_tx, head_rx) = oneshot::channel();
    let (body_tx, body_rx) = oneshot::channel();
    let job = ShadowJob {
        route: route.clone(),
        secondary: secondary(snap, route, &plan.candidates),
        candidates: plan.candidates,
        method: req.method.clone(),
        path_and_query: target.path_and_query(),
        host: req.host.to_string(),
        headers: {
            let mut h = req.headers.clone();
            added.merge_into(&mut h);
            h
        },
        request_id: req.request_id.clone(),
        started: rec.start(),
        request_body: request_copy,
        primary_head: head_rx,
        primary_body: body_rx,
    };
    // Boxed before spawning: the task then moves a pointer, not the job's whole future.
    tokio::spawn(Box::pin(crate::mirror::run(job, proxy.clone())));
    let copies = Copies {
        head: head_tx,
        body: body_tx,
    };
    (body, Some(copies))
}

/// The secondary this request also goes to (one for all its candidates: it measures the
/// primary's own noise): the first candidate's that names one, at that candidate's share.
fn secondary(snap: &Snapshot, route: &Route, candidates: &[Candidate]) -> Option<Arc<Service>> {
    let spec = candidates
        .iter()
        .map(|c| &route.spec.shadows[c.index])
        .find(|s| s.secondary.is_some())?;
    let name = spec.secondary.as_ref()?;
    let sampled = rand::random::<f64>() * 100.0 < spec.secondary_percent;
    sampled.then(|| snap.service(name).cloned()).flatten()
}

/// The upstream request as `forward` sends it.
struct Outgoing<'a> {
    req: &'a Req<'a>,
    uri: &'a Uri,
    added: Added<'a>,
    has_host: bool,
    body: UpstreamBody,
}

/// What came back from the upstream, with the server's in-flight mark.
struct Sent {
    resp: Response<PooledBody>,
    relayed: Relayed,
    _in_flight: InFlight,
}

/// **Forward**: sends the request to a server of `service`, retrying once on another server
/// when the connection could not be made and the request had no body (nothing was sent).
async fn forward(
    service: &Service,
    out: Outgoing<'_>,
    snap: &Snapshot,
    rec: &mut Record<'_>,
) -> Result<Sent, ProxyError> {
    let timeout = snap.config.proxy.timeout;
    let Some(mut server) = service.pick(None) else {
        return Err(ProxyError::NoHealthy {
            service: service.name().to_string(),
        });
    };
    let empty = matches!(out.body, UpstreamBody::Empty);
    let mut body = Some(out.body);
    // Only a request without a body can be sent again, and only to another server.
    let retryable = empty && service.servers.len() > 1;
    let mut attempt = 0;
    // One attempt per turn, on `server` (one future level: each level copies its state).
    loop {
        attempt += 1;
        // Without a Host from the client, the server's own authority.
        let server_host = (!out.has_host)
            .then(|| HeaderValue::from_str(&server.addr.authority).ok())
            .flatten();
        let mut added = out.added;
        if let Some(v) = &server_host {
            added.push(&HOST, v);
        }
        let wire = client::Outgoing {
            method: out.req.method,
            uri: out.uri,
            headers: &out.req.headers,
            added: &added,
            upgrade: out.req.scan.upgrade,
        };
        let in_flight = server.begin();
        let dest = client::Dest {
            addr: &server.addr,
            ca: service.spec.ca.as_ref(),
        };
        let res = client::send(
            dest,
            wire,
            body.take().unwrap_or(UpstreamBody::Empty),
            CONNECT_TIMEOUT,
            tokio::time::Instant::now() + timeout,
        )
        .await;
        match res {
            Ok((resp, relayed)) => {
                server.record_success();
                rec.upstream = Some(server);
                return Ok(Sent {
                    resp,
                    relayed,
                    _in_flight: in_flight,
                });
            }
            Err(e) => {
                if e.is_connect() {
                    server.record_connect_failure();
                }
                rec.upstream = Some(server.clone());
                if !(e.is_connect() && retryable && attempt < 3) {
                    return Err(upstream_error(&server, e, timeout));
                }
                match service.pick(Some(&server)) {
                    Some(next) => server = next,
                    None => return Err(unavailable(&server, e)),
                }
            }
        }
    }
}

fn unavailable(server: &ServerState, e: client::SendError) -> ProxyError {
    ProxyError::Unavailable {
        server: server.addr.url(),
        source: Box::new(e),
    }
}

/// The one mapping from a failed send to the client's error.
fn upstream_error(server: &ServerState, e: client::SendError, timeout: Duration) -> ProxyError {
    if e.is_timeout() {
        return ProxyError::Timeout {
            server: server.addr.url(),
            timeout_ms: timeout.as_millis(),
        };
    }
    if let Some(t) = find_in_chain::<BodyTooLarge>(&e) {
        return ProxyError::BodyTooLarge { limit: t.limit };
    }
    if let Some(c) = find_in_chain::<ClientBodyError>(&e) {
        return ProxyError::ClientBody {
            reason: c.to_string(),
        };
    }
    unavailable(server, e)
}

/// What the reply gets of umbra's own besides the request id.
struct Own<'a> {
    /// The canary's sticky cookie.
    set_cookie: Option<String>,
    /// The prefix the route stripped: a redirect goes back under it.
    prefix: Option<&'a str>,
}

/// **Respond**: the reply's fields (the upstream's as lines unless something must read or
/// change them), umbra's request id and canary cookie, the copies for the shadow, the
/// route's changes (its fields, a redirect back under a stripped prefix), and a protocol
/// switch spliced when both sides upgrade.
fn respond(
    sent: Sent,
    req: &mut Req<'_>,
    route: &Route,
    own: Own<'_>,
    copies: Option<Copies>,
    snap: &Snapshot,
    rec: &Record<'_>,
) -> Result<Reply, ProxyError> {
    let Sent {
        mut resp,
        mut relayed,
        _in_flight,
    } = sent;
    let is_101 = switch(req, &mut resp, rec)?;
    let (mut parts, body) = resp.into_parts();
    // umbra answers in its own HTTP version, whatever the upstream spoke (an HTTP/1.0
    // upstream does not make the client's connection HTTP/1.0).
    parts.version = http::Version::HTTP_11;
    // The upstream's fields stay lines unless they must be read or changed: a shadow compares
    // them, a hop-by-hop field needs stripping, a protocol switches, a redirect goes back
    // under a stripped prefix.
    let edits = route
        .spec
        .headers
        .as_ref()
        .and_then(|h| h.response.as_ref());
    let redirect = own
        .prefix
        .filter(|_| parts.status.is_redirection() || parts.status == StatusCode::CREATED);
    if copies.is_some() || is_101 || relayed.needs_map() || redirect.is_some() {
        std::mem::take(&mut relayed).merge_into(&mut parts.headers, false);
    }
    if !parts.headers.is_empty() {
        one_length(&mut parts.headers);
        strip_hop_by_hop(&mut parts.headers, req.scan.upgrade && is_101);
    }
    // umbra's id replaces the upstream's; beside the map when the map holds nothing (the
    // relayed answer), so that it needs no map at all.
    let mut own_id = None;
    if parts.headers.is_empty() && copies.is_none() {
        own_id = Some(req.request_id.clone());
    } else {
        parts
            .headers
            .insert(X_REQUEST_ID.clone(), req.request_id.clone());
    }
    if let Some(c) = own.set_cookie {
        if let Ok(v) = HeaderValue::from_str(&c) {
            parts.headers.append(http::header::SET_COOKIE, v);
        }
    }
    let mut tee = Tee::new(body).idle(snap.config.proxy.idle_timeout);
    if let Some(copies) = copies {
        let _ = copies
            .head
            .send((parts.status.as_u16(), parts.headers.clone()));
        let _ = copies.body.send(tee.capture(route.spec.compare.max_body));
    }
    // After the shadow's copy: the candidate's answer is compared with the upstream's, not
    // with what the route made of it.
    if let Some(ops) = edits {
        // Lines stay lines: the fields removed or replaced are left out of them, and the map
        // (written after the lines) gets the ones set.
        relayed.drop_fields(|name| ops.touches(name));
        ops.apply(&mut parts.headers);
    }
    if let (Some(prefix), Some(server)) = (redirect, &rec.upstream) {
        let upstream = &server.addr.authority;
        back_under(&mut parts.headers, prefix, req.host_value, upstream);
    }
    Ok(Reply::new(
        Response::from_parts(parts, ProxyBody::Stream(tee)),
        relayed,
        own_id,
    ))
}

/// Whether the upstream switched protocols (101): spliced to the client when it asked to
/// switch, else an error that ends the connection instead of waiting for bytes that will
/// never be HTTP.
fn switch(
    req: &mut Req<'_>,
    resp: &mut Response<PooledBody>,
    rec: &Record<'_>,
) -> Result<bool, ProxyError> {
    let is_101 = resp.status() == StatusCode::SWITCHING_PROTOCOLS;
    match req.client_upgrade.take() {
        Some(client_up) if is_101 => splice_upgrade(client_up, resp),
        None if is_101 => {
            let server = rec.upstream.as_ref().map(|s| s.addr.url());
            return Err(ProxyError::UnsolicitedSwitch {
                server: server.unwrap_or_default(),
            });
        }
        _ => {}
    }
    Ok(is_101)
}

/// A redirect of a `strip_prefix` route put back under the prefix (see `wire::location`).
fn back_under(headers: &mut HeaderMap, prefix: &str, client_host: &HeaderValue, upstream: &str) {
    let Some(location) = headers.get(http::header::LOCATION) else {
        return;
    };
    let (Ok(location), Ok(host)) = (location.to_str(), client_host.to_str()) else {
        return;
    };
    let rewritten = crate::wire::location::rewrite(location, prefix, host, upstream);
    if let Some(v) = rewritten.and_then(|v| HeaderValue::from_str(&v).ok()) {
        headers.insert(http::header::LOCATION, v);
    }
}

/// The response framing the client may see: no `Content-Length` beside a
/// `Transfer-Encoding` (RFC 9112 §6.3: the length is wrong, and a client trusting it takes a
/// cut body for a whole one), and a repeated one said once.
fn one_length(headers: &mut HeaderMap) {
    use http::header::{CONTENT_LENGTH, TRANSFER_ENCODING};
    if headers.contains_key(TRANSFER_ENCODING) {
        headers.remove(CONTENT_LENGTH);
    } else if let Some(first) = headers.get(CONTENT_LENGTH).cloned() {
        if headers.get_all(CONTENT_LENGTH).iter().nth(1).is_some() {
            headers.insert(CONTENT_LENGTH, first);
        }
    }
}

/// Splices the client's and the upstream's upgraded connections once both have switched;
/// never mirrored.
fn splice_upgrade(client_up: hyper::upgrade::OnUpgrade, resp: &mut Response<PooledBody>) {
    let upstream_up = hyper::upgrade::on(resp);
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
