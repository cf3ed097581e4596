//! A rollout whose lease another replica holds: this process does not run it, shows the
//! state the store has, refuses manual actions, and takes over once the lease is free.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use tokio::sync::mpsc;
use umbra_core::config::RawRollout;
use umbra_core::rollout::{Action, Leadership, Lease, RolloutBackend, Rollouts, Status};
use umbra_core::runtime::ControlError;
use umbra_core::telemetry::Metrics;
use umbra_core::{Config, Runtime};
use umbra_testkit::assert_eventually;

mod support;

const FILE: &str = r#"
[log]
access = false
[services.v1]
servers = ["http://127.0.0.1:9"]
[services.v2]
servers = ["http://127.0.0.1:9"]
[[routes]]
name = "api"
rule = "PathPrefix(`/`)"
service = "v1"
"#;

/// Leadership that another replica holds until `free` is set.
#[derive(Default)]
struct Elsewhere {
    free: AtomicBool,
}

struct Held;

impl Lease for Held {
    fn is_held(&self) -> bool {
        true
    }
}

impl Leadership for Elsewhere {
    fn try_hold(&self, _key: &str) -> BoxFuture<'_, Option<Box<dyn Lease>>> {
        let free = self.free.load(Ordering::SeqCst);
        Box::pin(async move { free.then(|| Box::new(Held) as Box<dyn Lease>) })
    }
}

#[tokio::test]
async fn a_replica_without_the_lease_stands_by_then_takes_over() {
    let config = Config::parse(FILE, "umbra.toml", &|_| None).unwrap();
    let (tx, _events) = mpsc::channel(64);
    let rt = Runtime::new(config, Arc::new(Metrics::new()), tx);
    let store = Arc::new(support::Memory::default());
    let leadership = Arc::new(Elsewhere::default());
    let rollouts = Rollouts::new(
        rt.clone(),
        store.clone(),
        leadership.clone(),
        tokio_util::sync::CancellationToken::new(),
    );
    let spec = RawRollout {
        service: "v2".into(),
        steps: Some(vec!["shadow 1h".into(), "100%".into()]),
        interval: Some("50ms".into()),
        ..Default::default()
    };
    let started = rollouts.start("api", spec, "api").await.unwrap();
    // The "other replica" moved it on: this one shows what the store says.
    let mut moved = started.clone();
    moved.window_start_ms = Some(42);
    store.save(&moved).await.unwrap();
    assert_eventually!(
        rollouts
            .status("api")
            .await
            .is_some_and(|s| s.window_start_ms == Some(42)),
        timeout = Duration::from_secs(5)
    );
    assert!(
        rt.snapshot().route("api").unwrap().spec.shadows.is_empty(),
        "not run here"
    );
    match rollouts.act("api", Action::Pause, "cli").await {
        Err(ControlError::Conflict(m)) => assert!(m.contains("another umbra replica"), "{m}"),
        other => panic!("{other:?}"),
    }
    // The lease is free (that replica died): this one takes over, from the stored state.
    leadership.free.store(true, Ordering::SeqCst);
    assert_eventually!(
        rt.snapshot().route("api").unwrap().spec.shadows.len() == 1,
        timeout = Duration::from_secs(5)
    );
    let s = rollouts.status("api").await.unwrap();
    assert_eq!((s.status, s.window_start_ms), (Status::Running, Some(42)));
}
