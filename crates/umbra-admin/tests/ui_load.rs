//! Measurement, not a test (ignored; run by `bench/ui_load.sh`): how fast the UI pages load
//! with 10,000 comparisons in a real SQLite store, written through `ComparisonStore`. It
//! prints the time to a whole response over HTTP (the admin router on an ephemeral port) and,
//! when Chromium and chromedriver are installed, the browser's navigation timings. It asserts
//! only that every page answers 200: timing bounds belong to people reading the figures.

mod common;

use common::{CONFIG, ENDPOINTS};

#[path = "browser/driver.rs"]
#[allow(dead_code)]
mod driver;

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use umbra_diff::{Comparison, DiffKind, Difference, Request, Response, Verdict};
use umbra_store::ComparisonStore;

const COMPARISONS: usize = 10_000;
const BATCH: usize = 500;
const RUNS: usize = 30;
const BROWSER_RUNS: usize = 10;

/// A comparison as the shadow path makes them: a JSON body of a few hundred bytes, a mix of
/// verdicts (most `same`), one to three differing fields when different.
fn comparison(i: usize, now_ms: i64) -> Comparison {
    let endpoint = ENDPOINTS[i % ENDPOINTS.len()];
    let verdict = match i % 20 {
        0..=11 => Verdict::Same,
        12..=17 => Verdict::Different,
        18 => Verdict::Noise,
        _ => Verdict::ShadowError,
    };
    let body = |price: usize| {
        serde_json::to_vec(&json!({
            "item": {"id": i, "name": format!("widget {i}"), "price": price, "tags": ["a", "b", "c"],
                     "stock": {"warehouse": "north", "count": i % 97}},
            "meta": {"generated_at": now_ms, "version": "v1"},
        }))
        .unwrap()
    };
    let response = |price: usize, latency_us: u64| Response {
        status: 200,
        headers: vec![
            ("content-type".into(), "application/json".into()),
            ("x-request-id".into(), format!("req-{i}")),
        ],
        body: body(price),
        truncated: false,
        latency_us,
    };
    let differences: Vec<Difference> = match verdict {
        Verdict::Different | Verdict::Noise => (0..1 + i % 3)
            .map(|k| Difference {
                path: ["/item/price", "/meta/generated_at", "/item/stock/count"][k].into(),
                kind: DiffKind::Changed,
                primary: Some(json!(10)),
                candidate: Some(json!(12)),
            })
            .collect(),
        _ => Vec::new(),
    };
    let shadow_error = verdict == Verdict::ShadowError;
    Comparison {
        id: 0,
        created_at_ms: now_ms - (COMPARISONS - i) as i64 * 100,
        route: "api".into(),
        candidate: "v2".into(),
        endpoint: endpoint.into(),
        request_id: format!("req-{i}"),
        verdict,
        request: Request {
            method: endpoint.split(' ').next().unwrap().into(),
            uri: format!("/api/items/{i}?expand=stock"),
            host: "api.example.com".into(),
            headers: vec![("authorization".into(), "[redacted]".into())],
            body: Vec::new(),
        },
        primary: response(10, 1_000 + (i % 50) as u64 * 40),
        shadow: (!shadow_error).then(|| response(12, 1_100 + (i % 60) as u64 * 45)),
        error: shadow_error.then(|| "shadow timed out".to_string()),
        differences,
        noise: None,
    }
}

async fn fill(store: &dyn ComparisonStore) -> Duration {
    let now = umbra_core::runtime::now_ms();
    let started = Instant::now();
    for start in (0..COMPARISONS).step_by(BATCH) {
        let batch: Vec<Comparison> = (start..start + BATCH).map(|i| comparison(i, now)).collect();
        store.write_batch(&batch, &[]).await.expect("batch stored");
    }
    started.elapsed()
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// (median, p95, max) of samples in ms.
fn summary(mut v: Vec<f64>) -> (f64, f64, f64) {
    v.sort_by(f64::total_cmp);
    let at = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize];
    (at(0.5), at(0.95), v[v.len() - 1])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement; run bench/ui_load.sh"]
async fn ui_load_with_10k_comparisons() {
    let common::Parts {
        runtime,
        store,
        dir: _dir,
        events: _events,
    } = common::parts(CONFIG, None).await;
    let filled = fill(&*store).await;
    let page = store
        .list(&umbra_store::ListQuery::default())
        .await
        .unwrap();
    let newest = page.items[0].id;
    let middle = newest - (COMPARISONS as i64) / 2;
    let state = common::state(&runtime, &store, 0);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, umbra_admin::router(state)).await });

    let pages = [
        "/ui/comparisons".to_string(),
        "/ui/comparisons?route=api&verdict=different".into(),
        format!("/ui/comparisons?before={middle}"),
        "/ui/comparisons?endpoint=POST%20%2Fapi%2Fsearch&verdict=shadow_error".into(),
        format!("/ui/comparisons/{middle}"),
        "/ui/routes/api".into(),
        "/".into(),
        "/ui/events".into(),
        "/api/comparisons".into(),
        "/api/routes/api/diffs".into(),
    ];
    println!(
        "\nUI load: {COMPARISONS} comparisons in SQLite (written in {:.0} ms), {RUNS} requests per page",
        ms(filled)
    );
    println!(
        "{:<72} {:>8} {:>8} {:>8} {:>9}",
        "page (whole HTTP response)", "p50 ms", "p95 ms", "max ms", "bytes"
    );
    for path in &pages {
        let url = format!("{base}{path}");
        let mut samples = Vec::with_capacity(RUNS);
        let mut bytes = 0;
        for _ in 0..RUNS {
            let t = Instant::now();
            let r = umbra_testkit::get(&url).await;
            samples.push(ms(t.elapsed()));
            assert_eq!(r.status, 200, "{path}: {}", r.text());
            bytes = r.body.len();
        }
        let (p50, p95, max) = summary(samples);
        println!("{path:<72} {p50:>8.2} {p95:>8.2} {max:>8.2} {bytes:>9}");
    }

    let Some(b) = driver::start("ui_load_with_10k_comparisons", driver::DESKTOP).await else {
        return;
    };
    println!(
        "\n{:<72} {:>10} {:>10} {:>10}",
        format!("page in Chromium (median of {BROWSER_RUNS} loads)"),
        "response",
        "DOM ready",
        "load"
    );
    for path in pages.iter().filter(|p| !p.starts_with("/api/")) {
        let mut response = Vec::new();
        let mut dom = Vec::new();
        let mut load = Vec::new();
        for _ in 0..BROWSER_RUNS {
            b.goto(&format!("{base}{path}")).await;
            let t: Value = b
                .js("const n = performance.getEntriesByType('navigation')[0]; \
                     return [n.responseEnd - n.startTime, n.domContentLoadedEventEnd - n.startTime, \
                             n.loadEventEnd - n.startTime];")
                .await;
            response.push(t[0].as_f64().unwrap());
            dom.push(t[1].as_f64().unwrap());
            load.push(t[2].as_f64().unwrap());
        }
        println!(
            "{path:<72} {:>10.1} {:>10.1} {:>10.1}",
            summary(response).0,
            summary(dom).0,
            summary(load).0
        );
    }
    b.close().await;
}
