//! Pause and maintenance of a route (control plane state, read by the data plane): `umbra
//! pause` holds new requests until `resume` (or answers 503 after `max`), `umbra maintenance`
//! answers 503 with a page. A route that is open costs one relaxed atomic load per request.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde::Serialize;
use tokio::sync::watch;

use super::{ControlError, Runtime};

/// What a route does with new requests.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum HoldMode {
    /// Requests flow (the normal state).
    Open,
    /// New requests wait for `resume`; each waits at most `max_ms`, then gets 503.
    Paused { max_ms: u64 },
    /// Requests get 503 with `message`.
    Maintenance { message: String },
}

/// A route's hold, shared by every snapshot of the route (it outlives reloads).
#[derive(Debug)]
pub struct Hold {
    /// True while the mode is not `Open`: the only thing the request path reads when open.
    held: AtomicBool,
    mode: watch::Sender<HoldMode>,
}

impl Default for Hold {
    fn default() -> Self {
        Hold {
            held: AtomicBool::new(false),
            mode: watch::Sender::new(HoldMode::Open),
        }
    }
}

/// Why a held request is answered by umbra instead of the upstream.
#[derive(Debug, Clone, PartialEq)]
pub enum Held {
    /// Paused longer than the pause's `max`.
    PauseExpired(Duration),
    Maintenance(String),
}

impl Hold {
    /// True when requests may go on at once (the fast check).
    #[inline]
    pub fn is_open(&self) -> bool {
        !self.held.load(Ordering::Relaxed)
    }

    pub fn mode(&self) -> HoldMode {
        self.mode.borrow().clone()
    }

    fn set(&self, mode: HoldMode) {
        self.held.store(mode != HoldMode::Open, Ordering::Relaxed);
        self.mode.send_replace(mode);
    }

    /// Waits while the route is paused: `Ok` once it is open again, an error when it is in
    /// maintenance or the pause outlasted its `max` for this request.
    pub async fn wait(&self) -> Result<(), Held> {
        let mut rx = self.mode.subscribe();
        let mut deadline: Option<tokio::time::Instant> = None;
        loop {
            let mode = rx.borrow_and_update().clone();
            let max = match mode {
                HoldMode::Open => return Ok(()),
                HoldMode::Maintenance { message } => return Err(Held::Maintenance(message)),
                HoldMode::Paused { max_ms } => Duration::from_millis(max_ms),
            };
            let until = *deadline.get_or_insert_with(|| tokio::time::Instant::now() + max);
            tokio::select! {
                changed = rx.changed() => if changed.is_err() { return Ok(()) },
                _ = tokio::time::sleep_until(until) => return Err(Held::PauseExpired(max)),
            }
        }
    }
}

impl Runtime {
    fn hold_of(&self, route: &str) -> Result<std::sync::Arc<Hold>, ControlError> {
        let snap = self.snapshot();
        let r = snap
            .route(route)
            .ok_or_else(|| ControlError::NotFound(route.to_string()))?;
        Ok(r.hold.clone())
    }

    /// Holds the route's new requests until [`Runtime::resume`]; each waits at most `max`.
    pub fn pause(&self, route: &str, max: Duration, actor: &str) -> Result<HoldMode, ControlError> {
        let hold = self.hold_of(route)?;
        let mode = HoldMode::Paused {
            max_ms: max.as_millis() as u64,
        };
        hold.set(mode.clone());
        self.event("route.pause", Some(route), actor, serde_json::json!(mode));
        Ok(mode)
    }

    /// Answers the route's requests with 503 and `message` until [`Runtime::resume`].
    pub fn maintenance(
        &self,
        route: &str,
        message: String,
        actor: &str,
    ) -> Result<HoldMode, ControlError> {
        let hold = self.hold_of(route)?;
        let mode = HoldMode::Maintenance { message };
        hold.set(mode.clone());
        self.event(
            "route.maintenance",
            Some(route),
            actor,
            serde_json::json!(mode),
        );
        Ok(mode)
    }

    /// Opens the route again: held requests go on to the upstream.
    pub fn resume(&self, route: &str, actor: &str) -> Result<HoldMode, ControlError> {
        let hold = self.hold_of(route)?;
        hold.set(HoldMode::Open);
        self.event("route.resume", Some(route), actor, serde_json::Value::Null);
        Ok(HoldMode::Open)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_paused_request_goes_on_at_resume() {
        let hold = std::sync::Arc::new(Hold::default());
        assert!(hold.is_open());
        hold.set(HoldMode::Paused { max_ms: 60_000 });
        assert!(!hold.is_open());
        let waiting = tokio::spawn({
            let hold = hold.clone();
            async move { hold.wait().await }
        });
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished());
        hold.set(HoldMode::Open);
        assert_eq!(waiting.await.unwrap(), Ok(()));
    }

    #[tokio::test]
    async fn a_pause_past_its_max_is_refused() {
        let hold = Hold::default();
        hold.set(HoldMode::Paused { max_ms: 30 });
        assert_eq!(
            hold.wait().await,
            Err(Held::PauseExpired(Duration::from_millis(30)))
        );
    }

    #[tokio::test]
    async fn maintenance_answers_at_once() {
        let hold = Hold::default();
        hold.set(HoldMode::Maintenance {
            message: "back soon".into(),
        });
        assert_eq!(
            hold.wait().await,
            Err(Held::Maintenance("back soon".into()))
        );
    }
}
