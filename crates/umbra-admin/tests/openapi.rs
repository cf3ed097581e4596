//! `assets/openapi.json` against the real router: every documented operation is routed (and
//! answers a documented status), and every `.route(...)` in `src/lib.rs` is documented.

use std::collections::BTreeSet;
mod common;

use common::{CONFIG, TOKEN};

use axum::body::Body;
use axum::Router;
use http::{Method, Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;
use umbra_admin::router;
use umbra_diff::{Comparison, Request as DiffRequest, Response, Verdict};

const LIB_RS: &str = include_str!("../src/lib.rs");
const METHODS: [&str; 7] = ["get", "put", "post", "delete", "patch", "head", "options"];

/// A route of the test config, put in for `{name}`.
const ROUTE: &str = "api";

fn doc() -> Value {
    serde_json::from_str(umbra_admin::openapi::OPENAPI_JSON).expect("openapi.json is JSON")
}

fn comparison(i: u64) -> Comparison {
    let resp = |status| Response {
        status,
        headers: vec![("content-type".into(), "application/json".into())],
        body: br#"{"price":1}"#.to_vec(),
        truncated: false,
        latency_us: 1000 + i,
    };
    Comparison {
        id: 0,
        created_at_ms: 1_700_000_000_000 + i as i64,
        route: ROUTE.into(),
        candidate: "v2".into(),
        endpoint: "GET /api/items/{id}".into(),
        request_id: format!("req-{i}"),
        verdict: Verdict::Same,
        request: DiffRequest {
            method: "GET".into(),
            uri: "/api/items/1".into(),
            host: "example".into(),
            headers: Vec::new(),
            body: Vec::new(),
        },
        primary: resp(200),
        shadow: Some(resp(200)),
        error: None,
        differences: Vec::new(),
        noise: None,
    }
}

/// The router over a real runtime and a SQLite store holding comparison 1.
async fn app() -> (Router, tempfile::TempDir) {
    let p = common::parts(CONFIG, Some(TOKEN)).await;
    p.store.write_batch(&[comparison(1)], &[]).await.unwrap();
    let state = common::state(&p.runtime, &p.store, 0);
    // Keep the runtime's event channel open for the whole test.
    std::mem::forget(p.events);
    let dir = p.dir;
    (router(state), dir)
}

/// Every `(method, path)` that `src/lib.rs` registers with `.route("...", ...)`.
fn routes_in_lib_rs() -> BTreeSet<(String, String)> {
    let mut found = BTreeSet::new();
    let mut rest = LIB_RS;
    while let Some(at) = rest.find(".route(") {
        let call = &rest[at + ".route(".len()..];
        // The call's arguments, up to the matching `)`.
        let mut depth = 1;
        let mut end = call.len();
        for (i, c) in call.char_indices() {
            match c {
                '(' => depth += 1,
                ')' => {
                    depth -= 1;
                    if depth == 0 {
                        end = i;
                        break;
                    }
                }
                _ => {}
            }
        }
        let args = &call[..end];
        rest = &call[end..];
        let Some(open) = args.find('"') else { continue };
        let close = open + 1 + args[open + 1..].find('"').expect("closing quote");
        let path = &args[open + 1..close];
        let handlers = &args[close + 1..];
        let mut methods = 0;
        for m in METHODS {
            let needle = format!("{m}(");
            for (i, _) in handlers.match_indices(&needle) {
                let before = handlers[..i].chars().next_back();
                if !matches!(before, Some(c) if c.is_alphanumeric() || c == '_' || c == ':') {
                    found.insert((m.to_string(), path.to_string()));
                    methods += 1;
                }
            }
        }
        assert!(
            methods > 0,
            "no method found for `.route(\"{path}\", ...)` in lib.rs"
        );
    }
    found
}

/// Every `(method, path)` the document describes.
fn operations(doc: &Value) -> BTreeSet<(String, String)> {
    let mut ops = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (key, _) in item.as_object().expect("path item") {
            if METHODS.contains(&key.as_str()) {
                ops.insert((key.clone(), path.clone()));
            }
        }
    }
    ops
}

fn concrete(path: &str) -> String {
    // A service path names a service of the test config (read-only: 409, not 404).
    let name = if path.starts_with("/api/services/") {
        "v1"
    } else {
        ROUTE
    };
    path.replace("{name}", name).replace("{id}", "1")
}

/// The request for an operation: a minimal body of the documented media type (`{}` for
/// JSON, which is allowed to be rejected with 422).
fn request(method: &str, path: &str, op: &Value, token: bool) -> Request<Body> {
    let mut b = Request::builder()
        .method(Method::from_bytes(method.to_uppercase().as_bytes()).unwrap())
        .uri(concrete(path));
    if token {
        b = b.header("authorization", format!("Bearer {TOKEN}"));
    }
    let content = &op["requestBody"]["content"];
    if content.get("application/json").is_some() {
        b.header("content-type", "application/json")
            .body(Body::from("{}"))
            .unwrap()
    } else if content.get("application/x-www-form-urlencoded").is_some() {
        b.header("content-type", "application/x-www-form-urlencoded")
            .body(Body::from("token=wrong"))
            .unwrap()
    } else if method != "get" && path.starts_with("/api/") {
        // Changes on the API are JSON, bodiless ones too.
        b.header("content-type", "application/json")
            .body(Body::empty())
            .unwrap()
    } else {
        b.body(Body::empty()).unwrap()
    }
}

