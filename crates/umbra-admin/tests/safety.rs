//! Admin safety over real HTTP on an ephemeral port (the admin as `serve` runs it): a foreign
//! `Host` is 421 (DNS rebinding), a cross-site change is 403, a change that is not JSON is 415,
//! wrong sign-in tokens are throttled (429), the session cookie is a random id and not the
//! token, and a reload that changes the token rotates it.

mod common;

use std::net::SocketAddr;

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::Full;
use tokio_util::sync::CancellationToken;
use umbra_core::Config;
use umbra_testkit::TestResponse;

use common::CONFIG;

/// An admin serving on `bind` (port 0), stopped when dropped.
struct Admin {
    addr: SocketAddr,
    parts: common::Parts,
    shutdown: CancellationToken,
}

impl Drop for Admin {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// `config` is the whole config text (any `[admin]` section included).
async fn start(config: &str, bind: &str) -> Admin {
    let parts = common::parts(config, None).await;
    let state = common::state(&parts.runtime, &parts.store, 0);
    let listener = tokio::net::TcpListener::bind(bind).await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let shutdown = CancellationToken::new();
    tokio::spawn(umbra_admin::serve(listener, state, shutdown.clone()));
    Admin {
        addr: SocketAddr::from(([127, 0, 0, 1], port)),
        parts,
        shutdown,
    }
}

fn with_admin(admin: &str) -> String {
    format!("[admin]\n{admin}\n{CONFIG}")
}

impl Admin {
    async fn send(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> TestResponse {
        let mut req = Request::builder()
            .method(method)
            .uri(format!("http://{}{path}", self.addr));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        umbra_testkit::send(req.body(Full::new(Bytes::from(body.to_string()))).unwrap()).await
    }

    async fn get(&self, path: &str, headers: &[(&str, &str)]) -> TestResponse {
        self.send(Method::GET, path, headers, "").await
    }

    /// `POST /ui/login` with `token` from this client.
    async fn login(&self, token: &str) -> TestResponse {
        let form = [("content-type", "application/x-www-form-urlencoded")];
        self.send(Method::POST, "/ui/login", &form, &format!("token={token}"))
            .await
    }

    fn host(&self, name: &str) -> String {
        format!("{name}:{}", self.addr.port())
    }

    fn origin(&self) -> String {
        format!("http://{}", self.addr)
    }
}

/// Asserts an error answer's status and code; returns its message.
fn error(r: &TestResponse, status: StatusCode, code: &str) -> String {
    assert_eq!(r.status, status, "{}", r.text());
    let v = r.json();
    assert_eq!(v["error"], code, "{v}");
    v["message"].as_str().expect("a message").to_string()
}

#[tokio::test]
async fn a_foreign_host_is_misdirected() {
    // No token: the loopback admin a rebinding page would aim at.
    let a = start(&with_admin("hosts = [\"umbra.internal\"]"), "127.0.0.1:0").await;
    let evil = a.host("evil.example");
    for path in ["/api/status", "/", "/ui/login", "/metrics", "/api/nothing"] {
        let r = a.get(path, &[("host", &evil)]).await;
        let msg = error(&r, StatusCode::MISDIRECTED_REQUEST, "misdirected");
        assert!(msg.contains(&evil), "{path}: {msg}");
    }
    let r = a
        .send(
            Method::DELETE,
            "/api/routes/api/shadow",
            &[("host", &evil), ("content-type", "application/json")],
            "",
        )
        .await;
    error(&r, StatusCode::MISDIRECTED_REQUEST, "misdirected");
    assert!(
        a.parts
            .runtime
            .snapshot()
            .route("api")
            .unwrap()
            .spec
            .raw
            .shadow
            .is_some(),
        "the change did not happen"
    );
    // Its own names pass, on any port (a port mapping changes it).
    for own in [
        a.host("127.0.0.1"),
        a.host("localhost"),
        a.host("LOCALHOST"),
        a.host("[::1]"),
        a.host("umbra.internal"),
        "10.0.0.7:9999".to_string(),
        "localhost".to_string(),
    ] {
        let r = a.get("/api/status", &[("host", &own)]).await;
        assert_eq!(r.status, StatusCode::OK, "{own}: {}", r.text());
    }
    // Health stays reachable whatever the name (orchestrators' probes).
    for path in ["/health", "/health/live", "/health/ready"] {
        let r = a.get(path, &[("host", &evil)]).await;
        assert_eq!(r.status, StatusCode::OK, "{path}: {}", r.text());
    }
}

#[tokio::test]
async fn a_cross_site_change_is_forbidden() {
    let a = start(CONFIG, "127.0.0.1:0").await;
    let json = ("content-type", "application/json");
    let path = "/api/routes/api/shadow";
    for (header, value) in [
        ("origin", "http://evil.example"),
        ("origin", "null"),
        // Another local site (another port) is another origin.
        ("origin", "http://127.0.0.1:1"),
        ("referer", "http://evil.example/page"),
    ] {
        let r = a
            .send(Method::DELETE, path, &[json, (header, value)], "")
            .await;
        let msg = error(&r, StatusCode::FORBIDDEN, "cross_origin");
        assert!(msg.contains(value), "{msg}");
    }
    let r = a
        .send(
            Method::POST,
            "/ui/login",
            &[("origin", "http://evil.example")],
            "token=x",
        )
        .await;
    error(&r, StatusCode::FORBIDDEN, "cross_origin");
    assert!(
        a.parts
            .runtime
            .snapshot()
            .route("api")
            .unwrap()
            .spec
            .raw
            .shadow
            .is_some(),
        "no change went through"
    );
    // Reads are not changes; the admin's own page may change things.
    let r = a
        .get("/api/status", &[("origin", "http://evil.example")])
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let own = a.origin();
    let referer = format!("{own}/ui/routes/api");
    let r = a
        .send(Method::DELETE, path, &[json, ("referer", &referer)], "")
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let r = a
        .send(
            Method::PUT,
            path,
            &[json, ("origin", &own)],
            r#"{"service": "v2", "percent": 10}"#,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
}

#[tokio::test]
async fn a_change_that_is_not_json_is_refused() {
    let a = start(CONFIG, "127.0.0.1:0").await;
    let route = r#"{"rule": "PathPrefix(`/new`)", "service": "v1"}"#;
    for ct in [
        None,
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
        Some("multipart/form-data; boundary=x"),
    ] {
        let headers: Vec<(&str, &str)> = ct.map(|c| ("content-type", c)).into_iter().collect();
        let r = a
            .send(Method::PUT, "/api/routes/new", &headers, route)
            .await;
        let msg = error(
            &r,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        );
        assert!(msg.contains("application/json"), "{msg}");
        // Bodiless changes too.
        let r = a
            .send(Method::POST, "/api/routes/api/rollback", &headers, "")
            .await;
        error(
            &r,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        );
    }
    assert!(a.parts.runtime.snapshot().route("new").is_none());
    let r = a
        .send(
            Method::PUT,
            "/api/routes/new",
            &[("content-type", "Application/JSON; charset=utf-8")],
            route,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert!(a.parts.runtime.snapshot().route("new").is_some());
}

#[tokio::test]
async fn wrong_sign_in_tokens_are_throttled() {
    let a = start(&with_admin("token = \"s3cret\""), "127.0.0.1:0").await;
    for i in 0..umbra_admin::throttle::MAX_FAILURES {
        let r = a.login("wrong").await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "attempt {i}");
        assert!(r.header("retry-after").is_none());
    }
    let r = a.login("wrong").await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{}", r.text());
    let secs: u64 = r
        .header("retry-after")
        .expect("Retry-After")
        .parse()
        .unwrap();
    assert!((1..=umbra_admin::throttle::WINDOW.as_secs()).contains(&secs));
    assert!(r.text().contains("too many wrong tokens"), "{}", r.text());
    // Locked out means locked out: the right token waits too, and no cookie is set.
    let r = a.login("s3cret").await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(r.header("set-cookie").is_none());
}

/// The `umbra_session=...` pair of a sign-in answer.
fn session_pair(r: &TestResponse) -> String {
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text());
    let cookie = r.header("set-cookie").expect("a session cookie");
    cookie.split(';').next().unwrap().to_string()
}

#[tokio::test]
async fn the_session_cookie_is_a_random_id_not_the_token() {
    let a = start(&with_admin("token = \"s3cret\""), "127.0.0.1:0").await;
    let first = session_pair(&a.login("s3cret").await);
    let second = session_pair(&a.login("s3cret").await);
    assert_ne!(first, second, "each sign-in gets its own id");
    let id = first.strip_prefix("umbra_session=").expect("umbra_session");
    assert!(!id.contains("s3cret") && id.len() == 64, "{first}");
    let page = [("cookie", first.as_str())];
    let r = a.get("/ui/events", &page).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let api = [("cookie", first.as_str()), ("x-umbra-csrf", "1")];
    assert_eq!(a.get("/api/status", &api).await.status, StatusCode::OK);
    // The token in the cookie is no session.
    let forged = [("cookie", "umbra_session=s3cret"), ("x-umbra-csrf", "1")];
    error(
        &a.get("/api/status", &forged).await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    );
}

fn reload(a: &Admin, text: &str) {
    let config = Config::parse(text, "test.toml", &|_| None).expect("reloaded config is valid");
    a.parts.runtime.reload(Ok(config)).expect("reload applies");
}

#[tokio::test]
async fn a_reload_rotates_the_token() {
    let a = start(&with_admin("token = \"old\""), "127.0.0.1:0").await;
    let session = session_pair(&a.login("old").await);
    let with_session = [("cookie", session.as_str()), ("x-umbra-csrf", "1")];
    assert_eq!(
        a.get("/api/status", &with_session).await.status,
        StatusCode::OK
    );
    let bearer = |t: &str| format!("Bearer {t}");
    let (old, new) = (bearer("old"), bearer("new"));
    assert_eq!(
        a.get("/api/status", &[("authorization", &old)])
            .await
            .status,
        StatusCode::OK
    );

    reload(&a, &with_admin("token = \"new\""));
    error(
        &a.get("/api/status", &[("authorization", &old)]).await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    );
    assert_eq!(
        a.get("/api/status", &[("authorization", &new)])
            .await
            .status,
        StatusCode::OK
    );
    // The session made with the old token ended; signing in takes the new one.
    error(
        &a.get("/api/status", &with_session).await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    );
    assert_eq!(a.login("old").await.status, StatusCode::UNAUTHORIZED);
    let fresh = session_pair(&a.login("new").await);
    let with_fresh = [("cookie", fresh.as_str()), ("x-umbra-csrf", "1")];
    assert_eq!(
        a.get("/api/status", &with_fresh).await.status,
        StatusCode::OK
    );
    // Even going back to the old token does not revive the old session.
    reload(&a, &with_admin("token = \"old\""));
    error(
        &a.get("/api/status", &with_session).await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    );
}

#[tokio::test]
async fn a_reload_that_drops_the_token_closes_a_public_admin() {
    // Listening on every address (not loopback) with a token, as in the Docker image.
    let a = start(
        &with_admin("listen = \"0.0.0.0:8081\"\ntoken = \"t\""),
        "0.0.0.0:0",
    )
    .await;
    assert_eq!(
        a.get("/api/status", &[("authorization", "Bearer t")])
            .await
            .status,
        StatusCode::OK
    );
    // A reload moves `admin.listen` to loopback (valid without a token); the listener stays.
    reload(&a, CONFIG);
    let r = a.get("/api/status", &[]).await;
    let msg = error(&r, StatusCode::SERVICE_UNAVAILABLE, "token_missing");
    assert!(msg.contains("admin.token"), "{msg}");
    assert_eq!(
        a.login("anything").await.status,
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(a.get("/health/ready", &[]).await.status, StatusCode::OK);
}
