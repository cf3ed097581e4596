//! `PUT`/`DELETE /api/services/{name}`: services made at runtime, validated as the config's
//! `[services.X]` and stored, so a route can be made in the UI without editing a file.

use axum::extract::{Path, State};
use axum::Json;
use bytes::Bytes;
use serde_json::Value;
use umbra_core::config::RawService;
use umbra_core::snapshot::Snapshot;

use crate::error::ApiResult;
use crate::routes::{actor, answer, parse_body, service_json};
use crate::AdminState;

/// `PUT /api/services/{name}` with `{"servers": [...], "health"?: {...}, "balance"?}`.
pub async fn put(
    State(state): State<AdminState>,
    Path(name): Path<String>,
    headers: http::HeaderMap,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let raw: RawService = parse_body(&body)?;
    let p = state.runtime.put_service(&name, raw, actor(&headers))?;
    let now = |snap: &Snapshot| snap.service(&name).map_or(Value::Null, |s| service_json(s));
    Ok(answer(&state, &p, "service", now).await)
}

/// `DELETE /api/services/{name}`: 404 unknown, 409 while a route uses it or when the file or
/// docker defines it.
pub async fn delete(
    State(state): State<AdminState>,
    Path(name): Path<String>,
    headers: http::HeaderMap,
) -> ApiResult<Json<Value>> {
    let p = state.runtime.delete_service(&name, actor(&headers))?;
    Ok(answer(&state, &p, "service", |_| Value::Null).await)
}
