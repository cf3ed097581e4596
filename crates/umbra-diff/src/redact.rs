//! Redaction of secrets before anything is persisted or shown: header values, URL query and
//! form parameters, JSON body values, and the values carried by differences. Shadow side, pure.
//!
//! Redacted values become the string `"[redacted]"`. By default umbra redacts the headers,
//! parameters and JSON keys *named* like secrets (the rules are in [`crate::secret`]):
//! `Authorization`, `Cookie`, `X-Auth-Token`, `?access_token=`, `{"password": ...}` and so on,
//! in the request (its URI, headers and body), in both responses and in differences, and
//! secret parameters of URLs found in header values and JSON strings (`Location`, `Referer`,
//! a pre-signed download link). Routes add headers, names and JSON Pointer patterns (a pattern
//! selects the value at that path, whole subtree included); see [`Redaction`].
//!
//! Comparison itself sees the real values: redaction runs on the finished comparison.

use serde_json::Value;

use crate::json_text::{looks_like_json, redact_json_text};
use crate::model::{Comparison, Difference, Request, Response};
use crate::params::{redact_form, redact_url};
use crate::pointer::{split_pointer, PointerPattern};
use crate::secret::SecretNames;

/// The replacement for every redacted value.
pub const REDACTED: &str = "[redacted]";

/// The headers the design names as always redacted (lowercase). The default rules in
/// [`crate::secret`] cover these and many more (`X-Auth-Token`, `X-Goog-Api-Key`, ...).
pub const DEFAULT_REDACTED_HEADERS: &[&str] = &[
    "authorization",
    "proxy-authorization",
    "cookie",
    "set-cookie",
    "x-api-key",
];

/// What a route adds to umbra's default redaction. The validated config holds one per route.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Redaction {
    /// Extra header names, lowercase.
    pub headers: Vec<String>,
    /// Extra names of query and form parameters and JSON keys, squashed (see
    /// [`crate::secret::squash_name`]): `session_id` matches `sessionId` and `Session-Id`.
    pub names: Vec<String>,
    /// JSON Pointer patterns whose values (whole subtree) are redacted.
    pub paths: Vec<PointerPattern>,
}

impl Redaction {
    /// Redacts everything in a comparison that could hold a secret, by the default rules and
    /// this route's additions. Call it before the comparison leaves the data plane.
    pub fn apply(&self, c: &mut Comparison) {
        redact_comparison_by(c, &self.rules());
    }

    fn rules(&self) -> Rules<'_> {
        Rules {
            names: SecretNames {
                headers: &self.headers,
                names: &self.names,
            },
            paths: &self.paths,
        }
    }
}

/// The rules in force for one redaction: secret names (defaults plus extras) and JSON paths.
#[derive(Clone, Copy)]
struct Rules<'a> {
    names: SecretNames<'a>,
    paths: &'a [PointerPattern],
}

impl<'a> Rules<'a> {
    fn new(headers_extra: &'a [String], paths: &'a [PointerPattern]) -> Self {
        Rules {
            names: SecretNames {
                headers: headers_extra,
                names: &[],
            },
            paths,
        }
    }
}

/// Whether a header (any case) is a secret by the default rules or `extra`.
pub fn is_secret_header(name: &str, extra: &[String]) -> bool {
    SecretNames {
        headers: extra,
        names: &[],
    }
    .header(name)
}

/// Replaces the values of secret headers (default rules plus `extra`, any case) with
/// `[redacted]`, and redacts secret parameters of URLs in the other headers' values.
pub fn redact_headers(headers: &mut [(String, String)], extra: &[String]) {
    redact_headers_by(
        headers,
        &SecretNames {
            headers: extra,
            names: &[],
        },
    );
}

fn redact_headers_by(headers: &mut [(String, String)], names: &SecretNames) {
    for (name, value) in headers.iter_mut() {
        if names.header(name) {
            *value = REDACTED.to_owned();
        } else if let Some(v) = redact_url(value, names) {
            *value = v;
        }
    }
}

/// Replaces values at matching paths in a JSON body with `"[redacted]"`. `None` when the
/// body is not JSON. When nothing matches, the body is returned byte for byte unchanged.
/// (Paths only: the default rules by name apply through [`redact_request`] and friends.)
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

