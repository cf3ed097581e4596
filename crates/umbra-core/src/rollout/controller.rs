//! The rollout controller: one task per active rollout. Each `interval` it judges the current
//! step's window and holds, advances (shadow → canary N % → promotion) or rolls back; it also
//! takes manual actions (pause, resume, abort, advance). Every step, decision and action is
//! persisted and is an event. Control plane.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc;

use super::judge::{decide, judge, Decision, GateResult};
use super::spec::{RolloutSpec, Step};
use super::state::{RolloutState, Status};
use super::{hooks, Action, Command, Lease, Recorder, Rollouts};
use crate::config::{RawCanary, RawShadow};
use crate::runtime::{now_ms, ControlError, Persist};

/// Whoever acts for the controller in events and route changes.
const ACTOR: &str = "rollout";

/// Runs one rollout until it ends, is stopped (shutdown) or loses its lease.
pub(crate) async fn run(
    rs: Arc<Rollouts>,
    shared: Arc<Mutex<RolloutState>>,
    mut rx: mpsc::Receiver<Command>,
) {
    let initial = shared.lock().expect("state lock").clone();
    let route = initial.route.clone();
    let spec = match initial.validated() {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(route = %route, errors = ?e, "stored rollout is invalid; not resumed");
            rs.ended(&route, Some(initial));
            return;
        }
    };
    let Some(lease) = hold(&rs, &shared, spec.interval, &mut rx).await else {
        let last = shared.lock().expect("state lock").clone();
        rs.ended(&route, Some(last));
        return;
    };
    // Another replica may have moved the rollout on while this one waited for the lease.
    let state = match rs.backend.load(&route).await {
        Ok(Some(s)) if s.started_ms == initial.started_ms => s,
        _ => initial,
    };
    let mut ctl = Controller {
        rs: rs.clone(),
        shared,
        spec,
        state,
        recorder: None,
        _lease: lease,
    };
    ctl.enter().await;
    while ctl.state.status.is_active() {
        tokio::select! {
            _ = rs.shutdown.cancelled() => return,
            cmd = rx.recv() => match cmd {
                Some(c) => ctl.command(c).await,
                None => return,
            },
            _ = tokio::time::sleep(ctl.spec.interval) => ctl.tick().await,
        }
        if !ctl._lease.is_held() {
            tracing::warn!(route = %route, "rollout lease lost; another replica continues");
            rs.ended(&route, None);
            return;
        }
    }
    rs.ended(&route, Some(ctl.state.clone()));
}

/// Waits until this process holds the rollout's lease (None on shutdown, or when the rollout
/// ended under another replica). Meanwhile the state readers see is refreshed from the store,
/// and manual actions are refused: the replica holding the lease runs the rollout.
async fn hold(
    rs: &Rollouts,
    shared: &Mutex<RolloutState>,
    interval: Duration,
    rx: &mut mpsc::Receiver<Command>,
) -> Option<Box<dyn Lease>> {
    let route = shared.lock().expect("state lock").route.clone();
    let key = format!("rollout:{route}");
    loop {
        if let Some(lease) = rs.leadership.try_hold(&key).await {
            return Some(lease);
        }
        if let Ok(Some(stored)) = rs.backend.load(&route).await {
            let ended = !stored.status.is_active();
            *shared.lock().expect("state lock") = stored;
            if ended {
                return None;
            }
        }
        tokio::select! {
            _ = rs.shutdown.cancelled() => return None,
            Some(c) = rx.recv() => {
                let _ = c.reply.send(Err(ControlError::Conflict(format!(
                    "the rollout of `{route}` is run by another umbra replica; ask that one"
                ))));
            }
            _ = tokio::time::sleep(interval) => {}
        }
    }
}

struct Controller {
    rs: Arc<Rollouts>,
    shared: Arc<Mutex<RolloutState>>,
    spec: RolloutSpec,
    state: RolloutState,
    recorder: Option<Arc<Recorder>>,
    _lease: Box<dyn Lease>,
}

