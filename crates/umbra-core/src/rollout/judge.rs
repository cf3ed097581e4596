//! The judge: the three gates of a rollout step over one window of evidence, candidate against
//! primary in the same window, and what the controller does about the result. Pure: numbers in,
//! a verdict with its evidence out.
//!
//! - **diff gate**: share of comparisons whose noise-filtered verdict is *different* ≤
//!   `max_diff_rate` (only when the window has comparisons);
//! - **error gate**: candidate error rate − primary error rate ≤ `max_error_rate`;
//! - **latency gate**: fails only when the candidate is slower with confidence (one-sided
//!   Mann–Whitney U, p < [`LATENCY_ALPHA`]) *and* its p50 or p99 is more than
//!   `max_latency_ratio` times the primary's.
//!
//! Fewer than `min_requests` candidate samples: the step neither passes nor fails; it waits.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use umbra_diff::latency::mann_whitney_greater;
use umbra_diff::Percentiles;

use super::spec::{RolloutSpec, Step, Thresholds};

/// Significance level of the latency gate (Kayenta's).
pub const LATENCY_ALPHA: f64 = 0.02;

/// One side's measurements in a window.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Side {
    pub requests: u64,
    /// 5xx answers, connect failures and timeouts.
    pub errors: u64,
    /// A bounded sample of latencies, in µs.
    pub latencies_us: Vec<u64>,
}

impl Side {
    fn error_rate(&self) -> f64 {
        rate(self.errors, self.requests)
    }
}

/// What one window holds for one gate evaluation: the pair of sides the step is judged on, and
/// the comparisons of the window.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Window {
    pub primary: Side,
    pub candidate: Side,
    pub comparisons: u64,
    pub significant: u64,
    /// The field with the most significant differences, and how many.
    pub top_field: Option<(String, u64)>,
}

/// The gates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Gate {
    Diff,
    Error,
    Latency,
    /// Not a gate of its own: too few samples until `max_wait`.
    Samples,
    /// A `before_step` hook that would not let the step start.
    Hook,
}

impl Gate {
    pub fn as_str(&self) -> &'static str {
        match self {
            Gate::Diff => "diff",
            Gate::Error => "error",
            Gate::Latency => "latency",
            Gate::Samples => "samples",
            Gate::Hook => "hook",
        }
    }
}

/// One gate's evidence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GateResult {
    pub gate: Gate,
    pub passed: bool,
    pub value: f64,
    pub threshold: f64,
    pub samples: u64,
    pub detail: String,
}

/// A window judged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Judgement {
    /// `pass`, `wait` or `fail`.
    pub outcome: Outcome,
    pub candidate_samples: u64,
    pub primary_samples: u64,
    pub needed: u64,
    pub gates: Vec<GateResult>,
    pub summary: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Pass,
    Wait,
    Fail,
}

impl Judgement {
    /// The first failing gate.
    pub fn failed(&self) -> Option<&GateResult> {
        self.gates.iter().find(|g| !g.passed)
    }
}

fn rate(n: u64, total: u64) -> f64 {
    if total == 0 {
        0.0
    } else {
        n as f64 / total as f64
    }
}

fn pct(x: f64) -> String {
    format!("{:.1} %", x * 100.0)
}

/// Judges one window against the thresholds.
pub fn judge(w: &Window, t: &Thresholds) -> Judgement {
    let have = w.candidate.requests;
    let base = Judgement {
        outcome: Outcome::Wait,
        candidate_samples: have,
        primary_samples: w.primary.requests,
        needed: t.min_requests,
        gates: Vec::new(),
        summary: format!("waiting for samples: {have}/{}", t.min_requests),
    };
    if have < t.min_requests {
        return base;
    }
    let mut gates = Vec::new();
    if w.comparisons > 0 {
        gates.push(diff_gate(w, t));
    }
    gates.push(error_gate(w, t));
    gates.push(latency_gate(w, t));
    let failed: Vec<String> = gates
        .iter()
        .filter(|g| !g.passed)
        .map(|g| format!("{} gate: {}", g.gate.as_str(), g.detail))
        .collect();
    let (outcome, summary) = if failed.is_empty() {
        (Outcome::Pass, format!("all gates hold over {have} samples"))
    } else {
        (Outcome::Fail, failed.join("; "))
    };
    Judgement {
        outcome,
        gates,
        summary,
        ..base
    }
}

