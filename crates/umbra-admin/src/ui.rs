//! `GET /`: a small server-rendered overview (the full web UI comes later).

use std::fmt::Write;
use std::sync::atomic::Ordering;

use axum::extract::State;
use axum::response::{IntoResponse, Response};

use crate::AdminState;

/// Escapes text for HTML element content and attribute values.
pub fn escape(s: &str) -> String {
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

pub async fn index(State(state): State<AdminState>) -> Response {
    let snap = state.runtime.load();
    let mut rows = String::new();
    for r in &snap.routes {
        let spec = &r.spec;
        let shadow = spec.shadow.as_ref().map_or("—".to_string(), |s| {
            format!("{} ({}%)", s.service, s.percent)
        });
        let canary = spec.canary.as_ref().map_or("—".to_string(), |c| {
            format!("{} ({}%)", c.service, c.weight)
        });
        let comparisons = r.stats.comparisons.load(Ordering::Relaxed);
        let different = r.stats.different.load(Ordering::Relaxed);
        let diff_rate = if comparisons == 0 {
            "—".to_string()
        } else {
            format!("{:.1}%", different as f64 * 100.0 / comparisons as f64)
        };
        let _ = write!(
            rows,
            "<tr><td>{}</td><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(&spec.name),
            escape(&spec.raw.rule),
            escape(&spec.service),
            escape(&shadow),
            escape(&canary),
            r.stats.requests.load(Ordering::Relaxed),
            diff_rate,
        );
    }
    if rows.is_empty() {
        rows.push_str("<tr><td colspan=\"7\">no routes</td></tr>");
    }
    let page = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>umbra</title></head>\
<body><h1>umbra {version}</h1><p>config: {source} · generation {generation}</p>\
<table border=\"1\" cellpadding=\"4\"><thead><tr><th>route</th><th>rule</th><th>service</th>\
<th>shadow</th><th>canary</th><th>requests</th><th>diff rate</th></tr></thead><tbody>{rows}</tbody></table>\
<p>JSON: <a href=\"/api/routes\">/api/routes</a> · <a href=\"/api/comparisons\">/api/comparisons</a> · \
<a href=\"/api/services\">/api/services</a> · <a href=\"/api/events\">/api/events</a></p></body></html>",
        version = escape(state.version),
        source = escape(&state.config_source),
        generation = snap.generation,
    );
    (
        [
            (http::header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (http::header::CONTENT_SECURITY_POLICY, "default-src 'self'"),
            (http::header::X_FRAME_OPTIONS, "DENY"),
            (http::header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (http::header::CACHE_CONTROL, "no-store"),
        ],
        page,
    )
        .into_response()
}
