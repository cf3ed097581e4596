//! Latency summaries and regression detection from distributions, never from a single
//! request. Shadow/control side, pure.
//!
//! The rule (all latencies in µs): with at least [`MIN_SAMPLES`] samples on each side, a
//! regression is flagged when
//! - **median shift**: shadow p50 > 1.2 × primary p50 + 2 ms, *and* a one-sided
//!   Mann–Whitney U test (normal approximation with tie correction) says the shadow is
//!   stochastically slower with p < 0.01; or
//! - **tail shift**: with at least [`MIN_TAIL_SAMPLES`] samples on each side, shadow p99 >
//!   1.5 × primary p99 + 5 ms, *and* the share of shadow samples above the primary's p99 is
//!   improbably high for a 1 % tail (one-sided Poisson tail of the count, p < 0.01).
//!
//! The margins keep tiny absolute changes on fast endpoints from being flagged; the tests keep
//! a few slow outliers from being flagged.

use serde::{Deserialize, Serialize};

/// Samples needed on each side before anything is flagged.
pub const MIN_SAMPLES: usize = 30;
/// Samples needed on each side before the p99 rule is considered.
pub const MIN_TAIL_SAMPLES: usize = 100;
/// Significance level of both tests.
pub const ALPHA: f64 = 0.01;

/// Nearest-rank percentiles of a sample, in microseconds (all 0 for an empty sample).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Percentiles {
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub count: usize,
}

impl Percentiles {
    pub fn from_samples(samples_us: &[u64]) -> Percentiles {
        let mut sorted = samples_us.to_vec();
        sorted.sort_unstable();
        Percentiles::from_sorted(&sorted)
    }

    fn from_sorted(sorted: &[u64]) -> Percentiles {
        Percentiles {
            p50: nearest_rank(sorted, 50),
            p90: nearest_rank(sorted, 90),
            p99: nearest_rank(sorted, 99),
            count: sorted.len(),
        }
    }
}

/// The smallest value with at least `pct` % of the sample at or below it.
fn nearest_rank(sorted: &[u64], pct: usize) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = (pct * sorted.len()).div_ceil(100).max(1);
    sorted[rank.min(sorted.len()) - 1]
}

/// The outcome of [`regression`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LatencyRegression {
    pub flagged: bool,
    /// Why it was or was not flagged, for people.
    pub reason: String,
    pub primary: Percentiles,
    pub shadow: Percentiles,
    /// One-sided Mann–Whitney p-value that the shadow is slower (absent below the sample
    /// minimum).
    pub p_value: Option<f64>,
}

fn ms(us: u64) -> String {
    format!("{:.1} ms", us as f64 / 1000.0)
}

/// Judges whether the shadow's latencies regressed against the primary's (see the module
/// documentation for the rule).
pub fn regression(primary_us: &[u64], shadow_us: &[u64]) -> LatencyRegression {
    let mut p_sorted = primary_us.to_vec();
    p_sorted.sort_unstable();
    let mut s_sorted = shadow_us.to_vec();
    s_sorted.sort_unstable();
    let primary = Percentiles::from_sorted(&p_sorted);
    let shadow = Percentiles::from_sorted(&s_sorted);

    if primary.count < MIN_SAMPLES || shadow.count < MIN_SAMPLES {
        return LatencyRegression {
            flagged: false,
            reason: format!(
                "not enough samples ({} primary, {} shadow; need {MIN_SAMPLES} each)",
                primary.count, shadow.count
            ),
            primary,
            shadow,
            p_value: None,
        };
    }

    let p_value = mann_whitney_greater(&s_sorted, &p_sorted);
    let median_bar = primary.p50 as f64 * 1.2 + 2000.0;
    let median_shift = shadow.p50 as f64 > median_bar;
    if median_shift && p_value < ALPHA {
        return LatencyRegression {
            flagged: true,
            reason: format!(
                "p50 {} vs {} (over 1.2× + 2 ms), Mann–Whitney p = {p_value:.2e}",
                ms(shadow.p50),
                ms(primary.p50)
            ),
            primary,
            shadow,
            p_value: Some(p_value),
        };
    }

    let tail_bar = primary.p99 as f64 * 1.5 + 5000.0;
    let tail_shift = shadow.p99 as f64 > tail_bar;
    let enough_for_tail = primary.count >= MIN_TAIL_SAMPLES && shadow.count >= MIN_TAIL_SAMPLES;
    if tail_shift && enough_for_tail {
        let above = s_sorted.len() - s_sorted.partition_point(|&x| x <= primary.p99);
        let tail_p = poisson_upper_tail(above as u64, shadow.count as f64 * 0.01);
        if tail_p < ALPHA {
            return LatencyRegression {
                flagged: true,
                reason: format!(
                    "p99 {} vs {} (over 1.5× + 5 ms); {above} of {} shadow requests slower than the primary's p99 (p = {tail_p:.2e})",
                    ms(shadow.p99),
                    ms(primary.p99),
                    shadow.count
                ),
                primary,
                shadow,
                p_value: Some(p_value),
            };
        }
    }

    let reason = if median_shift {
        format!(
            "p50 {} vs {} is over 1.2× + 2 ms but not significant (Mann–Whitney p = {p_value:.2e})",
            ms(shadow.p50),
            ms(primary.p50)
        )
    } else if tail_shift && !enough_for_tail {
        format!(
            "p99 {} vs {} is over 1.5× + 5 ms but {MIN_TAIL_SAMPLES} samples per side are needed to judge the tail",
            ms(shadow.p99),
            ms(primary.p99)
        )
    } else if tail_shift {
        format!(
            "p99 {} vs {} is over 1.5× + 5 ms but too few shadow requests are in the tail to be significant",
            ms(shadow.p99),
            ms(primary.p99)
        )
    } else {
        format!(
            "p50 {} vs {}, p99 {} vs {}: within margins",
            ms(shadow.p50),
            ms(primary.p50),
            ms(shadow.p99),
            ms(primary.p99)
        )
    };
    LatencyRegression {
        flagged: false,
        reason,
        primary,
        shadow,
        p_value: Some(p_value),
    }
}

