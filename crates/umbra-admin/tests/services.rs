//! Services at runtime: `PUT`/`DELETE /api/services/{name}` against a real runtime and a SQLite
//! store, through `tower::ServiceExt::oneshot`; stored services are restored at start-up.

mod common;

use axum::body::Body;
use axum::Router;
use http::{Method, Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tower::ServiceExt;
use umbra_admin::router;

async fn call(
    app: &Router,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut req = Request::builder().method(method.clone()).uri(path);
    if method != Method::GET {
        req = req.header("content-type", "application/json");
    }
    let req = req
        .body(body.map_or_else(Body::empty, |b| Body::from(b.to_string())))
        .unwrap();
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    let v = serde_json::from_slice(&bytes)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&bytes)));
    (status, v)
}

/// The 422 message for a service body; asserts the status and the error code.
async fn invalid(app: &Router, body: Value) -> String {
    let (status, v) = call(app, Method::PUT, "/api/services/web", Some(body)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert_eq!(v["error"], "invalid", "{v}");
    v["message"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn bad_services_are_refused_naming_the_field() {
    let p = common::parts(common::CONFIG, None).await;
    let app = router(common::state(&p.runtime, &p.store, 0));
    let m = invalid(&app, json!({"servers": ["ftp://x:1"]})).await;
    assert!(m.starts_with("servers[0]:"), "{m}");
    let m = invalid(&app, json!({"servers": []})).await;
    assert!(m.starts_with("servers:"), "{m}");
    let m = invalid(&app, json!({"servers": ["http://127.0.0.1:1"], "bogus": 1})).await;
    assert!(m.contains("bogus"), "{m}");
    let m = invalid(
        &app,
        json!({"servers": ["http://127.0.0.1:1"], "health": {"path": "up", "interval": "5"}}),
    )
    .await;
    assert!(
        m.contains("health.path") && m.contains("health.interval"),
        "{m}"
    );
    let m = invalid(
        &app,
        json!({"servers": ["http://127.0.0.1:1"], "balance": "random"}),
    )
    .await;
    assert!(m.starts_with("balance:"), "{m}");
    let (status, v) = call(
        &app,
        Method::PUT,
        "/api/services/bad%20name",
        Some(json!({"servers": ["http://127.0.0.1:1"]})),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert!(v["message"].as_str().unwrap().starts_with("name:"), "{v}");
    assert!(p.runtime.snapshot().service("web").is_none());
}

#[tokio::test]
async fn a_service_is_made_used_persisted_restored_and_deleted() {
    let mut p = common::parts(common::CONFIG, None).await;
    let app = router(common::state(&p.runtime, &p.store, 0));
    let body = json!({"servers": ["http://127.0.0.1:7001"], "health": {"path": "/up", "interval": "1s"}, "balance": "least_requests"});
    let (status, v) = call(&app, Method::PUT, "/api/services/web", Some(body)).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["persisted"], true);
    assert_eq!(v["service"]["source"], "api");
    assert_eq!(v["service"]["servers"][0]["url"], "http://127.0.0.1:7001");
    assert_eq!(v["service"]["health"]["path"], "/up");
    let event = p.events.recv().await.unwrap();
    assert_eq!(event.kind, "service.create");
    assert_eq!(event.detail["service"], "web");

    // It is listed, and a route may use it.
    let (_, v) = call(&app, Method::GET, "/api/services", None).await;
    assert!(v["services"]
        .as_array()
        .unwrap()
        .iter()
        .any(|s| s["name"] == "web"));
    let route = json!({"rule": "PathPrefix(`/web`)", "service": "web"});
    let (status, v) = call(&app, Method::PUT, "/api/routes/site", Some(route)).await;
    assert_eq!(status, StatusCode::OK, "{v}");

    // Stored under its own key, and restored into a fresh runtime.
    let stored = p.store.list_routes().await.unwrap();
    let row = stored.iter().find(|r| r.kind == "service").expect("stored");
    assert_eq!(row.name, "service:web");
    let fresh = common::parts(common::CONFIG, None).await;
    let docs = stored
        .into_iter()
        .map(|r| (r.name, r.kind, r.doc))
        .collect();
    assert!(fresh.runtime.restore(docs).is_empty());
    let snap = fresh.runtime.snapshot();
    let svc = snap.service("web").expect("restored");
    assert_eq!(svc.spec.servers[0].url(), "http://127.0.0.1:7001");
    assert!(snap.route("site").is_some(), "the route on it is served");

    // In use: 409 naming the route. File services are read-only.
    let (status, v) = call(&app, Method::DELETE, "/api/services/web", None).await;
    assert_eq!(status, StatusCode::CONFLICT, "{v}");
    assert!(v["message"].as_str().unwrap().contains("`site`"), "{v}");
    let (status, v) = call(&app, Method::DELETE, "/api/services/v2", None).await;
    assert_eq!(
        (status, v["error"].as_str()),
        (StatusCode::CONFLICT, Some("read_only"))
    );
    let put_v1 = json!({"servers": ["http://127.0.0.1:1"]});
    let (status, _) = call(&app, Method::PUT, "/api/services/v1", Some(put_v1)).await;
    assert_eq!(status, StatusCode::CONFLICT);

    // Unused: deleted from the snapshot and the store; then unknown.
    call(&app, Method::DELETE, "/api/routes/site", None).await;
    let (status, v) = call(&app, Method::DELETE, "/api/services/web", None).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["persisted"], true);
    assert!(p.runtime.snapshot().service("web").is_none());
    assert!(p
        .store
        .list_routes()
        .await
        .unwrap()
        .iter()
        .all(|r| r.kind != "service"));
    let (status, v) = call(&app, Method::DELETE, "/api/services/web", None).await;
    assert_eq!(
        (status, v["error"].as_str()),
        (StatusCode::NOT_FOUND, Some("not_found"))
    );
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .contains("no service named `web`"),
        "{v}"
    );
}

#[tokio::test]
async fn deploy_and_hold_refuse_bad_input_naming_the_field() {
    let p = common::parts(common::CONFIG, None).await;
    let app = router(common::state(&p.runtime, &p.store, 0));
    let cases = [
        (
            "/api/routes/api/deploy",
            json!({"target": "ftp://x:1"}),
            "target:",
        ),
        (
            "/api/routes/api/deploy",
            json!({"target": "http://127.0.0.1:1", "wait": "60"}),
            "wait:",
        ),
        (
            "/api/routes/api/deploy",
            json!({"target": "http://127.0.0.1:1", "drain": "x"}),
            "drain:",
        ),
        (
            "/api/routes/api/deploy",
            json!({"target": "http://127.0.0.1:1", "health_path": "up"}),
            "health_path:",
        ),
        ("/api/routes/api/deploy", json!({"wait": "1s"}), "target"),
        ("/api/routes/api/pause", json!({"max": "forever"}), "max:"),
        ("/api/routes/api/maintenance", json!({"msg": "x"}), "msg"),
    ];
    for (path, body, field) in cases {
        let (status, v) = call(&app, Method::POST, path, Some(body)).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{path}: {v}");
        let m = v["message"].as_str().unwrap();
        assert!(m.contains(field), "{path}: {m}");
    }
    let body = json!({"target": "http://127.0.0.1:1"});
    let (status, _) = call(&app, Method::POST, "/api/routes/nope/deploy", Some(body)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // Nothing changed: the route still goes to v1's server.
    let snap = p.runtime.snapshot();
    assert_eq!(
        snap.service("v1").unwrap().spec.servers[0].url(),
        "http://127.0.0.1:9"
    );

    // Bodiless pause and maintenance take the defaults; resume opens the route.
    let (status, v) = call(&app, Method::POST, "/api/routes/api/pause", None).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["hold"], json!({"state": "paused", "max_ms": 30000}));
    let (_, v) = call(&app, Method::POST, "/api/routes/api/maintenance", None).await;
    assert_eq!(v["hold"]["state"], "maintenance");
    assert!(!p.runtime.snapshot().route("api").unwrap().hold.is_open());
    let (_, v) = call(&app, Method::POST, "/api/routes/api/resume", None).await;
    assert_eq!(v["hold"], json!({"state": "open"}));
    assert!(p.runtime.snapshot().route("api").unwrap().hold.is_open());
    let (status, _) = call(&app, Method::POST, "/api/routes/nope/resume", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_deploy_replaces_a_file_service_until_its_runtime_definition_is_deleted() {
    let p = common::parts(common::CONFIG, None).await;
    let app = router(common::state(&p.runtime, &p.store, 0));
    let target = umbra_testkit::Fixture::builder()
        .health("/up")
        .start()
        .await;
    // Never healthy: 504, nothing changed.
    let sick = umbra_testkit::Fixture::builder()
        .status("/up", 500)
        .start()
        .await;
    let body = json!({"target": sick.url(), "wait": "300ms"});
    let (status, v) = call(&app, Method::POST, "/api/routes/api/deploy", Some(body)).await;
    assert_eq!(status, StatusCode::GATEWAY_TIMEOUT, "{v}");
    assert_eq!(v["error"], "target_unhealthy");
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .contains("answered 500 Internal Server Error"),
        "{v}"
    );
    let url = |p: &common::Parts| p.runtime.snapshot().service("v1").unwrap().spec.servers[0].url();
    assert_eq!(url(&p), "http://127.0.0.1:9");

    let body = json!({"target": target.url(), "drain": "1s"});
    let (status, v) = call(&app, Method::POST, "/api/routes/api/deploy", Some(body)).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["service"], "v1");
    assert_eq!(v["previous"], json!(["http://127.0.0.1:9"]));
    assert_eq!(
        (v["drained"].clone(), v["persisted"].clone()),
        (json!(true), json!(true))
    );
    assert_eq!(url(&p), target.url());
    assert!(target.health_hits() >= 1);
    let (_, v) = call(&app, Method::GET, "/api/routes/api", None).await;
    assert_eq!(v["hold"], json!({"state": "open"}));

    // Deleting the runtime definition returns to the file's, though a route uses it.
    let (status, v) = call(&app, Method::DELETE, "/api/services/v1", None).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(url(&p), "http://127.0.0.1:9");
}
