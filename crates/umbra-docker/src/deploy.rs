//! `umbra.deploy.of=<route>` (control plane): blue/green with compose. A container with the
//! label replaces the route's servers once it is in rotation (running, Docker-healthy or
//! listening), through the same deploy as `umbra deploy`: its health path (`umbra.health.path`,
//! else the route service's, else `/up`) must answer 2xx, then the switch, then the drain. Each
//! container address deploys once; a failure is shown on the container in `/api/discovery`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use umbra_core::deploy::{deploy, DeployRequest};
use umbra_core::discovery::{ContainerStatus, LabelError};
use umbra_core::Runtime;

use crate::labels;
use crate::model::Container;
use crate::watch::Msg;

/// How long a labelled container's health path may take to answer 2xx.
const WAIT: Duration = Duration::from_secs(60);
/// How long requests in flight on the replaced servers may take.
const DRAIN: Duration = Duration::from_secs(30);
const LABEL: &str = "umbra.deploy.of";

/// A deploy's end, reported back to the watcher: container id, and the error if it failed.
pub(crate) type Finished = (String, Result<(), String>);

/// Label deploys started so far, by container id.
#[derive(Default)]
pub(crate) struct Deploys {
    /// The address each container was deployed (or is being deployed) with.
    started: HashMap<String, String>,
    failed: HashMap<String, String>,
}

impl Deploys {
    /// Starts a deploy for each labelled container newly in rotation, and notes past
    /// failures on their containers' reports.
    pub(crate) fn start(
        &mut self,
        runtime: &Arc<Runtime>,
        containers: &HashMap<String, Container>,
        statuses: &mut [ContainerStatus],
        done: &mpsc::Sender<Msg>,
    ) {
        self.started.retain(|id, _| containers.contains_key(id));
        self.failed.retain(|id, _| containers.contains_key(id));
        for c in containers.values() {
            let Some(route) = labels::parse(&c.labels).deploy_of else {
                continue;
            };
            let short: String = c.id.chars().take(12).collect();
            let Some(status) = statuses.iter_mut().find(|s| s.id == short) else {
                continue;
            };
            if let Some(e) = self.failed.get(&c.id) {
                status.errors.push(LabelError {
                    label: LABEL.into(),
                    message: e.clone(),
                });
            }
            let Some(address) = status.address.clone().filter(|_| status.in_rotation) else {
                continue;
            };
            if self.started.get(&c.id) == Some(&address) {
                continue;
            }
            self.started.insert(c.id.clone(), address.clone());
            self.failed.remove(&c.id);
            let health_path = labels::parse(&c.labels)
                .health_path
                .unwrap_or_else(|| "/up".into());
            let req = DeployRequest {
                target: address,
                wait: WAIT,
                drain: DRAIN,
                health_path,
            };
            let (rt, done, id, name) =
                (runtime.clone(), done.clone(), c.id.clone(), c.name.clone());
            tokio::spawn(async move {
                tracing::info!(container = %name, %route, to = %req.target, "umbra.deploy.of: deploying");
                let result = deploy(&rt, &route, req, "docker").await;
                let result = result.map(|_| ()).map_err(|e| e.to_string());
                if let Err(e) = &result {
                    tracing::warn!(container = %name, %route, error = %e, "umbra.deploy.of: deploy failed");
                }
                let _ = done.send(Msg::Deployed((id, result))).await;
            });
        }
    }

    /// Records a finished deploy; true when the report should change (it failed).
    pub(crate) fn finished(&mut self, (id, result): Finished) -> bool {
        match result {
            Ok(()) => false,
            Err(e) => {
                self.failed.insert(id, e);
                true
            }
        }
    }
}
