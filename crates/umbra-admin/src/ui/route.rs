//! `GET /ui/routes/{name}`: findings first, the route's controls and its rollout timeline, then
//! the field differences and latency charts (one click away).

use std::fmt::Write;

use axum::extract::{Path, State};
use axum::response::Response;
use http::StatusCode;
use serde_json::Value;

use super::route_form::route_form;
use super::{enc, error_page, esc, page, pct, Nav};
use crate::AdminState;

/// Primary vs shadow p50/p90/p99 (µs) as a small horizontal bar chart.
pub fn latency_svg(primary: &Value, shadow: &Value) -> String {
    let keys = ["p50", "p90", "p99"];
    let val = |v: &Value, k: &str| v[k].as_f64().unwrap_or(0.0);
    let max = keys
        .iter()
        .flat_map(|k| [val(primary, k), val(shadow, k)])
        .fold(0.0f64, f64::max)
        .max(1.0);
    let (label_w, bar_w, row_h) = (48.0, 300.0, 14.0);
    let height = keys.len() as f64 * (2.0 * row_h + 10.0) + 24.0;
    let mut svg = format!(
        "<svg class=\"chart\" viewBox=\"0 0 480 {height}\" role=\"img\" aria-label=\"latency p50, p90 and p99: primary vs shadow\">"
    );
    let mut y = 4.0;
    for k in keys {
        let _ = write!(
            svg,
            "<text x=\"0\" y=\"{}\" class=\"lbl\">{k}</text>",
            y + row_h + 4.0
        );
        for (class, v) in [
            ("bar-primary", val(primary, k)),
            ("bar-shadow", val(shadow, k)),
        ] {
            let w = (v / max * bar_w).max(1.0);
            let _ = write!(
                svg,
                "<rect x=\"{label_w}\" y=\"{y}\" width=\"{w:.1}\" height=\"{}\" class=\"{class}\"><title>{} {k}: {:.1} ms</title></rect>\
<text x=\"{:.1}\" y=\"{}\" class=\"val\">{:.1} ms</text>",
                row_h - 2.0,
                if class == "bar-primary" { "primary" } else { "shadow" },
                v / 1000.0,
                label_w + w + 4.0,
                y + row_h - 3.0,
                v / 1000.0,
            );
            y += row_h;
        }
        y += 10.0;
    }
    let _ = write!(
        svg,
        "<rect x=\"{label_w}\" y=\"{y}\" width=\"10\" height=\"10\" class=\"bar-primary\"></rect>\
<text x=\"{}\" y=\"{}\" class=\"lbl\">primary</text>\
<rect x=\"{}\" y=\"{y}\" width=\"10\" height=\"10\" class=\"bar-shadow\"></rect>\
<text x=\"{}\" y=\"{}\" class=\"lbl\">shadow</text></svg>",
        label_w + 14.0,
        y + 9.0,
        label_w + 90.0,
        label_w + 104.0,
        y + 9.0
    );
    svg
}

