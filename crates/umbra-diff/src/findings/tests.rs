//! Unit tests of the findings model: pure, synthetic comparisons run through `compare`.

use serde_json::{json, Map, Value};

use super::*;
use crate::compare::{compare, CompareConfig};
use crate::model::{DiffKind, Response};

/// A fixed, seedable generator (SplitMix64) so the tests are deterministic.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(1);
        mix(self.0)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            v.swap(i, self.below(i as u64 + 1) as usize);
        }
    }

    fn hex(&mut self, len: usize) -> String {
        (0..len).map(|_| format!("{:x}", self.below(16))).collect()
    }

    fn uuid(&mut self) -> String {
        let h = self.hex(32);
        format!(
            "{}-{}-{}-{}-{}",
            &h[..8],
            &h[8..12],
            &h[12..16],
            &h[16..20],
            &h[20..]
        )
    }

    fn base64url(&mut self, len: usize) -> String {
        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        (0..len)
            .map(|_| ALPHABET[self.below(64) as usize] as char)
            .collect()
    }
}

fn response(status: u16, body: &Value) -> Response {
    Response {
        status,
        headers: vec![("content-type".into(), "application/json".into())],
        body: serde_json::to_vec(body).expect("serializable"),
        ..Response::default()
    }
}

/// Feeds comparisons of real responses into a model, numbering them.
struct Feeder {
    model: FindingsModel,
    next_id: i64,
    cfg: CompareConfig,
}

impl Feeder {
    fn new(candidate: &str, config: FindingsConfig) -> Feeder {
        Feeder {
            model: FindingsModel::new("api", candidate, config),
            next_id: 1,
            cfg: CompareConfig::default(),
        }
    }

    /// Compares and observes one request; returns its comparison id.
    fn feed(
        &mut self,
        endpoint: &str,
        primary: &Response,
        candidate: &Response,
        secondary: Option<&Response>,
    ) -> i64 {
        let diffs = compare(primary, candidate, &self.cfg);
        let noise = secondary.map(|s| compare(primary, s, &self.cfg));
        self.feed_diffs(
            endpoint,
            primary.status,
            Some(candidate.status),
            &diffs,
            noise.as_deref(),
        )
    }

    fn feed_diffs(
        &mut self,
        endpoint: &str,
        primary_status: u16,
        candidate_status: Option<u16>,
        diffs: &[Difference],
        noise: Option<&[Difference]>,
    ) -> i64 {
        let id = self.next_id;
        self.next_id += 1;
        let verdict = match (candidate_status, diffs.is_empty()) {
            (None, _) => Verdict::ShadowError,
            (_, true) => Verdict::Same,
            _ => Verdict::Different,
        };
        self.model.observe(&Observation {
            id,
            at_ms: 1_700_000_000_000 + id * 1000,
            endpoint,
            primary_status,
            candidate_status,
            verdict,
            differences: diffs,
            noise,
        });
        id
    }
}

fn diff(path: &str, kind: DiffKind) -> Difference {
    Difference {
        path: path.into(),
        kind,
        primary: Some(json!(1)),
        candidate: Some(json!(2)),
    }
}

// ---------------------------------------------------------------------------------------------
// The demo API (crates/umbra/src/demo_app.rs): v1 is primary and secondary, v2 the candidate.

const USERS: &str = "GET /users/{id}";
const ORDERS: &str = "GET /orders/{id}";

fn demo_user(v2: bool, id: u64, now_ms: u64, rng: &mut Rng) -> Response {
    let balance = (id * 37 % 1000) as f64 / 4.0;
    let mut tags = ["new", "vip", "beta"];
    rng.shuffle(&mut tags);
    let balance = if v2 {
        json!(format!("{balance:.2}"))
    } else {
        json!(balance)
    };
    response(
        200,
        &json!({
            "id": id, "name": format!("user{id}"), "email": format!("user{id}@example.com"),
            "balance": balance, "tags": tags,
            "meta": {"generated_at": now_ms, "request_id": rng.hex(16)},
        }),
    )
}

