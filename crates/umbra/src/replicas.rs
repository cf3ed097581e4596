//! Several umbra replicas on one PostgreSQL: the change feed's subscribers, which apply what
//! other replicas stored to this process's runtime the way start-up `restore` does. Control
//! plane. Routes and overrides ride on the feed here; services and rollouts add one `.on(...)`
//! line each in [`start_feed`].

use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use umbra_core::runtime::ROUTE_DOC_KINDS;
use umbra_core::Runtime;
use umbra_store::{ComparisonStore, DocSubscriber, FeedStatus, StoredRoute};

/// Starts the store's change feed when the store is shared (PostgreSQL); None otherwise.
pub fn start_feed(
    store: &Arc<dyn ComparisonStore>,
    runtime: &Arc<Runtime>,
    shutdown: CancellationToken,
) -> Option<FeedStatus> {
    let feed = store
        .change_feed()?
        .on(ROUTE_DOC_KINDS, Arc::new(RouteDocs(runtime.clone())));
    Some(feed.spawn(shutdown))
}

/// Runtime routes and overrides (`routes` rows of kind `api` and `override`).
struct RouteDocs(Arc<Runtime>);

impl DocSubscriber for RouteDocs {
    fn apply(&self, name: &str, doc: Option<&StoredRoute>) -> bool {
        let doc = doc.map(|d| (d.kind.as_str(), d.doc.clone()));
        match self.0.apply_stored(name, doc) {
            Ok(changed) => changed,
            Err(problem) => {
                tracing::warn!(route = %name, "{problem}; keeping what is in force");
                false
            }
        }
    }

    fn resync(&self, docs: &[StoredRoute]) -> bool {
        let docs = docs
            .iter()
            .map(|d| (d.name.clone(), d.kind.clone(), d.doc.clone()))
            .collect();
        let (changed, problems) = self.0.replace_stored(docs);
        for p in problems {
            tracing::warn!("{p}; keeping what is in force");
        }
        changed
    }
}

/// Who runs a rollout's controller: with a store shared by replicas (PostgreSQL), the holder
/// of the store's advisory-lock lease on `rollout:<route>`; the other replicas stand by and
/// take over when that session ends. One process alone (SQLite, no store) leads by itself.
pub fn leadership(
    store: &Option<Arc<dyn ComparisonStore>>,
) -> Arc<dyn umbra_core::rollout::Leadership> {
    match store {
        Some(s) if s.kind() == "postgres" => Arc::new(StoreLeadership(s.clone())),
        _ => Arc::new(umbra_core::rollout::LocalLeadership::default()),
    }
}

/// [`umbra_core::rollout::Leadership`] over the store's leases.
struct StoreLeadership(Arc<dyn ComparisonStore>);

struct StoreLease(umbra_store::Lease);

impl umbra_core::rollout::Lease for StoreLease {
    fn is_held(&self) -> bool {
        self.0.is_held()
    }
}

impl umbra_core::rollout::Leadership for StoreLeadership {
    fn try_hold(
        &self,
        key: &str,
    ) -> futures_util::future::BoxFuture<'_, Option<Box<dyn umbra_core::rollout::Lease>>> {
        let key = key.to_string();
        Box::pin(async move {
            match self.0.try_hold(&key).await {
                Ok(Some(lease)) => {
                    Some(Box::new(StoreLease(lease)) as Box<dyn umbra_core::rollout::Lease>)
                }
                Ok(None) => None,
                Err(e) => {
                    tracing::warn!(key = %key, error = %e, "cannot ask the store for a lease; standing by");
                    None
                }
            }
        })
    }
}
