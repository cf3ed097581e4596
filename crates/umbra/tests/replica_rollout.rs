//! A rollout across two real `umbra run` processes on one private PostgreSQL (the store tests'
//! throwaway cluster): exactly one replica runs its controller (the other stands by and says
//! so), both apply the controller's weights, and after a kill -9 of the controller's process the
//! other takes the rollout over at the same step and window and carries it to promotion. Prints
//! how long the weight took to show on both; waits are bounded polls, never duration asserts.

#[allow(dead_code)] // the cluster's stop/start are for other tests
#[path = "../../umbra-store/tests/support/pg.rs"]
mod pg;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use serde_json::{json, Value};
use umbra_testkit::{assert_eventually, free_addr, get, Fixture, Recorded, Reply};

/// Long enough for any wait of this test on a loaded machine.
const PATIENCE: Duration = Duration::from_secs(90);

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
                 [[routes]]\nname = \"api\"\nrule = \"PathPrefix(`/`)\"\nservice = \"v1\"\n\
                 compare = {{ ignore_headers = [\"x-fixture\"] }}\n"
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
        let log = std::fs::File::create(&self.log).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_umbra"))
            .args(["run", "-c"])
            .arg(&self.cfg)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
        let status = format!("{}/api/status", self.admin);
        assert_eventually!(
            umbra_testkit::try_get(&status)
                .await
                .is_ok_and(|r| r.status == 200 && r.json()["store_feed"]["state"] == "listening"),
            timeout = Duration::from_secs(30)
        );
    }

    /// SIGKILL: no clean shutdown, the process's database sessions just end.
    fn kill9(&mut self) {
        let mut child = self.child.take().expect("running");
        child.kill().unwrap();
        child.wait().unwrap();
    }

    async fn route(&self) -> Value {
        get(format!("{}/api/routes/api", self.admin)).await.json()
    }

    async fn rollout(&self) -> Value {
        get(format!("{}/api/routes/api/rollout", self.admin))
            .await
            .json()
    }

    async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        let req = http::Request::post(format!("{}{path}", self.admin))
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body.to_string())))
            .unwrap();
        let r = umbra_testkit::send(req).await;
        (r.status.as_u16(), r.json())
    }

    /// Polls `what` (this replica's route or rollout) until `cond` holds, 2 ms apart, up to
    /// [`PATIENCE`]: the value and the time it took, or a panic naming what never showed.
    async fn until(&self, what: &str, rollout: bool, cond: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let v = if rollout {
                self.rollout().await
            } else {
                self.route().await
            };
            if cond(&v) {
                return v;
            }
            assert!(
                Instant::now() < deadline,
                "{}: never saw {what}: {v:#}; log in {}",
                self.name,
                self.log.display()
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
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

/// A fixture answering every path with `{"id": 1, "price": 1}` after about 3 ms (a jitter of
/// up to 40 %), as the single-process rollout tests' clean candidate.
async fn upstream(name: &str) -> Fixture {
    let n = AtomicU64::new(0);
    Fixture::builder()
        .name(name)
        .prefix("/", move |_: &Recorded| {
            let n = n.fetch_add(1, Ordering::Relaxed);
            let jitter = 1.0 + ((n * 7919) % 100) as f64 / 250.0;
            let mut r = Reply::json(200, json!({"id": 1, "price": 1}));
            r.delay = Duration::from_secs_f64(3.0 * jitter / 1000.0);
            r
        })
        .start()
        .await
}

/// Client traffic through `proxy` until the returned flag is set.
fn traffic(proxy: SocketAddr) -> Arc<AtomicBool> {
    let stop = Arc::new(AtomicBool::new(false));
    for _ in 0..4 {
        let (stop, url) = (stop.clone(), format!("http://{proxy}/items"));
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let _ = umbra_testkit::try_get(&url).await;
            }
        });
    }
    stop
}

fn weight(route: &Value) -> Option<f64> {
    route["canary"]["weight"].as_f64()
}

/// Advisory locks granted in the cluster (the rollout leases).
async fn advisory_locks(url: &str) -> i64 {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    client
        .query_one(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted",
            &[],
        )
        .await
        .unwrap()
        .get(0)
}

