//! The change feed: how several umbra replicas on one PostgreSQL see each other's runtime
//! changes. Control-plane side.
//!
//! Every write to the `routes` table is announced by a trigger (migration 4) with
//! `NOTIFY umbra_changes, '<kind>:<name>'` inside the writing transaction. The feed holds a
//! session of its own that `LISTEN`s there; for each announcement it re-reads the document
//! stored under that name and hands it to the [`DocSubscriber`] registered for the kind. It
//! re-reads rather than trusting the order of announcements, so replicas converge on what the
//! database holds, and a replica hearing its own change applies a document it already has
//! (subscribers make that a no-op, so there is no loop: applying never writes).
//!
//! When the session drops the feed reconnects with backoff (250 ms doubling to 10 s), and after
//! every (re)connect re-reads everything, since announcements made meanwhile are lost.
//! [`FeedStatus`] says whether it is listening or reconnecting, for `/api/status`.
//!
//! Generic over the document kind: routes and overrides, services and rollouts each register
//! a subscriber with [`ChangeFeed::on`].

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use tokio::sync::mpsc;
use tokio_postgres::AsyncMessage;
use tokio_util::sync::CancellationToken;

use crate::encode::now_ms;
use crate::postgres::{read_routes, PostgresStore, Session};
use crate::{StoreError, StoredRoute};

/// The channel the `routes` trigger announces on.
pub const CHANNEL: &str = "umbra_changes";
/// The listening sessions' `application_name`, by which replicas are counted.
const APPLICATION_NAME: &str = "umbra feed";
/// How often the replicas are counted.
const CENSUS_EVERY: Duration = Duration::from_secs(5);
const BACKOFF_MIN: Duration = Duration::from_millis(250);
const BACKOFF_MAX: Duration = Duration::from_secs(10);
/// Announcements queued between the connection and the applier; beyond that they are dropped
/// and the feed re-reads everything instead of queueing without bound.
const QUEUE: usize = 1024;

/// Applies one family of shared documents (for example routes and overrides) to this process.
/// Called from the feed's task; must not block for long and must not write to the store.
pub trait DocSubscriber: Send + Sync + 'static {
    /// `doc` is what is stored under `name` now, when it is of one of this subscriber's kinds;
    /// None when there is no such document any more. Returns whether anything changed here
    /// (false for a document already in force, such as this replica's own change).
    fn apply(&self, name: &str, doc: Option<&StoredRoute>) -> bool;

    /// Makes this subscriber's documents exactly `docs` (every stored document of its kinds),
    /// after a (re)connect. Returns whether anything changed.
    fn resync(&self, docs: &[StoredRoute]) -> bool;
}

/// Where the feed is, for `/api/status` and the log.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct FeedState {
    /// `starting`, `listening`, `reconnecting` or `stopped`.
    pub state: &'static str,
    pub since_ms: i64,
    /// Announcements heard, and how many of them changed something here.
    pub notifications: u64,
    pub applied: u64,
    /// Announcements dropped because the queue was full (each drop leads to a full re-read).
    pub dropped: u64,
    /// Full re-reads (one per connect, plus one per queue overflow or `*` announcement).
    pub resyncs: u64,
    pub reconnects: u64,
    pub last_change_ms: Option<i64>,
    pub last_error: Option<String>,
    /// The PostgreSQL backend of the listening session (`pg_stat_activity.pid`).
    pub backend_pid: Option<i32>,
    /// umbra processes listening on this database, this one included (counted every 5 s).
    pub replicas: Option<i64>,
}

/// A shared, cheap handle on the feed's [`FeedState`].
#[derive(Clone)]
pub struct FeedStatus(Arc<Mutex<FeedState>>);

impl FeedStatus {
    fn new() -> FeedStatus {
        FeedStatus(Arc::new(Mutex::new(FeedState {
            state: "starting",
            since_ms: now_ms(),
            notifications: 0,
            applied: 0,
            dropped: 0,
            resyncs: 0,
            reconnects: 0,
            last_change_ms: None,
            last_error: None,
            backend_pid: None,
            replicas: None,
        })))
    }

    pub fn get(&self) -> FeedState {
        self.0.lock().expect("feed status lock").clone()
    }

    fn update(&self, f: impl FnOnce(&mut FeedState)) {
        f(&mut self.0.lock().expect("feed status lock"))
    }

