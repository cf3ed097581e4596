//! Recursive-descent parser for rule text (config time): builds the matcher tree, checks each
//! matcher's arguments and compiles its regexes, reporting the first problem with its column.
//!
//! ```text
//! rule    := or END
//! or      := and ( "||" and )*
//! and     := unary ( "&&" unary )*
//! unary   := "!"* primary
//! primary := "(" or ")" | NAME "(" [ VALUE ( "," VALUE )* ] ")"
//! ```
//! Recursion happens only through parentheses, whose depth is capped at `MAX_NESTING`, so hostile
//! input cannot overflow the stack; runs of `!` are counted in a loop.

use std::fmt;

use http::HeaderName;
use regex::bytes::{Regex, RegexBuilder};

use super::lexer::{Lexer, Token, TokenKind};
use super::matcher::{escaped_byte, is_reserved, routing_path, Expr, IpNet, Matcher};
use super::{RuleError, MAX_NESTING};

pub(super) fn parse(src: &str) -> Result<Expr, RuleError> {
    let mut parser = Parser {
        lexer: Lexer::new(src),
        peeked: None,
        depth: 0,
    };
    if parser.peek()?.kind == TokenKind::End {
        return Err(RuleError::new(
            1,
            "empty rule; expected a matcher such as Host(`example.com`)",
        ));
    }
    let expr = parser.or()?;
    let token = parser.next()?;
    match token.kind {
        TokenKind::End => Ok(expr),
        TokenKind::RParen => Err(RuleError::new(
            token.column,
            "unmatched `)`; no `(` is open here",
        )),
        other => Err(RuleError::new(
            token.column,
            format!(
                "expected `&&`, `||` or end of rule, found {}",
                other.describe()
            ),
        )),
    }
}

struct Parser<'a> {
    lexer: Lexer<'a>,
    peeked: Option<Token<'a>>,
    /// Parentheses currently open.
    depth: usize,
}

impl<'a> Parser<'a> {
    fn peek(&mut self) -> Result<&Token<'a>, RuleError> {
        if self.peeked.is_none() {
            self.peeked = Some(self.lexer.next_token()?);
        }
        Ok(self.peeked.as_ref().expect("just filled"))
    }

    fn next(&mut self) -> Result<Token<'a>, RuleError> {
        match self.peeked.take() {
            Some(token) => Ok(token),
            None => self.lexer.next_token(),
        }
    }

    fn or(&mut self) -> Result<Expr, RuleError> {
        let mut items = Vec::new();
        push_flat(&mut items, self.and()?, Expr::is_any);
        while self.peek()?.kind == TokenKind::Or {
            self.next()?;
            push_flat(&mut items, self.and()?, Expr::is_any);
        }
        Ok(collapse(items, Expr::Any))
    }

    fn and(&mut self) -> Result<Expr, RuleError> {
        let mut items = Vec::new();
        push_flat(&mut items, self.unary()?, Expr::is_all);
        while self.peek()?.kind == TokenKind::And {
            self.next()?;
            push_flat(&mut items, self.unary()?, Expr::is_all);
        }
        Ok(collapse(items, Expr::All))
    }

    fn unary(&mut self) -> Result<Expr, RuleError> {
        let mut negated = false;
        while self.peek()?.kind == TokenKind::Not {
            self.next()?;
            negated = !negated;
        }
        let expr = self.primary()?;
        Ok(if negated {
            Expr::Not(Box::new(expr))
        } else {
            expr
        })
    }

    fn primary(&mut self) -> Result<Expr, RuleError> {
        let token = self.next()?;
        match token.kind {
            TokenKind::LParen => {
                if self.depth == MAX_NESTING {
                    return Err(RuleError::new(
                        token.column,
                        format!("parentheses nested deeper than {MAX_NESTING} levels"),
                    ));
                }
                self.depth += 1;
                let expr = self.or()?;
                self.depth -= 1;
                let close = self.next()?;
                if close.kind != TokenKind::RParen {
                    return Err(RuleError::new(
                        close.column,
                        format!(
                            "expected `)` to close the `(` at column {}, found {}",
                            token.column,
                            close.kind.describe()
                        ),
                    ));
                }
                Ok(expr)
            }
            TokenKind::Ident(name) => self.matcher(name, token.column),
            other => Err(RuleError::new(
                token.column,
                format!(
                    "expected a matcher such as Host(`example.com`), `(` or `!`, found {}",
                    other.describe()
                ),
            )),
        }
    }

    fn matcher(&mut self, name: &str, column: usize) -> Result<Expr, RuleError> {
        let Some(kind) = Kind::ALL
            .iter()
            .copied()
            .find(|k| k.name().eq_ignore_ascii_case(name))
        else {
            let names: Vec<&str> = Kind::ALL.iter().map(|k| k.name()).collect();
            return Err(RuleError::new(
                column,
                format!(
                    "unknown matcher `{name}`; expected one of {}",
                    names.join(", ")
                ),
            ));
        };
        let open = self.next()?;
        if open.kind != TokenKind::LParen {
            return Err(RuleError::new(
                open.column,
                format!(
                    "expected `(` after matcher `{kind}`, found {}",
                    open.kind.describe()
                ),
            ));
        }
        let (args, close_column) = self.arguments(kind)?;
        check_arity(kind, &args, close_column)?;
        check_not_empty(kind, &args)?;
        build(kind, &args).map(Expr::Match)
    }

    /// The values up to and including `)`, each with the column of its opening quote.
    fn arguments(&mut self, kind: Kind) -> Result<(Vec<Arg>, usize), RuleError> {
        let mut args = Vec::new();
        loop {
            let token = self.next()?;
            match token.kind {
                TokenKind::RParen if args.is_empty() => return Ok((args, token.column)),
                TokenKind::Str(value) => args.push(Arg {
                    value,
                    column: token.column,
                }),
                other => {
                    let after = if args.is_empty() {
                        format!("`{kind}(`")
                    } else {
                        "`,`".to_owned()
                    };
                    return Err(RuleError::new(
                        token.column,
                        format!(
                            "expected a value in backticks or double quotes after {after}, found {}",
                            other.describe()
                        ),
                    ));
                }
            }
            let token = self.next()?;
            match token.kind {
                TokenKind::Comma => {}
                TokenKind::RParen => return Ok((args, token.column)),
                other => {
                    return Err(RuleError::new(
                        token.column,
                        format!(
                            "expected `,` or `)` after a value of `{kind}`, found {}",
                            other.describe()
                        ),
                    ))
                }
            }
        }
    }
}

