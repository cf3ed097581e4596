//! Small HTTP clients for tests (test side): one-shot requests through hyper-util's legacy client,
//! raw bytes over TCP for malformed-request tests, and [`KeepAlive`] for several requests over one
//! connection.
//!
//! Every call is bounded: one-shot and keep-alive requests by [`CLIENT_TIMEOUT`], [`raw_http`] by
//! two seconds, so a proxy that hangs fails the test instead of stalling it.

use std::error::Error as _;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode, Uri, Version};
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::Value;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;

/// Upper bound on one request and its whole response body.
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long [`raw_http`] waits for the peer to close.
const RAW_TIMEOUT: Duration = Duration::from_secs(2);

/// A response read to the end.
#[derive(Debug, Clone)]
pub struct TestResponse {
    /// Status; compares with `u16` too (`res.status == 200`).
    pub status: StatusCode,
    /// HTTP version of the response.
    pub version: Version,
    /// Response headers.
    pub headers: HeaderMap,
    /// The whole body.
    pub body: Bytes,
}

impl TestResponse {
    /// The body as text (lossy UTF-8).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body parsed as JSON; panics with the body if it is not JSON.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "response body is not JSON ({e}); status {}, body {:?}",
                self.status,
                self.text()
            )
        })
    }

    /// The first value of a header, if it is present and visible ASCII.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    async fn read(res: Response<Incoming>) -> Result<TestResponse, ClientError> {
        let (parts, body) = res.into_parts();
        let body = body.collect().await.map_err(ClientError::Body)?.to_bytes();
        Ok(TestResponse {
            status: parts.status,
            version: parts.version,
            headers: parts.headers,
            body,
        })
    }
}

