//! Raw config → typed config. Collects every problem (key path + message) instead of stopping
//! at the first, so `umbra check` shows them all at once.

use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use super::raw::*;
use super::units::{parse_duration, parse_size};
use super::*;

/// What a route may refer to while it is validated.
pub struct RouteContext<'a> {
    pub source: Source,
    /// Returns true when a service of that name exists. `None`: don't check references (e.g.
    /// services that Docker discovery may bring later).
    pub service_exists: Option<&'a dyn Fn(&str) -> bool>,
}

struct Errors(Vec<ConfigError>);

impl Errors {
    fn push(&mut self, key: impl Into<String>, msg: impl Into<String>) {
        self.0.push(ConfigError::new(key, msg));
    }
}

pub(super) fn validate(
    raw: RawConfig,
    source_name: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Config, Vec<ConfigError>> {
    let raw = expand_all(raw, env)?;
    let mut errs = Errors(Vec::new());

    let proxy = ProxyConfig {
        listen: addr(
            &mut errs,
            "proxy.listen",
            raw.proxy.listen.as_deref(),
            "0.0.0.0:8080",
        ),
        max_body: size(
            &mut errs,
            "proxy.max_body",
            raw.proxy.max_body.as_deref(),
            "10MiB",
        ),
        timeout: duration(
            &mut errs,
            "proxy.timeout",
            raw.proxy.timeout.as_deref(),
            "30s",
        ),
        max_header_size: size(
            &mut errs,
            "proxy.max_header_size",
            raw.proxy.max_header_size.as_deref(),
            "64KiB",
        ) as usize,
        header_timeout: duration(
            &mut errs,
            "proxy.header_timeout",
            raw.proxy.header_timeout.as_deref(),
            "30s",
        ),
        grace: duration(&mut errs, "proxy.grace", raw.proxy.grace.as_deref(), "10s"),
        workers: match raw.proxy.workers {
            Some(0) => {
                errs.push("proxy.workers", "must be at least 1");
                1
            }
            Some(n) => n as usize,
            None => std::thread::available_parallelism().map_or(1, |n| n.get()),
        },
        fast_lane: raw.proxy.fast_lane.unwrap_or(true),
        idle_timeout: duration(
            &mut errs,
            "proxy.idle_timeout",
            raw.proxy.idle_timeout.as_deref(),
            "60s",
        ),
        max_connections: raw.proxy.max_connections.unwrap_or(0) as usize,
        trusted_proxies: cidrs(&mut errs, raw.proxy.trusted_proxies.as_deref()),
    };
    if proxy.idle_timeout < Duration::from_millis(100) {
        errs.push("proxy.idle_timeout", "must be at least 100ms");
    }
    if proxy.max_header_size < 1024 {
        errs.push("proxy.max_header_size", "must be at least 1KiB");
    }
    if proxy.header_timeout < Duration::from_millis(100) {
        errs.push("proxy.header_timeout", "must be at least 100ms");
    }

    let token = raw.admin.token.filter(|t| !t.is_empty());
    let admin = AdminConfig {
        listen: addr(
            &mut errs,
            "admin.listen",
            raw.admin.listen.as_deref(),
            "127.0.0.1:8081",
        ),
        token,
        hosts: admin_hosts(&mut errs, raw.admin.hosts.unwrap_or_default()),
    };
    if !is_loopback(&admin.listen) && admin.token.is_none() {
        errs.push(
            "admin.token",
            format!(
                "admin.listen `{}` is not a loopback address, so a token is required \
                 (set admin.token or UMBRA_ADMIN_TOKEN)",
                admin.listen
            ),
        );
    }

    let store_url = raw.store.url.unwrap_or_else(|| "sqlite://umbra.db".into());
    if !(store_url.starts_with("sqlite:")
        || store_url.starts_with("postgres://")
        || store_url.starts_with("postgresql://"))
    {
        errs.push(
            "store.url",
            format!("`{store_url}` is not a store URL; expected `sqlite://FILE` or `postgres://user:pass@host/db`"),
        );
    }
    let keep_same = raw.store.keep_same.unwrap_or(0.05);
    if !(0.0..=1.0).contains(&keep_same) {
        errs.push(
            "store.keep_same",
            format!("{keep_same} is not a share between 0 and 1"),
        );
    }
    let store = StoreConfig {
        url: store_url,
        keep: duration(&mut errs, "store.keep", raw.store.keep.as_deref(), "7d"),
        keep_same,
        queue: raw.store.queue.unwrap_or(10_000).max(1) as usize,
    };

    let log_file = log_file(&mut errs, &raw.log);
    let log = LogConfig {
        format: match raw.log.format.as_deref() {
            None => None,
            Some("json") => Some(LogFormat::Json),
            Some("pretty") | Some("text") => Some(LogFormat::Pretty),
            Some(other) => {
                errs.push(
                    "log.format",
                    format!("`{other}` is not a log format; expected `json` or `pretty`"),
                );
                None
            }
        },
        level: raw.log.level.unwrap_or_else(|| "info".into()),
        access: raw.log.access.unwrap_or(true),
        file: log_file,
    };

    if let Some(ep) = raw.docker.as_ref().and_then(|d| d.endpoint.as_deref()) {
        let ok = ["unix://", "tcp://", "http://"]
            .iter()
            .any(|p| ep.starts_with(p) && ep.len() > p.len())
            || ep.starts_with('/');
        if !ok {
            errs.push(
                "docker.endpoint",
                format!("expected `unix:///path/to/docker.sock`, `tcp://host:port` or `http://host:port`, got `{ep}`"),
            );
        }
    }
    let docker = raw.docker.map(|d| DockerConfig {
        enabled: d.enabled.unwrap_or(true),
        endpoint: d.endpoint,
        network: d.network,
        exposed_by_default: d.exposed_by_default.unwrap_or(false),
        project: d.project.filter(|p| !p.is_empty()),
    });

    let tls = raw
        .tls
        .as_ref()
        .and_then(|t| super::tls::validate(t, &mut |k, m| errs.push(k, m)));

    let mut services = BTreeMap::new();
    for (name, rs) in &raw.services {
        match validate_service(name, rs, Source::File, &format!("services.{name}")) {
            Ok(s) => {
                services.insert(name.clone(), s);
            }
            Err(e) => errs.0.extend(e),
        }
    }

    let docker_on = docker.as_ref().is_some_and(|d| d.enabled);
    let exists = |n: &str| raw.services.contains_key(n);
    let ctx = RouteContext {
        source: Source::File,
        service_exists: if docker_on { None } else { Some(&exists) },
    };
    let mut routes = Vec::new();
    let mut seen = HashSet::new();
    for (i, rr) in raw.routes.iter().enumerate() {
        let key = format!("routes[{i}]");
        if !rr.name.is_empty() && !seen.insert(rr.name.clone()) {
            errs.push(
                format!("{key}.name"),
                format!("duplicate route name `{}`", rr.name),
            );
        }
        if let Some(r) = rr.rollout.as_ref().filter(|r| r.service == rr.service) {
            errs.push(
                format!("{key}.rollout.service"),
                format!(
                    "`{}` is already the route's service; a rollout needs a different candidate",
                    r.service
                ),
            );
        }
        match validate_route(rr, &key, &ctx) {
            Ok(r) => routes.push(r),
            Err(e) => errs.0.extend(e),
        }
    }

    if errs.0.is_empty() {
        Ok(Config {
            source: source_name.to_string(),
            proxy,
            admin,
            store,
            log,
            docker,
            tls,
            services,
            routes,
        })
    } else {
        Err(errs.0)
    }
}

/// Expands `${VAR}` in every string of the config, naming the key of any failure.
fn expand_all(
    raw: RawConfig,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<RawConfig, Vec<ConfigError>> {
    let value = toml::Value::try_from(&raw)
        .map_err(|e| vec![ConfigError::new("", format!("internal: {e}"))])?;
    let mut errors = Vec::new();
    let expanded = expand_value(value, String::new(), env, &mut errors);
    if !errors.is_empty() {
        return Err(errors);
    }
    expanded
        .try_into()
        .map_err(|e: toml::de::Error| vec![ConfigError::new("", e.message().to_string())])
}

fn expand_value(
    v: toml::Value,
    key: String,
    env: &dyn Fn(&str) -> Option<String>,
    errors: &mut Vec<ConfigError>,
) -> toml::Value {
    use toml::Value;
    match v {
        Value::String(s) => match expand(&s, env) {
            Ok(s) => Value::String(s),
            Err(e) => {
                errors.push(ConfigError::new(key, e));
                Value::String(s)
            }
        },
        Value::Array(a) => Value::Array(
            a.into_iter()
                .enumerate()
                .map(|(i, v)| expand_value(v, format!("{key}[{i}]"), env, errors))
                .collect(),
        ),
        Value::Table(t) => Value::Table(
            t.into_iter()
                .map(|(k, v)| {
                    let child = if key.is_empty() {
                        k.clone()
                    } else {
                        format!("{key}.{k}")
                    };
                    let v = expand_value(v, child, env, errors);
                    (k, v)
                })
                .collect(),
        ),
        other => other,
    }
}

fn addr(errs: &mut Errors, key: &str, v: Option<&str>, default: &str) -> SocketAddr {
    let text = v.unwrap_or(default);
    text.parse().unwrap_or_else(|_| {
        errs.push(
            key,
            format!("`{text}` is not a listen address; expected `IP:PORT` such as `0.0.0.0:8080`"),
        );
        default.parse().expect("default address parses")
    })
}

/// `admin.hosts`: DNS names as a browser puts them in `Host`, lowercased. A port, a scheme or
/// a wildcard is refused with what to write instead.
fn admin_hosts(errs: &mut Errors, hosts: Vec<String>) -> Vec<String> {
    let mut out = Vec::with_capacity(hosts.len());
    for (i, host) in hosts.into_iter().enumerate() {
        let name = host.trim().trim_end_matches('.').to_ascii_lowercase();
        match host_name_problem(&name) {
            Some(problem) => errs.push(
                format!("admin.hosts[{i}]"),
                format!("`{host}` {problem}; expected a host name such as `umbra.internal`"),
            ),
            None => out.push(name),
        }
    }
    out
}

/// Why `name` is not a DNS host name, if it is not.
pub(super) fn host_name_problem(name: &str) -> Option<&'static str> {
    if name.is_empty() {
        return Some("is empty");
    }
    if name.contains("://") || name.contains('/') {
        return Some("is a URL (list the host name only)");
    }
    if name.contains(':') {
        return Some("has a port (any port is accepted; list the host name only)");
    }
    if name.contains('*') {
        return Some("has a wildcard (list every name)");
    }
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    };
    if name.len() > 253 || !name.split('.').all(label_ok) {
        return Some("is not a host name (letters, digits, `-` and `.`)");
    }
    None
}

