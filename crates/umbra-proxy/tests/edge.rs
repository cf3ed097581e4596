//! The edge with raw bytes: what umbra refuses and how it frames, on both client lanes (the
//! fast lane and hyper's server, `proxy.fast_lane = false`). Each case writes exact bytes to
//! a socket and reads exactly what the client got and what the upstream got.

use std::sync::{Arc, Mutex};
use std::time::Duration;

mod support;

use support::raw::{field, status};
use support::Umbra;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use umbra_core::Config;

/// An upstream that records every request's raw bytes and answers each with `reply`, then
/// closes the connection.
struct Upstream {
    addr: std::net::SocketAddr,
    got: Arc<Mutex<Vec<Vec<u8>>>>,
}

impl Upstream {
    async fn start(reply: &'static [u8]) -> Upstream {
        Upstream::serve(reply, Duration::ZERO).await
    }

    /// Answers with `reply`, then holds the connection open for `stall` before closing.
    async fn serve(reply: &'static [u8], stall: Duration) -> Upstream {
        Upstream::slow(reply, Duration::ZERO, stall).await
    }

    /// Answers with `reply` after `delay`, then holds the connection open for `stall`.
    async fn slow(reply: &'static [u8], delay: Duration, stall: Duration) -> Upstream {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let got = Arc::new(Mutex::new(Vec::new()));
        let seen = got.clone();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                let seen = seen.clone();
                tokio::spawn(async move {
                    let req = read_request(&mut s).await;
                    seen.lock().unwrap().push(req);
                    tokio::time::sleep(delay).await;
                    let _ = s.write_all(reply).await;
                    tokio::time::sleep(stall).await;
                    let _ = s.shutdown().await;
                });
            }
        });
        Upstream { addr, got }
    }

    fn requests(&self) -> Vec<String> {
        let got = self.got.lock().unwrap();
        got.iter()
            .map(|r| String::from_utf8_lossy(r).into_owned())
            .collect()
    }
}

/// One request's bytes: the head, then a Content-Length body or a chunked body up to its
/// last chunk (or whatever came before the peer stopped sending, within 2 s).
async fn read_request(s: &mut TcpStream) -> Vec<u8> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = find(&buf, b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let whole = match head.lines().find_map(|l| l.strip_prefix("content-length:")) {
                Some(n) => buf.len() >= end + 4 + n.trim().parse::<usize>().unwrap_or(0),
                None if head.contains("transfer-encoding: chunked") => {
                    find(&buf[end..], b"\r\n0\r\n\r\n").is_some()
                }
                None => true,
            };
            if whole {
                return buf;
            }
        }
        match tokio::time::timeout(Duration::from_secs(2), s.read(&mut chunk)).await {
            Ok(Ok(n)) if n > 0 => buf.extend_from_slice(&chunk[..n]),
            _ => return buf,
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// umbra on one lane in front of `upstream`, with `extra` proxy keys and route keys.
fn umbra(fast_lane: bool, upstream: &Upstream, proxy_keys: &str, route_keys: &str) -> Umbra {
    let text = format!(
        "[proxy]\nlisten = \"127.0.0.1:0\"\ntimeout = \"2s\"\nfast_lane = {fast_lane}\n{proxy_keys}\n\
         [log]\naccess = false\n\
         [services.app]\nservers = [\"http://{}\"]\n\
         [[routes]]\nname = \"a\"\nrule = \"Host(`a.test`)\"\nservice = \"app\"\n{route_keys}\n",
        upstream.addr
    );
    let config = Config::parse(&text, "test.toml", &|_| None).unwrap_or_else(|e| panic!("{e}"));
    support::start(config)
}

/// What the client got: the whole bytes until umbra closed or 2 s of silence.
async fn exchange(addr: std::net::SocketAddr, request: &[u8]) -> (String, bool) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(request).await.unwrap();
    let mut out = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        match tokio::time::timeout(Duration::from_secs(2), s.read(&mut chunk)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return (String::from_utf8_lossy(&out).into_owned(), true),
            Ok(Ok(n)) => out.extend_from_slice(&chunk[..n]),
            Err(_) => return (String::from_utf8_lossy(&out).into_owned(), false),
        }
    }
}

const OK: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok";

