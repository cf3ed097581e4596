//! Header handling on the data plane: hop-by-hop removal, `X-Forwarded-*`, request ids.

use std::net::IpAddr;

use http::header::{HeaderMap, HeaderName, HeaderValue, CONNECTION};

pub static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
pub static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
pub static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
pub static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
pub static X_FORWARDED_PREFIX: HeaderName = HeaderName::from_static("x-forwarded-prefix");
pub static X_UMBRA_SHADOW: HeaderName = HeaderName::from_static("x-umbra-shadow");

static KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
static PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");

/// The hop-by-hop headers of RFC 9110 §7.6.1 (plus the legacy `Proxy-Connection`).
pub(crate) static HOP_BY_HOP: [&HeaderName; 8] = [
    &CONNECTION,
    &http::header::TRANSFER_ENCODING,
    &http::header::UPGRADE,
    &http::header::TE,
    &http::header::TRAILER,
    &http::header::PROXY_AUTHENTICATE,
    &KEEP_ALIVE,
    &PROXY_CONNECTION,
];

fn is_hop_by_hop(n: &HeaderName) -> bool {
    HOP_BY_HOP.contains(&n)
}

/// The elements of a comma-separated field value (RFC 9110 §5.6.1), trimmed; empty ones too.
pub(crate) fn list(value: &[u8]) -> impl DoubleEndedIterator<Item = &[u8]> {
    value.split(|&b| b == b',').map(<[u8]>::trim_ascii)
}

/// Whether a comma-separated field value lists `token` (in any case).
pub(crate) fn lists(value: &[u8], token: &[u8]) -> bool {
    list(value).any(|t| t.eq_ignore_ascii_case(token))
}

/// Appends one field as a line of an HTTP/1.1 head: `name: value\r\n`.
pub(crate) fn put_field(out: &mut impl bytes::BufMut, name: &[u8], value: &[u8]) {
    out.put_slice(name);
    out.put_slice(b": ");
    out.put_slice(value);
    out.put_slice(b"\r\n");
}

/// Removes hop-by-hop headers, including those named in `Connection`. With `keep_upgrade`,
/// `Connection: upgrade` and `Upgrade` survive (WebSocket pass-through).
///
/// This runs twice per request, so the common cases cost little: one pass over the names
/// counts what to remove (most requests: nothing), and the usual `Connection` tokens
/// (`keep-alive`, `close`, `upgrade`) name nothing that is not removed anyway.
pub fn strip_hop_by_hop(headers: &mut HeaderMap, keep_upgrade: bool) {
    let mut present = headers.keys().filter(|n| is_hop_by_hop(n)).count();
    if present == 0 {
        return;
    }
    if headers.contains_key(CONNECTION) {
        let mut named: Vec<HeaderName> = Vec::new();
        for token in headers
            .get_all(CONNECTION)
            .iter()
            .flat_map(|v| list(v.as_bytes()))
        {
            let usual = [&b"keep-alive"[..], b"close", b"upgrade"]
                .iter()
                .any(|u| token.eq_ignore_ascii_case(u));
            if !usual && !token.is_empty() {
                if let Ok(n) = HeaderName::from_bytes(token) {
                    named.push(n);
                }
            }
        }
        for n in named {
            headers.remove(&n);
        }
        // Names the header listed may have been hop-by-hop ones: count again.
        present = headers.keys().filter(|n| is_hop_by_hop(n)).count();
    }
    for h in HOP_BY_HOP {
        if present == 0 {
            break;
        }
        if keep_upgrade && (*h == CONNECTION || *h == http::header::UPGRADE) {
            present -= usize::from(headers.contains_key(h));
            continue;
        }
        if headers.remove(h).is_some() {
            present -= 1;
        }
    }
    if keep_upgrade {
        headers.insert(CONNECTION, HeaderValue::from_static("upgrade"));
    }
}

/// What the proxy reads from a request's headers, gathered in one pass over them rather than
/// looked up name by name (each lookup hashes its name, and a request carries only a handful
/// of fields).
#[derive(Debug, Default)]
pub struct Scan {
    /// The first `Host`.
    pub host: Option<HeaderValue>,
    /// The first `X-Request-Id`.
    pub request_id: Option<HeaderValue>,
    /// The first `Content-Length`, when it is a number.
    pub content_length: Option<u64>,
    /// The first `X-Forwarded-For`.
    pub forwarded_for: Option<HeaderValue>,
    /// An `X-Forwarded-Host` is present.
    pub forwarded_host: bool,
    /// An HTTP/1.1 upgrade: an `Upgrade` field, and `Connection` naming `upgrade`.
    pub upgrade: bool,
    /// A hop-by-hop field is present, so `strip_hop_by_hop` has work to do.
    pub hop_by_hop: bool,
    /// How many `Host` fields the request has (RFC 9112 §3.2: exactly one on HTTP/1.1).
    pub hosts: u8,
    /// `Content-Length` is repeated, or lists several values (`5, 5`).
    pub length_repeated: bool,
    /// A field the client may not send through umbra: `X-Umbra-*`, `HTTP2-Settings`.
    pub umbra_own: bool,
    /// Any `X-Forwarded-*` field (kept only from trusted proxies).
    pub forwarded: bool,
    /// A field name with `_` (dropped unless the route passes them).
    pub underscore: bool,
}

