//! Rollouts end to end: the real `umbra` binary, fixture upstreams on ephemeral ports, a real
//! SQLite store, client traffic through the proxy; the controller decides by itself.

mod support;

use std::process::Child;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use serde_json::{json, Value};
use umbra_testkit::{assert_eventually, free_addr, Fixture, Recorded, Reply};

use support::{start_umbra, succeeded, tempdir, umbra};

/// Long enough for any rollout of these tests to decide on a loaded machine.
const DECIDE: Duration = Duration::from_secs(90);

struct Stack {
    dir: std::path::PathBuf,
    cfg: std::path::PathBuf,
    admin: String,
    proxy: String,
    child: Option<Child>,
    _fixtures: Vec<Fixture>,
}

/// A fixture answering every path with `reply(n)` for its n-th request.
async fn upstream(name: &str, reply: impl Fn(u64) -> Reply + Send + Sync + 'static) -> Fixture {
    let n = AtomicU64::new(0);
    Fixture::builder()
        .name(name)
        .prefix("/", move |_: &Recorded| {
            reply(n.fetch_add(1, Ordering::Relaxed))
        })
        .start()
        .await
}

/// `{"id": 1, "price": price}` after `ms` (+ a jitter of up to 40 %).
fn body(price: u64, ms: f64) -> impl Fn(u64) -> Reply + Send + Sync + 'static {
    move |n| {
        let jitter = 1.0 + ((n * 7919) % 100) as f64 / 250.0;
        let mut r = Reply::json(200, json!({"id": 1, "price": price}));
        r.delay = Duration::from_secs_f64(ms * jitter / 1000.0);
        r
    }
}

impl Stack {
    /// umbra with services v1 (primary), v2 (candidate) and v1b, route `api` on v1 (the
    /// fixtures' own `x-fixture` name header ignored), plus `route_extra` TOML lines.
    async fn start(name: &str, v1: Fixture, v2: Fixture, route_extra: &str) -> Stack {
        let v1b = upstream("v1b", body(1, 2.0)).await;
        Stack::start_with(name, v1, v2, v1b, route_extra).await
    }

    /// As [`Stack::start`], with the secondary copy of production `v1b` given.
    async fn start_with(
        name: &str,
        v1: Fixture,
        v2: Fixture,
        v1b: Fixture,
        route_extra: &str,
    ) -> Stack {
        let dir = tempdir("rollout", name);
        let cfg = dir.join("umbra.toml");
        let text = format!(
            "[proxy]\nlisten = \"{}\"\n[admin]\nlisten = \"{}\"\n[store]\nurl = \"sqlite://{}\"\n\
             [log]\naccess = false\nlevel = \"warn\"\n\
             [services.v1]\nservers = [\"{}\"]\n[services.v2]\nservers = [\"{}\"]\n\
             [services.v1b]\nservers = [\"{}\"]\n\
             [[routes]]\nname = \"api\"\nrule = \"PathPrefix(`/`)\"\nservice = \"v1\"\n\
             compare = {{ ignore_headers = [\"x-fixture\"] }}\n{route_extra}\n",
            free_addr(),
            free_addr(),
            dir.join("umbra.db").display(),
            v1.url(),
            v2.url(),
            v1b.url()
        );
        std::fs::write(&cfg, &text).unwrap();
        let listen = |key: &str| {
            let line = text.lines().skip_while(|l| *l != key).nth(1).unwrap();
            format!("http://{}", line.split('"').nth(1).unwrap())
        };
        let mut s = Stack {
            admin: listen("[admin]"),
            proxy: listen("[proxy]"),
            dir,
            cfg,
            child: None,
            _fixtures: vec![v1, v2, v1b],
        };
        s.run().await;
        s
    }

    async fn run(&mut self) {
        self.child = Some(start_umbra(&self.cfg, &self.admin).await);
    }

    /// `umbra rollout ARGS --admin URL`; its stdout (it must succeed).
    fn cli(&self, args: &[&str]) -> String {
        let out = umbra()
            .arg("rollout")
            .args(args)
            .args(["--admin", &self.admin])
            .output()
            .unwrap();
        succeeded(&out)
    }

    fn kill9(&mut self) {
        let mut child = self.child.take().unwrap();
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
    }

    async fn rollout(&self) -> Value {
        umbra_testkit::get(format!("{}/api/routes/api/rollout", self.admin))
            .await
            .json()
    }