#[tokio::test]
async fn host_must_be_one_and_an_absolute_target_wins() {
    for lane in [true, false] {
        let up = Upstream::start(OK).await;
        let u = umbra(lane, &up, "", "");
        let (r, _) = exchange(
            u.addr,
            b"GET / HTTP/1.1\r\nHost: a.test\r\nHost: b.test\r\n\r\n",
        )
        .await;
        assert_eq!(status(&r), "400", "lane {lane}: two Hosts: {r}");
        assert!(r.contains("\"bad_request\""), "{r}");
        let (r, _) = exchange(u.addr, b"GET / HTTP/1.1\r\n\r\n").await;
        assert_eq!(status(&r), "400", "lane {lane}: no Host on 1.1: {r}");
        assert!(
            up.requests().is_empty(),
            "nothing forwarded: {:?}",
            up.requests()
        );

        let (r, _) = exchange(u.addr, b"GET /x HTTP/1.0\r\n\r\n").await;
        assert_eq!(
            status(&r),
            "404",
            "lane {lane}: 1.0 without Host is routed (no route)"
        );

        let (r, _) = exchange(
            u.addr,
            b"GET http://a.test/abs?q=1 HTTP/1.1\r\nHost: elsewhere.test\r\n\r\n",
        )
        .await;
        assert_eq!(status(&r), "200", "lane {lane}: routed by the target: {r}");
        let got = up.requests();
        assert_eq!(got.len(), 1, "{got:?}");
        assert!(
            got[0].starts_with("GET /abs?q=1 HTTP/1.1\r\n"),
            "origin form upstream: {}",
            got[0]
        );
        assert_eq!(field(&got[0], "host"), ["a.test"], "{}", got[0]);
    }
}

#[tokio::test]
async fn connect_and_options_star_are_answered_not_forwarded() {
    for lane in [true, false] {
        let up = Upstream::start(OK).await;
        let u = umbra(lane, &up, "", "");
        let (r, _) = exchange(
            u.addr,
            b"CONNECT a.test:443 HTTP/1.1\r\nHost: a.test:443\r\n\r\n",
        )
        .await;
        assert_eq!(status(&r), "405", "lane {lane}: {r}");
        assert!(r.contains("\"method_not_allowed\""), "{r}");
        let (r, _) = exchange(u.addr, b"OPTIONS * HTTP/1.1\r\nHost: a.test\r\n\r\n").await;
        assert_eq!(status(&r), "400", "lane {lane}: {r}");
        assert!(r.contains("\"bad_request\""), "{r}");
        assert!(up.requests().is_empty(), "{:?}", up.requests());
    }
}

#[tokio::test]
async fn client_fields_umbra_owns_or_cannot_vouch_for_are_not_passed() {
    for lane in [true, false] {
        let up = Upstream::start(OK).await;
        let u = umbra(lane, &up, "", "");
        let (r, _) = exchange(
            u.addr,
            b"GET / HTTP/1.1\r\nHost: a.test\r\nX-Umbra-Shadow: 1\r\nX-Forwarded-For: 6.6.6.6\r\n\
              X-Forwarded-Host: evil.test\r\nX-Forwarded-Prefix: /admin\r\nX_Real_Ip: 6.6.6.6\r\n\
              HTTP2-Settings: AAMAAABkAAQAoAAAAAIAAAAA\r\n\r\n",
        )
        .await;
        assert_eq!(status(&r), "200", "lane {lane}: {r}");
        let got = &up.requests()[0];
        assert!(field(got, "x-umbra-shadow").is_empty(), "{got}");
        assert!(field(got, "http2-settings").is_empty(), "{got}");
        assert!(field(got, "x_real_ip").is_empty(), "{got}");
        assert!(field(got, "x-forwarded-prefix").is_empty(), "{got}");
        assert_eq!(field(got, "x-forwarded-for"), ["127.0.0.1"], "{got}");
        assert_eq!(field(got, "x-forwarded-host"), ["a.test"], "{got}");

        // From a trusted proxy the chain is kept, and a route may pass `_` names.
        let up = Upstream::start(OK).await;
        let u = umbra(
            lane,
            &up,
            "trusted_proxies = [\"127.0.0.0/8\"]",
            "underscores_in_headers = true",
        );
        let (r, _) = exchange(
            u.addr,
            b"GET / HTTP/1.1\r\nHost: a.test\r\nX-Forwarded-For: 10.1.2.3\r\nX_Real_Ip: 10.1.2.3\r\n\r\n",
        )
        .await;
        assert_eq!(status(&r), "200", "{r}");
        let got = &up.requests()[0];
        assert_eq!(
            field(got, "x-forwarded-for"),
            ["10.1.2.3, 127.0.0.1"],
            "{got}"
        );
        assert_eq!(field(got, "x_real_ip"), ["10.1.2.3"], "{got}");
    }
}

