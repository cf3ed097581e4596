//! The control plane's state: the inputs (file config, routes made through the API, runtime
//! overrides, what Docker discovery found) and the one snapshot built from them. Every change
//! goes parse → validate → build → one atomic swap; a failure keeps the snapshot in force.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use arc_swap::{ArcSwap, Guard};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, Semaphore};

use crate::config::{
    validate_route, Config, ConfigError, ConfigErrors, RawCanary, RawRoute, RawService, RawShadow,
    RawShadows, RouteContext, ServiceSpec, Source,
};
use crate::snapshot::{Route, Snapshot};
use crate::telemetry::{Metrics, RouteStats};
use crate::upstream::{ServerRegistry, Service};

mod hold;
mod services;

pub use hold::{Held, Hold, HoldMode};
pub use services::SERVICE_KEY_PREFIX;

/// A runtime change to a file- or docker-defined route, persisted by the admin layer.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteOverride {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// `Some(None)`-like states are spelled with the `*_off` flags so the JSON stays plain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shadow: Option<RawShadows>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub shadow_off: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary: Option<RawCanary>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub canary_off: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_service: Option<String>,
    /// Extra `compare.ignore` paths (fields marked as noise).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ignore: Vec<String>,
}

impl RouteOverride {
    fn is_empty(&self) -> bool {
        *self == RouteOverride::default()
    }

    /// The route's candidates become `shadow` (None: no shadow, whatever the definition says).
    fn set_shadows(&mut self, shadow: Option<RawShadows>) {
        self.shadow_off = shadow.is_none();
        self.shadow = shadow;
    }

    fn apply(&self, base: &RawRoute) -> RawRoute {
        let mut r = base.clone();
        if let Some(s) = &self.service {
            r.service = s.clone();
        }
        if self.shadow_off {
            r.shadow = None;
        }
        if let Some(s) = &self.shadow {
            r.shadow = Some(s.clone());
        }
        if self.canary_off {
            r.canary = None;
        }
        if let Some(c) = &self.canary {
            r.canary = Some(c.clone());
        }
        if !self.ignore.is_empty() {
            let cmp = r.compare.get_or_insert_with(Default::default);
            for p in &self.ignore {
                if !cmp.ignore.contains(p) {
                    cmp.ignore.push(p.clone());
                }
            }
        }
        r
    }
}

/// What a route change leaves to persist: the admin layer writes it to the store.
#[derive(Debug, Clone, PartialEq)]
pub enum Persist {
    /// A route made through the API, as a whole.
    ApiRoute(Box<RawRoute>, Option<String>),
    /// An override of a file- or docker-defined route.
    Override(String, Box<RouteOverride>),
    /// Nothing stored for this name any more.
    Delete(String),
    /// A service made (or replaced, e.g. by a deploy) through the API.
    Service(String, Box<RawService>),
    /// A service made through the API is gone.
    DeleteService(String),
}

impl Persist {
    /// (name, kind, document) as stored in the `routes` table; None for a deletion.
    pub fn to_doc(&self) -> Option<(String, &'static str, serde_json::Value)> {
        match self {
            Persist::ApiRoute(r, prev) => {
                let mut doc = serde_json::to_value(r).expect("routes serialize");
                if let (Some(p), Some(obj)) = (prev, doc.as_object_mut()) {
                    obj.insert("previous_service".into(), p.clone().into());
                }
                Some((r.name.clone(), "api", doc))
            }
            Persist::Override(name, o) => Some((
                name.clone(),
                "override",
                serde_json::to_value(o).expect("overrides serialize"),
            )),
            Persist::Service(name, s) => Some((
                services::store_key(name),
                "service",
                serde_json::to_value(s).expect("services serialize"),
            )),
            Persist::Delete(_) | Persist::DeleteService(_) => None,
        }
    }

    /// The route's (or service's) name.
    pub fn name(&self) -> &str {
        match self {
            Persist::ApiRoute(r, _) => &r.name,
            Persist::Override(n, _)
            | Persist::Delete(n)
            | Persist::Service(n, _)
            | Persist::DeleteService(n) => n,
        }
    }

    /// The row's name in the store's `routes` table: a route's name, or
    /// `service:<name>` for a service (names never hold `:`, so the two never collide).
    pub fn store_key(&self) -> String {
        match self {
            Persist::Service(n, _) | Persist::DeleteService(n) => services::store_key(n),
            _ => self.name().to_string(),
        }
    }
}

/// Why a runtime change was refused; the admin layer maps these to HTTP statuses.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("no route named `{0}`")]
    NotFound(String),
    #[error("no service named `{0}`")]
    NoService(String),
    #[error("route `{name}` is defined by {origin} and cannot be changed through the API; change its {origin} definition instead")]
    ReadOnly { name: String, origin: &'static str },
    #[error("{}", .0.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("; "))]
    Invalid(Vec<ConfigError>),
    #[error("{0}")]
    Conflict(String),
}

