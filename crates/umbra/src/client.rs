//! The terminal side of the admin API: `status`, `routes`, `diffs`, `shadow`, `weight`,
//! `promote`, `rollback`, `rollout ...`, `healthcheck`.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

fn call(
    base: &str,
    token: Option<&str>,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> anyhow::Result<(u16, Value)> {
    call_within(base, token, (method, path), body, Duration::from_secs(10))
}

/// One admin API call that may take up to `limit` (a deploy waits for its target).
pub(crate) fn call_within(
    base: &str,
    token: Option<&str>,
    (method, path): (&str, &str),
    body: Option<Value>,
    limit: Duration,
) -> anyhow::Result<(u16, Value)> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
        let url = format!("{}{}", base.trim_end_matches('/'), path);
        let mut req = http::Request::builder().method(method).uri(&url);
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        // The admin takes changes only as JSON, bodiless ones (promote, DELETE) included.
        if method != "GET" {
            req = req.header("content-type", "application/json");
        }
        let body = match body {
            Some(v) => Full::new(Bytes::from(v.to_string())),
            None => Full::new(Bytes::new()),
        };
        let req = req
            .body(body)
            .with_context(|| format!("bad admin URL `{url}`"))?;
        let resp = tokio::time::timeout(limit, client.request(req))
            .await
            .with_context(|| format!("{url}: no answer within {} s", limit.as_secs()))?
            .with_context(|| {
                format!("cannot reach the admin API at {base} (set --admin or UMBRA_ADMIN_URL)")
            })?;
        let status = resp.status().as_u16();
        let bytes = resp.into_body().collect().await?.to_bytes();
        let value = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()));
        Ok((status, value))
    })
}

