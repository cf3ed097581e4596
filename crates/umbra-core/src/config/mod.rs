//! Config: TOML file → raw serde structs → validated, typed config (control plane).
//!
//! Two stages, as the house style asks: `raw` mirrors the file (unknown keys rejected), and
//! `validate` turns it into the types the data plane uses, collecting every problem with the key
//! path and, for files, `file:line:col`. Routes made through the admin API go through the same
//! `validate_route`, so a route is checked the same way wherever it comes from.

mod edge;
mod error;
mod expand;
pub mod raw;
mod tls;
pub mod units;
mod validate;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

pub use edge::{HeaderOps, HeaderRules, RateKey, RateLimitSpec};
pub use error::{line_col, ConfigError, ConfigErrors};
pub use expand::expand;
pub use raw::*;
pub use tls::{AcmeConfig, CertPair, TlsConfig};
pub use validate::{parse_server, valid_name, validate_route, validate_service, RouteContext};

use crate::rules::Rule;

/// Where a route or service was defined.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    File,
    Api,
    Docker,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::File => "file",
            Source::Api => "api",
            Source::Docker => "docker",
        }
    }
}

/// The validated config.
#[derive(Debug, Clone)]
pub struct Config {
    /// Path of the file it came from (or `<builtin>`).
    pub source: String,
    pub proxy: ProxyConfig,
    pub admin: AdminConfig,
    pub store: StoreConfig,
    pub log: LogConfig,
    pub docker: Option<DockerConfig>,
    /// `[tls]`: absent, umbra speaks plain HTTP only.
    pub tls: Option<TlsConfig>,
    pub services: BTreeMap<String, ServiceSpec>,
    pub routes: Vec<RouteSpec>,
}

#[derive(Debug, Clone)]
pub struct ProxyConfig {
    pub listen: SocketAddr,
    pub max_body: u64,
    pub timeout: Duration,
    pub max_header_size: usize,
    /// How long a client may take to send a request head, idle keep-alive time included.
    pub header_timeout: Duration,
    pub grace: Duration,
    /// Worker threads, each with its own runtime and listener (default: number of cores).
    pub workers: usize,
    /// Plain HTTP/1.1 requests are read and answered by umbra's own fast lane (default);
    /// false sends every connection to hyper's server.
    pub fast_lane: bool,
    /// How long a body may stall (client upload or upstream response) and an HTTP/2
    /// connection may stay idle before it is closed.
    pub idle_timeout: Duration,
    /// Client connections open at most per process (0: no limit); past it the oldest idle
    /// ones are closed first.
    pub max_connections: usize,
    /// Peers whose `X-Forwarded-*` fields are kept (appended to); from anyone else they are
    /// replaced.
    pub trusted_proxies: Vec<ipnet::IpNet>,
}

impl ProxyConfig {
    /// Whether a peer is a trusted proxy.
    pub fn trusts(&self, ip: std::net::IpAddr) -> bool {
        let ip = match ip {
            std::net::IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, std::net::IpAddr::V4),
            v4 => v4,
        };
        self.trusted_proxies.iter().any(|net| net.contains(&ip))
    }
}

#[derive(Debug, Clone)]
pub struct AdminConfig {
    pub listen: SocketAddr,
    pub token: Option<String>,
    /// Host names the admin answers to besides IP addresses and `localhost` (lowercase, no
    /// port): a request whose `Host` is any other name is refused (DNS rebinding defence).
    pub hosts: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct StoreConfig {
    pub url: String,
    pub keep: Duration,
    pub keep_same: f64,
    /// Capacity of the queue between the data plane and the store writer.
    pub queue: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Json,
    Pretty,
}

#[derive(Debug, Clone)]
pub struct LogConfig {
    pub format: Option<LogFormat>,
    pub level: String,
    pub access: bool,
    /// The access log's file (rotated), instead of stdout.
    pub file: Option<AccessLogFile>,
}

/// `[log] file`, `max_size`, `keep`: where the access log goes and when it is rotated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessLogFile {
    pub path: std::path::PathBuf,
    /// Bytes written before the file is rotated (`file` → `file.1` → … → `file.<keep>`).
    pub max_size: u64,
    /// Rotated files kept besides the current one.
    pub keep: u32,
}

#[derive(Debug, Clone)]
pub struct DockerConfig {
    pub enabled: bool,
    pub endpoint: Option<String>,
    pub network: Option<String>,
    pub exposed_by_default: bool,
    /// Only containers of this compose project are considered.
    pub project: Option<String>,
}

/// How a service spreads requests over its servers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Balance {
    RoundRobin,
    LeastRequests,
}

#[derive(Debug, Clone, PartialEq)]
pub struct HealthSpec {
    pub path: String,
    pub interval: Duration,
    pub timeout: Duration,
    pub rise: u32,
    pub fall: u32,
}

/// An upstream server address: scheme (`http`, `https` or `h2c`) + authority, e.g.
/// `http://127.0.0.1:9001`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ServerAddr {
    pub scheme: String,
    pub authority: String,
}

