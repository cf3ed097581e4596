//! The audit log's writer: runtime events (API, UI, CLI and discovery changes) go to the store.

use std::sync::Arc;

use tokio::sync::mpsc;
use umbra_core::runtime::RuntimeEvent;
use umbra_store::{ComparisonStore, NewEvent};

/// Stores every runtime event until the channel closes. Without a store the events are only
/// drained, so that the runtime never waits on a full channel.
pub fn spawn_audit_log(
    store: Option<Arc<dyn ComparisonStore>>,
    mut events: mpsc::Receiver<RuntimeEvent>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        while let Some(ev) = events.recv().await {
            let Some(store) = &store else { continue };
            let e = NewEvent {
                kind: ev.kind,
                route: ev.route,
                source: ev.source.clone(),
                actor: Some(ev.source),
                detail: ev.detail,
            };
            if let Err(err) = store.append_event(&e).await {
                tracing::warn!(error = %err, "could not store an audit event");
            }
        }
    })
}
