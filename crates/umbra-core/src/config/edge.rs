//! A route's edge settings (control plane): the header fields it sets and removes on the
//! request and the response, and its rate limit. Validated here into the typed forms the
//! data plane applies without looking at strings again.

use http::{HeaderMap, HeaderName, HeaderValue};

use super::raw::{RawHeaderOps, RawHeaders, RawRateLimit};
use super::ConfigError;

/// Fields set and removed on one side (request or response); removals first, then sets.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HeaderOps {
    pub set: Vec<(HeaderName, HeaderValue)>,
    pub remove: Vec<HeaderName>,
}

impl HeaderOps {
    pub fn is_empty(&self) -> bool {
        self.set.is_empty() && self.remove.is_empty()
    }

    /// Whether a field of this name is removed or replaced (`name` in any case).
    pub fn touches(&self, name: &[u8]) -> bool {
        let is = |n: &HeaderName| n.as_str().as_bytes().eq_ignore_ascii_case(name);
        self.remove.iter().any(is) || self.set.iter().any(|(n, _)| is(n))
    }

    /// Removes, then sets (a set replaces every field of its name).
    pub fn apply(&self, headers: &mut HeaderMap) {
        for name in &self.remove {
            headers.remove(name);
        }
        for (name, value) in &self.set {
            headers.insert(name.clone(), value.clone());
        }
    }

    /// Sets only: for umbra's own answers, which have no upstream fields to remove.
    pub fn apply_set(&self, headers: &mut HeaderMap) {
        for (name, value) in &self.set {
            headers.insert(name.clone(), value.clone());
        }
    }
}

/// A route's `headers`; a side without changes is `None`, so the data plane skips it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HeaderRules {
    pub request: Option<HeaderOps>,
    pub response: Option<HeaderOps>,
}

/// What a rate limit counts requests by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RateKey {
    /// The client's address (from `X-Forwarded-For` only when the peer is a trusted proxy).
    ClientIp,
    /// The value of a request field; requests without it share one bucket.
    Header(HeaderName),
}

#[derive(Debug, Clone, PartialEq)]
pub struct RateLimitSpec {
    /// Tokens added per second (> 0).
    pub rps: f64,
    /// Bucket size (≥ 1).
    pub burst: u32,
    pub key: RateKey,
}

/// Fields umbra owns on both sides: framing and hop-by-hop fields, and the request id.
const NOT_YOURS: &[&str] = &[
    "connection",
    "content-length",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "x-request-id",
];

/// Request fields umbra writes itself.
const NOT_YOURS_REQUEST: &[&str] = &[
    "host",
    "x-forwarded-for",
    "x-forwarded-host",
    "x-forwarded-prefix",
    "x-forwarded-proto",
    "x-umbra-shadow",
];

/// Validates `headers`; `key` is the route's key (`routes[0].headers`).
pub(super) fn header_rules(
    errs: &mut Vec<ConfigError>,
    key: &str,
    raw: Option<&RawHeaders>,
) -> Option<HeaderRules> {
    let raw = raw?;
    let request = side(errs, &format!("{key}.request"), raw.request.as_ref(), true);
    let response = side(
        errs,
        &format!("{key}.response"),
        raw.response.as_ref(),
        false,
    );
    (request.is_some() || response.is_some()).then_some(HeaderRules { request, response })
}

fn side(
    errs: &mut Vec<ConfigError>,
    key: &str,
    raw: Option<&RawHeaderOps>,
    request: bool,
) -> Option<HeaderOps> {
    let raw = raw?;
    let mut ops = HeaderOps::default();
    for (i, name) in raw.remove.iter().enumerate() {
        if let Some(name) = field_name(errs, &format!("{key}.remove[{i}]"), name, request) {
            ops.remove.push(name);
        }
    }
    for (name, value) in &raw.set {
        let at = format!("{key}.set.{name}");
        let Some(name) = field_name(errs, &at, name, request) else {
            continue;
        };
        match HeaderValue::from_str(value) {
            Ok(v) => ops.set.push((name, v)),
            Err(_) => errs.push(ConfigError::new(
                at,
                format!("{value:?} is not a header value (visible characters, spaces and tabs; no line breaks)"),
            )),
        }
    }
    (!ops.is_empty()).then_some(ops)
}

fn field_name(
    errs: &mut Vec<ConfigError>,
    key: &str,
    name: &str,
    request: bool,
) -> Option<HeaderName> {
    let Ok(parsed) = HeaderName::from_bytes(name.as_bytes()) else {
        errs.push(ConfigError::new(
            key,
            format!("`{name}` is not a header name (letters, digits and !#$%&'*+-.^_`|~)"),
        ));
        return None;
    };
    let owned = NOT_YOURS.contains(&parsed.as_str())
        || (request && NOT_YOURS_REQUEST.contains(&parsed.as_str()));
    if owned {
        errs.push(ConfigError::new(
            key,
            format!("`{name}` is written by umbra itself (framing, hop-by-hop, forwarding or request id) and cannot be changed here"),
        ));
        return None;
    }
    Some(parsed)
}

/// Validates `rate_limit`; `key` is the route's key (`routes[0].rate_limit`).
pub(super) fn rate_limit(
    errs: &mut Vec<ConfigError>,
    key: &str,
    raw: Option<&RawRateLimit>,
) -> Option<RateLimitSpec> {
    let raw = raw?;
    let mut ok = true;
    if !(raw.rps.is_finite() && raw.rps > 0.0) {
        errs.push(ConfigError::new(
            format!("{key}.rps"),
            format!("{} is not a rate: requests per second must be more than 0 (to refuse a route's traffic, remove the route)", raw.rps),
        ));
        ok = false;
    }
    if raw.burst == 0 {
        errs.push(ConfigError::new(
            format!("{key}.burst"),
            "must be at least 1 (requests let through at once)",
        ));
        ok = false;
    }
    let rate_key = match raw.key.as_deref() {
        None | Some("client_ip") => Some(RateKey::ClientIp),
        Some(h) if h.starts_with("header:") => match HeaderName::from_bytes(&h.as_bytes()[7..]) {
            Ok(name) => Some(RateKey::Header(name)),
            Err(_) => {
                errs.push(ConfigError::new(
                    format!("{key}.key"),
                    format!("`{}` is not a header name", &h[7..]),
                ));
                None
            }
        },
        Some(other) => {
            errs.push(ConfigError::new(
                format!("{key}.key"),
                format!("`{other}` is not a rate-limit key; expected `client_ip` or `header:<Name>` (e.g. `header:X-Api-Key`)"),
            ));
            None
        }
    };
    let key = rate_key.filter(|_| ok)?;
    Some(RateLimitSpec {
        rps: raw.rps,
        burst: raw.burst,
        key,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn removals_come_before_sets() {
        let ops = HeaderOps {
            set: vec![(
                HeaderName::from_static("x-a"),
                HeaderValue::from_static("new"),
            )],
            remove: vec![
                HeaderName::from_static("x-a"),
                HeaderName::from_static("x-b"),
            ],
        };
        let mut h = HeaderMap::new();
        h.append("x-a", HeaderValue::from_static("1"));
        h.append("x-a", HeaderValue::from_static("2"));
        h.append("x-b", HeaderValue::from_static("3"));
        ops.apply(&mut h);
        assert_eq!(h.get_all("x-a").iter().collect::<Vec<_>>(), ["new"]);
        assert!(h.get("x-b").is_none());
    }
}
