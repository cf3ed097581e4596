//! Automated rollouts (control plane): a candidate service walks a route's steps — shadow,
//! sticky canary at N %, promotion — judged at each interval by umbra's own evidence, and is
//! rolled back by itself when a gate fails.
//!
//! - [`spec`]: the `rollout` key / API JSON, validated;
//! - [`judge`]: the three gates over a window, pure;
//! - [`evidence`]: the per-window recorder the data plane feeds;
//! - [`state`]: what is persisted and shown;
//! - [`controller`]: one named task per active rollout;
//! - [`hooks`]: `before_step` / `on_finish` POSTs.
//!
//! [`Rollouts`] starts, steers and restores controllers. What it needs from outside core is
//! two traits: [`RolloutBackend`] (the store) and [`Leadership`] (which replica runs a rollout).

pub mod controller;
pub mod evidence;
pub mod hooks;
pub mod judge;
pub mod spec;
pub mod state;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use futures_util::future::BoxFuture;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

pub use evidence::Recorder;
pub use spec::{validate_rollout, RolloutSpec, Step};
pub use state::{RolloutState, Status};

use crate::config::RawRollout;
use crate::runtime::{ControlError, Persist, Runtime};

/// Where rollouts and the route changes they make are persisted (the admin layer implements it
/// over the store). Errors are logged by the caller; a rollout goes on without its store.
pub trait RolloutBackend: Send + Sync + 'static {
    fn save(&self, state: &RolloutState) -> BoxFuture<'_, Result<(), String>>;
    /// Every stored rollout (active or finished), for start-up.
    fn load_all(&self) -> BoxFuture<'_, Result<Vec<RolloutState>, String>>;
    fn load(&self, route: &str) -> BoxFuture<'_, Result<Option<RolloutState>, String>>;
    /// A runtime route change made by a controller (as the admin API persists its own).
    fn persist_route(&self, change: Persist) -> BoxFuture<'_, Result<(), String>>;
}

/// Which process runs a rollout's controller. `try_hold` returns a lease when this process
/// now holds `key` (a route name prefixed `rollout:`); None when another holds it. A lease is
/// released when dropped (or when its process dies); `is_held` turns false when it is lost.
pub trait Leadership: Send + Sync + 'static {
    fn try_hold(&self, key: &str) -> BoxFuture<'_, Option<Box<dyn Lease>>>;
}

pub trait Lease: Send + Sync {
    fn is_held(&self) -> bool;
}

/// Leadership within one process: every key is free unless this process holds it.
#[derive(Default)]
pub struct LocalLeadership {
    held: Arc<Mutex<HashSet<String>>>,
}

struct LocalLease {
    key: String,
    held: Arc<Mutex<HashSet<String>>>,
}

impl Lease for LocalLease {
    fn is_held(&self) -> bool {
        true
    }
}

impl Drop for LocalLease {
    fn drop(&mut self) {
        self.held.lock().expect("lease lock").remove(&self.key);
    }
}

impl Leadership for LocalLeadership {
    fn try_hold(&self, key: &str) -> BoxFuture<'_, Option<Box<dyn Lease>>> {
        let fresh = self
            .held
            .lock()
            .expect("lease lock")
            .insert(key.to_string());
        let lease = fresh.then(|| {
            Box::new(LocalLease {
                key: key.to_string(),
                held: self.held.clone(),
            }) as Box<dyn Lease>
        });
        Box::pin(async move { lease })
    }
}

/// A manual action on a running rollout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Pause,
    Resume,
    Abort,
    Advance,
}

impl Action {
    pub fn parse(s: &str) -> Option<Action> {
        Some(match s {
            "pause" => Action::Pause,
            "resume" => Action::Resume,
            "abort" => Action::Abort,
            "advance" => Action::Advance,
            _ => return None,
        })
    }
}

pub(crate) struct Command {
    pub action: Action,
    pub actor: String,
    pub reply: oneshot::Sender<Result<RolloutState, ControlError>>,
}

struct Active {
    tx: mpsc::Sender<Command>,
    state: Arc<Mutex<RolloutState>>,
}

