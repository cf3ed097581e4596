//! The store's error type. Control-plane side: every failure keeps its cause (`#[source]`) and
//! says which operation failed, so a log line or `/api/status` can show the whole chain.

use std::path::PathBuf;

use thiserror::Error;

/// Why a store operation failed.
#[derive(Debug, Error)]
pub enum StoreError {
    /// The URL names no backend this build knows.
    #[error(
        "store URL {url} has an unsupported scheme (expected sqlite:, postgres: or postgresql:)"
    )]
    UnsupportedUrl {
        /// The URL, with any password masked.
        url: String,
    },

    /// The URL has a known scheme but cannot be used as given.
    #[error("store URL {url} is not valid: {reason}")]
    InvalidUrl {
        /// The URL, with any password masked.
        url: String,
        reason: &'static str,
    },

    /// Opening or connecting failed; `url` has its password masked.
    #[error("cannot open store {url}")]
    Open {
        url: String,
        #[source]
        source: Box<StoreError>,
    },

    /// A `postgres://` URL or key=value string that tokio-postgres cannot parse.
    #[error("invalid PostgreSQL connection string")]
    PostgresConfig(#[source] tokio_postgres::Error),

    /// The pool could not be built (bad pool settings).
    #[error("cannot build the PostgreSQL connection pool")]
    PoolBuild(#[source] deadpool_postgres::BuildError),

    /// No pooled connection could be had: the server is down, refused, or the pool timed out.
    #[error("no PostgreSQL connection available")]
    Pool(#[source] deadpool_postgres::PoolError),

    /// The directory that should hold the SQLite file could not be created.
    #[error("cannot create directory {path} for the SQLite database")]
    CreateDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// A SQLite call failed; `op` says which store operation it was part of.
    #[error("SQLite: {op}")]
    Sqlite {
        op: &'static str,
        #[source]
        source: rusqlite::Error,
    },

    /// A PostgreSQL call failed; `op` says which store operation it was part of.
    #[error("PostgreSQL: {op}")]
    Postgres {
        op: &'static str,
        #[source]
        source: tokio_postgres::Error,
    },

    /// A versioned migration failed; nothing of it was applied (each runs in a transaction).
    #[error("schema migration {version} ({name}) failed")]
    Migration {
        version: i64,
        name: &'static str,
        #[source]
        source: Box<StoreError>,
    },

    /// A value could not be serialized to JSON for storage.
    #[error("cannot encode {what} as JSON")]
    Encode {
        what: &'static str,
        #[source]
        source: serde_json::Error,
    },

    /// A stored JSON column could not be read back into its type.
    #[error("stored {what} is not valid")]
    Decode {
        what: &'static str,
        #[source]
        source: serde_json::Error,
    },

    /// A stored scalar (verdict, kind, timestamp, status) is outside what this version understands.
    #[error("stored value {value:?} in column {column} is not valid")]
    BadValue { column: &'static str, value: String },

    /// The blocking worker that runs SQLite calls panicked or was cancelled.
    #[error("store worker task failed")]
    Worker(#[source] tokio::task::JoinError),
}

impl StoreError {
    /// The error and all its causes on one line, `outer: cause: root cause`, for logs and the
    /// status page.
    pub fn display_chain(&self) -> String {
        let mut out = self.to_string();
        let mut cur: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(self);
        while let Some(e) = cur {
            out.push_str(": ");
            out.push_str(&e.to_string());
            cur = e.source();
        }
        out
    }

    pub(crate) fn sqlite(op: &'static str) -> impl FnOnce(rusqlite::Error) -> StoreError {
        move |source| StoreError::Sqlite { op, source }
    }

    pub(crate) fn pg(op: &'static str) -> impl FnOnce(tokio_postgres::Error) -> StoreError {
        move |source| StoreError::Postgres { op, source }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_names_every_cause() {
        let err = StoreError::Open {
            url: "sqlite://x.db".into(),
            source: Box::new(StoreError::CreateDir {
                path: "/nope".into(),
                source: std::io::Error::new(std::io::ErrorKind::PermissionDenied, "denied"),
            }),
        };
        assert_eq!(
            err.display_chain(),
            "cannot open store sqlite://x.db: cannot create directory /nope for the SQLite database: denied"
        );
    }
}
