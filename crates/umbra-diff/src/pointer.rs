//! JSON Pointer patterns (RFC 6901 plus a `*` wildcard segment) used by the `ignore`,
//! `unordered` and `redact` rules, and helpers to render concrete pointers from path segments.
//!
//! Control-plane side: patterns are parsed once when a config is validated; the comparison
//! engine then matches them against path stacks without allocating.
//!
//! A `*` segment matches any single object key or array index. RFC 6901 has no escape for `*`,
//! so a key that is literally `*` can only be matched by the wildcard (which matches it too).

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Why a pointer pattern was rejected. The message names the pattern and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatternError {
    #[error("JSON pointer {pattern:?} must be empty or start with \"/\"")]
    MissingLeadingSlash { pattern: String },
    #[error(
        "JSON pointer {pattern:?} has an invalid escape in segment {segment:?}: \"~\" must be followed by \"0\" or \"1\""
    )]
    InvalidEscape { pattern: String, segment: String },
}

/// One segment of a concrete path, as the comparison engine walks a document.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Segment<'a> {
    /// An object key (unescaped).
    Key(&'a str),
    /// An array index.
    Index(usize),
}

impl fmt::Display for Segment<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Segment::Key(k) => f.write_str(&escape_segment(k)),
            Segment::Index(i) => write!(f, "{i}"),
        }
    }
}

/// Something that can stand for one segment of a concrete path: a [`Segment`], or an
/// unescaped string segment (`&str`, `String`).
pub trait PathSegment {
    /// Whether this segment equals the pattern literal `key` (whose canonical array-index
    /// reading, if any, is `index`).
    fn matches_literal(&self, key: &str, index: Option<usize>) -> bool;
}

impl PathSegment for str {
    fn matches_literal(&self, key: &str, _index: Option<usize>) -> bool {
        self == key
    }
}

impl PathSegment for String {
    fn matches_literal(&self, key: &str, index: Option<usize>) -> bool {
        self.as_str().matches_literal(key, index)
    }
}

impl PathSegment for Segment<'_> {
    fn matches_literal(&self, key: &str, index: Option<usize>) -> bool {
        match self {
            Segment::Key(k) => *k == key,
            Segment::Index(i) => index == Some(*i),
        }
    }
}

impl<T: PathSegment + ?Sized> PathSegment for &T {
    fn matches_literal(&self, key: &str, index: Option<usize>) -> bool {
        (**self).matches_literal(key, index)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum PatternSegment {
    Any,
    Literal {
        key: String,
        /// The array index this literal denotes, when it is a canonical decimal (`0`, `17`,
        /// never `017`), so that `/items/3` matches index 3 without formatting numbers.
        index: Option<usize>,
    },
}

impl PatternSegment {
    fn matches<S: PathSegment + ?Sized>(&self, seg: &S) -> bool {
        match self {
            PatternSegment::Any => true,
            PatternSegment::Literal { key, index } => seg.matches_literal(key, *index),
        }
    }
}

/// A parsed JSON Pointer pattern, e.g. `/items/*/price`. The empty pattern denotes the whole
/// document.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct PointerPattern {
    raw: String,
    segments: Vec<PatternSegment>,
}

impl PointerPattern {
    /// Parses a pattern: empty (whole document) or `/`-separated segments with RFC 6901
    /// escapes (`~0` = `~`, `~1` = `/`), where a segment that is exactly `*` is a wildcard.
    pub fn parse(pattern: &str) -> Result<PointerPattern, PatternError> {
        let segments = split_pointer(pattern)?
            .into_iter()
            .map(|seg| {
                if seg == "*" {
                    PatternSegment::Any
                } else {
                    let index = canonical_index(&seg);
                    PatternSegment::Literal { key: seg, index }
                }
            })
            .collect();
        Ok(PointerPattern {
            raw: pattern.to_owned(),
            segments,
        })
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.raw
    }

    /// Number of segments (0 for the whole-document pattern).
    pub fn depth(&self) -> usize {
        self.segments.len()
    }

    /// Whether the pattern matches exactly this path (same number of segments).
    pub fn matches<S: PathSegment>(&self, path: &[S]) -> bool {
        path.len() == self.segments.len()
            && self
                .segments
                .iter()
                .zip(path)
                .all(|(pat, seg)| pat.matches(seg))
    }

    /// Whether the pattern matches this path or one of its ancestors, i.e. the path is at or
    /// under a location the pattern selects.
    pub fn matches_at_or_under<S: PathSegment>(&self, path: &[S]) -> bool {
        path.len() >= self.segments.len() && self.matches(&path[..self.segments.len()])
    }

