//! `/api/status`, `/api/routes*` (read, change, diffs) and `/api/services`.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::Ordering;

use axum::extract::{Path, Query, State};
use axum::Json;
use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Value};
use umbra_core::config::{RawCanary, RawRoute, RawShadow, RawShadows};
use umbra_core::runtime::{now_ms, Persist};
use umbra_core::snapshot::{Route, Snapshot};
use umbra_core::telemetry::LatencyHistogram;
use umbra_core::upstream::Service;
use umbra_diff::{is_significant, regression, Percentiles};
use umbra_store::StoredRoute;

use crate::error::{ApiError, ApiResult};
use crate::health::check_store;
use crate::AdminState;

/// Samples of latency read per endpoint for the diffs view.
pub const LATENCY_SAMPLES: u32 = 2000;

/// Parses a JSON body; serde's message names the offending field.
pub fn parse_body<T: DeserializeOwned>(body: &Bytes) -> ApiResult<T> {
    if body.is_empty() {
        return Err(ApiError::invalid("request body: expected a JSON object"));
    }
    serde_json::from_slice(body).map_err(|e| ApiError::invalid(format!("request body: {e}")))
}

fn ms(us: Option<u64>) -> Option<f64> {
    us.map(|u| u as f64 / 1000.0)
}

fn to_json<T: serde::Serialize>(v: &Option<T>) -> Value {
    v.as_ref()
        .and_then(|x| serde_json::to_value(x).ok())
        .unwrap_or(Value::Null)
}

/// The live counters of a route.
pub fn route_stats_json(route: &Route) -> Value {
    let s = &route.stats;
    let requests = s.requests.load(Ordering::Relaxed);
    let errors = s.errors.load(Ordering::Relaxed);
    let primary = s.primary_latency.snapshot();
    let shadow = s.shadow_latency.snapshot();
    let comparisons = s.comparisons.load(Ordering::Relaxed);
    let different = s.different.load(Ordering::Relaxed);
    json!({
        "requests": requests,
        "errors": errors,
        "error_rate": if requests == 0 { 0.0 } else { errors as f64 / requests as f64 },
        "p50_ms": ms(LatencyHistogram::quantile_of(&primary, 0.5)),
        "p99_ms": ms(LatencyHistogram::quantile_of(&primary, 0.99)),
        "shadow_p50_ms": ms(LatencyHistogram::quantile_of(&shadow, 0.5)),
        "shadow_p99_ms": ms(LatencyHistogram::quantile_of(&shadow, 0.99)),
        "comparisons": comparisons,
        "different": different,
        "diff_rate": if comparisons == 0 { 0.0 } else { different as f64 / comparisons as f64 },
        "shadow_sent": s.shadow_sent.load(Ordering::Relaxed),
        "shadow_dropped": s.shadow_dropped.load(Ordering::Relaxed),
        "canary_requests": s.canary_requests.load(Ordering::Relaxed),
    })
}

/// A route as the API shows it.
pub fn route_json(route: &Route) -> Value {
    let spec = &route.spec;
    json!({
        "name": spec.name,
        "rule": spec.raw.rule,
        "priority": spec.priority,
        "service": spec.service,
        "strip_prefix": spec.strip_prefix,
        "shadow": to_json(&spec.raw.shadow),
        "candidates": spec.raw.shadow.as_ref().map_or(&[][..], |l| &l.0[..]),
        "canary": to_json(&spec.raw.canary),
        "compare": to_json(&spec.raw.compare),
        "source": spec.source.as_str(),
        "overridden": route.overridden,
        "previous_service": route.previous_service,
        "hold": route.hold.mode(),
        "stats": route_stats_json(route),
    })
}

pub(crate) fn service_json(svc: &Service) -> Value {
    let spec = &svc.spec;
    let servers: Vec<Value> = svc
        .servers
        .iter()
        .map(|s| {
            json!({
                "url": s.addr.url(),
                "healthy": s.is_healthy(),
                "available": s.is_available(),
                "ejected": s.is_ejected(),
                "in_flight": s.in_flight(),
                "requests": s.requests.load(Ordering::Relaxed),
                "failures": s.failures.load(Ordering::Relaxed),
            })
        })
        .collect();
    let health = spec.health.as_ref().map(|h| {
        json!({
            "path": h.path,
            "interval_ms": h.interval.as_millis() as u64,
            "timeout_ms": h.timeout.as_millis() as u64,
            "rise": h.rise,
            "fall": h.fall,
        })
    });
    json!({
        "name": spec.name,
        "balance": spec.balance,
        "source": spec.source.as_str(),
        "available": svc.servers.iter().filter(|s| s.is_available()).count(),
        "servers": servers,
        "health": health,
    })
}

