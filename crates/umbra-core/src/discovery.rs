//! What Docker discovery sees, for the admin API and UI: the engine connection and, per
//! container, its state, address, the routes it feeds and every label mistake it carries.

use serde::Serialize;

/// The discovery report shown by `GET /api/discovery`.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct DiscoveryStatus {
    /// `[docker]` is configured and enabled.
    pub enabled: bool,
    /// The engine answered the last list or is streaming events.
    pub connected: bool,
    pub endpoint: String,
    /// Why the engine is unreachable (routes from the last good listing are kept meanwhile).
    pub last_error: Option<String>,
    pub last_sync_at_ms: Option<i64>,
    /// The compose project discovery is limited to, if any.
    pub project: Option<String>,
    /// Where `project` came from: `config` (`[docker].project`) or `own container` (the
    /// `com.docker.compose.project` label of the container umbra runs in).
    pub project_from: Option<String>,
    /// Compose projects of the containers the engine has, when the filter matches none.
    pub projects_seen: Vec<String>,
    /// Why discovery finds nothing, in words (e.g. a project filter that matches no container).
    pub notice: Option<String>,
    pub containers: Vec<ContainerStatus>,
}

/// One container that asked to be exposed (or would be, with `exposed_by_default`).
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct ContainerStatus {
    pub id: String,
    pub name: String,
    /// Docker's state: `running`, `exited`, ... or `stopping` once a stop/kill was seen.
    pub state: String,
    /// Docker health: `starting`, `healthy`, `unhealthy`; None without a HEALTHCHECK.
    pub health: Option<String>,
    /// Receives traffic now.
    pub in_rotation: bool,
    /// `scheme://ip:port` umbra sends to.
    pub address: Option<String>,
    pub network: Option<String>,
    pub services: Vec<String>,
    pub routes: Vec<String>,
    pub errors: Vec<LabelError>,
}

/// A label umbra could not use, with what was expected.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct LabelError {
    /// The label key, or `-` for a problem not tied to one label (e.g. no network).
    pub label: String,
    pub message: String,
}
