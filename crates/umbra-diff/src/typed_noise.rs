//! Type-aware noise for routes without a secondary: a difference whose two values are both
//! UUIDs, both RFC 3339 timestamps (or dates), both epoch times, or both machine-made tokens of
//! the same shape says "a fresh id / a later clock", not "the candidate behaves differently".
//!
//! Pure and allocation-free: every test is a walk over the bytes. Both sides must fall in the
//! *same* category (a UUID replaced by a timestamp is a real change), and equal values are never
//! noise (they are not a difference). With a secondary the Diffy test stays the judge; this
//! is the fallback that lets a team without a second copy of production get a clean report.

use serde_json::Value;

use crate::endpoint::{is_token_like, is_uuid};

/// Earliest epoch second taken for a timestamp: 2001-09-09 (1 000 000 000).
const EPOCH_S_MIN: f64 = 1.0e9;
/// Latest epoch second taken for a timestamp: 2100-01-01.
const EPOCH_S_MAX: f64 = 4_102_444_800.0;
/// Shortest string taken as a token.
const TOKEN_MIN_LEN: usize = 16;
/// Longest string taken as a token (longer strings are content, not ids).
const TOKEN_MAX_LEN: usize = 512;

/// What a value looks like, for the categories that count as noise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    Uuid,
    DateTime,
    Date,
    EpochSeconds,
    EpochMillis,
    /// A token: its length and the positions of its separators must match the other side's.
    Token,
}

/// Whether a difference between these two values is type-aware noise: both are UUIDs, both
/// RFC 3339 date-times (or both dates), both epoch seconds or both epoch milliseconds between
/// 2001 and 2100, or both token-like ids of the same length and separator layout.
pub fn is_typed_noise(primary: &Value, candidate: &Value) -> bool {
    if primary == candidate {
        return false;
    }
    match (shape(primary), shape(candidate)) {
        (Some(Shape::Token), Some(Shape::Token)) => same_token_layout(primary, candidate),
        (Some(a), Some(b)) => a == b,
        _ => false,
    }
}

fn shape(v: &Value) -> Option<Shape> {
    match v {
        Value::String(s) => string_shape(s),
        Value::Number(n) => n.as_f64().and_then(epoch_shape),
        _ => None,
    }
}

fn string_shape(s: &str) -> Option<Shape> {
    if is_uuid(s) {
        Some(Shape::Uuid)
    } else if is_date(s.as_bytes()) {
        Some(Shape::Date)
    } else if is_date_time(s.as_bytes()) {
        Some(Shape::DateTime)
    } else if is_token(s.as_bytes()) {
        Some(Shape::Token)
    } else {
        None
    }
}

fn epoch_shape(x: f64) -> Option<Shape> {
    if (EPOCH_S_MIN..=EPOCH_S_MAX).contains(&x) {
        Some(Shape::EpochSeconds)
    } else if (EPOCH_S_MIN * 1000.0..=EPOCH_S_MAX * 1000.0).contains(&x) {
        Some(Shape::EpochMillis)
    } else {
        None
    }
}

/// `n` ASCII digits at `at`, as a number.
fn digits(b: &[u8], at: usize, n: usize) -> Option<u32> {
    let part = b.get(at..at + n)?;
    part.iter().try_fold(0u32, |acc, c| {
        c.is_ascii_digit().then(|| acc * 10 + u32::from(c - b'0'))
    })
}

/// `YYYY-MM-DD` with a plausible month and day.
fn is_date(b: &[u8]) -> bool {
    b.len() == 10 && date_prefix(b)
}

fn date_prefix(b: &[u8]) -> bool {
    b.len() >= 10
        && b[4] == b'-'
        && b[7] == b'-'
        && digits(b, 0, 4).is_some()
        && digits(b, 5, 2).is_some_and(|m| (1..=12).contains(&m))
        && digits(b, 8, 2).is_some_and(|d| (1..=31).contains(&d))
}

/// RFC 3339 `date-time` (`T`, `t` or a space between date and time), seconds optional
/// fraction, offset `Z` or `±HH:MM`; a missing offset (ISO 8601 local time) is taken too.
fn is_date_time(b: &[u8]) -> bool {
    if b.len() < 19 || !date_prefix(b) || !matches!(b[10], b'T' | b't' | b' ') {
        return false;
    }
    let time_ok = b[13] == b':'
        && b[16] == b':'
        && digits(b, 11, 2).is_some_and(|h| h <= 23)
        && digits(b, 14, 2).is_some_and(|m| m <= 59)
        && digits(b, 17, 2).is_some_and(|s| s <= 60);
    time_ok && is_fraction_and_offset(&b[19..])
}

