//! The compiled form of a rule and its evaluation (data plane, per request). Everything that can
//! be decided at config time (uppercasing, header names, regexes, CIDR masks) already is, so the
//! Host, Path, PathPrefix and Method checks neither allocate nor fail. Paths are matched as
//! Traefik v3 routes them (see [`RoutingPath`]); only `PathRegexp` on a path with a `%` and
//! `HostRegexp` on a host with capitals allocate.

use std::borrow::Cow;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use http::HeaderName;
use regex::bytes::Regex;

use super::RequestView;

/// A boolean tree of matchers. `All`/`Any` are n-ary so long `&&`/`||` chains stay flat.
#[derive(Debug, Clone)]
pub(super) enum Expr {
    Match(Matcher),
    Not(Box<Expr>),
    All(Vec<Expr>),
    Any(Vec<Expr>),
}

#[derive(Debug, Clone)]
pub(super) enum Matcher {
    /// As written; compared without case and without one trailing dot on either side.
    Host(Box<str>),
    /// `*.example.com` as written: one non-empty first label, then the rest compared as `Host`.
    HostWildcard(Box<str>),
    /// Case-sensitive, run on the lowercased host (as Traefik does).
    HostRegexp(Regex),
    /// Compared with the routing path; reserved escapes in the value are uppercased.
    Path(Box<str>),
    PathPrefix(Box<str>),
    PathRegexp(Regex),
    /// Uppercased; the request's method must be exactly this (methods are case-sensitive).
    Method(Box<str>),
    Header(HeaderName, Box<[u8]>),
    HeaderRegexp(HeaderName, Regex),
    /// Key, and the decoded value to look for; `Query(`k`)` looks for the empty value.
    Query(Box<str>, Box<str>),
    QueryRegexp(Box<str>, Regex),
    ClientIp(IpNet),
}

impl Expr {
    pub fn matches(&self, req: &RequestView<'_>) -> bool {
        match self {
            Expr::Match(m) => m.matches(req),
            Expr::Not(e) => !e.matches(req),
            Expr::All(es) => es.iter().all(|e| e.matches(req)),
            Expr::Any(es) => es.iter().any(|e| e.matches(req)),
        }
    }

    /// Calls `f` with each `Host` value that is not negated.
    pub fn visit_hosts(&self, negated: bool, f: &mut dyn FnMut(&str)) {
        match self {
            Expr::Match(Matcher::Host(h) | Matcher::HostWildcard(h)) if !negated => f(h),
            Expr::Match(_) => {}
            Expr::Not(e) => e.visit_hosts(!negated, f),
            Expr::All(es) | Expr::Any(es) => es.iter().for_each(|e| e.visit_hosts(negated, f)),
        }
    }
}

impl Matcher {
    pub fn matches(&self, req: &RequestView<'_>) -> bool {
        match self {
            Matcher::Host(host) => strip_dot(req.host).eq_ignore_ascii_case(strip_dot(host)),
            Matcher::HostWildcard(pattern) => wildcard_matches(req.host, pattern),
            Matcher::HostRegexp(re) => re.is_match(lowercase(req.host).as_bytes()),
            Matcher::Path(path) => path_eq(req.path, path),
            Matcher::PathPrefix(prefix) => path_starts_with(req.path, prefix),
            Matcher::PathRegexp(re) => re.is_match(&routing_path(req.path)),
            Matcher::Method(method) => req.method.as_str() == &**method,
            Matcher::Header(name, value) => req
                .headers
                .get_all(name)
                .iter()
                .any(|v| v.as_bytes() == &**value),
            Matcher::HeaderRegexp(name, re) => req
                .headers
                .get_all(name)
                .iter()
                .any(|v| re.is_match(v.as_bytes())),
            Matcher::Query(key, value) => {
                query_pairs(req.query).any(|(k, v)| decoded_eq(k, key) && decoded_eq(v, value))
            }
            Matcher::QueryRegexp(key, re) => query_pairs(req.query)
                .any(|(k, v)| decoded_eq(k, key) && re.is_match(&percent_decode(v))),
            Matcher::ClientIp(net) => req.client_ip.is_some_and(|ip| net.contains(ip)),
        }
    }
}

fn strip_dot(host: &str) -> &str {
    host.strip_suffix('.').unwrap_or(host)
}

