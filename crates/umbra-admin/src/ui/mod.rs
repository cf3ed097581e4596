//! The web UI: server-rendered HTML pages with one stylesheet (`/ui/app.css`) and one small
//! script (`/ui/app.js`), both embedded in the binary. Every page is served with
//! `Content-Security-Policy: default-src 'self'` (no inline script or style), `X-Frame-Options:
//! DENY` and `X-Content-Type-Options: nosniff`. All text goes through [`esc`].
//!
//! | path | page |
//! | --- | --- |
//! | `GET /` | overview: routes, services with a health dot per server, live stats (polls `/api/routes`) |
//! | `GET /ui/routes/{name}` | field difference table, latency chart, shadow/canary/promote/rollback controls |
//! | `GET /ui/comparisons` | comparison list with filters and paging |
//! | `GET /ui/comparisons/{id}` | one comparison: request, both responses, highlighted differences |
//! | `GET /ui/events` | the audit log |
//! | `GET`/`POST /ui/login` | sign in with the admin token (sets the `umbra_token` cookie) |

use std::collections::HashMap;
use std::fmt::Write;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Form;
use http::StatusCode;
use serde_json::Value;

use crate::AdminState;

pub mod comparisons;
pub mod route;

const APP_CSS: &str = include_str!("../../assets/app.css");
const APP_JS: &str = include_str!("../../assets/app.js");

/// Name of the cookie that carries the admin token for the UI.
pub const TOKEN_COOKIE: &str = "umbra_token";

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
/// query value, and the token cookie).
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

