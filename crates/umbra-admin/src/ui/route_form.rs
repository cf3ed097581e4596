//! The route form of the UI: name, rule, service, strip prefix, priority and an optional
//! shadow. `app.js` sends it as `PUT /api/routes/{name}` and shows each 422 message next to the
//! field it names. When editing, the route as written rides along in `data-current`, so keys
//! the form does not show (canary, compare, redact, ...) are kept.
//!
//! The service and shadow fields take a service name (suggested from a list) or a server URL:
//! for a URL, `app.js` first makes the service `<route>-primary` / `<route>-shadow` with
//! `PUT /api/services/{name}`, so a route to new targets needs no config file.

use std::fmt::Write;

use serde_json::Value;

use super::esc;

/// One labelled field: its input, a hint and an (initially empty) error line, tied to the
/// input with `aria-describedby`.
fn field(id: &str, label: &str, hint: &str, input: &str, class: &str) -> String {
    format!(
        "<div class=\"field{class}\"><label for=\"rf-{id}\">{label}</label>{input}\
<p class=\"hint\" id=\"rf-{id}-hint\">{hint}</p><p class=\"field-error\" id=\"rf-{id}-error\" aria-live=\"polite\"></p></div>"
    )
}

fn input(id: &str, key: &str, kind: &str, value: &str, extra: &str) -> String {
    format!(
        "<input id=\"rf-{id}\" name=\"{key}\" data-key=\"{key}\" type=\"{kind}\" value=\"{v}\" \
aria-describedby=\"rf-{id}-hint rf-{id}-error\" autocomplete=\"off\"{extra}>",
        v = esc(value)
    )
}

/// A text field for a service name or a server URL, suggesting the known services.
fn service_input(id: &str, key: &str, value: &str, placeholder: &str) -> String {
    input(
        id,
        key,
        "text",
        value,
        &format!(
            " list=\"rf-services\" spellcheck=\"false\" inputmode=\"url\" placeholder=\"{placeholder}\""
        ),
    )
}

/// The suggestions of the service fields.
fn service_list(services: &[&str]) -> String {
    let mut out = String::from("<datalist id=\"rf-services\">");
    for s in services {
        let _ = write!(out, "<option value=\"{}\"></option>", esc(s));
    }
    out.push_str("</datalist>");
    out
}

/// The form. `current` is the route as written (the config's keys, as JSON) when editing an
/// API route, None for a new route. `services` are the services a route may use.
pub fn route_form(services: &[&str], current: Option<&Value>) -> String {
    let empty = Value::Null;
    let cur = current.unwrap_or(&empty);
    let text = |v: &Value| match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        _ => String::new(),
    };
    let name = text(&cur["name"]);
    let editing = current.is_some();
    let name_input = input(
        "name",
        "name",
        "text",
        &name,
        if editing {
            " readonly spellcheck=\"false\""
        } else {
            " required spellcheck=\"false\""
        },
    );
    let name_hint = if editing {
        "A route keeps its name; make a new route to rename it."
    } else {
        "Letters, digits, <code>-</code>, <code>_</code> and <code>.</code>"
    };
    let mut out = format!(
        "<form class=\"route-form\" novalidate data-current=\"{current}\" aria-label=\"{label}\">\
<p class=\"form-error\" role=\"alert\"></p><div class=\"fields\">",
        current = esc(&current.map_or(String::new(), Value::to_string)),
        label = if editing { "edit route" } else { "new route" },
    );
    out.push_str(&field("name", "Name", name_hint, &name_input, ""));
    out.push_str(&field(
        "rule",
        "Rule",
        "Traefik v3 matchers: <code>Host</code>, <code>PathPrefix</code>, <code>Method</code>, \
<code>Header</code>, <code>Query</code>… with <code>&amp;&amp;</code>, <code>||</code>, <code>!</code>",
        &input(
            "rule",
            "rule",
            "text",
            &text(&cur["rule"]),
            " required spellcheck=\"false\" placeholder=\"PathPrefix(`/api`)\"",
        ),
        " wide",
    ));
    out.push_str(&field(
        "service",
        "Service",
        "Where the route's traffic goes: a service, or a server URL \
(<code>http://10.0.0.5:8080</code>), which makes the service <code>&lt;route&gt;-primary</code>.",
        &service_input(
            "service",
            "service",
            &text(&cur["service"]),
            "a service or http://host:port",
        ),
        "",
    ));
    out.push_str(&field(
        "strip_prefix",
        "Strip prefix",
        "Optional, e.g. <code>/api</code>.",
        &input(
            "strip_prefix",
            "strip_prefix",
            "text",
            &text(&cur["strip_prefix"]),
            " spellcheck=\"false\"",
        ),
        "",
    ));
    out.push_str(&field(
        "priority",
        "Priority",
        "Optional; the highest matching priority wins (default: the rule's length).",
        &input(
            "priority",
            "priority",
            "number",
            &text(&cur["priority"]),
            " step=\"1\"",
        ),
        "",
    ));
    out.push_str("</div><fieldset><legend>Shadow (optional)</legend><div class=\"fields\">");
    out.push_str(&field(
        "shadow-service",
        "Shadow service",
        "A candidate that gets a copy of the traffic: a service, or a server URL, which \
makes the service <code>&lt;route&gt;-shadow</code>. Empty: no shadow.",
        &service_input(
            "shadow-service",
            "shadow.service",
            &text(&cur["shadow"]["service"]),
            "no shadow",
        ),
        "",
    ));
    out.push_str(&field(
        "shadow-percent",
        "Shadow percent",
        "Share of requests mirrored (default 100).",
        &input(
            "shadow-percent",
            "shadow.percent",
            "number",
            &text(&cur["shadow"]["percent"]),
            " min=\"0\" max=\"100\" step=\"any\"",
        ),
        "",
    ));
    out.push_str(&service_list(services));
    let _ = write!(
        out,
        "</div></fieldset><div class=\"row\"><button type=\"submit\">{}</button></div></form>",
        if editing {
            "Save route"
        } else {
            "Create route"
        }
    );
    out
}