impl Scan {
    pub fn of(headers: &HeaderMap) -> Scan {
        let mut scan = Scan::default();
        let (mut upgrade_field, mut connection_upgrade) = (false, false);
        for (name, value) in headers {
            if name == http::header::HOST {
                scan.hosts = scan.hosts.saturating_add(1);
                scan.host.get_or_insert_with(|| value.clone());
            } else if name == http::header::CONTENT_LENGTH {
                scan.length(value);
            } else if is_hop_by_hop(name) {
                scan.hop_by_hop = true;
                upgrade_field |= name == http::header::UPGRADE;
                connection_upgrade |= name == CONNECTION && lists(value.as_bytes(), b"upgrade");
            } else if name == X_REQUEST_ID {
                scan.request_id.get_or_insert_with(|| value.clone());
            } else {
                scan.other(name, value);
            }
        }
        scan.upgrade = upgrade_field && connection_upgrade;
        scan
    }

    fn length(&mut self, value: &HeaderValue) {
        if self.content_length.is_some() {
            self.length_repeated = true;
            return;
        }
        let text = std::str::from_utf8(value.as_bytes()).unwrap_or("");
        self.length_repeated = text.contains(',');
        self.content_length = list(text.as_bytes())
            .next()
            .and_then(|v| std::str::from_utf8(v).ok())
            .and_then(|v| v.parse().ok());
    }

    /// The fields without a role of their own: `X-Forwarded-*`, umbra's, `_` in names.
    fn other(&mut self, name: &HeaderName, value: &HeaderValue) {
        let n = name.as_str();
        if let Some(rest) = n.strip_prefix("x-") {
            if let Some(f) = rest.strip_prefix("forwarded-") {
                self.forwarded = true;
                if f == "for" {
                    self.forwarded_for.get_or_insert_with(|| value.clone());
                } else if f == "host" {
                    self.forwarded_host = true;
                }
            } else if rest.starts_with("umbra-") {
                self.umbra_own = true;
            }
        } else if n == "http2-settings" {
            self.umbra_own = true;
        }
        self.underscore |= has_underscore(n.as_bytes());
    }

    /// Forgets what a client outside the trusted proxies said about earlier hops.
    pub fn untrusted(&mut self) {
        self.forwarded_for = None;
        self.forwarded_host = false;
    }

    /// Whether `sanitize` has a field to remove or rewrite.
    pub fn needs_sanitizing(&self, trusted: bool, underscores: bool) -> bool {
        self.umbra_own
            || self.length_repeated
            || (self.forwarded && !trusted)
            || (self.underscore && !underscores)
    }
}

/// Whether a field name holds `_`, eight bytes at a time (every field of every request is
/// checked; names are short, and most have none).
fn has_underscore(name: &[u8]) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let mut chunks = name.chunks_exact(8);
    for chunk in &mut chunks {
        let x =
            u64::from_le_bytes(chunk.try_into().expect("eight bytes")) ^ (ONES * u64::from(b'_'));
        if x.wrapping_sub(ONES) & !x & HIGHS != 0 {
            return true;
        }
    }
    chunks.remainder().contains(&b'_')
}

/// Removes what a client may not send upstream (`X-Umbra-*`, `HTTP2-Settings`; every
/// `X-Forwarded-*` unless the peer is a trusted proxy; names with `_` unless `underscores`)
/// and collapses a repeated `Content-Length` to its one value.
pub fn sanitize(headers: &mut HeaderMap, trusted: bool, underscores: bool, length: Option<u64>) {
    let doomed: Vec<HeaderName> = headers
        .keys()
        .filter(|name| {
            let n = name.as_str();
            n.starts_with("x-umbra-")
                || n == "http2-settings"
                || (!trusted && n.starts_with("x-forwarded-"))
                || (!underscores && n.contains('_'))
        })
        .cloned()
        .collect();
    for name in doomed {
        headers.remove(&name);
    }
    if let Some(n) = length {
        if headers.get_all(http::header::CONTENT_LENGTH).iter().count() > 0 {
            headers.insert(http::header::CONTENT_LENGTH, HeaderValue::from(n));
        }
    }
}

