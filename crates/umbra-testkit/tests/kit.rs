//! Tests of the test kit itself: every fixture behaviour, client helper and polling helper.

use std::io::Read as _;
use std::time::Duration;

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt as _, Full};
use hyper_util::rt::TokioIo;
use serde_json::json;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use umbra_testkit::{
    assert_eventually, eventually, free_addr, get, post_json, raw_http, send, try_get,
    websocket_accept, ClientError, Fixture, KeepAlive, Recorded, Reply, GARBAGE,
};

#[tokio::test]
async fn canned_routes_answer_with_their_status_type_and_body() {
    let fx = Fixture::builder()
        .json("/users/1", json!({"id": 1}))
        .text("/hello", "hi")
        .status("/boom", 500)
        .reply("/fixed", Reply::bytes(202, "raw").header("x-b", "c"))
        .start()
        .await;

    let users = get(format!("{}/users/1", fx.url())).await;
    assert_eq!(users.status, 200);
    assert_eq!(users.header("content-type"), Some("application/json"));
    assert_eq!(users.json(), json!({"id": 1}));

    let hello = get(format!("{}/hello", fx.url())).await;
    assert_eq!(hello.status, 200);
    assert!(hello
        .header("content-type")
        .is_some_and(|ct| ct.starts_with("text/plain")));
    assert_eq!(hello.text(), "hi");

    let boom = get(format!("{}/boom", fx.url())).await;
    assert_eq!(boom.status, 500);
    assert!(boom.body.is_empty());

    let fixed = get(format!("{}/fixed", fx.url())).await;
    assert_eq!(fixed.status, 202);
    assert_eq!(fixed.header("x-b"), Some("c"));
    assert_eq!(fixed.text(), "raw");

    // Matching ignores the query.
    let with_query = get(format!("{}/users/1?verbose=1", fx.url())).await;
    assert_eq!(with_query.json(), json!({"id": 1}));
}

#[tokio::test]
async fn respond_computes_the_reply_from_the_request_and_applies_its_delay() {
    let fx = Fixture::builder()
        .respond("/custom", |req: &Recorded| {
            Reply::json(201, json!({"seen": req.header("x-in"), "q": req.query()}))
                .header("x-a", "b")
                .delay(Duration::from_millis(50))
        })
        .start()
        .await;
    let req = Request::get(format!("{}/custom?k=v", fx.url()))
        .header("x-in", "hello")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let started = std::time::Instant::now();
    let res = send(req).await;
    assert!(started.elapsed() >= Duration::from_millis(50));
    assert_eq!(res.status, 201);
    assert_eq!(res.header("x-a"), Some("b"));
    assert_eq!(res.json(), json!({"seen": "hello", "q": "k=v"}));
}

#[tokio::test]
async fn prefix_routes_match_when_no_exact_route_does_and_the_longest_wins() {
    let fx = Fixture::builder()
        .prefix("/api/", |req: &Recorded| {
            Reply::text(200, format!("api {}", req.path()))
        })
        .prefix("/api/v2/", |_: &Recorded| Reply::text(200, "v2"))
        .text("/api/exact", "exact")
        .start()
        .await;
    assert_eq!(
        get(format!("{}/api/x", fx.url())).await.text(),
        "api /api/x"
    );
    assert_eq!(get(format!("{}/api/v2/y", fx.url())).await.text(), "v2");
    assert_eq!(get(format!("{}/api/exact", fx.url())).await.text(), "exact");
    // Not under the prefix: echo.
    assert_eq!(
        get(format!("{}/apix", fx.url())).await.json()["path"],
        "/apix"
    );
}

