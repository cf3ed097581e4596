//! Token check for `/api/*`, `/`, `/ui/*` pages and `/metrics` when a token is configured:
//! `Authorization: Bearer <token>`, or the UI's `umbra_token` cookie (see [`authorized_request`]).

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

/// The `umbra_token` cookie's value, if the request carries one.
pub fn cookie_token(headers: &http::HeaderMap) -> Option<String> {
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|kv| {
            let (k, v) = kv.trim().split_once('=')?;
            (k == crate::ui::TOKEN_COOKIE).then(|| crate::ui::dec(v))
        })
}

/// Whether a request may pass: the bearer header, or the UI's token cookie, accepted for
/// `GET`/`HEAD` pages and, on `/api/*` and `/metrics`, only with `X-Umbra-CSRF: 1` (a custom
/// header that a cross-site form cannot send).
pub fn authorized_request(
    token: Option<&str>,
    method: &http::Method,
    path: &str,
    headers: &http::HeaderMap,
) -> bool {
    if authorized(token, headers) {
        return true;
    }
    let (Some(expected), Some(given)) = (token, cookie_token(headers)) else {
        return false;
    };
    if !constant_time_eq(given.as_bytes(), expected.as_bytes()) {
        return false;
    }
    let api = path.starts_with("/api/") || path == "/api" || path == "/metrics";
    if api {
        headers.get("x-umbra-csrf").and_then(|v| v.to_str().ok()) == Some("1")
    } else {
        method == http::Method::GET || method == http::Method::HEAD
    }
}

pub async fn require_token(State(state): State<AdminState>, req: Request, next: Next) -> Response {
    if authorized_request(
        state.token.as_deref(),
        req.method(),
        req.uri().path(),
        req.headers(),
    ) {
        next.run(req).await
    } else if wants_page(&req) {
        // A browser opening a page without the session cookie: to the sign-in form.
        axum::response::Redirect::to("/ui/login").into_response()
    } else {
        let mut resp = ApiError::unauthorized().into_response();
        resp.headers_mut().insert(
            http::header::WWW_AUTHENTICATE,
            http::HeaderValue::from_static("Bearer"),
        );
        resp
    }
}

/// A GET for an HTML page (a browser navigating), as opposed to an API call.
fn wants_page(req: &Request) -> bool {
    req.method() == http::Method::GET
        && !req.uri().path().starts_with("/api/")
        && req
            .headers()
            .get(http::header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|a| a.contains("text/html"))
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
