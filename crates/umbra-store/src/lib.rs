//! umbra's persistence: where comparisons, their aggregates, runtime route changes, the audit
//! log and persisted ignore rules live. Control-plane side: the data plane hands comparisons to
//! a [`StoreWriter`] through a bounded channel and never waits on a database.
//!
//! One trait, [`ComparisonStore`], two backends behind one conformance suite: [`SqliteStore`]
//! (embedded default, one WAL file) and [`PostgresStore`] (shared by several replicas). Both
//! create the same schema with versioned migrations at start-up. [`open`] picks the backend
//! from the URL's scheme.
//!
//! Schema (both dialects; SQLite stores times as ISO-8601 UTC text with milliseconds, such as
//! `2026-11-23T14:00:00.123Z`, PostgreSQL as `timestamptz`; JSON is text in SQLite, `jsonb` in
//! PostgreSQL except `comparisons.detail`, which is `json` there so bodies are kept verbatim):
//! - `comparisons(id, created_at, route, endpoint, method, uri, request_id, verdict,
//!   primary_status, shadow_status, primary_latency_us, shadow_latency_us, difference_count,
//!   differences, detail)` — one row per comparison; `detail` is NULL for comparisons counted
//!   but not kept in full (`keep_same` sampling).
//!   Since migration 3 (SQLite; 2 in PostgreSQL) also `candidate` (the shadow service) and
//!   `noise` (the noise sample's differences, JSON).
//! - `comparison_causes(cause, comparison_id)` — the finding (cause) ids each comparison
//!   shows, written with it, deleted with it; `?finding=ID` lists read it.
//! - `endpoint_stats(route, endpoint, total, noise_total, same, different, noise, shadow_error)`
//!   and `field_stats(route, endpoint, path, kind, count, noise_count)` — running aggregates,
//!   updated in the same transaction as the rows, never decremented by retention.
//! - `rollouts(route, doc, updated_at)` — a route's rollout state (JSON), one row per route.
//! - `routes(name, kind, doc, updated_at)`, `events(id, created_at, kind, route, source, actor,
//!   detail)`, `ignore_rules(id, created_at, route, endpoint, path, kind)`,
//!   `schema_migrations(version, applied_at)`.
//!
//! Replicas on one PostgreSQL: every write to `routes` is announced on `umbra_changes` and
//! heard through a [`ChangeFeed`]; a [`Lease`] (`try_hold`) lets exactly one of them run a
//! piece of work.

#![forbid(unsafe_code)]

use std::sync::Arc;

use async_trait::async_trait;
use umbra_diff::{Comparison, DiffKind};

mod encode;
mod error;
mod feed;
mod lease;
mod postgres;
mod sqlite;
mod types;
mod writer;

pub use encode::{field_key, mask_url};
pub use error::StoreError;
pub use feed::{ChangeFeed, DocSubscriber, FeedState, FeedStatus, CHANNEL as CHANGES_CHANNEL};
pub use lease::Lease;
pub use postgres::PostgresStore;
pub use sqlite::SqliteStore;
pub use types::{
    ComparisonSummary, EndpointStats, Event, FieldCount, IgnoreRule, LatencySample, ListQuery,
    NewEvent, Page, RouteStats, StoredRoute, Totals, DEFAULT_LIST_LIMIT, MAX_LIST_LIMIT,
    MAX_REPLAY_LIMIT, MAX_SAMPLE_LIMIT,
};
pub use writer::{spawn_retention, StoreWriter, WriterConfig, WriterHandle};

/// Rows deleted per transaction by retention, so a sweep never holds locks for long.
pub const RETENTION_BATCH: u32 = 5_000;

