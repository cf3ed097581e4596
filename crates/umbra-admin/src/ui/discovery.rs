//! The overview's "Docker discovery" section: what discovery sees (the report of
//! `GET /api/discovery`): the engine connection and every container with its state, address,
//! the services and routes it feeds and each label mistake it carries, so that none is dropped
//! silently.

use std::fmt::Write;

use umbra_core::discovery::{ContainerStatus, DiscoveryStatus};

use super::{enc, esc, fmt_time};

fn list(items: &[String], link: bool) -> String {
    if items.is_empty() {
        return "—".into();
    }
    items
        .iter()
        .map(|i| {
            if link {
                format!("<a href=\"/ui/routes/{}\">{}</a>", esc(&enc(i)), esc(i))
            } else {
                esc(i)
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn container_row(c: &ContainerStatus) -> String {
    let (dot, word) = if c.in_rotation {
        ("up", "in rotation")
    } else {
        ("down", "out of rotation")
    };
    let errors = if c.errors.is_empty() {
        "none".to_string()
    } else {
        let mut out = String::from("<ul class=\"label-errors\">");
        for e in &c.errors {
            // `-` marks a problem of the container rather than of one label.
            let label = if e.label == "-" {
                "container".to_string()
            } else {
                format!("<code>{}</code>", esc(&e.label))
            };
            let _ = write!(out, "<li>{label}: {}</li>", esc(&e.message));
        }
        out.push_str("</ul>");
        out
    };
    let short_id: String = c.id.chars().take(12).collect();
    format!(
        "<tr class=\"{cls}\"><td data-label=\"container\"><strong>{name}</strong> <code class=\"meta\">{id}</code></td>\
<td data-label=\"state\">{state}{health}</td>\
<td data-label=\"rotation\"><span class=\"dot {dot}\" role=\"img\" aria-label=\"{word}\" title=\"{word}\"></span> {word}</td>\
<td data-label=\"address\"><code>{addr}</code>{net}</td><td data-label=\"services\">{svcs}</td>\
<td data-label=\"routes\">{routes}</td><td data-label=\"label errors\">{errors}</td></tr>",
        cls = if c.errors.is_empty() { "" } else { "has-errors" },
        name = esc(&c.name),
        id = esc(&short_id),
        state = esc(&c.state),
        health = c
            .health
            .as_deref()
            .map_or(String::new(), |h| format!(" ({})", esc(h))),
        addr = esc(c.address.as_deref().unwrap_or("—")),
        net = c.network.as_deref().map_or(String::new(), |n| {
            format!(" <span class=\"meta\">on {}</span>", esc(n))
        }),
        svcs = list(&c.services, false),
        routes = list(&c.routes, true),
    )
}

/// The section for a discovery report (`id="discovery"`, the nav bar links to it).
pub fn section(d: &DiscoveryStatus) -> String {
    let mut out = String::from(
        "<section id=\"discovery\" aria-labelledby=\"discovery-h\"><h2 id=\"discovery-h\">Docker discovery</h2>",
    );
    if !d.enabled {
        out.push_str(
            "<p class=\"meta\">Off. Add a <code>[docker]</code> section to the config to route to containers by \
their labels (<code>traefik.*</code> and <code>umbra.*</code>, e.g. <code>umbra.shadow.of=api</code>).</p></section>",
        );
        return out;
    }
    let (dot, word) = if d.connected {
        ("up", "connected")
    } else {
        ("down", "not connected")
    };
    let bad = d.containers.iter().filter(|c| !c.errors.is_empty()).count();
    let _ = write!(
        out,
        "<p class=\"meta\"><span class=\"dot {dot}\" role=\"img\" aria-label=\"engine {word}\"></span> \
engine <code>{endpoint}</code> {word} · last sync {sync} · {n} containers · {bad} with label mistakes</p>",
        endpoint = esc(&d.endpoint),
        sync = d
            .last_sync_at_ms
            .map_or("never".into(), |t| format!("{} UTC", fmt_time(t))),
        n = d.containers.len(),
    );
    if let Some(p) = &d.project {
        let _ = write!(
            out,
            "<p class=\"meta\">Only containers of compose project <code>{}</code> (from {}).</p>",
            esc(p),
            esc(d.project_from.as_deref().unwrap_or("config")),
        );
    }
    if let Some(n) = &d.notice {
        let _ = write!(
            out,
            "<p class=\"error notice\" role=\"status\">{}</p>",
            esc(n)
        );
    }
    if let Some(e) = &d.last_error {
        let _ = write!(
            out,
            "<p class=\"error\" role=\"alert\">{} (routes from the last good listing are kept)</p>",
            esc(e)
        );
    }
    out.push_str(
        "<div class=\"scroll\"><table id=\"containers\" class=\"cards\"><thead><tr><th scope=\"col\">container</th>\
<th scope=\"col\">state</th><th scope=\"col\">rotation</th><th scope=\"col\">address</th><th scope=\"col\">services</th>\
<th scope=\"col\">routes</th><th scope=\"col\">label errors</th></tr></thead><tbody>",
    );
    if d.containers.is_empty() {
        out.push_str("<tr><td colspan=\"7\">No container asks to be exposed (<code>traefik.enable=true</code> or <code>umbra.enable=true</code>).</td></tr>");
    }
    for c in &d.containers {
        out.push_str(&container_row(c));
    }
    out.push_str("</tbody></table></div><p class=\"meta\">JSON: <a href=\"/api/discovery\">/api/discovery</a></p></section>");
    out
}
