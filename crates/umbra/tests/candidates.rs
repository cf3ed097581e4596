//! Several candidates on one route, end to end through the `umbra` binary: each gets its own
//! comparisons and findings, the comparisons list filters by one candidate's finding, the API
//! adds and removes one candidate at a time, and a rollout moves only its own candidate.

mod support;

use std::process::Child;
use std::time::Duration;

use bytes::Bytes;
use http::Request;
use http_body_util::Full;
use serde_json::{json, Value};
use umbra_testkit::{assert_eventually, free_addr, get, post_json, send, Fixture, TestResponse};

use support::{start_umbra, stop_umbra, tempdir};

/// v1, and two candidates with different regressions: v2 turns `/balance` into a string, v3
/// drops `/currency` from orders.
async fn fixtures() -> [Fixture; 3] {
    let user = |balance: Value| json!({"id": 1, "balance": balance});
    let order = json!({"id": 1, "total": 5, "currency": "EUR"});
    let v1 = Fixture::builder()
        .name("v1")
        .json("/users/1", user(json!(10)))
        .json("/orders/1", order.clone())
        .start()
        .await;
    let v2 = Fixture::builder()
        .name("v2")
        .json("/users/1", user(json!("10")))
        .json("/orders/1", order)
        .start()
        .await;
    let v3 = Fixture::builder()
        .name("v3")
        .json("/users/1", user(json!(10)))
        .json("/orders/1", json!({"id": 1, "total": 5}))
        .start()
        .await;
    [v1, v2, v3]
}

fn config(dir: &std::path::Path, proxy: &str, admin: &str, f: &[Fixture; 3]) -> String {
    format!(
        "[proxy]\nlisten = \"{proxy}\"\nworkers = 1\n[admin]\nlisten = \"{admin}\"\n\
         [store]\nurl = \"sqlite://{}\"\n[log]\naccess = false\n\
         [services.v1]\nservers = [\"{}\"]\n[services.v2]\nservers = [\"{}\"]\n\
         [services.v3]\nservers = [\"{}\"]\n\
         [[routes]]\nname = \"api\"\nrule = \"PathPrefix(`/`)\"\nservice = \"v1\"\n\
         shadow = [{{ service = \"v2\", percent = 100 }}, {{ service = \"v3\", percent = 100 }}]\n\
         compare = {{ ignore_headers = [\"x-fixture\"] }}\n",
        dir.join("u.db").display(),
        f[0].url(),
        f[1].url(),
        f[2].url(),
    )
}

/// umbra in front of v1 with v2 and v3 as candidates, from a config file of its own.
struct Stack {
    proxy: String,
    /// The admin API's base URL.
    admin: String,
    cfg: std::path::PathBuf,
    child: Child,
    _apps: [Fixture; 3],
}

impl Stack {
    async fn start(name: &str) -> Stack {
        let apps = fixtures().await;
        let dir = tempdir("candidates", name);
        let (proxy, admin) = (free_addr().to_string(), free_addr().to_string());
        let cfg = dir.join("umbra.toml");
        std::fs::write(&cfg, config(&dir, &proxy, &admin, &apps)).unwrap();
        let admin = format!("http://{admin}");
        let child = start_umbra(&cfg, &admin).await;
        Stack {
            proxy,
            admin,
            cfg,
            child,
            _apps: apps,
        }
    }
}

async fn request(method: &str, url: String, body: Option<Value>) -> TestResponse {
    let body = body.map_or(Bytes::new(), |v| Bytes::from(v.to_string()));
    let req = Request::builder()
        .method(method)
        .uri(url)
        .header("content-type", "application/json")
        .body(Full::new(body))
        .expect("a valid request");
    send(req).await
}

async fn findings(admin: &str) -> Vec<Value> {
    let r = get(format!("{admin}/api/routes/api/findings")).await;
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()["findings"].as_array().cloned().unwrap_or_default()
}

async fn comparisons(admin: &str, query: &str) -> Vec<Value> {
    let url = format!("{admin}/api/comparisons?limit=500{query}");
    let items = get(url).await.json()["items"].as_array().cloned();
    items.unwrap_or_default()
}

/// The route's candidates as the API lists them: (service, percent).
async fn candidates(admin: &str) -> Vec<(String, f64)> {
    let route = get(format!("{admin}/api/routes/api")).await.json();
    let list = route["candidates"].as_array().cloned().unwrap_or_default();
    list.iter()
        .map(|c| {
            let service = c["service"].as_str().unwrap_or_default().to_string();
            (service, c["percent"].as_f64().unwrap_or(100.0))
        })
        .collect()
}