fn demo_order(v2: bool, id: u64, now_ms: u64, served: u64) -> Response {
    if v2 && served % 25 == 12 {
        return response(500, &json!({"error": "internal"}));
    }
    let mut order = json!({
        "id": id,
        "items": [{"sku": "A-1", "qty": 1 + id % 3}, {"sku": "B-2", "qty": 2}],
        "total": 19.99 + id as f64,
        "currency": "EUR",
        "served_at": now_ms,
    });
    if v2 {
        order.as_object_mut().map(|o| o.remove("currency"));
    }
    response(200, &order)
}

/// 30 user requests and 50 order requests (two of them the candidate's 500).
fn feed_demo(f: &mut Feeder, with_secondary: bool) {
    let mut rng = Rng(7);
    for i in 0..30u64 {
        let t = 1_700_000_000_000 + i * 1000;
        let primary = demo_user(false, i, t, &mut rng);
        let candidate = demo_user(true, i, t + 1 + rng.below(5), &mut rng);
        let secondary = demo_user(false, i, t + 1 + rng.below(5), &mut rng);
        f.feed(
            USERS,
            &primary,
            &candidate,
            with_secondary.then_some(&secondary),
        );
    }
    for i in 0..50u64 {
        let t = 1_700_000_100_000 + i * 1000;
        let primary = demo_order(false, i, t, i);
        let candidate = demo_order(true, i, t + 1 + rng.below(5), i);
        let secondary = demo_order(false, i, t + 1 + rng.below(5), i);
        f.feed(
            ORDERS,
            &primary,
            &candidate,
            with_secondary.then_some(&secondary),
        );
    }
}

fn summaries(findings: &[Finding]) -> Vec<&str> {
    findings.iter().map(|f| f.summary.as_str()).collect()
}

fn assert_three_demo_findings(findings: &[Finding]) {
    assert_eq!(
        summaries(findings),
        [
            "`/balance` turned from a number into a string on every `GET /users/{id}`",
            "`/currency` removed on 96 % of `GET /orders/{id}`",
            "1 in 25 `GET /orders/{id}` answers 500 instead of 200",
        ]
    );
    assert!(findings.iter().all(|f| f.severity == Severity::High));
    assert!(findings
        .iter()
        .all(|f| f.significant && f.candidate == "v2"));
    let status = &findings[2];
    for field in ["status", "/error", "/id", "/items", "/served_at", "/total"] {
        assert!(
            status.fields.iter().any(|f| f == field),
            "{field}: {:?}",
            status.fields
        );
    }
    assert_eq!((status.count, status.total), (2, 50));
    assert_eq!(status.rate, 0.04);
    assert_eq!(status.example_ids.len(), 2);
    assert_eq!(findings[1].fields, ["/currency"]);
    assert_eq!(findings[0].fields, ["/balance"]);
}

#[test]
fn the_demos_three_changes_are_three_findings_with_a_secondary() {
    let mut f = Feeder::new("v2", FindingsConfig::default());
    feed_demo(&mut f, true);
    let findings = f.model.all_findings(false);
    assert_three_demo_findings(&findings);
    // The noise (timestamps, request ids, tag order) is there, judged by the secondary.
    let noise: Vec<Finding> = f
        .model
        .all_findings(true)
        .into_iter()
        .filter(|x| !x.significant)
        .collect();
    let noisy_fields: Vec<&str> = noise
        .iter()
        .flat_map(|x| x.fields.iter().map(String::as_str))
        .collect();
    for field in [
        "/served_at",
        "/meta/generated_at",
        "/meta/request_id",
        "/tags",
    ] {
        assert!(noisy_fields.contains(&field), "{field} in {noisy_fields:?}");
    }
    assert!(noise.iter().all(|x| x.noise_rate > 0.0));
}

#[test]
fn without_a_secondary_typed_noise_leaves_the_three_changes_and_the_tag_order() {
    let mut f = Feeder::new("v2", FindingsConfig::default());
    feed_demo(&mut f, false);
    let findings = f.model.all_findings(false);
    // Shuffled tags cannot be told from a real reorder without a secondary: a low finding.
    assert_three_demo_findings(&findings[..3]);
    assert_eq!(findings.len(), 4);
    assert_eq!(findings[3].severity, Severity::Low);
    assert!(findings[3]
        .summary
        .starts_with("`/tags` in another order on "));
}

