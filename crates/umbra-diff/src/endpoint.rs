//! Grouping of requests into endpoints (`METHOD /path/template`), so that differences and
//! latencies are counted per endpoint rather than per URL. Shadow side, pure.
//!
//! Explicit templates from the route win; otherwise each path segment is classified:
//! all digits → `{id}`, a UUID → `{uuid}`, 16 or more hex digits → `{token}`, a token-like
//! segment (base64url, JWT, random ids; see [`is_token_like`]) → `{token}`; anything else is
//! kept as written. The query string and fragment are dropped, empty segments (`//`, trailing
//! `/`) are collapsed, an empty path is `/`, and the method is uppercased.
//!
//! Among explicit templates that match, the most specific wins: more literal segments first,
//! then a template with a method over one without, then the first listed.

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error("endpoint template {template:?} is empty")]
    Empty { template: String },
    #[error("endpoint template {template:?}: the path must start with \"/\"")]
    MissingLeadingSlash { template: String },
    #[error("endpoint template {template:?}: {method:?} is not an HTTP method (expected letters such as GET)")]
    BadMethod { template: String, method: String },
    #[error("endpoint template {template:?}: segment {segment:?} {problem}")]
    BadSegment {
        template: String,
        segment: String,
        problem: &'static str,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum TemplateSegment {
    Literal(String),
    Param,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Template {
    /// Uppercase method, or `None` for any method.
    method: Option<String>,
    /// The path as written, normalized (no trailing slash).
    path: String,
    segments: Vec<TemplateSegment>,
    literals: usize,
}

impl Template {
    fn parse(raw: &str) -> Result<Template, TemplateError> {
        let text = raw.trim();
        if text.is_empty() {
            return Err(TemplateError::Empty {
                template: raw.to_owned(),
            });
        }
        let (method, path) = match text.split_once(char::is_whitespace) {
            Some((m, p)) => (Some(m), p.trim()),
            None => (None, text),
        };
        let method = match method {
            Some(m) if !m.is_empty() && m.bytes().all(|b| b.is_ascii_alphabetic()) => {
                Some(m.to_ascii_uppercase())
            }
            Some(m) => {
                return Err(TemplateError::BadMethod {
                    template: raw.to_owned(),
                    method: m.to_owned(),
                })
            }
            None => None,
        };
        if !path.starts_with('/') {
            return Err(TemplateError::MissingLeadingSlash {
                template: raw.to_owned(),
            });
        }
        let bad = |segment: &str, problem| TemplateError::BadSegment {
            template: raw.to_owned(),
            segment: segment.to_owned(),
            problem,
        };
        let mut segments = Vec::new();
        for seg in path.split('/').filter(|s| !s.is_empty()) {
            if seg.contains(char::is_whitespace) || seg.contains(['?', '#']) {
                return Err(bad(seg, "must not contain spaces, '?' or '#'"));
            }
            if let Some(inner) = seg.strip_prefix('{') {
                let Some(name) = inner.strip_suffix('}') else {
                    return Err(bad(seg, "has an unclosed '{'"));
                };
                if name.is_empty() {
                    return Err(bad(seg, "needs a parameter name inside {}"));
                }
                if !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
                    return Err(bad(
                        seg,
                        "has a parameter name other than letters, digits and '_'",
                    ));
                }
                segments.push(TemplateSegment::Param);
            } else if seg.contains(['{', '}']) {
                return Err(bad(seg, "must be a whole {param} or contain no braces"));
            } else {
                segments.push(TemplateSegment::Literal(seg.to_owned()));
            }
        }
        let literals = segments
            .iter()
            .filter(|s| matches!(s, TemplateSegment::Literal(_)))
            .count();
        let path = normalize_template_path(path);
        Ok(Template {
            method,
            path,
            segments,
            literals,
        })
    }

    fn matches(&self, method: &str, segments: &[&str]) -> bool {
        self.method
            .as_deref()
            .is_none_or(|m| m.eq_ignore_ascii_case(method))
            && self.segments.len() == segments.len()
            && self.segments.iter().zip(segments).all(|(t, s)| match t {
                TemplateSegment::Param => true,
                TemplateSegment::Literal(l) => l == s,
            })
    }
}

fn normalize_template_path(path: &str) -> String {
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    if segs.is_empty() {
        "/".to_owned()
    } else {
        format!("/{}", segs.join("/"))
    }
}

/// Maps `(method, path)` to an endpoint name. Cheap to share (`Arc`) across requests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EndpointGrouper {
    templates: Vec<Template>,
}