async fn traffic(proxy: &str, rounds: usize) {
    for _ in 0..rounds {
        assert_eq!(get(format!("http://{proxy}/users/1")).await.status, 200);
        assert_eq!(get(format!("http://{proxy}/orders/1")).await.status, 200);
    }
}

#[tokio::test]
async fn two_candidates_each_show_their_own_findings() {
    let Stack {
        proxy,
        admin,
        cfg: _,
        child,
        _apps,
    } = Stack::start("findings").await;
    traffic(&proxy, 20).await;
    assert_eventually!(
        comparisons(&admin, "").await.len() == 80,
        timeout = Duration::from_secs(10)
    );

    // Every request was compared once per candidate, each under its own name.
    let all = comparisons(&admin, "").await;
    for c in ["v2", "v3"] {
        let n = all.iter().filter(|x| x["candidate"] == c).count();
        assert_eq!(n, 40, "{c}'s comparisons");
    }

    // One finding each, and each candidate's is its own.
    let found = findings(&admin).await;
    assert_eq!(found.len(), 2, "{found:#?}");
    let of = |c: &str| -> Value {
        let f = found.iter().find(|f| f["candidate"] == c);
        f.unwrap_or_else(|| panic!("no finding of {c}: {found:#?}"))
            .clone()
    };
    let (v2, v3) = (of("v2"), of("v3"));
    assert_eq!(v2["fields"], json!(["/balance"]), "{v2}");
    assert_eq!(v2["endpoint"], "GET /users/{id}");
    assert_eq!(v3["fields"], json!(["/currency"]), "{v3}");
    assert_eq!(v3["endpoint"], "GET /orders/{id}");
    for f in [&v2, &v3] {
        assert_eq!(
            (f["severity"].as_str(), f["rate"].as_f64()),
            (Some("high"), Some(1.0))
        );
    }

    // One candidate's findings on their own.
    let url = format!("{admin}/api/routes/api/findings?candidate=v2");
    let only = get(url).await.json()["findings"].clone();
    assert_eq!(only.as_array().map(Vec::len), Some(1), "{only}");
    assert_eq!(only[0]["id"], v2["id"]);

    // A finding's comparisons are its candidate's only.
    let id = v3["id"].as_str().unwrap();
    let listed = comparisons(&admin, &format!("&finding={id}")).await;
    assert_eq!(listed.len(), 20);
    assert!(listed.iter().all(|c| c["candidate"] == "v3"), "{listed:#?}");

    // The route page shows the candidates side by side, each with its finding.
    let page = get(format!("{admin}/ui/routes/api")).await;
    assert_eq!(page.status, 200);
    let html = page.text();
    let side = html
        .find("class=\"candidates\"")
        .expect("a candidates section");
    let section = &html[side..];
    for needle in ["v2", "v3", "/balance", "/currency"] {
        assert!(section.contains(needle), "{needle} in {section}");
    }
    stop_umbra(child).await;
}

