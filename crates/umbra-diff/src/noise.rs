//! Diffy-style noise filtering: per endpoint and field, a candidate difference is significant
//! only when it happens clearly more often than the same difference between the primary and a
//! second copy of the primary (the secondary). Shadow side, in memory, bounded.
//!
//! Fields are counted by `(field_key(path), kind)`, where [`field_key`] replaces array indices
//! with `*` so that noise seen at `/items/7/price` explains a difference at `/items/3/price`.
//! One comparison counts at most once per field, so rates are "share of comparisons with this
//! difference".
//!
//! Memory bound: at most `max_endpoints` endpoints (default 1000) and `max_fields` fields per
//! endpoint (default 500) are tracked; observations of further endpoints or fields are counted
//! in [`NoiseModel::dropped`] and not remembered. A field that is not tracked has no noise
//! history, so a difference on it is judged `different`, never silently `noise`.

use std::collections::{HashMap, HashSet};

use serde::{Deserialize, Serialize};

use crate::model::{DiffKind, Difference, Verdict};

/// Significance thresholds (see [`is_significant`]).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Thresholds {
    /// Minimum relative difference `|raw − noise| / (raw + noise)`: 0.20.
    pub relative: f64,
    /// Minimum absolute difference of rates `|raw_rate − noise_rate|`: 0.0003 (0.03 %).
    pub absolute: f64,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            relative: 0.20,
            absolute: 0.0003,
        }
    }
}

fn rate(count: u64, total: u64) -> f64 {
    if total == 0 {
        0.0
    } else {
        count as f64 / total as f64
    }
}

/// Whether a field's candidate difference rate is significant against its noise rate:
/// `raw_rate > noise_rate`, `|raw − noise| / (raw + noise) > relative` and
/// `|raw_rate − noise_rate| > absolute` (rates are 0 when their total is 0).
pub fn is_significant(
    raw_count: u64,
    total: u64,
    noise_count: u64,
    noise_total: u64,
    th: &Thresholds,
) -> bool {
    let raw = rate(raw_count, total);
    let noise = rate(noise_count, noise_total);
    if raw <= noise {
        return false;
    }
    let relative = (raw - noise) / (raw + noise);
    relative > th.relative && (raw - noise) > th.absolute
}

/// The key a difference path is counted under: numeric segments of a JSON Pointer become
/// `*` (`/items/3/price` → `/items/*/price`). Non-pointer paths (`status`, `header:x`,
/// `body`) and the empty pointer are returned unchanged.
pub fn field_key(path: &str) -> String {
    if !path.starts_with('/') {
        return path.to_owned();
    }
    let mut out = String::with_capacity(path.len());
    for seg in path[1..].split('/') {
        out.push('/');
        if !seg.is_empty() && seg.bytes().all(|b| b.is_ascii_digit()) {
            out.push('*');
        } else {
            out.push_str(seg);
        }
    }
    out
}

/// Limits on what a [`NoiseModel`] remembers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NoiseLimits {
    pub max_endpoints: usize,
    pub max_fields: usize,
}

impl Default for NoiseLimits {
    fn default() -> Self {
        NoiseLimits {
            max_endpoints: 1000,
            max_fields: 500,
        }
    }
}

/// One row of the field-level diff table of an endpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FieldStat {
    /// The field key (array indices as `*`).
    pub path: String,
    pub kind: DiffKind,
    /// Comparisons whose candidate showed this difference.
    pub count: u64,
    /// `count / total`.
    pub rate: f64,
    /// Noise samples (secondary vs primary) that showed it.
    pub noise_count: u64,
    /// `noise_count / noise_total`.
    pub noise_rate: f64,
    pub significant: bool,
}

#[derive(Debug, Clone, Copy, Default)]
struct Counts {
    count: u64,
    noise_count: u64,
}

#[derive(Debug, Clone, Default)]
struct EndpointStats {
    total: u64,
    noise_total: u64,
    fields: HashMap<(String, DiffKind), Counts>,
}

impl EndpointStats {
    fn slot(&mut self, key: (String, DiffKind), max_fields: usize) -> Option<&mut Counts> {
        if !self.fields.contains_key(&key) && self.fields.len() >= max_fields {
            return None;
        }
        Some(self.fields.entry(key).or_default())
    }
}

/// In-memory per-endpoint, per-field counters of candidate and noise differences.
#[derive(Debug, Clone, Default)]
pub struct NoiseModel {
    thresholds: Thresholds,
    limits: NoiseLimits,
    endpoints: HashMap<String, EndpointStats>,
    dropped: u64,
}

