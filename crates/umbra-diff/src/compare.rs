//! Field-by-field comparison of the primary's and the candidate's response (status, headers,
//! JSON structure, text, binary digest), and a line diff of text bodies for display.
//!
//! Shadow side, off the primary path: `compare` is pure and synchronous. It is built for the
//! common case of (almost) equal documents: byte-identical bodies short-circuit, each JSON body
//! is validated once into a flat tape of byte spans, byte-identical subtrees are skipped with a
//! `memcmp`, and values and path strings are only built when a difference is found.
//!
//! Decisions worth knowing:
//! - A body is tried as JSON when its `Content-Type` mentions `json` or its first non-blank
//!   byte is `{` or `[`. When exactly one side parses, the other is tried as JSON too (so a
//!   scalar body such as `42` still compares structurally); if it still does not parse, one
//!   [`DiffKind::Type`] difference is reported at the empty pointer `""` (the whole body), with
//!   the JSON side as its value and the other side as text (or a digest when binary).
//! - Numbers compare by value: `1` equals `1.0`. With `numeric_tolerance = t`, numbers within
//!   `t * max(1, |a|, |b|)` are equal (absolute below magnitude 1, relative above).
//! - Objects ignore key order. Duplicate keys are matched by first occurrence.
//! - Arrays compare by index; under an `unordered` path they compare as multisets: equal
//!   elements are matched first, then leftovers are paired by their `id` key when they are
//!   objects that have one, then by "equal under the ignore rules", then in order. Differences
//!   inside a pair are reported at the primary element's index, `added` elements at the
//!   candidate's index.
//! - `set-cookie` is compared by cookie *names* only (sorted, without values): values are
//!   secrets and differ per response, but a cookie the candidate stops setting is a real change.
//! - Header values are trimmed; repeated headers are joined with `", "` in arrival order.
//! - The list is capped at `max_differences`; the walk stops as soon as the cap is reached.

use std::borrow::Cow;
use std::time::Duration;

use foldhash::{HashMap, HashMapExt};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::model::{DiffKind, Difference, Response};
use crate::pointer::{escape_segment, PathSegment, PointerPattern};
use crate::tree::{Doc, Kind, Val};

/// Hop-by-hop headers (RFC 9110 §7.6.1), never compared. Headers named in `Connection` are
/// hop-by-hop too, and so is any `proxy-*` header.
pub const HOP_BY_HOP_HEADERS: &[&str] = &[
    "connection",
    "keep-alive",
    "transfer-encoding",
    "te",
    "trailer",
    "upgrade",
];

/// Headers that differ between any two responses of the same build (times, identifiers,
/// tracing, cache bookkeeping) or describe the transfer rather than the content; never compared.
/// A trailing `*` matches a prefix.
pub const NOISY_HEADERS: &[&str] = &[
    "proxy-*",
    "date",
    "age",
    "expires",
    "last-modified",
    "etag",
    "server",
    "via",
    "x-request-id",
    "x-correlation-id",
    "x-umbra-*",
    "x-served-by",
    "x-cache",
    "x-cache-hits",
    "x-runtime",
    "x-response-time",
    "server-timing",
    "traceparent",
    "tracestate",
    "content-length",
];

/// Largest text kept in a `text` difference's values, in bytes.
pub const TEXT_CAP: usize = 4096;

/// Comparison rules of a route. Built from the route's `compare` table.
#[derive(Debug, Clone, PartialEq)]
pub struct CompareConfig {
    /// Extra header names not to compare, lowercase; a trailing `*` matches a prefix.
    pub ignore_headers: Vec<String>,
    /// Body paths whose differences, at or under them, are dropped.
    pub ignore: Vec<PointerPattern>,
    /// Arrays compared as multisets.
    pub unordered: Vec<PointerPattern>,
    /// Numbers equal within `t * max(1, |a|, |b|)`.
    pub numeric_tolerance: Option<f64>,
    /// Cap on the number of differences reported for one comparison.
    pub max_differences: usize,
}

impl Default for CompareConfig {
    fn default() -> Self {
        CompareConfig {
            ignore_headers: Vec::new(),
            ignore: Vec::new(),
            unordered: Vec::new(),
            numeric_tolerance: None,
            max_differences: 200,
        }
    }
}

impl CompareConfig {
    /// Whether a header (any case) is left out of the comparison: hop-by-hop, noisy by
    /// default, or listed in `ignore_headers`.
    pub fn ignores_header(&self, name: &str) -> bool {
        let name = lowercase(name);
        HOP_BY_HOP_HEADERS.contains(&&*name)
            || NOISY_HEADERS.iter().any(|p| name_matches(p, &name))
            || self.ignore_headers.iter().any(|p| name_matches(p, &name))
    }
}

fn name_matches(pattern: &str, lowercase_name: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => {
            lowercase_name.len() >= prefix.len()
                && lowercase_name[..prefix.len()].eq_ignore_ascii_case(prefix)
        }
        None => pattern.eq_ignore_ascii_case(lowercase_name),
    }
}

/// Compares two responses: status, then headers (by name), then the body.
pub fn compare(primary: &Response, candidate: &Response, cfg: &CompareConfig) -> Vec<Difference> {
    let mut out = Vec::new();
    if cfg.max_differences == 0 {
        return out;
    }
    if primary.status != candidate.status {
        out.push(Difference {
            path: "status".to_owned(),
            kind: DiffKind::Status,
            primary: Some(Value::from(primary.status)),
            candidate: Some(Value::from(candidate.status)),
        });
    }
    compare_headers(primary, candidate, cfg, &mut out);
    if out.len() < cfg.max_differences {
        compare_bodies(primary, candidate, cfg, &mut out);
    }
    out.truncate(cfg.max_differences);
    out
}

// ---------------------------------------------------------------------------------------------
// Headers

/// A header name in lower case, borrowed when it already is (names from `http` always are).
fn lowercase(name: &str) -> Cow<'_, str> {
    if name.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(name.to_ascii_lowercase())
    } else {
        Cow::Borrowed(name)
    }
}

