//! Findings: the differences of an endpoint grouped by cause, one line each, in words a
//! reviewer acts on. Shadow side, in memory, bounded; pure (the API, UI and store call it).
//!
//! A [`FindingsModel`] belongs to one route and one candidate and is fed one comparison at a
//! time ([`FindingsModel::observe`]). Each comparison is reduced to its causes (see `cause`):
//! a status change explains the rest of its comparison, an added/removed/retyped/resized
//! path explains what lies under it, a permuted array of scalars is one "order" cause, and
//! every other difference is caused by its field. Per endpoint and cause the model counts
//! comparisons, noise samples and type-aware noise, and keeps a fingerprint of *which*
//! comparisons showed the cause (a chained hash of their sequence numbers). Causes with the
//! same count, the same fingerprint and the same significance always occurred together, so
//! they are reported as one finding — exact co-occurrence in O(1) memory per cause.
//!
//! Significance: with noise samples on the endpoint, the Diffy test ([`is_significant`] with
//! the secondary's rate) is the judge; without, when type-aware noise is on, the share of a
//! cause's comparisons whose differences were all UUIDs/timestamps/tokens on both sides plays
//! the noise rate; otherwise every cause above the absolute threshold is significant.
//!
//! Ids: a finding's id is the id of its lead cause (highest severity, then smallest key):
//! the first 16 hex digits of SHA-256 over route, candidate, endpoint and the cause's key
//! text, so it is the same across restarts and machines and while the finding grows.
//! [`Finding::causes`] lists every cause id merged into it; [`FindingsModel::cause_ids`] gives
//! the cause ids of one comparison, which is what a store tags comparisons with to answer
//! "the comparisons of finding X".
//!
//! Memory bound: `max_endpoints` endpoints, `max_causes` causes per endpoint, `max_fields`
//! field keys and `max_examples` example ids per cause; what does not fit is counted in
//! [`FindingsModel::dropped`].

mod cause;
#[cfg(test)]
mod tests;
mod words;

use std::collections::{BTreeSet, VecDeque};

use foldhash::{HashMap, HashMapExt};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::model::{Comparison, Difference, Verdict};
use crate::noise::{is_significant, Thresholds};

pub use cause::Severity;
use cause::{candidate_causes, noise_causes, Cause, Seen};

/// One finding: differences of an endpoint that share a cause.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    /// Stable id (16 hex digits), the id of the lead cause.
    pub id: String,
    pub candidate: String,
    pub endpoint: String,
    /// One line: "`/currency` removed on 96 % of `GET /orders/{id}`".
    pub summary: String,
    pub severity: Severity,
    /// False when noise explains it (only listed when noise findings are asked for).
    pub significant: bool,
    /// Share of the endpoint's comparisons that show it.
    pub rate: f64,
    /// The secondary's rate for it, or (without a secondary) its share of type-aware noise.
    pub noise_rate: f64,
    /// Comparisons that show it, and comparisons of the endpoint.
    pub count: u64,
    pub total: u64,
    pub first_seen_ms: i64,
    pub last_seen_ms: i64,
    /// The latest few comparison ids that show it, oldest first.
    pub example_ids: Vec<i64>,
    /// Field keys it covers (array indices as `*`; `status`, `header:<name>`, `body`), sorted.
    pub fields: Vec<String>,
    /// Ids of the causes merged into it, `id` first.
    pub causes: Vec<String>,
}

/// Limits on what a [`FindingsModel`] remembers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FindingsLimits {
    pub max_endpoints: usize,
    pub max_causes: usize,
    pub max_fields: usize,
    pub max_examples: usize,
}

impl Default for FindingsLimits {
    fn default() -> Self {
        FindingsLimits {
            max_endpoints: 1000,
            max_causes: 500,
            max_fields: 32,
            max_examples: 5,
        }
    }
}

/// How a route's findings are judged.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FindingsConfig {
    /// Type-aware noise when the endpoint has no noise samples (the route's switch; on by default).
    pub typed_noise: bool,
    pub thresholds: Thresholds,
    pub limits: FindingsLimits,
}