fn diff_gate(w: &Window, t: &Thresholds) -> GateResult {
    let value = rate(w.significant, w.comparisons);
    let field = match &w.top_field {
        Some((f, n)) => format!(" (most on `{f}`: {n})"),
        None => String::new(),
    };
    GateResult {
        gate: Gate::Diff,
        passed: value <= t.max_diff_rate,
        value,
        threshold: t.max_diff_rate,
        samples: w.comparisons,
        detail: format!(
            "{} of {} comparisons significantly different ({}, max {}){field}",
            w.significant,
            w.comparisons,
            pct(value),
            pct(t.max_diff_rate)
        ),
    }
}

fn error_gate(w: &Window, t: &Thresholds) -> GateResult {
    let (c, p) = (w.candidate.error_rate(), w.primary.error_rate());
    let value = c - p;
    GateResult {
        gate: Gate::Error,
        passed: value <= t.max_error_rate,
        value,
        threshold: t.max_error_rate,
        samples: w.candidate.requests,
        detail: format!(
            "candidate {} errors ({}/{}) vs primary {} ({}/{}): +{} (max +{})",
            pct(c),
            w.candidate.errors,
            w.candidate.requests,
            pct(p),
            w.primary.errors,
            w.primary.requests,
            pct(value.max(0.0)),
            pct(t.max_error_rate)
        ),
    }
}

fn latency_gate(w: &Window, t: &Thresholds) -> GateResult {
    let mut c = w.candidate.latencies_us.clone();
    let mut p = w.primary.latencies_us.clone();
    c.sort_unstable();
    p.sort_unstable();
    let samples = c.len().min(p.len()) as u64;
    if c.len() < 2 || p.len() < 2 {
        return GateResult {
            gate: Gate::Latency,
            passed: true,
            value: 1.0,
            threshold: t.max_latency_ratio,
            samples,
            detail: "too few primary latencies in the window to compare".into(),
        };
    }
    let p_value = mann_whitney_greater(&c, &p);
    let (cp, pp) = (Percentiles::from_samples(&c), Percentiles::from_samples(&p));
    let r50 = cp.p50 as f64 / pp.p50.max(1) as f64;
    let r99 = cp.p99 as f64 / pp.p99.max(1) as f64;
    let value = r50.max(r99);
    let slower = p_value < LATENCY_ALPHA;
    let ms = |us: u64| format!("{:.1} ms", us as f64 / 1000.0);
    GateResult {
        gate: Gate::Latency,
        passed: !(slower && value > t.max_latency_ratio),
        value,
        threshold: t.max_latency_ratio,
        samples,
        detail: format!(
            "p50 {} vs {} ({r50:.2}×), p99 {} vs {} ({r99:.2}×), max {:.2}×; Mann–Whitney p = {p_value:.2e} (slower when < {LATENCY_ALPHA})",
            ms(cp.p50),
            ms(pp.p50),
            ms(cp.p99),
            ms(pp.p99),
            t.max_latency_ratio
        ),
    }
}

/// What the controller does after an evaluation.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Keep the step: not long enough yet, or waiting for samples. Failures reset to 0
    /// when the window passed; kept when it waited.
    Hold { failures: u32 },
    /// A gate failed, but fewer than `failure_limit` times in a row.
    Failing { failures: u32 },
    /// The step is done: go to the next one.
    Advance,
    /// Return all traffic to the primary; the gate (or `samples`) that decided it.
    Rollback(GateResult),
}