#[tokio::test]
async fn unmatched_paths_echo_the_request_as_json() {
    let fx = Fixture::builder().name("v1").start().await;
    let res = post_json(format!("{}/echo/me?a=1&b=2", fx.url()), &json!({"x": 1})).await;
    assert_eq!(res.status, 200);
    assert_eq!(res.header("x-fixture"), Some("v1"));
    let echo = res.json();
    assert_eq!(echo["method"], "POST");
    assert_eq!(echo["uri"], "/echo/me?a=1&b=2");
    assert_eq!(echo["path"], "/echo/me");
    assert_eq!(echo["query"], "a=1&b=2");
    assert_eq!(echo["headers"]["content-type"], "application/json");
    assert_eq!(echo["body"], r#"{"x":1}"#);
    assert_eq!(echo["fixture"], "v1");

    let unnamed = Fixture::builder().start().await;
    let echo = get(format!("{}/plain", unnamed.url())).await.json();
    assert_eq!(echo["fixture"], serde_json::Value::Null);
    assert_eq!(echo["query"], serde_json::Value::Null);
    assert_eq!(echo["body"], "");
}

#[tokio::test]
async fn name_header_is_on_every_kind_of_response() {
    let fx = Fixture::builder()
        .name("v2")
        .json("/j", json!(1))
        .status("/s", 404)
        .health("/health")
        .start()
        .await;
    for path in ["/j", "/s", "/health", "/echo"] {
        let res = get(format!("{}{path}", fx.url())).await;
        assert_eq!(res.header("x-fixture"), Some("v2"), "on {path}");
    }
}

#[tokio::test]
async fn requests_are_recorded_with_method_uri_headers_body_and_version() {
    let fx = Fixture::builder().text("/a", "a").start().await;
    let req = Request::put(format!("{}/a?z=9", fx.url()))
        .header("X-Mixed-Case", "yes")
        .body(Full::new(Bytes::from_static(b"payload")))
        .unwrap();
    send(req).await;
    get(format!("{}/b", fx.url())).await;
    get(format!("{}/a", fx.url())).await;

    assert_eq!(fx.hits(), 3);
    assert_eq!(fx.hits_for("/a"), 2);
    assert_eq!(fx.hits_for("/a?z=9"), 1);
    assert_eq!(fx.hits_for("/b"), 1);
    assert_eq!(fx.hits_for("/nope"), 0);

    let first = &fx.requests()[0];
    assert_eq!(first.method, "PUT");
    assert_eq!(first.uri, "/a?z=9");
    assert_eq!(first.path(), "/a");
    assert_eq!(first.query(), Some("z=9"));
    assert_eq!(first.body, b"payload");
    assert_eq!(first.version, "HTTP/1.1");
    assert_eq!(first.header("x-mixed-case"), Some("yes"));
    assert_eq!(first.header("X-MIXED-CASE"), Some("yes"));
    assert!(first.headers.iter().any(|(n, _)| n == "x-mixed-case"));
    assert_eq!(fx.requests_for("/a").len(), 2);
    assert_eq!(fx.last_request().unwrap().uri, "/a");

    fx.clear_requests();
    assert_eq!(fx.hits(), 0);
}

#[tokio::test]
async fn health_toggles_and_is_not_counted_as_traffic() {
    let fx = Fixture::builder().health("/health").start().await;
    let up = get(format!("{}/health", fx.url())).await;
    assert_eq!((up.status.as_u16(), up.text().as_str()), (200, "ok"));

    fx.set_healthy(false);
    assert_eq!(get(format!("{}/health", fx.url())).await.status, 503);
    fx.set_healthy(true);
    assert_eq!(get(format!("{}/health", fx.url())).await.status, 200);

    assert_eq!(fx.health_hits(), 3);
    assert_eq!(fx.hits(), 0);
}

#[tokio::test]
async fn delay_route_and_global_delay_hold_the_response_back() {
    let fx = Fixture::builder()
        .delay("/slow", Duration::from_millis(100))
        .health("/health")
        .start()
        .await;
    let started = std::time::Instant::now();
    let res = get(format!("{}/slow", fx.url())).await;
    assert!(started.elapsed() >= Duration::from_millis(100));
    assert_eq!(res.status, 200);
    assert_eq!(res.json()["path"], "/slow");

    fx.set_delay(Duration::from_millis(80));
    let started = std::time::Instant::now();
    get(format!("{}/other", fx.url())).await;
    assert!(started.elapsed() >= Duration::from_millis(80));
    // Health probes are not slowed, so they do not fail a proxy's health checks. Only a lower
    // bound is checked elsewhere; here the probe just has to answer.
    assert_eq!(get(format!("{}/health", fx.url())).await.status, 200);
}

#[tokio::test]
async fn reset_drops_the_connection_without_a_response() {
    let fx = Fixture::builder().reset("/reset").start().await;
    let err = try_get(format!("{}/reset", fx.url())).await.unwrap_err();
    assert!(matches!(err, ClientError::Request(_)), "{err:?}");
    let raw = raw_http(fx.addr(), b"GET /reset HTTP/1.1\r\nhost: x\r\n\r\n").await;
    assert!(raw.is_empty(), "{raw:?}");
    assert_eq!(fx.hits_for("/reset"), 2);
}

#[tokio::test]
async fn garbage_writes_non_http_bytes_then_closes() {
    let fx = Fixture::builder().garbage("/garbage").start().await;
    let raw = raw_http(fx.addr(), b"GET /garbage HTTP/1.1\r\nhost: x\r\n\r\n").await;
    assert_eq!(raw, GARBAGE);
    assert!(try_get(format!("{}/garbage", fx.url())).await.is_err());
}

#[tokio::test]
async fn faults_also_hit_later_requests_on_a_kept_alive_connection() {
    let fx = Fixture::builder()
        .text("/ok", "ok")
        .garbage("/garbage")
        .start()
        .await;
    let mut conn = KeepAlive::connect(fx.addr()).await;
    assert_eq!(conn.get("/ok").await.text(), "ok");
    let req = Request::get("/garbage")
        .body(Full::new(Bytes::new()))
        .unwrap();
    assert!(conn.try_send(req).await.is_err());
    assert_eq!(fx.connections(), 1);
}

#[tokio::test]
async fn hang_never_answers_and_holds_the_connection() {
    let fx = Fixture::builder().hang("/hang").start().await;
    let waited = tokio::time::timeout(
        Duration::from_millis(300),
        try_get(format!("{}/hang", fx.url())),
    )
    .await;
    assert!(waited.is_err(), "hang answered: {waited:?}");
    assert_eq!(fx.hits_for("/hang"), 1);
    // Shutting down releases the hung connection too.
    tokio::time::timeout(Duration::from_secs(5), fx.shutdown())
        .await
        .expect("shutdown with a hung request");
}

#[tokio::test]
async fn stream_sends_chunks_separately() {
    let chunks = vec![
        Bytes::from_static(b"one;"),
        Bytes::from_static(b"two;"),
        Bytes::from_static(b"three"),
    ];
    let fx = Fixture::builder()
        .stream("/stream", chunks.clone(), Duration::from_millis(100))
        .start()
        .await;

    let raw = raw_http(
        fx.addr(),
        b"GET /stream HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n",
    )
    .await;
    let raw = String::from_utf8(raw).unwrap();
    assert!(raw.starts_with("HTTP/1.1 200"), "{raw}");
    assert!(raw
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked"));

    // Read frame by frame: the first chunk arrives on its own, before the stream has ended.
    let stream = TcpStream::connect(fx.addr()).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    let req = Request::get("/stream")
        .header("host", "x")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let mut body = sender.send_request(req).await.unwrap().into_body();
    let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
    assert_eq!(first, chunks[0]);
    let mut rest = Vec::new();
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame.unwrap().into_data() {
            rest.extend_from_slice(&data);
        }
    }
    assert_eq!(rest, b"two;three");
}

#[tokio::test]
async fn gzip_json_is_compressed_and_labelled() {
    let fx = Fixture::builder()
        .gzip_json("/gz", json!({"big": "payload"}))
        .start()
        .await;
    let res = get(format!("{}/gz", fx.url())).await;
    assert_eq!(res.header("content-encoding"), Some("gzip"));
    assert_eq!(res.header("content-type"), Some("application/json"));
    let mut plain = String::new();
    flate2::read::GzDecoder::new(&res.body[..])
        .read_to_string(&mut plain)
        .unwrap();
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&plain).unwrap(),
        json!({"big": "payload"})
    );
}