impl Controller {
    fn route(&self) -> &str {
        &self.state.route
    }

    fn step(&self) -> Step {
        self.spec.steps[self.state.step.min(self.spec.steps.len() - 1)]
    }

    /// Publishes the state to readers and the store.
    async fn save(&mut self) {
        self.state.updated_ms = now_ms();
        *self.shared.lock().expect("state lock") = self.state.clone();
        if let Err(e) = self.rs.backend.save(&self.state).await {
            tracing::warn!(route = %self.route(), error = %e, "rollout state not persisted");
        }
    }

    fn event(&self, kind: &str, actor: &str, detail: serde_json::Value) {
        let mut detail = detail;
        if let Some(obj) = detail.as_object_mut() {
            obj.insert("step".into(), self.state.step.into());
            obj.insert("step_label".into(), self.step().label().into());
            obj.insert("candidate".into(), self.spec.service.clone().into());
        }
        self.rs
            .runtime
            .record_event(kind, Some(self.route()), actor, detail);
    }

    /// Persists a route change the controller made.
    async fn persist(&self, change: Result<Persist, ControlError>) -> Result<(), String> {
        let p = change.map_err(|e| e.to_string())?;
        if let Err(e) = self.rs.backend.persist_route(p).await {
            tracing::warn!(route = %self.route(), error = %e, "rollout's route change not persisted");
        }
        Ok(())
    }

    /// Enters the current step: the `before_step` hook (once per window), the step's
    /// traffic, a fresh recorder. On a restart the window goes on where it was.
    async fn enter(&mut self) {
        if self.state.status != Status::Running && self.state.status != Status::Paused {
            return;
        }
        let step = self.step();
        if self.state.window_start_ms.is_none() {
            if let Some(url) = self.spec.before_step.clone() {
                if let Err(why) = hooks::post(&url, &self.state.to_json()).await {
                    if self.state.held.as_deref() != Some(why.as_str()) {
                        self.state.log("hold", ACTOR, &step, why.clone());
                        self.event("rollout.hold", ACTOR, serde_json::json!({ "reason": why }));
                        self.state.held = Some(why);
                        self.save().await;
                    }
                    return;
                }
            }
            self.state.held = None;
            self.state.window_start_ms = Some(now_ms());
            self.state.failures = 0;
            self.state.last = None;
            self.state.log(
                "step",
                ACTOR,
                &step,
                format!("step {} started", step.label()),
            );
            self.event("rollout.step", ACTOR, serde_json::json!({}));
        }
        if step == Step::Promote {
            return self.promote().await;
        }
        let recorder = Arc::new(Recorder::new(self.spec.service.clone()));
        self.rs
            .runtime
            .set_recorder(self.route(), Some(recorder.clone()));
        self.recorder = Some(recorder);
        if let Err(e) = self.apply(step).await {
            self.abandon(format!("could not apply step {}: {e}", step.label()))
                .await;
            return;
        }
        self.save().await;
    }

