//! The causes in one comparison: which of its differences explain the others.
//!
//! Rules, applied per comparison: a shadow error is the only cause of its comparison; a status
//! change explains every other difference of its comparison (an error page has another body);
//! an array whose differing scalar elements are a permutation of each other is one "order"
//! cause; an added, removed, retyped or resized path explains every difference under it
//! (prefix on JSON Pointer segments); each remaining difference is caused by its field
//! (`field_key`, kind, and for type changes the two JSON types). A cause is reported once per
//! comparison, with the field keys it covers.

use foldhash::{HashMap, HashSet};
use serde_json::Value;

use crate::model::{DiffKind, Difference};
use crate::noise::field_key;
use crate::typed_noise::is_typed_noise;

/// Most elements of one array checked for "order only" (the check is quadratic).
const MAX_ORDER_CHECK: usize = 256;

/// Severity of a finding (Keploy's risk grading, extended): `high` for a status class change,
/// a removed field, a type change or a shadow error; `medium` for a changed value; `low` for
/// an added field or a change of order only.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Low,
    Medium,
    High,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
        }
    }
}

/// The JSON type of a value, for "turned from a number into a string".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum JsonType {
    Null,
    Bool,
    Number,
    String,
    Array,
    Object,
}

impl JsonType {
    fn of(v: &Value) -> JsonType {
        match v {
            Value::Null => JsonType::Null,
            Value::Bool(_) => JsonType::Bool,
            Value::Number(_) => JsonType::Number,
            Value::String(_) => JsonType::String,
            Value::Array(_) => JsonType::Array,
            Value::Object(_) => JsonType::Object,
        }
    }

    pub(crate) fn name(self) -> &'static str {
        match self {
            JsonType::Null => "null",
            JsonType::Bool => "boolean",
            JsonType::Number => "number",
            JsonType::String => "string",
            JsonType::Array => "array",
            JsonType::Object => "object",
        }
    }
}

/// One cause of differences on an endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Cause {
    /// The candidate did not answer (unreachable, timed out, reset).
    ShadowError,
    /// The candidate answered another status.
    Status { primary: u16, candidate: u16 },
    /// A field (array indices as `*`) differs in one way.
    Field {
        key: String,
        kind: DiffKind,
        types: Option<(JsonType, JsonType)>,
    },
    /// An array holds the same scalar elements in another order.
    Order { key: String },
}

impl Cause {
    pub(crate) fn severity(&self) -> Severity {
        match self {
            Cause::ShadowError => Severity::High,
            Cause::Status { primary, candidate } if primary / 100 != candidate / 100 => {
                Severity::High
            }
            Cause::Status { .. } => Severity::Medium,
            Cause::Field { kind, .. } => match kind {
                DiffKind::Removed | DiffKind::Type => Severity::High,
                DiffKind::Added => Severity::Low,
                _ => Severity::Medium,
            },
            Cause::Order { .. } => Severity::Low,
        }
    }

    /// A stable text naming the cause, hashed into finding ids: never change its format.
    pub(crate) fn key_text(&self) -> String {
        match self {
            Cause::ShadowError => "shadow_error".to_owned(),
            Cause::Status { primary, candidate } => format!("status {primary} {candidate}"),
            Cause::Field {
                key,
                kind,
                types: Some((a, b)),
            } => format!("{} {key} {} {}", kind.as_str(), a.name(), b.name()),
            Cause::Field { key, kind, .. } => format!("{} {key}", kind.as_str()),
            Cause::Order { key } => format!("order {key}"),
        }
    }

    /// The field key a cause is about, if any (`status` for a status change).
    pub(crate) fn own_field(&self) -> Option<&str> {
        match self {
            Cause::ShadowError => None,
            Cause::Status { .. } => Some("status"),
            Cause::Field { key, .. } | Cause::Order { key } => Some(key),
        }
    }
}

/// A cause as seen in one comparison.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Seen {
    pub cause: Cause,
    /// Field keys of the differences this cause explains here (besides its own field).
    pub explained: Vec<String>,
    /// Every difference of this cause here is type-aware noise (see `is_typed_noise`).
    pub typed_noise: bool,
}

impl Seen {
    fn new(cause: Cause, typed_noise: bool) -> Seen {
        Seen {
            cause,
            explained: Vec::new(),
            typed_noise,
        }
    }
}

/// The causes of a candidate comparison; `candidate_status` is `None` for a shadow error.
pub(crate) fn candidate_causes(
    primary_status: u16,
    candidate_status: Option<u16>,
    diffs: &[Difference],
) -> Vec<Seen> {
    match candidate_status {
        None => vec![Seen::new(Cause::ShadowError, false)],
        Some(c) if c != primary_status => vec![status_cause(primary_status, c, diffs)],
        Some(_) => field_causes(diffs),
    }
}

