//! The PostgreSQL backend, for several umbra replicas sharing comparisons, runtime routes and
//! events. Control-plane side.
//!
//! A small deadpool pool of plain (non-TLS) connections: a connection whose server went away is
//! noticed as closed and replaced on the next checkout, so the store heals by itself when the
//! server comes back; while it is down, checkouts fail fast (connect and pool timeouts) instead
//! of hanging. Batches go in as one multi-row `INSERT … SELECT FROM unnest(…)` per table.
//! Migrations run in one transaction under an advisory lock, so replicas starting together
//! apply each exactly once.
//!
//! PostgreSQL text cannot hold NUL, nor `jsonb` a `\u0000` escape: such characters in indexed
//! columns and `jsonb` values are stored as U+FFFD. `comparisons.detail` is `json` (kept
//! verbatim, key order included), so captured requests and bodies come back exactly.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod, Runtime};
use tokio_postgres::tls::NoTlsStream;
use tokio_postgres::types::ToSql;
use tokio_postgres::{NoTls, Row};
use tokio_util::sync::CancellationToken;
use umbra_diff::{Comparison, DiffKind};

use crate::encode::{
    self, decode_json, encode_batch, encode_json, now_ms, parse_kind, parse_verdict,
    AggregateDelta, StoredRow,
};
use crate::feed::ChangeFeed;
use crate::lease::{lock_id, Lease};
use crate::types::*;
use crate::{ComparisonStore, StoreError, RETENTION_BATCH};

/// A dedicated session's connection, which its owner polls.
pub(crate) type Session = tokio_postgres::Connection<tokio_postgres::Socket, NoTlsStream>;

const POOL_SIZE: usize = 4;
const TIMEOUT: Duration = Duration::from_secs(5);
/// `pg_advisory_xact_lock` key that serializes migrations across replicas ("umbra" in ASCII).
const MIGRATION_LOCK: i64 = 0x0075_6d62_7261;

/// Versioned migrations, applied in order; never edit one that has shipped, add a new one.
const MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "initial schema",
        r#"
CREATE TABLE comparisons (
    id                 BIGSERIAL PRIMARY KEY,
    created_at         TIMESTAMPTZ NOT NULL,
    route              TEXT        NOT NULL,
    endpoint           TEXT        NOT NULL,
    method             TEXT        NOT NULL,
    uri                TEXT        NOT NULL,
    request_id         TEXT        NOT NULL,
    verdict            TEXT        NOT NULL
        CHECK (verdict IN ('same', 'different', 'noise', 'shadow_error')),
    primary_status     INTEGER     NOT NULL,
    shadow_status      INTEGER,
    primary_latency_us BIGINT      NOT NULL,
    shadow_latency_us  BIGINT,
    difference_count   INTEGER     NOT NULL,
    differences        JSONB       NOT NULL,
    detail             JSON
);
CREATE INDEX comparisons_route_id ON comparisons (route, id);
CREATE INDEX comparisons_route_verdict_id ON comparisons (route, verdict, id);
CREATE INDEX comparisons_route_endpoint_id ON comparisons (route, endpoint, id);
CREATE INDEX comparisons_created_at ON comparisons (created_at);

CREATE TABLE endpoint_stats (
    route        TEXT   NOT NULL,
    endpoint     TEXT   NOT NULL,
    total        BIGINT NOT NULL DEFAULT 0,
    noise_total  BIGINT NOT NULL DEFAULT 0,
    same         BIGINT NOT NULL DEFAULT 0,
    different    BIGINT NOT NULL DEFAULT 0,
    noise        BIGINT NOT NULL DEFAULT 0,
    shadow_error BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (route, endpoint)
);

CREATE TABLE field_stats (
    route       TEXT   NOT NULL,
    endpoint    TEXT   NOT NULL,
    path        TEXT   NOT NULL,
    kind        TEXT   NOT NULL,
    count       BIGINT NOT NULL DEFAULT 0,
    noise_count BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (route, endpoint, path, kind)
);

CREATE TABLE routes (
    name       TEXT PRIMARY KEY,
    kind       TEXT        NOT NULL,
    doc        JSONB       NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
);

CREATE TABLE events (
    id         BIGSERIAL PRIMARY KEY,
    created_at TIMESTAMPTZ NOT NULL,
    kind       TEXT        NOT NULL,
    route      TEXT,
    source     TEXT        NOT NULL,
    actor      TEXT,
    detail     JSONB       NOT NULL
);
CREATE INDEX events_created_at ON events (created_at);

CREATE TABLE ignore_rules (
    id         BIGSERIAL PRIMARY KEY,
    created_at TIMESTAMPTZ NOT NULL,
    route      TEXT        NOT NULL,
    endpoint   TEXT,
    path       TEXT        NOT NULL,
    kind       TEXT
);
CREATE UNIQUE INDEX ignore_rules_unique
    ON ignore_rules (route, COALESCE(endpoint, ''), path, COALESCE(kind, ''));
"#,
    ),
    (
        2,
        "findings: candidate, noise sample and cause tags",
        // `comparison_causes` answers "the comparisons of finding X" from its primary key;
        // its rows go with their comparison (retention) by the foreign key.
        r#"
ALTER TABLE comparisons ADD COLUMN candidate TEXT NOT NULL DEFAULT '';
ALTER TABLE comparisons ADD COLUMN noise JSONB;
CREATE TABLE comparison_causes (
    cause         TEXT   NOT NULL,
    comparison_id BIGINT NOT NULL REFERENCES comparisons (id) ON DELETE CASCADE,
    PRIMARY KEY (cause, comparison_id)
);
CREATE INDEX comparison_causes_comparison ON comparison_causes (comparison_id);
"#,
    ),
    (
        3,
        "rollouts",
        r#"
CREATE TABLE rollouts (
    route      TEXT PRIMARY KEY,
    doc        JSONB NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
);
"#,
    ),
    (4, "announce runtime changes", ANNOUNCE_CHANGES),
];