/// Routes and services found by Docker discovery.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DockerInputs {
    pub services: BTreeMap<String, ServiceSpec>,
    pub routes: Vec<RawRoute>,
    /// Shadows and canaries that labels (`umbra.shadow.of`, `umbra.canary.of`) attach to routes
    /// defined in the file or through the API. They apply where the route's own definition has
    /// none; a runtime override (API, UI) still wins over them.
    pub attach: BTreeMap<String, Attach>,
    /// Rollouts that labels (`umbra.rollout.of`) ask for, by route, once their container is
    /// healthy; the rollout controllers start them.
    pub rollouts: BTreeMap<String, crate::config::RawRollout>,
}

/// A shadow and/or canary attached to a route by container labels.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Attach {
    /// One candidate per container with `umbra.shadow.of` (several make a list).
    pub shadow: Option<RawShadows>,
    pub canary: Option<crate::config::raw::RawCanary>,
}

impl Attach {
    /// `raw` with the attached shadow / canary filled in where it has none; None when nothing
    /// changes.
    fn apply(&self, raw: &RawRoute) -> Option<RawRoute> {
        let mut out = raw.clone();
        if out.shadow.is_none() {
            out.shadow = self.shadow.clone();
        }
        if out.canary.is_none() {
            out.canary = self.canary.clone();
        }
        (out != *raw).then_some(out)
    }
}

/// The `routes`-table kinds that hold route documents: a route made through the API, and an
/// override of a file- or docker-defined route.
/// A service made at runtime is stored there too, as a `service:<name>` row of kind `service`.
pub const ROUTE_DOC_KINDS: &[&str] = &["api", "override", "service"];

/// A stored route document, parsed.
#[derive(Debug, Clone, PartialEq)]
enum StoredDoc {
    Api(Box<RawRoute>, Option<String>),
    Override(Box<RouteOverride>),
    /// A service made at runtime (stored under `service:<name>`).
    Service(Box<(RawService, ServiceSpec)>),
}

impl StoredDoc {
    fn parse(name: &str, kind: &str, mut doc: serde_json::Value) -> Result<StoredDoc, String> {
        match kind {
            "api" => {
                let prev = doc
                    .as_object_mut()
                    .and_then(|o| o.remove("previous_service"))
                    .and_then(|v| v.as_str().map(str::to_string));
                serde_json::from_value::<RawRoute>(doc)
                    .map(|r| StoredDoc::Api(Box::new(r), prev))
                    .map_err(|e| format!("stored route `{name}`: {e}"))
            }
            "override" => serde_json::from_value::<RouteOverride>(doc)
                .map(|o| StoredDoc::Override(Box::new(o)))
                .map_err(|e| format!("stored override of `{name}`: {e}")),
            "service" => services::parse_stored(name, doc).map(|s| StoredDoc::Service(Box::new(s))),
            other => Err(format!("stored route `{name}` has unknown kind `{other}`")),
        }
    }

    /// What is in force under `name`.
    fn current(inputs: &Inputs, name: &str) -> Option<StoredDoc> {
        if let Some(svc) = name.strip_prefix(services::SERVICE_KEY_PREFIX) {
            let s = inputs.api_services.get(svc)?;
            return Some(StoredDoc::Service(Box::new(s.clone())));
        }
        if let Some((r, prev)) = inputs.api_routes.get(name) {
            return Some(StoredDoc::Api(Box::new(r.clone()), prev.clone()));
        }
        inputs
            .overrides
            .get(name)
            .map(|o| StoredDoc::Override(Box::new(o.clone())))
    }

    fn insert(self, inputs: &mut Inputs, name: String) {
        match self {
            StoredDoc::Api(r, prev) => {
                inputs.api_routes.insert(name, (*r, prev));
            }
            StoredDoc::Override(o) => {
                inputs.overrides.insert(name, *o);
            }
            StoredDoc::Service(s) => {
                let key = name
                    .strip_prefix(services::SERVICE_KEY_PREFIX)
                    .unwrap_or(&name);
                inputs.api_services.insert(key.to_string(), *s);
            }
        }
    }
}

#[derive(Debug, Clone)]
struct Inputs {
    file: Arc<Config>,
    api_routes: BTreeMap<String, (RawRoute, Option<String>)>,
    overrides: BTreeMap<String, RouteOverride>,
    docker: DockerInputs,
    /// Services made through the API (or replaced by a deploy), as written and validated.
    /// One named like a file or docker service takes its place (a deploy's new servers).
    api_services: BTreeMap<String, (RawService, ServiceSpec)>,
}