// ---------------------------------------------------------------------------------------------
// Type-aware noise

/// A document whose ids and times are fresh; `n` (one per document) keeps times apart.
fn fresh_document(rng: &mut Rng, n: u64, reversed: bool) -> Value {
    let created_at = format!(
        "2024-05-01T10:{:02}:{:02}.{}+02:00",
        n / 60,
        n % 60,
        rng.below(1000)
    );
    let day = format!("2024-06-{:02}", 1 + n % 28);
    let pairs = vec![
        ("id", json!(rng.uuid())),
        ("name", json!("Ada")),
        ("created_at", json!(created_at)),
        ("request_id", json!(rng.hex(32))),
        ("session", json!(format!("sess_{}", rng.base64url(24)))),
        ("updated", json!(1_700_000_000 + n)),
        ("nested", json!({"trace": rng.uuid(), "day": day})),
        (
            "items",
            json!([{"uid": rng.uuid(), "qty": 2}, {"uid": rng.uuid(), "qty": 3}]),
        ),
    ];
    let mut map = Map::new();
    let ordered: Vec<_> = if reversed {
        pairs.into_iter().rev().collect()
    } else {
        pairs
    };
    for (k, v) in ordered {
        map.insert(k.to_owned(), v);
    }
    Value::Object(map)
}

fn feed_fresh_ids(f: &mut Feeder) {
    let mut rng = Rng(11);
    for n in 0..30 {
        let primary = response(200, &fresh_document(&mut rng, 2 * n, false));
        let candidate = response(200, &fresh_document(&mut rng, 2 * n + 1, true));
        f.feed("GET /profiles/{id}", &primary, &candidate, None);
    }
}

#[test]
fn reordered_keys_and_fresh_timestamps_uuids_and_request_ids_are_no_finding() {
    let mut f = Feeder::new("v2", FindingsConfig::default());
    feed_fresh_ids(&mut f);
    assert_eq!(f.model.all_findings(false), []);
    // They are one noise finding: they always change together.
    let noise = f.model.all_findings(true);
    assert_eq!(noise.len(), 1, "{:?}", summaries(&noise));
    assert!(!noise[0].significant);
    assert_eq!(noise[0].noise_rate, 1.0);
    for field in [
        "/id",
        "/created_at",
        "/request_id",
        "/session",
        "/updated",
        "/nested/trace",
        "/nested/day",
        "/items/*/uid",
    ] {
        assert!(
            noise[0].fields.iter().any(|x| x == field),
            "{field}: {:?}",
            noise[0].fields
        );
    }
}

#[test]
fn typed_noise_can_be_turned_off_per_route() {
    let config = FindingsConfig {
        typed_noise: false,
        ..FindingsConfig::default()
    };
    let mut f = Feeder::new("v2", config);
    feed_fresh_ids(&mut f);
    let findings = f.model.all_findings(false);
    assert_eq!(findings.len(), 1);
    assert_eq!(findings[0].severity, Severity::Medium);
    assert_eq!(findings[0].noise_rate, 0.0);
    assert!(findings[0]
        .summary
        .contains("changed value on every `GET /profiles/{id}`, together with"));
}

#[test]
fn a_value_that_is_not_always_typed_noise_is_a_finding() {
    let mut f = Feeder::new("v2", FindingsConfig::default());
    let ts = |s: &str| response(200, &json!({"at": s}));
    for i in 0..20 {
        let later = if i % 2 == 0 {
            ts("2024-01-01T00:00:01Z")
        } else {
            ts("soon")
        };
        f.feed("GET /t", &ts("2024-01-01T00:00:00Z"), &later, None);
    }
    let findings = f.model.all_findings(false);
    assert_eq!(
        summaries(&findings),
        ["`/at` changed value on every `GET /t`"]
    );
    assert_eq!(findings[0].noise_rate, 0.5);
}

// ---------------------------------------------------------------------------------------------
// Grouping

