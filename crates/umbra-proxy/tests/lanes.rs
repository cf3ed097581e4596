//! The differential test of umbra's two server lanes (issue 13, point 6): one corpus of raw
//! requests (valid traffic and edge cases) and scripted raw upstream responses goes through an
//! umbra with its fast lane and an umbra with `proxy.fast_lane = false` (hyper's server for
//! every connection), and both must give the client and the upstream the same status, fields
//! and body bytes.
//!
//! The test says nothing about what the right answer is, only that both lanes give the same
//! one. Only what legitimately differs between two runs is normalized: `Date` values that umbra
//! made, request ids that umbra made (checked to be 32 hex digits and to be the id the upstream
//! got), the ephemeral addresses, and the case of field names. Cases the lanes still disagree
//! on are listed in [`KNOWN_LANE_DIFFERENCES`]; the test fails when one of them starts to agree,
//! so the list cannot go stale.
//!
//! Today the fast lane hands most unusual requests (bodies, upgrades, `Expect`, HTTP/1.0,
//! absolute-form, CONNECT, heads httparse refuses) to hyper's server itself, so on those the
//! two umbras run the same code; they are in the corpus so that they stay equal when the fast
//! lane takes more. Run with `LANES_VERBOSE=1` (and `--nocapture`) to print every case as the
//! fast lane saw it.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use tokio::io::AsyncWriteExt as _;
use tokio::net::TcpStream;
use tokio::time::Instant;
use umbra_core::Config;

mod support;
use support::Umbra;
use umbra_testkit::{show, Body, Head, RawRequest, RawUpstream, WireError, WireReader};

/// Cases on which the two lanes are known to disagree today: (case name, what each lane does).
/// Each is run and its diff printed, but it does not fail the test; a case listed here whose
/// lanes agree does fail it, so that the entry is removed when the fix lands.
///
/// `fast` is umbra with its fast lane, `hyper` umbra with `proxy.fast_lane = false`.
const KNOWN_LANE_DIFFERENCES: &[(&str, &str)] = &[
    // The upstream's `Content-Length: 0` stays where the upstream put it on the fast lane;
    // hyper's server writes a zero length itself, after umbra's `x-request-id`. The same
    // fields, in another order; left as it is (moving it would cost the fast lane a pass
    // over the relayed lines).
    ("resp_90_headers", ZERO_LENGTH_MOVES),
    ("resp_16k_header", ZERO_LENGTH_MOVES),
    ("resp_location_under_strip", ZERO_LENGTH_MOVES),
];
const ZERO_LENGTH_MOVES: &str =
    "upstream `Content-Length: 0`: fast keeps it in place, hyper writes it after `x-request-id`";

/// How long the client waits for each response (and the rest of the exchange). Far above the
/// proxy's upstream timeout, so a case that waits for the proxy ends the same way in both lanes.
const WAIT: Duration = Duration::from_secs(8);
/// How long the upstreams may take to finish reading what they were sent, once the client left.
const SETTLE: Duration = Duration::from_secs(5);
/// How long the upstreams must stay unchanged to count as done with a case: bytes the proxy
/// wrote just before the client's exchange ended may still be on their way.
const QUIET: Duration = Duration::from_millis(100);
/// Sent after a case's requests: a response means the connection was still open and in step.
const PROBE: &[u8] = b"GET /__lanes_probe HTTP/1.1\r\nHost: probe.test\r\n\r\n";
const PROBE_REPLY: &[u8] = b"HTTP/1.1 200 OK\r\nX-Lanes-Probe: 1\r\nContent-Length: 0\r\n\r\n";
/// The upstream's answer where a case scripts none.
const DEFAULT_REPLY: &[u8] =
    b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 12\r\n\r\nhello lanes\n";
/// Sent through a switched protocol; the upstream echoes it.
const TUNNEL_PING: &[u8] = b"ping through the tunnel";

// ---------------------------------------------------------------------------------------------
// The two umbras

/// The config both lanes share but for `fast_lane`: a catch-all route to `main`, a
/// strip-prefix route, a canary route sticky by cookie (canary: `alt`), a route by `Host`
/// (to `alt`) and a route that allows WebSocket upgrades.
fn config(fast_lane: bool, main: &RawUpstream, alt: &RawUpstream) -> Config {
    let text = format!(
        r#"[proxy]
listen = "127.0.0.1:0"
timeout = "2s"
max_body = "64KiB"
grace = "1s"
header_timeout = "10s"
fast_lane = {fast_lane}
[log]
access = false
[services.main]
servers = ["{main}"]
[services.alt]
servers = ["{alt}"]
[[routes]]
name = "all"
rule = "PathPrefix(`/`)"
service = "main"
priority = 1
[[routes]]
name = "strip"
rule = "PathPrefix(`/strip`)"
service = "main"
strip_prefix = "/strip"
[[routes]]
name = "canary"
rule = "PathPrefix(`/canary`)"
service = "main"
canary = {{ service = "alt", weight = 50, sticky = "cookie" }}
[[routes]]
name = "hosta"
rule = "Host(`a.test`)"
service = "alt"
priority = 100
[[routes]]
name = "ws"
rule = "PathPrefix(`/ws`)"
service = "main"
upgrades = ["websocket"]
"#,
        main = main.url(),
        alt = alt.url(),
    );
    Config::parse(&text, "lanes.toml", &|_| None).unwrap_or_else(|e| panic!("{e}"))
}

/// One lane: an umbra and its two recording upstreams.
struct Lane {
    name: &'static str,
    umbra: Umbra,
    main: RawUpstream,
    alt: RawUpstream,
}

impl Lane {
    async fn start(name: &'static str, fast_lane: bool) -> Lane {
        let upstream = || {
            RawUpstream::builder()
                .default_reply(DEFAULT_REPLY)
                .aside("/__lanes_probe", PROBE_REPLY)
                .start()
        };
        let (main, alt) = (upstream().await, upstream().await);
        let umbra = support::start(config(fast_lane, &main, &alt));
        Lane {
            name,
            umbra,
            main,
            alt,
        }
    }

    /// The ephemeral addresses and their placeholders.
    fn addresses(&self) -> Vec<(Vec<u8>, &'static str)> {
        vec![
            (self.umbra.addr.to_string().into_bytes(), "<umbra>"),
            (self.main.addr().to_string().into_bytes(), "<main>"),
            (self.alt.addr().to_string().into_bytes(), "<alt>"),
        ]
    }

