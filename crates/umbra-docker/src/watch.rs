//! The engine side of discovery: connect with bollard, list containers, follow the event
//! stream, probe just-started containers until they listen, and push every change into the
//! runtime (routes and services) and the discovery report. When the engine goes away the last
//! known routes stay in force and the watcher reconnects with backoff.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use bollard::container::{InspectContainerOptions, ListContainersOptions};
use bollard::models::{ContainerInspectResponse, EventMessage, EventMessageTypeEnum};
use bollard::system::EventsOptions;
use bollard::Docker;
use futures_util::StreamExt;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use umbra_core::config::{DockerConfig, Source};
use umbra_core::discovery::DiscoveryStatus;
use umbra_core::runtime::now_ms;
use umbra_core::Runtime;

use crate::model::{self, Container, Settings};

/// The default engine address.
pub const DEFAULT_ENDPOINT: &str = "unix:///var/run/docker.sock";

/// Signals that ask a process to do something other than stop.
const NON_STOP_SIGNALS: &[&str] = &[
    "1", "10", "12", "28", "SIGHUP", "SIGUSR1", "SIGUSR2", "SIGWINCH",
];

fn connect(endpoint: &str) -> Result<Docker, bollard::errors::Error> {
    if let Some(path) = endpoint.strip_prefix("unix://") {
        Docker::connect_with_unix(path, 30, bollard::API_DEFAULT_VERSION)
    } else if endpoint.starts_with("tcp://") || endpoint.starts_with("http://") {
        Docker::connect_with_http(endpoint, 30, bollard::API_DEFAULT_VERSION)
    } else {
        Docker::connect_with_unix(endpoint, 30, bollard::API_DEFAULT_VERSION)
    }
}

/// The engine's view of a container → the model's input.
fn to_container(i: ContainerInspectResponse) -> Option<Container> {
    let id = i.id?;
    let config = i.config.unwrap_or_default();
    let state = i.state.unwrap_or_default();
    let health = state
        .health
        .and_then(|h| h.status)
        .map(|s| s.to_string())
        .filter(|s| !s.is_empty() && s != "none");
    let mut networks = std::collections::BTreeMap::new();
    for (name, ep) in i
        .network_settings
        .and_then(|n| n.networks)
        .unwrap_or_default()
    {
        let ip = ep
            .ip_address
            .filter(|s| !s.is_empty())
            .and_then(|s| s.parse::<IpAddr>().ok());
        networks.insert(name, ip);
    }
    let mut exposed_ports: Vec<u16> = config
        .exposed_ports
        .unwrap_or_default()
        .keys()
        .filter_map(|k| {
            let (port, proto) = k.split_once('/').unwrap_or((k, "tcp"));
            (proto == "tcp").then(|| port.parse().ok()).flatten()
        })
        .collect();
    exposed_ports.sort_unstable();
    Some(Container {
        id,
        name: i
            .name
            .unwrap_or_default()
            .trim_start_matches('/')
            .to_string(),
        labels: config.labels.unwrap_or_default(),
        state: state
            .status
            .map(|s| s.to_string())
            .unwrap_or_else(|| "unknown".into()),
        stopping: false,
        health,
        ready: false,
        networks,
        exposed_ports,
    })
}

/// The id of the container umbra itself runs in, read from its mounts (Docker bind-mounts
/// `/etc/hostname` from `.../containers/<id>/hostname`), else its host name (Docker's default
/// host name is the short container id).
fn own_container_id() -> Option<String> {
    std::fs::read_to_string("/proc/self/mountinfo")
        .ok()
        .and_then(|m| container_id_from_mountinfo(&m))
        .or_else(|| {
            let host = std::fs::read_to_string("/etc/hostname").ok()?;
            let host = host.trim();
            (host.len() == 12 && host.chars().all(|c| c.is_ascii_hexdigit()))
                .then(|| host.to_string())
        })
}

const PROJECT_LABEL: &str = "com.docker.compose.project";

fn container_id_from_mountinfo(mounts: &str) -> Option<String> {
    mounts.lines().find_map(|line| {
        let i = line.find("/containers/")?;
        let id: String = line[i + "/containers/".len()..]
            .chars()
            .take_while(char::is_ascii_hexdigit)
            .collect();
        (id.len() == 64).then_some(id)
    })
}

