//! Redaction of secrets before anything is persisted or shown: header values, JSON body
//! values at configured paths, and the values carried by differences. Shadow side, pure.
//!
//! Redacted values become the string `"[redacted]"`. `Authorization`, `Proxy-Authorization`,
//! `Cookie`, `Set-Cookie` and `X-Api-Key` are always redacted; routes add headers and JSON
//! Pointer patterns (a pattern selects the value at that path, whole subtree included).

use serde_json::Value;

use crate::model::{Comparison, Difference, Request, Response};
use crate::pointer::{split_pointer, PointerPattern};

/// The replacement for every redacted value.
pub const REDACTED: &str = "[redacted]";

/// Headers whose values are always redacted (lowercase).
pub const DEFAULT_REDACTED_HEADERS: &[&str] = &[
    "authorization",
    "proxy-authorization",
    "cookie",
    "set-cookie",
    "x-api-key",
];

/// Whether a header (any case) is redacted by default or by `extra`.
pub fn is_secret_header(name: &str, extra: &[String]) -> bool {
    DEFAULT_REDACTED_HEADERS
        .iter()
        .any(|h| h.eq_ignore_ascii_case(name))
        || extra.iter().any(|h| h.eq_ignore_ascii_case(name))
}

/// Replaces the values of secret headers (defaults plus `extra`, any case) with `[redacted]`.
pub fn redact_headers(headers: &mut [(String, String)], extra: &[String]) {
    for (name, value) in headers.iter_mut() {
        if is_secret_header(name, extra) {
            *value = REDACTED.to_owned();
        }
    }
}

/// Replaces values at matching paths in a JSON body with `"[redacted]"`. `None` when the
/// body is not JSON. When nothing matches, the body is returned byte for byte unchanged.
pub fn redact_json(body: &[u8], paths: &[PointerPattern]) -> Option<Vec<u8>> {
    let body_text = body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(body);
    let mut value: Value = serde_json::from_slice(body_text).ok()?;
    if !redact_value(&mut value, &mut Vec::new(), paths) {
        return Some(body.to_vec());
    }
    serde_json::to_vec(&value).ok()
}