fn ok(
    base: &str,
    token: Option<&str>,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> anyhow::Result<Value> {
    answer(call(base, token, method, path, body)?)
}

/// The API's answer, or an error with its status and message.
pub(crate) fn answer(result: (u16, Value)) -> anyhow::Result<Value> {
    let (status, v) = result;
    if status >= 400 {
        let msg = v
            .get("message")
            .and_then(Value::as_str)
            .unwrap_or("request failed");
        bail!("{status}: {msg}");
    }
    Ok(v)
}

pub fn healthcheck(base: &str) -> ExitCode {
    match call(base, None, "GET", "/health/ready", None) {
        Ok((200, _)) => ExitCode::SUCCESS,
        Ok((s, v)) => {
            eprintln!("not ready ({s}): {v}");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("umbra: {e:#}");
            ExitCode::FAILURE
        }
    }
}

pub fn status(base: &str, token: Option<&str>) -> anyhow::Result<()> {
    let v = ok(base, token, "GET", "/api/status", None)?;
    println!("{}", serde_json::to_string_pretty(&v)?);
    Ok(())
}

pub fn routes(base: &str, token: Option<&str>) -> anyhow::Result<()> {
    let v = ok(base, token, "GET", "/api/routes", None)?;
    let items = v
        .get("routes")
        .or(Some(&v))
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    println!(
        "{:<20} {:<8} {:<16} {:<16} {:<10} RULE",
        "ROUTE", "SOURCE", "SERVICE", "SHADOW", "CANARY"
    );
    for r in items {
        let s = |k: &str| r.get(k).and_then(Value::as_str).unwrap_or("-").to_string();
        let listed = r.get("candidates").and_then(Value::as_array);
        let names: Vec<&str> = listed
            .into_iter()
            .flatten()
            .filter_map(|c| c.get("service").and_then(Value::as_str))
            .collect();
        let shadow = if names.is_empty() {
            "-".to_string()
        } else {
            names.join(",")
        };
        let canary = match (
            r.pointer("/canary/service").and_then(Value::as_str),
            r.pointer("/canary/weight"),
        ) {
            (Some(svc), Some(w)) => format!("{svc}:{w}%"),
            _ => "-".into(),
        };
        println!(
            "{:<20} {:<8} {:<16} {:<16} {:<10} {}",
            s("name"),
            s("source"),
            s("service"),
            shadow,
            canary,
            s("rule")
        );
    }
    Ok(())
}

/// `umbra diffs ROUTE`: the findings; with `fields`, the field table.
pub fn diffs(base: &str, token: Option<&str>, route: &str, fields: bool) -> anyhow::Result<()> {
    use std::io::IsTerminal;
    let color = std::io::stdout().is_terminal();
    if fields {
        let v = ok(
            base,
            token,
            "GET",
            &format!("/api/routes/{route}/diffs"),
            None,
        )?;
        print!("{}", render_diffs(&v, color));
    } else {
        let path = format!("/api/routes/{route}/findings");
        let v = ok(base, token, "GET", &path, None)?;
        print!("{}", render_findings(&v, color));
    }
    Ok(())
}

/// One line per finding, most severe first (the API's order): severity, summary, the
/// candidate and the finding id (for `/api/comparisons?finding=ID`); red for `high` when
/// `color`.
pub fn render_findings(v: &Value, color: bool) -> String {
    let s = |f: &Value, k: &str| f.get(k).and_then(Value::as_str).unwrap_or("?").to_owned();
    let route = v.get("route").and_then(Value::as_str).unwrap_or("?");
    let findings = v.get("findings").and_then(Value::as_array);
    let findings = findings.map(Vec::as_slice).unwrap_or_default();
    let mut out = format!("route {route}: {} findings\n", findings.len());
    for f in findings {
        let severity = s(f, "severity");
        let line = format!(
            "  {:<6} {}  [{} · finding {}]",
            severity.to_uppercase(),
            s(f, "summary"),
            s(f, "candidate"),
            s(f, "id")
        );
        if color && severity == "high" {
            out.push_str(&format!("\x1b[31m{line}\x1b[0m\n"));
        } else {
            out.push_str(&line);
            out.push('\n');
        }
    }
    if findings.is_empty() {
        out.push_str("  no significant differences\n");
    }
    out.push_str("Field by field: umbra diffs ROUTE --fields\n");
    out
}

/// The field table, significant rows first; red for significant when `color`.
pub fn render_diffs(v: &Value, color: bool) -> String {
    let mut out = String::new();
    let total = v.get("total").and_then(Value::as_u64).unwrap_or(0);
    out.push_str(&format!(
        "route {}: {} comparisons\n",
        v.get("route").and_then(Value::as_str).unwrap_or("?"),
        total
    ));
    for ep in v
        .get("endpoints")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        out.push_str(&format!(
            "\n{}  ({} comparisons)\n  {:<36} {:<8} {:>8} {:>8} {:>8}  SIGNIFICANT\n",
            ep.get("endpoint").and_then(Value::as_str).unwrap_or("?"),
            ep.get("total").and_then(Value::as_u64).unwrap_or(0),
            "FIELD",
            "KIND",
            "COUNT",
            "RATE",
            "NOISE"
        ));
        for f in ep
            .get("fields")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let sig = f
                .get("significant")
                .and_then(Value::as_bool)
                .unwrap_or(false);
            let line = format!(
                "  {:<36} {:<8} {:>8} {:>7.1}% {:>7.1}%  {}",
                f.get("path").and_then(Value::as_str).unwrap_or(""),
                f.get("kind").and_then(Value::as_str).unwrap_or(""),
                f.get("count").and_then(Value::as_u64).unwrap_or(0),
                f.get("rate").and_then(Value::as_f64).unwrap_or(0.0) * 100.0,
                f.get("noise_rate").and_then(Value::as_f64).unwrap_or(0.0) * 100.0,
                if sig { "yes" } else { "no (noise)" }
            );
            if color && sig {
                out.push_str(&format!("\x1b[31m{line}\x1b[0m\n"));
            } else {
                out.push_str(&line);
                out.push('\n');
            }
        }
    }
    out
}

/// What `umbra shadow` does to the route's candidates.
pub enum ShadowChange {
    /// SERVICE at this percent becomes the only candidate.
    Only(f64),
    /// SERVICE at this percent joins the other candidates (or changes its percent).
    Add(f64),
    /// SERVICE stops; the other candidates go on.
    Stop,
}

pub fn shadow(
    base: &str,
    token: Option<&str>,
    route: &str,
    service: &str,
    how: ShadowChange,
) -> anyhow::Result<()> {
    let path = format!("/api/routes/{route}/shadow");
    let body = |percent: f64| serde_json::json!({"service": service, "percent": percent});
    match how {
        ShadowChange::Only(percent) | ShadowChange::Add(percent) => {
            let method = if matches!(how, ShadowChange::Add(_)) {
                "POST"
            } else {
                "PUT"
            };
            ok(base, token, method, &path, Some(body(percent)))?;
            println!("route {route}: shadowing {percent}% to {service}");
        }
        ShadowChange::Stop => {
            // A valid name needs no escaping in the query.
            if !umbra_core::config::valid_name(service) {
                anyhow::bail!("`{service}` is not a valid service name");
            }
            ok(
                base,
                token,
                "DELETE",
                &format!("{path}?service={service}"),
                None,
            )?;
            println!("route {route}: no longer shadowing to {service}");
        }
    }
    Ok(())
}

