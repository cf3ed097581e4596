//! The route form of the UI: name, rule, service, strip prefix, priority and an optional
//! shadow. `app.js` sends it as `PUT /api/routes/{name}` and shows each 422 message next to the
//! field it names. When editing, the route as written rides along in `data-current`, so keys
//! the form does not show (canary, compare, redact, ...) are kept.

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

fn select(id: &str, key: &str, services: &[&str], selected: &str, empty: &str) -> String {
    let mut out = format!(
        "<select id=\"rf-{id}\" name=\"{key}\" data-key=\"{key}\" aria-describedby=\"rf-{id}-hint rf-{id}-error\">\
<option value=\"\">{empty}</option>"
    );
    for s in services {
        let sel = if *s == selected { " selected" } else { "" };
        let _ = write!(out, "<option value=\"{0}\"{sel}>{0}</option>", esc(s));
    }
    out.push_str("</select>");
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
        "Where the route's traffic goes.",
        &select(
            "service",
            "service",
            services,
            &text(&cur["service"]),
            "choose a service",
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
        "A candidate that gets a copy of the traffic.",
        &select(
            "shadow-service",
            "shadow.service",
            services,
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
