//! The data plane through real sockets: umbra in-process on an ephemeral port in front of
//! fixture upstreams.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use serde_json::json;
use umbra_core::Config;

mod support;

use support::{start, start_workers};
use umbra_testkit::{assert_eventually, get, raw_http, send, Fixture, KeepAlive};

fn config(body: &str) -> Config {
    let text = format!("[proxy]\nlisten = \"127.0.0.1:0\"\ntimeout = \"1s\"\nmax_body = \"1KiB\"\ngrace = \"2s\"\n[log]\naccess = false\n{body}");
    Config::parse(&text, "test.toml", &|_| None).unwrap_or_else(|e| panic!("{e}"))
}

fn service(name: &str, fx: &[&Fixture]) -> String {
    let servers: Vec<String> = fx.iter().map(|f| format!("\"{}\"", f.url())).collect();
    format!("[services.{name}]\nservers = [{}]\n", servers.join(", "))
}

#[tokio::test]
async fn forwards_with_headers_and_strip_prefix() {
    let fx = Fixture::builder().name("v1").start().await;
    let u = start(config(&format!(
        "{}[[routes]]\nname = \"trace\"\nrule = \"PathPrefix(`/trace`)\"\nservice = \"api\"\nstrip_prefix = \"/trace\"\n",
        service("api", &[&fx])
    )));
    let req = http::Request::get(format!("{}/trace/users/1?x=1", u.url))
        .header("host", "api.example.com:8443")
        .header("x-request-id", "keep-me-123")
        .header(
            "traceparent",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        )
        .header("connection", "x-hop")
        .header("x-hop", "secret")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let resp = send(req).await;
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("x-request-id"), Some("keep-me-123"));
    let seen = fx.last_request().unwrap();
    assert_eq!(seen.uri, "/users/1?x=1");
    assert_eq!(seen.header("x-forwarded-prefix"), Some("/trace"));
    assert_eq!(seen.header("x-forwarded-for"), Some("127.0.0.1"));
    assert_eq!(seen.header("x-forwarded-proto"), Some("http"));
    assert_eq!(
        seen.header("x-forwarded-host"),
        Some("api.example.com:8443"),
        "as the client sent it, port included"
    );
    assert_eq!(seen.header("x-request-id"), Some("keep-me-123"));
    assert!(seen.header("traceparent").unwrap().starts_with("00-0af7"));
    assert_eq!(
        seen.header("x-hop"),
        None,
        "headers named in Connection are hop-by-hop"
    );

    // `/trace` alone maps to `/`; a made-up request id is returned when none is sent.
    let resp = get(format!("{}/trace", u.url)).await;
    assert_eq!(resp.status, 200);
    assert_eq!(fx.last_request().unwrap().path(), "/");
    assert_eq!(resp.header("x-request-id").unwrap().len(), 32);
}

#[tokio::test]
async fn error_codes_are_json() {
    let slow = Fixture::builder()
        .delay("/slow", Duration::from_secs(3))
        .start()
        .await;
    let refusing = Fixture::refusing();
    let u = start(config(&format!(
        "{}[services.dead]\nservers = [\"http://{refusing}\"]\n\
         [[routes]]\nname = \"slow\"\nrule = \"PathPrefix(`/slow`)\"\nservice = \"api\"\n\
         [[routes]]\nname = \"dead\"\nrule = \"PathPrefix(`/dead`)\"\nservice = \"dead\"\n\
         [[routes]]\nname = \"big\"\nrule = \"PathPrefix(`/big`)\"\nservice = \"api\"\n",
        service("api", &[&slow])
    )));
    let r = get(format!("{}/nothing-here", u.url)).await;
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["error"], "no_route");
    assert_eq!(r.json()["request_id"], r.header("x-request-id").unwrap());

    let r = get(format!("{}/dead", u.url)).await;
    assert_eq!(r.status, 502);
    assert_eq!(r.json()["error"], "upstream_unavailable");

    let r = get(format!("{}/slow", u.url)).await;
    assert_eq!(r.status, 504);
    assert_eq!(r.json()["error"], "upstream_timeout");

    let big = http::Request::post(format!("{}/big", u.url))
        .body(Full::new(Bytes::from(vec![b'x'; 4096])))
        .unwrap();
    let r = send(big).await;
    assert_eq!(r.status, 413);
    assert_eq!(r.json()["error"], "body_too_large");

    // After repeated connection failures the dead server is ejected: 503.
    for _ in 0..3 {
        get(format!("{}/dead", u.url)).await;
    }
    let r = get(format!("{}/dead", u.url)).await;
    assert_eq!(r.status, 503);
    assert_eq!(r.json()["error"], "no_healthy_upstream");
}

#[tokio::test]
async fn malformed_and_oversized_requests() {
    let fx = Fixture::builder().start().await;
    let u = start(config(&format!(
        "{}[[routes]]\nname = \"all\"\nrule = \"PathPrefix(`/`)\"\nservice = \"api\"\n",
        service("api", &[&fx])
    )));
    let reply = raw_http(u.addr, b"GARBAGE NOT HTTP\r\n\r\n").await;
    assert!(
        String::from_utf8_lossy(&reply).starts_with("HTTP/1.1 400"),
        "{}",
        String::from_utf8_lossy(&reply)
    );
    let huge = format!(
        "GET / HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "a".repeat(200 * 1024)
    );
    let reply = raw_http(u.addr, huge.as_bytes()).await;
    assert!(
        String::from_utf8_lossy(&reply).starts_with("HTTP/1.1 431"),
        "{}",
        String::from_utf8_lossy(&reply)
    );
    assert_eq!(fx.hits(), 0);
}

