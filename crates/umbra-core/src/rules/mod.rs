//! Routing rules (data plane): parses Traefik v3 rule text such as
//! ``Host(`api.example.com`) && PathPrefix(`/api`)`` once, at config time, into a precompiled
//! matcher tree, and answers `matches` for each request without allocating on the common paths.
//!
//! Grammar: matchers `Host`, `HostRegexp`, `Path`, `PathPrefix`, `PathRegexp`, `Method`, `Header`,
//! `HeaderRegexp`, `Query`, `QueryRegexp` and `ClientIP`, combined with `&&`, `||`, unary `!` and
//! parentheses (`&&` binds tighter than `||`). Values go in backticks (raw) or double quotes
//! (with `\"` and `\\` escapes). Matcher names are accepted in any ASCII case, as Traefik accepts
//! `Host`, `host`, `HOST`. Errors carry the 1-based character column they point at.
//!
//! Matching follows Traefik v3.7 (its cases are ported in `traefik_cases.rs`, with the places
//! where umbra deliberately differs): `Host` ignores case and one trailing dot, and
//! ``Host(`*.example.com`)`` matches exactly one label in front of `example.com`; `HostRegexp`
//! sees the host in lowercase; `Path`, `PathPrefix` and `PathRegexp` see the percent-decoded path,
//! with the escapes of reserved characters such as `%2F` kept (see `matcher::RoutingPath`);
//! ``Query(`k`)`` matches `?k` with no value; regexes are case-sensitive unless they say `(?i)`.

mod lexer;
mod matcher;
mod parser;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod traefik_cases;

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use matcher::Expr;

/// Longest accepted rule text, in characters.
pub const MAX_RULE_CHARS: usize = 4096;

/// Deepest accepted nesting of parentheses.
pub const MAX_NESTING: usize = 64;

/// A parsed routing rule: the source text plus its precompiled matcher tree.
#[derive(Clone)]
pub struct Rule {
    source: Box<str>,
    priority: i64,
    expr: Expr,
}

/// What a rule can see of a request. Built by the router once per request; borrowing only.
#[derive(Debug, Clone, Copy)]
pub struct RequestView<'a> {
    pub method: &'a http::Method,
    /// The request's host without port, in any case.
    pub host: &'a str,
    /// The raw (not percent-decoded) path, without the query. The path matchers decode it
    /// themselves, as Traefik does, without allocating when it has no `%`.
    pub path: &'a str,
    /// The raw query string after `?`, if the request had one.
    pub query: Option<&'a str>,
    pub headers: &'a http::HeaderMap,
    /// The peer address of the connection (not `X-Forwarded-For`), for `ClientIP`.
    pub client_ip: Option<IpAddr>,
}

/// Why a rule did not parse, and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("column {column}: {message}")]
pub struct RuleError {
    /// 1-based character column in the rule text (newlines count as one character).
    pub column: usize,
    /// What was expected or what is wrong, e.g. "expected `(` after matcher `Host`".
    pub message: String,
}

impl RuleError {
    pub(crate) fn new(column: usize, message: impl Into<String>) -> Self {
        Self {
            column,
            message: message.into(),
        }
    }
}

impl Rule {
    /// Parses and compiles rule text. Regexes are compiled here, so `matches` never fails.
    pub fn parse(src: &str) -> Result<Rule, RuleError> {
        // Checked before anything else so hostile input costs at most MAX_RULE_CHARS of work.
        if src.char_indices().nth(MAX_RULE_CHARS).is_some() {
            return Err(RuleError::new(
                MAX_RULE_CHARS + 1,
                format!("rule is longer than {MAX_RULE_CHARS} characters"),
            ));
        }
        let expr = parser::parse(src)?;
        Ok(Rule {
            source: src.into(),
            // Traefik's default priority: the length of the rule text.
            priority: src.chars().count() as i64,
            expr,
        })
    }

    /// Whether the request satisfies the rule.
    pub fn matches(&self, req: &RequestView<'_>) -> bool {
        self.expr.matches(req)
    }

    /// The rule text exactly as given.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The default priority: the rule text's length in characters.
    pub fn priority(&self) -> i64 {
        self.priority
    }

    /// The literal `Host(...)` values as written (wildcards such as `*.example.com` included), in
    /// order, without duplicates (ignoring case). Hosts that only appear under an odd number of
    /// `!` are left out: the route does not serve them.
    pub fn host_names(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        self.expr.visit_hosts(false, &mut |host| {
            if !out.iter().any(|h| h.eq_ignore_ascii_case(host)) {
                out.push(host.to_owned());
            }
        });
        out
    }
}

impl fmt::Debug for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Rule")
            .field("source", &self.source)
            .field("priority", &self.priority)
            .finish_non_exhaustive()
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

impl FromStr for Rule {
    type Err = RuleError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Rule::parse(s)
    }
}
