//! Request guards for the whole admin listener (control plane), in front of routing and auth.
//! A browser is the admin's neighbour on loopback, so even without a token:
//!
//! - **Host** (DNS rebinding): a `Host` that is not the admin's own answers 421. Its own are IP
//!   addresses (a browser only sends one when the page itself is on that address), `localhost`
//!   and the names in `[admin] hosts`, on any port (port mappings change it). `/health*` is
//!   exempt: probes from orchestrators use whatever name they have, and it changes nothing.
//! - **Origin** (cross-site requests): a `POST`/`PUT`/`PATCH`/`DELETE` whose `Origin` (or,
//!   without one, `Referer`) is not the request's own host and port, nor a name in
//!   `[admin] hosts`, answers 403. Clients that send neither (curl, the CLI) pass.
//! - **Content type**: those methods on `/api/*` need `Content-Type: application/json`, else
//!   415, so a cross-site page cannot send them without a CORS preflight (which the admin never
//!   grants), and a form cannot send them at all.

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::{header, HeaderMap, Method, StatusCode};

use crate::error::ApiError;
use crate::AdminState;

/// The guards, in order: Host, Origin, content type.
pub async fn guard(State(state): State<AdminState>, req: Request, next: Next) -> Response {
    let hosts = state.runtime.load().config.admin.hosts.clone();
    let checked = check_host(&req, &hosts)
        .and_then(|()| check_origin(&req, &hosts))
        .and_then(|()| check_content_type(&req));
    match checked {
        Ok(()) => next.run(req).await,
        Err(e) => e.into_response(),
    }
}

/// Whether the method changes something (the ones a guard cares about).
pub fn changes_state(method: &Method) -> bool {
    matches!(
        *method,
        Method::POST | Method::PUT | Method::PATCH | Method::DELETE
    )
}

/// A `host[:port]` split into its lowercased host (IPv6 keeps its brackets) and port.
fn split_authority(authority: &str) -> Option<(String, Option<u16>)> {
    let a = authority.trim().to_ascii_lowercase();
    let (host, port) = if a.starts_with('[') {
        let end = a.find(']')?;
        let rest = &a[end + 1..];
        let port = match rest.strip_prefix(':') {
            Some(p) => Some(p.parse().ok()?),
            None if rest.is_empty() => None,
            None => return None,
        };
        (a[..=end].to_string(), port)
    } else {
        match a.rsplit_once(':') {
            Some((h, p)) => (h.to_string(), Some(p.parse().ok()?)),
            None => (a.clone(), None),
        }
    };
    let host = host.trim_end_matches('.').to_string();
    (!host.is_empty()).then_some((host, port))
}

/// Whether a lowercased host (from `split_authority`) is the admin's own name.
pub fn is_own_host(host: &str, hosts: &[String]) -> bool {
    let ip = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .map_or_else(
            || host.parse::<std::net::Ipv4Addr>().is_ok(),
            |v6| v6.parse::<std::net::Ipv6Addr>().is_ok(),
        );
    ip || host == "localhost" || hosts.iter().any(|h| h == host)
}

/// The request's authority: `Host`, or the URI's (HTTP/2), or None when it has neither.
fn authority(req: &Request) -> Option<&str> {
    match req.headers().get(header::HOST) {
        Some(v) => Some(v.to_str().unwrap_or("\u{fffd}")),
        None => req.uri().authority().map(|a| a.as_str()),
    }
}

fn check_host(req: &Request, hosts: &[String]) -> Result<(), ApiError> {
    let path = req.uri().path();
    if path == "/health" || path.starts_with("/health/") {
        return Ok(());
    }
    // HTTP/1.0 clients may send no Host; browsers always do.
    let Some(authority) = authority(req) else {
        return Ok(());
    };
    match split_authority(authority) {
        Some((host, _)) if is_own_host(&host, hosts) => Ok(()),
        _ => Err(ApiError::new(
            StatusCode::MISDIRECTED_REQUEST,
            "misdirected",
            format!(
                "host `{authority}` is not this admin's (a DNS rebinding page?); it answers to IP \
                 addresses, `localhost` and the names in [admin] hosts"
            ),
        )),
    }
}

/// The scheme and authority of an `Origin` or `Referer` value (`None` for `null` and the like).
fn origin_parts(value: &str) -> Option<(&str, &str)> {
    let (scheme, rest) = value.split_once("://")?;
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    Some((scheme, &rest[..end]))
}

