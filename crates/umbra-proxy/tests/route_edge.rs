//! A route's edge settings through real sockets, on both client lanes (the fast lane and
//! hyper's server): header fields set and removed, rate limits, `Location` rewritten under a
//! stripped prefix. Each case writes raw bytes and reads exactly what the client and the
//! upstream got.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

mod support;

use support::raw::{body, field, status};
use support::Umbra;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use umbra_core::Config;

/// An upstream that records every request's raw head and answers each with `reply`, then
/// closes the connection.
struct Upstream {
    addr: SocketAddr,
    got: Arc<Mutex<Vec<String>>>,
}

impl Upstream {
    async fn start(reply: &'static [u8]) -> Upstream {
        Upstream::answering(move |_| reply.to_vec()).await
    }

    /// Answers each request with `reply(its own address)`.
    async fn answering(reply: impl Fn(SocketAddr) -> Vec<u8> + Send + Sync + 'static) -> Upstream {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let got = Arc::new(Mutex::new(Vec::new()));
        let seen = got.clone();
        let reply = Arc::new(reply);
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                let seen = seen.clone();
                let reply = reply(addr);
                tokio::spawn(async move {
                    let head = read_head(&mut s).await;
                    seen.lock().unwrap().push(head);
                    let _ = s.write_all(&reply).await;
                    let _ = s.shutdown().await;
                });
            }
        });
        Upstream { addr, got }
    }

    fn requests(&self) -> Vec<String> {
        self.got.lock().unwrap().clone()
    }
}

/// A request head (the tests send no bodies).
async fn read_head(s: &mut TcpStream) -> String {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        match tokio::time::timeout(Duration::from_secs(2), s.read(&mut chunk)).await {
            Ok(Ok(n)) if n > 0 => buf.extend_from_slice(&chunk[..n]),
            _ => break,
        }
    }
    String::from_utf8_lossy(&buf).into_owned()
}

/// umbra on one lane: route `a` (Host `a.test`) to `servers`, with extra proxy and route keys
/// and extra config sections.
fn umbra(fast_lane: bool, servers: &str, proxy_keys: &str, route_keys: &str, extra: &str) -> Umbra {
    let text = format!(
        "[proxy]\nlisten = \"127.0.0.1:0\"\ntimeout = \"2s\"\nfast_lane = {fast_lane}\n{proxy_keys}\n\
         [log]\naccess = false\n\
         [services.app]\nservers = [{servers}]\n\
         {extra}\n\
         [[routes]]\nname = \"a\"\nrule = \"Host(`a.test`)\"\nservice = \"app\"\n{route_keys}\n",
    );
    let config = Config::parse(&text, "test.toml", &|_| None).unwrap_or_else(|e| panic!("{e}"));
    support::start(config)
}

fn server(up: &Upstream) -> String {
    format!("\"http://{}\"", up.addr)
}

/// What the client got: the whole bytes until umbra closed or 2 s of silence.
async fn exchange(addr: SocketAddr, request: &[u8]) -> String {
    let s = TcpStream::connect(addr).await.unwrap();
    talk(s, request).await
}

/// The same from a client socket bound to `from` (a loopback address: 127.0.0.2, ...).
async fn exchange_from(from: &str, addr: SocketAddr, request: &[u8]) -> String {
    let socket = TcpSocket::new_v4().unwrap();
    socket
        .bind(format!("{from}:0").parse().unwrap())
        .unwrap_or_else(|e| panic!("bind {from}: {e}"));
    let s = socket.connect(addr).await.unwrap();
    talk(s, request).await
}

/// Writes `request` (its head's end gains `Connection: close`, so the answer ends with the
/// connection) and reads the answer.
async fn talk(mut s: TcpStream, request: &[u8]) -> String {
    let head_end = request.len() - 2;
    s.write_all(&request[..head_end]).await.unwrap();
    s.write_all(b"Connection: close\r\n\r\n").await.unwrap();
    let mut out = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        match tokio::time::timeout(Duration::from_secs(2), s.read(&mut chunk)).await {
            Ok(Ok(n)) if n > 0 => out.extend_from_slice(&chunk[..n]),
            _ => return String::from_utf8_lossy(&out).into_owned(),
        }
    }
}