#[test]
fn a_nested_removed_object_is_one_finding() {
    let mut f = Feeder::new("v2", FindingsConfig::default());
    let primary = response(
        200,
        &json!({"id": 1, "customer": {"name": "a", "address": {"city": "x", "zip": "1"}}, "total": 3}),
    );
    let candidate = response(200, &json!({"id": 1, "total": 3}));
    for _ in 0..25 {
        f.feed(ORDERS, &primary, &candidate, None);
    }
    let findings = f.model.all_findings(false);
    assert_eq!(
        summaries(&findings),
        ["`/customer` removed on every `GET /orders/{id}`"]
    );
    assert_eq!(findings[0].severity, Severity::High);
    // An engine that also lists the removed children still gets one finding.
    let mut g = Feeder::new("v2", FindingsConfig::default());
    let removed = |p: &str| Difference {
        path: p.into(),
        kind: DiffKind::Removed,
        primary: Some(json!("x")),
        candidate: None,
    };
    let diffs = [
        removed("/customer"),
        removed("/customer/address"),
        removed("/customer/address/city"),
        removed("/customer/name"),
    ];
    for _ in 0..25 {
        g.feed_diffs(ORDERS, 200, Some(200), &diffs, None);
    }
    let findings = g.model.all_findings(false);
    assert_eq!(findings.len(), 1);
    assert_eq!(
        findings[0].fields,
        [
            "/customer",
            "/customer/address",
            "/customer/address/city",
            "/customer/name"
        ]
    );
    assert_eq!(findings[0].causes.len(), 1);
}

#[test]
fn differences_that_always_occur_together_merge_until_they_part() {
    let mut f = Feeder::new("v2", FindingsConfig::default());
    let both = [diff("/a", DiffKind::Removed), diff("/b", DiffKind::Added)];
    for i in 0..20 {
        let diffs: &[Difference] = if i % 2 == 0 { &both } else { &[] };
        f.feed_diffs("GET /x", 200, Some(200), diffs, None);
    }
    let merged = f.model.all_findings(false);
    assert_eq!(
        summaries(&merged),
        ["`/a` removed on 50 % of `GET /x`, together with `/b` added"]
    );
    assert_eq!(merged[0].fields, ["/a", "/b"]);
    assert_eq!(merged[0].causes.len(), 2);
    assert_eq!(merged[0].causes[0], merged[0].id);
    // Same count, different comparisons: not together.
    f.feed_diffs("GET /x", 200, Some(200), &both[1..], None);
    f.feed_diffs("GET /x", 200, Some(200), &both[..1], None);
    let parted = f.model.all_findings(false);
    assert_eq!(
        summaries(&parted),
        [
            "`/a` removed on 50 % of `GET /x`",
            "`/b` added on 50 % of `GET /x`"
        ]
    );
    assert_eq!(parted[0].id, merged[0].id, "the lead keeps its id");
    assert_eq!(parted[1].id, merged[0].causes[1]);
}

#[test]
fn ids_are_stable_across_models_and_feed_order() {
    let comparisons: Vec<Vec<Difference>> = vec![
        vec![diff("/a", DiffKind::Changed)],
        vec![],
        vec![diff("/a", DiffKind::Changed), diff("/b", DiffKind::Added)],
    ];
    let ids = |order: &[usize]| {
        let mut f = Feeder::new("v2", FindingsConfig::default());
        for i in order {
            f.feed_diffs("GET /x", 200, Some(200), &comparisons[*i], None);
        }
        let mut ids: Vec<String> = f
            .model
            .all_findings(true)
            .into_iter()
            .map(|x| x.id)
            .collect();
        ids.sort();
        ids
    };
    assert_eq!(ids(&[0, 1, 2]), ids(&[2, 1, 0]));
    // The id is a function of route, candidate, endpoint and cause, fixed across releases.
    let model = FindingsModel::new("api", "v2", FindingsConfig::default());
    let cause = Cause::Field {
        key: "/a".into(),
        kind: DiffKind::Changed,
        types: None,
    };
    let expected = {
        let mut h = Sha256::new();
        h.update(b"api\0v2\0GET /x\0changed /a\0");
        hex::encode(&h.finalize()[..8])
    };
    assert_eq!(model.cause_id("GET /x", &cause), expected);
    assert!(ids(&[0]).contains(&expected));
}

