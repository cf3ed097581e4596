//! `[tls]` validated: the HTTPS listener's address, its certificate files and the ACME
//! settings. The files themselves (readable, a key that matches its certificate) are checked by
//! umbra-edge, which owns the crypto; here only their shape is.

use std::net::SocketAddr;
use std::path::PathBuf;

use super::raw::{RawAcme, RawTls};
use super::validate::host_name_problem;

/// Let's Encrypt's production directory: the ACME default, as in Caddy.
pub const LETS_ENCRYPT: &str = "https://acme-v02.api.letsencrypt.org/directory";

/// The HTTPS listener.
#[derive(Debug, Clone, PartialEq)]
pub struct TlsConfig {
    pub listen: SocketAddr,
    /// `[proxy].listen` answers 308 to `https://` (ACME challenges excepted).
    pub redirect_http: bool,
    /// Certificate files, in order: the first is the default for names no certificate covers.
    pub certs: Vec<CertPair>,
    pub acme: Option<AcmeConfig>,
    /// The ACME account key and the certificates obtained (files 0600).
    pub storage: PathBuf,
}

/// One certificate chain and its private key, both PEM files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertPair {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Automatic certificates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcmeConfig {
    pub email: Option<String>,
    pub directory: String,
    /// A private ACME CA's root (PEM), trusted for talking to `directory`.
    pub ca: Option<PathBuf>,
    /// Names asked for besides the routes' literal `Host(...)` values (lowercase).
    pub domains: Vec<String>,
}

/// Validates `[tls]`; problems go to `err(key, message)`.
pub(super) fn validate(raw: &RawTls, err: &mut dyn FnMut(String, String)) -> Option<TlsConfig> {
    let text = raw.listen.as_deref().unwrap_or("0.0.0.0:443");
    let listen = match text.parse() {
        Ok(a) => Some(a),
        Err(_) => {
            err(
                "tls.listen".into(),
                format!(
                    "`{text}` is not a listen address; expected `IP:PORT` such as `0.0.0.0:443`"
                ),
            );
            None
        }
    };
    let mut certs = Vec::with_capacity(raw.certs.len());
    for (i, pair) in raw.certs.iter().enumerate() {
        for (what, path) in [("cert", &pair.cert), ("key", &pair.key)] {
            if path.trim().is_empty() {
                err(
                    format!("tls.certs[{i}].{what}"),
                    "is empty; expected a PEM file path".into(),
                );
            }
        }
        certs.push(CertPair {
            cert: PathBuf::from(&pair.cert),
            key: PathBuf::from(&pair.key),
        });
    }
    let acme = raw.acme.as_ref().and_then(|a| acme(a, err));
    if certs.is_empty() && raw.acme.is_none() {
        err(
            "tls".into(),
            "needs certificates: `certs = [{ cert = \"FILE\", key = \"FILE\" }]` or `acme = { ... }`"
                .into(),
        );
    }
    let storage = raw.storage.as_deref().unwrap_or("umbra-tls");
    if storage.trim().is_empty() {
        err(
            "tls.storage".into(),
            "is empty; expected a directory".into(),
        );
    }
    Some(TlsConfig {
        listen: listen?,
        redirect_http: raw.redirect_http.unwrap_or(false),
        certs,
        acme,
        storage: PathBuf::from(storage),
    })
}

fn acme(raw: &RawAcme, err: &mut dyn FnMut(String, String)) -> Option<AcmeConfig> {
    let directory = raw.directory.as_deref().unwrap_or(LETS_ENCRYPT).to_string();
    let mut ok = true;
    if !(directory.starts_with("https://") || directory.starts_with("http://")) {
        err(
            "tls.acme.directory".into(),
            format!("`{directory}` is not an ACME directory URL; expected `https://...`"),
        );
        ok = false;
    }
    if let Some(email) = raw.email.as_deref() {
        if !email.contains('@') || email.contains(char::is_whitespace) {
            err(
                "tls.acme.email".into(),
                format!("`{email}` is not an email address"),
            );
            ok = false;
        }
    }
    let mut domains = Vec::with_capacity(raw.domains.len());
    for (i, d) in raw.domains.iter().enumerate() {
        let name = d.trim().trim_end_matches('.').to_ascii_lowercase();
        match host_name_problem(&name) {
            Some(problem) => {
                err(
                    format!("tls.acme.domains[{i}]"),
                    format!("`{d}` {problem}; expected a DNS name such as `api.example.com` (HTTP-01 issues no wildcards)"),
                );
                ok = false;
            }
            None => domains.push(name),
        }
    }
    ok.then(|| AcmeConfig {
        email: raw.email.clone().filter(|e| !e.is_empty()),
        directory,
        ca: raw.ca.as_deref().map(PathBuf::from),
        domains,
    })
}