struct Arg {
    value: String,
    column: usize,
}

/// Appends `expr`, splicing in its children if it is the same n-ary operator.
fn push_flat(items: &mut Vec<Expr>, expr: Expr, same: fn(&Expr) -> bool) {
    if same(&expr) {
        if let Expr::All(children) | Expr::Any(children) = expr {
            items.extend(children);
            return;
        }
    }
    items.push(expr);
}

fn collapse(mut items: Vec<Expr>, make: fn(Vec<Expr>) -> Expr) -> Expr {
    if items.len() == 1 {
        items.pop().expect("one item")
    } else {
        make(items)
    }
}

impl Expr {
    fn is_any(&self) -> bool {
        matches!(self, Expr::Any(_))
    }

    fn is_all(&self) -> bool {
        matches!(self, Expr::All(_))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Host,
    HostRegexp,
    Path,
    PathPrefix,
    PathRegexp,
    Method,
    Header,
    HeaderRegexp,
    Query,
    QueryRegexp,
    ClientIp,
}

impl Kind {
    const ALL: [Kind; 11] = [
        Kind::Host,
        Kind::HostRegexp,
        Kind::Path,
        Kind::PathPrefix,
        Kind::PathRegexp,
        Kind::Method,
        Kind::Header,
        Kind::HeaderRegexp,
        Kind::Query,
        Kind::QueryRegexp,
        Kind::ClientIp,
    ];

    fn name(self) -> &'static str {
        match self {
            Kind::Host => "Host",
            Kind::HostRegexp => "HostRegexp",
            Kind::Path => "Path",
            Kind::PathPrefix => "PathPrefix",
            Kind::PathRegexp => "PathRegexp",
            Kind::Method => "Method",
            Kind::Header => "Header",
            Kind::HeaderRegexp => "HeaderRegexp",
            Kind::Query => "Query",
            Kind::QueryRegexp => "QueryRegexp",
            Kind::ClientIp => "ClientIP",
        }
    }

