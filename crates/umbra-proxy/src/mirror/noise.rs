//! Per-route noise models kept in memory by the compare threads (Diffy's differential:
//! candidate vs primary against secondary vs primary). A comparison that panics while holding
//! the lock must not take every later comparison down with it, so a poisoned lock is taken
//! over as it stands: a model is a set of counters, and one half-counted comparison is noise.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

use umbra_diff::{Difference, Verdict};

/// Per-route noise models (Diffy's differential: candidate vs primary against secondary vs
/// primary), fed by every comparison.
#[derive(Default)]
pub struct NoiseModels {
    models: Mutex<HashMap<String, umbra_diff::NoiseModel>>,
}

impl NoiseModels {
    /// The models, taken over as they stand if a comparison panicked while holding them.
    fn lock(&self) -> MutexGuard<'_, HashMap<String, umbra_diff::NoiseModel>> {
        self.models.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Field rows (rate, noise rate, significance) of one route's endpoint, from memory.
    pub fn field_rows(&self, route: &str, endpoint: &str) -> Vec<umbra_diff::FieldStat> {
        self.lock()
            .get(route)
            .map(|m| m.field_rows(endpoint))
            .unwrap_or_default()
    }

    /// The paths of `candidate`'s differences that noise does not explain.
    pub(crate) fn unexplained(
        &self,
        route: &str,
        endpoint: &str,
        candidate: &[Difference],
    ) -> Vec<String> {
        let models = self.lock();
        let model = models.get(route);
        candidate
            .iter()
            .filter(|d| !model.is_some_and(|m| m.is_noise(endpoint, d)))
            .map(|d| d.path.clone())
            .collect()
    }

    pub(crate) fn observe_and_judge(
        &self,
        route: &str,
        endpoint: &str,
        thresholds: &umbra_diff::Thresholds,
        candidate: &[Difference],
        noise: Option<&[Difference]>,
    ) -> Verdict {
        let mut models = self.lock();
        let model = models
            .entry(route.to_string())
            .or_insert_with(|| umbra_diff::NoiseModel::new(*thresholds, Default::default()));
        model.observe(endpoint, candidate, noise);
        model.verdict(endpoint, candidate)
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
        models.observe_and_judge("r", "GET /a", &th, &[diff("/x")], None);
        let held = models.clone();
        let crashed = std::thread::spawn(move || {
            let _guard = held.models.lock().unwrap();
            panic!("a comparison's bug");
        })
        .join();
        assert!(crashed.is_err());
        assert!(models.models.is_poisoned());
        let verdict = models.observe_and_judge("r", "GET /a", &th, &[diff("/x")], None);
        assert_eq!(verdict, Verdict::Different);
        assert_eq!(models.field_rows("r", "GET /a").len(), 1);
    }
}