/// `*.example.com` (as written, possibly with capitals and a trailing dot) against a request host:
/// the host's first label must be non-empty and the rest must be the pattern's domain. So
/// `a.example.com` matches, `example.com`, `a.b.example.com` and `.example.com` do not.
fn wildcard_matches(host: &str, pattern: &str) -> bool {
    let domain = strip_dot(&pattern[2..]);
    match strip_dot(host).split_once('.') {
        Some((label, rest)) => !label.is_empty() && rest.eq_ignore_ascii_case(domain),
        None => false,
    }
}

/// The host in lowercase, as Traefik hands it to `HostRegexp`; borrowed when it already is.
fn lowercase(host: &str) -> Cow<'_, str> {
    if host.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(host.to_ascii_lowercase())
    } else {
        Cow::Borrowed(host)
    }
}

/// Whether the routing path of `raw` is exactly `want`; no allocation.
fn path_eq(raw: &str, want: &str) -> bool {
    if !raw.contains('%') {
        return raw == want;
    }
    RoutingPath::new(raw.as_bytes()).eq(want.bytes())
}

/// Whether the routing path of `raw` starts with `prefix`; no allocation.
fn path_starts_with(raw: &str, prefix: &str) -> bool {
    if !raw.contains('%') {
        return raw.starts_with(prefix);
    }
    let mut path = RoutingPath::new(raw.as_bytes());
    prefix.bytes().all(|b| path.next() == Some(b))
}

/// The routing path of `raw`, borrowed when it has no `%` (the common case).
pub(super) fn routing_path(raw: &str) -> Cow<'_, [u8]> {
    if raw.contains('%') {
        Cow::Owned(RoutingPath::new(raw.as_bytes()).collect())
    } else {
        Cow::Borrowed(raw.as_bytes())
    }
}

/// The path as Traefik v3 routes on it (its `withRoutingPath`, after the entry point has
/// uppercased every escape): each `%XX` is decoded, except the escapes of RFC 3986's reserved
/// characters and of `%` itself, which stay escaped with uppercase hex digits. So `/a%20b` routes
/// as `/a b`, `/%61dmin` as `/admin`, and `/a%2fb` as `/a%2Fb`, never as `/a/b`: an encoded slash
/// does not split a segment, and `PathPrefix(`/a/`)` does not match it. A `%` not followed by two
/// hex digits stays as it is (Traefik answers 400 to such a request before routing it).
pub(super) struct RoutingPath<'a> {
    rest: &'a [u8],
    /// Uppercased hex digits of a reserved escape still to give out after its `%`.
    held: [u8; 2],
    held_len: usize,
}

impl<'a> RoutingPath<'a> {
    pub fn new(raw: &'a [u8]) -> Self {
        Self {
            rest: raw,
            held: [0; 2],
            held_len: 0,
        }
    }
}

impl Iterator for RoutingPath<'_> {
    type Item = u8;

    fn next(&mut self) -> Option<u8> {
        if self.held_len > 0 {
            let digit = self.held[2 - self.held_len];
            self.held_len -= 1;
            return Some(digit);
        }
        let (&first, rest) = self.rest.split_first()?;
        self.rest = rest;
        if first != b'%' {
            return Some(first);
        }
        let Some(byte) = escaped_byte(rest) else {
            return Some(b'%');
        };
        if is_reserved(byte) {
            self.held = [rest[0].to_ascii_uppercase(), rest[1].to_ascii_uppercase()];
            self.held_len = 2;
        }
        self.rest = &rest[2..];
        Some(if is_reserved(byte) { b'%' } else { byte })
    }
}

/// The byte that `XX` in `%XX` stands for, if `after_percent` starts with two hex digits.
pub(super) fn escaped_byte(after_percent: &[u8]) -> Option<u8> {
    match after_percent {
        [hi, lo, ..] => Some(hex(*hi)? << 4 | hex(*lo)?),
        _ => None,
    }
}

/// RFC 3986's gen-delims and sub-delims, and `%`: the characters whose escapes Traefik keeps.
pub(super) fn is_reserved(byte: u8) -> bool {
    matches!(
        byte,
        b':' | b'/'
            | b'?'
            | b'#'
            | b'['
            | b']'
            | b'@'
            | b'!'
            | b'$'
            | b'&'
            | b'\''
            | b'('
            | b')'
            | b'*'
            | b'+'
            | b','
            | b';'
            | b'='
            | b'%'
    )
}