fn controls(name: &str, route: &Value) -> String {
    let base = format!("/api/routes/{}", enc(name));
    let shadow_svc = route["shadow"]["service"].as_str().unwrap_or_default();
    let shadow_pct = route["shadow"]["percent"]
        .as_f64()
        .map_or(String::new(), |p| p.to_string());
    let canary_svc = route["canary"]["service"].as_str().unwrap_or_default();
    let canary_w = route["canary"]["weight"]
        .as_f64()
        .map_or(String::new(), |p| p.to_string());
    let service = route["service"].as_str().unwrap_or_default();
    let candidate = [canary_svc, shadow_svc].into_iter().find(|s| !s.is_empty());
    let (promote_q, promote_hint) = match candidate {
        Some(c) => (
            format!("Promote {c} to be the service of route {name}? ({service} is kept for a rollback.)"),
            format!("Promote makes <strong>{}</strong> the service and ends the shadow and canary.", esc(c)),
        ),
        None => (
            format!("Promote the candidate of route {name}?"),
            "Nothing to promote: start a shadow or a canary first.".to_string(),
        ),
    };
    let (rollback_q, rollback_hint) = match route["previous_service"].as_str() {
        Some(p) => (
            format!("Return all traffic of route {name} to {p}?"),
            format!(
                "Rollback returns all traffic to <strong>{}</strong>.",
                esc(p)
            ),
        ),
        None => (
            format!("Return all traffic of route {name} to its service?"),
            "Rollback ends the canary and the shadow.".to_string(),
        ),
    };
    format!(
        "<section class=\"controls\" aria-label=\"controls\">\
<form class=\"api card\" data-method=\"PUT\" data-url=\"{b}/shadow\"><h3>Shadow</h3>\
<label for=\"shadow-service\">Shadow service</label><input id=\"shadow-service\" name=\"service\" required value=\"{ss}\">\
<label for=\"shadow-percent\">Percent</label><input id=\"shadow-percent\" name=\"percent\" type=\"number\" min=\"0\" max=\"100\" step=\"any\" value=\"{sp}\">\
<div class=\"row\"><button type=\"submit\">Shadow on</button>\
<button type=\"button\" class=\"api-button secondary\" data-method=\"DELETE\" data-url=\"{b}/shadow\">Shadow off</button></div></form>\
<form class=\"api card\" data-method=\"PUT\" data-url=\"{b}/canary\"><h3>Canary</h3>\
<label for=\"canary-service\">Canary service</label><input id=\"canary-service\" name=\"service\" required value=\"{cs}\">\
<label for=\"canary-weight\">Weight (%; 0 removes)</label><input id=\"canary-weight\" name=\"weight\" type=\"number\" min=\"0\" max=\"100\" step=\"any\" required value=\"{cw}\">\
<div class=\"row\"><button type=\"submit\">Set canary</button></div></form>\
<div class=\"card\"><h3>Release</h3><p class=\"hint\">{promote_hint}</p><p class=\"hint\">{rollback_hint}</p><div class=\"row\">\
<button type=\"button\" class=\"api-button\" data-method=\"POST\" data-url=\"{b}/promote\" data-confirm=\"{pq}\">Promote</button>\
<button type=\"button\" class=\"api-button danger\" data-method=\"POST\" data-url=\"{b}/rollback\" data-confirm=\"{rq}\">Rollback</button>\
</div></div>{hold}</section>",
        hold = hold_card(name, &base, &route["hold"]),
        pq = esc(&promote_q),
        rq = esc(&rollback_q),
        b = esc(&base),
        ss = esc(shadow_svc),
        sp = esc(&shadow_pct),
        cs = esc(canary_svc),
        cw = esc(&canary_w),
    )
}

/// Pause, maintenance and resume (`umbra pause|maintenance|resume`), with the state now.
fn hold_card(name: &str, base: &str, hold: &Value) -> String {
    let state = match hold["state"].as_str() {
        Some("paused") => format!(
            "<strong>Paused</strong>: new requests wait up to {} ms for resume.",
            hold["max_ms"]
        ),
        Some("maintenance") => format!(
            "<strong>In maintenance</strong>: requests get 503 “{}”.",
            esc(hold["message"].as_str().unwrap_or_default())
        ),
        _ => "Requests flow.".to_string(),
    };
    format!(
        "<form class=\"api card hold\" data-method=\"POST\" data-url=\"{b}/maintenance\" \
data-confirm=\"{q}\"><h3>Traffic</h3><p class=\"hint\" id=\"hold-state\">{state}</p>\
<label for=\"hold-message\">Maintenance message</label><input id=\"hold-message\" name=\"message\" \
placeholder=\"Back soon\"><div class=\"row\"><button type=\"submit\" class=\"danger\">Maintenance</button>\
<button type=\"button\" class=\"api-button secondary\" data-method=\"POST\" data-url=\"{b}/pause\" \
data-confirm=\"{pq}\">Pause</button>\
<button type=\"button\" class=\"api-button\" data-method=\"POST\" data-url=\"{b}/resume\">Resume</button></div></form>",
        b = esc(base),
        q = esc(&format!("Answer every request of route {name} with 503 until resume?")),
        pq = esc(&format!(
            "Hold new requests of route {name} until resume (503 after 30 s)?"
        )),
    )
}

