//! An upstream response's header fields kept as the lines they arrived in, for the fast lane to
//! write to the client in one copy, instead of parsed into a `HeaderMap` only to be written out
//! again. The fields the proxy must not pass on (framing, plain hop-by-hop fields) are left
//! out as the lines are made; the rest become a map only where something reads or changes
//! them: a shadow comparison, hyper's server, a hop-by-hop field to strip (`Upgrade`, `TE`,
//! `Trailer`, `Proxy-*`, a `Connection` naming others), a 101.

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, HeaderName, HeaderValue};

use super::headers::put_field;

/// What a response field means to the proxy, told from its name without parsing it into a
/// `HeaderName`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    ContentLength,
    TransferEncoding,
    Connection,
    KeepAlive,
    /// Hop-by-hop, other than the four above (RFC 9110 §7.6.1, and `Proxy-Connection`).
    OtherHop,
    RequestId,
    Date,
    Other,
}

impl Kind {
    pub(crate) fn of(name: &[u8]) -> Kind {
        let is = |s: &str| name.eq_ignore_ascii_case(s.as_bytes());
        match name.len() {
            2 if is("te") => Kind::OtherHop,
            4 if is("date") => Kind::Date,
            7 if is("upgrade") || is("trailer") => Kind::OtherHop,
            10 if is("connection") => Kind::Connection,
            10 if is("keep-alive") => Kind::KeepAlive,
            12 if is("x-request-id") => Kind::RequestId,
            14 if is("content-length") => Kind::ContentLength,
            16 if is("proxy-connection") => Kind::OtherHop,
            17 if is("transfer-encoding") => Kind::TransferEncoding,
            18 if is("proxy-authenticate") => Kind::OtherHop,
            _ => Kind::Other,
        }
    }
}

/// A response's header fields as lines `name: value\r\n`, the upstream's spelling kept.
///
/// Left out: `Transfer-Encoding` (the body is decoded; whoever writes it frames it again), a
/// `Content-Length` beside a transfer coding (RFC 9112 §6.3), and `Connection`/`Keep-Alive`
/// when `Connection` names no other field. The upstream's `X-Request-Id` lines come last, past
/// the part relayed to the client, which gets umbra's id instead.
#[derive(Debug, Default, Clone)]
pub struct Relayed {
    lines: Bytes,
    /// Where the relayed part ends (the `X-Request-Id` lines follow).
    end: usize,
    /// How many lines there are, all told.
    count: usize,
    date: bool,
    length: bool,
    hop_by_hop: bool,
}

/// What `Relayed::from_fields` needs to know about the head as a whole.
pub(crate) struct Framed {
    /// A `Transfer-Encoding` was present: any `Content-Length` is left out.
    pub coded: bool,
    /// `Connection` names no field but `keep-alive` / `close`: it and `Keep-Alive` are left
    /// out. Otherwise both stay, and `needs_map` says the proxy has to strip them.
    pub connection_plain: bool,
}