pub(crate) enum Msg {
    Ready(String, SocketAddr),
    GaveUp(String),
    /// A label deploy (`umbra.deploy.of`) ended.
    Deployed(crate::deploy::Finished),
}

struct Watcher {
    runtime: Arc<Runtime>,
    endpoint: String,
    /// Only containers of this compose project.
    project: Option<String>,
    containers: HashMap<String, Container>,
    own_networks: Vec<String>,
    probing: HashSet<String>,
    tx: mpsc::Sender<Msg>,
    status: DiscoveryStatus,
    logged: HashSet<(String, String, String)>,
    last_generation: u64,
    last_other_routes: BTreeSet<String>,
    deploys: crate::deploy::Deploys,
}

impl Watcher {
    fn other_routes(&self) -> BTreeSet<String> {
        self.runtime
            .snapshot()
            .routes
            .iter()
            .filter(|r| r.spec.source != Source::Docker)
            .map(|r| r.spec.name.clone())
            .collect()
    }

    fn settings(&self) -> Settings {
        let snap = self.runtime.snapshot();
        let cfg = snap.config.docker.clone();
        Settings {
            network: cfg.as_ref().and_then(|c| c.network.clone()),
            exposed_by_default: cfg.is_some_and(|c| c.exposed_by_default),
            own_networks: self.own_networks.clone(),
            other_services: snap
                .services
                .values()
                .filter(|s| s.spec.source != Source::Docker)
                .map(|s| s.spec.name.clone())
                .collect(),
        }
    }

    /// Recomputes routes and services from the known containers and publishes them.
    fn rebuild(&mut self) {
        let containers: Vec<Container> = self.containers.values().cloned().collect();
        let others = self.other_routes();
        let built = model::build(&containers, &self.settings(), &others);
        self.runtime.set_docker(built.inputs);
        self.last_generation = self.runtime.snapshot().generation;
        self.last_other_routes = others;
        for c in &built.containers {
            for e in &c.errors {
                let key = (c.name.clone(), e.label.clone(), e.message.clone());
                if self.logged.insert(key) {
                    tracing::warn!(container = %c.name, label = %e.label, "docker label problem: {}", e.message);
                }
            }
        }
        self.status.containers = built.containers;
        self.deploys.start(
            &self.runtime,
            &self.containers,
            &mut self.status.containers,
            &self.tx,
        );
        self.publish();
        for (id, addr) in built.probes {
            if self.probing.insert(id.clone()) {
                let tx = self.tx.clone();
                tokio::spawn(probe(id, addr, tx));
            }
        }
    }

    fn publish(&self) {
        self.runtime.set_discovery(self.status.clone());
    }

    /// Without `[docker].project`, discovery keeps to the compose project umbra's own
    /// container belongs to (none when umbra runs on the host or outside compose).
    async fn own_project(&mut self, docker: &Docker) {
        let Some(own) = own_container_id() else {
            return;
        };
        let Ok(me) = docker
            .inspect_container(&own, None::<InspectContainerOptions>)
            .await
        else {
            return;
        };
        let label = me
            .config
            .and_then(|c| c.labels)
            .and_then(|l| l.get(PROJECT_LABEL).cloned());
        if let Some(p) = label {
            tracing::info!(project = %p, "docker discovery: only containers of umbra's own compose project");
            self.project = Some(p);
            self.status.project = self.project.clone();
            self.status.project_from = Some("own container".into());
        }
    }

    /// The filter matched nothing: name the projects the engine has instead.
    async fn projects_elsewhere(&mut self, docker: &Docker) -> Result<(), bollard::errors::Error> {
        let all = docker
            .list_containers(Some(ListContainersOptions::<String> {
                all: true,
                ..Default::default()
            }))
            .await?;
        for c in all {
            let p = c.labels.and_then(|l| l.get(PROJECT_LABEL).cloned());
            self.saw_project(p);
        }
        self.saw_project(None);
        Ok(())
    }