    /// Runs one case: scripts the upstreams, plays the client side, waits for the upstreams to
    /// finish reading, and collects what both sides saw.
    async fn run(&self, case: &Case) -> Seen {
        for up in [&self.main, &self.alt] {
            up.clear_requests();
            up.script_parts(case.script.clone());
        }
        let client = play(self.umbra.addr, case).await;
        let settled = settle(&[&self.main, &self.alt]).await;
        Seen {
            client,
            main: self.main.requests(),
            alt: self.alt.requests(),
            settled,
        }
    }
}

/// Waits (bounded) until the upstreams are quiet: no request is being read and nothing new
/// was recorded for [`QUIET`]. False if they never were.
async fn settle(upstreams: &[&RawUpstream]) -> bool {
    let until = Instant::now() + SETTLE;
    let state = || {
        upstreams
            .iter()
            .map(|u| (u.reading(), u.requests().len()))
            .collect::<Vec<_>>()
    };
    let mut last = state();
    loop {
        tokio::time::sleep(QUIET).await;
        let now = state();
        if now == last && now.iter().all(|(reading, _)| *reading == 0) {
            return true;
        }
        if Instant::now() > until {
            return false;
        }
        last = now;
    }
}

// ---------------------------------------------------------------------------------------------
// The corpus

/// One write of the client, and how many final responses it waits for after it.
struct Write {
    bytes: Vec<u8>,
    expect: usize,
}

/// A case: what the client writes, in turn, and what the upstream answers, in order.
struct Case {
    name: &'static str,
    writes: Vec<Write>,
    /// Each response in parts (written [`umbra_testkit::PART_GAP`] apart).
    script: Vec<Vec<Bytes>>,
}

impl Case {
    /// Requests written one at a time, each after the previous one's response.
    fn new(name: &'static str, requests: &[&[u8]]) -> Case {
        Case {
            name,
            writes: requests
                .iter()
                .map(|r| Write {
                    bytes: r.to_vec(),
                    expect: 1,
                })
                .collect(),
            script: Vec::new(),
        }
    }

    /// A case of one request.
    fn one(name: &'static str, request: impl AsRef<[u8]>) -> Case {
        Case::new(name, &[request.as_ref()])
    }

    /// Requests written at once (pipelined), with `expect` responses awaited after them.
    fn pipelined(name: &'static str, bytes: impl AsRef<[u8]>, expect: usize) -> Case {
        Case {
            name,
            writes: vec![Write {
                bytes: bytes.as_ref().to_vec(),
                expect,
            }],
            script: Vec::new(),
        }
    }

    /// The upstream's raw responses, in order.
    fn answers(mut self, responses: &[&[u8]]) -> Case {
        self.script = responses
            .iter()
            .map(|r| vec![Bytes::copy_from_slice(r)])
            .collect();
        self
    }

    /// One upstream response in parts, a pause between them (an empty last part: a pause,
    /// then the close).
    fn answers_in_parts(mut self, parts: &[&[u8]]) -> Case {
        self.script = vec![parts.iter().map(|p| Bytes::copy_from_slice(p)).collect()];
        self
    }

    /// Every byte the client sends (where the client's own request ids are found).
    fn sent(&self) -> Vec<u8> {
        self.writes.iter().flat_map(|w| w.bytes.clone()).collect()
    }

    fn scripted(&self) -> Vec<u8> {
        self.script
            .iter()
            .flatten()
            .flat_map(|b| b.to_vec())
            .collect()
    }
}

/// `\n` → `\r\n`: heads written readably.
fn crlf(text: &str) -> Vec<u8> {
    text.replace('\n', "\r\n").into_bytes()
}

fn get(path: &str) -> Vec<u8> {
    crlf(&format!("GET {path} HTTP/1.1\nHost: lanes.test\n\n"))
}

fn with_body(head: &str, body: &[u8]) -> Vec<u8> {
    let mut out = crlf(head);
    out.extend_from_slice(body);
    out
}

fn corpus() -> Vec<Case> {
    let mut cases = valid_traffic();
    cases.extend(request_edges());
    cases.extend(body_edges());
    cases.extend(upgrade_edges());
    cases.extend(response_edges());
    cases
}