fn duration(errs: &mut Errors, key: &str, v: Option<&str>, default: &str) -> Duration {
    parse_duration(v.unwrap_or(default)).unwrap_or_else(|e| {
        errs.push(key, e);
        parse_duration(default).expect("default duration parses")
    })
}

fn size(errs: &mut Errors, key: &str, v: Option<&str>, default: &str) -> u64 {
    parse_size(v.unwrap_or(default)).unwrap_or_else(|e| {
        errs.push(key, e);
        parse_size(default).expect("default size parses")
    })
}

/// A route or service name: 1..=128 of ASCII letters, digits, `-`, `_` and `.` (also what
/// Docker labels may name).
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 128
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// Parses `http://host:port` (also `https://`, and `h2c://` for HTTP/2 without TLS) into a
/// server address; the port defaults to the scheme's (443 for https, else 80).
pub fn parse_server(text: &str) -> Result<ServerAddr, String> {
    let uri: http::Uri = text.parse().map_err(|e| {
        format!("`{text}` is not a URL ({e}); expected e.g. `http://127.0.0.1:9001`")
    })?;
    let scheme = uri
        .scheme_str()
        .ok_or_else(|| format!("`{text}` has no scheme; expected e.g. `http://127.0.0.1:9001`"))?
        .to_ascii_lowercase();
    let default_port = match scheme.as_str() {
        "http" | "h2c" => 80,
        "https" => 443,
        _ => {
            return Err(format!(
                "`{text}`: the scheme is `http`, `https` or `h2c` (got `{scheme}`)"
            ))
        }
    };
    let authority = uri
        .authority()
        .ok_or_else(|| format!("`{text}` has no host"))?
        .to_string();
    if uri.path() != "/" && !uri.path().is_empty() {
        return Err(format!(
            "`{text}`: a server URL takes no path (got `{}`)",
            uri.path()
        ));
    }
    let authority = if uri.port().is_some() {
        authority
    } else {
        format!("{authority}:{default_port}")
    };
    Ok(ServerAddr { scheme, authority })
}

