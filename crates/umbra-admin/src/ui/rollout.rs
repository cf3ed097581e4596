//! The route page's rollout timeline: each step with the decisions taken in it and the gate
//! evidence behind each (values, thresholds, samples), plus pause / resume / abort buttons.

use std::fmt::Write;

use serde_json::Value;

use super::{enc, esc};

/// The timeline of a rollout's state JSON (`GET /api/routes/{name}/rollout`); empty when the
/// route never had a rollout.
pub fn timeline(name: &str, r: &Value) -> String {
    let status = r["status"].as_str().unwrap_or("none");
    if status == "none" {
        return String::new();
    }
    let current = r["step"].as_u64().unwrap_or(0) as usize;
    let mut out = format!(
        "<section class=\"rollout card\" aria-label=\"rollout\"><h2>Rollout of <code>{}</code> \
<span class=\"badge rollout-{status}\">{status}</span></h2><p class=\"meta\">{} → {} · weight {} % · {}</p>",
        esc(r["spec"]["service"].as_str().unwrap_or_default()),
        esc(r["primary"].as_str().unwrap_or_default()),
        esc(r["spec"]["service"].as_str().unwrap_or_default()),
        r["weight"],
        esc(r["last"]["summary"].as_str().unwrap_or("not judged yet")),
    );
    if let Some(reason) = r.get("reason").filter(|v| !v.is_null()) {
        let _ = write!(
            out,
            "<p class=\"error\">rolled back by the {} gate: {}</p>",
            esc(reason["gate"].as_str().unwrap_or_default()),
            esc(reason["detail"].as_str().unwrap_or_default())
        );
    }
    out.push_str(&buttons(name, status));
    out.push_str("<ol class=\"timeline\">");
    let empty = Vec::new();
    let steps = r["steps"].as_array().unwrap_or(&empty);
    let history = r["history"].as_array().unwrap_or(&empty);
    for (i, label) in steps.iter().enumerate() {
        let state = match (i.cmp(&current), status) {
            (std::cmp::Ordering::Less, _) | (_, "promoted") => "done",
            (std::cmp::Ordering::Equal, "rolled_back" | "aborted") => "failed",
            (std::cmp::Ordering::Equal, _) => "current",
            _ => "pending",
        };
        let _ = write!(
            out,
            "<li class=\"step step-{state}\"><strong>{}</strong> <span class=\"meta\">{state}</span><ul>",
            esc(label.as_str().unwrap_or_default())
        );
        for d in history
            .iter()
            .filter(|d| d["step"].as_u64() == Some(i as u64))
        {
            out.push_str(&decision(d));
        }
        out.push_str("</ul></li>");
    }
    out.push_str("</ol></section>");
    out
}

fn buttons(name: &str, status: &str) -> String {
    let base = format!("/api/routes/{}/rollout", enc(name));
    let button = |action: &str, label: &str, class: &str, confirm: &str| {
        format!(
            "<button type=\"button\" class=\"api-button {class}\" data-method=\"POST\" data-url=\"{}/{action}\"{}>{label}</button>",
            esc(&base),
            if confirm.is_empty() {
                String::new()
            } else {
                format!(" data-confirm=\"{}\"", esc(confirm))
            }
        )
    };
    let abort_q = format!("Abort the rollout of route {name}? All traffic returns to the primary.");
    match status {
        "running" => format!(
            "<div class=\"row\">{}{}</div>",
            button("pause", "Pause rollout", "secondary", ""),
            button("abort", "Abort rollout", "danger", &abort_q)
        ),
        "paused" => format!(
            "<div class=\"row\">{}{}</div>",
            button("resume", "Resume rollout", "", ""),
            button("abort", "Abort rollout", "danger", &abort_q)
        ),
        _ => String::new(),
    }
}

/// One decision with its gates.
fn decision(d: &Value) -> String {
    let mut out = format!(
        "<li class=\"decision\"><span class=\"badge\">{}</span> {} <span class=\"meta\">by {}</span>",
        esc(d["action"].as_str().unwrap_or_default()),
        esc(d["message"].as_str().unwrap_or_default()),
        esc(d["actor"].as_str().unwrap_or_default()),
    );
    let gates = d["judgement"]["gates"].as_array();
    if let Some(gates) = gates.filter(|g| !g.is_empty()) {
        out.push_str("<table class=\"gates\"><thead><tr><th scope=\"col\">gate</th><th scope=\"col\">held</th>\
<th scope=\"col\">value</th><th scope=\"col\">threshold</th><th scope=\"col\">samples</th><th scope=\"col\">evidence</th></tr></thead><tbody>");
        for g in gates {
            let _ = write!(
                out,
                "<tr class=\"{}\"><td>{}</td><td>{}</td><td class=\"num\">{:.4}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td>{}</td></tr>",
                if g["passed"] == true { "gate-ok" } else { "gate-fail" },
                esc(g["gate"].as_str().unwrap_or_default()),
                if g["passed"] == true { "yes" } else { "no" },
                g["value"].as_f64().unwrap_or_default(),
                g["threshold"],
                g["samples"],
                esc(g["detail"].as_str().unwrap_or_default()),
            );
        }
        out.push_str("</tbody></table>");
    }
    out.push_str("</li>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_rolled_back_rollout_shows_its_reason_and_evidence() {
        let gate = json!({"gate": "error", "passed": false, "value": 0.05, "threshold": 0.01,
                          "samples": 200, "detail": "candidate 5.0 % errors <b>"});
        let r = json!({
            "status": "rolled_back", "step": 1, "primary": "v1", "weight": 0.0,
            "spec": {"service": "v2"}, "steps": ["shadow 1m", "10% 1m", "100%"],
            "reason": gate,
            "history": [
                {"action": "advance", "step": 0, "actor": "rollout", "message": "all gates hold",
                 "judgement": {"gates": [{"gate": "diff", "passed": true, "value": 0.0,
                   "threshold": 0.01, "samples": 150, "detail": "0 of 150"}]}},
                {"action": "rollback", "step": 1, "actor": "rollout", "message": "rolled back",
                 "judgement": {"gates": [gate]}}
            ]
        });
        let html = timeline("api", &r);
        assert!(html.contains("step-done\"><strong>shadow 1m"), "{html}");
        assert!(html.contains("step-failed\"><strong>10% 1m"), "{html}");
        assert!(html.contains("step-pending\"><strong>100%"), "{html}");
        assert!(html.contains("rolled back by the error gate: candidate 5.0 % errors &lt;b&gt;"));
        assert!(
            html.contains("<td class=\"num\">200</td>"),
            "samples shown: {html}"
        );
        assert!(!html.contains("Pause rollout"), "no buttons once it ended");
        let running = json!({"status": "running", "step": 0, "steps": ["100%"], "history": []});
        let html = timeline("api", &running);
        assert!(
            html.contains("data-url=\"/api/routes/api/rollout/pause\""),
            "{html}"
        );
        assert!(
            html.contains("data-url=\"/api/routes/api/rollout/abort\""),
            "{html}"
        );
        assert_eq!(timeline("api", &json!({"status": "none"})), "");
    }
}