    /// Sets the route's traffic for a shadow or canary step (idempotent).
    async fn apply(&self, step: Step) -> Result<(), String> {
        let rt = &self.rs.runtime;
        let candidate = self.spec.service.clone();
        let (shadow_is_ours, canary, shadow) = {
            let snap = rt.load();
            let r = snap.route(self.route()).ok_or("the route is gone")?;
            let ours = r.spec.shadows.iter().any(|s| s.service == candidate);
            // A new candidate takes the settings (secondary, methods) of the route's first one.
            let template = r
                .spec
                .raw
                .shadow
                .as_ref()
                .and_then(|l| l.0.first().cloned());
            (ours, r.spec.canary.clone(), template)
        };
        match step {
            Step::Shadow { .. } => {
                if canary.is_some_and(|c| c.service == candidate) {
                    self.persist(rt.set_canary(self.route(), None, ACTOR))
                        .await?;
                }
                if !shadow_is_ours {
                    // The route's other candidates keep shadowing; this one joins them.
                    let shadow = RawShadow {
                        service: candidate,
                        percent: Some(100.0),
                        ..shadow.unwrap_or_default()
                    };
                    self.persist(rt.upsert_shadow(self.route(), shadow, ACTOR))
                        .await?;
                }
            }
            Step::Canary { percent, .. } => {
                if shadow_is_ours {
                    self.persist(rt.remove_shadow(self.route(), &candidate, ACTOR))
                        .await?;
                }
                let same = canary.is_some_and(|c| c.service == candidate && c.weight == percent);
                if !same {
                    let c = RawCanary {
                        service: candidate,
                        weight: percent,
                        sticky: None,
                    };
                    self.persist(rt.set_canary(self.route(), Some(c), ACTOR))
                        .await?;
                }
            }
            Step::Promote => {}
        }
        Ok(())
    }

    /// One evaluation of the current window.
    async fn tick(&mut self) {
        if self.state.status != Status::Running {
            return;
        }
        let (Some(start), Some(rec)) = (self.state.window_start_ms, self.recorder.clone()) else {
            // A hook holds the step (or its traffic could not be set): try again.
            return self.enter().await;
        };
        let step = self.step();
        let elapsed = Duration::from_millis((now_ms() - start).max(0) as u64);
        let j = judge(&rec.window(&step), &self.spec.thresholds);
        let d = decide(&self.spec, &step, elapsed, self.state.failures, &j);
        self.state.last = Some(j.clone());
        match d {
            Decision::Hold { failures } => self.state.failures = failures,
            Decision::Failing { failures } => {
                self.state.failures = failures;
                let entry = self.state.log("failing", ACTOR, &step, j.summary.clone());
                entry.judgement = Some(j.clone());
                self.event(
                    "rollout.failing",
                    ACTOR,
                    serde_json::json!({ "failures": failures, "judgement": j }),
                );
            }
            Decision::Advance => {
                let entry = self.state.log("advance", ACTOR, &step, j.summary.clone());
                entry.judgement = Some(j.clone());
                self.event(
                    "rollout.advance",
                    ACTOR,
                    serde_json::json!({ "judgement": j }),
                );
                return self.next_step().await;
            }
            Decision::Rollback(gate) => {
                if j.outcome == super::judge::Outcome::Fail {
                    self.state.failures += 1;
                }
                return self.rollback(gate, Some(j)).await;
            }
        }
        self.save().await;
    }

    async fn next_step(&mut self) {
        self.state.step += 1;
        self.state.window_start_ms = None;
        self.state.failures = 0;
        self.save().await;
        self.enter().await;
    }

    /// The candidate becomes the route's service; shadow and canary off.
    async fn promote(&mut self) {
        let rt = self.rs.runtime.clone();
        let canary = RawCanary {
            service: self.spec.service.clone(),
            weight: 100.0,
            sticky: None,
        };
        let done = match self
            .persist(rt.set_canary(self.route(), Some(canary), ACTOR))
            .await
        {
            Ok(()) => self.persist(rt.promote(self.route(), ACTOR)).await,
            Err(e) => Err(e),
        };
        if let Err(e) = done {
            return self.abandon(format!("could not promote: {e}")).await;
        }
        rt.set_recorder(self.route(), None);
        self.state.status = Status::Promoted;
        let step = self.step();
        let msg = format!(
            "`{}` promoted: it now serves all traffic",
            self.spec.service
        );
        self.state.log("promote", ACTOR, &step, msg);
        self.event("rollout.promote", ACTOR, serde_json::json!({}));
        self.save().await;
        self.finish_hook().await;
    }

