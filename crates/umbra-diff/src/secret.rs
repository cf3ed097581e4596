//! Which names are secrets: header names, URL query and form parameter names, and JSON object
//! keys, judged by umbra's default rules plus what a route adds. Shadow side, pure.
//!
//! A name is judged by its *squashed* form: ASCII letters and digits only, lowercased, so
//! `access_token`, `accessToken`, `Access-Token` and `user[access_token]` all read
//! `accesstoken`; the default rules also ignore trailing digits (`X-Hub-Signature-256`).
//! By default a name is a secret when its squashed form
//!
//! - contains `password`, `passwd`, `passphrase` or `secret` (`new_password`,
//!   `client_secret`, `aws_secret_access_key`);
//! - ends with `token`, `signature`, `credential(s)`, `authorization`, `cookie`, `sessionid`,
//!   `assertion`, or a key word that names a secret key: `apikey`, `privatekey`,
//!   `accesskey`, `signingkey`, `sessionkey`, `authkey`, `subscriptionkey` (`X-Auth-Token`,
//!   `X-Amz-Signature`, `X-Amz-Credential`, `Set-Cookie`, `X-Goog-Api-Key`, `client_assertion`);
//! - is `auth`, `jwt`, `pwd`, `cookies`, `idtokenhint` or `samlresponse`;
//! - and, for URL query and form parameters only, is `key` (Google's `?key=`), `sig` (Azure
//!   SAS) or `code` (an OAuth authorization code): in JSON these are everyday field names.
//!
//! Suffixes rather than substrings keep harmless names out: `token_type`, `max_tokens`,
//! `signature_version`, `Sec-WebSocket-Key`, `X-Request-Id` and `Content-Type` are not secrets.
//! Routes add names of their own, matched exactly in squashed form.

/// Where a name was found: some names are secrets only in a URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place {
    /// A request or response header name.
    Header,
    /// A URL query parameter or form field name.
    Param,
    /// A JSON object key.
    Key,
}

/// Squashed names that are secrets wherever they appear as a substring.
const CONTAINS: &[&str] = &["password", "passwd", "passphrase", "secret"];

/// Squashed names that make a secret of any name they end.
const SUFFIXES: &[&str] = &[
    "token",
    "signature",
    "credential",
    "credentials",
    "authorization",
    "cookie",
    "sessionid",
    "assertion",
    "apikey",
    "privatekey",
    "accesskey",
    "signingkey",
    "sessionkey",
    "authkey",
    "subscriptionkey",
];

/// Squashed names that are secrets on their own.
const EXACT: &[&str] = &[
    "auth",
    "jwt",
    "pwd",
    "cookies",
    "idtokenhint",
    "samlresponse",
];

/// Squashed names that are secrets as URL query or form parameters only.
const EXACT_PARAM: &[&str] = &["key", "sig", "code"];

/// A name's squashed form: its ASCII letters and digits, lowercased.
pub fn squash_name(name: &str) -> String {
    squash_bytes(name.as_bytes())
}

fn squash_bytes(name: &[u8]) -> String {
    name.iter()
        .filter(|b| b.is_ascii_alphanumeric())
        .map(|b| char::from(b.to_ascii_lowercase()))
        .collect()
}

/// Calls `f` with a name's squashed form, built on the stack for names of usual length: every
/// key of every compared JSON body passes through here.
fn with_squashed<R>(name: &[u8], f: impl FnOnce(&[u8]) -> R) -> R {
    let mut buf = [0u8; 64];
    let mut len = 0;
    for &b in name.iter().filter(|b| b.is_ascii_alphanumeric()) {
        if len == buf.len() {
            return f(squash_bytes(name).as_bytes());
        }
        buf[len] = b.to_ascii_lowercase();
        len += 1;
    }
    f(&buf[..len])
}

// Every header, parameter and JSON key of every comparison is judged here, on the compare
// threads: the checks compare bytes in place (no searcher set up, no `memcmp` call per word),
// most words are ruled out by one byte, and the verdicts on header names and JSON keys, which
// repeat from one comparison to the next, are remembered per thread.

/// Whether `w` occurs in `s` at `i`.
fn at(s: &[u8], i: usize, w: &[u8]) -> bool {
    s.len() - i >= w.len() && same(&s[i..i + w.len()], w)
}

