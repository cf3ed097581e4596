//! A validated JSON document as a flat "tape", private to the comparison engine.
//!
//! One strict RFC 8259 pass validates the body and records every value's byte span and the
//! index just past its subtree, in a single vector: no allocation per value, no string copies.
//! The engine then walks two tapes side by side and skips any pair of subtrees whose bytes are
//! identical (they are equal under every rule), so a large, almost-equal document costs two
//! validation passes and a few `memcmp`s. Strings are unescaped and numbers converted only
//! where bytes differ; `serde_json::Value`s are built only for reported differences.

use std::borrow::Cow;
use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};

use serde_json::{Map, Number, Value};

/// Nesting deeper than this is refused (as serde_json does), which keeps every recursive walk
/// over a document (compare, hashing, conversion) well within the stack.
pub(crate) const MAX_DEPTH: usize = 128;

/// A JSON number as serde_json represents it without `arbitrary_precision`.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Num {
    Pos(u64),
    Neg(i64),
    Float(f64),
}

impl Num {
    pub(crate) fn as_f64(self) -> f64 {
        match self {
            Num::Pos(u) => u as f64,
            Num::Neg(i) => i as f64,
            Num::Float(f) => f,
        }
    }

    /// Numeric equality: integers exactly, and `1 == 1.0` (JSON does not distinguish them).
    pub(crate) fn same(self, other: Num) -> bool {
        match (self, other) {
            (Num::Pos(a), Num::Pos(b)) => a == b,
            (Num::Neg(a), Num::Neg(b)) => a == b,
            (Num::Pos(_), Num::Neg(_)) | (Num::Neg(_), Num::Pos(_)) => false,
            (a, b) => a.as_f64() == b.as_f64(),
        }
    }

    /// Equality within `tol`: absolute below magnitude 1, relative above
    /// (`|a - b| <= tol * max(1, |a|, |b|)`).
    pub(crate) fn close(self, other: Num, tol: f64) -> bool {
        if self.same(other) {
            return true;
        }
        let (a, b) = (self.as_f64(), other.as_f64());
        (a - b).abs() <= tol * 1f64.max(a.abs()).max(b.abs())
    }

    fn to_value(self) -> Value {
        match self {
            Num::Pos(u) => Value::Number(u.into()),
            Num::Neg(i) => Value::Number(i.into()),
            // The parser only yields finite floats, so this never falls back.
            Num::Float(f) => Number::from_f64(f).map_or(Value::Null, Value::Number),
        }
    }

    /// Converts a validated JSON number literal, the way serde_json does: integers that fit
    /// 64 bits stay integers (`-0` is a float), everything else is an `f64`.
    fn from_literal(raw: &str) -> Num {
        let (negative, digits) = match raw.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, raw),
        };
        if digits.bytes().all(|b| b.is_ascii_digit()) {
            let magnitude = digits.bytes().try_fold(0u64, |acc, d| {
                acc.checked_mul(10)?.checked_add(u64::from(d - b'0'))
            });
            match (magnitude, negative) {
                (Some(m), false) => return Num::Pos(m),
                (Some(0), true) => return Num::Float(-0.0),
                (Some(m), true) if m <= i64::MAX as u64 + 1 => {
                    return Num::Neg((m as i64).wrapping_neg())
                }
                _ => {}
            }
        }
        Num::Float(raw.parse().unwrap_or(f64::NAN))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Null,
    Bool,
    Num,
    Str,
    Arr,
    Obj,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    /// Byte span of the value in the document (strings include their quotes).
    start: u32,
    end: u32,
    /// Tape index just past this value's subtree.
    next: u32,
    /// Elements of an array, members of an object.
    len: u32,
    kind: Kind,
    /// A string that contains escapes.
    escaped: bool,
}

/// A parsed document: its text and tape. Objects are laid out as `Obj, key, value, key,
/// value, …`, each value followed by its own subtree.
#[derive(Debug)]
pub(crate) struct Doc<'a> {
    text: &'a str,
    tape: Vec<Entry>,
}