/// Reverses [`enc`] (and any `%XX`); invalid escapes are kept as they are.
pub fn dec(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            if let Some(v) = s
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
            {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

const SECURITY_HEADERS: [(http::HeaderName, &str); 4] = [
    (http::header::CONTENT_SECURITY_POLICY, "default-src 'self'"),
    (http::header::X_FRAME_OPTIONS, "DENY"),
    (http::header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
    (http::header::CACHE_CONTROL, "no-store"),
];

fn with_headers(status: StatusCode, content_type: &'static str, body: String) -> Response {
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
    let link = |href: &str, label: &str, me: Nav| {
        let current = if nav == me {
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
<header class=\"top\"><nav aria-label=\"main\"><span class=\"brand\">umbra</span>{o}{c}{e}</nav></header>\
<main><div id=\"flash\" role=\"alert\" class=\"flash hidden\"></div>{body}</main></body></html>",
        title = esc(title),
        o = link("/", "Overview", Nav::Overview),
        c = link("/ui/comparisons", "Comparisons", Nav::Comparisons),
        e = link("/ui/events", "Events", Nav::Events),
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

fn service_cell(snap: &umbra_core::snapshot::Snapshot, name: &str, extra: &str) -> String {
    let mut out = format!("{}{}", esc(name), esc(extra));
    if let Some(svc) = snap.services.get(name) {
        out.push_str(" <span class=\"dots\">");
        for s in &svc.servers {
            let url = s.addr.url();
            let (class, word) = if s.is_healthy() {
                ("up", "healthy")
            } else {
                ("down", "unhealthy")
            };
            let _ = write!(
                out,
                "<span class=\"dot {class}\" role=\"img\" aria-label=\"{} {word}\" title=\"{} {word}\"></span>",
                esc(&url),
                esc(&url)
            );
        }
        out.push_str("</span>");
    }
    out
}

/// `GET /`: every route with its services, server health and live stats.
pub async fn overview(State(state): State<AdminState>) -> Response {
    let snap = state.runtime.load();
    let mut rows = String::new();
    for r in &snap.routes {
        let v = crate::routes::route_json(r);
        let name = v["name"].as_str().unwrap_or_default();
        let s = &v["stats"];
        let shadow = match v["shadow"]["service"].as_str() {
            Some(svc) => {
                let p = v["shadow"]["percent"]
                    .as_f64()
                    .map_or(String::new(), |p| format!(" ({p}%)"));
                service_cell(&snap, svc, &p)
            }
            None => "—".into(),
        };
        let canary = match v["canary"]["service"].as_str() {
            Some(svc) => {
                let w = v["canary"]["weight"]
                    .as_f64()
                    .map_or(String::new(), |w| format!(" ({w}%)"));
                service_cell(&snap, svc, &w)
            }
            None => "—".into(),
        };
        let _ = write!(
            rows,
            "<tr data-route=\"{ename}\"><td>{ename}</td><td><code>{rule}</code></td><td>{primary}</td>\
<td>{shadow}</td><td>{canary}</td>\
<td class=\"num\" data-stat=\"requests\">{req}</td><td class=\"num\" data-stat=\"error_rate\">{er}</td>\
<td class=\"num\" data-stat=\"p50_ms\">{p50}</td><td class=\"num\" data-stat=\"p99_ms\">{p99}</td>\
<td class=\"num\" data-stat=\"shadow_p50_ms\">{sp50}</td><td class=\"num\" data-stat=\"shadow_p99_ms\">{sp99}</td>\
<td class=\"num\" data-stat=\"diff_rate\">{dr}</td>\
<td><a href=\"/ui/routes/{link}\">details<span class=\"sr\"> of route {ename}</span></a></td></tr>",
            ename = esc(name),
            rule = esc(v["rule"].as_str().unwrap_or_default()),
            primary = service_cell(&snap, v["service"].as_str().unwrap_or_default(), ""),
            req = s["requests"].as_u64().unwrap_or(0),
            er = pct(s["error_rate"].as_f64()),
            p50 = fmt_ms(&s["p50_ms"]),
            p99 = fmt_ms(&s["p99_ms"]),
            sp50 = fmt_ms(&s["shadow_p50_ms"]),
            sp99 = fmt_ms(&s["shadow_p99_ms"]),
            dr = pct(s["diff_rate"].as_f64()),
            link = esc(&enc(name)),
        );
    }
    if rows.is_empty() {
        rows.push_str("<tr><td colspan=\"13\">no routes</td></tr>");
    }
    let body = format!(
        "<h1>Routes</h1><p class=\"meta\">umbra {version} · config: {source} · generation {generation} · \
<span id=\"live\" aria-live=\"polite\">live</span></p>\
<div class=\"scroll\"><table id=\"routes\"><thead><tr><th scope=\"col\">route</th><th scope=\"col\">rule</th>\
<th scope=\"col\">primary</th><th scope=\"col\">shadow</th><th scope=\"col\">canary</th>\
<th scope=\"col\">requests</th><th scope=\"col\">error rate</th><th scope=\"col\">p50</th><th scope=\"col\">p99</th>\
<th scope=\"col\">shadow p50</th><th scope=\"col\">shadow p99</th><th scope=\"col\">diff rate</th><th scope=\"col\"></th>\
</tr></thead><tbody>{rows}</tbody></table></div>\
<p class=\"meta\">JSON: <a href=\"/api/routes\">/api/routes</a> · <a href=\"/api/comparisons\">/api/comparisons</a> · \
<a href=\"/api/services\">/api/services</a> · <a href=\"/api/events\">/api/events</a></p>",
        version = esc(state.version),
        source = esc(&state.config_source),
        generation = snap.generation,
    );
    page(StatusCode::OK, "Overview", Nav::Overview, &body)
}

fn login_form(message: Option<&str>) -> String {
    let msg = message.map_or(String::new(), |m| {
        format!("<p class=\"error\" role=\"alert\">{}</p>", esc(m))
    });
    format!(
        "<h1>Sign in</h1>{msg}<form method=\"post\" action=\"/ui/login\" class=\"stack\">\
<label for=\"token\">Admin token</label>\
<input id=\"token\" name=\"token\" type=\"password\" autocomplete=\"current-password\" required>\
<button type=\"submit\">Sign in</button></form>"
    )
}

fn see_other(location: &'static str) -> Response {
    let mut resp = with_headers(
        StatusCode::SEE_OTHER,
        "text/plain; charset=utf-8",
        String::new(),
    );
    resp.headers_mut().insert(
        http::header::LOCATION,
        http::HeaderValue::from_static(location),
    );
    resp
}

/// `GET /ui/login`
pub async fn login_page(State(state): State<AdminState>) -> Response {
    if state.token.is_none() {
        return see_other("/");
    }
    page(StatusCode::OK, "Sign in", Nav::None, &login_form(None))
}

/// `POST /ui/login` with form field `token`: sets the `umbra_token` cookie when it is right.
pub async fn login(
    State(state): State<AdminState>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let Some(expected) = state.token.as_deref() else {
        return see_other("/");
    };
    let given = form.get("token").map(|s| s.trim()).unwrap_or_default();
    if !crate::auth::constant_time_eq(given.as_bytes(), expected.as_bytes()) {
        return page(
            StatusCode::UNAUTHORIZED,
            "Sign in",
            Nav::None,
            &login_form(Some("wrong token")),
        );
    }
    let mut resp = see_other("/");
    let cookie = format!(
        "{TOKEN_COOKIE}={}; HttpOnly; SameSite=Strict; Path=/",
        enc(expected)
    );
    if let Ok(v) = http::HeaderValue::from_str(&cookie) {
        resp.headers_mut().insert(http::header::SET_COOKIE, v);
    }
    resp
}
