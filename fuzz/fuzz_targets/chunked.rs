//! Fuzzes the direct client's chunked-body decoder (`client/h1.rs`). The first byte picks the
//! mode: even, the rest is a body on the wire; odd, the rest is a payload that is chunk-encoded
//! (chunk sizes, extensions and trailers drawn from the second byte) and must decode back.
//!
//! Invariants: the decoder never yields more bytes than it was given, nor an empty data step,
//! and always makes progress; it decodes a body the same whether the bytes come at once or one
//! at a time (the line-length limit aside, which depends on what is buffered); what follows the
//! end of a body is left in the buffer; decoded data encoded again decodes to itself; and any
//! valid encoding of a payload decodes to exactly that payload.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use umbra_proxy::client::h1::Error;
use umbra_proxy::fuzzing::{ChunkStep, ChunkedDecoder};

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if mode & 1 == 0 {
        on_the_wire(rest);
    } else if let Some((&seed, payload)) = rest.split_first() {
        encoded(payload, seed);
    }
});

/// How decoding a whole input ended.
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    /// The body ended; what was left in the buffer after it.
    End(Vec<u8>),
    /// The input ran out before the end of the body.
    More,
    /// Refused (the message, to tell the line-length limit apart).
    Refused(String),
}

/// Decodes `input`, handed to the decoder `step` bytes at a time.
fn decode(input: &[u8], step: usize) -> (Vec<u8>, Outcome) {
    let mut dec = ChunkedDecoder::default();
    let mut buf = BytesMut::new();
    let mut feed = input.chunks(step);
    let mut out = Vec::new();
    // Each data step consumes a byte and each `More` is followed by a feed.
    for _ in 0..=2 * input.len() + 2 {
        match dec.decode(&mut buf) {
            Ok(ChunkStep::Data(d)) => {
                assert!(!d.is_empty(), "no empty data step");
                out.extend_from_slice(&d);
            }
            Ok(ChunkStep::More) => match feed.next() {
                Some(bytes) => buf.extend_from_slice(bytes),
                None => return (out, Outcome::More),
            },
            Ok(ChunkStep::End) => {
                let mut left = buf.to_vec();
                feed.for_each(|b| left.extend_from_slice(b));
                return (out, Outcome::End(left));
            }
            Err(e) => return (out, Outcome::Refused(e.to_string())),
        }
    }
    panic!("the decoder makes no progress");
}

fn too_long(o: &Outcome) -> bool {
    let limit = Error::Invalid("chunked line too long").to_string();
    matches!(o, Outcome::Refused(m) if *m == limit)
}

fn on_the_wire(input: &[u8]) {
    let (whole, end) = decode(input, input.len().max(1));
    assert!(whole.len() <= input.len(), "more bytes out than in");
    if let Outcome::End(left) = &end {
        assert!(input.ends_with(left), "what follows the body stays");
        assert!(whole.len() + left.len() < input.len());
    }
    let (bytewise, bytewise_end) = decode(input, 1);
    if !too_long(&end) && !too_long(&bytewise_end) {
        assert_eq!(
            end, bytewise_end,
            "the outcome does not depend on the reads"
        );
        assert_eq!(whole, bytewise, "nor does the data");
    }
    if matches!(end, Outcome::End(_)) {
        let again = encode(&whole, 0x5a);
        assert_eq!(
            decode(&again, again.len()),
            (whole, Outcome::End(Vec::new()))
        );
    }
}

fn encoded(payload: &[u8], seed: u8) {
    let wire = encode(payload, seed);
    let step = 1 + seed as usize % 7;
    assert_eq!(
        decode(&wire, step),
        (payload.to_vec(), Outcome::End(Vec::new())),
        "{:?}",
        String::from_utf8_lossy(&wire)
    );
}

/// A valid chunked encoding of `payload`; `seed` varies the chunk sizes, the spelling of the
/// sizes, extensions and trailers.
fn encode(payload: &[u8], seed: u8) -> Vec<u8> {
    use std::io::Write;
    let mut state = u32::from(seed) | 0x100;
    let mut next = move || {
        // xorshift32: any fixed sequence will do.
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        state
    };
    let mut out = Vec::new();
    let mut rest = payload;
    while !rest.is_empty() {
        let r = next();
        let n = (1 + r as usize % 17).min(rest.len());
        match r >> 8 & 3 {
            0 => write!(out, "{n:x}"),
            1 => write!(out, "{n:X}"),
            2 => write!(out, "000{n:x}"),
            _ => write!(out, "{n:x} ;name=\"v;x\""),
        }
        .expect("writing to a vector");
        // Lines end in CRLF: umbra's client refuses a bare LF (RFC 9112 §7.1).
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(&rest[..n]);
        out.extend_from_slice(b"\r\n");
        rest = &rest[n..];
    }
    out.extend_from_slice(b"0\r\n");
    if seed & 1 == 1 {
        out.extend_from_slice(b"X-Trailer: t\r\nX-Other: u\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out
}
