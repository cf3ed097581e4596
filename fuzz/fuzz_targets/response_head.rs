//! Fuzzes the direct client's response-head parser (`client/h1.rs`) on arbitrary bytes; the
//! first byte says whether the request was HEAD.
//!
//! Invariants: the parser only ever consumes a prefix of the input; a final head is never an
//! interim 1xx (but 101); the relayed lines are well-formed `name: value` lines without the
//! framing fields; the framing follows RFC 9112 §6.3 (HEAD, 204 and 304 have no body, a
//! reusable connection is HTTP/1.1); the relayed lines become a header map without loss; and
//! the head written out again from its lines parses to the same lines and framing.
#![no_main]

use bytes::BytesMut;
use http::{HeaderMap, StatusCode, Version};
use libfuzzer_sys::fuzz_target;
use umbra_proxy::fuzzing::{response_head, Framing, ResponseHead};

fuzz_target!(|data: &[u8]| {
    let Some((&flags, input)) = data.split_first() else {
        return;
    };
    let head_request = flags & 1 == 1;
    let mut buf = BytesMut::from(input);
    let parsed = response_head(&mut buf, head_request);
    assert!(
        input.ends_with(&buf),
        "the parser consumes a prefix of its input"
    );
    let Ok(Some(head)) = parsed else {
        return;
    };
    check_head(&head, head_request);
    let lines = head.fields.lines();
    check_lines(lines);
    let mut map = HeaderMap::new();
    head.fields.merge_into(&mut map, true);
    assert_eq!(
        map.len(),
        lines.split(|&b| b == b'\n').count() - 1,
        "every relayed line becomes one field"
    );
    round_trip(&head, head_request);
});

fn check_head(head: &ResponseHead, head_request: bool) {
    let code = head.status.as_u16();
    assert!(
        !(100..200).contains(&code) || code == 101,
        "interim heads are skipped"
    );
    if head.reusable {
        assert_eq!(
            head.version,
            Version::HTTP_11,
            "only HTTP/1.1 keeps the connection"
        );
        assert_ne!(head.framing, Framing::Close);
    }
    if head_request || code == 204 || code == 304 || code == 101 {
        assert_eq!(head.framing, Framing::Length(0), "no body");
    }
}

/// Each line is `name: value\r\n`: a token name, a value without CR or LF; no framing fields.
fn check_lines(lines: &[u8]) {
    assert!(lines.is_empty() || lines.ends_with(b"\r\n"));
    for line in lines.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        let line = line.strip_suffix(b"\r").expect("lines end in CRLF");
        assert!(!line.contains(&b'\r'), "a value holds no CR");
        let colon = line.iter().position(|&b| b == b':').expect("name: value");
        let name = &line[..colon];
        assert!(!name.is_empty());
        assert!(
            !name.eq_ignore_ascii_case(b"transfer-encoding"),
            "the framing is not relayed"
        );
    }
}

/// The head written again from its status and relayed lines parses to the same lines.
fn round_trip(head: &ResponseHead, head_request: bool) {
    if head.status == StatusCode::SWITCHING_PROTOCOLS {
        return;
    }
    let mut wire = format!("HTTP/1.1 {} X\r\n", head.status.as_u16()).into_bytes();
    wire.extend_from_slice(head.fields.lines());
    wire.extend_from_slice(b"\r\n");
    let mut buf = BytesMut::from(&wire[..]);
    let again = match response_head(&mut buf, head_request) {
        Ok(Some(h)) => h,
        other => panic!(
            "the head written out again does not parse ({other:?}): {:?}",
            String::from_utf8_lossy(&wire)
        ),
    };
    assert!(buf.is_empty());
    assert_eq!(again.status, head.status);
    assert_eq!(again.fields.lines(), head.fields.lines());
    // A transfer coding is not relayed: only the other framings survive being written again.
    if head.framing != Framing::Chunked {
        assert_eq!(again.framing, head.framing);
    }
}