    /// Notes a container of another project (or none); while the filter matches nothing, the
    /// report and the log say so and name what was seen.
    fn saw_project(&mut self, project: Option<String>) {
        if let Some(p) = project {
            if !self.status.projects_seen.contains(&p) {
                self.status.projects_seen.push(p);
                self.status.projects_seen.sort();
            }
        }
        let Some(want) = &self.project else { return };
        if !self.containers.is_empty() {
            self.status.notice = None;
            return;
        }
        let seen = if self.status.projects_seen.is_empty() {
            "no container has a compose project label".to_string()
        } else {
            format!("projects seen: {}", self.status.projects_seen.join(", "))
        };
        let notice = format!(
            "no container belongs to compose project `{want}` ({}); {seen}. Start the containers \
             in that project, or set [docker] project",
            self.status.project_from.as_deref().unwrap_or("config"),
        );
        if self.status.notice.as_ref() != Some(&notice) {
            tracing::warn!("docker discovery: {notice}");
            self.status.notice = Some(notice);
        }
    }

    async fn inspect(&mut self, docker: &Docker, id: &str) {
        match docker
            .inspect_container(id, None::<InspectContainerOptions>)
            .await
        {
            Ok(i) => {
                let Some(mut c) = to_container(i) else { return };
                let theirs = c.labels.get(PROJECT_LABEL);
                if self.project.is_some() && theirs != self.project.as_ref() {
                    self.containers.remove(&c.id);
                    self.saw_project(theirs.cloned());
                    return;
                }
                {
                    // Keep readiness already proven for the same running container.
                    if let Some(old) = self.containers.get(&c.id) {
                        c.ready = old.ready && old.state == "running" && c.state == "running";
                    }
                    self.containers.insert(c.id.clone(), c);
                    self.status.notice = None;
                }
            }
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => {
                self.containers.remove(id);
            }
            Err(e) => tracing::warn!(container = %id, error = %e, "inspect failed"),
        }
    }

    /// Lists every container (running or not: a stopped container's routes answer 503).
    async fn sync(&mut self, docker: &Docker) -> Result<(), bollard::errors::Error> {
        if self.status.project_from.is_none() {
            self.own_project(docker).await;
        }
        let mut filters = HashMap::new();
        if let Some(p) = &self.project {
            filters.insert(
                "label".to_string(),
                vec![format!("com.docker.compose.project={p}")],
            );
        }
        let list = docker
            .list_containers(Some(ListContainersOptions::<String> {
                all: true,
                filters,
                ..Default::default()
            }))
            .await?;
        let ids: HashSet<String> = list.into_iter().filter_map(|c| c.id).collect();
        self.containers.retain(|id, _| ids.contains(id));
        if ids.is_empty() && self.project.is_some() {
            self.projects_elsewhere(docker).await?;
        }
        for id in &ids {
            self.inspect(docker, id).await;
        }
        self.own_networks = match own_container_id() {
            Some(own) => match docker
                .inspect_container(&own, None::<InspectContainerOptions>)
                .await
            {
                Ok(me) => me
                    .network_settings
                    .and_then(|n| n.networks)
                    .map(|n| n.into_keys().collect())
                    .unwrap_or_default(),
                Err(_) => Vec::new(), // a container of another engine: we run "on the host"
            },
            None => Vec::new(),
        };
        self.own_networks.sort();
        Ok(())
    }

