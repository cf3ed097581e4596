//! The findings on the route page (a section that leads it) and the severity badge the
//! overview shows per route. Server-rendered from the JSON `/api/routes/{name}/findings` gives.

use std::fmt::Write;

use serde_json::Value;
use umbra_diff::Severity;

use super::{enc, esc, pct};

/// A severity as a badge (`high` red, `medium` amber, `low` grey).
pub fn severity_badge(severity: &str) -> String {
    format!(
        "<span class=\"badge severity {s}\" title=\"severity {s}\">{s}</span>",
        s = esc(severity)
    )
}

/// The overview's cell content for a route's worst significant finding.
pub fn worst_badge(worst: Option<Severity>) -> String {
    match worst {
        Some(s) => severity_badge(s.as_str()),
        None => "<span class=\"meta\" title=\"no significant finding\">none</span>".into(),
    }
}

/// The route page's findings section: one line per finding, most severe first, each with
/// its examples and a link to all its comparisons.
pub fn section(findings: &[Value]) -> String {
    let mut out =
        String::from("<section id=\"findings\" aria-label=\"findings\"><h2>Findings</h2>");
    if findings.is_empty() {
        out.push_str("<p class=\"meta\">No significant findings: the candidate answers like the primary (noise filtered).</p>");
    } else {
        out.push_str("<ol class=\"findings\">");
        for f in findings {
            out.push_str(&item(f));
        }
        out.push_str("</ol>");
    }
    out.push_str("</section>");
    out
}

fn item(f: &Value) -> String {
    let s = |k: &str| f[k].as_str().unwrap_or_default();
    // The finding id names its route; the list asks the store by id alone (its fast path).
    let list = format!("/ui/comparisons?finding={}", enc(s("id")));
    let mut examples = String::new();
    for id in f["example_ids"].as_array().into_iter().flatten() {
        let _ = write!(examples, " <a href=\"/ui/comparisons/{id}\">#{id}</a>");
    }
    let fields: Vec<String> = f["fields"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(|p| format!("<code>{}</code>", esc(p)))
        .collect();
    format!(
        "<li class=\"finding\" data-finding=\"{id}\" data-severity=\"{sev}\">{badge} <span class=\"summary\">{summary}</span>\
<p class=\"meta\">{rate} of comparisons · noise {noise} · candidate {cand} · fields {fields}</p>\
<p class=\"meta\"><a class=\"finding-comparisons\" href=\"{list}\">its comparisons</a> · examples{examples}</p></li>",
        id = esc(s("id")),
        sev = esc(s("severity")),
        badge = severity_badge(s("severity")),
        summary = summary_html(s("summary")),
        rate = pct(f["rate"].as_f64()),
        noise = pct(f["noise_rate"].as_f64()),
        cand = esc(s("candidate")),
        fields = fields.join(" "),
        list = esc(&list),
    )
}

/// The summary escaped, its `backticked` parts as code.
fn summary_html(summary: &str) -> String {
    let mut out = String::new();
    for (i, part) in summary.split('`').enumerate() {
        if i % 2 == 1 {
            let _ = write!(out, "<code>{}</code>", esc(part));
        } else {
            out.push_str(&esc(part));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summaries_show_code_and_escape() {
        assert_eq!(
            summary_html("`/a<b>` removed on every `GET /x`"),
            "<code>/a&lt;b&gt;</code> removed on every <code>GET /x</code>"
        );
        let f = serde_json::json!({"id": "00ff", "severity": "high", "summary": "x",
            "rate": 0.5, "noise_rate": 0.0, "candidate": "v2", "fields": ["status"],
            "example_ids": [3, 4]});
        let html = section(&[f]);
        assert!(
            html.contains("href=\"/ui/comparisons?finding=00ff\""),
            "{html}"
        );
        assert!(
            html.contains("<a href=\"/ui/comparisons/4\">#4</a>"),
            "{html}"
        );
        assert!(html.contains("badge severity high"), "{html}");
        assert!(section(&[]).contains("No significant findings"));
    }
}
