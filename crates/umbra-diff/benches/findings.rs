//! Cost of grouping into findings: `FindingsModel::observe` per comparison (steady state: the
//! model already knows the endpoint's causes), the report of an endpoint, and the diff engine's
//! throughput on the ~10 KB document of the `compare` bench with and without grouping after it
//! (the grouping must not take more than 5 % off the engine's MB/s).

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use serde_json::{json, Value};
use umbra_diff::{
    compare, CompareConfig, DiffKind, Difference, FindingsConfig, FindingsModel, Observation,
    PointerPattern, Response, Verdict,
};

fn d(path: &str, kind: DiffKind, p: Option<Value>, c: Option<Value>) -> Difference {
    Difference {
        path: path.into(),
        kind,
        primary: p,
        candidate: c,
    }
}

fn observation<'a>(
    id: i64,
    endpoint: &'a str,
    candidate_status: u16,
    diffs: &'a [Difference],
    noise: Option<&'a [Difference]>,
) -> Observation<'a> {
    Observation {
        id,
        at_ms: 1_700_000_000_000 + id,
        endpoint,
        primary_status: 200,
        candidate_status: Some(candidate_status),
        verdict: if diffs.is_empty() {
            Verdict::Same
        } else {
            Verdict::Different
        },
        differences: diffs,
        noise,
    }
}

/// The demo's `GET /users/{id}`: a type change, two typed-noise fields and shuffled tags.
fn user_differences() -> Vec<Difference> {
    vec![
        d(
            "/balance",
            DiffKind::Type,
            Some(json!(12.25)),
            Some(json!("12.25")),
        ),
        d(
            "/tags/0",
            DiffKind::Changed,
            Some(json!("new")),
            Some(json!("vip")),
        ),
        d(
            "/tags/1",
            DiffKind::Changed,
            Some(json!("vip")),
            Some(json!("new")),
        ),
        d(
            "/meta/generated_at",
            DiffKind::Changed,
            Some(json!(1_700_000_000_000u64)),
            Some(json!(1_700_000_000_003u64)),
        ),
        d(
            "/meta/request_id",
            DiffKind::Changed,
            Some(json!("4f1c2a9b7e3d0a55")),
            Some(json!("0091ab3ce1f27d64")),
        ),
    ]
}

/// The demo's rare 500 on `GET /orders/{id}`: a status change and its body.
fn error_differences() -> Vec<Difference> {
    let mut v = vec![d(
        "status",
        DiffKind::Status,
        Some(json!(200)),
        Some(json!(500)),
    )];
    v.push(d("/error", DiffKind::Added, None, Some(json!("internal"))));
    for p in ["/id", "/items", "/total", "/currency", "/served_at"] {
        v.push(d(p, DiffKind::Removed, Some(json!(1)), None));
    }
    v
}

fn many_differences(n: usize) -> Vec<Difference> {
    (0..n)
        .map(|i| {
            d(
                &format!("/items/{i}/price"),
                DiffKind::Changed,
                Some(json!(i)),
                Some(json!(i + 1)),
            )
        })
        .chain((0..n / 5).map(|i| d(&format!("/f{i}"), DiffKind::Added, None, Some(json!(i)))))
        .collect()
}

fn warm(
    model: &mut FindingsModel,
    endpoint: &str,
    status: u16,
    diffs: &[Difference],
    noise: Option<&[Difference]>,
) {
    for i in 0..1000 {
        model.observe(&observation(i, endpoint, status, diffs, noise));
    }
}

/// One benchmarked kind of comparison.
struct Case {
    name: &'static str,
    status: u16,
    diffs: Vec<Difference>,
    noise: Option<Vec<Difference>>,
}

fn cases() -> Vec<Case> {
    let case = |name, status, diffs, noise| Case {
        name,
        status,
        diffs,
        noise,
    };
    vec![
        case("no_differences", 200, vec![], None),
        case("demo_user_5_differences", 200, user_differences(), None),
        case(
            "demo_user_5_differences_with_secondary",
            200,
            user_differences(),
            Some(user_differences()[1..].to_vec()),
        ),
        case(
            "status_change_7_differences",
            500,
            error_differences(),
            None,
        ),
        case("60_differences", 200, many_differences(50), None),
    ]
}

