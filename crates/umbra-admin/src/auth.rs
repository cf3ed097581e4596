//! Token check for `/api/*`, `/`, `/ui/*` pages and `/metrics` when the config in force has an
//! admin token: `Authorization: Bearer <token>`, or the UI's `umbra_session` cookie (a random
//! session id from [`crate::session`], never the token; see [`authorized_request`]). The token
//! is read from the config in force on every request, so a reload that changes it rotates it:
//! the old one stops working and the sessions made with it end.

use std::time::Instant;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;
use crate::AdminState;

/// Name of the cookie that carries the UI's session id.
pub const SESSION_COOKIE: &str = "umbra_session";

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

/// The `umbra_session` cookie's value, if the request carries one.
pub fn session_cookie(headers: &http::HeaderMap) -> Option<String> {
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|kv| {
            let (k, v) = kv.trim().split_once('=')?;
            (k == SESSION_COOKIE).then(|| v.trim().to_string())
        })
}

/// Whether a request may pass: the bearer header, or a live UI session (made with the token in
/// force), accepted for `GET`/`HEAD` pages and, on `/api/*` and `/metrics`, only with
/// `X-Umbra-CSRF: 1` (a custom header that a cross-site form cannot send).
pub fn authorized_request(state: &AdminState, token: Option<&str>, req: &Request) -> bool {
    let Some(expected) = token else {
        return true;
    };
    let headers = req.headers();
    if authorized(token, headers) {
        return true;
    }
    let Some(id) = session_cookie(headers) else {
        return false;
    };
    if !state.sessions().is_valid(&id, expected, Instant::now()) {
        return false;
    }
    let path = req.uri().path();
    let api = path.starts_with("/api/") || path == "/api" || path == "/metrics";
    if api {
        headers.get("x-umbra-csrf").and_then(|v| v.to_str().ok()) == Some("1")
    } else {
        req.method() == http::Method::GET || req.method() == http::Method::HEAD
    }
}

pub async fn require_token(State(state): State<AdminState>, req: Request, next: Next) -> Response {
    let token = match state.token() {
        Ok(t) => t,
        Err(e) => return e.into_response(),
    };
    if authorized_request(&state, token.as_deref(), &req) {
        next.run(req).await
    } else if wants_page(&req) {
        // A browser opening a page without a session: to the sign-in form.
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

    #[test]
    fn reads_the_session_cookie() {
        let mut h = http::HeaderMap::new();
        assert_eq!(session_cookie(&h), None);
        h.insert("cookie", "a=1; umbra_session=abc ; b=2".parse().unwrap());
        assert_eq!(session_cookie(&h).as_deref(), Some("abc"));
    }
}