/// The causes of a noise sample (secondary vs primary); its status change, if any, is read
/// from its `status` difference.
pub(crate) fn noise_causes(diffs: &[Difference]) -> Vec<Seen> {
    let status = diffs
        .iter()
        .find(|d| d.kind == DiffKind::Status)
        .and_then(|d| {
            Some((
                status_of(d.primary.as_ref())?,
                status_of(d.candidate.as_ref())?,
            ))
        });
    match status {
        Some((p, c)) if p != c => vec![status_cause(p, c, diffs)],
        _ => field_causes(diffs),
    }
}

fn status_of(v: Option<&Value>) -> Option<u16> {
    v.and_then(Value::as_u64)
        .and_then(|s| u16::try_from(s).ok())
}

fn status_cause(primary: u16, candidate: u16, diffs: &[Difference]) -> Seen {
    let mut seen = Seen::new(Cause::Status { primary, candidate }, false);
    let explained = diffs.iter().filter(|d| d.kind != DiffKind::Status);
    seen.explained.extend(explained.map(|d| field_key(&d.path)));
    seen
}

/// Causes up to which `Causes::add` scans linearly before building a hash index.
const LINEAR_CAUSES: usize = 16;

/// The causes of one comparison, one entry per cause.
#[derive(Default)]
struct Causes {
    seen: Vec<Seen>,
    /// Built once there are more than `LINEAR_CAUSES` entries.
    index: Option<HashMap<Cause, usize>>,
}

impl Causes {
    /// Adds (or joins) a cause; returns its entry's index.
    fn add(&mut self, cause: Cause, typed_noise: bool) -> usize {
        if let Some(i) = self.find(&cause) {
            self.seen[i].typed_noise &= typed_noise;
            return i;
        }
        let i = self.seen.len();
        if let Some(index) = &mut self.index {
            index.insert(cause.clone(), i);
        } else if i == LINEAR_CAUSES {
            let index = self
                .seen
                .iter()
                .enumerate()
                .map(|(j, s)| (s.cause.clone(), j));
            let mut index: HashMap<Cause, usize> = index.collect();
            index.insert(cause.clone(), i);
            self.index = Some(index);
        }
        self.seen.push(Seen::new(cause, typed_noise));
        i
    }

    fn find(&self, cause: &Cause) -> Option<usize> {
        match &self.index {
            Some(index) => index.get(cause).copied(),
            None => self.seen.iter().position(|s| s.cause == *cause),
        }
    }

    /// The entries sorted by cause, each with its fields sorted and unique.
    fn finish(self) -> Vec<Seen> {
        let mut out = self.seen;
        out.sort_by(|a, b| a.cause.cmp(&b.cause));
        for s in &mut out {
            s.explained.sort_unstable();
            s.explained.dedup();
        }
        out
    }
}

/// Causes of a comparison whose status did not change.
fn field_causes(diffs: &[Difference]) -> Vec<Seen> {
    let mut consumed = vec![false; diffs.len()];
    let mut causes = Causes::default();
    order_causes(diffs, &mut consumed, &mut causes);
    let anchors = anchors(diffs, &consumed);
    let mut explained: Vec<(&str, usize)> = Vec::new();
    let mut anchor_seen: Vec<(&str, usize)> = Vec::new();
    for (i, d) in diffs.iter().enumerate() {
        if consumed[i] {
            continue;
        }
        match top_anchor(&d.path, &anchors) {
            Some(anchor) => explained.push((anchor, i)),
            None => {
                let at = causes.add(field_cause(d), typed(d));
                if anchors.contains(d.path.as_str()) {
                    anchor_seen.push((d.path.as_str(), at));
                }
            }
        }
    }
    anchor_seen.sort_unstable();
    for (anchor, i) in explained {
        if let Ok(j) = anchor_seen.binary_search_by(|(p, _)| (*p).cmp(anchor)) {
            causes.seen[anchor_seen[j].1]
                .explained
                .push(field_key(&diffs[i].path));
        }
    }
    causes.finish()
}

fn field_cause(d: &Difference) -> Cause {
    let types = match (d.kind, &d.primary, &d.candidate) {
        (DiffKind::Type, Some(a), Some(b)) => Some((JsonType::of(a), JsonType::of(b))),
        _ => None,
    };
    Cause::Field {
        key: field_key(&d.path),
        kind: d.kind,
        types,
    }
}

fn typed(d: &Difference) -> bool {
    match (d.kind, &d.primary, &d.candidate) {
        (DiffKind::Changed | DiffKind::Header, Some(a), Some(b)) => is_typed_noise(a, b),
        _ => false,
    }
}

