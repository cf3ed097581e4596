//! Two real `umbra run` processes on one private PostgreSQL (the store tests' throwaway
//! cluster): a change made through either replica's API reaches the other, requests through
//! the other then follow it, a dropped listening session heals, and a restarted replica picks
//! up what changed while it was down. Prints the propagation time (bench/replicas.sh runs more
//! rounds). Waits are bounded polls, never duration asserts.

#[path = "../../umbra-store/tests/support/pg.rs"]
mod pg;
mod support;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use serde_json::{json, Value};
use umbra_testkit::{assert_eventually, free_addr, get, Fixture, TestResponse};

use support::{sigterm, spawn_run, wait_for, Log};

struct Replica {
    name: &'static str,
    cfg: PathBuf,
    log: PathBuf,
    proxy: SocketAddr,
    admin: String,
    child: Option<Child>,
}

impl Replica {
    fn new(dir: &Path, name: &'static str, store: &str, v1: &str, v2: &str) -> Replica {
        let (proxy, admin) = (free_addr(), free_addr());
        let cfg = dir.join(format!("{name}.toml"));
        std::fs::write(
            &cfg,
            format!(
                "[proxy]\nlisten = \"{proxy}\"\nworkers = 1\n[admin]\nlisten = \"{admin}\"\n\
                 [store]\nurl = \"{store}\"\n[log]\naccess = false\n\
                 [services.v1]\nservers = [\"{v1}\"]\n[services.v2]\nservers = [\"{v2}\"]\n\
                 [[routes]]\nname = \"api\"\nrule = \"PathPrefix(`/`)\"\nservice = \"v1\"\n"
            ),
        )
        .unwrap();
        Replica {
            name,
            log: dir.join(format!("{name}.log")),
            cfg,
            proxy,
            admin: format!("http://{admin}"),
            child: None,
        }
    }

    /// Starts `umbra run` and waits until it is ready and its change feed listens.
    async fn start(&mut self) {
        self.child = Some(spawn_run(&self.cfg, Log::File(&self.log)));
        let status = format!("{}/api/status", self.admin);
        let listening =
            |r: &TestResponse| r.status == 200 && r.json()["store_feed"]["state"] == "listening";
        wait_for(&status, Duration::from_secs(30), listening).await;
    }

    /// SIGTERM and a clean exit.
    async fn stop(&mut self) {
        let status = sigterm(self.child.take().expect("running")).await;
        assert!(status.success(), "{} exited with {status:?}", self.name);
    }

    async fn route(&self) -> Value {
        get(format!("{}/api/routes/api", self.admin)).await.json()
    }

    async fn status(&self) -> Value {
        get(format!("{}/api/status", self.admin)).await.json()
    }

