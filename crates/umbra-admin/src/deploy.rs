//! `POST /api/routes/{name}/deploy`: health-check a new target, switch the route's service to
//! it, drain the old servers (see `umbra_core::deploy`). The answer comes once the deploy is
//! done: 200 with what changed, or 504 `target_unhealthy` (nothing changed), 422 naming a bad
//! field, 404 for an unknown route.

use std::time::Duration;

use axum::extract::{Path, State};
use axum::Json;
use bytes::Bytes;
use http::StatusCode;
use serde::Deserialize;
use serde_json::{json, Value};
use umbra_core::config::units::parse_duration;
use umbra_core::deploy::{deploy, DeployError, DeployRequest};

use crate::error::{ApiError, ApiResult};
use crate::routes::{actor, parse_body, persist};
use crate::AdminState;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DeployBody {
    target: String,
    wait: Option<String>,
    drain: Option<String>,
    health_path: Option<String>,
}

fn duration(key: &str, v: Option<&str>, default: Duration) -> ApiResult<Duration> {
    match v {
        None => Ok(default),
        Some(text) => parse_duration(text).map_err(|e| ApiError::invalid(format!("{key}: {e}"))),
    }
}

impl From<DeployError> for ApiError {
    fn from(e: DeployError) -> Self {
        match e {
            DeployError::Control(c) => c.into(),
            unhealthy @ DeployError::Unhealthy { .. } => Self::new(
                StatusCode::GATEWAY_TIMEOUT,
                "target_unhealthy",
                unhealthy.to_string(),
            ),
        }
    }
}

/// `POST /api/routes/{name}/deploy` with `{"target", "wait"?: "60s", "drain"?: "30s",
/// "health_path"?: "/up"}`.
pub async fn post(
    State(state): State<AdminState>,
    Path(name): Path<String>,
    headers: http::HeaderMap,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let b: DeployBody = parse_body(&body)?;
    let req = DeployRequest {
        target: b.target,
        wait: duration("wait", b.wait.as_deref(), Duration::from_secs(60))?,
        drain: duration("drain", b.drain.as_deref(), Duration::from_secs(30))?,
        health_path: b.health_path.unwrap_or_else(|| "/up".into()),
    };
    let outcome = deploy(&state.runtime, &name, req, actor(&headers)).await?;
    let persisted = persist(&state, &outcome.persist).await;
    let mut v = json!(outcome);
    v["persisted"] = json!(persisted);
    Ok(Json(v))
}
