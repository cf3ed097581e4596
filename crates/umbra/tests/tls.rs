//! `[tls]` through the binary: `umbra check` naming an unusable key with its position, and
//! `umbra run` serving HTTPS while `/api/status` and `/health/ready` report an ACME directory
//! that is down.

mod support;

use std::process::Command;

use rcgen::{CertificateParams, KeyPair};
use umbra_testkit::{free_addr, get, Fixture, TestResponse};

use support::{spawn_run, stop_umbra, succeeded, tempdir, umbra, wait_for, Log, READY_WITHIN};

/// A self-signed certificate for `name`: (cert PEM, key PEM).
fn self_signed(name: &str) -> (String, String) {
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec![name.to_string()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    (cert.pem(), key.serialize_pem())
}

#[test]
fn check_names_a_key_that_does_not_match_its_certificate_with_its_position() {
    let dir = tempdir("tls", "check");
    let (cert, _) = self_signed("a.test");
    let (_, other_key) = self_signed("b.test");
    std::fs::write(dir.join("a.crt"), cert).unwrap();
    std::fs::write(dir.join("b.key"), other_key).unwrap();
    let cfg = dir.join("umbra.toml");
    std::fs::write(
        &cfg,
        format!(
            "[tls]\nlisten = \"127.0.0.1:0\"\ncerts = [\n  {{ cert = \"{0}/a.crt\", key = \"{0}/b.key\" }},\n]\n",
            dir.display()
        ),
    )
    .unwrap();
    let out = umbra().args(["check", "-c"]).arg(&cfg).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    // The position is the key's value on line 4.
    let text = std::fs::read_to_string(&cfg).unwrap();
    let col = text.lines().nth(3).unwrap().find("key = ").unwrap() + "key = ".len() + 1;
    let want = format!(
        "{}:4:{col}: tls.certs[0].key: {}/b.key: does not match the certificate",
        cfg.display(),
        dir.display()
    );
    assert!(err.contains(&want), "{err}\nwanted: {want}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_serves_https_and_reports_an_acme_directory_that_is_down() {
    let dir = tempdir("tls", "run");
    let app = Fixture::builder().start().await;
    let (cert, key) = self_signed("a.test");
    std::fs::write(dir.join("a.crt"), &cert).unwrap();
    std::fs::write(dir.join("a.key"), key).unwrap();
    let (proxy, admin, https, down) = (free_addr(), free_addr(), free_addr(), free_addr());
    let cfg = dir.join("umbra.toml");
    std::fs::write(
        &cfg,
        format!(
            "[proxy]\nlisten = \"{proxy}\"\nworkers = 1\n[admin]\nlisten = \"{admin}\"\n\
             [store]\nurl = \"sqlite://{d}/umbra.db\"\n[log]\naccess = false\n\
             [services.api]\nservers = [\"{app}\"]\n[[routes]]\nname = \"all\"\nrule = \"PathPrefix(`/`)\"\nservice = \"api\"\n\
             [tls]\nlisten = \"{https}\"\nredirect_http = true\nstorage = \"{d}/tls\"\n\
             certs = [{{ cert = \"{d}/a.crt\", key = \"{d}/a.key\" }}]\n\
             acme = {{ directory = \"https://{down}/dir\", ca = \"{d}/a.crt\", domains = [\"b.test\"] }}\n",
            d = dir.display(),
            app = app.url(),
        ),
    )
    .unwrap();
    let child = spawn_run(&cfg, Log::Quiet);
    let admin_url = format!("http://{admin}");
    let acme_down = |r: &TestResponse| r.json()["tls"]["acme"]["error"].is_string();
    wait_for(&format!("{admin_url}/api/status"), READY_WITHIN, acme_down).await;
    let status = get(format!("{admin_url}/api/status")).await.json();
    assert_eq!(status["tls"]["state"], "degraded", "{status}");
    assert_eq!(status["tls"]["files"][0]["names"][0], "a.test", "{status}");
    let ready = get(format!("{admin_url}/health/ready")).await;
    assert_eq!(ready.status, 200, "degraded still serves");
    let ready = ready.json();
    assert_eq!(ready["status"], "degraded", "{ready}");
    assert!(
        ready["checks"]["tls"]["problem"]
            .as_str()
            .is_some_and(|p| p.contains(&down.to_string())),
        "{ready}"
    );
    // HTTPS serves with the file's certificate; plain HTTP redirects to it.
    let ca = dir.join("a.crt").display().to_string();
    let resolve = format!("a.test:{}:127.0.0.1", https.port());
    let url = format!("https://a.test:{}/x", https.port());
    let plain = format!("http://{proxy}/x");
    let (code, redirect) = tokio::task::spawn_blocking(move || {
        let curl = |args: &[&str]| {
            let out = Command::new("curl").args(args).output().unwrap();
            String::from_utf8_lossy(&out.stdout).into_owned()
        };
        (
            curl(&[
                "-sS",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                "--cacert",
                &ca,
                "--resolve",
                &resolve,
                &url,
            ]),
            curl(&[
                "-sS",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code} %{redirect_url}",
                "-H",
                "Host: a.test",
                &plain,
            ]),
        )
    })
    .await
    .unwrap();
    assert_eq!(code, "200");
    assert_eq!(redirect, format!("308 https://a.test:{}/x", https.port()));
    stop_umbra(child).await;
}

#[test]
fn the_https_compose_example_config_checks() {
    let cfg = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/compose-https/umbra.toml"
    );
    let out = umbra()
        .args(["check", "-c", cfg])
        .env("API_DOMAIN", "api.example.com")
        .env("ACME_EMAIL", "ops@example.com")
        .env("UMBRA_ADMIN_TOKEN", "change-me")
        .output()
        .unwrap();
    succeeded(&out);
}