#[tokio::test]
async fn candidates_come_and_go_one_at_a_time() {
    let Stack {
        proxy,
        admin,
        cfg,
        child,
        _apps,
    } = Stack::start("api").await;
    let shadow = format!("{admin}/api/routes/api/shadow");
    let both = vec![("v2".to_string(), 100.0), ("v3".to_string(), 100.0)];
    assert_eq!(candidates(&admin).await, both);

    // One candidate stops; the other goes on, and only it is compared.
    let r = request("DELETE", format!("{shadow}?service=v3"), None).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(candidates(&admin).await, [("v2".to_string(), 100.0)]);
    let route = get(format!("{admin}/api/routes/api")).await.json();
    assert_eq!(route["shadow"]["service"], "v2", "one candidate is a table");
    traffic(&proxy, 5).await;
    assert_eventually!(
        comparisons(&admin, "").await.len() == 10,
        timeout = Duration::from_secs(10)
    );
    assert!(comparisons(&admin, "")
        .await
        .iter()
        .all(|c| c["candidate"] == "v2"));

    // Unknown candidates and parameters are named.
    let r = request("DELETE", format!("{shadow}?service=ghost"), None).await;
    assert_eq!(r.status, 404, "{}", r.text());
    assert!(
        r.text().contains("`ghost` is not a shadow candidate"),
        "{}",
        r.text()
    );
    let r = request("DELETE", format!("{shadow}?servce=v2"), None).await;
    assert_eq!(r.status, 422, "{}", r.text());
    assert!(r.text().contains("servce"), "{}", r.text());

    // POST adds one beside the others (and, on a second call, changes its settings).
    for percent in [10, 40] {
        let one = json!({"service": "v3", "percent": percent});
        let r = post_json(&shadow, &one).await;
        assert_eq!(r.status, 200, "{}", r.text());
    }
    let added = vec![("v2".to_string(), 100.0), ("v3".to_string(), 40.0)];
    assert_eq!(candidates(&admin).await, added);
    let r = post_json(&shadow, &json!({"service": "ghost"})).await;
    assert_eq!(r.status, 422, "{}", r.text());
    assert!(r.text().contains("unknown service `ghost`"), "{}", r.text());

    // PUT sets the list; bad entries are named by index.
    let list = json!([{"service": "v2"}, {"service": "v3", "percent": 20}]);
    let r = request("PUT", shadow.clone(), Some(list)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let set = vec![("v2".to_string(), 100.0), ("v3".to_string(), 20.0)];
    assert_eq!(candidates(&admin).await, set);
    let bad = json!([{"service": "v2"}, {"service": "v3", "percent": 120}]);
    let r = request("PUT", shadow.clone(), Some(bad)).await;
    assert_eq!(r.status, 422, "{}", r.text());
    assert!(r.text().contains("shadow[1].percent"), "{}", r.text());
    let r = request("PUT", shadow.clone(), Some(json!([]))).await;
    assert_eq!(r.status, 422, "{}", r.text());
    assert_eq!(
        candidates(&admin).await,
        set,
        "a refused change keeps the list"
    );

    // A promote must be told which of two candidates.
    let r = post_json(format!("{admin}/api/routes/api/promote"), &json!({})).await;
    assert_eq!(r.status, 409, "{}", r.text());
    assert!(r.text().contains("2 candidates"), "{}", r.text());

    // The CLI stops one candidate, and adds one beside the others.
    let cli = |args: &[&str]| {
        let out = support::umbra()
            .args(["shadow", "api"])
            .args(args)
            .args(["--admin", &admin])
            .output()
            .unwrap();
        support::succeeded(&out)
    };
    assert!(cli(&["v3", "--stop"]).contains("no longer shadowing to v3"));
    assert_eq!(candidates(&admin).await, [("v2".to_string(), 100.0)]);
    cli(&["v3", "--percent", "30", "--add"]);
    cli(&["v2", "--percent", "50", "--add"]);
    let set = vec![("v2".to_string(), 50.0), ("v3".to_string(), 30.0)];
    assert_eq!(candidates(&admin).await, set);

    // The list survives a restart (it is a runtime change in the store).
    stop_umbra(child).await;
    let child = start_umbra(&cfg, &admin).await;
    assert_eq!(candidates(&admin).await, set);
    stop_umbra(child).await;
}

#[tokio::test]
async fn a_rollout_moves_only_its_own_candidate() {
    let Stack {
        proxy,
        admin,
        cfg: _,
        child,
        _apps,
    } = Stack::start("rollout").await;
    let rollout = format!("{admin}/api/routes/api/rollout");
    let start = json!({"service": "v3", "steps": ["shadow 10m", "10% 10m", "100%"]});
    let r = post_json(&rollout, &start).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let names = |list: Vec<(String, f64)>| list.into_iter().map(|c| c.0).collect::<Vec<_>>();
    assert_eq!(names(candidates(&admin).await), ["v2", "v3"]);

    // The canary step takes v3 off the shadow list; v2 keeps shadowing.
    let r = post_json(format!("{rollout}/advance"), &json!({})).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eventually!(
        names(candidates(&admin).await) == ["v2"],
        timeout = Duration::from_secs(5)
    );
    let route = get(format!("{admin}/api/routes/api")).await.json();
    assert_eq!(route["canary"]["service"], "v3");
    assert_eq!(route["canary"]["weight"], 10.0);

    // Promotion makes v3 the service; v2 now shadows against it.
    let r = post_json(format!("{rollout}/advance"), &json!({})).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eventually!(
        get(format!("{admin}/api/routes/api")).await.json()["service"] == "v3",
        timeout = Duration::from_secs(5)
    );
    let route = get(format!("{admin}/api/routes/api")).await.json();
    assert_eq!(route["canary"], Value::Null);
    assert_eq!(names(candidates(&admin).await), ["v2"]);

    // A second rollout, of v2, aborted: v2 leaves the list, nothing else changes.
    let again = json!({"service": "v2", "steps": ["shadow 10m", "100%"]});
    let r = post_json(&rollout, &again).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let r = post_json(format!("{rollout}/abort"), &json!({})).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eventually!(
        candidates(&admin).await.is_empty(),
        timeout = Duration::from_secs(5)
    );
    let route = get(format!("{admin}/api/routes/api")).await.json();
    assert_eq!(route["service"], "v3");
    traffic(&proxy, 2).await;
    stop_umbra(child).await;
}