/// The headers that take part in a comparison as (lower-case name, value), sorted by name with
/// each name's values in arrival order (borrowed: most responses differ in no header, so
/// nothing is copied unless a difference is reported; one vector, no map).
fn comparable_headers<'a>(resp: &'a Response, cfg: &CompareConfig) -> Vec<(Cow<'a, str>, &'a str)> {
    let nominated: Vec<Cow<'a, str>> = resp
        .headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("connection"))
        .flat_map(|(_, v)| v.split(','))
        .map(|t| lowercase(t.trim()))
        .filter(|t| !t.is_empty())
        .collect();
    let mut out = Vec::with_capacity(resp.headers.len());
    for (name, value) in &resp.headers {
        let name = lowercase(name);
        if cfg.ignores_header(&name) || nominated.contains(&name) {
            continue;
        }
        let value = if name == "set-cookie" {
            cookie_name(value)
        } else {
            value.trim()
        };
        out.push((name, value));
    }
    // Stable: a name's values keep their order.
    out.sort_by(|x, y| x.0.cmp(&y.0));
    // Cookies compare as the set of names set.
    if let Some(start) = out.iter().position(|(n, _)| n == "set-cookie") {
        let end = start + group_len(&out[start..]);
        out[start..end].sort_by(|x, y| x.1.cmp(y.1));
        let mut names: Vec<_> = out.drain(start..end).collect();
        names.dedup_by(|x, y| x.1 == y.1);
        out.splice(start..start, names);
    }
    out
}