fn is_fraction_and_offset(rest: &[u8]) -> bool {
    let rest = match rest.strip_prefix(b".") {
        Some(frac) => {
            let n = frac.iter().take_while(|c| c.is_ascii_digit()).count();
            if n == 0 {
                return false;
            }
            &frac[n..]
        }
        None => rest,
    };
    match rest {
        [] | [b'Z' | b'z'] => true,
        [b'+' | b'-', ..] => {
            rest.len() == 6
                && rest[3] == b':'
                && digits(rest, 1, 2).is_some_and(|h| h <= 23)
                && digits(rest, 4, 2).is_some_and(|m| m <= 59)
        }
        _ => false,
    }
}

/// A machine-made id: 16 to 512 characters that are all hex digits (request ids, digests), or
/// what the endpoint grouper takes as a token path segment ([`is_token_like`]: 20 or more
/// base64url characters with the class changes and entropy of random text), so words, slugs
/// and sentences are not taken.
fn is_token(b: &[u8]) -> bool {
    if !(TOKEN_MIN_LEN..=TOKEN_MAX_LEN).contains(&b.len()) {
        return false;
    }
    if b.iter().all(u8::is_ascii_hexdigit) {
        return true;
    }
    std::str::from_utf8(trim_padding(b)).is_ok_and(is_token_like)
}

fn trim_padding(b: &[u8]) -> &[u8] {
    let n = b.iter().rev().take_while(|c| **c == b'=').count();
    &b[..b.len() - n]
}

/// Two tokens have the same layout when they have the same length and, when both start with
/// a type prefix (`req_`, `cus_`: up to eight letters and `_`), the same prefix: `req_4f…` and
/// `req_9a…` are two request ids, `cus_…` and `ch_…` two kinds of object. Random base64url
/// bodies hold `-` and `_` anywhere, so separators elsewhere are not compared.
fn same_token_layout(a: &Value, b: &Value) -> bool {
    let (Value::String(a), Value::String(b)) = (a, b) else {
        return false;
    };
    a.len() == b.len()
        && match (type_prefix(a), type_prefix(b)) {
            (Some(x), Some(y)) => x == y,
            _ => true,
        }
}

