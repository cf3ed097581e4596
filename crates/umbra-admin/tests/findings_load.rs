//! Measurement, not a test (ignored; see bench/RESULTS.md, "issue 16: findings"): the cost of
//! `GET /api/routes/{name}/findings` with 100,000 stored comparisons, on SQLite and on a real
//! PostgreSQL (the store suite's private cluster, or `$UMBRA_TEST_PG_URL`). It writes the
//! comparisons through `ComparisonStore`, rebuilds the findings models from the store as
//! start-up does (timed: that is also what computing findings from the store on every request
//! would cost), then asks the admin router for the findings and for one finding's comparisons
//! and prints p50/p95/max. It asserts only that the answers are right, not how fast they are.
//!
//! `cargo test -p umbra-admin --test findings_load -- --ignored --nocapture --test-threads 1`

#[path = "../../umbra-store/tests/support/mod.rs"]
mod support;

mod common;

use common::ENDPOINTS;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use http::Request;
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tower::ServiceExt;
use umbra_diff::{Comparison, DiffKind, Difference, Response, Verdict};
use umbra_proxy::FindingsModels;
use umbra_store::ComparisonStore;

const COMPARISONS: usize = 100_000;
const BATCH: usize = 1_000;
const RUNS: usize = 200;

fn d(path: &str, kind: DiffKind, p: Option<Value>, c: Option<Value>) -> Difference {
    Difference {
        path: path.into(),
        kind,
        primary: p,
        candidate: c,
    }
}

/// What comparison `i` differs in: mostly nothing; a changed price, a removed object with its
/// children, a 500 with its body, fresh timestamps (type-aware noise) or no answer.
fn differences(i: usize) -> (Verdict, u16, Vec<Difference>) {
    let ts = |s: u32| json!(format!("2026-11-23T14:{:02}:{:02}Z", s / 60 % 60, s % 60));
    match i % 20 {
        0..=10 => (Verdict::Same, 200, Vec::new()),
        11..=14 => (
            Verdict::Different,
            200,
            vec![d(
                "/item/price",
                DiffKind::Changed,
                Some(json!(10)),
                Some(json!(12)),
            )],
        ),
        15 => (
            Verdict::Different,
            200,
            vec![
                d(
                    "/item/stock",
                    DiffKind::Removed,
                    Some(json!({"count": 1})),
                    None,
                ),
                d("/item/stock/count", DiffKind::Removed, Some(json!(1)), None),
            ],
        ),
        16 => (
            Verdict::Different,
            500,
            vec![
                d(
                    "status",
                    DiffKind::Status,
                    Some(json!(200)),
                    Some(json!(500)),
                ),
                d("/error", DiffKind::Added, None, Some(json!("boom"))),
                d("/item", DiffKind::Removed, Some(json!({})), None),
            ],
        ),
        17 | 18 => (
            Verdict::Noise,
            200,
            vec![d(
                "/meta/generated_at",
                DiffKind::Changed,
                Some(ts(i as u32)),
                Some(ts(i as u32 + 1)),
            )],
        ),
        _ => (Verdict::ShadowError, 200, Vec::new()),
    }
}

fn comparison(i: usize, now_ms: i64) -> Comparison {
    let (verdict, status, differences) = differences(i);
    let response = |status: u16| Response {
        status,
        headers: vec![("content-type".into(), "application/json".into())],
        body: br#"{"item":{"id":1,"price":10}}"#.to_vec(),
        truncated: false,
        latency_us: 1_000,
    };
    Comparison {
        id: 0,
        created_at_ms: now_ms - (COMPARISONS - i) as i64 * 10,
        route: "api".into(),
        candidate: "v2".into(),
        endpoint: ENDPOINTS[(i / 20) % ENDPOINTS.len()].into(),
        request_id: format!("req-{i}"),
        verdict,
        request: umbra_diff::Request {
            method: "GET".into(),
            uri: format!("/api/items/{i}"),
            ..Default::default()
        },
        primary: response(200),
        shadow: (verdict != Verdict::ShadowError).then(|| response(status)),
        error: (verdict == Verdict::ShadowError).then(|| "connection refused".into()),
        differences,
        noise: None,
    }
}

