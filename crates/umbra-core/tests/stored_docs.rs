//! What the change feed does to a replica's runtime: a route document another replica stored
//! is applied as start-up `restore` would, a document already in force changes nothing (a
//! replica's own change coming back), and a full re-read makes the runtime match the store.

use std::sync::Arc;

use tokio::sync::mpsc;
use umbra_core::config::raw::RawCanary;
use umbra_core::config::RawRoute;
use umbra_core::runtime::{Persist, RuntimeEvent};
use umbra_core::telemetry::Metrics;
use umbra_core::{Config, Runtime};

const FILE: &str = r#"
[log]
access = false
[services.api]
servers = ["http://127.0.0.1:9"]
[services.api-v2]
servers = ["http://127.0.0.1:10"]
[[routes]]
name = "api"
rule = "PathPrefix(`/`)"
service = "api"
"#;

fn replica() -> (Arc<Runtime>, mpsc::Receiver<RuntimeEvent>) {
    let config = Config::parse(FILE, "umbra.toml", &|_| None).unwrap();
    let (tx, events) = mpsc::channel(64);
    (Runtime::new(config, Arc::new(Metrics::new()), tx), events)
}

/// The (name, kind, document) a change leaves in the `routes` table.
fn stored(p: &Persist) -> (String, String, serde_json::Value) {
    let (name, kind, doc) = p.to_doc().expect("a stored document");
    (name, kind.to_string(), doc)
}

fn canary_weight(rt: &Runtime, route: &str) -> Option<f64> {
    rt.snapshot()
        .route(route)?
        .spec
        .canary
        .as_ref()
        .map(|c| c.weight)
}

fn canary(weight: f64) -> Option<RawCanary> {
    Some(RawCanary {
        service: "api-v2".into(),
        weight,
        sticky: None,
    })
}

#[tokio::test]
async fn another_replicas_override_applies_once_and_silently() {
    let (a, _) = replica();
    let (b, mut b_events) = replica();
    let p = a.set_canary("api", canary(30.0), "api").unwrap();
    let (name, kind, doc) = stored(&p);
    assert_eq!(kind, "override");

    assert_eq!(b.apply_stored(&name, Some((&kind, doc.clone()))), Ok(true));
    assert_eq!(canary_weight(&b, "api"), Some(30.0));
    let generation = b.snapshot().generation;
    assert_eq!(b.apply_stored(&name, Some((&kind, doc.clone()))), Ok(false));
    assert_eq!(
        b.snapshot().generation,
        generation,
        "no rebuild for nothing"
    );
    // The replica that made the change hears it back: nothing to do.
    assert_eq!(a.apply_stored(&name, Some((&kind, doc))), Ok(false));
    assert!(
        b_events.try_recv().is_err(),
        "the writer recorded the event, not B"
    );

    // The override removed (e.g. rollback cleared it): B goes back to the file's route.
    assert_eq!(b.apply_stored("api", None), Ok(true));
    assert_eq!(canary_weight(&b, "api"), None);
}

#[tokio::test]
async fn api_routes_come_and_go_and_bad_documents_change_nothing() {
    let (a, _) = replica();
    let (b, _) = replica();
    let raw: RawRoute = serde_json::from_value(serde_json::json!({
        "rule": "PathPrefix(`/v2`)", "service": "api-v2", "name": "v2"
    }))
    .unwrap();
    let (name, kind, doc) = stored(&a.put_route(raw, "api").unwrap());
    assert_eq!(b.apply_stored(&name, Some((&kind, doc.clone()))), Ok(true));
    assert!(b.snapshot().route("v2").is_some());

    let bad = serde_json::json!({"rule": "PathPrefix(`/v2`)", "servise": "typo"});
    let err = b.apply_stored("v2", Some(("api", bad))).unwrap_err();
    assert!(err.contains("`v2`") && err.contains("servise"), "{err}");
    assert!(b.snapshot().route("v2").is_some(), "kept");
    let err = b
        .apply_stored("v2", Some(("rollout-ish", doc)))
        .unwrap_err();
    assert!(err.contains("unknown kind"), "{err}");

    assert_eq!(b.apply_stored("v2", None), Ok(true));
    assert!(b.snapshot().route("v2").is_none());
    assert_eq!(b.apply_stored("v2", None), Ok(false));
}

#[tokio::test]
async fn a_full_reread_makes_the_runtime_match_the_store() {
    let (a, _) = replica();
    let (b, _) = replica();
    b.set_canary("api", canary(10.0), "api").unwrap();
    let raw: RawRoute = serde_json::from_value(serde_json::json!({
        "rule": "PathPrefix(`/old`)", "service": "api", "name": "old"
    }))
    .unwrap();
    b.put_route(raw, "api").unwrap();

    // What the store holds after changes B missed: the canary at 50 %, `old` deleted.
    let docs = vec![stored(&a.set_canary("api", canary(50.0), "api").unwrap())];
    let (changed, problems) = b.replace_stored(docs.clone());
    assert!(changed && problems.is_empty(), "{problems:?}");
    assert_eq!(canary_weight(&b, "api"), Some(50.0));
    assert!(b.snapshot().route("old").is_none());
    assert_eq!(b.replace_stored(docs), (false, vec![]));

    // A document that does not parse keeps what is in force under its name.
    let bad = vec![(
        "api".to_string(),
        "override".to_string(),
        serde_json::json!({"x": 1}),
    )];
    let (changed, problems) = b.replace_stored(bad);
    assert!(!changed && problems.len() == 1, "{problems:?}");
    assert_eq!(canary_weight(&b, "api"), Some(50.0));
}
