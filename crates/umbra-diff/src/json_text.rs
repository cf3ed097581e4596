//! Redaction of secrets in JSON text without building a tree: the values of keys named like
//! secrets, at any depth, and secret parameters of URLs inside string values. Everything else
//! is kept byte for byte, and truncated JSON (a body cut at the capture cap, a shortened text
//! difference) is handled too: a secret value cut short is redacted up to the cut. Shadow side,
//! pure.
//!
//! A secret key's value becomes `"[redacted]"` whole (objects and arrays included), except
//! `null`, `true`, `false` and `""`, which hide nothing and keep a difference readable.

use std::borrow::Cow;

use crate::params;
use crate::redact::REDACTED;
use crate::secret::SecretNames;

/// Whether bytes look like JSON: `{` or `[` first, after a BOM and whitespace.
pub fn looks_like_json(text: &[u8]) -> bool {
    let text = text.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(text);
    matches!(
        text.iter().find(|b| !b.is_ascii_whitespace()),
        Some(b'{' | b'[')
    )
}

/// Redacts secret-named keys' values and secret URL parameters in JSON text. `None` when the
/// text does not look like JSON or nothing changed.
pub fn redact_json_text(text: &[u8], names: &SecretNames) -> Option<Vec<u8>> {
    if !looks_like_json(text) {
        return None;
    }
    let mut out = Splice::new(text);
    let mut i = 0;
    while i < text.len() {
        if text[i] != b'"' {
            i += 1;
            continue;
        }
        let (end, closed) = string_end(text, i);
        let colon = skip_ws(text, end);
        if closed && text.get(colon) == Some(&b':') {
            if names.key(&decode(&text[i..end])) {
                let start = skip_ws(text, colon + 1);
                let value_end = value_end(text, start);
                if holds_secret(&text[start..value_end]) {
                    out.replace(start, value_end, format!("\"{REDACTED}\"").as_bytes());
                }
                i = value_end;
                continue;
            }
        } else if let Some(s) = redact_string(&text[i..end], closed, names) {
            out.replace(i, end, &s);
        }
        i = end;
    }
    out.finish()
}

/// A copy of a text made only once something in it is replaced.
struct Splice<'a> {
    src: &'a [u8],
    out: Option<Vec<u8>>,
    copied: usize,
}

impl<'a> Splice<'a> {
    fn new(src: &'a [u8]) -> Self {
        Splice {
            src,
            out: None,
            copied: 0,
        }
    }

    fn replace(&mut self, start: usize, end: usize, with: &[u8]) {
        let out = self
            .out
            .get_or_insert_with(|| Vec::with_capacity(self.src.len()));
        out.extend_from_slice(&self.src[self.copied..start]);
        out.extend_from_slice(with);
        self.copied = end;
    }

    fn finish(self) -> Option<Vec<u8>> {
        let mut out = self.out?;
        out.extend_from_slice(&self.src[self.copied..]);
        Some(out)
    }
}

/// The index after the string starting at `start` (a `"`), and whether it was closed.
fn string_end(text: &[u8], start: usize) -> (usize, bool) {
    let mut i = start + 1;
    while i < text.len() {
        match text[i] {
            b'\\' => i += 2,
            b'"' => return (i + 1, true),
            _ => i += 1,
        }
    }
    (text.len(), false)
}

fn skip_ws(text: &[u8], mut i: usize) -> usize {
    while i < text.len() && text[i].is_ascii_whitespace() {
        i += 1;
    }
    i
}

/// The index after the value starting at `start`; the end of the text when it is cut short.
fn value_end(text: &[u8], start: usize) -> usize {
    match text.get(start) {
        None => start,
        Some(b'"') => string_end(text, start).0,
        Some(b'{' | b'[') => container_end(text, start),
        Some(_) => (start..text.len())
            .find(|&i| matches!(text[i], b',' | b'}' | b']') || text[i].is_ascii_whitespace())
            .unwrap_or(text.len()),
    }
}

fn container_end(text: &[u8], start: usize) -> usize {
    let mut depth = 0usize;
    let mut i = start;
    while i < text.len() {
        match text[i] {
            b'"' => {
                i = string_end(text, i).0;
                continue;
            }
            b'{' | b'[' => depth += 1,
            b'}' | b']' => {
                depth -= 1;
                if depth == 0 {
                    return i + 1;
                }
            }
            _ => {}
        }
        i += 1;
    }
    text.len()
}

/// Whether a secret key's value is worth redacting: not absent, `null`, a boolean or `""`.
fn holds_secret(value: &[u8]) -> bool {
    !matches!(value, b"" | b"null" | b"true" | b"false" | b"\"\"")
}

/// A quoted key's text, escapes decoded (as written when they do not decode).
fn decode(quoted: &[u8]) -> Cow<'_, str> {
    let inner = &quoted[1..quoted.len() - 1];
    if !inner.contains(&b'\\') {
        return String::from_utf8_lossy(inner);
    }
    match serde_json::from_slice::<String>(quoted) {
        Ok(s) => Cow::Owned(s),
        Err(_) => String::from_utf8_lossy(inner),
    }
}

