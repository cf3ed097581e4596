//! `/health`, `/health/live`, `/health/ready` and `/metrics`.

use std::sync::atomic::Ordering;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;
use http::StatusCode;
use serde_json::{json, Value};

use crate::AdminState;

/// How long a store ping may take before the store counts as down.
pub const STORE_PING_TIMEOUT: Duration = Duration::from_secs(1);

/// State of the store as health checks see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreState {
    Up,
    Down,
    /// No store configured (comparisons are not kept).
    Disabled,
}

impl StoreState {
    pub fn as_str(self) -> &'static str {
        match self {
            StoreState::Up => "up",
            StoreState::Down => "down",
            StoreState::Disabled => "disabled",
        }
    }
}

/// Pings the store with a 1 s timeout: its state and the round trip in ms.
pub async fn check_store(state: &AdminState) -> (StoreState, f64) {
    let Some(store) = &state.store else {
        return (StoreState::Disabled, 0.0);
    };
    let start = Instant::now();
    let ok = matches!(
        tokio::time::timeout(STORE_PING_TIMEOUT, store.ping()).await,
        Ok(Ok(()))
    );
    let ms = start.elapsed().as_secs_f64() * 1000.0;
    (if ok { StoreState::Up } else { StoreState::Down }, ms)
}

pub async fn live() -> Json<Value> {
    Json(json!({ "status": "healthy" }))
}

/// Summary of every dependency. The config check is the snapshot load (always up once umbra
/// runs; a failed reload keeps the running config and is reported as `degraded`). A store
/// that does not answer, or a change feed that is reconnecting (replicas on PostgreSQL),
/// makes umbra `degraded`, not `unhealthy`: the proxy still serves.
async fn summary(state: &AdminState) -> (&'static str, Value) {
    let start = Instant::now();
    let snap = state.runtime.load();
    let routes = snap.routes.len();
    drop(snap);
    let config_ms = start.elapsed().as_secs_f64() * 1000.0;
    let reload = state.runtime.reload_status();
    let config_state = if reload.last_reload_error.is_some() {
        "degraded"
    } else {
        "up"
    };

    let (store_state, store_ms) = check_store(state).await;
    let tls_problem = state.tls.as_ref().and_then(|t| t.problem());
    // A replica whose change feed is reconnecting may be missing the others' changes.
    let feed = state.feed.as_ref().map(|f| f.get());
    let feed_behind = feed.as_ref().is_some_and(|f| f.state == "reconnecting");
    let status = if store_state == StoreState::Down
        || config_state != "up"
        || tls_problem.is_some()
        || feed_behind
    {
        "degraded"
    } else {
        "healthy"
    };
    let mut checks = json!({
        "config": {
            "state": config_state,
            "latency_ms": config_ms,
            "routes": routes,
            "last_reload_error": reload.last_reload_error,
        },
        "store": {
            "state": store_state.as_str(),
            "latency_ms": store_ms,
            "kind": state.store.as_ref().map(|s| s.kind()),
        },
        "store_feed": feed.map(|f| json!({
            "state": f.state,
            "since_ms": f.since_ms,
            "last_error": f.last_error,
        })),
    });
    if state.tls.is_some() {
        checks["tls"] = json!({
            "state": if tls_problem.is_some() { "degraded" } else { "up" },
            "problem": tls_problem,
        });
    }
    (status, json!({ "status": status, "checks": checks }))
}

/// `GET /health`: always 200, the summary tells the state.
pub async fn health(State(state): State<AdminState>) -> Json<Value> {
    Json(summary(&state).await.1)
}

/// `GET /health/ready`: 200 when healthy or degraded, 503 only when unhealthy.
pub async fn ready(State(state): State<AdminState>) -> Response {
    let (status, body) = summary(&state).await;
    let code = if status == "unhealthy" {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    };
    (code, Json(body)).into_response()
}

/// Serializes the store-dropped delta update so two scrapes never add the same drops twice.
static DROPPED_SYNC: Mutex<()> = Mutex::new(());

/// `GET /metrics`: Prometheus text, after bringing the store queue gauge and the store
/// dropped counter up to date.
pub async fn metrics(State(state): State<AdminState>) -> Response {
    let m = &state.runtime.metrics;
    m.store_queue_depth
        .set(i64::try_from(state.sink.depth()).unwrap_or(i64::MAX));
    {
        let _guard = DROPPED_SYNC.lock().unwrap_or_else(|e| e.into_inner());
        let seen = state.store_dropped.load(Ordering::Relaxed);
        let counted = m.store_dropped.get();
        if seen > counted {
            m.store_dropped.inc_by(seen - counted);
        }
    }
    (
        [(
            http::header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        m.encode(),
    )
        .into_response()
}
