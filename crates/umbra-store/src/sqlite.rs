//! The embedded SQLite backend (the default): one file in WAL mode, `synchronous=NORMAL`, a
//! single writer connection plus a few reader connections so the admin UI's reads never wait
//! behind a write batch. Every SQLite call runs on tokio's blocking pool. Control-plane side.
//!
//! Times are ISO-8601 UTC text with milliseconds (`2026-11-23T14:00:00.123Z`): readable in the
//! `sqlite3` shell and ordered like the instants they name. `sqlite::memory:` gives a private
//! in-memory database on one connection (reads and writes share it), for demos and tests.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use rusqlite::{params, Connection, OpenFlags, OptionalExtension, Row, TransactionBehavior};
use umbra_diff::{Comparison, DiffKind};

use crate::encode::{
    self, decode_json, encode_batch, encode_json, iso_to_ms, ms_to_iso, now_ms, parse_kind,
    parse_verdict, AggregateDelta, StoredRow,
};
use crate::lease::{Lease, LocalLeases};
use crate::types::*;
use crate::{ComparisonStore, StoreError, RETENTION_BATCH};

const READERS: usize = 2;
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Versioned migrations, applied in order; never edit one that has shipped, add a new one.
const MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "initial schema",
        r#"
CREATE TABLE comparisons (
    id                 INTEGER PRIMARY KEY AUTOINCREMENT,
    created_at         TEXT    NOT NULL,
    route              TEXT    NOT NULL,
    endpoint           TEXT    NOT NULL,
    method             TEXT    NOT NULL,
    uri                TEXT    NOT NULL,
    request_id         TEXT    NOT NULL,
    verdict            TEXT    NOT NULL
        CHECK (verdict IN ('same', 'different', 'noise', 'shadow_error')),
    primary_status     INTEGER NOT NULL,
    shadow_status      INTEGER,
    primary_latency_us INTEGER NOT NULL,
    shadow_latency_us  INTEGER,
    difference_count   INTEGER NOT NULL,
    differences        TEXT    NOT NULL,
    detail             TEXT
);
CREATE INDEX comparisons_route_id ON comparisons (route, id);
CREATE INDEX comparisons_route_verdict_id ON comparisons (route, verdict, id);
CREATE INDEX comparisons_route_endpoint_id ON comparisons (route, endpoint, id);
CREATE INDEX comparisons_created_at ON comparisons (created_at);

CREATE TABLE endpoint_stats (
    route        TEXT    NOT NULL,
    endpoint     TEXT    NOT NULL,
    total        INTEGER NOT NULL DEFAULT 0,
    noise_total  INTEGER NOT NULL DEFAULT 0,
    same         INTEGER NOT NULL DEFAULT 0,
    different    INTEGER NOT NULL DEFAULT 0,
    noise        INTEGER NOT NULL DEFAULT 0,
    shadow_error INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (route, endpoint)
);

CREATE TABLE field_stats (
    route       TEXT    NOT NULL,
    endpoint    TEXT    NOT NULL,
    path        TEXT    NOT NULL,
    kind        TEXT    NOT NULL,
    count       INTEGER NOT NULL DEFAULT 0,
    noise_count INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (route, endpoint, path, kind)
);

CREATE TABLE routes (
    name       TEXT PRIMARY KEY,
    kind       TEXT NOT NULL,
    doc        TEXT NOT NULL,
    updated_at TEXT NOT NULL
);

CREATE TABLE events (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    created_at TEXT NOT NULL,
    kind       TEXT NOT NULL,
    route      TEXT,
    source     TEXT NOT NULL,
    actor      TEXT,
    detail     TEXT NOT NULL
);
CREATE INDEX events_created_at ON events (created_at);

CREATE TABLE ignore_rules (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    created_at TEXT NOT NULL,
    route      TEXT NOT NULL,
    endpoint   TEXT,
    path       TEXT NOT NULL,
    kind       TEXT
);
CREATE UNIQUE INDEX ignore_rules_unique
    ON ignore_rules (route, COALESCE(endpoint, ''), path, COALESCE(kind, ''));