/// The leading letters of `req_…`, when there are one to eight of them before a `_`.
fn type_prefix(s: &str) -> Option<&str> {
    let end = s.bytes().take(9).position(|c| c == b'_')?;
    let prefix = &s[..end];
    (end > 0 && prefix.bytes().all(|c| c.is_ascii_alphabetic())).then_some(prefix)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn noise(a: Value, b: Value) -> bool {
        is_typed_noise(&a, &b)
    }

    #[test]
    fn uuids_on_both_sides_are_noise() {
        assert!(noise(
            json!("0b4c6a2e-3f1d-4e5a-9b8c-7d6e5f4a3b2c"),
            json!("9F8E7D6C-5B4A-4938-8271-605F4E3D2C1B")
        ));
        assert!(!noise(
            json!("0b4c6a2e-3f1d-4e5a-9b8c-7d6e5f4a3b2c"),
            json!("2024-01-01T00:00:00Z")
        ));
        assert!(!noise(
            json!("0b4c6a2e-3f1d-4e5a-9b8c-7d6e5f4a3b2c"),
            json!("0b4c6a2e-3f1d-4e5a-9b8c-7d6e5f4a3b2c")
        ));
        assert!(!noise(
            json!("0b4c6a2e-3f1d-4e5a-9b8c-7d6e5f4a3b2c"),
            json!(null)
        ));
    }

    #[test]
    fn rfc3339_timestamps_and_dates_are_noise() {
        assert!(noise(
            json!("2024-01-01T00:00:00Z"),
            json!("2024-01-01T00:00:01.123456+02:00")
        ));
        assert!(noise(
            json!("2011-04-14T16:00:49Z"),
            json!("2011-04-14 16:00:50z")
        ));
        assert!(noise(
            json!("2024-01-01T00:00:00"),
            json!("2024-01-02T00:00:00")
        ));
        assert!(noise(json!("2024-01-01"), json!("2024-12-31")));
        // A date replaced by a date-time is a format change, not a later clock.
        assert!(!noise(json!("2024-01-01"), json!("2024-01-01T00:00:00Z")));
        for bad in [
            "2024-13-01T00:00:00Z",
            "2024-01-01T24:00:00Z",
            "2024-01-01T00:00:00+2:00",
            "2024-01-01T00:00:00.Z",
            "2024-01-01X00:00:00Z",
            "2024/01/01",
            "2024-01-01T00:00:00Zjunk",
        ] {
            assert!(!noise(json!(bad), json!("2024-01-01T00:00:00Z")), "{bad}");
        }
    }

    #[test]
    fn epoch_numbers_in_range_are_noise() {
        assert!(noise(json!(1_700_000_000), json!(1_700_000_001)));
        assert!(noise(json!(1_700_000_000.25), json!(1_700_000_001.5)));
        assert!(noise(
            json!(1_700_000_000_000u64),
            json!(1_700_000_000_123u64)
        ));
        // Seconds against milliseconds: a unit change.
        assert!(!noise(json!(1_700_000_000), json!(1_700_000_000_000u64)));
        // Ordinary numbers: prices, counts, small ids.
        assert!(!noise(json!(19.99), json!(20.99)));
        assert!(!noise(json!(42), json!(43)));
        assert!(!noise(json!(999_999_999), json!(1_000_000_001)));
        assert!(!noise(
            json!(5_000_000_000_000_000u64),
            json!(5_000_000_000_000_001u64)
        ));
        // A number turned into a string is never noise.
        assert!(!noise(json!(1_700_000_000), json!("1700000000")));
    }

    #[test]
    fn tokens_of_the_same_shape_are_noise() {
        // The demo's request ids: 16 hex digits.
        assert!(noise(json!("4f1c2a9b7e3d0a55"), json!("0091ab3ce1f27d64")));
        // A git sha.
        assert!(noise(
            json!("7638417db6d59f3c431d3e1f261cc637155684cd"),
            json!("3e1f261cc637155684cd7638417db6d59f3c431d")
        ));
        // Prefixed ids with the same prefix and base64url bodies.
        assert!(noise(
            json!("req_8fK2mQ9xL3vB7nT1"),
            json!("req_Z4pW6yH0cR5jD2sA")
        ));
        // Random base64url bodies hold `-` and `_` anywhere.
        assert!(noise(
            json!("Qx_7Tb9-kLm2Zp4Rw8Yv3c"),
            json!("a9-KwP2x_5nBq7Lz0Ye4Ht")
        ));
        assert!(noise(
            json!("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOjF9.c2lnbmF0dXJlMQ=="),
            json!("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOjJ9.c2lnbmF0dXJlMg==")
        ));
    }

    #[test]
    fn words_and_differently_shaped_tokens_are_not_noise() {
        // Different prefix: a different kind of object.
        assert!(!noise(
            json!("cus_8fK2mQ9xL3vB7nT1"),
            json!("req_Z4pW6yH0cR5jD2sA")
        ));
        assert!(!noise(
            json!("cus_8fK2mQ9xL3vB7nT1a"),
            json!("ch_Z4pW6yH0cR5jD2sAbc")
        ));
        // Different length.
        assert!(!noise(json!("4f1c2a9b7e3d0a55"), json!("4f1c2a9b7e3d0a5")));
        // Words, slugs, sentences, short codes.
        assert!(!noise(
            json!("internationalization"),
            json!("institutionalization")
        ));
        assert!(!noise(
            json!("octokit-fixture-user-a"),
            json!("octokit-fixture-user-b")
        ));
        assert!(!noise(
            json!("Issue without a label"),
            json!("Issue with a label!")
        ));
        assert!(!noise(json!("A-1"), json!("B-2")));
        assert!(!noise(
            json!("release-notes-2024"),
            json!("release-notes-2025")
        ));
        assert!(!noise(
            json!("https://a.example/x"),
            json!("https://b.example/y")
        ));
        assert!(!noise(json!(true), json!(false)));
        assert!(!noise(json!({"a": 1}), json!({"a": 2})));
    }
}