impl Relayed {
    /// The lines of `fields` (as httparse read them, values trimmed); `kinds[i]` is
    /// `Kind::of` the name of `fields[i]`.
    pub(crate) fn from_fields(
        fields: &[httparse::Header<'_>],
        kinds: &[Kind],
        framed: Framed,
    ) -> Relayed {
        let size: usize = fields
            .iter()
            .map(|f| f.name.len() + f.value.len() + 4)
            .sum();
        let mut lines = BytesMut::with_capacity(size);
        let mut ids = Vec::new();
        let mut out = Relayed::default();
        for (f, kind) in fields.iter().zip(kinds) {
            match kind {
                Kind::TransferEncoding => continue,
                Kind::ContentLength if framed.coded => continue,
                // A repeated (identical: the parser refuses others) length is said once.
                Kind::ContentLength if out.length => continue,
                Kind::Connection | Kind::KeepAlive if framed.connection_plain => continue,
                Kind::Connection | Kind::KeepAlive | Kind::OtherHop => out.hop_by_hop = true,
                Kind::RequestId => {
                    ids.push(f);
                    continue;
                }
                Kind::ContentLength => out.length = true,
                Kind::Date => out.date = true,
                Kind::Other => {}
            }
            line(&mut lines, f);
            out.count += 1;
        }
        out.end = lines.len();
        for f in ids {
            line(&mut lines, f);
            out.count += 1;
        }
        out.lines = lines.freeze();
        out
    }

    /// The lines for the client, `X-Request-Id` left out.
    pub fn lines(&self) -> &[u8] {
        &self.lines[..self.end]
    }

    /// A `Date` is among the lines.
    pub fn has_date(&self) -> bool {
        self.date
    }

    /// A `Content-Length` is among the lines.
    pub fn has_length(&self) -> bool {
        self.length
    }

    /// A hop-by-hop field the proxy must act on is among the lines (a `Connection` naming
    /// other fields, `Upgrade`, `TE`, `Trailer`...): only the map path strips them.
    pub fn needs_map(&self) -> bool {
        self.hop_by_hop
    }

    /// Leaves out the client's lines whose name `drop` picks (a route's removed and replaced
    /// fields), keeping the rest as lines: a route's changes need no map. Copies only when a
    /// line goes.
    pub fn drop_fields(&mut self, drop: impl Fn(&[u8]) -> bool) {
        let mut kept: Option<BytesMut> = None;
        let mut at = 0;
        while at < self.end {
            let rest = &self.lines[at..self.end];
            let colon = memchr::memchr(b':', rest).unwrap_or(0);
            let len = colon + memchr::memchr(b'\n', &rest[colon..]).map_or(rest.len(), |n| n + 1);
            let name = &rest[..colon];
            if drop(name) {
                kept.get_or_insert_with(|| BytesMut::from(&self.lines[..at]));
                self.count -= 1;
                self.date &= Kind::of(name) != Kind::Date;
            } else if let Some(k) = &mut kept {
                k.extend_from_slice(&rest[..len]);
            }
            at += len;
        }
        if let Some(mut k) = kept {
            let end = k.len();
            k.extend_from_slice(&self.lines[self.end..]);
            self.lines = k.freeze();
            self.end = end;
        }
    }

    /// Appends the fields to `headers`: all of them, or (`relayed_only`) the client's part.
    pub fn merge_into(&self, headers: &mut HeaderMap, relayed_only: bool) {
        let upto = if relayed_only {
            self.end
        } else {
            self.lines.len()
        };
        headers.reserve(self.count);
        let mut at = 0;
        while at < upto {
            // Lines are exactly `name: value\r\n`, written by `line`: a name holds no `:`, a
            // value no `\r`.
            let rest = &self.lines[at..upto];
            let colon = memchr::memchr(b':', rest).unwrap_or(0);
            let cr = colon + memchr::memchr(b'\r', &rest[colon..]).unwrap_or(rest.len() - colon);
            // httparse admits exactly the names and values `http` does: these cannot fail.
            let name = HeaderName::from_bytes(&rest[..colon]);
            let value = HeaderValue::from_maybe_shared(self.lines.slice(at + colon + 2..at + cr));
            debug_assert!(name.is_ok() && value.is_ok(), "{:?}", &rest[..cr]);
            if let (Ok(name), Ok(value)) = (name, value) {
                headers.append(name, value);
            }
            at += cr + 2;
        }
    }
}

fn line(out: &mut BytesMut, f: &httparse::Header<'_>) {
    put_field(out, f.name.as_bytes(), f.value);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn relayed(head: &str, framed: Framed) -> Relayed {
        let mut slots = [httparse::EMPTY_HEADER; 16];
        let mut resp = httparse::Response::new(&mut slots);
        resp.parse(head.as_bytes()).unwrap();
        let kinds: Vec<Kind> = resp
            .headers
            .iter()
            .map(|h| Kind::of(h.name.as_bytes()))
            .collect();
        Relayed::from_fields(resp.headers, &kinds, framed)
    }

    const PLAIN: Framed = Framed {
        coded: false,
        connection_plain: true,
    };

    #[test]
    fn every_hop_by_hop_name_is_told_apart() {
        for name in crate::wire::headers::HOP_BY_HOP {
            let kind = Kind::of(name.as_str().to_ascii_uppercase().as_bytes());
            assert!(
                matches!(
                    kind,
                    Kind::Connection | Kind::KeepAlive | Kind::TransferEncoding | Kind::OtherHop
                ),
                "{name} is {kind:?}"
            );
        }
        assert_eq!(Kind::of(b"Content-length"), Kind::ContentLength);
        assert_eq!(Kind::of(b"X-Request-ID"), Kind::RequestId);
        assert_eq!(Kind::of(b"DATE"), Kind::Date);
        assert_eq!(Kind::of(b"content-type"), Kind::Other);
        assert_eq!(Kind::of(b"x-request-ie"), Kind::Other);
    }

    #[test]
    fn lines_keep_the_upstreams_spelling_and_leave_out_what_the_proxy_replaces() {
        let r = relayed(
            "HTTP/1.1 200 OK\r\nServer:nginx\r\nDate: Tue, 24 Nov 2026 06:00:00 GMT\r\n\
             Content-Type: application/json  \r\nContent-Length: 2\r\n\
             Connection: keep-alive\r\nKeep-Alive: timeout=5\r\nX-Request-Id: up-1\r\n\
             Set-Cookie: a=1\r\nSet-Cookie: b=2\r\nX-Empty:\r\n\r\n",
            PLAIN,
        );
        assert_eq!(
            std::str::from_utf8(r.lines()).unwrap(),
            "Server: nginx\r\nDate: Tue, 24 Nov 2026 06:00:00 GMT\r\n\
             Content-Type: application/json\r\nContent-Length: 2\r\n\
             Set-Cookie: a=1\r\nSet-Cookie: b=2\r\nX-Empty: \r\n"
        );
        assert!(r.has_date() && r.has_length() && !r.needs_map());

        let mut client = HeaderMap::new();
        r.merge_into(&mut client, true);
        assert_eq!(client.len(), 7);
        assert_eq!(client["content-type"], "application/json");
        assert_eq!(client.get_all("set-cookie").iter().count(), 2);
        assert_eq!(client["x-empty"], "");
        assert!(!client.contains_key("x-request-id"));
        let mut all = HeaderMap::new();
        r.merge_into(&mut all, false);
        assert_eq!(all["x-request-id"], "up-1", "held apart, not lost");
        assert_eq!(all.len(), 8);
    }

    #[test]
    fn dropped_fields_leave_the_rest_as_lines() {
        let head = "HTTP/1.1 200 OK\r\nServer: app\r\nDate: Tue, 24 Nov 2026 06:00:00 GMT\r\n\
                    X-Powered-By: php\r\nX-A: 1\r\nX-Request-Id: up-1\r\n\r\n";
        let mut r = relayed(head, PLAIN);
        r.drop_fields(|n| n.eq_ignore_ascii_case(b"x-nothing"));
        assert_eq!(r.lines(), relayed(head, PLAIN).lines(), "nothing to drop");
        r.drop_fields(|n| {
            n.eq_ignore_ascii_case(b"x-powered-by") || n.eq_ignore_ascii_case(b"date")
        });
        assert_eq!(r.lines(), b"Server: app\r\nX-A: 1\r\n");
        assert!(!r.has_date(), "the Date went");
        let mut all = HeaderMap::new();
        r.merge_into(&mut all, false);
        assert_eq!(all.len(), 3);
        assert_eq!(all["x-request-id"], "up-1", "the held-apart tail stays");
    }

    #[test]
    fn framing_and_named_hop_fields() {
        let r = relayed(
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 9\r\nX-A: 1\r\n\r\n",
            Framed {
                coded: true,
                connection_plain: true,
            },
        );
        assert_eq!(r.lines(), b"X-A: 1\r\n");
        assert!(!r.has_length() && !r.has_date());

        let r = relayed(
            "HTTP/1.1 200 OK\r\nConnection: x-hop\r\nX-Hop: 1\r\n\r\n",
            Framed {
                coded: false,
                connection_plain: false,
            },
        );
        assert!(
            r.needs_map(),
            "a Connection naming a field is for the proxy to act on"
        );
        assert_eq!(r.lines(), b"Connection: x-hop\r\nX-Hop: 1\r\n");
        assert!(relayed("HTTP/1.1 200 OK\r\nTrailer: x\r\n\r\n", PLAIN).needs_map());
        assert!(relayed("HTTP/1.1 200 OK\r\n\r\n", PLAIN).lines().is_empty());
    }

    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Whatever head httparse accepts, the lines give back exactly the fields they should
        /// keep, as `http` would have parsed them, and the flags say what is among them.
        #[test]
        fn lines_round_trip_to_the_fields_they_keep(
            fields in proptest::collection::vec(
                (
                    prop_oneof![
                        proptest::sample::select(vec![
                            "Content-Length", "transfer-encoding", "CONNECTION", "Keep-Alive",
                            "x-request-id", "Date", "TE", "Upgrade", "trailer",
                            "Proxy-Connection", "Set-Cookie", "x-a",
                        ]).prop_map(String::from),
                        "[A-Za-z0-9!#$%&'*+.^_`|~-]{1,12}",
                    ],
                    "[ -~\u{a0}-\u{ff}]{0,24}",
                ),
                0..12,
            ),
            coded: bool,
            connection_plain: bool,
        ) {
            let mut head = String::from("HTTP/1.1 200 OK\r\n");
            for (name, value) in &fields {
                head.push_str(&format!("{name}: {value}\r\n"));
            }
            head.push_str("\r\n");
            let mut slots = [httparse::EMPTY_HEADER; 16];
            let mut resp = httparse::Response::new(&mut slots);
            prop_assume!(resp.parse(head.as_bytes()).is_ok());
            let kinds: Vec<Kind> = resp.headers.iter().map(|h| Kind::of(h.name.as_bytes())).collect();
            let r = Relayed::from_fields(resp.headers, &kinds, Framed { coded, connection_plain });

            let (mut all, mut client) = (HeaderMap::new(), HeaderMap::new());
            let (mut hop, mut date, mut length) = (false, false, false);
            for (h, kind) in resp.headers.iter().zip(&kinds) {
                let kept = match kind {
                    Kind::TransferEncoding => false,
                    // A repeated length is said once.
                    Kind::ContentLength => !coded && !length,
                    Kind::Connection | Kind::KeepAlive => !connection_plain,
                    _ => true,
                };
                if !kept {
                    continue;
                }
                hop |= matches!(kind, Kind::Connection | Kind::KeepAlive | Kind::OtherHop);
                date |= *kind == Kind::Date;
                length |= *kind == Kind::ContentLength;
                let name = HeaderName::from_bytes(h.name.as_bytes()).unwrap();
                let value = HeaderValue::from_bytes(h.value).unwrap();
                if *kind != Kind::RequestId {
                    client.append(name.clone(), value.clone());
                }
                all.append(name, value);
            }
            let mut got = HeaderMap::new();
            r.merge_into(&mut got, false);
            prop_assert_eq!(&got, &all);
            let mut got = HeaderMap::new();
            r.merge_into(&mut got, true);
            prop_assert_eq!(&got, &client);
            prop_assert_eq!((r.needs_map(), r.has_date(), r.has_length()), (hop, date, length));
        }
    }
}
