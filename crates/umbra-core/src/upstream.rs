//! Upstream services and their servers: health state, in-flight counts, passive ejection, and
//! the balancing policies (round robin, least requests). Data plane; the state objects outlive
//! reloads so health and counters are not reset when the config changes.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::config::{Balance, ServerAddr, ServiceSpec};

/// Consecutive connection failures before a server is ejected passively.
const PASSIVE_FAILURES: u32 = 3;
/// How long a passively ejected server sits out before it is tried again.
const PASSIVE_EJECT_FOR: Duration = Duration::from_secs(10);

/// Live state of one upstream server, shared by every snapshot that contains it.
#[derive(Debug)]
pub struct ServerState {
    pub addr: ServerAddr,
    /// Set by active health checks (true until a check says otherwise).
    healthy: AtomicBool,
    in_flight: AtomicUsize,
    consecutive_failures: AtomicU32,
    /// Milliseconds since `epoch` until which the server is passively ejected.
    ejected_until_ms: AtomicU64,
    epoch: Instant,
    pub requests: AtomicU64,
    pub failures: AtomicU64,
}

impl ServerState {
    pub fn new(addr: ServerAddr) -> Self {
        ServerState {
            addr,
            healthy: AtomicBool::new(true),
            in_flight: AtomicUsize::new(0),
            consecutive_failures: AtomicU32::new(0),
            ejected_until_ms: AtomicU64::new(0),
            epoch: Instant::now(),
            requests: AtomicU64::new(0),
            failures: AtomicU64::new(0),
        }
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// Whether the server may receive traffic now.
    pub fn is_available(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
            && self.ejected_until_ms.load(Ordering::Relaxed) <= self.now_ms()
    }

    pub fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
    }

    pub fn set_healthy(&self, up: bool) {
        self.healthy.store(up, Ordering::Relaxed);
    }

    pub fn is_ejected(&self) -> bool {
        self.ejected_until_ms.load(Ordering::Relaxed) > self.now_ms()
    }

    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// Marks the start of a request; the guard ends it.
    pub fn begin(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        self.requests.fetch_add(1, Ordering::Relaxed);
        InFlight(self.clone())
    }

    /// A connection to the server failed: after a few in a row, eject it for a while.
    pub fn record_connect_failure(&self) {
        self.failures.fetch_add(1, Ordering::Relaxed);
        let n = self.consecutive_failures.fetch_add(1, Ordering::Relaxed) + 1;
        if n >= PASSIVE_FAILURES {
            let until = self.now_ms() + PASSIVE_EJECT_FOR.as_millis() as u64;
            self.ejected_until_ms.store(until, Ordering::Relaxed);
            self.consecutive_failures.store(0, Ordering::Relaxed);
            tracing::warn!(server = %self.addr.url(), "server ejected after {n} connection failures");
        }
    }

    pub fn record_success(&self) {
        if self.consecutive_failures.load(Ordering::Relaxed) != 0 {
            self.consecutive_failures.store(0, Ordering::Relaxed);
        }
    }

    /// Lifts a passive ejection (e.g. an active check just succeeded).
    pub fn clear_ejection(&self) {
        self.ejected_until_ms.store(0, Ordering::Relaxed);
    }
}