/// Validates one service definition.
pub fn validate_service(
    name: &str,
    rs: &RawService,
    source: Source,
    key: &str,
) -> Result<ServiceSpec, Vec<ConfigError>> {
    let mut errs = Errors(Vec::new());
    // Keys under `key` (`services.api.servers[0]`), or bare (`servers[0]`) for the API.
    let k = |field: &str| {
        if key.is_empty() {
            field.to_string()
        } else {
            format!("{key}.{field}")
        }
    };
    if !valid_name(name) {
        errs.push(
            if key.is_empty() { "name" } else { key },
            format!("`{name}` is not a valid service name (letters, digits, `-`, `_`, `.`)"),
        );
    }
    if rs.servers.is_empty() && source == Source::File {
        errs.push(k("servers"), "needs at least one server URL");
    }
    let mut servers = Vec::new();
    for (i, s) in rs.servers.iter().enumerate() {
        match parse_server(s) {
            Ok(a) => servers.push(a),
            Err(e) => errs.push(k(&format!("servers[{i}]")), e),
        }
    }
    let health = rs.health.as_ref().map(|h| {
        if !h.path.starts_with('/') {
            errs.push(
                k("health.path"),
                format!("`{}` must start with `/`", h.path),
            );
        }
        let hs = HealthSpec {
            path: h.path.clone(),
            interval: duration(
                &mut errs,
                &k("health.interval"),
                h.interval.as_deref(),
                "5s",
            ),
            timeout: duration(&mut errs, &k("health.timeout"), h.timeout.as_deref(), "2s"),
            rise: h.rise.unwrap_or(2).max(1),
            fall: h.fall.unwrap_or(3).max(1),
        };
        if hs.interval < Duration::from_millis(50) {
            errs.push(k("health.interval"), "must be at least 50ms");
        }
        hs
    });
    let balance = match rs.balance.as_deref() {
        None | Some("round_robin") => Balance::RoundRobin,
        Some("least_requests") => Balance::LeastRequests,
        Some(other) => {
            errs.push(
                k("balance"),
                format!("`{other}` is not a balancing policy; expected `round_robin` or `least_requests`"),
            );
            Balance::RoundRobin
        }
    };
    let ca = service_ca(&mut errs, key, rs.ca.as_deref(), &servers);
    if errs.0.is_empty() {
        Ok(ServiceSpec {
            name: name.to_string(),
            servers,
            health,
            balance,
            source,
            ca,
        })
    } else {
        Err(errs.0)
    }
}