    /// Accepted argument counts, as in Traefik v3.
    fn arity(self) -> (usize, usize) {
        match self {
            Kind::Header | Kind::HeaderRegexp => (2, 2),
            Kind::Query | Kind::QueryRegexp => (1, 2),
            _ => (1, 1),
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

fn check_arity(kind: Kind, args: &[Arg], close_column: usize) -> Result<(), RuleError> {
    let (min, max) = kind.arity();
    let got = args.len();
    if (min..=max).contains(&got) {
        return Ok(());
    }
    let takes = match (min, max) {
        (1, 1) => "1 argument".to_owned(),
        (n, m) if n == m => format!("{n} arguments"),
        (n, m) => format!("{n} or {m} arguments"),
    };
    let mut message = format!("`{kind}` takes {takes}, got {got}");
    if max == 1 && got > 1 {
        message.push_str(
            "; Traefik v3 takes one value per matcher, combine several with `||` \
             (e.g. Host(`a.example.com`) || Host(`b.example.com`))",
        );
    }
    // Point at the first extra value, or at the `)` where a value is missing.
    let column = args.get(max).map_or(close_column, |arg| arg.column);
    Err(RuleError::new(column, message))
}

/// Traefik v3 rejects an empty value in any matcher; so does umbra, saying what to write instead.
fn check_not_empty(kind: Kind, args: &[Arg]) -> Result<(), RuleError> {
    let Some((i, arg)) = args.iter().enumerate().find(|(_, a)| a.value.is_empty()) else {
        return Ok(());
    };
    let (what, hint) = match (kind, i) {
        (Kind::Header | Kind::HeaderRegexp, 0) => ("header name", String::new()),
        (Kind::Header | Kind::HeaderRegexp, _) => (
            "value",
            format!(
                "; to match an empty value use HeaderRegexp(`{}`, `^$`)",
                args[0].value
            ),
        ),
        (Kind::Query | Kind::QueryRegexp, 0) => ("key", String::new()),
        (Kind::Query | Kind::QueryRegexp, _) => (
            "value",
            format!(
                "; Query(`{}`) alone matches the key with no value (`?{}`)",
                args[0].value, args[0].value
            ),
        ),
        _ => ("value", String::new()),
    };
    Err(RuleError::new(
        arg.column,
        format!("`{kind}` {what} must not be empty{hint}"),
    ))
}

fn build(kind: Kind, args: &[Arg]) -> Result<Matcher, RuleError> {
    let first = &args[0];
    let value = first.value.as_str();
    let err = |arg: &Arg, message: String| RuleError::new(arg.column, message);
    Ok(match kind {
        Kind::Host => host(value).map_err(|m| err(first, m))?,
        Kind::HostRegexp => {
            if !value.is_ascii() {
                return Err(err(
                    first,
                    "`HostRegexp` value must be ASCII (use punycode for IDNs)".to_owned(),
                ));
            }
            Matcher::HostRegexp(regex(kind, first)?)
        }
        Kind::Path | Kind::PathPrefix => {
            if !value.starts_with('/') {
                return Err(err(
                    first,
                    format!("`{kind}` value must start with `/`, got `{value}`"),
                ));
            }
            if value.contains('?') {
                return Err(err(
                    first,
                    format!(
                        "`{kind}` matches the path without the query; use Query(`key`, `value`) \
                         for what follows `?`"
                    ),
                ));
            }
            let value = routing_value(kind, value).map_err(|m| err(first, m))?;
            if kind == Kind::Path {
                Matcher::Path(value.into())
            } else {
                Matcher::PathPrefix(value.into())
            }
        }
        Kind::PathRegexp => Matcher::PathRegexp(regex(kind, first)?),
        Kind::Method => {
            // Traefik uppercases the value and compares it with the method as sent.
            let upper = value.to_ascii_uppercase();
            if http::Method::from_bytes(upper.as_bytes()).is_err() {
                return Err(err(first, format!("`{value}` is not an HTTP method")));
            }
            Matcher::Method(upper.into())
        }
        Kind::Header => Matcher::Header(header_name(kind, first)?, args[1].value.as_bytes().into()),
        Kind::HeaderRegexp => {
            Matcher::HeaderRegexp(header_name(kind, first)?, regex(kind, &args[1])?)
        }
        // With the key alone, both look for the key with an empty value, as in Traefik.
        Kind::Query | Kind::QueryRegexp => match (kind, args.get(1)) {
            (Kind::QueryRegexp, Some(re)) => Matcher::QueryRegexp(value.into(), regex(kind, re)?),
            (_, want) => Matcher::Query(value.into(), want.map_or("", |a| &a.value).into()),
        },
        Kind::ClientIp => Matcher::ClientIp(IpNet::parse(value).map_err(|m| {
            err(
                first,
                format!("invalid IP address or CIDR range in `ClientIP`: {m}"),
            )
        })?),
    })
}

/// Checks a `Host` value, exact or `*.example.com` (Traefik v3.7's wildcard: one whole label).
fn host(value: &str) -> Result<Matcher, String> {
    match value.strip_prefix("*.") {
        Some(domain) if !domain.starts_with('*') => {
            host_name(domain).map_err(|m| format!("after `*.` in `{value}`: {m}"))?;
            Ok(Matcher::HostWildcard(value.into()))
        }
        _ if value.starts_with("**.") => Err(format!(
            "`Host` does not take `**.` (Traefik v3.8's wildcard for subdomains at any depth); \
             for `{value}` use HostRegexp, e.g. HostRegexp(`^.+\\.example\\.com$`)"
        )),
        _ if value.contains('*') => Err(format!(
            "`Host` takes a wildcard only as a whole first label followed by a domain, as in \
             `*.example.com` (one label, not the domain itself); for `{value}` use HostRegexp, \
             e.g. HostRegexp(`^.+\\.example\\.com$`)"
        )),
        _ => host_name(value).map(|()| Matcher::Host(value.into())),
    }
}

/// Checks a host name: the request host is compared without port and without case.
fn host_name(value: &str) -> Result<(), String> {
    if value.is_empty() || value == "." {
        return Err("`Host` value must not be empty".to_owned());
    }
    if !value.is_ascii() {
        return Err("`Host` value must be ASCII (use punycode for IDNs)".to_owned());
    }
    if let Some((_, port)) = value.split_once(':') {
        if !value.starts_with('[') && !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!(
                "`Host` matches the host without its port; remove `:{port}`"
            ));
        }
    }
    if value.contains(|c: char| c.is_ascii_whitespace() || c.is_ascii_control() || c == '/') {
        return Err(format!("`{value}` is not a host name"));
    }
    Ok(())
}

/// A `Path`/`PathPrefix` value as the routing path would spell it. Requests are matched on their
/// decoded path (see `RoutingPath`), so an escape that would be decoded can never match and is an
/// error; the escapes that stay (reserved characters, `%`) get uppercase hex digits.
fn routing_value(kind: Kind, value: &str) -> Result<String, String> {
    let bytes = value.as_bytes();
    for (i, _) in value.match_indices('%') {
        match escaped_byte(&bytes[i + 1..]) {
            Some(byte) if is_reserved(byte) => {}
            Some(_) => {
                let decoded = String::from_utf8_lossy(&routing_path(value)).into_owned();
                return Err(format!(
                    "`{kind}` matches the decoded path, so `{}` never matches; write `{decoded}`",
                    &value[i..i + 3]
                ));
            }
            None => {
                return Err(format!(
                    "`%` in `{kind}` must start an escape such as `%25` (a literal `%`) or `%2F` \
                     (an encoded `/`)"
                ))
            }
        }
    }
    Ok(String::from_utf8(routing_path(value).into_owned()).expect("only ASCII escapes changed"))
}

fn header_name(kind: Kind, arg: &Arg) -> Result<HeaderName, RuleError> {
    HeaderName::from_bytes(arg.value.as_bytes()).map_err(|_| {
        RuleError::new(
            arg.column,
            format!("invalid header name `{}` in `{kind}`", arg.value),
        )
    })
}

/// Compiles a matcher's regex. Like Go's, it is case-sensitive unless it says `(?i)`.
fn regex(kind: Kind, arg: &Arg) -> Result<Regex, RuleError> {
    RegexBuilder::new(&arg.value).build().map_err(|e| {
        let mut message = format!("invalid regex in {kind}: {}", regex_reason(&e));
        if looks_like_v2_placeholder(&arg.value) {
            message.push_str(
                "; Traefik v2's `{name:regex}` placeholders are not v3 syntax, write the regex \
                 itself (e.g. `^[a-z]+\\.example\\.com$`)",
            );
        }
        RuleError::new(arg.column, message)
    })
}

/// Whether `pattern` has a `{name:` as in Traefik v2's `{subdomain:[a-z]+}`.
fn looks_like_v2_placeholder(pattern: &str) -> bool {
    pattern.split('{').skip(1).any(|after| {
        after.split_once(':').is_some_and(|(name, _)| {
            !name.is_empty() && name.chars().all(|c| c.is_alphanumeric() || c == '_')
        })
    })
}

/// The one-line reason from the regex crate's multi-line message (which repeats the pattern and
/// draws a caret under it), so the error fits in a log line or a JSON field.
fn regex_reason(err: &regex::Error) -> String {
    match err {
        regex::Error::Syntax(text) => text
            .lines()
            .rev()
            .find_map(|line| line.strip_prefix("error: "))
            .map_or_else(
                || text.split_whitespace().collect::<Vec<_>>().join(" "),
                str::to_owned,
            ),
        other => other.to_string(),
    }
}
