//! `GET`/`POST /ui/login`: the sign-in form for the admin token. A right token starts a session
//! ([`crate::session`]) whose random id goes into the `umbra_session` cookie (HttpOnly,
//! SameSite=Strict) that the pages and `app.js` then use; the token itself never leaves the
//! form. Wrong tokens are throttled per client ([`crate::throttle`]): 429 with `Retry-After`.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Instant;

use axum::extract::{ConnectInfo, FromRequest, Request, State};
use axum::response::{IntoResponse, Response};
use axum::Form;
use http::StatusCode;

use super::{esc, page, with_headers, Nav};
use crate::auth::SESSION_COOKIE;
use crate::session::SESSION_LIFETIME;
use crate::throttle::retry_after_secs;
use crate::AdminState;

fn login_form(message: Option<&str>) -> String {
    let msg = message.map_or(String::new(), |m| {
        format!("<p class=\"error\" role=\"alert\">{}</p>", esc(m))
    });
    format!(
        "<h1>Sign in</h1><p class=\"meta\">This umbra asks for its admin token (<code>[admin] token</code> in the \
config, often <code>$UMBRA_ADMIN_TOKEN</code>). Signing in keeps a session in an HttpOnly cookie.</p>\
{msg}<form method=\"post\" action=\"/ui/login\" class=\"stack card\">\
<label for=\"token\">Admin token</label>\
<input id=\"token\" name=\"token\" type=\"password\" autocomplete=\"current-password\" required>\
<button type=\"submit\">Sign in</button></form>"
    )
}

fn see_other(location: &'static str) -> Response {
    let mut resp = with_headers(
        StatusCode::SEE_OTHER,
        "text/plain; charset=utf-8",
        String::new(),
    );
    resp.headers_mut().insert(
        http::header::LOCATION,
        http::HeaderValue::from_static(location),
    );
    resp
}

fn login_page_with(status: StatusCode, message: &str) -> Response {
    page(status, "Sign in", Nav::None, &login_form(Some(message)))
}

/// `GET /ui/login`
pub async fn login_page(State(state): State<AdminState>) -> Response {
    match state.token() {
        Ok(None) => see_other("/"),
        Ok(Some(_)) => page(StatusCode::OK, "Sign in", Nav::None, &login_form(None)),
        Err(e) => e.into_response(),
    }
}

/// The client's address as the throttle keys it (unspecified when unknown, as in router tests).
fn client_ip(req: &Request) -> IpAddr {
    req.extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| c.0.ip())
}

/// `POST /ui/login` with form field `token`: a right token starts a session and sets its cookie.
pub async fn login(State(state): State<AdminState>, req: Request) -> Response {
    let expected = match state.token() {
        Ok(Some(t)) => t,
        Ok(None) => return see_other("/"),
        Err(e) => return e.into_response(),
    };
    let ip = client_ip(&req);
    let now = Instant::now();
    if let Err(wait) = state.logins().check(ip, now) {
        return too_many(retry_after_secs(wait));
    }
    let form = match Form::<HashMap<String, String>>::from_request(req, &state).await {
        Ok(Form(f)) => f,
        Err(e) => return e.into_response(),
    };
    let given = form.get("token").map(|s| s.trim()).unwrap_or_default();
    if !crate::auth::constant_time_eq(given.as_bytes(), expected.as_bytes()) {
        state.logins().failed(ip, now);
        return login_page_with(StatusCode::UNAUTHORIZED, "wrong token");
    }
    state.logins().succeeded(ip);
    let id = state.sessions().create(&expected, now);
    let mut resp = see_other("/");
    let cookie = format!(
        "{SESSION_COOKIE}={id}; HttpOnly; SameSite=Strict; Path=/; Max-Age={}",
        SESSION_LIFETIME.as_secs()
    );
    if let Ok(v) = http::HeaderValue::from_str(&cookie) {
        resp.headers_mut().insert(http::header::SET_COOKIE, v);
    }
    resp
}

/// 429: the sign-in page saying how long to wait, with `Retry-After`.
fn too_many(secs: u64) -> Response {
    let mut resp = login_page_with(
        StatusCode::TOO_MANY_REQUESTS,
        &format!("too many wrong tokens from your address; try again in {secs} s"),
    );
    resp.headers_mut()
        .insert(http::header::RETRY_AFTER, http::HeaderValue::from(secs));
    resp
}
