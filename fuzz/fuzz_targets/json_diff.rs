//! Fuzzes the comparison engine (`umbra-diff`): its JSON tape parser and `compare` over two
//! arbitrary bodies. Input: a flags byte, then the primary's body, a NUL byte, and the
//! candidate's body. Flags: bits 0 and 1 label the bodies `application/json`, bits 2-3 pick
//! the comparison rules, bit 4 makes the statuses differ.
//!
//! Invariants:
//! - the parser accepts exactly what serde_json accepts (a leading BOM aside) and reads the
//!   same value, floats up to serde_json's own rounding;
//! - a response compared with itself, or with its JSON written out again, has no difference;
//! - structural equality is reflexive, symmetric and agrees with the structural hash;
//! - `compare` reports no more than its cap; whether it finds a difference does not depend on
//!   which side is the primary; with no rules, two JSON bodies differ exactly when they are
//!   not structurally equal;
//! - each body difference points (JSON Pointer) at the values it reports.
//!
//! Documents that repeat an object key are left out of the checks that assume a key names
//! one value (the engine matches repeated keys by their first occurrence, a `Value` keeps the
//! last).
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use umbra_diff::fuzzing::{has_duplicate_keys, json_value, structural};
use umbra_diff::{compare, CompareConfig, DiffKind, Difference, PointerPattern, Response};

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let (a, b) = match rest.iter().position(|&x| x == 0) {
        Some(i) => (&rest[..i], &rest[i + 1..]),
        None => (rest, &b""[..]),
    };
    let cfg = rules(flags >> 2 & 3);
    let primary = response(a, flags & 1 == 1, 200);
    let candidate = response(b, flags & 2 == 2, if flags & 16 == 0 { 200 } else { 500 });
    for body in [a, b] {
        parser_agrees_with_serde_json(body);
        itself_and_rewritten(body, &cfg);
    }
    pair(&primary, &candidate, &cfg);
});

fn response(body: &[u8], json: bool, status: u16) -> Response {
    let mut headers = vec![("x-app".to_owned(), "1".to_owned())];
    if json {
        headers.push(("content-type".to_owned(), "application/json".to_owned()));
    }
    Response {
        status,
        headers,
        body: body.to_vec(),
        ..Response::default()
    }
}

fn rules(pick: u8) -> CompareConfig {
    let patterns = |ps: &[&str]| -> Vec<PointerPattern> {
        ps.iter()
            .map(|p| PointerPattern::parse(p).expect("a valid pattern"))
            .collect()
    };
    let mut cfg = CompareConfig::default();
    match pick {
        0 => {}
        1 => cfg.numeric_tolerance = Some(0.01),
        2 => cfg.unordered = patterns(&["", "/*", "/*/*"]),
        _ => {
            cfg.ignore = patterns(&["/a", "/*/id"]);
            cfg.max_differences = 3;
        }
    }
    cfg
}

fn parser_agrees_with_serde_json(body: &[u8]) {
    let ours = json_value(body);
    let unmarked = body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(body);
    let theirs = serde_json::from_slice::<Value>(unmarked).ok();
    assert_eq!(
        ours.is_some(),
        theirs.is_some(),
        "accepts as serde_json does: {:?} (ours {ours:?})",
        String::from_utf8_lossy(body)
    );
    if let (Some(x), Some(y)) = (&ours, &theirs) {
        assert!(same_up_to_float_rounding(x, y), "{x} vs serde_json's {y}");
    }
}

fn itself_and_rewritten(body: &[u8], cfg: &CompareConfig) {
    let r = response(body, false, 200);
    assert_eq!(compare(&r, &r, cfg), [], "a response equals itself");
    let Some(value) = json_value(body) else {
        return;
    };
    assert_eq!(structural(body, body).map(|s| s.0), Some(true));
    if has_duplicate_keys(body) {
        return;
    }
    let rewritten = serde_json::to_vec_pretty(&value).expect("a Value serializes");
    let other = response(&rewritten, true, 200);
    let r = response(body, true, 200);
    assert_eq!(
        compare(&r, &other, cfg),
        [],
        "JSON written out again is the same document: {:?}",
        String::from_utf8_lossy(&rewritten)
    );
}

fn pair(primary: &Response, candidate: &Response, cfg: &CompareConfig) {
    let forward = compare(primary, candidate, cfg);
    assert!(forward.len() <= cfg.max_differences);
    if primary.status != candidate.status {
        assert_eq!(forward.first().map(|d| d.kind), Some(DiffKind::Status));
    }
    let (a, b) = (&primary.body[..], &candidate.body[..]);
    let dupes = json_value(a).is_some() && has_duplicate_keys(a)
        || json_value(b).is_some() && has_duplicate_keys(b);
    if dupes {
        return;
    }
    let backward = compare(candidate, primary, cfg);
    assert_eq!(
        forward.is_empty(),
        backward.is_empty(),
        "a difference one way is one the other way: {forward:?} / {backward:?}"
    );
    if let Some((same, ha, hb)) = structural(a, b) {
        assert_eq!(structural(b, a).map(|s| s.0), Some(same), "symmetric");
        if same {
            assert_eq!(ha, hb, "structurally equal documents hash alike");
        }
        let plain = *cfg == CompareConfig::default();
        let labelled = |r: &Response| r.header("content-type").is_some();
        if plain && labelled(primary) && labelled(candidate) && primary.status == candidate.status {
            assert_eq!(forward.is_empty(), same, "{forward:?}");
        }
        if cfg.unordered.is_empty() {
            let (pv, cv) = (
                json_value(a).expect("parsed"),
                json_value(b).expect("parsed"),
            );
            for d in &forward {
                points_at(d, &pv, &cv);
            }
        }
    }
}

/// A body difference's pointer leads to the values it reports (in the document each side's
/// value comes from), or for a length difference to the arrays whose lengths it reports.
fn points_at(d: &Difference, primary: &Value, candidate: &Value) {
    if !(d.path.is_empty() || d.path.starts_with('/')) {
        return;
    }
    if d.kind == DiffKind::Length {
        // The values are the arrays' lengths.
        let len = |doc: &Value| doc.pointer(&d.path).and_then(Value::as_array).map(Vec::len);
        assert_eq!(
            len(primary).map(Value::from).as_ref(),
            d.primary.as_ref(),
            "{d:?}"
        );
        assert_eq!(
            len(candidate).map(Value::from).as_ref(),
            d.candidate.as_ref(),
            "{d:?}"
        );
        return;
    }
    if let Some(v) = &d.primary {
        assert_eq!(primary.pointer(&d.path), Some(v), "{d:?}");
    }
    if let Some(v) = &d.candidate {
        assert_eq!(candidate.pointer(&d.path), Some(v), "{d:?}");
    }
}

/// Float conversion may differ from serde_json's default (non-roundtrip) algorithm in the
/// last bits; everything else must be identical.
fn same_up_to_float_rounding(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) if x.is_f64() || y.is_f64() => {
            let (x, y) = (
                x.as_f64().unwrap_or(f64::NAN),
                y.as_f64().unwrap_or(f64::NAN),
            );
            x == y
                || (x - y).abs() <= 1e-15 * x.abs().max(y.abs())
                || (x.abs().max(y.abs()) < f64::MIN_POSITIVE && (x - y).abs() < 1e-320)
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len()
                && x.iter()
                    .zip(y)
                    .all(|(a, b)| same_up_to_float_rounding(a, b))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .zip(y)
                    .all(|((ka, va), (kb, vb))| ka == kb && same_up_to_float_rounding(va, vb))
        }
        _ => a == b,
    }
}