    /// Whether the pattern matches a concrete pointer string exactly. Strings that are not
    /// valid pointers match nothing.
    pub fn matches_str(&self, pointer: &str) -> bool {
        split_pointer(pointer).is_ok_and(|segs| self.matches(&segs))
    }

    /// Like [`PointerPattern::matches_at_or_under`], for a concrete pointer string.
    pub fn matches_str_at_or_under(&self, pointer: &str) -> bool {
        split_pointer(pointer).is_ok_and(|segs| self.matches_at_or_under(&segs))
    }
}

impl fmt::Display for PointerPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.raw)
    }
}

impl FromStr for PointerPattern {
    type Err = PatternError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        PointerPattern::parse(s)
    }
}

impl TryFrom<String> for PointerPattern {
    type Error = PatternError;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        PointerPattern::parse(&s)
    }
}

impl From<PointerPattern> for String {
    fn from(p: PointerPattern) -> String {
        p.raw
    }
}

/// Escapes one segment for use in a pointer (`~` → `~0`, `/` → `~1`). Borrows when there is
/// nothing to escape.
pub fn escape_segment(segment: &str) -> Cow<'_, str> {
    if segment.contains(['~', '/']) {
        Cow::Owned(segment.replace('~', "~0").replace('/', "~1"))
    } else {
        Cow::Borrowed(segment)
    }
}

/// Renders a pointer from unescaped segments: `["a/b", "0"]` → `/a~1b/0`. No segments gives
/// the empty pointer (whole document).
pub fn pointer_from_segments<I>(segments: I) -> String
where
    I: IntoIterator,
    I::Item: AsRef<str>,
{
    let mut out = String::new();
    for seg in segments {
        out.push('/');
        out.push_str(&escape_segment(seg.as_ref()));
    }
    out
}