/// A service's `ca`: a readable PEM file of CA certificates, for a service whose servers are
/// all `https://` (a CA means nothing to the others).
fn service_ca(
    errs: &mut Errors,
    key: &str,
    raw: Option<&str>,
    servers: &[ServerAddr],
) -> Option<crate::upstream_client::UpstreamCa> {
    let path = raw?;
    if let Some(other) = servers.iter().find(|s| s.scheme != "https") {
        errs.push(
            format!("{key}.ca"),
            format!(
                "a CA applies to `https://` servers only, and `{}` is not one",
                other.url()
            ),
        );
        return None;
    }
    match crate::upstream_client::UpstreamCa::load(std::path::Path::new(path)) {
        Ok(ca) => Some(ca),
        Err(e) => {
            errs.push(format!("{key}.ca"), e);
            None
        }
    }
}

/// `[log] file`, `max_size`, `keep`; the size and count only with a file.
fn log_file(errs: &mut Errors, raw: &RawLog) -> Option<AccessLogFile> {
    let Some(path) = raw.file.as_deref() else {
        if raw.max_size.is_some() || raw.keep.is_some() {
            errs.push(
                "log.file",
                "`max_size` and `keep` rotate the access-log file: set `file` too",
            );
        }
        return None;
    };
    if path.is_empty() || path.ends_with('/') {
        errs.push("log.file", format!("`{path}` is not a file path"));
    }
    let max_size = size(errs, "log.max_size", raw.max_size.as_deref(), "10MiB");
    if max_size < 1024 {
        errs.push("log.max_size", "must be at least 1KiB");
    }
    let keep = raw.keep.unwrap_or(3);
    if keep > 100 {
        errs.push("log.keep", format!("{keep} files is more than 100"));
    }
    Some(AccessLogFile {
        path: path.into(),
        max_size,
        keep,
    })
}