/// One-sided Mann–Whitney U test that `x` tends to be greater than `y`; both sorted. Returns
/// the p-value (1 when either side is empty or every value ties).
/// Normal approximation with tie correction and continuity correction.
pub fn mann_whitney_greater(x: &[u64], y: &[u64]) -> f64 {
    let (n1, n2) = (x.len() as f64, y.len() as f64);
    let n = n1 + n2;
    // Merge the sorted samples, ranking ties by their average rank.
    let (mut i, mut j) = (0, 0);
    let mut rank_sum_x = 0.0;
    let mut tie_term = 0.0;
    let mut next_rank = 1.0;
    while i < x.len() || j < y.len() {
        let v = match (x.get(i), y.get(j)) {
            (Some(&a), Some(&b)) => a.min(b),
            (Some(&a), None) => a,
            (None, Some(&b)) => b,
            (None, None) => break,
        };
        let cx = x[i..].iter().take_while(|&&a| a == v).count();
        let cy = y[j..].iter().take_while(|&&b| b == v).count();
        let t = (cx + cy) as f64;
        let avg = next_rank + (t - 1.0) / 2.0;
        rank_sum_x += avg * cx as f64;
        tie_term += t * t * t - t;
        next_rank += t;
        i += cx;
        j += cy;
    }
    let u = rank_sum_x - n1 * (n1 + 1.0) / 2.0;
    let mean = n1 * n2 / 2.0;
    let var = n1 * n2 / 12.0 * ((n + 1.0) - tie_term / (n * (n - 1.0)));
    if var <= 0.0 {
        return 1.0;
    }
    let z = (u - mean - 0.5) / var.sqrt();
    normal_upper_tail(z)
}

/// `P(Z > z)` for a standard normal variable.
fn normal_upper_tail(z: f64) -> f64 {
    0.5 * erfc(z / std::f64::consts::SQRT_2)
}

/// Complementary error function (Numerical Recipes' Chebyshev fit, relative error < 1.2e-7).
fn erfc(x: f64) -> f64 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let r = t
        * (-z * z - 1.265_512_23
            + t * (1.000_023_68
                + t * (0.374_091_96
                    + t * (0.096_784_18
                        + t * (-0.186_288_06
                            + t * (0.278_868_07
                                + t * (-1.135_203_98
                                    + t * (1.488_515_87
                                        + t * (-0.822_152_23 + t * 0.170_872_77)))))))))
            .exp();
    if x >= 0.0 {
        r
    } else {
        2.0 - r
    }
}

