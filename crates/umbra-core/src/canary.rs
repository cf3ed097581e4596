//! Weighted canary split with stickiness: one user stays on one version (by cookie, or by a
//! stable hash of a header such as a user id). Data plane; pure decisions, no I/O.

use http::HeaderMap;

use crate::config::{CanarySpec, Sticky};

/// The side of a canary split a request goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Primary,
    Canary,
}

/// The cookie that pins a client to a side of a route's split.
pub fn cookie_name(route: &str) -> String {
    format!("umbra_canary_{route}")
}

/// Decides the side for a request. Returns the side and, when a cookie should be set, its value.
pub fn choose(route: &str, spec: &CanarySpec, headers: &HeaderMap) -> (Side, Option<&'static str>) {
    if spec.weight <= 0.0 {
        return (Side::Primary, None);
    }
    if spec.weight >= 100.0 {
        return (Side::Canary, None);
    }
    match &spec.sticky {
        Sticky::None => (roll(spec.weight), None),
        Sticky::Header(name) => match headers.get(name.as_str()) {
            Some(v) => (by_hash(route, v.as_bytes(), spec.weight), None),
            None => (roll(spec.weight), None),
        },
        Sticky::Cookie => match read_cookie(headers, &cookie_name(route)) {
            Some("canary") => (Side::Canary, None),
            Some("primary") => (Side::Primary, None),
            _ => {
                let side = roll(spec.weight);
                (
                    side,
                    Some(if side == Side::Canary {
                        "canary"
                    } else {
                        "primary"
                    }),
                )
            }
        },
    }
}

fn roll(weight: f64) -> Side {
    if rand::random::<f64>() * 100.0 < weight {
        Side::Canary
    } else {
        Side::Primary
    }
}

/// FNV-1a of route + value, mapped to 0..10000: stable across restarts and replicas.
fn by_hash(route: &str, value: &[u8], weight: f64) -> Side {
    let mut h: u64 = 0xcbf29ce484222325;
    for b in route.as_bytes().iter().chain(b"\0").chain(value) {
        h ^= *b as u64;
        h = h.wrapping_mul(0x100000001b3);
    }
    if ((h % 10_000) as f64) < weight * 100.0 {
        Side::Canary
    } else {
        Side::Primary
    }
}

/// Finds a cookie's value in the request's `Cookie` headers.
pub fn read_cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(weight: f64, sticky: Sticky) -> CanarySpec {
        CanarySpec {
            service: "v2".into(),
            weight,
            sticky,
        }
    }

    #[test]
    fn weight_is_respected_roughly() {
        let s = spec(10.0, Sticky::None);
        let n = (0..20_000)
            .filter(|_| choose("r", &s, &HeaderMap::new()).0 == Side::Canary)
            .count();
        assert!((1500..2500).contains(&n), "{n}");
    }

    #[test]
    fn cookie_sticks_and_is_set_once() {
        let s = spec(50.0, Sticky::Cookie);
        let (side, set) = choose("api", &s, &HeaderMap::new());
        let value = set.expect("a new client gets a cookie");
        let mut h = HeaderMap::new();
        h.insert(
            "cookie",
            format!("a=b; {}={value}", cookie_name("api"))
                .parse()
                .unwrap(),
        );
        for _ in 0..100 {
            assert_eq!(choose("api", &s, &h), (side, None));
        }
    }

    #[test]
    fn header_hash_is_stable() {
        let s = spec(50.0, Sticky::Header("x-user".into()));
        let mut h = HeaderMap::new();
        let mut sides = [0, 0];
        for u in 0..1000 {
            h.insert("x-user", u.to_string().parse().unwrap());
            let first = choose("api", &s, &h).0;
            for _ in 0..3 {
                assert_eq!(choose("api", &s, &h).0, first);
            }
            sides[(first == Side::Canary) as usize] += 1;
        }
        assert!(sides[0] > 350 && sides[1] > 350, "{sides:?}");
    }

    #[test]
    fn zero_and_full_weight() {
        assert_eq!(
            choose("r", &spec(0.0, Sticky::Cookie), &HeaderMap::new()),
            (Side::Primary, None)
        );
        assert_eq!(
            choose("r", &spec(100.0, Sticky::Cookie), &HeaderMap::new()),
            (Side::Canary, None)
        );
    }
}
