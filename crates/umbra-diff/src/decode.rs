//! Decoding of compressed bodies (`gzip`, `x-gzip`, `deflate`, `br`, `identity`, and stacks
//! of them such as `gzip, br`) before comparison. Shadow side: only copies that are compared
//! are decoded, never what goes to the client.
//!
//! Bomb-safe: every stage stops reading once its output would exceed `limit`, so a tiny
//! compressed body can never expand into more than `limit` bytes of memory per stage.

use std::io::{self, Read};

use flate2::read::{DeflateDecoder, MultiGzDecoder, ZlibDecoder};

/// More stacked encodings than this are refused (no real server stacks more than two).
pub const MAX_STACKED_ENCODINGS: usize = 4;

#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("unsupported content encoding {0:?} (supported: gzip, x-gzip, deflate, br, identity)")]
    Unsupported(String),
    #[error("too many stacked content encodings in {header:?} (at most {MAX_STACKED_ENCODINGS})")]
    TooManyEncodings { header: String },
    #[error("{encoding} body is corrupt or truncated")]
    Corrupt {
        encoding: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("decoded body exceeds the limit of {limit} bytes")]
    TooLarge { limit: usize },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Coding {
    Gzip,
    Deflate,
    Brotli,
}

impl Coding {
    fn name(self) -> &'static str {
        match self {
            Coding::Gzip => "gzip",
            Coding::Deflate => "deflate",
            Coding::Brotli => "br",
        }
    }
}

/// Parses a `Content-Encoding` value into the codings to undo, in the order they were
/// applied (`identity` and empty items dropped).
fn parse_codings(header: &str) -> Result<Vec<Coding>, DecodeError> {
    let mut out = Vec::new();
    for item in header.split(',') {
        let item = item.trim();
        if item.is_empty() || item.eq_ignore_ascii_case("identity") {
            continue;
        }
        let coding = match item.to_ascii_lowercase().as_str() {
            "gzip" | "x-gzip" => Coding::Gzip,
            "deflate" => Coding::Deflate,
            "br" => Coding::Brotli,
            _ => return Err(DecodeError::Unsupported(item.to_owned())),
        };
        out.push(coding);
    }
    if out.len() > MAX_STACKED_ENCODINGS {
        return Err(DecodeError::TooManyEncodings {
            header: header.to_owned(),
        });
    }
    Ok(out)
}

/// Decodes a body according to its `Content-Encoding` (codings are undone last-applied
/// first). The output, and every intermediate stage, is capped at `limit` bytes: beyond it the
/// result is [`DecodeError::TooLarge`]. Without an encoding the body is returned as is
/// (still subject to `limit`).
pub fn decode_body(
    content_encoding: Option<&str>,
    body: &[u8],
    limit: usize,
) -> Result<Vec<u8>, DecodeError> {
    let codings = match content_encoding {
        Some(h) => parse_codings(h)?,
        None => Vec::new(),
    };
    let mut current: Option<Vec<u8>> = None;
    for coding in codings.into_iter().rev() {
        let input = current.as_deref().unwrap_or(body);
        current = Some(decode_one(coding, input, limit)?);
    }
    match current {
        Some(out) => Ok(out),
        None if body.len() > limit => Err(DecodeError::TooLarge { limit }),
        None => Ok(body.to_vec()),
    }
}

fn decode_one(coding: Coding, input: &[u8], limit: usize) -> Result<Vec<u8>, DecodeError> {
    match coding {
        Coding::Gzip => read_capped(coding, MultiGzDecoder::new(input), limit),
        Coding::Deflate if looks_like_zlib(input) => {
            read_capped(coding, ZlibDecoder::new(input), limit)
        }
        // Some servers send raw DEFLATE (RFC 1951) for `deflate`, contrary to RFC 9110.
        Coding::Deflate => read_capped(coding, DeflateDecoder::new(input), limit),
        Coding::Brotli => read_capped(coding, brotli::Decompressor::new(input, 4096), limit),
    }
}

/// A zlib stream starts with CMF/FLG: compression method 8 and a header checksum.
fn looks_like_zlib(input: &[u8]) -> bool {
    match input {
        [cmf, flg, ..] => cmf & 0x0f == 8 && (u16::from(*cmf) << 8 | u16::from(*flg)) % 31 == 0,
        _ => false,
    }
}