"#,
    ),
    (
        2,
        "verdict check without an IN list",
        // SQLite evaluates `CHECK (verdict IN (...))` by building a temporary b-tree of the
        // list on every INSERT; that was a quarter of the cost of storing a comparison. The
        // same rule as a chain of `=` costs a few comparisons. A CHECK can only change by
        // rebuilding the table; ids and the AUTOINCREMENT sequence are kept.
        r#"
CREATE TABLE comparisons_new (
    id                 INTEGER PRIMARY KEY AUTOINCREMENT,
    created_at         TEXT    NOT NULL,
    route              TEXT    NOT NULL,
    endpoint           TEXT    NOT NULL,
    method             TEXT    NOT NULL,
    uri                TEXT    NOT NULL,
    request_id         TEXT    NOT NULL,
    verdict            TEXT    NOT NULL
        CHECK (verdict = 'same' OR verdict = 'different' OR verdict = 'noise'
               OR verdict = 'shadow_error'),
    primary_status     INTEGER NOT NULL,
    shadow_status      INTEGER,
    primary_latency_us INTEGER NOT NULL,
    shadow_latency_us  INTEGER,
    difference_count   INTEGER NOT NULL,
    differences        TEXT    NOT NULL,
    detail             TEXT
);
INSERT INTO comparisons_new SELECT * FROM comparisons;
DELETE FROM sqlite_sequence WHERE name = 'comparisons_new';
INSERT INTO sqlite_sequence (name, seq)
    SELECT 'comparisons_new', seq FROM sqlite_sequence WHERE name = 'comparisons';
DROP TABLE comparisons;
ALTER TABLE comparisons_new RENAME TO comparisons;
CREATE INDEX comparisons_route_id ON comparisons (route, id);
CREATE INDEX comparisons_route_verdict_id ON comparisons (route, verdict, id);
CREATE INDEX comparisons_route_endpoint_id ON comparisons (route, endpoint, id);
CREATE INDEX comparisons_created_at ON comparisons (created_at);
"#,
    ),
    (
        3,
        "findings: candidate, noise sample and cause tags",
        // `comparison_causes` answers "the comparisons of finding X" from its primary key;
        // the trigger keeps it in step with retention's deletes.
        r#"
ALTER TABLE comparisons ADD COLUMN candidate TEXT NOT NULL DEFAULT '';
ALTER TABLE comparisons ADD COLUMN noise TEXT;
CREATE TABLE comparison_causes (
    cause         TEXT    NOT NULL,
    comparison_id INTEGER NOT NULL,
    PRIMARY KEY (cause, comparison_id)
) WITHOUT ROWID;
CREATE INDEX comparison_causes_comparison ON comparison_causes (comparison_id);
CREATE TRIGGER comparison_causes_follow_deletes AFTER DELETE ON comparisons BEGIN
    DELETE FROM comparison_causes WHERE comparison_id = old.id;
END;
"#,
    ),
    (
        4,
        "rollouts",
        r#"
CREATE TABLE rollouts (
    route      TEXT PRIMARY KEY,
    doc        TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
"#,
    ),
];

/// The SQLite store. Cheap to clone; all clones share the connections.
#[derive(Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
}

struct Inner {
    writer: Mutex<Connection>,
    /// Empty for in-memory databases: reads then use the writer.
    readers: Vec<Mutex<Connection>>,
    next_reader: AtomicUsize,
    /// Leases held in this process (one process uses a SQLite file).
    leases: LocalLeases,
}

enum Target {
    Memory,
    File(PathBuf),
}

fn parse_target(url: &str) -> Result<Target, StoreError> {
    let rest = if let Some(r) = strip_prefix_ci(url, "sqlite://") {
        r
    } else if let Some(r) = strip_prefix_ci(url, "sqlite:") {
        r
    } else {
        url
    };
    if rest == ":memory:" || rest == "memory:" {
        return Ok(Target::Memory);
    }
    if rest.is_empty() {
        return Err(StoreError::InvalidUrl {
            url: url.to_owned(),
            reason: "no database file named",
        });
    }
    Ok(Target::File(PathBuf::from(rest)))
}

fn strip_prefix_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &s[prefix.len()..])
}

fn lock(m: &Mutex<Connection>) -> MutexGuard<'_, Connection> {
    // A panic inside a call leaves no open transaction behind (rusqlite rolls back on drop),
    // so a poisoned connection is still usable.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl SqliteStore {
    /// Opens (creating if needed) the database a `sqlite:` URL or plain path names, and brings
    /// its schema up to date. See [`crate::open`] for the accepted forms.
    pub async fn open(path_or_url: &str) -> Result<Self, StoreError> {
        let url = path_or_url.to_owned();
        let res = async {
            let target = parse_target(&url)?;
            tokio::task::spawn_blocking(move || Self::open_blocking(target))
                .await
                .map_err(StoreError::Worker)?
        }
        .await;
        res.map_err(|source| StoreError::Open {
            url: encode::mask_url(path_or_url),
            source: Box::new(source),
        })
    }

    fn open_blocking(target: Target) -> Result<Self, StoreError> {
        let (writer, readers) = match target {
            Target::Memory => {
                let conn =
                    Connection::open_in_memory().map_err(StoreError::sqlite("open in-memory"))?;
                configure(&conn)?;
                migrate(&conn)?;
                (conn, Vec::new())
            }
            Target::File(path) => {
                if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir).map_err(|source| StoreError::CreateDir {
                        path: dir.to_owned(),
                        source,
                    })?;
                }
                let writer = open_file(&path, false)?;
                writer
                    .pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get::<_, String>(0))
                    .map_err(StoreError::sqlite("enable WAL"))?;
                migrate(&writer)?;
                let readers = (0..READERS)
                    .map(|_| open_file(&path, true).map(Mutex::new))
                    .collect::<Result<Vec<_>, _>>()?;
                (writer, readers)
            }
        };
        Ok(SqliteStore {
            inner: Arc::new(Inner {
                writer: Mutex::new(writer),
                readers,
                next_reader: AtomicUsize::new(0),
                leases: LocalLeases::default(),
            }),
        })
    }

    async fn with_writer<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || f(&mut lock(&inner.writer)))
            .await
            .map_err(StoreError::Worker)?
    }

    async fn with_reader<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            if inner.readers.is_empty() {
                return f(&lock(&inner.writer));
            }
            // Take a free reader if there is one, else queue on the next in turn.
            for r in &inner.readers {
                if let Ok(conn) = r.try_lock() {
                    return f(&conn);
                }
            }
            let i = inner.next_reader.fetch_add(1, Ordering::Relaxed) % inner.readers.len();
            f(&lock(&inner.readers[i]))
        })
        .await
        .map_err(StoreError::Worker)?
    }
}

fn open_file(path: &Path, read_only: bool) -> Result<Connection, StoreError> {
    let mut flags = OpenFlags::SQLITE_OPEN_NO_MUTEX;
    flags |= if read_only {
        OpenFlags::SQLITE_OPEN_READ_ONLY
    } else {
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE
    };
    let conn = Connection::open_with_flags(path, flags).map_err(StoreError::sqlite("open file"))?;
    configure(&conn)?;
    Ok(conn)
}

