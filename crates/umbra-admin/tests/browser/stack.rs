//! A live umbra for the browser tests, wired like `umbra run` but in-process: the proxy on an
//! ephemeral port in front of fixture upstreams (v1 with two replicas, v2 the candidate whose
//! `price` differs), active health checks, the store writer and audit log on a SQLite store,
//! the admin router, and a bounded traffic generator through the proxy.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tokio_util::sync::CancellationToken;
use umbra_admin::AdminState;
use umbra_core::telemetry::Metrics;
use umbra_core::{Config, Runtime};
use umbra_proxy::{ComparisonSink, Proxy};
use umbra_store::{ComparisonStore, StoreWriter, WriterConfig};
use umbra_testkit::{Fixture, FixtureBuilder, Recorded, Reply};

/// Requests the traffic generator sends at most (one every 25 ms while it runs).
const MAX_REQUESTS: u64 = 20_000;

pub struct Stack {
    /// `http://127.0.0.1:<port>` of the admin listener.
    pub admin: String,
    /// The proxy's base URL.
    pub proxy: String,
    pub runtime: Arc<Runtime>,
    pub store: Arc<dyn ComparisonStore>,
    /// v1's two replicas and the v2 candidate.
    pub v1: [Fixture; 2],
    pub v2: Fixture,
    /// Requests the generator has sent through the proxy.
    pub sent: Arc<AtomicU64>,
    pub rollouts: Arc<umbra_core::rollout::Rollouts>,
    shutdown: CancellationToken,
    _dir: tempfile::TempDir,
}

impl Drop for Stack {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

fn item(r: &Recorded, price: u32) -> Reply {
    let id: u64 = r
        .path()
        .rsplit('/')
        .next()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    Reply::json(
        200,
        json!({"item": {"id": id, "name": format!("widget {id}"), "price": price, "tags": ["a", "b"]}, "ok": true}),
    )
}

fn upstream(price: u32) -> FixtureBuilder {
    Fixture::builder()
        .health("/health")
        .json("/api/status", json!({"status": "ok"}))
        .prefix("/api/items/", move |r: &Recorded| item(r, price))
}

fn config(v1: &[Fixture; 2], v2: &Fixture, token: Option<&str>) -> Config {
    let admin = token.map_or(String::new(), |t| format!("[admin]\ntoken = \"{t}\"\n"));
    let text = format!(
        r#"{admin}
[proxy]
listen = "127.0.0.1:0"
timeout = "5s"
grace = "1s"

[log]
access = false

[services.v1]
servers = ["{a}", "{b}"]
health = {{ path = "/health", interval = "200ms", timeout = "1s", rise = 1, fall = 1 }}

[services.v2]
servers = ["{c}"]
health = {{ path = "/health", interval = "200ms", timeout = "1s", rise = 1, fall = 1 }}

[[routes]]
name = "api"
rule = "PathPrefix(`/api`)"
service = "v1"
shadow = {{ service = "v2", percent = 100 }}
"#,
        a = v1[0].url(),
        b = v1[1].url(),
        c = v2.url(),
    );
    Config::parse(&text, "umbra.toml", &|_| None).unwrap_or_else(|e| panic!("{e}"))
}

/// Sends GETs through the proxy every 25 ms until shutdown (or [`MAX_REQUESTS`]).
fn spawn_traffic(proxy: String, sent: Arc<AtomicU64>, shutdown: CancellationToken) {
    tokio::spawn(async move {
        for i in 0..MAX_REQUESTS {
            let path = if i % 4 == 3 {
                "/api/status".to_string()
            } else {
                format!("/api/items/{}", i % 7)
            };
            let _ = umbra_testkit::try_get(format!("{proxy}{path}")).await;
            sent.fetch_add(1, Ordering::Relaxed);
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(Duration::from_millis(25)) => {}
            }
        }
    });
}

/// Starts everything; `token` protects the admin listener when set.
pub async fn start(token: Option<&str>) -> Stack {
    let v1 = [upstream(10).start().await, upstream(10).start().await];
    let v2 = upstream(12).start().await;
    let config = config(&v1, &v2, token);

    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("umbra.db").display());
    let store = umbra_store::open(&url).await.expect("sqlite store opens");
    let shutdown = CancellationToken::new();
    let (sink, comparisons) = ComparisonSink::new(10_000);
    let (events_tx, events) = tokio::sync::mpsc::channel(1024);
    let sink = Arc::new(sink);
    let runtime = Runtime::new(config, Arc::new(Metrics::new()), events_tx);
    StoreWriter::spawn(
        store.clone(),
        comparisons,
        WriterConfig {
            keep_same: 1.0,
            flush_every: Duration::from_millis(50),
            ..Default::default()
        },
        shutdown.clone(),
    );
    umbra_admin::audit::spawn_audit_log(Some(store.clone()), events);
    tokio::spawn(umbra_core::health::run(runtime.clone(), shutdown.clone()));

    let listeners = umbra_proxy::bind("127.0.0.1:0".parse().unwrap(), 1).unwrap();
    let proxy = format!("http://{}", listeners[0].local_addr().unwrap());
    let proxy_rt = Proxy::new(runtime.clone(), sink.clone());
    let findings = proxy_rt.mirror.findings.clone();
    {
        let (rt, sd) = (proxy_rt, shutdown.clone());
        std::thread::spawn(move || umbra_proxy::serve(listeners, rt, sd));
    }

    let admin_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let admin = format!("http://{}", admin_listener.local_addr().unwrap());
    let rollouts = umbra_core::rollout::Rollouts::new(
        runtime.clone(),
        Arc::new(umbra_admin::rollout::StoreBackend {
            store: Some(store.clone()),
        }),
        Arc::new(umbra_core::rollout::LocalLeadership::default()),
        shutdown.clone(),
    );
    let state = AdminState::new(
        runtime.clone(),
        Some(store.clone()),
        "0.0.0-test",
        "umbra.toml",
        Arc::new(AtomicU64::new(0)),
    )
    .with_sink(sink)
    .with_findings(findings)
    .with_rollouts(rollouts.clone());
    tokio::spawn(umbra_admin::serve(admin_listener, state, shutdown.clone()));

    let sent = Arc::new(AtomicU64::new(0));
    spawn_traffic(proxy.clone(), sent.clone(), shutdown.clone());
    Stack {
        admin,
        proxy,
        runtime,
        store,
        v1,
        v2,
        sent,
        rollouts,
        shutdown,
        _dir: dir,
    }
}

impl Stack {
    /// Waits until the store holds at least `n` comparisons of route `api` with this verdict.
    pub async fn wait_comparisons(&self, verdict: umbra_diff::Verdict, n: usize) {
        let store = self.store.clone();
        umbra_testkit::eventually(Duration::from_secs(20), || {
            let store = store.clone();
            async move {
                store
                    .list(&umbra_store::ListQuery {
                        route: Some("api".into()),
                        verdict: Some(verdict),
                        ..Default::default()
                    })
                    .await
                    .is_ok_and(|p| p.items.len() >= n)
            }
        })
        .await;
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.admin)
    }
}