#[tokio::test]
async fn a_coded_response_reaches_the_client_without_its_length() {
    const BOTH: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\
                          Connection: close\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n";
    for lane in [true, false] {
        // A bodiless GET (umbra's own client) and a POST with a body (hyper's client).
        let requests: [&[u8]; 2] = [
            b"GET / HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n",
            b"POST / HTTP/1.1\r\nHost: a.test\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi",
        ];
        for req in requests {
            let up = Upstream::start(BOTH).await;
            let u = umbra(lane, &up, "", "");
            let (r, closed) = exchange(u.addr, req).await;
            assert_eq!(status(&r), "200", "lane {lane}: {r}");
            assert!(field(&r, "content-length").is_empty(), "lane {lane}: {r}");
            assert!(
                r.contains("hello") && r.contains(" world"),
                "whole body: {r}"
            );
            assert!(closed);
        }
    }
}

#[tokio::test]
async fn a_repeated_length_is_said_once() {
    const TWICE: &[u8] =
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok";
    for lane in [true, false] {
        let up = Upstream::start(TWICE).await;
        let u = umbra(lane, &up, "", "");
        let (r, _) = exchange(
            u.addr,
            b"POST / HTTP/1.1\r\nHost: a.test\r\nContent-Length: 2\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi",
        )
        .await;
        assert_eq!(status(&r), "200", "lane {lane}: {r}");
        assert_eq!(field(&r, "content-length"), ["2"], "client side: {r}");
        let got = &up.requests()[0];
        assert_eq!(field(got, "content-length"), ["2"], "upstream side: {got}");
        assert!(got.ends_with("\r\n\r\nhi"), "{got}");
    }
}

#[tokio::test]
async fn a_get_with_a_chunked_body_keeps_it() {
    for lane in [true, false] {
        let up = Upstream::start(OK).await;
        let u = umbra(lane, &up, "", "");
        let (r, _) = exchange(
            u.addr,
            b"GET /search HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n\
              5\r\nhello\r\n0\r\n\r\n",
        )
        .await;
        assert_eq!(status(&r), "200", "lane {lane}: {r}");
        let got = &up.requests()[0];
        assert!(got.starts_with("GET /search HTTP/1.1\r\n"), "{got}");
        assert!(
            got.contains("\r\n\r\n5\r\nhello\r\n0\r\n\r\n"),
            "body forwarded: {got:?}"
        );
    }
}

#[tokio::test]
async fn a_malformed_chunked_body_is_the_clients_fault() {
    let bodies: [&[u8]; 4] = [
        b"zz\r\nhello\r\n0\r\n\r\n",
        b"ffffffffffffffffffff\r\nhello\r\n0\r\n\r\n",
        b"5\nhello\r\n0\r\n\r\n",
        b"5\r\nhelloXX0\r\n\r\n",
    ];
    for lane in [true, false] {
        for body in bodies {
            let up = Upstream::start(OK).await;
            let u = umbra(lane, &up, "", "");
            let mut req =
                b"POST / HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
            req.extend_from_slice(body);
            let (r, closed) = exchange(u.addr, &req).await;
            let shown = String::from_utf8_lossy(body);
            assert_eq!(status(&r), "400", "lane {lane}, body {shown:?}: {r}");
            assert!(r.contains("\"bad_request\""), "{r}");
            assert!(closed, "the connection ends after a broken body");
        }
    }
}

#[tokio::test]
async fn only_allowed_upgrades_pass_and_an_unasked_switch_closes() {
    const SWITCH: &[u8] =
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n\r\n";
    for lane in [true, false] {
        let up = Upstream::start(OK).await;
        let u = umbra(lane, &up, "", "");
        let (r, _) = exchange(
            u.addr,
            b"GET / HTTP/1.1\r\nHost: a.test\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n\
              HTTP2-Settings: AAMAAABkAAQAoAAAAAIAAAAA\r\n\r\n",
        )
        .await;
        assert_eq!(
            status(&r),
            "200",
            "lane {lane}: served as plain HTTP/1.1: {r}"
        );
        let got = &up.requests()[0];
        assert!(field(got, "upgrade").is_empty(), "{got}");
        assert!(field(got, "http2-settings").is_empty(), "{got}");

        let up = Upstream::start(SWITCH).await;
        let u = umbra(lane, &up, "", "");
        let (r, closed) = exchange(u.addr, b"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n").await;
        assert_eq!(status(&r), "502", "lane {lane}: {r}");
        assert!(closed, "lane {lane}: the client is not left waiting");
    }
}