fn endpoints_html(name: &str, diffs: &Value) -> String {
    let mut out = String::new();
    let ignore_url = esc(&format!("/api/routes/{}/ignore", enc(name)));
    let empty = Vec::new();
    let endpoints = diffs["endpoints"].as_array().unwrap_or(&empty);
    if endpoints.is_empty() {
        return "<p>No comparisons for this route yet.</p>".into();
    }
    out.push_str(
        "<p><label class=\"check\"><input type=\"checkbox\" id=\"hide-noise\"> hide noise (fields that are not significant)</label></p>",
    );
    for ep in endpoints {
        let endpoint = ep["endpoint"].as_str().unwrap_or_default();
        let _ = write!(
            out,
            "<section class=\"endpoint\"><h3><code>{}</code></h3><p class=\"meta\">{} comparisons · {} different · {} noise · {} shadow errors · \
<a href=\"/ui/comparisons?route={}&amp;endpoint={}\">comparisons</a></p>",
            esc(endpoint),
            ep["total"].as_u64().unwrap_or(0),
            ep["different"].as_u64().unwrap_or(0),
            ep["noise"].as_u64().unwrap_or(0),
            ep["shadow_error"].as_u64().unwrap_or(0),
            esc(&enc(name)),
            esc(&enc(endpoint)),
        );
        let lat = &ep["latency"];
        out.push_str("<div class=\"split\"><div>");
        out.push_str(&latency_svg(&lat["primary"], &lat["shadow"]));
        if lat["regression"]["flagged"].as_bool() == Some(true) {
            let _ = write!(
                out,
                "<p class=\"error\">latency regression: {}</p>",
                esc(lat["regression"]["reason"].as_str().unwrap_or_default())
            );
        }
        out.push_str("</div><div class=\"scroll\"><table class=\"fields\"><thead><tr><th scope=\"col\">path</th><th scope=\"col\">kind</th>\
<th scope=\"col\">rate</th><th scope=\"col\">noise rate</th><th scope=\"col\">significant</th><th scope=\"col\"></th></tr></thead><tbody>");
        let fields = ep["fields"].as_array().unwrap_or(&empty);
        if fields.is_empty() {
            out.push_str("<tr><td colspan=\"6\">no differing fields</td></tr>");
        }
        for f in fields {
            let path = f["path"].as_str().unwrap_or_default();
            let significant = f["significant"].as_bool() == Some(true);
            let _ = write!(
                out,
                "<tr class=\"{cls}\"><td><code>{p}</code></td><td>{kind}</td><td class=\"num\">{rate}</td><td class=\"num\">{noise}</td><td>{sig}</td>\
<td><button type=\"button\" class=\"api-button small secondary\" data-method=\"POST\" data-url=\"{ignore_url}\" data-path=\"{p}\" \
aria-label=\"mark {p} as noise\">mark as noise</button></td></tr>",
                cls = if significant { "field significant" } else { "field noise" },
                p = esc(path),
                kind = esc(f["kind"].as_str().unwrap_or_default()),
                rate = pct(f["rate"].as_f64()),
                noise = pct(f["noise_rate"].as_f64()),
                sig = if significant { "yes" } else { "no" },
            );
        }
        out.push_str("</tbody></table></div></div></section>");
    }
    out
}

/// The field-by-field differences, one click away below the findings.
fn field_table(diffs_html: &str) -> String {
    format!(
        "<details class=\"card\" id=\"field-table\"><summary>Differences by endpoint, field by field</summary>{diffs_html}</details>"
    )
}

/// Shadow or canary as `service (N%)`; a list of shadow candidates as each of them.
fn candidate(v: &Value, amount: &str) -> String {
    if let Some(list) = v.as_array() {
        let each: Vec<String> = list.iter().map(|c| candidate(c, amount)).collect();
        return each.join(", ");
    }
    match v["service"].as_str() {
        Some(s) => format!(
            "{} ({}%)",
            esc(s),
            v[amount].as_f64().map_or("—".into(), |x| x.to_string())
        ),
        None => "—".into(),
    }
}

/// The route's facts. For a file route with runtime overrides, each overridden key is marked
/// and shows what the file says (`file` is the route as the file writes it).
fn facts(r: &Value, file: Option<&Value>) -> String {
    let mark = |key: &str, show: &dyn Fn(&Value) -> String| -> String {
        let Some(file) = file else {
            return String::new();
        };
        if r["overridden"].as_bool() != Some(true) || file[key] == r[key] {
            return String::new();
        }
        format!(
            " <span class=\"badge override\">runtime override</span> <span class=\"meta\">(file: {})</span>",
            show(&file[key])
        )
    };
    let plain = |v: &Value| esc(v.as_str().unwrap_or("—"));
    let source = r["source"].as_str().unwrap_or_default();
    format!(
        "<dl class=\"facts\"><dt>rule</dt><dd><code>{rule}</code></dd><dt>service</dt><dd>{svc}{svc_m}</dd>\
<dt>shadow</dt><dd>{sh}{sh_m}</dd><dt>canary</dt><dd>{ca}{ca_m}</dd><dt>previous service</dt><dd>{prev}</dd>\
<dt>priority</dt><dd>{prio}</dd><dt>strip prefix</dt><dd>{strip}</dd><dt>source</dt><dd>{badges}</dd></dl>",
        rule = esc(r["rule"].as_str().unwrap_or_default()),
        svc = esc(r["service"].as_str().unwrap_or_default()),
        svc_m = mark("service", &plain),
        sh = candidate(&r["shadow"], "percent"),
        sh_m = mark("shadow", &|v| candidate(v, "percent")),
        ca = candidate(&r["canary"], "weight"),
        ca_m = mark("canary", &|v| candidate(v, "weight")),
        prev = esc(r["previous_service"].as_str().unwrap_or("—")),
        prio = r["priority"].as_i64().unwrap_or_default(),
        strip = r["strip_prefix"].as_str().map_or("—".into(), |s| format!("<code>{}</code>", esc(s))),
        badges = super::overview::source_badges(source, r["overridden"].as_bool() == Some(true)),
    )
}