fn distinct_fields(diffs: &[Difference]) -> HashSet<(String, DiffKind)> {
    diffs.iter().map(|d| (field_key(&d.path), d.kind)).collect()
}

impl NoiseModel {
    pub fn new(thresholds: Thresholds, limits: NoiseLimits) -> NoiseModel {
        NoiseModel {
            thresholds,
            limits,
            ..NoiseModel::default()
        }
    }

    pub fn thresholds(&self) -> &Thresholds {
        &self.thresholds
    }

    /// Where a new candidate of the same route starts: this model's noise half (the
    /// secondary's differences against the primary do not depend on the candidate), and as
    /// its own half a prior that it differs exactly as the secondary does — so its first few
    /// comparisons are not judged on a sample of one, while anything the secondary does not
    /// show (a removed field, a type change, a new field) counts from the first comparison.
    pub fn for_new_candidate(&self) -> NoiseModel {
        let mut out = NoiseModel::new(self.thresholds, self.limits);
        for (endpoint, stats) in &self.endpoints {
            let fields = stats
                .fields
                .iter()
                .filter(|(_, c)| c.noise_count > 0)
                .map(|(k, c)| {
                    let counts = Counts {
                        count: c.noise_count,
                        noise_count: c.noise_count,
                    };
                    (k.clone(), counts)
                })
                .collect();
            let stats = EndpointStats {
                total: stats.noise_total,
                noise_total: stats.noise_total,
                fields,
            };
            out.endpoints.insert(endpoint.clone(), stats);
        }
        out
    }

    /// Comparisons that came with a secondary's answer, over all endpoints.
    pub fn noise_samples(&self) -> u64 {
        self.endpoints.values().map(|s| s.noise_total).sum()
    }

    /// Observations (or single fields of them) not remembered because of the limits.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Records one comparison: its candidate differences and, when a secondary copy was
    /// taken, the secondary's differences against the primary.
    pub fn observe(
        &mut self,
        endpoint: &str,
        candidate: &[Difference],
        noise: Option<&[Difference]>,
    ) {
        if !self.endpoints.contains_key(endpoint)
            && self.endpoints.len() >= self.limits.max_endpoints
        {
            self.dropped += 1;
            return;
        }
        let max_fields = self.limits.max_fields;
        let stats = self.endpoints.entry(endpoint.to_owned()).or_default();
        stats.total += 1;
        let mut dropped = 0;
        for key in distinct_fields(candidate) {
            match stats.slot(key, max_fields) {
                Some(c) => c.count += 1,
                None => dropped += 1,
            }
        }
        if let Some(noise) = noise {
            stats.noise_total += 1;
            for key in distinct_fields(noise) {
                match stats.slot(key, max_fields) {
                    Some(c) => c.noise_count += 1,
                    None => dropped += 1,
                }
            }
        }
        self.dropped += dropped;
    }

    /// The verdict of a comparison on `endpoint`: `same` without differences; `noise` when
    /// every difference is on a field that is not significant and has been seen in noise;
    /// `different` otherwise. Call [`NoiseModel::observe`] first so the comparison counts.
    pub fn verdict(&self, endpoint: &str, candidate: &[Difference]) -> Verdict {
        if candidate.is_empty() {
            return Verdict::Same;
        }
        let explained = candidate.iter().all(|d| self.is_noise(endpoint, d));
        if explained {
            Verdict::Noise
        } else {
            Verdict::Different
        }
    }

    /// Comparisons observed on an endpoint, and how many of them had a noise sample.
    /// True when noise explains this difference at this endpoint (the secondary shows it too,
    /// about as often).
    pub fn is_noise(&self, endpoint: &str, d: &Difference) -> bool {
        let Some(stats) = self.endpoints.get(endpoint) else {
            return false;
        };
        stats
            .fields
            .get(&(field_key(&d.path), d.kind))
            .is_some_and(|c| {
                c.noise_count > 0
                    && !is_significant(
                        c.count,
                        stats.total,
                        c.noise_count,
                        stats.noise_total,
                        &self.thresholds,
                    )
            })
    }

    pub fn totals(&self, endpoint: &str) -> (u64, u64) {
        self.endpoints
            .get(endpoint)
            .map_or((0, 0), |s| (s.total, s.noise_total))
    }

    /// Endpoints with observations, sorted.
    pub fn endpoints(&self) -> Vec<&str> {
        let mut v: Vec<&str> = self.endpoints.keys().map(String::as_str).collect();
        v.sort_unstable();
        v
    }

