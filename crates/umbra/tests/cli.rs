//! The `umbra` binary end to end: `check` exit codes, `run` with reload and SIGTERM, `demo`.

mod support;

use std::io::Write;
use std::time::Duration;

use umbra_testkit::{assert_eventually, free_addr, get, Fixture};

use support::{start_umbra, stop_umbra, succeeded, tempdir, umbra};

#[test]
fn check_reports_errors_with_positions() {
    let dir = tempdir("cli", "check");
    let good = dir.join("good.toml");
    std::fs::write(&good, "[services.api]\nservers = [\"http://127.0.0.1:9\"]\n[[routes]]\nname = \"a\"\nrule = \"PathPrefix(`/`)\"\nservice = \"api\"\n").unwrap();
    let out = umbra().args(["check", "-c"]).arg(&good).output().unwrap();
    succeeded(&out);

    let bad = dir.join("bad.toml");
    std::fs::write(&bad, "[services.api]\nservers = [\"http://127.0.0.1:9\"]\n[[routes]]\nname = \"a\"\nrule = \"PathPrefix(`/`)\"\nservice = \"apii\"\n").unwrap();
    let out = umbra().args(["check", "-c"]).arg(&bad).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bad.toml:6:11: routes[0].service: unknown service `apii`"),
        "{err}"
    );
}

#[tokio::test]
async fn run_serves_reloads_and_stops_cleanly() {
    let fx = Fixture::builder()
        .name("v1")
        .health("/health")
        .start()
        .await;
    let dir = tempdir("cli", "run");
    let (proxy, admin) = (free_addr(), free_addr());
    let cfg = dir.join("umbra.toml");
    let write = |route_path: &str, proxy: std::net::SocketAddr| {
        std::fs::write(
            &cfg,
            format!(
                "[proxy]\nlisten = \"{proxy}\"\nworkers = 1\n[admin]\nlisten = \"{admin}\"\n[store]\nurl = \"sqlite://{}\"\n[log]\naccess = false\n\
                 [services.api]\nservers = [\"{}\"]\n[[routes]]\nname = \"a\"\nrule = \"PathPrefix(`{route_path}`)\"\nservice = \"api\"\n",
                dir.join("u.db").display(),
                fx.url()
            ),
        )
        .unwrap()
    };
    write("/one", proxy);
    let admin_url = format!("http://{admin}");
    let child = start_umbra(&cfg, &admin_url).await;
    assert_eq!(get(format!("http://{proxy}/one")).await.status, 200);
    assert_eq!(get(format!("http://{proxy}/two")).await.status, 404);

    // Editing the file reloads it; a broken edit keeps the running config.
    write("/two", proxy);
    assert_eventually!(
        get(format!("http://{proxy}/two")).await.status == 200,
        timeout = Duration::from_secs(10)
    );
    // Changing proxy.listen moves the listener; nothing else does.
    let moved = free_addr();
    write("/two", moved);
    assert_eventually!(
        umbra_testkit::try_get(format!("http://{moved}/two"))
            .await
            .is_ok_and(|r| r.status == 200),
        timeout = Duration::from_secs(10)
    );
    assert_eventually!(
        umbra_testkit::try_get(format!("http://{proxy}/two"))
            .await
            .is_err(),
        timeout = Duration::from_secs(10)
    );
    let proxy = moved;
    let mut f = std::fs::OpenOptions::new().append(true).open(&cfg).unwrap();
    writeln!(f, "bogus_key = 1").unwrap();
    drop(f);
    assert_eventually!(
        get(format!("{admin_url}/api/status")).await.json()["last_reload_error"].is_string(),
        timeout = Duration::from_secs(10)
    );
    assert_eq!(get(format!("http://{proxy}/two")).await.status, 200);

    // `umbra healthcheck` against the admin listener.
    let hc = umbra()
        .args(["healthcheck", "--admin", &admin_url])
        .output()
        .unwrap();
    assert!(hc.status.success());

    // SIGTERM: exit 0.
    stop_umbra(child).await;
}