fn configure(conn: &Connection) -> Result<(), StoreError> {
    conn.busy_timeout(BUSY_TIMEOUT)
        .map_err(StoreError::sqlite("set busy_timeout"))?;
    conn.pragma_update(None, "synchronous", "NORMAL")
        .map_err(StoreError::sqlite("set synchronous"))?;
    conn.set_prepared_statement_cache_capacity(64);
    Ok(())
}

/// Applies the missing migrations, each in its own `BEGIN IMMEDIATE` transaction so two
/// processes opening one file at once serialize on SQLite's write lock.
fn migrate(conn: &Connection) -> Result<(), StoreError> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
             version    INTEGER PRIMARY KEY,
             applied_at TEXT NOT NULL
         )",
    )
    .map_err(StoreError::sqlite("create schema_migrations"))?;
    for &(version, name, sql) in MIGRATIONS {
        let apply = || -> Result<(), StoreError> {
            conn.execute_batch("BEGIN IMMEDIATE")
                .map_err(StoreError::sqlite("begin migration"))?;
            let res = (|| {
                let done: Option<i64> = conn
                    .query_row(
                        "SELECT version FROM schema_migrations WHERE version = ?1",
                        [version],
                        |r| r.get(0),
                    )
                    .optional()
                    .map_err(StoreError::sqlite("read schema_migrations"))?;
                if done.is_none() {
                    conn.execute_batch(sql)
                        .map_err(StoreError::sqlite("apply migration"))?;
                    conn.execute(
                        "INSERT INTO schema_migrations (version, applied_at) VALUES (?1, ?2)",
                        params![version, ms_to_iso(now_ms())],
                    )
                    .map_err(StoreError::sqlite("record migration"))?;
                }
                Ok(())
            })();
            match res {
                Ok(()) => conn
                    .execute_batch("COMMIT")
                    .map_err(StoreError::sqlite("commit migration")),
                Err(e) => {
                    let _ = conn.execute_batch("ROLLBACK");
                    Err(e)
                }
            }
        };
        apply().map_err(|source| StoreError::Migration {
            version,
            name,
            source: Box::new(source),
        })?;
    }
    let newest: Option<i64> = conn
        .query_row("SELECT MAX(version) FROM schema_migrations", [], |r| {
            r.get(0)
        })
        .map_err(StoreError::sqlite("read schema_migrations"))?;
    let known = MIGRATIONS.last().map(|m| m.0).unwrap_or(0);
    if newest.unwrap_or(0) > known {
        tracing::warn!(
            found = newest,
            known,
            "the SQLite store was migrated by a newer umbra; continuing with the known schema"
        );
    }
    Ok(())
}

const SUMMARY_COLUMNS: &str = "id, created_at, route, endpoint, method, uri, request_id, verdict, \
     primary_status, shadow_status, primary_latency_us, shadow_latency_us, difference_count, \
     detail IS NOT NULL, candidate";

/// Reads the `SUMMARY_COLUMNS` of a row. Errors of conversion are returned in the outer result
/// so rusqlite's own error type does not have to carry them.
fn summary(r: &Row<'_>) -> rusqlite::Result<Result<ComparisonSummary, StoreError>> {
    let created_at: String = r.get(1)?;
    let verdict: String = r.get(7)?;
    let primary_status: i64 = r.get(8)?;
    let shadow_status: Option<i64> = r.get(9)?;
    let primary_latency: i64 = r.get(10)?;
    let shadow_latency: Option<i64> = r.get(11)?;
    let difference_count: i64 = r.get(12)?;
    let id: i64 = r.get(0)?;
    let route: String = r.get(2)?;
    let endpoint: String = r.get(3)?;
    let method: String = r.get(4)?;
    let uri: String = r.get(5)?;
    let request_id: String = r.get(6)?;
    let full: bool = r.get(13)?;
    let candidate: String = r.get(14)?;
    Ok((|| {
        Ok(ComparisonSummary {
            id,
            created_at_ms: iso_to_ms("created_at", &created_at)?,
            route,
            candidate,
            endpoint,
            method,
            uri,
            request_id,
            verdict: parse_verdict(&verdict)?,
            primary_status: encode::status("primary_status", primary_status)?,
            shadow_status: shadow_status
                .map(|s| encode::status("shadow_status", s))
                .transpose()?,
            primary_latency_us: encode::unsigned("primary_latency_us", primary_latency)?,
            shadow_latency_us: shadow_latency
                .map(|s| encode::unsigned("shadow_latency_us", s))
                .transpose()?,
            difference_count: u32::try_from(difference_count).map_err(|_| {
                StoreError::BadValue {
                    column: "difference_count",
                    value: difference_count.to_string(),
                }
            })?,
            full,
        })
    })())
}

