//! Leases: "at most one umbra process holds key K", for work that must run exactly once
//! across replicas (a rollout's controller). Control-plane side.
//!
//! PostgreSQL: a session-level advisory lock (`pg_try_advisory_lock`) taken on a connection of
//! its own, keyed by a 64-bit FNV-1a hash of the connection's schema and the key (so umbra
//! deployments sharing a database in different schemas do not contend). The lock lives exactly
//! as long as that session: dropping the [`Lease`] closes the connection, and a process that
//! dies, or a connection the server terminates, ends the session and frees the key for another
//! replica. No home-made consensus: PostgreSQL decides who holds it.
//!
//! SQLite serves one process: a key is granted unless this process already holds it.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use tokio_util::sync::CancellationToken;

/// How long [`Lease::confirm`] waits for the server.
const CONFIRM_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Keys held in this process (the SQLite backend's leases).
#[derive(Clone, Default)]
pub(crate) struct LocalLeases(Arc<Mutex<HashSet<String>>>);

impl LocalLeases {
    /// Takes `key` unless this process holds it already.
    pub(crate) fn try_hold(&self, key: &str) -> Option<Lease> {
        let mut held = self.0.lock().expect("leases lock");
        if !held.insert(key.to_string()) {
            return None;
        }
        Some(Lease::new(key, Hold::Local(self.clone())))
    }
}

enum Hold {
    /// The dedicated session that holds the advisory lock (and its backend's pid); dropping
    /// the client ends the session.
    Postgres(tokio_postgres::Client, i32),
    Local(LocalLeases),
}

/// A held lease. Held until dropped (or until the process or its database session dies);
/// [`Lease::is_held`] and [`Lease::lost`] say when it is gone.
pub struct Lease {
    key: String,
    hold: Hold,
    /// Cancelled when the lease is gone: its connection ended or a check found it dead.
    lost: CancellationToken,
}

impl std::fmt::Debug for Lease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lease")
            .field("key", &self.key)
            .field("held", &self.is_held())
            .finish()
    }
}

impl Lease {
    fn new(key: &str, hold: Hold) -> Lease {
        Lease {
            key: key.to_string(),
            hold,
            lost: CancellationToken::new(),
        }
    }

    /// A PostgreSQL lease on `client`'s session; `lost` is cancelled when the session's
    /// connection task ends.
    pub(crate) fn postgres(
        key: &str,
        client: tokio_postgres::Client,
        backend_pid: i32,
        lost: CancellationToken,
    ) -> Lease {
        Lease {
            key: key.to_string(),
            hold: Hold::Postgres(client, backend_pid),
            lost,
        }
    }

    /// The PostgreSQL backend (`pg_stat_activity.pid`) whose session holds the lease; None for
    /// SQLite. For operators and tests: terminating that backend frees the key.
    pub fn session_pid(&self) -> Option<i32> {
        match &self.hold {
            Hold::Postgres(_, pid) => Some(*pid),
            Hold::Local(_) => None,
        }
    }

    /// The key this lease holds.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// Whether the lease is still held as far as this process knows, without a round trip:
    /// false once its session's connection has ended (server gone, backend terminated).
    pub fn is_held(&self) -> bool {
        if self.lost.is_cancelled() {
            return false;
        }
        match &self.hold {
            Hold::Postgres(client, _) => !client.is_closed(),
            Hold::Local(_) => true,
        }
    }

    /// Confirms with a round trip on the lease's own session that it is still held (a live
    /// session keeps its advisory lock); marks the lease lost when it is not, or when the
    /// server does not answer within 5 s. Call this before acting on the lease after a long
    /// pause, or periodically; on false, stop the work and drop the lease (which frees the key
    /// should the session still be alive).
    pub async fn confirm(&self) -> bool {
        if let Hold::Postgres(client, _) = &self.hold {
            let ping = tokio::time::timeout(CONFIRM_TIMEOUT, client.simple_query("SELECT 1"));
            if !matches!(ping.await, Ok(Ok(_))) {
                self.lost.cancel();
            }
        }
        self.is_held()
    }

    /// Resolves when the lease is gone (its session ended or a [`Lease::confirm`] failed).
    /// Never resolves for a SQLite lease while it is alive.
    pub async fn lost(&self) {
        self.lost.cancelled().await
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.lost.cancel();
        if let Hold::Local(local) = &self.hold {
            local.0.lock().expect("leases lock").remove(&self.key);
        }
        // A PostgreSQL lease's client drops here: its connection closes and the session, with
        // its advisory lock, ends.
    }
}

/// The advisory-lock key of `key` in `schema`: FNV-1a over `schema \0 key`, as PostgreSQL's
/// signed bigint. Stable across processes, builds and versions (it must be: replicas of
/// different versions contend for the same keys).
pub(crate) fn lock_id(schema: &str, key: &str) -> i64 {
    fnv1a(schema.bytes().chain([0]).chain(key.bytes())) as i64
}

/// 64-bit FNV-1a.
fn fnv1a(bytes: impl Iterator<Item = u8>) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    bytes.fold(OFFSET, |h, b| (h ^ u64::from(b)).wrapping_mul(PRIME))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_ids_are_stable_and_distinct() {
        // The published FNV-1a 64 test vectors: the ids must never change between builds.
        assert_eq!(fnv1a("a".bytes()), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a("foobar".bytes()), 0x8594_4171_f739_67e8);
        assert_ne!(
            lock_id("public", "rollout:api"),
            lock_id("other", "rollout:api")
        );
        assert_ne!(
            lock_id("public", "rollout:api"),
            lock_id("public", "rollout:web")
        );
        assert_ne!(lock_id("ab", "c"), lock_id("a", "bc"));
    }

    #[test]
    fn local_leases_exclude_within_the_process() {
        let local = LocalLeases::default();
        let a = local.try_hold("k").expect("first holder");
        assert!(a.is_held());
        assert!(local.try_hold("k").is_none(), "second holder refused");
        assert!(local.try_hold("other").is_some());
        drop(a);
        assert!(local.try_hold("k").is_some(), "free again after drop");
    }
}