/// A string value with its secret URL parameters redacted, quotes included; `None` when
/// nothing changed. Escaped strings are decoded first (`\u0026` is an `&` to a URL) and
/// encoded again; a string cut short is redacted as written.
fn redact_string(quoted: &[u8], closed: bool, names: &SecretNames) -> Option<Vec<u8>> {
    let inner = &quoted[1..quoted.len() - usize::from(closed)];
    if !inner.iter().any(|&b| b == b'?' || b == b'#') {
        return None;
    }
    if closed && inner.contains(&b'\\') {
        if let Ok(s) = serde_json::from_slice::<String>(quoted) {
            let redacted = params::redact_url(&s, names)?;
            return serde_json::to_vec(&redacted).ok();
        }
    }
    let redacted = params::redact_url_bytes(inner, names)?;
    let mut out = Vec::with_capacity(redacted.len() + 2);
    out.push(b'"');
    out.extend_from_slice(&redacted);
    if closed {
        out.push(b'"');
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn redact(text: &str) -> String {
        let out = redact_json_text(text.as_bytes(), &SecretNames::default());
        out.map_or_else(|| text.to_owned(), |b| String::from_utf8(b).unwrap())
    }

    #[test]
    fn secret_keys_are_redacted_at_any_depth_and_the_rest_kept_byte_for_byte() {
        let text = "{\n  \"user\": {\"name\": \"a\", \"Password\" : \"p\"},\n  \"n\": 1\n}";
        assert_eq!(
            redact(text),
            "{\n  \"user\": {\"name\": \"a\", \"Password\" : \"[redacted]\"},\n  \"n\": 1\n}"
        );
    }

    #[test]
    fn arrays_of_objects_and_whole_subtrees() {
        let text = r#"[{"id":1,"api_key":"k1"},{"id":2,"apiKey":"k2"},{"credentials":{"user":"u","pass":[1,{"x":"}"}]},"n":3}]"#;
        let v: Value = serde_json::from_str(&redact(text)).unwrap();
        assert_eq!(
            v,
            json!([{"id":1,"api_key":REDACTED},{"id":2,"apiKey":REDACTED},{"credentials":REDACTED,"n":3}])
        );
    }

    #[test]
    fn numbers_are_redacted_but_null_booleans_and_empty_strings_kept() {
        let text = r#"{"token":12345,"secret":null,"has_password":true,"password":"","access_token":-1.5e3}"#;
        assert_eq!(
            redact(text),
            r#"{"token":"[redacted]","secret":null,"has_password":true,"password":"","access_token":"[redacted]"}"#
        );
    }

    #[test]
    fn harmless_keys_and_secret_looking_values_are_untouched() {
        let text = r#"{"token_type":"bearer","key":"color","tokens":["password","secret"],"note":"token: x"}"#;
        assert!(redact_json_text(text.as_bytes(), &SecretNames::default()).is_none());
    }

    #[test]
    fn escaped_keys_are_decoded() {
        let text = r#"{"p\u0061ssword":"hunter2","a\"b":"c"}"#;
        assert_eq!(redact(text), r#"{"p\u0061ssword":"[redacted]","a\"b":"c"}"#);
    }

    #[test]
    fn truncated_json_is_redacted_up_to_the_cut() {
        assert_eq!(
            redact(r#"{"a":1,"token":"abc"#),
            r#"{"a":1,"token":"[redacted]""#
        );
        assert_eq!(
            redact(r#"{"a":1,"credentials":{"u":"x","p":"#),
            r#"{"a":1,"credentials":"[redacted]""#
        );
        assert_eq!(redact(r#"{"a":1,"token":"#), r#"{"a":1,"token":"#);
        assert_eq!(redact(r#"{"a":1,"tok"#), r#"{"a":1,"tok"#);
    }

    #[test]
    fn urls_in_string_values_lose_their_secret_parameters() {
        assert_eq!(
            redact(r#"{"download":"https://s3/o?X-Amz-Signature=abc&v=1","other":"what?"}"#),
            r#"{"download":"https://s3/o?X-Amz-Signature=[redacted]&v=1","other":"what?"}"#
        );
        // Go's encoder writes `&` as \u0026.
        let out = redact(r#"{"u":"/x?a=1\u0026token=t"}"#);
        let v: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v, json!({"u": "/x?a=1&token=[redacted]"}));
        assert_eq!(redact(r#"["/x?token=t"#), r#"["/x?token=[redacted]"#);
    }

    #[test]
    fn non_json_text_is_untouched() {
        for text in [
            "password=x",
            "<html>{\"token\":\"t\"}</html>",
            "",
            "token: t",
        ] {
            assert!(
                redact_json_text(text.as_bytes(), &SecretNames::default()).is_none(),
                "{text}"
            );
        }
        assert!(looks_like_json(b"\xEF\xBB\xBF  {\"a\":1}"));
    }

    #[test]
    fn route_names_extend_the_keys() {
        let extra = vec!["pin".to_string()];
        let names = SecretNames {
            headers: &[],
            names: &extra,
        };
        let out = redact_json_text(br#"{"PIN":"1234","pin_hint":"h"}"#, &names).unwrap();
        assert_eq!(out, br#"{"PIN":"[redacted]","pin_hint":"h"}"#);
    }
}