    /// Polls the rollout until `cond` holds.
    async fn until(&self, what: &str, cond: impl Fn(&Value) -> bool) -> Value {
        let deadline = tokio::time::Instant::now() + DECIDE;
        loop {
            let r = self.rollout().await;
            if cond(&r) {
                return r;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "rollout never {what}: {r:#}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        let req = http::Request::post(format!("{}{path}", self.admin))
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body.to_string())))
            .unwrap();
        let r = umbra_testkit::send(req).await;
        (r.status.as_u16(), r.json())
    }

    async fn route(&self) -> Value {
        umbra_testkit::get(format!("{}/api/routes/api", self.admin))
            .await
            .json()
    }

    async fn event_kinds(&self) -> Vec<String> {
        let ev = umbra_testkit::get(format!("{}/api/events?limit=500", self.admin))
            .await
            .json();
        let mut kinds: Vec<String> = ev["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| format!("{} {}", e["kind"].as_str().unwrap(), e["detail"]["step"]))
            .collect();
        kinds.reverse();
        kinds
    }

    /// Client traffic until the rollout has ended; the rollout then.
    async fn ended_under_traffic(&self) -> Value {
        let stop = self.traffic();
        let r = self.until("ended", ended).await;
        stop.store(true, Ordering::Relaxed);
        r
    }

    /// Starts a rollout through the API (it must be accepted), then `ended_under_traffic`.
    async fn roll(&self, body: Value) -> Value {
        let (status, _) = self.post("/api/routes/api/rollout", body).await;
        assert_eq!(status, 200);
        self.ended_under_traffic().await
    }

    /// Client traffic through umbra until the returned flag is set.
    fn traffic(&self) -> Arc<AtomicBool> {
        let stop = Arc::new(AtomicBool::new(false));
        for _ in 0..4 {
            let (stop, url) = (stop.clone(), format!("{}/items", self.proxy));
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let _ = umbra_testkit::try_get(&url).await;
                }
            });
        }
        stop
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn reason(r: &Value) -> (&str, f64, String) {
    (
        r["reason"]["gate"].as_str().unwrap_or(""),
        r["reason"]["value"].as_f64().unwrap_or(-1.0),
        r["reason"]["detail"].as_str().unwrap_or("").to_string(),
    )
}