/// Redacts, in place, the values of secret-named keys anywhere in `value` and the secret
/// parameters of URLs in its strings.
fn redact_value_names(value: &mut Value, names: &SecretNames) {
    match value {
        Value::Object(map) => {
            for (k, v) in map.iter_mut() {
                if names.key(k) {
                    redact_secret(v);
                } else {
                    redact_value_names(v, names);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|v| redact_value_names(v, names)),
        Value::String(text) => {
            if let Some(r) = redact_url(text, names) {
                *text = r;
            }
        }
        _ => {}
    }
}

/// Replaces a secret-named value, keeping those that hide nothing (`null`, booleans, `""`).
fn redact_secret(value: &mut Value) {
    match value {
        Value::Null | Value::Bool(_) => {}
        Value::String(s) if s.is_empty() => {}
        _ => *value = Value::String(REDACTED.to_owned()),
    }
}

fn redact_option(value: &mut Option<Value>) {
    if let Some(v) = value {
        *v = Value::String(REDACTED.to_owned());
    }
}

/// Redacts a whole-body value (of a `body` text difference or a `""` type difference):
/// JSON values and JSON text are redacted by path and by name; text that looks like JSON but
/// does not parse (a truncated body) is replaced entirely when paths are set, since their
/// secrets cannot be located. Text of a form body (`form`) is redacted by parameter name.
fn redact_body_value(value: &mut Option<Value>, rules: &Rules, form: bool) {
    let Some(v) = value else { return };
    match v {
        Value::String(text) => {
            if looks_like_json(text.as_bytes()) {
                if !rules.paths.is_empty() {
                    match redact_json(text.as_bytes(), rules.paths) {
                        Some(bytes) => *text = String::from_utf8_lossy(&bytes).into_owned(),
                        None => {
                            *text = REDACTED.to_owned();
                            return;
                        }
                    }
                }
                if let Some(bytes) = redact_json_text(text.as_bytes(), &rules.names) {
                    *text = String::from_utf8_lossy(&bytes).into_owned();
                }
            } else if form {
                if let Some(bytes) = redact_form(text.as_bytes(), &rules.names) {
                    *text = String::from_utf8_lossy(&bytes).into_owned();
                }
            }
        }
        other => {
            redact_value(other, &mut Vec::new(), rules.paths);
            redact_value_names(other, &rules.names);
        }
    }
}

/// Makes sure no secret survives in differences: values of secret-header differences, of
/// body differences at or under a redacted path or a secret-named key, of redacted paths and
/// secret keys inside reported subtrees (an `added` object that contains a password), and
/// secret URL parameters in header values and strings become `[redacted]`.
pub fn redact_differences(
    diffs: &mut [Difference],
    headers_extra: &[String],
    paths: &[PointerPattern],
) {
    redact_differences_by(diffs, &Rules::new(headers_extra, paths), false);
}

fn redact_differences_by(diffs: &mut [Difference], rules: &Rules, form: bool) {
    for d in diffs.iter_mut() {
        if let Some(name) = d.path.strip_prefix("header:") {
            let secret = rules.names.header(name);
            redact_header_difference(d, secret, &rules.names);
            continue;
        }
        if d.path == "status" {
            continue;
        }
        if d.path == "body" || d.path.is_empty() {
            redact_body_value(&mut d.primary, rules, form);
            redact_body_value(&mut d.candidate, rules, form);
            continue;
        }
        let Ok(segments) = split_pointer(&d.path) else {
            continue;
        };
        if rules.paths.iter().any(|p| p.matches_at_or_under(&segments)) {
            redact_option(&mut d.primary);
            redact_option(&mut d.candidate);
            continue;
        }
        if segments.iter().any(|s| rules.names.key(s)) {
            d.primary.iter_mut().for_each(redact_secret);
            d.candidate.iter_mut().for_each(redact_secret);
            continue;
        }
        for value in [&mut d.primary, &mut d.candidate].into_iter().flatten() {
            let mut path = segments.clone();
            redact_value(value, &mut path, rules.paths);
            redact_value_names(value, &rules.names);
        }
    }
}

/// Redacts a header difference: whole values of a secret header, else URL parameters.
fn redact_header_difference(d: &mut Difference, secret: bool, names: &SecretNames) {
    if secret {
        redact_option(&mut d.primary);
        redact_option(&mut d.candidate);
        return;
    }
    for value in [&mut d.primary, &mut d.candidate].into_iter().flatten() {
        if let Value::String(text) = value {
            if let Some(r) = redact_url(text, names) {
                *text = r;
            }
        }
    }
}

/// Whether headers say the body is a form (`application/x-www-form-urlencoded`).
fn is_form(headers: &[(String, String)]) -> bool {
    const FORM: &[u8] = b"application/x-www-form-urlencoded";
    headers.iter().any(|(n, v)| {
        n.eq_ignore_ascii_case("content-type")
            && v.trim_start()
                .as_bytes()
                .get(..FORM.len())
                .is_some_and(|t| t.eq_ignore_ascii_case(FORM))
    })
}

/// Redacts a body by its headers: a form by parameter name; JSON by path, then by name.
fn redact_body(body: &mut Vec<u8>, headers: &[(String, String)], rules: &Rules) {
    if is_form(headers) {
        if let Some(redacted) = redact_form(body, &rules.names) {
            *body = redacted;
        }
        return;
    }
    if !rules.paths.is_empty() {
        if let Some(redacted) = redact_json(body, rules.paths) {
            *body = redacted;
        }
    }
    if let Some(redacted) = redact_json_text(body, &rules.names) {
        *body = redacted;
    }
}

/// Redacts a request's URI, headers and body by the default rules plus `headers_extra` and
/// `paths`.
pub fn redact_request(req: &mut Request, headers_extra: &[String], paths: &[PointerPattern]) {
    redact_request_by(req, &Rules::new(headers_extra, paths));
}

fn redact_request_by(req: &mut Request, rules: &Rules) {
    if let Some(uri) = redact_url(&req.uri, &rules.names) {
        req.uri = uri;
    }
    redact_body(&mut req.body, &req.headers, rules);
    redact_headers_by(&mut req.headers, &rules.names);
}

/// Redacts a response's headers and body by the default rules plus `headers_extra` and
/// `paths`.
pub fn redact_response(resp: &mut Response, headers_extra: &[String], paths: &[PointerPattern]) {
    redact_response_by(resp, &Rules::new(headers_extra, paths));
}

fn redact_response_by(resp: &mut Response, rules: &Rules) {
    redact_body(&mut resp.body, &resp.headers, rules);
    redact_headers_by(&mut resp.headers, &rules.names);
}

/// Redacts everything in a comparison that could hold a secret, by the default rules plus
/// `headers_extra` and `paths`: the request, both responses, the differences and the noise
/// differences. Call it before the comparison leaves the data plane. (A route's added
/// names need [`Redaction::apply`].)
pub fn redact_comparison(c: &mut Comparison, headers_extra: &[String], paths: &[PointerPattern]) {
    redact_comparison_by(c, &Rules::new(headers_extra, paths));
}

fn redact_comparison_by(c: &mut Comparison, rules: &Rules) {
    // Text differences of form bodies are redacted as forms; the noise sample's secondary is
    // a copy of the primary, so the same judgement holds there.
    let form =
        is_form(&c.primary.headers) || c.shadow.as_ref().is_some_and(|s| is_form(&s.headers));
    redact_request_by(&mut c.request, rules);
    redact_response_by(&mut c.primary, rules);
    if let Some(shadow) = c.shadow.as_mut() {
        redact_response_by(shadow, rules);
    }
    redact_differences_by(&mut c.differences, rules, form);
    if let Some(noise) = c.noise.as_mut() {
        redact_differences_by(noise, rules, form);
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
            ("X-Session", "s"),
            ("accept", "json"),
        ]);
        redact_headers(&mut h, &["x-session".to_string()]);
        let values: Vec<&str> = h.iter().map(|(_, v)| v.as_str()).collect();
        assert_eq!(
            values,
            vec![REDACTED, REDACTED, REDACTED, REDACTED, REDACTED, REDACTED, "json"]
        );
        assert!(is_secret_header("X-API-KEY", &[]));
        assert!(is_secret_header("x-secret", &[]), "named like a secret");
        assert!(!is_secret_header("x-session", &[]));
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
                "header:x-session",
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
        redact_differences(&mut diffs, &["X-Session".to_string()], &[]);
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
            candidate: "v2".into(),
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

    fn comparison(request: Request, primary: Response, shadow: Response) -> Comparison {
        let differences = compare(&primary, &shadow, &CompareConfig::default());
        Comparison {
            id: 0,
            created_at_ms: 0,
            route: "r".into(),
            candidate: "v2".into(),
            endpoint: "GET /".into(),
            request_id: "1".into(),
            verdict: Verdict::Different,
            request,
            primary,
            shadow: Some(shadow),
            error: None,
            noise: None,
            differences,
        }
    }

    fn json_response(body: &str) -> Response {
        Response {
            status: 200,
            headers: hdrs(&[("content-type", "application/json")]),
            body: body.as_bytes().to_vec(),
            ..Response::default()
        }
    }

    fn diff<'a>(c: &'a Comparison, path: &str) -> &'a Difference {
        c.differences
            .iter()
            .find(|d| d.path == path)
            .unwrap_or_else(|| panic!("no difference at {path}: {:?}", c.differences))
    }

    #[test]
    fn secrets_are_redacted_by_name_by_default() {
        let request = Request {
            method: "POST".into(),
            uri: "/login?next=%2Fhome&access_token=S3KRIT0%3D&x=1".into(),
            host: "h".into(),
            headers: hdrs(&[
                ("x-auth-token", "S3KRIT1"),
                ("referer", "https://site/p?api_key=S3KRIT2&page=2"),
                ("x-request-id", "rid"),
            ]),
            body: br#"{"user":"u","password":"S3KRIT3","items":[{"client_secret":"S3KRIT4"}]}"#
                .to_vec(),
        };
        let primary = json_response(r#"{"access_token":"S3KRIT5","token_type":"bearer","n":1}"#);
        let mut shadow = json_response(r#"{"access_token":"S3KRIT6","token_type":"bearer","n":2}"#);
        shadow
            .headers
            .push(("x-csrf-token".into(), "S3KRIT7".into()));
        let mut c = comparison(request, primary, shadow);
        redact_comparison(&mut c, &[], &[]);

        assert_eq!(
            c.request.uri,
            "/login?next=%2Fhome&access_token=[redacted]&x=1"
        );
        assert_eq!(
            c.request.headers,
            hdrs(&[
                ("x-auth-token", REDACTED),
                ("referer", "https://site/p?api_key=[redacted]&page=2"),
                ("x-request-id", "rid"),
            ])
        );
        assert_eq!(
            c.request.body,
            br#"{"user":"u","password":"[redacted]","items":[{"client_secret":"[redacted]"}]}"#
        );
        assert_eq!(
            c.primary.body,
            br#"{"access_token":"[redacted]","token_type":"bearer","n":1}"#
        );
        // The comparison saw the real values: the token difference is kept, its values hidden.
        let token = diff(&c, "/access_token");
        assert_eq!(token.primary, Some(json!(REDACTED)));
        assert_eq!(token.candidate, Some(json!(REDACTED)));
        assert_eq!(diff(&c, "/n").candidate, Some(json!(2)));
        assert_eq!(
            diff(&c, "header:x-csrf-token").candidate,
            Some(json!(REDACTED))
        );
        let stored = serde_json::to_string(&c).unwrap();
        assert!(!stored.contains("S3KRIT"), "a secret leaked: {stored}");
    }

    #[test]
    fn differences_under_secret_keys_and_in_urls() {
        let primary = json_response(
            r#"{"auth":{"token":"s1","ttl":1},"has_password":true,"secret":null,"link":"https://s3/o?X-Amz-Signature=sig1&v=1"}"#,
        );
        let mut shadow = json_response(
            r#"{"auth":{"token":"s2","ttl":2},"has_password":false,"secret":"s3","link":"https://s3/o?X-Amz-Signature=sig2&v=1","user":{"id":1,"apiKey":"k"}}"#,
        );
        shadow
            .headers
            .push(("location".into(), "/cb?code=c0de&state=st".into()));
        let mut c = comparison(Request::default(), primary, shadow);
        redact_comparison(&mut c, &[], &[]);
        let ttl = diff(&c, "/auth/ttl");
        assert_eq!(
            (&ttl.primary, &ttl.candidate),
            (&Some(json!(REDACTED)), &Some(json!(REDACTED)))
        );
        let flag = diff(&c, "/has_password");
        assert_eq!(flag.candidate, Some(json!(false)), "booleans hide nothing");
        let secret = diff(&c, "/secret");
        assert_eq!(secret.primary, Some(json!(null)), "null hides nothing");
        assert_eq!(secret.candidate, Some(json!(REDACTED)));
        assert_eq!(
            diff(&c, "/link").candidate,
            Some(json!("https://s3/o?X-Amz-Signature=[redacted]&v=1"))
        );
        assert_eq!(
            diff(&c, "/user").candidate,
            Some(json!({"id":1,"apiKey":REDACTED}))
        );
        assert_eq!(
            diff(&c, "header:location").candidate,
            Some(json!("/cb?code=[redacted]&state=st"))
        );
    }

    #[test]
    fn text_differences_of_json_and_form_bodies() {
        let form = |body: &str| Response {
            status: 200,
            headers: hdrs(&[("content-type", "application/x-www-form-urlencoded")]),
            body: body.as_bytes().to_vec(),
            ..Response::default()
        };
        let mut c = comparison(
            Request::default(),
            form("oauth_token=t1&oauth_token_secret=s1&x=1"),
            form("oauth_token=t2&oauth_token_secret=s2&x=2"),
        );
        redact_comparison(&mut c, &[], &[]);
        assert_eq!(
            c.primary.body,
            b"oauth_token=[redacted]&oauth_token_secret=[redacted]&x=1"
        );
        assert_eq!(
            diff(&c, "body").candidate,
            Some(json!(
                "oauth_token=[redacted]&oauth_token_secret=[redacted]&x=2"
            ))
        );
        // Truncated JSON text is redacted by name up to the cut, without paths.
        let mut diffs = vec![d(
            "body",
            DiffKind::Text,
            Some(json!("{\"token\":\"s1\",\"a\":1}")),
            Some(json!("{\"a\":2,\"token\":\"s2")),
        )];
        redact_differences(&mut diffs, &[], &[]);
        assert_eq!(
            diffs[0].primary,
            Some(json!("{\"token\":\"[redacted]\",\"a\":1}"))
        );
        assert_eq!(
            diffs[0].candidate,
            Some(json!("{\"a\":2,\"token\":\"[redacted]\""))
        );
    }

    #[test]
    fn non_json_non_form_bodies_are_untouched() {
        let html = "<p>password=hunter2 {\"token\":\"t\"}</p>";
        let mut resp = Response {
            headers: hdrs(&[("content-type", "text/html")]),
            body: html.as_bytes().to_vec(),
            ..Response::default()
        };
        redact_response(&mut resp, &[], &[]);
        assert_eq!(resp.body, html.as_bytes());
        let mut diffs = vec![d(
            "body",
            DiffKind::Text,
            Some(json!(html)),
            Some(json!("a=1&token=t")),
        )];
        redact_differences(&mut diffs, &[], &[]);
        assert_eq!(diffs[0].primary, Some(json!(html)));
        assert_eq!(
            diffs[0].candidate,
            Some(json!("a=1&token=t")),
            "not known to be a form"
        );
    }

    #[test]
    fn routes_extend_the_names() {
        let redaction = Redaction {
            headers: vec!["x-session".into()],
            names: vec![crate::secret::squash_name("pin_code")],
            paths: pats(&["/account/number"]),
        };
        let request = Request {
            uri: "/v?pinCode=1234&PIN_CODE=5678&pin=0".into(),
            headers: hdrs(&[("X-Session", "sess")]),
            ..Request::default()
        };
        let primary =
            json_response(r#"{"pin_code":"1111","account":{"number":"n1","pin-code":"2"}}"#);
        let shadow =
            json_response(r#"{"pin_code":"2222","account":{"number":"n2","pin-code":"3"}}"#);
        let mut c = comparison(request, primary, shadow);
        redaction.apply(&mut c);
        assert_eq!(
            c.request.uri,
            "/v?pinCode=[redacted]&PIN_CODE=[redacted]&pin=0"
        );
        assert_eq!(c.request.headers, hdrs(&[("X-Session", REDACTED)]));
        let body: Value = serde_json::from_slice(&c.primary.body).unwrap();
        assert_eq!(
            body,
            json!({"pin_code":REDACTED,"account":{"number":REDACTED,"pin-code":REDACTED}})
        );
        let stored = serde_json::to_string(&c).unwrap();
        for secret in ["1234", "5678", "sess", "1111", "2222", "n1", "n2"] {
            assert!(!stored.contains(secret), "{secret} leaked: {stored}");
        }
        // Without the route's names only the defaults apply.
        let mut c = comparison(
            Request {
                uri: "/v?pin_code=1234".into(),
                ..Request::default()
            },
            Response::default(),
            Response::default(),
        );
        redact_comparison(&mut c, &[], &[]);
        assert_eq!(c.request.uri, "/v?pin_code=1234");
    }

    fn arb_secretish_json() -> impl proptest::strategy::Strategy<Value = Value> {
        use proptest::prelude::*;
        let key = prop::sample::select(vec![
            "id",
            "token",
            "Password",
            "items",
            "api_key",
            "token_type",
            "to\"ken",
            "a\"b",
            "p\u{e9}",
        ]);
        let text = prop::sample::select(vec![
            "",
            "x",
            "/cb?token=t&a=1",
            "q\"?token=t",
            "a\\b",
            "#x=1",
            "/p?a=1&sig=s",
        ]);
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i32>().prop_map(|n| json!(n)),
            text.prop_map(|t| json!(t)),
        ];
        leaf.prop_recursive(4, 32, 5, move |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::vec((key.clone(), inner), 0..4).prop_map(|members| {
                    Value::Object(
                        members
                            .into_iter()
                            .map(|(k, v)| (k.to_owned(), v))
                            .collect(),
                    )
                }),
            ]
        })
    }

    proptest::proptest! {
        /// The text redactor (bodies) and the tree redactor (difference values) agree, and
        /// the text redactor's output is JSON.
        #[test]
        fn json_text_and_tree_redaction_agree(v in arb_secretish_json()) {
            // Text redaction applies to objects and arrays (a body that is a bare scalar
            // is left alone).
            let v = json!([v]);
            let names = SecretNames::default();
            let mut expected = v.clone();
            redact_value_names(&mut expected, &names);
            for text in [serde_json::to_string(&v).unwrap(), serde_json::to_string_pretty(&v).unwrap()] {
                let out = redact_json_text(text.as_bytes(), &names).unwrap_or_else(|| text.clone().into_bytes());
                let got: Value = serde_json::from_slice(&out).map_err(|e| {
                    proptest::test_runner::TestCaseError::fail(format!("{e}: {}", String::from_utf8_lossy(&out)))
                })?;
                proptest::prop_assert_eq!(&got, &expected, "{}", text);
            }
        }

        /// Query redaction keeps every parameter's name and every value but the secret ones.
        #[test]
        fn query_redaction_touches_only_secret_values(
            params in proptest::collection::vec(("(token|key|q|api%5Fkey|Page|x)", "[a-z0-9%+.=]{0,6}"), 1..6)
        ) {
            let names = SecretNames::default();
            let query: Vec<String> = params.iter().map(|(n, v)| format!("{n}={v}")).collect();
            let uri = format!("/p?{}", query.join("&"));
            let out = crate::params::redact_url(&uri, &names).unwrap_or_else(|| uri.clone());
            let got: Vec<&str> = out.strip_prefix("/p?").unwrap().split('&').collect();
            let want: Vec<String> = params
                .iter()
                .map(|(n, v)| {
                    let secret = !v.is_empty() && names.param(n.as_bytes());
                    format!("{n}={}", if secret { REDACTED } else { v })
                })
                .collect();
            proptest::prop_assert_eq!(got, want);
        }
    }
}
