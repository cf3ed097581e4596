//! Property tests for routing rules: parsing never panics (on arbitrary text and on arbitrary
//! sequences of grammar tokens), errors point inside the text, and `matches` never panics and
//! composes as `&&`, `||`, `!` and precedence say. Also the Traefik semantics that tables cannot
//! cover: paths are matched decoded (escaping an unreserved byte changes nothing, escaping a
//! reserved one changes the path), the allocation-free `Path`/`PathPrefix` agree with the regex
//! route, a `*.` wildcard takes exactly one label, and `HostRegexp` sees the host in lowercase.

use std::net::IpAddr;

use http::{HeaderMap, HeaderName, HeaderValue, Method};
use proptest::prelude::*;
use umbra_core::rules::{RequestView, Rule, MAX_RULE_CHARS};

/// An owned request to borrow a `RequestView` from.
#[derive(Debug, Clone)]
struct Req {
    method: Method,
    host: String,
    path: String,
    query: Option<String>,
    headers: HeaderMap,
    client_ip: Option<IpAddr>,
}

impl Req {
    fn view(&self) -> RequestView<'_> {
        RequestView {
            method: &self.method,
            host: &self.host,
            path: &self.path,
            query: self.query.as_deref(),
            headers: &self.headers,
            client_ip: self.client_ip,
        }
    }
}

fn method() -> impl Strategy<Value = Method> {
    prop_oneof![
        Just(Method::GET),
        Just(Method::POST),
        Just(Method::DELETE),
        "[A-Za-z]{1,8}".prop_map(|m| Method::from_bytes(m.as_bytes()).unwrap()),
    ]
}

fn host() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("a.example.com".to_owned()),
        Just("A.Example.COM.".to_owned()),
        "[a-zA-Z0-9.-]{0,20}",
        any::<String>(),
    ]
}

fn path() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("/api/users/42".to_owned()),
        "/[a-z0-9/%.]{0,20}",
        any::<String>(),
    ]
}

fn query() -> impl Strategy<Value = Option<String>> {
    prop::option::of(prop_oneof![
        Just("k=v&q=a+b&flag".to_owned()),
        "[a-z=&%+0-9A-F]{0,30}",
        any::<String>(),
    ])
}

fn headers() -> impl Strategy<Value = HeaderMap> {
    let name = prop_oneof![Just("x-key"), Just("content-type"), Just("accept")];
    let value = prop::collection::vec(any::<u8>(), 0..16);
    prop::collection::vec((name, value), 0..5).prop_map(|pairs| {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            if let Ok(value) = HeaderValue::from_bytes(&value) {
                map.append(HeaderName::from_static(name), value);
            }
        }
        map
    })
}

fn request() -> impl Strategy<Value = Req> {
    (
        method(),
        host(),
        path(),
        query(),
        headers(),
        prop::option::of(any::<IpAddr>()),
    )
        .prop_map(|(method, host, path, query, headers, client_ip)| Req {
            method,
            host,
            path,
            query,
            headers,
            client_ip,
        })
}

/// A valid `Path` value: unreserved and reserved characters, spaces, non-ASCII, and escapes of
/// reserved characters (the only escapes a path value may hold), in either case.
fn path_value() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        4 => "[a-zA-Z0-9._~-]{1,4}",
        2 => prop::sample::select(vec!["/", "/", ":", "@", "!", "$", "&", "'", "(", ")", "*", "+", ",", ";", "=", "[", "]"]).prop_map(str::to_owned),
        1 => prop::sample::select(vec![" ", "é", "{", "}", "|", "\\"]).prop_map(str::to_owned),
        1 => prop::sample::select(vec!["%2F", "%2f", "%25", "%3F", "%23", "%3a", "%40"]).prop_map(str::to_owned),
    ];
    prop::collection::vec(piece, 0..8).prop_map(|pieces| format!("/{}", pieces.concat()))
}

/// RFC 3986's reserved characters and `%`: their escapes stay escaped in the routing path.
fn is_reserved(b: u8) -> bool {
    b":/?#[]@!$&'()*+,;=%".contains(&b)
}