#[tokio::test]
async fn round_robin_and_active_health() {
    let a = Fixture::builder().name("a").health("/health").start().await;
    let b = Fixture::builder().name("b").health("/health").start().await;
    let u = start(config(&format!(
        "[services.api]\nservers = [\"{}\", \"{}\"]\nhealth = {{ path = \"/health\", interval = \"100ms\", timeout = \"1s\", fall = 2, rise = 2 }}\n\
         [[routes]]\nname = \"all\"\nrule = \"PathPrefix(`/`)\"\nservice = \"api\"\n",
        a.url(),
        b.url()
    )));
    let rt = u.rt.clone();
    let sd = u.shutdown.clone();
    tokio::spawn(umbra_core::health::run(rt, sd));
    for _ in 0..10 {
        assert_eq!(get(format!("{}/x", u.url)).await.status, 200);
    }
    assert_eq!((a.hits(), b.hits()), (5, 5));
    b.set_healthy(false);
    assert_eventually!(
        u.rt.snapshot().service("api").unwrap().available_count() == 1,
        timeout = Duration::from_secs(5)
    );
    for _ in 0..10 {
        assert_eq!(get(format!("{}/x", u.url)).await.status, 200);
    }
    assert_eq!((a.hits(), b.hits()), (15, 5));
    // Every answered request is counted once, with its status code and duration.
    let metrics = u.rt.metrics.encode();
    assert!(
        metrics.contains("umbra_requests_total{route=\"all\",service=\"api\",code=\"200\"} 20"),
        "{metrics}"
    );
    assert!(
        metrics.contains("umbra_request_duration_seconds_count{route=\"all\",service=\"api\"} 20"),
        "{metrics}"
    );
    b.set_healthy(true);
    assert_eventually!(
        u.rt.snapshot().service("api").unwrap().available_count() == 2,
        timeout = Duration::from_secs(5)
    );
}

#[tokio::test]
async fn canary_split_is_sticky_by_cookie() {
    let v1 = Fixture::builder().name("v1").start().await;
    let v2 = Fixture::builder().name("v2").start().await;
    let u = start(config(&format!(
        "{}{}[[routes]]\nname = \"api\"\nrule = \"PathPrefix(`/`)\"\nservice = \"v1\"\ncanary = {{ service = \"v2\", weight = 30 }}\n",
        service("v1", &[&v1]),
        service("v2", &[&v2])
    )));
    let mut canary = 0;
    for _ in 0..200 {
        let r = get(format!("{}/x", u.url)).await;
        let cookie = r
            .header("set-cookie")
            .expect("new clients are pinned")
            .to_string();
        if cookie.starts_with("umbra_canary_api=canary") {
            canary += 1;
        }
        // The pinned client keeps its side.
        let pinned = cookie.split(';').next().unwrap().to_string();
        let side = r.json()["fixture"].clone();
        for _ in 0..3 {
            let again = send(
                http::Request::get(format!("{}/x", u.url))
                    .header("cookie", &pinned)
                    .body(Full::new(Bytes::new()))
                    .unwrap(),
            )
            .await;
            assert_eq!(again.json()["fixture"], side);
        }
    }
    assert!(
        (30..90).contains(&canary),
        "about 30 % canary, got {canary}/200"
    );

    // Runtime change of the weight: 0 sends everything to v1.
    u.rt.set_canary(
        "api",
        Some(umbra_core::config::RawCanary {
            service: "v2".into(),
            weight: 0.0,
            sticky: None,
        }),
        "test",
    )
    .unwrap();
    let before = v2.hits();
    for _ in 0..20 {
        get(format!("{}/x", u.url)).await;
    }
    assert_eq!(v2.hits(), before);
}

#[tokio::test]
async fn shadow_compares_without_delaying_the_primary() {
    let v1 = Fixture::builder()
        .name("v1")
        .json("/users/1", json!({"id": 1, "balance": 1.5}))
        .start()
        .await;
    let v2 = Fixture::builder()
        .name("v2")
        .json("/users/1", json!({"id": 1, "balance": "1.50"}))
        .start()
        .await;
    let mut u = start(config(&format!(
        "{}{}[[routes]]\nname = \"api\"\nrule = \"PathPrefix(`/`)\"\nservice = \"v1\"\nshadow = {{ service = \"v2\", percent = 100, timeout = \"5s\" }}\ncompare = {{ ignore_headers = [\"x-fixture\"] }}\n",
        service("v1", &[&v1]),
        service("v2", &[&v2])
    )));
    let r = send(
        http::Request::get(format!("{}/users/1", u.url))
            .header("x-request-id", "rid-1")
            .header("authorization", "Bearer hunter2")
            .body(Full::new(Bytes::new()))
            .unwrap(),
    )
    .await;
    assert_eq!(r.json()["balance"], 1.5);
    let c = tokio::time::timeout(Duration::from_secs(5), u.comparisons.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(c.route, "api");
    assert_eq!(c.endpoint, "GET /users/{id}");
    assert_eq!(c.request_id, "rid-1");
    assert_eq!(c.verdict, umbra_diff::Verdict::Different);
    assert!(
        c.differences
            .iter()
            .any(|d| d.path == "/balance" && d.kind == umbra_diff::DiffKind::Type),
        "{:?}",
        c.differences
    );
    let sreq = v2.last_request().unwrap();
    assert_eq!(sreq.header("x-umbra-shadow"), Some("1"));
    assert_eq!(sreq.header("x-request-id"), Some("rid-1"));
    let stored = serde_json::to_string(&c).unwrap();
    assert!(
        !stored.contains("hunter2"),
        "secrets never leave redaction: {stored}"
    );

    // POST is not mirrored by default.
    let post = http::Request::post(format!("{}/users/1", u.url))
        .body(Full::new(Bytes::from("{}")))
        .unwrap();
    send(post).await;
    assert_eq!(
        v2.requests().iter().filter(|r| r.method == "POST").count(),
        0
    );

    // A shadow that hangs must not hold the next request on the same connection.
    v2.set_delay(Duration::from_secs(3));
    let mut conn = KeepAlive::connect(u.addr).await;
    let first = conn.get("/users/1").await;
    let second = conn.get("/users/1").await;
    assert_eq!((first.status.as_u16(), second.status.as_u16()), (200, 200));
    assert!(
        u.comparisons.try_recv().is_err(),
        "both primary answers arrived while the shadow was still busy"
    );
}

#[tokio::test]
async fn shadow_errors_and_overflow_are_counted() {
    let v1 = Fixture::builder().start().await;
    let v2 = Fixture::builder()
        .reset("/reset")
        .hang("/hang")
        .garbage("/garbage")
        .start()
        .await;
    let mut u = start(config(&format!(
        "{}{}[[routes]]\nname = \"api\"\nrule = \"PathPrefix(`/`)\"\nservice = \"v1\"\nshadow = {{ service = \"v2\", timeout = \"300ms\", max_in_flight = 1 }}\n",
        service("v1", &[&v1]),
        service("v2", &[&v2])
    )));
    for p in ["/reset", "/garbage", "/hang"] {
        assert_eq!(
            get(format!("{}{p}", u.url)).await.status,
            200,
            "primary unaffected by a broken shadow ({p})"
        );
        let c = tokio::time::timeout(Duration::from_secs(5), u.comparisons.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(c.verdict, umbra_diff::Verdict::ShadowError, "{p}");
        assert!(c.error.is_some());
    }
    // One slot: while /hang occupies it, further mirrors are dropped and counted.
    for _ in 0..5 {
        assert_eq!(get(format!("{}/hang", u.url)).await.status, 200);
    }
    let metrics = u.rt.metrics.encode();
    assert!(
        metrics.contains("umbra_shadow_dropped_total{route=\"api\",reason=\"overflow\"}"),
        "{metrics}"
    );
    // Every broken shadow is counted, not just the first of a kind (the handles are cached).
    let count = |series: &str| -> u64 {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
            .unwrap_or(0)
    };
    assert!(
        count("umbra_shadow_requests_total{route=\"api\",outcome=\"error\"}") >= 3,
        "{metrics}"
    );
    assert!(
        count("umbra_comparisons_total{route=\"api\",verdict=\"shadow_error\"}") >= 3,
        "{metrics}"
    );
}

#[tokio::test]
async fn bad_reload_keeps_running_config() {
    let fx = Fixture::builder().start().await;
    let cfg = format!(
        "{}[[routes]]\nname = \"all\"\nrule = \"PathPrefix(`/`)\"\nservice = \"api\"\n",
        service("api", &[&fx])
    );
    let u = start(config(&cfg));
    let bad = Config::parse(
        "[[routes]]\nname = \"x\"\nrule = \"Nope(`/`)\"\nservice = \"api\"\n",
        "test.toml",
        &|_| None,
    );
    assert!(u.rt.reload(bad).is_err());
    assert!(u
        .rt
        .reload_status()
        .last_reload_error
        .unwrap()
        .contains("test.toml:3:"));
    assert_eq!(
        get(format!("{}/x", u.url)).await.status,
        200,
        "old config still serves"
    );
    // A good reload swaps the routes.
    let good = config(&format!(
        "{}[[routes]]\nname = \"only\"\nrule = \"Path(`/only`)\"\nservice = \"api\"\n",
        service("api", &[&fx])
    ));
    u.rt.reload(Ok(good)).unwrap();
    assert_eq!(get(format!("{}/x", u.url)).await.status, 404);
    assert_eq!(get(format!("{}/only", u.url)).await.status, 200);
    assert!(u.rt.reload_status().last_reload_error.is_none());
}

#[tokio::test]
async fn websocket_upgrade_passes_through() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let fx = Fixture::builder().upgrade_echo("/ws").start().await;
    let u = start(config(&format!(
        "{}[[routes]]\nname = \"all\"\nrule = \"PathPrefix(`/`)\"\nservice = \"api\"\n",
        service("api", &[&fx])
    )));
    let mut s = tokio::net::TcpStream::connect(u.addr).await.unwrap();
    s.write_all(b"GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n").await.unwrap();
    let mut buf = vec![0u8; 1024];
    let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
        .await
        .unwrap()
        .unwrap();
    let head = String::from_utf8_lossy(&buf[..n]).to_string();
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("sec-websocket-accept: s3pplmbitxaq9kygzzhzrbk+xoo="),
        "{head}"
    );
    s.write_all(b"ping-bytes").await.unwrap();
    let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&buf[..n], b"ping-bytes");
}

