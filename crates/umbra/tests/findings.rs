//! Findings end to end: the `umbra` binary shadowing to fixture upstreams, its findings API,
//! the comparisons list filtered by finding, and the findings rebuilt from the store after a
//! restart.

mod support;

use std::time::Duration;

use serde_json::{json, Value};
use umbra_testkit::{assert_eventually, free_addr, get, Fixture};

use support::{start_umbra, stop_umbra, succeeded, tempdir, umbra};

/// v1 and v2 of an API: `/balance` turns into a string on users, `/currency` is dropped from
/// orders, and `/at` is a timestamp that differs on every answer (type-aware noise).
async fn fixtures() -> (Fixture, Fixture) {
    let v1 = Fixture::builder()
        .name("v1")
        .json(
            "/users/1",
            json!({"id": 1, "balance": 10, "at": "2026-01-01T00:00:00Z"}),
        )
        .json("/orders/1", json!({"id": 1, "total": 5, "currency": "EUR"}))
        .start()
        .await;
    let v2 = Fixture::builder()
        .name("v2")
        .json(
            "/users/1",
            json!({"id": 1, "balance": "10", "at": "2026-01-02T03:04:05Z"}),
        )
        .json("/orders/1", json!({"id": 1, "total": 5}))
        .start()
        .await;
    (v1, v2)
}

fn config(dir: &std::path::Path, proxy: &str, admin: &str, v1: &str, v2: &str) -> String {
    format!(
        "[proxy]\nlisten = \"{proxy}\"\nworkers = 1\n[admin]\nlisten = \"{admin}\"\n\
         [store]\nurl = \"sqlite://{}\"\n[log]\naccess = false\n\
         [services.v1]\nservers = [\"{v1}\"]\n[services.v2]\nservers = [\"{v2}\"]\n\
         [[routes]]\nname = \"api\"\nrule = \"PathPrefix(`/`)\"\nservice = \"v1\"\n\
         shadow = {{ service = \"v2\", percent = 100 }}\n\
         compare = {{ ignore_headers = [\"x-fixture\"] }}\n",
        dir.join("u.db").display(),
    )
}

async fn findings(admin: &str, query: &str) -> Vec<Value> {
    let r = get(format!("{admin}/api/routes/api/findings{query}")).await;
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()["findings"].as_array().cloned().unwrap_or_default()
}

async fn listed(admin: &str, finding: &str) -> Vec<Value> {
    let url = format!("{admin}/api/comparisons?finding={finding}&limit=500");
    get(url).await.json()["items"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

#[tokio::test]
async fn findings_api_filter_and_rebuild_through_the_binary() {
    let (v1, v2) = fixtures().await;
    let dir = tempdir("findings", "api");
    let (proxy, admin) = (free_addr(), free_addr());
    let cfg = dir.join("umbra.toml");
    let text = config(
        &dir,
        &proxy.to_string(),
        &admin.to_string(),
        &v1.url(),
        &v2.url(),
    );
    std::fs::write(&cfg, text).unwrap();
    let admin_url = format!("http://{admin}");
    let child = start_umbra(&cfg, &admin_url).await;
    for _ in 0..20 {
        assert_eq!(get(format!("http://{proxy}/users/1")).await.status, 200);
        assert_eq!(get(format!("http://{proxy}/orders/1")).await.status, 200);
    }
    assert_eventually!(
        listed_all(&admin_url).await == 40,
        timeout = Duration::from_secs(10)
    );

    // Two significant findings, both high; the timestamp is only a noise finding.
    let found = findings(&admin_url, "").await;
    assert_eq!(found.len(), 2, "{found:#?}");
    for f in &found {
        assert_eq!(
            (f["severity"].as_str(), f["significant"].as_bool()),
            (Some("high"), Some(true))
        );
        assert_eq!(f["candidate"], "v2");
        assert_eq!(f["rate"], 1.0);
        assert!(
            f["first_seen"].as_str().is_some_and(|t| t.ends_with('Z')),
            "{f}"
        );
    }
    let by_field = |field: &str| -> Value {
        let f = found
            .iter()
            .find(|f| f["fields"].to_string().contains(field));
        f.unwrap_or_else(|| panic!("no finding covers {field}: {found:#?}"))
            .clone()
    };
    let balance = by_field("/balance");
    assert_eq!(balance["endpoint"], "GET /users/{id}");
    assert!(
        balance["summary"]
            .as_str()
            .unwrap()
            .contains("into a string"),
        "{balance}"
    );
    assert_eq!(by_field("/currency")["endpoint"], "GET /orders/{id}");
    let with_noise = findings(&admin_url, "?noise=true").await;
    assert_eq!(with_noise.len(), 3, "{with_noise:#?}");
    let noise: Vec<&Value> = with_noise
        .iter()
        .filter(|f| f["significant"] == false)
        .collect();
    assert_eq!(noise.len(), 1);
    assert_eq!(noise[0]["fields"], json!(["/at"]));

    // The filtered list holds exactly the finding's comparisons; examples are among them.
    let id = balance["id"].as_str().unwrap().to_owned();
    let items = listed(&admin_url, &id).await;
    assert_eq!(items.len(), 20);
    assert!(items.iter().all(|c| c["endpoint"] == "GET /users/{id}"));
    let examples = balance["example_ids"].as_array().unwrap();
    assert_eq!(examples.len(), 5);
    assert!(examples.iter().all(|e| items.iter().any(|c| c["id"] == *e)));

    // Bad input names the field.
    let bad = get(format!("{admin_url}/api/routes/api/findings?noise=maybe")).await;
    assert_eq!(bad.status, 422);
    assert!(bad.text().contains("noise"), "{}", bad.text());
    let bad = get(format!("{admin_url}/api/comparisons?finding=nope")).await;
    assert_eq!(bad.status, 422);
    assert!(bad.text().contains("finding"), "{}", bad.text());
    let gone = get(format!("{admin_url}/api/routes/nope/findings")).await;
    assert_eq!(gone.status, 404);

    // `umbra diffs` leads with the findings; `--fields` gives the field table.
    let cli = |extra: &[&str]| {
        let out = umbra()
            .args(["diffs", "api", "--admin", &admin_url])
            .args(extra)
            .output()
            .unwrap();
        succeeded(&out)
    };
    let text = cli(&[]);
    let high: Vec<&str> = text.lines().filter(|l| l.starts_with("  HIGH")).collect();
    assert_eq!(high.len(), 2, "{text}");
    assert!(
        text.contains("`/currency` removed on every `GET /orders/{id}`"),
        "{text}"
    );
    assert!(text.contains(&id), "the finding id is shown: {text}");
    let table = cli(&["--fields"]);
    assert!(
        table.contains("FIELD") && table.contains("/at") && table.contains("/balance"),
        "{table}"
    );
    stop_umbra(child).await;

    // After a restart the findings are rebuilt from the store, with the same ids.
    let child = start_umbra(&cfg, &admin_url).await;
    let ids = |v: &[Value]| -> Vec<String> {
        let mut ids: Vec<String> = v.iter().map(|f| f["id"].to_string()).collect();
        ids.sort();
        ids
    };
    let before = ids(&found);
    assert_eventually!(
        ids(&findings(&admin_url, "").await) == before,
        timeout = Duration::from_secs(10)
    );
    stop_umbra(child).await;
    let _ = std::fs::remove_dir_all(&dir);
}

async fn listed_all(admin: &str) -> usize {
    let r = get(format!("{admin}/api/comparisons?route=api&limit=500")).await;
    r.json()["items"].as_array().map_or(0, Vec::len)
}