#[test]
fn websocket_accept_matches_rfc_6455_example() {
    assert_eq!(
        websocket_accept("dGhlIHNhbXBsZSBub25jZQ=="),
        "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
    );
}

#[tokio::test]
async fn upgrade_echo_switches_protocols_then_echoes_bytes() {
    let fx = Fixture::builder()
        .name("ws")
        .upgrade_echo("/ws")
        .start()
        .await;
    let mut stream = TcpStream::connect(fx.addr()).await.unwrap();
    stream
        .write_all(
            b"GET /ws HTTP/1.1\r\nhost: x\r\nupgrade: websocket\r\nconnection: Upgrade\r\n\
              sec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\nsec-websocket-version: 13\r\n\r\n",
        )
        .await
        .unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        stream.read_exact(&mut byte).await.unwrap();
        head.push(byte[0]);
    }
    let head = String::from_utf8(head).unwrap().to_ascii_lowercase();
    assert!(
        head.starts_with("http/1.1 101 switching protocols"),
        "{head}"
    );
    assert!(head.contains("upgrade: websocket"), "{head}");
    assert!(head.contains("connection: upgrade"), "{head}");
    assert!(
        head.contains("sec-websocket-accept: s3pplmbitxaq9kygzzhzrbk+xoo="),
        "{head}"
    );
    assert!(head.contains("x-fixture: ws"), "{head}");

    for msg in [&b"ping"[..], b"\x00\x01binary\xff"] {
        stream.write_all(msg).await.unwrap();
        let mut back = vec![0u8; msg.len()];
        stream.read_exact(&mut back).await.unwrap();
        assert_eq!(back, msg);
    }

    // Without the upgrade headers the endpoint refuses.
    assert_eq!(get(format!("{}/ws", fx.url())).await.status, 400);
}

