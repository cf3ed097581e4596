//! Fuzzes the routing-rule parser and matcher (`umbra-core/src/rules`). The input is text: the
//! first line is the rule, the second a request `METHOD host /path?query client-ip`, and each
//! further line a request header `name: value`.
//!
//! Invariants: an error points at a column of the rule (or just past its end); a parsed rule
//! keeps its text and its priority is its length; matching is deterministic and survives a
//! clone; `!(r)` matches exactly when `r` does not, `(r) && (r)` exactly when `r` does, and
//! `(r) || M` always when `M` does; and the matchers built from the request's own parts (its
//! host, path, a prefix of it, method, headers, plain query keys, client IP) match it.
#![no_main]

use std::net::IpAddr;

use http::{HeaderMap, HeaderName, HeaderValue, Method};
use libfuzzer_sys::fuzz_target;
use umbra_core::rules::{RequestView, Rule};

struct Req {
    method: Method,
    host: String,
    path: String,
    query: Option<String>,
    headers: HeaderMap,
    client_ip: Option<IpAddr>,
}

impl Req {
    fn view(&self) -> RequestView<'_> {
        RequestView {
            method: &self.method,
            host: &self.host,
            path: &self.path,
            query: self.query.as_deref(),
            headers: &self.headers,
            client_ip: self.client_ip,
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut lines = text.split('\n');
    let src = lines.next().unwrap_or_default();
    let req = request(lines.next().unwrap_or_default(), lines);
    let view = req.view();
    match Rule::parse(src) {
        Err(e) => {
            let chars = src.chars().count();
            assert!(
                (1..=chars + 1).contains(&e.column),
                "column {} outside a rule of {chars} characters: {e}",
                e.column
            );
        }
        Ok(rule) => {
            assert_eq!(rule.source(), src);
            assert_eq!(rule.priority(), src.chars().count() as i64);
            let hit = rule.matches(&view);
            assert_eq!(rule.matches(&view), hit, "deterministic");
            assert_eq!(rule.clone().matches(&view), hit, "a clone matches alike");
            check_combined(src, hit, &view, &own_matchers(&req));
        }
    }
    for m in own_matchers(&req) {
        // Values a matcher refuses (a host with a port, say) are no concern here.
        if let Ok(rule) = Rule::parse(&m) {
            assert!(rule.matches(&view), "{m} does not match its own request");
        }
    }
});

/// The rule combined with operators: each combination that parses (the nesting and length
/// limits may refuse it) matches as its logic says.
fn check_combined(src: &str, hit: bool, view: &RequestView<'_>, own: &[String]) {
    let mut combos = vec![
        (format!("!({src})"), !hit),
        (format!("({src}) && ({src})"), hit),
    ];
    if let Some(m) = own.iter().find(|m| Rule::parse(m).is_ok()) {
        combos.push((format!("({src}) || {m}"), true));
        combos.push((format!("{m} && !({src})"), !hit));
    }
    for (combined, want) in combos {
        if let Ok(rule) = Rule::parse(&combined) {
            assert_eq!(rule.matches(view), want, "{combined}");
        }
    }
}

/// The request of the second line and the header lines after it; parts that are not valid
/// fall back to plain defaults.
fn request<'a>(line: &str, header_lines: impl Iterator<Item = &'a str>) -> Req {
    let mut parts = line.split(' ');
    let method =
        Method::from_bytes(parts.next().unwrap_or_default().as_bytes()).unwrap_or(Method::GET);
    let host = parts.next().unwrap_or("example.com").to_owned();
    let target = parts.next().unwrap_or("/");
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p.to_owned(), Some(q.to_owned())),
        None => (target.to_owned(), None),
    };
    let client_ip = parts.next().and_then(|ip| ip.parse().ok());
    let mut headers = HeaderMap::new();
    for l in header_lines {
        let Some((name, value)) = l.split_once(':') else {
            continue;
        };
        let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value.trim()),
        ) else {
            continue;
        };
        headers.append(name, value);
    }
    Req {
        method,
        host,
        path,
        query,
        headers,
        client_ip,
    }
}

/// Rules made from the request's own parts: each that parses must match it. Parts a backtick
/// value cannot hold are left out.
fn own_matchers(req: &Req) -> Vec<String> {
    let quotable = |s: &str| !s.contains('`');
    let mut out = Vec::new();
    if quotable(&req.host) && !req.host.is_empty() {
        out.push(format!("Host(`{}`)", req.host));
    }
    if quotable(&req.path) && req.path.starts_with('/') {
        out.push(format!("Path(`{}`)", req.path));
        let cut = (0..=req.path.len() / 2)
            .rev()
            .find(|&i| req.path.is_char_boundary(i))
            .unwrap_or(0);
        if cut > 0 {
            out.push(format!("PathPrefix(`{}`)", &req.path[..cut]));
        }
    }
    // As in Traefik, a rule's method is upper-cased and a request's compared as sent: only an
    // upper-case request method is matched by its own name.
    if !req.method.as_str().bytes().any(|b| b.is_ascii_lowercase()) {
        out.push(format!("Method(`{}`)", req.method));
    }
    for (name, value) in &req.headers {
        if let Ok(v) = value.to_str() {
            if quotable(v) {
                out.push(format!("Header(`{name}`, `{v}`)"));
            }
        }
    }
    // A key-only `Query` matches the key given with no value (Traefik's `?mobile`).
    for key in req.query.as_deref().unwrap_or("").split('&') {
        if !key.is_empty() && !key.contains('=') && quotable(key) && !key.contains(['%', '+']) {
            out.push(format!("Query(`{key}`)"));
        }
    }
    if let Some(ip) = req.client_ip {
        out.push(format!("ClientIP(`{ip}`)"));
    }
    out
}