#[test]
fn demo_finds_the_regression_not_the_noise() {
    let out = umbra()
        .args(["demo", "--duration", "8s", "--rps", "100"])
        .env("UMBRA_LOG", "error")
        .output()
        .unwrap();
    let text = succeeded(&out);
    let summary = text
        .split("What changed in v2")
        .nth(1)
        .unwrap_or_else(|| panic!("no summary: {text}"));
    let summary = summary.split("other differences").next().unwrap();
    // Exactly three findings, all high: the rare 500 (one finding covering its body
    // fields), `/balance` retyped, `/currency` removed. No noise among them.
    let findings: Vec<&str> = summary
        .lines()
        .filter(|l| l.starts_with("  HIGH"))
        .collect();
    let all: Vec<&str> = summary
        .lines()
        .filter(|l| {
            ["  HIGH", "  MEDIUM", "  LOW"]
                .iter()
                .any(|s| l.starts_with(s))
        })
        .collect();
    assert_eq!((findings.len(), all.len()), (3, 3), "{summary}");
    let has = |needle: &str| findings.iter().any(|l| l.contains(needle));
    assert!(
        has("`/balance` turned from a number into a string"),
        "{summary}"
    );
    assert!(has("`/currency` removed"), "{summary}");
    assert!(has("answers 500 instead of 200"), "{summary}");
    let covers = summary
        .split("answers 500 instead of 200")
        .nth(1)
        .and_then(|rest| rest.lines().nth(1))
        .unwrap_or_default();
    assert!(
        covers.contains("covers") && covers.contains("/error") && covers.contains("/total"),
        "the 500 covers its body fields: {summary}"
    );
    // umbra decided by itself: v2 rolled back at its shadow step, the fixed v3 promoted.
    let rollouts = text
        .split("Rollouts (umbra decided by itself):")
        .nth(1)
        .unwrap_or_else(|| panic!("no rollout summary: {text}"));
    assert!(
        rollouts.contains("api-v2: rolled back at step `shadow")
            && rollouts.contains("by the diff gate"),
        "{rollouts}"
    );
    assert!(rollouts.contains("api-v3: promoted"), "{rollouts}");
    for noise in ["generated_at", "request_id", "/tags", "served_at", "cursor"] {
        assert!(
            !all.iter().any(|l| l.contains(noise)),
            "noise `{noise}` reported as a finding:\n{summary}"
        );
    }
}

#[tokio::test]
async fn runtime_changes_and_comparisons_survive_a_restart() {
    let v1 = Fixture::builder()
        .name("v1")
        .json("/users/1", serde_json::json!({"id": 1, "n": 1}))
        .start()
        .await;
    let v2 = Fixture::builder()
        .name("v2")
        .json("/users/1", serde_json::json!({"id": 1, "n": 2}))
        .start()
        .await;
    let dir = tempdir("cli", "restart");
    let (proxy, admin) = (free_addr(), free_addr());
    let cfg = dir.join("umbra.toml");
    std::fs::write(
        &cfg,
        format!(
            "[proxy]\nlisten = \"{proxy}\"\nworkers = 1\n[admin]\nlisten = \"{admin}\"\n[store]\nurl = \"sqlite://{}\"\n[log]\naccess = false\n\
             [services.v1]\nservers = [\"{}\"]\n[services.v2]\nservers = [\"{}\"]\n\
             [[routes]]\nname = \"api\"\nrule = \"PathPrefix(`/`)\"\nservice = \"v1\"\n",
            dir.join("u.db").display(),
            v1.url(),
            v2.url()
        ),
    )
    .unwrap();
    let admin_url = format!("http://{admin}");
    let child = start_umbra(&cfg, &admin_url).await;
    // Start shadowing from the CLI, as a user would.
    let out = umbra()
        .args([
            "shadow",
            "api",
            "v2",
            "--percent",
            "100",
            "--admin",
            &admin_url,
        ])
        .output()
        .unwrap();
    succeeded(&out);
    assert_eq!(get(format!("http://{proxy}/users/1")).await.json()["n"], 1);
    assert_eventually!(
        get(format!("{admin_url}/api/comparisons?route=api"))
            .await
            .json()["items"]
            .as_array()
            .is_some_and(|a| a.len() == 1),
        timeout = Duration::from_secs(10)
    );
    stop_umbra(child).await;

    let child = start_umbra(&cfg, &admin_url).await;
    let route = get(format!("{admin_url}/api/routes/api")).await.json();
    assert_eq!(route["shadow"]["service"], "v2", "{route}");
    assert_eq!(route["overridden"], true, "{route}");
    let items = get(format!("{admin_url}/api/comparisons?route=api"))
        .await
        .json();
    assert_eq!(items["items"].as_array().unwrap().len(), 1, "{items}");
    assert_eq!(items["items"][0]["verdict"], "different");
    let events = get(format!("{admin_url}/api/events")).await.json();
    assert!(events.to_string().contains("shadow.start"), "{events}");
    // And the CLI diff table shows the changed field.
    let out = umbra()
        .args(["diffs", "api", "--admin", &admin_url])
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(table.contains("/n") && table.contains("changed"), "{table}");
    stop_umbra(child).await;
}
