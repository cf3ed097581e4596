//! Deploys (control plane), as kamal-proxy's `deploy`: health-check a new target until it
//! answers 2xx (or `wait` runs out, and nothing changes), then make it the only server of the
//! route's service in one snapshot swap, and wait (up to `drain`) for the requests still in
//! flight on the old servers to finish. Requests already sent keep their server; new ones go
//! to the target from the swap on, so none fails across the switch.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Empty;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde::Serialize;

use crate::config::{parse_server, ConfigError};
use crate::resolve::Connector;
use crate::runtime::{ControlError, Persist, Runtime};
use crate::upstream::ServerState;

/// Between two health checks of the target.
const PROBE_EVERY: Duration = Duration::from_millis(200);
/// How often the drain looks at the old servers' requests in flight.
const DRAIN_POLL: Duration = Duration::from_millis(20);

/// What to deploy and how long to give it.
#[derive(Debug, Clone)]
pub struct DeployRequest {
    /// `http://host:port` of the new server.
    pub target: String,
    /// How long the target may take to become healthy.
    pub wait: Duration,
    /// How long requests in flight on the old servers may take to finish.
    pub drain: Duration,
    /// Checked when the route's service has no health check of its own.
    pub health_path: String,
}

/// What a deploy did.
#[derive(Debug, Clone, Serialize)]
pub struct DeployOutcome {
    pub route: String,
    pub service: String,
    pub target: String,
    /// The servers the target replaced.
    pub previous: Vec<String>,
    pub health_path: String,
    pub healthy_after_ms: u64,
    /// True when every request in flight on the old servers finished within `drain`.
    pub drained: bool,
    /// Requests still in flight on the old servers when the drain ended.
    pub in_flight_left: usize,
    #[serde(skip)]
    pub persist: Persist,
}

/// Why a deploy changed nothing.
#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    #[error(transparent)]
    Control(#[from] ControlError),
    #[error("target `{target}` did not answer 2xx on `{path}` within {waited_ms} ms (last check: {last}); nothing changed")]
    Unhealthy {
        target: String,
        path: String,
        waited_ms: u64,
        last: String,
    },
}

fn invalid(key: &str, message: String) -> DeployError {
    DeployError::Control(ControlError::Invalid(vec![ConfigError::new(key, message)]))
}

/// Runs a deploy of `route` to `req.target`; `actor` tags the audit event.
pub async fn deploy(
    rt: &Arc<Runtime>,
    route: &str,
    req: DeployRequest,
    actor: &str,
) -> Result<DeployOutcome, DeployError> {
    let target = parse_server(&req.target).map_err(|e| invalid("target", e))?;
    if !req.health_path.starts_with('/') {
        let msg = format!("`{}` must start with `/`", req.health_path);
        return Err(invalid("health_path", msg));
    }
    let (service, health_path) = {
        let snap = rt.snapshot();
        let r = snap
            .route(route)
            .ok_or_else(|| ControlError::NotFound(route.to_string()))?;
        let service = r.spec.service.clone();
        let path = snap
            .service(&service)
            .and_then(|s| s.spec.health.as_ref())
            .map_or(req.health_path.clone(), |h| h.path.clone());
        (service, path)
    };
    let started = Instant::now();
    wait_healthy(&target.url(), &health_path, req.wait).await?;
    let healthy_after_ms = started.elapsed().as_millis() as u64;

    let old: Vec<Arc<ServerState>> = rt
        .snapshot()
        .service(&service)
        .map(|s| s.servers.clone())
        .unwrap_or_default();
    let previous: Vec<String> = old.iter().map(|s| s.addr.url()).collect();
    let detail = serde_json::json!({
        "service": service, "target": target.url(), "previous": previous,
        "health_path": health_path, "healthy_after_ms": healthy_after_ms,
    });
    let persist = rt.replace_servers(&service, vec![target.url()], (route, actor, detail))?;
    tracing::info!(%route, %service, to = %target.url(), "deployed; draining the old servers");
    // A server kept by the deploy (the target was already one) is no longer "old".
    let old: Vec<_> = old.into_iter().filter(|s| s.addr != target).collect();
    let in_flight_left = drain(&old, req.drain).await;
    Ok(DeployOutcome {
        route: route.to_string(),
        service,
        target: target.url(),
        previous,
        health_path,
        healthy_after_ms,
        drained: in_flight_left == 0,
        in_flight_left,
        persist,
    })
}

/// Checks `base` + `path` until it answers 2xx, or fails after `wait` naming the last problem.
async fn wait_healthy(base: &str, path: &str, wait: Duration) -> Result<(), DeployError> {
    let client: Client<Connector, Empty<Bytes>> =
        Client::builder(TokioExecutor::new()).build(crate::resolve::connector(PROBE_EVERY * 10));
    let uri: http::Uri = format!("{base}{path}")
        .parse()
        .map_err(|e| invalid("health_path", format!("`{path}`: {e}")))?;
    let deadline = Instant::now() + wait;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let timeout = left.clamp(Duration::from_millis(1), Duration::from_secs(2));
        let last = match tokio::time::timeout(timeout, client.get(uri.clone())).await {
            Ok(Ok(resp)) if resp.status().is_success() => return Ok(()),
            Ok(Ok(resp)) => format!("answered {}", resp.status()),
            Ok(Err(e)) => format!("{e} ({})", root_cause(&e)),
            Err(_) => format!("no answer within {} ms", timeout.as_millis()),
        };
        if Instant::now() + PROBE_EVERY >= deadline {
            return Err(DeployError::Unhealthy {
                target: base.to_string(),
                path: path.to_string(),
                waited_ms: wait.as_millis() as u64,
                last,
            });
        }
        tokio::time::sleep(PROBE_EVERY).await;
    }
}

fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}

/// Waits until no request is in flight on `old`, or `limit`; returns how many still are.
async fn drain(old: &[Arc<ServerState>], limit: Duration) -> usize {
    let deadline = Instant::now() + limit;
    loop {
        let left: usize = old.iter().map(|s| s.in_flight()).sum();
        if left == 0 || Instant::now() >= deadline {
            return left;
        }
        tokio::time::sleep(DRAIN_POLL).await;
    }
}
