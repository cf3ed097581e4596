//! Entry points for the fuzz targets in `fuzz/` (and their regression tests): the comparison
//! engine's private JSON tape parser and its structural equality, exposed without becoming
//! part of the crate's API. Not for use outside fuzzing and tests.

use serde_json::Value;

use crate::tree::{Doc, Kind, Val};

/// The body as the engine's JSON parser reads it (a `serde_json::Value`), or None when the
/// engine does not take it for JSON.
pub fn json_value(body: &[u8]) -> Option<Value> {
    Doc::parse(body).map(|d| d.root().to_value())
}

/// Whether some object in the document (which must parse) repeats a key. The engine matches
/// repeated keys by their first occurrence, while a `Value` keeps the last.
pub fn has_duplicate_keys(body: &[u8]) -> bool {
    Doc::parse(body).is_some_and(|d| repeats_a_key(d.root()))
}

fn repeats_a_key(v: Val<'_>) -> bool {
    match v.kind() {
        Kind::Arr => v.elements().any(repeats_a_key),
        Kind::Obj => {
            let members: Vec<_> = v.members().collect();
            let mut keys: Vec<_> = members.iter().map(|(k, _)| k.clone()).collect();
            keys.sort_unstable();
            keys.dedup();
            keys.len() != members.len() || members.iter().any(|(_, m)| repeats_a_key(*m))
        }
        _ => false,
    }
}

/// The engine's strict structural equality of two documents and each one's structural hash,
/// or None when either does not parse.
pub fn structural(a: &[u8], b: &[u8]) -> Option<(bool, u64, u64)> {
    let (a, b) = (Doc::parse(a)?, Doc::parse(b)?);
    let (a, b) = (a.root(), b.root());
    Some((a.same(b), a.structural_hash(), b.structural_hash()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_duplicates_and_structure() {
        assert_eq!(
            json_value(b" [1, {\"a\": null}] "),
            Some(serde_json::json!([1, {"a": null}]))
        );
        assert_eq!(json_value(b"[1,]"), None);
        assert!(has_duplicate_keys(br#"[{"a":1},{"b":{"c":1,"c":2}}]"#));
        assert!(!has_duplicate_keys(br#"{"a":{"a":1},"b":[{"a":2}]}"#));
        let (same, ha, hb) = structural(br#"{"x":1,"y":2}"#, br#"{"y":2.0,"x":1}"#).unwrap();
        assert!(same);
        assert_eq!(ha, hb);
        assert_eq!(structural(b"1", b"{"), None);
    }
}
