//! Throughput of `compare` on ~10 KB JSON documents: identical bytes, equal after an ignore
//! rule (full parse and walk), a few differences, and an unordered array with a difference.
//! Throughput counts the primary document's bytes per comparison (one document, not both).

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use serde_json::{json, Value};
use umbra_diff::{compare, CompareConfig, PointerPattern, Response};

fn document(items: usize, generated_at: &str) -> Value {
    let items: Vec<Value> = (0..items)
        .map(|i| {
            json!({
                "id": i,
                "sku": format!("SKU-{i:06}"),
                "name": format!("Item number {i}"),
                "price": 10.5 + i as f64,
                "in_stock": i % 3 != 0,
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
        headers: vec![
            ("content-type".into(), "application/json".into()),
            ("date".into(), "Mon, 01 Jan 2024 00:00:00 GMT".into()),
        ],
        body: serde_json::to_vec(v).expect("serializable"),
        ..Response::default()
    }
}

fn bench(c: &mut Criterion) {
    let items = 67;
    let base = document(items, "2024-01-01T00:00:00Z");
    let primary = response(&base);
    let size = primary.body.len();

    let later = response(&document(items, "2024-01-01T00:00:01Z"));

    let mut changed = base.clone();
    changed["items"][3]["price"] = json!(99.0);
    changed["items"][17]["name"] = json!("Renamed");
    changed["items"][40]["dimensions"]["h"] = json!(21);
    changed["meta"]["generated_at"] = json!("2024-01-01T00:00:02Z");
    let changed = response(&changed);

    let mut shuffled = base.clone();
    if let Some(list) = shuffled["items"].as_array_mut() {
        list.reverse();
        list[5]["price"] = json!(1.0);
    }
    let shuffled = response(&shuffled);

    let pattern = |p: &str| PointerPattern::parse(p).expect("valid pattern");
    let cfg = CompareConfig {
        ignore: vec![pattern("/meta/generated_at")],
        ..CompareConfig::default()
    };
    let unordered_cfg = CompareConfig {
        unordered: vec![pattern("/items")],
        ..cfg.clone()
    };

    let mut group = c.benchmark_group("compare_10kb");
    group.throughput(Throughput::Bytes(size as u64));
    group.bench_function("identical_bytes", |b| {
        b.iter(|| compare(black_box(&primary), black_box(&primary), &cfg))
    });
    group.bench_function("equal_after_ignore", |b| {
        b.iter(|| compare(black_box(&primary), black_box(&later), &cfg))
    });
    group.bench_function("three_differences", |b| {
        b.iter(|| compare(black_box(&primary), black_box(&changed), &cfg))
    });
    group.bench_function("unordered_one_difference", |b| {
        b.iter(|| compare(black_box(&primary), black_box(&shuffled), &unordered_cfg))
    });
    group.finish();

    // What parsing alone costs with serde_json, for scale (two documents per iteration).
    let mut group = c.benchmark_group("reference_serde_json_10kb");
    group.throughput(Throughput::Bytes(size as u64));
    group.bench_function("skip_both_ignored_any", |b| {
        b.iter(|| {
            let a = serde_json::from_slice::<serde::de::IgnoredAny>(black_box(&primary.body));
            let b = serde_json::from_slice::<serde::de::IgnoredAny>(black_box(&later.body));
            black_box(a.is_ok() && b.is_ok())
        })
    });
    group.bench_function("parse_both_into_value", |b| {
        b.iter(|| {
            let a = serde_json::from_slice::<Value>(black_box(&primary.body));
            let b = serde_json::from_slice::<Value>(black_box(&later.body));
            black_box((a.ok(), b.ok()))
        })
    });
    group.finish();
    eprintln!("document size: {size} bytes");
}

criterion_group!(benches, bench);
criterion_main!(benches);
