//! Shared set-up for the admin tests: a real runtime from a config text and a SQLite store in a
//! temporary directory, and the `AdminState` over them.

#![allow(dead_code)]

use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use umbra_admin::AdminState;
use umbra_core::runtime::RuntimeEvent;
use umbra_core::telemetry::Metrics;
use umbra_core::{Config, Runtime};
use umbra_store::ComparisonStore;

/// The bearer token the admin tests configure.
pub const TOKEN: &str = "s3cret";

/// The endpoints the load measurements spread their stored comparisons over.
pub const ENDPOINTS: [&str; 5] = [
    "GET /api/items/{id}",
    "GET /api/items",
    "GET /api/users/{id}",
    "GET /api/orders/{uuid}",
    "POST /api/search",
];

/// Two file services and one file route `api` on `v1`, shadowed half to `v2`.
pub const CONFIG: &str = r#"
[log]
access = false

[services.v1]
servers = ["http://127.0.0.1:9"]

[services.v2]
servers = ["http://127.0.0.1:10"]

[[routes]]
name = "api"
rule = "PathPrefix(`/api`)"
service = "v1"
shadow = { service = "v2", percent = 50 }
"#;

pub struct Parts {
    pub runtime: Arc<Runtime>,
    pub store: Arc<dyn ComparisonStore>,
    pub dir: tempfile::TempDir,
    /// The runtime's audit events (kept open for the whole test).
    pub events: tokio::sync::mpsc::Receiver<RuntimeEvent>,
}

/// A runtime built from `config` (TOML) with `[admin] token = token` when given, and an empty
/// SQLite store.
pub async fn parts(config: &str, token: Option<&str>) -> Parts {
    let text = match token {
        Some(t) => format!("[admin]\ntoken = \"{t}\"\n{config}"),
        None => config.to_string(),
    };
    let config = Config::parse(&text, "test.toml", &|_| None).expect("test config is valid");
    let (tx, events) = tokio::sync::mpsc::channel(1024);
    let runtime = Runtime::new(config, Arc::new(Metrics::new()), tx);
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("t.db").display());
    let store = umbra_store::open(&url).await.expect("sqlite store opens");
    Parts {
        runtime,
        store,
        dir,
        events,
    }
}

/// The admin state over a runtime and store, with a writer-drop count. The token, if any, is
/// the runtime config's.
pub fn state(runtime: &Arc<Runtime>, store: &Arc<dyn ComparisonStore>, dropped: u64) -> AdminState {
    let rollouts = umbra_core::rollout::Rollouts::new(
        runtime.clone(),
        Arc::new(umbra_admin::rollout::StoreBackend {
            store: Some(store.clone()),
        }),
        Arc::new(umbra_core::rollout::LocalLeadership::default()),
        tokio_util::sync::CancellationToken::new(),
    );
    AdminState::new(
        runtime.clone(),
        Some(store.clone()),
        "0.0.0-test",
        "test.toml",
        Arc::new(AtomicU64::new(dropped)),
    )
    .with_rollouts(rollouts)
}