/// The outcome of the last reload, for `/api/status`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ReloadStatus {
    pub last_reload_at_ms: Option<i64>,
    pub last_reload_error: Option<String>,
    pub reloads: u64,
}

/// A control-plane happening for the audit log.
#[derive(Debug, Clone, Serialize)]
pub struct RuntimeEvent {
    pub kind: String,
    pub route: Option<String>,
    pub source: String,
    pub detail: serde_json::Value,
}

/// Live state of a route kept across snapshots: its counters and its hold (pause /
/// maintenance).
type RouteState = (Arc<RouteStats>, Arc<Hold>);

/// The access log the config asks for; stdout (said loudly) when its file cannot be opened,
/// so that a bad log path does not stop the proxy.
fn access_log(cfg: &crate::config::LogConfig, metrics: &Metrics) -> crate::telemetry::AccessLog {
    let dropped = metrics.access_log_dropped.clone();
    crate::telemetry::AccessLog::open(cfg, dropped.clone()).unwrap_or_else(|e| {
        let path = cfg.file.as_ref().map(|f| f.path.display().to_string());
        tracing::error!(path = path.unwrap_or_default(), error = %e, "cannot open the access-log file; the access log goes to stdout");
        let stdout = crate::config::LogConfig { file: None, ..cfg.clone() };
        crate::telemetry::AccessLog::open(&stdout, dropped).expect("stdout opens")
    })
}

/// The route's shadow candidates, as a list to change.
fn shadow_list(route: &RawRoute) -> Vec<RawShadow> {
    route.shadow.as_ref().map_or_else(Vec::new, |s| s.0.clone())
}

