//! Telemetry of the data plane: Prometheus metrics (names fixed by DESIGN.md), live per-route
//! stats for the admin overview, and the JSON access log (written by `access_log`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub route: String,
    pub service: String,
    pub code: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteServiceLabels {
    pub route: String,
    pub service: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    pub route: String,
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    pub route: String,
    pub reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct VerdictLabels {
    pub route: String,
    pub verdict: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ServerLabels {
    pub service: String,
    pub server: String,
}

pub use crate::access_log::AccessLog;

fn duration_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

/// Every metric umbra exports. Cheap to clone handles out of; registered once.
pub struct Metrics {
    /// Tells apart the instances of one process (tests run several) in per-thread caches.
    id: u64,
    registry: Registry,
    pub requests: Family<RequestLabels, Counter>,
    pub request_duration: Family<RouteServiceLabels, Histogram, fn() -> Histogram>,
    pub shadow_requests: Family<OutcomeLabels, Counter>,
    pub shadow_dropped: Family<ReasonLabels, Counter>,
    pub comparisons: Family<VerdictLabels, Counter>,
    pub upstream_healthy: Family<ServerLabels, Gauge>,
    pub store_queue_depth: Gauge,
    pub store_dropped: Counter,
    pub config_reloads: Family<OutcomeLabels, Counter>,
    /// Client connections open now.
    pub connections_open: Gauge,
    /// Client connections closed by umbra to stay within `proxy.max_connections`, by reason
    /// (`idle`: the oldest idle one made room; `refused`: none was idle, the new one closed).
    pub connections_shed: Family<ReasonOnly, Counter>,
    /// Requests refused by a route's rate limit.
    pub rate_limited: Family<RouteOnly, Counter>,
    /// Access-log lines dropped because the writer fell behind.
    pub access_log_dropped: Counter,
}

/// A single `route` label.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteOnly {
    pub route: String,
}

/// A single `reason` label.
#[derive(Clone, Debug, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
pub struct ReasonOnly {
    pub reason: &'static str,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let requests = Family::<RequestLabels, Counter>::default();
        let request_duration =
            Family::<RouteServiceLabels, Histogram, fn() -> Histogram>::new_with_constructor(
                duration_histogram as fn() -> Histogram,
            );
        let shadow_requests = Family::<OutcomeLabels, Counter>::default();
        let shadow_dropped = Family::<ReasonLabels, Counter>::default();
        let comparisons = Family::<VerdictLabels, Counter>::default();
        let upstream_healthy = Family::<ServerLabels, Gauge>::default();
        let store_queue_depth = Gauge::default();
        let store_dropped = Counter::default();
        let config_reloads = Family::<OutcomeLabels, Counter>::default();
        let connections_open = Gauge::default();
        let connections_shed = Family::<ReasonOnly, Counter>::default();
        let rate_limited = Family::<RouteOnly, Counter>::default();
        let access_log_dropped = Counter::default();
        registry.register(
            "umbra_rate_limited",
            "Requests refused by a route's rate limit (429)",
            rate_limited.clone(),
        );
        registry.register(
            "umbra_access_log_dropped",
            "Access-log lines dropped because the log writer fell behind",
            access_log_dropped.clone(),
        );
        registry.register(
            "umbra_connections_open",
            "Client connections open",
            connections_open.clone(),
        );
        registry.register(
            "umbra_connections_shed",
            "Client connections closed to stay within proxy.max_connections, by reason",
            connections_shed.clone(),
        );
        // prometheus-client appends `_total` to counters itself.
        registry.register(
            "umbra_requests",
            "Requests answered, by route, service and status code",
            requests.clone(),
        );
        registry.register(
            "umbra_request_duration_seconds",
            "Time to the primary response headers",
            request_duration.clone(),
        );
        registry.register(
            "umbra_shadow_requests",
            "Mirrored requests by outcome",
            shadow_requests.clone(),
        );
        registry.register(
            "umbra_shadow_dropped",
            "Mirror candidates not sent, by reason",
            shadow_dropped.clone(),
        );
        registry.register(
            "umbra_comparisons",
            "Comparisons by verdict",
            comparisons.clone(),
        );
        registry.register(
            "umbra_upstream_healthy",
            "1 when the server receives traffic",
            upstream_healthy.clone(),
        );
        registry.register(
            "umbra_store_queue_depth",
            "Comparisons waiting for the store writer",
            store_queue_depth.clone(),
        );
        registry.register(
            "umbra_store_dropped",
            "Comparisons dropped before reaching the store",
            store_dropped.clone(),
        );
        registry.register(
            "umbra_config_reloads",
            "Config reloads by outcome (route label unused)",
            config_reloads.clone(),
        );
        static NEXT_ID: AtomicU64 = AtomicU64::new(0);
        Metrics {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            registry,
            requests,
            request_duration,
            shadow_requests,
            shadow_dropped,
            comparisons,
            upstream_healthy,
            store_queue_depth,
            store_dropped,
            config_reloads,
            connections_open,
            connections_shed,
            rate_limited,
            access_log_dropped,
        }
    }

    /// Prometheus text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
    }

    /// Records one proxied request (`umbra_requests_total`, `umbra_request_duration_seconds`).
    pub fn request(&self, route: &str, service: &str, status: u16, elapsed: Duration) {
        with_handles(self.id, |h| {
            let make = || {
                let hist = self.request_duration.get_or_create(&RouteServiceLabels {
                    route: route.to_string(),
                    service: service.to_string(),
                });
                (hist.clone(), foldhash::HashMap::default())
            };
            cached(&mut h.requests, route, service, make, |(hist, codes)| {
                hist.observe(elapsed.as_secs_f64());
                codes
                    .entry(status)
                    .or_insert_with(|| {
                        self.requests
                            .get_or_create(&RequestLabels {
                                route: route.to_string(),
                                service: service.to_string(),
                                code: status,
                            })
                            .clone()
                    })
                    .inc();
            });
        });
    }

    /// Counts a mirror candidate not sent (`umbra_shadow_dropped_total`).
    pub fn shadow_dropped(&self, route: &str, reason: &str) {
        self.inc(Counted::ShadowDropped, route, reason, || {
            self.shadow_dropped
                .get_or_create(&ReasonLabels {
                    route: route.to_string(),
                    reason: reason.to_string(),
                })
                .clone()
        });
    }

    /// Counts a shadow request by outcome (`umbra_shadow_requests_total`).
    pub fn shadow_request(&self, route: &str, outcome: &str) {
        self.inc(Counted::ShadowRequests, route, outcome, || {
            self.shadow_requests
                .get_or_create(&OutcomeLabels {
                    route: route.to_string(),
                    outcome: outcome.to_string(),
                })
                .clone()
        });
    }

    /// Counts a comparison by verdict (`umbra_comparisons_total`).
    pub fn comparison(&self, route: &str, verdict: &str) {
        self.inc(Counted::Comparisons, route, verdict, || {
            self.comparisons
                .get_or_create(&VerdictLabels {
                    route: route.to_string(),
                    verdict: verdict.to_string(),
                })
                .clone()
        });
    }

    /// Counts a request refused by a route's rate limit (`umbra_rate_limited_total`).
    pub fn rate_limited(&self, route: &str) {
        self.inc(Counted::RateLimited, route, "", || {
            self.rate_limited
                .get_or_create(&RouteOnly {
                    route: route.to_string(),
                })
                .clone()
        });
    }

    fn inc(&self, family: Counted, route: &str, label: &str, make: impl FnOnce() -> Counter) {
        with_handles(self.id, |h| {
            cached(&mut h.counters[family as usize], route, label, make, |c| {
                c.inc();
            });
        });
    }
}