impl Default for FindingsConfig {
    fn default() -> Self {
        FindingsConfig {
            typed_noise: true,
            thresholds: Thresholds::default(),
            limits: FindingsLimits::default(),
        }
    }
}

/// One comparison as the findings model needs it.
#[derive(Debug, Clone, Copy)]
pub struct Observation<'a> {
    pub id: i64,
    /// Unix time in milliseconds.
    pub at_ms: i64,
    pub endpoint: &'a str,
    pub primary_status: u16,
    /// `None` when the candidate gave no answer (shadow error).
    pub candidate_status: Option<u16>,
    pub verdict: Verdict,
    /// Candidate vs primary.
    pub differences: &'a [Difference],
    /// Secondary vs primary, when a secondary copy was taken.
    pub noise: Option<&'a [Difference]>,
}

impl<'a> Observation<'a> {
    /// The observation of a stored comparison.
    pub fn from_comparison(c: &'a Comparison) -> Observation<'a> {
        Observation {
            id: c.id,
            at_ms: c.created_at_ms,
            endpoint: &c.endpoint,
            primary_status: c.primary.status,
            candidate_status: c.shadow.as_ref().map(|s| s.status),
            verdict: c.verdict,
            differences: &c.differences,
            noise: c.noise.as_deref(),
        }
    }

    /// The candidate's status, `None` for a shadow error (whatever the status field says).
    fn answered_status(&self) -> Option<u16> {
        self.candidate_status
            .filter(|_| self.verdict != Verdict::ShadowError)
    }
}

#[derive(Debug, Clone)]
struct CauseStats {
    count: u64,
    noise_count: u64,
    typed_noise_count: u64,
    /// Chained hash of the sequence numbers of the comparisons that showed the cause.
    fingerprint: u64,
    first_seen_ms: i64,
    last_seen_ms: i64,
    examples: VecDeque<i64>,
    fields: BTreeSet<String>,
}

impl CauseStats {
    fn new() -> CauseStats {
        CauseStats {
            count: 0,
            noise_count: 0,
            typed_noise_count: 0,
            fingerprint: 0,
            first_seen_ms: i64::MAX,
            last_seen_ms: i64::MIN,
            examples: VecDeque::new(),
            fields: BTreeSet::new(),
        }
    }

    fn record(&mut self, seen: Seen, seq: u64, obs: &Observation<'_>, limits: &FindingsLimits) {
        self.count += 1;
        self.typed_noise_count += u64::from(seen.typed_noise);
        self.fingerprint = mix(self.fingerprint ^ seq);
        self.first_seen_ms = self.first_seen_ms.min(obs.at_ms);
        self.last_seen_ms = self.last_seen_ms.max(obs.at_ms);
        if limits.max_examples > 0 {
            if self.examples.len() == limits.max_examples {
                self.examples.pop_front();
            }
            self.examples.push_back(obs.id);
        }
        if let Some(own) = seen.cause.own_field() {
            if !self.fields.contains(own) && self.fields.len() < limits.max_fields {
                self.fields.insert(own.to_owned());
            }
        }
        for f in seen.explained {
            if self.fields.len() < limits.max_fields || self.fields.contains(&f) {
                self.fields.insert(f);
            }
        }
    }
}

/// SplitMix64's finalizer: a cheap, well-mixed 64-bit permutation (fixed, not seeded).
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

#[derive(Debug, Clone, Default)]
struct EndpointFindings {
    total: u64,
    noise_total: u64,
    causes: HashMap<Cause, CauseStats>,
}

impl EndpointFindings {
    /// The stats of a cause, if it is tracked or there is room for it.
    fn slot(&mut self, cause: &Cause, max_causes: usize) -> Option<&mut CauseStats> {
        if !self.causes.contains_key(cause) {
            if self.causes.len() >= max_causes {
                return None;
            }
            self.causes.insert(cause.clone(), CauseStats::new());
        }
        self.causes.get_mut(cause)
    }
}

/// Findings of one route and candidate, fed one comparison at a time.
#[derive(Debug, Clone)]
pub struct FindingsModel {
    route: String,
    candidate: String,
    config: FindingsConfig,
    endpoints: HashMap<String, EndpointFindings>,
    dropped: u64,
}

impl FindingsModel {
    pub fn new(
        route: impl Into<String>,
        candidate: impl Into<String>,
        config: FindingsConfig,
    ) -> FindingsModel {
        FindingsModel {
            route: route.into(),
            candidate: candidate.into(),
            config,
            endpoints: HashMap::new(),
            dropped: 0,
        }
    }

