//! What Docker discovery hands the runtime: label-made services and routes, and shadows or
//! canaries that labels attach to routes defined in the file — with a runtime (API) override
//! still winning over a label.

use std::collections::BTreeMap;
use std::sync::Arc;

use tokio::sync::mpsc;

mod support;
use umbra_core::config::raw::{RawCanary, RawShadow, RawShadows};
use umbra_core::config::{Balance, ServerAddr, ServiceSpec, Source};
use umbra_core::runtime::{Attach, DockerInputs};
use umbra_core::telemetry::Metrics;
use umbra_core::{Config, Runtime};

const FILE: &str = r#"
[log]
access = false
[docker]
[services.api]
servers = ["http://127.0.0.1:9"]
[[routes]]
name = "api"
rule = "PathPrefix(`/`)"
service = "api"
"#;

fn docker_service(name: &str) -> ServiceSpec {
    ServiceSpec {
        name: name.into(),
        servers: vec![ServerAddr {
            scheme: "http".into(),
            authority: "10.0.0.9:8080".into(),
        }],
        health: None,
        balance: Balance::RoundRobin,
        source: Source::Docker,
        ca: None,
    }
}

#[tokio::test]
async fn labels_attach_to_file_routes_and_overrides_win() {
    let config = Config::parse(FILE, "umbra.toml", &|_| None).unwrap();
    let (tx, mut events) = mpsc::channel(16);
    let rt = Runtime::new(config, Arc::new(Metrics::new()), tx);
    assert!(rt.snapshot().route("api").unwrap().spec.shadows.is_empty());

    let attach = Attach {
        shadow: Some(RawShadows::one(RawShadow {
            service: "api-v2".into(),
            percent: Some(100.0),
            ..RawShadow::default()
        })),
        canary: Some(RawCanary {
            service: "api-v2".into(),
            weight: 10.0,
            sticky: None,
        }),
    };
    rt.set_docker(DockerInputs {
        services: BTreeMap::from([("api-v2".to_string(), docker_service("api-v2"))]),
        routes: Vec::new(),
        attach: BTreeMap::from([("api".to_string(), attach)]),
        ..Default::default()
    });
    let snap = rt.snapshot();
    let route = snap.route("api").unwrap();
    assert_eq!(route.spec.source, Source::File);
    assert_eq!(route.spec.shadows[0].service, "api-v2");
    assert_eq!(route.spec.canary.as_ref().unwrap().weight, 10.0);
    assert!(snap.service("api-v2").is_some());

    // A runtime change (API/UI) wins over the label.
    rt.set_shadow("api", None, "api").unwrap();
    assert!(rt.snapshot().route("api").unwrap().spec.shadows.is_empty());
    assert_eq!(
        rt.snapshot()
            .route("api")
            .unwrap()
            .spec
            .canary
            .as_ref()
            .unwrap()
            .weight,
        10.0,
        "the canary label still applies"
    );

    // Label-made routes are audited as discovery events (only when they change).
    events.try_recv().ok(); // the shadow.stop event
    let with_route = |rule: &str| {
        let raw = umbra_core::config::raw::RawRoute {
            name: "users".into(),
            rule: rule.into(),
            service: "api-v2".into(),
            ..Default::default()
        };
        DockerInputs {
            services: BTreeMap::from([("api-v2".to_string(), docker_service("api-v2"))]),
            routes: vec![raw],
            attach: BTreeMap::new(),
            ..Default::default()
        }
    };
    rt.set_docker(with_route("PathPrefix(`/users`)"));
    rt.set_docker(with_route("PathPrefix(`/users`)"));
    rt.set_docker(with_route("PathPrefix(`/people`)"));
    rt.set_docker(DockerInputs::default());
    let mut seen = Vec::new();
    while let Ok(e) = events.try_recv() {
        if e.kind == "discovery" {
            seen.push(e.detail.to_string());
        }
    }
    assert_eq!(
        seen,
        [
            r#"{"added":["users"],"removed":[],"changed":[]}"#,
            r#"{"added":[],"removed":[],"changed":["users"]}"#,
            r#"{"added":[],"removed":["users"],"changed":[]}"#,
        ],
        "one event per change, none for an unchanged set"
    );
}