/// Paths of differences that explain what lies under them.
fn anchors<'d>(diffs: &'d [Difference], consumed: &[bool]) -> HashSet<&'d str> {
    diffs
        .iter()
        .zip(consumed)
        .filter(|(d, used)| !**used && is_anchor(d))
        .map(|(d, _)| d.path.as_str())
        .collect()
}

fn is_anchor(d: &Difference) -> bool {
    let structural = matches!(
        d.kind,
        DiffKind::Added | DiffKind::Removed | DiffKind::Type | DiffKind::Length
    );
    structural && (d.path.is_empty() || d.path.starts_with('/'))
}

/// The outermost anchor that is a proper ancestor of a JSON Pointer `path`.
fn top_anchor<'a>(path: &str, anchors: &HashSet<&'a str>) -> Option<&'a str> {
    if !path.starts_with('/') || anchors.is_empty() {
        return None;
    }
    let b = path.as_bytes();
    let mut ancestors = std::iter::once(0).chain((1..b.len()).filter(|i| b[*i] == b'/'));
    ancestors.find_map(|end| anchors.get(&path[..end]).copied())
}

/// Arrays whose differing scalar elements are a permutation of each other: one `Order` cause
/// each; their differences are marked consumed.
fn order_causes(diffs: &[Difference], consumed: &mut [bool], causes: &mut Causes) {
    let mut elements: Vec<(&str, usize)> = diffs
        .iter()
        .enumerate()
        .filter_map(|(i, d)| scalar_element_change(d).map(|parent| (parent, i)))
        .collect();
    if elements.len() < 2 {
        return;
    }
    elements.sort_by_key(|(parent, _)| *parent);
    for group in elements.chunk_by(|a, b| a.0 == b.0) {
        let members: Vec<&Difference> = group.iter().map(|(_, i)| &diffs[*i]).collect();
        if members.len() >= 2 && members.len() <= MAX_ORDER_CHECK && is_permutation(&members) {
            group.iter().for_each(|(_, i)| consumed[*i] = true);
            causes.add(
                Cause::Order {
                    key: field_key(group[0].0),
                },
                false,
            );
        }
    }
}

/// The parent array's path when `d` is a changed scalar element (`/tags/2`: `"a"` → `"b"`).
fn scalar_element_change(d: &Difference) -> Option<&str> {
    let scalar = |v: &Option<Value>| matches!(v, Some(x) if !x.is_array() && !x.is_object());
    if d.kind != DiffKind::Changed || !scalar(&d.primary) || !scalar(&d.candidate) {
        return None;
    }
    let (parent, last) = d.path.rsplit_once('/')?;
    let numeric = !last.is_empty() && last.bytes().all(|b| b.is_ascii_digit());
    numeric.then_some(parent)
}