#[test]
fn two_candidates_have_their_own_findings() {
    let mut v2 = Feeder::new("v2", FindingsConfig::default());
    let mut v3 = Feeder::new("v3", FindingsConfig::default());
    for _ in 0..10 {
        v2.feed_diffs(
            ORDERS,
            200,
            Some(200),
            &[diff("/currency", DiffKind::Removed)],
            None,
        );
        v3.feed_diffs(
            ORDERS,
            200,
            Some(200),
            &[diff("/discount", DiffKind::Added)],
            None,
        );
        v2.feed_diffs(ORDERS, 200, Some(500), &[], None);
        v3.feed_diffs(ORDERS, 200, Some(500), &[], None);
    }
    let (a, b) = (v2.model.all_findings(false), v3.model.all_findings(false));
    let sorted = |f: &[Finding]| {
        let mut s: Vec<String> = f.iter().map(|x| x.summary.clone()).collect();
        s.sort();
        s
    };
    assert_eq!(
        sorted(&a),
        [
            "50 % of `GET /orders/{id}` answer 500 instead of 200",
            "`/currency` removed on 50 % of `GET /orders/{id}`"
        ]
    );
    assert_eq!(
        sorted(&b),
        [
            "50 % of `GET /orders/{id}` answer 500 instead of 200",
            "`/discount` added on 50 % of `GET /orders/{id}`"
        ]
    );
    assert!(a.iter().all(|x| x.candidate == "v2") && b.iter().all(|x| x.candidate == "v3"));
    assert_ne!(
        a[0].id, b[0].id,
        "the same cause on two candidates is two findings"
    );
}

#[test]
fn shadow_errors_are_high_findings() {
    let mut f = Feeder::new("v2", FindingsConfig::default());
    for i in 0..10 {
        let status = if i == 3 { None } else { Some(200) };
        f.feed_diffs("GET /x", 200, status, &[], None);
    }
    let findings = f.model.all_findings(false);
    assert_eq!(
        summaries(&findings),
        ["The candidate gave no answer on 1 in 10 `GET /x`"]
    );
    assert_eq!(findings[0].severity, Severity::High);
    assert!(findings[0].fields.is_empty());
}

#[test]
fn with_a_secondary_the_diffy_test_judges() {
    let mut f = Feeder::new("v2", FindingsConfig::default());
    let flaky = [diff("/price", DiffKind::Changed)];
    for i in 0..40 {
        // The secondary shows the same price flakiness and the same occasional 503.
        let cand: &[Difference] = if i % 4 == 0 { &flaky } else { &[] };
        let noise: &[Difference] = if i % 4 == 1 { &flaky } else { &[] };
        f.feed_diffs("GET /p", 200, Some(200), cand, Some(noise));
    }
    let status = [Difference {
        path: "status".into(),
        kind: DiffKind::Status,
        primary: Some(json!(200)),
        candidate: Some(json!(503)),
    }];
    for i in 0..10 {
        let candidate = if i % 5 == 0 { 503 } else { 200 };
        let noise: &[Difference] = if i % 5 == 1 { &status } else { &[] };
        f.feed_diffs("GET /q", 200, Some(candidate), &[], Some(noise));
    }
    assert_eq!(f.model.all_findings(false), []);
    let noise = f.model.all_findings(true);
    assert_eq!(noise.len(), 2);
    assert!(noise.iter().all(|x| !x.significant && x.noise_rate > 0.0));
    // Twice as often as the secondary: significant.
    for _ in 0..20 {
        f.feed_diffs("GET /p", 200, Some(200), &flaky, Some(&[]));
    }
    let findings = f.model.all_findings(false);
    assert_eq!(
        summaries(&findings),
        ["`/price` changed value on 50 % of `GET /p`"]
    );
}