/// The rollouts of this process: starts controllers, forwards manual actions, answers status.
pub struct Rollouts {
    pub(crate) runtime: Arc<Runtime>,
    pub(crate) backend: Arc<dyn RolloutBackend>,
    pub(crate) leadership: Arc<dyn Leadership>,
    active: Mutex<HashMap<String, Active>>,
    /// The last state of rollouts that ended here (the store has them too).
    finished: Mutex<HashMap<String, RolloutState>>,
    /// (route, candidate) pairs the config or labels asked for that were tried here.
    tried: Mutex<HashSet<(String, String)>>,
    pub(crate) shutdown: CancellationToken,
}

impl Rollouts {
    pub fn new(
        runtime: Arc<Runtime>,
        backend: Arc<dyn RolloutBackend>,
        leadership: Arc<dyn Leadership>,
        shutdown: CancellationToken,
    ) -> Arc<Rollouts> {
        Arc::new(Rollouts {
            runtime,
            backend,
            leadership,
            active: Mutex::default(),
            finished: Mutex::default(),
            tried: Mutex::default(),
            shutdown,
        })
    }

    /// Starts a rollout of `raw` on `route`: 404 unknown route, 422 bad spec (fields named),
    /// 409 while one is active.
    pub async fn start(
        self: &Arc<Self>,
        route: &str,
        raw: RawRollout,
        actor: &str,
    ) -> Result<RolloutState, ControlError> {
        let primary = {
            let snap = self.runtime.load();
            let r = snap
                .route(route)
                .ok_or_else(|| ControlError::NotFound(route.to_string()))?;
            let exists = |n: &str| snap.service(n).is_some();
            validate_rollout(&raw, "", Some(&r.spec.service), Some(&exists))
                .map_err(ControlError::Invalid)?;
            r.spec.service.clone()
        };
        // Another replica may run it: the store knows.
        let stored = self.backend.load(route).await.ok().flatten();
        if self.is_active(route) || stored.is_some_and(|s| s.status.is_active()) {
            return Err(ControlError::Conflict(format!(
                "route `{route}` already has a rollout in progress; abort it first"
            )));
        }
        let mut state = RolloutState::new(route, raw, &primary);
        let first = state.validated().map_err(ControlError::Invalid)?.steps[0];
        state.log(
            "start",
            actor,
            &first,
            format!("rollout of `{}` started", state.spec.service),
        );
        self.runtime.record_event(
            "rollout.start",
            Some(route),
            actor,
            serde_json::to_value(&state.spec).unwrap_or_default(),
        );
        self.spawn(state.clone());
        Ok(state)
    }

    fn is_active(&self, route: &str) -> bool {
        self.active
            .lock()
            .expect("rollouts lock")
            .contains_key(route)
    }

    /// Starts the controller task of `state` (a new rollout, or one restored).
    fn spawn(self: &Arc<Self>, state: RolloutState) {
        let (tx, rx) = mpsc::channel(8);
        let route = state.route.clone();
        let shared = Arc::new(Mutex::new(state));
        self.active.lock().expect("rollouts lock").insert(
            route.clone(),
            Active {
                tx,
                state: shared.clone(),
            },
        );
        let this = self.clone();
        let span = tracing::info_span!("rollout_controller", route = %route);
        tokio::spawn(tracing::Instrument::instrument(
            controller::run(this, shared, rx),
            span,
        ));
    }

    /// Called by a controller when its rollout ends (or it stops running it here).
    pub(crate) fn ended(&self, route: &str, state: Option<RolloutState>) {
        self.active.lock().expect("rollouts lock").remove(route);
        if let Some(s) = state {
            self.finished
                .lock()
                .expect("rollouts lock")
                .insert(route.to_string(), s);
        }
    }

    /// The rollout of a route: the active one, else the last one (here, else in the store).
    pub async fn status(&self, route: &str) -> Option<RolloutState> {
        if let Some(a) = self.active.lock().expect("rollouts lock").get(route) {
            return Some(a.state.lock().expect("state lock").clone());
        }
        if let Some(s) = self.finished.lock().expect("rollouts lock").get(route) {
            return Some(s.clone());
        }
        self.backend.load(route).await.ok().flatten()
    }