/// Why a test request failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The URL did not parse.
    #[error("invalid URL {url:?}")]
    InvalidUrl {
        url: String,
        #[source]
        source: http::uri::InvalidUri,
    },
    /// The legacy client could not connect or send, or got no response.
    #[error("request failed")]
    Request(#[source] hyper_util::client::legacy::Error),
    /// TCP connect failed.
    #[error("connect to {addr} failed")]
    Connect {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    /// HTTP handshake or exchange on a [`KeepAlive`] connection failed.
    #[error("HTTP exchange failed")]
    Http(#[source] hyper::Error),
    /// The response body broke off.
    #[error("reading the response body failed")]
    Body(#[source] hyper::Error),
    /// No complete response within the bound.
    #[error("no complete response within {0:?}")]
    Timeout(Duration),
}

/// `GET url`; panics if no response arrives (an error status is still a response).
pub async fn get(url: impl AsRef<str>) -> TestResponse {
    let url = url.as_ref();
    try_get(url)
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {}", chain(&e)))
}

/// `GET url`, returning transport failures instead of panicking.
pub async fn try_get(url: impl AsRef<str>) -> Result<TestResponse, ClientError> {
    let url = url.as_ref();
    let uri: Uri = url.parse().map_err(|source| ClientError::InvalidUrl {
        url: url.to_owned(),
        source,
    })?;
    let req = Request::get(uri)
        .body(Full::new(Bytes::new()))
        .expect("a GET with a parsed URI is a valid request");
    try_send(req).await
}

/// `POST url` with a JSON body and `content-type: application/json`; panics if no response arrives.
pub async fn post_json(url: impl AsRef<str>, value: &Value) -> TestResponse {
    let url = url.as_ref();
    let req = Request::post(url)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(
            serde_json::to_vec(value).expect("serialize JSON value"),
        )))
        .unwrap_or_else(|e| panic!("POST {url}: invalid request: {e}"));
    send(req).await
}

/// Sends a request with an absolute URI over a fresh HTTP/1.1 connection; panics if no response
/// arrives.
pub async fn send(req: Request<Full<Bytes>>) -> TestResponse {
    let what = format!("{} {}", req.method(), req.uri());
    try_send(req)
        .await
        .unwrap_or_else(|e| panic!("{what}: {}", chain(&e)))
}

/// Like [`send`], returning transport failures instead of panicking.
pub async fn try_send(req: Request<Full<Bytes>>) -> Result<TestResponse, ClientError> {
    // A client per call: tests each run their own runtime, and a pooled connection must not
    // outlive the runtime that drives it.
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    bounded(async move {
        let res = client.request(req).await.map_err(ClientError::Request)?;
        TestResponse::read(res).await
    })
    .await
}

/// Writes `bytes` to `addr` and returns everything read until the peer closes, or until two
/// seconds have passed. Panics if it cannot connect or write.
pub async fn raw_http(addr: SocketAddr, bytes: &[u8]) -> Vec<u8> {
    let mut stream = TcpStream::connect(addr)
        .await
        .unwrap_or_else(|e| panic!("raw_http: connect {addr}: {e}"));
    stream
        .write_all(bytes)
        .await
        .unwrap_or_else(|e| panic!("raw_http: write to {addr}: {e}"));
    let mut reply = Vec::new();
    let mut buf = [0u8; 8192];
    let _ = tokio::time::timeout(RAW_TIMEOUT, async {
        // A reset after some bytes still leaves those bytes in `reply`.
        while let Ok(n @ 1..) = stream.read(&mut buf).await {
            reply.extend_from_slice(&buf[..n]);
        }
    })
    .await;
    reply
}

enum Sender {
    H1(hyper::client::conn::http1::SendRequest<Full<Bytes>>),
    H2(hyper::client::conn::http2::SendRequest<Full<Bytes>>),
}

/// One client connection carrying several requests in turn: HTTP/1.1 keep-alive, or h2c with
/// prior knowledge. The connection closes when this is dropped.
pub struct KeepAlive {
    addr: SocketAddr,
    sender: Sender,
    driver: JoinHandle<()>,
}

impl KeepAlive {
    /// Opens an HTTP/1.1 connection; panics on failure.
    pub async fn connect(addr: SocketAddr) -> KeepAlive {
        KeepAlive::try_connect(addr)
            .await
            .unwrap_or_else(|e| panic!("KeepAlive::connect {addr}: {}", chain(&e)))
    }

    /// Opens an HTTP/1.1 connection.
    pub async fn try_connect(addr: SocketAddr) -> Result<KeepAlive, ClientError> {
        let io = tcp(addr).await?;
        let (sender, conn) = hyper::client::conn::http1::handshake(io)
            .await
            .map_err(ClientError::Http)?;
        let driver = tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(KeepAlive {
            addr,
            sender: Sender::H1(sender),
            driver,
        })
    }

    /// Opens an HTTP/2 connection without TLS (h2c, prior knowledge); panics on failure.
    pub async fn connect_h2c(addr: SocketAddr) -> KeepAlive {
        let connect = async {
            let io = tcp(addr).await?;
            hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
                .await
                .map_err(ClientError::Http)
        };
        let (sender, conn) = connect
            .await
            .unwrap_or_else(|e| panic!("KeepAlive::connect_h2c {addr}: {}", chain(&e)));
        let driver = tokio::spawn(async move {
            let _ = conn.await;
        });
        KeepAlive {
            addr,
            sender: Sender::H2(sender),
            driver,
        }
    }

    /// The server address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// True once the server (or an error) closed the connection.
    pub fn is_closed(&self) -> bool {
        match &self.sender {
            Sender::H1(s) => s.is_closed(),
            Sender::H2(s) => s.is_closed(),
        }
    }

    /// `GET path` (path and query) on this connection; panics if no response arrives.
    pub async fn get(&mut self, path: &str) -> TestResponse {
        let req = Request::get(path)
            .body(Full::new(Bytes::new()))
            .unwrap_or_else(|e| panic!("GET {path}: invalid request: {e}"));
        self.send(req).await
    }

    /// `GET` each path in turn on this connection, each after the previous response ended.
    pub async fn get_all(&mut self, paths: &[&str]) -> Vec<TestResponse> {
        let mut responses = Vec::with_capacity(paths.len());
        for path in paths {
            responses.push(self.get(path).await);
        }
        responses
    }

    /// Sends a request on this connection; panics if no response arrives.
    pub async fn send(&mut self, req: Request<Full<Bytes>>) -> TestResponse {
        let what = format!("{} {}", req.method(), req.uri());
        self.try_send(req)
            .await
            .unwrap_or_else(|e| panic!("KeepAlive {what}: {}", chain(&e)))
    }

    /// Sends a request on this connection. The URI may be a bare path: HTTP/1.1 gets a `Host`
    /// header and HTTP/2 an absolute URI for the connected address.
    pub async fn try_send(
        &mut self,
        mut req: Request<Full<Bytes>>,
    ) -> Result<TestResponse, ClientError> {
        let addr = self.addr;
        match &mut self.sender {
            Sender::H1(sender) => {
                if !req.headers().contains_key(http::header::HOST) {
                    let host = http::HeaderValue::from_str(&addr.to_string())
                        .expect("a socket address is a header value");
                    req.headers_mut().insert(http::header::HOST, host);
                }
                bounded(async {
                    sender.ready().await.map_err(ClientError::Http)?;
                    let res = sender.send_request(req).await.map_err(ClientError::Http)?;
                    TestResponse::read(res).await
                })
                .await
            }
            Sender::H2(sender) => {
                if req.uri().scheme().is_none() {
                    let pq = req.uri().path_and_query().map_or("/", |pq| pq.as_str());
                    *req.uri_mut() = format!("http://{addr}{pq}")
                        .parse()
                        .expect("address and path form a URI");
                }
                bounded(async {
                    sender.ready().await.map_err(ClientError::Http)?;
                    let res = sender.send_request(req).await.map_err(ClientError::Http)?;
                    TestResponse::read(res).await
                })
                .await
            }
        }
    }
}

impl Drop for KeepAlive {
    fn drop(&mut self) {
        self.driver.abort();
    }
}

async fn tcp(addr: SocketAddr) -> Result<TokioIo<TcpStream>, ClientError> {
    let stream = TcpStream::connect(addr)
        .await
        .map_err(|source| ClientError::Connect { addr, source })?;
    let _ = stream.set_nodelay(true);
    Ok(TokioIo::new(stream))
}

async fn bounded<T>(
    fut: impl std::future::Future<Output = Result<T, ClientError>>,
) -> Result<T, ClientError> {
    tokio::time::timeout(CLIENT_TIMEOUT, fut)
        .await
        .unwrap_or(Err(ClientError::Timeout(CLIENT_TIMEOUT)))
}

/// An error and its causes on one line, for panic messages.
fn chain(err: &ClientError) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        out.push_str(": ");
        out.push_str(&cause.to_string());
        source = cause.source();
    }
    out
}