fn valid_traffic() -> Vec<Case> {
    let ninety: String = (0..90)
        .map(|i| format!("X-Field-{i}: value {i}\n"))
        .collect();
    let hundred_twenty: String = (0..120).map(|i| format!("X-F-{i}: v\n")).collect();
    vec![
        Case::one("get_root", get("/")),
        Case::one("get_query", get("/search?q=a%20b&x=1&x=2&empty=&flag")),
        Case::one("head", crlf("HEAD /head HTTP/1.1\nHost: lanes.test\n\n"))
            .answers(&[b"HTTP/1.1 200 OK\r\nContent-Length: 12\r\nContent-Type: text/plain\r\n\r\n"]),
        Case::new("keep_alive_three_gets", &[&get("/one"), &get("/two?x=1"), &get("/three")]),
        Case::new(
            "keep_alive_get_post_get",
            &[
                &get("/first"),
                &with_body("POST /second HTTP/1.1\nHost: lanes.test\nContent-Length: 5\n\n", b"hello"),
                &get("/third"),
            ],
        ),
        Case::new(
            "keep_alive_head_then_get",
            &[&crlf("HEAD /h HTTP/1.1\nHost: lanes.test\n\n"), &get("/g")],
        )
        .answers(&[b"HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\n", DEFAULT_REPLY]),
        Case::pipelined("pipelined_two_gets", [get("/p1"), get("/p2")].concat(), 2),
        Case::one(
            "post_content_length",
            with_body(
                "POST /post HTTP/1.1\nHost: lanes.test\nContent-Type: application/json\nContent-Length: 13\n\n",
                b"{\"a\":[1,2,3]}",
            ),
        ),
        Case::one(
            "post_chunked",
            with_body(
                "POST /chunked HTTP/1.1\nHost: lanes.test\nTransfer-Encoding: chunked\n\n",
                b"5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\n\r\n",
            ),
        ),
        Case::one(
            "post_chunked_with_trailer",
            with_body(
                "POST /chunked HTTP/1.1\nHost: lanes.test\nTransfer-Encoding: chunked\nTrailer: X-Sum\n\n",
                b"3\r\nabc\r\n0\r\nX-Sum: 6\r\n\r\n",
            ),
        ),
        Case::one(
            "put_expect_continue",
            with_body(
                "PUT /put HTTP/1.1\nHost: lanes.test\nExpect: 100-continue\nContent-Length: 4\n\n",
                b"data",
            ),
        ),
        Case::one("get_content_length_zero", crlf("GET /cl0 HTTP/1.1\nHost: lanes.test\nContent-Length: 0\n\n")),
        Case::one("delete", crlf("DELETE /items/7 HTTP/1.1\nHost: lanes.test\n\n")),
        Case::one("custom_method", crlf("PURGE /cache HTTP/1.1\nHost: lanes.test\n\n")),
        Case::one("lowercase_method", crlf("get /lower HTTP/1.1\nHost: lanes.test\n\n")),
        Case::one("percent_encoded_path", get("/a%20b/%2F/%E2%82%AC/caf%C3%A9?q=%26%3D")),
        Case::one("long_url", get(&format!("/long?x={}", "a".repeat(8000)))),
        Case::one("headers_90", crlf(&format!("GET /many HTTP/1.1\nHost: lanes.test\n{ninety}\n"))),
        Case::one("headers_120", crlf(&format!("GET /many HTTP/1.1\nHost: lanes.test\n{hundred_twenty}\n"))),
        Case::one("header_8k", crlf(&format!("GET /big HTTP/1.1\nHost: lanes.test\nX-Big: {}\n\n", "b".repeat(8192)))),
        Case::one("head_over_max_header_size", crlf(&format!("GET /huge HTTP/1.1\nHost: lanes.test\nX-Huge: {}\n\n", "h".repeat(70 * 1024)))),
        Case::one("duplicate_accept", crlf("GET /dup HTTP/1.1\nHost: lanes.test\nAccept: text/html\nAccept: application/json\n\n")),
        Case::one("mixed_case_names", crlf("GET /case HTTP/1.1\nhOsT: lanes.test\nX-MiXeD-CaSe: 1\nACCEPT: */*\n\n")),
        Case::one("obs_text_header", [crlf("GET /obs HTTP/1.1\nHost: lanes.test\nX-Obs: caf"), b"\xe9 \xff\xfe end\r\n\r\n".to_vec()].concat()),
        Case::one("empty_header_value", crlf("GET /empty HTTP/1.1\nHost: lanes.test\nX-Empty:\nX-Spaces:    \n\n")),
        Case::one("client_request_id", crlf("GET /rid HTTP/1.1\nHost: lanes.test\nX-Request-Id: client-id-123\n\n")),
        Case::one("client_request_id_too_long", crlf(&format!("GET /rid HTTP/1.1\nHost: lanes.test\nX-Request-Id: {}\n\n", "r".repeat(200)))),
        Case::one("traceparent", crlf("GET /trace HTTP/1.1\nHost: lanes.test\ntraceparent: 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01\n\n")),
        Case::one("strip_prefix", get("/strip/users/1?x=1")),
        Case::one("strip_prefix_bare", get("/strip")),
        Case::one("canary_cookie_canary", crlf("GET /canary/x HTTP/1.1\nHost: lanes.test\nCookie: a=1; umbra_canary_canary=canary\n\n")),
        Case::one("canary_cookie_primary", crlf("GET /canary/x HTTP/1.1\nHost: lanes.test\nCookie: umbra_canary_canary=primary\n\n")),
        Case::one("host_route", crlf("GET /x HTTP/1.1\nHost: a.test\n\n")),
        Case::one("host_route_with_port", crlf("GET /x HTTP/1.1\nHost: A.TEST:8080\n\n")),
        Case::one("connection_close_request", crlf("GET /bye HTTP/1.1\nHost: lanes.test\nConnection: close\n\n")),
        Case::one("hop_by_hop_named", crlf("GET /hop HTTP/1.1\nHost: lanes.test\nConnection: x-hop, keep-alive\nX-Hop: secret\nKeep-Alive: timeout=5\nTE: trailers\nProxy-Connection: keep-alive\n\n")),
        Case::new("http10_keep_alive", &[&crlf("GET /old HTTP/1.0\nHost: lanes.test\nConnection: keep-alive\n\n"), &get("/after")]),
        Case::one("http10_with_host", crlf("GET /old HTTP/1.0\nHost: lanes.test\n\n")),
        Case::one("no_route_404", crlf("GET /x HTTP/1.1\nHost: lanes.test\n\n")).answers(&[b"HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\n\r\nnot found"]),
        Case::one("body_too_large", with_body("POST /big HTTP/1.1\nHost: lanes.test\nContent-Length: 70000\n\n", &vec![b'x'; 70000])),
    ]
}

fn request_edges() -> Vec<Case> {
    vec![
        Case::one("two_hosts", crlf("GET /two-hosts HTTP/1.1\nHost: a.test\nHost: b.test\n\n")),
        Case::one("two_same_hosts", crlf("GET /two-hosts HTTP/1.1\nHost: b.test\nHost: b.test\n\n")),
        Case::one("no_host_http11", crlf("GET /no-host HTTP/1.1\n\n")),
        Case::one("empty_host_http11", crlf("GET /empty-host HTTP/1.1\nHost:\n\n")),
        Case::one("http10_no_host", crlf("GET /old HTTP/1.0\n\n")),
        Case::one("absolute_form_other_host", crlf("GET http://a.test/x HTTP/1.1\nHost: b.test\n\n")),
        Case::one("absolute_form_same_host", crlf("GET http://b.test/y?q=1 HTTP/1.1\nHost: b.test\n\n")),
        Case::one("absolute_form_no_host", crlf("GET http://a.test/z HTTP/1.1\n\n")),
        Case::one("connect", crlf("CONNECT a.test:443 HTTP/1.1\nHost: a.test:443\n\n")),
        Case::one("options_star", crlf("OPTIONS * HTTP/1.1\nHost: lanes.test\n\n")),
        Case::one("options_path", crlf("OPTIONS /opt HTTP/1.1\nHost: lanes.test\n\n")),
        Case::one("client_umbra_shadow", crlf("GET /sh HTTP/1.1\nHost: lanes.test\nX-Umbra-Shadow: 1\nX-Umbra-Anything: x\n\n")),
        Case::one("client_forwarded_for", crlf("GET /xff HTTP/1.1\nHost: lanes.test\nX-Forwarded-For: 1.2.3.4\nX-Forwarded-Host: evil.test\nX-Forwarded-Proto: https\nX-Forwarded-Prefix: /evil\nForwarded: for=1.2.3.4\n\n")),
        Case::one("underscore_header", crlf("GET /us HTTP/1.1\nHost: lanes.test\nX_Custom: 1\nx_forwarded_for: 9.9.9.9\n\n")),
        Case::one("space_before_colon", crlf("GET /sp HTTP/1.1\nHost : lanes.test\n\n")),
        Case::one("obs_fold", crlf("GET /fold HTTP/1.1\nHost: lanes.test\nX-Fold: a\n  b\n\n")),
        Case::one("nul_in_value", [crlf("GET /nul HTTP/1.1\nHost: lanes.test\nX-Nul: a"), b"\0b\r\n\r\n".to_vec()].concat()),
        Case::one("bare_lf_head", b"GET /lf HTTP/1.1\nHost: lanes.test\n\n"),
        Case::one("fragment_in_target", get("/frag#section")),
        Case::one("garbage", b"GARBAGE NOT HTTP\r\n\r\n"),
        Case::one("http2_version_line", crlf("GET / HTTP/2.0\nHost: lanes.test\n\n")),
    ]
}