#[tokio::test]
async fn a_stalled_body_ends_after_the_idle_timeout() {
    const HALF: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhalf";
    for lane in [true, false] {
        // The upstream stalls mid-response (for far longer than the client waits here).
        let up = Upstream::serve(HALF, Duration::from_secs(30)).await;
        let u = umbra(lane, &up, "idle_timeout = \"300ms\"", "");
        let (r, closed) = exchange(u.addr, b"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n").await;
        assert!(
            r.ends_with("half"),
            "lane {lane}: what came is relayed: {r}"
        );
        assert!(closed, "lane {lane}: the cut body ends the connection");

        // The client stalls mid-upload.
        let up = Upstream::start(OK).await;
        let u = umbra(lane, &up, "idle_timeout = \"300ms\"", "");
        let (r, closed) = exchange(
            u.addr,
            b"POST / HTTP/1.1\r\nHost: a.test\r\nContent-Length: 10\r\n\r\nhal",
        )
        .await;
        assert!(closed, "lane {lane}: the stalled upload ends: {r}");
        assert!(
            r.is_empty() || status(&r) == "400",
            "lane {lane}: the client's fault, never a 502: {r}"
        );
    }
}

#[tokio::test]
async fn an_oversized_upstream_head_gets_one_answer_from_either_client() {
    let mut many = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n".to_vec();
    for i in 0..150 {
        many.extend_from_slice(format!("X-H{i}: v\r\n").as_bytes());
    }
    many.extend_from_slice(b"\r\nok");
    let mut large = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-Big: ".to_vec();
    large.extend(std::iter::repeat_n(b'a', 70 * 1024));
    large.extend_from_slice(b"\r\n\r\nok");
    let heads: [&'static [u8]; 2] = [many.leak(), large.leak()];
    for lane in [true, false] {
        for head in heads {
            // A bodiless GET goes on umbra's own client, a POST with a body on hyper's.
            let requests: [&[u8]; 2] = [
                b"GET / HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n",
                b"POST / HTTP/1.1\r\nHost: a.test\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi",
            ];
            for req in requests {
                let up = Upstream::start(head).await;
                let u = umbra(lane, &up, "", "");
                let (r, _) = exchange(u.addr, req).await;
                assert_eq!(
                    status(&r),
                    "502",
                    "lane {lane}, {} bytes, {}: {r}",
                    head.len(),
                    String::from_utf8_lossy(&req[..4])
                );
                assert!(r.contains("\"upstream_unavailable\""), "{r}");
            }
        }
    }
}

#[tokio::test]
async fn an_idle_http2_connection_is_closed() {
    // The client preface and an empty SETTINGS frame (RFC 9113 §3.4), then nothing.
    const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00";
    for lane in [true, false] {
        let up = Upstream::start(OK).await;
        let u = umbra(lane, &up, "idle_timeout = \"300ms\"", "");
        let (r, closed) = exchange(u.addr, PREFACE).await;
        assert!(
            r.len() >= 9,
            "lane {lane}: umbra's SETTINGS came first: {r:?}"
        );
        assert!(closed, "lane {lane}: the idle h2c connection is closed");
    }
}

/// A keep-alive connection that has had one answered request.
async fn used_connection(addr: std::net::SocketAddr) -> TcpStream {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 1024];
    let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
        .await
        .expect("an answer")
        .unwrap();
    assert!(
        buf[..n].starts_with(b"HTTP/1.1 200"),
        "{:?}",
        String::from_utf8_lossy(&buf[..n])
    );
    s
}

/// Whether the peer closed `s` (EOF or reset) within 5 s.
async fn closed(s: &mut TcpStream) -> bool {
    let mut buf = [0u8; 64];
    matches!(
        tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf)).await,
        Ok(Ok(0)) | Ok(Err(_))
    )
}

