//! The web UI's pages over `tower::ServiceExt::oneshot`: security headers, escaping, diff
//! marking, cookie auth, the route form and read-only marks, the discovery section. The same
//! pages in a real browser: `tests/browser/`.

mod common;

use common::{CONFIG, TOKEN};

use std::sync::Arc;

use axum::body::Body;
use axum::Router;
use http::{Method, Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::json;
use tower::ServiceExt;
use umbra_admin::router;
use umbra_core::config::{RawCanary, RawRoute};
use umbra_core::discovery::{ContainerStatus, DiscoveryStatus, LabelError};
use umbra_diff::{Comparison, DiffKind, Difference, Request as DiffRequest, Response, Verdict};
use umbra_store::ComparisonStore;

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
        candidate: "v2".into(),
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
    runtime: Arc<umbra_core::Runtime>,
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
    } = common::parts(CONFIG, token).await;
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
    let state = common::state(&runtime, &store, 0);
    Harness {
        app: router(state),
        runtime,
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
    assert!(
        a.text.contains(
            "<a href=\"/ui/routes/api\"><strong>api</strong></a> <span class=\"badge src-file\""
        ),
        "{}",
        a.text
    );
    // One dot per server, in the routes table and the services table, named for screen readers.
    let dot = "role=\"img\" data-service=\"v1\" data-server=\"http://127.0.0.1:9\" aria-label=\"http://127.0.0.1:9 healthy\"";
    assert_eq!(a.text.matches(dot).count(), 2, "{}", a.text);
    assert!(
        a.text.contains("data-available=\"v1\">1/1</td>"),
        "{}",
        a.text
    );
    assert!(a.text.contains("data-stat=\"diff_rate\""));
    assert!(a.text.contains("data-stat=\"rps\""));
    // The new-route form, and discovery (off by default).
    assert!(a.text.contains(
        "<form class=\"route-form\" novalidate data-current=\"\" aria-label=\"new route\">"
    ));
    assert!(a.text.contains("<section id=\"discovery\""));
    assert!(a.text.contains("Off. Add a <code>[docker]</code> section"));
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
    assert!(a.text.contains("data-curl=\"curl -g -X GET &#39;http://example/api/items/1?q=it&#39;\\&#39;&#39;s&#39; -H &#39;authorization: [redacted]&#39;\""), "{}", a.text);
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
    assert!(cookie.starts_with("umbra_session="), "{cookie}");
    for attr in ["HttpOnly", "SameSite=Strict", "Path=/", "Max-Age="] {
        assert!(cookie.contains(attr), "{cookie}");
    }
    let pair = cookie.split(';').next().unwrap().to_string();
    // The cookie carries a random session id, not the token.
    let id = pair.strip_prefix("umbra_session=").unwrap();
    assert!(!id.contains(TOKEN), "{cookie}");
    assert!(id.len() >= 32, "{cookie}");
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
    // A wrong cookie, the token itself included, is refused everywhere.
    let token_cookie = format!("umbra_session={TOKEN}");
    let bad = [("cookie", token_cookie.as_str()), ("x-umbra-csrf", "1")];
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

#[tokio::test]
async fn route_pages_show_how_a_route_can_change() {
    let h = harness(None).await;
    // A file route is read-only apart from the runtime controls.
    let a = get(&h.app, "/ui/routes/api").await;
    assert!(
        a.text
            .contains("Defined in the config file <code>test.toml</code>"),
        "{}",
        a.text
    );
    assert!(!a.text.contains("Delete route") && !a.text.contains("route-form"));
    assert!(!a.text.contains("badge override"));
    // A runtime change to it is marked, with what the file says.
    h.runtime
        .set_canary(
            "api",
            Some(RawCanary {
                service: "v2".into(),
                weight: 10.0,
                sticky: None,
            }),
            "test",
        )
        .unwrap();
    let a = get(&h.app, "/ui/routes/api").await;
    assert!(
        a.text.contains("<dt>canary</dt><dd>v2 (10%) <span class=\"badge override\">runtime override</span> <span class=\"meta\">(file: —)</span></dd>"),
        "{}",
        a.text
    );
    assert!(a.text.contains("<dt>shadow</dt><dd>v2 (50%)</dd>"));
    assert!(a.text.contains("<span class=\"badge override\""));
    let a = get(&h.app, "/").await;
    assert!(a.text.contains(">overridden</span>"), "{}", a.text);

    // An API route can be edited (the form carries the route as written) and deleted.
    h.runtime
        .put_route(
            RawRoute {
                name: "orders".into(),
                rule: "PathPrefix(`/orders`)".into(),
                service: "v1".into(),
                priority: Some(7),
                canary: Some(RawCanary {
                    service: "v2".into(),
                    weight: 5.0,
                    sticky: None,
                }),
                ..Default::default()
            },
            "test",
        )
        .unwrap();
    let a = get(&h.app, "/ui/routes/orders").await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    assert!(a.text.contains("aria-label=\"edit route\""), "{}", a.text);
    assert!(a.text.contains("data-current=\"{&quot;name&quot;:&quot;orders&quot;,&quot;rule&quot;:&quot;PathPrefix(`/orders`)&quot;,&quot;service&quot;:&quot;v1&quot;,&quot;priority&quot;:7,&quot;canary&quot;:{&quot;service&quot;:&quot;v2&quot;,&quot;weight&quot;:5.0}}\""), "{}", a.text);
    assert!(a
        .text
        .contains("id=\"rf-name\" name=\"name\" data-key=\"name\" type=\"text\" value=\"orders\""));
    assert!(a.text.contains(" readonly "));
    assert!(a.text.contains(
        "id=\"rf-service\" name=\"service\" data-key=\"service\" type=\"text\" value=\"v1\""
    ));
    assert!(a
        .text
        .contains("<datalist id=\"rf-services\"><option value=\"v1\"></option>"));
    assert!(a.text.contains(
        "id=\"rf-priority\" name=\"priority\" data-key=\"priority\" type=\"number\" value=\"7\""
    ));
    assert!(a
        .text
        .contains("data-method=\"DELETE\" data-url=\"/api/routes/orders\" data-then=\"/\""));
    assert!(a.text.contains("<span class=\"badge src-api\""));
    // Each field has its error slot, tied to the input for screen readers.
    for id in [
        "name",
        "rule",
        "service",
        "strip_prefix",
        "priority",
        "shadow-service",
        "shadow-percent",
    ] {
        assert!(
            a.text
                .contains(&format!("aria-describedby=\"rf-{id}-hint rf-{id}-error\"")),
            "{id}"
        );
        assert!(
            a.text.contains(&format!(
                "<p class=\"field-error\" id=\"rf-{id}-error\" aria-live=\"polite\"></p>"
            )),
            "{id}"
        );
    }
}

#[tokio::test]
async fn discovery_lists_containers_and_label_errors() {
    let h = harness(None).await;
    h.runtime.set_discovery(DiscoveryStatus {
        enabled: true,
        connected: true,
        endpoint: "unix:///var/run/docker.sock".into(),
        last_error: None,
        last_sync_at_ms: Some(1_700_000_000_000),
        project: None,
        project_from: None,
        projects_seen: Vec::new(),
        notice: None,
        containers: vec![
            ContainerStatus {
                id: "0123456789abcdef0123".into(),
                name: "api-v2-1".into(),
                state: "running".into(),
                health: Some("healthy".into()),
                in_rotation: true,
                address: Some("http://172.18.0.5:8080".into()),
                network: Some("app".into()),
                services: vec!["api-v2".into()],
                routes: vec!["api".into()],
                errors: vec![],
            },
            ContainerStatus {
                id: "fedcba".into(),
                name: "<b>worker</b>".into(),
                state: "running".into(),
                errors: vec![LabelError {
                    label: "umbra.shadow.percent".into(),
                    message: "expected a number from 0 to 100, got `<lots>`".into(),
                }],
                ..Default::default()
            },
        ],
    });
    let a = get(&h.app, "/").await;
    assert!(a.text.contains("Docker discovery: connected · 2 containers · <a class=\"error\" href=\"#discovery\">1 with label mistakes</a>"), "{}", a.text);
    assert!(a
        .text
        .contains("<strong>api-v2-1</strong> <code class=\"meta\">0123456789ab</code>"));
    assert!(a
        .text
        .contains("<code>http://172.18.0.5:8080</code> <span class=\"meta\">on app</span>"));
    assert!(a.text.contains("<a href=\"/ui/routes/api\">api</a>"));
    assert!(a.text.contains("engine <code>unix:///var/run/docker.sock</code> connected · last sync 2023-11-14 22:13:20 UTC"));
    assert!(!a.text.contains("<b>worker"));
    assert!(a.text.contains("<tr class=\"has-errors\"><td data-label=\"container\"><strong>&lt;b&gt;worker&lt;/b&gt;</strong>"));
    assert!(a.text.contains("<li><code>umbra.shadow.percent</code>: expected a number from 0 to 100, got `&lt;lots&gt;`</li>"), "{}", a.text);
}

#[tokio::test]
async fn discovery_says_when_the_project_filter_matches_nothing() {
    let h = harness(None).await;
    h.runtime.set_discovery(DiscoveryStatus {
        enabled: true,
        connected: true,
        endpoint: "unix:///var/run/docker.sock".into(),
        project: Some("shop".into()),
        project_from: Some("own container".into()),
        projects_seen: vec!["other".into()],
        notice: Some("no container belongs to compose project `shop` (own container); projects seen: other <x>".into()),
        ..Default::default()
    });
    let a = get(&h.app, "/").await;
    assert!(
        a.text
            .contains("Only containers of compose project <code>shop</code> (from own container)."),
        "{}",
        a.text
    );
    assert!(a.text.contains("<p class=\"error notice\" role=\"status\">no container belongs to compose project `shop` (own container); projects seen: other &lt;x&gt;</p>"), "{}", a.text);
}
