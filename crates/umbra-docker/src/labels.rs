//! Container labels → what a container asks for: routers, services, middlewares and umbra's own
//! shadow / canary / rollout / health labels. Pure: every label that umbra cannot use becomes a
//! [`LabelError`] naming the label and what was expected, never a silent skip.

use std::collections::{BTreeMap, HashMap};

use umbra_core::config::valid_name;
use umbra_core::discovery::LabelError;

/// A Traefik router as labels describe it (`traefik.http.routers.<name>.*`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RouterLabels {
    pub rule: Option<String>,
    pub service: Option<String>,
    pub priority: Option<i64>,
    pub middlewares: Vec<String>,
}

/// A Traefik service (`traefik.http.services.<name>.loadbalancer.*`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ServiceLabels {
    pub port: Option<u16>,
    /// `http` (default), `https` (system roots) or `h2c`.
    pub scheme: Option<String>,
    pub health_path: Option<String>,
}

/// Everything a container's labels ask for.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Parsed {
    /// `traefik.enable` / `umbra.enable`; None when neither is set.
    pub enable: Option<bool>,
    /// The container carries any `traefik.` or `umbra.` label.
    pub has_labels: bool,
    pub routers: BTreeMap<String, RouterLabels>,
    pub services: BTreeMap<String, ServiceLabels>,
    /// stripprefix middlewares: name → prefix.
    pub strip_prefixes: BTreeMap<String, String>,
    pub network: Option<String>,
    pub shadow_of: Option<String>,
    pub shadow_percent: Option<f64>,
    /// The service that gets a share of mirrored requests to measure noise (Diffy's secondary).
    pub shadow_secondary: Option<String>,
    pub canary_of: Option<String>,
    pub canary_weight: Option<f64>,
    /// `umbra.deploy.of`: once healthy, this container replaces the route's servers.
    pub deploy_of: Option<String>,
    /// `umbra.rollout.of`: the route this container's service is rolled out on once healthy.
    pub rollout_of: Option<String>,
    /// `umbra.rollout.steps`: `shadow 5m,10% 5m,100%` (each step checked).
    pub rollout_steps: Option<Vec<String>>,
    pub health_path: Option<String>,
    pub errors: Vec<LabelError>,
}

const UMBRA_KEYS: &[&str] = &[
    "umbra.enable",
    "umbra.shadow.of",
    "umbra.shadow.percent",
    "umbra.shadow.secondary",
    "umbra.canary.of",
    "umbra.canary.weight",
    "umbra.deploy.of",
    "umbra.rollout.of",
    "umbra.rollout.steps",
    "umbra.health.path",
];

/// Traefik keys umbra understands, as patterns (`*` = a name).
const TRAEFIK_KEYS: &[&str] = &[
    "traefik.enable",
    "traefik.docker.network",
    "traefik.http.routers.*.rule",
    "traefik.http.routers.*.service",
    "traefik.http.routers.*.priority",
    "traefik.http.routers.*.middlewares",
    "traefik.http.services.*.loadbalancer.server.port",
    "traefik.http.services.*.loadbalancer.server.scheme",
    "traefik.http.services.*.loadbalancer.healthcheck.path",
    "traefik.http.middlewares.*.stripprefix.prefixes",
];

fn err(errors: &mut Vec<LabelError>, label: &str, message: impl Into<String>) {
    errors.push(LabelError {
        label: label.to_string(),
        message: message.into(),
    });
}

/// Parses `true`/`false` the way Traefik does (case-insensitive).
fn parse_bool(v: &str) -> Option<bool> {
    match v.trim().to_ascii_lowercase().as_str() {
        "true" => Some(true),
        "false" => Some(false),
        _ => None,
    }
}

fn parse_percent(v: &str) -> Result<f64, String> {
    match v.trim().trim_end_matches('%').parse::<f64>() {
        Ok(p) if (0.0..=100.0).contains(&p) => Ok(p),
        _ => Err(format!("expected a percentage from 0 to 100, got `{v}`")),
    }
}