const OK: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nServer: app/1.0\r\n\
    X-Powered-By: php\r\nX-Frame-Options: ALLOWALL\r\nConnection: close\r\n\r\nok";

const SECURITY: &str =
    "headers = { request = { set = { \"X-Env\" = \"prod\" }, remove = [\"Cookie\"] }, \
    response = { set = { \"X-Frame-Options\" = \"DENY\", \"X-Content-Type-Options\" = \"nosniff\", \
    \"Strict-Transport-Security\" = \"max-age=31536000\" }, remove = [\"X-Powered-By\"] } }";

#[tokio::test]
async fn route_headers_are_set_and_removed_on_both_sides() {
    for lane in [true, false] {
        let up = Upstream::start(OK).await;
        let shadow = Upstream::start(OK).await;
        let extra = format!("[services.candidate]\nservers = [{}]\n", server(&shadow));
        let keys = format!("{SECURITY}\nshadow = {{ service = \"candidate\" }}");
        let u = umbra(lane, &server(&up), "", &keys, &extra);
        let r = exchange(
            u.addr,
            b"GET /x HTTP/1.1\r\nHost: a.test\r\nCookie: s=1\r\nX-Env: dev\r\nX-Keep: 1\r\n\r\n",
        )
        .await;
        assert_eq!(status(&r), "200", "lane {lane}: {r}");
        assert_eq!(field(&r, "x-frame-options"), ["DENY"], "replaced: {r}");
        assert_eq!(field(&r, "x-content-type-options"), ["nosniff"], "{r}");
        assert_eq!(field(&r, "strict-transport-security"), ["max-age=31536000"]);
        assert!(field(&r, "x-powered-by").is_empty(), "removed: {r}");
        assert_eq!(field(&r, "server"), ["app/1.0"], "others kept: {r}");
        assert_eq!(field(&r, "content-length"), ["2"], "{r}");
        assert_eq!(body(&r), "ok");

        let got = &up.requests()[0];
        assert_eq!(field(got, "x-env"), ["prod"], "set replaces: {got}");
        assert!(field(got, "cookie").is_empty(), "removed: {got}");
        assert_eq!(field(got, "x-keep"), ["1"], "{got}");
        // The shadow gets the same request.
        let mirrored = wait_for(|| shadow.requests().first().cloned()).await;
        assert_eq!(field(&mirrored, "x-env"), ["prod"], "{mirrored}");
        assert!(field(&mirrored, "cookie").is_empty(), "{mirrored}");
    }
}

#[tokio::test]
async fn umbras_own_error_replies_get_the_response_fields() {
    let closed = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let gone = closed.local_addr().unwrap();
    drop(closed);
    for lane in [true, false] {
        let u = umbra(lane, &format!("\"http://{gone}\""), "", SECURITY, "");
        let r = exchange(u.addr, b"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n").await;
        assert_eq!(status(&r), "502", "lane {lane}: {r}");
        assert!(body(&r).contains("upstream_unavailable"), "{r}");
        assert_eq!(field(&r, "x-frame-options"), ["DENY"], "{r}");
        assert_eq!(field(&r, "content-type"), ["application/json"], "{r}");
        // No route, no route's fields.
        let r = exchange(u.addr, b"GET / HTTP/1.1\r\nHost: b.test\r\n\r\n").await;
        assert_eq!(status(&r), "404", "{r}");
        assert!(field(&r, "x-frame-options").is_empty(), "{r}");
    }
}

#[tokio::test]
async fn a_route_without_headers_passes_fields_as_they_are() {
    for lane in [true, false] {
        let up = Upstream::start(OK).await;
        let u = umbra(lane, &server(&up), "", "", "");
        let r = exchange(
            u.addr,
            b"GET / HTTP/1.1\r\nHost: a.test\r\nCookie: s=1\r\n\r\n",
        )
        .await;
        assert_eq!(
            field(&r, "x-frame-options"),
            ["ALLOWALL"],
            "lane {lane}: {r}"
        );
        assert_eq!(field(&r, "x-powered-by"), ["php"], "{r}");
        assert_eq!(field(&up.requests()[0], "cookie"), ["s=1"]);
    }
}

/// One token per 100 s: a drained bucket stays drained for the whole test.
const LIMIT: &str = "rate_limit = { rps = 0.01, burst = 2 }";

