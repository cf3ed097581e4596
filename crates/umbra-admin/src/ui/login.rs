//! `GET`/`POST /ui/login`: the sign-in form for the admin token; a right token sets the
//! `umbra_token` cookie (HttpOnly, SameSite=Strict) that the pages and `app.js` then use.

use std::collections::HashMap;

use axum::extract::State;
use axum::response::Response;
use axum::Form;
use http::StatusCode;

use super::{enc, esc, page, with_headers, Nav, TOKEN_COOKIE};
use crate::AdminState;

fn login_form(message: Option<&str>) -> String {
    let msg = message.map_or(String::new(), |m| {
        format!("<p class=\"error\" role=\"alert\">{}</p>", esc(m))
    });
    format!(
        "<h1>Sign in</h1><p class=\"meta\">This umbra asks for its admin token (<code>[admin] token</code> in the \
config, often <code>$UMBRA_ADMIN_TOKEN</code>). The browser keeps it in an HttpOnly cookie.</p>\
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

/// `GET /ui/login`
pub async fn login_page(State(state): State<AdminState>) -> Response {
    if state.token.is_none() {
        return see_other("/");
    }
    page(StatusCode::OK, "Sign in", Nav::None, &login_form(None))
}

/// `POST /ui/login` with form field `token`: sets the `umbra_token` cookie when it is right.
pub async fn login(
    State(state): State<AdminState>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let Some(expected) = state.token.as_deref() else {
        return see_other("/");
    };
    let given = form.get("token").map(|s| s.trim()).unwrap_or_default();
    if !crate::auth::constant_time_eq(given.as_bytes(), expected.as_bytes()) {
        return page(
            StatusCode::UNAUTHORIZED,
            "Sign in",
            Nav::None,
            &login_form(Some("wrong token")),
        );
    }
    let mut resp = see_other("/");
    let cookie = format!(
        "{TOKEN_COOKIE}={}; HttpOnly; SameSite=Strict; Path=/",
        enc(expected)
    );
    if let Ok(v) = http::HeaderValue::from_str(&cookie) {
        resp.headers_mut().insert(http::header::SET_COOKIE, v);
    }
    resp
}
