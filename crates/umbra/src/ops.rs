//! The terminal side of deploys and holds: `umbra deploy`, `pause`, `maintenance`, `resume`
//! (each one admin API call; a failure exits 1 with the API's message).

use std::time::Duration;

use serde_json::{json, Value};

use crate::client::{answer, call_within};

/// `umbra deploy` options.
pub struct Deploy<'a> {
    pub route: &'a str,
    pub target: &'a str,
    pub wait: Duration,
    pub drain: Duration,
    pub health_path: &'a str,
}

fn secs(d: Duration) -> String {
    format!("{}ms", d.as_millis())
}

/// `umbra deploy ROUTE --target URL`: exit 0 once the target serves the route.
pub fn deploy(base: &str, token: Option<&str>, d: &Deploy<'_>) -> anyhow::Result<()> {
    let body = json!({
        "target": d.target, "wait": secs(d.wait), "drain": secs(d.drain),
        "health_path": d.health_path,
    });
    // The call lasts as long as the health wait and the drain, plus a margin.
    let limit = d.wait + d.drain + Duration::from_secs(10);
    let path = format!("/api/routes/{}/deploy", d.route);
    let v = answer(call_within(
        base,
        token,
        ("POST", &path),
        Some(body),
        limit,
    )?)?;
    let previous: Vec<&str> = v["previous"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    println!(
        "route {}: {} now serves service {} (healthy after {} ms; replaced {})",
        d.route,
        d.target,
        v["service"].as_str().unwrap_or("?"),
        v["healthy_after_ms"],
        if previous.is_empty() {
            "nothing".to_string()
        } else {
            previous.join(", ")
        },
    );
    if v["drained"] == false {
        println!(
            "warning: {} request(s) were still in flight on the old servers after the drain",
            v["in_flight_left"]
        );
    }
    Ok(())
}

/// `umbra pause|maintenance|resume ROUTE`.
pub fn hold(
    base: &str,
    token: Option<&str>,
    route: &str,
    action: &str,
    body: Option<Value>,
) -> anyhow::Result<()> {
    let path = format!("/api/routes/{route}/{action}");
    let limit = Duration::from_secs(10);
    let v = answer(call_within(base, token, ("POST", &path), body, limit)?)?;
    let hold = &v["hold"];
    match hold["state"].as_str() {
        Some("paused") => println!(
            "route {route}: paused; new requests wait up to {} ms for `umbra resume {route}`",
            hold["max_ms"]
        ),
        Some("maintenance") => println!(
            "route {route}: in maintenance; requests get 503: {}",
            hold["message"].as_str().unwrap_or("")
        ),
        _ => println!("route {route}: open; requests flow again"),
    }
    Ok(())
}