/// How a route can be changed: API routes are edited and deleted here; file and docker routes
/// are read-only apart from the runtime controls, which become overrides.
fn definition(name: &str, r: &Value, raw: &Value, services: &[&str], config: &str) -> String {
    match r["source"].as_str() {
        Some("api") => format!(
            "<details class=\"card edit-route\"><summary>Edit route</summary>{form}\
<div class=\"row danger-zone\"><button type=\"button\" class=\"api-button danger\" data-method=\"DELETE\" \
data-url=\"/api/routes/{link}\" data-then=\"/\" data-confirm=\"Delete route {ename}? Its traffic will get 404 (or a lower-priority route).\">\
Delete route</button></div></details>",
            form = route_form(services, Some(raw)),
            link = esc(&enc(name)),
            ename = esc(name),
        ),
        Some("docker") => "<p class=\"note\">Defined by Docker labels: read-only here (change the labels). \
The shadow, canary, promote and rollback controls below apply as runtime overrides.</p>"
            .to_string(),
        _ => format!(
            "<p class=\"note\">Defined in the config file <code>{}</code>: read-only here (edit the file; it \
reloads). The shadow, canary, promote and rollback controls below apply as runtime overrides.</p>",
            esc(config)
        ),
    }
}

/// `GET /ui/routes/{name}`
pub async fn page_handler(State(state): State<AdminState>, Path(name): Path<String>) -> Response {
    let (route, raw, file, services) = {
        let snap = state.runtime.load();
        let route = snap.route(&name);
        let raw = route.and_then(|r| serde_json::to_value(&r.spec.raw).ok());
        let file = snap.config.routes.iter().find(|r| r.name == name).map(|f| {
            // The keys `facts` compares, in the shape `route_json` gives them.
            serde_json::json!({
                "service": f.raw.service,
                "shadow": f.raw.shadow,
                "canary": f.raw.canary,
            })
        });
        let mut services: Vec<String> = snap.services.keys().cloned().collect();
        services.sort_unstable();
        (
            route.map(|r| crate::routes::route_json(r)),
            raw,
            file,
            services,
        )
    };
    let services: Vec<&str> = services.iter().map(String::as_str).collect();
    let diffs = crate::routes::diffs(State(state.clone()), Path(name.clone())).await;
    let diffs_html = match (&diffs, &route) {
        (Ok(d), _) => endpoints_html(&name, &d.0),
        (Err(e), Some(_)) => format!("<p class=\"error\">{}</p>", esc(&e.message)),
        (Err(e), None) => return error_page(e.status, &e.message),
    };
    let listed = route
        .as_ref()
        .and_then(|r| r["candidates"].as_array().cloned());
    let findings = match crate::findings::route_findings(&state, &name, false, None).await {
        Ok(f) => {
            let side = super::findings::candidates(&name, &listed.unwrap_or_default(), &f);
            super::findings::section(&f) + &side
        }
        Err(e) => format!("<p class=\"error\">{}</p>", esc(&e.message)),
    };
    let mut body = format!("<h1>Route <code>{}</code></h1>", esc(&name));
    body.push_str(&findings);
    match (&route, &raw) {
        (Some(r), Some(raw)) => {
            body.push_str(&facts(r, file.as_ref()));
            body.push_str(&definition(&name, r, raw, &services, &state.config_source));
            body.push_str(&controls(&name, r));
            if let Some(rollouts) = &state.rollouts {
                if let Some(ro) = rollouts.status(&name).await {
                    body.push_str(&super::rollout::timeline(&name, &ro.to_json()));
                }
            }
        }
        _ => body.push_str("<p class=\"meta\">This route is gone; its comparisons remain.</p>"),
    }
    body.push_str(&field_table(&diffs_html));
    page(
        StatusCode::OK,
        &format!("route {name}"),
        Nav::Overview,
        &body,
    )
}
