//! The admin API end to end against a real runtime and a SQLite store, through
//! `tower::ServiceExt::oneshot` (no sockets).

mod common;

use common::TOKEN;

use std::sync::Arc;

use axum::body::Body;
use axum::Router;
use http::{Method, Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tower::ServiceExt;
use umbra_admin::{router, AdminState};
use umbra_core::telemetry::Metrics;
use umbra_core::{Config, Runtime};
use umbra_diff::{Comparison, DiffKind, Difference, Request as DiffRequest, Response, Verdict};
use umbra_store::ComparisonStore;

const CONFIG: &str = r#"
[log]
access = false

[services.v1]
servers = ["http://127.0.0.1:9"]

[services.v2]
servers = ["http://127.0.0.1:10", "http://127.0.0.1:11"]
balance = "least_requests"

[[routes]]
name = "api"
rule = "PathPrefix(`/api`)"
service = "v1"
shadow = { service = "v2", percent = 50 }
"#;

struct Harness {
    app: Router,
    store: Arc<dyn ComparisonStore>,
    runtime: Arc<Runtime>,
    _dir: tempfile::TempDir,
    events: tokio::sync::mpsc::Receiver<umbra_core::runtime::RuntimeEvent>,
}

fn comparison(route: &str, endpoint: &str, verdict: Verdict, i: u64) -> Comparison {
    let differences = if verdict == Verdict::Different {
        vec![Difference {
            path: "/price".into(),
            kind: DiffKind::Changed,
            primary: Some(json!(1)),
            candidate: Some(json!(2)),
        }]
    } else {
        Vec::new()
    };
    Comparison {
        id: 0,
        created_at_ms: 1_700_000_000_000 + i as i64,
        route: route.into(),
        candidate: "v2".into(),
        endpoint: endpoint.into(),
        request_id: format!("req-{i}"),
        verdict,
        request: DiffRequest {
            method: "GET".into(),
            uri: "/api/items/1".into(),
            host: "example".into(),
            headers: vec![("authorization".into(), "[redacted]".into())],
            body: Vec::new(),
        },
        primary: Response {
            status: 200,
            headers: vec![("content-type".into(), "application/json".into())],
            body: br#"{"price":1}"#.to_vec(),
            truncated: false,
            latency_us: 1000 + i,
        },
        shadow: Some(Response {
            status: 200,
            headers: vec![("content-type".into(), "application/json".into())],
            body: br#"{"price":2}"#.to_vec(),
            truncated: false,
            latency_us: 1500 + i,
        }),
        error: None,
        differences,
        noise: None,
    }
}

async fn harness(token: Option<&str>) -> Harness {
    let common::Parts {
        runtime,
        store,
        dir,
        events: rx,
    } = common::parts(CONFIG, token).await;
    let batch: Vec<Comparison> = (0..10)
        .map(|i| {
            let v = if i % 2 == 0 {
                Verdict::Different
            } else {
                Verdict::Same
            };
            comparison("api", "GET /api/items/{id}", v, i)
        })
        .collect();
    store.write_batch(&batch, &[]).await.unwrap();
    store
        .write_batch(&[comparison("other", "GET /other", Verdict::Same, 99)], &[])
        .await
        .unwrap();
    let state = common::state(&runtime, &store, 3);
    Harness {
        app: router(state),
        store,
        runtime,
        _dir: dir,
        events: rx,
    }
}

struct Answer {
    status: StatusCode,
    headers: http::HeaderMap,
    text: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text))
    }
}

impl Harness {
    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> Answer {
        self.call_with(method, path, body, Some(TOKEN)).await
    }

    async fn call_with(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        token: Option<&str>,
    ) -> Answer {
        let change = method != Method::GET;
        let mut req = Request::builder().method(method).uri(path);
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        // Changes are JSON, bodiless ones too.
        if change {
            req = req.header("content-type", "application/json");
        }
        let req = match body {
            Some(b) => req.body(Body::from(b.to_string())),
            None => req.body(Body::empty()),
        }
        .unwrap();
        let resp = self.app.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        Answer {
            status,
            headers,
            text: String::from_utf8_lossy(&bytes).into_owned(),
        }
    }

    async fn get(&self, path: &str) -> Answer {
        self.call(Method::GET, path, None).await
    }
}

