//! Findings on the admin side: `GET /api/routes/{name}/findings`, a route's worst severity for
//! the overview, and rebuilding the in-memory findings models from the store at start-up.
//! Control-plane side.
//!
//! The models live beside the noise models (`umbra_proxy::FindingsModels`), fed by the
//! compare threads; the example ids come from the store's cause tags (the compare threads see
//! a comparison before the store numbers it), so they are exactly what `?finding=ID` lists.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::Json;
use serde_json::{json, Value};
use umbra_core::Runtime;
use umbra_diff::{Finding, Observation, Severity};
use umbra_proxy::{FindingsJudge, FindingsModels};
use umbra_store::{ComparisonStore, ListQuery, StoreError};

use crate::error::{ApiError, ApiResult};
use crate::AdminState;

/// Example comparison ids per finding.
const EXAMPLES: u32 = 5;
/// Comparisons read per replay call at start-up.
const REPLAY_PAGE: u32 = 5_000;

/// `?noise=true|false`; anything else is a 422 naming the field.
fn include_noise(q: &HashMap<String, String>) -> ApiResult<bool> {
    match q.get("noise").map(|s| s.trim()) {
        None | Some("") | Some("false") => Ok(false),
        Some("true") => Ok(true),
        Some(other) => Err(ApiError::invalid(format!(
            "noise: expected `true` or `false`, got `{other}`"
        ))),
    }
}

/// `GET /api/routes/{name}/findings[?noise=true][&candidate=NAME]`: the route's findings (of
/// one candidate), significant only (or with the noise ones), ordered by severity then rate.
pub async fn list(
    State(state): State<AdminState>,
    Path(name): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Json<Value>> {
    let noise = include_noise(&q)?;
    let known = state.runtime.load().route(&name).is_some();
    if !known && !state.findings.has_route(&name) {
        return Err(ApiError::not_found(format!("no route named `{name}`")));
    }
    let candidate = q
        .get("candidate")
        .map(String::as_str)
        .filter(|c| !c.is_empty());
    let findings = route_findings(&state, &name, noise, candidate).await?;
    Ok(Json(json!({ "route": name, "findings": findings })))
}

/// A route's findings as the API shows them, with example ids from the store.
pub async fn route_findings(
    state: &AdminState,
    route: &str,
    include_noise: bool,
    candidate: Option<&str>,
) -> ApiResult<Vec<Value>> {
    state.findings.rejudge(route, judge(&state.runtime, route));
    let mut findings = state.findings.findings(route, include_noise);
    if let Some(c) = candidate {
        findings.retain(|f| f.candidate == c);
    }
    let mut out = Vec::with_capacity(findings.len());
    for f in findings {
        let examples = match &state.store {
            Some(store) => examples(store.as_ref(), &f.id).await?,
            None => Vec::new(),
        };
        out.push(finding_json(&f, &examples));
    }
    Ok(out)
}

/// The newest comparisons of a finding, oldest of them first. (A finding id names its route
/// already: asking by id alone lets the database walk the finding's tags and nothing else.)
async fn examples(store: &dyn ComparisonStore, id: &str) -> Result<Vec<i64>, StoreError> {
    let q = ListQuery {
        finding: Some(id.to_owned()),
        limit: EXAMPLES,
        ..ListQuery::default()
    };
    let mut ids: Vec<i64> = store.list(&q).await?.items.iter().map(|c| c.id).collect();
    ids.reverse();
    Ok(ids)
}

/// DESIGN.md's shape of one finding.
pub fn finding_json(f: &Finding, example_ids: &[i64]) -> Value {
    json!({
        "id": f.id,
        "candidate": f.candidate,
        "endpoint": f.endpoint,
        "summary": f.summary,
        "severity": f.severity,
        "significant": f.significant,
        "rate": f.rate,
        "noise_rate": f.noise_rate,
        "first_seen": rfc3339(f.first_seen_ms),
        "last_seen": rfc3339(f.last_seen_ms),
        "example_ids": example_ids,
        "fields": f.fields,
    })
}

/// Unix milliseconds as RFC 3339 UTC (`2026-11-23T14:00:00Z`).
fn rfc3339(ms: i64) -> String {
    format!("{}Z", crate::ui::fmt_time(ms).replacen(' ', "T", 1))
}

/// The worst severity among a route's significant findings, if it has any.
pub fn worst_severity(models: &FindingsModels, route: &str) -> Option<Severity> {
    models
        .findings(route, false)
        .iter()
        .map(|f| f.severity)
        .max()
}

/// How a route judges its findings: its config's, or the defaults for a route that is gone.
fn judge(runtime: &Runtime, route: &str) -> FindingsJudge {
    let snap = runtime.load();
    match snap.route(route) {
        Some(r) => FindingsJudge {
            thresholds: r.spec.compare.thresholds,
            typed_noise: r.spec.compare.typed_noise,
        },
        None => FindingsJudge {
            thresholds: Default::default(),
            typed_noise: true,
        },
    }
}

/// Feeds every comparison stored before start-up (ids up to the newest one now) into the
/// findings models, page by page, oldest first; returns how many. Comparisons made meanwhile
/// reach the models through the compare threads, so none is counted twice.
pub async fn rebuild(
    store: Arc<dyn ComparisonStore>,
    runtime: Arc<Runtime>,
    models: Arc<FindingsModels>,
) -> Result<u64, StoreError> {
    let newest = ListQuery {
        limit: 1,
        ..ListQuery::default()
    };
    let Some(upto) = store.list(&newest).await?.items.first().map(|c| c.id) else {
        return Ok(0);
    };
    let mut after = 0;
    let mut fed = 0u64;
    loop {
        let page = store.replay(after, upto, REPLAY_PAGE).await?;
        let Some(last) = page.last() else {
            return Ok(fed);
        };
        after = last.id;
        for c in &page {
            let j = judge(&runtime, &c.route);
            models.observe(&c.route, &c.candidate, j, &Observation::from_comparison(c));
        }
        fed += page.len() as u64;
    }
}

/// Starts [`rebuild`] in the background and logs its outcome.
pub fn spawn_rebuild(
    store: Arc<dyn ComparisonStore>,
    runtime: Arc<Runtime>,
    models: Arc<FindingsModels>,
) {
    tokio::spawn(async move {
        let started = std::time::Instant::now();
        match rebuild(store, runtime, models).await {
            Ok(n) => tracing::info!(
                comparisons = n,
                ms = started.elapsed().as_millis() as u64,
                "findings rebuilt from the store"
            ),
            Err(e) => tracing::error!(error = %e, "could not rebuild findings from the store"),
        }
    });
}