#[test]
fn every_route_in_lib_rs_is_documented() {
    let registered = routes_in_lib_rs();
    assert!(
        registered.contains(&("get".into(), "/api/openapi.json".into())),
        "the scan of lib.rs found {registered:?}"
    );
    assert!(registered.contains(&("delete".into(), "/api/routes/{name}/canary".into())));
    assert!(registered.contains(&("post".into(), "/ui/login".into())));
    let documented = operations(&doc());
    let missing: Vec<_> = registered.difference(&documented).collect();
    assert!(
        missing.is_empty(),
        "routes in src/lib.rs missing from assets/openapi.json: {missing:?}"
    );
    let extra: Vec<_> = documented.difference(&registered).collect();
    assert!(
        extra.is_empty(),
        "operations in assets/openapi.json that src/lib.rs does not register: {extra:?}"
    );
}

#[tokio::test]
async fn every_documented_operation_is_routed() {
    let doc = doc();
    let (app, _dir) = app().await;
    for (method, path) in operations(&doc) {
        let op = &doc["paths"][&path][&method];
        let resp = app
            .clone()
            .oneshot(request(&method, &path, op, true))
            .await
            .unwrap();
        let status = resp.status();
        let json = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/json"));
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        let text = String::from_utf8_lossy(&bytes);
        assert!(
            status != StatusCode::NOT_FOUND && status != StatusCode::METHOD_NOT_ALLOWED,
            "{method} {path}: {status} {text}"
        );
        assert!(
            op["responses"].get(status.as_str()).is_some(),
            "{method} {path}: answered {status}, which the document does not list: {text}"
        );
        if status.is_client_error() || status.is_server_error() {
            if json {
                let body: Value = serde_json::from_slice(&bytes).unwrap();
                assert!(
                    body["error"].is_string() && body["message"].is_string(),
                    "{method} {path}: error body is not {{error, message}}: {text}"
                );
            }
        } else if json {
            serde_json::from_slice::<Value>(&bytes)
                .unwrap_or_else(|e| panic!("{method} {path}: not JSON ({e}): {text}"));
        }
    }
}

#[tokio::test]
async fn security_matches_the_auth_layer() {
    let doc = doc();
    let (app, _dir) = app().await;
    assert!(doc["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer");
    for (method, path) in operations(&doc) {
        let op = &doc["paths"][&path][&method];
        let public = op["security"].as_array().is_some_and(Vec::is_empty);
        let resp = app
            .clone()
            .oneshot(request(&method, &path, op, false))
            .await
            .unwrap();
        // The auth layer's refusal: 401 with `WWW-Authenticate: Bearer` (a wrong sign-in
        // token on the public `/ui/login` is a 401 page without it).
        let refused = resp.status() == StatusCode::UNAUTHORIZED
            && resp.headers().get("www-authenticate").is_some();
        if public {
            assert!(!refused, "{method} {path} is documented as public");
        } else {
            assert!(refused, "{method} {path} needs the token");
            assert!(
                op["responses"].get("401").is_some(),
                "{method} {path}: 401 is not documented"
            );
        }
    }
}

#[tokio::test]
async fn the_document_is_served() {
    let (app, _dir) = app().await;
    let resp = app
        .oneshot(
            Request::get("/api/openapi.json")
                .header("authorization", format!("Bearer {TOKEN}"))
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["content-type"], "application/json");
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    let served: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(served, doc());
}

fn refs<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                match (k.as_str(), x) {
                    ("$ref", Value::String(r)) => out.push(r),
                    _ => refs(x, out),
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|x| refs(x, out)),
        _ => {}
    }
}

#[test]
fn refs_resolve_and_path_parameters_are_declared() {
    let doc = doc();
    let mut all = Vec::new();
    refs(&doc, &mut all);
    for r in all {
        let pointer = r.strip_prefix('#').expect("local $ref");
        assert!(doc.pointer(pointer).is_some(), "dangling $ref {r}");
    }
    for (method, path) in operations(&doc) {
        let item = &doc["paths"][&path];
        let declared: Vec<String> = item["parameters"]
            .as_array()
            .into_iter()
            .chain(item[&method]["parameters"].as_array())
            .flatten()
            .map(|p| match p["$ref"].as_str() {
                Some(r) => doc.pointer(&r[1..]).unwrap().clone(),
                None => p.clone(),
            })
            .filter(|p| p["in"] == "path")
            .map(|p| p["name"].as_str().unwrap().to_string())
            .collect();
        for seg in path.split('/').filter(|s| s.starts_with('{')) {
            let name = &seg[1..seg.len() - 1];
            assert!(
                declared.iter().any(|d| d == name),
                "{method} {path}: path parameter `{name}` is not declared"
            );
        }
    }
    // Every error response is the `{error, message}` shape.
    for (name, r) in doc["components"]["responses"].as_object().unwrap() {
        assert_eq!(
            r["content"]["application/json"]["schema"]["$ref"], "#/components/schemas/Error",
            "response {name}"
        );
    }
}