fn assert_error(a: &Answer, status: StatusCode, code: &str) -> String {
    assert_eq!(a.status, status, "{}", a.text);
    let v = a.json();
    assert_eq!(v["error"], code, "{v}");
    v["message"].as_str().expect("message").to_string()
}

#[tokio::test]
async fn auth_is_required_when_a_token_is_set() {
    let h = harness(Some(TOKEN)).await;
    for path in ["/api/routes", "/api/status", "/", "/metrics"] {
        let a = h.call_with(Method::GET, path, None, None).await;
        assert_error(&a, StatusCode::UNAUTHORIZED, "unauthorized");
        let a = h.call_with(Method::GET, path, None, Some("wrong")).await;
        assert_error(&a, StatusCode::UNAUTHORIZED, "unauthorized");
        let a = h.call_with(Method::GET, path, None, Some(TOKEN)).await;
        assert_eq!(a.status, StatusCode::OK, "{path}: {}", a.text);
    }
    // Health needs no token.
    for path in ["/health", "/health/live", "/health/ready"] {
        let a = h.call_with(Method::GET, path, None, None).await;
        assert_eq!(a.status, StatusCode::OK, "{path}");
    }
    // Without a token configured, everything is open.
    let open = harness(None).await;
    let a = open.call_with(Method::GET, "/api/routes", None, None).await;
    assert_eq!(a.status, StatusCode::OK);
}

#[tokio::test]
async fn health_and_status() {
    let h = harness(Some(TOKEN)).await;
    let live = h.get("/health/live").await.json();
    assert_eq!(live, json!({"status": "healthy"}));
    for path in ["/health", "/health/ready"] {
        let v = h.get(path).await.json();
        assert_eq!(v["status"], "healthy", "{v}");
        assert_eq!(v["checks"]["config"]["state"], "up");
        assert_eq!(v["checks"]["store"]["state"], "up");
        assert_eq!(v["checks"]["store"]["kind"], "sqlite");
        assert!(v["checks"]["store"]["latency_ms"].is_number());
    }
    let s = h.get("/api/status").await.json();
    assert_eq!(s["version"], "0.0.0-test");
    assert_eq!(s["config_source"], "test.toml");
    assert_eq!(s["store"]["kind"], "sqlite");
    assert_eq!(s["store"]["state"], "up");
    assert!(s["store_feed"].is_null(), "SQLite is not shared: {s}");
    assert_eq!(s["routes"], 1);
    assert_eq!(s["services"], 2);
    assert!(s["uptime_s"].is_u64());
    assert!(s["last_reload_error"].is_null());
}

#[tokio::test]
async fn metrics_text() {
    let h = harness(None).await;
    let a = h.get("/metrics").await;
    assert_eq!(a.status, StatusCode::OK);
    assert!(a.text.contains("umbra_store_queue_depth"), "{}", a.text);
    assert!(a.text.contains("umbra_store_dropped_total 3"), "{}", a.text);
    // A second scrape does not count the same drops twice.
    let again = h.get("/metrics").await;
    assert!(
        again.text.contains("umbra_store_dropped_total 3"),
        "{}",
        again.text
    );
}