/// Whether `s` ends with `w`.
fn ends(s: &[u8], w: &[u8]) -> bool {
    s.len() >= w.len() && s.last() == w.last() && same(&s[s.len() - w.len()..], w)
}

fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x == y)
}

/// Whether one of the `CONTAINS` words occurs in `s`: the words start with `p` or `s`, so
/// only those positions are compared.
fn contains_word(s: &[u8]) -> bool {
    (0..s.len()).any(|i| match s[i] {
        b'p' | b's' => CONTAINS
            .iter()
            .any(|w| w.as_bytes()[0] == s[i] && at(s, i, w.as_bytes())),
        _ => false,
    })
}

/// Whether a squashed name is a secret by umbra's default rules at `place`.
fn is_default_secret(squashed: &[u8], place: Place) -> bool {
    let digits = squashed
        .iter()
        .rev()
        .take_while(|b| b.is_ascii_digit())
        .count();
    let s = &squashed[..squashed.len() - digits];
    // No rule's word is shorter than three letters.
    if s.len() < 3 {
        return false;
    }
    contains_word(s)
        || SUFFIXES.iter().any(|w| ends(s, w.as_bytes()))
        || EXACT.iter().any(|w| same(s, w.as_bytes()))
        || (place == Place::Param && EXACT_PARAM.iter().any(|w| same(s, w.as_bytes())))
}

/// Names remembered per thread and place, at most this many (then the memory starts over).
const REMEMBERED: usize = 4096;

thread_local! {
    static VERDICTS: std::cell::RefCell<[foldhash::HashMap<Box<[u8]>, bool>; 2]> =
        std::cell::RefCell::new(Default::default());
}

/// The default verdict on a header name (`slot` 0) or a JSON key (`slot` 1), remembered.
fn remembered(slot: usize, name: &[u8], place: Place) -> bool {
    VERDICTS.with_borrow_mut(|maps| {
        let map = &mut maps[slot];
        if let Some(&v) = map.get(name) {
            return v;
        }
        let v = with_squashed(name, |s| is_default_secret(s, place));
        if map.len() >= REMEMBERED {
            map.clear();
        }
        map.insert(name.into(), v);
        v
    })
}

/// The secret names in force for one route: the default rules plus the route's additions.
#[derive(Debug, Clone, Copy, Default)]
pub struct SecretNames<'a> {
    /// Extra header names, matched exactly in any case.
    pub headers: &'a [String],
    /// Extra parameter and key names, already squashed (see [`squash_name`]).
    pub names: &'a [String],
}

impl SecretNames<'_> {
    /// Whether a header (any case) is a secret.
    pub fn header(&self, name: &str) -> bool {
        // Header names are case-insensitive: remembered as written, judged squashed.
        self.headers.iter().any(|h| h.eq_ignore_ascii_case(name))
            || remembered(0, name.as_bytes(), Place::Header)
    }

    /// Whether a query or form parameter, given as its raw (still percent-encoded) bytes,
    /// is a secret.
    pub fn param(&self, raw: &[u8]) -> bool {
        with_squashed(&percent_decode(raw), |s| self.squashed(s, Place::Param))
    }

    /// Whether a JSON object key is a secret.
    pub fn key(&self, name: &str) -> bool {
        remembered(1, name.as_bytes(), Place::Key)
            || (!self.names.is_empty() && with_squashed(name.as_bytes(), |s| self.added(s)))
    }

    fn squashed(&self, squashed: &[u8], place: Place) -> bool {
        is_default_secret(squashed, place) || self.added(squashed)
    }

    /// Whether a squashed name is one the route added.
    fn added(&self, squashed: &[u8]) -> bool {
        self.names.iter().any(|n| n.as_bytes() == squashed)
    }
}