    /// A manual action; 404 when no rollout is active on the route.
    pub async fn act(
        &self,
        route: &str,
        action: Action,
        actor: &str,
    ) -> Result<RolloutState, ControlError> {
        let tx = self
            .active
            .lock()
            .expect("rollouts lock")
            .get(route)
            .map(|a| a.tx.clone())
            .ok_or_else(|| {
                ControlError::Conflict(format!("route `{route}` has no rollout in progress"))
            })?;
        let (reply, rx) = oneshot::channel();
        let cmd = Command {
            action,
            actor: actor.to_string(),
            reply,
        };
        let gone = || ControlError::Conflict(format!("the rollout of `{route}` just ended"));
        tx.send(cmd).await.map_err(|_| gone())?;
        rx.await.map_err(|_| gone())?
    }

    /// Starts the rollouts the config (a route's `rollout`, also after a reload) and Docker
    /// labels (`umbra.rollout.of`) ask for that never ran: each (route, candidate) is tried
    /// once per process, and not at all when the route's last rollout was of that candidate.
    pub async fn start_requested(self: &Arc<Self>) {
        let asked: Vec<(String, RawRollout, &str)> = {
            let snap = self.runtime.load();
            let from_config = snap.routes.iter().filter_map(|r| {
                let raw = r.spec.raw.rollout.clone()?;
                // After a promotion the candidate is the route's service: nothing to do.
                (raw.service != r.spec.service).then(|| (r.spec.name.clone(), raw, "file"))
            });
            let from_labels = self
                .runtime
                .docker_rollouts()
                .into_iter()
                .map(|(route, raw)| (route, raw, "docker"));
            from_config.chain(from_labels).collect()
        };
        for (route, raw, source) in asked {
            let key = (route.clone(), raw.service.clone());
            if self.is_active(&route) || !self.tried.lock().expect("tried lock").insert(key) {
                continue;
            }
            let last = self.status(&route).await;
            if last.is_some_and(|s| s.spec.service == raw.service) {
                continue;
            }
            if let Err(e) = self.start(&route, raw, source).await {
                tracing::warn!(route = %route, source, error = %e, "asked-for rollout not started");
            }
        }
    }

    /// Watches for rollouts asked by the config and labels until shutdown (a named background
    /// service).
    pub fn watch_requests(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let this = self.clone();
        let span = tracing::info_span!("rollout_requests");
        tokio::spawn(tracing::Instrument::instrument(
            async move {
                loop {
                    this.stand_by().await;
                    this.start_requested().await;
                    tokio::select! {
                        _ = this.shutdown.cancelled() => return,
                        _ = tokio::time::sleep(std::time::Duration::from_secs(1)) => {}
                    }
                }
            },
            span,
        ))
    }

    /// Stands by for the active rollouts other replicas started (stored, not run here): their
    /// controllers wait for the lease, so this process takes a rollout over when its holder
    /// dies. A rollout that already ended here (e.g. invalid when stored) is not retried.
    pub async fn stand_by(self: &Arc<Self>) {
        let Ok(stored) = self.backend.load_all().await else {
            return;
        };
        for s in stored {
            let seen = self
                .finished
                .lock()
                .expect("rollouts lock")
                .get(&s.route)
                .is_some_and(|f| f.started_ms == s.started_ms);
            if s.status.is_active() && !seen && !self.is_active(&s.route) {
                tracing::info!(route = %s.route, step = s.step, "standing by for a rollout");
                self.spawn(s);
            }
        }
    }

    /// Resumes stored active rollouts (those the config or labels ask for start with
    /// [`Rollouts::start_requested`]).
    pub async fn restore(self: &Arc<Self>) -> Vec<String> {
        let mut problems = Vec::new();
        let stored = match self.backend.load_all().await {
            Ok(s) => s,
            Err(e) => {
                problems.push(format!("could not load rollouts: {e}"));
                Vec::new()
            }
        };
        for s in stored {
            if s.status.is_active() {
                tracing::info!(route = %s.route, step = s.step, "resuming rollout");
                self.spawn(s);
            } else {
                self.finished
                    .lock()
                    .expect("rollouts lock")
                    .insert(s.route.clone(), s);
            }
        }
        for p in &problems {
            tracing::warn!("{p}");
        }
        problems
    }
}
