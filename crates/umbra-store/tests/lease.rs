//! Leases against the real backends: on PostgreSQL (a private throwaway cluster, or
//! `$UMBRA_TEST_PG_URL`) two stores stand for two replicas; on SQLite one process excludes
//! itself. Waits are bounded polls, never duration asserts.

mod support;

use std::sync::Arc;
use std::time::Duration;

use umbra_store::{ComparisonStore, Lease};

/// Polls `f` up to `tries` times, 50 ms apart, until it yields something.
async fn poll<T, F, Fut>(tries: u32, mut f: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    for _ in 0..tries {
        if let Some(v) = f().await {
            return Some(v);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    None
}

async fn hold(store: &Arc<dyn ComparisonStore>, key: &str) -> Option<Lease> {
    store.try_hold(key).await.expect("try_hold")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_two_holders_one_wins_and_drop_frees() {
    let Some(h) = support::postgres().await else {
        return;
    };
    let (a, b) = (h.open().await, h.open().await);
    let won = hold(&a, "rollout:api").await.expect("first holder wins");
    assert!(won.is_held() && won.confirm().await);
    assert_eq!(won.key(), "rollout:api");
    assert!(won.session_pid().is_some());
    assert!(hold(&b, "rollout:api").await.is_none(), "B must lose");
    assert!(
        hold(&a, "rollout:api").await.is_none(),
        "even A's second try"
    );
    let other = hold(&b, "rollout:web").await.expect("another key is free");

    drop(won);
    let taken = poll(200, || hold(&b, "rollout:api")).await;
    let taken = taken.expect("B takes the key after A drops its lease");
    assert!(taken.is_held());
    assert!(hold(&a, "rollout:api").await.is_none());
    drop((taken, other));
    h.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_terminated_session_frees_the_key() {
    let Some(h) = support::postgres().await else {
        return;
    };
    let (a, b) = (h.open().await, h.open().await);
    let lease = hold(&a, "rollout:api").await.expect("A holds");
    assert!(hold(&b, "rollout:api").await.is_none());

    // What a dead process or a server-side kill looks like: the session ends.
    let pid = lease
        .session_pid()
        .expect("a PostgreSQL lease has a backend");
    let admin = support::admin_client(&h.url).await;
    let row = admin
        .query_one("SELECT pg_terminate_backend($1)", &[&pid])
        .await
        .expect("terminate the holder's backend");
    assert!(row.get::<_, bool>(0));

    let taken = poll(200, || hold(&b, "rollout:api")).await;
    assert!(taken.is_some(), "B takes over once A's session is gone");
    let noticed = poll(200, || async { (!lease.is_held()).then_some(()) }).await;
    assert!(noticed.is_some(), "A sees its lease is lost");
    assert!(!lease.confirm().await);
    tokio::time::timeout(Duration::from_secs(30), lease.lost())
        .await
        .expect("lost() resolves");
    h.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_leases_are_per_schema() {
    let (Some(h1), Some(h2)) = (support::postgres().await, support::postgres().await) else {
        return;
    };
    let (a, b) = (h1.open().await, h2.open().await);
    let one = hold(&a, "rollout:api").await.expect("schema 1");
    let two = hold(&b, "rollout:api").await;
    assert!(two.is_some(), "another schema is another umbra deployment");
    drop((one, two));
    h1.cleanup().await;
    h2.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_grants_once_per_process() {
    let h = support::sqlite();
    let store = h.open().await;
    let lease = hold(&store, "rollout:api").await.expect("granted");
    assert!(lease.is_held() && lease.confirm().await);
    assert_eq!(lease.session_pid(), None);
    assert!(hold(&store, "rollout:api").await.is_none());
    drop(lease);
    assert!(hold(&store, "rollout:api").await.is_some());
    h.cleanup().await;
}
