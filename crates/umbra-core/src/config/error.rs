//! Config errors that name the key and, for files, carry the position: `file:line:col: key: message`.

use std::fmt;
use std::ops::Range;

/// One problem with one key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// Dotted key path, e.g. `routes[1].rule` or `services.api.servers[0]`; empty for syntax errors.
    pub key: String,
    pub message: String,
    /// 1-based line and column in the file, when the config came from a file.
    pub position: Option<(usize, usize)>,
    /// Offset into the value itself (e.g. a rule's column), added to the position.
    pub(crate) inner_column: Option<usize>,
}

impl ConfigError {
    pub fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError {
            key: key.into(),
            message: message.into(),
            position: None,
            inner_column: None,
        }
    }

    pub(crate) fn at_column(mut self, column: usize) -> Self {
        self.inner_column = Some(column);
        self
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.key.is_empty() {
            write!(f, "{}", self.message)
        } else {
            write!(f, "{}: {}", self.key, self.message)
        }
    }
}

/// Every problem found in one config, in file order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors {
    /// The file name, or `<api>` / `<docker>` for other sources.
    pub source_name: String,
    pub errors: Vec<ConfigError>,
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.errors.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            match e.position {
                Some((line, col)) => write!(f, "{}:{line}:{col}: {e}", self.source_name)?,
                None => write!(f, "{}: {e}", self.source_name)?,
            }
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// Converts a byte offset into a 1-based (line, column), counting columns in chars.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |p| p + 1);
    let col = text[line_start..offset].chars().count() + 1;
    (line, col)
}

/// The byte offset in `text` of the `column`-th character (1-based) of the TOML string whose
/// token starts at `start` (escapes, line continuations and a multi-line string's first
/// newline accounted for); one past the end points at the closing quote. None when no string
/// starts there, or when the value holds a `$`: the rule was read after `${VAR}` expansion,
/// so its columns are not the file's.
pub(crate) fn string_char_offset(text: &str, start: usize, column: usize) -> Option<usize> {
    let token = text.get(start..)?;
    let delim = ["\"\"\"", "'''", "\"", "'"]
        .into_iter()
        .find(|d| token.starts_with(d))?;
    let literal = delim.starts_with('\'');
    let mut at = delim.len();
    if delim.len() == 3 {
        at += [("\r\n", 2), ("\n", 1)]
            .iter()
            .find(|(nl, _)| token[at..].starts_with(nl))
            .map_or(0, |(_, n)| *n);
    }
    // Where each character of the value starts.
    let mut chars = Vec::new();
    loop {
        let rest = &token[at..];
        if rest.starts_with(delim) {
            // Up to two quotes right before a multi-line string's closing delimiter are
            // part of the value.
            let quote = delim.as_bytes()[0];
            let extra = rest.as_bytes()[delim.len()..]
                .iter()
                .take(2)
                .take_while(|&&b| b == quote && delim.len() == 3)
                .count();
            chars.extend((0..extra).map(|i| at + i));
            at += extra;
            break;
        }
        let c = rest.chars().next()?;
        let len = if c == '\\' && !literal {
            match escape_len(rest)? {
                Escape::Char(len) => len,
                Escape::Continuation(len) => {
                    at += len;
                    continue;
                }
            }
        } else {
            c.len_utf8()
        };
        let escaped = rest.get(..len)?;
        if c == '$' || escaped_char(escaped) == Some('$') {
            return None;
        }
        chars.push(at);
        at += len;
    }
    Some(start + chars.get(column.max(1) - 1).copied().unwrap_or(at))
}

enum Escape {
    /// An escape of this many bytes that stands for one character.
    Char(usize),
    /// A line-ending backslash and the whitespace it swallows, this many bytes.
    Continuation(usize),
}

/// The escape at the front of `rest` (which starts with a backslash).
fn escape_len(rest: &str) -> Option<Escape> {
    let next = rest[1..].chars().next()?;
    Some(match next {
        'u' => Escape::Char(6),
        'U' => Escape::Char(10),
        'x' => Escape::Char(4),
        ' ' | '\t' | '\r' | '\n' => {
            let ws = rest[1..]
                .find(|c: char| !c.is_ascii_whitespace())
                .unwrap_or(rest.len() - 1);
            Escape::Continuation(1 + ws)
        }
        c => Escape::Char(1 + c.len_utf8()),
    })
}

/// The character a `\u`, `\U` or `\x` escape stands for.
fn escaped_char(escape: &str) -> Option<char> {
    let hex = escape.strip_prefix('\\')?.get(1..)?;
    u32::from_str_radix(hex, 16).ok().and_then(char::from_u32)
}

/// Finds the span of a dotted key path (`routes[1].shadow.service`) in a TOML document, so
/// validation errors can point at the line. Falls back to the closest parent that exists.
pub fn locate(doc: &toml_edit::ImDocument<&str>, key: &str) -> Option<Range<usize>> {
    use toml_edit::{Item, Table, Value};

    enum Node<'a> {
        Table(&'a Table),
        Item(&'a Item),
        Value(&'a Value),
    }
    fn span(n: &Node<'_>) -> Option<Range<usize>> {
        match n {
            Node::Table(t) => t.span(),
            Node::Item(Item::Table(t)) => t.span(),
            Node::Item(Item::ArrayOfTables(a)) => a.span(),
            Node::Item(i) => i.span(),
            Node::Value(v) => v.span(),
        }
    }
    fn child<'a>(n: &Node<'a>, seg: &Seg<'_>) -> Option<Node<'a>> {
        match (n, seg) {
            (Node::Table(t), Seg::Key(k)) => t.get(k).map(Node::Item),
            (Node::Item(Item::Table(t)), Seg::Key(k)) => t.get(k).map(Node::Item),
            (Node::Item(Item::Value(Value::InlineTable(t))), Seg::Key(k))
            | (Node::Value(Value::InlineTable(t)), Seg::Key(k)) => t.get(k).map(Node::Value),
            (Node::Item(Item::ArrayOfTables(a)), Seg::Index(i)) => a.get(*i).map(Node::Table),
            (Node::Item(Item::Value(Value::Array(a))), Seg::Index(i))
            | (Node::Value(Value::Array(a)), Seg::Index(i)) => a.get(*i).map(Node::Value),
            _ => None,
        }
    }

    let mut node = Node::Table(doc.as_table());
    let mut best = None;
    for seg in split_key(key) {
        match child(&node, &seg) {
            Some(n) => {
                best = span(&n).or(best);
                node = n;
            }
            None => break,
        }
    }
    best
}

enum Seg<'a> {
    Key(&'a str),
    Index(usize),
}

fn split_key(key: &str) -> Vec<Seg<'_>> {
    let mut out = Vec::new();
    for part in key.split('.') {
        let (name, rest) = match part.find('[') {
            Some(p) => (&part[..p], &part[p..]),
            None => (part, ""),
        };
        if !name.is_empty() {
            out.push(Seg::Key(name));
        }
        for idx in rest.split('[').filter(|s| !s.is_empty()) {
            if let Ok(i) = idx.trim_end_matches(']').parse() {
                out.push(Seg::Index(i));
            }
        }
    }
    out
}