fn write_rows(
    conn: &mut Connection,
    rows: Vec<encode::NewRow>,
    delta: AggregateDelta,
) -> Result<Vec<i64>, StoreError> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(StoreError::sqlite("begin write_batch"))?;
    let mut ids = Vec::with_capacity(rows.len());
    {
        let mut insert = tx
            .prepare_cached(
                "INSERT INTO comparisons (created_at, route, endpoint, method, uri, request_id, \
                 verdict, primary_status, shadow_status, primary_latency_us, shadow_latency_us, \
                 difference_count, differences, detail, candidate, noise) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)",
            )
            .map_err(StoreError::sqlite("prepare insert comparison"))?;
        for row in &rows {
            insert
                .execute(params![
                    ms_to_iso(row.created_at_ms),
                    row.route,
                    row.endpoint,
                    row.method,
                    row.uri,
                    row.request_id,
                    row.verdict,
                    row.primary_status,
                    row.shadow_status,
                    row.primary_latency_us,
                    row.shadow_latency_us,
                    row.difference_count,
                    row.differences,
                    row.detail,
                    row.candidate,
                    row.noise,
                ])
                .map_err(StoreError::sqlite("insert comparison"))?;
            ids.push(tx.last_insert_rowid());
        }
        let mut tag = tx
            .prepare_cached(
                "INSERT OR IGNORE INTO comparison_causes (cause, comparison_id) VALUES (?1, ?2)",
            )
            .map_err(StoreError::sqlite("prepare insert cause"))?;
        for (row, id) in rows.iter().zip(&ids) {
            for cause in &row.causes {
                tag.execute(params![cause, id])
                    .map_err(StoreError::sqlite("insert cause"))?;
            }
        }
        let mut ep = tx
            .prepare_cached(
                "INSERT INTO endpoint_stats (route, endpoint, total, noise_total, same, different, \
                 noise, shadow_error) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) \
                 ON CONFLICT (route, endpoint) DO UPDATE SET \
                 total = endpoint_stats.total + excluded.total, \
                 noise_total = endpoint_stats.noise_total + excluded.noise_total, \
                 same = endpoint_stats.same + excluded.same, \
                 different = endpoint_stats.different + excluded.different, \
                 noise = endpoint_stats.noise + excluded.noise, \
                 shadow_error = endpoint_stats.shadow_error + excluded.shadow_error",
            )
            .map_err(StoreError::sqlite("prepare endpoint_stats upsert"))?;
        for ((route, endpoint), t) in &delta.endpoints {
            ep.execute(params![
                route,
                endpoint,
                t.total as i64,
                t.noise_total as i64,
                t.same as i64,
                t.different as i64,
                t.noise as i64,
                t.shadow_error as i64,
            ])
            .map_err(StoreError::sqlite("update endpoint_stats"))?;
        }
        let mut field = tx
            .prepare_cached(
                "INSERT INTO field_stats (route, endpoint, path, kind, count, noise_count) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6) \
                 ON CONFLICT (route, endpoint, path, kind) DO UPDATE SET \
                 count = field_stats.count + excluded.count, \
                 noise_count = field_stats.noise_count + excluded.noise_count",
            )
            .map_err(StoreError::sqlite("prepare field_stats upsert"))?;
        for ((route, endpoint, path, kind), (count, noise)) in &delta.fields {
            field
                .execute(params![
                    route,
                    endpoint,
                    path,
                    kind.as_str(),
                    *count as i64,
                    *noise as i64
                ])
                .map_err(StoreError::sqlite("update field_stats"))?;
        }
    }
    tx.commit()
        .map_err(StoreError::sqlite("commit write_batch"))?;
    Ok(ids)
}

