//! `GET /api/openapi.json`: the hand-maintained OpenAPI 3.0 document of the admin API
//! (`assets/openapi.json`, checked against the router by `tests/openapi.rs`).

use axum::response::{IntoResponse, Response};

/// The OpenAPI document, as served.
pub const OPENAPI_JSON: &str = include_str!("../assets/openapi.json");

/// `GET /api/openapi.json`
pub async fn document() -> Response {
    (
        [(http::header::CONTENT_TYPE, "application/json")],
        OPENAPI_JSON,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    #[test]
    fn is_valid_json() {
        let doc: serde_json::Value =
            serde_json::from_str(super::OPENAPI_JSON).expect("assets/openapi.json is valid JSON");
        assert_eq!(doc["openapi"], "3.0.3");
    }
}