/// `P(X >= k)` for `X ~ Poisson(lambda)`.
fn poisson_upper_tail(k: u64, lambda: f64) -> f64 {
    if k == 0 {
        return 1.0;
    }
    // Sum P(X = i) for i < k in a numerically stable way, then complement.
    let mut term = (-lambda).exp();
    let mut below = 0.0;
    for i in 0..k {
        below += term;
        term *= lambda / (i + 1) as f64;
        if term == 0.0 && i as f64 > lambda {
            break;
        }
    }
    (1.0 - below).max(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deterministic pseudo-random jitter (no RNG dependency needed).
    fn samples(n: usize, base: u64, spread: u64, seed: u64) -> Vec<u64> {
        let mut s = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (0..n)
            .map(|_| {
                s = s
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                base + (s >> 33) % spread.max(1)
            })
            .collect()
    }

    #[test]
    fn percentiles_nearest_rank() {
        let v: Vec<u64> = (1..=100).rev().collect();
        let p = Percentiles::from_samples(&v);
        assert_eq!(
            p,
            Percentiles {
                p50: 50,
                p90: 90,
                p99: 99,
                count: 100
            }
        );
        assert_eq!(Percentiles::from_samples(&[]), Percentiles::default());
        let one = Percentiles::from_samples(&[7]);
        assert_eq!((one.p50, one.p90, one.p99, one.count), (7, 7, 7, 1));
        let p = Percentiles::from_samples(&[1, 2, 3]);
        assert_eq!((p.p50, p.p90, p.p99), (2, 3, 3));
    }

    #[test]
    fn never_flags_below_minimum_samples() {
        let r = regression(&[1000; 29], &[1_000_000; 29]);
        assert!(!r.flagged);
        assert!(r.reason.contains("not enough samples"), "{}", r.reason);
        assert!(r.p_value.is_none());
        assert!(!regression(&[1000], &[10_000_000]).flagged);
        assert!(!regression(&[], &[]).flagged);
    }

    #[test]
    fn flags_a_clear_median_regression() {
        let primary = samples(200, 10_000, 2_000, 1);
        let shadow = samples(200, 30_000, 2_000, 2);
        let r = regression(&primary, &shadow);
        assert!(r.flagged, "{r:?}");
        assert!(r.reason.contains("p50"), "{}", r.reason);
        assert!(r.p_value.is_some_and(|p| p < 1e-6));
    }

    #[test]
    fn same_distribution_is_not_flagged() {
        let primary = samples(500, 10_000, 5_000, 3);
        let shadow = samples(500, 10_000, 5_000, 4);
        let r = regression(&primary, &shadow);
        assert!(!r.flagged, "{r:?}");
        assert!(r.reason.contains("within margins"), "{}", r.reason);
    }

    #[test]
    fn small_absolute_slowdowns_on_fast_endpoints_are_not_flagged() {
        // 0.5 ms → 1.5 ms is 3× but under the 2 ms margin.
        let primary = samples(300, 500, 100, 5);
        let shadow = samples(300, 1_500, 100, 6);
        let r = regression(&primary, &shadow);
        assert!(!r.flagged, "{r:?}");
        assert!(
            r.p_value.is_some_and(|p| p < ALPHA),
            "the shift is real, just small"
        );
    }

    #[test]
    fn a_few_outliers_do_not_flag() {
        let primary = samples(100, 10_000, 1_000, 7);
        let mut shadow = samples(100, 10_000, 1_000, 8);
        shadow[0] = 5_000_000;
        let r = regression(&primary, &shadow);
        assert!(!r.flagged, "{r:?}");
    }

    #[test]
    fn flags_a_tail_regression_with_enough_samples() {
        let primary = samples(1000, 10_000, 1_000, 9);
        let mut shadow = samples(1000, 10_000, 1_000, 10);
        for x in shadow.iter_mut().step_by(10) {
            *x = 200_000;
        }
        let r = regression(&primary, &shadow);
        assert!(r.flagged, "{r:?}");
        assert!(r.reason.contains("p99"), "{}", r.reason);
        // The same tail with too few samples is only reported.
        let r = regression(&primary[..50], &shadow[..50]);
        assert!(!r.flagged, "{r:?}");
    }

    #[test]
    fn mann_whitney_matches_known_values() {
        // Identical samples: no evidence either way.
        let a: Vec<u64> = (0..50).collect();
        let p = mann_whitney_greater(&a, &a);
        assert!((p - 0.5).abs() < 0.05, "{p}");
        // All equal values: zero variance.
        assert_eq!(mann_whitney_greater(&[5; 40], &[5; 40]), 1.0);
        // Completely separated.
        let hi: Vec<u64> = (100..150).collect();
        assert!(mann_whitney_greater(&hi, &a) < 1e-10);
        assert!(mann_whitney_greater(&a, &hi) > 0.999_999);
    }

    #[test]
    fn numeric_helpers() {
        assert!((erfc(0.0) - 1.0).abs() < 1e-7);
        assert!((normal_upper_tail(1.96) - 0.025).abs() < 1e-4);
        assert!((normal_upper_tail(-1.96) - 0.975).abs() < 1e-4);
        assert_eq!(poisson_upper_tail(0, 3.0), 1.0);
        // P(X >= 1) = 1 - e^-1 for λ = 1.
        assert!((poisson_upper_tail(1, 1.0) - (1.0 - (-1.0f64).exp())).abs() < 1e-12);
        assert!(poisson_upper_tail(100, 10.0) < 1e-12);
    }
}