/// How many entries at the front of a sorted header list share the first one's name.
fn group_len(list: &[(Cow<'_, str>, &str)]) -> usize {
    list.iter().take_while(|(n, _)| *n == list[0].0).count()
}

fn cookie_name(set_cookie: &str) -> &str {
    let pair = set_cookie.split(';').next().unwrap_or_default();
    pair.split('=').next().unwrap_or_default().trim()
}

fn compare_headers(
    primary: &Response,
    candidate: &Response,
    cfg: &CompareConfig,
    out: &mut Vec<Difference>,
) {
    let a = comparable_headers(primary, cfg);
    let b = comparable_headers(candidate, cfg);
    let values = |group: &[(Cow<'_, str>, &str)]| -> String {
        group.iter().map(|(_, v)| *v).collect::<Vec<_>>().join(", ")
    };
    let header_diff = |name: &str, p: Option<String>, c: Option<String>| Difference {
        path: format!("header:{name}"),
        kind: DiffKind::Header,
        primary: p.map(Value::String),
        candidate: c.map(Value::String),
    };
    // Both lists are sorted by name: walk them together, one name (group) at a time.
    let (mut i, mut j) = (0, 0);
    while i < a.len() || j < b.len() {
        let order = match (a.get(i), b.get(j)) {
            (Some(x), Some(y)) => x.0.cmp(&y.0),
            (Some(_), None) => std::cmp::Ordering::Less,
            _ => std::cmp::Ordering::Greater,
        };
        match order {
            std::cmp::Ordering::Less => {
                let g = &a[i..i + group_len(&a[i..])];
                out.push(header_diff(&g[0].0, Some(values(g)), None));
                i += g.len();
            }
            std::cmp::Ordering::Greater => {
                let g = &b[j..j + group_len(&b[j..])];
                out.push(header_diff(&g[0].0, None, Some(values(g))));
                j += g.len();
            }
            std::cmp::Ordering::Equal => {
                let ga = &a[i..i + group_len(&a[i..])];
                let gb = &b[j..j + group_len(&b[j..])];
                let same = ga.iter().map(|(_, v)| v).eq(gb.iter().map(|(_, v)| v));
                if !same {
                    // One field "a, b" and two fields "a" and "b" say the same thing.
                    let (va, vb) = (values(ga), values(gb));
                    if va != vb {
                        out.push(header_diff(&ga[0].0, Some(va), Some(vb)));
                    }
                }
                i += ga.len();
                j += gb.len();
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Bodies

fn wants_json(resp: &Response) -> bool {
    let ct_json = resp
        .header("content-type")
        .is_some_and(|ct| ct.to_ascii_lowercase().contains("json"));
    let body = resp
        .body
        .strip_prefix(b"\xEF\xBB\xBF")
        .unwrap_or(&resp.body);
    ct_json
        || matches!(
            body.iter().find(|b| !b.is_ascii_whitespace()),
            Some(b'{' | b'[')
        )
}

fn compare_bodies(
    primary: &Response,
    candidate: &Response,
    cfg: &CompareConfig,
    out: &mut Vec<Difference>,
) {
    // Byte-identical bodies are equal under every rule (rules only ever remove differences).
    if primary.body == candidate.body {
        return;
    }
    let (pa, ca) = (wants_json(primary), wants_json(candidate));
    let mut pj = if pa { Doc::parse(&primary.body) } else { None };
    let mut cj = if ca {
        Doc::parse(&candidate.body)
    } else {
        None
    };
    if pj.is_some() && cj.is_none() && !ca {
        cj = Doc::parse(&candidate.body);
    }
    if cj.is_some() && pj.is_none() && !pa {
        pj = Doc::parse(&primary.body);
    }
    match (pj, cj) {
        (Some(a), Some(b)) => diff_json(&a, &b, cfg, out),
        (Some(a), None) => {
            if !whole_body_ignored(cfg) {
                out.push(Difference {
                    path: String::new(),
                    kind: DiffKind::Type,
                    primary: Some(a.root().to_value()),
                    candidate: Some(opaque_value(&candidate.body)),
                });
            }
        }
        (None, Some(b)) => {
            if !whole_body_ignored(cfg) {
                out.push(Difference {
                    path: String::new(),
                    kind: DiffKind::Type,
                    primary: Some(opaque_value(&primary.body)),
                    candidate: Some(b.root().to_value()),
                });
            }
        }
        (None, None) => out.push(text_difference(&primary.body, &candidate.body)),
    }
}

fn whole_body_ignored(cfg: &CompareConfig) -> bool {
    cfg.ignore.iter().any(|p| p.depth() == 0)
}

/// A non-JSON body as a difference value: its text (capped) or, when binary, its digest.
fn opaque_value(body: &[u8]) -> Value {
    match std::str::from_utf8(body) {
        Ok(text) => Value::String(truncate_text(text)),
        Err(_) => Value::String(digest(body)),
    }
}

fn text_difference(a: &[u8], b: &[u8]) -> Difference {
    let (primary, candidate) = match (std::str::from_utf8(a), std::str::from_utf8(b)) {
        (Ok(ta), Ok(tb)) => (truncate_text(ta), truncate_text(tb)),
        _ => (digest(a), digest(b)),
    };
    Difference {
        path: "body".to_owned(),
        kind: DiffKind::Text,
        primary: Some(Value::String(primary)),
        candidate: Some(Value::String(candidate)),
    }
}

/// `sha256:<hex>` of a body.
pub fn digest(body: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(body)))
}

/// Cuts text to [`TEXT_CAP`] bytes at a character boundary, marking the cut with `…`.
fn truncate_text(text: &str) -> String {
    if text.len() <= TEXT_CAP {
        return text.to_owned();
    }
    let mut end = TEXT_CAP;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

// ---------------------------------------------------------------------------------------------
// JSON structure

fn diff_json(a: &Doc<'_>, b: &Doc<'_>, cfg: &CompareConfig, out: &mut Vec<Difference>) {
    let mut walker = Walker {
        cfg,
        ignore_depths: depth_mask(&cfg.ignore),
        unordered_depths: depth_mask(&cfg.unordered),
        path: Vec::with_capacity(16),
        out: std::mem::take(out),
        limit: cfg.max_differences,
    };
    walker.diff(a.root(), b.root());
    *out = walker.out;
}

/// Bit `d` is set when some pattern has `d` segments; bit 63 stands for "63 or more".
fn depth_mask(patterns: &[PointerPattern]) -> u64 {
    patterns
        .iter()
        .fold(0, |m, p| m | (1u64 << p.depth().min(63)))
}

fn depth_bit(depth: usize) -> u64 {
    1u64 << depth.min(63)
}

/// One step of the path being walked; keys borrow from the document unless escaped.
#[derive(Debug, Clone)]
enum Step<'d> {
    Key(Cow<'d, str>),
    Index(usize),
}

impl PathSegment for Step<'_> {
    fn matches_literal(&self, key: &str, index: Option<usize>) -> bool {
        match self {
            Step::Key(k) => k == key,
            Step::Index(i) => index == Some(*i),
        }
    }
}

fn render_path(path: &[Step<'_>]) -> String {
    use std::fmt::Write;
    let mut out = String::with_capacity(path.len() * 8);
    for step in path {
        out.push('/');
        match step {
            Step::Key(k) => out.push_str(&escape_segment(k)),
            Step::Index(i) => {
                // Writing to a String cannot fail.
                let _ = write!(out, "{i}");
            }
        }
    }
    out
}

type Members<'d> = Vec<(Cow<'d, str>, Val<'d>)>;

struct Walker<'c, 'd> {
    cfg: &'c CompareConfig,
    ignore_depths: u64,
    unordered_depths: u64,
    path: Vec<Step<'d>>,
    out: Vec<Difference>,
    limit: usize,
}

impl<'d> Walker<'_, 'd> {
    fn full(&self) -> bool {
        self.out.len() >= self.limit
    }

    /// Whether the current path is ignored. Ancestors were checked on the way down, so an
    /// exact match at this depth is enough.
    fn ignored(&self) -> bool {
        self.ignore_depths & depth_bit(self.path.len()) != 0
            && self.cfg.ignore.iter().any(|p| p.matches(&self.path))
    }

    fn unordered(&self) -> bool {
        self.unordered_depths & depth_bit(self.path.len()) != 0
            && self.cfg.unordered.iter().any(|p| p.matches(&self.path))
    }

    /// Whether any rule could change the outcome below the current path, i.e. whether
    /// "equal under the rules" may differ from strict equality there.
    fn rules_below(&self) -> bool {
        let d = self.path.len();
        self.cfg.numeric_tolerance.is_some()
            || self.cfg.ignore.iter().any(|p| p.depth() > d)
            || self.cfg.unordered.iter().any(|p| p.depth() > d)
    }

    fn emit(&mut self, kind: DiffKind, primary: Option<Value>, candidate: Option<Value>) {
        if !self.full() {
            self.out.push(Difference {
                path: render_path(&self.path),
                kind,
                primary,
                candidate,
            });
        }
    }

    /// Emits an `added`/`removed` difference for a child, unless that child is ignored.
    fn emit_child(&mut self, step: Step<'d>, kind: DiffKind, val: Val<'_>) {
        if self.full() {
            return;
        }
        self.path.push(step);
        if !self.ignored() {
            let v = Some(val.to_value());
            match kind {
                DiffKind::Added => self.emit(kind, None, v),
                _ => self.emit(kind, v, None),
            }
        }
        self.path.pop();
    }

    fn diff(&mut self, a: Val<'d>, b: Val<'d>) {
        // Identical bytes are equal under every rule: the common case skips whole subtrees.
        if self.full() || a.raw() == b.raw() || self.ignored() {
            return;
        }
        match (a.kind(), b.kind()) {
            (Kind::Null, Kind::Null) => {}
            (Kind::Bool, Kind::Bool) => {
                self.emit(DiffKind::Changed, Some(a.to_value()), Some(b.to_value()));
            }
            (Kind::Num, Kind::Num) => {
                let (x, y) = (a.as_num(), b.as_num());
                let equal = match self.cfg.numeric_tolerance {
                    Some(t) => x.close(y, t),
                    None => x.same(y),
                };
                if !equal {
                    self.emit(DiffKind::Changed, Some(a.to_value()), Some(b.to_value()));
                }
            }
            (Kind::Str, Kind::Str) => {
                if a.as_str() != b.as_str() {
                    self.emit(DiffKind::Changed, Some(a.to_value()), Some(b.to_value()));
                }
            }
            (Kind::Obj, Kind::Obj) => self.diff_objects(a, b),
            (Kind::Arr, Kind::Arr) => {
                if self.unordered() {
                    self.diff_unordered(a, b);
                } else {
                    self.diff_ordered(a, b);
                }
            }
            _ => self.emit(DiffKind::Type, Some(a.to_value()), Some(b.to_value())),
        }
    }

    fn diff_objects(&mut self, a: Val<'d>, b: Val<'d>) {
        let am: Members<'d> = a.members().collect();
        let bm: Members<'d> = b.members().collect();
        let mut b_index = KeyIndex::new(&bm);
        let mut all_in_order = am.len() == bm.len();
        for (i, (k, va)) in am.iter().enumerate() {
            if self.full() {
                return;
            }
            match b_index.find(k, i) {
                Some(j) => {
                    all_in_order &= i == j;
                    self.path.push(Step::Key(k.clone()));
                    self.diff(*va, bm[j].1);
                    self.path.pop();
                }
                None => {
                    all_in_order = false;
                    self.emit_child(Step::Key(k.clone()), DiffKind::Removed, *va);
                }
            }
        }
        if all_in_order {
            // Same keys in the same order: nothing can have been added.
            return;
        }
        let mut a_index = KeyIndex::new(&am);
        for (j, (k, vb)) in bm.iter().enumerate() {
            if self.full() {
                return;
            }
            if a_index.find(k, j).is_none() {
                self.emit_child(Step::Key(k.clone()), DiffKind::Added, *vb);
            }
        }
    }

    fn diff_ordered(&mut self, a: Val<'d>, b: Val<'d>) {
        let (na, nb) = (a.len(), b.len());
        if na != nb {
            self.emit(
                DiffKind::Length,
                Some(Value::from(na)),
                Some(Value::from(nb)),
            );
        }
        for (i, (x, y)) in a.elements().zip(b.elements()).enumerate() {
            if self.full() {
                return;
            }
            self.path.push(Step::Index(i));
            self.diff(x, y);
            self.path.pop();
        }
        for (i, x) in a.elements().enumerate().skip(nb) {
            self.emit_child(Step::Index(i), DiffKind::Removed, x);
        }
        for (j, y) in b.elements().enumerate().skip(na) {
            self.emit_child(Step::Index(j), DiffKind::Added, y);
        }
    }

    /// Whether two elements at index `i` of the current array are equal under the rules.
    fn equal_under_rules(&mut self, i: usize, x: Val<'d>, y: Val<'d>) -> bool {
        let saved_out = std::mem::take(&mut self.out);
        let saved_limit = std::mem::replace(&mut self.limit, 1);
        self.path.push(Step::Index(i));
        self.diff(x, y);
        self.path.pop();
        let equal = self.out.is_empty();
        self.out = saved_out;
        self.limit = saved_limit;
        equal
    }

    fn diff_unordered(&mut self, a: Val<'d>, b: Val<'d>) {
        // Largest leftover product for which the quadratic "equal under the rules" matching
        // is attempted; beyond it leftovers are paired in order.
        const MAX_RULE_MATCHING: usize = 64 * 64;

        let a: Vec<Val<'d>> = a.elements().collect();
        let b: Vec<Val<'d>> = b.elements().collect();
        if a.len() != b.len() {
            self.emit(
                DiffKind::Length,
                Some(Value::from(a.len())),
                Some(Value::from(b.len())),
            );
        }
        // pair_of_a[i] = Some((j, equal)): a[i] is matched to b[j]; `equal` means known equal.
        let mut pair_of_a: Vec<Option<(usize, bool)>> = vec![None; a.len()];
        let mut b_used = vec![false; b.len()];

        // 1a. Byte-identical elements: same position first, then anywhere.
        for (i, (x, y)) in a.iter().zip(&b).enumerate() {
            if x.raw() == y.raw() {
                b_used[i] = true;
                pair_of_a[i] = Some((i, true));
            }
        }
        if pair_of_a.iter().any(Option::is_none) {
            let mut by_bytes: HashMap<&str, Vec<usize>> = HashMap::new();
            for (j, y) in b.iter().enumerate().rev().filter(|(j, _)| !b_used[*j]) {
                by_bytes.entry(y.raw()).or_default().push(j);
            }
            for (i, x) in a.iter().enumerate() {
                if pair_of_a[i].is_some() {
                    continue;
                }
                if let Some(j) = by_bytes.get_mut(x.raw()).and_then(Vec::pop) {
                    b_used[j] = true;
                    pair_of_a[i] = Some((j, true));
                }
            }
        }

        // 1b. Strictly equal elements (other spelling, key order), through structural hashes.
        let mut buckets: HashMap<u64, Vec<usize>> = HashMap::new();
        for (j, y) in b.iter().enumerate().rev().filter(|(j, _)| !b_used[*j]) {
            buckets.entry(y.structural_hash()).or_default().push(j);
        }
        for (i, x) in a.iter().enumerate() {
            if pair_of_a[i].is_some() || buckets.is_empty() {
                continue;
            }
            if let Some(bucket) = buckets.get_mut(&x.structural_hash()) {
                if let Some(pos) = bucket.iter().rposition(|&j| x.same(b[j])) {
                    let j = bucket.remove(pos);
                    b_used[j] = true;
                    pair_of_a[i] = Some((j, true));
                }
            }
        }

        // 2. Objects with the same `id`.
        let mut by_id: HashMap<u64, Vec<usize>> = HashMap::new();
        for (j, y) in b.iter().enumerate().rev() {
            if let (false, Some(id)) = (b_used[j], y.get("id")) {
                by_id.entry(id.structural_hash()).or_default().push(j);
            }
        }
        if !by_id.is_empty() {
            for (i, x) in a.iter().enumerate() {
                let (None, Some(id)) = (pair_of_a[i], x.get("id")) else {
                    continue;
                };
                if let Some(bucket) = by_id.get_mut(&id.structural_hash()) {
                    let found = bucket
                        .iter()
                        .rposition(|&j| b[j].get("id").is_some_and(|bid| bid.same(id)));
                    if let Some(pos) = found {
                        let j = bucket.remove(pos);
                        b_used[j] = true;
                        pair_of_a[i] = Some((j, false));
                    }
                }
            }
        }

        // 3. Elements equal under the rules (ignored fields, tolerance, nested unordered).
        let left_a: Vec<usize> = (0..a.len()).filter(|&i| pair_of_a[i].is_none()).collect();
        let left_b = b_used.iter().filter(|used| !**used).count();
        if !left_a.is_empty()
            && left_b > 0
            && left_a.len() * left_b <= MAX_RULE_MATCHING
            && self.rules_below()
        {
            for &i in &left_a {
                for j in 0..b.len() {
                    if !b_used[j] && self.equal_under_rules(i, a[i], b[j]) {
                        b_used[j] = true;
                        pair_of_a[i] = Some((j, true));
                        break;
                    }
                }
            }
        }

        // 4. Whatever is left is paired in order.
        let free: Vec<usize> = (0..b.len()).filter(|&j| !b_used[j]).collect();
        let mut free_b = free.into_iter();
        for slot in pair_of_a.iter_mut().filter(|s| s.is_none()) {
            match free_b.next() {
                Some(j) => {
                    b_used[j] = true;
                    *slot = Some((j, false));
                }
                None => break,
            }
        }

        for (i, x) in a.iter().enumerate() {
            if self.full() {
                return;
            }
            match pair_of_a[i] {
                Some((_, true)) => {}
                Some((j, false)) => {
                    self.path.push(Step::Index(i));
                    self.diff(*x, b[j]);
                    self.path.pop();
                }
                None => self.emit_child(Step::Index(i), DiffKind::Removed, *x),
            }
        }
        for (j, y) in b.iter().enumerate() {
            if !b_used[j] {
                self.emit_child(Step::Index(j), DiffKind::Added, *y);
            }
        }
    }
}

/// Finds keys among an object's members: first at the position hint (objects of two builds
/// usually share their key order), then by scanning small objects, then through a hash index
/// built on first need for large ones.
struct KeyIndex<'e, 'd> {
    members: &'e [(Cow<'d, str>, Val<'d>)],
    index: Option<HashMap<&'e str, usize>>,
}

impl<'e, 'd> KeyIndex<'e, 'd> {
    const SCAN_LIMIT: usize = 16;

    fn new(members: &'e [(Cow<'d, str>, Val<'d>)]) -> Self {
        KeyIndex {
            members,
            index: None,
        }
    }

    fn find(&mut self, key: &str, hint: usize) -> Option<usize> {
        if let Some((k, _)) = self.members.get(hint) {
            if k == key {
                return Some(hint);
            }
        }
        if self.members.len() <= Self::SCAN_LIMIT {
            return self.members.iter().position(|(k, _)| k == key);
        }
        let members = self.members;
        let index = self.index.get_or_insert_with(|| {
            let mut m = HashMap::with_capacity(members.len());
            for (i, (k, _)) in members.iter().enumerate() {
                // First occurrence wins, as in `Val::get`.
                m.entry(k.as_ref()).or_insert(i);
            }
            m
        });
        index.get(key).copied()
    }
}

// ---------------------------------------------------------------------------------------------
// Line diff for display

/// What happened to one line in a [`line_diff`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LineOp {
    Equal,
    Insert,
    Delete,
}

/// One line of a unified-style diff. Line numbers are 1-based; `old_line` is absent for
/// inserted lines, `new_line` for deleted ones.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LineChange {
    pub op: LineOp,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub old_line: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_line: Option<usize>,
    /// The line without its line terminator.
    pub text: String,
}

/// A line diff of two texts for display (Myers via `similar`). Pathological inputs are bounded
/// by a 200 ms deadline, after which `similar` returns a valid but less minimal diff.
pub fn line_diff(a: &str, b: &str) -> Vec<LineChange> {
    let diff = similar::TextDiff::configure()
        .algorithm(similar::Algorithm::Myers)
        .timeout(Duration::from_millis(200))
        .diff_lines(a, b);
    diff.iter_all_changes()
        .map(|change| LineChange {
            op: match change.tag() {
                similar::ChangeTag::Equal => LineOp::Equal,
                similar::ChangeTag::Insert => LineOp::Insert,
                similar::ChangeTag::Delete => LineOp::Delete,
            },
            old_line: change.old_index().map(|i| i + 1),
            new_line: change.new_index().map(|i| i + 1),
            text: change
                .value()
                .trim_end_matches('\n')
                .trim_end_matches('\r')
                .to_owned(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn json_resp(body: &str) -> Response {
        Response {
            status: 200,
            headers: vec![("content-type".into(), "application/json".into())],
            body: body.as_bytes().to_vec(),
            ..Response::default()
        }
    }

    fn text_resp(body: &[u8]) -> Response {
        Response {
            status: 200,
            headers: vec![("content-type".into(), "text/plain".into())],
            body: body.to_vec(),
            ..Response::default()
        }
    }

    fn pats(list: &[&str]) -> Vec<PointerPattern> {
        list.iter()
            .map(|p| PointerPattern::parse(p).expect("pattern"))
            .collect()
    }

    fn diff_with(a: &str, b: &str, cfg: &CompareConfig) -> Vec<Difference> {
        compare(&json_resp(a), &json_resp(b), cfg)
    }

    /// Differences without the header ones (for responses of different content types).
    fn body_only(diffs: Vec<Difference>) -> Vec<Difference> {
        diffs
            .into_iter()
            .filter(|d| d.kind != DiffKind::Header)
            .collect()
    }

    fn diff(a: &str, b: &str) -> Vec<Difference> {
        diff_with(a, b, &CompareConfig::default())
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
    fn identical_responses_have_no_differences() {
        let r = json_resp(r#"{"a":[1,2,3]}"#);
        assert!(compare(&r, &r, &CompareConfig::default()).is_empty());
        let t = text_resp(b"hello");
        assert!(compare(&t, &t, &CompareConfig::default()).is_empty());
        let empty = Response::default();
        assert!(compare(&empty, &empty, &CompareConfig::default()).is_empty());
    }

    #[test]
    fn status_difference() {
        let mut b = json_resp("{}");
        b.status = 500;
        assert_eq!(
            compare(&json_resp("{}"), &b, &CompareConfig::default()),
            vec![d(
                "status",
                DiffKind::Status,
                Some(json!(200)),
                Some(json!(500))
            )]
        );
    }

    #[test]
    fn header_differences_changed_missing_extra_sorted() {
        let mut a = text_resp(b"x");
        let mut b = text_resp(b"x");
        a.headers.push(("x-b".into(), "1".into()));
        a.headers.push(("x-c".into(), "gone".into()));
        b.headers.push(("x-b".into(), "2".into()));
        b.headers.push(("x-a".into(), "new".into()));
        let diffs = compare(&a, &b, &CompareConfig::default());
        assert_eq!(
            diffs,
            vec![
                d("header:x-a", DiffKind::Header, None, Some(json!("new"))),
                d(
                    "header:x-b",
                    DiffKind::Header,
                    Some(json!("1")),
                    Some(json!("2"))
                ),
                d("header:x-c", DiffKind::Header, Some(json!("gone")), None),
            ]
        );
    }

    #[test]
    fn repeated_headers_are_joined_in_order_and_names_are_case_insensitive() {
        let mut a = text_resp(b"x");
        let mut b = text_resp(b"x");
        a.headers.push(("Vary".into(), "accept".into()));
        a.headers.push(("vary".into(), " origin ".into()));
        b.headers.push(("vary".into(), "accept, origin".into()));
        assert!(compare(&a, &b, &CompareConfig::default()).is_empty());
        b.headers.push(("vary".into(), "x".into()));
        assert_eq!(
            compare(&a, &b, &CompareConfig::default()),
            vec![d(
                "header:vary",
                DiffKind::Header,
                Some(json!("accept, origin")),
                Some(json!("accept, origin, x"))
            )]
        );
    }

    #[test]
    fn hop_by_hop_noisy_and_configured_headers_are_ignored() {
        let mut a = text_resp(b"x");
        let mut b = text_resp(b"x");
        for (n, va, vb) in [
            ("date", "Mon", "Tue"),
            ("connection", "close", "keep-alive"),
            ("transfer-encoding", "chunked", "identity"),
            ("proxy-authenticate", "a", "b"),
            ("x-umbra-shadow", "0", "1"),
            ("x-request-id", "1", "2"),
            ("content-length", "10", "11"),
            ("etag", "\"a\"", "\"b\""),
            ("traceparent", "00-a", "00-b"),
            ("x-custom-noise", "1", "2"),
            ("x-amz-id", "1", "2"),
            ("x-hop", "1", "2"),
        ] {
            a.headers.push((n.into(), va.into()));
            b.headers.push((n.into(), vb.into()));
        }
        // `x-hop` is nominated hop-by-hop by the Connection header.
        a.headers.push(("connection".into(), "X-Hop".into()));
        b.headers.push(("connection".into(), "x-hop, close".into()));
        let cfg = CompareConfig {
            ignore_headers: vec!["x-custom-noise".into(), "x-amz-*".into()],
            ..CompareConfig::default()
        };
        let diffs = compare(&a, &b, &cfg);
        assert!(diffs.is_empty(), "{diffs:?}");
        assert!(cfg.ignores_header("Date"));
        assert!(cfg.ignores_header("X-Umbra-Anything"));
        assert!(!cfg.ignores_header("content-type"));
        assert!(!cfg.ignores_header("x-umbr"));
    }

    #[test]
    fn set_cookie_is_compared_by_cookie_names_only() {
        let mut a = text_resp(b"x");
        let mut b = text_resp(b"x");
        a.headers
            .push(("set-cookie".into(), "sid=secret1; Path=/".into()));
        a.headers.push(("set-cookie".into(), "theme=dark".into()));
        b.headers.push(("set-cookie".into(), "theme=light".into()));
        b.headers
            .push(("set-cookie".into(), "sid=secret2; HttpOnly".into()));
        assert!(compare(&a, &b, &CompareConfig::default()).is_empty());
        b.headers.retain(|(_, v)| !v.starts_with("sid"));
        let diffs = compare(&a, &b, &CompareConfig::default());
        assert_eq!(
            diffs,
            vec![d(
                "header:set-cookie",
                DiffKind::Header,
                Some(json!("sid, theme")),
                Some(json!("theme"))
            )]
        );
        assert!(!format!("{diffs:?}").contains("secret"));
    }

    #[test]
    fn changed_values_report_pointer_paths() {
        assert_eq!(
            diff(
                r#"{"items":[{"price":1},{"price":2}]}"#,
                r#"{"items":[{"price":1},{"price":3}]}"#
            ),
            vec![d(
                "/items/1/price",
                DiffKind::Changed,
                Some(json!(2)),
                Some(json!(3))
            )]
        );
        assert_eq!(
            diff(r#"{"a":true,"b":"x"}"#, r#"{"a":false,"b":"y"}"#),
            vec![
                d(
                    "/a",
                    DiffKind::Changed,
                    Some(json!(true)),
                    Some(json!(false))
                ),
                d("/b", DiffKind::Changed, Some(json!("x")), Some(json!("y"))),
            ]
        );
    }

    #[test]
    fn keys_are_escaped_in_paths() {
        assert_eq!(
            diff(r#"{"a/b":{"c~d":1}}"#, r#"{"a/b":{"c~d":2}}"#)[0].path,
            "/a~1b/c~0d"
        );
    }

    #[test]
    fn spelling_and_whitespace_do_not_matter() {
        assert!(diff(
            r#"{"k\u00e9":"\u0041","n":1e1}"#,
            r#"{ "ké" : "A", "n" : 10 }"#
        )
        .is_empty());
        assert_eq!(
            diff(r#"{"k\u00e9":"\u0041"}"#, r#"{"ké":"B"}"#),
            vec![d(
                "/ké",
                DiffKind::Changed,
                Some(json!("A")),
                Some(json!("B"))
            )]
        );
        assert_eq!(
            diff(r#"{"a\"b":[true]}"#, r#"{"a\"b":[false]}"#)[0].path,
            "/a\"b/0"
        );
    }

    #[test]
    fn type_differences() {
        assert_eq!(
            diff(r#"{"a":1}"#, r#"{"a":"1"}"#),
            vec![d("/a", DiffKind::Type, Some(json!(1)), Some(json!("1")))]
        );
        assert_eq!(
            diff(r#"{"a":null}"#, r#"{"a":{}}"#),
            vec![d("/a", DiffKind::Type, Some(json!(null)), Some(json!({})))]
        );
        assert_eq!(
            diff("[1]", r#"{"0":1}"#),
            vec![d(
                "",
                DiffKind::Type,
                Some(json!([1])),
                Some(json!({"0":1}))
            )]
        );
    }

    #[test]
    fn added_and_removed_keys() {
        assert_eq!(
            diff(r#"{"a":1,"b":2}"#, r#"{"b":2,"c":{"x":[1]}}"#),
            vec![
                d("/a", DiffKind::Removed, Some(json!(1)), None),
                d("/c", DiffKind::Added, None, Some(json!({"x":[1]}))),
            ]
        );
    }

    #[test]
    fn key_order_does_not_matter_small_and_large_objects() {
        assert!(diff(r#"{"a":1,"b":2}"#, r#"{"b":2,"a":1}"#).is_empty());
        let keys: Vec<String> = (0..100).map(|i| format!("\"k{i}\":{i}")).collect();
        let fwd = format!("{{{}}}", keys.join(","));
        let mut rev_keys = keys.clone();
        rev_keys.reverse();
        let rev = format!("{{{}}}", rev_keys.join(","));
        assert!(diff(&fwd, &rev).is_empty());
        rev_keys[0] = "\"k99\":100".into();
        rev_keys.push("\"extra\":1".into());
        let changed = format!("{{{}}}", rev_keys.join(","));
        assert_eq!(
            diff(&fwd, &changed),
            vec![
                d("/k99", DiffKind::Changed, Some(json!(99)), Some(json!(100))),
                d("/extra", DiffKind::Added, None, Some(json!(1))),
            ]
        );
    }

    #[test]
    fn arrays_compare_by_index_with_length() {
        assert_eq!(
            diff(r#"{"a":[1,2,3]}"#, r#"{"a":[1,5]}"#),
            vec![
                d("/a", DiffKind::Length, Some(json!(3)), Some(json!(2))),
                d("/a/1", DiffKind::Changed, Some(json!(2)), Some(json!(5))),
                d("/a/2", DiffKind::Removed, Some(json!(3)), None),
            ]
        );
        assert_eq!(
            diff("[1]", "[1,{\"x\":1}]"),
            vec![
                d("", DiffKind::Length, Some(json!(1)), Some(json!(2))),
                d("/1", DiffKind::Added, None, Some(json!({"x":1}))),
            ]
        );
        // Order matters by default.
        assert_eq!(diff("[1,2]", "[2,1]").len(), 2);
    }

    #[test]
    fn numbers_compare_by_value_and_tolerance() {
        assert!(diff(r#"{"a":1}"#, r#"{"a":1.0}"#).is_empty());
        assert!(diff(r#"{"a":1e2}"#, r#"{"a":100}"#).is_empty());
        assert_eq!(diff(r#"{"a":1.5}"#, r#"{"a":1.50001}"#).len(), 1);
        let cfg = CompareConfig {
            numeric_tolerance: Some(0.001),
            ..CompareConfig::default()
        };
        assert!(diff_with(r#"{"a":1.5}"#, r#"{"a":1.50001}"#, &cfg).is_empty());
        assert_eq!(diff_with(r#"{"a":1.5}"#, r#"{"a":1.6}"#, &cfg).len(), 1);
        assert!(diff_with("[100000]", "[100050]", &cfg).is_empty());
        assert_eq!(diff_with("[100000]", "[100200]", &cfg).len(), 1);
    }

    #[test]
    fn ignore_drops_paths_at_or_under_with_wildcards() {
        let cfg = CompareConfig {
            ignore: pats(&["/meta", "/items/*/etag"]),
            ..CompareConfig::default()
        };
        let a = r#"{"meta":{"t":1},"items":[{"etag":"a","v":1},{"etag":"b","v":2}]}"#;
        let b = r#"{"meta":{"t":2,"n":3},"items":[{"etag":"c","v":1},{"v":3}]}"#;
        assert_eq!(
            diff_with(a, b, &cfg),
            vec![d(
                "/items/1/v",
                DiffKind::Changed,
                Some(json!(2)),
                Some(json!(3))
            )]
        );
        // Ignoring an added/removed key or an array element.
        let cfg = CompareConfig {
            ignore: pats(&["/new", "/list/1"]),
            ..CompareConfig::default()
        };
        assert_eq!(
            diff_with(r#"{"list":[1]}"#, r#"{"new":1,"list":[1,2]}"#, &cfg),
            vec![d("/list", DiffKind::Length, Some(json!(1)), Some(json!(2)))]
        );
    }

    #[test]
    fn ignore_root_ignores_the_whole_body() {
        let cfg = CompareConfig {
            ignore: pats(&[""]),
            ..CompareConfig::default()
        };
        assert!(diff_with(r#"{"a":1}"#, r#"{"a":2}"#, &cfg).is_empty());
        assert!(compare(&text_resp(b"{}"), &text_resp(b"oops"), &cfg).is_empty());
    }

    #[test]
    fn unordered_arrays_compare_as_multisets() {
        let cfg = CompareConfig {
            unordered: pats(&["/tags"]),
            ..CompareConfig::default()
        };
        assert!(diff_with(
            r#"{"tags":["a","b","c"]}"#,
            r#"{"tags":["c","a","b"]}"#,
            &cfg
        )
        .is_empty());
        // Multiplicity counts.
        assert_eq!(
            diff_with(r#"{"tags":["a","a","b"]}"#, r#"{"tags":["b","a"]}"#, &cfg),
            vec![
                d("/tags", DiffKind::Length, Some(json!(3)), Some(json!(2))),
                // The "a" at index 1 stays matched in place; the other one is extra.
                d("/tags/0", DiffKind::Removed, Some(json!("a")), None),
            ]
        );
        // Leftovers are paired and diffed.
        assert_eq!(
            diff_with(
                r#"{"tags":["a","b","c"]}"#,
                r#"{"tags":["c","x","a"]}"#,
                &cfg
            ),
            vec![d(
                "/tags/1",
                DiffKind::Changed,
                Some(json!("b")),
                Some(json!("x"))
            )]
        );
        assert_eq!(
            diff_with(r#"{"tags":["a"]}"#, r#"{"tags":["b","a"]}"#, &cfg),
            vec![
                d("/tags", DiffKind::Length, Some(json!(1)), Some(json!(2))),
                d("/tags/0", DiffKind::Added, None, Some(json!("b"))),
            ]
        );
    }

    #[test]
    fn unordered_pairs_objects_by_id() {
        let cfg = CompareConfig {
            unordered: pats(&["/items"]),
            ..CompareConfig::default()
        };
        let a = r#"{"items":[{"id":1,"n":"a"},{"id":2,"n":"b"},{"id":3,"n":"c"}]}"#;
        let b = r#"{"items":[{"id":3,"n":"c"},{"id":2,"n":"B"},{"id":1,"n":"a"}]}"#;
        assert_eq!(
            diff_with(a, b, &cfg),
            vec![d(
                "/items/1/n",
                DiffKind::Changed,
                Some(json!("b")),
                Some(json!("B"))
            )]
        );
    }

    #[test]
    fn unordered_matches_elements_equal_under_ignore_rules() {
        let cfg = CompareConfig {
            unordered: pats(&["/items"]),
            ignore: pats(&["/items/*/at"]),
            ..CompareConfig::default()
        };
        let a = r#"{"items":[{"n":"a","at":1},{"n":"b","at":2}]}"#;
        let b = r#"{"items":[{"n":"b","at":9},{"n":"a","at":8}]}"#;
        assert!(diff_with(a, b, &cfg).is_empty());
    }

    #[test]
    fn nested_unordered_with_wildcard() {
        let cfg = CompareConfig {
            unordered: pats(&["/items", "/items/*/tags"]),
            ..CompareConfig::default()
        };
        let a = r#"{"items":[{"tags":[1,2]},{"tags":[3,4]}]}"#;
        let b = r#"{"items":[{"tags":[4,3]},{"tags":[2,1]}]}"#;
        assert!(diff_with(a, b, &cfg).is_empty());
        // Root array unordered.
        let cfg = CompareConfig {
            unordered: pats(&[""]),
            ..CompareConfig::default()
        };
        assert!(diff_with("[3,1,2]", "[1,2,3]", &cfg).is_empty());
    }

    #[test]
    fn max_differences_caps_the_list() {
        let a: Vec<u32> = (0..1000).collect();
        let b: Vec<u32> = (1..1001).collect();
        let a = serde_json::to_string(&a).unwrap();
        let b = serde_json::to_string(&b).unwrap();
        assert_eq!(diff(&a, &b).len(), 200);
        let cfg = CompareConfig {
            max_differences: 3,
            ..CompareConfig::default()
        };
        let mut r = json_resp(&b);
        r.status = 201;
        assert_eq!(compare(&json_resp(&a), &r, &cfg).len(), 3);
        let cfg = CompareConfig {
            max_differences: 0,
            ..CompareConfig::default()
        };
        assert!(compare(&json_resp(&a), &r, &cfg).is_empty());
    }

    #[test]
    fn json_detection_by_content_type_or_leading_bracket() {
        // No JSON content type, but both start with '{'.
        let a = text_resp(br#" {"a":1}"#);
        let b = text_resp(br#"{"a":2}"#);
        assert_eq!(compare(&a, &b, &CompareConfig::default())[0].path, "/a");
        // JSON content type with a scalar body.
        assert_eq!(
            diff("42", "43"),
            vec![d("", DiffKind::Changed, Some(json!(42)), Some(json!(43)))]
        );
        // One side declared JSON, the other a parseable scalar without the content type.
        let c = text_resp(b"\"x\"");
        assert_eq!(
            body_only(compare(&json_resp("\"y\""), &c, &CompareConfig::default())),
            vec![d("", DiffKind::Changed, Some(json!("y")), Some(json!("x")))]
        );
        // A text body that starts with '[' but is not JSON is text.
        let t1 = text_resp(b"[INFO] one");
        let t2 = text_resp(b"[INFO] two");
        assert_eq!(
            compare(&t1, &t2, &CompareConfig::default())[0].kind,
            DiffKind::Text
        );
    }

    #[test]
    fn json_against_non_json_is_a_type_difference_on_the_whole_body() {
        let html = text_resp(b"<html>error</html>");
        assert_eq!(
            body_only(compare(
                &json_resp(r#"{"a":1}"#),
                &html,
                &CompareConfig::default()
            )),
            vec![d(
                "",
                DiffKind::Type,
                Some(json!({"a":1})),
                Some(json!("<html>error</html>"))
            )]
        );
        let empty = text_resp(b"");
        assert_eq!(
            body_only(compare(&empty, &json_resp("[]"), &CompareConfig::default())),
            vec![d("", DiffKind::Type, Some(json!("")), Some(json!([])))]
        );
        let bin = text_resp(&[0xff, 0xfe]);
        let diffs = body_only(compare(&json_resp("[]"), &bin, &CompareConfig::default()));
        assert_eq!(diffs[0].candidate, Some(json!(digest(&[0xff, 0xfe]))));
    }

    #[test]
    fn text_bodies_differ_as_one_text_difference() {
        let diffs = compare(
            &text_resp(b"hello\nworld"),
            &text_resp(b"hello\nthere"),
            &CompareConfig::default(),
        );
        assert_eq!(
            diffs,
            vec![d(
                "body",
                DiffKind::Text,
                Some(json!("hello\nworld")),
                Some(json!("hello\nthere"))
            )]
        );
    }

    #[test]
    fn long_texts_are_truncated_at_a_char_boundary() {
        let long_a = "é".repeat(5000);
        let long_b = "e".repeat(10_000);
        let diffs = compare(
            &text_resp(long_a.as_bytes()),
            &text_resp(long_b.as_bytes()),
            &CompareConfig::default(),
        );
        let Some(Value::String(p)) = &diffs[0].primary else {
            panic!("string expected")
        };
        assert!(p.len() <= TEXT_CAP + "…".len());
        assert!(p.ends_with('…'));
        assert!(p.starts_with("éé"));
    }

    #[test]
    fn binary_bodies_compare_by_digest() {
        let a = text_resp(&[0, 159, 146, 150]);
        let b = text_resp(&[0, 159, 146, 151]);
        let diffs = compare(&a, &b, &CompareConfig::default());
        assert_eq!(diffs.len(), 1);
        assert_eq!(diffs[0].path, "body");
        assert_eq!(diffs[0].kind, DiffKind::Text);
        let Some(Value::String(p)) = &diffs[0].primary else {
            panic!("string expected")
        };
        assert!(p.starts_with("sha256:"));
        assert_eq!(p.len(), "sha256:".len() + 64);
        assert_eq!(
            digest(b""),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn line_diff_reports_unified_ops_with_line_numbers() {
        let changes = line_diff("a\nb\nc\n", "a\nx\nc\nd");
        let ops: Vec<(LineOp, &str)> = changes.iter().map(|c| (c.op, c.text.as_str())).collect();
        assert_eq!(
            ops,
            vec![
                (LineOp::Equal, "a"),
                (LineOp::Delete, "b"),
                (LineOp::Insert, "x"),
                (LineOp::Equal, "c"),
                (LineOp::Insert, "d"),
            ]
        );
        assert_eq!(changes[1].old_line, Some(2));
        assert_eq!(changes[1].new_line, None);
        assert_eq!(changes[2].new_line, Some(2));
        assert_eq!(changes[4].new_line, Some(4));
        assert!(line_diff("", "").is_empty());
        assert_eq!(line_diff("x\r\n", "x\r\n")[0].text, "x");
    }

    #[test]
    fn line_change_serializes_snake_case() {
        let c = LineChange {
            op: LineOp::Insert,
            old_line: None,
            new_line: Some(1),
            text: "x".into(),
        };
        assert_eq!(
            serde_json::to_value(&c).unwrap(),
            json!({"op":"insert","new_line":1,"text":"x"})
        );
    }

    #[test]
    fn deep_documents_do_not_overflow() {
        // serde_json refuses nesting beyond 128, so such bodies compare as text.
        let deep_a = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
        let deep_b = format!("{}1{}", "[".repeat(10_000), "]".repeat(10_000));
        let diffs = compare(
            &json_resp(&deep_a),
            &json_resp(&deep_b),
            &CompareConfig::default(),
        );
        assert_eq!(diffs[0].kind, DiffKind::Text);
        let ok_a = format!("{}{}", "[".repeat(100), "]".repeat(100));
        let ok_b = format!("{}1{}", "[".repeat(100), "]".repeat(100));
        let diffs = compare(
            &json_resp(&ok_a),
            &json_resp(&ok_b),
            &CompareConfig::default(),
        );
        assert_eq!(diffs[0].path, format!("{}", "/0".repeat(99)));
    }
}