/// Levenshtein distance, for "did you mean" hints on misspelt keys.
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur.push((prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

/// The known key closest to `key` (names in `key` replace the `*`s), if it is close enough
/// to be a typo.
fn suggestion(key: &str) -> Option<String> {
    let parts: Vec<&str> = key.split('.').collect();
    UMBRA_KEYS
        .iter()
        .chain(TRAEFIK_KEYS)
        .filter_map(|pattern| {
            let pat: Vec<&str> = pattern.split('.').collect();
            if pat.len() != parts.len() {
                return None;
            }
            let filled: Vec<&str> = pat
                .iter()
                .zip(&parts)
                .map(|(p, k)| if *p == "*" { *k } else { *p })
                .collect();
            let candidate = filled.join(".");
            let d = distance(key, &candidate);
            (d > 0 && d <= 3).then_some((d, candidate))
        })
        .min()
        .map(|(_, c)| c)
}

fn unknown(errors: &mut Vec<LabelError>, key: &str, what: &str) {
    let hint = suggestion(key).map_or(String::new(), |s| format!("; did you mean `{s}`?"));
    err(errors, key, format!("{what}{hint}"));
}

/// Parses the labels of one container.
pub fn parse(labels: &HashMap<String, String>) -> Parsed {
    let mut p = Parsed::default();
    let mut keys: Vec<&String> = labels.keys().collect();
    keys.sort();
    for key in keys {
        let value = labels[key].as_str();
        if key.starts_with("umbra.") {
            p.has_labels = true;
            umbra_label(&mut p, key, value);
        } else if key.starts_with("traefik.") {
            p.has_labels = true;
            traefik_label(&mut p, key, value);
        }
    }
    p
}

fn umbra_label(p: &mut Parsed, key: &str, value: &str) {
    let errors = &mut p.errors;
    match key {
        "umbra.enable" => match parse_bool(value) {
            Some(b) => p.enable = Some(p.enable.unwrap_or(false) || b),
            None => err(
                errors,
                key,
                format!("expected true or false, got `{value}`"),
            ),
        },
        "umbra.shadow.secondary" => {
            let name = value.trim();
            if valid_name(name) {
                p.shadow_secondary = Some(name.to_string());
            } else {
                err(
                    errors,
                    key,
                    format!("expected a service name, got `{value}`"),
                );
            }
        }
        "umbra.shadow.of" | "umbra.canary.of" | "umbra.deploy.of" => {
            let name = value.trim();
            if !valid_name(name) {
                err(errors, key, format!("expected a route name, got `{value}`"));
            } else if key == "umbra.shadow.of" {
                p.shadow_of = Some(name.to_string());
            } else if key == "umbra.canary.of" {
                p.canary_of = Some(name.to_string());
            } else {
                p.deploy_of = Some(name.to_string());
            }
        }
        "umbra.rollout.of" => {
            let name = value.trim();
            if valid_name(name) {
                p.rollout_of = Some(name.to_string());
            } else {
                err(errors, key, format!("expected a route name, got `{value}`"));
            }
        }
        "umbra.rollout.steps" => {
            let steps: Vec<String> = value.split(',').map(|s| s.trim().to_string()).collect();
            let raw = umbra_core::config::RawRollout {
                service: "-".into(),
                steps: Some(steps.clone()),
                ..Default::default()
            };
            match umbra_core::rollout::validate_rollout(&raw, "", None, None) {
                Ok(_) => p.rollout_steps = Some(steps),
                Err(e) => err(
                    errors,
                    key,
                    e.iter()
                        .map(|e| e.to_string())
                        .collect::<Vec<_>>()
                        .join("; "),
                ),
            }
        }
        "umbra.shadow.percent" => match parse_percent(value) {
            Ok(v) => p.shadow_percent = Some(v),
            Err(e) => err(errors, key, e),
        },
        "umbra.canary.weight" => match parse_percent(value) {
            Ok(v) => p.canary_weight = Some(v),
            Err(e) => err(errors, key, e),
        },
        "umbra.health.path" => {
            if value.starts_with('/') {
                p.health_path = Some(value.to_string());
            } else {
                err(
                    errors,
                    key,
                    format!("expected a path starting with `/`, got `{value}`"),
                );
            }
        }
        _ => unknown(
            errors,
            key,
            &format!("unknown umbra label (known: {})", UMBRA_KEYS.join(", ")),
        ),
    }
}

fn traefik_label(p: &mut Parsed, key: &str, value: &str) {
    let parts: Vec<&str> = key.split('.').collect();
    match parts.as_slice() {
        ["traefik", "enable"] => match parse_bool(value) {
            Some(b) => p.enable = Some(p.enable.unwrap_or(false) || b),
            None => err(
                &mut p.errors,
                key,
                format!("expected true or false, got `{value}`"),
            ),
        },
        ["traefik", "docker", "network"] => p.network = Some(value.trim().to_string()),
        ["traefik", "http", "routers", name, rest @ ..] => router_label(p, key, name, rest, value),
        ["traefik", "http", "services", name, rest @ ..] => {
            service_label(p, key, name, rest, value)
        }
        ["traefik", "http", "middlewares", name, rest @ ..] => {
            middleware_label(p, key, name, rest, value)
        }
        ["traefik", "tcp" | "udp", ..] => err(
            &mut p.errors,
            key,
            "ignored: umbra routes HTTP only (no TCP/UDP routers)",
        ),
        _ => unknown(&mut p.errors, key, "unknown or unsupported traefik label"),
    }
}

fn checked_name(errors: &mut Vec<LabelError>, key: &str, name: &str, what: &str) -> bool {
    if valid_name(name) {
        true
    } else {
        err(
            errors,
            key,
            format!("`{name}` is not a valid {what} name (letters, digits, `-`, `_`, `.`)"),
        );
        false
    }
}

fn router_label(p: &mut Parsed, key: &str, name: &str, rest: &[&str], value: &str) {
    if !checked_name(&mut p.errors, key, name, "router") {
        return;
    }
    let router = p.routers.entry(name.to_string()).or_default();
    match rest {
        ["rule"] => router.rule = Some(value.to_string()),
        ["service"] => router.service = Some(strip_provider(value).to_string()),
        ["priority"] => match value.trim().parse::<i64>() {
            Ok(v) => router.priority = Some(v),
            Err(_) => err(&mut p.errors, key, format!("expected an integer, got `{value}`")),
        },
        ["middlewares"] => {
            router.middlewares = value
                .split(',')
                .map(|m| strip_provider(m.trim()).to_string())
                .filter(|m| !m.is_empty())
                .collect()
        }
        ["entrypoints"] => err(
            &mut p.errors,
            key,
            "ignored: umbra has one HTTP listener ([proxy].listen), routers cannot pick entry points",
        ),
        ["tls", ..] => err(
            &mut p.errors,
            key,
            "ignored: umbra does not terminate TLS; put it behind your TLS terminator",
        ),
        _ => unknown(&mut p.errors, key, "unknown or unsupported router label"),
    }
}

/// `api@docker` → `api`: umbra has one namespace for names.
fn strip_provider(v: &str) -> &str {
    v.split_once('@').map_or(v, |(n, _)| n)
}

fn service_label(p: &mut Parsed, key: &str, name: &str, rest: &[&str], value: &str) {
    if !checked_name(&mut p.errors, key, name, "service") {
        return;
    }
    let service = p.services.entry(name.to_string()).or_default();
    match rest {
        ["loadbalancer", "server", "port"] => match value.trim().parse::<u16>() {
            Ok(port) if port > 0 => service.port = Some(port),
            _ => err(
                &mut p.errors,
                key,
                format!("expected a port from 1 to 65535, got `{value}`"),
            ),
        },
        ["loadbalancer", "server", "scheme"] => {
            let scheme = value.trim().to_ascii_lowercase();
            if matches!(scheme.as_str(), "http" | "https" | "h2c") {
                service.scheme = Some(scheme);
            } else {
                err(
                    &mut p.errors,
                    key,
                    format!("expected `http`, `https` or `h2c`; `{value}` is not supported"),
                );
            }
        }
        ["loadbalancer", "healthcheck", "path"] => {
            if value.starts_with('/') {
                service.health_path = Some(value.to_string());
            } else {
                err(
                    &mut p.errors,
                    key,
                    format!("expected a path starting with `/`, got `{value}`"),
                );
            }
        }
        ["loadbalancer", "passhostheader"] => err(
            &mut p.errors,
            key,
            "ignored: umbra always passes the Host header (and sets X-Forwarded-Host)",
        ),
        _ => unknown(&mut p.errors, key, "unknown or unsupported service label"),
    }
}

fn middleware_label(p: &mut Parsed, key: &str, name: &str, rest: &[&str], value: &str) {
    if !checked_name(&mut p.errors, key, name, "middleware") {
        return;
    }
    match rest {
        ["stripprefix", "prefixes"] => {
            let prefixes: Vec<&str> = value
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .collect();
            match prefixes.as_slice() {
                [one] if one.starts_with('/') => {
                    p.strip_prefixes.insert(name.to_string(), one.to_string());
                }
                [one] => err(
                    &mut p.errors,
                    key,
                    format!("expected a prefix starting with `/`, got `{one}`"),
                ),
                _ => err(
                    &mut p.errors,
                    key,
                    format!("umbra strips exactly one prefix per route; got `{value}` (use one router per prefix)"),
                ),
            }
        }
        [kind, ..] => err(
            &mut p.errors,
            key,
            format!("middleware type `{kind}` is not supported (umbra supports stripprefix)"),
        ),
        [] => unknown(&mut p.errors, key, "incomplete middleware label"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn a_traefik_project_parses_without_errors() {
        let p = parse(&labels(&[
            ("traefik.enable", "true"),
            ("traefik.http.routers.api.rule", "PathPrefix(`/api`)"),
            ("traefik.http.routers.api.middlewares", "api-strip@docker"),
            ("traefik.http.routers.api.priority", "10"),
            ("traefik.http.services.api.loadbalancer.server.port", "8080"),
            (
                "traefik.http.middlewares.api-strip.stripprefix.prefixes",
                "/api",
            ),
            ("traefik.docker.network", "web"),
            ("com.docker.compose.service", "api"),
        ]));
        assert!(p.errors.is_empty(), "{:?}", p.errors);
        assert_eq!(p.enable, Some(true));
        let r = &p.routers["api"];
        assert_eq!(r.rule.as_deref(), Some("PathPrefix(`/api`)"));
        assert_eq!(r.middlewares, vec!["api-strip"]);
        assert_eq!(r.priority, Some(10));
        assert_eq!(p.services["api"].port, Some(8080));
        assert_eq!(p.strip_prefixes["api-strip"], "/api");
        assert_eq!(p.network.as_deref(), Some("web"));
    }

    #[test]
    fn umbra_labels_parse() {
        let p = parse(&labels(&[
            ("umbra.enable", "TRUE"),
            ("umbra.shadow.of", "api"),
            ("umbra.shadow.percent", "25"),
            ("umbra.shadow.secondary", "api"),
            ("umbra.canary.of", "api"),
            ("umbra.canary.weight", "10%"),
            ("umbra.health.path", "/health"),
            ("umbra.deploy.of", "web"),
        ]));
        assert!(p.errors.is_empty(), "{:?}", p.errors);
        assert_eq!(p.deploy_of.as_deref(), Some("web"));
        assert_eq!(p.shadow_of.as_deref(), Some("api"));
        assert_eq!(p.shadow_percent, Some(25.0));
        assert_eq!(p.shadow_secondary.as_deref(), Some("api"));
        assert_eq!(p.canary_weight, Some(10.0));
        assert_eq!(p.health_path.as_deref(), Some("/health"));
    }

    #[test]
    fn a_typo_is_reported_with_a_suggestion() {
        let p = parse(&labels(&[
            ("umbra.enable", "true"),
            ("umbra.shadow.percnt", "50"),
            ("traefik.http.routers.api.rulle", "Path(`/`)"),
            ("traefik.http.services.api.loadbalancer.server.prot", "80"),
        ]));
        let by_label: HashMap<&str, &str> = p
            .errors
            .iter()
            .map(|e| (e.label.as_str(), e.message.as_str()))
            .collect();
        assert!(by_label["umbra.shadow.percnt"].contains("did you mean `umbra.shadow.percent`"));
        assert!(by_label["traefik.http.routers.api.rulle"]
            .contains("did you mean `traefik.http.routers.api.rule`"));
        assert!(
            by_label["traefik.http.services.api.loadbalancer.server.prot"]
                .contains("loadbalancer.server.port")
        );
    }

    #[test]
    fn bad_values_name_what_was_expected() {
        let p = parse(&labels(&[
            ("umbra.enable", "yes"),
            ("umbra.shadow.percent", "150"),
            ("umbra.health.path", "health"),
            ("traefik.http.services.api.loadbalancer.server.port", "http"),
            (
                "traefik.http.services.api.loadbalancer.server.scheme",
                "wss",
            ),
            ("traefik.http.routers.api.priority", "high"),
            ("traefik.http.middlewares.m.stripprefix.prefixes", "/a,/b"),
            ("traefik.http.middlewares.n.basicauth.users", "x"),
            ("traefik.http.routers.bad name.rule", "Path(`/`)"),
        ]));
        let msgs: Vec<String> = p
            .errors
            .iter()
            .map(|e| format!("{}: {}", e.label, e.message))
            .collect();
        let has = |needle: &str| msgs.iter().any(|m| m.contains(needle));
        assert!(
            has("umbra.enable: expected true or false, got `yes`"),
            "{msgs:#?}"
        );
        assert!(has(
            "umbra.shadow.percent: expected a percentage from 0 to 100, got `150`"
        ));
        assert!(has("umbra.health.path: expected a path starting with `/`"));
        assert!(has(
            "server.port: expected a port from 1 to 65535, got `http`"
        ));
        assert!(has(
            "expected `http`, `https` or `h2c`; `wss` is not supported"
        ));
        assert!(has("priority: expected an integer, got `high`"));
        assert!(has("exactly one prefix"));
        assert!(has("middleware type `basicauth` is not supported"));
        assert!(has("`bad name` is not a valid router name"));
        assert_eq!(p.errors.len(), 9, "{msgs:#?}");
    }

    #[test]
    fn traefik_only_features_are_reported_as_ignored() {
        let p = parse(&labels(&[
            ("traefik.http.routers.api.entrypoints", "web"),
            ("traefik.http.routers.api.tls.certresolver", "le"),
            ("traefik.tcp.routers.db.rule", "HostSNI(`*`)"),
        ]));
        assert_eq!(p.errors.len(), 3);
        assert!(p.errors.iter().all(|e| e.message.starts_with("ignored:")));
    }

    #[test]
    fn containers_without_our_labels_are_not_ours() {
        let p = parse(&labels(&[("com.docker.compose.service", "db")]));
        assert!(!p.has_labels);
        assert!(p.errors.is_empty());
    }
}