/// Whether byte `i` is one of the two hex digits of a `%XX`.
fn in_escape(bytes: &[u8], i: usize) -> bool {
    (i >= 1 && bytes[i - 1] == b'%') || (i >= 2 && bytes[i - 2] == b'%')
}

/// `value` with some characters written as `%XX` escapes of their UTF-8 bytes, in upper or lower
/// case: those that `escapable` allows (for every byte), that `choices` picks, and that are
/// neither the leading `/` nor part of an escape already.
fn escape_some(value: &str, choices: &[(bool, bool)], escapable: impl Fn(u8) -> bool) -> String {
    let bytes = value.as_bytes();
    let mut out = String::new();
    for (i, c) in value.char_indices() {
        let (escape, upper) = choices[i % choices.len()];
        let mut utf8 = [0; 4];
        let encoded = c.encode_utf8(&mut utf8).as_bytes();
        if escape && i > 0 && encoded.iter().all(|&b| escapable(b)) && !in_escape(bytes, i) {
            for b in encoded {
                out.push_str(&if upper {
                    format!("%{b:02X}")
                } else {
                    format!("%{b:02x}")
                });
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// A GET for `path` on `a.example.com`, with nothing else set.
fn request_for(path: &str) -> Req {
    Req {
        method: Method::GET,
        host: "a.example.com".to_owned(),
        path: path.to_owned(),
        query: None,
        headers: HeaderMap::new(),
        client_ip: None,
    }
}

/// Pieces of rule text, valid and not, to be strung together.
fn token() -> impl Strategy<Value = String> {
    let fixed = prop::sample::select(vec![
        "Host",
        "host",
        "HOST",
        "HostRegexp",
        "Path",
        "PathPrefix",
        "PathRegexp",
        "Method",
        "Header",
        "HeaderRegexp",
        "Query",
        "QueryRegexp",
        "ClientIP",
        "Hots",
        "and",
        "(",
        ")",
        "(",
        ")",
        ",",
        "&&",
        "||",
        "!",
        "&",
        "|",
        "`",
        "\"",
        "\\",
        "'",
        "`a.example.com`",
        "`/api`",
        "`^/users/[0-9]+$`",
        "`^(`",
        "`[a-`",
        "`GET`",
        "`X-Key`",
        "`v`",
        "`10.0.0.0/8`",
        "`::1/129`",
        "\"a\\\"b\"",
        "\"a\\.b\"",
        "``",
        "\"\"",
        "é",
        " ",
        "\n",
    ])
    .prop_map(str::to_owned);
    prop_oneof![
        8 => fixed,
        1 => "`[^`]{0,8}`",
        1 => "\"[^\"\\\\]{0,8}\"",
        1 => any::<char>().prop_map(String::from),
    ]
}

/// A valid matcher, with a spread of matchers likely to both hit and miss `request()`.
fn atom() -> impl Strategy<Value = String> {
    prop::sample::select(vec![
        "Host(`a.example.com`)",
        "host(\"A.EXAMPLE.COM\")",
        "HostRegexp(`^[a-z]+\\.example\\.com$`)",
        "Path(`/api/users/42`)",
        "PathPrefix(`/api`)",
        "PathPrefix(`/`)",
        "PathRegexp(`^/api/users/[0-9]+$`)",
        "PathRegexp(`%`)",
        "Method(`GET`)",
        "Method(`post`)",
        "Header(`X-Key`, `v`)",
        "HeaderRegexp(`content-type`, `json`)",
        "HeaderRegexp(`accept`, `^$`)",
        "Query(`k`, `v`)",
        "Query(`q`, \"a b\")",
        "Query(`flag`)",
        "QueryRegexp(`k`, `^[a-z]*$`)",
        "ClientIP(`10.0.0.0/8`)",
        "ClientIP(`::/1`)",
        "ClientIP(`128.0.0.0/1`)",
    ])
    .prop_map(str::to_owned)
}

/// A valid rule built from atoms with `!`, `&&`, `||` and parentheses.
fn valid_rule() -> impl Strategy<Value = String> {
    atom().prop_recursive(6, 48, 4, |inner| {
        prop_oneof![
            inner.clone().prop_map(|r| format!("!({r})")),
            inner.clone().prop_map(|r| format!("( {r} )")),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("({a}) && ({b})")),
            (inner.clone(), inner).prop_map(|(a, b)| format!("({a})||({b})")),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn parse_never_panics_on_arbitrary_text(src in any::<String>()) {
        let chars = src.chars().count();
        if let Err(e) = Rule::parse(&src) {
            prop_assert!(e.column >= 1 && e.column <= chars + 1, "{e} for {src:?}");
            prop_assert!(!e.message.is_empty());
        }
    }

    #[test]
    fn parse_never_panics_on_token_soup(
        tokens in prop::collection::vec(token(), 0..64),
        sep in prop::sample::select(vec!["", " ", "\t"]),
        req in request(),
    ) {
        let src = tokens.join(sep);
        let chars = src.chars().count();
        match Rule::parse(&src) {
            Ok(rule) => {
                prop_assert_eq!(rule.priority(), chars as i64);
                let _ = rule.matches(&req.view());
                let _ = rule.host_names();
            }
            Err(e) => prop_assert!(e.column >= 1 && e.column <= chars + 1, "{e} for {src:?}"),
        }
    }

    #[test]
    fn parse_never_panics_on_long_hostile_runs(
        unit in prop::sample::select(vec!["(", "!", "!(", ")", "((Path(`/`)", "&&", "`", "\""]),
        n in 0usize..3000,
    ) {
        let src = unit.repeat(n);
        if let Err(e) = Rule::parse(&src) {
            prop_assert!(e.column >= 1 && e.column <= MAX_RULE_CHARS + 1, "{e}");
        }
    }

    #[test]
    fn parse_never_panics_on_mutated_valid_rules(
        src in valid_rule(),
        edits in prop::collection::vec((any::<prop::sample::Index>(), prop::option::of(token())), 1..4),
        req in request(),
    ) {
        // Delete one character or insert a token at random places: text that is nearly valid
        // reaches the deeper error paths (arity, values, regexes) that random text rarely does.
        let mut chars: Vec<char> = src.chars().collect();
        for (at, insert) in edits {
            let i = at.index(chars.len() + 1);
            match insert {
                Some(token) => {
                    chars.splice(i..i, token.chars());
                }
                None if i < chars.len() => {
                    chars.remove(i);
                }
                None => {}
            }
        }
        let src: String = chars.into_iter().collect();
        match Rule::parse(&src) {
            Ok(rule) => {
                let _ = rule.matches(&req.view());
            }
            Err(e) => {
                prop_assert!(e.column >= 1 && e.column <= src.chars().count() + 1, "{e} for {src:?}");
            }
        }
    }

    #[test]
    fn valid_rules_parse_and_match_without_panicking(src in valid_rule(), req in request()) {
        let rule = Rule::parse(&src).map_err(|e| TestCaseError::fail(format!("{src}: {e}")))?;
        let _ = rule.matches(&req.view());
    }

    #[test]
    fn escaping_unreserved_bytes_changes_no_path_match(
        value in path_value(),
        choices in prop::collection::vec((any::<bool>(), any::<bool>()), 64),
    ) {
        let exact = Rule::parse(&format!("Path(`{value}`)")).unwrap();
        let prefix = Rule::parse(&format!("PathPrefix(`{value}`)")).unwrap();
        let path = escape_some(&value, &choices, |b| !is_reserved(b));
        let req = request_for(&path);
        prop_assert!(exact.matches(&req.view()), "Path(`{value}`) on {path}");
        prop_assert!(prefix.matches(&req.view()), "PathPrefix(`{value}`) on {path}");
        let longer = request_for(&format!("{path}x"));
        prop_assert!(prefix.matches(&longer.view()) && !exact.matches(&longer.view()));
    }

    #[test]
    fn escaping_a_reserved_byte_changes_the_path(value in path_value(), at in any::<prop::sample::Index>()) {
        // Escape one reserved byte that is not already part of an escape.
        let bytes = value.as_bytes();
        let spots: Vec<usize> = (0..bytes.len())
            .filter(|&i| is_reserved(bytes[i]) && bytes[i] != b'%' && !in_escape(bytes, i))
            .collect();
        prop_assume!(!spots.is_empty());
        let i = spots[at.index(spots.len())];
        let path = format!("{}%{:02X}{}", &value[..i], bytes[i], &value[i + 1..]);
        let exact = Rule::parse(&format!("Path(`{value}`)")).unwrap();
        prop_assert!(!exact.matches(&request_for(&path).view()), "Path(`{value}`) on {path}");
    }

    #[test]
    fn path_and_path_prefix_agree_with_path_regexp(value in path_value(), req in request()) {
        // `Path`/`PathPrefix` compare without allocating; `PathRegexp` decodes into a buffer.
        let escaped = regex::escape(&value);
        let m = |src: String| Rule::parse(&src).unwrap().matches(&req.view());
        prop_assert_eq!(m(format!("Path(`{value}`)")), m(format!("PathRegexp(`^{escaped}$`)")));
        prop_assert_eq!(
            m(format!("PathPrefix(`{value}`)")),
            m(format!("PathRegexp(`^{escaped}`)"))
        );
    }

    #[test]
    fn a_host_wildcard_takes_exactly_one_label(
        label in "[a-zA-Z0-9-]{1,10}",
        other in "[a-z0-9-]{1,10}",
        domain in "[a-z0-9-]{1,10}(\\.[a-z0-9-]{1,10}){0,2}",
        dot in any::<bool>(),
    ) {
        let rule = Rule::parse(&format!("Host(`*.{domain}`)")).unwrap();
        let on = |host: String| {
            let mut req = request_for("/");
            req.host = if dot { format!("{host}.") } else { host };
            rule.matches(&req.view())
        };
        let hits = [format!("{label}.{domain}"), format!("{label}.{}", domain.to_uppercase())];
        let misses = [domain.clone(), format!("{other}.{label}.{domain}"), format!("{label}.{domain}x")];
        for host in hits {
            prop_assert!(on(host.clone()), "*.{} should match {}", domain, host);
        }
        for host in misses {
            prop_assert!(!on(host.clone()), "*.{} should not match {}", domain, host);
        }
    }

    #[test]
    fn host_regexp_sees_the_host_in_lowercase(host in "[a-zA-Z0-9.-]{1,20}") {
        let lower = host.to_ascii_lowercase();
        let mut req = request_for("/");
        req.host = host.clone();
        let m = |src: String| Rule::parse(&src).unwrap().matches(&req.view());
        let as_lower = format!("HostRegexp(`^{}$`)", regex::escape(&lower));
        let as_sent = format!("HostRegexp(`^{}$`)", regex::escape(&host));
        prop_assert!(m(as_lower.clone()), "{} on {}", as_lower, host);
        prop_assert!(lower == host || !m(as_sent.clone()), "{} on {}", as_sent, host);
    }

    #[test]
    fn query_key_alone_is_the_empty_value(req in request(), key in prop::sample::select(vec!["k", "q", "flag", "a"])) {
        let m = |src: String| Rule::parse(&src).unwrap().matches(&req.view());
        prop_assert_eq!(m(format!("Query(`{key}`)")), m(format!("QueryRegexp(`{key}`, `^$`)")));
        prop_assert_eq!(m(format!("Query(`{key}`)")), m(format!("QueryRegexp(`{key}`)")));
    }

    #[test]
    fn operators_compose(a in atom(), b in atom(), c in atom(), req in request()) {
        let m = |src: &str| Rule::parse(src).unwrap().matches(&req.view());
        let (ma, mb, mc) = (m(&a), m(&b), m(&c));
        prop_assert_eq!(m(&format!("{a} && {b}")), ma && mb);
        prop_assert_eq!(m(&format!("{a} || {b}")), ma || mb);
        prop_assert_eq!(m(&format!("!{a}")), !ma);
        prop_assert_eq!(m(&format!("{a} || {b} && {c}")), ma || (mb && mc));
        prop_assert_eq!(m(&format!("{a} && {b} || {c}")), (ma && mb) || mc);
        prop_assert_eq!(m(&format!("!{a} && {b}")), !ma && mb);
        prop_assert_eq!(m(&format!("!({a} || {b})")), !ma && !mb);
    }
}
