//! Certificates: PEM files loaded into rustls' `CertifiedKey` (key checked against its
//! certificate), the names and lifetime each covers, and the SNI resolver that picks one per
//! handshake from the sets in force (files, ACME), swapped atomically on reload or renewal.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use umbra_core::config::{CertPair, ConfigError};

/// One usable certificate: the chain and key, and what it covers.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub key: Arc<CertifiedKey>,
    /// DNS names of the leaf (subjectAltName, else the common name), lowercase.
    pub names: Vec<String>,
    pub not_before: SystemTime,
    pub not_after: SystemTime,
}

impl Loaded {
    /// The moment two thirds of the certificate's life have passed: when it is renewed.
    pub fn renew_at(&self) -> SystemTime {
        let life = self
            .not_after
            .duration_since(self.not_before)
            .unwrap_or_default();
        self.not_before + life * 2 / 3
    }
}

/// The crypto provider umbra uses everywhere (ring: see the workspace manifest).
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Loads the `index`-th `[tls] certs` pair; errors name the key and the file.
pub fn load_pair(index: usize, pair: &CertPair) -> Result<Loaded, ConfigError> {
    let key_of = |what: &str| format!("tls.certs[{index}].{what}");
    let cert_pem = read(&pair.cert).map_err(|m| ConfigError::new(key_of("cert"), m))?;
    let key_pem = read(&pair.key).map_err(|m| ConfigError::new(key_of("key"), m))?;
    from_pem(&cert_pem, &key_pem).map_err(|(which, m)| {
        let (what, path) = match which {
            Part::Cert => ("cert", &pair.cert),
            Part::Key => ("key", &pair.key),
        };
        ConfigError::new(key_of(what), format!("{}: {m}", path.display()))
    })
}

fn read(path: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
}

/// Which file of a pair a problem is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    Cert,
    Key,
}

/// A chain and key from PEM text, the key checked against the leaf.
pub fn from_pem(cert_pem: &[u8], key_pem: &[u8]) -> Result<Loaded, (Part, String)> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<_, _>>()
        .map_err(|e| (Part::Cert, format!("not a PEM certificate chain ({e})")))?;
    if chain.is_empty() {
        return Err((Part::Cert, "holds no PEM certificate".into()));
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem)
        .map_err(|e| (Part::Key, format!("not a PEM private key ({e})")))?;
    let (names, not_before, not_after) = describe(&chain[0]).map_err(|m| (Part::Cert, m))?;
    let certified = CertifiedKey::from_der(chain, key, &provider()).map_err(|e| match e {
        rustls::Error::InconsistentKeys(_) => (
            Part::Key,
            "does not match the certificate (a different key pair)".to_string(),
        ),
        other => (Part::Key, format!("unusable private key ({other})")),
    })?;
    Ok(Loaded {
        key: Arc::new(certified),
        names,
        not_before,
        not_after,
    })
}

/// The DNS names and validity of a leaf certificate.
fn describe(der: &CertificateDer<'_>) -> Result<(Vec<String>, SystemTime, SystemTime), String> {
    use x509_parser::prelude::*;
    let (_, cert) = X509Certificate::from_der(der.as_ref())
        .map_err(|e| format!("not an X.509 certificate ({e})"))?;
    let mut names: Vec<String> = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for n in &san.value.general_names {
            if let GeneralName::DNSName(d) = n {
                names.push(d.trim_end_matches('.').to_ascii_lowercase());
            }
        }
    }
    if names.is_empty() {
        if let Some(cn) = cert.subject().iter_common_name().next() {
            if let Ok(cn) = cn.as_str() {
                names.push(cn.to_ascii_lowercase());
            }
        }
    }
    let at = |t: ASN1Time| UNIX_EPOCH + Duration::from_secs(t.timestamp().max(0) as u64);
    Ok((
        names,
        at(cert.validity().not_before),
        at(cert.validity().not_after),
    ))
}

/// Certificates by name, and the one for names none covers.
#[derive(Debug, Default)]
pub struct Table {
    names: HashMap<String, Arc<CertifiedKey>>,
    default: Option<Arc<CertifiedKey>>,
}

impl Table {
    /// The table of `certs`; for a name two certificates cover, the first wins, and the first
    /// certificate is the default.
    pub fn of<'a>(certs: impl IntoIterator<Item = &'a Loaded>) -> Table {
        let mut t = Table::default();
        for c in certs {
            t.default.get_or_insert_with(|| c.key.clone());
            for n in &c.names {
                t.names.entry(n.clone()).or_insert_with(|| c.key.clone());
            }
        }
        t
    }

    fn exact(&self, name: &str) -> Option<&Arc<CertifiedKey>> {
        self.names.get(name)
    }

    /// `*.example.com` for `a.example.com` (one label).
    fn wildcard(&self, name: &str) -> Option<&Arc<CertifiedKey>> {
        let (_, rest) = name.split_once('.')?;
        self.names.get(&format!("*.{rest}"))
    }
}

/// Picks the certificate for each handshake by SNI: the files' certificates first, then
/// ACME's, exact names before wildcards; a name none covers (or no SNI) gets the default
/// certificate (the first file's, else ACME's first); with none at all the handshake ends
/// with an alert.
#[derive(Debug, Default)]
pub struct Resolver {
    pub files: ArcSwap<Table>,
    pub acme: ArcSwap<Table>,
}

impl Resolver {
    /// The certificate for `name` (lowercase, no trailing dot) or the default.
    pub fn pick(&self, name: Option<&str>) -> Option<Arc<CertifiedKey>> {
        let (files, acme) = (self.files.load(), self.acme.load());
        if let Some(name) = name {
            let found = files
                .exact(name)
                .or_else(|| acme.exact(name))
                .or_else(|| files.wildcard(name))
                .or_else(|| acme.wildcard(name));
            if let Some(k) = found {
                return Some(k.clone());
            }
        }
        files.default.clone().or_else(|| acme.default.clone())
    }
}

impl ResolvesServerCert for Resolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let name = hello
            .server_name()
            .map(|n| n.trim_end_matches('.').to_ascii_lowercase());
        self.pick(name.as_deref())
    }
}