#[tokio::test]
async fn routes_list_get_and_404() {
    let h = harness(None).await;
    let v = h.get("/api/routes").await.json();
    let routes = v["routes"].as_array().unwrap();
    assert_eq!(routes.len(), 1);
    let r = &routes[0];
    assert_eq!(r["name"], "api");
    assert_eq!(r["rule"], "PathPrefix(`/api`)");
    assert_eq!(r["service"], "v1");
    assert_eq!(r["source"], "file");
    assert_eq!(r["overridden"], false);
    assert_eq!(r["shadow"]["service"], "v2");
    assert_eq!(r["shadow"]["percent"], 50.0);
    assert!(r["canary"].is_null());
    assert_eq!(r["stats"]["requests"], 0);
    assert!(r["stats"]["p50_ms"].is_null());

    let one = h.get("/api/routes/api").await.json();
    assert_eq!(one["name"], "api");
    let a = h.get("/api/routes/nope").await;
    let msg = assert_error(&a, StatusCode::NOT_FOUND, "not_found");
    assert!(msg.contains("nope"), "{msg}");
    // Unknown endpoints are JSON 404s too.
    assert_error(
        &h.get("/api/nothing").await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
}

#[tokio::test]
async fn put_route_validates_and_persists() {
    let h = harness(None).await;
    // Unknown field: serde's message names it.
    let a = h
        .call(
            Method::PUT,
            "/api/routes/new",
            Some(json!({"rule": "PathPrefix(`/new`)", "service": "v1", "bogus": 1})),
        )
        .await;
    let msg = assert_error(&a, StatusCode::UNPROCESSABLE_ENTITY, "invalid");
    assert!(msg.contains("bogus"), "{msg}");
    // Missing field.
    let a = h
        .call(
            Method::PUT,
            "/api/routes/new",
            Some(json!({"rule": "PathPrefix(`/new`)"})),
        )
        .await;
    let msg = assert_error(&a, StatusCode::UNPROCESSABLE_ENTITY, "invalid");
    assert!(msg.contains("service"), "{msg}");
    // Unknown service: the validation error names the key.
    let a = h
        .call(
            Method::PUT,
            "/api/routes/new",
            Some(json!({"rule": "PathPrefix(`/new`)", "service": "nope"})),
        )
        .await;
    let msg = assert_error(&a, StatusCode::UNPROCESSABLE_ENTITY, "invalid");
    assert!(msg.contains("service") && msg.contains("nope"), "{msg}");
    // Not JSON at all.
    let a = h
        .call(Method::PUT, "/api/routes/new", Some(json!("x")))
        .await;
    assert_error(&a, StatusCode::UNPROCESSABLE_ENTITY, "invalid");

    // Valid.
    let a = h
        .call(
            Method::PUT,
            "/api/routes/new",
            Some(json!({"rule": "PathPrefix(`/new`)", "service": "v1", "priority": 5})),
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    let v = a.json();
    assert_eq!(v["persisted"], true);
    assert_eq!(v["route"]["source"], "api");
    assert_eq!(v["route"]["priority"], 5);
    let stored = h.store.list_routes().await.unwrap();
    assert!(
        stored.iter().any(|r| r.name == "new" && r.kind == "api"),
        "{stored:?}"
    );
    assert!(h.runtime.snapshot().route("new").is_some());

    // A file route is read-only.
    let a = h
        .call(
            Method::PUT,
            "/api/routes/api",
            Some(json!({"rule": "PathPrefix(`/x`)", "service": "v1"})),
        )
        .await;
    assert_error(&a, StatusCode::CONFLICT, "read_only");
    let a = h.call(Method::DELETE, "/api/routes/api", None).await;
    assert_error(&a, StatusCode::CONFLICT, "read_only");

    // Delete the API route: gone from the snapshot and the store.
    let a = h.call(Method::DELETE, "/api/routes/new", None).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    assert_eq!(a.json()["persisted"], true);
    assert!(h.runtime.snapshot().route("new").is_none());
    assert!(h
        .store
        .list_routes()
        .await
        .unwrap()
        .iter()
        .all(|r| r.name != "new"));
    let a = h.call(Method::DELETE, "/api/routes/new", None).await;
    assert_error(&a, StatusCode::NOT_FOUND, "not_found");
}

#[tokio::test]
async fn shadow_canary_promote_rollback_ignore() {
    let h = harness(None).await;
    // Stop the file route's shadow: an override is stored.
    let a = h.call(Method::DELETE, "/api/routes/api/shadow", None).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    let v = a.json();
    assert!(v["route"]["shadow"].is_null(), "{v}");
    assert_eq!(v["route"]["overridden"], true);
    let stored = h.store.list_routes().await.unwrap();
    assert!(stored
        .iter()
        .any(|r| r.name == "api" && r.kind == "override"));

    // Start it again with a bad percent, then a good one.
    let a = h
        .call(
            Method::PUT,
            "/api/routes/api/shadow",
            Some(json!({"service": "v2", "percent": 150})),
        )
        .await;
    let msg = assert_error(&a, StatusCode::UNPROCESSABLE_ENTITY, "invalid");
    assert!(msg.contains("percent"), "{msg}");
    let a = h
        .call(
            Method::PUT,
            "/api/routes/api/shadow",
            Some(json!({"service": "v2", "percent": 25})),
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    assert_eq!(a.json()["route"]["shadow"]["percent"], 25.0);
    let a = h
        .call(
            Method::PUT,
            "/api/routes/nope/shadow",
            Some(json!({"service": "v2"})),
        )
        .await;
    assert_error(&a, StatusCode::NOT_FOUND, "not_found");

    // Canary.
    let a = h
        .call(
            Method::PUT,
            "/api/routes/api/canary",
            Some(json!({"service": "v2", "weight": 10})),
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    assert_eq!(a.json()["route"]["canary"]["weight"], 10.0);
    let a = h
        .call(
            Method::PUT,
            "/api/routes/api/canary",
            Some(json!({"service": "v2"})),
        )
        .await;
    let msg = assert_error(&a, StatusCode::UNPROCESSABLE_ENTITY, "invalid");
    assert!(msg.contains("weight"), "{msg}");

    // Promote: v2 serves, v1 is remembered.
    let a = h.call(Method::POST, "/api/routes/api/promote", None).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    let v = a.json();
    assert_eq!(v["route"]["service"], "v2", "{v}");
    assert_eq!(v["route"]["previous_service"], "v1");
    assert!(v["route"]["canary"].is_null());
    // Nothing left to promote.
    let a = h.call(Method::POST, "/api/routes/api/promote", None).await;
    assert_error(&a, StatusCode::CONFLICT, "conflict");

    // Rollback returns to v1; a second rollback has nothing to do.
    let a = h.call(Method::POST, "/api/routes/api/rollback", None).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    assert_eq!(a.json()["route"]["service"], "v1");
    let a = h.call(Method::POST, "/api/routes/api/rollback", None).await;
    assert_error(&a, StatusCode::CONFLICT, "conflict");

    // Ignore a field.
    let a = h
        .call(
            Method::POST,
            "/api/routes/api/ignore",
            Some(json!({"path": "/meta/x"})),
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    let ignore = &a.json()["route"]["compare"]["ignore"];
    assert!(
        ignore.as_array().unwrap().contains(&json!("/meta/x")),
        "{ignore}"
    );
    let a = h
        .call(
            Method::POST,
            "/api/routes/api/ignore",
            Some(json!({"path": "no-slash"})),
        )
        .await;
    let msg = assert_error(&a, StatusCode::UNPROCESSABLE_ENTITY, "invalid");
    assert!(msg.contains("path"), "{msg}");
}

#[tokio::test]
async fn diffs_shape() {
    let h = harness(None).await;
    let v = h.get("/api/routes/api/diffs").await.json();
    assert_eq!(v["route"], "api");
    assert_eq!(v["total"], 10);
    let eps = v["endpoints"].as_array().unwrap();
    assert_eq!(eps.len(), 1);
    let ep = &eps[0];
    assert_eq!(ep["endpoint"], "GET /api/items/{id}");
    assert_eq!(ep["total"], 10);
    let f = &ep["fields"][0];
    assert_eq!(f["path"], "/price");
    assert_eq!(f["kind"], "changed");
    assert_eq!(f["count"], 5);
    assert_eq!(f["rate"], 0.5);
    assert_eq!(f["noise_rate"], 0.0);
    assert_eq!(f["significant"], true);
    assert_eq!(ep["latency"]["primary"]["count"], 10);
    assert!(ep["latency"]["shadow"]["p50"].as_u64().unwrap() >= 1500);
    assert_eq!(ep["latency"]["regression"]["flagged"], false);
    assert!(ep["latency"]["regression"]["reason"]
        .as_str()
        .unwrap()
        .contains("samples"));
    assert_error(
        &h.get("/api/routes/nope/diffs").await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
}

#[tokio::test]
async fn comparisons_filter_page_and_get() {
    let h = harness(None).await;
    let v = h.get("/api/comparisons").await.json();
    assert_eq!(v["items"].as_array().unwrap().len(), 11);
    assert!(v["next"].is_null());

    let v = h
        .get("/api/comparisons?route=api&verdict=different")
        .await
        .json();
    let items = v["items"].as_array().unwrap();
    assert_eq!(items.len(), 5);
    assert!(items
        .iter()
        .all(|i| i["verdict"] == "different" && i["route"] == "api"));

    // Paging: 4 + 4 + 2 of the route's 10.
    let mut seen = Vec::new();
    let mut path = "/api/comparisons?route=api&limit=4".to_string();
    loop {
        let v = h.get(&path).await.json();
        seen.extend(
            v["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| i["id"].as_i64().unwrap()),
        );
        match v["next"].as_i64() {
            Some(n) => path = format!("/api/comparisons?route=api&limit=4&before={n}"),
            None => break,
        }
    }
    assert_eq!(seen.len(), 10, "{seen:?}");
    assert!(
        seen.windows(2).all(|w| w[0] > w[1]),
        "newest first: {seen:?}"
    );

    let a = h.get("/api/comparisons?verdict=maybe").await;
    let msg = assert_error(&a, StatusCode::UNPROCESSABLE_ENTITY, "invalid");
    assert!(msg.contains("verdict"), "{msg}");
    let a = h.get("/api/comparisons?limit=lots").await;
    let msg = assert_error(&a, StatusCode::UNPROCESSABLE_ENTITY, "invalid");
    assert!(msg.contains("limit"), "{msg}");

    let id = seen[0];
    let c = h.get(&format!("/api/comparisons/{id}")).await.json();
    assert_eq!(c["id"], id);
    assert_eq!(c["route"], "api");
    assert_eq!(c["request"]["headers"][0][1], "[redacted]");
    assert_eq!(c["primary"]["status"], 200);
    assert_error(
        &h.get("/api/comparisons/999999").await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    assert_error(
        &h.get("/api/comparisons/abc").await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid",
    );
}

#[tokio::test]
async fn services_and_events() {
    let h = harness(None).await;
    let v = h.get("/api/services").await.json();
    let svcs = v["services"].as_array().unwrap();
    assert_eq!(svcs.len(), 2);
    let v2 = svcs.iter().find(|s| s["name"] == "v2").unwrap();
    assert_eq!(v2["balance"], "least_requests");
    assert_eq!(v2["source"], "file");
    assert_eq!(v2["servers"].as_array().unwrap().len(), 2);
    let s0 = &v2["servers"][0];
    assert_eq!(s0["url"], "http://127.0.0.1:10");
    assert_eq!(s0["healthy"], true);
    assert_eq!(s0["available"], true);
    assert_eq!(s0["ejected"], false);
    assert_eq!(s0["in_flight"], 0);

    for i in 0..3 {
        h.store
            .append_event(&umbra_store::NewEvent {
                kind: "shadow.start".into(),
                route: Some("api".into()),
                source: "api".into(),
                actor: None,
                detail: json!({ "n": i }),
            })
            .await
            .unwrap();
    }
    let v = h.get("/api/events?limit=2").await.json();
    let items = v["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert_eq!(items[0]["detail"]["n"], 2);
    let next = v["next"].as_i64().expect("a full page has a cursor");
    let v = h
        .get(&format!("/api/events?limit=2&before={next}"))
        .await
        .json();
    assert_eq!(v["items"].as_array().unwrap().len(), 1);
    assert_eq!(v["items"][0]["detail"]["n"], 0);
}

#[tokio::test]
async fn index_page_has_security_headers() {
    let h = harness(None).await;
    let a = h.get("/").await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.headers["content-security-policy"], "default-src 'self'");
    assert_eq!(a.headers["x-frame-options"], "DENY");
    assert_eq!(a.headers["x-content-type-options"], "nosniff");
    assert!(a.text.contains("<strong>api</strong>"), "{}", a.text);
    assert!(a.text.contains("PathPrefix(`/api`)"), "{}", a.text);
}

#[tokio::test]
async fn without_a_store() {
    let config = Config::parse(CONFIG, "test.toml", &|_| None).unwrap();
    let (tx, _rx) = tokio::sync::mpsc::channel(16);
    let runtime = Runtime::new(config, Arc::new(Metrics::new()), tx);
    let app = router(AdminState::new(
        runtime,
        None,
        "t",
        "test.toml",
        Arc::default(),
    ));
    let call = |path: &'static str| {
        let app = app.clone();
        async move {
            let resp = app
                .oneshot(Request::get(path).body(Body::empty()).unwrap())
                .await
                .unwrap();
            let status = resp.status();
            let bytes = resp.into_body().collect().await.unwrap().to_bytes();
            (status, serde_json::from_slice::<Value>(&bytes).unwrap())
        }
    };
    let (s, v) = call("/api/comparisons").await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(v["error"], "store_unavailable");
    let (s, v) = call("/api/routes/api/diffs").await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE, "{v}");
    let (s, v) = call("/health/ready").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["checks"]["store"]["state"], "disabled");
    assert_eq!(v["status"], "healthy");

    // Changes still apply, but say they were not persisted.
    let resp = app
        .clone()
        .oneshot(
            Request::delete("/api/routes/api/shadow")
                .header("content-type", "application/json")
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    let v: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(v["persisted"], false, "{v}");
    assert!(v["route"]["shadow"].is_null());
}

#[tokio::test]
async fn wrong_method_and_challenge_header() {
    let h = harness(Some(TOKEN)).await;
    let a = h.call(Method::PATCH, "/api/routes/api", None).await;
    assert_error(&a, StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed");
    let a = h.call_with(Method::GET, "/api/routes", None, None).await;
    assert_eq!(a.headers["www-authenticate"], "Bearer");
}

#[tokio::test]
async fn changes_are_audited_by_the_runtime_with_their_source() {
    let mut h = harness(None).await;
    let req = Request::delete("/api/routes/api/shadow")
        .header("content-type", "application/json")
        .header("x-umbra-source", "cli")
        .body(Body::empty())
        .unwrap();
    let resp = h.app.clone().oneshot(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let ev = h.events.try_recv().expect("the runtime emitted an event");
    assert_eq!(ev.kind, "shadow.stop");
    assert_eq!(ev.source, "cli");
    assert_eq!(ev.route.as_deref(), Some("api"));
    // The admin layer itself appends nothing (no duplicates).
    assert!(h.store.list_events(10, None).await.unwrap().is_empty());
}

#[tokio::test]
async fn a_browser_without_a_session_is_sent_to_the_sign_in_page() {
    let h = harness(Some(TOKEN)).await;
    let page = |path: &str| {
        Request::get(path)
            .header("accept", "text/html,application/xhtml+xml")
            .body(Body::empty())
            .unwrap()
    };
    let resp = h.app.clone().oneshot(page("/")).await.unwrap();
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert_eq!(resp.headers()["location"], "/ui/login");
    // API calls keep their JSON 401, whatever they accept.
    let resp = h.app.clone().oneshot(page("/api/status")).await.unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn editing_an_api_route_keeps_what_rollback_returns_to() {
    let h = harness(None).await;
    let route = |service: &str, priority: i64| {
        json!({"rule": "PathPrefix(`/edit`)", "service": service, "priority": priority,
               "canary": {"service": "v2", "weight": 10}})
    };
    let a = h
        .call(Method::PUT, "/api/routes/edit", Some(route("v1", 5)))
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    let a = h.call(Method::POST, "/api/routes/edit/promote", None).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    assert_eq!(a.json()["route"]["service"], "v2");

    // Edit something else while v2 serves: rollback still returns to v1.
    let mut edited = route("v2", 7);
    edited["canary"] = Value::Null;
    let a = h.call(Method::PUT, "/api/routes/edit", Some(edited)).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    let a = h
        .call(Method::POST, "/api/routes/edit/rollback", None)
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    assert_eq!(a.json()["route"]["service"], "v1", "{}", a.text);
}

#[tokio::test]
async fn a_route_from_the_api_takes_headers_and_a_rate_limit() {
    let h = harness(None).await;
    let a = h
        .call(
            Method::PUT,
            "/api/routes/limited",
            Some(json!({"rule": "PathPrefix(`/l`)", "service": "v1",
                        "rate_limit": {"rps": 0, "burst": 10, "key": "cookie"}})),
        )
        .await;
    let msg = assert_error(&a, StatusCode::UNPROCESSABLE_ENTITY, "invalid");
    assert!(msg.contains("rate_limit.rps"), "{msg}");
    assert!(msg.contains("rate_limit.key"), "{msg}");
    let a = h
        .call(
            Method::PUT,
            "/api/routes/limited",
            Some(json!({"rule": "PathPrefix(`/l`)", "service": "v1",
                        "headers": {"response": {"set": {"X-Frame-Options": "DENY"}}},
                        "rate_limit": {"rps": 5, "burst": 10}})),
        )
        .await;
    assert!(a.status.is_success(), "{}: {}", a.status, a.text);
    let snap = h.runtime.snapshot();
    let route = snap.route("limited").expect("the route");
    assert!(route.limiter.is_some());
    assert!(route.spec.headers.is_some());
}
