//! `/ui/comparisons`, `/ui/comparisons/{id}` and `/ui/events`.

use std::collections::HashMap;
use std::fmt::Write;

use axum::extract::{Path, Query, State};
use axum::response::Response;
use http::StatusCode;
use serde_json::Value;
use umbra_diff::{Comparison, Verdict};
use umbra_store::DEFAULT_LIST_LIMIT;

use super::{enc, error_page, esc, fmt_time, page, Nav};
use crate::error::ApiError;
use crate::AdminState;

fn ms(us: u64) -> String {
    format!("{:.1} ms", us as f64 / 1000.0)
}

/// `GET /ui/comparisons?route=&verdict=&endpoint=&finding=&before=`
pub async fn list(
    State(state): State<AdminState>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let query = match crate::comparisons::list_query(&q) {
        Ok(query) => query,
        Err(e) => return e.into(),
    };
    let Some(store) = state.store.as_ref() else {
        return ApiError::store_unavailable().into();
    };
    let result = match store.list(&query).await {
        Ok(p) => p,
        Err(e) => return ApiError::store(&e).into(),
    };
    let get = |k: &str| q.get(k).map(String::as_str).unwrap_or_default();
    let mut verdicts = String::from("<option value=\"\">any</option>");
    for v in Verdict::ALL {
        let sel = if get("verdict") == v.as_str() {
            " selected"
        } else {
            ""
        };
        let _ = write!(
            verdicts,
            "<option value=\"{0}\"{sel}>{0}</option>",
            v.as_str()
        );
    }
    let mut body = format!(
        "<h1>Comparisons</h1><form method=\"get\" action=\"/ui/comparisons\" class=\"filters\">\
<span class=\"filter\"><label for=\"f-route\">Route</label><input id=\"f-route\" name=\"route\" value=\"{}\"></span>\
<span class=\"filter\"><label for=\"f-verdict\">Verdict</label><select id=\"f-verdict\" name=\"verdict\">{verdicts}</select></span>\
<span class=\"filter\"><label for=\"f-endpoint\">Endpoint</label><input id=\"f-endpoint\" name=\"endpoint\" value=\"{}\" placeholder=\"GET /items/{{id}}\"></span>\
<span class=\"filter\"><label for=\"f-finding\">Finding</label><input id=\"f-finding\" name=\"finding\" value=\"{}\" placeholder=\"finding id\" size=\"16\"></span>\
<span class=\"filter\"><button type=\"submit\">Filter</button> <a href=\"/ui/comparisons\">clear</a></span></form>\
<div class=\"scroll\"><table id=\"comparisons\" class=\"cards\"><thead><tr><th scope=\"col\">id</th><th scope=\"col\">time (UTC)</th><th scope=\"col\">route</th>\
<th scope=\"col\">endpoint</th><th scope=\"col\">request</th><th scope=\"col\">verdict</th><th scope=\"col\">status</th>\
<th scope=\"col\">primary</th><th scope=\"col\">shadow</th><th scope=\"col\">diffs</th></tr></thead><tbody>",
        esc(get("route")),
        esc(get("endpoint")),
        esc(get("finding")),
    );
    if result.items.is_empty() {
        body.push_str("<tr><td colspan=\"10\">no comparisons</td></tr>");
    }
    for c in &result.items {
        let _ = write!(
            body,
            "<tr><td data-label=\"id\"><a href=\"/ui/comparisons/{id}\">#{id}</a></td><td data-label=\"time\">{t}</td>\
<td data-label=\"route\">{r}</td><td data-label=\"endpoint\"><code>{e}</code></td><td data-label=\"request\"><code>{m} {u}</code></td>\
<td data-label=\"verdict\"><span class=\"verdict {v}\">{v}</span></td><td data-label=\"status\">{ps} / {ss}</td>\
<td class=\"num\" data-label=\"primary\">{pl}</td><td class=\"num\" data-label=\"shadow\">{sl}</td><td class=\"num\" data-label=\"diffs\">{d}</td></tr>",
            id = c.id,
            t = fmt_time(c.created_at_ms),
            r = esc(&c.route),
            e = esc(&c.endpoint),
            m = esc(&c.method),
            u = esc(&c.uri),
            v = c.verdict.as_str(),
            ps = c.primary_status,
            ss = c.shadow_status.map_or("—".into(), |s| s.to_string()),
            pl = ms(c.primary_latency_us),
            sl = c.shadow_latency_us.map_or("—".into(), ms),
            d = c.difference_count,
        );
    }
    body.push_str("</tbody></table></div>");
    if let Some(next) = result.next {
        let mut href = String::from("/ui/comparisons?");
        for k in ["route", "verdict", "endpoint", "finding", "limit"] {
            if !get(k).is_empty() {
                let _ = write!(href, "{k}={}&", enc(get(k)));
            }
        }
        let _ = write!(href, "before={next}");
        let _ = write!(
            body,
            "<p><a class=\"next\" rel=\"next\" href=\"{}\">next page →</a></p>",
            esc(&href)
        );
    }
    page(StatusCode::OK, "Comparisons", Nav::Comparisons, &body)
}