/// Migration 4: every write to `routes` (a runtime route, override, service or rollout
/// document) is announced on the channel `umbra_changes` as `<kind>:<name>` by a trigger, so it
/// is part of the writing transaction whoever writes, and replicas LISTENing re-read it. A
/// kind change also announces the old kind (its document is gone). A payload too long for
/// NOTIFY (8000 bytes) is announced as `*`: re-read everything.
const ANNOUNCE_CHANGES: &str = r#"
CREATE FUNCTION umbra_announce_change() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    payload TEXT;
BEGIN
    IF TG_OP = 'DELETE' OR (TG_OP = 'UPDATE' AND OLD.kind <> NEW.kind) THEN
        payload := OLD.kind || ':' || OLD.name;
        PERFORM pg_notify('umbra_changes', CASE WHEN octet_length(payload) < 7900 THEN payload ELSE '*' END);
    END IF;
    IF TG_OP <> 'DELETE' THEN
        payload := NEW.kind || ':' || NEW.name;
        PERFORM pg_notify('umbra_changes', CASE WHEN octet_length(payload) < 7900 THEN payload ELSE '*' END);
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER routes_announce AFTER INSERT OR UPDATE OR DELETE ON routes
    FOR EACH ROW EXECUTE FUNCTION umbra_announce_change();
"#;

/// The PostgreSQL store. Cheap to clone; clones share the pool.
#[derive(Clone)]
pub struct PostgresStore {
    pool: Pool,
    /// How to open sessions of their own (leases, the change feed) outside the pool.
    config: Arc<tokio_postgres::Config>,
}

impl PostgresStore {
    /// Connects (`postgres://user:pass@host:port/db`, `postgresql://…`, or a key=value string)
    /// and brings the schema up to date. Fails if the server cannot be reached now; once
    /// connected, outages are survived by reconnecting on later calls.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        Self::connect_inner(url)
            .await
            .map_err(|source| StoreError::Open {
                url: encode::mask_url(url),
                source: Box::new(source),
            })
    }

    async fn connect_inner(url: &str) -> Result<Self, StoreError> {
        let mut cfg: tokio_postgres::Config = url.parse().map_err(StoreError::PostgresConfig)?;
        if cfg.get_connect_timeout().is_none() {
            cfg.connect_timeout(TIMEOUT);
        }
        if cfg.get_application_name().is_none() {
            cfg.application_name("umbra");
        }
        let config = Arc::new(cfg.clone());
        let mgr = Manager::from_config(
            cfg,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(mgr)
            .max_size(POOL_SIZE)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(TIMEOUT))
            .create_timeout(Some(TIMEOUT))
            .recycle_timeout(Some(TIMEOUT))
            .build()
            .map_err(StoreError::PoolBuild)?;
        let store = PostgresStore { pool, config };
        store.migrate().await?;
        Ok(store)
    }

    async fn client(&self) -> Result<Object, StoreError> {
        self.pool.get().await.map_err(StoreError::Pool)
    }

    /// A session of its own, outside the pool, for what lives as long as a connection does
    /// (an advisory lock, a LISTEN). TCP keepalives notice a vanished server in about 25 s.
    /// The caller drives the returned connection.
    pub(crate) async fn session(
        &self,
        application_name: &str,
    ) -> Result<(tokio_postgres::Client, Session), StoreError> {
        let mut cfg = (*self.config).clone();
        cfg.application_name(application_name)
            .keepalives(true)
            .keepalives_idle(Duration::from_secs(10))
            .keepalives_interval(Duration::from_secs(5))
            .keepalives_retries(3);
        cfg.connect(NoTls)
            .await
            .map_err(StoreError::pg("open a dedicated session"))
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let tx = client
            .transaction()
            .await
            .map_err(StoreError::pg("begin migrations"))?;
        tx.batch_execute(&format!(
            "SELECT pg_advisory_xact_lock({MIGRATION_LOCK});
             CREATE TABLE IF NOT EXISTS schema_migrations (
                 version    BIGINT PRIMARY KEY,
                 applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
             );"
        ))
        .await
        .map_err(StoreError::pg("lock and create schema_migrations"))?;
        let applied: Vec<i64> = tx
            .query("SELECT version FROM schema_migrations", &[])
            .await
            .map_err(StoreError::pg("read schema_migrations"))?
            .iter()
            .map(|r| r.get(0))
            .collect();
        for &(version, name, sql) in MIGRATIONS {
            if applied.contains(&version) {
                continue;
            }
            let apply = async {
                tx.batch_execute(sql)
                    .await
                    .map_err(StoreError::pg("apply migration"))?;
                tx.execute(
                    "INSERT INTO schema_migrations (version, applied_at) VALUES ($1, now())",
                    &[&version],
                )
                .await
                .map_err(StoreError::pg("record migration"))
            };
            apply.await.map_err(|source| StoreError::Migration {
                version,
                name,
                source: Box::new(source),
            })?;
        }
        tx.commit()
            .await
            .map_err(StoreError::pg("commit migrations"))?;
        let known = MIGRATIONS.last().map(|m| m.0).unwrap_or(0);
        if let Some(&newest) = applied.iter().max().filter(|&&v| v > known) {
            tracing::warn!(
                found = newest,
                known,
                "the PostgreSQL store was migrated by a newer umbra; continuing with the known schema"
            );
        }
        Ok(())
    }
}