/// Whether `origin` (an `Origin` or `Referer` value) is the request's own site: the same host
/// and port as its `Host`, or a name in `[admin] hosts`.
fn is_own_origin(origin: &str, host: Option<&str>, hosts: &[String]) -> bool {
    let Some((scheme, authority)) = origin_parts(origin) else {
        return false;
    };
    let default_port = match scheme.to_ascii_lowercase().as_str() {
        "http" => 80,
        "https" => 443,
        _ => return false,
    };
    let Some((o_host, o_port)) = split_authority(authority) else {
        return false;
    };
    if hosts.contains(&o_host) {
        return true;
    }
    let Some((r_host, r_port)) = host.and_then(split_authority) else {
        return false;
    };
    let o_port = o_port.unwrap_or(default_port);
    // A `Host` without a port was reached on the scheme's default, whichever the page used.
    o_host == r_host && r_port.is_none_or(|p| p == o_port)
}

fn check_origin(req: &Request, hosts: &[String]) -> Result<(), ApiError> {
    if !changes_state(req.method()) {
        return Ok(());
    }
    let headers = req.headers();
    let (name, value) = match (headers.get(header::ORIGIN), headers.get(header::REFERER)) {
        (Some(o), _) => ("Origin", o),
        (None, Some(r)) => ("Referer", r),
        (None, None) => return Ok(()),
    };
    let value = value.to_str().unwrap_or("\u{fffd}");
    if is_own_origin(value, authority(req), hosts) {
        return Ok(());
    }
    Err(ApiError::new(
        StatusCode::FORBIDDEN,
        "cross_origin",
        format!(
            "{name} `{value}` is not this admin's own site; a `{}` from another site is refused",
            req.method()
        ),
    ))
}

/// Whether the `Content-Type` is `application/json` (parameters such as `charset` allowed).
pub fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"))
}

fn check_content_type(req: &Request) -> Result<(), ApiError> {
    let path = req.uri().path();
    if !changes_state(req.method()) || !(path == "/api" || path.starts_with("/api/")) {
        return Ok(());
    }
    if is_json(req.headers()) {
        return Ok(());
    }
    let given = req
        .headers()
        .get(header::CONTENT_TYPE)
        .map_or("none".to_string(), |v| {
            format!("`{}`", v.to_str().unwrap_or("\u{fffd}"))
        });
    Err(ApiError::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
        format!(
            "a `{}` on the API needs `Content-Type: application/json` (even with no body); got {given}",
            req.method()
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(a: &str) -> Option<(String, Option<u16>)> {
        split_authority(a)
    }

    #[test]
    fn authorities() {
        assert_eq!(
            split("LocalHost:8081"),
            Some(("localhost".into(), Some(8081)))
        );
        assert_eq!(split("[::1]:8081"), Some(("[::1]".into(), Some(8081))));
        assert_eq!(split("[::1]"), Some(("[::1]".into(), None)));
        assert_eq!(split("example.com."), Some(("example.com".into(), None)));
        assert_eq!(split("a:b"), None);
        assert_eq!(split("[::1]x"), None);
        assert_eq!(split(""), None);
    }

    #[test]
    fn own_hosts() {
        let hosts = vec!["umbra.internal".to_string()];
        for own in [
            "127.0.0.1",
            "10.1.2.3",
            "[::1]",
            "localhost",
            "umbra.internal",
        ] {
            assert!(is_own_host(own, &hosts), "{own}");
        }
        for foreign in [
            "evil.example",
            "localhost.evil.example",
            "127.0.0.1.nip.io",
            "[nope]",
        ] {
            assert!(!is_own_host(foreign, &hosts), "{foreign}");
        }
    }

    #[test]
    fn own_origins() {
        let none: Vec<String> = Vec::new();
        let host = Some("127.0.0.1:8081");
        assert!(is_own_origin("http://127.0.0.1:8081", host, &none));
        assert!(is_own_origin(
            "http://127.0.0.1:8081/ui/routes/x?a=1",
            host,
            &none
        ));
        assert!(
            !is_own_origin("http://127.0.0.1:3000", host, &none),
            "another port"
        );
        assert!(!is_own_origin("http://localhost:8081", host, &none));
        assert!(!is_own_origin("null", host, &none));
        assert!(!is_own_origin("https://evil.example", host, &none));
        assert!(is_own_origin(
            "https://admin.example",
            Some("admin.example"),
            &none
        ));
        assert!(!is_own_origin("http://127.0.0.1:8081", None, &none));
        let hosts = vec!["admin.example".to_string()];
        assert!(is_own_origin("https://admin.example", host, &hosts));
    }
}
