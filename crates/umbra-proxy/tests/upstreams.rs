//! Upstream servers over `https://` (a private CA made by rcgen; HTTP/1.1 or HTTP/2 by ALPN)
//! and `h2c://`: requests through umbra reach them, a refused certificate is a named 502, and
//! the health checker reaches them too. Fixture upstreams are hyper servers behind
//! tokio-rustls on ephemeral ports.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, SanType};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use umbra_core::Config;
use umbra_testkit::{eventually, get, send};

mod support;

/// A CA and a certificate it signed for `localhost` and 127.0.0.1.
struct Pki {
    ca_pem: String,
    cert: CertificateDer<'static>,
    key: PrivatePkcs8KeyDer<'static>,
}

fn pki(name: &str) -> Pki {
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, format!("{name} test CA"));
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    let leaf_key = KeyPair::generate().unwrap();
    let mut leaf = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    leaf.subject_alt_names
        .push(SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST)));
    let cert = leaf.signed_by(&leaf_key, &ca).unwrap();
    Pki {
        ca_pem: ca.pem(),
        cert: cert.der().clone(),
        key: PrivatePkcs8KeyDer::from(leaf_key.serialize_der()),
    }
}

/// The CA's PEM in a file of its own.
fn ca_file(pki: &Pki, name: &str) -> String {
    let dir = std::env::temp_dir().join(format!("umbra-upstreams-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("{name}.pem"));
    std::fs::write(&path, &pki.ca_pem).unwrap();
    path.display().to_string()
}

/// What a fixture upstream saw of each request: HTTP version, path, Host.
type Seen = Arc<Mutex<Vec<(http::Version, String, String)>>>;

/// A fixture upstream on 127.0.0.1: TLS with the given ALPN protocols (None: plain TCP, where
/// hyper's server speaks HTTP/1.1 or HTTP/2 with prior knowledge). Answers every request with
/// its HTTP version and the request body's length.
async fn upstream(tls: Option<(&Pki, &[&[u8]])>) -> (SocketAddr, Seen) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let acceptor = tls.map(|(pki, alpn)| {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(
                vec![pki.cert.clone()],
                PrivateKeyDer::Pkcs8(pki.key.clone_key()),
            )
            .unwrap();
        cfg.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        TlsAcceptor::from(Arc::new(cfg))
    });
    let seen: Seen = Arc::default();
    let log = seen.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (acceptor, log) = (acceptor.clone(), log.clone());
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req| answer(req, log.clone()));
                let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                let _ = match acceptor {
                    Some(a) => match a.accept(tcp).await {
                        Ok(s) => builder.serve_connection(TokioIo::new(s), svc).await,
                        Err(_) => return,
                    },
                    None => builder.serve_connection(TokioIo::new(tcp), svc).await,
                };
            });
        }
    });
    (addr, seen)
}

async fn answer(
    req: Request<Incoming>,
    log: Seen,
) -> Result<Response<Full<Bytes>>, std::convert::Infallible> {
    let version = req.version();
    let path = req.uri().path().to_string();
    let host = req
        .headers()
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or_else(|| req.uri().authority().map_or("", |a| a.as_str()))
        .to_string();
    let body = req.into_body().collect().await.map(|b| b.to_bytes());
    log.lock().unwrap().push((version, path.clone(), host));
    let text = serde_json::json!({
        "version": format!("{version:?}"),
        "path": path,
        "body_len": body.map_or(0, |b| b.len()),
    });
    Ok(Response::new(Full::new(Bytes::from(text.to_string()))))
}

fn config(services: &str) -> Config {
    let text = format!(
        "[proxy]\nlisten = \"127.0.0.1:0\"\ntimeout = \"5s\"\n[log]\naccess = false\n{services}\n\
         [[routes]]\nname = \"up\"\nrule = \"PathPrefix(`/`)\"\nservice = \"up\"\n"
    );
    Config::parse(&text, "test.toml", &|_| None).unwrap_or_else(|e| panic!("{e}"))
}

#[tokio::test]
async fn https_upstream_with_a_private_ca_over_http1_and_h2_by_alpn() {
    let pki = pki("private");
    let ca = ca_file(&pki, "private");
    for (alpn, want) in [
        (&[&b"http/1.1"[..]][..], "HTTP/1.1"),
        (&[&b"h2"[..], &b"http/1.1"[..]][..], "HTTP/2.0"),
    ] {
        let (addr, seen) = upstream(Some((&pki, alpn))).await;
        let u = support::start(config(&format!(
            "[services.up]\nservers = [\"https://localhost:{}\"]\nca = \"{ca}\"\n",
            addr.port()
        )));
        let res = get(format!("{}/hello", u.url)).await;
        assert_eq!(res.status, 200, "{}", res.text());
        assert_eq!(res.json()["version"], want, "ALPN {alpn:?}");
        assert_eq!(res.json()["path"], "/hello");
        // A POST's body goes along on either protocol.
        let req = Request::post(format!("{}/upload", u.url))
            .body(Full::new(Bytes::from(vec![b'x'; 100_000])))
            .unwrap();
        let res = send(req).await;
        assert_eq!(res.json()["body_len"], 100_000, "{}", res.text());
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 2, "{seen:?}");
        assert!(
            seen[0].2.starts_with("127.0.0.1:"),
            "the client's Host: {seen:?}"
        );
    }
}