/// Redacts, in place, every node of `value` (which sits at `path`) that a pattern selects.
/// Returns whether anything was replaced.
fn redact_value(value: &mut Value, path: &mut Vec<String>, patterns: &[PointerPattern]) -> bool {
    if patterns.is_empty() {
        return false;
    }
    if patterns.iter().any(|p| p.matches(path)) {
        *value = Value::String(REDACTED.to_owned());
        return true;
    }
    // No pattern can match below this depth.
    if !patterns.iter().any(|p| p.depth() > path.len()) {
        return false;
    }
    let mut changed = false;
    match value {
        Value::Object(map) => {
            for (k, v) in map.iter_mut() {
                path.push(k.clone());
                changed |= redact_value(v, path, patterns);
                path.pop();
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter_mut().enumerate() {
                path.push(i.to_string());
                changed |= redact_value(v, path, patterns);
                path.pop();
            }
        }
        _ => {}
    }
    changed
}

fn redact_option(value: &mut Option<Value>) {
    if let Some(v) = value {
        *v = Value::String(REDACTED.to_owned());
    }
}

/// Whether a string looks like JSON (starts with `{` or `[`).
fn looks_like_json(text: &str) -> bool {
    matches!(text.trim_start().as_bytes().first(), Some(b'{' | b'['))
}

/// Redacts a whole-body value (of a `body` text difference or a `""` type difference):
/// JSON values and JSON text are redacted by path; text that looks like JSON but does not
/// parse (a truncated body) is replaced entirely, since its secrets cannot be located.
fn redact_body_value(value: &mut Option<Value>, paths: &[PointerPattern]) {
    let Some(v) = value else { return };
    match v {
        Value::String(text) => {
            if !looks_like_json(text) {
                return;
            }
            match redact_json(text.as_bytes(), paths) {
                Some(bytes) => *text = String::from_utf8_lossy(&bytes).into_owned(),
                None => *text = REDACTED.to_owned(),
            }
        }
        other => {
            redact_value(other, &mut Vec::new(), paths);
        }
    }
}

/// Makes sure no secret survives in differences: values of secret-header differences, of
/// body differences at or under a redacted path, and of redacted paths inside reported
/// subtrees (an `added` object that contains a password) become `[redacted]`.
pub fn redact_differences(
    diffs: &mut [Difference],
    headers_extra: &[String],
    paths: &[PointerPattern],
) {
    for d in diffs.iter_mut() {
        if let Some(name) = d.path.strip_prefix("header:") {
            if is_secret_header(name, headers_extra) {
                redact_option(&mut d.primary);
                redact_option(&mut d.candidate);
            }
            continue;
        }
        if paths.is_empty() || d.path == "status" {
            continue;
        }
        if d.path == "body" || d.path.is_empty() {
            redact_body_value(&mut d.primary, paths);
            redact_body_value(&mut d.candidate, paths);
            continue;
        }
        let Ok(segments) = split_pointer(&d.path) else {
            continue;
        };
        if paths.iter().any(|p| p.matches_at_or_under(&segments)) {
            redact_option(&mut d.primary);
            redact_option(&mut d.candidate);
            continue;
        }
        for value in [&mut d.primary, &mut d.candidate].into_iter().flatten() {
            let mut path = segments.clone();
            redact_value(value, &mut path, paths);
        }
    }
}

fn redact_body(body: &mut Vec<u8>, paths: &[PointerPattern]) {
    if paths.is_empty() {
        return;
    }
    if let Some(redacted) = redact_json(body, paths) {
        *body = redacted;
    }
}

/// Redacts a request's headers and (JSON) body.
pub fn redact_request(req: &mut Request, headers_extra: &[String], paths: &[PointerPattern]) {
    redact_headers(&mut req.headers, headers_extra);
    redact_body(&mut req.body, paths);
}

/// Redacts a response's headers and (JSON) body.
pub fn redact_response(resp: &mut Response, headers_extra: &[String], paths: &[PointerPattern]) {
    redact_headers(&mut resp.headers, headers_extra);
    redact_body(&mut resp.body, paths);
}

/// Redacts everything in a comparison that could hold a secret: the request, both responses,
/// the differences and the noise differences. Call it before the comparison leaves the
/// data plane.
pub fn redact_comparison(c: &mut Comparison, headers_extra: &[String], paths: &[PointerPattern]) {
    redact_request(&mut c.request, headers_extra, paths);
    redact_response(&mut c.primary, headers_extra, paths);
    if let Some(shadow) = c.shadow.as_mut() {
        redact_response(shadow, headers_extra, paths);
    }
    redact_differences(&mut c.differences, headers_extra, paths);
    if let Some(noise) = c.noise.as_mut() {
        redact_differences(noise, headers_extra, paths);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compare::{compare, CompareConfig};
    use crate::model::{DiffKind, Verdict};
    use serde_json::json;

    fn pats(list: &[&str]) -> Vec<PointerPattern> {
        list.iter()
            .map(|p| PointerPattern::parse(p).expect("pattern"))
            .collect()
    }

    fn hdrs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn default_and_extra_headers_are_redacted_case_insensitively() {
        let mut h = hdrs(&[
            ("Authorization", "Bearer abc"),
            ("cookie", "a=b"),
            ("SET-COOKIE", "s=1"),
            ("x-api-key", "k"),
            ("proxy-authorization", "p"),
            ("X-Secret", "s"),
            ("accept", "json"),
        ]);
        redact_headers(&mut h, &["x-secret".to_string()]);
        let values: Vec<&str> = h.iter().map(|(_, v)| v.as_str()).collect();
        assert_eq!(
            values,
            vec![REDACTED, REDACTED, REDACTED, REDACTED, REDACTED, REDACTED, "json"]
        );
        assert!(is_secret_header("X-API-KEY", &[]));
        assert!(!is_secret_header("x-secret", &[]));
    }

    #[test]
    fn json_paths_are_redacted_with_wildcards() {
        let body =
            br#"{"user":{"name":"a","password":"p"},"tokens":[{"v":"t1"},{"v":"t2"}],"n":1}"#;
        let out = redact_json(body, &pats(&["/user/password", "/tokens/*/v"])).unwrap();
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(
            v,
            json!({"user":{"name":"a","password":REDACTED},"tokens":[{"v":REDACTED},{"v":REDACTED}],"n":1})
        );
        // Key order is preserved.
        assert!(String::from_utf8(out).unwrap().starts_with("{\"user\""));
    }

    #[test]
    fn whole_subtrees_and_root_can_be_redacted() {
        let out = redact_json(br#"{"secret":{"a":[1,2]}}"#, &pats(&["/secret"])).unwrap();
        assert_eq!(
            serde_json::from_slice::<Value>(&out).unwrap(),
            json!({"secret": REDACTED})
        );
        let out = redact_json(b"[1]", &pats(&[""])).unwrap();
        assert_eq!(out, b"\"[redacted]\"");
    }

    #[test]
    fn non_json_is_none_and_no_match_is_unchanged() {
        assert!(redact_json(b"<html>", &pats(&["/a"])).is_none());
        assert!(redact_json(b"", &pats(&["/a"])).is_none());
        let body = b"{ \"a\" : 1 }";
        assert_eq!(redact_json(body, &pats(&["/b"])).unwrap(), body);
        assert_eq!(redact_json(body, &[]).unwrap(), body);
    }

    fn d(path: &str, kind: DiffKind, p: Option<Value>, c: Option<Value>) -> Difference {
        Difference {
            path: path.into(),
            kind,
            primary: p,
            candidate: c,
        }
    }

    #[test]
    fn differences_of_secret_headers_are_redacted() {
        let mut diffs = vec![
            d(
                "header:set-cookie",
                DiffKind::Header,
                Some(json!("sid")),
                None,
            ),
            d(
                "header:x-token",
                DiffKind::Header,
                Some(json!("a")),
                Some(json!("b")),
            ),
            d(
                "header:x-other",
                DiffKind::Header,
                Some(json!("a")),
                Some(json!("b")),
            ),
        ];
        redact_differences(&mut diffs, &["X-Token".to_string()], &[]);
        assert_eq!(diffs[0].primary, Some(json!(REDACTED)));
        assert_eq!(diffs[0].candidate, None, "absence is not a secret");
        assert_eq!(diffs[1].candidate, Some(json!(REDACTED)));
        assert_eq!(diffs[2].candidate, Some(json!("b")));
    }

    #[test]
    fn differences_at_under_and_above_redacted_paths() {
        let paths = pats(&["/user/password", "/cards/*/number"]);
        let mut diffs = vec![
            d(
                "/user/password",
                DiffKind::Changed,
                Some(json!("p1")),
                Some(json!("p2")),
            ),
            d(
                "/cards/0/number/x",
                DiffKind::Changed,
                Some(json!("1")),
                Some(json!("2")),
            ),
            d(
                "/user",
                DiffKind::Added,
                None,
                Some(json!({"name":"a","password":"p3"})),
            ),
            d(
                "",
                DiffKind::Type,
                Some(json!({"cards":[{"number":"4111"}]})),
                Some(json!("<html>4111</html>")),
            ),
            d(
                "/user/name",
                DiffKind::Changed,
                Some(json!("a")),
                Some(json!("b")),
            ),
            d(
                "status",
                DiffKind::Status,
                Some(json!(200)),
                Some(json!(500)),
            ),
        ];
        redact_differences(&mut diffs, &[], &paths);
        assert_eq!(diffs[0].primary, Some(json!(REDACTED)));
        assert_eq!(diffs[0].candidate, Some(json!(REDACTED)));
        assert_eq!(diffs[1].candidate, Some(json!(REDACTED)));
        assert_eq!(
            diffs[2].candidate,
            Some(json!({"name":"a","password":REDACTED}))
        );
        assert_eq!(
            diffs[3].primary,
            Some(json!({"cards":[{"number":REDACTED}]}))
        );
        assert_eq!(
            diffs[3].candidate,
            Some(json!("<html>4111</html>")),
            "text is not JSON"
        );
        assert_eq!(diffs[4].candidate, Some(json!("b")));
        assert_eq!(diffs[5].candidate, Some(json!(500)));
    }

    #[test]
    fn text_body_differences_holding_json_are_redacted() {
        let paths = pats(&["/token"]);
        let mut diffs = vec![d(
            "body",
            DiffKind::Text,
            Some(json!("{\"token\":\"s1\",\"a\":1}")),
            Some(json!("{\"token\":\"s2\",\"a\":")),
        )];
        redact_differences(&mut diffs, &[], &paths);
        let Some(Value::String(p)) = &diffs[0].primary else {
            panic!("string expected")
        };
        assert!(!p.contains("s1") && p.contains(REDACTED), "{p}");
        // Truncated JSON cannot be redacted by path: replaced whole.
        assert_eq!(diffs[0].candidate, Some(json!(REDACTED)));
    }

    #[test]
    fn no_secret_survives_a_full_comparison() {
        let secret_body = |pw: &str| {
            format!(r#"{{"user":{{"id":1,"password":"{pw}"}},"items":[{{"card":"{pw}-card"}}]}}"#)
        };
        let resp = |pw: &str, cookie: &str| Response {
            status: 200,
            headers: hdrs(&[
                ("content-type", "application/json"),
                ("set-cookie", cookie),
                ("x-session", pw),
            ]),
            body: secret_body(pw).into_bytes(),
            ..Response::default()
        };
        let primary = resp("hunter2", "sid=hunter2");
        let mut shadow = resp("swordfish", "other=swordfish");
        shadow.body = br#"{"user":{"id":1,"password":"swordfish","extra":{"password":"swordfish"}},"items":[]}"#.to_vec();
        let paths = pats(&[
            "/user/password",
            "/user/*/password",
            "/items/*/card",
            "/password",
        ]);
        let extra = vec!["x-session".to_string()];
        let differences = compare(&primary, &shadow, &CompareConfig::default());
        assert!(!differences.is_empty());
        let mut c = Comparison {
            id: 0,
            created_at_ms: 0,
            route: "r".into(),
            endpoint: "GET /".into(),
            request_id: "1".into(),
            verdict: Verdict::Different,
            request: Request {
                method: "GET".into(),
                uri: "/".into(),
                host: "h".into(),
                headers: hdrs(&[("authorization", "Bearer hunter2")]),
                body: br#"{"password":"hunter2"}"#.to_vec(),
            },
            primary,
            shadow: Some(shadow),
            error: None,
            noise: Some(differences.clone()),
            differences,
        };
        redact_comparison(&mut c, &extra, &paths);
        let stored = serde_json::to_string(&c).unwrap();
        for secret in ["hunter2", "swordfish"] {
            assert!(!stored.contains(secret), "{secret} leaked: {stored}");
        }
    }
}