impl<'a> Doc<'a> {
    /// Validates a complete JSON text (leading UTF-8 BOM and surrounding whitespace
    /// allowed). `None` when it is not JSON, nests deeper than [`MAX_DEPTH`], or exceeds
    /// 4 GiB.
    pub(crate) fn parse(body: &'a [u8]) -> Option<Doc<'a>> {
        let body = body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(body);
        if u32::try_from(body.len()).is_err() {
            return None;
        }
        let text = std::str::from_utf8(body).ok()?;
        let mut p = Parser {
            text,
            bytes: text.as_bytes(),
            pos: 0,
            depth: 0,
            tape: Vec::with_capacity(body.len() / 6 + 4),
        };
        p.skip_ws();
        p.value()?;
        p.skip_ws();
        (p.pos == p.bytes.len()).then_some(Doc { text, tape: p.tape })
    }

    pub(crate) fn root(&self) -> Val<'_> {
        Val { doc: self, idx: 0 }
    }
}

/// A value in a [`Doc`]: a cheap, copyable cursor.
#[derive(Clone, Copy)]
pub(crate) struct Val<'d> {
    doc: &'d Doc<'d>,
    idx: u32,
}

impl std::fmt::Debug for Val<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.raw())
    }
}

impl<'d> Val<'d> {
    fn entry(self) -> Entry {
        self.doc.tape[self.idx as usize]
    }

    fn at(self, idx: u32) -> Val<'d> {
        Val { doc: self.doc, idx }
    }

    pub(crate) fn kind(self) -> Kind {
        self.entry().kind
    }

    /// The value's bytes as they appear in the document.
    pub(crate) fn raw(self) -> &'d str {
        let e = self.entry();
        let text: &'d str = self.doc.text;
        text.get(e.start as usize..e.end as usize)
            .unwrap_or_default()
    }

    /// Number of elements or members (0 for scalars).
    pub(crate) fn len(self) -> usize {
        self.entry().len as usize
    }

    pub(crate) fn as_bool(self) -> bool {
        self.raw() == "true"
    }

    pub(crate) fn as_num(self) -> Num {
        Num::from_literal(self.raw())
    }

    /// The unescaped content of a string (borrowed when it has no escapes).
    pub(crate) fn as_str(self) -> Cow<'d, str> {
        let raw = self.raw();
        let inner = raw.get(1..raw.len().saturating_sub(1)).unwrap_or_default();
        if self.entry().escaped {
            Cow::Owned(unescape(inner))
        } else {
            Cow::Borrowed(inner)
        }
    }

    /// Elements of an array.
    pub(crate) fn elements(self) -> impl Iterator<Item = Val<'d>> + 'd {
        let this = self;
        let mut idx = self.idx + 1;
        (0..this.len()).map(move |_| {
            let v = this.at(idx);
            idx = v.entry().next;
            v
        })
    }

    /// Members of an object: unescaped key and value.
    pub(crate) fn members(self) -> impl Iterator<Item = (Cow<'d, str>, Val<'d>)> + 'd {
        let this = self;
        let mut idx = self.idx + 1;
        (0..this.len()).map(move |_| {
            let key = this.at(idx);
            let value = this.at(idx + 1);
            idx = value.entry().next;
            (key.as_str(), value)
        })
    }

    /// The value of `key` in an object (first occurrence).
    pub(crate) fn get(self, key: &str) -> Option<Val<'d>> {
        if self.kind() != Kind::Obj {
            return None;
        }
        self.members().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// Strict structural equality (objects ignore key order), no comparison rules applied.
    pub(crate) fn same(self, other: Val<'_>) -> bool {
        if self.raw() == other.raw() {
            return true;
        }
        match (self.kind(), other.kind()) {
            (Kind::Num, Kind::Num) => self.as_num().same(other.as_num()),
            (Kind::Str, Kind::Str) => self.as_str() == other.as_str(),
            (Kind::Arr, Kind::Arr) => {
                self.len() == other.len()
                    && self
                        .elements()
                        .zip(other.elements())
                        .all(|(x, y)| x.same(y))
            }
            (Kind::Obj, Kind::Obj) => {
                self.len() == other.len()
                    && self
                        .members()
                        .all(|(k, v)| other.get(&k).is_some_and(|ov| v.same(ov)))
            }
            // Literals (null, true, false) have one spelling each: raw equality decided.
            _ => false,
        }
    }

    /// A hash consistent with [`Val::same`] (object members hashed order-independently,
    /// numbers by their `f64` value so that `1` and `1.0` collide).
    pub(crate) fn structural_hash(self) -> u64 {
        let mut h = DefaultHasher::new();
        self.hash_into(&mut h);
        h.finish()
    }

    fn hash_into(self, h: &mut DefaultHasher) {
        let kind = self.kind();
        (kind as u8).hash(h);
        match kind {
            Kind::Null => {}
            Kind::Bool => self.as_bool().hash(h),
            Kind::Num => {
                let f = self.as_num().as_f64();
                // -0.0 == 0.0, so they must hash alike.
                let f = if f == 0.0 { 0.0 } else { f };
                f.to_bits().hash(h);
            }
            Kind::Str => self.as_str().hash(h),
            Kind::Arr => {
                self.len().hash(h);
                for v in self.elements() {
                    v.hash_into(h);
                }
            }
            Kind::Obj => {
                let mut sum = 0u64;
                for (k, v) in self.members() {
                    let mut eh = DefaultHasher::new();
                    k.hash(&mut eh);
                    v.hash_into(&mut eh);
                    sum = sum.wrapping_add(eh.finish());
                }
                self.len().hash(h);
                sum.hash(h);
            }
        }
    }

    pub(crate) fn to_value(self) -> Value {
        match self.kind() {
            Kind::Null => Value::Null,
            Kind::Bool => Value::Bool(self.as_bool()),
            Kind::Num => self.as_num().to_value(),
            Kind::Str => Value::String(self.as_str().into_owned()),
            Kind::Arr => Value::Array(self.elements().map(|v| v.to_value()).collect()),
            Kind::Obj => {
                let mut map = Map::with_capacity(self.len());
                for (k, v) in self.members() {
                    map.insert(k.into_owned(), v.to_value());
                }
                Value::Object(map)
            }
        }
    }
}