fn body_edges() -> Vec<Case> {
    let chunked = |name, body: &[u8]| {
        Case::one(
            name,
            with_body(
                "POST /c HTTP/1.1\nHost: lanes.test\nTransfer-Encoding: chunked\n\n",
                body,
            ),
        )
    };
    vec![
        Case::one("cl_and_te", with_body("POST /clte HTTP/1.1\nHost: lanes.test\nContent-Length: 5\nTransfer-Encoding: chunked\n\n", b"5\r\nhello\r\n0\r\n\r\n")),
        Case::one("te_and_cl", with_body("POST /clte HTTP/1.1\nHost: lanes.test\nTransfer-Encoding: chunked\nContent-Length: 30\n\n", b"5\r\nhello\r\n0\r\n\r\n")),
        Case::one("cl_list_5_5", with_body("POST /cl HTTP/1.1\nHost: lanes.test\nContent-Length: 5, 5\n\n", b"hello")),
        Case::one("cl_twice_5", with_body("POST /cl HTTP/1.1\nHost: lanes.test\nContent-Length: 5\nContent-Length: 5\n\n", b"hello")),
        Case::one("cl_conflicting", with_body("POST /cl HTTP/1.1\nHost: lanes.test\nContent-Length: 5\nContent-Length: 6\n\n", b"hello!")),
        Case::one("cl_plus_sign", with_body("POST /cl HTTP/1.1\nHost: lanes.test\nContent-Length: +5\n\n", b"hello")),
        Case::one("get_with_cl_body", with_body("GET /getbody HTTP/1.1\nHost: lanes.test\nContent-Length: 5\n\n", b"hello")),
        Case::one("get_chunked_body", with_body("GET /getbody HTTP/1.1\nHost: lanes.test\nTransfer-Encoding: chunked\n\n", b"5\r\nhello\r\n0\r\n\r\n")),
        Case::one("te_gzip_chunked", with_body("POST /te HTTP/1.1\nHost: lanes.test\nTransfer-Encoding: gzip, chunked\n\n", b"5\r\nhello\r\n0\r\n\r\n")),
        Case::one("te_identity", with_body("POST /te HTTP/1.1\nHost: lanes.test\nTransfer-Encoding: identity\nContent-Length: 5\n\n", b"hello")),
        chunked("chunked_bad_hex", b"zz\r\nhello\r\n0\r\n\r\n"),
        chunked("chunked_size_overflow", b"ffffffffffffffffff\r\nhello\r\n0\r\n\r\n"),
        chunked("chunked_bare_lf", b"5\nhello\n0\n\n"),
        chunked("chunked_missing_crlf_after_data", b"5\r\nhelloXX0\r\n\r\n"),
        chunked("chunked_negative_size", b"-5\r\nhello\r\n0\r\n\r\n"),
        chunked("chunked_empty", b"0\r\n\r\n"),
    ]
}

fn upgrade_edges() -> Vec<Case> {
    const WS_101: &[u8] = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n";
    let ws = |path: &str| {
        crlf(&format!(
            "GET {path} HTTP/1.1\nHost: lanes.test\nUpgrade: websocket\nConnection: Upgrade\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\nSec-WebSocket-Version: 13\n\n"
        ))
    };
    vec![
        Case::one("upgrade_websocket", ws("/ws/chat")).answers(&[WS_101]),
        Case::one("upgrade_websocket_refused", ws("/ws/chat"))
            .answers(&[b"HTTP/1.1 403 Forbidden\r\nContent-Length: 6\r\n\r\nno way"]),
        Case::one("upgrade_websocket_other_route", ws("/plain")).answers(&[WS_101]),
        Case::one("upgrade_h2c", crlf("GET /h2c HTTP/1.1\nHost: lanes.test\nConnection: Upgrade, HTTP2-Settings\nUpgrade: h2c\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\n\n")),
        Case::one("http2_settings_alone", crlf("GET /h2s HTTP/1.1\nHost: lanes.test\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\n\n")),
        Case::one("upgrade_unknown_protocol", crlf("GET /ws/x HTTP/1.1\nHost: lanes.test\nConnection: Upgrade\nUpgrade: foo/1\n\n")),
        Case::one("upgrade_without_connection", crlf("GET /ws/y HTTP/1.1\nHost: lanes.test\nUpgrade: websocket\n\n")),
        Case::one("unsolicited_101", get("/no-upgrade-asked")).answers(&[WS_101]),
    ]
}

