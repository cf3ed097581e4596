//! Automatic HTTPS against a real ACME server: Debian's pebble, started on loopback ports
//! with its HTTP-01 validation pointed at umbra's plain listener (no `PEBBLE_VA_ALWAYS_VALID`:
//! every challenge is really fetched from umbra).

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use support::pebble::{available, Pebble};
use support::*;
use umbra_testkit::{assert_eventually, Fixture};

/// A config: `a.test` asked for in `acme.domains`, `b.test` only through a route's `Host`.
fn acme_config(app: &str, pebble: &Pebble, storage: &std::path::Path) -> String {
    format!(
        "[proxy]\nlisten = \"127.0.0.1:0\"\nworkers = 1\n\n[services.api]\nservers = [\"{app}\"]\n\n\
         [[routes]]\nname = \"b\"\nrule = \"Host(`b.test`)\"\nservice = \"api\"\n\n\
         [[routes]]\nname = \"all\"\nrule = \"PathPrefix(`/`)\"\nservice = \"api\"\n\n\
         [tls]\nlisten = \"127.0.0.1:0\"\nstorage = \"{}\"\n\
         acme = {{ email = \"ops@a.test\", directory = \"{}\", ca = \"{}\", domains = [\"a.test\"] }}\n",
        toml_path(storage),
        pebble.directory,
        toml_path(&pebble.listener_ca),
    )
}

/// umbra's plain listener, bound first so pebble can be told its port.
fn plain_listener() -> std::net::TcpListener {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificates_from_pebble_are_served_by_sni_with_their_chain_and_stored_privately() {
    if !available("acme certificates") {
        return;
    }
    let dir = tempdir("acme-issue");
    let app = Fixture::builder().start().await;
    let plain = plain_listener();
    let pebble = Pebble::start(&dir, plain.local_addr().unwrap().port(), None).await;
    let storage = dir.join("storage");
    let umbra = start_on(&acme_config(&app.url(), &pebble, &storage), Some(plain));
    let edge = umbra.edge.as_ref().unwrap();
    assert_eventually!(
        edge.problem().is_none(),
        timeout = Duration::from_secs(60),
        "certificates issued: {}",
        edge.status_json()
    );
    let root = [pebble.issuing_root().await];
    for host in ["a.test", "b.test"] {
        // Verified against pebble's root: umbra sends the leaf and the intermediate.
        let mut c = TlsConn::open(umbra.https, host, &root, &[b"h2"])
            .await
            .unwrap_or_else(|e| panic!("{host}: {e}"));
        assert_eq!(names_of(&c.cert), [host]);
        assert_eq!(c.get(host, "/").await.unwrap().status, 200);
    }
    let status = edge.status_json();
    assert_eq!(
        status["acme"]["certificates"]["a.test"]["state"], "valid",
        "{status}"
    );
    assert_eq!(
        status["acme"]["certificates"]["b.test"]["state"], "valid",
        "{status}"
    );
    use std::os::unix::fs::PermissionsExt;
    for f in [
        "account.json",
        "certs/a.test.key",
        "certs/a.test.crt",
        "certs/b.test.key",
    ] {
        let mode = std::fs::metadata(storage.join(f))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{f}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_lived_certificate_is_renewed_without_a_failed_request() {
    if !available("acme renewal") {
        return;
    }
    let dir = tempdir("acme-renew");
    let app = Fixture::builder().start().await;
    let plain = plain_listener();
    // 30 s certificates: renewed at two thirds, 20 s after issuance.
    let pebble = Pebble::start(&dir, plain.local_addr().unwrap().port(), Some(30)).await;
    let umbra = start_on(
        &acme_config(&app.url(), &pebble, &dir.join("s")),
        Some(plain),
    );
    let edge = umbra.edge.as_ref().unwrap();
    assert_eventually!(edge.problem().is_none(), timeout = Duration::from_secs(60));
    let root = [pebble.issuing_root().await];
    let first = TlsConn::open(umbra.https, "a.test", &root, &[])
        .await
        .unwrap()
        .cert;
    // A client loop: a new connection and a request every 50 ms, each must succeed.
    let (https, failures, done) = (
        umbra.https,
        Arc::new(AtomicUsize::new(0)),
        Arc::new(AtomicUsize::new(0)),
    );
    let (f, d, r) = (failures.clone(), done.clone(), root.clone());
    let client = tokio::spawn(async move {
        loop {
            let ok = match TlsConn::open(https, "a.test", &r, &[]).await {
                Ok(mut c) => c
                    .get("a.test", "/loop")
                    .await
                    .is_ok_and(|g| g.status == 200),
                Err(_) => false,
            };
            if !ok {
                f.fetch_add(1, Ordering::Relaxed);
            }
            d.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
    assert_eventually!(
        TlsConn::open(https, "a.test", &root, &[])
            .await
            .is_ok_and(|c| c.cert != first),
        timeout = Duration::from_secs(90),
        "a renewed certificate: {}",
        edge.status_json()
    );
    client.abort();
    assert!(done.load(Ordering::Relaxed) > 10, "the client loop ran");
    assert_eq!(
        failures.load(Ordering::Relaxed),
        0,
        "no request failed across the renewal"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_acme_directory_that_is_down_leaves_the_plain_listener_serving_and_says_why() {
    let dir = tempdir("acme-down");
    let app = Fixture::builder().start().await;
    let down = umbra_testkit::free_addr();
    let ca = dir.join("ca.pem");
    std::fs::write(&ca, Pki::new().ca_pem()).unwrap();
    let text = format!(
        "[proxy]\nlisten = \"127.0.0.1:0\"\nworkers = 1\n\n[services.api]\nservers = [\"{}\"]\n\n\
         [[routes]]\nname = \"all\"\nrule = \"PathPrefix(`/`)\"\nservice = \"api\"\n\n\
         [tls]\nlisten = \"127.0.0.1:0\"\nstorage = \"{}\"\n\
         acme = {{ directory = \"https://{down}/dir\", ca = \"{}\", domains = [\"a.test\"] }}\n",
        app.url(),
        toml_path(&dir.join("s")),
        toml_path(&ca),
    );
    let umbra = start(&text);
    let edge = umbra.edge.as_ref().unwrap();
    // The account cannot be made: the status names the directory and the cause.
    assert_eventually!(
        edge.status_json()["acme"]["error"].as_str().is_some(),
        timeout = Duration::from_secs(20),
        "{}",
        edge.status_json()
    );
    let status = edge.status_json();
    assert_eq!(status["state"], "degraded");
    let problem = edge.problem().unwrap();
    assert!(
        problem.contains(&format!("ACME account at https://{down}/dir"))
            && problem.contains("Connection refused"),
        "{problem}"
    );
    // No certificate yet: a handshake ends with an alert (umbra does not panic or hang).
    let err = TlsConn::open(umbra.https, "a.test", &[Pki::new().ca_der()], &[])
        .await
        .err()
        .expect("no certificate to serve");
    assert!(err.contains("alert"), "{err}");
    let got = umbra_testkit::get(format!("http://{}/still", umbra.plain)).await;
    assert_eq!(got.status, 200, "the plain listener keeps serving");
}