/// `GET /api/status`
pub async fn status(State(state): State<AdminState>) -> Json<Value> {
    let snap = state.runtime.snapshot();
    let reload = state.runtime.reload_status();
    let (store_state, _) = check_store(&state).await;
    Json(json!({
        "version": state.version,
        "uptime_s": state.runtime.started.elapsed().as_secs(),
        "config_source": state.config_source,
        "last_reload_error": reload.last_reload_error,
        "last_reload_at_ms": reload.last_reload_at_ms,
        "reloads": reload.reloads,
        "store": {
            "kind": state.store.as_ref().map(|s| s.kind()),
            "state": store_state.as_str(),
            "queue_depth": state.sink.depth(),
            "dropped": state.store_dropped.load(Ordering::Relaxed),
        },
        // Replicas on one PostgreSQL: whether this one hears the others' changes (null when
        // the store is not shared).
        "store_feed": state.feed.as_ref().map(|f| f.get()),
        "generation": snap.generation,
        "routes": snap.routes.len(),
        "services": snap.services.len(),
        "tls": state.tls.as_ref().map(|t| t.json()),
    }))
}

/// `GET /api/routes`: every route in force, highest priority first.
pub async fn list(State(state): State<AdminState>) -> Json<Value> {
    let snap = state.runtime.load();
    let routes: Vec<Value> = snap.routes.iter().map(|r| route_json(r)).collect();
    Json(json!({ "routes": routes }))
}

/// `GET /api/routes/{name}`
pub async fn get(
    State(state): State<AdminState>,
    Path(name): Path<String>,
) -> ApiResult<Json<Value>> {
    let snap = state.runtime.load();
    let route = snap
        .route(&name)
        .ok_or_else(|| ApiError::not_found(format!("no route named `{name}`")))?;
    Ok(Json(route_json(route)))
}

/// `GET /api/services`
pub async fn services(State(state): State<AdminState>) -> Json<Value> {
    let snap = state.runtime.load();
    let mut sorted: BTreeMap<&str, Value> = BTreeMap::new();
    for (name, svc) in &snap.services {
        sorted.insert(name, service_json(svc));
    }
    Json(json!({ "services": sorted.into_values().collect::<Vec<_>>() }))
}

/// `GET /api/discovery`: the Docker engine connection and every discovered container with
/// its address, routes and label errors.
pub async fn discovery(State(state): State<AdminState>) -> Json<Value> {
    Json(serde_json::to_value(&*state.runtime.discovery()).unwrap_or(Value::Null))
}

/// Who made a change: `X-Umbra-Source: ui|cli|api` (default `api`).
pub(crate) fn actor(headers: &http::HeaderMap) -> &'static str {
    match headers.get("x-umbra-source").and_then(|v| v.to_str().ok()) {
        Some("ui") => "ui",
        Some("cli") => "cli",
        _ => "api",
    }
}

/// Writes what a change left to persist; false (and a log line) when the store failed or
/// there is none. The change is in force either way.
pub(crate) async fn persist(state: &AdminState, p: &Persist) -> bool {
    let Some(store) = &state.store else {
        return false;
    };
    match store_change(store.as_ref(), p).await {
        Ok(()) => true,
        Err(e) => {
            tracing::error!(route = %p.name(), error = %e, "route change applied but not persisted; it will not survive a restart");
            false
        }
    }
}

/// Stores a runtime route change (or deletes what it replaces).
pub async fn store_change(
    store: &dyn umbra_store::ComparisonStore,
    p: &Persist,
) -> Result<(), umbra_store::StoreError> {
    match p.to_doc() {
        Some((name, kind, doc)) => {
            store
                .put_route(&StoredRoute {
                    name,
                    kind: kind.to_string(),
                    doc,
                    updated_at_ms: now_ms(),
                })
                .await
        }
        None => store.delete_route(&p.store_key()).await.map(|_| ()),
    }
}

