//! Fixture upstream servers (test side): hyper 1 on an ephemeral loopback port, HTTP/1.1 and h2c,
//! with canned routes, delays, a health endpoint, fault endpoints and request recording.
//!
//! Unmatched paths echo the request back as JSON, so two fixtures behind a proxy can be compared
//! without configuring anything. Health probes are kept out of [`Fixture::requests`] so that a
//! proxy's health checker does not disturb hit counts.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt as _;
use http::{Request, Response, StatusCode, Version};
use http_body::Frame;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt as _, Full, StreamBody};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use hyper_util::server::conn::auto;
use serde_json::{json, Map, Value};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};

use crate::fault::{websocket_accept, ConnCtl, Ending, HijackIo, RawServer};
use crate::record::{Recorded, Reply};
use crate::tasks::{Tasks, TrackedExec};

type Handler = Arc<dyn Fn(&Recorded) -> Reply + Send + Sync>;
type RespBody = UnsyncBoxBody<Bytes, Infallible>;

/// What a path does.
#[derive(Clone)]
enum Route {
    Reply(Handler),
    Echo { delay: Duration },
    Health,
    Reset,
    Garbage,
    Hang,
    Stream { chunks: Vec<Bytes>, gap: Duration },
    UpgradeEcho,
}

/// Configures a [`Fixture`]; see [`Fixture::builder`]. Cloning it lets one configuration start
/// several identical fixtures (e.g. a primary and a shadow).
#[derive(Clone, Default)]
pub struct FixtureBuilder {
    name: Option<String>,
    exact: HashMap<String, Route>,
    prefixes: Vec<(String, Route)>,
    listen_on: Option<SocketAddr>,
}

impl FixtureBuilder {
    fn route(mut self, path: impl Into<String>, route: Route) -> Self {
        self.exact.insert(path.into(), route);
        self
    }

    /// `200` with this JSON body and `content-type: application/json`.
    pub fn json(self, path: impl Into<String>, value: Value) -> Self {
        self.reply(path, Reply::json(200, value))
    }

    /// `200` with this text body and `content-type: text/plain; charset=utf-8`.
    pub fn text(self, path: impl Into<String>, body: impl Into<String>) -> Self {
        self.reply(path, Reply::text(200, body))
    }

    /// This status with an empty body.
    pub fn status(self, path: impl Into<String>, status: u16) -> Self {
        self.reply(path, Reply::status(status))
    }

    /// Always this reply.
    pub fn reply(self, path: impl Into<String>, reply: Reply) -> Self {
        self.respond(path, move |_: &Recorded| reply.clone())
    }

    /// A reply computed from the request.
    pub fn respond<F>(self, path: impl Into<String>, handler: F) -> Self
    where
        F: Fn(&Recorded) -> Reply + Send + Sync + 'static,
    {
        self.route(path, Route::Reply(Arc::new(handler)))
    }

    /// A reply for every path starting with `prefix` that has no exact route; the longest
    /// matching prefix wins.
    pub fn prefix<F>(mut self, prefix: impl Into<String>, handler: F) -> Self
    where
        F: Fn(&Recorded) -> Reply + Send + Sync + 'static,
    {
        let prefix = prefix.into();
        self.prefixes.retain(|(p, _)| *p != prefix);
        self.prefixes
            .push((prefix, Route::Reply(Arc::new(handler))));
        self.prefixes
            .sort_by_key(|(prefix, _)| std::cmp::Reverse(prefix.len()));
        self
    }

    /// The echo response (`200` JSON), sent after `delay`.
    pub fn delay(self, path: impl Into<String>, delay: Duration) -> Self {
        self.route(path, Route::Echo { delay })
    }