fn limited_total(u: &Umbra) -> u64 {
    let text = u.rt.metrics.encode();
    text.lines()
        .find_map(|l| l.strip_prefix(r#"umbra_rate_limited_total{route="a"} "#))
        .map_or(0, |v| v.trim().parse().unwrap())
}

#[tokio::test]
async fn over_the_limit_is_429_with_retry_after_and_counted() {
    for lane in [true, false] {
        let up = Upstream::start(OK).await;
        let keys = format!("{LIMIT}\n{SECURITY}");
        let u = umbra(lane, &server(&up), "", &keys, "");
        let get = b"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n";
        for i in 0..2 {
            let r = exchange(u.addr, get).await;
            assert_eq!(
                status(&r),
                "200",
                "lane {lane}: request {i} within the burst: {r}"
            );
        }
        let r = exchange(u.addr, get).await;
        assert_eq!(status(&r), "429", "lane {lane}: {r}");
        assert!(body(&r).contains("\"error\":\"rate_limited\""), "{r}");
        let retry: u64 = field(&r, "retry-after")[0].parse().expect("whole seconds");
        assert!((1..=100).contains(&retry), "{r}");
        assert_eq!(
            field(&r, "x-frame-options"),
            ["DENY"],
            "route fields on the 429: {r}"
        );
        assert_eq!(
            up.requests().len(),
            2,
            "the refused request is not forwarded"
        );
        assert_eq!(limited_total(&u), 1);
    }
}

#[tokio::test]
async fn clients_have_their_own_buckets_and_forwarded_for_counts_only_from_trusted_proxies() {
    let get =
        |xff: &str| format!("GET / HTTP/1.1\r\nHost: a.test\r\nX-Forwarded-For: {xff}\r\n\r\n");
    for lane in [true, false] {
        let up = Upstream::start(OK).await;
        let one = "rate_limit = { rps = 0.01, burst = 1 }";
        let u = umbra(lane, &server(&up), "", one, "");
        // Untrusted peer: its X-Forwarded-For is not the key, the peer is.
        let r = exchange_from("127.0.0.2", u.addr, get("1.1.1.1").as_bytes()).await;
        assert_eq!(status(&r), "200", "lane {lane}: {r}");
        let r = exchange_from("127.0.0.2", u.addr, get("2.2.2.2").as_bytes()).await;
        assert_eq!(
            status(&r),
            "429",
            "lane {lane}: an untrusted XFF is ignored: {r}"
        );
        let r = exchange_from("127.0.0.3", u.addr, get("1.1.1.1").as_bytes()).await;
        assert_eq!(status(&r), "200", "lane {lane}: another client IP: {r}");

        // A trusted proxy's X-Forwarded-For names the client (the nearest untrusted entry).
        let up = Upstream::start(OK).await;
        let u = umbra(
            lane,
            &server(&up),
            "trusted_proxies = [\"127.0.0.2\", \"10.0.0.0/8\"]",
            one,
            "",
        );
        let r = exchange_from("127.0.0.2", u.addr, get("1.1.1.1").as_bytes()).await;
        assert_eq!(status(&r), "200", "lane {lane}: {r}");
        let r = exchange_from("127.0.0.2", u.addr, get("2.2.2.2, 10.0.0.7").as_bytes()).await;
        assert_eq!(
            status(&r),
            "200",
            "lane {lane}: another client behind the proxies: {r}"
        );
        let r = exchange_from("127.0.0.2", u.addr, get("6.6.6.6, 1.1.1.1").as_bytes()).await;
        assert_eq!(
            status(&r),
            "429",
            "lane {lane}: 1.1.1.1 again; the left entry is not believed: {r}"
        );
        let r = exchange_from("127.0.0.3", u.addr, get("1.1.1.1").as_bytes()).await;
        assert_eq!(
            status(&r),
            "200",
            "lane {lane}: 127.0.0.3 is no trusted proxy: {r}"
        );
    }
}

#[tokio::test]
async fn a_header_key_gives_each_value_its_own_bucket() {
    let get = |key: &str| format!("GET / HTTP/1.1\r\nHost: a.test\r\nX-Api-Key: {key}\r\n\r\n");
    for lane in [true, false] {
        let up = Upstream::start(OK).await;
        let keys = "rate_limit = { rps = 0.01, burst = 1, key = \"header:X-Api-Key\" }";
        let u = umbra(lane, &server(&up), "", keys, "");
        let r = exchange(u.addr, get("k1").as_bytes()).await;
        assert_eq!(status(&r), "200", "lane {lane}: {r}");
        let r = exchange(u.addr, get("k1").as_bytes()).await;
        assert_eq!(status(&r), "429", "lane {lane}: {r}");
        let r = exchange(u.addr, get("k2").as_bytes()).await;
        assert_eq!(
            status(&r),
            "200",
            "lane {lane}: same client IP, another key: {r}"
        );
        assert_eq!(limited_total(&u), 1);
    }
}

/// An upstream that redirects to `location` (`{up}` is its own address).
async fn redirecting(location: &'static str) -> Upstream {
    Upstream::answering(move |me| {
        let location = location.replace("{up}", &me.to_string());
        format!(
            "HTTP/1.1 301 Moved Permanently\r\nLocation: {location}\r\nContent-Length: 0\r\n\r\n"
        )
        .into_bytes()
    })
    .await
}

#[tokio::test]
async fn redirects_of_a_stripped_route_go_back_under_the_prefix() {
    let cases = [
        ("/items/", "/trace/items/"),
        ("http://{up}/items/?q=1", "/trace/items/?q=1"),
        ("http://a.test/items/", "http://a.test/trace/items/"),
        ("/trace/items/", "/trace/items/"),
        ("items/", "items/"),
        (
            "https://login.example.com/authorize",
            "https://login.example.com/authorize",
        ),
    ];
    for lane in [true, false] {
        for (location, expected) in cases {
            let up = redirecting(location).await;
            let u = umbra(lane, &server(&up), "", "strip_prefix = \"/trace\"", "");
            let r = exchange(u.addr, b"GET /trace/items HTTP/1.1\r\nHost: a.test\r\n\r\n").await;
            assert_eq!(status(&r), "301", "lane {lane}: {r}");
            assert_eq!(
                field(&r, "location"),
                [expected],
                "lane {lane}: {location}: {r}"
            );
            assert!(
                up.requests()[0].starts_with("GET /items HTTP/1.1"),
                "{:?}",
                up.requests()
            );
        }
        // Without the prefix in the request (nothing stripped) or on a route that strips
        // nothing, the app's redirect is its own.
        let up = redirecting("/items/").await;
        let u = umbra(lane, &server(&up), "", "strip_prefix = \"/trace\"", "");
        let r = exchange(u.addr, b"GET /other HTTP/1.1\r\nHost: a.test\r\n\r\n").await;
        assert_eq!(field(&r, "location"), ["/items/"], "lane {lane}: {r}");
        let u = umbra(lane, &server(&up), "", "", "");
        let r = exchange(u.addr, b"GET /trace/items HTTP/1.1\r\nHost: a.test\r\n\r\n").await;
        assert_eq!(field(&r, "location"), ["/items/"], "lane {lane}: {r}");
    }
}

/// A FastAPI app (from PyPI) on an ephemeral port, stopped on drop.
struct PythonApp {
    child: std::process::Child,
    addr: SocketAddr,
}

impl Drop for PythonApp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The app: `/items/` only, so `/items` gets FastAPI's trailing-slash redirect (307 to an
/// absolute URL built from the request's `Host`). It binds port 0 itself and prints the port.
const FASTAPI_APP: &str = r#"
import socket, uvicorn
from fastapi import FastAPI
app = FastAPI()
@app.get("/items/")
def items():
    return {"items": []}
sock = socket.socket()
sock.bind(("127.0.0.1", 0))
sock.listen(128)
print(sock.getsockname()[1], flush=True)
uvicorn.Server(uvicorn.Config(app, log_level="warning")).run(sockets=[sock])
"#;

/// Starts the FastAPI app, or `None` (said loudly) when python3, fastapi or uvicorn is
/// missing; under `CI=true` a missing one fails the test.
fn fastapi() -> Option<PythonApp> {
    use std::io::BufRead;
    use std::process::{Command, Stdio};
    let has = Command::new("python3")
        .args(["-c", "import fastapi, uvicorn"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !has {
        umbra_testkit::skip_unless_ci(
            "python3 with fastapi and uvicorn is not installed (pip install fastapi uvicorn)",
        );
        return None;
    }
    let mut child = Command::new("python3")
        .args(["-c", FASTAPI_APP])
        .stdout(Stdio::piped())
        .spawn()
        .expect("start python3");
    let mut line = String::new();
    let stdout = child.stdout.take().expect("stdout");
    std::io::BufReader::new(stdout)
        .read_line(&mut line)
        .expect("the app's port");
    let port: u16 = line
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("port line {line:?}"));
    Some(PythonApp {
        child,
        addr: SocketAddr::from(([127, 0, 0, 1], port)),
    })
}

#[tokio::test]
async fn fastapis_trailing_slash_redirect_stays_under_the_prefix() {
    let Some(app) = fastapi() else { return };
    for lane in [true, false] {
        let servers = format!("\"http://{}\"", app.addr);
        let u = umbra(lane, &servers, "", "strip_prefix = \"/trace\"", "");
        let r = exchange(u.addr, b"GET /trace/items HTTP/1.1\r\nHost: a.test\r\n\r\n").await;
        assert_eq!(status(&r), "307", "lane {lane}: {r}");
        assert_eq!(
            field(&r, "location"),
            ["http://a.test/trace/items/"],
            "lane {lane}: {r}"
        );
        // Following it lands on the app's page.
        let r = exchange(
            u.addr,
            b"GET /trace/items/ HTTP/1.1\r\nHost: a.test\r\n\r\n",
        )
        .await;
        assert_eq!(status(&r), "200", "lane {lane}: {r}");
        assert!(body(&r).contains("{\"items\":[]}"), "{r}");
    }
}

#[tokio::test]
async fn the_access_log_goes_to_a_file_rotated_by_size() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("access.log");
    let up = Upstream::start(OK).await;
    let text = format!(
        "[proxy]\nlisten = \"127.0.0.1:0\"\n\
         [log]\nfile = \"{}\"\nmax_size = \"1KiB\"\nkeep = 2\n\
         [services.app]\nservers = [{}]\n\
         [[routes]]\nname = \"a\"\nrule = \"Host(`a.test`)\"\nservice = \"app\"\n",
        path.display(),
        server(&up)
    );
    let config = Config::parse(&text, "test.toml", &|_| None).unwrap_or_else(|e| panic!("{e}"));
    let u = support::start(config);
    for i in 0..40 {
        let req = format!("GET /r{i} HTTP/1.1\r\nHost: a.test\r\n\r\n");
        assert_eq!(status(&exchange(u.addr, req.as_bytes()).await), "200");
    }
    let numbered = |n: u32| dir.path().join(format!("access.log.{n}"));
    // The last request's line is written (the writer flushes when its queue runs dry).
    let current = wait_for(|| {
        let text = std::fs::read_to_string(&path).ok()?;
        text.contains("\"/r39\"").then_some(text)
    })
    .await;
    assert!(numbered(2).exists(), "rotated twice at least");
    assert!(!numbered(3).exists(), "keep = 2");
    let mut seen = Vec::new();
    for text in [
        std::fs::read_to_string(numbered(2)).unwrap(),
        std::fs::read_to_string(numbered(1)).unwrap(),
        current,
    ] {
        assert!(text.len() <= 1024, "rotated at 1KiB: {} bytes", text.len());
        for line in text.lines() {
            let v: serde_json::Value =
                serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
            assert_eq!(v["status"], 200, "{line}");
            assert_eq!(v["route"], "a", "{line}");
            seen.push(v["path"].as_str().unwrap().to_string());
        }
    }
    // The newest lines, in order, none lost inside the kept files.
    let n = seen.len();
    let expected: Vec<String> = (40 - n..40).map(|i| format!("/r{i}")).collect();
    assert_eq!(seen, expected);
    assert!(n >= 6, "three files of lines: {n}");
}

/// Polls `f` until it gives a value (at most 5 s).
async fn wait_for<T>(mut f: impl FnMut() -> Option<T>) -> T {
    for _ in 0..500 {
        if let Some(v) = f() {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("condition not met within 5 s");
}
