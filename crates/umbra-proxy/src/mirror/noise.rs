//! Noise models per route and candidate, kept in memory by the compare threads (Diffy's differential:
//! candidate vs primary against secondary vs primary). A comparison that panics while holding
//! the lock must not take every later comparison down with it, so a poisoned lock is taken
//! over as it stands: a model is a set of counters, and one half-counted comparison is noise.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

use umbra_diff::{Difference, Verdict};

/// Models by route, then by candidate service.
type Models = HashMap<String, HashMap<String, umbra_diff::NoiseModel>>;

/// Noise models per route and candidate (Diffy's differential: candidate vs primary against
/// secondary vs primary), fed by every comparison. Each candidate has its own: one candidate's
/// changes must not dilute (or explain) another's.
#[derive(Default)]
pub struct NoiseModels {
    models: Mutex<Models>,
}

impl NoiseModels {
    /// The models, taken over as they stand if a comparison panicked while holding them.
    fn lock(&self) -> MutexGuard<'_, Models> {
        self.models.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Field rows (rate, noise rate, significance) of one candidate's endpoint, from memory.
    pub fn field_rows(
        &self,
        route: &str,
        candidate: &str,
        endpoint: &str,
    ) -> Vec<umbra_diff::FieldStat> {
        self.lock()
            .get(route)
            .and_then(|m| m.get(candidate))
            .map(|m| m.field_rows(endpoint))
            .unwrap_or_default()
    }

    /// The paths of `diffs` (the candidate's differences) that noise does not explain.
    pub(crate) fn unexplained(
        &self,
        (route, candidate): (&str, &str),
        endpoint: &str,
        diffs: &[Difference],
    ) -> Vec<String> {
        let models = self.lock();
        let model = models.get(route).and_then(|m| m.get(candidate));
        diffs
            .iter()
            .filter(|d| !model.is_some_and(|m| m.is_noise(endpoint, d)))
            .map(|d| d.path.clone())
            .collect()
    }

    pub(crate) fn observe_and_judge(
        &self,
        (route, candidate): (&str, &str),
        endpoint: &str,
        thresholds: &umbra_diff::Thresholds,
        diffs: &[Difference],
        noise: Option<&[Difference]>,
    ) -> Verdict {
        let mut models = self.lock();
        // Keys are copied once, when a route or candidate is first seen.
        if !models.contains_key(route) {
            models.insert(route.to_string(), HashMap::new());
        }
        let by_candidate = models.get_mut(route).expect("inserted above");
        if !by_candidate.contains_key(candidate) {
            // A new candidate starts with what the route's other candidates learned of the
            // primary's own noise (the secondary answers the same whoever the candidate is).
            let learned = by_candidate.values().max_by_key(|m| m.noise_samples());
            let model = match learned {
                Some(m) => m.for_new_candidate(),
                None => umbra_diff::NoiseModel::new(*thresholds, Default::default()),
            };
            by_candidate.insert(candidate.to_string(), model);
        }
        let model = by_candidate.get_mut(candidate).expect("inserted above");
        model.observe(endpoint, diffs, noise);
        model.verdict(endpoint, diffs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use umbra_diff::{DiffKind, Thresholds};

    fn diff(path: &str) -> Difference {
        Difference {
            path: path.into(),
            kind: DiffKind::Changed,
            primary: None,
            candidate: None,
        }
    }

    #[test]
    fn a_panic_while_judging_does_not_end_later_judgements() {
        let models = std::sync::Arc::new(NoiseModels::default());
        let th = Thresholds::default();
        models.observe_and_judge(("r", "v2"), "GET /a", &th, &[diff("/x")], None);
        let held = models.clone();
        let crashed = std::thread::spawn(move || {
            let _guard = held.models.lock().unwrap();
            panic!("a comparison's bug");
        })
        .join();
        assert!(crashed.is_err());
        assert!(models.models.is_poisoned());
        let verdict = models.observe_and_judge(("r", "v2"), "GET /a", &th, &[diff("/x")], None);
        assert_eq!(verdict, Verdict::Different);
        assert_eq!(models.field_rows("r", "v2", "GET /a").len(), 1);
    }

    #[test]
    fn each_candidate_has_its_own_model() {
        let models = NoiseModels::default();
        let th = Thresholds::default();
        for _ in 0..20 {
            models.observe_and_judge(("r", "v2"), "GET /a", &th, &[diff("/x")], None);
            models.observe_and_judge(("r", "v3"), "GET /a", &th, &[], None);
        }
        let rows = |c| models.field_rows("r", c, "GET /a");
        assert_eq!(rows("v2").len(), 1, "v2's change is v2's");
        assert!(rows("v3").is_empty(), "v3 never differed: {:?}", rows("v3"));
        let unexplained = models.unexplained(("r", "v3"), "GET /a", &[diff("/y")]);
        assert_eq!(unexplained, vec!["/y".to_string()]);
    }
}