    /// Adds `x-fixture: NAME` to every response and `"fixture": NAME` to echo bodies.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// `200 ok` while healthy, `503 unhealthy` after [`Fixture::set_healthy(false)`]. Probes are
    /// counted by [`Fixture::health_hits`], not recorded, and not slowed by [`Fixture::set_delay`].
    ///
    /// [`Fixture::set_healthy(false)`]: Fixture::set_healthy
    pub fn health(self, path: impl Into<String>) -> Self {
        self.route(path, Route::Health)
    }

    /// Reads the request, then closes the connection with a TCP reset and no response.
    pub fn reset(self, path: impl Into<String>) -> Self {
        self.route(path, Route::Reset)
    }

    /// Reads the request, then writes [`crate::GARBAGE`] (not HTTP) and closes the connection.
    pub fn garbage(self, path: impl Into<String>) -> Self {
        self.route(path, Route::Garbage)
    }

    /// Reads the request and never answers; the connection stays open until the fixture stops.
    pub fn hang(self, path: impl Into<String>) -> Self {
        self.route(path, Route::Hang)
    }

    /// `200` with a streamed body (chunked in HTTP/1.1, `application/octet-stream`): the first
    /// chunk at once, then one chunk after each `gap`.
    pub fn stream(self, path: impl Into<String>, chunks: Vec<Bytes>, gap: Duration) -> Self {
        self.route(path, Route::Stream { chunks, gap })
    }

    /// `200` with gzip-compressed JSON, `content-type: application/json` and
    /// `content-encoding: gzip`.
    pub fn gzip_json(self, path: impl Into<String>, value: Value) -> Self {
        let raw = serde_json::to_vec(&value).expect("serialize JSON value");
        let reply = Reply::bytes(200, gzip(&raw))
            .header("content-type", "application/json")
            .header("content-encoding", "gzip");
        self.reply(path, reply)
    }

    /// A WebSocket-style upgrade: an HTTP/1.1 request with `Upgrade: websocket` and
    /// `Sec-WebSocket-Key` gets `101 Switching Protocols` with the matching
    /// `Sec-WebSocket-Accept`, then every byte sent on the upgraded connection is echoed back raw
    /// (no WebSocket framing). Anything else on this path gets `400`.
    pub fn upgrade_echo(self, path: impl Into<String>) -> Self {
        self.route(path, Route::UpgradeEcho)
    }

    /// Listens on this address instead of an ephemeral port (e.g. to restart a fixture where a
    /// stopped one was).
    pub fn listen_on(mut self, addr: SocketAddr) -> Self {
        self.listen_on = Some(addr);
        self
    }

    /// Binds and starts serving on the current tokio runtime.
    pub async fn start(self) -> Fixture {
        let bind = self
            .listen_on
            .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 0)));
        let listener = TcpListener::bind(bind)
            .await
            .unwrap_or_else(|e| panic!("fixture: bind {bind}: {e}"));
        self.start_on(listener)
    }

    /// Starts serving on a listener the caller already bound.
    pub fn start_on(self, listener: TcpListener) -> Fixture {
        let addr = listener
            .local_addr()
            .expect("local_addr of a bound listener");
        let shared = Arc::new(Shared {
            name: self.name,
            exact: self.exact,
            prefixes: self.prefixes,
            healthy: AtomicBool::new(true),
            delay: Mutex::new(Duration::ZERO),
            requests: Mutex::new(Vec::new()),
            health_hits: AtomicUsize::new(0),
            connections: AtomicUsize::new(0),
            tasks: Tasks::default(),
        });
        let accepting = shared.clone();
        shared.tasks.spawn(accept_loop(accepting, listener));
        Fixture { addr, shared }
    }
}

