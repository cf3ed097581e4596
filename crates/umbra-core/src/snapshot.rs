//! One immutable view of routes and services, swapped atomically on every change and loaded
//! once per request. The data plane only ever sees a whole snapshot.

use std::sync::Arc;

use tokio::sync::Semaphore;

use crate::config::{Config, RouteSpec, Source};
use crate::ratelimit::RateLimiter;
use crate::rules::RequestView;
use crate::telemetry::RouteStats;
use crate::upstream::Service;

/// A route in force, with the live state that outlives reloads.
#[derive(Debug)]
pub struct Route {
    pub spec: RouteSpec,
    pub stats: Arc<RouteStats>,
    /// Bounds each shadow candidate's requests in flight (in the order of `spec.shadows`).
    pub shadow_slots: Vec<Arc<Semaphore>>,
    /// Pause / maintenance; [`Hold::is_open`] is the request path's one check.
    pub hold: Arc<crate::runtime::Hold>,
    /// The evidence recorder of the route's rollout, when one runs (None costs nothing).
    pub recorder: Option<Arc<crate::rollout::Recorder>>,
    /// The route's token buckets, when it has a `rate_limit`.
    pub limiter: Option<Arc<RateLimiter>>,
    /// True when a runtime change (API/UI/CLI) overrides a file- or docker-defined route.
    pub overridden: bool,
    /// The service traffic returns to on rollback after a promote.
    pub previous_service: Option<String>,
}

impl Route {
    pub fn name(&self) -> &str {
        &self.spec.name
    }

    pub fn source(&self) -> Source {
        self.spec.source
    }
}

#[derive(Debug)]
pub struct Snapshot {
    pub generation: u64,
    pub config: Arc<Config>,
    /// Sorted by priority, highest first; ties by name for a stable order.
    pub routes: Vec<Arc<Route>>,
    /// By name; foldhash, as every request looks its service up here.
    pub services: foldhash::HashMap<String, Arc<Service>>,
}

impl Snapshot {
    /// The highest-priority route whose rule matches.
    pub fn route_for(&self, req: &RequestView<'_>) -> Option<&Arc<Route>> {
        self.routes.iter().find(|r| r.spec.rule.matches(req))
    }

    pub fn route(&self, name: &str) -> Option<&Arc<Route>> {
        self.routes.iter().find(|r| r.spec.name == name)
    }

    pub fn service(&self, name: &str) -> Option<&Arc<Service>> {
        self.services.get(name)
    }
}
