//! The discovered containers → umbra's services and routes. Pure and deterministic: the same
//! containers always give the same routes, addresses are picked by rule (never "the first
//! network Docker lists"), and every problem is reported on the container that caused it.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use umbra_core::config::raw::{RawCanary, RawRoute, RawShadow};
use umbra_core::config::{Balance, HealthSpec, ServerAddr, ServiceSpec, Source};
use umbra_core::discovery::{ContainerStatus, LabelError};
use umbra_core::rules::Rule;
use umbra_core::runtime::{Attach, DockerInputs};

use crate::labels::{self, Parsed, ServiceLabels};

/// What the engine told us about one container, plus what umbra observed itself.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Container {
    pub id: String,
    /// Without Docker's leading `/`.
    pub name: String,
    pub labels: HashMap<String, String>,
    /// Docker's state: `running`, `exited`, `paused`, `created`, `restarting`, ...
    pub state: String,
    /// A stop or kill was seen: out of rotation before it dies.
    pub stopping: bool,
    /// Docker health status when the image or compose file has a HEALTHCHECK.
    pub health: Option<String>,
    /// The port accepted a TCP connection since the container started (used when there is no
    /// Docker health check, so a just-started container gets traffic only once it listens).
    pub ready: bool,
    /// Attached networks and the container's address on each (None for `host` mode).
    pub networks: BTreeMap<String, Option<IpAddr>>,
    /// Exposed TCP ports.
    pub exposed_ports: Vec<u16>,
}

/// `[docker]` settings plus where umbra itself runs.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    pub network: Option<String>,
    pub exposed_by_default: bool,
    /// Networks umbra's own container is attached to; empty when umbra runs on the host.
    pub own_networks: Vec<String>,
    /// Services defined elsewhere (the config file), which labels may name.
    pub other_services: BTreeSet<String>,
}

/// The outcome of one build.
#[derive(Debug, Clone, Default)]
pub struct Built {
    pub inputs: DockerInputs,
    pub containers: Vec<ContainerStatus>,
    /// Running containers (by id) to probe for readiness, with the address to try.
    pub probes: Vec<(String, SocketAddr)>,
}

/// Active health check settings for labelled health paths.
fn health(path: &str) -> HealthSpec {
    HealthSpec {
        path: path.to_string(),
        interval: Duration::from_secs(2),
        timeout: Duration::from_secs(1),
        rise: 2,
        fall: 3,
    }
}

struct Entry<'a> {
    c: &'a Container,
    /// False for a labelled container that is not enabled (kept only for its report).
    active: bool,
    parsed: Parsed,
    status: ContainerStatus,
}

fn push_err(status: &mut ContainerStatus, label: &str, message: impl Into<String>) {
    status.errors.push(LabelError {
        label: label.to_string(),
        message: message.into(),
    });
}

/// Picks the network: label, config, the one shared with umbra, the only one. Never a guess.
fn pick_network(
    c: &Container,
    parsed: &Parsed,
    settings: &Settings,
) -> Result<(String, Option<IpAddr>), (String, String)> {
    let attached = || c.networks.keys().cloned().collect::<Vec<_>>().join(", ");
    let named = parsed
        .network
        .as_ref()
        .map(|n| (n, "traefik.docker.network"))
        .or(settings.network.as_ref().map(|n| (n, "[docker].network")));
    if let Some((name, from)) = named {
        // Compose prefixes network names with the project; accept either spelling.
        let project = c.labels.get("com.docker.compose.project");
        let found = c.networks.get_key_value(name.as_str()).or_else(|| {
            project.and_then(|p| c.networks.get_key_value(format!("{p}_{name}").as_str()))
        });
        return match found {
            Some((n, ip)) => Ok((n.clone(), *ip)),
            None => Err((
                if from == "[docker].network" { "-".into() } else { from.into() },
                format!(
                    "network `{name}` (from {from}) is not attached to this container (attached: {})",
                    attached()
                ),
            )),
        };
    }
    if !settings.own_networks.is_empty() {
        let shared: Vec<&String> = c
            .networks
            .keys()
            .filter(|n| settings.own_networks.contains(n))
            .collect();
        return match shared.as_slice() {
            [one] => Ok(((*one).clone(), c.networks[*one])),
            [] => Err((
                "-".into(),
                format!(
                    "shares no network with umbra (container: {}; umbra: {}); attach one or set traefik.docker.network",
                    attached(),
                    settings.own_networks.join(", ")
                ),
            )),
            many => Err((
                "-".into(),
                format!(
                    "shares several networks with umbra ({}); set traefik.docker.network or [docker].network to choose",
                    many.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
                ),
            )),
        };
    }
    let mut iter = c.networks.iter();
    match (iter.next(), iter.next()) {
        (Some((n, ip)), None) => Ok((n.clone(), *ip)),
        (None, _) => Err(("-".into(), "is attached to no network".into())),
        _ => Err((
            "-".into(),
            format!(
                "is attached to several networks ({}); set traefik.docker.network or [docker].network to choose",
                attached()
            ),
        )),
    }
}