/// Escapes one JSON Pointer reference token.
fn pointer_token(s: &str) -> String {
    s.replace('~', "~0").replace('/', "~1")
}

fn marked(path: &str, diffs: &[&str]) -> bool {
    diffs
        .iter()
        .any(|d| *d == path || (path.starts_with(d) && path.as_bytes().get(d.len()) == Some(&b'/')))
}

fn line(out: &mut String, depth: usize, path: &str, diffs: &[&str], text: &str) {
    let class = if marked(path, diffs) {
        " class=\"diff\""
    } else {
        ""
    };
    let _ = write!(
        out,
        "<span{class} data-path=\"{}\">{}{}</span>",
        esc(path),
        "  ".repeat(depth),
        esc(text)
    );
}

fn node(
    out: &mut String,
    depth: usize,
    key: Option<&str>,
    v: &Value,
    path: &str,
    diffs: &[&str],
    comma: bool,
) {
    let prefix = key.map_or(String::new(), |k| {
        format!("{}: ", serde_json::to_string(k).unwrap_or_default())
    });
    let tail = if comma { "," } else { "" };
    match v {
        Value::Object(map) if !map.is_empty() => {
            line(out, depth, path, diffs, &format!("{prefix}{{"));
            let n = map.len();
            for (i, (k, child)) in map.iter().enumerate() {
                let p = format!("{path}/{}", pointer_token(k));
                node(out, depth + 1, Some(k), child, &p, diffs, i + 1 < n);
            }
            line(out, depth, path, diffs, &format!("}}{tail}"));
        }
        Value::Array(items) if !items.is_empty() => {
            line(out, depth, path, diffs, &format!("{prefix}["));
            let n = items.len();
            for (i, child) in items.iter().enumerate() {
                let p = format!("{path}/{i}");
                node(out, depth + 1, None, child, &p, diffs, i + 1 < n);
            }
            line(out, depth, path, diffs, &format!("]{tail}"));
        }
        scalar => {
            let s = serde_json::to_string(scalar).unwrap_or_default();
            line(out, depth, path, diffs, &format!("{prefix}{s}{tail}"));
        }
    }
}

/// Renders a JSON value as an indented tree, one `<span>` per line, where a line whose JSON
/// Pointer is (inside) one of `diffs` gets `class="diff"`.
pub fn json_tree(v: &Value, diffs: &[&str]) -> String {
    let mut out = String::from("<pre class=\"tree\">");
    node(&mut out, 0, None, v, "", diffs, false);
    out.push_str("</pre>");
    out
}

fn body_html(body: &[u8], truncated: bool, diffs: &[&str]) -> String {
    let mut out = if body.is_empty() {
        "<p class=\"meta\">(empty body)</p>".to_string()
    } else if let Ok(v) = serde_json::from_slice::<Value>(body) {
        json_tree(&v, diffs)
    } else {
        let class = if diffs.contains(&"body") {
            "tree diff"
        } else {
            "tree"
        };
        format!(
            "<pre class=\"{class}\">{}</pre>",
            esc(&String::from_utf8_lossy(body))
        )
    };
    if truncated {
        out.push_str("<p class=\"meta\">(truncated at the capture cap)</p>");
    }
    out
}