    async fn put(&self, path: &str, body: Value) -> TestResponse {
        let req = http::Request::put(format!("{}{path}", self.admin))
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body.to_string())))
            .unwrap();
        umbra_testkit::send(req).await
    }

    async fn delete(&self, path: &str) -> TestResponse {
        let req = http::Request::delete(format!("{}{path}", self.admin))
            .header("content-type", "application/json")
            .body(Full::new(Bytes::new()))
            .unwrap();
        umbra_testkit::send(req).await
    }

    /// Polls this replica's route until `cond` holds (up to `tries` polls 2 ms apart); the
    /// time it took, or a panic naming what never showed.
    async fn until(&self, what: &str, tries: u32, cond: impl Fn(&Value) -> bool) -> Duration {
        let t = Instant::now();
        let mut last = Value::Null;
        for _ in 0..tries {
            last = self.route().await;
            if cond(&last) {
                return t.elapsed();
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        panic!(
            "{}: never saw {what}; route is {last}; log in {}",
            self.name,
            self.log.display()
        );
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn weight(route: &Value) -> Option<f64> {
    route["canary"]["weight"].as_f64()
}

/// Sends `n` requests through `proxy`; how many v2 answered.
async fn v2_share(proxy: SocketAddr, n: usize) -> usize {
    let mut v2 = 0;
    for _ in 0..n {
        let r = get(format!("http://{proxy}/who")).await;
        assert_eq!(r.status, 200);
        v2 += usize::from(r.json()["v"] == 2);
    }
    v2
}

/// Changes the weight through `from` `rounds` times and times each until `to` shows it.
async fn propagation(from: &Replica, to: &Replica, rounds: usize) -> Vec<Duration> {
    let mut times = Vec::with_capacity(rounds);
    for i in 0..rounds {
        let w = 10.0 + (i % 8) as f64 * 10.0; // never the weight in force
        let t = Instant::now();
        let r = from
            .put(
                "/api/routes/api/canary",
                json!({"service": "v2", "weight": w, "sticky": "none"}),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.text());
        to.until(&format!("weight {w}"), 5_000, |r| weight(r) == Some(w))
            .await;
        times.push(t.elapsed());
    }
    times.sort();
    times
}

fn rounds() -> usize {
    std::env::var("UMBRA_REPLICA_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_through_one_replica_reach_the_other() {
    let Some(bin) = pg::bin_dir() else {
        pg::skip_or_panic("the two-replica test");
        return;
    };
    let cluster = pg::PgCluster::start_new(bin);
    let v1 = Fixture::builder()
        .name("v1")
        .json("/who", json!({"v": 1}))
        .start()
        .await;
    let v2 = Fixture::builder()
        .name("v2")
        .json("/who", json!({"v": 2}))
        .json("/only/who", json!({"v": 2}))
        .start()
        .await;
    let dir = tempfile::tempdir().unwrap();
    let mk = |name| Replica::new(dir.path(), name, &cluster.url(), &v1.url(), &v2.url());
    let (mut a, mut b) = (mk("a"), mk("b"));
    a.start().await;
    b.start().await;
    let status = format!("{}/api/status", a.admin);
    assert_eventually!(
        get(&status).await.json()["store_feed"]["replicas"] == 2,
        timeout = Duration::from_secs(30)
    );

    // A canary set through A shows on B, and B's traffic follows it.
    let r = a
        .put(
            "/api/routes/api/canary",
            json!({"service": "v2", "weight": 50, "sticky": "none"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    b.until("the canary", 5_000, |r| weight(r) == Some(50.0))
        .await;
    let v2_hits = v2_share(b.proxy, 200).await;
    assert!(
        (60..=140).contains(&v2_hits),
        "50 % of 200 through B went to v2: {v2_hits}"
    );

    // A shadow started through B shows on A; removing the canary through B clears it on A.
    let r = b
        .put(
            "/api/routes/api/shadow",
            json!({"service": "v2", "percent": 100}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    a.until("the shadow", 5_000, |r| r["shadow"]["service"] == "v2")
        .await;
    assert_eq!(b.delete("/api/routes/api/canary").await.status, 200);
    a.until("no canary", 5_000, |r| r["canary"].is_null()).await;
    assert_eq!(
        v2_share(a.proxy, 20).await,
        0,
        "all of A's traffic back on v1"
    );

    // A route made through A's API serves on B; deleted through B, it is gone from A.
    let r = a
        .put(
            "/api/routes/only",
            json!({"rule": "PathPrefix(`/only`)", "service": "v2"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let on_b = format!("{}/api/routes/only", b.admin);
    assert_eventually!(
        get(&on_b).await.status == 200,
        timeout = Duration::from_secs(10)
    );
    let r = get(format!("http://{}/only/who", b.proxy)).await;
    assert_eq!(r.json()["v"], 2, "{} {}", r.status, r.text());
    assert_eq!(b.delete("/api/routes/only").await.status, 200);
    let on_a = format!("{}/api/routes/only", a.admin);
    assert_eventually!(
        get(&on_a).await.status == 404,
        timeout = Duration::from_secs(10)
    );

    // A service made through A's API exists on B, and a route B makes on it serves; the
    // service deleted through B is gone from A.
    let r = a
        .put("/api/services/v3", json!({"servers": [v2.url()]}))
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let has_v3 = |services: &Value| {
        services["services"]
            .as_array()
            .is_some_and(|l| l.iter().any(|s| s["name"] == "v3"))
    };
    let services_b = format!("{}/api/services", b.admin);
    assert_eventually!(
        has_v3(&get(&services_b).await.json()),
        timeout = Duration::from_secs(10)
    );
    let r = b
        .put(
            "/api/routes/only",
            json!({"rule": "PathPrefix(`/only`)", "service": "v3"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let r = get(format!("http://{}/only/who", b.proxy)).await;
    assert_eq!(r.json()["v"], 2, "{} {}", r.status, r.text());
    assert_eq!(b.delete("/api/routes/only").await.status, 200);
    let r = b.delete("/api/services/v3").await;
    assert_eq!(r.status, 200, "{}", r.text());
    let services_a = format!("{}/api/services", a.admin);
    assert_eventually!(
        !has_v3(&get(&services_a).await.json()),
        timeout = Duration::from_secs(10)
    );

    // The listening session dies (as in a database failover): B reconnects and still hears.
    let pid = b.status().await["store_feed"]["backend_pid"]
        .as_i64()
        .expect("feed pid");
    terminate(&cluster.url(), pid).await;
    let r = a
        .put(
            "/api/routes/api/canary",
            json!({"service": "v2", "weight": 100, "sticky": "none"}),
        )
        .await;
    assert_eq!(r.status, 200);
    b.until("the canary after a reconnect", 10_000, |r| {
        weight(r) == Some(100.0)
    })
    .await;
    assert_eq!(v2_share(b.proxy, 20).await, 20);
    let feed = b.status().await["store_feed"].clone();
    assert!(feed["reconnects"].as_u64() >= Some(1), "{feed}");

    let times = propagation(&a, &b, rounds()).await;
    let pct = |q: f64| times[((times.len() - 1) as f64 * q).round() as usize];
    println!(
        "replica propagation (PUT canary on A until B's API shows it), {} rounds: \
         min {:?}, median {:?}, p90 {:?}, max {:?}",
        times.len(),
        times[0],
        pct(0.5),
        pct(0.9),
        times[times.len() - 1]
    );

    // The database restarts: both feeds say they are reconnecting, then listen again, and a
    // change made after the restart still reaches B.
    cluster.stop();
    for r in [&a, &b] {
        let status = format!("{}/api/status", r.admin);
        assert_eventually!(
            get(&status).await.json()["store_feed"]["state"] == "reconnecting",
            timeout = Duration::from_secs(30)
        );
        let health = get(format!("{}/health", r.admin)).await.json();
        assert_eq!(health["status"], "degraded", "{health}");
        assert!(
            health["checks"]["store_feed"]["last_error"].is_string(),
            "{health}"
        );
    }
    cluster.start();
    for r in [&a, &b] {
        let status = format!("{}/api/status", r.admin);
        assert_eventually!(
            get(&status).await.json()["store_feed"]["state"] == "listening",
            timeout = Duration::from_secs(30)
        );
    }
    let r = a
        .put(
            "/api/routes/api/canary",
            json!({"service": "v2", "weight": 42}),
        )
        .await;
    assert_eq!(r.json()["persisted"], true, "{}", r.text());
    b.until("the canary after a database restart", 10_000, |r| {
        weight(r) == Some(42.0)
    })
    .await;

    // B restarts and picks up what changed while it was down.
    b.stop().await;
    let r = a
        .put(
            "/api/routes/api/canary",
            json!({"service": "v2", "weight": 5}),
        )
        .await;
    assert_eq!(r.status, 200);
    b.start().await;
    assert_eq!(weight(&b.route().await), Some(5.0));
    assert_eq!(b.route().await["shadow"]["service"], "v2");

    // Neither replica loops on its own changes: the announcements heard stay put when idle.
    let quiet = |s: Value| {
        (
            s["store_feed"]["notifications"].clone(),
            s["generation"].clone(),
        )
    };
    let before = (quiet(a.status().await), quiet(b.status().await));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(before, (quiet(a.status().await), quiet(b.status().await)));
    a.stop().await;
    b.stop().await;
}

/// Ends a PostgreSQL backend, as a failover or a network cut would.
async fn terminate(url: &str, pid: i64) {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    let pid = i32::try_from(pid).unwrap();
    let row = client
        .query_one("SELECT pg_terminate_backend($1)", &[&pid])
        .await
        .unwrap();
    assert!(row.get::<_, bool>(0));
}
