//! Unit tests for rule parsing and matching: every matcher, every operator, precedence, quoting,
//! error columns and messages, and the size and nesting limits.

use std::net::IpAddr;

use http::{HeaderMap, HeaderValue, Method};

use super::*;

/// An owned request to borrow a `RequestView` from.
struct Req {
    method: Method,
    host: String,
    path: String,
    query: Option<String>,
    headers: HeaderMap,
    client_ip: Option<IpAddr>,
}

fn req(method: &str, host: &str, target: &str) -> Req {
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p.to_owned(), Some(q.to_owned())),
        None => (target.to_owned(), None),
    };
    Req {
        method: Method::from_bytes(method.as_bytes()).unwrap(),
        host: host.to_owned(),
        path,
        query,
        headers: HeaderMap::new(),
        client_ip: None,
    }
}

fn get(target: &str) -> Req {
    req("GET", "api.example.com", target)
}

impl Req {
    fn header(mut self, name: &'static str, value: &str) -> Self {
        self.headers
            .append(name, HeaderValue::from_str(value).unwrap());
        self
    }

    fn ip(mut self, ip: &str) -> Self {
        self.client_ip = Some(ip.parse().unwrap());
        self
    }

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

fn rule(src: &str) -> Rule {
    Rule::parse(src).unwrap_or_else(|e| panic!("{src:?} should parse: {e}"))
}

fn matches(src: &str, r: &Req) -> bool {
    rule(src).matches(&r.view())
}

fn err(src: &str) -> RuleError {
    match Rule::parse(src) {
        Ok(_) => panic!("{src:?} should not parse"),
        Err(e) => e,
    }
}

/// Asserts the error's column and that its message contains `needle`.
fn assert_err(src: &str, column: usize, needle: &str) {
    let e = err(src);
    assert_eq!(e.column, column, "column for {src:?}: {e}");
    assert!(
        e.message.contains(needle),
        "message for {src:?} should contain {needle:?}: {e}"
    );
}

// ---- matchers ----

#[test]
fn host_ignores_case_and_trailing_dot() {
    let r = "Host(`api.example.com`)";
    assert!(matches(r, &get("/")));
    assert!(matches(r, &req("GET", "API.Example.COM", "/")));
    assert!(matches(r, &req("GET", "api.example.com.", "/")));
    assert!(matches("Host(`API.example.com.`)", &get("/")));
    assert!(!matches(r, &req("GET", "api.example.org", "/")));
    assert!(!matches(r, &req("GET", "x.api.example.com", "/")));
    assert!(!matches(r, &req("GET", "", "/")));
}

#[test]
fn host_regexp_sees_the_lowercased_host_and_is_unanchored_unless_written() {
    let r = r"HostRegexp(`^[a-z0-9-]+\.example\.com$`)";
    assert!(matches(r, &get("/")));
    assert!(matches(r, &req("GET", "API.EXAMPLE.COM", "/")));
    assert!(!matches(
        r"HostRegexp(`^API\.example\.com$`)",
        &req("GET", "API.example.com", "/")
    ));
    assert!(!matches(r, &req("GET", "a.b.example.com", "/")));
    assert!(matches(
        "HostRegexp(`example`)",
        &req("GET", "www.example.org", "/")
    ));
}

#[test]
fn path_is_exact_on_the_decoded_path() {
    let r = "Path(`/users/a b`)";
    assert!(matches(r, &get("/users/a%20b")));
    assert!(matches(r, &get("/users/a%20b?x=1")));
    assert!(matches(r, &get("/users/a b")));
    assert!(!matches(r, &get("/users/a%20b/")));
    assert!(!matches(r, &get("/users/a%2520b")));
    assert!(!matches("Path(`/Users`)", &get("/users")));
    assert!(matches("Path(`/a%2Fb`)", &get("/a%2fb")));
    assert!(!matches("Path(`/a/b`)", &get("/a%2Fb")));
}

#[test]
fn path_prefix_is_a_plain_string_prefix() {
    let r = "PathPrefix(`/api`)";
    assert!(matches(r, &get("/api")));
    assert!(matches(r, &get("/api/v1")));
    assert!(
        matches(r, &get("/apiary")),
        "Traefik's PathPrefix is not segment-aware"
    );
    assert!(!matches(r, &get("/ap")));
    assert!(!matches(r, &get("/v1/api")));
    assert!(matches("PathPrefix(`/`)", &get("/anything")));
}

#[test]
fn path_regexp_uses_the_users_anchors() {
    let r = "PathRegexp(`^/users/[0-9]+$`)";
    assert!(matches(r, &get("/users/42")));
    assert!(!matches(r, &get("/users/42/posts")));
    assert!(!matches(r, &get("/users/x")));
    assert!(matches("PathRegexp(`[0-9]+`)", &get("/v2/users")));
    assert!(
        matches(r, &get("/users/42?page=2")),
        "the query is not part of the path"
    );
}

#[test]
fn method_value_ignores_case_but_the_request_method_does_not() {
    assert!(matches("Method(`GET`)", &get("/")));
    assert!(matches("Method(`get`)", &get("/")));
    assert!(!matches("Method(`GET`)", &req("POST", "h", "/")));
    assert!(matches("Method(`PURGE`)", &req("PURGE", "h", "/")));
    assert!(matches("Method(`purge`)", &req("PURGE", "h", "/")));
    assert!(
        !matches("Method(`PURGE`)", &req("purge", "h", "/")),
        "methods are case-sensitive (RFC 9110), as in Traefik"
    );
}

#[test]
fn header_name_ignores_case_and_value_is_exact_among_all_values() {
    let r = "Header(`X-Key`, `v`)";
    assert!(matches(r, &get("/").header("x-key", "v")));
    assert!(matches(
        r,
        &get("/").header("x-key", "w").header("x-key", "v")
    ));
    assert!(!matches(r, &get("/").header("x-key", "V")));
    assert!(!matches(r, &get("/").header("x-key", "v, w")));
    assert!(!matches(r, &get("/").header("x-other", "v")));
    assert!(!matches(r, &get("/")));
    assert!(matches(
        "HeaderRegexp(`x-empty`, `^$`)",
        &get("/").header("x-empty", "")
    ));
}

#[test]
fn header_regexp_tries_every_value() {
    let r = "HeaderRegexp(`Content-Type`, `^application/(json|xml)`)";
    assert!(matches(
        r,
        &get("/").header("content-type", "application/json; charset=utf-8")
    ));
    assert!(matches(
        r,
        &get("/")
            .header("content-type", "text/plain")
            .header("content-type", "application/xml")
    ));
    assert!(!matches(r, &get("/").header("content-type", "text/html")));
    assert!(!matches(r, &get("/")));
}

#[test]
fn header_values_need_not_be_utf8() {
    let mut r = get("/");
    r.headers
        .insert("x-bin", HeaderValue::from_bytes(b"caf\xe9").unwrap());
    assert!(matches("HeaderRegexp(`X-Bin`, `^caf`)", &r));
    assert!(!matches("Header(`X-Bin`, `café`)", &r));
}

#[test]
fn query_with_value_decodes_and_checks_every_value() {
    let r = "Query(`q`, `a b`)";
    assert!(matches(r, &get("/?q=a+b")));
    assert!(matches(r, &get("/?q=a%20b")));
    assert!(matches(r, &get("/?x=1&q=zzz&q=a+b")));
    assert!(!matches(r, &get("/?q=a")));
    assert!(!matches(r, &get("/?Q=a+b")), "keys are case-sensitive");
    assert!(!matches(r, &get("/")));
    assert!(matches("Query(`k y`, `v`)", &get("/?k%20y=v")));
    assert!(matches("Query(`name`, `Zoë`)", &get("/?name=Zo%C3%AB")));
    assert!(
        matches("Query(`p`, `100%`)", &get("/?p=100%")),
        "a stray % stays literal"
    );
    assert!(matches("Query(`p`, `%zz`)", &get("/?p=%zz")));
    assert!(matches("Query(`eq`, `a=b`)", &get("/?eq=a=b")));
}

#[test]
fn query_with_key_only_wants_the_key_with_no_value() {
    let r = "Query(`debug`)";
    assert!(matches(r, &get("/?debug")));
    assert!(matches(r, &get("/?debug=")));
    assert!(matches(r, &get("/?a=1&&debug")));
    assert!(matches(r, &get("/?debug=1&debug")));
    assert!(!matches(r, &get("/?debug=0")), "as in Traefik: no value");
    assert!(!matches(r, &get("/?debugger")));
    assert!(!matches(r, &get("/?")));
    assert!(!matches(r, &get("/")));
    assert!(matches("QueryRegexp(`debug`, `.*`)", &get("/?debug=0")));
}

#[test]
fn query_regexp_matches_decoded_values() {
    let r = "QueryRegexp(`id`, `^[0-9]+$`)";
    assert!(matches(r, &get("/?id=12")));
    assert!(matches(r, &get("/?id=x&id=12")));
    assert!(!matches(r, &get("/?id=1x")));
    assert!(!matches(r, &get("/?other=12")));
    assert!(matches("QueryRegexp(`s`, `^a b$`)", &get("/?s=a+b")));
}

#[test]
fn client_ip_matches_networks_and_single_addresses() {
    let r = "ClientIP(`10.0.0.0/8`)";
    assert!(matches(r, &get("/").ip("10.1.2.3")));
    assert!(!matches(r, &get("/").ip("11.0.0.1")));
    assert!(!matches(r, &get("/")), "no peer address: no match");
    assert!(
        matches(r, &get("/").ip("::ffff:10.9.9.9")),
        "IPv4-mapped peers count as IPv4"
    );
    assert!(!matches(r, &get("/").ip("::1")));
    assert!(matches(
        "ClientIP(`192.168.1.7`)",
        &get("/").ip("192.168.1.7")
    ));
    assert!(!matches(
        "ClientIP(`192.168.1.7`)",
        &get("/").ip("192.168.1.8")
    ));
    assert!(
        matches("ClientIP(`10.1.2.3/8`)", &get("/").ip("10.200.0.1")),
        "host bits ignored"
    );
    assert!(matches("ClientIP(`0.0.0.0/0`)", &get("/").ip("8.8.8.8")));
    assert!(matches(
        "ClientIP(`2001:db8::/32`)",
        &get("/").ip("2001:db8:1::5")
    ));
    assert!(!matches(
        "ClientIP(`2001:db8::/32`)",
        &get("/").ip("2001:db9::5")
    ));
    assert!(matches(
        "ClientIP(`::ffff:10.0.0.0/104`)",
        &get("/").ip("10.3.3.3")
    ));
    assert!(matches("ClientIP(`::/0`)", &get("/").ip("fe80::1")));
}

// ---- operators and precedence ----

#[test]
fn and_or_not() {
    let r = get("/api/x");
    assert!(matches("Host(`api.example.com`) && PathPrefix(`/api`)", &r));
    assert!(!matches(
        "Host(`api.example.com`) && PathPrefix(`/web`)",
        &r
    ));
    assert!(matches("Host(`nope`) || PathPrefix(`/api`)", &r));
    assert!(!matches("Host(`nope`) || PathPrefix(`/web`)", &r));
    assert!(!matches("!PathPrefix(`/api`)", &r));
    assert!(matches("!PathPrefix(`/web`)", &r));
    assert!(matches("!!PathPrefix(`/api`)", &r));
    assert!(!matches("!!!PathPrefix(`/api`)", &r));
    assert!(matches("! ( Host(`nope`) ) && Path(`/api/x`)", &r));
}

#[test]
fn and_binds_tighter_than_or() {
    let r = get("/x");
    // true || (false && false) = true; (true || false) && false would be false.
    assert!(matches("Path(`/x`) || Path(`/y`) && Path(`/z`)", &r));
    assert!(!matches("(Path(`/x`) || Path(`/y`)) && Path(`/z`)", &r));
    // (false && true) || true = true.
    assert!(matches("Path(`/y`) && Path(`/x`) || Path(`/x`)", &r));
    // (false && ...) || false = false.
    assert!(!matches("Path(`/y`) && Path(`/x`) || Method(`POST`)", &r));
}

#[test]
fn not_binds_tighter_than_and() {
    let r = get("/x");
    // (!false) && true
    assert!(matches("!Path(`/y`) && Path(`/x`)", &r));
    // !(false && true) would be true; (!true) && ... is false.
    assert!(!matches("!Path(`/x`) && Path(`/x`)", &r));
    assert!(matches("!(Path(`/x`) && Path(`/y`))", &r));
}

#[test]
fn long_chains_and_nested_groups() {
    let many = vec!["Path(`/nope`)"; 200].join(" || ") + " || Path(`/x`)";
    assert!(matches(&many, &get("/x")));
    let all = vec!["PathPrefix(`/`)"; 200].join(" && ");
    assert!(matches(&all, &get("/x")));
    let nested = format!(
        "{}Path(`/x`){}",
        "(".repeat(MAX_NESTING),
        ")".repeat(MAX_NESTING)
    );
    assert!(matches(&nested, &get("/x")));
}

// ---- quoting and whitespace ----

#[test]
fn double_quotes_and_escapes() {
    assert!(matches("Host(\"api.example.com\")", &get("/")));
    assert!(matches(
        r#"Header("X-Q", "say \"hi\"")"#,
        &get("/").header("x-q", "say \"hi\"")
    ));
    assert!(matches(
        r#"Header("X-Q", "a\\b")"#,
        &get("/").header("x-q", "a\\b")
    ));
    assert!(matches(r#"PathRegexp("^/a\\.b$")"#, &get("/a.b")));
    assert!(!matches(r#"PathRegexp("^/a\\.b$")"#, &get("/axb")));
    assert!(matches(
        r#"Header(`X-Q`, `"`) && Header("X-Q", "\"")"#,
        &get("/").header("x-q", "\"")
    ));
}

#[test]
fn backticks_are_raw() {
    assert!(matches(r"PathRegexp(`^/a\.b$`)", &get("/a.b")));
    assert!(matches(
        r#"Header(`X-Q`, `a\"b`)"#,
        &get("/").header("x-q", r#"a\"b"#)
    ));
}

#[test]
fn whitespace_anywhere_between_tokens() {
    let r = " \t Host ( `api.example.com` )\n&&\r\n( ! Method (\"POST\" ) )  ";
    assert!(matches(r, &get("/")));
    assert!(matches(
        "Header(`X-Key`,`v`)",
        &get("/").header("x-key", "v")
    ));
    assert!(matches(
        "Header( `X-Key` ,\n `v` )",
        &get("/").header("x-key", "v")
    ));
}

#[test]
fn matcher_names_accept_any_case() {
    for r in [
        "host(`api.example.com`)",
        "HOST(`api.example.com`)",
        "Pathprefix(`/`)",
        "PATHPREFIX(`/`)",
        "clientip(`0.0.0.0/0`)",
    ] {
        let req = get("/").ip("1.2.3.4");
        assert!(matches(r, &req), "{r}");
    }
}

// ---- metadata ----

#[test]
fn priority_is_length_in_chars_and_source_is_kept() {
    let src = "Host(`api.example.com`) && PathPrefix(`/api`)";
    let r = rule(src);
    assert_eq!(r.source(), src);
    assert_eq!(r.priority(), src.len() as i64);
    assert_eq!(r.to_string(), src);
    assert_eq!(rule("Path(`/é`)").priority(), 10, "characters, not bytes");
    assert!(rule("Path(`/a`)").priority() < rule("Path(`/a`) && Method(`GET`)").priority());
    let parsed: Rule = src.parse().unwrap();
    assert_eq!(parsed.source(), src);
    assert!(format!("{r:?}").contains("PathPrefix"));
}

#[test]
fn host_names_lists_served_literal_hosts() {
    let r = rule(
        "(Host(`a.example.com`) || Host(\"B.example.com\") || Host(`A.EXAMPLE.COM`)) \
         && !Host(`c.example.com`) && !(!Host(`d.example.com`)) && HostRegexp(`e`)",
    );
    assert_eq!(
        r.host_names(),
        ["a.example.com", "B.example.com", "d.example.com"]
    );
    assert!(rule("Path(`/`)").host_names().is_empty());
}

#[test]
fn rule_is_shareable_across_threads() {
    fn assert_send_sync<T: Send + Sync + 'static>() {}
    assert_send_sync::<Rule>();
    assert_send_sync::<RuleError>();
}

// ---- errors ----

#[test]
fn error_display_is_column_then_message() {
    let e = err("Host(`a`) && Pth(`/x`)");
    assert_eq!(e.column, 14);
    assert_eq!(
        e.to_string(),
        "column 14: unknown matcher `Pth`; expected one of Host, HostRegexp, Path, PathPrefix, \
         PathRegexp, Method, Header, HeaderRegexp, Query, QueryRegexp, ClientIP"
    );
}

#[test]
fn unknown_matcher() {
    assert_err(
        "Hots(`a`)",
        1,
        "unknown matcher `Hots`; expected one of Host, HostRegexp",
    );
    assert_err("  Headers(`a`, `b`)", 3, "unknown matcher `Headers`");
}

#[test]
fn structural_errors_point_at_the_offending_token() {
    assert_err(
        "Host `a`",
        6,
        "expected `(` after matcher `Host`, found a quoted value",
    );
    assert_err(
        "Host",
        5,
        "expected `(` after matcher `Host`, found end of rule",
    );
    assert_err(
        "Host(`a`",
        9,
        "expected `,` or `)` after a value of `Host`, found end of rule",
    );
    assert_err("Host(`a` `b`)", 10, "expected `,` or `)`");
    assert_err(
        "Host(a.example.com)",
        6,
        "expected a value in backticks or double quotes after `Host(`, found `a`",
    );
    assert_err(
        "Header(`a`,)",
        12,
        "expected a value in backticks or double quotes after `,`, found `)`",
    );
    assert_err(
        "Host(`a`) Path(`/`)",
        11,
        "expected `&&`, `||` or end of rule, found `Path`",
    );
    assert_err("Host(`a`) and Path(`/`)", 11, "found `and`");
    assert_err(
        "Host(`a`) &&",
        13,
        "expected a matcher such as Host(`example.com`), `(` or `!`, found end of rule",
    );
    assert_err("&& Host(`a`)", 1, "expected a matcher");
    assert_err("Host(`a`) || || Path(`/`)", 14, "found `||`");
    assert_err("Host(`a`))", 10, "unmatched `)`");
    assert_err(
        "(Host(`a`)",
        11,
        "expected `)` to close the `(` at column 1, found end of rule",
    );
    assert_err("()", 2, "expected a matcher");
    assert_err(
        "`a`",
        1,
        "expected a matcher such as Host(`example.com`), `(` or `!`, found a quoted value",
    );
    assert_err(
        "Host(`a`) !",
        11,
        "expected `&&`, `||` or end of rule, found `!`",
    );
}

#[test]
fn lexical_errors() {
    assert_err(
        "Host(`a`) & Path(`/`)",
        11,
        "expected `&&`, found a single `&`",
    );
    assert_err(
        "Host(`a`) | Path(`/`)",
        11,
        "expected `||`, found a single `|`",
    );
    assert_err("Host('a')", 6, "values go in backticks or double quotes");
    assert_err("Host(`a`) == x", 11, "unexpected character `=`");
    assert_err("Hôst(`a`)", 1, "unknown matcher `Hôst`");
    assert_err("Host(`a`) && § Path(`/`)", 14, "unexpected character `§`");
    assert_err("Host(`a)", 6, "unterminated string");
    assert_err("Host(\"a)", 6, "unterminated string");
    assert_err("Host(\"a\\", 6, "unterminated string");
    assert_err(r#"PathRegexp("^/a\.b$")"#, 16, r"unknown escape `\.`");
}

#[test]
fn leftmost_error_wins() {
    // The unknown matcher comes before the unterminated string.
    assert_err("Pth(`/x`) && Host(`a", 1, "unknown matcher `Pth`");
}

#[test]
fn empty_rule() {
    assert_err("", 1, "empty rule");
    assert_err("   \n ", 1, "empty rule");
}

#[test]
fn error_columns_count_characters_not_bytes() {
    // `é` is two bytes but one column.
    assert_err("Path(`/é`) && Pth(`/x`)", 15, "unknown matcher `Pth`");
    assert_err("Path(\"/é\\\"\") && Pth(`/x`)", 17, "unknown matcher `Pth`");
}

#[test]
fn arity() {
    assert_err("Header(`X-Key`)", 15, "`Header` takes 2 arguments, got 1");
    assert_err(
        "HeaderRegexp(`a`, `b`, `c`)",
        24,
        "`HeaderRegexp` takes 2 arguments, got 3",
    );
    assert_err("Host()", 6, "`Host` takes 1 argument, got 0");
    assert_err(
        "Host(`a`, `b`)",
        11,
        "`Host` takes 1 argument, got 2; Traefik v3 takes one value per matcher",
    );
    assert_err("Query()", 7, "`Query` takes 1 or 2 arguments, got 0");
    assert_err(
        "Query(`a`, `b`, `c`)",
        17,
        "`Query` takes 1 or 2 arguments, got 3",
    );
    assert_err(
        "QueryRegexp(`a`, `b`, `c`)",
        23,
        "`QueryRegexp` takes 1 or 2 arguments, got 3",
    );
}

#[test]
fn invalid_values() {
    assert_err("Path(`x`)", 6, "`Path` value must start with `/`, got `x`");
    assert_err("PathPrefix(``)", 12, "`PathPrefix` value must not be empty");
    assert_err("Path(`/a%20b`)", 6, "matches the decoded path");
    assert_err("Path(`/a?b=1`)", 6, "use Query(");
    assert_err("Host(``)", 6, "`Host` value must not be empty");
    assert_err("Host(`*example.com`)", 6, "use HostRegexp");
    assert_err(
        "Host(`*.exa mple.com`)",
        6,
        "after `*.` in `*.exa mple.com`",
    );
    assert_err("Host(`example.com:8080`)", 6, "remove `:8080`");
    assert_err("Host(`bücher.de`)", 6, "must be ASCII");
    assert_err("Host(`a b`)", 6, "is not a host name");
    assert_err("Method(`GE T`)", 8, "`GE T` is not an HTTP method");
    assert_err("Method(``)", 8, "`Method` value must not be empty");
    assert_err(
        "Header(`X Key`, `v`)",
        8,
        "invalid header name `X Key` in `Header`",
    );
    assert_err("HeaderRegexp(``, `v`)", 14, "header name must not be empty");
    assert_err("Header(`X`, ``)", 13, "use HeaderRegexp(`X`, `^$`)");
    assert_err("Query(``, `v`)", 7, "`Query` key must not be empty");
    assert_err(
        "ClientIP(`10.0.0.0/33`)",
        10,
        "`/33` is not a prefix length from 0 to 32",
    );
    assert_err("ClientIP(`10.0.0/8`)", 10, "`10.0.0` is not an IP address");
    assert_err("ClientIP(`::1/+8`)", 10, "is not a prefix length");
    assert_err(
        "ClientIP(`example.com`)",
        10,
        "invalid IP address or CIDR range in `ClientIP`",
    );
    // Host names with IPv6 literals are left alone.
    assert!(matches("Host(`[::1]`)", &req("GET", "[::1]", "/")));
}

#[test]
fn invalid_regexes_name_the_matcher_on_one_line() {
    for (src, col, name) in [
        ("PathRegexp(`^/(`)", 12, "PathRegexp"),
        ("HostRegexp(`[a-`)", 12, "HostRegexp"),
        ("HeaderRegexp(`X`, `(?<`)", 19, "HeaderRegexp"),
        ("QueryRegexp(`k`, `a{2,1}`)", 18, "QueryRegexp"),
        ("PathRegexp(`(?=x)`)", 12, "PathRegexp"),
    ] {
        let e = err(src);
        assert_eq!(e.column, col, "{src}: {e}");
        assert!(
            e.message.starts_with(&format!("invalid regex in {name}: ")),
            "{e}"
        );
        assert!(!e.message.contains('\n'), "{e:?}");
        assert!(
            e.message.len() > format!("invalid regex in {name}: ").len() + 3,
            "{e}"
        );
    }
    assert_eq!(
        err("PathRegexp(`^/(`)").message,
        "invalid regex in PathRegexp: unclosed group"
    );
}

// ---- limits ----

#[test]
fn rejects_rules_over_the_length_limit() {
    let at_limit = format!("Path(`/{}`)", "a".repeat(MAX_RULE_CHARS - 9));
    assert_eq!(at_limit.chars().count(), MAX_RULE_CHARS);
    assert_eq!(rule(&at_limit).priority(), MAX_RULE_CHARS as i64);
    let over = format!("Path(`/{}`)", "a".repeat(MAX_RULE_CHARS - 8));
    assert_err(
        &over,
        MAX_RULE_CHARS + 1,
        "rule is longer than 4096 characters",
    );
    // Multi-byte characters count once.
    let wide = format!("Path(`/{}`)", "é".repeat(MAX_RULE_CHARS - 9));
    assert!(Rule::parse(&wide).is_ok());
}

#[test]
fn rejects_deep_nesting_without_overflowing_the_stack() {
    let too_deep = format!(
        "{}Path(`/x`){}",
        "(".repeat(MAX_NESTING + 1),
        ")".repeat(MAX_NESTING + 1)
    );
    assert_err(
        &too_deep,
        MAX_NESTING + 1,
        "parentheses nested deeper than 64 levels",
    );
    // Hostile inputs up to the length limit.
    for src in [
        "(".repeat(MAX_RULE_CHARS),
        "!(".repeat(MAX_RULE_CHARS / 2),
        ")".repeat(MAX_RULE_CHARS),
    ] {
        assert!(Rule::parse(&src).is_err());
    }
    let nots = format!("{}Path(`/x`)", "!".repeat(MAX_RULE_CHARS - 10));
    assert!(matches(&nots, &get("/x")), "an even run of `!` cancels out");
}