#[tokio::test]
async fn h2c_and_graceful_drain() {
    let fx = Fixture::builder()
        .delay("/slow", Duration::from_millis(500))
        .start()
        .await;
    let u = start(config(&format!(
        "{}[[routes]]\nname = \"all\"\nrule = \"PathPrefix(`/`)\"\nservice = \"api\"\n",
        service("api", &[&fx])
    )));
    let mut h2 = KeepAlive::connect_h2c(u.addr).await;
    let r = h2.get("/hello").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.version, http::Version::HTTP_2);

    // A request in flight when shutdown starts still completes.
    let url = format!("{}/slow", u.url);
    let inflight = tokio::spawn(async move { get(url).await });
    assert_eventually!(fx.hits_for("/slow") == 1, timeout = Duration::from_secs(5));
    u.shutdown.cancel();
    assert_eq!(inflight.await.unwrap().status, 200);
}

#[tokio::test]
async fn a_pooled_connection_closed_while_idle_costs_no_request() {
    // One answer per connection, announced as keep-alive, then the connection is closed while
    // the proxy holds it idle: the classic race of a pooled connection.
    fn script(_: &str, _: usize) -> Act {
        Act::SendClose(vec![
            b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 11\r\nconnection: keep-alive\r\n\r\n{\"ok\":true}",
        ])
    }
    let (up, conns) = scripted_upstream(script).await;
    let u = start(route_to(up));
    for i in 0..10 {
        // POSTs are never eligible for a retry. With a body the request goes through hyper's
        // client, whose "unsent request goes out on a fresh connection" saves it; without one
        // it goes through the direct client, whose checkout probe must see the close.
        let body = if i % 2 == 0 {
            Bytes::from(format!("{{\"n\":{i}}}"))
        } else {
            Bytes::new()
        };
        let req = http::Request::post(format!("{}/items", u.url))
            .header("content-type", "application/json")
            .body(Full::new(body))
            .unwrap();
        let r = send(req).await;
        assert_eq!(r.status, 200, "request {i}: {:?}", r.body);
        tokio::time::sleep(Duration::from_millis(100)).await; // the upstream closed the idle one
    }
    assert_eq!(conns.load(std::sync::atomic::Ordering::SeqCst), 10);
}

/// What a scripted upstream does with one request.
enum Act {
    /// Sends these pieces (pausing briefly between them), then keeps the connection open.
    Send(Vec<&'static [u8]>),
    /// Sends these pieces, then closes the connection.
    SendClose(Vec<&'static [u8]>),
    /// Closes the connection without answering.
    Close,
}

/// An upstream speaking raw HTTP/1.1 bytes chosen per request by `script(request, index of
/// the request on its connection)`; returns its address and a count of the connections it
/// accepted.
async fn scripted_upstream(
    script: fn(&str, usize) -> Act,
) -> (std::net::SocketAddr, Arc<std::sync::atomic::AtomicUsize>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let conns = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let count = conns.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            tokio::spawn(async move {
                let mut seen = Vec::new();
                let mut buf = vec![0u8; 8192];
                for index in 0.. {
                    // One request: its head, then as many body bytes as its content-length says.
                    let mut need = None;
                    let end = loop {
                        if need.is_none() {
                            if let Some(end) = seen.windows(4).position(|w| w == b"\r\n\r\n") {
                                let head = String::from_utf8_lossy(&seen[..end]).to_lowercase();
                                let len = head
                                    .lines()
                                    .find_map(|l| l.strip_prefix("content-length:"))
                                    .map_or(0, |v| v.trim().parse::<usize>().unwrap_or(0));
                                need = Some(end + 4 + len);
                            }
                        }
                        if let Some(n) = need.filter(|&n| seen.len() >= n) {
                            break n;
                        }
                        match s.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => seen.extend_from_slice(&buf[..n]),
                        }
                    };
                    let head = String::from_utf8_lossy(&seen[..end]).into_owned();
                    seen.drain(..end);
                    let (pieces, close) = match script(&head, index) {
                        Act::Send(p) => (p, false),
                        Act::SendClose(p) => (p, true),
                        Act::Close => return,
                    };
                    for p in pieces {
                        if s.write_all(p).await.is_err() {
                            return;
                        }
                        tokio::time::sleep(Duration::from_millis(15)).await;
                    }
                    if close {
                        return;
                    }
                }
            });
        }
    });
    (addr, conns)
}

