//! The HTTPS listener end to end: certificates picked by SNI, HTTP/2 and HTTP/1.1 by ALPN
//! (hyper's client and curl), h2c on the plain listener, certificate files replaced on disk,
//! the redirect to HTTPS, and certificate files that cannot be used.

mod support;

use std::process::Command;
use std::time::Duration;

use support::*;
use umbra_testkit::{assert_eventually, Fixture};

/// Two hostnames, two certificate files: a.test and b.test.
struct Two {
    pki: Pki,
    dir: std::path::PathBuf,
    tls: String,
}

fn two(name: &str, extra: &str) -> Two {
    let pki = Pki::new();
    let dir = tempdir(name);
    let (ac, ak) = pki.write_leaf(&dir, "a", &["a.test"]);
    let (bc, bk) = pki.write_leaf(&dir, "b", &["b.test"]);
    let tls = format!(
        "[tls]\nlisten = \"127.0.0.1:0\"\n{extra}\ncerts = [{{ cert = \"{}\", key = \"{}\" }}, {{ cert = \"{}\", key = \"{}\" }}]\n",
        toml_path(&ac),
        toml_path(&ak),
        toml_path(&bc),
        toml_path(&bk)
    );
    Two { pki, dir, tls }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sni_picks_each_hostnames_certificate_and_unknown_names_get_the_default() {
    let app = Fixture::builder().start().await;
    let t = two("sni", "");
    let umbra = start(&config(&app.url(), &t.tls));
    let roots = [t.pki.ca_der()];
    for host in ["a.test", "b.test"] {
        let mut c = TlsConn::open(umbra.https, host, &roots, &[b"http/1.1"])
            .await
            .unwrap();
        assert_eq!(names_of(&c.cert), [host], "the certificate for {host}");
        let got = c.get(host, "/hello").await.unwrap();
        assert_eq!(got.status, 200, "{}", got.body);
        let echo: serde_json::Value = serde_json::from_str(&got.body).unwrap();
        assert_eq!(
            echo["headers"]["x-forwarded-proto"], "https",
            "the upstream learns the request came over TLS: {echo}"
        );
    }
    // A name no certificate covers gets the first (default) one; the client then refuses it.
    let err = TlsConn::open(umbra.https, "c.test", &roots, &[])
        .await
        .err()
        .expect("the default certificate does not name c.test");
    assert!(
        err.contains("NotValidForName") || err.contains("not valid for name"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alpn_offers_http2_and_http1_and_both_reach_the_upstream() {
    let app = Fixture::builder().start().await;
    let t = two("alpn", "");
    let umbra = start(&config(&app.url(), &t.tls));
    let roots = [t.pki.ca_der()];
    let mut h2 = TlsConn::open(umbra.https, "a.test", &roots, &[b"h2", b"http/1.1"])
        .await
        .unwrap();
    assert_eq!(h2.alpn.as_deref(), Some(&b"h2"[..]));
    let got = h2.get("a.test", "/x").await.unwrap();
    assert_eq!(got.status, 200, "{}", got.body);
    let mut h1 = TlsConn::open(umbra.https, "a.test", &roots, &[b"http/1.1"])
        .await
        .unwrap();
    assert_eq!(h1.alpn.as_deref(), Some(&b"http/1.1"[..]));
    assert_eq!(h1.get("a.test", "/y").await.unwrap().status, 200);
    assert_eq!(
        h1.get("a.test", "/z").await.unwrap().status,
        200,
        "keep-alive"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_1_3_is_preferred_and_tls_1_2_is_served() {
    let app = Fixture::builder().start().await;
    let t = two("versions", "");
    let umbra = start(&config(&app.url(), &t.tls));
    let roots = [t.pki.ca_der()];
    let c = TlsConn::open(umbra.https, "a.test", &roots, &[])
        .await
        .unwrap();
    assert_eq!(c.version, Some(rustls::ProtocolVersion::TLSv1_3));
    let only12 = client_config_versions(&roots, &[b"h2"], &[&rustls::version::TLS12]);
    let mut c = TlsConn::open_with(umbra.https, "b.test", only12)
        .await
        .unwrap();
    assert_eq!(c.version, Some(rustls::ProtocolVersion::TLSv1_2));
    assert_eq!(c.get("b.test", "/").await.unwrap().status, 200);
}

/// `curl -w %{http_version}` against umbra, resolving the name to 127.0.0.1.
fn curl_version(args: &[&str]) -> String {
    run(Command::new("curl")
        .args([
            "-sS",
            "-o",
            "/dev/null",
            "-w",
            "%{http_version} %{http_code}",
        ])
        .args(args))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_speaks_http2_over_tls_and_h2c_on_the_plain_listener() {
    let app = Fixture::builder().start().await;
    let t = two("curl", "");
    let ca = t.dir.join("ca.pem");
    std::fs::write(&ca, t.pki.ca_pem()).unwrap();
    let umbra = start(&config(&app.url(), &t.tls));
    let port = umbra.https.port();
    let resolve = format!("b.test:{port}:127.0.0.1");
    let url = format!("https://b.test:{port}/curl");
    let (ca_s, https, plain) = (
        ca.display().to_string(),
        url.clone(),
        format!("http://{}/h2c", umbra.plain),
    );
    let out = tokio::task::spawn_blocking(move || {
        let tls_args = ["--cacert", ca_s.as_str(), "--resolve", resolve.as_str()];
        let h2 = curl_version(&[&tls_args[..], &["--http2", https.as_str()]].concat());
        let h1 = curl_version(&[&tls_args[..], &["--http1.1", https.as_str()]].concat());
        let h2c = curl_version(&["--http2-prior-knowledge", plain.as_str()]);
        (h2, h1, h2c)
    })
    .await
    .unwrap();
    assert_eq!(out.0, "2 200", "HTTP/2 over TLS by ALPN");
    assert_eq!(out.1, "1.1 200", "HTTP/1.1 over TLS");
    assert_eq!(
        out.2, "2 200",
        "h2c with prior knowledge on the plain listener"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replaced_certificate_file_reaches_new_connections_while_an_open_one_goes_on() {
    let app = Fixture::builder().start().await;
    let t = two("replace", "");
    let umbra = start(&config(&app.url(), &t.tls));
    let roots = [t.pki.ca_der()];
    let mut old = TlsConn::open(umbra.https, "a.test", &roots, &[b"http/1.1"])
        .await
        .unwrap();
    assert_eq!(old.get("a.test", "/before").await.unwrap().status, 200);
    // The same name, a new certificate and key written over the files.
    let (cert, key) = t.pki.leaf(&["a.test", "www.a.test"]);
    std::fs::write(t.dir.join("a.key.new"), key).unwrap();
    std::fs::write(t.dir.join("a.crt.new"), cert).unwrap();
    std::fs::rename(t.dir.join("a.key.new"), t.dir.join("a.key")).unwrap();
    std::fs::rename(t.dir.join("a.crt.new"), t.dir.join("a.crt")).unwrap();
    let https = umbra.https;
    assert_eventually!(
        TlsConn::open(https, "a.test", &roots, &[])
            .await
            .is_ok_and(|c| names_of(&c.cert) == ["a.test", "www.a.test"]),
        timeout = Duration::from_secs(15)
    );
    // The name only the new certificate has is served too.
    let mut www = TlsConn::open(https, "www.a.test", &roots, &[])
        .await
        .unwrap();
    assert_eq!(www.get("www.a.test", "/").await.unwrap().status, 200);
    // The connection opened before the swap still works, on the certificate it began with.
    assert_eq!(names_of(&old.cert), ["a.test"]);
    assert_eq!(old.get("a.test", "/after").await.unwrap().status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_replacement_keeps_the_last_good_certificate_and_says_why() {
    let app = Fixture::builder().start().await;
    let t = two("broken", "");
    let umbra = start(&config(&app.url(), &t.tls));
    let roots = [t.pki.ca_der()];
    std::fs::write(t.dir.join("b.key"), "not a key").unwrap();
    let edge = umbra.edge.as_ref().unwrap();
    assert_eventually!(
        edge.problem().is_some_and(|p| p.contains("b.crt")),
        timeout = Duration::from_secs(15)
    );
    let status = edge.status_json();
    let files = status["files"].as_array().unwrap();
    assert!(
        files[1]["error"].as_str().unwrap().contains("b.key"),
        "{status}"
    );
    assert_eq!(status["state"], "degraded");
    let c = TlsConn::open(umbra.https, "b.test", &roots, &[])
        .await
        .unwrap();
    assert_eq!(names_of(&c.cert), ["b.test"], "the last good certificate");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_plain_listener_redirects_to_https_but_not_acme_challenges() {
    let app = Fixture::builder().start().await;
    let t = two("redirect", "redirect_http = true");
    let umbra = start(&config(&app.url(), &t.tls));
    let port = umbra.https.port();
    let head = umbra_testkit::raw_http(
        umbra.plain,
        b"GET /items/1?sort=asc HTTP/1.1\r\nHost: a.test:8080\r\nConnection: close\r\n\r\n",
    )
    .await;
    let head = String::from_utf8_lossy(&head);
    assert!(head.starts_with("HTTP/1.1 308"), "{head}");
    assert!(
        head.to_ascii_lowercase().contains(&format!(
            "location: https://a.test:{port}/items/1?sort=asc\r\n"
        )),
        "{head}"
    );
    // A challenge umbra does not hold goes on to the routes (the app may answer it).
    let got = umbra_testkit::get(format!(
        "http://{}/.well-known/acme-challenge/abc",
        umbra.plain
    ))
    .await;
    assert_eq!(got.status, 200, "routed to the upstream, not redirected");
}

#[tokio::test]
async fn unusable_certificate_files_are_named_with_the_key_and_the_file() {
    let pki = Pki::new();
    let dir = tempdir("bad");
    let (ac, ak) = pki.write_leaf(&dir, "a", &["a.test"]);
    let (_, bk) = pki.write_leaf(&dir, "b", &["b.test"]);
    let pair = |c: &std::path::Path, k: &std::path::Path| {
        format!(
            "[tls]\ncerts = [{{ cert = \"{}\", key = \"{}\" }}]\n",
            toml_path(c),
            toml_path(k)
        )
    };
    let check = |text: String| {
        let c = umbra_core::Config::parse(&text, "t.toml", &|_| None).unwrap();
        umbra_edge::check(c.tls.as_ref().unwrap()).unwrap_err()
    };
    let mismatched = check(pair(&ac, &bk));
    assert_eq!(mismatched[0].key, "tls.certs[0].key");
    assert!(
        mismatched[0].message.contains(&toml_path(&bk))
            && mismatched[0].message.contains("does not match"),
        "{}",
        mismatched[0]
    );
    let missing = dir.join("missing.crt");
    let unreadable = check(pair(&missing, &ak));
    assert_eq!(unreadable[0].key, "tls.certs[0].cert");
    assert!(
        unreadable[0].message.contains("cannot read")
            && unreadable[0].message.contains("missing.crt"),
        "{}",
        unreadable[0]
    );
    std::fs::write(dir.join("junk.crt"), "hello").unwrap();
    let junk = check(pair(&dir.join("junk.crt"), &ak));
    assert_eq!(junk[0].key, "tls.certs[0].cert");
    assert!(
        junk[0].message.contains("no PEM certificate"),
        "{}",
        junk[0]
    );
}

#[test]
fn tls_config_errors_name_the_key_and_position() {
    let parse = |t: &str| {
        umbra_core::Config::parse(t, "t.toml", &|_| None)
            .unwrap_err()
            .to_string()
    };
    let unknown = parse("[tls]\nlisten = \"127.0.0.1:0\"\nredirect = true\n");
    assert!(
        unknown.starts_with("t.toml:3:1:") && unknown.contains("unknown field `redirect`"),
        "{unknown}"
    );
    let nothing = parse("[tls]\nlisten = \"127.0.0.1:0\"\n");
    assert!(nothing.contains("tls: needs certificates"), "{nothing}");
    let listen = parse("[tls]\nlisten = \"443\"\nacme = { domains = [\"a.test\"] }\n");
    assert!(
        listen.contains("t.toml:2:10: tls.listen: `443` is not a listen address"),
        "{listen}"
    );
    let domain = parse("[tls]\nacme = { domains = [\"*.a.test\"] }\n");
    assert!(
        domain.contains("tls.acme.domains[0]: `*.a.test` has a wildcard"),
        "{domain}"
    );
    let unknown_acme = parse("[tls]\nacme = { domain = [\"a.test\"] }\n");
    assert!(
        unknown_acme.contains("unknown field `domain`"),
        "{unknown_acme}"
    );
}
