//! Property tests of the comparison engine: it never panics on arbitrary input, never reports
//! more than the cap, and finds nothing between a document and itself (byte-identical,
//! reformatted, or with arrays reversed under `unordered` rules).

use proptest::prelude::*;
use serde_json::{Map, Value};
use umbra_diff::{compare, CompareConfig, PointerPattern, Response};

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        (-1e12f64..1e12).prop_map(Value::from),
        "[a-z~/ *0-9é\"\\\\]{0,8}".prop_map(Value::String),
    ];
    leaf.prop_recursive(5, 96, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            prop::collection::vec(("[a-c0-9~/*]{0,3}", inner), 0..8)
                .prop_map(|entries| Value::Object(entries.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

fn pattern() -> impl Strategy<Value = PointerPattern> {
    prop::collection::vec(prop_oneof!["[a-c0-9]{0,2}", Just("*".to_string())], 0..4).prop_map(
        |segs| {
            PointerPattern::parse(&umbra_diff::pointer::pointer_from_segments(segs))
                .expect("rendered pointers are valid")
        },
    )
}

fn config() -> impl Strategy<Value = CompareConfig> {
    (
        prop::collection::vec(pattern(), 0..3),
        prop::collection::vec(pattern(), 0..3),
        prop::option::of(0.0f64..0.5),
        0usize..50,
    )
        .prop_map(
            |(ignore, unordered, numeric_tolerance, max)| CompareConfig {
                ignore,
                unordered,
                numeric_tolerance,
                max_differences: max,
                ..CompareConfig::default()
            },
        )
}

fn response(status: u16, body: Vec<u8>, json: bool) -> Response {
    let ct = if json {
        "application/json"
    } else {
        "text/plain"
    };
    Response {
        status,
        headers: vec![("content-type".into(), ct.into())],
        body,
        ..Response::default()
    }
}

fn reverse_arrays(v: &Value) -> Value {
    match v {
        Value::Array(items) => Value::Array(items.iter().rev().map(reverse_arrays).collect()),
        Value::Object(map) => Value::Object(
            map.iter()
                .rev()
                .map(|(k, v)| (k.clone(), reverse_arrays(v)))
                .collect(),
        ),
        other => other.clone(),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn a_document_equals_itself(v in json_value(), cfg in config()) {
        let body = serde_json::to_vec(&v).unwrap();
        let r = response(200, body, true);
        prop_assert!(compare(&r, &r, &cfg).is_empty());
        // Same document, other bytes: the structural path must agree.
        let pretty = response(200, serde_json::to_vec_pretty(&v).unwrap(), true);
        let diffs = compare(&r, &pretty, &cfg);
        prop_assert!(diffs.is_empty(), "{:?}", diffs);
    }

    #[test]
    fn unordered_everywhere_ignores_array_and_key_order(v in json_value()) {
        let unordered = ["", "/*", "/*/*", "/*/*/*", "/*/*/*/*", "/*/*/*/*/*", "/*/*/*/*/*/*"]
            .iter()
            .map(|p| PointerPattern::parse(p).unwrap())
            .collect();
        let cfg = CompareConfig { unordered, ..CompareConfig::default() };
        let a = response(200, serde_json::to_vec(&v).unwrap(), true);
        let b = response(200, serde_json::to_vec(&reverse_arrays(&v)).unwrap(), true);
        let diffs = compare(&a, &b, &cfg);
        prop_assert!(diffs.is_empty(), "{:?}", diffs);
    }

    #[test]
    fn any_two_documents_compare_within_the_cap(a in json_value(), b in json_value(), cfg in config()) {
        let ra = response(200, serde_json::to_vec(&a).unwrap(), true);
        let rb = response(500, serde_json::to_vec(&b).unwrap(), true);
        let diffs = compare(&ra, &rb, &cfg);
        prop_assert!(diffs.len() <= cfg.max_differences);
        if cfg.max_differences > 0 {
            prop_assert_eq!(&diffs[0].path, "status");
        }
        for d in &diffs {
            prop_assert!(d.primary.is_some() || d.candidate.is_some());
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(
        a in prop::collection::vec(any::<u8>(), 0..256),
        b in prop::collection::vec(any::<u8>(), 0..256),
        ja in any::<bool>(),
        jb in any::<bool>(),
        cfg in config(),
    ) {
        let ra = response(200, a.clone(), ja);
        let rb = response(200, b, jb);
        let diffs = compare(&ra, &rb, &cfg);
        prop_assert!(diffs.len() <= cfg.max_differences);
        prop_assert!(compare(&ra, &response(200, a, ja), &cfg).is_empty());
    }
}
