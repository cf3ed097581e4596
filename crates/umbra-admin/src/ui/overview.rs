//! `GET /`: every route with its rule, services, a health dot per server and live stats; the
//! services and their servers; a "New route" form. `app.js` polls `/api/routes` and
//! `/api/services` to keep the numbers (and requests per second) and the dots current.

use std::fmt::Write;

use axum::extract::State;
use axum::response::Response;
use http::StatusCode;
use serde_json::Value;
use umbra_core::snapshot::Snapshot;
use umbra_core::upstream::Service;

use super::route_form::route_form;
use super::{enc, esc, fmt_ms, health_dot, page, pct, server_state, Nav};
use crate::AdminState;

/// A service name followed by one health dot per server.
fn service_cell(snap: &Snapshot, name: &str, extra: &str) -> String {
    let mut out = format!("{}{}", esc(name), esc(extra));
    if let Some(svc) = snap.services.get(name) {
        out.push_str(" <span class=\"dots\">");
        for s in &svc.servers {
            out.push_str(&health_dot(
                name,
                &s.addr.url(),
                s.is_healthy(),
                s.is_ejected(),
            ));
        }
        out.push_str("</span>");
    }
    out
}

/// `file`/`api`/`docker`, and whether runtime changes override a file or docker route.
pub fn source_badges(source: &str, overridden: bool) -> String {
    let mut out = format!(
        "<span class=\"badge src-{s}\" title=\"defined by {s}\">{s}</span>",
        s = esc(source)
    );
    if overridden {
        out.push_str(
            " <span class=\"badge override\" title=\"changed at runtime (API, UI or CLI)\">overridden</span>",
        );
    }
    out
}

/// The route's shadow candidates, each as `service (N%)`.
fn shadows(snap: &Snapshot, v: &Value) -> String {
    let list = v["candidates"].as_array().map_or(&[][..], Vec::as_slice);
    if list.is_empty() {
        return "—".into();
    }
    let cell = |c: &Value| {
        let percent = c["percent"].as_f64().unwrap_or(100.0);
        service_cell(
            snap,
            c["service"].as_str().unwrap_or_default(),
            &format!(" ({percent}%)"),
        )
    };
    list.iter().map(cell).collect::<Vec<_>>().join("<br>")
}

fn route_row(snap: &Snapshot, v: &Value, worst: Option<umbra_diff::Severity>) -> String {
    let name = v["name"].as_str().unwrap_or_default();
    let s = &v["stats"];
    let candidate = |key: &str, amount: &str| match v[key]["service"].as_str() {
        Some(svc) => {
            let a = v[key][amount]
                .as_f64()
                .map_or(String::new(), |p| format!(" ({p}%)"));
            service_cell(snap, svc, &a)
        }
        None => "—".into(),
    };
    let num = |stat: &str, label: &str, text: String| {
        format!("<td class=\"num\" data-stat=\"{stat}\" data-label=\"{label}\">{text}</td>")
    };
    let mut row = format!(
        "<tr data-route=\"{ename}\"><td data-label=\"route\"><a href=\"/ui/routes/{link}\"><strong>{ename}</strong></a> {badges}</td>\
<td data-label=\"rule\"><code>{rule}</code></td><td data-label=\"primary\">{primary}</td>\
<td data-label=\"shadow\">{shadow}</td><td data-label=\"canary\">{canary}</td>",
        ename = esc(name),
        link = esc(&enc(name)),
        badges = source_badges(
            v["source"].as_str().unwrap_or_default(),
            v["overridden"].as_bool() == Some(true)
        ),
        rule = esc(v["rule"].as_str().unwrap_or_default()),
        primary = service_cell(snap, v["service"].as_str().unwrap_or_default(), ""),
        shadow = shadows(snap, v),
        canary = candidate("canary", "weight"),
    );
    row.push_str(&num("rps", "req/s", "—".into()));
    row.push_str(&num(
        "requests",
        "requests",
        s["requests"].as_u64().unwrap_or(0).to_string(),
    ));
    row.push_str(&num(
        "error_rate",
        "error rate",
        pct(s["error_rate"].as_f64()),
    ));
    row.push_str(&num("p50_ms", "p50", fmt_ms(&s["p50_ms"])));
    row.push_str(&num("p99_ms", "p99", fmt_ms(&s["p99_ms"])));
    row.push_str(&num(
        "shadow_p50_ms",
        "shadow p50",
        fmt_ms(&s["shadow_p50_ms"]),
    ));
    row.push_str(&num(
        "shadow_p99_ms",
        "shadow p99",
        fmt_ms(&s["shadow_p99_ms"]),
    ));
    row.push_str(&num("diff_rate", "diff rate", pct(s["diff_rate"].as_f64())));
    let _ = write!(
        row,
        "<td data-label=\"worst finding\" class=\"worst\">{}</td></tr>",
        super::findings::worst_badge(worst)
    );
    row
}