pub fn weight(
    base: &str,
    token: Option<&str>,
    route: &str,
    percent: f64,
    service: Option<&str>,
) -> anyhow::Result<()> {
    let service = match service {
        Some(s) => s.to_string(),
        None => {
            let r = ok(base, token, "GET", &format!("/api/routes/{route}"), None)?;
            // The canary's service, else the one shadow candidate (of several, say which).
            let only = r
                .get("candidates")
                .and_then(Value::as_array)
                .filter(|l| l.len() == 1)
                .and_then(|l| l[0].get("service"));
            r.pointer("/canary/service")
                .or(only)
                .and_then(Value::as_str)
                .map(str::to_string)
                .context(
                    "the route has no canary and not exactly one shadow candidate; pass --service",
                )?
        }
    };
    let body = serde_json::json!({"service": service, "weight": percent});
    ok(
        base,
        token,
        "PUT",
        &format!("/api/routes/{route}/canary"),
        Some(body),
    )?;
    println!("route {route}: {percent}% of traffic to {service}");
    Ok(())
}

pub fn post(base: &str, token: Option<&str>, route: &str, action: &str) -> anyhow::Result<()> {
    ok(
        base,
        token,
        "POST",
        &format!("/api/routes/{route}/{action}"),
        None,
    )?;
    println!("route {route}: {action} done");
    Ok(())
}

/// `umbra rollout start|status|pause|resume|abort|advance ROUTE`: prints the rollout after.
pub fn rollout(
    base: &str,
    token: Option<&str>,
    route: &str,
    action: &str,
    body: Option<Value>,
) -> anyhow::Result<()> {
    let path = format!("/api/routes/{route}/rollout");
    let v = match action {
        "status" => ok(base, token, "GET", &path, None)?,
        "start" => ok(base, token, "POST", &path, body)?,
        other => ok(base, token, "POST", &format!("{path}/{other}"), None)?,
    };
    print!("{}", render_rollout(&v));
    Ok(())
}

/// A rollout as text: where it is, the last evaluation's gates, its decisions.
pub fn render_rollout(v: &Value) -> String {
    use std::fmt::Write;
    let s = |k: &str| v[k].as_str().unwrap_or("").to_string();
    if s("status") == "none" {
        return format!("route {}: no rollout\n", s("route"));
    }
    let steps = v["steps"].as_array().map_or(0, Vec::len);
    let mut out = format!(
        "route {}: rollout of {} ({} → {}): {}, step {}/{} `{}`, candidate weight {} %\n",
        s("route"),
        v["spec"]["service"].as_str().unwrap_or(""),
        s("primary"),
        v["spec"]["service"].as_str().unwrap_or(""),
        s("status"),
        v["step"].as_u64().unwrap_or(0) + 1,
        steps,
        s("step_label"),
        v["weight"]
    );
    if let Some(h) = v["held"].as_str() {
        let _ = writeln!(out, "held: {h}");
    }
    if let Some(last) = v.get("last").filter(|l| !l.is_null()) {
        let _ = writeln!(
            out,
            "last evaluation: {}",
            last["summary"].as_str().unwrap_or("")
        );
        for g in last["gates"].as_array().into_iter().flatten() {
            let mark = if g["passed"] == true { "ok  " } else { "FAIL" };
            let _ = writeln!(
                out,
                "  {mark} {:<8} {}",
                g["gate"].as_str().unwrap_or(""),
                g["detail"].as_str().unwrap_or("")
            );
        }
    }
    if let Some(r) = v.get("reason").filter(|r| !r.is_null()) {
        let _ = writeln!(
            out,
            "reason: {} gate: {} (value {}, threshold {}, {} samples)",
            r["gate"].as_str().unwrap_or(""),
            r["detail"].as_str().unwrap_or(""),
            r["value"],
            r["threshold"],
            r["samples"]
        );
    }
    let _ = writeln!(out, "decisions:");
    for d in v["history"].as_array().into_iter().flatten() {
        let _ = writeln!(
            out,
            "  [{}] {:<8} {:<10} {} ({})",
            d["step_label"].as_str().unwrap_or(""),
            d["action"].as_str().unwrap_or(""),
            d["actor"].as_str().unwrap_or(""),
            d["message"].as_str().unwrap_or(""),
            d["at_ms"]
        );
    }
    out
}
