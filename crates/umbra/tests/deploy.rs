//! `umbra deploy` end to end with the real binary: under a steady client load through umbra
//! the route switches from the old server to a new one without a single failed request; a
//! target that never becomes healthy exits 1 and changes nothing. Also `umbra pause` /
//! `resume` / `maintenance` from the CLI.

mod support;

use std::process::Output;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use umbra_testkit::{assert_eventually, free_addr, get, Fixture};

use support::{event, start_umbra, succeeded, tempdir, umbra};

/// Client loops running at once, and the requests they send at least in all.
const LOOPS: usize = 4;
const AT_LEAST: u64 = 2_000;

struct Umbra {
    child: std::process::Child,
    proxy: String,
    admin: String,
    dir: std::path::PathBuf,
}

impl Drop for Umbra {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `umbra run` with one route `app` on service `app` = `server`.
async fn start(server: &str) -> Umbra {
    let (proxy, admin) = (free_addr(), free_addr());
    let dir = tempdir("deploy", &proxy.port().to_string());
    let cfg = dir.join("umbra.toml");
    let text = format!(
        "[proxy]\nlisten = \"{proxy}\"\nworkers = 1\n[admin]\nlisten = \"{admin}\"\n\
         [store]\nurl = \"sqlite://{}\"\n[log]\naccess = false\n\
         [services.app]\nservers = [\"{server}\"]\n\
         [[routes]]\nname = \"app\"\nrule = \"PathPrefix(`/`)\"\nservice = \"app\"\n",
        dir.join("u.db").display(),
    );
    std::fs::write(&cfg, text).unwrap();
    let admin = format!("http://{admin}");
    let child = start_umbra(&cfg, &admin).await;
    Umbra {
        child,
        proxy: format!("http://{proxy}"),
        admin,
        dir,
    }
}

async fn cli(args: Vec<String>) -> Output {
    tokio::task::spawn_blocking(move || umbra().args(args).output().unwrap())
        .await
        .unwrap()
}

fn version(name: &str, health: bool) -> umbra_testkit::FixtureBuilder {
    let b = Fixture::builder()
        .name(name)
        .json("/hello", json!({ "version": name }))
        .delay("/slow", Duration::from_millis(800));
    if health {
        b.health("/up")
    } else {
        b
    }
}

/// What the client loops saw.
#[derive(Default)]
struct Tally {
    sent: AtomicU64,
    failed: AtomicU64,
    old: AtomicU64,
    new: AtomicU64,
}

fn load(proxy: String, tally: Arc<Tally>, stop: Arc<AtomicBool>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut loops = Vec::new();
        for _ in 0..LOOPS {
            let (proxy, tally, stop) = (proxy.clone(), tally.clone(), stop.clone());
            loops.push(tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let r = umbra_testkit::try_get(format!("{proxy}/hello")).await;
                    tally.sent.fetch_add(1, Ordering::Relaxed);
                    match r {
                        Ok(r) if r.status == 200 => {
                            let which = if r.json()["version"] == "new" {
                                &tally.new
                            } else {
                                &tally.old
                            };
                            which.fetch_add(1, Ordering::Relaxed);
                        }
                        Ok(r) => {
                            eprintln!("failed: {} {}", r.status, r.text());
                            tally.failed.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(e) => {
                            eprintln!("failed: {e}");
                            tally.failed.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            }));
        }
        for l in loops {
            l.await.unwrap();
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deploy_under_load_fails_no_request() {
    let old = version("old", false).start().await;
    let new = version("new", true).start().await;
    let u = start(&old.url()).await;
    let (tally, stop) = (Arc::new(Tally::default()), Arc::new(AtomicBool::new(false)));
    let clients = load(u.proxy.clone(), tally.clone(), stop.clone());
    assert_eventually!(
        tally.old.load(Ordering::Relaxed) >= 300,
        timeout = Duration::from_secs(30)
    );
    // A slow request in flight on the old server when the switch happens finishes there.
    let slow = tokio::spawn(get(format!("{}/slow", u.proxy)));
    assert_eventually!(
        old.hits_for("/slow") == 1,
        timeout = Duration::from_secs(10)
    );

    let out = cli(vec![
        "deploy".into(),
        "app".into(),
        "--target".into(),
        new.url(),
        "--drain".into(),
        "10s".into(),
        "--admin".into(),
        u.admin.clone(),
    ])
    .await;
    let stdout = succeeded(&out);
    assert!(stdout.contains("now serves service app"), "{stdout}");
    assert!(
        !stdout.contains("warning"),
        "the slow request drained: {stdout}"
    );
    let slow = slow.await.unwrap();
    assert_eq!(
        (slow.status.as_u16(), slow.header("x-fixture")),
        (200, Some("old")),
        "{}",
        slow.text()
    );

    // From the switch on, nothing goes to the old server: it can go away.
    let after = tally.sent.load(Ordering::Relaxed);
    old.shutdown().await;
    let target = (after + 500).max(AT_LEAST);
    assert_eventually!(
        tally.sent.load(Ordering::Relaxed) >= target,
        timeout = Duration::from_secs(120)
    );
    stop.store(true, Ordering::Relaxed);
    clients.await.unwrap();
    let (sent, failed) = (
        tally.sent.load(Ordering::Relaxed),
        tally.failed.load(Ordering::Relaxed),
    );
    let (o, n) = (
        tally.old.load(Ordering::Relaxed),
        tally.new.load(Ordering::Relaxed),
    );
    eprintln!("deploy under load: {sent} requests, {failed} failed, {o} old, {n} new");
    assert!(sent >= AT_LEAST, "{sent}");
    assert_eq!(failed, 0, "{sent} sent, {o} old, {n} new");
    assert!(n >= 500, "{n} answered by the new server");

    // The change is in force, stored and audited.
    let svc = get(format!("{}/api/services", u.admin)).await.json();
    assert_eq!(svc["services"][0]["servers"][0]["url"], new.url(), "{svc}");
    assert_eq!(svc["services"][0]["servers"].as_array().unwrap().len(), 1);
    let events = get(format!("{}/api/events", u.admin)).await.json();
    let deploy = event(&events, "deploy");
    assert_eq!(deploy["route"], "app");
    assert_eq!(deploy["detail"]["target"], new.url());
}

#[tokio::test]
async fn a_target_that_never_becomes_healthy_changes_nothing() {
    let old = version("old", false).start().await;
    // Answers, but its health path says 503.
    let sick = Fixture::builder().status("/up", 503).start().await;
    let u = start(&old.url()).await;
    for (target, why) in [
        (sick.url(), "answered 503"),
        (format!("http://{}", free_addr()), "onnect"),
    ] {
        let out = cli(vec![
            "deploy".into(),
            "app".into(),
            "--target".into(),
            target.clone(),
            "--wait".into(),
            "1s".into(),
            "--admin".into(),
            u.admin.clone(),
        ])
        .await;
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert!(stderr.contains("504"), "{stderr}");
        assert!(stderr.contains("did not answer 2xx on `/up`"), "{stderr}");
        assert!(
            stderr.contains(why) && stderr.contains("nothing changed"),
            "{stderr}"
        );
        let svc = get(format!("{}/api/services", u.admin)).await.json();
        assert_eq!(svc["services"][0]["servers"][0]["url"], old.url(), "{svc}");
        assert_eq!(svc["services"][0]["source"], "file", "{svc}");
    }
    assert_eq!(
        get(format!("{}/hello", u.proxy)).await.json()["version"],
        "old"
    );
}

#[tokio::test]
async fn pause_maintenance_and_resume_from_the_cli() {
    let app = version("old", false).start().await;
    let u = start(&app.url()).await;
    let admin = || vec!["--admin".to_string(), u.admin.clone()];
    let run = |args: &[&str]| {
        let mut v: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        v.extend(admin());
        cli(v)
    };
    let out = run(&["maintenance", "app", "--message", "Back at noon"]).await;
    succeeded(&out);
    let r = get(format!("{}/hello", u.proxy)).await;
    assert_eq!(
        (r.status.as_u16(), r.json()["message"].clone()),
        (503, json!("Back at noon"))
    );

    let out = run(&["pause", "app", "--max", "30s"]).await;
    assert!(String::from_utf8_lossy(&out.stdout).contains("paused"));
    let held = tokio::spawn(get(format!("{}/hello", u.proxy)));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!held.is_finished(), "a paused request was answered");
    let out = run(&["resume", "app"]).await;
    succeeded(&out);
    let r = held.await.unwrap();
    assert_eq!(
        (r.status.as_u16(), r.json()["version"].clone()),
        (200, json!("old"))
    );

    let out = run(&["pause", "nope"]).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("404: no route named `nope`"));
}