    /// Moves to `state` (logging the move once) and records `error` if any.
    fn enter(&self, state: &'static str, error: Option<String>) {
        let mut s = self.0.lock().expect("feed status lock");
        if s.state != state {
            match &error {
                Some(e) => tracing::warn!(feed = state, error = %e, "store change feed {state}"),
                None => tracing::info!(feed = state, "store change feed {state}"),
            }
            s.state = state;
            s.since_ms = now_ms();
        }
        if error.is_some() {
            s.last_error = error;
        }
    }
}

type Subscribers = Vec<(Vec<String>, Arc<dyn DocSubscriber>)>;

/// The change feed of a PostgreSQL store: register subscribers with [`ChangeFeed::on`], then
/// [`ChangeFeed::spawn`].
pub struct ChangeFeed {
    store: PostgresStore,
    subscribers: Subscribers,
    status: FeedStatus,
}

impl ChangeFeed {
    pub(crate) fn new(store: PostgresStore) -> ChangeFeed {
        ChangeFeed {
            store,
            subscribers: Vec::new(),
            status: FeedStatus::new(),
        }
    }

    /// Hands documents of `kinds` (the `routes.kind` column) to `subscriber`.
    pub fn on(mut self, kinds: &[&str], subscriber: Arc<dyn DocSubscriber>) -> ChangeFeed {
        let kinds = kinds.iter().map(|k| k.to_string()).collect();
        self.subscribers.push((kinds, subscriber));
        self
    }

    /// Starts listening in a background task until `shutdown`; returns the status handle.
    pub fn spawn(self, shutdown: CancellationToken) -> FeedStatus {
        let status = self.status.clone();
        tokio::spawn(self.run(shutdown));
        status
    }

    async fn run(self, shutdown: CancellationToken) {
        let mut backoff = BACKOFF_MIN;
        loop {
            let mut listening = false;
            let result = tokio::select! {
                _ = shutdown.cancelled() => break,
                r = self.session(&mut listening) => r,
            };
            if listening {
                backoff = BACKOFF_MIN;
            }
            let error = match result {
                Ok(()) => "the listening session closed".to_string(),
                Err(e) => e.display_chain(),
            };
            self.status.enter("reconnecting", Some(error));
            self.status.update(|s| s.reconnects += 1);
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(BACKOFF_MAX);
        }
        self.status.enter("stopped", None);
    }

    /// One listening session: connect, LISTEN, re-read everything, then apply announcements
    /// until the session fails. Sets `listening` once all that worked (which resets the
    /// backoff; a session that keeps failing before it backs off further).
    async fn session(&self, listening: &mut bool) -> Result<(), StoreError> {
        let (client, conn) = self.store.session(APPLICATION_NAME).await?;
        let (tx, mut rx) = mpsc::channel(QUEUE);
        let missed = Arc::new(AtomicU64::new(0));
        let driver = tokio::spawn(drive(conn, tx, missed.clone()));
        let _stop_driver = AbortOnDrop(driver);
        client
            .batch_execute(&format!("LISTEN {CHANNEL}"))
            .await
            .map_err(StoreError::pg("LISTEN for changes"))?;
        let pid: i32 = client
            .query_one("SELECT pg_backend_pid()", &[])
            .await
            .map_err(StoreError::pg("read the listening session's pid"))?
            .get(0);
        self.status.update(|s| s.backend_pid = Some(pid));
        self.resync(&client).await?;
        *listening = true;
        self.status.enter("listening", None);
        let mut census = tokio::time::interval(CENSUS_EVERY);
        loop {
            let msg = tokio::select! {
                msg = rx.recv() => msg,
                _ = census.tick() => {
                    self.count_replicas(&client).await?;
                    continue;
                }
            };
            let first = match msg {
                Some(Heard::Change(payload)) => payload,
                Some(Heard::Closed(e)) => return Err(e),
                None => return Ok(()),
            };
            let (batch, closed) = coalesce(first, &mut rx);
            self.status
                .update(|s| s.notifications += batch.heard - batch.payloads.len() as u64);
            for payload in &batch.payloads {
                self.heard(&client, payload).await?;
            }
            if let Some(e) = closed {
                return Err(e);
            }
            let dropped = missed.swap(0, Ordering::Relaxed);
            if dropped > 0 {
                self.status.update(|s| s.dropped += dropped);
                self.resync(&client).await?;
            }
        }
    }

