//! The access-log record of one request: made when the request arrives, filled in by the
//! handler's stages as they learn the route, service, upstream and shadow decision, and
//! finished once with the reply: one JSON line, the request metrics and the route's counters.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use http::{HeaderValue, Method};
use umbra_core::snapshot::Route;
use umbra_core::upstream::{ServerState, Service};
use umbra_core::Runtime;

use super::Reply;

/// What one access-log line and the request metrics say about a request.
pub(super) struct Record<'a> {
    start: Instant,
    method: &'a Method,
    path: &'a str,
    host: &'a str,
    request_id: &'a HeaderValue,
    /// Borrowed from the snapshot the request is handled under.
    pub route: Option<&'a Arc<Route>>,
    pub service: Option<&'a Arc<Service>>,
    pub upstream: Option<Arc<ServerState>>,
    /// Whether the request was mirrored, or why not.
    pub shadow: &'static str,
    /// True when the canary split sent the request to the candidate.
    pub canary: bool,
}

impl<'a> Record<'a> {
    pub fn new(
        start: Instant,
        method: &'a Method,
        path: &'a str,
        host: &'a str,
        request_id: &'a HeaderValue,
    ) -> Record<'a> {
        Record {
            start,
            method,
            path,
            host,
            request_id,
            route: None,
            service: None,
            upstream: None,
            shadow: "",
            canary: false,
        }
    }

    pub fn start(&self) -> Instant {
        self.start
    }

    /// The service's name for logs and metrics: the one chosen, else the route's own.
    fn service_name(&self) -> &str {
        match (&self.service, &self.route) {
            (Some(s), _) => s.name(),
            (None, Some(r)) => &r.spec.service,
            (None, None) => "",
        }
    }

    /// Counts the request and writes its log line.
    pub fn finish(self, rt: &Runtime, reply: &Reply) {
        let status = reply.status().as_u16();
        let elapsed = self.start.elapsed();
        let route_name = self.route.as_ref().map_or("", |r| r.spec.name.as_str());
        if let Some(route) = &self.route {
            rt.metrics
                .request(route_name, self.service_name(), status, elapsed);
            let stats = &route.stats;
            stats.primary_latency.record_us(elapsed.as_micros() as u64);
            if status >= 500 {
                stats.errors.fetch_add(1, Ordering::Relaxed);
            }
            // A rollout's evidence: only routes with a rollout have a recorder.
            if let Some(rec) = &route.recorder {
                rec.record_live(self.canary, status, elapsed);
            }
        }
        if rt.access_log.enabled {
            let bytes = http_body::Body::size_hint(reply.body()).exact();
            let line = serde_json::json!({
                "time": time::OffsetDateTime::now_utc().format(&time::format_description::well_known::Rfc3339).unwrap_or_default(),
                "request_id": self.request_id.to_str().unwrap_or(""),
                "method": self.method.as_str(),
                "host": self.host,
                "path": self.path,
                "status": status,
                "route": route_name,
                "service": self.service_name(),
                "upstream": self.upstream.as_ref().map_or("", |u| u.addr.authority.as_str()),
                "duration_ms": (elapsed.as_secs_f64() * 1000.0 * 1000.0).round() / 1000.0,
                "bytes": bytes,
                "shadow": self.shadow,
            });
            let mut text = line.to_string();
            text.push('\n');
            rt.access_log.write_line(text);
        }
    }
}