    pub fn candidate(&self) -> &str {
        &self.candidate
    }

    /// How findings are judged now.
    pub fn config(&self) -> &FindingsConfig {
        &self.config
    }

    /// Changes how findings are judged (a config reload): the switch for type-aware noise
    /// and the thresholds. The counts do not depend on them, so they are kept.
    pub fn set_judging(&mut self, typed_noise: bool, thresholds: Thresholds) {
        self.config.typed_noise = typed_noise;
        self.config.thresholds = thresholds;
    }

    /// Comparisons (or single causes of them) not remembered because of the limits.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Endpoints with observations, sorted.
    pub fn endpoints(&self) -> Vec<&str> {
        let mut v: Vec<&str> = self.endpoints.keys().map(String::as_str).collect();
        v.sort_unstable();
        v
    }

    /// Records one comparison.
    pub fn observe(&mut self, obs: &Observation<'_>) {
        let limits = self.config.limits;
        if !self.endpoints.contains_key(obs.endpoint)
            && self.endpoints.len() >= limits.max_endpoints
        {
            self.dropped += 1;
            return;
        }
        let ep = self.endpoints.entry(obs.endpoint.to_owned()).or_default();
        ep.total += 1;
        let seq = ep.total;
        let mut dropped = 0;
        for seen in candidate_causes(obs.primary_status, obs.answered_status(), obs.differences) {
            match ep.slot(&seen.cause, limits.max_causes) {
                Some(stats) => stats.record(seen, seq, obs, &limits),
                None => dropped += 1,
            }
        }
        if let Some(noise) = obs.noise {
            ep.noise_total += 1;
            for seen in noise_causes(noise) {
                match ep.slot(&seen.cause, limits.max_causes) {
                    Some(stats) => stats.noise_count += 1,
                    None => dropped += 1,
                }
            }
        }
        self.dropped += dropped;
    }

    /// The ids of the causes one comparison shows (what a store tags it with); a finding
    /// lists the cause ids merged into it in [`Finding::causes`].
    pub fn cause_ids(&self, obs: &Observation<'_>) -> Vec<String> {
        cause_ids(&self.route, &self.candidate, obs)
    }

    fn cause_id(&self, endpoint: &str, cause: &Cause) -> String {
        cause_id(&self.route, &self.candidate, endpoint, cause)
    }

    /// The findings of an endpoint, ordered by severity, then rate; noise findings
    /// (`significant: false`) only when `include_noise`.
    pub fn findings(&self, endpoint: &str, include_noise: bool) -> Vec<Finding> {
        let Some(ep) = self.endpoints.get(endpoint) else {
            return Vec::new();
        };
        let mut out: Vec<Finding> = groups(ep, &self.config)
            .into_iter()
            .filter(|g| include_noise || g.significant)
            .map(|g| self.finding(endpoint, ep, &g))
            .collect();
        sort_findings(&mut out);
        out
    }

    /// The findings of every endpoint, ordered by severity, then rate.
    pub fn all_findings(&self, include_noise: bool) -> Vec<Finding> {
        let mut out: Vec<Finding> = self
            .endpoints
            .keys()
            .flat_map(|e| self.findings(e, include_noise))
            .collect();
        sort_findings(&mut out);
        out
    }