/// The labelled counter families the data plane increments per request.
#[derive(Clone, Copy)]
enum Counted {
    ShadowDropped = 0,
    ShadowRequests = 1,
    Comparisons = 2,
    RateLimited = 3,
}

/// route → second label (service, reason, outcome or verdict) → what is kept for the pair.
type ByRoute<T> = foldhash::HashMap<String, foldhash::HashMap<String, T>>;

/// One `Metrics` instance's handles, as one thread has needed them so far.
#[derive(Default)]
struct Handles {
    /// Per [`Counted`] family.
    counters: [ByRoute<Counter>; 4],
    /// The duration histogram and the counters by status code, per route and service.
    requests: ByRoute<(Histogram, foldhash::HashMap<u16, Counter>)>,
}

thread_local! {
    // Metric handles per thread, by `Metrics` instance (tests run several in one thread):
    // counting costs lookups by `&str` with a fast hash, not a label set's allocations and the
    // family's lock (shared by all workers).
    static HANDLES: std::cell::RefCell<foldhash::HashMap<u64, Handles>> = Default::default();
}

fn with_handles(metrics: u64, f: impl FnOnce(&mut Handles)) {
    HANDLES.with(|cell| f(cell.borrow_mut().entry(metrics).or_default()));
}

/// Runs `f` on the entry for (`route`, `label`), made by `make` the first time (the only time
/// the two names are copied; after that, two lookups by `&str`).
fn cached<T>(
    map: &mut ByRoute<T>,
    route: &str,
    label: &str,
    make: impl FnOnce() -> T,
    f: impl FnOnce(&mut T),
) {
    if let Some(v) = map.get_mut(route).and_then(|m| m.get_mut(label)) {
        return f(v);
    }
    let mut v = make();
    f(&mut v);
    map.entry(route.to_string())
        .or_default()
        .insert(label.to_string(), v);
}