    /// The field table of an endpoint: significant fields first, then by count (descending),
    /// then by path and kind.
    pub fn field_rows(&self, endpoint: &str) -> Vec<FieldStat> {
        let Some(stats) = self.endpoints.get(endpoint) else {
            return Vec::new();
        };
        let mut rows: Vec<FieldStat> = stats
            .fields
            .iter()
            .map(|((path, kind), c)| FieldStat {
                path: path.clone(),
                kind: *kind,
                count: c.count,
                rate: rate(c.count, stats.total),
                noise_count: c.noise_count,
                noise_rate: rate(c.noise_count, stats.noise_total),
                significant: is_significant(
                    c.count,
                    stats.total,
                    c.noise_count,
                    stats.noise_total,
                    &self.thresholds,
                ),
            })
            .collect();
        rows.sort_by(|a, b| {
            b.significant
                .cmp(&a.significant)
                .then(b.count.cmp(&a.count))
                .then_with(|| a.path.cmp(&b.path))
                .then(a.kind.cmp(&b.kind))
        });
        rows
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn diff(path: &str, kind: DiffKind) -> Difference {
        Difference {
            path: path.into(),
            kind,
            primary: None,
            candidate: None,
        }
    }

    #[test]
    fn thresholds_default() {
        let t = Thresholds::default();
        assert_eq!(t.relative, 0.20);
        assert_eq!(t.absolute, 0.0003);
    }

    #[test]
    fn significance_rules() {
        let th = Thresholds::default();
        // 50 % raw vs no noise: significant.
        assert!(is_significant(50, 100, 0, 100, &th));
        // Raw not above noise.
        assert!(!is_significant(50, 100, 50, 100, &th));
        assert!(!is_significant(40, 100, 50, 100, &th));
        // Relative 0.5/0.45 → (0.05/0.95) ≈ 5 % < 20 %.
        assert!(!is_significant(50, 100, 45, 100, &th));
        // Relative (0.5-0.3)/(0.8) = 25 % > 20 %.
        assert!(is_significant(50, 100, 30, 100, &th));
        // Absolute: 2 in 10 000 = 0.02 % < 0.03 %.
        assert!(!is_significant(2, 10_000, 0, 10_000, &th));
        assert!(is_significant(4, 10_000, 0, 10_000, &th));
        // Zero totals.
        assert!(!is_significant(0, 0, 0, 0, &th));
        assert!(
            is_significant(1, 10, 5, 0, &th),
            "no noise samples → noise rate 0"
        );
        // Different totals compare rates.
        assert!(!is_significant(10, 100, 100, 1000, &th));
    }

    #[test]
    fn field_key_replaces_numeric_segments() {
        assert_eq!(field_key("/items/3/price"), "/items/*/price");
        assert_eq!(field_key("/0/1"), "/*/*");
        assert_eq!(field_key("/a1/b"), "/a1/b");
        assert_eq!(field_key("/a//b"), "/a//b");
        assert_eq!(field_key(""), "");
        assert_eq!(field_key("status"), "status");
        assert_eq!(field_key("header:x-1"), "header:x-1");
        assert_eq!(field_key("body"), "body");
    }

    #[test]
    fn verdicts() {
        let mut m = NoiseModel::default();
        let ep = "GET /items";
        assert_eq!(m.verdict(ep, &[]), Verdict::Same);
        assert_eq!(
            m.verdict(ep, &[diff("/a", DiffKind::Changed)]),
            Verdict::Different,
            "unknown endpoint"
        );
        // A timestamp that differs in both candidate and secondary all the time: noise.
        let ts = [diff("/items/3/ts", DiffKind::Changed)];
        let ts_noise = [diff("/items/7/ts", DiffKind::Changed)];
        for _ in 0..20 {
            m.observe(ep, &ts, Some(&ts_noise));
        }
        assert_eq!(m.verdict(ep, &ts), Verdict::Noise);
        // A real regression on price only the candidate shows.
        let price = [
            diff("/items/3/ts", DiffKind::Changed),
            diff("/items/3/price", DiffKind::Changed),
        ];
        for _ in 0..20 {
            m.observe(ep, &price, Some(&ts_noise));
        }
        assert_eq!(m.verdict(ep, &price), Verdict::Different);
        assert_eq!(m.verdict(ep, &ts), Verdict::Noise);
        // Same path, other kind: not explained.
        assert_eq!(
            m.verdict(ep, &[diff("/items/1/ts", DiffKind::Type)]),
            Verdict::Different
        );
    }

    #[test]
    fn never_seen_in_noise_is_different_even_when_rare() {
        let mut m = NoiseModel::default();
        for _ in 0..100 {
            m.observe("e", &[], Some(&[]));
        }
        let d = [diff("/x", DiffKind::Changed)];
        m.observe("e", &d, None);
        assert_eq!(m.verdict("e", &d), Verdict::Different);
    }

    #[test]
    fn noise_more_frequent_than_candidate_is_noise() {
        let mut m = NoiseModel::default();
        let d = [diff("/x", DiffKind::Changed)];
        for i in 0..10 {
            let cand: &[Difference] = if i % 2 == 0 { &d } else { &[] };
            m.observe("e", cand, Some(&d));
        }
        assert_eq!(m.verdict("e", &d), Verdict::Noise);
    }

    #[test]
    fn a_comparison_counts_once_per_field() {
        let mut m = NoiseModel::default();
        m.observe(
            "e",
            &[
                diff("/items/0/p", DiffKind::Changed),
                diff("/items/1/p", DiffKind::Changed),
                diff("/items/2/p", DiffKind::Changed),
            ],
            None,
        );
        m.observe("e", &[], None);
        let rows = m.field_rows("e");
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].path, "/items/*/p");
        assert_eq!(rows[0].count, 1);
        assert_eq!(rows[0].rate, 0.5);
        assert_eq!(rows[0].noise_rate, 0.0);
        assert!(rows[0].significant);
        assert_eq!(m.totals("e"), (2, 0));
    }

    #[test]
    fn field_rows_are_sorted_and_carry_rates() {
        let mut m = NoiseModel::default();
        let a = diff("/a", DiffKind::Changed);
        let b = diff("/b", DiffKind::Added);
        for i in 0..10 {
            let cand = if i < 3 {
                vec![a.clone(), b.clone()]
            } else {
                vec![b.clone()]
            };
            m.observe("e", &cand, Some(std::slice::from_ref(&b)));
        }
        let rows = m.field_rows("e");
        assert_eq!(rows[0].path, "/a");
        assert!(rows[0].significant);
        assert_eq!(rows[0].count, 3);
        assert!((rows[0].rate - 0.3).abs() < 1e-12);
        assert_eq!(rows[1].path, "/b");
        assert!(!rows[1].significant);
        assert_eq!(rows[1].noise_count, 10);
        assert_eq!(rows[1].noise_rate, 1.0);
        assert!(m.field_rows("unknown").is_empty());
        assert_eq!(m.endpoints(), vec!["e"]);
        let json = serde_json::to_value(&rows[0]).unwrap();
        assert_eq!(json["kind"], "changed");
    }

    #[test]
    fn a_new_candidate_starts_from_the_noise_not_from_the_old_candidate() {
        let mut m = NoiseModel::new(Thresholds::default(), NoiseLimits::default());
        let at = [diff("/at", DiffKind::Changed)];
        let balance = [diff("/balance", DiffKind::Type)];
        for _ in 0..50 {
            let both: Vec<Difference> = at.iter().chain(&balance).cloned().collect();
            m.observe("GET /a", &both, Some(&at));
        }
        let mut fresh = m.for_new_candidate();
        assert_eq!(fresh.totals("GET /a"), (50, 50));
        // The first comparison of a new candidate: the timestamp is known noise already, the
        // old candidate's type change is not carried over, and a removed field counts at once.
        fresh.observe("GET /a", &at, None);
        assert_eq!(fresh.verdict("GET /a", &at), Verdict::Noise);
        assert!(fresh
            .field_rows("GET /a")
            .iter()
            .all(|r| r.path != "/balance"));
        let removed = [diff("/id", DiffKind::Removed)];
        fresh.observe("GET /a", &removed, None);
        assert_eq!(fresh.verdict("GET /a", &removed), Verdict::Different);
    }

    #[test]
    fn memory_is_bounded() {
        let mut m = NoiseModel::new(
            Thresholds::default(),
            NoiseLimits {
                max_endpoints: 2,
                max_fields: 3,
            },
        );
        m.observe("a", &[], None);
        m.observe("b", &[], None);
        m.observe("c", &[diff("/x", DiffKind::Changed)], None);
        assert_eq!(m.endpoints(), vec!["a", "b"]);
        assert_eq!(m.dropped(), 1);
        let many: Vec<Difference> = (0..10)
            .map(|i| diff(&format!("/f{i}"), DiffKind::Changed))
            .collect();
        m.observe("a", &many, None);
        assert_eq!(m.field_rows("a").len(), 3);
        assert_eq!(m.dropped(), 1 + 7);
        // Untracked fields are never treated as noise.
        assert_eq!(m.verdict("a", &many), Verdict::Different);
        assert_eq!(m.verdict("c", &many), Verdict::Different);
    }
}
