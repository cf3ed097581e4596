//! A rollout's state as persisted and shown: where it is (step, window start, failures in a
//! row), how it ended, and the history of its decisions with the evidence behind each.
//! Control plane; plain data (serde), so the store keeps it as one JSON document.

use serde::{Deserialize, Serialize};

use super::judge::{GateResult, Judgement};
use super::spec::{validate_rollout, RolloutSpec, Step};
use crate::config::{ConfigError, RawRollout};
use crate::runtime::now_ms;

/// Decisions kept in a rollout's history (the oldest are dropped first, but never the first).
pub const HISTORY: usize = 200;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Running,
    Paused,
    Promoted,
    RolledBack,
    Aborted,
}

impl Status {
    /// Still under a controller's care (running or paused).
    pub fn is_active(&self) -> bool {
        matches!(self, Status::Running | Status::Paused)
    }

    pub fn as_str(&self) -> &'static str {
        match self {
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Promoted => "promoted",
            Status::RolledBack => "rolled_back",
            Status::Aborted => "aborted",
        }
    }
}

/// One decision or manual action.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    pub at_ms: i64,
    /// `start`, `step`, `hold`, `failing`, `advance`, `promote`, `rollback`, `pause`, `resume`,
    /// `abort`.
    pub action: String,
    pub step: usize,
    pub step_label: String,
    pub actor: String,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub judgement: Option<Judgement>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<GateResult>,
}

/// A rollout, as stored in the `rollouts` table and answered by `GET .../rollout`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RolloutState {
    pub route: String,
    /// The rollout as asked for (re-validated on restore).
    pub spec: RawRollout,
    /// The route's service when the rollout started: where a rollback returns.
    pub primary: String,
    pub status: Status,
    pub step: usize,
    /// When the current step's window started; None while a `before_step` hook holds it.
    pub window_start_ms: Option<i64>,
    pub failures: u32,
    pub started_ms: i64,
    pub updated_ms: i64,
    /// The latest evaluation of the current window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last: Option<Judgement>,
    /// Why the rollout rolled back (the gate, its value, threshold and samples).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<GateResult>,
    /// Why a hook holds the step, while it does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub held: Option<String>,
    pub history: Vec<Decision>,
}

impl RolloutState {
    pub fn new(route: &str, spec: RawRollout, primary: &str) -> RolloutState {
        let now = now_ms();
        RolloutState {
            route: route.to_string(),
            spec,
            primary: primary.to_string(),
            status: Status::Running,
            step: 0,
            window_start_ms: None,
            failures: 0,
            started_ms: now,
            updated_ms: now,
            last: None,
            reason: None,
            held: None,
            history: Vec::new(),
        }
    }

    /// The validated spec (the route's primary is not re-checked: after a promotion it is the
    /// candidate).
    pub fn validated(&self) -> Result<RolloutSpec, Vec<ConfigError>> {
        validate_rollout(&self.spec, "rollout", None, None)
    }

    /// Appends a decision, keeping the history bounded.
    pub fn log(
        &mut self,
        action: &str,
        actor: &str,
        step: &Step,
        message: String,
    ) -> &mut Decision {
        if self.history.len() >= HISTORY {
            self.history.remove(1);
        }
        self.updated_ms = now_ms();
        self.history.push(Decision {
            at_ms: self.updated_ms,
            action: action.to_string(),
            step: self.step,
            step_label: step.label(),
            actor: actor.to_string(),
            message,
            judgement: None,
            reason: None,
        });
        self.history.last_mut().expect("just pushed")
    }

    /// The JSON the API answers and the hooks receive: the state plus the current step and
    /// weight spelled out.
    pub fn to_json(&self) -> serde_json::Value {
        let mut doc = serde_json::to_value(self).expect("rollout state serializes");
        if let Ok(spec) = self.validated() {
            let step = spec.steps.get(self.step).copied();
            let weight = match (self.status, step) {
                (Status::Promoted, _) => 100.0,
                (s, Some(step)) if s.is_active() => step.weight(),
                _ => 0.0,
            };
            let labels: Vec<String> = spec.steps.iter().map(Step::label).collect();
            if let Some(obj) = doc.as_object_mut() {
                obj.insert("steps".into(), labels.into());
                obj.insert("weight".into(), weight.into());
                obj.insert(
                    "step_label".into(),
                    step.map(|s| s.label()).unwrap_or_default().into(),
                );
                obj.insert(
                    "thresholds".into(),
                    serde_json::to_value(spec.thresholds).unwrap_or_default(),
                );
            }
        }
        doc
    }
}
