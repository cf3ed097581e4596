//! Test support: a fresh, empty store location per test for each backend, and fixtures.
//!
//! SQLite: a file in a temp dir. PostgreSQL: a schema of its own (via `search_path` in the
//! URL) on one private cluster per test binary, or on `$UMBRA_TEST_PG_URL` when set.

#![allow(dead_code)]

pub mod pg;

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, OnceLock};

use tempfile::TempDir;
use umbra_diff::{Comparison, DiffKind, Difference, Request, Response, Verdict};
use umbra_store::ComparisonStore;

/// Where one test's store lives. `open` may be called several times (restart, two replicas).
pub struct Harness {
    pub url: String,
    pub backend: &'static str,
    _dir: Option<TempDir>,
    /// For PostgreSQL: (admin URL, schema) to drop at the end.
    schema: Option<(String, String)>,
}

impl Harness {
    pub async fn open(&self) -> Arc<dyn ComparisonStore> {
        match umbra_store::open(&self.url).await {
            Ok(s) => s,
            Err(e) => panic!("open {}: {}", self.url, e.display_chain()),
        }
    }

    /// Drops the test's schema (PostgreSQL); the SQLite temp dir goes with the harness.
    pub async fn cleanup(self) {
        if let Some((admin, schema)) = &self.schema {
            let client = admin_client(admin).await;
            client
                .batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
                .await
                .expect("drop test schema");
        }
    }
}

pub fn sqlite() -> Harness {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}", dir.path().join("umbra.db").display());
    Harness {
        url,
        backend: "sqlite",
        _dir: Some(dir),
        schema: None,
    }
}

static CLUSTER: OnceLock<Option<pg::PgCluster>> = OnceLock::new();
static SCHEMA_SEQ: AtomicU32 = AtomicU32::new(0);

/// The admin URL of the server non-fault tests use: `$UMBRA_TEST_PG_URL`, or this binary's
/// private cluster. None (after a loud banner) when PostgreSQL is not installed.
fn server_url() -> Option<String> {
    if let Ok(url) = std::env::var("UMBRA_TEST_PG_URL") {
        if !url.is_empty() {
            return Some(url);
        }
    }
    let cluster = CLUSTER.get_or_init(|| match pg::bin_dir() {
        Some(bin) => Some(pg::PgCluster::start_new(bin)),
        None => {
            pg::skip_or_panic("PostgreSQL conformance tests");
            None
        }
    });
    cluster.as_ref().map(|c| c.url())
}

pub async fn admin_client(url: &str) -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| panic!("connect to test PostgreSQL {url}: {e}"));
    tokio::spawn(conn);
    client
}

/// Adds `options=-c search_path=<schema>` to a URL or key=value connection string.
pub fn with_search_path(url: &str, schema: &str) -> String {
    if url.contains("://") {
        let sep = if url.contains('?') { '&' } else { '?' };
        format!("{url}{sep}options=-c%20search_path%3D{schema}")
    } else {
        format!("{url} options='-c search_path={schema}'")
    }
}

pub async fn postgres() -> Option<Harness> {
    let admin = server_url()?;
    let schema = format!(
        "umbra_t_{}_{}",
        std::process::id(),
        SCHEMA_SEQ.fetch_add(1, Ordering::Relaxed)
    );
    admin_client(&admin)
        .await
        .batch_execute(&format!("CREATE SCHEMA {schema}"))
        .await
        .expect("create test schema");
    Some(Harness {
        url: with_search_path(&admin, &schema),
        backend: "postgres",
        _dir: None,
        schema: Some((admin, schema)),
    })
}

/// Start of fixture time: 2026-11-23T14:00:00Z.
pub const T0: i64 = 1_795_442_400_000;

pub fn diff(path: &str, kind: DiffKind) -> Difference {
    Difference {
        path: path.into(),
        kind,
        primary: Some(serde_json::json!({"v": 1, "a": [1, 2]})),
        candidate: Some(serde_json::json!("two")),
    }
}

/// A comparison with realistic request/response detail.
pub fn comparison(route: &str, endpoint: &str, verdict: Verdict, at_ms: i64) -> Comparison {
    let body = format!(r#"{{"id":{at_ms},"name":"widget","price":9.5}}"#).into_bytes();
    Comparison {
        id: 0,
        created_at_ms: at_ms,
        route: route.into(),
        candidate: "v2".into(),
        endpoint: endpoint.into(),
        request_id: format!("req-{at_ms}"),
        verdict,
        request: Request {
            method: endpoint.split(' ').next().unwrap_or("GET").into(),
            uri: format!("/items/{at_ms}?q=1"),
            host: "api.example.com".into(),
            headers: vec![
                ("accept".into(), "application/json".into()),
                ("authorization".into(), "[redacted]".into()),
            ],
            body: Vec::new(),
        },
        primary: Response {
            status: 200,
            headers: vec![("content-type".into(), "application/json".into())],
            body: body.clone(),
            truncated: false,
            latency_us: 1_000 + (at_ms % 1000) as u64,
        },
        shadow: match verdict {
            Verdict::ShadowError => None,
            _ => Some(Response {
                status: if verdict == Verdict::Different {
                    500
                } else {
                    200
                },
                headers: vec![("content-type".into(), "application/json".into())],
                body,
                truncated: false,
                latency_us: 2_000 + (at_ms % 1000) as u64,
            }),
        },
        error: (verdict == Verdict::ShadowError).then(|| "connection refused".into()),
        differences: match verdict {
            Verdict::Different => vec![
                diff("status", DiffKind::Status),
                diff("/price", DiffKind::Changed),
            ],
            Verdict::Noise => vec![diff("/ts", DiffKind::Changed)],
            _ => Vec::new(),
        },
        noise: (verdict == Verdict::Noise).then(|| vec![diff("/ts", DiffKind::Changed)]),
    }
}