/// Which replica runs the controller: a manual pause is taken by exactly one (then resumed);
/// the other stands by and answers 409 saying another replica runs it. The leader's index.
async fn leader(replicas: &[&Replica; 2]) -> usize {
    let mut led = Vec::new();
    for (i, r) in replicas.iter().enumerate() {
        let (status, body) = r.post("/api/routes/api/rollout/pause", json!({})).await;
        match status {
            200 => {
                assert_eq!(body["status"], "paused", "{}: {body}", r.name);
                let (status, body) = r.post("/api/routes/api/rollout/resume", json!({})).await;
                assert_eq!(
                    (status, &body["status"]),
                    (200, &json!("running")),
                    "{body}"
                );
                led.push(i);
            }
            409 => assert!(
                body["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("run by another umbra replica")),
                "{} is neither the controller nor standing by: {body}",
                r.name
            ),
            s => panic!("{}: pause answered {s}: {body}", r.name),
        }
    }
    assert_eq!(led.len(), 1, "exactly one controller, not {led:?}");
    led[0]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_replica_runs_a_rollout_and_the_other_takes_over_when_it_dies() {
    let Some(bin) = pg::bin_dir() else {
        pg::skip_or_panic("the two-replica rollout test");
        return;
    };
    let cluster = pg::PgCluster::start_new(bin);
    let (v1, v2) = (upstream("v1").await, upstream("v2").await);
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

    // Started through A with no traffic yet: the first canary step waits for its samples.
    let t = Instant::now();
    let (status, body) = a
        .post(
            "/api/routes/api/rollout",
            json!({"service": "v2", "steps": ["10% 1s", "50% 1s", "100%"],
                   "min_requests": 30, "interval": "200ms"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    for r in [&a, &b] {
        r.until("the 10 % canary", false, |r| weight(r) == Some(10.0))
            .await;
    }
    println!(
        "rollout started through A: both replicas show the 10 % canary after {:?}",
        t.elapsed()
    );

    // Exactly one controller; the stand-by shows the stored state.
    let t = Instant::now();
    b.until("the rollout standing by", true, |r| {
        r["status"] == "running"
    })
    .await;
    let mut which = None;
    while which.is_none() {
        let mut standing = 0;
        for r in [&a, &b] {
            let (status, body) = r.post("/api/routes/api/rollout/resume", json!({})).await;
            // Resuming a running rollout is refused either way: by the controller as "cannot
            // Resume a rollout that is running", by a stand-by as run by another replica.
            assert_eq!(status, 409, "{}: {body}", r.name);
            standing += usize::from(
                body["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("run by another umbra replica")),
            );
        }
        if standing == 1 {
            which = Some(leader(&[&a, &b]).await);
        } else {
            assert!(
                t.elapsed() < PATIENCE,
                "{standing} replicas say another runs the rollout; logs in {}",
                dir.path().display()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let lead = which.unwrap();
    println!(
        "controller: replica {}, the other standing by after {:?}",
        ["a", "b"][lead],
        t.elapsed()
    );
    assert_eq!(advisory_locks(&cluster.url()).await, 1, "one lease held");
    let (leader, survivor) = if lead == 0 {
        (&mut a, &mut b)
    } else {
        (&mut b, &mut a)
    };
    let before = survivor
        .until("the controller waiting for samples", true, |r| {
            r["window_start_ms"].is_i64() && r["last"]["outcome"] == "wait"
        })
        .await;
    assert_eq!(before["step"], 0, "{before:#}");

    // The controller's process dies; with traffic through the survivor it takes over at the
    // same step and window, advances and promotes.
    leader.kill9();
    let t = Instant::now();
    let stop = traffic(survivor.proxy);
    let next = survivor
        .until("the next step", true, |r| r["step"].as_u64() >= Some(1))
        .await;
    println!(
        "after the kill -9: the survivor advanced after {:?}",
        t.elapsed()
    );
    let advance = &next["history"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["action"] == "advance")
        .cloned()
        .unwrap_or_default();
    assert_eq!(advance["actor"], "rollout", "{next:#}");
    let r = survivor
        .until("the rollout end", true, |r| {
            !matches!(r["status"].as_str(), Some("running") | Some("paused"))
        })
        .await;
    stop.store(true, Ordering::Relaxed);
    println!(
        "after the kill -9: the survivor promoted after {:?}",
        t.elapsed()
    );
    assert_eq!(r["status"], "promoted", "{r:#}");
    assert_eq!(r["started_ms"], before["started_ms"], "the same rollout");
    let window_kept = r["history"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["action"] == "step")
        .count();
    assert_eq!(
        window_kept, 3,
        "one step entry per step, none restarted: {r:#}"
    );
    let route = survivor.route().await;
    assert_eq!(route["service"], "v2", "{route:#}");
    assert!(route["canary"].is_null(), "{route:#}");
    let served = get(format!("http://{}/items", survivor.proxy)).await;
    assert_eq!(served.headers.get("x-fixture").unwrap(), "v2");
    assert_eq!(advisory_locks(&cluster.url()).await, 0, "the lease let go");
}