fn ended(r: &Value) -> bool {
    !matches!(r["status"].as_str(), Some("running") | Some("paused"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clean_candidate_reaches_100_percent_from_the_config() {
    let rollout = r#"rollout = { service = "v2", steps = ["shadow 1s", "10% 1s", "50% 1s", "100%"], min_requests = 20, interval = "200ms" }"#;
    let v1 = upstream("v1", body(1, 3.0)).await;
    let v2 = upstream("v2", body(1, 3.0)).await;
    let s = Stack::start("clean", v1, v2, rollout).await;
    let r = s.ended_under_traffic().await;
    assert_eq!(r["status"], "promoted", "{r:#}");
    assert_eq!(r["weight"], 100.0);
    let route = s.route().await;
    assert_eq!(route["service"], "v2", "{route:#}");
    assert!(
        route["canary"].is_null() && route["shadow"].is_null(),
        "{route:#}"
    );
    let actions: Vec<&str> = r["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions.iter().filter(|a| **a == "advance").count(),
        3,
        "{actions:?}"
    );
    assert_eq!(actions.last(), Some(&"promote"));
    let want = [
        "rollout.start null",
        "rollout.step 0",
        "rollout.step 1",
        "rollout.step 2",
        "rollout.step 3",
        "rollout.promote 3",
    ];
    assert_eventually!(
        {
            let kinds = s.event_kinds().await;
            want.iter().all(|w| kinds.iter().any(|k| k == w))
        },
        timeout = Duration::from_secs(10)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_percent_5xx_is_rolled_back_at_the_first_canary_step_by_the_error_gate() {
    let v1 = upstream("v1", body(1, 2.0)).await;
    let v2 = upstream("v2", |n| {
        if n % 20 == 7 {
            Reply::status(500)
        } else {
            body(1, 2.0)(n)
        }
    })
    .await;
    let s = Stack::start("errors", v1, v2, "").await;
    let r = s
        .roll(
            json!({"service": "v2", "steps": ["10% 10m", "100%"], "min_requests": 60,
                   "interval": "200ms", "failure_limit": 2}),
        )
        .await;
    assert_eq!(r["status"], "rolled_back", "{r:#}");
    assert_eq!(r["step"], 0);
    let (gate, value, detail) = reason(&r);
    assert_eq!(gate, "error", "{r:#}");
    assert!((0.02..0.12).contains(&value), "{value}: {detail}");
    assert_eq!(r["reason"]["threshold"], 0.01);
    assert!(r["reason"]["samples"].as_u64().unwrap() >= 60, "{r:#}");
    assert!(detail.contains("vs primary 0.0 %"), "{detail}");
    let route = s.route().await;
    assert_eq!(route["service"], "v1");
    assert!(
        route["canary"].is_null(),
        "all traffic back on v1: {route:#}"
    );
    // The route page's timeline shows the decision and its evidence.
    let page = umbra_testkit::get(format!("{}/ui/routes/api", s.admin))
        .await
        .text();
    assert!(
        page.contains("rolled back by the error gate: candidate"),
        "{page}"
    );
    assert!(page.contains("step-failed\"><strong>10% 10m"), "{page}");
}

async fn latency_rollout(name: &str, factor: f64) -> Value {
    let v1 = upstream("v1", body(1, 4.0)).await;
    let v2 = upstream("v2", body(1, 4.0 * factor)).await;
    let s = Stack::start(name, v1, v2, "").await;
    s.roll(
        json!({"service": "v2", "steps": ["20% 3s", "100%"], "min_requests": 60,
               "interval": "200ms"}),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twice_slower_is_rolled_back_by_the_latency_gate() {
    let r = latency_rollout("slow", 2.0).await;
    assert_eq!(r["status"], "rolled_back", "{r:#}");
    let (gate, value, detail) = reason(&r);
    assert_eq!(gate, "latency", "{r:#}");
    assert!(value > 1.25, "{value}: {detail}");
    assert!(detail.contains("Mann–Whitney p"), "{detail}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_percent_slower_is_promoted() {
    let r = latency_rollout("slightly", 1.05).await;
    assert_eq!(r["status"], "promoted", "{r:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_significant_field_change_stops_at_the_shadow_step_naming_the_field() {
    let v1 = upstream("v1", body(1, 2.0)).await;
    let v2 = upstream("v2", body(2, 2.0)).await;
    let s = Stack::start("field", v1, v2, "").await;
    let r = s
        .roll(
            json!({"service": "v2", "steps": ["shadow 10m", "100%"], "min_requests": 30,
                   "interval": "200ms"}),
        )
        .await;
    assert_eq!(r["status"], "rolled_back", "{r:#}");
    assert_eq!(r["step"], 0);
    let (gate, value, detail) = reason(&r);
    assert_eq!(gate, "diff", "{r:#}");
    assert!(value > 0.5, "{value}");
    assert!(detail.contains("`/price`"), "{detail}");
    assert!(
        s.route().await["shadow"].is_null(),
        "shadow off after rollback"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn differences_the_secondary_shows_too_are_noise_and_pass() {
    // Every answer carries its own random token: v2 and the secondary differ from v1 alike.
    let token = |price| {
        move |n: u64| {
            let mut r = Reply::json(
                200,
                json!({"id": 1, "price": price, "token": rand::random::<u64>()}),
            );
            r.delay = Duration::from_millis(2 + n % 3);
            r
        }
    };
    let v1 = upstream("v1", token(1)).await;
    let v2 = upstream("v2", token(1)).await;
    let extra = r#"shadow = { service = "v2", secondary = "v1b", secondary_percent = 100 }
rollout = { service = "v2", steps = ["shadow 1s", "100%"], min_requests = 30, interval = "200ms" }"#;
    let v1b = upstream("v1b", token(1)).await;
    let s = Stack::start_with("noise", v1, v2, v1b, extra).await;
    let r = s.ended_under_traffic().await;
    assert_eq!(r["status"], "promoted", "{r:#}");
    assert_eq!(s.route().await["service"], "v2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_traffic_waits_and_says_so_until_max_wait_and_bad_input_is_named() {
    let v1 = upstream("v1", body(1, 1.0)).await;
    let v2 = upstream("v2", body(1, 1.0)).await;
    let s = Stack::start("idle", v1, v2, "").await;
    let bad = [
        (
            json!({"service": "v2", "steps": ["canary 5m", "100%"]}),
            "steps[0]",
        ),
        (
            json!({"service": "v2", "steps": ["150% 5m", "100%"]}),
            "at most 100",
        ),
        (
            json!({"service": "v2", "max_error_rate": -0.5}),
            "max_error_rate",
        ),
        (json!({"service": "v2", "min_requests": -3}), "min_requests"),
        (json!({"service": "v1"}), "already the route's service"),
        (json!({"service": "v2", "stepz": []}), "stepz"),
    ];
    for (body, field) in bad {
        let (status, r) = s.post("/api/routes/api/rollout", body.clone()).await;
        assert_eq!(status, 422, "{body}: {r}");
        assert!(
            r["message"].as_str().unwrap().contains(field),
            "{body}: {r}"
        );
    }
    let spec = json!({"service": "v2", "steps": ["10% 1s", "100%"], "min_requests": 50,
                      "max_wait": "3s", "interval": "200ms"});
    let (status, _) = s.post("/api/routes/api/rollout", spec.clone()).await;
    assert_eq!(status, 200);
    let (status, r) = s.post("/api/routes/api/rollout", spec).await;
    assert_eq!(status, 409, "{r}");
    let waiting = s
        .until("reported waiting", |r| r["last"]["outcome"] == "wait")
        .await;
    assert_eq!(waiting["status"], "running");
    assert_eq!(waiting["last"]["summary"], "waiting for samples: 0/50");
    let r = s.until("ended", ended).await;
    assert_eq!(r["status"], "rolled_back", "{r:#}");
    let (gate, _, detail) = reason(&r);
    assert_eq!(gate, "samples");
    assert!(
        detail.starts_with("only 0/50 candidate samples after max_wait 3s"),
        "{detail}"
    );
    // Nothing to steer once it ended.
    let (status, _) = s.post("/api/routes/api/rollout/pause", json!({})).await;
    assert_eq!(status, 409);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_kill_9_a_restart_resumes_the_same_step_and_window() {
    let v1 = upstream("v1", body(1, 2.0)).await;
    let v2 = upstream("v2", body(1, 2.0)).await;
    let mut s = Stack::start("restart", v1, v2, "").await;
    let out = s.cli(&[
        "start",
        "api",
        "v2",
        "--steps",
        "shadow 500ms,10% 1h,100%",
        "--min-requests",
        "10",
        "--interval",
        "200ms",
    ]);
    assert!(
        out.contains("rollout of v2 (v1 → v2): running, step 1/3 `shadow 500ms`"),
        "{out}"
    );
    let stop = s.traffic();
    // The step is saved before its window opens (between them the traffic is set): wait for
    // both, or a reader can see step 1 with no window yet.
    let entered = |r: &Value| r["step"] == 1 && r["window_start_ms"].is_i64();
    let before = s.until("reached the canary step", entered).await;
    stop.store(true, Ordering::Relaxed);
    let window = before["window_start_ms"].as_i64().expect("a window");
    let (status, paused) = s.post("/api/routes/api/rollout/pause", json!({})).await;
    assert_eq!((status, paused["status"].as_str()), (200, Some("paused")));
    let (status, _) = s.post("/api/routes/api/rollout/resume", json!({})).await;
    assert_eq!(status, 200);
    s.kill9();
    s.run().await;
    let after = s.rollout().await;
    assert_eq!(after["status"], "running", "{after:#}");
    assert_eq!(after["step"], 1);
    assert_eq!(after["window_start_ms"].as_i64(), Some(window));
    assert_eq!(s.route().await["canary"]["weight"], 10.0);
    let out = s.cli(&["status", "api"]);
    assert!(
        out.contains("running, step 2/3 `10% 1h`, candidate weight 10.0 %"),
        "{out}"
    );
    assert!(
        out.contains("advance"),
        "the shadow step's decision is listed: {out}"
    );
    // Steered by hand from here: advance promotes.
    let (status, r) = s.post("/api/routes/api/rollout/advance", json!({})).await;
    assert_eq!(status, 200, "{r}");
    assert_eq!(r["status"], "promoted", "{r:#}");
    assert_eq!(s.route().await["service"], "v2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn before_step_holds_until_its_hook_approves_and_on_finish_hears_the_outcome() {
    let approvals = AtomicU64::new(0);
    let hooks = Fixture::builder()
        .name("hooks")
        .respond("/approve", move |_: &Recorded| {
            // The first two asks are refused: the first step waits for the third.
            let n = approvals.fetch_add(1, Ordering::Relaxed);
            Reply::status(if n < 2 { 403 } else { 204 })
        })
        .status("/done", 200)
        .start()
        .await;
    let v1 = upstream("v1", body(1, 2.0)).await;
    let v2 = upstream("v2", body(1, 2.0)).await;
    let s = Stack::start("hooks", v1, v2, "").await;
    let (status, _) = s
        .post(
            "/api/routes/api/rollout",
            json!({"service": "v2", "steps": ["10% 500ms", "100%"], "min_requests": 10,
                   "interval": "200ms", "hooks": {
                       "before_step": format!("{}/approve", hooks.url()),
                       "on_finish": format!("{}/done", hooks.url())}}),
        )
        .await;
    assert_eq!(status, 200);
    let held = s.until("held", |r| r["held"].is_string()).await;
    assert!(
        held["held"].as_str().unwrap().ends_with("answered 403"),
        "{held:#}"
    );
    assert!(held["window_start_ms"].is_null(), "no window while held");
    assert!(
        s.route().await["canary"].is_null(),
        "no traffic shift while held"
    );
    let r = s.ended_under_traffic().await;
    assert_eq!(r["status"], "promoted", "{r:#}");
    assert_eventually!(
        hooks.requests_for("/done").len() == 1,
        timeout = Duration::from_secs(10)
    );
    let told = hooks.requests_for("/done")[0].json();
    assert_eq!(told["status"], "promoted");
    assert_eq!(told["route"], "api");
    let asked = hooks.requests_for("/approve");
    assert!(asked.len() >= 4, "asked before each step: {}", asked.len());
    assert_eq!(asked[0].json()["step"], 0);
}