fn service_row(svc: &Service) -> String {
    let spec = &svc.spec;
    let mut servers = String::from("<ul class=\"servers\">");
    let mut available = 0;
    for s in &svc.servers {
        let url = s.addr.url();
        let (healthy, ejected) = (s.is_healthy(), s.is_ejected());
        if s.is_available() {
            available += 1;
        }
        let _ = write!(
            servers,
            "<li>{dot} <code>{u}</code> <span class=\"state\" data-service=\"{n}\" data-server=\"{u}\">{word}</span></li>",
            dot = health_dot(&spec.name, &url, healthy, ejected),
            u = esc(&url),
            n = esc(&spec.name),
            word = server_state(healthy, ejected).1,
        );
    }
    servers.push_str("</ul>");
    let check = spec
        .health
        .as_ref()
        .map_or("passive only".to_string(), |h| {
            format!(
                "<code>{}</code> every {} ms",
                esc(&h.path),
                h.interval.as_millis()
            )
        });
    format!(
        "<tr data-service=\"{n}\"><td data-label=\"service\"><strong>{n}</strong> {src}</td>\
<td data-label=\"servers\">{servers}</td><td class=\"num\" data-label=\"available\" data-available=\"{n}\">{available}/{total}</td>\
<td data-label=\"health check\">{check}</td></tr>",
        n = esc(&spec.name),
        src = source_badges(spec.source.as_str(), false),
        total = svc.servers.len(),
    )
}

/// A line that sends people to the discovery page when containers carry label mistakes.
fn discovery_notice(state: &AdminState) -> String {
    let d = state.runtime.discovery();
    if !d.enabled {
        return String::new();
    }
    let bad = d.containers.iter().filter(|c| !c.errors.is_empty()).count();
    let mut out = String::from("<p class=\"meta\">Docker discovery: ");
    out.push_str(if d.connected {
        "connected"
    } else {
        "<span class=\"error\">engine unreachable</span>"
    });
    let _ = write!(out, " · {} containers", d.containers.len());
    if bad > 0 {
        let _ = write!(
            out,
            " · <a class=\"error\" href=\"#discovery\">{bad} with label mistakes</a>"
        );
    }
    out.push_str("</p>");
    out
}

/// `GET /`
pub async fn overview(State(state): State<AdminState>) -> Response {
    let snap = state.runtime.load();
    let mut rows = String::new();
    for r in &snap.routes {
        let worst = crate::findings::worst_severity(&state.findings, &r.spec.name);
        rows.push_str(&route_row(&snap, &crate::routes::route_json(r), worst));
    }
    if rows.is_empty() {
        rows.push_str("<tr><td colspan=\"14\">No routes yet: make one below, in the config file or with Docker labels.</td></tr>");
    }
    let mut names: Vec<&str> = snap.services.keys().map(String::as_str).collect();
    names.sort_unstable();
    let services: String = names
        .iter()
        .filter_map(|n| snap.services.get(*n))
        .map(|s| service_row(s))
        .collect();
    let body = format!(
        "<h1>Routes</h1><p class=\"meta\">umbra {version} · config: {source} · generation {generation} · \
<span id=\"live\" aria-live=\"polite\">live</span></p>{discovery}\
<div class=\"scroll\"><table id=\"routes\" class=\"cards\"><thead><tr><th scope=\"col\">route</th><th scope=\"col\">rule</th>\
<th scope=\"col\">primary</th><th scope=\"col\">shadow</th><th scope=\"col\">canary</th><th scope=\"col\">req/s</th>\
<th scope=\"col\">requests</th><th scope=\"col\">error rate</th><th scope=\"col\">p50</th><th scope=\"col\">p99</th>\
<th scope=\"col\">shadow p50</th><th scope=\"col\">shadow p99</th><th scope=\"col\">diff rate</th>\
<th scope=\"col\">worst finding</th></tr></thead><tbody>{rows}</tbody></table></div>\
<details class=\"card new-route\"{open}><summary>New route</summary>{form}</details>\
<h2>Services</h2><div class=\"scroll\"><table id=\"services\" class=\"cards\"><thead><tr><th scope=\"col\">service</th>\
<th scope=\"col\">servers</th><th scope=\"col\">available</th><th scope=\"col\">health check</th></tr></thead>\
<tbody>{services}</tbody></table></div>{discovery_section}\
<p class=\"meta\">JSON: <a href=\"/api/routes\">/api/routes</a> · <a href=\"/api/comparisons\">/api/comparisons</a> · \
<a href=\"/api/services\">/api/services</a> · <a href=\"/api/events\">/api/events</a> · \
<a href=\"/api/openapi.json\">OpenAPI</a></p>",
        version = esc(state.version),
        source = esc(&state.config_source),
        generation = snap.generation,
        discovery = discovery_notice(&state),
        discovery_section = super::discovery::section(&state.runtime.discovery()),
        open = if snap.routes.is_empty() { " open" } else { "" },
        form = route_form(&names, None),
    );
    page(StatusCode::OK, "Overview", Nav::Overview, &body)
}