/// `key=value` pairs of a raw query string, still encoded; a pair without `=` has an empty value.
fn query_pairs(query: Option<&str>) -> impl Iterator<Item = (&str, &str)> {
    query
        .unwrap_or("")
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| pair.split_once('=').unwrap_or((pair, "")))
}

/// Whether form-decoding `raw` gives exactly `want`, without allocating.
fn decoded_eq(raw: &str, want: &str) -> bool {
    if !raw.contains(['%', '+']) {
        return raw == want;
    }
    PercentDecode::new(raw.as_bytes()).eq(want.bytes())
}

/// Form-decodes `raw` (`+` is a space, `%XX` a byte); borrows when there is nothing to decode.
pub(super) fn percent_decode(raw: &str) -> Cow<'_, [u8]> {
    if raw.contains(['%', '+']) {
        Cow::Owned(PercentDecode::new(raw.as_bytes()).collect())
    } else {
        Cow::Borrowed(raw.as_bytes())
    }
}

/// `application/x-www-form-urlencoded` decoding as browsers do it: a `%` not followed by two hex
/// digits stays a literal `%`, and the result may be any bytes.
struct PercentDecode<'a> {
    bytes: &'a [u8],
}

impl<'a> PercentDecode<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Self { bytes }
    }
}

impl Iterator for PercentDecode<'_> {
    type Item = u8;

    fn next(&mut self) -> Option<u8> {
        let (&first, rest) = self.bytes.split_first()?;
        match (first, rest) {
            (b'+', _) => {
                self.bytes = rest;
                Some(b' ')
            }
            (b'%', [hi, lo, tail @ ..]) => match (hex(*hi), hex(*lo)) {
                (Some(hi), Some(lo)) => {
                    self.bytes = tail;
                    Some(hi << 4 | lo)
                }
                _ => {
                    self.bytes = rest;
                    Some(b'%')
                }
            },
            _ => {
                self.bytes = rest;
                Some(first)
            }
        }
    }
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// An IP network in canonical form: host bits cleared, IPv4-mapped IPv6 turned into IPv4.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct IpNet {
    addr: IpAddr,
    prefix: u8,
}

impl IpNet {
    /// Parses `10.0.0.0/8`, `2001:db8::/32` or a single address. Host bits may be set, as Go's
    /// `net.ParseCIDR` allows; they are ignored.
    pub fn parse(s: &str) -> Result<IpNet, String> {
        let (addr, prefix) = match s.split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (s, None),
        };
        let addr: IpAddr = addr
            .parse()
            .map_err(|_| format!("`{addr}` is not an IP address"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => match p.parse::<u8>() {
                Ok(n) if n <= max && p.bytes().all(|b| b.is_ascii_digit()) => n,
                _ => return Err(format!("`/{p}` is not a prefix length from 0 to {max}")),
            },
        };
        Ok(IpNet::new(addr, prefix))
    }

    fn new(addr: IpAddr, prefix: u8) -> IpNet {
        match addr {
            IpAddr::V6(v6) if prefix >= 96 => match v6.to_ipv4_mapped() {
                Some(v4) => IpNet::new(IpAddr::V4(v4), prefix - 96),
                None => IpNet {
                    addr: IpAddr::V6(Ipv6Addr::from(u128::from(v6) & mask128(prefix))),
                    prefix,
                },
            },
            IpAddr::V6(v6) => IpNet {
                addr: IpAddr::V6(Ipv6Addr::from(u128::from(v6) & mask128(prefix))),
                prefix,
            },
            IpAddr::V4(v4) => IpNet {
                addr: IpAddr::V4(Ipv4Addr::from(u32::from(v4) & mask32(prefix))),
                prefix,
            },
        }
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                u32::from(ip) & mask32(self.prefix) == u32::from(net)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                u128::from(ip) & mask128(self.prefix) == u128::from(net)
            }
            _ => false,
        }
    }
}

fn mask32(prefix: u8) -> u32 {
    u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0)
}

fn mask128(prefix: u8) -> u128 {
    u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0)
}
