//! Entry points for the fuzz targets in `fuzz/` (and their regression tests): thin wrappers
//! that expose the data plane's private parsers — the fast lane's request-head parser and the
//! direct client's response-head parser and chunked decoder — without making them part of the
//! crate's API. Not for use outside fuzzing and tests.

use bytes::{Bytes, BytesMut};
use http::{Request, StatusCode, Version};

use crate::client::h1::{self, Chunk, Step};
use crate::server::front::{self, Parsed};
use crate::wire::relay::Relayed;

/// What the fast lane made of the bytes at the front of a buffer.
// Matched at once, as the parser's own result is.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum RequestHead {
    /// A fast-lane request (its body dropped: the fast lane takes none), and whether the
    /// client asked to close after it. Its bytes left the buffer.
    Request(Request<()>, bool),
    /// Not a whole head yet.
    Partial,
    /// Anything else: hyper's server would take the connection, bytes and all.
    Other,
}

/// The fast lane's parse of the head at the front of `buf`.
pub fn request_head(buf: &mut BytesMut) -> RequestHead {
    match front::parse(buf) {
        Parsed::Request(req, close) => RequestHead::Request(req.map(|_| ()), close),
        Parsed::Partial => RequestHead::Partial,
        Parsed::Other => RequestHead::Other,
    }
}

/// How a response body is delimited, as the direct client decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    Length(u64),
    Chunked,
    Close,
}

/// A response head as the direct client parsed it.
#[derive(Debug)]
pub struct ResponseHead {
    pub status: StatusCode,
    pub version: Version,
    pub fields: Relayed,
    pub framing: Framing,
    /// Whether the connection may carry another request after the body.
    pub reusable: bool,
}

/// The direct client's parse of the final response head at the front of `buf` (interim 1xx
/// heads skipped); `head_request`: the request was HEAD. None: more bytes are needed.
pub fn response_head(
    buf: &mut BytesMut,
    head_request: bool,
) -> Result<Option<ResponseHead>, h1::Error> {
    let Some(head) = h1::parse_head(buf, head_request)? else {
        return Ok(None);
    };
    Ok(Some(ResponseHead {
        status: head.status,
        version: head.version,
        fields: head.fields,
        framing: match head.framing {
            h1::Framing::Length(n) => Framing::Length(n),
            h1::Framing::Chunked => Framing::Chunked,
            h1::Framing::Close => Framing::Close,
        },
        reusable: head.reusable,
    }))
}

/// One step of chunked decoding.
#[derive(Debug, PartialEq, Eq)]
pub enum ChunkStep {
    /// Body bytes.
    Data(Bytes),
    /// The buffer holds no more of the body: read more.
    More,
    /// The last chunk and the trailers were read; the body ended.
    End,
}

/// The direct client's chunked-body decoder, from the start of a body.
#[derive(Debug)]
pub struct ChunkedDecoder(Chunk);

impl Default for ChunkedDecoder {
    fn default() -> Self {
        ChunkedDecoder(Chunk::Size)
    }
}

impl ChunkedDecoder {
    /// Decodes what `buf` holds of the body, consuming what it has read.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<ChunkStep, h1::Error> {
        Ok(match h1::decode_chunked(&mut self.0, buf)? {
            Step::Data(d) => ChunkStep::Data(d),
            Step::More => ChunkStep::More,
            Step::End => ChunkStep::End,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_heads_are_taken_or_left_in_place() {
        let mut buf =
            BytesMut::from(&b"GET /a?b HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\nGET"[..]);
        match request_head(&mut buf) {
            RequestHead::Request(req, close) => {
                assert_eq!(req.uri(), "/a?b");
                assert_eq!(req.headers()["host"], "h");
                assert!(close);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(&buf[..], b"GET", "the next request's bytes stay");
        assert!(matches!(request_head(&mut buf), RequestHead::Partial));
        let body = &b"POST / HTTP/1.1\r\nContent-Length: 2\r\n\r\nhi"[..];
        let mut buf = BytesMut::from(body);
        assert!(matches!(request_head(&mut buf), RequestHead::Other));
        assert_eq!(&buf[..], body);
    }

    #[test]
    fn response_heads_and_chunks() {
        let mut buf = BytesMut::from(&b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"[..]);
        let head = response_head(&mut buf, false).unwrap().unwrap();
        assert_eq!(
            (head.status, head.framing),
            (StatusCode::OK, Framing::Chunked)
        );
        assert!(head.reusable && buf.is_empty());

        let mut dec = ChunkedDecoder::default();
        let mut buf = BytesMut::from(&b"2\r\nhi\r\n0\r\n\r\nrest"[..]);
        assert_eq!(
            dec.decode(&mut buf).unwrap(),
            ChunkStep::Data(Bytes::from("hi"))
        );
        assert_eq!(dec.decode(&mut buf).unwrap(), ChunkStep::End);
        assert_eq!(&buf[..], b"rest");
    }
}
