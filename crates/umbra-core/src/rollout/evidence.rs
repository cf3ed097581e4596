//! A rollout's evidence for one window, fed by the data plane: live canary traffic (each side's
//! requests, errors and latencies) and shadow comparisons (verdicts, both statuses and
//! latencies). Recording a live request costs two relaxed atomics (three on an error); a route
//! without a rollout has no recorder and pays nothing. Latencies are kept in bounded rings.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use super::judge::{Side, Window};
use super::spec::Step;

/// Latencies kept per side and source (the most recent ones once full).
pub const RING: usize = 4096;

/// One side's counters and latency ring.
struct Counters {
    requests: AtomicU64,
    errors: AtomicU64,
    ring: Box<[AtomicU32]>,
}

impl Counters {
    fn new() -> Counters {
        Counters {
            requests: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            ring: (0..RING).map(|_| AtomicU32::new(0)).collect(),
        }
    }

    /// Counts a request; `latency_us` None (no answer) leaves its ring slot empty.
    fn record(&self, error: bool, latency_us: Option<u64>) {
        let n = self.requests.fetch_add(1, Ordering::Relaxed);
        if error {
            self.errors.fetch_add(1, Ordering::Relaxed);
        }
        let us = latency_us.map_or(0, |l| l.clamp(1, u32::MAX as u64) as u32);
        self.ring[(n as usize) % RING].store(us, Ordering::Relaxed);
    }

    fn side(&self) -> Side {
        let requests = self.requests.load(Ordering::Relaxed);
        let kept = (requests as usize).min(RING);
        Side {
            requests,
            errors: self.errors.load(Ordering::Relaxed),
            // A slot claimed but not yet written reads 0: left out.
            latencies_us: self.ring[..kept]
                .iter()
                .map(|a| a.load(Ordering::Relaxed) as u64)
                .filter(|&v| v > 0)
                .collect(),
        }
    }
}

/// The evidence of one window of one rollout. A new window is a new recorder.
pub struct Recorder {
    /// The candidate service (for the data plane to tell the sides apart).
    pub candidate: String,
    live: [Counters; 2],
    shadow: [Counters; 2],
    comparisons: AtomicU64,
    significant: AtomicU64,
    fields: Mutex<HashMap<String, u64>>,
}

/// An answer counts as an error: a 5xx (umbra answers 502/504 itself for connect failures and
/// timeouts), or no answer at all.
pub fn is_error(status: Option<u16>) -> bool {
    status.is_none_or(|s| s >= 500)
}

impl Recorder {
    pub fn new(candidate: impl Into<String>) -> Recorder {
        Recorder {
            candidate: candidate.into(),
            live: [Counters::new(), Counters::new()],
            shadow: [Counters::new(), Counters::new()],
            comparisons: AtomicU64::new(0),
            significant: AtomicU64::new(0),
            fields: Mutex::new(HashMap::new()),
        }
    }

    /// A live request answered by the primary (`canary` false) or the candidate.
    pub fn record_live(&self, canary: bool, status: u16, elapsed: Duration) {
        self.live[canary as usize].record(status >= 500, Some(elapsed.as_micros() as u64));
    }

    /// A shadow comparison: both answers (the candidate's `None` when it failed), whether the
    /// noise-filtered verdict is *different*, and the fields that differ.
    pub fn record_comparison<'a>(
        &self,
        primary: (u16, u64),
        candidate: Option<(u16, u64)>,
        significant: bool,
        fields: impl Iterator<Item = &'a str>,
    ) {
        self.shadow[0].record(is_error(Some(primary.0)), Some(primary.1));
        let (status, latency) = candidate.map_or((None, None), |(s, l)| (Some(s), Some(l)));
        self.shadow[1].record(is_error(status), latency);
        self.comparisons.fetch_add(1, Ordering::Relaxed);
        if significant {
            self.significant.fetch_add(1, Ordering::Relaxed);
            let mut map = self.fields.lock().expect("fields lock");
            for f in fields {
                *map.entry(f.to_string()).or_default() += 1;
            }
        }
    }

    /// The window as the judge sees it for `step`: shadow steps are judged on the compared
    /// requests, canary steps on live traffic; comparisons always count for the diff gate.
    pub fn window(&self, step: &Step) -> Window {
        let src = match step {
            Step::Shadow { .. } => &self.shadow,
            _ => &self.live,
        };
        let top_field = self
            .fields
            .lock()
            .expect("fields lock")
            .iter()
            .max_by(|a, b| a.1.cmp(b.1).then_with(|| b.0.cmp(a.0)))
            .map(|(k, v)| (k.clone(), *v));
        Window {
            primary: src[0].side(),
            candidate: src[1].side(),
            comparisons: self.comparisons.load(Ordering::Relaxed),
            significant: self.significant.load(Ordering::Relaxed),
            top_field,
        }
    }
}

impl std::fmt::Debug for Recorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recorder")
            .field("candidate", &self.candidate)
            .field("comparisons", &self.comparisons)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn live_and_shadow_feed_their_steps() {
        let r = Recorder::new("v2");
        for i in 0..10 {
            r.record_live(
                i % 2 == 0,
                if i == 0 { 503 } else { 200 },
                Duration::from_millis(5),
            );
        }
        r.record_comparison(
            (200, 1000),
            Some((500, 2000)),
            true,
            ["/a", "/b"].into_iter(),
        );
        r.record_comparison((200, 1000), None, true, ["/a"].into_iter());
        let canary = Step::Canary {
            percent: 10.0,
            duration: Duration::from_secs(1),
        };
        let w = r.window(&canary);
        assert_eq!((w.candidate.requests, w.candidate.errors), (5, 1));
        assert_eq!((w.primary.requests, w.primary.errors), (5, 0));
        assert_eq!(w.primary.latencies_us, vec![5000; 5]);
        assert_eq!((w.comparisons, w.significant), (2, 2));
        assert_eq!(w.top_field, Some(("/a".into(), 2)));
        let shadow = Step::Shadow {
            duration: Duration::from_secs(1),
        };
        let w = r.window(&shadow);
        assert_eq!((w.candidate.requests, w.candidate.errors), (2, 2));
        assert_eq!(
            w.candidate.latencies_us,
            vec![2000],
            "a failed shadow has no latency"
        );
    }

    #[test]
    fn the_ring_keeps_a_bounded_sample() {
        let r = Recorder::new("v2");
        for _ in 0..RING + 10 {
            r.record_live(true, 200, Duration::from_micros(7));
        }
        let w = r.window(&Step::Promote);
        assert_eq!(w.candidate.requests, (RING + 10) as u64);
        assert_eq!(w.candidate.latencies_us.len(), RING);
    }
}