    async fn on_event(&mut self, docker: &Docker, ev: EventMessage) {
        let actor = ev.actor.unwrap_or_default();
        let attrs = actor.attributes.unwrap_or_default();
        let action = ev.action.unwrap_or_default();
        let id = match ev.typ {
            Some(EventMessageTypeEnum::NETWORK) => match attrs.get("container") {
                Some(c) => c.clone(),
                None => return,
            },
            _ => match actor.id {
                Some(id) => id,
                None => return,
            },
        };
        match action.as_str() {
            "kill" => {
                let signal = attrs.get("signal").map(String::as_str).unwrap_or("15");
                if NON_STOP_SIGNALS.contains(&signal) {
                    return;
                }
                if let Some(c) = self.containers.get_mut(&id) {
                    c.stopping = true;
                }
            }
            "stop" | "die" | "oom" => {
                if let Some(c) = self.containers.get_mut(&id) {
                    c.stopping = true;
                    c.ready = false;
                }
                if action == "die" {
                    self.inspect(docker, &id).await;
                }
            }
            "pause" => {
                if let Some(c) = self.containers.get_mut(&id) {
                    c.state = "paused".into();
                }
            }
            "destroy" => {
                self.containers.remove(&id);
            }
            "start" | "restart" => {
                // Readiness was already reset by the `die` that precedes any restart; a `start`
                // processed after the container was found listening must not undo that.
                self.inspect(docker, &id).await;
            }
            a if a.starts_with("health_status")
                || matches!(
                    a,
                    "unpause" | "rename" | "connect" | "disconnect" | "update" | "create"
                ) =>
            {
                self.inspect(docker, &id).await;
            }
            _ => return,
        }
        tracing::debug!(container = %id, action = %action, "docker event");
        self.rebuild();
    }

    fn on_msg(&mut self, msg: Msg) {
        let (id, addr) = match msg {
            Msg::Ready(id, addr) => (id, addr),
            Msg::GaveUp(id) => {
                self.probing.remove(&id);
                return;
            }
            Msg::Deployed(done) => {
                if self.deploys.finished(done) {
                    self.rebuild();
                }
                return;
            }
        };
        self.probing.remove(&id);
        let Some(c) = self.containers.get_mut(&id) else {
            return;
        };
        if c.state == "running"
            && !c.stopping
            && c.networks
                .values()
                .any(|ip| *ip == Some(addr.ip()) || ip.is_none())
        {
            c.ready = true;
            self.rebuild();
        }
    }

    fn disconnected(&mut self, error: String) {
        if self.status.connected || self.status.last_error.as_deref() != Some(&error) {
            tracing::warn!(endpoint = %self.endpoint, error = %error, "docker engine unreachable; keeping the last known routes");
        }
        self.status.connected = false;
        self.status.last_error = Some(error);
        self.publish();
    }

    /// One connection's life: list, then follow events until the stream ends or shutdown.
    /// Returns true on shutdown.
    async fn session(
        &mut self,
        rx: &mut mpsc::Receiver<Msg>,
        shutdown: &CancellationToken,
    ) -> Result<bool, String> {
        let docker = connect(&self.endpoint).map_err(|e| e.to_string())?;
        let docker = docker
            .negotiate_version()
            .await
            .map_err(|e| e.to_string())?;
        // Subscribe first, then list: nothing that happens in between is missed.
        let mut events = docker.events(Some(EventsOptions::<String> {
            filters: [(
                "type".to_string(),
                vec!["container".to_string(), "network".to_string()],
            )]
            .into(),
            ..Default::default()
        }));
        self.sync(&docker).await.map_err(|e| e.to_string())?;
        self.status.connected = true;
        self.status.last_error = None;
        self.status.last_sync_at_ms = Some(now_ms());
        tracing::info!(endpoint = %self.endpoint, containers = self.containers.len(), "docker discovery connected");
        self.rebuild();
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return Ok(true),
                ev = events.next() => match ev {
                    Some(Ok(ev)) => self.on_event(&docker, ev).await,
                    Some(Err(e)) => return Err(format!("event stream: {e}")),
                    None => return Err("event stream ended".into()),
                },
                Some(msg) = rx.recv() => self.on_msg(msg),
                _ = tick.tick() => {
                    // Routes defined elsewhere changed (reload, API): re-check references.
                    let snap = self.runtime.snapshot();
                    if snap.generation != self.last_generation && self.other_routes() != self.last_other_routes {
                        self.rebuild();
                    } else {
                        self.last_generation = snap.generation;
                    }
                    // A dead engine does not always end the event stream.
                    if docker.ping().await.is_err() {
                        return Err("engine stopped answering".into());
                    }
                }
            }
        }
    }
}