/// Log-scale latency histogram with atomic buckets, for live p50/p99 without locks.
/// Buckets grow by ~19 % (4 per doubling) from 10 µs to ~170 s.
#[derive(Debug)]
pub struct LatencyHistogram {
    buckets: [AtomicU64; Self::BUCKETS],
    count: AtomicU64,
}

impl Default for LatencyHistogram {
    fn default() -> Self {
        LatencyHistogram {
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
            count: AtomicU64::new(0),
        }
    }
}

impl LatencyHistogram {
    const BUCKETS: usize = 96;

    fn index(us: u64) -> usize {
        let x = (us.max(10) as f64 / 10.0).log2() * 4.0;
        (x as usize).min(Self::BUCKETS - 1)
    }

    fn upper_us(i: usize) -> u64 {
        (10.0 * 2f64.powf((i + 1) as f64 / 4.0)) as u64
    }

    pub fn record_us(&self, us: u64) {
        self.buckets[Self::index(us)].fetch_add(1, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// Copies the counts (to diff two copies over a window).
    pub fn snapshot(&self) -> Vec<u64> {
        self.buckets
            .iter()
            .map(|b| b.load(Ordering::Relaxed))
            .collect()
    }

    /// The q-quantile (0..1) in µs of a bucket-count vector, None when empty.
    pub fn quantile_of(counts: &[u64], q: f64) -> Option<u64> {
        let total: u64 = counts.iter().sum();
        if total == 0 {
            return None;
        }
        let rank = ((total as f64) * q).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (i, c) in counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return Some(Self::upper_us(i));
            }
        }
        Some(Self::upper_us(counts.len() - 1))
    }
}

/// Live counters of one route, kept across reloads (by route name).
#[derive(Debug, Default)]
pub struct RouteStats {
    pub requests: AtomicU64,
    pub errors: AtomicU64,
    pub primary_latency: LatencyHistogram,
    pub shadow_latency: LatencyHistogram,
    pub shadow_sent: AtomicU64,
    pub shadow_dropped: AtomicU64,
    pub comparisons: AtomicU64,
    pub different: AtomicU64,
    pub canary_requests: AtomicU64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(text: &str, series: &str) -> u64 {
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
            .unwrap_or_else(|| panic!("no `{series}` in\n{text}"))
    }

    #[test]
    fn cached_counters_count_every_call_on_their_own_instance() {
        let (a, b) = (Metrics::new(), Metrics::new());
        for _ in 0..3 {
            a.shadow_dropped("api", "overflow");
            a.shadow_request("api", "ok");
            a.comparison("api", "same");
            a.rate_limited("api");
            a.request("api", "v1", 200, Duration::from_millis(2));
        }
        b.shadow_dropped("api", "overflow");
        b.request("api", "v1", 200, Duration::from_millis(2));
        b.request("api", "v1", 503, Duration::from_millis(2));
        let (ta, tb) = (a.encode(), b.encode());
        assert_eq!(
            value(
                &ta,
                r#"umbra_shadow_dropped_total{route="api",reason="overflow"}"#
            ),
            3
        );
        assert_eq!(
            value(
                &ta,
                r#"umbra_shadow_requests_total{route="api",outcome="ok"}"#
            ),
            3
        );
        assert_eq!(
            value(
                &ta,
                r#"umbra_comparisons_total{route="api",verdict="same"}"#
            ),
            3
        );
        assert_eq!(
            value(
                &tb,
                r#"umbra_shadow_dropped_total{route="api",reason="overflow"}"#
            ),
            1
        );
        let requests = r#"umbra_requests_total{route="api",service="v1",code="200"}"#;
        let durations = r#"umbra_request_duration_seconds_count{route="api",service="v1"}"#;
        assert_eq!(value(&ta, r#"umbra_rate_limited_total{route="api"}"#), 3);
        assert_eq!(value(&ta, requests), 3);
        assert_eq!(value(&ta, durations), 3);
        assert_eq!(value(&tb, requests), 1);
        assert_eq!(
            value(
                &tb,
                r#"umbra_requests_total{route="api",service="v1",code="503"}"#
            ),
            1
        );
        assert_eq!(value(&tb, durations), 2);
    }
}
