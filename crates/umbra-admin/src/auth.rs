//! Bearer-token check for `/api/*`, `/` and `/metrics` when a token is configured.

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;
use crate::AdminState;

/// Compares in time independent of where the inputs first differ (length still leaks, which
/// is acceptable for a random token).
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Whether the request carries `Authorization: Bearer <token>` for the configured token.
pub fn authorized(token: Option<&str>, headers: &http::HeaderMap) -> bool {
    let Some(expected) = token else {
        return true;
    };
    let Some(value) = headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let given = value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))
        .unwrap_or("")
        .trim();
    constant_time_eq(given.as_bytes(), expected.as_bytes())
}

pub async fn require_token(State(state): State<AdminState>, req: Request, next: Next) -> Response {
    if authorized(state.token.as_deref(), req.headers()) {
        next.run(req).await
    } else {
        let mut resp = ApiError::unauthorized().into_response();
        resp.headers_mut().insert(
            http::header::WWW_AUTHENTICATE,
            http::HeaderValue::from_static("Bearer"),
        );
        resp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compares() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
        let mut h = http::HeaderMap::new();
        assert!(authorized(None, &h));
        assert!(!authorized(Some("t"), &h));
        h.insert("authorization", "Bearer t".parse().unwrap());
        assert!(authorized(Some("t"), &h));
        assert!(!authorized(Some("u"), &h));
    }
}