/// The shadow candidate a promote without a canary makes the service: the route's only one.
fn only_shadow(name: &str, current: &RawRoute) -> Result<String, ControlError> {
    match shadow_list(current).as_slice() {
        [one] => Ok(one.service.clone()),
        [] => Err(ControlError::Conflict(format!(
            "route `{name}` has no canary or shadow service to promote"
        ))),
        many => Err(ControlError::Conflict(format!(
            "route `{name}` shadows to {} candidates ({}); set a canary to the one to promote",
            many.len(),
            many.iter()
                .map(|s| format!("`{}`", s.service))
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

pub struct Runtime {
    snapshot: ArcSwap<Snapshot>,
    inputs: Mutex<Inputs>,
    registry: ServerRegistry,
    route_state: Mutex<HashMap<String, RouteState>>,
    /// In-flight slots of each shadow candidate, by route and candidate service.
    shadow_slots: Mutex<HashMap<(String, String), Arc<Semaphore>>>,
    /// Rollout evidence recorders by route (the data plane feeds the one in its snapshot).
    recorders: Mutex<HashMap<String, Arc<crate::rollout::Recorder>>>,
    /// Token buckets by route, kept across snapshots while the route's limit is the same.
    limiters: Mutex<HashMap<String, Arc<crate::ratelimit::RateLimiter>>>,
    generation: AtomicU64,
    status: Mutex<ReloadStatus>,
    discovery: ArcSwap<crate::discovery::DiscoveryStatus>,
    events: mpsc::Sender<RuntimeEvent>,
    pub metrics: Arc<Metrics>,
    pub access_log: crate::telemetry::AccessLog,
    pub started: Instant,
}

impl Runtime {
    /// Builds the first snapshot from a validated config. `events` receives audit-log entries.
    pub fn new(
        config: Config,
        metrics: Arc<Metrics>,
        events: mpsc::Sender<RuntimeEvent>,
    ) -> Arc<Runtime> {
        let inputs = Inputs {
            file: Arc::new(config),
            api_routes: BTreeMap::new(),
            overrides: BTreeMap::new(),
            docker: DockerInputs::default(),
            api_services: BTreeMap::new(),
        };
        let rt = Runtime {
            snapshot: ArcSwap::from_pointee(Snapshot {
                generation: 0,
                config: inputs.file.clone(),
                routes: Vec::new(),
                services: foldhash::HashMap::default(),
            }),
            inputs: Mutex::new(inputs.clone()),
            registry: ServerRegistry::default(),
            route_state: Mutex::new(HashMap::new()),
            shadow_slots: Mutex::new(HashMap::new()),
            recorders: Mutex::new(HashMap::new()),
            limiters: Mutex::new(HashMap::new()),
            generation: AtomicU64::new(0),
            status: Mutex::new(ReloadStatus::default()),
            discovery: ArcSwap::from_pointee(crate::discovery::DiscoveryStatus::default()),
            events,
            access_log: access_log(&inputs.file.log, &metrics),
            metrics,
            started: Instant::now(),
        };
        let snap = rt.build(&inputs);
        rt.snapshot.store(Arc::new(snap));
        Arc::new(rt)
    }

    /// The snapshot in force (cheap; for the hot path).
    pub fn load(&self) -> Guard<Arc<Snapshot>> {
        self.snapshot.load()
    }

    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.snapshot.load_full()
    }

    /// What Docker discovery last reported (empty and disabled without `[docker]`).
    pub fn discovery(&self) -> Arc<crate::discovery::DiscoveryStatus> {
        self.discovery.load_full()
    }

    pub fn set_discovery(&self, status: crate::discovery::DiscoveryStatus) {
        self.discovery.store(Arc::new(status));
    }

    pub fn reload_status(&self) -> ReloadStatus {
        self.status.lock().expect("status lock").clone()
    }

    fn event(&self, kind: &str, route: Option<&str>, source: &str, detail: serde_json::Value) {
        let _ = self.events.try_send(RuntimeEvent {
            kind: kind.to_string(),
            route: route.map(str::to_string),
            source: source.to_string(),
            detail,
        });
    }

    /// Records an audit event on behalf of a control-plane service (e.g. a rollout controller).
    pub fn record_event(
        &self,
        kind: &str,
        route: Option<&str>,
        source: &str,
        detail: serde_json::Value,
    ) {
        self.event(kind, route, source, detail);
    }

    /// Installs (or, with None, removes) the evidence recorder of a route's rollout: a new
    /// recorder is a new window. One snapshot swap.
    pub fn set_recorder(&self, route: &str, recorder: Option<Arc<crate::rollout::Recorder>>) {
        let inputs = self.inputs.lock().expect("inputs lock");
        {
            let mut map = self.recorders.lock().expect("recorders lock");
            match recorder {
                Some(r) => map.insert(route.to_string(), r),
                None => map.remove(route),
            };
        }
        self.swap(&inputs);
    }

    /// Applies a reloaded file config, or records why it was refused and keeps the old one.
    pub fn reload(&self, result: Result<Config, ConfigErrors>) -> Result<(), ConfigErrors> {
        let mut status = self.status.lock().expect("status lock");
        status.last_reload_at_ms = Some(now_ms());
        status.reloads += 1;
        match result {
            Ok(config) => {
                status.last_reload_error = None;
                drop(status);
                let source = config.source.clone();
                let mut inputs = self.inputs.lock().expect("inputs lock");
                inputs.file = Arc::new(config);
                self.swap(&inputs);
                drop(inputs);
                self.metrics
                    .config_reloads
                    .get_or_create(&crate::telemetry::OutcomeLabels {
                        route: String::new(),
                        outcome: "ok".into(),
                    })
                    .inc();
                tracing::info!(config = %source, "config reloaded");
                self.event(
                    "reload",
                    None,
                    "file",
                    serde_json::json!({ "config": source }),
                );
                Ok(())
            }
            Err(errors) => {
                let text = errors.to_string();
                status.last_reload_error = Some(text.clone());
                drop(status);
                self.metrics
                    .config_reloads
                    .get_or_create(&crate::telemetry::OutcomeLabels {
                        route: String::new(),
                        outcome: "error".into(),
                    })
                    .inc();
                tracing::error!(error = %text, "config reload failed; keeping the running config");
                self.event(
                    "reload.failed",
                    None,
                    "file",
                    serde_json::json!({ "error": text }),
                );
                Err(errors)
            }
        }
    }

    /// The rollouts Docker labels ask for, by route.
    pub fn docker_rollouts(&self) -> BTreeMap<String, crate::config::RawRollout> {
        self.inputs
            .lock()
            .expect("inputs lock")
            .docker
            .rollouts
            .clone()
    }

    /// Replaces what Docker discovery contributes.
    pub fn set_docker(&self, docker: DockerInputs) {
        let mut inputs = self.inputs.lock().expect("inputs lock");
        if inputs.docker == docker {
            return;
        }
        let names = |d: &DockerInputs| -> std::collections::BTreeSet<String> {
            d.routes.iter().map(|r| r.name.clone()).collect()
        };
        let (before, after) = (names(&inputs.docker), names(&docker));
        let changed: Vec<&String> = after
            .iter()
            .filter(|n| {
                let old = inputs.docker.routes.iter().find(|r| &r.name == *n);
                let new = docker.routes.iter().find(|r| &r.name == *n);
                old.is_some() && old != new
            })
            .collect();
        let added: Vec<&String> = after.difference(&before).collect();
        let removed: Vec<&String> = before.difference(&after).collect();
        if !(added.is_empty() && removed.is_empty() && changed.is_empty()) {
            self.event(
                "discovery",
                None,
                "docker",
                serde_json::json!({ "added": added, "removed": removed, "changed": changed }),
            );
        }
        inputs.docker = docker;
        self.swap(&inputs);
    }

    /// Restores persisted runtime routes and overrides at start-up. Bad documents are logged
    /// and skipped (with the reason), never silently.
    pub fn restore(&self, docs: Vec<(String, String, serde_json::Value)>) -> Vec<String> {
        let mut problems = Vec::new();
        let mut inputs = self.inputs.lock().expect("inputs lock");
        for (name, kind, doc) in docs {
            match StoredDoc::parse(&name, &kind, doc) {
                Ok(d) => d.insert(&mut inputs, name),
                Err(p) => problems.push(p),
            }
        }
        self.swap(&inputs);
        for p in &problems {
            tracing::warn!("{p}");
        }
        problems
    }

    /// Applies the document another replica stored under `name` (the change feed): `doc` is
    /// its (kind, document), one of [`ROUTE_DOC_KINDS`], or None when none is stored any more.
    /// Nothing is persisted and no event is recorded (the replica that made the change did
    /// both). Returns whether the routing changed: false for a document already in force,
    /// such as this replica's own change coming back. A bad document changes nothing.
    pub fn apply_stored(
        &self,
        name: &str,
        doc: Option<(&str, serde_json::Value)>,
    ) -> Result<bool, String> {
        let parsed = doc
            .map(|(kind, doc)| StoredDoc::parse(name, kind, doc))
            .transpose()?;
        let mut inputs = self.inputs.lock().expect("inputs lock");
        let before = StoredDoc::current(&inputs, name);
        if before == parsed {
            return Ok(false);
        }
        inputs.api_routes.remove(name);
        inputs.overrides.remove(name);
        if let Some(svc) = name.strip_prefix(services::SERVICE_KEY_PREFIX) {
            inputs.api_services.remove(svc);
        }
        if let Some(d) = parsed {
            d.insert(&mut inputs, name.to_string());
        }
        self.swap(&inputs);
        Ok(true)
    }

    /// Makes the API routes and overrides exactly the stored `docs` (after the change feed
    /// reconnects and may have missed changes). A document that does not parse keeps what is
    /// in force under its name. Returns whether the routing changed, and the problems.
    pub fn replace_stored(
        &self,
        docs: Vec<(String, String, serde_json::Value)>,
    ) -> (bool, Vec<String>) {
        let mut problems = Vec::new();
        let mut inputs = self.inputs.lock().expect("inputs lock");
        let mut next = inputs.clone();
        next.api_routes.clear();
        next.overrides.clear();
        next.api_services.clear();
        for (name, kind, doc) in docs {
            match StoredDoc::parse(&name, &kind, doc) {
                Ok(d) => d.insert(&mut next, name),
                Err(p) => {
                    if let Some(d) = StoredDoc::current(&inputs, &name) {
                        d.insert(&mut next, name);
                    }
                    problems.push(p);
                }
            }
        }
        let changed = next.api_routes != inputs.api_routes
            || next.overrides != inputs.overrides
            || next.api_services != inputs.api_services;
        if changed {
            inputs.api_routes = next.api_routes;
            inputs.overrides = next.overrides;
            inputs.api_services = next.api_services;
            self.swap(&inputs);
        }
        (changed, problems)
    }

    fn base_route(inputs: &Inputs, name: &str) -> Option<(RawRoute, Source)> {
        if let Some(r) = inputs.file.routes.iter().find(|r| r.name == name) {
            // What labels attach is part of the route a change starts from (as in `build`).
            let attached = inputs.docker.attach.get(name).and_then(|a| a.apply(&r.raw));
            return Some((attached.unwrap_or_else(|| r.raw.clone()), Source::File));
        }
        if let Some(r) = inputs.docker.routes.iter().find(|r| r.name == name) {
            return Some((r.clone(), Source::Docker));
        }
        None
    }

    fn service_known(inputs: &Inputs, name: &str) -> bool {
        inputs.file.services.contains_key(name)
            || inputs.docker.services.contains_key(name)
            || inputs.api_services.contains_key(name)
    }

    fn check(inputs: &Inputs, raw: &RawRoute, source: Source) -> Result<(), ControlError> {
        let exists = |n: &str| Self::service_known(inputs, n);
        validate_route(
            raw,
            "",
            &RouteContext {
                source,
                service_exists: Some(&exists),
            },
        )
        .map(|_| ())
        .map_err(ControlError::Invalid)
    }

    /// Creates or replaces a route made through the API.
    pub fn put_route(&self, raw: RawRoute, actor: &str) -> Result<Persist, ControlError> {
        let mut inputs = self.inputs.lock().expect("inputs lock");
        if let Some((_, source)) = Self::base_route(&inputs, &raw.name) {
            return Err(ControlError::ReadOnly {
                name: raw.name,
                origin: source.as_str(),
            });
        }
        Self::check(&inputs, &raw, Source::Api)?;
        // An edit keeps what rollback returns to: the recorded previous service while the
        // service stays, or the replaced service when the edit changes it.
        let old = inputs.api_routes.get(&raw.name);
        let existed = old.is_some();
        let previous = old.and_then(|(old_raw, prev)| {
            if old_raw.service == raw.service {
                prev.clone()
            } else {
                Some(old_raw.service.clone())
            }
        });
        inputs
            .api_routes
            .insert(raw.name.clone(), (raw.clone(), previous.clone()));
        self.swap(&inputs);
        self.event(
            if existed {
                "route.update"
            } else {
                "route.create"
            },
            Some(&raw.name),
            actor,
            serde_json::to_value(&raw).unwrap_or_default(),
        );
        Ok(Persist::ApiRoute(Box::new(raw), previous))
    }

    pub fn delete_route(&self, name: &str, actor: &str) -> Result<Persist, ControlError> {
        let mut inputs = self.inputs.lock().expect("inputs lock");
        if let Some((_, source)) = Self::base_route(&inputs, name) {
            return Err(ControlError::ReadOnly {
                name: name.to_string(),
                origin: source.as_str(),
            });
        }
        if inputs.api_routes.remove(name).is_none() {
            return Err(ControlError::NotFound(name.to_string()));
        }
        self.swap(&inputs);
        self.event("route.delete", Some(name), actor, serde_json::Value::Null);
        Ok(Persist::Delete(name.to_string()))
    }

    /// Applies `change` to a route wherever it is defined: API routes change as a whole,
    /// file and docker routes get an override.
    fn change(
        &self,
        name: &str,
        kind: &str,
        actor: &str,
        change: impl FnOnce(&RawRoute, &mut RouteOverride) -> Result<(), ControlError>,
    ) -> Result<Persist, ControlError> {
        let mut inputs = self.inputs.lock().expect("inputs lock");
        let persist = if let Some((base, source)) = Self::base_route(&inputs, name) {
            let mut ov = inputs.overrides.get(name).cloned().unwrap_or_default();
            let current = ov.apply(&base);
            change(&current, &mut ov)?;
            Self::check(&inputs, &ov.apply(&base), source)?;
            if ov.is_empty() {
                inputs.overrides.remove(name);
                Persist::Delete(name.to_string())
            } else {
                inputs.overrides.insert(name.to_string(), ov.clone());
                Persist::Override(name.to_string(), Box::new(ov))
            }
        } else if let Some((raw, prev)) = inputs.api_routes.get(name).cloned() {
            let mut ov = RouteOverride {
                previous_service: prev,
                ..Default::default()
            };
            change(&raw, &mut ov)?;
            let updated = ov.apply(&raw);
            Self::check(&inputs, &updated, Source::Api)?;
            inputs.api_routes.insert(
                name.to_string(),
                (updated.clone(), ov.previous_service.clone()),
            );
            Persist::ApiRoute(Box::new(updated), ov.previous_service)
        } else {
            return Err(ControlError::NotFound(name.to_string()));
        };
        self.swap(&inputs);
        let detail = match &persist {
            Persist::ApiRoute(r, _) => serde_json::to_value(r).unwrap_or_default(),
            Persist::Override(_, o) => serde_json::to_value(o).unwrap_or_default(),
            Persist::Delete(_) => serde_json::json!({"override": "cleared"}),
            Persist::Service(..) | Persist::DeleteService(_) => serde_json::Value::Null,
        };
        self.event(kind, Some(name), actor, detail);
        Ok(persist)
    }

    /// Sets the route's shadow candidates (None: shadowing stops).
    pub fn set_shadow(
        &self,
        name: &str,
        shadow: Option<RawShadows>,
        actor: &str,
    ) -> Result<Persist, ControlError> {
        let kind = if shadow.is_some() {
            "shadow.start"
        } else {
            "shadow.stop"
        };
        self.change(name, kind, actor, |_, ov| {
            ov.set_shadows(shadow);
            Ok(())
        })
    }

    /// Adds a shadow candidate, or replaces the one with the same service; the route's other
    /// candidates stay.
    pub fn upsert_shadow(
        &self,
        name: &str,
        shadow: RawShadow,
        actor: &str,
    ) -> Result<Persist, ControlError> {
        self.change(name, "shadow.start", actor, |current, ov| {
            let mut list = shadow_list(current);
            match list.iter_mut().find(|s| s.service == shadow.service) {
                Some(s) => *s = shadow,
                None => list.push(shadow),
            }
            ov.set_shadows(RawShadows::from_vec(list));
            Ok(())
        })
    }

    /// Stops shadowing to one candidate; the route's other candidates stay.
    pub fn remove_shadow(
        &self,
        name: &str,
        service: &str,
        actor: &str,
    ) -> Result<Persist, ControlError> {
        self.change(name, "shadow.stop", actor, |current, ov| {
            let mut list = shadow_list(current);
            let before = list.len();
            list.retain(|s| s.service != service);
            if list.len() == before {
                return Err(ControlError::NotFound(format!(
                    "`{service}` is not a shadow candidate of route `{name}`"
                )));
            }
            ov.set_shadows(RawShadows::from_vec(list));
            Ok(())
        })
    }

    pub fn set_canary(
        &self,
        name: &str,
        canary: Option<RawCanary>,
        actor: &str,
    ) -> Result<Persist, ControlError> {
        self.change(name, "canary", actor, |_, ov| {
            match canary {
                Some(c) => {
                    ov.canary = Some(c);
                    ov.canary_off = false;
                }
                None => {
                    ov.canary = None;
                    ov.canary_off = true;
                }
            }
            Ok(())
        })
    }

    /// Makes the candidate (canary, else shadow) the route's service.
    pub fn promote(&self, name: &str, actor: &str) -> Result<Persist, ControlError> {
        self.change(name, "promote", actor, |current, ov| {
            let candidate = current
                .canary
                .as_ref()
                .map(|c| c.service.clone())
                .map_or_else(|| only_shadow(name, current), Ok)?;
            // The other candidates keep shadowing, now against the promoted service.
            let mut rest = shadow_list(current);
            rest.retain(|s| s.service != candidate);
            ov.previous_service = Some(current.service.clone());
            ov.service = Some(candidate);
            ov.canary = None;
            ov.canary_off = true;
            ov.set_shadows(RawShadows::from_vec(rest));
            Ok(())
        })
    }

    /// Returns all traffic to the previous service: drops a canary and the shadows in progress, or
    /// undoes the last promote.
    pub fn rollback(&self, name: &str, actor: &str) -> Result<Persist, ControlError> {
        self.change(name, "rollback", actor, |current, ov| {
            if current.canary.is_some() || current.shadow.is_some() {
                ov.canary = None;
                ov.canary_off = true;
                ov.set_shadows(None);
                return Ok(());
            }
            match ov.previous_service.take() {
                Some(prev) => {
                    ov.service = Some(prev);
                    Ok(())
                }
                None => Err(ControlError::Conflict(format!(
                    "route `{name}` has nothing to roll back (no canary, shadow or earlier promote)"
                ))),
            }
        })
    }

    /// Adds a persisted ignore rule (a field marked as noise) to a route.
    pub fn add_ignore(&self, name: &str, path: &str, actor: &str) -> Result<Persist, ControlError> {
        let path = path.to_string();
        self.change(name, "compare.ignore", actor, move |_, ov| {
            if umbra_diff::PointerPattern::parse(&path).is_err() && !path.starts_with("header:") {
                return Err(ControlError::Invalid(vec![ConfigError::new(
                    "path",
                    format!("`{path}` is not a JSON Pointer"),
                )]));
            }
            if !ov.ignore.contains(&path) {
                ov.ignore.push(path);
            }
            Ok(())
        })
    }

    fn swap(&self, inputs: &Inputs) {
        let snap = self.build(inputs);
        self.snapshot.store(Arc::new(snap));
    }

    fn route_state(&self, name: &str) -> RouteState {
        let mut map = self.route_state.lock().expect("route state lock");
        map.entry(name.to_string()).or_default().clone()
    }

    /// Each candidate's in-flight slots, in the order of `spec.shadows`: the ones in force
    /// when the candidate already shadowed (its requests in flight keep counting).
    fn shadow_slots(&self, spec: &crate::config::RouteSpec) -> Vec<Arc<Semaphore>> {
        let mut map = self.shadow_slots.lock().expect("shadow slots lock");
        let slots = |sh: &crate::config::ShadowSpec| {
            let key = (spec.name.clone(), sh.service.clone());
            let slots = map
                .entry(key)
                .or_insert_with(|| Arc::new(Semaphore::new(sh.max_in_flight)));
            slots.clone()
        };
        spec.shadows.iter().map(slots).collect()
    }

    /// The route's limiter: the one in force when its limit is unchanged (its buckets keep
    /// their tokens), else a new one; none without a limit.
    fn limiter(
        &self,
        spec: &crate::config::RouteSpec,
    ) -> Option<Arc<crate::ratelimit::RateLimiter>> {
        let mut map = self.limiters.lock().expect("limiters lock");
        let Some(limit) = &spec.rate_limit else {
            map.remove(&spec.name);
            return None;
        };
        let entry = map
            .entry(spec.name.clone())
            .or_insert_with(|| Arc::new(crate::ratelimit::RateLimiter::new(limit.clone())));
        if entry.spec() != limit {
            *entry = Arc::new(crate::ratelimit::RateLimiter::new(limit.clone()));
        }
        Some(entry.clone())
    }

    /// Builds a snapshot from the inputs. Routes that fail validation (possible only for
    /// docker routes whose services vanished, or overrides of a changed file) are logged and
    /// fall back to their definition without the override.
    fn build(&self, inputs: &Inputs) -> Snapshot {
        let mut services: foldhash::HashMap<String, Arc<Service>> = Default::default();
        let mut add_service = |spec: &ServiceSpec| {
            let servers = spec
                .servers
                .iter()
                .map(|a| self.registry.get(&spec.name, a))
                .collect();
            services.insert(
                spec.name.clone(),
                Arc::new(Service::new(spec.clone(), servers)),
            );
        };
        for spec in inputs.docker.services.values() {
            add_service(spec);
        }
        for spec in inputs.file.services.values() {
            add_service(spec);
        }
        for (_, spec) in inputs.api_services.values() {
            add_service(spec);
        }

        let ctx_file = RouteContext {
            source: Source::File,
            service_exists: None,
        };
        let ctx_docker = RouteContext {
            source: Source::Docker,
            service_exists: None,
        };
        let ctx_api = RouteContext {
            source: Source::Api,
            service_exists: None,
        };
        let mut routes = Vec::new();
        let mut names = std::collections::HashSet::new();
        let mut push = |spec: crate::config::RouteSpec, overridden: bool, prev: Option<String>| {
            if !names.insert(spec.name.clone()) {
                tracing::warn!(route = %spec.name, source = spec.source.as_str(), "route name already taken; ignored");
                return;
            }
            let (stats, hold) = self.route_state(&spec.name);
            let shadow_slots = self.shadow_slots(&spec);
            let recorder = self
                .recorders
                .lock()
                .expect("recorders lock")
                .get(&spec.name)
                .cloned();
            let limiter = self.limiter(&spec);
            routes.push(Arc::new(Route {
                spec,
                stats,
                shadow_slots,
                hold,
                recorder,
                limiter,
                overridden,
                previous_service: prev,
            }));
        };
        let with_override = |raw: &RawRoute, ctx: &RouteContext<'_>| {
            let ov = inputs.overrides.get(&raw.name)?;
            match validate_route(&ov.apply(raw), "", ctx) {
                Ok(spec) => Some((spec, ov.previous_service.clone())),
                Err(e) => {
                    tracing::warn!(route = %raw.name, errors = ?e, "override no longer applies; using the definition as written");
                    None
                }
            }
        };
        // Label attachments fill in a file or API route's missing shadow / canary.
        let attached = |raw: &RawRoute, ctx: &RouteContext<'_>| {
            let with = inputs.docker.attach.get(&raw.name)?.apply(raw)?;
            match validate_route(&with, "", ctx) {
                Ok(spec) => Some((with, spec)),
                Err(e) => {
                    tracing::warn!(route = %raw.name, errors = ?e, "docker label attachment does not apply");
                    None
                }
            }
        };
        for spec in &inputs.file.routes {
            let (raw, base) = match attached(&spec.raw, &ctx_file) {
                Some((raw, s)) => (raw, s),
                None => (spec.raw.clone(), spec.clone()),
            };
            match with_override(&raw, &ctx_file) {
                Some((s, prev)) => push(s, true, prev),
                None => push(base, false, None),
            }
        }
        for raw in &inputs.docker.routes {
            match with_override(raw, &ctx_docker) {
                Some((s, prev)) => push(s, true, prev),
                None => match validate_route(raw, "", &ctx_docker) {
                    Ok(s) => push(s, false, None),
                    Err(e) => {
                        tracing::warn!(route = %raw.name, errors = ?e, "docker route invalid")
                    }
                },
            }
        }
        for (raw, prev) in inputs.api_routes.values() {
            if let Some((_, spec)) = attached(raw, &ctx_api) {
                push(spec, false, prev.clone());
                continue;
            }
            match validate_route(raw, "", &ctx_api) {
                Ok(s) => push(s, false, prev.clone()),
                Err(e) => {
                    tracing::warn!(route = %raw.name, errors = ?e, "stored API route invalid; not served")
                }
            }
        }
        routes.sort_by(|a, b| {
            b.spec
                .priority
                .cmp(&a.spec.priority)
                .then_with(|| a.spec.name.cmp(&b.spec.name))
        });

        // Forget state of servers and routes that no longer exist.
        self.registry.retain(|svc, addr| {
            services
                .get(svc)
                .is_some_and(|s| s.spec.servers.contains(addr))
        });
        self.limiters
            .lock()
            .expect("limiters lock")
            .retain(|name, _| routes.iter().any(|r| &r.spec.name == name));
        let generation = self.generation.fetch_add(1, Ordering::Relaxed) + 1;
        Snapshot {
            generation,
            config: inputs.file.clone(),
            routes,
            services,
        }
    }
}