/// Decides over one judged window: `elapsed` since the window started, `failures` in a row
/// before this evaluation.
pub fn decide(
    spec: &RolloutSpec,
    step: &Step,
    elapsed: Duration,
    failures: u32,
    j: &Judgement,
) -> Decision {
    match j.outcome {
        Outcome::Wait if elapsed >= spec.max_wait => Decision::Rollback(GateResult {
            gate: Gate::Samples,
            passed: false,
            value: j.candidate_samples as f64,
            threshold: j.needed as f64,
            samples: j.candidate_samples,
            detail: format!(
                "only {}/{} candidate samples after max_wait {}",
                j.candidate_samples,
                j.needed,
                crate::config::units::format_duration(spec.max_wait)
            ),
        }),
        Outcome::Wait => Decision::Hold { failures },
        Outcome::Fail => {
            let failures = failures + 1;
            match j.failed() {
                Some(g) if failures >= spec.failure_limit => Decision::Rollback(g.clone()),
                _ => Decision::Failing { failures },
            }
        }
        Outcome::Pass if elapsed >= step.duration() => Decision::Advance,
        Outcome::Pass => Decision::Hold { failures: 0 },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::RawRollout;
    use crate::rollout::spec::validate_rollout;

    fn t() -> Thresholds {
        Thresholds {
            max_diff_rate: 0.01,
            max_error_rate: 0.01,
            max_latency_ratio: 1.25,
            min_requests: 100,
        }
    }

    fn side(requests: u64, errors: u64, lat: impl Fn(u64) -> u64) -> Side {
        Side {
            requests,
            errors,
            latencies_us: (0..requests).map(lat).collect(),
        }
    }

    /// Latencies spread 10..20 ms with a deterministic jitter.
    fn base(i: u64) -> u64 {
        10_000 + (i * 7919) % 10_000
    }

    fn window(primary: Side, candidate: Side) -> Window {
        Window {
            primary,
            candidate,
            ..Default::default()
        }
    }

    #[test]
    fn mann_whitney_matches_scipy() {
        // scipy.stats.mannwhitneyu(x, y, alternative='greater', method='asymptotic',
        // use_continuity=True), scipy 1.17.1.
        let cases: [(&[u64], &[u64], f64); 4] = [
            (
                &[12, 15, 11, 18, 20, 22, 19, 17, 16, 21],
                &[10, 11, 9, 12, 13, 12, 11, 10, 14, 12],
                0.0011793121673100327,
            ),
            (
                &[5, 5, 5, 6, 6, 7, 7, 7, 8],
                &[5, 5, 6, 6, 6, 7, 7, 8, 8],
                0.6761125666964223,
            ),
            (
                &[100, 101, 102, 103, 104, 105, 106, 107, 108, 109, 110, 111],
                &[100, 102, 104, 106, 108, 110, 112, 114, 116, 118, 120, 122],
                0.9736059975927398,
            ),
            (
                &[
                    30, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44, 45, 46, 47, 48, 49,
                ],
                &[
                    10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30, 32, 34, 36, 38, 40, 42, 44, 46, 48,
                ],
                0.0023415433854399345,
            ),
        ];
        for (x, y, want) in cases {
            let (mut x, mut y) = (x.to_vec(), y.to_vec());
            x.sort_unstable();
            y.sort_unstable();
            let got = mann_whitney_greater(&x, &y);
            assert!((got - want).abs() <= want * 1e-5, "{got} vs scipy {want}");
        }
    }

    #[test]
    fn too_few_samples_wait_and_say_so() {
        let j = judge(&window(side(500, 0, base), side(37, 30, base)), &t());
        assert_eq!(j.outcome, Outcome::Wait);
        assert_eq!(j.summary, "waiting for samples: 37/100");
        assert!(j.gates.is_empty());
    }

    #[test]
    fn identical_sides_pass() {
        let j = judge(&window(side(900, 9, base), side(100, 1, base)), &t());
        assert_eq!(j.outcome, Outcome::Pass, "{}", j.summary);
        assert_eq!(j.gates.len(), 2, "no comparisons, no diff gate");
    }

    #[test]
    fn error_gate_compares_against_the_primary_in_the_same_window() {
        // 5 % candidate errors vs 0 %: +5 % > 1 %.
        let j = judge(&window(side(900, 0, base), side(200, 10, base)), &t());
        assert_eq!(j.outcome, Outcome::Fail);
        let g = j.failed().unwrap();
        assert_eq!(g.gate, Gate::Error);
        assert!((g.value - 0.05).abs() < 1e-9);
        assert!(
            g.detail.contains("candidate 5.0 % errors (10/200)"),
            "{}",
            g.detail
        );
        // The same 5 % on a primary that also fails 4.5 %: within 1 %.
        let j = judge(&window(side(1000, 45, base), side(200, 10, base)), &t());
        assert_eq!(j.outcome, Outcome::Pass, "{}", j.summary);
    }

    #[test]
    fn twice_slower_fails_five_percent_slower_passes() {
        let j = judge(
            &window(side(500, 0, base), side(200, 0, |i| base(i) * 2)),
            &t(),
        );
        let g = j.failed().expect("2× slower fails");
        assert_eq!(g.gate, Gate::Latency);
        assert!(g.value > 1.9, "{g:?}");
        let j = judge(
            &window(side(500, 0, base), side(200, 0, |i| base(i) * 105 / 100)),
            &t(),
        );
        assert_eq!(j.outcome, Outcome::Pass, "{}", j.summary);
    }

    #[test]
    fn a_slow_ratio_without_confidence_passes() {
        // Two primary samples, one fast: the ratio is large but nothing is significant.
        let primary = Side {
            requests: 3,
            errors: 0,
            latencies_us: vec![1_000, 30_000, 30_000],
        };
        let j = judge(&window(primary, side(100, 0, |i| 25_000 + i * 100)), &t());
        assert_eq!(j.outcome, Outcome::Pass, "{}", j.summary);
    }

    #[test]
    fn diff_gate_names_the_field() {
        let mut w = window(side(200, 0, base), side(200, 0, base));
        w.comparisons = 200;
        w.significant = 30;
        w.top_field = Some(("/price".into(), 30));
        let j = judge(&w, &t());
        let g = j.failed().unwrap();
        assert_eq!(g.gate, Gate::Diff);
        assert!(g.detail.contains("`/price`"), "{}", g.detail);
        w.significant = 1;
        assert_eq!(judge(&w, &t()).outcome, Outcome::Pass);
    }

    fn spec() -> RolloutSpec {
        let raw = RawRollout {
            service: "v2".into(),
            steps: Some(vec!["10% 1m".into(), "100%".into()]),
            max_wait: Some("5m".into()),
            ..Default::default()
        };
        validate_rollout(&raw, "", Some("v1"), None).unwrap()
    }

    #[test]
    fn decisions_follow_time_failures_and_max_wait() {
        let s = spec();
        let step = s.steps[0];
        let pass = judge(&window(side(900, 0, base), side(100, 0, base)), &t());
        let fail = judge(&window(side(900, 0, base), side(100, 50, base)), &t());
        let wait = judge(&window(side(900, 0, base), side(5, 0, base)), &t());
        let secs = Duration::from_secs;
        assert_eq!(
            decide(&s, &step, secs(10), 1, &pass),
            Decision::Hold { failures: 0 }
        );
        assert_eq!(decide(&s, &step, secs(60), 0, &pass), Decision::Advance);
        assert_eq!(
            decide(&s, &step, secs(10), 0, &fail),
            Decision::Failing { failures: 1 }
        );
        match decide(&s, &step, secs(10), 1, &fail) {
            Decision::Rollback(g) => assert_eq!(g.gate, Gate::Error),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            decide(&s, &step, secs(299), 1, &wait),
            Decision::Hold { failures: 1 }
        );
        match decide(&s, &step, secs(300), 0, &wait) {
            Decision::Rollback(g) => {
                assert_eq!(g.gate, Gate::Samples);
                assert!(
                    g.detail.starts_with("only 5/100 candidate samples"),
                    "{}",
                    g.detail
                );
            }
            other => panic!("{other:?}"),
        }
    }
}