/// Tries to connect to a just-started container until it listens (up to a minute).
async fn probe(id: String, addr: SocketAddr, tx: mpsc::Sender<Msg>) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while tokio::time::Instant::now() < deadline {
        let attempt = tokio::time::timeout(
            Duration::from_millis(500),
            tokio::net::TcpStream::connect(addr),
        )
        .await;
        if let Ok(Ok(_)) = attempt {
            let _ = tx.send(Msg::Ready(id, addr)).await;
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tracing::warn!(container = %id, %addr, "container never accepted a connection; it gets no traffic");
    let _ = tx.send(Msg::GaveUp(id)).await;
}

/// Runs discovery until `shutdown`.
pub async fn run(runtime: Arc<Runtime>, config: DockerConfig, shutdown: CancellationToken) {
    let endpoint = config
        .endpoint
        .clone()
        .unwrap_or_else(|| DEFAULT_ENDPOINT.to_string());
    let (tx, mut rx) = mpsc::channel(64);
    let mut w = Watcher {
        runtime,
        endpoint: endpoint.clone(),
        project: config.project.clone(),
        containers: HashMap::new(),
        own_networks: Vec::new(),
        probing: HashSet::new(),
        tx,
        status: DiscoveryStatus {
            enabled: true,
            endpoint,
            project: config.project.clone(),
            project_from: config.project.as_ref().map(|_| "config".to_string()),
            ..DiscoveryStatus::default()
        },
        logged: HashSet::new(),
        last_generation: 0,
        last_other_routes: BTreeSet::new(),
        deploys: Default::default(),
    };
    w.publish();
    let mut backoff = Duration::from_millis(250);
    loop {
        let result = w.session(&mut rx, &shutdown).await;
        let was_connected = w.status.connected;
        match result {
            Ok(true) => return,
            Ok(false) => {}
            Err(e) => w.disconnected(e),
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(backoff) => {}
        }
        if was_connected {
            backoff = Duration::from_millis(250);
        } else {
            backoff = (backoff * 2).min(Duration::from_secs(10));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_engine_view_becomes_the_model_input() {
        // The shape of `GET /containers/{id}/json`, trimmed to what discovery reads.
        let inspect: ContainerInspectResponse = serde_json::from_value(serde_json::json!({
            "Id": "abc123",
            "Name": "/shop-api-1",
            "State": {"Status": "running", "Health": {"Status": "starting"}},
            "Config": {
                "Labels": {"umbra.enable": "true"},
                "ExposedPorts": {"8080/tcp": {}, "53/udp": {}, "9090/tcp": {}}
            },
            "NetworkSettings": {"Networks": {
                "shop_default": {"IPAddress": "172.20.0.3"},
                "host": {"IPAddress": ""}
            }}
        }))
        .unwrap();
        let c = to_container(inspect).unwrap();
        assert_eq!(c.name, "shop-api-1");
        assert_eq!(c.state, "running");
        assert_eq!(c.health.as_deref(), Some("starting"));
        assert_eq!(
            c.exposed_ports,
            vec![8080, 9090],
            "udp ports are not HTTP upstreams"
        );
        assert_eq!(
            c.networks["shop_default"],
            Some("172.20.0.3".parse().unwrap())
        );
        assert_eq!(c.networks["host"], None);
        assert!(!c.stopping && !c.ready);
    }

    #[test]
    fn no_healthcheck_means_no_health() {
        let inspect: ContainerInspectResponse = serde_json::from_value(serde_json::json!({
            "Id": "x", "Name": "/x", "State": {"Status": "exited", "Health": {"Status": "none"}}
        }))
        .unwrap();
        let c = to_container(inspect).unwrap();
        assert_eq!((c.state.as_str(), c.health), ("exited", None));
    }

    #[test]
    fn own_container_id_comes_from_the_hostname_mount() {
        let id = "f".repeat(64);
        let inside = format!(
            "1 0 0:1 / / rw - overlay overlay rw\n\
             2 1 8:1 /var/lib/docker/containers/{id}/hostname /etc/hostname rw - ext4 /dev/sda1 rw\n"
        );
        assert_eq!(container_id_from_mountinfo(&inside), Some(id));
        let host = "1 0 8:1 / / rw - ext4 /dev/sda1 rw\n";
        assert_eq!(container_id_from_mountinfo(host), None);
    }
}
