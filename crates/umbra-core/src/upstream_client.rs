//! Clients for upstream servers that are not plain `http://` (data plane and health checks):
//! `https://` over rustls (ring provider; the system's roots or a service's private CA;
//! HTTP/2 or HTTP/1.1 as ALPN settles) and `h2c://` (HTTP/2 with prior knowledge), both on
//! hyper-util's pooled client. Plain `http://` never comes here: the proxy keeps its own
//! HTTP/1.1 client for it.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use http_body::Body;
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::{self, Client};
use hyper_util::rt::TokioExecutor;
use rustls::{ClientConfig, RootCertStore};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;

use crate::resolve::{connector, Connector};

/// A service's private CA (`ca = "/path/ca.pem"`): the file and the certificates it held
/// when the config was loaded.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct UpstreamCa {
    pub path: PathBuf,
    pub certs: Arc<[CertificateDer<'static>]>,
}

impl UpstreamCa {
    /// Reads a PEM file of CA certificates; the message names the file and what is wrong.
    pub fn load(path: &Path) -> Result<UpstreamCa, String> {
        let shown = path.display();
        let pem = std::fs::read(path).map_err(|e| format!("cannot read `{shown}`: {e}"))?;
        let certs = CertificateDer::pem_slice_iter(&pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("`{shown}` is not a PEM certificate file: {e}"))?;
        if certs.is_empty() {
            return Err(format!(
                "`{shown}` holds no certificate (expected `-----BEGIN CERTIFICATE-----`)"
            ));
        }
        let mut roots = RootCertStore::empty();
        for cert in &certs {
            roots
                .add(cert.clone())
                .map_err(|e| format!("`{shown}`: a certificate is not usable as a CA: {e}"))?;
        }
        Ok(UpstreamCa {
            path: path.to_path_buf(),
            certs: certs.into(),
        })
    }
}

/// The system's trust roots, read once; where the system has none (umbra's `FROM scratch`
/// image), Mozilla's, as webpki-roots ships them.
fn system_roots() -> &'static RootCertStore {
    static ROOTS: OnceLock<RootCertStore> = OnceLock::new();
    ROOTS.get_or_init(|| {
        let found = rustls_native_certs::load_native_certs();
        let mut roots = RootCertStore::empty();
        let (added, _) = roots.add_parsable_certificates(found.certs);
        if added == 0 {
            tracing::info!(
                "no system CA certificates; https:// upstreams are checked against Mozilla's roots (webpki-roots)"
            );
            roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        } else {
            for e in &found.errors {
                tracing::warn!(error = %e, "reading the system's CA certificates");
            }
        }
        roots
    })
}

