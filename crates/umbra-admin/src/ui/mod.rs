//! The web UI (control plane): server-rendered HTML pages with one stylesheet (`/ui/app.css`)
//! and one small script (`/ui/app.js`), both embedded in the binary. Every page is served with
//! `Content-Security-Policy: default-src 'self'` (no inline script or style), `X-Frame-Options:
//! DENY` and `X-Content-Type-Options: nosniff`. All text goes through [`esc`]. Changes go
//! through the JSON API from `app.js` with the `X-Umbra-CSRF` header and a JSON content type.
//!
//! | path | page |
//! | --- | --- |
//! | `GET /` | overview: routes with live stats and a health dot per server, services, a "New route" form, Docker discovery (polls `/api/routes` and `/api/services`) |
//! | `GET /ui/routes/{name}` | field difference table, latency chart, shadow/canary/promote/rollback controls, maintenance/pause/resume; edit and delete for API routes, override marks for file/docker routes |
//! | `GET /ui/comparisons` | comparison list with filters and paging |
//! | `GET /ui/comparisons/{id}` | one comparison: request, both responses, highlighted differences |
//! | `GET /ui/events` | the audit log |
//! | `GET`/`POST /ui/login` | sign in with the admin token (sets the `umbra_session` cookie: a random session id; 429 after too many wrong tokens) |

use std::fmt::Write;

use axum::response::{IntoResponse, Response};
use http::StatusCode;
use serde_json::Value;

pub mod comparisons;
mod discovery;
mod findings;
mod login;
mod overview;
pub mod rollout;
pub mod route;
mod route_form;

pub use login::{login, login_page};
pub use overview::overview;

const APP_CSS: &str = include_str!("../../assets/app.css");
const APP_JS: &str = include_str!("../../assets/app.js");

/// Escapes text for HTML element content and attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Percent-encodes everything but RFC 3986 unreserved characters (for a path segment or a
/// query value).
pub fn enc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

const SECURITY_HEADERS: [(http::HeaderName, &str); 4] = [
    (http::header::CONTENT_SECURITY_POLICY, "default-src 'self'"),
    (http::header::X_FRAME_OPTIONS, "DENY"),
    (http::header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
    (http::header::CACHE_CONTROL, "no-store"),
];

pub(crate) fn with_headers(
    status: StatusCode,
    content_type: &'static str,
    body: String,
) -> Response {
    let mut resp = (status, body).into_response();
    let h = resp.headers_mut();
    h.insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static(content_type),
    );
    for (name, value) in SECURITY_HEADERS {
        h.insert(name, http::HeaderValue::from_static(value));
    }
    resp
}

/// Which nav entry is current.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Nav {
    Overview,
    Comparisons,
    Events,
    None,
}

/// A whole page: layout, nav bar and `body` (already HTML).
pub fn page(status: StatusCode, title: &str, nav: Nav, body: &str) -> Response {
    let link = |href: &str, label: &str, me: Option<Nav>| {
        let current = if me == Some(nav) {
            " aria-current=\"page\""
        } else {
            ""
        };
        format!("<a href=\"{href}\"{current}>{label}</a>")
    };
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
<title>{title} · umbra</title><link rel=\"stylesheet\" href=\"/ui/app.css\">\
<script src=\"/ui/app.js\" defer></script></head><body>\
<header class=\"top\"><nav aria-label=\"main\"><span class=\"brand\">umbra</span>{o}{c}{e}{d}</nav></header>\
<main><div id=\"flash\" role=\"alert\" class=\"flash hidden\"></div>{body}</main></body></html>",
        title = esc(title),
        o = link("/", "Overview", Some(Nav::Overview)),
        c = link("/ui/comparisons", "Comparisons", Some(Nav::Comparisons)),
        e = link("/ui/events", "Events", Some(Nav::Events)),
        d = link("/#discovery", "Discovery", None),
    );
    with_headers(status, "text/html; charset=utf-8", html)
}

/// An error page.
pub fn error_page(status: StatusCode, message: &str) -> Response {
    page(
        status,
        status.canonical_reason().unwrap_or("error"),
        Nav::None,
        &format!(
            "<h1>{}</h1><p class=\"error\">{}</p>",
            status.as_u16(),
            esc(message)
        ),
    )
}

impl From<crate::ApiError> for Response {
    fn from(e: crate::ApiError) -> Self {
        error_page(e.status, &e.message)
    }
}

/// `GET /ui/app.css`
pub async fn app_css() -> Response {
    with_headers(
        StatusCode::OK,
        "text/css; charset=utf-8",
        APP_CSS.to_string(),
    )
}

/// `GET /ui/app.js`
pub async fn app_js() -> Response {
    with_headers(
        StatusCode::OK,
        "text/javascript; charset=utf-8",
        APP_JS.to_string(),
    )
}

/// Formats a rate (0..1) as a percentage.
pub fn pct(v: Option<f64>) -> String {
    v.map_or("—".to_string(), |x| format!("{:.1}%", x * 100.0))
}

/// Formats milliseconds (null → "—").
pub fn fmt_ms(v: &Value) -> String {
    v.as_f64().map_or("—".to_string(), |x| format!("{x:.1} ms"))
}

/// Unix milliseconds as `YYYY-MM-DD HH:MM:SS` UTC.
pub fn fmt_time(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Civil date from days since the epoch (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// A server's health as a dot class and a word: failing active checks, ejected by passive
/// checks (failing requests), or healthy.
pub fn server_state(healthy: bool, ejected: bool) -> (&'static str, &'static str) {
    if !healthy {
        ("down", "unhealthy")
    } else if ejected {
        ("ejected", "ejected")
    } else {
        ("up", "healthy")
    }
}

/// A health dot with an accessible name, addressable by the live refresh in `app.js`.
pub fn health_dot(service: &str, url: &str, healthy: bool, ejected: bool) -> String {
    let (class, word) = server_state(healthy, ejected);
    format!(
        "<span class=\"dot {class}\" role=\"img\" data-service=\"{s}\" data-server=\"{u}\" \
aria-label=\"{u} {word}\" title=\"{u} {word}\"></span>",
        s = esc(service),
        u = esc(url),
    )
}