/// A running upstream server; stops when dropped (see [`Fixture::shutdown`] to wait for that).
///
/// ```no_run
/// # async fn demo() {
/// use std::time::Duration;
/// use serde_json::json;
/// use umbra_testkit::{Fixture, Recorded, Reply};
///
/// let fx = Fixture::builder()
///     .json("/users/1", json!({"id": 1}))
///     .respond("/custom", |_req: &Recorded| Reply::json(201, json!({"ok": true})).header("x-a", "b"))
///     .delay("/slow", Duration::from_millis(300))
///     .name("v1")
///     .health("/health")
///     .start()
///     .await;
/// let res = umbra_testkit::get(format!("{}/users/1", fx.url())).await;
/// assert_eq!(res.json(), json!({"id": 1}));
/// assert_eq!(fx.hits_for("/users/1"), 1);
/// # }
/// ```
pub struct Fixture {
    addr: SocketAddr,
    shared: Arc<Shared>,
}

struct Shared {
    name: Option<String>,
    exact: HashMap<String, Route>,
    prefixes: Vec<(String, Route)>,
    healthy: AtomicBool,
    delay: Mutex<Duration>,
    requests: Mutex<Vec<Recorded>>,
    health_hits: AtomicUsize,
    connections: AtomicUsize,
    tasks: Tasks,
}

impl Shared {
    fn route(&self, path: &str) -> Option<&Route> {
        self.exact.get(path).or_else(|| {
            self.prefixes
                .iter()
                .find(|(prefix, _)| path.starts_with(prefix.as_str()))
                .map(|(_, route)| route)
        })
    }

    fn requests(&self) -> std::sync::MutexGuard<'_, Vec<Recorded>> {
        self.requests.lock().expect("fixture request log")
    }
}

impl Fixture {
    /// Starts configuring a fixture.
    pub fn builder() -> FixtureBuilder {
        FixtureBuilder::default()
    }

    /// An address on 127.0.0.1 where nothing listens: connecting is refused.
    pub fn refusing() -> SocketAddr {
        crate::free_addr()
    }

    /// A TCP server that answers every connection with [`crate::GARBAGE`], on an ephemeral port.
    pub async fn raw_garbage_server() -> RawServer {
        RawServer::start().await
    }

    /// The listening address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The name given with [`FixtureBuilder::name`].
    pub fn name(&self) -> Option<&str> {
        self.shared.name.as_deref()
    }

    /// Every request received so far (health probes excluded), in arrival order.
    pub fn requests(&self) -> Vec<Recorded> {
        self.shared.requests().clone()
    }

    /// The requests whose path (or path and query) is `path`.
    pub fn requests_for(&self, path: &str) -> Vec<Recorded> {
        self.shared
            .requests()
            .iter()
            .filter(|r| r.path() == path || r.uri == path)
            .cloned()
            .collect()
    }

    /// The most recent request, if any.
    pub fn last_request(&self) -> Option<Recorded> {
        self.shared.requests().last().cloned()
    }

    /// How many requests were received (health probes excluded).
    pub fn hits(&self) -> usize {
        self.shared.requests().len()
    }

    /// How many requests had this path (or path and query).
    pub fn hits_for(&self, path: &str) -> usize {
        self.shared
            .requests()
            .iter()
            .filter(|r| r.path() == path || r.uri == path)
            .count()
    }

    /// How many requests the health endpoint answered.
    pub fn health_hits(&self) -> usize {
        self.shared.health_hits.load(Ordering::SeqCst)
    }

    /// How many TCP connections were accepted (shows whether a client reuses connections).
    pub fn connections(&self) -> usize {
        self.shared.connections.load(Ordering::SeqCst)
    }

    /// Forgets the recorded requests.
    pub fn clear_requests(&self) {
        self.shared.requests().clear();
    }

    /// Makes the health endpoint answer `200` (true) or `503` (false).
    pub fn set_healthy(&self, healthy: bool) {
        self.shared.healthy.store(healthy, Ordering::SeqCst);
    }

    /// Delays every later response except health probes by `delay`, on top of route delays.
    pub fn set_delay(&self, delay: Duration) {
        *self.shared.delay.lock().expect("fixture delay") = delay;
    }

    /// Stops accepting, drops every connection, and returns once the port is released.
    pub async fn shutdown(self) {
        self.shared.tasks.shutdown().await;
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        self.shared.tasks.cancel();
    }
}