fn route_to(up: std::net::SocketAddr) -> Config {
    config(&format!(
        "[services.api]\nservers = [\"http://{up}\"]\n[[routes]]\nname = \"r\"\nrule = \"PathPrefix(`/`)\"\nservice = \"api\"\n"
    ))
}

#[tokio::test]
async fn every_body_framing_is_relayed_and_the_connection_reused_when_it_may_be() {
    fn script(head: &str, _: usize) -> Act {
        let path = head.split(' ').nth(1).unwrap_or("");
        match path {
            // A length-delimited body arriving in two pieces after the head.
            "/length" => Act::Send(vec![
                b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\nx-kind: length\r\n\r\n",
                b"hello",
                b", you",
            ]),
            // Chunked, with a chunk extension, a chunk split across writes, and a trailer.
            "/chunked" => Act::Send(vec![
                b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5;x=1\r\nhel",
                b"lo\r\n7\r\n, world\r\n",
                b"0\r\nx-trailer: t\r\n\r\n",
            ]),
            // An interim 100 before the final answer.
            "/continue" => Act::Send(vec![
                b"HTTP/1.1 100 Continue\r\n\r\n",
                b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok",
            ]),
            "/nocontent" => Act::Send(vec![b"HTTP/1.1 204 No Content\r\nx-kind: none\r\n\r\n"]),
            // A HEAD answer announces a length but carries no body.
            "/head" => Act::Send(vec![b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\n"]),
            // No length at all: the body runs until the server closes.
            "/close" => Act::SendClose(vec![b"HTTP/1.1 200 OK\r\n\r\nuntil ", b"the end"]),
            _ => Act::Send(vec![b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n"]),
        }
    }
    let (up, conns) = scripted_upstream(script).await;
    let u = start(route_to(up));
    let conns_now = || conns.load(std::sync::atomic::Ordering::SeqCst);

    let r = get(format!("{}/length", u.url)).await;
    assert_eq!((r.status.as_u16(), r.text().as_str()), (200, "hello, you"));
    assert_eq!(r.header("x-kind"), Some("length"));
    let r = get(format!("{}/chunked", u.url)).await;
    assert_eq!(
        (r.status.as_u16(), r.text().as_str()),
        (200, "hello, world")
    );
    let r = get(format!("{}/continue", u.url)).await;
    assert_eq!((r.status.as_u16(), r.text().as_str()), (200, "ok"));
    let r = get(format!("{}/nocontent", u.url)).await;
    assert_eq!((r.status.as_u16(), r.body.len()), (204, 0));
    assert_eq!(r.header("x-kind"), Some("none"));
    let head = http::Request::head(format!("{}/head", u.url))
        .body(Full::new(Bytes::new()))
        .unwrap();
    let r = send(head).await;
    assert_eq!((r.status.as_u16(), r.body.len()), (200, 0));
    assert_eq!(r.header("content-length"), Some("10"));
    assert_eq!(
        conns_now(),
        1,
        "one keep-alive connection carried all of them"
    );

    let r = get(format!("{}/close", u.url)).await;
    assert_eq!(
        (r.status.as_u16(), r.text().as_str()),
        (200, "until the end")
    );
    let r = get(format!("{}/length", u.url)).await;
    assert_eq!(r.text(), "hello, you");
    assert_eq!(conns_now(), 2, "a close-delimited body ends its connection");
}

#[tokio::test]
async fn a_broken_upstream_answer_is_a_502_and_its_connection_is_dropped() {
    fn script(head: &str, _: usize) -> Act {
        match head.split(' ').nth(1).unwrap_or("") {
            "/garbage" => Act::Send(vec![b"SPDY/9 banana\r\n\r\n"]),
            "/lengths" => Act::Send(vec![
                b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\ncontent-length: 3\r\n\r\nabc",
            ]),
            "/silent" => Act::Close,
            "/cut" => Act::SendClose(vec![
                b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nonly this",
            ]),
            _ => Act::Send(vec![b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"]),
        }
    }
    let (up, conns) = scripted_upstream(script).await;
    let u = start(route_to(up));
    for path in ["/garbage", "/lengths", "/silent"] {
        let r = get(format!("{}{path}", u.url)).await;
        assert_eq!(r.status, 502, "{path}: {}", r.text());
        assert_eq!(r.json()["error"], "upstream_unavailable", "{path}");
    }
    // The head arrived, the body was cut: the client's response is cut too, never completed.
    let cut = umbra_testkit::try_get(format!("{}/cut", u.url)).await;
    assert!(
        cut.as_ref().map_or(true, |r| r.body.len() < 100),
        "a cut body must not look whole: {:?}",
        cut.map(|r| r.body.len())
    );
    let before = conns.load(std::sync::atomic::Ordering::SeqCst);
    assert_eq!(get(format!("{}/fine", u.url)).await.text(), "ok");
    assert_eq!(
        conns.load(std::sync::atomic::Ordering::SeqCst),
        before + 1,
        "no broken connection went back to the pool"
    );
}

#[tokio::test]
async fn a_get_on_a_connection_that_died_unnoticed_is_sent_again_but_a_post_is_not() {
    // The second request on every connection is read and then the connection closes with no
    // answer: what a server closing an idle connection at that very moment looks like.
    fn script(_: &str, index: usize) -> Act {
        if index == 0 {
            Act::Send(vec![b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"])
        } else {
            Act::Close
        }
    }
    let (up, conns) = scripted_upstream(script).await;
    let u = start(route_to(up));
    assert_eq!(get(format!("{}/a", u.url)).await.text(), "ok");
    let r = get(format!("{}/b", u.url)).await;
    assert_eq!(
        (r.status.as_u16(), r.text().as_str()),
        (200, "ok"),
        "an idempotent request is repeated on a fresh connection"
    );
    assert_eq!(conns.load(std::sync::atomic::Ordering::SeqCst), 2);
    // The fresh connection is idle in the pool now; a bodiless POST on it gets no second try.
    let post = http::Request::post(format!("{}/c", u.url))
        .body(Full::new(Bytes::new()))
        .unwrap();
    assert_eq!(send(post).await.status, 502);
    assert_eq!(conns.load(std::sync::atomic::Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_mirrored_post_carries_the_clients_body_and_marks() {
    let echo_len =
        |r: &umbra_testkit::Recorded| umbra_testkit::Reply::json(200, json!({"got": r.body.len()}));
    let v1 = Fixture::builder()
        .name("v1")
        .respond("/orders", echo_len)
        .start()
        .await;
    let v2 = Fixture::builder()
        .name("v2")
        .respond("/orders", echo_len)
        .start()
        .await;
    let mut u = start(config(&format!(
        "{}{}[[routes]]\nname = \"api\"\nrule = \"PathPrefix(`/`)\"\nservice = \"v1\"\nshadow = {{ service = \"v2\", percent = 100, methods = [\"POST\"] }}\ncompare = {{ ignore_headers = [\"x-fixture\"] }}\n",
        service("v1", &[&v1]),
        service("v2", &[&v2])
    )));
    let body = r#"{"item":"book","qty":2}"#;
    let r = send(
        http::Request::post(format!("{}/orders?src=web", u.url))
            .header("content-type", "application/json")
            .header("x-request-id", "rid-post")
            .body(Full::new(Bytes::from(body)))
            .unwrap(),
    )
    .await;
    assert_eq!(r.json()["got"], body.len());
    let c = tokio::time::timeout(Duration::from_secs(5), u.comparisons.recv())
        .await
        .expect("a comparison within 5 s")
        .unwrap();
    assert_eq!(c.verdict, umbra_diff::Verdict::Same, "{:?}", c.differences);
    let sreq = v2.last_request().expect("the shadow got the request");
    assert_eq!(sreq.method, "POST");
    assert_eq!(sreq.path(), "/orders");
    assert_eq!(sreq.query(), Some("src=web"));
    assert_eq!(sreq.text(), body, "the body arrives byte for byte");
    assert_eq!(sreq.header("content-length"), Some("23"));
    assert_eq!(sreq.header("content-type"), Some("application/json"));
    assert_eq!(sreq.header("x-umbra-shadow"), Some("1"));
    assert_eq!(sreq.header_all("x-request-id"), vec!["rid-post"]);
    assert!(sreq.header("host").is_some());
}

#[tokio::test]
async fn a_large_body_streams_through_the_direct_client_intact() {
    // 3 MiB of a pattern that shows any dropped, repeated or reordered piece.
    let big: String = (0..3 * 1024 * 1024 / 8)
        .map(|i| format!("{:07x}\n", i % 0x0fff_ffff))
        .collect();
    let v1 = Fixture::builder()
        .name("v1")
        .text("/big", big.clone())
        .start()
        .await;
    let u = start(config(&format!(
        "{}[[routes]]\nname = \"r\"\nrule = \"PathPrefix(`/`)\"\nservice = \"v1\"\n",
        service("v1", &[&v1])
    )));
    for _ in 0..2 {
        let r = get(format!("{}/big", u.url)).await;
        assert_eq!(r.status, 200);
        assert_eq!(r.body.len(), big.len());
        assert!(r.text() == big, "the body arrives byte for byte");
    }
}

#[tokio::test]
async fn connections_handed_between_workers_are_served_to_the_end() {
    let v1 = Fixture::builder().name("v1").text("/n", "ok").start().await;
    let u = start_workers(
        config(&format!(
            "{}[[routes]]\nname = \"r\"\nrule = \"PathPrefix(`/`)\"\nservice = \"v1\"\n",
            service("v1", &[&v1])
        )),
        2,
    );
    // However the kernel spreads them, one worker ends up holding at most one more of these
    // than the other; every connection must keep working wherever it is served. (With 40,
    // the kernel's spread puts one worker two ahead, and so makes a hand-over, all but surely.)
    let mut conns = Vec::new();
    for _ in 0..40 {
        conns.push(KeepAlive::connect(u.addr).await);
    }
    for round in 0..2 {
        for (i, c) in conns.iter_mut().enumerate() {
            let r = c.get("/n").await;
            assert_eq!(
                (r.status.as_u16(), r.text().as_str()),
                (200, "ok"),
                "conn {i} round {round}"
            );
        }
    }
    assert_eq!(v1.hits_for("/n"), 80);
    // Closed connections free their places: new ones are served too.
    conns.clear();
    for _ in 0..4 {
        assert_eq!(get(format!("{}/n", u.url)).await.text(), "ok");
    }
}

/// Reads one response from a raw connection: its head (lower-cased) and its content-length
/// body. Bytes past it stay in `buf`.
async fn read_response(s: &mut tokio::net::TcpStream, buf: &mut Vec<u8>) -> (String, Vec<u8>) {
    use tokio::io::AsyncReadExt;
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_lowercase();
            let len = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .map_or(0, |v| v.trim().parse::<usize>().unwrap());
            if buf.len() >= end + 4 + len {
                let body = buf[end + 4..end + 4 + len].to_vec();
                buf.drain(..end + 4 + len);
                return (head, body);
            }
        }
        let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut chunk))
            .await
            .expect("a response within 5 s")
            .unwrap();
        assert!(n > 0, "closed before a whole response: {buf:?}");
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// Writes `request` on a raw connection and reads one response (see `read_response`).
async fn ask(
    s: &mut tokio::net::TcpStream,
    buf: &mut Vec<u8>,
    request: &[u8],
) -> (String, Vec<u8>) {
    use tokio::io::AsyncWriteExt;
    s.write_all(request).await.unwrap();
    read_response(s, buf).await
}

/// True when the connection reads as closed within `within`.
async fn closes_within(s: &mut tokio::net::TcpStream, within: Duration) -> bool {
    use tokio::io::AsyncReadExt;
    let mut b = [0u8; 64];
    matches!(
        tokio::time::timeout(within, s.read(&mut b)).await,
        Ok(Ok(0) | Err(_))
    )
}

#[tokio::test]
async fn pipelined_heads_bodies_and_close_all_work_on_one_client_connection() {
    use tokio::io::AsyncWriteExt;
    fn script(head: &str, _: usize) -> Act {
        match head.split(' ').nth(1).unwrap_or("") {
            "/a" => Act::Send(vec![b"HTTP/1.1 200 OK\r\ncontent-length: 1\r\n\r\na"]),
            "/b" => Act::Send(vec![b"HTTP/1.1 200 OK\r\ncontent-length: 1\r\n\r\nb"]),
            "/post" if head.to_lowercase().contains("content-length: 2") => {
                Act::Send(vec![b"HTTP/1.1 200 OK\r\ncontent-length: 1\r\n\r\np"])
            }
            _ => Act::Send(vec![b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n"]),
        }
    }
    let (up, _) = scripted_upstream(script).await;
    let u = start(route_to(up));
    let mut s = tokio::net::TcpStream::connect(u.addr).await.unwrap();
    let mut buf = Vec::new();

    // Two heads in one write are answered in order.
    s.write_all(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let (head, body) = read_response(&mut s, &mut buf).await;
    assert!(head.starts_with("http/1.1 200 ok"), "{head}");
    assert_eq!(body, b"a");
    assert!(head.contains("\r\ndate: "), "a Date is added: {head}");
    assert!(head.contains("\r\nx-request-id: "), "{head}");
    let (_, body) = read_response(&mut s, &mut buf).await;
    assert_eq!(body, b"b");

    // A request with a body on the same connection (hyper's server takes over from here),
    // then a plain one again.
    let post = b"POST /post HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi";
    let (head, body) = ask(&mut s, &mut buf, post).await;
    assert_eq!(body, b"p", "{head}");
    let (_, body) = ask(&mut s, &mut buf, b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert_eq!(body, b"a");

    // On a connection still on the fast lane, `Connection: close` is answered and honoured.
    let mut s = tokio::net::TcpStream::connect(u.addr).await.unwrap();
    let close = b"GET /b HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    let (head, body) = ask(&mut s, &mut buf, close).await;
    assert_eq!(body, b"b");
    assert!(head.contains("\r\nconnection: close"), "{head}");
    assert!(closes_within(&mut s, Duration::from_secs(2)).await);

    // HTTP/1.0 goes to hyper's server, and is answered too.
    let reply = raw_http(u.addr, b"GET /a HTTP/1.0\r\nHost: x\r\n\r\n").await;
    let reply = String::from_utf8_lossy(&reply);
    assert!(
        reply.starts_with("HTTP/1.") && reply.contains(" 200 "),
        "{reply}"
    );
    assert!(reply.ends_with("\r\n\r\na"), "{reply}");
}

#[tokio::test]
async fn shutdown_closes_an_idle_client_connection_at_once() {
    fn script(_: &str, _: usize) -> Act {
        Act::Send(vec![b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"])
    }
    let (up, _) = scripted_upstream(script).await;
    let u = start(route_to(up));
    let mut s = tokio::net::TcpStream::connect(u.addr).await.unwrap();
    let (_, body) = ask(
        &mut s,
        &mut Vec::new(),
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
    )
    .await;
    assert_eq!(body, b"ok");
    u.shutdown.cancel();
    // Well within the 2 s grace period: closed for being idle, not for running out of time.
    assert!(closes_within(&mut s, Duration::from_millis(1500)).await);
}

#[tokio::test]
async fn a_streamed_answer_reaches_the_client_piece_by_piece() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let v1 = Fixture::builder()
        .stream(
            "/s",
            vec![Bytes::from_static(b"first-"), Bytes::from_static(b"second")],
            Duration::from_secs(1),
        )
        .start()
        .await;
    let u = start(route_to(v1.addr()));
    let mut s = tokio::net::TcpStream::connect(u.addr).await.unwrap();
    s.write_all(b"GET /s HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    // Reads until `seen` holds `text` (5 s at most per read).
    async fn read_until(s: &mut tokio::net::TcpStream, seen: &mut Vec<u8>, text: &str) {
        let mut chunk = [0u8; 4096];
        while !String::from_utf8_lossy(seen).contains(text) {
            let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut chunk))
                .await
                .unwrap()
                .unwrap();
            assert!(n > 0, "closed before {text:?}");
            seen.extend_from_slice(&chunk[..n]);
        }
    }
    let mut seen = Vec::new();
    read_until(&mut s, &mut seen, "first-").await;
    let text = String::from_utf8_lossy(&seen).to_lowercase();
    assert!(
        !text.contains("second"),
        "the first piece came alone, a second before the next: {text}"
    );
    assert!(text.contains("transfer-encoding: chunked"), "{text}");
    read_until(&mut s, &mut seen, "0\r\n\r\n").await;
    assert!(String::from_utf8_lossy(&seen).contains("second"));
}

#[tokio::test]
async fn a_client_that_leaves_cancels_its_request_upstream() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    // An upstream that reads a request, never answers, and reports when umbra hangs up.
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let up = l.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let (mut s, _) = l.accept().await.unwrap();
        let mut b = [0u8; 4096];
        let mut got = 0;
        loop {
            match s.read(&mut b).await {
                Ok(0) | Err(_) => break,
                Ok(n) => got += n,
            }
        }
        let _ = tx.send(got);
    });
    let text = format!(
        "[proxy]\nlisten = \"127.0.0.1:0\"\ntimeout = \"30s\"\n[log]\naccess = false\n\
         [services.api]\nservers = [\"http://{up}\"]\n\
         [[routes]]\nname = \"r\"\nrule = \"PathPrefix(`/`)\"\nservice = \"api\"\n"
    );
    let u = start(Config::parse(&text, "test.toml", &|_| None).unwrap());
    let mut s = tokio::net::TcpStream::connect(u.addr).await.unwrap();
    s.write_all(b"GET /wait HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    drop(s);
    // Far sooner than the 30 s upstream timeout.
    let got = tokio::time::timeout(Duration::from_secs(5), rx)
        .await
        .expect("umbra closed the upstream connection when the client left")
        .unwrap();
    assert!(got > 0, "the request had reached the upstream");
}

#[tokio::test]
async fn each_request_gets_the_whole_timeout_on_a_reused_upstream_connection() {
    let fx = Fixture::builder()
        .text("/fast", "ok")
        .delay("/slow", Duration::from_millis(1500))
        .start()
        .await;
    let u = start(route_to(fx.addr()));
    let mut c = KeepAlive::connect(u.addr).await;
    assert_eq!(c.get("/fast").await.status, 200);
    // The pooled connection's last deadline (1 s) passes while it is idle; the next request
    // on it gets a deadline of its own.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    for _ in 0..2 {
        assert_eq!(c.get("/fast").await.text(), "ok");
    }
    assert_eq!(fx.connections(), 1);
    let t = std::time::Instant::now();
    let r = c.get("/slow").await;
    let waited = t.elapsed();
    assert_eq!(r.status, 504);
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_millis(1450),
        "the 1 s timeout, counted from this request: {waited:?}"
    );
    // The connection that timed out is not used again.
    assert_eq!(c.get("/fast").await.text(), "ok");
    assert_eq!(fx.connections(), 2);
}

#[tokio::test]
async fn an_upstreams_fields_reach_the_client_less_those_the_proxy_replaces() {
    fn script(head: &str, _: usize) -> Act {
        match head.split(' ').nth(1).unwrap_or("") {
            "/plain" => Act::Send(vec![
                b"HTTP/1.1 200 OK\r\nServer:up\r\nDate: Mon, 01 Jan 2024 00:00:00 GMT\r\n\
                  X-Request-Id: upstream-id\r\nKeep-Alive: timeout=5\r\nConnection: keep-alive\r\n\
                  Set-Cookie: a=1\r\nSet-Cookie: b=2\r\nContent-Length: 2\r\n\r\nok",
            ]),
            _ => Act::SendClose(vec![
                b"HTTP/1.1 200 OK\r\nConnection: x-hop\r\nX-Hop: secret\r\nX-Keep: 1\r\n\
                  Transfer-Encoding: chunked\r\nContent-Length: 99\r\n\r\n2\r\nok\r\n0\r\n\r\n",
            ]),
        }
    }
    /// A reply's head fields, names lower-cased, in order.
    fn fields(reply: &[u8]) -> Vec<(String, String)> {
        let text = String::from_utf8_lossy(reply);
        let head = text.split("\r\n\r\n").next().unwrap_or("");
        head.lines()
            .skip(1)
            .filter_map(|l| l.split_once(':'))
            .map(|(n, v)| (n.to_lowercase(), v.trim().to_string()))
            .collect()
    }
    fn all<'a>(f: &'a [(String, String)], name: &str) -> Vec<&'a str> {
        f.iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }
    let (up, _) = scripted_upstream(script).await;
    let u = start(route_to(up));
    // The fast lane (HTTP/1.1) and hyper's server (HTTP/1.0) must agree.
    for version in ["1.1", "1.0"] {
        let ask = format!(
            "GET /plain HTTP/{version}\r\nHost: x\r\nX-Request-Id: rid-7\r\nConnection: close\r\n\r\n"
        );
        let reply = raw_http(u.addr, ask.as_bytes()).await;
        let f = fields(&reply);
        assert!(reply.ends_with(b"\r\n\r\nok"), "HTTP/{version}: {f:?}");
        assert_eq!(all(&f, "server"), ["up"], "HTTP/{version}");
        assert_eq!(all(&f, "date"), ["Mon, 01 Jan 2024 00:00:00 GMT"]);
        assert_eq!(
            all(&f, "x-request-id"),
            ["rid-7"],
            "umbra's id replaces the upstream's"
        );
        assert_eq!(all(&f, "set-cookie"), ["a=1", "b=2"]);
        assert_eq!(all(&f, "content-length"), ["2"]);
        assert!(all(&f, "keep-alive").is_empty(), "HTTP/{version}: {f:?}");
        assert!(!all(&f, "connection").contains(&"keep-alive"));

        let ask = format!("HEAD /plain HTTP/{version}\r\nHost: x\r\nConnection: close\r\n\r\n");
        let reply = raw_http(u.addr, ask.as_bytes()).await;
        let f = fields(&reply);
        assert_eq!(
            all(&f, "content-length"),
            ["2"],
            "HEAD keeps the GET's length: {f:?}"
        );
        assert!(reply.ends_with(b"\r\n\r\n"), "and has no body: {f:?}");

        let ask = format!("GET /named HTTP/{version}\r\nHost: x\r\nConnection: close\r\n\r\n");
        let reply = raw_http(u.addr, ask.as_bytes()).await;
        let f = fields(&reply);
        let body = String::from_utf8_lossy(&reply);
        assert!(
            body.ends_with("ok\r\n0\r\n\r\n") || body.ends_with("\r\n\r\nok"),
            "{body}"
        );
        assert!(all(&f, "x-hop").is_empty(), "named in Connection: {f:?}");
        assert!(!all(&f, "connection").contains(&"x-hop"));
        assert_eq!(all(&f, "x-keep"), ["1"]);
        assert!(
            all(&f, "content-length").is_empty(),
            "a coded body's length is not passed on: {f:?}"
        );
        assert_eq!(all(&f, "x-request-id").len(), 1);
    }
}

#[tokio::test]
async fn a_silent_or_trickling_client_is_closed_after_the_header_timeout() {
    use tokio::io::AsyncWriteExt;
    fn script(_: &str, _: usize) -> Act {
        Act::Send(vec![b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"])
    }
    let (up, _) = scripted_upstream(script).await;
    let config = |timeout: &str| {
        let text = format!(
            "[proxy]\nlisten = \"127.0.0.1:0\"\nheader_timeout = \"{timeout}\"\n\
             [log]\naccess = false\n[services.api]\nservers = [\"http://{up}\"]\n\
             [[routes]]\nname = \"r\"\nrule = \"PathPrefix(`/`)\"\nservice = \"api\"\n"
        );
        Config::parse(&text, "test.toml", &|_| None)
    };
    let u = start(config("30s").unwrap());
    let connect = || tokio::net::TcpStream::connect(u.addr);
    // Served (so accepted) under the first config; then a reload shortens the timeout for the
    // connections accepted after it.
    let mut before = connect().await.unwrap();
    let mut buf = Vec::new();
    let get = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    assert_eq!(ask(&mut before, &mut buf, get).await.1, b"ok");
    u.rt.reload(config("400ms")).unwrap();

    let mut s = connect().await.unwrap();
    assert!(
        !closes_within(&mut s, Duration::from_millis(100)).await,
        "not before its time"
    );
    assert!(
        closes_within(&mut s, Duration::from_secs(2)).await,
        "a client that sends nothing is closed"
    );
    assert!(
        !closes_within(&mut before, Duration::from_millis(10)).await,
        "a connection accepted before the reload keeps its own limit"
    );

    // A head trickling in, a field every 100 ms: the bytes do not buy more time.
    let mut s = connect().await.unwrap();
    let started = std::time::Instant::now();
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n").await.unwrap();
    let mut closed = false;
    while !closed && started.elapsed() < Duration::from_secs(3) {
        closed = s.write_all(b"X-Slow: 1\r\n").await.is_err()
            || closes_within(&mut s, Duration::from_millis(100)).await;
    }
    assert!(closed, "a trickling head is cut off");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );

    // Each head of a keep-alive connection gets the whole time: a client asking every 150 ms
    // is served for well past one timeout.
    let mut s = connect().await.unwrap();
    buf.clear();
    for _ in 0..8 {
        let (head, body) = ask(&mut s, &mut buf, get).await;
        assert_eq!(body, b"ok", "{head}");
        tokio::time::sleep(Duration::from_millis(150)).await;
    }

    // A connection handed to hyper's server (a request with a body) has the same limit.
    let post = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi";
    let (_, body) = ask(&mut s, &mut buf, post).await;
    assert_eq!(body, b"ok");
    assert!(
        closes_within(&mut s, Duration::from_secs(2)).await,
        "hyper's server closes an idle connection too"
    );
}

#[tokio::test]
async fn chunked_answers_from_both_builds_compare_the_same() {
    // Both builds answer alike, but chunked at different places and with their own Date and
    // Server (and on /hop the primary with a field named in Connection): the primary's head
    // (relayed, then made a map for the comparison) and the shadow's compare as the same
    // response, compared fields (Content-Type, Cache-Control) and all.
    fn v1(head: &str, _: usize) -> Act {
        Act::Send(vec![if head.starts_with("GET /hop ") {
            b"HTTP/1.1 200 OK\r\nServer: v1\r\nDate: Mon, 01 Jan 2024 00:00:00 GMT\r\n\
              Cache-Control: no-store\r\nConnection: x-hop\r\nX-Hop: 1\r\n\
              Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n\
              7\r\n{\"a\":1}\r\n0\r\n\r\n"
        } else {
            b"HTTP/1.1 200 OK\r\nServer: v1\r\nDate: Mon, 01 Jan 2024 00:00:00 GMT\r\n\
              Cache-Control: no-store\r\n\
              Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n\
              7\r\n{\"a\":1}\r\n0\r\n\r\n"
        }])
    }
    fn v2(_: &str, _: usize) -> Act {
        Act::Send(vec![
            b"HTTP/1.1 200 OK\r\nServer: v2\r\nDate: Mon, 01 Jan 2024 00:00:09 GMT\r\n\
              Cache-Control: no-store\r\n\
              Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n\
              3\r\n{\"a\r\n4\r\n\":1}\r\n0\r\n\r\n",
        ])
    }
    let (p, _) = scripted_upstream(v1).await;
    let (s, _) = scripted_upstream(v2).await;
    let mut u = start(config(&format!(
        "[services.v1]\nservers = [\"http://{p}\"]\n[services.v2]\nservers = [\"http://{s}\"]\n\
         [[routes]]\nname = \"api\"\nrule = \"PathPrefix(`/`)\"\nservice = \"v1\"\n\
         shadow = {{ service = \"v2\", percent = 100, timeout = \"5s\" }}\n"
    )));
    // With nothing to strip, the head becomes a map for the comparison alone; with the
    // named field, for stripping too.
    for path in ["/a", "/hop"] {
        let r = get(&format!("{}{path}", u.url)).await;
        assert_eq!(r.json()["a"], 1);
        let c = tokio::time::timeout(Duration::from_secs(5), u.comparisons.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            c.verdict,
            umbra_diff::Verdict::Same,
            "{path}: {:?}",
            c.differences
        );
    }
}

#[tokio::test]
async fn the_canary_cookie_comes_after_the_upstreams_own() {
    // An upstream that sets cookies of its own, one of them with the canary cookie's name: the
    // browser keeps the last of a name, so umbra's must come last, on every server path.
    fn script(_: &str, _: usize) -> Act {
        Act::Send(vec![
            b"HTTP/1.1 200 OK\r\nSet-Cookie: session=1\r\nSet-Cookie: umbra_canary_api=forged\r\n\
              Content-Length: 2\r\n\r\nok",
        ])
    }
    let (v1, _) = scripted_upstream(script).await;
    let (v2, _) = scripted_upstream(script).await;
    let u = start(config(&format!(
        "[services.v1]\nservers = [\"http://{v1}\"]\n[services.v2]\nservers = [\"http://{v2}\"]\n\
         [[routes]]\nname = \"api\"\nrule = \"PathPrefix(`/`)\"\nservice = \"v1\"\n\
         canary = {{ service = \"v2\", weight = 50 }}\n"
    )));
    for version in ["1.1", "1.0"] {
        let ask = format!("GET / HTTP/{version}\r\nHost: x\r\nConnection: close\r\n\r\n");
        let reply = raw_http(u.addr, ask.as_bytes()).await;
        let text = String::from_utf8_lossy(&reply).to_lowercase();
        let cookies: Vec<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("set-cookie: "))
            .collect();
        assert_eq!(cookies.len(), 3, "HTTP/{version}: {text}");
        assert!(cookies.contains(&"session=1"), "{cookies:?}");
        let last = cookies
            .iter()
            .rfind(|c| c.starts_with("umbra_canary_api="))
            .unwrap();
        assert!(
            last.starts_with("umbra_canary_api=primary")
                || last.starts_with("umbra_canary_api=canary"),
            "HTTP/{version}: umbra's cookie is the last of its name: {cookies:?}"
        );
    }
}
