//! Fuzzes the fast lane's request-head parser (`server/front.rs`) on arbitrary bytes.
//!
//! Invariants: a refused or partial head leaves the buffer exactly as it was (hyper's server
//! reads those bytes again); a taken request consumed a prefix of the input, is HTTP/1.1 in
//! origin form without a body or upgrade, every strict prefix of its head is partial, and its
//! head written out again parses to the same request.
#![no_main]

use bytes::BytesMut;
use http::header::{CONTENT_LENGTH, EXPECT, TRANSFER_ENCODING, UPGRADE};
use http::{Method, Request};
use libfuzzer_sys::fuzz_target;
use umbra_proxy::fuzzing::{request_head, RequestHead};

fuzz_target!(|data: &[u8]| {
    let mut buf = BytesMut::from(data);
    match request_head(&mut buf) {
        RequestHead::Partial | RequestHead::Other => {
            assert_eq!(
                &buf[..],
                data,
                "a head not taken leaves the buffer untouched"
            );
        }
        RequestHead::Request(req, close) => {
            let used = data.len() - buf.len();
            assert_eq!(&buf[..], &data[used..], "only the head leaves the buffer");
            check_request(&req);
            for cut in [used - 1, used / 2] {
                let mut prefix = BytesMut::from(&data[..cut]);
                assert!(
                    matches!(request_head(&mut prefix), RequestHead::Partial),
                    "a strict prefix ({cut} of {used} bytes) of a taken head is partial"
                );
            }
            round_trip(&req, close);
        }
    }
});

fn check_request(req: &Request<()>) {
    assert_ne!(req.method(), Method::CONNECT);
    assert!(req.uri().path().starts_with('/'), "origin form");
    assert!(req.uri().scheme().is_none() && req.uri().authority().is_none());
    let h = req.headers();
    assert!(!h.contains_key(TRANSFER_ENCODING) && !h.contains_key(UPGRADE));
    assert!(!h.contains_key(EXPECT));
    assert!(h.get_all(CONTENT_LENGTH).iter().all(|v| v == "0"));
}

/// Writes the request's head canonically and parses it again: same request, all of it taken.
fn round_trip(req: &Request<()>, close: bool) {
    let mut wire = Vec::new();
    wire.extend_from_slice(req.method().as_str().as_bytes());
    wire.push(b' ');
    let target = req.uri().path_and_query().map_or("/", |p| p.as_str());
    wire.extend_from_slice(target.as_bytes());
    wire.extend_from_slice(b" HTTP/1.1\r\n");
    for (name, value) in req.headers() {
        wire.extend_from_slice(name.as_str().as_bytes());
        wire.extend_from_slice(b": ");
        wire.extend_from_slice(value.as_bytes());
        wire.extend_from_slice(b"\r\n");
    }
    wire.extend_from_slice(b"\r\n");
    let mut again = BytesMut::from(&wire[..]);
    match request_head(&mut again) {
        RequestHead::Request(back, back_close) => {
            assert!(again.is_empty(), "the whole written head is taken");
            assert_eq!(back.method(), req.method());
            assert_eq!(back.uri(), req.uri());
            assert_eq!(back.headers(), req.headers());
            assert_eq!(back_close, close);
        }
        other => panic!(
            "the head written out again is not taken ({other:?}): {:?}",
            String::from_utf8_lossy(&wire)
        ),
    }
}