    fn finding(&self, endpoint: &str, ep: &EndpointFindings, g: &Group<'_>) -> Finding {
        let (lead, stats) = g.members[0];
        let related: Vec<&Cause> = g.members[1..].iter().map(|(c, _)| *c).collect();
        let fields: BTreeSet<&String> = g.members.iter().flat_map(|(_, s)| &s.fields).collect();
        Finding {
            id: self.cause_id(endpoint, lead),
            candidate: self.candidate.clone(),
            endpoint: endpoint.to_owned(),
            summary: words::summary(lead, &related, stats.count, ep.total, endpoint),
            severity: lead.severity(),
            significant: g.significant,
            rate: ratio(stats.count, ep.total),
            noise_rate: g.noise_rate,
            count: stats.count,
            total: ep.total,
            first_seen_ms: g
                .members
                .iter()
                .map(|(_, s)| s.first_seen_ms)
                .min()
                .unwrap_or(0),
            last_seen_ms: g
                .members
                .iter()
                .map(|(_, s)| s.last_seen_ms)
                .max()
                .unwrap_or(0),
            example_ids: stats.examples.iter().copied().collect(),
            fields: fields
                .into_iter()
                .take(self.config.limits.max_fields)
                .cloned()
                .collect(),
            causes: g
                .members
                .iter()
                .map(|(c, _)| self.cause_id(endpoint, c))
                .collect(),
        }
    }
}

/// The ids of the causes one comparison of `route` and `candidate` shows: what a store tags
/// the comparison with, so that a finding's id lists its comparisons. The same ids a
/// [`FindingsModel`] of that route and candidate gives its findings.
pub fn cause_ids(route: &str, candidate: &str, obs: &Observation<'_>) -> Vec<String> {
    candidate_causes(obs.primary_status, obs.answered_status(), obs.differences)
        .iter()
        .map(|s| cause_id(route, candidate, obs.endpoint, &s.cause))
        .collect()
}

fn cause_id(route: &str, candidate: &str, endpoint: &str, cause: &Cause) -> String {
    let mut h = Sha256::new();
    for part in [route, candidate, endpoint, &cause.key_text()] {
        h.update(part.as_bytes());
        h.update([0]);
    }
    hex::encode(&h.finalize()[..8])
}

fn ratio(count: u64, total: u64) -> f64 {
    if total == 0 {
        0.0
    } else {
        count as f64 / total as f64
    }
}

fn sort_findings(v: &mut [Finding]) {
    v.sort_by(|a, b| {
        b.severity
            .cmp(&a.severity)
            .then(b.rate.total_cmp(&a.rate))
            .then_with(|| a.endpoint.cmp(&b.endpoint))
            .then_with(|| a.id.cmp(&b.id))
    });
}

/// Causes that always occurred together and were judged alike; the lead cause first.
struct Group<'e> {
    members: Vec<(&'e Cause, &'e CauseStats)>,
    significant: bool,
    noise_rate: f64,
}

/// Whether a cause is significant, and the noise rate it was judged against.
fn judge(ep: &EndpointFindings, s: &CauseStats, cfg: &FindingsConfig) -> (bool, f64) {
    let th = &cfg.thresholds;
    if ep.noise_total > 0 {
        let sig = is_significant(s.count, ep.total, s.noise_count, ep.noise_total, th);
        (sig, ratio(s.noise_count, ep.noise_total))
    } else if cfg.typed_noise {
        let sig = is_significant(s.count, ep.total, s.typed_noise_count, ep.total, th);
        (sig, ratio(s.typed_noise_count, ep.total))
    } else {
        (is_significant(s.count, ep.total, 0, 0, th), 0.0)
    }
}

fn groups<'e>(ep: &'e EndpointFindings, cfg: &FindingsConfig) -> Vec<Group<'e>> {
    let mut by_key: HashMap<(bool, u64, u64), Group<'e>> = HashMap::new();
    for (cause, stats) in ep.causes.iter().filter(|(_, s)| s.count > 0) {
        let (significant, noise_rate) = judge(ep, stats, cfg);
        let g = by_key
            .entry((significant, stats.count, stats.fingerprint))
            .or_insert_with(|| Group {
                members: Vec::new(),
                significant,
                noise_rate: 0.0,
            });
        g.members.push((cause, stats));
        g.noise_rate = g.noise_rate.max(noise_rate);
    }
    let mut out: Vec<Group<'e>> = by_key.into_values().collect();
    for g in &mut out {
        g.members.sort_by(|(a, _), (b, _)| {
            b.severity()
                .cmp(&a.severity())
                .then_with(|| a.key_text().cmp(&b.key_text()))
        });
    }
    out
}
