//! Debian's `pebble` (a small ACME server) and `pebble-challtestsrv` (its DNS) on loopback
//! ports, started per test with a config of its own and killed on drop.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;

use super::Pki;

/// Running pebble: its directory URL, the root its listener's certificate chains to (for
/// `acme.ca`) and its management address (for the root it issues under).
pub struct Pebble {
    pub directory: String,
    pub listener_ca: PathBuf,
    management: SocketAddr,
    children: Vec<Child>,
}

impl Drop for Pebble {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Whether pebble can run here. Without it, a test skips loudly, except under `CI=true`,
/// where it fails (CI installs pebble in `.ci/run`).
pub fn available(test: &str) -> bool {
    let found = Command::new("pebble")
        .arg("-help")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    if !found {
        umbra_testkit::skip_unless_ci(&format!(
            "{test}: pebble is not installed (apt-get install pebble)"
        ));
    }
    found
}

/// A port that was free a moment ago.
fn free_port() -> u16 {
    umbra_testkit::free_addr().port()
}

impl Pebble {
    /// Starts pebble validating HTTP-01 on `http_port` (umbra's plain listener) with names
    /// resolved to 127.0.0.1 by pebble-challtestsrv; certificates live `validity` seconds
    /// (pebble's default, five years, when `None`).
    pub async fn start(dir: &Path, http_port: u16, validity: Option<u64>) -> Pebble {
        let pki = Pki::new();
        let (cert, key) = pki.write_leaf(dir, "pebble", &["localhost", "127.0.0.1"]);
        let listener_ca = dir.join("pebble-listener-ca.pem");
        std::fs::write(&listener_ca, pki.ca_pem()).unwrap();
        let (listen, management) = (free_port(), free_port());
        let dns = free_port();
        let mut config = serde_json::json!({"pebble": {
            "listenAddress": format!("127.0.0.1:{listen}"),
            "managementListenAddress": format!("127.0.0.1:{management}"),
            "certificate": cert, "privateKey": key,
            "httpPort": http_port, "tlsPort": free_port(),
            "ocspResponderURL": "", "externalAccountBindingRequired": false,
        }});
        if let Some(v) = validity {
            config["pebble"]["certificateValidityPeriod"] = v.into();
        }
        let config_path = dir.join("pebble.json");
        std::fs::write(&config_path, config.to_string()).unwrap();
        let log = |name: &str| Stdio::from(std::fs::File::create(dir.join(name)).unwrap());
        // Every name resolves to 127.0.0.1 (no AAAA: umbra listens on IPv4 loopback).
        let dns_server = Command::new("pebble-challtestsrv")
            .args([
                "-dns01",
                &format!("127.0.0.1:{dns}"),
                "-http01",
                "",
                "-https01",
                "",
            ])
            .args([
                "-tlsalpn01",
                "",
                "-defaultIPv6",
                "",
                "-defaultIPv4",
                "127.0.0.1",
            ])
            .args(["-management", &format!("127.0.0.1:{}", free_port())])
            .stdout(log("challtestsrv.log"))
            .stderr(log("challtestsrv.err"))
            .spawn()
            .expect("pebble-challtestsrv");
        let pebble = Command::new("pebble")
            .arg("-config")
            .arg(&config_path)
            .args(["-dnsserver", &format!("127.0.0.1:{dns}")])
            // No random 0-15 s pause before each validation; no nonces rejected on purpose
            // (instant-acme retries those, but they only slow the test down).
            .env("PEBBLE_VA_NOSLEEP", "1")
            .env("PEBBLE_WFE_NONCEREJECT", "0")
            .stdout(log("pebble.log"))
            .stderr(log("pebble.err"))
            .spawn()
            .expect("pebble");
        let p = Pebble {
            directory: format!("https://127.0.0.1:{listen}/dir"),
            listener_ca,
            management: format!("127.0.0.1:{management}").parse().unwrap(),
            children: vec![dns_server, pebble],
        };
        let addr: SocketAddr = format!("127.0.0.1:{listen}").parse().unwrap();
        umbra_testkit::assert_eventually!(
            tokio::net::TcpStream::connect(addr).await.is_ok(),
            timeout = Duration::from_secs(20)
        );
        p
    }

    /// The root pebble issues certificates under (made anew at each start).
    pub async fn issuing_root(&self) -> CertificateDer<'static> {
        let url = format!("https://{}/roots/0", self.management);
        let ca = self.listener_ca.clone();
        let pem = tokio::task::spawn_blocking(move || {
            super::run(
                Command::new("curl")
                    .args(["-sS", "--cacert"])
                    .arg(&ca)
                    .arg(&url),
            )
        })
        .await
        .unwrap();
        CertificateDer::from_pem_slice(pem.as_bytes()).expect("pebble's root")
    }
}
