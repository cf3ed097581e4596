//! Findings on real API responses (the GitHub REST API corpus in `tests/data/github-api`):
//! the same documents re-serialized (keys shuffled, compact or pretty, `\u`-escaped non-ASCII,
//! escaped slashes) show no finding; with fresh timestamps they show none without a secondary
//! either; a field the candidate drops is found on every endpoint that has it.

use std::path::PathBuf;

use serde_json::{Map, Value};
use umbra_diff::{
    compare, CompareConfig, EndpointGrouper, FindingsConfig, FindingsModel, Observation, Response,
    Severity, Verdict,
};

struct Doc {
    endpoint: String,
    status: u16,
    text: String,
}

fn corpus_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/github-api")
}

fn read(name: &str) -> String {
    let path = corpus_dir().join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

fn corpus() -> Vec<Doc> {
    let manifest: Value = serde_json::from_str(&read("manifest.json")).expect("manifest is JSON");
    let grouper = EndpointGrouper::new(Vec::<String>::new()).expect("no templates");
    let entries = manifest.as_array().expect("manifest is an array");
    let docs: Vec<Doc> = entries
        .iter()
        .map(|e| {
            let field = |k: &str| e[k].as_str().unwrap_or_else(|| panic!("manifest {k}: {e}"));
            Doc {
                endpoint: grouper.endpoint(field("method"), field("path")),
                status: e["status"]
                    .as_u64()
                    .and_then(|s| u16::try_from(s).ok())
                    .expect("status"),
                text: read(field("file")),
            }
        })
        .collect();
    assert_eq!(docs.len(), 55, "the corpus has 55 documents");
    docs
}

/// SplitMix64, seeded: a fixed shuffle per run.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) % n as u64) as usize
    }
}

/// The value with every object's keys in a shuffled order (arrays keep theirs).
fn shuffled(v: &Value, rng: &mut Rng) -> Value {
    match v {
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            for i in (1..entries.len()).rev() {
                entries.swap(i, rng.below(i + 1));
            }
            let out: Map<String, Value> = entries
                .into_iter()
                .map(|(k, v)| (k.clone(), shuffled(v, rng)))
                .collect();
            Value::Object(out)
        }
        Value::Array(items) => Value::Array(items.iter().map(|x| shuffled(x, rng)).collect()),
        other => other.clone(),
    }
}

/// Non-ASCII characters as `\uXXXX` escapes (UTF-16 units); they only occur inside strings.
fn escape_non_ascii(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_ascii() {
            out.push(c);
        } else {
            let mut units = [0u16; 2];
            for u in c.encode_utf16(&mut units) {
                out.push_str(&format!("\\u{u:04x}"));
            }
        }
    }
    out
}

/// Three re-serializations of a document: compact with escapes, pretty, and pretty with
/// escaped slashes (`/` only occurs inside strings in JSON).
fn reserialized(text: &str, rng: &mut Rng) -> Vec<String> {
    let v: Value = serde_json::from_str(text).expect("corpus document is JSON");
    let compact = serde_json::to_string(&shuffled(&v, rng)).expect("serializable");
    let pretty = serde_json::to_string_pretty(&shuffled(&v, rng)).expect("serializable");
    let slashes = serde_json::to_string_pretty(&shuffled(&v, rng)).expect("serializable");
    vec![
        escape_non_ascii(&compact),
        pretty,
        escape_non_ascii(&slashes).replace('/', "\\/"),
    ]
}

fn response(status: u16, body: &str) -> Response {
    Response {
        status,
        headers: vec![(
            "content-type".into(),
            "application/json; charset=utf-8".into(),
        )],
        body: body.as_bytes().to_vec(),
        ..Response::default()
    }
}

/// Compares the document with each variant and feeds the model; returns the differences seen.
fn feed(model: &mut FindingsModel, docs: &[Doc], variants: impl Fn(&Doc) -> Vec<String>) -> usize {
    let cfg = CompareConfig::default();
    let mut differences = 0;
    for (i, doc) in docs.iter().enumerate() {
        let primary = response(doc.status, &doc.text);
        for (j, text) in variants(doc).iter().enumerate() {
            let diffs = compare(&primary, &response(doc.status, text), &cfg);
            differences += diffs.len();
            model.observe(&Observation {
                id: (i * 10 + j) as i64,
                at_ms: 1_700_000_000_000,
                endpoint: &doc.endpoint,
                primary_status: doc.status,
                candidate_status: Some(doc.status),
                verdict: if diffs.is_empty() {
                    Verdict::Same
                } else {
                    Verdict::Different
                },
                differences: &diffs,
                noise: None,
            });
        }
    }
    differences
}

