//! The change feed against a real PostgreSQL (a private throwaway cluster, or
//! `$UMBRA_TEST_PG_URL`): two stores stand for two replicas; what one writes to `routes`
//! reaches the other's subscriber, also across a killed listening session. Waits are bounded
//! polls, never duration asserts.

mod support;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;
use tokio_util::sync::CancellationToken;
use umbra_store::{ComparisonStore, DocSubscriber, FeedStatus, StoredRoute};

/// A subscriber that keeps what it was given, by name.
#[derive(Default)]
struct Docs(Mutex<BTreeMap<String, serde_json::Value>>);

impl Docs {
    fn get(&self, name: &str) -> Option<serde_json::Value> {
        self.0.lock().unwrap().get(name).cloned()
    }
}

impl DocSubscriber for Docs {
    fn apply(&self, name: &str, doc: Option<&StoredRoute>) -> bool {
        let mut map = self.0.lock().unwrap();
        let new = doc.map(|d| d.doc.clone());
        let old = match &new {
            Some(v) => map.insert(name.to_string(), v.clone()),
            None => map.remove(name),
        };
        old != new
    }

    fn resync(&self, docs: &[StoredRoute]) -> bool {
        let new: BTreeMap<_, _> = docs
            .iter()
            .map(|d| (d.name.clone(), d.doc.clone()))
            .collect();
        let mut map = self.0.lock().unwrap();
        let changed = *map != new;
        *map = new;
        changed
    }
}

fn doc(name: &str, kind: &str, doc: serde_json::Value) -> StoredRoute {
    StoredRoute {
        name: name.into(),
        kind: kind.into(),
        doc,
        updated_at_ms: 1_795_442_400_000,
    }
}

/// Polls `cond` up to 400 times, 25 ms apart; panics naming `what` if it never holds.
async fn until(what: &str, mut cond: impl FnMut() -> bool) {
    for _ in 0..400 {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("never happened: {what}");
}

fn feed(
    store: &Arc<dyn ComparisonStore>,
    shutdown: &CancellationToken,
) -> (Arc<Docs>, Arc<Docs>, FeedStatus) {
    let (routes, services) = (Arc::new(Docs::default()), Arc::new(Docs::default()));
    let status = store
        .change_feed()
        .expect("PostgreSQL has a change feed")
        .on(&["api", "override"], routes.clone())
        .on(&["service"], services.clone())
        .spawn(shutdown.clone());
    (routes, services, status)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_reach_the_other_replica_and_survive_a_dropped_session() {
    let Some(h) = support::postgres().await else {
        return;
    };
    let (a, b) = (h.open().await, h.open().await);
    a.put_route(&doc("before", "api", json!({"v": 0})))
        .await
        .unwrap();
    let shutdown = CancellationToken::new();
    let (routes, services, status) = feed(&b, &shutdown);
    until("the first full read", || routes.get("before").is_some()).await;
    until("listening", || status.get().state == "listening").await;

    // put, replace, kind routing, delete
    a.put_route(&doc(
        "api",
        "override",
        json!({"canary": {"service": "v2", "weight": 10.0}}),
    ))
    .await
    .unwrap();
    until("the override arrives", || routes.get("api").is_some()).await;
    a.put_route(&doc(
        "api",
        "override",
        json!({"canary": {"service": "v2", "weight": 50.0}}),
    ))
    .await
    .unwrap();
    until("the new weight arrives", || {
        routes.get("api") == Some(json!({"canary": {"service": "v2", "weight": 50.0}}))
    })
    .await;
    a.put_route(&doc(
        "svc",
        "service",
        json!({"servers": ["http://127.0.0.1:1"]}),
    ))
    .await
    .unwrap();
    until("the service goes to its own subscriber", || {
        services.get("svc").is_some()
    })
    .await;
    assert!(routes.get("svc").is_none());
    assert!(a.delete_route("api").await.unwrap());
    until("the delete arrives", || routes.get("api").is_none()).await;

    // Kill the listening session; a change made meanwhile arrives by the full re-read.
    let pid = status.get().backend_pid.expect("listening backend");
    let admin = support::admin_client(&h.url).await;
    admin
        .query_one("SELECT pg_terminate_backend($1)", &[&pid])
        .await
        .unwrap();
    until("reconnecting", || status.get().state == "reconnecting").await;
    a.put_route(&doc("missed", "api", json!({"v": 1})))
        .await
        .unwrap();
    assert!(a.delete_route("before").await.unwrap());
    until("listening again", || {
        let s = status.get();
        s.state == "listening" && s.backend_pid != Some(pid)
    })
    .await;
    until("the missed change", || routes.get("missed").is_some()).await;
    until("the missed delete", || routes.get("before").is_none()).await;
    let s = status.get();
    assert!(s.reconnects >= 1 && s.resyncs >= 2, "{s:?}");
    assert!(s.last_error.is_some(), "{s:?}");

    shutdown.cancel();
    until("stopped", || status.get().state == "stopped").await;
    h.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn own_changes_are_heard_but_change_nothing() {
    let Some(h) = support::postgres().await else {
        return;
    };
    let a = h.open().await;
    let shutdown = CancellationToken::new();
    let (routes, _, status) = feed(&a, &shutdown);
    until("listening", || status.get().state == "listening").await;
    // Names of its own: the channel is database-wide, so the other test's announcements (in
    // its own schema) are heard here too, and only re-read this schema's rows.
    let d = doc("own-api", "api", json!({"service": "v1"}));
    // As the admin layer does: the change is in force here before it is stored.
    routes.apply("own-api", Some(&d));
    a.put_route(&d).await.unwrap();
    until("the announcement is heard", || {
        status.get().notifications >= 1
    })
    .await;
    // A second write that does change it proves the first was processed (in order).
    a.put_route(&doc("own-api", "api", json!({"service": "v2"})))
        .await
        .unwrap();
    until("the real change", || {
        routes.get("own-api") == Some(json!({"service": "v2"}))
    })
    .await;
    let s = status.get();
    assert!(s.notifications >= 2, "{s:?}");
    assert_eq!(s.applied, 1, "only the other write changed anything: {s:?}");
    shutdown.cancel();
    h.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_larger_than_the_queue_converges() {
    let Some(h) = support::postgres().await else {
        return;
    };
    let b = h.open().await;
    let shutdown = CancellationToken::new();
    let (routes, _, status) = feed(&b, &shutdown);
    until("listening", || status.get().state == "listening").await;
    // 3,000 documents written twice, in two transactions: 6,000 announcements at once, more
    // than the feed queues; whether it coalesces or overflows into a full re-read, it ends
    // with exactly what is stored.
    let writer = support::admin_client(&h.url).await;
    for round in 0..2 {
        writer
            .execute(
                "INSERT INTO routes (name, kind, doc, updated_at) \
                 SELECT 'bulk-' || i, 'override', jsonb_build_object('round', $1::int), now() \
                 FROM generate_series(1, 3000) AS i \
                 ON CONFLICT (name) DO UPDATE SET doc = excluded.doc",
                &[&round],
            )
            .await
            .unwrap();
    }
    let done = || {
        let map = routes.0.lock().unwrap();
        map.len() == 3000 && map.values().all(|v| v["round"] == 1)
    };
    for _ in 0..2400 {
        if done() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(done(), "not converged: {:?}", status.get());
    eprintln!("burst of 6,000 announcements: {:?}", status.get());
    shutdown.cancel();
    h.cleanup().await;
}

#[tokio::test]
async fn sqlite_has_no_feed() {
    let h = support::sqlite();
    assert!(h.open().await.change_feed().is_none());
}