/// `proxy.trusted_proxies`: CIDRs (`10.0.0.0/8`) or single addresses.
fn cidrs(errs: &mut Errors, raw: Option<&[String]>) -> Vec<ipnet::IpNet> {
    let mut out = Vec::new();
    for (i, text) in raw.unwrap_or_default().iter().enumerate() {
        let parsed = text
            .parse::<ipnet::IpNet>()
            .or_else(|_| text.parse::<std::net::IpAddr>().map(ipnet::IpNet::from));
        match parsed {
            Ok(net) => out.push(net.trunc()),
            Err(_) => errs.push(
                format!("proxy.trusted_proxies[{i}]"),
                format!("`{text}` is not an IP address or CIDR (e.g. `10.0.0.0/8`)"),
            ),
        }
    }
    out
}

/// A route's `upgrades`: protocol tokens (RFC 9110 §7.8), lowercase; `h2c` is refused (an
/// h2c tunnel would skip routing, logging and `X-Forwarded-For`).
fn upgrades(errs: &mut Errors, key: &str, raw: Option<&[String]>) -> Vec<String> {
    let Some(raw) = raw else {
        return vec!["websocket".to_string()];
    };
    let mut out = Vec::new();
    for (i, p) in raw.iter().enumerate() {
        let p = p.to_ascii_lowercase();
        let token = !p.is_empty()
            && p.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~/".contains(&b));
        if !token {
            errs.push(
                format!("{key}[{i}]"),
                format!("`{p}` is not a protocol name"),
            );
        } else if p == "h2c" || p.starts_with("h2c/") {
            errs.push(
                format!("{key}[{i}]"),
                "h2c is never upgraded to: speak HTTP/2 to umbra directly (prior knowledge)",
            );
        } else {
            out.push(p);
        }
    }
    out
}