#[tokio::test]
async fn h2c_prior_knowledge_is_served() {
    let fx = Fixture::builder().text("/hello", "hi").start().await;
    let mut conn = KeepAlive::connect_h2c(fx.addr()).await;
    let res = conn.get("/hello").await;
    assert_eq!(res.version, http::Version::HTTP_2);
    assert_eq!(res.text(), "hi");
    let echo = conn.get("/echo?q=1").await.json();
    assert_eq!(echo["uri"], "/echo?q=1");
    assert_eq!(fx.requests()[0].version, "HTTP/2.0");
    assert_eq!(fx.connections(), 1);
}

#[tokio::test]
async fn keep_alive_sends_several_requests_over_one_connection() {
    let fx = Fixture::builder()
        .text("/a", "A")
        .text("/b", "B")
        .start()
        .await;
    let mut conn = KeepAlive::connect(fx.addr()).await;
    let texts: Vec<String> = conn
        .get_all(&["/a", "/b", "/a"])
        .await
        .iter()
        .map(|r| r.text())
        .collect();
    assert_eq!(texts, ["A", "B", "A"]);
    assert!(!conn.is_closed());
    assert_eq!(fx.connections(), 1);
    assert_eq!(fx.hits(), 3);
    assert_eq!(
        fx.requests()[0].header("host"),
        Some(&*fx.addr().to_string())
    );
}

#[tokio::test]
async fn malformed_requests_get_a_400_over_raw_http() {
    let fx = Fixture::builder().start().await;
    let raw = raw_http(fx.addr(), b"NOT A REQUEST\r\n\r\n").await;
    let raw = String::from_utf8_lossy(&raw);
    assert!(raw.starts_with("HTTP/1.1 400"), "{raw}");
    assert_eq!(fx.hits(), 0);
}

