//! Per-route, per-candidate findings models kept in memory beside the noise models: the
//! compare threads feed every comparison in, the admin API reads findings out, and at
//! start-up the admin rebuilds them from the store. Control-plane data on the mirror side.
//!
//! Why memory and not the store: `GET /api/routes/{name}/findings` then costs a lock and a
//! grouping of at most a few hundred causes per endpoint, whatever the number of stored
//! comparisons (see bench/RESULTS.md, "issue 16: findings"); computing findings from the store
//! on request means reading and decoding every stored comparison of the route. A poisoned lock
//! is taken over as it stands, as the noise models do: a model is a set of counters.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

use umbra_diff::{Finding, FindingsConfig, FindingsModel, Observation, Thresholds};

/// How a route judges its findings (from its `compare` section).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FindingsJudge {
    pub thresholds: Thresholds,
    pub typed_noise: bool,
}

/// Findings models by route, then candidate.
#[derive(Default)]
pub struct FindingsModels {
    models: Mutex<HashMap<String, Vec<FindingsModel>>>,
}

impl FindingsModels {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, Vec<FindingsModel>>> {
        self.models.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Feeds one comparison of `route` to the model of its candidate.
    pub fn observe(
        &self,
        route: &str,
        candidate: &str,
        judge: FindingsJudge,
        obs: &Observation<'_>,
    ) {
        let mut models = self.lock();
        let of_route = models.entry(route.to_owned()).or_default();
        let at = match of_route.iter().position(|m| m.candidate() == candidate) {
            Some(i) => i,
            None => {
                of_route.push(FindingsModel::new(route, candidate, config(judge)));
                of_route.len() - 1
            }
        };
        let model = &mut of_route[at];
        apply(model, judge);
        model.observe(obs);
    }

    /// Judges a route's findings the way its config now says (after a reload).
    pub fn rejudge(&self, route: &str, judge: FindingsJudge) {
        let mut models = self.lock();
        for m in models.get_mut(route).into_iter().flatten() {
            apply(m, judge);
        }
    }

    /// The findings of every candidate of a route, ordered by severity, then rate (the
    /// candidates' findings interleaved); noise findings only when `include_noise`.
    pub fn findings(&self, route: &str, include_noise: bool) -> Vec<Finding> {
        let models = self.lock();
        let mut out: Vec<Finding> = models
            .get(route)
            .into_iter()
            .flatten()
            .flat_map(|m| m.all_findings(include_noise))
            .collect();
        drop(models);
        out.sort_by(|a, b| {
            b.severity
                .cmp(&a.severity)
                .then(b.rate.total_cmp(&a.rate))
                .then_with(|| a.candidate.cmp(&b.candidate))
                .then_with(|| a.endpoint.cmp(&b.endpoint))
                .then_with(|| a.id.cmp(&b.id))
        });
        out
    }

    /// Whether a route has a model (it saw at least one comparison).
    pub fn has_route(&self, route: &str) -> bool {
        self.lock().contains_key(route)
    }
}

fn apply(model: &mut FindingsModel, judge: FindingsJudge) {
    let c = model.config();
    if c.typed_noise != judge.typed_noise || c.thresholds != judge.thresholds {
        model.set_judging(judge.typed_noise, judge.thresholds);
    }
}

fn config(judge: FindingsJudge) -> FindingsConfig {
    FindingsConfig {
        typed_noise: judge.typed_noise,
        thresholds: judge.thresholds,
        ..FindingsConfig::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use umbra_diff::{DiffKind, Difference, Severity, Verdict};

    fn obs<'a>(id: i64, diffs: &'a [Difference], status: u16) -> Observation<'a> {
        Observation {
            id,
            at_ms: id,
            endpoint: "GET /a",
            primary_status: 200,
            candidate_status: Some(status),
            verdict: Verdict::Different,
            differences: diffs,
            noise: None,
        }
    }

    #[test]
    fn findings_are_per_candidate_and_ordered_by_severity() {
        let models = FindingsModels::default();
        let judge = FindingsJudge {
            thresholds: Thresholds::default(),
            typed_noise: true,
        };
        let added = [Difference {
            path: "/new".into(),
            kind: DiffKind::Added,
            primary: None,
            candidate: Some(serde_json::json!(1)),
        }];
        for i in 0..10 {
            models.observe("api", "v2", judge, &obs(i, &added, 200));
            models.observe("api", "v3", judge, &obs(i, &[], 500));
        }
        let f = models.findings("api", false);
        assert_eq!(f.len(), 2, "{f:?}");
        assert_eq!(
            (f[0].candidate.as_str(), f[0].severity),
            ("v3", Severity::High)
        );
        assert_eq!(
            (f[1].candidate.as_str(), f[1].severity),
            ("v2", Severity::Low)
        );
        assert!(models.has_route("api") && !models.has_route("other"));
        // A reload that turns type-aware noise off applies to what was counted already.
        let ts = [Difference {
            path: "/at".into(),
            kind: DiffKind::Changed,
            primary: Some(serde_json::json!("2026-01-01T00:00:00Z")),
            candidate: Some(serde_json::json!("2026-01-02T00:00:00Z")),
        }];
        models.observe("ts", "v2", judge, &obs(1, &ts, 200));
        assert!(models.findings("ts", false).is_empty());
        let off = FindingsJudge {
            typed_noise: false,
            ..judge
        };
        models.rejudge("ts", off);
        assert_eq!(models.findings("ts", false).len(), 1);
        assert!(models.findings("other", true).is_empty());
    }
}