/// Everything umbra persists. Object-safe; shared as `Arc<dyn ComparisonStore>`.
#[async_trait]
pub trait ComparisonStore: Send + Sync + 'static {
    /// `"sqlite"` or `"postgres"`.
    fn kind(&self) -> &'static str;

    /// Cheap round trip to the database, for readiness checks.
    async fn ping(&self) -> Result<(), StoreError>;

    /// Stores a batch in one transaction: a `comparisons` row for every comparison, with
    /// `detail` for `full` ones and NULL for `counted_only` ones, and the matching
    /// `endpoint_stats` / `field_stats` increments. Input ids are ignored; returns the assigned
    /// ids, `full` first then `counted_only`, in input order. All or nothing.
    async fn write_batch(
        &self,
        full: &[Comparison],
        counted_only: &[Comparison],
    ) -> Result<Vec<i64>, StoreError>;

    /// One comparison by id. A counted-only row comes back rebuilt from its columns: request
    /// method and uri, both statuses and latencies, differences; no host, headers, bodies,
    /// error or noise sample.
    async fn get(&self, id: i64) -> Result<Option<Comparison>, StoreError>;

    /// Newest first (id descending), filtered, paged by id cursor.
    async fn list(&self, q: &ListQuery) -> Result<Page, StoreError>;

    /// Comparisons with `after < id <= upto`, oldest first, at most `limit` (clamped to
    /// `1..=MAX_REPLAY_LIMIT`), rebuilt from their columns: candidate, statuses, verdict,
    /// differences and noise sample, no headers or bodies. For rebuilding the in-memory
    /// findings at start-up.
    async fn replay(
        &self,
        after: i64,
        upto: i64,
        limit: u32,
    ) -> Result<Vec<Comparison>, StoreError>;

    /// Per-endpoint totals of a route with their field counts, busiest endpoint first.
    async fn route_stats(&self, route: &str) -> Result<Vec<EndpointStats>, StoreError>;

    /// Totals by verdict of every route that has comparisons, by route name.
    async fn routes_with_stats(&self) -> Result<Vec<RouteStats>, StoreError>;

    /// The latest comparisons' latencies of a route (optionally one endpoint), newest first;
    /// `limit` is clamped to `1..=MAX_SAMPLE_LIMIT`.
    async fn latency_samples(
        &self,
        route: &str,
        endpoint: Option<&str>,
        limit: u32,
    ) -> Result<Vec<LatencySample>, StoreError>;

    /// Retention: deletes comparisons created before `cutoff_ms` in transactions of
    /// [`RETENTION_BATCH`] rows; returns how many. Aggregates are not decremented (they count
    /// everything ever seen), and events, routes and ignore rules are kept.
    async fn delete_older_than(&self, cutoff_ms: i64) -> Result<u64, StoreError>;

    /// Tries to take the lease `key` for this process: `Ok(None)` when another holder has it.
    /// PostgreSQL: a session-level advisory lock on a connection of its own, freed when the
    /// [`Lease`] drops or this process dies, so another replica can take over. SQLite (one
    /// process): granted unless this process holds the key already.
    async fn try_hold(&self, key: &str) -> Result<Option<Lease>, StoreError>;

    /// The feed of changes other replicas make (PostgreSQL); None for a store only this
    /// process uses (SQLite).
    fn change_feed(&self) -> Option<ChangeFeed> {
        None
    }

    /// Creates or replaces a runtime route by name.
    async fn put_route(&self, r: &StoredRoute) -> Result<(), StoreError>;

    /// Deletes a runtime route; false if there was none.
    async fn delete_route(&self, name: &str) -> Result<bool, StoreError>;

    /// All runtime routes, by name.
    async fn list_routes(&self) -> Result<Vec<StoredRoute>, StoreError>;

    /// Creates or replaces the rollout state of a route (one JSON document per route: the
    /// controller's step, window, failures and history).
    async fn put_rollout(&self, route: &str, doc: &serde_json::Value) -> Result<(), StoreError>;

    /// Every stored rollout state, by route.
    async fn list_rollouts(&self) -> Result<Vec<(String, serde_json::Value)>, StoreError>;

    /// Appends to the audit log, stamped with the current time; returns the event id.
    async fn append_event(&self, e: &NewEvent) -> Result<i64, StoreError>;

    /// Audit log, newest first; `before` is an id cursor, `limit` clamped to `1..=MAX_LIST_LIMIT`.
    async fn list_events(&self, limit: u32, before: Option<i64>) -> Result<Vec<Event>, StoreError>;

    /// Persists a noise rule marked in the UI; returns its id. Adding a rule that exists
    /// returns the existing rule's id.
    async fn add_ignore(
        &self,
        route: &str,
        endpoint: Option<&str>,
        path: &str,
        kind: Option<DiffKind>,
    ) -> Result<i64, StoreError>;

    /// Ignore rules of a route, oldest first.
    async fn list_ignores(&self, route: &str) -> Result<Vec<IgnoreRule>, StoreError>;

    /// Deletes an ignore rule; false if there was none.
    async fn delete_ignore(&self, id: i64) -> Result<bool, StoreError>;
}

/// Opens the store a URL names, running migrations:
/// `sqlite://umbra.db` (relative path), `sqlite:///var/lib/umbra.db`, `sqlite:umbra.db`,
/// `sqlite::memory:`, a bare file path, or `postgres://…` / `postgresql://…` (or a libpq
/// key=value string such as `host=db user=umbra dbname=umbra`).
/// Errors name the URL with its password masked, and keep the cause.
pub async fn open(url: &str) -> Result<Arc<dyn ComparisonStore>, StoreError> {
    let lower = url.to_ascii_lowercase();
    if lower.starts_with("postgres:")
        || lower.starts_with("postgresql:")
        || is_pg_keyword_string(url)
    {
        Ok(Arc::new(PostgresStore::connect(url).await?))
    } else if lower.starts_with("sqlite:") || !has_scheme(url) {
        Ok(Arc::new(SqliteStore::open(url).await?))
    } else {
        Err(StoreError::UnsupportedUrl { url: mask_url(url) })
    }
}

/// A libpq key=value connection string: it starts with `key=` for a key libpq knows.
fn is_pg_keyword_string(s: &str) -> bool {
    const KEYS: &[&str] = &[
        "host",
        "hostaddr",
        "port",
        "dbname",
        "user",
        "password",
        "options",
        "sslmode",
        "application_name",
        "connect_timeout",
    ];
    let first_key = s
        .split_whitespace()
        .next()
        .and_then(|w| w.split_once('='))
        .map(|(k, _)| k);
    first_key.is_some_and(|k| KEYS.contains(&k))
}

/// `name:` where name is a URL scheme of two or more letters (so `C:\x.db` is a path).
fn has_scheme(url: &str) -> bool {
    match url.split_once(':') {
        Some((scheme, _)) => {
            scheme.len() > 1
                && scheme.starts_with(|c: char| c.is_ascii_alphabetic())
                && scheme
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scheme_detection() {
        assert!(has_scheme("mysql://x"));
        assert!(!has_scheme("umbra.db"));
        assert!(!has_scheme("C:\\data\\umbra.db"));
        assert!(!has_scheme("/var/lib/umbra.db"));
        assert!(is_pg_keyword_string("host=db port=5432 user=umbra"));
        assert!(!is_pg_keyword_string("umbra.db"));
        assert!(!is_pg_keyword_string("data/x=1.db"));
    }

    #[tokio::test]
    async fn unknown_scheme_is_named_and_masked() {
        let err = match open("mysql://u:secret@db/x").await {
            Err(e) => e,
            Ok(_) => panic!("mysql must be rejected"),
        };
        let msg = err.to_string();
        assert!(msg.contains("mysql://u:***@db/x"), "{msg}");
        assert!(!msg.contains("secret"));
    }
}
