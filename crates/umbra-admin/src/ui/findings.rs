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

/// The route's candidates side by side, each with its own findings (most severe first); shown
/// when the route shadows to more than one candidate. `candidates` is the route's list as the
/// API gives it.
pub fn candidates(route: &str, candidates: &[Value], findings: &[Value]) -> String {
    if candidates.len() < 2 {
        return String::new();
    }
    let mut out = String::from(
        "<section class=\"candidates\" aria-label=\"candidates\"><h2>Candidates side by side</h2><div class=\"cols\">",
    );
    for c in candidates {
        let service = c["service"].as_str().unwrap_or_default();
        let own: Vec<&Value> = findings
            .iter()
            .filter(|f| f["candidate"] == service)
            .collect();
        let percent = c["percent"].as_f64().unwrap_or(100.0);
        let _ = write!(
            out,
            "<div class=\"card candidate\" data-candidate=\"{s}\"><h3><code>{s}</code> <span class=\"meta\">{percent}% shadowed · {n} finding{plural}</span></h3>",
            s = esc(service),
            n = own.len(),
            plural = if own.len() == 1 { "" } else { "s" },
        );
        if own.is_empty() {
            out.push_str("<p class=\"meta\">No significant findings.</p>");
        } else {
            out.push_str("<ul>");
            for f in own {
                let s = |k: &str| f[k].as_str().unwrap_or_default();
                let _ = write!(
                    out,
                    "<li data-finding=\"{id}\">{badge} <a href=\"/ui/comparisons?finding={link}\">{summary}</a> <span class=\"meta\">{rate}</span></li>",
                    id = esc(s("id")),
                    badge = severity_badge(s("severity")),
                    link = esc(&enc(s("id"))),
                    summary = summary_html(s("summary")),
                    rate = pct(f["rate"].as_f64()),
                );
            }
            out.push_str("</ul>");
        }
        let _ = write!(
            out,
            "<div class=\"row\"><button type=\"button\" class=\"api-button secondary\" data-method=\"DELETE\" \
data-url=\"/api/routes/{route}/shadow?service={link}\" data-confirm=\"Stop shadowing to {s}? The other candidates go on.\">Stop this candidate</button></div></div>",
            route = esc(&enc(route)),
            link = esc(&enc(service)),
            s = esc(service),
        );
    }
    out.push_str("</div></section>");
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