impl EndpointGrouper {
    /// Builds a grouper from explicit templates such as `GET /users/{id}/orders` or
    /// `/users/{name}` (any method). The error names the first invalid template.
    pub fn new<I>(templates: I) -> Result<EndpointGrouper, TemplateError>
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        let templates = templates
            .into_iter()
            .map(|t| Template::parse(t.as_ref()))
            .collect::<Result<_, _>>()?;
        Ok(EndpointGrouper { templates })
    }

    /// The endpoint of a request: `METHOD /path/template`.
    pub fn endpoint(&self, method: &str, path: &str) -> String {
        let method = method.trim().to_ascii_uppercase();
        let path = path.split(['?', '#']).next().unwrap_or_default();
        let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();

        let best = self
            .templates
            .iter()
            .enumerate()
            .filter(|(_, t)| t.matches(&method, &segments))
            .max_by_key(|(i, t)| (t.literals, t.method.is_some(), std::cmp::Reverse(*i)));
        if let Some((_, t)) = best {
            return format!("{method} {}", t.path);
        }

        let mut out = String::with_capacity(method.len() + path.len() + 2);
        out.push_str(&method);
        out.push(' ');
        if segments.is_empty() {
            out.push('/');
        }
        for seg in segments {
            out.push('/');
            out.push_str(classify_segment(seg));
        }
        out
    }
}

/// What an automatic template puts in place of a segment (or the segment itself).
fn classify_segment(seg: &str) -> &str {
    if seg.bytes().all(|b| b.is_ascii_digit()) {
        "{id}"
    } else if is_uuid(seg) {
        "{uuid}"
    } else if (seg.len() >= 16 && seg.bytes().all(|b| b.is_ascii_hexdigit())) || is_token_like(seg)
    {
        "{token}"
    } else {
        seg
    }
}

/// `8-4-4-4-12` hex digits, any case.
pub fn is_uuid(seg: &str) -> bool {
    let b = seg.as_bytes();
    b.len() == 36
        && b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_hexdigit(),
        })
}

/// Whether a segment looks like a machine-made token rather than a word: at least 20
/// characters from the base64url/JWT alphabet (`A-Z a-z 0-9 - _ . ~ = +`), at least two of
/// the classes lowercase/uppercase/digit, frequent class changes between neighbouring
/// characters, and a Shannon entropy of at least 3 bits per character. Random text changes
/// class at about every other character; slugs like `release-notes-2024` rarely do, and
/// camelCase words about once per word, so a segment needs a change rate of 0.3 per pair
/// when it holds two or more digits, and 0.45 when it is letters only (or one digit).
pub fn is_token_like(seg: &str) -> bool {
    const MIN_LEN: usize = 20;
    if seg.len() < MIN_LEN
        || !seg
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.~=+".contains(&b))
    {
        return false;
    }
    #[derive(PartialEq, Clone, Copy)]
    enum Class {
        Lower,
        Upper,
        Digit,
    }
    let classes: Vec<Class> = seg
        .bytes()
        .filter_map(|b| match b {
            b'a'..=b'z' => Some(Class::Lower),
            b'A'..=b'Z' => Some(Class::Upper),
            b'0'..=b'9' => Some(Class::Digit),
            _ => None,
        })
        .collect();
    let present = [Class::Lower, Class::Upper, Class::Digit]
        .iter()
        .filter(|c| classes.contains(c))
        .count();
    if present < 2 || classes.len() < MIN_LEN - 2 {
        return false;
    }
    let digits = classes.iter().filter(|c| **c == Class::Digit).count();
    let changes = classes.windows(2).filter(|w| w[0] != w[1]).count();
    let rate = (changes as f64) / ((classes.len() - 1) as f64);
    if rate < if digits >= 2 { 0.3 } else { 0.45 } {
        return false;
    }
    shannon_entropy(seg.as_bytes()) >= 3.0
}

fn shannon_entropy(bytes: &[u8]) -> f64 {
    let mut counts = [0u32; 256];
    for &b in bytes {
        counts[usize::from(b)] += 1;
    }
    let n = bytes.len() as f64;
    counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = f64::from(c) / n;
            -p * p.log2()
        })
        .sum()
}

