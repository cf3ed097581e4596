//! `POST`/`GET /api/routes/{name}/rollout` and `POST .../rollout/{pause|resume|abort|advance}`,
//! and the store behind the rollout controllers ([`StoreBackend`]).

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::Json;
use bytes::Bytes;
use futures_util::future::BoxFuture;
use serde_json::Value;
use umbra_core::config::RawRollout;
use umbra_core::rollout::{Action, RolloutBackend, RolloutState, Rollouts};
use umbra_core::runtime::Persist;
use umbra_store::ComparisonStore;

use crate::error::{ApiError, ApiResult};
use crate::routes::{actor, parse_body, store_change};
use crate::AdminState;

/// Rollout state and the controllers' route changes, in the store (nothing without one).
pub struct StoreBackend {
    pub store: Option<Arc<dyn ComparisonStore>>,
}

impl RolloutBackend for StoreBackend {
    fn save(&self, state: &RolloutState) -> BoxFuture<'_, Result<(), String>> {
        let doc = serde_json::to_value(state);
        let route = state.route.clone();
        Box::pin(async move {
            let Some(store) = &self.store else {
                return Ok(());
            };
            let doc = doc.map_err(|e| e.to_string())?;
            store
                .put_rollout(&route, &doc)
                .await
                .map_err(|e| e.to_string())
        })
    }

    fn load_all(&self) -> BoxFuture<'_, Result<Vec<RolloutState>, String>> {
        Box::pin(async move {
            let Some(store) = &self.store else {
                return Ok(Vec::new());
            };
            let rows = store.list_rollouts().await.map_err(|e| e.to_string())?;
            let mut out = Vec::new();
            for (route, doc) in rows {
                match serde_json::from_value::<RolloutState>(doc) {
                    Ok(s) => out.push(s),
                    Err(e) => {
                        tracing::warn!(route = %route, error = %e, "stored rollout unreadable; skipped")
                    }
                }
            }
            Ok(out)
        })
    }

    fn load(&self, route: &str) -> BoxFuture<'_, Result<Option<RolloutState>, String>> {
        let route = route.to_string();
        Box::pin(async move {
            let all = self.load_all().await?;
            Ok(all.into_iter().find(|s| s.route == route))
        })
    }

    fn persist_route(&self, change: Persist) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(async move {
            let Some(store) = &self.store else {
                return Ok(());
            };
            store_change(store.as_ref(), &change)
                .await
                .map_err(|e| e.to_string())
        })
    }
}

fn rollouts(state: &AdminState) -> ApiResult<&Arc<Rollouts>> {
    state.rollouts.as_ref().ok_or_else(|| {
        ApiError::new(
            http::StatusCode::SERVICE_UNAVAILABLE,
            "rollouts_unavailable",
            "this umbra runs no rollout controller",
        )
    })
}

/// `POST /api/routes/{name}/rollout` with the `rollout` keys as JSON: starts a rollout (422
/// naming the field, 409 while one runs).
pub async fn start(
    State(state): State<AdminState>,
    Path(name): Path<String>,
    headers: http::HeaderMap,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let raw: RawRollout = parse_body(&body)?;
    let started = rollouts(&state)?.start(&name, raw, actor(&headers)).await?;
    Ok(Json(started.to_json()))
}

/// `GET /api/routes/{name}/rollout`: step, weight, window start, per-gate evidence, history
/// (`{"status": "none"}` for a route that never had a rollout).
pub async fn get(
    State(state): State<AdminState>,
    Path(name): Path<String>,
) -> ApiResult<Json<Value>> {
    if let Some(s) = rollouts(&state)?.status(&name).await {
        return Ok(Json(s.to_json()));
    }
    if state.runtime.load().route(&name).is_none() {
        return Err(ApiError::not_found(format!("no route named `{name}`")));
    }
    Ok(Json(serde_json::json!({ "route": name, "status": "none" })))
}

/// `POST /api/routes/{name}/rollout/{action}`: pause, resume, abort, advance.
pub async fn act(
    State(state): State<AdminState>,
    Path((name, action)): Path<(String, String)>,
    headers: http::HeaderMap,
) -> ApiResult<Json<Value>> {
    let Some(a) = Action::parse(&action) else {
        return Err(ApiError::invalid(format!(
            "action: `{action}` is not a rollout action; expected pause, resume, abort or advance"
        )));
    };
    let s = rollouts(&state)?.act(&name, a, actor(&headers)).await?;
    Ok(Json(s.to_json()))
}