fn headers_table(headers: &[(String, String)], diffs: &[&str]) -> String {
    let mut out = String::from(
        "<div class=\"scroll\"><table class=\"headers\"><thead><tr><th scope=\"col\">header</th><th scope=\"col\">value</th></tr></thead><tbody>",
    );
    for (k, v) in headers {
        let class = if diffs.contains(&format!("header:{}", k.to_ascii_lowercase()).as_str()) {
            " class=\"diff\""
        } else {
            ""
        };
        let _ = write!(
            out,
            "<tr{class}><td>{}</td><td>{}</td></tr>",
            esc(k),
            esc(v)
        );
    }
    out.push_str("</tbody></table></div>");
    out
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// A `curl` command that replays the request (redacted headers stay redacted).
pub fn curl_command(c: &Comparison) -> String {
    let r = &c.request;
    let mut cmd = format!(
        "curl -g -X {} {}",
        r.method,
        shell_quote(&format!("http://{}{}", r.host, r.uri))
    );
    for (k, v) in &r.headers {
        if k.eq_ignore_ascii_case("host") || k.eq_ignore_ascii_case("content-length") {
            continue;
        }
        let _ = write!(cmd, " -H {}", shell_quote(&format!("{k}: {v}")));
    }
    if !r.body.is_empty() {
        let _ = write!(
            cmd,
            " --data-binary {}",
            shell_quote(&String::from_utf8_lossy(&r.body))
        );
    }
    cmd
}

fn side(
    title: &str,
    class: &str,
    r: Option<&umbra_diff::Response>,
    diffs: &[&str],
    error: Option<&str>,
) -> String {
    let mut out = format!("<section class=\"side {class}\"><h2>{title}</h2>");
    match r {
        Some(r) => {
            let sc = if diffs.contains(&"status") {
                " class=\"diff\""
            } else {
                ""
            };
            let _ = write!(
                out,
                "<p><span{sc}>status <strong>{}</strong></span> · latency <strong>{}</strong></p>",
                r.status,
                ms(r.latency_us)
            );
            out.push_str(&body_html(&r.body, r.truncated, diffs));
            out.push_str(&headers_table(&r.headers, diffs));
        }
        None => {
            let _ = write!(
                out,
                "<p class=\"error\">no response: {}</p>",
                esc(error.unwrap_or("shadow failed"))
            );
        }
    }
    out.push_str("</section>");
    out
}

/// `GET /ui/comparisons/{id}`
pub async fn detail(State(state): State<AdminState>, Path(id): Path<String>) -> Response {
    let Ok(id) = id.parse::<i64>() else {
        return error_page(
            StatusCode::UNPROCESSABLE_ENTITY,
            &format!("id: expected a whole number, got `{id}`"),
        );
    };
    let Some(store) = state.store.as_ref() else {
        return ApiError::store_unavailable().into();
    };
    let c = match store.get(id).await {
        Ok(Some(c)) => c,
        Ok(None) => {
            return error_page(
                StatusCode::NOT_FOUND,
                &format!("no comparison with id {id}"),
            )
        }
        Err(e) => return ApiError::store(&e).into(),
    };
    let diffs: Vec<&str> = c.differences.iter().map(|d| d.path.as_str()).collect();
    let r = &c.request;
    let mut body = format!(
        "<h1>Comparison #{id} <span class=\"verdict {v}\">{v}</span></h1>\
<p class=\"meta\">{t} UTC · route <a href=\"/ui/routes/{rl}\">{route}</a> · endpoint <code>{ep}</code> · request id <code>{rid}</code></p>\
<p class=\"request-line\"><code>{m} {u}</code> · host <code>{host}</code> \
<button type=\"button\" class=\"copy small secondary\" data-curl=\"{curl}\">copy as curl</button></p>",
        v = c.verdict.as_str(),
        t = fmt_time(c.created_at_ms),
        rl = esc(&enc(&c.route)),
        route = esc(&c.route),
        ep = esc(&c.endpoint),
        rid = esc(&c.request_id),
        m = esc(&r.method),
        u = esc(&r.uri),
        host = esc(&r.host),
        curl = esc(&curl_command(&c)),
    );
    body.push_str("<h2>Differences</h2><div class=\"scroll\"><table class=\"diffs\"><thead><tr><th scope=\"col\">path</th><th scope=\"col\">kind</th><th scope=\"col\">primary</th><th scope=\"col\">shadow</th></tr></thead><tbody>");
    if c.differences.is_empty() {
        body.push_str("<tr><td colspan=\"4\">no differences</td></tr>");
    }
    let show = |v: &Option<Value>| v.as_ref().map_or("—".to_string(), |v| v.to_string());
    for d in &c.differences {
        let _ = write!(
            body,
            "<tr><td><code>{}</code></td><td>{}</td><td class=\"del\"><code>{}</code></td><td class=\"add\"><code>{}</code></td></tr>",
            esc(&d.path),
            d.kind.as_str(),
            esc(&show(&d.primary)),
            esc(&show(&d.candidate)),
        );
    }
    body.push_str("</tbody></table></div><div class=\"sides\">");
    body.push_str(&side("Primary", "primary", Some(&c.primary), &diffs, None));
    body.push_str(&side(
        "Shadow",
        "shadow",
        c.shadow.as_ref(),
        &diffs,
        c.error.as_deref(),
    ));
    let _ = write!(
        body,
        "</div><details class=\"card request\"><summary>Request headers{}</summary>{}",
        if r.body.is_empty() { "" } else { " and body" },
        headers_table(&r.headers, &[])
    );
    if !r.body.is_empty() {
        body.push_str(&body_html(&r.body, false, &[]));
    }
    body.push_str("</details>");
    page(
        StatusCode::OK,
        &format!("comparison {id}"),
        Nav::Comparisons,
        &body,
    )
}

/// `GET /ui/events?before=`: the audit log.
pub async fn events(
    State(state): State<AdminState>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let before = match q.get("before").filter(|s| !s.is_empty()) {
        None => None,
        Some(s) => match s.parse::<i64>() {
            Ok(v) => Some(v),
            Err(_) => {
                return error_page(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    &format!("before: expected a whole number, got `{s}`"),
                )
            }
        },
    };
    let Some(store) = state.store.as_ref() else {
        return ApiError::store_unavailable().into();
    };
    let limit = DEFAULT_LIST_LIMIT;
    let items = match store.list_events(limit, before).await {
        Ok(items) => items,
        Err(e) => return ApiError::store(&e).into(),
    };
    let mut body = String::from(
        "<h1>Events</h1><div class=\"scroll\"><table id=\"events\" class=\"cards\"><thead><tr><th scope=\"col\">id</th><th scope=\"col\">time (UTC)</th>\
<th scope=\"col\">kind</th><th scope=\"col\">route</th><th scope=\"col\">source</th><th scope=\"col\">actor</th><th scope=\"col\">detail</th></tr></thead><tbody>",
    );
    if items.is_empty() {
        body.push_str("<tr><td colspan=\"7\">no events</td></tr>");
    }
    for e in &items {
        let route = match &e.route {
            Some(r) => format!("<a href=\"/ui/routes/{}\">{}</a>", esc(&enc(r)), esc(r)),
            None => "—".into(),
        };
        let _ = write!(
            body,
            "<tr><td data-label=\"id\">{}</td><td data-label=\"time\">{}</td><td data-label=\"kind\">{}</td><td data-label=\"route\">{route}</td>\
<td data-label=\"source\">{}</td><td data-label=\"actor\">{}</td><td data-label=\"detail\" class=\"detail\"><code>{}</code></td></tr>",
            e.id,
            fmt_time(e.created_at_ms),
            esc(&e.kind),
            esc(&e.source),
            esc(e.actor.as_deref().unwrap_or("—")),
            esc(&e.detail.to_string()),
        );
    }
    body.push_str("</tbody></table></div>");
    if items.len() as u32 >= limit.max(1) {
        if let Some(last) = items.last() {
            let _ = write!(body, "<p><a class=\"next\" rel=\"next\" href=\"/ui/events?before={}\">next page →</a></p>", last.id);
        }
    }
    page(StatusCode::OK, "Events", Nav::Events, &body)
}