/// Whether the candidate values of these differences are the primary values reordered.
fn is_permutation(members: &[&Difference]) -> bool {
    let mut used = vec![false; members.len()];
    members.iter().all(|p| {
        let want = p.primary.as_ref();
        let found = members
            .iter()
            .enumerate()
            .find(|(j, c)| !used[*j] && c.candidate.as_ref() == want);
        found.map(|(j, _)| used[j] = true).is_some()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn d(path: &str, kind: DiffKind, p: Option<Value>, c: Option<Value>) -> Difference {
        Difference {
            path: path.into(),
            kind,
            primary: p,
            candidate: c,
        }
    }

    fn keys(seen: &[Seen]) -> Vec<String> {
        seen.iter().map(|s| s.cause.key_text()).collect()
    }

    #[test]
    fn a_status_change_explains_the_body() {
        let diffs = [
            d(
                "status",
                DiffKind::Status,
                Some(json!(200)),
                Some(json!(500)),
            ),
            d("/error", DiffKind::Added, None, Some(json!("internal"))),
            d("/items", DiffKind::Removed, Some(json!([])), None),
            d("header:content-type", DiffKind::Header, None, None),
        ];
        let seen = candidate_causes(200, Some(500), &diffs);
        assert_eq!(keys(&seen), ["status 200 500"]);
        assert_eq!(
            seen[0].explained,
            ["/error", "/items", "header:content-type"]
        );
        // The secondary's status change is read from its difference.
        assert_eq!(keys(&noise_causes(&diffs)), ["status 200 500"]);
        assert_eq!(keys(&candidate_causes(200, None, &diffs)), ["shadow_error"]);
    }

    #[test]
    fn structural_differences_explain_what_is_under_them() {
        let diffs = [
            d("/customer", DiffKind::Removed, Some(json!({})), None),
            d(
                "/customer/address",
                DiffKind::Removed,
                Some(json!({})),
                None,
            ),
            d(
                "/customer/address/city",
                DiffKind::Changed,
                Some(json!("a")),
                Some(json!("b")),
            ),
            d(
                "/customerx",
                DiffKind::Changed,
                Some(json!(1)),
                Some(json!(2)),
            ),
            d("/tags", DiffKind::Length, Some(json!(3)), Some(json!(2))),
            d("/tags/2", DiffKind::Removed, Some(json!("x")), None),
        ];
        let seen = candidate_causes(200, Some(200), &diffs);
        assert_eq!(
            keys(&seen),
            ["removed /customer", "changed /customerx", "length /tags"]
        );
        assert_eq!(seen[2].explained, ["/tags/*"]);
        assert_eq!(
            seen[0].explained,
            ["/customer/address", "/customer/address/city"]
        );
        // A type change of the whole body explains every body difference, not headers.
        let root = [
            d("", DiffKind::Type, Some(json!({})), Some(json!("oops"))),
            d("/a", DiffKind::Removed, Some(json!(1)), None),
            d("header:x", DiffKind::Header, Some(json!("1")), None),
        ];
        let seen = candidate_causes(200, Some(200), &root);
        assert_eq!(keys(&seen), ["type  object string", "header header:x"]);
    }

    #[test]
    fn one_cause_per_field_and_kind() {
        let diffs = [
            d(
                "/items/0/price",
                DiffKind::Changed,
                Some(json!(1)),
                Some(json!(2)),
            ),
            d(
                "/items/1/price",
                DiffKind::Changed,
                Some(json!(1)),
                Some(json!(3)),
            ),
            d(
                "/items/1/price2",
                DiffKind::Type,
                Some(json!(1)),
                Some(json!("1")),
            ),
        ];
        let seen = candidate_causes(200, Some(200), &diffs);
        assert_eq!(
            keys(&seen),
            [
                "changed /items/*/price",
                "type /items/*/price2 number string"
            ]
        );
        assert!(seen[0].explained.is_empty());
        // Beyond a few causes the lookup switches to a hash index, with the same result.
        let many: Vec<Difference> = (0..40)
            .map(|i| {
                d(
                    &format!("/f{}", i % 20),
                    DiffKind::Changed,
                    Some(json!(1)),
                    Some(json!(2)),
                )
            })
            .collect();
        let seen = candidate_causes(200, Some(200), &many);
        assert_eq!(seen.len(), 20);
    }

    #[test]
    fn typed_noise_needs_every_difference_of_the_cause() {
        let ts = |a: &str, b: &str| {
            d(
                "/items/0/at",
                DiffKind::Changed,
                Some(json!(a)),
                Some(json!(b)),
            )
        };
        let seen = candidate_causes(200, Some(200), &[ts("2024-01-01", "2024-01-02")]);
        assert!(seen[0].typed_noise);
        let mut other = ts("2024-01-01", "never");
        other.path = "/items/1/at".into();
        let seen = candidate_causes(200, Some(200), &[ts("2024-01-01", "2024-01-02"), other]);
        assert_eq!(seen.len(), 1);
        assert!(!seen[0].typed_noise);
    }

    #[test]
    fn a_permuted_array_of_scalars_is_one_order_cause() {
        let ch =
            |p: &str, a: &str, b: &str| d(p, DiffKind::Changed, Some(json!(a)), Some(json!(b)));
        let shuffled = [ch("/tags/0", "new", "vip"), ch("/tags/1", "vip", "new")];
        let seen = candidate_causes(200, Some(200), &shuffled);
        assert_eq!(keys(&seen), ["order /tags"]);
        assert_eq!(seen[0].cause.severity(), Severity::Low);
        // A replaced element is a changed value, not an order change.
        let replaced = [ch("/tags/0", "new", "vip"), ch("/tags/1", "vip", "old")];
        assert_eq!(
            keys(&candidate_causes(200, Some(200), &replaced)),
            ["changed /tags/*"]
        );
        // One differing element cannot be a reorder; nested arrays keep their own key.
        let nested = [ch("/a/0/t/0", "x", "y"), ch("/a/0/t/1", "y", "x")];
        assert_eq!(
            keys(&candidate_causes(200, Some(200), &nested)),
            ["order /a/*/t"]
        );
    }

    #[test]
    fn severities() {
        let f = |kind| Cause::Field {
            key: "/a".into(),
            kind,
            types: None,
        };
        assert_eq!(Cause::ShadowError.severity(), Severity::High);
        let status = |p, c| Cause::Status {
            primary: p,
            candidate: c,
        };
        assert_eq!(status(200, 500).severity(), Severity::High);
        assert_eq!(status(200, 201).severity(), Severity::Medium);
        assert_eq!(f(DiffKind::Removed).severity(), Severity::High);
        assert_eq!(f(DiffKind::Type).severity(), Severity::High);
        assert_eq!(f(DiffKind::Changed).severity(), Severity::Medium);
        assert_eq!(f(DiffKind::Added).severity(), Severity::Low);
        assert!(Severity::High > Severity::Medium && Severity::Medium > Severity::Low);
    }
}
