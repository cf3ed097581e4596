//! `PUT`/`DELETE /api/services/{name}`: services made at runtime, validated as the config's
//! `[services.X]` and stored, so a route can be made in the UI without editing a file.

use axum::extract::{Path, State};
use axum::Json;
use bytes::Bytes;
use serde_json::{json, Value};
use umbra_core::config::RawService;

use crate::error::ApiResult;
use crate::routes::{actor, parse_body, persist, service_json};
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
    let persisted = persist(&state, &p).await;
    let snap = state.runtime.load();
    let service = snap.service(&name).map_or(Value::Null, |s| service_json(s));
    Ok(Json(json!({ "service": service, "persisted": persisted })))
}

/// `DELETE /api/services/{name}`: 404 unknown, 409 while a route uses it or when the file or
/// docker defines it.
pub async fn delete(
    State(state): State<AdminState>,
    Path(name): Path<String>,
    headers: http::HeaderMap,
) -> ApiResult<Json<Value>> {
    let p = state.runtime.delete_service(&name, actor(&headers))?;
    let persisted = persist(&state, &p).await;
    Ok(Json(
        json!({ "service": Value::Null, "persisted": persisted }),
    ))
}
