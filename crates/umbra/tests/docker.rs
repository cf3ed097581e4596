//! Docker discovery against the real engine on this machine: umbra (a host process) follows
//! containers of umbra's own image (`demo-app`), each test in its own compose-project scope.
//! Without an engine the tests skip loudly; with `CI=true` they fail instead.

mod support;

use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use serde_json::Value;
use umbra_testkit::{assert_eventually, free_addr, skip_unless_ci, try_get};

use support::{event, spawn_run, wait_ready, Log};

/// True when a Docker engine answers. Skips loudly, or fails under CI.
fn engine() -> bool {
    let ok = Command::new("docker")
        .args(["info", "--format", "{{.ServerVersion}}"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        skip_unless_ci("no Docker engine answers `docker info`: Docker discovery");
    }
    ok
}

/// Runs `docker args…`, returns stdout; panics with stderr on failure.
fn docker(args: &[&str]) -> String {
    let out = Command::new("docker").args(args).output().unwrap();
    assert!(
        out.status.success(),
        "docker {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// umbra's runtime image made from this build's binary (FROM scratch, nothing pulled).
fn image() -> &'static str {
    static IMAGE: OnceLock<String> = OnceLock::new();
    IMAGE.get_or_init(|| {
        let bin = env!("CARGO_BIN_EXE_umbra");
        let meta = std::fs::metadata(bin).unwrap();
        let stamp = meta
            .modified()
            .unwrap()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let tag = format!("umbra-test:{:x}", stamp ^ u128::from(meta.len()));
        let exists = Command::new("docker")
            .args(["image", "inspect", &tag])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap()
            .success();
        if !exists {
            let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts/docker-image.sh");
            let out = Command::new("bash")
                .args([script, "--binary", bin, "--tag", &tag])
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "building the test image failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        tag
    })
}

/// A test's scope: a unique compose project label; removes its containers when dropped.
struct Scope {
    project: String,
    containers: std::sync::Mutex<Vec<String>>,
}

impl Scope {
    fn new(name: &str) -> Scope {
        Scope {
            project: format!("umbra-t-{name}-{:x}", rand::random::<u32>()),
            containers: Default::default(),
        }
    }

    /// `docker run -d` of the demo app with `labels`; returns the container name.
    fn run(&self, name: &str, version: &str, labels: &[(&str, &str)], extra: &[&str]) -> String {
        let full = format!("{}-{name}", self.project);
        let mut args: Vec<String> = vec![
            "run".into(),
            "-d".into(),
            "--name".into(),
            full.clone(),
            "--label".into(),
            format!("com.docker.compose.project={}", self.project),
        ];
        for (k, v) in labels {
            args.push("--label".into());
            args.push(format!("{k}={v}"));
        }
        args.extend(extra.iter().map(|s| s.to_string()));
        if !extra.contains(&"--health-interval") {
            // The image's HEALTHCHECK is umbra's own (admin port); the demo app has none.
            args.push("--no-healthcheck".into());
        }
        args.push(image().to_string());
        args.extend(
            ["demo-app", "--version", version, "--listen", "0.0.0.0:8080"]
                .iter()
                .map(|s| s.to_string()),
        );
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        docker(&refs);
        self.containers.lock().unwrap().push(full.clone());
        full
    }
}

impl Drop for Scope {
    fn drop(&mut self) {
        let names = self.containers.lock().unwrap().clone();
        if !names.is_empty() {
            let mut args = vec!["rm", "-f"];
            args.extend(names.iter().map(String::as_str));
            let _ = Command::new("docker").args(&args).output();
        }
    }
}

/// umbra on the host, discovering the scope's containers.
struct Umbra {
    child: std::process::Child,
    proxy: String,
    admin: String,
}

impl Umbra {
    async fn start(scope: &Scope, extra: &str) -> Umbra {
        let dir = std::env::temp_dir().join(format!("{}-umbra", scope.project));
        std::fs::create_dir_all(&dir).unwrap();
        let (proxy, admin) = (free_addr(), free_addr());
        let cfg = dir.join("umbra.toml");
        std::fs::write(
            &cfg,
            format!(
                "[proxy]\nlisten = \"{proxy}\"\n[admin]\nlisten = \"{admin}\"\n[store]\nurl = \"sqlite://{}\"\nkeep_same = 1.0\n[log]\naccess = false\n[docker]\nproject = \"{}\"\n{extra}",
                dir.join("umbra.db").display(),
                scope.project
            ),
        )
        .unwrap();
        let child = spawn_run(&cfg, Log::Stderr);
        let admin = format!("http://{admin}");
        wait_ready(&admin).await;
        Umbra {
            child,
            proxy: format!("http://{proxy}"),
            admin,
        }
    }

    async fn api(&self, path: &str) -> Value {
        let r = try_get(format!("{}{path}", self.admin)).await.unwrap();
        assert_eq!(r.status, 200, "{path}");
        r.json()
    }

    async fn discovery(&self) -> Value {
        self.api("/api/discovery").await
    }

    /// Servers of `service` in rotation according to `/api/discovery`.
    async fn in_rotation(&self, service: &str) -> usize {
        let d = self.discovery().await;
        d["containers"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| {
                c["in_rotation"] == true
                    && c["services"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .any(|s| s == service)
            })
            .count()
    }

    async fn status_of(&self, path: &str) -> Option<u16> {
        try_get(format!("{}{path}", self.proxy))
            .await
            .ok()
            .map(|r| r.status.as_u16())
    }
}

impl Drop for Umbra {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Steady client load: `workers` loops of GETs until stopped; counts failures.
struct Load {
    stop: Arc<AtomicBool>,
    ok: Arc<AtomicU64>,
    failed: Arc<AtomicU64>,
    tasks: Vec<tokio::task::JoinHandle<Vec<String>>>,
}

impl Load {
    fn start(url: String, workers: usize) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let ok = Arc::new(AtomicU64::new(0));
        let failed = Arc::new(AtomicU64::new(0));
        let tasks = (0..workers)
            .map(|i| {
                let (stop, ok, failed, url) =
                    (stop.clone(), ok.clone(), failed.clone(), url.clone());
                tokio::spawn(async move {
                    let mut why = Vec::new();
                    // Bounded: at most 100k requests per worker.
                    for n in 0..100_000u32 {
                        if stop.load(Ordering::Relaxed) {
                            break;
                        }
                        match try_get(format!("{url}/users/{}", i as u32 * 1000 + n % 1000)).await {
                            Ok(r) if r.status == 200 => {
                                ok.fetch_add(1, Ordering::Relaxed);
                            }
                            Ok(r) => {
                                failed.fetch_add(1, Ordering::Relaxed);
                                why.push(format!(
                                    "{} {}",
                                    r.status,
                                    String::from_utf8_lossy(&r.body)
                                ));
                            }
                            Err(e) => {
                                failed.fetch_add(1, Ordering::Relaxed);
                                why.push(e.to_string());
                            }
                        }
                        tokio::time::sleep(Duration::from_millis(2)).await;
                    }
                    why
                })
            })
            .collect();
        Load {
            stop,
            ok,
            failed,
            tasks,
        }
    }

    async fn finish(self) -> (u64, u64, Vec<String>) {
        self.stop.store(true, Ordering::Relaxed);
        let mut why = Vec::new();
        for t in self.tasks {
            why.extend(t.await.unwrap());
        }
        (
            self.ok.load(Ordering::Relaxed),
            self.failed.load(Ordering::Relaxed),
            why,
        )
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn labelled_replicas_pool_and_a_rolling_stop_fails_no_request() {
    if !engine() {
        return;
    }
    let scope = Scope::new("pool");
    let u = Umbra::start(&scope, "").await;
    let labels = [
        ("umbra.enable", "true"),
        ("com.docker.compose.service", "api"),
        ("traefik.http.routers.users.rule", "PathPrefix(`/users`)"),
    ];

    // A new container is live through umbra within a second of `docker run` returning.
    let one = scope.run("api-1", "v1", &labels, &[]);
    let t0 = Instant::now();
    while u.status_of("/users/1").await != Some(200) {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "the route never went live"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let live_ms = t0.elapsed().as_millis();
    eprintln!("MEASURED docker run → route live through umbra: {live_ms} ms");

    let route = u.api("/api/routes/users").await;
    assert_eq!(route["source"], "docker", "{route}");
    let two = scope.run("api-2", "v1", &labels, &[]);
    assert_eventually!(
        u.in_rotation("api").await == 2,
        timeout = Duration::from_secs(10)
    );
    let services = u.api("/api/services").await;
    let api = services["services"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "api")
        .unwrap()
        .clone();
    assert_eq!(api["servers"].as_array().unwrap().len(), 2, "{api}");

    // Docker-made routes are read-only through the API.
    let put = umbra_testkit::send(
        http::Request::put(format!("{}/api/routes/users", u.admin))
            .header("content-type", "application/json")
            .body(http_body_util::Full::new(bytes::Bytes::from(
                r#"{"rule":"PathPrefix(`/x`)","service":"api"}"#,
            )))
            .unwrap(),
    )
    .await;
    assert_eq!(put.status, 409, "{}", String::from_utf8_lossy(&put.body));

    // Rolling stop / start of one replica under steady load: nothing fails.
    let load = Load::start(u.proxy.clone(), 4);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let t_stop = Instant::now();
    let stop = tokio::task::spawn_blocking({
        let one = one.clone();
        move || docker(&["stop", &one])
    });
    assert_eventually!(
        u.in_rotation("api").await == 1,
        timeout = Duration::from_secs(5)
    );
    let out_ms = t_stop.elapsed().as_millis();
    stop.await.unwrap();
    let d = u.discovery().await;
    let c1 = d["containers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == one.as_str())
        .unwrap()
        .clone();
    assert_eq!(c1["in_rotation"], false, "{c1}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    docker(&["start", &one]);
    assert_eventually!(
        u.in_rotation("api").await == 2,
        timeout = Duration::from_secs(10)
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (ok, failed, why) = load.finish().await;
    eprintln!("MEASURED rolling stop/start of 1 of 2 replicas: {ok} ok, {failed} failed; out of rotation {out_ms} ms after `docker stop` began");
    assert!(ok > 100, "too little load to mean anything: {ok}");
    assert_eq!(failed, 0, "failed requests during a rolling stop: {why:?}");

    // All replicas gone: the route answers 503 no_healthy_upstream, not 404.
    docker(&["stop", "-t", "1", &one, &two]);
    assert_eventually!(
        u.in_rotation("api").await == 0,
        timeout = Duration::from_secs(5)
    );
    let r = try_get(format!("{}/users/1", u.proxy)).await.unwrap();
    assert_eq!(r.status, 503);
    assert_eq!(r.json()["error"], "no_healthy_upstream", "{:?}", r.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_shadow_labels_and_typos() {
    if !engine() {
        return;
    }
    let scope = Scope::new("shadow");
    let u = Umbra::start(&scope, "").await;
    // The image's HEALTHCHECK is `umbra healthcheck` (exec form: a scratch image has no
    // shell); UMBRA_ADMIN_URL points it at the demo app, or at nothing for the sick one.
    let ok_health = [
        "-e",
        "UMBRA_ADMIN_URL=http://127.0.0.1:8080",
        "--health-interval",
        "1s",
        "--health-retries",
        "1",
    ];
    let bad_health = [
        "-e",
        "UMBRA_ADMIN_URL=http://127.0.0.1:1",
        "--health-interval",
        "1s",
        "--health-retries",
        "1",
    ];
    scope.run(
        "v1",
        "v1",
        &[
            ("umbra.enable", "true"),
            ("com.docker.compose.service", "api"),
            ("traefik.http.routers.api.rule", "PathPrefix(`/`)"),
        ],
        &ok_health,
    );
    scope.run(
        "sick",
        "v1",
        &[
            ("umbra.enable", "true"),
            ("com.docker.compose.service", "sick"),
            ("traefik.http.routers.sick.rule", "PathPrefix(`/sick`)"),
        ],
        &bad_health,
    );
    scope.run(
        "v2",
        "v2",
        &[
            ("umbra.enable", "true"),
            ("com.docker.compose.service", "api-v2"),
            ("umbra.shadow.of", "api"),
            ("umbra.shadow.percnt", "50"),
        ],
        &[],
    );
    // A second service shadowing the same route is a second candidate.
    scope.run(
        "v3",
        "v1",
        &[
            ("umbra.enable", "true"),
            ("com.docker.compose.service", "api-v3"),
            ("umbra.shadow.of", "api"),
        ],
        &[],
    );
    scope.run(
        "lost",
        "v2",
        &[("umbra.enable", "true"), ("umbra.shadow.of", "nope")],
        &[],
    );

    // The healthy one serves once Docker says healthy; the sick one never gets traffic.
    assert_eventually!(
        u.status_of("/users/3").await == Some(200),
        timeout = Duration::from_secs(15),
        "v1 never served: {}",
        u.discovery().await
    );
    let r = try_get(format!("{}/sick/x", u.proxy)).await.unwrap();
    assert_eq!(r.status, 503, "{:?}", r.body);
    assert_eventually!(
        u.discovery().await["containers"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["health"] == "unhealthy"),
        timeout = Duration::from_secs(15)
    );
    assert_eq!(u.status_of("/sick/x").await, Some(503));

    // Label mistakes are reported per container, with what was expected.
    let d = u.discovery().await;
    assert_eq!(d["connected"], true, "{d}");
    let errors: Vec<String> = d["containers"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|c| {
            let name = c["name"].as_str().unwrap().to_string();
            c["errors"].as_array().unwrap().iter().map(move |e| {
                format!(
                    "{name}: {}: {}",
                    e["label"].as_str().unwrap(),
                    e["message"].as_str().unwrap()
                )
            })
        })
        .collect();
    let v2 = format!("{}-v2", scope.project);
    let lost = format!("{}-lost", scope.project);
    assert!(
        errors
            .iter()
            .any(|e| e.starts_with(&format!("{v2}: umbra.shadow.percnt:"))
                && e.contains("did you mean `umbra.shadow.percent`")),
        "{errors:#?}"
    );
    assert!(
        errors
            .iter()
            .any(|e| e.starts_with(&format!("{lost}: umbra.shadow.of: no route named `nope`"))),
        "{errors:#?}"
    );

    // The shadow labels start comparisons of v2 and of v3 against v1, each its own.
    let route = u.api("/api/routes/api").await;
    let candidates: Vec<&str> = route["candidates"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["service"].as_str())
        .collect();
    assert_eq!(candidates, ["api-v2", "api-v3"], "{route}");
    for i in 0..30 {
        assert_eq!(u.status_of(&format!("/users/{i}")).await, Some(200));
    }
    let um = &u;
    let compared = |c: &'static str| async move {
        let items = um.api("/api/comparisons?route=api&limit=100").await["items"].clone();
        let items = items.as_array().cloned().unwrap_or_default();
        items.iter().filter(|x| x["candidate"] == c).count()
    };
    assert_eventually!(
        compared("api-v2").await >= 20 && compared("api-v3").await >= 20,
        timeout = Duration::from_secs(10)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_engine_going_away_keeps_the_last_routes_and_reconnects() {
    if !engine() {
        return;
    }
    // umbra talks to the engine through a socket forwarder this test can cut.
    let scope = Scope::new("reconnect");
    let sock = std::env::temp_dir().join(format!("{}.sock", scope.project));
    let _ = std::fs::remove_file(&sock);
    let forward = Arc::new(AtomicBool::new(true));
    let listener = tokio::net::UnixListener::bind(&sock).unwrap();
    let conns: Arc<std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>> = Default::default();
    {
        let (forward, conns) = (forward.clone(), conns.clone());
        tokio::spawn(async move {
            while let Ok((mut down, _)) = listener.accept().await {
                if !forward.load(Ordering::Relaxed) {
                    continue; // dropped: the engine "is gone"
                }
                let t = tokio::spawn(async move {
                    if let Ok(mut up) =
                        tokio::net::UnixStream::connect("/var/run/docker.sock").await
                    {
                        let _ = tokio::io::copy_bidirectional(&mut down, &mut up).await;
                    }
                });
                conns.lock().unwrap().push(t);
            }
        });
    }
    let u = Umbra::start(
        &scope,
        &format!("endpoint = \"unix://{}\"\n", sock.display()),
    )
    .await;
    scope.run(
        "api",
        "v1",
        &[
            ("umbra.enable", "true"),
            ("traefik.http.routers.r.rule", "PathPrefix(`/`)"),
        ],
        &[],
    );
    assert_eventually!(
        u.status_of("/users/1").await == Some(200),
        timeout = Duration::from_secs(10)
    );

    // Cut the engine off: discovery reports it, the route keeps serving.
    forward.store(false, Ordering::Relaxed);
    for t in conns.lock().unwrap().drain(..) {
        t.abort();
    }
    assert_eventually!(
        u.discovery().await["connected"] == false,
        timeout = Duration::from_secs(10)
    );
    assert!(u.discovery().await["last_error"].is_string());
    assert_eq!(u.status_of("/users/2").await, Some(200));

    // Back: reconnected (backoff ≤ 10 s) and following events again.
    forward.store(true, Ordering::Relaxed);
    assert_eventually!(
        u.discovery().await["connected"] == true,
        timeout = Duration::from_secs(15)
    );
    let name = format!("{}-api", scope.project);
    docker(&["stop", "-t", "1", &name]);
    assert_eventually!(
        u.status_of("/users/3").await == Some(503),
        timeout = Duration::from_secs(5)
    );
    let _ = std::fs::remove_file(&sock);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_compose_example_comes_up_and_answers_through_umbra() {
    if !engine() {
        return;
    }
    let has_compose = Command::new("docker-compose")
        .arg("version")
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !has_compose {
        skip_unless_ci("docker-compose is not installed: the compose example");
        return;
    }
    let project = format!("umbra-t-compose-{:x}", rand::random::<u32>());
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/compose");
    let (port, admin_port) = (free_addr().port(), free_addr().port());
    let gid = std::fs::metadata("/var/run/docker.sock")
        .map(|m| std::os::unix::fs::MetadataExt::gid(&m))
        .unwrap_or(0);
    let compose = |args: &[&str]| {
        Command::new("docker-compose")
            .current_dir(dir)
            .args(["-p", &project])
            .args(args)
            .env("UMBRA_IMAGE", image())
            .env("UMBRA_PORT", port.to_string())
            .env("UMBRA_ADMIN_PORT", admin_port.to_string())
            .env("UMBRA_ADMIN_TOKEN", "t0ken")
            .env("DOCKER_GID", gid.to_string())
            .output()
            .unwrap()
    };
    struct Down<F: Fn(&[&str]) -> std::process::Output>(F);
    impl<F: Fn(&[&str]) -> std::process::Output> Drop for Down<F> {
        fn drop(&mut self) {
            let _ = (self.0)(&["down", "-v", "-t", "1"]);
        }
    }
    let down = Down(compose);
    let up = (down.0)(&["up", "-d"]);
    assert!(
        up.status.success(),
        "compose up: {}",
        String::from_utf8_lossy(&up.stderr)
    );

    let proxy = format!("http://127.0.0.1:{port}");
    assert_eventually!(
        try_get(format!("{proxy}/users/7"))
            .await
            .is_ok_and(|r| r.status == 200),
        timeout = Duration::from_secs(30)
    );
    // umbra's own HEALTHCHECK (`umbra healthcheck` in the scratch image) turns healthy.
    let umbra_container = format!("{project}_umbra_1");
    assert_eventually!(
        Command::new("docker")
            .args([
                "inspect",
                "-f",
                "{{.State.Health.Status}}",
                &umbra_container
            ])
            .output()
            .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "healthy"),
        timeout = Duration::from_secs(30)
    );
    for i in 0..20 {
        let r = try_get(format!("{proxy}/users/{i}")).await.unwrap();
        assert_eq!(r.status, 200);
    }
    // A file-defined service named by its compose hostname resolves inside the scratch image
    // (no libc NSS modules there): umbra's own resolver reads /etc/resolv.conf itself.
    let r = try_get(format!("{proxy}/v1/users/7")).await.unwrap();
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.headers["x-app-version"], "v1");
    let admin = format!("http://127.0.0.1:{admin_port}");
    let authed = |path: &str| {
        http::Request::get(format!("{admin}{path}"))
            .header("authorization", "Bearer t0ken")
            .body(http_body_util::Full::new(bytes::Bytes::new()))
            .unwrap()
    };
    assert_eventually!(
        umbra_testkit::send(authed("/api/comparisons?route=api&limit=50"))
            .await
            .json()["items"]
            .as_array()
            .is_some_and(|a| !a.is_empty()),
        timeout = Duration::from_secs(15)
    );
    let d = umbra_testkit::send(authed("/api/discovery")).await.json();
    assert_eq!(d["connected"], true, "{d}");
    // No project in the config or the environment: umbra keeps to its own container's.
    assert_eq!(d["project"], project.as_str(), "{d}");
    assert_eq!(d["project_from"], "own container", "{d}");
    assert_eq!(d["notice"], Value::Null, "{d}");
    let route = umbra_testkit::send(authed("/api/routes/api")).await.json();
    assert_eq!(route["shadow"]["service"], "api-v2", "{route}");
}

/// Blue/green with labels: a container with `umbra.deploy.of=app` replaces the route's
/// servers once it is healthy, under steady load, and the old container can then go away;
/// no client request fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deploy_label_switches_blue_to_green_without_a_failed_request() {
    if !engine() {
        return;
    }
    let scope = Scope::new("bluegreen");
    let route = "[[routes]]\nname = \"app\"\nrule = \"PathPrefix(`/`)\"\nservice = \"app\"\n";
    let u = Umbra::start(&scope, route).await;
    let blue = scope.run(
        "blue",
        "v1",
        &[
            ("umbra.enable", "true"),
            ("com.docker.compose.service", "app"),
        ],
        &[],
    );
    let version = |proxy: String| async move {
        try_get(format!("{proxy}/users/1"))
            .await
            .ok()
            .filter(|r| r.status == 200)
            .and_then(|r| r.headers.get("x-app-version").cloned())
            .and_then(|v| v.to_str().ok().map(str::to_string))
    };
    assert_eventually!(
        version(u.proxy.clone()).await.as_deref() == Some("v1"),
        timeout = Duration::from_secs(30)
    );
    let load = Load::start(u.proxy.clone(), 2);
    scope.run(
        "green",
        "v2",
        &[
            ("umbra.enable", "true"),
            ("com.docker.compose.service", "app-green"),
            ("umbra.deploy.of", "app"),
            ("umbra.health.path", "/health"),
        ],
        &[],
    );
    assert_eventually!(
        version(u.proxy.clone()).await.as_deref() == Some("v2"),
        timeout = Duration::from_secs(60)
    );
    // Green serves: blue may go.
    docker(&["rm", "-f", &blue]);
    let before = load.ok.load(Ordering::Relaxed);
    assert_eventually!(
        load.ok.load(Ordering::Relaxed) >= before + 200,
        timeout = Duration::from_secs(30)
    );
    let (ok, failed, why) = load.finish().await;
    eprintln!("label blue/green: {ok} ok, {failed} failed");
    assert_eq!(failed, 0, "{why:?}");
    assert_eq!(version(u.proxy.clone()).await.as_deref(), Some("v2"));
    let events = u.api("/api/events").await;
    let deploy = event(&events, "deploy");
    assert_eq!(deploy["route"], "app", "{deploy}");
    assert_eq!(deploy["source"], "docker", "{deploy}");
}

/// A project filter that matches no container says so, naming the projects it saw.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_project_filter_that_matches_nothing_names_the_projects_seen() {
    if !engine() {
        return;
    }
    let elsewhere = Scope::new("elsewhere");
    elsewhere.run("api", "v1", &[("umbra.enable", "true")], &[]);
    let empty = Scope::new("empty");
    let u = Umbra::start(&empty, "").await;
    assert_eventually!(
        u.discovery().await["notice"].is_string(),
        timeout = Duration::from_secs(20)
    );
    let d = u.discovery().await;
    let notice = d["notice"].as_str().unwrap();
    assert!(
        notice.contains(&format!(
            "no container belongs to compose project `{}`",
            empty.project
        )),
        "{notice}"
    );
    assert!(notice.contains(&elsewhere.project), "{notice}");
    assert!(
        d["projects_seen"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p == elsewhere.project.as_str()),
        "{d}"
    );
    assert_eq!(d["project_from"], "config", "{d}");
    assert_eq!(d["containers"].as_array().unwrap().len(), 0, "{d}");
}