/// The rustls client config for `ca` (the system's roots when None), made once per CA and
/// shared: TLS 1.2 and 1.3 on the ring provider. ALPN is set by the connector.
pub fn tls_config(ca: Option<&UpstreamCa>) -> Arc<ClientConfig> {
    type Configs = Mutex<HashMap<Option<UpstreamCa>, Arc<ClientConfig>>>;
    static CONFIGS: OnceLock<Configs> = OnceLock::new();
    let mut configs = CONFIGS
        .get_or_init(Default::default)
        .lock()
        .expect("tls configs lock");
    if let Some(c) = configs.get(&ca.cloned()) {
        return c.clone();
    }
    let roots = match ca {
        None => system_roots().clone(),
        Some(ca) => {
            let mut roots = RootCertStore::empty();
            // Checked when the config was loaded (`UpstreamCa::load`).
            roots.add_parsable_certificates(ca.certs.iter().cloned());
            roots
        }
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("ring supports the default TLS versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    let config = Arc::new(config);
    configs.insert(ca.cloned(), config.clone());
    config
}

/// A pooled client for one kind of non-plain upstream.
pub enum UpstreamClient<B> {
    /// `https://`: HTTP/2 when the server offers it by ALPN, else HTTP/1.1.
    Https(Client<HttpsConnector<Connector>, B>),
    /// `h2c://`: HTTP/2 with prior knowledge over TCP.
    H2c(Client<Connector, B>),
}

impl<B> UpstreamClient<B>
where
    B: Body + Send + Unpin + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    /// The client for `scheme` (`https` or `h2c`; None for any other).
    pub fn new(
        scheme: &str,
        ca: Option<&UpstreamCa>,
        connect_timeout: Duration,
    ) -> Option<UpstreamClient<B>> {
        let mut tcp = connector(connect_timeout);
        tcp.enforce_http(false);
        let mut builder = Client::builder(TokioExecutor::new());
        builder.pool_idle_timeout(Duration::from_secs(60));
        match scheme {
            "https" => {
                let tls = HttpsConnectorBuilder::new()
                    .with_tls_config((*tls_config(ca)).clone())
                    .https_only()
                    .enable_all_versions()
                    .wrap_connector(tcp);
                Some(UpstreamClient::Https(builder.build(tls)))
            }
            "h2c" => Some(UpstreamClient::H2c(builder.http2_only(true).build(tcp))),
            _ => None,
        }
    }

    /// The URI scheme requests through this client carry (`h2c` is `http` on the wire).
    pub fn uri_scheme(&self) -> &'static str {
        match self {
            UpstreamClient::Https(_) => "https",
            UpstreamClient::H2c(_) => "http",
        }
    }

    /// Sends `req`, whose URI is absolute (see `uri_scheme`).
    pub fn request(&self, req: http::Request<B>) -> legacy::ResponseFuture {
        match self {
            UpstreamClient::Https(c) => c.request(req),
            UpstreamClient::H2c(c) => c.request(req),
        }
    }
}

/// The TLS failure in an error's chain, if any (rustls's error travels inside `io::Error`s,
/// whose `source` skips the error they carry).
pub fn tls_cause<'e>(e: &'e (dyn std::error::Error + 'static)) -> Option<&'e rustls::Error> {
    let mut next = Some(e);
    while let Some(err) = next {
        if let Some(t) = err.downcast_ref::<rustls::Error>() {
            return Some(t);
        }
        if let Some(inner) = err
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            if let Some(t) = tls_cause(inner) {
                return Some(t);
            }
        }
        next = err.source();
    }
    None
}

/// An error with its causes, `a: b: c`, for logs and shadow errors (hyper-util's own text is
/// only "client error (Connect)").
pub fn describe(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut next = e.source();
    while let Some(err) = next {
        let text = err.to_string();
        if !out.ends_with(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        next = err.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(name: &str, text: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("umbra-ca-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn a_ca_file_that_is_missing_empty_or_not_pem_is_named() {
        let missing = UpstreamCa::load(Path::new("/no/such/ca.pem")).unwrap_err();
        assert!(
            missing.contains("cannot read `/no/such/ca.pem`"),
            "{missing}"
        );
        let empty = UpstreamCa::load(&temp("empty.pem", "not a certificate\n")).unwrap_err();
        assert!(empty.contains("holds no certificate"), "{empty}");
        let bad = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        let bad = UpstreamCa::load(&temp("bad.pem", bad)).unwrap_err();
        assert!(bad.contains("not usable as a CA"), "{bad}");
    }

    #[test]
    fn there_are_always_roots_for_https_without_a_ca() {
        assert!(!system_roots().is_empty());
    }

    #[test]
    fn configs_are_shared_per_ca() {
        assert!(Arc::ptr_eq(&tls_config(None), &tls_config(None)));
    }

    #[test]
    fn the_tls_cause_is_found_inside_io_errors() {
        let tls = rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer);
        let io = std::io::Error::new(std::io::ErrorKind::InvalidData, tls);
        let outer = std::io::Error::other(io);
        assert!(matches!(
            tls_cause(&outer),
            Some(rustls::Error::InvalidCertificate(_))
        ));
        assert!(
            describe(&outer).contains("UnknownIssuer"),
            "{}",
            describe(&outer)
        );
    }
}