    /// All traffic back to the primary, shadow off, the reason recorded.
    async fn rollback(&mut self, gate: GateResult, j: Option<super::judge::Judgement>) {
        self.all_to_primary().await;
        self.state.status = Status::RolledBack;
        let step = self.step();
        let msg = format!("rolled back: {} gate: {}", gate.gate.as_str(), gate.detail);
        let entry = self.state.log("rollback", ACTOR, &step, msg);
        entry.judgement = j;
        entry.reason = Some(gate.clone());
        self.state.reason = Some(gate.clone());
        self.event(
            "rollout.rollback",
            ACTOR,
            serde_json::json!({ "reason": gate }),
        );
        self.save().await;
        self.finish_hook().await;
    }

    /// Ends a rollout whose traffic could not be set (e.g. its route or candidate is gone).
    async fn abandon(&mut self, why: String) {
        tracing::error!(route = %self.route(), "{why}");
        let gate = GateResult {
            gate: super::judge::Gate::Hook,
            passed: false,
            value: 0.0,
            threshold: 0.0,
            samples: 0,
            detail: why,
        };
        self.rollback(gate, None).await;
    }

    /// Drops the rollout's canary and its own shadow: the primary serves everything; the
    /// route's other candidates keep shadowing.
    async fn all_to_primary(&mut self) {
        let rt = self.rs.runtime.clone();
        rt.set_recorder(self.route(), None);
        let candidate = &self.spec.service;
        let (canary, shadow) = rt.load().route(self.route()).map_or((false, false), |r| {
            let canary = r
                .spec
                .canary
                .as_ref()
                .is_some_and(|c| &c.service == candidate);
            (
                canary,
                r.spec.shadows.iter().any(|s| &s.service == candidate),
            )
        });
        if canary {
            if let Err(e) = self.persist(rt.set_canary(self.route(), None, ACTOR)).await {
                tracing::error!(route = %self.route(), error = %e, "rollback failed");
            }
        }
        if shadow {
            let removed = rt.remove_shadow(self.route(), candidate, ACTOR);
            if let Err(e) = self.persist(removed).await {
                tracing::error!(route = %self.route(), error = %e, "rollback failed");
            }
        }
    }

    async fn finish_hook(&self) {
        let Some(url) = &self.spec.on_finish else {
            return;
        };
        if let Err(e) = hooks::post(url, &self.state.to_json()).await {
            tracing::warn!(route = %self.route(), "on_finish {e}");
        }
    }

    /// A manual action; answers with the state after it.
    async fn command(&mut self, c: Command) {
        let step = self.step();
        let actor = c.actor.as_str();
        let result = match (c.action, self.state.status) {
            (Action::Pause, Status::Running) => {
                self.state.status = Status::Paused;
                self.state.log("pause", actor, &step, "paused".into());
                Ok(())
            }
            (Action::Resume, Status::Paused) => {
                self.state.status = Status::Running;
                self.state.log("resume", actor, &step, "resumed".into());
                Ok(())
            }
            (Action::Abort, _) => {
                self.all_to_primary().await;
                self.state.status = Status::Aborted;
                self.state.log(
                    "abort",
                    actor,
                    &step,
                    "aborted: all traffic on the primary".into(),
                );
                Ok(())
            }
            (Action::Advance, _) => {
                self.state
                    .log("advance", actor, &step, "advanced by hand".into());
                Ok(())
            }
            (a, s) => Err(ControlError::Conflict(format!(
                "cannot {a:?} a rollout that is {}",
                s.as_str()
            ))),
        };
        if result.is_ok() {
            let kind = format!("rollout.{}", format!("{:?}", c.action).to_lowercase());
            self.event(&kind, actor, serde_json::json!({ "manual": true }));
            match c.action {
                Action::Advance => self.next_step().await,
                Action::Abort => {
                    self.save().await;
                    self.finish_hook().await;
                }
                _ => self.save().await,
            }
        }
        let _ = c.reply.send(result.map(|()| self.state.clone()));
    }
}