#[tokio::test]
async fn refusing_and_free_addresses_have_no_listener() {
    for addr in [Fixture::refusing(), free_addr()] {
        assert!(addr.ip().is_loopback());
        assert_ne!(addr.port(), 0);
        let err = try_get(format!("http://{addr}/")).await.unwrap_err();
        assert!(matches!(err, ClientError::Request(_)), "{err:?}");
    }
}

#[tokio::test]
async fn raw_garbage_server_answers_every_connection_with_garbage() {
    let server = Fixture::raw_garbage_server().await;
    for _ in 0..2 {
        let raw = raw_http(server.addr(), b"GET / HTTP/1.1\r\nhost: x\r\n\r\n").await;
        assert_eq!(raw, GARBAGE);
    }
    assert!(try_get(format!("{}/", server.url())).await.is_err());
    assert_eq!(server.connections(), 3);
    let addr = server.addr();
    server.shutdown().await;
    assert!(TcpStream::connect(addr).await.is_err());
}

#[tokio::test]
async fn shutdown_releases_the_port_and_listen_on_can_take_it_again() {
    let fx = Fixture::builder().name("first").start().await;
    let addr = fx.addr();
    fx.shutdown().await;
    assert!(TcpStream::connect(addr).await.is_err());

    let again = Fixture::builder()
        .name("second")
        .listen_on(addr)
        .start()
        .await;
    assert_eq!(again.addr(), addr);
    let res = get(format!("http://{addr}/")).await;
    assert_eq!(res.header("x-fixture"), Some("second"));
}

#[tokio::test]
async fn dropping_a_fixture_stops_it() {
    let fx = Fixture::builder().start().await;
    let addr = fx.addr();
    drop(fx);
    assert_eventually!(
        TcpStream::connect(addr).await.is_err(),
        timeout = Duration::from_secs(5),
        "{addr} still accepts after drop"
    );
}

#[tokio::test]
async fn a_cloned_builder_starts_independent_fixtures() {
    let builder = Fixture::builder().json("/x", json!({"same": true}));
    let primary = builder.clone().name("primary").start().await;
    let shadow = builder.name("shadow").start().await;
    assert_ne!(primary.addr(), shadow.addr());
    let p = get(format!("{}/x", primary.url())).await;
    let s = get(format!("{}/x", shadow.url())).await;
    assert_eq!(p.json(), s.json());
    assert_eq!(primary.hits(), 1);
    assert_eq!(shadow.hits(), 1);
}

#[tokio::test]
async fn assert_eventually_passes_once_the_condition_holds() {
    let fx = Fixture::builder().start().await;
    let url = fx.url();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(60)).await;
        get(format!("{url}/late")).await;
    });
    assert_eventually!(fx.hits() == 1);
    assert_eventually!(fx.hits_for("/late") == 1, timeout = Duration::from_secs(1));
    assert_eventually!(fx.hits() == 1, "hits: {}", fx.hits());
    assert_eventually!(
        get(format!("{}/again", fx.url())).await.status == 200,
        timeout = Duration::from_secs(1),
        "an awaiting condition"
    );
    eventually(Duration::from_secs(1), || async { fx.hits() == 2 }).await;
}

#[tokio::test]
#[should_panic(expected = "assert_eventually failed after 100ms: never true: 7")]
async fn assert_eventually_panics_with_the_message_on_timeout() {
    let value = 7;
    assert_eventually!(
        value == 8,
        timeout = Duration::from_millis(100),
        "never true: {}",
        value
    );
}

#[tokio::test]
#[should_panic(expected = "assert_eventually failed after 5s: 1 + 1 == 3")]
async fn assert_eventually_defaults_to_the_condition_text_and_five_seconds() {
    assert_eventually!(1 + 1 == 3);
}

#[tokio::test]
#[should_panic(expected = "condition not met within 100ms")]
async fn eventually_panics_on_timeout() {
    eventually(Duration::from_millis(100), || async { false }).await;
}