/// Validates one route; `key` prefixes error keys (`routes[3]` for files, empty for the API).
pub fn validate_route(
    rr: &RawRoute,
    key: &str,
    ctx: &RouteContext<'_>,
) -> Result<RouteSpec, Vec<ConfigError>> {
    let k = |field: &str| {
        if key.is_empty() {
            field.to_string()
        } else {
            format!("{key}.{field}")
        }
    };
    let mut errs = Errors(Vec::new());
    if !valid_name(&rr.name) {
        errs.push(
            k("name"),
            if rr.name.is_empty() {
                "is required".to_string()
            } else {
                format!(
                    "`{}` is not a valid route name (letters, digits, `-`, `_`, `.`)",
                    rr.name
                )
            },
        );
    }
    let rule = match Rule::parse(&rr.rule) {
        Ok(r) => Some(r),
        Err(e) => {
            errs.0.push(
                ConfigError::new(
                    k("rule"),
                    format!("invalid rule at column {}: {}", e.column, e.message),
                )
                .at_column(e.column),
            );
            None
        }
    };
    let check_service = |errs: &mut Errors, field: &str, name: &str| {
        if name.is_empty() {
            errs.push(k(field), "is required");
        } else if let Some(exists) = ctx.service_exists {
            if !exists(name) {
                errs.push(k(field), format!("unknown service `{name}`"));
            }
        }
    };
    check_service(&mut errs, "service", &rr.service);

    if let Some(p) = &rr.strip_prefix {
        if !p.starts_with('/') || p.len() < 2 {
            errs.push(
                k("strip_prefix"),
                format!("`{p}` must start with `/` and not be `/` alone"),
            );
        }
    }

    let upgrades = upgrades(&mut errs, &k("upgrades"), rr.upgrades.as_deref());
    let headers = super::edge::header_rules(&mut errs.0, &k("headers"), rr.headers.as_ref());
    let rate_limit = super::edge::rate_limit(&mut errs.0, &k("rate_limit"), rr.rate_limit.as_ref());

    // The candidate may equal the service here: that is the route after a promotion. A new
    // rollout is refused for it where one starts (file load, API).
    if let Some(r) = &rr.rollout {
        let key = k("rollout");
        if let Err(e) = crate::rollout::validate_rollout(r, &key, None, ctx.service_exists) {
            errs.0.extend(e);
        }
    }

    let shadows = match &rr.shadow {
        None => Vec::new(),
        Some(list) => shadows(&mut errs, &k, &check_service, list),
    };

    let canary = rr.canary.as_ref().map(|c| {
        check_service(&mut errs, "canary.service", &c.service);
        if !(0.0..=100.0).contains(&c.weight) {
            errs.push(k("canary.weight"), format!("{} is not a weight between 0 and 100", c.weight));
        }
        let sticky = match c.sticky.as_deref() {
            None | Some("cookie") => Sticky::Cookie,
            Some("none") => Sticky::None,
            Some(h) if h.starts_with("header:") && h.len() > 7 => {
                let name = &h[7..];
                if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
                    errs.push(k("canary.sticky"), format!("`{name}` is not a header name"));
                }
                Sticky::Header(name.to_ascii_lowercase())
            }
            Some(other) => {
                errs.push(
                    k("canary.sticky"),
                    format!("`{other}` is not a stickiness; expected `cookie`, `header:<Name>` or `none`"),
                );
                Sticky::None
            }
        };
        CanarySpec {
            service: c.service.clone(),
            weight: c.weight,
            sticky,
        }
    });

    let compare = {
        let rc = rr.compare.clone().unwrap_or_default();
        let patterns = |errs: &mut Errors, field: &str, list: &[String]| {
            let mut out = Vec::new();
            for (i, p) in list.iter().enumerate() {
                match umbra_diff::PointerPattern::parse(p) {
                    Ok(p) => out.push(p),
                    Err(e) => errs.push(format!("{}[{i}]", k(field)), e.to_string()),
                }
            }
            out
        };
        let engine = umbra_diff::CompareConfig {
            ignore_headers: rc
                .ignore_headers
                .iter()
                .map(|h| h.to_ascii_lowercase())
                .collect(),
            ignore: patterns(&mut errs, "compare.ignore", &rc.ignore),
            unordered: patterns(&mut errs, "compare.unordered", &rc.unordered),
            numeric_tolerance: rc.numeric_tolerance,
            ..Default::default()
        };
        let mut thresholds = umbra_diff::Thresholds::default();
        if let Some(r) = rc.relative_threshold {
            if !(0.0..=1.0).contains(&r) {
                errs.push(
                    k("compare.relative_threshold"),
                    format!("{r} is not a share between 0 and 1"),
                );
            }
            thresholds.relative = r;
        }
        if let Some(a) = rc.absolute_threshold {
            if !(0.0..=1.0).contains(&a) {
                errs.push(
                    k("compare.absolute_threshold"),
                    format!("{a} is not a share between 0 and 1"),
                );
            }
            thresholds.absolute = a;
        }
        CompareSpec {
            engine,
            thresholds,
            max_body: size(
                &mut errs,
                &k("compare.max_body"),
                rc.max_body.as_deref(),
                "1MiB",
            ) as usize,
            typed_noise: rc.typed_noise.unwrap_or(true),
        }
    };

    let endpoints = match umbra_diff::EndpointGrouper::new(rr.endpoints.clone().unwrap_or_default())
    {
        Ok(g) => g,
        Err(e) => {
            errs.push(k("endpoints"), e.to_string());
            umbra_diff::EndpointGrouper::default()
        }
    };

    let redact = {
        let rd = rr.redact.clone().unwrap_or_default();
        let mut paths = Vec::new();
        for (i, p) in rd.paths.iter().enumerate() {
            match umbra_diff::PointerPattern::parse(p) {
                Ok(p) => paths.push(p),
                Err(e) => errs.push(format!("{}[{i}]", k("redact.paths")), e.to_string()),
            }
        }
        let mut names = Vec::new();
        for (i, n) in rd.names.iter().enumerate() {
            let squashed = umbra_diff::squash_name(n);
            if squashed.bytes().any(|b| b.is_ascii_alphabetic()) {
                names.push(squashed);
            } else {
                errs.push(
                    format!("{}[{i}]", k("redact.names")),
                    format!(
                        "name {n:?} has no letters: names are matched by their letters and digits"
                    ),
                );
            }
        }
        RedactSpec {
            headers: rd.headers.iter().map(|h| h.to_ascii_lowercase()).collect(),
            names,
            paths,
        }
    };

    match (rule, errs.0.is_empty()) {
        (Some(rule), true) => {
            let priority = rr.priority.unwrap_or_else(|| rule.priority());
            Ok(RouteSpec {
                name: rr.name.clone(),
                rule: Arc::new(rule),
                priority,
                service: rr.service.clone(),
                strip_prefix: rr
                    .strip_prefix
                    .as_ref()
                    .map(|p| p.trim_end_matches('/').to_string()),
                shadows,
                canary,
                compare,
                endpoints: Arc::new(endpoints),
                redact,
                upgrades,
                underscores_in_headers: rr.underscores_in_headers.unwrap_or(false),
                headers: headers.map(Arc::new),
                rate_limit,
                source: ctx.source,
                raw: rr.clone(),
            })
        }
        _ => Err(errs.0),
    }
}

