//! Mirroring, off the primary path: shadow dispatch (`dispatch`), the compare threads
//! (`compare`), the per-route noise models (`noise`), the findings models (`findings`) and the bounded queue to the store
//! (`sink`). Every limit here drops and counts on overflow; nothing can block or fail a
//! primary response.

mod compare;
mod dispatch;
mod findings;
mod noise;
mod sink;

use std::sync::{Arc, OnceLock};

pub use compare::{CompareJob, Comparer, Fetched};
pub use dispatch::{run, Candidate, Candidates, DropReason, MirrorError, ShadowJob};
pub use findings::{FindingsJudge, FindingsModels};
pub use noise::NoiseModels;
pub use sink::ComparisonSink;

/// The mirror's shared state: the queue to the store, the noise models, and the compare
/// threads (started with the first mirrored request).
pub struct Mirror {
    pub sink: Arc<ComparisonSink>,
    pub noise: NoiseModels,
    /// Findings per route and candidate (shared with the admin API).
    pub findings: Arc<FindingsModels>,
    comparer: OnceLock<Comparer>,
}

impl Mirror {
    pub fn new(sink: Arc<ComparisonSink>) -> Mirror {
        Mirror {
            sink,
            noise: NoiseModels::default(),
            findings: Arc::default(),
            comparer: OnceLock::new(),
        }
    }

    /// The compare threads' queue: one thread per two proxy workers.
    pub fn comparer(&self, workers: usize) -> &Comparer {
        self.comparer
            .get_or_init(|| Comparer::spawn(workers.div_ceil(2)))
    }

    /// Gives the mirror its compare queue before the first mirrored request (tests: a queue
    /// with no threads, to fill it).
    #[cfg(test)]
    pub(crate) fn use_comparer(&self, comparer: Comparer) {
        assert!(
            self.comparer.set(comparer).is_ok(),
            "comparer already started"
        );
    }
}
