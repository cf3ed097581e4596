//! The edge's test harness: a private PKI made with rcgen, umbra (plain proxy + HTTPS edge)
//! in-process on ephemeral ports, and a TLS client that reports the certificate it was served.

// Each test binary compiles this module on its own and uses a different part of it.
#![allow(dead_code)]

pub mod pebble;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use rustls::pki_types::{CertificateDer, ServerName};
use tokio_util::sync::CancellationToken;
use umbra_core::telemetry::Metrics;
use umbra_core::{Config, Runtime};
use umbra_proxy::{ComparisonSink, Proxy};

/// A directory of its own for one test.
pub fn tempdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("umbra-edge-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A private certificate authority.
pub struct Pki {
    ca: CertifiedIssuer<'static, KeyPair>,
}

impl Pki {
    pub fn new() -> Pki {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "umbra test CA");
        let ca = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        Pki { ca }
    }

    pub fn ca_pem(&self) -> String {
        self.ca.pem()
    }

    pub fn ca_der(&self) -> CertificateDer<'static> {
        self.ca.der().clone()
    }

    /// A leaf for `names` (DNS names or IP addresses): (certificate PEM, key PEM).
    pub fn leaf(&self, names: &[&str]) -> (String, String) {
        let params =
            CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())
                .unwrap();
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.ca).unwrap();
        (cert.pem(), key.serialize_pem())
    }

    /// Writes a leaf for `names` to `dir/stem.crt` and `dir/stem.key`.
    pub fn write_leaf(&self, dir: &Path, stem: &str, names: &[&str]) -> (PathBuf, PathBuf) {
        let (cert, key) = self.leaf(names);
        let (c, k) = (
            dir.join(format!("{stem}.crt")),
            dir.join(format!("{stem}.key")),
        );
        std::fs::write(&c, cert).unwrap();
        std::fs::write(&k, key).unwrap();
        (c, k)
    }
}

