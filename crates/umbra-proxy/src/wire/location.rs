//! `Location` answers of a `strip_prefix` route, put back under the prefix (nginx's
//! `proxy_redirect default`): the app sees `/items` where the client asked for
//! `/trace/items`, so its redirect to `/items/` must reach the client as `/trace/items/`.
//! Pure string work for the data plane's respond stage.

/// Where a redirect of the upstream points, as the client must see it; `None` leaves the
/// value as it is (it points elsewhere, is relative to the request's own path, or is under the
/// prefix already — the app read `X-Forwarded-Prefix`).
///
/// `client_host` is the `Host` the client sent (and the upstream got); `upstream` the server's
/// authority (`host:port`). An absolute URL on the client's host keeps its scheme and host;
/// one on the upstream's own address becomes a path (a relative reference, RFC 9110 §10.2.2:
/// the client resolves it against the URL it asked for, scheme and host included).
pub fn rewrite(location: &str, prefix: &str, client_host: &str, upstream: &str) -> Option<String> {
    if location.starts_with('/') && !location.starts_with("//") {
        return under(prefix, "", location);
    }
    let (scheme, rest) = match location.split_once("://") {
        Some((s, rest)) if s.eq_ignore_ascii_case("http") || s.eq_ignore_ascii_case("https") => {
            (Some(s), rest)
        }
        Some(_) => return None,
        None => (None, location.strip_prefix("//")?),
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(end);
    let path = if path.starts_with('/') {
        path.to_string()
    } else {
        format!("/{path}")
    };
    if !client_host.is_empty() && authority.eq_ignore_ascii_case(client_host) {
        let origin = match scheme {
            Some(s) => format!("{s}://{authority}"),
            None => format!("//{authority}"),
        };
        return under(prefix, &origin, &path);
    }
    if same_server(authority, scheme.unwrap_or("http"), upstream) {
        return under(prefix, "", &path);
    }
    None
}

/// `origin` + `prefix` + `path`, unless the path is under the prefix already.
fn under(prefix: &str, origin: &str, path: &str) -> Option<String> {
    let rest = path.strip_prefix(prefix).unwrap_or("x");
    if rest.is_empty() || rest.starts_with(['/', '?', '#']) {
        return None;
    }
    Some(format!("{origin}{prefix}{path}"))
}

/// Whether `authority` (port optional: the scheme's default) is the server `upstream`
/// (`host:port`).
fn same_server(authority: &str, scheme: &str, upstream: &str) -> bool {
    if authority.eq_ignore_ascii_case(upstream) {
        return true;
    }
    let has_port = authority
        .rsplit_once(':')
        .is_some_and(|(_, p)| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    if has_port {
        return false;
    }
    let port = if scheme.eq_ignore_ascii_case("https") {
        "443"
    } else {
        "80"
    };
    upstream
        .strip_suffix(port)
        .and_then(|h| h.strip_suffix(':'))
        .is_some_and(|h| h.eq_ignore_ascii_case(authority))
}

#[cfg(test)]
mod tests {
    use super::rewrite;

    fn r(location: &str) -> Option<String> {
        rewrite(location, "/trace", "a.test", "10.0.0.5:8000")
    }

    #[test]
    fn paths_go_back_under_the_prefix() {
        assert_eq!(r("/items/").as_deref(), Some("/trace/items/"));
        assert_eq!(r("/").as_deref(), Some("/trace/"));
        assert_eq!(r("/items?q=1#f").as_deref(), Some("/trace/items?q=1#f"));
        assert_eq!(
            r("/tracer").as_deref(),
            Some("/trace/tracer"),
            "not the prefix"
        );
        assert_eq!(r("/trace/items/"), None, "under the prefix already");
        assert_eq!(r("/trace"), None);
        assert_eq!(r("items/"), None, "relative to the request's path");
        assert_eq!(r("?page=2"), None);
    }

    #[test]
    fn absolute_urls_on_the_clients_host_keep_their_origin() {
        assert_eq!(
            r("http://a.test/items/").as_deref(),
            Some("http://a.test/trace/items/")
        );
        assert_eq!(
            r("https://A.test/items").as_deref(),
            Some("https://A.test/trace/items")
        );
        assert_eq!(r("http://a.test").as_deref(), Some("http://a.test/trace/"));
        assert_eq!(r("//a.test/x").as_deref(), Some("//a.test/trace/x"));
        assert_eq!(r("http://a.test/trace/x"), None);
    }

    #[test]
    fn the_upstreams_own_address_becomes_a_path() {
        assert_eq!(
            r("http://10.0.0.5:8000/items/").as_deref(),
            Some("/trace/items/")
        );
        assert_eq!(
            rewrite("http://app/items", "/trace", "a.test", "app:80").as_deref(),
            Some("/trace/items")
        );
        assert_eq!(
            rewrite("https://app/items", "/trace", "a.test", "app:80"),
            None
        );
    }

    #[test]
    fn foreign_urls_are_left_alone() {
        assert_eq!(r("https://login.example.com/authorize?x=1"), None);
        assert_eq!(r("http://a.test.evil.com/items"), None);
        assert_eq!(r("http://10.0.0.5:9000/items"), None);
        assert_eq!(r("mailto:x@a.test"), None);
        assert_eq!(r("//evil.com/x"), None);
        assert_eq!(rewrite("http:///x", "/trace", "", "10.0.0.5:8000"), None);
    }
}