#[async_trait]
impl ComparisonStore for SqliteStore {
    fn kind(&self) -> &'static str {
        "sqlite"
    }

    async fn try_hold(&self, key: &str) -> Result<Option<Lease>, StoreError> {
        Ok(self.inner.leases.try_hold(key))
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.with_reader(|c| {
            c.query_row("SELECT 1", [], |r| r.get::<_, i64>(0))
                .map_err(StoreError::sqlite("ping"))?;
            Ok(())
        })
        .await
    }

    async fn write_batch(
        &self,
        full: &[Comparison],
        counted_only: &[Comparison],
    ) -> Result<Vec<i64>, StoreError> {
        if full.is_empty() && counted_only.is_empty() {
            return Ok(Vec::new());
        }
        let rows = encode_batch(full, counted_only)?;
        let delta = AggregateDelta::of(full.iter().chain(counted_only));
        self.with_writer(move |c| write_rows(c, rows, delta)).await
    }

    async fn get(&self, id: i64) -> Result<Option<Comparison>, StoreError> {
        self.with_reader(move |c| {
            let sql = format!(
                "SELECT {SUMMARY_COLUMNS}, differences, detail FROM comparisons WHERE id = ?1"
            );
            let mut st = c
                .prepare_cached(&sql)
                .map_err(StoreError::sqlite("prepare get"))?;
            let row = st
                .query_row([id], |r| {
                    Ok((
                        summary(r)?,
                        r.get::<_, String>(15)?,
                        r.get::<_, Option<String>>(16)?,
                    ))
                })
                .optional()
                .map_err(StoreError::sqlite("get comparison"))?;
            match row {
                None => Ok(None),
                Some((summary, differences, detail)) => StoredRow {
                    summary: summary?,
                    differences,
                    detail,
                }
                .into_comparison()
                .map(Some),
            }
        })
        .await
    }

    async fn list(&self, q: &ListQuery) -> Result<Page, StoreError> {
        let q = q.clone();
        self.with_reader(move |c| {
            let limit = q.clamped_limit();
            // A finding's comparisons come from its tags' primary key, newest first.
            let (from, order) = match q.finding {
                Some(_) => (
                    "comparison_causes JOIN comparisons ON comparisons.id = comparison_id",
                    "comparison_id",
                ),
                None => ("comparisons", "id"),
            };
            let mut sql = format!("SELECT {SUMMARY_COLUMNS} FROM {from}");
            let mut args: Vec<rusqlite::types::Value> = Vec::new();
            let mut conds: Vec<String> = Vec::new();
            let mut add = |col: &str, v: rusqlite::types::Value, op: &str| {
                args.push(v);
                conds.push(format!("{col} {op} ?{}", args.len()));
            };
            if let Some(f) = &q.finding {
                add("cause", f.clone().into(), "=");
            }
            if let Some(r) = &q.route {
                add("route", r.clone().into(), "=");
            }
            if let Some(v) = q.verdict {
                add("verdict", v.as_str().to_owned().into(), "=");
            }
            if let Some(e) = &q.endpoint {
                add("endpoint", e.clone().into(), "=");
            }
            if let Some(b) = q.before {
                add(order, b.into(), "<");
            }
            if !conds.is_empty() {
                sql.push_str(" WHERE ");
                sql.push_str(&conds.join(" AND "));
            }
            args.push(i64::from(limit + 1).into());
            sql.push_str(&format!(" ORDER BY {order} DESC LIMIT ?{}", args.len()));
            let mut st = c
                .prepare_cached(&sql)
                .map_err(StoreError::sqlite("prepare list"))?;
            let mut items = st
                .query_map(rusqlite::params_from_iter(args), summary)
                .map_err(StoreError::sqlite("list comparisons"))?
                .map(|r| r.map_err(StoreError::sqlite("list comparisons"))?)
                .collect::<Result<Vec<_>, _>>()?;
            let next = if items.len() > limit as usize {
                items.truncate(limit as usize);
                items.last().map(|s| s.id)
            } else {
                None
            };
            Ok(Page { items, next })
        })
        .await
    }

    async fn replay(
        &self,
        after: i64,
        upto: i64,
        limit: u32,
    ) -> Result<Vec<Comparison>, StoreError> {
        self.with_reader(move |c| {
            let sql = format!(
                "SELECT {SUMMARY_COLUMNS}, differences, noise FROM comparisons \
                 WHERE id > ?1 AND id <= ?2 ORDER BY id LIMIT ?3"
            );
            let mut st = c
                .prepare_cached(&sql)
                .map_err(StoreError::sqlite("prepare replay"))?;
            let limit = i64::from(limit.clamp(1, MAX_REPLAY_LIMIT));
            let rows = st
                .query_map(params![after, upto, limit], |r| {
                    Ok((
                        summary(r)?,
                        r.get::<_, String>(15)?,
                        r.get::<_, Option<String>>(16)?,
                    ))
                })
                .map_err(StoreError::sqlite("replay comparisons"))?;
            let mut out = Vec::new();
            for row in rows {
                let (summary, differences, noise) =
                    row.map_err(StoreError::sqlite("replay comparisons"))?;
                out.push(encode::replayed(summary?, differences, noise)?);
            }
            Ok(out)
        })
        .await
    }

    async fn route_stats(&self, route: &str) -> Result<Vec<EndpointStats>, StoreError> {
        let route = route.to_owned();
        self.with_reader(move |c| {
            let mut st = c
                .prepare_cached(
                    "SELECT endpoint, total, noise_total, same, different, noise, shadow_error \
                     FROM endpoint_stats WHERE route = ?1 ORDER BY total DESC, endpoint",
                )
                .map_err(StoreError::sqlite("prepare route_stats"))?;
            let mut endpoints = st
                .query_map([&route], |r| {
                    Ok(EndpointStats {
                        endpoint: r.get(0)?,
                        totals: Totals {
                            total: r.get::<_, i64>(1)? as u64,
                            noise_total: r.get::<_, i64>(2)? as u64,
                            same: r.get::<_, i64>(3)? as u64,
                            different: r.get::<_, i64>(4)? as u64,
                            noise: r.get::<_, i64>(5)? as u64,
                            shadow_error: r.get::<_, i64>(6)? as u64,
                        },
                        fields: Vec::new(),
                    })
                })
                .map_err(StoreError::sqlite("read endpoint_stats"))?
                .collect::<Result<Vec<_>, _>>()
                .map_err(StoreError::sqlite("read endpoint_stats"))?;
            let mut st = c
                .prepare_cached(
                    "SELECT endpoint, path, kind, count, noise_count FROM field_stats \
                     WHERE route = ?1 ORDER BY endpoint, count DESC, noise_count DESC, path, kind",
                )
                .map_err(StoreError::sqlite("prepare field_stats"))?;
            let fields = st
                .query_map([&route], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, i64>(3)?,
                        r.get::<_, i64>(4)?,
                    ))
                })
                .map_err(StoreError::sqlite("read field_stats"))?
                .collect::<Result<Vec<_>, _>>()
                .map_err(StoreError::sqlite("read field_stats"))?;
            for (endpoint, path, kind, count, noise_count) in fields {
                let field = FieldCount {
                    path,
                    kind: parse_kind(&kind)?,
                    count: count as u64,
                    noise_count: noise_count as u64,
                };
                if let Some(e) = endpoints.iter_mut().find(|e| e.endpoint == endpoint) {
                    e.fields.push(field);
                }
            }
            Ok(endpoints)
        })
        .await
    }

    async fn routes_with_stats(&self) -> Result<Vec<RouteStats>, StoreError> {
        self.with_reader(|c| {
            let mut st = c
                .prepare_cached(
                    "SELECT route, SUM(total), SUM(noise_total), SUM(same), SUM(different), \
                     SUM(noise), SUM(shadow_error) FROM endpoint_stats GROUP BY route ORDER BY route",
                )
                .map_err(StoreError::sqlite("prepare routes_with_stats"))?;
            let rows = st
                .query_map([], |r| {
                    Ok(RouteStats {
                        route: r.get(0)?,
                        totals: Totals {
                            total: r.get::<_, i64>(1)? as u64,
                            noise_total: r.get::<_, i64>(2)? as u64,
                            same: r.get::<_, i64>(3)? as u64,
                            different: r.get::<_, i64>(4)? as u64,
                            noise: r.get::<_, i64>(5)? as u64,
                            shadow_error: r.get::<_, i64>(6)? as u64,
                        },
                    })
                })
                .map_err(StoreError::sqlite("read routes_with_stats"))?
                .collect::<Result<Vec<_>, _>>()
                .map_err(StoreError::sqlite("read routes_with_stats"))?;
            Ok(rows)
        })
        .await
    }

    async fn latency_samples(
        &self,
        route: &str,
        endpoint: Option<&str>,
        limit: u32,
    ) -> Result<Vec<LatencySample>, StoreError> {
        let route = route.to_owned();
        let endpoint = endpoint.map(str::to_owned);
        let limit = i64::from(limit.clamp(1, MAX_SAMPLE_LIMIT));
        self.with_reader(move |c| {
            let sql = if endpoint.is_some() {
                "SELECT endpoint, primary_latency_us, shadow_latency_us, created_at FROM comparisons \
                 WHERE route = ?1 AND endpoint = ?3 ORDER BY id DESC LIMIT ?2"
            } else {
                "SELECT endpoint, primary_latency_us, shadow_latency_us, created_at FROM comparisons \
                 WHERE route = ?1 ORDER BY id DESC LIMIT ?2"
            };
            let mut st = c
                .prepare_cached(sql)
                .map_err(StoreError::sqlite("prepare latency_samples"))?;
            let map = |r: &Row<'_>| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, Option<i64>>(2)?,
                    r.get::<_, String>(3)?,
                ))
            };
            let rows = match &endpoint {
                Some(e) => st.query_map(params![route, limit, e], map),
                None => st.query_map(params![route, limit], map),
            }
            .map_err(StoreError::sqlite("read latency_samples"))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(StoreError::sqlite("read latency_samples"))?;
            rows.into_iter()
                .map(|(endpoint, p, s, at)| {
                    Ok(LatencySample {
                        endpoint,
                        primary_us: encode::unsigned("primary_latency_us", p)?,
                        shadow_us: s
                            .map(|s| encode::unsigned("shadow_latency_us", s))
                            .transpose()?,
                        created_at_ms: iso_to_ms("created_at", &at)?,
                    })
                })
                .collect()
        })
        .await
    }

    async fn delete_older_than(&self, cutoff_ms: i64) -> Result<u64, StoreError> {
        let cutoff = ms_to_iso(cutoff_ms);
        let mut deleted = 0u64;
        loop {
            let cutoff = cutoff.clone();
            let n = self
                .with_writer(move |c| {
                    c.prepare_cached(
                        "DELETE FROM comparisons WHERE id IN \
                         (SELECT id FROM comparisons WHERE created_at < ?1 LIMIT ?2)",
                    )
                    .and_then(|mut st| st.execute(params![cutoff, RETENTION_BATCH]))
                    .map_err(StoreError::sqlite("delete old comparisons"))
                })
                .await?;
            deleted += n as u64;
            if n < RETENTION_BATCH as usize {
                return Ok(deleted);
            }
            // Let queued write batches take the writer between two deletes.
            tokio::task::yield_now().await;
        }
    }

    async fn put_route(&self, r: &StoredRoute) -> Result<(), StoreError> {
        let doc = encode_json("route doc", &r.doc)?;
        let (name, kind, at) = (r.name.clone(), r.kind.clone(), ms_to_iso(r.updated_at_ms));
        self.with_writer(move |c| {
            c.prepare_cached(
                "INSERT INTO routes (name, kind, doc, updated_at) VALUES (?1, ?2, ?3, ?4) \
                 ON CONFLICT (name) DO UPDATE SET kind = excluded.kind, doc = excluded.doc, \
                 updated_at = excluded.updated_at",
            )
            .and_then(|mut st| st.execute(params![name, kind, doc, at]))
            .map_err(StoreError::sqlite("put route"))?;
            Ok(())
        })
        .await
    }

    async fn put_rollout(&self, route: &str, doc: &serde_json::Value) -> Result<(), StoreError> {
        let doc = encode_json("rollout doc", doc)?;
        let (route, at) = (route.to_owned(), ms_to_iso(now_ms()));
        self.with_writer(move |c| {
            c.prepare_cached(
                "INSERT INTO rollouts (route, doc, updated_at) VALUES (?1, ?2, ?3) \
                 ON CONFLICT (route) DO UPDATE SET doc = excluded.doc, updated_at = excluded.updated_at",
            )
            .and_then(|mut st| st.execute(params![route, doc, at]))
            .map_err(StoreError::sqlite("put rollout"))?;
            Ok(())
        })
        .await
    }

    async fn list_rollouts(&self) -> Result<Vec<(String, serde_json::Value)>, StoreError> {
        self.with_reader(|c| {
            let mut st = c
                .prepare_cached("SELECT route, doc FROM rollouts ORDER BY route")
                .map_err(StoreError::sqlite("prepare list rollouts"))?;
            let rows = st
                .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
                .map_err(StoreError::sqlite("list rollouts"))?
                .collect::<Result<Vec<_>, _>>()
                .map_err(StoreError::sqlite("list rollouts"))?;
            rows.into_iter()
                .map(|(route, doc)| Ok((route, decode_json("rollout doc", &doc)?)))
                .collect()
        })
        .await
    }

    async fn delete_route(&self, name: &str) -> Result<bool, StoreError> {
        let name = name.to_owned();
        self.with_writer(move |c| {
            c.execute("DELETE FROM routes WHERE name = ?1", [name])
                .map(|n| n > 0)
                .map_err(StoreError::sqlite("delete route"))
        })
        .await
    }

    async fn list_routes(&self) -> Result<Vec<StoredRoute>, StoreError> {
        self.with_reader(|c| {
            let mut st = c
                .prepare_cached("SELECT name, kind, doc, updated_at FROM routes ORDER BY name")
                .map_err(StoreError::sqlite("prepare list routes"))?;
            let rows = st
                .query_map([], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, String>(3)?,
                    ))
                })
                .map_err(StoreError::sqlite("list routes"))?
                .collect::<Result<Vec<_>, _>>()
                .map_err(StoreError::sqlite("list routes"))?;
            rows.into_iter()
                .map(|(name, kind, doc, at)| {
                    Ok(StoredRoute {
                        name,
                        kind,
                        doc: decode_json("route doc", &doc)?,
                        updated_at_ms: iso_to_ms("updated_at", &at)?,
                    })
                })
                .collect()
        })
        .await
    }

    async fn append_event(&self, e: &NewEvent) -> Result<i64, StoreError> {
        let detail = encode_json("event detail", &e.detail)?;
        let e = e.clone();
        self.with_writer(move |c| {
            c.prepare_cached(
                "INSERT INTO events (created_at, kind, route, source, actor, detail) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )
            .and_then(|mut st| {
                st.execute(params![
                    ms_to_iso(now_ms()),
                    e.kind,
                    e.route,
                    e.source,
                    e.actor,
                    detail
                ])
            })
            .map_err(StoreError::sqlite("append event"))?;
            Ok(c.last_insert_rowid())
        })
        .await
    }

    async fn list_events(&self, limit: u32, before: Option<i64>) -> Result<Vec<Event>, StoreError> {
        let limit = i64::from(limit.clamp(1, MAX_LIST_LIMIT));
        let before = before.unwrap_or(i64::MAX);
        self.with_reader(move |c| {
            let mut st = c
                .prepare_cached(
                    "SELECT id, created_at, kind, route, source, actor, detail FROM events \
                     WHERE id < ?1 ORDER BY id DESC LIMIT ?2",
                )
                .map_err(StoreError::sqlite("prepare list events"))?;
            let rows = st
                .query_map(params![before, limit], |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, Option<String>>(3)?,
                        r.get::<_, String>(4)?,
                        r.get::<_, Option<String>>(5)?,
                        r.get::<_, String>(6)?,
                    ))
                })
                .map_err(StoreError::sqlite("list events"))?
                .collect::<Result<Vec<_>, _>>()
                .map_err(StoreError::sqlite("list events"))?;
            rows.into_iter()
                .map(|(id, at, kind, route, source, actor, detail)| {
                    Ok(Event {
                        id,
                        created_at_ms: iso_to_ms("created_at", &at)?,
                        kind,
                        route,
                        source,
                        actor,
                        detail: decode_json("event detail", &detail)?,
                    })
                })
                .collect()
        })
        .await
    }

    async fn add_ignore(
        &self,
        route: &str,
        endpoint: Option<&str>,
        path: &str,
        kind: Option<DiffKind>,
    ) -> Result<i64, StoreError> {
        let (route, endpoint, path) = (
            route.to_owned(),
            endpoint.map(str::to_owned),
            path.to_owned(),
        );
        let kind = kind.map(DiffKind::as_str);
        self.with_writer(move |c| {
            let inserted = c
                .prepare_cached(
                    "INSERT INTO ignore_rules (created_at, route, endpoint, path, kind) \
                     VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT DO NOTHING",
                )
                .and_then(|mut st| {
                    st.execute(params![ms_to_iso(now_ms()), route, endpoint, path, kind])
                })
                .map_err(StoreError::sqlite("add ignore rule"))?;
            if inserted > 0 {
                return Ok(c.last_insert_rowid());
            }
            c.query_row(
                "SELECT id FROM ignore_rules WHERE route = ?1 AND COALESCE(endpoint, '') = \
                 COALESCE(?2, '') AND path = ?3 AND COALESCE(kind, '') = COALESCE(?4, '')",
                params![route, endpoint, path, kind],
                |r| r.get(0),
            )
            .map_err(StoreError::sqlite("find ignore rule"))
        })
        .await
    }

    async fn list_ignores(&self, route: &str) -> Result<Vec<IgnoreRule>, StoreError> {
        let route = route.to_owned();
        self.with_reader(move |c| {
            let mut st = c
                .prepare_cached(
                    "SELECT id, created_at, route, endpoint, path, kind FROM ignore_rules \
                     WHERE route = ?1 ORDER BY id",
                )
                .map_err(StoreError::sqlite("prepare list ignore rules"))?;
            let rows = st
                .query_map([route], |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, Option<String>>(3)?,
                        r.get::<_, String>(4)?,
                        r.get::<_, Option<String>>(5)?,
                    ))
                })
                .map_err(StoreError::sqlite("list ignore rules"))?
                .collect::<Result<Vec<_>, _>>()
                .map_err(StoreError::sqlite("list ignore rules"))?;
            rows.into_iter()
                .map(|(id, at, route, endpoint, path, kind)| {
                    Ok(IgnoreRule {
                        id,
                        route,
                        endpoint,
                        path,
                        kind: kind.as_deref().map(parse_kind).transpose()?,
                        created_at_ms: iso_to_ms("created_at", &at)?,
                    })
                })
                .collect()
        })
        .await
    }

    async fn delete_ignore(&self, id: i64) -> Result<bool, StoreError> {
        self.with_writer(move |c| {
            c.execute("DELETE FROM ignore_rules WHERE id = ?1", [id])
                .map(|n| n > 0)
                .map_err(StoreError::sqlite("delete ignore rule"))
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(conn: &Connection, sql: &str) -> String {
        let mut st = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
        st.query_map([], |r| r.get::<_, String>(3))
            .unwrap()
            .collect::<Result<Vec<_>, _>>()
            .unwrap()
            .join("; ")
    }

    #[test]
    fn list_queries_use_an_index() {
        let conn = Connection::open_in_memory().unwrap();
        migrate(&conn).unwrap();
        for (sql, index) in [
            (
                "SELECT id FROM comparisons WHERE route = 'a' AND id < 5 ORDER BY id DESC LIMIT 51",
                "comparisons_route_id",
            ),
            (
                "SELECT id FROM comparisons WHERE route = 'a' AND verdict = 'same' ORDER BY id DESC LIMIT 51",
                "comparisons_route_verdict_id",
            ),
            (
                "SELECT id FROM comparisons WHERE route = 'a' AND endpoint = 'GET /' ORDER BY id DESC LIMIT 51",
                "comparisons_route_endpoint_id",
            ),
            (
                "SELECT id FROM comparisons WHERE created_at < '2026' LIMIT 5000",
                "comparisons_created_at",
            ),
            (
                "SELECT id FROM comparison_causes JOIN comparisons ON comparisons.id = \
                 comparison_id WHERE cause = 'x' AND route = 'a' ORDER BY comparison_id DESC \
                 LIMIT 51",
                "PRIMARY KEY",
            ),
        ] {
            let p = plan(&conn, sql);
            assert!(p.contains(index), "{sql}: {p}");
            assert!(!p.contains("TEMP B-TREE"), "{sql} sorts: {p}");
        }
    }

    /// Opcodes of a statement's program.
    fn opcodes(conn: &Connection, sql: &str) -> Vec<String> {
        let mut st = conn.prepare(&format!("EXPLAIN {sql}")).unwrap();
        st.query_map([], |r| r.get::<_, String>(1))
            .unwrap()
            .collect::<Result<Vec<_>, _>>()
            .unwrap()
    }

    const INSERT_ONE: &str = "INSERT INTO comparisons (created_at, route, endpoint, method, \
        uri, request_id, verdict, primary_status, primary_latency_us, difference_count, \
        differences) VALUES ('2026-11-23T00:00:00.000Z', 'r', 'GET /', 'GET', '/', 'x', ?1, \
        200, 1, 0, '[]')";

    #[test]
    fn storing_a_comparison_builds_no_temporary_btree() {
        let conn = Connection::open_in_memory().unwrap();
        migrate(&conn).unwrap();
        let ops = opcodes(&conn, &INSERT_ONE.replace("?1", "'same'"));
        assert!(ops.iter().any(|o| o == "Insert"), "{ops:?}");
        assert!(!ops.iter().any(|o| o == "OpenEphemeral"), "{ops:?}");
        // The rule itself still holds.
        let err = conn
            .execute(INSERT_ONE, ["maybe"])
            .expect_err("a verdict outside the four is refused");
        assert!(err.to_string().contains("CHECK"), "{err}");
        for v in ["same", "different", "noise", "shadow_error"] {
            conn.execute(INSERT_ONE, [v]).unwrap();
        }
    }

    #[test]
    fn migration_2_keeps_rows_ids_and_the_id_sequence() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(
            "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)",
        )
        .unwrap();
        conn.execute_batch(MIGRATIONS[0].2).unwrap();
        conn.execute("INSERT INTO schema_migrations VALUES (1, 'then')", [])
            .unwrap();
        for v in ["same", "different", "noise"] {
            conn.execute(INSERT_ONE, [v]).unwrap();
        }
        // The newest row went (as retention or a user might do): its id must not come back.
        conn.execute("DELETE FROM comparisons WHERE id = 3", [])
            .unwrap();
        migrate(&conn).unwrap();
        let rows: Vec<(i64, String)> = conn
            .prepare("SELECT id, verdict FROM comparisons ORDER BY id")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(
            rows,
            [(1, "same".to_string()), (2, "different".to_string())]
        );
        conn.execute(INSERT_ONE, ["shadow_error"]).unwrap();
        assert_eq!(conn.last_insert_rowid(), 4);
        let p = plan(
            &conn,
            "SELECT id FROM comparisons WHERE route = 'a' AND verdict = 'same' ORDER BY id DESC LIMIT 51",
        );
        assert!(p.contains("comparisons_route_verdict_id"), "{p}");
        let sequences: i64 = conn
            .query_row("SELECT COUNT(*) FROM sqlite_sequence", [], |r| r.get(0))
            .unwrap();
        assert_eq!(
            sequences, 1,
            "one AUTOINCREMENT sequence, named comparisons"
        );
    }

    #[test]
    fn url_forms() {
        assert!(matches!(
            parse_target("sqlite::memory:").unwrap(),
            Target::Memory
        ));
        let Target::File(p) = parse_target("sqlite://umbra.db").unwrap() else {
            panic!()
        };
        assert_eq!(p, PathBuf::from("umbra.db"));
        let Target::File(p) = parse_target("sqlite:///var/lib/umbra.db").unwrap() else {
            panic!()
        };
        assert_eq!(p, PathBuf::from("/var/lib/umbra.db"));
        let Target::File(p) = parse_target("data/umbra.db").unwrap() else {
            panic!()
        };
        assert_eq!(p, PathBuf::from("data/umbra.db"));
        assert!(parse_target("sqlite://").is_err());
    }
}