/// The answer to a change: under `key`, what was changed as it is now (`now` reads it from
/// the new snapshot; null after a delete), and whether the change was persisted.
pub(crate) async fn answer(
    state: &AdminState,
    p: &Persist,
    key: &str,
    now: impl FnOnce(&Snapshot) -> Value,
) -> Json<Value> {
    let persisted = persist(state, p).await;
    let value = now(&state.runtime.load());
    Json(json!({ key: value, "persisted": persisted }))
}

/// The answer to a route change: the route as it is now (null after a delete) and whether
/// the change was persisted.
pub(crate) async fn changed(state: &AdminState, name: &str, p: Persist) -> Json<Value> {
    answer(state, &p, "route", |snap| {
        snap.route(name).map_or(Value::Null, |r| route_json(r))
    })
    .await
}

/// `PUT /api/routes/{name}` with a route as JSON (the config's route keys; `name` comes from
/// the path and, if given in the body, must match).
pub async fn put(
    State(state): State<AdminState>,
    Path(name): Path<String>,
    headers: http::HeaderMap,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let mut raw: RawRoute = parse_body(&body)?;
    if !raw.name.is_empty() && raw.name != name {
        return Err(ApiError::invalid(format!(
            "name: `{}` does not match the route name in the path (`{name}`)",
            raw.name
        )));
    }
    raw.name = name.clone();
    let p = state.runtime.put_route(raw, actor(&headers))?;
    Ok(changed(&state, &name, p).await)
}

/// `DELETE /api/routes/{name}`
pub async fn delete(
    State(state): State<AdminState>,
    Path(name): Path<String>,
    headers: http::HeaderMap,
) -> ApiResult<Json<Value>> {
    let p = state.runtime.delete_route(&name, actor(&headers))?;
    Ok(changed(&state, &name, p).await)
}

/// `PUT /api/routes/{name}/shadow`: the route's candidates become the body's, one object or
/// a list of them.
pub async fn put_shadow(
    State(state): State<AdminState>,
    Path(name): Path<String>,
    headers: http::HeaderMap,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let shadow: RawShadows = parse_body(&body)?;
    if shadow.0.is_empty() {
        return Err(ApiError::invalid(
            "request body: an empty list; DELETE /api/routes/{name}/shadow stops shadowing",
        ));
    }
    let p = state
        .runtime
        .set_shadow(&name, Some(shadow), actor(&headers))?;
    Ok(changed(&state, &name, p).await)
}

/// `POST /api/routes/{name}/shadow`: one candidate joins the route's others (or, already one,
/// gets these settings).
pub async fn post_shadow(
    State(state): State<AdminState>,
    Path(name): Path<String>,
    headers: http::HeaderMap,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let shadow: RawShadow = parse_body(&body)?;
    let p = state
        .runtime
        .upsert_shadow(&name, shadow, actor(&headers))?;
    Ok(changed(&state, &name, p).await)
}

/// `DELETE /api/routes/{name}/shadow`: stops shadowing, or with `?service=NAME` stops that
/// one candidate (the others go on).
pub async fn delete_shadow(
    State(state): State<AdminState>,
    Path(name): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    headers: http::HeaderMap,
) -> ApiResult<Json<Value>> {
    if let Some(k) = q.keys().find(|k| *k != "service") {
        return Err(ApiError::invalid(format!(
            "unknown query parameter `{k}` (expected `service`)"
        )));
    }
    let p = match q.get("service") {
        Some(service) => state
            .runtime
            .remove_shadow(&name, service, actor(&headers))?,
        None => state.runtime.set_shadow(&name, None, actor(&headers))?,
    };
    Ok(changed(&state, &name, p).await)
}

/// `PUT /api/routes/{name}/canary`; weight 0 removes the canary.
pub async fn put_canary(
    State(state): State<AdminState>,
    Path(name): Path<String>,
    headers: http::HeaderMap,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let canary: RawCanary = parse_body(&body)?;
    let canary = (canary.weight != 0.0).then_some(canary);
    let p = state.runtime.set_canary(&name, canary, actor(&headers))?;
    Ok(changed(&state, &name, p).await)
}