#[tokio::test]
async fn past_max_connections_the_oldest_idle_one_makes_room() {
    const KEEP: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
    for lane in [true, false] {
        let up = Upstream::start(KEEP).await;
        let u = umbra(lane, &up, "max_connections = 2", "");
        let mut first = used_connection(u.addr).await;
        let _second = used_connection(u.addr).await;
        let _third = used_connection(u.addr).await;
        assert!(
            closed(&mut first).await,
            "lane {lane}: the oldest idle connection is shed"
        );

        // Two requests in flight fill the table: a third connection is refused.
        let up = Upstream::slow(KEEP, Duration::from_secs(1), Duration::ZERO).await;
        let u = umbra(lane, &up, "max_connections = 2", "");
        let mut busy = Vec::new();
        for _ in 0..2 {
            let mut s = TcpStream::connect(u.addr).await.unwrap();
            s.write_all(b"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n")
                .await
                .unwrap();
            busy.push(s);
        }
        umbra_testkit::assert_eventually!(up.requests().len() == 2);
        let mut refused = TcpStream::connect(u.addr).await.unwrap();
        assert!(
            closed(&mut refused).await,
            "lane {lane}: no idle connection to shed"
        );
        for s in &mut busy {
            let mut buf = [0u8; 256];
            let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf))
                .await
                .expect("the busy ones finish")
                .unwrap();
            assert!(buf[..n].starts_with(b"HTTP/1.1 200"), "lane {lane}");
        }
    }
}

#[tokio::test]
async fn on_http2_the_authority_wins_over_a_host_field() {
    use http_body_util::{BodyExt, Empty};
    let up = Upstream::start(OK).await;
    let u = umbra(true, &up, "grace = \"1s\"", "");
    let tcp = TcpStream::connect(u.addr).await.unwrap();
    let (mut send, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(tcp),
    )
    .await
    .unwrap();
    tokio::spawn(conn);
    let req = http::Request::get("http://a.test/h2?x=1")
        .header("host", "elsewhere.test")
        .body(Empty::<bytes::Bytes>::new())
        .unwrap();
    let resp = send.send_request(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&body[..], b"ok");
    let got = &up.requests()[0];
    assert!(got.starts_with("GET /h2?x=1 HTTP/1.1\r\n"), "{got}");
    assert_eq!(
        field(got, "host"),
        ["a.test"],
        "routed and sent by :authority: {got}"
    );
    drop(send);
}

#[tokio::test]
async fn upstream_framing_umbra_does_not_pass_on() {
    const NO_CONTENT: &[u8] =
        b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\nX-A: 1\r\nConnection: close\r\n\r\n";
    const OLD: &[u8] = b"HTTP/1.0 200 OK\r\nX-A: 1\r\n\r\nuntil close";
    const BARE_LF: &[u8] =
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n5\nhello\r\n0\r\n\r\n";
    let get = b"GET / HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n";
    for lane in [true, false] {
        // A 204 carries no length (RFC 9110 §8.6).
        let up = Upstream::start(NO_CONTENT).await;
        let u = umbra(lane, &up, "", "");
        let (r, _) = exchange(u.addr, get).await;
        assert_eq!(status(&r), "204", "lane {lane}: {r}");
        assert_eq!(field(&r, "x-a"), ["1"], "{r}");
        assert!(field(&r, "content-length").is_empty(), "lane {lane}: {r}");

        // An HTTP/1.0 upstream does not make the client's answer HTTP/1.0.
        let up = Upstream::start(OLD).await;
        let u = umbra(lane, &up, "", "");
        let (r, _) = exchange(u.addr, get).await;
        assert!(r.starts_with("HTTP/1.1 200 "), "lane {lane}: {r}");
        assert!(r.contains("until close"), "the whole body: {r}");

        // A chunk line ended by a bare LF is refused: the client never gets a body that looks
        // complete (no last chunk), and the connection ends.
        let up = Upstream::start(BARE_LF).await;
        let u = umbra(lane, &up, "", "");
        let (r, closed) = exchange(u.addr, get).await;
        assert!(closed, "lane {lane}: {r}");
        assert!(
            !r.contains("hello"),
            "lane {lane}: the misframed chunk is not relayed: {r:?}"
        );
        assert!(
            !r.ends_with("0\r\n\r\n"),
            "lane {lane}: no last chunk: {r:?}"
        );
    }
}