fn read_capped<R: Read>(coding: Coding, reader: R, limit: usize) -> Result<Vec<u8>, DecodeError> {
    let mut out = Vec::new();
    let cap = u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1);
    reader
        .take(cap)
        .read_to_end(&mut out)
        .map_err(|source| DecodeError::Corrupt {
            encoding: coding.name(),
            source,
        })?;
    if out.len() > limit {
        return Err(DecodeError::TooLarge { limit });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    use flate2::write::{DeflateEncoder, GzEncoder, ZlibEncoder};
    use flate2::Compression;

    const TEXT: &[u8] = b"{\"hello\":\"world\",\"n\":[1,2,3]}";

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut e = GzEncoder::new(Vec::new(), Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    fn zlib(data: &[u8]) -> Vec<u8> {
        let mut e = ZlibEncoder::new(Vec::new(), Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    fn raw_deflate(data: &[u8]) -> Vec<u8> {
        let mut e = DeflateEncoder::new(Vec::new(), Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    fn br(data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        {
            let mut w = brotli::CompressorWriter::new(&mut out, 4096, 5, 22);
            w.write_all(data).unwrap();
        }
        out
    }

    #[test]
    fn identity_and_none_pass_through() {
        assert_eq!(decode_body(None, TEXT, 1024).unwrap(), TEXT);
        assert_eq!(decode_body(Some("identity"), TEXT, 1024).unwrap(), TEXT);
        assert_eq!(decode_body(Some(""), TEXT, 1024).unwrap(), TEXT);
    }

    #[test]
    fn each_coding_decodes() {
        assert_eq!(decode_body(Some("gzip"), &gzip(TEXT), 1024).unwrap(), TEXT);
        assert_eq!(
            decode_body(Some("X-GZIP"), &gzip(TEXT), 1024).unwrap(),
            TEXT
        );
        assert_eq!(
            decode_body(Some("deflate"), &zlib(TEXT), 1024).unwrap(),
            TEXT
        );
        assert_eq!(
            decode_body(Some("deflate"), &raw_deflate(TEXT), 1024).unwrap(),
            TEXT
        );
        assert_eq!(decode_body(Some("br"), &br(TEXT), 1024).unwrap(), TEXT);
    }

    #[test]
    fn concatenated_gzip_members_decode_fully() {
        let mut two = gzip(b"abc");
        two.extend(gzip(b"def"));
        assert_eq!(decode_body(Some("gzip"), &two, 1024).unwrap(), b"abcdef");
    }

    #[test]
    fn stacked_codings_are_undone_in_reverse() {
        // "gzip, br": gzip applied first, then br.
        let body = br(&gzip(TEXT));
        assert_eq!(decode_body(Some("gzip, br"), &body, 1024).unwrap(), TEXT);
        assert_eq!(
            decode_body(Some("identity, gzip ,br"), &body, 1024).unwrap(),
            TEXT
        );
        assert!(decode_body(Some("br, gzip"), &body, 1024).is_err());
    }

    #[test]
    fn unknown_coding_is_named() {
        let err = decode_body(Some("gzip, compress"), b"x", 1024).unwrap_err();
        assert!(matches!(err, DecodeError::Unsupported(ref e) if e == "compress"));
        assert!(err.to_string().contains("\"compress\""));
    }

    #[test]
    fn too_many_codings_are_refused() {
        let err = decode_body(Some("gzip,gzip,gzip,gzip,gzip"), b"x", 1024).unwrap_err();
        assert!(matches!(err, DecodeError::TooManyEncodings { .. }));
    }

    #[test]
    fn corrupt_and_truncated_input_is_an_error_with_source() {
        let err = decode_body(Some("gzip"), b"not gzip", 1024).unwrap_err();
        assert!(matches!(
            err,
            DecodeError::Corrupt {
                encoding: "gzip",
                ..
            }
        ));
        assert!(std::error::Error::source(&err).is_some());
        let full = gzip(TEXT);
        let cut = &full[..full.len() / 2];
        assert!(decode_body(Some("gzip"), cut, 1024).is_err());
        assert!(matches!(
            decode_body(Some("br"), b"\xff\xff\xff", 1024),
            Err(DecodeError::Corrupt { encoding: "br", .. })
        ));
    }

    #[test]
    fn output_is_capped_against_bombs() {
        let zeros = vec![0u8; 10 * 1024 * 1024];
        let bomb = gzip(&zeros);
        assert!(bomb.len() < 64 * 1024);
        assert!(matches!(
            decode_body(Some("gzip"), &bomb, 1024 * 1024),
            Err(DecodeError::TooLarge { limit }) if limit == 1024 * 1024
        ));
        let bomb = br(&zeros);
        assert!(matches!(
            decode_body(Some("br"), &bomb, 4096),
            Err(DecodeError::TooLarge { .. })
        ));
        // Exactly at the limit is fine.
        assert_eq!(
            decode_body(Some("gzip"), &gzip(&[1; 100]), 100)
                .unwrap()
                .len(),
            100
        );
        assert!(matches!(
            decode_body(None, &[1; 101], 100),
            Err(DecodeError::TooLarge { limit: 100 })
        ));
    }
}
