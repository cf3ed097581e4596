//! Active health checks (control plane): every service with a `health` block has each server
//! (`http://`, `https://` with its service's CA, or `h2c://`) probed on its interval; `rise`
//! successes mark it up, `fall` failures mark it down.

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
use crate::upstream_client::{describe, UpstreamCa, UpstreamClient};

#[derive(Default)]
struct Streak {
    ok: u32,
    fail: u32,
    last: Option<std::time::Instant>,
}

/// Runs until `shutdown`. Looks at the snapshot in force every tick, so new services and
/// servers are checked as soon as they appear.
pub async fn run(rt: Arc<Runtime>, shutdown: CancellationToken) {
    let mut clients = Probers::new();
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
                let client = clients.get(&server.addr.scheme, svc.spec.ca.as_ref());
                probes.push((key, server.clone(), h.clone(), client));
            }
        }
        let results = futures_util::future::join_all(probes.into_iter().map(
            |(key, server, h, client)| async move {
                let ok = probe(&client, &server, &h.path, h.timeout).await;
                (key, server, h, ok)
            },
        ))
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

/// A probe's client: plain HTTP/1.1, or the client for `https://` / `h2c://` servers.
#[derive(Clone)]
enum Prober {
    Http(Arc<Client<Connector, Empty<Bytes>>>),
    Other(OtherClient),
}

type OtherClient = Arc<UpstreamClient<Empty<Bytes>>>;

/// The probe clients, one per scheme and CA, kept across ticks so connections are reused.
struct Probers {
    http: Arc<Client<Connector, Empty<Bytes>>>,
    other: HashMap<(String, Option<UpstreamCa>), OtherClient>,
}

impl Probers {
    fn new() -> Probers {
        let http = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(2)
            .build(crate::resolve::connector(PROBE_CONNECT_TIMEOUT));
        Probers {
            http: Arc::new(http),
            other: HashMap::new(),
        }
    }

    fn get(&mut self, scheme: &str, ca: Option<&UpstreamCa>) -> Prober {
        let key = (scheme.to_string(), ca.cloned());
        if let Some(c) = self.other.get(&key) {
            return Prober::Other(c.clone());
        }
        match UpstreamClient::new(scheme, ca, PROBE_CONNECT_TIMEOUT) {
            Some(c) => {
                let c = Arc::new(c);
                self.other.insert(key, c.clone());
                Prober::Other(c)
            }
            None => Prober::Http(self.http.clone()),
        }
    }
}

const PROBE_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

async fn probe(client: &Prober, server: &Arc<ServerState>, path: &str, timeout: Duration) -> bool {
    let scheme = match client {
        Prober::Http(_) => "http",
        Prober::Other(c) => c.uri_scheme(),
    };
    let uri = format!("{scheme}://{}{}", server.addr.authority, path);
    let Ok(uri) = uri.parse::<http::Uri>() else {
        return false;
    };
    let sent = async {
        match client {
            Prober::Http(c) => c.get(uri).await,
            Prober::Other(c) => {
                let mut req = http::Request::new(Empty::new());
                *req.uri_mut() = uri;
                c.request(req).await
            }
        }
    };
    match tokio::time::timeout(timeout, sent).await {
        Ok(Ok(resp)) => resp.status().is_success() || resp.status().is_redirection(),
        Ok(Err(e)) => {
            tracing::debug!(server = %server.addr.url(), error = %describe(&e), "health check failed");
            false
        }
        Err(_) => false,
    }
}