/// The name of the service a container serves when labels don't name one.
fn default_service(c: &Container) -> String {
    c.labels
        .get("com.docker.compose.service")
        .cloned()
        .unwrap_or_else(|| c.name.clone())
}

/// Builds services and routes from every container. `other_routes` are the names of routes
/// defined elsewhere (file, API), which `umbra.shadow.of` / `umbra.canary.of` may name.
pub fn build(
    containers: &[Container],
    settings: &Settings,
    other_routes: &BTreeSet<String>,
) -> Built {
    let mut sorted: Vec<&Container> = containers.iter().collect();
    sorted.sort_by(|a, b| a.name.cmp(&b.name).then(a.id.cmp(&b.id)));

    let mut entries: Vec<Entry<'_>> = Vec::new();
    for c in sorted {
        let parsed = labels::parse(&c.labels);
        let enabled = parsed.enable.unwrap_or(settings.exposed_by_default);
        if !parsed.has_labels && !enabled {
            continue;
        }
        let mut status = ContainerStatus {
            id: c.id.chars().take(12).collect(),
            name: c.name.clone(),
            state: if c.stopping && c.state == "running" {
                "stopping".into()
            } else {
                c.state.clone()
            },
            health: c.health.clone(),
            ..ContainerStatus::default()
        };
        status.errors.extend(parsed.errors.iter().cloned());
        if !enabled {
            if parsed.enable.is_none() {
                push_err(
                    &mut status,
                    "-",
                    "has traefik./umbra. labels but is not enabled (set umbra.enable=true or traefik.enable=true; [docker].exposed_by_default is false)",
                );
                entries.push(Entry {
                    c,
                    active: false,
                    parsed: Parsed::default(),
                    status,
                });
            }
            continue;
        }
        entries.push(Entry {
            c,
            active: true,
            parsed,
            status,
        });
    }

    // Middlewares are global across containers (as in Traefik).
    let mut strip: BTreeMap<String, String> = BTreeMap::new();
    for e in &entries {
        for (name, prefix) in &e.parsed.strip_prefixes {
            strip.entry(name.clone()).or_insert_with(|| prefix.clone());
        }
    }

    let mut services: BTreeMap<String, ServiceSpec> = BTreeMap::new();
    let mut routes: BTreeMap<String, (RawRoute, String)> = BTreeMap::new();
    let mut probes = Vec::new();

    // Pass 1: services and servers.
    for e in entries.iter_mut() {
        if !e.active {
            continue;
        }
        let c = e.c;
        let mut declared: Vec<(String, ServiceLabels)> = e
            .parsed
            .services
            .iter()
            .map(|(n, s)| (n.clone(), s.clone()))
            .collect();
        if declared.is_empty() {
            declared.push((default_service(c), ServiceLabels::default()));
        }
        let network = match pick_network(c, &e.parsed, settings) {
            Ok(n) => Some(n),
            Err((label, msg)) => {
                push_err(&mut e.status, &label, msg);
                None
            }
        };
        let running = c.state == "running" && !c.stopping;
        let healthy = match c.health.as_deref() {
            Some("healthy") => true,
            Some(_) => false,
            None => c.ready,
        };
        for (name, labels) in declared {
            let ServiceLabels {
                port,
                scheme,
                health_path: svc_health,
            } = labels;
            let scheme = scheme.unwrap_or_else(|| "http".to_string());
            let port = match port {
                Some(p) => Some(p),
                None => match c.exposed_ports.as_slice() {
                    [one] => Some(*one),
                    [] => {
                        push_err(
                            &mut e.status,
                            &format!("traefik.http.services.{name}.loadbalancer.server.port"),
                            "the container exposes no port; set this label",
                        );
                        None
                    }
                    many => {
                        push_err(
                            &mut e.status,
                            &format!("traefik.http.services.{name}.loadbalancer.server.port"),
                            format!(
                                "the container exposes several ports ({}); set this label to choose",
                                many.iter().map(u16::to_string).collect::<Vec<_>>().join(", ")
                            ),
                        );
                        None
                    }
                },
            };
            let health_path = e.parsed.health_path.clone().or(svc_health);
            let spec = services.entry(name.clone()).or_insert_with(|| ServiceSpec {
                name: name.clone(),
                servers: Vec::new(),
                health: health_path.as_deref().map(health),
                balance: Balance::RoundRobin,
                source: Source::Docker,
                ca: None,
            });
            if spec.health.is_none() {
                spec.health = health_path.as_deref().map(health);
            }
            e.status.services.push(name.clone());
            let (Some((net, ip)), Some(port)) = (&network, port) else {
                continue;
            };
            let ip = ip.unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST)); // host networking
            let addr = SocketAddr::new(ip, port);
            e.status.address = Some(format!("{scheme}://{addr}"));
            e.status.network = Some(net.clone());
            if running && !healthy && c.health.is_none() {
                probes.push((c.id.clone(), addr));
            }
            if running && healthy {
                e.status.in_rotation = true;
                let server = ServerAddr {
                    scheme,
                    authority: addr.to_string(),
                };
                if !spec.servers.contains(&server) {
                    spec.servers.push(server);
                }
            }
        }
    }

    // Pass 2: routers.
    for e in entries.iter_mut() {
        let only_service = match e.status.services.as_slice() {
            [one] => Some(one.clone()),
            _ => None,
        };
        for (rname, r) in &e.parsed.routers {
            let key = |k: &str| format!("traefik.http.routers.{rname}.{k}");
            let Some(rule) = &r.rule else {
                push_err(
                    &mut e.status,
                    &key("rule"),
                    "a router needs a rule; this router is not served",
                );
                continue;
            };
            if let Err(err) = Rule::parse(rule) {
                push_err(
                    &mut e.status,
                    &key("rule"),
                    format!("{err}; this router is not served"),
                );
                continue;
            }
            let service = match (&r.service, &only_service) {
                (Some(s), _) => s.clone(),
                (None, Some(s)) => s.clone(),
                (None, None) => {
                    push_err(
                        &mut e.status,
                        &key("service"),
                        "the container defines several services; name the one this router uses",
                    );
                    continue;
                }
            };
            if !services.contains_key(&service) && !settings.other_services.contains(&service) {
                push_err(
                    &mut e.status,
                    &key("service"),
                    format!("no service named `{service}` (from labels or the config file); this router is not served"),
                );
                continue;
            }
            let mut strip_prefix = None;
            let mut bad = false;
            for m in &r.middlewares {
                match strip.get(m) {
                    Some(p) if strip_prefix.is_none() => strip_prefix = Some(p.clone()),
                    Some(_) => {
                        push_err(
                            &mut e.status,
                            &key("middlewares"),
                            "more than one stripprefix middleware",
                        );
                        bad = true;
                    }
                    None => {
                        push_err(
                            &mut e.status,
                            &key("middlewares"),
                            format!("no stripprefix middleware named `{m}` on any container"),
                        );
                        bad = true;
                    }
                }
            }
            if bad {
                continue;
            }
            let raw = RawRoute {
                name: rname.clone(),
                rule: rule.clone(),
                service,
                priority: r.priority,
                strip_prefix,
                ..RawRoute::default()
            };
            if other_routes.contains(rname) {
                push_err(
                    &mut e.status,
                    &key("rule"),
                    format!("a route named `{rname}` is already defined in the config file or through the API; this router is not served"),
                );
                continue;
            }
            match routes.get(rname) {
                Some((existing, owner)) if *existing != raw => push_err(
                    &mut e.status,
                    &key("rule"),
                    format!("router `{rname}` is already defined differently by container `{owner}`; this one is ignored"),
                ),
                Some(_) => {}
                None => {
                    routes.insert(rname.clone(), (raw, e.c.name.clone()));
                }
            }
            if !e.status.routes.contains(rname) {
                e.status.routes.push(rname.clone());
            }
        }
    }

    // Pass 3: shadows and canaries attached by `umbra.shadow.of` / `umbra.canary.of`.
    let known = |s: &str| services.contains_key(s) || settings.other_services.contains(s);
    let mut attach = label_attachments(&mut entries, &routes, other_routes, &known);

    let rollouts = label_rollouts(&mut entries, &routes, other_routes);

    // Docker routes carry their attachments in their own definition.
    let mut out_routes = Vec::new();
    for (name, (mut raw, _)) in routes {
        if let Some(a) = attach.remove(&name) {
            raw.shadow = a.shadow;
            raw.canary = a.canary;
        }
        out_routes.push(raw);
    }

    Built {
        inputs: DockerInputs {
            services,
            routes: out_routes,
            attach,
            rollouts,
        },
        containers: entries.into_iter().map(|e| e.status).collect(),
        probes,
    }
}