impl fmt::Display for EndpointGrouper {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let list: Vec<String> = self
            .templates
            .iter()
            .map(|t| match &t.method {
                Some(m) => format!("{m} {}", t.path),
                None => t.path.clone(),
            })
            .collect();
        write!(f, "[{}]", list.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auto(method: &str, path: &str) -> String {
        EndpointGrouper::default().endpoint(method, path)
    }

    #[test]
    fn numeric_segments_become_id() {
        assert_eq!(
            auto("GET", "/users/42/orders/7"),
            "GET /users/{id}/orders/{id}"
        );
        assert_eq!(auto("get", "/users/0"), "GET /users/{id}");
    }

    #[test]
    fn uuids_become_uuid() {
        assert_eq!(
            auto("GET", "/orders/123e4567-E89B-12d3-a456-426614174000"),
            "GET /orders/{uuid}"
        );
        assert!(!is_uuid("123e4567-e89b-12d3-a456-42661417400"));
        assert!(!is_uuid("123e4567xe89b-12d3-a456-426614174000"));
        assert!(!is_uuid("g23e4567-e89b-12d3-a456-426614174000"));
    }

    #[test]
    fn long_hex_becomes_token() {
        assert_eq!(auto("GET", "/blobs/deadbeefcafebabe"), "GET /blobs/{token}");
        assert_eq!(
            auto("GET", "/commits/9fceb02d0ae598e95dc970b74767f19372d61af8"),
            "GET /commits/{token}"
        );
        // Short hex words stay.
        assert_eq!(auto("GET", "/colors/beef"), "GET /colors/beef");
        assert_eq!(auto("GET", "/x/cafe12"), "GET /x/cafe12");
    }

    #[test]
    fn token_like_segments_become_token() {
        for token in [
            "dGhpcyBpcyBhIHRva2VuIQ",
            "aB3dE5fG7hJ9kL1mN3pQ",
            "k3j9x8m2p0q7w5e4r1t6",
            "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
            "sk_live_4eC39HqLyjWDarjtT1zdp7dc",
        ] {
            assert!(is_token_like(token), "{token}");
            assert_eq!(auto("GET", &format!("/t/{token}")), "GET /t/{token}");
        }
    }

    #[test]
    fn ordinary_words_and_slugs_stay() {
        for word in [
            "users",
            "internationalization",
            "release-notes-2024-edition",
            "user_preferences_v2_settings",
            "getUserProfileSettings",
            "getUserProfileV2Settings",
            "listAllOrdersForCustomerAccount",
            "ProductDescriptionEditor",
            "x1x1x1x1x1x1x1x1x1x1x1x1",
            "john.doe@example.com",
            "v2",
        ] {
            assert!(!is_token_like(word), "{word}");
            assert_eq!(auto("GET", &format!("/{word}")), format!("GET /{word}"));
        }
    }

    #[test]
    fn query_fragment_trailing_and_empty_paths() {
        assert_eq!(auto("GET", "/users/42/?page=2"), "GET /users/{id}");
        assert_eq!(auto("GET", "/users#frag"), "GET /users");
        assert_eq!(auto("GET", ""), "GET /");
        assert_eq!(auto("GET", "/"), "GET /");
        assert_eq!(auto("GET", "?x=1"), "GET /");
        assert_eq!(auto("GET", "//a//b/"), "GET /a/b");
        assert_eq!(auto(" post ", "/a"), "POST /a");
    }

    #[test]
    fn explicit_templates_win() {
        let g = EndpointGrouper::new(["GET /users/{id}/orders", "/users/{name}"]).unwrap();
        assert_eq!(
            g.endpoint("get", "/users/42/orders"),
            "GET /users/{id}/orders"
        );
        assert_eq!(
            g.endpoint("POST", "/users/42/orders"),
            "POST /users/{id}/orders"
        );
        assert_eq!(g.endpoint("DELETE", "/users/alice"), "DELETE /users/{name}");
        assert_eq!(g.endpoint("GET", "/users/alice/"), "GET /users/{name}");
        assert_eq!(g.endpoint("GET", "/other/1"), "GET /other/{id}");
    }

    #[test]
    fn most_specific_template_wins() {
        let g = EndpointGrouper::new(["/users/{id}", "/users/me", "PUT /users/{x}", "/{a}/{b}"])
            .unwrap();
        assert_eq!(g.endpoint("GET", "/users/me"), "GET /users/me");
        assert_eq!(g.endpoint("GET", "/users/7"), "GET /users/{id}");
        assert_eq!(g.endpoint("PUT", "/users/7"), "PUT /users/{x}");
        assert_eq!(g.endpoint("GET", "/teams/7"), "GET /{a}/{b}");
        let root = EndpointGrouper::new(["GET /"]).unwrap();
        assert_eq!(root.endpoint("GET", ""), "GET /");
    }

    #[test]
    fn invalid_templates_are_named() {
        let cases = [
            ("", "is empty"),
            ("users/{id}", "must start with \"/\""),
            ("GET users", "must start with \"/\""),
            ("G3T /users", "is not an HTTP method"),
            ("/users/{id", "unclosed"),
            ("/users/{}", "parameter name"),
            ("/users/{a-b}", "letters, digits"),
            ("/users/x{id}", "whole {param}"),
            ("/users/a?b", "must not contain"),
        ];
        for (template, problem) in cases {
            let err = EndpointGrouper::new([template]).unwrap_err();
            let msg = err.to_string();
            assert!(msg.contains(&format!("{template:?}")), "{msg}");
            assert!(msg.contains(problem), "{template}: {msg}");
        }
        let err = EndpointGrouper::new(vec!["/ok".to_string(), "bad".to_string()]).unwrap_err();
        assert!(err.to_string().contains("\"bad\""));
    }

    #[test]
    fn display_lists_templates() {
        let g = EndpointGrouper::new(["get /a/", "/b"]).unwrap();
        assert_eq!(g.to_string(), "[GET /a, /b]");
    }
}