/// Unescapes the inside of a validated string literal.
fn unescape(inner: &str) -> String {
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('b') => out.push('\u{8}'),
            Some('f') => out.push('\u{c}'),
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('t') => out.push('\t'),
            Some('u') => {
                let first = hex4(&mut chars);
                let code = if (0xD800..=0xDBFF).contains(&first) {
                    // Validation guaranteed `\uXXXX` with a low surrogate follows.
                    chars.next();
                    chars.next();
                    let second = hex4(&mut chars);
                    0x10000 + ((first - 0xD800) << 10) + (second.wrapping_sub(0xDC00) & 0x3FF)
                } else {
                    first
                };
                out.push(char::from_u32(code).unwrap_or(char::REPLACEMENT_CHARACTER));
            }
            Some(other) => out.push(other),
            None => {}
        }
    }
    out
}

fn hex4(chars: &mut std::str::Chars<'_>) -> u32 {
    (0..4).fold(0, |acc, _| {
        acc * 16 + chars.next().and_then(|c| c.to_digit(16)).unwrap_or(0)
    })
}

/// The validating pass that builds a tape.
struct Parser<'a> {
    text: &'a str,
    bytes: &'a [u8],
    pos: usize,
    depth: usize,
    tape: Vec<Entry>,
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn skip_ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.pos += 1;
        }
    }

    fn expect(&mut self, literal: &[u8]) -> Option<()> {
        let end = self.pos.checked_add(literal.len())?;
        if self.bytes.get(self.pos..end)? == literal {
            self.pos = end;
            Some(())
        } else {
            None
        }
    }

    /// Appends a scalar spanning `start..self.pos`. Offsets fit `u32` (checked in `parse`).
    fn push_scalar(&mut self, start: usize, kind: Kind, escaped: bool) {
        let next = self.tape.len() as u32 + 1;
        self.tape.push(Entry {
            start: start as u32,
            end: self.pos as u32,
            next,
            len: 0,
            kind,
            escaped,
        });
    }

    fn value(&mut self) -> Option<()> {
        let start = self.pos;
        match self.peek()? {
            b'{' => self.container(Kind::Obj),
            b'[' => self.container(Kind::Arr),
            b'"' => {
                let escaped = self.string()?;
                self.push_scalar(start, Kind::Str, escaped);
                Some(())
            }
            b't' => {
                self.expect(b"true")?;
                self.push_scalar(start, Kind::Bool, false);
                Some(())
            }
            b'f' => {
                self.expect(b"false")?;
                self.push_scalar(start, Kind::Bool, false);
                Some(())
            }
            b'n' => {
                self.expect(b"null")?;
                self.push_scalar(start, Kind::Null, false);
                Some(())
            }
            b'-' | b'0'..=b'9' => {
                self.number()?;
                self.push_scalar(start, Kind::Num, false);
                Some(())
            }
            _ => None,
        }
    }

    fn container(&mut self, kind: Kind) -> Option<()> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return None;
        }
        let at = self.tape.len();
        self.tape.push(Entry {
            start: self.pos as u32,
            end: 0,
            next: 0,
            len: 0,
            kind,
            escaped: false,
        });
        let close = if kind == Kind::Obj { b'}' } else { b']' };
        self.pos += 1;
        self.skip_ws();
        let mut len = 0u32;
        if self.peek()? == close {
            self.pos += 1;
        } else {
            loop {
                self.skip_ws();
                if kind == Kind::Obj {
                    if self.peek()? != b'"' {
                        return None;
                    }
                    let start = self.pos;
                    let escaped = self.string()?;
                    self.push_scalar(start, Kind::Str, escaped);
                    self.skip_ws();
                    self.expect(b":")?;
                    self.skip_ws();
                }
                self.value()?;
                len = len.checked_add(1)?;
                self.skip_ws();
                match self.peek()? {
                    b',' => self.pos += 1,
                    b if b == close => {
                        self.pos += 1;
                        break;
                    }
                    _ => return None,
                }
            }
        }
        self.depth -= 1;
        let next = u32::try_from(self.tape.len()).ok()?;
        let entry = &mut self.tape[at];
        entry.end = self.pos as u32;
        entry.next = next;
        entry.len = len;
        Some(())
    }

    /// Validates a string starting at its opening quote; returns whether it has escapes.
    fn string(&mut self) -> Option<bool> {
        self.pos += 1;
        let mut escaped = false;
        loop {
            match *self.bytes.get(self.pos)? {
                b'"' => {
                    self.pos += 1;
                    return Some(escaped);
                }
                b'\\' => {
                    escaped = true;
                    self.pos += 1;
                    match *self.bytes.get(self.pos)? {
                        b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => self.pos += 1,
                        b'u' => {
                            self.pos += 1;
                            self.unicode_escape()?;
                        }
                        _ => return None,
                    }
                }
                0..=0x1f => return None,
                _ => self.pos += 1,
            }
        }
    }

    fn hex4(&mut self) -> Option<u32> {
        let end = self.pos.checked_add(4)?;
        let digits = self.text.get(self.pos..end)?;
        if !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        self.pos = end;
        u32::from_str_radix(digits, 16).ok()
    }

    /// `XXXX` after `\u`, with a following `\uXXXX` for surrogate pairs. Lone surrogates are
    /// refused, as serde_json refuses them.
    fn unicode_escape(&mut self) -> Option<()> {
        match self.hex4()? {
            0xD800..=0xDBFF => {
                self.expect(b"\\u")?;
                (0xDC00..=0xDFFF).contains(&self.hex4()?).then_some(())
            }
            0xDC00..=0xDFFF => None,
            _ => Some(()),
        }
    }

    fn digits(&mut self) -> usize {
        let start = self.pos;
        while let Some(b'0'..=b'9') = self.peek() {
            self.pos += 1;
        }
        self.pos - start
    }

    fn number(&mut self) -> Option<()> {
        let start = self.pos;
        if self.peek() == Some(b'-') {
            self.pos += 1;
        }
        match self.peek()? {
            b'0' => self.pos += 1,
            b'1'..=b'9' => {
                self.digits();
            }
            _ => return None,
        }
        let mut integral = true;
        if self.peek() == Some(b'.') {
            self.pos += 1;
            if self.digits() == 0 {
                return None;
            }
            integral = false;
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.pos += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.pos += 1;
            }
            if self.digits() == 0 {
                return None;
            }
            integral = false;
        }
        // serde_json refuses numbers that overflow to infinity (`1e400`); only literals with
        // an exponent or more than 300 digits can.
        let literal = self.text.get(start..self.pos)?;
        if (!integral && literal.contains(['e', 'E'])) || literal.len() > 300 {
            let f: f64 = literal.parse().ok()?;
            if !f.is_finite() {
                return None;
            }
        }
        Some(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn doc(s: &str) -> Doc<'_> {
        Doc::parse(s.as_bytes()).expect("valid JSON")
    }

    fn value_of(s: &str) -> Option<Value> {
        Doc::parse(s.as_bytes()).map(|d| d.root().to_value())
    }

    #[test]
    fn subnormal_floats_parse_exactly() {
        for lit in ["-1.90945385283901e-309", "4.9e-324", "2.2250738585072e-308"] {
            let v = value_of(&format!("[{lit}]")).expect("valid JSON");
            let exact: f64 = lit.parse().unwrap();
            assert_eq!(v[0].as_f64(), Some(exact), "{lit}");
        }
    }

    #[test]
    fn parses_everything_and_converts_back() {
        let text = r#"{"a":[1,-2,3.5,true,null,"x\"y"],"b":{"c":"d"},"e":18446744073709551615}"#;
        let value: Value = serde_json::from_str(text).unwrap();
        assert_eq!(value_of(text), Some(value));
    }

    #[test]
    fn strings_without_escapes_borrow() {
        let d = doc(r#"{"key":"plain","esc":"a\nb","k\u00e9":1}"#);
        let members: Vec<_> = d.root().members().collect();
        assert!(matches!(members[0].0, Cow::Borrowed("key")));
        assert!(matches!(members[0].1.as_str(), Cow::Borrowed("plain")));
        assert!(matches!(members[1].1.as_str(), Cow::Owned(s) if s == "a\nb"));
        assert_eq!(members[2].0, "k\u{e9}");
        assert_eq!(members[1].1.raw(), "\"a\\nb\"");
        assert_eq!(d.root().len(), 3);
    }

    #[test]
    fn tape_navigation_skips_subtrees() {
        let d = doc(r#"[[1,[2,3]],{"a":{"b":[4]},"c":5},6]"#);
        let elems: Vec<_> = d.root().elements().collect();
        assert_eq!(elems.len(), 3);
        assert_eq!(elems[0].raw(), "[1,[2,3]]");
        assert_eq!(elems[1].raw(), r#"{"a":{"b":[4]},"c":5}"#);
        assert_eq!(elems[2].raw(), "6");
        assert_eq!(elems[1].get("c").map(|v| v.raw()), Some("5"));
        assert!(elems[1].get("z").is_none());
        assert!(elems[2].get("c").is_none());
        assert_eq!(elems[2].kind(), Kind::Num);
    }

    #[test]
    fn rejects_invalid_and_trailing_garbage_accepts_bom() {
        assert!(Doc::parse(b"{").is_none());
        assert!(Doc::parse(b"{} x").is_none());
        assert!(Doc::parse(b"").is_none());
        assert!(Doc::parse(b"\xEF\xBB\xBF {\"a\":1} \n").is_some());
    }

    #[test]
    fn structural_equality_and_hash() {
        let same = |x: &str, y: &str| doc(x).root().same(doc(y).root());
        let hash = |x: &str| doc(x).root().structural_hash();
        let a = r#"{"x":1,"y":[1,2,{"z":null}]}"#;
        let b = r#"{"y":[1.0,2,{"z":null}],"x":1}"#;
        let c = r#"{"y":[2,1,{"z":null}],"x":1}"#;
        assert!(same(a, b));
        assert_eq!(hash(a), hash(b));
        assert!(!same(a, c));
        assert!(same("0.0", "-0.0"));
        assert_eq!(hash("0.0"), hash("-0.0"));
        assert!(same(r#""\u0041""#, r#""A""#));
        assert_eq!(hash(r#""\u0041""#), hash(r#""A""#));
        assert!(!same("1", "-1"));
        assert!(!same("true", "false"));
        assert!(!same(r#"{"a":1}"#, r#"{"a":1,"b":2}"#));
        assert!(!same("[1]", r#"{"0":1}"#));
    }

    #[test]
    fn numeric_tolerance_is_absolute_then_relative() {
        let n = |s: &str| doc(s).root().as_num();
        assert!(n("0.001").close(n("0.0015"), 0.001));
        assert!(!n("0.001").close(n("0.003"), 0.001));
        assert!(n("1000").close(n("1000.9"), 0.001));
        assert!(!n("1000").close(n("1002"), 0.001));
        assert!(n("5").close(n("5.0"), 0.0));
    }

    fn accepts_like_serde_json(input: &str) {
        let theirs = serde_json::from_str::<Value>(input).ok();
        assert_eq!(value_of(input), theirs, "input {input:?}");
    }

    #[test]
    fn strict_grammar_matches_serde_json() {
        for input in [
            "0",
            "-0",
            "01",
            "-",
            "1.",
            ".5",
            "1e",
            "1e+",
            "1E-2",
            "-1.5e3",
            "1e400",
            "-1e400",
            "18446744073709551616",
            "-9223372036854775808",
            "-9223372036854775809",
            "9223372036854775808",
            "[1,]",
            "[,1]",
            "{\"a\":1,}",
            "{\"a\" 1}",
            "{1:2}",
            "[1 2]",
            "tru",
            "truex",
            "nul",
            "\"abc",
            "\"a\\x\"",
            "\"\\u12\"",
            "\"\\u00e9\\ud83d\\ude00\"",
            "\"\\ud83d\"",
            "\"\\ude00\"",
            "\"\\ud83d\\u0041\"",
            "\"tab\there\"",
            "\"\\/\\b\\f\\n\\r\\t\"",
            " \n\t[ ] \r",
            "{}",
            "[]",
            "[[[]]]",
            "\"\"",
            "{\"\":\"\"}",
            "nan",
            "+1",
            "0x10",
            "[1]x",
            "\"é\"",
        ] {
            accepts_like_serde_json(input);
        }
    }

    #[test]
    fn negative_zero_is_a_float_like_serde_json() {
        assert!(
            matches!(doc("-0").root().as_num(), Num::Float(f) if f == 0.0 && f.is_sign_negative())
        );
        assert!(matches!(
            doc("-9223372036854775808").root().as_num(),
            Num::Neg(i64::MIN)
        ));
    }

    #[test]
    fn nesting_is_capped() {
        let ok = format!("{}{}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
        assert!(Doc::parse(ok.as_bytes()).is_some());
        let deep = format!("{}{}", "[".repeat(MAX_DEPTH + 1), "]".repeat(MAX_DEPTH + 1));
        assert!(Doc::parse(deep.as_bytes()).is_none());
        let deep_obj = "{\"a\":".repeat(10_000);
        assert!(Doc::parse(deep_obj.as_bytes()).is_none());
    }

    #[test]
    fn invalid_utf8_is_not_json() {
        assert!(Doc::parse(b"\"\xff\"").is_none());
    }

    /// Float conversion may differ from serde_json's default (non-roundtrip) algorithm in the
    /// last bit; everything else must be identical.
    fn same_up_to_float_rounding(a: &Value, b: &Value) -> bool {
        match (a, b) {
            (Value::Number(x), Value::Number(y)) if x.is_f64() || y.is_f64() => {
                let (x, y) = (
                    x.as_f64().unwrap_or(f64::NAN),
                    y.as_f64().unwrap_or(f64::NAN),
                );
                // Subnormals carry fewer bits, so serde_json's approximate conversion can be
                // several of their ULPs off; our exact value is pinned by
                // `subnormal_floats_parse_exactly`.
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

    fn arb_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            any::<f64>()
                .prop_filter("finite", |f| f.is_finite())
                .prop_map(Value::from),
            any::<String>().prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 64, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                prop::collection::vec((any::<String>(), inner), 0..6)
                    .prop_map(|e| Value::Object(e.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn parses_what_serde_json_writes(v in arb_json()) {
            for text in [serde_json::to_string(&v).unwrap(), serde_json::to_string_pretty(&v).unwrap()] {
                let ours = value_of(&text);
                prop_assert!(ours.is_some(), "rejected {}", text);
                let theirs: Value = serde_json::from_str(&text).unwrap();
                prop_assert!(same_up_to_float_rounding(&ours.unwrap(), &theirs), "{}", text);
            }
        }

        #[test]
        fn accepts_exactly_what_serde_json_accepts(input in "[\\[\\]{}\",:0-9.eE+\\-a-z\\\\ ]{0,24}") {
            let ours = value_of(&input);
            let theirs = serde_json::from_str::<Value>(&input).ok();
            prop_assert_eq!(ours.is_some(), theirs.is_some(), "input {:?}", input);
            if let (Some(a), Some(b)) = (ours, theirs) {
                prop_assert!(same_up_to_float_rounding(&a, &b), "input {:?}", input);
            }
        }
    }

    #[test]
    fn get_finds_first_key() {
        let d = doc(r#"{"id":7,"id":8}"#);
        assert_eq!(d.root().get("id").map(|v| v.raw()), Some("7"));
        assert!(d.root().get("nope").is_none());
        assert!(doc("[]").root().get("id").is_none());
    }
}
