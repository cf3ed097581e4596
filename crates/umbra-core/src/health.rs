//! Active health checks (control plane): every service with a `health` block has each server
//! probed on its interval; `rise` successes mark it up, `fall` failures mark it down.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use crate::resolve::Connector;
use bytes::Bytes;
use http_body_util::Empty;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tokio_util::sync::CancellationToken;

use crate::runtime::Runtime;
use crate::telemetry::ServerLabels;
use crate::upstream::ServerState;

#[derive(Default)]
struct Streak {
    ok: u32,
    fail: u32,
    last: Option<std::time::Instant>,
}

/// Runs until `shutdown`. Looks at the snapshot in force every tick, so new services and
/// servers are checked as soon as they appear.
pub async fn run(rt: Arc<Runtime>, shutdown: CancellationToken) {
    let http = crate::resolve::connector(Duration::from_secs(2));
    let client: Client<Connector, Empty<Bytes>> = Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(2)
        .build(http);
    let mut streaks: HashMap<(String, String), Streak> = HashMap::new();
    let tick = Duration::from_millis(100);
    loop {
        let snap = rt.snapshot();
        let mut probes = Vec::new();
        for svc in snap.services.values() {
            for server in &svc.servers {
                rt.metrics
                    .upstream_healthy
                    .get_or_create(&ServerLabels {
                        service: svc.spec.name.clone(),
                        server: server.addr.authority.clone(),
                    })
                    .set(server.is_available() as i64);
            }
            let Some(h) = &svc.spec.health else { continue };
            for server in &svc.servers {
                let key = (svc.spec.name.clone(), server.addr.authority.clone());
                let streak = streaks.entry(key.clone()).or_default();
                if streak.last.is_some_and(|l| l.elapsed() < h.interval) {
                    continue;
                }
                streak.last = Some(std::time::Instant::now());
                probes.push((key, server.clone(), h.clone()));
            }
        }
        let results = futures_util::future::join_all(probes.into_iter().map(|(key, server, h)| {
            let client = client.clone();
            async move {
                let ok = probe(&client, &server, &h.path, h.timeout).await;
                (key, server, h, ok)
            }
        }))
        .await;
        for (key, server, h, ok) in results {
            let streak = streaks.entry(key).or_default();
            if ok {
                streak.ok += 1;
                streak.fail = 0;
                if !server.is_healthy() && streak.ok >= h.rise {
                    tracing::info!(server = %server.addr.url(), "server is healthy again");
                    server.set_healthy(true);
                    server.clear_ejection();
                }
            } else {
                streak.fail += 1;
                streak.ok = 0;
                if server.is_healthy() && streak.fail >= h.fall {
                    tracing::warn!(server = %server.addr.url(), "server failed {} health checks; out of rotation", streak.fail);
                    server.set_healthy(false);
                }
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(tick) => {}
        }
    }
}

async fn probe(
    client: &Client<Connector, Empty<Bytes>>,
    server: &Arc<ServerState>,
    path: &str,
    timeout: Duration,
) -> bool {
    let uri = format!("{}://{}{}", server.addr.scheme, server.addr.authority, path);
    let Ok(uri) = uri.parse::<http::Uri>() else {
        return false;
    };
    match tokio::time::timeout(timeout, client.get(uri)).await {
        Ok(Ok(resp)) => resp.status().is_success() || resp.status().is_redirection(),
        _ => false,
    }
}