/// Decrements the server's in-flight count when dropped.
#[derive(Debug)]
pub struct InFlight(Arc<ServerState>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A service as the data plane sees it in one snapshot.
#[derive(Debug)]
pub struct Service {
    pub spec: ServiceSpec,
    pub servers: Vec<Arc<ServerState>>,
    next: AtomicUsize,
}

impl Service {
    pub fn new(spec: ServiceSpec, servers: Vec<Arc<ServerState>>) -> Self {
        Service {
            spec,
            servers,
            next: AtomicUsize::new(rand::random::<u16>() as usize),
        }
    }

    pub fn name(&self) -> &str {
        &self.spec.name
    }

    /// Picks an available server, skipping `exclude` (a server that just failed), or None.
    pub fn pick(&self, exclude: Option<&Arc<ServerState>>) -> Option<Arc<ServerState>> {
        let n = self.servers.len();
        if n == 0 {
            return None;
        }
        let ok =
            |s: &Arc<ServerState>| s.is_available() && exclude.is_none_or(|e| !Arc::ptr_eq(e, s));
        match self.spec.balance {
            Balance::RoundRobin => {
                let start = self.next.fetch_add(1, Ordering::Relaxed);
                (0..n)
                    .map(|i| &self.servers[(start + i) % n])
                    .find(|s| ok(s))
                    .cloned()
            }
            Balance::LeastRequests => {
                // Power of two choices among available servers: near-optimal, no global scan
                // contention, and no herd onto one idle server.
                let avail: Vec<&Arc<ServerState>> = self.servers.iter().filter(|s| ok(s)).collect();
                match avail.len() {
                    0 => None,
                    1 => Some(avail[0].clone()),
                    len => {
                        let a = rand::random::<usize>() % len;
                        let mut b = rand::random::<usize>() % (len - 1);
                        if b >= a {
                            b += 1;
                        }
                        let (x, y) = (avail[a], avail[b]);
                        Some(if x.in_flight() <= y.in_flight() { x } else { y }.clone())
                    }
                }
            }
        }
    }

    pub fn available_count(&self) -> usize {
        self.servers.iter().filter(|s| s.is_available()).count()
    }
}

/// Server state objects by (service, address), kept across snapshots.
#[derive(Debug, Default)]
pub struct ServerRegistry {
    states: Mutex<HashMap<(String, ServerAddr), Arc<ServerState>>>,
}

impl ServerRegistry {
    /// The state for a server of a service, made on first use.
    pub fn get(&self, service: &str, addr: &ServerAddr) -> Arc<ServerState> {
        let mut states = self.states.lock().expect("registry lock");
        states
            .entry((service.to_string(), addr.clone()))
            .or_insert_with(|| Arc::new(ServerState::new(addr.clone())))
            .clone()
    }

    /// Forgets servers no longer referenced by any snapshot.
    pub fn retain(&self, keep: impl Fn(&str, &ServerAddr) -> bool) {
        let mut states = self.states.lock().expect("registry lock");
        states.retain(|(svc, addr), _| keep(svc, addr));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Source;

    fn svc(balance: Balance, n: usize) -> Service {
        let servers: Vec<_> = (0..n)
            .map(|i| {
                Arc::new(ServerState::new(ServerAddr {
                    scheme: "http".into(),
                    authority: format!("127.0.0.1:{}", 9000 + i),
                }))
            })
            .collect();
        let spec = ServiceSpec {
            name: "s".into(),
            servers: servers.iter().map(|s| s.addr.clone()).collect(),
            health: None,
            balance,
            source: Source::File,
            ca: None,
        };
        Service::new(spec, servers)
    }

    #[test]
    fn round_robin_spreads_and_skips_unhealthy() {
        let s = svc(Balance::RoundRobin, 3);
        let mut counts = HashMap::new();
        for _ in 0..300 {
            *counts
                .entry(s.pick(None).unwrap().addr.clone())
                .or_insert(0) += 1;
        }
        assert!(counts.values().all(|&c| c == 100), "{counts:?}");
        s.servers[1].set_healthy(false);
        for _ in 0..50 {
            assert!(!Arc::ptr_eq(&s.pick(None).unwrap(), &s.servers[1]));
        }
        s.servers[0].set_healthy(false);
        s.servers[2].set_healthy(false);
        assert!(s.pick(None).is_none());
    }

    #[test]
    fn least_requests_prefers_idle() {
        let s = svc(Balance::LeastRequests, 2);
        let _busy: Vec<_> = (0..10).map(|_| s.servers[0].begin()).collect();
        for _ in 0..50 {
            assert!(Arc::ptr_eq(&s.pick(None).unwrap(), &s.servers[1]));
        }
    }

    #[test]
    fn passive_ejection_after_failures() {
        let s = svc(Balance::RoundRobin, 2);
        for _ in 0..PASSIVE_FAILURES {
            s.servers[0].record_connect_failure();
        }
        assert!(s.servers[0].is_ejected());
        for _ in 0..10 {
            assert!(Arc::ptr_eq(&s.pick(None).unwrap(), &s.servers[1]));
        }
        let other = s.servers[1].clone();
        assert!(
            s.pick(Some(&other)).is_none(),
            "the ejected server is not a fallback"
        );
        s.servers[0].clear_ejection();
        assert!(Arc::ptr_eq(&s.pick(Some(&other)).unwrap(), &s.servers[0]));
    }
}