impl ServerAddr {
    pub fn url(&self) -> String {
        format!("{}://{}", self.scheme, self.authority)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct ServiceSpec {
    pub name: String,
    pub servers: Vec<ServerAddr>,
    pub health: Option<HealthSpec>,
    pub balance: Balance,
    pub source: Source,
    /// The private CA its `https://` servers are checked against (None: the system's roots).
    pub ca: Option<crate::upstream_client::UpstreamCa>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sticky {
    None,
    Cookie,
    Header(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct CanarySpec {
    pub service: String,
    /// 0.0 ..= 100.0
    pub weight: f64,
    pub sticky: Sticky,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ShadowSpec {
    pub service: String,
    pub percent: f64,
    pub methods: Vec<http::Method>,
    pub secondary: Option<String>,
    pub secondary_percent: f64,
    pub max_body: u64,
    pub timeout: Duration,
    pub max_in_flight: usize,
}

#[derive(Debug, Clone)]
pub struct CompareSpec {
    pub engine: umbra_diff::CompareConfig,
    pub thresholds: umbra_diff::Thresholds,
    pub max_body: usize,
    /// Type-aware noise for findings when there is no secondary (`compare.typed_noise`).
    pub typed_noise: bool,
}

/// A route's additions to the default redaction (headers, names, JSON paths); its
/// `apply` redacts a comparison.
pub type RedactSpec = umbra_diff::Redaction;

/// A validated route.
#[derive(Debug, Clone)]
pub struct RouteSpec {
    pub name: String,
    pub rule: Arc<Rule>,
    pub priority: i64,
    pub service: String,
    pub strip_prefix: Option<String>,
    /// The shadow candidates, in the order written (empty: no shadow).
    pub shadows: Vec<ShadowSpec>,
    pub canary: Option<CanarySpec>,
    pub compare: CompareSpec,
    pub endpoints: Arc<umbra_diff::EndpointGrouper>,
    pub redact: RedactSpec,
    /// Protocols a client may switch to (`Upgrade`), lowercase.
    pub upgrades: Vec<String>,
    pub underscores_in_headers: bool,
    /// Fields set and removed (`None`: the route changes none, and pays nothing).
    pub headers: Option<Arc<HeaderRules>>,
    pub rate_limit: Option<RateLimitSpec>,
    pub source: Source,
    /// The route as written (for the API, for overrides, for persisting).
    pub raw: RawRoute,
}

impl Config {
    /// Reads, expands and validates a config file.
    pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
        let name = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ConfigErrors {
            source_name: name.clone(),
            errors: vec![ConfigError::new(
                "",
                format!("cannot read config file: {e}"),
            )],
        })?;
        Config::parse(&text, &name, &|k| std::env::var(k).ok())
    }

    /// Parses and validates config text; `source_name` is used in error messages.
    pub fn parse(
        text: &str,
        source_name: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigErrors> {
        let fail = |errors: Vec<ConfigError>| ConfigErrors {
            source_name: source_name.to_string(),
            errors,
        };
        let raw: RawConfig = match toml::from_str(text) {
            Ok(raw) => raw,
            Err(e) => {
                let mut err = ConfigError::new("", e.message().to_string());
                err.position = e.span().map(|s| line_col(text, s.start));
                return Err(fail(vec![err]));
            }
        };
        validate::validate(raw, source_name, env)
            .map_err(|errors| positioned(text, source_name, errors))
    }

    /// The config used when there is no file: listen on the defaults, no routes.
    pub fn empty() -> Config {
        validate::validate(RawConfig::default(), "<builtin>", &|_| None)
            .expect("the empty config is valid")
    }
}

/// Problems found after validation (umbra-edge's certificate checks), placed at their keys'
/// `file:line:col` in the config file at `path` when it can be read.
pub fn file_errors(path: &Path, errors: Vec<ConfigError>) -> ConfigErrors {
    let name = path.display().to_string();
    match std::fs::read_to_string(path) {
        Ok(text) => positioned(&text, &name, errors),
        Err(_) => ConfigErrors {
            source_name: name,
            errors,
        },
    }
}

/// Gives each error the position of its key in the config text.
fn positioned(text: &str, source_name: &str, mut errors: Vec<ConfigError>) -> ConfigErrors {
    if let Ok(doc) = toml_edit::ImDocument::parse(text) {
        for err in &mut errors {
            if let Some(span) = error::locate(&doc, &err.key) {
                // A column inside the value (a rule's) is found in the file's text,
                // which may spread the value over lines and spell it with escapes.
                let at = err
                    .inner_column
                    .and_then(|c| error::string_char_offset(text, span.start, c))
                    .unwrap_or(span.start);
                err.position = Some(line_col(text, at));
            }
        }
    }
    ConfigErrors {
        source_name: source_name.to_string(),
        errors,
    }
}

/// True when `addr` is a loopback address (the admin listener needs no token there).
pub fn is_loopback(addr: &SocketAddr) -> bool {
    addr.ip().is_loopback()
}