fn response_edges() -> Vec<Case> {
    let ninety: String = (0..90).map(|i| format!("X-Up-{i}: u{i}\r\n")).collect();
    let resp_90 = format!("HTTP/1.1 200 OK\r\n{ninety}Content-Length: 0\r\n\r\n");
    let resp_big = format!(
        "HTTP/1.1 200 OK\r\nX-Big: {}\r\nContent-Length: 0\r\n\r\n",
        "B".repeat(16 * 1024)
    );
    let resp = |name, raw: &[u8]| Case::one(name, get("/r")).answers(&[raw]);
    let head = |name, raw: &[u8]| {
        Case::one(name, crlf("HEAD /r HTTP/1.1\nHost: lanes.test\n\n")).answers(&[raw])
    };
    vec![
        resp("resp_chunked", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"),
        resp("resp_chunked_trailers", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-T\r\n\r\n2\r\nhi\r\n0\r\nX-T: 1\r\n\r\n"),
        resp("resp_cl_and_te", b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"),
        resp("resp_cl_list_5_5", b"HTTP/1.1 200 OK\r\nContent-Length: 5, 5\r\n\r\nhello"),
        resp("resp_cl_twice", b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello"),
        resp("resp_cl_conflicting", b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\nConnection: close\r\n\r\nhello!"),
        resp("resp_204", b"HTTP/1.1 204 No Content\r\nX-A: 1\r\n\r\n"),
        resp("resp_204_with_cl", b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n"),
        resp("resp_304", b"HTTP/1.1 304 Not Modified\r\nETag: \"v1\"\r\nContent-Length: 10\r\n\r\n"),
        head("head_with_cl", b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\nContent-Type: text/plain\r\n\r\n"),
        head("head_with_chunked", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"),
        head("head_without_length", b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n"),
        resp("resp_90_headers", resp_90.as_bytes()),
        resp("resp_16k_header", resp_big.as_bytes()),
        resp("resp_upstream_request_id", b"HTTP/1.1 200 OK\r\nX-Request-Id: upstream-made-id\r\nContent-Length: 2\r\n\r\nok"),
        resp("resp_set_cookie_twice", b"HTTP/1.1 200 OK\r\nSet-Cookie: a=1; Path=/\r\nSet-Cookie: b=2; HttpOnly\r\nContent-Length: 2\r\n\r\nok"),
        resp("resp_connection_close", b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok"),
        resp("resp_keep_alive_fields", b"HTTP/1.1 200 OK\r\nConnection: keep-alive\r\nKeep-Alive: timeout=5, max=100\r\nContent-Length: 2\r\n\r\nok"),
        resp("resp_connection_names_field", b"HTTP/1.1 200 OK\r\nConnection: X-Secret\r\nX-Secret: 1\r\nX-Kept: 2\r\nContent-Length: 2\r\n\r\nok"),
        resp("resp_hop_by_hop_fields", b"HTTP/1.1 200 OK\r\nUpgrade: h2c\r\nTE: trailers\r\nTrailer: X-T\r\nProxy-Authenticate: Basic\r\nProxy-Connection: keep-alive\r\nContent-Length: 2\r\n\r\nok"),
        resp("resp_103_then_200", b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"),
        resp("resp_100_then_200", b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"),
        resp("resp_http10_close_delimited", b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nold style body"),
        resp("resp_until_close", b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nbody until close"),
        // The close comes a pause after the last bytes: when it comes with them, hyper's
        // server may or may not have flushed the head before it sees the cut.
        Case::one("resp_cut_body", get("/r")).answers_in_parts(&[
            b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\nConnection: close\r\n\r\nhello",
            b"",
        ]),
        Case::one("resp_cut_chunked", get("/r")).answers_in_parts(&[
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n5\r\nhello\r\n",
            b"",
        ]),
        Case::one("resp_streamed_chunked", get("/r")).answers_in_parts(&[
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n",
            b"6\r\n world\r\n0\r\n\r\n",
        ]),
        Case::one("resp_streamed_until_close", get("/r")).answers_in_parts(&[
            b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nfirst, ",
            b"second",
        ]),
        resp("resp_unknown_status_599", b"HTTP/1.1 599 Whatever\r\nContent-Length: 2\r\n\r\nok"),
        resp("resp_custom_reason", b"HTTP/1.1 200 Fine By Me\r\nContent-Length: 2\r\n\r\nok"),
        resp("resp_empty_reason", b"HTTP/1.1 404 \r\nContent-Length: 2\r\n\r\nno"),
        resp("resp_mixed_case_names", b"HTTP/1.1 200 OK\r\ncontent-TYPE: text/plain\r\nX-CamelCase: 1\r\nCONTENT-LENGTH: 2\r\n\r\nok"),
        resp("resp_obs_text_value", b"HTTP/1.1 200 OK\r\nX-Obs: caf\xe9 \xff\r\nContent-Length: 2\r\n\r\nok"),
        resp("resp_binary_gzip_body", b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: 20\r\n\r\n\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03\x03\x00\x00\x00\x00\x00\x00\x00\x00\x00"),
        resp("resp_date_from_upstream", b"HTTP/1.1 200 OK\r\nDate: Tue, 15 Nov 1994 08:12:31 GMT\r\nContent-Length: 2\r\n\r\nok"),
        resp("resp_server_and_via", b"HTTP/1.1 200 OK\r\nServer: upstream/1.0\r\nVia: 1.1 other\r\nContent-Length: 2\r\n\r\nok"),
        resp("resp_empty_value", b"HTTP/1.1 200 OK\r\nX-Empty:\r\nContent-Length: 2\r\n\r\nok"),
        resp("resp_500_json", b"HTTP/1.1 500 Internal Server Error\r\nContent-Type: application/json\r\nContent-Length: 15\r\n\r\n{\"error\":\"bad\"}"),
        resp("resp_garbage", b"\x16\x03\x01\x00\x05NOT-HTTP garbage\r\n\r\n"),
        resp("resp_empty_then_close", b""),
        resp("resp_bare_lf_head", b"HTTP/1.1 200 OK\nContent-Length: 2\n\nok"),
        Case::one("resp_location_under_strip", get("/strip/login")).answers(&[b"HTTP/1.1 302 Found\r\nLocation: /home\r\nContent-Length: 0\r\n\r\n"]),
        Case::new("resp_keep_alive_sequence_mixed", &[&get("/a"), &get("/b"), &get("/c")]).answers(&[
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\n0\r\n\r\n",
            b"HTTP/1.1 204 No Content\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nc",
        ]),
    ]
}

// ---------------------------------------------------------------------------------------------
// The client side, over a raw socket

/// One response as the client read it.
struct Response {
    head: Head,
    body: Body,
    /// Why its body could not be read whole.
    body_error: Option<String>,
}

/// How the client's exchange ended.
enum End {
    /// The probe after the last request was answered: the connection stayed open and in step.
    Open,
    /// The connection closed; `partial` bytes of an unfinished message had arrived.
    Closed { partial: usize },
    /// Nothing more came within the wait.
    TimedOut { partial: usize },
    /// Bytes came that are not a response.
    Malformed(String),
    /// A protocol switch: what came back through the tunnel for [`TUNNEL_PING`], and whether
    /// the tunnel then closed (rather than echoing all of it).
    Tunnel(Vec<u8>, bool),
}

impl From<WireError> for End {
    fn from(e: WireError) -> End {
        match e {
            WireError::Closed { partial } => End::Closed { partial },
            WireError::TimedOut { partial } => End::TimedOut { partial },
            WireError::Malformed(m) => End::Malformed(m),
        }
    }
}

/// What the client got.
struct ClientSide {
    responses: Vec<Response>,
    end: End,
}

/// What one lane saw of one case, on both sides.
struct Seen {
    client: ClientSide,
    main: Vec<RawRequest>,
    alt: Vec<RawRequest>,
    /// The upstreams finished reading before the bound.
    settled: bool,
}

/// Plays a case's client side: each write, then its responses; then the probe.
async fn play(addr: SocketAddr, case: &Case) -> ClientSide {
    let stream = TcpStream::connect(addr)
        .await
        .unwrap_or_else(|e| panic!("connect to umbra at {addr}: {e}"));
    let _ = stream.set_nodelay(true);
    let mut wire = WireReader::new(stream);
    let mut responses = Vec::new();
    for write in &case.writes {
        let head_request = write.bytes.starts_with(b"HEAD ");
        if wire.get_mut().write_all(&write.bytes).await.is_err() {
            return ClientSide {
                responses,
                end: End::Closed { partial: 0 },
            };
        }
        for _ in 0..write.expect {
            if let Some(end) = read_final(&mut wire, head_request, &mut responses).await {
                return ClientSide { responses, end };
            }
        }
    }
    let end = probe(&mut wire, &mut responses).await;
    ClientSide { responses, end }
}

/// Reads responses up to and including a final one (interim 1xx ones are kept too). Returns
/// how the exchange ended if it cannot go on.
async fn read_final(
    wire: &mut WireReader<TcpStream>,
    head_request: bool,
    responses: &mut Vec<Response>,
) -> Option<End> {
    loop {
        let (status, end) = read_response(wire, head_request, responses).await;
        if let Some(end) = end {
            return Some(end);
        }
        if status == 101 {
            return Some(tunnel(wire).await);
        }
        if !(100..200).contains(&status) {
            return None;
        }
    }
}

/// Reads one response into `responses`: its status, and the end if the exchange cannot go on.
async fn read_response(
    wire: &mut WireReader<TcpStream>,
    head_request: bool,
    responses: &mut Vec<Response>,
) -> (u16, Option<End>) {
    let deadline = Instant::now() + WAIT;
    let head = match wire.head(deadline).await {
        Ok(head) => head,
        Err(e) => return (0, Some(e.into())),
    };
    let status = head.status();
    let bodiless = head_request || matches!(status, 100..=199 | 204 | 304);
    let body = match head.framing(false, bodiless) {
        Ok(framing) => wire.body(framing, deadline).await,
        Err(e) => Err(e),
    };
    let (body, body_error, end) = match body {
        Ok(body) => (body, None, None),
        Err(e) => (Body::default(), Some(e.to_string()), Some(e.into())),
    };
    responses.push(Response {
        head,
        body,
        body_error,
    });
    (status, end)
}

/// After a 101: sends [`TUNNEL_PING`] and reads back what comes, up to its length or the
/// close.
async fn tunnel(wire: &mut WireReader<TcpStream>) -> End {
    use tokio::io::AsyncReadExt as _;
    let mut back = wire.buffered().to_vec();
    if wire.get_mut().write_all(TUNNEL_PING).await.is_err() {
        return End::Tunnel(back, true);
    }
    let deadline = Instant::now() + WAIT;
    while back.len() < TUNNEL_PING.len() {
        let mut buf = [0u8; 256];
        match tokio::time::timeout_at(deadline, wire.get_mut().read(&mut buf)).await {
            Ok(Ok(n @ 1..)) => back.extend_from_slice(&buf[..n]),
            Ok(_) => return End::Tunnel(back, true),
            Err(_) => break,
        }
    }
    End::Tunnel(back, false)
}

/// Sends the probe and reads until its answer: any other response first is kept (the proxy
/// answered more than the case asked). `Open` if the probe was answered.
async fn probe(wire: &mut WireReader<TcpStream>, responses: &mut Vec<Response>) -> End {
    if wire.get_mut().write_all(PROBE).await.is_err() {
        return End::Closed { partial: 0 };
    }
    loop {
        let before = responses.len();
        let (_, end) = read_response(wire, false, responses).await;
        let answered =
            responses.len() > before && !responses[before].head.all("x-lanes-probe").is_empty();
        if answered {
            responses.pop();
            return end.unwrap_or(End::Open);
        }
        if let Some(end) = end {
            return end;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Normalizing and comparing

/// What one lane saw, normalized and rendered as lines, and the contract checks it failed.
struct Rendered {
    lines: Vec<String>,
    problems: Vec<String>,
}

/// Replaces what legitimately differs between two runs, then renders both sides as lines.
fn render(addresses: Vec<(Vec<u8>, &str)>, case: &Case, seen: &Seen) -> Rendered {
    let mut subs: Vec<(Vec<u8>, String)> = addresses
        .into_iter()
        .map(|(from, to)| (from, to.to_string()))
        .collect();
    let mut problems = Vec::new();
    let (sent, scripted) = (case.sent(), case.scripted());
    let client_ids = seen
        .client
        .responses
        .iter()
        .flat_map(|r| r.head.all("x-request-id"));
    let upstream_ids = seen
        .main
        .iter()
        .chain(&seen.alt)
        .flat_map(|r| r.head.all("x-request-id"));
    let mut generated = 0;
    for id in client_ids.chain(upstream_ids) {
        if contains(&sent, id) || contains(&scripted, id) || subs.iter().any(|(f, _)| f == id) {
            continue;
        }
        if id.len() != 32 || !id.iter().all(u8::is_ascii_hexdigit) {
            problems.push(format!(
                "made-up X-Request-Id is not 32 hex digits: {}",
                show(id)
            ));
            continue;
        }
        generated += 1;
        subs.push((id.to_vec(), format!("<id-{generated}>")));
    }
    check_ids_returned(seen, &subs, &mut problems);
    let mut lines = Vec::new();
    render_client(&seen.client, &subs, &scripted, &mut lines);
    for (name, requests) in [("main", &seen.main), ("alt", &seen.alt)] {
        render_upstream(name, requests, &subs, &mut lines);
    }
    if !seen.settled {
        lines.push("upstream: still reading a request when the case ended".into());
    }
    Rendered { lines, problems }
}

/// Every made-up id the upstream got comes back to the client, when the client got an answer.
fn check_ids_returned(seen: &Seen, subs: &[(Vec<u8>, String)], problems: &mut Vec<String>) {
    let answered: Vec<&[u8]> = seen
        .client
        .responses
        .iter()
        .flat_map(|r| r.head.all("x-request-id"))
        .collect();
    if answered.is_empty() {
        return;
    }
    for req in seen.main.iter().chain(&seen.alt) {
        for id in req.head.all("x-request-id") {
            let made_up = subs.iter().any(|(f, to)| f == id && to.starts_with("<id-"));
            if made_up && !answered.contains(&id) {
                problems.push(format!(
                    "the upstream got made-up X-Request-Id {} for `{}`, the client never saw it",
                    show(id),
                    req.head.line
                ));
            }
        }
    }
}

fn render_client(
    client: &ClientSide,
    subs: &[(Vec<u8>, String)],
    scripted: &[u8],
    lines: &mut Vec<String>,
) {
    for (i, r) in client.responses.iter().enumerate() {
        let at = format!("client response {}", i + 1);
        lines.push(format!("{at}: {}", text(r.head.line.as_bytes(), subs)));
        for (name, value) in r.head.fields() {
            let value = if name == "date" && !contains(scripted, &value) {
                match std::str::from_utf8(&value)
                    .ok()
                    .map(httpdate::parse_http_date)
                {
                    Some(Ok(_)) => "<date>".to_string(),
                    _ => text(&value, subs),
                }
            } else {
                text(&value, subs)
            };
            lines.push(format!("{at}: field {name}: {value}"));
        }
        lines.push(format!("{at}: {}", body_line(&r.body, subs)));
        if let Some(e) = &r.body_error {
            lines.push(format!("{at}: body broke off: {e}"));
        }
    }
    let end = match &client.end {
        End::Open => "open".to_string(),
        End::Closed { partial } => format!("closed ({partial} bytes of an unfinished message)"),
        End::TimedOut { partial } => {
            format!("timed out ({partial} bytes of an unfinished message)")
        }
        End::Malformed(m) => format!("malformed: {}", show(&mask_dates(m.as_bytes()))),
        End::Tunnel(bytes, closed) => format!(
            "tunnel echoed {}{}",
            show(&mask_dates(bytes)),
            if *closed { ", then closed" } else { "" }
        ),
    };
    lines.push(format!("client end: {end}"));
}

fn render_upstream(
    name: &str,
    requests: &[RawRequest],
    subs: &[(Vec<u8>, String)],
    lines: &mut Vec<String>,
) {
    for (i, r) in requests.iter().enumerate() {
        let at = format!("upstream {name} request {}", i + 1);
        lines.push(format!("{at}: {}", text(r.head.line.as_bytes(), subs)));
        for (field, value) in r.head.fields() {
            lines.push(format!("{at}: field {field}: {}", text(&value, subs)));
        }
        lines.push(format!("{at}: {}", body_line(&r.body, subs)));
        if let Some(e) = &r.error {
            lines.push(format!("{at}: unreadable: {}", text(e.as_bytes(), subs)));
        }
    }
}

fn body_line(body: &Body, subs: &[(Vec<u8>, String)]) -> String {
    let bytes = substitute(&body.bytes, subs);
    let mut hasher = DefaultHasher::new();
    bytes.hash(&mut hasher);
    let mut line = format!(
        "body {} bytes (hash {:016x}): {}",
        bytes.len(),
        hasher.finish(),
        show(&bytes)
    );
    for (name, value) in &body.trailers {
        line.push_str(&format!(" | trailer {name}: {}", text(value, subs)));
    }
    line
}

/// Bytes as text for a line, placeholders in.
fn text(bytes: &[u8], subs: &[(Vec<u8>, String)]) -> String {
    show(&substitute(bytes, subs))
}

fn substitute(bytes: &[u8], subs: &[(Vec<u8>, String)]) -> Vec<u8> {
    let mut out = bytes.to_vec();
    for (from, to) in subs {
        out = replace(&out, from, to.as_bytes());
    }
    out
}

fn replace(hay: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(hay.len());
    let mut i = 0;
    while i < hay.len() {
        if !from.is_empty() && hay[i..].starts_with(from) {
            out.extend_from_slice(to);
            i += from.len();
        } else {
            out.push(hay[i]);
            i += 1;
        }
    }
    out
}

/// Raw bytes (a response read as tunnel data, a malformed message) with every IMF-fixdate in
/// them (`Sun, 06 Nov 1994 08:49:37 GMT`, 29 bytes) replaced by `<date>`.
fn mask_dates(bytes: &[u8]) -> Vec<u8> {
    const LEN: usize = 29;
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let date = bytes
            .get(i..i + LEN)
            .and_then(|w| std::str::from_utf8(w).ok())
            .filter(|w| w.ends_with(" GMT") && httpdate::parse_http_date(w).is_ok());
        match date {
            Some(_) => {
                out.extend_from_slice(b"<date>");
                i += LEN;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    out
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && hay.windows(needle.len()).any(|w| w == needle)
}

/// A line diff (longest common subsequence): `  ` both, `- ` only the first, `+ ` only the
/// second.
fn diff(a: &[String], b: &[String]) -> Vec<String> {
    let (n, m) = (a.len(), b.len());
    let mut lcs = vec![vec![0u32; m + 1]; n + 1];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let (mut i, mut j, mut out) = (0, 0, Vec::new());
    while i < n || j < m {
        if i < n && j < m && a[i] == b[j] {
            out.push(format!("    {}", a[i]));
            (i, j) = (i + 1, j + 1);
        } else if i < n && (j == m || lcs[i + 1][j] >= lcs[i][j + 1]) {
            out.push(format!("  - {}", a[i]));
            i += 1;
        } else {
            out.push(format!("  + {}", b[j]));
            j += 1;
        }
    }
    out
}

/// The lines with each message's fields stably sorted by name: what is left of the order is
/// the one RFC 9110 §5.3 gives meaning to, among fields of one name.
fn by_name(lines: &[String]) -> Vec<String> {
    let key = |l: &String| {
        l.split_once(": field ").map(|(at, rest)| {
            (
                at.to_string(),
                rest.split(':').next().unwrap_or("").to_string(),
            )
        })
    };
    let mut out = lines.to_vec();
    let mut start = 0;
    while start < out.len() {
        let Some((at, _)) = key(&out[start]) else {
            start += 1;
            continue;
        };
        let mut end = start;
        while end < out.len() && key(&out[end]).is_some_and(|(a, _)| a == at) {
            end += 1;
        }
        out[start..end].sort_by_key(|l| key(l).map(|(_, name)| name));
        start = end;
    }
    out
}

// ---------------------------------------------------------------------------------------------
// The test

/// What the corpus came to.
#[derive(Default)]
struct Tally {
    agree: Vec<&'static str>,
    known: Vec<&'static str>,
    new_differences: Vec<&'static str>,
    stale_known: Vec<&'static str>,
    problems: Vec<String>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_lanes_give_client_and_upstream_the_same_bytes() {
    let fast = Lane::start("fast lane", true).await;
    let hyper = Lane::start("hyper only", false).await;
    let cases = corpus();
    assert_unique_names(&cases);
    let mut tally = Tally::default();
    for case in &cases {
        let (a, b) = tokio::join!(fast.run(case), hyper.run(case));
        let (a, b) = (
            render(fast.addresses(), case, &a),
            render(hyper.addresses(), case, &b),
        );
        judge(case, (&fast, &a), (&hyper, &b), &mut tally);
    }
    println!(
        "\n{} cases: {} agree, {} known differences, {} new differences, {} stale known differences, {} contract problems",
        cases.len(),
        tally.agree.len(),
        tally.known.len(),
        tally.new_differences.len(),
        tally.stale_known.len(),
        tally.problems.len()
    );
    let mut failures = Vec::new();
    if !tally.new_differences.is_empty() {
        failures.push(format!(
            "the lanes disagree on {:?} (diffs above; `-` is the fast lane, `+` hyper only)",
            tally.new_differences
        ));
    }
    if !tally.stale_known.is_empty() {
        failures.push(format!(
            "{:?} are listed in KNOWN_LANE_DIFFERENCES but the lanes now agree: remove them",
            tally.stale_known
        ));
    }
    failures.extend(tally.problems);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

fn assert_unique_names(cases: &[Case]) {
    let mut names: Vec<_> = cases.iter().map(|c| c.name).collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), cases.len(), "case names must be unique");
    for (name, _) in KNOWN_LANE_DIFFERENCES {
        assert!(
            names.contains(name),
            "KNOWN_LANE_DIFFERENCES names {name:?}, which is not a case"
        );
    }
}

/// Compares one case's two renderings and files it in the tally, printing what differs.
fn judge(case: &Case, a: (&Lane, &Rendered), b: (&Lane, &Rendered), tally: &mut Tally) {
    for (lane, r) in [a, b] {
        for p in &r.problems {
            tally
                .problems
                .push(format!("{} [{}]: {p}", case.name, lane.name));
        }
    }
    let known = KNOWN_LANE_DIFFERENCES
        .iter()
        .find(|(name, _)| *name == case.name);
    let same = a.1.lines == b.1.lines;
    if std::env::var_os("LANES_VERBOSE").is_some() {
        println!("\n--- {} ({})", case.name, a.0.name);
        a.1.lines.iter().for_each(|l| println!("    {l}"));
    }
    match (same, known) {
        (true, None) => tally.agree.push(case.name),
        (true, Some(_)) => {
            println!(
                "STALE: {} is in KNOWN_LANE_DIFFERENCES but both lanes now agree",
                case.name
            );
            tally.stale_known.push(case.name);
        }
        (false, known) => {
            let label = match known {
                Some((_, why)) => format!("known difference (skipped): {why}"),
                None => "LANES DISAGREE".to_string(),
            };
            let kind = match by_name(&a.1.lines) == by_name(&b.1.lines) {
                true => "in field order only: the same fields per name",
                false => "in more than field order",
            };
            println!(
                "\n=== {}: {label}\n  ({kind}; - {}, + {})",
                case.name, a.0.name, b.0.name
            );
            for line in diff(&a.1.lines, &b.1.lines) {
                println!("{line}");
            }
            match known {
                Some(_) => tally.known.push(case.name),
                None => tally.new_differences.push(case.name),
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The comparison's own parts

fn seen(client: Vec<(&str, &[u8])>, upstream: Vec<(&str, &[u8])>) -> Seen {
    let head = |line: &str, fields: Vec<(&str, &[u8])>| Head {
        line: line.to_string(),
        lines: fields
            .into_iter()
            .map(|(n, v)| (n.to_string(), v.to_vec()))
            .collect(),
    };
    Seen {
        client: ClientSide {
            responses: vec![Response {
                head: head("HTTP/1.1 200 OK", client),
                body: Body::default(),
                body_error: None,
            }],
            end: End::Open,
        },
        main: vec![RawRequest {
            connection: 0,
            head: head("GET / HTTP/1.1", upstream),
            body: Body::default(),
            error: None,
        }],
        alt: Vec::new(),
        settled: true,
    }
}

#[test]
fn made_up_ids_dates_and_addresses_are_normalized() {
    let case = Case::one("t", get("/"));
    let id = b"0123456789abcdef0123456789ABCDEF".as_slice();
    let s = seen(
        vec![
            ("X-Request-Id", id),
            ("Date", b"Sun, 06 Nov 1994 08:49:37 GMT"),
        ],
        vec![("Host", b"127.0.0.1:9"), ("X-Request-Id", id)],
    );
    let r = render(vec![(b"127.0.0.1:9".to_vec(), "<main>")], &case, &s);
    assert!(r.problems.is_empty(), "{:?}", r.problems);
    assert!(r
        .lines
        .contains(&"client response 1: field x-request-id: <id-1>".to_string()));
    assert!(r
        .lines
        .contains(&"client response 1: field date: <date>".to_string()));
    assert!(r
        .lines
        .contains(&"upstream main request 1: field host: <main>".to_string()));
    assert!(r
        .lines
        .contains(&"upstream main request 1: field x-request-id: <id-1>".to_string()));
}

#[test]
fn a_bad_or_unreturned_made_up_id_is_a_problem() {
    let case = Case::one("t", get("/"));
    let short = seen(vec![("x-request-id", b"abc")], vec![]);
    let r = render(Vec::new(), &case, &short);
    assert_eq!(r.problems.len(), 1, "{:?}", r.problems);
    let good = b"0123456789abcdef0123456789abcdef".as_slice();
    let other = b"fedcba9876543210fedcba9876543210".as_slice();
    let swapped = seen(vec![("x-request-id", good)], vec![("x-request-id", other)]);
    let r = render(Vec::new(), &case, &swapped);
    assert_eq!(r.problems.len(), 1, "{:?}", r.problems);
}

#[test]
fn the_client_s_own_id_is_kept() {
    let case = Case::one("t", crlf("GET / HTTP/1.1\nX-Request-Id: mine\n\n"));
    let s = seen(
        vec![("x-request-id", b"mine")],
        vec![("x-request-id", b"mine")],
    );
    let r = render(Vec::new(), &case, &s);
    assert!(r.problems.is_empty());
    assert!(r
        .lines
        .contains(&"client response 1: field x-request-id: mine".to_string()));
}

#[test]
fn diffs_mark_each_side_and_order_only_differences_are_told_apart() {
    let lines = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let a = lines(&["x", "r: field a: 1", "r: field b: 2", "end"]);
    let b = lines(&["x", "r: field b: 2", "r: field a: 1", "end"]);
    assert_eq!(by_name(&a), by_name(&b));
    let c = lines(&["x", "r: field a: 2", "r: field a: 1", "end"]);
    let d = lines(&["x", "r: field a: 1", "r: field a: 2", "end"]);
    assert_ne!(by_name(&c), by_name(&d), "order within one name counts");
    let out = diff(&lines(&["same", "old"]), &lines(&["same", "new"]));
    assert_eq!(out, ["    same", "  - old", "  + new"]);
}

#[test]
fn dates_inside_raw_bytes_are_masked() {
    let raw = b"HTTP/1.1 400 Bad Request\r\ndate: Thu, 03 Dec 2026 20:19:28 GMT\r\n\r\n";
    assert_eq!(
        mask_dates(raw),
        b"HTTP/1.1 400 Bad Request\r\ndate: <date>\r\n\r\n".to_vec()
    );
}
