//! `/api/comparisons`, `/api/comparisons/{id}` and `/api/events`.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::Json;
use serde_json::{json, Value};
use umbra_diff::Verdict;
use umbra_store::{ListQuery, DEFAULT_LIST_LIMIT};

use crate::error::{ApiError, ApiResult};
use crate::AdminState;

fn number<T: std::str::FromStr>(q: &HashMap<String, String>, key: &str) -> ApiResult<Option<T>> {
    match q.get(key).map(|s| s.trim()).filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(s) => s.parse().map(Some).map_err(|_| {
            ApiError::invalid(format!(
                "{key}: expected a non-negative whole number, got `{s}`"
            ))
        }),
    }
}

fn text(q: &HashMap<String, String>, key: &str) -> Option<String> {
    q.get(key).filter(|s| !s.is_empty()).cloned()
}

/// `?finding=`: a finding id, 16 lower-case hex digits.
fn finding(q: &HashMap<String, String>) -> ApiResult<Option<String>> {
    let Some(f) = text(q, "finding") else {
        return Ok(None);
    };
    let hex = f.len() == 16 && f.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    if hex {
        Ok(Some(f))
    } else {
        Err(ApiError::invalid(format!(
            "finding: expected a finding id (16 lower-case hex digits), got `{f}`"
        )))
    }
}

/// Reads `?route=&verdict=&endpoint=&finding=&limit=&before=`; a wrong value is a 422
/// naming it.
pub fn list_query(q: &HashMap<String, String>) -> ApiResult<ListQuery> {
    let verdict = match text(q, "verdict") {
        None => None,
        Some(v) => Some(Verdict::parse(&v).ok_or_else(|| {
            ApiError::invalid(format!(
                "verdict: expected one of `same`, `different`, `noise`, `shadow_error`, got `{v}`"
            ))
        })?),
    };
    Ok(ListQuery {
        route: text(q, "route"),
        verdict,
        endpoint: text(q, "endpoint"),
        finding: finding(q)?,
        limit: number(q, "limit")?.unwrap_or(DEFAULT_LIST_LIMIT),
        before: number(q, "before")?,
    })
}

/// `GET /api/comparisons`: newest first, `{"items": [...], "next": cursor|null}`.
pub async fn list(
    State(state): State<AdminState>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Json<Value>> {
    let query = list_query(&q)?;
    let store = state
        .store
        .as_ref()
        .ok_or_else(ApiError::store_unavailable)?;
    let page = store.list(&query).await?;
    Ok(Json(json!({ "items": page.items, "next": page.next })))
}

/// `GET /api/comparisons/{id}`: the whole comparison (request redacted before it was stored).
pub async fn get(
    State(state): State<AdminState>,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let id: i64 = id
        .parse()
        .map_err(|_| ApiError::invalid(format!("id: expected a whole number, got `{id}`")))?;
    let store = state
        .store
        .as_ref()
        .ok_or_else(ApiError::store_unavailable)?;
    let c = store
        .get(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no comparison with id {id}")))?;
    Ok(Json(serde_json::to_value(c).unwrap_or(Value::Null)))
}

/// `GET /api/events?limit=&before=`: the audit log, newest first.
pub async fn events(
    State(state): State<AdminState>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Json<Value>> {
    let limit: u32 = number(&q, "limit")?.unwrap_or(DEFAULT_LIST_LIMIT);
    let before: Option<i64> = number(&q, "before")?;
    let store = state
        .store
        .as_ref()
        .ok_or_else(ApiError::store_unavailable)?;
    let items = store.list_events(limit, before).await?;
    let next = if items.len() as u32 >= limit.max(1) {
        items.last().map(|e| e.id)
    } else {
        None
    };
    Ok(Json(json!({ "items": items, "next": next })))
}
