//! What Docker discovery hands the runtime: label-made services and routes, and shadows or
//! canaries that labels attach to routes defined in the file — with a runtime (API) override
//! still winning over a label.

use std::collections::BTreeMap;
use std::sync::Arc;

use tokio::sync::mpsc;
use umbra_core::config::raw::{RawCanary, RawShadow};
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
    assert!(rt.snapshot().route("api").unwrap().spec.shadow.is_none());

    let attach = Attach {
        shadow: Some(RawShadow {
            service: "api-v2".into(),
            percent: Some(100.0),
            ..RawShadow::default()
        }),
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
    });
    let snap = rt.snapshot();
    let route = snap.route("api").unwrap();
    assert_eq!(route.spec.source, Source::File);
    assert_eq!(route.spec.shadow.as_ref().unwrap().service, "api-v2");
    assert_eq!(route.spec.canary.as_ref().unwrap().weight, 10.0);
    assert!(snap.service("api-v2").is_some());

    // A runtime change (API/UI) wins over the label.
    rt.set_shadow("api", None, "api").unwrap();
    assert!(rt.snapshot().route("api").unwrap().spec.shadow.is_none());
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