fn ms_to_time(ms: i64) -> SystemTime {
    if ms >= 0 {
        UNIX_EPOCH + Duration::from_millis(ms.unsigned_abs())
    } else {
        UNIX_EPOCH - Duration::from_millis(ms.unsigned_abs())
    }
}

fn time_to_ms(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_millis()).unwrap_or(i64::MAX),
    }
}

/// Text PostgreSQL accepts: NUL becomes U+FFFD.
fn pg_text(s: &str) -> Cow<'_, str> {
    if s.contains('\0') {
        Cow::Owned(s.replace('\0', "\u{fffd}"))
    } else {
        Cow::Borrowed(s)
    }
}

/// JSON text `jsonb` accepts: `\u0000` inside strings and keys becomes U+FFFD. serde_json
/// always writes NUL as `\u0000`, so the common case is one substring search.
fn jsonb_text(s: &str) -> Cow<'_, str> {
    if !s.contains("\\u0000") {
        return Cow::Borrowed(s);
    }
    fn scrub(v: &mut serde_json::Value) {
        match v {
            serde_json::Value::String(s) if s.contains('\0') => *s = s.replace('\0', "\u{fffd}"),
            serde_json::Value::Array(a) => a.iter_mut().for_each(scrub),
            serde_json::Value::Object(m) => {
                let old = std::mem::take(m);
                for (k, mut v) in old {
                    scrub(&mut v);
                    m.insert(k.replace('\0', "\u{fffd}"), v);
                }
            }
            _ => {}
        }
    }
    match serde_json::from_str::<serde_json::Value>(s) {
        Ok(mut v) => {
            scrub(&mut v);
            Cow::Owned(v.to_string())
        }
        // Not ours to fix: let the server report it.
        Err(_) => Cow::Borrowed(s),
    }
}

const SUMMARY_COLUMNS: &str = "id, created_at, route, endpoint, method, uri, request_id, verdict, \
     primary_status, shadow_status, primary_latency_us, shadow_latency_us, difference_count, \
     detail IS NOT NULL, candidate";

fn col<'a, T: tokio_postgres::types::FromSql<'a>>(
    r: &'a Row,
    i: usize,
    op: &'static str,
) -> Result<T, StoreError> {
    r.try_get(i).map_err(StoreError::pg(op))
}

fn summary(r: &Row) -> Result<ComparisonSummary, StoreError> {
    const OP: &str = "read comparison row";
    let primary_status: i32 = col(r, 8, OP)?;
    let shadow_status: Option<i32> = col(r, 9, OP)?;
    let difference_count: i32 = col(r, 12, OP)?;
    let verdict: String = col(r, 7, OP)?;
    Ok(ComparisonSummary {
        id: col(r, 0, OP)?,
        created_at_ms: time_to_ms(col(r, 1, OP)?),
        route: col(r, 2, OP)?,
        candidate: col(r, 14, OP)?,
        endpoint: col(r, 3, OP)?,
        method: col(r, 4, OP)?,
        uri: col(r, 5, OP)?,
        request_id: col(r, 6, OP)?,
        verdict: parse_verdict(&verdict)?,
        primary_status: encode::status("primary_status", i64::from(primary_status))?,
        shadow_status: shadow_status
            .map(|s| encode::status("shadow_status", i64::from(s)))
            .transpose()?,
        primary_latency_us: encode::unsigned("primary_latency_us", col(r, 10, OP)?)?,
        shadow_latency_us: col::<Option<i64>>(r, 11, OP)?
            .map(|s| encode::unsigned("shadow_latency_us", s))
            .transpose()?,
        difference_count: u32::try_from(difference_count).map_err(|_| StoreError::BadValue {
            column: "difference_count",
            value: difference_count.to_string(),
        })?,
        full: col(r, 13, OP)?,
    })
}

fn totals(r: &Row, first: usize, op: &'static str) -> Result<Totals, StoreError> {
    let n = |i: usize| -> Result<u64, StoreError> {
        let v: i64 = col(r, first + i, op)?;
        Ok(v.max(0).unsigned_abs())
    };
    Ok(Totals {
        total: n(0)?,
        noise_total: n(1)?,
        same: n(2)?,
        different: n(3)?,
        noise: n(4)?,
        shadow_error: n(5)?,
    })
}

/// The `comparison_causes` rows of a batch: each row's cause ids with its comparison id.
fn cause_tags<'r>(rows: &'r [encode::NewRow], ids: &[i64]) -> (Vec<&'r str>, Vec<i64>) {
    let mut causes = Vec::new();
    let mut of = Vec::new();
    for (row, id) in rows.iter().zip(ids) {
        for c in &row.causes {
            causes.push(c.as_str());
            of.push(*id);
        }
    }
    (causes, of)
}

