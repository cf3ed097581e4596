//! `POST /api/routes/{name}/pause|maintenance|resume`: hold a route's new requests (they wait
//! for `resume`, or get 503 after `max`), answer them with a 503 page, or open it again.

use std::time::Duration;

use axum::extract::{Path, State};
use axum::Json;
use bytes::Bytes;
use serde::Deserialize;
use serde_json::{json, Value};
use umbra_core::config::units::parse_duration;
use umbra_core::runtime::HoldMode;

use crate::error::{ApiError, ApiResult};
use crate::routes::{actor, parse_body};
use crate::AdminState;

/// How long a paused request waits by default.
const DEFAULT_MAX: Duration = Duration::from_secs(30);
const DEFAULT_MESSAGE: &str = "This service is down for maintenance. Please try again soon.";

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct PauseBody {
    max: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct MaintenanceBody {
    message: Option<String>,
}

/// An optional JSON body: empty means all defaults.
fn optional<T: serde::de::DeserializeOwned + Default>(body: &Bytes) -> ApiResult<T> {
    if body.is_empty() {
        Ok(T::default())
    } else {
        parse_body(body)
    }
}

fn answer(name: &str, mode: HoldMode) -> Json<Value> {
    Json(json!({ "route": name, "hold": mode }))
}

/// `POST /api/routes/{name}/pause` with `{"max"?: "30s"}`.
pub async fn pause(
    State(state): State<AdminState>,
    Path(name): Path<String>,
    headers: http::HeaderMap,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let b: PauseBody = optional(&body)?;
    let max = match b.max.as_deref() {
        None => DEFAULT_MAX,
        Some(t) => parse_duration(t).map_err(|e| ApiError::invalid(format!("max: {e}")))?,
    };
    let mode = state.runtime.pause(&name, max, actor(&headers))?;
    Ok(answer(&name, mode))
}

/// `POST /api/routes/{name}/maintenance` with `{"message"?: "..."}`.
pub async fn maintenance(
    State(state): State<AdminState>,
    Path(name): Path<String>,
    headers: http::HeaderMap,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let b: MaintenanceBody = optional(&body)?;
    let message = b.message.unwrap_or_else(|| DEFAULT_MESSAGE.into());
    if message.len() > 4096 {
        return Err(ApiError::invalid("message: longer than 4096 bytes"));
    }
    let mode = state.runtime.maintenance(&name, message, actor(&headers))?;
    Ok(answer(&name, mode))
}

/// `POST /api/routes/{name}/resume`
pub async fn resume(
    State(state): State<AdminState>,
    Path(name): Path<String>,
    headers: http::HeaderMap,
) -> ApiResult<Json<Value>> {
    let mode = state.runtime.resume(&name, actor(&headers))?;
    Ok(answer(&name, mode))
}
