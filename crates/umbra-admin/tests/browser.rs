//! The web UI: pages over `tower::ServiceExt::oneshot` (headers, escaping, diff marking,
//! cookie auth), then a real headless Chromium against the router on an ephemeral port.

mod common;

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::Router;
use http::{Method, Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::json;
use tower::ServiceExt;
use umbra_admin::router;
use umbra_diff::{Comparison, DiffKind, Difference, Request as DiffRequest, Response, Verdict};
use umbra_store::ComparisonStore;

const TOKEN: &str = "s3cret";

const CONFIG: &str = r#"
[log]
access = false

[services.v1]
servers = ["http://127.0.0.1:9"]

[services.v2]
servers = ["http://127.0.0.1:10"]

[[routes]]
name = "api"
rule = "PathPrefix(`/api`)"
service = "v1"
shadow = { service = "v2", percent = 50 }
"#;

fn comparison(route: &str) -> Comparison {
    let json_resp = |body: &str, latency_us| Response {
        status: 200,
        headers: vec![("content-type".into(), "application/json".into())],
        body: body.as_bytes().to_vec(),
        truncated: false,
        latency_us,
    };
    Comparison {
        id: 0,
        created_at_ms: 1_700_000_000_000,
        route: route.into(),
        endpoint: "GET /api/items/{id}".into(),
        request_id: "req-1".into(),
        verdict: Verdict::Different,
        request: DiffRequest {
            method: "GET".into(),
            uri: "/api/items/1?q=it's".into(),
            host: "example".into(),
            headers: vec![("authorization".into(), "[redacted]".into())],
            body: Vec::new(),
        },
        primary: json_resp(
            r#"{"item":{"price":1,"name":"<script>alert(1)</script>"},"ok":true}"#,
            1200,
        ),
        shadow: Some(json_resp(
            r#"{"item":{"price":2,"name":"<script>alert(1)</script>"},"ok":true}"#,
            1900,
        )),
        error: None,
        differences: vec![Difference {
            path: "/item/price".into(),
            kind: DiffKind::Changed,
            primary: Some(json!(1)),
            candidate: Some(json!(2)),
        }],
        noise: None,
    }
}

struct Harness {
    app: Router,
    _store: Arc<dyn ComparisonStore>,
    _dir: tempfile::TempDir,
    id: i64,
}

async fn harness(token: Option<&str>) -> Harness {
    let common::Parts {
        runtime,
        store,
        dir,
        events,
    } = common::parts(CONFIG).await;
    std::mem::forget(events);
    store
        .write_batch(
            &[comparison("api"), comparison("<script>evil</script>")],
            &[],
        )
        .await
        .unwrap();
    let page = store
        .list(&umbra_store::ListQuery {
            route: Some("api".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    let id = page.items[0].id;
    let state = common::state(&runtime, &store, token, 0);
    Harness {
        app: router(state),
        _store: store,
        _dir: dir,
        id,
    }
}

struct Answer {
    status: StatusCode,
    headers: http::HeaderMap,
    text: String,
}

async fn call(
    app: &Router,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Answer {
    let mut req = Request::builder().method(method).uri(path);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = app
        .clone()
        .oneshot(req.body(Body::from(body.to_string())).unwrap())
        .await
        .unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    Answer {
        status,
        headers,
        text: String::from_utf8_lossy(&bytes).into_owned(),
    }
}

async fn get(app: &Router, path: &str) -> Answer {
    call(app, Method::GET, path, &[], "").await
}

fn assert_secure(a: &Answer, path: &str) {
    assert_eq!(
        a.headers["content-security-policy"], "default-src 'self'",
        "{path}"
    );
    assert_eq!(a.headers["x-frame-options"], "DENY", "{path}");
    assert_eq!(a.headers["x-content-type-options"], "nosniff", "{path}");
}

#[tokio::test]
async fn every_page_answers_with_security_headers() {
    let h = harness(None).await;
    let detail = format!("/ui/comparisons/{}", h.id);
    for path in [
        "/",
        "/ui/routes/api",
        "/ui/comparisons",
        "/ui/comparisons?route=api&verdict=different&limit=1",
        detail.as_str(),
        "/ui/events",
        "/ui/app.css",
        "/ui/app.js",
    ] {
        let a = get(&h.app, path).await;
        assert_eq!(a.status, StatusCode::OK, "{path}: {}", a.text);
        assert_secure(&a, path);
        if !path.starts_with("/ui/app.") {
            assert!(
                a.text
                    .contains("<link rel=\"stylesheet\" href=\"/ui/app.css\">"),
                "{path}"
            );
            // No inline script or style that the CSP would block.
            assert!(!a.text.contains("<script>"), "{path}: inline script");
            assert!(!a.text.contains(" style=\""), "{path}: style attribute");
            assert!(!a.text.contains("<style"), "{path}: style element");
            assert!(!a.text.contains(" onclick="), "{path}: inline handler");
        }
    }
    assert!(get(&h.app, "/ui/app.js").await.headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/javascript"));
    // Overview: the route, its health dots and the live stat cells.
    let a = get(&h.app, "/").await;
    assert!(a.text.contains("<td>api</td>"), "{}", a.text);
    assert!(
        a.text.contains(
            "class=\"dot down\" role=\"img\" aria-label=\"http://127.0.0.1:9 unhealthy\""
        ) || a
            .text
            .contains("class=\"dot up\" role=\"img\" aria-label=\"http://127.0.0.1:9 healthy\""),
        "{}",
        a.text
    );
    assert!(a.text.contains("data-stat=\"diff_rate\""));
    // Route page: the field row, its noise button, the chart and the controls.
    let a = get(&h.app, "/ui/routes/api").await;
    assert!(a.text.contains("<code>/item/price</code>"), "{}", a.text);
    assert!(
        a.text
            .contains("data-url=\"/api/routes/api/ignore\" data-path=\"/item/price\""),
        "{}",
        a.text
    );
    assert!(a.text.contains("<svg class=\"chart\""));
    assert!(a.text.contains("id=\"hide-noise\""));
    assert!(a
        .text
        .contains("data-url=\"/api/routes/api/rollback\" data-confirm="));
    // Paging link keeps the filters.
    let a = get(&h.app, "/ui/comparisons?route=api&limit=1").await;
    assert!(
        !a.text.contains("next page") || a.text.contains("route=api&amp;limit=1&amp;before="),
        "{}",
        a.text
    );
    // Errors are HTML pages with the same headers.
    for (path, status) in [
        ("/ui/routes/nope", StatusCode::NOT_FOUND),
        ("/ui/comparisons/999999", StatusCode::NOT_FOUND),
        (
            "/ui/comparisons?verdict=bogus",
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
    ] {
        let a = get(&h.app, path).await;
        assert_eq!(a.status, status, "{path}");
        assert_secure(&a, path);
    }
}

#[tokio::test]
async fn text_is_escaped_and_differences_are_marked() {
    let h = harness(None).await;
    let list = get(&h.app, "/ui/comparisons").await;
    assert!(!list.text.contains("<script>evil"), "{}", list.text);
    assert!(
        list.text.contains("&lt;script&gt;evil&lt;/script&gt;"),
        "{}",
        list.text
    );
    let evil_route = get(&h.app, "/ui/routes/%3Cscript%3Eevil%3C%2Fscript%3E").await;
    assert_eq!(evil_route.status, StatusCode::OK, "{}", evil_route.text);
    assert!(!evil_route.text.contains("<script>evil"));
    assert!(evil_route.text.contains("&lt;script&gt;evil"));

    let a = get(&h.app, &format!("/ui/comparisons/{}", h.id)).await;
    assert!(!a.text.contains("<script>alert"), "{}", a.text);
    assert!(a.text.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    // The changed field's line is marked on both sides; its neighbours are not.
    assert_eq!(
        a.text
            .matches(
                "<span class=\"diff\" data-path=\"/item/price\">    &quot;price&quot;: 1,</span>"
            )
            .count(),
        1,
        "{}",
        a.text
    );
    assert_eq!(
        a.text
            .matches(
                "<span class=\"diff\" data-path=\"/item/price\">    &quot;price&quot;: 2,</span>"
            )
            .count(),
        1
    );
    assert!(a.text.contains("<span data-path=\"/item/name\">"));
    assert!(a.text.contains("<span data-path=\"/ok\">"));
    // Copy as curl: server-built, quoted for a shell, escaped for the attribute.
    assert!(a.text.contains("data-curl=\"curl -X GET &#39;http://example/api/items/1?q=it&#39;\\&#39;&#39;s&#39; -H &#39;authorization: [redacted]&#39;\""), "{}", a.text);
    // Both latencies.
    assert!(a.text.contains("1.2 ms") && a.text.contains("1.9 ms"));
}

#[tokio::test]
async fn cookie_login_and_csrf_header() {
    let h = harness(Some(TOKEN)).await;
    // Pages need auth like the API; the login page and assets do not.
    assert_eq!(
        get(&h.app, "/ui/events").await.status,
        StatusCode::UNAUTHORIZED
    );
    let a = get(&h.app, "/ui/login").await;
    assert_eq!(a.status, StatusCode::OK);
    assert_secure(&a, "/ui/login");
    assert!(a.text.contains("<label for=\"token\">"));
    assert_eq!(get(&h.app, "/ui/app.css").await.status, StatusCode::OK);

    let form = [("content-type", "application/x-www-form-urlencoded")];
    let a = call(&h.app, Method::POST, "/ui/login", &form, "token=wrong").await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    assert!(a.headers.get("set-cookie").is_none());
    let a = call(
        &h.app,
        Method::POST,
        "/ui/login",
        &form,
        &format!("token={TOKEN}"),
    )
    .await;
    assert_eq!(a.status, StatusCode::SEE_OTHER);
    let cookie = a.headers["set-cookie"].to_str().unwrap().to_string();
    assert!(cookie.starts_with("umbra_token="), "{cookie}");
    for attr in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(cookie.contains(attr), "{cookie}");
    }
    let pair = cookie.split(';').next().unwrap().to_string();
    let with_cookie = [("cookie", pair.as_str())];
    for path in ["/", "/ui/routes/api", "/ui/comparisons", "/ui/events"] {
        assert_eq!(
            call(&h.app, Method::GET, path, &with_cookie, "")
                .await
                .status,
            StatusCode::OK,
            "{path}"
        );
    }
    // The API takes the cookie only with the CSRF header.
    assert_eq!(
        call(&h.app, Method::GET, "/api/routes", &with_cookie, "")
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    let both = [
        ("cookie", pair.as_str()),
        ("x-umbra-csrf", "1"),
        ("content-type", "application/json"),
    ];
    assert_eq!(
        call(&h.app, Method::GET, "/api/routes", &both, "")
            .await
            .status,
        StatusCode::OK
    );
    let no_csrf = [
        ("cookie", pair.as_str()),
        ("content-type", "application/json"),
    ];
    let a = call(
        &h.app,
        Method::POST,
        "/api/routes/api/ignore",
        &no_csrf,
        r#"{"path":"/x"}"#,
    )
    .await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    let a = call(
        &h.app,
        Method::POST,
        "/api/routes/api/ignore",
        &both,
        r#"{"path":"/x"}"#,
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    // A wrong cookie is refused everywhere.
    let bad = [("cookie", "umbra_token=nope"), ("x-umbra-csrf", "1")];
    assert_eq!(
        call(&h.app, Method::GET, "/", &bad, "").await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        call(&h.app, Method::GET, "/api/routes", &bad, "")
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
}

// ---- headless Chromium ----

fn chromium() -> Option<std::path::PathBuf> {
    let path = std::env::var_os("PATH")?;
    for name in ["chromium", "chromium-browser"] {
        for dir in std::env::split_paths(&path) {
            let p = dir.join(name);
            if p.is_file() {
                return Some(p);
            }
        }
    }
    None
}

fn chromium_or_skip(test: &str) -> Option<std::path::PathBuf> {
    let found = chromium();
    if found.is_none() {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("{test}: chromium (or chromium-browser) is not on PATH, and CI=true");
        }
        eprintln!(
            "\n{bar}\n!!! SKIPPED {test}: no `chromium` or `chromium-browser` on PATH !!!\n{bar}\n",
            bar = "!".repeat(72)
        );
    }
    found
}

async fn serve(app: Router) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    addr
}

async fn run_chromium(bin: &std::path::Path, args: &[String]) -> std::process::Output {
    let profile = tempfile::tempdir().unwrap();
    let mut cmd = tokio::process::Command::new(bin);
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--no-first-run",
        "--disable-dev-shm-usage",
    ])
    .arg(format!("--user-data-dir={}", profile.path().display()))
    .args(args)
    .kill_on_drop(true);
    tokio::time::timeout(Duration::from_secs(90), cmd.output())
        .await
        .expect("chromium finished within 90 s")
        .expect("chromium runs")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_renders_the_diff_and_the_overview() {
    let Some(bin) = chromium_or_skip("chromium_renders_the_diff_and_the_overview") else {
        return;
    };
    let h = harness(None).await;
    let addr = serve(h.app.clone()).await;

    let out = run_chromium(
        &bin,
        &[
            "--dump-dom".into(),
            format!("http://{addr}/ui/comparisons/{}", h.id),
        ],
    )
    .await;
    let dom = String::from_utf8_lossy(&out.stdout);
    assert!(
        dom.contains("<span class=\"diff\" data-path=\"/item/price\">"),
        "DOM lacks the diff mark; stderr: {}\n{dom}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(dom.contains("copy as curl"));

    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"));
    std::fs::create_dir_all(&target).unwrap();
    let shot = target.join("ui-overview.png");
    let _ = std::fs::remove_file(&shot);
    let out = run_chromium(
        &bin,
        &[
            format!("--screenshot={}", shot.display()),
            "--window-size=1280,800".into(),
            format!("http://{addr}/"),
        ],
    )
    .await;
    let len = std::fs::metadata(&shot).map(|m| m.len()).unwrap_or(0);
    assert!(
        len > 0,
        "no screenshot at {}; stderr: {}",
        shot.display(),
        String::from_utf8_lossy(&out.stderr)
    );
}