fn count(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// The `routes` rows, by name: all of them, or the one named `only` (if any).
pub(crate) async fn read_routes(
    client: &tokio_postgres::Client,
    only: Option<&str>,
) -> Result<Vec<StoredRoute>, StoreError> {
    const ALL: &str = "SELECT name, kind, doc::text, updated_at FROM routes ORDER BY name";
    const ONE: &str = "SELECT name, kind, doc::text, updated_at FROM routes WHERE name = $1";
    let rows = match only {
        None => client.query(ALL, &[]).await,
        Some(name) => client.query(ONE, &[&pg_text(name)]).await,
    };
    rows.map_err(StoreError::pg("list routes"))?
        .iter()
        .map(|r| {
            const OP: &str = "read routes";
            let doc: String = col(r, 2, OP)?;
            Ok(StoredRoute {
                name: col(r, 0, OP)?,
                kind: col(r, 1, OP)?,
                doc: decode_json("route doc", &doc)?,
                updated_at_ms: time_to_ms(col(r, 3, OP)?),
            })
        })
        .collect()
}

#[async_trait]
impl ComparisonStore for PostgresStore {
    fn kind(&self) -> &'static str {
        "postgres"
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.client()
            .await?
            .simple_query("SELECT 1")
            .await
            .map_err(StoreError::pg("ping"))?;
        Ok(())
    }

    async fn write_batch(
        &self,
        full: &[Comparison],
        counted_only: &[Comparison],
    ) -> Result<Vec<i64>, StoreError> {
        let n = full.len() + counted_only.len();
        if n == 0 {
            return Ok(Vec::new());
        }
        let rows = encode_batch(full, counted_only)?;
        let delta = AggregateDelta::of(full.iter().chain(counted_only));

        let created_at: Vec<SystemTime> =
            rows.iter().map(|r| ms_to_time(r.created_at_ms)).collect();
        let route: Vec<Cow<str>> = rows.iter().map(|r| pg_text(&r.route)).collect();
        let endpoint: Vec<Cow<str>> = rows.iter().map(|r| pg_text(&r.endpoint)).collect();
        let method: Vec<Cow<str>> = rows.iter().map(|r| pg_text(&r.method)).collect();
        let uri: Vec<Cow<str>> = rows.iter().map(|r| pg_text(&r.uri)).collect();
        let request_id: Vec<Cow<str>> = rows.iter().map(|r| pg_text(&r.request_id)).collect();
        let verdict: Vec<&str> = rows.iter().map(|r| r.verdict).collect();
        let primary_status: Vec<i32> = rows.iter().map(|r| r.primary_status).collect();
        let shadow_status: Vec<Option<i32>> = rows.iter().map(|r| r.shadow_status).collect();
        let primary_latency: Vec<i64> = rows.iter().map(|r| r.primary_latency_us).collect();
        let shadow_latency: Vec<Option<i64>> = rows.iter().map(|r| r.shadow_latency_us).collect();
        let difference_count: Vec<i32> = rows.iter().map(|r| r.difference_count).collect();
        let differences: Vec<Cow<str>> = rows.iter().map(|r| jsonb_text(&r.differences)).collect();
        let detail: Vec<Option<&str>> = rows.iter().map(|r| r.detail.as_deref()).collect();
        let candidate: Vec<Cow<str>> = rows.iter().map(|r| pg_text(&r.candidate)).collect();
        let noise: Vec<Option<Cow<str>>> = rows
            .iter()
            .map(|r| r.noise.as_deref().map(jsonb_text))
            .collect();

        let mut ep_route = Vec::new();
        let mut ep_endpoint = Vec::new();
        let mut ep_counts: [Vec<i64>; 6] = Default::default();
        for ((r, e), t) in &delta.endpoints {
            ep_route.push(pg_text(r));
            ep_endpoint.push(pg_text(e));
            for (v, x) in ep_counts.iter_mut().zip([
                t.total,
                t.noise_total,
                t.same,
                t.different,
                t.noise,
                t.shadow_error,
            ]) {
                v.push(count(x));
            }
        }
        let mut f_route = Vec::new();
        let mut f_endpoint = Vec::new();
        let mut f_path = Vec::new();
        let mut f_kind = Vec::new();
        let mut f_count = Vec::new();
        let mut f_noise = Vec::new();
        for ((r, e, p, k), (c, nc)) in &delta.fields {
            f_route.push(pg_text(r));
            f_endpoint.push(pg_text(e));
            f_path.push(pg_text(p));
            f_kind.push(k.as_str());
            f_count.push(count(*c));
            f_noise.push(count(*nc));
        }

        let mut client = self.client().await?;
        let tx = client
            .transaction()
            .await
            .map_err(StoreError::pg("begin write_batch"))?;
        // Ids are taken first so they come back in input order whatever order the server
        // inserts rows in.
        let ids_st = tx
            .prepare_cached(
                "SELECT nextval(pg_get_serial_sequence('comparisons', 'id')) \
                 FROM generate_series(1, $1::int4)",
            )
            .await
            .map_err(StoreError::pg("prepare id allocation"))?;
        let mut ids: Vec<i64> = tx
            .query(&ids_st, &[&i32::try_from(n).unwrap_or(i32::MAX)])
            .await
            .map_err(StoreError::pg("allocate comparison ids"))?
            .iter()
            .map(|r| r.get(0))
            .collect();
        ids.sort_unstable();
        let insert = tx
            .prepare_cached(
                "INSERT INTO comparisons (id, created_at, route, endpoint, method, uri, \
                 request_id, verdict, primary_status, shadow_status, primary_latency_us, \
                 shadow_latency_us, difference_count, differences, detail, candidate, noise) \
                 SELECT id, created_at, route, endpoint, method, uri, request_id, verdict, \
                 primary_status, shadow_status, primary_latency_us, shadow_latency_us, \
                 difference_count, differences::jsonb, detail::json, candidate, noise::jsonb \
                 FROM unnest($1::int8[], $2::timestamptz[], $3::text[], $4::text[], $5::text[], \
                 $6::text[], $7::text[], $8::text[], $9::int4[], $10::int4[], $11::int8[], \
                 $12::int8[], $13::int4[], $14::text[], $15::text[], $16::text[], $17::text[]) \
                 AS t(id, created_at, route, endpoint, method, uri, request_id, verdict, \
                 primary_status, shadow_status, primary_latency_us, shadow_latency_us, \
                 difference_count, differences, detail, candidate, noise)",
            )
            .await
            .map_err(StoreError::pg("prepare insert comparisons"))?;
        tx.execute(
            &insert,
            &[
                &ids,
                &created_at,
                &route,
                &endpoint,
                &method,
                &uri,
                &request_id,
                &verdict,
                &primary_status,
                &shadow_status,
                &primary_latency,
                &shadow_latency,
                &difference_count,
                &differences,
                &detail,
                &candidate,
                &noise,
            ],
        )
        .await
        .map_err(StoreError::pg("insert comparisons"))?;
        let (tag_cause, tag_id) = cause_tags(&rows, &ids);
        if !tag_cause.is_empty() {
            let tag = tx
                .prepare_cached(
                    "INSERT INTO comparison_causes (cause, comparison_id) \
                     SELECT * FROM unnest($1::text[], $2::int8[]) ON CONFLICT DO NOTHING",
                )
                .await
                .map_err(StoreError::pg("prepare insert causes"))?;
            tx.execute(&tag, &[&tag_cause, &tag_id])
                .await
                .map_err(StoreError::pg("insert causes"))?;
        }

        let ep = tx
            .prepare_cached(
                "INSERT INTO endpoint_stats (route, endpoint, total, noise_total, same, \
                 different, noise, shadow_error) \
                 SELECT * FROM unnest($1::text[], $2::text[], $3::int8[], $4::int8[], \
                 $5::int8[], $6::int8[], $7::int8[], $8::int8[]) \
                 ON CONFLICT (route, endpoint) DO UPDATE SET \
                 total = endpoint_stats.total + excluded.total, \
                 noise_total = endpoint_stats.noise_total + excluded.noise_total, \
                 same = endpoint_stats.same + excluded.same, \
                 different = endpoint_stats.different + excluded.different, \
                 noise = endpoint_stats.noise + excluded.noise, \
                 shadow_error = endpoint_stats.shadow_error + excluded.shadow_error",
            )
            .await
            .map_err(StoreError::pg("prepare endpoint_stats upsert"))?;
        let [c0, c1, c2, c3, c4, c5] = &ep_counts;
        tx.execute(&ep, &[&ep_route, &ep_endpoint, c0, c1, c2, c3, c4, c5])
            .await
            .map_err(StoreError::pg("update endpoint_stats"))?;

        if !f_route.is_empty() {
            let fs = tx
                .prepare_cached(
                    "INSERT INTO field_stats (route, endpoint, path, kind, count, noise_count) \
                     SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], \
                     $5::int8[], $6::int8[]) \
                     ON CONFLICT (route, endpoint, path, kind) DO UPDATE SET \
                     count = field_stats.count + excluded.count, \
                     noise_count = field_stats.noise_count + excluded.noise_count",
                )
                .await
                .map_err(StoreError::pg("prepare field_stats upsert"))?;
            tx.execute(
                &fs,
                &[&f_route, &f_endpoint, &f_path, &f_kind, &f_count, &f_noise],
            )
            .await
            .map_err(StoreError::pg("update field_stats"))?;
        }
        tx.commit()
            .await
            .map_err(StoreError::pg("commit write_batch"))?;
        Ok(ids)
    }

    async fn get(&self, id: i64) -> Result<Option<Comparison>, StoreError> {
        let client = self.client().await?;
        let st = client
            .prepare_cached(&format!(
                "SELECT {SUMMARY_COLUMNS}, differences::text, detail::text \
                 FROM comparisons WHERE id = $1"
            ))
            .await
            .map_err(StoreError::pg("prepare get"))?;
        let Some(row) = client
            .query_opt(&st, &[&id])
            .await
            .map_err(StoreError::pg("get comparison"))?
        else {
            return Ok(None);
        };
        StoredRow {
            summary: summary(&row)?,
            differences: col(&row, 15, "read comparison row")?,
            detail: col(&row, 16, "read comparison row")?,
        }
        .into_comparison()
        .map(Some)
    }

    async fn list(&self, q: &ListQuery) -> Result<Page, StoreError> {
        let limit = q.clamped_limit();
        let verdict = q.verdict.map(|v| v.as_str());
        let fetch = i64::from(limit) + 1;
        let mut args: Vec<&(dyn ToSql + Sync)> = Vec::new();
        let mut conds: Vec<String> = Vec::new();
        if let Some(r) = &q.route {
            args.push(r);
            conds.push(format!("route = ${}", args.len()));
        }
        if let Some(v) = &verdict {
            args.push(v);
            conds.push(format!("verdict = ${}", args.len()));
        }
        if let Some(e) = &q.endpoint {
            args.push(e);
            conds.push(format!("endpoint = ${}", args.len()));
        }
        // A finding's comparisons come from its tags' primary key, newest first.
        let (from, order) = match q.finding {
            Some(_) => (
                "comparison_causes JOIN comparisons ON comparisons.id = comparison_id",
                "comparison_id",
            ),
            None => ("comparisons", "id"),
        };
        if let Some(f) = &q.finding {
            args.push(f);
            conds.push(format!("cause = ${}", args.len()));
        }
        if let Some(b) = &q.before {
            args.push(b);
            conds.push(format!("{order} < ${}", args.len()));
        }
        let mut sql = format!("SELECT {SUMMARY_COLUMNS} FROM {from}");
        if !conds.is_empty() {
            sql.push_str(" WHERE ");
            sql.push_str(&conds.join(" AND "));
        }
        args.push(&fetch);
        sql.push_str(&format!(" ORDER BY {order} DESC LIMIT ${}", args.len()));

        let client = self.client().await?;
        let st = client
            .prepare_cached(&sql)
            .await
            .map_err(StoreError::pg("prepare list"))?;
        let rows = client
            .query(&st, &args)
            .await
            .map_err(StoreError::pg("list comparisons"))?;
        let mut items = rows.iter().map(summary).collect::<Result<Vec<_>, _>>()?;
        let next = if items.len() > limit as usize {
            items.truncate(limit as usize);
            items.last().map(|s| s.id)
        } else {
            None
        };
        Ok(Page { items, next })
    }

    async fn replay(
        &self,
        after: i64,
        upto: i64,
        limit: u32,
    ) -> Result<Vec<Comparison>, StoreError> {
        const OP: &str = "read comparison row";
        let client = self.client().await?;
        let st = client
            .prepare_cached(&format!(
                "SELECT {SUMMARY_COLUMNS}, differences::text, noise::text FROM comparisons \
                 WHERE id > $1 AND id <= $2 ORDER BY id LIMIT $3"
            ))
            .await
            .map_err(StoreError::pg("prepare replay"))?;
        let limit = i64::from(limit.clamp(1, MAX_REPLAY_LIMIT));
        let rows = client
            .query(&st, &[&after, &upto, &limit])
            .await
            .map_err(StoreError::pg("replay comparisons"))?;
        rows.iter()
            .map(|r| encode::replayed(summary(r)?, col(r, 15, OP)?, col(r, 16, OP)?))
            .collect()
    }

    async fn route_stats(&self, route: &str) -> Result<Vec<EndpointStats>, StoreError> {
        let client = self.client().await?;
        let st = client
            .prepare_cached(
                "SELECT endpoint, total, noise_total, same, different, noise, shadow_error \
                 FROM endpoint_stats WHERE route = $1 ORDER BY total DESC, endpoint",
            )
            .await
            .map_err(StoreError::pg("prepare route_stats"))?;
        let mut endpoints = client
            .query(&st, &[&route])
            .await
            .map_err(StoreError::pg("read endpoint_stats"))?
            .iter()
            .map(|r| {
                Ok(EndpointStats {
                    endpoint: col(r, 0, "read endpoint_stats")?,
                    totals: totals(r, 1, "read endpoint_stats")?,
                    fields: Vec::new(),
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        let st = client
            .prepare_cached(
                "SELECT endpoint, path, kind, count, noise_count FROM field_stats \
                 WHERE route = $1 ORDER BY endpoint, count DESC, noise_count DESC, path, kind",
            )
            .await
            .map_err(StoreError::pg("prepare field_stats"))?;
        for r in client
            .query(&st, &[&route])
            .await
            .map_err(StoreError::pg("read field_stats"))?
        {
            const OP: &str = "read field_stats";
            let endpoint: String = col(&r, 0, OP)?;
            let kind: String = col(&r, 2, OP)?;
            let field = FieldCount {
                path: col(&r, 1, OP)?,
                kind: parse_kind(&kind)?,
                count: col::<i64>(&r, 3, OP)?.max(0).unsigned_abs(),
                noise_count: col::<i64>(&r, 4, OP)?.max(0).unsigned_abs(),
            };
            if let Some(e) = endpoints.iter_mut().find(|e| e.endpoint == endpoint) {
                e.fields.push(field);
            }
        }
        Ok(endpoints)
    }

    async fn routes_with_stats(&self) -> Result<Vec<RouteStats>, StoreError> {
        let client = self.client().await?;
        let st = client
            .prepare_cached(
                "SELECT route, SUM(total)::int8, SUM(noise_total)::int8, SUM(same)::int8, \
                 SUM(different)::int8, SUM(noise)::int8, SUM(shadow_error)::int8 \
                 FROM endpoint_stats GROUP BY route ORDER BY route",
            )
            .await
            .map_err(StoreError::pg("prepare routes_with_stats"))?;
        client
            .query(&st, &[])
            .await
            .map_err(StoreError::pg("read routes_with_stats"))?
            .iter()
            .map(|r| {
                Ok(RouteStats {
                    route: col(r, 0, "read routes_with_stats")?,
                    totals: totals(r, 1, "read routes_with_stats")?,
                })
            })
            .collect()
    }

    async fn latency_samples(
        &self,
        route: &str,
        endpoint: Option<&str>,
        limit: u32,
    ) -> Result<Vec<LatencySample>, StoreError> {
        let limit = i64::from(limit.clamp(1, MAX_SAMPLE_LIMIT));
        let client = self.client().await?;
        let rows = match endpoint {
            Some(e) => {
                let st = client
                    .prepare_cached(
                        "SELECT endpoint, primary_latency_us, shadow_latency_us, created_at \
                         FROM comparisons WHERE route = $1 AND endpoint = $3 \
                         ORDER BY id DESC LIMIT $2",
                    )
                    .await
                    .map_err(StoreError::pg("prepare latency_samples"))?;
                client.query(&st, &[&route, &limit, &e]).await
            }
            None => {
                let st = client
                    .prepare_cached(
                        "SELECT endpoint, primary_latency_us, shadow_latency_us, created_at \
                         FROM comparisons WHERE route = $1 ORDER BY id DESC LIMIT $2",
                    )
                    .await
                    .map_err(StoreError::pg("prepare latency_samples"))?;
                client.query(&st, &[&route, &limit]).await
            }
        }
        .map_err(StoreError::pg("read latency_samples"))?;
        rows.iter()
            .map(|r| {
                const OP: &str = "read latency_samples";
                Ok(LatencySample {
                    endpoint: col(r, 0, OP)?,
                    primary_us: encode::unsigned("primary_latency_us", col(r, 1, OP)?)?,
                    shadow_us: col::<Option<i64>>(r, 2, OP)?
                        .map(|s| encode::unsigned("shadow_latency_us", s))
                        .transpose()?,
                    created_at_ms: time_to_ms(col(r, 3, OP)?),
                })
            })
            .collect()
    }

    async fn delete_older_than(&self, cutoff_ms: i64) -> Result<u64, StoreError> {
        let cutoff = ms_to_time(cutoff_ms);
        let batch = i64::from(RETENTION_BATCH);
        let mut deleted = 0u64;
        loop {
            // A fresh checkout per batch: other work interleaves, and a dropped connection
            // costs one batch, not the sweep.
            let client = self.client().await?;
            let st = client
                .prepare_cached(
                    "DELETE FROM comparisons WHERE id IN \
                     (SELECT id FROM comparisons WHERE created_at < $1 LIMIT $2)",
                )
                .await
                .map_err(StoreError::pg("prepare retention delete"))?;
            let n = client
                .execute(&st, &[&cutoff, &batch])
                .await
                .map_err(StoreError::pg("delete old comparisons"))?;
            deleted += n;
            if n < RETENTION_BATCH as u64 {
                return Ok(deleted);
            }
        }
    }

    fn change_feed(&self) -> Option<ChangeFeed> {
        Some(ChangeFeed::new(self.clone()))
    }

    async fn try_hold(&self, key: &str) -> Result<Option<Lease>, StoreError> {
        let (client, conn) = self.session("umbra lease").await?;
        let lost = CancellationToken::new();
        let ended = lost.clone();
        let what = key.to_string();
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(lease = %what, error = %e, "lease session ended");
            }
            ended.cancel();
        });
        let schema: Option<String> = client
            .query_one("SELECT current_schema()", &[])
            .await
            .map_err(StoreError::pg("read the lease's schema"))?
            .get(0);
        let id = lock_id(schema.as_deref().unwrap_or(""), key);
        let row = client
            .query_one("SELECT pg_try_advisory_lock($1), pg_backend_pid()", &[&id])
            .await
            .map_err(StoreError::pg("try an advisory lock"))?;
        let (got, pid): (bool, i32) = (row.get(0), row.get(1));
        // Not granted: the client drops here and its session closes.
        Ok(got.then(|| Lease::postgres(key, client, pid, lost)))
    }

    async fn put_route(&self, r: &StoredRoute) -> Result<(), StoreError> {
        let doc = encode_json("route doc", &r.doc)?;
        let client = self.client().await?;
        let st = client
            .prepare_cached(
                "INSERT INTO routes (name, kind, doc, updated_at) \
                 VALUES ($1, $2, $3::text::jsonb, $4) \
                 ON CONFLICT (name) DO UPDATE SET kind = excluded.kind, doc = excluded.doc, \
                 updated_at = excluded.updated_at",
            )
            .await
            .map_err(StoreError::pg("prepare put route"))?;
        client
            .execute(
                &st,
                &[
                    &pg_text(&r.name),
                    &pg_text(&r.kind),
                    &jsonb_text(&doc),
                    &ms_to_time(r.updated_at_ms),
                ],
            )
            .await
            .map_err(StoreError::pg("put route"))?;
        Ok(())
    }

    async fn put_rollout(&self, route: &str, doc: &serde_json::Value) -> Result<(), StoreError> {
        let doc = encode_json("rollout doc", doc)?;
        let client = self.client().await?;
        client
            .execute(
                "INSERT INTO rollouts (route, doc, updated_at) VALUES ($1, $2::text::jsonb, now()) \
                 ON CONFLICT (route) DO UPDATE SET doc = excluded.doc, updated_at = excluded.updated_at",
                &[&pg_text(route), &jsonb_text(&doc)],
            )
            .await
            .map_err(StoreError::pg("put rollout"))?;
        Ok(())
    }

    async fn list_rollouts(&self) -> Result<Vec<(String, serde_json::Value)>, StoreError> {
        let client = self.client().await?;
        client
            .query("SELECT route, doc::text FROM rollouts ORDER BY route", &[])
            .await
            .map_err(StoreError::pg("list rollouts"))?
            .iter()
            .map(|r| {
                const OP: &str = "read rollouts";
                let doc: String = col(r, 1, OP)?;
                Ok((col(r, 0, OP)?, decode_json("rollout doc", &doc)?))
            })
            .collect()
    }

    async fn delete_route(&self, name: &str) -> Result<bool, StoreError> {
        let client = self.client().await?;
        let n = client
            .execute("DELETE FROM routes WHERE name = $1", &[&name])
            .await
            .map_err(StoreError::pg("delete route"))?;
        Ok(n > 0)
    }

    async fn list_routes(&self) -> Result<Vec<StoredRoute>, StoreError> {
        let client = self.client().await?;
        read_routes(&client, None).await
    }

    async fn append_event(&self, e: &NewEvent) -> Result<i64, StoreError> {
        let detail = encode_json("event detail", &e.detail)?;
        let client = self.client().await?;
        let st = client
            .prepare_cached(
                "INSERT INTO events (created_at, kind, route, source, actor, detail) \
                 VALUES ($1, $2, $3, $4, $5, $6::text::jsonb) RETURNING id",
            )
            .await
            .map_err(StoreError::pg("prepare append event"))?;
        let row = client
            .query_one(
                &st,
                &[
                    &ms_to_time(now_ms()),
                    &pg_text(&e.kind),
                    &e.route.as_deref().map(pg_text),
                    &pg_text(&e.source),
                    &e.actor.as_deref().map(pg_text),
                    &jsonb_text(&detail),
                ],
            )
            .await
            .map_err(StoreError::pg("append event"))?;
        col(&row, 0, "append event")
    }

    async fn list_events(&self, limit: u32, before: Option<i64>) -> Result<Vec<Event>, StoreError> {
        let limit = i64::from(limit.clamp(1, MAX_LIST_LIMIT));
        let before = before.unwrap_or(i64::MAX);
        let client = self.client().await?;
        let st = client
            .prepare_cached(
                "SELECT id, created_at, kind, route, source, actor, detail::text FROM events \
                 WHERE id < $1 ORDER BY id DESC LIMIT $2",
            )
            .await
            .map_err(StoreError::pg("prepare list events"))?;
        client
            .query(&st, &[&before, &limit])
            .await
            .map_err(StoreError::pg("list events"))?
            .iter()
            .map(|r| {
                const OP: &str = "read events";
                let detail: String = col(r, 6, OP)?;
                Ok(Event {
                    id: col(r, 0, OP)?,
                    created_at_ms: time_to_ms(col(r, 1, OP)?),
                    kind: col(r, 2, OP)?,
                    route: col(r, 3, OP)?,
                    source: col(r, 4, OP)?,
                    actor: col(r, 5, OP)?,
                    detail: decode_json("event detail", &detail)?,
                })
            })
            .collect()
    }

    async fn add_ignore(
        &self,
        route: &str,
        endpoint: Option<&str>,
        path: &str,
        kind: Option<DiffKind>,
    ) -> Result<i64, StoreError> {
        let kind = kind.map(DiffKind::as_str);
        let (route, endpoint, path) = (pg_text(route), endpoint.map(pg_text), pg_text(path));
        let client = self.client().await?;
        let insert = client
            .prepare_cached(
                "INSERT INTO ignore_rules (created_at, route, endpoint, path, kind) \
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING RETURNING id",
            )
            .await
            .map_err(StoreError::pg("prepare add ignore rule"))?;
        let find = client
            .prepare_cached(
                "SELECT id FROM ignore_rules WHERE route = $1 AND COALESCE(endpoint, '') = \
                 COALESCE($2, '') AND path = $3 AND COALESCE(kind, '') = COALESCE($4, '')",
            )
            .await
            .map_err(StoreError::pg("prepare find ignore rule"))?;
        // Insert, or find the rule that is already there; retry if it vanished in between.
        let mut attempts = 0;
        loop {
            let inserted = client
                .query_opt(
                    &insert,
                    &[&ms_to_time(now_ms()), &route, &endpoint, &path, &kind],
                )
                .await
                .map_err(StoreError::pg("add ignore rule"))?;
            let row = match inserted {
                Some(row) => Some(row),
                None => client
                    .query_opt(&find, &[&route, &endpoint, &path, &kind])
                    .await
                    .map_err(StoreError::pg("find ignore rule"))?,
            };
            attempts += 1;
            match row {
                Some(row) => return col(&row, 0, "add ignore rule"),
                None if attempts < 3 => continue,
                None => {
                    return Err(StoreError::BadValue {
                        column: "ignore_rules.id",
                        value: "rule vanished while being added".into(),
                    })
                }
            }
        }
    }

    async fn list_ignores(&self, route: &str) -> Result<Vec<IgnoreRule>, StoreError> {
        let client = self.client().await?;
        client
            .query(
                "SELECT id, created_at, route, endpoint, path, kind FROM ignore_rules \
                 WHERE route = $1 ORDER BY id",
                &[&route],
            )
            .await
            .map_err(StoreError::pg("list ignore rules"))?
            .iter()
            .map(|r| {
                const OP: &str = "read ignore rules";
                let kind: Option<String> = col(r, 5, OP)?;
                Ok(IgnoreRule {
                    id: col(r, 0, OP)?,
                    created_at_ms: time_to_ms(col(r, 1, OP)?),
                    route: col(r, 2, OP)?,
                    endpoint: col(r, 3, OP)?,
                    path: col(r, 4, OP)?,
                    kind: kind.as_deref().map(parse_kind).transpose()?,
                })
            })
            .collect()
    }

    async fn delete_ignore(&self, id: i64) -> Result<bool, StoreError> {
        let client = self.client().await?;
        let n = client
            .execute("DELETE FROM ignore_rules WHERE id = $1", &[&id])
            .await
            .map_err(StoreError::pg("delete ignore rule"))?;
        Ok(n > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_conversions_roundtrip() {
        for ms in [0, 1, -1, 1_795_442_400_123, -86_400_001] {
            assert_eq!(time_to_ms(ms_to_time(ms)), ms);
        }
    }

    #[test]
    fn scrubs_nul_for_postgres() {
        assert_eq!(pg_text("a\0b"), "a\u{fffd}b");
        assert!(matches!(pg_text("ab"), Cow::Borrowed(_)));
        assert_eq!(
            jsonb_text(r#"{"k\u0000":["x\u0000"],"e":"\\u0000"}"#),
            "{\"k\u{fffd}\":[\"x\u{fffd}\"],\"e\":\"\\\\u0000\"}"
        );
        assert!(matches!(jsonb_text(r#"{"a":1}"#), Cow::Borrowed(_)));
    }
}
