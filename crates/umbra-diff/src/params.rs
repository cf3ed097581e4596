//! Redaction of secret parameters in URLs and form bodies: the values of parameters named like
//! secrets become `[redacted]`, everything else is kept byte for byte (percent-encoding,
//! order, repeated and empty parameters included). Shadow side, pure.
//!
//! Parameters are `name=value` pairs separated by `&` or `;`; `#` (an OAuth implicit-flow
//! redirect carries `#access_token=...`) and `?` (the query of a URL nested unencoded in a
//! value) separate them too. A value also ends at characters a URL never holds unencoded
//! (whitespace, quotes, `<`, `>`), so a URL inside a header such as `Link` or inside text is cut
//! where it ends. Names are judged percent-decoded; empty values are kept (they hide nothing).

use crate::redact::REDACTED;
use crate::secret::SecretNames;

/// Bytes that end one parameter and may start the next.
fn is_separator(b: u8) -> bool {
    matches!(b, b'&' | b';' | b'#' | b'?')
}

/// Bytes a URL never holds unencoded: they end a URL embedded in text.
fn is_terminator(b: u8) -> bool {
    b.is_ascii_whitespace() || matches!(b, b'"' | b'\'' | b'<' | b'>' | b'`')
}

fn ends_param(b: u8) -> bool {
    is_separator(b) || is_terminator(b)
}

/// Redacts the parameters of a URL, or of a path and query: those after its first `?` or `#`
/// (the path is left alone). `None` when nothing changed.
pub fn redact_url(url: &str, names: &SecretNames) -> Option<String> {
    let start = memchr::memchr2(b'?', b'#', url.as_bytes())? + 1;
    redact_params(url.as_bytes(), start, names).map(into_string)
}

/// Redacts a form body (`application/x-www-form-urlencoded`). `None` when nothing changed.
pub fn redact_form(body: &[u8], names: &SecretNames) -> Option<Vec<u8>> {
    redact_params(body, 0, names)
}

/// Redacts URL parameters in raw bytes (for text inside JSON strings). `None` when nothing
/// changed or there is no `?` or `#`.
pub fn redact_url_bytes(text: &[u8], names: &SecretNames) -> Option<Vec<u8>> {
    let start = memchr::memchr2(b'?', b'#', text)? + 1;
    redact_params(text, start, names)
}

/// Replacements happen between ASCII bytes, so UTF-8 text stays UTF-8.
fn into_string(bytes: Vec<u8>) -> String {
    String::from_utf8(bytes).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// Redacts the values of secret parameters in `text[start..]`.
fn redact_params(text: &[u8], start: usize, names: &SecretNames) -> Option<Vec<u8>> {
    let mut out: Option<Vec<u8>> = None;
    let mut copied = 0;
    let mut i = start;
    while i < text.len() {
        let name_start = i;
        while i < text.len() && text[i] != b'=' && !ends_param(text[i]) {
            i += 1;
        }
        if i < text.len() && text[i] == b'=' {
            let value_start = i + 1;
            let mut end = value_start;
            while end < text.len() && !ends_param(text[end]) {
                end += 1;
            }
            if end > value_start && names.param(&text[name_start..i]) {
                let buf = out.get_or_insert_with(|| Vec::with_capacity(text.len()));
                buf.extend_from_slice(&text[copied..value_start]);
                buf.extend_from_slice(REDACTED.as_bytes());
                copied = end;
            }
            i = end;
        }
        // Past the byte that ended the name or value.
        i += 1;
    }
    let mut buf = out?;
    buf.extend_from_slice(&text[copied..]);
    Some(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(u: &str) -> String {
        redact_url(u, &SecretNames::default()).unwrap_or_else(|| u.to_owned())
    }

    #[test]
    fn secret_query_values_are_redacted_and_the_rest_kept_byte_for_byte() {
        assert_eq!(
            url("/cb?q=a%20b+c&access_token=abc.def&page=2"),
            "/cb?q=a%20b+c&access_token=[redacted]&page=2"
        );
        assert_eq!(
            url("/s3/obj?X-Amz-Credential=AKIA%2F2024&X-Amz-Signature=f00&X-Amz-Date=1"),
            "/s3/obj?X-Amz-Credential=[redacted]&X-Amz-Signature=[redacted]&X-Amz-Date=1"
        );
        assert_eq!(
            url("/maps?key=AIza&sig=s&code=c"),
            "/maps?key=[redacted]&sig=[redacted]&code=[redacted]"
        );
        assert_eq!(url("/plain?a=1&b=2"), "/plain?a=1&b=2");
        assert!(redact_url("/plain?a=1", &SecretNames::default()).is_none());
        assert!(
            redact_url("/token=abc", &SecretNames::default()).is_none(),
            "paths are left alone"
        );
    }

    #[test]
    fn names_are_decoded_and_case_insensitive() {
        assert_eq!(
            url("/?ACCESS%5FTOKEN=x&Api-Key=y"),
            "/?ACCESS%5FTOKEN=[redacted]&Api-Key=[redacted]"
        );
        assert_eq!(
            url("/?user%5Bpassword%5D=p&user[name]=n"),
            "/?user%5Bpassword%5D=[redacted]&user[name]=n"
        );
    }

    #[test]
    fn repeated_empty_and_valueless_parameters() {
        assert_eq!(
            url("/?token=a&token=b&token="),
            "/?token=[redacted]&token=[redacted]&token="
        );
        assert_eq!(url("/?token&password=&x=1"), "/?token&password=&x=1");
        assert_eq!(url("/?a=1;secret=s;b=2"), "/?a=1;secret=[redacted];b=2");
        assert_eq!(url("/?token=a=b&c=d"), "/?token=[redacted]&c=d");
    }

    #[test]
    fn fragments_and_nested_urls() {
        assert_eq!(
            url("https://app/cb#access_token=t&token_type=bearer&state=s"),
            "https://app/cb#access_token=[redacted]&token_type=bearer&state=s"
        );
        assert_eq!(
            url("/login?next=https://x/cb?token=t&ok=1"),
            "/login?next=https://x/cb?token=[redacted]&ok=1"
        );
    }

    #[test]
    fn urls_inside_text_end_where_the_url_ends() {
        assert_eq!(
            url("<https://api/x?page=2&access_token=abc>; rel=\"next\""),
            "<https://api/x?page=2&access_token=[redacted]>; rel=\"next\""
        );
        assert_eq!(url("see /x?token=abc now"), "see /x?token=[redacted] now");
    }

    #[test]
    fn form_bodies_and_route_names() {
        let extra = vec!["pin".to_string()];
        let names = SecretNames {
            headers: &[],
            names: &extra,
        };
        let body = b"grant_type=authorization_code&code=c0de&client_secret=s%26t&pin=1234&user=u";
        assert_eq!(
            redact_form(body, &names).unwrap(),
            b"grant_type=authorization_code&code=[redacted]&client_secret=[redacted]&pin=[redacted]&user=u"
        );
        assert!(redact_form(b"a=1&b=2", &names).is_none());
        assert_eq!(
            redact_url_bytes("/p?x=\u{e9}&token=\u{e9}t".as_bytes(), &names).unwrap(),
            "/p?x=\u{e9}&token=[redacted]".as_bytes()
        );
    }
}