    /// How many umbra processes listen on this database (this one included), by their
    /// sessions' application name.
    async fn count_replicas(&self, client: &tokio_postgres::Client) -> Result<(), StoreError> {
        let n: i64 = client
            .query_one(
                "SELECT count(*) FROM pg_stat_activity \
                 WHERE application_name = $1 AND datname = current_database()",
                &[&APPLICATION_NAME],
            )
            .await
            .map_err(StoreError::pg("count the replicas"))?
            .get(0);
        self.status.update(|s| s.replicas = Some(n));
        Ok(())
    }

    /// Re-reads every stored document and hands each subscriber those of its kinds.
    async fn resync(&self, client: &tokio_postgres::Client) -> Result<(), StoreError> {
        let docs = read_routes(client, None).await?;
        let mut changed = false;
        for (kinds, sub) in &self.subscribers {
            let mine: Vec<StoredRoute> = docs
                .iter()
                .filter(|d| kinds.contains(&d.kind))
                .cloned()
                .collect();
            changed |= sub.resync(&mine);
        }
        self.status.update(|s| {
            s.resyncs += 1;
            if changed {
                s.last_change_ms = Some(now_ms());
            }
        });
        Ok(())
    }

    /// Applies one announcement, `<kind>:<name>` (or `*`: re-read everything).
    async fn heard(
        &self,
        client: &tokio_postgres::Client,
        payload: &str,
    ) -> Result<(), StoreError> {
        self.status.update(|s| s.notifications += 1);
        let Some((kind, name)) = payload.split_once(':') else {
            return self.resync(client).await;
        };
        let Some((kinds, sub)) = self
            .subscribers
            .iter()
            .find(|(k, _)| k.iter().any(|k| k == kind))
        else {
            tracing::debug!(kind, name, "change of a document kind nobody here follows");
            return Ok(());
        };
        let stored = read_routes(client, Some(name)).await?;
        let doc = stored.iter().find(|d| kinds.contains(&d.kind));
        if sub.apply(name, doc) {
            tracing::info!(kind, name, "applied a change made by another replica");
            self.status.update(|s| {
                s.applied += 1;
                s.last_change_ms = Some(now_ms());
            });
        }
        Ok(())
    }
}

/// Announcements taken together: each distinct payload once, in first-heard order.
struct Batch {
    payloads: Vec<String>,
    /// How many were heard, duplicates included.
    heard: u64,
}

/// `first` and whatever else is queued already (a burst, such as a rollout's steps or a
/// bulk change), each distinct document once: it is re-read anyway, so one read serves all
/// its announcements. Also returns the connection's end if it was queued behind them.
fn coalesce(first: String, rx: &mut mpsc::Receiver<Heard>) -> (Batch, Option<StoreError>) {
    let mut seen = std::collections::HashSet::new();
    let mut batch = Batch {
        payloads: Vec::new(),
        heard: 0,
    };
    let mut next = Some(first);
    while let Some(payload) = next.take() {
        batch.heard += 1;
        if seen.insert(payload.clone()) {
            batch.payloads.push(payload);
        }
        if batch.heard >= QUEUE as u64 {
            break;
        }
        match rx.try_recv() {
            Ok(Heard::Change(p)) => next = Some(p),
            Ok(Heard::Closed(e)) => return (batch, Some(e)),
            Err(_) => {}
        }
    }
    (batch, None)
}

/// What the connection driver passes on.
enum Heard {
    Change(String),
    Closed(StoreError),
}

/// Polls the listening session's connection (which is what delivers notifications, and what
/// answers the feed's queries) and passes announcements on; ends when the connection does.
/// It never waits on the applier: when the queue is full it counts the announcement in
/// `missed` and drops it, and the applier re-reads everything.
async fn drive(mut conn: Session, tx: mpsc::Sender<Heard>, missed: Arc<AtomicU64>) {
    loop {
        let msg = std::future::poll_fn(|cx| conn.poll_message(cx)).await;
        let heard = match msg {
            Some(Ok(AsyncMessage::Notification(n))) if n.channel() == CHANNEL => {
                Heard::Change(n.payload().to_string())
            }
            Some(Ok(_)) => continue,
            Some(Err(e)) => {
                let _ = tx.try_send(Heard::Closed(StoreError::pg("listening session")(e)));
                return;
            }
            // Closed cleanly: dropping `tx` ends the session's loop.
            None => return,
        };
        match tx.try_send(heard) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                missed.fetch_add(1, Ordering::Relaxed);
            }
            Err(mpsc::error::TrySendError::Closed(_)) => return,
        }
    }
}

/// Aborts the connection driver when the session ends, closing the connection.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