/// `%XX` escapes decoded; malformed escapes are kept as they are.
fn percent_decode(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        let hex = |b: u8| char::from(b).to_digit(16);
        if raw[i] == b'%' && i + 2 < raw.len() {
            if let (Some(h), Some(l)) = (hex(raw[i + 1]), hex(raw[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(raw[i]);
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn default_secret(name: &str, place: Place) -> bool {
        is_default_secret(squash_name(name).as_bytes(), place)
    }

    #[test]
    fn squashing_ignores_case_and_separators() {
        for n in [
            "access_token",
            "accessToken",
            "Access-Token",
            "ACCESS.TOKEN",
            "a[access_token]",
        ] {
            assert!(squash_name(n).ends_with("accesstoken"), "{n}");
        }
        assert_eq!(squash_name("X-Hub-Signature-256"), "xhubsignature256");
    }

    #[test]
    fn the_usual_secret_headers_are_secrets() {
        for h in crate::redact::DEFAULT_REDACTED_HEADERS.iter().chain(&[
            "X-Auth-Token",
            "X-Access-Token",
            "X-Csrf-Token",
            "X-XSRF-TOKEN",
            "X-Amz-Security-Token",
            "X-Goog-Api-Key",
            "Api-Key",
            "X-Secret",
            "Private-Token",
            "X-Hub-Signature-256",
            "Stripe-Signature",
            "X-Auth-Key",
            "Ocp-Apim-Subscription-Key",
            "X-Forwarded-Authorization",
            "X-Session-Id",
        ]) {
            assert!(default_secret(h, Place::Header), "{h}");
        }
    }

    #[test]
    fn everyday_headers_are_not_secrets() {
        for h in [
            "Content-Type",
            "X-Request-Id",
            "Accept",
            "User-Agent",
            "X-Forwarded-For",
            "Traceparent",
            "ETag",
            "Sec-WebSocket-Key",
            "WWW-Authenticate",
            "X-Umbra-Shadow",
            "Location",
            "X-Amz-Content-Sha256",
        ] {
            assert!(!default_secret(h, Place::Header), "{h}");
        }
    }

    #[test]
    fn secret_keys_and_their_harmless_neighbours() {
        for k in [
            "password",
            "password_confirmation",
            "newPassword",
            "client_secret",
            "aws_secret_access_key",
            "token",
            "refresh_token",
            "id_token",
            "apiKey",
            "private_key",
            "credentials",
            "client_assertion",
            "jwt",
            "auth",
            "set_cookie",
        ] {
            assert!(default_secret(k, Place::Key), "{k}");
        }
        for k in [
            "token_type",
            "max_tokens",
            "expires_in",
            "signature_version",
            "key",
            "code",
            "sig",
            "author",
            "id",
            "",
            "42",
        ] {
            assert!(!default_secret(k, Place::Key), "{k}");
        }
    }

    #[test]
    fn some_names_are_secrets_only_as_parameters() {
        for p in ["key", "sig", "code", "KEY"] {
            assert!(default_secret(p, Place::Param), "{p}");
            assert!(!default_secret(p, Place::Key), "{p}");
            assert!(!default_secret(p, Place::Header), "{p}");
        }
    }

    #[test]
    fn long_names_are_squashed_too() {
        let long = format!("{}_password", "x".repeat(80));
        assert!(SecretNames::default().key(&long));
        assert!(!SecretNames::default().key(&"x".repeat(80)));
        let extra = vec![squash_name(&long)];
        let names = SecretNames {
            headers: &[],
            names: &extra,
        };
        assert!(names.key(&long.to_uppercase()));
    }

    #[test]
    fn parameter_names_are_percent_decoded() {
        let names = SecretNames::default();
        assert!(names.param(b"access%5Ftoken"));
        assert!(names.param(b"%74oken"));
        assert!(names.param(b"user%5Bpassword%5D"));
        assert!(!names.param(b"q"));
        assert!(!names.param(b"%zz%"), "malformed escapes are kept");
        assert_eq!(percent_decode(b"a%2"), b"a%2");
        assert_eq!(percent_decode(b"%41%"), b"A%");
    }

    #[test]
    fn routes_add_names_and_headers() {
        let headers = vec!["x-session".to_string()];
        let names = vec![squash_name("pin_code")];
        let extra = SecretNames {
            headers: &headers,
            names: &names,
        };
        assert!(extra.header("X-Session"));
        assert!(!SecretNames::default().header("X-Session"));
        assert!(extra.key("pinCode") && extra.param(b"PIN-CODE"));
        assert!(!extra.key("pin"), "added names match whole names only");
        assert!(!SecretNames::default().key("pin_code"));
    }
}