#[tokio::test]
async fn a_rollout_label_starts_one_rollout_of_its_service() {
    use umbra_core::rollout::{Action, LocalLeadership, Rollouts, Status};
    let config = Config::parse(FILE, "umbra.toml", &|_| None).unwrap();
    let (tx, _events) = mpsc::channel(64);
    let rt = Runtime::new(config, Arc::new(Metrics::new()), tx);
    let rollouts = Rollouts::new(
        rt.clone(),
        Arc::new(support::Memory::default()),
        Arc::new(LocalLeadership::default()),
        tokio_util::sync::CancellationToken::new(),
    );
    let asked = umbra_core::config::RawRollout {
        service: "api-v2".into(),
        steps: Some(vec!["shadow 1h".into(), "100%".into()]),
        ..Default::default()
    };
    rt.set_docker(DockerInputs {
        services: BTreeMap::from([("api-v2".to_string(), docker_service("api-v2"))]),
        rollouts: BTreeMap::from([("api".to_string(), asked)]),
        ..Default::default()
    });
    rollouts.start_requested().await;
    let s = rollouts.status("api").await.expect("started by the label");
    assert_eq!(
        (s.spec.service.as_str(), s.status),
        ("api-v2", Status::Running)
    );
    assert_eq!(s.history[0].actor, "docker");
    umbra_testkit::assert_eventually!(
        rt.snapshot().route("api").unwrap().spec.shadows.len() == 1,
        timeout = std::time::Duration::from_secs(5)
    );
    // Asked again while it runs, and after it ended: not started twice.
    rollouts.start_requested().await;
    let ended = rollouts.act("api", Action::Abort, "cli").await.unwrap();
    assert_eq!(ended.status, Status::Aborted);
    assert!(rt.snapshot().route("api").unwrap().spec.shadows.is_empty());
    umbra_testkit::assert_eventually!(
        rollouts
            .status("api")
            .await
            .is_some_and(|s| s.status == Status::Aborted),
        timeout = std::time::Duration::from_secs(5)
    );
    rollouts.start_requested().await;
    assert_eq!(
        rollouts.status("api").await.unwrap().status,
        Status::Aborted
    );
}

#[tokio::test]
async fn a_candidate_added_at_runtime_joins_the_label_attached_one() {
    let config = Config::parse(FILE, "umbra.toml", &|_| None).unwrap();
    let (tx, _events) = mpsc::channel(16);
    let rt = Runtime::new(config, Arc::new(Metrics::new()), tx);
    let candidate = |service: &str| RawShadow {
        service: service.into(),
        percent: Some(100.0),
        ..RawShadow::default()
    };
    let attach = Attach {
        shadow: Some(RawShadows::one(candidate("api-v2"))),
        canary: None,
    };
    rt.set_docker(DockerInputs {
        services: BTreeMap::from([
            ("api-v2".to_string(), docker_service("api-v2")),
            ("api-v3".to_string(), docker_service("api-v3")),
        ]),
        attach: BTreeMap::from([("api".to_string(), attach)]),
        ..Default::default()
    });
    // The change starts from the route as it runs (labels included), not as the file says.
    rt.upsert_shadow("api", candidate("api-v3"), "api").unwrap();
    let names = |rt: &Runtime| -> Vec<String> {
        let snap = rt.snapshot();
        let route = snap.route("api").unwrap();
        route
            .spec
            .shadows
            .iter()
            .map(|s| s.service.clone())
            .collect()
    };
    assert_eq!(names(&rt), ["api-v2", "api-v3"]);
    rt.remove_shadow("api", "api-v2", "api").unwrap();
    assert_eq!(names(&rt), ["api-v3"]);
}
