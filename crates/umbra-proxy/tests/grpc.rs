//! gRPC through umbra with real grpcio servers and client (`grpc_fixture.py`): the client
//! speaks HTTP/2 with prior knowledge to umbra's plain listener, umbra to `h2c://` servers;
//! the status and metadata in trailers come back, and each call is shadowed to a second gRPC
//! server and compared as binary, trailers (`grpc-status`) with the fields. Without grpcio
//! the test skips loudly; under `CI=true` it fails instead.

use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::process::{Child, Command};
use umbra_core::Config;
use umbra_diff::{Comparison, DiffKind};

mod support;

const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/grpc_fixture.py");

/// True when python3 has grpcio; else a loud skip, or a failure under `CI=true`.
fn grpcio_present() -> bool {
    let ok = std::process::Command::new("python3")
        .args(["-c", "import grpc"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        umbra_testkit::skip_unless_ci("python3 has no grpcio (pip install grpcio): gRPC");
    }
    ok
}

/// A grpcio server answering as `tag`, and its port; it stops when dropped.
async fn grpc_server(tag: &str) -> (Child, u16) {
    let mut child = Command::new("python3")
        .args([FIXTURE, "serve", tag])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start python3");
    let stdout = child.stdout.take().unwrap();
    let mut line = String::new();
    tokio::time::timeout(
        Duration::from_secs(20),
        BufReader::new(stdout).read_line(&mut line),
    )
    .await
    .expect("the gRPC server printed its port")
    .unwrap();
    let port = line.trim().parse().expect("a port");
    (child, port)
}

/// One unary call by grpcio's client to `target`, as the fixture reports it.
async fn call(target: &str, method: &str, payload: &[u8]) -> Value {
    let out = Command::new("python3")
        .args([FIXTURE, "call", target, method, &hex(payload)])
        .output()
        .await
        .expect("run the gRPC client");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("the client's JSON")
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

async fn next_comparison(u: &mut support::Umbra) -> Comparison {
    tokio::time::timeout(Duration::from_secs(10), u.comparisons.recv())
        .await
        .expect("a comparison arrives")
        .expect("the sink is open")
}

#[tokio::test]
async fn grpc_unary_calls_pass_trailers_and_are_shadowed_as_binary() {
    if !grpcio_present() {
        return;
    }
    let (_a, port_a) = grpc_server("a").await;
    let (_b, port_b) = grpc_server("b").await;
    let text = format!(
        "[proxy]\nlisten = \"127.0.0.1:0\"\ntimeout = \"10s\"\n[log]\naccess = false\n\
         [services.grpc-a]\nservers = [\"h2c://127.0.0.1:{port_a}\"]\n\
         [services.grpc-b]\nservers = [\"h2c://127.0.0.1:{port_b}\"]\n\
         [[routes]]\nname = \"grpc\"\nrule = \"PathPrefix(`/umbra.Echo/`)\"\nservice = \"grpc-a\"\n\
         shadow = {{ service = \"grpc-b\", percent = 100, methods = [\"POST\"], timeout = \"5s\" }}\n"
    );
    let config = Config::parse(&text, "test.toml", &|_| None).unwrap_or_else(|e| panic!("{e}"));
    let mut u = support::start(config);
    let target = u.addr.to_string();

    // An OK call: the reply, and the trailers' metadata, from the primary.
    let ok = call(&target, "Say", b"same").await;
    assert_eq!(ok["code"], "OK", "{ok}");
    assert_eq!(ok["reply_hex"], hex(b"\xff\xfesame"), "{ok}");
    assert_eq!(ok["trailers"]["x-served-by"], "a", "{ok}");
    let c = next_comparison(&mut u).await;
    assert_eq!(c.route, "grpc");
    assert_eq!(
        c.request.body, b"\0\0\0\0\x04same",
        "the request's gRPC frame"
    );
    let shadow = c.shadow.as_ref().expect("the shadow answered");
    assert_eq!(shadow.status, 200);
    assert_eq!(shadow.body, c.primary.body, "alike answers");
    // The status that ended each answer (in trailers) is compared with the fields.
    assert_eq!(c.primary.header("grpc-status"), Some("0"), "{c:?}");
    assert_eq!(shadow.header("grpc-status"), Some("0"), "{c:?}");
    assert!(!c.differences.iter().any(|d| d.path == "body"), "{c:?}");

    // Answers that differ are told apart by digest: no protobuf decoding.
    let tagged = call(&target, "Say", b"tag").await;
    assert_eq!(tagged["reply_hex"], hex(b"\xff\xfetag:a"), "{tagged}");
    let c = next_comparison(&mut u).await;
    let body = c.differences.iter().find(|d| d.path == "body");
    let body = body.unwrap_or_else(|| panic!("a body difference: {c:?}"));
    assert_eq!(body.kind, DiffKind::Text);
    for side in [&body.primary, &body.candidate] {
        let v = side.as_ref().and_then(Value::as_str).unwrap_or_default();
        assert!(v.starts_with("sha256:"), "binary, as a digest: {v}");
    }

    // A failed call: its status and message travel in the trailers, through umbra.
    let failed = call(&target, "Fail", b"x").await;
    assert_eq!(failed["code"], "NOT_FOUND", "{failed}");
    assert_eq!(failed["details"], "no such thing: a", "{failed}");
    // Its comparison holds both statuses: they agree, the messages do not.
    let c = next_comparison(&mut u).await;
    let shadow = c.shadow.as_ref().expect("the shadow answered");
    assert_eq!(c.primary.header("grpc-status"), Some("5"), "{c:?}");
    assert_eq!(shadow.header("grpc-status"), Some("5"), "{c:?}");
    let message = c
        .differences
        .iter()
        .find(|d| d.path == "header:grpc-message");
    assert!(message.is_some(), "{c:?}");
}
