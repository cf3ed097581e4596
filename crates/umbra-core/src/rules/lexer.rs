//! Tokenizer for rule text (config time): identifiers, punctuation, operators and quoted values,
//! each tagged with its 1-based character column. Tokens are produced on demand so that the
//! leftmost problem in a rule is the one reported.

use super::RuleError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum TokenKind<'a> {
    Ident(&'a str),
    Str(String),
    LParen,
    RParen,
    Comma,
    And,
    Or,
    Not,
    End,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Token<'a> {
    pub kind: TokenKind<'a>,
    pub column: usize,
}

impl TokenKind<'_> {
    /// How the token is named in "found ..." parts of error messages.
    pub fn describe(&self) -> String {
        match self {
            TokenKind::Ident(name) => format!("`{name}`"),
            TokenKind::Str(_) => "a quoted value".to_owned(),
            TokenKind::LParen => "`(`".to_owned(),
            TokenKind::RParen => "`)`".to_owned(),
            TokenKind::Comma => "`,`".to_owned(),
            TokenKind::And => "`&&`".to_owned(),
            TokenKind::Or => "`||`".to_owned(),
            TokenKind::Not => "`!`".to_owned(),
            TokenKind::End => "end of rule".to_owned(),
        }
    }
}

pub(super) struct Lexer<'a> {
    src: &'a str,
    /// Byte offset of the next character.
    pos: usize,
    /// 1-based character column of the next character.
    column: usize,
}

impl<'a> Lexer<'a> {
    pub fn new(src: &'a str) -> Self {
        Self {
            src,
            pos: 0,
            column: 1,
        }
    }

    fn peek(&self) -> Option<char> {
        self.src[self.pos..].chars().next()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += c.len_utf8();
        self.column += 1;
        Some(c)
    }

    pub fn next_token(&mut self) -> Result<Token<'a>, RuleError> {
        while self.peek().is_some_and(char::is_whitespace) {
            self.bump();
        }
        let column = self.column;
        let start = self.pos;
        let Some(c) = self.bump() else {
            return Ok(Token {
                kind: TokenKind::End,
                column,
            });
        };
        let kind = match c {
            '(' => TokenKind::LParen,
            ')' => TokenKind::RParen,
            ',' => TokenKind::Comma,
            '!' => TokenKind::Not,
            '&' | '|' => {
                if self.peek() != Some(c) {
                    return Err(RuleError::new(
                        column,
                        format!("expected `{c}{c}`, found a single `{c}`"),
                    ));
                }
                self.bump();
                if c == '&' {
                    TokenKind::And
                } else {
                    TokenKind::Or
                }
            }
            '`' => TokenKind::Str(self.raw_string(column)?),
            '"' => TokenKind::Str(self.quoted_string(column)?),
            // Unicode letters are taken in so `Hôst` is reported whole, as an unknown matcher.
            c if c.is_alphabetic() || c == '_' => {
                while self.peek().is_some_and(|c| c.is_alphanumeric() || c == '_') {
                    self.bump();
                }
                TokenKind::Ident(&self.src[start..self.pos])
            }
            '\'' => {
                return Err(RuleError::new(
                    column,
                    "unexpected character `'`; values go in backticks or double quotes",
                ))
            }
            c => {
                return Err(RuleError::new(
                    column,
                    format!("unexpected character `{c}`"),
                ))
            }
        };
        Ok(Token { kind, column })
    }

    /// After the opening backtick: everything up to the next backtick, verbatim.
    fn raw_string(&mut self, open_column: usize) -> Result<String, RuleError> {
        let rest = &self.src[self.pos..];
        let Some(len) = rest.find('`') else {
            return Err(RuleError::new(
                open_column,
                "unterminated string: missing closing backtick",
            ));
        };
        let value = &rest[..len];
        self.pos += len + 1;
        self.column += value.chars().count() + 1;
        Ok(value.to_owned())
    }

    /// After the opening double quote: up to the closing one, with `\"` and `\\` unescaped.
    fn quoted_string(&mut self, open_column: usize) -> Result<String, RuleError> {
        let mut value = String::new();
        loop {
            let column = self.column;
            match self.bump() {
                None => {
                    return Err(RuleError::new(
                        open_column,
                        "unterminated string: missing closing double quote",
                    ))
                }
                Some('"') => return Ok(value),
                Some('\\') => match self.bump() {
                    Some(c @ ('"' | '\\')) => value.push(c),
                    None => {
                        return Err(RuleError::new(
                            open_column,
                            "unterminated string: missing closing double quote",
                        ))
                    }
                    Some(c) => {
                        return Err(RuleError::new(
                            column,
                            format!(
                                "unknown escape `\\{c}` in double-quoted value; only `\\\"` and \
                                 `\\\\` are allowed (backticks need no escaping, e.g. for regexes)"
                            ),
                        ))
                    }
                },
                Some(c) => value.push(c),
            }
        }
    }
}