/// Renders a pointer from engine path segments (keys escaped, indices in decimal).
pub fn render_pointer(path: &[Segment<'_>]) -> String {
    use fmt::Write;
    let mut out = String::with_capacity(path.len() * 8);
    for seg in path {
        out.push('/');
        match seg {
            Segment::Key(k) => out.push_str(&escape_segment(k)),
            Segment::Index(i) => {
                // Writing to a String cannot fail.
                let _ = write!(out, "{i}");
            }
        }
    }
    out
}

/// Splits a concrete pointer into unescaped segments: `/a~1b/0` → `["a/b", "0"]`.
pub fn split_pointer(pointer: &str) -> Result<Vec<String>, PatternError> {
    if pointer.is_empty() {
        return Ok(Vec::new());
    }
    let Some(rest) = pointer.strip_prefix('/') else {
        return Err(PatternError::MissingLeadingSlash {
            pattern: pointer.to_owned(),
        });
    };
    rest.split('/')
        .map(|seg| {
            unescape_segment(seg).ok_or_else(|| PatternError::InvalidEscape {
                pattern: pointer.to_owned(),
                segment: seg.to_owned(),
            })
        })
        .collect()
}

/// Unescapes one segment; `None` when a `~` is not followed by `0` or `1`.
fn unescape_segment(seg: &str) -> Option<String> {
    if !seg.contains('~') {
        return Some(seg.to_owned());
    }
    let mut out = String::with_capacity(seg.len());
    let mut chars = seg.chars();
    while let Some(c) = chars.next() {
        if c == '~' {
            match chars.next() {
                Some('0') => out.push('~'),
                Some('1') => out.push('/'),
                _ => return None,
            }
        } else {
            out.push(c);
        }
    }
    Some(out)
}

/// The array index a segment denotes under RFC 6901: `0` or digits without a leading zero.
fn canonical_index(seg: &str) -> Option<usize> {
    let b = seg.as_bytes();
    if b.is_empty() || !b.iter().all(u8::is_ascii_digit) || (b.len() > 1 && b[0] == b'0') {
        return None;
    }
    seg.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> PointerPattern {
        PointerPattern::parse(s).expect("valid pattern")
    }

    #[test]
    fn parses_root_and_simple_patterns() {
        assert_eq!(p("").depth(), 0);
        assert_eq!(p("/").depth(), 1, "\"/\" is the empty-string key");
        assert_eq!(p("/a/b").depth(), 2);
        assert_eq!(p("/items/*/price").to_string(), "/items/*/price");
    }

    #[test]
    fn rejects_missing_slash_and_names_the_pattern() {
        let err = PointerPattern::parse("items/0").unwrap_err();
        assert!(matches!(err, PatternError::MissingLeadingSlash { .. }));
        let msg = err.to_string();
        assert!(msg.contains("\"items/0\""), "{msg}");
        assert!(msg.contains("start with \"/\""), "{msg}");
    }

    #[test]
    fn rejects_bad_escapes_and_names_the_segment() {
        for bad in ["/a~", "/a~2", "/~x/b"] {
            let err = PointerPattern::parse(bad).unwrap_err();
            assert!(matches!(err, PatternError::InvalidEscape { .. }), "{bad}");
            let msg = err.to_string();
            assert!(msg.contains(&format!("{bad:?}")), "{msg}");
            assert!(msg.contains("~"), "{msg}");
        }
    }

    #[test]
    fn escapes_are_decoded_in_both_orders() {
        // "~01" is "~1" literally, not "/".
        assert!(p("/~01").matches(&["~1"]));
        assert!(p("/~10").matches(&["/0"]));
        assert!(p("/a~1b/c~0d").matches(&["a/b", "c~d"]));
        assert!(!p("/a~1b").matches(&["a", "b"]));
    }

    #[test]
    fn wildcard_matches_any_key_or_index() {
        let pat = p("/items/*/price");
        assert!(pat.matches(&[
            Segment::Key("items"),
            Segment::Index(7),
            Segment::Key("price")
        ]));
        assert!(pat.matches(&["items", "abc", "price"]));
        assert!(!pat.matches(&["items", "0"]));
        assert!(!pat.matches(&["items", "0", "price", "x"]));
        assert!(!pat.matches(&["other", "0", "price"]));
        assert!(p("/*").matches(&["*"]));
    }

    #[test]
    fn literal_indices_match_index_segments_canonically() {
        assert!(p("/a/3").matches(&[Segment::Key("a"), Segment::Index(3)]));
        assert!(!p("/a/03").matches(&[Segment::Key("a"), Segment::Index(3)]));
        assert!(p("/a/03").matches(&[Segment::Key("a"), Segment::Key("03")]));
        assert!(p("/a/0").matches(&[Segment::Key("a"), Segment::Index(0)]));
        assert!(!p("/a/x").matches(&[Segment::Key("a"), Segment::Index(0)]));
        // Huge digit strings are not indices but still literal keys.
        let big = "/99999999999999999999999999";
        assert!(p(big).matches_str(big));
    }

    #[test]
    fn root_pattern_matches_only_root_but_covers_everything_under_it() {
        let root = p("");
        assert!(root.matches::<&str>(&[]));
        assert!(!root.matches(&["a"]));
        assert!(root.matches_at_or_under(&["a", "b"]));
    }

    #[test]
    fn at_or_under() {
        let pat = p("/meta");
        assert!(pat.matches_at_or_under(&["meta"]));
        assert!(pat.matches_at_or_under(&["meta", "generated_at"]));
        assert!(!pat.matches_at_or_under(&["metadata"]));
        assert!(!pat.matches_at_or_under::<&str>(&[]));
        assert!(pat.matches_str_at_or_under("/meta/x/y"));
        assert!(!pat.matches_str_at_or_under("meta/x"));
    }

    #[test]
    fn matches_str_uses_pointer_syntax() {
        let pat = p("/a~1b/*");
        assert!(pat.matches_str("/a~1b/1"));
        assert!(!pat.matches_str("/a/b/1"));
        assert!(!pat.matches_str("not a pointer"));
        assert!(!pat.matches_str("/a~1b/~"));
    }

    #[test]
    fn rendering_round_trips() {
        let segs = ["a/b", "c~d", "", "0"];
        let ptr = pointer_from_segments(segs);
        assert_eq!(ptr, "/a~1b/c~0d//0");
        assert_eq!(split_pointer(&ptr).unwrap(), segs);
        assert_eq!(pointer_from_segments(Vec::<String>::new()), "");
        assert_eq!(
            render_pointer(&[Segment::Key("x/y"), Segment::Index(12)]),
            "/x~1y/12"
        );
        assert_eq!(render_pointer(&[]), "");
        assert_eq!(Segment::Key("~").to_string(), "~0");
        assert!(matches!(escape_segment("plain"), Cow::Borrowed("plain")));
    }

    #[test]
    fn serde_and_from_str() {
        let pat: PointerPattern = serde_json::from_str("\"/a/*\"").unwrap();
        assert_eq!(pat, p("/a/*"));
        assert_eq!(serde_json::to_string(&pat).unwrap(), "\"/a/*\"");
        let err = serde_json::from_str::<PointerPattern>("\"a\"").unwrap_err();
        assert!(err.to_string().contains("must be empty or start with"));
        assert_eq!("/x".parse::<PointerPattern>().unwrap().as_str(), "/x");
    }
}