#[tokio::test]
async fn a_certificate_from_another_ca_is_a_502_that_names_the_cause() {
    let served = pki("served");
    let other = ca_file(&pki("other"), "other");
    let (addr, seen) = upstream(Some((&served, &[b"h2", b"http/1.1"]))).await;
    let u = support::start(config(&format!(
        "[services.up]\nservers = [\"https://127.0.0.1:{}\"]\nca = \"{other}\"\n",
        addr.port()
    )));
    let res = get(format!("{}/x", u.url)).await;
    assert_eq!(res.status, 502, "{}", res.text());
    let body = res.json();
    assert_eq!(body["error"], "upstream_unavailable");
    let message = body["message"].as_str().unwrap();
    assert!(
        message.contains("TLS handshake failed: invalid peer certificate: UnknownIssuer"),
        "{message}"
    );
    assert!(
        seen.lock().unwrap().is_empty(),
        "nothing reached the server"
    );

    // Without `ca`, the system's roots: they do not know a test CA either.
    let u = support::start(config(&format!(
        "[services.up]\nservers = [\"https://127.0.0.1:{}\"]\n",
        addr.port()
    )));
    let res = get(format!("{}/x", u.url)).await;
    assert_eq!(res.status, 502, "{}", res.text());
    assert!(res.text().contains("UnknownIssuer"), "{}", res.text());
}

#[tokio::test]
async fn h2c_upstream_speaks_http2_with_prior_knowledge() {
    let (addr, seen) = upstream(None).await;
    let u = support::start(config(&format!(
        "[services.up]\nservers = [\"h2c://127.0.0.1:{}\"]\n",
        addr.port()
    )));
    for path in ["/a", "/b"] {
        let res = get(format!("{}{path}", u.url)).await;
        assert_eq!(res.status, 200, "{}", res.text());
        assert_eq!(res.json()["version"], "HTTP/2.0");
        assert_eq!(res.json()["path"], path);
    }
    let req = Request::put(format!("{}/put", u.url))
        .body(Full::new(Bytes::from_static(b"0123456789")))
        .unwrap();
    assert_eq!(send(req).await.json()["body_len"], 10);
    assert_eq!(seen.lock().unwrap().len(), 3);
}

/// The health checker probes `https://` (with the service's CA) and `h2c://` servers: the
/// probes arrive, and a server whose certificate is refused goes out of rotation.
#[tokio::test]
async fn health_checks_reach_https_and_h2c_servers() {
    let pki = pki("health");
    let ca = ca_file(&pki, "health");
    let wrong = ca_file(&self::pki("wrong"), "wrong");
    let (tls_addr, tls_seen) = upstream(Some((&pki, &[b"h2", b"http/1.1"]))).await;
    let (h2c_addr, h2c_seen) = upstream(None).await;
    let health = "health = { path = \"/healthz\", interval = \"50ms\", fall = 1, rise = 1 }";
    let u = support::start(config(&format!(
        "[services.up]\nservers = [\"https://localhost:{p1}\"]\nca = \"{ca}\"\n{health}\n\
         [services.h2c]\nservers = [\"h2c://127.0.0.1:{p2}\"]\n{health}\n\
         [services.refused]\nservers = [\"https://127.0.0.1:{p1}\"]\nca = \"{wrong}\"\n{health}\n",
        p1 = tls_addr.port(),
        p2 = h2c_addr.port(),
    )));
    let stop = CancellationToken::new();
    tokio::spawn(umbra_core::health::run(u.rt.clone(), stop.clone()));
    let probed = |seen: &Seen| {
        seen.lock()
            .unwrap()
            .iter()
            .filter(|(v, p, _)| p == "/healthz" && *v == http::Version::HTTP_2)
            .count()
    };
    eventually(Duration::from_secs(5), || async {
        probed(&tls_seen) >= 2 && probed(&h2c_seen) >= 2
    })
    .await;
    let snap = u.rt.snapshot();
    let refused = snap.service("refused").unwrap().servers[0].clone();
    eventually(Duration::from_secs(5), || async { !refused.is_healthy() }).await;
    assert!(snap.service("up").unwrap().servers[0].is_healthy());
    assert!(snap.service("h2c").unwrap().servers[0].is_healthy());
    stop.cancel();
}