impl std::fmt::Debug for Fixture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fixture")
            .field("addr", &self.addr)
            .field("name", &self.shared.name)
            .finish_non_exhaustive()
    }
}

async fn accept_loop(shared: Arc<Shared>, listener: TcpListener) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                shared.connections.fetch_add(1, Ordering::SeqCst);
                let conn_shared = shared.clone();
                shared.tasks.spawn(serve_conn(conn_shared, stream));
            }
            // Out of file descriptors and the like: back off instead of spinning.
            Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
        }
    }
}

async fn serve_conn(shared: Arc<Shared>, stream: TcpStream) {
    let _ = stream.set_nodelay(true);
    let ctl = ConnCtl::new();
    let _gone = ctl.gone_guard();
    let io = TokioIo::new(HijackIo::new(stream, ctl.clone()));
    let svc = {
        let (shared, ctl) = (shared.clone(), ctl.clone());
        service_fn(move |req| handle(shared.clone(), ctl.clone(), req))
    };
    let builder = auto::Builder::new(TrackedExec(shared.tasks.clone()));
    let conn = builder.serve_connection_with_upgrades(io, svc);
    tokio::select! {
        _ = conn => {}
        _ = ctl.killed() => {}
    }
}

async fn handle(
    shared: Arc<Shared>,
    ctl: Arc<ConnCtl>,
    mut req: Request<Incoming>,
) -> Result<Response<RespBody>, Infallible> {
    let route = shared.route(req.uri().path()).cloned();
    let on_upgrade =
        matches!(route, Some(Route::UpgradeEcho)).then(|| hyper::upgrade::on(&mut req));
    let (parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let recorded = Recorded {
        method: parts.method.to_string(),
        uri: parts
            .uri
            .path_and_query()
            .map_or_else(|| parts.uri.path().to_owned(), |pq| pq.as_str().to_owned()),
        headers: parts
            .headers
            .iter()
            .map(|(n, v)| {
                let value = String::from_utf8_lossy(v.as_bytes()).into_owned();
                (n.as_str().to_owned(), value)
            })
            .collect(),
        body: body.to_vec(),
        version: format!("{:?}", parts.version),
    };

    if let Some(Route::Health) = route {
        shared.health_hits.fetch_add(1, Ordering::SeqCst);
        let reply = if shared.healthy.load(Ordering::SeqCst) {
            Reply::text(200, "ok")
        } else {
            Reply::text(503, "unhealthy")
        };
        return Ok(respond(&shared, reply));
    }

    shared.requests().push(recorded.clone());
    let global_delay = *shared.delay.lock().expect("fixture delay");
    if !global_delay.is_zero() {
        tokio::time::sleep(global_delay).await;
    }

    let response = match route {
        None => echo(&shared, &recorded),
        Some(Route::Echo { delay }) => {
            tokio::time::sleep(delay).await;
            echo(&shared, &recorded)
        }
        Some(Route::Reply(handler)) => {
            let reply = handler(&recorded);
            if !reply.delay.is_zero() {
                tokio::time::sleep(reply.delay).await;
            }
            respond(&shared, reply)
        }
        Some(Route::Health) => unreachable!("answered above"),
        Some(Route::Reset) => end_connection(&ctl, Ending::Reset).await,
        Some(Route::Garbage) => end_connection(&ctl, Ending::Garbage).await,
        Some(Route::Hang) => {
            ctl.gone().await;
            respond(&shared, Reply::status(504))
        }
        Some(Route::Stream { chunks, gap }) => {
            let frames = futures_util::stream::iter(chunks.into_iter().enumerate()).then(
                move |(i, chunk)| async move {
                    if i > 0 {
                        tokio::time::sleep(gap).await;
                    }
                    Ok::<_, Infallible>(Frame::data(chunk))
                },
            );
            let mut res = Response::new(StreamBody::new(frames).boxed_unsync());
            res.headers_mut().insert(
                http::header::CONTENT_TYPE,
                http::HeaderValue::from_static("application/octet-stream"),
            );
            name_response(&shared, res)
        }
        Some(Route::UpgradeEcho) => upgrade_echo(&shared, &recorded, parts.version, on_upgrade),
    };
    Ok(response)
}

/// Ends the connection without a response. The returned response is never sent: it only lets an
/// HTTP/2 stream task finish once the connection is gone.
async fn end_connection(ctl: &ConnCtl, ending: Ending) -> Response<RespBody> {
    ctl.end_with(ending);
    ctl.gone().await;
    Response::new(empty())
}

fn upgrade_echo(
    shared: &Shared,
    req: &Recorded,
    version: Version,
    on_upgrade: Option<hyper::upgrade::OnUpgrade>,
) -> Response<RespBody> {
    let wants_ws = req
        .header("upgrade")
        .is_some_and(|u| u.eq_ignore_ascii_case("websocket"));
    let (Some(key), Some(on_upgrade), true, Version::HTTP_11) = (
        req.header("sec-websocket-key"),
        on_upgrade,
        wants_ws,
        version,
    ) else {
        return respond(
            shared,
            Reply::text(400, "expected an HTTP/1.1 websocket upgrade"),
        );
    };
    shared.tasks.spawn(async move {
        let Ok(upgraded) = on_upgrade.await else {
            return;
        };
        let mut io = TokioIo::new(upgraded);
        let mut buf = vec![0u8; 16 * 1024];
        while let Ok(n @ 1..) = io.read(&mut buf).await {
            if io.write_all(&buf[..n]).await.is_err() || io.flush().await.is_err() {
                break;
            }
        }
    });
    let reply = Reply::status(101)
        .header("upgrade", "websocket")
        .header("connection", "Upgrade")
        .header("sec-websocket-accept", websocket_accept(key));
    respond(shared, reply)
}

fn echo(shared: &Shared, req: &Recorded) -> Response<RespBody> {
    let mut headers = Map::new();
    for (name, value) in &req.headers {
        match headers.get_mut(name) {
            Some(Value::String(joined)) => {
                joined.push_str(", ");
                joined.push_str(value);
            }
            _ => {
                headers.insert(name.clone(), Value::String(value.clone()));
            }
        }
    }
    let body = json!({
        "method": req.method,
        "uri": req.uri,
        "path": req.path(),
        "query": req.query(),
        "headers": headers,
        "body": req.text(),
        "fixture": shared.name,
    });
    respond(shared, Reply::json(200, body))
}

fn respond(shared: &Shared, reply: Reply) -> Response<RespBody> {
    let status = StatusCode::from_u16(reply.status)
        .unwrap_or_else(|e| panic!("fixture reply status {}: {e}", reply.status));
    let mut res = Response::new(Full::new(reply.body).boxed_unsync());
    *res.status_mut() = status;
    for (name, value) in &reply.headers {
        let name = http::HeaderName::from_bytes(name.as_bytes())
            .unwrap_or_else(|e| panic!("fixture reply header name {name:?}: {e}"));
        let value = http::HeaderValue::from_str(value)
            .unwrap_or_else(|e| panic!("fixture reply header value {value:?}: {e}"));
        res.headers_mut().append(name, value);
    }
    name_response(shared, res)
}

fn name_response(shared: &Shared, mut res: Response<RespBody>) -> Response<RespBody> {
    if let Some(name) = &shared.name {
        let value = http::HeaderValue::from_str(name).expect("fixture name is a header value");
        res.headers_mut().insert("x-fixture", value);
    }
    res
}

fn empty() -> RespBody {
    Full::new(Bytes::new()).boxed_unsync()
}

fn gzip(raw: &[u8]) -> Vec<u8> {
    use std::io::Write as _;
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(raw).expect("gzip into memory");
    enc.finish().expect("gzip into memory")
}