/// `DELETE /api/routes/{name}/canary`
pub async fn delete_canary(
    State(state): State<AdminState>,
    Path(name): Path<String>,
    headers: http::HeaderMap,
) -> ApiResult<Json<Value>> {
    let p = state.runtime.set_canary(&name, None, actor(&headers))?;
    Ok(changed(&state, &name, p).await)
}

/// `POST /api/routes/{name}/promote`
pub async fn promote(
    State(state): State<AdminState>,
    Path(name): Path<String>,
    headers: http::HeaderMap,
) -> ApiResult<Json<Value>> {
    let p = state.runtime.promote(&name, actor(&headers))?;
    Ok(changed(&state, &name, p).await)
}

/// `POST /api/routes/{name}/rollback`
pub async fn rollback(
    State(state): State<AdminState>,
    Path(name): Path<String>,
    headers: http::HeaderMap,
) -> ApiResult<Json<Value>> {
    let p = state.runtime.rollback(&name, actor(&headers))?;
    Ok(changed(&state, &name, p).await)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct IgnoreBody {
    path: String,
}

/// `POST /api/routes/{name}/ignore` with `{"path": "/meta/x"}`: marks a field as noise.
pub async fn ignore(
    State(state): State<AdminState>,
    Path(name): Path<String>,
    headers: http::HeaderMap,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let b: IgnoreBody = parse_body(&body)?;
    let p = state.runtime.add_ignore(&name, &b.path, actor(&headers))?;
    Ok(changed(&state, &name, p).await)
}

fn rate(count: u64, total: u64) -> f64 {
    if total == 0 {
        0.0
    } else {
        count as f64 / total as f64
    }
}

fn percentiles_json(p: &Percentiles) -> Value {
    json!({ "p50": p.p50, "p90": p.p90, "p99": p.p99, "count": p.count })
}

/// `GET /api/routes/{name}/diffs`: field-level difference rates per endpoint, with each
/// field's noise rate and significance, and the endpoint's latency comparison (µs).
pub async fn diffs(
    State(state): State<AdminState>,
    Path(name): Path<String>,
) -> ApiResult<Json<Value>> {
    let store = state
        .store
        .clone()
        .ok_or_else(ApiError::store_unavailable)?;
    let thresholds = {
        let snap = state.runtime.load();
        snap.route(&name).map(|r| r.spec.compare.thresholds)
    };
    let stats = store.route_stats(&name).await?;
    // A route that is gone still shows the comparisons it left behind.
    if thresholds.is_none() && stats.is_empty() {
        return Err(ApiError::not_found(format!("no route named `{name}`")));
    }
    let thresholds = thresholds.unwrap_or_default();
    let mut total = 0u64;
    let mut endpoints = Vec::with_capacity(stats.len());
    for ep in stats {
        let t = ep.totals;
        total += t.total;
        let fields: Vec<Value> = ep
            .fields
            .iter()
            .map(|f| {
                json!({
                    "path": f.path,
                    "kind": f.kind,
                    "count": f.count,
                    "rate": rate(f.count, t.total),
                    "noise_count": f.noise_count,
                    "noise_rate": rate(f.noise_count, t.noise_total),
                    "significant": is_significant(f.count, t.total, f.noise_count, t.noise_total, &thresholds),
                })
            })
            .collect();
        let samples = store
            .latency_samples(&name, Some(&ep.endpoint), LATENCY_SAMPLES)
            .await?;
        let primary: Vec<u64> = samples.iter().map(|s| s.primary_us).collect();
        let shadow: Vec<u64> = samples.iter().filter_map(|s| s.shadow_us).collect();
        let reg = regression(&primary, &shadow);
        endpoints.push(json!({
            "endpoint": ep.endpoint,
            "total": t.total,
            "noise_total": t.noise_total,
            "same": t.same,
            "different": t.different,
            "noise": t.noise,
            "shadow_error": t.shadow_error,
            "fields": fields,
            "latency": {
                "primary": percentiles_json(&reg.primary),
                "shadow": percentiles_json(&reg.shadow),
                "regression": { "flagged": reg.flagged, "reason": reg.reason, "p_value": reg.p_value },
            },
        }));
    }
    Ok(Json(
        json!({ "route": name, "total": total, "endpoints": endpoints }),
    ))
}