/// umbra with its HTTPS edge, stopped on drop.
pub struct Umbra {
    pub plain: SocketAddr,
    pub https: SocketAddr,
    pub edge: Option<umbra_edge::Edge>,
    pub runtime: Arc<Runtime>,
    pub shutdown: CancellationToken,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Umbra {
    fn drop(&mut self) {
        self.shutdown.cancel();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        if let Some(e) = self.edge.take() {
            e.join();
        }
    }
}

/// The proxy for `config_text` on a plain listener (`plain`, or an ephemeral port), its
/// runtime and the shutdown token, serving on its own thread.
pub fn start_plain(
    config_text: &str,
    plain: Option<std::net::TcpListener>,
) -> (
    Arc<Proxy>,
    SocketAddr,
    CancellationToken,
    std::thread::JoinHandle<()>,
) {
    let config = Config::parse(config_text, "test.toml", &|_| None).expect("a valid config");
    let (sink, _rx) = ComparisonSink::new(100);
    let (etx, _erx) = tokio::sync::mpsc::channel(100);
    let runtime = Runtime::new(config, Arc::new(Metrics::new()), etx);
    let proxy = Proxy::new(runtime, Arc::new(sink));
    let listeners = match plain {
        Some(l) => {
            l.set_nonblocking(true).unwrap();
            vec![l]
        }
        None => umbra_proxy::bind("127.0.0.1:0".parse().unwrap(), 1).unwrap(),
    };
    let addr = listeners[0].local_addr().unwrap();
    let shutdown = CancellationToken::new();
    let (p, s) = (proxy.clone(), shutdown.clone());
    let thread = std::thread::spawn(move || umbra_proxy::serve(listeners, p, s));
    (proxy, addr, shutdown, thread)
}

/// umbra for `config_text` (which has a `[tls]` section); call inside a tokio runtime.
pub fn start(config_text: &str) -> Umbra {
    start_on(config_text, None)
}

/// The same, its plain listener on `plain` when given.
pub fn start_on(config_text: &str, plain: Option<std::net::TcpListener>) -> Umbra {
    let (proxy, plain, shutdown, thread) = start_plain(config_text, plain);
    let tls = proxy.runtime.load().config.tls.clone().expect("[tls]");
    let edge = umbra_edge::Edge::start(&tls, proxy.clone(), shutdown.clone()).expect("edge");
    Umbra {
        plain,
        https: edge.addr,
        runtime: proxy.runtime.clone(),
        edge: Some(edge),
        shutdown,
        thread: Some(thread),
    }
}

/// A config: a service on `upstream`, one catch-all route, and `tls` appended.
pub fn config(upstream: &str, tls: &str) -> String {
    format!(
        "[proxy]\nlisten = \"127.0.0.1:0\"\nworkers = 1\n\n[services.api]\nservers = [\"{upstream}\"]\n\n\
         [[routes]]\nname = \"all\"\nrule = \"PathPrefix(`/`)\"\nservice = \"api\"\n\n{tls}"
    )
}

/// A TOML path string.
pub fn toml_path(p: &Path) -> String {
    p.display().to_string()
}

/// A TLS client that trusts `roots` (TLS 1.3 and 1.2).
pub fn client_config(roots: &[CertificateDer<'static>], alpn: &[&[u8]]) -> rustls::ClientConfig {
    client_config_versions(roots, alpn, rustls::DEFAULT_VERSIONS)
}

/// The same, offering only `versions`.
pub fn client_config_versions(
    roots: &[CertificateDer<'static>],
    alpn: &[&[u8]],
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> rustls::ClientConfig {
    let mut store = rustls::RootCertStore::empty();
    for r in roots {
        store.add(r.clone()).unwrap();
    }
    let mut c = rustls::ClientConfig::builder_with_provider(umbra_edge::certs::provider())
        .with_protocol_versions(versions)
        .unwrap()
        .with_root_certificates(store)
        .with_no_client_auth();
    c.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    c
}

/// One TLS connection with an HTTP/1.1 or HTTP/2 client on it (as ALPN chose).
pub struct TlsConn {
    pub cert: CertificateDer<'static>,
    pub alpn: Option<Vec<u8>>,
    pub version: Option<rustls::ProtocolVersion>,
    send: Sender,
}

enum Sender {
    H1(hyper::client::conn::http1::SendRequest<Full<Bytes>>),
    H2(hyper::client::conn::http2::SendRequest<Full<Bytes>>),
}

/// A reply: status, headers and body text.
pub struct Got {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: String,
}

impl TlsConn {
    /// Connects to `addr` asking for `sni`, trusting `roots`, offering `alpn`.
    pub async fn open(
        addr: SocketAddr,
        sni: &str,
        roots: &[CertificateDer<'static>],
        alpn: &[&[u8]],
    ) -> Result<TlsConn, String> {
        TlsConn::open_with(addr, sni, client_config(roots, alpn)).await
    }

    /// Connects with a client config of the caller's.
    pub async fn open_with(
        addr: SocketAddr,
        sni: &str,
        config: rustls::ClientConfig,
    ) -> Result<TlsConn, String> {
        let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
        let tcp = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|e| e.to_string())?;
        let name = ServerName::try_from(sni.to_string()).map_err(|e| e.to_string())?;
        let tls = connector
            .connect(name, tcp)
            .await
            .map_err(|e| e.to_string())?;
        let (_, session) = tls.get_ref();
        let cert = session.peer_certificates().ok_or("no certificate")?[0].clone();
        let alpn = session.alpn_protocol().map(|p| p.to_vec());
        let version = session.protocol_version();
        let io = TokioIo::new(tls);
        let send = if alpn.as_deref() == Some(b"h2") {
            let (s, conn) =
                hyper::client::conn::http2::handshake(hyper_util::rt::TokioExecutor::new(), io)
                    .await
                    .map_err(|e| e.to_string())?;
            tokio::spawn(conn);
            Sender::H2(s)
        } else {
            let (s, conn) = hyper::client::conn::http1::handshake(io)
                .await
                .map_err(|e| e.to_string())?;
            tokio::spawn(conn);
            Sender::H1(s)
        };
        Ok(TlsConn {
            cert,
            alpn,
            version,
            send,
        })
    }

    /// `GET path` with `Host: host`.
    pub async fn get(&mut self, host: &str, path: &str) -> Result<Got, String> {
        let (uri, with_host) = match &self.send {
            Sender::H1(_) => (path.to_string(), true),
            Sender::H2(_) => (format!("https://{host}{path}"), false),
        };
        let mut req = Request::get(uri);
        if with_host {
            req = req.header("host", host);
        }
        let req = req.body(Full::new(Bytes::new())).unwrap();
        let resp = match &mut self.send {
            Sender::H1(s) => match s.ready().await {
                Ok(()) => s.send_request(req).await,
                Err(e) => Err(e),
            },
            Sender::H2(s) => s.send_request(req).await,
        }
        .map_err(|e| e.to_string())?;
        let (parts, body) = resp.into_parts();
        let body = body.collect().await.map_err(|e| e.to_string())?.to_bytes();
        Ok(Got {
            status: parts.status.as_u16(),
            headers: parts.headers,
            body: String::from_utf8_lossy(&body).into_owned(),
        })
    }
}

/// The DNS names of a certificate.
pub fn names_of(cert: &CertificateDer<'_>) -> Vec<String> {
    use x509_parser::prelude::*;
    let (_, c) = X509Certificate::from_der(cert.as_ref()).unwrap();
    let mut out = Vec::new();
    if let Ok(Some(san)) = c.subject_alternative_name() {
        for n in &san.value.general_names {
            if let GeneralName::DNSName(d) = n {
                out.push(d.to_string());
            }
        }
    }
    out
}

/// Runs a command, returning its stdout (panics with stderr on failure).
pub fn run(cmd: &mut std::process::Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}