/// The protocol an upgrade asks for (`websocket` of `WebSocket/13`), lowercase.
pub fn upgrade_protocol(headers: &HeaderMap) -> Option<String> {
    {
        let v = headers.get(http::header::UPGRADE)?;
        let first = list(v.as_bytes()).next()?;
        let name = first.split(|&b| b == b'/').next().unwrap_or(first);
        Some(String::from_utf8_lossy(name).to_ascii_lowercase())
    }
}

/// An incoming request id is kept when it is 1..=128 printable ASCII characters.
pub fn valid_request_id(v: &HeaderValue) -> bool {
    let b = v.as_bytes();
    !b.is_empty() && b.len() <= 128 && b.iter().all(|c| (0x21..=0x7e).contains(c))
}

/// A new request id: 32 hex characters, random.
pub fn new_request_id() -> HeaderValue {
    let n: u128 = rand::random();
    let mut buf = [0u8; 32];
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for (i, b) in buf.iter_mut().enumerate() {
        *b = HEX[((n >> (4 * (31 - i))) & 0xf) as usize];
    }
    HeaderValue::from_bytes(&buf).expect("hex is a valid header value")
}

/// The client address as a header value, made once per connection.
pub fn client_value(client: IpAddr) -> HeaderValue {
    HeaderValue::from_str(&client.to_string()).expect("an IP address is a valid header value")
}

/// `Host`, as a static for `Added` to point at.
pub static HOST: HeaderName = http::header::HOST;
static HTTP: HeaderValue = HeaderValue::from_static("http");
static HTTPS: HeaderValue = HeaderValue::from_static("https");
static NOTHING: HeaderValue = HeaderValue::from_static("");

/// The fields umbra adds to a request it forwards (`X-Forwarded-*`, `X-Request-Id`, `Host`
/// when the request has none), kept beside the client's headers rather than inserted into
/// them: the direct client writes them as it encodes the request, each replacing any field of
/// its name, and only a request bound for hyper's client or a shadow merges them into a map.
#[derive(Clone, Copy)]
pub struct Added<'a> {
    fields: [(&'a HeaderName, &'a HeaderValue); 6],
    len: usize,
}

impl<'a> Added<'a> {
    pub fn new() -> Self {
        Added {
            fields: [(&HOST, &NOTHING); 6],
            len: 0,
        }
    }

    /// Adds a field. There is room for every field umbra adds, each once.
    pub fn push(&mut self, name: &'a HeaderName, value: &'a HeaderValue) {
        self.fields[self.len] = (name, value);
        self.len += 1;
    }

    pub fn as_slice(&self) -> &[(&'a HeaderName, &'a HeaderValue)] {
        &self.fields[..self.len]
    }

    /// Writes the fields into `headers`, replacing any of the same name.
    pub fn merge_into(&self, headers: &mut HeaderMap) {
        for (name, value) in self.as_slice() {
            headers.insert((*name).clone(), (*value).clone());
        }
    }
}

impl Default for Added<'_> {
    fn default() -> Self {
        Added::new()
    }
}

/// What the `X-Forwarded-*` fields of a forwarded request say, owned for `Added` to point at.
pub struct Forwarded {
    /// `X-Forwarded-For`: the client appended to what the request carried.
    pub for_: HeaderValue,
    /// `X-Forwarded-Host`, set only when the request carried none.
    pub host: Option<HeaderValue>,
    /// The request came over TLS: `X-Forwarded-Proto: https`.
    pub secure: bool,
}

impl Forwarded {
    /// From what `scan` found in the request; `client` is the peer's address, `host` the Host
    /// as the client sent it.
    pub fn new(scan: &Scan, client: &HeaderValue, host: &HeaderValue) -> Forwarded {
        let for_ = match scan.forwarded_for.as_ref().map(|v| v.as_bytes()) {
            Some(prev) if !prev.is_empty() => {
                let mut joined = Vec::with_capacity(prev.len() + 2 + client.len());
                joined.extend_from_slice(prev);
                joined.extend_from_slice(b", ");
                joined.extend_from_slice(client.as_bytes());
                HeaderValue::from_bytes(&joined).unwrap_or_else(|_| client.clone())
            }
            _ => client.clone(),
        };
        let host = (!host.is_empty() && !scan.forwarded_host).then(|| host.clone());
        Forwarded {
            for_,
            host,
            secure: false,
        }
    }

