//! The values the store hands to the admin API and the control plane: list queries and pages,
//! per-route and per-endpoint aggregates, latency samples, runtime routes, audit events and
//! persisted ignore rules. Control-plane side; everything here is plain data.

use serde::{Deserialize, Serialize};
use umbra_diff::{DiffKind, Verdict};

/// Largest page `list` returns.
pub const MAX_LIST_LIMIT: u32 = 500;
/// Page size when a query names none.
pub const DEFAULT_LIST_LIMIT: u32 = 50;
/// Most comparisons one `replay` call returns.
pub const MAX_REPLAY_LIMIT: u32 = 10_000;
/// Largest number of rows `latency_samples` and `list_events` return in one call.
pub const MAX_SAMPLE_LIMIT: u32 = 100_000;

/// Filters and cursor for `ComparisonStore::list`. Deserializes from the admin API's query
/// string (`?route=&verdict=&endpoint=&finding=&limit=&before=`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ListQuery {
    pub route: Option<String>,
    pub verdict: Option<Verdict>,
    pub endpoint: Option<String>,
    /// Only the comparisons that show this finding (a finding's or one of its causes' id).
    pub finding: Option<String>,
    /// Page size; clamped to `1..=500`.
    pub limit: u32,
    /// Cursor: only comparisons with an id below this (the `next` of the previous page).
    pub before: Option<i64>,
}

impl Default for ListQuery {
    fn default() -> Self {
        ListQuery {
            route: None,
            verdict: None,
            endpoint: None,
            finding: None,
            limit: DEFAULT_LIST_LIMIT,
            before: None,
        }
    }
}

impl ListQuery {
    /// The page size actually used.
    pub fn clamped_limit(&self) -> u32 {
        self.limit.clamp(1, MAX_LIST_LIMIT)
    }
}

/// One page of comparisons, newest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Page {
    pub items: Vec<ComparisonSummary>,
    /// Pass as `before` to get the next (older) page; `None` on the last page.
    pub next: Option<i64>,
}

/// A comparison as listed: its columns, without request/response detail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ComparisonSummary {
    pub id: i64,
    pub created_at_ms: i64,
    pub route: String,
    /// The service the request was mirrored to; empty for comparisons stored before it was
    /// recorded.
    #[serde(default)]
    pub candidate: String,
    pub endpoint: String,
    pub method: String,
    pub uri: String,
    pub request_id: String,
    pub verdict: Verdict,
    pub primary_status: u16,
    pub shadow_status: Option<u16>,
    pub primary_latency_us: u64,
    pub shadow_latency_us: Option<u64>,
    pub difference_count: u32,
    /// False for comparisons counted but not stored in full (`keep_same` sampling): they have
    /// no headers or bodies.
    pub full: bool,
}

/// Comparison counts by verdict. `noise_total` counts the comparisons that carried a noise
/// sample (a secondary copy), the denominator of every `noise_count`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Totals {
    pub total: u64,
    pub noise_total: u64,
    pub same: u64,
    pub different: u64,
    pub noise: u64,
    pub shadow_error: u64,
}

impl Totals {
    /// Adds one comparison's verdict and noise-sample flag.
    pub fn count(&mut self, verdict: Verdict, has_noise_sample: bool) {
        self.total += 1;
        if has_noise_sample {
            self.noise_total += 1;
        }
        match verdict {
            Verdict::Same => self.same += 1,
            Verdict::Different => self.different += 1,
            Verdict::Noise => self.noise += 1,
            Verdict::ShadowError => self.shadow_error += 1,
        }
    }

    /// Count of one verdict.
    pub fn of(&self, verdict: Verdict) -> u64 {
        match verdict {
            Verdict::Same => self.same,
            Verdict::Different => self.different,
            Verdict::Noise => self.noise,
            Verdict::ShadowError => self.shadow_error,
        }
    }
}

/// Totals of one route over all its endpoints (the overview page).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteStats {
    pub route: String,
    #[serde(flatten)]
    pub totals: Totals,
}

/// Totals of one endpoint and how often each field differed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointStats {
    pub endpoint: String,
    #[serde(flatten)]
    pub totals: Totals,
    /// Most frequent first.
    pub fields: Vec<FieldCount>,
}

/// How many comparisons of an endpoint had a difference at `path` (numeric segments shown as
/// `*`), in the candidate (`count`) and in the noise sample (`noise_count`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldCount {
    pub path: String,
    pub kind: DiffKind,
    pub count: u64,
    pub noise_count: u64,
}

/// Both latencies of one comparison, for latency charts and distribution checks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LatencySample {
    pub endpoint: String,
    pub primary_us: u64,
    pub shadow_us: Option<u64>,
    pub created_at_ms: i64,
}

/// A runtime route change that must survive a restart: a route made through the API
/// (`kind = "api"`) or an override of a file- or docker-defined route (`kind = "override"`).
/// `doc` is the route as the control plane serializes it; the store does not look inside.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredRoute {
    pub name: String,
    pub kind: String,
    pub doc: serde_json::Value,
    pub updated_at_ms: i64,
}

/// An audit-log entry to append; the store stamps its id and time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewEvent {
    /// `route.put`, `route.delete`, `shadow.start`, `shadow.stop`, `canary.set`, `promote`,
    /// `rollback`, `reload`, `reload.failed`, …
    pub kind: String,
    pub route: Option<String>,
    /// Where the change came from: `api`, `ui`, `cli`, `file`, `docker`.
    pub source: String,
    pub actor: Option<String>,
    #[serde(default)]
    pub detail: serde_json::Value,
}

/// A stored audit-log entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub id: i64,
    pub created_at_ms: i64,
    pub kind: String,
    pub route: Option<String>,
    pub source: String,
    pub actor: Option<String>,
    pub detail: serde_json::Value,
}

/// A field marked as noise in the UI: differences at `path` (a JSON Pointer where `*` matches
/// any segment, as in the config's `ignore`) are ignored for `route`, for one endpoint or all
/// (`endpoint = None`), for one kind or all (`kind = None`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IgnoreRule {
    pub id: i64,
    pub route: String,
    pub endpoint: Option<String>,
    pub path: String,
    pub kind: Option<DiffKind>,
    pub created_at_ms: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_query_from_query_string_shape() {
        let q: ListQuery =
            serde_json::from_value(serde_json::json!({"route": "api", "verdict": "shadow_error"}))
                .unwrap();
        assert_eq!(q.verdict, Some(Verdict::ShadowError));
        assert_eq!(q.limit, DEFAULT_LIST_LIMIT);
        assert_eq!(
            ListQuery {
                limit: 0,
                ..q.clone()
            }
            .clamped_limit(),
            1
        );
        assert_eq!(ListQuery { limit: 9000, ..q }.clamped_limit(), 500);
    }

    #[test]
    fn totals_flatten_in_json() {
        let mut t = Totals::default();
        t.count(Verdict::Different, true);
        let v = serde_json::to_value(RouteStats {
            route: "api".into(),
            totals: t,
        })
        .unwrap();
        assert_eq!(v["different"], 1);
        assert_eq!(v["noise_total"], 1);
        assert_eq!(t.of(Verdict::Different), 1);
    }
}