/// `no route named `x` (routes: a, b)` for a label naming a route that does not exist.
fn no_route<'a>(route: &str, routes: impl Iterator<Item = &'a String>) -> String {
    let mut names: Vec<&str> = routes.map(String::as_str).collect();
    names.sort_unstable();
    names.dedup();
    let listed = if names.is_empty() {
        "none".to_string()
    } else {
        names.join(", ")
    };
    format!("no route named `{route}` (routes: {listed})")
}

/// Shadows and canaries that `umbra.shadow.of` / `umbra.canary.of` attach to routes, by route:
/// every service shadowing a route is a candidate; a route has one canary (a second is named
/// and ignored). `known` says whether a service name exists (for `umbra.shadow.secondary`).
fn label_attachments<V>(
    entries: &mut [Entry<'_>],
    routes: &BTreeMap<String, V>,
    other_routes: &BTreeSet<String>,
    known: &dyn Fn(&str) -> bool,
) -> BTreeMap<String, Attach> {
    let mut attach: BTreeMap<String, Attach> = BTreeMap::new();
    // The canary of each route: (container, service).
    let mut canaries: HashMap<String, (String, String)> = HashMap::new();
    for e in entries.iter_mut() {
        let Some(service) = e.status.services.first().cloned() else {
            continue;
        };
        let wants = [
            ("umbra.shadow.of", e.parsed.shadow_of.clone(), "shadow"),
            ("umbra.canary.of", e.parsed.canary_of.clone(), "canary"),
        ];
        for (label, target, kind) in wants {
            let Some(route) = target else { continue };
            if !routes.contains_key(&route) && !other_routes.contains(&route) {
                let message = no_route(&route, routes.keys().chain(other_routes));
                push_err(&mut e.status, label, message);
                continue;
            }
            // Several services shadowing one route are several candidates (a replica of one
            // already listed adds nothing); a route has one canary.
            if kind == "shadow" {
                let shadows = attach.get(&route).and_then(|a| a.shadow.as_ref());
                if shadows.is_some_and(|l| l.get(&service).is_some()) {
                    continue;
                }
            } else if let Some((owner, svc)) = canaries.get(&route) {
                if *svc != service {
                    push_err(
                        &mut e.status,
                        label,
                        format!("route `{route}` already has a canary (service `{svc}` from container `{owner}`); ignored"),
                    );
                }
                continue;
            }
            if kind == "shadow" {
                if let Some(sec) = &e.parsed.shadow_secondary {
                    if !known(sec) {
                        push_err(
                            &mut e.status,
                            "umbra.shadow.secondary",
                            format!("no service named `{sec}`; the shadow runs without a secondary (no noise measurement)"),
                        );
                    }
                }
            }
            let a = attach.entry(route.clone()).or_default();
            if kind == "shadow" {
                let secondary = e.parsed.shadow_secondary.clone().filter(|s| known(s));
                let candidate = RawShadow {
                    service: service.clone(),
                    percent: Some(e.parsed.shadow_percent.unwrap_or(100.0)),
                    secondary,
                    ..RawShadow::default()
                };
                a.shadow
                    .get_or_insert_with(Default::default)
                    .0
                    .push(candidate);
            } else {
                canaries.insert(route, (e.c.name.clone(), service.clone()));
                a.canary = Some(RawCanary {
                    service: service.clone(),
                    weight: e.parsed.canary_weight.unwrap_or(0.0),
                    sticky: None,
                });
            }
        }
        for (set, label) in [
            (e.parsed.shadow_percent.is_some(), "umbra.shadow.percent"),
            (
                e.parsed.shadow_secondary.is_some(),
                "umbra.shadow.secondary",
            ),
        ] {
            if set && e.parsed.shadow_of.is_none() {
                push_err(
                    &mut e.status,
                    label,
                    "has no effect without umbra.shadow.of",
                );
            }
        }
        if e.parsed.canary_weight.is_some() && e.parsed.canary_of.is_none() {
            push_err(
                &mut e.status,
                "umbra.canary.weight",
                "has no effect without umbra.canary.of",
            );
        }
    }
    attach
}

/// Rollouts asked for by `umbra.rollout.of` / `umbra.rollout.steps`: one per route, by the
/// first container whose service is in rotation (running and healthy).
fn label_rollouts<V>(
    entries: &mut [Entry<'_>],
    routes: &BTreeMap<String, V>,
    other_routes: &BTreeSet<String>,
) -> BTreeMap<String, umbra_core::config::RawRollout> {
    let mut out = BTreeMap::new();
    for e in entries.iter_mut() {
        if e.parsed.rollout_steps.is_some() && e.parsed.rollout_of.is_none() {
            push_err(
                &mut e.status,
                "umbra.rollout.steps",
                "has no effect without umbra.rollout.of",
            );
        }
        let Some(route) = e.parsed.rollout_of.clone() else {
            continue;
        };
        if !routes.contains_key(&route) && !other_routes.contains(&route) {
            push_err(
                &mut e.status,
                "umbra.rollout.of",
                format!("no route named `{route}`"),
            );
            continue;
        }
        let Some(service) = e.status.services.first().cloned() else {
            continue;
        };
        if e.status.in_rotation && !out.contains_key(&route) {
            let raw = umbra_core::config::RawRollout {
                service,
                steps: e.parsed.rollout_steps.clone(),
                ..Default::default()
            };
            out.insert(route, raw);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn container(name: &str, ip: &str, labels: &[(&str, &str)]) -> Container {
        Container {
            id: format!("{name}-id"),
            name: name.into(),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            state: "running".into(),
            ready: true,
            networks: [("net".to_string(), Some(ip.parse().unwrap()))].into(),
            exposed_ports: vec![8080],
            ..Container::default()
        }
    }

    fn api(name: &str, ip: &str) -> Container {
        container(
            name,
            ip,
            &[
                ("umbra.enable", "true"),
                ("com.docker.compose.service", "api"),
                ("traefik.http.routers.api.rule", "PathPrefix(`/api`)"),
                ("traefik.http.routers.api.middlewares", "strip"),
                (
                    "traefik.http.middlewares.strip.stripprefix.prefixes",
                    "/api",
                ),
            ],
        )
    }

    fn none() -> BTreeSet<String> {
        BTreeSet::new()
    }

    #[test]
    fn replicas_pool_into_one_service_and_one_route() {
        let b = build(
            &[api("api-2", "10.0.0.3"), api("api-1", "10.0.0.2")],
            &Settings::default(),
            &none(),
        );
        let svc = &b.inputs.services["api"];
        let addrs: Vec<&str> = svc.servers.iter().map(|s| s.authority.as_str()).collect();
        assert_eq!(addrs, ["10.0.0.2:8080", "10.0.0.3:8080"]);
        assert_eq!(b.inputs.routes.len(), 1);
        assert_eq!(b.inputs.routes[0].strip_prefix.as_deref(), Some("/api"));
        assert!(b
            .containers
            .iter()
            .all(|c| c.errors.is_empty() && c.in_rotation));
    }

    /// Traefik's `server.scheme`: a gRPC container is reached over h2c, a TLS one over https.
    #[test]
    fn the_service_scheme_label_picks_http_https_or_h2c() {
        let grpc = container(
            "greeter",
            "10.0.0.7",
            &[
                ("umbra.enable", "true"),
                (
                    "traefik.http.routers.g.rule",
                    "PathPrefix(`/helloworld.Greeter/`)",
                ),
                ("traefik.http.services.g.loadbalancer.server.port", "50051"),
                ("traefik.http.services.g.loadbalancer.server.scheme", "H2C"),
            ],
        );
        let b = build(&[grpc], &Settings::default(), &none());
        let urls: Vec<String> = b.inputs.services["g"]
            .servers
            .iter()
            .map(|s| s.url())
            .collect();
        assert_eq!(urls, ["h2c://10.0.0.7:50051"]);
        assert_eq!(
            b.containers[0].address.as_deref(),
            Some("h2c://10.0.0.7:50051")
        );
    }

    #[test]
    fn stopping_unhealthy_and_starting_containers_leave_rotation_but_keep_the_route() {
        let mut a = api("api-1", "10.0.0.2");
        a.stopping = true;
        let mut b = api("api-2", "10.0.0.3");
        b.health = Some("unhealthy".into());
        let mut c = api("api-3", "10.0.0.4");
        c.health = Some("starting".into());
        let mut d = api("api-4", "10.0.0.5");
        d.state = "exited".into();
        let built = build(&[a, b, c, d], &Settings::default(), &none());
        assert!(built.inputs.services["api"].servers.is_empty());
        assert_eq!(
            built.inputs.routes.len(),
            1,
            "the route stays so it answers 503, not 404"
        );
        assert_eq!(built.containers[0].state, "stopping");
        assert!(built.containers.iter().all(|c| !c.in_rotation));
    }

    #[test]
    fn a_container_not_yet_listening_is_probed_not_served() {
        let mut a = api("api-1", "10.0.0.2");
        a.ready = false;
        let b = build(&[a], &Settings::default(), &none());
        assert!(b.inputs.services["api"].servers.is_empty());
        assert_eq!(
            b.probes,
            vec![("api-1-id".to_string(), "10.0.0.2:8080".parse().unwrap())]
        );
    }

    #[test]
    fn networks_are_chosen_by_rule_never_at_random() {
        let mut c = api("api-1", "10.0.0.2");
        c.networks
            .insert("other".into(), Some("10.9.0.2".parse().unwrap()));
        let b = build(&[c.clone()], &Settings::default(), &none());
        assert!(b.inputs.services["api"].servers.is_empty());
        assert!(b.containers[0].errors[0]
            .message
            .contains("several networks (net, other)"));

        let s = Settings {
            network: Some("other".into()),
            ..Settings::default()
        };
        let b = build(&[c.clone()], &s, &none());
        assert_eq!(
            b.inputs.services["api"].servers[0].authority,
            "10.9.0.2:8080"
        );

        let s = Settings {
            own_networks: vec!["net".into()],
            ..Settings::default()
        };
        let b = build(&[c.clone()], &s, &none());
        assert_eq!(
            b.inputs.services["api"].servers[0].authority,
            "10.0.0.2:8080"
        );

        c.labels
            .insert("traefik.docker.network".into(), "missing".into());
        let b = build(&[c], &Settings::default(), &none());
        let e = &b.containers[0].errors[0];
        assert_eq!(e.label, "traefik.docker.network");
        assert!(e.message.contains("network `missing`"), "{e:?}");
    }

    #[test]
    fn compose_project_prefix_is_accepted_for_network_names() {
        let mut c = api("api-1", "10.0.0.2");
        c.networks = [
            ("shop_front".to_string(), Some("10.1.0.2".parse().unwrap())),
            ("shop_back".to_string(), Some("10.2.0.2".parse().unwrap())),
        ]
        .into();
        c.labels
            .insert("com.docker.compose.project".into(), "shop".into());
        c.labels
            .insert("traefik.docker.network".into(), "back".into());
        let b = build(&[c], &Settings::default(), &none());
        assert_eq!(
            b.inputs.services["api"].servers[0].authority,
            "10.2.0.2:8080"
        );
    }

    #[test]
    fn ports_come_from_the_label_or_the_only_exposed_port() {
        let mut c = api("api-1", "10.0.0.2");
        c.exposed_ports = vec![80, 443];
        let b = build(&[c.clone()], &Settings::default(), &none());
        assert!(b.containers[0].errors[0]
            .message
            .contains("several ports (80, 443)"));
        c.labels.insert(
            "traefik.http.services.api.loadbalancer.server.port".into(),
            "80".into(),
        );
        let b = build(&[c], &Settings::default(), &none());
        assert_eq!(b.inputs.services["api"].servers[0].authority, "10.0.0.2:80");
        assert!(b.containers[0].errors.is_empty());
    }

    #[test]
    fn shadow_and_canary_labels_attach_to_routes() {
        let v2 = container(
            "api-v2",
            "10.0.0.9",
            &[
                ("umbra.enable", "true"),
                ("com.docker.compose.service", "api-v2"),
                ("umbra.shadow.of", "api"),
                ("umbra.shadow.percent", "50"),
                ("umbra.canary.of", "web"),
                ("umbra.canary.weight", "10"),
            ],
        );
        let others: BTreeSet<String> = ["web".to_string()].into();
        let b = build(
            &[api("api-1", "10.0.0.2"), v2],
            &Settings::default(),
            &others,
        );
        let route = &b.inputs.routes[0];
        let shadow = &route.shadow.as_ref().unwrap().0[0];
        assert_eq!(
            (shadow.service.as_str(), shadow.percent),
            ("api-v2", Some(50.0))
        );
        assert_eq!(b.inputs.attach["web"].canary.as_ref().unwrap().weight, 10.0);
        assert!(!b.inputs.attach.contains_key("api"));
    }

    #[test]
    fn several_shadow_containers_are_several_candidates() {
        let candidate = |name: &str, ip: &str, percent: &str| {
            let labels = [
                ("umbra.enable", "true"),
                ("com.docker.compose.service", name),
                ("umbra.shadow.of", "api"),
                ("umbra.shadow.percent", percent),
            ];
            container(name, ip, &labels)
        };
        let v2 = candidate("api-v2", "10.0.0.9", "100");
        let v2_replica = candidate("api-v2", "10.0.0.11", "100");
        let v3 = candidate("api-v3", "10.0.0.10", "20");
        let b = build(
            &[api("api-1", "10.0.0.2"), v2, v2_replica, v3],
            &Settings::default(),
            &BTreeSet::new(),
        );
        let list = &b.inputs.routes[0].shadow.as_ref().unwrap().0;
        let got: Vec<(&str, Option<f64>)> = list
            .iter()
            .map(|s| (s.service.as_str(), s.percent))
            .collect();
        assert_eq!(got, [("api-v2", Some(100.0)), ("api-v3", Some(20.0))]);
        assert_eq!(
            b.inputs.services["api-v2"].servers.len(),
            2,
            "a replica is a server"
        );
        assert!(b.containers.iter().all(|c| c.errors.is_empty()));
    }

    #[test]
    fn a_second_canary_for_one_route_is_named_and_ignored() {
        let canary = |name: &str, ip: &str| {
            let labels = [
                ("umbra.enable", "true"),
                ("com.docker.compose.service", name),
                ("umbra.canary.of", "api"),
                ("umbra.canary.weight", "10"),
            ];
            container(name, ip, &labels)
        };
        let b = build(
            &[
                api("api-1", "10.0.0.2"),
                canary("api-v2", "10.0.0.9"),
                canary("api-v3", "10.0.0.10"),
            ],
            &Settings::default(),
            &BTreeSet::new(),
        );
        let route = &b.inputs.routes[0];
        assert_eq!(route.canary.as_ref().unwrap().service, "api-v2");
        let errors: Vec<&LabelError> = b.containers.iter().flat_map(|c| &c.errors).collect();
        assert_eq!(errors.len(), 1, "{errors:#?}");
        assert_eq!(errors[0].label, "umbra.canary.of");
        assert!(
            errors[0].message.contains("route `api` already has a canary (service `api-v2` from container `api-v2`); ignored"),
            "{errors:#?}"
        );
    }

    #[test]
    fn a_rollout_label_asks_once_its_container_is_healthy() {
        let labels = [
            ("umbra.enable", "true"),
            ("com.docker.compose.service", "api-v2"),
            ("umbra.rollout.of", "web"),
            ("umbra.rollout.steps", "shadow 5m, 10% 5m,100%"),
        ];
        let others: BTreeSet<String> = ["web".to_string()].into();
        let mut starting = container("api-v2", "10.0.0.9", &labels);
        starting.health = Some("starting".into());
        let b = build(&[starting], &Settings::default(), &others);
        assert!(b.inputs.rollouts.is_empty(), "not before it is healthy");
        let mut healthy = container("api-v2", "10.0.0.9", &labels);
        healthy.health = Some("healthy".into());
        let b = build(&[healthy], &Settings::default(), &others);
        let r = &b.inputs.rollouts["web"];
        assert_eq!(r.service, "api-v2");
        assert_eq!(
            r.steps.as_deref(),
            Some(&["shadow 5m".to_string(), "10% 5m".into(), "100%".into()][..])
        );
        let bad = container(
            "api-v3",
            "10.0.0.8",
            &[
                ("umbra.enable", "true"),
                ("umbra.rollout.of", "nope"),
                ("umbra.rollout.steps", "shadow 5m,150% 1m,100%"),
            ],
        );
        let b = build(&[bad], &Settings::default(), &others);
        let errors = format!("{:?}", b.containers[0].errors);
        assert!(
            errors.contains("umbra.rollout.steps") && errors.contains("at most 100"),
            "{errors}"
        );
        assert!(
            errors.contains("umbra.rollout.of") && errors.contains("no route named `nope`"),
            "{errors}"
        );
        assert!(b.inputs.rollouts.is_empty());
    }

    #[test]
    fn a_shadow_of_no_route_and_a_bad_rule_are_reported() {
        let v2 = container(
            "v2",
            "10.0.0.9",
            &[("umbra.enable", "true"), ("umbra.shadow.of", "nope")],
        );
        let bad = container(
            "bad",
            "10.0.0.8",
            &[
                ("traefik.enable", "true"),
                ("traefik.http.routers.x.rule", "Path(`/a`"),
            ],
        );
        let b = build(&[v2, bad], &Settings::default(), &none());
        let errs: Vec<String> = b
            .containers
            .iter()
            .flat_map(|c| {
                c.errors
                    .iter()
                    .map(move |e| format!("{}: {}: {}", c.name, e.label, e.message))
            })
            .collect();
        assert!(
            errs.iter()
                .any(|e| e.starts_with("v2: umbra.shadow.of: no route named `nope`")),
            "{errs:#?}"
        );
        assert!(
            errs.iter()
                .any(|e| e.starts_with("bad: traefik.http.routers.x.rule:")),
            "{errs:#?}"
        );
        assert!(b.inputs.routes.is_empty());
    }

    #[test]
    fn labelled_but_not_enabled_is_reported_and_disabled_is_quiet() {
        let typo = container("typo", "10.0.0.2", &[("umbra.enabel", "true")]);
        let off = container(
            "off",
            "10.0.0.3",
            &[("umbra.enable", "false"), ("umbra.shadow.of", "x")],
        );
        let b = build(&[typo, off], &Settings::default(), &none());
        assert_eq!(b.containers.len(), 1);
        let msgs: Vec<&str> = b.containers[0]
            .errors
            .iter()
            .map(|e| e.message.as_str())
            .collect();
        assert!(
            msgs.iter()
                .any(|m| m.contains("did you mean `umbra.enable`")),
            "{msgs:?}"
        );
        assert!(msgs.iter().any(|m| m.contains("not enabled")), "{msgs:?}");
        assert!(b.inputs.services.is_empty());
    }

    #[test]
    fn services_named_by_labels_must_exist() {
        let mut r = api("api-1", "10.0.0.2");
        r.labels
            .insert("traefik.http.routers.api.service".into(), "nope".into());
        let v2 = container(
            "v2",
            "10.0.0.9",
            &[
                ("umbra.enable", "true"),
                ("umbra.shadow.of", "web"),
                ("umbra.shadow.secondary", "ghost"),
            ],
        );
        let s = Settings {
            other_services: ["web-v1".to_string()].into(),
            ..Settings::default()
        };
        let others: BTreeSet<String> = ["web".to_string()].into();
        let b = build(&[r, v2], &s, &others);
        assert!(
            b.inputs.routes.is_empty(),
            "a router to no service is not served"
        );
        let errs: Vec<String> = b
            .containers
            .iter()
            .flat_map(|c| {
                c.errors
                    .iter()
                    .map(|e| format!("{}: {}", e.label, e.message))
            })
            .collect();
        assert!(errs.iter().any(|e| e.starts_with("traefik.http.routers.api.service: no service named `nope`")), "{errs:#?}");
        assert!(
            errs.iter()
                .any(|e| e.starts_with("umbra.shadow.secondary: no service named `ghost`")),
            "{errs:#?}"
        );
        assert_eq!(
            b.inputs.attach["web"].shadow.as_ref().unwrap().0[0].secondary,
            None
        );

        // A file-defined service is a valid target.
        let mut r = api("api-1", "10.0.0.2");
        r.labels
            .insert("traefik.http.routers.api.service".into(), "web-v1".into());
        let b = build(&[r], &s, &BTreeSet::new());
        assert_eq!(b.inputs.routes[0].service, "web-v1");
    }

    #[test]
    fn conflicting_router_definitions_keep_the_first() {
        let a = api("api-1", "10.0.0.2");
        let mut b = api("api-2", "10.0.0.3");
        b.labels.insert(
            "traefik.http.routers.api.rule".into(),
            "PathPrefix(`/v2`)".into(),
        );
        let built = build(&[b, a], &Settings::default(), &none());
        assert_eq!(built.inputs.routes[0].rule, "PathPrefix(`/api`)");
        assert!(built.containers[1].errors[0]
            .message
            .contains("already defined differently by container `api-1`"));
    }

    #[test]
    fn routes_defined_elsewhere_win_over_docker_routers() {
        let others: BTreeSet<String> = ["api".to_string()].into();
        let b = build(&[api("api-1", "10.0.0.2")], &Settings::default(), &others);
        assert!(b.inputs.routes.is_empty());
        assert!(b.containers[0].errors[0]
            .message
            .contains("already defined in the config file"));
    }
}