    /// Adds `X-Forwarded-For`, `-Proto` (the scheme of umbra's listener) and `-Host`.
    pub fn add_to<'a>(&'a self, added: &mut Added<'a>) {
        added.push(&X_FORWARDED_FOR, &self.for_);
        added.push(&X_FORWARDED_PROTO, if self.secure { &HTTPS } else { &HTTP });
        if let Some(h) = &self.host {
            added.push(&X_FORWARDED_HOST, h);
        }
    }
}

/// The host the request is for (port included): the URI's authority when it has one
/// (absolute-form, RFC 9112 §3.2.2; HTTP/2's `:authority`), else the `Host` field; empty when
/// neither is there.
pub fn original_host(host: Option<&HeaderValue>, uri: &http::Uri) -> HeaderValue {
    let authority = uri
        .authority()
        .and_then(|a| HeaderValue::from_str(a.as_str()).ok());
    match (authority, host) {
        (Some(a), _) => a,
        (None, Some(v)) => v.clone(),
        (None, None) => HeaderValue::from_static(""),
    }
}

/// A host without its port (`[v6]` loses its brackets).
pub fn strip_port(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        // [v6]:port
        return rest.split(']').next().unwrap_or(rest);
    }
    // Byte by byte from the end: the port is all digits, so this stops within a few.
    for (i, b) in host.bytes().enumerate().rev() {
        match b {
            b':' => return &host[..i],
            b'0'..=b'9' => {}
            _ => break,
        }
    }
    host
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn underscores_are_found_anywhere_in_a_name() {
        for n in [
            "x_a",
            "_",
            "abcdefgh_",
            "abcdefg_h",
            "abcdefghijklmnop_q",
            "a_bcdefghijklmnopq",
        ] {
            assert!(has_underscore(n.as_bytes()), "{n}");
        }
        for n in [
            "",
            "x-a",
            "abcdefgh",
            "abcdefghijklmnopq",
            "user-agent",
            "\x7f\x5e\x60",
        ] {
            assert!(!has_underscore(n.as_bytes()), "{n}");
        }
    }

    #[test]
    fn hop_by_hop_and_connection_named() {
        let mut h = HeaderMap::new();
        h.insert(
            "connection",
            HeaderValue::from_static("keep-alive, x-secret-hop"),
        );
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert("x-secret-hop", HeaderValue::from_static("1"));
        h.insert("transfer-encoding", HeaderValue::from_static("chunked"));
        h.insert("x-keep", HeaderValue::from_static("1"));
        strip_hop_by_hop(&mut h, false);
        assert_eq!(h.len(), 1);
        assert!(h.contains_key("x-keep"));
    }

    #[test]
    fn usual_connection_tokens_and_listed_hop_headers() {
        let mut h = HeaderMap::new();
        h.append("connection", HeaderValue::from_static("close"));
        h.append(
            "connection",
            HeaderValue::from_static("Keep-Alive, TE, x-a"),
        );
        h.insert("te", HeaderValue::from_static("trailers"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert("x-a", HeaderValue::from_static("1"));
        h.insert("proxy-connection", HeaderValue::from_static("keep-alive"));
        h.insert("content-type", HeaderValue::from_static("text/plain"));
        strip_hop_by_hop(&mut h, false);
        assert_eq!(h.len(), 1, "{h:?}");
        assert!(h.contains_key("content-type"));

        let mut plain = HeaderMap::new();
        plain.insert("x-keep", HeaderValue::from_static("1"));
        strip_hop_by_hop(&mut plain, false);
        assert_eq!(plain.len(), 1);
    }

    #[test]
    fn upgrade_kept_when_asked() {
        let mut h = HeaderMap::new();
        h.insert("connection", HeaderValue::from_static("Upgrade"));
        h.insert("upgrade", HeaderValue::from_static("websocket"));
        assert!(Scan::of(&h).upgrade);
        strip_hop_by_hop(&mut h, true);
        assert_eq!(h.get("upgrade").unwrap(), "websocket");
        assert_eq!(h.get("connection").unwrap(), "upgrade");
    }

    #[test]
    fn request_ids() {
        assert!(valid_request_id(&HeaderValue::from_static("abc-123")));
        assert!(!valid_request_id(&HeaderValue::from_static("has space")));
        assert!(!valid_request_id(
            &HeaderValue::from_str(&"a".repeat(129)).unwrap()
        ));
        let a = new_request_id();
        assert_eq!(a.len(), 32);
        assert_ne!(a, new_request_id());
    }

    #[test]
    fn hosts() {
        let uri: http::Uri = "/x".parse().unwrap();
        let mut h = HeaderMap::new();
        h.insert("host", HeaderValue::from_static("API.example.com:8080"));
        assert_eq!(original_host(h.get("host"), &uri), "API.example.com:8080");
        h.insert("host", HeaderValue::from_static("[::1]:80"));
        assert_eq!(
            strip_port(original_host(h.get("host"), &uri).to_str().unwrap()),
            "::1"
        );
        let uri: http::Uri = "http://h2.example/x".parse().unwrap();
        assert_eq!(original_host(None, &uri), "h2.example");
        assert_eq!(original_host(None, &"/x".parse().unwrap()), "");
    }

    /// The request `h` as forwarded for 127.0.0.1, sent to host a.example.
    fn forwarded(h: &HeaderMap) -> HeaderMap {
        let client = client_value("127.0.0.1".parse().unwrap());
        let fwd = Forwarded::new(
            &Scan::of(h),
            &client,
            &HeaderValue::from_static("a.example"),
        );
        let mut added = Added::new();
        fwd.add_to(&mut added);
        let mut out = h.clone();
        added.merge_into(&mut out);
        out
    }

    #[test]
    fn forwarded_for_appends_and_a_sent_host_stays() {
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", HeaderValue::from_static("10.0.0.1"));
        h.insert("x-forwarded-proto", HeaderValue::from_static("https"));
        let f = forwarded(&h);
        assert_eq!(f.get("x-forwarded-for").unwrap(), "10.0.0.1, 127.0.0.1");
        assert_eq!(f.get("x-forwarded-host").unwrap(), "a.example");
        assert_eq!(f.get("x-forwarded-proto").unwrap(), "http");
        assert_eq!(f.len(), 3);

        h.insert(
            "x-forwarded-host",
            HeaderValue::from_static("front.example"),
        );
        let f = forwarded(&h);
        assert_eq!(
            f.get("x-forwarded-host").unwrap(),
            "front.example",
            "a host the client sent is kept"
        );
        let f = forwarded(&HeaderMap::new());
        assert_eq!(f.get("x-forwarded-for").unwrap(), "127.0.0.1");
        let client = client_value("127.0.0.1".parse().unwrap());
        let fwd = Forwarded::new(&Scan::default(), &client, &HeaderValue::from_static(""));
        assert!(fwd.host.is_none(), "no host, no X-Forwarded-Host");
    }

    #[test]
    fn one_scan_finds_what_the_proxy_reads() {
        let mut h = HeaderMap::new();
        h.insert("host", HeaderValue::from_static("a.example"));
        h.append("x-forwarded-for", HeaderValue::from_static("10.0.0.1"));
        h.append("x-forwarded-for", HeaderValue::from_static("10.0.0.2"));
        h.insert("x-request-id", HeaderValue::from_static("abc"));
        h.insert("content-length", HeaderValue::from_static("12"));
        h.insert("accept", HeaderValue::from_static("*/*"));
        let s = Scan::of(&h);
        assert_eq!(s.host.as_ref().unwrap(), "a.example");
        assert_eq!(
            s.forwarded_for.as_ref().unwrap(),
            "10.0.0.1",
            "the first line"
        );
        assert_eq!(s.request_id.as_ref().unwrap(), "abc");
        assert_eq!(s.content_length, Some(12));
        assert!(!s.forwarded_host && !s.upgrade && !s.hop_by_hop);

        h.insert("x-forwarded-host", HeaderValue::from_static("f.example"));
        h.insert("content-length", HeaderValue::from_static("twelve"));
        h.insert("upgrade", HeaderValue::from_static("websocket"));
        let s = Scan::of(&h);
        assert!(s.forwarded_host && s.hop_by_hop);
        assert_eq!(s.content_length, None);
        assert!(
            !s.upgrade,
            "Upgrade without Connection naming it is no upgrade"
        );
        h.append("connection", HeaderValue::from_static("keep-alive"));
        h.append("connection", HeaderValue::from_static("x-a, Upgrade "));
        assert!(Scan::of(&h).upgrade);
        let mut h = HeaderMap::new();
        h.insert("connection", HeaderValue::from_static("upgrade"));
        assert!(!Scan::of(&h).upgrade, "Connection alone is no upgrade");
    }

    #[test]
    fn ports_come_off_hosts() {
        assert_eq!(strip_port("a.example:8080"), "a.example");
        assert_eq!(strip_port("a.example"), "a.example");
        assert_eq!(strip_port("a.example:"), "a.example");
        assert_eq!(strip_port("a:b.example"), "a:b.example");
        assert_eq!(strip_port("[::1]"), "::1");
        assert_eq!(strip_port(""), "");
    }
}