/// A route's shadow candidates (`shadow` as a table, or a list of them): keys are
/// `shadow.…` for a table and `shadow[i].…` in a list; a candidate named twice is refused.
fn shadows(
    errs: &mut Errors,
    k: &dyn Fn(&str) -> String,
    check_service: &dyn Fn(&mut Errors, &str, &str),
    list: &RawShadows,
) -> Vec<ShadowSpec> {
    let mut out: Vec<ShadowSpec> = Vec::new();
    for (i, s) in list.iter().enumerate() {
        let key = if list.is_list() {
            format!("shadow[{i}]")
        } else {
            "shadow".to_string()
        };
        let field = |f: &str| format!("{key}.{f}");
        if out.iter().any(|o| o.service == s.service) {
            errs.push(
                k(&field("service")),
                format!(
                    "`{}` is already a shadow candidate of this route",
                    s.service
                ),
            );
        }
        check_service(errs, &field("service"), &s.service);
        if let Some(sec) = &s.secondary {
            check_service(errs, &field("secondary"), sec);
        }
        out.push(shadow(errs, &|f| k(&field(f)), s));
    }
    out
}

/// One shadow candidate; `k` names its fields (`routes[0].shadow[1].percent`).
fn shadow(errs: &mut Errors, k: &dyn Fn(&str) -> String, s: &RawShadow) -> ShadowSpec {
    let percent = s.percent.unwrap_or(100.0);
    if !(0.0..=100.0).contains(&percent) {
        errs.push(
            k("percent"),
            format!("{percent} is not a percentage between 0 and 100"),
        );
    }
    let secondary_percent = s.secondary_percent.unwrap_or(20.0);
    if !(0.0..=100.0).contains(&secondary_percent) {
        errs.push(
            k("secondary_percent"),
            format!("{secondary_percent} is not a percentage between 0 and 100"),
        );
    }
    let mut methods = Vec::new();
    let listed = s.methods.clone();
    let listed = listed.unwrap_or_else(|| vec!["GET".into(), "HEAD".into(), "OPTIONS".into()]);
    for (i, m) in listed.iter().enumerate() {
        match http::Method::from_bytes(m.to_ascii_uppercase().as_bytes()) {
            Ok(m) => methods.push(m),
            Err(_) => errs.push(
                format!("{}[{i}]", k("methods")),
                format!("`{m}` is not an HTTP method"),
            ),
        }
    }
    ShadowSpec {
        service: s.service.clone(),
        percent,
        methods,
        secondary: s.secondary.clone(),
        secondary_percent,
        max_body: size(errs, &k("max_body"), s.max_body.as_deref(), "1MiB"),
        timeout: duration(errs, &k("timeout"), s.timeout.as_deref(), "10s"),
        max_in_flight: s.max_in_flight.unwrap_or(256).max(1) as usize,
    }
}