#[test]
fn findings_are_ordered_by_severity_then_rate() {
    let mut f = Feeder::new("v2", FindingsConfig::default());
    for i in 0..12 {
        let mut diffs = vec![diff("/added", DiffKind::Added)];
        if i % 2 == 0 {
            diffs.push(diff("/changed_often", DiffKind::Changed));
        }
        if i % 3 == 0 {
            diffs.push(diff("/gone", DiffKind::Removed));
        }
        if i % 4 == 1 {
            diffs.push(diff("/changed_rarely", DiffKind::Changed));
        }
        f.feed_diffs("GET /y", 200, Some(200), &diffs, None);
    }
    let findings = f.model.findings("GET /y", false);
    let order: Vec<(Severity, &str)> = findings
        .iter()
        .map(|x| (x.severity, x.fields[0].as_str()))
        .collect();
    assert_eq!(
        order,
        [
            (Severity::High, "/gone"),
            (Severity::Medium, "/changed_often"),
            (Severity::Medium, "/changed_rarely"),
            (Severity::Low, "/added"),
        ]
    );
    assert_eq!(f.model.findings("GET /unknown", true), []);
    assert_eq!(f.model.endpoints(), ["GET /y"]);
}

#[test]
fn memory_is_bounded() {
    let config = FindingsConfig {
        limits: FindingsLimits {
            max_endpoints: 2,
            max_causes: 3,
            max_fields: 2,
            max_examples: 2,
        },
        ..FindingsConfig::default()
    };
    let mut f = Feeder::new("v2", config);
    f.feed_diffs("a", 200, Some(200), &[], None);
    f.feed_diffs("b", 200, Some(200), &[], None);
    f.feed_diffs("c", 200, Some(200), &[diff("/x", DiffKind::Changed)], None);
    assert_eq!(f.model.endpoints(), ["a", "b"]);
    assert_eq!(f.model.dropped(), 1);
    let many: Vec<Difference> = (0..10)
        .map(|i| diff(&format!("/f{i}"), DiffKind::Changed))
        .collect();
    let ids: Vec<i64> = (0..4)
        .map(|_| f.feed_diffs("a", 200, Some(200), &many, None))
        .collect();
    assert_eq!(f.model.dropped(), 1 + 4 * 7);
    let findings = f.model.findings("a", true);
    assert_eq!(findings.len(), 1, "three causes that always occur together");
    assert_eq!(findings[0].causes.len(), 3);
    assert_eq!(
        findings[0].example_ids,
        ids[2..],
        "the latest examples, oldest first"
    );
    assert_eq!(findings[0].fields.len(), 2);
    // A status change explaining many fields keeps only a few of them.
    f.feed_diffs("b", 200, Some(500), &many, None);
    assert_eq!(f.model.findings("b", false)[0].fields.len(), 2);
}

#[test]
fn a_comparison_names_the_causes_it_shows() {
    let mut f = Feeder::new("v2", FindingsConfig::default());
    let body = |v: Value| response(200, &v);
    let c = Comparison {
        id: 42,
        created_at_ms: 1_700_000_000_000,
        route: "api".into(),
        candidate: "v2".into(),
        endpoint: "GET /z".into(),
        request_id: "r".into(),
        verdict: Verdict::Different,
        request: Default::default(),
        primary: body(json!({"a": 1})),
        shadow: Some(body(json!({"a": "1"}))),
        error: None,
        differences: compare(&body(json!({"a": 1})), &body(json!({"a": "1"})), &f.cfg),
        noise: None,
    };
    f.model.observe(&Observation::from_comparison(&c));
    let findings = f.model.all_findings(false);
    assert_eq!(
        summaries(&findings),
        ["`/a` turned from a number into a string on every `GET /z`"]
    );
    assert_eq!(findings[0].example_ids, [42]);
    assert_eq!(
        (findings[0].first_seen_ms, findings[0].last_seen_ms),
        (1_700_000_000_000, 1_700_000_000_000)
    );
    assert_eq!(
        f.model.cause_ids(&Observation::from_comparison(&c)),
        findings[0].causes
    );
    // A stored shadow error carries no shadow response.
    let failed = Comparison {
        verdict: Verdict::ShadowError,
        shadow: None,
        differences: vec![],
        ..c
    };
    let ids = f.model.cause_ids(&Observation::from_comparison(&failed));
    f.model.observe(&Observation::from_comparison(&failed));
    let findings = f.model.all_findings(false);
    assert!(findings
        .iter()
        .any(|x| x.id == ids[0] && x.severity == Severity::High));
    let json = serde_json::to_value(&findings[0]).expect("serializable");
    assert_eq!(json["severity"], "high");
    assert_eq!(json["candidate"], "v2");
}