/// Writes the comparisons as the writer would: `same` ones counted only, the rest in full.
async fn fill(store: &Arc<dyn ComparisonStore>) -> Duration {
    let now = 1_795_442_400_000;
    let started = Instant::now();
    for start in (0..COMPARISONS).step_by(BATCH) {
        let batch: Vec<Comparison> = (start..start + BATCH).map(|i| comparison(i, now)).collect();
        let (same, full): (Vec<_>, Vec<_>) =
            batch.into_iter().partition(|c| c.verdict == Verdict::Same);
        store.write_batch(&full, &same).await.expect("write batch");
    }
    started.elapsed()
}

fn percentiles(mut v: Vec<Duration>) -> String {
    v.sort_unstable();
    let at = |q: f64| v[((v.len() as f64 * q).ceil() as usize).clamp(1, v.len()) - 1];
    format!(
        "p50 {:.2} ms, p95 {:.2} ms, max {:.2} ms ({} runs)",
        at(0.50).as_secs_f64() * 1e3,
        at(0.95).as_secs_f64() * 1e3,
        v[v.len() - 1].as_secs_f64() * 1e3,
        v.len()
    )
}

async fn get(app: &axum::Router, path: &str) -> (Duration, Value) {
    let started = Instant::now();
    let req = Request::get(path).body(Body::empty()).unwrap();
    let resp = app.clone().oneshot(req).await.unwrap();
    assert_eq!(resp.status(), 200, "{path}");
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    let took = started.elapsed();
    (took, serde_json::from_slice(&body).unwrap())
}

async fn measure(backend: &str, store: Arc<dyn ComparisonStore>) {
    let parts = common::parts(common::CONFIG, None).await;
    let wrote = fill(&store).await;
    let models = Arc::new(FindingsModels::default());
    let started = Instant::now();
    let fed = umbra_admin::findings::rebuild(store.clone(), parts.runtime.clone(), models.clone())
        .await
        .expect("rebuild");
    let rebuilt = started.elapsed();
    assert_eq!(fed, COMPARISONS as u64);
    let app =
        umbra_admin::router(common::state(&parts.runtime, &store, 0).with_findings(models.clone()));

    let mut times = Vec::with_capacity(RUNS);
    let mut last = Value::Null;
    for _ in 0..RUNS {
        let (t, v) = get(&app, "/api/routes/api/findings").await;
        times.push(t);
        last = v;
    }
    let findings = last["findings"].as_array().expect("findings").clone();
    // On each of the 5 endpoints: no answer, the 500, `/item/stock` removed (high), the
    // price (medium); the timestamps are noise.
    assert_eq!(findings.len(), 20, "{findings:#?}");
    let with_noise: Vec<Duration> = {
        let mut v = Vec::with_capacity(RUNS);
        for _ in 0..RUNS {
            v.push(get(&app, "/api/routes/api/findings?noise=true").await.0);
        }
        v
    };
    let id = findings[0]["id"].as_str().unwrap();
    let mut filtered = Vec::with_capacity(RUNS);
    for _ in 0..RUNS {
        let (t, v) = get(&app, &format!("/api/comparisons?finding={id}&limit=50")).await;
        assert_eq!(v["items"].as_array().map(Vec::len), Some(50));
        filtered.push(t);
    }
    println!(
        "findings_load {backend}: {COMPARISONS} comparisons written in {:.1} s; findings \
         rebuilt from the store in {:.0} ms\n  GET /api/routes/api/findings ({} findings): {}\n  \
         GET /api/routes/api/findings?noise=true: {}\n  GET /api/comparisons?finding=ID&limit=50: {}",
        wrote.as_secs_f64(),
        rebuilt.as_secs_f64() * 1e3,
        findings.len(),
        percentiles(times),
        percentiles(with_noise),
        percentiles(filtered),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "measurement; see bench/RESULTS.md"]
async fn findings_with_100k_comparisons_sqlite() {
    let h = support::sqlite();
    measure("sqlite", h.open().await).await;
    h.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "measurement; see bench/RESULTS.md"]
async fn findings_with_100k_comparisons_postgres() {
    let Some(h) = support::postgres().await else {
        return;
    };
    measure("postgres", h.open().await).await;
    h.cleanup().await;
}