fn bench_observe(c: &mut Criterion) {
    let mut group = c.benchmark_group("findings_observe");
    group.throughput(Throughput::Elements(1));
    for case in cases() {
        let noise = case.noise.as_deref();
        let mut model = FindingsModel::new("api", "v2", FindingsConfig::default());
        warm(
            &mut model,
            "GET /users/{id}",
            case.status,
            &case.diffs,
            noise,
        );
        let mut id = 1000;
        group.bench_function(case.name, |b| {
            b.iter(|| {
                id += 1;
                let obs = observation(id, "GET /users/{id}", case.status, &case.diffs, noise);
                model.observe(black_box(&obs));
            })
        });
    }
    group.finish();
}

fn bench_report(c: &mut Criterion) {
    let mut model = FindingsModel::new("api", "v2", FindingsConfig::default());
    let (users, errors, many) = (
        user_differences(),
        error_differences(),
        many_differences(50),
    );
    for i in 0..1000 {
        let (status, diffs): (u16, &[Difference]) = match i % 25 {
            12 => (500, &errors),
            0 => (200, &many),
            _ => (200, &users),
        };
        model.observe(&observation(i, "GET /users/{id}", status, diffs, None));
    }
    let causes = model
        .findings("GET /users/{id}", true)
        .iter()
        .map(|f| f.causes.len())
        .sum::<usize>();
    let mut group = c.benchmark_group("findings_report");
    group.bench_function(format!("endpoint_with_{causes}_causes"), |b| {
        b.iter(|| model.findings(black_box("GET /users/{id}"), true))
    });
    group.finish();
}

fn document(items: usize, generated_at: &str) -> Value {
    let items: Vec<Value> = (0..items)
        .map(|i| {
            json!({
                "id": i, "sku": format!("SKU-{i:06}"), "name": format!("Item number {i}"),
                "price": 10.5 + i as f64, "in_stock": i % 3 != 0,
                "tags": ["red", "large", format!("t{}", i % 7)],
                "dimensions": {"w": i % 10, "h": 20, "d": 5.25},
            })
        })
        .collect();
    json!({
        "meta": {"generated_at": generated_at, "page": 1, "per_page": items.len()},
        "items": items,
        "links": {"next": "/items?page=2", "prev": null},
    })
}

fn response(v: &Value) -> Response {
    Response {
        status: 200,
        headers: vec![("content-type".into(), "application/json".into())],
        body: serde_json::to_vec(v).expect("serializable"),
        ..Response::default()
    }
}

/// The `compare` bench's documents, compared alone and compared then grouped.
fn bench_engine(c: &mut Criterion) {
    let base = document(67, "2024-01-01T00:00:00Z");
    let primary = response(&base);
    let later = response(&document(67, "2024-01-01T00:00:01Z"));
    let mut changed = base.clone();
    changed["items"][3]["price"] = json!(99.0);
    changed["items"][17]["name"] = json!("Renamed");
    changed["items"][40]["dimensions"]["h"] = json!(21);
    changed["meta"]["generated_at"] = json!("2024-01-01T00:00:02Z");
    let changed = response(&changed);
    let cfg = CompareConfig {
        ignore: vec![PointerPattern::parse("/meta/generated_at").expect("valid pattern")],
        ..CompareConfig::default()
    };
    let mut group = c.benchmark_group("engine_10kb");
    group.throughput(Throughput::Bytes(primary.body.len() as u64));
    for (name, candidate) in [
        ("equal_after_ignore", &later),
        ("three_differences", &changed),
    ] {
        group.bench_function(format!("{name}/compare"), |b| {
            b.iter(|| compare(black_box(&primary), black_box(candidate), &cfg))
        });
        let mut model = FindingsModel::new("api", "v2", FindingsConfig::default());
        let mut id = 0;
        group.bench_function(format!("{name}/compare_then_group"), |b| {
            b.iter(|| {
                id += 1;
                let diffs = compare(black_box(&primary), black_box(candidate), &cfg);
                model.observe(&observation(id, "GET /items", 200, &diffs, None));
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench_observe, bench_report, bench_engine);
criterion_main!(benches);