#[test]
fn the_corpus_reserialized_shows_no_finding() {
    let docs = corpus();
    let mut model = FindingsModel::new("github", "reserialized", FindingsConfig::default());
    let differences = feed(&mut model, &docs, |d| {
        reserialized(&d.text, &mut Rng(d.text.len() as u64))
    });
    assert_eq!(differences, 0, "the engine sees no difference");
    // The variants really are re-encoded: the search results' emoji as a surrogate pair.
    let search = docs
        .iter()
        .find(|d| d.text.contains('😭'))
        .expect("a doc with an emoji");
    let variants = reserialized(&search.text, &mut Rng(1));
    assert!(variants[0].contains("\\ud83d\\ude2d") && variants[2].contains("\\/"));
    assert_ne!(variants[1], search.text);
    assert_eq!(model.all_findings(true), [], "nothing, not even noise");
    assert!(model.endpoints().len() > 20, "{:?}", model.endpoints());
}

/// `YYYY-MM-DDTHH:MM:SS…` strings with their seconds moved on by one.
fn later(v: &Value) -> Value {
    match v {
        Value::String(s)
            if s.len() >= 20 && s.as_bytes()[10] == b'T' && s.as_bytes()[19] != b'.' =>
        {
            let secs: u32 = s[17..19].parse().unwrap_or(0);
            Value::String(format!("{}{:02}{}", &s[..17], (secs + 1) % 60, &s[19..]))
        }
        Value::Object(map) => {
            Value::Object(map.iter().map(|(k, x)| (k.clone(), later(x))).collect())
        }
        Value::Array(items) => Value::Array(items.iter().map(later).collect()),
        other => other.clone(),
    }
}

fn with_later_times(doc: &Doc) -> Vec<String> {
    let v: Value = serde_json::from_str(&doc.text).expect("corpus document is JSON");
    let moved = shuffled(&later(&v), &mut Rng(doc.text.len() as u64));
    vec![serde_json::to_string(&moved).expect("serializable")]
}

#[test]
fn fresh_timestamps_are_noise_without_a_secondary() {
    let docs = corpus();
    let mut model = FindingsModel::new("github", "later", FindingsConfig::default());
    let differences = feed(&mut model, &docs, with_later_times);
    assert!(differences > 50, "the timestamps differ: {differences}");
    assert_eq!(model.all_findings(false), []);
    let noise = model.all_findings(true);
    assert!(!noise.is_empty() && noise.iter().all(|f| !f.significant));
    // The route's switch turns type-aware noise off: the same run is all findings.
    let off = FindingsConfig {
        typed_noise: false,
        ..FindingsConfig::default()
    };
    let mut strict = FindingsModel::new("github", "later", off);
    feed(&mut strict, &docs, with_later_times);
    assert_eq!(strict.all_findings(false).len(), noise.len());
}

#[test]
fn a_dropped_field_is_found_on_every_endpoint_that_has_it() {
    let docs = corpus();
    let without_url = |doc: &Doc| {
        let mut v: Value = serde_json::from_str(&doc.text).expect("corpus document is JSON");
        v.as_object_mut().map(|o| o.shift_remove("url"));
        vec![serde_json::to_string(&v).expect("serializable")]
    };
    let with_url: std::collections::BTreeSet<&str> = docs
        .iter()
        .filter(|d| serde_json::from_str::<Value>(&d.text).is_ok_and(|v| v.get("url").is_some()))
        .map(|d| d.endpoint.as_str())
        .collect();
    let mut model = FindingsModel::new("github", "no-url", FindingsConfig::default());
    feed(&mut model, &docs, without_url);
    let findings = model.all_findings(false);
    let found: std::collections::BTreeSet<&str> =
        findings.iter().map(|f| f.endpoint.as_str()).collect();
    assert_eq!(found, with_url);
    assert!(findings
        .iter()
        .all(|f| f.severity == Severity::High && f.fields == ["/url"]));
}
